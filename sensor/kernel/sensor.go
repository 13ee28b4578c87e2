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
	Delivered    uint64 // events handed to Run's out channel
}

// Sensor is the live BPF source.
type Sensor struct {
	cfg     Config
	log     *slog.Logger
	maps    sharedMaps
	coll    *ebpf.Collection
	extras  []io.Closer
	enf     *enforcement
	links   []link.Link
	rd      *ringbuf.Reader
	decoder [EventKindMax]func(b []byte, ev *sensor.Event) error

	records, decodeErrs, delivered atomic.Uint64
	queueDrops                     [EventKindMax]atomic.Uint64

	runOnce   sync.Once
	closeOnce sync.Once
}

// EventKindMax bounds raw kinds (bpf/lineaged.h EV_KIND_MAX).
const EventKindMax = 16

// lostSessionsFull is the loss-counter slot of processes that found the
// sessions map full (bpf/maps.h LOST_SESSIONS_FULL).
const lostSessionsFull = EventKindMax - 1

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
	s := &Sensor{cfg: cfg, log: log.With("component", "sensor")}
	if err := s.load(); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// load brings the BPF side up, each step a helper: the maps every object
// shares, the process programs and their recogniser table, the file and
// network object, the deny-exec enforcement, and last the process programs'
// attachments and the ring-buffer reader. On error New closes whatever was
// made.
func (s *Sensor) load() error {
	spec, err := s.processSpec()
	if err != nil {
		return err
	}
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
	for _, k := range []sensor.Kind{sensor.KindExec, sensor.KindFork, sensor.KindExit} {
		s.decoder[k] = Decode
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
	if err := s.attachProcess(); err != nil {
		return err
	}
	s.rd, err = ringbuf.NewReader(s.maps.Events)
	if err != nil {
		return fmt.Errorf("sensor: ring buffer reader: %w", err)
	}
	return nil
}

// processSpec is the process object's spec sized and set from the config:
// map sizes and scope are fixed at load time, in the object's maps and
// read-only variables (ring-buffer batching: sharedMaps.prepare).
func (s *Sensor) processSpec() (*ebpf.CollectionSpec, error) {
	spec, err := loadProcess()
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
// sessions.
func (s *Sensor) fillRecognisers() error {
	table, err := kernelRecognisers(s.cfg.Recognisers)
	if err != nil {
		return fmt.Errorf("sensor: %w", err)
	}
	for i := range table {
		if err := s.coll.Maps[processMapRecognisers].Update(uint32(i), &table[i], ebpf.UpdateAny); err != nil {
			return fmt.Errorf("sensor: load recogniser %d: %w", i, err)
		}
	}
	return nil
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

// attachProcess attaches the exec, fork and exit programs to their
// tracepoints (tp_btf); from here on the kernel emits events.
func (s *Sensor) attachProcess() error {
	for _, name := range []string{processProgHandleExec, processProgHandleFork, processProgHandleExit} {
		l, err := link.AttachTracing(link.TracingOptions{
			Program:    s.coll.Programs[name],
			AttachType: ebpf.AttachTraceRawTp,
		})
		if err != nil {
			return fmt.Errorf("sensor: attach %s (tp_btf): %w", name, err)
		}
		s.links = append(s.links, l)
	}
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
	}
	for k := range s.queueDrops {
		st.QueueDrops += s.queueDrops[k].Load()
	}
	if s.maps.Lost != nil {
		if kl, err := s.kernelLost(); err == nil {
			for k, v := range kl {
				if k == lostSessionsFull {
					st.SessionsFull += v
				} else {
					st.KernelLost += v
				}
			}
		}
	}
	return st
}

// AddSessionMembers puts already-running processes into the kernel session
// table (from a /proc seed). From then on the kernel inherits membership at
// fork. An entry the kernel already holds is kept: it is at least as recent
// (a member that exec'd a nested agent after attach).
func (s *Sensor) AddSessionMembers(members map[uint32]sensor.SessionRef) error {
	var errs []error
	for pid, ref := range members {
		if !ref.InSession() {
			continue
		}
		v := processSession{RootPid: ref.Root.PID, Agent: uint8(ref.Agent), RootStart: ref.Root.StartNs}
		err := s.maps.Sessions.Update(pid, &v, ebpf.UpdateNoExist)
		if err != nil && !errors.Is(err, ebpf.ErrKeyExist) {
			errs = append(errs, fmt.Errorf("session member %d: %w", pid, err))
		}
	}
	return errors.Join(errs...)
}

// Close detaches the programs and frees the maps. It is safe to call more
// than once and after a failed New.
func (s *Sensor) Close() error {
	var errs []error
	s.closeOnce.Do(func() {
		for _, l := range s.links {
			errs = append(errs, l.Close())
		}
		if s.rd != nil {
			errs = append(errs, s.rd.Close())
		}
		for _, c := range s.extras {
			errs = append(errs, c.Close())
		}
		if s.enf != nil {
			errs = append(errs, s.enf.Close())
		}
		if s.coll != nil {
			s.coll.Close()
		}
		errs = append(errs, s.maps.close()...)
	})
	return errors.Join(errs...)
}
