// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * File and network events of agent-session members: open, openat, openat2,
 * creat, open_by_handle_at, unlink, rmdir, unlinkat, rename, renameat,
 * renameat2, chmod, fchmod, fchmodat and fchmodat2 (fileio_files.h);
 * truncate, utimes, chown, link, symlink, mknod, mkdir and the xattr calls
 * (fileio_modify.h);
 * connect, addressed sends and listen (fileio_net.h);
 * io_uring_setup (fileio_iouring.h; the requests submitted to a ring are
 * bpf/iouring.bpf.c's).
 *
 * Why tp_btf sys_enter/sys_exit with a syscall-number switch, and not the
 * per-syscall tracepoints (tracepoint/syscalls/sys_enter_openat, ...):
 *  - those attach through perf_event_open with an id read from tracefs, which
 *    is not mounted on every host (nor inside most containers); the raw
 *    tracepoints need no filesystem at all;
 *  - the per-syscall tracepoints are themselves dispatched from this same
 *    sys_enter/sys_exit hook, and attaching either sets
 *    TIF_SYSCALL_TRACEPOINT on every task: every syscall takes the slow
 *    entry/exit path, the dominant cost of both. Beyond that, for a syscall
 *    we do not want they pay a bitmap test where this pays a program call
 *    and a switch; for one we want they first copy the arguments into a
 *    perf record. BenchmarkFileIOOverhead measures it;
 *  - tp_btf gives typed, directly readable pt_regs (no probe_read per arg).
 * The numbers are x86_64's, on arm64 too: fileio_arch.h translates arm64's
 * (the object is built for both). 32-bit (ia32 compat, TS_COMPAT) calls are
 * decoded too: the file ones translated to x86_64 (fileio_compat.h), the
 * network ones in fileio_net.h. x32 is not built into the kernels we know. Requests submitted through io_uring
 * bypass these syscalls: bpf/iouring.bpf.c reports them.
 *
 * Cost outside sessions: the switch, then one lookup of the tgid in
 * `sessions` at enter (a pending-map lookup at exit), nothing else.
 *
 * Paths (walked by bpf/lib/path.h, relative to the process's own root):
 *  - a successful open (and fchmod) reports the path of the opened struct
 *    file, walked in the kernel at exit: relative names, dirfds, symlinks
 *    and ".." are resolved;
 *  - a failed open, unlink*, rename* and chmod/fchmodat report the name as
 *    given, joined to the dirfd's or cwd's walked path when relative, and
 *    marked FILE_F_UNRESOLVED. unlink/rename/chmod build their record at
 *    enter: the object is gone at exit, and a rename can move the very
 *    directory a relative name is resolved against. They read the name
 *    again at exit and resolve /proc links (fileio_files.h);
 *  - an open_by_handle_at reports the file it opened (fileio_files.h).
 * A file of an internal mount (a memfd, pipe or anonymous inode reopened
 * through /proc/<pid>/fd) has no path: its dentry name alone is reported,
 * without a leading "/" ("memfd:name", "" for a pipe).
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>

#include "maps.h"
#include "fileio.h"
#include "fileio_arch.h"
#include "lib/header.h"
#define PATH_SLOTS 2 /* enum scratch_slot: enter and exit */
#include "lib/path.h"
#include "lib/wakeup.h"
#include "lib/shed.h"
#include "lib/forks.h"
#include "lib/opens.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* x86_64 syscall numbers (arch/x86/entry/syscalls/syscall_64.tbl), the
 * numbering inside these programs on every architecture (fileio_arch.h). */
#define NR_open 2
#define NR_connect 42
#define NR_rename 82
#define NR_creat 85
#define NR_unlink 87
#define NR_chmod 90
#define NR_fchmod 91
#define NR_openat 257
#define NR_unlinkat 263
#define NR_renameat 264
#define NR_fchmodat 268
#define NR_renameat2 316
#define NR_openat2 437
#define NR_fchmodat2 452
#define NR_open_by_handle_at 304
#define NR_rmdir 84
#define NR_close 3 /* fileio_fds.h */
#define NR_dup2 33
#define NR_dup3 292
#define NR_close_range 436

#define AT_FDCWD -100
#define O_WRONLY 01
#define O_CREAT 0100
#define O_TRUNC 01000
#define AF_INET 2
#define AF_INET6 10
#define S_IFMT 00170000
#define S_IFSOCK 0140000

/* include/linux/fs.h: set by do_open/atomic_open when this open created the
 * file. It is the kernel's own answer to "created?", race-free, unlike
 * probing for existence at enter or comparing inode times. */
#define FMODE_CREATED (1U << 20)

#define DATA_MASK (FIO_DATA_MAX - 1)

#define FILE_EVENT_FIXED __builtin_offsetof(struct file_event, data)

/* Syscall arguments saved at enter for the exit program, per thread. */
struct fio_args {
	struct session sess;
	__u64 arg[4];
	__u64 how_flags; /* openat2 */
	__u64 how_mode;
	__u32 nr;
	__u32 _pad0;
	__u64 t0; /* boot ns at sys_enter (fileio_fds.h) */
	__u64 seq; /* fd_stamp() at sys_enter; 0: not entered */
};

/*
 * tid -> arguments of the syscall in flight (opens, fchmod).
 * A plain preallocated hash, not an LRU: an LRU would silently evict the
 * entry of a thread still inside its syscall (its per-CPU free lists make
 * that happen well before the map is full on many-CPU hosts); a full hash
 * fails the update, which is counted as a loss. An entry whose exit never
 * ran (the sensor attached mid-syscall) is overwritten by the next syscall
 * of the same tid.
 */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, __u32);
	__type(value, struct fio_args);
} fio_args SEC(".maps");

