package posture

import (
	"bufio"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestEndpointProtection(t *testing.T) {
	names := DefaultEndpointProtection()
	kthread := map[string]string{"/proc/2/comm": "kthreadd\n"} // no exe link
	with := func(m map[string]string) map[string]string {
		for k, v := range kthread {
			m[k] = v
		}
		return m
	}
	runCases(t, EndpointProtection{Names: names}, []checkCase{
		{"osqueryd by exe", with(map[string]string{"/proc/1/exe": "->/usr/lib/systemd/systemd", "/proc/812/exe": "->/opt/osquery/bin/osqueryd", "/proc/812/comm": "osqueryd\n"}), true, "running: /opt/osquery/bin/osqueryd (pid 812)"},
		{"renamed sleep is not osqueryd", with(map[string]string{"/proc/1/exe": "->/usr/lib/systemd/systemd", "/proc/900/exe": "->/usr/bin/sleep", "/proc/900/comm": "osqueryd\n", "/proc/900/cmdline": "osqueryd\x00"}), false, "none of falcon-sensor, SentinelAgent, wazuh-agentd, osqueryd, auditd, clamd running (checked the executables of 3 processes)"},
		{"several agents", with(map[string]string{"/proc/10/exe": "->/sbin/auditd", "/proc/11/exe": "->/usr/sbin/clamd"}), true, "/sbin/auditd (pid 10), /usr/sbin/clamd (pid 11)"},
		{"replaced on disk", map[string]string{"/proc/10/exe": "->/usr/sbin/auditd (deleted)"}, true, "/usr/sbin/auditd (pid 10, executable replaced on disk)"},
		{"no proc", map[string]string{"/etc/": ""}, false, "cannot determine: listing processes"},
	})
	abs := EndpointProtection{Names: []string{"/opt/CrowdStrike/falcon-sensor"}}
	runCases(t, abs, []checkCase{
		{"absolute path matches", map[string]string{"/proc/5/exe": "->/opt/CrowdStrike/falcon-sensor"}, true, "/opt/CrowdStrike/falcon-sensor (pid 5)"},
		{"absolute path, copy elsewhere", map[string]string{"/proc/5/exe": "->/tmp/falcon-sensor"}, false, "none of /opt/CrowdStrike/falcon-sensor running"},
	})
}

// TestEndpointProtectionLive runs against this host's /proc: a shell that
// renamed itself "osqueryd" (its comm) is not an endpoint agent, a copy of
// it installed as .../osqueryd is one by name but not by absolute path.
func TestEndpointProtectionLive(t *testing.T) {
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Skip("no sh")
	}
	names := []string{"osqueryd"}
	if r := (EndpointProtection{Names: names}).Run(context.Background(), "/"); r.OK {
		t.Skipf("an osqueryd runs on this host: %s", r.Detail)
	}
	renamed := startProc(t, sh, "-c", "printf osqueryd > /proc/$$/comm; echo ready; read x")
	if b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", renamed)); strings.TrimSpace(string(b)) != "osqueryd" {
		t.Fatalf("comm of the renamed shell: %q", b)
	}
	r := EndpointProtection{Names: names}.Run(context.Background(), "/")
	assertCheck(t, r, false, "none of osqueryd")

	copied := filepath.Join(t.TempDir(), "osqueryd")
	b, err := os.ReadFile(sh)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(copied, b, 0o700); err != nil {
		t.Fatal(err)
	}
	pid := startProc(t, copied, "-c", "echo ready; read x")
	r = EndpointProtection{Names: names}.Run(context.Background(), "/")
	assertCheck(t, r, true, fmt.Sprintf("%s (pid %d)", copied, pid))
	r = EndpointProtection{Names: []string{"/usr/bin/osqueryd"}}.Run(context.Background(), "/")
	assertCheck(t, r, false, "none of /usr/bin/osqueryd")
}

// startProc starts a process that prints "ready" once set up and runs
// until the test ends (its stdin closes).
func startProc(t *testing.T, path string, args ...string) int {
	t.Helper()
	cmd := exec.Command(path, args...)
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		in.Close()
		cmd.Process.Kill()
		cmd.Wait()
	})
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || line != "ready\n" {
		t.Fatalf("%s: %q %v", path, line, err)
	}
	return cmd.Process.Pid
}

