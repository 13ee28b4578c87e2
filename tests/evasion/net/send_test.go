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
	"golang.org/x/sys/unix"
)

var loopback = [4]byte{127, 0, 0, 1}

// TestAddressedSends: data sent without connect(2). Unconnected UDP by
// sendto, sendmsg and sendmmsg, an AF_UNIX datagram to a named socket, and
// TCP Fast Open (sendto with MSG_FASTOPEN, which opens a connection that
// carries data). Each is a net.send record naming the destination; a send
// on a connected socket is not (its connect was), nor is a socket's send to
// the destination its previous send named, while one to another is.
func TestAddressedSends(t *testing.T) {
	e := newEnv(t)
	udp := listenInet(t, unix.SOCK_DGRAM)
	udp2 := listenInet(t, unix.SOCK_DGRAM)
	tcp := listenInet(t, unix.SOCK_STREAM)
	dir, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	dgram := filepath.Join(dir, "log.sock")
	ufd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(ufd) })
	if err := unix.Bind(ufd, &unix.SockaddrUnix{Name: dgram}); err != nil {
		t.Fatal(err)
	}

	_, evs := e.runMember(t, "send", strconv.Itoa(int(udp.Port())), strconv.Itoa(int(tcp.Port())), dgram, strconv.Itoa(int(udp2.Port())))
	cs := netRecords(evs)
	var sends []*sensor.Connect
	for _, c := range cs {
		if c.Op == sensor.NetSend {
			sends = append(sends, c)
		}
	}
	want := []struct {
		name     string
		nr       uint16
		dst      netip.AddrPort
		path     string
		caller   bool
		fastopen bool
		count    uint32
	}{
		{"sendto udp", unix.SYS_SENDTO, udp, "", true, false, 0},
		{"sendmsg udp", unix.SYS_SENDMSG, udp, "", true, false, 0},
		{"sendmmsg udp", unix.SYS_SENDMMSG, udp, "", true, false, 2},
		{"sendto udp, another destination", unix.SYS_SENDTO, udp2, "", true, false, 0},
		{"sendto unix dgram", unix.SYS_SENDTO, netip.AddrPort{}, dgram, true, false, 0},
		{"fast open", unix.SYS_SENDTO, tcp, "", false, true, 0},
	}
	if len(sends) != len(want) {
		t.Fatalf("%d send records, want %d:\n%s", len(sends), len(want), describe(cs))
	}
	for i, w := range want {
		c := sends[i]
		if c.Syscall != w.nr || c.Dst != w.dst || c.Path != w.path || c.FromCaller != w.caller || c.FastOpen != w.fastopen ||
			c.Count != w.count || c.Result < 0 || c.Rewritten {
			t.Errorf("%s: %+v\nwant syscall %d dst %v path %q from-caller %v fastopen %v count %d", w.name, *c, w.nr, w.dst, w.path, w.caller, w.fastopen, w.count)
		}
	}
	if w := want[5]; sends[5].Protocol != unix.IPPROTO_TCP || !sends[5].Src.IsValid() {
		t.Errorf("%s: protocol %d src %v, want TCP from a bound port", w.name, sends[5].Protocol, sends[5].Src)
	}
}

// TestListen: an agent opening a listening port (and a listening AF_UNIX
// socket) is a net.listen record with the local address.
func TestListen(t *testing.T) {
	e := newEnv(t)
	dir, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "agent.sock")
	r, evs := e.runMember(t, "listen", path)
	port, _ := strconv.Atoi(r.Extra["port"])
	var ls []*sensor.Connect
	for _, c := range netRecords(evs) {
		if c.Op == sensor.NetListen {
			ls = append(ls, c)
		}
	}
	if len(ls) != 2 {
		t.Fatalf("%d listen records, want 2:\n%s", len(ls), describe(netRecords(evs)))
	}
	if c := ls[0]; c.Family != unix.AF_INET || c.Src != netip.AddrPortFrom(netip.AddrFrom4(loopback), uint16(port)) || c.Count != 7 || c.Result != 0 || c.Protocol != unix.IPPROTO_TCP {
		t.Errorf("tcp listen: %+v, want 127.0.0.1:%d backlog 7", *c, port)
	}
	if c := ls[1]; c.Family != unix.AF_UNIX || c.Path != path || !c.PathAsGiven || c.Count != 3 || c.Result != 0 {
		t.Errorf("unix listen: %+v, want %s backlog 3", *c, path)
	}
}

// listenInet binds a socket of typ on 127.0.0.1 in the test process (not a
// member); a stream socket listens and accepts Fast Open.
func listenInet(t *testing.T, typ int) netip.AddrPort {
	t.Helper()
	fd, err := unix.Socket(unix.AF_INET, typ, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: loopback}); err != nil {
		t.Fatal(err)
	}
	if typ == unix.SOCK_STREAM {
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_FASTOPEN, 16); err != nil {
			t.Fatal(err)
		}
		if err := unix.Listen(fd, 16); err != nil {
			t.Fatal(err)
		}
	}
	sa, err := unix.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	return netip.AddrPortFrom(netip.AddrFrom4(loopback), uint16(sa.(*unix.SockaddrInet4).Port))
}

