// Command vmtest runs the repository's real-BPF test binaries on a matrix of
// Debian kernels under qemu (software emulation) and prints a per-kernel,
// per-test table, the attach types each kernel offers, each program's
// verified instruction count, and a closing "N passed, N failed" line.
//
//	go run ./tests/vmtest -kernels 5.10,6.1,6.12,6.18,newest
//
// With -arch arm64 the guests are arm64 ones under qemu-system-aarch64: the
// same selectors resolved to Debian's cloud-arm64 kernels, the test
// binaries cross-built, and busybox and the executables the tests run taken
// from Debian's arm64 packages (userland.go) instead of the host.
//
// Kernels are resolved to the newest matching Debian cloud image at run time
// with a private apt configuration, and cached under tests/vmtest/cache. A
// kernel that cannot be had is reported as not run, with the reason. The
// exit status is non-zero on any failed test, any guest without its exit
// marker, and any listed kernel that did not run; -allow-missing (or
// VMTEST_ALLOW_MISSING=1) accepts fewer kernels on a developer's machine,
// but is refused under CI, and a run where no kernel booted always fails.
//
// A test listed as a known defect (defects.go) that fails on a kernel series
// where it is known to is an expected failure: counted apart, it does not
// fail the run; if it passes or is skipped there, the run fails. Results
// that contradict the guest's own LSM list or attach requirements (the
// deny-exec fallback where bpf is an active LSM, a required attach kind
// refused) fail whatever the test concluded (lsmpath.go).
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

type config struct {
	arch          *guestArch // -arch
	kernels       []string
	pkgs          []string
	cacheDir      string
	timeout       time.Duration
	pkgTimeout    time.Duration // go test -test.timeout of each package in a guest
	parallel      int
	smp, memMiB   int
	lsm           string
	requireAttach string
	refresh       time.Duration
	markdown      string
	allowMissing  bool // a listed kernel that cannot be had does not fail the run
	qemu          string
	busybox       string
	hostBins      []string
	run           string // go test -test.run in every guest ("" for all)
	count         int    // go test -test.count in every guest
}

func main() {
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	cfg, err := parseFlags(os.Args[1:])
	if err != nil {
		fmt.Fprintln(os.Stderr, "vmtest:", err)
		os.Exit(2)
	}
	ok, err := run(context.Background(), cfg, log, os.Stdout)
	if err != nil {
		fmt.Fprintln(os.Stderr, "vmtest:", err)
		os.Exit(1)
	}
	if !ok {
		os.Exit(1)
	}
}

// parseFlags reads the command line into a config and checks it.
func parseFlags(args []string) (*config, error) {
	fs := flag.NewFlagSet("vmtest", flag.ContinueOnError)
	cfg := &config{}
	lists, err := defineFlags(fs, cfg)
	if err != nil {
		return nil, err
	}
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if cfg.arch, err = lookupArch(*lists.arch); err != nil {
		return nil, err
	}
	// -qemu and -busybox default to the architecture's: its qemu, and for
	// a guest not of the host's architecture the busybox of its Debian
	// package ("" until the userland is unpacked).
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if !set["qemu"] {
		cfg.qemu = cfg.arch.Qemu
	}
	if !set["busybox"] && !cfg.arch.FromHost {
		cfg.busybox = ""
	}
	cfg.kernels = splitList(*lists.kernels)
	cfg.pkgs = splitList(*lists.pkgs)
	cfg.hostBins = splitList(*lists.hostBins)
	if cfg.requireAttach == "" {
		cfg.requireAttach = "none"
	}
	if err := cfg.check(); err != nil {
		return nil, err
	}
	return cfg, nil
}

// listFlags holds the comma-list flags until they are split, and -arch
// until it is looked up.
type listFlags struct {
	kernels, pkgs, hostBins *string
	arch                    *string
}

