/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Counts of read-only opens not reported because the same process image
 * had already reported the same file (bpf/maps.h open_repeats): added by
 * the file program, taken by the process's exit record.
 */
#ifndef LINEAGED_LIB_REPEATS_H
#define LINEAGED_LIB_REPEATS_H

#include "maps.h"

static __always_inline void count_repeat(__u32 tgid, __u64 start_ns)
{
	struct open_repeats *r = bpf_map_lookup_elem(&open_repeats, &tgid);
	if (r && r->start_ns == start_ns) {
		__sync_fetch_and_add(&r->count, 1);
		return;
	}
	/* First repeat, or a stale entry of a reused pid. Two threads racing
	 * here can lose one count, never a record. */
	struct open_repeats v = { .start_ns = start_ns, .count = 1 };
	bpf_map_update_elem(&open_repeats, &tgid, &v, BPF_ANY);
}

/* The process's count, removed; saturated to 32 bits. */
static __always_inline __u32 take_repeats(__u32 tgid, __u64 start_ns)
{
	struct open_repeats *r = bpf_map_lookup_elem(&open_repeats, &tgid);
	if (!r)
		return 0;
	__u64 n = r->start_ns == start_ns ? r->count : 0;
	bpf_map_delete_elem(&open_repeats, &tgid);
	return n > 0xffffffffULL ? 0xffffffffU : (__u32)n;
}

#endif /* LINEAGED_LIB_REPEATS_H */
