package claude

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"sync"
	"syscall"
)

// ToolCall is one tool_use block of an assistant record in a transcript.
// The transcript is written by a process the monitored user controls, so
// a call keeps a bounded summary of its input, never the whole of it: the
// SHA-256 of input.command (whole and trimmed) to match a Bash process's
// eval payload, and its first MaxCommandPrefix bytes.
type ToolCall struct {
	ID   string
	Name string
	// Command is the first MaxCommandPrefix bytes of input.command (Bash);
	// CommandLen its full length. Path is input.file_path or
	// input.notebook_path (Read, Write, Edit, MultiEdit, NotebookEdit),
	// dropped when longer than PATH_MAX.
	Command    string
	CommandLen int
	Path       string
	// Seq is the order in which the call appeared in the transcript.
	Seq int
	// Done is set once the matching tool_result record was read.
	Done bool

	cmdSum, cmdTrimSum [sha256.Size]byte
}

// MaxCommandPrefix bounds the part of a Bash call's command a transcript
// keeps as text.
const MaxCommandPrefix = 512

// maxToolPath is PATH_MAX: a longer input path names no file.
const maxToolPath = 4096

// size is what a call costs the retained-bytes budget.
func (c *ToolCall) size() int64 {
	return int64(len(c.ID) + len(c.Name) + len(c.Command) + len(c.Path) + 160)
}

// matches reports whether the call's command is the eval payload whose
// digests are sum (whole) and trimSum (surrounding whitespace trimmed).
func (c *ToolCall) matches(sum, trimSum [sha256.Size]byte) bool {
	return c.CommandLen > 0 && (c.cmdSum == sum || c.cmdTrimSum == trimSum)
}

// TranscriptStats counts what the parser skipped.
type TranscriptStats struct {
	Lines     uint64 // complete lines read
	Malformed uint64 // lines that were not a JSON object
	Oversized uint64 // lines longer than the bound, skipped unread
	ToolCalls uint64 // tool_use blocks found
	OpenErrs  uint64 // failed attempts to open the file
	// Refused counts opens of a file that is not a transcript the sensor
	// follows: too large, sparse, owned by another user, outside the
	// session's configuration directory, or reached through a symlink.
	Refused uint64
	// Dropped counts tool calls forgotten (or never kept) to stay within
	// the retained-bytes budget; Budgeted polls that stopped at the byte
	// budget with more to read.
	Dropped  uint64
	Budgeted uint64
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
// several chunks is only parsed once complete. The file is untrusted input
// written by the monitored user: malformed lines are skipped and counted,
// lines longer than maxLine are skipped without being buffered, a poll
// reads at most a byte budget, what is kept counts against a shared
// retained-bytes budget, and a file that is not a plausible transcript of
// its session is refused (transcript_open.go). A missing file is retried
// on the next poll.
type Transcript struct {
	path    string
	maxLine int
	guard   TranscriptGuard
	budget  *RetainBudget

	mu       sync.Mutex
	f        *os.File
	off      int64  // bytes read from f
	partial  []byte // bytes of an incomplete last line
	skipping bool   // inside an oversized line: drop bytes until '\n'
	calls    []*ToolCall
	byID     map[string]*ToolCall
	held     int64 // bytes charged to budget: calls and partial
	stats    TranscriptStats
	lastErr  error
	refused  error // set once the file was refused: never read
	// untrusted says why the file's records may not be the agent's own
	// ("" while nothing says so).
	untrusted string
	closed    bool // Close was called: nothing is read or kept again
}

// maxToolCalls bounds the calls kept per transcript; the oldest are
// forgotten first (a long session's early tool calls cannot be the cause of
// a new process).
const maxToolCalls = 4096

// maxHeldPerTranscript bounds the bytes one transcript keeps (its calls'
// summaries and an incomplete line), below the shared budget.
const maxHeldPerTranscript = 1 << 20

// NewTranscript follows the transcript at path. maxLine bounds one record.
// Without SetGuard and SetBudget it opens path as given (tests, replay).
func NewTranscript(path string, maxLine int) *Transcript {
	if maxLine <= 0 {
		maxLine = 4 << 20
	}
	return &Transcript{path: path, maxLine: maxLine, byID: map[string]*ToolCall{}, budget: NewRetainBudget(0)}
}

// SetBudget makes the transcript charge what it keeps to b, shared with
// the other transcripts the observer follows.
func (t *Transcript) SetBudget(b *RetainBudget) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if b == nil || b == t.budget {
		return
	}
	t.budget.release(t.held)
	t.budget = b
	t.budget.charge(t.held)
}

// Path is the followed file.
func (t *Transcript) Path() string { return t.path }

// Stats returns the parser counters.
func (t *Transcript) Stats() TranscriptStats {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.stats
}

// Close releases the file and what the transcript charged to its budget.
func (t *Transcript) Close() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.budget.release(t.held)
	t.held, t.closed = 0, true
	t.calls, t.partial = nil, nil
	clear(t.byID)
	if t.f != nil {
		err := t.f.Close()
		t.f = nil
		return err
	}
	return nil
}

