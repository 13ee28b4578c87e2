/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The calls in flight of fileio_files.h (unlink, rename, chmod and the
 * file.modify ops): the record built at enter and completed at exit, keyed
 * by thread. Shared with bpf/path_lsm.bpf.c, whose LSM path hooks add the
 * identity of the object the kernel acts on to the call's record (the
 * loader hands it fileio's map).
 */
#ifndef LINEAGED_FILEIO_PEND_H
#define LINEAGED_FILEIO_PEND_H

#include "fileio.h"

/* What the exit program needs to read the names again. */
struct fio_names {
	__u64 uname[2]; /* the caller's name pointers; uname[1] 0: no new name */
	__s64 dfd[2];
	__u64 hash[2];  /* keyed hash of each name as read; 0: unreadable */
	char raw[2][FIO_RAW_MAX]; /* literal /proc prefixes (FILE_X_PROC) */
	__u32 byfd; /* path is the file of fd dfd[0] (fileio_modify.h) */
	__u32 lit1; /* new_path is a literal, not a name to resolve */
	/* The identity (ev.ino, dev, mnt_id) is the one an LSM path hook saw
	 * (path_lsm.bpf.c): the object the kernel acted on. */
	__u32 hooked;
	__u32 _pad0;
	__u64 seq; /* fd_stamp() at enter (fileio_fds.h) */
};

struct fio_pend {
	struct fio_names nm;
	struct file_event ev;
};

/* tid -> record built at enter (unlink, rename, chmod), completed at exit
 * with the result. Big values (8 KiB): max_entries bounds the session
 * members' threads inside these syscalls at once (fileIOConfig). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 256);
	__type(key, __u32);
	__type(value, struct fio_pend);
} fio_pending SEC(".maps");

#endif /* LINEAGED_FILEIO_PEND_H */
