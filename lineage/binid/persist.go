package binid

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// The persisted hash cache: the digests of files hashed in earlier runs,
// kept in Config.CacheDir so a restart does not read a 400 MB agent binary
// again. Only digests are kept, never verdicts: a verdict depends on the
// trusted keys, the signature directory's content and the package
// database, any of which may change between runs, and judging a known
// digest again costs a signature lookup and a map lookup, not a read of
// the file.
//
// The file is a header (magic, version, record count, payload length,
// SHA-256 of the payload) followed by the records. A file that does not
// match its header in every respect is discarded whole with one log line;
// a record is used only if the file at its path still has the identity
// recorded (statx: dev, inode, size, mtime, ctime and btime).
const (
	cacheFileName       = "hashes.cache"
	cacheMagic          = "LGDBINID"
	cacheVersion        = 1
	cacheHeaderLen      = 8 + 4 + 4 + 8 + sha256.Size
	defaultCacheBytes   = 8 << 20
	defaultSaveInterval = time.Minute
	maxCachedPath       = 4096
)

const (
	recBtime = 1 << iota
	recMD5
	recSHA512
)

// store is where the inspector's hash cache persists.
type store struct {
	dir, path  string
	maxEntries int
	maxBytes   int
	log        *slog.Logger
	saveMu     sync.Mutex
	dirty      atomic.Bool
	stop, done chan struct{}
}

// openStore checks dir without touching the file system: it is made at
// the first save, so a start that fails earlier (no privileges) leaves
// nothing behind and says nothing about it.
func openStore(dir string, maxEntries, maxBytes int, log *slog.Logger) (*store, error) {
	if !filepath.IsAbs(dir) {
		return nil, fmt.Errorf("hashing.cache_dir %q is not an absolute path", dir)
	}
	return &store{
		dir: dir, path: filepath.Join(dir, cacheFileName),
		maxEntries: maxEntries, maxBytes: maxBytes, log: log,
		stop: make(chan struct{}), done: make(chan struct{}),
	}, nil
}

// checkDir reports whether dir is fit to hold the cache: a directory (not
// a symlink) that only its owner may write to. With mkdir it is made
// (0700) if missing and tightened to 0700; a directory others may write to
// is refused rather than changed, as it may be shared (/tmp).
func (s *store) checkDir(mkdir bool) error {
	if mkdir {
		if err := os.MkdirAll(s.dir, 0o700); err != nil {
			return fmt.Errorf("hashing.cache_dir: %w", err)
		}
	}
	st, err := os.Lstat(s.dir)
	if err != nil {
		return fmt.Errorf("hashing.cache_dir: %w", err)
	}
	if !st.IsDir() {
		return fmt.Errorf("hashing.cache_dir %s is not a directory", s.dir)
	}
	perm := st.Mode().Perm()
	if perm&0o022 != 0 {
		return fmt.Errorf("hashing.cache_dir %s is writable by others (mode %v): use a directory of its own", s.dir, perm)
	}
	if mkdir && perm != 0o700 {
		if err := os.Chmod(s.dir, 0o700); err != nil {
			return fmt.Errorf("hashing.cache_dir: %w", err)
		}
	}
	return nil
}

// record is one persisted file: its identity where it was hashed, and its
// digests.
type record struct {
	id                  fileID
	path                string
	sha256, md5, sha512 []byte
}

func encodeCache(recs []record) []byte {
	var p []byte
	for _, r := range recs {
		s := r.id.stat
		for _, v := range []uint64{s.Dev, s.Inode, uint64(s.Size), uint64(s.MtimeNs), uint64(s.CtimeNs), uint64(r.id.btimeNs)} {
			p = binary.LittleEndian.AppendUint64(p, v)
		}
		var flags byte
		if r.id.hasBtime {
			flags |= recBtime
		}
		if r.md5 != nil {
			flags |= recMD5
		}
		if r.sha512 != nil {
			flags |= recSHA512
		}
		p = append(p, flags)
		p = append(p, r.sha256...)
		p = append(p, r.md5...)
		p = append(p, r.sha512...)
		p = binary.LittleEndian.AppendUint16(p, uint16(len(r.path)))
		p = append(p, r.path...)
	}
	sum := sha256.Sum256(p)
	h := make([]byte, 0, cacheHeaderLen+len(p))
	h = append(h, cacheMagic...)
	h = binary.LittleEndian.AppendUint32(h, cacheVersion)
	h = binary.LittleEndian.AppendUint32(h, uint32(len(recs)))
	h = binary.LittleEndian.AppendUint64(h, uint64(len(p)))
	h = append(h, sum[:]...)
	return append(h, p...)
}

