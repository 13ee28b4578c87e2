package binid

import (
	"bufio"
	"bytes"
	"context"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"time"
)

// rpmQueryFormat lists every file of every package with its digest: one
// line per file, the package fields repeated with %{=TAG}. FILEDIGESTALGO
// is an OpenPGP hash id (1 MD5, 8 SHA-256).
const rpmQueryFormat = `[%{=NAME}-%{=VERSION}-%{=RELEASE}\t%{=FILEDIGESTALGO}\t%{FILEDIGESTS}\t%{FILENAMES}\n]`

// RPM is the rpm database as a PackageDB. It runs `rpm -qa --qf <fixed
// format>` (no input is interpolated) once, and again when the database
// directory changes. Query can be replaced (tests, other rpm front ends).
//
// This host has no rpm database: the parser is tested on rpm's documented
// output format, the query itself has not been run against a real rpmdb.
type RPM struct {
	// DBDir is the rpm database directory, normally /var/lib/rpm.
	DBDir   string
	Recheck time.Duration
	Query   func(ctx context.Context) ([]byte, error)
	Now     func() time.Time

	db     watched
	taints taints
	sync   atomic.Pointer[func()]
}

func (r *RPM) query(ctx context.Context) ([]byte, error) {
	if r.Query != nil {
		return r.Query(ctx)
	}
	out, err := exec.CommandContext(ctx, "rpm", "-qa", "--qf", rpmQueryFormat).Output()
	if err != nil {
		return nil, fmt.Errorf("rpm -qa: %w", err)
	}
	return out, nil
}

// Lookup implements PackageDB; a reload happens here, off the hot path.
func (r *RPM) Lookup(path string) (PackageFile, bool) { return r.db.lookup(r.watch(), path) }

// Generation implements PackageDB: one stat per Recheck, never a reload.
func (r *RPM) Generation() uint64 { return r.db.generation(r.watch()) }

// Err is the last load error.
func (r *RPM) Err() error { return r.db.lastErr(r.watch()) }

func (r *RPM) watch() watchSpec {
	return watchSpec{recheck: r.Recheck, now: r.Now,
		stamp: func() string {
			if st, err := os.Stat(r.DBDir); err == nil {
				return fmt.Sprintf("%d", st.ModTime().UnixNano())
			}
			return "-"
		},
		load: func() (fileIndex, error) {
			runSync(&r.sync)
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			out, err := r.query(ctx)
			if err != nil {
				return nil, err
			}
			files, err := parseRPMFiles(out)
			return fileMap(files), err
		}}
}

// parseRPMFiles parses rpmQueryFormat output. Directories and symlinks
// (empty digest) and lines that do not parse (a file name with a tab or
// newline) are skipped.
func parseRPMFiles(out []byte) (map[string]PackageFile, error) {
	files := map[string]PackageFile{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	for sc.Scan() {
		f := strings.SplitN(sc.Text(), "\t", 4)
		if len(f) != 4 || f[2] == "" || !strings.HasPrefix(f[3], "/") {
			continue
		}
		var algo string
		switch f[1] {
		case "1":
			algo = "md5"
		case "8":
			algo = "sha256"
		default:
			continue // sha1/sha512 digests are not compared
		}
		d, err := hex.DecodeString(f[2])
		if err != nil {
			continue
		}
		files[f[3]] = PackageFile{Package: f[0], Algo: algo, Digest: d}
	}
	return files, sc.Err()
}
