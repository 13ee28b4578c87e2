/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The file-modifying calls beyond unlink, rename and chmod (included by
 * fileio_files.h after struct fio_pend): truncate, ftruncate, utime,
 * utimes, futimesat, utimensat, chown, fchown, lchown, fchownat, link, linkat, symlink,
 * symlinkat, mknod, mknodat, mkdir, mkdirat, setxattr, lsetxattr,
 * fsetxattr, setxattrat, removexattr, lremovexattr, fremovexattr,
 * removexattrat. One record kind, EV_FILEMOD, whose syscall field says
 * which op it is; they go through the same machinery as unlink, rename and
 * chmod (names read at enter and again at exit, /proc links resolved, sent
 * at enter when fio_pending is full).
 *
 * The fixed fields of an EV_FILEMOD record (struct file_event):
 *  - flags: the call's flags (AT_SYMLINK_NOFOLLOW, AT_EMPTY_PATH, XATTR_*);
 *  - mode: mkdir/mknod mode; chown uid; truncate length, low 32 bits;
 *          setxattr value size;
 *  - fmode: mknod device; chown gid; truncate length, high 32 bits;
 *  - path: the object changed or created; for an fd call (ftruncate,
 *          fchown, fsetxattr, fremovexattr, utimensat/futimesat on a
 *          NULL name) the fd's file walked in the kernel, with its
 *          identity (ino, dev, mnt_id);
 *  - new_path: link: the new name; symlink: the link's content, as given
 *          (not joined to any directory, no /proc link resolved);
 *          setxattr/removexattr: the attribute's name, as given.
 */
#ifndef LINEAGED_FILEIO_MODIFY_H
#define LINEAGED_FILEIO_MODIFY_H

#define NR_truncate 76
#define NR_ftruncate 77
#define NR_mkdir 83
#define NR_link 86
#define NR_symlink 88
#define NR_chown 92
#define NR_fchown 93
#define NR_lchown 94
#define NR_utime 132
#define NR_mknod 133
#define NR_setxattr 188
#define NR_lsetxattr 189
#define NR_fsetxattr 190
#define NR_removexattr 197
#define NR_lremovexattr 198
#define NR_fremovexattr 199
#define NR_utimes 235
#define NR_mkdirat 258
#define NR_mknodat 259
#define NR_fchownat 260
#define NR_futimesat 261
#define NR_linkat 265
#define NR_symlinkat 266
#define NR_utimensat 280
#define NR_setxattrat 463
#define NR_removexattrat 466

#define FILEMOD_CASES                                                        \
	case NR_truncate: case NR_ftruncate:                                  \
	case NR_utime: case NR_utimes: case NR_futimesat: case NR_utimensat:  \
	case NR_chown: case NR_fchown: case NR_lchown: case NR_fchownat:      \
	case NR_link: case NR_linkat: case NR_symlink: case NR_symlinkat:     \
	case NR_mknod: case NR_mknodat: case NR_mkdir: case NR_mkdirat:       \
	case NR_setxattr: case NR_lsetxattr: case NR_fsetxattr:               \
	case NR_setxattrat:                                                   \
	case NR_removexattr: case NR_lremovexattr: case NR_fremovexattr:      \
	case NR_removexattrat

/* A dirfd no int can be: user_path leaves the name as given. */
#define FIO_DFD_LITERAL (1LL << 40)

/* Whether a trailing /proc/self/fd/N of an EV_FILEMOD call names the file
 * it links to (the call follows symlinks) or the link itself. */
static __always_inline bool filemod_follows(const struct file_event *ev)
{
	if (ev->hdr.kind != EV_FILEMOD)
		return false;
	switch (ev->syscall & ~FIO_SYSCALL_IA32) {
	case NR_truncate: case NR_utime: case NR_utimes: case NR_futimesat:
	case NR_utimensat: case NR_chown: case NR_fchownat:
	case NR_setxattr: case NR_removexattr:
	case NR_setxattrat: case NR_removexattrat:
		return true;
	}
	return false;
}

/* The names and fixed fields of an EV_FILEMOD call (see above) from its
 * x86_64 arguments. nm and ev are set as enter_path_op leaves them: no
 * second name, dirfds AT_FDCWD, flags and mode 0. */
