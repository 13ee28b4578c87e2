package sensor

import (
	"context"
	"net/netip"
	"strconv"

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
	// KindTamper: something was done to the sensor itself: a signal, its
	// death, ptrace, a write to its memory, a bpf() command on its objects
	// (Tamper; bpf/tamper.h).
	KindTamper Kind = 13
	// KindFileModify: truncate, utimes, chown, link, symlink, mknod,
	// mkdir, setxattr or removexattr by a session member (File, its Op
	// says which; bpf/fileio_modify.h).
	KindFileModify Kind = 11
	// KindIOURing: a session member's io_uring_setup, or a request it (or
	// its ring's SQPOLL thread) submitted to an io_uring whose opcode
	// opens, creates, removes or renames names or does network
	// operations (bpf/iouring.bpf.c).
	KindIOURing Kind = 12
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
	case KindTamper:
		return "tamper"
	case KindFileModify:
		return "filemod"
	case KindIOURing:
		return "iouring"
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
	Tamper  *Tamper
	IOURing *IOURing
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
	// MntNS is the inode number of the process's mount namespace.
	MntNS uint32
	Comm  string
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
	// ExecViaUsermodeHelper: the process is in its session as a usermode
	// helper the kernel ran (its parent a kernel thread) after a session
	// member set the setting naming it (core_pattern, modprobe, hotplug,
	// uevent_helper), or as such a helper's descendant.
	ExecViaUsermodeHelper ExecFlags = 1 << 7
	// ExecUntracked: Header.Session is the session this exec starts (a
	// recognised agent) or joins (a usermode helper), but the kernel's
	// sessions map was full: the process is no member of it, and its
	// later records do not carry it. Each is one of the Loss "sessions"
	// count of KindExec.
	ExecUntracked ExecFlags = 1 << 8
	// ExecHeld: the process was stopped (SIGSTOP) at this exec, before the
	// new image's first instruction, because its image was one the hold
	// covers (kernel Config.HoldExeFlags): userspace is to hash it and
	// send SIGCONT, or SIGKILL when a deny_exec entry names its SHA-256.
	ExecHeld ExecFlags = 1 << 9
)

// Fork is a new process (not a thread). Header.Proc is the child.
type Fork struct {
	Parent ProcKey
	// Untracked: Header.Session is the forker's, but the kernel could not
	// make the child a member (its sessions map was full): none of the
	// child's records, nor its descendants', carry the session. Each
	// such fork is also one of the Loss "sessions" count of KindFork.
	Untracked bool
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
	// The ops of a KindFileModify record.
	FileTruncate
	FileUtimes
	FileChown
	FileLink
	FileSymlink
	FileMknod
	FileMkdir
	FileSetxattr
	FileRemovexattr
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
	// IA32: made through ia32 emulation (int $0x80); Op is the x86_64
	// equivalent of the i386 call.
	IA32 bool
	// RawPath (NewRawPath) is the name as the caller gave it, when the
	// kernel replaced a /proc link at its start (/proc/self/fd/N/...,
	// /proc/<pid>/cwd/..., /proc/self/root/...) by what the link names.
	RawPath    string
	NewRawPath string
	// PathAsGiven is set when Path or NewPath begins with a /proc link the
	// kernel could not resolve (another process's, a file with no path):
	// it is the literal name.
	PathAsGiven bool
	// NameChanged: the name in the caller's memory differed between the
	// start and the end of the call (another thread rewrote it); Path may
	// not be the name the kernel used. NameUnreadable: the name could not
	// be read at the start (a page not resident); Path was read at the end
	// of the call, and is empty when that failed too.
	NameChanged    bool
	NameUnreadable bool
	// AtEntry: the record was sent when the call began, because the
	// kernel's table of calls in flight was full (members' threads parked
	// inside unlink, rename or chmod); Result is unknown (0).
	AtEntry bool
	// ByHandle: an open_by_handle_at, which names no path; Path is the
	// file it opened.
	ByHandle bool
	// FDChanged: the file was read by descriptor when the call ended
	// (opens, fchmod) and another thread of the process closed or replaced
	// that descriptor during the call: Path and the identity are what the
	// descriptor held then, maybe not the file the call used; when it was
	// closed, Path is the name as given (PathUnresolved).
	FDChanged bool
	// Dev, Ino and MountID identify the opened file (opens and fchmod; 0
	// when there is none): Dev in stat(2)'s encoding, MountID as
	// /proc/<pid>/mountinfo and statx(STATX_MNT_ID) number mounts.
	Dev     uint64
	Ino     uint64
	MountID int32

	// The rest is set by the ops of a KindFileModify record only.
	// Syscall is the x86_64 number of the call (its i386 twin's with
	// IA32). Length: truncate's new size. UID and GID: chown's new owner,
	// -1 when left as is. Rdev: mknod's device (the kernel's encoding).
	// Target: a symlink's content, as given (NewPath is unused). Xattr:
	// the extended attribute's name, as given. Mode carries mkdir's and
	// mknod's mode; NewPath link's new name.
	Syscall uint16
	Length  int64
	UID     int64
	GID     int64
	Rdev    uint32
	Target  string
	Xattr   string
}

