package binid

import (
	"crypto/sha256"
	"testing"
)

// FuzzSignatureFiles feeds arbitrary signature and bundle files (attacker
// controlled: they sit next to binaries) to the parsers.
func FuzzSignatureFiles(f *testing.F) {
	f.Add([]byte("MEUCIQ==\n"))
	f.Add([]byte(`{"mediaType":"application/vnd.dev.sigstore.bundle.v0.3+json","messageSignature":{"messageDigest":{"algorithm":"SHA2_256","digest":"AA=="},"signature":"AA=="}}`))
	f.Add([]byte(`{"mediaType":"application/vnd.dev.sigstore.bundle.v0.3+json","verificationMaterial":{"publicKey":null}}`))
	sum := sha256.Sum256([]byte("x"))
	f.Fuzz(func(t *testing.T, b []byte) {
		if d := parseSig("f.sig", b); d.err == nil && len(d.sig) == 0 {
			t.Fatal("accepted an empty signature")
		}
		if d := parseBundle("f.sigstore.json", b, sum[:]); d.err == nil && len(d.sig) == 0 {
			t.Fatal("accepted a bundle without a signature")
		}
	})
}
