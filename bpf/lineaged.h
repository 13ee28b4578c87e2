/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Wire structs and maps shared by every lineaged BPF program and, through
 * bpf2go -type, by the Go decoder. Defined once here: change a struct here,
 * run `make generate`, and the Go side follows.
 *
 * Every ring-buffer record starts with struct event_header. Explicit padding,
 * no packed structs, so the Go layout equals the C layout on every arch.
 */
#ifndef LINEAGED_H
#define LINEAGED_H

/* Record kinds: numeric values are ABI (sensor/event.go Kind, capture files). */
enum event_kind {
	EV_EXEC = 1,
	EV_FORK = 2,
	EV_EXIT = 3,
	EV_OPEN = 4,
	EV_UNLINK = 5,
	EV_RENAME = 6,
	EV_CHMOD = 7,
	EV_CONNECT = 8,
	/* 9 is KindLoss, synthesised in userspace */
	EV_DENY = 10,
	/* truncate, utimes, chown, link, symlink, mknod, mkdir, setxattr,
	 * removexattr (bpf/fileio_modify.h): the op is the syscall */
	EV_FILEMOD = 11,
	/* io_uring_setup, and requests submitted to a ring whose opcode
	 * opens, creates, removes or renames names or does network
	 * operations (bpf/iouring.bpf.c, bpf/fileio_iouring.h) */
	EV_IOURING = 12,
	EV_TAMPER = 13, /* bpf/tamper.h */
	EV_KIND_MAX = 16,
};

/* Agent recognisers: numeric values are ABI (sensor/event.go AgentKind). */
enum agent_kind {
	AGENT_NONE = 0,
	AGENT_CLAUDE_CODE = 1,
	AGENT_CODEX = 2,
	AGENT_GEMINI = 3,
	AGENT_KIND_MAX = 32,
};

struct event_header {
	__u8 kind;          /* enum event_kind */
	__u8 agent;         /* enum agent_kind of the session, AGENT_NONE outside */
	__u16 flags;
	__u32 cpu;
	__u64 ktime;        /* bpf_ktime_get_boot_ns() */
	__u32 pid;          /* tgid */
	__u32 tid;
	__u64 start_ns;     /* group leader's start_boottime */
	__u32 session_pid;  /* session root's tgid, 0 outside a session */
	__u32 _pad0;
	__u64 session_start; /* session root's start_boottime */
};

/* Value of the sessions map, keyed by tgid. Inherited at fork in the kernel,
 * so a daemonized, setsid'd or reparented descendant stays in its session. */
struct session {
	__u32 root_pid;
	__u8 agent;
	__u8 flags;         /* SESSION_F_* */
	__u16 _pad0;
	__u64 root_start;
	/* The member's own group-leader start_boottime: a key whose process
	 * is not the one that holds the pid now is stale (bpf/maps.h
	 * session_of). In clock ticks' resolution (a multiple of
	 * SESSION_TICK_NS) when SESSION_F_START_TICKS is set (/proc seed). */
	__u64 member_start;
};

#define SESSION_F_START_TICKS 1
/* The member is a usermode helper the kernel ran on a member's behalf, or
 * its descendant (bpf/umh.h). */
#define SESSION_F_UMH 2
/* Never in the map: set on a local copy whose insert failed (the map was
 * full), so the exec record says EXEC_UNTRACKED. */
#define SESSION_F_UNTRACKED 4
#define SESSION_TICK_NS 10000000ULL /* USER_HZ 100: /proc start times */

/* Exec record flags (struct exec_event.flags). */
enum exec_flags {
	EXEC_ARGV_TRUNCATED = 1 << 0,     /* argv longer than ARGV_MAX */
	EXEC_FILENAME_TRUNCATED = 1 << 1, /* bprm->filename longer than FILENAME_MAX */
	/* exe holds the path's leaf end: the walk did not reach a root
	 * (bpf/lib/path.h PATH_UNREACHABLE) or it was longer than EXEC_EXE_MAX */
	EXEC_EXE_TRUNCATED = 1 << 2,
	EXEC_EXE_UNRESOLVED = 1 << 3,     /* no struct file: no exe */
	EXEC_EXE_DELETED = 1 << 4,        /* the file was unlinked: exe is its last path */
	EXEC_EXE_PSEUDO = 1 << 5,         /* no path (memfd): exe is the name, no leading '/' */
	EXEC_EXE_OUTSIDE_ROOT = 1 << 6,   /* not under the task's root: exe is from the namespace's root */
	EXEC_VIA_UMH = 1 << 7,            /* in its session as a usermode helper (bpf/umh.h) */
	/* The header names the session this exec starts (a recognised agent)
	 * or joins (a usermode helper), but the sessions map was full: the
	 * process is no member of it. Counted in LOST_SESSIONS_FULL_EXEC. */
	EXEC_UNTRACKED = 1 << 8,
	/* Held at exec (hold_exe_flags, hashing.hold_exec): the member was
	 * sent SIGSTOP before the new image's first instruction; userspace
	 * hashes the image, then continues or kills it. */
	EXEC_HELD = 1 << 9,
};

