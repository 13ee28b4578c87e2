/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Network operations of session members, for fileio.bpf.c (included after
 * its helpers): connect, sends that name a destination (sendto, sendmsg,
 * sendmmsg) and listen, over AF_INET, AF_INET6 and AF_UNIX, in the x86-64
 * ABI and through ia32 emulation (int $0x80 from any program: the direct
 * socket calls and socketcall).
 *
 * Everything is read at sys_exit: on x86-64 the argument registers are the
 * caller's saved user registers (pt_regs), which the kernel leaves alone
 * until it returns. So no per-thread map stands between a member and its
 * network records, and threads parked in other syscalls cannot fill one to
 * blind them. The one enter-state is a connect's start time (net_t0), for
 * NET_F_FD_CHANGED: the socket is read by its descriptor at exit, and a
 * sibling that puts another socket on that number during the call (dup2)
 * would have the record describe that one. Its absence (an LRU eviction,
 * the sensor attached mid-call) hides nothing: the connect then counts as
 * having lasted FD_MARK_STALE_NS.
 *
 * Where the destination comes from:
 *  - a connect that succeeded or is under way (0, -EINPROGRESS, -EALREADY,
 *    -EISCONN, -EINTR, -ERESTARTSYS), and a send on a stream socket that
 *    has a peer (TCP Fast Open): the socket. skc_family, skc_daddr or skc_v6_daddr, skc_dport;
 *    for AF_UNIX the peer's path, walked from the socket file's dentry in
 *    the caller's root, or its abstract name. This is the kernel's copy,
 *    not the caller's sockaddr, which a sibling thread can rewrite, flip to
 *    another family or drop (MADV_DONTNEED) during a blocking connect. The
 *    caller's sockaddr is still read: when it names something else at
 *    exit, the record says so (NET_F_REWRITTEN).
 *  - a failed connect, and a send on a socket that keeps no destination
 *    (unconnected UDP, AF_UNIX datagrams): the caller's sockaddr as it is
 *    at exit (NET_F_FROM_CALLER). The kernel copied it at entry and kept no
 *    copy, so a racing thread can make this differ from what was used.
 *  - listen: the socket's bound address and port.
 *
 * Cost outside sessions: a lookup of the tgid in `sessions` at the enter
 * of connect, and at the exit of connect, sendmsg, sendmmsg, listen and of
 * a sendto that names an address (one naming none returns at once); the
 * i386 numbers first test the task's TS_COMPAT.
 *
 * Sends on connected sockets (no address given) are not reported: the
 * connect was. An addressed send is reported when its socket's previous
 * reported send named another destination (net_sends).
 */
#ifndef LINEAGED_FILEIO_NET_H
#define LINEAGED_FILEIO_NET_H

/* x86_64 (syscall_64.tbl); NR_connect is fileio.bpf.c's. */
#define NR_sendto 44
#define NR_sendmsg 46
#define NR_listen 50
#define NR_sendmmsg 307
/* i386 (syscall_32.tbl). 345..370 are not x86_64 numbers; 102 is getuid
 * there, so TS_COMPAT is tested before anything else. */
#define NR32_socketcall 102
#define NR32_sendmmsg 345
#define NR32_connect 362
#define NR32_listen 363
#define NR32_sendto 369
#define NR32_sendmsg 370
/* socketcall(2) call numbers (linux/net.h). */
#define SYS_CONNECT 3
#define SYS_LISTEN 4
#define SYS_SENDTO 11
#define SYS_SENDMSG 16
#define SYS_SENDMMSG 20

#define AF_UNIX 1
#define SOCK_STREAM 1
#define EINTR 4
#define EISCONN 106
#define EALREADY 114
#define EINPROGRESS 115
#define ERESTARTSYS 512 /* kernel-internal: the call is restarted */
#define MSG_FASTOPEN 0x20000000
#define SUN_PATH_MAX 108

