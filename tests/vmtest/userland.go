package main

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"sort"
	"strings"
)

// userland is where a guest's busybox and the executables the tests run
// (-host-bins) come from: the host itself for amd64, a sysroot of the
// architecture's Debian packages otherwise.
type userland struct {
	Root    string // read -host-bins and their libraries under this root
	Busybox string // host path of the static busybox
}

// userlandRelease is the Debian release the guest userland of another
// architecture comes from: the host's, so that an arm64 guest runs the
// dash, bash, coreutils and bpftool builds an amd64 guest gets from the
// host.
const userlandRelease = "bookworm"

// guestUserland returns the guest's userland for cfg's architecture: the
// host's own, or the architecture's packages unpacked under the cache,
// fetched on first use (under the kernels lock: the apt lists are shared
// between concurrent runs).
func guestUserland(ctx context.Context, cfg *config, log *slog.Logger) (*userland, error) {
	if cfg.arch.FromHost {
		if err := checkMachine(cfg.busybox, cfg.arch); err != nil {
			return nil, fmt.Errorf("busybox: %w", err)
		}
		return &userland{Root: "/", Busybox: cfg.busybox}, nil
	}
	unlock, err := lockFile(filepath.Join(cfg.cacheDir, "kernels.lock"))
	if err != nil {
		return nil, err
	}
	defer unlock()
	kc := &kernelCache{dir: cfg.cacheDir, arch: cfg.arch, refresh: cfg.refresh, log: log}
	pkgs, err := userlandPackages(ctx, cfg.hostBins, cfg.busybox == "")
	if err != nil {
		return nil, err
	}
	root, err := kc.sysroot(ctx, pkgs, cfg.hostBins)
	if err != nil {
		return nil, fmt.Errorf("%s userland: %w", cfg.arch.Name, err)
	}
	busybox := cfg.busybox
	if busybox == "" {
		if busybox, err = resolveIn(root, "/bin/busybox"); err != nil {
			return nil, fmt.Errorf("%s userland: busybox: %w", cfg.arch.Name, err)
		}
	}
	if err := checkMachine(busybox, cfg.arch); err != nil {
		return nil, fmt.Errorf("busybox: %w", err)
	}
	return &userland{Root: root, Busybox: busybox}, nil
}

// checkMachine refuses a file that is not an ELF executable of the
// architecture.
func checkMachine(p string, arch *guestArch) error {
	f, err := elf.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	if f.Machine != arch.Machine {
		return fmt.Errorf("%s is a %s file, not %s (%s)", p, f.Machine, arch.Machine, arch.Name)
	}
	return nil
}

// userlandPackages names the Debian packages the guest userland is made
// of: busybox-static (unless -busybox names one) and, for each of
// -host-bins, the package that owns it on the host, whose build for the
// guest's architecture has it at the same path.
func userlandPackages(ctx context.Context, bins []string, busybox bool) ([]string, error) {
	set := map[string]bool{}
	if busybox {
		set["busybox-static"] = true
	}
	for _, b := range bins {
		pkg, err := hostOwner(ctx, b)
		if err != nil {
			return nil, err
		}
		set[pkg] = true
	}
	pkgs := make([]string, 0, len(set))
	for p := range set {
		pkgs = append(pkgs, p)
	}
	sort.Strings(pkgs)
	return pkgs, nil
}

// hostOwner returns the Debian package that owns an executable on the
// host, looking it up under both its merged-/usr names (/bin/dash is
// recorded as /bin/dash or as /usr/bin/dash).
func hostOwner(ctx context.Context, bin string) (string, error) {
	for _, p := range usrAliases(bin) {
		out, err := exec.CommandContext(ctx, "dpkg-query", "-S", p).Output()
		if err != nil {
			continue
		}
		if pkg := parseDpkgS(out, p); pkg != "" {
			return pkg, nil
		}
	}
	return "", fmt.Errorf("-host-bins: %s: no package on this host owns it, so its build for the guest's architecture cannot be fetched", bin)
}

// usrAliases returns p and its other name across the merged-/usr symlinks.
func usrAliases(p string) []string {
	for _, d := range []string{"/bin/", "/sbin/", "/lib/"} {
		if rest, ok := strings.CutPrefix(p, d); ok {
			return []string{p, "/usr" + d + rest}
		}
		if rest, ok := strings.CutPrefix(p, "/usr"+d); ok {
			return []string{p, d + rest}
		}
	}
	return []string{p}
}

// parseDpkgS reads dpkg-query -S output for one path: "pkg: /path", or
// "pkg1, pkg2: /path" when shared (the first is taken); diversion lines
// are skipped. The package's architecture qualifier is dropped.
func parseDpkgS(out []byte, p string) string {
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		pkgs, file, ok := strings.Cut(sc.Text(), ": ")
		if !ok || file != p || strings.HasPrefix(pkgs, "diversion ") {
			continue
		}
		first, _, _ := strings.Cut(pkgs, ",")
		name, _, _ := strings.Cut(strings.TrimSpace(first), ":")
		return name
	}
	return ""
}

