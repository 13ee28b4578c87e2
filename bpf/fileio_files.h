/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The file parts of fileio.bpf.c that an agent could otherwise evade
 * (included after its path helpers): unlink (and rmdir), rename and chmod
 * with names read twice and /proc links resolved; the identity (dev,
 * inode, mount id) of opened files; open_by_handle_at reported as the
 * file it opened. The other file-changing calls: fileio_modify.h.
 *
 * Names read twice. The name is in the caller's memory, which another
 * thread of the caller can rewrite, and the kernel copies it (getname)
 * only after sys_enter. The record is built at enter (the object may be
 * gone at exit, and a rename can move the directory a relative name is
 * resolved against), with a keyed hash of each name as read; at exit each
 * name is read again and hashed:
 *  - a different hash sets FILE_X_NAME_CHANGED: the path reported may not
 *    be the one the kernel used. Two reads catch a racing writer only when
 *    the name differs at the two reads; a writer that flips it back and
 *    forth is caught with high probability over repeated calls, not on
 *    every one;
 *  - a name that could not be read at enter (a page not resident:
 *    bpf_probe_read_user cannot fault) is read at exit, after the kernel's
 *    getname faulted the page in, and the record is rebuilt from that
 *    read, with FILE_X_NAME_UNREADABLE. Empty when it failed again.
 * The hash key is random per load (name_hash_key), so a name that collides
 * with another cannot be prepared in advance.
 *
 * A full fio_pending (members' threads parked inside these calls) does not
 * drop the record: it is sent at enter with FILE_X_AT_ENTRY.
 *
 * /proc links. A name through /proc/self/fd/N/..., /proc/thread-self/...,
 * /proc/<own pid or tid>/{fd/N,cwd,root}/... names nothing a reader can
 * use. After the name is joined to its dirfd or the cwd (so a dirfd on
 * /proc/self/fd works too), such a prefix is replaced by the walked path
 * of what it names (the fd's file, the task's cwd or root) through the one
 * walker; the literal prefix travels after the paths (FILE_X_PROC,
 * raw_len, split). A bare link (no tail) is resolved for chmod only, which
 * follows it; unlink and rename act on the link itself. A link of another
 * process, or to a file with no path, stays literal with FILE_X_AS_GIVEN.
 */
#ifndef LINEAGED_FILEIO_FILES_H
#define LINEAGED_FILEIO_FILES_H

/* The identity of an opened file (struct file_event.ino, dev, mnt_id). */
static __always_inline void file_ident(struct file_event *ev, struct file *f)
{
	struct vfsmount *vm;

	if (!f) {
		ev->ino = 0;
		ev->dev = 0;
		ev->mnt_id = 0;
		return;
	}
	ev->ino = BPF_CORE_READ(f, f_inode, i_ino);
	ev->dev = BPF_CORE_READ(f, f_inode, i_sb, s_dev);
	vm = BPF_CORE_READ(f, f_path.mnt);
	ev->mnt_id = BPF_CORE_READ(container_of(vm, struct mount, mnt), mnt_id);
}

/* open_by_handle_at(mount_fd, handle, flags): the record of exit_open
 * for it. A failed call has no file and no name: an empty path. Returns
 * false when the record was sent here. */
static __always_inline bool by_handle_open(struct file_event *ev, struct fio_args *a,
					   long ret, struct task_struct *task)
{
	ev->flags = a->arg[2];
	ev->mode = 0;
	ev->xflags |= FILE_X_BY_HANDLE;
	if (ret >= 0)
		return true;
	ev->path_len = 0;
	ev->fflags |= FILE_F_UNRESOLVED;
	emit_file(ev);
	return false;
}

/* Set by userspace before load: the key of the name hash. */
const volatile __u64 name_hash_key = 0;

#include "fileio_pend.h"

#include "fileio_modify.h"


/* The enter program's record under construction. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct fio_pend);
} fio_pscratch SEC(".maps");

/* In/out of fio_name_hash, one per walker slot. */
struct fio_hash {
	__u32 n; /* in: bytes of the name at path_walk.buf[PATH_BUF] */
	__u32 _pad0;
	__u64 h; /* out: its keyed hash, never 0 */
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, PATH_SLOTS);
	__type(key, __u32);
	__type(value, struct fio_hash);
} fio_hashes SEC(".maps");

