//go:build linux && amd64

package files

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The techniques, run by the re-executed test binary as a session member.
// Each prints what the test needs to know, one fact a line, and unlinks
// the marker last.
var helpers = map[string]func(dir string) error{
	"race-swap":    raceSwap,
	"no-race":      noRace,
	"unreadable":   unreadable,
	"proc-links":   procLinks,
	"proc-others":  procOthers,
	"other-names":  otherNames,
	"park-pending": parkPending,
	"by-handle":    byHandle,
	"rmdir":        rmdir,
	"ident-ops":    identOps,
}

func runHelper(mode, dir string) int {
	waitGo()
	h, ok := helpers[mode]
	if !ok {
		fmt.Fprintf(os.Stderr, "unknown helper %q\n", mode)
		return 2
	}
	if err := h(dir); err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", mode, err)
		return 1
	}
	unix.Unlink(filepath.Join(dir, markerName))
	return 0
}

// raceCalls is how many unlinks the racing member makes at least, for at
// least raceFor.
const (
	raceCalls = 3000
	raceFor   = time.Second
)

// cstr is a NUL-terminated copy of s in memory Go does not move.
func cstr(s string) []byte { return append([]byte(s), 0) }

func unlinkPtr(p *byte) error {
	_, _, e := unix.Syscall(unix.SYS_UNLINK, uintptr(unsafe.Pointer(p)), 0, 0)
	if e != 0 {
		return e
	}
	return nil
}

// raceSwap: one thread unlinks a name while another flips it between two
// names of the same length, "decoy" and "victm", in the caller's memory.
func raceSwap(dir string) error {
	runtime.GOMAXPROCS(4)
	a, b := cstr(filepath.Join(dir, "decoy")), cstr(filepath.Join(dir, "victm"))
	buf := make([]byte, len(a))
	copy(buf, a)
	var stop atomic.Bool
	done := make(chan struct{})
	// Pin the two threads to two CPUs, so the writer runs during the
	// unlinks, not between them.
	pin := func(cpu int) {
		runtime.LockOSThread()
		var set unix.CPUSet
		set.Set(cpu)
		unix.SchedSetaffinity(0, &set)
	}
	var started atomic.Bool
	go func() {
		pin(1)
		defer close(done)
		started.Store(true)
		for !stop.Load() {
			for i := 0; i < 64; i++ {
				copy(buf, b)
				copy(buf, a)
			}
		}
	}()
	pin(0)
	for !started.Load() {
		runtime.Gosched()
	}
	// At least raceCalls, and for at least raceFor: on a loaded host the
	// writer may be off its CPU for a while.
	n := 0
	for start := time.Now(); n < raceCalls || time.Since(start) < raceFor; n++ {
		unlinkPtr(&buf[0])
		if n%64 == 63 {
			time.Sleep(time.Millisecond) // a pace the ring buffer's reader keeps up with
		}
	}
	stop.Store(true)
	<-done
	fmt.Println(n)
	return nil
}

// noRace: the same unlinks with nobody rewriting the name.
func noRace(dir string) error {
	buf := cstr(filepath.Join(dir, "decoy"))
	for i := 0; i < raceCalls; i++ {
		unlinkPtr(&buf[0])
	}
	return nil
}

// unreadable: names on pages the sensor cannot read at syscall entry. A
// file mapping never touched has no page table entry (an unlink through
// it); a touched one dropped with MADV_DONTNEED has none again (a rename
// through it). The kernel's own copy of the name faults the page in.
func unreadable(dir string) error {
	target := filepath.Join(dir, "target")
	from, to := filepath.Join(dir, "from"), filepath.Join(dir, "to")
	for _, p := range []string{target, from} {
		if err := os.WriteFile(p, nil, 0o600); err != nil {
			return err
		}
	}
	names := filepath.Join(dir, "names")
	page := make([]byte, 2*os.Getpagesize())
	copy(page, cstr(target))
	copy(page[os.Getpagesize():], append(cstr(from), cstr(to)...))
	if err := os.WriteFile(names, page, 0o600); err != nil {
		return err
	}
	f, err := os.Open(names)
	if err != nil {
		return err
	}
	defer f.Close()
	m, err := unix.Mmap(int(f.Fd()), 0, len(page), unix.PROT_READ, unix.MAP_PRIVATE)
	if err != nil {
		return err
	}
	defer unix.Munmap(m)
	// Page 0, never touched: the unlink.
	if err := unlinkPtr(&m[0]); err != nil {
		return fmt.Errorf("unlink through the untouched page: %w", err)
	}
	// Page 1, touched and dropped: the rename.
	second := m[os.Getpagesize():]
	_ = second[0]
	if err := unix.Madvise(second, unix.MADV_DONTNEED); err != nil {
		return err
	}
	toPtr := &second[len(cstr(from))]
	_, _, e := unix.Syscall(unix.SYS_RENAME, uintptr(unsafe.Pointer(&second[0])), uintptr(unsafe.Pointer(toPtr)), 0)
	if e != 0 {
		return fmt.Errorf("rename through the dropped page: %w", e)
	}
	return nil
}

