/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The sensor watches what is done to it (docs/threat-model.md, Tamper).
 * Userspace writes its own tgid into sensor_self and the ids of its maps,
 * programs and links into own_objects; these programs then report, as
 * EV_TAMPER records naming the actor and its session:
 *
 *   - a signal sent to the sensor (tp_btf/signal_generate), by anyone but
 *     the sensor itself and pid 1 (the service manager's stop), SIGCHLD
 *     excepted (a child's exit);
 *   - the sensor's death while registered (its first thread in
 *     sched_process_exit, hooked from handle_exit), kept in sensor_self
 *     with the last signal sent to it and its sender, for the next
 *     instance to report: a graceful stop clears sensor_self first, so
 *     only a kill or a crash is recorded;
 *   - ptrace and process_vm_writev aimed at the sensor, pidfd_getfd on a
 *     pidfd of the sensor (syscall tracepoints);
 *   - bpf() commands on the sensor's maps, programs or links by another
 *     process: element lookup/update/delete and their batch forms, freeze,
 *     get fd by id, link update and detach. Enumerating ids
 *     (BPF_*_GET_NEXT_ID) and reading object info are not reported.
 *
 * Every record goes to the shared ring buffer, which is pinned and outlives
 * the sensor (sensor/kernel/pin.go): a kill is read by the next instance.
 * Repeats of one (actor, command, object) within a second are not sent
 * again, so a dump of a map is one record, not one per key.
 */
#ifndef LINEAGED_TAMPER_H
#define LINEAGED_TAMPER_H

#include "lineaged.h"
#include "maps.h"
#include "lib/header.h"
#include "lib/wakeup.h"
#include "lib/forks.h"

enum tamper_op {
	TAMPER_SIGNAL = 1,      /* arg: signal, code: si_code, result: signal_generate's */
	TAMPER_SENSOR_EXIT = 2, /* code: the sensor's exit_code */
	TAMPER_PTRACE = 3,      /* arg: ptrace request */
	TAMPER_VM_WRITE = 4,    /* process_vm_writev */
	TAMPER_PIDFD_GETFD = 5, /* arg: the target fd */
	TAMPER_BPF = 6,         /* arg: bpf command, obj_type/obj_id: the object */
};

enum tamper_obj {
	TAMPER_OBJ_MAP = 1,
	TAMPER_OBJ_PROG = 2,
	TAMPER_OBJ_LINK = 3,
};

/* The sensor's own process, written by userspace at start and cleared at a
 * graceful stop. */
struct sensor_proc {
	__u32 tgid;
	__u32 flags; /* SELF_LSM_DENIES */
	__u64 start_ns; /* its start time, at /proc's clock-tick resolution */
	/* The last signal sent to it by another process, and who sent it:
	 * the killer, when it died of it. */
	__u32 killer_tgid;
	__u32 killer_sig;
	__u64 killer_start;
	__u64 killer_session_start;
	__u32 killer_session_pid;
	__u8 killer_agent;
	__u8 _pad1;
	__u16 _pad2;
	/* Its death while registered: kept here, not sent to the ring, which
	 * the dying process could still be reading; the next instance reports
	 * it (sensor/kernel/tamper.go). */
	__u32 dead_tgid;
	__s32 dead_code;
	__u64 dead_start;
	__u64 dead_ktime;
};

/* The LSM programs (bpf/tamper_lsm.bpf.c) refuse bpf() and ptrace on the
 * sensor and report it: the syscall tracepoints then report nothing. */
#define SELF_LSM_DENIES 1

struct own_key {
	__u32 type; /* enum tamper_obj */
	__u32 id;
};

/* EV_TAMPER. The header names the actor (for TAMPER_SENSOR_EXIT, the
 * sensor itself) and its session. */
struct tamper_event {
	struct event_header h;
	__u8 op;        /* enum tamper_op */
	__u8 obj_type;  /* enum tamper_obj, TAMPER_BPF only */
	__u16 _pad0;
	__u32 target_pid;   /* the sensor's tgid */
	__u64 target_start; /* the sensor's start_boottime */
	__u32 arg;
	__s32 code;
	__s32 result;
	__u32 obj_id;
	char comm[16];  /* the actor's */
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct sensor_proc);
} sensor_self SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 256);
	__type(key, struct own_key);
	__type(value, __u8);
} own_objects SEC(".maps");

