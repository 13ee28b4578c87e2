//go:build linux && (386 || amd64 || arm64)

package kernel

import (
	"encoding/binary"
	"errors"
	"net/netip"
	"testing"
	"unsafe"

	"github.com/lineaged/lineaged/sensor"
)

func TestIOURingWireLayout(t *testing.T) {
	var e iouringIouringEvent
	for _, tc := range []struct {
		name      string
		got, want uintptr
	}{
		{"size", unsafe.Sizeof(e), iouSize},
		{"result", unsafe.Offsetof(e.Result), iouOffResult},
		{"entries", unsafe.Offsetof(e.Entries), iouOffEntries},
		{"setup_flags", unsafe.Offsetof(e.SetupFlags), iouOffSetupFl},
		{"fd", unsafe.Offsetof(e.Fd), iouOffFD},
		{"dfd", unsafe.Offsetof(e.Dfd), iouOffDFD},
		{"open_flags", unsafe.Offsetof(e.OpenFlags), iouOffOpenFlags},
		{"mode", unsafe.Offsetof(e.Mode), iouOffMode},
		{"uflags", unsafe.Offsetof(e.Uflags), iouOffUflags},
		{"op", unsafe.Offsetof(e.Op), iouOffOp},
		{"opcode", unsafe.Offsetof(e.Opcode), iouOffOpcode},
		{"user_data", unsafe.Offsetof(e.UserData), iouOffUserData},
		{"family", unsafe.Offsetof(e.Family), iouOffFamily},
		{"port", unsafe.Offsetof(e.Port), iouOffPort},
		{"path_len", unsafe.Offsetof(e.PathLen), iouOffPathLen},
		{"new_path_len", unsafe.Offsetof(e.NewPathLen), iouOffNewLen},
		{"addr", unsafe.Offsetof(e.Addr), iouOffAddr},
		{"path", unsafe.Offsetof(e.Path), iouOffPath},
		{"path size", unsafe.Sizeof(e.Path), iouPathMax},
		{"new_path", unsafe.Offsetof(e.NewPath), iouOffNewPath},
	} {
		if tc.got != tc.want {
			t.Errorf("%s: generated %d, decoder %d", tc.name, tc.got, tc.want)
		}
	}
}

func iouRecord(op, opcode uint8, uflags uint16, path, newPath string) []byte {
	b := make([]byte, iouSize)
	le := binary.LittleEndian
	b[0] = byte(sensor.KindIOURing)
	b[1] = byte(sensor.AgentClaudeCode)
	le.PutUint32(b[16:], 4242)
	le.PutUint64(b[24:], 7_000_000_000)
	le.PutUint32(b[20:], 4243)
	le.PutUint32(b[32:], 100)
	le.PutUint64(b[40:], 5_000_000_000)
	b[iouOffOp] = op
	b[iouOffOpcode] = opcode
	le.PutUint16(b[iouOffUflags:], uflags)
	le.PutUint16(b[iouOffPathLen:], uint16(len(path)))
	le.PutUint16(b[iouOffNewLen:], uint16(len(newPath)))
	copy(b[iouOffPath:], path)
	copy(b[iouOffNewPath:], newPath)
	return b
}

func TestDecodeIOURing(t *testing.T) {
	le := binary.LittleEndian

	b := iouRecord(0, 0, iouFlagIA32|iouFlagKilled, "", "")
	le.PutUint32(b[iouOffResult:], 5)
	le.PutUint32(b[iouOffEntries:], 8)
	le.PutUint32(b[iouOffSetupFl:], sensor.IOURingSetupSQPoll)
	var ev sensor.Event
	if err := Decode(b, &ev); err != nil {
		t.Fatal(err)
	}
	u := ev.IOURing
	if ev.Kind != sensor.KindIOURing || u == nil || u.Op != sensor.IOURingSetup || u.Result != 5 ||
		u.Entries != 8 || u.SetupFlags != sensor.IOURingSetupSQPoll || !u.IA32 || u.FD != -1 || !u.Killed {
		t.Fatalf("setup: %+v %+v", ev.Header, u)
	}
	if ev.Proc.PID != 4242 || ev.TID != 4243 || ev.Session.Root.PID != 100 || ev.Session.Agent != sensor.AgentClaudeCode {
		t.Fatalf("setup header: %+v", ev.Header)
	}

	b = iouRecord(1, 18, iouFlagAsGiven|iouFlagSQPoll, "etc/passwd", "")
	le.PutUint32(b[iouOffFD:], 0xffffff9c) // AT_FDCWD in fd too
	le.PutUint32(b[iouOffDFD:], 0xffffff9c)
	le.PutUint32(b[iouOffOpenFlags:], 0o100)
	if err := decodeFileIO(b, &ev); err != nil {
		t.Fatal(err)
	}
	u = ev.IOURing
	if u.Op != sensor.IOURingSubmit || sensor.IOURingOpName(u.Opcode) != "openat" || u.Path != "etc/passwd" ||
		!u.PathAsGiven || !u.SQPoll || u.DirFD != -100 || u.OpenFlags != 0o100 {
		t.Fatalf("openat: %+v", u)
	}

	b = iouRecord(1, 16, 0, "", "")
	le.PutUint16(b[iouOffFamily:], 2)
	le.PutUint16(b[iouOffPort:], 8080)
	copy(b[iouOffAddr:], []byte{127, 0, 0, 1})
	if err := Decode(b, &ev); err != nil {
		t.Fatal(err)
	}
	if want := netip.MustParseAddrPort("127.0.0.1:8080"); ev.IOURing.Addr != want || sensor.IOURingOpName(ev.IOURing.Opcode) != "connect" {
		t.Fatalf("connect: %+v", ev.IOURing)
	}

	b = iouRecord(1, 35, iouFlagAsGiven|iouFlagNewTrunc, "a", "b")
	if err := Decode(b, &ev); err != nil || ev.IOURing.NewPath != "b" || !ev.IOURing.NewPathTruncated {
		t.Fatalf("renameat: %v %+v", err, ev.IOURing)
	}
	if sensor.IOURingOpName(200) != "op_200" {
		t.Fatal(sensor.IOURingOpName(200))
	}

	for name, b := range map[string][]byte{
		"short":  iouRecord(1, 18, 0, "", "")[:iouSize-1],
		"bad op": iouRecord(7, 18, 0, "", ""),
		"too long": func() []byte {
			b := iouRecord(1, 18, 0, "", "")
			le.PutUint16(b[iouOffPathLen:], iouPathMax)
			return b
		}(),
	} {
		if err := Decode(b, &ev); !errors.Is(err, ErrRecord) {
			t.Errorf("%s: %v", name, err)
		}
	}
}
