//go:build linux

package kernel

import (
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/cilium/ebpf"

	"github.com/lineaged/lineaged/sensor"
)

// Usermode helpers (bpf/umh.h): a session member that opens one of these
// settings for writing has the program it names registered with its
// session, so the kernel's later run of that program (from a kernel
// thread, outside every lineage) joins the session, flagged
// ExecViaUsermodeHelper.
//
// The value is read again at every event of the writer (its fork of the
// next command, its exec) and at its exit: the open record arrives before
// the write. It is registered only when it differs from the value the
// sensor last knew (read at its start, and at every read since), so a
// member that opens a setting and leaves it as it was does not take the
// host's own helper (systemd-coredump) into its session. When the value
// changes again the previous path is no longer registered.
var umhSettings = map[string]bool{ // path -> value is a core_pattern
	"/proc/sys/kernel/core_pattern": true,
	"/proc/sys/kernel/modprobe":     false,
	"/proc/sys/kernel/hotplug":      false,
	"/sys/kernel/uevent_helper":     false,
}

// umhValueMax bounds what is read of a setting (core_pattern is at most
// 128 bytes, the helper paths at most 256).
const umhValueMax = 4096

// umhRegistry registers members' helpers in the umh_helpers map. It runs on
// the Run goroutine.
type umhRegistry struct {
	m   *ebpf.Map
	log *slog.Logger
	// read reads a setting (os.ReadFile bounded; replaced in tests).
	read func(path string) (string, error)
	// known is each setting's last value read; registered the helper
	// path registered for it, if any.
	known      map[string]string
	registered map[string]string
	// writers are members that opened a setting for writing and have not
	// exited, with the settings they opened.
	writers map[uint32]umhWriter
}

type umhWriter struct {
	start    uint64
	session  sensor.SessionRef
	settings map[string]bool
}

func newUMHRegistry(m *ebpf.Map, log *slog.Logger) *umhRegistry {
	u := &umhRegistry{m: m, log: log, read: readSetting, known: map[string]string{},
		registered: map[string]string{}, writers: map[uint32]umhWriter{}}
	current := map[string]string{} // helper path -> setting
	for p, core := range umhSettings {
		if v, err := u.read(p); err == nil {
			u.known[p] = v
			if h := helperPath(v, core); h != "" {
				current[h] = p
			}
		}
	}
	u.adopt(current)
	return u
}

// adopt takes over the entries a previous instance registered in the
// pinned map: one a setting still names stays registered for it, the
// others (the setting changed while no sensor ran) are removed.
func (u *umhRegistry) adopt(current map[string]string) {
	if u.m == nil {
		return
	}
	var k processUmhKey
	var v processSession
	var stale []processUmhKey
	it := u.m.Iterate()
	for it.Next(&k, &v) {
		b := make([]byte, 0, len(k.Path))
		for _, c := range k.Path {
			if c == 0 {
				break
			}
			b = append(b, byte(c))
		}
		if p, ok := current[string(b)]; ok {
			u.registered[p] = string(b)
		} else {
			stale = append(stale, k)
		}
	}
	if err := it.Err(); err != nil {
		u.log.Warn("usermode helpers map unreadable", "err", err)
	}
	for i := range stale {
		u.m.Delete(&stale[i])
	}
}

// maxUMHWriters bounds the processes followed at once for having opened a
// usermode-helper setting for writing.
const maxUMHWriters = 1024

func readSetting(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, umhValueMax))
	return string(b), err
}

// note looks at one event on its way out.
func (u *umhRegistry) note(ev sensor.Event) {
	if u == nil || u.m == nil {
		return
	}
	pid := ev.Proc.PID
	if ev.Kind == sensor.KindOpen && ev.File != nil && ev.Session.InSession() {
		if _, ok := umhSettings[ev.File.Path]; ok && ev.File.Result >= 0 {
			if a := ev.File.Access(); a == sensor.AccessWrite || a == sensor.AccessReadWrite {
				w, ok := u.writers[pid]
				if !ok && len(u.writers) >= maxUMHWriters {
					u.log.Warn("usermode-helper writers not followed: too many at once", "pid", pid, "max", maxUMHWriters)
					return
				}
				if !ok || w.start != ev.Proc.StartNs {
					w = umhWriter{start: ev.Proc.StartNs, session: ev.Session, settings: map[string]bool{}}
				}
				w.settings[ev.File.Path] = true
				u.writers[pid] = w
			}
		}
	}
	// The writer's own fork, exec and exit, and its next command's fork or
	// exec (a child that execs at once has no fork record): the value is
	// written after the open, so it is read at the writer's next step, not
	// at each of its events.
	parent := uint32(0)
	switch {
	case ev.Kind == sensor.KindFork && ev.Fork != nil:
		parent = ev.Fork.Parent.PID
	case ev.Kind == sensor.KindExec && ev.Exec != nil:
		parent = ev.Exec.Parent.PID
	case ev.Kind == sensor.KindExit:
	default:
		return
	}
	for _, p := range [2]uint32{pid, parent} {
		if w, ok := u.writers[p]; ok && p != 0 {
			for s := range w.settings {
				u.reread(s, w.session)
			}
		}
	}
	if ev.Kind == sensor.KindExit {
		delete(u.writers, pid)
	}
}

// reread reads setting p and registers its helper with ref's session when
// the value changed.
func (u *umhRegistry) reread(p string, ref sensor.SessionRef) {
	v, err := u.read(p)
	if err != nil {
		u.log.Debug("usermode-helper setting unreadable", "path", p, "err", err)
		return
	}
	if old, ok := u.known[p]; ok && old == v {
		return
	}
	u.known[p] = v
	if prev, ok := u.registered[p]; ok {
		var k processUmhKey
		if setKey(&k, prev) {
			u.m.Delete(&k)
		}
		delete(u.registered, p)
	}
	helper := helperPath(v, umhSettings[p])
	if helper == "" {
		return
	}
	var k processUmhKey
	if !setKey(&k, helper) {
		u.log.Warn("usermode helper path too long to register", "setting", p, "len", len(helper))
		return
	}
	val := processSession{RootPid: ref.Root.PID, Agent: uint8(ref.Agent), RootStart: ref.Root.StartNs}
	if err := u.m.Update(&k, &val, ebpf.UpdateAny); err != nil {
		// A full map (UMH_MAX entries) is the likely cause.
		u.log.Warn("usermode helper not registered", "setting", p, "helper", helper, "err", err)
		return
	}
	u.registered[p] = helper
	u.log.Info("usermode helper registered with a session", "setting", p, "helper", helper,
		"session_root", ref.Root.PID)
}

// helperPath is the program a setting's value names: for core_pattern the
// first word after a leading '|' (nothing when the pattern is a file name),
// else the whole value; trailing newlines and blanks trimmed.
func helperPath(v string, corePattern bool) string {
	v = strings.TrimRight(v, "\n\x00 \t")
	if !corePattern {
		return strings.TrimSpace(v)
	}
	if !strings.HasPrefix(v, "|") {
		return ""
	}
	f := strings.Fields(v[1:])
	if len(f) == 0 {
		return ""
	}
	return f[0]
}

// setKey fills k with path, zero-padded; false when it does not fit.
func setKey(k *processUmhKey, path string) bool {
	if path == "" || len(path) >= len(k.Path) || strings.IndexByte(path, 0) >= 0 {
		return false
	}
	*k = processUmhKey{}
	for i := 0; i < len(path); i++ {
		k.Path[i] = int8(path[i])
	}
	return true
}
