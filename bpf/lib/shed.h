/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Ring priority. One session that floods file or network records (a loop
 * of failed opens) must not starve the exec, fork and exit records of
 * every session, nor deny and tamper records. Above shed_bytes of unread
 * data in the ring, file and network records are dropped before they are
 * reserved and counted per kind in ringbuf_lost's upper half (SHED_SLOT):
 * the ring's last part stays for process records. The reader does its
 * part in userspace (sensor/kernel/reader.go): when its queue is full it
 * waits for room for a process record, letting the ring fill, and drops
 * file records. shed_bytes is set by userspace before load (three quarters
 * of the ring by default); 0 never sheds.
 */
#ifndef LINEAGED_LIB_SHED_H
#define LINEAGED_LIB_SHED_H

#include "maps.h"

const volatile __u64 shed_bytes = 0;

/* Whether to drop a file or network record of kind now, counting it. */
static __always_inline bool shed(__u32 kind)
{
	if (!shed_bytes || bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA) < shed_bytes)
		return false;
	__u32 slot = SHED_SLOT(kind);
	__u64 *n = bpf_map_lookup_elem(&ringbuf_lost, &slot);
	if (n)
		(*n)++; /* per-CPU slot: no atomics needed */
	return true;
}

#endif /* LINEAGED_LIB_SHED_H */