/* Hash the name user_path read into slot's buf[PATH_BUF, PATH_BUF + n).
 * Global, like the walker: its loop is verified once. */
__noinline int fio_name_hash(__u32 slot)
{
	struct path_walk *w = bpf_map_lookup_elem(&path_walks, &slot);
	struct fio_hash *fh = bpf_map_lookup_elem(&fio_hashes, &slot);
	__u64 h;
	__u32 n;

	if (!w || !fh)
		return 0;
	n = fh->n;
	if (n > FIO_PATH_MAX - 1)
		return 0;
	/* Zero the 32 bytes after the name (buf has that much slack past
	 * 2 * PATH_BUF), so whole 32-byte blocks can be hashed. */
	__builtin_memset(&w->buf[PATH_BUF + (n & PATH_MASK)], 0, 32);
	h = name_hash_key ^ (0x9E3779B97F4A7C15ULL * (n + 1));
	for (int i = 0; i < PATH_BUF / 32; i++) {
		__u32 off = i * 32;
		__u64 *v = (__u64 *)&w->buf[PATH_BUF + off];

		if (off >= n)
			break;
		h = (h ^ v[0]) * 0xff51afd7ed558ccdULL;
		h = (h ^ v[1] ^ (h >> 29)) * 0xc4ceb9fe1a85ec53ULL;
		h = (h ^ v[2] ^ (h >> 31)) * 0xff51afd7ed558ccdULL;
		h = (h ^ v[3] ^ (h >> 33)) * 0xc4ceb9fe1a85ec53ULL;
		h ^= h >> 32;
	}
	fh->h = h | 1;
	return 0;
}

static __always_inline __u64 name_hash(__u32 slot, __u32 n)
{
	struct fio_hash *fh = bpf_map_lookup_elem(&fio_hashes, &slot);

	if (!fh || !n)
		return 0;
	fh->n = n;
	fio_name_hash(slot);
	return fh->h;
}

/* The components of a path's first FIO_RAW_MAX bytes, split at '/' by
 * fio_parse_proc: up to 16 bytes of each packed in w[0..1], its value when
 * all decimal digits, and where it ends. */
struct proc_comp {
	__u64 w[2];
	__u64 num;
	__u32 len;
	__u32 isnum;
	__u32 end;
	__u32 _pad0;
};

#define PROC_COMPS 8

struct fio_proc {
	char s[FIO_RAW_MAX];
	__u32 len; /* in: bytes of the path */
	/* loop state, in map memory so the verifier does not track it */
	__u32 ci, clen, isnum;
	__u64 num, w0, w1;
	struct proc_comp comp[PROC_COMPS];
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, PATH_SLOTS);
	__type(key, __u32);
	__type(value, struct fio_proc);
} fio_procs SEC(".maps");

/* Split slot's fio_proc.s into components. Global: verified once; its loop
 * state lives in the map, so every round ends in the same state. */
__noinline int fio_parse_proc(__u32 slot)
{
	struct fio_proc *pp = bpf_map_lookup_elem(&fio_procs, &slot);

	if (!pp)
		return 0;
	pp->ci = 0;
	pp->clen = 0;
	pp->isnum = 1;
	pp->num = 0;
	pp->w0 = 0;
	pp->w1 = 0;
	for (__u32 j = 0; j <= FIO_RAW_MAX; j++) {
		__u32 len = PATH_READ(pp->len), clen = PATH_READ(pp->clen);
		__u8 c = 0;

		if (j < len && j < FIO_RAW_MAX)
			c = pp->s[j & (FIO_RAW_MAX - 1)];
		if (c == '/' || c == 0) {
			__u32 ci = PATH_READ(pp->ci);
			struct proc_comp *pc = &pp->comp[ci & (PROC_COMPS - 1)];

			pc->w[0] = pp->w0;
			pc->w[1] = pp->w1;
			pc->num = pp->num;
			pc->len = clen;
			pc->isnum = clen > 0 && pp->isnum;
			pc->end = j;
			pp->ci = ci + 1;
			pp->clen = 0;
			pp->isnum = 1;
			pp->num = 0;
			pp->w0 = 0;
			pp->w1 = 0;
			if (c == 0)
				return 0;
			continue;
		}
		if (c >= '0' && c <= '9' && !(clen == 1 && pp->num == 0))
			pp->num = pp->num * 10 + (c - '0');
		else
			pp->isnum = 0;
		if (clen < 8)
			pp->w0 |= (__u64)c << ((clen & 7) * 8);
		else if (clen < 16)
			pp->w1 |= (__u64)c << ((clen & 7) * 8);
		pp->clen = clen + 1;
	}
	return 0;
}

