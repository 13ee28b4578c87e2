package binid

import (
	"bytes"
	"crypto"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"

	"github.com/lineaged/lineaged/lineage/internal/safefile"
	"github.com/sigstore/sigstore/pkg/cryptoutils"
	"github.com/sigstore/sigstore/pkg/signature"
	"github.com/sigstore/sigstore/pkg/signature/options"
)

// TrustedKey is one admin-configured public key.
type TrustedKey struct {
	Path string
	// Name is reported as the signer; the file name without extension.
	Name string
	// ID is the key id: hex SHA-256 of the DER SubjectPublicKeyInfo, the
	// form cosign bundles carry as their public-key hint.
	ID       string
	verifier signature.Verifier
	ed25519  bool
}

// TrustPolicy is the set of trusted keys and where detached signatures are
// looked up: the admin's SignatureDir first, then <binary>.sig and
// <binary>.sigstore.json beside the binary, which count only when root owns
// them. No signature file is read through a symlink, and a malformed one
// decides the verdict (error) only when no other signature verifies. Keys that could not be loaded are kept as errors: binaries
// whose signature no good key verifies then get verdict error naming them.
type TrustPolicy struct {
	Keys   []*TrustedKey
	Broken []error
	// SignatureDir holds signatures keyed by SHA-256
	// (<dir>/<sha256>.sig or <dir>/<sha256>.sigstore.json); "" for none.
	SignatureDir string
	// Version changes with the key set and directory: verdicts are
	// cached per (sha256, path, version).
	Version string
	// MaxSigBytes bounds a signature file read; default 1 MiB.
	MaxSigBytes int64
}

// LoadTrustPolicy loads PEM public keys (ECDSA, Ed25519, RSA). It returns a
// usable policy even when some keys fail, together with an error naming each
// failure, so the caller can refuse to start or carry on with verdict error.
func LoadTrustPolicy(keyPaths []string, sigDir string) (*TrustPolicy, error) {
	p := &TrustPolicy{SignatureDir: sigDir, MaxSigBytes: 1 << 20}
	h := sha256.New()
	for _, path := range keyPaths {
		k, err := loadKey(path)
		if err != nil {
			p.Broken = append(p.Broken, err)
			fmt.Fprintf(h, "broken:%s\n", path)
			continue
		}
		p.Keys = append(p.Keys, k)
		fmt.Fprintf(h, "key:%s:%s\n", k.ID, k.Name)
	}
	fmt.Fprintf(h, "dir:%s\n", sigDir)
	p.Version = hex.EncodeToString(h.Sum(nil)[:8])
	return p, errors.Join(p.Broken...)
}

func loadKey(path string) (*TrustedKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("trusted key %s: %w", path, err)
	}
	pub, err := cryptoutils.UnmarshalPEMToPublicKey(b)
	if err != nil {
		return nil, fmt.Errorf("trusted key %s: not a PEM public key: %w", path, err)
	}
	if err := cryptoutils.ValidatePubKey(pub); err != nil {
		return nil, fmt.Errorf("trusted key %s: %w", path, err)
	}
	der, err := cryptoutils.MarshalPublicKeyToDER(pub)
	if err != nil {
		return nil, fmt.Errorf("trusted key %s: %w", path, err)
	}
	sum := sha256.Sum256(der)
	k := &TrustedKey{Path: path, ID: hex.EncodeToString(sum[:])}
	k.Name = strings.TrimSuffix(filepath.Base(path), filepath.Ext(path))
	// Signatures are checked against the digest already computed, never by
	// re-reading the file: ECDSA and RSA sign a SHA-256 digest; Ed25519
	// keys are used as Ed25519ph, whose prehash is SHA-512 (computed in
	// the same read pass when such a key is trusted).
	if epub, ok := pub.(ed25519.PublicKey); ok {
		k.ed25519 = true
		k.verifier, err = signature.LoadED25519phVerifier(epub)
	} else {
		k.verifier, err = signature.LoadVerifier(pub, crypto.SHA256)
	}
	if err != nil {
		return nil, fmt.Errorf("trusted key %s: %w", path, err)
	}
	return k, nil
}

// needsSHA512 reports whether an Ed25519 key is trusted.
func (p *TrustPolicy) needsSHA512() bool {
	for _, k := range p.Keys {
		if k.ed25519 {
			return true
		}
	}
	return false
}

// detached is a signature found for a binary.
type detached struct {
	source string // file it came from
	sig    []byte
	keyID  string // hint from a bundle, "" when none
	err    error  // malformed signature file
}

