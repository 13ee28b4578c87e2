package claude

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"sync"

	"github.com/lineaged/lineaged/lineage/internal/safefile"
)

// ToolCall is one tool_use block of an assistant record in a transcript.
type ToolCall struct {
	ID   string
	Name string
	// Command is input.command (Bash); Path is input.file_path or
	// input.notebook_path (Read, Write, Edit, MultiEdit, NotebookEdit).
	Command string
	Path    string
	// Seq is the order in which the call appeared in the transcript.
	Seq int
	// Done is set once the matching tool_result record was read.
	Done bool
}

// TranscriptStats counts what the parser skipped.
type TranscriptStats struct {
	Lines     uint64 // complete lines read
	Malformed uint64 // lines that were not a JSON object
	Oversized uint64 // lines longer than the bound, skipped unread
	ToolCalls uint64 // tool_use blocks found
	OpenErrs  uint64 // failed attempts to open the file
}

// reTranscript matches a session transcript path: the file name is the
// session UUID.
var reTranscript = regexp.MustCompile(`/\.claude/projects/[^/]+/([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})\.jsonl$`)

// TranscriptSession returns the session UUID when path is a Claude Code
// session transcript (~/.claude/projects/<dir>/<uuid>.jsonl).
func TranscriptSession(path string) (string, bool) {
	m := reTranscript.FindStringSubmatch(path)
	if m == nil {
		return "", false
	}
	return m[1], true
}

// Transcript follows one session transcript as Claude Code appends to it.
// It reads on demand (Poll), from where it stopped, so a line written in
// several chunks is only parsed once complete. The file is untrusted input:
// malformed lines are skipped and counted, lines longer than maxLine are
// skipped without being buffered, and a missing file is retried on the next
// poll.
type Transcript struct {
	path    string
	maxLine int

	mu       sync.Mutex
	f        *os.File
	off      int64  // bytes read from f
	partial  []byte // bytes of an incomplete last line
	skipping bool   // inside an oversized line: drop bytes until '\n'
	buf      []byte // Poll's read buffer, kept: a session's file events poll often
	calls    []*ToolCall
	byID     map[string]*ToolCall
	stats    TranscriptStats
	lastErr  error
}

// maxToolCalls bounds the calls kept per transcript; the oldest are
// forgotten first (a long session's early tool calls cannot be the cause of
// a new process).
const maxToolCalls = 4096

// NewTranscript follows the transcript at path. maxLine bounds one record.
func NewTranscript(path string, maxLine int) *Transcript {
	if maxLine <= 0 {
		maxLine = 4 << 20
	}
	return &Transcript{path: path, maxLine: maxLine, byID: map[string]*ToolCall{}}
}

// Path is the followed file.
func (t *Transcript) Path() string { return t.path }

// Stats returns the parser counters.
func (t *Transcript) Stats() TranscriptStats {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.stats
}

// Close releases the file.
func (t *Transcript) Close() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.f != nil {
		err := t.f.Close()
		t.f = nil
		return err
	}
	return nil
}

// Poll reads whatever was appended since the last call. It returns the
// error that stopped reading, if any; a missing file is reported but is not
// fatal: the next Poll tries again.
func (t *Transcript) Poll() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.f == nil {
		// The path came from the agent's own open, but a member of the
		// session could swap in a symlink or a FIFO to make the sensor
		// read elsewhere or block.
		f, _, err := safefile.OpenRegular(t.path, safefile.Options{NoFollow: true})
		if err != nil {
			t.stats.OpenErrs++
			t.lastErr = fmt.Errorf("transcript: %w", err)
			return t.lastErr
		}
		t.f = f
	}
	if st, err := t.f.Stat(); err == nil {
		switch {
		case st.Size() == t.off:
			// Nothing appended since the last poll (the common case:
			// every file event of the agent process polls).
			return nil
		case st.Size() < t.off:
			// Truncated or rewritten in place: start over; tool calls
			// already read are kept (ids are unique, duplicates are
			// ignored).
			if _, err := t.f.Seek(0, io.SeekStart); err == nil {
				t.off, t.partial, t.skipping = 0, t.partial[:0], false
			}
		}
	}
	if t.buf == nil {
		t.buf = make([]byte, 64<<10)
	}
	buf := t.buf
	for {
		n, err := t.f.Read(buf)
		if n > 0 {
			t.off += int64(n)
			t.feed(buf[:n])
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			t.lastErr = err
			return fmt.Errorf("transcript %s: %w", t.path, err)
		}
		if n == 0 {
			return nil
		}
	}
}

