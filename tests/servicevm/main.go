// Command servicevm tests lineaged's package and unit under a real systemd:
// it boots a Debian root file system with systemd as pid 1 (built once
// with mmdebstrap and cached beside the matrix kernels) on one of the
// kernel matrix's kernels under qemu, installs the .deb inside it, and runs
// check.sh there: the postinst enables and starts the unit, the sensor
// writes events, doctor and systemd-analyze verify pass, the sandbox takes
// no feature away, restart, a killed sensor restarted by systemd, reload,
// removal and purge. The systemd-analyze security score must not be above
// the one docs/operations.md records.
//
//	go run ./tests/servicevm -deb dist/lineaged_0.1.N_amd64.deb [-kernel 6.18]
//
// The host this runs on need not run systemd (CI's does not). make
// servicetest builds the package and runs this; it needs the kernel the
// matrix (make vmtest) caches.
package main

import (
	"bufio"
	"bytes"
	"context"
	_ "embed"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/lineaged/lineaged/tests/vmtest/cpio"
)

//go:embed check.sh
var checkScript []byte

const checkUnit = `[Unit]
Description=lineaged service test (tests/servicevm)
After=basic.target

[Service]
Type=oneshot
ExecStart=/usr/local/sbin/lineaged-servicecheck
StandardOutput=journal+console

[Install]
WantedBy=multi-user.target
`

type config struct {
	deb, cache, kernel, qemu, suite string
	doc                             string // where the exposure score is recorded
	timeout                         time.Duration
	memMiB                          int
	keep                            bool
}

func main() {
	cfg := config{}
	cache := "tests/vmtest/cache"
	if d := os.Getenv("VMTEST_CACHE"); d != "" {
		cache = d
	}
	flag.StringVar(&cfg.deb, "deb", "", "the lineaged .deb to install in the guest (make package)")
	flag.StringVar(&cfg.cache, "cache", cache, "the kernel matrix's cache (kernels/), where the root file system is cached too (default from $VMTEST_CACHE)")
	flag.StringVar(&cfg.kernel, "kernel", "6.18", "kernel series from the matrix cache to boot")
	flag.StringVar(&cfg.qemu, "qemu", "qemu-system-x86_64", "qemu binary")
	flag.StringVar(&cfg.suite, "suite", "bookworm", "Debian suite of the guest's root file system")
	flag.DurationVar(&cfg.timeout, "timeout", 12*time.Minute, "wall-clock limit for the guest, boot included")
	flag.IntVar(&cfg.memMiB, "mem", 2048, "guest memory in MiB (the root file system lives in it)")
	flag.BoolVar(&cfg.keep, "keep", false, "keep the run directory (initramfs, console log)")
	flag.StringVar(&cfg.doc, "doc", "docs/operations.md", "the document recording the unit's systemd-analyze security exposure; a higher score fails")
	flag.Parse()
	if err := run(context.Background(), cfg, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "servicevm:", err)
		os.Exit(1)
	}
}

var safeWord = regexp.MustCompile(`^[a-z0-9.]+$`)

func run(ctx context.Context, cfg config, out io.Writer) error {
	if cfg.deb == "" {
		return errors.New("-deb is required: the package to install (make package builds it)")
	}
	if !safeWord.MatchString(cfg.kernel) || !safeWord.MatchString(cfg.suite) {
		return fmt.Errorf("-kernel %q / -suite %q: want a series like 6.18 and a suite like bookworm", cfg.kernel, cfg.suite)
	}
	deb, err := os.ReadFile(cfg.deb)
	if err != nil {
		return fmt.Errorf("-deb: %w", err)
	}
	documented, err := documentedExposure(cfg.doc)
	if err != nil {
		return err
	}
	vmlinuz, err := findKernel(cfg.cache, cfg.kernel)
	if err != nil {
		return err
	}
	rootfs, err := ensureRootfs(ctx, cfg.cache, cfg.suite, out)
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp(cfg.cache, "servicevm-")
	if err != nil {
		return err
	}
	if cfg.keep {
		fmt.Fprintln(out, "run directory:", dir)
	} else {
		defer os.RemoveAll(dir)
	}
	initrd := filepath.Join(dir, "initrd.cpio")
	if err := writeInitramfs(initrd, rootfs, deb); err != nil {
		return fmt.Errorf("initramfs: %w", err)
	}
	results := filepath.Join(dir, "results.log")
	console := filepath.Join(dir, "console.log")
	start := time.Now()
	qerr := boot(ctx, cfg, vmlinuz, initrd, console, results)
	fmt.Fprintf(out, "lineaged service test: %s, kernel %s, Debian %s with systemd as pid 1 (%s)\n",
		filepath.Base(cfg.deb), filepath.Base(filepath.Dir(vmlinuz)), cfg.suite, time.Since(start).Round(time.Second))
	ok, err := report(out, results)
	if err == nil && !exposureAtMost(out, results, documented) {
		ok = false
	}
	if qerr != nil {
		fmt.Fprintln(out, "qemu:", qerr)
		ok = false
	}
	if err != nil || !ok {
		fmt.Fprintf(out, "console (last lines of %s):\n%s\n", console, tail(console, 30))
		if err == nil {
			err = errors.New("the service test failed")
		}
		return err
	}
	return nil
}

