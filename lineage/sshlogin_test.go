package lineage

import (
	"bytes"
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lineaged/lineaged/lineage/event"
	"github.com/lineaged/lineaged/sensor/procfs"
)

type fakeLogins map[uint32]string

func (f fakeLogins) SSHKey(pid uint32, user string) (string, bool) {
	fp, ok := f[pid]
	return fp, ok && user == "alice"
}

func TestIdentityVerifiedBySSHKey(t *testing.T) {
	r := newRig(t, Config{Humans: map[string]event.Human{"alice": {Name: "Alice"}}}, nil)
	r.e.deps.Logins = fakeLogins{10: "SHA256:key"}
	seedBase(r) // sshd is pid 10, exe /usr/sbin/sshd
	got := r.run(claudeRoot(1000 * ms))
	id := got[0].Identity
	if id.VerifiedBy != "ssh-key:SHA256:key" || id.Human == nil || id.Human.Name != "Alice" {
		t.Errorf("identity = %+v", id)
	}
	// Without an sshd ancestor it stays "config".
	r2 := newRig(t, Config{Humans: map[string]event.Human{"alice": {Name: "Alice"}}}, nil)
	r2.e.deps.Logins = fakeLogins{10: "SHA256:key"}
	r2.e.Seed([]*procfs.Proc{sproc(1, 0, 1, "/sbin/init", "init"), sproc(10, 1, 100, "/usr/bin/tmux", "tmux"), sproc(20, 10, 200, "/usr/bin/bash", "bash")})
	if id := r2.run(claudeRoot(1000 * ms))[0].Identity; id.VerifiedBy != "config" {
		t.Errorf("no sshd: %+v", id)
	}
}

// forgedAuthLine is what a syslog daemon receives (and writes to
// /var/log/auth.log) when any user runs
// logger -p auth.info -t 'sshd[PID]' 'Accepted publickey for ...'.
func forgedAuthLine(t *testing.T, pid, user string) string {
	t.Helper()
	logger, err := exec.LookPath("logger")
	if err != nil {
		t.Skip("no logger(1)")
	}
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	port := strings.TrimPrefix(c.LocalAddr().String(), "127.0.0.1:")
	cmd := exec.Command(logger, "--rfc3164", "--udp", "-n", "127.0.0.1", "--port", port, "-p", "auth.info",
		"-t", "sshd["+pid+"]", "Accepted publickey for "+user+" from 10.0.0.5 port 51234 ssh2: ED25519 SHA256:forgedKey")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("logger: %v %s", err, out)
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 4096)
	n, _, err := c.ReadFrom(buf)
	if err != nil {
		t.Fatal(err)
	}
	return regexp.MustCompile(`^<\d+>`).ReplaceAllString(string(buf[:n]), "") + "\n"
}

// The auth.log forgery: any user's `logger` writes a line indistinguishable
// from sshd's. On a host without journald (this one) ssh-key verification
// is off, so the forged line never becomes verified_by ssh-key.
func TestAuthLogForgeryNotVerified(t *testing.T) {
	dir := t.TempDir()
	authLog := filepath.Join(dir, "auth.log")
	line := forgedAuthLine(t, "10", "alice")
	if !strings.Contains(line, "sshd[10]: Accepted publickey for alice") {
		t.Fatalf("forged line %q", line)
	}
	if err := os.WriteFile(authLog, []byte(line), 0o600); err != nil {
		t.Fatal(err)
	}
	keys := NewLoginKeys(LoginSources{JournalSocket: filepath.Join(dir, "no-journal")}, quietLog())
	r := newRig(t, Config{Humans: map[string]event.Human{"alice": {Name: "Alice"}}}, nil)
	r.e.deps.Logins = keys
	seedBase(r) // sshd is pid 10
	id := r.run(claudeRoot(1000 * ms))[0].Identity
	if strings.HasPrefix(id.VerifiedBy, "ssh-key") {
		t.Errorf("the forged auth.log line verified the login: %+v", id)
	}
	// A regular file where journald's socket should be is not journald.
	sock := filepath.Join(dir, "socket")
	os.WriteFile(sock, nil, 0o600)
	if k := NewLoginKeys(LoginSources{JournalSocket: sock}, quietLog()); k != nil {
		t.Errorf("journald taken to run: %T", k)
	}
}

