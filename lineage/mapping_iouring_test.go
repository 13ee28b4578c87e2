package lineage

import (
	"net/netip"
	"reflect"
	"syscall"
	"testing"

	"github.com/lineaged/lineaged/lineage/event"
	"github.com/lineaged/lineaged/sensor"
)

func TestMapIOURing(t *testing.T) {
	i32 := func(v int32) *int32 { return &v }
	u32 := func(v uint32) *uint32 { return &v }
	for _, tc := range []struct {
		name string
		u    sensor.IOURing
		kind string
		want event.IOURing
	}{
		{
			name: "sqpoll setup over ia32",
			u:    sensor.IOURing{Op: sensor.IOURingSetup, Result: 4, Entries: 8, SetupFlags: sensor.IOURingSetupSQPoll, FD: -1, IA32: true},
			kind: event.KindIOURingSetup,
			want: event.IOURing{Result: 4, Entries: 8, SetupFlags: 2, SQPoll: true, SyscallABI: "ia32"},
		},
		{
			name: "openat as given",
			u: sensor.IOURing{Op: sensor.IOURingSubmit, Opcode: 18, FD: -100, DirFD: 3, Path: "etc/passwd", PathAsGiven: true,
				OpenFlags: syscall.O_CREAT | syscall.O_WRONLY, Mode: 0o600, UserData: 9, SQPoll: true},
			kind: event.KindIOURingSubmit,
			want: event.IOURing{Op: "openat", Opcode: 18, FD: i32(-100), DirFD: i32(3), Path: "etc/passwd", PathSource: event.PathSourceAsGiven,
				Flags: syscall.O_CREAT | syscall.O_WRONLY, Perm: u32(0o600), UserData: 9, SQPoll: true},
		},
		{
			name: "connect from the caller's sockaddr",
			u: sensor.IOURing{Op: sensor.IOURingSubmit, Opcode: 16, FD: 7, Family: syscall.AF_INET6,
				Addr: netip.MustParseAddrPort("[::ffff:10.0.0.1]:443"), AddrFromCaller: true},
			kind: event.KindIOURingSubmit,
			want: event.IOURing{Op: "connect", Opcode: 16, FD: i32(7), Family: "ipv6", DstIP: "10.0.0.1", DstPort: 443, DstSource: "caller"},
		},
		{
			name: "connect to a unix socket",
			u:    sensor.IOURing{Op: sensor.IOURingSubmit, Opcode: 16, FD: 7, Family: syscall.AF_UNIX, Path: "/run/docker.sock", AddrFromCaller: true},
			kind: event.KindIOURingSubmit,
			want: event.IOURing{Op: "connect", Opcode: 16, FD: i32(7), Family: "unix", UnixPath: "/run/docker.sock", DstSource: "caller"},
		},
		{
			name: "send on an old kernel",
			u:    sensor.IOURing{Op: sensor.IOURingSubmit, Opcode: 26, FD: -1, Unprepared: true, SendUnknown: true},
			kind: event.KindIOURingSubmit,
			want: event.IOURing{Op: "send", Opcode: 26, Unprepared: true, SendUnknown: true},
		},
		{
			name: "fixed file",
			u:    sensor.IOURing{Op: sensor.IOURingSubmit, Opcode: 46, FD: 0, FixedFile: true},
			kind: event.KindIOURingSubmit,
			want: event.IOURing{Op: "uring_cmd", Opcode: 46, FD: i32(0), FixedFile: true},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u := tc.u
			var out event.Event
			if !mapKind(sensor.Event{Header: sensor.Header{Kind: sensor.KindIOURing}, IOURing: &u}, &out) {
				t.Fatal("not mapped")
			}
			if out.Kind != tc.kind || !reflect.DeepEqual(*out.IOURing, tc.want) {
				t.Errorf("got %s %+v\nwant %s %+v", out.Kind, *out.IOURing, tc.kind, tc.want)
			}
		})
	}
	var out event.Event
	if mapKind(sensor.Event{Header: sensor.Header{Kind: sensor.KindIOURing}}, &out) {
		t.Error("an io_uring record without its payload was mapped")
	}
}
