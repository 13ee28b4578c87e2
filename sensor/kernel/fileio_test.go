//go:build linux && (386 || amd64 || arm64)

package kernel

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net/netip"
	"strings"
	"testing"
	"unsafe"

	"github.com/lineaged/lineaged/sensor"
	"golang.org/x/sys/unix"
)

func TestFileIOWireLayout(t *testing.T) {
	var f fileioFileEvent
	var c fileioConnectEvent
	for _, tc := range []struct {
		name      string
		got, want uintptr
	}{
		{"header", unsafe.Sizeof(f.Hdr), headerSize},
		{"file fixed", unsafe.Offsetof(f.Data), fileFixedSize},
		{"file result", unsafe.Offsetof(f.Result), fileOffResult},
		{"file flags", unsafe.Offsetof(f.Flags), fileOffFlags},
		{"file mode", unsafe.Offsetof(f.Mode), fileOffMode},
		{"file fmode", unsafe.Offsetof(f.Fmode), fileOffFmode},
		{"file path_len", unsafe.Offsetof(f.PathLen), fileOffPathLen},
		{"file new_path_len", unsafe.Offsetof(f.NewPathLen), fileOffNewLen},
		{"file syscall", unsafe.Offsetof(f.Syscall), fileOffSyscall},
		{"file fflags", unsafe.Offsetof(f.Fflags), fileOffFflags},
		{"file data", unsafe.Sizeof(f.Data), 2*filePathMax + 2*fileRawMax},
		{"file xflags", unsafe.Offsetof(f.Xflags), fileOffXflags},
		{"file split", unsafe.Offsetof(f.Split), fileOffSplit},
		{"file new_split", unsafe.Offsetof(f.NewSplit), fileOffNewSplit},
		{"file raw_len", unsafe.Offsetof(f.RawLen), fileOffRawLen},
		{"file new_raw_len", unsafe.Offsetof(f.NewRawLen), fileOffNewRawLen},
		{"file ino", unsafe.Offsetof(f.Ino), fileOffIno},
		{"file dev", unsafe.Offsetof(f.Dev), fileOffDev},
		{"file mnt_id", unsafe.Offsetof(f.MntId), fileOffMntID},
		{"connect size", unsafe.Sizeof(c), connectSize},
		{"connect result", unsafe.Offsetof(c.Result), connOffResult},
		{"connect family", unsafe.Offsetof(c.Family), connOffFamily},
		{"connect protocol", unsafe.Offsetof(c.Protocol), connOffProtocol},
		{"connect sock_type", unsafe.Offsetof(c.SockType), connOffSockType},
		{"connect dport", unsafe.Offsetof(c.Dport), connOffDport},
		{"connect sport", unsafe.Offsetof(c.Sport), connOffSport},
		{"connect sk_family", unsafe.Offsetof(c.SkFamily), connOffSkFamily},
		{"connect daddr", unsafe.Offsetof(c.Daddr), connOffDaddr},
		{"connect saddr", unsafe.Offsetof(c.Saddr), connOffSaddr},
		{"header ktime", unsafe.Offsetof(f.Hdr.Ktime), 8},
		{"header pid", unsafe.Offsetof(f.Hdr.Pid), 16},
		{"header start_ns", unsafe.Offsetof(f.Hdr.StartNs), 24},
		{"header session_start", unsafe.Offsetof(f.Hdr.SessionStart), 40},
	} {
		if tc.got != tc.want {
			t.Errorf("%s: generated layout says %d, decoder uses %d", tc.name, tc.got, tc.want)
		}
	}
}

// fileRec builds a file record the way the kernel does: the fixed part and
// only the used bytes of data.
func fileRec(t testing.TB, r fileioFileEvent, path, newPath string) []byte {
	t.Helper()
	r.PathLen = uint16(len(path))
	r.NewPathLen = uint16(len(newPath))
	for i, c := range []byte(path + newPath) {
		r.Data[i] = int8(c)
	}
	var buf bytes.Buffer
	if err := binary.Write(&buf, binary.LittleEndian, &r); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()[:fileFixedSize+len(path)+len(newPath)]
}