/* s packed as fio_parse_proc packs a component's first 8 bytes. */
#define PK(a, b, c, d, e, f, g, h) \
	((__u64)(a) | (__u64)(b) << 8 | (__u64)(c) << 16 | (__u64)(d) << 24 | \
	 (__u64)(e) << 32 | (__u64)(f) << 40 | (__u64)(g) << 48 | (__u64)(h) << 56)

static __always_inline bool comp_is(struct proc_comp *c, __u32 len, __u64 w0, __u64 w1)
{
	return c->len == len && c->w[0] == w0 && c->w[1] == w1;
}

enum proc_link { LINK_NONE, LINK_FD, LINK_CWD, LINK_ROOT };

/*
 * Replace a /proc link prefix of the path at ev->data[at, at + len) (see
 * the top of this file). i: 0 for path, 1 for new_path. Returns the path's
 * new length.
 */
static __always_inline __u32 resolve_proc(struct fio_pend *p, __u32 i, __u32 at,
					  __u32 len, struct path_walk *w, __u32 slot,
					  struct task_struct *task, bool follow,
					  __u8 *trunc)
{
	struct fio_proc *pp = bpf_map_lookup_elem(&fio_procs, &slot);
	struct file_event *ev = &p->ev;
	struct task_struct *t = task;
	struct proc_comp *c;
	struct dentry *d;
	struct vfsmount *m;
	__u32 k, tl, dl, pos, n, ncomp;
	bool other = false;
	int link;

	if (!pp || len < 11 || ev->data[at & DATA_MASK] != '/')
		return len;
	bpf_probe_read_kernel(pp->s, FIO_RAW_MAX, &ev->data[at & DATA_MASK]);
	pp->len = len;
	fio_parse_proc(slot);
	ncomp = pp->ci;
	/* comp[0] is the empty one before the leading '/'. */
	if (ncomp < 4 || !comp_is(&pp->comp[1], 4, PK('p', 'r', 'o', 'c', 0, 0, 0, 0), 0))
		return len;
	c = &pp->comp[2];
	if (comp_is(c, 4, PK('s', 'e', 'l', 'f', 0, 0, 0, 0), 0)) {
		t = BPF_CORE_READ(task, group_leader);
	} else if (comp_is(c, 11, PK('t', 'h', 'r', 'e', 'a', 'd', '-', 's'),
			   PK('e', 'l', 'f', 0, 0, 0, 0, 0))) {
		/* the current thread */
	} else if (c->isnum) {
		if (c->num == BPF_CORE_READ(task, tgid))
			t = BPF_CORE_READ(task, group_leader);
		else if (c->num != BPF_CORE_READ(task, pid))
			other = true;
	} else {
		return len;
	}
	c = &pp->comp[3];
	if (comp_is(c, 2, PK('f', 'd', 0, 0, 0, 0, 0, 0), 0)) {
		c = &pp->comp[4];
		if (ncomp < 5 || !c->isnum)
			return len;
		link = LINK_FD;
	} else if (comp_is(c, 3, PK('c', 'w', 'd', 0, 0, 0, 0, 0), 0)) {
		link = LINK_CWD;
	} else if (comp_is(c, 4, PK('r', 'o', 'o', 't', 0, 0, 0, 0), 0)) {
		link = LINK_ROOT;
	} else {
		return len;
	}
	/* The prefix ends where its last component does: at a '/' or at the
	 * end of the path (the parse stops at FIO_RAW_MAX: longer is not
	 * one). */
	k = c->end;
	if (k >= FIO_RAW_MAX || k > len)
		return len;
	tl = len - k;
	if (tl == 0 && !follow)
		return len; /* the link itself */
	if (other)
		goto as_given;
	if (link == LINK_FD) {
		struct file *f = fd_file(t, c->num);

		if (!f)
			goto as_given;
		d = BPF_CORE_READ(f, f_path.dentry);
		m = BPF_CORE_READ(f, f_path.mnt);
	} else if (link == LINK_CWD) {
		d = BPF_CORE_READ(t, fs, pwd.dentry);
		m = BPF_CORE_READ(t, fs, pwd.mnt);
	} else {
		d = BPF_CORE_READ(t, fs, root.dentry);
		m = BPF_CORE_READ(t, fs, root.mnt);
	}
	pos = path_walk(w, slot, FIO_PATH_MAX, d, m, task);
	if (w->flags & (PATH_PSEUDO | PATH_UNREACHABLE))
		goto as_given;
	/* The literal prefix, then the tail after the walked directory. */
	bpf_probe_read_kernel(p->nm.raw[i & 1], FIO_RAW_MAX, pp->s);
	tl &= PATH_MASK;
	bpf_probe_read_kernel(&w->buf[FIO_PATH_MAX], tl, &ev->data[(at + k) & DATA_MASK]);
	dl = FIO_PATH_MAX - pos;
	if (dl == 0 && tl == 0) {
		pos = FIO_PATH_MAX - 1;
		w->buf[pos] = '/';
		dl = 1;
	}
	n = put_path(ev, at, w, pos, dl + tl, trunc);
	if (i == 0) {
		ev->split = dl;
		ev->raw_len = k;
		ev->xflags |= FILE_X_PROC;
	} else {
		ev->new_split = dl;
		ev->new_raw_len = k;
		ev->xflags |= FILE_X_NEW_PROC;
	}
	return n;
as_given:
	ev->xflags |= i == 0 ? FILE_X_AS_GIVEN : FILE_X_NEW_AS_GIVEN;
	return len;
}

