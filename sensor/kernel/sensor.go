//go:build linux

// Package sensor loads lineaged's BPF programs, reads their ring buffer
// without ever blocking it, decodes records into typed raw events and keeps
// the kernel's agent-session table seeded.
package kernel

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/ringbuf"
	"github.com/lineaged/lineaged/sensor"
	"golang.org/x/sys/unix"
)

// Scope selects which processes' events reach userspace.
type Scope uint8

// Scopes.
const (
	// ScopeAgents: only members of agent sessions (the default).
	ScopeAgents Scope = iota
	// ScopeAll: every process's exec, fork and exit.
	ScopeAll
)

// ParseScope reads a --scope value: "agents" (the default) or "all". The
// older spellings "sessions" and "session" are accepted for "agents".
func ParseScope(s string) (Scope, error) {
	switch s {
	case "", "agents", "sessions", "session":
		return ScopeAgents, nil
	case "all":
		return ScopeAll, nil
	}
	return 0, fmt.Errorf("scope %q: want \"agents\" or \"all\"", s)
}

// Config sizes and shapes the sensor. The zero value is usable: zero fields
// take the defaults below.
type Config struct {
	Scope Scope
	// SessionMapSize bounds the processes tracked as session members
	// (default 65536). A member that does not fit is not tracked.
	SessionMapSize uint32
	// RingBufferSize in bytes, a power of two and a multiple of the page
	// size (default 8 MiB).
	RingBufferSize uint32
	// QueueSize bounds decoded events waiting between the reader and Run's
	// consumer (default 16384). Overflow is counted and reported.
	QueueSize int
	// LossInterval is how often kernel and queue loss counters are summed
	// into KindLoss events (default 1s).
	LossInterval time.Duration
	// FlushInterval batches reads (default 4ms): while records keep
	// coming the reader collects them every FlushInterval and the kernel
	// does not wake it per record; the first record after a quiet period
	// wakes it at once. A wakeup per record costs the producing task an
	// irq_work and the reader several syscalls (measured by the exec
	// storm: 170µs of BPF time per exec inside a session without batching,
	// 68µs with). Negative: a wakeup per record (the kernel's default).
	FlushInterval time.Duration
	// WakeupBytes is the pending-data threshold for an early wakeup when
	// batching (default: an eighth of the ring buffer).
	WakeupBytes uint32
	// Recognisers is the agent recogniser table loaded into the kernel:
	// the execs that start a session (lineage/agent's table, compiled by
	// its Kernel method). Empty, no exec starts one: sessions then come
	// only from AddSessionMembers.
	Recognisers []sensor.Recogniser
	// ProcessOnly loads the process programs alone, without the file and
	// network object (benchmarks comparing the two).
	ProcessOnly bool
	// DenyKeys are the executables session members must not run, as the
	// policy stage builds them (lineage/policy DenyKeys): absolute paths,
	// exact ("/usr/bin/curl") or directory prefixes ending in '/'
	// ("/opt/tools/"), matched in the kernel against the resolved path of
	// the executed file as the exec'ing process sees it: from its own
	// root, so inside a chroot a rule names the chroot's paths
	// (bpf/enforce.h). Each key maps to the index of its rule, which the
	// KindDeny event reports (sensor.Deny.RuleIndex). Where the kernel runs
	// BPF LSM programs the exec fails with EPERM; elsewhere the image is
	// killed with SIGKILL before it runs (Hooks says which). With
	// DenyKeys and DenyInodes empty and DenyLater unset, nothing is
	// enforced and no enforcement program is loaded.
	DenyKeys map[string]uint32
	// DenyInodes are files session members must not run, by identity
	// (DenyInode), whatever path names them; each maps to the index of its
	// rule, as in DenyKeys. Matched before DenyKeys.
	DenyInodes map[DenyInode]uint32
	// DenyLater loads the enforcement even when DenyKeys and DenyInodes
	// are empty, so that DenyInode can add files at run time (rules by
	// SHA-256, whose copies are found only once hashed).
	DenyLater bool
}

// Defaults.
const (
	DefaultSessionMapSize = 65536
	DefaultRingBufferSize = 8 << 20
	DefaultQueueSize      = 16384
	DefaultLossInterval   = time.Second
	DefaultFlushInterval  = 4 * time.Millisecond
	// idleFlush bounds the delay of a record that raced the reader's
	// decision to stop polling (see bpf/process.bpf.c ringbuf_flags).
	idleFlush = 250 * time.Millisecond
)

