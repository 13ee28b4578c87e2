/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Descriptor changes during a call (fileio.bpf.c). An open's file is read
 * from the task's descriptor table at sys_exit, by the number the call
 * returns: a sibling thread that closes that number (and lets another
 * open take it) or dup2s another file onto it between the kernel's
 * fd_install and that read hides the file or names another one. The same
 * holds for the calls on an fd whose file is read at exit (fchmod).
 *
 * Every close, dup2, dup3 and close_range of a session member marks the
 * (thread group, descriptor) it changes with its thread, the call's start
 * and, at its exit, its end. A call whose file is read by descriptor at
 * exit carries FILE_F_FD_CHANGED when a change of that descriptor is in
 * flight, or the last one to end is another thread's and ended after the
 * call began (FD_MARK_SKEW_NS allowed for the clocks of two CPUs). A
 * close that ends during an open which then gets the freed number is
 * flagged too: from the kernel's side it cannot be told apart from a
 * close after the open's fd_install followed by another thread's open of
 * the same number.
 *
 * Limits: the marks are an LRU map (FD_MARKS entries): a member that
 * changes more descriptors than that between a sibling's fd_install and
 * its exit can push the mark out. A change whose exit the sensor missed
 * (attached mid-call) stays in flight; it counts for FD_MARK_STALE_NS
 * after the descriptor's last change began.
 */
#ifndef LINEAGED_FILEIO_FDS_H
#define LINEAGED_FILEIO_FDS_H

/* The key of a close_range's mark: its range is in the value. */
#define FD_MARK_RANGE 0xffffffffu
#define FD_MARKS 8192
#define FD_MARK_STALE_NS (1000ULL * 1000 * 1000)
/* The clocks of two CPUs may disagree by a few microseconds (seen in
 * virtual machines): a change that ended on another CPU this much before
 * the call began still counts as during it. */
#define FD_MARK_SKEW_NS (100ULL * 1000)

struct fd_mark_key {
	__u32 tgid;
	__u32 fd;
};

struct fd_mark {
	__u64 start; /* boot ns at the change's sys_enter */
	__u64 end;   /* at its sys_exit; 0 while in flight */
	__u32 lo;    /* FD_MARK_RANGE: the descriptors closed */
	__u32 hi;
	__u32 tid;   /* the thread of the last change begun or ended */
	__u32 inflight; /* changes between their sys_enter and sys_exit */
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, FD_MARKS);
	__type(key, struct fd_mark_key);
	__type(value, struct fd_mark);
} fd_marks SEC(".maps");

/* The descriptor a change call changes, from its first two arguments;
 * FD_MARK_RANGE for close_range. */
static __always_inline __u32 fd_mark_target(long nr, __u64 arg0, __u64 arg1)
{
	switch (nr) {
	case NR_close:
		return (__u32)arg0;
	case NR_dup2:
	case NR_dup3:
		return (__u32)arg1;
	}
	return FD_MARK_RANGE;
}

/* sys_enter of a member's close, dup2, dup3 or close_range (regs: the
 * x86_64-ordered copy of the arguments). */
static __always_inline int fd_mark_enter(long nr, const struct sc_args *regs, __u32 tgid)
{
	struct fd_mark_key k = { .tgid = tgid, .fd = fd_mark_target(nr, regs->di, regs->si) };
	struct fd_mark n = {
		.start = bpf_ktime_get_boot_ns(),
		.tid = (__u32)bpf_get_current_pid_tgid(),
		.inflight = 1,
	};
	struct fd_mark *m;

	if (k.fd == FD_MARK_RANGE) {
		n.lo = (__u32)regs->di;
		n.hi = (__u32)regs->si;
	}
	if (!bpf_map_update_elem(&fd_marks, &k, &n, BPF_NOEXIST))
		return 0;
	/* Marked before: one more in flight. */
	m = bpf_map_lookup_elem(&fd_marks, &k);
	if (!m)
		return 0;
	__sync_fetch_and_add(&m->inflight, 1);
	m->start = n.start;
	m->tid = n.tid;
	if (k.fd == FD_MARK_RANGE) {
		m->lo = n.lo;
		m->hi = n.hi;
	}
	return 0;
}

/* sys_exit of a change call: its mark ends, and is this thread's again
 * (another thread's change begun meanwhile may have taken it over, and a
 * change of the opener's own, made before its open, must not hide this
 * one). Only members have marks, so the lookup is the membership test;
 * compat says whether the number was translated from i386 (then the
 * arguments are in ebx and ecx; a 32-bit call left untranslated is
 * another call). */
static __always_inline int fd_mark_exit(long nr, const struct pt_regs *regs, bool compat)
{
	struct fd_mark *m;
	struct fd_mark_key k;
	__u64 arg0, arg1, id;

	if (compat) {
		arg0 = SC_IA32_ARG0(regs);
		arg1 = SC_IA32_ARG1(regs);
	} else {
		arg0 = SC_ARG0(regs);
		arg1 = SC_ARG1(regs);
	}
	id = bpf_get_current_pid_tgid();
	k.tgid = id >> 32;
	k.fd = fd_mark_target(nr, arg0, arg1);
	m = bpf_map_lookup_elem(&fd_marks, &k);
	if (!m || (!compat && current_compat()))
		return 0;
	if (m->inflight)
		__sync_fetch_and_add(&m->inflight, -1);
	m->tid = (__u32)id;
	m->end = bpf_ktime_get_boot_ns();
	return 0;
}

static __always_inline bool fd_mark_overlaps(const struct fd_mark *m, __u64 since, __u64 now,
					     __u32 tid)
{
	if (m->inflight && now - m->start < FD_MARK_STALE_NS)
		return true; /* another thread's change under way */
	if (m->tid == tid)
		return false; /* the caller's own, before its call */
	return m->end + FD_MARK_SKEW_NS >= since;
}

/* Whether descriptor fd of tgid was changed by a call that overlapped
 * [since, now]. */
static __always_inline bool fd_changed(long fd, __u64 since)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct fd_mark_key k = { .tgid = id >> 32, .fd = (__u32)fd };
	__u64 now = bpf_ktime_get_boot_ns();
	struct fd_mark *m;

	if (fd < 0)
		return false;
	m = bpf_map_lookup_elem(&fd_marks, &k);
	if (m && fd_mark_overlaps(m, since, now, (__u32)id))
		return true;
	k.fd = FD_MARK_RANGE;
	m = bpf_map_lookup_elem(&fd_marks, &k);
	return m && (__u32)fd >= m->lo && (__u32)fd <= m->hi && fd_mark_overlaps(m, since, now, (__u32)id);
}

#endif /* LINEAGED_FILEIO_FDS_H */
