//go:build linux

package kernel

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"
)

// The sensor's kernel state outlives it: with Config.PinPath set, the
// programs, their links, the maps and the ring buffer are pinned there
// (bpffs), so the programs keep running while no sensor does and the next
// instance reads what they recorded meanwhile. The pin directory holds:
//
//	state            lineaged's own record: the version of what is pinned,
//	                 how the last start found it, the loss counts reported
//	map_<name>       every map of the process object
//	prog_<name>      every program of the process object
//	link_<name>      the attachment of each attached process program
//	<obj>_prog_<name>, <obj>_link_<name>   the same for the other objects
//
// (bpffs refuses names with a dot: a dot in an object's name becomes '_'.)
//
// The version is a hash of the BPF objects and of the configuration fixed
// at load (sizes, scope, batching): pinned objects of another version, or
// an incomplete set, are unpinned (which detaches them) and loaded afresh.
// The deny-exec enforcement is not pinned: its rules come from the policy
// of each run.

// PinState is how a start found the pin path (Sensor.PinState; doctor).
type PinState string

// Pin states.
const (
	// PinOff: Config.PinPath is empty; nothing outlives the sensor.
	PinOff PinState = "off"
	// PinFresh: nothing was pinned; loaded and pinned.
	PinFresh PinState = "fresh"
	// PinReused: the pinned objects were of this version and whole; the
	// attachments were kept and the ring buffer is drained from where the
	// previous instance stopped.
	PinReused PinState = "reused"
	// PinReloadedVersion: the pinned objects were of another version
	// (an upgrade, or other sizes in the configuration): unpinned and
	// loaded afresh.
	PinReloadedVersion PinState = "reloaded-other-version"
	// PinReloadedIncomplete: some pinned object was missing or unreadable:
	// unpinned and loaded afresh.
	PinReloadedIncomplete PinState = "reloaded-incomplete"
)

// pinLayout versions the layout of the pin directory itself.
const pinLayout = "lineaged-pins/1"

// bpffsMagic is BPF_FS_MAGIC (statfs f_type of a bpf filesystem).
const bpffsMagic = 0xcafe4a11

// pinRecord is the value of the state map.
type pinRecord struct {
	Version   [32]byte
	LastStart uint32 // index in pinStates
	Pad       uint32
	// LossReported are the kernel loss counters already reported as
	// sensor.loss, so the next instance reports only what is new.
	LossReported [EventKindMax]uint64
}

var pinStates = []PinState{PinOff, PinFresh, PinReused, PinReloadedVersion, PinReloadedIncomplete}

func pinStateIndex(st PinState) uint32 {
	for i, s := range pinStates {
		if s == st {
			return uint32(i)
		}
	}
	return 0
}

// pinVersion hashes what fixes the loaded objects: their bytes and the
// configuration applied at load.
func pinVersion(cfg Config) [32]byte {
	h := sha256.New()
	h.Write([]byte(pinLayout))
	h.Write(processBytes())
	for _, o := range extraObjects() {
		h.Write([]byte(o.name))
		h.Write(o.bytes)
	}
	fmt.Fprintf(h, "\x00sessions=%d ring=%d scope=%d flush=%d wakeup=%d repeat=%t process-only=%t shed=%d",
		cfg.SessionMapSize, cfg.RingBufferSize, cfg.Scope, newWakeupPolicy(cfg).FlushNs,
		newWakeupPolicy(cfg).Bytes, cfg.RepeatOpens, cfg.ProcessOnly, cfg.ShedBytes)
	fmt.Fprintf(h, " budget=%d", newWakeupPolicy(cfg).Budget)
	if cfg.DenyIOURing {
		// Kept out of the string above: a version pinned before the
		// option existed is still the same.
		h.Write([]byte(" deny-io-uring"))
	}
	if cfg.HoldExeFlags != 0 {
		// Likewise: no hold, the version is the one before the option.
		fmt.Fprintf(h, " hold=%#x", uint16(cfg.HoldExeFlags))
	}
	if cfg.HoldUnseen {
		h.Write([]byte(" hold-unseen"))
	}
	var v [32]byte
	copy(v[:], h.Sum(nil))
	return v
}

// pinDir is the locked pin directory of one sensor.
type pinDir struct {
	path string
	lock *os.File // flock held on the directory itself
	// state is the pinned state map (nil until loaded or created).
	state *ebpf.Map
}

// ErrPinLocked is returned (wrapped) by New when another process holds the
// pin path: a second instance, or a test, must use its own.
var ErrPinLocked = errors.New("pin path in use by another lineaged")

// openPinDir makes sure path is a directory on a bpf filesystem (mounting
// one at /sys/fs/bpf when none is there and path is under it), creates it
// 0700 and takes an exclusive lock on it, held until close. The lock is a
// flock on the directory: the kernel drops it when the holder dies, so a
// killed sensor never leaves it behind.
func openPinDir(path string) (*pinDir, error) {
	if !filepath.IsAbs(path) {
		return nil, fmt.Errorf("pin path %q: not absolute", path)
	}
	path = filepath.Clean(path)
	if err := ensureBPFFS(filepath.Dir(path)); err != nil {
		return nil, err
	}
	if err := os.Mkdir(path, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
		return nil, fmt.Errorf("pin path %s: %w", path, err)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("pin path %s: %w", path, err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, fmt.Errorf("pin path %s: %w (give this instance its own kernel.pin_path)", path, ErrPinLocked)
		}
		return nil, fmt.Errorf("pin path %s: lock: %w", path, err)
	}
	return &pinDir{path: path, lock: f}, nil
}

