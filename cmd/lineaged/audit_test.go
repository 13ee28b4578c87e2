package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/lineaged/lineaged/tests/testutil"
)

// auditEnv runs the sensor with its audit state, spool and hash cache under
// dir, and an interval checkpoint every second.
func auditEnv(dir string) []string {
	return []string{"PATH=/usr/bin:/bin",
		"LINEAGED_AUDIT_STATE_DIR=" + filepath.Join(dir, "audit"),
		"LINEAGED_AUDIT_CHECKPOINT_INTERVAL=1s",
		"LINEAGED_KAFKA_SPOOL_DIR=" + filepath.Join(dir, "spool"),
		"LINEAGED_HASHING_CACHE_DIR=" + filepath.Join(dir, "binid"),
	}
}

// runSensor starts lineaged run with args, waits for it to start and for
// wait, then ends it with sig (SIGTERM: a clean stop; SIGKILL: a crash).
func runSensor(t *testing.T, dir string, wait time.Duration, sig syscall.Signal, args ...string) {
	t.Helper()
	runSensorEnv(t, dir, nil, wait, sig, args...)
}

func runSensorEnv(t *testing.T, dir string, env []string, wait time.Duration, sig syscall.Signal, args ...string) {
	t.Helper()
	cmd := exec.Command(binary, append([]string{"run"}, args...)...)
	cmd.Env = append(auditEnv(dir), env...)
	var stderr testutil.SyncBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	testutil.WaitForText(t, 30*time.Second, &stderr, "sensor started")
	time.Sleep(wait)
	if err := cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
	err := cmd.Wait()
	if sig == syscall.SIGTERM && err != nil {
		t.Fatalf("run did not stop cleanly: %v\n%s", err, stderr.String())
	}
}

// verifyCmd runs lineaged verify with stdin and returns its exit code and
// output.
func verifyCmd(t *testing.T, dir string, stdin []byte, args ...string) (int, string) {
	t.Helper()
	cmd := exec.Command(binary, append([]string{"verify"}, args...)...)
	cmd.Env = auditEnv(dir)
	cmd.Stdin = bytes.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode(), string(out)
	}
	if err != nil {
		t.Fatal(err)
	}
	return 0, string(out)
}

