package binid

import (
	"context"
	"crypto/rand"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/lineaged/lineaged/lineage"
	"github.com/lineaged/lineaged/lineage/event"
	"github.com/lineaged/lineaged/sensor/procfs"
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

// BenchmarkStartupIdentity is the first identity of a large executable
// after a sensor start (a 400 MB file, the size of Claude Code's binary,
// or the file LINEAGED_BENCH_BINARY names): cold, hashing it, against a
// start that finds it in the persisted cache. Both include building the
// inspector (the warm one loads and verifies the cache file). The file is
// in the page cache for both: a cold disk adds its read time to the cold
// start only. The ratio is x-cold-cost on the warm run.
func BenchmarkStartupIdentity(b *testing.B) {
	path := os.Getenv("LINEAGED_BENCH_BINARY")
	if path == "" {
		path = filepath.Join(b.TempDir(), "agent")
		block := make([]byte, 1<<20)
		if _, err := rand.Read(block); err != nil {
			b.Fatal(err)
		}
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o700)
		if err != nil {
			b.Fatal(err)
		}
		for range 400 {
			if _, err := f.Write(block); err != nil {
				b.Fatal(err)
			}
		}
		if err := f.Close(); err != nil {
			b.Fatal(err)
		}
	}
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		b.Fatal(err)
	}
	// No such process: the file is read through its path, checked
	// against the stat, as for a process that has exited.
	req := lineage.BinaryRequest{PID: 1 << 30, Path: path, Stat: procfs.FileStatOf(&st), HasStat: true}
	dir := b.TempDir()
	start := func(b *testing.B) *Inspector {
		in, err := New(Config{CacheDir: dir}, nil, nil, quiet())
		if err != nil {
			b.Fatal(err)
		}
		if bin := in.Inspect(context.Background(), req); bin.SHA256 == "" {
			b.Fatalf("no hash: %+v", bin)
		}
		return in
	}
	var cold float64
	b.Run("cold", func(b *testing.B) {
		for b.Loop() {
			if err := os.RemoveAll(filepath.Join(dir, cacheFileName)); err != nil {
				b.Fatal(err)
			}
			in := start(b)
			if in.hashed.Load() != 1 {
				b.Fatal("not hashed")
			}
			b.StopTimer()
			in.Close() // leaves the cache for the warm run
			b.StartTimer()
		}
		cold = float64(b.Elapsed().Nanoseconds()) / float64(b.N)
	})
	b.Run("persisted", func(b *testing.B) {
		for b.Loop() {
			in := start(b)
			if in.hashed.Load() != 0 {
				b.Fatal("hashed again")
			}
			b.StopTimer()
			in.Close()
			b.StartTimer()
		}
		warm := float64(b.Elapsed().Nanoseconds()) / float64(b.N)
		if cold > 0 {
			b.ReportMetric(cold/warm, "x-cold-cost")
		}
	})
}
