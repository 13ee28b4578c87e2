package main

import (
	"errors"
	"fmt"
	"time"

	"github.com/lineaged/lineaged/lineage/policy"
	"github.com/lineaged/lineaged/sensor"
	"github.com/lineaged/lineaged/sensor/kernel"
	"github.com/lineaged/lineaged/sensor/procfs"
)

// actuator carries out the policy's kills (policy.Actuator) with the live
// sensor: a session's members come from the kernel's session map, each
// process is pinned by pidfd and checked by its start time in /proc.
type actuator struct {
	sensor   *kernel.Sensor
	procRoot string
}

// KillProcess implements policy.Actuator.
func (a actuator) KillProcess(key sensor.ProcKey) error {
	return gone(a.sensor.KillProcess(a.procRoot, key))
}

// KillSession implements policy.Actuator.
func (a actuator) KillSession(root sensor.ProcKey) (int, error) {
	n, err := a.sensor.KillSession(a.procRoot, root)
	return n, gone(err)
}

// gone marks a process that had exited as policy.ErrGone.
func gone(err error) error {
	if errors.Is(err, procfs.ErrGone) {
		return fmt.Errorf("%w: %w", policy.ErrGone, err)
	}
	return err
}

// fixedBoot is a boot time sampled once, given both to lineage, which turns
// boot-clock start times into wall time with it, and to the policy's kill
// actions, which turn them back: the same value both ways gives back the
// kernel's exact key.
type fixedBoot time.Time

// BootTime implements lineage.BootClock.
func (b fixedBoot) BootTime() (time.Time, error) { return time.Time(b), nil }
