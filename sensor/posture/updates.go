package posture

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// AutoUpdates requires automatic security updates. On apt systems that is
// APT::Periodic::Unattended-Upgrade set to a non-zero interval (apt reads
// /etc/apt/apt.conf.d/* in lexical order, then /etc/apt/apt.conf; the last
// assignment wins) with unattended-upgrades installed. Otherwise an enabled
// dnf-automatic timer (a symlink in timers.target.wants) counts.
type AutoUpdates struct{}

// Name implements Check.
func (AutoUpdates) Name() string { return CheckAutoUpdates }

const (
	aptParts = "/etc/apt/apt.conf.d"
	aptMain  = "/etc/apt/apt.conf"
)

// Run implements Check.
func (AutoUpdates) Run(_ context.Context, root Root) Result {
	isApt, err := root.Exists(aptParts)
	if err != nil {
		return failErr(err)
	}
	if isApt {
		return aptUpdates(root)
	}
	return dnfUpdates(root)
}

func aptUpdates(root Root) Result {
	ents, err := root.ReadDir(aptParts)
	if err != nil {
		return failErr(err)
	}
	var files []string
	for _, e := range ents {
		if e.IsDir() || !aptPartName(e.Name()) {
			continue
		}
		files = append(files, aptParts+"/"+e.Name())
	}
	if found, err := root.Exists(aptMain); err != nil {
		return failErr(err)
	} else if found {
		files = append(files, aptMain)
	}
	conf := map[string]aptValue{}
	for _, f := range files {
		b, err := root.ReadFile(f)
		if err != nil {
			return failErr(err)
		}
		if err := parseAptConf(f, string(b), conf); err != nil {
			return failErr(err)
		}
	}
	if v, found := conf["apt::periodic::enable"]; found && v.val == "0" {
		return fail("APT::Periodic::Enable \"0\" (%s) disables periodic apt jobs", v.where)
	}
	v, found := conf["apt::periodic::unattended-upgrade"]
	if !found {
		return fail("APT::Periodic::Unattended-Upgrade not set in %s", aptParts)
	}
	if n, err := strconv.Atoi(v.val); (err != nil || n <= 0) && v.val != "always" {
		return fail("APT::Periodic::Unattended-Upgrade %q (%s)", v.val, v.where)
	}
	bin, err := root.Exists("/usr/bin/unattended-upgrade")
	if err != nil {
		return failErr(err)
	}
	if !bin {
		return fail("APT::Periodic::Unattended-Upgrade %q (%s) but unattended-upgrades is not installed", v.val, v.where)
	}
	return ok("APT::Periodic::Unattended-Upgrade %q (%s)", v.val, v.where)
}

// aptPartName is apt's filter for apt.conf.d: only [A-Za-z0-9_.-] and either
// no extension or ".conf" (so foo.dpkg-old, foo.bak, foo.disabled are skipped).
func aptPartName(n string) bool {
	for _, r := range n {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-' || r == '.') {
			return false
		}
	}
	return !strings.Contains(n, ".") || strings.HasSuffix(n, ".conf")
}

type aptValue struct {
	val   string
	where string
}

// parseAptConf reads apt.conf(5) syntax into conf (keys lower-cased, full
// "A::B::C" paths): `A::B "v";`, nested `A { B "v"; };`, list items
// `"v";` inside a scope (ignored), comments (// # /* */) and `#clear A::B`.
func parseAptConf(file, text string, conf map[string]aptValue) error {
	toks, err := aptTokens(file, text)
	if err != nil {
		return err
	}
	var scope []string
	var stmt []aptToken
	for _, t := range toks {
		switch t.s {
		case "{":
			if t.quoted {
				break
			}
			if len(stmt) != 1 || stmt[0].quoted {
				return fmt.Errorf("%s:%d: unexpected '{'", file, t.line)
			}
			scope = append(scope, stmt[0].s)
			stmt = nil
			continue
		case "}":
			if t.quoted {
				break
			}
			if len(stmt) != 0 || len(scope) == 0 {
				return fmt.Errorf("%s:%d: unexpected '}'", file, t.line)
			}
			scope = scope[:len(scope)-1]
			continue
		case ";":
			if t.quoted {
				break
			}
			if len(stmt) > 0 && stmt[0].directive {
				if err := aptDirective(file, stmt, scope, conf); err != nil {
					return err
				}
				stmt = nil
				continue
			}
			switch len(stmt) {
			case 0, 1: // empty statement after '}', or a list item
			case 2:
				if stmt[0].quoted {
					return fmt.Errorf("%s:%d: quoted option name", file, t.line)
				}
				key := strings.ToLower(strings.Join(append(append([]string{}, scope...), stmt[0].s), "::"))
				conf[key] = aptValue{val: stmt[1].s, where: fmt.Sprintf("%s:%d", file, stmt[0].line)}
			default:
				return fmt.Errorf("%s:%d: too many words in statement", file, t.line)
			}
			stmt = nil
			continue
		}
		stmt = append(stmt, t)
	}
	if len(stmt) != 0 || len(scope) != 0 {
		return fmt.Errorf("%s: unterminated statement or scope at end of file", file)
	}
	return nil
}

type aptToken struct {
	s         string
	quoted    bool
	directive bool // #clear or #include
	line      int
}

