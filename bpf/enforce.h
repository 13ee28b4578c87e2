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
 *  1. The executable's absolute path is rebuilt from bprm->file by walking
 *     d_parent and the mount chain up to the root of the mount namespace
 *     (as process.bpf.c does). Symlinks are already resolved (the dentry
 *     is the target) and a chroot does not hide the real path, so neither
 *     can be used to dodge a rule. The walk writes the path backwards into
 *     a per-CPU buffer and remembers where it wrote each '/'.
 *  2. Exact rules: the whole path, zero-padded to DENY_PATH_MAX bytes, is
 *     looked up in the deny_exec hash map.
 *  3. Prefix rules ("/opt/tools/", stored with the trailing '/'): the
 *     path's leading part up to and including each remembered '/', from
 *     the leaf's directory up to the root, is looked up the same way. A
 *     full path never ends in '/', so one map holds both kinds and an
 *     exact rule can never match as a prefix. Each step is one hash lookup
 *     of a 256-byte key: O(depth) lookups, no per-rule cost.
 *
 * Bounds: DENY_WALK components. Any path of at most DENY_PATH_MAX - 1
 * bytes has fewer components than that (each costs at least 2 bytes), so
 * every path a rule can name is walked completely. A longer path whose
 * walk does not finish has an unknown leading part and matches nothing
 * (fail open: killing every exec of very deep paths would break members
 * for a rule they cannot match anyway). A prefix longer than
 * DENY_PATH_MAX - 1 bytes cannot be a key and is skipped.
 */
#ifndef LINEAGED_ENFORCE_H
#define LINEAGED_ENFORCE_H

#include "lineaged.h"
#include "maps.h"

#define DENY_WALK 128
#define DENY_BUF 4096 /* power of two; the walk fills at most this */
#define DENY_NAME_MAX 255

/* Rules, filled by userspace before attach. max_entries set at load. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 2048);
	__type(key, struct deny_key);
	__type(value, struct deny_rule);
} deny_exec SEC(".maps");

/* Per-CPU scratch: neither program sleeps or is preempted by another exec
 * on the same CPU between filling and using it. */
struct deny_scratch {
	/* Written backwards from DENY_BUF; twice the size so a masked offset
	 * plus a bounded length is always in bounds. */
	char path[2 * DENY_BUF];
	__u32 slash[DENY_WALK]; /* slash[j]: '/' before component j from the leaf */
	__u32 pos;              /* path starts at path[pos] */
	__u32 n;                /* components walked */
	__u32 done;             /* reached the namespace root */
	__u32 _pad0;
	struct deny_key key;
	struct deny_event ev;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct deny_scratch);
} deny_heap SEC(".maps");

/* Read a scratch field through memory, so the verifier sees an unknown
 * bounded by the masks at use instead of one exact value per loop
 * iteration (one state instead of DENY_WALK). */
#define DENY_READ(x) (*(volatile typeof(x) *)&(x))

static __always_inline void deny_walk(struct deny_scratch *x, struct file *file)
{
	struct dentry *d = BPF_CORE_READ(file, f_path.dentry);
	struct vfsmount *vmnt = BPF_CORE_READ(file, f_path.mnt);
	struct mount *mnt = container_of(vmnt, struct mount, mnt);

	x->pos = DENY_BUF;
	x->n = 0;
	x->done = 0;
	for (int i = 0; i < DENY_WALK; i++) {
		struct dentry *parent = BPF_CORE_READ(d, d_parent);
		struct dentry *mroot = BPF_CORE_READ(vmnt, mnt_root);

		if (d == mroot || d == parent) {
			struct mount *mparent = BPF_CORE_READ(mnt, mnt_parent);
			if (d != mroot || mnt == mparent) {
				x->done = 1; /* root of the namespace */
				break;
			}
			d = BPF_CORE_READ(mnt, mnt_mountpoint);
			mnt = mparent;
			vmnt = &mnt->mnt;
			continue;
		}
		struct qstr q = BPF_CORE_READ(d, d_name);
		__u32 len = q.len;
		if (len > DENY_NAME_MAX)
			len = DENY_NAME_MAX;
		__u32 pos = DENY_READ(x->pos) & (2 * DENY_BUF - 1);
		if (len + 1 > pos)
			break; /* longer than the buffer: done stays 0 */
		pos -= len;
		len &= DENY_NAME_MAX;
		bpf_probe_read_kernel(&x->path[pos & (DENY_BUF - 1)], len, q.name);
		pos--;
		x->path[pos & (DENY_BUF - 1)] = '/';
		__u32 lv = DENY_READ(x->n);
		x->slash[lv & (DENY_WALK - 1)] = pos;
		x->n = lv + 1;
		x->pos = pos;
		d = parent;
	}
}

