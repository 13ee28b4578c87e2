package sessions

import (
	_ "embed"
	"fmt"
	"html/template"
	"io"
	"path"
	"strings"
	"time"

	"github.com/lineaged/lineaged/lineage/event"
)

//go:embed page.html.tmpl
var pageSource string

var page = template.Must(template.New("page").Funcs(template.FuncMap{
	"clock":     clock,
	"date":      func(t time.Time) string { return t.UTC().Format("2006-01-02") },
	"iso":       func(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) },
	"dur":       func(a, b time.Time) string { return dur(b.Sub(a)) },
	"short":     short,
	"base":      path.Base,
	"join":      strings.Join,
	"argv":      func(a []string) string { return strings.Join(a, " ") },
	"fold":      Fold,
	"plus1":     func(i int) int { return i + 1 },
	"endReason": endReason,
	"hostPort":  hostPort,
	"verdictClass": func(v string) string {
		switch v {
		case event.VerdictPackageVerified, event.VerdictSignedTrusted:
			return "good"
		case event.VerdictPackageModified, event.VerdictError, event.VerdictSignedUntrusted:
			return "bad"
		case "":
			return "none"
		}
		return "warn"
	},
	"opClass": func(op string) string {
		if op == OpRead {
			return "read"
		}
		return "write"
	},
	// pct places t on the session's timeline, in percent.
	"pct": func(s *Session, t time.Time) string {
		span := s.End.Sub(s.Start)
		if span <= 0 {
			return "0"
		}
		p := float64(t.Sub(s.Start)) / float64(span) * 100
		p = max(0, min(100, p))
		return fmt.Sprintf("%.2f", p)
	},
	"search": procSearch,
	"callSearch": func(c *ToolCall) string {
		parts := []string{c.Name, c.ID, c.Input}
		for _, f := range c.Files {
			parts = append(parts, f.Path, f.NewPath)
		}
		return strings.ToLower(strings.Join(parts, " "))
	},
	"lineSearch": func(l FileLine) string {
		return strings.ToLower(strings.Join(append([]string{l.Path, l.NewPath}, l.Paths...), " "))
	},
	"plural": plural,
	"u64":    func(n int) uint64 { return uint64(n) },
	"denied": func(c *ToolCall) bool { return c.Decision == event.DecisionDeny },
	"action": func(a *Alert) bool { return a.Kind == event.KindPolicyAction },
	"ncalls": func(s *Session) int { return len(s.ToolCalls) },
	"exitText": func(x *Exit) string {
		if x.Signal != 0 {
			return fmt.Sprintf("signal %d", x.Signal)
		}
		return fmt.Sprintf("exit %d", x.Code)
	},
	"pcount":    func(s *Session) int { return len(s.procs) },
	"allAlerts": allAlerts,
	"runs":      runs,
	"reads": func(fs []FileOp) []FileOp {
		var out []FileOp
		for _, f := range fs {
			if f.Op == OpRead {
				out = append(out, f)
			}
		}
		return out
	},
	"changes": func(fs []FileOp) []FileOp {
		var out []FileOp
		for _, f := range fs {
			if f.Op != OpRead {
				out = append(out, f)
			}
		}
		return out
	},
}).Parse(pageSource))

// procSearch is what the page's search matches a process on: its exe,
// argv, hash and every path and destination it touched.
func procSearch(p *Proc) string {
	parts := []string{p.Exe, p.SHA256, strings.Join(p.Argv, " "), p.ExecID}
	for _, f := range p.Files {
		parts = append(parts, f.Path, f.NewPath)
	}
	for _, c := range p.Conns {
		parts = append(parts, hostPort(c.DstIP, c.DstPort))
	}
	return strings.ToLower(strings.Join(parts, " "))
}

// WriteHTML writes r as one self-contained page: no script, style, font or
// image from anywhere else.
func WriteHTML(w io.Writer, r *Report) error {
	return page.Execute(w, struct {
		*Report
		Generated string
	}{r, ""})
}

// allAlerts is every alert of s, wherever it was raised, for its timeline.
func allAlerts(s *Session) []*Alert {
	out := append([]*Alert(nil), s.Alerts...)
	var walk func([]*Proc)
	walk = func(ps []*Proc) {
		for _, p := range ps {
			out = append(out, p.Alerts...)
			walk(p.Children)
		}
	}
	for _, c := range s.ToolCalls {
		out = append(out, c.Alerts...)
		walk(c.Procs)
	}
	walk(s.Other)
	if s.Root != nil {
		out = append(out, s.Root.Alerts...)
	}
	return out
}

// procRun is a process and the alike siblings that follow it (signature),
// folded under it on the page.
type procRun struct {
	First  *Proc
	More   []*Proc
	Alerts int // of More
}

// runs groups ps into runs of minSiblingFold or more alike processes.
func runs(ps []*Proc) []procRun {
	var out []procRun
	for i := 0; i < len(ps); {
		j := i + 1
		sig := signature(ps[i])
		for j < len(ps) && signature(ps[j]) == sig {
			j++
		}
		if j-i < minSiblingFold {
			for k := i; k < j; k++ {
				out = append(out, procRun{First: ps[k]})
			}
		} else {
			r := procRun{First: ps[i], More: ps[i+1 : j]}
			for _, m := range r.More {
				r.Alerts += len(m.Alerts)
			}
			out = append(out, r)
		}
		i = j
	}
	return out
}
