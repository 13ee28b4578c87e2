/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Ring-buffer wakeups, one policy for every record of every object.
 *
 * A wakeup per record costs an irq_work (a self-IPI, a VM exit under
 * virtualisation) in the producing task plus an epoll round trip and
 * several syscalls in the reader; the kernel's adaptive default wakes the
 * reader whenever it has caught up, which in an exec storm is almost every
 * record. With flush_ns set, the reader polls every flush_ns while records
 * keep coming (sensor/kernel/reader.go), so only the first record after a
 * quiet period (or a ring filling past wakeup_bytes) needs to wake it.
 *
 * The time of the last forced wakeup is in the shared ringbuf_wakeup map
 * (bpf/maps.h), so the objects share one budget of wakeups. It is updated
 * by every CPU without atomics: a lost update only causes an extra wakeup.
 * The reader also polls every 250 ms when idle, which bounds the delay of
 * a record that raced its decision to stop polling. flush_ns == 0 keeps the
 * kernel's default (wake when the reader has caught up). flush_ns and
 * wakeup_bytes are set by userspace before load, in every object.
 */
#ifndef LINEAGED_LIB_WAKEUP_H
#define LINEAGED_LIB_WAKEUP_H

#include "maps.h"

const volatile __u64 flush_ns = 0;
const volatile __u64 wakeup_bytes = 0;

/* The flags argument of bpf_ringbuf_output/submit for the next record. */
static __always_inline __u64 ringbuf_flags(void)
{
	if (!flush_ns)
		return 0;
	__u32 zero = 0;
	__u64 *last = bpf_map_lookup_elem(&ringbuf_wakeup, &zero);
	if (!last)
		return 0;
	__u64 now = bpf_ktime_get_ns();
	if (now - *last >= flush_ns ||
	    bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA) >= wakeup_bytes) {
		*last = now;
		return BPF_RB_FORCE_WAKEUP;
	}
	return BPF_RB_NO_WAKEUP;
}

#endif /* LINEAGED_LIB_WAKEUP_H */