/* Bounds of the variable part of an exec record. */
#define EXEC_FILENAME_MAX 512
#define EXEC_EXE_MAX 1024
#define EXEC_ARGV_MAX 4096

/*
 * PROCESS_EXEC: a successful execve/execveat. The fixed part is followed by
 * filename_len bytes of bprm->filename, exe_len bytes of the executable's
 * path (absolute from the process's root, bpf/lib/path.h; see exec_flags)
 * and argv_len bytes of NUL-separated argv (no terminating NULs are counted
 * in filename_len/exe_len).
 */
struct exec_event {
	struct event_header h;
	__u32 ppid;          /* real_parent's tgid */
	__u32 uid;
	__u64 parent_start;  /* real_parent's group leader start_boottime */
	__u32 euid;
	__u32 gid;
	__u32 loginuid;      /* (u32)-1 when unset */
	__u32 sessionid;     /* audit session id, (u32)-1 when unset */
	__u64 cgroup_id;
	__u64 dev;           /* kernel dev_t of the executable's super_block */
	__u64 ino;
	__s64 size;
	__s64 mtime_ns;
	__s64 ctime_ns;
	__u32 parent_session_pid;  /* session the exec'ing task was in before a */
	__u8 parent_session_agent; /* recognised agent exec started a new one   */
	__u8 recognised;     /* enum agent_kind this exec matched, AGENT_NONE if not */
	__u16 flags;         /* enum exec_flags */
	__u64 parent_session_start;
	__u32 argc;          /* bprm->argc: argument count, even when truncated */
	__u16 filename_len;
	__u16 exe_len;
	__u16 argv_len;
	__u16 _pad0;
	__u32 mnt_ns;        /* the mount namespace's inode number (ns.inum) */
	char comm[16];
};

/* Fork record flags (struct fork_event.h.flags; no other fork flag). */
enum fork_flags {
	/* The forker is a session member and the header names its session,
	 * but the child found the sessions map full: it is no member, and
	 * neither is anything it starts. Counted in LOST_SESSIONS_FULL too
	 * (bpf/maps.h), once per such record, and nothing else is. Never
	 * parked. */
	FORK_UNTRACKED = 1 << 0,
};

/* PROCESS_FORK: a new thread group. Header names the child. Not sent for
 * a child whose exec names the same parent (bpf/lib/forks.h), unless it
 * is FORK_UNTRACKED. */
struct fork_event {
	struct event_header h;
	__u32 ppid;          /* real_parent's tgid */
	__u32 _pad0;
	__u64 parent_start;
};

/* PROCESS_EXIT: the last thread of a group exited. */
struct exit_event {
	struct event_header h;
	__u32 exit_code;     /* task->exit_code: (status << 8) | signal | 0x80 core */
	/* read-only opens not reported: the same image had opened the same
	 * file with the same flags before (bpf/fileio.bpf.c), saturated */
	__u32 repeated_opens;
};

/*
 * Agent recognisers, loaded from userspace into the `recognisers` array map
 * (sensor.DefaultRecognisers is the one table; the Go side matches /proc
 * with the same rules). A rule holds when all its matchers hold on the
 * executable's resolved path and, for interpreter rules, when the script
 * argument ends with script_text (`node .../@anthropic-ai/claude-code/cli.js`).
 *
 * An exe matcher tests one path component counted from the leaf (level 0 =
 * file name, 1 = its directory, ...): the first RECOG_COMP_LEN bytes of the
 * component under a mask, so equality and prefix tests are four 64-bit
 * compares and no byte loop. The script suffix is right-aligned in
 * RECOG_SCRIPT_LEN bytes and compared the same way.
 */