// decodeCache parses a whole cache file, or says why it is not one.
func decodeCache(b []byte, maxEntries int) ([]record, error) {
	if len(b) < cacheHeaderLen || string(b[:8]) != cacheMagic {
		return nil, errors.New("not a hash cache (bad magic or short header)")
	}
	if v := binary.LittleEndian.Uint32(b[8:]); v != cacheVersion {
		return nil, fmt.Errorf("version %d, this sensor reads %d", v, cacheVersion)
	}
	n := int(binary.LittleEndian.Uint32(b[12:]))
	plen := binary.LittleEndian.Uint64(b[16:])
	p := b[cacheHeaderLen:]
	if uint64(len(p)) != plen {
		return nil, fmt.Errorf("truncated or extended: %d payload bytes, header says %d", len(p), plen)
	}
	if sum := sha256.Sum256(p); !bytes.Equal(sum[:], b[24:cacheHeaderLen]) {
		return nil, errors.New("checksum mismatch")
	}
	if n > maxEntries {
		return nil, fmt.Errorf("%d records, over the bound of %d", n, maxEntries)
	}
	recs := make([]record, 0, n)
	take := func(k int) ([]byte, bool) {
		if len(p) < k {
			return nil, false
		}
		v := p[:k:k]
		p = p[k:]
		return v, true
	}
	for i := range n {
		fixed, ok := take(6*8 + 1 + sha256.Size)
		if !ok {
			return nil, fmt.Errorf("record %d is cut short", i)
		}
		u := func(j int) uint64 { return binary.LittleEndian.Uint64(fixed[j*8:]) }
		flags := fixed[48]
		r := record{sha256: fixed[49:]}
		r.id.stat.Dev, r.id.stat.Inode = u(0), u(1)
		r.id.stat.Size, r.id.stat.MtimeNs, r.id.stat.CtimeNs = int64(u(2)), int64(u(3)), int64(u(4))
		r.id.btimeNs, r.id.hasBtime = int64(u(5)), flags&recBtime != 0
		if flags&^(recBtime|recMD5|recSHA512) != 0 {
			return nil, fmt.Errorf("record %d has unknown flags %#x", i, flags)
		}
		if flags&recMD5 != 0 {
			if r.md5, ok = take(16); !ok {
				return nil, fmt.Errorf("record %d is cut short", i)
			}
		}
		if flags&recSHA512 != 0 {
			if r.sha512, ok = take(64); !ok {
				return nil, fmt.Errorf("record %d is cut short", i)
			}
		}
		l, ok := take(2)
		if !ok {
			return nil, fmt.Errorf("record %d is cut short", i)
		}
		path, ok := take(int(binary.LittleEndian.Uint16(l)))
		if !ok || len(path) == 0 || path[0] != '/' || bytes.IndexByte(path, 0) >= 0 {
			return nil, fmt.Errorf("record %d has no valid path", i)
		}
		r.path = string(path)
		recs = append(recs, r)
	}
	if len(p) != 0 {
		return nil, fmt.Errorf("%d bytes after the last record", len(p))
	}
	return recs, nil
}

