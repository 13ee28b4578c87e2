// Package hookclient is the agent side of lineaged's hook: it reads the
// JSON Claude Code writes on a command hook's stdin, asks the running
// sensor over its unix socket whether the tool call is allowed, and prints
// Claude Code's documented decision (docs/hooks.md). It imports only the
// standard library, so the lineaged-hook binary built on it starts in a
// few milliseconds: Claude Code runs a hook process for every tool call.
package hookclient

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"time"
)

// Bounds: what the sensor reads from a hook (MaxInput), and what a hook
// reads from the agent (MaxStdin: a PostToolUse input carries the tool's
// whole output, which the hook does not send on).
const (
	MaxInput = 1 << 20
	MaxStdin = 64 << 20
)

// Hook events and decisions, as Claude Code and the sensor spell them.
const (
	PreToolUse         = "PreToolUse"
	PostToolUse        = "PostToolUse"
	PostToolUseFailure = "PostToolUseFailure"
	Allow              = "allow"
	Deny               = "deny"
)

// Input is what Claude Code writes on a command hook's stdin, the fields
// the sensor reads; it is also the question sent on the socket.
type Input struct {
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

// Answer is the sensor's answer on the socket: one JSON line.
type Answer struct {
	Decision string `json:"decision,omitempty"` // allow or deny
	Reason   string `json:"reason,omitempty"`
	// Error says why the sensor did not decide (the caller is not a hook
	// of an agent session, a malformed question): the hook then applies
	// FailClosed as if the sensor were down.
	Error string `json:"error,omitempty"`
}

// PreToolUseOutput is Claude Code's documented PreToolUse decision output.
type PreToolUseOutput struct {
	HookSpecificOutput struct {
		HookEventName            string `json:"hookEventName"`
		PermissionDecision       string `json:"permissionDecision"`
		PermissionDecisionReason string `json:"permissionDecisionReason"`
	} `json:"hookSpecificOutput"`
}

// Options are the hook socket and what a hook does without an answer
// (hook.socket, hook.timeout, hook.fail_closed).
type Options struct {
	Socket     string
	Timeout    time.Duration
	FailClosed bool
	// Name prefixes the hook's log lines on stderr.
	Name string
}

// Run answers one hook call: it never fails the agent for a reason of its
// own; without the sensor's answer it applies o.FailClosed.
func Run(o Options, stdin io.Reader, stdout, stderr io.Writer) error {
	if o.Name == "" {
		o.Name = "lineaged hook"
	}
	raw, err := io.ReadAll(io.LimitReader(stdin, MaxStdin+1))
	var in Input
	if err == nil && len(raw) > MaxStdin {
		err = fmt.Errorf("hook input above %d bytes", MaxStdin)
	}
	if err == nil {
		err = json.Unmarshal(raw, &in)
	}
	if err != nil {
		return fallback(o, fmt.Errorf("reading the hook input: %w", err), stdout, stderr)
	}
	// Only the fields the sensor reads are sent on.
	q, err := json.Marshal(&in)
	if err != nil {
		return fallback(o, err, stdout, stderr)
	}
	switch in.HookEventName {
	case "", PreToolUse:
		ans, err := Ask(o, q)
		if err != nil {
			return fallback(o, err, stdout, stderr)
		}
		return writeDecision(ans, stdout)
	case PostToolUse, PostToolUseFailure:
		// The call has run: the sensor records how it ended, and the
		// hook has nothing to decide.
		if _, err := Ask(o, q); err != nil {
			fmt.Fprintf(stderr, "%s: %s of %s not recorded: %v\n", o.Name, in.HookEventName, in.ToolUseID, err)
		}
	}
	return nil
}

// Ask sends a question (an Input as JSON) to the sensor and reads its
// answer, within o.Timeout.
func Ask(o Options, raw []byte) (Answer, error) {
	var ans Answer
	deadline := time.Now().Add(o.Timeout)
	c, err := net.DialTimeout("unix", o.Socket, o.Timeout)
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
	case Allow, Deny:
	default:
		return ans, fmt.Errorf("the sensor's answer: unknown decision %q", ans.Decision)
	}
	return ans, nil
}

// writeDecision prints Claude Code's decision. An allow prints nothing: the
// call goes on to Claude Code's own permission checks, which an explicit
// "allow" would skip.
func writeDecision(ans Answer, stdout io.Writer) error {
	if ans.Decision != Deny {
		return nil
	}
	var out PreToolUseOutput
	out.HookSpecificOutput.HookEventName = PreToolUse
	out.HookSpecificOutput.PermissionDecision = Deny
	out.HookSpecificOutput.PermissionDecisionReason = ans.Reason
	b, err := json.Marshal(out)
	if err != nil {
		return err
	}
	_, err = stdout.Write(append(b, '\n'))
	return err
}

// fallback applies the admin's choice when the sensor gave no answer:
// fail-open (the default) logs a line and allows, fail-closed denies.
func fallback(o Options, why error, stdout, stderr io.Writer) error {
	if !o.FailClosed {
		fmt.Fprintf(stderr, "%s: %v; allowing (hook.fail_closed is off)\n", o.Name, why)
		return nil
	}
	fmt.Fprintf(stderr, "%s: %v; denying (hook.fail_closed)\n", o.Name, why)
	return writeDecision(Answer{Decision: Deny,
		Reason: fmt.Sprintf("lineaged: the security sensor did not answer (%v) and policy denies tool calls without it", why)}, stdout)
}