/* Look up path[start .. start+len) as a zero-padded key. */
static __always_inline int deny_lookup(struct deny_scratch *x, __u32 start, __u32 len)
{
	if (len == 0 || len > DENY_PATH_MAX - 1)
		return -1;
	__u64 *w = (__u64 *)x->key.path;
	for (int i = 0; i < DENY_PATH_MAX / 8; i++)
		w[i] = 0;
	asm volatile("" : "+r"(len));
	len &= DENY_PATH_MAX - 1;
	bpf_probe_read_kernel(x->key.path, len, &x->path[start & (DENY_BUF - 1)]);
	struct deny_rule *r = bpf_map_lookup_elem(&deny_exec, &x->key);
	return r ? (int)r->index : -1;
}

/* The index of the deny rule the file matches, or -1. Leaves the path in
 * x for deny_record. */
static __always_inline int deny_match(struct deny_scratch *x, struct file *file)
{
	if (!file)
		return -1;
	deny_walk(x, file);
	if (!DENY_READ(x->done))
		return -1;
	__u32 pos = DENY_READ(x->pos);
	if (pos >= DENY_BUF)
		return -1; /* the file is the root directory itself */
	int r = deny_lookup(x, pos, DENY_BUF - pos);
	if (r >= 0)
		return r;
	/* Leaf's directory first, then up to (but not including) "/". */
	for (int j = 0; j < DENY_WALK; j++) {
		if (j + 1 >= DENY_READ(x->n))
			break;
		__u32 s = x->slash[j & (DENY_WALK - 1)];
		if (s < pos)
			break;
		r = deny_lookup(x, pos, s - pos + 1);
		if (r >= 0)
			return r;
	}
	return -1;
}

/* Emit EV_DENY for the current task with the path deny_match left in x. */
static __always_inline void deny_record(struct deny_scratch *x, struct task_struct *t,
					struct session *s, __u32 rule, __u8 action)
{
	struct deny_event *e = &x->ev;
	struct event_header *h = &e->h;

	h->kind = EV_DENY;
	h->agent = s->agent;
	h->flags = 0;
	h->cpu = bpf_get_smp_processor_id();
	h->ktime = bpf_ktime_get_boot_ns();
	h->pid = BPF_CORE_READ(t, tgid);
	h->tid = BPF_CORE_READ(t, pid);
	h->start_ns = BPF_CORE_READ(t, group_leader, start_boottime);
	h->session_pid = s->root_pid;
	h->_pad0 = 0;
	h->session_start = s->root_start;
	e->rule = rule;
	e->action = action;
	e->_pad0 = 0;

	__u32 pos = DENY_READ(x->pos) & (DENY_BUF - 1);
	__u32 len = DENY_BUF - pos;
	if (len > DENY_PATH_MAX - 1) {
		len = DENY_PATH_MAX - 1;
		h->flags |= DENY_PATH_TRUNCATED;
	}
	__u64 *w = (__u64 *)e->path;
	for (int i = 0; i < DENY_PATH_MAX / 8; i++)
		w[i] = 0;
	asm volatile("" : "+r"(len));
	len &= DENY_PATH_MAX - 1;
	bpf_probe_read_kernel(e->path, len, &x->path[pos]);
	e->path_len = len;
	if (bpf_ringbuf_output(&events, e, sizeof(*e), 0) < 0)
		count_lost(EV_DENY);
}

/* The session of the current process, copied (the map element may go). */
static __always_inline bool deny_session(struct session *out)
{
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	struct session *s = bpf_map_lookup_elem(&sessions, &tgid);
	if (!s)
		return false;
	*out = *s;
	return true;
}

#endif /* LINEAGED_ENFORCE_H */
