//go:build linux && (386 || amd64 || arm64)

package kernel

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/ringbuf"
	"github.com/cilium/ebpf/rlimit"
	"github.com/lineaged/lineaged/sensor"
	"github.com/lineaged/lineaged/tests/testutil"
	"golang.org/x/sys/unix"
)

// These tests load bpf/fileio.bpf.c for real, put a child workload (this
// test binary re-executed in a helper mode) into the sessions map, and read
// the ring buffer directly. Each workload ends by opening a unique marker
// file; the parent reads until that event. fioGuard only bounds a hang.
const (
	fioGuard      = 30 * time.Second
	fioHelperMode = "LINEAGED_FILEIO_HELPER"
	fioHelperDir  = "LINEAGED_FILEIO_DIR"
	fioHelperMark = "LINEAGED_FILEIO_MARKER"
	fioHelperNet  = "LINEAGED_FILEIO_ADDRS"
)

// In helper mode the test binary is the workload, not a test run.
func init() {
	if mode := os.Getenv(fioHelperMode); mode != "" {
		os.Exit(fioHelper(mode))
	}
}

// fioEnv is one loaded file/network object with its own shared maps.
type fioEnv struct {
	t    testing.TB
	maps fileIOMaps
	obj  *fileIO
	rd   *ringbuf.Reader
}

func newFIOEnv(t *testing.T, ringBytes uint32) *fioEnv {
	t.Helper()
	testutil.RequireRoot(t, "to load BPF programs")
	return loadFIOEnv(t, ringBytes)
}

func newFIOEnvB(b *testing.B) *fioEnv { return loadFIOEnv(b, 0) }

func loadFIOEnv(t testing.TB, ringBytes uint32) *fioEnv {
	t.Helper()
	return loadFIOEnvWake(t, ringBytes, wakeupPolicy{})
}

// loadFIOEnvWake loads the object with ring-buffer wakeup policy w.
func loadFIOEnvWake(t testing.TB, ringBytes uint32, w wakeupPolicy) *fioEnv {
	t.Helper()
	return loadFIOEnvConfig(t, ringBytes, w, fileIOConfig{})
}

// loadFIOEnvConfig loads the object with wakeup policy w and cfg.
func loadFIOEnvConfig(t testing.TB, ringBytes uint32, w wakeupPolicy, cfg fileIOConfig) *fioEnv {
	t.Helper()
	// Kernels before 5.11 charge BPF memory to RLIMIT_MEMLOCK.
	if err := rlimit.RemoveMemlock(); err != nil {
		t.Fatal(err)
	}
	spec, err := pickWalker(loadFileio, loadFileioLoop)
	if err != nil {
		t.Fatal(err)
	}
	e := &fioEnv{t: t}
	for name, dst := range map[string]**ebpf.Map{
		fileioMapSessions: &e.maps.Sessions, fileioMapEvents: &e.maps.Events, fileioMapRingbufLost: &e.maps.Lost,
	} {
		ms := spec.Maps[name].Copy()
		if name == fileioMapEvents && ringBytes != 0 {
			ms.MaxEntries = ringBytes
		}
		m, err := ebpf.NewMap(ms)
		if err != nil {
			t.Fatalf("create %s: %v", name, err)
		}
		t.Cleanup(func() { m.Close() })
		*dst = m
	}
	e.maps.Wake = w
	e.obj, err = loadFileIO(e.maps, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := e.obj.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	e.rd, err = ringbuf.NewReader(e.maps.Events)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.rd.Close() })
	return e
}

// fioChild is a helper process blocked until go() is called.
type fioChild struct {
	cmd    *exec.Cmd
	stdin  *os.File
	stderr bytes.Buffer
	pid    uint32
	start  uint64 // /proc start time in ns (tick resolution)
}

func (e *fioEnv) startChild(mode, dir, markerPath string, extraEnv ...string) *fioChild {
	e.t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		e.t.Fatal(err)
	}
	c := &fioChild{stdin: w}
	c.cmd = exec.Command(os.Args[0], "-test.run=^$")
	// No asynchronous preemption: the runtime's SIGURG interrupts a
	// blocking connect, which the kernel restarts, and the member's one
	// connect becomes two records (-512, ERESTARTSYS, then the restarted
	// call's): the steps compared are the calls the helper makes.
	c.cmd.Env = append(os.Environ(), fioHelperMode+"="+mode, fioHelperDir+"="+dir, fioHelperMark+"="+markerPath, "GODEBUG=asyncpreemptoff=1")
	c.cmd.Env = append(c.cmd.Env, extraEnv...)
	c.cmd.Stdin = r
	c.cmd.Stderr = &c.stderr
	ready, err := c.cmd.StdoutPipe()
	if err != nil {
		e.t.Fatal(err)
	}
	if err := c.cmd.Start(); err != nil {
		e.t.Fatal(err)
	}
	r.Close()
	// The runtime's own start-up opens are over once the helper says so;
	// joining after that keeps them out of the expected events.
	if line, err := bufio.NewReader(ready).ReadString('\n'); line != "ready\n" {
		e.t.Fatalf("helper did not start: %q %v", line, err)
	}
	c.pid = uint32(c.cmd.Process.Pid)
	c.start = procStartNs(e.t, c.pid)
	e.t.Cleanup(func() {
		c.stdin.Close()
		_ = c.cmd.Process.Kill()
		_ = c.cmd.Wait()
	})
	return c
}

// join puts the child in the sessions map as the root of its own session.
func (e *fioEnv) join(c *fioChild) {
	e.t.Helper()
	// The member is named by its start time, which /proc gives in ticks.
	s := fileioSession{RootPid: c.pid, Agent: uint8(sensor.AgentClaudeCode), RootStart: c.start,
		Flags: sessionStartTicks, MemberStart: c.start / tickNs * tickNs}
	if err := e.maps.Sessions.Put(c.pid, s); err != nil {
		e.t.Fatal(err)
	}
}

