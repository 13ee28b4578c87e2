package posture

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"
)

// Check is one posture check. Run reads what it needs under root and says
// what it saw in the result's Detail; a failure to read is a failed check
// (OK false, the error as Detail), never a panic or an error return, so one
// broken check cannot hide the others.
type Check interface {
	Name() string
	Run(ctx context.Context, root Root) Result
}

// Check names, as they appear in posture.failed, posture.checks and Config.Checks.
const (
	CheckDiskEncryption  = "disk_encryption"
	CheckSecureBoot      = "secure_boot"
	CheckKernelLockdown  = "kernel_lockdown"
	CheckASLR            = "aslr"
	CheckPtraceScope     = "ptrace_scope"
	CheckUnprivilegedBPF = "unprivileged_bpf_disabled"
	CheckKptrRestrict    = "kptr_restrict"
	CheckSSHPasswordAuth = "ssh_password_auth_disabled"
	CheckAutoUpdates     = "auto_updates"
	CheckFirewall        = "firewall"
	CheckEndpoint        = "endpoint_protection"
	CheckMAC             = "mac_enforcing"
	CheckUpdatesFresh    = "os_updates_fresh"
	CheckSensorAttached  = "sensor_attached"
	CheckNoAgentListener = "no_agent_listener"
	CheckAgentHooks      = "agent_hooks"
)

// builtin returns a fresh instance of every built-in check, in report order,
// configured from cfg (validated) and clock.
func builtin(cfg Config, clock func() time.Time) []Check {
	return []Check{
		DiskEncryption{},
		SecureBoot{},
		KernelLockdown{},
		ASLR{},
		PtraceScope{},
		UnprivilegedBPF{},
		KptrRestrict{},
		SSHPasswordAuth{},
		AutoUpdates{},
		Firewall{},
		EndpointProtection{Names: cfg.EndpointProtection},
		MACEnforcing{},
		UpdatesFresh{MaxIndexAge: cfg.Updates.MaxIndexAge, MaxUpgradeAge: cfg.Updates.MaxUpgradeAge, Now: clock},
		SensorAttached{Attached: cfg.Attached, SelfCheck: cfg.SelfCheck},
		NoAgentListener{InSession: cfg.InSession},
		AgentHooks{Path: cfg.ManagedSettings},
	}
}

// CheckNames lists the names of all built-in checks.
func CheckNames() []string {
	var names []string
	for _, c := range builtin(Config{}, time.Now) {
		names = append(names, c.Name())
	}
	return names
}

func ok(format string, a ...any) Result {
	return Result{OK: true, Detail: fmt.Sprintf(format, a...)}
}

func fail(format string, a ...any) Result {
	return Result{OK: false, Detail: fmt.Sprintf(format, a...)}
}

func failErr(err error) Result {
	return Result{OK: false, Detail: err.Error()}
}

// sysctl reads an integer sysctl; a missing file is reported with absent so
// a check can say which kernel feature is missing instead of ENOENT.
func sysctl(root Root, path, absent string) (int64, *Result) {
	v, err := root.readInt(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			c := fail("%s (%s missing)", absent, path)
			return 0, &c
		}
		c := failErr(err)
		return 0, &c
	}
	return v, nil
}

// ASLR requires full address-space layout randomisation
// (kernel.randomize_va_space = 2: stack, mmap, vdso and heap/brk).
type ASLR struct{}

// Name implements Check.
func (ASLR) Name() string { return CheckASLR }

// Run implements Check.
func (ASLR) Run(_ context.Context, root Root) Result {
	v, bad := sysctl(root, "/proc/sys/kernel/randomize_va_space", "cannot read ASLR setting")
	if bad != nil {
		return *bad
	}
	switch v {
	case 2:
		return ok("randomize_va_space=2 (full)")
	case 1:
		return fail("randomize_va_space=1 (heap not randomised)")
	case 0:
		return fail("randomize_va_space=0 (disabled)")
	}
	return fail("randomize_va_space=%d (unknown value)", v)
}

// PtraceScope requires Yama to restrict ptrace (kernel.yama.ptrace_scope >= 1),
// so a compromised process cannot read the memory (tokens, keys) of another
// process of the same user, such as an agent.
type PtraceScope struct{}

// Name implements Check.
func (PtraceScope) Name() string { return CheckPtraceScope }

// Run implements Check.
func (PtraceScope) Run(_ context.Context, root Root) Result {
	v, bad := sysctl(root, "/proc/sys/kernel/yama/ptrace_scope", "Yama LSM not enabled")
	if bad != nil {
		return *bad
	}
	names := map[int64]string{0: "classic", 1: "restricted to descendants", 2: "admin only", 3: "no attach"}
	if n, known := names[v]; known {
		if v >= 1 {
			return ok("ptrace_scope=%d (%s)", v, n)
		}
		return fail("ptrace_scope=%d (%s)", v, n)
	}
	return fail("ptrace_scope=%d (unknown value)", v)
}

// UnprivilegedBPF requires kernel.unprivileged_bpf_disabled != 0: unprivileged
// BPF has been the entry point of many kernel exploits.
type UnprivilegedBPF struct{}

