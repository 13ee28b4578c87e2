package sink

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
)

// FileConfig rotates the output file by size.
type FileConfig struct {
	// MaxBytes rotates the file before it would grow past this size; 0
	// means 100 MiB.
	MaxBytes int64
	// Retain is how many rotated files (FILE.1 ... FILE.N) are kept; 0
	// means 5.
	Retain int
}

// Rotating is an append-only file, mode 0600, rotated by size: FILE is
// renamed FILE.1, FILE.1 becomes FILE.2, and so on; files past Retain are
// removed.
type Rotating struct {
	mu     sync.Mutex
	path   string
	cfg    FileConfig
	f      *os.File
	size   int64
	closed bool
}

// OpenRotating opens (creating with 0600 if needed) path for appending.
func OpenRotating(path string, cfg FileConfig) (*Rotating, error) {
	if cfg.MaxBytes < 0 || cfg.Retain < 0 {
		return nil, fmt.Errorf("sink: output %s: negative rotation settings (max bytes %d, retain %d)", path, cfg.MaxBytes, cfg.Retain)
	}
	if cfg.MaxBytes == 0 {
		cfg.MaxBytes = 100 << 20
	}
	if cfg.Retain == 0 {
		cfg.Retain = 5
	}
	r := &Rotating{path: path, cfg: cfg}
	if err := r.open(); err != nil {
		return nil, err
	}
	return r, nil
}

func (r *Rotating) open() error {
	f, err := os.OpenFile(r.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("sink: output: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return fmt.Errorf("sink: output: %w", err)
	}
	if !st.Mode().IsRegular() {
		f.Close()
		return fmt.Errorf("sink: output %s is not a regular file", r.path)
	}
	// An existing file keeps its content but not looser permissions.
	if st.Mode().Perm() != 0o600 {
		if err := f.Chmod(0o600); err != nil {
			f.Close()
			return fmt.Errorf("sink: output: %w", err)
		}
	}
	r.f, r.size = f, st.Size()
	return nil
}

// Write appends p, which holds whole lines (one event each), rotating
// whenever the next line would take the file past MaxBytes: a batch of
// lines is split between files at a line boundary, never inside a line,
// and every line lands in exactly one file. A single line larger than
// MaxBytes still goes into a file of its own. The int is the bytes of p
// written, in whichever file.
func (r *Rotating) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return 0, os.ErrClosed
	}
	written := 0
	for len(p) > 0 {
		chunk := p
		if room := r.cfg.MaxBytes - r.size; int64(len(p)) > room {
			cut := 0
			if room > 0 {
				cut = bytes.LastIndexByte(p[:room], '\n') + 1
			}
			if cut == 0 && r.size > 0 {
				if err := r.rotate(); err != nil {
					return written, err
				}
				continue
			}
			if cut == 0 {
				// An empty file and a first line over MaxBytes: alone.
				if cut = bytes.IndexByte(p, '\n') + 1; cut == 0 {
					cut = len(p)
				}
			}
			chunk = p[:cut]
		}
		n, err := r.f.Write(chunk)
		r.size += int64(n)
		written += n
		if err != nil {
			return written, err
		}
		p = p[n:]
	}
	return written, nil
}

func (r *Rotating) rotate() error {
	if err := r.f.Close(); err != nil {
		return fmt.Errorf("sink: output %s: %w", r.path, err)
	}
	name := func(i int) string { return r.path + "." + strconv.Itoa(i) }
	if err := os.Remove(name(r.cfg.Retain)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("sink: rotate: %w", err)
	}
	for i := r.cfg.Retain - 1; i >= 1; i-- {
		if err := os.Rename(name(i), name(i+1)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("sink: rotate: %w", err)
		}
	}
	if err := os.Rename(r.path, name(1)); err != nil {
		return fmt.Errorf("sink: rotate: %w", err)
	}
	return r.open()
}

// Close closes the file.
func (r *Rotating) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil
	}
	r.closed = true
	return r.f.Close()
}

// Path returns the path of the live file.
func (r *Rotating) Path() string { return filepath.Clean(r.path) }
