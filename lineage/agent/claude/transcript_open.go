package claude

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/lineaged/lineaged/lineage/event"
	"github.com/lineaged/lineaged/lineage/internal/safefile"
	"github.com/lineaged/lineaged/sensor/procfs"
)

// TranscriptGuard says which file may be followed as a session's
// transcript and how much of it one poll reads. The zero value opens the
// path as given, refusing only symlinks as the last component, FIFOs and
// devices, and files over the default size (tests, replay).
type TranscriptGuard struct {
	// Root is the session agent's root directory as the sensor reaches it
	// (/proc/<pid>/root); "" opens the path from the sensor's root.
	Root string
	// FallbackRoot, when set, is opened instead once Root is gone (the
	// agent exited before its transcript was first opened): "/" when the
	// kernel placed the agent in the host's mount namespace, which is the
	// sensor's. A headless agent can exit within milliseconds of starting
	// its last tool call, before the sensor reads the record of that call.
	FallbackRoot string
	// ConfigDir is the session's configuration directory (~/.claude or
	// $CLAUDE_CONFIG_DIR) as the agent sees it: the transcript must be
	// under its projects/ directory. "" skips the check.
	ConfigDir string
	// UID must own the file when HasUID is set: the session's user.
	UID    uint32
	HasUID bool
	// MaxBytes refuses a larger file (default DefaultTranscriptMaxBytes);
	// PollBytes bounds one poll's read (default DefaultTranscriptPollBytes).
	MaxBytes  int64
	PollBytes int64
}

// Defaults of TranscriptGuard. A long Claude Code session's transcript is
// tens of MiB.
const (
	DefaultTranscriptMaxBytes  = 1 << 30
	DefaultTranscriptPollBytes = 4 << 20
)

// errRefused marks a file refused for good: it is not read, now or later.
var errRefused = errors.New("refused")

type refusal struct{ msg string }

func (r refusal) Error() string        { return r.msg + " (refused)" }
func (r refusal) Is(target error) bool { return target == errRefused }

func (g *TranscriptGuard) pollBytes() int64 {
	if g.PollBytes > 0 {
		return g.PollBytes
	}
	return DefaultTranscriptPollBytes
}

func (g *TranscriptGuard) maxBytes() int64 {
	if g.MaxBytes > 0 {
		return g.MaxBytes
	}
	return DefaultTranscriptMaxBytes
}

// SetGuard sets what the transcript's file must satisfy before it is read;
// call it before the first Poll.
func (t *Transcript) SetGuard(g TranscriptGuard) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.guard = g
}

// open opens the transcript file under the guard; t.mu is held.
func (t *Transcript) open() (*os.File, error) {
	g := &t.guard
	path := t.path
	if g.ConfigDir != "" {
		dir := filepath.Clean(g.ConfigDir) + "/projects/"
		if filepath.Clean(path) != path || !strings.HasPrefix(path, dir) {
			return nil, refusal{fmt.Sprintf("%s is outside the session's %s", path, dir)}
		}
	}
	var f *os.File
	if g.Root == "" {
		var err error
		if f, _, err = safefile.OpenRegular(path, safefile.Options{NoFollow: true}); err != nil {
			if errors.Is(err, safefile.ErrSymlink) || errors.Is(err, safefile.ErrNotRegular) {
				return nil, refusal{err.Error()}
			}
			return nil, err
		}
	} else {
		var err error
		f, err = openInRoot(g.Root, path)
		if errors.Is(err, errRootGone) && g.FallbackRoot != "" {
			f, err = openInRoot(g.FallbackRoot, path)
		}
		if err != nil {
			return nil, err
		}
	}
	var st syscall.Stat_t
	if err := syscall.Fstat(int(f.Fd()), &st); err != nil {
		f.Close()
		return nil, err
	}
	if err := g.check(path, &st); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// errRootGone: the agent's /proc/<pid>/root is gone with the agent.
var errRootGone = errors.New("the agent has exited")

// openInRoot opens path inside root (the agent's /proc/<pid>/root) with no
// symlink followed in any component and no way out of root, read-only and
// non-blocking, and refuses what is not a regular file.
func openInRoot(root, path string) (*os.File, error) {
	rfd, err := unix.Open(root, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ESRCH) {
			err = fmt.Errorf("%w: %w", errRootGone, err)
		}
		return nil, fmt.Errorf("opening the session's root %s: %w", root, err)
	}
	defer unix.Close(rfd)
	fd, err := unix.Openat2(rfd, strings.TrimPrefix(path, "/"), &unix.OpenHow{
		Flags:   unix.O_RDONLY | unix.O_NONBLOCK | unix.O_NOFOLLOW | unix.O_CLOEXEC | unix.O_NOCTTY,
		Resolve: unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS | unix.RESOLVE_IN_ROOT,
	})
	if err != nil {
		if errors.Is(err, unix.ELOOP) || errors.Is(err, unix.EXDEV) {
			return nil, refusal{fmt.Sprintf("%s: a component is a symlink", path)}
		}
		return nil, fmt.Errorf("%s in %s: %w", path, root, err)
	}
	f := os.NewFile(uintptr(fd), path)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		f.Close()
		return nil, err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		f.Close()
		return nil, refusal{fmt.Sprintf("%s: %v", path, safefile.ErrNotRegular)}
	}
	return f, nil
}

