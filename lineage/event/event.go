// Package event defines the enriched event of the lineaged contract: what
// lineage builds, what the policy stage judges and what the encoders in sink/
// write. Field names are a contract with SIEM users (docs/schema.md): add
// freely, rename or drop only with a schema version bump.
//
// The model is always whole: every ancestor with every field, every posture
// check. The output shape (lineaged/v2's compact ancestry and posture by
// reference, or lineaged/v1's whole objects) is the encoders' choice, so
// rules see the same event whatever the output.
//
// Strings hold raw bytes as the kernel reported them; they are not
// necessarily valid UTF-8. Encoders are responsible for lossless, marked
// encoding of invalid sequences.
package event

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"time"

	"github.com/google/uuid"
)

// Schema is the value of the schema field: the current contract.
const Schema = "lineaged/v2"

// SchemaV1 is the previous contract, still written for one release when the
// output asks for it (events.schema: v1): whole ancestors and every posture
// check on every event.
const SchemaV1 = "lineaged/v1"

// Shapes of the ancestry list in the output (events.ancestry).
const (
	// AncestryCompact keeps every ancestor with its identity (exec_id,
	// pid, start_time, exe, uid, user), its binary's sha256, verdict and
	// signer, and argv bounded to MaxAncestorArgvBytes. The default.
	AncestryCompact = "compact"
	// AncestryFull writes every ancestor as a whole process object.
	AncestryFull = "full"
	// AncestrySession is compact, but an event of an agent session lists
	// its ancestors only up to the session's root (agent.root_exec_id),
	// the last one; the root's own ancestors are on the session's
	// agent.session_start and on every event of the root process.
	AncestrySession = "session"
)

// AtRoot returns ev with its ancestry cut after the ancestor that is its
// session's root (AncestrySession): ev itself when there is nothing to
// cut, otherwise a shallow copy (ev is left as it is).
func AtRoot(ev *Event) *Event {
	if ev == nil || ev.Agent == nil || ev.Agent.RootExecID == "" {
		return ev
	}
	for i := range ev.Ancestry {
		if ev.Ancestry[i].ExecID == ev.Agent.RootExecID {
			if i == len(ev.Ancestry)-1 {
				return ev
			}
			c := *ev
			c.Ancestry = ev.Ancestry[: i+1 : i+1]
			return &c
		}
	}
	return ev
}

// MaxAncestorArgvBytes bounds the argv of each ancestor in compact
// ancestry; a longer one is cut and flagged argv_truncated.
const MaxAncestorArgvBytes = 256

// PostureDetailed reports whether events of kind carry the posture's
// per-check results in lineaged/v2: only the posture events do; the others
// carry the sample's time, compliant and failed.
func PostureDetailed(kind string) bool {
	return kind == KindPostureSample || kind == KindPostureChange
}

// Kinds of enriched events.
const (
	KindProcessExec = "process.exec"
	KindProcessExit = "process.exit"
	KindProcessFork = "process.fork"
	KindFileOpen    = "file.open"
	KindFileDelete  = "file.delete"
	KindFileRename  = "file.rename"
	KindFileChmod   = "file.chmod"
	// KindFileModify is any other change to a file by a session member:
	// File.Op says which (FileOp* below).
	KindFileModify    = "file.modify"
	KindNetConnect    = "net.connect"
	KindPostureSample = "posture.sample"
	KindPostureChange = "posture.change"
	KindPolicyAlert   = "policy.alert"
	KindPolicyAction  = "policy.action"
	KindSensorStart   = "sensor.start"
	KindSensorStop    = "sensor.stop"
	KindSensorLoss    = "sensor.loss"
	// KindAgentToolCall is one tool call an agent's hook asked the sensor
	// about (docs/hooks.md), allowed or denied.
	KindAgentToolCall = "agent.tool_call"
	// KindProcessBinary follows a process.exec that went out before its
	// binary was hashed (partial "binary"): the same exec_id, with the
	// binary's identity once known.
	KindProcessBinary = "process.binary"
	// KindSensorCheckpoint is a signed checkpoint of the output's hash
	// chain (docs/audit.md): at an interval, before a file rotation and at
	// stop.
	KindSensorCheckpoint = "sensor.checkpoint"
	// KindAgentSessionStart and KindAgentSessionEnd summarise an agent
	// session: its first event, and its end with what it did (Session).
	KindAgentSessionStart = "agent.session_start"
	KindAgentSessionEnd   = "agent.session_end"
	// KindSensorTamper is something done to the sensor itself: a signal,
	// its death, ptrace, a write to its memory, a bpf() command on its
	// kernel objects (docs/threat-model.md, Tamper).
	KindSensorTamper = "sensor.tamper"
)