// run releases the child and waits for it to exit cleanly.
func (c *fioChild) run(t *testing.T) {
	t.Helper()
	if _, err := c.stdin.Write([]byte("go\n")); err != nil {
		t.Fatal(err)
	}
	c.stdin.Close()
	if err := c.cmd.Wait(); err != nil {
		t.Fatalf("helper %d: %v\n%s", c.pid, err, c.stderr.String())
	}
}

// until reads and decodes records until one satisfies stop (included).
func (e *fioEnv) until(stop func(sensor.Event) bool) []sensor.Event {
	e.t.Helper()
	// Short waits, like the sensor's own idle poll: a record whose wakeup
	// was lost (seen once in an emulated 7.3 guest) is still read.
	guard := time.Now().Add(fioGuard)
	var evs []sensor.Event
	for {
		e.rd.SetDeadline(time.Now().Add(250 * time.Millisecond))
		rec, err := e.rd.Read()
		if errors.Is(err, os.ErrDeadlineExceeded) && time.Now().Before(guard) {
			continue
		}
		if err != nil {
			e.t.Fatalf("ring buffer after %d events: %v", len(evs), err)
		}
		var ev sensor.Event
		if err := decodeFileIO(rec.RawSample, &ev); err != nil {
			e.t.Fatalf("decode: %v", err)
		}
		evs = append(evs, ev)
		if stop(ev) {
			return evs
		}
	}
}

func (e *fioEnv) untilMarker(pid uint32, markerPath string) []sensor.Event {
	return e.until(func(ev sensor.Event) bool {
		return ev.Proc.PID == pid && ev.File != nil && ev.File.Path == markerPath
	})
}

func procStartNs(t testing.TB, pid uint32) uint64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	ticks, err := strconv.ParseUint(f[19], 10, 64) // field 22
	if err != nil {
		t.Fatal(err)
	}
	return ticks * tickNs
}

func fioMarker(dir string) string {
	return filepath.Join(dir, fmt.Sprintf("marker-%d", time.Now().UnixNano()))
}

// --- workloads -----------------------------------------------------------

// fioStep is one operation of a workload: the child runs do, the parent
// expects want. Both sides build the same list from the same directory.
type fioStep struct {
	name string
	do   func(s *fioState) error
	want fioWant
}

type fioState struct {
	dirfd int // O_PATH fd of <dir>/sub
}

// fioWant describes the one event a step must produce.
type fioWant struct {
	kind       sensor.Kind
	path       string
	newPath    string
	result     int32 // for opens, resultFD means "an fd"
	created    bool
	unresolved bool
	access     sensor.FileAccess
	flags      uint32
	checkFlags bool
	mode       uint32
	// truncatedOf: the path is cut; it must be a tail of this one.
	truncatedOf string
	// otherThread: caused by a thread other than the main one.
	otherThread bool
}

const resultFD = int32(1) << 30

// Deep directory chains: names over 255 bytes in total, ~1000 bytes, and
// deeper than PATH_MAX (built component by component through dirfds).
var (
	fioLong1 = strings.Repeat("a", 150)
	fioLong2 = strings.Repeat("b", 150)
	fioDeep  = func() []string {
		var c []string
		for i := range 10 {
			c = append(c, fmt.Sprintf("%02d%s", i, strings.Repeat("d", 93)))
		}
		return c
	}()
	fioHuge = func() []string {
		var c []string
		for i := range 20 {
			c = append(c, fmt.Sprintf("%02d%s", i, strings.Repeat("h", 218)))
		}
		return c
	}()
)

const (
	fioSpace   = "with space/f i le"
	fioNewline = "new\nline"
	fioBadUTF8 = "bad\xff\xfe\x80name"
)

