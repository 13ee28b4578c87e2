// Package redact removes secrets and prompt text from argv before events
// leave the sensor. Redaction is on by default: API-key shapes, the values
// of options named for a secret (--x=v and --x v), NAME=v assignments of
// secret names, URL credentials and query tokens, the password conventions
// of curl, mysql, sshpass and registry logins, and Authorization, Cookie
// and API-key header values, with extra patterns from config
// (docs/agents.md, "Privacy"). An agent's prompt is replaced by a
// placeholder unless configured: in the agent's own argv and in that of a
// wrapper or shell that starts it (embedded.go).
// Environments are never exported at all, so they need no redaction.
package redact

import (
	"fmt"
	"path"
	"regexp"
	"slices"
	"strings"
	"sync"

	"github.com/lineaged/lineaged/lineage/event"
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
	// shared holds the redacted copy of each ancestry seen, by its first
	// element (Event).
	shared map[*event.Process][]event.Process
}

// maxCache bounds the per-image cache; it is cleared when full.
const maxCache = 16384

// maxShared bounds the redacted ancestries kept; cleared when full.
const maxShared = 1024

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
	// --password=v, --token v, --api-key 'v', --db-password v (also
	// inside a shell string): any option name ending in a secret word.
	{`(?i)(?:^|[\s'"])--?[a-z0-9_-]*?(?:password|passwd|pass|token|api[-_]?key|apikey|secret|private[-_]key|credentials?)(?:=|\s+)(?P<secret>'[^']*'|"[^"]*"|[^\s'"]+)`,
		[]string{"pass", "token", "key", "secret", "credential"}},
	// Generic assignments: NAME=v where NAME holds PASS, TOKEN, SECRET or
	// KEY (AWS_SECRET_ACCESS_KEY=v, PGPASSWORD=v, GITHUB_TOKEN=v), and the
	// lower-case names of connection strings (password=v, api_key=v).
	{`(?:^|[\s'"(;&|])[A-Z_][A-Z0-9_]*(?:PASS|TOKEN|SECRET|KEY)[A-Z0-9_]*=(?P<secret>'[^']*'|"[^"]*"|[^\s'";&|]+)`,
		[]string{"pass", "token", "secret", "key"}},
	{`(?i)(?:^|[\s'"(;&|])(?:password|passwd|pwd|secret|token|api[-_]?key|apikey|access[-_]?token|auth[-_]?token|client[-_]?secret)=(?P<secret>'[^']*'|"[^"]*"|[^\s'";&|]+)`,
		[]string{"pass", "pwd=", "secret", "token", "key"}},
	// URL query parameters: ?access_token=v, &api_key=v, &sig=v.
	{`(?i)[?&;](?:[a-z0-9_.-]*(?:token|secret|key|password|passwd|pass|signature|sig|auth|credential)[a-z0-9_.-]*)=(?P<secret>[^&#\s'"]+)`,
		[]string{"token", "secret", "key", "pass", "sig", "auth", "credential"}},
	// curl -u user:pass, --user user:pass (the password after the colon).
	{`\bcurl\b[^;&|\n]*?\s(?:-[uU]\s*|--(?:proxy-)?user(?:=|\s+))['"]?[^\s:'"]*:(?P<secret>[^\s'"]+)`, []string{"curl"}},
	// mysql -pX (the password attached), sshpass -p X, docker login -p X.
	{`\b(?:mysql|mysqldump|mysqladmin|mysqlimport|mysqlshow|mysqlcheck|mysqlpump|mariadb|mariadb-dump)\b[^;&|\n]*?\s-p(?P<secret>[^\s'"]+)`, []string{"mysql", "mariadb"}},
	{`\bsshpass\b[^;&|\n]*?\s-p\s*(?P<secret>'[^']*'|"[^"]*"|[^\s'"]+)`, []string{"sshpass"}},
	{`\b(?:docker|podman|nerdctl|buildah|skopeo|helm|oras|crane)\b[^;&|\n]*?\blogin\b[^;&|\n]*?\s-p\s*(?P<secret>'[^']*'|"[^"]*"|[^\s'"]+)`, []string{"login"}},
	// Authorization: Bearer v / Basic v / v ; X-Api-Key: v; Cookie: v
	// (also as "Authorization": "v" in JSON or a dict).
	{`(?i)\b(?:proxy-)?authorization['"]?\s*[:=]\s*['"]?(?:(?:bearer|basic|token|digest|negotiate|ntlm|aws4-hmac-sha256)\s+)?(?P<secret>[^\s'"](?:[^'"\n]|"[^"\n]*")*)`, []string{"authorization"}},
	{`(?i)\bx-(?:api-key|auth-token|access-token)['"]?\s*:\s*['"]?(?P<secret>[^\s'"]+)`, []string{"x-api-key", "x-auth-token", "x-access-token"}},
	{`(?i)\b(?:set-)?cookie['"]?\s*:\s*['"]?(?P<secret>[^\s'"][^'"\n]*)`, []string{"cookie"}},
	{`(?i)\bbearer\s+(?P<secret>[A-Za-z0-9._~+/=-]{8,})`, []string{"bearer"}},
	// Credentials in URLs: scheme://user:password@host, and
	// scheme://token@host for every scheme but ssh's (git@host is a
	// user name).
	{`(?i)\b[a-z][a-z0-9+.-]*://[^/\s:@'"]+:(?P<secret>[^@\s/'"]+)@`, []string{"://"}},
	{`(?i)\b(?:https?|ftps?|wss?|redis|rediss|amqps?|mongodb(?:\+srv)?|postgres(?:ql)?|mysql|git\+https?)://(?P<secret>[^/\s:@'"]+)@`, []string{"://"}},
}

