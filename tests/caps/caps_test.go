package caps

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lineaged/lineaged/tests/testutil"
)

// nobody is the other user whose processes the sensor must see into.
const nobody = 65534

// outcome is what one run of the sensor made of the workload.
type outcome struct {
	stderr string
	// exited is set when the sensor did not start: its exit and stderr.
	exited string
	// The exec of a 0700 binary in a 0700 directory, by nobody.
	privateVerdict, privateReason string
	// The exec of a memfd by nobody: only /proc/<pid>/exe reaches it.
	memfdVerdict, memfdReason string
	// The kill-session of an agent session run by nobody.
	killResult, killMessage string
	agentKilled             bool
	// The posture checks that need privileges.
	firewall, sensorAttached string
	attachedOK               bool
	// The gid of the hook socket, with hook.group set (-1: no socket).
	hookGroup int
}

// expectations says, for each capability the unit keeps, what stops working
// without it. A capability of the unit with no entry here fails the test:
// what no test shows a need for is dropped from the unit.
var expectations = map[string]func(t *testing.T, o *outcome){
	// CAP_SYS_ADMIN: the unit's one grant of what CAP_BPF and CAP_PERFMON
	// grant (kernels from 5.8 accept either), so without it the sensor does
	// not start. What it adds beyond them (fanotify, the BPF link walk) is
	// TestSysAdminBeyondBPF's.
	"CAP_SYS_ADMIN": func(t *testing.T, o *outcome) {
		if !strings.Contains(o.exited, "sensor cannot run: missing CAP_BPF+CAP_PERFMON") {
			t.Errorf("lineaged run without CAP_SYS_ADMIN: %q, want it to refuse to start for want of CAP_BPF+CAP_PERFMON", o.exited)
		}
	},
	// CAP_SYS_PTRACE: /proc/<pid>/exe of another user's process. A memfd
	// has no path to fall back on, so its hash is lost.
	"CAP_SYS_PTRACE": func(t *testing.T, o *outcome) {
		if o.memfdVerdict != "error" || !strings.Contains(o.memfdReason, "binary not readable by the sensor: open /proc/") ||
			!strings.Contains(o.memfdReason, "/exe: permission denied") {
			t.Errorf("memfd exec by another user: verdict %q (%s), want error: permission denied on /proc/<pid>/exe", o.memfdVerdict, o.memfdReason)
		}
	},
	// CAP_DAC_READ_SEARCH: reading an executable (and its directory) that
	// only its owner may read; root without it is refused like anyone.
	"CAP_DAC_READ_SEARCH": func(t *testing.T, o *outcome) {
		if o.privateVerdict != "error" || !strings.Contains(o.privateReason, "binary not readable by the sensor") ||
			!strings.Contains(o.privateReason, "/private/sleep: permission denied") {
			t.Errorf("0700 binary of another user: verdict %q (%s), want error: permission denied", o.privateVerdict, o.privateReason)
		}
	},
	// CAP_NET_ADMIN: the firewall posture check reads the nftables rule set.
	"CAP_NET_ADMIN": func(t *testing.T, o *outcome) {
		if !strings.Contains(o.firewall, "cannot determine: nftables: operation not permitted") {
			t.Errorf("firewall check = %q, want nftables refused", o.firewall)
		}
	},
	// CAP_CHOWN: the hook socket is given hook.group, a group root is not a
	// member of; without it agents of other users get no hook answers.
	"CAP_CHOWN": func(t *testing.T, o *outcome) {
		if o.hookGroup != -1 {
			t.Errorf("the hook socket is there (gid %d) without CAP_CHOWN", o.hookGroup)
		}
		if !strings.Contains(o.stderr, "hook socket not opened") || !strings.Contains(o.stderr, "operation not permitted") {
			t.Errorf("no error that the hook socket was not opened (chown EPERM)")
		}
	},
	// CAP_KILL: kill actions on an agent session of another user.
	"CAP_KILL": func(t *testing.T, o *outcome) {
		if o.agentKilled {
			t.Errorf("the agent session of another user was killed without CAP_KILL")
		}
		if o.killResult != "failed" || !strings.Contains(o.killMessage, "operation not permitted") {
			t.Errorf("policy.action result %q (%s), want failed: operation not permitted", o.killResult, o.killMessage)
		}
	},
}

// The unit's whole set: every feature above works.
func TestUnitCapabilitySetWorks(t *testing.T) {
	testutil.RequireRoot(t, "to load BPF programs and grant capabilities")
	names := unitCaps(t)
	o := runWorkload(t, names)
	if o.exited != "" {
		t.Fatalf("lineaged run with the unit's capabilities %v did not start: %s", names, o.exited)
	}
	if o.privateVerdict == "" || o.privateVerdict == "error" {
		t.Errorf("0700 binary of another user: verdict %q (%s)", o.privateVerdict, o.privateReason)
	}
	if o.memfdVerdict == "" || o.memfdVerdict == "error" {
		t.Errorf("memfd exec by another user: verdict %q (%s)", o.memfdVerdict, o.memfdReason)
	}
	if !o.agentKilled || o.killResult != "done" {
		t.Errorf("agent session of another user: killed %v, policy.action %q (%s)", o.agentKilled, o.killResult, o.killMessage)
	}
	if o.hookGroup != nobody {
		t.Errorf("hook socket gid %d, want hook.group, gid %d", o.hookGroup, nobody)
	}
	if strings.Contains(o.firewall, "cannot determine") || o.firewall == "" {
		t.Errorf("firewall check = %q", o.firewall)
	}
	if !o.attachedOK {
		t.Errorf("sensor_attached = %q", o.sensorAttached)
	}
	if strings.Contains(o.stderr, "trust anchors not watched") {
		t.Errorf("the trust anchors are not watched")
	}
}

