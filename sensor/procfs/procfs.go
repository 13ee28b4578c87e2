// Package procfs reads process facts from a /proc tree. It is pure parsing:
// no caching, no globals, and the root is a parameter so tests run against a
// fake tree and the sensor can read a host /proc mounted elsewhere.
//
// Only thread-group leaders are reported: the numeric entries of /proc are
// tgids (threads live under /proc/<tgid>/task and are not listed at the top).
package procfs

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/lineaged/lineaged/sensor"
)

// TicksToNs converts /proc clock ticks to nanoseconds. The kernel exports
// start times in USER_HZ units, and USER_HZ is fixed at 100 on every Linux
// architecture (it is ABI, independent of CONFIG_HZ), which is also what
// sysconf(_SC_CLK_TCK) returns; reading it through sysconf would need cgo.
// sensor.ProcKey truncates the kernel's boot-clock start time to this
// resolution so both sides agree.
const TicksToNs = 1_000_000_000 / 100

// UnsetID is the value of loginuid and sessionid when never set.
const UnsetID = 4294967295

// ErrGone is returned (wrapped) by Read when the process does not exist or
// exited while being read.
var ErrGone = errors.New("process gone")

// Proc is a snapshot of one process as /proc shows it.
type Proc struct {
	PID  uint32
	PPID uint32
	// Key is (pid, start time); StartNs is stat field 22 times TicksToNs.
	Key        sensor.ProcKey
	StartTicks uint64
	Comm       string
	// Exe is the readlink of /proc/<pid>/exe without the " (deleted)"
	// suffix; ExeDeleted reports that the suffix was present. Empty for
	// kernel threads.
	Exe        string
	ExeDeleted bool
	// ExeErr is why exe could not be read (nil for kernel threads, which
	// have none, and when it was read).
	ExeErr error
	// Argv is /proc/<pid>/cmdline split at NUL; raw bytes are kept.
	Argv           []string
	Cwd            string
	UID            uint32 // real
	EUID           uint32 // effective
	GID            uint32 // real
	EGID           uint32 // effective
	LoginUID       uint32 // UnsetID when unset
	AuditSessionID uint32 // UnsetID when unset
	// TTYNr is the controlling terminal's device number (stat field 7);
	// TTY its name ("pts/3", "tty1", "ttyS0") when the mapping is known.
	TTYNr uint32
	TTY   string
	// Cgroup is the cgroup v2 path (the "0::" line); on a v1-only host,
	// the path of the first hierarchy listed.
	Cgroup string
	// Binary is stat(2) of /proc/<pid>/exe: the identity of the file the
	// process is running, even when its path was replaced or deleted.
	// HasBinary is false when it could not be read (kernel thread, or no
	// permission).
	Binary    sensor.FileStat
	HasBinary bool
	// Kthread is set for kernel threads (PF_KTHREAD in stat's flags).
	Kthread bool
}

// Read returns the process pid under root (normally "/proc"). A process that
// does not exist or exits while being read gives an error wrapping ErrGone.
// Facts that need privileges the caller lacks (exe, cwd of another user's
// process) are left empty rather than failing the whole read.
func Read(root string, pid uint32) (*Proc, error) {
	dir := filepath.Join(root, strconv.FormatUint(uint64(pid), 10))
	statRaw, err := os.ReadFile(filepath.Join(dir, "stat"))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ESRCH) {
			return nil, fmt.Errorf("procfs: pid %d: %w", pid, ErrGone)
		}
		return nil, fmt.Errorf("procfs: pid %d: %w", pid, err)
	}
	p := &Proc{PID: pid, LoginUID: UnsetID, AuditSessionID: UnsetID}
	if err := parseStat(statRaw, p); err != nil {
		return nil, fmt.Errorf("procfs: pid %d: %w", pid, err)
	}
	statusRaw, err := os.ReadFile(filepath.Join(dir, "status"))
	if err != nil {
		return nil, gone(pid, err)
	}
	if err := parseStatus(statusRaw, p); err != nil {
		return nil, fmt.Errorf("procfs: pid %d: %w", pid, err)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "loginuid")); err == nil {
		if v, err := parseU32(b); err == nil {
			p.LoginUID = v
		}
	}
	if b, err := os.ReadFile(filepath.Join(dir, "sessionid")); err == nil {
		if v, err := parseU32(b); err == nil {
			p.AuditSessionID = v
		}
	}
	if b, err := os.ReadFile(filepath.Join(dir, "cmdline")); err == nil {
		p.Argv = SplitCmdline(b)
	}
	if s, err := os.Readlink(filepath.Join(dir, "exe")); err != nil {
		p.ExeErr = err
	} else {
		p.Exe, p.ExeDeleted = strings.CutSuffix(s, " (deleted)")
		var st syscall.Stat_t
		if err := syscall.Stat(filepath.Join(dir, "exe"), &st); err == nil {
			p.Binary = FileStatOf(&st)
			p.HasBinary = true
		}
	}
	if s, err := os.Readlink(filepath.Join(dir, "cwd")); err == nil {
		p.Cwd = s
	}
	if b, err := os.ReadFile(filepath.Join(dir, "cgroup")); err == nil {
		p.Cgroup = parseCgroup(b)
	}
	p.TTY = TTYName(p.TTYNr)
	if p.Kthread {
		p.ExeErr = nil
	}
	// A process that exited between the first and last read is reported
	// as gone rather than as a half-read snapshot of a zombie.
	if _, err := os.Stat(filepath.Join(dir, "stat")); err != nil {
		return nil, gone(pid, err)
	}
	return p, nil
}

