// Package binid is binary identity: the SHA-256 of the exact file a process
// executed (read through /proc/<pid>/exe, never by reopening its path),
// cached by (dev, inode, size, mtime, ctime) in memory and, with its birth
// time, across restarts in a state directory (persist.go), and a verdict on it from
// detached signatures (sigstore) and package databases (dpkg).
package binid

import (
	"context"
	"crypto/md5"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/lineaged/lineaged/lineage/internal/safefile"
	"github.com/lineaged/lineaged/sensor"
	"github.com/lineaged/lineaged/sensor/procfs"
)

// Digests of one file, computed in one read pass.
type Digests struct {
	SHA256 []byte
	MD5    []byte // only when a package claims the path
	SHA512 []byte // only when an Ed25519 key is trusted (Ed25519ph)
	Stat   sensor.FileStat
	// id and where are the identity and host path of the file for the
	// persisted cache; where is "" when it is not kept there.
	id    fileID
	where string
}

// sameFile compares the identity of the exec (want, possibly with the
// kernel's dev_t encoding) with stat(2) output.
func sameFile(want, got sensor.FileStat) bool {
	if want.Inode != got.Inode || want.Size != got.Size || want.MtimeNs != got.MtimeNs || want.CtimeNs != got.CtimeNs {
		return false
	}
	return want.Dev == got.Dev || procfs.KernelDev(want.Dev) == got.Dev
}

// sameImage is sameFile without ctime.
func sameImage(want, got sensor.FileStat) bool {
	want.CtimeNs = got.CtimeNs
	return sameFile(want, got)
}

// errLimit marks a size or time limit: the same file will hit it again.
var errLimit = errors.New("limit")

type limitErr struct{ msg string }

func (e limitErr) Error() string        { return e.msg }
func (e limitErr) Is(target error) bool { return target == errLimit }

// ErrVanished means neither /proc/<pid>/exe nor the path still holds the
// file that was executed.
var ErrVanished = errors.New("binary vanished")

// errRefused means the executed file is there but the sensor may not read
// it: /proc/<pid>/exe of another user's process needs CAP_SYS_PTRACE, a file
// only its owner may read needs CAP_DAC_READ_SEARCH. Not a vanishing.
var errRefused = errors.New("binary not readable by the sensor")

// notOpened names why neither /proc/<pid>/exe (procErr) nor the path
// (pathErr, nil when not tried) gave the executed file.
func notOpened(procErr, pathErr error, detail string) error {
	kind := ErrVanished
	if errors.Is(procErr, fs.ErrPermission) || errors.Is(pathErr, fs.ErrPermission) {
		kind = errRefused
	}
	msg := procErr.Error()
	if pathErr != nil {
		msg += "; " + pathErr.Error()
	}
	if detail != "" {
		msg += "; " + detail
	}
	return fmt.Errorf("%w: %s", kind, msg)
}

// hashRequest is what to hash and how.
type hashRequest struct {
	procRoot string
	pid      uint32
	path     string // d_path of the exec, may end in " (deleted)"
	stat     sensor.FileStat
	hasStat  bool
	byPath   bool
	md5      bool
	sha512   bool
	maxBytes int64
}

// openExec opens the executed file: /proc/<pid>/exe first (right even after
// the path was replaced or deleted, for memfd and in other mount
// namespaces); when the process is gone or runs another image, the path,
// but only if its stat still matches the exec's.
func openExec(r hashRequest) (*os.File, sensor.FileStat, error) {
	if r.byPath {
		return openByPath(r.path)
	}
	exe := r.procRoot + "/" + strconv.FormatUint(uint64(r.pid), 10) + "/exe"
	f, err := os.Open(exe)
	if err == nil {
		st, serr := fstat(f)
		// /proc/<pid>/exe is the running file by definition unless the
		// process exec'd again; its ctime is not compared because
		// unlinking or renaming over a path changes the old inode's ctime.
		if serr == nil && (!r.hasStat || sameImage(r.stat, st)) {
			return f, st, nil
		}
		f.Close()
		if serr != nil {
			err = serr
		} else {
			err = fmt.Errorf("%s is another file now (the process exec'd again)", exe)
		}
	}
	if !r.hasStat {
		return nil, sensor.FileStat{}, notOpened(err, nil, "")
	}
	path, deleted := strings.CutSuffix(r.path, " (deleted)")
	if deleted || path == "" || !strings.HasPrefix(path, "/") {
		return nil, sensor.FileStat{}, notOpened(err, nil, "")
	}
	// The path is user-controlled: a symlink or FIFO swapped in must neither
	// redirect nor block the hashing worker.
	pf, info, perr := safefile.OpenRegular(path, safefile.Options{NoFollow: true})
	if perr != nil {
		return nil, sensor.FileStat{}, notOpened(err, perr, "")
	}
	st := procfs.FileStatOf(info.Sys().(*syscall.Stat_t))
	if !sameFile(r.stat, st) {
		pf.Close()
		return nil, sensor.FileStat{}, notOpened(err, nil, path+" is not the file that was executed")
	}
	return pf, st, nil
}

