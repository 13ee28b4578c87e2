package binid

import (
	"context"
	"testing"

	"github.com/lineaged/lineaged/lineage/event"
)

// BenchmarkBinaryIdentity compares the cache hit the engine takes for every
// exec of a known binary with the miss (hash of /usr/bin/sleep plus the dpkg
// verdict) it replaces, in the same run.
func BenchmarkBinaryIdentity(b *testing.B) {
	_, p := running(b, "/usr/bin/sleep", "30")
	req := request(p)
	db := &Dpkg{Dir: "/var/lib/dpkg"}
	var hit float64
	b.Run("hit", func(b *testing.B) {
		in, _ := New(Config{}, nil, db, quiet())
		if in.Inspect(context.Background(), req).Verdict != event.VerdictPackageVerified {
			b.Fatal("not package-verified")
		}
		b.ReportAllocs()
		for b.Loop() {
			if _, ok := in.Cached(req); !ok {
				b.Fatal("miss")
			}
		}
		hit = float64(b.Elapsed().Nanoseconds()) / float64(b.N)
	})
	b.Run("miss", func(b *testing.B) {
		for b.Loop() {
			in, _ := New(Config{}, nil, db, quiet())
			if in.Inspect(context.Background(), req).SHA256 == "" {
				b.Fatal("no hash")
			}
		}
		miss := float64(b.Elapsed().Nanoseconds()) / float64(b.N)
		if hit > 0 {
			b.ReportMetric(miss/hit, "x-hit-cost")
		}
	})
}
