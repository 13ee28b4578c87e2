package posture

import (
	"context"
	"errors"
	"fmt"
	"path"
	"strings"
)

// SSHPasswordAuth requires sshd to refuse passwords. It reads sshd_config the
// way sshd does: keywords are case-insensitive, the first value obtained
// wins, Include expands globs in place (relative to /etc/ssh, sorted), and
// a Match block inside an included file ends with that file. Passwords are
// accepted when PasswordAuthentication is yes (the default) for any
// connection, including through a Match block, or when keyboard-interactive
// authentication is on with UsePAM (PAM then prompts for the password).
// A host without an sshd binary passes.
type SSHPasswordAuth struct{}

// Name implements Check.
func (SSHPasswordAuth) Name() string { return CheckSSHPasswordAuth }

// sshdBinaries are where distributions install the server.
func sshdBinaries() []string {
	return []string{"/usr/sbin/sshd", "/usr/bin/sshd", "/usr/local/sbin/sshd"}
}

const sshdConfig = "/etc/ssh/sshd_config"

// sshdMaxDepth is sshd's own Include nesting limit (SERVCONF_MAX_DEPTH).
const sshdMaxDepth = 16

// Run implements Check.
func (SSHPasswordAuth) Run(_ context.Context, root Root) Result {
	installed := false
	for _, b := range sshdBinaries() {
		found, err := root.Exists(b)
		if err != nil {
			return failErr(err)
		}
		installed = installed || found
	}
	if !installed {
		return ok("sshd not installed")
	}
	if found, err := root.Exists(sshdConfig); err != nil {
		return failErr(err)
	} else if !found {
		return fail("sshd installed without %s: PasswordAuthentication defaults to yes", sshdConfig)
	}
	cfg := newSSHConfig()
	if err := cfg.parse(root, sshdConfig, 0); err != nil {
		return failErr(err)
	}
	pw, err := cfg.value("passwordauthentication", "yes")
	if err != nil {
		return failErr(err)
	}
	if pw.val == "yes" {
		return fail("PasswordAuthentication yes (%s)", pw.where)
	}
	if w, found := cfg.matchYes["passwordauthentication"]; found {
		return fail("PasswordAuthentication yes in Match block (%s)", w)
	}
	kbd, err := cfg.value("kbdinteractiveauthentication", "yes")
	if err != nil {
		return failErr(err)
	}
	pam, err := cfg.value("usepam", "no")
	if err != nil {
		return failErr(err)
	}
	_, kbdMatch := cfg.matchYes["kbdinteractiveauthentication"]
	if pam.val == "yes" && (kbd.val == "yes" || kbdMatch) {
		return fail("PasswordAuthentication no (%s) but KbdInteractiveAuthentication with UsePAM yes (%s) accepts passwords", pw.where, pam.where)
	}
	return ok("PasswordAuthentication no (%s)", pw.where)
}

type sshOpt struct {
	val   string
	where string // file:line, or "default"
}

type sshConfig struct {
	global   map[string]sshOpt // first value outside any Match block
	matchAll map[string]sshOpt // first value inside "Match all" (applies to every connection)
	matchYes map[string]string // where a conditional Match block sets a flag to yes
	// ctx is the current Match context: "" global, "all", or "cond".
	ctx string
}

func newSSHConfig() *sshConfig {
	return &sshConfig{global: map[string]sshOpt{}, matchAll: map[string]sshOpt{}, matchYes: map[string]string{}}
}

// sshFlag maps a lower-case keyword this check evaluates to its canonical
// name (sshd treats ChallengeResponseAuthentication as an alias).
func sshFlag(kw string) (string, bool) {
	switch kw {
	case "passwordauthentication", "kbdinteractiveauthentication", "usepam":
		return kw, true
	case "challengeresponseauthentication":
		return "kbdinteractiveauthentication", true
	}
	return "", false
}

// value is the setting that applies to a connection no conditional Match
// block selects: "Match all" overrides the global value, which overrides
// the built-in default.
func (c *sshConfig) value(key, def string) (sshOpt, error) {
	o, found := c.matchAll[key]
	if !found {
		o, found = c.global[key]
	}
	if !found {
		return sshOpt{val: def, where: "default"}, nil
	}
	if o.val != "yes" && o.val != "no" {
		return o, fmt.Errorf("%s: invalid %s value %q", o.where, key, o.val)
	}
	return o, nil
}

func (c *sshConfig) parse(root Root, file string, depth int) error {
	if depth > sshdMaxDepth {
		return fmt.Errorf("%s: Include nested deeper than %d", file, sshdMaxDepth)
	}
	b, err := root.ReadFile(file)
	if err != nil {
		return err
	}
	for i, line := range strings.Split(string(b), "\n") {
		args, err := sshSplit(line)
		if err != nil {
			return fmt.Errorf("%s:%d: %w", file, i+1, err)
		}
		if len(args) == 0 {
			continue
		}
		where := fmt.Sprintf("%s:%d", file, i+1)
		kw := strings.ToLower(args[0])
		if len(args) < 2 {
			return fmt.Errorf("%s: no argument after keyword %q", where, args[0])
		}
		switch kw {
		case "match":
			if len(args) == 2 && strings.EqualFold(args[1], "all") {
				c.ctx = "all"
			} else {
				c.ctx = "cond"
			}
		case "include":
			saved := c.ctx
			for _, pat := range args[1:] {
				if !strings.HasPrefix(pat, "/") {
					pat = path.Join("/etc/ssh", pat)
				}
				files, err := root.Glob(pat)
				if err != nil {
					return fmt.Errorf("%s: %w", where, err)
				}
				for _, f := range files {
					if err := c.parse(root, f, depth+1); err != nil {
						return err
					}
					c.ctx = saved
				}
			}
		default:
			key, tracked := sshFlag(kw)
			if !tracked {
				continue
			}
			o := sshOpt{val: strings.ToLower(args[1]), where: where}
			switch c.ctx {
			case "":
				if _, set := c.global[key]; !set {
					c.global[key] = o
				}
			case "all":
				if _, set := c.matchAll[key]; !set {
					c.matchAll[key] = o
				}
			default:
				if _, set := c.matchYes[key]; !set && o.val == "yes" {
					c.matchYes[key] = where
				}
			}
		}
	}
	return nil
}

// sshSplit splits a config line into keyword and arguments like sshd:
// "Keyword value", "Keyword=value" or "Keyword = value"; double quotes group;
// a token starting with '#' ends the line.
func sshSplit(line string) ([]string, error) {
	line = strings.TrimRight(line, " \t\r\f")
	s := strings.TrimLeft(line, " \t")
	if s == "" || s[0] == '#' {
		return nil, nil
	}
	end := strings.IndexAny(s, " \t=")
	if end < 0 {
		return []string{s}, nil
	}
	args := []string{s[:end]}
	s = strings.TrimLeft(s[end:], " \t")
	if strings.HasPrefix(s, "=") {
		s = strings.TrimLeft(s[1:], " \t")
	}
	for s != "" {
		if s[0] == '#' {
			break
		}
		var tok string
		if s[0] == '"' {
			j := strings.IndexByte(s[1:], '"')
			if j < 0 {
				return nil, errors.New("unterminated quote")
			}
			tok, s = s[1:1+j], s[2+j:]
		} else {
			j := strings.IndexAny(s, " \t")
			if j < 0 {
				j = len(s)
			}
			tok, s = s[:j], s[j:]
		}
		args = append(args, tok)
		s = strings.TrimLeft(s, " \t")
	}
	return args, nil
}