func connRec(t testing.TB, r fileioConnectEvent) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := binary.Write(&buf, binary.LittleEndian, &r); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// setHdr fills the header of either record the same way. The start times
// are exact kernel values; the decoder truncates them to clock ticks.
func setHdr(dst any, kind sensor.Kind) {
	set := func(k, agent *uint8, cpu *uint32, ktime *uint64, pid, tid *uint32, start *uint64, spid *uint32, sstart *uint64) {
		*k, *agent, *cpu, *ktime = uint8(kind), uint8(sensor.AgentClaudeCode), 1, 123_456_789
		*pid, *tid, *start = 4242, 4243, 5_000_001_234
		*spid, *sstart = 4000, 3_000_000_099
	}
	switch r := dst.(type) {
	case *fileioFileEvent:
		h := &r.Hdr
		set(&h.Kind, &h.Agent, &h.Cpu, &h.Ktime, &h.Pid, &h.Tid, &h.StartNs, &h.SessionPid, &h.SessionStart)
	case *fileioConnectEvent:
		h := &r.Hdr
		set(&h.Kind, &h.Agent, &h.Cpu, &h.Ktime, &h.Pid, &h.Tid, &h.StartNs, &h.SessionPid, &h.SessionStart)
	}
}

func TestDecodeFileIOHeader(t *testing.T) {
	var r fileioFileEvent
	setHdr(&r, sensor.KindOpen)
	var ev sensor.Event
	if err := decodeFileIO(fileRec(t, r, "/x", ""), &ev); err != nil {
		t.Fatal(err)
	}
	want := sensor.Header{
		Kind:    sensor.KindOpen,
		KtimeNs: 123_456_789,
		Proc:    sensor.ProcKey{PID: 4242, StartNs: 5_000_000_000},
		TID:     4243,
		CPU:     1,
		Session: sensor.SessionRef{Root: sensor.ProcKey{PID: 4000, StartNs: 3_000_000_000}, Agent: sensor.AgentClaudeCode},
	}
	if ev.Header != want {
		t.Fatalf("header = %+v, want %+v", ev.Header, want)
	}
}

func TestDecodeFileIOFile(t *testing.T) {
	long := "/" + strings.Repeat("d", 254) + "/" + strings.Repeat("e", 254) + "/f"
	odd := "/tmp/with space/new\nline/bad\xff\xfe"
	for _, tc := range []struct {
		name    string
		kind    sensor.Kind
		r       fileioFileEvent
		path    string
		newPath string
		want    sensor.File
		access  sensor.FileAccess
	}{
		{
			name:   "open created read-write",
			kind:   sensor.KindOpen,
			r:      fileioFileEvent{Result: 3, Flags: unix.O_CREAT | unix.O_RDWR, Mode: 0o644, Fflags: fileFlagCreated, Syscall: 257},
			path:   "/tmp/new",
			want:   sensor.File{Op: sensor.FileOpen, Path: "/tmp/new", Flags: unix.O_CREAT | unix.O_RDWR, Mode: 0o644, Created: true, Result: 3},
			access: sensor.AccessReadWrite,
		},
		{
			name:   "open long odd bytes",
			kind:   sensor.KindOpen,
			r:      fileioFileEvent{Result: 5},
			path:   long + odd,
			want:   sensor.File{Op: sensor.FileOpen, Path: long + odd, Result: 5},
			access: sensor.AccessRead,
		},
		{
			name:   "failed open unresolved",
			kind:   sensor.KindOpen,
			r:      fileioFileEvent{Result: -int32(unix.ENOENT), Flags: unix.O_WRONLY, Fflags: fileFlagUnres},
			path:   "/cwd/../missing",
			want:   sensor.File{Op: sensor.FileOpen, Path: "/cwd/../missing", Flags: unix.O_WRONLY, PathUnresolved: true, Result: -int32(unix.ENOENT)},
			access: sensor.AccessWrite,
		},
		{
			name: "O_PATH has no access",
			kind: sensor.KindOpen,
			r:    fileioFileEvent{Result: 3, Flags: unix.O_PATH | unix.O_RDWR},
			path: "/p",
			want: sensor.File{Op: sensor.FileOpen, Path: "/p", Flags: unix.O_PATH | unix.O_RDWR, Result: 3},
		},
		{
			name: "unlinkat removedir",
			kind: sensor.KindUnlink,
			r:    fileioFileEvent{Flags: unix.AT_REMOVEDIR, Fflags: fileFlagUnres | fileFlagTrunc},
			path: "/d",
			want: sensor.File{Op: sensor.FileUnlink, Path: "/d", Flags: unix.AT_REMOVEDIR, PathUnresolved: true, PathTruncated: true},
		},
		{
			name:    "rename exchange",
			kind:    sensor.KindRename,
			r:       fileioFileEvent{Flags: unix.RENAME_EXCHANGE, Fflags: fileFlagUnres | fileFlagNewUnres | fileFlagNewTrunc},
			path:    "/a b",
			newPath: odd,
			want:    sensor.File{Op: sensor.FileRename, Path: "/a b", NewPath: odd, Flags: unix.RENAME_EXCHANGE, PathUnresolved: true, PathTruncated: true},
		},
		{
			name: "chmod denied",
			kind: sensor.KindChmod,
			r:    fileioFileEvent{Mode: 0o4755, Result: -int32(unix.EPERM), Fflags: fileFlagUnres},
			path: "/etc/shadow",
			want: sensor.File{Op: sensor.FileChmod, Path: "/etc/shadow", Mode: 0o4755, PathUnresolved: true, Result: -int32(unix.EPERM)},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := tc.r
			setHdr(&r, tc.kind)
			var ev sensor.Event
			if err := decodeFileIO(fileRec(t, r, tc.path, tc.newPath), &ev); err != nil {
				t.Fatal(err)
			}
			if ev.File == nil || ev.Connect != nil {
				t.Fatalf("event = %+v, want only File", ev)
			}
			if *ev.File != tc.want {
				t.Fatalf("file = %+v\nwant %+v", *ev.File, tc.want)
			}
			if got := ev.File.Access(); got != tc.access {
				t.Fatalf("access = %q, want %q", got, tc.access)
			}
			if ev.Kind != tc.kind {
				t.Fatalf("kind = %s, want %s", ev.Kind, tc.kind)
			}
		})
	}
}

