// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Process events and agent sessions, from the sched_process_{exec,fork,exit}
 * tracepoints (tp_btf: typed arguments, stable tracepoint ABI, kernel >= 5.8
 * with BTF; no kprobes, fentry or LSM needed).
 *
 * Every exec, fork and exit costs one lookup in the sessions map. Every exec
 * also runs the agent recognisers on the executable's path. Nothing reaches
 * the ring buffer for a process outside an agent session unless userspace
 * set scope_all.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>

#include "lineaged.h"
#include "maps.h"
#include "lib/header.h"
#include "lib/path.h"
#include "lib/wakeup.h"
#include "lib/forks.h"
#include "lib/repeats.h"
#include "tamper.h"
#include "umh.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* Keep the wire structs in BTF for bpf2go -type, even where clang would
 * only see them through helper return values. */
const struct fork_event *unused_fork_event __attribute__((unused));
const struct exit_event *unused_exit_event __attribute__((unused));
const struct event_header *unused_event_header __attribute__((unused));
const enum exec_flags *unused_exec_flags __attribute__((unused));
const enum fork_flags *unused_fork_flags __attribute__((unused));
const struct tamper_event *unused_tamper_event __attribute__((unused));

/* Set by userspace before load (sensor.Config.Scope). */
const volatile __u8 scope_all = 0;

/* Set by userspace before load (sensor.Config.HoldExeFlags): the exec
 * flags (EXEC_EXE_PSEUDO, EXEC_EXE_DELETED) whose images a session member
 * is stopped at, to be hashed before they run. 0: no hold (the verifier
 * prunes the branch). */
const volatile __u16 hold_exe_flags = 0;

/* Set by userspace before load (sensor.Config.HoldUnseen): a session
 * member's exec of an image on disk that userspace has not hashed and
 * allowed since it started (seen_images, same dev, inode and times) is
 * stopped too. 0: no such hold. */
const volatile __u8 hold_unseen = 0;

struct seen_key {
	__u64 ino;
	__u32 dev;
	__u32 _pad;
};

struct seen_times {
	__s64 mtime_ns;
	__s64 ctime_ns;
};

/* Images userspace hashed and allowed (kernel.Sensor.MarkSeen): an LRU,
 * so an image pushed out is held, and hashed from the cache, again. A
 * rewrite in place changes the times: held again. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, struct seen_key);
	__type(value, struct seen_times);
} seen_images SEC(".maps");

static __always_inline bool image_seen(__u32 dev, __u64 ino, __s64 mtime, __s64 ctime)
{
	struct seen_key k = { .ino = ino, .dev = dev };
	struct seen_times *t = bpf_map_lookup_elem(&seen_images, &k);

	return t && t->mtime_ns == mtime && t->ctime_ns == ctime;
}

/* Recogniser table, filled by userspace after load and before attach. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, RECOG_MAX);
	__type(key, __u32);
	__type(value, struct recogniser);
} recognisers SEC(".maps");

/* The path_walks slot of the executable's path (bpf/lib/path.h). */
#define EXE_SLOT 0
#define DATA_SIZE 8192          /* filename + exe + argv, power of two */
#define DATA_MASK (DATA_SIZE - 1)

/* Per-CPU scratch: the exec record is built here (a tp_btf program cannot
 * sleep and is not preempted by another exec on the same CPU) and copied to
 * the ring buffer with its real length, so a short exec costs a short record. */
struct exec_scratch {
	struct exec_event ev;
	/* filename, exe and argv, packed; offsets masked for the verifier. */
	char data[DATA_SIZE + 64];
	/* Leaf-first components of the exe path, zero-padded, for the
	 * recognisers. */
	__u64 comp[RECOG_LEVELS][RECOG_COMP_LEN / 8];
	__u32 comp_len[RECOG_LEVELS];
	__u32 script_len;
	__u32 need_arg;
	__u32 agent;
	__u32 rule;     /* index of the matched rule */
	char argv0[RECOG_COMP_LEN]; /* zero-padded, for deny_argv0 */
	/* The script argument: read into argbuf, its tail right-aligned in
	 * script[RECOG_SCRIPT_LEN..2 * RECOG_SCRIPT_LEN). */
	char argbuf[RECOG_SCRIPT_ARG_MAX + 2 * RECOG_SCRIPT_LEN];
	char script[4 * RECOG_SCRIPT_LEN]; /* masked offset + masked size fit */
	struct umh_key umh; /* bpf/umh.h lookup key */
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct exec_scratch);
} exec_heap SEC(".maps");

