package policy

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lineaged/lineaged/lineage/event"
	"github.com/lineaged/lineaged/sensor"
)

func TestValidateDenyExec(t *testing.T) {
	good := []string{"/usr/bin/curl", "/opt/tools/", "/a b/\xffname", "/" + strings.Repeat("x", 254), "memfd"}
	if err := ValidateDenyExec(good); err != nil {
		t.Fatalf("valid entries: %v", err)
	}
	for _, c := range []struct {
		entry, want string
	}{
		{"", "empty"},
		{"usr/bin/curl", "not an absolute path"},
		{"Memfd", `not an absolute path, a sha256: entry or "memfd"`},
		{"/", "every executable"},
		{"/usr//bin/curl", `not a clean path (want "/usr/bin/curl")`},
		{"/usr/bin/../bin/curl", "not a clean path"},
		{"/opt/tools/./", `not a clean path (want "/opt/tools/")`},
		{"/a\x00b", "NUL"},
		{"/" + strings.Repeat("x", 255), "256 bytes, at most 255"},
	} {
		err := ValidateDenyExec([]string{"/ok", c.entry})
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "entry 1") {
			t.Errorf("%q: %v, want an error naming entry 1 and %q", c.entry, err, c.want)
		}
	}
	if err := ValidateDenyExec([]string{"/x", "/x"}); err == nil || !strings.Contains(err.Error(), "twice") {
		t.Errorf("duplicate: %v", err)
	}
	if err := ValidateDenyExec([]string{"memfd", "/x", "memfd"}); err == nil || !strings.Contains(err.Error(), "entry 2") {
		t.Errorf("memfd twice: %v", err)
	}
	if k := DenyKeys([]string{"/x", "memfd"}, func(p string) (string, error) { return p, nil }); k[sensor.DenyKeyPseudo] != 1 || len(k) != 2 {
		t.Errorf("memfd entry's kernel keys: %v", k)
	}
	many := make([]string, DenyExecMax+1)
	for i := range many {
		many[i] = "/bin/x" + strings.Repeat("y", i%200) + string(rune('a'+i%26))
	}
	if err := ValidateDenyExec(many); err == nil {
		t.Error("more than DenyExecMax entries accepted")
	}
	if _, err := New(Config{DenyExec: []string{"relative"}}); err == nil || !strings.Contains(err.Error(), `policy.deny_exec: deny_exec entry 0 "relative"`) {
		t.Errorf("stage with a bad entry: %v", err)
	}
}

func TestDenyKeysAddResolvedForms(t *testing.T) {
	links := map[string]string{"/bin/curl": "/usr/bin/curl", "/bin": "/usr/bin", "/opt/link": "/srv/real"}
	resolve := func(p string) (string, error) {
		if r, ok := links[p]; ok {
			return r, nil
		}
		if p == "/gone" {
			return "", os.ErrNotExist
		}
		return p, nil
	}
	got := DenyKeys([]string{"/bin/curl", "/bin/", "/opt/link/", "/gone", "/usr/bin/curl"}, resolve)
	want := map[string]uint32{
		"/bin/curl": 0, "/usr/bin/curl": 0, // the first entry owns the resolved form
		"/bin/": 1, "/usr/bin/": 1,
		"/opt/link/": 2, "/srv/real/": 2,
		"/gone": 3,
	}
	if len(got) != len(want) {
		t.Errorf("keys %v, want %v", got, want)
	}
	for k, v := range want {
		if g, ok := got[k]; !ok || g != v {
			t.Errorf("key %q: %d %v, want %d", k, g, ok, v)
		}
	}
}

