//go:build linux

package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/lineaged/lineaged/tests/fakeapi"
	"github.com/lineaged/lineaged/tests/testutil"
)

// storm is one exec storm: the bash loop, where it reports, and the end
// marker the sensor's output is drained up to.
type storm struct {
	n      int
	dir    string // the loop writes its timings here
	nonce  string // the end marker is "costbench-end-" + nonce
	sensor int    // the sensor's pid, whose CPU the loop samples first; 0 when off
}

// marker is the argument of the /bin/true exec that ends the storm. The
// script spells it in two quoted halves, so the command text (which every
// storm exec carries in its ancestry) never contains it whole.
func (s storm) marker() string { return "costbench-end-" + s.nonce }

// script is the bash command of the storm: it samples the sensor's CPU
// (with builtins, no exec), times n fork+exec of /bin/true with bash's own
// clock, writes the wall time and the children's CPU time (times), then
// execs the marker.
func (s storm) script() string {
	var b strings.Builder
	// Wait at the gate, so the harness can let the sensor settle (from
	// starting, and from the session's own start) before the storm.
	fmt.Fprintf(&b, "echo ready > %s; read -r _ < %s; ", filepath.Join(s.dir, "ready"), filepath.Join(s.dir, "gate"))
	if s.sensor > 0 {
		fmt.Fprintf(&b, "read -r c0 < /proc/%d/stat; echo \"$c0\" > %s; ", s.sensor, filepath.Join(s.dir, "cpu0"))
	}
	fmt.Fprintf(&b, "s=$EPOCHREALTIME; i=0; while [ $i -lt %d ]; do /bin/true; i=$((i+1)); done; e=$EPOCHREALTIME; ", s.n)
	fmt.Fprintf(&b, "times > %s; echo \"$s $e\" > %s; ", filepath.Join(s.dir, "times"), filepath.Join(s.dir, "wall"))
	fmt.Fprintf(&b, "/bin/true \"costbench-end-\"%q", s.nonce)
	return b.String()
}

// stormResult is what one storm measured about itself.
type stormResult struct {
	wall time.Duration
	cpu  time.Duration // user+system of the storm's children (bash times)
	// sensorCPU0 is the sensor's utime+stime in clock ticks when the storm
	// began (-1 when the sensor was off).
	sensorCPU0 int64
	pid        int       // the process the benchmark started: Claude Code, or bash
	start, end time.Time // the loop's start and end, by bash's clock
}

// readStorm reads what the storm wrote in its directory.
func readStorm(s storm) (stormResult, error) {
	r := stormResult{sensorCPU0: -1}
	w, err := os.ReadFile(filepath.Join(s.dir, "wall"))
	if err != nil {
		return r, fmt.Errorf("the storm left no timing: %w", err)
	}
	f := strings.Fields(string(w))
	if len(f) != 2 {
		return r, fmt.Errorf("storm timing %q", w)
	}
	a, err1 := strconv.ParseFloat(f[0], 64)
	b, err2 := strconv.ParseFloat(f[1], 64)
	if err1 != nil || err2 != nil {
		return r, fmt.Errorf("storm timing %q (needs bash 5's EPOCHREALTIME)", w)
	}
	r.wall = time.Duration((b - a) * float64(time.Second))
	r.start = time.Unix(0, int64(a*1e9))
	r.end = time.Unix(0, int64(b*1e9))
	t, err := os.ReadFile(filepath.Join(s.dir, "times"))
	if err != nil {
		return r, err
	}
	lines := strings.Split(strings.TrimSpace(string(t)), "\n")
	if len(lines) != 2 {
		return r, fmt.Errorf("bash times: %q", t)
	}
	for _, x := range strings.Fields(lines[1]) {
		d, err := parseTimes(x)
		if err != nil {
			return r, err
		}
		r.cpu += d
	}
	if s.sensor > 0 {
		st, err := os.ReadFile(filepath.Join(s.dir, "cpu0"))
		if err != nil {
			return r, fmt.Errorf("the storm did not sample the sensor's CPU: %w", err)
		}
		if r.sensorCPU0, err = statTicks(string(st)); err != nil {
			return r, err
		}
	}
	return r, nil
}

// parseTimes parses one of bash's times fields, such as "0m1.234s".
func parseTimes(s string) (time.Duration, error) {
	m, sec, ok := strings.Cut(strings.TrimSuffix(s, "s"), "m")
	if !ok {
		return 0, fmt.Errorf("bash times field %q", s)
	}
	mins, err1 := strconv.Atoi(m)
	secs, err2 := strconv.ParseFloat(sec, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("bash times field %q", s)
	}
	return time.Duration(mins)*time.Minute + time.Duration(secs*float64(time.Second)), nil
}