/* Inode timestamp layouts across kernels (CO-RE picks the one that exists). */
struct inode___v611 { /* >= 6.11: split seconds / nanoseconds */
	time64_t i_mtime_sec;
	time64_t i_ctime_sec;
	u32 i_mtime_nsec;
	u32 i_ctime_nsec;
} __attribute__((preserve_access_index));

struct inode___v67 { /* 6.7 - 6.10 */
	struct timespec64 __i_mtime;
	struct timespec64 __i_ctime;
} __attribute__((preserve_access_index));

struct inode___v66 { /* 6.6 */
	struct timespec64 i_mtime;
	struct timespec64 __i_ctime;
} __attribute__((preserve_access_index));

struct inode___old { /* < 6.6 */
	struct timespec64 i_mtime;
	struct timespec64 i_ctime;
} __attribute__((preserve_access_index));

#define NSEC_MASK ((1U << 30) - 1)

static __always_inline __s64 ts_ns(struct timespec64 t)
{
	return t.tv_sec * 1000000000LL + t.tv_nsec;
}

static __always_inline void inode_times(struct inode *ino, __s64 *mtime, __s64 *ctime)
{
	if (bpf_core_field_exists(((struct inode___v611 *)0)->i_mtime_sec)) {
		struct inode___v611 *i = (void *)ino;
		/* Multigrain timestamps (6.13+) keep a "queried" flag in bit 31
		 * of i_ctime_nsec; nanoseconds fit in 30 bits. */
		*mtime = BPF_CORE_READ(i, i_mtime_sec) * 1000000000LL +
			 (BPF_CORE_READ(i, i_mtime_nsec) & NSEC_MASK);
		*ctime = BPF_CORE_READ(i, i_ctime_sec) * 1000000000LL +
			 (BPF_CORE_READ(i, i_ctime_nsec) & NSEC_MASK);
	} else if (bpf_core_field_exists(((struct inode___v67 *)0)->__i_mtime)) {
		struct inode___v67 *i = (void *)ino;
		*mtime = ts_ns(BPF_CORE_READ(i, __i_mtime));
		*ctime = ts_ns(BPF_CORE_READ(i, __i_ctime));
	} else if (bpf_core_field_exists(((struct inode___v66 *)0)->__i_ctime)) {
		struct inode___v66 *i = (void *)ino;
		*mtime = ts_ns(BPF_CORE_READ(i, i_mtime));
		*ctime = ts_ns(BPF_CORE_READ(i, __i_ctime));
	} else {
		struct inode___old *i = (void *)ino;
		*mtime = ts_ns(BPF_CORE_READ(i, i_mtime));
		*ctime = ts_ns(BPF_CORE_READ(i, i_ctime));
	}
}

/* Copy one leaf-first component of the exe path (already walked) into
 * its recogniser slot, zero-padded so masked compares see no stale bytes. */
static __always_inline void set_comp(struct exec_scratch *x, __u32 level, const void *src, __u32 len)
{
	if (level >= RECOG_LEVELS)
		return;
	__u64 *slot = x->comp[level];
	slot[0] = slot[1] = slot[2] = slot[3] = 0;
	x->comp_len[level] = len;
	__u32 n = len;
	if (n > RECOG_COMP_LEN)
		n = RECOG_COMP_LEN;
	/* Hide n from clang so the mask survives: the verifier needs a
	 * bounded size in the very register passed to the helper. */
	asm volatile("" : "+r"(n));
	n &= 2 * RECOG_COMP_LEN - 1;
	bpf_probe_read_kernel(slot, n, src);
}

/* Read a scratch field through memory: the verifier then sees an unknown
 * (bounded by masks at use) instead of the exact loop-carried value, so the
 * paths through a loop end in one state, not one per iteration count. */
#define SCRATCH_READ(x) (*(volatile typeof(x) *)&(x))

/*
 * The executable's path from bprm->file, relative to the task's root
 * (bpf/lib/path.h): it resolves symlinks for free (the dentry is the
 * target), so ~/.local/bin/claude shows as ~/.local/share/claude/versions/<v>.
 * Leaves the path at w->buf[w->pos..PATH_BUF), the walk's flags in the
 * record and the leaf-first components in x->comp.
 */
