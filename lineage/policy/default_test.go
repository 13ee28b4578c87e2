package policy

import (
	"slices"
	"testing"

	"github.com/lineaged/lineaged/lineage/event"
)

// defaultRules is the shipped rule set.
func defaultRules(t testing.TB) *Rules {
	t.Helper()
	rs, err := LoadRules("../../deploy/rules")
	if err != nil {
		t.Fatal(err)
	}
	return rs
}

var (
	compliant    = &event.Posture{SampledAt: t0, Compliant: true}
	noncompliant = &event.Posture{SampledAt: t0, Compliant: false, Failed: []string{"disk_encryption"},
		Checks: map[string]event.Check{"disk_encryption": {OK: false, Detail: "no LUKS root"}}}
)

// session builds an event of kind in an agent session whose root runs in
// /home/dev/proj; the process runs bin in cwd.
func session(kind, bin, cwd string) *event.Event {
	root := event.Process{ExecID: "root", Exe: "/home/dev/.local/share/claude/versions/2.1.332", Cwd: "/home/dev/proj",
		Binary: &event.Binary{Path: "/home/dev/.local/share/claude/versions/2.1.332", Verdict: event.VerdictUnsigned}}
	return &event.Event{
		Kind: kind, Time: t0,
		Process: &event.Process{ExecID: "p-" + bin, ParentExecID: "sh", Exe: bin, Argv: []string{bin}, Cwd: cwd, UID: 1000,
			Binary: &event.Binary{Path: bin, Verdict: event.VerdictPackageVerified, Package: "coreutils"}},
		Ancestry: []event.Process{{ExecID: "sh", Exe: "/usr/bin/bash", Cwd: cwd}, root},
		Agent: &event.Agent{Name: "claude-code", SessionID: "s-1", RootExecID: "root", Role: event.RoleTool,
			ToolUse: &event.ToolUse{ID: "toolu_1", Name: "Bash"}},
		Identity: &event.Identity{User: "dev", UID: 1000},
		Posture:  compliant,
	}
}

func outside(ev *event.Event) *event.Event { ev.Agent = nil; ev.Ancestry = ev.Ancestry[:1]; return ev }

func open(path, mode string) *event.Event {
	ev := session(event.KindFileOpen, "/usr/bin/cat", "/home/dev/proj")
	ev.File = &event.File{Path: path, Mode: mode}
	return ev
}

func rename(from, to string) *event.Event {
	ev := session(event.KindFileRename, "/usr/bin/vim.basic", "/home/dev/proj")
	ev.File = &event.File{Path: from, NewPath: to}
	return ev
}

func unixConnect(path string) *event.Event {
	ev := session(event.KindNetConnect, "/usr/bin/python3.12", "/home/dev/proj")
	ev.Net = &event.Net{Protocol: "unix", Family: "unix", UnixPath: path, SocketType: "stream", DstSource: "socket"}
	return ev
}

func connect(ip string, port uint16) *event.Event {
	ev := session(event.KindNetConnect, "/usr/bin/ssh", "/home/dev/proj")
	ev.Net = &event.Net{Protocol: "tcp", Family: "inet", DstIP: ip, DstPort: port}
	return ev
}

func exec(bin, cwd, verdict string, argv ...string) *event.Event {
	ev := session(event.KindProcessExec, bin, cwd)
	ev.Process.Binary.Verdict = verdict
	ev.Process.Argv = append([]string{bin}, argv...)
	return ev
}

// toolCall is the agent.tool_call event of a hook call for tool name.
func toolCall(name string) *event.Event {
	ev := session(event.KindAgentToolCall, "/usr/bin/lineaged", "/home/dev/proj")
	ev.Agent.Role = event.RoleHook
	ev.Tool = &event.ToolCall{ID: "toolu_1", Name: name, Hook: HookPreToolUse, Decision: event.DecisionAllow}
	return ev
}

func with(ev *event.Event, f func(*event.Event)) *event.Event { f(ev); return ev }

