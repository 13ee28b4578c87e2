//go:build linux

package kernel

import (
	"errors"
	"fmt"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
)

// tamperLSM is the tamper refusal object (bpf/tamper_lsm.bpf.c), loaded
// where the kernel runs BPF LSM programs. It is loaded at every start, not
// pinned, like the deny-exec enforcement.
type tamperLSM struct {
	coll  *ebpf.Collection
	links []link.Link
	names []string // the program of each of links
}

func (t *tamperLSM) Close() error {
	var errs []error
	for _, l := range t.links {
		if l == nil { // lost, and not attached again (reattachExtra)
			continue
		}
		errs = append(errs, l.Close())
	}
	t.coll.Close()
	return errors.Join(errs...)
}

func (t *tamperLSM) programs() map[string]*ebpf.Program { return t.coll.Programs }

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

func (s *Sensor) tryTamperLSM() (*tamperLSM, error) {
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
	t := &tamperLSM{coll: coll}
	for _, name := range []string{tamperLsmProgTamperLsmMap, tamperLsmProgTamperLsmProg, tamperLsmProgTamperLsmPtrace} {
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
