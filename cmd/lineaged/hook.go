package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/pflag"

	"github.com/lineaged/lineaged/lineage/policy/hookclient"
)

// DefaultHookSocket is where the sensor answers the agent hooks: the
// service's RuntimeDirectory (deploy/lineaged.service).
const DefaultHookSocket = "/run/lineaged/hook.sock"

// DefaultHookTimeout bounds a hook's whole question to the sensor; past
// it the hook applies hook.fail_closed.
const DefaultHookTimeout = 200 * time.Millisecond

// maxHookInput bounds what the sensor reads from a hook.
const maxHookInput = hookclient.MaxInput

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

// The wire types are the hook client's (cmd/internal/hookclient), shared
// by `lineaged hook` and the lineaged-hook binary.
type (
	hookInput        = hookclient.Input
	hookAnswer       = hookclient.Answer
	preToolUseOutput = hookclient.PreToolUseOutput
)

const hookUsage = `Usage:
  lineaged hook [--config FILE] [--socket PATH]
      Claude Code's PreToolUse hook: reads the hook's JSON on stdin, asks the
      running sensor whether the tool call is allowed and prints Claude
      Code's decision (docs/hooks.md).
  lineaged hook install [--settings FILE] [--config FILE]
      adds the hook to Claude Code's managed settings (default
      /etc/claude-code/managed-settings.json), keeping what is there.
  lineaged hook uninstall [--settings FILE]
      removes every lineaged hook from Claude Code's managed settings, keeping
      everything else (the package does this when it is removed).
`

func cmdHook(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "install" {
		return cmdHookInstall(args[1:], stdout, stderr)
	}
	if len(args) > 0 && args[0] == "uninstall" {
		return cmdHookUninstall(args[1:], stdout, stderr)
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

// options are the hook client's settings from hc.
func (hc HookConfig) options() hookclient.Options {
	return hookclient.Options{Socket: hc.Socket, Timeout: hc.Timeout, FailClosed: hc.FailClosed}
}

// runHook answers one hook call: it never fails the agent for a reason of
// its own; without the sensor's answer it applies hc.FailClosed.
func runHook(hc HookConfig, stdin io.Reader, stdout, stderr io.Writer) error {
	return hookclient.Run(hc.options(), stdin, stdout, stderr)
}

// askSensor sends the hook input to the sensor and reads its answer,
// within hc.Timeout.
func askSensor(hc HookConfig, raw []byte) (hookAnswer, error) {
	return hookclient.Ask(hc.options(), raw)
}
