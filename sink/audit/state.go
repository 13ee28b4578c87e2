package audit

import (
	"bytes"
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"

	"github.com/sigstore/sigstore/pkg/cryptoutils"
	"github.com/sigstore/sigstore/pkg/signature"
)

// StateFile is the file under the audit state directory that holds the
// current epoch's private key and the link to the previous run.
const StateFile = "state.json"

// state is StateFile's content.
type state struct {
	Version   int    `json:"version"`
	Algorithm string `json:"algorithm"`
	Epoch     uint64 `json:"epoch"`
	// Key is the private key of Epoch (PKCS#8 PEM); every older one has
	// been erased.
	Key string `json:"key"`
	// RootKey is epoch 0's public key (PEM), what lineaged key prints.
	RootKey string `json:"root_key"`
	// LastCheckpoint is the chain hash of the last checkpoint made (hex).
	LastCheckpoint string `json:"last_checkpoint,omitempty"`
	Instance       string `json:"instance_id,omitempty"`
	// Running is set while a run is under way and cleared after its final
	// checkpoint: found set at start, the previous run crashed.
	Running bool `json:"running"`
}

// Previous describes the run before this one.
type Previous struct {
	Instance string
	// Checkpoint is the chain hash of its last checkpoint (Zero: none).
	Checkpoint [sha256.Size]byte
	// Crashed is true when it ended without its final checkpoint.
	Crashed bool
}

// Signer holds the current epoch's key and signs checkpoints with it.
type Signer struct {
	dir   string
	alg   string // of new keys
	st    state
	key   crypto.Signer
	sv    signature.Signer
	keyID string
	epoch uint64
}

// pendingKey is the next epoch's key, made before the checkpoint that
// announces it.
type pendingKey struct {
	key    crypto.Signer
	pubB64 string
}

// Lock takes the audit state directory for this process (an exclusive
// flock on dir/lock, 0600, released when the process ends or the returned
// file is closed). A second sensor on the same directory is refused: its
// saves would erase the first one's key and state.
func Lock(dir string) (*os.File, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("audit: state directory: %w", err)
	}
	f, err := os.OpenFile(filepath.Join(dir, "lock"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("audit: state directory lock: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("audit: %s is in use by another running lineaged: each instance needs its own audit.state_dir (or state_dir)", dir)
		}
		return nil, fmt.Errorf("audit: state directory lock: %w", err)
	}
	return f, nil
}

// Open loads the signer from dir, creating the directory (0700) and a first
// key of algorithm alg (state file 0600) if there is none.
func Open(dir, alg string) (*Signer, Previous, error) {
	var prev Previous
	if dir == "" {
		return nil, prev, errors.New("audit: no state directory")
	}
	if alg != AlgEd25519 && alg != AlgECDSAP256 {
		return nil, prev, fmt.Errorf("audit: algorithm %q is not %s or %s", alg, AlgEd25519, AlgECDSAP256)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, prev, fmt.Errorf("audit: state directory: %w", err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return nil, prev, fmt.Errorf("audit: state directory: %w", err)
	}
	s := &Signer{dir: dir, alg: alg}
	path := filepath.Join(dir, StateFile)
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		// A crash between erasing the old state and renaming the new one
		// leaves the new one under its temporary name.
		data, err = os.ReadFile(path + ".new")
	}
	switch {
	case errors.Is(err, os.ErrNotExist):
		k, err := newKey(alg)
		if err != nil {
			return nil, prev, err
		}
		pub, err := cryptoutils.MarshalPublicKeyToPEM(k.Public())
		if err != nil {
			return nil, prev, err
		}
		s.st = state{Version: 1, Algorithm: alg, RootKey: string(pub)}
		if err := s.setKey(k); err != nil {
			return nil, prev, err
		}
		if err := s.save(); err != nil {
			return nil, prev, err
		}
		return s, prev, nil
	case err != nil:
		return nil, prev, fmt.Errorf("audit: %w", err)
	}
	if err := json.Unmarshal(data, &s.st); err != nil {
		// A crash between erasing the old state in place and renaming the
		// new one over it leaves zeros here and the new state beside.
		alt, aerr := os.ReadFile(path + ".new")
		if aerr != nil || json.Unmarshal(alt, &s.st) != nil {
			return nil, prev, fmt.Errorf("audit: %s: %w (and no readable %s.new to recover from; the signing key is lost: move the file away to start a new key, which verify will show as a break in the chain)", path, err, StateFile)
		}
	}
	k, err := cryptoutils.UnmarshalPEMToPrivateKey([]byte(s.st.Key), cryptoutils.SkipPassword)
	if err != nil {
		return nil, prev, fmt.Errorf("audit: %s: key: %w", path, err)
	}
	cs, ok := k.(crypto.Signer)
	if !ok {
		return nil, prev, fmt.Errorf("audit: %s: key type %T cannot sign", path, k)
	}
	if err := s.useKey(cs); err != nil {
		return nil, prev, fmt.Errorf("audit: %s: %w", path, err)
	}
	prev.Instance, prev.Crashed = s.st.Instance, s.st.Running
	if s.st.LastCheckpoint != "" {
		b, err := hex.DecodeString(s.st.LastCheckpoint)
		if err != nil || len(b) != sha256.Size {
			return nil, prev, fmt.Errorf("audit: %s: last_checkpoint is not a SHA-256 in hex", path)
		}
		copy(prev.Checkpoint[:], b)
	}
	return s, prev, nil
}

