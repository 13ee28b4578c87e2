package lineage

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/lineaged/lineaged/lineage/event"
	"github.com/lineaged/lineaged/sensor"
	"github.com/lineaged/lineaged/sensor/procfs"
)

// deepRig seeds a chain init <- p2 <- ... <- p<depth> and returns the leaf.
func deepRig(b *testing.B, depth int) (*rig, sensor.ProcKey) {
	t := &testing.T{}
	r := newRig(t, Config{Scope: ScopeAll}, nil)
	var ps []*procfs.Proc
	for i := 1; i <= depth; i++ {
		ps = append(ps, sproc(uint32(i), uint32(i-1), uint64(i), "/usr/bin/prog"+strconv.Itoa(i%5), "prog", "--flag", "value"))
	}
	r.e.Seed(ps)
	// Let the seed's hashes finish so the benchmark measures the steady
	// state (cache hits).
	for _, ent := range r.e.t.byKey {
		if ent.bin != nil {
			<-ent.bin.done
		}
	}
	return r, key(uint32(depth), uint64(depth))
}

// BenchmarkAncestryBuild measures building one enriched event (process,
// ancestry of 10, identity) on the table goroutine.
func BenchmarkAncestryBuild(b *testing.B) {
	for _, depth := range []int{3, 10, 30} {
		b.Run(fmt.Sprintf("depth=%d", depth), func(b *testing.B) {
			r, leaf := deepRig(b, depth)
			ev := openEv(leaf, 1000*ms, sensor.SessionRef{}, "/tmp/x", 0)
			b.ReportAllocs()
			for b.Loop() {
				its := r.e.emitNow(ev, false)
				if len(its) != 1 || len(its[0].ev.Ancestry) != depth-1 {
					b.Fatal("bad event")
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
		})
	}
}

// BenchmarkPipeline measures events through Run (table goroutine, emitter,
// channels) with ancestry depth 10: the end-to-end enrichment rate.
func BenchmarkPipeline(b *testing.B) {
	r, leaf := deepRig(b, 10)
	in := make(chan sensor.Event, 1024)
	out := make(chan *event.Event, 1024)
	done := make(chan error)
	go func() { done <- r.e.Run(context.Background(), in, out) }()
	go func() {
		for range out {
		}
	}()
	ev := openEv(leaf, 1000*ms, sensor.SessionRef{}, "/tmp/x", 0)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		in <- ev
	}
	close(in)
	if err := <-done; err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	close(out)
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

func vmHWM(b *testing.B) float64 {
	s, err := os.ReadFile("/proc/self/status")
	if err != nil {
		b.Fatal(err)
	}
	for line := range strings.SplitSeq(string(s), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, _ := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")))
			return float64(kb) / 1024
		}
	}
	b.Fatal("no VmHWM")
	return 0
}

// BenchmarkTable10k puts 10,000 live session processes in the table through
// the real pipeline (fork + exec each, argv of six arguments, ancestry of
// four) and reports the process's peak RSS (VmHWM) and the live heap. Run it
// alone so the peak is this workload's:
//
//	go test -run '^$' -bench Table10k -benchtime 1x ./lineage/
func BenchmarkTable10k(b *testing.B) {
	base := vmHWM(b)
	for b.Loop() {
		r, _ := deepRig(b, 3)
		s := sensor.SessionRef{Root: key(3, 3), Agent: sensor.AgentClaudeCode}
		in := make(chan sensor.Event, 1024)
		out := make(chan *event.Event, 1024)
		done := make(chan error)
		go func() { done <- r.e.Run(context.Background(), in, out) }()
		go func() {
			for range out {
			}
		}()
		kt := 10000 * ms
		for i := range uint32(10000) {
			k := key(100000+i, 5000+uint64(i))
			kt += 1000
			in <- forkEv(k, key(3, 3), kt, s)
			kt += 1000
			in <- execEv(k, key(3, 3), kt, s, "/usr/bin/python3."+strconv.Itoa(int(i%8)),
				"python3", "-m", "pytest", "tests/test_"+strconv.Itoa(int(i))+".py", "-k", "case and not slow")
		}
		close(in)
		if err := <-done; err != nil {
			b.Fatal(err)
		}
		close(out)
		if st := r.e.Stats(); st.Live != 10003 || st.Evictions != 0 {
			b.Fatalf("table stats %+v", st)
		}
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		b.ReportMetric(float64(ms.HeapAlloc)/(1<<20), "live-heap-MiB")
		runtime.KeepAlive(r)
	}
	b.ReportMetric(vmHWM(b), "peak-RSS-MiB")
	b.ReportMetric(base, "baseline-RSS-MiB")
}
