// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Smoke programs for the kernel matrix (tests/vmtest). They are deliberately
 * small: the point is to show, on each guest kernel, that a CO-RE object built
 * here loads, that the ring buffer delivers, and which attach types the
 * kernel accepts and actually runs.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* The test process. Set before load; every program ignores all other tasks
 * so the counters and the ring buffer only see what the test triggered. */
volatile const __u32 target_tgid;

/* Index into hits: one slot per attach type probed. */
enum attach_kind {
	HIT_TRACEPOINT = 0,
	HIT_RAW_TP = 1,
	HIT_TP_BTF = 2,
	HIT_FENTRY = 3,
	HIT_LSM = 4,
	HIT_KPROBE = 5,
	HIT_MAX = 6,
};

struct exec_event {
	__u32 pid;
	__u32 ppid;
	char filename[128];
};

/* Forces struct exec_event into BTF so bpf2go -type can generate it. */
const struct exec_event *unused_exec_event __attribute__((unused));

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 16);
} events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, HIT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} hits SEC(".maps");

static __always_inline int is_target(void)
{
	return (bpf_get_current_pid_tgid() >> 32) == target_tgid;
}

static __always_inline void hit(__u32 kind)
{
	__u64 *n = bpf_map_lookup_elem(&hits, &kind);
	if (n)
		__sync_fetch_and_add(n, 1);
}

/*
 * execve is entered by the forked child before the new image replaces it, so
 * the caller is the child and its real parent is the test process.
 */
SEC("tracepoint/syscalls/sys_enter_execve")
int smoke_execve(struct trace_event_raw_sys_enter *ctx)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	__u32 ppid = BPF_CORE_READ(task, real_parent, tgid);
	struct exec_event *e;

	if (ppid != target_tgid)
		return 0;
	e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e)
		return 0;
	e->pid = bpf_get_current_pid_tgid() >> 32;
	e->ppid = ppid;
	bpf_probe_read_user_str(e->filename, sizeof(e->filename),
				(const char *)ctx->args[0]);
	bpf_ringbuf_submit(e, 0);
	return 0;
}

SEC("tracepoint/syscalls/sys_enter_getpgid")
int probe_tracepoint(struct trace_event_raw_sys_enter *ctx)
{
	if (is_target())
		hit(HIT_TRACEPOINT);
	return 0;
}

SEC("raw_tp/sys_enter")
int probe_raw_tp(struct bpf_raw_tracepoint_args *ctx)
{
	if (is_target())
		hit(HIT_RAW_TP);
	return 0;
}

SEC("tp_btf/sys_enter")
int BPF_PROG(probe_tp_btf, struct pt_regs *regs, long id)
{
	if (is_target())
		hit(HIT_TP_BTF);
	return 0;
}

/*
 * The x86-64 syscall wrapper: same name from 4.17 to today. A one-argument
 * syscall on purpose: SYSCALL_DEFINE0 wrappers (getppid) carry no BTF, and
 * fentry needs the target in BTF.
 */
SEC("fentry/__x64_sys_getpgid")
int BPF_PROG(probe_fentry)
{
	if (is_target())
		hit(HIT_FENTRY);
	return 0;
}

SEC("lsm/file_open")
int BPF_PROG(probe_lsm, struct file *file)
{
	if (is_target())
		hit(HIT_LSM);
	return 0; /* allow: this only observes */
}

SEC("kprobe/__x64_sys_getpgid")
int probe_kprobe(struct pt_regs *ctx)
{
	if (is_target())
		hit(HIT_KPROBE);
	return 0;
}
