package sensor

import (
	"context"
	"net/netip"

	"golang.org/x/sys/unix"
)

// Kind tags every raw record. The numeric values are part of the kernel ABI
// (bpf/lineaged.h) and of the capture file format: never renumber them.
type Kind uint8

// Raw event kinds.
const (
	KindExec    Kind = 1
	KindFork    Kind = 2
	KindExit    Kind = 3
	KindOpen    Kind = 4
	KindUnlink  Kind = 5
	KindRename  Kind = 6
	KindChmod   Kind = 7
	KindConnect Kind = 8
	// KindLoss is synthesised in userspace from the kernel's per-CPU
	// reservation-failure counters and from queue overflow.
	KindLoss Kind = 9
	// KindDeny: a session member exec'd an executable on the deny list
	// (policy.deny_exec) and the kernel blocked or killed it.
	KindDeny Kind = 10
)

func (k Kind) String() string {
	switch k {
	case KindExec:
		return "exec"
	case KindFork:
		return "fork"
	case KindExit:
		return "exit"
	case KindOpen:
		return "open"
	case KindUnlink:
		return "unlink"
	case KindRename:
		return "rename"
	case KindChmod:
		return "chmod"
	case KindConnect:
		return "connect"
	case KindLoss:
		return "loss"
	case KindDeny:
		return "deny"
	}
	return "unknown"
}

// ProcKey names a process for its whole life: a pid is reused, a
// (pid, start time) pair is not. StartNs is the task's start_boottime in
// boot-clock nanoseconds truncated to /proc's clock-tick resolution
// (10 ms at USER_HZ 100: /proc/<pid>/stat field 22 times 10^7), so the kernel
// and a /proc scan name a process identically. The decoder truncates; BPF
// sends the exact value. A pid cannot be reused within one tick.
type ProcKey struct {
	PID     uint32
	StartNs uint64
}

// SessionRef identifies the agent session a process belongs to, as the
// kernel tracks it: the exec identity of the session's root process plus the
// recogniser that matched it. A zero value means "not in a session".
type SessionRef struct {
	Root  ProcKey
	Agent AgentKind
}

// InSession reports whether the process belongs to an agent session.
func (s SessionRef) InSession() bool { return s.Agent != AgentNone }

// AgentKind is the recogniser that matched a session root, in the kernel or in
// the /proc seed. Values are ABI (bpf/lineaged.h).
type AgentKind uint8

// Agents recognised.
const (
	AgentNone       AgentKind = 0
	AgentClaudeCode AgentKind = 1
	AgentCodex      AgentKind = 2
	AgentGemini     AgentKind = 3
)

func (a AgentKind) String() string {
	switch a {
	case AgentClaudeCode:
		return "claude-code"
	case AgentCodex:
		return "codex"
	case AgentGemini:
		return "gemini-cli"
	}
	return ""
}

// Header is common to every raw event.
type Header struct {
	Kind Kind
	// KtimeNs is bpf_ktime_get_boot_ns() at the event (boot clock).
	KtimeNs uint64
	// Proc is the thread-group leader the event belongs to.
	Proc ProcKey
	// TID is the thread that caused the event.
	TID uint32
	// CPU the record was produced on.
	CPU uint32
	// Session is the agent session of Proc at the time of the event.
	Session SessionRef
}

// Event is one decoded raw event. Exactly one of the pointer fields matching
// Header.Kind is set.
type Event struct {
	Header
	Exec    *Exec
	Fork    *Fork
	Exit    *Exit
	File    *File
	Connect *Connect
	Loss    *Loss
	Deny    *Deny
}

// FileStat is the identity of the executable as the kernel saw it at exec
// (from the bprm->file inode): the key for hash caching.
type FileStat struct {
	Dev     uint64
	Inode   uint64
	Size    int64
	MtimeNs int64
	CtimeNs int64
}

// Exec is a successful execve/execveat: the process now runs a new image.
type Exec struct {
	Parent         ProcKey // real parent thread-group leader
	UID            uint32
	EUID           uint32
	GID            uint32
	LoginUID       uint32 // 4294967295 when unset
	AuditSessionID uint32
	CgroupID       uint64
	Comm           string
	// Filename is the path passed to exec as resolved by the kernel
	// (bprm->filename); Exe is the path of the executed file resolved from
	// its struct file, absolute from the process's own root (a chrooted
	// process's exe starts at its chroot), empty when unavailable. Flags
	// say when it is not such a path (ExecExeOutsideRoot, ExecExePseudo).
	Filename string
	Exe      string
	Argv     []string
	// ArgvTruncated is set when argv did not fit the kernel's bound.
	ArgvTruncated bool
	Binary        FileStat
	// Recognised is set when this exec itself matched an agent recogniser
	// and started a new session (Header.Session then names this process).
	Recognised AgentKind
	// ParentSession is the session the process was in before a recognised
	// exec started a nested one (an agent run by another agent's tool);
	// zero otherwise.
	ParentSession SessionRef
	// Flags carries the kernel's marks on the record and on Exe.
	Flags ExecFlags
}

// ExecFlags are the kernel's marks on an exec record (bpf/lineaged.h).
type ExecFlags uint16