func (c Config) withDefaults() (Config, error) {
	if c.Scope > ScopeAll {
		return c, fmt.Errorf("sensor config: unknown scope %d", c.Scope)
	}
	if c.SessionMapSize == 0 {
		c.SessionMapSize = DefaultSessionMapSize
	}
	if c.RingBufferSize == 0 {
		c.RingBufferSize = DefaultRingBufferSize
	}
	page := uint32(os.Getpagesize())
	if c.RingBufferSize&(c.RingBufferSize-1) != 0 || c.RingBufferSize%page != 0 {
		return c, fmt.Errorf("sensor config: ring buffer size %d must be a power of two and a multiple of %d", c.RingBufferSize, page)
	}
	if c.QueueSize == 0 {
		c.QueueSize = DefaultQueueSize
	}
	if c.QueueSize < 0 {
		return c, fmt.Errorf("sensor config: queue size %d is negative", c.QueueSize)
	}
	if c.LossInterval == 0 {
		c.LossInterval = DefaultLossInterval
	}
	if c.LossInterval < 0 {
		return c, fmt.Errorf("sensor config: loss interval %s is negative", c.LossInterval)
	}
	if c.FlushInterval == 0 {
		c.FlushInterval = DefaultFlushInterval
	}
	if c.WakeupBytes == 0 {
		c.WakeupBytes = c.RingBufferSize / 8
	}
	if c.WakeupBytes > c.RingBufferSize {
		return c, fmt.Errorf("sensor config: wakeup bytes %d exceed the ring buffer size %d", c.WakeupBytes, c.RingBufferSize)
	}
	if err := sensor.ValidateRecognisers(c.Recognisers); err != nil {
		return c, fmt.Errorf("sensor config: %w", err)
	}
	if err := validateDenyKeys(c.DenyKeys); err != nil {
		return c, fmt.Errorf("sensor config: %w", err)
	}
	if err := validateDenyInodes(c.DenyInodes); err != nil {
		return c, fmt.Errorf("sensor config: %w", err)
	}
	return c, nil
}

// sharedMaps are created once and handed to every object (bpf/maps.h).
type sharedMaps struct {
	Sessions *ebpf.Map
	Events   *ebpf.Map
	Lost     *ebpf.Map
}

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
	s.coll, err = ebpf.NewCollectionWithOptions(spec, ebpf.CollectionOptions{
		MapReplacements: map[string]*ebpf.Map{
			processMapSessions:    s.maps.Sessions,
			processMapEvents:      s.maps.Events,
			processMapRingbufLost: s.maps.Lost,
		},
	})
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
// map sizes, scope and ring-buffer batching are fixed at load time, in the
// object's maps and read-only variables.
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
	if s.cfg.FlushInterval > 0 {
		if err := spec.Variables[processVarWakeupBytes].Set(uint64(s.cfg.WakeupBytes)); err != nil {
			return nil, fmt.Errorf("sensor: set wakeup threshold: %w", err)
		}
		if err := spec.Variables[processVarFlushNs].Set(uint64(s.cfg.FlushInterval)); err != nil {
			return nil, fmt.Errorf("sensor: set flush interval: %w", err)
		}
	}
	return spec, nil
}

