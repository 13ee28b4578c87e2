package binid

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"sync/atomic"
	"time"
	"unsafe"
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
	out := []string{path}
	for _, a := range usrmerge {
		if rest, ok := strings.CutPrefix(path, a[0]); ok {
			return append(out, a[1]+rest)
		}
		if rest, ok := strings.CutPrefix(path, a[1]); ok {
			return append(out, a[0]+rest)
		}
	}
	return out
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
		load: func() (map[string]PackageFile, error) {
			runSync(&d.sync)
			return loadDpkg(filepath.Join(d.Dir, "info"))
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

func loadDpkg(info string) (map[string]PackageFile, error) {
	names, err := filepath.Glob(filepath.Join(info, "*.md5sums"))
	if err != nil {
		return nil, err
	}
	if len(names) == 0 {
		if _, err := os.Stat(info); err != nil {
			return nil, fmt.Errorf("dpkg database: %w", err)
		}
	}
	files := make(map[string]PackageFile, len(names)*128)
	for _, n := range names {
		pkg := strings.TrimSuffix(filepath.Base(n), ".md5sums")
		pkg, _, _ = strings.Cut(pkg, ":") // multiarch "libc6:amd64"
		if err := parseMD5Sums(n, pkg, files); err != nil {
			return files, err
		}
	}
	// A load's garbage (the files read, the map's growth) is about twice
	// what it keeps, at start and at every package change: hand it back
	// to the system now rather than carry it as resident memory.
	debug.FreeOSMemory()
	return files, nil
}

// parseMD5Sums reads "<32 hex>  <path relative to />" lines; malformed lines
// are skipped (dpkg itself never writes them). A host has around 100,000 of
// them, read at start and at every package change: the paths of one file
// share one string and the digests one array, so loading costs a few
// allocations per file, not several per line (the garbage of a load is
// what sets the sensor's resident size).
func parseMD5Sums(name, pkg string, into map[string]PackageFile) error {
	b, err := os.ReadFile(name)
	if err != nil {
		return fmt.Errorf("dpkg %s: %w", name, err)
	}
	type rec struct {
		off, end int
		sum      [16]byte
	}
	// Sized once: a line is longer than its path, and there are at most
	// as many records as lines.
	recs := make([]rec, 0, bytes.Count(b, []byte{'\n'})+1)
	paths := make([]byte, 0, len(b))
	for line := range bytes.Lines(b) {
		line = bytes.TrimRight(line, "\n")
		if len(line) < 35 || line[32] != ' ' {
			continue
		}
		var r rec
		if _, err := hex.Decode(r.sum[:], line[:32]); err != nil {
			continue
		}
		rel := line[34:]
		if line[33] != ' ' {
			rel = bytes.TrimLeft(line[33:], " ")
		}
		rel = bytes.TrimLeft(rel, "/")
		r.off = len(paths)
		paths = append(append(paths, '/'), rel...)
		r.end = len(paths)
		recs = append(recs, r)
	}
	if len(recs) == 0 {
		return nil
	}
	// paths is never written again: the keys share its bytes.
	all := unsafe.String(unsafe.SliceData(paths), len(paths))
	sums := make([]byte, 16*len(recs))
	for i, r := range recs {
		d := sums[16*i : 16*i+16 : 16*i+16]
		copy(d, r.sum[:])
		into[all[r.off:r.end]] = PackageFile{Package: pkg, Algo: "md5", Digest: d}
	}
	return nil
}