/* tid -> the start of a member's connect in flight (NET_F_FD_CHANGED). */
struct net_start {
	__u64 t0; /* boot ns at sys_enter */
	__u64 seq; /* fd_stamp() at sys_enter; 0: none */
	__u32 nr; /* the number as made */
	__u32 _pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, __u32);
	__type(value, struct net_start);
} net_t0 SEC(".maps");

/* The sys_enter of connect (x86_64 42; ia32 362, and socketcall's
 * SYS_CONNECT): a member's start time. */
static __always_inline int net_connect_enter(const struct pt_regs *regs, long nr)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	bool compat = task_compat(task);
	struct net_start v = { .nr = nr };
	__u64 id;
	__u32 tid;

	if (compat != (nr != NR_connect))
		return 0; /* 42 is pipe in i386; 102 getuid in x86_64 */
	if (nr == NR32_socketcall && SC_IA32_ARG0(regs) != SYS_CONNECT)
		return 0;
	id = bpf_get_current_pid_tgid();
	if (!session_of(task, id >> 32))
		return 0;
	tid = (__u32)id;
	v.t0 = bpf_ktime_get_boot_ns();
	v.seq = fd_stamp();
	bpf_map_update_elem(&net_t0, &tid, &v, BPF_ANY);
	return 0;
}

/* When the connect of this thread (number nr as made) began, and its
 * stamp (fd_stamp); without its entry, FD_MARK_STALE_NS before now and
 * no stamp. The entry is removed. */
static __always_inline __u64 net_connect_start(long nr, __u64 *seq)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	struct net_start *v = bpf_map_lookup_elem(&net_t0, &tid);
	__u64 since = bpf_ktime_get_boot_ns() - FD_MARK_STALE_NS;

	*seq = 0;
	if (v) {
		if (v->nr == nr) {
			since = v->t0;
			*seq = v->seq;
		}
		bpf_map_delete_elem(&net_t0, &tid);
	}
	return since;
}

/* The sys_exit cases this file handles (fileio.bpf.c's switch). */
#define NET_EXIT_CASES                                                         \
	case NR_connect: case NR_sendto: case NR_sendmsg: case NR_sendmmsg:    \
	case NR_listen: case NR32_socketcall: case NR32_sendmmsg:              \
	case NR32_connect: case NR32_listen: case NR32_sendto:                 \
	case NR32_sendmsg

/* A call reduced to its kind and arguments, whichever ABI made it. */
struct net_call {
	__u64 a[6];
	__u16 op;
	__u16 nflags;
	__u16 kind; /* NR_connect, NR_sendto, ... (x86_64 numbers) */
};

static __always_inline struct sock *net_fd_sock(struct task_struct *task, long fd)
{
	struct file *f = fd_file(task, fd);
	struct inode *inode;
	struct socket *sock;

	if (!f)
		return NULL;
	inode = BPF_CORE_READ(f, f_inode);
	if (!inode || (BPF_CORE_READ(inode, i_mode) & S_IFMT) != S_IFSOCK)
		return NULL;
	sock = BPF_CORE_READ(f, private_data);
	return BPF_CORE_READ(sock, sk);
}

/* Normalises the call in c; false when it is not one of ours. */
static __always_inline bool net_decode(struct pt_regs *regs, long nr, bool ia32,
				       struct net_call *c)
{
	long call = nr;
	int i;

