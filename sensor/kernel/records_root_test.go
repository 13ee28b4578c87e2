//go:build linux

package kernel

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lineaged/lineaged/sensor"
)

// A forked child that never execs is reported as before: its fork record,
// parked at fork (bpf/lib/forks.h), is sent ahead of the child's first
// record of its own (here a file record and its exit), and ahead of a fork
// by the child. A child that execs is named by its exec alone.
func TestRootParkedForkSentBeforeChildRecords(t *testing.T) {
	h := startSensor(t, Config{})
	agent := fakeAgentPath(t)
	data := dataFile(t)
	m := marker(t)
	// ( ... ) forks a subshell that runs builtins only: it opens data
	// (a redirection), forks a grandchild subshell that exits 6, and
	// exits 5. /bin/true is forked and exec'd.
	script := fmt.Sprintf(`( read x < '%s'; ( exit 6 ); exit 5 ); /bin/true; exec /bin/true %s`, data, m)
	cmd := shellCmd(agent, "-c", script)
	cmd.Run() // exits with the marker's status
	root := uint32(cmd.Process.Pid)
	_, evs := h.untilExecArg(m)

	exitCode := func(code int32) sensor.Event {
		t.Helper()
		ex := find(evs, func(ev sensor.Event) bool { return ev.Exit != nil && ev.Exit.Code == code && inSession(ev, root) })
		if len(ex) != 1 {
			t.Fatalf("exits with code %d in the session: %+v", code, ex)
		}
		return ex[0]
	}
	sub, grand := exitCode(5), exitCode(6)
	index := func(pred func(sensor.Event) bool) int { return slices.IndexFunc(evs, pred) }
	forkOf := func(pid uint32) func(sensor.Event) bool {
		return func(ev sensor.Event) bool { return ev.Fork != nil && ev.Proc.PID == pid }
	}
	subFork := index(forkOf(sub.Proc.PID))
	if subFork < 0 {
		t.Fatalf("no fork record of the subshell %d", sub.Proc.PID)
	}
	if f := evs[subFork]; f.Fork.Parent.PID != root || f.Proc != sub.Proc || !inSession(f, root) {
		t.Errorf("subshell fork record %+v, want parent %d, process %+v", f, root, sub.Proc)
	}
	open := index(func(ev sensor.Event) bool {
		return ev.File != nil && ev.Proc.PID == sub.Proc.PID && ev.File.Path == data
	})
	grandFork := index(forkOf(grand.Proc.PID))
	if open < 0 || grandFork < 0 {
		t.Fatalf("subshell's open at %d, grandchild's fork at %d", open, grandFork)
	}
	if !(subFork < open && subFork < grandFork && grandFork < index(exitOf(grand.Proc.PID))) {
		t.Errorf("order: subshell fork %d, its open %d, grandchild fork %d", subFork, open, grandFork)
	}
	if evs[grandFork].Fork.Parent != sub.Proc {
		t.Errorf("grandchild's parent %+v, want the subshell %+v", evs[grandFork].Fork.Parent, sub.Proc)
	}
	trues := find(evs, func(ev sensor.Event) bool {
		return ev.Exec != nil && ev.Exec.Filename == "/bin/true" && ev.Proc.PID != root
	})
	if len(trues) != 1 || trues[0].Exec.Parent.PID != root {
		t.Fatalf("the forked /bin/true: %+v", trues)
	}
	if f := find(evs, forkOf(trues[0].Proc.PID)); len(f) != 0 {
		t.Errorf("fork record of a child that exec'd: %+v", f)
	}
}