// defineFlags defines the flags on fs, the scalar ones straight into cfg.
// Defaults may come from the environment ($VMTEST_CACHE,
// $VMTEST_ALLOW_MISSING); an unreadable one is an error.
func defineFlags(fs *flag.FlagSet, cfg *config) (listFlags, error) {
	lists := listFlags{
		kernels: fs.String("kernels", "5.10,6.1,6.12,6.18,newest", "comma-separated kernel series (major.minor) or newest"),
		pkgs:    fs.String("pkgs", defaultPkgs, "comma-separated packages whose tests run in each guest; path@k1+k2 runs a package only in those kernels' guests (packages without tests are left out, with a note)"),
		hostBins: fs.String("host-bins", "/bin/dash,/bin/bash,/bin/echo,/bin/true,/bin/false,/bin/sleep,/bin/cat,/usr/bin/env,/usr/sbin/bpftool",
			"comma-separated host executables copied into the guest at the same paths, with their shared libraries (the tests exec them and check their paths; the tamper suite runs bpftool). "+
				"With -arch arm64 they come from the arm64 builds of the Debian packages that own them on the host"),
		arch: fs.String("arch", archAMD64.Name, "guest architecture: "+strings.Join(archNames(), " or ")+
			" (arm64: cloud-arm64 kernels under qemu-system-aarch64, test binaries cross-built, the guest's busybox and -host-bins from Debian's arm64 packages)"),
	}
	cache := "tests/vmtest/cache"
	if d := os.Getenv("VMTEST_CACHE"); d != "" {
		// Lets CI keep kernels across fresh clones.
		cache = d
	}
	fs.StringVar(&cfg.cacheDir, "cache", cache, "kernel, apt and run cache directory (default from $VMTEST_CACHE when set)")
	fs.DurationVar(&cfg.timeout, "timeout", 20*time.Minute, "wall-clock limit per guest, boot included")
	fs.DurationVar(&cfg.pkgTimeout, "pkg-timeout", 10*time.Minute, "go test -timeout of each package in a guest: a hung package dumps its goroutines and the guest goes on to the next (capped by -timeout)")
	fs.IntVar(&cfg.parallel, "parallel", 2, "guests booted at once")
	fs.IntVar(&cfg.smp, "smp", 2, "guest CPUs")
	fs.IntVar(&cfg.memMiB, "mem", 1024, "guest memory in MiB")
	fs.StringVar(&cfg.lsm, "lsm", "lockdown,capability,landlock,yama,apparmor,bpf", "guest lsm= (bpf must be listed for LSM programs to run)")
	fs.StringVar(&cfg.requireAttach, "require-attach", "all", "attach kinds the guests must offer (comma list, all, or none)")
	fs.DurationVar(&cfg.refresh, "refresh", 24*time.Hour, "refresh the private apt lists when older than this")
	fs.StringVar(&cfg.markdown, "markdown", "", "also write the tables as markdown to this file")
	allowMissing, err := envBool(envAllowMissing)
	if err != nil {
		return listFlags{}, err
	}
	fs.BoolVar(&cfg.allowMissing, "allow-missing", allowMissing,
		"development only: pass the run even when some listed kernels could not be resolved or downloaded (they are reported as not run; at least one must boot). "+
			"Default from $"+envAllowMissing+"=1. Refused when $CI is set: a CI run must boot every listed kernel")
	fs.StringVar(&cfg.qemu, "qemu", archAMD64.Qemu, "qemu binary (default: the -arch's, qemu-system-aarch64 for arm64)")
	fs.StringVar(&cfg.busybox, "busybox", "/bin/busybox", "static busybox for the guest (default for arm64: busybox-static's arm64 build)")
	fs.StringVar(&cfg.run, "run", "", "run only the tests matching this go test -run pattern (to chase one test, with -count)")
	fs.IntVar(&cfg.count, "count", 1, "run each test this many times in every guest (go test -count)")
	return lists, nil
}

// check refuses a config the run cannot use or must not accept: values
// that would be passed on to go, qemu or the guest unquoted are held to
// safe forms here.
func (cfg *config) check() error {
	for _, b := range cfg.hostBins {
		if !filepath.IsAbs(b) {
			return fmt.Errorf("-host-bins: %q: want an absolute path", b)
		}
	}
	if len(cfg.kernels) == 0 {
		return errors.New("-kernels is empty")
	}
	for _, k := range cfg.kernels {
		if !selectorRE.MatchString(k) {
			return fmt.Errorf("-kernels: bad entry %q: want major.minor (e.g. 6.12) or newest, optionally with -nolsm", k)
		}
	}
	if len(cfg.pkgs) == 0 {
		return errors.New("-pkgs is empty")
	}
	for _, p := range cfg.pkgs {
		if _, err := parsePkg(p); err != nil {
			return err
		}
	}
	if cfg.parallel < 1 || cfg.smp < 1 || cfg.memMiB < 256 {
		return errors.New("-parallel and -smp must be >= 1, -mem >= 256")
	}
	if !safeName.MatchString(cfg.requireAttach) || !safeName.MatchString(cfg.lsm) {
		return errors.New("-require-attach and -lsm take comma lists of names")
	}
	if ci := os.Getenv("CI"); cfg.allowMissing && isCI(ci) {
		return fmt.Errorf("-allow-missing (or %s=1) is refused under CI (CI=%q): a CI run must boot every listed kernel", envAllowMissing, ci)
	}
	// qemu parses -serial file:PATH and friends with commas as separators.
	if strings.ContainsAny(cfg.cacheDir, ",:") {
		return fmt.Errorf("-cache %q: must not contain ',' or ':'", cfg.cacheDir)
	}
	return nil
}

