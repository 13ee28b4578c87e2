package kernel

// The BPF objects and their Go bindings are generated and committed, so
// `go build` needs no clang. `make generate` reruns this; `make
// generate-check` (CI) regenerates and fails on any difference.
//
// One convention for every object in the repository (this file and
// tests/vmtest/smoke/gen.go):
//
//	go tool bpf2go -tags linux -cc clang -cflags "-O2 -g -Wall -Werror" -target <t> [-type <struct>]... <name> <source> -- -I<bpf dir>
//
// -target is bpfel (any little-endian host) except for the objects that
// read syscall registers or share the file object's records (fileio,
// iouring, pathLsm): built per architecture, amd64 and arm64, whose pt_regs
// and syscall numbers differ (bpf/fileio_arch.h). -type names the wire structs bpf/lineaged.h and
// bpf/fileio.h define once for C and Go.
//
// The objects that walk paths (bpf/lib/path.h: process, fileio and the two
// deny-exec objects) are built twice: as named, with the walk as a bounded
// loop every kernel runs, and as <name>Loop with -DLINEAGED_BPF_LOOP, the walk's
// rounds under bpf_loop (5.17+), which the verifier checks once. The loader
// takes the Loop build where the kernel has bpf_loop (walker.go). Both
// builds have the same maps, programs and variables.
//
// process: exec, fork and exit, and the agent recognisers.
//go:generate go tool bpf2go -tags linux -cc clang -cflags "-O2 -g -Wall -Werror" -target bpfel -type event_header -type exec_event -type fork_event -type exit_event -type exec_flags -type fork_flags -type session -type recogniser -type recog_matcher -type tamper_event -type sensor_proc -type own_key process ../../bpf/process.bpf.c -- -I../../bpf
//go:generate go tool bpf2go -tags linux -cc clang -cflags "-O2 -g -Wall -Werror -DLINEAGED_BPF_LOOP" -target bpfel processLoop ../../bpf/process.bpf.c -- -I../../bpf
//
// fileio: file and network events of session members.
//go:generate go tool bpf2go -tags linux -cc clang -cflags "-O2 -g -Wall -Werror" -target amd64,arm64 -type file_event -type connect_event fileio ../../bpf/fileio.bpf.c -- -I../../bpf
//go:generate go tool bpf2go -tags linux -cc clang -cflags "-O2 -g -Wall -Werror -DLINEAGED_BPF_LOOP" -target amd64,arm64 fileioLoop ../../bpf/fileio.bpf.c -- -I../../bpf
//
// iouring: requests session members submit to an io_uring (raw tracepoints
// io_uring_submit_req or io_uring_submit_sqe, whichever the kernel has).
//go:generate go tool bpf2go -tags linux -cc clang -cflags "-O2 -g -Wall -Werror" -target amd64,arm64 -type iouring_event iouring ../../bpf/iouring.bpf.c -- -I../../bpf
//
// Deny-exec enforcement (bpf/enforce.h): the LSM program where the kernel
// runs BPF LSM programs, the tracepoint+SIGKILL program elsewhere.
//go:generate go tool bpf2go -tags linux -cc clang -cflags "-O2 -g -Wall -Werror" -target bpfel -type deny_event -type deny_key -type deny_rule -type deny_inode enforceLsm ../../bpf/enforce_lsm.bpf.c -- -I../../bpf
//go:generate go tool bpf2go -tags linux -cc clang -cflags "-O2 -g -Wall -Werror -DLINEAGED_BPF_LOOP" -target bpfel enforceLsmLoop ../../bpf/enforce_lsm.bpf.c -- -I../../bpf
//go:generate go tool bpf2go -tags linux -cc clang -cflags "-O2 -g -Wall -Werror" -target bpfel enforceTp ../../bpf/enforce_tp.bpf.c -- -I../../bpf
//go:generate go tool bpf2go -tags linux -cc clang -cflags "-O2 -g -Wall -Werror -DLINEAGED_BPF_LOOP" -target bpfel enforceTpLoop ../../bpf/enforce_tp.bpf.c -- -I../../bpf
//
// Tamper refusal (bpf/tamper_lsm.bpf.c): LSM programs, loaded where the
// kernel runs them.
//go:generate go tool bpf2go -tags linux -cc clang -cflags "-O2 -g -Wall -Werror" -target bpfel tamperLsm ../../bpf/tamper_lsm.bpf.c -- -I../../bpf
//
// Path identity (bpf/path_lsm.bpf.c): LSM path hooks that add the identity
// of the object a member's unlink, rename, chmod, chown, truncate or link
// acts on to the fileio object's record in flight; loaded where the kernel
// runs BPF LSM programs.
//go:generate go tool bpf2go -tags linux -cc clang -cflags "-O2 -g -Wall -Werror" -target amd64,arm64 pathLsm ../../bpf/path_lsm.bpf.c -- -I../../bpf