	if (!ia32) {
		c->a[0] = SC_ARG0(regs);
		c->a[1] = SC_ARG1(regs);
		c->a[2] = SC_ARG2(regs);
		c->a[3] = SC_ARG3(regs);
		c->a[4] = SC_ARG4(regs);
		c->a[5] = SC_ARG5(regs);
	} else if (nr == NR32_socketcall) {
		__u32 v[6] = {};
		__u32 n;

		/* n: the call's arguments, as many words as the kernel
		 * copies (a read past them could fault at a page end). */
		switch (SC_IA32_ARG0(regs)) {
		case SYS_CONNECT: call = NR32_connect; n = 3; break;
		case SYS_LISTEN: call = NR32_listen; n = 2; break;
		case SYS_SENDTO: call = NR32_sendto; n = 6; break;
		case SYS_SENDMSG: call = NR32_sendmsg; n = 3; break;
		case SYS_SENDMMSG: call = NR32_sendmmsg; n = 4; break;
		default: return false;
		}
		/* The arguments are in the caller's memory: what it holds at
		 * exit (the flag says so). Unreadable, no descriptor is
		 * named and the record says so. */
		if (bpf_probe_read_user(v, n * 4, (void *)(__u64)SC_IA32_ARG1(regs))) {
			c->nflags |= NET_F_UNREADABLE;
			v[0] = -1;
		}
		for (i = 0; i < 6; i++)
			c->a[i] = v[i];
		c->a[0] = (int)v[0];
		c->nflags |= NET_F_SOCKETCALL;
	} else {
		c->a[0] = SC_IA32_ARG0(regs);
		c->a[1] = SC_IA32_ARG1(regs);
		c->a[2] = SC_IA32_ARG2(regs);
		c->a[3] = SC_IA32_ARG3(regs);
		c->a[4] = SC_IA32_ARG4(regs);
		c->a[5] = SC_IA32_ARG5(regs);
	}
	if (ia32)
		c->nflags |= NET_F_IA32;
	switch (call) {
	case NR_connect: case NR32_connect:
		c->kind = NR_connect;
		c->op = NET_OP_CONNECT;
		return true;
	case NR_sendto: case NR32_sendto:
		c->kind = NR_sendto;
		c->op = NET_OP_SEND;
		return true;
	case NR_sendmsg: case NR32_sendmsg:
		c->kind = NR_sendmsg;
		c->op = NET_OP_SEND;
		return true;
	case NR_sendmmsg: case NR32_sendmmsg:
		c->kind = NR_sendmmsg;
		c->op = NET_OP_SEND;
		return true;
	case NR_listen: case NR32_listen:
		c->kind = NR_listen;
		c->op = NET_OP_LISTEN;
		return true;
	}
	return false;
}

/* The caller's sockaddr of a send: sendto's argument, or msg_name of the
 * (first) msghdr. Returns 0 when the send names no destination. */
static __always_inline __u64 net_send_addr(struct net_call *c, bool ia32,
					   __u32 *len, __u64 *flags)
{
	__u64 msg;

	if (c->kind == NR_sendto) {
		*flags = c->a[3];
		*len = c->a[5];
		return c->a[4];
	}
	/* sendmsg(fd, msg, flags), sendmmsg(fd, vec, vlen, flags): a
	 * struct mmsghdr starts with its msghdr. */
	msg = c->a[1];
	*flags = c->kind == NR_sendmsg ? c->a[2] : c->a[3];
	if (ia32) {
		__u32 h[2] = {};

		bpf_probe_read_user(h, sizeof(h), (void *)msg);
		*len = h[1];
		return h[0];
	} else {
		struct { __u64 name; __u32 namelen; } h = {};

		bpf_probe_read_user(&h, sizeof(h), (void *)msg);
		*len = h.namelen;
		return h.name;
	}
}

/* The socket's destination into ev; false when it has none. */
static __always_inline bool net_sock_dst(struct sock *sk, __u16 skfam,
					 struct connect_event *ev)
{
	__u16 port = bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport));

	if (skfam == AF_INET) {
		__u32 a = BPF_CORE_READ(sk, __sk_common.skc_daddr);

		if (!a && !port)
			return false;
		__builtin_memcpy(ev->daddr, &a, 4);
	} else {
		BPF_CORE_READ_INTO(&ev->daddr, sk, __sk_common.skc_v6_daddr);
		if (!port && !ev->daddr[0] && !ev->daddr[15])
			return false;
	}
	ev->family = skfam;
	ev->dport = port;
	return true;
}

/* sun_path bytes at src (len of them, from the kernel or the caller) into
 * ev->path: a path up to its NUL, or an abstract name (leading NUL
 * dropped, NET_F_ABSTRACT). */
