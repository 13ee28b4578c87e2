// Package sessions is the sessions view (docs/sessions.md): it reads
// lineaged's native output (lineaged/v2 or lineaged/v1 JSON lines, from a
// file, stdin or a SIEM export) and shows every agent session with its tool
// calls, the process tree each call started, what each process touched and
// the alerts raised where they were raised, as a terminal tree, JSON or one
// self-contained HTML page.
package sessions

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/lineaged/lineaged/lineage/event"
)

// maxLine bounds one input line (an event is a few KB; the sink refuses
// anything above the Kafka message limit).
const maxLine = 16 << 20

// LineError is input that is not a lineaged event, naming where.
type LineError struct {
	Name string // the input's name ("-" for stdin)
	Line int
	Err  error
}

func (e *LineError) Error() string { return fmt.Sprintf("%s:%d: %v", e.Name, e.Line, e.Err) }
func (e *LineError) Unwrap() error { return e.Err }

// ErrTruncated is a last line cut short: the output was still being written,
// or was copied while it was.
var ErrTruncated = errors.New("truncated line: the input ends inside an event (no newline, JSON cut short)")

// Read decodes the events of r (name is used in errors) and gives each to
// add, in order. Blank lines are skipped. A line that is not a JSON object,
// not a lineaged/v1 or lineaged/v2 event, or cut short at the end of the
// input stops the read with a *LineError naming the line.
func Read(r io.Reader, name string, add func(*event.Event)) error {
	br := bufio.NewReaderSize(r, 256<<10)
	line := 0
	for {
		b, err := br.ReadSlice('\n')
		var long []byte
		for errors.Is(err, bufio.ErrBufferFull) {
			long = append(long, b...)
			if len(long) > maxLine {
				return &LineError{name, line + 1, fmt.Errorf("line longer than %d bytes", maxLine)}
			}
			b, err = br.ReadSlice('\n')
		}
		if long != nil {
			b = append(long, b...)
		}
		if err != nil && !errors.Is(err, io.EOF) {
			return fmt.Errorf("%s: %w", name, err)
		}
		if len(b) == 0 && err != nil {
			return nil
		}
		line++
		last := err != nil // no newline after it
		t := bytes.TrimSpace(b)
		if len(t) == 0 {
			if last {
				return nil
			}
			continue
		}
		ev, derr := decode(t)
		if derr != nil {
			if last && errors.Is(derr, errCut) {
				derr = ErrTruncated
			}
			return &LineError{name, line, derr}
		}
		add(ev)
		if last {
			return nil
		}
	}
}

// errCut is JSON that ends before its object does.
var errCut = errors.New("invalid JSON: the line ends inside the object")

// decode parses one line into an event of the native contract.
func decode(b []byte) (*event.Event, error) {
	if b[0] != '{' {
		return nil, fmt.Errorf("not a JSON object (starts with %q)", clip(b))
	}
	var w wire
	if err := json.Unmarshal(withoutAncestry(b), &w); err != nil {
		var se *json.SyntaxError
		switch {
		case errors.As(err, &se) && se.Error() == "unexpected end of JSON input":
			return nil, errCut
		case se != nil:
			return nil, fmt.Errorf("invalid JSON at byte %d: %v", se.Offset, err)
		}
		return nil, fmt.Errorf("not a lineaged event: %v", err)
	}
	ev := w.event()
	switch ev.Schema {
	case event.Schema, event.SchemaV1:
	case "":
		return nil, errors.New(`not a lineaged native event: no "schema" field (OCSF output is not read; use --format native)`)
	default:
		return nil, fmt.Errorf("schema %q: only lineaged/v1 and lineaged/v2 are read", ev.Schema)
	}
	if ev.Kind == "" {
		return nil, errors.New(`not a lineaged event: no "kind"`)
	}
	return ev, nil
}

// wire is the part of an event the view reads: decoding leaves the rest
// (ancestry, posture checks) unbuilt, which is most of an event's bytes.
type wire struct {
	Schema   string                     `json:"schema"`
	EventID  string                     `json:"event_id"`
	Seq      uint64                     `json:"seq"`
	Time     time.Time                  `json:"time"`
	Kind     string                     `json:"kind"`
	Host     *struct{ Hostname string } `json:"host"`
	Process  *event.Process             `json:"process"`
	Agent    *event.Agent               `json:"agent"`
	Identity *event.Identity            `json:"identity"`
	Posture  *struct {
		SampledAt time.Time `json:"sampled_at"`
		Compliant bool      `json:"compliant"`
		Failed    []string  `json:"failed"`
	} `json:"posture"`
	File    *event.File     `json:"file"`
	Net     *event.Net      `json:"net"`
	Exit    *event.Exit     `json:"exit"`
	Alert   *event.Alert    `json:"alert"`
	Tool    *event.ToolCall `json:"tool"`
	Session *event.Session  `json:"session"`
}

func (w *wire) event() *event.Event {
	ev := &event.Event{Schema: w.Schema, EventID: w.EventID, Seq: w.Seq, Time: w.Time, Kind: w.Kind, Process: w.Process, Agent: w.Agent,
		Identity: w.Identity, File: w.File, Net: w.Net, Exit: w.Exit, Alert: w.Alert, Tool: w.Tool, Session: w.Session}
	if w.Host != nil {
		ev.Host = &event.Host{Hostname: w.Host.Hostname}
	}
	if p := w.Posture; p != nil {
		ev.Posture = &event.Posture{SampledAt: p.SampledAt, Compliant: p.Compliant, Failed: p.Failed}
	}
	return ev
}

// ancestryKey starts the ancestry list, most of an event's bytes, which
// the view does not read.
var ancestryKey = []byte(`,"ancestry":[`)

// withoutAncestry returns b with its top-level ancestry list cut out, so
// decoding does not scan it; b itself when there is none or the list does
// not end on the line (decoding then reports the line as it is).
func withoutAncestry(b []byte) []byte {
	i := bytes.Index(b, ancestryKey)
	if i < 0 {
		return b
	}
	depth, inStr, esc := 0, false, false
	for j := i + len(ancestryKey) - 1; j < len(b); j++ {
		c := b[j]
		switch {
		case inStr:
			switch {
			case esc:
				esc = false
			case c == '\\':
				esc = true
			case c == '"':
				inStr = false
			}
		case c == '"':
			inStr = true
		case c == '[' || c == '{':
			depth++
		case c == ']' || c == '}':
			depth--
			if depth == 0 {
				out := make([]byte, 0, len(b)-(j+1-i))
				return append(append(out, b[:i]...), b[j+1:]...)
			}
		}
	}
	return b
}

func clip(b []byte) string {
	if len(b) > 20 {
		b = b[:20]
	}
	return string(b)
}
