package main

import (
	"debug/elf"
	"fmt"
	"io"
	"os"
	"path"
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
	return t.addHostDepth(p, 0)
}

func (t fsTree) addHostDepth(p string, depth int) error {
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
		fi, err := os.Lstat(next)
		if err != nil {
			return err
		}
		switch {
		case fi.Mode()&os.ModeSymlink != 0:
			target, err := os.Readlink(next)
			if err != nil {
				return err
			}
			t.dir(path.Dir(rel))
			t[rel] = &entry{mode: cpio.ModeSymlink | 0o777, target: target}
			if !path.IsAbs(target) {
				target = path.Join(cur, target)
			}
			return t.addHostDepth(path.Join(append([]string{target}, comps[i+1:]...)...), depth+1)
		case fi.IsDir():
			if e, ok := t[rel]; ok && e.mode&0o170000 != cpio.ModeDir {
				return fmt.Errorf("%s: a directory on the host but not in the guest", next)
			}
			t.dir(rel)
		case fi.Mode().IsRegular() && i == len(comps)-1:
			t.copy(rel, 0, next)
		default:
			return fmt.Errorf("%s: not a regular file, directory or symlink", next)
		}
		cur = next
	}
	return nil
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

// libDirs is where DT_NEEDED libraries are looked up, as ld.so does on
// Debian amd64.
var libDirs = []string{"/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/lib64", "/usr/lib64", "/lib", "/usr/lib"}

// elfDeps returns the interpreter and shared libraries a host executable
// needs, recursively; a static binary needs none.
func elfDeps(bin string) ([]string, error) {
	seen := map[string]bool{}
	var out []string
	var walk func(string) error
	walk = func(p string) error {
		f, err := elf.Open(p)
		if err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
		defer f.Close()
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
			for _, d := range libDirs {
				if _, err := os.Stat(path.Join(d, lib)); err == nil {
					found = path.Join(d, lib)
					break
				}
			}
			if found == "" {
				return fmt.Errorf("%s needs %s, not found in %v", p, lib, libDirs)
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
	return out, walk(bin)
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
}

// guestLineaged is where the prebuilt cmd/lineaged goes in the guest; the
// tests find it through $LINEAGED_TEST_BINARY (tests/testutil), since the
// guest has no Go toolchain to build it.
const guestLineaged = "/opt/vmtest/lineaged"

// Guest output protocol, one marker per line on the results port (ttyS1):
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
exec 3>/dev/ttyS1
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
	Busybox  string                       // static busybox on the host
	Init     initConfig                   // the generated /init
	Objects  map[string]string            // guest path under /objs -> host path
	Testdata map[string]map[string]string // test name -> path under testdata -> host path
	HostBins []string                     // host executables copied with their libraries
	Lineaged string                       // host path of a static cmd/lineaged, "" for none
}

// buildInitramfs writes the guest's initramfs: busybox, the generated /init,
// the test binaries with their testdata, host executables the tests run
// (with their shared libraries, at their host paths), and the BPF objects
// for the verifier budget.
func buildInitramfs(w io.Writer, spec initramfsSpec) error {
	cfg := spec.Init
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
	// Host executables first: they bring the host's /bin, /lib symlinks.
	for _, bin := range spec.HostBins {
		deps, err := elfDeps(bin)
		if err != nil {
			return fmt.Errorf("host binary: %w", err)
		}
		for _, p := range append([]string{bin}, deps...) {
			if err := t.addHost(p); err != nil {
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