// valueOptions take the secret as the next argv element (--token v); keys
// are option names lower-cased, without dashes, '_' as '-'. Besides these,
// any option whose name ends in one of secretWords does (--db-password v,
// --api_token v), unless a suffix says the value only points at the secret
// (--password-file f) or the option takes none (--password-stdin).
var valueOptions = map[string]bool{
	"password": true, "passwd": true, "pass": true, "token": true, "api-key": true, "apikey": true,
	"secret": true, "client-secret": true, "access-token": true, "auth-token": true,
	"refresh-token": true, "private-key": true, "cookie": true,
}

var secretWords = []string{"password", "passwd", "pass", "token", "secret", "api-key", "apikey", "private-key", "credential", "credentials"}

func isValueOption(a string) bool {
	if !strings.HasPrefix(a, "-") || len(a) > 48 || strings.Contains(a, "=") {
		return false
	}
	name := strings.ReplaceAll(strings.ToLower(strings.TrimLeft(a, "-")), "_", "-")
	if valueOptions[name] {
		return true
	}
	if !strings.HasPrefix(a, "--") {
		return false
	}
	for _, w := range secretWords {
		if strings.HasSuffix(name, "-"+w) || (strings.HasSuffix(name, w) && len(name) > len(w) && !strings.Contains(name, "-")) {
			return true
		}
	}
	return false
}

// commandSecret reports whether argv[i] is a secret by the conventions of
// the command argv[0] names: curl's -u user:password, mysql's -pPASSWORD,
// sshpass -p PASSWORD, docker login -p PASSWORD. It returns the masked
// element, or "" when argv[i] is none of these.
func commandSecret(argv []string, i int) string {
	base := path.Base(argv[0])
	a, prev := argv[i], argv[i-1]
	switch {
	case base == "curl" && (prev == "-u" || prev == "--user" || prev == "-U" || prev == "--proxy-user"):
		if user, _, ok := strings.Cut(a, ":"); ok {
			return user + ":" + Mask
		}
	case base == "curl" && (strings.HasPrefix(a, "-u") || strings.HasPrefix(a, "-U")) && len(a) > 2 && strings.Contains(a, ":"):
		user, _, _ := strings.Cut(a[2:], ":")
		return a[:2] + user + ":" + Mask
	case mysqlish(base) && strings.HasPrefix(a, "-p") && len(a) > 2:
		return "-p" + Mask
	case base == "sshpass" && prev == "-p":
		return Mask
	case base == "sshpass" && strings.HasPrefix(a, "-p") && len(a) > 2:
		return "-p" + Mask
	case prev == "-p" && loginCommand(argv, i):
		return Mask
	}
	return ""
}

func mysqlish(base string) bool {
	return strings.HasPrefix(base, "mysql") || strings.HasPrefix(base, "mariadb")
}

// loginCommand: a container or registry tool's login subcommand before i.
func loginCommand(argv []string, i int) bool {
	switch path.Base(argv[0]) {
	case "docker", "podman", "nerdctl", "buildah", "skopeo", "helm", "oras", "crane":
	default:
		return false
	}
	for _, a := range argv[1:i] {
		if a == "login" {
			return true
		}
	}
	return false
}

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

// String redacts one string: its secrets.
//
// Unless KeepPrompt, s is also read as a shell command line, and the prompt
// of an agent it starts is hidden (timeout 60 claude -p <prompt>): an argv
// element may be one (bash -c), and so may a tool's input (a Bash tool's
// command, in agent.tool_call).
func (r *Redactor) String(s string) string {
	s = r.secretsOf(s)
	if !r.keepPrompt && hasAgentHint(s) {
		s = r.shellPrompts(s, 0)
	}
	return s
}

