//go:build linux

package kernel

import (
	"fmt"
	"strings"
	"sync"
)

// selfState is what the self-check last found wrong with the sensor, for
// the posture check sensor_attached (SelfCheckProblem): set by a round that
// finds programs detached or not firing, cleared by a later round that
// finds every program attached and the heartbeat moving, so the repair
// made in the finding round is confirmed before the sensor reads as sound
// again. onChange (OnSelfCheckChange) is told of every change.
type selfState struct {
	mu       sync.Mutex
	problem  string
	onChange func()
}

// update takes one round's findings: the programs found gone and what
// attaching each again returned.
func (st *selfState) update(gone []string, errs []error) {
	problem := ""
	if len(gone) > 0 {
		var failed []string
		for i, name := range gone {
			if i < len(errs) && errs[i] != nil {
				failed = append(failed, fmt.Sprintf("%s (%v)", name, errs[i]))
			}
		}
		problem = fmt.Sprintf("programs found detached or not firing: %s", strings.Join(gone, ", "))
		if len(failed) > 0 {
			problem += "; not attached again: " + strings.Join(failed, ", ")
		} else {
			problem += "; attached again, until the next self-check confirms it"
		}
	}
	st.mu.Lock()
	changed := problem != st.problem
	st.problem = problem
	f := st.onChange
	st.mu.Unlock()
	if changed && f != nil {
		f()
	}
}

func (st *selfState) get() string {
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.problem
}

// SelfCheckProblem is what the self-check last found wrong with the
// sensor's programs (detached, not firing), empty when it found them
// sound: from the round that finds a problem until a later round finds
// the repair holding. The posture check sensor_attached fails meanwhile
// (posture.Config.SelfCheck).
func (s *Sensor) SelfCheckProblem() string { return s.self.get() }

// OnSelfCheckChange sets a function called (from Run's goroutine) when
// SelfCheckProblem changes, so the posture sampler can sample at once
// (posture.Sampler.Resample).
func (s *Sensor) OnSelfCheckChange(f func()) {
	s.self.mu.Lock()
	defer s.self.mu.Unlock()
	s.self.onChange = f
}
