//go:build linux && amd64

package files

import (
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/lineaged/lineaged/sensor"
)

func init() {
	helpers["fd-modify-swap"] = func(dir string) error { return fdModifySwap(dir, true) }
	helpers["fd-modify-quiet"] = func(dir string) error { return fdModifySwap(dir, false) }
}

// swapMtime is the modification time the raced utimensat sets.
var swapMtime = time.Date(2001, 2, 3, 4, 5, 6, 0, time.UTC)

// fdModifySwap: utimensat(n, NULL, times) with n the descriptor of
// <dir>/decoy and times on a userfaultfd page: the kernel copies the times
// before it looks n up, so the call waits there. With swap, another
// thread then dup2s a descriptor of <dir>/secret onto n and serves the
// page: the kernel changes the secret's times, while the file the sensor
// read for n at the call's entry was the decoy. Prints the secret's and the
// decoy's modification times after the call.
func fdModifySwap(dir string, swap bool) error {
	secret, decoy := filepath.Join(dir, "secret"), filepath.Join(dir, "decoy")
	for _, p := range []string{secret, decoy} {
		if err := os.WriteFile(p, []byte(p), 0o600); err != nil {
			return err
		}
	}
	n, err := unix.Open(decoy, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	s, err := unix.Open(secret, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	uffd, _, e := unix.Syscall(unix.SYS_USERFAULTFD, unix.O_CLOEXEC, 0, 0)
	if e != 0 {
		return fmt.Errorf("userfaultfd: %w", e)
	}
	api := struct{ api, features, ioctls uint64 }{api: 0xAA}
	if _, _, e := unix.Syscall(unix.SYS_IOCTL, uffd, 0xc018aa3f, uintptr(unsafe.Pointer(&api))); e != 0 { // UFFDIO_API
		return fmt.Errorf("UFFDIO_API: %w", e)
	}
	psz := os.Getpagesize()
	page, err := unix.Mmap(-1, 0, psz, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		return err
	}
	start := uint64(uintptr(unsafe.Pointer(&page[0])))
	reg := struct{ start, len, mode, ioctls uint64 }{start: start, len: uint64(psz), mode: 1}             // MODE_MISSING
	if _, _, e := unix.Syscall(unix.SYS_IOCTL, uffd, 0xc020aa00, uintptr(unsafe.Pointer(&reg))); e != 0 { // UFFDIO_REGISTER
		return fmt.Errorf("UFFDIO_REGISTER: %w", e)
	}
	done := make(chan error, 1)
	go func() {
		_, _, e := unix.Syscall6(unix.SYS_UTIMENSAT, uintptr(n), 0, uintptr(start), 0, 0, 0)
		if e != 0 {
			done <- fmt.Errorf("utimensat: %w", e)
			return
		}
		done <- nil
	}()
	msg := make([]byte, 32)
	if _, err := unix.Read(int(uffd), msg); err != nil { // the call waits on the page
		return fmt.Errorf("reading the fault: %w", err)
	}
	if swap {
		if err := unix.Dup3(s, n, unix.O_CLOEXEC); err != nil {
			return err
		}
	}
	// Serve the page: two struct timespec, both swapMtime.
	src := make([]byte, psz)
	for i := 0; i < 2; i++ {
		binary.LittleEndian.PutUint64(src[16*i:], uint64(swapMtime.Unix()))
		binary.LittleEndian.PutUint64(src[16*i+8:], 0)
	}
	cp := struct {
		dst, src, len, mode uint64
		copy                int64
	}{dst: start, src: uint64(uintptr(unsafe.Pointer(&src[0]))), len: uint64(psz)}
	if _, _, e := unix.Syscall(unix.SYS_IOCTL, uffd, 0xc028aa03, uintptr(unsafe.Pointer(&cp))); e != 0 { // UFFDIO_COPY
		return fmt.Errorf("UFFDIO_COPY: %w", e)
	}
	if err := <-done; err != nil {
		return err
	}
	for _, p := range []string{secret, decoy} {
		fi, err := os.Stat(p)
		if err != nil {
			return err
		}
		fmt.Println(fi.ModTime().UTC().Format(time.RFC3339))
	}
	return nil
}

// A member's utimensat on a descriptor waits in the kernel for its times
// (a userfaultfd page) before the kernel looks the descriptor up; a
// sibling dup2s the secret onto it meanwhile. The kernel changes the
// secret's times; the sensor read the descriptor's file at the call's
// entry, the decoy. The record says the descriptor changed during the
// call; the same call with no sibling does not.
func TestRootDescriptorChangedDuringFileModify(t *testing.T) {
	s, out := runSensor(t)
	stamp := swapMtime.Format(time.RFC3339)
	for _, c := range []struct {
		mode    string
		changed bool
	}{{"fd-modify-swap", true}, {"fd-modify-quiet", false}} {
		dir := tempDir(t)
		files, printed := member(t, s, out, c.mode, dir)
		if len(printed) < 2 {
			t.Fatalf("%s printed %q", c.mode, printed)
		}
		secretTime, decoyTime := printed[len(printed)-2], printed[len(printed)-1]
		if (secretTime == stamp) != c.changed || (decoyTime == stamp) == c.changed {
			t.Fatalf("%s: secret's mtime %s, decoy's %s: the technique did not work as set up", c.mode, secretTime, decoyTime)
		}
		var recs []*sensor.File
		for _, f := range ops(files, sensor.FileUtimes) {
			if f.Path == filepath.Join(dir, "decoy") || f.Path == filepath.Join(dir, "secret") {
				recs = append(recs, f)
			}
		}
		if len(recs) != 1 {
			t.Fatalf("%s: %d records of the utimensat, want 1", c.mode, len(recs))
		}
		f := recs[0]
		t.Logf("%s: %s", c.mode, describe(f))
		if f.FDChanged != c.changed {
			t.Errorf("%s: fd_changed %v, want %v: %s", c.mode, f.FDChanged, c.changed, describe(f))
		}
	}
}
