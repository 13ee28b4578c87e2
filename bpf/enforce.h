/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Deny-exec matching, shared by the two enforcement objects:
 * enforce_lsm.bpf.c (lsm/bprm_check_security: the exec fails with EPERM)
 * and enforce_tp.bpf.c (tp_btf/sched_process_exec + SIGKILL, for kernels
 * that refuse LSM programs or run without `bpf` in lsm=). Only one of them
 * is loaded; both cost non-members a single sessions-map lookup.
 *
 * Matching, designed for the 5.10 verifier (bounded loops, fixed-size
 * keys, no string loops):
 *
 *  1. The executable's path is walked from bprm->file by the one path
 *     walker (bpf/lib/path.h), relative to the exec'ing process's own root,
 *     as its exec record and its file records name it. Symlinks are already
 *     resolved (the dentry is the target), so a link cannot dodge a rule.
 *     The walk writes the path backwards and remembers where it wrote each
 *     '/'.
 *  2. Exact rules: the whole path, zero-padded to DENY_PATH_MAX bytes, is
 *     looked up in the deny_exec hash map.
 *  3. Prefix rules ("/opt/tools/", stored with the trailing '/'): the
 *     path's leading part up to and including each remembered '/', from
 *     the leaf's directory up to the root, is looked up the same way. A
 *     full path never ends in '/', so one map holds both kinds and an
 *     exact rule can never match as a prefix. Each step is one hash lookup
 *     of a 256-byte key: O(depth) lookups, no per-rule cost.
 *
 * The root rule means a rule names the path as the member sees it: inside
 * a chroot, "/usr/bin/curl" is the chroot's curl. A file the walk places
 * outside the member's root (PATH_OUTSIDE_ROOT: opened before a chroot and
 * exec'd through its fd) is matched by its path from the namespace's
 * root, so fexecve cannot carry a denied file into a chroot unmatched.
 * A path rule alone does not follow a file to another path, so:
 *
 *  4. Identity rules: the executed file's (s_dev, i_ino) is looked up in
 *     the deny_inodes hash map first, one lookup. Userspace fills it with
 *     the identity of every exact path rule's file (a hard link or a bind
 *     mount of it is the same inode under another name) and, at run time,
 *     with the identity of every copy whose SHA-256 a rule denies, once
 *     the copy has been hashed (lineage/policy deny.go): a copy's first
 *     exec runs until userspace kills it, every later exec is refused
 *     here. An identity match is reported with the path the walk found,
 *     even where a path rule would fail open (no path, unreachable).
 *
 * Bounds: DENY_WALK components. Any path of at most DENY_PATH_MAX - 1
 * bytes has fewer components than that (each costs at least 2 bytes), so
 * every path a rule can name is walked completely. A longer path, a path
 * whose walk does not reach a root (PATH_UNREACHABLE) match nothing (fail
 * open: killing every exec of very deep paths would break members for a
 * rule they cannot match anyway). A file with no path (PATH_PSEUDO: a
 * memfd) matches only the pseudo key, which the deny_exec entry "memfd"
 * puts in the map: every such exec by a member is then refused. A prefix longer than DENY_PATH_MAX - 1 bytes cannot be a key
 * and is skipped.
 */
#ifndef LINEAGED_ENFORCE_H
#define LINEAGED_ENFORCE_H

#include "lineaged.h"
#include "maps.h"
#include "lib/header.h"
#include "lib/path.h"
#include "lib/wakeup.h"
#include "lib/forks.h"

#define DENY_WALK 128 /* < PATH_DEPTH */
/* The key of the rule for images with no path (a memfd): a first byte no
 * path has (sensor.DenyKeyPseudo). */
#define DENY_KEY_PSEUDO 1
/* The path_walks slot: one program per object, never nested on a CPU. */
#define DENY_SLOT 0

/* Rules, filled by userspace before attach. max_entries set at load. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 2048);
	__type(key, struct deny_key);
	__type(value, struct deny_rule);
} deny_exec SEC(".maps");

/* Identity rules, filled by userspace before attach and at run time
 * (copies found by hash). Fixed size: entries are added while it runs. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, struct deny_inode);
	__type(value, struct deny_rule);
} deny_inodes SEC(".maps");

/* Per-CPU scratch: neither program sleeps or is preempted by another exec
 * on the same CPU between filling and using it. The path is in the
 * walker's slot. */
struct deny_scratch {
	struct deny_key key;
	struct deny_inode ino;
	struct deny_event ev;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct deny_scratch);
} deny_heap SEC(".maps");

