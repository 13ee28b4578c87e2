// Package audit makes an output stream tamper-evident (docs/audit.md): every
// encoded line gets a chain member linking it to the line before by SHA-256,
// and sensor.checkpoint lines are signed with a forward-secure key kept in
// the state directory. Verify walks a stream back.
package audit

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strconv"
	"sync"

	"github.com/lineaged/lineaged/lineage/event"
)

// Encoder is the sink's encoder (sink.Encoder), restated here so the chain
// stage does not import the sink.
type Encoder interface {
	Append(dst []byte, ev *event.Event) ([]byte, error)
	ContentType() string
	Schema() string
}

// The chain member, always the line's last member:
//
//	,"chain":{"instance":"I","seq":N,"prev":"P"[,"lost":{"after":"A","last":"L"}],"hash":"H"[,"sig":"S"]}}
//
// H is the SHA-256 of the line with H written as 64 zeros and without the
// sig member (docs/audit.md).
const (
	memberStart = `,"chain":{"instance":"`
	hashKey     = `,"hash":"`
	sigKey      = `,"sig":"`
	padKey      = `,"pad":"`
	hexLen      = 2 * sha256.Size
)

// Zero is the prev of the first line of the first run on a host.
var Zero = [sha256.Size]byte{}

// ringSize is how many recent (seq, hash) pairs the chain keeps to bridge a
// loss of already chained events (Kafka spool drops).
const ringSize = 1 << 15

// Chain is the state of one output stream's chain. One Chain serves one
// encoder (Wrap); it is safe for concurrent use.
type Chain struct {
	mu       sync.Mutex
	instance string
	prev     [sha256.Size]byte
	signer   *Signer // nil: lines are chained, checkpoints are refused

	// Since the previous checkpoint of this run.
	firstSeq, lastSeq, events uint64
	loss                      map[string]uint64
	host                      *event.Host

	ring [ringSize]struct {
		seq  uint64
		hash [sha256.Size]byte
	}

	// rotation mirrors the rotating file's size (0: not a rotating file).
	rotation fileMirror
	// copies receive every checkpoint line (second destinations).
	copies  []CopyFunc
	copyErr error
	// lastErr is a checkpoint's failure to save the signer's state.
	lastErr error
	// lossLines keeps the recent sensor.loss lines by seq: the Kafka sink
	// encodes a loss report again when it saves an undelivered one at
	// close, and the same event must give the same line, chained once.
	lossLines map[uint64][]byte
}

// NewChain starts the chain of a run named instance; prev is the hash of
// the previous run's last checkpoint (Zero for the first run). signer signs
// the checkpoints.
func NewChain(instance string, prev [sha256.Size]byte, signer *Signer) *Chain {
	return &Chain{instance: instance, prev: prev, signer: signer, loss: map[string]uint64{}}
}

// Attach sets the link to the previous run and the signer of a chain made
// before its state could be read (the sensor opens the sink before it
// knows it may read the state directory); before any line is chained.
func (c *Chain) Attach(prev [sha256.Size]byte, signer *Signer) {
	c.mu.Lock()
	c.prev, c.signer = prev, signer
	c.mu.Unlock()
}

// CopyFunc receives a checkpoint line, without its newline, and its event.
// It must not keep line.
type CopyFunc func(line []byte, ev *event.Event) error

// CopyCheckpoints sends a copy of every checkpoint line to f (a second
// destination); a failure is returned by Err.
func (c *Chain) CopyCheckpoints(f CopyFunc) {
	c.mu.Lock()
	c.copies = append(c.copies, f)
	c.mu.Unlock()
}

// CopyTo is a CopyFunc appending each line and a newline to w.
func CopyTo(w io.Writer) CopyFunc {
	return func(line []byte, _ *event.Event) error {
		b := make([]byte, 0, len(line)+1)
		_, err := w.Write(append(append(b, line...), '\n'))
		return err
	}
}

// MirrorRotation tells the chain that lines go to a file rotated at
// maxBytes, now size bytes long, so it can ask for a checkpoint before the
// file rotates (NeedCheckpoint).
func (c *Chain) MirrorRotation(size, maxBytes int64) {
	c.mu.Lock()
	c.rotation = fileMirror{size: size, max: maxBytes}
	c.mu.Unlock()
}

