package capture

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/klauspost/compress/zstd"
)

// ReaderConfig says how a reader treats damage and the end of the file.
type ReaderConfig struct {
	// SkipCorrupt skips a record or block whose checksum or framing does
	// not hold, counts it in Stats and goes on; otherwise it is an error.
	SkipCorrupt bool
	// Follow waits for more at the end of the file (a capture still being
	// written) instead of ending, until Context is done.
	Follow  bool
	Context context.Context
	// Poll is how often a follower looks for more (default 100ms).
	Poll time.Duration
}

// Stats counts what a reader saw.
type Stats struct {
	Blocks         int
	Records        int
	CorruptBlocks  int
	CorruptRecords int
	// SkippedBytes is what resynchronising on the next block passed over.
	SkippedBytes int64
}

// Reader reads records in order. Not safe for concurrent use.
type Reader struct {
	src    io.ReadSeeker
	br     *bufio.Reader
	pos    int64 // file offset of br's next byte
	cfg    ReaderConfig
	dec    *zstd.Decoder
	header Header

	block    []byte // the current block, decompressed
	blockOff int64  // its file offset
	left     []byte // its records not yet returned
	index    int    // index of the next record in it
	count    int    // records it declares
	stats    Stats
}

// NewReader reads the header of a capture and returns a reader positioned at
// its first record. Errors: ErrNotCapture, a *VersionError, or a
// *PositionError (truncated or corrupt header).
func NewReader(src io.ReadSeeker, cfg ReaderConfig) (*Reader, error) {
	if cfg.Poll <= 0 {
		cfg.Poll = 100 * time.Millisecond
	}
	if cfg.Context == nil {
		cfg.Context = context.Background()
	}
	start, err := src.Seek(0, io.SeekCurrent)
	if err != nil {
		return nil, fmt.Errorf("capture: %w", err)
	}
	r := &Reader{src: src, br: bufio.NewReaderSize(src, 1<<16), pos: start, cfg: cfg}
	if err := r.readHeader(); err != nil {
		return nil, err
	}
	r.dec, err = zstd.NewReader(nil, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxMemory(MaxBlockBytes))
	if err != nil {
		return nil, fmt.Errorf("capture: zstd: %w", err)
	}
	return r, nil
}

// Header is the capture's header.
func (r *Reader) Header() Header { return r.header }

// Stats is what was read (and skipped) so far.
func (r *Reader) Stats() Stats { return r.stats }

// Close releases the decoder (not the source).
func (r *Reader) Close() {
	if r.dec != nil {
		r.dec.Close()
	}
}

func (r *Reader) read(b []byte) (int, error) {
	n, err := io.ReadFull(r.br, b)
	r.pos += int64(n)
	return n, err
}

func (r *Reader) readHeader() error {
	fixed := make([]byte, len(Magic)+2+4)
	n, err := r.read(fixed)
	if n < len(Magic) {
		if n > 0 && bytes.Equal(fixed[:n], Magic[:n]) {
			return &PositionError{Offset: 0, Record: -1, Reason: "file ends inside the magic", Err: ErrTruncated}
		}
		return ErrNotCapture
	}
	if !bytes.Equal(fixed[:len(Magic)], Magic[:]) {
		return ErrNotCapture
	}
	if err != nil {
		return &PositionError{Offset: 0, Record: -1, Reason: "file ends inside the header", Err: ErrTruncated}
	}
	v := int(binary.LittleEndian.Uint16(fixed[len(Magic):]))
	if v > FormatVersion {
		return &VersionError{File: v, Reader: FormatVersion}
	}
	if v == 0 {
		return &PositionError{Offset: int64(len(Magic)), Record: -1, Reason: "format version 0", Err: ErrCorrupt}
	}
	hl := binary.LittleEndian.Uint32(fixed[len(Magic)+2:])
	if hl > MaxHeaderBytes {
		return &PositionError{Offset: 0, Record: -1, Reason: fmt.Sprintf("header length %d over %d", hl, MaxHeaderBytes), Err: ErrCorrupt}
	}
	js := make([]byte, int(hl)+4)
	if _, err := r.read(js); err != nil {
		return &PositionError{Offset: 0, Record: -1, Reason: "file ends inside the header", Err: ErrTruncated}
	}
	body, sum := js[:hl], binary.LittleEndian.Uint32(js[hl:])
	if crc(body) != sum {
		return &PositionError{Offset: 0, Record: -1, Reason: "header checksum mismatch", Err: ErrCorrupt}
	}
	if err := json.Unmarshal(body, &r.header); err != nil {
		return &PositionError{Offset: 0, Record: -1, Reason: "header: " + err.Error(), Err: ErrCorrupt}
	}
	r.header.FormatVersion = v
	return nil
}

// Next returns the next record. At the clean end of the file it returns
// io.EOF. A file that ends inside a block gives a *PositionError wrapping
// ErrTruncated (every whole record before it has been returned); damage
// gives one wrapping ErrCorrupt unless SkipCorrupt. The payload shares
// the decompressed block and stays valid after later calls: a block's
// memory is never reused, so a caller keeping every record need not copy
// them.
func (r *Reader) Next() (Record, error) {
	for {
		if len(r.left) > 0 {
			rec, ok, err := r.nextInBlock()
			if err != nil {
				return Record{}, err
			}
			if ok {
				r.stats.Records++
				return rec, nil
			}
			continue
		}
		if r.block != nil && r.index != r.count {
			err := r.corruptBlock(r.blockOff, fmt.Sprintf("block declares %d records, holds %d", r.count, r.index))
			r.block = nil
			if err != nil {
				return Record{}, err
			}
		}
		r.block = nil
		if err := r.nextBlock(); err != nil {
			return Record{}, err
		}
	}
}