// sparseSlack is how far below its size a file's allocated bytes may be
// before it counts as sparse (filesystems allocate lazily, compress, or
// keep small files inline).
const sparseSlack = 1 << 20

// check refuses a file that is not its session's transcript: another
// user's, larger than the bound, or sparse (a hole costs the writer
// nothing and the reader its whole length).
func (g *TranscriptGuard) check(path string, st *syscall.Stat_t) error {
	if g.HasUID && st.Uid != g.UID {
		return refusal{fmt.Sprintf("%s is owned by uid %d, not the session's uid %d", path, st.Uid, g.UID)}
	}
	return g.checkGrowth(st)
}

// checkGrowth refuses a file grown past the bound or sparse.
func (g *TranscriptGuard) checkGrowth(st *syscall.Stat_t) error {
	if st.Size > g.maxBytes() {
		return refusal{fmt.Sprintf("%d bytes, over the transcript limit of %d", st.Size, g.maxBytes())}
	}
	if alloc := st.Blocks * 512; st.Size-alloc > sparseSlack && alloc < st.Size/2 {
		return refusal{fmt.Sprintf("sparse: %d bytes with %d allocated", st.Size, alloc)}
	}
	return nil
}

// newTranscript follows path as s's transcript, under s's guard: reached
// through the agent's own root, inside its configuration directory, owned
// by its user; o.mu is held.
func (o *Observer) newTranscript(s *session, path string) *Transcript {
	t := NewTranscript(path, o.cfg.MaxTranscriptLine)
	g := TranscriptGuard{ConfigDir: s.configDir, UID: s.rootUID, HasUID: s.hasUID,
		MaxBytes: o.cfg.MaxTranscriptBytes, PollBytes: o.cfg.TranscriptPollBytes}
	g.Root = "/"
	if s.rootPID != 0 && !s.rootSharesOurs {
		g.Root = filepath.Join(o.cfg.ProcRoot, strconv.FormatUint(uint64(s.rootPID), 10), "root")
		if s.rootInHostNS && o.inHostNS {
			g.FallbackRoot = "/"
		}
	}
	t.SetGuard(g)
	t.SetBudget(o.retain)
	if why, ok := o.foreign[path]; ok {
		t.MarkUntrusted(why)
	}
	t.Prime()
	return t
}

// maxForeign bounds the transcript paths remembered as written by others.
const maxForeign = 1024

// foreignWrite notes a session member other than the agent writing to,
// renaming or replacing a transcript: the records of that transcript may
// be forged from now on, so what it ties is attributed untrusted. o.mu is
// held.
func (o *Observer) foreignWrite(f *event.File, p *event.Process) {
	if f.Mode == event.ModeRead && f.NewPath == "" {
		return
	}
	for _, path := range [2]string{f.Path, f.NewPath} {
		if !strings.HasSuffix(path, ".jsonl") {
			continue
		}
		if _, ok := TranscriptSession(path); !ok {
			continue
		}
		why := fmt.Sprintf("%s (pid %d, exec_id %s) wrote to the transcript", p.Exe, p.PID, p.ExecID)
		o.stats.ForeignWrites++
		o.sessions.Each(func(s *session) {
			if s.transcript != nil && s.transcript.Path() == path {
				s.transcript.MarkUntrusted(why)
			}
		})
		if _, ok := o.foreign[path]; !ok {
			o.foreign[path] = why
			o.foreignOrder = append(o.foreignOrder, path)
			if len(o.foreignOrder) > maxForeign {
				delete(o.foreign, o.foreignOrder[0])
				o.foreignOrder = o.foreignOrder[1:]
			}
		}
	}
}

// sameMountNS reports whether the sensor is in the mount namespace the
// engine takes for the host's (procfs.HostMountNS: pid 1's, else the
// sensor's own where pid 1's cannot be read), the one an exec without
// event.Process.MntNS was in. False when its own cannot be read.
func sameMountNS(procRoot string) bool {
	ours := procfs.MountNS(procRoot, "self")
	return ours != 0 && procfs.HostMountNS(procRoot) == ours
}

// sharesOurRoot reports whether process pid sees the sensor's own file
// system: the same mount namespace and the same root directory. Its
// transcript can then be read from "/", also after it has exited (an agent
// that finished its turn while a backgrounded tool call still runs), which
// through /proc/<pid>/root it could not. False when either cannot be told.
func (o *Observer) sharesOurRoot(pid uint32) bool {
	dir := filepath.Join(o.cfg.ProcRoot, strconv.FormatUint(uint64(pid), 10))
	theirNS, err1 := os.Stat(filepath.Join(dir, "ns", "mnt"))
	ourNS, err2 := os.Stat(filepath.Join(o.cfg.ProcRoot, "self", "ns", "mnt"))
	theirRoot, err3 := os.Stat(filepath.Join(dir, "root"))
	ourRoot, err4 := os.Stat("/")
	if err1 != nil || err2 != nil || err3 != nil || err4 != nil {
		return false
	}
	return os.SameFile(theirNS, ourNS) && os.SameFile(theirRoot, ourRoot)
}
