package binid

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// mapDpkg is a plain map of the records of info/*.md5sums, parsed as the
// index is specified: the reference the packed index is checked against.
func mapDpkg(t *testing.T, info string) map[string]PackageFile {
	t.Helper()
	names, err := filepath.Glob(filepath.Join(info, "*.md5sums"))
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]PackageFile{}
	for _, n := range names {
		pkg := strings.TrimSuffix(filepath.Base(n), ".md5sums")
		pkg, _, _ = strings.Cut(pkg, ":")
		b, err := os.ReadFile(n)
		if err != nil {
			t.Fatal(err)
		}
		for line := range bytes.Lines(b) {
			line = bytes.TrimRight(line, "\n")
			if len(line) < 35 || line[32] != ' ' {
				continue
			}
			sum, err := hex.DecodeString(string(line[:32]))
			if err != nil {
				continue
			}
			rel := line[34:]
			if line[33] != ' ' {
				rel = bytes.TrimLeft(line[33:], " ")
			}
			files["/"+string(bytes.TrimLeft(rel, "/"))] = PackageFile{Package: pkg, Algo: "md5", Digest: sum}
		}
	}
	return files
}

// sameAsMap checks every record of want in x, and that x holds no other.
func sameAsMap(t *testing.T, x *dpkgIndex, want map[string]PackageFile) {
	t.Helper()
	if x.n != len(want) {
		t.Errorf("index holds %d paths, want %d", x.n, len(want))
	}
	bad := 0
	for p, w := range want {
		got, ok := x.find(p)
		if !ok || got.Package != w.Package || got.Algo != "md5" || !bytes.Equal(got.Digest, w.Digest) || len(got.Digest) != 16 || cap(got.Digest) != 16 {
			if bad++; bad <= 10 {
				t.Errorf("%q: %+v %v, want %+v", p, got, ok, w)
			}
			continue
		}
		// Near misses: a byte more, a byte less, the last byte changed.
		for _, q := range []string{p + "x", p + "/", p[:len(p)-1], p[:len(p)-1] + string(p[len(p)-1]+1), p[:len(p)-1] + string(p[len(p)-1]-1)} {
			if _, listed := want[q]; listed {
				continue
			}
			if f, ok := x.find(q); ok {
				if bad++; bad <= 10 {
					t.Errorf("%q found (%+v), not listed", q, f)
				}
			}
		}
	}
}

// TestDpkgIndexHost: on this host's database the packed index answers as
// the map does, for every listed path and near misses.
func TestDpkgIndexHost(t *testing.T) {
	needHostDpkg(t)
	info := filepath.Join(hostDpkg, "info")
	x, err := loadDpkg(info)
	if err != nil {
		t.Fatal(err)
	}
	sameAsMap(t, x, mapDpkg(t, info))
}

func writeInfo(t *testing.T, files map[string]string) string {
	t.Helper()
	db := t.TempDir()
	info := filepath.Join(db, "info")
	if err := os.MkdirAll(info, 0o700); err != nil {
		t.Fatal(err)
	}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(info, name), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return db
}

const (
	sumA = "0123456789abcdef0123456789abcdef"
	sumB = "fedcba9876543210FEDCBA9876543210"
)

