//go:build linux

package kernel

import (
	"bytes"
	"encoding/binary"
	"errors"
	"slices"
	"strings"
	"testing"
	"unsafe"

	"github.com/lineaged/lineaged/sensor"
	"golang.org/x/sys/unix"
)

// Records are built with binary.Write from the generated wire structs, as
// the kernel lays them out.

func header(kind sensor.Kind) processEventHeader {
	return processEventHeader{
		Kind: uint8(kind), Agent: uint8(sensor.AgentClaudeCode), Cpu: 1, Ktime: 123456789,
		Pid: 4242, Tid: 4243, StartNs: 5_000_000_123, SessionPid: 100, SessionStart: 1_230_000_999,
	}
}

func record(t testing.TB, fixed any, tail ...[]byte) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := binary.Write(&b, binary.LittleEndian, fixed); err != nil {
		t.Fatal(err)
	}
	for _, x := range tail {
		b.Write(x)
	}
	return b.Bytes()
}

func execRecord(t testing.TB, filename, exe string, argv []byte, argc uint32, flags sensor.ExecFlags) []byte {
	r := processExecEvent{
		H:    header(sensor.KindExec),
		Ppid: 4000, Uid: 1000, ParentStart: 4_000_000_001, Euid: 0, Gid: 1001,
		Loginuid: 1000, Sessionid: 7, CgroupId: 99,
		Dev: 8<<20 | 1, Ino: 77, Size: 1024, MtimeNs: 11, CtimeNs: 12,
		ParentSessionPid: 50, ParentSessionAgent: uint8(sensor.AgentCodex), Recognised: uint8(sensor.AgentClaudeCode),
		Flags: uint16(flags), ParentSessionStart: 50_000_000_000, Argc: argc,
		FilenameLen: uint16(len(filename)), ExeLen: uint16(len(exe)), ArgvLen: uint16(len(argv)),
	}
	copy(r.Comm[:], int8s("claude"))
	return record(t, r, []byte(filename), []byte(exe), argv)
}

func int8s(s string) []int8 {
	out := make([]int8, len(s))
	for i := range s {
		out[i] = int8(s[i])
	}
	return out
}

func TestDecodeExec(t *testing.T) {
	argv := []byte("claude\x00-p\x00\x00with space\x00new\nline\x00\xff\xfe\x00")
	b := execRecord(t, "/home/u/.local/bin/claude", "/home/u/.local/share/claude/versions/2.1.332", argv, 6, 0)
	var ev sensor.Event
	if err := Decode(b, &ev); err != nil {
		t.Fatal(err)
	}
	h := ev.Header
	if h.Kind != sensor.KindExec || h.KtimeNs != 123456789 || h.TID != 4243 || h.CPU != 1 {
		t.Errorf("header %+v", h)
	}
	// Start times are truncated to /proc's 10 ms ticks.
	if h.Proc != (sensor.ProcKey{PID: 4242, StartNs: 5_000_000_000}) {
		t.Errorf("proc %+v", h.Proc)
	}
	if h.Session != (sensor.SessionRef{Root: sensor.ProcKey{PID: 100, StartNs: 1_230_000_000}, Agent: sensor.AgentClaudeCode}) {
		t.Errorf("session %+v", h.Session)
	}
	x := ev.Exec
	if x == nil || ev.Fork != nil || ev.Exit != nil {
		t.Fatalf("exec not set alone: %+v", ev)
	}
	want := []string{"claude", "-p", "", "with space", "new\nline", "\xff\xfe"}
	if !slices.Equal(x.Argv, want) {
		t.Errorf("argv %q, want %q", x.Argv, want)
	}
	if x.Filename != "/home/u/.local/bin/claude" || x.Exe != "/home/u/.local/share/claude/versions/2.1.332" {
		t.Errorf("filename %q exe %q", x.Filename, x.Exe)
	}
	if x.Comm != "claude" || x.Parent != (sensor.ProcKey{PID: 4000, StartNs: 4_000_000_000}) {
		t.Errorf("comm %q parent %+v", x.Comm, x.Parent)
	}
	if x.UID != 1000 || x.EUID != 0 || x.GID != 1001 || x.LoginUID != 1000 || x.AuditSessionID != 7 || x.CgroupID != 99 {
		t.Errorf("ids %+v", x)
	}
	if x.Binary != (sensor.FileStat{Dev: unix.Mkdev(8, 1), Inode: 77, Size: 1024, MtimeNs: 11, CtimeNs: 12}) {
		t.Errorf("binary %+v (dev must be in stat(2) encoding)", x.Binary)
	}
	if x.Recognised != sensor.AgentClaudeCode || x.ParentSession != (sensor.SessionRef{Root: sensor.ProcKey{PID: 50, StartNs: 50_000_000_000}, Agent: sensor.AgentCodex}) {
		t.Errorf("recognised %v parent session %+v", x.Recognised, x.ParentSession)
	}
	if x.ArgvTruncated {
		t.Error("not truncated")
	}
}

