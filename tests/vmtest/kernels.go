package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Debian suites the kernels come from. The host's own sources are never
// touched: apt runs with a private configuration under the cache dir.
//
//	bullseye-security  5.10 (signed images)
//	bookworm(-security) 6.1, bookworm-backports 6.12
//	trixie, trixie-backports 6.12 ... newest (vmlinuz in linux-binary-*)
var aptSources = []string{
	"http://deb.debian.org/debian-security bullseye-security main",
	"http://deb.debian.org/debian bookworm main",
	"http://deb.debian.org/debian-security bookworm-security main",
	"http://deb.debian.org/debian bookworm-backports main",
	"http://deb.debian.org/debian trixie main",
	"http://deb.debian.org/debian trixie-backports main",
}

const debianKeyring = "/usr/share/keyrings/debian-archive-keyring.gpg"

// selectorRE is what -kernels accepts: a major.minor series or "newest",
// optionally with -nolsm: the same kernel booted without bpf in lsm=, where
// BPF LSM programs attach but never run (the sensor's fallback path).
var selectorRE = regexp.MustCompile(`^(newest|[0-9]+\.[0-9]+)(-nolsm)?$`)

// noLSMSuffix marks a selector booted without the BPF LSM.
const noLSMSuffix = "-nolsm"

// Kernel is one resolved, cached kernel ready to boot.
type Kernel struct {
	Selector string // as given in -kernels
	Package  string // Debian package the image came from
	Version  string // Debian package version
	Vmlinuz  string // path of the cached image
}

// kernelCache resolves selectors to Debian packages of one architecture
// and keeps extracted images between runs: amd64's under
// dir/kernels/<package>/vmlinuz, another architecture's under
// dir/<arch>/kernels/<package>/vmlinuz, each with its own apt lists
// (archDir).
type kernelCache struct {
	dir     string
	arch    *guestArch
	refresh time.Duration
	log     *slog.Logger

	updated   bool  // apt-get update attempted in this run
	updateErr error // its failure, if any
}

// archDir is where this architecture's apt lists, kernels and guest
// userland are kept: the cache dir itself for amd64 (the layout before
// there were other architectures), dir/<arch> for the others.
func (c *kernelCache) archDir() string {
	if c.arch == archAMD64 {
		return c.dir
	}
	return filepath.Join(c.dir, c.arch.Name)
}

func (c *kernelCache) aptDir() string { return filepath.Join(c.archDir(), "apt") }

// aptConfig writes the private apt configuration and returns its path.
func (c *kernelCache) aptConfig() (string, error) {
	root, err := filepath.Abs(c.aptDir())
	if err != nil {
		return "", err
	}
	for _, d := range []string{"etc/sources.list.d", "etc/preferences.d", "etc/apt.conf.d", "lists/partial", "archives/partial", "state", "cache"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o700); err != nil {
			return "", err
		}
	}
	var src strings.Builder
	for _, s := range aptSources {
		fmt.Fprintf(&src, "deb [arch=%s signed-by=%s] %s\n", c.arch.Name, debianKeyring, s)
	}
	if err := os.WriteFile(filepath.Join(root, "etc/sources.list"), []byte(src.String()), 0o600); err != nil {
		return "", err
	}
	status := filepath.Join(root, "state/status")
	if _, err := os.Stat(status); errors.Is(err, os.ErrNotExist) {
		if err := os.WriteFile(status, nil, 0o600); err != nil {
			return "", err
		}
	}
	conf := fmt.Sprintf(`Dir::Etc::SourceList "%[1]s/etc/sources.list";
Dir::Etc::SourceParts "%[1]s/etc/sources.list.d";
Dir::Etc::Preferences "%[1]s/etc/preferences";
Dir::Etc::PreferencesParts "%[1]s/etc/preferences.d";
Dir::Etc::Parts "%[1]s/etc/apt.conf.d";
Dir::State "%[1]s/state";
Dir::State::Lists "%[1]s/lists";
Dir::State::status "%[1]s/state/status";
Dir::Cache "%[1]s/cache";
Dir::Cache::Archives "%[1]s/archives";
APT::Architecture "%[2]s";
APT::Architectures { "%[2]s"; };
Acquire::Languages "none";
APT::Sandbox::User "root";
Acquire::IndexTargets::deb::DEP-11::DefaultEnabled "false";
Acquire::IndexTargets::deb::DEP-11-icons::DefaultEnabled "false";
`, root, c.arch.Name)
	path := filepath.Join(root, "apt.conf")
	return path, os.WriteFile(path, []byte(conf), 0o600)
}

// apt runs an apt tool with the private configuration; args never pass
// through a shell.
func (c *kernelCache) apt(ctx context.Context, dir string, name string, args ...string) ([]byte, error) {
	conf, err := c.aptConfig()
	if err != nil {
		return nil, fmt.Errorf("apt config: %w", err)
	}
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "APT_CONFIG="+conf, "LC_ALL=C")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return out, fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, lastLine(stderr.String()))
	}
	return out, nil
}

