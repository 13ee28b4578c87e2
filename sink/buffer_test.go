package sink

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/lineaged/lineaged/lineage/event"
	"github.com/lineaged/lineaged/sink/internal/testevents"
)

// lines returns the complete lines of the file, failing on a torn one.
func fileLines(t *testing.T, path string) [][]byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) > 0 && b[len(b)-1] != '\n' {
		t.Fatalf("%s ends inside a line: %q", path, b[max(0, len(b)-40):])
	}
	ls := bytes.Split(bytes.TrimSuffix(b, []byte("\n")), []byte("\n"))
	if len(b) == 0 {
		return nil
	}
	for i, l := range ls {
		if !json.Valid(l) {
			t.Fatalf("%s line %d is not one JSON object: %q", path, i, l)
		}
	}
	return ls
}

// Events are batched, not written one by one, yet reach the file within
// the flush window without Close: a tail -f of the output lags by at most
// FlushAfter.
func TestFileSinkFlushesWhenIdle(t *testing.T) {
	path := filepath.Join(t.TempDir(), "events.jsonl")
	reg := prometheus.NewRegistry()
	s, err := New(Config{Output: path}, reg, discard())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	const n = 5
	start := time.Now()
	for i := 1; i <= n; i++ {
		if err := s.Write(context.Background(), testevents.New(event.KindProcessExec, uint64(i), "s")); err != nil {
			t.Fatal(err)
		}
	}
	if got := fileLines(t, path); len(got) != 0 && time.Since(start) < FlushAfter/2 {
		t.Fatalf("%d lines in the file at once: the writes are not batched", len(got))
	}
	var got [][]byte
	for time.Since(start) < 5*time.Second {
		if got = fileLines(t, path); len(got) == n {
			break
		}
		time.Sleep(2 * time.Millisecond)
	}
	took := time.Since(start)
	if len(got) != n {
		t.Fatalf("%d of %d lines in the file after %v without Close", len(got), n, took)
	}
	// The window plus scheduling slack on a loaded machine (under -race,
	// with other tests running): what fails is a flush that waits for
	// more events or for Close.
	if took > FlushAfter+time.Second {
		t.Errorf("the lines took %v to reach the file, the window is %v", took, FlushAfter)
	}
	if v := testutil.ToFloat64(s.(*writerSink).m.events.WithLabelValues("file")); v != n {
		t.Errorf("lineaged_sink_events_total{sink=file} = %v, want %d", v, n)
	}
	t.Logf("%d events in the file %v after the first write", n, took)
}

// Close writes what is pending, at once.
func TestCloseFlushes(t *testing.T) {
	path := filepath.Join(t.TempDir(), "events.jsonl")
	// A window no test waits for: only Close can have written the lines.
	f, err := OpenRotating(path, FileConfig{})
	if err != nil {
		t.Fatal(err)
	}
	enc, _ := NewEncoder(FormatNative, Config{}.Native, "")
	s := newWriterSink(enc, f, newWriterMetrics(nil), "file", writerOptions{flushAfter: time.Hour})
	const n = 7
	for i := 1; i <= n; i++ {
		if err := s.Write(context.Background(), testevents.New(event.KindProcessExec, uint64(i), "s")); err != nil {
			t.Fatal(err)
		}
	}
	if got := fileLines(t, path); len(got) != 0 {
		t.Fatalf("%d lines before Close with an hour's window", len(got))
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if got := fileLines(t, path); len(got) != n {
		t.Fatalf("%d lines after Close, want %d", len(got), n)
	}
	if err := s.Write(context.Background(), testevents.New(event.KindProcessExec, 99, "s")); !errors.Is(err, os.ErrClosed) || !strings.Contains(err.Error(), "sink file") {
		t.Fatalf("Write after Close: %v", err)
	}
}

// recorder keeps every write call.
type recorder struct {
	mu     sync.Mutex
	writes [][]byte
	fail   error
}

func (r *recorder) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fail != nil {
		return 0, r.fail
	}
	r.writes = append(r.writes, bytes.Clone(p))
	return len(p), nil
}

func (r *recorder) Close() error { return nil }

