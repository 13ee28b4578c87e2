//go:build linux

package kernel

import (
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/lineaged/lineaged/sensor"
)

// Scope selects which processes' events reach userspace.
type Scope uint8

// Scopes.
const (
	// ScopeAgents: only members of agent sessions (the default).
	ScopeAgents Scope = iota
	// ScopeAll: every process's exec, fork and exit.
	ScopeAll
)

// ParseScope reads a --scope value: "agents" (the default) or "all". The
// older spellings "sessions" and "session" are accepted for "agents".
func ParseScope(s string) (Scope, error) {
	switch s {
	case "", "agents", "sessions", "session":
		return ScopeAgents, nil
	case "all":
		return ScopeAll, nil
	}
	return 0, fmt.Errorf("scope %q: want \"agents\" or \"all\"", s)
}

// Config sizes and shapes the sensor. The zero value is usable: zero fields
// take the defaults below.
type Config struct {
	Scope Scope
	// SessionMapSize bounds the processes tracked as session members
	// (default 65536). A member that does not fit is not tracked.
	SessionMapSize uint32
	// RingBufferSize in bytes, a power of two and a multiple of the page
	// size (default 8 MiB).
	RingBufferSize uint32
	// QueueSize bounds decoded events waiting between the reader and Run's
	// consumer (default 16384). Overflow is counted and reported.
	QueueSize int
	// LossInterval is how often kernel and queue loss counters are summed
	// into KindLoss events (default 1s).
	LossInterval time.Duration
	// FlushInterval batches reads (default 4ms): while records keep
	// coming the reader collects them every FlushInterval and the kernel
	// does not wake it per record; the first record after a quiet period
	// wakes it at once. Every object's records follow it (process, file
	// and network, deny-exec: bpf/lib/wakeup.h). A wakeup per record costs the producing task an
	// irq_work and the reader several syscalls (measured by the exec
	// storm: 170µs of BPF time per exec inside a session without batching,
	// 68µs with). Negative: a wakeup per record (the kernel's default).
	FlushInterval time.Duration
	// WakeupBytes is the pending-data threshold for an early wakeup when
	// batching (default: an eighth of the ring buffer).
	WakeupBytes uint32
	// ShedBytes is the ring priority's threshold (bpf/lib/shed.h): with
	// more unread data than this in the ring, file and network records
	// are dropped and counted (sensor.loss where "shed"), so the rest of
	// the ring stays for exec, fork, exit, deny and tamper records
	// (default: three quarters of the ring buffer; the ring's size turns
	// shedding off).
	ShedBytes uint32
	// BudgetBytes is the session budget's threshold (bpf/lib/shed.h):
	// with more unread data than this in the ring, a session that made
	// more than half of the recent file and network records has them
	// dropped and counted (sensor.loss where "session-budget", naming the
	// session), so one session's flood does not crowd out the others'
	// records before ShedBytes sheds everyone's. Default: two thirds of
	// ShedBytes (half the ring by default); ShedBytes or more turns it off.
	BudgetBytes uint32
	// RepeatOpens reports every read-only open. Unset (the default), a
	// process image's read-only open of a file it already opened with the
	// same flags is not reported but counted, on its exit
	// (sensor.Exit.RepeatedOpens): per process image, never per session,
	// so a new process's open of the same file is always reported, and
	// never for a session's root, the agent, whose file tools run inside
	// it (bpf/lib/opens.h).
	RepeatOpens bool
	// DenyIOURing makes the kernel answer a session member's
	// io_uring_setup with SIGKILL (policy deny_io_uring): the member dies
	// before it can use the ring; its io_uring.setup record says so.
	DenyIOURing bool
	// Recognisers is the agent recogniser table loaded into the kernel:
	// the execs that start a session (lineage/agent's table, compiled by
	// its Kernel method). Empty, no exec starts one: sessions then come
	// only from AddSessionMembers.
	Recognisers []sensor.Recogniser
	// ProcessOnly loads the process programs alone, without the file and
	// network object (benchmarks comparing the two).
	ProcessOnly bool
	// DenyKeys are the executables session members must not run, as the
	// policy stage builds them (lineage/policy DenyKeys): absolute paths,
	// exact ("/usr/bin/curl") or directory prefixes ending in '/'
	// ("/opt/tools/"), matched in the kernel against the resolved path of
	// the executed file as the exec'ing process sees it: from its own
	// root, so inside a chroot a rule names the chroot's paths
	// (bpf/enforce.h). Each key maps to the index of its rule, which the
	// KindDeny event reports (sensor.Deny.RuleIndex). Where the kernel runs
	// BPF LSM programs the exec fails with EPERM; elsewhere the image is
	// killed with SIGKILL before it runs (Hooks says which). With
	// DenyKeys and DenyInodes empty and DenyLater unset, nothing is
	// enforced and no enforcement program is loaded.
	DenyKeys map[string]uint32
	// DenyInodes are files session members must not run, by identity
	// (DenyInode), whatever path names them; each maps to the index of its
	// rule, as in DenyKeys. Matched before DenyKeys.
	DenyInodes map[DenyInode]uint32
	// DenyLater loads the enforcement even when DenyKeys and DenyInodes
	// are empty, so that DenyInode can add files at run time (rules by
	// SHA-256, whose copies are found only once hashed).
	DenyLater bool
	// PinPath is the bpffs directory where the programs, links, maps and
	// ring buffer are pinned so that they outlive the sensor (pin.go);
	// empty, nothing is pinned. It is locked: one sensor per path.
	PinPath string
	// SelfCheckInterval is how often the sensor checks that its programs
	// are attached and firing, its recognisers unchanged and its session
	// members still in the kernel's map, repairing and reporting what is
	// not (integrity.go; default 2s, negative: never).
	SelfCheckInterval time.Duration
	// HoldExeFlags turns on the hold at exec (hashing.hold_exec): a
	// session member whose exec's flags include any of these
	// (sensor.ExecExePseudo for a memfd, sensor.ExecExeDeleted for a
	// deleted file) is sent SIGSTOP in the exec tracepoint, before the new
	// image runs, and its exec record says sensor.ExecHeld. Whoever reads
	// the records must then continue or kill it (HeldProcess). 0: no hold.
	HoldExeFlags sensor.ExecFlags
	// HoldUnseen holds a session member's exec of an image on disk (not a
	// memfd, not deleted) the way HoldExeFlags does, unless MarkSeen
	// registered that image (device, inode and times) since the sensor
	// started: the first exec of each image is stopped until whoever reads
	// the records has judged it (hashing.hold_exec "unseen").
	HoldUnseen bool
	// OnHeld is called by the ring-buffer reader, before the record is
	// queued, with each exec record that says sensor.ExecHeld: at once,
	// whatever the consumer's backlog. It must not block (start a
	// goroutine); the event is also delivered as usual.
	OnHeld func(sensor.Event)
}

