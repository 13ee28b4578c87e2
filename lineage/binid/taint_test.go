package binid

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lineaged/lineaged/lineage/event"
)

// TestTaintedRecord: a binary matching a dpkg record that was written
// outside the package manager is package-untrusted, its verdict is judged
// again after the taint (the generation changed), another package's
// records stay trusted, and the sync hook runs before the reload.
func TestTaintedRecord(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "tool")
	copyFile(t, "/usr/bin/sleep", bin, nil)
	body, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	sum := md5.Sum(body)
	db := filepath.Join(dir, "dpkg")
	if err := os.MkdirAll(filepath.Join(db, "info"), 0o700); err != nil {
		t.Fatal(err)
	}
	record := filepath.Join(db, "info", "toolpkg:amd64.md5sums")
	line := hex.EncodeToString(sum[:]) + "  " + strings.TrimPrefix(bin, "/") + "\n"
	if err := os.WriteFile(record, []byte(line), 0o600); err != nil {
		t.Fatal(err)
	}
	d := &Dpkg{Dir: db}
	in := newInspector(t, Config{}, nil, d)
	synced := 0
	in.SyncPackageRecords(func() { synced++ })
	_, p := running(t, bin, "30")
	if b := in.Inspect(context.Background(), request(p)); b.Verdict != event.VerdictPackageVerified {
		t.Fatalf("before the taint: %+v", b)
	}
	if synced == 0 {
		t.Error("the sync hook did not run before the database load")
	}
	if in.TaintPackageRecord(filepath.Join(db, "status")) || in.TaintPackageRecord("/etc/passwd") {
		t.Error("a file that is no md5sums record tainted a package")
	}
	if d.Untrusted(PackageFile{Package: "toolpkg"}) {
		t.Fatal("tainted before any md5sums write")
	}
	g := in.pkgGen()
	if !in.TaintPackageRecord(record) {
		t.Fatal("the md5sums record was not taken as a record")
	}
	if in.pkgGen() == g {
		t.Error("the generation did not change with the taint: cached verdicts would be reused")
	}
	b := in.Inspect(context.Background(), request(p))
	if b.Verdict != event.VerdictPackageUntrusted || b.Package != "toolpkg" || !strings.Contains(b.Reason, "outside the package manager") {
		t.Errorf("after the taint: %+v", b)
	}
	if d.Untrusted(PackageFile{Package: "otherpkg"}) {
		t.Error("another package's records were tainted")
	}
}

// TestRPMTaint: a write to any file of the rpm database taints every
// record; a path outside it does not.
func TestRPMTaint(t *testing.T) {
	r := &RPM{DBDir: "/var/lib/rpm"}
	if r.Taint("/var/lib/rpmx/Packages") || r.Untrusted(PackageFile{Package: "bash"}) {
		t.Fatal("a path outside the database tainted it")
	}
	if !r.Taint("/var/lib/rpm/rpmdb.sqlite") || !r.Untrusted(PackageFile{Package: "bash"}) {
		t.Fatal("a write to the database did not taint its records")
	}
}

// TestTaintKeptAcrossRestart: a taint is kept in hashing.cache_dir (0600),
// so a new inspector on the same directory still finds the forged record
// untrusted; the package manager rewriting the record clears it.
func TestTaintKeptAcrossRestart(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "dpkg")
	if err := os.MkdirAll(filepath.Join(db, "info"), 0o700); err != nil {
		t.Fatal(err)
	}
	record := filepath.Join(db, "info", "toolpkg.md5sums")
	cache := filepath.Join(dir, "cache")
	first := newInspector(t, Config{CacheDir: cache}, nil, &Dpkg{Dir: db})
	if !first.TaintPackageRecord(record) {
		t.Fatal("not taken as a record")
	}
	st, err := os.Stat(filepath.Join(cache, taintFileName))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("taint file: %v %v", st, err)
	}
	d := &Dpkg{Dir: db}
	newInspector(t, Config{CacheDir: cache}, nil, d)
	if !d.Untrusted(PackageFile{Package: "toolpkg"}) {
		t.Fatal("the taint did not survive the restart")
	}
	d2 := &Dpkg{Dir: db}
	second := newInspector(t, Config{CacheDir: cache}, nil, d2)
	if !second.UntaintPackageRecord(record) || d2.Untrusted(PackageFile{Package: "toolpkg"}) {
		t.Fatal("the package manager's rewrite did not clear the taint")
	}
	d3 := &Dpkg{Dir: db}
	newInspector(t, Config{CacheDir: cache}, nil, d3)
	if d3.Untrusted(PackageFile{Package: "toolpkg"}) {
		t.Fatal("the cleared taint came back after a restart")
	}
}
