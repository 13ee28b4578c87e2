package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"

	"github.com/spf13/pflag"
)

func cmdHookUninstall(args []string, stdout, stderr io.Writer) error {
	fs := pflag.NewFlagSet("hook uninstall", pflag.ContinueOnError)
	fs.SetOutput(stderr)
	settings := fs.String("settings", DefaultManagedSettings, "Claude Code managed settings file to remove lineaged's hooks from")
	fs.Usage = func() { fmt.Fprintf(stderr, "%s\nFlags:\n%s", hookUsage, fs.FlagUsages()) }
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return err
		}
		return &exitError{exitUsage, err}
	}
	if fs.NArg() > 0 {
		return &exitError{exitUsage, fmt.Errorf("hook uninstall takes no arguments, got %q", fs.Args())}
	}
	n, err := uninstallHook(*settings)
	if err != nil {
		return err
	}
	if n == 0 {
		fmt.Fprintf(stdout, "%s runs no lineaged hook\n", *settings)
	} else {
		fmt.Fprintf(stdout, "removed %d lineaged hook entries from %s\n", n, *settings)
	}
	return nil
}

// uninstallHook removes every lineaged hook from the Claude Code settings
// file at path, and the lists and the hooks object it leaves empty. The
// rest of the file stays as it is; a missing file has nothing to remove.
// It returns how many hook lists changed.
func uninstallHook(path string) (int, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	settings := map[string]any{}
	if err := json.Unmarshal(b, &settings); err != nil {
		return 0, fmt.Errorf("%s: not a JSON object, left as it is: %w", path, err)
	}
	hooks, ok := settings["hooks"].(map[string]any)
	if !ok {
		return 0, nil
	}
	n := 0
	for name, v := range hooks {
		list, ok := v.([]any)
		if !ok {
			continue
		}
		// No command is kept: every lineaged hook goes.
		list, dropped := dropOtherLineagedHooks(list, "")
		if !dropped {
			continue
		}
		n++
		if len(list) == 0 {
			delete(hooks, name)
		} else {
			hooks[name] = list
		}
	}
	if n == 0 {
		return 0, nil
	}
	if len(hooks) == 0 {
		delete(settings, "hooks")
	} else {
		settings["hooks"] = hooks
	}
	return n, writeSettings(path, settings)
}
