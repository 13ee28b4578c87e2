package binid

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/lineaged/lineaged/lineage"
	"github.com/lineaged/lineaged/sensor/procfs"
)

// logBuf is a log destination tests read while the inspector writes.
type logBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func cachedInspector(t *testing.T, cfg Config, log *logBuf) *Inspector {
	t.Helper()
	var w = &logBuf{}
	if log != nil {
		w = log
	}
	in, err := New(cfg, nil, nil, slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug})))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(in.Close)
	return in
}

// hashedOnce runs a copy of sleep, inspects it with an inspector keeping
// its cache in dir, and closes that inspector (as the sensor's stop does).
func hashedOnce(t *testing.T, dir, bin string) (lineage.BinaryRequest, string) {
	t.Helper()
	cmd, p := running(t, bin, "30")
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	in := cachedInspector(t, Config{CacheDir: dir}, nil)
	b := in.Inspect(context.Background(), request(p))
	if b.SHA256 != sha256File(t, bin) || in.hashed.Load() != 1 {
		t.Fatalf("first run: %+v, %d hashes", b, in.hashed.Load())
	}
	in.Close()
	return request(p), b.SHA256
}

// A restart answers a binary hashed by the previous run from the cache
// file, without reading the binary: under the stat(2) key the /proc seed
// uses and under the kernel's dev_t encoding that exec events carry.
func TestCacheSurvivesRestart(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state", "binid")
	bin := filepath.Join(t.TempDir(), "sleep")
	copyFile(t, "/usr/bin/sleep", bin, []byte("restart"))
	req, sum := hashedOnce(t, dir, bin)

	for path, want := range map[string]os.FileMode{dir: 0o700, filepath.Join(dir, cacheFileName): 0o600} {
		st, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != want {
			t.Errorf("%s mode %v, want %v", path, st.Mode().Perm(), want)
		}
	}
	leftovers, _ := filepath.Glob(filepath.Join(dir, "*.tmp-*"))
	if len(leftovers) > 0 {
		t.Errorf("temporary files left: %v", leftovers)
	}

	var log logBuf
	in := cachedInspector(t, Config{CacheDir: dir}, &log)
	if !strings.Contains(log.String(), "binary hash cache loaded") || !strings.Contains(log.String(), "entries=1 stale=0") {
		t.Fatalf("log: %s", log.String())
	}
	b := in.Inspect(context.Background(), req)
	if b.SHA256 != sum || in.hashed.Load() != 0 {
		t.Fatalf("after the restart: %+v, %d hashes (want the cached digest, none)", b, in.hashed.Load())
	}
	kreq := req
	kreq.Stat.Dev = kernelDev(req.Stat.Dev)
	if procfs.KernelDev(kreq.Stat.Dev) != req.Stat.Dev {
		t.Fatalf("kernelDev(%#x) = %#x does not invert procfs.KernelDev", req.Stat.Dev, kreq.Stat.Dev)
	}
	if in.cachedDigests(kreq, false, false) == nil {
		t.Error("not cached under the kernel's dev_t encoding")
	}
}

