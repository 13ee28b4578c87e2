package testevents

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"time"

	"github.com/lineaged/lineaged/lineage/event"
)

// InSessionExec returns a realistic process.exec of /usr/bin/true run by
// a Bash tool call of a Claude Code session, as the exec storm of issue 11
// sees it: twelve ancestors up to pid 1, among them the tool's 4 KB
// shell-snapshot `bash -c` and a 1.5 KB memfd helper, every binary hashed
// with a verdict, and a posture sample of fifteen checks with details.
func InSessionExec(seq uint64) *event.Event {
	t := base.Add(time.Duration(seq) * time.Millisecond)
	bootID := Host().BootID
	snapshot := "source /home/dev/.claude/shell-snapshots/snapshot-bash-1764792000000-4k2j9x.sh && " +
		"{ shopt -u extglob || setopt NO_EXTENDED_GLOB; } 2>/dev/null || true && eval '" +
		strings.Repeat("for i in $(seq 1 3000); do /usr/bin/true; done; ", 78) +
		"' < /dev/null && pwd -P >| /tmp/claude-5b1e-cwd"
	helper := "import os,sys,json;" + strings.Repeat("os.write(1,json.dumps({'k':sys.argv}).encode());", 30)
	type anc struct {
		pid     uint32
		exe     string
		argv    []string
		uid     uint32
		verdict string
		pkg     string
		signer  string
	}
	chain := []anc{
		{5310, "/usr/bin/bash", []string{"bash", "/tmp/storm.sh", "3000"}, 1000, event.VerdictPackageVerified, "bash 5.2.37-2", ""},
		{5302, "/usr/bin/bash", []string{"/bin/bash", "-c", "-l", snapshot}, 1000, event.VerdictPackageVerified, "bash 5.2.37-2", ""},
		{4100, "/home/dev/.local/share/claude/versions/2.0.31", []string{"claude", "--model", "sonnet", "--permission-mode", "acceptEdits"}, 1000, event.VerdictSignedTrusted, "", "Anthropic, PBC"},
		{4090, "/memfd:helper (deleted)", []string{"/proc/self/fd/3", "-c", helper}, 1000, event.VerdictUnsigned, "", ""},
		{4080, "/usr/bin/python3.13", []string{"python3", "-m", "pytest", "-x", "tests/e2e/test_storm.py"}, 1000, event.VerdictPackageVerified, "python3.13-minimal 3.13.5-2", ""},
		{4070, "/usr/bin/make", []string{"make", "bench"}, 1000, event.VerdictPackageVerified, "make 4.4.1-2", ""},
		{4060, "/usr/bin/bash", []string{"-bash"}, 1000, event.VerdictPackageVerified, "bash 5.2.37-2", ""},
		{4050, "/usr/bin/tmux", []string{"tmux", "new-session", "-A", "-s", "work"}, 1000, event.VerdictPackageVerified, "tmux 3.5a-3", ""},
		{4040, "/usr/lib/systemd/systemd", []string{"/usr/lib/systemd/systemd", "--user"}, 1000, event.VerdictPackageVerified, "systemd 257.9-1", ""},
		{4030, "/usr/sbin/sshd", []string{"sshd-session: dev [priv]"}, 0, event.VerdictPackageVerified, "openssh-server 1:10.0p1-7", ""},
		{812, "/usr/sbin/sshd", []string{"sshd: /usr/sbin/sshd -D [listener] 0 of 10-100 startups"}, 0, event.VerdictPackageVerified, "openssh-server 1:10.0p1-7", ""},
		{1, "/usr/lib/systemd/systemd", []string{"/sbin/init"}, 0, event.VerdictPackageVerified, "systemd 257.9-1", ""},
	}
	proc := func(pid, ppid uint32, exe string, argv []string, uid uint32, verdict, pkg, signer string) event.Process {
		sum := sha256.Sum256([]byte(exe))
		user := "dev"
		if uid == 0 {
			user = "root"
		}
		p := event.Process{
			ExecID:       event.ExecID(bootID, pid, uint64(pid)*1e7, uint64(pid)*1e7),
			ParentExecID: event.ExecID(bootID, ppid, uint64(ppid)*1e7, uint64(ppid)*1e7),
			PID:          pid, PPID: ppid,
			StartTime: base.Add(-time.Duration(pid) * time.Millisecond),
			Exe:       exe, Argv: argv,
			Cwd: "/home/dev/project", UID: uid, EUID: uid, GID: uid, User: user,
			Cgroup: "/user.slice/user-1000.slice/session-4.scope",
			Binary: &event.Binary{
				Path: exe, SHA256: hex.EncodeToString(sum[:]), Size: 1265648 + int64(pid), Inode: uint64(pid) * 31,
				Dev: 2049, Mtime: base.Add(-48 * time.Hour), Verdict: verdict, Package: pkg, Signer: signer,
			},
		}
		if uid != 0 {
			p.LoginUID, p.LoginUser, p.TTY = u32(1000), "dev", "pts/3"
		}
		if signer != "" {
			p.Binary.KeyID = "5be4c3c1b0a8e9d2"
		}
		if verdict == event.VerdictUnsigned {
			p.Binary.Reason = "memfd executable: no package owns it and no signature covers it"
		}
		return p
	}
	ancestry := make([]event.Process, len(chain))
	for i, a := range chain {
		ppid := uint32(0)
		if i+1 < len(chain) {
			ppid = chain[i+1].pid
		}
		ancestry[i] = proc(a.pid, ppid, a.exe, a.argv, a.uid, a.verdict, a.pkg, a.signer)
	}
	p := proc(5311, chain[0].pid, "/usr/bin/true", []string{"/usr/bin/true"}, 1000, event.VerdictPackageVerified, "coreutils 9.7-3", "")
	checks := map[string]event.Check{}
	for i, name := range []string{"disk_encryption", "secure_boot", "kernel_lockdown", "aslr", "ptrace_scope",
		"unprivileged_bpf_disabled", "kptr_restrict", "ssh_password_auth_disabled", "auto_updates", "firewall",
		"endpoint_protection", "mac_enforcing", "os_updates_fresh", "sensor_attached", "no_agent_listener"} {
		checks[name] = event.Check{OK: i != 0, Detail: fmt.Sprintf("%s: state read from the host's own configuration (check %d)", name, i)}
	}
	return &event.Event{
		Schema:   event.Schema,
		EventID:  event.NewEventID(t, "test-instance", seq),
		Seq:      seq,
		Time:     t,
		Kind:     event.KindProcessExec,
		Host:     Host(),
		Process:  &p,
		Ancestry: ancestry,
		Agent: &event.Agent{
			Name: "claude-code", Version: "2.0.31", SessionID: "5f0c7c1e-3b7a-4a51-9d7e-2c1e0b9a8f77",
			RootExecID: ancestry[2].ExecID, Role: event.RoleTool,
			ToolUse: &event.ToolUse{ID: "toolu_01HxY8d2kQ7wE3rT5uV9mN4p", Name: "Bash"},
		},
		Identity: &event.Identity{
			User: "dev", UID: 1000, LoginUser: "dev", LoginUID: u32(1000),
			Human:      &event.Human{Name: "Dana Developer", Email: "dana@example.com"},
			VerifiedBy: "login-map",
		},
		Posture: &event.Posture{
			SampledAt: base.Add(-30 * time.Second),
			Compliant: false,
			Failed:    []string{"disk_encryption"},
			Checks:    checks,
		},
	}
}