// Kinds of io_uring operations of session members (docs/schema.md#io_uring):
// the work of a request submitted to a ring bypasses the syscalls the file
// and network events come from.
const (
	// KindIOURingSetup is a member's io_uring_setup(2).
	KindIOURingSetup = "io_uring.setup"
	// KindIOURingSubmit is a request a member (or its ring's SQPOLL
	// thread) submitted whose opcode opens, creates, removes or renames
	// names, does network operations, changes xattrs, truncates,
	// installs fds or passes a uring_cmd.
	KindIOURingSubmit = "io_uring.submit"
)

// Kinds of the network operations beyond connect.
const (
	// KindNetSend is a send that named its destination (sendto, sendmsg,
	// sendmmsg): unconnected UDP, TCP Fast Open, AF_UNIX datagrams.
	KindNetSend = "net.send"
	// KindNetListen is a listen(2): the process opened a listening port
	// (or AF_UNIX socket).
	KindNetListen = "net.listen"
)

// Event is one enriched event.
type Event struct {
	Schema   string    `json:"schema"`
	EventID  string    `json:"event_id"`
	Seq      uint64    `json:"seq"`
	Time     time.Time `json:"time"`
	Kind     string    `json:"kind"`
	Host     *Host     `json:"host,omitempty"`
	Process  *Process  `json:"process,omitempty"`
	Ancestry []Process `json:"ancestry,omitempty"`
	Agent    *Agent    `json:"agent,omitempty"`
	Identity *Identity `json:"identity,omitempty"`
	Posture  *Posture  `json:"posture,omitempty"`
	File     *File     `json:"file,omitempty"`
	Net      *Net      `json:"net,omitempty"`
	Exit     *Exit     `json:"exit,omitempty"`
	Loss     *Loss     `json:"loss,omitempty"`
	Sensor   *Sensor   `json:"sensor,omitempty"`
	Alert    *Alert    `json:"alert,omitempty"`
	Tool     *ToolCall `json:"tool,omitempty"`
	Session  *Session  `json:"session,omitempty"`
	// Checkpoint is the body of a sensor.checkpoint, filled by the sink's
	// chain stage (docs/audit.md).
	Checkpoint *Checkpoint `json:"checkpoint,omitempty"`
	Tamper     *Tamper     `json:"tamper,omitempty"`
	// IOURing is what an io_uring.setup or io_uring.submit reports.
	IOURing *IOURing `json:"io_uring,omitempty"`
	// Partial names the parts enrichment could not complete ("process",
	// "ancestry", "binary"): the event was emitted with what was known
	// rather than held back or dropped.
	Partial []string `json:"partial,omitempty"`
	// Untracked is set on a process.fork whose child, or a process.exec
	// (an agent starting a session, a usermode helper joining one) whose
	// process, the kernel could not make a member of the session the event
	// names: its sessions map was full. Nothing the process does later, nor
	// anything it starts, is reported in that session (docs/schema.md).
	// Policy events copying such an event keep it.
	Untracked bool `json:"untracked,omitempty"`
	// Deny is a kernel deny-exec record on its way from lineage to the
	// policy stage, which turns it into policy events and clears it.
	// Encoders never write it.
	Deny *Deny `json:"-"`
}

// IOURing is an io_uring operation of a session member.
type IOURing struct {
	// Setup: the ring's fd or -errno (Result), the entries asked for,
	// io_uring_params.flags (SetupFlags) and whether they ask for a
	// kernel submission thread (SQPoll).
	Result     int32  `json:"result,omitempty"`
	Entries    uint32 `json:"entries,omitempty"`
	SetupFlags uint32 `json:"setup_flags,omitempty"`
	// Submit: the opcode (IORING_OP_*) by name and number (never 0: a
	// nop is not reported).
	Op     string `json:"op,omitempty"`
	Opcode uint8  `json:"opcode,omitempty"`
	// SQPoll: setup asked for IORING_SETUP_SQPOLL; submit: the ring's
	// SQPOLL kernel thread submitted the request on the owner's behalf.
	SQPoll bool `json:"sqpoll,omitempty"`
	// FD is the request's fd (an index in the ring's registered files
	// with FixedFile); absent when not read.
	FD        *int32 `json:"fd,omitempty"`
	FixedFile bool   `json:"fixed_file,omitempty"`
	// DirFD, Path and NewPath: the names of openat, openat2, unlinkat,
	// mkdirat, renameat, linkat, symlinkat (symlinkat: path is the link's
	// target text, new_path its name) exactly as the request gave them
	// (path_source "as-given"): not resolved, relative to dir_fd (-100
	// is AT_FDCWD).
	DirFD            *int32 `json:"dir_fd,omitempty"`
	Path             string `json:"path,omitempty"`
	NewPath          string `json:"new_path,omitempty"`
	PathSource       string `json:"path_source,omitempty"`
	PathTruncated    bool   `json:"path_truncated,omitempty"`
	NewPathTruncated bool   `json:"new_path_truncated,omitempty"`
	// Flags: open flags (openat, openat2) or the flags of unlinkat,
	// renameat, linkat; Perm the create mode (openat, openat2, mkdirat).
	Flags uint32  `json:"flags,omitempty"`
	Perm  *uint32 `json:"perm,omitempty"`
	// Family, DstIP, DstPort, UnixPath: a connect's destination, from
	// the caller's memory at submission (DstSource "caller").
	Family    string `json:"family,omitempty"`
	DstIP     string `json:"dst_ip,omitempty"`
	DstPort   uint16 `json:"dst_port,omitempty"`
	UnixPath  string `json:"unix_path,omitempty"`
	DstSource string `json:"dst_source,omitempty"`
	// SendUnknown: a send, reported because whether it names a
	// destination is not visible to the sensor.
	SendUnknown bool `json:"send_unknown,omitempty"`
	// Unprepared: from a kernel (5.5-5.19) whose tracepoint fires before
	// the request is prepared: no fd, names or address.
	Unprepared bool `json:"unprepared,omitempty"`
	// SyscallABI is "ia32" for a setup made through 32-bit emulation.
	SyscallABI string `json:"syscall_abi,omitempty"`
	// ParamsUnreadable: the setup's io_uring_params could not be read.
	ParamsUnreadable bool `json:"params_unreadable,omitempty"`
	// Killed: a setup under policy deny_io_uring: the kernel sent the
	// member SIGKILL when the call began, so it never used the ring.
	Killed   bool   `json:"killed,omitempty"`
	UserData uint64 `json:"user_data,omitempty"`
}

