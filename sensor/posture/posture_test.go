package posture

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestConfigValidate(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "f")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		cfg  Config
		err  string
	}{
		{"unknown check", Config{Checks: []string{"aslr", "nope"}}, `posture.checks: unknown check "nope" (known: disk_encryption, `},
		{"duplicate check", Config{Checks: []string{"aslr", "aslr"}}, `check "aslr" listed twice`},
		{"negative interval", Config{Interval: -time.Second}, "posture.interval: -1s is shorter than the minimum 100ms"},
		{"tiny interval", Config{Interval: time.Millisecond}, "posture.interval: 1ms"},
		{"relative root", Config{Root: "host"}, `posture.root: "host" is not an absolute path`},
		{"missing root", Config{Root: filepath.Join(dir, "absent")}, "posture.root: stat " + dir},
		{"root is a file", Config{Root: file}, "is not a directory"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("Validate() = %v, want error containing %q", err, tc.err)
			}
			if _, err := New(tc.cfg, nil, nil); err == nil {
				t.Fatal("New accepted an invalid config")
			}
		})
	}
	var c Config
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if c.Interval != DefaultInterval || c.Root != "/" {
		t.Errorf("defaults: got interval %s root %q", c.Interval, c.Root)
	}
}

func TestNewSubsetOnFakeTree(t *testing.T) {
	root := tree(t, map[string]string{
		"/proc/sys/kernel/randomize_va_space": "2\n",
		"/proc/sys/kernel/kptr_restrict":      "0\n",
	})
	at := time.Date(2026, 1, 2, 3, 4, 5, 6, time.FixedZone("x", 3600))
	s, err := New(Config{Root: string(root), Checks: []string{CheckKptrRestrict, CheckASLR}}, func() time.Time { return at }, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := s.Checks(), []string{CheckASLR, CheckKptrRestrict}; !slices.Equal(got, want) {
		t.Errorf("Checks() = %v, want %v (built-in order)", got, want)
	}
	if s.Latest() != nil {
		t.Error("Latest() before any sample is not nil")
	}
	p := s.Sample(t.Context())
	if !p.SampledAt.Equal(at) || p.SampledAt.Location() != time.UTC {
		t.Errorf("sampled_at = %v, want %v in UTC", p.SampledAt, at)
	}
	if p.Compliant || !slices.Equal(p.Failed, []string{CheckKptrRestrict}) || len(p.Checks) != 2 {
		t.Errorf("got %+v", p)
	}
	if !p.Checks[CheckASLR].OK || p.Checks[CheckKptrRestrict].OK {
		t.Errorf("check results %+v", p.Checks)
	}
}

// fakeCheck returns whatever result the test sets.
type fakeCheck struct {
	name string
	mu   *sync.Mutex
	res  map[string]Result
}

func (f fakeCheck) Name() string { return f.name }

func (f fakeCheck) Run(context.Context, Root) Result {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.res[f.name]
}

type panicCheck struct{}

func (panicCheck) Name() string                     { return "panics" }
func (panicCheck) Run(context.Context, Root) Result { panic("bad tree") }

func TestSampleFailedSortedAndPanics(t *testing.T) {
	mu := &sync.Mutex{}
	res := map[string]Result{"zeta": {Detail: "z"}, "alpha": {Detail: "a"}, "mid": {OK: true, Detail: "m"}, "silent": {OK: true}}
	checks := []Check{fakeCheck{"zeta", mu, res}, panicCheck{}, fakeCheck{"alpha", mu, res}, fakeCheck{"mid", mu, res}, fakeCheck{"silent", mu, res}}
	s := newSampler(Config{Interval: time.Second, Root: "/"}, checks, nil, nil)
	p := s.Sample(t.Context())
	if want := []string{"alpha", "panics", "zeta"}; !slices.Equal(p.Failed, want) {
		t.Errorf("failed = %v, want %v", p.Failed, want)
	}
	if p.Compliant {
		t.Error("compliant with failed checks")
	}
	if r := p.Checks["panics"]; r.OK || r.Detail != "check failed: panic: bad tree" {
		t.Errorf("panicking check: %+v", r)
	}
	if r := p.Checks["silent"]; !r.OK || r.Detail != "no detail" {
		t.Errorf("check without detail: %+v", r)
	}
	if len(p.Checks) != 5 {
		t.Errorf("%d results, want 5", len(p.Checks))
	}
}

type emitted struct {
	kind Report
	p    *Sample
}

// next receives the next emitted event; a missing event fails the test
// rather than hanging it (the bound is a guard, not a synchronisation).
func next(t *testing.T, out <-chan emitted, step int) emitted {
	t.Helper()
	select {
	case e := <-out:
		return e
	case <-time.After(10 * time.Second):
		t.Fatalf("step %d: nothing emitted", step)
		return emitted{}
	}
}

// TestRunChangeDetection drives Run tick by tick: every step sets the fake
// results, sends one tick and reads what Run emitted. A step that must not
// emit a change is proven by the next step's first event being a sample.
func TestRunChangeDetection(t *testing.T) {
	mu := &sync.Mutex{}
	res := map[string]Result{}
	set := func(step int, a, b bool) {
		mu.Lock()
		defer mu.Unlock()
		res["a"] = Result{OK: a, Detail: fmt.Sprintf("step %d", step)}
		res["b"] = Result{OK: b, Detail: fmt.Sprintf("step %d", step)}
	}
	var now atomic.Int64
	clock := func() time.Time { return time.Unix(1_700_000_000+now.Add(1), 0) }
	s := newSampler(Config{Interval: 100 * time.Millisecond, Root: "/"}, []Check{fakeCheck{"a", mu, res}, fakeCheck{"b", mu, res}}, clock, nil)
	tick := make(chan time.Time)
	stopped := make(chan struct{})
	s.newTicker = func(d time.Duration) (<-chan time.Time, func()) {
		if d != 100*time.Millisecond {
			t.Errorf("ticker interval %s", d)
		}
		return tick, func() { close(stopped) }
	}
	out := make(chan emitted, 16)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)

	set(0, true, true)
	go func() {
		done <- s.Run(ctx, func(kind Report, p *Sample) { out <- emitted{kind, p} })
	}()

	steps := []struct {
		a, b      bool
		change    bool
		compliant bool
		failed    []string
	}{
		{true, true, false, true, nil},                  // first sample: no predecessor, no change
		{true, false, true, false, []string{"b"}},       // compliance lost
		{true, false, false, false, []string{"b"}},      // only details differ: no change
		{false, false, true, false, []string{"a", "b"}}, // still failing, failed set grew
		{false, true, true, false, []string{"a"}},       // failed set changed
		{true, true, true, true, nil},                   // compliance regained
		{true, true, false, true, nil},                  // steady
	}
	for i, st := range steps {
		if i > 0 {
			set(i, st.a, st.b)
			select {
			case tick <- time.Now():
			case <-time.After(10 * time.Second):
				t.Fatalf("step %d: Run is not waiting for a tick", i)
			}
		}
		e := next(t, out, i)
		if e.kind != Sampled {
			t.Fatalf("step %d: first event %s, want %s", i, e.kind, Sampled)
		}
		if e.p.Checks["a"].Detail != fmt.Sprintf("step %d", i) {
			t.Fatalf("step %d: sample is from %q", i, e.p.Checks["a"].Detail)
		}
		if e.p.Compliant != st.compliant || !slices.Equal(e.p.Failed, st.failed) {
			t.Errorf("step %d: compliant=%t failed=%v, want %t %v", i, e.p.Compliant, e.p.Failed, st.compliant, st.failed)
		}
		if s.Latest() != e.p {
			t.Errorf("step %d: Latest() is not the emitted sample", i)
		}
		if st.change {
			c := next(t, out, i)
			if c.kind != Changed || c.p != e.p {
				t.Fatalf("step %d: got %s, want %s of the same sample", i, c.kind, Changed)
			}
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run returned %v after cancel", err)
	}
	<-stopped
	select {
	case e := <-out:
		t.Errorf("unexpected %s after the last step", e.kind)
	default:
	}
}

// A sample taken before Run is Run's first: Run emits nothing until the next
// tick, and a change is detected against that sample.
func TestRunContinuesFromSample(t *testing.T) {
	mu := &sync.Mutex{}
	res := map[string]Result{"a": {OK: true, Detail: "start"}}
	s := newSampler(Config{Interval: 100 * time.Millisecond, Root: "/"}, []Check{fakeCheck{"a", mu, res}}, time.Now, nil)
	tick := make(chan time.Time)
	s.newTicker = func(time.Duration) (<-chan time.Time, func()) { return tick, func() {} }
	first := s.Sample(t.Context())
	if !first.Compliant {
		t.Fatal("first sample not compliant")
	}
	out := make(chan emitted, 4)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx, func(kind Report, p *Sample) { out <- emitted{kind, p} }) }()

	mu.Lock()
	res["a"] = Result{OK: false, Detail: "broken"}
	mu.Unlock()
	select {
	case e := <-out:
		t.Fatalf("Run emitted %s before its first tick", e.kind)
	case tick <- time.Now():
	}
	if e := next(t, out, 1); e.kind != Sampled || e.p.Compliant {
		t.Fatalf("after the tick: %s compliant=%t", e.kind, e.p.Compliant)
	}
	if e := next(t, out, 1); e.kind != Changed {
		t.Fatalf("change against the earlier sample not reported: %s", e.kind)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestRunNeedsEmit(t *testing.T) {
	s := newSampler(Config{Interval: time.Second, Root: "/"}, nil, nil, nil)
	if err := s.Run(t.Context(), nil); err == nil {
		t.Fatal("Run(nil emit) succeeded")
	}
}

// TestLatestConcurrent samples in one goroutine while readers load Latest;
// run with -race. Every observed sample must be complete and consistent.
func TestLatestConcurrent(t *testing.T) {
	mu := &sync.Mutex{}
	res := map[string]Result{"a": {OK: true, Detail: "x"}, "b": {Detail: "y"}}
	s := newSampler(Config{Interval: time.Second, Root: "/"}, []Check{fakeCheck{"a", mu, res}, fakeCheck{"b", mu, res}}, nil, nil)
	s.Sample(t.Context())
	const samples = 2000
	writerDone := make(chan struct{})
	go func() {
		defer close(writerDone)
		for range samples {
			s.Sample(context.Background())
		}
	}()
	var wg sync.WaitGroup
	var reads atomic.Int64
	for range 4 {
		wg.Go(func() {
			for {
				p := s.Latest()
				if p == nil || len(p.Checks) != 2 || p.Compliant || !slices.Equal(p.Failed, []string{"b"}) {
					t.Errorf("inconsistent sample %+v", p)
					return
				}
				reads.Add(1)
				select {
				case <-writerDone:
					return
				default:
				}
			}
		})
	}
	wg.Wait()
	if reads.Load() < 4 {
		t.Errorf("only %d reads", reads.Load())
	}
}

func benchSampler(b *testing.B) *Sampler {
	root := b.TempDir()
	s, err := New(Config{Root: root}, nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	s.Sample(b.Context())
	return s
}

// BenchmarkLatest is the per-event cost of attaching posture.
func BenchmarkLatest(b *testing.B) {
	s := benchSampler(b)
	var sink *Sample
	for b.Loop() {
		sink = s.Latest()
	}
	_ = sink
}

// BenchmarkLatestParallel is Latest under contention from all Ps while a
// writer keeps replacing the sample.
func BenchmarkLatestParallel(b *testing.B) {
	s := benchSampler(b)
	stop := make(chan struct{})
	go func() {
		for {
			select {
			case <-stop:
				return
			default:
				s.latest.Store(&Sample{})
			}
		}
	}()
	b.RunParallel(func(pb *testing.PB) {
		var sink *Sample
		for pb.Next() {
			sink = s.Latest()
		}
		_ = sink
	})
	close(stop)
}

// BenchmarkLatestRWMutexBaseline is the same read behind a sync.RWMutex,
// the obvious alternative, for a ratio in the same run.
func BenchmarkLatestRWMutexBaseline(b *testing.B) {
	var mu sync.RWMutex
	p := &Sample{}
	stop := make(chan struct{})
	go func() {
		for {
			select {
			case <-stop:
				return
			default:
				mu.Lock()
				p = &Sample{}
				mu.Unlock()
			}
		}
	}()
	b.RunParallel(func(pb *testing.PB) {
		var sink *Sample
		for pb.Next() {
			mu.RLock()
			sink = p
			mu.RUnlock()
		}
		_ = sink
	})
	close(stop)
}

// BenchmarkSampleHost is the cost of one full sample of this machine.
func BenchmarkSampleHost(b *testing.B) {
	s, err := New(Config{}, nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		s.Sample(b.Context())
	}
}

// SetChecks swaps the checks and the required list from the next sample
// on; a list that does not validate changes nothing.
func TestSamplerSetChecks(t *testing.T) {
	s, err := New(Config{Checks: []string{CheckASLR}}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := s.Checks(); !slices.Equal(got, []string{CheckASLR}) {
		t.Fatalf("checks %v", got)
	}
	if err := s.SetChecks(Config{Checks: []string{CheckASLR, CheckKptrRestrict}, Required: []string{CheckKptrRestrict}}); err != nil {
		t.Fatal(err)
	}
	if got := s.Checks(); !slices.Equal(got, []string{CheckASLR, CheckKptrRestrict}) {
		t.Fatalf("after SetChecks: checks %v", got)
	}
	if got := s.Required(); !slices.Equal(got, []string{CheckKptrRestrict}) {
		t.Fatalf("after SetChecks: required %v", got)
	}
	if _, ok := s.Sample(context.Background()).Checks[CheckKptrRestrict]; !ok {
		t.Fatal("the new check did not run")
	}
	if err := s.SetChecks(Config{Checks: []string{"nope"}}); err == nil {
		t.Fatal("an unknown check was accepted")
	}
	if got := s.Checks(); len(got) != 2 {
		t.Fatalf("a refused SetChecks changed the checks: %v", got)
	}
}
