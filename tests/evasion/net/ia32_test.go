//go:build linux && amd64

package net

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"unsafe"

	"github.com/lineaged/lineaged/sensor"
	"github.com/lineaged/lineaged/tests/testutil"
	"golang.org/x/sys/unix"
)

// i386 syscall numbers (arch/x86/entry/syscalls/syscall_32.tbl).
const (
	ia32Open       = 5
	ia32Unlink     = 10
	ia32Chmod      = 15
	ia32Rename     = 38
	ia32Socketcall = 102
	ia32Openat     = 295
	ia32Socket     = 359
	ia32Connect    = 362
	sysConnect     = 3 // socketcall's SYS_CONNECT
)

// TestIA32Syscalls: a 64-bit member making its calls through int $0x80
// (ia32 emulation, which the kernel decodes with i386 numbers). Before,
// the sensor dropped every call with TS_COMPAT, so an agent could open,
// create, chmod, rename, delete and connect unseen. Each is now reported
// like its x86-64 twin, labelled ia32.
func TestIA32Syscalls(t *testing.T) {
	if _, err := os.Stat("/proc/sys/abi/vsyscall32"); err != nil {
		t.Skip("no ia32 emulation in this kernel")
	}
	e := newEnv(t)
	dst := listenInet(t, unix.SOCK_STREAM)
	dir, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	r, evs := e.runMember(t, "ia32", dir, strconv.Itoa(int(dst.Port())))
	if r.Extra["ia32"] == "off" {
		t.Skip("this machine does not run int $0x80 system calls (ia32 emulation off, or the entry faults): the matrix guests cover them")
	}
	if r.Errno != 0 {
		t.Fatalf("member: %+v", r)
	}
	a, b := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	type want struct {
		kind    sensor.Kind
		path    string
		newPath string
	}
	var files []want
	var conns []*sensor.Connect
	for _, ev := range evs {
		switch {
		case ev.File != nil:
			if filepath.Dir(ev.File.Path) != dir {
				continue // the member's runtime at start
			}
			if !ev.File.IA32 {
				t.Errorf("%s %q not labelled ia32", ev.Kind, ev.File.Path)
			}
			files = append(files, want{ev.Kind, ev.File.Path, ev.File.NewPath})
		case ev.Connect != nil:
			conns = append(conns, ev.Connect)
		}
	}
	wantFiles := []want{
		{sensor.KindOpen, a, ""},
		{sensor.KindChmod, a, ""},
		{sensor.KindRename, a, b},
		{sensor.KindOpen, b, ""},
		{sensor.KindUnlink, b, ""},
	}
	if fmt.Sprint(files) != fmt.Sprint(wantFiles) {
		t.Errorf("file records %v\nwant %v", files, wantFiles)
	}
	// A connect made through int $0x80 can be interrupted and restarted:
	// the member's Go runtime does not know the raw int $0x80 is a system
	// call, so a connect that waits for the handshake more than ~10ms
	// (common under qemu's emulation) gets the runtime's preemption
	// signal (SIGURG). The wait returns -ERESTARTSYS, the kernel runs the
	// handler (installed SA_RESTART) and executes int $0x80 again, so the
	// sensor sees two exits of the one connect, the first with the
	// kernel-internal -512, both on the same local address. This is not
	// a kernel version difference: the matrix saw it on 5.10 in one run
	// and on 6.1 and 6.12 in the next. The interrupted attempt stays
	// reported (without SA_RESTART the caller gets EINTR while the
	// handshake goes on, and that record would be the only one); here it
	// must be followed by the completed call on the same socket.
	var done []*sensor.Connect
	for i, c := range conns {
		if c.Result == -errRestartSys && i+1 < len(conns) && conns[i+1].Src == c.Src && conns[i+1].Syscall == c.Syscall {
			t.Logf("connect %d interrupted and restarted: %+v", i, *c)
			if c.Op != sensor.NetConnect || c.Dst != dst || !c.IA32 || c.FromCaller {
				t.Errorf("interrupted connect %d: %+v, want %s over ia32", i, *c, dst)
			}
			continue
		}
		done = append(done, c)
	}
	if len(done) != 2 {
		t.Fatalf("%d completed connect records, want 2:\n%s", len(done), describe(conns))
	}
	for i, c := range done {
		sc := i == 1
		if c.Op != sensor.NetConnect || c.Dst != dst || c.Result != 0 || !c.IA32 || c.Socketcall != sc || c.FromCaller {
			t.Errorf("connect %d: %+v, want %s over ia32 (socketcall %v)", i, *c, dst, sc)
		}
	}
}

