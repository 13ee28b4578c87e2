package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestControlSocketNeverChmodsASharedDirectory: a control socket placed in
// a directory that is not its own (0755, as /run/lineaged is for the hook
// socket, or /tmp) is refused and the directory left as it was; before,
// the directory was made 0700, which locks agents out of the hook socket.
func TestControlSocketNeverChmodsASharedDirectory(t *testing.T) {
	shared := t.TempDir()
	if err := os.Chmod(shared, 0o755); err != nil {
		t.Fatal(err)
	}
	_, err := listenControl(filepath.Join(shared, "control.sock"))
	if err == nil || !strings.Contains(err.Error(), "directory of its own") {
		t.Fatalf("listenControl in a shared directory: %v", err)
	}
	if st, _ := os.Stat(shared); st.Mode().Perm() != 0o755 {
		t.Errorf("the shared directory is now %v", st.Mode())
	}
	// A directory of its own is made 0700.
	own := filepath.Join(t.TempDir(), "control")
	ln, err := listenControl(filepath.Join(own, "control.sock"))
	if err != nil {
		t.Fatal(err)
	}
	ln.Close()
	if st, _ := os.Stat(own); st.Mode().Perm() != 0o700 {
		t.Errorf("its own directory is %v, want 0700", st.Mode())
	}
}
