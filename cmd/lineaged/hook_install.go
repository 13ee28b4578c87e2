package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/pflag"

	"github.com/lineaged/lineaged/sensor/posture"
)

// DefaultManagedSettings is Claude Code's managed settings file on Linux:
// settings an administrator sets and users cannot override.
const DefaultManagedSettings = posture.DefaultManagedSettings

func cmdHookInstall(args []string, stdout, stderr io.Writer) error {
	fs := pflag.NewFlagSet("hook install", pflag.ContinueOnError)
	fs.SetOutput(stderr)
	settings := fs.String("settings", DefaultManagedSettings, "Claude Code managed settings file to write or merge")
	config := fs.String("config", "", "configuration file the hook reads (passed as --config in the hook's command)")
	exe := fs.String("lineaged", "", "path of the lineaged binary the hook runs (default: this one)")
	small := fs.Bool("small", true, "run the lineaged-hook binary installed beside lineaged, when there is one, with hook.* from the configuration as flags")
	fs.Usage = func() { fmt.Fprintf(stderr, "%s\nFlags:\n%s", hookUsage, fs.FlagUsages()) }
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return err
		}
		return &exitError{exitUsage, err}
	}
	if fs.NArg() > 0 {
		return &exitError{exitUsage, fmt.Errorf("hook install takes no arguments, got %q", fs.Args())}
	}
	path := *exe
	if path == "" {
		self, err := os.Executable()
		if err != nil {
			return err
		}
		if path, err = filepath.EvalSymlinks(self); err != nil {
			return err
		}
	}
	command := shellQuote(path) + " hook"
	if *config != "" {
		command += " --config " + shellQuote(*config)
	}
	if hb := filepath.Join(filepath.Dir(path), HookBinary); *small && isRegular(hb) {
		// The small hook binary takes its settings as flags, from the
		// configuration as it is now.
		cfg, err := loadConfig(fs, os.Getenv)
		if err != nil {
			return err
		}
		command = hookBinaryCommand(hb, cfg.Hook)
	}
	changed, err := installHook(*settings, command)
	if err != nil {
		return err
	}
	if changed {
		fmt.Fprintf(stdout, "installed the hook %q (%s) in %s\n", command, strings.Join(hookEvents, ", "), *settings)
	} else {
		fmt.Fprintf(stdout, "%s already runs %q\n", *settings, command)
	}
	return nil
}

// HookBinary is the small hook program installed beside lineaged.
const HookBinary = "lineaged-hook"

// hookBinaryCommand is the hook command running the small hook binary at
// path with the settings of hc.
func hookBinaryCommand(path string, hc HookConfig) string {
	c := shellQuote(path) + " --socket " + shellQuote(hc.Socket) + " --timeout " + hc.Timeout.String()
	if hc.FailClosed {
		c += " --fail-closed"
	}
	return c
}

func isRegular(path string) bool {
	st, err := os.Stat(path)
	return err == nil && st.Mode().IsRegular()
}

// hookEvents are the Claude Code hook events lineaged hook answers: the
// decision before a tool call, and how the call ended.
var hookEvents = []string{"PreToolUse", "PostToolUse", "PostToolUseFailure"}

// installHook adds, for each of hookEvents, an entry running command for
// every tool to
// the Claude Code settings file at path, keeping everything else in it.
// It is idempotent: when every event already runs command, the file is
// left as it is and changed is false. The file is written 0644 (every user's
// Claude Code reads it) through a temporary file renamed into place.
func installHook(path, command string) (changed bool, err error) {
	settings := map[string]any{}
	b, err := os.ReadFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return false, err
	case len(bytes.TrimSpace(b)) > 0:
		if err := json.Unmarshal(b, &settings); err != nil {
			return false, fmt.Errorf("%s: not a JSON object, left as it is: %w", path, err)
		}
	}
	hooks, ok := settings["hooks"].(map[string]any)
	if !ok {
		if settings["hooks"] != nil {
			return false, fmt.Errorf("%s: \"hooks\" is not an object, left as it is", path)
		}
		hooks = map[string]any{}
	}
	for _, name := range hookEvents {
		list, ok := hooks[name].([]any)
		if !ok && hooks[name] != nil {
			return false, fmt.Errorf("%s: \"hooks.%s\" is not a list, left as it is", path, name)
		}
		list, dropped := dropOtherLineagedHooks(list, command)
		if dropped {
			hooks[name], changed = list, true
		}
		if hasHookCommand(list, command) {
			continue
		}
		hooks[name] = append(list, map[string]any{
			"matcher": "*",
			"hooks":   []any{map[string]any{"type": "command", "command": command}},
		})
		changed = true
	}
	if !changed {
		return false, nil
	}
	settings["hooks"] = hooks
	return true, writeSettings(path, settings)
}

// writeSettings writes Claude Code settings to path through a temporary
// file renamed into place.
func writeSettings(path string, settings map[string]any) error {
	out, err := json.MarshalIndent(settings, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".managed-settings-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(append(out, '\n')); err != nil {
		tmp.Close()
		return err
	}
	// The one file lineaged writes world-readable: every user's Claude
	// Code must read it (docs/hooks.md).
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// dropOtherLineagedHooks removes from a hook list the lineaged hooks that
// are not command (an earlier install's, with another binary or other
// settings), so a tool call is asked about once; entries left with no
// hook go too. Everything else stays.
func dropOtherLineagedHooks(entries []any, command string) ([]any, bool) {
	dropped := false
	out := entries[:0:0]
	for _, e := range entries {
		m, _ := e.(map[string]any)
		hs, ok := m["hooks"].([]any)
		if !ok {
			out = append(out, e)
			continue
		}
		keep := hs[:0:0]
		for _, h := range hs {
			hm, _ := h.(map[string]any)
			c, _ := hm["command"].(string)
			if c != command && posture.IsLineagedHook(c) {
				dropped = true
				continue
			}
			keep = append(keep, h)
		}
		if len(keep) == 0 {
			continue
		}
		if len(keep) != len(hs) {
			cp := maps.Clone(m)
			cp["hooks"] = keep
			e = cp
		}
		out = append(out, e)
	}
	return out, dropped
}

// hasHookCommand reports whether a PreToolUse list already runs command.
func hasHookCommand(entries []any, command string) bool {
	for _, e := range entries {
		m, _ := e.(map[string]any)
		hs, _ := m["hooks"].([]any)
		for _, h := range hs {
			if hm, _ := h.(map[string]any); hm != nil && hm["command"] == command {
				return true
			}
		}
	}
	return false
}

// shellQuote quotes s for the shell Claude Code runs hook commands with,
// when it needs it.
func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789/._-+=:,@") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
