package binid

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strings"
	"sync/atomic"
	"time"
)

// PackageDB answers which package owns a path and the digest it recorded.
// dpkg records MD5 and rpm (usually) SHA-256; Algo says which.
type PackageDB interface {
	// Lookup finds the owner of an absolute path (aliases included).
	Lookup(path string) (PackageFile, bool)
	// Generation changes whenever the database changes, so verdicts
	// computed against an older one are not reused.
	Generation() uint64
}

// PackageFile is a package's record of one file.
type PackageFile struct {
	Package string
	Algo    string // "md5" or "sha256"
	Digest  []byte
}

// Dpkg reads /var/lib/dpkg/info/*.md5sums. It loads once and reloads when
// the dpkg status file or the info directory changes (mtime), checked at most
// once per Recheck.
type Dpkg struct {
	// Dir is the dpkg admin directory, normally /var/lib/dpkg.
	Dir     string
	Recheck time.Duration
	Now     func() time.Time

	db     watched
	taints taints
	sync   atomic.Pointer[func()]
}

// usrmerge aliases: on merged-/usr systems /bin is /usr/bin, and a package
// may list either form while the kernel reports the resolved one.
var usrmerge = [][2]string{
	{"/usr/bin/", "/bin/"}, {"/usr/sbin/", "/sbin/"}, {"/usr/lib/", "/lib/"},
	{"/usr/lib64/", "/lib64/"}, {"/usr/lib32/", "/lib32/"}, {"/usr/libx32/", "/libx32/"},
}

// Aliases returns path and its usrmerge alias, if any.
func Aliases(path string) []string {
	if a, ok := usrmergeAlias(path); ok {
		return []string{path, a}
	}
	return []string{path}
}

// usrmergeAlias is the usrmerge alias of path, if it has one.
func usrmergeAlias(path string) (string, bool) {
	for _, a := range usrmerge {
		if rest, ok := strings.CutPrefix(path, a[0]); ok {
			return a[1] + rest, true
		}
		if rest, ok := strings.CutPrefix(path, a[1]); ok {
			return a[0] + rest, true
		}
	}
	return "", false
}

// Lookup implements PackageDB. A reload (after a change) happens here, in
// the hashing worker, never in Generation.
func (d *Dpkg) Lookup(path string) (PackageFile, bool) {
	return d.db.lookup(d.watch(), path)
}

// Generation implements PackageDB: at most two stat calls per Recheck,
// never a reload, so it is cheap on the engine's hot path.
func (d *Dpkg) Generation() uint64 { return d.db.generation(d.watch()) }

// Err is the last load error (nil when the database loaded).
func (d *Dpkg) Err() error { return d.db.lastErr(d.watch()) }

func (d *Dpkg) watch() watchSpec {
	return watchSpec{recheck: d.Recheck, now: d.Now, stamp: d.stampNow,
		load: func() (fileIndex, error) {
			runSync(&d.sync)
			x, err := loadDpkg(filepath.Join(d.Dir, "info"))
			if x == nil {
				return nil, err
			}
			return x, err
		}}
}

func (d *Dpkg) stampNow() string {
	var b strings.Builder
	for _, p := range []string{filepath.Join(d.Dir, "status"), filepath.Join(d.Dir, "info")} {
		if st, err := os.Stat(p); err == nil {
			fmt.Fprintf(&b, "%d/%d;", st.ModTime().UnixNano(), st.Size())
		} else {
			b.WriteString("-;")
		}
	}
	return b.String()
}

// loadDpkg reads every md5sums file of info. On a read error it returns
// the index of the files read before, with the error.
func loadDpkg(info string) (*dpkgIndex, error) {
	names, err := filepath.Glob(filepath.Join(info, "*.md5sums"))
	if err != nil {
		return nil, err
	}
	if len(names) == 0 {
		if _, err := os.Stat(info); err != nil {
			return nil, fmt.Errorf("dpkg database: %w", err)
		}
	}
	// Every file into one buffer sized from their sizes (a file that
	// grows after the stat costs only that): the records point into it,
	// so a load touches the files' bytes once, the records and the
	// index, and nothing is copied to grow. That memory is what a load
	// costs in resident size, and in time on a virtual machine, where
	// every fresh page faults.
	size := 0
	for _, n := range names {
		if st, err := os.Stat(n); err == nil {
			size += int(st.Size())
		}
	}
	all := make([]byte, 0, size+1) // +1: the read that finds the end needs room
	ends := make([]int, 0, len(names))
	lines := 0
	for _, n := range names {
		start := len(all)
		if all, err = appendFile(all, n); err != nil {
			err = fmt.Errorf("dpkg %s: %w", n, err)
			break
		}
		ends = append(ends, len(all))
		// Counted while the file is in the cache: the records' room.
		lines += bytes.Count(all[start:], []byte{'\n'}) + 1
	}
	b, berr := newDpkgIndexBuilder(all, lines)
	if berr != nil {
		return nil, berr
	}
	start := 0
	for i, end := range ends {
		pkg := strings.TrimSuffix(filepath.Base(names[i]), ".md5sums")
		pkg, _, _ = strings.Cut(pkg, ":") // multiarch "libc6:amd64"
		parseMD5Sums(all, start, end, b.pkg(pkg), b)
		start = end
	}
	x := b.build()
	// A load's garbage (the files read, the records before packing) is
	// several times what it keeps, at start and at every package change:
	// hand it back to the system now rather than carry it as resident
	// memory.
	debug.FreeOSMemory()
	return x, err
}

// appendFile appends the contents of the file name to buf.
func appendFile(buf []byte, name string) ([]byte, error) {
	f, err := os.Open(name)
	if err != nil {
		return buf, err
	}
	defer f.Close()
	for {
		if len(buf) == cap(buf) {
			buf = slices.Grow(buf, 4096)
		}
		n, err := f.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return buf, err
		}
	}
}

// parseMD5Sums reads "<32 hex>  <path relative to />" lines, all[start:end];
// malformed lines are skipped (dpkg itself never writes them). A host has
// around 100,000 of them, read at start and at every package change.
func parseMD5Sums(all []byte, start, end int, pkg uint32, into *dpkgIndexBuilder) {
	for start < end {
		off := start
		line := all[start:end]
		if i := bytes.IndexByte(line, '\n'); i >= 0 {
			line = line[:i]
			start += i + 1
		} else {
			start = end
		}
		if len(line) < 35 || line[32] != ' ' {
			continue
		}
		if !isHex(line[:32]) {
			continue
		}
		rel := 34 // after the two spaces dpkg writes, or the one
		if line[33] != ' ' {
			rel = 33
		}
		for rel < len(line) && line[rel] == '/' {
			rel++
		}
		// The path is "/" and the rest of the line: the byte before the
		// rest (a space or a slash) becomes the slash, in place.
		all[off+rel-1] = '/'
		into.add(off, off+rel-1, off+len(line), pkg)
	}
}

func isHex(b []byte) bool {
	for _, c := range b {
		if !hexDigit[c] {
			return false
		}
	}
	return true
}

// hexDigit is what encoding/hex decodes.
var hexDigit = func() (t [256]bool) {
	for _, c := range []byte("0123456789abcdefABCDEF") {
		t[c] = true
	}
	return t
}()