/* Opens and fchmods of members whose entry found fio_args full (threads
 * parked inside opens can fill it: a FIFO with no writer, a FUSE file
 * that never answers). Such a call is not dropped: the exit program
 * decodes it from the registers, where x86_64 and arm64 keep the
 * arguments (fileio_arch.h), and a start time a second before its exit
 * (fd_changed can then be set where no descriptor changed, never missed).
 * Nonzero once any call overflowed: only then does an exit without an
 * entry cost a membership lookup. Userspace reads it (Stats). */
__u64 fio_args_full = 0;

/* The exit program's copy of an overflowed call's arguments, per CPU. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct fio_args);
} fio_args_exit SEC(".maps");

/* The walker's buffer holds FIO_PATH_MAX bytes walked backwards, then
 * room for a caller's name read right after its directory. */
_Static_assert(FIO_PATH_MAX == PATH_BUF, "a walked path fills one FIO_PATH_MAX");

/* Per-CPU record scratch, one slot each for the enter and exit programs
 * (and the same slots of path_walks): a raw tracepoint program may be
 * preempted (it only disables migration), and another task's run of the
 * other program on this CPU must not clobber it; the same program does not
 * nest on a CPU (the kernel's recursion guard). */
struct scratch {
	struct file_event ev;
	__u8 trunc; /* the path being built was cut (FILE_F_TRUNCATED) */
};

enum scratch_slot {
	SLOT_ENTER = 0,
	SLOT_EXIT = 1,
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, struct scratch);
} fio_scratch SEC(".maps");

/* The syscall's arguments where x86_64 passes them (an ia32 call's
 * translated, fileio_compat.h; an arm64 call's, fileio_arch.h), per CPU
 * like the scratch records: a copy on sys_enter's stack, with the
 * handlers' frames, passed the 512-byte stack budget on kernels that count
 * subprograms' frames together (6.12 refused 576 bytes). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 2); /* enter, exit */
	__type(key, __u32);
	__type(value, struct sc_args);
} fio_regs SEC(".maps");

