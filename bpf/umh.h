/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Work the kernel starts on a session member's behalf: usermode helpers.
 *
 * A member that points core_pattern (`|/path args`), modprobe, hotplug or
 * uevent_helper at a program has the kernel run that program later, as
 * root, from a kernel thread (call_usermodehelper: the helper's parent is
 * kthreadd or a kworker), outside the member's lineage. Userspace sees the
 * member open the setting for writing, reads the value it left there and
 * registers the helper's path here with the member's session
 * (sensor/kernel umh.go). The exec program then puts a non-member whose
 * parent is a kernel thread and whose exec names a registered path into
 * that session, flagged SESSION_F_UMH (inherited by its descendants) and
 * EXEC_VIA_UMH on its exec records.
 */
#ifndef LINEAGED_UMH_H
#define LINEAGED_UMH_H

#include "lineaged.h"
#include "maps.h"
#include "lib/header.h"

#define PF_KTHREAD_FLAG 0x00200000 /* include/linux/sched.h PF_KTHREAD */

/* helper path (bprm->filename, as the kernel passes it) -> session */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, UMH_MAX);
	__type(key, struct umh_key);
	__type(value, struct session);
} umh_helpers SEC(".maps");

/*
 * The registered session of an exec by a task whose real parent is a
 * kernel thread, or NULL. key is scratch; it is zeroed first (the map's
 * key is the zero-padded path). Costs one read of the parent's flags for
 * every non-member exec.
 */
static __always_inline struct session *umh_session(struct umh_key *key, struct task_struct *task,
						   struct linux_binprm *bprm)
{
	struct task_struct *rp = BPF_CORE_READ(task, real_parent);
	if (!(BPF_CORE_READ(rp, flags) & PF_KTHREAD_FLAG))
		return NULL;
	__u64 *k = (__u64 *)key->path;
	for (int i = 0; i < UMH_PATH_MAX / 8; i++)
		k[i] = 0;
	const char *fname = BPF_CORE_READ(bprm, filename);
	if (bpf_probe_read_kernel_str(key->path, UMH_PATH_MAX, fname) <= 0)
		return NULL;
	return bpf_map_lookup_elem(&umh_helpers, key);
}

/*
 * Put task (tgid, no member) into the session registered for its exec when
 * it is a usermode helper (umh_session): fills *s with its sessions entry,
 * flagged SESSION_F_UMH; false when it is none.
 */
static __always_inline bool umh_join(struct umh_key *key, struct task_struct *task,
				     struct linux_binprm *bprm, __u32 tgid, struct session *s)
{
	struct session *h = umh_session(key, task, bprm);
	if (!h)
		return false;
	bpf_probe_read_kernel(s, sizeof(*s), h);
	s->member_start = leader_start(task);
	s->flags = SESSION_F_UMH;
	if (bpf_map_update_elem(&sessions, &tgid, s, BPF_ANY) != 0) {
		count_lost(LOST_SESSIONS_FULL_EXEC); /* != 0: see maps.h */
		s->flags |= SESSION_F_UNTRACKED;
	}
	return true;
}

#endif /* LINEAGED_UMH_H */
