package lineage

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/lineaged/lineaged/lineage/agent"
	"github.com/lineaged/lineaged/lineage/event"
	"github.com/lineaged/lineaged/sensor"
	"github.com/lineaged/lineaged/sensor/procfs"
)

// Deps are everything the engine looks up outside the event stream. Each is
// a small interface so a capture can record the answers live and replay
// them elsewhere, deterministically.
type Deps struct {
	Host     HostInfo
	Boot     BootClock
	Proc     ProcFacts
	Binaries BinaryInspector
	Users    UserResolver
	// Observer attributes session members; nil keeps the default
	// attribution (agent name, root_exec_id, role root/descendant).
	Observer agent.Integration
	// Cgroups, when set, names the cgroup of exec'd processes.
	Cgroups CgroupResolver
	// MountNS is the host's mount namespace (pid 1's, else the sensor's):
	// a process in another one says so (event.Process.MntNS). 0: unknown,
	// none is flagged.
	MountNS uint32
	// Logins, when set, names the SSH key behind a login
	// (identity.verified_by "ssh-key:SHA256:...").
	Logins LoginKeys
	// Posture, when set, gives the device posture sample in force; every
	// event carries it (shared, read-only).
	Posture PostureSource
	// Clock is the wall clock, used only to flush events stuck waiting for
	// a parent when the stream goes quiet; nil means time.Now.
	Clock func() time.Time
}

// PostureSource is the latest device-posture sample, mapped into the event
// (LatestPosture over a posture.Sampler).
type PostureSource interface {
	// Latest is called for every event: it must be cheap. Nil before the
	// first sample.
	Latest() *event.Posture
}

// HostInfo identifies the host for the host field and for exec ids.
type HostInfo interface {
	Host() (event.Host, error)
}

// BootClock converts kernel boot-clock timestamps to wall time.
type BootClock interface {
	// BootTime is the wall-clock time at which the boot clock read zero.
	BootTime() (time.Time, error)
}

// ProcFacts reads live processes (normally over sensor/procfs on /proc).
type ProcFacts interface {
	// Proc reads one process; an error wrapping procfs.ErrGone means it
	// no longer exists.
	Proc(pid uint32) (*procfs.Proc, error)
	// Env looks up one variable of the process's initial environment.
	Env(pid uint32, key string) (string, bool, error)
	// Cwd reads the working directory of a process (the exec record does
	// not carry it).
	Cwd(pid uint32) (string, error)
}

// BinaryRequest names one executed file.
type BinaryRequest struct {
	// PID is a process running the file: it is read through
	// /proc/<pid>/exe, never by reopening Path.
	PID uint32
	// Path is where the kernel found the file (d_path, possibly ending in
	// " (deleted)"); used for package lookups, signature files and, only
	// when its stat still matches Stat, as the fallback once the process
	// is gone.
	Path string
	// Stat is the file's identity as seen at exec; HasStat is false when
	// unknown (then /proc/<pid>/exe is trusted as is).
	Stat    sensor.FileStat
	HasStat bool
	// ExeFlags are the exec's path flags: a memfd or deleted file that
	// cannot be read once its process is gone was never hashed, and the
	// error says so.
	ExeFlags sensor.ExecFlags
	// ByPath asks for the file at Path itself, not the process's image:
	// the program a dynamic loader was asked to run (process.loaded),
	// which the process maps but never exec'd. Path is opened as it is
	// now (the loader follows symlinks, so does this), refusing anything
	// but a regular file.
	ByPath bool
	// Background marks work no event is waiting for yet (the /proc seed at
	// start): it must not delay the hashes of live events.
	Background bool
}

// BinaryInspector hashes executables and judges them (signature, package).
type BinaryInspector interface {
	// Cached answers from cache without blocking, or reports a miss.
	Cached(req BinaryRequest) (*event.Binary, bool)
	// Inspect hashes and judges the file. It honours its own size and time
	// limits and ctx; failures are a Binary with verdict error and a
	// reason, never a hang.
	Inspect(ctx context.Context, req BinaryRequest) *event.Binary
}

// UserResolver maps uids to user names.
type UserResolver interface {
	UserName(uid uint32) (string, bool)
}

// ProcFS implements ProcFacts over a /proc tree.
type ProcFS struct {
	Root string // normally "/proc"
}

// Proc implements ProcFacts.
func (p ProcFS) Proc(pid uint32) (*procfs.Proc, error) { return procfs.Read(p.Root, pid) }

// Cwd implements ProcFacts.
func (p ProcFS) Cwd(pid uint32) (string, error) {
	return os.Readlink(filepath.Join(p.Root, strconv.FormatUint(uint64(pid), 10), "cwd"))
}

// Env implements ProcFacts.
func (p ProcFS) Env(pid uint32, key string) (string, bool, error) {
	return procfs.Env(p.Root, pid, key)
}