/* The record under construction in slot: the enter program's scratch, or
 * the exit program's pending entry (rebuilt from names read at exit). */
static __always_inline struct fio_pend *slot_record(__u32 slot)
{
	__u32 zero = 0, tid = (__u32)bpf_get_current_pid_tgid();

	if (slot == SLOT_ENTER)
		return bpf_map_lookup_elem(&fio_pscratch, &zero);
	return bpf_map_lookup_elem(&fio_pending, &tid);
}

/* Build name i (0: path, 1: new_path) of slot's record: read, hash, join
 * to the dirfd or cwd, resolve a /proc link. Global, like the walker, so
 * the verifier checks it once per program. Always returns 0. */
__noinline int fio_build_name(__u32 slot, __u32 i)
{
	struct fio_pend *p = slot_record(slot);
	struct path_walk *w = path_slot(slot);
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	struct file_event *ev;
	__u32 at, pos, len, n = 0;
	__u8 trunc = 0;
	bool follow;

	if (!p || !w || i > 1)
		return 0;
	barrier_var(i);
	i &= 1;
	ev = &p->ev;
	/* chmod follows a trailing /proc/self/fd/N to the file; fchmodat2
	 * with AT_SYMLINK_NOFOLLOW does not. */
	follow = i == 0 && (ev->hdr.kind == EV_CHMOD || filemod_follows(ev)) &&
		 !(ev->flags & 0x100);
	at = i == 0 ? 0 : ev->path_len & PATH_MASK;
	if (i == 0 && p->nm.byfd)
		return filemod_fd_name(p, w, slot, task);
	/* A literal (a symlink's content, an xattr name): not joined to a
	 * directory, no /proc link resolved. */
	len = user_path(w, slot, i && p->nm.lit1 ? FIO_DFD_LITERAL : p->nm.dfd[i & 1],
			(const char *)p->nm.uname[i & 1], task, &pos, &trunc, &n);
	p->nm.hash[i & 1] = name_hash(slot, n);
	len = put_path(ev, at, w, pos, len, &trunc);
	if (!(i && p->nm.lit1))
		len = resolve_proc(p, i, at, len, w, slot, task, follow, &trunc);
	if (i == 0) {
		ev->path_len = len;
		if (trunc)
			ev->fflags |= FILE_F_TRUNCATED;
	} else {
		ev->new_path_len = len;
		ev->fflags |= FILE_F_NEW_UNRESOLVED;
		if (trunc)
			ev->fflags |= FILE_F_NEW_TRUNCATED;
	}
	return 0;
}

