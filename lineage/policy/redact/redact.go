// Package redact removes secrets and prompt text from argv before events
// leave the sensor. Redaction is on by default: API-key shapes, the values
// of --password/--token/--api-key style options (--x=v and --x v), and
// Authorization/Bearer header values, with extra patterns from config. An
// agent root's prompt is replaced by a placeholder unless configured.
// Environments are never exported at all, so they need no redaction.
package redact

import (
	"fmt"
	"sync"

	"github.com/lineaged/lineaged/lineage/event"
	"regexp"
	"strings"
)

// Mask replaces a secret.
const Mask = "[REDACTED]"

// PromptPlaceholder replaces an agent's prompt text.
const PromptPlaceholder = "[PROMPT]"

// Config selects what is redacted. It is also the redact section of
// lineaged's configuration: the mapstructure tags are the keys, and fields
// tagged "-" are set by the program, not configured.
type Config struct {
	// Patterns are extra regular expressions (RE2). A match is replaced by
	// Mask; when the pattern has a group named "secret", only that group is.
	Patterns []string `mapstructure:"patterns"`
	// KeepPrompt exports agent prompts as given instead of the placeholder.
	KeepPrompt bool `mapstructure:"export_prompt"`
	// IsAgent recognises an agent executable (agent.IsAgentExec), so the
	// prompt of an agent found in an ancestry is hidden too; optional.
	IsAgent func(exe string, argv []string) bool `mapstructure:"-"`
}

// Redactor applies a Config. It is safe for concurrent use.
type Redactor struct {
	rules      []rule
	keepPrompt bool
	isAgent    func(exe string, argv []string) bool

	// cache holds the redacted argv of each image by exec_id: an image's
	// argv never changes, and the same ancestors recur in every event.
	mu    sync.Mutex
	cache map[string][]string
}

// maxCache bounds the per-image cache; it is cleared when full.
const maxCache = 16384

type rule struct {
	re     *regexp.Regexp
	secret int      // index of the group to mask, 0 for the whole match
	hints  []string // lower-case; nil: always run
}

// builtin patterns: each either masks the whole match (key shapes) or only
// the "secret" group (the value after an option name or header). hints are
// lower-case substrings one of which every match contains: a string holding
// none skips the expression (most argv hold no secret, and this runs for
// every process and ancestor of every event).
var builtin = []struct {
	re    string
	hints []string
}{
	// Anthropic, OpenAI (sk-, sk-proj-), and other sk- keys.
	{`sk-ant-[A-Za-z0-9_-]{8,}`, []string{"sk-ant-"}},
	{`\bsk-[A-Za-z0-9_-]{16,}`, []string{"sk-"}},
	// GitHub tokens.
	{`\bgh[pousr]_[A-Za-z0-9]{20,}`, []string{"ghp_", "gho_", "ghu_", "ghs_", "ghr_"}},
	{`\bgithub_pat_[A-Za-z0-9_]{20,}`, []string{"github_pat_"}},
	// GitLab, Google, AWS access key ids, Slack.
	{`\bglpat-[A-Za-z0-9_-]{16,}`, []string{"glpat-"}},
	{`\bAIza[0-9A-Za-z_-]{30,}`, []string{"aiza"}},
	{`\b(?:AKIA|ASIA)[0-9A-Z]{16}\b`, []string{"akia", "asia"}},
	{`\bxox[abposr]-[A-Za-z0-9-]{8,}`, []string{"xox"}},
	// JWT-like: three base64url parts, the first two JSON objects.
	{`\beyJ[A-Za-z0-9_-]{4,}\.eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}`, []string{"eyj"}},
	// --password=v, --token v, --api-key 'v' (also inside a shell string).
	{`(?i)--?(?:password|passwd|pass|token|api[-_]?key|apikey|secret|client[-_]secret|access[-_]token|auth[-_]token|refresh[-_]token|private[-_]key)(?:=|\s+)(?P<secret>'[^']*'|"[^"]*"|[^\s'"]+)`,
		[]string{"pass", "token", "key", "secret"}},
	// Authorization: Bearer v / Basic v / v ; X-Api-Key: v.
	{`(?i)\b(?:proxy-)?authorization\s*:\s*(?:(?:bearer|basic|token|digest)\s+)?(?P<secret>[^\s'"]+)`, []string{"authorization"}},
	{`(?i)\bx-api-key\s*:\s*(?P<secret>[^\s'"]+)`, []string{"x-api-key"}},
	{`(?i)\bbearer\s+(?P<secret>[A-Za-z0-9._~+/=-]{8,})`, []string{"bearer"}},
	// Credentials in URLs: scheme://user:password@host.
	{`(?i)\b[a-z][a-z0-9+.-]*://[^/\s:@'"]+:(?P<secret>[^@\s/'"]+)@`, []string{"://"}},
}