// findKernel returns the newest cached vmlinuz of a series.
func findKernel(cache, series string) (string, error) {
	m, _ := filepath.Glob(filepath.Join(cache, "kernels", "linux-image-"+series+".*", "vmlinuz"))
	if len(m) == 0 {
		return "", fmt.Errorf("no kernel %s in %s: make vmtest fetches the matrix kernels into that cache", series, filepath.Join(cache, "kernels"))
	}
	sort.Strings(m)
	return m[len(m)-1], nil
}

// ensureRootfs returns the cached root file system tarball, building it
// with mmdebstrap on first use (under a lock, written to a temporary name
// and renamed, so a killed build leaves nothing half made).
func ensureRootfs(ctx context.Context, cache, suite string, out io.Writer) (string, error) {
	dir := filepath.Join(cache, "rootfs")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", err
	}
	tarball := filepath.Join(dir, suite+"-systemd.tar")
	lock, err := os.OpenFile(tarball+".lock", os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return "", err
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return "", err
	}
	if st, err := os.Stat(tarball); err == nil {
		if st.Mode().IsRegular() {
			return tarball, nil
		}
		// Not a tarball (an mmdebstrap that took its target for a
		// directory): built again.
		fmt.Fprintf(out, "%s is not a tar file: building it again\n", tarball)
		if err := os.RemoveAll(tarball); err != nil {
			return "", err
		}
	}
	if _, err := exec.LookPath("mmdebstrap"); err != nil {
		return "", errors.New("mmdebstrap is missing (make deps installs it)")
	}
	fmt.Fprintf(out, "building the guest's root file system with mmdebstrap (%s, once; cached in %s)\n", suite, dir)
	// mmdebstrap picks its output format from the target's name unless
	// told: the temporary name keeps the .tar suffix, and the format is
	// named too (a target ending in .tmp was made a directory).
	tmp := filepath.Join(dir, suite+"-systemd.partial.tar")
	os.RemoveAll(tmp)
	cmd := exec.CommandContext(ctx, "mmdebstrap", "--variant=minbase", "--mode=root", "--format=tar",
		"--include=systemd,systemd-sysv,dbus,procps", suite, tmp)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		os.Remove(tmp)
		return "", fmt.Errorf("mmdebstrap: %v: %s", err, tail2(stderr.String(), 5))
	}
	return tarball, os.Rename(tmp, tarball)
}

// writeInitramfs makes the guest's initramfs: the root file system, the
// package, and the check as a systemd unit multi-user.target wants.
func writeInitramfs(path, rootfs string, deb []byte) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	defer f.Close()
	w := bufio.NewWriterSize(f, 1<<20)
	c := cpio.New(w)
	r, err := os.Open(rootfs)
	if err != nil {
		return err
	}
	defer r.Close()
	if err := c.AddTar(r); err != nil {
		return err
	}
	// Later entries of the same name win when the kernel unpacks.
	c.File("lineaged.deb", 0o644, deb)
	c.File("usr/local/sbin/lineaged-servicecheck", 0o755, checkScript)
	c.File("etc/systemd/system/lineaged-servicecheck.service", 0o644, []byte(checkUnit))
	c.Dir("etc/systemd/system/multi-user.target.wants", 0o755)
	c.Symlink("etc/systemd/system/multi-user.target.wants/lineaged-servicecheck.service", "/etc/systemd/system/lineaged-servicecheck.service")
	// No udev in the image: a getty waiting for its tty device would hold
	// the boot for 90 s.
	c.Symlink("etc/systemd/system/serial-getty@ttyS0.service", "/dev/null")
	c.Symlink("etc/systemd/system/getty@tty1.service", "/dev/null")
	c.File("etc/hostname", 0o644, []byte("servicevm\n"))
	c.File("etc/fstab", 0o644, nil)
	if err := c.Close(); err != nil {
		return err
	}
	if err := w.Flush(); err != nil {
		return err
	}
	return f.Close()
}