static __always_inline void exe_path(struct exec_scratch *x, struct path_walk *w,
				     struct file *file, struct task_struct *task)
{
	path_walk_file(w, EXE_SLOT, PATH_BUF, file, task);

	__u32 f = SCRATCH_READ(w->flags);
	if (f & PATH_UNREACHABLE)
		x->ev.flags |= EXEC_EXE_TRUNCATED;
	if (f & PATH_DELETED)
		x->ev.flags |= EXEC_EXE_DELETED;
	if (f & PATH_PSEUDO)
		x->ev.flags |= EXEC_EXE_PSEUDO;
	if (f & PATH_OUTSIDE_ROOT)
		x->ev.flags |= EXEC_EXE_OUTSIDE_ROOT;

	/* Levels above the path's depth must read as empty (length 0), which
	 * no matcher text equals: the matchers do not look at the depth. */
	for (__u32 lv = 0; lv < RECOG_LEVELS; lv++) {
		x->comp_len[lv] = 0;
		x->comp[lv][0] = x->comp[lv][1] = x->comp[lv][2] = x->comp[lv][3] = 0;
		if (lv >= SCRATCH_READ(w->n))
			continue;
		__u32 start = w->slash[lv] + 1;
		__u32 end = lv ? w->slash[lv - 1] : PATH_BUF;
		set_comp(x, lv, &w->buf[start & PATH_MASK], end - start);
	}
	/* Flags reread, not kept live in a register across the loop. */
	if (SCRATCH_READ(w->pos) >= PATH_BUF && !(SCRATCH_READ(w->flags) & PATH_PSEUDO)) {
		/* the file is the root itself */
		w->buf[PATH_BUF - 1] = '/';
		w->pos = PATH_BUF - 1;
	}
}

/*
 * Matching is arithmetic, not branches: each matcher ORs its differences
 * into one word, and only the rule's verdict is a branch. With a branch per
 * compare the verifier would walk every combination of outcomes across the
 * table and exceed its instruction budget.
 */
static __always_inline __u64 exe_mismatch(struct exec_scratch *x, struct recogniser *rec)
{
	__u64 d = 0;

	for (int j = 0; j < RECOG_MATCHERS; j++) {
		struct recog_matcher *m = &rec->m[j];
		__u32 lv = m->level & (RECOG_LEVELS - 1);
		__u64 *c = x->comp[lv];
		__u64 clen = x->comp_len[lv];
		__u64 len = m->len;

		/* Both are < 2^32, so clang would turn the sign test below
		 * into a compare-and-branch; hide that, keep it arithmetic. */
		asm volatile("" : "+r"(clen), "+r"(len));

		d |= ((c[0] & m->mask[0]) ^ m->text[0]) | ((c[1] & m->mask[1]) ^ m->text[1]) |
		     ((c[2] & m->mask[2]) ^ m->text[2]) | ((c[3] & m->mask[3]) ^ m->text[3]);
		d |= (clen ^ len) & m->len_eq;  /* RECOG_EQ: same length */
		d |= (clen - len) >> 63;        /* both: clen >= len */
		/* Most execs fail a rule on its first matcher: stop there.
		 * d is never used as a pointer or size, so the verifier
		 * keeps it imprecise and the two exits merge. */
		if (d)
			break;
	}
	return d;
}

static __always_inline __u64 script_mismatch(struct exec_scratch *x, struct recogniser *rec)
{
	__u64 *c = (__u64 *)&x->script[RECOG_SCRIPT_LEN];
	__u64 have = x->script_len, want = rec->script_len;

	asm volatile("" : "+r"(have), "+r"(want));
	__u64 d = (have - want) >> 63;

	for (int w = 0; w < RECOG_SCRIPT_LEN / 8; w++)
		d |= (c[w] & rec->script_mask[w]) ^ rec->script_text[w];
	return d;
}

/*
 * The script argument of an interpreter: the first of argv[1..3] that is
 * non-empty and does not start with '-' (node --no-warnings /path/cli.js).
 * Read string by string from the new image's argument area with
 * bpf_probe_read_user_str: a byte scan would cost the verifier a state per
 * possible argument boundary. Its last RECOG_SCRIPT_LEN bytes are
 * right-aligned, zero-padded, at script[RECOG_SCRIPT_LEN..2*RECOG_SCRIPT_LEN).
 * An argument of RECOG_SCRIPT_ARG_MAX - 1 bytes or more ends the search
 * (where the next one starts is unknown); sensor.scriptArg mirrors this.
 */
