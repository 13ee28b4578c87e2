package lineage

import (
	"testing"

	"github.com/lineaged/lineaged/lineage/event"
	"github.com/lineaged/lineaged/sensor"
	"github.com/lineaged/lineaged/sensor/procfs"
)

// A usermode helper the kernel put into a session (its exec flagged
// ExecViaUsermodeHelper, its parent a kworker) is reported in that session
// with agent.via usermode-helper, and so is its child and the child's
// file events; a member of the same session that is no helper is not.
func TestUsermodeHelperVia(t *testing.T) {
	r := newRig(t, Config{}, nil)
	seedBase(r)
	kw := &procfs.Proc{PID: 40, PPID: 2, Key: key(40, 3), Kthread: true, Comm: "kworker/u8:1"}
	r.e.Seed([]*procfs.Proc{kw})
	helper := execEv(key(41, 4000), key(40, 3), 1100*ms, sess, "/tmp/x/handler", "/tmp/x/handler", "1234")
	helper.Exec.Flags |= sensor.ExecViaUsermodeHelper
	child := execEv(key(42, 4001), key(41, 4000), 1200*ms, sess, "/usr/bin/touch", "touch", "/tmp/x/out")
	child.Exec.Flags |= sensor.ExecViaUsermodeHelper
	open := sensor.Event{Header: sensor.Header{Kind: sensor.KindOpen, KtimeNs: 1300 * ms, Proc: key(42, 4001), TID: 42, Session: sess},
		File: &sensor.File{Op: sensor.FileOpen, Path: "/tmp/x/out", Flags: 0o1101}}
	plain := execEv(key(43, 4002), key(50, 500), 1400*ms, sess, "/bin/true", "true")
	got := r.run(claudeRoot(1000*ms), helper, child, open, plain)
	via := map[string]string{}
	for _, ev := range got {
		if ev.Agent == nil {
			t.Fatalf("%s of pid %d has no agent", ev.Kind, ev.Process.PID)
		}
		name := string(ev.Kind)
		if ev.Process != nil {
			name += " " + ev.Process.Exe
		}
		via[name] = ev.Agent.Via
	}
	want := map[string]string{
		"process.exec /tmp/x/handler": event.ViaUsermodeHelper,
		"process.exec /usr/bin/touch": event.ViaUsermodeHelper,
		"file.open /usr/bin/touch":    event.ViaUsermodeHelper,
		"process.exec /bin/true":      "",
	}
	for k, v := range want {
		if got, ok := via[k]; !ok || got != v {
			t.Errorf("%s: via %q (seen %v), want %q", k, got, ok, v)
		}
	}
}
