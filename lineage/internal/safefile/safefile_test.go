package safefile

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestOpenRegular(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, []byte("0123456789"), 0o600); err != nil {
		t.Fatal(err)
	}
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "link")
	if err := os.Symlink(file, link); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name, path string
		o          Options
		want       error  // nil: opens
		says       string // in the error
	}{
		{"regular", file, Options{}, nil, ""},
		{"symlink followed", link, Options{}, nil, ""},
		{"symlink refused", link, Options{NoFollow: true}, ErrSymlink, link + ": symlink refused"},
		{"fifo", fifo, Options{}, ErrNotRegular, fifo + ": not a regular file (a FIFO)"},
		{"directory", dir, Options{}, ErrNotRegular, "(a directory)"},
		{"device", "/dev/null", Options{}, ErrNotRegular, "(a character device)"},
		{"at the limit", file, Options{MaxBytes: 10}, nil, ""},
		{"over the limit", file, Options{MaxBytes: 9}, ErrTooLarge, file + ": too large: 10 bytes, over 9"},
		{"missing", filepath.Join(dir, "none"), Options{}, os.ErrNotExist, "none"},
	} {
		t.Run(c.name, func(t *testing.T) {
			done := make(chan struct{})
			var err error
			go func() {
				defer close(done)
				var f *os.File
				f, _, err = OpenRegular(c.path, c.o)
				if f != nil {
					f.Close()
				}
			}()
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				t.Fatal("open blocked")
			}
			if c.want == nil {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if !errors.Is(err, c.want) || !strings.Contains(err.Error(), c.says) {
				t.Fatalf("err %v, want %v saying %q", err, c.want, c.says)
			}
		})
	}
}

func TestReadRegular(t *testing.T) {
	p := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(p, []byte("data"), 0o600); err != nil {
		t.Fatal(err)
	}
	b, err := ReadRegular(p, Options{MaxBytes: 4})
	if err != nil || string(b) != "data" {
		t.Fatalf("%q, %v", b, err)
	}
}
