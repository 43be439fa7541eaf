// SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
/*
 * Vigil sensor: process exec, fork and exit, from BTF tracepoints only.
 *
 * tp_btf programs are used because they need neither tracefs nor kprobes
 * (fentry, kprobes and BPF-LSM are not available on every node we run on) and
 * they receive typed kernel pointers. Events go to one ring buffer that wakes
 * user space only when WAKEUP_BYTES have accumulated; user space also polls
 * with a timeout, so a quiet node still drains promptly and a busy node costs
 * one wake-up per batch instead of one per event.
 *
 * The layouts of the event structs are mirrored in vigil/sensor/events.py.
 */
#include "vigil_kernel.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>

#define COMM_LEN 16
#define PATH_LEN 256
#define ARGV_LEN 1024

enum event_type {
	EVENT_EXEC = 1,
	EVENT_FORK = 2,
	EVENT_EXIT = 3,
};

enum counter {
	COUNTER_EXEC = 0,
	COUNTER_FORK = 1,
	COUNTER_EXIT = 2,
	COUNTER_FILTERED = 3, /* skipped in the kernel: host process, host tracing off */
	COUNTER_LOST = 4,     /* ring buffer full: the event could not be reserved */
	COUNTER_ARGV_FAULT = 5,
	COUNTER_MAX = 8,
};

enum exec_flag {
	EXEC_ARGV_TRUNCATED = 1,
	EXEC_ARGV_FAULT = 2,
};

struct event_header {
	__u32 type;
	__u32 pid;
	__u32 tgid;
	__u32 ppid;
	__u32 uid;
	__u32 gid;
	__u64 cgroup_id;
	__u64 start_boottime_ns;
	__u64 timestamp_boot_ns;
	__u32 mnt_ns;
	__u32 pid_ns;
	char comm[COMM_LEN];
};

struct exec_event {
	struct event_header h;
	__u64 ino;
	__s64 size;
	__s64 mtime_sec;
	__u32 mtime_nsec;
	__u32 dev;
	__u32 argc;
	__u32 argv_len;
	__u32 flags;
	__u32 _pad;
	char filename[PATH_LEN];
	char interp[PATH_LEN];
	char argv[ARGV_LEN];
};

struct exit_event {
	struct event_header h;
	__s32 exit_code;
	__u32 _pad;
};

struct config {
	__u32 include_host;
	__u32 wakeup_bytes;
	/* Count forks and exits but queue only execs: a shipping sensor uses nothing
	 * else, and each record saved is work saved on the node's busiest path. */
	__u32 exec_only;
};

/* 16 MiB holds ~8,000 execs with their forks and exits: about two seconds of this
 * kind of node's maximum exec rate, so a drain thread held up for that long (CPU
 * starvation under the same flood) still loses nothing. */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 16 * 1024 * 1024);
} events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, COUNTER_MAX);
	__type(key, __u32);
	__type(value, __u64);
} counters SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct config);
} config SEC(".maps");

/* cgroup ids whose processes are the host's: skipped unless include_host is set. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64);
	__type(value, __u8);
} host_cgroups SEC(".maps");

static __always_inline void count(__u32 which)
{
	__u64 *v = bpf_map_lookup_elem(&counters, &which);
	if (v)
		*v += 1;
}

static __always_inline struct config *get_config(void)
{
	__u32 zero = 0;
	return bpf_map_lookup_elem(&config, &zero);
}

/* True when the current task's events should be dropped in the kernel. */
static __always_inline bool filtered(struct config *cfg, __u64 cgroup_id)
{
	if (cfg && cfg->include_host)
		return false;
	if (bpf_map_lookup_elem(&host_cgroups, &cgroup_id)) {
		count(COUNTER_FILTERED);
		return true;
	}
	return false;
}

static __always_inline void fill_header(struct event_header *h, __u32 type,
					struct task_struct *task, __u64 cgroup_id)
{
	h->type = type;
	h->pid = BPF_CORE_READ(task, pid);
	h->tgid = BPF_CORE_READ(task, tgid);
	h->ppid = BPF_CORE_READ(task, real_parent, tgid);
	h->uid = BPF_CORE_READ(task, cred, uid.val);
	h->gid = BPF_CORE_READ(task, cred, gid.val);
	h->cgroup_id = cgroup_id;
	h->start_boottime_ns = BPF_CORE_READ(task, start_boottime);
	h->timestamp_boot_ns = bpf_ktime_get_boot_ns();
	h->mnt_ns = 0;
	h->pid_ns = 0;
	BPF_CORE_READ_STR_INTO(&h->comm, task, comm);
}