/* Bumped by the fork program and by the exit program for every exiting
 * thread: userspace sees them firing (the sensor's self-check ends a
 * thread of its own when the host is quiet). Per CPU, summed by userspace. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} heartbeat SEC(".maps");

struct tamper_seen_key {
	__u32 tgid;
	__u32 arg;
	__u32 obj_type;
	__u32 obj_id;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 1024);
	__type(key, struct tamper_seen_key);
	__type(value, __u64);
} tamper_seen SEC(".maps");

#define TAMPER_REPEAT_NS 1000000000ULL
#define SIGCHLD_NR 17
#define SIGNAL_GROUP_EXIT_FLAG 0x00000004 /* linux/sched/signal.h */

static __always_inline void beat(void)
{
	__u32 zero = 0;
	__u64 *n = bpf_map_lookup_elem(&heartbeat, &zero);
	if (n)
		(*n)++;
}

/* The registered sensor, or NULL when none is. */
static __always_inline struct sensor_proc *self_get(void)
{
	__u32 zero = 0;
	struct sensor_proc *me = bpf_map_lookup_elem(&sensor_self, &zero);
	return me && me->tgid ? me : NULL;
}

/* The sensor, when the current task is not it and not pid 1. */
static __always_inline struct sensor_proc *self_if_other(void)
{
	struct sensor_proc *me = self_get();
	if (!me)
		return NULL;
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	if (tgid == me->tgid || tgid == 1)
		return NULL;
	return me;
}

/* A repeat of the same (actor, arg, object) within TAMPER_REPEAT_NS. */
static __always_inline bool tamper_repeat(__u32 arg, __u32 otype, __u32 oid)
{
	struct tamper_seen_key k = {
		.tgid = bpf_get_current_pid_tgid() >> 32,
		.arg = arg,
		.obj_type = otype,
		.obj_id = oid,
	};
	__u64 now = bpf_ktime_get_boot_ns();
	__u64 *last = bpf_map_lookup_elem(&tamper_seen, &k);
	if (last && now - *last < TAMPER_REPEAT_NS)
		return true;
	bpf_map_update_elem(&tamper_seen, &k, &now, BPF_ANY);
	return false;
}

/* One record about the current task acting on the sensor me. */
static __always_inline void send_tamper(struct sensor_proc *me, __u8 op, __u32 arg, __s32 code,
					__s32 result, __u8 otype, __u32 oid)
{
	struct task_struct *t = (struct task_struct *)bpf_get_current_task();
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	struct session *found = current_session();
	struct session copy, *s = NULL;
	if (found) {
		copy = *found;
		s = &copy;
		unpark_fork(tgid); /* its fork record first (bpf/lib/forks.h) */
	}
	struct tamper_event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e) {
		count_lost(EV_TAMPER);
		return;
	}
	fill_header(&e->h, EV_TAMPER, t, s);
	e->op = op;
	e->obj_type = otype;
	e->_pad0 = 0;
	e->target_pid = me->tgid;
	e->target_start = me->start_ns;
	e->arg = arg;
	e->code = code;
	e->result = result;
	e->obj_id = oid;
	bpf_get_current_comm(e->comm, sizeof(e->comm));
	bpf_ringbuf_submit(e, ringbuf_flags());
}

