package main

import (
	"debug/elf"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"text/template"

	"github.com/lineaged/lineaged/tests/vmtest/cpio"
)

// safeName is what the harness puts into the generated /init: test binary
// names and option values. Anything else is refused before it gets there.
var safeName = regexp.MustCompile(`^[A-Za-z0-9_.,-]+$`)

// entry is one node of the guest's root file system.
type entry struct {
	mode         uint32 // type and permission bits
	data         []byte // file contents, when not read from src
	src          string // host file to copy
	target       string // symlink target
	major, minor uint32 // device numbers
}

// fsTree is the guest root file system, keyed by relative slash path. It is
// written in sorted order, so every directory precedes what it holds.
type fsTree map[string]*entry

// dir adds p and its parents as directories where nothing is yet.
func (t fsTree) dir(p string) {
	for d := p; d != "." && d != "/" && d != ""; d = path.Dir(d) {
		if _, ok := t[d]; !ok {
			t[d] = &entry{mode: cpio.ModeDir | 0o755}
		}
	}
}

func (t fsTree) file(p string, perm uint32, data []byte) {
	t.dir(path.Dir(p))
	t[p] = &entry{mode: cpio.ModeFile | perm, data: data}
}

// copy adds host file src at p; perm 0 keeps the host file's mode.
func (t fsTree) copy(p string, perm uint32, src string) {
	t.dir(path.Dir(p))
	t[p] = &entry{mode: cpio.ModeFile | perm, src: src}
}

// addHost copies a host file into the same path in the guest, recreating
// every symlink met on the way (/bin -> usr/bin, /lib64/ld-linux... ->
// /lib/x86_64-linux-gnu/...), so the guest resolves paths as the host does.
func (t fsTree) addHost(p string) error {
	return t.addFrom("/", p)
}

// addFrom is addHost for a file of the tree under root (a sysroot of
// another architecture's packages): the guest gets it, and the symlinks
// met on the way, at p, as if root were the host's /. Absolute symlink
// targets are resolved under root.
func (t fsTree) addFrom(root, p string) error {
	return t.addFromDepth(root, p, 0)
}

func (t fsTree) addFromDepth(root, p string, depth int) error {
	if depth > 40 {
		return fmt.Errorf("%s: too many symlinks", p)
	}
	if !path.IsAbs(p) {
		return fmt.Errorf("%s: not an absolute path", p)
	}
	comps := strings.Split(strings.TrimPrefix(path.Clean(p), "/"), "/")
	cur := "/"
	for i, c := range comps {
		next := path.Join(cur, c)
		rel := strings.TrimPrefix(next, "/")
		host := filepath.Join(root, filepath.FromSlash(next))
		fi, err := os.Lstat(host)
		if err != nil {
			return err
		}
		switch {
		case fi.Mode()&os.ModeSymlink != 0:
			target, err := os.Readlink(host)
			if err != nil {
				return err
			}
			t.dir(path.Dir(rel))
			t[rel] = &entry{mode: cpio.ModeSymlink | 0o777, target: target}
			if !path.IsAbs(target) {
				target = path.Join(cur, target)
			}
			return t.addFromDepth(root, path.Join(append([]string{target}, comps[i+1:]...)...), depth+1)
		case fi.IsDir():
			if e, ok := t[rel]; ok && e.mode&0o170000 != cpio.ModeDir {
				return fmt.Errorf("%s: a directory on the host but not in the guest", host)
			}
			t.dir(rel)
		case fi.Mode().IsRegular() && i == len(comps)-1:
			t.copy(rel, 0, host)
		default:
			return fmt.Errorf("%s: not a regular file, directory or symlink", host)
		}
		cur = next
	}
	return nil
}

// resolveIn returns the host path of p resolved under root as if root were
// /: symlinks are followed, absolute targets taken under root, and ".."
// never climbs above it.
func resolveIn(root, p string) (string, error) {
	return resolveInDepth(root, p, 0)
}

func resolveInDepth(root, p string, depth int) (string, error) {
	if depth > 40 {
		return "", fmt.Errorf("%s: too many symlinks", p)
	}
	comps := strings.Split(strings.TrimPrefix(path.Clean("/"+p), "/"), "/")
	cur := "/"
	for i, c := range comps {
		if c == "" {
			continue
		}
		next := path.Join(cur, c)
		host := filepath.Join(root, filepath.FromSlash(next))
		fi, err := os.Lstat(host)
		if err != nil {
			return "", err
		}
		if fi.Mode()&os.ModeSymlink != 0 {
			target, err := os.Readlink(host)
			if err != nil {
				return "", err
			}
			if !path.IsAbs(target) {
				target = path.Join(cur, target)
			}
			return resolveInDepth(root, path.Join(append([]string{target}, comps[i+1:]...)...), depth+1)
		}
		cur = next
	}
	return filepath.Join(root, filepath.FromSlash(cur)), nil
}