/* connect_event is only reserved, never a map value: name it once so its
 * BTF (and the generated Go type) exist. */
const struct connect_event *unused_connect_event __attribute__((unused));

static __always_inline struct file *fd_file(struct task_struct *task, long fd)
{
	struct fdtable *fdt = BPF_CORE_READ(task, files, fdt);
	struct file **fds;
	struct file *f = NULL;

	if (!fdt || fd < 0 || fd >= BPF_CORE_READ(fdt, max_fds))
		return NULL;
	fds = BPF_CORE_READ(fdt, fd);
	bpf_probe_read_kernel(&f, sizeof(f), &fds[fd]);
	return f;
}

/* The path of an opened file: w->buf[*pos, FIO_PATH_MAX). Returns the
 * length. */
static __always_inline __u32 file_path(struct path_walk *w, __u32 slot,
				       struct file *f, struct task_struct *task,
				       __u32 *pos)
{
	__u32 p = path_walk_file(w, slot, FIO_PATH_MAX, f, task);

	if (p >= FIO_PATH_MAX && !(w->flags & PATH_PSEUDO)) {
		p = FIO_PATH_MAX - 1;
		w->buf[p] = '/';
	}
	*pos = p;
	return FIO_PATH_MAX - p;
}

/*
 * A caller's name, made absolute against dfd (or the cwd for AT_FDCWD) when
 * relative: the directory is walked to end with a "/" at
 * buf[FIO_PATH_MAX - 1] and the name is read right after it, so the result
 * is contiguous at w->buf[*pos, ...). Returns the length (may exceed
 * FIO_PATH_MAX - 1; put_path clamps it).
 */
static __always_inline __u32 user_path(struct path_walk *w, __u32 slot, long dfd,
				       const char *uname,
				       struct task_struct *task, __u32 *pos,
				       __u8 *trunc, __u32 *nread)
{
	long n = bpf_probe_read_user_str(&w->buf[FIO_PATH_MAX],
					 FIO_PATH_MAX - 1, uname);
	struct dentry *d;
	struct vfsmount *m;
	__u32 p;

	*pos = FIO_PATH_MAX;
	*nread = n > 0 ? n : 0;
	if (n <= 0)
		return 0;
	if (n >= FIO_PATH_MAX - 1)
		*trunc = 1; /* the kernel refuses it (ENAMETOOLONG) anyway */
	n--;
	if (w->buf[FIO_PATH_MAX] == '/')
		return n;
	if (dfd == AT_FDCWD) {
		d = BPF_CORE_READ(task, fs, pwd.dentry);
		m = BPF_CORE_READ(task, fs, pwd.mnt);
	} else {
		struct file *f = fd_file(task, dfd);

		if (!f) /* bad dirfd: the name as given, still relative */
			return n;
		d = BPF_CORE_READ(f, f_path.dentry);
		m = BPF_CORE_READ(f, f_path.mnt);
	}
	w->buf[FIO_PATH_MAX - 1] = '/';
	p = path_walk(w, slot, FIO_PATH_MAX - 1, d, m, task);
	if (w->flags & PATH_UNREACHABLE)
		*trunc = 1;
	if (p >= FIO_PATH_MAX - 1)
		p = FIO_PATH_MAX - 1; /* the directory is "/" */
	*pos = p;
	return FIO_PATH_MAX - p + n;
}

/* Copies w->buf[pos, pos+len) to ev->data[at, ...), clamping to one path
 * (the head is kept). */
static __always_inline __u16 put_path(struct file_event *ev, __u32 at,
				      struct path_walk *w, __u32 pos, __u32 len,
				      __u8 *trunc)
{
	if (len > FIO_PATH_MAX - 1) {
		len = FIO_PATH_MAX - 1;
		*trunc = 1;
	}
	if (pos > FIO_PATH_MAX)
		return 0;
	/* Re-mask after the compare: clang would otherwise bound a copy of
	 * len, not the register the helper receives. */
	barrier_var(len);
	len &= PATH_MASK;
	barrier_var(at);
	at &= PATH_MASK;
	bpf_probe_read_kernel(&ev->data[at], len, &w->buf[pos & DATA_MASK]);
	return len;
}