static __always_inline void script_arg(struct exec_scratch *x, unsigned long p, unsigned long end)
{
	__u64 *c = (__u64 *)&x->script[RECOG_SCRIPT_LEN];
	for (int w = 0; w < RECOG_SCRIPT_LEN / 8; w++)
		c[w] = 0;
	x->script_len = 0;
	for (int k = 0; k < 4 && p < end; k++) {
		long n = bpf_probe_read_user_str(x->argbuf, RECOG_SCRIPT_ARG_MAX, (void *)p);
		if (n <= 0 || n >= RECOG_SCRIPT_ARG_MAX)
			return;
		if (k > 0 && n > 1 && x->argbuf[0] != '-') {
			__u32 len = n - 1;
			__u32 tail = len < RECOG_SCRIPT_LEN ? len : RECOG_SCRIPT_LEN;
			asm volatile("" : "+r"(tail));
			tail &= 2 * RECOG_SCRIPT_LEN - 1;
			bpf_probe_read_kernel(&x->script[(2 * RECOG_SCRIPT_LEN - tail) & (2 * RECOG_SCRIPT_LEN - 1)],
					      tail, &x->argbuf[(len - tail) & (RECOG_SCRIPT_ARG_MAX - 1)]);
			x->script_len = len;
			return;
		}
		p += n;
	}
}

/*
 * Rules on the executable alone are tried first, in table order; then, if
 * some interpreter rule's exe part held, the script argument is read once
 * and those rules are tried in order (sensor.RecogniseWith does the same).
 * A plain exec never pays for argv reading. The loops carry no state but
 * the rule index and one bool, which keeps the verifier's work linear in
 * the table size.
 */
#ifdef LINEAGED_BPF_LOOP
/* The rule passes as bpf_loop callbacks (5.17+): the verifier checks one
 * rule instead of RECOG_MAX (sensor/kernel/walker.go picks the build). The
 * bounded build's loops below do the same, rule by rule. */

/* One rule of the first pass (rules on the executable alone): 1 when the
 * pass is over (*agent set on a match), 0 to go on. */
static __always_inline int recog_exe_rule(struct exec_scratch *x, __u32 r, __u8 *agent)
{
	__u32 key = r;
	struct recogniser *rec = bpf_map_lookup_elem(&recognisers, &key);
	if (!rec || rec->agent == AGENT_NONE)
		return 1;
	__u64 d = exe_mismatch(x, rec);
	if (rec->script_len) {
		/* through memory: no register state to fork on */
		x->need_arg |= d == 0;
		return 0;
	}
	if (d == 0) {
		x->rule = r;
		*agent = rec->agent;
		return 1;
	}
	return 0;
}

/* One rule of the second pass (interpreter rules, with the script). */
static __always_inline int recog_script_rule(struct exec_scratch *x, __u32 r, __u8 *agent)
{
	__u32 key = r;
	struct recogniser *rec = bpf_map_lookup_elem(&recognisers, &key);
	if (!rec || rec->agent == AGENT_NONE)
		return 1;
	if (rec->script_len && (exe_mismatch(x, rec) | script_mismatch(x, rec)) == 0) {
		x->rule = r;
		*agent = rec->agent;
		return 1;
	}
	return 0;
}

struct recog_loop_ctx {
	struct exec_scratch *x;
	__u8 agent;
};

static long recog_exe_step(__u32 r, void *arg)
{
	struct recog_loop_ctx *c = arg;

	return recog_exe_rule(c->x, r, &c->agent);
}

static long recog_script_step(__u32 r, void *arg)
{
	struct recog_loop_ctx *c = arg;

	return recog_script_rule(c->x, r, &c->agent);
}
#endif

