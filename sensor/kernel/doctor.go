//go:build linux

package kernel

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/btf"
	"github.com/cilium/ebpf/features"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"
)

// Linux capability numbers (linux/capability.h).
const (
	capSysAdmin = 21
	capPerfmon  = 38
	capBPF      = 39
)

// Minimum kernel: ring buffers (5.8) and tp_btf with BTF.
const minKernelMajor, minKernelMinor = 5, 8

// Check is one line of a doctor report.
type Check struct {
	Name string
	OK   bool
	// Required checks stop the sensor when they fail; the others inform.
	Required bool
	Detail   string
}

// Report is the result of Doctor.
type Report struct {
	Checks []Check
}

// Err names exactly what is missing when the sensor cannot run, or nil.
func (r Report) Err() error {
	var missing []string
	for _, c := range r.Checks {
		if c.Required && !c.OK {
			missing = append(missing, c.Name+": "+c.Detail)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	return fmt.Errorf("sensor cannot run on this host: %s", strings.Join(missing, "; "))
}

// WriteTable prints the report as an aligned table.
func (r Report) WriteTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "CHECK\tSTATUS\tDETAIL")
	for _, c := range r.Checks {
		status := "ok"
		switch {
		case !c.OK && c.Required:
			status = "FAIL"
		case !c.OK:
			status = "no (not needed)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", c.Name, status, strings.ReplaceAll(c.Detail, "\n", " "))
	}
	return tw.Flush()
}

// Doctor checks what the sensor needs on this host: kernel version,
// capabilities, BTF, ring buffers and each program attach type in use
// (tp_btf for the process and file programs; raw_tp and tracepoint are
// reported for information, tracefs only matters for tracepoint programs).
// When the prerequisites hold it also loads and attaches the real programs
// with cfg, which is the check the verifier has the last word on.
func Doctor(cfg Config, log *slog.Logger) Report {
	var r Report
	add := func(name string, required bool, err error, okDetail string) bool {
		c := Check{Name: name, Required: required, OK: err == nil, Detail: okDetail}
		if err != nil {
			c.Detail = err.Error()
		}
		r.Checks = append(r.Checks, c)
		return err == nil
	}

	release, kerr := kernelRelease()
	add("kernel version", true, kerr, release)
	capsOK := add("capabilities", true, checkCaps(), "CAP_BPF and CAP_PERFMON (or CAP_SYS_ADMIN) effective")
	btfOK := add("kernel BTF", true, checkBTF(), "/sys/kernel/btf/vmlinux")
	if !capsOK {
		// Every remaining check needs bpf(2).
		return r
	}
	add("ring buffer map", true, features.HaveMapType(ebpf.RingBuf), "BPF_MAP_TYPE_RINGBUF")
	if btfOK {
		add("attach tp_btf", true, probeTPBTF(), "sched_process_exec")
	}
	add("attach raw_tp", false, probeRawTP(), "sched_process_exec")
	tpErr := probeTracepoint()
	add("attach tracepoint", false, tpErr, "sched/sched_process_exec")
	add("tracefs", false, checkTracefs(), "the tamper programs attach to syscall tracepoints; lineaged run mounts it at /sys/kernel/tracing when missing")
	if btfOK {
		add("attach fentry", false, probeFentry(), "vfs_read (cheaper hooks; lineaged does not need them)")
		name, reason, err := probeEnforcement()
		add("enforcement", false, err, HooksDetail(name, reason))
		detail, err := iouringCheck()
		add("io_uring", false, err, detail)
	}
	if r.Err() != nil {
		return r
	}
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	pinPath := cfg.PinPath
	cfg.PinPath = "" // the load check must not touch the pinned state
	// No hold: nothing reads the records of this check, so nothing would
	// continue a process it stopped.
	cfg.HoldExeFlags, cfg.HoldUnseen, cfg.OnHeld = 0, false, nil
	s, err := New(cfg, log)
	tamper, ident := "", ""
	if err == nil {
		hooks, why := s.TamperHooks()
		tamper = "tampering with the sensor is refused (bpf LSM) and reported"
		if hooks != HooksLSM {
			tamper = "tampering with the sensor is reported, not refused: " + why
		}
		hooked, hwhy := s.PathIdentity()
		switch {
		case len(hooked) == 0:
			ident = "unlink, rename, chmod, chown, truncate and link records name the object as the caller did, with no identity: " + hwhy
		case hwhy != "":
			ident = "records carry the identity of the object changed (LSM path hooks " + strings.Join(hooked, ", ") + "); not for: " + hwhy
		default:
			ident = "unlink, rename, chmod, chown, truncate and link records carry the identity of the object changed (LSM path hooks)"
		}
		s.Close()
	}
	add("load and attach programs", true, err, "process programs verified and attached")
	if err == nil {
		add("tamper", false, nil, tamper)
		add("path identity", false, nil, ident)
		add("path walk", false, nil, WalkerName())
	}
	if pinPath != "" {
		cfg.PinPath = pinPath
		add("pinned state", false, nil, PinStatus(cfg))
	}
	return r
}