static __always_inline void net_sun_path(struct connect_event *ev,
					 const char *src, int len, bool user)
{
	char first = 0;
	long n;

	if (len > SUN_PATH_MAX)
		len = SUN_PATH_MAX;
	if (len <= 0)
		return;
	if (user)
		n = bpf_probe_read_user(&first, 1, src);
	else
		n = bpf_probe_read_kernel(&first, 1, src);
	if (n)
		return;
	if (!first) {
		ev->nflags |= NET_F_ABSTRACT;
		len--;
		barrier_var(len);
		len &= 127;
		if (!len)
			return;
		if (user)
			n = bpf_probe_read_user(ev->path, len, src + 1);
		else
			n = bpf_probe_read_kernel(ev->path, len, src + 1);
		ev->path_len = n ? 0 : len;
		return;
	}
	barrier_var(len);
	len &= 127;
	if (user)
		n = bpf_probe_read_user_str(ev->path, len + 1, src);
	else
		n = bpf_probe_read_kernel_str(ev->path, len + 1, src);
	ev->path_len = n > 1 ? n - 1 : 0;
}

/* An AF_UNIX peer's name into ev: the socket file's path walked in the
 * caller's root, else the address it was bound with. */
static __always_inline bool net_unix_peer(struct sock *sk, struct task_struct *task,
					  struct connect_event *ev)
{
	struct unix_sock *peer = (struct unix_sock *)BPF_CORE_READ((struct unix_sock *)sk, peer);
	struct unix_address *addr;
	struct dentry *d;
	struct path_walk *w;
	__u32 pos, len;
	int alen;

	if (!peer)
		return false;
	ev->family = AF_UNIX;
	d = BPF_CORE_READ(peer, path.dentry);
	w = path_slot(SLOT_EXIT);
	if (d && w) {
		pos = path_walk(w, SLOT_EXIT, FIO_PATH_MAX, d,
				BPF_CORE_READ(peer, path.mnt), task);
		if (!(w->flags & (PATH_UNREACHABLE | PATH_DELETED | PATH_PSEUDO)) &&
		    pos < FIO_PATH_MAX) {
			len = FIO_PATH_MAX - pos;
			if (len > NET_PATH_MAX - 1) {
				pos = FIO_PATH_MAX - (NET_PATH_MAX - 1);
				len = NET_PATH_MAX - 1;
				ev->nflags |= NET_F_PATH_TRUNC;
			}
			barrier_var(len);
			len &= NET_PATH_MAX - 1;
			bpf_probe_read_kernel(ev->path, len, &w->buf[pos & PATH_MASK]);
			ev->path_len = len;
			return true;
		}
	}
	addr = BPF_CORE_READ(peer, addr);
	if (!addr)
		return true; /* an unbound peer (socketpair-like): no name */
	alen = BPF_CORE_READ(addr, len) - 2; /* minus sun_family */
	if (alen <= 0)
		return true;
	ev->nflags |= NET_F_PATH_AS_GIVEN;
	net_sun_path(ev, (const char *)addr +
		     bpf_core_field_offset(struct unix_address, name) + 2,
		     alen, false);
	return true;
}

/* The i-th 32-bit word of a 16-byte address (no memcmp in BPF). */
static __always_inline __u32 net_word(const __u8 *a, int i)
{
	__u32 v;

	__builtin_memcpy(&v, a + 4 * i, 4);
	return v;
}

/* The caller's sockaddr (ua, ulen) as it is now. With from_sock, ev holds
 * the socket's destination and this only checks that the caller's names
 * the same; otherwise it is the destination. */
