/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Maps shared by every lineaged BPF object. Each object declares them with
 * the same name, type and shape; the loader creates them once (sizes from
 * config, set on the MapSpec before load) and hands the same maps to every
 * object with MapReplacements, so process.bpf.c and fileio.bpf.c see one
 * session table, one ring buffer and one set of loss counters.
 */
#ifndef LINEAGED_MAPS_H
#define LINEAGED_MAPS_H

#include "lineaged.h"

/*
 * tgid -> session. max_entries is overridden from config at load.
 *
 * Test the result of bpf_map_update_elem and bpf_map_delete_elem with != 0,
 * never < 0. Before 6.4 the verifier turns these helpers into direct calls
 * of the map's update/delete op, which returned int: on x86-64 nothing
 * sign-extends it into r0, whose upper half is in practice zero, so -E2BIG
 * reads as a large positive number and a `< 0` test never sees the failure. On 5.10 and 6.1 a full
 * sessions map was never counted that way. (6.4 made the ops return long.)
 */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, __u32);
	__type(value, struct session);
} sessions SEC(".maps");

/* All records. max_entries (bytes, power of two) is overridden at load. */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 8 << 20);
} events SEC(".maps");

/* Boot-clock time of the last forced ring-buffer wakeup, for every object
 * (bpf/lib/wakeup.h). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} ringbuf_wakeup SEC(".maps");

/*
 * tgid -> the fork record of a child that has not yet exec'd nor done
 * anything else reported (bpf/lib/forks.h). Its exec drops the record (the
 * exec names the same parent); any other record of the child, a fork by it
 * or its exit sends it first. A full map sends the record at fork.
 */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 8192);
	__type(key, __u32);
	__type(value, struct fork_event);
} parked_forks SEC(".maps");

/* tgid -> read-only opens the file program did not report because the
 * same image of the process had reported the same file (bpf/fileio.bpf.c),
 * summed over the process's images and taken by its exit record
 * (bpf/lib/repeats.h). An LRU: an evicted count is lost, never an open. */
struct open_repeats {
	__u64 start_ns; /* the process's leader start_boottime */
	__u64 count;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u32);
	__type(value, struct open_repeats);
} open_repeats SEC(".maps");

/* Failed bpf_ringbuf_reserve, per CPU, indexed by enum event_kind. Two
 * slots count processes that found the sessions map full (their events,
 * and their descendants', are then not reported in the session):
 * LOST_SESSIONS_FULL the children of members (each a FORK_UNTRACKED fork
 * record), LOST_SESSIONS_FULL_EXEC the session roots and usermode helpers
 * an exec would have made members (each an EXEC_UNTRACKED exec record).
 * The second part counts file and network records shed to keep room for
 * process records (bpf/lib/shed.h), at SHED_SLOT(kind); the third those
 * of sessions over their budget, at BUDGET_SLOT(kind). */
#define LOST_SESSIONS_FULL (EV_KIND_MAX - 1)
#define LOST_SESSIONS_FULL_EXEC (EV_KIND_MAX - 2)
_Static_assert(EV_TAMPER < LOST_SESSIONS_FULL_EXEC, "loss slots overlap record kinds");
#define SHED_SLOT(kind) (EV_KIND_MAX + ((kind) & (EV_KIND_MAX - 1)))
#define BUDGET_SLOT(kind) (2 * EV_KIND_MAX + ((kind) & (EV_KIND_MAX - 1)))

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 3 * EV_KIND_MAX);
	__type(key, __u32);
	__type(value, __u64);
} ringbuf_lost SEC(".maps");

static __always_inline void count_lost(__u32 kind)
{
	__u64 *n = bpf_map_lookup_elem(&ringbuf_lost, &kind);
	if (n)
		(*n)++; /* per-CPU slot: no atomics needed */
}

/*
 * The session of task t's process, or NULL. Every membership lookup goes
 * through here. The entry must name t's process by start time too: a pid
 * whose member exited unseen (a /proc seed racing the exit, a key left by
 * some path that missed the exit) and that was then reused must not make
 * the new holder a member. Such a stale key is deleted on sight. Outside
 * sessions this costs exactly the one lookup it replaces.
 */
static __always_inline struct session *session_of(struct task_struct *t, __u32 tgid)
{
	struct session *s = bpf_map_lookup_elem(&sessions, &tgid);
	if (!s)
		return NULL;
	__u64 start = BPF_CORE_READ(t, group_leader, start_boottime);
	__u64 want = s->member_start;
	if (s->flags & SESSION_F_START_TICKS)
		start = start / SESSION_TICK_NS * SESSION_TICK_NS;
	if (start != want) {
		bpf_map_delete_elem(&sessions, &tgid);
		return NULL;
	}
	return s;
}

/* The current process's session (session_of). */
static __always_inline struct session *current_session(void)
{
	return session_of((struct task_struct *)bpf_get_current_task(),
			  bpf_get_current_pid_tgid() >> 32);
}

#endif /* LINEAGED_MAPS_H */
