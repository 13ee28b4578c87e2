//go:build linux

package trustwatch

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/lineaged/lineaged/sensor"
)

func requireRoot(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("fanotify needs root")
	}
}

// watchDir starts a watcher on dir (a package-db directory anchor) with
// pms as the package managers and returns its records.
func watchDir(t *testing.T, dir string, pms []string) (<-chan sensor.Event, *[]Write) {
	t.Helper()
	var written []Write
	w, err := New(Config{
		Anchors:         []Anchor{{Path: dir, Class: ClassPackageDB, Dir: true}},
		PackageManagers: pms,
		Written:         func(wr Write) { written = append(written, wr) },
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	out := make(chan sensor.Event, 16)
	done := make(chan struct{})
	go func() { defer close(done); w.Run(ctx, out) }()
	t.Cleanup(func() { cancel(); <-done; w.Close() })
	return out, &written
}

// TestRootWriteByOtherProcess: a write into a watched directory by another
// process is a trust-anchor record naming that process and the file; a
// write outside the anchors is not.
func TestRootWriteByOtherProcess(t *testing.T) {
	requireRoot(t)
	dir := t.TempDir()
	other := t.TempDir()
	out, _ := watchDir(t, dir, []string{})
	cmd := exec.Command("/bin/sh", "-c", "echo x > "+filepath.Join(other, "f")+"; echo y > "+filepath.Join(dir, "pkg.md5sums"))
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	select {
	case ev := <-out:
		if ev.Kind != sensor.KindTamper || ev.Tamper.Op != sensor.TamperTrustAnchor ||
			ev.Tamper.Path != filepath.Join(dir, "pkg.md5sums") || ev.Tamper.Anchor != ClassPackageDB ||
			ev.Proc.PID != uint32(cmd.Process.Pid) {
			t.Fatalf("record %+v %+v, want a trust-anchor write of %s by %d", ev.Header, ev.Tamper, dir, cmd.Process.Pid)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no record of the write")
	}
	select {
	case ev := <-out:
		if ev.Tamper == nil || ev.Tamper.Path != filepath.Join(dir, "pkg.md5sums") {
			t.Fatalf("second record %+v %+v", ev.Header, ev.Tamper)
		}
	case <-time.After(500 * time.Millisecond):
	}
}

// TestRootWriteByPackageManager: a write by a descendant of a package
// manager's executable (a maintainer script) is no record, but Written
// hears of it; a copy of the same executable elsewhere is not the
// package manager.
func TestRootWriteByPackageManager(t *testing.T) {
	requireRoot(t)
	dir := t.TempDir()
	bin := t.TempDir()
	pm := filepath.Join(bin, "dpkg")
	b, err := os.ReadFile("/bin/sh")
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(pm, b, 0o755)
	lookalike := filepath.Join(bin, "dpkg-copy")
	os.WriteFile(lookalike, b, 0o755)
	out, written := watchDir(t, dir, []string{pm})
	// The "package manager" runs a maintainer script (a child shell).
	// dpkg outlives its maintainer scripts: the script may be gone when
	// its write is read, the package manager is not.
	if err := exec.Command(pm, "-c", "/bin/sh -c 'echo y > "+filepath.Join(dir, "a.md5sums")+"'; sleep 1").Run(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond)
	select {
	case ev := <-out:
		t.Fatalf("record for the package manager's write: %+v", ev.Tamper)
	default:
	}
	if len(*written) != 1 || !(*written)[0].PackageManager {
		t.Fatalf("written %+v, want one package-manager write", *written)
	}
	cmd := exec.Command(lookalike, "-c", "echo y > "+filepath.Join(dir, "b.md5sums"))
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	select {
	case ev := <-out:
		if ev.Tamper == nil || ev.Proc.PID != uint32(cmd.Process.Pid) {
			t.Fatalf("record %+v", ev.Tamper)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no record of the look-alike's write")
	}
}

// TestRootRenameIntoAnchor: a file written elsewhere and renamed into a
// watched directory (never opened there) is a record naming the renamer
// and the file's new name.
func TestRootRenameIntoAnchor(t *testing.T) {
	requireRoot(t)
	dir := t.TempDir()
	other := t.TempDir()
	out, _ := watchDir(t, dir, []string{})
	src := filepath.Join(other, "forged")
	if err := os.WriteFile(src, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("/bin/mv", src, filepath.Join(dir, "pkg.md5sums"))
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	select {
	case ev := <-out:
		if ev.Tamper == nil || ev.Tamper.Path != filepath.Join(dir, "pkg.md5sums") || ev.Proc.PID != uint32(cmd.Process.Pid) {
			t.Fatalf("record %+v %+v, want the rename into %s by %d", ev.Header, ev.Tamper, dir, cmd.Process.Pid)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no record of the rename")
	}
}

// TestRootWriteBurst: a burst of writes by a writer that has exited when
// they are read all arrive, each promptly (the check for a running package
// manager is not a scan of /proc per write).
func TestRootWriteBurst(t *testing.T) {
	requireRoot(t)
	dir := t.TempDir()
	out, _ := watchDir(t, dir, []string{})
	const n = 500
	cmd := exec.Command("/bin/sh", "-c", "i=0; while [ $i -lt 500 ]; do i=$((i+1)); echo x > "+dir+"/f$i; done")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	for got := 0; got < n; got++ {
		select {
		case ev := <-out:
			if ev.Tamper == nil || ev.Proc.PID != uint32(cmd.Process.Pid) {
				t.Fatalf("record %+v %+v", ev.Header, ev.Tamper)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("%d of %d records", got, n)
		}
	}
}
