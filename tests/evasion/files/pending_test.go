//go:build linux && amd64

package files

import (
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/lineaged/lineaged/sensor"
	"golang.org/x/sys/unix"
)

// parked is how many threads the blinding member parks inside unlink: the
// kernel's table of unlink/rename/chmod calls in flight holds 256.
const parked = 300

// A member parks more threads inside unlink than the kernel's table of
// calls in flight holds (names on a userfaultfd page nobody serves), then
// unlinks a real file. Its record and a second session's, made while the
// table is full, are sent at the call's entry, flagged so, not lost.
func TestRootPendingTableFullStillReports(t *testing.T) {
	s, r := runSensor(t)
	dir, dir2 := tempDir(t), tempDir(t)
	for _, p := range []string{filepath.Join(dir, "probe"), filepath.Join(dir2, "decoy")} {
		if err := os.WriteFile(p, nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	blinder := startMember(t, s, r, "park-pending", dir)
	deadline := time.Now().Add(guard)
	for !strings.Contains(blinder.stdout.String(), "parked") {
		if time.Now().After(deadline) || blinder.cmd.ProcessState != nil {
			t.Fatalf("the member did not park its threads: stdout %q stderr %q", blinder.stdout.String(), blinder.stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	// A second session acts while the table is full.
	base := r.skippedNow()
	other, _ := member(t, s, r, "no-race", dir2)
	fmt.Fprintln(blinder.stdin, "release")
	files, _ := blinder.finish(t, r, dir)

	probe := filepath.Join(dir, "probe")
	var probes, parkedRecs int
	for _, f := range ops(files, sensor.FileUnlink) {
		switch {
		case f.Path == probe:
			probes++
			if !f.AtEntry || f.Result != 0 {
				t.Errorf("the probe unlink with the table full: %s, want it sent at entry", describe(f))
			}
		case f.NameUnreadable:
			parkedRecs++
		}
	}
	if probes != 1 {
		t.Errorf("%d records of the probe unlink, want 1", probes)
	}
	t.Logf("parked threads' records: %d of %d", parkedRecs, parked)
	unlinks := ops(other, sensor.FileUnlink)
	// Each record missing must be a run the kernel skipped (7.3), reported.
	recordsOrSkipped(t, s, r, base, len(unlinks), raceCalls)
	for _, f := range unlinks {
		if f.Path != filepath.Join(dir2, "decoy") || !f.AtEntry {
			t.Fatalf("second session: %s, want sent at entry", describe(f))
		}
	}
}

// parkPending: parked threads fault on a userfaultfd page inside unlink
// (the kernel's copy of the name waits for a handler that does not come),
// then a real unlink; on "release" the page is zero-filled and the parked
// unlinks fail.
func parkPending(dir string) error {
	uffd, _, e := unix.Syscall(unix.SYS_USERFAULTFD, unix.O_CLOEXEC, 0, 0)
	if e != 0 {
		return fmt.Errorf("userfaultfd: %w", e)
	}
	// UFFD_FEATURE_THREAD_ID: each message names the faulting thread.
	api := struct{ api, features, ioctls uint64 }{api: 0xAA, features: 1 << 8}
	if _, _, e := unix.Syscall(unix.SYS_IOCTL, uffd, 0xc018aa3f, uintptr(unsafe.Pointer(&api))); e != 0 { // UFFDIO_API
		return fmt.Errorf("UFFDIO_API: %w", e)
	}
	page, err := unix.Mmap(-1, 0, os.Getpagesize(), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		return err
	}
	start := uint64(uintptr(unsafe.Pointer(&page[0])))
	reg := struct{ start, len, mode, ioctls uint64 }{start: start, len: uint64(len(page)), mode: 1}       // MODE_MISSING
	if _, _, e := unix.Syscall(unix.SYS_IOCTL, uffd, 0xc020aa00, uintptr(unsafe.Pointer(&reg))); e != 0 { // UFFDIO_REGISTER
		return fmt.Errorf("UFFDIO_REGISTER: %w", e)
	}
	done := make(chan struct{}, parked)
	for i := 0; i < parked; i++ {
		go func() {
			unlinkPtr(&page[0])
			done <- struct{}{}
		}()
	}
	// Wait until every thread is parked. A thread can queue more than one
	// message: a fault taken in the kernel with a signal pending (the Go
	// runtime's preemption signal, sent just before the syscall) is retried
	// at once and queued again, so messages are counted per thread.
	msg := make([]byte, 32)
	threads := make(map[uint32]bool, parked)
	for n := 0; len(threads) < parked; n++ {
		if _, err := unix.Read(int(uffd), msg); err != nil {
			return fmt.Errorf("reading fault %d (%d threads parked): %w", n, len(threads), err)
		}
		threads[binary.LittleEndian.Uint32(msg[24:])] = true // uffd_msg.arg.pagefault.feat.ptid
	}
	if err := unix.Unlink(filepath.Join(dir, "probe")); err != nil {
		return err
	}
	fmt.Println("parked")
	if line, _ := stdin.ReadString('\n'); line != "release\n" {
		return fmt.Errorf("want release, got %q", line)
	}
	zp := struct {
		start, len, mode uint64
		zeropage         int64
	}{start: start, len: uint64(len(page))}
	if _, _, e := unix.Syscall(unix.SYS_IOCTL, uffd, 0xc020aa04, uintptr(unsafe.Pointer(&zp))); e != 0 { // UFFDIO_ZEROPAGE
		return fmt.Errorf("UFFDIO_ZEROPAGE: %w", e)
	}
	for i := 0; i < parked; i++ {
		<-done
	}
	return nil
}
