/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The architecture seam of the file and network programs (fileio.bpf.c,
 * built for amd64 and arm64: sensor/kernel/gen.go).
 *
 * Inside the programs there is one numbering and one argument layout,
 * x86_64's: every handler, the records' syscall field and userspace
 * (sensor/kernel/decode_*.go) speak x86_64 syscall numbers, and a call's
 * arguments are read from the slots where the x86_64 ABI passes them
 * (struct sc_args: di, si, dx, r10, r8, r9 hold arguments 0 to 5). An ia32
 * call is brought to that form by fileio_compat.h; an arm64 call by
 * arch_nr(), which gives the x86_64 number of each arm64 call traced, and
 * sc_native(), which reads x0 to x5. arm64 has no open, creat, unlink,
 * rename, chmod, rmdir, dup2, utime(s), chown, lchown, link, symlink, mknod
 * or mkdir: its C libraries make the *at calls, which are traced.
 *
 * At sys_exit the registers are read through SC_ARG<i>(regs): x86_64's
 * argument registers survive the call; arm64's x0 holds the result there,
 * and orig_x0 the first argument (also set at sys_enter).
 *
 * 32-bit tasks of arm64 (AArch32, TIF_32BIT) make calls of another table;
 * they are not decoded: arch_nr() answers 0 for them.
 */
#ifndef LINEAGED_FILEIO_ARCH_H
#define LINEAGED_FILEIO_ARCH_H

/* A call's arguments where x86_64 passes them: the per-CPU copy made at
 * sys_enter (fio_regs). A plain struct, no CO-RE: it is our own. */
struct sc_args {
	__u64 di;  /* argument 0 */
	__u64 si;  /* 1 */
	__u64 dx;  /* 2 */
	__u64 r10; /* 3 */
	__u64 r8;  /* 4 */
	__u64 r9;  /* 5 */
};

#if defined(__TARGET_ARCH_x86)

#define TS_COMPAT 0x0002

#define SC_ARG0(r) ((r)->di)
#define SC_ARG1(r) ((r)->si)
#define SC_ARG2(r) ((r)->dx)
#define SC_ARG3(r) ((r)->r10)
#define SC_ARG4(r) ((r)->r8)
#define SC_ARG5(r) ((r)->r9)
/* An ia32 call's arguments: ebx, ecx, edx, esi, edi, ebp. */
#define SC_IA32_ARG0(r) ((__u32)(r)->bx)
#define SC_IA32_ARG1(r) ((__u32)(r)->cx)
#define SC_IA32_ARG2(r) ((__u32)(r)->dx)
#define SC_IA32_ARG3(r) ((__u32)(r)->si)
#define SC_IA32_ARG4(r) ((__u32)(r)->di)
#define SC_IA32_ARG5(r) ((__u32)(r)->bp)
/* The number at sys_exit. */
#define SC_NR(r) ((r)->orig_ax)

/* The numbers are x86_64's already. */
static __always_inline long arch_nr(long nr)
{
	return nr;
}

/* An ia32 call (int $0x80, or a 32-bit program): TS_COMPAT holds for the
 * whole call, at enter and at exit. */
static __always_inline bool task_compat(struct task_struct *task)
{
	return BPF_CORE_READ(task, thread_info.status) & TS_COMPAT;
}

#elif defined(__TARGET_ARCH_arm64)

/* arm64's struct pt_regs, the part read here (arch/arm64/include/asm/
 * ptrace.h): regs[] is in an anonymous struct in a union with user_regs,
 * which CO-RE finds by name. */
/* (libbpf's bpf_tracing.h has a pt_regs___arm64 of its own.) */
struct pt_regs___la64 {
	__u64 regs[31];
	__u64 orig_x0;
	__s32 syscallno;
} __attribute__((preserve_access_index));

