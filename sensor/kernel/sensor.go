//go:build linux

// Package kernel loads lineaged's BPF programs, reads their ring buffer
// without ever blocking it, decodes records into package sensor's raw
// events and keeps the kernel's agent-session table seeded. sensor.go loads
// and closes, config.go is the configuration, reader.go the ring reader.
package kernel

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/ringbuf"
	"github.com/lineaged/lineaged/sensor"
	"golang.org/x/sys/unix"
)

// objectLoader is a BPF object loaded after process.bpf.c, sharing its maps
// through MapReplacements, with the decoder for the record kinds it emits.
// extraObjects (per architecture) lists them.
type objectLoader struct {
	name   string
	load   func(m sharedMaps, cfg Config) (io.Closer, error)
	kinds  []sensor.Kind
	decode func(b []byte, ev *sensor.Event) error
	// bytes is the object file, hashed into the pin version (pin.go).
	bytes []byte
	// progs names the object's programs, each attached once by load
	// (tp_btf); links returns their links from what load returned, by
	// program name, for pinning.
	progs []string
	links func(io.Closer) map[string]link.Link
}

// Stats are the sensor's counters since New.
type Stats struct {
	Records      uint64 // ring-buffer records read
	DecodeErrors uint64
	// QueueDrops counts decoded events that found the hand-off queue full.
	QueueDrops uint64
	// KernelLost sums the kernel's failed ring-buffer reservations.
	KernelLost uint64
	// SessionsFull counts session members the kernel could not track
	// because the sessions map was full (Config.SessionMapSize).
	SessionsFull uint64
	// Skipped sums the runs the kernel skipped because the program was
	// already running on that CPU (skipped.go), since the programs were
	// loaded.
	Skipped uint64
	// Shed counts file and network records the kernel dropped to keep
	// room in the ring for process records (Config.ShedBytes).
	Shed uint64
	// OverBudget counts file and network records of sessions over their
	// budget the kernel dropped (Config.BudgetBytes).
	OverBudget uint64
	// OpenArgsFull counts members' opens and fchmods whose entry found the
	// table of calls in flight full (threads parked inside opens), decoded
	// at their exit instead: reported, with fd_changed maybe set where no
	// descriptor changed (bpf/fileio.bpf.c fio_args_full).
	OpenArgsFull uint64
	Delivered    uint64 // events handed to Run's out channel
}

// Sensor is the live BPF source.
type Sensor struct {
	// endThreadFunc, when set, replaces endOwnThread (integrity.go).
	endThreadFunc func() int
	// afterBeatFunc, when set, runs between the self-check's read of the
	// heartbeat and its look at the thread it ended (integrity.go).
	afterBeatFunc func()

	cfg    Config
	log    *slog.Logger
	maps   sharedMaps
	coll   *ebpf.Collection
	extras []io.Closer
	enf    *enforcement
	links  []link.Link
	// linkNames names the program of each of links, for pinning.
	linkNames []string
	rd        *ringbuf.Reader
	// pins is the locked pin directory (Config.PinPath), nil when off;
	// pinState says how this start found it.
	pins     *pinDir
	pinState PinState
	// lossBase are the kernel loss counts a previous instance already
	// reported (pin.go); selfKey is this process, as registered with
	// the tamper programs (tamper.go).
	lossBase [EventKindMax]uint64
	selfKey  sensor.ProcKey
	// shadow is the sessions map as the sensor knows it (integrity.go).
	shadow membership
	// self is what the self-check last found wrong (selfstate.go).
	self selfState
	// umh registers members' usermode helpers (umh.go); made by New,
	// used by Run's goroutine only.
	umh *umhRegistry
	// tamperLSM refuses tampering where the bpf LSM runs, else
	// tamperWhy says why not (tamper_lsm.go).
	tamperLSM *lsmObject
	tamperWhy string
	// pathLSM adds the identity of the object a member's path call acts
	// on to its file record where the bpf LSM runs, else pathWhy says why
	// not (path_lsm.go).
	pathLSM *lsmObject
	pathWhy string
	// pending are events Run sends first (a previous instance's death).
	pending []sensor.Event
	decoder [EventKindMax]func(b []byte, ev *sensor.Event) error

	records, decodeErrs, delivered atomic.Uint64
	queueDrops                     [EventKindMax]atomic.Uint64
	// readStop ends the reader's wait for room (reader.go);
	// shedReported is the shed records reported so far, by kind (Run's
	// goroutine only).
	readStop     chan struct{}
	shedReported [EventKindMax]uint64
	budget       budgetState
	// queueBudget is what the reader dropped over a session's budget;
	// sessionBudget whether the budget is on (Config.BudgetBytes below
	// Config.ShedBytes): without it a full queue drops every file record.
	queueBudget   queueBudgetDrops
	sessionBudget bool

	runOnce   sync.Once
	closeOnce sync.Once
}