// Parts that Event.Partial can name.
const (
	PartialProcess  = "process"
	PartialAncestry = "ancestry"
	PartialBinary   = "binary"
)

// Host identifies the machine the sensor runs on.
type Host struct {
	Hostname  string `json:"hostname"`
	MachineID string `json:"machine_id"`
	BootID    string `json:"boot_id"`
	OS        string `json:"os"`
	Kernel    string `json:"kernel"`
}

// Process is one process image (one exec). Ancestors use the same shape.
type Process struct {
	ExecID       string    `json:"exec_id"`
	ParentExecID string    `json:"parent_exec_id,omitempty"`
	PID          uint32    `json:"pid"`
	PPID         uint32    `json:"ppid"`
	StartTime    time.Time `json:"start_time"`
	Exe          string    `json:"exe,omitempty"`
	Argv         []string  `json:"argv,omitempty"`
	// ArgvTruncated is set when argv was bounded in the kernel or the encoder.
	ArgvTruncated bool    `json:"argv_truncated,omitempty"`
	Cwd           string  `json:"cwd,omitempty"`
	UID           uint32  `json:"uid"`
	EUID          uint32  `json:"euid"`
	GID           uint32  `json:"gid"`
	User          string  `json:"user,omitempty"`
	LoginUID      *uint32 `json:"login_uid,omitempty"` // nil when unset (4294967295)
	LoginUser     string  `json:"login_user,omitempty"`
	TTY           string  `json:"tty,omitempty"`
	Cgroup        string  `json:"cgroup,omitempty"`
	// ContainerID is the container the cgroup names (docker, containerd,
	// CRI-O, podman, kubepods), "" when it names none.
	ContainerID string `json:"container_id,omitempty"`
	// MntNS is the process's mount namespace (its inode number) when it
	// is not the host's: its paths are that namespace's.
	MntNS  uint32  `json:"mnt_ns,omitempty"`
	Binary *Binary `json:"binary,omitempty"`
	// CurrentParentExecID is set when the process was reparented (to pid 1
	// or a subreaper): ParentExecID stays the parent it was born with.
	CurrentParentExecID string `json:"current_parent_exec_id,omitempty"`
	// ExeFlags says when Exe is not an ordinary path (ExeMemfd,
	// ExeDeleted, ExeOutsideRoot), as the kernel's path walk found it.
	ExeFlags []string `json:"exe_flags,omitempty"`
	// Loaded is the program a dynamic loader exec'd as a program
	// (`ld-linux-x86-64.so.2 ./payload`) was asked to run: Exe and Binary
	// are the loader's. Verdict error with a reason when it could not be
	// read (a bare name the loader searches for is named as given).
	Loaded *Binary `json:"loaded,omitempty"`
	// AgentLookalike marks an image whose path the agent table recognises
	// but that started inside an agent session without a verified binary:
	// it is an ordinary member of that session, not a nested agent
	// (docs/agents.md, "Agent identity").
	AgentLookalike bool `json:"agent_lookalike,omitempty"`
	// Held marks an image the kernel stopped at exec to be hashed before
	// it ran (hashing.hold_exec): a session member's memfd or deleted
	// file. It was then continued, or killed when a deny_exec sha256:
	// entry named its hash (docs/rules.md, "The deny list").
	Held bool `json:"held,omitempty"`
}

// Values of Process.ExeFlags.
const (
	// ExeMemfd: the file has no path (a memfd or another pseudo file,
	// fexecve'd): Exe is its name, with no leading '/'.
	ExeMemfd = "memfd"
	// ExeDeleted: the file had been unlinked: Exe is its last path.
	ExeDeleted = "deleted"
	// ExeOutsideRoot: the file is not under the process's root (chroot,
	// or a file opened before pivot_root): Exe is from its mount's root.
	ExeOutsideRoot = "outside-root"
)

