package main

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/lineaged/lineaged/sensor/kernel"
)

// cmdUnpin removes the kernel state pinned at kernel.pin_path: the
// programs stop once nothing holds them. The package's purge runs it. It
// fails while a sensor runs on the path (the pin lock).
func cmdUnpin(args []string, stdout, stderr io.Writer) error {
	cfg, err := parseConfig("unpin", args, stderr)
	if err != nil {
		return err
	}
	path := cfg.Kernel.PinPath
	if path == "" {
		fmt.Fprintln(stdout, "kernel.pin_path is empty: nothing is pinned")
		return nil
	}
	switch err := kernel.Unpin(path); {
	case errors.Is(err, os.ErrNotExist):
		fmt.Fprintf(stdout, "%s: nothing pinned\n", path)
		return nil
	case err != nil:
		return err
	}
	fmt.Fprintf(stdout, "%s: unpinned\n", path)
	return nil
}