// EventKindMax bounds raw kinds (bpf/lineaged.h EV_KIND_MAX).
const EventKindMax = 16

// lostSessionsFull and lostSessionsFullExec are the loss-counter slots of
// processes that found the sessions map full (bpf/maps.h
// LOST_SESSIONS_FULL, LOST_SESSIONS_FULL_EXEC): children of members (each
// an untracked fork record), and session roots and usermode helpers (each
// an untracked exec record).
const (
	lostSessionsFull     = EventKindMax - 1
	lostSessionsFullExec = EventKindMax - 2
)

// New checks the host, loads and attaches the programs. Errors about the
// host (privileges, BTF) are one line naming what is missing.
func New(cfg Config, log *slog.Logger) (*Sensor, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if log == nil {
		return nil, errors.New("sensor: nil logger")
	}
	if err := preflight(); err != nil {
		return nil, err
	}
	s := &Sensor{cfg: cfg, log: log.With("component", "sensor"), sessionBudget: newWakeupPolicy(cfg).Budget != 0}
	if err := s.load(); err != nil {
		s.Close()
		return nil, err
	}
	// The settings' values now, before any event of a member is read.
	s.umh = newUMHRegistry(s.coll.Maps[processMapUmhHelpers], s.log)
	return s, nil
}

// load brings the BPF side up, each step a helper. With a pin path
// (pin.go) it first looks there: pinned objects of this version are taken
// as they are, attachments included (pinload.go); otherwise the objects are
// loaded afresh (loadFresh) and pinned. Then the deny-exec enforcement, the
// ring-buffer reader, and the sensor's registration with its tamper
// programs (tamper.go). On error New closes whatever was made.
func (s *Sensor) load() error {
	spec, err := s.processSpec()
	if err != nil {
		return err
	}
	for _, k := range []sensor.Kind{sensor.KindExec, sensor.KindFork, sensor.KindExit} {
		s.decoder[k] = Decode
	}
	s.decoder[sensor.KindTamper] = decodeTamper
	s.pinState = PinOff
	reused := false
	if s.cfg.PinPath != "" {
		if reused, err = s.openPins(spec); err != nil {
			return err
		}
	}
	if !reused {
		if err := s.loadFresh(spec); err != nil {
			return err
		}
	} else if len(s.cfg.DenyKeys) > 0 || len(s.cfg.DenyInodes) > 0 || s.cfg.DenyLater {
		if err := s.loadDenyExec(); err != nil {
			return err
		}
	}
	if s.pins != nil && !reused {
		if err := s.pinAll(); err != nil {
			return err
		}
	}
	s.rd, err = ringbuf.NewReader(s.maps.Events)
	if err != nil {
		return fmt.Errorf("sensor: ring buffer reader: %w", err)
	}
	s.loadTamperLSM()
	s.loadPathLSM()
	return s.registerSelf()
}

// loadFresh loads and attaches every object: the maps every object
// shares, the process programs and their recogniser table, the file and
// network object, the deny-exec enforcement, and last the process
// programs' attachments.
func (s *Sensor) loadFresh(spec *ebpf.CollectionSpec) error {
	if err := s.createSharedMaps(spec); err != nil {
		return err
	}
	repl, err := s.maps.prepare(spec)
	if err != nil {
		return fmt.Errorf("sensor: process object: %w", err)
	}
	s.coll, err = ebpf.NewCollectionWithOptions(spec, ebpf.CollectionOptions{MapReplacements: repl})
	if err != nil {
		return fmt.Errorf("sensor: load process programs: %w", oneLine(err))
	}
	// The recognisers must be in place before the exec program runs.
	if err := s.fillRecognisers(); err != nil {
		return err
	}
	if !s.cfg.ProcessOnly {
		if err := s.loadExtras(); err != nil {
			return err
		}
	}
	if len(s.cfg.DenyKeys) > 0 || len(s.cfg.DenyInodes) > 0 || s.cfg.DenyLater {
		if err := s.loadDenyExec(); err != nil {
			return err
		}
	}
	return s.attachProcess()
}

