/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Wire records of the file and network programs (fileio.bpf.c), shared with
 * the Go decoder through bpf2go -type. Explicit padding, no packed structs.
 */
#ifndef LINEAGED_FILEIO_H
#define LINEAGED_FILEIO_H

#include "lineaged.h"

/* Longest path reported, NUL excluded: PATH_MAX - 1 bytes per path. */
#define FIO_PATH_MAX 4096
/* A record carries at most two paths (rename): path then new_path. */
#define FIO_DATA_MAX (2 * FIO_PATH_MAX)
/* Longest /proc link prefix kept as the literal of a resolved name
 * ("/proc/4194304/fd/2147483647" is 27 bytes). */
#define FIO_RAW_MAX 32

/* struct file_event.fflags */
enum file_event_flag {
	/* The open created the file (the kernel set FMODE_CREATED on it). */
	FILE_F_CREATED = 1 << 0,
	/* path did not fit: depth bound or FIO_PATH_MAX; what is kept is the
	 * tail for kernel-resolved paths, the head for paths as given. */
	FILE_F_TRUNCATED = 1 << 1,
	/* path is the name as the caller gave it, joined to the dirfd or cwd,
	 * not resolved from an opened file: "..", "." and symlinks remain. */
	FILE_F_UNRESOLVED = 1 << 2,
	FILE_F_NEW_TRUNCATED = 1 << 3,
	FILE_F_NEW_UNRESOLVED = 1 << 4,
	/* The file was read by descriptor at sys_exit (opens, fchmod) and
	 * another thread closed or replaced that descriptor during the call
	 * (bpf/fileio_fds.h): path and identity are what the descriptor held
	 * then, or, closed, the name as given (FILE_F_UNRESOLVED). */
	FILE_F_FD_CHANGED = 1 << 5,
};

/* In struct file_event.syscall: the call was made through ia32 emulation
 * (int $0x80); the number is its x86_64 equivalent (fileio_compat.h). */
#define FIO_SYSCALL_IA32 0x8000

/* struct file_event.xflags (bpf/fileio_files.h) */
enum file_event_xflag {
	/* unlink/rename/chmod: a name read from the caller's memory at
	 * sys_enter differs from the one read again at sys_exit: another
	 * thread rewrote it during the call, and the path reported (read at
	 * enter) may not be the one the kernel used. */
	FILE_X_NAME_CHANGED = 1 << 0,
	/* A name could not be read from the caller's memory at sys_enter (a
	 * page not resident: MADV_DONTNEED, a file mapping not yet faulted).
	 * The path is the one read at sys_exit, after the kernel faulted the
	 * page in; empty when that failed too. */
	FILE_X_NAME_UNREADABLE = 1 << 1,
	/* path began with a /proc link (/proc/self/fd/N, /proc/<pid>/cwd,
	 * /proc/self/root, ...) that was replaced by what it names; the
	 * literal prefix follows the paths in data (raw_len bytes) and the
	 * rest of the literal is path[split:]. */
	FILE_X_PROC = 1 << 2,
	FILE_X_NEW_PROC = 1 << 3,
	/* path begins with a /proc link that could not be resolved (another
	 * process's, a file with no path): it is the literal as given. */
	FILE_X_AS_GIVEN = 1 << 4,
	FILE_X_NEW_AS_GIVEN = 1 << 5,
	/* Sent at sys_enter: the table of calls in flight (fio_pending) was
	 * full, so the result is unknown and the names were read once. */
	FILE_X_AT_ENTRY = 1 << 6,
	/* open_by_handle_at: no name was given; path is the file opened. */
	FILE_X_BY_HANDLE = 1 << 7,
};

/*
 * EV_OPEN, EV_UNLINK, EV_RENAME, EV_CHMOD. Variable length: the record on
 * the ring buffer stops after data[path_len + new_path_len + raw_len +
 * new_raw_len]: path, new_path, then the literal /proc prefixes of each
 * (FILE_X_PROC); paths are raw bytes, not NUL-terminated, any byte but NUL
 * and with no UTF-8 promise.
 */