func gone(pid uint32, err error) error {
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("procfs: pid %d: %w", pid, ErrGone)
	}
	return fmt.Errorf("procfs: pid %d: %w", pid, err)
}

// Scan reads every process under root. Processes that vanish during the scan
// are skipped; any other failure to read an entry is returned.
func Scan(root string) ([]*Proc, error) {
	ents, err := os.ReadDir(root)
	if err != nil {
		return nil, fmt.Errorf("procfs: scan %s: %w", root, err)
	}
	var out []*Proc
	for _, e := range ents {
		pid, err := strconv.ParseUint(e.Name(), 10, 32)
		if err != nil || pid == 0 {
			continue
		}
		p, err := Read(root, uint32(pid))
		if err != nil {
			if errors.Is(err, ErrGone) {
				continue
			}
			return nil, err
		}
		out = append(out, p)
	}
	return out, nil
}

// Env looks up key in the initial environment of pid (/proc/<pid>/environ).
// found is false when the variable is absent; an error means the environment
// could not be read (process gone, or no permission).
func Env(root string, pid uint32, key string) (value string, found bool, err error) {
	b, err := os.ReadFile(filepath.Join(root, strconv.FormatUint(uint64(pid), 10), "environ"))
	if err != nil {
		return "", false, gone(pid, err)
	}
	prefix := []byte(key + "=")
	for kv := range bytes.SplitSeq(b, []byte{0}) {
		if v, ok := bytes.CutPrefix(kv, prefix); ok {
			return string(v), true, nil
		}
	}
	return "", false, nil
}

// SplitCmdline splits a cmdline blob at NUL bytes, keeping raw bytes. A
// trailing NUL does not produce an empty argument; embedded empty arguments
// are kept.
func SplitCmdline(b []byte) []string {
	if len(b) == 0 {
		return nil
	}
	b = bytes.TrimSuffix(b, []byte{0})
	parts := bytes.Split(b, []byte{0})
	out := make([]string, len(parts))
	for i, p := range parts {
		out[i] = string(p)
	}
	return out
}

// FileStatOf converts stat(2) output into the hash-cache key. Dev is the
// userspace encoding of st_dev (glibc makedev), as stat(2) reports it.
func FileStatOf(st *syscall.Stat_t) sensor.FileStat {
	return sensor.FileStat{
		Dev:     uint64(st.Dev),
		Inode:   st.Ino,
		Size:    st.Size,
		MtimeNs: st.Mtim.Sec*1e9 + st.Mtim.Nsec,
		CtimeNs: st.Ctim.Sec*1e9 + st.Ctim.Nsec,
	}
}

// pfKthread is PF_KTHREAD from include/linux/sched.h.
const pfKthread = 0x00200000

// parseStat parses /proc/<pid>/stat. comm is enclosed in parentheses and may
// itself contain spaces and parentheses, so it ends at the last ')'.
func parseStat(b []byte, p *Proc) error {
	open := bytes.IndexByte(b, '(')
	closeIdx := bytes.LastIndexByte(b, ')')
	if open < 0 || closeIdx < open {
		return fmt.Errorf("malformed stat: no (comm)")
	}
	p.Comm = string(b[open+1 : closeIdx])
	// Fields after comm start at field 3 (state).
	rest := strings.Fields(string(b[closeIdx+1:]))
	// field n is rest[n-3]
	field := func(n int) (uint64, error) {
		i := n - 3
		if i >= len(rest) {
			return 0, fmt.Errorf("malformed stat: %d fields after comm, want field %d", len(rest), n)
		}
		v, err := strconv.ParseInt(rest[i], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("malformed stat field %d %q: %w", n, rest[i], err)
		}
		return uint64(v), nil
	}
	ppid, err := field(4)
	if err != nil {
		return err
	}
	tty, err := field(7)
	if err != nil {
		return err
	}
	flags, err := field(9)
	if err != nil {
		return err
	}
	start, err := field(22)
	if err != nil {
		return err
	}
	p.PPID = uint32(ppid)
	p.TTYNr = uint32(tty)
	p.Kthread = flags&pfKthread != 0
	p.StartTicks = start
	p.Key = sensor.ProcKey{PID: p.PID, StartNs: start * TicksToNs}
	return nil
}

