package binid

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/lineaged/lineaged/lineage"
	"github.com/lineaged/lineaged/lineage/event"
	"github.com/lineaged/lineaged/sensor"
	"github.com/lineaged/lineaged/sensor/procfs"
)

// Config bounds hashing. It is also the hashing section of lineaged's
// configuration: the mapstructure tags are the keys, and fields tagged "-"
// are set by the program, not configured.
type Config struct {
	// ProcRoot is the /proc to read executables through; default "/proc".
	ProcRoot string `mapstructure:"-"`
	// Workers bounds concurrent hashing; default 2.
	Workers int `mapstructure:"workers"`
	// MaxBytes: larger binaries get verdict error instead of a hash;
	// default 1 GiB.
	MaxBytes int64 `mapstructure:"max_bytes"`
	// MaxBytesUser is the lower limit for files that neither root nor a
	// package owns (any user can make a large file cheaply); default
	// 128 MiB, never above MaxBytes.
	MaxBytesUser int64 `mapstructure:"max_bytes_user"`
	// Timeout bounds one hash; default 10s.
	Timeout time.Duration `mapstructure:"timeout"`
	// Queue bounds the hashes waiting for a worker (default 256), and
	// QueuePerUser those of one file owner other than root (default 32):
	// a request beyond either gets verdict error at once.
	Queue        int `mapstructure:"queue"`
	QueuePerUser int `mapstructure:"queue_per_user"`
	// MaxCached bounds each cache (hashes by file identity, verdicts);
	// default 16384.
	MaxCached int `mapstructure:"-"`
	// CacheDir keeps the hash cache across restarts (persist.go): a
	// directory of its own, 0700, holding one 0600 file; "" keeps it in
	// memory only.
	CacheDir string `mapstructure:"cache_dir"`
	// SaveInterval is how often a changed cache is saved; default 1m.
	// It is always saved at Close.
	SaveInterval time.Duration `mapstructure:"-"`
	// CacheBytes bounds the cache file's records; default 8 MiB.
	CacheBytes int `mapstructure:"-"`
	// HoldExec lists the images a session member is stopped at exec
	// for, to be hashed before they run: "memfd" (a file with no path,
	// memfd_create + fexecve), "deleted" (an unlinked file) and "unseen"
	// (a file on disk not hashed and allowed since the sensor started:
	// the first exec of each image). The process is continued once
	// hashed, or killed when a deny_exec sha256: entry names its hash
	// (docs/rules.md). Default empty: no hold.
	HoldExec []string `mapstructure:"hold_exec"`
	// HoldTimeout bounds a hold: a process whose image is not hashed in
	// time is continued unhashed by the hold (more than 0, at most 1m;
	// default 3s).
	HoldTimeout time.Duration `mapstructure:"hold_timeout"`
}

// Inspector implements lineage.BinaryInspector.
type Inspector struct {
	cfg    Config
	policy atomic.Pointer[TrustPolicy] // swapped by SetTrustPolicy
	pkgs   PackageDB
	log    *slog.Logger
	sched  *sched
	// bgSem lets background work (the seed) use one worker at a time, so
	// hashes live events wait for are not queued behind it.
	bgSem chan struct{}

	mu     sync.Mutex
	hashes map[sensor.FileStat]*Digests
	// limited remembers files over a size or time limit, so a huge binary
	// exec'd in a loop is not read again each time.
	limited  map[sensor.FileStat]*event.Binary
	verdicts map[verdictKey]*verdictEntry
	// inflight holds the file identities being hashed, closed when done:
	// a second request for one (the hold at exec and the engine, for the
	// same exec) waits for the first and takes its digests from the cache
	// instead of reading the file again.
	inflight map[sensor.FileStat]chan struct{}

	// store persists the hashes (nil: memory only); hashed counts files
	// read and hashed.
	store     *store
	closeOnce sync.Once
	hashed    atomic.Uint64
	queueFull atomic.Uint64
}

type verdictKey struct {
	sha     [32]byte
	path    string
	policy  string
	pkgGen  uint64
	deleted bool
}