// sigCandidate is a file a signature of a binary may be in; beside is set
// for the files next to the binary, which must be root's to count.
type sigCandidate struct {
	path   string
	beside bool
}

// sigCandidates lists where signatures of the binary at path with digest
// sha are looked for: the admin's signature directory first, then beside
// the binary.
func (p *TrustPolicy) sigCandidates(path string, sha []byte) []sigCandidate {
	var cands []sigCandidate
	if p.SignatureDir != "" {
		h := hex.EncodeToString(sha)
		cands = append(cands, sigCandidate{path: filepath.Join(p.SignatureDir, h+".sig")}, sigCandidate{path: filepath.Join(p.SignatureDir, h+".sigstore.json")})
	}
	if path != "" && !strings.HasSuffix(path, " (deleted)") && strings.HasPrefix(path, "/") {
		cands = append(cands, sigCandidate{path: path + ".sig", beside: true}, sigCandidate{path: path + ".sigstore.json", beside: true})
	}
	return cands
}

// errNotRoot marks a signature file beside a binary that root does not own:
// any user who can write that directory could have put it there.
var errNotRoot = errors.New("not owned by root")

// findSignatures looks in the signature directory, then next to the
// binary. A missing file is not an error, nor is a file beside the binary
// that root does not own (it is ignored); an unreadable or malformed one
// is.
func (p *TrustPolicy) findSignatures(path string, sha []byte) []detached {
	var out []detached
	for _, c := range p.sigCandidates(path, sha) {
		b, err := p.readSig(c.path, c.beside)
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, errNotRoot) {
			continue
		}
		if err != nil {
			out = append(out, detached{source: c.path, err: err})
			continue
		}
		if strings.HasSuffix(c.path, ".sigstore.json") {
			out = append(out, parseBundle(c.path, b, sha))
		} else {
			out = append(out, parseSig(c.path, b))
		}
	}
	return out
}

// readSig reads a signature file, never through a symlink; beside a binary
// only a root-owned file counts.
func (p *TrustPolicy) readSig(path string, beside bool) ([]byte, error) {
	// Signature files sit beside binaries that users control: a FIFO planted
	// as <binary>.sig must not stall a hashing worker in open, and a symlink
	// must not make the sensor read (and report on) another file.
	f, info, err := safefile.OpenRegular(path, safefile.Options{NoFollow: true, MaxBytes: p.MaxSigBytes})
	if err != nil {
		return nil, fmt.Errorf("signature file %w", err)
	}
	defer f.Close()
	if st, ok := info.Sys().(*syscall.Stat_t); beside && (!ok || st.Uid != 0) {
		return nil, fmt.Errorf("signature file %s: %w", path, errNotRoot)
	}
	b, err := io.ReadAll(io.LimitReader(f, p.MaxSigBytes))
	if err != nil {
		return nil, fmt.Errorf("signature file %s: %w", path, err)
	}
	return b, nil
}

// sigFingerprint identifies the signature files of a binary as they are
// now (which exist, and each one's inode, size, times and owner), so a
// verdict is judged again when one is added, replaced or removed.
func (p *TrustPolicy) sigFingerprint(path string, sha []byte) string {
	var b strings.Builder
	for _, c := range p.sigCandidates(path, sha) {
		var st syscall.Stat_t
		if err := syscall.Lstat(c.path, &st); err != nil {
			b.WriteString("-;")
			continue
		}
		fmt.Fprintf(&b, "%d:%d:%d:%d.%d:%d.%d:%d:%o;", st.Dev, st.Ino, st.Size, st.Mtim.Sec, st.Mtim.Nsec, st.Ctim.Sec, st.Ctim.Nsec, st.Uid, st.Mode)
	}
	return b.String()
}

// parseSig decodes a cosign sign-blob signature: base64 of the raw
// signature, possibly followed by a newline.
func parseSig(source string, b []byte) detached {
	s := string(bytes.TrimSpace(b))
	if s == "" {
		return detached{source: source, err: fmt.Errorf("signature file %s is empty", source)}
	}
	sig, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return detached{source: source, err: fmt.Errorf("signature file %s: not base64: %w", source, err)}
	}
	return detached{source: source, sig: sig}
}

// bundle is the part of a sigstore bundle (v0.3, as cosign sign-blob
// --bundle writes for a key pair) that a key-based check needs.
type bundle struct {
	MediaType            string `json:"mediaType"`
	VerificationMaterial struct {
		PublicKey *struct {
			Hint string `json:"hint"`
		} `json:"publicKey"`
	} `json:"verificationMaterial"`
	MessageSignature *struct {
		MessageDigest struct {
			Algorithm string `json:"algorithm"`
			Digest    string `json:"digest"`
		} `json:"messageDigest"`
		Signature string `json:"signature"`
	} `json:"messageSignature"`
}

