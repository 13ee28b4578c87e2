package lineage

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/lineaged/lineaged/lineage/agent"
	"github.com/lineaged/lineaged/lineage/event"
	"github.com/lineaged/lineaged/sensor"
	"github.com/lineaged/lineaged/sensor/procfs"
)

const testBoot = "6f1c2a9e-0000-4000-8000-000000000001"

type fakeHost struct{}

func (fakeHost) Host() (event.Host, error) {
	return event.Host{Hostname: "h", MachineID: "m", BootID: testBoot, OS: "test", Kernel: "6.18"}, nil
}

type fakeBoot struct{}

var bootWall = time.Date(2026, 11, 25, 0, 0, 0, 0, time.UTC)

func (fakeBoot) BootTime() (time.Time, error) { return bootWall, nil }

// fakeProcs is a /proc of synthetic processes.
type fakeProcs struct {
	mu    sync.Mutex
	procs map[uint32]*procfs.Proc
	env   map[uint32]map[string]string
	cwd   map[uint32]string
}

func (f *fakeProcs) Cwd(pid uint32) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if c, ok := f.cwd[pid]; ok {
		return c, nil
	}
	return "", fmt.Errorf("fake: pid %d: %w", pid, procfs.ErrGone)
}

func (f *fakeProcs) Proc(pid uint32) (*procfs.Proc, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if p, ok := f.procs[pid]; ok {
		return p, nil
	}
	return nil, fmt.Errorf("fake: pid %d: %w", pid, procfs.ErrGone)
}

func (f *fakeProcs) Env(pid uint32, key string) (string, bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	v, ok := f.env[pid][key]
	return v, ok, nil
}

// fakeBins names each binary after its path; paths listed in block wait for
// release (or forever).
type fakeBins struct {
	mu      sync.Mutex
	block   map[string]chan struct{}
	calls   map[string]int
	noCache bool
	cache   map[string]*event.Binary
}

func (f *fakeBins) result(req BinaryRequest) *event.Binary {
	return &event.Binary{Path: req.Path, SHA256: "sha-of-" + req.Path, Size: req.Stat.Size, Inode: req.Stat.Inode, Verdict: event.VerdictUnsigned}
}

func (f *fakeBins) Cached(req BinaryRequest) (*event.Binary, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	b, ok := f.cache[req.Path]
	return b, ok && !f.noCache
}

func (f *fakeBins) Inspect(ctx context.Context, req BinaryRequest) *event.Binary {
	f.mu.Lock()
	if f.calls == nil {
		f.calls = map[string]int{}
	}
	f.calls[req.Path]++
	ch := f.block[req.Path]
	f.mu.Unlock()
	if ch != nil {
		<-ch
	}
	b := f.result(req)
	f.mu.Lock()
	if f.cache == nil {
		f.cache = map[string]*event.Binary{}
	}
	f.cache[req.Path] = b
	f.mu.Unlock()
	return b
}

type fakeUsers map[uint32]string

func (u fakeUsers) UserName(uid uint32) (string, bool) { n, ok := u[uid]; return n, ok }

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

type rig struct {
	t     *testing.T
	e     *Engine
	procs *fakeProcs
	bins  *fakeBins
}

func newRig(t *testing.T, cfg Config, obs agent.Integration) *rig {
	t.Helper()
	r := &rig{t: t, procs: &fakeProcs{procs: map[uint32]*procfs.Proc{}}, bins: &fakeBins{}}
	e, err := New(cfg, Deps{
		Host: fakeHost{}, Boot: fakeBoot{}, Proc: r.procs, Binaries: r.bins,
		Users: fakeUsers{0: "root", 1000: "alice", 1001: "bob"}, Observer: obs,
	}, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	r.e = e
	return r
}

// run feeds evs and returns every event emitted once the input is closed.
func (r *rig) run(evs ...sensor.Event) []*event.Event {
	r.t.Helper()
	in := make(chan sensor.Event, len(evs))
	for _, ev := range evs {
		in <- ev
	}
	close(in)
	out := make(chan *event.Event, len(evs)+16)
	if err := r.e.Run(context.Background(), in, out); err != nil {
		r.t.Fatal(err)
	}
	close(out)
	var got []*event.Event
	for ev := range out {
		got = append(got, ev)
	}
	return got
}

func sproc(pid, ppid uint32, startTicks uint64, exe string, argv ...string) *procfs.Proc {
	return &procfs.Proc{
		PID: pid, PPID: ppid, Key: sensor.ProcKey{PID: pid, StartNs: startTicks * procfs.TicksToNs},
		StartTicks: startTicks, Exe: exe, Argv: argv, UID: 1000, EUID: 1000, GID: 1000,
		LoginUID: 1000, AuditSessionID: 3, HasBinary: true,
		Binary: sensor.FileStat{Dev: 1, Inode: uint64(len(exe)), Size: 100},
	}
}

func key(pid uint32, startTicks uint64) sensor.ProcKey {
	return sensor.ProcKey{PID: pid, StartNs: startTicks * procfs.TicksToNs}
}

var sess = sensor.SessionRef{Root: key(50, 500), Agent: sensor.AgentClaudeCode}

func execEv(k, parent sensor.ProcKey, kt uint64, s sensor.SessionRef, exe string, argv ...string) sensor.Event {
	return sensor.Event{
		Header: sensor.Header{Kind: sensor.KindExec, KtimeNs: kt, Proc: k, TID: k.PID, Session: s},
		Exec: &sensor.Exec{Parent: parent, UID: 1000, EUID: 1000, GID: 1000, LoginUID: 1000, AuditSessionID: 3,
			Filename: exe, Exe: exe, Argv: argv, Binary: sensor.FileStat{Dev: 1, Inode: uint64(len(exe)), Size: 100}},
	}
}

func forkEv(k, parent sensor.ProcKey, kt uint64, s sensor.SessionRef) sensor.Event {
	return sensor.Event{Header: sensor.Header{Kind: sensor.KindFork, KtimeNs: kt, Proc: k, TID: k.PID, Session: s},
		Fork: &sensor.Fork{Parent: parent}}
}

func exitEv(k sensor.ProcKey, kt uint64, s sensor.SessionRef, code int32) sensor.Event {
	return sensor.Event{Header: sensor.Header{Kind: sensor.KindExit, KtimeNs: kt, Proc: k, TID: k.PID, Session: s},
		Exit: &sensor.Exit{Code: code}}
}

func openEv(k sensor.ProcKey, kt uint64, s sensor.SessionRef, path string, flags uint32) sensor.Event {
	return sensor.Event{Header: sensor.Header{Kind: sensor.KindOpen, KtimeNs: kt, Proc: k, TID: k.PID, Session: s},
		File: &sensor.File{Op: sensor.FileOpen, Path: path, Flags: flags}}
}

func connectEv(k sensor.ProcKey, kt uint64, s sensor.SessionRef, dst string) sensor.Event {
	return sensor.Event{Header: sensor.Header{Kind: sensor.KindConnect, KtimeNs: kt, Proc: k, TID: k.PID, Session: s},
		Connect: &sensor.Connect{Protocol: 6, Family: 10, Dst: netip.MustParseAddrPort(dst), Result: -115}}
}
