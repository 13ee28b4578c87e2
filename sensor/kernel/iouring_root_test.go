//go:build linux && amd64

package kernel

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"unsafe"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/lineaged/lineaged/sensor"
	"github.com/lineaged/lineaged/tests/testutil"
	"golang.org/x/sys/unix"
)

// These tests run a session member that does its file and network work
// through a raw io_uring (the attacker's way: no liburing, no syscall the
// file programs trace), with the real fileio and iouring objects loaded
// on one set of shared maps.

const iouHelperAddr = "LINEAGED_IOURING_ADDR"

var _ = func() bool {
	for _, sqpoll := range []bool{false, true} {
		mode := "iouring"
		if sqpoll {
			mode += "-sqpoll"
		}
		fioExtraHelpers[mode] = func(dir string) error { return iouHelper(dir, os.Getenv(iouHelperAddr), sqpoll) }
	}
	// Only a ring, closed at once: what deny_io_uring must not let live.
	fioExtraHelpers["iouring-setup"] = func(string) error {
		r, err := testutil.NewIOURing(false)
		if err != nil {
			return err
		}
		r.Close()
		return nil
	}
	return true
}()

func cstr(s string) []byte { return append([]byte(s), 0) }

// iouHelper is the member's work, in helper mode: through one ring, a nop
// (not reported), an openat of <dir>/opened (relative to an O_PATH dirfd
// of <dir>), a connect to addr and an unlinkat of <dir>/victim.
func iouHelper(dir, addr string, sqpoll bool) error {
	r, err := testutil.NewIOURing(sqpoll)
	if err != nil {
		return err
	}
	defer r.Close()
	dfd, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY, 0)
	if err != nil {
		return err
	}
	defer unix.Close(dfd)
	if _, err := r.Do(testutil.IOURingSQE{Opcode: testutil.IOURingOpNop, UserData: 1}); err != nil {
		return err
	}
	name := cstr("opened")
	res, err := r.Do(testutil.IOURingSQE{Opcode: testutil.IOURingOpOpenat, FD: int32(dfd), Addr: uint64(uintptr(unsafe.Pointer(&name[0]))),
		OpFlags: unix.O_CREAT | unix.O_WRONLY, Len: 0o600, UserData: 2})
	runtime.KeepAlive(name)
	if err != nil || res < 0 {
		return fmt.Errorf("openat: %d %v", res, err)
	}
	unix.Close(int(res))
	ap := netip.MustParseAddrPort(addr)
	s, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM, 0)
	if err != nil {
		return err
	}
	defer unix.Close(s)
	sa := unix.RawSockaddrInet4{Family: unix.AF_INET, Addr: ap.Addr().As4()}
	sa.Port = uint16(ap.Port()>>8) | uint16(ap.Port()&0xff)<<8
	res, err = r.Do(testutil.IOURingSQE{Opcode: testutil.IOURingOpConnect, FD: int32(s), Addr: uint64(uintptr(unsafe.Pointer(&sa))),
		Off: uint64(unsafe.Sizeof(sa)), UserData: 3})
	runtime.KeepAlive(&sa)
	if err != nil || res < 0 {
		return fmt.Errorf("connect: %d %v", res, err)
	}
	victim := cstr(filepath.Join(dir, "victim"))
	res, err = r.Do(testutil.IOURingSQE{Opcode: testutil.IOURingOpUnlinkat, FD: unix.AT_FDCWD, Addr: uint64(uintptr(unsafe.Pointer(&victim[0]))), UserData: 4})
	runtime.KeepAlive(victim)
	if err == nil && res == -int32(unix.EINVAL) && !iouHasUnlinkat() {
		return nil // 5.10: no IORING_OP_UNLINKAT (5.11+)
	}
	if err != nil || res < 0 {
		return fmt.Errorf("unlinkat: %d %v", res, err)
	}
	return nil
}

// iouEnv loads the fileio object and, on the same maps, the io_uring one.
func newIOUEnv(t *testing.T) *fioEnv {
	t.Helper()
	e := newFIOEnv(t, 0)
	tp, _ := iouringTracepoint()
	if tp == "" {
		t.Skip("this kernel has no io_uring submission tracepoint")
	}
	u, err := loadIOURing(e.maps)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { u.Close() })
	return e
}

func iouListen(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l.Addr().String()
}