// fioPrepare builds what the files workload needs, as the parent (not a
// session member: none of this is reported).
func fioPrepare(t *testing.T, d string) {
	t.Helper()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range []string{"sub", "emptydir", "with space", filepath.Join(fioLong1, fioLong2), filepath.Join(fioDeep...)} {
		must(os.MkdirAll(filepath.Join(d, p), 0o755))
	}
	for _, f := range []string{"existing", "sub/target", "sub/keep", fioSpace, fioNewline, fioBadUTF8,
		filepath.Join(fioLong1, fioLong2, "f300"), filepath.Join(append(fioDeep, "deepfile")...)} {
		must(os.WriteFile(filepath.Join(d, f), []byte("x"), 0o644))
	}
	must(os.Symlink("sub/target", filepath.Join(d, "link")))
	// A tmpfs on a tmpfs: the walk crosses two mount points.
	for _, m := range []string{"m1", "m1/m2"} {
		must(os.Mkdir(filepath.Join(d, m), 0o755))
		must(unix.Mount("lineaged-fio", filepath.Join(d, m), "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "size=64k"))
		t.Cleanup(func() { unix.Unmount(filepath.Join(d, m), unix.MNT_DETACH) })
	}
	must(os.WriteFile(filepath.Join(d, "m1/m2/f"), nil, 0o600))
	fd, err := unix.Open(d, unix.O_PATH|unix.O_DIRECTORY, 0)
	must(err)
	for _, c := range fioHuge {
		must(unix.Mkdirat(fd, c, 0o755))
		nfd, err := unix.Openat(fd, c, unix.O_PATH|unix.O_DIRECTORY, 0)
		must(err)
		unix.Close(fd)
		fd = nfd
	}
	unix.Close(fd)
}

func rawPath(p string) uintptr {
	b, err := unix.BytePtrFromString(p)
	if err != nil {
		panic(err)
	}
	return uintptr(unsafe.Pointer(b))
}

func sys1(nr uintptr, a ...uintptr) error {
	var args [6]uintptr
	copy(args[:], a)
	_, _, e := unix.Syscall6(nr, args[0], args[1], args[2], args[3], args[4], args[5])
	if e != 0 {
		return e
	}
	return nil
}

const sysFchmodat2 = 452

func closeFD(fd int, err error) error {
	if err == nil {
		unix.Close(fd)
	}
	return err
}

// kernelHasFchmodat2 probes with a path that cannot exist: ENOENT means
// the syscall is there. Run by the parent, which is not a session member.
func kernelHasFchmodat2() bool {
	fdcwd := unix.AT_FDCWD
	err := sys1(sysFchmodat2, uintptr(fdcwd), rawPath("/nonexistent/lineaged-probe"), 0, 0)
	return !errors.Is(err, unix.ENOSYS)
}

// expectErr turns the expected failure of a step into success.
func expectErr(want unix.Errno, err error) error {
	if !errors.Is(err, want) {
		return fmt.Errorf("want %v, got %v", want, err)
	}
	return nil
}

// fioFileSteps lists the files workload in d. haveFchmodat2 says whether
// the kernel has fchmodat2 (6.6+); without it the call fails with ENOSYS,
// and the program still reports it, with that result.
func fioFileSteps(d string, haveFchmodat2 bool) []fioStep {
	p := func(s ...string) string { return filepath.Join(append([]string{d}, s...)...) }
	long := p(fioLong1, fioLong2, "f300")
	deep := p(append(fioDeep, "deepfile")...)
	huge := p(append(fioHuge, "leaf")...)
	fchmodat2Result := int32(0)
	if !haveFchmodat2 {
		fchmodat2Result = -int32(unix.ENOSYS)
	}
	open := func(path string, access sensor.FileAccess) fioWant {
		return fioWant{kind: sensor.KindOpen, path: path, result: resultFD, access: access}
	}
	return []fioStep{
		{"open read", func(*fioState) error { return closeFD(sysOpen(p("existing"), unix.O_RDONLY, 0)) },
			open(p("existing"), sensor.AccessRead)},
		{"open write", func(*fioState) error { return closeFD(sysOpen(p("existing"), unix.O_WRONLY|unix.O_APPEND, 0)) },
			open(p("existing"), sensor.AccessWrite)},
		{"openat create new", func(*fioState) error {
			return closeFD(unix.Openat(unix.AT_FDCWD, p("created"), unix.O_CREAT|unix.O_EXCL|unix.O_RDWR, 0o640))
		}, fioWant{kind: sensor.KindOpen, path: p("created"), result: resultFD, created: true, access: sensor.AccessReadWrite,
			flags: unix.O_CREAT | unix.O_EXCL | unix.O_RDWR, checkFlags: true, mode: 0o640}},
		{"openat O_CREAT existing", func(*fioState) error {
			return closeFD(unix.Openat(unix.AT_FDCWD, p("created"), unix.O_CREAT|unix.O_RDWR, 0o640))
		}, fioWant{kind: sensor.KindOpen, path: p("created"), result: resultFD, access: sensor.AccessReadWrite, mode: 0o640}},
		{"creat", func(*fioState) error {
			return closeFD(sysCreat(p("creat-new"), 0o600))
		}, fioWant{kind: sensor.KindOpen, path: p("creat-new"), result: resultFD, created: true, access: sensor.AccessWrite,
			flags: unix.O_CREAT | unix.O_WRONLY | unix.O_TRUNC, checkFlags: true, mode: 0o600}},
		{"open dirfd", func(s *fioState) error {
			var err error
			s.dirfd, err = sysOpen(p("sub"), unix.O_PATH|unix.O_DIRECTORY, 0)
			return err
		}, open(p("sub"), sensor.AccessNone)},
		{"openat2 relative to dirfd, created", func(s *fioState) error {
			return closeFD(unix.Openat2(s.dirfd, "rel2", &unix.OpenHow{Flags: unix.O_CREAT | unix.O_WRONLY, Mode: 0o600}))
		}, fioWant{kind: sensor.KindOpen, path: p("sub", "rel2"), result: resultFD, created: true, access: sensor.AccessWrite,
			flags: unix.O_CREAT | unix.O_WRONLY, checkFlags: true, mode: 0o600}},
		{"openat relative to dirfd", func(s *fioState) error { return closeFD(unix.Openat(s.dirfd, "target", unix.O_RDONLY, 0)) },
			open(p("sub", "target"), sensor.AccessRead)},
		{"open relative to cwd with ..", func(*fioState) error {
			if err := unix.Chdir(p("sub")); err != nil {
				return err
			}
			err := closeFD(sysOpen("../existing", unix.O_RDONLY, 0))
			if cerr := unix.Chdir(d); err == nil {
				err = cerr
			}
			return err
		}, open(p("existing"), sensor.AccessRead)},
		{"symlink resolved to its target", func(*fioState) error { return closeFD(sysOpen(p("link"), unix.O_RDONLY, 0)) },
			open(p("sub", "target"), sensor.AccessRead)},
		{"path over 255 bytes", func(*fioState) error { return closeFD(sysOpen(long, unix.O_RDONLY, 0)) },
			open(long, sensor.AccessRead)},
		{"path of ~1000 bytes", func(*fioState) error { return closeFD(sysOpen(deep, unix.O_RDONLY, 0)) },
			open(deep, sensor.AccessRead)},
		{"path deeper than PATH_MAX", func(*fioState) error {
			for _, c := range fioHuge {
				if err := unix.Chdir(c); err != nil {
					return err
				}
			}
			err := closeFD(unix.Openat(unix.AT_FDCWD, "leaf", unix.O_CREAT|unix.O_WRONLY, 0o600))
			if cerr := unix.Chdir(d); err == nil {
				err = cerr
			}
			return err
		}, fioWant{kind: sensor.KindOpen, result: resultFD, created: true, access: sensor.AccessWrite, mode: 0o600, truncatedOf: huge}},
		{"across a mount", func(*fioState) error { return closeFD(sysOpen("/dev/null", unix.O_RDONLY, 0)) },
			open("/dev/null", sensor.AccessRead)},
		{"across two mounts", func(*fioState) error { return closeFD(sysOpen(p("m1", "m2", "f"), unix.O_RDWR, 0)) },
			open(p("m1", "m2", "f"), sensor.AccessReadWrite)},
		{"memfd reopened through /proc", func(*fioState) error {
			mfd, err := unix.MemfdCreate("lineaged-fio", unix.MFD_CLOEXEC)
			if err != nil {
				return err
			}
			defer unix.Close(mfd)
			return closeFD(sysOpen(fmt.Sprintf("/proc/self/fd/%d", mfd), unix.O_RDONLY, 0))
		}, open("memfd:lineaged-fio", sensor.AccessRead)},
		{"pipe reopened through /proc", func(*fioState) error {
			var p [2]int
			if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
				return err
			}
			defer unix.Close(p[0])
			defer unix.Close(p[1])
			return closeFD(sysOpen(fmt.Sprintf("/proc/self/fd/%d", p[0]), unix.O_RDWR, 0))
		}, open("", sensor.AccessReadWrite)},
		{"from another thread", func(*fioState) error {
			// The helper's main goroutine is on the main thread (it runs
			// in init); this goroutine runs on another one.
			done := make(chan error)
			go func() {
				runtime.LockOSThread() // the thread exits with the goroutine
				done <- closeFD(sysOpen(p("existing"), unix.O_RDONLY, 0))
			}()
			return <-done
		}, fioWant{kind: sensor.KindOpen, path: p("existing"), result: resultFD, access: sensor.AccessRead, otherThread: true}},
		{"name with spaces", func(*fioState) error { return closeFD(sysOpen(p(fioSpace), unix.O_RDONLY, 0)) },
			open(p(fioSpace), sensor.AccessRead)},
		{"name with a newline", func(*fioState) error { return closeFD(sysOpen(p(fioNewline), unix.O_RDONLY, 0)) },
			open(p(fioNewline), sensor.AccessRead)},
		{"name in invalid UTF-8", func(*fioState) error { return closeFD(sysOpen(p(fioBadUTF8), unix.O_RDONLY, 0)) },
			open(p(fioBadUTF8), sensor.AccessRead)},
		{"failed open, absolute", func(*fioState) error {
			return expectErr(unix.ENOENT, closeFD(sysOpen(p("missing", "x"), unix.O_RDONLY, 0)))
		}, fioWant{kind: sensor.KindOpen, path: p("missing", "x"), result: -int32(unix.ENOENT), unresolved: true, access: sensor.AccessRead}},
		{"failed openat, relative to dirfd", func(s *fioState) error {
			return expectErr(unix.ENOENT, closeFD(unix.Openat(s.dirfd, "nope", unix.O_WRONLY, 0)))
		}, fioWant{kind: sensor.KindOpen, path: p("sub", "nope"), result: -int32(unix.ENOENT), unresolved: true, access: sensor.AccessWrite}},
		{"failed open, relative to cwd", func(*fioState) error {
			return expectErr(unix.ENOENT, closeFD(sysOpen("nope2", unix.O_RDONLY, 0)))
		}, fioWant{kind: sensor.KindOpen, path: p("nope2"), result: -int32(unix.ENOENT), unresolved: true, access: sensor.AccessRead}},
		{"unlink", func(*fioState) error { return sysUnlink(p("created")) },
			fioWant{kind: sensor.KindUnlink, path: p("created"), unresolved: true}},
		{"unlinkat relative to dirfd", func(s *fioState) error { return unix.Unlinkat(s.dirfd, "rel2", 0) },
			fioWant{kind: sensor.KindUnlink, path: p("sub", "rel2"), unresolved: true, checkFlags: true}},
		{"unlinkat AT_REMOVEDIR relative to cwd", func(*fioState) error {
			return unix.Unlinkat(unix.AT_FDCWD, "emptydir", unix.AT_REMOVEDIR)
		}, fioWant{kind: sensor.KindUnlink, path: p("emptydir"), unresolved: true, flags: unix.AT_REMOVEDIR, checkFlags: true}},
		{"failed unlink", func(*fioState) error { return expectErr(unix.ENOENT, sysUnlink(p("missing"))) },
			fioWant{kind: sensor.KindUnlink, path: p("missing"), unresolved: true, result: -int32(unix.ENOENT)}},
		{"unlink over 255 bytes", func(*fioState) error { return unix.Unlinkat(unix.AT_FDCWD, long, 0) },
			fioWant{kind: sensor.KindUnlink, path: long, unresolved: true}},
		{"rename", func(*fioState) error { return sysRename(p("creat-new"), p("renamed")) },
			fioWant{kind: sensor.KindRename, path: p("creat-new"), newPath: p("renamed"), unresolved: true}},
		{"renameat dirfd to cwd", func(s *fioState) error { return unix.Renameat(s.dirfd, "target", unix.AT_FDCWD, "moved") },
			fioWant{kind: sensor.KindRename, path: p("sub", "target"), newPath: p("moved"), unresolved: true}},
		{"renameat2 RENAME_NOREPLACE refused", func(*fioState) error {
			return expectErr(unix.EEXIST, unix.Renameat2(unix.AT_FDCWD, p("moved"), unix.AT_FDCWD, p("existing"), unix.RENAME_NOREPLACE))
		}, fioWant{kind: sensor.KindRename, path: p("moved"), newPath: p("existing"), unresolved: true, result: -int32(unix.EEXIST),
			flags: unix.RENAME_NOREPLACE, checkFlags: true}},
		{"rename odd names", func(*fioState) error {
			return unix.Renameat2(unix.AT_FDCWD, fioNewline, unix.AT_FDCWD, fioBadUTF8+"2", 0)
		},
			fioWant{kind: sensor.KindRename, path: p(fioNewline), newPath: p(fioBadUTF8 + "2"), unresolved: true, checkFlags: true}},
		{"chmod", func(*fioState) error { return sysChmod(p("existing"), 0o600) },
			fioWant{kind: sensor.KindChmod, path: p("existing"), unresolved: true, mode: 0o600}},
		{"fchmodat relative to cwd", func(*fioState) error { return unix.Fchmodat(unix.AT_FDCWD, "moved", 0o640, 0) },
			fioWant{kind: sensor.KindChmod, path: p("moved"), unresolved: true, mode: 0o640}},
		{"fchmodat2 relative to dirfd", func(s *fioState) error {
			err := sys1(sysFchmodat2, uintptr(s.dirfd), rawPath("keep"), 0o604, unix.AT_SYMLINK_NOFOLLOW)
			if errors.Is(err, unix.ENOSYS) {
				return nil
			}
			return err
		}, fioWant{kind: sensor.KindChmod, path: p("sub", "keep"), unresolved: true, mode: 0o604, flags: unix.AT_SYMLINK_NOFOLLOW, checkFlags: true,
			result: fchmodat2Result}},
		{"open for fchmod", func(s *fioState) error {
			var err error
			s.dirfd, err = unix.Openat(unix.AT_FDCWD, "existing", unix.O_RDONLY, 0) // reused as the fd to fchmod
			return err
		}, open(p("existing"), sensor.AccessRead)},
		{"fchmod", func(s *fioState) error { return unix.Fchmod(s.dirfd, 0o644) },
			fioWant{kind: sensor.KindChmod, path: p("existing"), mode: 0o644}},
	}
}

// fioChrootSteps run inside a chroot to the files workload's directory.
func fioChrootSteps() []fioStep {
	return []fioStep{
		{"absolute inside the root", func(*fioState) error { return closeFD(sysOpen("/existing", unix.O_RDONLY, 0)) },
			fioWant{kind: sensor.KindOpen, path: "/existing", result: resultFD, access: sensor.AccessRead}},
		{"relative to a cwd at the root", func(*fioState) error { return closeFD(sysOpen("sub/target", unix.O_RDONLY, 0)) },
			fioWant{kind: sensor.KindOpen, path: "/sub/target", result: resultFD, access: sensor.AccessRead}},
		{"'..' cannot leave the root", func(*fioState) error { return closeFD(sysOpen("../../existing", unix.O_RDONLY, 0)) },
			fioWant{kind: sensor.KindOpen, path: "/existing", result: resultFD, access: sensor.AccessRead}},
		{"failed, relative to the root", func(*fioState) error {
			return expectErr(unix.ENOENT, closeFD(sysOpen("nope", unix.O_RDONLY, 0)))
		}, fioWant{kind: sensor.KindOpen, path: "/nope", result: -int32(unix.ENOENT), unresolved: true, access: sensor.AccessRead}},
		{"unlink relative to the root", func(*fioState) error { return sysUnlink("sub/keep") },
			fioWant{kind: sensor.KindUnlink, path: "/sub/keep", unresolved: true}},
	}
}

// fioAddrs are the loopback endpoints the parent opened, as host:port.
type fioAddrs struct {
	tcp4, tcp6, udp4, udp6, refused string
}

func fioNetSteps(a fioAddrs) []fioStep {
	connect := func(family, typ int, addr string, nonblock bool) func(*fioState) error {
		return func(*fioState) error {
			ap, err := netip.ParseAddrPort(addr)
			if err != nil {
				return err
			}
			if nonblock {
				typ |= unix.SOCK_NONBLOCK
			}
			fd, err := unix.Socket(family, typ|unix.SOCK_CLOEXEC, 0)
			if err != nil {
				return err
			}
			defer unix.Close(fd)
			var sa unix.Sockaddr
			if ap.Addr().Is4() {
				sa = &unix.SockaddrInet4{Port: int(ap.Port()), Addr: ap.Addr().As4()}
			} else {
				sa = &unix.SockaddrInet6{Port: int(ap.Port()), Addr: ap.Addr().As16()}
			}
			return unix.Connect(fd, sa)
		}
	}
	want := func(proto uint8, family uint16, dst string, result int32) fioWant {
		return fioWant{kind: sensor.KindConnect, path: dst, result: result, mode: uint32(proto), flags: uint32(family)}
	}
	v4 := netip.MustParseAddrPort(a.tcp4)
	mapped := netip.AddrPortFrom(netip.AddrFrom16(v4.Addr().As16()), v4.Port()).String()
	return []fioStep{
		{"tcp4", connect(unix.AF_INET, unix.SOCK_STREAM, a.tcp4, false), want(unix.IPPROTO_TCP, unix.AF_INET, a.tcp4, 0)},
		{"tcp6", connect(unix.AF_INET6, unix.SOCK_STREAM, a.tcp6, false), want(unix.IPPROTO_TCP, unix.AF_INET6, a.tcp6, 0)},
		{"udp4", connect(unix.AF_INET, unix.SOCK_DGRAM, a.udp4, false), want(unix.IPPROTO_UDP, unix.AF_INET, a.udp4, 0)},
		{"udp6", connect(unix.AF_INET6, unix.SOCK_DGRAM, a.udp6, false), want(unix.IPPROTO_UDP, unix.AF_INET6, a.udp6, 0)},
		{"tcp4 refused", func(s *fioState) error {
			return expectErr(unix.ECONNREFUSED, connect(unix.AF_INET, unix.SOCK_STREAM, a.refused, false)(s))
		}, want(unix.IPPROTO_TCP, unix.AF_INET, a.refused, -int32(unix.ECONNREFUSED))},
		{"tcp6 to a v4-mapped address", connect(unix.AF_INET6, unix.SOCK_STREAM, mapped, false),
			want(unix.IPPROTO_TCP, unix.AF_INET6, mapped, 0)},
		{"tcp4 non-blocking", func(s *fioState) error {
			return expectErr(unix.EINPROGRESS, connect(unix.AF_INET, unix.SOCK_STREAM, a.tcp4, true)(s))
		}, want(unix.IPPROTO_TCP, unix.AF_INET, a.tcp4, -int32(unix.EINPROGRESS))},
	}
}

// fioExtraHelpers are helper modes of other files (registered by their
// package-level variables, which are set before any init runs).
var fioExtraHelpers = map[string]func(dir string) error{}

// fioHelper is the child side: wait for the parent's go-ahead (it has put
// us in the sessions map by then), run the steps, open the marker.
func fioHelper(mode string) int {
	dir, mark := os.Getenv(fioHelperDir), os.Getenv(fioHelperMark)
	if _, err := os.Stdout.WriteString("ready\n"); err != nil {
		return 2
	}
	if _, err := bufio.NewReader(os.Stdin).ReadString('\n'); err != nil {
		fmt.Fprintln(os.Stderr, "helper: no go-ahead:", err)
		return 2
	}
	var steps []fioStep
	switch mode {
	case "files":
		if err := unix.Chdir(dir); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 2
		}
		steps = fioFileSteps(dir, true) // the parent checks the result
	case "net":
		var a fioAddrs
		if f := strings.Split(os.Getenv(fioHelperNet), ","); len(f) == 5 {
			a = fioAddrs{f[0], f[1], f[2], f[3], f[4]}
		}
		steps = fioNetSteps(a)
	case "opens":
		for range 200 {
			steps = append(steps, fioStep{do: func(*fioState) error {
				return closeFD(unix.Open(filepath.Join(dir, "existing"), unix.O_RDONLY, 0))
			}})
		}
	case "chroot":
		// Paths are reported as the process sees them: from its root.
		if err := unix.Chroot(dir); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 2
		}
		if err := unix.Chdir("/"); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 2
		}
		steps = fioChrootSteps()
		mark = "/" + filepath.Base(mark)
	case "marker":
	default:
		h, ok := fioExtraHelpers[mode]
		if !ok {
			fmt.Fprintln(os.Stderr, "helper: unknown mode", mode)
			return 2
		}
		if err := h(dir); err != nil {
			fmt.Fprintln(os.Stderr, mode+":", err)
			return 1
		}
	}
	code := 0
	var s fioState
	for _, st := range steps {
		if err := st.do(&s); err != nil {
			fmt.Fprintf(os.Stderr, "step %q: %v\n", st.name, err)
			code = 1
		}
	}
	if err := closeFD(unix.Open(mark, unix.O_CREAT|unix.O_WRONLY, 0o600)); err != nil {
		fmt.Fprintln(os.Stderr, "marker:", err)
		code = 1
	}
	return code
}