// envAllowMissing is the environment form of -allow-missing, for
// "VMTEST_ALLOW_MISSING=1 make vmtest".
const envAllowMissing = "VMTEST_ALLOW_MISSING"

// envBool reads a boolean environment variable; unset or empty is false.
func envBool(name string) (bool, error) {
	v := os.Getenv(name)
	if v == "" {
		return false, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, fmt.Errorf("%s=%q: want 1 or 0 (true or false)", name, v)
	}
	return b, nil
}

// isCI reports whether the CI variable says this is a CI run. CI services
// set CI=true; any value other than an explicit false counts, so that a
// CI run is never mistaken for a developer's.
func isCI(v string) bool {
	if v == "" {
		return false
	}
	b, err := strconv.ParseBool(v)
	return err != nil || b
}

func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

// run does the whole matrix and reports whether it passed.
func run(ctx context.Context, cfg *config, log *slog.Logger, out io.Writer) (bool, error) {
	if err := checkHost(cfg); err != nil {
		return false, err
	}
	runDir, err := newRunDir(cfg.cacheDir, log)
	if err != nil {
		return false, err
	}
	// 1. Test binaries, static, plus their testdata, and cmd/lineaged for
	// the tests that run the daemon (no Go toolchain in the guest).
	tests, testdata, notes, err := buildTests(ctx, cfg.pkgs, runDir, cfg.arch, log)
	if err != nil {
		return false, err
	}
	notes = append(notes, subsetNotes(cfg.pkgs, cfg.kernels)...)
	lineaged, err := buildLineaged(ctx, runDir, cfg.arch, log)
	if err != nil {
		return false, err
	}
	// 2. BPF objects for the verifier budget: those of this architecture.
	objs, err := findObjects(".", cfg.arch)
	if err != nil {
		return false, err
	}
	// 3. One initramfs for every guest, with busybox and the executables
	// the tests run from the host or from the architecture's packages.
	ul, err := guestUserland(ctx, cfg, log)
	if err != nil {
		return false, err
	}
	initrd, err := writeInitramfs(cfg, runDir, tests, testdata, objs, lineaged, ul)
	if err != nil {
		return false, err
	}
	// 4. Kernels, resolved and fetched one at a time (one apt cache).
	runs, err := resolveKernels(ctx, cfg, log)
	if err != nil {
		return false, err
	}
	// 5. Boot, at most cfg.parallel at once.
	bootAll(ctx, cfg, runs, tests, initrd, runDir, log)
	// Keep the logs, drop the bulky inputs (tens of MB per run).
	os.Remove(initrd)
	os.Remove(lineaged)
	for _, t := range tests {
		os.Remove(t.Binary)
	}
	// 6. Report.
	return report(out, cfg, runs, notes, runDir)
}

// checkHost checks that the run starts from the repository root and that
// the host tools it needs are installed, naming what to install.
func checkHost(cfg *config) error {
	if _, err := os.Stat("go.mod"); err != nil {
		return errors.New("run from the repository root (go.mod not found)")
	}
	for _, tool := range []string{cfg.qemu, "apt-get", "apt-cache", "dpkg-deb", "go"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("%s not found: install it (%s, apt, dpkg, Go)", tool, cfg.arch.QemuPkg)
		}
	}
	if cfg.busybox != "" {
		if _, err := os.Stat(cfg.busybox); err != nil {
			return fmt.Errorf("busybox: %w (apt-get install busybox-static)", err)
		}
	}
	if !cfg.arch.FromHost {
		// The executables come from the architecture's packages, found
		// by the host's owner of each path (userland.go).
		if _, err := exec.LookPath("dpkg-query"); err != nil {
			return fmt.Errorf("dpkg-query not found: -arch %s finds the packages of -host-bins with it", cfg.arch.Name)
		}
		return nil
	}
	for _, b := range cfg.hostBins {
		if _, err := os.Stat(b); err != nil {
			return fmt.Errorf("-host-bins: %w (tests/install-deps.sh installs what the default list names, bpftool included)", err)
		}
	}
	return nil
}

