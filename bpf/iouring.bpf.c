// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Requests submitted to an io_uring by session members. An opened,
 * created, unlinked or renamed name, a connect, bind, listen or accept, an
 * addressed send, a new socket, an xattr change, a truncate, a fixed file
 * installed or a uring_cmd passed through a ring never pass through the
 * syscalls fileio.bpf.c traces: the ring's submission does them. Each such
 * request is one EV_IOURING record (op IOU_OP_SUBMIT) with its opcode;
 * plain reads, writes, polls, nops, timeouts and the like are not reported
 * (iou_reported). io_uring_setup itself is fileio_iouring.h's.
 *
 * Two tracepoints, one per kernel generation, attached by name as raw
 * tracepoints (the loader attaches the one the kernel has, none when it
 * has neither, sensor/kernel/iouring_load.go):
 *  - io_uring_submit_req(req), 6.4+, and io_uring_submit_sqe(req,
 *    force_nonblock), 6.0 to 6.3: io_init_req has run the opcode's
 *    prep, so the request's command area holds the kernel's copy of the
 *    names (struct filename) of openat, openat2, unlinkat, mkdirat,
 *    renameat, linkat and symlinkat, and the request's fd. Those are read
 *    with CO-RE, each guarded by bpf_core_type_exists/field_exists, so the
 *    object loads where a struct differs; a name is as given (relative to
 *    dfd, unresolved), IOU_F_PATH_AS_GIVEN says so. A connect's
 *    destination is the caller's sockaddr at submission, through the
 *    pointer prep kept (IOU_F_ADDR_FROM_CALLER): the kernel's copy lives
 *    in async data whose validity flag has no name CO-RE can relocate.
 *    A bind's address is not read. Every send, sendmsg and their
 *    zero-copy forms are reported (IOU_F_SEND_UNKNOWN): whether one names
 *    a destination is not visible here;
 *  - io_uring_submit_sqe, 5.5-5.19: before prep, and with two argument
 *    layouts (to 5.13: ctx, opcode, user_data, ...; 5.15 on: ctx, req,
 *    opcode, user_data, ...), told apart by its trace-event struct. Only the
 *    opcode and user_data (IOU_F_TP_SQE).
 *
 * Who submits: the member's thread inside io_uring_enter, or, for a ring
 * set up with IORING_SETUP_SQPOLL, the ring's kernel thread. Since 5.12
 * that thread is a PF_IO_WORKER of the owner's thread group, so its tgid
 * is the owner's and the record is the owner's (IOU_F_SQPOLL_THREAD).
 * Before 5.12 (5.10) it is a kthread of no session: its submissions are
 * not seen.
 *
 * Cost outside sessions: one lookup of the tgid in `sessions` per
 * submitted request of an opcode we report.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>

#include "maps.h"
#include "fileio.h"
#include "lib/header.h"
#include "lib/wakeup.h"
#include "lib/shed.h"
#include "lib/forks.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* Name the record once so its BTF (and the generated Go type) exist. */
const struct iouring_event *unused_iouring_event __attribute__((unused));

/* IORING_OP_* (include/uapi/linux/io_uring.h): ABI, numbers never reused. */
#define OP_SENDMSG 9
#define OP_ACCEPT 13
#define OP_CONNECT 16
#define OP_OPENAT 18
#define OP_FILES_UPDATE 20
#define OP_SEND 26
#define OP_OPENAT2 28
#define OP_RENAMEAT 35
#define OP_UNLINKAT 36
#define OP_MKDIRAT 37
#define OP_SYMLINKAT 38
#define OP_LINKAT 39
#define OP_MSG_RING 40
#define OP_FSETXATTR 41
#define OP_SETXATTR 42
#define OP_SOCKET 45
#define OP_URING_CMD 46
#define OP_SEND_ZC 47
#define OP_SENDMSG_ZC 48
#define OP_FIXED_FD_INSTALL 54
#define OP_FTRUNCATE 55
#define OP_BIND 56
#define OP_LISTEN 57
/* The first opcode this build does not know: reported, whatever it is. */
#define OP_UNKNOWN 63

