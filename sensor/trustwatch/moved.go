package trustwatch

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"path/filepath"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The second fanotify group reports directory entries: a file renamed or
// linked into an anchor directory (FAN_MOVED_TO, FAN_CREATE), which the
// first group, reporting opened files, does not see (a file written
// elsewhere and moved in is never opened there). Its events carry the
// directory's file handle and the entry's name, not an fd.

// dirHandles maps each marked directory's file handle to its path.
type dirHandles map[string]string

func handleKey(typ int32, b []byte) string {
	return fmt.Sprintf("%d:%x", typ, b)
}

// openEntries opens the entry group and marks dirs; it returns -1 (and no
// error) where the kernel has no directory-entry reporting.
func openEntries(dirs []string) (int, dirHandles, error) {
	fd, err := unix.FanotifyInit(unix.FAN_CLASS_NOTIF|unix.FAN_CLOEXEC|unix.FAN_NONBLOCK|unix.FAN_REPORT_DFID_NAME,
		unix.O_RDONLY|unix.O_LARGEFILE|unix.O_CLOEXEC)
	if err != nil {
		return -1, nil, nil
	}
	hs := dirHandles{}
	for _, d := range dirs {
		h, _, err := unix.NameToHandleAt(unix.AT_FDCWD, d, 0)
		if err != nil {
			unix.Close(fd)
			return -1, nil, fmt.Errorf("trust anchors: name_to_handle_at %s: %w", d, err)
		}
		hs[handleKey(h.Type(), h.Bytes())] = d
		if err := unix.FanotifyMark(fd, unix.FAN_MARK_ADD, unix.FAN_MOVED_TO|unix.FAN_CREATE, unix.AT_FDCWD, d); err != nil {
			unix.Close(fd)
			return -1, nil, fmt.Errorf("trust anchors: fanotify_mark %s (entries): %w", d, err)
		}
	}
	return fd, hs, nil
}

// parseEntries handles a buffer of the entry group's events.
func (w *Watcher) parseEntries(b []byte) {
	const metaLen = int(unsafe.Sizeof(unix.FanotifyEventMetadata{}))
	for len(b) >= metaLen {
		m := (*unix.FanotifyEventMetadata)(unsafe.Pointer(&b[0]))
		if m.Event_len < uint32(metaLen) || int(m.Event_len) > len(b) {
			return
		}
		ev := b[:m.Event_len]
		b = b[m.Event_len:]
		if m.Mask&unix.FAN_Q_OVERFLOW != 0 {
			w.overflow()
			continue
		}
		path, ok := w.entryPath(ev[m.Metadata_len:])
		if !ok || int(m.Pid) == w.self {
			continue
		}
		if a, ok := match(w.cfg.Anchors, path); ok {
			w.handle(path, a, m.Pid)
		}
	}
}

// entryPath reads a DFID_NAME info record: header (type, pad, len), fsid,
// file_handle (bytes, type, handle), then the entry's NUL-terminated name.
func (w *Watcher) entryPath(info []byte) (string, bool) {
	for len(info) >= 4 {
		typ, n := info[0], int(binary.NativeEndian.Uint16(info[2:4]))
		if n < 4 || n > len(info) {
			return "", false
		}
		rec := info[:n]
		info = info[n:]
		if typ != unix.FAN_EVENT_INFO_TYPE_DFID_NAME || len(rec) < 4+8+8 {
			continue
		}
		fh := rec[12:]
		hb := int(binary.NativeEndian.Uint32(fh[0:4]))
		ht := int32(binary.NativeEndian.Uint32(fh[4:8]))
		if 8+hb > len(fh) {
			return "", false
		}
		dir, ok := w.handles[handleKey(ht, fh[8:8+hb])]
		if !ok {
			return "", false
		}
		name := fh[8+hb:]
		if i := bytes.IndexByte(name, 0); i >= 0 {
			name = name[:i]
		}
		if len(name) == 0 || bytes.ContainsRune(name, '/') {
			return "", false
		}
		return filepath.Join(dir, string(name)), true
	}
	return "", false
}