// nextInBlock parses one record of the current block; ok is false when it
// was skipped.
func (r *Reader) nextInBlock() (rec Record, ok bool, err error) {
	idx := r.index
	r.index++
	n, k := binary.Uvarint(r.left)
	if k <= 0 || n > MaxRecordBytes || uint64(len(r.left)-k) < n+5 {
		// The framing is lost: nothing after it in this block can be
		// trusted.
		skipped := r.count - idx
		r.left = nil
		r.index = r.count
		if !r.cfg.SkipCorrupt {
			return rec, false, &PositionError{Offset: r.blockOff, Record: idx, Reason: "record length runs past its block", Err: ErrCorrupt}
		}
		r.stats.CorruptRecords += max(skipped, 1)
		return rec, false, nil
	}
	body := r.left[k : k+int(n)+1]
	sum := binary.LittleEndian.Uint32(r.left[k+int(n)+1:])
	r.left = r.left[k+int(n)+5:]
	if crc(body) != sum {
		if !r.cfg.SkipCorrupt {
			return rec, false, &PositionError{Offset: r.blockOff, Record: idx, Reason: "record checksum mismatch", Err: ErrCorrupt}
		}
		r.stats.CorruptRecords++
		return rec, false, nil
	}
	if Type(body[0]) == TypeSnapshot && r.header.FormatVersion < 2 {
		// Version 1 has no snapshot record: a writer that knew of none
		// cannot have meant one.
		if !r.cfg.SkipCorrupt {
			return rec, false, &PositionError{Offset: r.blockOff, Record: idx, Reason: "snapshot record in a version 1 capture", Err: ErrCorrupt}
		}
		r.stats.CorruptRecords++
		return rec, false, nil
	}
	return Record{Type: Type(body[0]), Payload: body[1:]}, true, nil
}

// corruptBlock reports damage at off, or counts it when skipping.
func (r *Reader) corruptBlock(off int64, reason string) error {
	if !r.cfg.SkipCorrupt {
		return &PositionError{Offset: off, Record: -1, Reason: reason, Err: ErrCorrupt}
	}
	r.stats.CorruptBlocks++
	return nil
}

// seek repositions the reader at off.
func (r *Reader) seek(off int64) error {
	if _, err := r.src.Seek(off, io.SeekStart); err != nil {
		return fmt.Errorf("capture: %w", err)
	}
	r.br.Reset(r.src)
	r.pos = off
	return nil
}

// wait sleeps one poll interval of a follower; false when it should stop.
func (r *Reader) wait() bool {
	if !r.cfg.Follow {
		return false
	}
	select {
	case <-r.cfg.Context.Done():
		return false
	case <-time.After(r.cfg.Poll):
		return true
	}
}

// nextBlock reads and decompresses the next block.
func (r *Reader) nextBlock() error {
	for {
		off := r.pos
		hdr := make([]byte, blockHeaderLen)
		n, err := r.read(hdr)
		if n == 0 && errors.Is(err, io.EOF) {
			if r.wait() {
				if err := r.seek(off); err != nil {
					return err
				}
				continue
			}
			return io.EOF
		}
		if err == nil && !bytes.Equal(hdr[:4], BlockMagic[:]) {
			if err := r.corruptBlock(off, "no block starts here"); err != nil {
				return err
			}
			if err := r.resync(off + 1); err != nil {
				return err
			}
			continue
		}
		size := binary.LittleEndian.Uint32(hdr[4:])
		if err == nil && size > MaxBlockBytes {
			if err := r.corruptBlock(off, fmt.Sprintf("block length %d over %d", size, MaxBlockBytes)); err != nil {
				return err
			}
			if err := r.resync(off + 1); err != nil {
				return err
			}
			continue
		}
		var body []byte
		if err == nil {
			body = make([]byte, size)
			_, err = r.read(body)
		}
		if err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				if r.wait() {
					if err := r.seek(off); err != nil {
						return err
					}
					continue
				}
				return &PositionError{Offset: off, Record: -1, Err: ErrTruncated,
					Reason: "the file ends inside this block; every whole record before it was read"}
			}
			return fmt.Errorf("capture: %w", err)
		}
		if crc(body) != binary.LittleEndian.Uint32(hdr[12:]) {
			if err := r.corruptBlock(off, "block checksum mismatch"); err != nil {
				return err
			}
			if err := r.resync(off + 1); err != nil {
				return err
			}
			continue
		}
		// A new block each time: the records returned keep theirs.
		out, derr := r.dec.DecodeAll(body, nil)
		if derr != nil || len(out) > MaxBlockBytes {
			reason := "block does not decompress"
			if derr != nil {
				reason += ": " + derr.Error()
			}
			if err := r.corruptBlock(off, reason); err != nil {
				return err
			}
			continue
		}
		r.stats.Blocks++
		r.block, r.left, r.blockOff = out, out, off
		r.index, r.count = 0, int(binary.LittleEndian.Uint32(hdr[8:]))
		if len(out) == 0 {
			r.block = nil
		}
		return nil
	}
}

// resync looks for the next block magic from off on.
func (r *Reader) resync(off int64) error {
	if err := r.seek(off); err != nil {
		return err
	}
	var win [4]byte
	have := 0
	for {
		c, err := r.br.ReadByte()
		if err != nil {
			// Nothing more that looks like a block: the end.
			r.stats.SkippedBytes += r.pos - off
			return r.seek(r.pos)
		}
		r.pos++
		if have < 4 {
			win[have] = c
			have++
		} else {
			copy(win[:], win[1:])
			win[3] = c
		}
		if have == 4 && win == BlockMagic {
			start := r.pos - 4
			r.stats.SkippedBytes += start - off
			return r.seek(start)
		}
	}
}