// Verdicts of binary identity.
const (
	VerdictSignedTrusted   = "signed-trusted"
	VerdictSignedUntrusted = "signed-untrusted"
	VerdictPackageVerified = "package-verified"
	VerdictPackageModified = "package-modified"
	// VerdictPackageUntrusted: the package record the binary matches was
	// written by a process other than the package manager.
	VerdictPackageUntrusted = "package-untrusted"
	VerdictUnsigned         = "unsigned"
	VerdictError            = "error"
)

// Binary is the identity of an executable file.
type Binary struct {
	Path    string    `json:"path"`
	SHA256  string    `json:"sha256,omitempty"`
	Size    int64     `json:"size"`
	Inode   uint64    `json:"inode"`
	Dev     uint64    `json:"dev"`
	Mtime   time.Time `json:"mtime"`
	Verdict string    `json:"verdict"`
	Package string    `json:"package,omitempty"`
	Signer  string    `json:"signer,omitempty"`
	KeyID   string    `json:"key_id,omitempty"`
	Reason  string    `json:"reason,omitempty"`
}

// Agent roles.
const (
	RoleRoot       = "root"
	RoleTool       = "tool"
	RoleMCPServer  = "mcp-server"
	RoleHook       = "hook"
	RoleDescendant = "descendant"
)

// Agent ties an event to the agent session and tool call that caused it.
type Agent struct {
	Name       string   `json:"name"`
	Version    string   `json:"version,omitempty"`
	SessionID  string   `json:"session_id,omitempty"`
	RootExecID string   `json:"root_exec_id"`
	Role       string   `json:"role"`
	ToolUse    *ToolUse `json:"tool_use,omitempty"`
	// SessionIDHint marks a session_id read from the environment of a
	// process below the agent's direct children (memory a session member
	// writes), not from the agent's argv, its direct children or its
	// transcript: a hint, not established.
	SessionIDHint bool `json:"session_id_hint,omitempty"`
	// ParentSessionRootExecID links a nested agent session to the session
	// whose tool started it.
	ParentRootExecID string `json:"parent_root_exec_id,omitempty"`
	// Via says how a process left its session's kernel lineage and was
	// put back into it: ViaUsermodeHelper. Empty for an ordinary member.
	Via string `json:"via,omitempty"`
	// Verified, Verification and VerifiedAt say whether the session's root
	// binary is the agent it looks like (docs/agents.md, "Agent
	// identity"): Verification is "hash-list" or "signature" (Verified
	// true), "unverified" (the path matched the agent table, the binary is
	// no known release: agent-unverified) or "pending" (not known yet).
	// VerifiedAt is when lineage settled it; nil while pending.
	Verified     *bool      `json:"verified,omitempty"`
	Verification string     `json:"verification,omitempty"`
	VerifiedAt   *time.Time `json:"verified_at,omitempty"`
	// Release is the known release the root binary matched.
	Release string `json:"release,omitempty"`
}

// ViaUsermodeHelper: the kernel ran the process (or its ancestor) as a
// usermode helper (core_pattern, modprobe, hotplug, uevent_helper) that a
// member of the session had set; its parent is a kernel thread. Inferred
// from the setting's value, not from a kernel lineage.
const ViaUsermodeHelper = "usermode-helper"

// ToolUse is the agent's tool call.
type ToolUse struct {
	ID   string `json:"id"`
	Name string `json:"name"`
	// Attribution is how the tie was made (AttributionExact...); empty on
	// a placeholder still waiting for its tool_use id.
	Attribution string `json:"attribution,omitempty"`
	// NoHookDecision marks a tool process of a session whose agent asks
	// lineaged's hook about its tool calls, started with no hook decision
	// naming it: the call went around the hook.
	NoHookDecision bool `json:"no_hook_decision,omitempty"`
}

// How a tool call was tied to a process or file event.
const (
	// AttributionExact: the agent's PreToolUse hook named the call (its
	// tool_use id and input) before the process started.
	AttributionExact = "exact"
	// AttributionTranscript: the session transcript's tool_use record
	// whose command (Bash) equals the process's.
	AttributionTranscript = "transcript"
	// AttributionPath: a Read, Write or Edit call naming the file's path.
	AttributionPath = "path"
	// AttributionUntrusted: tied through the transcript (as transcript or
	// path) while something other than the agent's own process wrote to
	// the transcript (or it has another hard link): a session member may
	// have forged the record.
	AttributionUntrusted = "untrusted"
)

// Tool-call decisions.
const (
	DecisionAllow = "allow"
	DecisionDeny  = "deny"
)

