package claude

import (
	"crypto/sha256"
	"strings"
	"sync/atomic"
)

// RetainBudget bounds the bytes every followed transcript keeps together:
// tool-call summaries and incomplete lines. The observer shares one among
// its transcripts, so a monitored user cannot grow the sensor's heap by
// writing long records into many sessions.
type RetainBudget struct {
	limit int64
	used  atomic.Int64
}

// DefaultRetainBytes is the default shared budget.
const DefaultRetainBytes = 32 << 20

// NewRetainBudget returns a budget of limit bytes (DefaultRetainBytes when
// limit <= 0).
func NewRetainBudget(limit int64) *RetainBudget {
	if limit <= 0 {
		limit = DefaultRetainBytes
	}
	return &RetainBudget{limit: limit}
}

// Used is the number of bytes charged now.
func (b *RetainBudget) Used() int64 { return b.used.Load() }

// Limit is the budget.
func (b *RetainBudget) Limit() int64 { return b.limit }

func (b *RetainBudget) charge(n int64)  { b.used.Add(n) }
func (b *RetainBudget) release(n int64) { b.used.Add(-n) }

// fits reports whether n more bytes stay within the budget.
func (b *RetainBudget) fits(n int64) bool { return b.used.Load()+n <= b.limit }

// maxIDBytes bounds a tool_use id and a tool name; Claude Code's are a few
// dozen bytes.
const maxIDBytes = 256

// newToolCall summarises a tool_use block: digests and a prefix of the
// command, the path when it can name a file.
func newToolCall(id, name string, in *toolInput, seq int) *ToolCall {
	c := &ToolCall{ID: strings.Clone(id), Name: strings.Clone(name), Seq: seq}
	if in.Command != "" {
		c.CommandLen = len(in.Command)
		c.cmdSum = sha256.Sum256([]byte(in.Command))
		c.cmdTrimSum = sha256.Sum256([]byte(strings.TrimSpace(in.Command)))
		c.Command = strings.Clone(in.Command[:min(len(in.Command), MaxCommandPrefix)])
	}
	p := in.FilePath
	if p == "" {
		p = in.NotebookPath
	}
	if len(p) <= maxToolPath {
		c.Path = strings.Clone(p)
	}
	return c
}

// payloadSums are the digests a Bash process's eval payload is matched by.
func payloadSums(payload string) (sum, trimSum [sha256.Size]byte) {
	return sha256.Sum256([]byte(payload)), sha256.Sum256([]byte(strings.TrimSpace(payload)))
}

// keep adds c, forgetting the oldest calls to stay within maxToolCalls,
// the transcript's own share and the shared budget; t.mu is held.
func (t *Transcript) keep(c *ToolCall) {
	n := c.size()
	for len(t.calls) > 0 && (len(t.calls) >= maxToolCalls || t.callBytes()+n > maxHeldPerTranscript || !t.budget.fits(n)) {
		t.forgetOldest()
	}
	if !t.budget.fits(n) {
		// Other transcripts hold the budget: this call is not kept.
		t.stats.Dropped++
		return
	}
	t.calls = append(t.calls, c)
	t.byID[c.ID] = c
	t.held += n
	t.budget.charge(n)
}

// forgetOldest drops the oldest call; t.mu is held.
func (t *Transcript) forgetOldest() {
	old := t.calls[0]
	t.calls[0] = nil
	t.calls = t.calls[1:]
	delete(t.byID, old.ID)
	n := old.size()
	t.held -= n
	t.budget.release(n)
	t.stats.Dropped++
}

// callBytes is what the kept calls cost; t.mu is held.
func (t *Transcript) callBytes() int64 { return t.held - int64(cap(t.partial)) }

// setPartial replaces the incomplete-line buffer, charging its capacity;
// an empty buffer grown large is let go. t.mu is held.
func (t *Transcript) setPartial(p []byte) {
	if len(p) == 0 && cap(p) > 64<<10 {
		p = nil
	}
	d := int64(cap(p) - cap(t.partial))
	t.partial = p
	t.held += d
	t.budget.charge(d)
}

// room reports whether the incomplete line may grow by n bytes; t.mu is
// held.
func (t *Transcript) room(n int64) bool {
	grow := int64(len(t.partial)) + n - int64(cap(t.partial))
	return grow <= 0 || t.budget.fits(2*grow)
}