// --- checks --------------------------------------------------------------

func (w fioWant) match(ev sensor.Event) error {
	if ev.Kind != w.kind {
		return fmt.Errorf("kind %s", ev.Kind)
	}
	if (ev.TID != ev.Proc.PID) != w.otherThread {
		return fmt.Errorf("thread %d of %d", ev.TID, ev.Proc.PID)
	}
	if w.kind == sensor.KindConnect {
		c := ev.Connect
		if c.Dst.String() != w.path {
			return fmt.Errorf("dst %s", c.Dst)
		}
		if c.Result != w.result || uint32(c.Protocol) != w.mode || uint32(c.Family) != w.flags {
			return fmt.Errorf("result %d protocol %d family %d", c.Result, c.Protocol, c.Family)
		}
		return nil
	}
	f := ev.File
	if w.truncatedOf != "" {
		if !f.PathTruncated || !strings.HasSuffix(w.truncatedOf, f.Path) || !strings.HasPrefix(f.Path, "/") ||
			len(f.Path) > filePathMax-1 || len(f.Path) < filePathMax-1-256 {
			return fmt.Errorf("path %q (%d bytes, truncated %v) is not a long tail of the %d-byte real path",
				f.Path, len(f.Path), f.PathTruncated, len(w.truncatedOf))
		}
	} else if f.Path != w.path || f.PathTruncated {
		return fmt.Errorf("path %q (truncated %v)", f.Path, f.PathTruncated)
	}
	if f.NewPath != w.newPath {
		return fmt.Errorf("new path %q", f.NewPath)
	}
	if w.result == resultFD {
		if f.Result < 0 {
			return fmt.Errorf("result %d, want an fd", f.Result)
		}
	} else if f.Result != w.result {
		return fmt.Errorf("result %d", f.Result)
	}
	if f.Created != w.created || f.PathUnresolved != w.unresolved || f.Access() != w.access {
		return fmt.Errorf("created %v unresolved %v access %q", f.Created, f.PathUnresolved, f.Access())
	}
	if w.checkFlags && f.Flags != w.flags {
		return fmt.Errorf("flags %#o", f.Flags)
	}
	if w.mode != 0 && f.Mode != w.mode {
		return fmt.Errorf("mode %#o", f.Mode)
	}
	return nil
}

