package kafka

import (
	"bytes"
	"io"
	"runtime"
	"testing"

	kcompress "github.com/segmentio/kafka-go/compress"
	kzstd "github.com/segmentio/kafka-go/compress/zstd"

	"github.com/lineaged/lineaged/sink/internal/kafkatest"
	"github.com/lineaged/lineaged/sink/native"
)

// batchBytes is a record set's worth of encoded events.
func batchBytes(t testing.TB) []byte {
	var b []byte
	for _, ev := range kafkatest.Events(1, 50, 2) {
		line, err := (native.Encoder{}).Append(nil, ev)
		if err != nil {
			t.Fatal(err)
		}
		b = append(b, line...)
	}
	return b
}

func compressWith(t testing.TB, c kcompress.Codec, data []byte) []byte {
	var out bytes.Buffer
	w := c.NewWriter(&out)
	if _, err := w.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

// The sink's zstd batches read back with kafka-go's reader (any consumer's
// zstd), batch after batch through the same kept encoder.
func TestZstdBatchesReadBack(t *testing.T) {
	c := kcompress.Zstd.Codec()
	if _, ok := c.(*zstdCodec); !ok {
		t.Fatalf("the zstd codec kafka-go uses is %T, want the sink's", c)
	}
	data := batchBytes(t)
	for i := range 3 {
		z := compressWith(t, c, data)
		r := c.NewReader(bytes.NewReader(z))
		got, err := io.ReadAll(r)
		r.Close()
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("batch %d: read back %d bytes (err %v), want the %d written", i, len(got), err, len(data))
		}
		if len(z)*3 > len(data) {
			t.Fatalf("batch %d: %d bytes compressed to %d", i, len(data), len(z))
		}
	}
}

// allocatedPerBatch is the memory allocated to compress one batch when a
// garbage collection runs between batches, as one does in a running
// sensor.
func allocatedPerBatch(t *testing.T, c kcompress.Codec, data []byte) uint64 {
	compressWith(t, c, data)
	const n = 10
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range n {
		runtime.GC()
		compressWith(t, c, data)
	}
	runtime.ReadMemStats(&after)
	return (after.TotalAlloc - before.TotalAlloc) / n
}

// An encoder outlives the collections between batches: the codec kafka-go
// comes with makes a new one after a collection (3.6 MB allocated a batch
// here, at the same level; the sink's codec 6 KB).
func TestZstdEncoderKeptAcrossCollections(t *testing.T) {
	data := batchBytes(t)
	ours := allocatedPerBatch(t, kcompress.Zstd.Codec(), data)
	theirs := allocatedPerBatch(t, &kzstd.Codec{Level: 1}, data)
	t.Logf("allocated per batch with a collection between: %d bytes (kafka-go's codec at the same level: %d)", ours, theirs)
	if ours > 256<<10 {
		t.Fatalf("%d bytes allocated per batch, want the encoder kept (under 256 KiB)", ours)
	}
}
