//go:build linux && amd64

package net

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"runtime"
	"slices"
	"testing"
	"time"
	"unsafe"

	"github.com/lineaged/lineaged/sensor"
	"golang.org/x/sys/unix"
)

// The decoy a racing thread writes over the sockaddr of a blocking
// connect: TEST-NET-3, never connected to.
var decoy = netip.MustParseAddrPort("203.0.113.9:4444")

// TestRaceConnect: a member's blocking TCP connect whose sockaddr a sibling
// thread rewrites while the connect waits (to a decoy address, to another
// family, or by dropping the page with MADV_DONTNEED). Before the
// destination came from the socket, the record showed the decoy, or no
// record came at all. Now it names the destination the kernel used and
// says the caller's memory was changed.
func TestRaceConnect(t *testing.T) {
	e := newEnv(t)
	for _, variant := range []string{"rewrite", "family", "dontneed", "signal"} {
		t.Run(variant, func(t *testing.T) {
			r, evs := e.runMember(t, "race", variant)
			real := netip.MustParseAddrPort(r.Real)
			cs := netRecords(evs)
			var found bool
			for _, c := range cs {
				if c.Dst == decoy {
					t.Errorf("a record names the decoy %s the racing thread wrote: %+v", decoy, *c)
				}
				if c.FDChanged {
					t.Errorf("no descriptor changed, and a record says one did: %+v", *c)
				}
				if c.Op != 0 || c.Src.Port() == 0 || c.Dst != real {
					continue // the member's own listener and queue filler
				}
				if c.Result != -int32(unix.EINPROGRESS) || r.Errno != int(unix.EINPROGRESS) {
					continue
				}
				found = true
				if c.FromCaller || !c.Rewritten {
					t.Errorf("connect to %s: from caller %v, rewritten %v; want the socket's destination, flagged as rewritten", real, c.FromCaller, c.Rewritten)
				}
				if variant == "dontneed" && !c.Rewritten {
					t.Errorf("dropped page not flagged: %+v", *c)
				}
			}
			if variant == "signal" {
				// With a send timeout the interrupted connect fails with
				// EINTR (without one the kernel restarts it: -ERESTARTSYS
				// at the tracepoint); the connection goes on either way.
				if !slices.ContainsFunc(cs, func(c *sensor.Connect) bool {
					return (c.Result == -int32(unix.EINTR) || c.Result == -errRestartSys) && c.Dst == real && c.Rewritten && !c.FromCaller
				}) {
					t.Errorf("no record of the connect the signal interrupted naming %s; records:\n%s", real, describe(cs))
				}
				return
			}
			if !found {
				t.Fatalf("no connect record of the raced connect to %s (EINPROGRESS after its send timeout); records:\n%s", real, describe(cs))
			}
		})
	}
}

// TestRaceConnectDescriptorSwap: while a member's blocking connect waits,
// a sibling thread connects a socket of its own to a benign listener,
// dup2s it onto the connecting descriptor's number and writes the benign
// address over the sockaddr. The sensor reads the socket by that number
// at exit: the record of the raced connect names the benign destination,
// the caller's memory agrees, and nothing said so. Now the record says
// the descriptor changed during the call.
func TestRaceConnectDescriptorSwap(t *testing.T) {
	e := newEnv(t)
	r, evs := e.runMember(t, "race", "swap")
	benign := netip.MustParseAddrPort(r.Decoy)
	cs := netRecords(evs)
	var raced, decoyOwn int
	for _, c := range cs {
		if c.Op != 0 || c.Src.Port() == 0 {
			continue // listeners and the queue filler
		}
		switch {
		case c.Result == -int32(unix.EINPROGRESS):
			// The raced connect (the decoy's own connect succeeds at once).
			raced++
			if !c.FDChanged {
				t.Errorf("the raced connect's record names %s and does not say its descriptor changed: %+v", c.Dst, *c)
			}
		case c.Dst == benign && c.Result == 0:
			decoyOwn++
			if c.FDChanged {
				t.Errorf("the decoy's own connect flagged: %+v", *c)
			}
		}
	}
	if raced != 1 || decoyOwn != 1 || r.Errno != int(unix.EINPROGRESS) {
		t.Fatalf("%d records of the raced connect, %d of the decoy's (errno %d); records:\n%s", raced, decoyOwn, r.Errno, describe(cs))
	}
}

