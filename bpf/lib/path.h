/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The one path walker of every lineaged BPF object: the exec programs
 * (process.bpf.c: the executable's path), the file programs (fileio.bpf.c:
 * opened files, dirfds, the cwd) and deny-exec (enforce.h: the path a rule
 * is matched against). bpf_d_path() is not allowed in tracepoint programs,
 * hence the walk.
 *
 * The root rule: a path is relative to the process's own root
 * (task->fs->root), as d_path() and /proc/<pid>/fd show it to the process
 * itself. A chrooted process's paths start at its chroot; a process in a
 * container (pivot_root) has the container's root as its root. The walk
 * goes up d_parent to the mount's root, crosses to the parent mount through
 * mnt_mountpoint/mnt_parent, and stops at the task's root. Symlinks are
 * already resolved (the dentry is the target) and ".." cannot appear.
 *
 * What the walk cannot place under that root is flagged (enum path_flag):
 *  - PATH_OUTSIDE_ROOT: the walk reached the root of the mount namespace
 *    without meeting the task's root (a file opened before chroot, or
 *    reached through a mount the chroot does not contain). The path is
 *    then the one from the namespace's root, as d_path() gives it.
 *  - PATH_PSEUDO: a file of an internal mount, which has no path (a memfd,
 *    a pipe or anonymous inode reopened through /proc/<pid>/fd): the
 *    buffer holds the dentry name alone, with no leading "/"
 *    ("memfd:name", "" for a pipe).
 *  - PATH_UNREACHABLE: the walk stopped before any root: the depth or
 *    length bound cut it (the buffer holds the leaf end), or the file is
 *    on a detached mount (umount -l), whose place is unknown.
 *  - PATH_DELETED: the file itself was unlinked (d_path's " (deleted)";
 *    also an O_TMPFILE file). The path is its last name.
 *
 * The walk is a global (BPF-to-BPF, non-inlined) function, so the verifier
 * checks its bounded loop once per program instead of once per call site
 * and state. Kernels before 5.12 only pass scalars to global functions:
 * its one argument is a slot of the path_walks per-CPU map, which holds
 * the inputs and outputs; pointers travel as u64. Its position and count
 * live in map memory and are reloaded each round, so the verifier does not
 * track them and every iteration ends in the same state (linear time, also
 * on 5.10, which has no bpf_loop). Where the kernel has bpf_loop (5.17+)
 * the objects built with LINEAGED_BPF_LOOP run the rounds as its callback.
 */
#ifndef LINEAGED_LIB_PATH_H
#define LINEAGED_LIB_PATH_H

/* Bytes a walk may fill, power of two: a path is at most PATH_BUF - 1. */
#define PATH_BUF 4096
#define PATH_MASK (PATH_BUF - 1)
/* Dentries and mounts visited per walk. Each component costs at least 2
 * bytes, so deeper paths of 1-byte names are cut (PATH_UNREACHABLE). */
#define PATH_DEPTH 160
#define PATH_NAME_MAX 255
/* Walks that may be in flight on one CPU, one slot each: a raw tracepoint
 * program can be preempted (it only disables migration), so the file
 * programs' enter and exit each have their own (fileio.bpf.c defines 2
 * before including this). A program does not nest on a CPU. */
#ifndef PATH_SLOTS
#define PATH_SLOTS 1
#endif

enum path_flag {
	PATH_DELETED = 1 << 0,
	PATH_PSEUDO = 1 << 1,
	PATH_UNREACHABLE = 1 << 2,
	PATH_OUTSIDE_ROOT = 1 << 3,
};

