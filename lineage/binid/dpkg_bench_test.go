package binid

import (
	"bufio"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// hostDpkg is this host's dpkg database; the benchmarks skip without it.
const hostDpkg = "/var/lib/dpkg"

func needHostDpkg(tb testing.TB) {
	tb.Helper()
	if names, _ := filepath.Glob(filepath.Join(hostDpkg, "info", "*.md5sums")); len(names) == 0 {
		tb.Skip("needs a dpkg system")
	}
}

// heapInUse is the live heap after a full collection.
func heapInUse() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// loadHost loads the host's dpkg database into a fresh Dpkg and returns
// it with the heap bytes it retains.
func loadHost(tb testing.TB) (*Dpkg, uint64) {
	tb.Helper()
	before := heapInUse()
	d := &Dpkg{Dir: hostDpkg}
	d.Lookup("/usr/bin/cat")
	if err := d.Err(); err != nil {
		tb.Fatal(err)
	}
	after := heapInUse()
	runtime.KeepAlive(d)
	if after < before {
		return d, 0
	}
	return d, after - before
}

// BenchmarkDpkgLoad loads this host's whole dpkg database (every
// info/*.md5sums) per iteration and reports the heap the loaded index
// keeps (heap-MiB: live heap after a collection, loaded minus before) and
// the CPU time of a load, every thread of the process (cpu-ms/op: on a
// shared machine it moves less than the wall time).
func BenchmarkDpkgLoad(b *testing.B) {
	needHostDpkg(b)
	var cpu time.Duration
	for b.Loop() {
		b.StopTimer()
		runtime.GC()
		c := cpuTime(b)
		b.StartTimer()
		d := &Dpkg{Dir: hostDpkg}
		d.Lookup("/usr/bin/cat")
		if err := d.Err(); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		cpu += cpuTime(b) - c
		b.StartTimer()
	}
	b.StopTimer()
	_, kept := loadHost(b)
	b.ReportMetric(float64(kept)/(1<<20), "heap-MiB")
	b.ReportMetric(float64(cpu.Microseconds())/1e3/float64(b.N), "cpu-ms/op")
	if peak, ok := loadPeak(b); ok {
		b.ReportMetric(float64(peak)/(1<<20), "peak-MiB")
	}
}

// loadPeak is how far a load of the host's database raises the resident
// size at its peak (VmHWM, reset through /proc/self/clear_refs, over the
// resident size before): what the load costs the sensor's peak RSS. False
// when the peak cannot be reset.
func loadPeak(tb testing.TB) (int64, bool) {
	tb.Helper()
	runtime.GC()
	debug.FreeOSMemory()
	before := procStatus(tb, "VmRSS")
	if err := os.WriteFile("/proc/self/clear_refs", []byte("5"), 0); err != nil {
		return 0, false
	}
	d := &Dpkg{Dir: hostDpkg}
	d.Lookup("/usr/bin/cat")
	peak := procStatus(tb, "VmHWM")
	runtime.KeepAlive(d)
	return peak - before, true
}

// procStatus is a size line of /proc/self/status, in bytes.
func procStatus(tb testing.TB, key string) int64 {
	tb.Helper()
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		tb.Fatal(err)
	}
	for l := range strings.Lines(string(b)) {
		if rest, ok := strings.CutPrefix(l, key+":"); ok {
			f := strings.Fields(rest)
			if n, err := strconv.ParseInt(f[0], 10, 64); err == nil && len(f) == 2 && f[1] == "kB" {
				return n << 10
			}
		}
	}
	tb.Fatalf("no %s in /proc/self/status", key)
	return 0
}

// cpuTime is the process's user and system time so far.
func cpuTime(tb testing.TB) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		tb.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// lookupSample is paths to look up in the host's database: every 97th
// path its md5sums files list, as listed and under its usrmerge alias,
// and as many that no package lists.
func lookupSample(tb testing.TB) []string {
	tb.Helper()
	names, _ := filepath.Glob(filepath.Join(hostDpkg, "info", "*.md5sums"))
	var out []string
	n := 0
	for _, name := range names {
		f, err := os.Open(name)
		if err != nil {
			tb.Fatal(err)
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if n++; n%97 != 0 || len(sc.Text()) < 35 {
				continue
			}
			p := "/" + strings.TrimLeft(sc.Text()[34:], "/")
			out = append(out, Aliases(p)...)
			out = append(out, p+".missing", "/nonexistent"+p)
		}
		f.Close()
	}
	return out
}

// BenchmarkDpkgLookup is one Lookup in the loaded host database: a mix of
// paths as listed, their usrmerge aliases and paths no package lists.
func BenchmarkDpkgLookup(b *testing.B) {
	needHostDpkg(b)
	paths := lookupSample(b)
	d := &Dpkg{Dir: hostDpkg}
	d.Lookup("/usr/bin/cat")
	hits := 0
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if _, ok := d.Lookup(paths[i%len(paths)]); ok {
			hits++
		}
		i++
	}
	if hits == 0 {
		b.Fatal("no path found")
	}
}

// TestDpkgHostIndexSize logs the heap this host's loaded dpkg index keeps,
// and the resident size a load adds at its peak (go test -v -run
// DpkgHostIndexSize).
func TestDpkgHostIndexSize(t *testing.T) {
	needHostDpkg(t)
	_, kept := loadHost(t)
	t.Logf("host dpkg index: %.2f MiB of heap", float64(kept)/(1<<20))
	if peak, ok := loadPeak(t); ok {
		t.Logf("a load raises the resident size by %.1f MiB at its peak", float64(peak)/(1<<20))
	}
}
