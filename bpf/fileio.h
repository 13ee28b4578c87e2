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
};

/*
 * EV_OPEN, EV_UNLINK, EV_RENAME, EV_CHMOD. Variable length: the record on
 * the ring buffer stops after data[path_len + new_path_len]; paths are raw
 * bytes, not NUL-terminated, any byte but NUL and with no UTF-8 promise.
 */
struct file_event {
	struct event_header hdr;
	__s32 result;       /* fd (opens) or 0, or -errno */
	__u32 flags;        /* open(2) flags; unlinkat, renameat2, fchmodat2 flags */
	__u32 mode;         /* create mode (opens with O_CREAT/O_TMPFILE) or chmod mode */
	__u32 fmode;        /* f_mode of the opened file, 0 when none */
	__u16 path_len;
	__u16 new_path_len; /* rename only */
	__u16 syscall;      /* x86_64 syscall number */
	__u8 fflags;        /* enum file_event_flag */
	__u8 _pad0;
	char data[FIO_DATA_MAX];
};

/* EV_CONNECT. Fixed size. */
struct connect_event {
	struct event_header hdr;
	__s32 result;       /* 0, -EINPROGRESS or -errno */
	__u16 family;       /* AF_INET or AF_INET6, from the caller's sockaddr */
	__u16 protocol;     /* sk->sk_protocol: IPPROTO_TCP, IPPROTO_UDP, ... */
	__u16 sock_type;    /* sk->sk_type: SOCK_STREAM, SOCK_DGRAM, ... */
	__u16 dport;        /* host byte order */
	__u16 sport;        /* host byte order, 0 when not bound */
	__u16 sk_family;    /* the socket's family: saddr's layout */
	__u8 daddr[16];     /* AF_INET: first 4 bytes */
	__u8 saddr[16];     /* local address of the socket after connect */
};

#endif /* LINEAGED_FILEIO_H */