func parseBundle(source string, b []byte, sha []byte) detached {
	var bu bundle
	bad := func(format string, a ...any) detached {
		return detached{source: source, err: fmt.Errorf("signature bundle %s: "+format, append([]any{source}, a...)...)}
	}
	if err := json.Unmarshal(b, &bu); err != nil {
		return bad("malformed JSON: %v", err)
	}
	if !strings.HasPrefix(bu.MediaType, "application/vnd.dev.sigstore.bundle") {
		return bad("media type %q is not a sigstore bundle", bu.MediaType)
	}
	ms := bu.MessageSignature
	if ms == nil || ms.Signature == "" {
		return bad("no messageSignature (only blob signatures are supported)")
	}
	sig, err := base64.StdEncoding.DecodeString(ms.Signature)
	if err != nil {
		return bad("signature not base64: %v", err)
	}
	if d := ms.MessageDigest; d.Digest != "" {
		if d.Algorithm != "SHA2_256" {
			return bad("message digest algorithm %q, want SHA2_256", d.Algorithm)
		}
		got, err := base64.StdEncoding.DecodeString(d.Digest)
		if err != nil {
			return bad("message digest not base64: %v", err)
		}
		if !bytes.Equal(got, sha) {
			return detached{source: source, sig: sig, err: errDigestMismatch}
		}
	}
	out := detached{source: source, sig: sig}
	if pk := bu.VerificationMaterial.PublicKey; pk != nil {
		out.keyID = pk.Hint
	}
	return out
}

var errDigestMismatch = errors.New("bundle is for a different file (message digest differs)")

// sigVerdict is the signature part of a verdict; found is false when no
// signature exists for the binary.
type sigVerdict struct {
	found   bool
	verdict string
	signer  string
	keyID   string
	reason  string
}

// verify checks every signature found against the trusted keys, using the
// digests already computed.
func (p *TrustPolicy) verify(path string, d *Digests) sigVerdict {
	sigs := p.findSignatures(path, d.SHA256)
	if len(sigs) == 0 {
		return sigVerdict{}
	}
	var problems, malformed []string
	for _, s := range sigs {
		if s.err != nil {
			if errors.Is(s.err, errDigestMismatch) {
				problems = append(problems, fmt.Sprintf("%s: %v", s.source, s.err))
				continue
			}
			// A broken file does not hide a good signature found in
			// another place: it decides only when none verifies.
			malformed = append(malformed, s.err.Error())
			continue
		}
		keys := p.Keys
		if s.keyID != "" {
			keys = nil
			for _, k := range p.Keys {
				if k.ID == s.keyID {
					keys = append(keys, k)
				}
			}
			if len(keys) == 0 {
				problems = append(problems, fmt.Sprintf("%s: signed by key %s, which is not trusted", s.source, s.keyID))
				continue
			}
		}
		for _, k := range keys {
			digest, hf := d.SHA256, crypto.SHA256
			if k.ed25519 {
				digest, hf = d.SHA512, crypto.SHA512
				if digest == nil {
					continue
				}
			}
			err := k.verifier.VerifySignature(bytes.NewReader(s.sig), nil,
				options.WithDigest(digest), options.WithCryptoSignerOpts(hf))
			if err == nil {
				return sigVerdict{found: true, verdict: "signed-trusted", signer: k.Name, keyID: k.ID}
			}
		}
		if len(keys) > 0 {
			problems = append(problems, fmt.Sprintf("%s: does not verify with %s", s.source, keyNames(keys)))
		} else {
			problems = append(problems, fmt.Sprintf("%s: no trusted keys configured", s.source))
		}
	}
	if len(malformed) > 0 {
		return sigVerdict{found: true, verdict: "error", reason: strings.Join(append(malformed, problems...), "; ")}
	}
	if len(p.Broken) > 0 {
		// A key that failed to load might have been the one: say so
		// rather than call the binary untrusted.
		return sigVerdict{found: true, verdict: "error",
			reason: fmt.Sprintf("%s; and %v", strings.Join(problems, "; "), errors.Join(p.Broken...))}
	}
	return sigVerdict{found: true, verdict: "signed-untrusted", reason: strings.Join(problems, "; ")}
}

func keyNames(ks []*TrustedKey) string {
	names := make([]string, len(ks))
	for i, k := range ks {
		names[i] = k.Name
	}
	sort.Strings(names)
	if len(names) == 1 {
		return "trusted key " + names[0]
	}
	return "any of the trusted keys " + strings.Join(names, ", ")
}