// A process image reports a read-only open of a file once; its repeats are
// counted on its exit. Another process's open of the same file, and every
// write open, are reported.
func TestRootRepeatedReadOnlyOpensCounted(t *testing.T) {
	h := startSensor(t, Config{})
	agent := fakeAgentPath(t)
	data := dataFile(t)
	m := marker(t)
	// Three reads by one image (the subshell, builtins only), then one
	// by another process, then two appends by the first. The agent (the
	// session's root) reads twice: both reported, its file tools run in it.
	script := fmt.Sprintf(`( read x < '%[1]s'; read x < '%[1]s'; read x < '%[1]s'; echo a >> '%[1]s'; echo b >> '%[1]s'; exit 3 ); ( read x < '%[1]s'; exit 4 ); read x < '%[1]s'; read x < '%[1]s'; exec /bin/true %[2]s`, data, m)
	cmd := shellCmd(agent, "-c", script)
	cmd.Run()
	root := uint32(cmd.Process.Pid)
	_, evs := h.untilExecArg(m)

	check := func(code int32, reads, writes int, repeats uint32) {
		t.Helper()
		ex := find(evs, func(ev sensor.Event) bool { return ev.Exit != nil && ev.Exit.Code == code && inSession(ev, root) })
		if len(ex) != 1 {
			t.Fatalf("exits with code %d: %+v", code, ex)
		}
		pid := ex[0].Proc.PID
		var r, w int
		for _, ev := range find(evs, func(ev sensor.Event) bool {
			return ev.File != nil && ev.Proc.PID == pid && ev.File.Path == data
		}) {
			if ev.File.Flags&uint32(os.O_WRONLY|os.O_RDWR) == 0 {
				r++
			} else {
				w++
			}
		}
		if r != reads || w != writes || ex[0].Exit.RepeatedOpens != repeats {
			t.Errorf("process exiting %d: %d read opens, %d write opens, %d repeats; want %d, %d, %d",
				code, r, w, ex[0].Exit.RepeatedOpens, reads, writes, repeats)
		}
	}
	check(3, 1, 2, 2)
	check(4, 1, 0, 0)
	if n := len(find(evs, func(ev sensor.Event) bool {
		return ev.File != nil && ev.Proc.PID == root && ev.File.Path == data
	})); n != 2 {
		t.Errorf("the session root's reads: %d reported, want 2", n)
	}
}

// RepeatOpens reports every open.
func TestRootRepeatOpensReportsEvery(t *testing.T) {
	h := startSensor(t, Config{RepeatOpens: true})
	agent := fakeAgentPath(t)
	data := dataFile(t)
	m := marker(t)
	cmd := shellCmd(agent, "-c", fmt.Sprintf(`( read x < '%[1]s'; read x < '%[1]s'; exit 3 ); exec /bin/true %[2]s`, data, m))
	cmd.Run()
	_, evs := h.untilExecArg(m)
	opens := find(evs, func(ev sensor.Event) bool { return ev.File != nil && ev.File.Path == data })
	if len(opens) != 2 {
		t.Errorf("%d opens of %s, want 2: %+v", len(opens), data, opens)
	}
	ex := find(evs, func(ev sensor.Event) bool { return ev.Exit != nil && ev.Exit.Code == 3 })
	if len(ex) != 1 || ex[0].Exit.RepeatedOpens != 0 {
		t.Errorf("exit: %+v", ex)
	}
}

// A parked child's fork record goes out before its parent's exec or exit
// record: lineage must see the fork while the image it was forked from is
// the current one, and before it forgets the parent. The parent is the
// shell (one thread: children of multi-threaded parents are not parked);
// its subshell child blocks opening a FIFO, so it does nothing reported
// until the parent has exec'd or exited and the test writes the FIFO.
func TestRootParkedChildrenSentBeforeParentExecOrExit(t *testing.T) {
	for _, mode := range []string{"exec", "exit"} {
		t.Run(mode, func(t *testing.T) {
			h := startSensor(t, Config{})
			fifo := filepath.Join(t.TempDir(), "fifo")
			if err := syscall.Mkfifo(fifo, 0o600); err != nil {
				t.Fatal(err)
			}
			m := marker(t)
			end := "exit 0"
			if mode == "exec" {
				end = "exec /bin/true " + m
			}
			cmd := shellCmd(fakeAgentPath(t), "-c", fmt.Sprintf(`( read x < '%s'; exit 5 ) & %s`, fifo, end))
			if err := cmd.Run(); err != nil {
				t.Fatalf("shell: %v", err)
			}
			parent := uint32(cmd.Process.Pid)
			w, err := os.OpenFile(fifo, os.O_WRONLY, 0) // the child is blocked opening it
			if err != nil {
				t.Fatal(err)
			}
			w.WriteString("go\n")
			w.Close()
			evs := h.until(func(ev sensor.Event) bool { return ev.Exit != nil && ev.Exit.Code == 5 && inSession(ev, parent) })
			child := evs[len(evs)-1].Proc.PID
			fork := slices.IndexFunc(evs, func(ev sensor.Event) bool { return ev.Fork != nil && ev.Proc.PID == child })
			open := slices.IndexFunc(evs, func(ev sensor.Event) bool { return ev.File != nil && ev.Proc.PID == child })
			var then int
			if mode == "exec" {
				then = slices.IndexFunc(evs, func(ev sensor.Event) bool {
					return ev.Exec != nil && ev.Proc.PID == parent && slices.Contains(ev.Exec.Argv, m)
				})
			} else {
				then = slices.IndexFunc(evs, exitOf(parent))
			}
			if fork < 0 || then < 0 || open < 0 {
				t.Fatalf("child's fork at %d, its open at %d, parent's %s at %d", fork, open, mode, then)
			}
			// The open is a file record, which may be read ahead of
			// the parent's process record: only the fork's place is
			// promised.
			if fork > then || fork > open {
				t.Errorf("child's fork at %d, parent's %s at %d, child's open at %d: want the fork first", fork, mode, then, open)
			}
			if p := evs[fork].Fork.Parent.PID; p != parent {
				t.Errorf("fork parent %d, want %d", p, parent)
			}
		})
	}
}