// preflight is New's quick check, so a host that cannot run the sensor
// gets one line naming what is missing instead of a verifier error.
func preflight() error {
	var missing []string
	if err := checkCaps(); err != nil {
		missing = append(missing, err.Error())
	}
	if err := checkBTF(); err != nil {
		missing = append(missing, err.Error())
	}
	if len(missing) > 0 {
		return fmt.Errorf("sensor cannot run: %s", strings.Join(missing, "; "))
	}
	return nil
}

func kernelRelease() (string, error) {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return "", fmt.Errorf("uname: %w", err)
	}
	rel := unix.ByteSliceToString(u.Release[:])
	major, minor, ok := parseRelease(rel)
	if !ok {
		return rel, fmt.Errorf("cannot parse kernel release %q", rel)
	}
	if major < minKernelMajor || (major == minKernelMajor && minor < minKernelMinor) {
		return rel, fmt.Errorf("kernel %s is older than %d.%d", rel, minKernelMajor, minKernelMinor)
	}
	return rel, nil
}

func parseRelease(rel string) (major, minor int, ok bool) {
	parts := strings.SplitN(rel, ".", 3)
	if len(parts) < 2 {
		return 0, 0, false
	}
	major, err1 := strconv.Atoi(parts[0])
	end := 0
	for end < len(parts[1]) && parts[1][end] >= '0' && parts[1][end] <= '9' {
		end++
	}
	minor, err2 := strconv.Atoi(parts[1][:end])
	return major, minor, err1 == nil && err2 == nil
}

// effectiveCaps reads CapEff of this process.
func effectiveCaps() (uint64, error) {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, err
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "CapEff:"); ok {
			return strconv.ParseUint(strings.TrimSpace(v), 16, 64)
		}
	}
	return 0, errors.New("no CapEff in /proc/self/status")
}

func checkCaps() error {
	caps, err := effectiveCaps()
	if err != nil {
		return fmt.Errorf("cannot read capabilities: %w", err)
	}
	has := func(c uint) bool { return caps&(1<<c) != 0 }
	if has(capSysAdmin) || (has(capBPF) && has(capPerfmon)) {
		return nil
	}
	var miss []string
	if !has(capBPF) {
		miss = append(miss, "CAP_BPF")
	}
	if !has(capPerfmon) {
		miss = append(miss, "CAP_PERFMON")
	}
	return fmt.Errorf("missing %s (run as root or grant CAP_BPF+CAP_PERFMON)", strings.Join(miss, "+"))
}

func checkBTF() error {
	if _, err := os.Stat("/sys/kernel/btf/vmlinux"); err != nil {
		return errors.New("no kernel BTF at /sys/kernel/btf/vmlinux (need CONFIG_DEBUG_INFO_BTF=y)")
	}
	if _, err := btf.LoadKernelSpec(); err != nil {
		return fmt.Errorf("kernel BTF unreadable: %w", err)
	}
	return nil
}

func checkTracefs() error {
	for _, p := range []string{"/sys/kernel/tracing/events", "/sys/kernel/debug/tracing/events"} {
		if _, err := os.Stat(p); err == nil {
			return nil
		}
	}
	return errors.New("tracefs not mounted at /sys/kernel/tracing")
}

var trivialProgram = asm.Instructions{asm.Mov.Imm(asm.R0, 0), asm.Return()}

func probeTPBTF() error {
	p, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Type: ebpf.Tracing, AttachType: ebpf.AttachTraceRawTp, AttachTo: "sched_process_exec",
		Instructions: trivialProgram, License: "GPL",
	})
	if err != nil {
		return fmt.Errorf("load: %w", err)
	}
	defer p.Close()
	l, err := link.AttachTracing(link.TracingOptions{Program: p, AttachType: ebpf.AttachTraceRawTp})
	if err != nil {
		return fmt.Errorf("attach: %w", err)
	}
	return l.Close()
}

// probeFentry loads and attaches a trivial fentry program on vfs_read, a
// function every kernel has under that name.
func probeFentry() error {
	p, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Type: ebpf.Tracing, AttachType: ebpf.AttachTraceFEntry, AttachTo: "vfs_read",
		Instructions: trivialProgram, License: "GPL",
	})
	if err != nil {
		// refusal: the library's EPERM hint about MEMLOCK would mislead
		// on a kernel that refuses the program type itself.
		return fmt.Errorf("load refused: %s", refusal(err))
	}
	defer p.Close()
	l, err := link.AttachTracing(link.TracingOptions{Program: p})
	if err != nil {
		return fmt.Errorf("attach refused: %s", refusal(err))
	}
	return l.Close()
}

func probeRawTP() error {
	p, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Type: ebpf.RawTracepoint, Instructions: trivialProgram, License: "GPL",
	})
	if err != nil {
		return fmt.Errorf("load: %w", err)
	}
	defer p.Close()
	l, err := link.AttachRawTracepoint(link.RawTracepointOptions{Name: "sched_process_exec", Program: p})
	if err != nil {
		return fmt.Errorf("attach: %w", err)
	}
	return l.Close()
}

func probeTracepoint() error {
	p, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Type: ebpf.TracePoint, Instructions: trivialProgram, License: "GPL",
	})
	if err != nil {
		return fmt.Errorf("load: %w", err)
	}
	defer p.Close()
	l, err := link.Tracepoint("sched", "sched_process_exec", p, nil)
	if err != nil {
		return fmt.Errorf("attach: %w", err)
	}
	return l.Close()
}