// TestEndpointProtectionUnreadable: without the right to read another
// user's exe link the check cannot tell, and says so.
func TestEndpointProtectionUnreadable(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("root reads every directory; the refusal cannot be staged")
	}
	root := tree(t, map[string]string{"/proc/7/exe": "->/usr/bin/osqueryd"})
	if err := os.Chmod(root.Path("/proc/7"), 0); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Chmod(root.Path("/proc/7"), 0o700) })
	r := EndpointProtection{}.Run(context.Background(), root)
	assertCheck(t, r, false, "executable of 1 processes is unreadable")
}

func TestMACEnforcing(t *testing.T) {
	const prof = "/sys/kernel/security/apparmor/profiles"
	const en = "/sys/module/apparmor/parameters/enabled"
	const se = "/sys/fs/selinux/enforce"
	runCases(t, MACEnforcing{}, []checkCase{
		{"apparmor enforcing", map[string]string{en: "Y\n", prof: "/usr/bin/man (enforce)\nman_groff (enforce)\nlsb_release (complain)\nunix-chkpwd (unconfined)\n"}, true, "AppArmor: 2 profiles in enforce mode, 1 in complain mode, 1 unconfined"},
		{"apparmor name with parentheses", map[string]string{prof: "/snap/x (1) y (kill)\n"}, true, "1 profiles in enforce mode"},
		{"apparmor complain only", map[string]string{en: "Y\n", prof: "a (complain)\n"}, false, "no MAC LSM enforcing: SELinux not enabled (/sys/fs/selinux/enforce missing); AppArmor: 0 profiles in enforce mode, 1 in complain mode"},
		{"apparmor no profiles", map[string]string{en: "Y\n", prof: ""}, false, "AppArmor: 0 profiles in enforce mode"},
		{"apparmor disabled", map[string]string{en: "N\n", prof: "a (enforce)\n"}, false, "AppArmor disabled (/sys/module/apparmor/parameters/enabled = N)"},
		{"apparmor enabled, securityfs missing", map[string]string{en: "Y\n"}, false, "cannot determine: SELinux not enabled"},
		{"apparmor malformed", map[string]string{prof: "garbage\n"}, false, "cannot determine: SELinux not enabled (/sys/fs/selinux/enforce missing); AppArmor: /sys/kernel/security/apparmor/profiles: malformed line \"garbage\""},
		{"selinux enforcing", map[string]string{se: "1"}, true, "SELinux enforcing (/sys/fs/selinux/enforce = 1)"},
		{"selinux permissive", map[string]string{se: "0"}, false, "SELinux permissive (/sys/fs/selinux/enforce = 0); AppArmor not enabled"},
		{"selinux garbage", map[string]string{se: "x"}, false, `cannot determine: SELinux: /sys/fs/selinux/enforce: unexpected "x"`},
		{"selinux permissive, apparmor enforcing", map[string]string{se: "0", prof: "a (enforce)\n"}, true, "AppArmor: 1 profiles"},
		{"neither", map[string]string{"/sys/": ""}, false, "no MAC LSM enforcing: SELinux not enabled (/sys/fs/selinux/enforce missing); AppArmor not enabled"},
	})
}