// ensureBPFFS checks that dir is on a bpf filesystem, mounting one on
// /sys/fs/bpf if dir is under it and nothing is mounted there yet.
func ensureBPFFS(dir string) error {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err == nil && st.Type == bpffsMagic {
		return nil
	}
	const base = "/sys/fs/bpf"
	if dir != base && !strings.HasPrefix(dir, base+"/") {
		return fmt.Errorf("pin path %s: not on a bpf filesystem (mount one, or use a path under %s)", dir, base)
	}
	var bst unix.Statfs_t
	if err := unix.Statfs(base, &bst); err != nil {
		return fmt.Errorf("pin path: %s: %w", base, err)
	}
	if bst.Type != bpffsMagic {
		if err := unix.Mount("bpf", base, "bpf", 0, "mode=0700"); err != nil {
			return fmt.Errorf("pin path: mount bpffs on %s: %w", base, err)
		}
	}
	if dir != base {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return fmt.Errorf("pin path: %w", err)
		}
	}
	return nil
}

func (d *pinDir) file(name string) string { return filepath.Join(d.path, name) }

// pinName is the pin of object name of kind ("map", "prog", "link",
// "<obj>_prog", ...).
func pinName(kind, name string) string {
	return kind + "_" + strings.ReplaceAll(name, ".", "_")
}

// readRecord loads the state map and its record; false when there is none
// or it is unreadable.
func (d *pinDir) readRecord() (pinRecord, bool) {
	var rec pinRecord
	m, err := ebpf.LoadPinnedMap(d.file("state"), nil)
	if err != nil {
		return rec, false
	}
	if err := m.Lookup(uint32(0), &rec); err != nil {
		m.Close()
		return rec, false
	}
	d.state = m
	return rec, true
}

// writeRecord stores rec in the state map, creating and pinning it when
// needed. It is written last at a fresh load, so a start that died midway
// leaves no valid record and the next one reloads.
func (d *pinDir) writeRecord(rec pinRecord) error {
	if d.state == nil {
		m, err := ebpf.NewMap(&ebpf.MapSpec{
			Name:       "lineaged_state",
			Type:       ebpf.Array,
			KeySize:    4,
			ValueSize:  uint32(binary.Size(rec)),
			MaxEntries: 1,
		})
		if err != nil {
			return fmt.Errorf("pin state map: %w", err)
		}
		if err := m.Pin(d.file("state")); err != nil {
			m.Close()
			return fmt.Errorf("pin state map: %w", err)
		}
		d.state = m
	}
	if err := d.state.Update(uint32(0), &rec, ebpf.UpdateAny); err != nil {
		return fmt.Errorf("pin state: %w", err)
	}
	return nil
}

// clear removes every pin in the directory, which detaches pinned links
// no process holds and frees what only the pins kept.
func (d *pinDir) clear() error {
	if d.state != nil {
		d.state.Close()
		d.state = nil
	}
	return clearPins(d.path)
}

func clearPins(path string) error {
	ents, err := os.ReadDir(path)
	if err != nil {
		return fmt.Errorf("pin path %s: %w", path, err)
	}
	var errs []error
	for _, e := range ents {
		if err := os.Remove(filepath.Join(path, e.Name())); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (d *pinDir) close() error {
	if d == nil {
		return nil
	}
	if d.state != nil {
		d.state.Close()
	}
	return d.lock.Close() // releases the flock
}

// Unpin removes lineaged's pinned kernel state at path: the programs stop
// running once no process holds them. It takes the pin lock, so it fails
// while a sensor runs on path (ErrPinLocked). The package's purge runs it;
// tests run it on their own paths.
func Unpin(path string) error {
	d, err := openPinDir(path)
	if err != nil {
		return err
	}
	defer d.close()
	if err := d.clear(); err != nil {
		return err
	}
	return os.Remove(d.path)
}

// PinStatus describes the pinned state at cfg.PinPath without changing
// it: what is pinned, whether a sensor holds it, how the last start found
// it (PinState) and what the next start would do.
func PinStatus(cfg Config) string {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return err.Error()
	}
	d := &pinDir{path: filepath.Clean(cfg.PinPath)}
	locked := ""
	if f, err := os.Open(d.path); err == nil {
		if unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB) != nil {
			locked = "; held by a running sensor"
		}
		f.Close()
	} else {
		return fmt.Sprintf("%s: nothing pinned (the next start loads and pins)", d.path)
	}
	rec, ok := d.readRecord()
	if d.state != nil {
		d.state.Close()
	}
	switch {
	case !ok:
		return fmt.Sprintf("%s: no valid state record (the next start unpins and reloads)%s", d.path, locked)
	case rec.Version != pinVersion(cfg):
		return fmt.Sprintf("%s: objects of another version or configuration (the next start reloads them); last start: %s%s",
			d.path, pinStates[rec.LastStart%uint32(len(pinStates))], locked)
	}
	return fmt.Sprintf("%s: objects of this version (a restart keeps them and drains the ring); last start: %s%s",
		d.path, pinStates[rec.LastStart%uint32(len(pinStates))], locked)
}
