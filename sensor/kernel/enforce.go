//go:build linux

package kernel

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"
)

// Enforcement paths reported by Sensor.Hooks.
const (
	// HooksLSM: deny-exec runs in lsm/bprm_check_security; a denied exec
	// fails with EPERM.
	HooksLSM = "lsm"
	// HooksTracepoint: deny-exec runs in tp_btf/sched_process_exec and
	// kills a denied image with SIGKILL before it runs user code. Also the
	// value when no deny list is configured (every hook is a tracepoint).
	HooksTracepoint = "tracepoint"
)

// lsmListFile names the active LSMs, in boot order.
const lsmListFile = "/sys/kernel/security/lsm"

// enforcement is the loaded deny-exec object: the LSM one or the
// tracepoint one, never both.
type enforcement struct {
	coll   *ebpf.Collection
	link   link.Link
	hooks  string
	reason string
	// attach attaches the program again (the self-check's repair).
	attach func(*ebpf.Program) (link.Link, error)
}

func (e *enforcement) Close() error {
	var errs []error
	if e.link != nil {
		errs = append(errs, e.link.Close())
	}
	if e.coll != nil {
		e.coll.Close()
	}
	return errors.Join(errs...)
}

// program returns the loaded program, for verifier statistics.
func (e *enforcement) program() (string, *ebpf.Program) {
	for name, p := range e.coll.Programs {
		return name, p
	}
	return "", nil
}

// loadEnforcement probes for the richer path and falls back: it loads and
// attaches the LSM object and keeps it when `bpf` is among the active LSMs
// (lsmFile); otherwise it loads the tracepoint object and reports why in
// reason. Both share the sessions map, ring buffer and loss counters, and
// are given the deny keys before they attach, so no exec is checked
// against a partial list.
func loadEnforcement(m sharedMaps, keys denyRules, lsmFile string) (*enforcement, error) {
	why := ""
	lsmSpec, err := pickWalker(loadEnforceLsm, loadEnforceLsmLoop)
	if err != nil {
		return nil, fmt.Errorf("enforce_lsm object: %w", err)
	}
	attachLSM := func(p *ebpf.Program) (link.Link, error) {
		return link.AttachLSM(link.LSMOptions{Program: p})
	}
	coll, l, err := loadDenyObject(lsmSpec, m, keys, enforceLsmProgEnforceBprmCheck, attachLSM)
	if err != nil {
		why = "LSM refused: " + refusal(err)
	} else if active, lerr := bpfLSMActive(lsmFile); !active {
		// An attached LSM program that the kernel never calls (5.10
		// without bpf in lsm=) would enforce nothing.
		l.Close()
		coll.Close()
		why = "bpf LSM not active: " + lerr.Error()
	} else {
		return &enforcement{coll: coll, link: l, hooks: HooksLSM, reason: "bprm_check_security", attach: attachLSM}, nil
	}

	tpSpec, err := pickWalker(loadEnforceTp, loadEnforceTpLoop)
	if err != nil {
		return nil, fmt.Errorf("enforce_tp object: %w", err)
	}
	attachTp := func(p *ebpf.Program) (link.Link, error) {
		return link.AttachTracing(link.TracingOptions{Program: p, AttachType: ebpf.AttachTraceRawTp})
	}
	coll, l, err = loadDenyObject(tpSpec, m, keys, enforceTpProgEnforceExec, attachTp)
	if err != nil {
		return nil, fmt.Errorf("deny-exec: %s; tracepoint fallback: %w", why, oneLine(err))
	}
	return &enforcement{coll: coll, link: l, hooks: HooksTracepoint, reason: why, attach: attachTp}, nil
}

// denyRules are what the enforcement objects are loaded with: path keys
// and file identities (Config.DenyKeys, Config.DenyInodes).
type denyRules struct {
	paths  map[string]uint32
	inodes map[DenyInode]uint32
}

// loadDenyObject loads one enforcement object with the shared maps, fills
// its deny maps and attaches its one program. Both objects declare their
// maps from the same headers (bpf/maps.h, bpf/enforce.h), so the
// enforceLsm names and key/value types serve for either.
func loadDenyObject(spec *ebpf.CollectionSpec, m sharedMaps, keys denyRules, prog string,
	attach func(*ebpf.Program) (link.Link, error)) (*ebpf.Collection, link.Link, error) {
	repl, err := m.prepare(spec)
	if err != nil {
		return nil, nil, err
	}
	spec.Maps[enforceLsmMapDenyExec].MaxEntries = uint32(max(len(keys.paths), 1))
	coll, err := ebpf.NewCollectionWithOptions(spec, ebpf.CollectionOptions{MapReplacements: repl})
	if err != nil {
		return nil, nil, fmt.Errorf("load: %w", err)
	}
	deny := coll.Maps[enforceLsmMapDenyExec]
	for path, idx := range keys.paths {
		var k enforceLsmDenyKey
		for i := range len(path) {
			k.Path[i] = int8(path[i])
		}
		if err := deny.Update(&k, &enforceLsmDenyRule{Index: idx}, ebpf.UpdateAny); err != nil {
			coll.Close()
			return nil, nil, fmt.Errorf("deny entry %q: %w", path, err)
		}
	}
	for ino, idx := range keys.inodes {
		if err := addDenyInode(coll.Maps[enforceLsmMapDenyInodes], ino, idx); err != nil {
			coll.Close()
			return nil, nil, err
		}
	}
	l, err := attach(coll.Programs[prog])
	if err != nil {
		coll.Close()
		return nil, nil, fmt.Errorf("attach %s: %w", prog, err)
	}
	return coll, l, nil
}

