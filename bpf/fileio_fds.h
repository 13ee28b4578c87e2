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
 * flight, or the last one to end ended after the call began (a change of
 * the caller's own thread ended before it). A close that ends during an
 * open which then gets the freed
 * number is flagged too: from the kernel's side it cannot be told apart
 * from a close after the open's fd_install followed by another thread's
 * open of the same number.
 *
 * "Ended after the call began" is decided by a logical clock, fd_seq, not
 * by the boot clock alone: a change's exit adds one to it and keeps the
 * value it then reads (end_seq); a call takes fd_stamp() at its entry,
 * before it reads anything of the descriptor. A change whose increment the
 * call's stamp did not see ended after the call's entry read began, and
 * its end_seq is at least the stamp; one that ended before has an end_seq
 * below it (unless other changes were counted between its increment and
 * its read, which flags a call that did not need it, never the reverse).
 * The boot clocks of two CPUs cannot order events microseconds apart: a
 * slack for them flagged the common close-then-reuse of a number by two
 * threads of a program, which the counter does not. A call whose entry
 * was not kept (fio_args full, an evicted connect start) has no stamp and
 * counts as begun FD_MARK_STALE_NS before its exit, by the clock.
 *
 * Limits: the marks are an LRU map (FD_MARKS entries): a member that
 * changes more descriptors than that between a sibling's fd_install and
 * its exit can push the mark out. A change whose exit the sensor missed
 * (attached mid-call) stays in flight; it counts for FD_MARK_STALE_NS
 * after the descriptor's last change began. Two changes of one number
 * ending at the same moment on two CPUs write the mark's end at once, and
 * the earlier end may be the one kept: a call that began between their
 * two increments is then not flagged. Where the kernel can preempt these
 * programs (7.3), a change whose exit program is preempted is in flight
 * until it runs again, and a call on that number ending meanwhile is
 * flagged though the change took effect before it began; an exit the
 * kernel skipped is in flight until its thread's next change (fd_cur).
 */
#ifndef LINEAGED_FILEIO_FDS_H
#define LINEAGED_FILEIO_FDS_H

#ifndef READ_ONCE
#define READ_ONCE(x) (*(const volatile typeof(x) *)&(x))
#endif
#ifndef WRITE_ONCE
#define WRITE_ONCE(x, v) (*(volatile typeof(x) *)&(x) = (v))
#endif

/* The key of a close_range's mark: its range is in the value. */
#define FD_MARK_RANGE 0xffffffffu
#define FD_MARKS 8192
#define FD_MARK_STALE_NS (1000ULL * 1000 * 1000)


struct fd_mark_key {
	__u32 tgid;
	__u32 fd;
};

struct fd_mark {
	__u64 start; /* boot ns at the change's sys_enter */
	__u64 end;   /* at its sys_exit; 0 while in flight */
	__u64 end_seq; /* fd_seq read at its sys_exit, after adding one */
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

/*
 * The order of things between CPUs. A change's exit counts itself on
 * fd_seq after the change took effect, writes its end, then drops its
 * mark's count in flight; a call takes its stamp before it reads a
 * descriptor, and at its exit reads a mark's count first. On x86 stores
 * and loads keep their order and a locked add orders everything. On arm64
 * neither holds: there the count on fd_seq, the stamp, the drop and the
 * reader's read of the count are fetching atomics, which arm64 kernels
 * (5.12 on) run fully ordered. clang emits those only for BPF v3, whose
 * 32-bit code made the verifier walk this object's programs three times
 * as far (80k to 280k instructions on 7.3), and clang 14's assembler does
 * not know them: they are written out as their encodings, on r1 (the
 * address) and r2 (the operand, then the old value).
 */
#if defined(__TARGET_ARCH_arm64)
/* w2 = atomic_fetch_add((u32 *)(r1 + 0), w2) */
#define FD_FETCH_ADD_W_R1_R2 ".8byte 0x00000001000021c3"
/* w2 = atomic_fetch_or((u32 *)(r1 + 0), w2) */
#define FD_FETCH_OR_W_R1_R2 ".8byte 0x00000041000021c3"
/* r2 = atomic_fetch_add((u64 *)(r1 + 0), r2) */
#define FD_FETCH_ADD_DW_R1_R2 ".8byte 0x00000001000021db"
/* r2 = atomic_fetch_or((u64 *)(r1 + 0), r2) */
#define FD_FETCH_OR_DW_R1_R2 ".8byte 0x00000041000021db"
/* old = the value at p before one of the above with operand v. */
#define FD_FETCH(insn, p, v, old)                                            \
	asm volatile("r1 = %[ptr]\n\tr2 = " #v "\n\t" insn "\n\t%[out] = r2" \
		     : [out] "=r"(old)                                        \
		     : [ptr] "r"(p)                                           \
		     : "r1", "r2", "memory")
#endif

/* The logical clock of descriptor changes (see the top of this file). */
__u64 fd_seq = 0;

/* A call's stamp, taken at its entry before it reads a descriptor: a
 * change whose end_seq is at least this ended after it. Never 0. */
static __always_inline __u64 fd_stamp(void)
{
#if defined(__TARGET_ARCH_arm64)
	__u64 v;

	FD_FETCH(FD_FETCH_OR_DW_R1_R2, &fd_seq, 0, v);
	return v + 1;
#else
	return READ_ONCE(fd_seq) + 1;
#endif
}

/* A change's exit counts itself: its end_seq. */
static __always_inline __u64 fd_seq_count(void)
{
#if defined(__TARGET_ARCH_arm64)
	__u64 v;

	FD_FETCH(FD_FETCH_ADD_DW_R1_R2, &fd_seq, 1, v);
	return v + 1;
#else
	__sync_fetch_and_add(&fd_seq, 1);
	return READ_ONCE(fd_seq);
#endif
}

static __always_inline void fd_mark_release(__u32 *inflight)
{
#if defined(__TARGET_ARCH_arm64)
	__u64 v;

	FD_FETCH(FD_FETCH_ADD_W_R1_R2, inflight, -1, v);
	(void)v;
#else
	__sync_fetch_and_add(inflight, -1);
#endif
}

static __always_inline __u32 fd_mark_inflight(struct fd_mark *m)
{
#if defined(__TARGET_ARCH_arm64)
	__u64 v;

	FD_FETCH(FD_FETCH_OR_W_R1_R2, &m->inflight, 0, v);
	return (__u32)v;
#else
	return READ_ONCE(m->inflight);
#endif
}

/* tid -> the mark of the change this thread has in flight (between its
 * change's sys_enter and sys_exit programs). A thread is in one syscall
 * at a time: an entry found at its next change's enter, or while it makes
 * another call, is a change whose exit program the kernel skipped (7.3
 * skips the run of a program already running on that CPU, which a
 * preempted program is): its count in flight is dropped then, and the
 * thread's own reads do not count it. Without this, one skipped exit left
 * a number's count in flight for good, and every later call on that
 * number was flagged. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, FD_MARKS);
	__type(key, __u32);
	__type(value, struct fd_mark_key);
} fd_cur SEC(".maps");

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
	struct fd_mark_key *prev;
	struct fd_mark *m;

	if (k.fd == FD_MARK_RANGE) {
		n.lo = (__u32)regs->di;
		n.hi = (__u32)regs->si;
	}
	prev = bpf_map_lookup_elem(&fd_cur, &n.tid);
	if (prev) {
		/* This thread's last change never reached its exit program. */
		struct fd_mark_key pk = *prev;

		m = bpf_map_lookup_elem(&fd_marks, &pk);
		if (m && READ_ONCE(m->inflight))
			fd_mark_release(&m->inflight);
	}
	bpf_map_update_elem(&fd_cur, &n.tid, &k, BPF_ANY);
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
	__u64 arg0, arg1, id, seq;
	struct fd_mark_key *cur;
	bool entered;
	__u32 tid;

	if (compat) {
		arg0 = SC_IA32_ARG0(regs);
		arg1 = SC_IA32_ARG1(regs);
	} else {
		arg0 = SC_ARG0(regs);
		arg1 = SC_ARG1(regs);
	}
	id = bpf_get_current_pid_tgid();
	tid = (__u32)id;
	k.tgid = id >> 32;
	k.fd = fd_mark_target(nr, arg0, arg1);
	m = bpf_map_lookup_elem(&fd_marks, &k);
	if (!m || (!compat && current_compat()))
		return 0;
	/* Whether its enter counted it in flight: fd_cur names this mark.
	 * Another mark there is a change of this thread's whose exit was
	 * skipped, and this one's enter was skipped too (it would have
	 * replaced it): that one is dropped, nothing of this one. No entry
	 * (the kernel skipped this enter and the thread had nothing in
	 * flight, or the map let it go): dropped as counted. */
	entered = true;
	cur = bpf_map_lookup_elem(&fd_cur, &tid);
	if (cur) {
		struct fd_mark_key ck = *cur;
		struct fd_mark *pm;

		bpf_map_delete_elem(&fd_cur, &tid);
		if (ck.tgid != k.tgid || ck.fd != k.fd) {
			entered = false;
			pm = bpf_map_lookup_elem(&fd_marks, &ck);
			if (pm && READ_ONCE(pm->inflight))
				fd_mark_release(&pm->inflight);
		}
	}
	/* After the change took effect: a call whose stamp misses this
	 * count reads the descriptor after it too, or is flagged. */
	seq = fd_seq_count();
	/* The end first, the count in flight last: a reader that sees
	 * this change no longer in flight sees its end, not the end (and
	 * thread) of the change before it, which may be the caller's own
	 * close made just before its open. */
	WRITE_ONCE(m->tid, (__u32)id);
	WRITE_ONCE(m->end, bpf_ktime_get_boot_ns());
	WRITE_ONCE(m->end_seq, seq);
	if (entered && READ_ONCE(m->inflight))
		fd_mark_release(&m->inflight);
	return 0;
}

