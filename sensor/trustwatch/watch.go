package trustwatch

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"sync"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/lineaged/lineaged/sensor"
	"github.com/lineaged/lineaged/sensor/procfs"
)

// Config is what a Watcher watches and whom it tells.
type Config struct {
	// Anchors to watch (DefaultAnchors plus lineaged's own files).
	Anchors []Anchor
	// PackageManagers are executable paths whose processes and their
	// descendants may write the anchors; default PackageManagers.
	PackageManagers []string
	// ProcRoot is /proc.
	ProcRoot string
	// SessionOf is the agent session of a live pid (the kernel's session
	// map); nil or a zero SessionRef when none.
	SessionOf func(pid uint32) sensor.SessionRef
	// Written is told of every write to an anchor, the package manager's
	// included, before its event is queued (binid taints package records
	// with it). It must not block.
	Written func(w Write)
	Log     *slog.Logger
}

// Write is one write to an anchor.
type Write struct {
	Path           string
	Anchor         Anchor
	PID            uint32
	PackageManager bool
}

// Watcher is a fanotify group marking the anchors' directories.
type Watcher struct {
	cfg     Config
	fd      int
	entries int // the directory-entry group (moved.go); -1 when none
	handles dirHandles
	pms     map[fileID]string
	self    int
	Missing []string // anchor directories that do not exist (not watched)

	mu      sync.Mutex
	pending []sensor.Event
	recent  map[recentKey]time.Time
	// pmSeen caches, per writer pid, that it was the package manager's:
	// an upgrade writes thousands of records, one ancestry walk is enough.
	pmSeen map[int32]time.Time
	// pmRuns caches packageManagerRuns for a second: a scan of /proc
	// per exited writer would make a burst of them slow.
	pmRuns   bool
	pmRunsAt time.Time
	buf      []byte
}

type recentKey struct {
	pid  int32
	path string
}

// dedupe: one report per writer and file in this interval (a write is
// one FAN_MODIFY per write(2) and a FAN_CLOSE_WRITE).
const dedupe = 2 * time.Second

// New opens the fanotify group and marks the anchors. It needs
// CAP_SYS_ADMIN.
func New(cfg Config) (*Watcher, error) {
	anchors, err := Clean(cfg.Anchors)
	if err != nil {
		return nil, err
	}
	cfg.Anchors = anchors
	if cfg.ProcRoot == "" {
		cfg.ProcRoot = "/proc"
	}
	if cfg.PackageManagers == nil {
		cfg.PackageManagers = PackageManagers
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	fd, err := unix.FanotifyInit(unix.FAN_CLASS_NOTIF|unix.FAN_CLOEXEC|unix.FAN_NONBLOCK,
		unix.O_RDONLY|unix.O_LARGEFILE|unix.O_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("trust anchors: fanotify_init: %w", err)
	}
	w := &Watcher{cfg: cfg, fd: fd, pms: identities(cfg.PackageManagers), self: os.Getpid(),
		recent: map[recentKey]time.Time{}, pmSeen: map[int32]time.Time{}, buf: make([]byte, 4096)}
	dirs, missing := marks(anchors)
	w.Missing = missing
	for _, d := range dirs {
		if err := unix.FanotifyMark(fd, unix.FAN_MARK_ADD,
			unix.FAN_MODIFY|unix.FAN_CLOSE_WRITE|unix.FAN_EVENT_ON_CHILD, unix.AT_FDCWD, d); err != nil {
			unix.Close(fd)
			return nil, fmt.Errorf("trust anchors: fanotify_mark %s: %w", d, err)
		}
	}
	if w.entries, w.handles, err = openEntries(dirs); err != nil {
		unix.Close(fd)
		return nil, err
	}
	return w, nil
}

// Close releases the fanotify group.
func (w *Watcher) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.fd < 0 {
		return nil
	}
	err := unix.Close(w.fd)
	w.fd = -1
	if w.entries >= 0 {
		unix.Close(w.entries)
		w.entries = -1
	}
	return err
}

// Drain handles the writes the kernel has queued so far: Written is called
// for each before Drain returns. A reader of an anchor (binid, before it
// reloads a package database) calls it so a write made before the read is
// known first.
func (w *Watcher) Drain() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.drain(w.fd, w.parse)
	w.drain(w.entries, w.parseEntries)
}

func (w *Watcher) drain(fd int, parse func([]byte)) {
	for fd >= 0 {
		n, err := unix.Read(fd, w.buf)
		if err != nil || n <= 0 {
			if err != nil && !errors.Is(err, unix.EAGAIN) && !errors.Is(err, unix.EINTR) {
				w.cfg.Log.Warn("trust anchors: read", "err", err)
			}
			return
		}
		parse(w.buf[:n])
	}
}

func (w *Watcher) overflow() {
	w.pending = append(w.pending, sensor.Event{
		Header: sensor.Header{Kind: sensor.KindLoss, KtimeNs: bootNs()},
		Loss:   &sensor.Loss{Where: "trust-anchors", Of: sensor.KindTamper, Count: 1},
	})
}