// Connect is a network operation by a session member: a connect(2), a
// send naming a destination, or a listen(2) (Op).
type Connect struct {
	Protocol uint8 // IPPROTO_TCP, IPPROTO_UDP; 0 for AF_UNIX
	Family   uint16
	Dst      netip.AddrPort // invalid for AF_UNIX and listen
	Src      netip.AddrPort // may be invalid when not yet bound
	// Result: connect 0, -EINPROGRESS or -errno; sends: bytes (sendmmsg:
	// messages) sent or -errno; listen 0 or -errno.
	Result int32

	// The rest is set by kernels records since the network operations
	// (bpf/fileio_net.h); all zero in a connect record from before.
	Op       NetOp
	SockType uint16 // SOCK_STREAM, SOCK_DGRAM, ...
	// Path is the AF_UNIX destination (listen: the bound name): the socket
	// file's path resolved in the kernel, or with PathAsGiven the name as
	// bound or given; an abstract name (Abstract) without its leading NUL.
	// Raw bytes.
	Path          string
	Abstract      bool
	PathAsGiven   bool
	PathTruncated bool
	// FromCaller: the destination is what the caller's memory held at
	// syscall exit (a failed connect, a send on a socket that keeps no
	// destination), not the kernel's copy.
	FromCaller bool
	// Rewritten: the destination is the socket's, and the caller's
	// sockaddr at exit named something else: it changed during the call.
	Rewritten  bool
	Unreadable bool // the caller's sockaddr could not be read at exit
	IA32       bool // made through ia32 emulation (int $0x80)
	Socketcall bool // made through socketcall(2)
	FastOpen   bool // a send with MSG_FASTOPEN (TCP Fast Open)
	// FDChanged: the socket was read by its descriptor when the connect
	// returned, and another thread closed that descriptor or put another
	// file on it during the call.
	FDChanged bool
	Syscall   uint16 // the syscall number as made (ia32's with IA32)
	Count     uint32 // listen: backlog; sendmmsg: vector length
}

// IOURing is an io_uring operation of a session member: the setup of a
// ring, or a request submitted to one (Op).
type IOURing struct {
	Op IOURingOp
	// Setup: Result is the ring's fd or -errno, Entries the entries
	// argument, SetupFlags io_uring_params.flags (IORING_SETUP_*).
	Result     int32
	Entries    uint32
	SetupFlags uint32
	// Submit: the IORING_OP_* opcode; FD the request's fd (an index in
	// the ring's registered files with FixedFile), -1 when not read.
	Opcode    uint8
	FD        int32
	FixedFile bool
	UserData  uint64
	// DirFD, Path and NewPath: the names of openat, openat2, unlinkat,
	// mkdirat, renameat, linkat and symlinkat (symlinkat: Path is the
	// link's target text, NewPath its name) as the request gave them
	// (PathAsGiven): not resolved, relative to DirFD. Raw bytes.
	DirFD            int32
	Path             string
	NewPath          string
	PathAsGiven      bool
	PathTruncated    bool
	NewPathTruncated bool
	// OpenFlags: open flags (openat, openat2), or the flags of unlinkat,
	// renameat, linkat. Mode: the create mode (openat, openat2, mkdirat).
	OpenFlags uint32
	Mode      uint32
	// Family and Addr: the address of a connect, bind or addressed send
	// (Addr invalid for AF_UNIX, whose path is Path); AddrFromCaller when
	// it is the caller's memory at submission, not the kernel's copy.
	Family         uint16
	Addr           netip.AddrPort
	AddrFromCaller bool
	// SendUnknown: a send reported because this kernel does not show
	// whether it names a destination.
	SendUnknown bool
	// SQPoll: submitted by the ring's SQPOLL kernel thread on the owner's
	// behalf. Unprepared: from the pre-6.0 tracepoint, where the request
	// is not prepared yet (no fd, names or address). IA32: a setup
	// through ia32 emulation. Unreadable: the setup's params could not be
	// read.
	SQPoll     bool
	Unprepared bool
	IA32       bool
	Unreadable bool
	// Killed: a setup under deny_io_uring; the member was sent SIGKILL
	// when the call began.
	Killed bool
}