// sysrootKey names a sysroot by what it is made of, so a changed package
// list gets a new one and a finished one is never changed under a run
// reading it.
func sysrootKey(pkgs []string) string {
	h := sha256.Sum256([]byte(userlandRelease + "\n" + strings.Join(pkgs, "\n")))
	return hex.EncodeToString(h[:6])
}

// sysroot returns the sysroot of pkgs (and the libraries bins need) for the
// cache's architecture, unpacking it on first use under
// <cache>/<arch>/sysroot/<key>. Delete that directory to fetch newer
// packages.
func (c *kernelCache) sysroot(ctx context.Context, pkgs, bins []string) (string, error) {
	dir := filepath.Join(c.archDir(), "sysroot", sysrootKey(pkgs))
	if _, err := os.Stat(filepath.Join(dir, ".complete")); err == nil {
		return filepath.Abs(filepath.Join(dir, "root"))
	}
	if err := c.update(ctx); err != nil {
		return "", err
	}
	if err := os.RemoveAll(dir); err != nil {
		return "", err
	}
	root := filepath.Join(dir, "root")
	dl := filepath.Join(dir, "debs")
	for _, d := range []string{root, dl} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return "", err
		}
	}
	if err := mergedUsr(root); err != nil {
		return "", err
	}
	c.log.Info("unpacking guest userland", "arch", c.arch.Name, "release", userlandRelease, "packages", strings.Join(pkgs, " "), "dir", dir)
	s := &sysrootBuild{c: c, root: root, dl: dl, owner: map[string]string{}, have: map[string]string{}, control: map[string][]byte{}}
	if err := s.add(ctx, pkgs, true); err != nil {
		return "", err
	}
	if err := s.resolve(ctx, bins); err != nil {
		return "", err
	}
	if err := os.RemoveAll(dl); err != nil {
		return "", err
	}
	// Written last: its presence marks the sysroot complete.
	var list strings.Builder
	for _, p := range sortedKeys(s.have) {
		fmt.Fprintf(&list, "%s %s\n", p, s.have[p])
	}
	if err := os.WriteFile(filepath.Join(dir, ".complete"), []byte(list.String()), 0o600); err != nil {
		return "", err
	}
	return filepath.Abs(root)
}

// sysrootBuild is one sysroot being unpacked.
type sysrootBuild struct {
	c       *kernelCache
	root    string            // the sysroot
	dl      string            // where the .debs are downloaded
	owner   map[string]string // path in root of each file unpacked ("/usr/bin/dash") -> its package
	have    map[string]string // package -> version unpacked, "-" when it could not be had
	control map[string][]byte // package -> its control record
}

// add downloads and unpacks packages of userlandRelease, with one apt call
// for all of them when it can. The packages the run asked for must be
// had; a dependency that cannot be had is only a warning (resolve says
// what is missing, if anything).
func (s *sysrootBuild) add(ctx context.Context, pkgs []string, required bool) error {
	var sels []string
	for _, p := range pkgs {
		if _, ok := s.have[p]; !ok {
			sels = append(sels, p+"/"+userlandRelease)
		}
	}
	if len(sels) == 0 {
		return nil
	}
	show, err := s.c.apt(ctx, "", "apt-cache", append([]string{"show", "--no-all-versions"}, sels...)...)
	if err == nil {
		_, err = s.c.apt(ctx, s.dl, "apt-get", append([]string{"-q", "download"}, sels...)...)
	}
	if err != nil && len(sels) > 1 {
		// One of them cannot be had: take them one at a time.
		for _, sel := range sels {
			pkg, _, _ := strings.Cut(sel, "/")
			if err := s.add(ctx, []string{pkg}, required); err != nil {
				return err
			}
		}
		return nil
	}
	if err != nil {
		pkg, _, _ := strings.Cut(sels[0], "/")
		if required {
			return err
		}
		s.c.log.Warn("guest userland: dependency not fetched", "package", pkg, "err", err)
		s.have[pkg] = "-"
		return nil
	}
	for _, rec := range bytes.Split(show, []byte("\n\n")) {
		if name := field(rec, "Package"); name != "" {
			s.control[name] = rec
		}
	}
	for _, sel := range sels {
		pkg, _, _ := strings.Cut(sel, "/")
		debs, err := filepath.Glob(filepath.Join(s.dl, pkg+"_*.deb"))
		if err != nil || len(debs) != 1 {
			return fmt.Errorf("download %s: expected one .deb, found %d", sel, len(debs))
		}
		files, err := unpackDeb(ctx, debs[0], s.root)
		if err != nil {
			return err
		}
		for _, f := range files {
			s.owner[f] = pkg
		}
		s.have[pkg] = field(s.control[pkg], "Version")
	}
	return nil
}