static __always_inline void build_names(struct fio_pend *p, __u32 slot)
{
	struct file_event *ev = &p->ev;

	ev->fflags = FILE_F_UNRESOLVED;
	ev->xflags &= FILE_X_NAME_UNREADABLE;
	ev->path_len = 0;
	ev->new_path_len = 0;
	ev->split = 0;
	ev->new_split = 0;
	ev->raw_len = 0;
	ev->new_raw_len = 0;
	fio_build_name(slot, 0);
	if (p->nm.uname[1])
		fio_build_name(slot, 1);
}

/* The record with its literal /proc prefixes after the paths. */
static __always_inline int emit_path_op(struct fio_pend *p)
{
	struct file_event *ev = &p->ev;
	__u32 at = (ev->path_len & PATH_MASK) + (ev->new_path_len & PATH_MASK);
	__u32 rl = ev->raw_len & (FIO_RAW_MAX - 1);
	__u32 nrl = ev->new_raw_len & (FIO_RAW_MAX - 1);
	__u32 size;

	at &= DATA_MASK;
	if (rl)
		bpf_probe_read_kernel(&ev->data[at], FIO_RAW_MAX, p->nm.raw[0]);
	at += rl;
	if (nrl)
		bpf_probe_read_kernel(&ev->data[at], FIO_RAW_MAX, p->nm.raw[1]);
	size = FILE_EVENT_FIXED + at + nrl;
	if (size > sizeof(*ev))
		return 0;
	unpark_fork(bpf_get_current_pid_tgid() >> 32);
	if (shed(ev->hdr.kind, ev->hdr.session_pid, ev->hdr.session_start))
		return 0;
	if (bpf_ringbuf_output(&events, ev, size, ringbuf_flags()))
		count_lost(ev->hdr.kind);
	return 0;
}

/* unlink, rename, chmod: the record is built at enter, completed at exit. */
/* fileio_fds.h */
static __always_inline __u64 fd_stamp(void);

static __always_inline int enter_path_op(long nr, struct sc_args *regs,
					 const struct session *s,
					 struct task_struct *task)
{
	__u32 zero = 0, tid = (__u32)bpf_get_current_pid_tgid();
	struct fio_pend *p = bpf_map_lookup_elem(&fio_pscratch, &zero);
	struct file_event *ev;
	__u8 kind;

