package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/spf13/pflag"

	"github.com/lineaged/lineaged/report/sessions"
)

// cmdSessions is `lineaged sessions FILE...|-`: the agent sessions of
// lineaged's native output (docs/sessions.md) as a terminal tree, JSON or
// one HTML page.
func cmdSessions(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := pflag.NewFlagSet("sessions", pflag.ContinueOnError)
	fs.SetOutput(stderr)
	asJSON := fs.Bool("json", false, "write the sessions as JSON, for scripts")
	htmlOut := fs.String("html", "", "write one self-contained HTML page to this file")
	color := fs.String("color", "auto", "colours in the terminal tree: auto (on a terminal), always or never")
	only := fs.String("session", "", "show only the session with this session id or root exec id (a prefix is enough)")
	width := fs.Int("width", 120, "cut command lines and paths in the terminal tree at this many characters")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: lineaged sessions [flags] FILE... (- reads stdin)\n\n"+
			"Reads lineaged's native output (lineaged/v2 or v1 JSON lines) or captures (docs/capture.md)\nand shows every agent "+
			"session: its tool calls, the processes each started, their files, connections and alerts.\n\nFlags:\n%s", fs.FlagUsages())
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return err
		}
		return &exitError{exitUsage, err}
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return &exitError{exitUsage, errors.New("sessions: name a file of events, or - for stdin")}
	}
	var useColor bool
	switch *color {
	case "auto":
		useColor = isTerminal(stdout) && os.Getenv("NO_COLOR") == ""
	case "always":
		useColor = true
	case "never":
	default:
		return &exitError{exitUsage, fmt.Errorf("sessions: --color %q: want auto, always or never", *color)}
	}
	b := sessions.NewBuilder()
	for _, name := range fs.Args() {
		if err := readSessionEvents(name, stdin, b); err != nil {
			return err
		}
	}
	if n := b.Duplicates(); n > 0 {
		fmt.Fprintf(stderr, "lineaged: sessions: %d events seen twice (same event_id) counted once\n", n)
	}
	r := b.Report()
	if *only != "" {
		if r = r.Only(*only); r == nil {
			return fmt.Errorf("sessions: no session %q in %d events", *only, b.Events())
		}
	}
	if *htmlOut != "" {
		if err := writeHTMLFile(*htmlOut, r); err != nil {
			return err
		}
		if !*asJSON {
			return nil
		}
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(r)
	}
	return sessions.WriteText(stdout, r, sessions.TextOptions{Color: useColor, Width: *width})
}

func readSessionEvents(name string, stdin io.Reader, b *sessions.Builder) error {
	if name == "-" {
		return sessions.Read(stdin, "stdin", b.Add)
	}
	f, err := os.Open(name)
	if err != nil {
		return err
	}
	defer f.Close()
	if isCapture(f) {
		return sessionsFromCapture(name, b, os.Stderr)
	}
	return sessions.Read(f, name, b.Add)
}

// writeHTMLFile writes the page 0600, through a temporary file renamed
// into place.
func writeHTMLFile(name string, r *sessions.Report) error {
	tmp := name + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if err := sessions.WriteHTML(f, r); err != nil {
		f.Close()
		os.Remove(tmp)
		return fmt.Errorf("writing %s: %w", name, err)
	}
	if err := f.Close(); err != nil {
		os.Remove(tmp)
		return err
	}
	return os.Rename(tmp, name)
}

// isTerminal reports whether w is a character device (a terminal).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
