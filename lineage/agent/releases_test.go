package agent

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lineaged/lineaged/lineage/event"
	"github.com/lineaged/lineaged/sensor"
)

const claude2_1_332 = "a2df1f41bb00250992926420d0063f89b127cb81abdd284dbefb80c50ff1d026"

func TestShippedReleasesKnowClaudeCode(t *testing.T) {
	text, err := os.ReadFile(filepath.Join("..", "..", "deploy", "agents", "known-releases"))
	if err != nil {
		t.Fatal(err)
	}
	r, err := LoadReleases(text, nil)
	if err != nil {
		t.Fatal(err)
	}
	m, rel := r.Verify(sensor.AgentClaudeCode, &event.Binary{SHA256: claude2_1_332, Verdict: event.VerdictUnsigned})
	if m != VerifiedHashList || rel.Version != "2.1.332" {
		t.Errorf("Claude Code 2.1.332: %s %+v, want hash-list 2.1.332", m, rel)
	}
	// The same hash for another agent, and another hash, are unverified.
	if m, _ := r.Verify(sensor.AgentCodex, &event.Binary{SHA256: claude2_1_332}); m != Unverified {
		t.Errorf("Claude's hash as codex: %s, want unverified", m)
	}
	if m, _ := r.Verify(sensor.AgentClaudeCode, &event.Binary{SHA256: strings.Repeat("0", 64)}); m != Unverified {
		t.Errorf("unknown hash: %s, want unverified", m)
	}
	if m, _ := r.Verify(sensor.AgentClaudeCode, &event.Binary{Verdict: event.VerdictError}); m != Unverified {
		t.Errorf("unhashed binary: %s, want unverified", m)
	}
	var none *Releases
	if m, _ := none.Verify(sensor.AgentClaudeCode, &event.Binary{SHA256: claude2_1_332}); m != Unverified {
		t.Errorf("no list: %s, want unverified", m)
	}
}

func TestReleasesFromFilesAndSigners(t *testing.T) {
	p := filepath.Join(t.TempDir(), "extra")
	body := "# newer\nsha256 " + strings.Repeat("AB", 32) + " claude-code 9.0.0\nsigner codex key-1\n"
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	r, err := LoadReleases(nil, []string{p})
	if err != nil {
		t.Fatal(err)
	}
	if m, rel := r.Verify(sensor.AgentClaudeCode, &event.Binary{SHA256: strings.Repeat("ab", 32)}); m != VerifiedHashList || rel.Version != "9.0.0" {
		t.Errorf("listed hash: %s %+v", m, rel)
	}
	signed := &event.Binary{SHA256: strings.Repeat("1", 64), Verdict: event.VerdictSignedTrusted, KeyID: "key-1"}
	if m, _ := r.Verify(sensor.AgentCodex, signed); m != VerifiedSignature {
		t.Errorf("listed signer: %s, want signature", m)
	}
	if m, _ := r.Verify(sensor.AgentClaudeCode, signed); m != Unverified {
		t.Errorf("codex's signer on claude-code: %s, want unverified", m)
	}
	signed.Verdict = event.VerdictSignedUntrusted
	if m, _ := r.Verify(sensor.AgentCodex, signed); m != Unverified {
		t.Errorf("untrusted signature: %s, want unverified", m)
	}
}

func TestReleasesBadInput(t *testing.T) {
	for _, c := range []struct{ text, want string }{
		{"sha256 abc claude-code 1.0", "x:1: \"abc\" is not a SHA-256"},
		{"\nsha256 " + strings.Repeat("a", 64) + " cursor 1.0", "x:2: unknown agent \"cursor\""},
		{"sha256 " + strings.Repeat("a", 64) + " claude-code", "x:1: want \"sha256 <hex> <agent> <version>\", got 3 fields"},
		{"md5 abc", "x:1: unknown entry \"md5\""},
		{"signer claude-code", "x:1: want \"signer <agent> <key id>\""},
		{"sha256 " + strings.Repeat("a", 64) + " claude-code 1\nsha256 " + strings.Repeat("a", 64) + " codex 1", "x:2: " + strings.Repeat("a", 64) + " is listed for both claude-code and codex"},
	} {
		var r Releases
		err := r.ParseReleases("x", []byte(c.text))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: error %v, want %q", c.text, err, c.want)
		}
	}
	if _, err := LoadReleases(nil, []string{filepath.Join(t.TempDir(), "missing")}); err == nil || !strings.Contains(err.Error(), "agent release list") {
		t.Errorf("missing file: %v", err)
	}
}