func (t fsTree) write(w io.Writer) error {
	names := make([]string, 0, len(t))
	for n := range t {
		names = append(names, n)
	}
	sort.Strings(names)
	c := cpio.New(w)
	for _, n := range names {
		e := t[n]
		switch e.mode & 0o170000 {
		case cpio.ModeDir:
			c.Dir(n, e.mode&0o7777)
		case cpio.ModeSymlink:
			c.Symlink(n, e.target)
		case cpio.ModeChar:
			c.CharDev(n, e.mode&0o7777, e.major, e.minor)
		default:
			if e.src != "" {
				c.CopyFile(n, e.mode&0o7777, e.src)
			} else {
				c.File(n, e.mode&0o7777, e.data)
			}
		}
	}
	return c.Close()
}

// elfDeps returns the interpreter and shared libraries a host executable
// of the host's architecture (amd64) needs, recursively; a static binary
// needs none.
func elfDeps(bin string) ([]string, error) {
	return elfDepsIn("/", archAMD64, bin)
}

// elfDepsIn is elfDeps for an executable under root (a sysroot), of the
// given architecture: every file met must be of its machine, libraries are
// looked up in its library directories under root, and the paths returned
// are the guest's (as if root were /).
func elfDepsIn(root string, arch *guestArch, bin string) ([]string, error) {
	deps, missing, err := elfWalk(root, arch, bin)
	if err != nil {
		return nil, err
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("%s needs %s, not found in %v", missing[0].from, missing[0].lib, arch.LibDirs)
	}
	return deps, nil
}

// neededLib is a DT_NEEDED library elfWalk did not find.
type neededLib struct {
	from string // guest path of the file that needs it
	lib  string // its soname
}

// elfWalk returns what elfDepsIn returns, and the libraries it could not
// find (it goes on without them) apart from other errors.
func elfWalk(root string, arch *guestArch, bin string) ([]string, []neededLib, error) {
	seen := map[string]bool{}
	var (
		out     []string
		missing []neededLib
	)
	var walk func(string) error
	walk = func(p string) error {
		host, err := resolveIn(root, p)
		if err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
		f, err := elf.Open(host)
		if err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
		defer f.Close()
		if f.Machine != arch.Machine {
			return fmt.Errorf("%s: a %s file, not %s (%s)", p, f.Machine, arch.Machine, arch.Name)
		}
		for _, prog := range f.Progs {
			if prog.Type == elf.PT_INTERP {
				b, err := io.ReadAll(prog.Open())
				if err != nil {
					return err
				}
				interp := strings.TrimRight(string(b), "\x00")
				if !seen[interp] {
					seen[interp] = true
					out = append(out, interp)
				}
			}
		}
		libs, err := f.ImportedLibraries()
		if err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
		for _, lib := range libs {
			found := ""
			for _, d := range arch.LibDirs {
				if h, err := resolveIn(root, path.Join(d, lib)); err == nil {
					if fi, err := os.Stat(h); err == nil && fi.Mode().IsRegular() {
						found = path.Join(d, lib)
						break
					}
				}
			}
			if found == "" {
				missing = append(missing, neededLib{from: p, lib: lib})
				continue
			}
			if !seen[found] {
				seen[found] = true
				out = append(out, found)
				if err := walk(found); err != nil {
					return err
				}
			}
		}
		return nil
	}
	err := walk(bin)
	return out, missing, err
}

// guestTest is one test binary packed into the initramfs.
type guestTest struct {
	Name    string   // binary is /tests/<Name>.test, runs in /pkg/<Name>
	Binary  string   // host path
	Kernels []string // runs only in these kernels' guests (-kernels selectors); empty for all
}

// initConfig is what the generated /init needs.
type initConfig struct {
	Tests       []guestTest
	TestTimeout string // go test -test.timeout value
	Run         string // go test -test.run pattern, "" for every test
	Count       int    // go test -test.count, 0 for 1
	Lineaged    bool   // a prebuilt cmd/lineaged is at guestLineaged
	ResultsDev  string // the results port's device: the architecture's
}