// openByPath opens the regular file path names now, symlinks followed (as
// the dynamic loader follows them), never blocking on a FIFO.
func openByPath(path string) (*os.File, sensor.FileStat, error) {
	if !strings.HasPrefix(path, "/") {
		return nil, sensor.FileStat{}, fmt.Errorf("%w: %q is not an absolute path", ErrVanished, path)
	}
	f, info, err := safefile.OpenRegular(path, safefile.Options{})
	if err != nil {
		kind := ErrVanished
		if errors.Is(err, fs.ErrPermission) {
			kind = errRefused
		}
		return nil, sensor.FileStat{}, fmt.Errorf("%w: %v", kind, err)
	}
	return f, procfs.FileStatOf(info.Sys().(*syscall.Stat_t)), nil
}

func fstat(f *os.File) (sensor.FileStat, error) {
	var st syscall.Stat_t
	if err := syscall.Fstat(int(f.Fd()), &st); err != nil {
		return sensor.FileStat{}, fmt.Errorf("fstat %s: %w", f.Name(), err)
	}
	if st.Mode&syscall.S_IFMT != syscall.S_IFREG {
		return sensor.FileStat{}, fmt.Errorf("%s is not a regular file", f.Name())
	}
	return procfs.FileStatOf(&st), nil
}

// hashFile computes the digests in one read pass, honouring the size limit
// and ctx (checked between chunks).
func hashFile(ctx context.Context, r hashRequest) (*Digests, error) {
	f, st, err := openExec(r)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return hashOpen(ctx, f, st, r)
}

// hashOpen is hashFile on the file openExec opened.
func hashOpen(ctx context.Context, f *os.File, st sensor.FileStat, r hashRequest) (*Digests, error) {
	if r.maxBytes > 0 && st.Size > r.maxBytes {
		return nil, limitErr{fmt.Sprintf("binary is %d bytes, over the hashing limit of %d", st.Size, r.maxBytes)}
	}
	s256 := sha256.New()
	ws := []io.Writer{s256}
	var m5, s512 hash.Hash
	if r.md5 {
		m5 = md5.New()
		ws = append(ws, m5)
	}
	if r.sha512 {
		s512 = sha512.New()
		ws = append(ws, s512)
	}
	w := io.MultiWriter(ws...)
	// 256 KiB reads hash a 400 MB file as fast as 1 MiB ones
	// (BenchmarkStartupIdentity/cold), for a quarter of the heap per
	// hash in flight and of the garbage per file hashed.
	buf := make([]byte, 256<<10)
	var n int64
	for {
		if err := ctx.Err(); err != nil {
			if errors.Is(err, context.DeadlineExceeded) {
				return nil, limitErr{fmt.Sprintf("hashing timed out after %d of %d bytes", n, st.Size)}
			}
			return nil, err
		}
		k, rerr := f.Read(buf)
		if k > 0 {
			w.Write(buf[:k])
			n += int64(k)
			if r.maxBytes > 0 && n > r.maxBytes {
				return nil, limitErr{fmt.Sprintf("binary grew past the hashing limit of %d bytes while hashed", r.maxBytes)}
			}
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return nil, fmt.Errorf("reading %s: %w", f.Name(), rerr)
		}
	}
	// A file written in place after exec would hash to something that
	// never ran: check it did not change under us.
	if after, err := fstat(f); err != nil || after != st {
		return nil, errors.New("binary modified while hashed")
	}
	d := &Digests{SHA256: s256.Sum(nil), Stat: st}
	if m5 != nil {
		d.MD5 = m5.Sum(nil)
	}
	if s512 != nil {
		d.SHA512 = s512.Sum(nil)
	}
	return d, nil
}

func hexs(b []byte) string { return hex.EncodeToString(b) }

func nsTime(ns int64) time.Time { return time.Unix(0, ns).UTC() }
