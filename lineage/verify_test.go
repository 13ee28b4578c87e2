package lineage

import (
	"strings"
	"testing"
	"time"

	"github.com/lineaged/lineaged/lineage/agent"
	"github.com/lineaged/lineaged/lineage/event"
	"github.com/lineaged/lineaged/sensor"
)

const (
	claudePath = "/home/alice/.local/share/claude/versions/2.0.1"
	lookPath   = "/tmp/x/.local/share/claude/versions/9.9.9"
)

var claudeSum = strings.Repeat("c1", 32)

// verifyRig is a rig whose release list knows claudePath's binary, already
// hashed (in the cache).
func verifyRig(t *testing.T) *rig {
	var rel agent.Releases
	if err := rel.ParseReleases("test", []byte("sha256 "+claudeSum+" claude-code 2.0.1\n")); err != nil {
		t.Fatal(err)
	}
	r := newRig(t, Config{AgentReleases: &rel}, nil)
	r.bins.cache = map[string]*event.Binary{claudePath: {Path: claudePath, SHA256: claudeSum, Verdict: event.VerdictUnsigned}}
	seedBase(r)
	settle(r)
	return r
}

// nestedExec is a recognised exec by a member of sess: the kernel opens a
// nested session rooted at k.
func nestedExec(k, parent sensor.ProcKey, kt uint64, exe string, argv ...string) (sensor.Event, sensor.SessionRef) {
	inner := sensor.SessionRef{Root: k, Agent: sensor.AgentClaudeCode}
	ev := execEv(k, parent, kt, inner, exe, argv...)
	ev.Exec.Recognised, ev.Exec.ParentSession = sensor.AgentClaudeCode, sess
	return ev, inner
}

func byPID(evs []*event.Event, kind string, pid uint32) *event.Event {
	for _, ev := range evs {
		if ev.Kind == kind && ev.Process != nil && ev.Process.PID == pid {
			return ev
		}
	}
	return nil
}

// A look-alike exec'd inside a session stays a member of it, as do its
// children; a nested agent whose binary is a known release starts its own
// session; every event carries the session root's verification.
func TestLookalikeStaysInSessionAndRootIsVerified(t *testing.T) {
	r := verifyRig(t)
	tool, look, lookChild, nested := key(60, 600), key(70, 700), key(80, 800), key(90, 900)
	lookEv, lookSess := nestedExec(look, tool, 7000*ms, lookPath, "claude", "-p", "do it")
	nestedEv, nestedSess := nestedExec(nested, tool, 8000*ms, claudePath, "claude", "-p", "inner")
	got := r.run(
		claudeRoot(5000*ms),
		execEv(tool, key(50, 500), 6000*ms, sess, "/usr/bin/bash", "bash", "-c", "x"),
		lookEv,
		execEv(lookChild, look, 7100*ms, lookSess, "/usr/bin/true", "true"),
		openEv(lookChild, 7200*ms, lookSess, "/etc/passwd", 0),
		nestedEv,
		execEv(key(91, 910), nested, 8100*ms, nestedSess, "/usr/bin/true", "true"),
	)
	root := byPID(got, event.KindProcessExec, 50)
	if root == nil || root.Agent == nil || root.Agent.Role != event.RoleRoot {
		t.Fatalf("no root exec: %+v", root)
	}
	rootID := root.Process.ExecID
	a := root.Agent
	if a.Verified == nil || !*a.Verified || a.Verification != agent.VerifiedHashList || a.Release != "2.0.1" ||
		a.VerifiedAt == nil || !a.VerifiedAt.Equal(root.Time) {
		t.Errorf("root's label %+v, want verified by hash-list at its exec %v", a, root.Time)
	}
	for _, c := range []struct {
		name string
		ev   *event.Event
	}{
		{"look-alike exec", byPID(got, event.KindProcessExec, 70)},
		{"look-alike's child", byPID(got, event.KindProcessExec, 80)},
		{"look-alike's child's open", byPID(got, event.KindFileOpen, 80)},
	} {
		if c.ev == nil || c.ev.Agent == nil {
			t.Errorf("%s: no event or no agent: %+v", c.name, c.ev)
			continue
		}
		if c.ev.Agent.RootExecID != rootID || c.ev.Agent.Role == event.RoleRoot || c.ev.Agent.ParentRootExecID != "" {
			t.Errorf("%s: agent %+v, want a member of session %s", c.name, c.ev.Agent, rootID)
		}
		if c.ev.Agent.Verification != agent.VerifiedHashList {
			t.Errorf("%s: verification %q, want the session's hash-list", c.name, c.ev.Agent.Verification)
		}
	}
	if ev := byPID(got, event.KindProcessExec, 70); ev != nil && !ev.Process.AgentLookalike {
		t.Errorf("look-alike not flagged: %+v", ev.Process)
	}
	if ev := byPID(got, event.KindProcessExec, 80); ev != nil && len(ev.Ancestry) > 0 && !ev.Ancestry[0].AgentLookalike {
		t.Errorf("look-alike as ancestor not flagged: %+v", ev.Ancestry[0])
	}
	// The genuine nested agent keeps today's behaviour.
	n := byPID(got, event.KindProcessExec, 90)
	if n == nil || n.Agent == nil || n.Agent.RootExecID != n.Process.ExecID || n.Process.AgentLookalike {
		t.Errorf("verified nested agent: %+v, want the root of its own session", n)
	}
	if c := byPID(got, event.KindProcessExec, 91); c == nil || c.Agent == nil || c.Agent.RootExecID != n.Process.ExecID {
		t.Errorf("verified nested agent's child: %+v, want in the nested session", c)
	}
	if s := r.e.Stats().AgentLookalikes; s != 1 {
		t.Errorf("AgentLookalikes = %d, want 1", s)
	}
}

