//go:build linux && (386 || amd64 || arm64)

package kernel

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/cilium/ebpf"
)

// The path identity hooks (bpf/path_lsm.bpf.c): where the kernel runs BPF
// LSM programs, the LSM path hooks add the inode, device and mount id of
// the object a member's unlink, rmdir, rename, chmod, chown, truncate or
// link acts on to the call's file record. They share the file object's
// table of calls in flight, and allow every call.

// pathLSMPrograms are the object's programs, each attached to its hook.
var pathLSMPrograms = []string{
	pathLsmProgPathLsmUnlink, pathLsmProgPathLsmRmdir, pathLsmProgPathLsmRename,
	pathLsmProgPathLsmChmod, pathLsmProgPathLsmChown, pathLsmProgPathLsmTruncate,
	pathLsmProgPathLsmLink,
}

// PathIdentity names the LSM path hooks attached (bpf/path_lsm.bpf.c
// program names: path_lsm_unlink, ...), whose calls' records carry the
// identity of the object changed, and says why any of them is not: all
// of them where the bpf LSM does not run, or a hook the kernel refused
// (5.10 cannot attach path_chown, whose arguments include structs passed
// by value).
func (s *Sensor) PathIdentity() ([]string, string) {
	if s.pathLSM == nil {
		return nil, s.pathWhy
	}
	return slices.Clone(s.pathLSM.names), s.pathWhy
}

// loadPathLSM loads and attaches the path identity hooks when the bpf LSM
// is active and the file object is loaded; otherwise it says why not. Its
// failure is not the sensor's: the records are sent without the identity.
func (s *Sensor) loadPathLSM() {
	if s.cfg.ProcessOnly {
		s.pathWhy = "file events are off"
		return
	}
	if active, err := bpfLSMActive(lsmListFile); !active {
		s.pathWhy = "bpf LSM not active: " + err.Error()
		return
	}
	t, refused, err := s.tryPathLSM()
	if len(refused) > 0 {
		s.pathWhy = strings.Join(refused, "; ")
	}
	if err != nil {
		s.pathWhy = "LSM refused: " + oneLine(err).Error()
	}
	if s.pathWhy != "" {
		s.log.Warn("path calls without LSM path hook are reported by name, without the identity of the object changed", "reason", s.pathWhy)
	}
	if err != nil {
		return
	}
	s.pathLSM = t
	s.extras = append(s.extras, t)
}

// tryPathLSM loads the hooks the kernel takes: each is tried alone first,
// and one it refuses is left out (named in refused) rather than costing
// the others.
func (s *Sensor) tryPathLSM() (*lsmObject, []string, error) {
	pending, err := s.fileioMap(fileioMapFioPending)
	if err != nil {
		return nil, nil, err
	}
	defer pending.Close()
	spec, err := loadPathLsm()
	if err != nil {
		return nil, nil, err
	}
	spec.Maps[pathLsmMapFioPending].MaxEntries = pending.MaxEntries()
	opts := ebpf.CollectionOptions{MapReplacements: map[string]*ebpf.Map{pathLsmMapFioPending: pending}}
	var names, refused []string
	for _, name := range pathLSMPrograms {
		one := spec.Copy()
		for other := range one.Programs {
			if other != name {
				delete(one.Programs, other)
			}
		}
		c, err := ebpf.NewCollectionWithOptions(one, opts)
		if err != nil {
			refused = append(refused, fmt.Sprintf("%s refused: %v", strings.TrimPrefix(name, "path_lsm_"), oneLine(err)))
			delete(spec.Programs, name)
			continue
		}
		c.Close()
		names = append(names, name)
	}
	if len(names) == 0 {
		return nil, nil, fmt.Errorf("every hook refused, the first: %s", refused[0])
	}
	coll, err := ebpf.NewCollectionWithOptions(spec, opts)
	if err != nil {
		return nil, refused, fmt.Errorf("load: %w", oneLine(err))
	}
	t, err := attachLSMObject(coll, names...)
	return t, refused, err
}

// fileioMap opens the file object's map name through its exit program,
// loaded fresh or from the pins alike. The caller closes it.
func (s *Sensor) fileioMap(name string) (*ebpf.Map, error) {
	for _, c := range s.extras {
		o, ok := c.(interface {
			programs() map[string]*ebpf.Program
		})
		if !ok {
			continue
		}
		p := o.programs()[fileioProgFileioSysExit]
		if p == nil {
			continue
		}
		info, err := p.Info()
		if err != nil {
			return nil, fmt.Errorf("file object: %w", err)
		}
		ids, ok := info.MapIDs()
		if !ok {
			return nil, errors.New("file object: the kernel does not list a program's maps")
		}
		for _, id := range ids {
			m, err := ebpf.NewMapFromID(id)
			if err != nil {
				return nil, fmt.Errorf("file object map %d: %w", id, err)
			}
			if mi, err := m.Info(); err == nil && mi.Name == name {
				return m, nil
			}
			m.Close()
		}
		return nil, fmt.Errorf("file object: no map %s", name)
	}
	return nil, errors.New("the file object is not loaded")
}