func boot(ctx context.Context, cfg config, vmlinuz, initrd, console, results string) error {
	args := []string{
		// One TCG thread: see tests/vmtest (int3 live patching under
		// thread=multi).
		"-accel", "tcg,thread=single", "-cpu", "max", "-smp", "2", "-m", fmt.Sprint(cfg.memMiB),
		"-nodefaults", "-display", "none", "-no-reboot",
		"-serial", "file:" + console, "-serial", "file:" + results,
		"-kernel", vmlinuz, "-initrd", initrd,
		"-append", "console=ttyS0 rdinit=/lib/systemd/systemd panic=-1 no_timer_check " +
			"lsm=lockdown,capability,landlock,yama,apparmor,bpf systemd.show_status=0 systemd.log_target=console systemd.unit=multi-user.target",
	}
	ctx, cancel := context.WithTimeout(ctx, cfg.timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, cfg.qemu, args...)
	cmd.WaitDelay = 5 * time.Second
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	if ctx.Err() != nil {
		return fmt.Errorf("killed after %s", cfg.timeout)
	}
	if err != nil {
		return fmt.Errorf("%v: %s", err, tail2(stderr.String(), 3))
	}
	return nil
}

// report prints the guest's check lines and says whether all passed and
// the check script ran to its end.
func report(out io.Writer, results string) (bool, error) {
	b, err := os.ReadFile(results)
	if err != nil {
		return false, fmt.Errorf("no results from the guest: %w", err)
	}
	ok, done, checks := true, false, 0
	for _, l := range strings.Split(string(b), "\n") {
		l = strings.TrimRight(l, "\r")
		switch {
		case strings.HasPrefix(l, "SERVICE-CHECK ok "):
			checks++
			fmt.Fprintln(out, "  ok   ", strings.TrimPrefix(l, "SERVICE-CHECK ok "))
		case strings.HasPrefix(l, "SERVICE-CHECK fail "):
			checks++
			ok = false
			fmt.Fprintln(out, "  FAIL ", strings.TrimPrefix(l, "SERVICE-CHECK fail "))
		case strings.HasPrefix(l, "SERVICE-KERNEL "), strings.HasPrefix(l, "SERVICE-INFO "):
			fmt.Fprintln(out, "  ", strings.TrimPrefix(strings.TrimPrefix(l, "SERVICE-KERNEL "), "SERVICE-INFO "))
		case l == "SERVICE-DONE":
			done = true
		}
	}
	if !done {
		fmt.Fprintln(out, "  FAIL  the check script did not run to its end")
		ok = false
	}
	if checks == 0 {
		ok = false
	}
	fmt.Fprintf(out, "%d checks, passed: %v\n", checks, ok)
	return ok, nil
}

func tail(path string, n int) string {
	b, _ := os.ReadFile(path)
	return tail2(string(b), n)
}

func tail2(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// exposureRE finds the score docs/operations.md records.
var exposureRE = regexp.MustCompile(`exposure level is \*\*([0-9]+\.[0-9])`)

// documentedExposure reads the exposure score recorded in doc.
func documentedExposure(doc string) (float64, error) {
	b, err := os.ReadFile(doc)
	if err != nil {
		return 0, fmt.Errorf("-doc: %w", err)
	}
	m := exposureRE.FindSubmatch(b)
	if m == nil {
		return 0, fmt.Errorf("-doc %s: no \"exposure level is **N.N\" recorded", doc)
	}
	return strconv.ParseFloat(string(m[1]), 64)
}

// exposureAtMost checks the guest's systemd-analyze security score
// (SERVICE-SECURITY) against the documented one: higher fails, lower asks
// for the document to follow.
func exposureAtMost(out io.Writer, results string, documented float64) bool {
	b, _ := os.ReadFile(results)
	for _, l := range strings.Split(string(b), "\n") {
		v, ok := strings.CutPrefix(strings.TrimRight(l, "\r"), "SERVICE-SECURITY ")
		if !ok {
			continue
		}
		got, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
		switch {
		case err != nil:
			fmt.Fprintf(out, "  FAIL  systemd-analyze security gave no score (%q)\n", v)
			return false
		case got > documented:
			fmt.Fprintf(out, "  FAIL  exposure %.1f is above the %.1f docs/operations.md records\n", got, documented)
			return false
		case got < documented:
			fmt.Fprintf(out, "  ok    exposure %.1f, below the %.1f recorded: update docs/operations.md\n", got, documented)
		default:
			fmt.Fprintf(out, "  ok    exposure %.1f, as recorded\n", got)
		}
		return true
	}
	fmt.Fprintln(out, "  FAIL  no systemd-analyze security score from the guest")
	return false
}
