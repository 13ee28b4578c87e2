package sink

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"
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

// Rotating is an append-only file, rotated by size: FILE is renamed FILE.1,
// FILE.1 becomes FILE.2, and so on; files past Retain are removed. Files it
// creates are mode 0600; an existing FILE keeps its mode and owner (an
// admin's choice, or not a file the sensor may change). It never follows a
// symbolic link at FILE and refuses anything but a regular file there (a
// FIFO would block the pipeline, a device is not a log).
//
// A rotation that fails (a full disk, a directory in the way) leaves the
// live file open: lines keep going into it, past MaxBytes, Write reports
// the failure, and rotation is tried again at most once a second.
type Rotating struct {
	mu     sync.Mutex
	path   string
	cfg    FileConfig
	f      *os.File
	size   int64
	closed bool
	// retryAt is when a failed rotation may be tried again.
	retryAt time.Time
	now     func() time.Time
}

// rotateRetry is the least time between rotation attempts after a failure.
const rotateRetry = time.Second

// ErrRotate marks a Write error from a failed rotation: every byte was
// written, into the live file.
var ErrRotate = errors.New("rotation failed; lines kept in the live file")

// errRetryLater: a rotation failed less than rotateRetry ago; the lines go
// into the live file without another attempt (or report).
var errRetryLater = errors.New("rotation deferred")

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
	r := &Rotating{path: path, cfg: cfg, now: time.Now}
	f, size, err := openOutput(path)
	if err != nil {
		return nil, err
	}
	r.f, r.size = f, size
	return r, nil
}

// openOutput opens path for appending without following a symbolic link
// and without blocking (a FIFO with no reader would block open itself),
// creating it 0600 when absent. Only a regular file is accepted.
func openOutput(path string) (*os.File, int64, error) {
	const flags = os.O_WRONLY | os.O_APPEND | syscall.O_NOFOLLOW | syscall.O_NONBLOCK
	f, err := os.OpenFile(path, flags|os.O_CREATE|os.O_EXCL, 0o600)
	created := err == nil
	if errors.Is(err, os.ErrExist) {
		f, err = os.OpenFile(path, flags, 0)
	}
	if err != nil {
		if fi, lerr := os.Lstat(path); lerr == nil && !fi.Mode().IsRegular() {
			return nil, 0, fmt.Errorf("sink: output %s is %s, not a regular file", path, describeMode(fi.Mode()))
		}
		return nil, 0, fmt.Errorf("sink: output: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, fmt.Errorf("sink: output: %w", err)
	}
	if !st.Mode().IsRegular() {
		f.Close()
		return nil, 0, fmt.Errorf("sink: output %s is %s, not a regular file", path, describeMode(st.Mode()))
	}
	// Only a file made here is set to 0600 (the umask may have narrowed
	// it further; never widened).
	if created && st.Mode().Perm() != 0o600 {
		if err := f.Chmod(0o600); err != nil {
			f.Close()
			return nil, 0, fmt.Errorf("sink: output: %w", err)
		}
	}
	return f, st.Size(), nil
}

func describeMode(m os.FileMode) string {
	switch {
	case m&os.ModeSymlink != 0:
		return "a symbolic link"
	case m&os.ModeNamedPipe != 0:
		return "a FIFO"
	case m&os.ModeSocket != 0:
		return "a socket"
	case m&os.ModeDevice != 0:
		return "a device"
	case m.IsDir():
		return "a directory"
	}
	return "not a regular file (" + m.String() + ")"
}

// Write appends p, which holds whole lines (one event each), rotating
// whenever the next line would take the file past MaxBytes: a batch of
// lines is split between files at a line boundary, never inside a line,
// and every line lands in exactly one file. A single line larger than
// MaxBytes still goes into a file of its own. The int is the bytes of p
// written, in whichever file. When rotation fails the rest goes into the
// live file and the error wraps ErrRotate.
func (r *Rotating) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return 0, os.ErrClosed
	}
	written := 0
	var rotErr error
	for len(p) > 0 {
		chunk := p
		if room := r.cfg.MaxBytes - r.size; int64(len(p)) > room && rotErr == nil {
			cut := 0
			if room > 0 {
				cut = bytes.LastIndexByte(p[:room], '\n') + 1
			}
			if cut == 0 && r.size > 0 {
				if err := r.rotate(); err != nil {
					rotErr = err
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
			if rotErr == errRetryLater {
				rotErr = nil
			}
			return written, errors.Join(err, rotErr)
		}
		p = p[n:]
	}
	if rotErr == errRetryLater {
		rotErr = nil
	}
	return written, rotErr
}

// rotate shifts the files and opens a fresh live one. On failure the
// current live file stays open (renamed back if it had been moved), so
// the sink goes on writing; the next attempt waits rotateRetry.
func (r *Rotating) rotate() error {
	if r.now().Before(r.retryAt) {
		return errRetryLater
	}
	err := r.shift()
	if err != nil {
		r.retryAt = r.now().Add(rotateRetry)
		return fmt.Errorf("sink: output %s: %w: %w", r.path, ErrRotate, err)
	}
	r.retryAt = time.Time{}
	return nil
}

func (r *Rotating) shift() error {
	name := func(i int) string { return r.path + "." + strconv.Itoa(i) }
	if err := os.Remove(name(r.cfg.Retain)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("rotate: %w", err)
	}
	for i := r.cfg.Retain - 1; i >= 1; i-- {
		if err := os.Rename(name(i), name(i+1)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("rotate: %w", err)
		}
	}
	if err := os.Rename(r.path, name(1)); err != nil {
		return fmt.Errorf("rotate: %w", err)
	}
	f, size, err := openOutput(r.path)
	if err != nil {
		// Put the live file back where it was; it is still open.
		if berr := os.Rename(name(1), r.path); berr != nil {
			err = errors.Join(err, fmt.Errorf("rotate: moving the live file back: %w", berr))
		}
		return err
	}
	old := r.f
	r.f, r.size = f, size
	if err := old.Close(); err != nil {
		return fmt.Errorf("rotate: closing %s: %w", name(1), err)
	}
	return nil
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
