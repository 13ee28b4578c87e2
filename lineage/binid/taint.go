package binid

import (
	"errors"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
)

// taints is the set of package records written outside the package
// manager (docs/threat-model.md, Trust anchors). A verdict that rests on
// one is package-untrusted. all taints every record of the database (an
// rpm database file written: which packages it changed is not known).
type taints struct {
	mu   sync.Mutex
	pkgs map[string]struct{}
	all  bool
}

func (t *taints) add(pkg string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if pkg == "" {
		t.all = true
		return
	}
	if t.pkgs == nil {
		t.pkgs = map[string]struct{}{}
	}
	t.pkgs[pkg] = struct{}{}
}

func (t *taints) remove(pkg string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	_, ok := t.pkgs[pkg]
	delete(t.pkgs, pkg)
	return ok
}

// list is the taints as the lines of the taint file: package names, "*"
// for the whole database.
func (t *taints) list() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []string
	if t.all {
		out = append(out, "*")
	}
	for p := range t.pkgs {
		out = append(out, p)
	}
	sort.Strings(out)
	return out
}

func (t *taints) has(pkg string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	_, ok := t.pkgs[pkg]
	return t.all || ok
}

// bump forces the next lookup to reload the database, so a record written
// just now is read with its taint, and verdicts computed before are not
// reused (the generation changes).
func (w *watched) bump() {
	w.checkMu.Lock()
	defer w.checkMu.Unlock()
	w.gen.Add(1)
}

// untrustedDB is a PackageDB that knows which of its records were written
// outside the package manager.
type untrustedDB interface {
	// Taint marks the record file path (a file of the database) as
	// written outside the package manager; false when path is not part
	// of the database.
	Taint(path string) bool
	// Untrusted reports whether f rests on such a record.
	Untrusted(f PackageFile) bool
	// Untaint: the package manager wrote path, replacing the record
	// (false when that clears nothing).
	Untaint(path string) bool
	taintSet() *taints
}

// Taint implements untrustedDB: an info/<pkg>.md5sums file taints that
// package's records; other dpkg files (status, maintainer scripts, file
// lists) do not change a digest and taint nothing.
func (d *Dpkg) Taint(path string) bool {
	pkg, ok := d.recordPackage(path)
	if !ok {
		return false
	}
	d.taints.add(pkg)
	d.db.bump()
	return true
}

// Untaint implements untrustedDB: dpkg rewrote the package's md5sums
// file whole, so the forged record is gone.
func (d *Dpkg) Untaint(path string) bool {
	pkg, ok := d.recordPackage(path)
	if !ok || !d.taints.remove(pkg) {
		return false
	}
	d.db.bump()
	return true
}

func (d *Dpkg) taintSet() *taints { return &d.taints }

// recordPackage is the package whose md5sums file path is.
func (d *Dpkg) recordPackage(path string) (string, bool) {
	info := filepath.Join(d.Dir, "info") + "/"
	rest, ok := strings.CutPrefix(filepath.Clean(path), info)
	if !ok || strings.Contains(rest, "/") {
		return "", false
	}
	pkg, ok := strings.CutSuffix(rest, ".md5sums")
	if !ok {
		return "", false
	}
	pkg, _, _ = strings.Cut(pkg, ":")
	return pkg, true
}

// Untrusted implements untrustedDB.
func (d *Dpkg) Untrusted(f PackageFile) bool { return d.taints.has(f.Package) }

// Taint implements untrustedDB: any file of the rpm database written
// outside rpm taints every record (the database is one store).
func (r *RPM) Taint(path string) bool {
	if path != r.DBDir && !strings.HasPrefix(filepath.Clean(path), filepath.Clean(r.DBDir)+"/") {
		return false
	}
	r.taints.add("")
	r.db.bump()
	return true
}

// Untrusted implements untrustedDB.
func (r *RPM) Untrusted(f PackageFile) bool { return r.taints.has(f.Package) }

// Untaint implements untrustedDB: rpm's own write does not show that a
// forged record is gone from its store; the taint stays.
func (r *RPM) Untaint(string) bool { return false }

func (r *RPM) taintSet() *taints { return &r.taints }

// TaintPackageRecord tells the inspector that path, a file of its package
// database, was written outside the package manager: verdicts resting on
// it become package-untrusted. False when path is not a record of the
// database in use.
func (in *Inspector) TaintPackageRecord(path string) bool {
	if u, ok := in.pkgs.(untrustedDB); ok && u.Taint(path) {
		in.saveTaints(u)
		return true
	}
	return false
}

// UntaintPackageRecord tells the inspector that the package manager wrote
// path: a dpkg record it rewrote is trusted again.
func (in *Inspector) UntaintPackageRecord(path string) bool {
	if u, ok := in.pkgs.(untrustedDB); ok && u.Untaint(path) {
		in.saveTaints(u)
		return true
	}
	return false
}

// taintFileName keeps the taints in hashing.cache_dir, so a record forged
// before a restart is still untrusted after it.
const taintFileName = "package-taints"

// saveTaints writes the taint file (0600, replaced atomically); without a
// cache directory the taints last as long as the process.
func (in *Inspector) saveTaints(u untrustedDB) {
	if in.store == nil {
		return
	}
	if err := in.store.checkDir(true); err != nil {
		in.log.Error("package taints not kept across restarts", "err", err)
		return
	}
	body := strings.Join(u.taintSet().list(), "\n") + "\n"
	tmp := filepath.Join(in.store.dir, taintFileName+".tmp")
	if err := os.WriteFile(tmp, []byte(body), 0o600); err != nil {
		in.log.Error("package taints not kept across restarts", "err", err)
		return
	}
	if err := os.Rename(tmp, filepath.Join(in.store.dir, taintFileName)); err != nil {
		in.log.Error("package taints not kept across restarts", "err", err)
	}
}

// loadTaints reads the taint file a previous run left.
func (in *Inspector) loadTaints() {
	u, ok := in.pkgs.(untrustedDB)
	if !ok || in.store == nil {
		return
	}
	b, err := os.ReadFile(filepath.Join(in.store.dir, taintFileName))
	if err != nil {
		// Nothing saved yet, or a start without the privileges the
		// sensor needs anyway (as for the hash cache).
		if !errors.Is(err, os.ErrNotExist) && !errors.Is(err, os.ErrPermission) {
			in.log.Error("package taints of the previous run not read", "err", err)
		}
		return
	}
	for _, l := range strings.Split(string(b), "\n") {
		switch l = strings.TrimSpace(l); l {
		case "":
		case "*":
			u.taintSet().add("")
		default:
			u.taintSet().add(l)
		}
	}
}

// PackageDir is the directory of the package database in use ("" for
// none): the dpkg admin directory or the rpm database directory.
func (in *Inspector) PackageDir() string {
	switch db := in.pkgs.(type) {
	case *Dpkg:
		return db.Dir
	case *RPM:
		return db.DBDir
	}
	return ""
}

// SyncPackageRecords sets a function run before every load of the package
// database: the trust-anchor watcher's drain, so a record written before
// the load is tainted before it is read.
func (in *Inspector) SyncPackageRecords(sync func()) {
	switch db := in.pkgs.(type) {
	case *Dpkg:
		db.sync.Store(&sync)
	case *RPM:
		db.sync.Store(&sync)
	}
}

// runSync runs the function SyncPackageRecords set, if any.
func runSync(p *atomic.Pointer[func()]) {
	if f := p.Load(); f != nil && *f != nil {
		(*f)()
	}
}
