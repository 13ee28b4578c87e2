/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Parked fork records (bpf/maps.h parked_forks). Most children of a shell
 * or an agent exec at once, and their exec record names the parent already:
 * their fork record would only repeat it. So the fork program parks the
 * child's record instead of sending it, and:
 *  - the child's exec takes it and drops it when the exec's parent is the
 *    fork's (not reparented in between); otherwise it sends it first;
 *  - any other record of the child (file, connect, deny), a fork by the
 *    child and its exit call unpark_fork first, so a child that never
 *    execs is reported exactly as before, fork record first.
 * The parent's exec and exit send the parked records of its children
 * first (unpark_children): lineage must see a fork while the image it was
 * forked from is current and known. The map delete, which succeeds once,
 * decides which of two racing takers sends a record.
 *
 * A taker that sends reserves the record's place in the ring before it
 * deletes the parked entry, and discards it when the delete fails. The ring
 * orders records by reservation, so the child's own next record, made after
 * it found the entry gone, always comes after its fork record: taking first
 * and sending after let the parent's exec on one CPU take the entry, then
 * the child on another CPU send its open or exec before the fork record.
 */
#ifndef LINEAGED_LIB_FORKS_H
#define LINEAGED_LIB_FORKS_H

#include "maps.h"
#include "lib/wakeup.h"

/* Takes tgid's parked fork record into *rec: 1 when there was one. */
static __always_inline int take_parked_fork(__u32 tgid, struct fork_event *rec)
{
	struct fork_event *p = bpf_map_lookup_elem(&parked_forks, &tgid);
	if (!p)
		return 0;
	/* Copy first: once deleted, the element may be reused. */
	__builtin_memcpy(rec, p, sizeof(*rec));
	if (bpf_map_delete_elem(&parked_forks, &tgid) != 0)
		return 0; /* another thread of tgid took it */
	return 1;
}

static __always_inline void send_fork(struct fork_event *rec)
{
	if (bpf_ringbuf_output(&events, rec, sizeof(*rec), ringbuf_flags()) < 0)
		count_lost(EV_FORK);
}

/* Sends tgid's parked fork record, if any: call before any other record of
 * the process. */
static __always_inline void unpark_fork(__u32 tgid)
{
	struct fork_event *p = bpf_map_lookup_elem(&parked_forks, &tgid);
	if (!p)
		return;
	struct fork_event *r = bpf_ringbuf_reserve(&events, sizeof(*r), 0);
	if (!r) {
		if (bpf_map_delete_elem(&parked_forks, &tgid) == 0)
			count_lost(EV_FORK);
		return;
	}
	/* Copy first: once deleted, the element may be reused. */
	__builtin_memcpy(r, p, sizeof(*r));
	if (bpf_map_delete_elem(&parked_forks, &tgid) != 0) {
		bpf_ringbuf_discard(r, 0); /* another taker sends it */
		return;
	}
	bpf_ringbuf_submit(r, ringbuf_flags());
}

/*
 * The children of task (a task_struct address as a number, such as
 * bpf_get_current_task() returns) still parked (never
 * exec'd, nothing reported): their fork records go out before the task's
 * exec or exit record, while the image they were forked from is the one
 * lineage holds, and before lineage forgets it. Reparenting happens after
 * sched_process_exit, and exec has moved the children of the other
 * threads to the exec'ing one, so task->children holds them all.
 * CHILDREN_MAX bounds the walk: a child past it is still sent before its
 * own first record.
 *
 * A global function: the verifier checks it once, on its own, instead of
 * in every state the caller reaches the call in (in the exec program,
 * every state the recognisers leave), and the caller's state after the
 * call does not depend on what the walk found.
 */
#define CHILDREN_MAX 64

__attribute__((noinline)) int unpark_children(__u64 task)
{
	struct task_struct *t = (struct task_struct *)task;
	/* The list head's address as a plain number: head->next->prev. */
	__u64 head = (__u64)BPF_CORE_READ(t, children.next, prev);
	__u64 pos = (__u64)BPF_CORE_READ(t, children.next);
	__u64 sib = bpf_core_field_offset(struct task_struct, sibling);

	for (int i = 0; i < CHILDREN_MAX; i++) {
		if (!pos || pos == head)
			break;
		struct task_struct *c = (struct task_struct *)(pos - sib);
		unpark_fork(BPF_CORE_READ(c, tgid));
		pos = (__u64)BPF_CORE_READ(c, sibling.next);
	}
	return 0;
}

#endif /* LINEAGED_LIB_FORKS_H */
