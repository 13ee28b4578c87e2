//go:build linux

package exec

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/lineaged/lineaged/lineage"
	"github.com/lineaged/lineaged/lineage/binid"
	"github.com/lineaged/lineaged/lineage/event"
	"github.com/lineaged/lineaged/lineage/policy"
	"github.com/lineaged/lineaged/sensor"
	"github.com/lineaged/lineaged/sensor/kernel"
	"github.com/lineaged/lineaged/sensor/procfs"
	"github.com/lineaged/lineaged/sink/native"
	"github.com/lineaged/lineaged/tests/testutil"
)

// helperEnv names the technique the re-executed test binary runs once it
// reads a line on stdin (by then it is a session member).
const helperEnv = "LINEAGED_EVASION_EXEC_HELPER"

// runHelper runs a technique: it execs, so it returns only on failure.
func runHelper(mode string, args []string) int {
	// Running: the exec that started this image is over (memberIn).
	os.Stdout.Write([]byte("r"))
	var line [1]byte
	os.Stdin.Read(line[:])
	var err error
	switch mode {
	case "memfd":
		// args: the file to copy into a memfd, then argv.
		err = execMemfd(args[0], args[1:])
	case "exec":
		// args: argv, run by path.
		err = syscall.Exec(args[0], args, os.Environ())
	case "execveat-fd":
		// args: the file to run through an O_PATH fd, then argv.
		err = execFD(args[0], args[1:])
	default:
		err = fmt.Errorf("unknown helper %q", mode)
	}
	fmt.Fprintf(os.Stderr, "%s: %v\n", mode, err)
	return 1
}

// execveat(fd, "", argv, environ, AT_EMPTY_PATH): fexecve.
func execveat(fd int, argv []string) error {
	empty, _ := syscall.BytePtrFromString("")
	av, err := syscall.SlicePtrFromStrings(argv)
	if err != nil {
		return err
	}
	ev, err := syscall.SlicePtrFromStrings(os.Environ())
	if err != nil {
		return err
	}
	_, _, e := syscall.Syscall6(unix.SYS_EXECVEAT, uintptr(fd), uintptr(unsafePtr(empty)),
		uintptr(unsafePtr(&av[0])), uintptr(unsafePtr(&ev[0])), unix.AT_EMPTY_PATH, 0)
	return e
}

func execMemfd(src string, argv []string) error {
	b, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	fd, err := unix.MemfdCreate("payload", 0)
	if err != nil {
		return err
	}
	if _, err := unix.Write(fd, b); err != nil {
		return err
	}
	return execveat(fd, argv)
}

func execFD(path string, argv []string) error {
	fd, err := unix.Open(path, unix.O_PATH, 0)
	if err != nil {
		return err
	}
	return execveat(fd, argv)
}

// pipeline is the sensor feeding the lineage engine, as cmd/lineaged
// wires them, with the events encoded by the native encoder and parsed
// back: the test reads what the output says.
type pipeline struct {
	s   *kernel.Sensor
	mu  sync.Mutex
	out []map[string]any
}

func runPipeline(t *testing.T) *pipeline { return runPipelineDenying(t, nil) }