#define RECOG_MAX 32
#define RECOG_MATCHERS 6
#define RECOG_LEVELS 8
#define RECOG_COMP_LEN 32
#define RECOG_SCRIPT_LEN 64
#define RECOG_SCRIPT_ARG_MAX 256 /* bytes read of each argv[0..3] */

enum recog_op {
	RECOG_EQ = 1,     /* component equals the text */
	RECOG_PREFIX = 2, /* component starts with the text */
};

/*
 * The program evaluates every slot without branching: an unused slot has
 * len 0 and zero masks and always holds. len_eq is all ones for RECOG_EQ
 * (the component's length must equal len) and 0 for RECOG_PREFIX (it must
 * be at least len), so the length test is arithmetic too.
 */
struct recog_matcher {
	__u8 op;      /* enum recog_op, for readers; 0 marks an unused slot */
	__u8 level;   /* component index from the leaf, < RECOG_LEVELS */
	__u8 len;     /* text length, <= RECOG_COMP_LEN */
	__u8 _pad0;
	__u32 len_eq;
	__u64 mask[RECOG_COMP_LEN / 8];
	__u64 text[RECOG_COMP_LEN / 8];
};

/* argv[0] values that veto a match: an agent binary re-executed as one of
 * its embedded tools (Claude Code runs its own executable as `ugrep`, `rg`,
 * ...) is a helper, not a new session. Exact, zero-padded, < 32 bytes. */
#define RECOG_DENY 6

struct recogniser {
	__u8 agent;       /* enum agent_kind; AGENT_NONE ends the table */
	__u8 script_len;  /* 0: no script condition */
	__u8 deny_n;      /* entries used in deny_argv0 */
	__u8 _pad0;
	__u32 _pad1;
	struct recog_matcher m[RECOG_MATCHERS];
	__u64 script_mask[RECOG_SCRIPT_LEN / 8];
	__u64 script_text[RECOG_SCRIPT_LEN / 8];
	__u64 deny_argv0[RECOG_DENY][RECOG_COMP_LEN / 8];
};

/*
 * Deny-exec (sensor.Config.DenyExec): executables session members must not
 * run. bpf/enforce.h explains the matching; a rule is an absolute path
 * (exact) or a directory prefix ending in '/', zero-padded to
 * DENY_PATH_MAX bytes as the key of the deny_exec hash map.
 */
#define DENY_PATH_MAX 256

struct deny_key {
	char path[DENY_PATH_MAX];
};

struct deny_rule {
	__u32 index; /* position in sensor.Config.DenyExec, echoed in records */
	__u32 _pad0;
};

/* Key of the deny_inodes hash map: the executed file's identity, so a hard
 * link or a bind mount of a denied file (same inode, other path) is denied
 * too, and so is a copy once userspace has hashed it (bpf/enforce.h). dev
 * is the kernel-internal dev_t of the file's superblock (s_dev:
 * major<<20 | minor), which userspace converts from stat(2)'s st_dev. */
struct deny_inode {
	__u64 dev;
	__u64 ino;
};

/* What the kernel did about a denied exec (sensor.DenyAction). */
enum deny_action {
	DENY_BLOCKED = 1,     /* LSM: the exec failed with EPERM, nothing ran */
	DENY_KILLED = 2,      /* tracepoint: SIGKILL queued before the first user instruction */
	DENY_KILL_FAILED = 3, /* tracepoint: bpf_send_signal refused */
};

/* deny_event.h.flags */
#define DENY_PATH_TRUNCATED 1 /* path longer than DENY_PATH_MAX - 1: leading part */

/* EV_DENY: a session member exec'd a denied executable. The header names
 * the exec'ing process. */
struct deny_event {
	struct event_header h;
	__u32 rule;      /* deny_rule.index that matched */
	__u8 action;     /* enum deny_action */
	__u8 _pad0;
	__u16 path_len;  /* bytes used in path, no NUL counted */
	char path[DENY_PATH_MAX];
};

/* Usermode helpers registered with a member's session (bpf/umh.h): the
 * path as the kernel passes it to exec, zero-padded. */
#define UMH_PATH_MAX 256
#define UMH_MAX 64

struct umh_key {
	char path[UMH_PATH_MAX];
};

#endif /* LINEAGED_H */
