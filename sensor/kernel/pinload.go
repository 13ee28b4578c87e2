//go:build linux

package kernel

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
)

// openPins locks the pin path and decides how this start treats it
// (PinState): it loads the pinned objects when they are of this version
// and whole, and returns true; otherwise it unpins whatever is there and
// returns false, for a fresh load that pinAll then pins.
func (s *Sensor) openPins(spec *ebpf.CollectionSpec) (bool, error) {
	d, err := openPinDir(s.cfg.PinPath)
	if err != nil {
		return false, fmt.Errorf("sensor: %w", err)
	}
	s.pins = d
	rec, ok := d.readRecord()
	switch {
	case ok && rec.Version == pinVersion(s.cfg):
		err := s.loadPinned(spec)
		if err == nil {
			s.pinState = PinReused
			s.lossBase = rec.LossReported
			return true, d.writeRecord(s.pinRecord())
		}
		s.log.Warn("pinned objects incomplete: loading afresh", "pin_path", d.path, "err", err)
		s.dropLoaded()
		s.pinState = PinReloadedIncomplete
	case ok:
		s.pinState = PinReloadedVersion
	default:
		s.pinState = PinFresh
		if ents, err := os.ReadDir(d.path); err == nil && len(ents) > 0 {
			s.pinState = PinReloadedIncomplete
		}
	}
	if s.pinState != PinFresh {
		s.log.Info("unpinning the previous kernel state", "pin_path", d.path, "state", s.pinState)
	}
	if err := d.clear(); err != nil {
		return false, fmt.Errorf("sensor: unpin %s: %w", d.path, err)
	}
	return false, nil
}

// pinRecord is the state map's record for this start.
func (s *Sensor) pinRecord() pinRecord {
	return pinRecord{Version: pinVersion(s.cfg), LastStart: pinStateIndex(s.pinState), LossReported: s.lossBase}
}

// loadPinned takes every object from the pin path: the process object's
// maps and programs, its links (a link missing is attached again and
// reported by a warning: someone detached it while no sensor ran), and the
// other objects' programs and links. The recognisers are written again.
func (s *Sensor) loadPinned(spec *ebpf.CollectionSpec) error {
	d := s.pins
	coll := &ebpf.Collection{Programs: map[string]*ebpf.Program{}, Maps: map[string]*ebpf.Map{}}
	s.coll = coll
	for name := range spec.Maps {
		m, err := ebpf.LoadPinnedMap(d.file(pinName("map", name)), nil)
		if err != nil {
			return fmt.Errorf("map %s: %w", name, err)
		}
		coll.Maps[name] = m
	}
	for name := range spec.Programs {
		p, err := ebpf.LoadPinnedProgram(d.file(pinName("prog", name)), nil)
		if err != nil {
			return fmt.Errorf("program %s: %w", name, err)
		}
		coll.Programs[name] = p
	}
	for _, sl := range s.maps.slots() {
		m, err := coll.Maps[sl.name].Clone()
		if err != nil {
			return fmt.Errorf("map %s: %w", sl.name, err)
		}
		*sl.m = m
	}
	s.maps.Wake = newWakeupPolicy(s.cfg)
	if err := s.fillRecognisers(); err != nil {
		return err
	}
	if !s.cfg.ProcessOnly {
		for _, o := range extraObjects() {
			obj, err := loadPinnedObject(d, o)
			if err != nil {
				return err
			}
			s.extras = append(s.extras, obj)
			for _, k := range o.kinds {
				s.decoder[k] = o.decode
			}
		}
	}
	names := append([]string(nil), processAttached...)
	for name := range tamperTracepoints {
		names = append(names, name)
	}
	for _, name := range names {
		l, err := link.LoadPinnedLink(d.file(pinName("link", name)), nil)
		if err == nil {
			s.links = append(s.links, l)
			s.linkNames = append(s.linkNames, name)
			continue
		}
		s.log.Warn("pinned link missing: attaching again", "program", name, "err", err)
		if err := s.attachOne(name); err != nil {
			return err
		}
		if err := s.links[len(s.links)-1].Pin(d.file(pinName("link", name))); err != nil {
			s.log.Warn("link not pinned", "program", name, "err", err)
		}
	}
	return nil
}

