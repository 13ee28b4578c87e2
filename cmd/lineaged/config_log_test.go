package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/lineaged/lineaged/lineage/policy/redact"
	"github.com/lineaged/lineaged/tests/testutil"
)

const (
	logSecret = "hunter2-pw-7731"
	logToken  = "tok_q8z3k1m9"
)

// jsonLines checks that every line of out is one JSON object.
func jsonLines(t *testing.T, out string) {
	t.Helper()
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Errorf("log line is not JSON: %q: %v", sc.Text(), err)
		}
	}
}

// Off a terminal the log is JSON; a secret from the configuration (the
// SASL password) or from an argv (a redact pattern, a built-in rule) is
// masked wherever it appears: message, string, error, list, group, With.
func TestLogCarriesNoSecrets(t *testing.T) {
	cfg := &Config{Log: LogConfig{Level: "debug"}}
	cfg.Kafka.SASL.Password = logSecret
	cfg.Redact.Patterns = []string{`tok_[a-z0-9]{8}`}
	var buf bytes.Buffer
	log := newConfigLogger(cfg, &buf)
	log.Error("kafka: SASL PLAIN as u/"+logSecret+" refused", "err", errors.New("auth "+logSecret+" rejected"))
	log.Info("kill", "argv", []string{"curl", "-H", "X-Token: " + logToken, "--password=" + logSecret})
	log.With("cmd", "mysql -p"+logSecret).WithGroup("g").Warn("x", "inner", logToken, "n", 3)
	log.Debug("config", "sasl", cfg.Kafka.SASL)
	out := buf.String()
	jsonLines(t, out)
	if strings.Contains(out, logSecret) || strings.Contains(out, "tok_q8z3") {
		t.Errorf("a secret reached the log:\n%s", out)
	}
	if n := strings.Count(out, redact.Mask); n < 7 {
		t.Errorf("%d masks, want every secret masked:\n%s", n, out)
	}
	if !strings.Contains(out, `"n":3`) {
		t.Errorf("other attributes changed:\n%s", out)
	}
}

// On a terminal the log is text.
func TestLogTextOnTerminal(t *testing.T) {
	ptmx, err := os.OpenFile("/dev/ptmx", os.O_RDWR, 0)
	if err != nil {
		t.Skipf("no pty: %v", err)
	}
	defer ptmx.Close()
	if err := unix.IoctlSetPointerInt(int(ptmx.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatal(err)
	}
	n, err := unix.IoctlGetInt(int(ptmx.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatal(err)
	}
	pts, err := os.OpenFile("/dev/pts/"+strconv.Itoa(n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer pts.Close()
	newConfigLogger(&Config{Log: LogConfig{Level: "info"}}, pts).Info("hello", "k", "v")
	b := make([]byte, 256)
	_ = ptmx.SetReadDeadline(time.Now().Add(5 * time.Second))
	m, err := ptmx.Read(b)
	if err != nil {
		t.Fatal(err)
	}
	if got := string(b[:m]); !strings.Contains(got, `level=INFO msg=hello k=v`) {
		t.Errorf("terminal log %q is not text", got)
	}
	// A character device that is no terminal gets JSON.
	null, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer null.Close()
	if isTTY(null) {
		t.Error("/dev/null taken for a terminal")
	}
}

// A real run at debug level, configured with a SASL password, sees a
// process whose argv holds a password and a token: the event has them
// masked, and the sensor's log (JSON, stderr being a pipe) has neither.
func TestRunLogCarriesNoSecrets(t *testing.T) {
	testutil.RequireRoot(t, "to load BPF programs")
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "lineaged.yaml")
	body := "scope: all\nlog:\n  level: debug\nkafka:\n  sasl:\n    username: u\n    password: " + logSecret +
		"\nredact:\n  patterns: ['tok_[a-z0-9]{8}']\naudit:\n  enabled: false\n"
	if err := os.WriteFile(cfgPath, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "events.jsonl")
	cmd := exec.Command(binary, "run", "--config", cfgPath, "--output", out)
	cmd.Env = append(os.Environ(), "LINEAGED_STATE_DIR="+t.TempDir())
	var stderr testutil.SyncBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	testutil.WaitForText(t, 30*time.Second, &stderr, "sensor started")
	marker := filepath.Join(dir, "marker-true")
	testutil.CopyFile(t, "/bin/true", marker, 0o755)
	if err := exec.Command(marker, "--password="+logSecret, logToken).Run(); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 20*time.Second, "the marker's exec event", func() bool {
		b, _ := os.ReadFile(out)
		return bytes.Contains(b, []byte(marker))
	}, stderr.String)
	_ = cmd.Process.Signal(unix.SIGTERM)
	_ = cmd.Wait()
	events, _ := os.ReadFile(out)
	if bytes.Contains(events, []byte(logSecret)) || bytes.Contains(events, []byte(logToken)) {
		t.Error("a secret reached the events")
	}
	log := stderr.String()
	jsonLines(t, log)
	if strings.Contains(log, logSecret) || strings.Contains(log, logToken) {
		t.Errorf("a secret reached the log:\n%s", log)
	}
	if !strings.Contains(log, `"msg":"sensor stopped"`) {
		t.Errorf("no JSON stop line:\n%s", log)
	}
}