struct file_event {
	struct event_header hdr;
	__s32 result;       /* fd (opens) or 0, or -errno */
	__u32 flags;        /* open(2) flags; unlinkat, renameat2, fchmodat2 flags */
	__u32 mode;         /* create mode (opens with O_CREAT/O_TMPFILE) or chmod mode */
	__u32 fmode;        /* f_mode of the opened file, 0 when none */
	__u16 path_len;
	__u16 new_path_len; /* rename only */
	__u16 syscall;      /* x86_64 syscall number, | FIO_SYSCALL_IA32 */
	__u8 fflags;        /* enum file_event_flag */
	__u8 xflags;        /* enum file_event_xflag */
	__u16 split;        /* FILE_X_PROC: path[split:] is the literal's tail */
	__u16 new_split;
	__u8 raw_len;       /* FILE_X_PROC: bytes of the literal /proc prefix */
	__u8 new_raw_len;
	__u16 _pad0;
	/* The opened file's identity (opens, fchmod; 0 when there is none):
	 * rules can match a file by it whatever name it was reached by (a
	 * hard link, a bind mount, a chroot). */
	__u64 ino;          /* i_ino */
	__u32 dev;          /* i_sb->s_dev, the kernel's dev_t (major << 20 | minor) */
	__s32 mnt_id;       /* the mount's id, as /proc/<pid>/mountinfo numbers it */
	char data[FIO_DATA_MAX + 2 * FIO_RAW_MAX];
};

/* Network operations (bpf/fileio_net.h), in struct connect_event.op. */
enum net_op {
	NET_OP_CONNECT = 0, /* connect(2) */
	NET_OP_SEND = 1,    /* sendto/sendmsg/sendmmsg naming a destination */
	NET_OP_LISTEN = 2,  /* listen(2): the socket's local address */
};

/* struct connect_event.nflags */
enum net_flag {
	/* The destination is what the caller's memory held at syscall exit,
	 * not the kernel's copy: a failed connect, an addressed send on a
	 * socket that keeps no destination (unconnected UDP). */
	NET_F_FROM_CALLER = 1 << 0,
	/* The destination is the socket's, and the caller's sockaddr at exit
	 * names something else (another address, port or family, or it was
	 * unreadable): it was changed during the call. */
	NET_F_REWRITTEN = 1 << 1,
	/* The caller's sockaddr could not be read at exit (a dropped page). */
	NET_F_UNREADABLE = 1 << 2,
	/* AF_UNIX: path is an abstract name (the leading NUL not included). */
	NET_F_ABSTRACT = 1 << 3,
	/* AF_UNIX: path did not fit NET_PATH_MAX - 1 bytes (the tail is kept when
	 * walked, the head when as given). */
	NET_F_PATH_TRUNC = 1 << 4,
	/* AF_UNIX: path is a name as bound or given, not walked from the
	 * socket file's dentry (relative, deleted, or from the caller). */
	NET_F_PATH_AS_GIVEN = 1 << 5,
	/* Made through ia32 emulation (int $0x80 or a 32-bit program). */
	NET_F_IA32 = 1 << 6,
	/* Made through socketcall(2) (ia32). */
	NET_F_SOCKETCALL = 1 << 7,
	/* A send with MSG_FASTOPEN: TCP Fast Open, a connection without
	 * connect(2). */
	NET_F_FASTOPEN = 1 << 8,
	/* The socket was read by its descriptor when the call returned, and
	 * another thread of the process closed that descriptor or put
	 * another file on it during the call (fileio_fds.h): the record may
	 * describe the socket that took the number, not the one connected. */
	NET_F_FD_CHANGED = 1 << 9,
};

/* AF_UNIX path bytes kept in a record (sun_path is 108; a walked path
 * may be longer). */
#define NET_PATH_MAX 256

/* EV_CONNECT: connect, addressed sends and listen. Fixed size; a record of
 * the first 96 bytes only predates the network operations and is a
 * connect of AF_INET or AF_INET6. */
struct connect_event {
	struct event_header hdr;
	__s32 result;       /* 0, -EINPROGRESS or -errno; sends: bytes sent
			     * (sendmmsg: messages sent) or -errno */
	__u16 family;       /* the destination's family (listen: the
			     * socket's): AF_INET, AF_INET6, AF_UNIX */
	__u16 protocol;     /* sk->sk_protocol: IPPROTO_TCP, IPPROTO_UDP, ... */
	__u16 sock_type;    /* sk->sk_type: SOCK_STREAM, SOCK_DGRAM, ... */
	__u16 dport;        /* host byte order */
	__u16 sport;        /* host byte order, 0 when not bound */
	__u16 sk_family;    /* the socket's family: saddr's layout */
	__u8 daddr[16];     /* AF_INET: first 4 bytes */
	__u8 saddr[16];     /* local address of the socket after connect */
	__u16 op;           /* enum net_op */
	__u16 nflags;       /* enum net_flag */
	__u16 syscall;      /* the number as made (ia32 with NET_F_IA32) */
	__u16 path_len;     /* AF_UNIX: bytes in path */
	__u32 count;        /* listen: backlog; sendmmsg: vector length */
	__u32 _pad1;
	char path[NET_PATH_MAX]; /* AF_UNIX: not NUL-terminated */
};

