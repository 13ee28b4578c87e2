package sessions

import (
	"bufio"
	"fmt"
	"io"
	"path"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/lineaged/lineaged/lineage/event"
)

// TextOptions shape the terminal tree.
type TextOptions struct {
	// Color adds ANSI colours (only for a terminal).
	Color bool
	// Width bounds argv and command lines; 0: 120.
	Width int
}

// ANSI styles.
const (
	ansiReset  = "\x1b[0m"
	ansiBold   = "\x1b[1m"
	ansiDim    = "\x1b[2m"
	ansiRed    = "\x1b[31m"
	ansiGreen  = "\x1b[32m"
	ansiYellow = "\x1b[33m"
	ansiCyan   = "\x1b[36m"
)

type textWriter struct {
	w     *bufio.Writer
	color bool
	width int
}

func (t *textWriter) style(s, code string) string {
	if !t.color || s == "" {
		return s
	}
	return code + s + ansiReset
}

func (t *textWriter) line(prefix string, parts ...string) {
	t.w.WriteString(prefix)
	t.w.WriteString(strings.Join(nonEmpty(parts), "  "))
	t.w.WriteByte('\n')
}

func nonEmpty(parts []string) []string {
	out := parts[:0:0]
	for _, p := range parts {
		if p != "" {
			out = append(out, p)
		}
	}
	return out
}

// WriteText writes r as a tree for a person at a terminal.
func WriteText(w io.Writer, r *Report, o TextOptions) error {
	t := &textWriter{w: bufio.NewWriter(w), color: o.Color, width: o.Width}
	if t.width <= 0 {
		t.width = 120
	}
	if len(r.Sessions) == 0 {
		fmt.Fprintf(t.w, "no agent session in %d events\n", r.Events)
	}
	for i, s := range r.Sessions {
		if i > 0 {
			t.w.WriteByte('\n')
		}
		t.session(s)
	}
	return t.w.Flush()
}

func clock(ts time.Time) string {
	if ts.IsZero() {
		return "?"
	}
	return ts.UTC().Format("15:04:05.000")
}

func (t *textWriter) session(s *Session) {
	id := s.SessionID
	if id == "" {
		id = "(no session id)"
	}
	t.line("", t.style("session "+id, ansiBold), t.style(strings.TrimSpace(s.Agent+" "+s.Version), ansiCyan))
	who := s.User
	if s.Human != "" {
		who += " (" + s.Human + ")"
	}
	t.line("  ", "root exec "+short(s.RootExecID, 16), label("host", s.Host), label("user", who))
	if s.ParentRootExecID != "" {
		t.line("  ", "nested: started by a tool call of the session with root exec "+short(s.ParentRootExecID, 16))
	}
	span := fmt.Sprintf("%s UTC %s → %s (%s", s.Start.UTC().Format("2006-01-02"), clock(s.Start), clock(s.End), dur(s.End.Sub(s.Start)))
	if s.EndReason != "" {
		span += ", " + endReason(s.EndReason)
	}
	t.line("  ", span+")")
	if c := s.Counts; c != nil {
		denied := ""
		if c.DeniedToolCalls > 0 {
			denied = fmt.Sprintf(" (%d denied)", c.DeniedToolCalls)
		}
		t.line("  ", fmt.Sprintf("counts: %s, %s written, %s, %s%s, %s", plural(c.Processes, "process"), plural(c.FilesWritten, "file"),
			plural(c.Connections, "connection"), plural(c.ToolCalls, "tool call"), denied, t.alertCount(c.Alerts)))
	}
	for i, m := range s.Posture {
		what := "compliant"
		col := ansiGreen
		if !m.Compliant {
			what, col = "not compliant", ansiYellow
			if len(m.Failed) > 0 {
				what += " (failed: " + strings.Join(m.Failed, ", ") + ")"
			}
		}
		when := "at start"
		if i > 0 {
			when = "from " + clock(m.Time)
		}
		t.line("  ", "posture "+when+": "+t.style(what, col))
	}
	if p := s.Root; p != nil {
		t.line("  ", "agent: "+t.procHead(p))
	}
	for _, a := range s.Alerts {
		t.alert("  ", a)
	}
	for i, c := range s.ToolCalls {
		t.w.WriteByte('\n')
		t.call(i+1, c)
	}
	if len(s.Other) > 0 {
		t.w.WriteByte('\n')
		t.line("  ", t.style("not tied to a tool call", ansiBold))
		t.procs("    ", s.Other)
	}
	if p := s.Root; p != nil && (len(p.Files) > 0 || len(p.Conns) > 0) {
		t.w.WriteByte('\n')
		t.line("  ", t.style("the agent itself, outside its tool calls", ansiBold))
		t.self("    ", p)
	}
}

func label(k, v string) string {
	if v == "" {
		return ""
	}
	return k + " " + v
}

func endReason(r string) string {
	switch r {
	case event.SessionEndExit:
		return "the agent exited"
	case event.SessionEndSensorStop:
		return "still running when the sensor stopped"
	}
	return r
}