// TestDpkgIndexRecords: which line makes which record, on crafted files.
func TestDpkgIndexRecords(t *testing.T) {
	db := writeInfo(t, map[string]string{
		// A path listed twice in one file, and again by later packages
		// (in file name order): the last listing wins.
		"a.md5sums":       sumA + "  usr/bin/dup\n" + sumB + "  usr/bin/dup\n" + sumA + "  usr/bin/inA\n",
		"b:amd64.md5sums": sumA + "  usr/bin/dup\n" + sumA + "  usr/lib/shared\n",
		"c:i386.md5sums":  sumB + "  usr/lib/shared\n",
		// Both usrmerge forms listed, by different packages.
		"d.md5sums": sumA + "  bin/both\n",
		"e.md5sums": sumB + "  usr/bin/both\n",
		// Empty files and a file of nothing but malformed lines.
		"empty.md5sums":  "",
		"blank.md5sums":  "\n\n",
		"broken.md5sums": "not a line\n" + sumA[:31] + "  short\n" + sumA + "x usr/bin/nosep\n" + strings.Replace(sumA, "0", "g", 1) + "  usr/bin/badhex\n" + sumA + "  \n",
		// Separators and slashes as dpkg never writes them; the last line
		// has no newline.
		"odd.md5sums": sumA + " usr/bin/onespace\n" + sumA + "  ///usr/bin/slashes\n" + sumA + "   usr/bin/threespaces\n" + sumA + "  usr/bin/cr\r\n" + sumB + "  usr/bin/last",
		// Paths that are prefixes of one another.
		"pre.md5sums": sumA + "  p\n" + sumA + "  p/q\n" + sumA + "  pq\n" + sumA + "  p/q/r\n",
		// Not an md5sums file.
		"z.list": "/usr/bin/notmd5\n",
	})
	d := &Dpkg{Dir: db}
	for _, c := range []struct {
		path, pkg, sum string
	}{
		{"/usr/bin/dup", "b", sumA},
		{"/usr/bin/inA", "a", sumA},
		{"/usr/lib/shared", "c", sumB},
		{"/lib/shared", "c", sumB},
		{"/bin/both", "d", sumA},
		{"/usr/bin/both", "e", sumB},
		{"/usr/bin/onespace", "odd", sumA},
		{"/usr/bin/slashes", "odd", sumA},
		{"/ usr/bin/threespaces", "odd", sumA},
		{"/usr/bin/cr\r", "odd", sumA},
		{"/usr/bin/last", "odd", sumB},
		{"/bin/last", "odd", sumB},
		{"/p", "pre", sumA},
		{"/p/q", "pre", sumA},
		{"/pq", "pre", sumA},
		{"/p/q/r", "pre", sumA},
		{"/usr/bin/nosep", "", ""},
		{"/usr/bin/badhex", "", ""},
		{"/short", "", ""},
		{"/", "", ""},
		{"/usr/bin/threespaces", "", ""},
		{"/usr/bin/cr", "", ""},
		{"/usr/bin/notmd5", "", ""},
		{"/p/", "", ""},
		{"/p/q/", "", ""},
		{"/pr", "", ""},
		{"", "", ""},
		{"/zzz", "", ""},
		{"/", "", ""},
	} {
		f, ok := d.Lookup(c.path)
		if c.pkg == "" {
			if ok {
				t.Errorf("%q found: %+v", c.path, f)
			}
			continue
		}
		want, _ := hex.DecodeString(c.sum)
		if !ok || f.Package != c.pkg || f.Algo != "md5" || !bytes.Equal(f.Digest, want) {
			t.Errorf("%q = %+v %v, want package %s digest %s", c.path, f, ok, c.pkg, c.sum)
		}
	}
	if err := d.Err(); err != nil {
		t.Errorf("malformed lines are skipped, not an error: %v", err)
	}
	x, err := loadDpkg(filepath.Join(db, "info"))
	if err != nil {
		t.Fatal(err)
	}
	sameAsMap(t, x, mapDpkg(t, filepath.Join(db, "info")))
}

// TestDpkgIndexEmptyAndMissing: an info directory without md5sums files
// is an empty database; a missing one is an error.
func TestDpkgIndexEmptyAndMissing(t *testing.T) {
	empty := &Dpkg{Dir: writeInfo(t, nil)}
	if _, ok := empty.Lookup("/usr/bin/cat"); ok || empty.Err() != nil {
		t.Errorf("empty database: found %v, err %v", ok, empty.Err())
	}
	missing := &Dpkg{Dir: filepath.Join(t.TempDir(), "nodpkg")}
	if _, ok := missing.Lookup("/usr/bin/cat"); ok || missing.Err() == nil || !strings.Contains(missing.Err().Error(), "dpkg database") {
		t.Errorf("missing database: found %v, err %v", ok, missing.Err())
	}
}