// newRunDir makes this run's directory under the cache. Several people may
// run the matrix at once in one tree: each run gets its own directory, and
// old ones are pruned.
func newRunDir(cacheDir string, log *slog.Logger) (string, error) {
	if err := os.MkdirAll(cacheDir, 0o700); err != nil {
		return "", err
	}
	pruneRuns(cacheDir, 24*time.Hour, log)
	return os.MkdirTemp(cacheDir, "run-"+time.Now().UTC().Format("20060102-150405")+"-")
}

// writeInitramfs writes the one initramfs every guest boots, with the test
// binaries, their testdata, the BPF objects and the host binaries, and
// returns its path. The guest's own test timeout leaves the host's
// per-guest timeout room to collect the results.
func writeInitramfs(cfg *config, runDir string, tests []guestTest, testdata map[string]map[string]string, objs map[string]string, lineaged string, ul *userland) (string, error) {
	initrd := filepath.Join(runDir, "initramfs.cpio")
	f, err := os.OpenFile(initrd, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return "", err
	}
	guestTimeout := min(cfg.pkgTimeout, cfg.timeout-30*time.Second)
	if guestTimeout < time.Minute {
		guestTimeout = time.Minute
	}
	err = buildInitramfs(f, initramfsSpec{
		Arch:    cfg.arch,
		Busybox: ul.Busybox,
		Init: initConfig{
			Tests:       tests,
			TestTimeout: guestTimeout.String(),
			Run:         cfg.run,
			Count:       cfg.count,
		},
		Objects:  objs,
		Testdata: testdata,
		Root:     ul.Root,
		HostBins: cfg.hostBins,
		Lineaged: lineaged,
	})
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return "", fmt.Errorf("initramfs: %w", err)
	}
	return initrd, nil
}

// resolveKernels resolves and fetches each listed kernel, one at a time
// under a lock: the apt lists and kernel cache are shared between
// concurrent runs. A kernel that cannot be had is marked not run, with
// the reason.
func resolveKernels(ctx context.Context, cfg *config, log *slog.Logger) ([]*guestRun, error) {
	unlock, err := lockFile(filepath.Join(cfg.cacheDir, "kernels.lock"))
	if err != nil {
		return nil, err
	}
	defer unlock()
	kc := &kernelCache{dir: cfg.cacheDir, arch: cfg.arch, refresh: cfg.refresh, log: log}
	runs := make([]*guestRun, len(cfg.kernels))
	for i, sel := range cfg.kernels {
		runs[i] = &guestRun{Selector: sel, Arch: cfg.arch.Name}
		k, err := kc.Resolve(ctx, sel)
		if err != nil {
			runs[i].NotRun = err.Error()
			log.Warn("kernel not run", "kernel", runs[i].label(), "reason", err)
			continue
		}
		runs[i].Kernel = k
	}
	return runs, nil
}

// bootAll boots every resolved kernel, at most cfg.parallel at once, and
// waits for all of them. Guests start heaviest first (most suites, then
// the order listed): with two at a time, the guest that runs every suite
// starting last would alone add its whole wall time to the run.
func bootAll(ctx context.Context, cfg *config, runs []*guestRun, tests []guestTest, initrd, runDir string, log *slog.Logger) {
	var wg sync.WaitGroup
	sem := make(chan struct{}, cfg.parallel)
	for _, g := range bootOrder(runs, tests) {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			boot(ctx, cfg, g, initrd, runDir, log)
		}()
	}
	wg.Wait()
}

// bootOrder returns the guests to boot, those running more suites first,
// ties in the order listed.
func bootOrder(runs []*guestRun, tests []guestTest) []*guestRun {
	weight := func(g *guestRun) int {
		n := 0
		for _, t := range tests {
			if len(t.Kernels) == 0 || slices.Contains(t.Kernels, g.Selector) {
				n++
			}
		}
		return n
	}
	var order []*guestRun
	for _, g := range runs {
		if g.NotRun == "" {
			order = append(order, g)
		}
	}
	slices.SortStableFunc(order, func(a, b *guestRun) int { return weight(b) - weight(a) })
	return order
}