// procLinks: names through /proc links to the member's own fds, cwd and
// root, the way Claude Code's Write tool renames through /proc/self/fd/N/.
func procLinks(dir string) error {
	dfd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		return err
	}
	fmt.Println(dfd)
	tmp := filepath.Join(dir, "out.txt.tmp")
	if err := os.WriteFile(tmp, []byte("x"), 0o600); err != nil {
		return err
	}
	viaFD := fmt.Sprintf("/proc/self/fd/%d/", dfd)
	if err := unix.Rename(viaFD+"out.txt.tmp", viaFD+"out.txt"); err != nil {
		return err
	}
	if err := unix.Chmod("/proc/self/cwd/out.txt", 0o640); err != nil {
		return err
	}
	if err := unix.Chmod("/proc/thread-self/root"+dir+"/out.txt", 0o600); err != nil {
		return err
	}
	ffd, err := unix.Open(filepath.Join(dir, "out.txt"), unix.O_RDONLY, 0)
	if err != nil {
		return err
	}
	fmt.Println(ffd)
	// chmod follows the bare link to the file itself.
	if err := unix.Chmod(fmt.Sprintf("/proc/self/fd/%d", ffd), 0o644); err != nil {
		return err
	}
	// A dirfd on /proc/self/fd, the rest relative to it.
	pfd, err := unix.Open("/proc/self/fd", unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "gone"), nil, 0o600); err != nil {
		return err
	}
	if err := unix.Unlinkat(pfd, fmt.Sprintf("%d/gone", dfd), 0); err != nil {
		return err
	}
	if err := unix.Unlinkat(unix.AT_FDCWD, fmt.Sprintf("/proc/%d/fd/%d/out.txt", os.Getpid(), dfd), 0); err != nil {
		return err
	}
	return nil
}

// procOthers: /proc links the kernel cannot resolve for the member: another
// process's cwd, and a closed fd.
func procOthers(dir string) error {
	unix.Unlink("/proc/1/cwd/lineaged-evasion-nonexistent")
	unix.Unlink("/proc/self/fd/999/lineaged-evasion-nonexistent")
	return nil
}

// otherNames: one file read under three names: its own, a hard link, and
// its place under a bind mount of its directory (dir/bound, mounted by the
// test).
func otherNames(dir string) error {
	for _, p := range []string{"secret", "link", "bound/secret"} {
		fd, err := unix.Open(filepath.Join(dir, p), unix.O_RDONLY, 0)
		if err != nil {
			return err
		}
		unix.Close(fd)
	}
	return nil
}

// byHandle: open a file by its handle (name_to_handle_at, then
// open_by_handle_at on a descriptor of its mount), as the test's
// /etc/shadow stand-in is read without naming it; then a handle that does
// not open.
func byHandle(dir string) error {
	h, _, err := unix.NameToHandleAt(unix.AT_FDCWD, filepath.Join(dir, "secret"), 0)
	if err != nil {
		return fmt.Errorf("name_to_handle_at: %w", err)
	}
	mfd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		return err
	}
	fd, err := unix.OpenByHandleAt(mfd, h, unix.O_RDONLY)
	if err != nil {
		return fmt.Errorf("open_by_handle_at: %w", err)
	}
	unix.Close(fd)
	bad := unix.NewFileHandle(h.Type(), make([]byte, len(h.Bytes())))
	if _, err := unix.OpenByHandleAt(mfd, bad, unix.O_RDONLY); err == nil {
		return fmt.Errorf("open_by_handle_at of a zeroed handle succeeded")
	}
	return nil
}

// rmdir: a directory removed with rmdir(2), not unlinkat(AT_REMOVEDIR).
// (x/sys's Rmdir is an unlinkat: the raw syscall here.)
func rmdir(dir string) error {
	p := cstr(filepath.Join(dir, "emptied"))
	if _, _, e := unix.Syscall(unix.SYS_RMDIR, uintptr(unsafe.Pointer(&p[0])), 0, 0); e != 0 {
		return e
	}
	return nil
}

// identOps changes files through dir/via, a symlink to dir/real: each
// call's name is not the object's path (lsmident_test.go).
func identOps(dir string) error {
	via := func(name string) string { return filepath.Join(dir, "via", name) }
	steps := []struct {
		what string
		do   func() error
	}{
		{"unlink", func() error { return unix.Unlink(via("a")) }},
		{"rmdir", func() error { return unix.Rmdir(via("g")) }},
		{"rename", func() error { return unix.Rename(via("b"), via("b2")) }},
		{"chmod", func() error { return unix.Chmod(via("c"), 0o640) }},
		{"chown", func() error { return unix.Chown(via("d"), 0, 0) }},
		{"truncate", func() error { return unix.Truncate(via("e"), 1) }},
		{"link", func() error { return unix.Link(via("f"), via("f2")) }},
	}
	for _, st := range steps {
		if err := st.do(); err != nil {
			return fmt.Errorf("%s: %w", st.what, err)
		}
	}
	return nil
}