// The journal's trusted fields decide: the same forgery, as journald
// records it (_COMM logger, the user's _UID and _PID), is not a login,
// even if journalctl returned it; the entry root's sshd-session sent is.
func TestJournalLoginsTrustedFieldsOnly(t *testing.T) {
	forged := `{"MESSAGE":"Accepted publickey for root from 10.0.0.5 port 1 ssh2: ED25519 SHA256:forged","_PID":"900","_UID":"1000","_COMM":"logger","SYSLOG_IDENTIFIER":"sshd"}`
	forgedRoot := `{"MESSAGE":"Accepted publickey for root from 10.0.0.5 port 1 ssh2: ED25519 SHA256:forged","_PID":"900","_UID":"0","_COMM":"logger"}`
	unanchored := `{"MESSAGE":"x Accepted publickey for root from 10.0.0.5 port 1 ssh2: ED25519 SHA256:forged","_PID":"900","_UID":"0","_COMM":"sshd-session"}`
	genuine := `{"MESSAGE":"Accepted publickey for bob from ::1 port 2 ssh2: RSA SHA256:Zz9","_PID":"900","_UID":"0","_COMM":"sshd-session"}`
	other := `{"MESSAGE":"Accepted publickey for root from ::1 port 2 ssh2: RSA SHA256:other","_PID":"901","_UID":"0","_COMM":"sshd"}`
	var calls [][]string
	j := &JournalLogins{Run: func(_ context.Context, args []string) ([]byte, error) {
		calls = append(calls, args)
		return []byte(strings.Join([]string{genuine, forged, forgedRoot, unanchored, other, "not json"}, "\n") + "\n"), nil
	}}
	if fp, ok := j.SSHKey(900, "bob"); !ok || fp != "SHA256:Zz9" {
		t.Errorf("bob = %q %v", fp, ok)
	}
	if _, ok := j.SSHKey(900, "root"); ok {
		t.Error("a forged entry verified root")
	}
	want := []string{"--no-pager", "--quiet", "--output=json", "--output-fields=MESSAGE,_PID,_UID,_COMM",
		"_PID=900", "_UID=0", "_COMM=sshd", "+", "_PID=900", "_UID=0", "_COMM=sshd-session"}
	if len(calls) != 1 || !slices.Equal(calls[0], want) {
		t.Errorf("journalctl argv %q", calls)
	}
	// Only forgeries for pid 902: no login, and the miss is not asked
	// again at once.
	j2 := &JournalLogins{Run: func(_ context.Context, args []string) ([]byte, error) {
		calls = append(calls, args)
		return []byte(strings.ReplaceAll(forged, `"900"`, `"902"`)), nil
	}}
	calls = nil
	for range 3 {
		if _, ok := j2.SSHKey(902, "root"); ok {
			t.Error("forged entry for 902 verified")
		}
	}
	if len(calls) != 1 {
		t.Errorf("%d journal lookups for one pid within the retry time", len(calls))
	}
}

// A real journalctl run, where journald runs (not on every test host).
func TestJournalctlRuns(t *testing.T) {
	k := NewLoginKeys(LoginSources{}, quietLog())
	if k == nil {
		t.Skip("journald does not run here")
	}
	out, err := k.(*JournalLogins).Run(context.Background(), journalArgs(1))
	if err != nil || (len(out) > 0 && !bytes.HasPrefix(out, []byte("{"))) {
		t.Errorf("journalctl: %v %.200s", err, out)
	}
}
