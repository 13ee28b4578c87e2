package kafka

import (
	"io"

	"github.com/klauspost/compress/zstd"
	kcompress "github.com/segmentio/kafka-go/compress"
	kzstd "github.com/segmentio/kafka-go/compress/zstd"
)

// zstdWindow is the zstd window of produced batches. A record set is at
// most max_message_bytes (1 MiB by default) and is compressed alone, so a
// larger window finds nothing more. With the library's default window (8
// MiB) a new encoder at the fastest level allocated 9 MB on its first batch
// here; with this one and its lower-memory option, 1.6 MB.
const zstdWindow = 1 << 20

// zstdEncoders is how many encoders are kept between batches: the sender
// produces one request at a time, so one is in use and one spare.
const zstdEncoders = 2

// zstdCodec compresses produced batches with zstd at its fastest level
// and a 1 MiB window, and keeps its encoders between batches: kafka-go's
// codec keeps them in a sync.Pool, which garbage collections empty, so the
// sensor made a new encoder every few batches. Reading is kafka-go's.
//
// The fastest level: the sink compresses a batch of a few events at a time
// between the pipeline's other work, where the default level's 1 MiB match
// table is cold at every batch; in a session's exec storm it cost 100 us
// of sensor CPU per exec, most of it cache misses. The fastest level's
// table is a quarter of that and its ratio on events within a few percent
// (docs/performance.md).
type zstdCodec struct {
	kzstd.Codec // Code, Name and NewReader
	free        chan *zstd.Encoder
}

// kafka-go takes a batch's codec from its package-wide table, so the sink's
// is put there, once, before any sink exists.
func init() {
	kcompress.Codecs[kcompress.Zstd] = &zstdCodec{free: make(chan *zstd.Encoder, zstdEncoders)}
}

// NewWriter implements kafka-go's compress.Codec.
func (c *zstdCodec) NewWriter(w io.Writer) io.WriteCloser {
	select {
	case enc := <-c.free:
		enc.Reset(w)
		return &zstdWriter{c: c, enc: enc}
	default:
	}
	enc, err := zstd.NewWriter(w,
		zstd.WithEncoderLevel(zstd.SpeedFastest),
		zstd.WithEncoderConcurrency(1),
		zstd.WithWindowSize(zstdWindow),
		zstd.WithLowerEncoderMem(true),
		zstd.WithZeroFrames(true),
	)
	if err != nil {
		return &zstdWriter{err: err}
	}
	return &zstdWriter{c: c, enc: enc}
}

type zstdWriter struct {
	c   *zstdCodec
	enc *zstd.Encoder
	err error
}

func (w *zstdWriter) Write(p []byte) (int, error) {
	if w.enc == nil {
		return 0, w.errOrClosed()
	}
	return w.enc.Write(p)
}

// Close ends the frame and keeps the encoder for the next batch (not the
// writer it wrote to).
func (w *zstdWriter) Close() error {
	if w.enc == nil {
		return w.err
	}
	err := w.enc.Close()
	w.enc.Reset(io.Discard)
	select {
	case w.c.free <- w.enc:
	default:
	}
	w.enc = nil
	if err != nil {
		w.err = err
	}
	return err
}

func (w *zstdWriter) errOrClosed() error {
	if w.err != nil {
		return w.err
	}
	return io.ErrClosedPipe
}
