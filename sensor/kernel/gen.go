package kernel

// The BPF objects and their Go bindings are generated and committed, so
// `go build` needs no clang. `make generate` reruns this; CI diffs the result.
//go:generate go tool bpf2go -tags linux -target bpfel -type event_header -type exec_event -type fork_event -type exit_event -type session -type recogniser -type recog_matcher process ../../bpf/process.bpf.c -- -O2 -g -Wall -I../../bpf