// NeedCheckpoint reports whether the rotating file is about to rotate and
// has no checkpoint yet since the last rotation.
func (c *Chain) NeedCheckpoint() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.rotation.need()
}

// Err returns and clears the last failure of a checkpoint's side effects
// (saving the state, writing the copy).
func (c *Chain) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	err := errors.Join(c.lastErr, c.copyErr)
	c.lastErr, c.copyErr = nil, nil
	return err
}

// Head returns the hash of the last line chained.
func (c *Chain) Head() [sha256.Size]byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.prev
}

// Wrap returns enc with every line it encodes chained by c.
func (c *Chain) Wrap(enc Encoder) Encoder { return &chained{inner: enc, c: c} }

type chained struct {
	inner Encoder
	c     *Chain
}

func (e *chained) ContentType() string { return e.inner.ContentType() }
func (e *chained) Schema() string      { return e.inner.Schema() }

// Append encodes ev with the inner encoder and appends the chain member. A
// sensor.checkpoint is filled in first and signed after. An event the inner
// encoder refuses leaves the chain as it was.
func (e *chained) Append(dst []byte, ev *event.Event) ([]byte, error) {
	c := e.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if ev.Kind == event.KindSensorLoss {
		if line, ok := c.lossLines[ev.Seq]; ok && ev.Seq != 0 {
			return append(dst, line...), nil
		}
	}
	var next *pendingKey
	if ev.Kind == event.KindSensorCheckpoint {
		if c.signer == nil {
			return dst, errors.New("audit: a checkpoint needs a signing key")
		}
		var err error
		if next, err = c.fillCheckpoint(ev); err != nil {
			return dst, err
		}
	} else if ev.Host != nil {
		c.host = ev.Host
	}
	start := len(dst)
	b, err := e.inner.Append(dst, ev)
	if err != nil {
		return b[:start], err
	}
	if len(b) == start || b[len(b)-1] != '}' {
		return b[:start], fmt.Errorf("audit: event %s: encoded line does not end an object", ev.EventID)
	}
	b = b[:len(b)-1]
	b = append(b, memberStart...)
	b = append(b, c.instance...)
	b = append(b, `","seq":`...)
	b = strconv.AppendUint(b, ev.Seq, 10)
	b = append(b, `,"prev":"`...)
	b = hex.AppendEncode(b, c.prev[:])
	b = append(b, '"')
	if ev.Kind == event.KindSensorLoss && ev.Loss != nil && ev.Loss.FirstSeq != 0 {
		b = c.appendBridge(b, ev.Loss.FirstSeq, ev.Loss.LastSeq)
	}
	if next != nil && ev.Checkpoint.Reason == event.CheckpointRotation {
		b = c.rotation.pad(b, len(b)-start+len(hashKey)+hexLen+3+c.signer.sigLen()+1)
	}
	b = append(b, hashKey...)
	at := len(b)
	for range hexLen {
		b = append(b, '0')
	}
	b = append(b, '"', '}', '}')
	sum := sha256.Sum256(b[start:])
	hex.Encode(b[at:at+hexLen], sum[:])
	if next != nil {
		if b, err = c.sign(b, start, sum, next, ev); err != nil {
			return b[:start], err
		}
	}
	c.advance(ev, sum, int64(len(b)-start)+1)
	if ev.Kind == event.KindSensorLoss {
		if c.lossLines == nil || len(c.lossLines) >= 64 {
			c.lossLines = map[uint64][]byte{}
		}
		c.lossLines[ev.Seq] = append([]byte(nil), b[start:]...)
	}
	return b, nil
}

// appendBridge writes the lost member of a sensor.loss whose events were
// chained before they were dropped: the hash of the line before the first
// lost one and of the last lost one, when still in the ring.
func (c *Chain) appendBridge(b []byte, first, last uint64) []byte {
	if first < 2 || last < first {
		return b
	}
	after, ok1 := c.recent(first - 1)
	lastH, ok2 := c.recent(last)
	if !ok1 || !ok2 {
		return b
	}
	b = append(b, `,"lost":{"after":"`...)
	b = hex.AppendEncode(b, after[:])
	b = append(b, `","last":"`...)
	b = hex.AppendEncode(b, lastH[:])
	return append(b, '"', '}')
}

func (c *Chain) recent(seq uint64) ([sha256.Size]byte, bool) {
	r := &c.ring[seq%ringSize]
	return r.hash, r.seq == seq && seq != 0
}

