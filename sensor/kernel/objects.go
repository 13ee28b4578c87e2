//go:build linux

package kernel

// extraObjects lists the BPF objects loaded after process.bpf.c. Each shares
// the sessions map, the ring buffer and the loss counters, and brings the
// decoder for the record kinds it emits. Wiring another object is one entry
// here.
func extraObjects() []objectLoader {
	return archObjects()
}
