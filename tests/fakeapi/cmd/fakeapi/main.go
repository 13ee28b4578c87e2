// Command fakeapi serves a scripted Messages API on loopback for running the
// real Claude Code by hand or from tests/demo.sh. It prints the base URL on
// its first stdout line, logs every request to stderr, and runs until killed.
//
//	fakeapi -script script.json
//
// script.json is a list of fakeapi.Script objects, e.g.
//
//	[{"name":"demo","turns":[{"tool":"Bash","input":{"command":"id"}},{"text":"done"}]}]
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/lineaged/lineaged/tests/fakeapi"
)

func main() {
	path := flag.String("script", "", "JSON file with the scripts to play (required)")
	flag.Parse()
	if err := run(*path); err != nil {
		fmt.Fprintln(os.Stderr, "fakeapi:", err)
		os.Exit(1)
	}
}

func run(path string) error {
	if path == "" {
		return fmt.Errorf("-script is required")
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var scripts []fakeapi.Script
	if err := json.Unmarshal(b, &scripts); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	srv, err := fakeapi.Start(scripts, log)
	if err != nil {
		return err
	}
	defer srv.Close()
	fmt.Println(srv.URL())
	go func() {
		for r := range srv.Served() {
			log.Info("served", "script", r.Script, "turn", r.Turn, "tool_results", len(r.ToolResults))
		}
	}()
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	<-sig
	return nil
}