#ifndef TAMPER_MAPS_ONLY
/* Called from handle_exit for every exiting thread. */
static __always_inline void tamper_exit(struct task_struct *task, __u32 tgid)
{
	struct sensor_proc *me = self_get();
	if (!me || me->tgid != tgid)
		return; /* a registered tgid is cleared at its exit: never reused */
	/* The whole group is dying (a fatal signal, exit_group), not one of
	 * its threads ending (the sensor's self-check ends one on purpose). */
	if (!(BPF_CORE_READ(task, signal, flags) & SIGNAL_GROUP_EXIT_FLAG))
		return;
	me->dead_code = BPF_CORE_READ(task, exit_code);
	me->dead_start = me->start_ns;
	me->dead_ktime = bpf_ktime_get_boot_ns();
	me->dead_tgid = tgid;
	me->tgid = 0;
}

SEC("tp_btf/signal_generate")
int BPF_PROG(tamper_signal, int sig, struct kernel_siginfo *info, struct task_struct *task,
	     int group, int result)
{
	struct sensor_proc *me = self_if_other();
	if (!me || sig == SIGCHLD_NR || BPF_CORE_READ(task, tgid) != me->tgid)
		return 0;
	int code = 0;
	/* SEND_SIG_NOINFO and SEND_SIG_PRIV are the pointers 0 and 1 */
	if ((unsigned long)info > 1)
		code = BPF_CORE_READ(info, si_code);
	send_tamper(me, TAMPER_SIGNAL, sig, code, result, 0, 0);
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	struct session *sess = current_session();
	me->killer_tgid = tgid;
	me->killer_sig = sig;
	me->killer_start = leader_start((struct task_struct *)bpf_get_current_task());
	me->killer_session_pid = sess ? sess->root_pid : 0;
	me->killer_session_start = sess ? sess->root_start : 0;
	me->killer_agent = sess ? sess->agent : 0;
	return 0;
}

SEC("tracepoint/syscalls/sys_enter_ptrace")
int tamper_ptrace(struct trace_event_raw_sys_enter *ctx)
{
	struct sensor_proc *me = self_if_other();
	if (!me || (me->flags & SELF_LSM_DENIES) || (__u32)ctx->args[1] != me->tgid)
		return 0;
	if (!tamper_repeat(ctx->args[0], TAMPER_PTRACE, 0))
		send_tamper(me, TAMPER_PTRACE, ctx->args[0], 0, 0, 0, 0);
	return 0;
}

SEC("tracepoint/syscalls/sys_enter_process_vm_writev")
int tamper_vm_write(struct trace_event_raw_sys_enter *ctx)
{
	struct sensor_proc *me = self_if_other();
	if (!me || (me->flags & SELF_LSM_DENIES) || (__u32)ctx->args[0] != me->tgid)
		return 0;
	if (!tamper_repeat(0, TAMPER_VM_WRITE, 0))
		send_tamper(me, TAMPER_VM_WRITE, 0, 0, 0, 0, 0);
	return 0;
}

/* The struct file behind the current task's descriptor fd, or NULL. */
static __always_inline struct file *current_fd(__u32 fd)
{
	struct task_struct *t = (struct task_struct *)bpf_get_current_task();
	struct fdtable *fdt = BPF_CORE_READ(t, files, fdt);
	if (!fdt || fd >= BPF_CORE_READ(fdt, max_fds))
		return NULL;
	struct file **fds = BPF_CORE_READ(fdt, fd);
	struct file *f = NULL;
	bpf_probe_read_kernel(&f, sizeof(f), &fds[fd]);
	return f;
}

/* The global pid number of a struct pid. */
static __always_inline __u32 pid_nr0(struct pid *p)
{
	return p ? BPF_CORE_READ(p, numbers[0].nr) : 0;
}

