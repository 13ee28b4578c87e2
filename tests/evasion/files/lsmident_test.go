//go:build linux && amd64

package files

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/lineaged/lineaged/sensor"
	"github.com/lineaged/lineaged/tests/testutil"
	"golang.org/x/sys/unix"
)

// A member changes files through a symlinked directory (dir/via ->
// dir/real): unlink, rmdir, rename, chmod, chown, truncate and link each
// name dir/via/..., which is not the object's path, and a sibling thread
// could have rewritten the name during the call. The records say the name
// as given (path_source name). Where the kernel runs BPF LSM programs,
// each also carries the identity of the object the kernel changed (device,
// inode, mount id) from the LSM path hook, equal to stat's: a rule can
// match the object whatever the name said. Elsewhere the records carry no
// identity, and the sensor says why. A hook the kernel refuses (5.10
// cannot attach path_chown) leaves its call's record without one, said.
func TestRootPathCallIdentity(t *testing.T) {
	s, out := runSensor(t)
	dir := tempDir(t)
	real := filepath.Join(dir, "real")
	if err := os.Mkdir(real, 0o700); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"a", "b", "c", "d", "e", "f"} {
		if err := os.WriteFile(filepath.Join(real, f), []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(real, "g"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("real", filepath.Join(dir, "via")); err != nil {
		t.Fatal(err)
	}
	type ident struct {
		dev, ino uint64
		mnt      int32
	}
	idents := map[string]ident{}
	for _, f := range []string{"a", "b", "c", "d", "e", "f", "g"} {
		var sx unix.Statx_t
		if err := unix.Statx(unix.AT_FDCWD, filepath.Join(real, f), 0, unix.STATX_INO|unix.STATX_MNT_ID, &sx); err != nil {
			t.Fatal(err)
		}
		var mnt int32 = -1 // not checked where statx has no mount id
		if sx.Mask&unix.STATX_MNT_ID != 0 {
			mnt = int32(sx.Mnt_id)
		}
		idents[f] = ident{dev: unix.Mkdev(sx.Dev_major, sx.Dev_minor), ino: sx.Ino, mnt: mnt}
	}

	hooks, why := s.PathIdentity()
	lsms, _ := os.ReadFile("/sys/kernel/security/lsm")
	// In a matrix guest whose active LSMs include bpf the hooks are
	// required (a host may refuse LSM programs by its own policy: EPERM).
	active := slices.Contains(strings.Split(strings.TrimSpace(string(lsms)), ","), "bpf") && testutil.InVMTest()
	if active && len(hooks) == 0 {
		t.Fatalf("the bpf LSM is active (%s) and no path identity hook is loaded: %s", strings.TrimSpace(string(lsms)), why)
	}
	if len(hooks) < 7 && why == "" {
		t.Fatalf("path identity hooks %v, and no reason given for the others", hooks)
	}
	t.Logf("path identity hooks %v; %s", hooks, why)

	files, _ := member(t, s, out, "ident-ops", dir)
	via := func(name string) string { return filepath.Join(dir, "via", name) }
	want := []struct {
		op   sensor.FileOp
		path string
		obj  string
		hook string
	}{
		{sensor.FileUnlink, via("a"), "a", "unlink"},
		{sensor.FileUnlink, via("g"), "g", "rmdir"},
		{sensor.FileRename, via("b"), "b", "rename"},
		{sensor.FileChmod, via("c"), "c", "chmod"},
		{sensor.FileChown, via("d"), "d", "chown"},
		{sensor.FileTruncate, via("e"), "e", "truncate"},
		{sensor.FileLink, via("f"), "f", "link"},
	}
	for _, w := range want {
		var got *sensor.File
		for _, f := range ops(files, w.op) {
			if f.Path == w.path {
				got = f
			}
		}
		if got == nil {
			for _, f := range files {
				t.Log(describe(f))
			}
			t.Fatalf("no record of op %d on %s", w.op, w.path)
		}
		if got.Result != 0 || !got.PathUnresolved {
			t.Errorf("%s: want a successful call named as given", describe(got))
		}
		id := idents[w.obj]
		hooked := slices.Contains(hooks, "path_lsm_"+w.hook)
		if !hooked && active && !strings.Contains(why, w.hook+" refused") {
			t.Errorf("the bpf LSM is active and the %s hook is neither loaded nor said refused (%s)", w.hook, why)
		}
		switch {
		case !hooked:
			if got.Ino != 0 {
				t.Errorf("%s: identity dev %d ino %d with no %s hook", describe(got), got.Dev, got.Ino, w.hook)
			}
		case got.Dev != id.dev || got.Ino != id.ino || (id.mnt >= 0 && got.MountID != id.mnt):
			t.Errorf("%s: identity dev %d ino %d mount %d, want the object's: dev %d ino %d mount %d",
				describe(got), got.Dev, got.Ino, got.MountID, id.dev, id.ino, id.mnt)
		}
	}
}