// IOURingOp is the operation of an IOURing record.
type IOURingOp uint8

// io_uring operations (bpf/fileio.h enum iouring_op).
const (
	IOURingSetup  IOURingOp = 0
	IOURingSubmit IOURingOp = 1
)

func (o IOURingOp) String() string {
	switch o {
	case IOURingSetup:
		return "setup"
	case IOURingSubmit:
		return "submit"
	}
	return "unknown"
}

// IOURingSetupSQPoll is IORING_SETUP_SQPOLL in IOURing.SetupFlags: a
// kernel thread submits the ring's requests.
const IOURingSetupSQPoll = 1 << 1

// ioURingOps names IORING_OP_* (include/uapi/linux/io_uring.h).
var ioURingOps = [...]string{
	"nop", "readv", "writev", "fsync", "read_fixed", "write_fixed",
	"poll_add", "poll_remove", "sync_file_range", "sendmsg", "recvmsg",
	"timeout", "timeout_remove", "accept", "async_cancel", "link_timeout",
	"connect", "fallocate", "openat", "close", "files_update", "statx",
	"read", "write", "fadvise", "madvise", "send", "recv", "openat2",
	"epoll_ctl", "splice", "provide_buffers", "remove_buffers", "tee",
	"shutdown", "renameat", "unlinkat", "mkdirat", "symlinkat", "linkat",
	"msg_ring", "fsetxattr", "setxattr", "fgetxattr", "getxattr",
	"socket", "uring_cmd", "send_zc", "sendmsg_zc", "read_multishot",
	"waitid", "futex_wait", "futex_wake", "futex_waitv",
	"fixed_fd_install", "ftruncate", "bind", "listen", "recv_zc",
	"epoll_wait", "readv_fixed", "writev_fixed", "pipe",
}

// IOURingOpName names an IORING_OP_* opcode ("op_<n>" for one this build
// does not know).
func IOURingOpName(op uint8) string {
	if int(op) < len(ioURingOps) {
		return ioURingOps[op]
	}
	return "op_" + strconv.Itoa(int(op))
}

// NetOp is the network operation of a Connect record.
type NetOp uint8

// Network operations (bpf/fileio.h enum net_op).
const (
	NetConnect NetOp = 0
	NetSend    NetOp = 1
	NetListen  NetOp = 2
)

func (o NetOp) String() string {
	switch o {
	case NetConnect:
		return "connect"
	case NetSend:
		return "send"
	case NetListen:
		return "listen"
	}
	return "unknown"
}

// Loss reports events that never reached the pipeline.
type Loss struct {
	// Where: "ringbuf" (kernel reservation failures), "queue" (reader
	// hand-off overflow), "sessions" (session members the kernel could
	// not track: the sessions map was full; Of is KindFork for children
	// of members, each also a Fork.Untracked record, and KindExec for
	// session roots and usermode helpers, each an ExecUntracked record),
	// "skipped" (runs of a program the kernel skipped because it was
	// already running on that CPU), or another stage name.
	Where string
	// Of is the raw kind lost, when known.
	Of Kind
	// What says what was lost when no one kind does (Where "skipped":
	// the records of one program); "" otherwise.
	What  string
	Count uint64
	// FromNs and ToNs bound, in boot-clock nanoseconds, a window in which
	// events were not seen when their count is unknown (Where
	// "detached": a program was detached); 0 when not given.
	FromNs, ToNs uint64
}

