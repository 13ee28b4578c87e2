package kernel

// Deny-exec enforcement objects (bpf/enforce.h): the LSM program where the
// kernel runs BPF LSM programs, the tracepoint+SIGKILL program elsewhere.
//go:generate go tool bpf2go -tags linux -target bpfel -type deny_event -type deny_key -type deny_rule enforceLsm ../../bpf/enforce_lsm.bpf.c -- -O2 -g -Wall -I../../bpf
//go:generate go tool bpf2go -tags linux -target bpfel enforceTp ../../bpf/enforce_tp.bpf.c -- -O2 -g -Wall -I../../bpf
