//go:build linux

package kernel

import (
	"errors"
	"fmt"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
)

// lsmObject is an object of LSM programs loaded where the kernel runs BPF
// LSM programs: the tamper refusal (bpf/tamper_lsm.bpf.c) and the path
// identity hooks (bpf/path_lsm.bpf.c, path_lsm.go). It is loaded at every
// start, not pinned, like the deny-exec enforcement.
type lsmObject struct {
	coll  *ebpf.Collection
	links []link.Link
	names []string // the program of each of links
}

func (t *lsmObject) Close() error {
	// A nil link: lost, and not attached again (reattachExtra).
	errs := closeLinks(t.links)
	t.coll.Close()
	return errors.Join(errs...)
}

func (t *lsmObject) programs() map[string]*ebpf.Program { return t.coll.Programs }

// TamperHooks says how tampering with the sensor is met: "lsm" (bpf() on
// its objects and ptrace of it are refused, and reported) or "tracepoint"
// (reported only), with the reason for the latter.
func (s *Sensor) TamperHooks() (string, string) {
	if s.tamperLSM != nil {
		return HooksLSM, ""
	}
	return HooksTracepoint, s.tamperWhy
}

// loadTamperLSM loads and attaches the refusal programs when the bpf LSM
// is active; otherwise it says why not. Its failure is not the sensor's:
// the tracepoint programs still report.
func (s *Sensor) loadTamperLSM() {
	if active, err := bpfLSMActive(lsmListFile); !active {
		s.tamperWhy = "bpf LSM not active: " + err.Error()
		return
	}
	t, err := s.tryTamperLSM()
	if err != nil {
		s.tamperWhy = "LSM refused: " + refusal(err)
		s.log.Warn("tampering is reported, not refused", "reason", s.tamperWhy)
		return
	}
	s.tamperLSM = t
	s.extras = append(s.extras, t)
}

func (s *Sensor) tryTamperLSM() (*lsmObject, error) {
	spec, err := loadTamperLsm()
	if err != nil {
		return nil, err
	}
	repl, err := s.maps.prepare(spec)
	if err != nil {
		return nil, err
	}
	for _, name := range []string{processMapSensorSelf, processMapOwnObjects, processMapTamperSeen, processMapHeartbeat} {
		repl[name] = s.coll.Maps[name]
	}
	coll, err := ebpf.NewCollectionWithOptions(spec, ebpf.CollectionOptions{MapReplacements: repl})
	if err != nil {
		return nil, fmt.Errorf("load: %w", oneLine(err))
	}
	return attachLSMObject(coll, tamperLsmProgTamperLsmMap, tamperLsmProgTamperLsmProg, tamperLsmProgTamperLsmPtrace)
}

// attachLSMObject attaches the named programs of coll; on failure it
// closes what it took, coll included.
func attachLSMObject(coll *ebpf.Collection, names ...string) (*lsmObject, error) {
	t := &lsmObject{coll: coll}
	for _, name := range names {
		l, err := link.AttachLSM(link.LSMOptions{Program: coll.Programs[name]})
		if err != nil {
			t.Close()
			return nil, fmt.Errorf("attach %s: %w", name, err)
		}
		t.links = append(t.links, l)
		t.names = append(t.names, name)
	}
	return t, nil
}
