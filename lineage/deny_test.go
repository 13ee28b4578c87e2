package lineage

import (
	"strings"
	"testing"

	"github.com/lineaged/lineaged/lineage/event"
	"github.com/lineaged/lineaged/sensor"
)

func TestDenyBecomesPolicyAction(t *testing.T) {
	r := newRig(t, Config{}, nil)
	seedBase(r)
	c := key(50, 500)
	got := r.run(
		claudeRoot(1000*ms),
		sensor.Event{Header: sensor.Header{Kind: sensor.KindDeny, KtimeNs: 1001 * ms, Proc: c, Session: sess},
			Deny: &sensor.Deny{Path: "/usr/bin/curl", Rule: "/usr/bin/", Action: sensor.DenyBlocked}},
		sensor.Event{Header: sensor.Header{Kind: sensor.KindDeny, KtimeNs: 1002 * ms, Proc: c, Session: sess},
			Deny: &sensor.Deny{Path: "/opt/x", RuleIndex: 3, Action: sensor.DenyKilled}},
	)
	if len(got) != 3 {
		t.Fatalf("%d events", len(got))
	}
	for i, want := range []struct{ action, in string }{{"blocked", `entry "/usr/bin/"`}, {"killed", `entry "#3"`}} {
		ev := got[i+1]
		a := ev.Alert
		if ev.Kind != event.KindPolicyAction || a == nil || a.Rule != "deny_exec" || a.Severity != "high" ||
			a.Action != want.action || !strings.Contains(a.Message, want.in) {
			t.Fatalf("event %d: %s %+v", i+1, ev.Kind, a)
		}
		if ev.Process == nil || ev.Process.PID != 50 || ev.Agent == nil {
			t.Errorf("event %d: process %+v agent %+v, want the session root's", i+1, ev.Process, ev.Agent)
		}
	}
}