// A file rewritten in place after it was hashed, with the same size and
// its mtime put back (touch -d), is not taken from the cache: its ctime
// (and btime, where recorded) differ, the record is dropped at load and
// the next exec of it is hashed again.
func TestCacheRehashesModifiedFile(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(t.TempDir(), "sleep")
	copyFile(t, "/usr/bin/sleep", bin, []byte("A"))
	oldReq, oldSum := hashedOnce(t, dir, bin)

	before, err := os.Stat(bin)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)-1] = 'B'
	time.Sleep(10 * time.Millisecond) // a ctime the clock can tell apart
	f, err := os.OpenFile(bin, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(b[len(b)-1:], int64(len(b)-1)); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if err := os.Chtimes(bin, time.Time{}, before.ModTime()); err != nil {
		t.Fatal(err)
	}
	after, _ := os.Stat(bin)
	bs, as := before.Sys().(*syscall.Stat_t), after.Sys().(*syscall.Stat_t)
	if as.Ino != bs.Ino || as.Size != bs.Size || as.Mtim != bs.Mtim {
		t.Fatalf("the rewrite changed more than the content: %+v -> %+v", bs, as)
	}

	var log logBuf
	in := cachedInspector(t, Config{CacheDir: dir}, &log)
	if !strings.Contains(log.String(), "entries=0 stale=1") {
		t.Fatalf("the rewritten file's record was not dropped at load: %s", log.String())
	}
	if in.cachedDigests(oldReq, false, false) != nil {
		t.Fatal("the cache still answers for the file's old identity")
	}
	_, p := running(t, bin, "30")
	got := in.Inspect(context.Background(), request(p))
	if got.SHA256 == oldSum || got.SHA256 != sha256File(t, bin) || in.hashed.Load() != 1 {
		t.Fatalf("after the rewrite: %s (was %s), %d hashes", got.SHA256, oldSum, in.hashed.Load())
	}
}

// A record whose birth time differs from the file's is not used: a file
// created anew with every other field equal is another file.
func TestCacheChecksBirthTime(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(t.TempDir(), "sleep")
	copyFile(t, "/usr/bin/sleep", bin, nil)
	if id, ok := statxPath(bin); !ok || !id.hasBtime {
		t.Skip("the test directory's file system records no birth time")
	}
	req, _ := hashedOnce(t, dir, bin)
	path := filepath.Join(dir, cacheFileName)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	recs, err := decodeCache(b, 100)
	if err != nil || len(recs) != 1 {
		t.Fatalf("%d records: %v", len(recs), err)
	}
	recs[0].id.btimeNs++
	if err := os.WriteFile(path, encodeCache(recs), 0o600); err != nil {
		t.Fatal(err)
	}
	var log logBuf
	in := cachedInspector(t, Config{CacheDir: dir}, &log)
	if !strings.Contains(log.String(), "entries=0 stale=1") || in.cachedDigests(req, false, false) != nil {
		t.Fatalf("a record with another birth time was used: %s", log.String())
	}
}

// A cache file that is not exactly what was written (a flipped bit, cut
// short, another version, not a cache, over the size bound) is discarded
// whole, with one log line saying so, and the binary is hashed again; the
// next save replaces the file with a good one.
func TestCorruptCacheDiscarded(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "sleep")
	copyFile(t, "/usr/bin/sleep", bin, nil)
	good := t.TempDir()
	req, _ := hashedOnce(t, good, bin)
	orig, err := os.ReadFile(filepath.Join(good, cacheFileName))
	if err != nil {
		t.Fatal(err)
	}
	flip := func(i int) []byte { b := bytes.Clone(orig); b[i] ^= 1; return b }
	for _, c := range []struct {
		name, reason string
		data         []byte
		bytes        int
		saved        int // records in the file the next save writes
	}{
		{"payload bit", "checksum mismatch", flip(len(orig) - 1), 0, 1},
		{"checksum bit", "checksum mismatch", flip(30), 0, 1},
		{"truncated", "truncated", orig[:len(orig)-3], 0, 1},
		{"header only", "truncated", orig[:cacheHeaderLen], 0, 1},
		{"empty", "bad magic", nil, 0, 1},
		{"version", "version 2", append(append([]byte(cacheMagic), 2, 0, 0, 0), orig[12:]...), 0, 1},
		{"garbage", "bad magic", bytes.Repeat([]byte("x"), 500), 0, 1},
		{"over the bound", "over the bound", orig, 10, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, cacheFileName), c.data, 0o600); err != nil {
				t.Fatal(err)
			}
			var log logBuf
			in := cachedInspector(t, Config{CacheDir: dir, CacheBytes: c.bytes}, &log)
			lines := strings.Split(strings.TrimSpace(log.String()), "\n")
			if len(lines) != 1 || !strings.Contains(lines[0], "level=WARN") || !strings.Contains(lines[0], "binary hash cache discarded") || !strings.Contains(lines[0], c.reason) {
				t.Fatalf("want one warning naming %q, got:\n%s", c.reason, log.String())
			}
			if len(in.hashes) != 0 {
				t.Fatalf("%d entries taken from a discarded file", len(in.hashes))
			}
			if in.Inspect(context.Background(), req); in.hashed.Load() != 1 {
				t.Fatalf("%d hashes, want the binary hashed again", in.hashed.Load())
			}
			in.Close()
			b, _ := os.ReadFile(filepath.Join(dir, cacheFileName))
			if recs, err := decodeCache(b, 100); err != nil || len(recs) != c.saved {
				t.Fatalf("after the next save: %d records, %v", len(recs), err)
			}
		})
	}
}

