//go:build linux && !(386 || amd64)

package kernel

// archObjects: the file and network object dispatches on x86_64 syscall
// numbers and is built for amd64 only; elsewhere only process events run.
func archObjects() []objectLoader { return nil }