// TestDpkgIndexUnreadableFile: a file that cannot be read is an error
// naming it; the files before it are still answered from.
func TestDpkgIndexUnreadableFile(t *testing.T) {
	db := writeInfo(t, map[string]string{"a.md5sums": sumA + "  usr/bin/a\n", "c.md5sums": sumA + "  usr/bin/c\n"})
	bad := filepath.Join(db, "info", "b.md5sums")
	if err := os.Mkdir(bad, 0o700); err != nil {
		t.Fatal(err)
	}
	d := &Dpkg{Dir: db}
	if f, ok := d.Lookup("/usr/bin/a"); !ok || f.Package != "a" {
		t.Errorf("/usr/bin/a = %+v %v", f, ok)
	}
	if _, ok := d.Lookup("/usr/bin/c"); ok {
		t.Error("a file after the unreadable one was read")
	}
	if err := d.Err(); err == nil || !strings.Contains(err.Error(), "dpkg "+bad+": ") {
		t.Errorf("err = %v, want one naming %s", err, bad)
	}
}

// TestDpkgIndexRandom: many paths sharing long prefixes (every block
// boundary, prefixes of one another), listed in random order with
// duplicates across packages, answer as a map does.
func TestDpkgIndexRandom(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	files := map[string]string{}
	for p := range 40 {
		var b strings.Builder
		for range 1 + r.IntN(200) {
			var path strings.Builder
			for range 1 + r.IntN(12) {
				path.WriteByte("ab/c"[r.IntN(4)])
			}
			var sum [16]byte
			for i := range sum {
				sum[i] = byte(r.Uint32())
			}
			fmt.Fprintf(&b, "%x  %s\n", sum, path.String())
		}
		files[fmt.Sprintf("pkg%02d.md5sums", p)] = b.String()
	}
	info := filepath.Join(writeInfo(t, files), "info")
	x, err := loadDpkg(info)
	if err != nil {
		t.Fatal(err)
	}
	want := mapDpkg(t, info)
	if len(want) < 3*dpkgBlock {
		t.Fatalf("only %d paths", len(want))
	}
	sameAsMap(t, x, want)
	// Every short path over the alphabet, listed or not.
	var all func(prefix string, n int)
	all = func(prefix string, n int) {
		_, listed := want[prefix]
		if _, ok := x.find(prefix); ok != listed {
			t.Errorf("%q: found %v, listed %v", prefix, ok, listed)
		}
		if n == 0 {
			return
		}
		for _, c := range "ab/c" {
			all(prefix+string(c), n-1)
		}
	}
	all("/", 6)
}

// TestDpkgIndexManyPackages: past 65536 package names the index numbers
// them in 32 bits.
func TestDpkgIndexManyPackages(t *testing.T) {
	const n = 70000
	var all []byte
	for i := range n {
		all = fmt.Appendf(all, "%s  p/%d\n", sumA, i)
	}
	b, err := newDpkgIndexBuilder(all, n)
	if err != nil {
		t.Fatal(err)
	}
	line := 0
	for i := range n {
		end := line + bytes.IndexByte(all[line:], '\n') + 1
		parseMD5Sums(all, line, end, b.pkg(fmt.Sprint("pkg", i)), b)
		line = end
	}
	x := b.build()
	if x.pkg32 == nil || x.n != n {
		t.Fatalf("pkg32 %v, %d paths", x.pkg32 != nil, x.n)
	}
	for _, i := range []int{0, 1, 65535, 65536, 65537, n - 1} {
		if f, ok := x.find(fmt.Sprint("/p/", i)); !ok || f.Package != fmt.Sprint("pkg", i) {
			t.Errorf("/p/%d = %+v %v", i, f, ok)
		}
	}
}
