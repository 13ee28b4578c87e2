package kernel

import "errors"

// Heartbeat reads the counter the fork and exit programs bump (the same one
// the self-check watches). The service watchdog carries its value through
// the pipeline: a read that fails means the programs' maps are gone. The
// value need not move: an idle host forks nothing.
func (s *Sensor) Heartbeat() (uint64, error) {
	if s.coll == nil || s.coll.Maps[processMapHeartbeat] == nil {
		return 0, errors.New("kernel: heartbeat map not loaded")
	}
	return s.heartbeat()
}

// RingFill is the share of the ring buffer holding records not yet read,
// from 0 to 1 (0 before the reader is open).
func (s *Sensor) RingFill() float64 {
	if s.rd == nil {
		return 0
	}
	size := s.rd.BufferSize()
	if size <= 0 {
		return 0
	}
	return float64(s.rd.AvailableBytes()) / float64(size)
}