func TestDecodeFileIOConnect(t *testing.T) {
	v4 := func(a netip.Addr) (b [16]uint8) { copy(b[:], a.AsSlice()); return }
	for _, tc := range []struct {
		name string
		r    fileioConnectEvent
		want sensor.Connect
	}{
		{
			name: "tcp4",
			r: fileioConnectEvent{Family: unix.AF_INET, Protocol: unix.IPPROTO_TCP, Dport: 443, Sport: 50000, SkFamily: unix.AF_INET,
				Daddr: v4(netip.MustParseAddr("10.1.2.3")), Saddr: v4(netip.MustParseAddr("10.0.0.9"))},
			want: sensor.Connect{Protocol: unix.IPPROTO_TCP, Family: unix.AF_INET,
				Dst: netip.MustParseAddrPort("10.1.2.3:443"), Src: netip.MustParseAddrPort("10.0.0.9:50000")},
		},
		{
			name: "udp6 unbound refused",
			r: fileioConnectEvent{Family: unix.AF_INET6, Protocol: unix.IPPROTO_UDP, Dport: 53, SkFamily: unix.AF_INET6, Result: -int32(unix.ENETUNREACH),
				Daddr: v4(netip.MustParseAddr("2001:db8::1"))},
			want: sensor.Connect{Protocol: unix.IPPROTO_UDP, Family: unix.AF_INET6, Dst: netip.MustParseAddrPort("[2001:db8::1]:53"), Result: -int32(unix.ENETUNREACH)},
		},
		{
			name: "v4-mapped in progress",
			r: fileioConnectEvent{Family: unix.AF_INET6, Protocol: unix.IPPROTO_TCP, Dport: 80, Sport: 40000, SkFamily: unix.AF_INET6, Result: -int32(unix.EINPROGRESS),
				Daddr: v4(netip.MustParseAddr("::ffff:127.0.0.1")), Saddr: v4(netip.MustParseAddr("::ffff:127.0.0.1"))},
			want: sensor.Connect{Protocol: unix.IPPROTO_TCP, Family: unix.AF_INET6, Result: -int32(unix.EINPROGRESS),
				Dst: netip.MustParseAddrPort("[::ffff:127.0.0.1]:80"), Src: netip.MustParseAddrPort("[::ffff:127.0.0.1]:40000")},
		},
		{
			name: "mptcp is tcp; v4 sockaddr on a v6 socket",
			r: fileioConnectEvent{Family: unix.AF_INET, Protocol: ipprotoMPTCP, Dport: 22, Sport: 1, SkFamily: unix.AF_INET6,
				Daddr: v4(netip.MustParseAddr("192.0.2.1")), Saddr: v4(netip.MustParseAddr("::ffff:192.0.2.7"))},
			want: sensor.Connect{Protocol: unix.IPPROTO_TCP, Family: unix.AF_INET,
				Dst: netip.MustParseAddrPort("192.0.2.1:22"), Src: netip.MustParseAddrPort("[::ffff:192.0.2.7]:1")},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := tc.r
			setHdr(&r, sensor.KindConnect)
			var ev sensor.Event
			if err := decodeFileIO(connRec(t, r), &ev); err != nil {
				t.Fatal(err)
			}
			if ev.Connect == nil || ev.File != nil {
				t.Fatalf("event = %+v, want only Connect", ev)
			}
			if *ev.Connect != tc.want {
				t.Fatalf("connect = %+v\nwant %+v", *ev.Connect, tc.want)
			}
		})
	}
}

