package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/pflag"

	"github.com/lineaged/lineaged/lineage/event"
	"github.com/lineaged/lineaged/lineage/policy"
)

// DefaultHookSocket is where the sensor answers the agent hooks: the
// service's RuntimeDirectory (deploy/lineaged.service).
const DefaultHookSocket = "/run/lineaged/hook.sock"

// DefaultHookTimeout bounds a hook's whole question to the sensor; past
// it the hook applies hook.fail_closed.
const DefaultHookTimeout = 200 * time.Millisecond

// maxHookInput bounds what the sensor reads from a hook; maxHookStdin what
// a hook reads from the agent (a PostToolUse input carries the tool's
// whole output, which the hook does not send on).
const (
	maxHookInput = 1 << 20
	maxHookStdin = 64 << 20
)

// HookConfig is the hook socket and what a hook does without an answer
// (docs/hooks.md).
type HookConfig struct {
	// Socket is the unix socket the sensor listens on for hooks; "" turns
	// the hook server off.
	Socket string `mapstructure:"socket"`
	// Group owns the socket (mode 0660): the users whose agents' hooks may
	// ask. "": root's group only.
	Group string `mapstructure:"group"`
	// FailClosed denies a tool call when the sensor does not answer; the
	// default lets it run and logs a line to stderr.
	FailClosed bool `mapstructure:"fail_closed"`
	// Timeout bounds the hook's round trip to the sensor.
	Timeout time.Duration `mapstructure:"timeout"`
}

func (h *HookConfig) validate(p *problems) {
	if h.Socket != "" && !filepath.IsAbs(h.Socket) {
		p.bad("hook.socket", "%q is not an absolute path", h.Socket)
	}
	if h.Timeout <= 0 || h.Timeout > 10*time.Second {
		p.bad("hook.timeout", "%s must be above 0 and at most 10s", h.Timeout)
	}
}

// hookInput is what Claude Code writes on a command hook's stdin.
type hookInput struct {
	SessionID      string         `json:"session_id"`
	TranscriptPath string         `json:"transcript_path"`
	Cwd            string         `json:"cwd"`
	HookEventName  string         `json:"hook_event_name"`
	ToolName       string         `json:"tool_name"`
	ToolInput      map[string]any `json:"tool_input"`
	ToolUseID      string         `json:"tool_use_id"`
	// PostToolUseFailure: whether the user interrupted the call. Both
	// post-call events: its duration as Claude Code measured it. The
	// call's output (tool_response) and error text are not sent on.
	IsInterrupt bool    `json:"is_interrupt,omitempty"`
	DurationMS  *uint64 `json:"duration_ms,omitempty"`
}

// hookAnswer is the sensor's answer on the socket: one JSON line.
type hookAnswer struct {
	Decision string `json:"decision,omitempty"` // allow or deny
	Reason   string `json:"reason,omitempty"`
	// Error says why the sensor did not decide (the caller is not a hook
	// of an agent session, a malformed question): the hook then applies
	// hook.fail_closed as if the sensor were down.
	Error string `json:"error,omitempty"`
}

// preToolUseOutput is Claude Code's documented PreToolUse decision output.
type preToolUseOutput struct {
	HookSpecificOutput struct {
		HookEventName            string `json:"hookEventName"`
		PermissionDecision       string `json:"permissionDecision"`
		PermissionDecisionReason string `json:"permissionDecisionReason"`
	} `json:"hookSpecificOutput"`
}

const hookUsage = `Usage:
  lineaged hook [--config FILE] [--socket PATH]
      Claude Code's PreToolUse hook: reads the hook's JSON on stdin, asks the
      running sensor whether the tool call is allowed and prints Claude
      Code's decision (docs/hooks.md).
  lineaged hook install [--settings FILE] [--config FILE]
      adds the hook to Claude Code's managed settings (default
      /etc/claude-code/managed-settings.json), keeping what is there.
`

func cmdHook(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "install" {
		return cmdHookInstall(args[1:], stdout, stderr)
	}
	fs := pflag.NewFlagSet("hook", pflag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.String("config", "", "configuration file (YAML); default "+DefaultConfigPath+" when it exists")
	socket := fs.String("socket", "", "the sensor's hook socket (default hook.socket)")
	fs.Usage = func() { fmt.Fprintf(stderr, "%s\nFlags:\n%s", hookUsage, fs.FlagUsages()) }
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return err
		}
		return &exitError{exitUsage, err}
	}
	cfg, err := loadConfig(fs, os.Getenv)
	if err != nil {
		// A hook that cannot read its configuration still answers:
		// fail-open with the defaults, saying why.
		fmt.Fprintf(stderr, "lineaged hook: %v (using the defaults)\n", err)
		cfg = &Config{Hook: HookConfig{Socket: DefaultHookSocket, Timeout: DefaultHookTimeout}}
	}
	hc := cfg.Hook
	if *socket != "" {
		hc.Socket = *socket
	}
	return runHook(hc, stdin, stdout, stderr)
}