// Defaults.
const (
	DefaultSessionMapSize = 65536
	DefaultRingBufferSize = 8 << 20
	DefaultQueueSize      = 16384
	DefaultLossInterval   = time.Second
	DefaultFlushInterval  = 4 * time.Millisecond
	// idleFlush bounds the delay of a record that raced the reader's
	// decision to stop polling (see bpf/lib/wakeup.h).
	idleFlush = 250 * time.Millisecond
)

func (c Config) withDefaults() (Config, error) {
	if c.Scope > ScopeAll {
		return c, fmt.Errorf("sensor config: unknown scope %d", c.Scope)
	}
	if c.HoldExeFlags&^(sensor.ExecExePseudo|sensor.ExecExeDeleted) != 0 {
		return c, fmt.Errorf("sensor config: hold flags %#x: only the memfd and deleted-file flags can be held", uint16(c.HoldExeFlags))
	}
	if (c.HoldExeFlags != 0 || c.HoldUnseen) && c.OnHeld == nil {
		// Nothing would continue the processes the kernel stops.
		return c, errors.New("sensor config: a hold needs OnHeld")
	}
	if c.SessionMapSize == 0 {
		c.SessionMapSize = DefaultSessionMapSize
	}
	if c.RingBufferSize == 0 {
		c.RingBufferSize = DefaultRingBufferSize
	}
	page := uint32(os.Getpagesize())
	if c.RingBufferSize&(c.RingBufferSize-1) != 0 || c.RingBufferSize%page != 0 {
		return c, fmt.Errorf("sensor config: ring buffer size %d must be a power of two and a multiple of %d", c.RingBufferSize, page)
	}
	if c.QueueSize == 0 {
		c.QueueSize = DefaultQueueSize
	}
	if c.QueueSize < 0 {
		return c, fmt.Errorf("sensor config: queue size %d is negative", c.QueueSize)
	}
	if c.LossInterval == 0 {
		c.LossInterval = DefaultLossInterval
	}
	if c.LossInterval < 0 {
		return c, fmt.Errorf("sensor config: loss interval %s is negative", c.LossInterval)
	}
	if c.FlushInterval == 0 {
		c.FlushInterval = DefaultFlushInterval
	}
	if c.SelfCheckInterval == 0 {
		c.SelfCheckInterval = DefaultSelfCheckInterval
	}
	if c.WakeupBytes == 0 {
		c.WakeupBytes = c.RingBufferSize / 8
	}
	if c.WakeupBytes > c.RingBufferSize {
		return c, fmt.Errorf("sensor config: wakeup bytes %d exceed the ring buffer size %d", c.WakeupBytes, c.RingBufferSize)
	}
	if c.ShedBytes == 0 {
		c.ShedBytes = c.RingBufferSize / 4 * 3
	}
	if c.ShedBytes > c.RingBufferSize {
		return c, fmt.Errorf("sensor config: shed bytes %d exceed the ring buffer size %d", c.ShedBytes, c.RingBufferSize)
	}
	if c.BudgetBytes == 0 {
		c.BudgetBytes = c.ShedBytes / 3 * 2
	}
	if c.BudgetBytes > c.RingBufferSize {
		return c, fmt.Errorf("sensor config: session budget bytes %d exceed the ring buffer size %d", c.BudgetBytes, c.RingBufferSize)
	}
	if err := sensor.ValidateRecognisers(c.Recognisers); err != nil {
		return c, fmt.Errorf("sensor config: %w", err)
	}
	if err := validateDenyKeys(c.DenyKeys); err != nil {
		return c, fmt.Errorf("sensor config: %w", err)
	}
	if err := validateDenyInodes(c.DenyInodes); err != nil {
		return c, fmt.Errorf("sensor config: %w", err)
	}
	return c, nil
}