// checkSteps requires the child's events to be exactly one per step, in
// order, then the marker.
func checkSteps(t *testing.T, c *fioChild, steps []fioStep, evs []sensor.Event) {
	t.Helper()
	var mine []sensor.Event
	for _, ev := range evs {
		if ev.Proc.PID != c.pid {
			continue
		}
		mine = append(mine, ev)
		wantSession := sensor.SessionRef{Root: sensor.ProcKey{PID: c.pid, StartNs: c.start}, Agent: sensor.AgentClaudeCode}
		if ev.Proc.StartNs != c.start || ev.Session != wantSession || ev.TID == 0 || ev.KtimeNs == 0 {
			t.Errorf("header %+v: want start %d and session %+v", ev.Header, c.start, wantSession)
		}
	}
	if len(mine) != len(steps)+1 {
		t.Errorf("%d events from the member, want %d steps and the marker", len(mine), len(steps))
		for _, ev := range mine {
			t.Logf("  %s %+v %+v", ev.Kind, ev.File, ev.Connect)
		}
	}
	for i, st := range steps {
		if i >= len(mine) {
			t.Errorf("step %q: no event", st.name)
			continue
		}
		if err := st.want.match(mine[i]); err != nil {
			t.Errorf("step %q: %v; want %+v", st.name, err, st.want)
		}
	}
}

