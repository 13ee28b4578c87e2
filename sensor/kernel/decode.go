//go:build linux

package kernel

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"unsafe"

	"github.com/lineaged/lineaged/sensor"
	"golang.org/x/sys/unix"
)

// ErrRecord is wrapped by every decoding error.
var ErrRecord = errors.New("bad ring buffer record")

// tickNs is /proc's start-time resolution (USER_HZ 100, which is ABI).
const tickNs = 10_000_000

// Sizes of the fixed parts of the records, from the generated structs.
var (
	sizeHeader = int(unsafe.Sizeof(processEventHeader{}))
	sizeExec   = int(unsafe.Sizeof(processExecEvent{}))
	sizeFork   = int(unsafe.Sizeof(processForkEvent{}))
	sizeExit   = int(unsafe.Sizeof(processExitEvent{}))
)

// load copies the fixed part of a record into its generated struct. The
// generated file only builds on little-endian hosts, whose layout is the
// BPF layout, so a byte copy is the decode; it needs no alignment.
func load[T any](dst *T, b []byte) bool {
	n := int(unsafe.Sizeof(*dst))
	if len(b) < n {
		return false
	}
	copy(unsafe.Slice((*byte)(unsafe.Pointer(dst)), n), b)
	return true
}

// truncTick names a process the way /proc does (see ProcKey).
func truncTick(ns uint64) uint64 { return ns - ns%tickNs }

func key(pid uint32, startNs uint64) sensor.ProcKey {
	return sensor.ProcKey{PID: pid, StartNs: truncTick(startNs)}
}

func sessionRef(pid uint32, start uint64, agent uint8) sensor.SessionRef {
	if pid == 0 || agent == 0 {
		return sensor.SessionRef{}
	}
	return sensor.SessionRef{Root: key(pid, start), Agent: sensor.AgentKind(agent)}
}

func decodeHeader(h *processEventHeader) sensor.Header {
	return sensor.Header{
		Kind:    sensor.Kind(h.Kind),
		KtimeNs: h.Ktime,
		Proc:    key(h.Pid, h.StartNs),
		TID:     h.Tid,
		CPU:     h.Cpu,
		Session: sessionRef(h.SessionPid, h.SessionStart, h.Agent),
	}
}

// Decode parses one ring-buffer record into ev, replacing its contents: the
// process programs' exec, fork and exit here, the file and network kinds by
// decodeFileIO. It copies what it keeps, so b may be reused. A record it
// cannot decode returns an error wrapping ErrRecord that names the problem.
func Decode(b []byte, ev *sensor.Event) error {
	if len(b) < sizeHeader {
		return fmt.Errorf("%w: %d bytes, shorter than the %d-byte header", ErrRecord, len(b), sizeHeader)
	}
	*ev = sensor.Event{}
	switch sensor.Kind(b[0]) {
	case sensor.KindExec:
		return decodeExec(b, ev)
	case sensor.KindFork:
		var r processForkEvent
		if !load(&r, b) {
			return short(sensor.KindFork, len(b), sizeFork)
		}
		ev.Header = decodeHeader(&r.H)
		ev.Fork = &sensor.Fork{
			Parent:    key(r.Ppid, r.ParentStart),
			Untracked: r.H.Flags&uint16(processForkFlagsFORK_UNTRACKED) != 0,
		}
		return nil
	case sensor.KindOpen, sensor.KindUnlink, sensor.KindRename, sensor.KindChmod, sensor.KindConnect, sensor.KindFileModify, sensor.KindIOURing:
		return decodeFileIO(b, ev)
	case sensor.KindDeny:
		return decodeDeny(b, ev)
	case sensor.KindExit:
		var r processExitEvent
		if !load(&r, b) {
			return short(sensor.KindExit, len(b), sizeExit)
		}
		ev.Header = decodeHeader(&r.H)
		ev.Exit = &sensor.Exit{
			// wait(2) status layout: (code << 8) | 0x80 core | signal.
			Code:          int32(r.ExitCode>>8) & 0xff,
			Signal:        int32(r.ExitCode & 0x7f),
			CoreDumped:    r.ExitCode&0x80 != 0,
			RepeatedOpens: r.RepeatedOpens,
		}
		return nil
	}
	return fmt.Errorf("%w: unknown kind %d", ErrRecord, b[0])
}