// errRestartSys is the kernel-internal ERESTARTSYS a blocking call
// interrupted by a signal returns at the syscall-exit tracepoint, before the
// kernel restarts it.
const errRestartSys = 512

// raceConnect runs in the member. A listener whose accept queue is full
// drops the SYN, so a blocking connect waits until its send timeout and
// returns EINPROGRESS with the socket holding the real destination; a
// sibling thread changes the sockaddr during that wait.
func raceConnect(variant string) (result, error) {
	real, err := listenLoopback(0)
	if err != nil {
		return result{}, err
	}
	port := int(real.Port())
	// Fill the accept queue (backlog 0 holds one connection).
	filler, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM, 0)
	if err != nil {
		return result{}, err
	}
	if err := unix.Connect(filler, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}, Port: port}); err != nil {
		return result{}, fmt.Errorf("queue filler: %w", err)
	}
	time.Sleep(50 * time.Millisecond) // the handshake completes in softirq

	// The sockaddr on a page of its own, so MADV_DONTNEED drops it.
	page, err := unix.Mmap(-1, 0, unix.Getpagesize(), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		return result{}, err
	}
	putSockaddr4(page, real)

	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM, 0)
	if err != nil {
		return result{}, err
	}
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_SNDTIMEO, &unix.Timeval{Usec: 600_000}); err != nil {
		return result{}, err
	}
	// For "swap", a listener that accepts: the sibling's decoy socket
	// connects there before it takes the connecting descriptor's number.
	benign := decoy
	if variant == "swap" {
		if benign, err = listenLoopback(8); err != nil {
			return result{}, err
		}
	}
	raced := make(chan struct{})
	tid := make(chan int, 1)
	var raceErr error
	go func() {
		defer close(raced)
		connecting := <-tid
		time.Sleep(150 * time.Millisecond) // the connect is waiting by now
		switch variant {
		case "rewrite":
			putSockaddr4(page, decoy)
		case "signal":
			// Rewrite, then interrupt the connect: the kernel restarts it.
			putSockaddr4(page, decoy)
			unix.Tgkill(unix.Getpid(), connecting, unix.SIGURG)
		case "family":
			binary.LittleEndian.PutUint16(page, unix.AF_UNIX)
		case "dontneed":
			unix.Madvise(page, unix.MADV_DONTNEED)
		case "swap":
			// A socket connected to the benign listener takes the
			// descriptor's number, and the sockaddr names it too: read
			// by its number at exit, the connect looks like this one.
			ds, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM, 0)
			if err == nil {
				err = unix.Connect(ds, &unix.SockaddrInet4{Addr: benign.Addr().As4(), Port: int(benign.Port())})
			}
			if err == nil {
				putSockaddr4(page, benign)
				err = unix.Dup3(ds, fd, 0)
			}
			raceErr = err
		}
	}()
	runtime.LockOSThread()
	tid <- unix.Gettid()
	_, _, errno := unix.Syscall(unix.SYS_CONNECT, uintptr(fd), uintptr(unsafe.Pointer(&page[0])), 16)
	runtime.UnlockOSThread()
	<-raced
	if raceErr != nil {
		return result{}, fmt.Errorf("the racing thread: %w", raceErr)
	}
	return result{Real: real.String(), Decoy: benign.String(), Errno: int(errno)}, nil
}

// listenLoopback makes a TCP listener on 127.0.0.1 with backlog and
// returns its address (the member's: it lives until the member exits).
func listenLoopback(backlog int) (netip.AddrPort, error) {
	ln, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM, 0)
	if err != nil {
		return netip.AddrPort{}, err
	}
	if err := unix.Bind(ln, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		return netip.AddrPort{}, err
	}
	if err := unix.Listen(ln, backlog); err != nil {
		return netip.AddrPort{}, err
	}
	sa, err := unix.Getsockname(ln)
	if err != nil {
		return netip.AddrPort{}, err
	}
	return netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 0, 1}), uint16(sa.(*unix.SockaddrInet4).Port)), nil
}

// putSockaddr4 writes a struct sockaddr_in for a at b.
func putSockaddr4(b []byte, a netip.AddrPort) {
	binary.LittleEndian.PutUint16(b[0:], unix.AF_INET)
	binary.BigEndian.PutUint16(b[2:], a.Port())
	ip := a.Addr().As4()
	copy(b[4:8], ip[:])
	clear(b[8:16])
}
