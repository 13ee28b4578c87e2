package testutil

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestCopyFile(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	if err := os.WriteFile(src, []byte("image"), 0o600); err != nil {
		t.Fatal(err)
	}
	dst := CopyFile(t, src, AgentPath(filepath.Join(dir, "home")), 0o700)
	if want := filepath.Join(dir, "home", ".local", "share", "claude", "versions", AgentVersion); dst != want {
		t.Fatalf("copied to %s, want %s", dst, want)
	}
	st, err := os.Stat(dst)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o700 {
		t.Fatalf("mode %v, want 0700", st.Mode().Perm())
	}
	if b, _ := os.ReadFile(dst); string(b) != "image" {
		t.Fatalf("content %q", b)
	}
}

func TestWaitForText(t *testing.T) {
	var out SyncBuffer
	go func() {
		time.Sleep(2 * Poll)
		out.Write([]byte("level=INFO msg=\"sensor started\"\n"))
	}()
	WaitForText(t, 10*time.Second, &out, "sensor started")
}