// advance moves the head to the line just chained; n is its length with
// the newline.
func (c *Chain) advance(ev *event.Event, sum [sha256.Size]byte, n int64) {
	c.prev = sum
	r := &c.ring[ev.Seq%ringSize]
	r.seq, r.hash = ev.Seq, sum
	c.rotation.add(n, ev.Kind == event.KindSensorCheckpoint)
	if ev.Kind == event.KindSensorCheckpoint {
		c.firstSeq, c.lastSeq, c.events = 0, 0, 0
		return
	}
	if c.firstSeq == 0 {
		c.firstSeq = ev.Seq
	}
	c.lastSeq = ev.Seq
	c.events++
	if ev.Kind == event.KindSensorLoss && ev.Loss != nil {
		c.loss[ev.Loss.Where] += ev.Loss.Count
	}
}

// fillCheckpoint writes what the checkpoint covers into ev and prepares
// the next epoch's key.
func (c *Chain) fillCheckpoint(ev *event.Event) (*pendingKey, error) {
	next, err := c.signer.prepare()
	if err != nil {
		return nil, err
	}
	cp := ev.Checkpoint
	if cp == nil {
		cp = &event.Checkpoint{Reason: event.CheckpointInterval}
		ev.Checkpoint = cp
	}
	cp.Epoch = c.signer.epoch
	cp.InstanceID = c.instance
	cp.Head = hex.EncodeToString(c.prev[:])
	cp.FirstSeq, cp.LastSeq, cp.Events = c.firstSeq, c.lastSeq, c.events
	cp.Loss = make(map[string]uint64, len(c.loss))
	for k, v := range c.loss {
		cp.Loss[k] = v
	}
	cp.Algorithm = c.signer.alg
	cp.KeyID = c.signer.keyID
	cp.NextKey = next.pubB64
	if ev.Host == nil {
		ev.Host = c.host
	}
	return next, nil
}

// sign appends the sig member to the checkpoint line b[start:] whose hash
// is sum, then moves the signer to the next epoch (its state saved).
func (c *Chain) sign(b []byte, start int, sum [sha256.Size]byte, next *pendingKey, ev *event.Event) ([]byte, error) {
	sig, err := c.signer.sign(sum)
	if err != nil {
		return b, err
	}
	b = b[:len(b)-2]
	b = append(b, sigKey...)
	b = append(b, sig...)
	b = append(b, '"', '}', '}')
	if err := c.signer.advance(next, sum, c.instance); err != nil {
		c.lastErr = err
	}
	for _, f := range c.copies {
		if err := f(b[start:], ev); err != nil {
			c.copyErr = errors.Join(c.copyErr, fmt.Errorf("audit: checkpoint copy: %w", err))
		}
	}
	return b, nil
}

// fileMirror follows the size of a rotating file the way sink.Rotating
// does: a line that would take a non-empty file past max starts a new one.
type fileMirror struct {
	size, max int64
	asked     bool // a checkpoint was written since the last rotation
}

// reserve is the room kept at the end of a file for the checkpoint that
// precedes its rotation.
func (m *fileMirror) reserve() int64 { return min(64<<10, m.max/4) }

func (m *fileMirror) need() bool {
	return m.max > 0 && !m.asked && m.size+m.reserve() >= m.max
}

// pad fills the file to its rotation size with a pad member of spaces in
// the rotation checkpoint, whose line will be n bytes long without it, so
// that the file rotates right after it: the checkpoint is the file's last
// line. A few bytes short (a signature shorter than its usual length) still
// rotate before any event.
func (m *fileMirror) pad(b []byte, n int) []byte {
	if m.max <= 0 {
		return b
	}
	room := m.max - m.size - int64(n) - int64(len(padKey)+1)
	if room <= 0 || m.size+int64(n) > m.max {
		return b
	}
	b = append(b, padKey...)
	for range room {
		b = append(b, ' ')
	}
	return append(b, '"')
}

func (m *fileMirror) add(n int64, checkpoint bool) {
	if m.max <= 0 {
		return
	}
	if m.size > 0 && m.size+n > m.max {
		m.size, m.asked = 0, false
	}
	m.size += n
	if checkpoint && m.size+m.reserve() >= m.max {
		m.asked = true
	}
}
