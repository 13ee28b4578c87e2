package kernel

// The file and network programs are built for amd64 only: they dispatch on
// x86_64 syscall numbers and read x86 pt_regs.
//go:generate go tool bpf2go -cc clang -cflags "-O2 -g -Wall -Werror" -target amd64 -type file_event -type connect_event fileio ../../bpf/fileio.bpf.c -- -I../../bpf