// addressedSends runs in the member: args are the UDP port, the TCP port,
// the AF_UNIX datagram socket's path and a second UDP port.
func addressedSends(args []string) (result, error) {
	udpPort, _ := strconv.Atoi(args[0])
	tcpPort, _ := strconv.Atoi(args[1])
	udp2Port, _ := strconv.Atoi(args[3])
	to := &unix.SockaddrInet4{Addr: loopback, Port: udpPort}
	var us [3]int
	for i := range us {
		u, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM, 0)
		if err != nil {
			return result{}, err
		}
		us[i] = u
	}
	if err := unix.Sendto(us[0], []byte("sendto"), 0, to); err != nil {
		return result{}, fmt.Errorf("sendto: %w", err)
	}
	if _, err := unix.SendmsgN(us[1], []byte("sendmsg"), nil, to, 0); err != nil {
		return result{}, fmt.Errorf("sendmsg: %w", err)
	}
	if err := sendmmsg(us[2], udpPort); err != nil {
		return result{}, fmt.Errorf("sendmmsg: %w", err)
	}
	// The same socket to the same destination again: not reported; to
	// another: reported.
	for range 3 {
		if err := unix.Sendto(us[0], []byte("again"), 0, to); err != nil {
			return result{}, fmt.Errorf("sendto: %w", err)
		}
	}
	if err := unix.Sendto(us[0], []byte("elsewhere"), 0, &unix.SockaddrInet4{Addr: loopback, Port: udp2Port}); err != nil {
		return result{}, fmt.Errorf("sendto: %w", err)
	}
	// A connected UDP socket's sends name nothing: no record.
	c, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM, 0)
	if err != nil {
		return result{}, err
	}
	if err := unix.Connect(c, to); err != nil {
		return result{}, err
	}
	if _, err := unix.Write(c, []byte("connected")); err != nil {
		return result{}, err
	}
	if err := unix.Sendto(c, []byte("connected"), 0, nil); err != nil {
		return result{}, err
	}
	d, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM, 0)
	if err != nil {
		return result{}, err
	}
	if err := unix.Sendto(d, []byte("<13>log"), 0, &unix.SockaddrUnix{Name: args[2]}); err != nil {
		return result{}, fmt.Errorf("unix sendto: %w", err)
	}
	f, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM, 0)
	if err != nil {
		return result{}, err
	}
	if err := unix.Sendto(f, []byte("fast open"), unix.MSG_FASTOPEN, &unix.SockaddrInet4{Addr: loopback, Port: tcpPort}); err != nil {
		return result{}, fmt.Errorf("sendto MSG_FASTOPEN: %w", err)
	}
	return result{}, nil
}

// sendmmsg sends two datagrams to 127.0.0.1:port in one call.
func sendmmsg(fd, port int) error {
	var name [16]byte
	putSockaddr4(name[:], netip.AddrPortFrom(netip.AddrFrom4(loopback), uint16(port)))
	payload := []byte("sendmmsg")
	iov := unix.Iovec{Base: &payload[0]}
	iov.SetLen(len(payload))
	var msgs [2]unix.Mmsghdr
	for i := range msgs {
		msgs[i].Hdr.Name = &name[0]
		msgs[i].Hdr.Namelen = uint32(len(name))
		msgs[i].Hdr.Iov = &iov
		msgs[i].Hdr.SetIovlen(1)
	}
	n, _, errno := unix.Syscall6(unix.SYS_SENDMMSG, uintptr(fd), uintptr(unsafe.Pointer(&msgs[0])), 2, 0, 0, 0)
	if errno != 0 {
		return errno
	}
	if n != 2 {
		return fmt.Errorf("%d messages sent, want 2", n)
	}
	return nil
}

// listens runs in the member: a TCP listener on 127.0.0.1 (backlog 7) and
// an AF_UNIX one at args[0] (backlog 3).
func listens(args []string) (result, error) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM, 0)
	if err != nil {
		return result{}, err
	}
	if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: loopback}); err != nil {
		return result{}, err
	}
	if err := unix.Listen(fd, 7); err != nil {
		return result{}, err
	}
	sa, err := unix.Getsockname(fd)
	if err != nil {
		return result{}, err
	}
	u, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM, 0)
	if err != nil {
		return result{}, err
	}
	if err := unix.Bind(u, &unix.SockaddrUnix{Name: args[0]}); err != nil {
		return result{}, err
	}
	if err := unix.Listen(u, 3); err != nil {
		return result{}, err
	}
	os.Remove(args[0])
	return result{Extra: map[string]string{"port": strconv.Itoa(sa.(*unix.SockaddrInet4).Port)}}, nil
}