#define BIT(n) (1ULL << (n))
#define IOU_REPORTED                                                          \
	(BIT(OP_SENDMSG) | BIT(OP_ACCEPT) | BIT(OP_CONNECT) | BIT(OP_OPENAT) | \
	 BIT(OP_FILES_UPDATE) | BIT(OP_SEND) | BIT(OP_OPENAT2) |              \
	 BIT(OP_RENAMEAT) | BIT(OP_UNLINKAT) | BIT(OP_MKDIRAT) |               \
	 BIT(OP_SYMLINKAT) | BIT(OP_LINKAT) | BIT(OP_MSG_RING) |               \
	 BIT(OP_FSETXATTR) | BIT(OP_SETXATTR) | BIT(OP_SOCKET) |               \
	 BIT(OP_URING_CMD) | BIT(OP_SEND_ZC) | BIT(OP_SENDMSG_ZC) |            \
	 BIT(OP_FIXED_FD_INSTALL) | BIT(OP_FTRUNCATE) | BIT(OP_BIND) |         \
	 BIT(OP_LISTEN))

#define PF_IO_WORKER 0x00000010
#define REQ_F_FIXED_FILE 1 /* bit 0 in every version: IOSQE_FIXED_FILE_BIT */
#define AF_INET 2
#define AF_INET6 10
#define AF_UNIX 1

static __always_inline bool iou_reported(__u8 opcode)
{
	if (opcode >= OP_UNKNOWN)
		return true;
	return (IOU_REPORTED >> opcode) & 1;
}

/* The argument layouts of io_uring_submit_sqe, by its trace-event struct
 * (the kernel's name without the ___ suffix). */
struct trace_event_raw_io_uring_submit_sqe___req {
	void *req;
} __attribute__((preserve_access_index));

static __always_inline struct iouring_event *iou_reserve(struct task_struct *task,
							 struct session *s,
							 __u8 opcode, __u32 tgid)
{
	struct iouring_event *ev;

	unpark_fork(tgid);
	if (shed(EV_IOURING, s->root_pid, s->root_start))
		return NULL;
	ev = bpf_ringbuf_reserve(&events, sizeof(*ev), 0);
	if (!ev) {
		count_lost(EV_IOURING);
		return NULL;
	}
	fill_header(&ev->hdr, EV_IOURING, task, s);
	ev->result = 0;
	ev->entries = 0;
	ev->setup_flags = 0;
	ev->fd = -1;
	ev->dfd = 0;
	ev->open_flags = 0;
	ev->mode = 0;
	ev->uflags = 0;
	ev->op = IOU_OP_SUBMIT;
	ev->opcode = opcode;
	ev->user_data = 0;
	ev->family = 0;
	ev->port = 0;
	ev->path_len = 0;
	ev->new_path_len = 0;
	__builtin_memset(ev->addr, 0, sizeof(ev->addr));
	if (BPF_CORE_READ(task, flags) & PF_IO_WORKER)
		ev->uflags |= IOU_F_SQPOLL_THREAD;
	return ev;
}

/*
 * From 7.0 the name fields of these commands are a struct delayed_filename
 * holding the struct filename pointer (__incomplete_filename: the name is
 * copied at prep, and its audit entry made at issue), not the pointer
 * itself. The ___dl flavours match that layout; a kernel has one or the
 * other, and IOU_FN reads whichever it has.
 */