static __always_inline __u8 recognise_rules(struct exec_scratch *x, unsigned long arg_start,
				      unsigned long arg_end)
{
#ifdef LINEAGED_BPF_LOOP
	struct recog_loop_ctx c = { .x = x, .agent = AGENT_NONE };

	x->need_arg = 0;
	bpf_loop(RECOG_MAX, recog_exe_step, &c, 0);
	if (c.agent != AGENT_NONE)
		return c.agent;
	if (!SCRATCH_READ(x->need_arg))
		return AGENT_NONE;

	script_arg(x, arg_start, arg_end);
	if (SCRATCH_READ(x->script_len) == 0)
		return AGENT_NONE;
	bpf_loop(RECOG_MAX, recog_script_step, &c, 0);
	return c.agent;
#else
	__u32 r;

	x->need_arg = 0;
	for (r = 0; r < RECOG_MAX; r++) {
		__u32 key = r;
		struct recogniser *rec = bpf_map_lookup_elem(&recognisers, &key);
		if (!rec || rec->agent == AGENT_NONE)
			break;
		__u64 d = exe_mismatch(x, rec);
		if (rec->script_len) {
			/* through memory: no register state to fork on */
			x->need_arg |= d == 0;
			continue;
		}
		if (d == 0) {
			x->rule = r;
			return rec->agent;
		}
	}
	if (!SCRATCH_READ(x->need_arg))
		return AGENT_NONE;

	script_arg(x, arg_start, arg_end);
	if (SCRATCH_READ(x->script_len) == 0)
		return AGENT_NONE;
	for (r = 0; r < RECOG_MAX; r++) {
		__u32 key = r;
		struct recogniser *rec = bpf_map_lookup_elem(&recognisers, &key);
		if (!rec || rec->agent == AGENT_NONE)
			break;
		if (rec->script_len && (exe_mismatch(x, rec) | script_mismatch(x, rec)) == 0) {
			x->rule = r;
			return rec->agent;
		}
	}
	return AGENT_NONE;
#endif
}

/* The verdict goes through memory so every path out of the rule loops
 * reaches the rest of the program in one verifier state. */
static __always_inline __u8 recognise(struct exec_scratch *x, unsigned long arg_start,
				      unsigned long arg_end)
{
	x->agent = recognise_rules(x, arg_start, arg_end);
	__u8 agent = SCRATCH_READ(x->agent);
	if (agent == AGENT_NONE)
		return AGENT_NONE;

	/* One code path for every matched rule: look it up again. */
	__u32 key = SCRATCH_READ(x->rule);
	struct recogniser *rec = bpf_map_lookup_elem(&recognisers, &key);
	if (!rec || rec->deny_n == 0)
		return agent;
	__u64 *a0 = (__u64 *)x->argv0;
	a0[0] = a0[1] = a0[2] = a0[3] = 0;
	long n = bpf_probe_read_user_str(x->argv0, sizeof(x->argv0), (void *)arg_start);
	if (n <= 0 || n >= (long)sizeof(x->argv0))
		return agent; /* unreadable or too long to be a denied name */
	for (int k = 0; k < RECOG_DENY; k++) {
		if (k >= rec->deny_n)
			break;
		__u64 *w = rec->deny_argv0[k];
		if (((a0[0] ^ w[0]) | (a0[1] ^ w[1]) | (a0[2] ^ w[2]) | (a0[3] ^ w[3])) == 0)
			return AGENT_NONE;
	}
	return agent;
}

/*
 * sched_process_exec fires at the end of a successful exec, in the exec'ing
 * task, after the new mm, creds and argv are in place and before the task
 * returns to userspace. A recognised agent is therefore in the sessions map
 * before it runs its first instruction, so no child can be forked outside
 * its session however fast it forks. bprm->file is the final image (the
 * interpreter for #! scripts; the script's path is in argv).
 */
