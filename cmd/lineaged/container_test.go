package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lineaged/lineaged/lineage"
	"github.com/lineaged/lineaged/tests/testutil"
)

// cgroup2Root is where the cgroup v2 hierarchy is mounted, "" when it is
// not.
func cgroup2Root(t *testing.T) string {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		for i, fl := range fields {
			if fl == "-" && i+1 < len(fields) && fields[i+1] == "cgroup2" {
				return fields[4]
			}
		}
	}
	return ""
}

// A session member does its work in a cgroup named as docker names a
// container's, in a mount namespace of its own (unshare --mount), the way
// an agent would run something where the host's view does not reach: the
// real `lineaged run` says which container and that the mount namespace
// is not the host's, on exactly the processes that are there.
func TestRunContainerAndMountNamespace(t *testing.T) {
	testutil.RequireRoot(t, "to load BPF programs")
	unshare, err := exec.LookPath("unshare")
	if err != nil {
		t.Skip("no unshare(1)")
	}
	root := cgroup2Root(t)
	if root == "" {
		t.Skip("no cgroup v2 hierarchy mounted")
	}
	id := fmt.Sprintf("%064x", time.Now().UnixNano())
	cg := filepath.Join(root, "lineaged-test.slice", "docker-"+id+".scope")
	if err := os.MkdirAll(cg, 0o755); err != nil {
		t.Skipf("cannot make a cgroup: %v", err)
	}
	t.Cleanup(func() {
		// Empty once its processes exited.
		for i := 0; i < 50 && os.Remove(cg) != nil; i++ {
			time.Sleep(100 * time.Millisecond)
		}
		os.Remove(filepath.Dir(cg))
	})

	dir := t.TempDir()
	agentPath := testutil.CopyFile(t, "/bin/dash", testutil.AgentPath(dir), 0o755)
	out := filepath.Join(dir, "events.jsonl")
	stderr, _ := runAgentScript(t, out, nil, agentPath, func(marker string) string {
		return "echo $$ > " + filepath.Join(cg, "cgroup.procs") + " && exec " + unshare + " --mount /bin/sh -c '/bin/echo " + marker + "'"
	})

	type proc struct {
		Exe         string   `json:"exe"`
		Argv        []string `json:"argv"`
		ContainerID string   `json:"container_id"`
		MntNS       uint32   `json:"mnt_ns"`
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	execs := map[string]proc{}
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		var e struct {
			Kind    string `json:"kind"`
			Process *proc  `json:"process"`
		}
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatalf("not JSON: %v", err)
		}
		if e.Kind == "process.exec" && e.Process != nil && len(e.Process.Argv) > 0 {
			execs[e.Process.Argv[0]] = *e.Process
		}
	}
	agent, un, echo := execs[agentPath], execs[unshare], execs["/bin/echo"] // by argv[0]
	if agent.Exe == "" || un.Exe == "" || echo.Exe == "" {
		t.Fatalf("execs missing: agent %v, unshare %v, echo %v; stderr:\n%s", agent.Exe != "", un.Exe != "", echo.Exe != "", stderr.String())
	}
	host := lineage.HostMountNS("/proc")
	// The agent started outside both; unshare ran in the container's
	// cgroup but still in the host's mount namespace; echo in both.
	if agent.ContainerID != "" || agent.MntNS != 0 {
		t.Errorf("agent: container %q, mnt_ns %d, want neither", agent.ContainerID, agent.MntNS)
	}
	if un.ContainerID != id || un.MntNS != 0 {
		t.Errorf("unshare: container %q, mnt_ns %d, want %s and the host's namespace", un.ContainerID, un.MntNS, id)
	}
	if echo.ContainerID != id || echo.MntNS == 0 || echo.MntNS == host {
		t.Errorf("echo: container %q, mnt_ns %d (host %d), want %s in a namespace of its own", echo.ContainerID, echo.MntNS, host, id)
	}
}
