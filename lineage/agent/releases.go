package agent

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"fmt"
	"os"
	"strings"

	"github.com/lineaged/lineaged/lineage/event"
	"github.com/lineaged/lineaged/sensor"
)

// Verification methods (event.Agent.Verification).
const (
	// VerifiedHashList: the binary's SHA-256 is a known release of the
	// agent.
	VerifiedHashList = "hash-list"
	// VerifiedSignature: the binary's signature verdict names a signer
	// known for the agent.
	VerifiedSignature = "signature"
	// Unverified: the path matched the agent table, the binary is no known
	// release (or could not be hashed).
	Unverified = "unverified"
	// VerificationPending: the binary's identity is not known yet.
	VerificationPending = "pending"
)

// Release is one known release of an agent.
type Release struct {
	Agent   sensor.AgentKind
	Version string
}

// Releases is the list of known agent releases: binary hashes and signers.
// The zero value knows none; it is read-only once built.
type Releases struct {
	hashes  map[string]Release
	signers map[sensor.AgentKind][]string
}

// maxReleaseLine bounds one line of a release list.
const maxReleaseLine = 4096

// ParseReleases adds the entries of one release list to r; name is where it
// came from, for errors. A line is "sha256 <hex> <agent> <version>" or
// "signer <agent> <key id>"; blank lines and '#' comments are skipped.
func (r *Releases) ParseReleases(name string, text []byte) error {
	if r.hashes == nil {
		r.hashes = map[string]Release{}
		r.signers = map[sensor.AgentKind][]string{}
	}
	sc := bufio.NewScanner(bytes.NewReader(text))
	sc.Buffer(make([]byte, 0, 256), maxReleaseLine)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		f := strings.Fields(line)
		bad := func(format string, a ...any) error {
			return fmt.Errorf("%s:%d: %s", name, n, fmt.Sprintf(format, a...))
		}
		switch f[0] {
		case "sha256":
			if len(f) != 4 {
				return bad("want \"sha256 <hex> <agent> <version>\", got %d fields", len(f))
			}
			sum := strings.ToLower(f[1])
			if b, err := hex.DecodeString(sum); err != nil || len(b) != 32 {
				return bad("%q is not a SHA-256 (64 hex digits)", f[1])
			}
			kind, err := agentNamed(f[2])
			if err != nil {
				return bad("%v", err)
			}
			if old, ok := r.hashes[sum]; ok && old.Agent != kind {
				return bad("%s is listed for both %s and %s", sum, old.Agent, kind)
			}
			r.hashes[sum] = Release{Agent: kind, Version: f[3]}
		case "signer":
			if len(f) != 3 {
				return bad("want \"signer <agent> <key id>\", got %d fields", len(f))
			}
			kind, err := agentNamed(f[1])
			if err != nil {
				return bad("%v", err)
			}
			r.signers[kind] = append(r.signers[kind], f[2])
		default:
			return bad("unknown entry %q (want sha256 or signer)", f[0])
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	return nil
}

// LoadReleases reads the built-in list and then each file of paths.
func LoadReleases(builtin []byte, paths []string) (*Releases, error) {
	r := &Releases{}
	if err := r.ParseReleases("built-in known-releases", builtin); err != nil {
		return nil, err
	}
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, fmt.Errorf("agent release list: %w", err)
		}
		if err := r.ParseReleases(p, b); err != nil {
			return nil, fmt.Errorf("agent release list %w", err)
		}
	}
	return r, nil
}

func agentNamed(s string) (sensor.AgentKind, error) {
	for _, k := range []sensor.AgentKind{sensor.AgentClaudeCode, sensor.AgentCodex, sensor.AgentGemini} {
		if k.String() == s {
			return k, nil
		}
	}
	return sensor.AgentNone, fmt.Errorf("unknown agent %q (want claude-code, codex or gemini-cli)", s)
}

// Len is the number of release hashes known.
func (r *Releases) Len() int {
	if r == nil {
		return 0
	}
	return len(r.hashes)
}

// Verify judges a binary recognised as agent kind: the method that verifies
// it (VerifiedHashList, VerifiedSignature) or Unverified; the release when
// the hash is listed. A nil list verifies nothing.
func (r *Releases) Verify(kind sensor.AgentKind, b *event.Binary) (string, Release) {
	if r == nil || b == nil {
		return Unverified, Release{}
	}
	if rel, ok := r.hashes[strings.ToLower(b.SHA256)]; ok && b.SHA256 != "" && rel.Agent == kind {
		return VerifiedHashList, rel
	}
	if b.Verdict == event.VerdictSignedTrusted && b.KeyID != "" {
		for _, k := range r.signers[kind] {
			if k == b.KeyID {
				return VerifiedSignature, Release{Agent: kind}
			}
		}
	}
	return Unverified, Release{}
}
