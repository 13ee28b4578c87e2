package main

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/spf13/pflag"

	"github.com/lineaged/lineaged/sink/audit"
)

// cmdKey is lineaged key: it prints the public key checkpoints are verified
// with, creating the key (in audit.state_dir) if there is none yet.
func cmdKey(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("key", stderr)
	current := fs.Bool("current", false, "print the current epoch's key instead of the root key (to verify a stream whose first checkpoints are gone)")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: lineaged key [--config FILE] [--current]\n\n"+
			"Prints the public key (PEM) of the audit trail's checkpoints (docs/audit.md),\n"+
			"creating it under audit.state_dir if missing. Keep a copy off this host:\n"+
			"lineaged verify --key takes it.\n\nFlags:\n%s", fs.FlagUsages())
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return err
		}
		return &exitError{exitUsage, err}
	}
	if fs.NArg() > 0 {
		return &exitError{exitUsage, fmt.Errorf("key takes no arguments, got %q", fs.Args())}
	}
	cfg, err := loadConfig(fs, os.Getenv)
	if err != nil {
		return &exitError{exitUsage, err}
	}
	s, _, err := audit.Open(cfg.Audit.StateDir, cfg.Audit.Algorithm)
	if err != nil {
		return err
	}
	pub, err := s.Public(*current)
	if err != nil {
		return err
	}
	pem, err := audit.PublicPEM(pub)
	if err != nil {
		return err
	}
	_, err = stdout.Write(pem)
	return err
}