static __always_inline int emit_file(struct file_event *ev)
{
	__u32 size = FILE_EVENT_FIXED + (ev->path_len & PATH_MASK) +
		     (ev->new_path_len & PATH_MASK);

	if (size > sizeof(*ev))
		return 0;
	/* An ia32 call (translated, fileio_compat.h). */
	if (current_compat())
		ev->syscall |= FIO_SYSCALL_IA32;
	unpark_fork(bpf_get_current_pid_tgid() >> 32);
	if (shed(ev->hdr.kind, ev->hdr.session_pid, ev->hdr.session_start))
		return 0;
	if (bpf_ringbuf_output(&events, ev, size, ringbuf_flags()))
		count_lost(ev->hdr.kind);
	return 0;
}

static __always_inline struct scratch *get_scratch(__u32 slot)
{
	return bpf_map_lookup_elem(&fio_scratch, &slot);
}

#include "fileio_files.h"

#include "fileio_compat.h"

#include "fileio_fds.h"

#include "fileio_iouring.h"

#include "fileio_net.h"

SEC("tp_btf/sys_enter")
int BPF_PROG(fileio_sys_enter, struct pt_regs *regs, long nr)
{
	struct task_struct *task;
	struct session *s;
	struct fio_args a = {};
	struct sc_args *args;
	__u32 zero = 0;
	__u32 tgid, tid;
	__u64 id;

	nr = arch_nr(nr);
	switch (nr) {
	case NR_open: case NR_openat: case NR_openat2: case NR_creat:
	case NR_open_by_handle_at:
	case NR_fchmod:
	case NR_unlink: case NR_unlinkat: case NR_rmdir:
	case NR_rename: case NR_renameat: case NR_renameat2:
	case NR_chmod: case NR_fchmodat: case NR_fchmodat2:
	FILEMOD_CASES:
		break;
	case NR_close: case NR_dup2: case NR_dup3: case NR_close_range:
		break;
	case NR_io_uring_setup: /* the same number in the i386 table */
		return iouring_setup_enter();
	case NR_connect: case NR32_connect: case NR32_socketcall:
		return net_connect_enter(regs, nr);
	default:
		if (!compat_file_nr(nr) || !current_compat())
			return 0;
	}
	id = bpf_get_current_pid_tgid();
	tgid = id >> 32;
	/* bpf_get_current_task, not _btf: kernels before 5.11 lack it. */
	task = (struct task_struct *)bpf_get_current_task();
	s = session_of(task, tgid);
	if (!s)
		return 0;
	/* The arguments, copied: the handlers read one kind of pointer. */
	args = bpf_map_lookup_elem(&fio_regs, &zero);
	if (!args)
		return 0;
	if (task_compat(task)) {
		long inr = nr;

		nr = compat_file_nr(nr);
		if (!nr)
			return 0;
		compat_regs(args, regs);
		compat_fix_args(inr, args);
	} else {
		sc_native(args, regs);
	}

	switch (nr) {
	case NR_unlink: case NR_unlinkat: case NR_rmdir:
	case NR_rename: case NR_renameat: case NR_renameat2:
	case NR_chmod: case NR_fchmodat: case NR_fchmodat2:
	FILEMOD_CASES:
		return enter_path_op(nr, args, s, task);
	case NR_close: case NR_dup2: case NR_dup3: case NR_close_range:
		return fd_mark_enter(nr, args, tgid);
	}

	a.sess = *s;
	a.nr = nr;
	a.arg[0] = args->di;
	a.arg[1] = args->si;
	a.arg[2] = args->dx;
	a.arg[3] = args->r10;
	a.t0 = bpf_ktime_get_boot_ns();
	a.seq = fd_stamp();
	if (nr == NR_openat2) {
		struct open_how how = {};

		bpf_probe_read_user(&how, sizeof(how), (void *)args->dx);
		a.how_flags = how.flags;
		a.how_mode = how.mode;
	}
	tid = (__u32)id;
	if (bpf_map_update_elem(&fio_args, &tid, &a, BPF_ANY))
		__sync_fetch_and_add(&fio_args_full, 1); /* decoded at exit */
	return 0;
}

