package main

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/spf13/pflag"
)

const configUsage = `Usage:
  lineaged config validate [--config FILE] [flags]  report every problem in the configuration
  lineaged config print [--config FILE] [flags]     show the effective configuration, secrets
                                                    masked, and where each value came from

The flags are run's ("lineaged run --help"); LINEAGED_* variables apply as
for run. Every key is documented in docs/config.md.
`

// cmdConfig is `lineaged config validate|print`: the same loading and
// validation as run, without starting anything.
func cmdConfig(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, configUsage)
		return &exitError{exitUsage, errors.New("config: validate or print?")}
	}
	sub := args[0]
	switch sub {
	case "validate", "print":
	case "help", "-h", "--help":
		fmt.Fprint(stdout, configUsage)
		return nil
	default:
		fmt.Fprint(stderr, configUsage)
		return &exitError{exitUsage, fmt.Errorf("config: unknown subcommand %q", sub)}
	}
	fs := newFlags("config "+sub, stderr)
	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return err
		}
		return &exitError{exitUsage, err}
	}
	if fs.NArg() > 0 {
		return &exitError{exitUsage, fmt.Errorf("config %s takes no arguments, got %q", sub, fs.Args())}
	}
	cfg, src, err := loadConfigSources(fs, os.Getenv)
	if err != nil {
		return &exitError{exitUsage, err}
	}
	if sub == "print" {
		return printConfig(stdout, cfg, src)
	}
	where := "defaults and environment"
	if src.path != "" {
		where = src.path
	}
	_, err = fmt.Fprintf(stdout, "configuration OK (%s)\n", where)
	return err
}