// listsFresh reports whether the private package lists exist and are newer
// than the refresh interval.
func (c *kernelCache) listsFresh() (exists, fresh bool) {
	ents, err := os.ReadDir(filepath.Join(c.aptDir(), "lists"))
	if err != nil {
		return false, false
	}
	for _, e := range ents {
		if strings.HasSuffix(e.Name(), "_Packages") {
			info, err := e.Info()
			if err != nil {
				continue
			}
			exists = true
			if time.Since(info.ModTime()) < c.refresh {
				fresh = true
			}
		}
	}
	return exists, fresh
}

// update refreshes the private package lists once per run when stale. A
// failed update with older lists present is only a warning.
func (c *kernelCache) update(ctx context.Context) error {
	if c.updated {
		return c.updateErr
	}
	c.updated = true
	exists, fresh := c.listsFresh()
	if fresh {
		return nil
	}
	c.log.Info("refreshing private apt lists", "dir", c.aptDir())
	if _, err := c.apt(ctx, "", "apt-get", "-q", "update"); err != nil {
		if exists {
			c.log.Warn("apt-get update failed; using older lists", "err", err)
			return nil
		}
		c.updateErr = err
	}
	return c.updateErr
}

// Resolve returns the kernel for a selector, downloading and extracting it
// when it is not cached yet.
func (c *kernelCache) Resolve(ctx context.Context, sel string) (*Kernel, error) {
	if !selectorRE.MatchString(sel) {
		return nil, fmt.Errorf("bad kernel selector %q: want major.minor (e.g. 6.12) or newest, optionally with -nolsm", sel)
	}
	series := strings.TrimSuffix(sel, noLSMSuffix)
	var pkgs []string
	err := c.update(ctx)
	if err == nil {
		var out []byte
		out, err = c.apt(ctx, "", "apt-cache", "search", "--names-only", c.arch.searchPattern())
		if err == nil {
			pkgs = c.arch.parseSearch(out)
		}
	}
	if err != nil {
		// Offline: fall back to what an earlier run cached.
		if k := c.newestCached(sel, series); k != nil {
			c.log.Warn("package index unavailable; using cached kernel", "kernel", sel, "package", k.Package, "err", err)
			return k, nil
		}
		return nil, fmt.Errorf("resolve %s: %w", sel, err)
	}
	pkg, ok := c.arch.pickNewest(pkgs, series)
	if !ok {
		return nil, fmt.Errorf("no Debian cloud-%s kernel package for %s in %s", c.arch.Name, series, strings.Join(aptSources, "; "))
	}
	if k := c.cached(sel, pkg); k != nil {
		return k, nil
	}
	return c.fetch(ctx, sel, pkg)
}

// parseSearch extracts this architecture's image package names from
// apt-cache search output.
func (a *guestArch) parseSearch(out []byte) []string {
	var names []string
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		name, _, _ := strings.Cut(sc.Text(), " ")
		if a.imageRE.MatchString(name) {
			names = append(names, name)
		}
	}
	return names
}

// pickNewest returns the newest image package of this architecture of a
// series ("6.12") or of all ("newest"). Debian names carry the upstream
// version, so comparing their numeric runs orders them (6.12.117+deb13
// after 6.12.117+deb12).
func (a *guestArch) pickNewest(pkgs []string, sel string) (string, bool) {
	var match []string
	for _, p := range pkgs {
		m := a.imageRE.FindStringSubmatch(p)
		if m == nil {
			continue
		}
		if sel == "newest" || m[1]+"."+m[2] == sel {
			match = append(match, p)
		}
	}
	if len(match) == 0 {
		return "", false
	}
	sort.Slice(match, func(i, j int) bool { return versionLess(match[i], match[j]) })
	return match[len(match)-1], true
}