// Outside any session an unverified agent is still a session, labelled
// unverified once its binary is known.
func TestUnverifiedRootOutsideSession(t *testing.T) {
	r := verifyRig(t)
	out := sensor.SessionRef{Root: key(70, 700), Agent: sensor.AgentClaudeCode}
	ev := execEv(key(70, 700), key(20, 200), 5000*ms, out, lookPath, "claude", "-p", "do it")
	ev.Exec.Recognised = sensor.AgentClaudeCode
	got := r.run(ev, execEv(key(80, 800), key(70, 700), 6000*ms, out, "/usr/bin/true", "true"))
	root, child := byPID(got, event.KindProcessExec, 70), byPID(got, event.KindProcessExec, 80)
	if root == nil || child == nil {
		t.Fatalf("events %d: root %v child %v", len(got), root, child)
	}
	for _, e := range []*event.Event{root, child} {
		a := e.Agent
		if a == nil || a.RootExecID != root.Process.ExecID || a.Verified == nil || *a.Verified ||
			a.Verification != agent.Unverified || a.VerifiedAt == nil || !a.VerifiedAt.Equal(root.Time) {
			t.Errorf("pid %d: agent %+v, want session %s labelled unverified at %v", e.Process.PID, a, root.Process.ExecID, root.Time)
		}
	}
	if root.Process.AgentLookalike {
		t.Errorf("a root outside any session is no look-alike")
	}
}

// A nested agent running the very file of its session's root, whose hash
// is still being computed, is a nested session as before.
func TestNestedSameFileAsRootWhileHashing(t *testing.T) {
	r := verifyRig(t)
	release := make(chan struct{})
	r.bins.mu.Lock()
	r.bins.noCache = true
	r.bins.block = map[string]chan struct{}{claudePath: release}
	r.bins.mu.Unlock()
	tool, nested := key(60, 600), key(90, 900)
	nestedEv, _ := nestedExec(nested, tool, 8000*ms, claudePath, "claude", "-p", "inner")
	lookEv, _ := nestedExec(key(70, 700), tool, 9000*ms, lookPath, "claude", "-p", "x")
	go func() { time.Sleep(50 * time.Millisecond); close(release) }()
	got := r.run(claudeRoot(5000*ms), execEv(tool, key(50, 500), 6000*ms, sess, "/usr/bin/bash", "bash", "-c", "x"), nestedEv, lookEv)
	n := byPID(got, event.KindProcessExec, 90)
	if n == nil || n.Agent == nil || n.Agent.RootExecID != n.Process.ExecID || n.Process.AgentLookalike {
		t.Errorf("nested agent on the root's own file: %+v, want the root of its own session", n)
	}
	if l := byPID(got, event.KindProcessExec, 70); l == nil || !l.Process.AgentLookalike {
		t.Errorf("another file at an agent path: %+v, want a look-alike", l)
	}
}