// settle is called at the storm's gate, before the storm starts: it waits
// until the sensor is idle (nil when the sensor is off).
type settle func(context.Context) error

// runCmd starts cmd, which runs the storm s, lets it through the gate once
// settled, and waits for it. Its output goes to logPath.
func runCmd(ctx context.Context, cmd *exec.Cmd, s storm, logPath string, wait settle) (stormResult, error) {
	if err := syscall.Mkfifo(filepath.Join(s.dir, "gate"), 0o600); err != nil {
		return stormResult{}, err
	}
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return stormResult{}, err
	}
	defer logf.Close()
	// Output to a file, not a pipe: a process the session leaves behind
	// holding the pipe would keep Wait from returning. A process group of
	// its own: whatever it leaves behind is ended with it.
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	if err := cmd.Start(); err != nil {
		return stormResult{}, err
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	gateErr := openGate(ctx, s, wait, done)
	if gateErr != nil {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
	err = <-done
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	out, _ := os.ReadFile(logPath)
	if err = errors.Join(gateErr, err); err != nil {
		return stormResult{}, fmt.Errorf("%s: %v\n%s", filepath.Base(cmd.Path), err, tail(string(out), 2000))
	}
	r, err := readStorm(s)
	if err != nil {
		return r, fmt.Errorf("%w; output:\n%s", err, tail(string(out), 2000))
	}
	r.pid = cmd.Process.Pid
	return r, nil
}

// openGate waits until the storm is at its gate, lets the sensor settle,
// and opens the gate. done delivers the command's end, if it ends first.
func openGate(ctx context.Context, s storm, wait settle, done chan error) error {
	ready := filepath.Join(s.dir, "ready")
	err := waitUntil(ctx, 5*time.Minute, "storm at its gate", func() (bool, error) {
		select {
		case err := <-done:
			done <- err
			return false, fmt.Errorf("ended before the storm (%v)", err)
		default:
		}
		_, err := os.Stat(ready)
		return err == nil, nil
	})
	if err != nil {
		return err
	}
	if wait != nil {
		if err := wait(ctx); err != nil {
			return err
		}
	}
	// The shell opens the gate for reading right after writing ready; a
	// non-blocking open for writing fails (ENXIO) until it has.
	return waitUntil(ctx, time.Minute, "reader at the storm's gate", func() (bool, error) {
		f, err := os.OpenFile(filepath.Join(s.dir, "gate"), os.O_WRONLY|syscall.O_NONBLOCK, 0)
		if errors.Is(err, syscall.ENXIO) {
			return false, nil
		} else if err != nil {
			return false, err
		}
		_, err = f.WriteString("go\n")
		f.Close()
		return err == nil, err
	})
}

// runPlain runs the storm from a plain bash, outside any agent session.
func runPlain(ctx context.Context, base string, s storm, wait settle) (stormResult, error) {
	cmd := exec.CommandContext(ctx, "/bin/bash", "-c", s.script())
	return runCmd(ctx, cmd, s, filepath.Join(base, "bash.out"), wait)
}

// runClaude runs the storm as a Bash tool call of the real Claude Code,
// against a scripted Messages API on loopback, in a home of its own under
// base, and waits for the session to end.
func runClaude(ctx context.Context, claude, base string, s storm, wait settle) (stormResult, error) {
	home, work := filepath.Join(base, "home"), filepath.Join(base, "work")
	for _, d := range []string{home, work} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return stormResult{}, err
		}
	}
	prompt := "costbench-" + s.nonce
	api, err := fakeapi.Start([]fakeapi.Script{{Name: "storm", Match: prompt, Turns: []fakeapi.Turn{
		{Tool: "Bash", Input: map[string]any{"command": s.script(), "description": "exec storm", "timeout": 600000}},
		{Text: "done"},
	}}}, nil)
	if err != nil {
		return stormResult{}, err
	}
	defer api.Close()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, claude, "-p", prompt, "--dangerously-skip-permissions")
	cmd.Dir = work
	cmd.Env = testutil.ClaudeEnv(home, api.URL(), "sk-ant-costbench-"+s.nonce)
	return runCmd(ctx, cmd, s, filepath.Join(base, "claude.out"), wait)
}

func tail(s string, n int) string {
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}
