package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lineaged/lineaged/lineage/event"
	"github.com/lineaged/lineaged/tests/testutil"
	"github.com/twmb/franz-go/pkg/kfake"
)

// lineaged run publishes to a Kafka-protocol broker through its spool, drains
// on SIGTERM, and a third-party consumer (kcat) reads every event.
func TestRunToKafkaReadByKcat(t *testing.T) {
	testutil.RequireRoot(t, "to load BPF programs")
	kcat, err := exec.LookPath("kcat")
	if err != nil {
		t.Fatal("kcat is not installed: run make deps")
	}
	const topic = "lineaged-run-test"
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(2, topic))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	broker := c.ListenAddrs()[0]

	dir := t.TempDir()
	cmd := exec.Command(binary, "run", "--kafka-brokers", broker, "--kafka-topic", topic)
	cmd.Env = []string{"PATH=/usr/bin:/bin", "LINEAGED_KAFKA_SPOOL_DIR=" + filepath.Join(dir, "spool")}
	var stderr testutil.SyncBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	testutil.WaitForText(t, 30*time.Second, &stderr, "sensor started")
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("run to Kafka did not stop cleanly: %v\n%s", err, stderr.String())
	}
	if st, err := os.Stat(filepath.Join(dir, "spool")); err != nil || st.Mode().Perm() != 0o700 {
		t.Fatalf("spool directory: %v, mode %v (want 0700)", err, st.Mode().Perm())
	}

	out, err := exec.Command(kcat, "-b", broker, "-t", topic, "-C", "-e", "-q", "-o", "beginning",
		"-f", "%h\t%s\n").Output()
	if err != nil {
		t.Fatalf("kcat: %v", err)
	}
	kinds := map[string]bool{}
	seqs := map[uint64]bool{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		headers, payload, ok := strings.Cut(line, "\t")
		if !ok {
			t.Fatalf("kcat line without headers: %q", line)
		}
		if !strings.Contains(headers, "content-type=application/json") || !strings.Contains(headers, "schema="+event.Schema) {
			t.Errorf("headers %q lack content-type or schema", headers)
		}
		var ev struct {
			Kind string `json:"kind"`
			Seq  uint64 `json:"seq"`
		}
		if err := json.Unmarshal([]byte(payload), &ev); err != nil {
			t.Fatalf("kcat read a non-JSON event: %v: %q", err, payload)
		}
		kinds[ev.Kind] = true
		seqs[ev.Seq] = true
	}
	for _, k := range []string{"sensor.start", "posture.sample", "sensor.stop"} {
		if !kinds[k] {
			t.Errorf("no %s event in the topic (kinds: %v)", k, kinds)
		}
	}
	for s := uint64(1); s <= uint64(len(seqs)); s++ {
		if !seqs[s] {
			t.Errorf("seq %d missing from the topic: a gap", s)
		}
	}
}

// A broker that does not answer at start is a one-line error naming it.
func TestRunKafkaUnreachableAtStart(t *testing.T) {
	testutil.RequireRoot(t, "to load BPF programs")
	dir := t.TempDir()
	cmd := exec.Command(binary, "run", "--kafka-brokers", "127.0.0.1:1", "--kafka-topic", "t")
	cmd.Env = []string{"PATH=/usr/bin:/bin", "LINEAGED_KAFKA_SPOOL_DIR=" + filepath.Join(dir, "spool")}
	var stderr testutil.SyncBuffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	ee, ok := err.(*exec.ExitError)
	if !ok || ee.ExitCode() == 0 {
		t.Fatalf("want a failing exit, got %v", err)
	}
	lines := strings.Split(strings.TrimSpace(stderr.String()), "\n")
	last := lines[len(lines)-1]
	if !strings.HasPrefix(last, "lineaged: ") || !strings.Contains(last, "127.0.0.1:1") {
		t.Fatalf("error does not name the broker: %q", stderr.String())
	}
}