func (t *textWriter) alertCount(n uint64) string {
	s := plural(n, "alert")
	if n > 0 {
		return t.style(s, ansiRed)
	}
	return s
}

func plural(n uint64, what string) string {
	if n == 1 {
		return "1 " + what
	}
	if strings.HasSuffix(what, "s") {
		return fmt.Sprintf("%d %ses", n, what)
	}
	return fmt.Sprintf("%d %ss", n, what)
}

func dur(d time.Duration) string {
	switch {
	case d < 0:
		return "?"
	case d < time.Second:
		return fmt.Sprintf("%d ms", d.Milliseconds())
	case d < time.Minute:
		return fmt.Sprintf("%.1f s", d.Seconds())
	}
	return d.Round(time.Second).String()
}

func (t *textWriter) call(n int, c *ToolCall) {
	head := []string{t.style(fmt.Sprintf("tool call %d", n), ansiBold), t.style(c.Name, ansiCyan), c.ID, clock(c.Time)}
	switch {
	case c.Decision == event.DecisionDeny:
		head = append(head, t.style("DENIED by "+c.Rule, ansiRed))
	case c.Outcome != "":
		o := c.Outcome
		if c.DurationMS != nil {
			o += fmt.Sprintf(" in %d ms", *c.DurationMS)
		}
		head = append(head, o)
	}
	if c.Attribution != "" && c.Attribution != event.AttributionExact {
		head = append(head, t.style("("+c.Attribution+")", ansiDim))
	}
	t.line("  ", head...)
	if c.Input != "" {
		t.line("    ", "$ "+t.clip(oneLine(c.Input)))
	}
	for _, a := range c.Alerts {
		t.alert("    ", a)
	}
	for _, l := range Fold(c.Files) {
		t.fileLine("    agent ", l)
	}
	t.procs("    ", c.Procs)
	if len(c.Procs) == 0 && len(c.Files) == 0 && c.Decision != event.DecisionDeny {
		t.line("    ", t.style("(no process or file seen)", ansiDim))
	}
}

// signature is what makes sibling processes alike for folding: the same
// program, arguments and hash, the same alerts and alike children.
func signature(p *Proc) string {
	var b strings.Builder
	b.WriteString(p.Exe)
	b.WriteByte(0)
	b.WriteString(p.SHA256)
	b.WriteByte(0)
	b.WriteString(strings.Join(p.Argv, "\x00"))
	for _, a := range p.Alerts {
		b.WriteString("\x01" + a.Rule)
	}
	for _, c := range p.Children {
		b.WriteString("\x02" + signature(c))
	}
	return b.String()
}

// minSiblingFold is the run of alike sibling processes from which all but
// the first are folded into one line.
const minSiblingFold = 3

func (t *textWriter) procs(prefix string, all []*Proc) {
	type run struct {
		p    *Proc
		more []*Proc
	}
	var ps []run
	for i := 0; i < len(all); {
		j := i + 1
		sig := signature(all[i])
		for j < len(all) && signature(all[j]) == sig {
			j++
		}
		if j-i >= minSiblingFold {
			ps = append(ps, run{all[i], all[i+1 : j]})
		} else {
			for k := i; k < j; k++ {
				ps = append(ps, run{p: all[k]})
			}
		}
		i = j
	}
	for i, r := range ps {
		p := r.p
		last := i == len(ps)-1
		branch, cont := "├─ ", "│  "
		if last {
			branch, cont = "└─ ", "   "
		}
		t.line(prefix+branch, t.procHead(p))
		if len(p.Argv) > 0 {
			t.line(prefix+cont+"   ", t.style(t.clip(oneLine(strings.Join(p.Argv, " "))), ansiDim))
		}
		t.activity(prefix+cont+"   ", p)
		t.procs(prefix+cont, p.Children)
		if n := len(r.more); n > 0 {
			alerts := 0
			for _, m := range r.more {
				alerts += len(m.Alerts)
			}
			s := fmt.Sprintf("… and %d more like it (pids %s)", n, pids(r.more))
			if alerts > 0 {
				s += t.style(fmt.Sprintf(", %d more alerts", alerts), ansiRed)
			}
			t.line(prefix+cont+"   ", t.style(s, ansiDim))
		}
	}
}

// pids lists the pids of ps, the first and last few of a long list.
func pids(ps []*Proc) string {
	var b []string
	for i, p := range ps {
		if len(ps) > 8 && i == 3 {
			b = append(b, "…")
		}
		if len(ps) > 8 && i >= 3 && i < len(ps)-3 {
			continue
		}
		b = append(b, fmt.Sprint(p.PID))
	}
	return strings.Join(b, ", ")
}

func (t *textWriter) activity(prefix string, p *Proc) {
	for _, a := range p.Alerts {
		t.alert(prefix, a)
	}
	for _, l := range Fold(p.Files) {
		t.fileLine(prefix, l)
	}
	for _, c := range p.Conns {
		s := fmt.Sprintf("connect %s %s", c.Protocol, hostPort(c.DstIP, c.DstPort))
		if c.Failed {
			s += " (failed)"
		}
		t.line(prefix, t.style(s, ansiYellow))
	}
}