// CAP_SYS_ADMIN does more than stand in for CAP_BPF and CAP_PERFMON: with
// those two in its place the programs load and attach, but the trust
// anchors go unwatched (fanotify needs CAP_SYS_ADMIN) and the self-check
// cannot walk the kernel's BPF links.
func TestSysAdminBeyondBPF(t *testing.T) {
	testutil.RequireRoot(t, "to load BPF programs and grant capabilities")
	names := slices.DeleteFunc(unitCaps(t), func(n string) bool { return n == "CAP_SYS_ADMIN" })
	o := runWorkload(t, append(names, "CAP_BPF", "CAP_PERFMON"))
	if o.exited != "" {
		t.Fatalf("lineaged run with CAP_BPF and CAP_PERFMON for CAP_SYS_ADMIN did not start: %s", o.exited)
	}
	if !strings.Contains(o.stderr, "trust anchors not watched") || !strings.Contains(o.stderr, "fanotify_init: operation not permitted") {
		t.Errorf("no warning that the trust anchors are not watched (fanotify_init EPERM)")
	}
	if o.attachedOK || !strings.Contains(o.sensorAttached, "get next link ID: operation not permitted") {
		t.Errorf("sensor_attached = %q, want the link walk refused", o.sensorAttached)
	}
	// The rest of what the unit's set serves still works.
	if o.memfdVerdict == "error" || o.privateVerdict == "error" || o.killResult != "done" {
		t.Errorf("memfd %q, private %q, kill %q: want them unaffected", o.memfdVerdict, o.privateVerdict, o.killResult)
	}
}

// Each capability of the unit, taken away alone, breaks what it serves.
func TestUnitCapabilityEachNeeded(t *testing.T) {
	testutil.RequireRoot(t, "to load BPF programs and grant capabilities")
	names := unitCaps(t)
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			check, ok := expectations[name]
			if !ok {
				t.Fatalf("no test shows what %s serves: drop it from deploy/lineaged.service or add its expectation", name)
			}
			rest := slices.DeleteFunc(slices.Clone(names), func(n string) bool { return n == name })
			check(t, runWorkload(t, rest))
		})
	}
}

// sensor is a running `lineaged run` with a given capability set.
type sensor struct {
	cmd    *exec.Cmd
	out    string
	stderr *testutil.SyncBuffer
	done   chan error
}

// startSensor starts the sensor; when it exits instead of starting, it
// returns nil and why.
func startSensor(t *testing.T, names []string, dir, cfg string) (*sensor, string) {
	t.Helper()
	var keep []string
	for _, n := range names {
		keep = append(keep, strconv.Itoa(capNames[n]))
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	s := &sensor{out: filepath.Join(dir, "events.jsonl"), stderr: &testutil.SyncBuffer{}, done: make(chan error, 1)}
	s.cmd = exec.Command(self, strings.Join(keep, ","), lineaged, "run", "--config", cfg,
		"--output", s.out, "--scope", "all", "--metrics-listen", "")
	s.cmd.Env = append(os.Environ(), helperEnv+"=dropcaps",
		"LINEAGED_STATE_DIR="+filepath.Join(dir, "state"),
		"LINEAGED_HASHING_CACHE_DIR="+filepath.Join(dir, "binid"),
		"LINEAGED_AUDIT_STATE_DIR="+filepath.Join(dir, "audit"),
		"LINEAGED_KERNEL_PIN_PATH=")
	s.cmd.Stderr = s.stderr
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { s.done <- s.cmd.Wait() }()
	t.Cleanup(func() { s.stop(t) })
	deadline := time.After(60 * time.Second)
	for !strings.Contains(s.stderr.String(), "sensor started") {
		select {
		case err := <-s.done:
			s.done <- err
			return nil, fmt.Sprintf("%v: %s", err, strings.TrimSpace(s.stderr.String()))
		case <-deadline:
			t.Fatalf("lineaged run with %v did not start in 60s\n%s", names, s.stderr.String())
		case <-time.After(100 * time.Millisecond):
		}
	}
	return s, ""
}

func (s *sensor) stop(t *testing.T) {
	if s.cmd.ProcessState != nil {
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-s.done:
		s.done <- err
	case <-time.After(30 * time.Second):
		_ = s.cmd.Process.Kill()
		t.Errorf("lineaged did not stop on SIGTERM within 30s")
	}
}

func (s *sensor) events(t *testing.T) []map[string]any {
	t.Helper()
	b, err := os.ReadFile(s.out)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	var evs []map[string]any
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	for sc.Scan() {
		var e map[string]any
		if json.Unmarshal(sc.Bytes(), &e) == nil {
			evs = append(evs, e)
		}
	}
	return evs
}

func field(e map[string]any, path ...string) any {
	var v any = e
	for _, p := range path {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[p]
	}
	return v
}

func str(v any) string { s, _ := v.(string); return s }