/* The count in flight is read first (see fd_mark_release). With a stamp,
 * the caller's own change made before its call ended before the stamp was
 * taken; without one (seq 0: since is a second back), the caller's own is
 * told by its thread. */
static __always_inline bool fd_mark_overlaps(struct fd_mark *m, __u64 since, __u64 seq,
					     __u64 now, __u32 tid, bool own_stale)
{
	__u32 inflight = fd_mark_inflight(m);

	if (own_stale && inflight)
		inflight--; /* the caller's own change, its exit skipped (fd_cur) */
	if (inflight && now - READ_ONCE(m->start) < FD_MARK_STALE_NS)
		return true; /* a change under way */
	if (seq)
		return READ_ONCE(m->end_seq) >= seq;
	if (READ_ONCE(m->tid) == tid)
		return false;
	return READ_ONCE(m->end) >= since;
}

/* Whether descriptor fd of tgid was changed by a call that overlapped
 * the caller's: one that began at boot time since with stamp seq
 * (fd_stamp), or, seq 0 (a call whose entry was not kept), at since
 * alone. */
static __always_inline bool fd_changed(long fd, __u64 since, __u64 seq)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct fd_mark_key k = { .tgid = id >> 32, .fd = (__u32)fd };
	__u64 now = bpf_ktime_get_boot_ns();
	struct fd_mark *m;

	__u32 tid = (__u32)id;
	struct fd_mark_key *own;
	__u32 own_fd = FD_MARK_RANGE - 1; /* no change of the caller's own in flight */

	if (fd < 0)
		return false;
	/* The caller is in this call: a change of its own still marked in
	 * flight is one whose exit program the kernel skipped. */
	own = bpf_map_lookup_elem(&fd_cur, &tid);
	if (own && own->tgid == k.tgid)
		own_fd = own->fd;
	m = bpf_map_lookup_elem(&fd_marks, &k);
	if (m && fd_mark_overlaps(m, since, seq, now, tid, own_fd == k.fd))
		return true;
	k.fd = FD_MARK_RANGE;
	m = bpf_map_lookup_elem(&fd_marks, &k);
	return m && (__u32)fd >= m->lo && (__u32)fd <= m->hi &&
	       fd_mark_overlaps(m, since, seq, now, tid, own_fd == FD_MARK_RANGE);
}

#endif /* LINEAGED_FILEIO_FDS_H */