/* io_uring records (struct iouring_event.op). */
enum iouring_op {
	IOU_OP_SETUP = 0,  /* io_uring_setup(2) returned (result: fd or -errno) */
	IOU_OP_SUBMIT = 1, /* a request was submitted to a ring */
};

/* struct iouring_event.uflags */
enum iouring_flag {
	/* Submitted by the ring's SQPOLL kernel thread (a PF_IO_WORKER of
	 * the owner's thread group), not by a syscall of the owner. */
	IOU_F_SQPOLL_THREAD = 1 << 0,
	/* path and new_path are the names as the request gave them (the
	 * kernel's copy made by the opcode's prep), not resolved: relative
	 * to dfd, with "..", "." and symlinks. Set whenever a path is. */
	IOU_F_PATH_AS_GIVEN = 1 << 1,
	IOU_F_PATH_TRUNC = 1 << 2,     /* path did not fit IOU_PATH_MAX - 1 */
	IOU_F_NEW_PATH_TRUNC = 1 << 3, /* new_path did not fit */
	/* io_uring_setup made through ia32 emulation. */
	IOU_F_IA32 = 1 << 4,
	/* The address is what the caller's memory held at submission, not
	 * the kernel's copy (kernels whose connect prep keeps none). */
	IOU_F_ADDR_FROM_CALLER = 1 << 5,
	/* From the io_uring_submit_sqe tracepoint (5.5-5.19): the request
	 * is not prepared yet, so no path, fd or address is read. */
	IOU_F_TP_SQE = 1 << 6,
	/* setup: the io_uring_params could not be read (setup_flags 0). */
	IOU_F_UNREADABLE = 1 << 7,
	/* A send whose destination could not be known (no prepared message
	 * on this kernel): reported in case it names one. */
	IOU_F_SEND_UNKNOWN = 1 << 8,
	/* fd is an index in the ring's registered files (IOSQE_FIXED_FILE). */
	IOU_F_FIXED_FILE = 1 << 9,
	/* setup: deny_io_uring is on; the member was sent SIGKILL at the
	 * call's entry (bpf/fileio_iouring.h). */
	IOU_F_KILLED = 1 << 10,
};

/* Name bytes kept per path of an io_uring record: IOU_PATH_MAX - 1. */
#define IOU_PATH_MAX 512

/* EV_IOURING. Fixed size. */
struct iouring_event {
	struct event_header hdr;
	__s32 result;       /* setup: the ring's fd or -errno; submit: 0 */
	__u32 entries;      /* setup: the entries argument */
	__u32 setup_flags;  /* setup: io_uring_params.flags (IORING_SETUP_*) */
	__s32 fd;           /* submit: the request's fd (a fixed-file index
			     * with IOU_F_FIXED_FILE), -1 when not read */
	__s32 dfd;          /* submit, named ops: the directory fd as given */
	__u32 open_flags;   /* openat/openat2: open flags; unlinkat,
			     * renameat, linkat: their flags */
	__u32 mode;         /* openat/openat2/mkdirat: the mode */
	__u16 uflags;       /* enum iouring_flag */
	__u8 op;            /* enum iouring_op */
	__u8 opcode;        /* submit: IORING_OP_* */
	__u64 user_data;    /* submit: the request's user_data */
	__u16 family;       /* connect, bind, sends: the address's family */
	__u16 port;         /* host byte order */
	__u16 path_len;
	__u16 new_path_len;
	__u8 addr[16];      /* AF_INET: first 4 bytes */
	char path[IOU_PATH_MAX];     /* not NUL-terminated; AF_UNIX: sun_path */
	char new_path[IOU_PATH_MAX]; /* renameat, linkat, symlinkat */
};

#endif /* LINEAGED_FILEIO_H */