// guestLineaged is where the prebuilt cmd/lineaged goes in the guest; the
// tests find it through $LINEAGED_TEST_BINARY (tests/testutil), since the
// guest has no Go toolchain to build it.
const guestLineaged = "/opt/vmtest/lineaged"

// Guest output protocol, one marker per line on the results port (the
// architecture's ResultsDev: ttyS1 on amd64, a PCI 16550 at ttyS0 on arm64):
//
//	VMTEST-KERNEL <uname -r>
//	VMTEST-LSM <active LSMs>
//	VMTEST-REQUIRE-ATTACH <VMTEST_REQUIRE_ATTACH>
//	VMTEST-BEGIN <test binary>
//	... go test -v output ...
//	VMTEST-END <test binary> <exit code>
//	VMTEST-DONE
//
// A run without VMTEST-DONE did not finish and is a failure.
var initTemplate = template.Must(template.New("init").Parse(`#!/bin/busybox sh
# Generated by tests/vmtest. Runs each test binary and powers off.
/bin/busybox --install -s /bin
# No package manager here: busybox's dpkg and rpm applets would make every
# process (all descend from this busybox /init) pass for a package
# manager's in the sensor's trust-anchor watch (sensor/trustwatch).
rm -f /bin/dpkg /bin/dpkg-deb /bin/rpm /bin/rpm2cpio
export PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin HOME=/root TMPDIR=/tmp
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/shm /dev/pts
mount -t tmpfs tmpfs /dev/shm
mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /tmp
mount -t tmpfs tmpfs /run
mount -t tracefs tracefs /sys/kernel/tracing
mount -t debugfs debugfs /sys/kernel/debug
mount -t bpf bpf /sys/fs/bpf
mount -t securityfs securityfs /sys/kernel/security
mount -t cgroup2 cgroup2 /sys/fs/cgroup
hostname vmtest
ip link set lo up
export VMTEST_BPF_OBJECTS=/objs VMTEST_REQUIRE_ATTACH=none
{{if .Lineaged}}export LINEAGED_TEST_BINARY={{.GuestLineaged}}
{{end}}# Per-guest settings come on the kernel command line.
for w in $(cat /proc/cmdline); do
	case "$w" in
	vmtest.require_attach=*) VMTEST_REQUIRE_ATTACH="${w#*=}" ;;
	vmtest.kernel=*) VMTEST_KERNEL="${w#*=}" ;;
	esac
done
# vmtest_on K...: whether this guest's kernel selector is one of K.
vmtest_on() {
	for k in "$@"; do [ "$k" = "$VMTEST_KERNEL" ] && return 0; done
	return 1
}
exec 3>{{.ResultsDev}}
echo "VMTEST-KERNEL $(uname -r)" >&3
echo "VMTEST-LSM $(cat /sys/kernel/security/lsm)" >&3
echo "VMTEST-REQUIRE-ATTACH $VMTEST_REQUIRE_ATTACH" >&3
{{range .Tests}}{{if .Kernels}}if vmtest_on{{range .Kernels}} {{.}}{{end}}; then
{{end}}echo "VMTEST-BEGIN {{.Name}}" >&3
cd /pkg/{{.Name}} && /tests/{{.Name}}.test -test.v -test.count={{$.Count}}{{if $.Run}} -test.run='{{$.Run}}'{{end}} -test.timeout={{$.TestTimeout}} >&3 2>&3
echo "VMTEST-END {{.Name}} $?" >&3
{{if .Kernels}}fi
{{end}}{{end}}echo "VMTEST-DONE" >&3
sync
poweroff -f
`))

// initramfsSpec is everything packed into the guest.
type initramfsSpec struct {
	Arch     *guestArch                   // the guest's architecture (nil: amd64)
	Busybox  string                       // static busybox on the host
	Init     initConfig                   // the generated /init
	Objects  map[string]string            // guest path under /objs -> host path
	Testdata map[string]map[string]string // test name -> path under testdata -> host path
	Root     string                       // where HostBins and their libraries are read from ("" is the host's /)
	HostBins []string                     // executables copied with their libraries, at the same paths
	Lineaged string                       // host path of a static cmd/lineaged, "" for none
}

// resultsDevRE is what the generated /init may take as the results port.
var resultsDevRE = regexp.MustCompile(`^/dev/[A-Za-z0-9]+$`)