func TestDecodeExecTruncatedAndUnresolved(t *testing.T) {
	b := execRecord(t, "/bin/x", "ignored", []byte("a\x00bb\x00cc"), 5, sensor.ExecArgvTruncated|sensor.ExecExeUnresolved)
	var ev sensor.Event
	if err := Decode(b, &ev); err != nil {
		t.Fatal(err)
	}
	if !ev.Exec.ArgvTruncated || ev.Exec.Flags&sensor.ExecArgvTruncated == 0 {
		t.Error("truncation flag lost")
	}
	// The partial last argument is kept as far as it goes.
	if want := []string{"a", "bb", "cc"}; !slices.Equal(ev.Exec.Argv, want) {
		t.Errorf("argv %q, want %q", ev.Exec.Argv, want)
	}
	if ev.Exec.Exe != "" {
		t.Errorf("unresolved exe decoded as %q", ev.Exec.Exe)
	}
}

// The vocabulary's exec flags are the kernel's (enum exec_flags in
// bpf/lineaged.h, generated into processExecFlags): Decode passes them on
// as they are.
func TestExecFlagsAreTheKernels(t *testing.T) {
	for _, c := range []struct {
		name string
		c    processExecFlags
		want sensor.ExecFlags
	}{
		{"argv truncated", processExecFlagsEXEC_ARGV_TRUNCATED, sensor.ExecArgvTruncated},
		{"filename truncated", processExecFlagsEXEC_FILENAME_TRUNCATED, sensor.ExecFilenameTruncated},
		{"exe truncated", processExecFlagsEXEC_EXE_TRUNCATED, sensor.ExecExeTruncated},
		{"exe unresolved", processExecFlagsEXEC_EXE_UNRESOLVED, sensor.ExecExeUnresolved},
		{"exe deleted", processExecFlagsEXEC_EXE_DELETED, sensor.ExecExeDeleted},
		{"exe pseudo", processExecFlagsEXEC_EXE_PSEUDO, sensor.ExecExePseudo},
		{"exe outside root", processExecFlagsEXEC_EXE_OUTSIDE_ROOT, sensor.ExecExeOutsideRoot},
		{"via usermode helper", processExecFlagsEXEC_VIA_UMH, sensor.ExecViaUsermodeHelper},
		{"untracked", processExecFlagsEXEC_UNTRACKED, sensor.ExecUntracked},
		{"held", processExecFlagsEXEC_HELD, sensor.ExecHeld},
	} {
		if uint32(c.c) != uint32(c.want) {
			t.Errorf("%s: kernel %#x, sensor %#x", c.name, c.c, c.want)
		}
	}
}

func TestDecodeExecPathFlags(t *testing.T) {
	for _, c := range []struct {
		exe   string
		flags sensor.ExecFlags
	}{
		{"memfd:payload", sensor.ExecExePseudo},
		{"/tmp/gone", sensor.ExecExeDeleted},
		{"/srv/jail/bin/tool", sensor.ExecExeOutsideRoot},
		{"c/d/e", sensor.ExecExeTruncated},
	} {
		b := execRecord(t, "/x", c.exe, []byte("x\x00"), 1, c.flags)
		var ev sensor.Event
		if err := Decode(b, &ev); err != nil {
			t.Fatal(err)
		}
		if ev.Exec.Exe != c.exe || ev.Exec.Flags != c.flags {
			t.Errorf("exe %q flags %#x, want %q %#x", ev.Exec.Exe, ev.Exec.Flags, c.exe, c.flags)
		}
	}
}

func TestDecodeExecArgcBoundsArgs(t *testing.T) {
	// argc says 2: bytes past the second NUL are not arguments.
	b := execRecord(t, "/bin/x", "/bin/x", []byte("x\x00y\x00z\x00"), 2, 0)
	var ev sensor.Event
	if err := Decode(b, &ev); err != nil {
		t.Fatal(err)
	}
	if want := []string{"x", "y"}; !slices.Equal(ev.Exec.Argv, want) {
		t.Errorf("argv %q, want %q", ev.Exec.Argv, want)
	}
}

func TestDecodeForkExit(t *testing.T) {
	var ev sensor.Event
	f := processForkEvent{H: header(sensor.KindFork), Ppid: 17, ParentStart: 3_000_000_000}
	if err := Decode(record(t, f), &ev); err != nil {
		t.Fatal(err)
	}
	if ev.Fork == nil || ev.Fork.Parent != (sensor.ProcKey{PID: 17, StartNs: 3_000_000_000}) || ev.Kind != sensor.KindFork || ev.Fork.Untracked {
		t.Errorf("fork %+v", ev)
	}
	// A child the sessions map could not hold.
	f.H.Flags = uint16(processForkFlagsFORK_UNTRACKED)
	if err := Decode(record(t, f), &ev); err != nil {
		t.Fatal(err)
	}
	if ev.Fork == nil || !ev.Fork.Untracked || ev.Fork.Parent.PID != 17 {
		t.Errorf("untracked fork %+v", ev.Fork)
	}
	for _, c := range []struct {
		status       uint32
		code, signal int32
		core         bool
		repeats      uint32
	}{
		{7 << 8, 7, 0, false, 0},
		{0, 0, 0, false, 3},
		{9, 0, 9, false, 0},
		{11 | 0x80, 0, 11, true, 0xffffffff},
	} {
		x := processExitEvent{H: header(sensor.KindExit), ExitCode: c.status, RepeatedOpens: c.repeats}
		if err := Decode(record(t, x), &ev); err != nil {
			t.Fatal(err)
		}
		if ev.Fork != nil || ev.Exit == nil || *ev.Exit != (sensor.Exit{Code: c.code, Signal: c.signal, CoreDumped: c.core, RepeatedOpens: c.repeats}) {
			t.Errorf("status %#x: %+v", c.status, ev.Exit)
		}
	}
}