// runHook answers one hook call: it never fails the agent for a reason of
// its own; without the sensor's answer it applies hc.FailClosed.
func runHook(hc HookConfig, stdin io.Reader, stdout, stderr io.Writer) error {
	raw, err := io.ReadAll(io.LimitReader(stdin, maxHookStdin+1))
	var in hookInput
	if err == nil && len(raw) > maxHookStdin {
		err = fmt.Errorf("hook input above %d bytes", maxHookStdin)
	}
	if err == nil {
		err = json.Unmarshal(raw, &in)
	}
	if err != nil {
		return hookFallback(hc, fmt.Errorf("reading the hook input: %w", err), stdout, stderr)
	}
	// Only the fields the sensor reads are sent on.
	q, err := json.Marshal(&in)
	if err != nil {
		return hookFallback(hc, err, stdout, stderr)
	}
	switch in.HookEventName {
	case "", policy.HookPreToolUse:
		ans, err := askSensor(hc, q)
		if err != nil {
			return hookFallback(hc, err, stdout, stderr)
		}
		return writeDecision(ans, stdout)
	case policy.HookPostToolUse, policy.HookPostToolUseFailure:
		// The call has run: the sensor records how it ended, and the
		// hook has nothing to decide.
		if _, err := askSensor(hc, q); err != nil {
			fmt.Fprintf(stderr, "lineaged hook: %s of %s not recorded: %v\n", in.HookEventName, in.ToolUseID, err)
		}
	}
	return nil
}

// askSensor sends the hook input to the sensor and reads its answer,
// within hc.Timeout.
func askSensor(hc HookConfig, raw []byte) (hookAnswer, error) {
	var ans hookAnswer
	deadline := time.Now().Add(hc.Timeout)
	c, err := net.DialTimeout("unix", hc.Socket, hc.Timeout)
	if err != nil {
		return ans, fmt.Errorf("sensor not reachable: %w", err)
	}
	defer c.Close()
	_ = c.SetDeadline(deadline)
	if _, err := c.Write(append(raw, '\n')); err != nil {
		return ans, fmt.Errorf("asking the sensor: %w", err)
	}
	line, err := bufio.NewReader(c).ReadBytes('\n')
	if err != nil {
		return ans, fmt.Errorf("reading the sensor's answer: %w", err)
	}
	if err := json.Unmarshal(line, &ans); err != nil {
		return ans, fmt.Errorf("the sensor's answer: %w", err)
	}
	if ans.Error != "" {
		return ans, fmt.Errorf("the sensor did not decide: %s", ans.Error)
	}
	switch ans.Decision {
	case event.DecisionAllow, event.DecisionDeny:
	default:
		return ans, fmt.Errorf("the sensor's answer: unknown decision %q", ans.Decision)
	}
	return ans, nil
}

// writeDecision prints Claude Code's decision. An allow prints nothing: the
// call goes on to Claude Code's own permission checks, which an explicit
// "allow" would skip.
func writeDecision(ans hookAnswer, stdout io.Writer) error {
	if ans.Decision != event.DecisionDeny {
		return nil
	}
	var out preToolUseOutput
	out.HookSpecificOutput.HookEventName = "PreToolUse"
	out.HookSpecificOutput.PermissionDecision = event.DecisionDeny
	out.HookSpecificOutput.PermissionDecisionReason = ans.Reason
	b, err := json.Marshal(out)
	if err != nil {
		return err
	}
	_, err = stdout.Write(append(b, '\n'))
	return err
}

// hookFallback applies the admin's choice when the sensor gave no answer:
// fail-open (the default) logs a line and allows, fail-closed denies.
func hookFallback(hc HookConfig, why error, stdout, stderr io.Writer) error {
	if !hc.FailClosed {
		fmt.Fprintf(stderr, "lineaged hook: %v; allowing (hook.fail_closed is off)\n", why)
		return nil
	}
	fmt.Fprintf(stderr, "lineaged hook: %v; denying (hook.fail_closed)\n", why)
	return writeDecision(hookAnswer{Decision: event.DecisionDeny,
		Reason: fmt.Sprintf("lineaged: the security sensor did not answer (%v) and policy denies tool calls without it", why)}, stdout)
}