static __always_inline int exit_open(struct fio_args *a, long ret,
				     struct task_struct *task)
{
	struct scratch *sc = get_scratch(SLOT_EXIT);
	struct path_walk *w = path_slot(SLOT_EXIT);
	struct file_event *ev;
	const char *name;
	long dfd = AT_FDCWD;
	__u32 pos, len;

	if (!sc || !w)
		return 0;
	ev = &sc->ev;
	sc->trunc = 0;
	fill_header(&ev->hdr, a->nr == NR_fchmod ? EV_CHMOD : EV_OPEN, task,
		    &a->sess);
	ev->result = ret;
	ev->syscall = a->nr;
	ev->fmode = 0;
	ev->fflags = 0;
	ev->xflags = 0;
	ev->split = 0;
	ev->new_split = 0;
	ev->raw_len = 0;
	ev->new_raw_len = 0;
	ev->_pad0 = 0;
	ev->new_path_len = 0;
	file_ident(ev, NULL);
	switch (a->nr) {
	case NR_open:
		name = (const char *)a->arg[0];
		ev->flags = a->arg[1];
		ev->mode = a->arg[2];
		break;
	case NR_creat:
		name = (const char *)a->arg[0];
		ev->flags = O_CREAT | O_WRONLY | O_TRUNC;
		ev->mode = a->arg[1];
		break;
	case NR_openat:
		dfd = (int)a->arg[0];
		name = (const char *)a->arg[1];
		ev->flags = a->arg[2];
		ev->mode = a->arg[3];
		break;
	case NR_openat2:
		dfd = (int)a->arg[0];
		name = (const char *)a->arg[1];
		ev->flags = a->how_flags;
		ev->mode = a->how_mode;
		break;
	case NR_open_by_handle_at:
		/* No name: the file actually opened, from the returned fd. */
		if (!by_handle_open(ev, a, ret, task))
			return 0;
		name = NULL;
		break;
	default: /* fchmod(fd, mode) */
		name = NULL;
		ev->flags = 0;
		ev->mode = a->arg[1];
		break;
	}

	if (ret >= 0 || !name) {
		long fd = name || a->nr == NR_open_by_handle_at ? ret : (int)a->arg[0];
		struct file *f = fd_file(task, fd);

		/* Closed or replaced by another thread meanwhile
		 * (fileio_fds.h): the file read below may not be the one
		 * the call used. */
		if (fd_changed(fd, a->t0, a->seq))
			ev->fflags |= FILE_F_FD_CHANGED;
		if (!f && name)
			goto as_named; /* closed: the name the caller gave */
		if (!f) {
			ev->path_len = 0;
			ev->fflags |= FILE_F_UNRESOLVED;
			return emit_file(ev);
		}
		if (name && !(ev->fflags & FILE_F_FD_CHANGED) &&
		    repeat_open(f, task, ev->flags, a->sess.root_pid))
			return 0;
		ev->fmode = BPF_CORE_READ(f, f_mode);
		file_ident(ev, f);
		if (name && (ev->fmode & FMODE_CREATED))
			ev->fflags |= FILE_F_CREATED;
		len = file_path(w, SLOT_EXIT, f, task, &pos);
		if (w->flags & PATH_UNREACHABLE)
			sc->trunc = 1;
	} else {
		__u32 nread;
as_named:
		ev->fflags |= FILE_F_UNRESOLVED;
		len = user_path(w, SLOT_EXIT, dfd, name, task, &pos, &sc->trunc, &nread);
	}
	ev->path_len = put_path(ev, 0, w, pos, len, &sc->trunc);
	if (sc->trunc)
		ev->fflags |= FILE_F_TRUNCATED;
	return emit_file(ev);
}

