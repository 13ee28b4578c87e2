package lineage

import (
	"net/netip"
	"reflect"
	"syscall"
	"testing"

	"github.com/lineaged/lineaged/lineage/event"
	"github.com/lineaged/lineaged/sensor"
)

func TestMapNetOps(t *testing.T) {
	for _, tc := range []struct {
		name string
		c    sensor.Connect
		kind string
		want event.Net
	}{
		{
			name: "connect from before the network operations",
			c:    sensor.Connect{Protocol: syscall.IPPROTO_TCP, Family: syscall.AF_INET, Dst: netip.MustParseAddrPort("10.0.0.1:443")},
			kind: event.KindNetConnect,
			want: event.Net{Protocol: "tcp", Family: "ipv4", DstIP: "10.0.0.1", DstPort: 443},
		},
		{
			name: "raced connect",
			c: sensor.Connect{Protocol: syscall.IPPROTO_TCP, Family: syscall.AF_INET, SockType: syscall.SOCK_STREAM, Syscall: 42,
				Dst: netip.MustParseAddrPort("10.0.0.1:443"), Result: -115, Rewritten: true},
			kind: event.KindNetConnect,
			want: event.Net{Protocol: "tcp", Family: "ipv4", DstIP: "10.0.0.1", DstPort: 443, Result: -115, SocketType: "stream", DstSource: "socket", DstRewritten: true},
		},
		{
			name: "docker socket over ia32",
			c:    sensor.Connect{Family: syscall.AF_UNIX, SockType: syscall.SOCK_STREAM, Syscall: 362, IA32: true, Path: "/run/docker.sock"},
			kind: event.KindNetConnect,
			want: event.Net{Protocol: "unix", Family: "unix", SocketType: "stream", UnixPath: "/run/docker.sock", DstSource: "socket", SyscallABI: "ia32"},
		},
		{
			name: "sendmmsg",
			c: sensor.Connect{Op: sensor.NetSend, Protocol: syscall.IPPROTO_UDP, Family: syscall.AF_INET, SockType: syscall.SOCK_DGRAM, Syscall: 307,
				Dst: netip.MustParseAddrPort("9.9.9.9:53"), Result: 2, Count: 2, FromCaller: true},
			kind: event.KindNetSend,
			want: event.Net{Protocol: "udp", Family: "ipv4", DstIP: "9.9.9.9", DstPort: 53, SocketType: "dgram", DstSource: "caller", Messages: 2},
		},
		{
			name: "listen",
			c: sensor.Connect{Op: sensor.NetListen, Protocol: syscall.IPPROTO_TCP, Family: syscall.AF_INET, SockType: syscall.SOCK_STREAM, Syscall: 50,
				Src: netip.MustParseAddrPort("0.0.0.0:8080"), Count: 128},
			kind: event.KindNetListen,
			want: event.Net{Protocol: "tcp", Family: "ipv4", SrcIP: "0.0.0.0", SrcPort: 8080, SocketType: "stream", Backlog: 128},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := tc.c
			var out event.Event
			if !mapKind(sensor.Event{Header: sensor.Header{Kind: sensor.KindConnect}, Connect: &c}, &out) {
				t.Fatal("not mapped")
			}
			if out.Kind != tc.kind || !reflect.DeepEqual(*out.Net, tc.want) {
				t.Fatalf("%s %+v\nwant %s %+v", out.Kind, *out.Net, tc.kind, tc.want)
			}
		})
	}
}