SEC("tp_btf/sched_process_exec")
int BPF_PROG(handle_exec, struct task_struct *task, pid_t old_pid, struct linux_binprm *bprm)
{
	/* Children forked by the image this exec replaces go first. A
	 * process that execs with children is rare; one without costs a
	 * call and two reads. */
	unpark_children(bpf_get_current_task());

	__u32 zero = 0;
	struct exec_scratch *x = bpf_map_lookup_elem(&exec_heap, &zero);
	if (!x)
		return 0;
	struct exec_event *e = &x->ev;
	struct path_walk *w = path_slot(EXE_SLOT);
	if (!w)
		return 0;

	/*
	 * Recognise first, with as little live state as possible: the
	 * verifier walks the rule loops once per distinct state that reaches
	 * them. Flags live in the record (memory), lengths are computed only
	 * after the verdict, and only for events that are emitted, which also
	 * keeps the cost for non-members to the walk and the rules.
	 */
	e->flags = 0;
	struct file *file = BPF_CORE_READ(bprm, file);
	if (file) {
		exe_path(x, w, file, task);
	} else {
		e->flags |= EXEC_EXE_UNRESOLVED;
		w->pos = PATH_BUF;
		for (int i = 0; i < RECOG_LEVELS; i++)
			x->comp_len[i] = 0; /* comp bytes are masked by the length tests */
	}
	/* The new image's argument strings are at mm->arg_start..arg_end in
	 * the new stack, just copied there by the kernel, so they are
	 * resident and readable without faulting. */
	struct mm_struct *mm = BPF_CORE_READ(task, mm);
	unsigned long as = BPF_CORE_READ(mm, arg_start);
	unsigned long ae = BPF_CORE_READ(mm, arg_end);
	__u8 agent = recognise(x, as, ae);

	__u32 tgid = BPF_CORE_READ(task, tgid);
	struct session prev = {};
	bool had = false;
	struct session *found = session_of(task, tgid);
	if (found) {
		/* Copy now: the update below may free the element. */
		bpf_probe_read_kernel(&prev, sizeof(prev), found);
		had = true;
	}
	struct session nsess = {};
	struct session *cur = had ? &prev : NULL;
	bool nested = false;
	/* A usermode helper a member registered joins its session. */
	if (!had && agent == AGENT_NONE && umh_join(&x->umh, task, bprm, tgid, &nsess))
		cur = &nsess;
	if (agent != AGENT_NONE && !(had && prev.root_pid == tgid && prev.agent == agent)) {
		/* A new session, nested when the exec'ing task already was a
		 * member: the record carries the enclosing session. (A root
		 * re-exec'ing the same agent keeps its session.) */
		nsess.root_pid = tgid;
		nsess.agent = agent;
		nsess.root_start = leader_start(task);
		nsess.member_start = nsess.root_start;
		if (bpf_map_update_elem(&sessions, &tgid, &nsess, BPF_ANY) != 0) {
			count_lost(LOST_SESSIONS_FULL_EXEC); /* != 0: see maps.h */
			nsess.flags |= SESSION_F_UNTRACKED;
		}
		nested = had;
		cur = &nsess;
	}
	if (!cur && !scope_all)
		return 0;

	/* filename at data[0] */
	const char *fname = BPF_CORE_READ(bprm, filename);
	long fl = bpf_probe_read_kernel_str(x->data, EXEC_FILENAME_MAX, fname);
	__u32 flen = fl > 0 ? fl - 1 : 0;
	if (flen >= EXEC_FILENAME_MAX - 1)
		e->flags |= EXEC_FILENAME_TRUNCATED;
	flen &= (EXEC_FILENAME_MAX - 1);

	/* exe path after the filename, keeping the leaf end if too long */
	__u32 ppos = SCRATCH_READ(w->pos) & (2 * PATH_BUF - 1);
	__u32 plen = ppos < PATH_BUF ? PATH_BUF - ppos : 0;
	if (plen > EXEC_EXE_MAX) {
		ppos += plen - EXEC_EXE_MAX;
		plen = EXEC_EXE_MAX;
		e->flags |= EXEC_EXE_TRUNCATED;
	}
	asm volatile("" : "+r"(plen));
	plen &= (2 * EXEC_EXE_MAX - 1);
	bpf_probe_read_kernel(&x->data[flen & 1023], plen, &w->buf[ppos & PATH_MASK]);

	/* argv after the exe path */
	__u32 aoff = (flen + plen) & 2047;
	__u64 alen64 = ae > as ? ae - as : 0;
	__u32 alen = alen64;
	if (alen64 > EXEC_ARGV_MAX - 1) {
		/* EXEC_ARGV_MAX - 1 bytes kept: the mask below is then exact */
		alen = EXEC_ARGV_MAX - 1;
		e->flags |= EXEC_ARGV_TRUNCATED;
	}
	alen &= EXEC_ARGV_MAX - 1; /* a no-op the verifier needs to see */
	if (alen > 0 && bpf_probe_read_user(&x->data[aoff], alen, (void *)as) < 0)
		alen = 0;

	fill_header(&e->h, EV_EXEC, task, cur);
	if (cur && (cur->flags & SESSION_F_UMH))
		e->flags |= EXEC_VIA_UMH;
	if (cur && (cur->flags & SESSION_F_UNTRACKED))
		e->flags |= EXEC_UNTRACKED;
	/* The hold: a member (in a session after this exec) running a memfd
	 * or deleted image is stopped before its first instruction (below,
	 * once its record is in the ring: a process whose record was lost
	 * is never stopped, as nothing would release it). */
	if (hold_exe_flags && cur && !(cur->flags & SESSION_F_UNTRACKED) && (e->flags & hold_exe_flags))
		e->flags |= EXEC_HELD;
	struct task_struct *rp = BPF_CORE_READ(task, real_parent);
	e->ppid = BPF_CORE_READ(rp, tgid);
	e->parent_start = leader_start(rp);
	e->uid = BPF_CORE_READ(task, cred, uid.val);
	e->euid = BPF_CORE_READ(task, cred, euid.val);
	e->gid = BPF_CORE_READ(task, cred, gid.val);
	if (bpf_core_field_exists(task->loginuid)) {
		e->loginuid = BPF_CORE_READ(task, loginuid.val);
		e->sessionid = BPF_CORE_READ(task, sessionid);
	} else { /* CONFIG_AUDITSYSCALL off */
		e->loginuid = (__u32)-1;
		e->sessionid = (__u32)-1;
	}
	e->cgroup_id = bpf_get_current_cgroup_id();
	e->mnt_ns = BPF_CORE_READ(task, nsproxy, mnt_ns, ns.inum);
	if (file) {
		struct inode *ino = BPF_CORE_READ(file, f_inode);
		e->dev = BPF_CORE_READ(ino, i_sb, s_dev);
		e->ino = BPF_CORE_READ(ino, i_ino);
		e->size = BPF_CORE_READ(ino, i_size);
		inode_times(ino, &e->mtime_ns, &e->ctime_ns);
	} else {
		e->dev = e->ino = 0;
		e->size = e->mtime_ns = e->ctime_ns = 0;
	}
	/* The hold of an image on disk not hashed yet (memfd and deleted
	 * images are hold_exe_flags'). */
	if (hold_unseen && file && cur && !(cur->flags & SESSION_F_UNTRACKED) &&
	    !(e->flags & (EXEC_EXE_PSEUDO | EXEC_EXE_DELETED)) &&
	    !image_seen(e->dev, e->ino, e->mtime_ns, e->ctime_ns))
		e->flags |= EXEC_HELD;
	e->recognised = agent;
	if (nested) {
		e->parent_session_pid = prev.root_pid;
		e->parent_session_agent = prev.agent;
		e->parent_session_start = prev.root_start;
	} else {
		e->parent_session_pid = 0;
		e->parent_session_agent = 0;
		e->parent_session_start = 0;
	}
	e->argc = BPF_CORE_READ(bprm, argc);
	e->filename_len = flen;
	e->exe_len = plen;
	e->argv_len = alen;
	e->_pad0 = 0;
	bpf_get_current_comm(e->comm, sizeof(e->comm));

	/* The child's parked fork record: the exec names its parent, so the
	 * fork record is dropped, unless the child was reparented since. */
	struct fork_event parked;
	if (take_parked_fork(tgid, &parked) &&
	    (parked.ppid != e->ppid || parked.parent_start != e->parent_start))
		send_fork(&parked);

	__u32 size = sizeof(*e) + aoff + alen;
	if (size > sizeof(*e) + DATA_SIZE)
		size = sizeof(*e) + DATA_SIZE;
	if (bpf_ringbuf_output(&events, x, size, ringbuf_flags()) < 0) {
		count_lost(EV_EXEC);
		return 0;
	}
	/* SIGSTOP from here is delivered on the return to userspace, before
	 * the new image's first instruction; userspace hashes the image and
	 * sends SIGCONT or SIGKILL through a pidfd (cmd/lineaged hold.go). A
	 * refused signal leaves the process running: the SIGCONT that
	 * follows its record is then harmless. */
	if ((hold_exe_flags || hold_unseen) && (SCRATCH_READ(e->flags) & EXEC_HELD))
		bpf_send_signal(19 /* SIGSTOP */);
	return 0;
}