// Feed parses bytes as if they had been appended to the file; Poll uses it,
// tests and the fuzzer call it directly.
func (t *Transcript) Feed(b []byte) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.feed(b)
}

func (t *Transcript) feed(b []byte) {
	for len(b) > 0 {
		i := bytes.IndexByte(b, '\n')
		if t.skipping {
			if i < 0 {
				return
			}
			t.skipping = false
			b = b[i+1:]
			continue
		}
		if i < 0 {
			if len(t.partial)+len(b) > t.maxLine {
				t.partial = t.partial[:0]
				t.skipping = true
				t.stats.Oversized++
				return
			}
			t.partial = append(t.partial, b...)
			return
		}
		line := b[:i]
		b = b[i+1:]
		if len(t.partial) > 0 {
			if len(t.partial)+len(line) > t.maxLine {
				t.partial = t.partial[:0]
				t.stats.Oversized++
				continue
			}
			line = append(t.partial, line...)
			t.partial = t.partial[:0]
		} else if len(line) > t.maxLine {
			t.stats.Oversized++
			continue
		}
		t.line(line)
	}
}

// record is the part of a transcript line the follower reads.
type record struct {
	Type    string `json:"type"`
	Message *struct {
		Role    string          `json:"role"`
		Content json.RawMessage `json:"content"`
	} `json:"message"`
}

type contentBlock struct {
	Type      string          `json:"type"`
	ID        string          `json:"id"`
	Name      string          `json:"name"`
	Input     json.RawMessage `json:"input"`
	ToolUseID string          `json:"tool_use_id"`
}

type toolInput struct {
	Command      string `json:"command"`
	FilePath     string `json:"file_path"`
	NotebookPath string `json:"notebook_path"`
}

func (t *Transcript) line(line []byte) {
	line = bytes.TrimSpace(line)
	if len(line) == 0 {
		return
	}
	t.stats.Lines++
	var r record
	if err := json.Unmarshal(line, &r); err != nil {
		t.stats.Malformed++
		return
	}
	if r.Message == nil || len(r.Message.Content) == 0 || r.Message.Content[0] != '[' {
		return
	}
	var blocks []contentBlock
	if err := json.Unmarshal(r.Message.Content, &blocks); err != nil {
		t.stats.Malformed++
		return
	}
	for _, b := range blocks {
		switch {
		case r.Type == "assistant" && b.Type == "tool_use" && b.ID != "":
			if _, dup := t.byID[b.ID]; dup {
				continue
			}
			var in toolInput
			if len(b.Input) > 0 && b.Input[0] == '{' {
				_ = json.Unmarshal(b.Input, &in)
			}
			c := &ToolCall{ID: b.ID, Name: b.Name, Command: in.Command, Path: in.FilePath, Seq: int(t.stats.ToolCalls)}
			if c.Path == "" {
				c.Path = in.NotebookPath
			}
			t.stats.ToolCalls++
			t.calls = append(t.calls, c)
			t.byID[c.ID] = c
			if len(t.calls) > maxToolCalls {
				delete(t.byID, t.calls[0].ID)
				t.calls = t.calls[1:]
			}
		case r.Type == "user" && b.Type == "tool_result" && b.ToolUseID != "":
			if c, ok := t.byID[b.ToolUseID]; ok {
				c.Done = true
			}
		}
	}
}

// Calls returns copies of the tool calls read so far, in transcript order.
func (t *Transcript) Calls() []ToolCall {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]ToolCall, len(t.calls))
	for i, c := range t.calls {
		out[i] = *c
	}
	return out
}

// find runs pick on the calls under the lock.
func (t *Transcript) find(pick func(calls []*ToolCall) *ToolCall) (ToolCall, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	c := pick(t.calls)
	if c == nil {
		return ToolCall{}, false
	}
	return *c, true
}