// valueOptions take the secret as the next argv element (--token v); keys
// are option names lower-cased, without dashes, '_' as '-'.
var valueOptions = map[string]bool{
	"password": true, "passwd": true, "pass": true, "token": true, "api-key": true, "apikey": true,
	"secret": true, "client-secret": true, "access-token": true, "auth-token": true,
	"refresh-token": true, "private-key": true,
}

func isValueOption(a string) bool {
	if !strings.HasPrefix(a, "-") || len(a) > 32 {
		return false
	}
	return valueOptions[strings.ReplaceAll(strings.ToLower(strings.TrimLeft(a, "-")), "_", "-")]
}

// headerOptions take a header as the next element (curl -H, wget --header).
var headerOptions = map[string]bool{"-H": true, "--header": true}

// New compiles the built-in and configured patterns. A bad pattern is an
// error naming it.
func New(cfg Config) (*Redactor, error) {
	r := &Redactor{keepPrompt: cfg.KeepPrompt, isAgent: cfg.IsAgent}
	for _, b := range builtin {
		ru := compile(regexp.MustCompile(b.re))
		ru.hints = b.hints
		r.rules = append(r.rules, ru)
	}
	for i, p := range cfg.Patterns {
		if p == "" {
			return nil, fmt.Errorf("redact: pattern %d is empty", i)
		}
		re, err := regexp.Compile(p)
		if err != nil {
			return nil, fmt.Errorf("redact: pattern %d %q: %w", i, p, err)
		}
		if re.MatchString("") {
			return nil, fmt.Errorf("redact: pattern %d %q matches the empty string", i, p)
		}
		r.rules = append(r.rules, compile(re))
	}
	return r, nil
}

func compile(re *regexp.Regexp) rule {
	return rule{re: re, secret: re.SubexpIndex("secret")}
}

// String redacts one string.
func (r *Redactor) String(s string) string {
	lower := ""
	for _, ru := range r.rules {
		if ru.hints != nil {
			if lower == "" {
				lower = strings.ToLower(s)
			}
			hit := false
			for _, h := range ru.hints {
				if strings.Contains(lower, h) {
					hit = true
					break
				}
			}
			if !hit {
				continue
			}
		}
		s = ru.apply(s)
		lower = ""
	}
	return s
}

func (ru rule) apply(s string) string {
	if ru.secret <= 0 {
		return ru.re.ReplaceAllLiteralString(s, Mask)
	}
	idx := ru.re.FindAllStringSubmatchIndex(s, -1)
	if idx == nil {
		return s
	}
	var b strings.Builder
	last := 0
	for _, m := range idx {
		st, en := m[2*ru.secret], m[2*ru.secret+1]
		if st < 0 || st < last {
			continue
		}
		b.WriteString(s[last:st])
		b.WriteString(Mask)
		last = en
	}
	b.WriteString(s[last:])
	return b.String()
}

// Argv returns a redacted copy of argv (nil stays nil).
func (r *Redactor) Argv(argv []string) []string {
	if argv == nil {
		return nil
	}
	out := make([]string, len(argv))
	for i, a := range argv {
		if i > 0 {
			prev := argv[i-1]
			if isValueOption(prev) {
				out[i] = Mask
				continue
			}
			if headerOptions[prev] {
				out[i] = r.String(a)
				continue
			}
		}
		out[i] = r.String(a)
	}
	return out
}

// promptFlags take the prompt as their value, for the agents recognised.
var promptFlags = map[string]bool{
	"-p": true, "--print": true, "--prompt": true, "-i": true, "--prompt-interactive": true,
	"--append-system-prompt": true, "--system-prompt": true,
}

