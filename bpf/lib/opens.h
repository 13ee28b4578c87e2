/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Read-only opens reported once per process image, for the file program
 * (bpf/fileio.bpf.c).
 *
 * The key is the image (tgid, its leader's start time and the task's
 * self_exec_id, which every exec increments and threads inherit) and the
 * file (s_dev, i_ino) with the open flags. A repeat is counted here and in
 * the process's open_repeats (reported by its exit record), not sent. A
 * new process, a new image of the same process, other flags and write
 * opens are always reported, so a later tool call's read of a file is
 * never hidden by an earlier one's; so is every open of the session's root
 * (the agent, which runs its file tools itself). An LRU: an evicted key
 * only means the next repeat is reported again.
 */
#ifndef LINEAGED_LIB_OPENS_H
#define LINEAGED_LIB_OPENS_H

#include "lib/header.h"
#include "lib/repeats.h"

/* Set by userspace before load (sensor.Config.RepeatOpens unset). */
const volatile __u8 dedupe_opens = 0;

struct open_key {
	__u32 tgid;
	__u32 flags;
	__u64 start_ns;
	__u64 exec_id;
	__u64 dev;
	__u64 ino;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, struct open_key);
	__type(value, __u64); /* repeats of this key */
} open_seen SEC(".maps");

/* Open flags that make an open more than a read: access mode (O_WRONLY,
 * O_RDWR, and 3), creating (O_CREAT) or truncating (O_TRUNC), a temporary
 * file (O_TMPFILE). */
#define OPEN_NOT_READ (03 | 0100 | 01000 | 020000000)

/* Whether this successful open of f repeats a read-only open the same
 * image already reported; counts it when it does. Never for the session's
 * root, the agent itself: its own tools (Claude Code's Read, Edit, ...)
 * run inside it, so its repeat of an open can be another tool call's. */
static __always_inline bool repeat_open(struct file *f, struct task_struct *task,
					__u32 flags, __u32 root_pid)
{
	struct open_key k = {};
	__u64 zero = 0, *n;

	if (!dedupe_opens || (flags & OPEN_NOT_READ))
		return false;
	k.tgid = BPF_CORE_READ(task, tgid);
	if (k.tgid == root_pid)
		return false;
	k.flags = flags;
	k.start_ns = leader_start(task);
	k.exec_id = BPF_CORE_READ(task, self_exec_id);
	k.dev = BPF_CORE_READ(f, f_inode, i_sb, s_dev);
	k.ino = BPF_CORE_READ(f, f_inode, i_ino);
	n = bpf_map_lookup_elem(&open_seen, &k);
	if (!n) {
		bpf_map_update_elem(&open_seen, &k, &zero, BPF_ANY);
		return false;
	}
	__sync_fetch_and_add(n, 1);
	count_repeat(k.tgid, k.start_ns);
	return true;
}

#endif /* LINEAGED_LIB_OPENS_H */