// defaultCases are scripted events and the default rule each must fire
// ("" for a benign event that must fire none).
var defaultCases = []struct {
	name string
	ev   func() *event.Event
	rule string
}{
	// posture-noncompliant-in-session
	{"posture turns non-compliant during a session", func() *event.Event {
		return &event.Event{Kind: event.KindPostureChange, Time: t0, Posture: noncompliant}
	}, "posture-noncompliant-in-session"},
	{"a session starts on a non-compliant device", func() *event.Event {
		return with(exec("/home/dev/.local/share/claude/versions/2.1.332", "/home/dev/proj", event.VerdictUnsigned),
			func(ev *event.Event) {
				ev.Agent.Role, ev.Process.ExecID, ev.Posture = event.RoleRoot, "root", noncompliant
			})
	}, "posture-noncompliant-in-session"},
	{"posture turns compliant", func() *event.Event {
		return &event.Event{Kind: event.KindPostureChange, Time: t0, Posture: compliant}
	}, ""},
	{"a periodic non-compliant sample", func() *event.Event {
		return &event.Event{Kind: event.KindPostureSample, Time: t0, Posture: noncompliant}
	}, ""},
	{"a tool runs on a non-compliant device", func() *event.Event {
		return with(exec("/usr/bin/ls", "/home/dev/proj", event.VerdictPackageVerified), func(ev *event.Event) { ev.Posture = noncompliant })
	}, ""},

	// posture-noncompliant-deny-tool (hook_test.go checks the denial)
	{"a Bash tool call on a non-compliant device", func() *event.Event {
		return with(toolCall("Bash"), func(ev *event.Event) { ev.Posture = noncompliant })
	}, "posture-noncompliant-deny-tool"},
	{"an Edit tool call on a non-compliant device", func() *event.Event {
		return with(toolCall("Edit"), func(ev *event.Event) { ev.Posture = noncompliant })
	}, "posture-noncompliant-deny-tool"},
	{"a Bash tool call on a compliant device", func() *event.Event { return toolCall("Bash") }, ""},
	{"a Read tool call on a non-compliant device", func() *event.Event {
		return with(toolCall("Read"), func(ev *event.Event) { ev.Posture = noncompliant })
	}, ""},

	// agent-reads-credentials
	{"ssh private key", func() *event.Event { return open("/home/dev/.ssh/id_ed25519", "read") }, "agent-reads-credentials"},
	{"root's ssh key", func() *event.Event { return open("/root/.ssh/id_rsa", "read") }, "agent-reads-credentials"},
	{"aws credentials", func() *event.Event { return open("/home/dev/.aws/credentials", "read") }, "agent-reads-credentials"},
	{"gcloud", func() *event.Event {
		return open("/home/dev/.config/gcloud/legacy_credentials/dev@example.com/adc.json", "read")
	}, "agent-reads-credentials"},
	{"kube config", func() *event.Event { return open("/home/dev/.kube/config", "read") }, "agent-reads-credentials"},
	{"netrc", func() *event.Event { return open("/home/dev/.netrc", "read") }, "agent-reads-credentials"},
	{".env", func() *event.Event { return open("/home/dev/proj/.env", "read") }, "agent-reads-credentials"},
	{".env.production", func() *event.Event { return open("/srv/app/.env.production", "read") }, "agent-reads-credentials"},
	{"firefox logins", func() *event.Event {
		return open("/home/dev/.mozilla/firefox/abcd.default-release/logins.json", "read")
	}, "agent-reads-credentials"},
	{"chrome Login Data", func() *event.Event {
		return open("/home/dev/.config/google-chrome/Default/Login Data", "read")
	}, "agent-reads-credentials"},
	{"ssh public key", func() *event.Event { return open("/home/dev/.ssh/id_ed25519.pub", "read") }, ""},
	{".env.example", func() *event.Event { return open("/home/dev/proj/.env.example", "read") }, ""},
	{"ssh reads its key", func() *event.Event {
		return with(open("/home/dev/.ssh/id_ed25519", "read"), func(ev *event.Event) { ev.Process.Binary.Path = "/usr/bin/ssh" })
	}, ""},
	{"source file", func() *event.Event { return open("/home/dev/proj/main.go", "read") }, ""},
	{"ssh key outside any session", func() *event.Event { return outside(open("/home/dev/.ssh/id_ed25519", "read")) }, ""},
	{"known_hosts", func() *event.Event { return open("/home/dev/.ssh/known_hosts", "read") }, ""},

	// agent-runs-unverified-binary
	{"unsigned binary from /tmp", func() *event.Event {
		return exec("/tmp/x/payload", "/tmp/x", event.VerdictUnsigned)
	}, "agent-runs-unverified-binary"},
	{"modified package binary", func() *event.Event {
		return exec("/usr/bin/sudo", "/home/dev/proj", event.VerdictPackageModified)
	}, "agent-runs-unverified-binary"},
	{"unsigned binary in the project", func() *event.Event {
		return exec("/home/dev/proj/scripts/gen", "/home/dev/proj", event.VerdictUnsigned)
	}, ""},
	{"cargo build output elsewhere", func() *event.Event {
		return exec("/tmp/scratch/target/debug/scratch", "/tmp/scratch", event.VerdictUnsigned)
	}, ""},
	{"node_modules/.bin", func() *event.Event {
		return exec("/work/web/node_modules/.bin/esbuild", "/work/web", event.VerdictUnsigned)
	}, ""},
	{"go install output", func() *event.Event {
		return exec("/home/dev/go/bin/gopls", "/tmp", event.VerdictUnsigned)
	}, ""},
	{"package-verified binary", func() *event.Event {
		return exec("/usr/bin/git", "/home/dev/proj", event.VerdictPackageVerified)
	}, ""},
	{"the agent itself", func() *event.Event {
		return with(exec("/home/dev/.local/share/claude/versions/2.1.332", "/home/dev/proj", event.VerdictUnsigned),
			func(ev *event.Event) { ev.Agent.Role, ev.Process.ExecID = event.RoleRoot, "root" })
	}, ""},

	// agent-unverified
	{"unverified agent root", func() *event.Event {
		return with(exec("/tmp/x/claude/versions/9.9.9", "/tmp/x", event.VerdictUnsigned),
			func(ev *event.Event) {
				f := false
				ev.Agent.Role, ev.Process.ExecID = event.RoleRoot, "root"
				ev.Agent.Verified, ev.Agent.Verification, ev.Agent.VerifiedAt = &f, "unverified", &t0
			})
	}, "agent-unverified"},
	{"unverified agent root settled by its binary follow-up", func() *event.Event {
		return with(exec("/tmp/x/claude/versions/9.9.9", "/tmp/x", event.VerdictUnsigned),
			func(ev *event.Event) {
				f := false
				ev.Kind, ev.Agent.Role, ev.Process.ExecID = event.KindProcessBinary, event.RoleRoot, "root"
				ev.Agent.Verified, ev.Agent.Verification, ev.Agent.VerifiedAt = &f, "unverified", &t0
			})
	}, "agent-unverified"},
	{"look-alike agent inside a session", func() *event.Event {
		// Signed by an untrusted key: agent-runs-unverified-binary stays
		// silent, this rule fires on the look-alike alone.
		return with(exec("/tmp/x/claude/versions/9.9.9", "/tmp/x", event.VerdictSignedUntrusted),
			func(ev *event.Event) {
				ev.Process.AgentLookalike = true
				ev.Process.Binary.Path = "/tmp/x/claude/versions/9.9.9"
			})
	}, "agent-unverified"},
	{"verified agent root", func() *event.Event {
		return with(exec("/home/dev/.local/share/claude/versions/2.1.332", "/home/dev/proj", event.VerdictUnsigned),
			func(ev *event.Event) {
				v := true
				ev.Agent.Role, ev.Process.ExecID = event.RoleRoot, "root"
				ev.Agent.Verified, ev.Agent.Verification, ev.Agent.VerifiedAt = &v, "hash-list", &t0
			})
	}, ""},
	{"agent root still pending", func() *event.Event {
		return with(exec("/home/dev/.local/share/claude/versions/2.1.332", "/home/dev/proj", event.VerdictUnsigned),
			func(ev *event.Event) {
				f := false
				ev.Agent.Role, ev.Process.ExecID = event.RoleRoot, "root"
				ev.Agent.Verified, ev.Agent.Verification = &f, "pending"
			})
	}, ""},

	// agent-writes-persistence
	{"bashrc", func() *event.Event { return open("/home/dev/.bashrc", "write") }, "agent-writes-persistence"},
	// The sensor may report a successful open's result as the fd.
	{"bashrc, result the fd", func() *event.Event {
		return with(open("/home/dev/.bashrc", "write"), func(ev *event.Event) { ev.File.Result = 3 })
	}, "agent-writes-persistence"},
	{"zshrc read-write", func() *event.Event { return open("/home/dev/.zshrc", "read-write") }, "agent-writes-persistence"},
	{"cron.d", func() *event.Event { return open("/etc/cron.d/backdoor", "write") }, "agent-writes-persistence"},
	{"user crontab", func() *event.Event { return open("/var/spool/cron/crontabs/dev", "write") }, "agent-writes-persistence"},
	{"systemd user unit", func() *event.Event {
		return open("/home/dev/.config/systemd/user/agent.service", "write")
	}, "agent-writes-persistence"},
	{"authorized_keys", func() *event.Event { return open("/home/dev/.ssh/authorized_keys", "write") }, "agent-writes-persistence"},
	{"git hook", func() *event.Event { return open("/home/dev/proj/.git/hooks/pre-commit", "write") }, "agent-writes-persistence"},
	{"git hook by rename", func() *event.Event {
		return rename("/home/dev/proj/.git/hooks/pre-commit.tmp", "/home/dev/proj/.git/hooks/pre-commit")
	}, "agent-writes-persistence"},
	{"bashrc read", func() *event.Event { return open("/home/dev/.bashrc", "read") }, ""},
	{"git hook sample", func() *event.Event { return open("/home/dev/proj/.git/hooks/pre-commit.sample", "write") }, ""},
	{"git object", func() *event.Event { return open("/home/dev/proj/.git/objects/ab/cdef", "write") }, ""},
	{"failed write to cron", func() *event.Event {
		return with(open("/etc/cron.d/x", "write"), func(ev *event.Event) { ev.File.Result = -13 })
	}, ""},
	{"bashrc written outside any session", func() *event.Event { return outside(open("/home/dev/.bashrc", "write")) }, ""},

	// agent-hands-off-work
	{"ssh to localhost", func() *event.Event { return connect("127.0.0.1", 22) }, "agent-hands-off-work"},
	{"ssh to ::1", func() *event.Event { return connect("::1", 22) }, "agent-hands-off-work"},
	{"docker", func() *event.Event {
		return exec("/usr/bin/docker", "/home/dev/proj", event.VerdictPackageVerified, "run", "alpine")
	}, "agent-hands-off-work"},
	{"tmux", func() *event.Event {
		return exec("/usr/bin/tmux", "/home/dev/proj", event.VerdictPackageVerified, "new", "-d")
	}, "agent-hands-off-work"},
	{"screen", func() *event.Event {
		return exec("/usr/bin/screen", "/home/dev/proj", event.VerdictPackageVerified, "-dm")
	}, "agent-hands-off-work"},
	{"systemd-run", func() *event.Event {
		return exec("/usr/bin/systemd-run", "/home/dev/proj", event.VerdictPackageVerified, "--user", "sleep", "1")
	}, "agent-hands-off-work"},
	{"systemctl start", func() *event.Event {
		return exec("/usr/bin/systemctl", "/home/dev/proj", event.VerdictPackageVerified, "--user", "start", "x")
	}, "agent-hands-off-work"},
	{"docker socket", func() *event.Event { return unixConnect("/run/docker.sock") }, "agent-hands-off-work"},
	{"rootless docker socket", func() *event.Event { return unixConnect("/run/user/1000/docker.sock") }, "agent-hands-off-work"},
	{"containerd socket", func() *event.Event { return unixConnect("/run/containerd/containerd.sock") }, "agent-hands-off-work"},
	{"tmux server socket", func() *event.Event { return unixConnect("/tmp/tmux-1000/default") }, "agent-hands-off-work"},
	{"a project's own socket", func() *event.Event { return unixConnect("/home/dev/proj/run/app.sock") }, ""},
	{"ssh to a remote host", func() *event.Event { return connect("192.0.2.10", 22) }, ""},
	{"https to localhost", func() *event.Event { return connect("127.0.0.1", 443) }, ""},
	{"systemctl status", func() *event.Event {
		return exec("/usr/bin/systemctl", "/home/dev/proj", event.VerdictPackageVerified, "status")
	}, ""},
	{"docker outside any session", func() *event.Event {
		return outside(exec("/usr/bin/docker", "/home/dev/proj", event.VerdictPackageVerified, "ps"))
	}, ""},

	// tool-without-hook-decision
	{"tool process around the hook", func() *event.Event {
		return with(exec("/usr/bin/bash", "/home/dev/proj", event.VerdictPackageVerified, "-c", "id"), func(ev *event.Event) {
			ev.Agent.ToolUse = &event.ToolUse{ID: "toolu_9", Name: "Bash", Attribution: event.AttributionTranscript, NoHookDecision: true}
			ev.Process.ParentExecID = "root"
		})
	}, "tool-without-hook-decision"},
	{"a child of the tool process around the hook", func() *event.Event {
		return with(exec("/usr/bin/id", "/home/dev/proj", event.VerdictPackageVerified), func(ev *event.Event) {
			ev.Agent.ToolUse = &event.ToolUse{ID: "toolu_9", Name: "Bash", Attribution: event.AttributionTranscript, NoHookDecision: true}
		})
	}, ""},
	{"tool process the hook named", func() *event.Event {
		return with(exec("/usr/bin/bash", "/home/dev/proj", event.VerdictPackageVerified, "-c", "id"), func(ev *event.Event) {
			ev.Agent.ToolUse = &event.ToolUse{ID: "toolu_9", Name: "Bash", Attribution: event.AttributionExact}
		})
	}, ""},
	{"descendant without a tool call", func() *event.Event {
		return with(exec("/usr/bin/bash", "/home/dev/proj", event.VerdictPackageVerified, "-c", "id"), func(ev *event.Event) {
			ev.Agent.ToolUse, ev.Agent.Role = nil, event.RoleDescendant
		})
	}, ""},

	// managed-settings-tampered
	{"write managed settings", func() *event.Event {
		return open("/etc/claude-code/managed-settings.json", event.ModeWrite)
	}, "managed-settings-tampered"},
	{"rename over managed settings", func() *event.Event {
		return rename("/tmp/x.json", "/etc/claude-code/managed-settings.json")
	}, "managed-settings-tampered"},
	{"delete managed settings", func() *event.Event {
		return with(open("/etc/claude-code/managed-settings.json", event.ModeWrite), func(ev *event.Event) { ev.Kind = event.KindFileDelete })
	}, "managed-settings-tampered"},
	{"read managed settings", func() *event.Event {
		return open("/etc/claude-code/managed-settings.json", event.ModeRead)
	}, ""},
	{"write a project's settings", func() *event.Event {
		return open("/home/dev/proj/.claude/settings.json", event.ModeWrite)
	}, ""},
	// trust-anchor-written
	{"forged dpkg record", func() *event.Event {
		return &event.Event{Kind: event.KindSensorTamper, Process: &event.Process{PID: 42, Exe: "/usr/bin/bash"},
			Tamper: &event.Tamper{Action: "trust-anchor", Path: "/var/lib/dpkg/info/coreutils.md5sums", Anchor: "package-db"}}
	}, "trust-anchor-written"},
	{"a signal to the sensor", func() *event.Event {
		return &event.Event{Kind: event.KindSensorTamper, Tamper: &event.Tamper{Action: "signal", Signal: 15}}
	}, ""},
	// agent-sets-usermode-helper
	{"core_pattern pipe", func() *event.Event {
		return open("/proc/sys/kernel/core_pattern", event.ModeWrite)
	}, "agent-sets-usermode-helper"},
	{"binfmt_misc register", func() *event.Event {
		return open("/proc/sys/fs/binfmt_misc/register", event.ModeWrite)
	}, "agent-sets-usermode-helper"},
	{"read core_pattern", func() *event.Event {
		return open("/proc/sys/kernel/core_pattern", event.ModeRead)
	}, ""},

	// agent-grants-privilege
	{"chmod u+s", func() *event.Event { return chmod("/home/dev/proj/sh", 0o4755) }, "agent-grants-privilege"},
	{"chmod g+s", func() *event.Event { return chmod("/home/dev/proj/sh", 0o2755) }, "agent-grants-privilege"},
	{"chmod +x", func() *event.Event { return chmod("/home/dev/proj/run.sh", 0o755) }, ""},
	{"file capabilities", func() *event.Event {
		return modify(&event.File{Path: "/home/dev/proj/py", Op: event.FileOpSetxattr, Xattr: "security.capability"})
	}, "agent-grants-privilege"},
	{"user xattr", func() *event.Event {
		return modify(&event.File{Path: "/home/dev/proj/a", Op: event.FileOpSetxattr, Xattr: "user.origin"})
	}, ""},

	// agent-links-sensitive-file
	{"symlink to shadow", func() *event.Event {
		return modify(&event.File{Path: "/home/dev/proj/s", Op: event.FileOpSymlink, Target: "/etc/shadow"})
	}, "agent-links-sensitive-file"},
	{"hard link to a key", func() *event.Event {
		return modify(&event.File{Path: "/home/dev/.ssh/id_ed25519", NewPath: "/home/dev/proj/k", Op: event.FileOpLink})
	}, "agent-links-sensitive-file"},
	{"symlink into /etc", func() *event.Event {
		return modify(&event.File{Path: "/etc/profile.d/x.sh", Op: event.FileOpSymlink, Target: "/home/dev/proj/x.sh"})
	}, "agent-links-sensitive-file"},
	{"symlink in a project", func() *event.Event {
		return modify(&event.File{Path: "/home/dev/proj/node_modules/.bin/tsc", Op: event.FileOpSymlink, Target: "../typescript/bin/tsc"})
	}, ""},
	{"failed symlink to shadow", func() *event.Event {
		return modify(&event.File{Path: "/home/dev/proj/s", Op: event.FileOpSymlink, Target: "/etc/shadow", Result: -13})
	}, ""},

	// agent-sets-up-io-uring
	{"member sets up an io_uring", func() *event.Event {
		ev := session(event.KindIOURingSetup, "/home/dev/proj/tool", "/home/dev/proj")
		ev.IOURing = &event.IOURing{Result: 5, Entries: 8}
		return ev
	}, "agent-sets-up-io-uring"},
	{"failed io_uring setup", func() *event.Event {
		ev := session(event.KindIOURingSetup, "/home/dev/proj/tool", "/home/dev/proj")
		ev.IOURing = &event.IOURing{Result: -1, Entries: 8}
		return ev
	}, ""},
	{"io_uring outside a session", func() *event.Event {
		return &event.Event{Kind: event.KindIOURingSetup, IOURing: &event.IOURing{Result: 5, Entries: 8}}
	}, ""},
}

