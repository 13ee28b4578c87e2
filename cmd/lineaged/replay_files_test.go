package main

import (
	"bytes"
	le "encoding/binary"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/lineaged/lineaged/capture"
	"github.com/lineaged/lineaged/lineage"
	"github.com/lineaged/lineaged/lineage/event"
	"github.com/twmb/franz-go/pkg/kfake"
)

// syntheticCapture writes a capture of n posture samples (plus sensor.start)
// in blocks of about 8 records, and returns its bytes and where each block
// starts.
func syntheticCapture(t *testing.T, n int) ([]byte, []int) {
	t.Helper()
	var buf bytes.Buffer
	w, err := capture.NewWriter(&buf, capture.Header{SensorVersion: "test", Host: "h", Kernel: "k", Meta: map[string]string{
		metaInstance: "00112233445566778899aabbccddeeff", metaSeqAfter: "0", metaHooks: "tracepoint", metaReason: "test",
	}}, capture.WriterConfig{Interval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	add := func(typ capture.Type, v any) {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		if err := w.Add(typ, b); err != nil {
			t.Fatal(err)
		}
	}
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	add(capture.TypeFact, lineage.Fact{Kind: lineage.FactHost, Host: &event.Host{Hostname: "h", BootID: "b00t"}})
	add(capture.TypeFact, lineage.Fact{Kind: lineage.FactBoot, Time: t0.Add(-time.Hour)})
	add(capture.TypeFact, lineage.Fact{Kind: lineage.FactClock, Time: t0})
	add(capture.TypeStep, lineage.Step{Kind: lineage.StepExternal, Ev: &event.Event{Kind: event.KindSensorStart, Time: t0,
		Sensor: &event.Sensor{Version: "test", InstanceID: "00112233445566778899aabbccddeeff", Source: "live"}}})
	var starts []int
	for i := 0; i < n; i++ {
		if i%8 == 0 {
			if err := w.Flush(); err != nil {
				t.Fatal(err)
			}
			starts = append(starts, buf.Len())
		}
		ts := t0.Add(time.Duration(i+1) * time.Second)
		add(capture.TypeStep, lineage.Step{Kind: lineage.StepExternal, Ev: &event.Event{Kind: event.KindPostureSample, Time: ts,
			Posture: &event.Posture{SampledAt: ts, Compliant: true}}})
	}
	add(capture.TypeMark, stopMark{Stop: "shutdown requested"})
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes(), starts
}

func writeCapture(t *testing.T, b []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "c.lcap")
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func lines(s string) int { return strings.Count(s, "\n") }

func TestReplayBrokenFiles(t *testing.T) {
	good, starts := syntheticCapture(t, 40)
	cfg := filepath.Join(t.TempDir(), "c.yaml")
	if err := os.WriteFile(cfg, []byte("audit:\n  enabled: false\npolicy:\n  rules: \"\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	replay := func(args ...string) result {
		return runBinary(t, nil, append([]string{"replay", "--config", cfg}, args...)...)
	}

	r := replay(writeCapture(t, good))
	if r.code != 0 || lines(r.stdout) != 42 { // start, 40 samples, stop
		t.Fatalf("whole capture: exit %d, %d lines\n%s", r.code, lines(r.stdout), r.stderr)
	}
	if !strings.Contains(r.stdout, `"source":"replay"`) {
		t.Fatalf("sensor.source is not replay:\n%s", r.stdout)
	}

	// Truncated inside the fourth block: the three whole ones replay,
	// then it says where and why, exit 1.
	cut := starts[3] + 10
	r = replay(writeCapture(t, good[:cut]))
	if r.code != exitRuntime || !strings.Contains(r.stderr, "truncated") ||
		!strings.Contains(r.stderr, "byte offset "+strconv.Itoa(starts[3])) {
		t.Fatalf("truncated: exit %d\n%s", r.code, r.stderr)
	}
	if got := lines(r.stdout); got != 1+24+1 {
		t.Fatalf("truncated: %d lines replayed, want the 24 samples of whole blocks with start and stop", got)
	}

	// A damaged block: an error naming its offset; --skip-corrupt skips
	// it, goes on and counts it.
	bad := bytes.Clone(good)
	bad[starts[2]+20] ^= 0x40
	r = replay(writeCapture(t, bad))
	oneLine(t, r, exitRuntime, "byte offset "+strconv.Itoa(starts[2]))
	r = replay("--skip-corrupt", writeCapture(t, bad))
	if r.code != 0 || lines(r.stdout) != 42-8 || !strings.Contains(r.stderr, "skipped 1 corrupt blocks") {
		t.Fatalf("--skip-corrupt: exit %d, %d lines\n%s", r.code, lines(r.stdout), r.stderr)
	}

	// A newer format.
	newer := bytes.Clone(good)
	le.LittleEndian.PutUint16(newer[len(capture.Magic):], 9)
	r = replay(writeCapture(t, newer))
	oneLine(t, r, exitRuntime, "capture format version 9 is newer than this lineaged reads (version 2)")

	// Not a capture at all.
	r = replay(writeCapture(t, []byte(`{"schema":"lineaged/v2","kind":"sensor.start"}`+"\n")))
	oneLine(t, r, exitRuntime, "not a lineaged capture file")
}

// --since and --until choose what is written, after numbering; --speed
// paces by the kernel times (none here: only external events) and a bad
// pace is a usage error.
func TestReplayFilters(t *testing.T) {
	good, _ := syntheticCapture(t, 40)
	path := writeCapture(t, good)
	cfg := filepath.Join(t.TempDir(), "c.yaml")
	if err := os.WriteFile(cfg, []byte("audit:\n  enabled: false\npolicy:\n  rules: \"\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// Samples are at 03:04:06 .. 03:04:45, one a second.
	r := runBinary(t, nil, "replay", "--config", cfg, "--since", "2026-01-02T03:04:10Z", "--until", "2026-01-02T03:04:20Z", "--speed", "1000x", path)
	if r.code != 0 || lines(r.stdout) != 10 {
		t.Fatalf("since/until: exit %d, %d lines\n%s\n%s", r.code, lines(r.stdout), r.stdout, r.stderr)
	}
	// The first written keeps its seq in the whole replay: sensor.start is
	// 1, the samples from 03:04:06 are 2.., so 03:04:10 is 6.
	if !strings.HasPrefix(r.stdout, `{"schema":"lineaged/v2","event_id":`) || !strings.Contains(strings.SplitN(r.stdout, "\n", 2)[0], `"seq":6,`) {
		t.Fatalf("first filtered event:\n%s", strings.SplitN(r.stdout, "\n", 2)[0])
	}
	r = runBinary(t, nil, "replay", "--config", cfg, "--speed", "fast", path)
	oneLine(t, r, exitUsage, `--speed "fast"`)
	r = runBinary(t, nil, "replay", "--config", cfg, "--format", "ocsf", path)
	if r.code != 0 || lines(r.stdout) != 42 || !strings.Contains(r.stdout, `"class_uid"`) {
		t.Fatalf("ocsf: exit %d\n%s", r.code, r.stderr)
	}
}

// Replay publishes through any sink: here a Kafka-protocol broker, read back
// by kcat.
func TestReplayToKafka(t *testing.T) {
	kcat, err := exec.LookPath("kcat")
	if err != nil {
		t.Fatal("kcat is not installed: run make deps")
	}
	const topic = "lineaged-replay-test"
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, topic))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	broker := c.ListenAddrs()[0]
	good, _ := syntheticCapture(t, 40)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "c.yaml")
	if err := os.WriteFile(cfg, []byte("audit:\n  enabled: false\npolicy:\n  rules: \"\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(binary, "replay", "--config", cfg, "--kafka-brokers", broker, "--kafka-topic", topic, writeCapture(t, good))
	cmd.Env = []string{"PATH=/usr/bin:/bin", "LINEAGED_KAFKA_SPOOL_DIR=" + filepath.Join(dir, "spool"), "LINEAGED_STATE_DIR=" + dir}
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("replay to Kafka: %v\n%s", err, b)
	}
	out, err := exec.Command(kcat, "-b", broker, "-t", topic, "-C", "-e", "-q", "-o", "beginning").Output()
	if err != nil {
		t.Fatalf("kcat: %v", err)
	}
	if n := strings.Count(string(out), `"kind":"posture.sample"`); n != 40 || !strings.Contains(string(out), `"source":"replay"`) {
		t.Fatalf("kcat read %d posture samples:\n%.2000s", n, out)
	}
}
