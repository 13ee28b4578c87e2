// Command lineaged-hook is Claude Code's hook for lineaged: it reads the
// hook's JSON on stdin, asks the running sensor over its unix socket
// whether the tool call is allowed, and prints Claude Code's decision
// (docs/hooks.md). It does what `lineaged hook` does, as a small binary
// that starts in milliseconds, for the hook process Claude Code starts at
// every tool call. Its settings are flags, written into the managed
// settings by `lineaged hook install` from the sensor's configuration.
//
//	lineaged-hook [--socket PATH] [--timeout DURATION] [--fail-closed]
package main

import (
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/lineaged/lineaged/lineage/policy/hookclient"
)

// Defaults, as the sensor's configuration has them (hook.socket,
// hook.timeout, hook.fail_closed).
const (
	defaultSocket  = "/run/lineaged/hook.sock"
	defaultTimeout = 200 * time.Millisecond
)

func main() {
	fs := flag.NewFlagSet("lineaged-hook", flag.ContinueOnError)
	o := hookclient.Options{Name: "lineaged-hook"}
	fs.StringVar(&o.Socket, "socket", defaultSocket, "the sensor's hook socket (hook.socket)")
	fs.DurationVar(&o.Timeout, "timeout", defaultTimeout, "bound on the question to the sensor (hook.timeout)")
	fs.BoolVar(&o.FailClosed, "fail-closed", false, "deny tool calls when the sensor does not answer (hook.fail_closed)")
	if err := fs.Parse(os.Args[1:]); err != nil {
		os.Exit(2)
	}
	if fs.NArg() > 0 || o.Timeout <= 0 || o.Timeout > 10*time.Second {
		// A hook that is misconfigured still answers, with the
		// defaults: the agent is never failed for the hook's own reason.
		fmt.Fprintf(os.Stderr, "lineaged-hook: bad arguments %q (timeout must be above 0 and at most 10s); using the defaults\n", os.Args[1:])
		o.Timeout, o.Socket = defaultTimeout, defaultSocket
	}
	if err := hookclient.Run(o, os.Stdin, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintf(os.Stderr, "lineaged-hook: %v\n", err)
		os.Exit(1)
	}
}
