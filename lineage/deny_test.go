package lineage

import (
	"testing"

	"github.com/lineaged/lineaged/lineage/event"
	"github.com/lineaged/lineaged/sensor"
)

// A kernel deny record leaves lineage enriched, with the record for the
// policy stage (which builds the alert and action from it).
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
	for i, want := range []event.Deny{
		{Path: "/usr/bin/curl", Rule: "/usr/bin/", Action: "blocked"},
		{Path: "/opt/x", RuleIndex: 3, Action: "killed"},
	} {
		ev := got[i+1]
		if ev.Kind != event.KindPolicyAction || ev.Deny == nil || *ev.Deny != want {
			t.Fatalf("event %d: %s %+v, want the deny record %+v for the policy stage", i+1, ev.Kind, ev.Deny, want)
		}
		if ev.Process == nil || ev.Process.PID != 50 || ev.Agent == nil {
			t.Errorf("event %d: process %+v agent %+v, want the session root's", i+1, ev.Process, ev.Agent)
		}
	}
}
