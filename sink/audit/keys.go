package audit

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"

	"github.com/sigstore/sigstore/pkg/cryptoutils"
	"github.com/sigstore/sigstore/pkg/signature"
)

// Signing algorithms (audit.algorithm).
const (
	AlgEd25519   = "ed25519"
	AlgECDSAP256 = "ecdsa-p256"
)

// SignedPrefix starts the message a checkpoint's signature is over; the
// line's chain hash, in hex, follows.
const SignedPrefix = "lineaged-checkpoint-v1 "

// signedMessage is what a checkpoint with chain hash sum signs.
func signedMessage(sum [sha256.Size]byte) []byte {
	m := make([]byte, 0, len(SignedPrefix)+hexLen)
	m = append(m, SignedPrefix...)
	return hex.AppendEncode(m, sum[:])
}

// newKey makes a private key of alg.
func newKey(alg string) (crypto.Signer, error) {
	switch alg {
	case AlgEd25519:
		_, k, err := ed25519.GenerateKey(rand.Reader)
		return k, err
	case AlgECDSAP256:
		return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	}
	return nil, fmt.Errorf("audit: algorithm %q is not %s or %s", alg, AlgEd25519, AlgECDSAP256)
}

// algOf names the algorithm of a public key.
func algOf(pub crypto.PublicKey) (string, error) {
	switch k := pub.(type) {
	case ed25519.PublicKey:
		return AlgEd25519, nil
	case *ecdsa.PublicKey:
		if k.Curve == elliptic.P256() {
			return AlgECDSAP256, nil
		}
	}
	return "", fmt.Errorf("audit: key type %T is not Ed25519 or ECDSA P-256", pub)
}

// loadSigner wraps a private key in sigstore's signer.
func loadSigner(k crypto.Signer) (signature.Signer, error) {
	if ek, ok := k.(ed25519.PrivateKey); ok {
		return signature.LoadED25519Signer(ek)
	}
	return signature.LoadSigner(k, crypto.SHA256)
}

// LoadVerifier wraps a public key in sigstore's verifier.
func LoadVerifier(pub crypto.PublicKey) (signature.Verifier, error) {
	if _, err := algOf(pub); err != nil {
		return nil, err
	}
	if ek, ok := pub.(ed25519.PublicKey); ok {
		return signature.LoadED25519Verifier(ek)
	}
	return signature.LoadVerifier(pub, crypto.SHA256)
}

// KeyID is the hex SHA-256 of pub's DER SubjectPublicKeyInfo.
func KeyID(pub crypto.PublicKey) (string, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return "", fmt.Errorf("audit: public key: %w", err)
	}
	sum := sha256.Sum256(der)
	return hex.EncodeToString(sum[:]), nil
}

// PublicPEM encodes pub as a PEM PUBLIC KEY block.
func PublicPEM(pub crypto.PublicKey) ([]byte, error) {
	return cryptoutils.MarshalPublicKeyToPEM(pub)
}

// ParsePublicKeys reads every PEM PUBLIC KEY block of data.
func ParsePublicKeys(data []byte) ([]crypto.PublicKey, error) {
	var keys []crypto.PublicKey
	rest := bytes.TrimSpace(data)
	for len(rest) > 0 {
		var blk *pem.Block
		blk, rest = pem.Decode(rest)
		if blk == nil {
			return nil, errors.New("audit: not a PEM public key")
		}
		pub, err := cryptoutils.UnmarshalPEMToPublicKey(pem.EncodeToMemory(blk))
		if err != nil {
			return nil, fmt.Errorf("audit: public key: %w", err)
		}
		if _, err := algOf(pub); err != nil {
			return nil, err
		}
		keys = append(keys, pub)
		rest = bytes.TrimSpace(rest)
	}
	if len(keys) == 0 {
		return nil, errors.New("audit: no public key found")
	}
	return keys, nil
}

// parseB64Key reads a checkpoint's next_key.
func parseB64Key(s string) (crypto.PublicKey, error) {
	der, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("next_key is not base64: %w", err)
	}
	pub, err := x509.ParsePKIXPublicKey(der)
	if err != nil {
		return nil, fmt.Errorf("next_key: %w", err)
	}
	if _, err := algOf(pub); err != nil {
		return nil, err
	}
	return pub, nil
}

// erase overwrites a private key's secret in memory, as far as Go allows.
func erase(k crypto.Signer) {
	switch k := k.(type) {
	case ed25519.PrivateKey:
		clear(k)
	case *ecdsa.PrivateKey:
		if k.D != nil {
			k.D.SetInt64(0)
		}
	}
}

func pemBlock(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}
