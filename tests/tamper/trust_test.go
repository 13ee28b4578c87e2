//go:build linux

package tamper

import (
	"bufio"
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lineaged/lineaged/tests/testutil"
)

// trustEvent is what the trust tests read of an output line.
type trustEvent struct {
	Kind    string `json:"kind"`
	Process *struct {
		PID    uint32   `json:"pid"`
		Argv   []string `json:"argv"`
		Binary *struct {
			Path    string `json:"path"`
			Verdict string `json:"verdict"`
			Package string `json:"package"`
		} `json:"binary"`
	} `json:"process"`
	Agent *struct {
		RootExecID string `json:"root_exec_id"`
		Role       string `json:"role"`
	} `json:"agent"`
	Tamper *struct {
		Action string `json:"action"`
		Path   string `json:"path"`
		Anchor string `json:"anchor"`
	} `json:"tamper"`
}

func readTrustEvents(path string) []trustEvent {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	var evs []trustEvent
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	for sc.Scan() {
		var ev trustEvent
		if json.Unmarshal(sc.Bytes(), &ev) == nil {
			evs = append(evs, ev)
		}
	}
	return evs
}

// TestRootForgedPackageRecord: a session member writes a dpkg md5sums
// record that vouches for a modified binary, waits for the sensor to
// reload the database, and runs the binary. The write is a sensor.tamper
// event (action trust-anchor) naming the member in its session, and the
// binary's verdict is package-untrusted, never package-verified; the
// session's later execs keep the session.
func TestRootForgedPackageRecord(t *testing.T) {
	testutil.RequireRoot(t, "to run lineaged and write the dpkg database")
	info := "/var/lib/dpkg/info"
	if st, err := os.Stat(info); err != nil || !st.IsDir() {
		t.Skip("no dpkg database on this host")
	}
	bin := testutil.LineagedBinary(t)
	dir, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	// The modified binary: true with a byte appended.
	tool := filepath.Join(dir, "bin", "trusttool")
	os.MkdirAll(filepath.Dir(tool), 0o755)
	body, err := os.ReadFile("/bin/true")
	if err != nil {
		t.Fatal(err)
	}
	body = append(body, 0)
	if err := os.WriteFile(tool, body, 0o755); err != nil {
		t.Fatal(err)
	}
	sum := md5.Sum(body)
	pkg := fmt.Sprintf("lineaged-trust-test-%d", os.Getpid())
	record := filepath.Join(info, pkg+".md5sums")
	t.Cleanup(func() { os.Remove(record) })

	agentPath := testutil.CopyFile(t, "/bin/dash", testutil.AgentPath(dir), 0o755)
	out := filepath.Join(dir, "events.jsonl")
	cfg := filepath.Join(dir, "lineaged.yaml")
	conf := fmt.Sprintf("output: %s\nkernel:\n  pin_path: %s\nposture:\n  checks: [aslr]\n", out, pinPath(t))
	if err := os.WriteFile(cfg, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	sp := startLineaged(t, bin, cfg, filepath.Join(dir, "cache"))
	if log := sp.stderr.String(); strings.Contains(log, "trust anchors not watched") {
		// The watch marks the dpkg directory with fanotify reporting file
		// handles; tmpfs (the kernel matrix guests' root) gives none on
		// older kernels (5.10: ENODEV). That is the kernel's, not a check
		// to pass: any other reason fails.
		if strings.Contains(log, "no such device") {
			t.Skipf("this kernel's %s filesystem gives fanotify no file handles, so lineaged cannot watch the dpkg database:\n%s", info, log)
		}
		t.Fatalf("lineaged does not watch the trust anchors:\n%s", log)
	}

	// The member waits past the database's recheck interval so the
	// forged record is loaded before the exec.
	script := fmt.Sprintf(`printf '%%s  %%s\n' %s %s > %s
read go
%s trust-exec
/bin/true trust-after
`, hex.EncodeToString(sum[:]), strings.TrimPrefix(tool, "/"), record, tool)
	agent := exec.Command(agentPath, "-c", script)
	stdin, err := agent.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	outBuf := &testutil.SyncBuffer{}
	agent.Stdout, agent.Stderr = outBuf, outBuf
	if err := agent.Start(); err != nil {
		t.Fatal(err)
	}
	defer agent.Process.Kill()
	testutil.WaitFor(t, 10*time.Second, "the forged record", func() bool {
		_, err := os.Stat(record)
		return err == nil
	}, func() string { return outBuf.String() })
	time.Sleep(6 * time.Second)
	io.WriteString(stdin, "go\n")
	stdin.Close()
	if err := agent.Wait(); err != nil {
		t.Fatalf("agent: %v\n%s", err, outBuf)
	}

	var evs []trustEvent
	var root string
	testutil.WaitFor(t, 30*time.Second, "the session's execs and the tool's verdict", func() bool {
		evs = readTrustEvents(out)
		root = ""
		for _, ev := range evs {
			if ev.Kind == "process.exec" && ev.Process != nil && len(ev.Process.Argv) == 2 && ev.Process.Argv[1] == "trust-after" && ev.Agent != nil {
				root = ev.Agent.RootExecID
			}
		}
		return root != "" && toolVerdict(evs, tool) != "" && anchorWrite(evs, record) != nil
	}, func() string {
		return fmt.Sprintf("%d events: session root %q, verdict of %s %q, trust-anchor write seen %v; agent:\n%s\nlineaged:\n%s",
			len(evs), root, tool, toolVerdict(evs, tool), anchorWrite(evs, record) != nil, outBuf, sp.stderr)
	})

	if v := toolVerdict(evs, tool); v != "package-untrusted" {
		t.Errorf("verdict of %s after a forged dpkg record: %q, want package-untrusted", tool, v)
	}
	write := anchorWrite(evs, record)
	if write.Tamper.Anchor != "package-db" || write.Process == nil || write.Process.PID != uint32(agent.Process.Pid) ||
		write.Agent == nil || write.Agent.RootExecID != root {
		t.Errorf("trust-anchor event: %+v process %+v agent %+v, want anchor package-db by the agent %d in session %s",
			write.Tamper, write.Process, write.Agent, agent.Process.Pid, root)
	}
}

// toolVerdict is the verdict lineaged gave path's binary, from its exec or
// its later process.binary event; "" while none.
func toolVerdict(evs []trustEvent, path string) string {
	for _, ev := range evs {
		if (ev.Kind == "process.exec" || ev.Kind == "process.binary") && ev.Process != nil &&
			ev.Process.Binary != nil && ev.Process.Binary.Path == path && ev.Process.Binary.Verdict != "" {
			return ev.Process.Binary.Verdict
		}
	}
	return ""
}

// anchorWrite is the trust-anchor event of a write of path, nil while none.
func anchorWrite(evs []trustEvent, path string) *trustEvent {
	for i, ev := range evs {
		if ev.Kind == "sensor.tamper" && ev.Tamper != nil && ev.Tamper.Action == "trust-anchor" && ev.Tamper.Path == path {
			return &evs[i]
		}
	}
	return nil
}
