/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * io_uring_setup(2) of session members, for fileio.bpf.c's sys_exit (the
 * requests submitted to a ring are bpf/iouring.bpf.c's). 425 in both the
 * x86_64 and the i386 table: an ia32 call is told by TS_COMPAT and takes
 * its arguments from ebx and ecx.
 *
 * Read at exit: the result (the ring's fd) is known, and the arguments are
 * the caller's saved registers. setup_flags is io_uring_params.flags as
 * the caller's memory holds it at exit (the kernel read it at entry and
 * writes the rest of the struct back, not the flags).
 */
#ifndef LINEAGED_FILEIO_IOURING_H
#define LINEAGED_FILEIO_IOURING_H

#define NR_io_uring_setup 425

/* Set by userspace before load (policy deny_io_uring): a member's
 * io_uring_setup is answered with SIGKILL. */
const volatile __u8 deny_io_uring = 0;

/*
 * sys_enter of io_uring_setup. With deny_io_uring, a member is sent
 * SIGKILL here: the call still runs, but no instruction of the process
 * runs after it (the whole thread group dies before returning to user
 * space), and the ring goes with it. The kernel cannot be made to fail
 * the call from a tracepoint; the BPF LSM could (not used here: it runs
 * on fewer hosts). Outside deny_io_uring this costs one load.
 */
static __always_inline int iouring_setup_enter(void)
{
	if (!deny_io_uring || !current_session())
		return 0;
	bpf_send_signal(9 /* SIGKILL */);
	return 0;
}

static __always_inline int iouring_setup_exit(struct pt_regs *regs, long ret)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	struct iouring_event *ev;
	struct session *s;
	__u64 entries, params;
	__u32 flags = 0;
	bool ia32;

	s = session_of(task, tgid);
	if (!s)
		return 0;
	ia32 = task_compat(task);
	if (ia32) {
		entries = SC_IA32_ARG0(regs);
		params = SC_IA32_ARG1(regs);
	} else {
		entries = SC_ARG0(regs);
		params = SC_ARG1(regs);
	}
	unpark_fork(tgid);
	if (shed(EV_IOURING, s->root_pid, s->root_start))
		return 0;
	ev = bpf_ringbuf_reserve(&events, sizeof(*ev), 0);
	if (!ev) {
		count_lost(EV_IOURING);
		return 0;
	}
	fill_header(&ev->hdr, EV_IOURING, task, s);
	ev->result = ret;
	ev->entries = entries;
	ev->setup_flags = 0;
	ev->fd = -1;
	ev->dfd = 0;
	ev->open_flags = 0;
	ev->mode = 0;
	ev->uflags = ia32 ? IOU_F_IA32 : 0;
	if (deny_io_uring)
		ev->uflags |= IOU_F_KILLED; /* iouring_setup_enter sent SIGKILL */
	ev->op = IOU_OP_SETUP;
	ev->opcode = 0;
	ev->user_data = 0;
	ev->family = 0;
	ev->port = 0;
	ev->path_len = 0;
	ev->new_path_len = 0;
	__builtin_memset(ev->addr, 0, sizeof(ev->addr));
	/* struct io_uring_params: sq_entries, cq_entries, flags, ... */
	if (bpf_probe_read_user(&flags, sizeof(flags), (void *)(params + 8)))
		ev->uflags |= IOU_F_UNREADABLE;
	else
		ev->setup_flags = flags;
	bpf_ringbuf_submit(ev, ringbuf_flags());
	return 0;
}

#endif /* LINEAGED_FILEIO_IOURING_H */