// New builds an inspector. policy may be nil (no trusted keys, no
// signature lookups); pkgs may be nil (no package database).
func New(cfg Config, policy *TrustPolicy, pkgs PackageDB, log *slog.Logger) (*Inspector, error) {
	if log == nil {
		return nil, fmt.Errorf("binid: nil logger")
	}
	if cfg.ProcRoot == "" {
		cfg.ProcRoot = "/proc"
	}
	if cfg.Workers == 0 {
		cfg.Workers = 2
	}
	if cfg.MaxBytes == 0 {
		cfg.MaxBytes = 1 << 30
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 10 * time.Second
	}
	if cfg.MaxBytesUser == 0 {
		cfg.MaxBytesUser = 128 << 20
	}
	cfg.MaxBytesUser = min(cfg.MaxBytesUser, cfg.MaxBytes)
	if cfg.Queue == 0 {
		cfg.Queue = 256
	}
	if cfg.QueuePerUser == 0 {
		cfg.QueuePerUser = 32
	}
	if cfg.MaxCached == 0 {
		cfg.MaxCached = 16384
	}
	if cfg.SaveInterval == 0 {
		cfg.SaveInterval = defaultSaveInterval
	}
	if cfg.CacheBytes == 0 {
		cfg.CacheBytes = defaultCacheBytes
	}
	if cfg.Workers < 0 || cfg.MaxBytes < 0 || cfg.MaxBytesUser < 0 || cfg.Queue < 0 || cfg.QueuePerUser < 0 || cfg.Timeout < 0 || cfg.MaxCached < 0 || cfg.SaveInterval < 0 || cfg.CacheBytes < 0 {
		return nil, fmt.Errorf("binid: negative limit in %+v", cfg)
	}
	if policy == nil {
		policy = &TrustPolicy{Version: "none", MaxSigBytes: 1 << 20}
	}
	in := &Inspector{
		cfg: cfg, pkgs: pkgs, log: log.With("component", "binid"),
		sched:    newSched(cfg.Workers, cfg.Queue, cfg.QueuePerUser),
		bgSem:    make(chan struct{}, 1),
		hashes:   make(map[sensor.FileStat]*Digests),
		inflight: make(map[sensor.FileStat]chan struct{}),
		limited:  make(map[sensor.FileStat]*event.Binary),
		verdicts: make(map[verdictKey]*verdictEntry),
	}
	in.policy.Store(policy)
	if cfg.CacheDir != "" {
		// Each record is kept under two keys (both dev_t encodings), and
		// MaxCached bounds the keys: records fill at most half of it, so
		// a full file is not wiped by the reset the next hash would
		// trigger at the bound.
		st, err := openStore(cfg.CacheDir, max(cfg.MaxCached/4, 1), cfg.CacheBytes, in.log)
		if err != nil {
			// Only slower: every binary is hashed again after a restart.
			in.log.Error("binary hash cache not kept across restarts", "err", err)
		} else {
			in.store = st
			in.loadCache() // drops the store when its directory is unfit
		}
		if in.store != nil {
			in.loadTaints() // taint.go
			go in.persist(cfg.SaveInterval)
		}
	}
	return in, nil
}

// Close saves the hash cache when it changed (kept in CacheDir) and
// stops its periodic save; a failure is logged, as the cache only saves
// work.
func (in *Inspector) Close() {
	in.closeOnce.Do(func() {
		if in.store == nil {
			return
		}
		close(in.store.stop)
		<-in.store.done
		if !in.store.dirty.Load() {
			return
		}
		if err := in.saveCache(); err != nil {
			in.log.Error("saving the binary hash cache", "err", err)
		}
	})
}

var _ lineage.BinaryInspector = (*Inspector)(nil)

func (in *Inspector) pkgGen() uint64 {
	if in.pkgs == nil {
		return 0
	}
	return in.pkgs.Generation()
}

// Cached implements lineage.BinaryInspector: a hit costs two map lookups
// and no system call (the package database's change check is rate-limited).
func (in *Inspector) Cached(req lineage.BinaryRequest) (*event.Binary, bool) {
	if !req.HasStat {
		return nil, false
	}
	gen := in.pkgGen()
	in.mu.Lock()
	defer in.mu.Unlock()
	if b, ok := in.limited[req.Stat]; ok {
		return b, true
	}
	d := in.hashes[req.Stat]
	if d == nil {
		return nil, false
	}
	v := in.verdicts[in.vkey(d, req.Path, gen)]
	if v == nil || !in.sigsUnchanged(v, req.Path, d) {
		return nil, false
	}
	return v.b, true
}