// pubKey writes what lineaged key prints to dir/key.pub.
func pubKey(t *testing.T, dir string) string {
	t.Helper()
	cmd := exec.Command(binary, "key")
	cmd.Env = auditEnv(dir)
	out, err := cmd.Output()
	if err != nil || !bytes.HasPrefix(out, []byte("-----BEGIN PUBLIC KEY-----")) {
		t.Fatalf("lineaged key: %v\n%s", err, out)
	}
	p := filepath.Join(dir, "key.pub")
	if err := os.WriteFile(p, out, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// Two runs into one file, the second after a clean stop, then a crashed
// run and one more: the file verifies (the crashed run's tail unverified),
// each start says how the run before ended, and an edit is caught.
func TestRunAuditTrailAcrossRestarts(t *testing.T) {
	testutil.RequireRoot(t, "to load BPF programs")
	dir := t.TempDir()
	out := filepath.Join(dir, "events.jsonl")
	runSensor(t, dir, 1500*time.Millisecond, syscall.SIGTERM, "--output", out)
	runSensor(t, dir, 0, syscall.SIGTERM, "--output", out)
	key := pubKey(t, dir)
	st, err := os.Stat(filepath.Join(dir, "audit", "state.json"))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("state file: %v %v", err, st)
	}
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if n := bytes.Count(data, []byte(`"kind":"sensor.checkpoint"`)); n < 3 {
		t.Fatalf("%d checkpoints, want an interval one and one per stop", n)
	}
	if !bytes.Contains(data, []byte(`"previous_end":"stop"`)) {
		t.Fatal("the second sensor.start does not say the first run stopped")
	}
	if code, o := verifyCmd(t, dir, nil, "--key", key, out); code != 0 || !strings.Contains(o, "verified:") {
		t.Fatalf("verify exit %d:\n%s", code, o)
	}
	// The same lines from stdin, in reverse order.
	lines := bytes.Split(bytes.TrimSpace(data), []byte("\n"))
	var rev []byte
	for i := len(lines) - 1; i >= 0; i-- {
		rev = append(append(rev, lines[i]...), '\n')
	}
	if code, o := verifyCmd(t, dir, rev, "--key", key, "-"); code != 0 {
		t.Fatalf("verify of reordered lines exit %d:\n%s", code, o)
	}
	// One field edited: tampered, naming the event.
	edited := bytes.Replace(data, []byte(`"kind":"sensor.stop"`), []byte(`"kind":"sensor.stap"`), 1)
	if code, o := verifyCmd(t, dir, edited, "--key", key, "-"); code != exitTampered || !strings.Contains(o, "edited") {
		t.Fatalf("verify of an edited line exit %d:\n%s", code, o)
	}

	// A crash: SIGKILL before any checkpoint of that run.
	runSensor(t, dir, 200*time.Millisecond, syscall.SIGKILL, "--output", out)
	runSensor(t, dir, 0, syscall.SIGTERM, "--output", out)
	data, err = os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(data, []byte(`"previous_end":"crash"`)) {
		t.Fatal("the start after a crash does not say so")
	}
	code, o := verifyCmd(t, dir, nil, "--key", key, out)
	if code != exitUnverified || !strings.Contains(o, "a crash") {
		t.Fatalf("verify after a crash exit %d, want %d (unverified tail):\n%s", code, exitUnverified, o)
	}
}

// Events published to Kafka through the spool, read back by kcat and piped
// in, verify; and so does reading the topic directly.
func TestRunAuditKafkaReadByKcat(t *testing.T) {
	testutil.RequireRoot(t, "to load BPF programs")
	kcat, err := exec.LookPath("kcat")
	if err != nil {
		t.Fatal("kcat is not installed: run make deps")
	}
	const topic, cpTopic = "lineaged-audit-test", "lineaged-audit-checkpoints"
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(3, topic, cpTopic))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	broker := c.ListenAddrs()[0]
	dir := t.TempDir()
	env := []string{"LINEAGED_AUDIT_CHECKPOINT_TOPIC=" + cpTopic}
	runSensorEnv(t, dir, env, 1500*time.Millisecond, syscall.SIGTERM, "--kafka-brokers", broker, "--kafka-topic", topic)
	runSensorEnv(t, dir, env, 0, syscall.SIGTERM, "--kafka-brokers", broker, "--kafka-topic", topic)
	key := pubKey(t, dir)
	out, err := exec.Command(kcat, "-b", broker, "-t", topic, "-C", "-e", "-q", "-o", "beginning", "-f", "%s\n").Output()
	if err != nil {
		t.Fatalf("kcat: %v", err)
	}
	if n := bytes.Count(out, []byte(`"kind":"sensor.checkpoint"`)); n < 3 {
		t.Fatalf("%d checkpoints read back", n)
	}
	if code, o := verifyCmd(t, dir, out, "--key", key, "-"); code != 0 {
		t.Fatalf("verify of kcat's output exit %d:\n%s", code, o)
	}
	if code, o := verifyCmd(t, dir, nil, "--key", key, "--kafka-brokers", broker, "--kafka-topic", topic); code != 0 {
		t.Fatalf("verify --kafka-brokers exit %d:\n%s", code, o)
	}
	// The second destination holds the same checkpoint lines, byte for
	// byte, and verify takes them along with the stream.
	cps, err := exec.Command(kcat, "-b", broker, "-t", cpTopic, "-C", "-e", "-q", "-o", "beginning", "-f", "%s\n").Output()
	if err != nil {
		t.Fatalf("kcat: %v", err)
	}
	cpLines := bytes.Split(bytes.TrimSpace(cps), []byte("\n"))
	if len(cpLines) != bytes.Count(out, []byte(`"kind":"sensor.checkpoint"`)) {
		t.Fatalf("%d lines in the checkpoint topic, %d checkpoints in the stream", len(cpLines), bytes.Count(out, []byte(`"kind":"sensor.checkpoint"`)))
	}
	for _, l := range cpLines {
		if !bytes.Contains(out, l) {
			t.Fatalf("checkpoint copy not in the stream byte for byte: %.200s", l)
		}
	}
	if code, o := verifyCmd(t, dir, append(bytes.Clone(out), cps...), "--key", key, "-"); code != 0 {
		t.Fatalf("verify of the stream and its checkpoint copies exit %d:\n%s", code, o)
	}
	// A message dropped from what the consumer saw is removal.
	lines := bytes.Split(bytes.TrimSpace(out), []byte("\n"))
	var cut []byte
	for i, l := range lines {
		if i != 3 {
			cut = append(append(cut, l...), '\n')
		}
	}
	if code, o := verifyCmd(t, dir, cut, "--key", key, "-"); code != exitTampered {
		t.Fatalf("verify without one message exit %d:\n%s", code, o)
	}
}

func TestVerifyUsage(t *testing.T) {
	dir := t.TempDir()
	if code, o := verifyCmd(t, dir, nil, "x.jsonl"); code != exitUsage || !strings.Contains(o, "--key") {
		t.Fatalf("verify without --key: %d %s", code, o)
	}
	bad := filepath.Join(dir, "bad.pub")
	os.WriteFile(bad, []byte("not a key"), 0o600)
	if code, o := verifyCmd(t, dir, nil, "--key", bad, "-"); code != exitUsage || !strings.Contains(o, "PEM") {
		t.Fatalf("verify with a bad key: %d %s", code, o)
	}
}