func TestDecodeFileIOErrors(t *testing.T) {
	var open fileioFileEvent
	setHdr(&open, sensor.KindOpen)
	good := fileRec(t, open, "/abc", "")
	var conn fileioConnectEvent
	setHdr(&conn, sensor.KindConnect)
	conn.Family = unix.AF_INET
	goodConn := connRec(t, conn)

	mut := func(b []byte, f func([]byte)) []byte {
		b = bytes.Clone(b)
		f(b)
		return b
	}
	for _, tc := range []struct {
		name string
		b    []byte
		want string
	}{
		{"empty", nil, "shorter than the 48-byte header"},
		{"header only", good[:headerSize], "need 96"},
		{"path past the end", good[:len(good)-1], "its paths need 100"},
		{"path too long", mut(good, func(b []byte) { binary.LittleEndian.PutUint16(b[fileOffPathLen:], filePathMax) }), "longer than 4095"},
		{"new path on open", mut(good, func(b []byte) { b[fileOffNewLen] = 1 }), "carries a new path"},
		{"process kind", mut(good, func(b []byte) { b[0] = uint8(sensor.KindExec) }), "not a file or network record"},
		{"unknown kind", mut(good, func(b []byte) { b[0] = 200 }), "kind 200"},
		{"short connect", goodConn[:connectSizeV0-1], "need 96"},
		{"between sizes", goodConn[:connectSize-1], "neither 96 nor 368"},
		{"other family", mut(goodConn, func(b []byte) { b[connOffFamily] = unix.AF_AX25 }), "neither AF_INET, AF_INET6 nor AF_UNIX"},
		{"huge protocol", mut(goodConn, func(b []byte) { binary.LittleEndian.PutUint16(b[connOffProtocol:], 300) }), "protocol 300"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var ev sensor.Event
			err := decodeFileIO(tc.b, &ev)
			if !errors.Is(err, ErrRecord) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want ErrRecord mentioning %q", err, tc.want)
			}
		})
	}
}

// FuzzDecodeFileIO: any bytes decode or fail cleanly, and what decodes is
// consistent with the record.
func FuzzDecodeFileIO(f *testing.F) {
	var open fileioFileEvent
	setHdr(&open, sensor.KindOpen)
	open.Fflags = fileFlagCreated
	f.Add(fileRec(f, open, "/tmp/x", ""))
	var ren fileioFileEvent
	setHdr(&ren, sensor.KindRename)
	f.Add(fileRec(f, ren, "/a", "/b\xff"))
	var conn fileioConnectEvent
	setHdr(&conn, sensor.KindConnect)
	conn.Family, conn.SkFamily, conn.Sport = unix.AF_INET6, unix.AF_INET6, 9
	f.Add(connRec(f, conn))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		var ev sensor.Event
		if err := decodeFileIO(b, &ev); err != nil {
			if !errors.Is(err, ErrRecord) {
				t.Fatalf("error does not wrap ErrRecord: %v", err)
			}
			return
		}
		if ev.Kind != sensor.Kind(b[0]) {
			t.Fatalf("kind %s from byte %d", ev.Kind, b[0])
		}
		switch {
		case ev.File != nil:
			if len(ev.File.Path) >= filePathMax || len(ev.File.NewPath) >= filePathMax {
				t.Fatalf("path lengths %d, %d", len(ev.File.Path), len(ev.File.NewPath))
			}
			if fileFixedSize+len(ev.File.Path)+len(ev.File.NewPath) > len(b) {
				t.Fatal("paths longer than the record")
			}
		case ev.Connect != nil:
			if !ev.Connect.Dst.IsValid() {
				t.Fatal("decoded connect without a destination")
			}
		default:
			t.Fatal("decoded nothing")
		}
	})
}

func BenchmarkDecodeFileIO(b *testing.B) {
	var open fileioFileEvent
	setHdr(&open, sensor.KindOpen)
	openRec := fileRec(b, open, "/home/user/project/src/internal/module/file_name.go", "")
	var conn fileioConnectEvent
	setHdr(&conn, sensor.KindConnect)
	conn.Family, conn.SkFamily, conn.Sport = unix.AF_INET, unix.AF_INET, 40000
	connRecB := connRec(b, conn)
	for _, bc := range []struct {
		name string
		rec  []byte
	}{{"open", openRec}, {"connect", connRecB}} {
		b.Run(bc.name, func(b *testing.B) {
			var ev sensor.Event
			b.ReportAllocs()
			b.SetBytes(int64(len(bc.rec)))
			for b.Loop() {
				if err := decodeFileIO(bc.rec, &ev); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