func short(k sensor.Kind, have, need int) error {
	return fmt.Errorf("%w: %s record of %d bytes, need %d", ErrRecord, k, have, need)
}

func decodeExec(b []byte, ev *sensor.Event) error {
	var r processExecEvent
	if !load(&r, b) {
		return short(sensor.KindExec, len(b), sizeExec)
	}
	data := b[sizeExec:]
	fl, el, al := int(r.FilenameLen), int(r.ExeLen), int(r.ArgvLen)
	if fl+el+al > len(data) {
		return fmt.Errorf("%w: exec record: filename %d + exe %d + argv %d bytes exceed the %d bytes present",
			ErrRecord, fl, el, al, len(data))
	}
	ev.Header = decodeHeader(&r.H)
	x := &sensor.Exec{
		Parent:         key(r.Ppid, r.ParentStart),
		UID:            r.Uid,
		EUID:           r.Euid,
		GID:            r.Gid,
		LoginUID:       r.Loginuid,
		AuditSessionID: r.Sessionid,
		CgroupID:       r.CgroupId,
		MntNS:          r.MntNs,
		Comm:           cString(r.Comm[:]),
		Filename:       string(data[:fl]),
		ArgvTruncated:  sensor.ExecFlags(r.Flags)&sensor.ExecArgvTruncated != 0,
		Binary: sensor.FileStat{
			Dev:     userDev(r.Dev),
			Inode:   r.Ino,
			Size:    r.Size,
			MtimeNs: r.MtimeNs,
			CtimeNs: r.CtimeNs,
		},
		Recognised:    sensor.AgentKind(r.Recognised),
		ParentSession: sessionRef(r.ParentSessionPid, r.ParentSessionStart, r.ParentSessionAgent),
		Flags:         sensor.ExecFlags(r.Flags),
	}
	if sensor.ExecFlags(r.Flags)&sensor.ExecExeUnresolved == 0 {
		x.Exe = string(data[fl : fl+el])
	}
	x.Argv = splitArgv(data[fl+el:fl+el+al], int(r.Argc), x.ArgvTruncated)
	ev.Exec = x
	return nil
}

// splitArgv splits the NUL-separated argument area. Complete arguments end
// in NUL; a truncated area ends inside the last one, which is kept as far as
// it goes. argc bounds the count: the area never holds more than argc
// arguments, and an empty argument is kept as "".
func splitArgv(b []byte, argc int, truncated bool) []string {
	if len(b) == 0 {
		return nil
	}
	if !truncated && b[len(b)-1] == 0 {
		b = b[:len(b)-1]
	}
	n := bytes.Count(b, []byte{0}) + 1
	if argc > 0 && n > argc {
		n = argc
	}
	// One allocation for all the strings, then slice it.
	s := string(b)
	out := make([]string, 0, n)
	for len(out) < n-1 {
		i := strings.IndexByte(s, 0)
		out = append(out, s[:i])
		s = s[i+1:]
	}
	if i := strings.IndexByte(s, 0); i >= 0 {
		s = s[:i]
	}
	return append(out, s)
}

func cString(c []int8) string {
	b := unsafe.Slice((*byte)(unsafe.Pointer(&c[0])), len(c))
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	return string(b)
}

// userDev converts the kernel's internal dev_t (major << 20 | minor) to the
// encoding stat(2) reports, so it equals st_dev of /proc/<pid>/exe.
func userDev(kdev uint64) uint64 {
	return unix.Mkdev(uint32(kdev>>20), uint32(kdev&0xfffff))
}
