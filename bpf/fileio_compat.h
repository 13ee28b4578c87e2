/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * ia32 emulation for the file programs (fileio.bpf.c): a 32-bit program, or
 * a 64-bit one executing int $0x80, makes its syscalls with i386 numbers
 * and arguments in ebx, ecx, edx, esi, edi, ebp (the task has TS_COMPAT
 * while in the call). The file syscalls traced are translated to their
 * x86_64 numbers and a pt_regs with the arguments where x86_64 has them,
 * so every handler decodes them once; emit_file marks the record's syscall
 * field with FIO_SYSCALL_IA32 (TS_COMPAT holds for the whole call). The
 * network calls decode ia32 themselves (fileio_net.h).
 *
 * Cost outside sessions: the numbers below that are also x86_64 syscalls
 * and not traced as such (5 fstat, 6 lstat, 8 lseek, 9 mmap, 10 mprotect, 14
 * rt_sigprocmask, 15 rt_sigreturn, 30 shmat, 38 setitimer, 39 getpid, 63 uname, 95
 * umask, 182 putpmsg, 193 fgetxattr, 194 listxattr, 207 io_destroy, 212
 * lookup_dcookie, 226 timer_delete, 227 clock_settime, 228 clock_gettime
 * (the vDSO usually answers it), 236 vserver, 237 mbind, 271 ppoll,
 * 295 preadv, 296 pwritev, 297 rt_tgsigqueueinfo, 298 perf_event_open,
 * 299 recvmmsg, 301 fanotify_mark, 302 prlimit64, 303 name_to_handle_at,
 * 306 syncfs, 320 kexec_file_load, 330 pkey_alloc; the rest are file calls traced
 * anyway) pay a read of the task's status at enter and exit before they
 * are let go. i386's lchown16 (16) is not translated: it is x86_64's
 * ioctl, too hot to pay that read on every call; lchown32 (198) is.
 */
#ifndef LINEAGED_FILEIO_COMPAT_H
#define LINEAGED_FILEIO_COMPAT_H

#if defined(__TARGET_ARCH_x86)

/* The x86_64 number of an i386 file syscall we trace, 0 for any other. */
static __always_inline long compat_file_nr(long nr)
{
	switch (nr) {
	case 5: return NR_open;
	case 8: return NR_creat;
	case 10: return NR_unlink;
	case 15: return NR_chmod;
	case 38: return NR_rename;
	case 40: return NR_rmdir;
	case 94: return NR_fchmod;
	case 295: return NR_openat;
	case 301: return NR_unlinkat;
	case 302: return NR_renameat;
	case 306: return NR_fchmodat;
	case 342: return NR_open_by_handle_at;
	case 353: return NR_renameat2;
	/* fileio_modify.h */
	case 92: return NR_truncate;
	case 93: return NR_ftruncate;
	case 193: return NR_truncate;  /* truncate64 */
	case 194: return NR_ftruncate; /* ftruncate64 */
	case 30: return NR_utime;
	case 271: return NR_utimes;
	case 299: return NR_futimesat;
	case 320: return NR_utimensat;
	case 412: return NR_utimensat; /* utimensat_time64 */
	case 182: return NR_chown;     /* chown16 */
	case 95: return NR_fchown;     /* fchown16 */
	case 212: return NR_chown;     /* chown32 */
	case 207: return NR_fchown;    /* fchown32 */
	case 198: return NR_lchown;    /* lchown32 */
	case 298: return NR_fchownat;
	case 9: return NR_link;
	case 303: return NR_linkat;
	case 83: return NR_symlink;
	case 304: return NR_symlinkat;
	case 14: return NR_mknod;
	case 297: return NR_mknodat;
	case 39: return NR_mkdir;
	case 296: return NR_mkdirat;
	case 226: return NR_setxattr;
	case 227: return NR_lsetxattr;
	case 228: return NR_fsetxattr;
	case 235: return NR_removexattr;
	case 236: return NR_lremovexattr;
	case 237: return NR_fremovexattr;
	case NR_setxattrat: return NR_setxattrat;       /* 463 in both */
	case NR_removexattrat: return NR_removexattrat; /* 466 in both */
	/* fileio_fds.h */
	case 6: return NR_close;
	case 63: return NR_dup2;
	case 330: return NR_dup3;
	case NR_close_range: return NR_close_range; /* 436 in both */
	case NR_openat2: return NR_openat2;     /* 437 in both */
	case NR_fchmodat2: return NR_fchmodat2; /* 452 in both */
	}
	return 0;
}

/* The i386 arguments of regs where x86_64 passes them, zero-extended
 * (pointers are 32-bit; the handlers sign-extend fds and dirfds as int). */
static __always_inline void compat_regs(struct sc_args *c, const struct pt_regs *regs)
{
	c->di = SC_IA32_ARG0(regs);
	c->si = SC_IA32_ARG1(regs);
	c->dx = SC_IA32_ARG2(regs);
	c->r10 = SC_IA32_ARG3(regs);
	c->r8 = SC_IA32_ARG4(regs);
	c->r9 = SC_IA32_ARG5(regs);
}

/* i386 calls whose arguments differ from their x86_64 twin's: the 64-bit
 * length of truncate64/ftruncate64 comes in two registers; chown16 and
 * fchown16 pass 16-bit ids, where 0xffff means "unchanged" (-1). lchown16
 * (16, x86_64's ioctl) is not translated: see the top of this file. */
static __always_inline void compat_fix_args(long inr, struct sc_args *c)
{
	switch (inr) {
	case 193:
	case 194:
		c->si = (__u32)c->si | (c->dx << 32);
		break;
	case 182:
	case 95:
		c->si = (__u16)c->si == 0xffff ? (__u32)-1 : (__u16)c->si;
		c->dx = (__u16)c->dx == 0xffff ? (__u32)-1 : (__u16)c->dx;
		break;
	}
}

#else /* no ia32 on arm64 (fileio_arch.h: AArch32 calls are not decoded) */

static __always_inline long compat_file_nr(long nr)
{
	return 0;
}

static __always_inline void compat_regs(struct sc_args *c, const struct pt_regs *regs)
{
}

static __always_inline void compat_fix_args(long inr, struct sc_args *c)
{
}

#endif

#endif /* LINEAGED_FILEIO_COMPAT_H */
