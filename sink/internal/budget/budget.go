// Package budget keeps every encoded event within a total size: an event
// whose encoding is over the budget is encoded again from a trimmed copy,
// step by step (ancestry argv and paths first, then the process's own argv,
// then the middle of the ancestry), and marked with the parts that were cut.
// Both encoders (sink/native, sink/ocsf) use it, so no event, whatever its
// argv, exceeds the Kafka message limit or the file line budget.
package budget

import (
	"errors"
	"fmt"
	"strconv"

	"github.com/lineaged/lineaged/lineage/event"
	"github.com/lineaged/lineaged/sink/internal/jsonw"
)

// Parts the size budget can cut, as written in the truncated marker.
const (
	PartArgv     = "argv"     // argv of the process or of ancestors
	PartPath     = "path"     // exe, cwd, binary and file paths
	PartAncestry = "ancestry" // ancestors between the eighth and the last
	PartText     = "text"     // alert messages, tool inputs, posture details
)

// MinBytes is the smallest budget accepted: the most trimmed form of any
// event fits in it.
const MinBytes = 64 << 10

// ErrTooLarge is returned when even the most trimmed encoding is over the
// budget.
var ErrTooLarge = errors.New("event over the size budget even when trimmed")

// Level is one trimming step: the argv bounds the encoder applies at it and
// the bounds Trim applies to the event copy.
type Level struct {
	MaxArgs, MaxArgBytes, MaxArgvBytes int
	PathBytes                          int
	TextBytes                          int // 0: text kept
	KeepAncestors                      int // 0: every ancestor kept
}

// Levels are the steps, mildest first.
var Levels = []Level{
	{MaxArgs: 256, MaxArgBytes: 1024, MaxArgvBytes: 4096, PathBytes: 1024},
	{MaxArgs: 32, MaxArgBytes: 256, MaxArgvBytes: 512, PathBytes: 256, TextBytes: 4096},
	{MaxArgs: 8, MaxArgBytes: 64, MaxArgvBytes: 128, PathBytes: 128, TextBytes: 512, KeepAncestors: 8},
}

// EncodeFunc encodes ev after dst; lv is nil for the untrimmed encoding.
type EncodeFunc func(dst []byte, ev *event.Event, lv *Level) ([]byte, error)

// Fit encodes ev after dst within max bytes (0: no budget). tail is the
// number of closing bytes at the end of the encoding before which the
// "truncated" marker is written (1 for a top-level field, 3 for OCSF's
// unmapped.lineaged). The encoding that fits is returned; ErrTooLarge
// (wrapped with the sizes) when none does.
func Fit(dst []byte, ev *event.Event, max, tail int, enc EncodeFunc) ([]byte, error) {
	start := len(dst)
	out, err := enc(dst, ev, nil)
	if err != nil || max <= 0 || len(out)-start <= max {
		return out, err
	}
	full := len(out) - start
	for i := range Levels {
		lv := &Levels[i]
		cut, parts := Trim(ev, lv)
		out, err = enc(out[:start], cut, lv)
		if err != nil {
			return out[:start], err
		}
		out = Mark(out, start, tail, parts)
		if len(out)-start <= max {
			return out, nil
		}
	}
	return out[:start], fmt.Errorf("%w: %s %s encodes to %d bytes, %d when trimmed, budget %d",
		ErrTooLarge, ev.Kind, ev.EventID, full, len(out)-start, max)
}

// Mark inserts `"truncated":[parts...]` before the last tail bytes of the
// encoding that starts at start.
func Mark(out []byte, start, tail int, parts []string) []byte {
	if len(out)-start < tail+1 {
		return out
	}
	at := len(out) - tail
	end := string(out[at:])
	out = out[:at]
	if out[len(out)-1] != '{' {
		out = append(out, ',')
	}
	out = append(out, `"truncated":[`...)
	for i, p := range parts {
		if i > 0 {
			out = append(out, ',')
		}
		out = strconv.AppendQuote(out, p) // parts are ASCII constants
	}
	out = append(out, ']')
	return append(out, end...)
}

// Trim returns a copy of ev with the paths, texts and ancestry bounded by
// lv, and the parts the level cuts (argv is cut by the encoder with lv's
// argv bounds; it is named when some argv is over them). ev is untouched.
func Trim(ev *event.Event, lv *Level) (*event.Event, []string) {
	c := *ev
	var t trimmer
	t.lv = lv
	if ev.Process != nil {
		p := t.process(ev.Process)
		c.Process = &p
	}
	anc := ev.Ancestry
	if k := lv.KeepAncestors; k > 0 && len(anc) > k+1 {
		// The nearest ancestors and the last (pid 1 or the reaper).
		kept := make([]event.Process, 0, k+1)
		kept = append(kept, anc[:k]...)
		anc = append(kept, anc[len(anc)-1])
		t.add(PartAncestry)
	}
	if len(anc) > 0 {
		c.Ancestry = make([]event.Process, len(anc))
		for i := range anc {
			c.Ancestry[i] = t.process(&anc[i])
		}
	}
	if f := ev.File; f != nil {
		fc := *f
		fc.Path = t.path(f.Path)
		fc.NewPath = t.path(f.NewPath)
		if fc.Path != f.Path || fc.NewPath != f.NewPath {
			fc.PathTruncated = true
		}
		c.File = &fc
	}
	if lv.TextBytes > 0 {
		if a := ev.Alert; a != nil {
			ac := *a
			ac.Message = t.text(a.Message)
			c.Alert = &ac
		}
		if tc := ev.Tool; tc != nil && len(tc.Input) > 0 {
			x := *tc
			x.Input = make(map[string]string, len(tc.Input))
			for k, v := range tc.Input {
				x.Input[k] = t.text(v)
			}
			x.Reason = t.text(tc.Reason)
			c.Tool = &x
		}
		if p := ev.Posture; p != nil && len(p.Checks) > 0 {
			pc := *p
			pc.Checks = make(map[string]event.Check, len(p.Checks))
			for k, v := range p.Checks {
				v.Detail = t.text(v.Detail)
				pc.Checks[k] = v
			}
			c.Posture = &pc
		}
	}
	return &c, t.parts
}

type trimmer struct {
	lv    *Level
	parts []string
}

func (t *trimmer) add(part string) {
	for _, p := range t.parts {
		if p == part {
			return
		}
	}
	t.parts = append(t.parts, part)
}

func (t *trimmer) path(s string) string {
	if len(s) <= t.lv.PathBytes {
		return s
	}
	t.add(PartPath)
	return jsonw.TruncateUTF8(s, t.lv.PathBytes)
}

func (t *trimmer) text(s string) string {
	if len(s) <= t.lv.TextBytes {
		return s
	}
	t.add(PartText)
	return jsonw.TruncateUTF8(s, t.lv.TextBytes)
}

func (t *trimmer) process(p *event.Process) event.Process {
	c := *p
	c.Exe = t.path(p.Exe)
	c.Cwd = t.path(p.Cwd)
	if b := p.Binary; b != nil {
		bc := *b
		bc.Path = t.path(b.Path)
		c.Binary = &bc
	}
	n := 0
	for _, a := range p.Argv {
		n += len(a)
		if len(a) > t.lv.MaxArgBytes {
			n = t.lv.MaxArgvBytes + 1
		}
	}
	if len(p.Argv) > t.lv.MaxArgs || n > t.lv.MaxArgvBytes {
		t.add(PartArgv)
	}
	return c
}