// resolve adds the packages the executables' missing libraries come from:
// for a library that is not there, the direct dependencies of the package
// of the file that needs it, until nothing is missing.
func (s *sysrootBuild) resolve(ctx context.Context, bins []string) error {
	for round := 0; ; round++ {
		var missing []neededLib
		for _, b := range bins {
			_, m, err := elfWalk(s.root, s.c.arch, b)
			if err != nil {
				return err
			}
			missing = append(missing, m...)
		}
		if len(missing) == 0 {
			return nil
		}
		var deps []string
		seen := map[string]bool{}
		for _, m := range missing {
			rec := s.control[s.ownerOf(m.from)]
			for _, d := range parseDepends(field(rec, "Pre-Depends") + ", " + field(rec, "Depends")) {
				if _, ok := s.have[d]; !ok && !seen[d] {
					seen[d] = true
					deps = append(deps, d)
				}
			}
		}
		if len(deps) == 0 || round > 10 {
			m := missing[0]
			return fmt.Errorf("%s needs %s: no dependency of %s has it", m.from, m.lib, orDash(s.ownerOf(m.from)))
		}
		if err := s.add(ctx, deps, false); err != nil {
			return err
		}
	}
}

// ownerOf returns the package a file of the sysroot came from, by any of
// its merged-/usr names; "" when unknown.
func (s *sysrootBuild) ownerOf(p string) string {
	rel, err := usrPath(p)
	if err != nil {
		return ""
	}
	return s.owner["/"+rel]
}

// parseDepends returns the package names of a Depends field, the first of
// each set of alternatives, without versions or architecture qualifiers.
func parseDepends(field string) []string {
	var names []string
	for _, d := range strings.Split(field, ",") {
		alt, _, _ := strings.Cut(d, "|")
		alt = strings.TrimSpace(alt)
		if i := strings.IndexAny(alt, " (["); i >= 0 {
			alt = alt[:i]
		}
		alt, _, _ = strings.Cut(alt, ":")
		if alt != "" {
			names = append(names, alt)
		}
	}
	return names
}

// mergedUsr makes root a merged-/usr tree, as the host's: /bin, /sbin and
// /lib are symlinks into /usr.
func mergedUsr(root string) error {
	for _, d := range []string{"bin", "sbin", "lib"} {
		if err := os.MkdirAll(filepath.Join(root, "usr", d), 0o755); err != nil {
			return err
		}
		if err := os.Symlink("usr/"+d, filepath.Join(root, d)); err != nil {
			return err
		}
	}
	return nil
}

// usrPath maps a path in a package (as dpkg-deb lists it, "./bin/dash") to
// its place in a merged-/usr tree ("usr/bin/dash"), or "" for the root.
func usrPath(name string) (string, error) {
	p := strings.TrimLeft(strings.TrimPrefix(name, "./"), "/")
	for _, c := range strings.Split(p, "/") {
		if c == ".." {
			return "", fmt.Errorf("%q: not a plain path", name)
		}
	}
	p = strings.TrimPrefix(path.Clean("/"+p), "/")
	for _, d := range []string{"bin", "sbin", "lib", "lib64"} {
		if p == d || strings.HasPrefix(p, d+"/") {
			return "usr/" + p, nil
		}
	}
	return p, nil
}

// unpackDeb unpacks a .deb's files into root, merging /bin, /sbin and /lib
// into /usr, and returns the guest paths of the files it holds.
func unpackDeb(ctx context.Context, deb, root string) ([]string, error) {
	cmd := exec.CommandContext(ctx, "dpkg-deb", "--fsys-tarfile", deb)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	files, terr := untar(out, root)
	io.Copy(io.Discard, out)
	if err := cmd.Wait(); err != nil {
		return nil, fmt.Errorf("dpkg-deb --fsys-tarfile %s: %w: %s", filepath.Base(deb), err, lastLine(stderr.String()))
	}
	if terr != nil {
		return nil, fmt.Errorf("unpack %s: %w", filepath.Base(deb), terr)
	}
	return files, nil
}

// untar writes a package's file tree into root (usrPath's layout) and
// returns the paths in root of its files and symlinks ("/usr/bin/dash" for
// ./bin/dash).
func untar(r io.Reader, root string) ([]string, error) {
	var files []string
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return files, nil
		}
		if err != nil {
			return nil, err
		}
		rel, err := usrPath(h.Name)
		if err != nil {
			return nil, err
		}
		if rel == "" {
			continue
		}
		dst := filepath.Join(root, filepath.FromSlash(rel))
		switch h.Typeflag {
		case tar.TypeDir:
			err = os.MkdirAll(dst, 0o755)
		case tar.TypeReg:
			err = writeFile(dst, tr, os.FileMode(h.Mode)&0o777)
		case tar.TypeSymlink:
			err = replaceSymlink(h.Linkname, dst)
		case tar.TypeLink:
			var src string
			if src, err = usrPath(h.Linkname); err == nil {
				os.Remove(dst)
				err = os.Link(filepath.Join(root, filepath.FromSlash(src)), dst)
			}
		default:
			continue // devices and fifos: none in the packages used
		}
		if err != nil {
			return nil, err
		}
		if h.Typeflag != tar.TypeDir {
			files = append(files, "/"+rel)
		}
	}
}

func writeFile(dst string, r io.Reader, mode os.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	os.Remove(dst)
	f, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, mode)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, r); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func replaceSymlink(target, dst string) error {
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	os.Remove(dst)
	return os.Symlink(target, dst)
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