/* Read a field through memory, so the verifier sees an unknown bounded by
 * the masks at use instead of one exact value per loop iteration. */
#define DENY_READ(x) (*(volatile typeof(x) *)&(x))

/* Look up w->buf[start .. start+len) as a zero-padded key. */
static __always_inline int deny_lookup(struct deny_scratch *x, struct path_walk *w,
				       __u32 start, __u32 len)
{
	if (len == 0 || len > DENY_PATH_MAX - 1)
		return -1;
	__u64 *k = (__u64 *)x->key.path;
	for (int i = 0; i < DENY_PATH_MAX / 8; i++)
		k[i] = 0;
	asm volatile("" : "+r"(len));
	len &= DENY_PATH_MAX - 1;
	bpf_probe_read_kernel(x->key.path, len, &w->buf[start & PATH_MASK]);
	struct deny_rule *r = bpf_map_lookup_elem(&deny_exec, &x->key);
	return r ? (int)r->index : -1;
}

/* The index of the deny rule the file matches, or -1. Leaves the path in
 * the walker's slot for deny_record. */
static __always_inline int deny_match(struct deny_scratch *x, struct path_walk *w,
				      struct file *file, struct task_struct *t)
{
	if (!file)
		return -1;
	path_walk_file(w, DENY_SLOT, PATH_BUF, file, t);
	x->ino.dev = BPF_CORE_READ(file, f_inode, i_sb, s_dev);
	x->ino.ino = BPF_CORE_READ(file, f_inode, i_ino);
	struct deny_rule *ir = bpf_map_lookup_elem(&deny_inodes, &x->ino);
	if (ir)
		return (int)ir->index;
	if (DENY_READ(w->flags) & PATH_PSEUDO) {
		/* No path (a memfd): the one pseudo key, when the policy
		 * denies such images (sensor.DenyKeyPseudo). */
		__u64 *k = (__u64 *)x->key.path;
		for (int i = 0; i < DENY_PATH_MAX / 8; i++)
			k[i] = 0;
		x->key.path[0] = DENY_KEY_PSEUDO;
		struct deny_rule *pr = bpf_map_lookup_elem(&deny_exec, &x->key);
		return pr ? (int)pr->index : -1;
	}
	if (DENY_READ(w->flags) & PATH_UNREACHABLE)
		return -1;
	__u32 pos = DENY_READ(w->pos);
	if (pos >= PATH_BUF)
		return -1; /* the file is the root directory itself */
	int r = deny_lookup(x, w, pos, PATH_BUF - pos);
	if (r >= 0)
		return r;
	/* Leaf's directory first, then up to (but not including) "/". */
	for (int j = 0; j < DENY_WALK; j++) {
		if (j + 1 >= DENY_READ(w->n))
			break;
		__u32 s = w->slash[j];
		if (s < pos)
			break;
		r = deny_lookup(x, w, pos, s - pos + 1);
		if (r >= 0)
			return r;
	}
	return -1;
}

/* Emit EV_DENY for the current task with the path deny_match left in w. */
static __always_inline void deny_record(struct deny_scratch *x, struct path_walk *w,
					struct task_struct *t, struct session *s,
					__u32 rule, __u8 action)
{
	struct deny_event *e = &x->ev;

	/* A child denied before it ever exec'd: its fork record first. */
	unpark_fork(BPF_CORE_READ(t, tgid));
	fill_header(&e->h, EV_DENY, t, s);
	e->rule = rule;
	e->action = action;
	e->_pad0 = 0;

	__u32 pos = DENY_READ(w->pos) & PATH_MASK;
	__u32 len = PATH_BUF - pos;
	if (len > DENY_PATH_MAX - 1) {
		len = DENY_PATH_MAX - 1;
		e->h.flags |= DENY_PATH_TRUNCATED;
	}
	__u64 *p = (__u64 *)e->path;
	for (int i = 0; i < DENY_PATH_MAX / 8; i++)
		p[i] = 0;
	asm volatile("" : "+r"(len));
	len &= DENY_PATH_MAX - 1;
	bpf_probe_read_kernel(e->path, len, &w->buf[pos]);
	e->path_len = len;
	if (bpf_ringbuf_output(&events, e, sizeof(*e), ringbuf_flags()) < 0)
		count_lost(EV_DENY);
}

/* The session of the current process, copied (the map element may go). */
static __always_inline bool deny_session(struct session *out)
{
	struct session *s = current_session(); /* checked by start time */
	if (!s)
		return false;
	*out = *s;
	return true;
}

#endif /* LINEAGED_ENFORCE_H */