// processSpec is the process object's spec sized and set from the config:
// map sizes and scope are fixed at load time, in the object's maps and
// read-only variables (ring-buffer batching: sharedMaps.prepare).
func (s *Sensor) processSpec() (*ebpf.CollectionSpec, error) {
	spec, err := pickWalker(loadProcess, loadProcessLoop)
	if err != nil {
		return nil, fmt.Errorf("sensor: process object: %w", err)
	}
	spec.Maps[processMapSessions].MaxEntries = s.cfg.SessionMapSize
	spec.Maps[processMapEvents].MaxEntries = s.cfg.RingBufferSize
	if s.cfg.Scope == ScopeAll {
		if err := spec.Variables[processVarScopeAll].Set(uint8(1)); err != nil {
			return nil, fmt.Errorf("sensor: set scope: %w", err)
		}
	}
	if s.cfg.HoldExeFlags != 0 {
		if err := spec.Variables[processVarHoldExeFlags].Set(uint16(s.cfg.HoldExeFlags)); err != nil {
			return nil, fmt.Errorf("sensor: set hold flags: %w", err)
		}
	}
	if s.cfg.HoldUnseen {
		if err := spec.Variables[processVarHoldUnseen].Set(uint8(1)); err != nil {
			return nil, fmt.Errorf("sensor: set the hold of unseen images: %w", err)
		}
	}
	return spec, nil
}

// createSharedMaps creates the maps every object shares (bpf/maps.h) from
// the process object's spec: they are made here, not by the collection, so
// that the later objects can be handed the same maps.
func (s *Sensor) createSharedMaps(spec *ebpf.CollectionSpec) error {
	s.maps.Wake = newWakeupPolicy(s.cfg)
	return s.maps.create(spec)
}

// fillRecognisers writes the agent recogniser table (Config.Recognisers)
// into the kernel's recognisers map, which the exec program reads to start
// sessions. Every slot is written, those past the table zero (the end
// marker), so a table someone changed is restored whole.
func (s *Sensor) fillRecognisers() error {
	table, err := s.recogniserTable()
	if err != nil {
		return err
	}
	for i := range table {
		if err := s.coll.Maps[processMapRecognisers].Update(uint32(i), &table[i], ebpf.UpdateAny); err != nil {
			return fmt.Errorf("sensor: load recogniser %d: %w", i, err)
		}
	}
	return nil
}

// recogniserTable is the recognisers map's whole content: the encoded
// table, then zero slots.
func (s *Sensor) recogniserTable() ([]processRecogniser, error) {
	table, err := kernelRecognisers(s.cfg.Recognisers)
	if err != nil {
		return nil, fmt.Errorf("sensor: %w", err)
	}
	full := make([]processRecogniser, s.coll.Maps[processMapRecognisers].MaxEntries())
	copy(full, table)
	return full, nil
}

// loadExtras loads the objects after the process one (extraObjects: file
// and network) on the shared maps and registers their decoders.
func (s *Sensor) loadExtras() error {
	for _, o := range extraObjects() {
		c, err := o.load(s.maps, s.cfg)
		if err != nil {
			return fmt.Errorf("sensor: %s object: %w", o.name, oneLine(err))
		}
		s.extras = append(s.extras, c)
		for _, k := range o.kinds {
			s.decoder[k] = o.decode
		}
		s.log.Info("object attached", "object", o.name, "programs", o.progs)
	}
	if detail, err := iouringCheck(); err != nil {
		s.log.Warn("io_uring requests", "err", err)
	} else {
		s.log.Info("io_uring requests", "detail", detail)
	}
	return nil
}

// loadDenyExec loads the deny-exec enforcement for Config.DenyKeys, logs
// which hooks enforce it (they differ by kernel) and registers the decoder
// of its KindDeny records.
func (s *Sensor) loadDenyExec() error {
	enf, err := loadEnforcement(s.maps, denyRules{s.cfg.DenyKeys, s.cfg.DenyInodes}, lsmListFile)
	if err != nil {
		return fmt.Errorf("sensor: %w", err)
	}
	s.enf = enf
	s.log.Info("deny-exec enforcement", "hooks", s.enf.hooks, "reason", s.enf.reason, "keys", len(s.cfg.DenyKeys), "inodes", len(s.cfg.DenyInodes))
	s.decoder[sensor.KindDeny] = decodeDeny
	return nil
}

// processAttached are the process programs attached at tp_btf, in order;
// the tamper programs on syscall tracepoints follow (tamperTracepoints).
var processAttached = []string{processProgHandleExec, processProgHandleFork, processProgHandleExit, processProgTamperSignal}

// attachProcess attaches the exec, fork and exit programs to their
// tracepoints (tp_btf), then the tamper programs (tamper.go); from here on
// the kernel emits events.
func (s *Sensor) attachProcess() error {
	for _, name := range processAttached {
		if err := s.attachOne(name); err != nil {
			if name == processProgTamperSignal {
				s.log.Warn("signals to the sensor are not reported", "err", err)
				continue
			}
			return err
		}
	}
	if mounted, err := ensureTracefs(); err != nil {
		s.log.Warn("tamper programs on syscall tracepoints cannot attach", "err", err)
	} else if mounted {
		s.log.Info("mounted tracefs for the tamper programs' syscall tracepoints", "dir", tracefsDir)
	}
	for name := range tamperTracepoints {
		if err := s.attachOne(name); err != nil {
			s.log.Warn("tamper program not attached", "program", name, "err", err)
		}
	}
	return nil
}

