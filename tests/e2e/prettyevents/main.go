// Command prettyevents prints lineaged events (JSON lines on stdin or
// in the named file) one per line, for people: kind, process, agent role and
// tool call, and what the event touched. Used by `make demo`.
//
//	prettyevents [-pid PID] [-quiet] [FILE]
//
// -pid keeps the events of the agent session whose root has that pid;
// -quiet hides routine reads: libraries, locales and certificates every
// program opens, and the agent's own reads outside any tool call.
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/lineaged/lineaged/lineage/event"
)

func main() {
	pid := flag.Uint("pid", 0, "only the agent session whose root process has this pid")
	quiet := flag.Bool("quiet", false, "hide reads of libraries, locales and certificates, and the agent's own reads outside tool calls")
	flag.Parse()
	var in io.Reader = os.Stdin
	if flag.NArg() > 0 {
		f, err := os.Open(flag.Arg(0))
		if err != nil {
			fmt.Fprintln(os.Stderr, "prettyevents:", err)
			os.Exit(1)
		}
		defer f.Close()
		in = f
	}
	var evs []*event.Event
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	w := bufio.NewWriter(os.Stdout)
	defer w.Flush()
	for sc.Scan() {
		var e event.Event
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			fmt.Fprintf(w, "(unparsable line: %v)\n", err)
			continue
		}
		evs = append(evs, &e)
	}
	if err := sc.Err(); err != nil {
		fmt.Fprintln(os.Stderr, "prettyevents:", err)
		os.Exit(1)
	}
	root := ""
	if *pid != 0 {
		for _, e := range evs {
			if e.Kind == event.KindProcessExec && e.Process != nil && e.Process.PID == uint32(*pid) && e.Agent != nil && e.Agent.Role == event.RoleRoot {
				root = e.Agent.RootExecID
				break
			}
		}
		if root == "" {
			fmt.Fprintf(os.Stderr, "prettyevents: no agent session rooted at pid %d\n", *pid)
			os.Exit(1)
		}
	}
	sessions := map[string]string{}
	hidden := 0
	for _, e := range evs {
		if root != "" && (e.Agent == nil || e.Agent.RootExecID != root) {
			continue
		}
		if *quiet && boring(e) {
			hidden++
			continue
		}
		fmt.Fprintln(w, line(e))
		if a := e.Agent; a != nil && a.SessionID != "" {
			sessions[a.RootExecID] = a.Name + " " + a.Version + " session " + a.SessionID
		}
	}
	if hidden > 0 {
		fmt.Fprintf(w, "(%d routine reads not shown: libraries, locales, certificates, the agent's own files)\n", hidden)
	}
	for r, s := range sessions {
		fmt.Fprintf(w, "\n%s (root exec_id %s)\n", s, r)
	}
}

// boring is a read every program makes (libraries, locales, certificates)
// or the agent's own housekeeping read outside any tool call.
func boring(e *event.Event) bool {
	if e.File == nil || e.File.Mode != event.ModeRead {
		return false
	}
	if a := e.Agent; a != nil && a.Role == event.RoleRoot && a.ToolUse == nil {
		return true
	}
	p := e.File.Path
	for _, pre := range []string{"/usr/lib/", "/lib/", "/lib64/", "/usr/lib64/", "/usr/share/locale/", "/etc/ld.so.", "/etc/locale.alias", "/usr/share/ca-certificates/", "/etc/ssl/", "/usr/share/zoneinfo/", "/proc/", "/sys/", "/dev/"} {
		if strings.HasPrefix(p, pre) {
			return true
		}
	}
	return false
}

func line(e *event.Event) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %-13s", e.Time.Format("15:04:05.000"), e.Kind)
	if p := e.Process; p != nil {
		fmt.Fprintf(&b, " pid=%-6d %-10s", p.PID, filepath.Base(p.Exe))
	}
	if a := e.Agent; a != nil {
		fmt.Fprintf(&b, " [%s", a.Role)
		if a.ToolUse != nil {
			fmt.Fprintf(&b, " %s %s", a.ToolUse.Name, a.ToolUse.ID)
		}
		b.WriteString("]")
	}
	switch {
	case e.File != nil:
		fmt.Fprintf(&b, " %s %s", e.File.Mode, e.File.Path)
		if e.File.NewPath != "" {
			fmt.Fprintf(&b, " -> %s", e.File.NewPath)
		}
	case e.Net != nil:
		fmt.Fprintf(&b, " %s %s:%d", e.Net.Protocol, e.Net.DstIP, e.Net.DstPort)
	case e.Exit != nil:
		fmt.Fprintf(&b, " code=%d signal=%d", e.Exit.Code, e.Exit.Signal)
	case e.Kind == event.KindProcessExec && e.Process != nil:
		argv := strings.Join(e.Process.Argv, " ")
		if len(argv) > 100 {
			argv = argv[:100] + "..."
		}
		fmt.Fprintf(&b, " %q", argv)
		if bin := e.Process.Binary; bin != nil && len(bin.SHA256) >= 12 {
			fmt.Fprintf(&b, " sha256=%s… %s", bin.SHA256[:12], bin.Verdict)
		}
	}
	if e.Kind == event.KindProcessExec && len(e.Ancestry) > 0 {
		var chain []string
		for _, a := range e.Ancestry {
			chain = append(chain, fmt.Sprintf("%s(%d)", filepath.Base(a.Exe), a.PID))
		}
		fmt.Fprintf(&b, "\n%28s ancestry: %s", "", strings.Join(chain, " < "))
	}
	return b.String()
}