// bpfLSMActive reports whether "bpf" is in the active LSM list; when not,
// the error says what was found.
func bpfLSMActive(file string) (bool, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return false, fmt.Errorf("cannot tell, %s missing (securityfs not mounted)", file)
		}
		return false, fmt.Errorf("cannot tell: %w", err)
	}
	list := strings.TrimSpace(string(b))
	for _, name := range strings.Split(list, ",") {
		if name == "bpf" {
			return true, nil
		}
	}
	return false, fmt.Errorf("active LSMs are %q (boot with bpf in lsm=)", list)
}

// refusal names why the kernel refused a program, briefly.
func refusal(err error) string {
	for _, e := range []unix.Errno{unix.EPERM, unix.EINVAL, unix.EOPNOTSUPP, unix.ENOENT} {
		if errors.Is(err, e) {
			return e.Error()
		}
	}
	if errors.Is(err, ebpf.ErrNotSupported) {
		return "not supported by this kernel"
	}
	return oneLine(err).Error()
}

// Hooks reports the deny-exec enforcement path in use and why: HooksLSM
// with the hook name, or HooksTracepoint with the reason the LSM path was
// not taken ("LSM refused: operation not permitted", "bpf LSM not active:
// ..."), or with "no deny_exec entries" when nothing is enforced. For the
// sensor.start event (event.Sensor.Hooks and Reason).
func (s *Sensor) Hooks() (name, reason string) {
	if s.enf == nil {
		return HooksTracepoint, "no deny_exec entries"
	}
	return s.enf.hooks, s.enf.reason
}

// HooksDetail formats a Hooks result the way doctor prints it:
// "lsm (bprm_check_security)" or "tracepoint+SIGKILL (LSM refused: ...)".
func HooksDetail(name, reason string) string {
	if name == HooksTracepoint {
		name = "tracepoint+SIGKILL"
	}
	if reason == "" {
		return name
	}
	return name + " (" + reason + ")"
}

// probeEnforcement loads the enforcement objects the way New would, with
// maps of its own and one rule that matches nothing, and reports which path
// this host takes.
func probeEnforcement() (name, reason string, err error) {
	spec, err := pickWalker(loadEnforceLsm, loadEnforceLsmLoop)
	if err != nil {
		return "", "", err
	}
	var m sharedMaps
	for _, p := range []struct {
		name string
		dst  **ebpf.Map
	}{{enforceLsmMapSessions, &m.Sessions}, {enforceLsmMapEvents, &m.Events}, {enforceLsmMapRingbufLost, &m.Lost}} {
		ms := spec.Maps[p.name].Copy()
		if p.name == enforceLsmMapEvents {
			ms.MaxEntries = uint32(os.Getpagesize())
		}
		mp, err := ebpf.NewMap(ms)
		if err != nil {
			return "", "", fmt.Errorf("create map %s: %w", p.name, err)
		}
		defer mp.Close()
		*p.dst = mp
	}
	keys := denyRules{paths: map[string]uint32{"/nonexistent/lineaged-doctor-probe": 0}}
	e, err := loadEnforcement(m, keys, lsmListFile)
	if err != nil {
		return "", "", err
	}
	defer e.Close()
	return e.hooks, e.reason, nil
}

// addDenyInode adds one identity rule to the deny_inodes map.
func addDenyInode(m *ebpf.Map, ino DenyInode, idx uint32) error {
	k := enforceLsmDenyInode{Dev: kernelDev(ino.Dev), Ino: ino.Inode}
	if err := m.Update(&k, &enforceLsmDenyRule{Index: idx}, ebpf.UpdateAny); err != nil {
		return fmt.Errorf("deny inode dev %d:%d inode %d: %w", unix.Major(ino.Dev), unix.Minor(ino.Dev), ino.Inode, err)
	}
	return nil
}

// DenyInode adds a file, by identity, to the files session members must
// not run, while the sensor runs: every later exec of it by a member is
// refused (or killed) in the kernel, reported with rule index idx. For
// rules that find files at run time (a copy of a binary denied by SHA-256,
// once hashed). Needs the enforcement loaded (Config.DenyLater or any deny
// rule); adding a file already present updates its index.
func (s *Sensor) DenyInode(ino DenyInode, idx uint32) error {
	if s.enf == nil {
		return errors.New("deny inode: no deny-exec enforcement loaded (Config.DenyLater unset)")
	}
	if ino.Inode == 0 {
		return fmt.Errorf("deny inode %+v: inode 0", ino)
	}
	return addDenyInode(s.enf.coll.Maps[enforceLsmMapDenyInodes], ino, idx)
}