// runPipelineDenying is runPipeline with the policy stage enforcing the
// deny_exec entries (kills carried out through the sensor), when any.
func runPipelineDenying(t *testing.T, denyExec []string) *pipeline {
	t.Helper()
	testutil.RequireRoot(t, "to load BPF programs")
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	// The kernel enforces the entries as lineaged run has it do.
	s, err := kernel.New(kernel.Config{DenyKeys: policy.DenyKeys(denyExec, filepath.EvalSymlinks)}, log)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	in, err := binid.New(binid.Config{}, nil, &binid.Dpkg{Dir: "/var/lib/dpkg"}, log)
	if err != nil {
		t.Fatal(err)
	}
	// One boot time for lineage and the kills, as the product has.
	boot, err := lineage.LocalBoot{}.BootTime()
	if err != nil {
		t.Fatal(err)
	}
	eng, err := lineage.New(lineage.Config{Scope: lineage.ScopeAgents, EnrichWait: 5 * time.Second}, lineage.Deps{
		Host: lineage.LocalHost{}, Boot: fixedBoot(boot), Proc: lineage.ProcFS{Root: "/proc"},
		Binaries: in, Users: &lineage.Passwd{Path: "/etc/passwd"},
	}, log)
	if err != nil {
		t.Fatal(err)
	}
	var stage *policy.Stage
	if len(denyExec) > 0 {
		killer, err := policy.NewKiller(policy.KillConfig{Actuator: actuator{s}, Boot: boot, Emit: eng.Emit})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(killer.Close)
		if stage, err = policy.New(policy.Config{DenyExec: denyExec, Kill: killer}); err != nil {
			t.Fatal(err)
		}
	}
	raw := make(chan sensor.Event, 1<<14)
	evs := make(chan *event.Event, 1<<14)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(3)
	go func() { defer wg.Done(); s.Run(ctx, raw); close(raw) }()
	go func() { defer wg.Done(); eng.Run(ctx, raw, evs); close(evs) }()
	p := &pipeline{s: s}
	go func() {
		defer wg.Done()
		enc := native.Encoder{}
		var seq uint64
		for in := range evs {
			outs := []*event.Event{in}
			if stage != nil {
				outs = stage.Process(in)
			}
			for _, ev := range outs {
				// Stamped as the policy stage does for the sinks.
				seq++
				if ev.EventID == "" {
					ev.EventID, ev.Seq = event.NewEventID(ev.Time, "evasion-exec", seq), seq
				}
				b, err := enc.Append(nil, ev)
				if err != nil {
					t.Errorf("encode: %v", err)
					continue
				}
				var m map[string]any
				if err := json.Unmarshal(b, &m); err != nil {
					t.Errorf("output is not JSON: %v", err)
					continue
				}
				p.mu.Lock()
				p.out = append(p.out, m)
				p.mu.Unlock()
			}
		}
	}()
	t.Cleanup(func() { cancel(); wg.Wait(); s.Close() })
	return p
}

type fixedBoot time.Time

func (b fixedBoot) BootTime() (time.Time, error) { return time.Time(b), nil }

// find waits for an output event of kind about pid that satisfies ok.
func (p *pipeline) find(t *testing.T, kind string, pid int, ok func(map[string]any) bool) map[string]any {
	t.Helper()
	var got map[string]any
	testutil.WaitFor(t, guard, fmt.Sprintf("%s event of pid %d", kind, pid), func() bool {
		p.mu.Lock()
		defer p.mu.Unlock()
		for _, m := range p.out {
			proc, _ := m["process"].(map[string]any)
			if m["kind"] == kind && proc != nil && (pid < 0 || proc["pid"] == float64(pid)) && ok(m) {
				got = m
				return true
			}
		}
		return false
	}, func() string {
		p.mu.Lock()
		defer p.mu.Unlock()
		var b strings.Builder
		for _, m := range p.out {
			if proc, _ := m["process"].(map[string]any); proc != nil && proc["pid"] == float64(pid) {
				j, _ := json.Marshal(m)
				b.Write(append(j, '\n'))
			}
		}
		return b.String()
	})
	return got
}

// member starts the test binary in helper mode as a session member and
// lets it run its technique.
func (p *pipeline) member(t *testing.T, mode string, args ...string) *exec.Cmd {
	t.Helper()
	return p.memberIn(t, "", mode, args...)
}

// memberIn is member with its working directory dir ("" for the test's).
func (p *pipeline) memberIn(t *testing.T, dir, mode string, args ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], append([]string{"-test.run=^$"}, args...)...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), helperEnv+"="+mode)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr testutil.SyncBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	// Start returns once the exec closed its descriptors, which is before
	// the kernel's exec tracepoint runs: a member added then has that
	// exec of the test binary reported in its session, and the test
	// would take it for the technique's. The helper says when it runs.
	if _, err := io.ReadFull(stdout, make([]byte, 1)); err != nil {
		t.Fatalf("helper %s did not start: %v; stderr: %s", mode, err, stderr.String())
	}
	pid := uint32(cmd.Process.Pid)
	ref := sensor.SessionRef{Root: sensor.ProcKey{PID: pid, StartNs: startNs(t, pid)}, Agent: sensor.AgentClaudeCode}
	if err := p.s.AddSessionMembers(map[uint32]sensor.SessionRef{pid: ref}); err != nil {
		t.Fatal(err)
	}
	io.WriteString(stdin, "go\n")
	stdin.Close()
	return cmd
}

