// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Deny-exec, richer path: an LSM program on bprm_check_security. The hook
 * runs before the point of no return of execve, for every binary handler
 * stage (a #! script, then its interpreter), so a denied executable never
 * starts: the exec returns EPERM to the session member that tried it.
 *
 * Loaded only where the kernel accepts BPF LSM programs and `bpf` is among
 * the active LSMs (/sys/kernel/security/lsm); otherwise the sensor loads
 * enforce_tp.bpf.c. On 5.10 an LSM program attaches even without `bpf` in
 * lsm= but never runs, which is why userspace checks the list.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>

#include "lineaged.h"
#include "maps.h"
#include "enforce.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* Keep the wire structs in BTF for bpf2go -type. */
const struct deny_event *unused_deny_event __attribute__((unused));
const struct deny_key *unused_deny_key __attribute__((unused));
const struct deny_rule *unused_deny_rule __attribute__((unused));
const struct deny_inode *unused_deny_inode __attribute__((unused));

#define EPERM 1

SEC("lsm/bprm_check_security")
int BPF_PROG(enforce_bprm_check, struct linux_binprm *bprm, int ret)
{
	if (ret != 0)
		return ret; /* an earlier program already refused */
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
	/* bpf_get_current_task_btf() is 5.11+; the untyped pointer with
	 * CO-RE reads works on 5.10. */
	struct task_struct *t = (struct task_struct *)bpf_get_current_task();
	int rule = deny_match(x, w, BPF_CORE_READ(bprm, file), t);
	if (rule < 0)
		return 0;
	deny_record(x, w, t, &s, rule, DENY_BLOCKED);
	return -EPERM;
}
