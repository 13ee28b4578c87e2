package binid

import (
	"sync"
	"sync/atomic"
	"time"
)

// watchSpec says how to notice a package database change and how to load it.
type watchSpec struct {
	recheck time.Duration
	now     func() time.Time
	stamp   func() string
	load    func() (fileIndex, error)
}

// watched is a package database loaded lazily and reloaded after a change.
// Noticing a change (a stat, rate-limited) and reloading (parsing the whole
// database) are separate, so the generation check on the hot path never
// waits for a reload.
type watched struct {
	checkMu sync.Mutex
	stamp   string
	checked time.Time
	gen     atomic.Uint64

	loadMu    sync.Mutex
	files     fileIndex
	loadedGen uint64
	err       error
}

func (w *watched) check(s watchSpec) uint64 {
	w.checkMu.Lock()
	defer w.checkMu.Unlock()
	now := time.Now
	if s.now != nil {
		now = s.now
	}
	re := s.recheck
	if re == 0 {
		re = 5 * time.Second
	}
	t := now()
	if w.gen.Load() != 0 && t.Sub(w.checked) < re {
		return w.gen.Load()
	}
	w.checked = t
	if st := s.stamp(); st != w.stamp || w.gen.Load() == 0 {
		w.stamp = st
		w.gen.Add(1)
	}
	return w.gen.Load()
}

func (w *watched) generation(s watchSpec) uint64 { return w.check(s) }

func (w *watched) loaded(s watchSpec) fileIndex {
	g := w.check(s)
	w.loadMu.Lock()
	defer w.loadMu.Unlock()
	if w.files == nil || w.loadedGen != g {
		files, err := s.load()
		if files == nil {
			files = fileMap{}
		}
		w.files, w.err, w.loadedGen = files, err, g
	}
	return w.files
}

func (w *watched) lookup(s watchSpec, path string) (PackageFile, bool) {
	files := w.loaded(s)
	if f, ok := files.find(path); ok {
		return f, true
	}
	// The alias (Aliases) is built only when the path is not listed.
	if a, ok := usrmergeAlias(path); ok {
		return files.find(a)
	}
	return PackageFile{}, false
}

func (w *watched) lastErr(s watchSpec) error {
	w.loaded(s)
	w.loadMu.Lock()
	defer w.loadMu.Unlock()
	return w.err
}