/* The arguments of a member's open or fchmod whose entry found fio_args
 * full, from the registers at exit (see fio_args_full); NULL when the
 * caller is no member. */
static __always_inline struct fio_args *args_at_exit(const struct pt_regs *regs, long nr,
						     bool compat)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	struct session *s = session_of(task, bpf_get_current_pid_tgid() >> 32);
	__u32 zero = 0, one = 1;
	struct fio_args *a;
	struct sc_args *c;

	if (!s)
		return NULL;
	a = bpf_map_lookup_elem(&fio_args_exit, &zero);
	c = bpf_map_lookup_elem(&fio_regs, &one);
	if (!a || !c)
		return NULL;
	if (compat)
		compat_regs(c, regs);
	else
		sc_native(c, regs);
	a->sess = *s;
	a->nr = nr;
	a->arg[0] = c->di;
	a->arg[1] = c->si;
	a->arg[2] = c->dx;
	a->arg[3] = c->r10;
	a->how_flags = 0;
	a->how_mode = 0;
	a->t0 = bpf_ktime_get_boot_ns() - FD_MARK_STALE_NS;
	a->seq = 0;
	if (nr == NR_openat2) {
		/* As the caller's memory holds it now, not as the kernel
		 * copied it at entry. */
		struct open_how how = {};

		bpf_probe_read_user(&how, sizeof(how), (void *)c->dx);
		a->how_flags = how.flags;
		a->how_mode = how.mode;
	}
	return a;
}

SEC("tp_btf/sys_exit")
int BPF_PROG(fileio_sys_exit, struct pt_regs *regs, long ret)
{
	long nr = arch_nr(SC_NR(regs));
	struct task_struct *task;
	bool compat = false;
	__u32 tid;

	/* An ia32 file call: its x86_64 number, as at enter. */
	if (compat_file_nr(nr) && current_compat()) {
		nr = compat_file_nr(nr);
		compat = true;
	}
	switch (nr) {
	case NR_close: case NR_dup2: case NR_dup3: case NR_close_range:
		return fd_mark_exit(nr, regs, compat);
	NET_EXIT_CASES:
		return net_sys_exit(regs, nr, ret);
	case NR_io_uring_setup:
		return iouring_setup_exit(regs, ret);
	case NR_open: case NR_openat: case NR_openat2: case NR_creat:
	case NR_open_by_handle_at:
	case NR_fchmod: {
		struct fio_args *a;
		bool entered = true;

		/* Only session members have an entry: this lookup is the
		 * membership test at exit, unless an entry ever found the
		 * table full. */
		tid = (__u32)bpf_get_current_pid_tgid();
		a = bpf_map_lookup_elem(&fio_args, &tid);
		if (!a) {
			if (!*(volatile __u64 *)&fio_args_full)
				return 0;
			a = args_at_exit(regs, nr, compat);
			if (!a)
				return 0;
			entered = false;
		}
		task = (struct task_struct *)bpf_get_current_task();
		if (a->nr == nr)
			exit_open(a, ret, task);
		if (entered)
			bpf_map_delete_elem(&fio_args, &tid);
		return 0;
	}
	case NR_unlink: case NR_unlinkat: case NR_rmdir:
	case NR_rename: case NR_renameat: case NR_renameat2:
	case NR_chmod: case NR_fchmodat: case NR_fchmodat2:
	FILEMOD_CASES:
		return exit_path_op(nr, ret);
	}
	return 0;
}