// verdictEntry is a cached verdict and the state of the signature files it
// was judged on.
type verdictEntry struct {
	b       *event.Binary
	sigs    string
	checked time.Time
}

// sigRecheck is how long a cached verdict is used before its signature
// files are looked at again: a hit costs no system call within it.
const sigRecheck = time.Second

// sigsUnchanged reports whether the signature files of a cached verdict
// are still the ones it was judged on, looking again at most once per
// sigRecheck; in.mu is held.
func (in *Inspector) sigsUnchanged(v *verdictEntry, path string, d *Digests) bool {
	now := time.Now()
	if now.Sub(v.checked) < sigRecheck {
		return true
	}
	if in.policy.Load().sigFingerprint(path, d.SHA256) != v.sigs {
		return false
	}
	v.checked = now
	return true
}

func (in *Inspector) vkey(d *Digests, path string, gen uint64) verdictKey {
	var k verdictKey
	copy(k.sha[:], d.SHA256)
	k.path, k.policy, k.pkgGen = path, in.policy.Load().Version, gen
	return k
}

// Inspect implements lineage.BinaryInspector: the file's digests (from the
// cache when it has the ones needed, else hashed), then its verdict (from
// the cache, else judged).
func (in *Inspector) Inspect(ctx context.Context, req lineage.BinaryRequest) *event.Binary {
	if req.ByPath {
		// The file the path names now, symlinks resolved as the loader
		// resolves them: the package database and deny_exec know it by
		// that path (/usr/bin/curl for /bin/curl on a merged /usr).
		if r, err := filepath.EvalSymlinks(req.Path); err == nil && filepath.IsAbs(r) {
			req.Path = r
		}
	}
	gen := in.pkgGen()
	var claim PackageFile
	var claimed bool
	if in.pkgs != nil && req.Path != "" {
		claim, claimed = in.pkgs.Lookup(req.Path)
	}
	needMD5 := claimed && claim.Algo == "md5"
	needSHA512 := in.policy.Load().needsSHA512()

	d := in.cachedDigests(req, needMD5, needSHA512)
	if d == nil && req.HasStat && !req.ByPath {
		// One read per file at a time: wait for a hash under way.
		in.mu.Lock()
		wait, busy := in.inflight[req.Stat]
		if !busy {
			done := make(chan struct{})
			in.inflight[req.Stat] = done
			defer func() {
				in.mu.Lock()
				delete(in.inflight, req.Stat)
				in.mu.Unlock()
				close(done)
			}()
		}
		in.mu.Unlock()
		if busy {
			select {
			case <-wait:
			case <-ctx.Done():
			}
			d = in.cachedDigests(req, needMD5, needSHA512)
		}
	}
	if d == nil {
		// A background request keeps the background slot until its
		// verdict is made, so the seed inspects one binary at a time.
		if req.Background {
			select {
			case in.bgSem <- struct{}{}:
				defer func() { <-in.bgSem }()
			case <-ctx.Done():
				return in.errorBinary(req, fmt.Sprintf("hashing not started: %v", ctx.Err()))
			}
		}
		var failed *event.Binary
		if d, failed = in.hash(ctx, req, needMD5, needSHA512, claimed); failed != nil {
			return failed
		}
	}
	return in.verdict(req, d, gen, claim, claimed)
}

// cachedDigests returns the cached digests of the file req names, or nil
// when it must be hashed: not cached, no stat to key the cache by, or a
// digest needed that was not computed.
func (in *Inspector) cachedDigests(req lineage.BinaryRequest, needMD5, needSHA512 bool) *Digests {
	in.mu.Lock()
	d := in.hashes[req.Stat]
	in.mu.Unlock()
	if d == nil || !req.HasStat || (needMD5 && d.MD5 == nil) || (needSHA512 && d.SHA512 == nil) {
		return nil
	}
	return d
}

