//go:build linux && (386 || amd64 || arm64)

package kernel

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/cilium/ebpf/ringbuf"
	"golang.org/x/sys/unix"

	"github.com/lineaged/lineaged/tests/testutil"
)

// The file program follows the batched wakeup policy (bpf/lib/wakeup.h): a
// reader blocked on the ring is woken by the first record after a quiet
// flush interval, and not by records inside one, which it collects when
// its own poll deadline comes.
func TestFileIOWakeupsBatched(t *testing.T) {
	testutil.RequireRoot(t, "to load BPF programs")
	// Woken, the reader returns well before its deadline; not woken, at
	// it (epoll may round it down by a little).
	const deadline, woken = 3 * time.Second, 2 * time.Second
	for _, c := range []struct {
		name  string
		quiet bool // the last wakeup is older than the flush interval
	}{{"inside a flush interval", false}, {"after a quiet interval", true}} {
		t.Run(c.name, func(t *testing.T) {
			e := loadFIOEnvWake(t, 0, wakeupPolicy{FlushNs: uint64(time.Hour), Bytes: 1 << 30})
			var ts unix.Timespec
			if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
				t.Fatal(err)
			}
			last := uint64(ts.Nano()) // bpf_ktime_get_ns's clock
			if c.quiet {
				// A flush interval and more ago, in the program's
				// unsigned arithmetic: on a machine up for less than
				// the interval this wraps, and now - last still is.
				last -= uint64(time.Hour) + 1
			}
			if err := e.obj.objs.RingbufWakeup.Put(uint32(0), last); err != nil {
				t.Fatal(err)
			}
			d := t.TempDir()
			if err := os.WriteFile(filepath.Join(d, "existing"), nil, 0o644); err != nil {
				t.Fatal(err)
			}
			child := e.startChild("opens", d, fioMarker(d))
			e.join(child)

			got := make(chan time.Duration, 1)
			start := time.Now()
			e.rd.SetDeadline(start.Add(deadline))
			go func() {
				var rec ringbuf.Record
				if err := e.rd.ReadInto(&rec); err != nil {
					t.Errorf("read: %v", err)
				}
				got <- time.Since(start)
			}()
			time.Sleep(200 * time.Millisecond) // the reader blocks first
			child.run(t)
			took := <-got
			if c.quiet && took >= woken {
				t.Errorf("first record after a quiet interval read after %s: no wakeup", took)
			}
			if !c.quiet && took < woken {
				t.Errorf("record inside a flush interval read after %s: it woke the reader", took)
			}
		})
	}
}
