package lineage

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lineaged/lineaged/lineage/event"
	"github.com/lineaged/lineaged/sensor/procfs"
)

func TestAuthLog(t *testing.T) {
	p := filepath.Join(t.TempDir(), "auth.log")
	lines := "Nov 25 10:00:00 h sshd[800]: Connection from 10.0.0.5 port 51234\n" +
		"Nov 25 10:00:01 h sshd[812]: Accepted publickey for alice from 10.0.0.5 port 51234 ssh2: ED25519 SHA256:AbCd+/12=\n" +
		"2026-11-25T10:00:02+00:00 h sshd-session[900]: Accepted publickey for bob from ::1 port 2 ssh2: RSA SHA256:Zz9\n" +
		"Nov 25 10:00:03 h sshd[950]: Accepted password for carol from 10.0.0.6 port 3 ssh2\n" +
		strings.Repeat("x", 100*1024) + "\n"
	if err := os.WriteFile(p, []byte(lines), 0o600); err != nil {
		t.Fatal(err)
	}
	a := &AuthLog{Path: p}
	if fp, ok := a.SSHKey(812, "alice"); !ok || fp != "SHA256:AbCd+/12=" {
		t.Errorf("alice = %q %v", fp, ok)
	}
	if _, ok := a.SSHKey(812, "mallory"); ok {
		t.Error("a key must belong to the user who logged in")
	}
	if fp, ok := a.SSHKey(900, "bob"); !ok || fp != "SHA256:Zz9" {
		t.Errorf("bob = %q %v", fp, ok)
	}
	if _, ok := a.SSHKey(950, "carol"); ok {
		t.Error("a password login has no key")
	}
	// Appended later, and a partial line not yet complete.
	f, err := os.OpenFile(p, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("Nov 25 11:00:00 h sshd[1000]: Accepted publickey for dave from 1.2.3.4 port 5 ssh2: ECDSA SHA256:New\n")
	f.WriteString("Nov 25 11:00:01 h sshd[1001]: Accepted publickey for erin from 1.2.3.4 port 5 ssh2: ECDSA SHA256:Par")
	f.Close()
	if fp, ok := a.SSHKey(1000, "dave"); !ok || fp != "SHA256:New" {
		t.Errorf("dave = %q %v", fp, ok)
	}
	if _, ok := a.SSHKey(1001, "erin"); ok {
		t.Error("partial line used")
	}
	// Rotation: a new file at the same path is read from the start.
	if err := os.Remove(p); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte("Nov 26 h sshd[7]: Accepted publickey for frank from h port 1 ssh2: ED25519 SHA256:Rot\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if fp, ok := a.SSHKey(7, "frank"); !ok || fp != "SHA256:Rot" {
		t.Errorf("after rotation = %q %v", fp, ok)
	}
	small := &AuthLog{Path: p, Max: 1}
	if _, ok := small.SSHKey(7, "frank"); !ok {
		t.Error("bounded log lost its only entry")
	}
}

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