func hostPort(ip string, port uint16) string {
	if strings.Contains(ip, ":") {
		return fmt.Sprintf("[%s]:%d", ip, port)
	}
	return fmt.Sprintf("%s:%d", ip, port)
}

func (t *textWriter) procHead(p *Proc) string {
	name := path.Base(p.Exe)
	if p.Exe == "" {
		name = "?"
	}
	parts := []string{t.style(name, ansiBold), p.Exe, fmt.Sprintf("pid %d", p.PID)}
	if p.SHA256 != "" {
		parts = append(parts, "sha256 "+short(p.SHA256, 12))
	}
	if p.Verdict != "" {
		parts = append(parts, t.verdict(p.Verdict))
	}
	if p.Role != "" && p.Role != event.RoleTool && p.Role != event.RoleDescendant {
		parts = append(parts, "["+p.Role+"]")
	}
	if x := p.Exit; x != nil {
		if x.Signal != 0 {
			parts = append(parts, fmt.Sprintf("killed by signal %d", x.Signal))
		} else {
			parts = append(parts, fmt.Sprintf("exit %d", x.Code))
		}
	}
	return strings.Join(parts, "  ")
}

func (t *textWriter) verdict(v string) string {
	switch v {
	case event.VerdictPackageVerified, event.VerdictSignedTrusted:
		return t.style(v, ansiGreen)
	case event.VerdictPackageModified, event.VerdictError, event.VerdictSignedUntrusted:
		return t.style(v, ansiRed)
	}
	return t.style(v, ansiYellow)
}

func (t *textWriter) fileLine(prefix string, l FileLine) {
	op := l.Op
	col := ""
	if op != OpRead { // every change to a file stands out
		col = ansiYellow
	}
	var s string
	switch {
	case l.Folded():
		s = fmt.Sprintf("%s ×%d in %s/ (%s)", op, l.Count, l.Dir, examples(l.Paths))
	case l.NewPath != "": // rename, link, symlink (to its target)
		s = fmt.Sprintf("%s %s → %s", op, l.Path, l.NewPath)
	default:
		s = op + " " + l.Path
		if l.Count > 1 {
			s += fmt.Sprintf(" ×%d", l.Count)
		}
	}
	s = t.clip(s)
	if col != "" {
		s = t.style(s, col)
	}
	t.line(prefix, s)
}

// examples names the first paths of a fold by their base names.
func examples(paths []string) string {
	const n = 3
	var b []string
	for i, p := range paths {
		if i == n {
			b = append(b, fmt.Sprintf("+%d more", len(paths)-n))
			break
		}
		b = append(b, path.Base(p))
	}
	return strings.Join(b, ", ")
}

func (t *textWriter) alert(prefix string, a *Alert) {
	what := "ALERT"
	if a.Kind == event.KindPolicyAction {
		what = "ACTION " + a.Action
		if a.Result != "" {
			what += " " + a.Result
		}
	}
	s := fmt.Sprintf("! %s %s %s %s", what, a.Severity, a.Rule, clock(a.Time))
	if a.On != "" {
		s += " on " + a.On
	}
	if a.Message != "" {
		s += ": " + oneLine(a.Message)
	}
	t.line(prefix, t.style(t.clip(s), ansiRed))
}

func (t *textWriter) clip(s string) string {
	if utf8.RuneCountInString(s) <= t.width {
		return s
	}
	r := []rune(s)
	return string(r[:t.width-1]) + "…"
}

func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

func short(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}

// self shows the agent's own activity outside its tool calls: what it
// changed and where it connected; its reads (its configuration, libraries,
// /proc) only as a count, listed in --json and --html.
func (t *textWriter) self(prefix string, p *Proc) {
	var changed []FileOp
	reads := 0
	paths := make(map[string]bool)
	for _, f := range p.Files {
		if f.Op == OpRead {
			reads++
			paths[f.Path] = true
			continue
		}
		changed = append(changed, f)
	}
	for _, a := range p.Alerts {
		t.alert(prefix, a)
	}
	if reads > 0 {
		t.line(prefix, t.style(fmt.Sprintf("read %d times, %d paths (listed in --json and --html)", reads, len(paths)), ansiDim))
	}
	for _, c := range p.Conns {
		s := fmt.Sprintf("connect %s %s", c.Protocol, hostPort(c.DstIP, c.DstPort))
		if c.Failed {
			s += " (failed)"
		}
		t.line(prefix, t.style(s, ansiYellow))
	}
	lines := Fold(changed)
	for i, l := range lines {
		if i == maxSelfLines {
			t.line(prefix, t.style(fmt.Sprintf("… %d more lines of file changes (listed in --json and --html)", len(lines)-i), ansiDim))
			break
		}
		t.fileLine(prefix, l)
	}
}

// maxSelfLines bounds the lines of the agent's own file changes in the
// tree: its configuration and state files, rarely what a reader is after.
const maxSelfLines = 12