static __always_inline void net_caller_dst(struct connect_event *ev, __u64 ua,
					   __u32 ulen, bool from_sock)
{
	union {
		__u16 family;
		struct sockaddr_in in;
		struct sockaddr_in6 in6;
	} sa = {};
	__u32 n = ulen < sizeof(sa) ? ulen : sizeof(sa);

	barrier_var(n);
	n &= 31;
	if (n < 2 || bpf_probe_read_user(&sa, n, (void *)ua)) {
		ev->nflags |= NET_F_UNREADABLE;
		if (from_sock)
			ev->nflags |= NET_F_REWRITTEN;
		return;
	}
	if (from_sock) {
		if (sa.family == AF_INET && ev->family == AF_INET6) {
			/* A UDP AF_INET6 socket takes an AF_INET sockaddr
			 * and holds it v4-mapped. */
			if (bpf_ntohs(sa.in.sin_port) != ev->dport ||
			    ev->daddr[10] != 0xff || ev->daddr[11] != 0xff ||
			    sa.in.sin_addr.s_addr != net_word(ev->daddr, 3))
				ev->nflags |= NET_F_REWRITTEN;
		} else if (sa.family != ev->family) {
			/* Any other family at exit is not what the kernel
			 * used. */
			ev->nflags |= NET_F_REWRITTEN;
		} else if (sa.family == AF_INET) {
			__u32 a = sa.in.sin_addr.s_addr;

			/* INADDR_ANY is connected as loopback. */
			if (bpf_ntohs(sa.in.sin_port) != ev->dport ||
			    (a && a != net_word(ev->daddr, 0)))
				ev->nflags |= NET_F_REWRITTEN;
		} else if (sa.family == AF_INET6) {
			__u32 *w = sa.in6.sin6_addr.in6_u.u6_addr32;

			/* The unspecified address is connected as loopback. */
			if (bpf_ntohs(sa.in6.sin6_port) != ev->dport ||
			    ((w[0] | w[1] | w[2] | w[3]) &&
			     (w[0] != net_word(ev->daddr, 0) ||
			      w[1] != net_word(ev->daddr, 1) ||
			      w[2] != net_word(ev->daddr, 2) ||
			      w[3] != net_word(ev->daddr, 3))))
				ev->nflags |= NET_F_REWRITTEN;
		}
		return;
	}
	ev->nflags |= NET_F_FROM_CALLER;
	ev->family = sa.family;
	if (sa.family == AF_INET) {
		ev->dport = bpf_ntohs(sa.in.sin_port);
		__builtin_memcpy(ev->daddr, &sa.in.sin_addr, 4);
	} else if (sa.family == AF_INET6) {
		ev->dport = bpf_ntohs(sa.in6.sin6_port);
		__builtin_memcpy(ev->daddr, &sa.in6.sin6_addr, 16);
	} else if (sa.family == AF_UNIX) {
		ev->nflags |= NET_F_PATH_AS_GIVEN;
		net_sun_path(ev, (const char *)ua + 2, (int)ulen - 2, true);
	}
}

/* The local end of the socket into ev (after connect, at listen). */
static __always_inline void net_sock_src(struct sock *sk, __u16 skfam,
					 struct connect_event *ev)
{
	/* skc_num: local port in host order, set by bind or by the autobind
	 * connect does, also when it returns EINPROGRESS. */
	ev->sport = BPF_CORE_READ(sk, __sk_common.skc_num);
	if (skfam == AF_INET) {
		__u32 saddr = BPF_CORE_READ(sk, __sk_common.skc_rcv_saddr);

		__builtin_memcpy(ev->saddr, &saddr, 4);
	} else if (skfam == AF_INET6) {
		BPF_CORE_READ_INTO(&ev->saddr, sk, __sk_common.skc_v6_rcv_saddr);
	}
}

/* The destination a socket's last reported send named. */
struct net_sent {
	__u8 daddr[16];
	__u16 dport;
	__u16 family;
	__u16 path_len;
	__u16 _pad;
	__u64 path_hash;
};

/*
 * socket -> the destination of its last reported send. A send is reported
 * when its socket had not sent to that destination just before: a UDP
 * client talking to one server is one event, not one per datagram, and a
 * send to another destination is always reported. An LRU: an evicted
 * socket's next send is reported again, never lost. Keyed by the struct
 * sock's address, which a closed socket's successor may reuse (the worst
 * case is one send not reported because a freed socket had sent to the
 * same destination).
 */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 8192);
	__type(key, __u64);
	__type(value, struct net_sent);
} net_sends SEC(".maps");