// Prime opens the file now, without reading it, if it is not open yet:
// the observer calls it when it learns the transcript, when the agent
// whose root directory the path is reached through (/proc/<pid>/root) is
// most likely alive still. A headless agent can exit a few milliseconds
// after starting its last tool call; the poll that ties that call to its
// record may come after, and reads the file kept open (or, once the agent
// is gone, TranscriptGuard.FallbackRoot). An error is kept for the next
// Poll, which tries again.
func (t *Transcript) Prime() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.refused != nil || t.closed {
		return
	}
	_ = t.ensureOpen()
}

// ensureOpen opens the file under the guard unless it is open; t.mu is
// held.
func (t *Transcript) ensureOpen() error {
	if t.f != nil {
		return nil
	}
	f, err := t.open()
	if err != nil {
		if errors.Is(err, errRefused) {
			t.stats.Refused++
			t.refused = fmt.Errorf("transcript: %w", err)
			return t.refused
		}
		t.stats.OpenErrs++
		t.lastErr = fmt.Errorf("transcript: %w", err)
		return t.lastErr
	}
	t.f = f
	return nil
}

// Poll reads at most the poll byte budget of whatever was appended since
// the last call, stopping early when ctx ends. It returns the error that
// stopped reading, if any; a missing file is reported but is not fatal:
// the next Poll tries again. A refused file stays refused.
func (t *Transcript) Poll(ctx context.Context) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.refused != nil {
		return t.refused
	}
	if t.closed {
		return errClosed
	}
	if err := t.ensureOpen(); err != nil {
		return err
	}
	var st syscall.Stat_t
	if err := syscall.Fstat(int(t.f.Fd()), &st); err == nil {
		switch {
		case st.Size == t.off:
			// Nothing appended since the last poll (the common case:
			// every file event of the agent process polls).
			return nil
		case st.Size < t.off:
			// Truncated or rewritten in place: start over; tool calls
			// already read are kept (ids are unique, duplicates are
			// ignored).
			if _, err := t.f.Seek(0, io.SeekStart); err == nil {
				t.off, t.skipping = 0, false
				t.setPartial(t.partial[:0])
			}
		}
		if st.Nlink > 1 && t.untrusted == "" {
			// Another name for the file: whoever made it can write
			// there without the sensor seeing an open of this path.
			t.untrusted = fmt.Sprintf("the transcript has %d hard links", st.Nlink)
		}
		// The file grew since it was opened: a hole punched or seeked
		// over since is refused like one found at open.
		if err := t.guard.checkGrowth(&st); err != nil {
			t.stats.Refused++
			t.refused = fmt.Errorf("transcript %s: %w", t.path, err)
			t.f.Close()
			t.f = nil
			return t.refused
		}
	}
	bp := readBufs.Get().(*[]byte)
	defer readBufs.Put(bp)
	buf := *bp
	budget := t.guard.pollBytes()
	for read := int64(0); ; {
		if err := ctx.Err(); err != nil {
			return err
		}
		if read >= budget {
			t.stats.Budgeted++
			return nil
		}
		n, err := t.f.Read(buf[:min(int64(len(buf)), budget-read)])
		if n > 0 {
			read += int64(n)
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

// errClosed: the transcript's session was forgotten.
var errClosed = errors.New("transcript: closed")

// readBufs are Poll's read buffers, shared by every transcript.
var readBufs = sync.Pool{New: func() any { b := make([]byte, 64<<10); return &b }}

// MarkUntrusted records why the transcript's records may be forged: a
// process other than the agent wrote to it. The first reason is kept.
func (t *Transcript) MarkUntrusted(reason string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.untrusted == "" {
		t.untrusted = reason
	}
}

// Untrusted returns why the transcript's records may be forged, if any.
func (t *Transcript) Untrusted() (string, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.untrusted, t.untrusted != ""
}

// Feed parses bytes as if they had been appended to the file; Poll uses it,
// tests and the fuzzer call it directly.
func (t *Transcript) Feed(b []byte) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return
	}
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
				t.setPartial(nil)
				t.skipping = true
				t.stats.Oversized++
				return
			}
			if !t.room(int64(len(b))) {
				// Keeping the rest of this line would overrun the
				// retained-bytes budget: it is lost, and counted.
				t.setPartial(nil)
				t.skipping = true
				t.stats.Dropped++
				return
			}
			t.setPartial(append(t.partial, b...))
			return
		}
		line := b[:i]
		b = b[i+1:]
		if len(t.partial) > 0 {
			if len(t.partial)+len(line) > t.maxLine {
				t.setPartial(t.partial[:0])
				t.stats.Oversized++
				continue
			}
			whole := append(t.partial, line...)
			t.line(whole)
			t.setPartial(whole[:0])
			continue
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
			t.stats.ToolCalls++
			if len(b.ID) > maxIDBytes || len(b.Name) > maxIDBytes {
				t.stats.Malformed++
				continue
			}
			c := newToolCall(b.ID, b.Name, &in, int(t.stats.ToolCalls-1))
			t.keep(c)
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