// dropLoaded closes what a failed loadPinned took, leaving the pins.
func (s *Sensor) dropLoaded() {
	for _, l := range s.links {
		l.Close()
	}
	s.links, s.linkNames = nil, nil
	for _, c := range s.extras {
		c.Close()
	}
	s.extras = nil
	if s.coll != nil {
		s.coll.Close()
		s.coll = nil
	}
	s.maps.close()
	s.maps = sharedMaps{}
}

// pinnedObject is another object taken from the pin path: its programs
// and links only (its private maps live on through its programs).
type pinnedObject struct {
	progs map[string]*ebpf.Program
	links []link.Link
}

func loadPinnedObject(d *pinDir, o objectLoader) (*pinnedObject, error) {
	obj := &pinnedObject{progs: map[string]*ebpf.Program{}}
	for _, name := range o.progs {
		p, err := ebpf.LoadPinnedProgram(d.file(pinName(o.name+"_prog", name)), nil)
		if err != nil {
			obj.Close()
			return nil, fmt.Errorf("%s program %s: %w", o.name, name, err)
		}
		obj.progs[name] = p
		l, err := link.LoadPinnedLink(d.file(pinName(o.name+"_link", name)), nil)
		if err != nil {
			obj.Close()
			return nil, fmt.Errorf("%s link %s: %w", o.name, name, err)
		}
		obj.links = append(obj.links, l)
	}
	return obj, nil
}

func (o *pinnedObject) programs() map[string]*ebpf.Program { return o.progs }

func (o *pinnedObject) Close() error {
	errs := closeLinks(o.links)
	for _, p := range o.progs {
		errs = append(errs, p.Close())
	}
	return errors.Join(errs...)
}

// pinAll pins what a fresh load made, the state record last.
func (s *Sensor) pinAll() error {
	d := s.pins
	pin := func(kind, name string, p interface{ Pin(string) error }) error {
		if err := p.Pin(d.file(pinName(kind, name))); err != nil {
			return fmt.Errorf("sensor: pin %s: %w", pinName(kind, name), err)
		}
		return nil
	}
	for name, m := range s.coll.Maps {
		if err := pin("map", name, m); err != nil {
			return err
		}
	}
	for name, p := range s.coll.Programs {
		if err := pin("prog", name, p); err != nil {
			return err
		}
	}
	for i, l := range s.links {
		if err := pin("link", s.linkNames[i], l); err != nil {
			// A perf-event tracepoint link on a kernel before 5.15
			// cannot be pinned: it is attached again at each start.
			s.log.Warn("link not pinned", "program", s.linkNames[i], "err", err)
		}
	}
	objs := extraObjects()
	for i, c := range s.extras {
		o := objs[i]
		progs := c.(interface {
			programs() map[string]*ebpf.Program
		}).programs()
		links := o.links(c)
		for _, name := range o.progs {
			if err := pin(o.name+"_prog", name, progs[name]); err != nil {
				return err
			}
			if err := pin(o.name+"_link", name, links[name]); err != nil {
				return err
			}
		}
	}
	return d.writeRecord(s.pinRecord())
}

// PinState says how this start found the pin path: PinOff without one.
func (s *Sensor) PinState() PinState { return s.pinState }

var _ io.Closer = (*pinnedObject)(nil)

// saveLossBase records the kernel loss counts reported so far in the pin
// state, so that the next instance reports only newer losses.
func (s *Sensor) saveLossBase(reported [EventKindMax]uint64) {
	if s.pins == nil || s.pins.state == nil || reported == s.lossBase {
		return
	}
	s.lossBase = reported
	if err := s.pins.writeRecord(s.pinRecord()); err != nil {
		s.log.Warn("pin state not updated", "err", err)
	}
}