func (w *Watcher) parse(b []byte) {
	const metaLen = int(unsafe.Sizeof(unix.FanotifyEventMetadata{}))
	for len(b) >= metaLen {
		m := (*unix.FanotifyEventMetadata)(unsafe.Pointer(&b[0]))
		if m.Event_len < uint32(metaLen) || int(m.Event_len) > len(b) {
			return
		}
		b = b[m.Event_len:]
		if m.Vers != unix.FANOTIFY_METADATA_VERSION {
			w.cfg.Log.Warn("trust anchors: fanotify metadata version", "version", m.Vers)
			return
		}
		if m.Mask&unix.FAN_Q_OVERFLOW != 0 {
			w.overflow()
			continue
		}
		if m.Fd < 0 {
			continue
		}
		path, err := os.Readlink("/proc/self/fd/" + strconv.Itoa(int(m.Fd)))
		unix.Close(int(m.Fd))
		if err != nil || int(m.Pid) == w.self {
			continue
		}
		a, ok := match(w.cfg.Anchors, path)
		if !ok {
			continue
		}
		w.handle(path, a, m.Pid)
	}
}

func (w *Watcher) handle(path string, a Anchor, pid int32) {
	now := time.Now()
	k := recentKey{pid, path}
	if t, ok := w.recent[k]; ok && now.Sub(t) < dedupe {
		return
	}
	if len(w.recent) > 4096 {
		clear(w.recent)
	}
	w.recent[k] = now
	if t, ok := w.pmSeen[pid]; ok && now.Sub(t) < dedupe {
		if w.cfg.Written != nil {
			w.cfg.Written(Write{Path: path, Anchor: a, PID: uint32(pid), PackageManager: true})
		}
		return
	}
	p, _ := procfs.Read(w.cfg.ProcRoot, uint32(pid))
	// A writer that exited before it was read (a short maintainer script)
	// cannot be walked up: it is taken for the package manager's when a
	// package manager runs at that moment (docs/threat-model.md).
	pm := (p != nil && w.byPackageManager(p)) || (p == nil && w.packageManagerRuns())
	if pm && p != nil {
		if len(w.pmSeen) > 4096 {
			clear(w.pmSeen)
		}
		w.pmSeen[pid] = now
	}
	if w.cfg.Written != nil {
		w.cfg.Written(Write{Path: path, Anchor: a, PID: uint32(pid), PackageManager: pm})
	}
	if pm {
		return
	}
	ev := sensor.Event{
		Header: sensor.Header{Kind: sensor.KindTamper, KtimeNs: bootNs(), Proc: sensor.ProcKey{PID: uint32(pid)}, TID: uint32(pid)},
		Tamper: &sensor.Tamper{Op: sensor.TamperTrustAnchor, Target: sensor.ProcKey{PID: uint32(w.self)}, Path: path, Anchor: a.Class},
	}
	if p != nil {
		ev.Proc = p.Key
		ev.Tamper.Comm = p.Comm
	}
	if w.cfg.SessionOf != nil {
		ev.Session = w.cfg.SessionOf(uint32(pid))
	}
	w.pending = append(w.pending, ev)
}

// byPackageManager reports whether p or one of its ancestors runs a
// package manager's executable (by file identity), or an interpreter on a
// package manager's script (dnf, yum: by the script's identity).
func (w *Watcher) byPackageManager(p *procfs.Proc) bool {
	for depth := 0; p != nil && depth < 64; depth++ {
		if p.HasBinary {
			if _, ok := w.pms[fileID{p.Binary.Dev, p.Binary.Inode}]; ok {
				return true
			}
		}
		if len(p.Argv) > 1 {
			if id, ok := idOf(p.Argv[1]); ok {
				if _, ok := w.pms[id]; ok {
					return true
				}
			}
		}
		if p.PID <= 1 || p.PPID == 0 {
			return false
		}
		p, _ = procfs.Read(w.cfg.ProcRoot, p.PPID)
	}
	return false
}

// packageManagerRuns reports whether a process of the host runs a package
// manager's executable (by file identity).
func (w *Watcher) packageManagerRuns() bool {
	if now := time.Now(); now.Sub(w.pmRunsAt) > time.Second {
		w.pmRuns, w.pmRunsAt = w.scanPackageManagers(), now
	}
	return w.pmRuns
}

func (w *Watcher) scanPackageManagers() bool {
	ents, err := os.ReadDir(w.cfg.ProcRoot)
	if err != nil {
		return false
	}
	for _, e := range ents {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		if id, ok := idOf(w.cfg.ProcRoot + "/" + e.Name() + "/exe"); ok {
			if _, ok := w.pms[id]; ok {
				return true
			}
		}
	}
	return false
}

// Run delivers the watcher's records to out until ctx ends.
func (w *Watcher) Run(ctx context.Context, out chan<- sensor.Event) error {
	for {
		w.mu.Lock()
		fd, entries := w.fd, w.entries
		w.mu.Unlock()
		if fd < 0 {
			return nil
		}
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}, {Fd: int32(entries), Events: unix.POLLIN}}
		unix.Poll(fds, 200)
		w.Drain()
		w.mu.Lock()
		evs := w.pending
		w.pending = nil
		w.mu.Unlock()
		for _, ev := range evs {
			select {
			case out <- ev:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
}

func bootNs() uint64 {
	var ts unix.Timespec
	unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts)
	return uint64(ts.Nano())
}

// Source runs a Watcher beside another source: its records join the other
// source's stream.
type Source struct {
	Inner   sensor.Source
	Watcher *Watcher
}

// Run implements sensor.Source: it returns when the inner source does,
// after the watcher has stopped sending.
func (s *Source) Run(ctx context.Context, out chan<- sensor.Event) error {
	wctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.Watcher.Run(wctx, out)
	}()
	err := s.Inner.Run(ctx, out)
	cancel()
	<-done
	return err
}

// Close implements sensor.Source.
func (s *Source) Close() error { return errors.Join(s.Watcher.Close(), s.Inner.Close()) }