/* FNV-1a of an AF_UNIX name (bounded by NET_PATH_MAX). */
static __always_inline __u64 net_path_hash(const struct connect_event *ev)
{
	__u64 h = 0xcbf29ce484222325ULL;
	__u32 n = ev->path_len;
	int i;

	for (i = 0; i < SUN_PATH_MAX; i++) {
		if (i >= n)
			break;
		h = (h ^ (__u8)ev->path[i]) * 0x100000001b3ULL;
	}
	return h;
}

/* Whether this send's destination is new for its socket (and remember it). */
static __always_inline bool net_send_new(struct sock *sk, const struct connect_event *ev)
{
	__u64 key = (__u64)sk;
	struct net_sent v = {};
	struct net_sent *old;

	__builtin_memcpy(v.daddr, ev->daddr, sizeof(v.daddr));
	v.dport = ev->dport;
	v.family = ev->family;
	v.path_len = ev->path_len;
	if (ev->family == AF_UNIX)
		v.path_hash = net_path_hash(ev);
	old = bpf_map_lookup_elem(&net_sends, &key);
	if (old && old->family == v.family && old->dport == v.dport &&
	    old->path_len == v.path_len && old->path_hash == v.path_hash &&
	    net_word(old->daddr, 0) == net_word(v.daddr, 0) &&
	    net_word(old->daddr, 1) == net_word(v.daddr, 1) &&
	    net_word(old->daddr, 2) == net_word(v.daddr, 2) &&
	    net_word(old->daddr, 3) == net_word(v.daddr, 3))
		return false;
	bpf_map_update_elem(&net_sends, &key, &v, BPF_ANY);
	return true;
}