struct delayed_filename {
	struct filename *__incomplete_filename;
} __attribute__((preserve_access_index));
struct io_open___dl {
	struct delayed_filename filename;
} __attribute__((preserve_access_index));
struct io_unlink___dl {
	struct delayed_filename filename;
} __attribute__((preserve_access_index));
struct io_mkdir___dl {
	struct delayed_filename filename;
} __attribute__((preserve_access_index));
struct io_rename___dl {
	struct delayed_filename oldpath;
	struct delayed_filename newpath;
} __attribute__((preserve_access_index));
struct io_link___dl {
	struct delayed_filename oldpath;
	struct delayed_filename newpath;
} __attribute__((preserve_access_index));

/* Whether struct T has a name field f, in either layout. */
#define IOU_HAS_FN(T, f)                                                      \
	(bpf_core_field_exists(struct T, f) || bpf_core_field_exists(struct T##___dl, f))
/* The struct filename pointer of name field f of the command at p. */
#define IOU_FN(T, p, f)                                                       \
	(bpf_core_field_exists(struct T##___dl, f) ?                              \
		 BPF_CORE_READ((struct T##___dl *)(p), f.__incomplete_filename) : \
		 (struct filename *)BPF_CORE_READ((struct T *)(p), f))

/* A struct filename's name (the kernel's copy) into dst; its length. */
static __always_inline __u16 iou_name(char *dst, struct filename *fn, __u16 *uflags,
				      __u16 trunc_flag)
{
	const char *name;
	long n;

	if (!fn)
		return 0;
	name = BPF_CORE_READ(fn, name);
	if (!name)
		return 0;
	n = bpf_probe_read_kernel_str(dst, IOU_PATH_MAX, name);
	if (n <= 1)
		return 0;
	*uflags |= IOU_F_PATH_AS_GIVEN;
	if (n >= IOU_PATH_MAX) {
		char c = 0;

		/* Full buffer: truncated unless the NUL was the last byte. */
		bpf_probe_read_kernel(&c, 1, name + IOU_PATH_MAX - 1);
		if (c)
			*uflags |= trunc_flag;
	}
	return n - 1;
}

/* A sockaddr (kernel or caller memory, len bytes) into the record. */
static __always_inline void iou_sockaddr(struct iouring_event *ev, const void *sa,
					 int len, bool user)
{
	union {
		__u16 family;
		struct sockaddr_in in;
		struct sockaddr_in6 in6;
		struct {
			__u16 family;
			char path[108];
		} un;
		__u8 raw[128]; /* what the mask below allows */
	} a = {};
	__u32 n = len;
	long err;

	if (!sa || len < 2)
		return;
	if (n > sizeof(a) - 1)
		n = sizeof(a) - 1; /* room for all but sun_path's last byte */
	barrier_var(n);
	n &= 127;
	if (n < 2)
		return;
	if (user)
		err = bpf_probe_read_user(&a, n, sa);
	else
		err = bpf_probe_read_kernel(&a, n, sa);
	if (err)
		return;
	ev->family = a.family;
	if (a.family == AF_INET) {
		ev->port = bpf_ntohs(a.in.sin_port);
		__builtin_memcpy(ev->addr, &a.in.sin_addr, 4);
	} else if (a.family == AF_INET6) {
		ev->port = bpf_ntohs(a.in6.sin6_port);
		__builtin_memcpy(ev->addr, &a.in6.sin6_addr, 16);
	} else if (a.family == AF_UNIX) {
		__u32 i, m = n - 2;

		/* Up to its NUL; an abstract name keeps its leading NUL out
		 * of path (path_len 0) but family says AF_UNIX. */
		for (i = 0; i < 108; i++) {
			if (i >= m || !a.un.path[i])
				break;
			ev->path[i & (IOU_PATH_MAX - 1)] = a.un.path[i];
		}
		ev->path_len = i;
	}
}

/* The prepared state of a 6.x request: names, fd, a connect's
 * destination. */
static __always_inline bool iou_prepared(struct iouring_event *ev, struct io_kiocb *req,
					 __u8 opcode)
{
	void *cmd = req;

	if (!bpf_core_field_exists(req->cmd))
		return true;
	cmd = (void *)req + bpf_core_field_offset(req->cmd);
	if (bpf_core_field_exists(req->cqe.fd))
		ev->fd = BPF_CORE_READ(req, cqe.fd);
	if (BPF_CORE_READ(req, flags) & REQ_F_FIXED_FILE)
		ev->uflags |= IOU_F_FIXED_FILE;
	ev->user_data = BPF_CORE_READ(req, cqe.user_data);
	switch (opcode) {
	case OP_OPENAT:
	case OP_OPENAT2:
		if (bpf_core_type_exists(struct io_open) && IOU_HAS_FN(io_open, filename)) {
			struct io_open *o = cmd;

			ev->dfd = BPF_CORE_READ(o, dfd);
			ev->open_flags = BPF_CORE_READ(o, how.flags);
			ev->mode = BPF_CORE_READ(o, how.mode);
			ev->path_len = iou_name(ev->path, IOU_FN(io_open, o, filename),
						&ev->uflags, IOU_F_PATH_TRUNC);
		}
		break;
	case OP_UNLINKAT:
		if (bpf_core_type_exists(struct io_unlink) && IOU_HAS_FN(io_unlink, filename)) {
			struct io_unlink *u = cmd;

			ev->dfd = BPF_CORE_READ(u, dfd);
			ev->open_flags = BPF_CORE_READ(u, flags);
			ev->path_len = iou_name(ev->path, IOU_FN(io_unlink, u, filename),
						&ev->uflags, IOU_F_PATH_TRUNC);
		}
		break;
	case OP_MKDIRAT:
		if (bpf_core_type_exists(struct io_mkdir) && IOU_HAS_FN(io_mkdir, filename)) {
			struct io_mkdir *m = cmd;

			ev->dfd = BPF_CORE_READ(m, dfd);
			ev->mode = BPF_CORE_READ(m, mode);
			ev->path_len = iou_name(ev->path, IOU_FN(io_mkdir, m, filename),
						&ev->uflags, IOU_F_PATH_TRUNC);
		}
		break;
	case OP_RENAMEAT:
		if (bpf_core_type_exists(struct io_rename) && IOU_HAS_FN(io_rename, oldpath)) {
			struct io_rename *r = cmd;

			ev->dfd = BPF_CORE_READ(r, old_dfd);
			ev->open_flags = BPF_CORE_READ(r, flags);
			ev->path_len = iou_name(ev->path, IOU_FN(io_rename, r, oldpath),
						&ev->uflags, IOU_F_PATH_TRUNC);
			ev->new_path_len = iou_name(ev->new_path, IOU_FN(io_rename, r, newpath),
						    &ev->uflags, IOU_F_NEW_PATH_TRUNC);
		}
		break;
	case OP_LINKAT:
	case OP_SYMLINKAT:
		/* symlinkat: oldpath is the link's target text, newpath the
		 * link's name. */
		if (bpf_core_type_exists(struct io_link) && IOU_HAS_FN(io_link, oldpath)) {
			struct io_link *l = cmd;

			ev->dfd = BPF_CORE_READ(l, new_dfd);
			ev->open_flags = BPF_CORE_READ(l, flags);
			ev->path_len = iou_name(ev->path, IOU_FN(io_link, l, oldpath),
						&ev->uflags, IOU_F_PATH_TRUNC);
			ev->new_path_len = iou_name(ev->new_path, IOU_FN(io_link, l, newpath),
						    &ev->uflags, IOU_F_NEW_PATH_TRUNC);
		}
		break;
	case OP_CONNECT:
		/* The caller's sockaddr: prep kept its pointer. The kernel's
		 * copy, where a kernel makes one at prep, is in async data
		 * whose validity flag has no stable name to relocate. */
		if (bpf_core_type_exists(struct io_connect) &&
		    bpf_core_field_exists(struct io_connect, addr)) {
			struct io_connect *c = cmd;

			iou_sockaddr(ev, BPF_CORE_READ(c, addr), BPF_CORE_READ(c, addr_len),
				     true);
			if (ev->family)
				ev->uflags |= IOU_F_ADDR_FROM_CALLER;
		}
		break;
	case OP_SEND:
	case OP_SEND_ZC:
	case OP_SENDMSG:
	case OP_SENDMSG_ZC:
		/* Whether it names a destination is not known here. */
		ev->uflags |= IOU_F_SEND_UNKNOWN;
		break;
	}
	return true;
}

static __always_inline struct session *iou_member(struct task_struct **task,
						  __u32 *tgid)
{
	*tgid = bpf_get_current_pid_tgid() >> 32;
	/* bpf_get_current_task, not _btf: kernels before 5.11 lack it. */
	*task = (struct task_struct *)bpf_get_current_task();
	return session_of(*task, *tgid);
}

/* 6.4+: io_uring_submit_req(struct io_kiocb *req); 6.0 to 6.3:
 * io_uring_submit_sqe(struct io_kiocb *req, bool force_nonblock). Either
 * way the prepared request is the first argument; the loader attaches this
 * program to the one the kernel has (sensor/kernel/iouring_load.go). */
SEC("raw_tp/io_uring_submit_req")
int iouring_submit_req(struct bpf_raw_tracepoint_args *ctx)
{
	struct io_kiocb *req = (struct io_kiocb *)ctx->args[0];
	struct iouring_event *ev;
	struct task_struct *task;
	struct session *s;
	__u8 opcode;
	__u32 tgid;

	opcode = BPF_CORE_READ(req, opcode);
	if (!iou_reported(opcode))
		return 0;
	s = iou_member(&task, &tgid);
	if (!s)
		return 0;
	ev = iou_reserve(task, s, opcode, tgid);
	if (!ev)
		return 0;
	if (!iou_prepared(ev, req, opcode)) {
		bpf_ringbuf_discard(ev, 0);
		return 0;
	}
	bpf_ringbuf_submit(ev, ringbuf_flags());
	return 0;
}

/* 5.5-5.19: TP_PROTO(ctx, opcode, user_data, ...) up to 5.13 (5.10 in the
 * matrix), then TP_PROTO(ctx, req, opcode, user_data, ...). Both read at
 * most args[3]: the attach checks the program reads no argument past the
 * tracepoint's five. */
SEC("raw_tp/io_uring_submit_sqe")
int iouring_submit_sqe(struct bpf_raw_tracepoint_args *ctx)
{
	struct iouring_event *ev;
	struct task_struct *task;
	struct session *s;
	__u64 user_data;
	__u8 opcode;
	__u32 tgid;

	/* Each argument read at a constant offset, before choosing: the
	 * verifier refuses a context load through a computed pointer. */
	__u64 a1 = ctx->args[1], a2 = ctx->args[2], a3 = ctx->args[3];

	barrier_var(a1);
	barrier_var(a2);
	barrier_var(a3);
	if (bpf_core_field_exists(struct trace_event_raw_io_uring_submit_sqe___req, req)) {
		opcode = a2;
		user_data = a3;
	} else {
		opcode = a1;
		user_data = a2;
	}
	if (!iou_reported(opcode))
		return 0;
	s = iou_member(&task, &tgid);
	if (!s)
		return 0;
	ev = iou_reserve(task, s, opcode, tgid);
	if (!ev)
		return 0;
	ev->uflags |= IOU_F_TP_SQE;
	ev->user_data = user_data;
	if (opcode == OP_SEND || opcode == OP_SEND_ZC || opcode == OP_SENDMSG ||
	    opcode == OP_SENDMSG_ZC)
		ev->uflags |= IOU_F_SEND_UNKNOWN;
	bpf_ringbuf_submit(ev, ringbuf_flags());
	return 0;
}