// secretsOf masks the secrets in one string.
func (r *Redactor) secretsOf(s string) string {
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

// Argv returns a redacted copy of argv (nil stays nil): secrets, and the
// prompt of an agent that argv starts through a wrapper or a shell
// (timeout 600 claude -p <prompt>, bash -c 'claude -p <prompt>'), unless
// KeepPrompt.
func (r *Redactor) Argv(argv []string) []string {
	out := r.secrets(argv)
	if out != nil && !r.keepPrompt {
		r.embeddedPrompts(argv, out)
	}
	return out
}

// secrets returns a copy of argv with its secrets masked.
func (r *Redactor) secrets(argv []string) []string {
	if argv == nil {
		return nil
	}
	out := make([]string, len(argv))
	for i, a := range argv {
		if i > 0 {
			if isValueOption(argv[i-1]) {
				out[i] = Mask
				continue
			}
			if m := commandSecret(argv, i); m != "" {
				out[i] = m
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
	"--max-budget-usd": true, "--betas": true, "--config": true, "--sandbox": true,
	"-s": true, "--approval-mode": true, "--cd": true, "-C": true, "--profile": true,
}

// codexValueFlags take a value in Codex only: Claude Code's -c is
// --continue, a boolean, so "claude -c <prompt>" has the prompt next.
var codexValueFlags = map[string]bool{"-c": true, "-a": true, "--ask-for-approval": true}

// isCodex: argv starts Codex (its binary, or node running its script).
func isCodex(argv []string) bool {
	for _, a := range argv[:min(2, len(argv))] {
		if strings.Contains(path.Base(a), "codex") {
			return true
		}
	}
	return false
}

// AgentArgv redacts an agent root's argv: secrets as in Argv, and, unless
// KeepPrompt, every prompt (the value of -p/--print/--prompt and of the
// system-prompt options, and positional arguments, which agent CLIs read as
// the prompt) becomes PromptPlaceholder. argv[0] and option names stay.
func (r *Redactor) AgentArgv(argv []string) []string {
	out := r.secrets(argv)
	if r.keepPrompt || len(out) == 0 {
		return out
	}
	maskPrompts(argv, out)
	return out
}

// maskPrompts sets out[i] to PromptPlaceholder (or --flag=PromptPlaceholder)
// for every element of an agent's argv that is prompt text.
func maskPrompts(argv, out []string) {
	codex := isCodex(argv)
	for i := 1; i < len(argv); i++ {
		a := argv[i]
		name, _, hasVal := strings.Cut(a, "=")
		switch {
		case a == "--":
			for j := i + 1; j < len(argv); j++ {
				out[j] = PromptPlaceholder
			}
			return
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
		case agentValueFlags[a] || codex && codexValueFlags[a]:
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
}

func isSubcommand(s string) bool {
	switch s {
	case "exec", "e", "mcp", "config", "doctor", "update", "install", "login", "logout", "resume", "apply", "proto", "completion", "setup-token", "migrate-installer", "plugin":
		return true
	}
	return false
}

// Event redacts the argv of an event's process in place and its ancestry
// into a copy (an ancestry may be shared between events: the copy is, too;
// treat both, and the redacted argv slices, as read-only). Agent roots (the event's session root, the session that started
// it, or any process IsAgent recognises) get AgentArgv, everything else Argv;
// an agent look-alike (Process.AgentLookalike) is no agent root.
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
		if p.AgentLookalike {
			// Recognised by its path inside a session, binary not
			// verified: a member like any other, no agent prompt.
			p.Argv = r.Argv(p.Argv)
		} else if isAgent || (r.isAgent != nil && r.isAgent(p.Exe, p.Argv)) {
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
	if len(e.Ancestry) == 0 {
		return
	}
	// The engine shares an ancestry between the events of siblings and
	// never writes it again: it is redacted into a copy, once, and the
	// events that share it share the copy.
	key := &e.Ancestry[0]
	r.mu.Lock()
	red, ok := r.shared[key]
	r.mu.Unlock()
	if ok && len(red) == len(e.Ancestry) {
		e.Ancestry = red
		return
	}
	red = slices.Clone(e.Ancestry)
	for i := range red {
		do(&red[i])
	}
	r.mu.Lock()
	if r.shared == nil || len(r.shared) >= maxShared {
		r.shared = make(map[*event.Process][]event.Process)
	}
	r.shared[key] = red
	r.mu.Unlock()
	e.Ancestry = red
}