// ToolCall is a tool call as the agent's hook reported it (agent.tool_call,
// and the policy.action of a deny-tool).
type ToolCall struct {
	// ID is the agent's tool_use id; Name the tool (Bash, Write, an MCP
	// tool's mcp__server__tool name).
	ID   string `json:"id"`
	Name string `json:"name"`
	// Hook is the hook event that reported it (PreToolUse).
	Hook string `json:"hook"`
	// SessionID is the agent's own session id, as the hook reported it
	// (agent.session_id of the session's other events).
	SessionID string `json:"session_id,omitempty"`
	// Input is a redacted summary of the tool's input: its keys, each
	// value shortened and redacted.
	Input map[string]string `json:"input,omitempty"`
	// Decision is allow or deny; Rule the rule that denied it and Reason
	// the text the agent was given.
	Decision string `json:"decision"`
	Rule     string `json:"rule,omitempty"`
	Reason   string `json:"reason,omitempty"`
	// Outcome is how the call ended, reported after it ran (hook
	// PostToolUse: success; PostToolUseFailure: failure or interrupted);
	// DurationMS how long it took, as the agent measured it.
	Outcome    string  `json:"outcome,omitempty"`
	DurationMS *uint64 `json:"duration_ms,omitempty"`
}

// Tool-call outcomes.
const (
	OutcomeSuccess     = "success"
	OutcomeFailure     = "failure"
	OutcomeInterrupted = "interrupted"
)

// Identity is who is behind the event.
type Identity struct {
	User       string  `json:"user,omitempty"`
	UID        uint32  `json:"uid"`
	LoginUser  string  `json:"login_user,omitempty"`
	LoginUID   *uint32 `json:"login_uid,omitempty"`
	Human      *Human  `json:"human,omitempty"`
	VerifiedBy string  `json:"verified_by,omitempty"`
}

// Human is the person behind a login, from the admin's mapping.
type Human struct {
	Name  string `json:"name"`
	Email string `json:"email,omitempty"`
}

// Posture is the device posture sample in force at event time.
type Posture struct {
	SampledAt time.Time        `json:"sampled_at"`
	Compliant bool             `json:"compliant"`
	Failed    []string         `json:"failed,omitempty"`
	Checks    map[string]Check `json:"checks,omitempty"`
}

// Check is one posture check result.
type Check struct {
	OK     bool   `json:"ok"`
	Detail string `json:"detail,omitempty"`
}

// File modes.
const (
	ModeRead      = "read"
	ModeWrite     = "write"
	ModeReadWrite = "read-write"
)

// File is the object of a file event.
type File struct {
	Path          string  `json:"path"`
	PathTruncated bool    `json:"path_truncated,omitempty"`
	Mode          string  `json:"mode,omitempty"`
	Created       bool    `json:"created,omitempty"`
	NewPath       string  `json:"new_path,omitempty"`
	Flags         uint32  `json:"flags,omitempty"`
	Perm          *uint32 `json:"perm,omitempty"` // chmod / create mode bits
	Result        int32   `json:"result,omitempty"`
	// SyscallABI is "ia32" for a call made through 32-bit emulation
	// (int $0x80, from a 32-bit program or a 64-bit one).
	SyscallABI string `json:"syscall_abi,omitempty"`
	// PathSource is where Path comes from (PathSource* below).
	PathSource string `json:"path_source,omitempty"`
	// RawPath (NewRawPath) is the name as the caller gave it when the
	// kernel replaced a /proc link at its start by what the link names.
	RawPath    string `json:"raw_path,omitempty"`
	NewRawPath string `json:"new_raw_path,omitempty"`
	// NameChanged: the name in the caller's memory differed between the
	// start and the end of the call. NameUnreadable: it could not be read
	// at the start; the path was read at the end.
	NameChanged    bool `json:"name_changed,omitempty"`
	NameUnreadable bool `json:"name_unreadable,omitempty"`
	// AtEntry: sent when the call began (the kernel's table of calls in
	// flight was full); the result is unknown.
	AtEntry bool `json:"at_entry,omitempty"`
	// ByHandle: opened by open_by_handle_at; the path is the file opened.
	ByHandle bool `json:"by_handle,omitempty"`
	// FDChanged: another thread closed or replaced the descriptor the
	// file was read by during the call: the path and identity may not be
	// the file the call used.
	FDChanged bool `json:"fd_changed,omitempty"`
	// Exchange: a renameat2 with RENAME_EXCHANGE, which swaps path and
	// new_path: both still exist.
	Exchange bool `json:"exchange,omitempty"`
	// Dev, Inode and MountID identify the opened file whatever name it
	// was reached by (opens and fchmod; 0 when there is none).
	Dev     uint64 `json:"dev,omitempty"`
	Inode   uint64 `json:"inode,omitempty"`
	MountID int32  `json:"mount_id,omitempty"`

	// file.modify only (FileOp* below). Op is the change; Syscall the
	// call's name. Length: truncate's new size. UID and GID: chown's new
	// owner, -1 when left as is. Rdev: mknod's device number (major <<
	// 20 | minor). Target: a symlink's content, as given (path is the
	// link). Xattr: the extended attribute's name. Perm carries mkdir's
	// and mknod's mode (with mknod's file type), new_path link's new name.
	Op      string `json:"op,omitempty"`
	Syscall string `json:"syscall,omitempty"`
	Length  *int64 `json:"length,omitempty"`
	UID     *int64 `json:"uid,omitempty"`
	GID     *int64 `json:"gid,omitempty"`
	Rdev    uint32 `json:"rdev,omitempty"`
	Target  string `json:"target,omitempty"`
	Xattr   string `json:"xattr,omitempty"`
}