// Name implements Check.
func (UnprivilegedBPF) Name() string { return CheckUnprivilegedBPF }

// Run implements Check.
func (UnprivilegedBPF) Run(_ context.Context, root Root) Result {
	v, bad := sysctl(root, "/proc/sys/kernel/unprivileged_bpf_disabled", "cannot read BPF setting")
	if bad != nil {
		return *bad
	}
	switch v {
	case 0:
		return fail("unprivileged_bpf_disabled=0 (unprivileged BPF allowed)")
	case 1:
		return ok("unprivileged_bpf_disabled=1 (disabled, locked until reboot)")
	case 2:
		return ok("unprivileged_bpf_disabled=2 (disabled)")
	}
	return fail("unprivileged_bpf_disabled=%d (unknown value)", v)
}

// KptrRestrict requires kernel.kptr_restrict >= 1 so kernel addresses are
// hidden from unprivileged users (KASLR bypass).
type KptrRestrict struct{}

// Name implements Check.
func (KptrRestrict) Name() string { return CheckKptrRestrict }

// Run implements Check.
func (KptrRestrict) Run(_ context.Context, root Root) Result {
	v, bad := sysctl(root, "/proc/sys/kernel/kptr_restrict", "cannot read kptr_restrict")
	if bad != nil {
		return *bad
	}
	switch v {
	case 0:
		return fail("kptr_restrict=0 (kernel pointers visible)")
	case 1:
		return ok("kptr_restrict=1 (hidden from unprivileged users)")
	case 2:
		return ok("kptr_restrict=2 (hidden from everyone)")
	}
	return fail("kptr_restrict=%d (unknown value)", v)
}

// KernelLockdown requires the lockdown LSM in integrity or confidentiality
// mode, which stops root from modifying the running kernel (/dev/mem,
// unsigned modules, kexec of unsigned images).
type KernelLockdown struct{}

// Name implements Check.
func (KernelLockdown) Name() string { return CheckKernelLockdown }

// Run implements Check.
func (KernelLockdown) Run(_ context.Context, root Root) Result {
	const p = "/sys/kernel/security/lockdown"
	b, err := root.ReadFile(p)
	if err != nil {
		if !errors.Is(err, os.ErrNotExist) {
			return failErr(err)
		}
		// An empty /sys/kernel/security means securityfs is not mounted, in
		// which case lockdown may be active but cannot be read.
		ents, derr := root.ReadDir("/sys/kernel/security")
		if derr != nil || len(ents) == 0 {
			return fail("cannot determine: securityfs not mounted at /sys/kernel/security")
		}
		return fail("lockdown LSM not enabled (%s missing)", p)
	}
	s := strings.TrimSpace(string(b))
	mode := ""
	for _, f := range strings.Fields(s) {
		if len(f) > 2 && f[0] == '[' && f[len(f)-1] == ']' {
			if mode != "" {
				return fail("malformed %s: %q", p, truncate(s, 64))
			}
			mode = f[1 : len(f)-1]
		}
	}
	switch mode {
	case "":
		return fail("malformed %s: no [mode] in %q", p, truncate(s, 64))
	case "none":
		return fail("lockdown=none")
	case "integrity", "confidentiality":
		return ok("lockdown=%s", mode)
	}
	return fail("lockdown=%s (unknown mode)", mode)
}

// SecureBoot requires UEFI Secure Boot to be enabled, read from the
// SecureBoot EFI variable (4 attribute bytes, then one value byte).
type SecureBoot struct{}

// Name implements Check.
func (SecureBoot) Name() string { return CheckSecureBoot }

const efiGlobalGUID = "8be4df61-93ca-11d2-aa0d-00e098032b8c"

// Run implements Check.
func (SecureBoot) Run(_ context.Context, root Root) Result {
	efi, err := root.Exists("/sys/firmware/efi")
	if err != nil {
		return failErr(err)
	}
	if !efi {
		return fail("not booted via UEFI (no /sys/firmware/efi): Secure Boot unavailable")
	}
	const dir = "/sys/firmware/efi/efivars"
	sb, err := root.ReadFile(dir + "/SecureBoot-" + efiGlobalGUID)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			ents, derr := root.ReadDir(dir)
			if derr != nil || len(ents) == 0 {
				return fail("cannot determine: efivarfs not mounted at %s", dir)
			}
			return fail("SecureBoot variable absent (firmware without Secure Boot support)")
		}
		return failErr(err)
	}
	if len(sb) != 5 {
		return fail("malformed SecureBoot variable: %d bytes, want 5", len(sb))
	}
	switch sb[4] {
	case 1:
		// In setup mode no platform key is enrolled and the firmware does not
		// enforce signatures even though SecureBoot may read 1.
		if sm, err := root.ReadFile(dir + "/SetupMode-" + efiGlobalGUID); err == nil && len(sm) == 5 && sm[4] == 1 {
			return fail("SecureBoot=1 but firmware is in setup mode (not enforced)")
		}
		return ok("SecureBoot=1 (enabled)")
	case 0:
		return fail("SecureBoot=0 (disabled)")
	}
	return fail("SecureBoot=%d (unknown value)", sb[4])
}