func chmod(path string, perm uint32) *event.Event {
	ev := session(event.KindFileChmod, "/usr/bin/chmod", "/home/dev/proj")
	ev.File = &event.File{Path: path, Perm: &perm}
	return ev
}

func modify(f *event.File) *event.Event {
	ev := session(event.KindFileModify, "/usr/bin/ln", "/home/dev/proj")
	ev.File = f
	return ev
}

// Each default rule fires on its scripted events and no rule fires on the
// benign ones.
func TestDefaultRules(t *testing.T) {
	rs := defaultRules(t)
	covered := map[string]bool{}
	for _, c := range defaultCases {
		t.Run(c.name, func(t *testing.T) {
			st, err := New(Config{Rules: rs})
			if err != nil {
				t.Fatal(err)
			}
			st.Process(session(event.KindProcessExec, "/usr/bin/bash", "/home/dev/proj")) // a live session
			var fired []string
			for _, o := range st.Process(c.ev()) {
				if o.Kind == event.KindPolicyAlert {
					fired = append(fired, o.Alert.Rule)
				}
			}
			if st.RuleStats().EvalErrors != 0 {
				t.Errorf("%d evaluation errors", st.RuleStats().EvalErrors)
			}
			want := []string{}
			if c.rule != "" {
				want = []string{c.rule}
				covered[c.rule] = true
			}
			if !slices.Equal(append([]string{}, fired...), want) {
				t.Errorf("fired %v, want %v", fired, want)
			}
		})
	}
	for _, r := range rs.List() {
		if !covered[r.ID] {
			t.Errorf("default rule %s has no scripted event", r.ID)
		}
	}
}

// One posture transition during a session is one alert: the periodic
// samples that follow do not repeat it, and without a live session there
// is none.
func TestPostureTransitionAlertsOnce(t *testing.T) {
	st, err := New(Config{Rules: defaultRules(t)})
	if err != nil {
		t.Fatal(err)
	}
	count := func(evs ...*event.Event) int {
		n := 0
		for _, ev := range evs {
			for _, o := range st.Process(ev) {
				if o.Kind == event.KindPolicyAlert {
					n++
				}
			}
		}
		return n
	}
	change := &event.Event{Kind: event.KindPostureChange, Time: t0, Posture: noncompliant}
	if n := count(change); n != 0 {
		t.Fatalf("no session running: %d alerts", n)
	}
	start := exec("/usr/bin/bash", "/home/dev/proj", event.VerdictPackageVerified)
	sample := &event.Event{Kind: event.KindPostureSample, Time: t0, Posture: noncompliant}
	if n := count(start, &event.Event{Kind: event.KindPostureChange, Time: t0, Posture: noncompliant}, sample, sample); n != 1 {
		t.Fatalf("one transition during a session: %d alerts", n)
	}
}