// attachOne attaches the process program name where it belongs (tp_btf,
// or its syscall tracepoint) and keeps the link.
func (s *Sensor) attachOne(name string) error {
	var (
		l   link.Link
		err error
	)
	if tp, ok := tamperTracepoints[name]; ok {
		l, err = link.Tracepoint("syscalls", tp, s.coll.Programs[name], nil)
	} else {
		l, err = link.AttachTracing(link.TracingOptions{
			Program:    s.coll.Programs[name],
			AttachType: ebpf.AttachTraceRawTp,
		})
	}
	if err != nil {
		return fmt.Errorf("sensor: attach %s: %w", name, err)
	}
	s.links = append(s.links, l)
	s.linkNames = append(s.linkNames, name)
	return nil
}

// oneLine keeps the first line of an error whose text spans many (a
// verifier log); the full error stays reachable through errors.As.
func oneLine(err error) error {
	if !strings.Contains(err.Error(), "\n") {
		return err
	}
	return firstLine{err}
}

type firstLine struct{ err error }

func (e firstLine) Error() string {
	msg := e.err.Error()
	return msg[:strings.IndexByte(msg, '\n')] + " (…)"
}

func (e firstLine) Unwrap() error { return e.err }

func bootNs() uint64 {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts); err != nil {
		return 0
	}
	return uint64(ts.Nano())
}

// Stats returns the counters. KernelLost is read from the kernel now.
func (s *Sensor) Stats() Stats {
	st := Stats{
		Records:      s.records.Load(),
		DecodeErrors: s.decodeErrs.Load(),
		Delivered:    s.delivered.Load(),
		OpenArgsFull: s.openArgsFull(),
	}
	for k := range s.queueDrops {
		st.QueueDrops += s.queueDrops[k].Load()
	}
	if s.maps.Lost != nil {
		if kl, err := s.kernelLost(); err == nil {
			for k, v := range kl {
				if k == lostSessionsFull || k == lostSessionsFullExec {
					st.SessionsFull += v
				} else {
					st.KernelLost += v
				}
			}
		}
	}
	for _, v := range s.missedRuns() {
		st.Skipped += v
	}
	if s.maps.Lost != nil {
		if shed, err := s.shedLost(); err == nil {
			for _, v := range shed {
				st.Shed += v
			}
		}
		if over, err := s.budgetLost(); err == nil {
			for _, v := range over {
				st.OverBudget += v
			}
		}
		st.OverBudget += s.queueBudget.dropped()
	}
	return st
}

// Close detaches the programs and frees the maps, except what is pinned
// (Config.PinPath), which keeps running for the next instance; Unpin
// removes that. It is safe to call more than once and after a failed New.
func (s *Sensor) Close() error {
	var errs []error
	s.closeOnce.Do(func() {
		// A graceful stop is not a kill: the exit program must not
		// report it (tamper.go).
		s.unregisterSelf()
		// Every object at once: each detached link waits out a grace
		// period in the kernel (closeLinks).
		closers := append([]io.Closer{closerFunc(func() error { return errors.Join(closeLinks(s.links)...) })}, s.extras...)
		if s.enf != nil {
			closers = append(closers, s.enf)
		}
		errs = append(errs, closeAll(closers)...)
		if s.rd != nil {
			errs = append(errs, s.rd.Close())
		}
		if s.coll != nil {
			s.coll.Close()
		}
		errs = append(errs, s.maps.close()...)
		errs = append(errs, s.pins.close())
	})
	return errors.Join(errs...)
}

type closerFunc func() error

func (f closerFunc) Close() error { return f() }

// closeLinks detaches links at once (closeAll). Nil links are skipped.
func closeLinks(links []link.Link) []error {
	cs := make([]io.Closer, 0, len(links))
	for _, l := range links {
		if l != nil {
			cs = append(cs, l)
		}
	}
	return closeAll(cs)
}

// closeAll closes cs at once. The kernel waits for a grace period before
// it returns from each detach of a tracepoint or trampoline link: one
// after another, a sensor's eight links took 285 ms to let go on a quiet
// 2-CPU host (20 to 60 ms each); in parallel the waits overlap.
func closeAll(cs []io.Closer) []error {
	errs := make([]error, len(cs))
	var wg sync.WaitGroup
	for i, c := range cs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = c.Close()
		}()
	}
	wg.Wait()
	return errs
}
