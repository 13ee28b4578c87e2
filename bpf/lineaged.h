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
	EV_KIND_MAX = 16,
};

/* Agent recognisers: numeric values are ABI (sensor/event.go AgentKind). */
enum agent_kind {
	AGENT_NONE = 0,
	AGENT_CLAUDE_CODE = 1,
	AGENT_CODEX = 2,
	AGENT_GEMINI = 3,
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
	__u8 flags;
	__u16 _pad0;
	__u64 root_start;
};

#endif /* LINEAGED_H */