func iouRun(t *testing.T, e *fioEnv, mode string, member bool) (*fioChild, []sensor.Event, string) {
	t.Helper()
	d := t.TempDir()
	if err := os.WriteFile(filepath.Join(d, "victim"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	addr := iouListen(t)
	mark := fioMarker(d)
	c := e.startChild(mode, d, mark, iouHelperAddr+"="+addr)
	if member {
		e.join(c)
	}
	c.run(t)
	if _, err := os.Stat(filepath.Join(d, "victim")); iouHasUnlinkat() && !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the helper's unlinkat did not happen: %v", err)
	}
	if !member {
		return c, nil, addr
	}
	return c, e.untilMarker(c.pid, mark), d + "\x00" + addr
}

// iouKernelAtLeast reports whether the running kernel is major.minor or
// newer.
func iouKernelAtLeast(major, minor int) bool {
	rel, _ := kernelRelease()
	ma, mi, ok := parseRelease(rel)
	return ok && (ma > major || ma == major && mi >= minor)
}

// iouHasUnlinkat: IORING_OP_UNLINKAT came with 5.11.
func iouHasUnlinkat() bool { return iouKernelAtLeast(5, 11) }

// iouPrepared: from 6.0 the submission tracepoint sees the prepared
// request (names, fd, address), through io_uring_submit_sqe(req, ...) to
// 6.3 and io_uring_submit_req(req) from 6.4; before, the opcode only.
func iouPrepared() bool {
	_, prog := iouringTracepoint()
	return prog == iouringProgIouringSubmitReq
}

func iouEvents(evs []sensor.Event) []sensor.Event {
	var out []sensor.Event
	for _, ev := range evs {
		if ev.IOURing != nil {
			out = append(out, ev)
		}
	}
	return out
}

func checkIOURingRecords(t *testing.T, c *fioChild, evs []sensor.Event, dirAddr string, sqpoll bool) {
	t.Helper()
	dir, addr, _ := strings.Cut(dirAddr, "\x00")
	got := iouEvents(evs)
	var ops []string
	for _, ev := range got {
		u := ev.IOURing
		if ev.Proc.PID != c.pid || ev.Session.Root.PID != c.pid || ev.Session.Agent != sensor.AgentClaudeCode {
			t.Errorf("%s record of pid %d session %+v, want the member %d", u.Op, ev.Proc.PID, ev.Session, c.pid)
		}
		if u.Op == sensor.IOURingSetup {
			ops = append(ops, "setup")
			if u.Result < 0 || u.Entries != testutil.IOURingEntries || (u.SetupFlags&sensor.IOURingSetupSQPoll != 0) != sqpoll {
				t.Errorf("setup: %+v", u)
			}
			continue
		}
		name := sensor.IOURingOpName(u.Opcode)
		ops = append(ops, name)
		if u.SQPoll != sqpoll {
			t.Errorf("%s: SQPoll %v, want %v (tid %d)", name, u.SQPoll, sqpoll, ev.TID)
		}
		if !iouPrepared() {
			if !u.Unprepared || u.Path != "" {
				t.Errorf("%s on a kernel before 6.0: %+v, want unprepared", name, u)
			}
			continue
		}
		switch name {
		case "openat":
			if u.Path != "opened" || !u.PathAsGiven || u.DirFD < 0 || u.OpenFlags&unix.O_CREAT == 0 || u.Mode != 0o600 {
				t.Errorf("openat: %+v", u)
			}
		case "connect":
			if u.Addr.String() != addr || u.Family != unix.AF_INET {
				t.Errorf("connect: %v, want %s (%+v)", u.Addr, addr, u)
			}
		case "unlinkat":
			if u.Path != filepath.Join(dir, "victim") || u.DirFD != unix.AT_FDCWD {
				t.Errorf("unlinkat: %+v", u)
			}
		}
	}
	// A submission is reported whether or not the kernel knows its
	// opcode: before 5.11 the unlinkat fails with EINVAL, after the record.
	want := "setup openat connect unlinkat"
	if strings.Join(ops, " ") != want {
		t.Errorf("io_uring records %q, want %q (a nop is not reported)", strings.Join(ops, " "), want)
	}
}

func TestIOURingMemberRequests(t *testing.T) {
	e := newIOUEnv(t)
	c, evs, da := iouRun(t, e, "iouring", true)
	checkIOURingRecords(t, c, evs, da, false)
	// Nothing else of the member's work went through a traced syscall:
	// only the ring saw the open, the connect and the unlink.
	for _, ev := range evs {
		if ev.File != nil && strings.HasSuffix(ev.File.Path, "/opened") {
			t.Errorf("a syscall open record of the ring's openat: %+v", ev.File)
		}
	}
}

func TestIOURingSQPollAttributedToOwner(t *testing.T) {
	if !iouKernelAtLeast(5, 12) {
		// The SQPOLL thread is a kthread of no thread group before
		// 5.12: its submissions are not seen (docs/threat-model.md).
		t.Skip("SQPOLL submissions are attributed from 5.12")
	}
	e := newIOUEnv(t)
	c, evs, da := iouRun(t, e, "iouring-sqpoll", true)
	checkIOURingRecords(t, c, evs, da, true)
}

func TestIOURingOutsideSessionIsSilent(t *testing.T) {
	e := newIOUEnv(t)
	for _, mode := range []string{"iouring", "iouring-sqpoll"} {
		if mode == "iouring-sqpoll" && !iouKernelAtLeast(5, 12) {
			continue
		}
		iouRun(t, e, mode, false)
	}
	nd := t.TempDir()
	mark := fioMarker(nd)
	member := e.startChild("marker", nd, mark)
	e.join(member)
	member.run(t)
	evs := e.untilMarker(member.pid, mark)
	if len(evs) != 1 {
		for _, ev := range evs {
			t.Logf("%d %s %+v", ev.Proc.PID, ev.Kind, ev.IOURing)
		}
		t.Errorf("%d records before the member's marker, want none", len(evs)-1)
	}
}

// With deny_io_uring, a member's io_uring_setup is answered with SIGKILL
// and its io_uring.setup record says so; a non-member's is left alone.
func TestIOURingDenyKillsMember(t *testing.T) {
	testutil.RequireRoot(t, "to load BPF programs")
	e := loadFIOEnvConfig(t, 0, wakeupPolicy{}, fileIOConfig{DenyIOURing: true})
	d := t.TempDir()

	outsider := e.startChild("iouring-setup", d, fioMarker(d))
	outsider.run(t) // a clean exit: not a member, not killed

	c := e.startChild("iouring-setup", d, fioMarker(d))
	e.join(c)
	if _, err := c.stdin.Write([]byte("go\n")); err != nil {
		t.Fatal(err)
	}
	c.stdin.Close()
	err := c.cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ProcessState.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("member after io_uring_setup: %v, want killed by SIGKILL\n%s", err, c.stderr.String())
	}
	evs := e.until(func(ev sensor.Event) bool {
		return ev.Proc.PID == c.pid && ev.IOURing != nil && ev.IOURing.Op == sensor.IOURingSetup
	})
	if u := evs[len(evs)-1].IOURing; !u.Killed || u.Entries != testutil.IOURingEntries {
		t.Errorf("setup record: %+v, want killed", u)
	}
	for _, ev := range evs {
		if ev.Proc.PID == outsider.pid {
			t.Errorf("a record of the non-member: %s %+v", ev.Kind, ev.IOURing)
		}
	}
}