// report prints the tables, the notes, what lies behind each failure, the
// totals and the verdict, writes the markdown copy when asked, and
// returns whether the run passed.
func report(out io.Writer, cfg *config, runs []*guestRun, notes []string, runDir string) (bool, error) {
	kt, tt, ft, vt := tables(runs)
	fmt.Fprintln(out, "\n== kernels")
	kt.text(out)
	fmt.Fprintln(out, "\n== tests")
	tt.text(out)
	fmt.Fprintln(out, "\n== attach types (probed in each guest)")
	ft.text(out)
	fmt.Fprintln(out, "\n== verified instructions (per program, per kernel)")
	vt.text(out)
	for _, n := range notes {
		fmt.Fprintln(out, "note:", n)
	}
	for _, g := range runs {
		guestDetails(out, g)
	}
	if cfg.markdown != "" {
		if err := writeMarkdown(cfg.markdown, kt, tt, ft, vt); err != nil {
			return false, err
		}
	}
	t := count(runs)
	fmt.Fprintf(out, "logs: %s\n", runDir)
	fmt.Fprintf(out, "%d passed, %d failed, %d expected failures, %d unexpected passes, %d skipped; %d of %d kernels ran\n",
		t.Passed, t.Failed, t.Expected, t.Unexpected, t.Skipped, len(runs)-t.NotRun, len(runs))
	ok, why := verdict(runs, cfg)
	for _, w := range why {
		fmt.Fprintln(out, "FAIL:", w)
	}
	return ok, nil
}

// guestDetails prints, for one kernel, what the tables cannot hold: each
// failed test with why the harness failed it or the last lines its binary
// printed before the failure (so that the end of a CI log names it), problems not tied to a test, why the kernel
// was not run, and the known defect behind each expected failure.
func guestDetails(out io.Writer, g *guestRun) {
	for _, name := range g.Order {
		if g.Results[name] != statusFail {
			continue
		}
		if w, ok := g.Why[name]; ok {
			fmt.Fprintf(out, "failed: %s: %s: %s\n", g.label(), name, w)
		} else {
			fmt.Fprintf(out, "failed: %s: %s\n", g.label(), name)
		}
		for _, l := range g.Tail[name] {
			fmt.Fprintf(out, "  | %s\n", l)
		}
	}
	for _, p := range g.Problems {
		fmt.Fprintf(out, "problem: %s: %s\n", g.label(), p)
	}
	if g.NotRun != "" {
		fmt.Fprintf(out, "not run: %s: %s\n", g.label(), g.NotRun)
	}
	for _, name := range g.Order {
		if g.Results[name] == statusXFail {
			fmt.Fprintf(out, "expected failure: %s: %s (known defect: %s)\n", g.label(), name, g.Defects[name])
		}
	}
}

func writeMarkdown(path string, tabs ...*table) error {
	var b bytes.Buffer
	for i, t := range tabs {
		if i > 0 {
			b.WriteString("\n")
		}
		t.markdown(&b)
	}
	return os.WriteFile(path, b.Bytes(), 0o600)
}

// boot runs one guest under a hard timeout and parses its results port.
func boot(ctx context.Context, cfg *config, g *guestRun, initrd, runDir string, log *slog.Logger) {
	name := strings.ReplaceAll(g.label(), "/", "-")
	console := filepath.Join(runDir, name+".console.log")
	results := filepath.Join(runDir, name+".results.log")
	args := qemuArgs(cfg, g, initrd, console, results)
	ctx, cancel := context.WithTimeout(ctx, cfg.timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, cfg.qemu, args...)
	cmd.WaitDelay = 5 * time.Second
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	log.Info("booting", "kernel", g.label(), "package", g.Kernel.Package)
	start := time.Now()
	err := cmd.Run()
	g.Wall = time.Since(start)

	f, ferr := os.Open(results)
	if ferr != nil {
		parseGuest(strings.NewReader(""), g)
	} else {
		parseGuest(f, g)
		f.Close()
	}
	switch {
	case ctx.Err() != nil:
		g.Problems = append(g.Problems, fmt.Sprintf("qemu killed after %s timeout", cfg.timeout))
	case err != nil:
		g.Problems = append(g.Problems, fmt.Sprintf("qemu: %v: %s", err, lastLine(stderr.String())))
	}
	log.Info("guest finished", "kernel", g.label(), "uname", g.Uname, "wall", g.Wall.Round(time.Second), "problems", len(g.Problems))
}

