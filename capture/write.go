package capture

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/klauspost/compress/zstd"
)

// WriterConfig tunes when a block is flushed.
type WriterConfig struct {
	// BatchBytes flushes a block once this many uncompressed record bytes
	// are pending (default 256 KiB).
	BatchBytes int
	// Interval flushes pending records at least this often (default
	// 200ms): what a SIGKILL can lose, and how late a follower sees them.
	Interval time.Duration
}

// Writer appends records to a capture. Safe for concurrent use.
type Writer struct {
	mu      sync.Mutex
	w       io.Writer
	f       *os.File // nil when writing to a plain io.Writer
	enc     *zstd.Encoder
	cfg     WriterConfig
	pending []byte
	count   uint32
	records uint64
	err     error
	closed  bool
	stop    chan struct{}
	done    chan struct{}
}

// Create creates path (0600, never an existing file) and writes the header.
func Create(path string, h Header, cfg WriterConfig) (*Writer, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("capture: %w", err)
	}
	w, err := newWriter(f, h, cfg)
	if err != nil {
		f.Close()
		os.Remove(path)
		return nil, err
	}
	w.f = f
	return w, nil
}

// NewWriter writes a capture to w (tests, pipes); Close does not close w.
func NewWriter(w io.Writer, h Header, cfg WriterConfig) (*Writer, error) {
	return newWriter(w, h, cfg)
}

func newWriter(out io.Writer, h Header, cfg WriterConfig) (*Writer, error) {
	if cfg.BatchBytes <= 0 {
		cfg.BatchBytes = 256 << 10
	}
	if cfg.BatchBytes > MaxBlockBytes/2 {
		cfg.BatchBytes = MaxBlockBytes / 2
	}
	if cfg.Interval <= 0 {
		cfg.Interval = 200 * time.Millisecond
	}
	h.FormatVersion = FormatVersion
	if h.Created.IsZero() {
		h.Created = time.Now().UTC()
	}
	hb, err := encodeHeader(h)
	if err != nil {
		return nil, err
	}
	enc, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(1))
	if err != nil {
		return nil, fmt.Errorf("capture: zstd: %w", err)
	}
	if _, err := out.Write(hb); err != nil {
		return nil, fmt.Errorf("capture: writing header: %w", err)
	}
	w := &Writer{w: out, enc: enc, cfg: cfg, stop: make(chan struct{}), done: make(chan struct{})}
	go w.flusher()
	return w, nil
}

func (w *Writer) flusher() {
	defer close(w.done)
	t := time.NewTicker(w.cfg.Interval)
	defer t.Stop()
	for {
		select {
		case <-w.stop:
			return
		case <-t.C:
			_ = w.Flush()
		}
	}
}

// Add appends one record; it is on disk after the next flush (at most
// Interval later). The first write error is kept and returned from then on.
func (w *Writer) Add(t Type, payload []byte) error {
	if len(payload) > MaxRecordBytes {
		return fmt.Errorf("capture: %s record of %d bytes, over %d", t, len(payload), MaxRecordBytes)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err != nil {
		return w.err
	}
	if w.closed {
		return errors.New("capture: writer closed")
	}
	w.pending = appendRecord(w.pending, Record{Type: t, Payload: payload})
	w.count++
	w.records++
	if len(w.pending) >= w.cfg.BatchBytes {
		return w.flushLocked()
	}
	return nil
}

// Records is how many records were added.
func (w *Writer) Records() uint64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.records
}

// Flush writes the pending records as one block.
func (w *Writer) Flush() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.flushLocked()
}

func (w *Writer) flushLocked() error {
	if w.err != nil || len(w.pending) == 0 {
		return w.err
	}
	z := w.enc.EncodeAll(w.pending, make([]byte, blockHeaderLen, blockHeaderLen+len(w.pending)/2))
	body := z[blockHeaderLen:]
	copy(z, BlockMagic[:])
	binary.LittleEndian.PutUint32(z[4:], uint32(len(body)))
	binary.LittleEndian.PutUint32(z[8:], w.count)
	binary.LittleEndian.PutUint32(z[12:], crc(body))
	// One write per block: a reader following the file sees a block
	// whole or, for a moment, its beginning (which it waits out).
	if _, err := w.w.Write(z); err != nil {
		w.err = fmt.Errorf("capture: writing block: %w", err)
		return w.err
	}
	w.pending = w.pending[:0]
	w.count = 0
	return nil
}

// Close flushes and closes the file (when Create opened it).
func (w *Writer) Close() error {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return w.err
	}
	w.closed = true
	w.mu.Unlock()
	close(w.stop)
	<-w.done
	w.mu.Lock()
	defer w.mu.Unlock()
	err := w.flushLocked()
	w.enc.Close()
	if w.f != nil {
		if serr := w.f.Sync(); err == nil && serr != nil {
			err = serr
		}
		if cerr := w.f.Close(); err == nil && cerr != nil {
			err = cerr
		}
	}
	return err
}
