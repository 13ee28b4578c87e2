// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * The identity of the object a member's path call acts on, where the
 * kernel runs BPF LSM programs.
 *
 * The file programs (fileio.bpf.c) see unlink, rename, chmod, chown,
 * truncate and link at the syscall tracepoints, which give the caller's
 * name and no dentry: the name is reported as given (joined to its
 * directory), and a symlink in its directories, a "..", a bind mount or a
 * sibling rewriting the name during the call can make it name another
 * object than the one the kernel changed. The LSM path hooks run inside the
 * call, after the kernel looked the name up, with the dentry it is about to
 * act on. Here each adds that object's identity (inode, device, mount id)
 * to the call's record in flight (fio_pending, fileio's map: the record is
 * sent at the call's exit), so the event names the object changed by
 * identity whatever its name said. The first hook of a call wins (a
 * kernel before 5.19 runs path_rename twice for RENAME_EXCHANGE, the
 * second time with the names swapped).
 *
 * A call with no record in flight (not a member's, or sent at enter
 * because the table was full) is left alone: these programs never add a
 * record, change nothing the kernel decides and always allow.
 *
 * Creating calls (mkdir, mknod, symlink, the new name of link and rename)
 * have no object yet at their hook; their records keep no identity.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>

#include "lineaged.h"
#include "fileio.h"
#include "fileio_pend.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* x86_64 numbers of the file.modify calls these hooks serve (the record's
 * syscall is the x86_64 twin of an ia32 call: fileio_compat.h). */
#define NR_truncate 76
#define NR_link 86
#define NR_chown 92
#define NR_fchown 93
#define NR_lchown 94
#define NR_fchownat 260
#define NR_linkat 265

enum hook_op { HOOK_UNLINK, HOOK_RENAME, HOOK_CHMOD, HOOK_CHOWN, HOOK_TRUNCATE, HOOK_LINK };

/* Whether the record in flight is for the call this hook serves. */
static __always_inline bool serves(const struct file_event *ev, enum hook_op op)
{
	__u16 nr = ev->syscall & ~FIO_SYSCALL_IA32;

	switch (op) {
	case HOOK_UNLINK:
		return ev->hdr.kind == EV_UNLINK;
	case HOOK_RENAME:
		return ev->hdr.kind == EV_RENAME;
	case HOOK_CHMOD:
		return ev->hdr.kind == EV_CHMOD;
	case HOOK_CHOWN:
		return ev->hdr.kind == EV_FILEMOD &&
		       (nr == NR_chown || nr == NR_fchown || nr == NR_lchown || nr == NR_fchownat);
	case HOOK_TRUNCATE:
		return ev->hdr.kind == EV_FILEMOD && nr == NR_truncate;
	case HOOK_LINK:
		return ev->hdr.kind == EV_FILEMOD && (nr == NR_link || nr == NR_linkat);
	}
	return false;
}

static __always_inline int ident(enum hook_op op, struct dentry *d, struct vfsmount *vm)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	struct fio_pend *p = bpf_map_lookup_elem(&fio_pending, &tid);
	struct inode *ino;

	if (!p || p->nm.hooked || !serves(&p->ev, op) || !d || !vm)
		return 0;
	ino = BPF_CORE_READ(d, d_inode);
	if (!ino)
		return 0;
	p->ev.ino = BPF_CORE_READ(ino, i_ino);
	p->ev.dev = BPF_CORE_READ(ino, i_sb, s_dev);
	p->ev.mnt_id = BPF_CORE_READ(container_of(vm, struct mount, mnt), mnt_id);
	p->nm.hooked = 1;
	return 0;
}

SEC("lsm/path_unlink")
int BPF_PROG(path_lsm_unlink, const struct path *dir, struct dentry *dentry)
{
	return ident(HOOK_UNLINK, dentry, BPF_CORE_READ(dir, mnt));
}

SEC("lsm/path_rmdir")
int BPF_PROG(path_lsm_rmdir, const struct path *dir, struct dentry *dentry)
{
	return ident(HOOK_UNLINK, dentry, BPF_CORE_READ(dir, mnt));
}

SEC("lsm/path_rename")
int BPF_PROG(path_lsm_rename, const struct path *old_dir, struct dentry *old_dentry)
{
	return ident(HOOK_RENAME, old_dentry, BPF_CORE_READ(old_dir, mnt));
}

SEC("lsm/path_chmod")
int BPF_PROG(path_lsm_chmod, const struct path *path)
{
	return ident(HOOK_CHMOD, BPF_CORE_READ(path, dentry), BPF_CORE_READ(path, mnt));
}

SEC("lsm/path_chown")
int BPF_PROG(path_lsm_chown, const struct path *path)
{
	return ident(HOOK_CHOWN, BPF_CORE_READ(path, dentry), BPF_CORE_READ(path, mnt));
}

SEC("lsm/path_truncate")
int BPF_PROG(path_lsm_truncate, const struct path *path)
{
	return ident(HOOK_TRUNCATE, BPF_CORE_READ(path, dentry), BPF_CORE_READ(path, mnt));
}

/* link: the existing file is old_dentry, on new_dir's mount (a link
 * cannot cross mounts). */
SEC("lsm/path_link")
int BPF_PROG(path_lsm_link, struct dentry *old_dentry, const struct path *new_dir)
{
	return ident(HOOK_LINK, old_dentry, BPF_CORE_READ(new_dir, mnt));
}