// File.Op values of a file.modify event.
const (
	FileOpTruncate    = "truncate"
	FileOpUtimes      = "utimes"
	FileOpChown       = "chown"
	FileOpLink        = "link"
	FileOpSymlink     = "symlink"
	FileOpMknod       = "mknod"
	FileOpMkdir       = "mkdir"
	FileOpSetxattr    = "setxattr"
	FileOpRemovexattr = "removexattr"
)

// File.PathSource values.
const (
	// PathSourceKernel: walked from the opened file; relative names,
	// symlinks and ".." resolved.
	PathSourceKernel = "kernel"
	// PathSourceName: the caller's name, joined in the kernel to the
	// directory it is relative to (dirfd, cwd, or the fd, cwd or root a
	// /proc link names); symlinks and ".." in the rest remain.
	PathSourceName = "name"
	// PathSourceAsGiven: the literal name; it begins with a /proc link the
	// kernel could not resolve (another process's, a closed fd).
	PathSourceAsGiven = "as-given"
)

// Net is the object of a network event.
type Net struct {
	Protocol string `json:"protocol"`
	Family   string `json:"family"`
	DstIP    string `json:"dst_ip"`
	DstPort  uint16 `json:"dst_port"`
	SrcIP    string `json:"src_ip,omitempty"`
	SrcPort  uint16 `json:"src_port,omitempty"`
	Result   int32  `json:"result,omitempty"`

	// Set by kernels that report the network operations (docs/schema.md#net).

	// SocketType: "stream", "dgram", "seqpacket", "raw".
	SocketType string `json:"socket_type,omitempty"`
	// UnixPath is an AF_UNIX destination (net.listen: the bound name):
	// the socket file's path, or an abstract name (UnixAbstract).
	UnixPath          string `json:"unix_path,omitempty"`
	UnixAbstract      bool   `json:"unix_abstract,omitempty"`
	UnixPathAsGiven   bool   `json:"unix_path_as_given,omitempty"`
	UnixPathTruncated bool   `json:"unix_path_truncated,omitempty"`
	// DstSource says where the destination was read: "socket" (the
	// kernel's copy) or "caller" (the caller's memory at syscall exit).
	DstSource string `json:"dst_source,omitempty"`
	// DstRewritten: the caller's sockaddr at exit named another
	// destination than the socket's (changed during the call).
	DstRewritten bool `json:"dst_rewritten,omitempty"`
	// SockaddrUnreadable: the caller's sockaddr could not be read at exit.
	SockaddrUnreadable bool `json:"sockaddr_unreadable,omitempty"`
	// SyscallABI is "ia32" for a call through 32-bit emulation (int $0x80).
	SyscallABI string `json:"syscall_abi,omitempty"`
	Socketcall bool   `json:"socketcall,omitempty"`
	FastOpen   bool   `json:"fastopen,omitempty"`
	// FDChanged: the socket was read by its descriptor when the connect
	// returned, and another thread of the process closed that descriptor
	// or put another file on it during the call: the destination may be
	// the socket that took the number.
	FDChanged bool   `json:"fd_changed,omitempty"`
	Backlog   uint32 `json:"backlog,omitempty"`  // net.listen
	Messages  uint32 `json:"messages,omitempty"` // net.send by sendmmsg: vector length
}

// Exit is how a process ended.
type Exit struct {
	Code       int32 `json:"code"`
	Signal     int32 `json:"signal,omitempty"`
	CoreDumped bool  `json:"core_dumped,omitempty"`
	// RepeatedOpens counts the process's read-only opens not reported
	// because the same image had opened the same file with the same
	// flags before (sensor.Exit.RepeatedOpens).
	RepeatedOpens uint32 `json:"repeated_opens,omitempty"`
}

// Loss reports events that were lost before reaching this output.
type Loss struct {
	Where string `json:"where"`
	Of    string `json:"of,omitempty"`
	Count uint64 `json:"count"`
	// RootExecID names the session whose records were lost, when the loss
	// is one session's (Where "session-budget"): its agent.root_exec_id.
	RootExecID string `json:"root_exec_id,omitempty"`
	// FirstSeq and LastSeq are the seq range of the lost events when they
	// had been numbered (dropped from the Kafka spool); 0 when they never
	// were (lost in the kernel or before the sequencer).
	FirstSeq uint64 `json:"first_seq,omitempty"`
	LastSeq  uint64 `json:"last_seq,omitempty"`
	// From and To bound the time of the lost events: the event times of
	// the dropped records, or the window since the previous report of the
	// same loss when the events themselves were never seen. Zero: unknown.
	From time.Time `json:"from,omitempty"`
	To   time.Time `json:"to,omitempty"`
}