// setKey makes k the current key and writes it into the state.
func (s *Signer) setKey(k crypto.Signer) error {
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return fmt.Errorf("audit: key: %w", err)
	}
	s.st.Key = string(pemBlock("PRIVATE KEY", der))
	clear(der)
	return s.useKey(k)
}

func (s *Signer) useKey(k crypto.Signer) error {
	sv, err := loadSigner(k)
	if err != nil {
		return err
	}
	alg, err := algOf(k.Public())
	if err != nil {
		return err
	}
	id, err := KeyID(k.Public())
	if err != nil {
		return err
	}
	s.key, s.sv, s.keyID, s.epoch = k, sv, id, s.st.Epoch
	s.st.Algorithm = alg
	return nil
}

// Start records that the run instance is under way: found so at the next
// start, it crashed.
func (s *Signer) Start(instance string) error {
	s.st.Instance, s.st.Running = instance, true
	return s.save()
}

// Stop records a clean end, after the run's final checkpoint.
func (s *Signer) Stop() error {
	s.st.Running = false
	return s.save()
}

// Public returns the root (epoch 0) public key, or the current epoch's.
func (s *Signer) Public(current bool) (crypto.PublicKey, error) {
	if current {
		return s.key.Public(), nil
	}
	return cryptoutils.UnmarshalPEMToPublicKey([]byte(s.st.RootKey))
}

// sigLen is the usual length of the sig member: base64 of 64 bytes
// (Ed25519) or of a DER ECDSA P-256 signature (70 to 72 bytes).
func (s *Signer) sigLen() int {
	n := 88
	if s.st.Algorithm == AlgECDSAP256 {
		n = 96
	}
	return len(sigKey) + n + 1
}

// Epoch is the current epoch.
func (s *Signer) Epoch() uint64 { return s.epoch }

func (s *Signer) prepare() (*pendingKey, error) {
	k, err := newKey(s.alg)
	if err != nil {
		return nil, err
	}
	der, err := x509.MarshalPKIXPublicKey(k.Public())
	if err != nil {
		return nil, err
	}
	return &pendingKey{key: k, pubB64: base64.StdEncoding.EncodeToString(der)}, nil
}

func (s *Signer) sign(sum [sha256.Size]byte) ([]byte, error) {
	sig, err := s.sv.SignMessage(bytes.NewReader(signedMessage(sum)))
	if err != nil {
		return nil, fmt.Errorf("audit: signing checkpoint: %w", err)
	}
	return base64.StdEncoding.AppendEncode(nil, sig), nil
}

// advance moves to the next epoch once its checkpoint is signed: the next
// key replaces the current one in the state, and the current one is erased
// from the file and from memory.
func (s *Signer) advance(next *pendingKey, sum [sha256.Size]byte, instance string) error {
	old := s.key
	s.st.Epoch++
	s.st.LastCheckpoint = hex.EncodeToString(sum[:])
	s.st.Instance = instance
	if err := s.setKey(next.key); err != nil {
		return err
	}
	erase(old)
	return s.save()
}

// save writes the state: to a new file first (0600, synced), then the old
// file is overwritten with zeros in place, then the new one renamed over
// it, so the old key does not stay in the file's blocks.
func (s *Signer) save() error {
	data, err := json.Marshal(&s.st)
	if err != nil {
		return err
	}
	path := filepath.Join(s.dir, StateFile)
	if err := writeSynced(path+".new", data, os.O_WRONLY|os.O_CREATE|os.O_TRUNC); err != nil {
		return err
	}
	clear(data)
	if st, err := os.Stat(path); err == nil {
		if err := writeSynced(path, make([]byte, st.Size()), os.O_WRONLY); err != nil {
			return err
		}
	}
	if err := os.Rename(path+".new", path); err != nil {
		return fmt.Errorf("audit: state: %w", err)
	}
	return syncDir(s.dir)
}

func writeSynced(path string, data []byte, flag int) error {
	f, err := os.OpenFile(path, flag, 0o600)
	if err != nil {
		return fmt.Errorf("audit: state: %w", err)
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Chmod(0o600)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("audit: state: %w", err)
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("audit: state: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("audit: state: %w", err)
	}
	return nil
}
