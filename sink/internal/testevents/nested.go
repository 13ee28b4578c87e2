package testevents

import (
	"strings"

	"github.com/lineaged/lineaged/lineage/event"
)

// NestedShells returns the process.exec at the bottom of levels nested
// `sh -c` processes, each started with a 4 KiB argument of control bytes
// (escaped six bytes to one in JSON): the event issue 14 found to encode to
// about 1.5 MB with 50 levels and whole ancestors, over Kafka's 1 MiB
// message limit.
func NestedShells(seq uint64, levels int) *event.Event {
	ev := New(event.KindProcessExec, seq, "6f1c2d4e-0000-4000-8000-00000000abcd")
	ctl := make([]byte, 4096)
	for i := range ctl {
		ctl[i] = byte(1 + i%30)
	}
	arg := string(ctl)
	anc := make([]event.Process, 0, levels+1)
	pid := uint32(10000 + levels)
	for range levels {
		p := Proc(pid, pid-1, "/usr/bin/dash", "sh", "-c", arg)
		p.Cwd = "/home/dev/" + strings.Repeat("deep/", 100)
		anc = append(anc, p)
		pid--
	}
	anc = append(anc, ev.Ancestry[len(ev.Ancestry)-1])
	ev.Ancestry = anc
	p := Proc(10000+uint32(levels)+1, 10000+uint32(levels), "/usr/bin/dash", "sh", "-c", arg)
	ev.Process = &p
	return ev
}