// With a small file.max_size_mb, every rotated file ends with its rotation
// checkpoint and the files together verify.
func TestRunAuditRotation(t *testing.T) {
	testutil.RequireRoot(t, "to load BPF programs")
	dir := t.TempDir()
	out := filepath.Join(dir, "events.jsonl")
	cmd := exec.Command(binary, "run", "--scope", "all", "--output", out)
	cmd.Env = append(auditEnv(dir), "LINEAGED_FILE_MAX_SIZE_MB=1", "LINEAGED_FILE_RETAIN=20")
	var stderr testutil.SyncBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	testutil.WaitForText(t, 30*time.Second, &stderr, "sensor started")
	rotated := func() []string { f, _ := filepath.Glob(out + ".*"); return f }
	deadline := time.Now().Add(60 * time.Second)
	for len(rotated()) < 2 && time.Now().Before(deadline) {
		for range 50 {
			if err := exec.Command("/bin/true").Run(); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("run did not stop cleanly: %v\n%s", err, stderr.String())
	}
	files := rotated()
	if len(files) < 2 {
		t.Fatalf("%d rotated files", len(files))
	}
	args := []string{"--key", pubKey(t, dir)}
	for i := len(files); i >= 1; i-- {
		f := out + "." + strconv.Itoa(i)
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		lines := bytes.Split(bytes.TrimSpace(data), []byte("\n"))
		if last := lines[len(lines)-1]; !bytes.Contains(last, []byte(`"reason":"rotation"`)) {
			t.Errorf("%s does not end with its rotation checkpoint: %.200s", filepath.Base(f), last)
		}
		args = append(args, f)
	}
	if code, o := verifyCmd(t, dir, nil, append(args, out)...); code != 0 {
		t.Fatalf("verify exit %d:\n%s", code, o)
	}
}

// The audit keys' bad values are errors naming the key.
func TestAuditConfigValidation(t *testing.T) {
	for env, want := range map[string]string{
		"LINEAGED_AUDIT_ALGORITHM=rsa":                 "audit.algorithm",
		"LINEAGED_AUDIT_STATE_DIR=relative":            "audit.state_dir",
		"LINEAGED_AUDIT_CHECKPOINT_INTERVAL=10ms":      "audit.checkpoint_interval",
		"LINEAGED_AUDIT_CHECKPOINT_COPY=cp.jsonl":      "audit.checkpoint_copy",
		"LINEAGED_AUDIT_CHECKPOINT_TOPIC=lineaged-cps": "needs kafka.brokers",
	} {
		k, v, _ := strings.Cut(env, "=")
		_, err := parse(t, nil, map[string]string{k: v})
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: got %v, want an error naming %s", env, err, want)
		}
	}
	_, err := parse(t, nil, map[string]string{"LINEAGED_KAFKA_BROKERS": "b:9092", "LINEAGED_KAFKA_TOPIC": "t", "LINEAGED_AUDIT_CHECKPOINT_TOPIC": "t"})
	if err == nil || !strings.Contains(err.Error(), "another topic") {
		t.Errorf("checkpoint topic = kafka.topic: %v", err)
	}
}

// TestRunHoldsTheAuditLock: a running sensor keeps audit.state_dir locked
// for its whole run, past the garbage collections its work causes; a
// second sensor on the same directory is refused, naming it.
func TestRunHoldsTheAuditLock(t *testing.T) {
	testutil.RequireRoot(t, "to load BPF programs")
	state := t.TempDir()
	out := filepath.Join(t.TempDir(), "events.jsonl")
	cmd := exec.Command(binary, "run", "--scope", "all", "--output", out, "--metrics-listen", "127.0.0.1:0")
	cmd.Env = append(os.Environ(), "LINEAGED_STATE_DIR="+state, "LINEAGED_CONTROL_SOCKET=", "GOGC=10")
	var stderr testutil.SyncBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Signal(syscall.SIGTERM); cmd.Wait() }()
	testutil.WaitForText(t, 60*time.Second, &stderr, "sensor started")
	// Work that makes garbage: a collection has run before the check.
	for range 300 {
		if err := exec.Command("/bin/true").Run(); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(2 * time.Second)
	// A second sensor on the same directory must stop at once; one that
	// got the lock runs until it is killed here.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	second := exec.CommandContext(ctx, binary, "run", "--scope", "all", "--output", filepath.Join(t.TempDir(), "second.jsonl"), "--metrics-listen", "127.0.0.1:0")
	second.Env = append(os.Environ(), "LINEAGED_STATE_DIR="+state, "LINEAGED_CONTROL_SOCKET=")
	b, err := second.CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("a second sensor on the same audit directory ran (killed after 30s):\n%s", b)
	}
	if err == nil || !strings.Contains(string(b), "in use by another running lineaged") || !strings.Contains(string(b), filepath.Join(state, "audit")) {
		t.Fatalf("a second sensor on the same audit directory: %v\n%s", err, b)
	}
}