// A kernel deny record becomes the policy.alert of the matching rule and
// the policy.action the kernel took (as reported before the stage existed),
// the alert naming the action as its trigger.
func TestDenyBecomesAlertAndAction(t *testing.T) {
	s, err := New(Config{DenyExec: []string{"/usr/bin/", "/opt/x"}})
	if err != nil {
		t.Fatal(err)
	}
	seq := NewSequencer("t")
	for _, c := range []struct {
		deny  event.Deny
		entry string
	}{
		{event.Deny{Path: "/usr/bin/curl", RuleIndex: 0, Action: "blocked"}, `entry "/usr/bin/"`},
		{event.Deny{Path: "/opt/x", RuleIndex: 1, Action: "killed"}, `entry "/opt/x"`},
		{event.Deny{Path: "/opt/y", RuleIndex: 7, Action: "kill-failed"}, `entry "#7"`},
		{event.Deny{Path: "/opt/z", RuleIndex: 9, Rule: "/opt/z", Action: "killed"}, `entry "/opt/z"`},
	} {
		d := c.deny
		proc := &event.Process{PID: 50, ExecID: "e50", Argv: []string{"curl", "--token", "hunter22"}}
		in := &event.Event{Schema: event.Schema, Kind: event.KindPolicyAction, Process: proc,
			Agent: &event.Agent{Name: "claude-code", RootExecID: "r"}, Deny: &d}
		out := s.Process(in)
		if len(out) != 2 {
			t.Fatalf("%s: %d events, want the alert and the action", d.Path, len(out))
		}
		seq.StampAll(out)
		al, act := out[0], out[1]
		if al.Kind != event.KindPolicyAlert || al.Alert.Rule != RuleDenyExec || al.Alert.Severity != "high" ||
			!strings.Contains(al.Alert.Message, c.entry) || al.Alert.Action != "" ||
			al.Alert.TriggerEventID != act.EventID || act.EventID == "" || al.Alert.Trigger != nil {
			t.Errorf("%s: alert %+v, trigger %q", d.Path, al.Alert, act.EventID)
		}
		if act.Kind != event.KindPolicyAction || act.Alert.Rule != RuleDenyExec || act.Alert.Severity != "high" ||
			act.Alert.Action != d.Action || !strings.Contains(act.Alert.Message, c.entry) ||
			!strings.Contains(act.Alert.Message, denyWhat[d.Action]) || act.Alert.TriggerEventID != "" {
			t.Errorf("%s: action %+v", d.Path, act.Alert)
		}
		for _, ev := range out {
			if ev.Deny != nil || ev.Process == nil || ev.Process.PID != 50 || ev.Agent == nil {
				t.Errorf("%s %s: deny %+v process %+v agent %+v", d.Path, ev.Kind, ev.Deny, ev.Process, ev.Agent)
			}
			if ev.Process.Argv[2] == "hunter22" {
				t.Errorf("%s %s: argv not redacted: %q", d.Path, ev.Kind, ev.Process.Argv)
			}
		}
	}
	// Anything else passes through, redacted.
	ev := &event.Event{Kind: event.KindProcessExec, Process: &event.Process{ExecID: "x", Argv: []string{"a", "--password=hunter22"}}}
	if out := s.Process(ev); len(out) != 1 || out[0] != ev || strings.Contains(ev.Process.Argv[1], "hunter22") {
		t.Errorf("pass-through: %v %q", out, ev.Process.Argv)
	}
}

// TestDenyInodes: exact entries whose file exists give its identity with
// the entry's index (the first entry wins for one file); directories,
// missing files and sha256 entries give none.
func TestDenyInodes(t *testing.T) {
	files := map[string]DenyFile{"/usr/bin/curl": {1, 10}, "/bin/curl": {1, 10}, "/usr/bin/wget": {1, 11}}
	stat := func(p string) (DenyFile, error) {
		if f, ok := files[p]; ok {
			return f, nil
		}
		return DenyFile{}, os.ErrNotExist
	}
	got := DenyInodes([]string{"/opt/tools/", "/usr/bin/curl", "/bin/curl", "/nope", "/usr/bin/wget"}, stat)
	want := map[DenyFile]uint32{{1, 10}: 1, {1, 11}: 4}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("got %v, want %v", got, want)
		}
	}
}

