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
)

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
	KindProcessExec   = "process.exec"
	KindProcessExit   = "process.exit"
	KindProcessFork   = "process.fork"
	KindFileOpen      = "file.open"
	KindFileDelete    = "file.delete"
	KindFileRename    = "file.rename"
	KindFileChmod     = "file.chmod"
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
	// Partial names the parts enrichment could not complete ("process",
	// "ancestry", "binary"): the event was emitted with what was known
	// rather than held back or dropped.
	Partial []string `json:"partial,omitempty"`
	// Deny is a kernel deny-exec record on its way from lineage to the
	// policy stage, which turns it into policy events and clears it.
	// Encoders never write it.
	Deny *Deny `json:"-"`
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
	Binary        *Binary `json:"binary,omitempty"`
	// CurrentParentExecID is set when the process was reparented (to pid 1
	// or a subreaper): ParentExecID stays the parent it was born with.
	CurrentParentExecID string `json:"current_parent_exec_id,omitempty"`
}

// Verdicts of binary identity.
const (
	VerdictSignedTrusted   = "signed-trusted"
	VerdictSignedUntrusted = "signed-untrusted"
	VerdictPackageVerified = "package-verified"
	VerdictPackageModified = "package-modified"
	VerdictUnsigned        = "unsigned"
	VerdictError           = "error"
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
	// ParentSessionRootExecID links a nested agent session to the session
	// whose tool started it.
	ParentRootExecID string `json:"parent_root_exec_id,omitempty"`
}

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
}

// Net is the object of a network event.
type Net struct {
	Protocol string `json:"protocol"`
	Family   string `json:"family"`
	DstIP    string `json:"dst_ip"`
	DstPort  uint16 `json:"dst_port"`
	SrcIP    string `json:"src_ip,omitempty"`
	SrcPort  uint16 `json:"src_port,omitempty"`
	Result   int32  `json:"result,omitempty"`
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
}

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
