package posture

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
)

// MACEnforcing requires a mandatory-access-control LSM that enforces:
// SELinux in enforcing mode, or AppArmor with at least one profile loaded
// in enforce (or kill) mode. AppArmor enabled with every profile in
// complain mode, or SELinux permissive, only logs and does not pass.
type MACEnforcing struct{}

// Name implements Check.
func (MACEnforcing) Name() string { return CheckMAC }

const (
	selinuxEnforce   = "/sys/fs/selinux/enforce"
	apparmorEnabled  = "/sys/module/apparmor/parameters/enabled"
	apparmorProfiles = "/sys/kernel/security/apparmor/profiles"
)

// Run implements Check.
func (MACEnforcing) Run(_ context.Context, root Root) Result {
	se, seErr := selinuxMode(root)
	if seErr == nil && se == "enforcing" {
		return ok("SELinux enforcing (%s = 1)", selinuxEnforce)
	}
	aa, aaOK, aaErr := apparmorMode(root)
	if aaErr == nil && aaOK {
		return ok("%s", aa)
	}
	var parts []string
	for _, p := range []struct {
		what string
		err  error
	}{{se, seErr}, {aa, aaErr}} {
		if p.err != nil {
			parts = append(parts, p.err.Error())
		} else {
			parts = append(parts, p.what)
		}
	}
	if unreadable(seErr) || unreadable(aaErr) {
		return fail("cannot determine: %s", strings.Join(parts, "; "))
	}
	return fail("no MAC LSM enforcing: %s", strings.Join(parts, "; "))
}

// absentError marks an LSM that is not in the kernel, as opposed to one
// whose state could not be read.
type absentError string

func (e absentError) Error() string { return string(e) }

// unreadable: an error other than "this LSM is absent".
func unreadable(err error) bool {
	var a absentError
	return err != nil && !errors.As(err, &a)
}

func selinuxMode(root Root) (string, error) {
	b, err := root.ReadFile(selinuxEnforce)
	if errors.Is(err, os.ErrNotExist) {
		return "", absentError("SELinux not enabled (" + selinuxEnforce + " missing)")
	}
	if err != nil {
		return "", fmt.Errorf("SELinux: %w", err)
	}
	switch v := strings.TrimSpace(string(b)); v {
	case "1":
		return "enforcing", nil
	case "0":
		return "SELinux permissive (" + selinuxEnforce + " = 0)", nil
	default:
		return "", fmt.Errorf("SELinux: %s: unexpected %q", selinuxEnforce, truncate(v, 16))
	}
}

// apparmorMode says whether AppArmor enforces any profile, and counts the
// loaded profiles by mode.
func apparmorMode(root Root) (string, bool, error) {
	if b, err := root.ReadFile(apparmorEnabled); err == nil && strings.TrimSpace(string(b)) != "Y" {
		return "AppArmor disabled (" + apparmorEnabled + " = " + truncate(strings.TrimSpace(string(b)), 8) + ")", false, nil
	}
	b, err := root.ReadFile(apparmorProfiles)
	if errors.Is(err, os.ErrNotExist) {
		enabled, eerr := root.Exists(apparmorEnabled)
		if eerr == nil && enabled {
			return "", false, fmt.Errorf("AppArmor enabled but %s unreadable (securityfs not mounted?)", apparmorProfiles)
		}
		return "", false, absentError("AppArmor not enabled (" + apparmorProfiles + " missing)")
	}
	if err != nil {
		return "", false, fmt.Errorf("AppArmor: %w", err)
	}
	modes, err := profileModes(b)
	if err != nil {
		return "", false, fmt.Errorf("AppArmor: %s: %w", apparmorProfiles, err)
	}
	enforcing := modes["enforce"] + modes["kill"]
	desc := fmt.Sprintf("AppArmor: %d profiles in enforce mode", enforcing)
	if n := modes["complain"]; n > 0 {
		desc += fmt.Sprintf(", %d in complain mode", n)
	}
	if n := modes["unconfined"]; n > 0 {
		desc += fmt.Sprintf(", %d unconfined", n)
	}
	return desc, enforcing > 0, nil
}

// profileModes counts AppArmor profiles by mode from the profiles file: one
// "name (mode)" per line, where the name may hold spaces and parentheses,
// so the mode is the last parenthesised word.
func profileModes(b []byte) (map[string]int, error) {
	modes := map[string]int{}
	for _, l := range strings.Split(string(b), "\n") {
		l = strings.TrimSpace(l)
		if l == "" {
			continue
		}
		i := strings.LastIndex(l, " (")
		if i < 0 || !strings.HasSuffix(l, ")") {
			return nil, fmt.Errorf("malformed line %q", truncate(l, 64))
		}
		modes[l[i+2:len(l)-1]]++
	}
	return modes, nil
}