/*
 * sched_process_fork fires in the parent after copy_process() and before
 * wake_up_new_task(): the child has not run yet, so inheriting the session
 * here means a child can never act outside its parent's session. Threads
 * (CLONE_THREAD) share the tgid and need no entry of their own.
 */
SEC("tp_btf/sched_process_fork")
int BPF_PROG(handle_fork, struct task_struct *parent, struct task_struct *child)
{
	beat(); /* bpf/tamper.h: the programs are firing */
	__u32 ctgid = BPF_CORE_READ(child, tgid);
	if (BPF_CORE_READ(child, pid) != ctgid)
		return 0; /* a thread */

	/* Inherit from the forking process (current), which is what a
	 * daemonising double fork or setsid cannot shed. */
	__u32 ptgid = BPF_CORE_READ(parent, tgid);
	struct session *s = session_of(parent, ptgid);
	struct session copy;
	bool parked_ok = true;
	bool untracked = false;
	if (s) {
		copy = *s;
		/* The child's own start: its key is checked against it. */
		copy.member_start = BPF_CORE_READ(child, start_boottime);
		copy.flags &= ~SESSION_F_START_TICKS;
		if (bpf_map_update_elem(&sessions, &ctgid, &copy, BPF_ANY) != 0) {
			count_lost(LOST_SESSIONS_FULL); /* != 0: see maps.h */
			untracked = true;
		}
		s = &copy;
	} else {
		/* A key the child's pid still has from a process whose exit
		 * was not seen: the child is no member. (session_of would
		 * reject it by start time; this frees the slot at once.) */
		bpf_map_delete_elem(&sessions, &ctgid);
		if (!scope_all)
			return 0;
	}

	/* The forking process's own parked record goes first. */
	unpark_fork(ptgid);

	struct fork_event rec;
	fill_header(&rec.h, EV_FORK, child, s);
	/* The header names the session the child was born in; the flag says
	 * the child is no member of it (enum fork_flags). */
	if (untracked)
		rec.h.flags |= FORK_UNTRACKED;
	/* The child's start_boottime was set in copy_process(); its
	 * group_leader is itself. real_parent differs from the forker only
	 * with CLONE_PARENT. */
	struct task_struct *rp = BPF_CORE_READ(child, real_parent);
	rec.ppid = BPF_CORE_READ(rp, tgid);
	rec._pad0 = 0;
	rec.parent_start = leader_start(rp);
	/* Parked until the child execs or does anything else reported
	 * (bpf/lib/forks.h). A member the sessions map could not hold is
	 * not parked: in session scope nothing of it would take the record,
	 * and in scope all its exec would drop the one record that says it
	 * is untracked. Nor is the child of a multi-threaded parent: when
	 * such a group exits at once, the forking thread can reach its exit
	 * tracepoint, which sends its parked children, after the last thread
	 * has sent the group's exit record. Shells, which start most
	 * children, have one thread. */
	if (untracked || BPF_CORE_READ(parent, signal, nr_threads) > 1)
		parked_ok = false;
	if (!parked_ok || bpf_map_update_elem(&parked_forks, &ctgid, &rec, BPF_ANY) != 0)
		send_fork(&rec);
	return 0;
}