// Exec flags.
const (
	ExecArgvTruncated     ExecFlags = 1 << 0
	ExecFilenameTruncated ExecFlags = 1 << 1
	// ExecExeTruncated: Exe holds the path's leaf end: the walk did not
	// reach a root (deeper or longer than the kernel's bound, or a
	// detached mount) or the path was longer than the record's bound.
	ExecExeTruncated ExecFlags = 1 << 2
	// ExecExeUnresolved: no path could be read; Exe is empty.
	ExecExeUnresolved ExecFlags = 1 << 3
	// ExecExeDeleted: the file had been unlinked; Exe is its last path
	// (where /proc/<pid>/exe adds " (deleted)").
	ExecExeDeleted ExecFlags = 1 << 4
	// ExecExePseudo: the file has no path (a memfd, fexecve'd): Exe is
	// its name alone, without a leading "/" ("memfd:name").
	ExecExePseudo ExecFlags = 1 << 5
	// ExecExeOutsideRoot: the file is not under the process's root (a
	// chrooted process exec'd a file it opened before the chroot): Exe is
	// its path from the mount namespace's root instead.
	ExecExeOutsideRoot ExecFlags = 1 << 6
)

// Fork is a new process (not a thread). Header.Proc is the child.
type Fork struct {
	Parent ProcKey
}

// Exit is the end of a thread group (the last thread).
type Exit struct {
	Code       int32 // exit status (0-255) when not signalled
	Signal     int32 // terminating signal, 0 when exited normally
	CoreDumped bool
	// RepeatedOpens counts the process's read-only opens that were not
	// reported because the same image had opened the same file with the
	// same flags before (one File event each first time).
	RepeatedOpens uint32
}

// FileOp is the file operation of a File event.
type FileOp uint8

// File operations.
const (
	FileOpen FileOp = iota + 1
	FileUnlink
	FileRename
	FileChmod
)

// File is an open, unlink, rename or chmod by a session member.
type File struct {
	Op FileOp
	// Path is absolute and resolved in the kernel (from the opened file's
	// struct path for opens); raw bytes, not necessarily valid UTF-8.
	Path    string
	NewPath string // rename only
	// PathTruncated is set when the path did not fit the kernel's bound.
	PathTruncated bool
	// PathUnresolved is set when Path (and NewPath) is the name the caller
	// passed, made absolute against its dirfd or cwd but not resolved from
	// an opened file: unlink, rename, chmod and failed opens. "..", "." and
	// symlinks in it are left as given.
	PathUnresolved bool
	Flags          uint32 // open(2) flags or unlinkat/renameat2 flags
	Mode           uint32 // create mode or chmod mode
	Created        bool   // open created the file
	Result         int32  // 0 or -errno
}

// Connect is a connect(2) by a session member.
type Connect struct {
	Protocol uint8 // IPPROTO_TCP, IPPROTO_UDP
	Family   uint16
	Dst      netip.AddrPort
	Src      netip.AddrPort // may be invalid when not yet bound
	Result   int32          // 0, -EINPROGRESS or -errno
}

// Loss reports events that never reached the pipeline.
type Loss struct {
	// Where: "ringbuf" (kernel reservation failures), "queue" (reader
	// hand-off overflow), "sessions" (session members the kernel could
	// not track: the sessions map was full; Of is KindFork), or another
	// stage name.
	Where string
	// Of is the raw kind lost, when known.
	Of    Kind
	Count uint64
}

// DenyAction is what the kernel did about a denied exec (bpf/lineaged.h).
type DenyAction uint8

// Deny actions.
const (
	// DenyBlocked: the LSM hook failed the exec with EPERM; nothing ran.
	DenyBlocked DenyAction = 1
	// DenyKilled: the tracepoint path queued SIGKILL after the point of no
	// return; the image died before its first user instruction.
	DenyKilled DenyAction = 2
	// DenyKillFailed: the tracepoint path matched but the kernel refused
	// the signal; the image ran.
	DenyKillFailed DenyAction = 3
)

func (a DenyAction) String() string {
	switch a {
	case DenyBlocked:
		return "blocked"
	case DenyKilled:
		return "killed"
	case DenyKillFailed:
		return "kill-failed"
	}
	return "unknown"
}

// Deny is an exec of a denied executable by a session member. Header.Proc
// is the process that exec'd.
type Deny struct {
	// Path is the executable's absolute path as the kernel resolved it
	// (symlinks followed, from the exec'ing process's own root, like
	// Exec.Exe; a file outside that root by its path from the mount
	// namespace's root); raw bytes.
	Path string
	// PathTruncated: Path is the leading part of a longer path.
	PathTruncated bool
	// RuleIndex is the index the matching kernel key carries: the position
	// of the deny_exec entry in the policy (lineage/policy DenyKeys). Rule
	// is that entry when the source knows it; the live sensor loads keys
	// only and leaves it empty (the policy stage names the entry).
	RuleIndex uint32
	Rule      string
	Action    DenyAction
}

// Source produces raw events: the live BPF sensor, or a capture file being
// replayed. Both run exactly the same downstream code.
type Source interface {
	// Run delivers events to out until ctx is cancelled or the source ends.
	// It never closes out.
	Run(ctx context.Context, out chan<- Event) error
	Close() error
}

// FileAccess is how an open accesses its file.
type FileAccess uint8

// Access modes. AccessNone is an O_PATH open, O_ACCMODE 3, or an operation
// other than open.
const (
	AccessNone FileAccess = iota
	AccessRead
	AccessWrite
	AccessReadWrite
)

// String is the lineaged/v1 file.mode value.
func (a FileAccess) String() string {
	switch a {
	case AccessRead:
		return "read"
	case AccessWrite:
		return "write"
	case AccessReadWrite:
		return "read-write"
	}
	return ""
}

// Access is the access mode an open asked for (its O_ACCMODE bits).
func (f *File) Access() FileAccess {
	if f.Op != FileOpen || f.Flags&unix.O_PATH != 0 {
		return AccessNone
	}
	switch f.Flags & unix.O_ACCMODE {
	case unix.O_RDONLY:
		return AccessRead
	case unix.O_WRONLY:
		return AccessWrite
	case unix.O_RDWR:
		return AccessReadWrite
	}
	return AccessNone
}
