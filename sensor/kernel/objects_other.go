//go:build linux && !(386 || amd64 || arm64)

package kernel

import "errors"

// archObjects: the file and network object dispatches on x86_64 syscall
// numbers and is built for amd64 only; elsewhere only process events run.
func archObjects() []objectLoader { return nil }

// iouringCheck: the io_uring object comes with the file and network one.
func iouringCheck() (string, error) {
	return "", errors.New("io_uring requests are traced on amd64 only")
}

// PathIdentity: the path identity hooks share the file object's table of
// calls in flight, built for amd64 only.
func (s *Sensor) PathIdentity() ([]string, string) {
	return nil, "file events are traced on amd64 only"
}

func (s *Sensor) loadPathLSM() {}

// openArgsFull: no file object here.
func (s *Sensor) openArgsFull() uint64 { return 0 }