#define SC_REGS(r) ((const struct pt_regs___la64 *)(r))
#define SC_ARG0(r) (SC_REGS(r)->orig_x0)
#define SC_ARG1(r) (SC_REGS(r)->regs[1])
#define SC_ARG2(r) (SC_REGS(r)->regs[2])
#define SC_ARG3(r) (SC_REGS(r)->regs[3])
#define SC_ARG4(r) (SC_REGS(r)->regs[4])
#define SC_ARG5(r) (SC_REGS(r)->regs[5])
/* No ia32 here: task_compat() is false, so these are never reached. */
#define SC_IA32_ARG0(r) 0
#define SC_IA32_ARG1(r) 0
#define SC_IA32_ARG2(r) 0
#define SC_IA32_ARG3(r) 0
#define SC_IA32_ARG4(r) 0
#define SC_IA32_ARG5(r) 0
#define SC_NR(r) (SC_REGS(r)->syscallno)

/* arch/arm64/include/asm/thread_info.h */
#define TIF_32BIT 22

/* The x86_64 number of an arm64 call traced (include/uapi/asm-generic/
 * unistd.h), 0 for any other and for every call of an AArch32 task. */
static __always_inline long arch_nr(long nr)
{
	long x;

	switch (nr) {
	case 5: x = 188; break;   /* setxattr */
	case 6: x = 189; break;   /* lsetxattr */
	case 7: x = 190; break;   /* fsetxattr */
	case 14: x = 197; break;  /* removexattr */
	case 15: x = 198; break;  /* lremovexattr */
	case 16: x = 199; break;  /* fremovexattr */
	case 24: x = 292; break;  /* dup3 */
	case 33: x = 259; break;  /* mknodat */
	case 34: x = 258; break;  /* mkdirat */
	case 35: x = 263; break;  /* unlinkat */
	case 36: x = 266; break;  /* symlinkat */
	case 37: x = 265; break;  /* linkat */
	case 38: x = 264; break;  /* renameat */
	case 45: x = 76; break;   /* truncate */
	case 46: x = 77; break;   /* ftruncate */
	case 52: x = 91; break;   /* fchmod */
	case 53: x = 268; break;  /* fchmodat */
	case 54: x = 260; break;  /* fchownat */
	case 55: x = 93; break;   /* fchown */
	case 56: x = 257; break;  /* openat */
	case 57: x = 3; break;    /* close */
	case 88: x = 280; break;  /* utimensat */
	case 201: x = 50; break;  /* listen */
	case 203: x = 42; break;  /* connect */
	case 206: x = 44; break;  /* sendto */
	case 211: x = 46; break;  /* sendmsg */
	case 265: x = 304; break; /* open_by_handle_at */
	case 269: x = 307; break; /* sendmmsg */
	case 276: x = 316; break; /* renameat2 */
	case 425:                 /* io_uring_setup */
	case 436:                 /* close_range */
	case 437:                 /* openat2 */
	case 452:                 /* fchmodat2 */
	case 463:                 /* setxattrat */
	case 466:                 /* removexattrat */
		x = nr;
		break;
	default:
		return 0;
	}
	if (BPF_CORE_READ((struct task_struct *)bpf_get_current_task(), thread_info.flags) &
	    (1UL << TIF_32BIT))
		return 0;
	return x;
}

static __always_inline bool task_compat(struct task_struct *task)
{
	return false;
}

#else
#error "fileio is built for x86 (amd64) and arm64 only"
#endif

static __always_inline bool current_compat(void)
{
	return task_compat((struct task_struct *)bpf_get_current_task());
}

/* The native arguments of the raw registers, in the x86_64 slots. */
static __always_inline void sc_native(struct sc_args *c, const struct pt_regs *regs)
{
	c->di = SC_ARG0(regs);
	c->si = SC_ARG1(regs);
	c->dx = SC_ARG2(regs);
	c->r10 = SC_ARG3(regs);
	c->r8 = SC_ARG4(regs);
	c->r9 = SC_ARG5(regs);
}

#endif /* LINEAGED_FILEIO_ARCH_H */