/*
 * sched_process_exit fires in do_exit() for every thread, after
 * signal->live was decremented and exit_code set. live == 0 means this is
 * the last thread of the group. (6.16+ passes group_dead as a second
 * argument; reading live works on every kernel.) Two threads exiting at once
 * can both see 0: for session members the map delete, which succeeds once,
 * decides who reports.
 */
SEC("tp_btf/sched_process_exit")
int BPF_PROG(handle_exit, struct task_struct *task)
{
	/* Children are linked to the thread that forked them. Every exiting
	 * thread sends its own parked children first: after this tracepoint
	 * its exit hands them to another live thread, or, when the whole
	 * group is exiting at once (exit_group), to the reaper, where the
	 * last thread's walk below would miss them. */
	unpark_children(bpf_get_current_task());
	beat(); /* bpf/tamper.h: every exiting thread */
	/* The sensor killed or crashed: its first exiting thread reports it
	 * (bpf/tamper.h; a graceful stop unregisters first). */
	tamper_exit(task, BPF_CORE_READ(task, tgid));
	if (BPF_CORE_READ(task, signal, live.counter) != 0)
		return 0;

	__u32 tgid = BPF_CORE_READ(task, tgid);
	/* A child that never exec'd nor did anything reported: its fork
	 * record first (and never left behind in the map). */
	unpark_fork(tgid);
	struct session *s = session_of(task, tgid);
	struct session copy;
	if (s) {
		copy = *s;
		s = &copy;
		if (bpf_map_delete_elem(&sessions, &tgid) != 0)
			return 0; /* another exiting thread reported it */
	} else if (!scope_all) {
		return 0;
	}

	__u32 repeats = take_repeats(tgid, leader_start(task));
	struct exit_event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e) {
		count_lost(EV_EXIT);
		return 0;
	}
	fill_header(&e->h, EV_EXIT, task, s);
	e->exit_code = BPF_CORE_READ(task, exit_code);
	e->repeated_opens = repeats;
	bpf_ringbuf_submit(e, ringbuf_flags());
	return 0;
}