/* The task's own namespaces; nsproxy is gone once a task is exiting. */
static __always_inline void fill_namespaces(struct event_header *h, struct task_struct *task)
{
	struct nsproxy *ns = BPF_CORE_READ(task, nsproxy);
	if (!ns)
		return;
	h->mnt_ns = BPF_CORE_READ(ns, mnt_ns, ns.inum);
	/* pid_ns_for_children equals the active pid namespace unless the task
	 * called unshare(CLONE_NEWPID) itself, which container runtimes do not. */
	h->pid_ns = BPF_CORE_READ(ns, pid_ns_for_children, ns.inum);
}

static __always_inline void submit(void *e, struct config *cfg)
{
	__u64 threshold = cfg && cfg->wakeup_bytes ? cfg->wakeup_bytes : 65536;
	__u64 flags = BPF_RB_NO_WAKEUP;
	if (bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA) >= threshold)
		flags = BPF_RB_FORCE_WAKEUP;
	bpf_ringbuf_submit(e, flags);
}

SEC("tp_btf/sched_process_exec")
int BPF_PROG(vigil_exec, struct task_struct *task, int old_pid, struct linux_binprm *bprm)
{
	struct config *cfg = get_config();
	__u64 cgroup_id = bpf_get_current_cgroup_id();
	if (filtered(cfg, cgroup_id))
		return 0;
	count(COUNTER_EXEC);

	struct exec_event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e) {
		count(COUNTER_LOST);
		return 0;
	}
	fill_header(&e->h, EVENT_EXEC, task, cgroup_id);
	fill_namespaces(&e->h, task);

	struct inode *inode = BPF_CORE_READ(bprm, file, f_inode);
	e->ino = BPF_CORE_READ(inode, i_ino);
	e->size = BPF_CORE_READ(inode, i_size);
	e->mtime_sec = BPF_CORE_READ(inode, i_mtime_sec);
	e->mtime_nsec = BPF_CORE_READ(inode, i_mtime_nsec);
	e->dev = BPF_CORE_READ(inode, i_sb, s_dev);
	e->argc = BPF_CORE_READ(bprm, argc);
	e->flags = 0;
	e->_pad = 0;
	bpf_probe_read_kernel_str(&e->filename, sizeof(e->filename), BPF_CORE_READ(bprm, filename));
	bpf_probe_read_kernel_str(&e->interp, sizeof(e->interp), BPF_CORE_READ(bprm, interp));

	/* The new image's argument strings are already in place at this point. */
	unsigned long start = BPF_CORE_READ(task, mm, arg_start);
	unsigned long end = BPF_CORE_READ(task, mm, arg_end);
	unsigned long len = end > start ? end - start : 0;
	if (len > ARGV_LEN) {
		len = ARGV_LEN;
		e->flags |= EXEC_ARGV_TRUNCATED;
	}
	if (bpf_probe_read_user(&e->argv, len, (const void *)start) < 0) {
		len = 0;
		e->flags |= EXEC_ARGV_FAULT;
		count(COUNTER_ARGV_FAULT);
	}
	e->argv_len = len;
	submit(e, cfg);
	return 0;
}

SEC("tp_btf/sched_process_fork")
int BPF_PROG(vigil_fork, struct task_struct *parent, struct task_struct *child)
{
	/* New threads are not new processes: skip them before any other work. */
	if (BPF_CORE_READ(child, pid) != BPF_CORE_READ(child, tgid))
		return 0;
	struct config *cfg = get_config();
	__u64 cgroup_id = bpf_get_current_cgroup_id();
	if (filtered(cfg, cgroup_id))
		return 0;
	count(COUNTER_FORK);
	if (cfg && cfg->exec_only)
		return 0;

	struct event_header *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e) {
		count(COUNTER_LOST);
		return 0;
	}
	fill_header(e, EVENT_FORK, child, cgroup_id);
	/* The child's parent is not linked yet for every clone flavour: name it. */
	e->ppid = BPF_CORE_READ(parent, tgid);
	fill_namespaces(e, child);
	submit(e, cfg);
	return 0;
}

SEC("tp_btf/sched_process_exit")
int BPF_PROG(vigil_exit, struct task_struct *task)
{
	/* Report a process once, when its last thread exits: the kernel has
	 * already decremented signal->live when this tracepoint fires. */
	if (BPF_CORE_READ(task, signal, live.counter) != 0)
		return 0;
	struct config *cfg = get_config();
	__u64 cgroup_id = bpf_get_current_cgroup_id();
	if (filtered(cfg, cgroup_id))
		return 0;
	count(COUNTER_EXIT);
	if (cfg && cfg->exec_only)
		return 0;

	struct exit_event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e) {
		count(COUNTER_LOST);
		return 0;
	}
	fill_header(&e->h, EVENT_EXIT, task, cgroup_id);
	e->exit_code = BPF_CORE_READ(task, exit_code);
	e->_pad = 0;
	submit(e, cfg);
	return 0;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
