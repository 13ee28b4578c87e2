package audit

import (
	"crypto"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestOpenAfterCrashBetweenEraseAndRename: save erases the old state in
// place and then renames the new one over it. A crash in between leaves
// zeros in state.json and the state in state.json.new: the next start
// reads that, with the same key, instead of refusing to start.
func TestOpenAfterCrashBetweenEraseAndRename(t *testing.T) {
	dir := t.TempDir()
	s, _, err := Open(dir, AlgEd25519)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := s.Public(true)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, StateFile)
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	// The crash: the new state written beside, the old one zeroed.
	if err := os.WriteFile(path+".new", data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, make([]byte, len(data)), 0o600); err != nil {
		t.Fatal(err)
	}
	s2, _, err := Open(dir, AlgEd25519)
	if err != nil {
		t.Fatalf("Open after the crash: %v", err)
	}
	pub2, err := s2.Public(true)
	if err != nil {
		t.Fatal(err)
	}
	if !pub2.(interface{ Equal(crypto.PublicKey) bool }).Equal(pub) {
		t.Error("the recovered state has another key")
	}

	// Zeros and nothing beside: the error says what was lost and what to do.
	os.Remove(path + ".new")
	if err := os.WriteFile(path, make([]byte, len(data)), 0o600); err != nil {
		t.Fatal(err)
	}
	_, _, err = Open(dir, AlgEd25519)
	if err == nil || !strings.Contains(err.Error(), "signing key is lost") {
		t.Errorf("Open of a zeroed state: %v", err)
	}
}

// TestLockRefusesASecondSensor: a second sensor on the same directory is
// refused, naming it; once the first lets go, it may take it.
func TestLockRefusesASecondSensor(t *testing.T) {
	dir := t.TempDir()
	first, err := Lock(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Lock(dir); err == nil || !strings.Contains(err.Error(), dir) || !strings.Contains(err.Error(), "in use") {
		t.Fatalf("second Lock: %v, want in use naming %s", err, dir)
	}
	st, err := os.Stat(filepath.Join(dir, "lock"))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("lock file: %v %v, want 0600", st, err)
	}
	first.Close()
	again, err := Lock(dir)
	if err != nil {
		t.Fatalf("Lock after the first closed: %v", err)
	}
	again.Close()
}