func TestDecodeErrors(t *testing.T) {
	full := execRecord(t, "/bin/x", "/bin/x", []byte("x\x00"), 1, 0)
	lying := slices.Clone(full)
	lying[int(unsafeOffsetArgvLen())] = 0xff // argv_len beyond the record
	for name, b := range map[string][]byte{
		"empty":          nil,
		"short header":   full[:10],
		"short exec":     full[:sizeExec-1],
		"lengths beyond": lying,
		"short fork":     record(t, processForkEvent{H: header(sensor.KindFork)})[:sizeFork-1],
		"short exit":     record(t, processExitEvent{H: header(sensor.KindExit)})[:sizeExit-1],
		"unknown kind":   record(t, processExitEvent{H: processEventHeader{Kind: 15}}),
	} {
		var ev sensor.Event
		err := Decode(b, &ev)
		if !errors.Is(err, ErrRecord) {
			t.Errorf("%s: err %v, want ErrRecord", name, err)
		}
	}
	var ev sensor.Event
	err := Decode(lying, &ev)
	if err == nil || !strings.Contains(err.Error(), "exceed") {
		t.Errorf("lengths error does not say what is wrong: %v", err)
	}
}

// unsafeOffsetArgvLen is the byte offset of argv_len in the exec record.
func unsafeOffsetArgvLen() uintptr {
	var r processExecEvent
	return offsetOf(&r, &r.ArgvLen)
}

func FuzzDecode(f *testing.F) {
	f.Add(execRecord(f, "/bin/x", "/usr/bin/x", []byte("x\x00-y\x00"), 2, 0))
	f.Add(execRecord(f, "", "", nil, 0, sensor.ExecArgvTruncated))
	f.Add(record(f, processForkEvent{H: header(sensor.KindFork)}))
	f.Add(record(f, processExitEvent{H: header(sensor.KindExit), ExitCode: 0x8b}))
	f.Fuzz(func(t *testing.T, b []byte) {
		var ev sensor.Event
		if err := Decode(b, &ev); err != nil {
			if !errors.Is(err, ErrRecord) {
				t.Fatalf("error %v does not wrap ErrRecord", err)
			}
			return
		}
		set := 0
		for _, p := range []bool{ev.Exec != nil, ev.Fork != nil, ev.Exit != nil, ev.File != nil, ev.Connect != nil} {
			if p {
				set++
			}
		}
		if set != 1 {
			t.Fatalf("%d payloads set for kind %v", set, ev.Kind)
		}
		if ev.Exec != nil {
			n := 0
			for _, a := range ev.Exec.Argv {
				n += len(a) + 1
			}
			if n > len(b) {
				t.Fatalf("argv of %d bytes from a %d-byte record", n, len(b))
			}
		}
	})
}

func BenchmarkDecodeExec(b *testing.B) {
	rec := execRecord(b, "/bin/bash", "/usr/bin/bash",
		[]byte("/bin/bash\x00-c\x00source ~/.claude/shell-snapshots/snapshot.sh && eval 'ls -la /tmp' < /dev/null\x00"), 3, 0)
	var ev sensor.Event
	b.ReportAllocs()
	b.SetBytes(int64(len(rec)))
	for b.Loop() {
		if err := Decode(rec, &ev); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeFork(b *testing.B) {
	rec := record(b, processForkEvent{H: header(sensor.KindFork), Ppid: 1})
	var ev sensor.Event
	b.ReportAllocs()
	for b.Loop() {
		if err := Decode(rec, &ev); err != nil {
			b.Fatal(err)
		}
	}
}

func offsetOf[T, F any](base *T, field *F) uintptr {
	return uintptr(unsafe.Pointer(field)) - uintptr(unsafe.Pointer(base))
}

// A repeated exit of the same process is recognised; the memory is bounded
// and a reused pid (another start time) is a new process.
func TestRecentKeys(t *testing.T) {
	r := newRecentKeys(2)
	a, b, c := sensor.ProcKey{PID: 1, StartNs: 1}, sensor.ProcKey{PID: 2, StartNs: 1}, sensor.ProcKey{PID: 1, StartNs: 2}
	if r.seen(a) || !r.seen(a) {
		t.Fatal("a repeat of a must be seen")
	}
	if r.seen(c) {
		t.Fatal("pid 1 with another start time is another process")
	}
	if r.seen(b) || r.seen(a) {
		t.Fatal("a must have been forgotten after two newer keys")
	}
}
