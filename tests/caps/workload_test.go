package caps

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lineaged/lineaged/tests/testutil"
)

const trigger = "lineaged-caps-trigger"

// runWorkload starts the sensor holding exactly the capabilities names,
// runs, as another user, what each capability is needed for, and returns
// what the sensor made of it.
func runWorkload(t *testing.T, names []string) *outcome {
	t.Helper()
	dir := t.TempDir()
	// What nobody runs lives in a directory it can reach.
	pub, err := os.MkdirTemp("", "lineaged-caps-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(pub) })
	if err := os.Chmod(pub, 0o755); err != nil {
		t.Fatal(err)
	}
	rules := filepath.Join(dir, "rules.yaml")
	writeFile(t, rules, `rules:
  - id: caps-kill
    description: the session ran the trigger
    severity: critical
    condition: kind == "process.exec" && has(agent.root_exec_id) && process.argv.exists(a, a == "`+trigger+`")
    actions: [alert, kill-session]
`)
	cfg := filepath.Join(dir, "lineaged.yaml")
	// Agents of other users reach the hook socket through its group.
	sock := filepath.Join(dir, "hook.sock")
	grp, err := user.LookupGroupId(strconv.Itoa(nobody))
	if err != nil {
		t.Fatalf("the group of gid %d: %v", nobody, err)
	}
	writeFile(t, cfg, "policy:\n  rules: "+rules+"\nhook:\n  socket: "+sock+"\n  group: "+grp.Name+"\n")

	// A 0700 executable in a 0700 directory, both nobody's.
	private := filepath.Join(pub, "private")
	privateBin := testutil.CopyFile(t, "/bin/sleep", filepath.Join(private, "sleep"), 0o700)
	for _, p := range []string{private, privateBin} {
		if err := os.Chmod(p, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(p, nobody, nobody); err != nil {
			t.Fatal(err)
		}
	}
	// The stand-in agent, under nobody's home.
	home := filepath.Join(pub, "home")
	agentBin := testutil.CopyFile(t, "/bin/dash", testutil.AgentPath(home), 0o755)

	s, exited := startSensor(t, names, dir, cfg)
	o := &outcome{exited: exited}
	if s == nil {
		t.Logf("with %v: the sensor did not start: %s", names, exited)
		return o
	}

	asNobody := &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody}}
	priv := exec.Command(privateBin, "4")
	priv.SysProcAttr = asNobody
	start(t, priv)
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	memfd := exec.Command(self, "65534", "/bin/sleep", "4")
	memfd.Env = append(os.Environ(), helperEnv+"=memfd")
	var memfdErr testutil.SyncBuffer
	memfd.Stderr = &memfdErr
	start(t, memfd)

	// The agent runs the trigger, then waits on a pipe the test holds: only
	// a kill ends it early.
	stdinR, stdinW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer stdinW.Close()
	agent := exec.Command(agentBin, "-c", "/bin/true "+trigger+"; read x")
	agent.SysProcAttr = asNobody
	agent.Dir = "/"
	agent.Stdin = stdinR
	start(t, agent)
	stdinR.Close()
	agentDone := make(chan error, 1)
	go func() { agentDone <- agent.Wait() }()

	var action map[string]any
	testutil.WaitFor(t, 30*time.Second, "the policy.action of the kill and both hashed execs", func() bool {
		evs := s.events(t)
		for _, e := range evs {
			switch str(e["kind"]) {
			case "policy.action":
				action = e
			case "process.exec":
				pid, _ := field(e, "process", "pid").(float64)
				v, r := str(field(e, "process", "binary", "verdict")), str(field(e, "process", "binary", "reason"))
				switch int(pid) {
				case priv.Process.Pid:
					o.privateVerdict, o.privateReason = v, r
				case memfd.Process.Pid:
					if strings.HasPrefix(str(field(e, "process", "exe")), "memfd:lineaged-caps") {
						o.memfdVerdict, o.memfdReason = v, r
					}
				}
			case "posture.sample":
				if o.firewall == "" {
					o.firewall = str(field(e, "posture", "checks", "firewall", "detail"))
					o.sensorAttached = str(field(e, "posture", "checks", "sensor_attached", "detail"))
					o.attachedOK, _ = field(e, "posture", "checks", "sensor_attached", "ok").(bool)
				}
			}
		}
		return action != nil && o.privateVerdict != "" && o.memfdVerdict != "" && o.firewall != ""
	}, func() string {
		return fmt.Sprintf("policy.action %v; private %q, memfd %q, firewall %q\n%s%s",
			action != nil, o.privateVerdict, o.memfdVerdict, o.firewall, s.stderr.String(), memfdErr.String())
	})
	o.killResult, o.killMessage = str(field(action, "alert", "result")), str(field(action, "alert", "message"))
	select {
	case err := <-agentDone:
		var ee *exec.ExitError
		o.agentKilled = errors.As(err, &ee) && ee.Sys().(syscall.WaitStatus).Signal() == syscall.SIGKILL
	case <-time.After(5 * time.Second):
		_ = agent.Process.Kill()
		<-agentDone
	}
	_ = priv.Wait()
	_ = memfd.Wait()
	o.hookGroup = -1
	if fi, err := os.Stat(sock); err == nil {
		o.hookGroup = int(fi.Sys().(*syscall.Stat_t).Gid)
	}
	s.stop(t)
	o.stderr = s.stderr.String()
	t.Logf("with %v: hook socket gid %d; private %s (%s); memfd %s (%s); kill %s (%s), killed %v; firewall %q; sensor_attached %v %q",
		names, o.hookGroup, o.privateVerdict, o.privateReason, o.memfdVerdict, o.memfdReason, o.killResult, o.killMessage,
		o.agentKilled, o.firewall, o.attachedOK, o.sensorAttached)
	return o
}

func start(t *testing.T, cmd *exec.Cmd) {
	t.Helper()
	if err := cmd.Start(); err != nil {
		t.Fatalf("%s: %v", cmd.Path, err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
		}
	})
}

func writeFile(t *testing.T, path, s string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
}