// touch sets a file's mtime, creating it.
func touch(t *testing.T, root Root, p string, at time.Time) {
	t.Helper()
	full := root.Path(p)
	if err := os.MkdirAll(filepath.Dir(full), 0o700); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(full); err != nil {
		if err := os.WriteFile(full, nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chtimes(full, at, at); err != nil {
		t.Fatal(err)
	}
}

func write(t *testing.T, root Root, p, text string) {
	t.Helper()
	if err := os.WriteFile(root.Path(p), []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
}

func writeGzip(t *testing.T, root Root, p, text string) {
	t.Helper()
	f, err := os.Create(root.Path(p))
	if err != nil {
		t.Fatal(err)
	}
	z := gzip.NewWriter(f)
	if _, err := z.Write([]byte(text)); err != nil {
		t.Fatal(err)
	}
	if err := z.Close(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// history is an apt history.log entry ending at end (local time).
func history(end time.Time, body string) string {
	start := end.Add(-time.Minute).Local().Format(aptHistoryTime)
	return "\nStart-Date: " + start + "\nCommandline: apt-get -y upgrade\n" + body + "End-Date: " + end.Local().Format(aptHistoryTime) + "\n"
}

func TestUpdatesFreshApt(t *testing.T) {
	now := time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)
	day := 24 * time.Hour
	check := UpdatesFresh{Now: func() time.Time { return now }}
	const stamp = "/var/lib/apt/periodic/update-success-stamp"
	const hist = "/var/log/apt/history.log"
	upgrade := "Upgrade: libc6:amd64 (2.36-9, 2.36-9+deb12u4)\n"
	for _, tc := range []struct {
		name   string
		setup  func(t *testing.T, root Root)
		ok     bool
		detail string
	}{
		{"fresh", func(t *testing.T, root Root) {
			touch(t, root, stamp, now.Add(-2*day-3*time.Hour))
			write(t, root, hist, history(now.Add(-5*day), upgrade))
		}, true, "apt: package index updated 2d3h ago (/var/lib/apt/periodic/update-success-stamp, 2026-11-30T09:00:00Z), limit 7d0h; last upgrade 5d0h ago (/var/log/apt/history.log, 2026-11-27T12:00:00Z), limit 30d0h"},
		{"stale index", func(t *testing.T, root Root) {
			touch(t, root, stamp, now.Add(-9*day))
			write(t, root, hist, history(now.Add(-day), upgrade))
		}, false, "package index updated 9d0h ago (/var/lib/apt/periodic/update-success-stamp, 2026-11-23T12:00:00Z), limit 7d0h: too old; last upgrade 1d0h ago"},
		{"stale upgrade, later install and failed upgrade ignored", func(t *testing.T, root Root) {
			touch(t, root, stamp, now.Add(-time.Hour))
			log := history(now.Add(-40*day), upgrade) +
				history(now.Add(-2*day), "Install: jq:amd64 (1.6-2.1)\n") +
				history(now.Add(-day), upgrade+"Error: Sub-process /usr/bin/dpkg returned an error code (1)\n") +
				"\nStart-Date: " + now.Add(-time.Hour).Local().Format(aptHistoryTime) + "\n" + upgrade // interrupted
			write(t, root, hist, log)
		}, false, "package index updated 1h0m0s ago (/var/lib/apt/periodic/update-success-stamp, 2026-12-02T11:00:00Z), limit 7d0h; last upgrade 40d0h ago (/var/log/apt/history.log, 2026-10-23T12:00:00Z), limit 30d0h: too old"},
		{"rotated log", func(t *testing.T, root Root) {
			touch(t, root, stamp, now.Add(-time.Hour))
			write(t, root, hist, history(now.Add(-time.Hour), "Install: jq:amd64 (1.6-2.1)\n"))
			writeGzip(t, root, hist+".1.gz", history(now.Add(-3*day), upgrade))
		}, true, "last upgrade 3d0h ago (/var/log/apt/history.log.1.gz"},
		{"no stamp, lists", func(t *testing.T, root Root) {
			touch(t, root, "/var/lib/apt/lists/lock", now)
			touch(t, root, "/var/lib/apt/lists/deb.debian.org_debian_dists_bookworm_InRelease", now.Add(-3*day))
			touch(t, root, "/var/lib/apt/lists/security_InRelease", now.Add(-day))
			write(t, root, hist, history(now.Add(-day), upgrade))
		}, true, "package index updated 1d0h ago (/var/lib/apt/lists/security_InRelease"},
		{"never updated or upgraded", func(t *testing.T, root Root) {
			touch(t, root, "/var/lib/apt/lists/partial/.keep", now)
		}, false, "apt: package index updated: no /var/lib/apt/periodic/update-success-stamp, and no package index found (/var/lib/apt/lists/*); last upgrade: no upgrade recorded in /var/log/apt/history.log, /var/log/apt/history.log.1.gz"},
		{"bad date", func(t *testing.T, root Root) {
			touch(t, root, stamp, now)
			write(t, root, hist, "Start-Date: x\n"+upgrade+"End-Date: yesterday\n")
		}, false, `last upgrade: /var/log/apt/history.log: End-Date "yesterday"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := tree(t, map[string]string{"/var/log/apt/": "", "/var/lib/apt/": ""})
			tc.setup(t, root)
			assertCheck(t, check.Run(context.Background(), root), tc.ok, tc.detail)
		})
	}
	t.Run("thresholds", func(t *testing.T) {
		root := tree(t, map[string]string{"/var/log/apt/": ""})
		touch(t, root, stamp, now.Add(-2*day))
		write(t, root, hist, history(now.Add(-2*day), upgrade))
		strict := UpdatesFresh{MaxIndexAge: day, MaxUpgradeAge: 3 * day, Now: check.Now}
		assertCheck(t, strict.Run(context.Background(), root), false, "limit 1d0h: too old; last upgrade 2d0h ago (/var/log/apt/history.log, 2026-11-30T12:00:00Z), limit 3d0h")
	})
	t.Run("large log keeps its tail", func(t *testing.T) {
		root := tree(t, map[string]string{"/var/log/apt/": ""})
		touch(t, root, stamp, now)
		big := strings.Repeat(history(now.Add(-60*day), upgrade), maxFileSize/100) + history(now.Add(-day), upgrade)
		write(t, root, hist, big)
		assertCheck(t, check.Run(context.Background(), root), true, "last upgrade 1d0h ago")
	})
}

func TestUpdatesFreshDnf(t *testing.T) {
	now := time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)
	day := 24 * time.Hour
	check := UpdatesFresh{Now: func() time.Time { return now }}
	const rpmlog = "/var/log/dnf.rpm.log"
	line := func(at time.Time, what string) string {
		return at.Format("2006-01-02T15:04:05-0700") + " SUBDEBUG " + what + "\n"
	}
	t.Run("fresh", func(t *testing.T) {
		root := tree(t, map[string]string{"/var/lib/dnf/": "", rpmlog: line(now.Add(-3*day), "Upgrade: bash-5.2.26-3.fc40.x86_64") + line(now.Add(-3*day), "Upgraded: bash-5.2.26-1.fc40.x86_64") + line(now.Add(-day), "Installed: jq-1.7.1-4.fc40.x86_64")})
		touch(t, root, "/var/cache/dnf/fedora-abc/repodata/repomd.xml", now.Add(-2*day))
		touch(t, root, "/var/cache/dnf/updates-def/repodata/repomd.xml", now.Add(-5*time.Hour))
		assertCheck(t, check.Run(context.Background(), root), true, "dnf: package index updated 5h0m0s ago (/var/cache/dnf/updates-def/repodata/repomd.xml, 2026-12-02T07:00:00Z), limit 7d0h; last upgrade 3d0h ago (/var/log/dnf.rpm.log, 2026-11-29T12:00:00Z)")
	})
	t.Run("stale, rotated", func(t *testing.T) {
		root := tree(t, map[string]string{"/var/lib/dnf/": "", rpmlog: line(now, "Installed: jq-1.7.1-4.fc40.x86_64"), rpmlog + ".1": line(now.Add(-45*day), "Upgrade: bash-5.2.26-3.fc40.x86_64")})
		touch(t, root, "/var/cache/libdnf5/fedora-abc/repodata/repomd.xml", now.Add(-10*day))
		assertCheck(t, check.Run(context.Background(), root), false, "limit 7d0h: too old; last upgrade 45d0h ago (/var/log/dnf.rpm.log.1, 2026-10-18T12:00:00Z), limit 30d0h: too old")
	})
	t.Run("neither apt nor dnf", func(t *testing.T) {
		assertCheck(t, check.Run(context.Background(), tree(t, map[string]string{"/var/": ""})), false, "no apt or dnf found")
	})
}

func TestSensorAttached(t *testing.T) {
	want := []string{"handle_exec", "handle_fork", "handle_exit"}
	for _, tc := range []struct {
		name   string
		f      func() ([]string, []string, error)
		ok     bool
		detail string
	}{
		{"all attached", func() ([]string, []string, error) {
			return want, []string{"handle_exit", "handle_exec", "handle_fork"}, nil
		}, true, "3 programs attached: handle_exec, handle_fork, handle_exit"},
		{"one detached", func() ([]string, []string, error) { return want, []string{"handle_exec", "handle_exit"}, nil }, false, "1 of 3 programs no longer attached: handle_fork"},
		{"kernel refuses", func() ([]string, []string, error) {
			return nil, nil, errors.New("iterating BPF links: operation not permitted")
		}, false, "cannot determine: iterating BPF links: operation not permitted"},
		{"nothing attached", func() ([]string, []string, error) { return nil, nil, nil }, false, "no attached programs"},
		{"not wired", nil, false, "cannot determine: no kernel sensor"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			assertCheck(t, SensorAttached{Attached: tc.f}.Run(context.Background(), "/"), tc.ok, tc.detail)
		})
	}
}

// tcpTable is a /proc/net/tcp with a listener on 127.0.0.1:8000 (inode
// 5001) and an established connection (inode 5002).
const tcpTable = `  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1F40 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 5001 1 0000000000000000 100 0 0 10 0
   1: 0100007F:A000 0100007F:0016 01 00000000:00000000 00:00000000 00000000  1000        0 5002 1 0000000000000000 20 4 30 10 -1
`

// tcp6Table has a listener on [::]:22 (inode 6001).
const tcp6Table = `  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000000000000:0016 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 6001 1 0000000000000000 100 0 0 10 0
`

func TestNoAgentListener(t *testing.T) {
	proc := func(pid string, exe string, inodes ...string) map[string]string {
		m := map[string]string{
			"/proc/" + pid + "/exe":      "->" + exe,
			"/proc/" + pid + "/net/tcp":  tcpTable,
			"/proc/" + pid + "/net/tcp6": tcp6Table,
			"/proc/" + pid + "/fd/0":     "->/dev/null",
		}
		for i, ino := range inodes {
			m["/proc/"+pid+"/fd/"+string(rune('3'+i))] = "->socket:[" + ino + "]"
		}
		return m
	}
	merge := func(ms ...map[string]string) map[string]string {
		out := map[string]string{}
		for _, m := range ms {
			for k, v := range m {
				out[k] = v
			}
		}
		return out
	}
	sessions := func(pids ...int32) func(int32) bool {
		return func(p int32) bool { return slices.Contains(pids, p) }
	}
	files := merge(
		proc("100", "/usr/sbin/sshd", "6001"),              // outside any session
		proc("200", "/usr/bin/node"),                       // session root, no socket
		proc("201", "/usr/bin/python3.12", "5001", "5002"), // session member with a listener
		proc("202", "/usr/bin/curl", "5002"),               // session member, connection only
	)
	for _, tc := range []struct {
		name      string
		inSession func(int32) bool
		ok        bool
		detail    string
	}{
		{"member listens", sessions(200, 201, 202), false, "agent-session listener: pid 201 (/usr/bin/python3.12) listening on 127.0.0.1:8000/tcp"},
		{"members without listeners", sessions(200, 202), true, "no listening socket among 2 agent-session processes"},
		{"listener outside the session", sessions(), true, "among 0 agent-session processes"},
		{"sshd in a session", sessions(100), false, "pid 100 (/usr/sbin/sshd) listening on [::]:22/tcp"},
		{"not wired", nil, false, "cannot determine: no agent-session source"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := NoAgentListener{InSession: tc.inSession}.Run(context.Background(), tree(t, files))
			assertCheck(t, r, tc.ok, tc.detail)
		})
	}
}

// TestNoAgentListenerLive opens a listener in this process and calls this
// process a session: gopsutil must find it through the real /proc.
func TestNoAgentListenerLive(t *testing.T) {
	l, err := listenLocal()
	if err != nil {
		t.Skipf("cannot listen: %v", err)
	}
	defer l.Close()
	self := int32(os.Getpid())
	r := NoAgentListener{InSession: func(p int32) bool { return p == self }}.Run(context.Background(), "/")
	assertCheck(t, r, false, l.Addr().String()+"/tcp")
}

func TestRequiredDecidesCompliance(t *testing.T) {
	mu := &sync.Mutex{}
	res := map[string]Result{"a": {OK: true, Detail: "a"}, "b": {Detail: "b failed"}, "c": {Detail: "c failed"}}
	checks := []Check{fakeCheck{"a", mu, res}, fakeCheck{"b", mu, res}, fakeCheck{"c", mu, res}}
	s := newSampler(Config{Interval: time.Second, Root: "/", Required: []string{"a", "c"}}, checks, nil, nil)
	if got := s.Required(); !slices.Equal(got, []string{"a", "c"}) {
		t.Errorf("Required() = %v", got)
	}
	p := s.Sample(t.Context())
	if p.Compliant || !slices.Equal(p.Failed, []string{"c"}) {
		t.Errorf("compliant=%t failed=%v; want false [c] (b is not required)", p.Compliant, p.Failed)
	}
	if r := p.Checks["b"]; r.OK || r.Detail != "b failed" {
		t.Errorf("non-required check not reported: %+v", r)
	}
	mu.Lock()
	res["c"] = Result{OK: true, Detail: "c"}
	mu.Unlock()
	if p := s.Sample(t.Context()); !p.Compliant || len(p.Failed) != 0 {
		t.Errorf("compliant=%t failed=%v with only a non-required failure", p.Compliant, p.Failed)
	}
	all := newSampler(Config{Interval: time.Second, Root: "/"}, checks, nil, nil)
	if got := all.Required(); !slices.Equal(got, []string{"a", "b", "c"}) {
		t.Errorf("default Required() = %v, want every enabled check", got)
	}
}

func TestDefaultChecksNeedTheirFacts(t *testing.T) {
	s, err := New(Config{ManagedSettings: "/nonexistent/managed-settings.json"}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := s.Checks(); slices.Contains(got, CheckSensorAttached) || slices.Contains(got, CheckNoAgentListener) || slices.Contains(got, CheckAgentHooks) || len(got) != len(CheckNames())-3 {
		t.Errorf("default checks without Attached/InSession/managed settings: %v", got)
	}
	settings := filepath.Join(t.TempDir(), "managed-settings.json")
	if err := os.WriteFile(settings, []byte("{}"), 0o644); err != nil {
		t.Fatal(err)
	}
	s, err = New(Config{Attached: func() ([]string, []string, error) { return nil, nil, nil }, InSession: func(int32) bool { return false }, ManagedSettings: settings}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := s.Checks(); !slices.Equal(got, CheckNames()) {
		t.Errorf("default checks with every fact: %v, want %v", got, CheckNames())
	}
	// Named, a check runs even without its facts, and says why it fails.
	s, err = New(Config{Checks: []string{CheckSensorAttached, CheckASLR}, Required: []string{CheckASLR}}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	p := s.Sample(t.Context())
	if r := p.Checks[CheckSensorAttached]; r.OK || !strings.Contains(r.Detail, "cannot determine") {
		t.Errorf("sensor_attached without facts: %+v", r)
	}
	if slices.Contains(p.Failed, CheckSensorAttached) {
		t.Errorf("failed %v lists a check that is not required", p.Failed)
	}
}

func TestConfigValidateDecide(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
		err  string
	}{
		{"unknown required", Config{Required: []string{"nope"}}, `posture.required: unknown check "nope" (known: `},
		{"repeated required", Config{Required: []string{"aslr", "aslr"}}, `posture.required: check "aslr" listed twice`},
		{"required not enabled", Config{Checks: []string{"aslr"}, Required: []string{"firewall"}}, `posture.required: check "firewall" is not enabled in posture.checks`},
		{"relative endpoint path", Config{EndpointProtection: []string{"bin/osqueryd"}}, `posture.endpoint_protection: "bin/osqueryd" is neither an executable name nor an absolute path`},
		{"empty endpoint name", Config{EndpointProtection: []string{""}}, `posture.endpoint_protection: ""`},
		{"negative index age", Config{Updates: UpdatesConfig{MaxIndexAge: -time.Hour}}, "posture.updates.max_index_age: -1h0m0s is negative"},
		{"negative upgrade age", Config{Updates: UpdatesConfig{MaxUpgradeAge: -time.Hour}}, "posture.updates.max_upgrade_age: -1h0m0s is negative"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.cfg.Validate(); err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("Validate() = %v, want error containing %q", err, tc.err)
			}
		})
	}
	c := Config{Required: []string{"firewall"}}
	if err := c.Validate(); err != nil {
		t.Fatalf("required with every check enabled: %v", err)
	}
	if !slices.Equal(c.EndpointProtection, DefaultEndpointProtection()) || c.Updates.MaxIndexAge != DefaultMaxIndexAge || c.Updates.MaxUpgradeAge != DefaultMaxUpgradeAge {
		t.Errorf("defaults not filled: %+v", c)
	}
}