// The submission programs pass the verifier (a raw tracepoint program
// loads without its tracepoint): the one this kernel attaches, and the
// pre-6.0 one everywhere (it reads no io_uring struct), so a 6.x run
// checks the program the 5.x kernels attach.
func TestIOURingProgramsVerify(t *testing.T) {
	testutil.RequireRoot(t, "to load BPF programs")
	e := newIOUEnv(t)
	_, want := iouringTracepoint()
	for _, name := range []string{iouringProgIouringSubmitReq, iouringProgIouringSubmitSqe} {
		spec, err := loadIouring()
		if err != nil {
			t.Fatal(err)
		}
		repl, err := e.maps.prepare(spec)
		if err != nil {
			t.Fatal(err)
		}
		for p := range spec.Programs {
			if p != name {
				delete(spec.Programs, p)
			}
		}
		coll, err := ebpf.NewCollectionWithOptions(spec, ebpf.CollectionOptions{MapReplacements: repl})
		if err != nil {
			if name == want || name == iouringProgIouringSubmitSqe {
				t.Errorf("%s: %v", name, err)
			} else {
				t.Logf("%s (not this kernel's tracepoint): %v", name, oneLine(err))
			}
			continue
		}
		t.Logf("%s verified", name)
		coll.Close()
	}
}

// A submission program this kernel's verifier refuses leaves io_uring
// requests untraced, says why, and the sensor starts and reports as
// always: it does not take the rest of the sensor down with it.
func TestRootIOURingRefusedProgramLeavesSensorRunning(t *testing.T) {
	testutil.RequireRoot(t, "to load BPF programs")
	if tp, _ := iouringTracepoint(); tp == "" {
		t.Skipf("no io_uring submission program on this kernel: %s", iouringWhyNot())
	}
	iouringSpec = func() (*ebpf.CollectionSpec, error) {
		spec, err := loadIouring()
		if err != nil {
			return nil, err
		}
		for _, p := range spec.Programs {
			// Reads r2, which no program may read before it writes it.
			p.Instructions = asm.Instructions{
				asm.LoadMem(asm.R0, asm.R2, 0, asm.DWord),
				asm.Return(),
			}
		}
		return spec, nil
	}
	iouringForget()
	t.Cleanup(func() {
		iouringSpec = loadIouring
		iouringForget()
	})

	h := startSensor(t, Config{Scope: ScopeAll})
	if tp, prog := iouringTracepoint(); tp != "" || prog != "" {
		t.Errorf("io_uring submissions traced at %q by %q with a refused program", tp, prog)
	}
	_, err := iouringCheck()
	if err == nil || !strings.Contains(err.Error(), "refused") || !strings.Contains(err.Error(), "not seen") {
		t.Errorf("the doctor's io_uring check: %v, want the refusal and what is not seen", err)
	}
	for name := range h.s.loadedPrograms() {
		if strings.HasPrefix(name, "iouring_") {
			t.Errorf("program %s loaded", name)
		}
	}
	m := marker(t)
	mustRun(t, exec.Command("/bin/true", m))
	if ev, _ := h.untilExecArg(m); ev.Exec == nil {
		t.Errorf("no exec reported by the sensor")
	}
}
