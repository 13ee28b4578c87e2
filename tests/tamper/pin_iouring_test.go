package tamper

import (
	"testing"

	"github.com/lineaged/lineaged/sensor/kernel"
	"github.com/lineaged/lineaged/tests/testutil"
)

// The file, network and io_uring objects are pinned and taken back too: a
// restart on the same pin path reuses every one of them.
func TestRootPinnedStateWithFileObjects(t *testing.T) {
	testutil.RequireRoot(t, "to load and pin BPF programs")
	path := pinPath(t)
	cfg := kernel.Config{PinPath: path}
	first := startKernel(t, cfg)
	if st := first.s.PinState(); st != kernel.PinFresh {
		t.Fatalf("first start: pin state %q, want %q", st, kernel.PinFresh)
	}
	first.stop()
	second := startKernel(t, cfg)
	if st := second.s.PinState(); st != kernel.PinReused {
		t.Fatalf("restart: pin state %q, want %q", st, kernel.PinReused)
	}
}
