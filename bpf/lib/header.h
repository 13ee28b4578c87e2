/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The one filler of struct event_header (bpf/lineaged.h), used by every
 * record of every lineaged BPF object.
 */
#ifndef LINEAGED_LIB_HEADER_H
#define LINEAGED_LIB_HEADER_H

#include "lineaged.h"

/* The thread-group leader's start time names the process: exec_id and the
 * /proc seed use (tgid, leader start_boottime). After a non-leader thread
 * execs, de_thread() has copied the leader's start times into it, so the
 * process keeps its identity across exec. */
static __always_inline __u64 leader_start(struct task_struct *t)
{
	return BPF_CORE_READ(t, group_leader, start_boottime);
}

/* Fill h for a record of kind about task t (the current task, or a forked
 * child), in session s (NULL outside a session: scope "all"). */
static __always_inline void fill_header(struct event_header *h, __u8 kind,
					struct task_struct *t, const struct session *s)
{
	h->kind = kind;
	h->agent = s ? s->agent : AGENT_NONE;
	h->flags = 0;
	h->cpu = bpf_get_smp_processor_id();
	h->ktime = bpf_ktime_get_boot_ns();
	h->pid = BPF_CORE_READ(t, tgid);
	h->tid = BPF_CORE_READ(t, pid);
	h->start_ns = leader_start(t);
	h->session_pid = s ? s->root_pid : 0;
	h->_pad0 = 0;
	h->session_start = s ? s->root_start : 0;
}

#endif /* LINEAGED_LIB_HEADER_H */