// agentValueFlags are options of agent CLIs whose value is not a prompt.
var agentValueFlags = map[string]bool{
	"--model": true, "-m": true, "--output-format": true, "--input-format": true, "--settings": true,
	"--session-id": true, "--resume": true, "-r": true, "--permission-mode": true, "--add-dir": true,
	"--allowedTools": true, "--allowed-tools": true, "--disallowedTools": true, "--disallowed-tools": true,
	"--fallback-model": true, "--max-turns": true, "--setting-sources": true, "--plugin-dir": true,
	"--tools": true, "--agent": true, "--mcp-config": true, "--permission-prompt-tool": true,
	"--max-budget-usd": true, "--betas": true, "-c": true, "--config": true, "--sandbox": true,
	"-s": true, "--approval-mode": true, "--cd": true, "-C": true, "--profile": true,
}

// AgentArgv redacts an agent root's argv: secrets as in Argv, and, unless
// KeepPrompt, every prompt (the value of -p/--print/--prompt and of the
// system-prompt options, and positional arguments, which agent CLIs read as
// the prompt) becomes PromptPlaceholder. argv[0] and option names stay.
func (r *Redactor) AgentArgv(argv []string) []string {
	out := r.Argv(argv)
	if r.keepPrompt || len(out) == 0 {
		return out
	}
	for i := 1; i < len(argv); i++ {
		a := argv[i]
		name, _, hasVal := strings.Cut(a, "=")
		switch {
		case a == "--":
			for j := i + 1; j < len(argv); j++ {
				out[j] = PromptPlaceholder
			}
			return out
		case strings.HasPrefix(a, "-") && hasVal && strings.HasPrefix(a, "--"):
			if promptFlags[name] {
				out[i] = name + "=" + PromptPlaceholder
			}
		case promptFlags[a]:
			// -p is also a bare flag ("print mode") in Claude Code, with
			// the prompt as a positional argument: masking the next
			// non-option either way.
			if i+1 < len(argv) && !strings.HasPrefix(argv[i+1], "-") {
				i++
				out[i] = PromptPlaceholder
			}
		case agentValueFlags[a]:
			i++
		case strings.HasPrefix(a, "-"):
		default:
			// Subcommands of agent CLIs (codex exec, claude mcp) are
			// kept; everything else positional is prompt text.
			if i == 1 && isSubcommand(a) {
				continue
			}
			out[i] = PromptPlaceholder
		}
	}
	return out
}

func isSubcommand(s string) bool {
	switch s {
	case "exec", "e", "mcp", "config", "doctor", "update", "install", "login", "logout", "resume", "apply", "proto", "completion", "setup-token", "migrate-installer", "plugin":
		return true
	}
	return false
}

// Event redacts the argv of an event's process and of every ancestor in
// place (the redacted slices may be shared between events: treat them as
// read-only). Agent roots (the event's session root, the session that started
// it, or any process IsAgent recognises) get AgentArgv, everything else Argv.
func (r *Redactor) Event(e *event.Event) {
	if e == nil {
		return
	}
	var root, parentRoot string
	if e.Agent != nil {
		root, parentRoot = e.Agent.RootExecID, e.Agent.ParentRootExecID
	}
	do := func(p *event.Process) {
		if p == nil || p.Argv == nil {
			return
		}
		// An image's argv is redacted once: ancestors come back in
		// every event of their descendants. Whether it is an agent's
		// (its own options are kept) does not change for an exec_id, so
		// it is decided on a miss only.
		if p.ExecID != "" {
			r.mu.Lock()
			out, ok := r.cache[p.ExecID]
			r.mu.Unlock()
			if ok {
				p.Argv = out
				return
			}
		}
		isAgent := p.ExecID != "" && (p.ExecID == root || p.ExecID == parentRoot)
		if isAgent || (r.isAgent != nil && r.isAgent(p.Exe, p.Argv)) {
			p.Argv = r.AgentArgv(p.Argv)
		} else {
			p.Argv = r.Argv(p.Argv)
		}
		if p.ExecID != "" {
			r.mu.Lock()
			if r.cache == nil || len(r.cache) >= maxCache {
				r.cache = make(map[string][]string)
			}
			r.cache[p.ExecID] = p.Argv
			r.mu.Unlock()
		}
	}
	do(e.Process)
	for i := range e.Ancestry {
		do(&e.Ancestry[i])
	}
}