struct path_walk {
	/* In: where to start, and the task's root. */
	__u64 dentry;
	__u64 vfsmnt;
	__u64 root_dentry;
	__u64 root_mnt;
	__u32 end;   /* the path ends just before buf[end], end <= PATH_BUF */
	/* Out. */
	__u32 pos;   /* the path is buf[pos, end); pos == end for the root itself */
	__u32 n;     /* components written ('/' + name each) */
	__u32 flags; /* enum path_flag */
	/* slash[j]: where the '/' before component j is, counted from the
	 * leaf (j = 0), for j < n. */
	__u32 slash[PATH_DEPTH];
	/* [0, PATH_BUF): written backwards. Twice the size so a masked
	 * offset plus a bounded length is always in bounds; callers may use
	 * [PATH_BUF, ...) for a name they append (fileio: the caller's
	 * relative name, read right after its directory); 32 bytes of slack
	 * let a caller clear a block past its end. */
	char buf[2 * PATH_BUF + 32];
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, PATH_SLOTS);
	__type(key, __u32);
	__type(value, struct path_walk);
} path_walks SEC(".maps");

/* Read a field through memory: the verifier then sees an unknown bounded
 * by the checks at use, not the exact loop-carried value. */
#define PATH_READ(x) (*(volatile typeof(x) *)&(x))

static __always_inline struct path_walk *path_slot(__u32 slot)
{
	return bpf_map_lookup_elem(&path_walks, &slot);
}

/* A mount namespace pointer of a mount that is not in one: NULL once
 * unmounted (umount -l), MNT_NS_INTERNAL (an ERR_PTR) for kernel-internal
 * mounts. */
static __always_inline bool path_ns_none(const void *ns)
{
	return !ns || (unsigned long)ns >= (unsigned long)-4095;
}

/* One step of the walk from *d on *vm (*mnt its struct mount): crosses
 * to the parent mount at a mount's root, or prepends d's name and goes to
 * its parent. Returns 1 when the walk is over (the results are in w), 0
 * to go on. Inlined into both loops below, where the pointers to the
 * loop's state vanish. */
static __always_inline int path_step(struct path_walk *w, struct dentry **dp,
				     struct vfsmount **vmp, struct mount **mntp,
				     struct dentry *root, struct vfsmount *root_mnt)
{
	struct dentry *d = *dp, *parent, *mroot;
	struct vfsmount *vm = *vmp;
	struct mount *mnt = *mntp;
	struct qstr name;
	__u32 len, pos, n;

	if (d == root && vm == root_mnt)
		return 1;
	mroot = BPF_CORE_READ(vm, mnt_root);
	if (d == mroot) {
		struct mount *mp = BPF_CORE_READ(mnt, mnt_parent);

		if (mp != mnt) {
			*dp = BPF_CORE_READ(mnt, mnt_mountpoint);
			*mntp = mp;
			*vmp = &mp->mnt;
			return 0;
		}
		/* A mount with no parent: the namespace's root, or a mount
		 * in none. */
		if (path_ns_none(BPF_CORE_READ(mnt, mnt_ns)))
			w->flags |= PATH_UNREACHABLE;
		else if (root)
			w->flags |= PATH_OUTSIDE_ROOT;
		return 1;
	}
	parent = BPF_CORE_READ(d, d_parent);
	name = BPF_CORE_READ(d, d_name);
	len = name.len;
	pos = PATH_READ(w->pos);
	if (d == parent) {
		/* A pseudo dentry (alloc_file_pseudo) of an internal mount:
		 * only its name, no '/'. */
		w->flags |= PATH_PSEUDO;
		if (len > PATH_NAME_MAX || pos > PATH_BUF || len > pos)
			return 1;
		pos -= len;
		barrier_var(len); /* bound the register the helper gets */
		len &= PATH_NAME_MAX;
		bpf_probe_read_kernel(&w->buf[pos & PATH_MASK], len, name.name);
		w->pos = pos;
		return 1;
	}
	/* Keep buf[0] free: a path is at most PATH_BUF - 1 bytes. */
	if (len > PATH_NAME_MAX || pos > PATH_BUF || len + 2 > pos) {
		w->flags |= PATH_UNREACHABLE;
		return 1;
	}
	pos -= len;
	barrier_var(len);
	len &= PATH_NAME_MAX;
	bpf_probe_read_kernel(&w->buf[pos & PATH_MASK], len, name.name);
	pos--;
	w->buf[pos & PATH_MASK] = '/';
	w->pos = pos;
	n = PATH_READ(w->n);
	if (n < PATH_DEPTH)
		w->slash[n] = pos;
	w->n = n + 1;
	*dp = parent;
	return 0;
}