// hash hashes the file req names in a worker slot, within the hashing
// timeout, and caches the digests. On failure it returns the error
// binary to answer with instead. The file is opened first: its owner
// decides its place in the queue and its size limit.
func (in *Inspector) hash(ctx context.Context, req lineage.BinaryRequest, needMD5, needSHA512, claimed bool) (*Digests, *event.Binary) {
	r := hashRequest{
		procRoot: in.cfg.ProcRoot, pid: req.PID, path: req.Path, stat: req.Stat, hasStat: req.HasStat, byPath: req.ByPath,
		md5: needMD5, sha512: needSHA512, maxBytes: in.cfg.MaxBytes,
	}
	f, st, err := openExec(r)
	if err != nil {
		return nil, in.hashFailed(ctx, req, err)
	}
	defer f.Close()
	uid, high := ownerOf(f), claimed
	high = high || uid == 0
	if !high {
		r.maxBytes = in.cfg.MaxBytesUser
	}
	if r.maxBytes > 0 && st.Size > r.maxBytes {
		return nil, in.hashFailed(ctx, req, limitErr{fmt.Sprintf("binary is %d bytes, over the hashing limit of %d for a file of uid %d", st.Size, r.maxBytes, uid)})
	}
	if err := in.sched.acquire(ctx, high, uid); err != nil {
		if errors.Is(err, errQueueFull) {
			in.queueFull.Add(1)
			return nil, in.errorBinary(req, fmt.Sprintf("hashing not started: %v (file of uid %d)", err, uid))
		}
		return nil, in.errorBinary(req, fmt.Sprintf("hashing not started: %v", err))
	}
	hctx, cancel := context.WithTimeout(ctx, in.cfg.Timeout)
	d, err := hashOpen(hctx, f, st, r)
	cancel()
	in.sched.release(high)
	if err != nil {
		return nil, in.hashFailed(ctx, req, err)
	}
	in.hashed.Add(1)
	in.remember(d, req.Path)
	in.mu.Lock()
	if len(in.hashes) >= in.cfg.MaxCached {
		clear(in.hashes) // rare; a full reset keeps the bound simple
	}
	in.hashes[d.Stat] = d
	if req.HasStat {
		in.hashes[req.Stat] = d
	}
	in.mu.Unlock()
	return d, nil
}

// ownerOf is the uid owning an open file (0 when fstat fails: the file is
// then hashed under the general limit, never refused for it).
func ownerOf(f *os.File) uint32 {
	var st syscall.Stat_t
	if syscall.Fstat(int(f.Fd()), &st) != nil {
		return 0
	}
	return st.Uid
}

// QueueFull counts hash requests refused because the queue was full.
func (in *Inspector) QueueFull() uint64 { return in.queueFull.Load() }

// hashFailed turns a hashing error into the error binary, remembering it
// when the file itself is over a limit so it is not read again each exec.
// Only the file's own limits are remembered, not a caller that gave up.
func (in *Inspector) hashFailed(ctx context.Context, req lineage.BinaryRequest, err error) *event.Binary {
	b := in.errorBinary(req, err.Error())
	if errors.Is(err, ErrVanished) {
		if why := neverHashed(req.ExeFlags); why != "" {
			b.Reason = why
		}
	}
	if errors.Is(err, errLimit) && req.HasStat && ctx.Err() == nil {
		in.mu.Lock()
		if len(in.limited) >= in.cfg.MaxCached {
			clear(in.limited)
		}
		in.limited[req.Stat] = b
		in.mu.Unlock()
	}
	return b
}

