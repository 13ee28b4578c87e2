//go:build linux && amd64

package files

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/lineaged/lineaged/sensor"
	"golang.org/x/sys/unix"
)

// rmdir(2) removes a directory as unlinkat(AT_REMOVEDIR) does, and is
// reported the same way: a file.delete with AT_REMOVEDIR in its flags.
func TestRootRmdirReported(t *testing.T) {
	s, r := runSensor(t)
	dir := tempDir(t)
	gone := filepath.Join(dir, "emptied")
	if err := os.Mkdir(gone, 0o700); err != nil {
		t.Fatal(err)
	}
	files, _ := member(t, s, r, "rmdir", dir)
	unlinks := ops(files, sensor.FileUnlink)
	if len(unlinks) != 1 {
		t.Fatalf("%d delete records, want 1", len(unlinks))
	}
	if f := unlinks[0]; f.Path != gone || f.Flags != unix.AT_REMOVEDIR || f.Result != 0 {
		t.Errorf("rmdir: %s flags %#x, want %s with AT_REMOVEDIR", describe(f), f.Flags, gone)
	}
}
