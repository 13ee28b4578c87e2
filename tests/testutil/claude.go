package testutil

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"time"
)

// ClaudeVersion is the Claude Code release the end-to-end tests and the
// cost benchmark run.
const ClaudeVersion = "2.1.332"

// InstallClaude installs the pinned Claude Code from npm into cache once
// (npm answers from its cache or mirror when offline) and returns the
// native binary the package runs.
func InstallClaude(ctx context.Context, cache string) (string, error) {
	dir := filepath.Join(cache, "claude-code-"+ClaudeVersion)
	bin := filepath.Join(dir, "node_modules", "@anthropic-ai", "claude-code", "bin", "claude.exe")
	// The postinstall step copies the platform package's binary over the
	// placeholder; without it, the platform package's binary is used.
	alt := filepath.Join(dir, "node_modules", "@anthropic-ai", "claude-code-linux-x64", "claude")
	for _, p := range []string{bin, alt} {
		if isELF(p) {
			return p, nil
		}
	}
	if _, err := exec.LookPath("npm"); err != nil {
		return "", fmt.Errorf("Claude Code %s is not installed in %s and npm is not on PATH to install it", ClaudeVersion, dir)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "npm", "install", "--no-audit", "--no-fund", "--prefix", dir, "@anthropic-ai/claude-code@"+ClaudeVersion)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("cannot install Claude Code: npm install @anthropic-ai/claude-code@%s: %v\n%s", ClaudeVersion, err, out)
	}
	for _, p := range []string{bin, alt} {
		if isELF(p) {
			return p, nil
		}
	}
	return "", fmt.Errorf("npm install @anthropic-ai/claude-code@%s left no native binary at %s or %s\n%s", ClaudeVersion, bin, alt, out)
}

// ClaudeEnv is the whole environment of a Claude Code run against a
// scripted Messages API at apiURL: no telemetry, no updates, no other
// traffic, allowed to run as root.
func ClaudeEnv(home, apiURL, apiKey string) []string {
	return []string{
		"HOME=" + home,
		"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		"ANTHROPIC_BASE_URL=" + apiURL,
		"ANTHROPIC_API_KEY=" + apiKey,
		"IS_SANDBOX=1",
		"DISABLE_TELEMETRY=1",
		"DISABLE_AUTOUPDATER=1",
		"CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1",
		"TERM=dumb",
	}
}

func isELF(p string) bool {
	f, err := os.Open(p)
	if err != nil {
		return false
	}
	defer f.Close()
	var b [4]byte
	_, err = io.ReadFull(f, b[:])
	return err == nil && string(b[:]) == "\x7fELF"
}