// kernelAppend is a guest's kernel command line.
func kernelAppend(cfg *config, selector string) string {
	lsm, require := guestLSM(cfg, selector)
	words := []string{"console=" + cfg.arch.Console, "panic=-1", "quiet", "loglevel=4"}
	if cfg.arch == archAMD64 {
		// no_timer_check: under emulation on a busy host the IO-APIC
		// timer check can miss its window and panic 5.10 at boot.
		words = append(words, "no_timer_check")
	}
	return strings.Join(append(words,
		"lsm="+lsm, "rdinit=/init", "vmtest.require_attach="+require,
		"vmtest.kernel="+selector, // picks the packages of a kernel subset (-pkgs path@kernel)
	), " ")
}

// qemuArgs is the qemu command line of one guest: the console log and the
// results port's file, the kernel and initramfs, on cfg's architecture.
func qemuArgs(cfg *config, g *guestRun, initrd, console, results string) []string {
	var args []string
	if cfg.arch == archARM64 {
		args = append(args, "-M", "virt")
	}
	// thread=single: with one host thread per vCPU (thread=multi) a vCPU
	// can run stale translated code across the kernel's int3-based live
	// patching when tracepoints are toggled, and the guest oopses ("Oops:
	// int3" in syscall_trace_enter; seen on 6.12, 6.18, 7.3). One thread
	// for both vCPUs keeps the guest SMP and costs no throughput here,
	// where guests already run two at a time; arm64 guests run the same
	// way.
	cpu := "max"
	if cfg.arch == archARM64 {
		// The cloud-arm64 kernels sign every return address: the
		// architected pointer authentication (QARMA) is slow to
		// emulate, qemu's own implementation is not.
		cpu = "max,pauth-impdef=on"
	}
	args = append(args,
		"-accel", "tcg,thread=single", "-cpu", cpu,
		"-smp", fmt.Sprint(cfg.smp), "-m", fmt.Sprint(cfg.memMiB),
		"-nodefaults", "-display", "none", "-no-reboot",
	)
	switch cfg.arch {
	case archARM64:
		// ttyAMA0 (the virt machine's one PL011): kernel console; a 16550
		// on the PCI bus, ttyS0 in the guest: results only.
		args = append(args,
			"-serial", "file:"+console,
			"-chardev", "file,id=results,path="+results,
			"-device", "pci-serial,chardev=results",
		)
	default:
		// ttyS0: kernel console (kept for debugging); ttyS1: results only,
		// so kernel messages never split a test line.
		args = append(args,
			"-serial", "file:"+console,
			"-serial", "file:"+results,
		)
	}
	return append(args,
		"-kernel", g.Kernel.Vmlinuz, "-initrd", initrd,
		"-append", kernelAppend(cfg, g.Selector),
	)
}

// lockFile takes an exclusive flock on path, waiting for other runs.
func lockFile(path string) (unlock func(), err error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	return func() { f.Close() }, nil
}

// pruneRuns removes run directories older than age, and all but the 20
// newest (names start with the UTC start time, so they sort by age).
func pruneRuns(cacheDir string, age time.Duration, log *slog.Logger) {
	dirs, _ := filepath.Glob(filepath.Join(cacheDir, "run-*"))
	sort.Strings(dirs)
	for i, d := range dirs {
		if info, err := os.Stat(d); err == nil && (time.Since(info.ModTime()) > age || i < len(dirs)-20) {
			if err := os.RemoveAll(d); err != nil {
				log.Warn("prune old run", "dir", d, "err", err)
			}
		}
	}
}

// guestLSM returns a guest's lsm= list and the attach kinds its smoke test
// must find. A -nolsm guest leaves bpf out, so LSM programs are not expected.
func guestLSM(cfg *config, selector string) (lsm, require string) {
	if !strings.HasSuffix(selector, noLSMSuffix) {
		return cfg.lsm, cfg.requireAttach
	}
	var l, r []string
	for _, m := range strings.Split(cfg.lsm, ",") {
		if m != "bpf" {
			l = append(l, m)
		}
	}
	req := strings.Split(cfg.requireAttach, ",")
	if cfg.requireAttach == "all" {
		req = attachKinds
	}
	for _, k := range req {
		if k != "lsm" {
			r = append(r, k)
		}
	}
	if len(r) == 0 {
		r = []string{"none"}
	}
	return strings.Join(l, ","), strings.Join(r, ",")
}