// ia32Calls runs in the member: args are a directory and a TCP port on
// 127.0.0.1. Everything the calls point at is below 4 GiB (MAP_32BIT).
func ia32Calls(args []string) (result, error) {
	port, _ := strconv.Atoi(args[1])
	if !testutil.IA32Works() {
		return result{Extra: map[string]string{"ia32": "off"}}, nil
	}
	mem, err := unix.Mmap(-1, 0, unix.Getpagesize(), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_32BIT)
	if err != nil {
		return result{}, err
	}
	at := 0
	put := func(b []byte) uintptr {
		p := uintptr(unsafe.Pointer(&mem[at]))
		at += copy(mem[at:], b)
		return p
	}
	cstr := func(s string) uintptr { return put(append([]byte(s), 0)) }
	a, b := cstr(filepath.Join(args[0], "a")), cstr(filepath.Join(args[0], "b"))
	errno := func(what string, r uintptr) error {
		if int32(r) < 0 {
			return fmt.Errorf("%s: %w", what, unix.Errno(-int32(r)))
		}
		return nil
	}
	fd := testutil.Int80(ia32Open, a, unix.O_CREAT|unix.O_WRONLY, 0o600, 0)
	if err := errno("open", fd); err != nil {
		return result{}, err
	}
	unix.Close(int(fd))
	if err := errno("chmod", testutil.Int80(ia32Chmod, a, 0o640, 0, 0)); err != nil {
		return result{}, err
	}
	if err := errno("rename", testutil.Int80(ia32Rename, a, b, 0, 0)); err != nil {
		return result{}, err
	}
	atFDCWD := uintptr(uint32(0xffffff9c)) // AT_FDCWD as a 32-bit int
	fd = testutil.Int80(ia32Openat, atFDCWD, b, unix.O_RDONLY, 0)
	if err := errno("openat", fd); err != nil {
		return result{}, err
	}
	unix.Close(int(fd))
	if err := errno("unlink", testutil.Int80(ia32Unlink, b, 0, 0, 0)); err != nil {
		return result{}, err
	}

	var sin [16]byte
	putSockaddr4(sin[:], netip.AddrPortFrom(netip.AddrFrom4(loopback), uint16(port)))
	sa := put(sin[:])
	s := testutil.Int80(ia32Socket, unix.AF_INET, unix.SOCK_STREAM, 0, 0)
	if err := errno("socket", s); err != nil {
		return result{}, err
	}
	if err := errno("connect", testutil.Int80(ia32Connect, s, sa, 16, 0)); err != nil {
		return result{}, err
	}
	s2 := testutil.Int80(ia32Socket, unix.AF_INET, unix.SOCK_STREAM, 0, 0)
	if err := errno("socket", s2); err != nil {
		return result{}, err
	}
	var argv [12]byte // socketcall's arguments: three 32-bit words
	*(*uint32)(unsafe.Pointer(&argv[0])) = uint32(s2)
	*(*uint32)(unsafe.Pointer(&argv[4])) = uint32(sa)
	*(*uint32)(unsafe.Pointer(&argv[8])) = 16
	if err := errno("socketcall connect", testutil.Int80(ia32Socketcall, sysConnect, put(argv[:]), 0, 0)); err != nil {
		return result{}, err
	}
	return result{}, nil
}
