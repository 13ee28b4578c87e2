// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Tamper refusal, where the kernel runs BPF LSM programs: what bpf/tamper.h
 * reports from syscall tracepoints is refused here, and reported with
 * result -EPERM.
 *
 *   - bpf_map, bpf_prog: an fd on one of the sensor's maps or programs (get
 *     fd by id, or opening a pin) for any process but the sensor and pid 1.
 *     Without an fd no element can be read, changed or deleted. Listing ids
 *     still works. (Links have no LSM hook; a raw tracepoint link cannot be
 *     detached, and its pin and the sensor's fds are what keep it.)
 *   - ptrace_access_check in attach mode: ptrace, process_vm_writev,
 *     pidfd_getfd and writes through /proc/<pid>/mem all check it. Read
 *     mode (ps, top reading /proc) is left alone.
 *
 * With no sensor registered (none running), nothing is refused: the next
 * instance must open the pins.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>

#include "lineaged.h"
#include "maps.h"
#define TAMPER_MAPS_ONLY
#include "tamper.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define EPERM 1
#define PTRACE_MODE_ATTACH_FLAG 0x02

static __always_inline int refuse(__u8 op, __u32 arg, __u8 otype, __u32 oid)
{
	struct sensor_proc *me = self_if_other();
	if (!me)
		return 0;
	if (otype) {
		struct own_key k = {.type = otype, .id = oid};
		if (!bpf_map_lookup_elem(&own_objects, &k))
			return 0;
	}
	if (!tamper_repeat(arg | 0x80000000, otype ? otype : op, oid))
		send_tamper(me, op, arg, 0, -EPERM, otype, oid);
	return -EPERM;
}

SEC("lsm/bpf_map")
int BPF_PROG(tamper_lsm_map, struct bpf_map *map, unsigned int fmode, int ret)
{
	if (ret)
		return ret;
	return refuse(TAMPER_BPF, 0, TAMPER_OBJ_MAP, BPF_CORE_READ(map, id));
}

SEC("lsm/bpf_prog")
int BPF_PROG(tamper_lsm_prog, struct bpf_prog *prog, int ret)
{
	if (ret)
		return ret;
	return refuse(TAMPER_BPF, 0, TAMPER_OBJ_PROG, BPF_CORE_READ(prog, aux, id));
}

SEC("lsm/ptrace_access_check")
int BPF_PROG(tamper_lsm_ptrace, struct task_struct *child, unsigned int mode, int ret)
{
	if (ret)
		return ret;
	if (!(mode & PTRACE_MODE_ATTACH_FLAG))
		return 0;
	struct sensor_proc *me = self_get();
	if (!me || BPF_CORE_READ(child, tgid) != me->tgid)
		return 0;
	return refuse(TAMPER_PTRACE, mode, 0, 0);
}