static __always_inline void filemod_args(long nr, const struct sc_args *regs,
					 struct fio_names *nm, struct file_event *ev)
{
	ev->fmode = 0;
	switch (nr) {
	case NR_truncate:
	case NR_ftruncate:
		nm->uname[0] = regs->di;
		ev->mode = (__u32)regs->si;
		ev->fmode = (__u32)(regs->si >> 32);
		break;
	case NR_utime:
	case NR_utimes:
	case NR_mkdir:
		nm->uname[0] = regs->di;
		ev->mode = nr == NR_mkdir ? (__u32)regs->si : 0;
		break;
	case NR_futimesat:
	case NR_mkdirat:
		nm->dfd[0] = (int)regs->di;
		nm->uname[0] = regs->si;
		ev->mode = nr == NR_mkdirat ? (__u32)regs->dx : 0;
		break;
	case NR_utimensat:
		nm->dfd[0] = (int)regs->di;
		nm->uname[0] = regs->si;
		ev->flags = (__u32)regs->r10;
		break;
	case NR_chown:
	case NR_fchown:
	case NR_lchown:
		nm->uname[0] = regs->di;
		ev->mode = (__u32)regs->si;
		ev->fmode = (__u32)regs->dx;
		break;
	case NR_fchownat:
		nm->dfd[0] = (int)regs->di;
		nm->uname[0] = regs->si;
		ev->mode = (__u32)regs->dx;
		ev->fmode = (__u32)regs->r10;
		ev->flags = (__u32)regs->r8;
		break;
	case NR_link:
		nm->uname[0] = regs->di;
		nm->uname[1] = regs->si;
		break;
	case NR_linkat:
		nm->dfd[0] = (int)regs->di;
		nm->uname[0] = regs->si;
		nm->dfd[1] = (int)regs->dx;
		nm->uname[1] = regs->r10;
		ev->flags = (__u32)regs->r8;
		break;
	case NR_symlink:
		nm->uname[0] = regs->si;
		nm->uname[1] = regs->di;
		nm->lit1 = 1;
		break;
	case NR_symlinkat:
		nm->dfd[0] = (int)regs->si;
		nm->uname[0] = regs->dx;
		nm->uname[1] = regs->di;
		nm->lit1 = 1;
		break;
	case NR_mknod:
		nm->uname[0] = regs->di;
		ev->mode = (__u32)regs->si;
		ev->fmode = (__u32)regs->dx;
		break;
	case NR_mknodat:
		nm->dfd[0] = (int)regs->di;
		nm->uname[0] = regs->si;
		ev->mode = (__u32)regs->dx;
		ev->fmode = (__u32)regs->r10;
		break;
	case NR_setxattrat:
	case NR_removexattrat:
		nm->dfd[0] = (int)regs->di;
		nm->uname[0] = regs->si;
		ev->flags = (__u32)regs->dx;
		nm->uname[1] = regs->r10;
		nm->lit1 = 1;
		break;
	default: /* [lf]setxattr, [lf]removexattr */
		nm->uname[0] = regs->di;
		nm->uname[1] = regs->si;
		nm->lit1 = 1;
		if (nr == NR_setxattr || nr == NR_lsetxattr || nr == NR_fsetxattr) {
			ev->mode = (__u32)regs->dx;
			ev->flags = (__u32)regs->r8;
		}
		break;
	}
	/* A call on an fd: its first argument, or a NULL name on a dirfd
	 * (utimensat(fd, NULL, ...), futimesat likewise). */
	if (nr == NR_ftruncate || nr == NR_fchown || nr == NR_fsetxattr ||
	    nr == NR_fremovexattr) {
		nm->dfd[0] = (int)regs->di;
		nm->uname[0] = 0;
		nm->byfd = 1;
	} else if ((nr == NR_utimensat || nr == NR_futimesat) && !nm->uname[0]) {
		nm->byfd = 1;
	}
}

/* Path 0 of an fd call (nm.byfd): the fd's file, walked, and its
 * identity; empty and FILE_F_UNRESOLVED when the fd names none. */
static __always_inline int filemod_fd_name(struct fio_pend *p, struct path_walk *w,
					   __u32 slot, struct task_struct *task)
{
	struct file_event *ev = &p->ev;
	struct file *f = fd_file(task, p->nm.dfd[0]);
	__u32 pos, len;
	__u8 trunc = 0;

	if (!f)
		return 0;
	file_ident(ev, f);
	len = file_path(w, slot, f, task, &pos);
	if (w->flags & PATH_UNREACHABLE)
		trunc = 1;
	ev->path_len = put_path(ev, 0, w, pos, len, &trunc);
	ev->fflags &= ~FILE_F_UNRESOLVED;
	if (trunc)
		ev->fflags |= FILE_F_TRUNCATED;
	return 0;
}

#endif /* LINEAGED_FILEIO_MODIFY_H */