// The file holds at most MaxCached/4 records (each is kept under two
// keys in memory, and fills at most half of it) and at most CacheBytes of
// them.
func TestCacheFileBounded(t *testing.T) {
	dir := t.TempDir()
	bins := t.TempDir()
	in := cachedInspector(t, Config{CacheDir: dir, MaxCached: 400}, nil)
	for _, name := range []string{"a", "b", "c", "d"} {
		bin := filepath.Join(bins, name)
		copyFile(t, "/usr/bin/sleep", bin, []byte(name))
		_, p := running(t, bin, "30")
		in.Inspect(context.Background(), request(p))
	}
	count := func(maxCached, maxBytes int) int {
		in.store.maxEntries, in.store.maxBytes = maxCached/4, maxBytes
		if err := in.saveCache(); err != nil {
			t.Fatal(err)
		}
		b, _ := os.ReadFile(filepath.Join(dir, cacheFileName))
		recs, err := decodeCache(b, 100)
		if err != nil {
			t.Fatal(err)
		}
		return len(recs)
	}
	if n := count(400, defaultCacheBytes); n != 4 {
		t.Fatalf("%d records of 4", n)
	}
	if n := count(8, defaultCacheBytes); n != 2 {
		t.Fatalf("%d records with MaxCached 8", n)
	}
	one := 6*8 + 1 + 32 + 2 + len(filepath.Join(bins, "a"))
	if n := count(400, 2*one+one/2); n != 2 {
		t.Fatalf("%d records in %d bytes", n, 2*one+one/2)
	}
}

// The cache directory is made 0700 at the first save, an existing one is
// tightened to it, and one others may write to is refused (the inspector runs without a
// persisted cache and says why).
func TestCacheDirPermissions(t *testing.T) {
	base := t.TempDir()
	loose := filepath.Join(base, "loose")
	shared := filepath.Join(base, "shared")
	for dir, mode := range map[string]os.FileMode{loose: 0o755, shared: 0o777} {
		if err := os.Mkdir(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(dir, mode); err != nil {
			t.Fatal(err)
		}
	}
	bin := filepath.Join(t.TempDir(), "sleep")
	copyFile(t, "/usr/bin/sleep", bin, nil)
	_, p := running(t, bin, "30")
	in := cachedInspector(t, Config{CacheDir: loose}, nil)
	if in.store == nil {
		t.Fatal("no store in a directory readable by others")
	}
	in.Inspect(context.Background(), request(p))
	in.Close()
	if st, _ := os.Stat(loose); st.Mode().Perm() != 0o700 {
		t.Fatalf("%s left %v", loose, st.Mode().Perm())
	}
	if st, err := os.Stat(filepath.Join(loose, cacheFileName)); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("cache file: %v, %v", st, err)
	}
	var log logBuf
	if in := cachedInspector(t, Config{CacheDir: shared}, &log); in.store != nil {
		t.Fatal("a world-writable cache directory was used")
	}
	if !strings.Contains(log.String(), "writable by others") {
		t.Fatalf("log: %s", log.String())
	}
	if st, _ := os.Stat(shared); st.Mode().Perm() != 0o777 {
		t.Fatalf("a shared directory was changed to %v", st.Mode().Perm())
	}
}