/* The sys_exit of every NET_EXIT_CASES number. */
static __always_inline int net_sys_exit(struct pt_regs *regs, long nr, long ret)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	struct net_call c = {};
	struct connect_event *ev;
	struct session *s;
	struct sock *sk;
	__u64 ua = 0, flags = 0, since = 0, seq = 0;
	__u32 ulen = 0, tgid;
	__u16 skfam = 0;
	bool ia32 = false, from_sock = false, keep = true;

	switch (nr) {
	case NR_sendto:
		/* Most sends name no destination: let them go before the
		 * membership lookup (an ia32 44 is not a send either). */
		if (!SC_ARG4(regs))
			return 0;
		break;
	case NR32_socketcall: case NR32_sendmmsg: case NR32_connect:
	case NR32_listen: case NR32_sendto: case NR32_sendmsg:
		/* Test the cheap thing first: 102 is getuid in x86_64. */
		if (!task_compat(task))
			return 0;
		ia32 = true;
	}
	tgid = bpf_get_current_pid_tgid() >> 32;
	s = session_of(task, tgid);
	if (!s)
		return 0;
	/* An ia32 call whose number is an x86_64 socket call's (42 is
	 * pipe there): not one of ours. */
	if (!ia32 && task_compat(task))
		return 0;
	if (!net_decode(regs, nr, ia32, &c))
		return 0;

	switch (c.kind) {
	case NR_connect:
		ua = c.a[1];
		ulen = c.a[2];
		since = net_connect_start(nr, &seq);
		break;
	case NR_sendto: case NR_sendmsg: case NR_sendmmsg:
		ua = net_send_addr(&c, ia32, &ulen, &flags);
		if (!ua)
			return 0; /* no destination named: a connected send */
		if (flags & MSG_FASTOPEN)
			c.nflags |= NET_F_FASTOPEN;
		break;
	}
	sk = net_fd_sock(task, (int)c.a[0]);
	if (sk)
		skfam = BPF_CORE_READ(sk, __sk_common.skc_family);
	if (c.op == NET_OP_LISTEN && !sk)
		return 0; /* not a socket: EBADF or ENOTSOCK */

	unpark_fork(tgid);
	if (shed(EV_CONNECT, s->root_pid, s->root_start))
		return 0;
	ev = bpf_ringbuf_reserve(&events, sizeof(*ev), 0);
	if (!ev) {
		count_lost(EV_CONNECT);
		return 0;
	}
	fill_header(&ev->hdr, EV_CONNECT, task, s);
	ev->result = ret;
	ev->family = 0;
	ev->protocol = 0;
	ev->sock_type = 0;
	ev->dport = 0;
	ev->sport = 0;
	ev->sk_family = skfam;
	ev->op = c.op;
	ev->nflags = c.nflags;
	ev->syscall = nr;
	ev->path_len = 0;
	ev->count = 0;
	ev->_pad1 = 0;
	__builtin_memset(ev->daddr, 0, sizeof(ev->daddr));
	__builtin_memset(ev->saddr, 0, sizeof(ev->saddr));
	if (c.kind == NR_sendmmsg)
		ev->count = c.a[2];
	if (sk) {
		ev->protocol = BPF_CORE_READ(sk, sk_protocol);
		ev->sock_type = BPF_CORE_READ(sk, sk_type);
	}

	if (c.op == NET_OP_LISTEN) {
		ev->family = skfam;
		ev->count = c.a[1];
		net_sock_src(sk, skfam, ev);
		if (skfam == AF_UNIX) {
			struct unix_address *addr =
				BPF_CORE_READ((struct unix_sock *)sk, addr);

			if (addr) {
				ev->nflags |= NET_F_PATH_AS_GIVEN;
				net_sun_path(ev, (const char *)addr +
					     bpf_core_field_offset(struct unix_address, name) + 2,
					     BPF_CORE_READ(addr, len) - 2, false);
			}
		}
		bpf_ringbuf_submit(ev, ringbuf_flags());
		return 0;
	}

	/* A blocking connect interrupted by a signal goes on in the
	 * background (-EINTR; at this tracepoint, before signal delivery,
	 * -ERESTARTSYS when it will be restarted). */
	if (c.op == NET_OP_CONNECT)
		from_sock = ret == 0 || ret == -EINPROGRESS ||
			    ret == -EALREADY || ret == -EISCONN ||
			    ret == -EINTR || ret == -ERESTARTSYS;
	else /* a send on a stream socket goes to its peer (Fast Open too) */
		from_sock = ev->sock_type == SOCK_STREAM;
	if (from_sock && sk) {
		if (skfam == AF_INET || skfam == AF_INET6)
			from_sock = net_sock_dst(sk, skfam, ev);
		else if (skfam == AF_UNIX)
			from_sock = net_unix_peer(sk, task, ev);
		else
			from_sock = false;
	} else {
		from_sock = false;
	}
	net_caller_dst(ev, ua, ulen, from_sock);
	if (!from_sock && ev->family != AF_INET && ev->family != AF_INET6 &&
	    ev->family != AF_UNIX) {
		/* AF_UNSPEC (a UDP disconnect), another family, or an
		 * unreadable sockaddr on a socket that holds no destination:
		 * reported only when the call did something. */
		keep = (ev->nflags & NET_F_UNREADABLE) && ret >= 0;
	}
	if (keep && c.op == NET_OP_SEND && sk)
		keep = net_send_new(sk, ev);
	if (!keep) {
		bpf_ringbuf_discard(ev, 0);
		return 0;
	}
	if (sk)
		net_sock_src(sk, skfam, ev);
	/* The socket, read by its descriptor now: another thread may have
	 * put another one on the number during the connect. */
	if (c.kind == NR_connect && sk && fd_changed((long)(int)c.a[0], since, seq))
		ev->nflags |= NET_F_FD_CHANGED;
	bpf_ringbuf_submit(ev, ringbuf_flags());
	return 0;
}

#endif /* LINEAGED_FILEIO_NET_H */
