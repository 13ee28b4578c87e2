// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Deny-exec, tracepoint path: for kernels that refuse LSM programs or run
 * without `bpf` among the active LSMs. sched_process_exec fires after the
 * point of no return of execve, in the exec'ing task, before it returns to
 * userspace: the exec cannot be failed any more, but a SIGKILL queued here
 * is delivered on the way out, so the denied image dies before its first
 * user instruction. The member's parent sees the exec succeed and the
 * child die of SIGKILL.
 *
 * Differences from the LSM path: only the final image is seen (for a #!
 * script, the interpreter, not the script), and the exec record of the
 * denied image is still reported (then its exit, signal 9). The signal is
 * forced: bpf_send_signal sends it as the kernel (SEND_SIG_PRIV), and the
 * kernel delivers a forced SIGKILL even to the init of a pid namespace, which
 * ignores default-disposition signals from its own namespace. A member that
 * makes itself such an init (unshare --pid --fork) and execs a denied image
 * dies of it too (tests/evasion/exec TestDeniedExecByPidNamespaceInit).
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>

#include "lineaged.h"
#include "maps.h"
#include "enforce.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define SIGKILL 9

SEC("tp_btf/sched_process_exec")
int BPF_PROG(enforce_exec, struct task_struct *task, pid_t old_pid, struct linux_binprm *bprm)
{
	struct session s;
	if (!deny_session(&s))
		return 0;
	__u32 zero = 0;
	struct deny_scratch *x = bpf_map_lookup_elem(&deny_heap, &zero);
	if (!x)
		return 0;
	struct path_walk *w = path_slot(DENY_SLOT);
	if (!w)
		return 0;
	int rule = deny_match(x, w, BPF_CORE_READ(bprm, file), task);
	if (rule < 0)
		return 0;
	/* Kill first: the record is best effort, the kill is the policy. */
	__u8 action = bpf_send_signal(SIGKILL) == 0 ? DENY_KILLED : DENY_KILL_FAILED;
	deny_record(x, w, task, &s, rule, action);
	return 0;
}