// verdict returns the binary for digests d at req.Path, judged once per
// digest, path, trust policy and package database generation.
func (in *Inspector) verdict(req lineage.BinaryRequest, d *Digests, gen uint64, claim PackageFile, claimed bool) *event.Binary {
	k := in.vkey(d, req.Path, gen)
	in.mu.Lock()
	if v := in.verdicts[k]; v != nil && in.sigsUnchanged(v, req.Path, d) {
		in.mu.Unlock()
		return v.b
	}
	in.mu.Unlock()
	sigs := in.policy.Load().sigFingerprint(req.Path, d.SHA256)

	b := &event.Binary{
		Path: req.Path, SHA256: hexs(d.SHA256), Size: d.Stat.Size, Inode: d.Stat.Inode,
		Dev: d.Stat.Dev, Mtime: nsTime(d.Stat.MtimeNs),
	}
	in.judge(b, req.Path, d, claim, claimed)
	in.mu.Lock()
	if len(in.verdicts) >= in.cfg.MaxCached {
		clear(in.verdicts)
	}
	in.verdicts[k] = &verdictEntry{b: b, sigs: sigs, checked: time.Now()}
	in.mu.Unlock()
	return b
}

// judge fills the verdict: a signature decides when one exists, then the
// package database, else unsigned.
func (in *Inspector) judge(b *event.Binary, path string, d *Digests, claim PackageFile, claimed bool) {
	if sv := in.policy.Load().verify(path, d); sv.found {
		b.Verdict, b.Signer, b.KeyID, b.Reason = sv.verdict, sv.signer, sv.keyID, sv.reason
		return
	}
	if claimed && !hostFileIs(path, d.Stat) {
		// The claim is about the file at path as the host sees it; the
		// process saw another one there (its root or mount namespace is
		// elsewhere, or the path was replaced since the exec).
		b.Verdict = event.VerdictUnsigned
		b.Reason = fmt.Sprintf("package %s lists %s, but the host's file there is not the file that was executed", claim.Package, path)
		return
	}
	if claimed {
		b.Package = claim.Package
		var got []byte
		switch claim.Algo {
		case "md5":
			got = d.MD5
		case "sha256":
			got = d.SHA256
		}
		if got != nil && bytes.Equal(got, claim.Digest) {
			b.Verdict = event.VerdictPackageVerified
			if u, ok := in.pkgs.(untrustedDB); ok && u.Untrusted(claim) {
				b.Verdict = event.VerdictPackageUntrusted
				b.Reason = fmt.Sprintf("package %s's record of %s was written outside the package manager", claim.Package, path)
			}
			return
		}
		b.Verdict = event.VerdictPackageModified
		b.Reason = fmt.Sprintf("%s digest differs from the one package %s recorded for %s", claim.Algo, claim.Package, path)
		return
	}
	b.Verdict = event.VerdictUnsigned
}

func (in *Inspector) errorBinary(req lineage.BinaryRequest, reason string) *event.Binary {
	return &event.Binary{
		Path: req.Path, Size: req.Stat.Size, Inode: req.Stat.Inode, Dev: req.Stat.Dev,
		Mtime: nsTime(req.Stat.MtimeNs), Verdict: event.VerdictError, Reason: reason,
	}
}

// hostFileIs reports whether path, resolved from the sensor's own root,
// is the file st describes. Paths come from the kernel relative to the
// process's root, so a chrooted or containerised process names files the
// host's package database knows under the same path but does not hold.
func hostFileIs(path string, st sensor.FileStat) bool {
	info, err := os.Stat(strings.TrimSuffix(path, " (deleted)"))
	if err != nil {
		return false
	}
	sys, ok := info.Sys().(*syscall.Stat_t)
	return ok && sameImage(st, procfs.FileStatOf(sys))
}

// SetTrustPolicy puts a new set of trusted keys and signature directory in
// force (a SIGHUP reload). Verdicts are cached per policy version, so every
// binary is judged again under the new one. Safe for concurrent use.
func (in *Inspector) SetTrustPolicy(p *TrustPolicy) {
	if p != nil {
		in.policy.Store(p)
	}
}

// neverHashed says why a binary that vanished before it was read was never
// hashed, when its exec said it had no path or an unlinked one: only the
// process held it, and the process was gone (a memfd exec that exits at
// once). "" for an ordinary file.
func neverHashed(f sensor.ExecFlags) string {
	switch {
	case f&sensor.ExecExePseudo != 0:
		return "never hashed: the image was a memfd (a file with no path) and its process exited before it could be read"
	case f&sensor.ExecExeDeleted != 0:
		return "never hashed: the image was a deleted file and its process exited before it could be read"
	}
	return ""
}