func TestStatFile(t *testing.T) {
	f, err := StatFile("/proc/self/exe")
	if err != nil || f.Inode == 0 {
		t.Fatalf("StatFile: %+v %v", f, err)
	}
	if _, err := StatFile(t.TempDir()); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("directory: %v", err)
	}
}

// TestDenyExecSHA256Entries: sha256 entries validate (either case), name
// themselves in errors when malformed, and are not path keys.
func TestDenyExecSHA256Entries(t *testing.T) {
	h := strings.Repeat("ab", 32)
	if err := ValidateDenyExec([]string{"/usr/bin/curl", "sha256:" + h, "sha256:" + strings.ToUpper(h[:2]) + h[2:63] + "c"}); err != nil {
		t.Fatalf("valid: %v", err)
	}
	for _, c := range []struct{ entry, want string }{
		{"sha256:" + h[:63], "not a SHA-256"},
		{"sha256:" + h[:62] + "zz", "not a SHA-256"},
		{"sha256:", "not a SHA-256"},
		{"sha256:" + strings.ToUpper(h), "listed twice"},
	} {
		err := ValidateDenyExec([]string{"sha256:" + h, c.entry})
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), fmt.Sprintf("%q", c.entry)) {
			t.Errorf("%q: %v, want %q naming the entry", c.entry, err, c.want)
		}
	}
	keys := DenyKeys([]string{"sha256:" + h, "/usr/bin/curl"}, func(p string) (string, error) { return p, nil })
	if len(keys) != 1 || keys["/usr/bin/curl"] != 1 {
		t.Errorf("keys %v", keys)
	}
}

// TestDenyByHash: an agent-session exec of a binary a sha256 entry denies
// is alerted on, killed, and its file added to the kernel's deny map once;
// the same binary outside a session, or another binary, is left alone.
func TestDenyByHash(t *testing.T) {
	h := strings.Repeat("0f", 32)
	f := &fakeActuator{}
	c := &collector{}
	k, err := NewKiller(KillConfig{Actuator: f, Boot: boot, Emit: c.emit})
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close()
	type add struct {
		f   DenyFile
		idx uint32
	}
	var adds []add
	var addErr error
	st, err := New(Config{DenyExec: []string{"/opt/x", "sha256:" + strings.ToUpper(h)}, Kill: k,
		DenyFile: func(f DenyFile, idx uint32) error { adds = append(adds, add{f, idx}); return addErr }})
	if err != nil {
		t.Fatal(err)
	}
	exec := func(inSession bool, sum string, ino uint64) *event.Event {
		ev := sessionExec("/tmp/copy")
		if !inSession {
			ev.Agent = nil
		}
		ev.Process.Binary = &event.Binary{Path: "/tmp/copy", SHA256: sum, Dev: 2049, Inode: ino}
		return ev
	}
	if out := st.Process(exec(false, h, 7)); len(out) != 1 {
		t.Errorf("outside a session: %d events", len(out))
	}
	if out := st.Process(exec(true, strings.Repeat("11", 32), 7)); len(out) != 1 {
		t.Errorf("other binary: %d events", len(out))
	}
	trig := exec(true, h, 7)
	out := st.Process(trig)
	if len(out) != 3 || out[0] != trig {
		t.Fatalf("%d events, want the exec, its alert and the deny-exec action", len(out))
	}
	al, act := out[1], out[2]
	if al.Kind != event.KindPolicyAlert || al.Alert.Rule != RuleDenyExec || !strings.Contains(al.Alert.Message, "sha256:") {
		t.Errorf("alert %+v", al.Alert)
	}
	if act.Kind != event.KindPolicyAction || act.Alert.Action != ActionDenyExec || act.Alert.Result != ResultDone ||
		!strings.Contains(act.Alert.Message, "inode 7") {
		t.Errorf("action %+v", act.Alert)
	}
	if len(adds) != 1 || adds[0] != (add{DenyFile{2049, 7}, 1}) {
		t.Errorf("kernel adds %+v", adds)
	}
	// The same file again (a kill that lost the race, the tracepoint
	// path): alert and kill, no second add.
	if out := st.Process(exec(true, h, 7)); len(out) != 2 || len(adds) != 1 {
		t.Errorf("again: %d events, %d adds", len(out), len(adds))
	}
	// A failed add is reported and retried next time.
	addErr = errors.New("map full")
	if out := st.Process(exec(true, h, 8)); len(out) != 3 || out[2].Alert.Result != ResultFailed || !strings.Contains(out[2].Alert.Message, "map full") {
		t.Errorf("failed add: %+v", out[len(out)-1].Alert)
	}
	k.Close()
	if len(f.procs) != 3 {
		t.Errorf("%d kills, want 3", len(f.procs))
	}
	for _, ev := range c.all() {
		if ev.Alert.Action != ActionKillProcess || ev.Alert.Rule != RuleDenyExec || ev.Alert.Result != ResultDone {
			t.Errorf("kill action %+v", ev.Alert)
		}
	}
}