// DenyKeyPseudo is the deny key (Config.DenyKeys of sensor/kernel) that
// makes the kernel refuse a member's exec of an image with no path: a
// memfd (the deny_exec entry "memfd"). It cannot be a path: paths start
// with '/'.
const DenyKeyPseudo = "\x01"

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

// TamperOp is what was done to the sensor (bpf/tamper.h enum tamper_op).
type TamperOp uint8

// Tamper operations.
const (
	TamperSignal     TamperOp = 1 // a signal sent to the sensor
	TamperSensorExit TamperOp = 2 // the sensor died while registered: killed or crashed
	TamperPtrace     TamperOp = 3 // ptrace aimed at the sensor
	TamperVMWrite    TamperOp = 4 // process_vm_writev into the sensor
	TamperPidfdGetfd TamperOp = 5 // pidfd_getfd on a pidfd of the sensor
	TamperBPF        TamperOp = 6 // a bpf() command on the sensor's map, program or link
	// Found by the sensor's self-check (userspace), not by the kernel:
	TamperDetached    TamperOp = 7 // one of its programs was found detached; attached again
	TamperRecognisers TamperOp = 8 // the recognisers map was changed; restored
	TamperMembership  TamperOp = 9 // a session member's entry was deleted from the sessions map; restored
	// TamperLoginUID: a session member's login uid is not the one its
	// session started with (a write to /proc/<pid>/loginuid). Arg is the
	// new value, Code the session's.
	TamperLoginUID TamperOp = 10
	// TamperTrustAnchor: a process other than the package manager wrote
	// one of the files the sensor's verdicts and the host's trust rest on
	// (sensor/trustwatch): Path is the file, Anchor its class. Seen by a
	// fanotify watch in userspace, for every process.
	TamperTrustAnchor TamperOp = 11
	// TamperProcMem: a session member opened the sensor's
	// /proc/<pid>/mem (or a thread's) for writing: Path is the file,
	// Code the open's result (0 or -errno). Seen in the member's open
	// record.
	TamperProcMem TamperOp = 12
)

func (o TamperOp) String() string {
	switch o {
	case TamperSignal:
		return "signal"
	case TamperSensorExit:
		return "sensor-exit"
	case TamperPtrace:
		return "ptrace"
	case TamperVMWrite:
		return "process-vm-write"
	case TamperPidfdGetfd:
		return "pidfd-getfd"
	case TamperBPF:
		return "bpf"
	case TamperDetached:
		return "detached"
	case TamperRecognisers:
		return "recognisers-changed"
	case TamperMembership:
		return "membership-deleted"
	case TamperLoginUID:
		return "loginuid"
	case TamperTrustAnchor:
		return "trust-anchor"
	case TamperProcMem:
		return "proc-mem-write"
	}
	return "unknown"
}

// Tamper is something done to the sensor. Header.Proc is who did it (for
// TamperSensorExit, the sensor itself) and Header.Session its session.
type Tamper struct {
	Op TamperOp
	// Target is the sensor process acted on (StartNs at /proc's
	// clock-tick resolution).
	Target ProcKey
	// Arg: the signal (TamperSignal), the ptrace request, the target fd
	// (TamperPidfdGetfd) or the bpf command (TamperBPF).
	Arg uint32
	// Code: the signal's si_code, or the sensor's exit status
	// (TamperSensorExit, as wait(2) encodes it).
	Code int32
	// Result is the kernel's signal_generate result (0 delivered, 1
	// ignored, ...).
	Result int32
	// Object ("map", "prog", "link") and ObjectID name the BPF object of
	// a TamperBPF.
	Object   string
	ObjectID uint32
	// Comm is the actor's command name.
	Comm string
	// Program is the sensor's program found detached (TamperDetached).
	Program string
	// Refused: the kernel denied the operation (BPF LSM).
	Refused bool
	// Path and Anchor name the file written and its class
	// (TamperTrustAnchor: package-db, signatures, trusted-key, lineaged,
	// ld-preload, sudoers).
	Path   string
	Anchor string
}
