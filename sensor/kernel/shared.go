//go:build linux

package kernel

import (
	"fmt"

	"github.com/cilium/ebpf"
)

// sharedMaps are created once and handed to every object (bpf/maps.h), with
// the ring-buffer wakeup policy every object applies (bpf/lib/wakeup.h). A
// nil map lets the object create its own (a test loading one object).
type sharedMaps struct {
	Sessions *ebpf.Map
	Events   *ebpf.Map
	Lost     *ebpf.Map
	// Wakeup holds the time of the last forced wakeup, so the objects
	// share one budget of wakeups.
	Wakeup *ebpf.Map
	// Forks holds the parked fork records (bpf/lib/forks.h).
	Forks *ebpf.Map
	// Repeats counts the read-only opens not reported, per process
	// (bpf/lib/repeats.h).
	Repeats *ebpf.Map
	// Wake is the wakeup policy: zero FlushNs is the kernel's default.
	Wake wakeupPolicy
}

// wakeupPolicy is Config.FlushInterval, Config.WakeupBytes and
// Config.ShedBytes as the BPF objects' read-only variables hold them.
type wakeupPolicy struct {
	FlushNs uint64
	Bytes   uint64
	// Shed is shed_bytes (bpf/lib/shed.h), set in the objects that
	// declare it (the file and network object).
	Shed uint64
	// Budget is budget_bytes (bpf/lib/shed.h); 0 when it is not below
	// Shed, where it would never act.
	Budget uint64
}

func newWakeupPolicy(cfg Config) wakeupPolicy {
	w := wakeupPolicy{Shed: uint64(cfg.ShedBytes)}
	if cfg.BudgetBytes < cfg.ShedBytes {
		w.Budget = uint64(cfg.BudgetBytes)
	}
	if cfg.FlushInterval > 0 {
		w.FlushNs, w.Bytes = uint64(cfg.FlushInterval), uint64(cfg.WakeupBytes)
	}
	return w
}

// varShedBytes and varBudgetBytes are the ring-priority thresholds
// (bpf/lib/shed.h).
const (
	varShedBytes   = "shed_bytes"
	varBudgetBytes = "budget_bytes"
)

// slots names the shared maps as every object declares them.
func (m *sharedMaps) slots() []struct {
	name string
	m    **ebpf.Map
} {
	return []struct {
		name string
		m    **ebpf.Map
	}{
		{processMapSessions, &m.Sessions},
		{processMapEvents, &m.Events},
		{processMapRingbufLost, &m.Lost},
		{processMapRingbufWakeup, &m.Wakeup},
		{processMapParkedForks, &m.Forks},
		{processMapOpenRepeats, &m.Repeats},
	}
}

// create makes every shared map from spec (the process object's, which
// declares them all, sized from config).
func (m *sharedMaps) create(spec *ebpf.CollectionSpec) error {
	for _, s := range m.slots() {
		mp, err := ebpf.NewMap(spec.Maps[s.name])
		if err != nil {
			return fmt.Errorf("sensor: create map %s: %w", s.name, err)
		}
		*s.m = mp
	}
	return nil
}

// prepare fits spec to the shared maps (a replacement must match its spec:
// sizes set from config) and sets the wakeup policy, and returns the
// replacements to load spec with.
func (m *sharedMaps) prepare(spec *ebpf.CollectionSpec) (map[string]*ebpf.Map, error) {
	repl := make(map[string]*ebpf.Map)
	for _, s := range m.slots() {
		if *s.m == nil {
			continue
		}
		ms, ok := spec.Maps[s.name]
		if !ok {
			return nil, fmt.Errorf("object declares no map %s", s.name)
		}
		ms.MaxEntries = (*s.m).MaxEntries()
		repl[s.name] = *s.m
	}
	if m.Wake.FlushNs > 0 {
		for name, v := range map[string]uint64{processVarFlushNs: m.Wake.FlushNs, processVarWakeupBytes: m.Wake.Bytes} {
			vs, ok := spec.Variables[name]
			if !ok {
				return nil, fmt.Errorf("object declares no variable %s", name)
			}
			if err := vs.Set(v); err != nil {
				return nil, fmt.Errorf("set %s: %w", name, err)
			}
		}
	}
	for name, v := range map[string]uint64{varShedBytes: m.Wake.Shed, varBudgetBytes: m.Wake.Budget} {
		if vs, ok := spec.Variables[name]; ok {
			if err := vs.Set(v); err != nil {
				return nil, fmt.Errorf("set %s: %w", name, err)
			}
		}
	}
	return repl, nil
}

// close closes the maps made by create.
func (m *sharedMaps) close() []error {
	var errs []error
	for _, s := range m.slots() {
		if *s.m != nil {
			errs = append(errs, (*s.m).Close())
		}
	}
	return errs
}
