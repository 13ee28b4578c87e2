package binid

import (
	"context"
	"path/filepath"
	"sync"
	"testing"

	"github.com/lineaged/lineaged/lineage"
	"github.com/lineaged/lineaged/lineage/event"
)

// Two inspections of one image at once (the hold at exec and the engine,
// for the same exec) read it once: the second waits for the first's hash.
// Before, both read it (hashed counted 2).
func TestConcurrentInspectionsHashOnce(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "big-cat")
	copyFile(t, "/bin/cat", bin, make([]byte, 64<<20)) // long enough to overlap
	_, p := catRunning(t, bin)
	in := newInspector(t, Config{Workers: 2}, nil, nil)
	req := request(p)
	var wg sync.WaitGroup
	res := make([]*event.Binary, 2)
	for i := range res {
		wg.Add(1)
		go func(i int, req lineage.BinaryRequest) {
			defer wg.Done()
			res[i] = in.Inspect(context.Background(), req)
		}(i, req)
	}
	wg.Wait()
	if res[0].SHA256 == "" || res[0].SHA256 != res[1].SHA256 {
		t.Fatalf("results %+v and %+v: want the same hash", res[0], res[1])
	}
	if n := in.hashed.Load(); n != 1 {
		t.Errorf("image read %d times, want once", n)
	}
}
