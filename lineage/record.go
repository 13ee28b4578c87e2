package lineage

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lineaged/lineaged/lineage/agent"
	"github.com/lineaged/lineaged/lineage/event"
	"github.com/lineaged/lineaged/sensor/procfs"
)

// Fact is one answer a fact provider gave the engine, as a capture records
// it (docs/capture.md). Kind names the provider call, Key its arguments;
// the other fields hold the answer. Calls whose answer depends on when they
// were made (posture, attribution) carry the index of the call instead.
type Fact struct {
	Kind string `json:"f"`
	Key  string `json:"k,omitempty"`
	// N is the index of the call among calls of its kind (posture,
	// observer calls), so replay answers call n as call n was answered.
	N       uint64         `json:"n,omitempty"`
	Str     string         `json:"s,omitempty"`
	OK      bool           `json:"ok,omitempty"`
	Err     string         `json:"err,omitempty"`
	Gone    bool           `json:"gone,omitempty"`
	Time    time.Time      `json:"t,omitzero"`
	Proc    *WiredProc     `json:"proc,omitempty"`
	Procs   []*WiredProc   `json:"procs,omitempty"`
	Host    *event.Host    `json:"host,omitempty"`
	Binary  *event.Binary  `json:"bin,omitempty"`
	Posture *event.Posture `json:"posture,omitempty"`
	Agent   *event.Agent   `json:"agent,omitempty"`
	// Resolve: the attribution had a completion step; Late: it ran past
	// the engine's wait (the event went out unresolved).
	Resolve bool `json:"resolve,omitempty"`
	Late    bool `json:"late,omitempty"`
}

// Fact kinds.
const (
	FactHost     = "host"
	FactBoot     = "boot"
	FactProc     = "proc"
	FactEnv      = "env"
	FactCwd      = "cwd"
	FactBinary   = "binary"
	FactCached   = "binary.cached"
	FactUser     = "user"
	FactCgroup   = "cgroup"
	FactSSHKey   = "sshkey"
	FactPosture  = "posture"
	FactClock    = "clock"
	FactObsExec  = "agent.exec"
	FactObsFile  = "agent.file"
	FactResolved = "agent.resolved"
	FactSeed     = "seed"
	FactWait     = "wait"
)

// WiredProc is a procfs.Proc on the wire: its error as text.
type WiredProc struct {
	procfs.Proc
	ExeErr string `json:"ExeErr,omitempty"`
}

// WireProc converts a process for a capture.
func WireProc(p *procfs.Proc) *WiredProc {
	if p == nil {
		return nil
	}
	w := &WiredProc{Proc: *p}
	if p.ExeErr != nil {
		w.ExeErr = p.ExeErr.Error()
	}
	w.Proc.ExeErr = nil
	return w
}

// Unwire converts it back.
func (w *WiredProc) Unwire() *procfs.Proc {
	if w == nil {
		return nil
	}
	p := w.Proc
	if w.ExeErr != "" {
		p.ExeErr = errors.New(w.ExeErr)
	}
	return &p
}

func u32(v uint32) string { return strconv.FormatUint(uint64(v), 10) }

// binaryKey names a binary request by what identifies the file.
func binaryKey(r BinaryRequest) string {
	if r.HasStat {
		return fmt.Sprintf("%s|%d:%d:%d:%d:%d", r.Path, r.Stat.Dev, r.Stat.Inode, r.Stat.Size, r.Stat.MtimeNs, r.Stat.CtimeNs)
	}
	return fmt.Sprintf("%s|pid:%d", r.Path, r.PID)
}

func errFact(f Fact, err error) Fact {
	if err != nil {
		f.Err = err.Error()
		f.Gone = errors.Is(err, procfs.ErrGone)
	}
	return f
}

// RecordDeps wraps every provider of d so each answer is also passed to rec
// (from any goroutine). The answers the engine gets are unchanged.
func RecordDeps(d Deps, rec func(Fact)) Deps { return RecordDepsWhile(d, rec, nil) }

// RecordDepsWhile is RecordDeps recording only while on reports true (nil:
// always): a sensor whose recording someone may ask for later (a tee) pays
// for building the facts only while it is asked. The counts that index the
// facts (observer calls, posture samples) go on while off.
func RecordDepsWhile(d Deps, rec func(Fact), on func() bool) Deps {
	r := &recorder{rec: rec, on: on}
	out := d
	out.Host = recHost{d.Host, r}
	out.Boot = recBoot{d.Boot, r}
	out.Proc = recProc{d.Proc, r}
	out.Binaries = recBinaries{d.Binaries, r}
	out.Users = recUsers{d.Users, r}
	if d.Observer != nil {
		out.Observer = &recObserver{in: d.Observer, r: r}
	}
	if d.Cgroups != nil {
		out.Cgroups = recCgroups{d.Cgroups, r}
	}
	if d.Logins != nil {
		out.Logins = recLogins{d.Logins, r}
	}
	if d.Posture != nil {
		out.Posture = &recPosture{in: d.Posture, r: r}
	}
	now := d.Clock
	if now == nil {
		now = time.Now
	}
	out.Clock = func() time.Time {
		t := now()
		if r.active() {
			rec(Fact{Kind: FactClock, Time: t})
		}
		return t
	}
	return out
}

type recorder struct {
	rec func(Fact)
	on  func() bool
}

func (r *recorder) active() bool { return r.on == nil || r.on() }

type recHost struct {
	in HostInfo
	r  *recorder
}