// loadCache fills the hash cache from the store: only records whose file
// still has the recorded identity. A file that is not a valid cache is
// discarded with one log line; it is replaced at the next save.
func (in *Inspector) loadCache() {
	s := in.store
	err := s.checkDir(false)
	if errors.Is(err, os.ErrNotExist) || errors.Is(err, os.ErrPermission) {
		// Nothing saved yet, or a start without the privileges the
		// sensor needs anyway (it stops before hashing; a save that
		// cannot write says so).
		s.log.Debug("no binary hash cache to load", "err", err)
		return
	}
	if err != nil {
		in.log.Error("binary hash cache not kept across restarts", "err", err)
		in.store = nil
		return
	}
	f, err := os.Open(s.path)
	if errors.Is(err, os.ErrNotExist) {
		return
	}
	var b []byte
	if err == nil {
		b, err = io.ReadAll(io.LimitReader(f, int64(cacheHeaderLen+s.maxBytes)+1))
		f.Close()
	}
	if err == nil && len(b) > cacheHeaderLen+s.maxBytes {
		err = fmt.Errorf("over the bound of %d bytes", s.maxBytes)
	}
	var recs []record
	if err == nil {
		recs, err = decodeCache(b, s.maxEntries)
	}
	if err != nil {
		s.log.Warn("binary hash cache discarded, binaries will be hashed again", "path", s.path, "reason", err.Error())
		return
	}
	var stale int
	in.mu.Lock()
	for _, r := range recs {
		now, ok := statxPath(r.path)
		if !ok || now != r.id {
			stale++
			continue
		}
		d := &Digests{SHA256: r.sha256, MD5: r.md5, SHA512: r.sha512, Stat: r.id.stat, id: r.id, where: r.path}
		in.hashes[d.Stat] = d
		// Exec events carry the kernel's dev_t encoding.
		k := d.Stat
		k.Dev = kernelDev(k.Dev)
		in.hashes[k] = d
	}
	in.mu.Unlock()
	s.log.Info("binary hash cache loaded", "path", s.path, "entries", len(recs)-stale, "stale", stale)
}

// saveCache writes the hash cache atomically (a 0600 temporary file in the
// same directory, fsynced, renamed over the cache), within the bounds:
// the first records by path when there are more.
func (in *Inspector) saveCache() error {
	s := in.store
	s.saveMu.Lock()
	defer s.saveMu.Unlock()
	s.dirty.Store(false)
	seen := map[*Digests]bool{}
	var recs []record
	in.mu.Lock()
	for _, d := range in.hashes {
		if d.where == "" || seen[d] {
			continue
		}
		seen[d] = true
		recs = append(recs, record{id: d.id, path: d.where, sha256: d.SHA256, md5: d.MD5, sha512: d.SHA512})
	}
	in.mu.Unlock()
	if err := s.checkDir(true); err != nil {
		return err
	}
	slices.SortFunc(recs, func(a, b record) int { return strings.Compare(a.path, b.path) })
	size := 0
	for i, r := range recs {
		size += 6*8 + 1 + len(r.sha256) + len(r.md5) + len(r.sha512) + 2 + len(r.path)
		if i >= s.maxEntries || size > s.maxBytes {
			recs = recs[:i]
			break
		}
	}
	return writeAtomic(s.dir, cacheFileName, encodeCache(recs))
}

func writeAtomic(dir, name string, data []byte) (err error) {
	f, err := os.CreateTemp(dir, name+".tmp-*")
	if err != nil {
		return fmt.Errorf("binary hash cache: %w", err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	// CreateTemp makes 0600 files; an unusual umask cannot loosen that,
	// but say so rather than rely on it.
	if err = f.Chmod(0o600); err != nil {
		return fmt.Errorf("binary hash cache: %w", err)
	}
	if _, err = f.Write(data); err != nil {
		return fmt.Errorf("binary hash cache: %w", err)
	}
	if err = f.Sync(); err != nil {
		return fmt.Errorf("binary hash cache: %w", err)
	}
	if err = f.Close(); err != nil {
		return fmt.Errorf("binary hash cache: %w", err)
	}
	if err = os.Rename(f.Name(), filepath.Join(dir, name)); err != nil {
		return fmt.Errorf("binary hash cache: %w", err)
	}
	if d, derr := os.Open(dir); derr == nil {
		_ = d.Sync()
		d.Close()
	}
	return nil
}

// persist saves the cache every interval while it has changed, until stop.
func (in *Inspector) persist(interval time.Duration) {
	s := in.store
	defer close(s.done)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
			if s.dirty.Load() {
				if err := in.saveCache(); err != nil {
					s.log.Error("saving the binary hash cache", "err", err)
				}
			}
		}
	}
}

// remember marks d for the persisted cache when the file it was hashed
// from is, right now, the one at its path as the host sees it (a process
// in another mount namespace names paths the host resolves elsewhere).
func (in *Inspector) remember(d *Digests, path string) {
	if in.store == nil || path == "" || path[0] != '/' || len(path) > maxCachedPath || strings.HasSuffix(path, " (deleted)") {
		return
	}
	id, ok := statxPath(path)
	if !ok || id.stat != d.Stat {
		return
	}
	d.id, d.where = id, path
	in.store.dirty.Store(true)
}