#ifdef LINEAGED_BPF_LOOP
/* The walk's state between bpf_loop rounds, on the walker's stack. */
struct path_loop_ctx {
	struct path_walk *w;
	struct dentry *d;
	struct vfsmount *vm;
	struct mount *mnt;
	struct dentry *root;
	struct vfsmount *root_mnt;
	int done;
};

static long path_loop_step(__u32 i, void *arg)
{
	struct path_loop_ctx *c = arg;

	c->done = path_step(c->w, &c->d, &c->vm, &c->mnt, c->root, c->root_mnt);
	return c->done;
}
#endif

/* Walk w->dentry/w->vfsmnt in slot up to w->root_dentry/w->root_mnt (see
 * the top of this file). Always returns 0; the results are in the slot.
 *
 * Built twice (sensor/kernel/gen.go): with LINEAGED_BPF_LOOP the rounds run
 * under bpf_loop (5.17+), whose callback the verifier checks once instead
 * of once per round; without it, a bounded loop the verifier follows
 * round by round (every kernel, 5.10 included). */
__noinline int path_walk_slot(__u32 slot)
{
	struct path_walk *w = bpf_map_lookup_elem(&path_walks, &slot);
	struct dentry *d;
	struct vfsmount *vm;
	struct mount *mnt;

	if (!w)
		return 0;
	d = (struct dentry *)w->dentry;
	vm = (struct vfsmount *)w->vfsmnt;
	mnt = container_of(vm, struct mount, mnt);
	w->pos = w->end;
	w->n = 0;
	w->flags = 0;
	/* d_unlinked(): unhashed and not a root (a pseudo dentry is its own
	 * parent and never hashed). */
	if (!BPF_CORE_READ(d, d_hash.pprev) && BPF_CORE_READ(d, d_parent) != d)
		w->flags = PATH_DELETED;

#ifdef LINEAGED_BPF_LOOP
	struct path_loop_ctx c = {
		.w = w,
		.d = d,
		.vm = vm,
		.mnt = mnt,
		.root = (struct dentry *)w->root_dentry,
		.root_mnt = (struct vfsmount *)w->root_mnt,
	};

	bpf_loop(PATH_DEPTH, path_loop_step, &c, 0);
	if (c.done)
		return 0;
#else
	struct dentry *root = (struct dentry *)w->root_dentry;
	struct vfsmount *root_mnt = (struct vfsmount *)w->root_mnt;

	for (int i = 0; i < PATH_DEPTH; i++) {
		if (path_step(w, &d, &vm, &mnt, root, root_mnt))
			return 0;
	}
#endif
	w->flags |= PATH_UNREACHABLE;
	return 0;
}

/*
 * Walk path (dentry d on vfsmount m) relative to task's root into slot,
 * ending just before buf[end]. Returns the start, <= end (end itself for
 * the root: the caller adds the "/").
 */
static __always_inline __u32 path_walk(struct path_walk *w, __u32 slot, __u32 end,
				       struct dentry *d, struct vfsmount *m,
				       struct task_struct *task)
{
	__u32 pos;

	w->dentry = (__u64)d;
	w->vfsmnt = (__u64)m;
	w->root_dentry = (__u64)BPF_CORE_READ(task, fs, root.dentry);
	w->root_mnt = (__u64)BPF_CORE_READ(task, fs, root.mnt);
	w->end = end;
	path_walk_slot(slot);
	pos = w->pos;
	if (pos > end)
		pos = end;
	return pos;
}

/* The path of an opened file: path_walk from its struct path. */
static __always_inline __u32 path_walk_file(struct path_walk *w, __u32 slot, __u32 end,
					    struct file *f, struct task_struct *task)
{
	return path_walk(w, slot, end, BPF_CORE_READ(f, f_path.dentry),
			 BPF_CORE_READ(f, f_path.mnt), task);
}

#endif /* LINEAGED_LIB_PATH_H */
