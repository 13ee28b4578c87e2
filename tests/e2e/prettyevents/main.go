// Command prettyevents prints lineaged/v1 events (JSON lines on stdin or
// in the named file) one per line, for people: kind, process, agent role and
// tool call, and what the event touched. Used by `make demo`.
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/lineaged/lineaged/lineage/event"
)

func main() {
	var in io.Reader = os.Stdin
	if len(os.Args) > 1 {
		f, err := os.Open(os.Args[1])
		if err != nil {
			fmt.Fprintln(os.Stderr, "prettyevents:", err)
			os.Exit(1)
		}
		defer f.Close()
		in = f
	}
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	w := bufio.NewWriter(os.Stdout)
	defer w.Flush()
	sessions := map[string]string{}
	for sc.Scan() {
		var e event.Event
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			fmt.Fprintf(w, "(unparsable line: %v)\n", err)
			continue
		}
		fmt.Fprintln(w, line(&e))
		if a := e.Agent; a != nil && a.SessionID != "" {
			sessions[a.RootExecID] = a.Name + " " + a.Version + " session " + a.SessionID
		}
	}
	if err := sc.Err(); err != nil {
		fmt.Fprintln(os.Stderr, "prettyevents:", err)
		os.Exit(1)
	}
	for root, s := range sessions {
		fmt.Fprintf(w, "\n%s (root exec_id %s)\n", s, root)
	}
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