// aptDirective applies "#clear NAME;" (removes NAME and everything under it)
// and refuses "#include", which this reader does not follow, so the check
// says it cannot tell instead of guessing.
func aptDirective(file string, stmt []aptToken, scope []string, conf map[string]aptValue) error {
	if stmt[0].s != "#clear" {
		return fmt.Errorf("%s:%d: %s is not supported", file, stmt[0].line, stmt[0].s)
	}
	for _, t := range stmt[1:] {
		name := strings.ToLower(strings.Join(append(append([]string{}, scope...), t.s), "::"))
		for k := range conf {
			if k == name || strings.HasPrefix(k, name+"::") {
				delete(conf, k)
			}
		}
	}
	return nil
}

// aptTokens splits apt.conf text into words, quoted strings, the
// punctuation { } ; and the directives #clear and #include; any other '#'
// starts a comment.
func aptTokens(file, text string) ([]aptToken, error) {
	var toks []aptToken
	line := 1
	for i := 0; i < len(text); {
		c := text[i]
		switch {
		case c == '\n':
			line++
			i++
		case c == ' ' || c == '\t' || c == '\r':
			i++
		case strings.HasPrefix(text[i:], "#clear") || strings.HasPrefix(text[i:], "#include"):
			d := "#clear"
			if text[i+1] == 'i' {
				d = "#include"
			}
			toks = append(toks, aptToken{s: d, directive: true, line: line})
			i += len(d)
		case c == '#' || strings.HasPrefix(text[i:], "//"):
			for i < len(text) && text[i] != '\n' {
				i++
			}
		case strings.HasPrefix(text[i:], "/*"):
			end := strings.Index(text[i+2:], "*/")
			if end < 0 {
				return nil, fmt.Errorf("%s:%d: unterminated comment", file, line)
			}
			line += strings.Count(text[i:i+2+end], "\n")
			i += 2 + end + 2
		case c == '{' || c == '}' || c == ';':
			toks = append(toks, aptToken{s: string(c), line: line})
			i++
		case c == '"':
			end := strings.IndexAny(text[i+1:], "\"\n")
			if end < 0 || text[i+1+end] != '"' {
				return nil, fmt.Errorf("%s:%d: unterminated string", file, line)
			}
			toks = append(toks, aptToken{s: text[i+1 : i+1+end], quoted: true, line: line})
			i += end + 2
		default:
			j := i
			for j < len(text) && !strings.ContainsRune(" \t\r\n{};\"", rune(text[j])) {
				j++
			}
			toks = append(toks, aptToken{s: text[i:j], line: line})
			i = j
		}
	}
	return toks, nil
}

// dnfTimers are the systemd timers of dnf-automatic (dnf 4) and dnf5.
func dnfTimers() []string {
	return []string{"dnf-automatic-install.timer", "dnf-automatic.timer", "dnf5-automatic.timer"}
}

func dnfUpdates(root Root) Result {
	var installed []string
	for _, t := range dnfTimers() {
		for _, dir := range []string{"/usr/lib/systemd/system", "/lib/systemd/system", "/etc/systemd/system"} {
			found, err := root.Exists(dir + "/" + t)
			if err != nil {
				return failErr(err)
			}
			if found {
				installed = append(installed, t)
				break
			}
		}
	}
	if len(installed) == 0 {
		return fail("no apt configuration and no dnf-automatic timer: no automatic updates found")
	}
	for _, t := range installed {
		wants := "/etc/systemd/system/timers.target.wants/" + t
		found, err := root.Lexists(wants)
		if err != nil {
			return failErr(err)
		}
		if !found {
			continue
		}
		if t == "dnf-automatic-install.timer" {
			return ok("%s enabled", t)
		}
		// The plain timer only downloads unless automatic.conf says apply.
		apply, where, err := dnfApplyUpdates(root)
		if err != nil {
			return failErr(err)
		}
		if apply {
			return ok("%s enabled, apply_updates = yes (%s)", t, where)
		}
		return fail("%s enabled but apply_updates is not yes (%s): updates are only downloaded", t, where)
	}
	return fail("%s installed but not enabled", strings.Join(installed, ", "))
}

// dnfApplyUpdates reads apply_updates from the [commands] section of
// dnf-automatic's config (dnf5 first, as it takes precedence when present).
func dnfApplyUpdates(root Root) (bool, string, error) {
	for _, f := range []string{"/etc/dnf/dnf5-plugins/automatic.conf", "/etc/dnf/automatic.conf"} {
		b, err := root.ReadFile(f)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return false, "", err
		}
		section := ""
		for i, l := range strings.Split(string(b), "\n") {
			l = strings.TrimSpace(l)
			if strings.HasPrefix(l, "[") && strings.HasSuffix(l, "]") {
				section = strings.TrimSpace(l[1 : len(l)-1])
				continue
			}
			k, v, found := strings.Cut(l, "=")
			if !found || section != "commands" || strings.TrimSpace(k) != "apply_updates" {
				continue
			}
			v = strings.ToLower(strings.TrimSpace(v))
			return v == "yes" || v == "true" || v == "1", fmt.Sprintf("%s:%d", f, i+1), nil
		}
		return false, f + ": default", nil
	}
	return false, "no automatic.conf: default", nil
}
