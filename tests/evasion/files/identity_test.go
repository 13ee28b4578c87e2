//go:build linux && amd64

package files

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/lineaged/lineaged/sensor"
	"golang.org/x/sys/unix"
)

// One file read under another name, through a hard link and a bind mount:
// every open carries the file's dev and inode, equal to stat's, and the
// mount it was reached through, so a rule can match the file whatever it
// is called.
func TestRootSameFileOtherNames(t *testing.T) {
	s, out := runSensor(t)
	dir := tempDir(t)
	src := filepath.Join(dir, "src")
	secret := filepath.Join(src, "secret")
	if err := os.MkdirAll(src, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(secret, []byte("s"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(secret, filepath.Join(src, "link")); err != nil {
		t.Fatal(err)
	}
	bound := filepath.Join(src, "bound")
	if err := os.Mkdir(bound, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount(src, bound, "", unix.MS_BIND, ""); err != nil {
		t.Fatalf("bind mount: %v", err)
	}
	t.Cleanup(func() { unix.Unmount(bound, unix.MNT_DETACH) })
	var st unix.Stat_t
	if err := unix.Stat(secret, &st); err != nil {
		t.Fatal(err)
	}
	mntID := func(p string) int32 {
		var sx unix.Statx_t
		if err := unix.Statx(unix.AT_FDCWD, p, 0, unix.STATX_MNT_ID, &sx); err != nil || sx.Mask&unix.STATX_MNT_ID == 0 {
			t.Skipf("statx(STATX_MNT_ID) unavailable: %v", err)
		}
		return int32(sx.Mnt_id)
	}
	srcMnt, boundMnt := mntID(secret), mntID(filepath.Join(bound, "secret"))
	if srcMnt == boundMnt {
		t.Fatalf("the bind mount has the same mount id %d as its source", srcMnt)
	}

	files, _ := member(t, s, out, "other-names", src)
	opens := ops(files, sensor.FileOpen)
	want := []struct {
		path string
		mnt  int32
	}{{secret, srcMnt}, {filepath.Join(src, "link"), srcMnt}, {filepath.Join(bound, "secret"), boundMnt}}
	var got []*sensor.File
	for _, f := range opens {
		for _, w := range want {
			if f.Path == w.path {
				got = append(got, f)
			}
		}
	}
	if len(got) != len(want) {
		for _, f := range opens {
			t.Logf("open %s dev %d ino %d mnt %d", f.Path, f.Dev, f.Ino, f.MountID)
		}
		t.Fatalf("%d opens of the three names, want %d", len(got), len(want))
	}
	for i, f := range got {
		if f.Path != want[i].path || f.Dev != uint64(st.Dev) || f.Ino != st.Ino || f.MountID != want[i].mnt {
			t.Errorf("open of %s: path %s dev %d ino %d mount %d; want dev %d ino %d mount %d",
				want[i].path, f.Path, f.Dev, f.Ino, f.MountID, st.Dev, st.Ino, want[i].mnt)
		}
	}
}

// A file read by handle (open_by_handle_at) is reported as the file
// opened, with its identity, not as the mount directory the call needed.
func TestRootOpenByHandle(t *testing.T) {
	s, r := runSensor(t)
	dir := tempDir(t)
	secret := filepath.Join(dir, "secret")
	if err := os.WriteFile(secret, []byte("s"), 0o600); err != nil {
		t.Fatal(err)
	}
	var st unix.Stat_t
	if err := unix.Stat(secret, &st); err != nil {
		t.Fatal(err)
	}
	files, _ := member(t, s, r, "by-handle", dir)
	var byHandle []*sensor.File
	for _, f := range ops(files, sensor.FileOpen) {
		if f.ByHandle {
			byHandle = append(byHandle, f)
		}
	}
	if len(byHandle) != 2 {
		for _, f := range files {
			t.Log(describe(f))
		}
		t.Fatalf("%d open_by_handle_at records, want 2", len(byHandle))
	}
	if f := byHandle[0]; f.Path != secret || f.Result < 0 || f.Ino != st.Ino || f.Dev != uint64(st.Dev) || f.PathUnresolved {
		t.Errorf("open by handle: %s dev %d ino %d, want %s dev %d ino %d", describe(f), f.Dev, f.Ino, secret, st.Dev, st.Ino)
	}
	if f := byHandle[1]; f.Path != "" || f.Result >= 0 || f.Ino != 0 {
		t.Errorf("failed open by handle: %s, want no path and an errno", describe(f))
	}
}