// The parent's exec and its children's exits race for the children's
// parked fork records: whichever sends a child's fork record, it comes
// before the child's exit record. Children that exit at once while the
// parent execs, many times over, to meet the race. A kernel that skips
// program runs (7.3: a tracepoint callback preempted on its CPU) loses
// their records before they exist; a round that misses records is
// accepted only when skipped runs were reported.
func TestRootParkedForkBeforeExitWhileParentExecs(t *testing.T) {
	const rounds, children = 25, 8
	h := startSensor(t, Config{})
	agent := fakeAgentPath(t)
	var skipped bool
	for round := range rounds {
		m := marker(t)
		script := strings.Repeat("( exit 7 ) & ", children) + "exec /bin/true " + m
		cmd := shellCmd(agent, "-c", script)
		if err := cmd.Run(); err != nil {
			t.Fatalf("shell: %v", err)
		}
		parent := uint32(cmd.Process.Pid)
		var evs []sensor.Event
		exits, execed := 0, false
		deadline := time.After(guard)
		// Once the exec is in and skipped runs were reported, a missing
		// exit is not coming: a short wait, not the whole guard.
		tick := time.NewTicker(time.Second)
		var execAt time.Time
	collect:
		for !execed || exits < children {
			select {
			case <-tick.C:
				if execed && skipped && time.Since(execAt) > 3*time.Second {
					t.Logf("round %d: %d of %d children's exits; skipped runs were reported", round, exits, children)
					break collect
				}
			case ev := <-h.out:
				h.seen = append(h.seen, ev)
				evs = append(evs, ev)
				switch {
				case ev.Exit != nil && ev.Exit.Code == 7 && inSession(ev, parent):
					exits++
				case ev.Exec != nil && ev.Proc.PID == parent && slices.Contains(ev.Exec.Argv, m):
					execed, execAt = true, time.Now()
				case ev.Loss != nil && ev.Loss.Where == "skipped":
					skipped = true
				}
			case <-deadline:
				if !skipped {
					t.Fatalf("round %d: exec seen %v, %d of %d children's exits within %s, and no skipped runs reported",
						round, execed, exits, children, guard)
				}
				t.Logf("round %d: exec seen %v, %d of %d children's exits; skipped runs were reported", round, execed, exits, children)
				break collect
			}
		}
		tick.Stop()
		for _, ex := range find(evs, func(ev sensor.Event) bool { return ev.Exit != nil && ev.Exit.Code == 7 }) {
			child := ex.Proc.PID
			fork := slices.IndexFunc(evs, func(ev sensor.Event) bool { return ev.Fork != nil && ev.Proc.PID == child })
			exit := slices.IndexFunc(evs, exitOf(child))
			if fork > exit || fork < 0 && !skipped {
				t.Errorf("round %d: child %d: fork record at %d, exit at %d: want the fork first", round, child, fork, exit)
			}
		}
	}
}
