//go:build linux && amd64

package files

import (
	"fmt"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/lineaged/lineaged/sensor"
)

// Names through /proc links to the member's own fds, cwd and root are
// reported as the files they name, with the literal kept as the raw path.
// The rename through /proc/self/fd/N/ is how Claude Code's Write tool
// replaces a file.
func TestRootProcLinksResolved(t *testing.T) {
	s, out := runSensor(t)
	dir := tempDir(t)

	files, printed := member(t, s, out, "proc-links", dir)
	if len(printed) != 2 {
		t.Fatalf("helper printed %q, want the dir fd and the file fd", printed)
	}
	dfd, _ := strconv.Atoi(printed[0])
	ffd, _ := strconv.Atoi(printed[1])
	out1, tmp := filepath.Join(dir, "out.txt"), filepath.Join(dir, "out.txt.tmp")

	renames, chmods, unlinks := ops(files, sensor.FileRename), ops(files, sensor.FileChmod), ops(files, sensor.FileUnlink)
	if len(renames) != 1 || len(chmods) != 3 || len(unlinks) != 2 {
		for _, f := range files {
			t.Log(describe(f))
		}
		t.Fatalf("%d renames, %d chmods, %d unlinks; want 1, 3, 2", len(renames), len(chmods), len(unlinks))
	}
	type want struct{ path, raw, newPath, newRaw string }
	check := func(what string, f *sensor.File, w want) {
		t.Helper()
		if f.Path != w.path || f.RawPath != w.raw || f.NewPath != w.newPath || f.NewRawPath != w.newRaw ||
			f.PathAsGiven || f.NameChanged || f.NameUnreadable || f.Result != 0 {
			t.Errorf("%s: %s\nwant path %q raw %q new %q new_raw %q", what, describe(f), w.path, w.raw, w.newPath, w.newRaw)
		}
	}
	viaFD := fmt.Sprintf("/proc/self/fd/%d/", dfd)
	check("rename through /proc/self/fd/N/", renames[0], want{tmp, viaFD + "out.txt.tmp", out1, viaFD + "out.txt"})
	check("chmod through /proc/self/cwd", chmods[0], want{out1, "/proc/self/cwd/out.txt", "", ""})
	check("chmod through /proc/thread-self/root", chmods[1], want{out1, "/proc/thread-self/root" + out1, "", ""})
	check("chmod of the bare /proc/self/fd/N link", chmods[2], want{out1, fmt.Sprintf("/proc/self/fd/%d", ffd), "", ""})
	// The dirfd is /proc/self/fd, walked as /proc/<pid>/fd: the literal
	// kept is that joined name.
	if u := unlinks[0]; u.Path != filepath.Join(dir, "gone") || u.RawPath == "" || filepath.Base(u.RawPath) != "gone" || u.Result != 0 {
		t.Errorf("unlinkat through a dirfd on /proc/self/fd: %s, want path %s", describe(u), filepath.Join(dir, "gone"))
	}
	if u := unlinks[1]; u.Path != out1 || u.RawPath == "" || u.Result != 0 {
		t.Errorf("unlink through /proc/<pid>/fd/N/: %s, want path %s", describe(u), out1)
	}
}

// /proc links the kernel cannot resolve for the member stay literal and
// say so.
func TestRootProcLinksAsGiven(t *testing.T) {
	s, out := runSensor(t)
	dir := tempDir(t)

	files, _ := member(t, s, out, "proc-others", dir)
	unlinks := ops(files, sensor.FileUnlink)
	want := []string{"/proc/1/cwd/lineaged-evasion-nonexistent", "/proc/self/fd/999/lineaged-evasion-nonexistent"}
	if len(unlinks) != len(want) {
		t.Fatalf("%d unlink records, want %d", len(unlinks), len(want))
	}
	for i, f := range unlinks {
		if f.Path != want[i] || !f.PathAsGiven || f.RawPath != "" {
			t.Errorf("%s, want the literal %s flagged as given", describe(f), want[i])
		}
	}
}
