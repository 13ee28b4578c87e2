package posture

import "testing"

func TestSysctlChecks(t *testing.T) {
	type want struct {
		val    string
		ok     bool
		detail string
	}
	for _, tc := range []struct {
		check Check
		path  string
		cases []want
	}{
		{ASLR{}, "/proc/sys/kernel/randomize_va_space", []want{
			{"2\n", true, "randomize_va_space=2 (full)"},
			{"1\n", false, "heap not randomised"},
			{"0\n", false, "disabled"},
			{"7\n", false, "unknown value"},
		}},
		{PtraceScope{}, "/proc/sys/kernel/yama/ptrace_scope", []want{
			{"0\n", false, "ptrace_scope=0 (classic)"},
			{"1\n", true, "ptrace_scope=1"},
			{"3\n", true, "ptrace_scope=3 (no attach)"},
			{"-1\n", false, "unknown value"},
		}},
		{UnprivilegedBPF{}, "/proc/sys/kernel/unprivileged_bpf_disabled", []want{
			{"0\n", false, "unprivileged BPF allowed"},
			{"1\n", true, "locked until reboot"},
			{"2\n", true, "unprivileged_bpf_disabled=2"},
			{"9\n", false, "unknown value"},
		}},
		{KptrRestrict{}, "/proc/sys/kernel/kptr_restrict", []want{
			{"0\n", false, "kernel pointers visible"},
			{"1\n", true, "kptr_restrict=1"},
			{"2\n", true, "kptr_restrict=2"},
			{"3\n", false, "unknown value"},
		}},
	} {
		var cases []checkCase
		for _, w := range tc.cases {
			cases = append(cases, checkCase{name: w.val[:len(w.val)-1], files: map[string]string{tc.path: w.val}, ok: w.ok, detail: w.detail})
		}
		cases = append(cases,
			checkCase{name: "malformed", files: map[string]string{tc.path: "two\n"}, ok: false, detail: `not an integer: "two"`},
			checkCase{name: "empty", files: map[string]string{tc.path: ""}, ok: false, detail: "not an integer"},
			checkCase{name: "missing", files: map[string]string{"/proc/sys/": ""}, ok: false, detail: tc.path + " missing"},
		)
		t.Run(tc.check.Name(), func(t *testing.T) { runCases(t, tc.check, cases) })
	}
}

func TestPtraceScopeNoYama(t *testing.T) {
	runCases(t, PtraceScope{}, []checkCase{
		{name: "no yama", files: map[string]string{"/proc/sys/kernel/": ""}, ok: false, detail: "Yama LSM not enabled"},
	})
}

func TestKernelLockdown(t *testing.T) {
	const p = "/sys/kernel/security/lockdown"
	runCases(t, KernelLockdown{}, []checkCase{
		{"integrity", map[string]string{p: "none [integrity] confidentiality\n"}, true, "lockdown=integrity"},
		{"confidentiality", map[string]string{p: "none integrity [confidentiality]\n"}, true, "lockdown=confidentiality"},
		{"none", map[string]string{p: "[none] integrity confidentiality\n"}, false, "lockdown=none"},
		{"no brackets", map[string]string{p: "none integrity confidentiality\n"}, false, "no [mode]"},
		{"two brackets", map[string]string{p: "[none] [integrity]\n"}, false, "malformed"},
		{"unknown mode", map[string]string{p: "none [weird]\n"}, false, "unknown mode"},
		{"securityfs not mounted", map[string]string{"/sys/kernel/security/": ""}, false, "securityfs not mounted"},
		{"lsm missing", map[string]string{"/sys/kernel/security/lsm": "capability,yama\n"}, false, "lockdown LSM not enabled"},
	})
}

func TestSecureBoot(t *testing.T) {
	const sb = "/sys/firmware/efi/efivars/SecureBoot-" + efiGlobalGUID
	const sm = "/sys/firmware/efi/efivars/SetupMode-" + efiGlobalGUID
	runCases(t, SecureBoot{}, []checkCase{
		{"enabled", map[string]string{sb: "\x06\x00\x00\x00\x01"}, true, "SecureBoot=1 (enabled)"},
		{"enabled user mode", map[string]string{sb: "\x06\x00\x00\x00\x01", sm: "\x06\x00\x00\x00\x00"}, true, "enabled"},
		{"setup mode", map[string]string{sb: "\x06\x00\x00\x00\x01", sm: "\x06\x00\x00\x00\x01"}, false, "setup mode"},
		{"disabled", map[string]string{sb: "\x06\x00\x00\x00\x00"}, false, "SecureBoot=0 (disabled)"},
		{"odd value", map[string]string{sb: "\x06\x00\x00\x00\x07"}, false, "unknown value"},
		{"short", map[string]string{sb: "\x06\x00\x01"}, false, "malformed SecureBoot variable: 3 bytes"},
		{"legacy bios", map[string]string{"/sys/firmware/acpi/": ""}, false, "not booted via UEFI"},
		{"efivarfs not mounted", map[string]string{"/sys/firmware/efi/efivars/": ""}, false, "efivarfs not mounted"},
		{"no secure boot var", map[string]string{"/sys/firmware/efi/efivars/Boot0000-" + efiGlobalGUID: "x"}, false, "SecureBoot variable absent"},
	})
}