// TestDenyLoadedMatchesAsTheKernelDoes: the program a dynamic loader runs
// is matched against deny_exec as the kernel matches execs: an entry
// written through a symlink (/bin/tool on a merged /usr) names the
// resolved path binid reports, a directory entry names what is below it,
// a SHA-256 entry the content. Outside a session, and for other programs,
// nothing.
func TestDenyLoadedMatchesAsTheKernelDoes(t *testing.T) {
	root := t.TempDir()
	real := filepath.Join(root, "usr", "bin")
	if err := os.MkdirAll(real, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join("usr", "bin"), filepath.Join(root, "bin")); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"tool", "other"} {
		if err := os.WriteFile(filepath.Join(real, n), nil, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	h := strings.Repeat("ab", 32)
	boot := time.Unix(1_700_000_000, 0)
	act := &fakeActuator{}
	k, err := NewKiller(KillConfig{Actuator: act, Boot: boot, Emit: func(*event.Event) {}})
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close()
	st, err := New(Config{DenyExec: []string{filepath.Join(root, "bin", "tool"), filepath.Join(root, "opt") + "/", "sha256:" + h}, Kill: k})
	if err != nil {
		t.Fatal(err)
	}
	loader := func(inSession bool, path, sum string) *event.Event {
		ev := sessionExec("/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2")
		if !inSession {
			ev.Agent = nil
		}
		ev.Process.Loaded = &event.Binary{Path: path, SHA256: sum, Verdict: event.VerdictUnsigned}
		return ev
	}
	kills := 0
	for _, tc := range []struct {
		name   string
		ev     *event.Event
		entry  int
		denied bool
	}{
		{"resolved path of a symlinked entry", loader(true, filepath.Join(real, "tool"), ""), 0, true},
		{"under a directory entry", loader(true, filepath.Join(root, "opt", "x", "y"), ""), 1, true},
		{"by content", loader(true, "/elsewhere/copy", h), 2, true},
		{"another program", loader(true, filepath.Join(real, "other"), ""), 0, false},
		{"outside a session", loader(false, filepath.Join(real, "tool"), ""), 0, false},
	} {
		out := st.Process(tc.ev)
		if !tc.denied {
			if len(out) != 1 {
				t.Errorf("%s: %d events, want the exec alone", tc.name, len(out))
			}
			continue
		}
		// The kill is queued; its policy.action comes back later.
		if len(out) != 2 || out[1].Kind != event.KindPolicyAlert || out[1].Alert.Rule != RuleDenyExec {
			t.Errorf("%s: %d events, want the exec and the deny_exec alert", tc.name, len(out))
			continue
		}
		kills++
		if want := st.denyExec[tc.entry]; !strings.Contains(out[1].Alert.Message, want) {
			t.Errorf("%s: alert %q does not name entry %q", tc.name, out[1].Alert.Message, want)
		}
	}
	k.Close() // waits for the queued kills
	act.mu.Lock()
	defer act.mu.Unlock()
	if len(act.procs) != kills {
		t.Errorf("%d processes killed, want %d", len(act.procs), kills)
	}
}
