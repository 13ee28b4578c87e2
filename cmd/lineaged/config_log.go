package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/lineaged/lineaged/lineage/policy/redact"
)

// newConfigLogger is the sensor's log on w: JSON for journald and log
// shippers when w is not a terminal, text on one; every message and
// attribute scrubbed of the configuration's secrets (the SASL password)
// and of what the redaction rules mask in events (redact.patterns and the
// built-in rules), so an argv or an error quoting a secret never reaches
// the log.
func newConfigLogger(cfg *Config, w io.Writer) *slog.Logger {
	base := newLogger(cfg.Log.Level, w)
	s := &scrubber{}
	// Validated with the configuration; a Redactor that does not build
	// leaves the literal secrets scrubbed all the same.
	s.red, _ = redact.New(redact.Config{Patterns: cfg.Redact.Patterns, KeepPrompt: true})
	if p := cfg.Kafka.SASL.Password; len(p) >= 4 {
		s.literals = append(s.literals, p)
	}
	return slog.New(&scrubHandler{h: base.Handler(), s: s})
}

// isTTY says whether w is a terminal (not merely a character device,
// as /dev/null is).
func isTTY(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

// scrubber masks secrets in log text.
type scrubber struct {
	literals []string
	red      *redact.Redactor
}

func (s *scrubber) str(v string) string {
	for _, l := range s.literals {
		v = strings.ReplaceAll(v, l, redact.Mask)
	}
	if s.red != nil {
		v = s.red.String(v)
	}
	return v
}

func (s *scrubber) attr(a slog.Attr) slog.Attr {
	v := a.Value.Resolve()
	switch v.Kind() {
	case slog.KindString:
		return slog.String(a.Key, s.str(v.String()))
	case slog.KindGroup:
		g := v.Group()
		out := make([]any, len(g))
		for i, ga := range g {
			out[i] = s.attr(ga)
		}
		return slog.Group(a.Key, out...)
	case slog.KindAny:
		switch x := v.Any().(type) {
		case error:
			return slog.String(a.Key, s.str(x.Error()))
		case []string:
			out := x
			if s.red != nil {
				out = s.red.Argv(x)
			}
			for i := range out {
				out[i] = s.str(out[i])
			}
			return slog.Any(a.Key, out)
		default:
			// Anything else is written as its text would be; where that
			// text holds a secret, the scrubbed text is written instead.
			txt := fmt.Sprint(x)
			if clean := s.str(txt); clean != txt {
				return slog.String(a.Key, clean)
			}
		}
	}
	return slog.Attr{Key: a.Key, Value: v}
}

// scrubHandler passes records to h with their text scrubbed.
type scrubHandler struct {
	h slog.Handler
	s *scrubber
}

func (h *scrubHandler) Enabled(ctx context.Context, l slog.Level) bool { return h.h.Enabled(ctx, l) }

func (h *scrubHandler) Handle(ctx context.Context, r slog.Record) error {
	out := slog.NewRecord(r.Time, r.Level, h.s.str(r.Message), r.PC)
	r.Attrs(func(a slog.Attr) bool {
		out.AddAttrs(h.s.attr(a))
		return true
	})
	return h.h.Handle(ctx, out)
}

func (h *scrubHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	clean := make([]slog.Attr, len(attrs))
	for i, a := range attrs {
		clean[i] = h.s.attr(a)
	}
	return &scrubHandler{h: h.h.WithAttrs(clean), s: h.s}
}

func (h *scrubHandler) WithGroup(name string) slog.Handler {
	return &scrubHandler{h: h.h.WithGroup(name), s: h.s}
}
