//go:build linux

package kernel

import (
	"errors"
	"fmt"
	"slices"

	"github.com/cilium/ebpf/link"
)

// The self-check repairs the programs attached outside the process
// object too: the tamper refusal programs (tamper_lsm.go), the path
// identity hooks (path_lsm.go) and the deny-exec enforcement (enforce.go). Neither is pinned: a start loads
// them anew, so a repair attaches the same program again and keeps the new
// link in place of the lost one, after letting go of the lost one as
// reattach does (forgetLink), before the new link can take its number.

// extraAttached names the programs of the LSM and deny-exec objects this
// start attached. A link the kernel's link list cannot show
// (a perf-event attachment: its Info is ErrNotSupported) is left out, as
// unlisted does.
func (s *Sensor) extraAttached() []string {
	var names []string
	for _, t := range s.lsmObjects() {
		for i, name := range t.names {
			if listed(t.links[i]) {
				names = append(names, name)
			}
		}
	}
	if e := s.enf; e != nil && e.link != nil && e.attach != nil && listed(e.link) {
		if name, _ := e.program(); name != "" {
			names = append(names, name)
		}
	}
	return names
}

// lsmObjects are the LSM objects this start loaded.
func (s *Sensor) lsmObjects() []*lsmObject {
	var out []*lsmObject
	for _, t := range []*lsmObject{s.tamperLSM, s.pathLSM} {
		if t != nil {
			out = append(out, t)
		}
	}
	return out
}

// listed reports whether l is a link the kernel's link list shows.
func listed(l link.Link) bool {
	if l == nil {
		return false
	}
	_, err := l.Info()
	return !errors.Is(err, link.ErrNotSupported)
}

// reattachExtra attaches name again when it is one of extraAttached;
// handled is false for any other program.
func (s *Sensor) reattachExtra(name string) (handled bool, err error) {
	for _, t := range s.lsmObjects() {
		if i := slices.Index(t.names, name); i >= 0 {
			forgetLink(t.links[i], t.coll.Programs[name])
			t.links[i] = nil
			l, err := link.AttachLSM(link.LSMOptions{Program: t.coll.Programs[name]})
			if err != nil {
				return true, fmt.Errorf("attach %s: %w", name, err)
			}
			t.links[i] = l
			return true, s.refreshOwn()
		}
	}
	if e := s.enf; e != nil && e.attach != nil {
		if n, p := e.program(); n == name {
			forgetLink(e.link, p)
			e.link = nil
			l, err := e.attach(p)
			if err != nil {
				return true, fmt.Errorf("attach %s: %w", name, err)
			}
			e.link = l
			return true, s.refreshOwn()
		}
	}
	return false, nil
}