// Sensor describes the sensor for sensor.* events.
type Sensor struct {
	Version    string `json:"version"`
	InstanceID string `json:"instance_id"`
	Scope      string `json:"scope,omitempty"`
	Source     string `json:"source,omitempty"` // "live" or "replay:<file>"
	Hooks      string `json:"hooks,omitempty"`  // "tracepoint" or the richer path in use
	Reason     string `json:"reason,omitempty"`
	// PreviousInstanceID and PreviousEnd describe the run before this one
	// on sensor.start, from the audit state directory: how it ended, stop
	// (a clean stop with its final checkpoint) or crash.
	PreviousInstanceID string `json:"previous_instance_id,omitempty"`
	PreviousEnd        string `json:"previous_end,omitempty"`
}

// How the previous run ended (Sensor.PreviousEnd).
const (
	PreviousEndStop  = "stop"
	PreviousEndCrash = "crash"
)

// Checkpoint is what a sensor.checkpoint covers and commits to; the
// signature itself is in the line's chain member (docs/audit.md).
type Checkpoint struct {
	// Reason is interval, rotation or stop.
	Reason string `json:"reason"`
	// Epoch numbers the signing keys: epoch N is signed by the key that
	// checkpoint N-1 announced in NextKey (epoch 0: the key printed by
	// lineaged key). It continues across runs.
	Epoch      uint64 `json:"epoch"`
	InstanceID string `json:"instance_id"`
	// Head is the chain hash of the line before this checkpoint in the
	// same output stream.
	Head string `json:"head"`
	// FirstSeq..LastSeq is the seq range of the events written since the
	// previous checkpoint of this run (Events of them).
	FirstSeq uint64 `json:"first_seq,omitempty"`
	LastSeq  uint64 `json:"last_seq,omitempty"`
	Events   uint64 `json:"events"`
	// Loss counts the events sensor.loss reported lost in this run so far,
	// by where.
	Loss map[string]uint64 `json:"loss,omitempty"`
	// Algorithm is ed25519 or ecdsa-p256; KeyID the SHA-256 of the signing
	// key's DER public key (hex); NextKey the next epoch's public key,
	// base64 DER (SubjectPublicKeyInfo).
	Algorithm string `json:"algorithm"`
	KeyID     string `json:"key_id"`
	NextKey   string `json:"next_key"`
}

// Checkpoint reasons.
const (
	CheckpointInterval = "interval"
	CheckpointRotation = "rotation"
	CheckpointStop     = "stop"
)

// Alert is a policy finding or action.
type Alert struct {
	Rule     string `json:"rule"`
	Severity string `json:"severity"`
	Message  string `json:"message"`
	Action   string `json:"action,omitempty"`
	// Result is how a rule's action went (policy.action of kill-process and
	// kill-session): done, gone (nothing left to act on) or failed, with
	// the reason in Message.
	Result string `json:"result,omitempty"`
	// Killed counts the processes a kill action signalled (policy.action
	// of kill-process and kill-session, with result done or failed).
	Killed *int `json:"killed,omitempty"`
	// Mitre lists the MITRE ATT&CK technique ids of the rule
	// (policy.alert), e.g. T1552.004.
	Mitre []string `json:"mitre,omitempty"`
	// TriggerEventID is the event_id of the event the rule matched
	// (policy.alert).
	TriggerEventID string `json:"trigger_event_id,omitempty"`
	// Trigger is that event while it has no event_id yet: the sequencer
	// fills TriggerEventID from it and clears it. Never encoded.
	Trigger *Event `json:"-"`
}

