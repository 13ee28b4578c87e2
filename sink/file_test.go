package sink

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lineaged/lineaged/lineage/event"
	"github.com/lineaged/lineaged/sink/internal/testevents"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// The output is never reached through a symbolic link, a FIFO (which
// would block the open, and so the sensor, until a reader came) or any
// other non-regular file: each is refused at once with an error naming it.
func TestFileSinkRefusesSymlinkAndFIFO(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "target")
	if err := os.WriteFile(target, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "link.jsonl")
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	dangling := filepath.Join(dir, "dangling.jsonl")
	if err := os.Symlink(filepath.Join(dir, "absent"), dangling); err != nil {
		t.Fatal(err)
	}
	fifo := filepath.Join(dir, "fifo.jsonl")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]string{
		link:     "is a symbolic link",
		dangling: "is a symbolic link",
		fifo:     "is a FIFO",
		dir:      "is a directory",
	} {
		done := make(chan error, 1)
		go func() {
			r, err := OpenRotating(path, FileConfig{})
			if err == nil {
				r.Close()
			}
			done <- err
		}()
		select {
		case err := <-done:
			if err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), want) {
				t.Errorf("%s: got %v, want an error naming it and %q", path, err, want)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("%s: opening blocked", path)
		}
	}
	if _, err := os.Lstat(filepath.Join(dir, "absent")); !errors.Is(err, os.ErrNotExist) {
		t.Error("the dangling link's target was created")
	}
}

// An existing output file keeps its mode: the sensor did not create it.
// One it creates is 0600 whatever the umask.
func TestFileSinkLeavesAnExistingFileMode(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "events.jsonl")
	if err := os.WriteFile(path, []byte("old\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, 0o640); err != nil {
		t.Fatal(err)
	}
	r, err := OpenRotating(path, FileConfig{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Write([]byte("new\n")); err != nil {
		t.Fatal(err)
	}
	r.Close()
	fi, _ := os.Stat(path)
	if fi.Mode().Perm() != 0o640 {
		t.Errorf("existing file mode %v, want it left at 0640", fi.Mode().Perm())
	}
	if b, _ := os.ReadFile(path); string(b) != "old\nnew\n" {
		t.Errorf("content %q", b)
	}
	old := syscall.Umask(0)
	defer syscall.Umask(old)
	fresh := filepath.Join(dir, "fresh.jsonl")
	r, err = OpenRotating(fresh, FileConfig{})
	if err != nil {
		t.Fatal(err)
	}
	r.Close()
	if fi, _ := os.Stat(fresh); fi.Mode().Perm() != 0o600 {
		t.Errorf("created file mode %v, want 0600", fi.Mode().Perm())
	}
}

// A rotation that fails does not close the sink: the lines go into the
// live file, the failure is reported, and rotation resumes once the cause
// is gone.
func TestFailedRotationKeepsWriting(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "events.jsonl")
	r, err := OpenRotating(path, FileConfig{MaxBytes: 10, Retain: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	now := time.Unix(1000, 0)
	r.now = func() time.Time { return now }
	// A non-empty directory at FILE.1: the rotation cannot remove it.
	blocker := path + ".1"
	if err := os.MkdirAll(filepath.Join(blocker, "x"), 0o700); err != nil {
		t.Fatal(err)
	}
	line := []byte("0123456789\n")
	if _, err := r.Write(line); err != nil {
		t.Fatal(err)
	}
	n, err := r.Write(line) // needs a rotation, which fails
	if n != len(line) || !errors.Is(err, ErrRotate) || !strings.Contains(err.Error(), path) {
		t.Fatalf("write during a failed rotation: %d, %v", n, err)
	}
	// Within the retry interval: written without another attempt.
	if n, err := r.Write(line); n != len(line) || err != nil {
		t.Fatalf("write after a failed rotation: %d, %v", n, err)
	}
	if b, _ := os.ReadFile(path); !bytes.Equal(b, bytes.Repeat(line, 3)) {
		t.Fatalf("live file holds %q", b)
	}
	if err := os.RemoveAll(blocker); err != nil {
		t.Fatal(err)
	}
	now = now.Add(2 * rotateRetry)
	if n, err := r.Write(line); n != len(line) || err != nil {
		t.Fatalf("write once the rotation can succeed: %d, %v", n, err)
	}
	if b, _ := os.ReadFile(path + ".1"); !bytes.Equal(b, bytes.Repeat(line, 3)) {
		t.Errorf("rotated file holds %q", b)
	}
	if b, _ := os.ReadFile(path); !bytes.Equal(b, line) {
		t.Errorf("new live file holds %q", b)
	}
}

// Through the file sink, a failed rotation loses no event: the batch is
// counted as written and the failure as a rotate error, named in the error.
func TestFailedRotationCountsNoLoss(t *testing.T) {
	path := filepath.Join(t.TempDir(), "events.jsonl")
	r, err := OpenRotating(path, FileConfig{MaxBytes: 100, Retain: 1})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(path+".1", "x"), 0o700); err != nil {
		t.Fatal(err)
	}
	enc, _ := NewEncoder(FormatNative, Config{}.Native, "")
	m := newWriterMetrics(nil)
	s := newWriterSink(enc, r, m, "file", writerOptions{flushBytes: -1})
	var errs int
	for i := 1; i <= 3; i++ {
		if err := s.Write(context.Background(), testevents.New(event.KindProcessExec, uint64(i), "s")); err != nil {
			if !errors.Is(err, ErrRotate) || !strings.Contains(err.Error(), "sink file") {
				t.Fatalf("write %d: %v", i, err)
			}
			errs++
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if errs != 1 {
		t.Errorf("%d rotation errors reported, want 1 (the next attempt waits %v)", errs, rotateRetry)
	}
	if v := testutil.ToFloat64(m.events.WithLabelValues("file")); v != 3 {
		t.Errorf("%v events counted as written, want 3", v)
	}
	if v := testutil.ToFloat64(m.errors.WithLabelValues("file", "rotate")); v != 1 {
		t.Errorf("%v rotate errors counted, want 1", v)
	}
	if v := testutil.ToFloat64(m.errors.WithLabelValues("file", "write")); v != 0 {
		t.Errorf("%v write errors counted, want 0", v)
	}
	if n := len(fileLines(t, path)); n != 3 {
		t.Errorf("live file holds %d events, want 3", n)
	}
}
