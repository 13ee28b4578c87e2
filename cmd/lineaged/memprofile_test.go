package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
)

// TestHeapProfileAtStop: the heap profile is written (0600, gzip: pprof's
// format) when the stop context ends and before the context the pipeline
// runs under does, and a path that cannot be created fails at once.
func TestHeapProfileAtStop(t *testing.T) {
	discard := slog.New(slog.NewTextHandler(io.Discard, nil))
	path := filepath.Join(t.TempDir(), "heap.prof")
	stop, cancel := context.WithCancel(context.Background())
	ctx, written, err := heapProfileAtStop(stop, path, discard)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-written:
		t.Fatal("written before the stop")
	default:
	}
	if ctx.Err() != nil {
		t.Fatal("the pipeline's context ended before the stop")
	}
	cancel()
	<-written
	if ctx.Err() == nil {
		t.Error("the pipeline's context did not end after the stop")
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", st.Mode().Perm())
	}
	b, _ := os.ReadFile(path)
	if !bytes.HasPrefix(b, []byte{0x1f, 0x8b}) {
		t.Errorf("not a pprof (gzip) profile: %d bytes", len(b))
	}
	if _, _, err := heapProfileAtStop(stop, filepath.Join(t.TempDir(), "no", "heap.prof"), discard); err == nil {
		t.Error("no error for a path in a missing directory")
	}
}