func flagsOf(proc map[string]any) []string {
	var out []string
	l, _ := proc["exe_flags"].([]any)
	for _, f := range l {
		s, _ := f.(string)
		out = append(out, s)
	}
	return out
}

// TestMemfdExecExitingAtOnce: a member runs a memfd copy of true. The exec
// says the exe is a memfd, and its binary says it was never hashed (the
// image was gone with its process), not that some file vanished.
func TestMemfdExecExitingAtOnce(t *testing.T) {
	p := runPipeline(t)
	m := p.member(t, "memfd", "/bin/true", "true")
	m.Wait()
	ev := p.find(t, "process.exec", m.Process.Pid, func(ev map[string]any) bool { return true })
	proc := ev["process"].(map[string]any)
	if f := flagsOf(proc); len(f) != 1 || f[0] != "memfd" {
		t.Errorf("exe %q: exe_flags %v, want [memfd]", proc["exe"], f)
	}
	bin := ev["process"].(map[string]any)["binary"]
	if bin == nil {
		// A late follow-up carries it.
		late := p.find(t, "process.binary", m.Process.Pid, func(ev map[string]any) bool {
			return ev["process"].(map[string]any)["binary"] != nil
		})
		bin = late["process"].(map[string]any)["binary"]
	}
	b := bin.(map[string]any)
	t.Logf("binary: %v", b)
	reason, _ := b["reason"].(string)
	if b["sha256"] == nil && (b["verdict"] != "error" || !strings.HasPrefix(reason, "never hashed: the image was a memfd")) {
		t.Errorf("binary %v: want verdict error, reason \"never hashed: the image was a memfd ...\"", b)
	}
}

// TestMemfdShellInAncestry: a member runs a memfd copy of sh, which runs a
// marker: the marker's ancestry says its parent ran a memfd.
func TestMemfdShellInAncestry(t *testing.T) {
	p := runPipeline(t)
	marker := testutil.CopyFile(t, "/bin/true", filepath.Join(t.TempDir(), "memfd-child-marker"), 0o755)
	m := p.member(t, "memfd", "/bin/sh", "sh", "-c", marker+"; :")
	m.Wait()
	ev := p.find(t, "process.exec", -1, func(ev map[string]any) bool {
		return ev["process"].(map[string]any)["exe"] == marker
	})
	anc, _ := ev["ancestry"].([]any)
	if len(anc) == 0 {
		t.Fatalf("marker exec with no ancestry: %v", ev)
	}
	parent := anc[0].(map[string]any)
	if f := flagsOf(parent); parent["pid"] != float64(m.Process.Pid) || len(f) != 1 || f[0] != "memfd" {
		t.Errorf("marker's parent: pid %v exe %q exe_flags %v, want pid %d and [memfd]", parent["pid"], parent["exe"], f, m.Process.Pid)
	}
}

// TestExecveatEmptyPath: a member execs true through an O_PATH fd with
// execveat(AT_EMPTY_PATH): the exe is the file's real path, no flag.
func TestExecveatEmptyPath(t *testing.T) {
	p := runPipeline(t)
	want, err := filepath.EvalSymlinks("/bin/true")
	if err != nil {
		t.Fatal(err)
	}
	m := p.member(t, "execveat-fd", "/bin/true", "true")
	m.Wait()
	ev := p.find(t, "process.exec", m.Process.Pid, func(ev map[string]any) bool { return true })
	proc := ev["process"].(map[string]any)
	if proc["exe"] != want || len(flagsOf(proc)) != 0 {
		t.Errorf("exe %q flags %v, want %q and no flags", proc["exe"], flagsOf(proc), want)
	}
}

func unsafePtr[T any](p *T) unsafe.Pointer { return unsafe.Pointer(p) }

// startNs is pid's start time as /proc gives it.
func startNs(t *testing.T, pid uint32) uint64 {
	t.Helper()
	pr, err := procfs.Read("/proc", pid)
	if err != nil {
		t.Fatal(err)
	}
	return pr.StartTicks * procfs.TicksToNs
}
