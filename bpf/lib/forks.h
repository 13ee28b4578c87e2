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
 * Only the tgid's own threads and its exit can take the record; the map
 * delete, which succeeds once, decides which of two racing threads sends
 * it.
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
	struct fork_event rec;

	if (take_parked_fork(tgid, &rec))
		send_fork(&rec);
}

#endif /* LINEAGED_LIB_FORKS_H */