// A burst is written in batches of at most FlushBytes (plus the event that
// crossed it), each of whole lines, and what waits in memory stays under
// the bound however many events come.
func TestBatchIsBounded(t *testing.T) {
	rec := &recorder{}
	enc, _ := NewEncoder(FormatNative, Config{}.Native, "")
	s := newWriterSink(enc, rec, newWriterMetrics(nil), "stdout", writerOptions{flushAfter: time.Hour})
	var total, biggest int
	const n = 2000
	for i := 1; i <= n; i++ {
		ev := testevents.New(event.KindProcessExec, uint64(i), "s")
		line, _ := enc.Append(nil, ev)
		total += len(line) + 1
		biggest = max(biggest, len(line)+1)
		if err := s.Write(context.Background(), ev); err != nil {
			t.Fatal(err)
		}
		s.mu.Lock()
		held := len(s.buf)
		s.mu.Unlock()
		if held >= FlushBytes {
			t.Fatalf("after event %d, %d bytes wait in memory (bound %d)", i, held, FlushBytes)
		}
	}
	if total < 16*FlushBytes {
		t.Fatalf("the burst is only %d bytes: not a test of the bound", total)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	var lines int
	for i, w := range rec.writes {
		if len(w) > FlushBytes+biggest {
			t.Errorf("write %d is %d bytes, over %d + one event", i, len(w), FlushBytes)
		}
		if w[len(w)-1] != '\n' {
			t.Fatalf("write %d ends inside a line", i)
		}
		lines += bytes.Count(w, []byte("\n"))
	}
	if lines != n || len(rec.writes) > total/FlushBytes+2 {
		t.Fatalf("%d lines in %d writes for %d events of %d bytes", lines, len(rec.writes), n, total)
	}
}

// A failed write is reported with the sink's name, whether the flush was
// caused by a Write, the timer (reported by the next call) or Close, and
// the events of the lost batch are counted as errors.
func TestWriteErrorNamesTheSink(t *testing.T) {
	enc, _ := NewEncoder(FormatNative, Config{}.Native, "")
	ev := testevents.New(event.KindProcessExec, 1, "s")
	for _, name := range []string{"file", "stdout"} {
		rec := &recorder{fail: errors.New("no space left on device")}
		m := newWriterMetrics(nil)
		s := newWriterSink(enc, rec, m, name, writerOptions{flushAfter: time.Millisecond})
		if err := s.Write(context.Background(), ev); err != nil {
			t.Fatalf("%s: queueing failed: %v", name, err)
		}
		deadline := time.Now().Add(5 * time.Second)
		for testutil.ToFloat64(m.errors.WithLabelValues(name, "write")) == 0 && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
		err := s.Write(context.Background(), ev)
		if err == nil || !strings.Contains(err.Error(), "sink "+name+": 1 events not written: no space left") {
			t.Fatalf("%s: the timed flush's failure, reported by the next write: %v", name, err)
		}
		err = s.Close()
		if err == nil || !strings.Contains(err.Error(), "sink "+name) {
			t.Fatalf("%s: Close: %v", name, err)
		}
		if v := testutil.ToFloat64(m.errors.WithLabelValues(name, "write")); v != 2 {
			t.Errorf("%s: %v write errors counted, want 2", name, v)
		}
		if v := testutil.ToFloat64(m.events.WithLabelValues(name)); v != 0 {
			t.Errorf("%s: %v events counted as written", name, v)
		}
	}
	rec := &recorder{fail: errors.New("broken pipe")}
	s := newWriterSink(enc, rec, newWriterMetrics(nil), "file", writerOptions{flushBytes: -1})
	if err := s.Write(context.Background(), ev); err == nil || !strings.Contains(err.Error(), "sink file") {
		t.Fatalf("unbuffered write: %v", err)
	}
}

// A batch that crosses the rotation size is split between the files at a
// line boundary: nothing lost, nothing torn, each file within the bound.
func TestRotationSplitsABatchAtLines(t *testing.T) {
	path := filepath.Join(t.TempDir(), "events.jsonl")
	r, err := OpenRotating(path, FileConfig{MaxBytes: 100, Retain: 10})
	if err != nil {
		t.Fatal(err)
	}
	line := func(c byte, n int) []byte { return append(bytes.Repeat([]byte{c}, n-1), '\n') }
	batch := bytes.Join([][]byte{line('a', 40), line('b', 40), line('c', 40), line('d', 150), line('e', 10)}, nil)
	if n, err := r.Write(batch); err != nil || n != len(batch) {
		t.Fatalf("wrote %d of %d: %v", n, len(batch), err)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		path + ".3": "ab", // 80 bytes; c would take it past 100
		path + ".2": "c",  // d is over the bound: a file of its own
		path + ".1": "d",
		path:        "e",
	}
	for f, w := range want {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var got []byte
		for _, l := range bytes.SplitAfter(b, []byte("\n")) {
			if len(l) == 0 {
				continue
			}
			if l[len(l)-1] != '\n' || bytes.Count(l, l[:1]) != len(l)-1 {
				t.Fatalf("%s: torn line %q", f, l)
			}
			got = append(got, l[0])
		}
		if string(got) != w {
			t.Errorf("%s holds %q, want %q", f, got, w)
		}
	}
}
