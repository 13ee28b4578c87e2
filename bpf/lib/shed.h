/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Ring priority. One session that floods file or network records (a loop
 * of failed opens) must not starve the exec, fork and exit records of
 * every session, nor deny and tamper records, nor the file and network
 * records of the other sessions. Two levels of unread data in the ring:
 *
 *  - above budget_bytes (half the ring by default), each session's file
 *    and network records are counted, with the sum over all sessions;
 *    every window of about 67 ms (2^26 ns) the counts are halved, so they
 *    follow the recent rate without forgetting it at a window's start.
 *    While the sum is over BUDGET_MIN, a session that has made more than
 *    half of it is over its budget: its records are dropped before they
 *    are reserved, counted per
 *    kind in ringbuf_lost's third part (BUDGET_SLOT) and per session in
 *    session_budget, which userspace reads to name the session
 *    (sensor.loss where "session-budget"). The quiet sessions' records
 *    still go in. Below budget_bytes nothing is counted: an idle ring
 *    costs one query;
 *  - above shed_bytes (three quarters by default), every file and network
 *    record is dropped before it is reserved, counted per kind in the
 *    second part (SHED_SLOT): the ring's last part stays for process
 *    records.
 *
 * The reader does its part in userspace (sensor/kernel/reader.go): when
 * its queue is full it waits for room for a process record, letting the
 * ring fill, and drops file records. Both levels are set by userspace
 * before load; 0 disables a level.
 */
#ifndef LINEAGED_LIB_SHED_H
#define LINEAGED_LIB_SHED_H

#include "maps.h"

const volatile __u64 shed_bytes = 0;
const volatile __u64 budget_bytes = 0;

#define BUDGET_WINDOW_SHIFT 26
#define BUDGET_MIN 256

struct budget_count {
	__u64 window;
	__u64 count;
};

/* A session's recent records and what it had shed. */
struct session_budget {
	__u64 root_start;
	__u64 window;
	__u64 count;
	__u64 shed; /* records dropped over budget, ever */
};

/* session root tgid -> its budget. An LRU: a session evicted while the
 * ring is congested starts its count again; its shed total is lost to
 * the per-session report, never to the per-kind counters. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 1024);
	__type(key, __u32);
	__type(value, struct session_budget);
} session_budget SEC(".maps");

/* The recent records of every session. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct budget_count);
} budget_total SEC(".maps");

/* count as it stands in window now, halved for each window since. */
static __always_inline __u64 decayed(__u64 count, __u64 then, __u64 now)
{
	__u64 gone = now - then;

	return gone >= 64 ? 0 : count >> gone;
}

static __always_inline void count_slot(__u32 slot)
{
	__u64 *n = bpf_map_lookup_elem(&ringbuf_lost, &slot);
	if (n)
		(*n)++; /* per-CPU slot: no atomics needed */
}

/* Whether the session (root tgid, start) is over its budget; counts the
 * record either way. Racing CPUs can lose a few counts at a window's
 * change: a share, not a ledger. */
static __always_inline bool over_budget(__u32 root_pid, __u64 root_start)
{
	__u64 window = bpf_ktime_get_boot_ns() >> BUDGET_WINDOW_SHIFT;
	__u32 zero = 0;
	struct budget_count *g = bpf_map_lookup_elem(&budget_total, &zero);
	struct session_budget *b, nb = {};
	__u64 total, mine;

	if (!g || !root_pid)
		return false;
	if (g->window != window) {
		g->count = decayed(g->count, g->window, window);
		g->window = window;
	}
	/* Adds whose result is unused: 5.10 has no fetching atomics. */
	__sync_fetch_and_add(&g->count, 1);
	total = g->count;
	b = bpf_map_lookup_elem(&session_budget, &root_pid);
	if (!b || b->root_start != root_start) {
		nb.root_start = root_start;
		nb.window = window;
		nb.count = 1;
		bpf_map_update_elem(&session_budget, &root_pid, &nb, BPF_ANY);
		return false;
	}
	if (b->window != window) {
		b->count = decayed(b->count, b->window, window);
		b->window = window;
	}
	__sync_fetch_and_add(&b->count, 1);
	mine = b->count;
	if (total <= BUDGET_MIN || mine * 2 <= total)
		return false;
	__sync_fetch_and_add(&b->shed, 1);
	return true;
}

/* Whether to drop a file or network record of kind, of the session whose
 * root is (root_pid, root_start), now; counting it. */
static __always_inline bool shed(__u32 kind, __u32 root_pid, __u64 root_start)
{
	__u64 used;

	if (!shed_bytes && !budget_bytes)
		return false;
	used = bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA);
	if (shed_bytes && used >= shed_bytes) {
		count_slot(SHED_SLOT(kind));
		return true;
	}
	if (budget_bytes && used >= budget_bytes && over_budget(root_pid, root_start)) {
		count_slot(BUDGET_SLOT(kind));
		return true;
	}
	return false;
}

#endif /* LINEAGED_LIB_SHED_H */
