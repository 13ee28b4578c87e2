package testevents

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/lineaged/lineaged/lineage/event"
)

// Appender is what an encoder offers the golden test.
type Appender interface {
	Append(dst []byte, ev *event.Event) ([]byte, error)
}

// Golden encodes, one per line, the events of every kind from New, and
// Filled plain and hostile, and compares the bytes with the file at path;
// with update set it rewrites the file instead. An encoder refactoring that
// must not change the output runs this unchanged.
func Golden(t *testing.T, enc Appender, path string, update bool) {
	t.Helper()
	var got []byte
	for i, k := range Kinds {
		for _, ev := range []*event.Event{New(k, uint64(i+1), "5f0c7c1e-3b7a-4a51-9d7e-2c1e0b9a8f77"), Filled(k, false), Filled(k, true)} {
			var err error
			got, err = enc.Append(got, ev)
			if err != nil {
				t.Fatalf("%s: %v", k, err)
			}
			got = append(got, '\n')
		}
	}
	if update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if bytes.Equal(got, want) {
		return
	}
	gl, wl := bytes.Split(got, []byte("\n")), bytes.Split(want, []byte("\n"))
	for i := range min(len(gl), len(wl)) {
		if !bytes.Equal(gl[i], wl[i]) {
			t.Fatalf("%s line %d differs:\ngot  %s\nwant %s", path, i+1, gl[i], wl[i])
		}
	}
	t.Fatalf("%s: %d lines, want %d", path, len(gl), len(wl))
}