// buildInitramfs writes the guest's initramfs: busybox, the generated /init,
// the test binaries with their testdata, host executables the tests run
// (with their shared libraries, at their host paths, from the host or from
// the architecture's sysroot), and the BPF objects for the verifier budget.
func buildInitramfs(w io.Writer, spec initramfsSpec) error {
	arch := spec.Arch
	if arch == nil {
		arch = archAMD64
	}
	root := spec.Root
	if root == "" {
		root = "/"
	}
	cfg := spec.Init
	cfg.ResultsDev = arch.ResultsDev
	if !resultsDevRE.MatchString(cfg.ResultsDev) {
		return fmt.Errorf("results device %q: want /dev/<name>", cfg.ResultsDev)
	}
	for _, t := range cfg.Tests {
		if !safeName.MatchString(t.Name) {
			return fmt.Errorf("test binary name %q: want letters, digits, _ . , -", t.Name)
		}
		for _, k := range t.Kernels {
			if !selectorRE.MatchString(k) {
				return fmt.Errorf("test binary %s: bad kernel selector %q", t.Name, k)
			}
		}
	}
	if !safeName.MatchString(cfg.TestTimeout) {
		return fmt.Errorf("bad test timeout %q", cfg.TestTimeout)
	}
	if cfg.Count == 0 {
		cfg.Count = 1
	}
	if cfg.Count < 0 {
		return fmt.Errorf("bad test count %d", cfg.Count)
	}
	// The pattern goes into /init between single quotes: no quote, no
	// newline, and it must compile as go test would compile it.
	if strings.ContainsAny(cfg.Run, "'\n\x00") {
		return fmt.Errorf("test pattern %q: quotes and newlines are not allowed", cfg.Run)
	}
	for _, part := range strings.Split(cfg.Run, "/") {
		if _, err := regexp.Compile(part); err != nil {
			return fmt.Errorf("test pattern %q: %w", cfg.Run, err)
		}
	}
	cfg.Lineaged = spec.Lineaged != ""
	var script strings.Builder
	if err := initTemplate.Execute(&script, struct {
		initConfig
		GuestLineaged string
	}{cfg, guestLineaged}); err != nil {
		return err
	}

	t := fsTree{}
	// Host executables first: they bring the host's (or the sysroot's)
	// /bin, /lib symlinks.
	for _, bin := range spec.HostBins {
		deps, err := elfDepsIn(root, arch, bin)
		if err != nil {
			return fmt.Errorf("host binary: %w", err)
		}
		for _, p := range append([]string{bin}, deps...) {
			if err := t.addFrom(root, p); err != nil {
				return fmt.Errorf("host binary %s: %w", bin, err)
			}
		}
	}
	// var/lib/dpkg/info: an empty dpkg database, so the package-trust
	// tests (tests/tamper) have a database to forge a record in.
	for _, d := range []string{"dev", "etc", "proc", "sys", "tmp", "run", "root", "tests", "pkg", "objs", "usr/bin", "var/lib/dpkg/info"} {
		t.dir(d)
	}
	if _, ok := t["bin"]; !ok {
		t.dir("bin")
	}
	// busybox goes where /bin really is, so /bin/busybox resolves.
	binDir := "bin"
	if e := t["bin"]; e.mode&0o170000 == cpio.ModeSymlink {
		binDir = strings.TrimPrefix(path.Clean(path.Join("/", e.target)), "/")
		t.dir(binDir)
	}
	t.copy(binDir+"/busybox", 0o755, spec.Busybox)
	t["dev/console"] = &entry{mode: cpio.ModeChar | 0o600, major: 5, minor: 1}
	t.file("init", 0o755, []byte(script.String()))
	t.file("etc/passwd", 0o644, []byte("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"))
	t.file("etc/group", 0o644, []byte("root:x:0:\nnogroup:x:65534:\n"))
	t.file("etc/hosts", 0o644, []byte("127.0.0.1 localhost\n::1 localhost ip6-localhost\n"))
	t.file("etc/hostname", 0o644, []byte("vmtest\n"))
	for _, gt := range cfg.Tests {
		t.copy("tests/"+gt.Name+".test", 0o755, gt.Binary)
		t.dir("pkg/" + gt.Name)
		for rel, src := range spec.Testdata[gt.Name] {
			t.copy("pkg/"+gt.Name+"/testdata/"+rel, 0, src)
		}
	}
	if spec.Lineaged != "" {
		t.copy(strings.TrimPrefix(guestLineaged, "/"), 0o755, spec.Lineaged)
	}
	for rel, src := range spec.Objects {
		t.copy("objs/"+rel, 0o644, src)
	}
	return t.write(w)
}