// parseStatus reads the Uid and Gid lines (real, effective, saved, fs).
func parseStatus(b []byte, p *Proc) error {
	var haveUID, haveGID bool
	for line := range bytes.SplitSeq(b, []byte{'\n'}) {
		k, v, ok := bytes.Cut(line, []byte{':'})
		if !ok {
			continue
		}
		switch string(k) {
		case "Uid", "Gid":
			f := strings.Fields(string(v))
			if len(f) < 2 {
				return fmt.Errorf("malformed status %s line %q", k, line)
			}
			r, err1 := strconv.ParseUint(f[0], 10, 32)
			e, err2 := strconv.ParseUint(f[1], 10, 32)
			if err := errors.Join(err1, err2); err != nil {
				return fmt.Errorf("malformed status %s line %q: %w", k, line, err)
			}
			if string(k) == "Uid" {
				p.UID, p.EUID, haveUID = uint32(r), uint32(e), true
			} else {
				p.GID, p.EGID, haveGID = uint32(r), uint32(e), true
			}
		}
	}
	if !haveUID || !haveGID {
		return fmt.Errorf("malformed status: missing Uid or Gid line")
	}
	return nil
}

func parseU32(b []byte) (uint32, error) {
	v, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 32)
	return uint32(v), err
}

// parseCgroup returns the cgroup v2 path ("0::<path>"), or on a v1-only host
// the path of the first hierarchy.
func parseCgroup(b []byte) string {
	var first string
	for line := range strings.SplitSeq(string(b), "\n") {
		if p, ok := strings.CutPrefix(line, "0::"); ok {
			return p
		}
		if first == "" {
			if parts := strings.SplitN(line, ":", 3); len(parts) == 3 {
				first = parts[2]
			}
		}
	}
	return first
}

// TTYName maps a tty device number (stat field 7, kernel encoding) to its
// /dev name for the common terminal drivers; other devices give "" (unknown),
// 0 gives "" (no controlling terminal).
func TTYName(nr uint32) string {
	if nr == 0 {
		return ""
	}
	major := (nr >> 8) & 0xfff
	minor := (nr & 0xff) | ((nr >> 12) & 0xfff00)
	switch {
	case major >= 136 && major <= 143: // Unix98 pty slaves
		return "pts/" + strconv.FormatUint(uint64((major-136)*256+minor), 10)
	case major == 4 && minor < 64:
		return "tty" + strconv.FormatUint(uint64(minor), 10)
	case major == 4:
		return "ttyS" + strconv.FormatUint(uint64(minor-64), 10)
	case major == 5 && minor == 1:
		return "console"
	}
	return ""
}

// KernelDev converts a kernel-internal dev_t (major<<20 | minor, as in
// struct super_block.s_dev) to the userspace encoding stat(2) returns, so
// a FileStat taken in BPF and one taken with stat(2) compare equal.
func KernelDev(kdev uint64) uint64 {
	major := (kdev >> 20) & 0xfff
	minor := kdev & 0xfffff
	return (minor & 0xff) | (major&0xfff)<<8 | (minor&^0xff)<<12
}

// MountNS is the mount namespace of process pid ("self" for the caller)
// under procRoot ("" for /proc): the inode number of its ns/mnt link, 0
// when it cannot be read.
func MountNS(procRoot, pid string) uint32 {
	if procRoot == "" {
		procRoot = "/proc"
	}
	l, err := os.Readlink(filepath.Join(procRoot, pid, "ns", "mnt"))
	if err != nil {
		return 0
	}
	if s, ok := strings.CutPrefix(l, "mnt:["); ok {
		if n, err := strconv.ParseUint(strings.TrimSuffix(s, "]"), 10, 32); err == nil {
			return uint32(n)
		}
	}
	return 0
}

// HostMountNS is the host's mount namespace: pid 1's, or the caller's own
// where pid 1's cannot be read; 0 when neither can.
func HostMountNS(procRoot string) uint32 {
	if ns := MountNS(procRoot, "1"); ns != 0 {
		return ns
	}
	return MountNS(procRoot, "self")
}