// Tamper is what a sensor.tamper reports. The event's process is who did
// it (for action sensor-exit, the last process that signalled the sensor,
// or the sensor itself after a crash), with its session and tool call when
// it is an agent-session member.
type Tamper struct {
	// Action: signal, sensor-exit, ptrace, process-vm-write, pidfd-getfd
	// or bpf (seen by the kernel), detached, recognisers-changed or
	// membership-deleted (found and repaired by the sensor's self-check),
	// loginuid (a session member changed its login uid).
	Action string `json:"action"`
	// SensorPID is the sensor process acted on.
	SensorPID uint32 `json:"sensor_pid"`
	// Signal is the signal sent (signal) or the one the sensor died of
	// (sensor-exit).
	Signal int `json:"signal,omitempty"`
	// ExitCode is the sensor's exit code when it exited without a signal
	// (sensor-exit).
	ExitCode int `json:"exit_code,omitempty"`
	// Request names the ptrace request or the bpf command
	// (PTRACE_SEIZE, BPF_MAP_DELETE_ELEM), or the fd taken (pidfd-getfd).
	Request string `json:"request,omitempty"`
	// Object ("map", "prog", "link") and ObjectID name the sensor's BPF
	// object of a bpf action.
	Object   string `json:"object,omitempty"`
	ObjectID uint32 `json:"object_id,omitempty"`
	// Comm is the actor's command name as the kernel had it.
	Comm string `json:"comm,omitempty"`
	// Program is the sensor's program found detached (action detached).
	Program string `json:"program,omitempty"`
	// LoginUID is the login uid a session member set (action loginuid);
	// SessionLoginUID the one its session started with, which the
	// member's events keep.
	LoginUID        *uint32 `json:"login_uid,omitempty"`
	SessionLoginUID *uint32 `json:"session_login_uid,omitempty"`
	// Refused is set when the kernel denied the operation (BPF LSM).
	Refused bool `json:"refused,omitempty"`
	// Path is the file written and Anchor its class (action
	// trust-anchor: package-db, signatures, trusted-key, lineaged,
	// ld-preload, sudoers; docs/threat-model.md, Trust anchors).
	Path   string `json:"path,omitempty"`
	Anchor string `json:"anchor,omitempty"`
}

// Deny is what the kernel reported for an exec it denied (sensor.Deny),
// handed from lineage to the policy stage.
type Deny struct {
	// Path is the denied executable as the kernel resolved it.
	Path          string
	PathTruncated bool
	// RuleIndex is the position of the matching deny_exec entry; Rule is
	// that entry when the source named it.
	RuleIndex uint32
	Rule      string
	// Action is what the kernel did: blocked, killed or kill-failed.
	Action string
}

// ExecID derives the deterministic identity of a process image from the host
// boot, the (pid, start time in boot-clock ns) pair and imageNs, the boot-clock
// time at which the image began: the exec's kernel timestamp for an image that
// came from exec, 0 for a forked process that has not exec'd yet (it still runs
// its parent's image). Processes seeded from /proc, whose exec time the kernel
// does not keep, use their start time. The same process gets the same exec_id
// from any sensor on the host and in replays of a capture.
func ExecID(bootID string, pid uint32, startNs, imageNs uint64) string {
	h := sha256.New()
	h.Write([]byte(bootID))
	var b [20]byte
	binary.LittleEndian.PutUint32(b[0:], pid)
	binary.LittleEndian.PutUint64(b[4:], startNs)
	binary.LittleEndian.PutUint64(b[12:], imageNs)
	h.Write(b[:])
	sum := h.Sum(nil)
	return hex.EncodeToString(sum[:16])
}

// NewEventID returns a UUIDv7-shaped id whose time is the event time and
// whose other bits are derived from (instance, seq): the same capture replayed
// yields the same ids, and a Kafka retry reuses the id of the event.
func NewEventID(t time.Time, instance string, seq uint64) string {
	h := sha256.New()
	h.Write([]byte(instance))
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], seq)
	h.Write(b[:])
	sum := h.Sum(nil)
	var u uuid.UUID
	ms := uint64(t.UnixMilli())
	u[0] = byte(ms >> 40)
	u[1] = byte(ms >> 32)
	u[2] = byte(ms >> 24)
	u[3] = byte(ms >> 16)
	u[4] = byte(ms >> 8)
	u[5] = byte(ms)
	copy(u[6:], sum[:10])
	u[6] = (u[6] & 0x0f) | 0x70 // version 7
	u[8] = (u[8] & 0x3f) | 0x80 // RFC 4122 variant
	return u.String()
}

// Session is an agent session's summary (agent.session_start,
// agent.session_end); the session itself is the event's agent block.
type Session struct {
	// Start is the session root's start time when known, else the time
	// of the session's first event.
	Start time.Time `json:"start"`
	// End and EndReason are set on agent.session_end: the root exited
	// (SessionEndExit) or the sensor stopped while it ran
	// (SessionEndSensorStop).
	End       time.Time `json:"end,omitzero"`
	EndReason string    `json:"end_reason,omitempty"`
	// Counts is what the session did (agent.session_end).
	Counts *SessionCounts `json:"counts,omitempty"`
}

// Why an agent session's summary ended.
const (
	SessionEndExit       = "exit"
	SessionEndSensorStop = "sensor-stop"
)

// SessionCounts is what an agent session did, counted over its events.
type SessionCounts struct {
	// Processes counts process.exec events; FilesWritten the distinct
	// paths opened for writing, created, renamed to or deleted;
	// Connections net.connect events.
	Processes    uint64 `json:"processes"`
	FilesWritten uint64 `json:"files_written"`
	Connections  uint64 `json:"connections"`
	// ToolCalls counts the tool calls the agent's hook asked about
	// (agent.tool_call of PreToolUse); DeniedToolCalls those denied.
	ToolCalls       uint64 `json:"tool_calls"`
	DeniedToolCalls uint64 `json:"denied_tool_calls"`
	// Alerts counts policy.alert events.
	Alerts uint64 `json:"alerts"`
}