SEC("tracepoint/syscalls/sys_enter_pidfd_getfd")
int tamper_pidfd_getfd(struct trace_event_raw_sys_enter *ctx)
{
	struct sensor_proc *me = self_if_other();
	if (!me || (me->flags & SELF_LSM_DENIES))
		return 0;
	struct file *f = current_fd(ctx->args[0]);
	if (!f)
		return 0;
	/* A pidfd's struct pid is the file's private data (before pidfs) or
	 * its inode's (pidfs). */
	if (pid_nr0(BPF_CORE_READ(f, private_data)) != me->tgid &&
	    pid_nr0(BPF_CORE_READ(f, f_inode, i_private)) != me->tgid)
		return 0;
	if (!tamper_repeat(ctx->args[1], TAMPER_PIDFD_GETFD, 0))
		send_tamper(me, TAMPER_PIDFD_GETFD, ctx->args[1], 0, 0, 0, 0);
	return 0;
}

/* The id of the BPF object behind the current task's fd, by type. */
static __always_inline __u32 bpf_fd_id(__u32 fd, __u32 type)
{
	struct file *f = current_fd(fd);
	if (!f)
		return 0;
	void *priv = BPF_CORE_READ(f, private_data);
	if (!priv)
		return 0;
	if (type == TAMPER_OBJ_MAP)
		return BPF_CORE_READ((struct bpf_map *)priv, id);
	if (type == TAMPER_OBJ_LINK)
		return BPF_CORE_READ((struct bpf_link *)priv, id);
	return 0;
}

SEC("tracepoint/syscalls/sys_enter_bpf")
int tamper_bpf(struct trace_event_raw_sys_enter *ctx)
{
	struct sensor_proc *me = self_if_other();
	if (!me || (me->flags & SELF_LSM_DENIES))
		return 0;
	__u32 cmd = ctx->args[0];
	void *attr = (void *)ctx->args[1];
	__u32 v = 0, type = 0, id = 0;

	switch (cmd) {
	case BPF_MAP_LOOKUP_ELEM:
	case BPF_MAP_UPDATE_ELEM:
	case BPF_MAP_DELETE_ELEM:
	case BPF_MAP_GET_NEXT_KEY:
	case BPF_MAP_LOOKUP_AND_DELETE_ELEM:
	case BPF_MAP_FREEZE:
		type = TAMPER_OBJ_MAP;
		bpf_probe_read_user(&v, sizeof(v), attr); /* map_fd */
		id = bpf_fd_id(v, type);
		break;
	case BPF_MAP_LOOKUP_BATCH:
	case BPF_MAP_LOOKUP_AND_DELETE_BATCH:
	case BPF_MAP_UPDATE_BATCH:
	case BPF_MAP_DELETE_BATCH:
		type = TAMPER_OBJ_MAP;
		bpf_probe_read_user(&v, sizeof(v), attr + 36); /* batch.map_fd */
		id = bpf_fd_id(v, type);
		break;
	case BPF_LINK_UPDATE:
	case BPF_LINK_DETACH:
		type = TAMPER_OBJ_LINK;
		bpf_probe_read_user(&v, sizeof(v), attr); /* link_fd */
		id = bpf_fd_id(v, type);
		break;
	case BPF_MAP_GET_FD_BY_ID:
		type = TAMPER_OBJ_MAP;
		bpf_probe_read_user(&id, sizeof(id), attr);
		break;
	case BPF_PROG_GET_FD_BY_ID:
		type = TAMPER_OBJ_PROG;
		bpf_probe_read_user(&id, sizeof(id), attr);
		break;
	case BPF_LINK_GET_FD_BY_ID:
		type = TAMPER_OBJ_LINK;
		bpf_probe_read_user(&id, sizeof(id), attr);
		break;
	default:
		return 0;
	}
	if (!id)
		return 0;
	struct own_key k = {.type = type, .id = id};
	if (!bpf_map_lookup_elem(&own_objects, &k))
		return 0;
	if (!tamper_repeat(cmd, type, id))
		send_tamper(me, TAMPER_BPF, cmd, 0, 0, type, id);
	return 0;
}

#endif /* TAMPER_MAPS_ONLY */

#endif /* LINEAGED_TAMPER_H */