	if (!p)
		return 0;
	ev = &p->ev;
	ev->flags = 0;
	ev->mode = 0;
	p->nm.dfd[0] = AT_FDCWD;
	p->nm.dfd[1] = AT_FDCWD;
	p->nm.uname[1] = 0;
	p->nm.byfd = 0;
	p->nm.lit1 = 0;
	p->nm.hooked = 0;
	p->nm.hash[0] = 0;
	p->nm.hash[1] = 0;
	p->nm.seq = fd_stamp(); /* before the fd's file is read */
	ev->fmode = 0;
	switch (nr) {
	case NR_unlink:
		kind = EV_UNLINK;
		p->nm.uname[0] = regs->di;
		break;
	case NR_rmdir: /* unlinkat(AT_FDCWD, name, AT_REMOVEDIR) */
		kind = EV_UNLINK;
		p->nm.uname[0] = regs->di;
		ev->flags = 0x200;
		break;
	case NR_unlinkat:
		kind = EV_UNLINK;
		p->nm.dfd[0] = (int)regs->di;
		p->nm.uname[0] = regs->si;
		ev->flags = (__u32)regs->dx;
		break;
	case NR_rename:
		kind = EV_RENAME;
		p->nm.uname[0] = regs->di;
		p->nm.uname[1] = regs->si;
		break;
	case NR_renameat:
	case NR_renameat2:
		kind = EV_RENAME;
		p->nm.dfd[0] = (int)regs->di;
		p->nm.uname[0] = regs->si;
		p->nm.dfd[1] = (int)regs->dx;
		p->nm.uname[1] = regs->r10;
		if (nr == NR_renameat2)
			ev->flags = (__u32)regs->r8;
		break;
	case NR_chmod:
		kind = EV_CHMOD;
		p->nm.uname[0] = regs->di;
		ev->mode = (__u32)regs->si;
		break;
	case NR_fchmodat:
	case NR_fchmodat2:
		kind = EV_CHMOD;
		p->nm.dfd[0] = (int)regs->di;
		p->nm.uname[0] = regs->si;
		ev->mode = (__u32)regs->dx;
		if (nr == NR_fchmodat2)
			ev->flags = (__u32)regs->r10;
		break;
	default:
		kind = EV_FILEMOD;
		filemod_args(nr, regs, &p->nm, ev);
		break;
	}
	fill_header(&ev->hdr, kind, task, s);
	ev->result = 0;
	ev->syscall = nr;
	/* An ia32 call (nr is already its x86_64 twin, fileio_compat.h). */
	if (task_compat(task))
		ev->syscall |= FIO_SYSCALL_IA32;
	ev->xflags = 0;
	ev->_pad0 = 0;
	file_ident(ev, NULL); /* a name: no file */
	build_names(p, SLOT_ENTER);
	if (bpf_map_update_elem(&fio_pending, &tid, p, BPF_ANY)) {
		/* Full: threads parked in these calls (a FUSE mount the
		 * member serves, a name on a userfaultfd page) must not
		 * blind the sensor to the rest. Send it now, saying so. */
		ev->xflags |= FILE_X_AT_ENTRY;
		emit_path_op(p);
	}
	return 0;
}

/* Read the names again at exit (see the top of this file). */
static __always_inline void recheck_names(struct fio_pend *p, struct path_walk *w,
					  struct task_struct *task)
{
	if ((!p->nm.byfd && !p->nm.hash[0]) || (p->nm.uname[1] && !p->nm.hash[1])) {
		p->ev.xflags |= FILE_X_NAME_UNREADABLE;
		build_names(p, SLOT_EXIT);
		return;
	}
	for (__u32 i = 0; i < 2; i++) {
		long n;

		if (!p->nm.uname[i])
			continue;
		n = bpf_probe_read_user_str(&w->buf[FIO_PATH_MAX], FIO_PATH_MAX - 1,
					    (const char *)p->nm.uname[i]);
		if (n >= FIO_PATH_MAX - 1)
			n = FIO_PATH_MAX - 1;
		if (name_hash(SLOT_EXIT, n > 0 ? n : 0) != p->nm.hash[i])
			p->ev.xflags |= FILE_X_NAME_CHANGED;
	}
}

/* fileio_fds.h */
static __always_inline bool fd_changed(long fd, __u64 since, __u64 seq);

static __always_inline int exit_path_op(long nr, long ret)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	struct fio_pend *p = bpf_map_lookup_elem(&fio_pending, &tid);
	struct path_walk *w;

	if (!p)
		return 0;
	if ((p->ev.syscall & ~FIO_SYSCALL_IA32) == nr) {
		/* A call on an fd: its file was read at entry, and the kernel
		 * looks the fd up later (after copying the call's other
		 * arguments, which a member can make wait): another thread
		 * may have put another file on it meanwhile. */
		if (p->nm.byfd && fd_changed(p->nm.dfd[0], p->ev.hdr.ktime, p->nm.seq))
			p->ev.fflags |= FILE_F_FD_CHANGED;
		w = path_slot(SLOT_EXIT);
		if (w)
			recheck_names(p, w, (struct task_struct *)bpf_get_current_task());
		p->ev.result = ret;
		p->ev.hdr.ktime = bpf_ktime_get_boot_ns();
		p->ev.hdr.cpu = bpf_get_smp_processor_id();
		emit_path_op(p);
	}
	bpf_map_delete_elem(&fio_pending, &tid);
	return 0;
}

#endif /* LINEAGED_FILEIO_FILES_H */
