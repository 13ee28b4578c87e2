//go:build linux && (386 || amd64)

package sensor

// archObjects lists the objects built for this architecture: the file and
// network object (bpf/fileio.bpf.c) once its decoder is in; until then its
// records would only count as decode errors.
func archObjects() []objectLoader { return nil }