func (h recHost) Host() (event.Host, error) {
	v, err := h.in.Host()
	if h.r.active() {
		h.r.rec(errFact(Fact{Kind: FactHost, Host: &v}, err))
	}
	return v, err
}

type recBoot struct {
	in BootClock
	r  *recorder
}

func (b recBoot) BootTime() (time.Time, error) {
	t, err := b.in.BootTime()
	if b.r.active() {
		b.r.rec(errFact(Fact{Kind: FactBoot, Time: t}, err))
	}
	return t, err
}

type recProc struct {
	in ProcFacts
	r  *recorder
}

func (p recProc) Proc(pid uint32) (*procfs.Proc, error) {
	v, err := p.in.Proc(pid)
	if p.r.active() {
		p.r.rec(errFact(Fact{Kind: FactProc, Key: u32(pid), Proc: WireProc(v)}, err))
	}
	return v, err
}

func (p recProc) Env(pid uint32, key string) (string, bool, error) {
	v, ok, err := p.in.Env(pid, key)
	if p.r.active() {
		p.r.rec(errFact(Fact{Kind: FactEnv, Key: u32(pid) + "/" + key, Str: v, OK: ok}, err))
	}
	return v, ok, err
}

func (p recProc) Cwd(pid uint32) (string, error) {
	v, err := p.in.Cwd(pid)
	if p.r.active() {
		p.r.rec(errFact(Fact{Kind: FactCwd, Key: u32(pid), Str: v}, err))
	}
	return v, err
}

type recBinaries struct {
	in BinaryInspector
	r  *recorder
}

func (b recBinaries) Cached(req BinaryRequest) (*event.Binary, bool) {
	v, ok := b.in.Cached(req)
	if b.r.active() {
		b.r.rec(Fact{Kind: FactCached, Key: binaryKey(req), Binary: v, OK: ok})
	}
	return v, ok
}

func (b recBinaries) Inspect(ctx context.Context, req BinaryRequest) *event.Binary {
	v := b.in.Inspect(ctx, req)
	if b.r.active() {
		b.r.rec(Fact{Kind: FactBinary, Key: binaryKey(req), Binary: v})
	}
	return v
}

type recUsers struct {
	in UserResolver
	r  *recorder
}

func (u recUsers) UserName(uid uint32) (string, bool) {
	v, ok := u.in.UserName(uid)
	if u.r.active() {
		u.r.rec(Fact{Kind: FactUser, Key: u32(uid), Str: v, OK: ok})
	}
	return v, ok
}

type recCgroups struct {
	in CgroupResolver
	r  *recorder
}

func (c recCgroups) CgroupPath(id uint64) (string, bool) {
	v, ok := c.in.CgroupPath(id)
	if c.r.active() {
		c.r.rec(Fact{Kind: FactCgroup, Key: strconv.FormatUint(id, 10), Str: v, OK: ok})
	}
	return v, ok
}

type recLogins struct {
	in LoginKeys
	r  *recorder
}

func (l recLogins) SSHKey(pid uint32, user string) (string, bool) {
	v, ok := l.in.SSHKey(pid, user)
	if l.r.active() {
		l.r.rec(Fact{Kind: FactSSHKey, Key: u32(pid) + "/" + user, Str: v, OK: ok})
	}
	return v, ok
}

// recPosture records the sample in force each time it changes, with the
// index of the first call that got it.
type recPosture struct {
	in   PostureSource
	r    *recorder
	mu   sync.Mutex
	n    uint64
	last *event.Posture
}

func (p *recPosture) Latest() *event.Posture {
	v := p.in.Latest()
	p.mu.Lock()
	n := p.n
	p.n++
	changed := n == 0 || v != p.last
	p.last = v
	p.mu.Unlock()
	if changed && p.r.active() {
		p.r.rec(Fact{Kind: FactPosture, N: n, Posture: v})
	}
	return v
}

// recObserver records each attribution, and each completion with whether
// it ran past the engine's wait.
type recObserver struct {
	in agent.Integration
	r  *recorder
	n  atomic.Uint64 // Exec and File calls share one count
}

func (o *recObserver) result(kind string, res agent.Result) agent.Result {
	n := o.n.Add(1)
	if o.r.active() {
		o.r.rec(Fact{Kind: kind, N: n, Agent: res.Agent, Resolve: res.Resolve != nil})
	}
	if res.Resolve != nil {
		// Wrapped whether or not recording is on now: a resolution that
		// ends after a tee started is one the tee's events may wait for.
		inner := res.Resolve
		res.Resolve = func(ctx context.Context, a *event.Agent) {
			inner(ctx, a)
			if o.r.active() {
				o.r.rec(Fact{Kind: FactResolved, N: n, Agent: a, Late: ctx.Err() != nil})
			}
		}
	}
	return res
}

func (o *recObserver) Exec(x agent.Exec) agent.Result {
	return o.result(FactObsExec, o.in.Exec(x))
}

func (o *recObserver) File(x agent.File) agent.Result {
	return o.result(FactObsFile, o.in.File(x))
}

func (o *recObserver) Exit(p *event.Process) { o.in.Exit(p) }

var _ agent.Seeder = (*recObserver)(nil)

// Seeded passes the seed on; what the integration learns from it shows in
// the attributions recorded later.
func (o *recObserver) Seeded(procs []agent.Seeded) {
	if sd, ok := o.in.(agent.Seeder); ok {
		sd.Seeded(procs)
	}
}