// createSharedMaps creates the maps every object shares (bpf/maps.h) from
// the process object's spec: they are made here, not by the collection, so
// that the later objects can be handed the same maps.
func (s *Sensor) createSharedMaps(spec *ebpf.CollectionSpec) error {
	for _, name := range []string{processMapSessions, processMapEvents, processMapRingbufLost} {
		m, err := ebpf.NewMap(spec.Maps[name])
		if err != nil {
			return fmt.Errorf("sensor: create map %s: %w", name, err)
		}
		switch name {
		case processMapSessions:
			s.maps.Sessions = m
		case processMapEvents:
			s.maps.Events = m
		case processMapRingbufLost:
			s.maps.Lost = m
		}
	}
	return nil
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

// Run reads the ring buffer in one goroutine that never blocks (decoded
// events go into a bounded queue; what does not fit is counted and reported
// as KindLoss), forwards the queue to out, and emits KindLoss events with
// the deltas of the kernel's reservation-failure counters. It returns when
// ctx is cancelled (nil) or the reader fails. Run may be called once.
func (s *Sensor) Run(ctx context.Context, out chan<- sensor.Event) error {
	ran := false
	s.runOnce.Do(func() { ran = true })
	if !ran {
		return errors.New("sensor: Run called twice")
	}
	q := make(chan sensor.Event, s.cfg.QueueSize)
	readErr := make(chan error, 1)
	go func() { readErr <- s.read(q) }()
	stop := func() error {
		// Closing the reader interrupts ReadInto.
		err := s.rd.Close()
		<-readErr
		return err
	}

	var lastKernel, lastQueue [EventKindMax]uint64
	exits := newRecentKeys(recentExits)
	tick := time.NewTicker(s.cfg.LossInterval)
	defer tick.Stop()
	send := func(ev sensor.Event) bool {
		select {
		case out <- ev:
			s.delivered.Add(1)
			return true
		case <-ctx.Done():
			return false
		}
	}
	for {
		select {
		case <-ctx.Done():
			return stop()
		case err := <-readErr:
			readErr <- err // for stop
			if err != nil {
				return fmt.Errorf("sensor: ring buffer: %w", err)
			}
			return nil
		case ev := <-q:
			if ev.Kind == sensor.KindExit && exits.seen(ev.Proc) {
				continue
			}
			if !send(ev) {
				return stop()
			}
		case <-tick.C:
			for _, ev := range s.lossEvents(&lastKernel, &lastQueue) {
				if !send(ev) {
					return stop()
				}
			}
		}
	}
}

// read is the one ring-buffer reader. With batching, while records keep
// coming it collects them every FlushInterval (the kernel does not wake it
// for each); after a flush that found nothing it waits for the kernel's
// wakeup, polling every idleFlush in case a record raced that decision.
func (s *Sensor) read(q chan<- sensor.Event) error {
	var rec ringbuf.Record
	batching := s.cfg.FlushInterval > 0
	polling, readSince := false, false
	if batching {
		s.rd.SetDeadline(time.Now().Add(idleFlush))
	}
	for {
		if err := s.rd.ReadInto(&rec); err != nil {
			if errors.Is(err, ringbuf.ErrClosed) || errors.Is(err, os.ErrClosed) {
				return nil
			}
			if batching && errors.Is(err, os.ErrDeadlineExceeded) {
				// Everything pending was read.
				polling, readSince = readSince, false
				next := idleFlush
				if polling {
					next = s.cfg.FlushInterval
				}
				s.rd.SetDeadline(time.Now().Add(next))
				continue
			}
			return err
		}
		if batching {
			readSince = true
			if !polling {
				polling = true
				s.rd.SetDeadline(time.Now().Add(s.cfg.FlushInterval))
			}
		}
		s.records.Add(1)
		b := rec.RawSample
		var ev sensor.Event
		var dec func([]byte, *sensor.Event) error
		if len(b) > 0 && int(b[0]) < EventKindMax {
			dec = s.decoder[b[0]]
		}
		if dec == nil {
			s.decodeErrs.Add(1)
			s.log.Debug("record of unknown kind", "len", len(b))
			continue
		}
		if err := dec(b, &ev); err != nil {
			s.decodeErrs.Add(1)
			s.log.Debug("undecodable record", "err", err)
			continue
		}
		select {
		case q <- ev:
		default:
			s.queueDrops[ev.Kind].Add(1)
		}
	}
}

// kernelLost sums the per-CPU reservation-failure counters, by kind.
func (s *Sensor) kernelLost() ([EventKindMax]uint64, error) {
	var sum [EventKindMax]uint64
	var perCPU []uint64
	for k := range uint32(EventKindMax) {
		if err := s.maps.Lost.Lookup(k, &perCPU); err != nil {
			return sum, fmt.Errorf("read loss counter %d: %w", k, err)
		}
		for _, v := range perCPU {
			sum[k] += v
		}
	}
	return sum, nil
}

func (s *Sensor) lossEvents(lastKernel, lastQueue *[EventKindMax]uint64) []sensor.Event {
	var evs []sensor.Event
	now := bootNs()
	mk := func(where string, k int, n uint64) sensor.Event {
		return sensor.Event{
			Header: sensor.Header{Kind: sensor.KindLoss, KtimeNs: now},
			Loss:   &sensor.Loss{Where: where, Of: sensor.Kind(k), Count: n},
		}
	}
	kernel, err := s.kernelLost()
	if err != nil {
		s.log.Warn("loss counters unreadable", "err", err)
	} else {
		for k, v := range kernel {
			if v > lastKernel[k] {
				if k == lostSessionsFull {
					// Members not tracked: their future events.
					evs = append(evs, mk("sessions", int(sensor.KindFork), v-lastKernel[k]))
				} else {
					evs = append(evs, mk("ringbuf", k, v-lastKernel[k]))
				}
				lastKernel[k] = v
			}
		}
	}
	for k := range lastQueue {
		v := s.queueDrops[k].Load()
		if v > lastQueue[k] {
			evs = append(evs, mk("queue", k, v-lastQueue[k]))
			lastQueue[k] = v
		}
	}
	return evs
}

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
		for _, m := range []*ebpf.Map{s.maps.Sessions, s.maps.Events, s.maps.Lost} {
			if m != nil {
				errs = append(errs, m.Close())
			}
		}
	})
	return errors.Join(errs...)
}

// recentExits bounds the exits remembered to drop a repeated one.
const recentExits = 4096

// recentKeys remembers the last n process keys it was shown. The exit
// program reports a process when its last thread exits, read from
// signal->live; two threads of a group exiting at once on two CPUs can both
// read 0. For session members the kernel's map delete decides who reports;
// for other processes (scope all) the repeat is dropped here. A key
// includes the start time, so a reused pid is never mistaken for a repeat.
type recentKeys struct {
	set  map[sensor.ProcKey]struct{}
	ring []sensor.ProcKey
	next int
}

func newRecentKeys(n int) *recentKeys {
	return &recentKeys{set: make(map[sensor.ProcKey]struct{}, n), ring: make([]sensor.ProcKey, 0, n)}
}

// seen reports whether k was shown before, and remembers it.
func (r *recentKeys) seen(k sensor.ProcKey) bool {
	if _, ok := r.set[k]; ok {
		return true
	}
	if len(r.ring) < cap(r.ring) {
		r.ring = append(r.ring, k)
	} else {
		delete(r.set, r.ring[r.next])
		r.ring[r.next] = k
		r.next = (r.next + 1) % len(r.ring)
	}
	r.set[k] = struct{}{}
	return false
}