// versionLess compares strings by their runs of digits numerically and the
// rest bytewise: "6.1.0-9" < "6.1.0-56", "7.3.4" > "6.19.14".
func versionLess(a, b string) bool {
	for a != "" && b != "" {
		da, ra := splitRun(a)
		db, rb := splitRun(b)
		if isDigit(da[0]) && isDigit(db[0]) {
			na, _ := strconv.ParseUint(da, 10, 64)
			nb, _ := strconv.ParseUint(db, 10, 64)
			if na != nb {
				return na < nb
			}
		} else if da != db {
			return da < db
		}
		a, b = ra, rb
	}
	return len(a) < len(b)
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// splitRun splits off the leading run of digits or of non-digits.
func splitRun(s string) (run, rest string) {
	d := isDigit(s[0])
	i := 1
	for i < len(s) && isDigit(s[i]) == d {
		i++
	}
	return s[:i], s[i:]
}

func (c *kernelCache) kernelDir(pkg string) string { return filepath.Join(c.archDir(), "kernels", pkg) }

// cached returns the cached kernel for pkg, if complete.
func (c *kernelCache) cached(sel, pkg string) *Kernel {
	dir := c.kernelDir(pkg)
	ver, err := os.ReadFile(filepath.Join(dir, "version"))
	if err != nil {
		return nil
	}
	vmlinuz := filepath.Join(dir, "vmlinuz")
	if _, err := os.Stat(vmlinuz); err != nil {
		return nil
	}
	return &Kernel{Selector: sel, Package: pkg, Version: strings.TrimSpace(string(ver)), Vmlinuz: vmlinuz}
}

// newestCached returns the newest complete cached kernel of a series.
func (c *kernelCache) newestCached(sel, series string) *Kernel {
	ents, err := os.ReadDir(filepath.Join(c.archDir(), "kernels"))
	if err != nil {
		return nil
	}
	var names []string
	for _, e := range ents {
		if c.cached(sel, e.Name()) != nil {
			names = append(names, e.Name())
		}
	}
	pkg, ok := c.arch.pickNewest(names, series)
	if !ok {
		return nil
	}
	return c.cached(sel, pkg)
}

// fetch downloads pkg (and its linux-binary package when the image is a
// meta package), keeps only vmlinuz, and records the package version.
func (c *kernelCache) fetch(ctx context.Context, sel, pkg string) (*Kernel, error) {
	c.log.Info("downloading kernel", "kernel", sel, "package", pkg)
	work, err := os.MkdirTemp(c.dir, "fetch-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(work)

	show, err := c.apt(ctx, "", "apt-cache", "show", "--no-all-versions", pkg)
	if err != nil {
		return nil, err
	}
	version := field(show, "Version")
	vmlinuz, err := c.extractVmlinuz(ctx, work, pkg)
	if err != nil {
		return nil, err
	}
	if vmlinuz == "" {
		bin := c.arch.binaryRE.FindString(field(show, "Depends"))
		if bin == "" {
			return nil, fmt.Errorf("%s has no vmlinuz and names no linux-binary package", pkg)
		}
		if vmlinuz, err = c.extractVmlinuz(ctx, work, bin); err != nil {
			return nil, err
		}
		if vmlinuz == "" {
			return nil, fmt.Errorf("neither %s nor %s holds a vmlinuz", pkg, bin)
		}
	}
	if err := c.arch.checkImage(vmlinuz); err != nil {
		return nil, fmt.Errorf("%s: %w", pkg, err)
	}
	dir := c.kernelDir(pkg)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	dst := filepath.Join(dir, "vmlinuz")
	if err := os.Rename(vmlinuz, dst); err != nil {
		return nil, err
	}
	// Written last: its presence marks the cache entry complete.
	if err := os.WriteFile(filepath.Join(dir, "version"), []byte(version+"\n"), 0o600); err != nil {
		return nil, err
	}
	return &Kernel{Selector: sel, Package: pkg, Version: version, Vmlinuz: dst}, nil
}

// extractVmlinuz downloads pkg into work, unpacks it and returns the path of
// its kernel image, or "" when it has none.
func (c *kernelCache) extractVmlinuz(ctx context.Context, work, pkg string) (string, error) {
	dl := filepath.Join(work, "deb-"+pkg)
	if err := os.MkdirAll(dl, 0o700); err != nil {
		return "", err
	}
	if _, err := c.apt(ctx, dl, "apt-get", "-q", "download", pkg); err != nil {
		return "", notServed(pkg, err)
	}
	debs, err := filepath.Glob(filepath.Join(dl, "*.deb"))
	if err != nil || len(debs) != 1 {
		return "", fmt.Errorf("download %s: expected one .deb, found %d", pkg, len(debs))
	}
	root := filepath.Join(work, "root-"+pkg)
	cmd := exec.CommandContext(ctx, "dpkg-deb", "-x", debs[0], root)
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("dpkg-deb -x %s: %w: %s", filepath.Base(debs[0]), err, lastLine(string(out)))
	}
	// boot/vmlinuz-<ver> up to 6.18; linux-binary-* packages (6.19 and
	// later) ship it as usr/lib/modules/<ver>/vmlinuz.
	for _, pat := range []string{"boot/vmlinuz-*", "usr/lib/modules/*/vmlinuz", "lib/modules/*/vmlinuz"} {
		if imgs, _ := filepath.Glob(filepath.Join(root, pat)); len(imgs) > 0 {
			return imgs[0], nil
		}
	}
	return "", nil
}

// notServed says so when a download failed because the mirror does not
// have a file its own index lists (HTTP 404: a partial mirror, like one that
// serves bullseye-security's amd64 kernels but not its arm64 ones).
func notServed(pkg string, err error) error {
	if strings.Contains(err.Error(), " 404 ") {
		return fmt.Errorf("%s is in the package index but the mirror does not serve its file: %w", pkg, err)
	}
	return err
}

// field returns a control-file field's value from apt-cache show output.
func field(control []byte, name string) string {
	sc := bufio.NewScanner(bytes.NewReader(control))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+": "); ok {
			return v
		}
	}
	return ""
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		s = s[i+1:]
	}
	return s
}
