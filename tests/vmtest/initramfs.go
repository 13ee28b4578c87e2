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
)

// cpioWriter writes a newc ("070701") cpio archive, the format the kernel
// unpacks as an initramfs. Paths are relative, without a leading slash.
type cpioWriter struct {
	w   io.Writer
	ino uint32
	err error
}

const (
	modeDir     = 0o040000
	modeFile    = 0o100000
	modeChar    = 0o020000
	modeSymlink = 0o120000
)

func (c *cpioWriter) header(name string, mode, size, rdevMajor, rdevMinor uint32) {
	if c.err != nil {
		return
	}
	c.ino++
	nlink := uint32(1)
	if mode&0o170000 == modeDir {
		nlink = 2
	}
	hdr := fmt.Sprintf("070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X",
		c.ino, mode, 0, 0, nlink, 0, size, 0, 0, rdevMajor, rdevMinor, len(name)+1, 0)
	c.write([]byte(hdr + name + "\x00"))
	c.pad(len(hdr) + len(name) + 1)
}

func (c *cpioWriter) write(b []byte) {
	if c.err == nil {
		_, c.err = c.w.Write(b)
	}
}

// pad aligns to 4 bytes after n bytes written.
func (c *cpioWriter) pad(n int) {
	if r := n % 4; r != 0 {
		c.write(make([]byte, 4-r))
	}
}

// Dir adds a directory.
func (c *cpioWriter) Dir(name string, perm uint32) {
	c.header(name, modeDir|perm, 0, 0, 0)
}

// File adds a regular file with the given contents.
func (c *cpioWriter) File(name string, perm uint32, data []byte) {
	c.header(name, modeFile|perm, uint32(len(data)), 0, 0)
	c.write(data)
	c.pad(len(data))
}

// CopyFile adds a regular file read from src; perm 0 keeps src's mode.
func (c *cpioWriter) CopyFile(name string, perm uint32, src string) {
	if c.err != nil {
		return
	}
	data, err := os.ReadFile(src)
	if err != nil {
		c.err = err
		return
	}
	if perm == 0 {
		info, err := os.Stat(src)
		if err != nil {
			c.err = err
			return
		}
		perm = uint32(info.Mode().Perm())
	}
	c.File(name, perm, data)
}

// Symlink adds a symbolic link to target.
func (c *cpioWriter) Symlink(name, target string) {
	c.header(name, modeSymlink|0o777, uint32(len(target)), 0, 0)
	c.write([]byte(target))
	c.pad(len(target))
}

// CharDev adds a character device node.
func (c *cpioWriter) CharDev(name string, perm, major, minor uint32) {
	c.header(name, modeChar|perm, 0, major, minor)
}

// Close writes the trailer and returns the first error.
func (c *cpioWriter) Close() error {
	c.header("TRAILER!!!", 0, 0, 0, 0)
	return c.err
}

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
			t[d] = &entry{mode: modeDir | 0o755}
		}
	}
}

func (t fsTree) file(p string, perm uint32, data []byte) {
	t.dir(path.Dir(p))
	t[p] = &entry{mode: modeFile | perm, data: data}
}

// copy adds host file src at p; perm 0 keeps the host file's mode.
func (t fsTree) copy(p string, perm uint32, src string) {
	t.dir(path.Dir(p))
	t[p] = &entry{mode: modeFile | perm, src: src}
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
			t[rel] = &entry{mode: modeSymlink | 0o777, target: target}
			if !path.IsAbs(target) {
				target = path.Join(cur, target)
			}
			return t.addHostDepth(path.Join(append([]string{target}, comps[i+1:]...)...), depth+1)
		case fi.IsDir():
			if e, ok := t[rel]; ok && e.mode&0o170000 != modeDir {
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
	c := &cpioWriter{w: w}
	for _, n := range names {
		e := t[n]
		switch e.mode & 0o170000 {
		case modeDir:
			c.Dir(n, e.mode&0o7777)
		case modeSymlink:
			c.Symlink(n, e.target)
		case modeChar:
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
	Name   string // binary is /tests/<Name>.test, runs in /pkg/<Name>
	Binary string // host path
}

// initConfig is what the generated /init needs.
type initConfig struct {
	Tests       []guestTest
	TestTimeout string // go test -test.timeout value
}

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
# Per-guest settings come on the kernel command line.
for w in $(cat /proc/cmdline); do
	case "$w" in
	vmtest.require_attach=*) VMTEST_REQUIRE_ATTACH="${w#*=}" ;;
	esac
done
exec 3>/dev/ttyS1
echo "VMTEST-KERNEL $(uname -r)" >&3
echo "VMTEST-LSM $(cat /sys/kernel/security/lsm)" >&3
echo "VMTEST-REQUIRE-ATTACH $VMTEST_REQUIRE_ATTACH" >&3
{{range .Tests}}echo "VMTEST-BEGIN {{.Name}}" >&3
cd /pkg/{{.Name}} && /tests/{{.Name}}.test -test.v -test.count=1 -test.timeout={{$.TestTimeout}} >&3 2>&3
echo "VMTEST-END {{.Name}} $?" >&3
{{end}}echo "VMTEST-DONE" >&3
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
	}
	if !safeName.MatchString(cfg.TestTimeout) {
		return fmt.Errorf("bad test timeout %q", cfg.TestTimeout)
	}
	var script strings.Builder
	if err := initTemplate.Execute(&script, cfg); err != nil {
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
	for _, d := range []string{"dev", "etc", "proc", "sys", "tmp", "run", "root", "tests", "pkg", "objs", "usr/bin"} {
		t.dir(d)
	}
	if _, ok := t["bin"]; !ok {
		t.dir("bin")
	}
	// busybox goes where /bin really is, so /bin/busybox resolves.
	binDir := "bin"
	if e := t["bin"]; e.mode&0o170000 == modeSymlink {
		binDir = strings.TrimPrefix(path.Clean(path.Join("/", e.target)), "/")
		t.dir(binDir)
	}
	t.copy(binDir+"/busybox", 0o755, spec.Busybox)
	t["dev/console"] = &entry{mode: modeChar | 0o600, major: 5, minor: 1}
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
	for rel, src := range spec.Objects {
		t.copy("objs/"+rel, 0o644, src)
	}
	return t.write(w)
}
