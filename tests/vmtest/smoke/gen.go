// Package smoke holds the kernel matrix's own real-BPF tests: a tracepoint
// plus ring buffer round trip, a probe of which attach types each kernel
// accepts and runs, and the verifier instruction count of every committed
// BPF object in the repository.
package smoke

// The repository's one bpf2go convention (sensor/kernel/gen.go).
//go:generate go tool bpf2go -tags linux -cc clang -cflags "-O2 -g -Wall -Werror" -target bpfel -type exec_event smoke bpf/smoke.bpf.c -- -I../../../bpf