func TestFileIOFileEvents(t *testing.T) {
	e := newFIOEnv(t, 0)
	d := t.TempDir()
	fioPrepare(t, d)
	mark := fioMarker(d)
	c := e.startChild("files", d, mark)
	e.join(c)
	c.run(t)
	evs := e.untilMarker(c.pid, mark)
	for _, ev := range evs {
		if ev.Proc.PID != c.pid {
			t.Errorf("event from pid %d, not the session member %d: %+v", ev.Proc.PID, c.pid, ev)
		}
	}
	checkSteps(t, c, fioFileSteps(d, kernelHasFchmodat2()), evs)
	// The marker itself: created by this open.
	last := evs[len(evs)-1].File
	if !last.Created || last.Access() != sensor.AccessWrite {
		t.Errorf("marker open %+v: want created, write", last)
	}
}

func listenAll(t *testing.T) fioAddrs {
	t.Helper()
	tcp := func(network, addr string) string {
		l, err := net.Listen(network, addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { l.Close() })
		return l.Addr().String()
	}
	udp := func(network, addr string) string {
		c, err := net.ListenPacket(network, addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c.LocalAddr().String()
	}
	// A port nobody listens on: bound and held, never listening (a
	// closed one could be handed to one of the listeners below, as it
	// was once on 7.3), so a connect to it is refused.
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	sa, err := unix.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	refused := fmt.Sprintf("127.0.0.1:%d", sa.(*unix.SockaddrInet4).Port)
	return fioAddrs{
		tcp4: tcp("tcp4", "127.0.0.1:0"), tcp6: tcp("tcp6", "[::1]:0"),
		udp4: udp("udp4", "127.0.0.1:0"), udp6: udp("udp6", "[::1]:0"),
		refused: refused,
	}
}

func TestFileIOChrootPathsFromItsRoot(t *testing.T) {
	e := newFIOEnv(t, 0)
	d := t.TempDir()
	for _, f := range []string{"existing", "sub/target", "sub/keep"} {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(d, f)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(d, f), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	mark := fioMarker(d)
	c := e.startChild("chroot", d, mark)
	e.join(c)
	c.run(t)
	evs := e.untilMarker(c.pid, "/"+filepath.Base(mark))
	checkSteps(t, c, fioChrootSteps(), evs)
}

func TestFileIOConnectEvents(t *testing.T) {
	e := newFIOEnv(t, 0)
	d := t.TempDir()
	a := listenAll(t)
	mark := fioMarker(d)
	c := e.startChild("net", d, mark, fioHelperNet+"="+strings.Join([]string{a.tcp4, a.tcp6, a.udp4, a.udp6, a.refused}, ","))
	e.join(c)
	c.run(t)
	evs := e.untilMarker(c.pid, mark)
	steps := fioNetSteps(a)
	checkSteps(t, c, steps, evs)

	// Sources: bound by connect's autobind, on the loopback of the family.
	var conns []*sensor.Connect
	for _, ev := range evs {
		if ev.Connect != nil {
			conns = append(conns, ev.Connect)
		}
	}
	if len(conns) != len(steps) {
		t.Fatalf("%d connect events, want %d", len(conns), len(steps))
	}
	// A refused TCP connect has released its autobound port by the time
	// the syscall returns (tcp_set_state(TCP_CLOSE) puts it back): no source.
	wantSrc := []string{"127.0.0.1", "::1", "127.0.0.1", "::1", "", "::ffff:127.0.0.1", "127.0.0.1"}
	for i, c := range conns {
		if wantSrc[i] == "" {
			if c.Src.IsValid() {
				t.Errorf("%s: source %v, want none", steps[i].name, c.Src)
			}
			continue
		}
		if !c.Src.IsValid() || c.Src.Port() == 0 || c.Src.Addr().String() != wantSrc[i] {
			t.Errorf("%s: source %v, want %s with a port", steps[i].name, c.Src, wantSrc[i])
		}
	}
}

func TestFileIOOutsideSessionIsSilent(t *testing.T) {
	e := newFIOEnv(t, 0)
	d := t.TempDir()
	fioPrepare(t, d)
	a := listenAll(t)
	// Both workloads run to completion outside any session...
	files := e.startChild("files", d, fioMarker(d))
	files.run(t)
	nd := t.TempDir()
	network := e.startChild("net", nd, fioMarker(nd), fioHelperNet+"="+strings.Join([]string{a.tcp4, a.tcp6, a.udp4, a.udp6, a.refused}, ","))
	network.run(t)
	// ...then a member's marker: anything they produced is before it.
	mark := fioMarker(nd)
	member := e.startChild("marker", nd, mark)
	e.join(member)
	member.run(t)
	evs := e.untilMarker(member.pid, mark)
	if len(evs) != 1 {
		t.Errorf("%d events before the member's marker, want none", len(evs)-1)
	}
	for _, ev := range evs {
		if ev.Proc.PID != member.pid {
			t.Errorf("event from non-member pid %d (files %d, net %d, test %d): %s %+v %+v",
				ev.Proc.PID, files.pid, network.pid, os.Getpid(), ev.Kind, ev.File, ev.Connect)
		}
	}
}

func TestFileIORingbufLossCounted(t *testing.T) {
	// One page of ring buffer, never read while the child opens 200 files:
	// most reservations fail and each is counted under EV_OPEN.
	e := newFIOEnv(t, uint32(os.Getpagesize()))
	d := t.TempDir()
	if err := os.WriteFile(filepath.Join(d, "existing"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	c := e.startChild("opens", d, fioMarker(d))
	e.join(c)
	c.run(t) // the programs ran synchronously in the child's syscalls
	var perCPU []uint64
	if err := e.maps.Lost.Lookup(uint32(sensor.KindOpen), &perCPU); err != nil {
		t.Fatal(err)
	}
	var lost uint64
	for _, n := range perCPU {
		lost += n
	}
	// Each record is 8 bytes of ring header + 72 + the path: at most
	// pagesize/80 fit, the rest of the 201 opens must be counted.
	perRec := 8 + fileFixedSize + len(filepath.Join(d, "existing"))
	if fit := os.Getpagesize() / perRec; lost < uint64(201-fit) {
		t.Fatalf("lost %d opens, want at least %d (%d fit the ring)", lost, 201-fit, fit)
	}
	var other []uint64
	if err := e.maps.Lost.Lookup(uint32(sensor.KindConnect), &other); err != nil {
		t.Fatal(err)
	}
	for _, n := range other {
		if n != 0 {
			t.Fatalf("connect loss %v, none expected", other)
		}
	}
}

func TestFileIOVerifierBudget(t *testing.T) {
	e := newFIOEnv(t, 0)
	for name, p := range e.obj.programs() {
		info, err := p.Info()
		if err != nil {
			t.Fatal(err)
		}
		n, ok := info.VerifiedInstructions()
		if !ok {
			t.Skipf("%s: this kernel does not report verified instructions (5.16+)", name)
		}
		t.Logf("%s: %d instructions verified", name, n)
		// Two fifths of the 1M limit. The count depends on the kernel's
		// verifier more than on the program: with the network and the
		// file-name handlers, sys_exit verifies in 79k instructions on
		// 6.18 and 312k on 6.1, whose pruning is less precise. The budget
		// keeps that far from the limit, where a load would fail.
		if n > 400_000 {
			t.Errorf("%s: %d verified instructions, budget 400000", name, n)
		}
	}
}

// BenchmarkFileIOOverhead measures what the attached programs add to a
// syscall, as a ratio against the same syscalls with the programs detached,
// interleaved batch by batch in one run (the machine is shared, so only
// the ratio means anything). "outside" is any process not in a session:
// openat pays the switch, a sessions lookup at enter and a pending-map
// lookup at exit; getpid pays the switch only. "member" is a session member
// whose every open is resolved and emitted (a goroutine drains the ring).
func BenchmarkFileIOOverhead(b *testing.B) {
	testutil.RequireRoot(b, "to load BPF programs")
	openClose := func() {
		fd, err := unix.Openat(unix.AT_FDCWD, "/dev/null", unix.O_RDONLY, 0)
		if err != nil {
			b.Fatal(err)
		}
		unix.Close(fd)
	}
	getpid := func() { unix.Getpid() }
	// lseek is 8 in x86_64 and creat in i386: the programs test the
	// task's TS_COMPAT before letting it go (bpf/fileio_compat.h).
	lseek := func() { unix.Seek(0, 0, 1) }
	for _, sc := range []struct {
		name   string
		member bool
		op     func()
	}{
		{"openat-outside", false, openClose},
		{"getpid-outside", false, getpid},
		{"lseek-outside", false, lseek},
		{"openat-member", true, openClose},
	} {
		b.Run(sc.name, func(b *testing.B) {
			e := newFIOEnvB(b)
			if sc.member {
				pid := uint32(os.Getpid())
				start := procStartNs(b, pid)
				if err := e.maps.Sessions.Put(pid, fileioSession{RootPid: pid, Agent: uint8(sensor.AgentClaudeCode),
					RootStart: start, Flags: sessionStartTicks, MemberStart: start / tickNs * tickNs}); err != nil {
					b.Fatal(err)
				}
				go func() {
					for {
						if _, err := e.rd.Read(); err != nil {
							return
						}
					}
				}()
			}
			const batch = 5000
			// Thread CPU time, not wall time: other work on the two shared
			// cores must not count. The syscalls' kernel time is included.
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			cpu := func() time.Duration {
				var ts unix.Timespec
				if err := unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &ts); err != nil {
					b.Fatal(err)
				}
				return time.Duration(ts.Nano())
			}
			timed := func() time.Duration {
				t0 := cpu()
				for range batch {
					sc.op()
				}
				return cpu() - t0
			}
			var off, on time.Duration
			for b.Loop() {
				for _, l := range e.obj.links {
					l.Close()
				}
				e.obj.links = nil
				off += timed()
				for _, p := range []*ebpf.Program{e.obj.objs.FileioSysEnter, e.obj.objs.FileioSysExit} {
					l, err := link.AttachTracing(link.TracingOptions{Program: p})
					if err != nil {
						b.Fatal(err)
					}
					e.obj.links = append(e.obj.links, l)
				}
				on += timed()
			}
			n := float64(b.N * batch)
			b.ReportMetric(float64(off.Nanoseconds())/n, "ns/op-off")
			b.ReportMetric(float64(on.Nanoseconds())/n, "ns/op-on")
			b.ReportMetric(float64(on)/float64(off), "on/off")
		})
	}
}
