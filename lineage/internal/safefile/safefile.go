// Package safefile opens files whose path a user (and so an agent) controls
// without letting the file stall or redirect the sensor: a FIFO planted at
// the path would block a plain open forever, a device would be read as if
// it were data, and a symlink could send the read elsewhere.
package safefile

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"syscall"
)

// The reasons OpenRegular refuses a file; its errors wrap one of them and
// name the path.
var (
	// ErrNotRegular: the path is a FIFO, socket, device or directory.
	ErrNotRegular = errors.New("not a regular file")
	// ErrSymlink: the path's last component is a symlink and Options.NoFollow
	// is set.
	ErrSymlink = errors.New("symlink refused")
	// ErrTooLarge: the file is larger than Options.MaxBytes.
	ErrTooLarge = errors.New("too large")
)

// Options say what else OpenRegular refuses.
type Options struct {
	// NoFollow refuses a symlink as the path's last component (O_NOFOLLOW).
	NoFollow bool
	// MaxBytes refuses a file larger than this; 0 means no limit.
	MaxBytes int64
}

// OpenRegular opens path read-only with O_NONBLOCK, so opening a FIFO
// returns at once, then refuses anything fstat does not call a regular file.
// It returns the open file and its fstat (Sys() is a *syscall.Stat_t): the
// caller checks the file it holds, never the path again. O_NONBLOCK has no
// effect on reads of a regular file.
func OpenRegular(path string, o Options) (*os.File, fs.FileInfo, error) {
	flags := os.O_RDONLY | syscall.O_NONBLOCK
	if o.NoFollow {
		flags |= syscall.O_NOFOLLOW
	}
	f, err := os.OpenFile(path, flags, 0)
	if err != nil {
		if o.NoFollow && errors.Is(err, syscall.ELOOP) {
			return nil, nil, fmt.Errorf("%s: %w", path, ErrSymlink)
		}
		return nil, nil, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	if !st.Mode().IsRegular() {
		f.Close()
		return nil, nil, fmt.Errorf("%s: %w (%s)", path, ErrNotRegular, kind(st.Mode()))
	}
	if o.MaxBytes > 0 && st.Size() > o.MaxBytes {
		f.Close()
		return nil, nil, fmt.Errorf("%s: %w: %d bytes, over %d", path, ErrTooLarge, st.Size(), o.MaxBytes)
	}
	return f, st, nil
}

// ReadRegular reads the whole of a file OpenRegular accepts, at most
// o.MaxBytes of it even if it grows after the check.
func ReadRegular(path string, o Options) ([]byte, error) {
	f, _, err := OpenRegular(path, o)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var r io.Reader = f
	if o.MaxBytes > 0 {
		r = io.LimitReader(f, o.MaxBytes)
	}
	b, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return b, nil
}

func kind(m fs.FileMode) string {
	switch {
	case m&fs.ModeNamedPipe != 0:
		return "a FIFO"
	case m&fs.ModeSocket != 0:
		return "a socket"
	case m&fs.ModeCharDevice != 0:
		return "a character device"
	case m&fs.ModeDevice != 0:
		return "a block device"
	case m.IsDir():
		return "a directory"
	}
	return m.Type().String()
}
