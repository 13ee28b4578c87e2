package main

import (
	"bytes"
	"crypto/ed25519"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lineaged/lineaged/tests/testutil"
)

// A live sensor reloads its configuration on SIGHUP: the redaction and the
// humans change from the next event on, trust keys and posture checks are
// put in force (a key that does not load refuses the reload), a change it cannot make live is
// named in the log, and a file with problems changes nothing, is logged
// with every problem and counted in lineaged_config_reloads_total.
func TestRunReloadsConfigOnSIGHUP(t *testing.T) {
	testutil.RequireRoot(t, "to load BPF programs")
	dir := t.TempDir()
	out := filepath.Join(dir, "events.jsonl")
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	cfgPath := filepath.Join(dir, "lineaged.yaml")
	base := "scope: all\noutput: " + out + "\nmetrics:\n  listen: " + addr + "\naudit:\n  enabled: false\npolicy:\n  rules: \"\"\n"
	write := func(extra string) {
		t.Helper()
		if err := os.WriteFile(cfgPath, []byte(base+extra), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("redact:\n  patterns: ['rla_[a-z0-9]{6}']\n")
	cmd := exec.Command(binary, "run", "--config", cfgPath)
	cmd.Env = append(os.Environ(), "LINEAGED_STATE_DIR="+t.TempDir())
	stderr := &testutil.SyncBuffer{}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	testutil.WaitForText(t, 30*time.Second, stderr, "sensor started")
	marker := filepath.Join(dir, "marker-true")
	testutil.CopyFile(t, "/bin/true", marker, 0o755)

	type exe struct {
		Kind    string `json:"kind"`
		Process struct {
			Exe  string   `json:"exe"`
			Argv []string `json:"argv"`
		} `json:"process"`
		Identity struct {
			Human *struct {
				Name string `json:"name"`
			} `json:"human"`
		} `json:"identity"`
	}
	// run execs the marker with tag and returns its exec event.
	run := func(tag string) exe {
		t.Helper()
		if err := exec.Command(marker, tag, "rla_"+tag, "rlb_"+tag).Run(); err != nil {
			t.Fatal(err)
		}
		var found *exe
		testutil.WaitFor(t, 20*time.Second, "the exec of "+tag, func() bool {
			b, _ := os.ReadFile(out)
			for _, line := range bytes.Split(b, []byte("\n")) {
				var e exe
				if json.Unmarshal(line, &e) == nil && e.Kind == "process.exec" && slices.Contains(e.Process.Argv, tag) {
					found = &e
					return true
				}
			}
			return false
		}, stderr.String)
		return *found
	}
	hup := func(logged string, n int) {
		t.Helper()
		if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		testutil.WaitFor(t, 10*time.Second, logged, func() bool { return strings.Count(stderr.String(), logged) >= n }, stderr.String)
	}
	masked := func(e exe, prefix string) bool {
		for _, a := range e.Process.Argv {
			if strings.HasPrefix(a, prefix) {
				return false
			}
		}
		return true
	}

	e := run("t1abcd")
	if !masked(e, "rla_") || masked(e, "rlb_") || e.Identity.Human != nil {
		t.Fatalf("before the reload: argv %q human %v", e.Process.Argv, e.Identity.Human)
	}

	write("redact:\n  patterns: ['rlb_[a-z0-9]{6}']\nhumans:\n  root: {name: Root Person, email: root@example.com}\nsensor:\n  queue_size: 1000\n")
	hup(`"msg":"configuration reloaded"`, 1)
	if !strings.Contains(stderr.String(), `"msg":"configuration changes wait for a restart","keys":["sensor.queue_size"]`) {
		t.Errorf("the change that needs a restart is not named:\n%s", stderr.String())
	}
	e = run("t2abcd")
	if masked(e, "rla_") || !masked(e, "rlb_") {
		t.Errorf("after the reload the old redaction is in force: %q", e.Process.Argv)
	}
	if e.Identity.Human == nil || e.Identity.Human.Name != "Root Person" {
		t.Errorf("after the reload the humans are not in force: %+v", e.Identity.Human)
	}

	write("formt: x\nfile:\n  retain: 0\nredact:\n  patterns: ['rla_[a-z0-9]{6}']\n")
	hup(`"msg":"configuration not reloaded: the running configuration stays in force"`, 1)
	for _, w := range []string{cfgPath + `:9: formt: unknown key`, cfgPath + `:11: file.retain: 0 must be at least 1`} {
		if !strings.Contains(stderr.String(), w) {
			t.Errorf("the refused reload does not say %q:\n%s", w, stderr.String())
		}
	}
	e = run("t3abcd")
	if masked(e, "rla_") || !masked(e, "rlb_") || e.Identity.Human == nil {
		t.Errorf("a refused reload changed the configuration: %q %+v", e.Process.Argv, e.Identity.Human)
	}

	// Trust keys: one that does not load refuses the reload; good ones
	// are put in force.
	kept := "redact:\n  patterns: ['rlb_[a-z0-9]{6}']\nhumans:\n  root: {name: Root Person, email: root@example.com}\n"
	missing := filepath.Join(dir, "missing.pem")
	write(kept + "trust:\n  keys: [" + missing + "]\n")
	hup(`"msg":"configuration not reloaded: the running configuration stays in force"`, 2)
	if !strings.Contains(stderr.String(), "trusted key "+missing) {
		t.Errorf("the refused trust key is not named:\n%s", stderr.String())
	}
	pub, _, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	good := filepath.Join(dir, "good.pem")
	if err := os.WriteFile(good, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	write(kept + "trust:\n  keys: [" + good + "]\nposture:\n  checks: [aslr]\n")
	hup(`"msg":"configuration reloaded","applied":["trust.keys","posture.checks"]`, 1)

	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, w := range []string{`lineaged_config_reloads_total{result="ok"} 2`, `lineaged_config_reloads_total{result="failed"} 2`} {
		if !strings.Contains(string(body), w) {
			t.Errorf("metrics lack %q", w)
		}
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("run did not exit cleanly: %v\n%s", err, stderr.String())
	}
}
