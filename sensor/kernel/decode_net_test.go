//go:build linux && (386 || amd64 || arm64)

package kernel

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
	"unsafe"

	"github.com/lineaged/lineaged/sensor"
	"golang.org/x/sys/unix"
)

func TestNetWireLayout(t *testing.T) {
	var c fileioConnectEvent
	for _, tc := range []struct {
		name      string
		got, want uintptr
	}{
		{"op", unsafe.Offsetof(c.Op), connOffOp},
		{"nflags", unsafe.Offsetof(c.Nflags), connOffNflags},
		{"syscall", unsafe.Offsetof(c.Syscall), connOffSyscall},
		{"path_len", unsafe.Offsetof(c.PathLen), connOffPathLen},
		{"count", unsafe.Offsetof(c.Count), connOffCount},
		{"path", unsafe.Offsetof(c.Path), connOffPath},
		{"path size", unsafe.Sizeof(c.Path), netPathMax},
		{"size", unsafe.Sizeof(c), connectSize},
	} {
		if tc.got != tc.want {
			t.Errorf("%s: generated layout says %d, decoder uses %d", tc.name, tc.got, tc.want)
		}
	}
}

func TestDecodeNetOps(t *testing.T) {
	path := func(s string) (b [256]int8) {
		for i, c := range []byte(s) {
			b[i] = int8(c)
		}
		return
	}
	for _, tc := range []struct {
		name string
		r    fileioConnectEvent
		want sensor.Connect
	}{
		{
			name: "unix connect, walked path",
			r:    fileioConnectEvent{Family: unix.AF_UNIX, SockType: unix.SOCK_STREAM, SkFamily: unix.AF_UNIX, Syscall: 42, PathLen: 16, Path: path("/run/docker.sock")},
			want: sensor.Connect{Family: unix.AF_UNIX, SockType: unix.SOCK_STREAM, Syscall: 42, Path: "/run/docker.sock"},
		},
		{
			name: "abstract, as bound",
			r:    fileioConnectEvent{Family: unix.AF_UNIX, SockType: unix.SOCK_STREAM, Nflags: netAbstract | netPathAsGiven, Syscall: 42, PathLen: 4, Path: path("a\x00bc")},
			want: sensor.Connect{Family: unix.AF_UNIX, SockType: unix.SOCK_STREAM, Syscall: 42, Path: "a\x00bc", Abstract: true, PathAsGiven: true},
		},
		{
			name: "raced tcp connect over ia32 socketcall",
			r: fileioConnectEvent{Family: unix.AF_INET, Protocol: unix.IPPROTO_TCP, SockType: unix.SOCK_STREAM, SkFamily: unix.AF_INET, Dport: 80, Sport: 5000,
				Result: -int32(unix.EINPROGRESS), Nflags: netRewritten | netUnreadable | netIA32 | netSocketcall, Syscall: 102,
				Daddr: [16]uint8{127, 0, 0, 1}, Saddr: [16]uint8{127, 0, 0, 1}},
			want: sensor.Connect{Family: unix.AF_INET, Protocol: unix.IPPROTO_TCP, SockType: unix.SOCK_STREAM, Result: -int32(unix.EINPROGRESS),
				Dst: netip.MustParseAddrPort("127.0.0.1:80"), Src: netip.MustParseAddrPort("127.0.0.1:5000"),
				Rewritten: true, Unreadable: true, IA32: true, Socketcall: true, Syscall: 102},
		},
		{
			name: "sendmmsg udp from the caller",
			r: fileioConnectEvent{Op: uint16(sensor.NetSend), Family: unix.AF_INET, Protocol: unix.IPPROTO_UDP, SockType: unix.SOCK_DGRAM, Dport: 53,
				Result: 2, Count: 2, Nflags: netFromCaller, Syscall: 307, Daddr: [16]uint8{9, 9, 9, 9}},
			want: sensor.Connect{Op: sensor.NetSend, Family: unix.AF_INET, Protocol: unix.IPPROTO_UDP, SockType: unix.SOCK_DGRAM,
				Dst: netip.MustParseAddrPort("9.9.9.9:53"), Result: 2, Count: 2, FromCaller: true, Syscall: 307},
		},
		{
			name: "listen",
			r: fileioConnectEvent{Op: uint16(sensor.NetListen), Family: unix.AF_INET6, Protocol: unix.IPPROTO_TCP, SockType: unix.SOCK_STREAM, SkFamily: unix.AF_INET6,
				Sport: 8080, Count: 128, Syscall: 50},
			want: sensor.Connect{Op: sensor.NetListen, Family: unix.AF_INET6, Protocol: unix.IPPROTO_TCP, SockType: unix.SOCK_STREAM,
				Src: netip.MustParseAddrPort("[::]:8080"), Count: 128, Syscall: 50},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := tc.r
			setHdr(&r, sensor.KindConnect)
			var ev sensor.Event
			if err := decodeFileIO(connRec(t, r), &ev); err != nil {
				t.Fatal(err)
			}
			if *ev.Connect != tc.want {
				t.Fatalf("connect = %+v\nwant %+v", *ev.Connect, tc.want)
			}
		})
	}
}

func TestDecodeNetErrors(t *testing.T) {
	base := fileioConnectEvent{Family: unix.AF_UNIX}
	setHdr(&base, sensor.KindConnect)
	for _, tc := range []struct {
		name string
		mod  func(*fileioConnectEvent)
		want string
	}{
		{"op", func(r *fileioConnectEvent) { r.Op = 9 }, "operation 9"},
		{"flags", func(r *fileioConnectEvent) { r.Nflags = 1 << 12 }, "flags 0x1000"},
		{"path length", func(r *fileioConnectEvent) { r.PathLen = 257 }, "path length 257"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := base
			tc.mod(&r)
			var ev sensor.Event
			err := decodeFileIO(connRec(t, r), &ev)
			if !errors.Is(err, ErrRecord) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want ErrRecord mentioning %q", err, tc.want)
			}
		})
	}
}

func TestDecodeFileIA32(t *testing.T) {
	var r fileioFileEvent
	setHdr(&r, sensor.KindUnlink)
	r.Syscall = 87 | fileSyscallIA32
	var ev sensor.Event
	if err := decodeFileIO(fileRec(t, r, "/tmp/x", ""), &ev); err != nil {
		t.Fatal(err)
	}
	if !ev.File.IA32 || ev.File.Op != sensor.FileUnlink {
		t.Fatalf("file = %+v, want an ia32 unlink", *ev.File)
	}
	r.Syscall = 87
	if err := decodeFileIO(fileRec(t, r, "/tmp/x", ""), &ev); err != nil || ev.File.IA32 {
		t.Fatalf("x86-64 unlink decoded as %+v, %v", ev.File, err)
	}
}
