package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/lineaged/lineaged/lineage/event"
	"github.com/lineaged/lineaged/lineage/policy"
	"github.com/lineaged/lineaged/tests/testutil"
)

// consumeAll reads topic from the start until it has been quiet for quiet.
func consumeAll(t *testing.T, broker, topic string, quiet time.Duration) [][]byte {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(broker), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var out [][]byte
	for {
		ctx, cancel := context.WithTimeout(context.Background(), quiet)
		fs := cl.PollFetches(ctx)
		cancel()
		n := 0
		fs.EachRecord(func(r *kgo.Record) { out = append(out, r.Value); n++ })
		if n == 0 {
			return out
		}
	}
}

// startRun starts lineaged run --scope all to the broker, with its state
// (spool, sequence file) in dir, and waits until it has started.
func startRun(t *testing.T, dir, broker, topic string) (*exec.Cmd, *testutil.SyncBuffer) {
	t.Helper()
	cmd := exec.Command(binary, "run", "--scope", "all", "--kafka-brokers", broker, "--kafka-topic", topic)
	cmd.Env = []string{"PATH=/usr/bin:/bin", "LINEAGED_KAFKA_SPOOL_DIR=" + filepath.Join(dir, "spool")}
	stderr := &testutil.SyncBuffer{}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	testutil.WaitForText(t, 30*time.Second, stderr, "sensor started")
	return cmd, stderr
}

// A SIGKILL of the sensor under load loses the events it had numbered and
// not yet written to the spool. The next start numbers after the last seq
// the killed run gave out and reports the gap with one sensor.loss whose
// seq range is exactly the seqs missing from the topic.
func TestSIGKILLUnderLoadReportsTheGapOnRestart(t *testing.T) {
	testutil.RequireRoot(t, "to load BPF programs")
	const topic = "lineaged-crash-test"
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(2, topic))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	broker := c.ListenAddrs()[0]
	dir := t.TempDir()

	// Load: an exec storm, every exec an event with --scope all.
	var wg sync.WaitGroup
	load := func(stop chan struct{}) {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			exec.Command("/bin/true").Run()
		}
	}
	// Kill under load until a start reports a gap (most kills catch some
	// events numbered and not yet written; up to eight tries), then stop
	// that run cleanly.
	const gapLog = "the previous run ended with events numbered and not written"
	var last *exec.Cmd
	var lastOut *testutil.SyncBuffer
	for try := 0; ; try++ {
		run, out := startRun(t, dir, broker, topic)
		defer func() { t.Log(out.String()) }()
		if strings.Contains(out.String(), gapLog) || try == 8 {
			last, lastOut = run, out
			break
		}
		stop := make(chan struct{})
		for range 2 {
			wg.Add(1)
			go load(stop)
		}
		time.Sleep(2 * time.Second)
		if err := run.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		run.Wait()
		close(stop)
		wg.Wait()
	}
	st, err := os.Stat(filepath.Join(dir, policy.SeqStateName))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("sequence state file: %v, mode %v (want 0600)", err, st.Mode().Perm())
	}
	time.Sleep(time.Second)
	last.Process.Signal(syscall.SIGTERM)
	if err := last.Wait(); err != nil {
		t.Fatalf("last run did not stop cleanly: %v\n%s", err, lastOut.String())
	}

	seqs := map[uint64]bool{}
	var maxSeq uint64
	var crash []event.Loss
	for _, v := range consumeAll(t, broker, topic, 3*time.Second) {
		var ev struct {
			Kind string      `json:"kind"`
			Seq  uint64      `json:"seq"`
			Loss *event.Loss `json:"loss"`
		}
		if err := json.Unmarshal(v, &ev); err != nil {
			t.Fatalf("not JSON: %v", err)
		}
		seqs[ev.Seq] = true
		maxSeq = max(maxSeq, ev.Seq)
		if ev.Kind == event.KindSensorLoss && ev.Loss != nil && ev.Loss.Where == "sensor" {
			crash = append(crash, *ev.Loss)
		}
	}
	// The missing seqs, as contiguous ranges; each must be one crash
	// report's range, exactly.
	type span struct{ first, last uint64 }
	var gaps []span
	for q := uint64(1); q <= maxSeq; q++ {
		if seqs[q] {
			continue
		}
		if n := len(gaps); n > 0 && gaps[n-1].last == q-1 {
			gaps[n-1].last = q
		} else {
			gaps = append(gaps, span{q, q})
		}
	}
	t.Logf("%d events delivered, seqs up to %d, gaps %v, crash reports %+v", len(seqs), maxSeq, gaps, crash)
	var reported []span
	for _, l := range crash {
		if l.Count != l.LastSeq-l.FirstSeq+1 {
			t.Errorf("loss %d..%d counts %d", l.FirstSeq, l.LastSeq, l.Count)
		}
		if l.From.IsZero() || l.To.Before(l.From) {
			t.Errorf("loss time range %v..%v", l.From, l.To)
		}
		reported = append(reported, span{l.FirstSeq, l.LastSeq})
	}
	if fmt.Sprint(gaps) != fmt.Sprint(reported) {
		t.Fatalf("missing seq ranges %v, crash reports cover %v", gaps, reported)
	}
	if len(gaps) == 0 {
		t.Skip("no kill lost a numbered event this time: nothing to report")
	}
}
