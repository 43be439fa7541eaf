// SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
/*
 * Vigil sensor: process exec, fork and exit from BTF tracepoints; file access on
 * watched paths and kernel operations (namespaces, mounts, ptrace, bpf, modules,
 * memfd) from the syscall tracepoints.
 *
 * tp_btf programs are used for processes because they need neither tracefs nor
 * kprobes (fentry, kprobes and BPF-LSM are not available on every node we run on)
 * and they receive typed kernel pointers. Syscalls are traced as sys_enter/sys_exit
 * pairs: the arguments are kept per thread at entry and the event is decided at
 * exit, once the result is known. Everything is filtered here before anything is
 * queued: host cgroups, and for paths the prefix tables user space fills; an open of a package file
 * is matched by the file's (device, inode) in the container's cgroup first, then by path. Events go to one ring buffer that wakes
 * user space only when WAKEUP_BYTES have accumulated; user space also polls
 * with a timeout, so a quiet node still drains promptly and a busy node costs
 * one wake-up per batch instead of one per event.
 *
 * Runtime prevention is decided here too, without a round trip to user space: the exec
 * program kills (bpf_send_signal(SIGKILL)) an exec the cgroup's rule bits forbid before the new
 * program runs its first instruction, and the escape-attempt syscalls are killed at their exit.
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
#define NAME_LEN 64
#define WALK_DEPTH 24
#define OVERLAYFS_SUPER_MAGIC 0x794c7630
#define AT_FDCWD -100

enum event_type {
	EVENT_EXEC = 1,
	EVENT_FORK = 2,
	EVENT_EXIT = 3,
	EVENT_ACTIVITY = 4,
	EVENT_PREVENTED = 5,
};

/* Prevention rules, one bit each, in the order a single exec is reported under when several
 * apply (the lowest bit wins). Mirrored in vigil/sensor/prevention.py (RULE_BITS). */
enum prevent_rule {
	RULE_DENY_LISTED = 1,
	RULE_MEMFD_EXEC = 2,
	RULE_DELETED_EXEC = 4,
	RULE_TMP_EXEC = 8,
	RULE_DRIFT = 16,
	RULE_ESCAPE = 32,
};
#define EXEC_RULES (RULE_DENY_LISTED | RULE_MEMFD_EXEC | RULE_DELETED_EXEC | RULE_TMP_EXEC | RULE_DRIFT)

enum prevent_flag {
	PREVENT_ENFORCE = 1, /* the rule's mode is enforce (else audit) */
	PREVENT_KILLED = 2,  /* SIGKILL was sent */
	PREVENT_UPPER_KNOWN = 4,
	PREVENT_UPPER = 8,
	PREVENT_UNLINKED = 16, /* the exec'd file has no link left: deleted, or a memfd */
	PREVENT_ACTED = 256,   /* in the kernel only: a rule acted (enforce or audit); never in an event */
};

/* Mirrored in vigil/sensor/events.py (ACTIVITY_KINDS). */
enum activity_kind {
	ACT_FILE_WRITE = 1,
	ACT_FILE_READ = 2,
	ACT_FILE_RENAME = 3,
	ACT_FILE_CHMOD = 4,
	ACT_FILE_UNLINK = 5,
	ACT_PTRACE = 6,
	ACT_SETNS = 7,
	ACT_UNSHARE = 8,
	ACT_MOUNT = 9,
	ACT_PIVOT_ROOT = 10,
	ACT_BPF_LOAD = 11,
	ACT_MODULE_LOAD = 12,
	ACT_MEMFD_CREATE = 13,
	ACT_PACKAGE_LOAD = 14, /* an open for read of a package file load_files holds for the cgroup */
	/* Not kinds on the wire: which open it was, decided at exit. */
	ACT_OPEN = 100,
};

enum activity_flag {
	ACT_UPPER_KNOWN = 1,  /* the file is on overlayfs: ACT_UPPER is meaningful */
	ACT_UPPER = 2,        /* ... and it exists on the upper layer */
	ACT_UNRESOLVED = 4,   /* a relative path the kernel did not resolve: user space does */
	ACT_TRUNCATED = 8,    /* the path was longer than PATH_LEN - 1 */
	ACT_IDENTITY = 16,    /* matched in load_files by the opened file's (device, inode), not by path */
	ACT_WORKLOAD = 32,    /* the process is in workload_tasks: its runc:[ name, if any, is its own */
};

/* Values of watch_paths: which kinds of access a prefix is watched for. */
enum watch_flag {
	WATCH_WRITE = 1,
	WATCH_READ = 2,
	WATCH_PROC = 4, /* "/proc/": read-watched only as /proc/<pid>/environ */
};

enum counter {
	COUNTER_EXEC = 0,
	COUNTER_FORK = 1,
	COUNTER_EXIT = 2,
	COUNTER_FILTERED = 3, /* skipped in the kernel: host process, host tracing off */
	COUNTER_LOST = 4,     /* ring buffer full: the event could not be reserved */
	COUNTER_ARGV_FAULT = 5,
	COUNTER_ACTIVITY = 6,        /* activity events queued */
	COUNTER_EXEC_AGGREGATED = 7, /* repeat execs counted in exec_known, not queued */
	COUNTER_PATH_FILTERED = 8,   /* container file accesses on no watched path */
	COUNTER_ACTIVITY_AGGREGATED = 9, /* repeat file activities counted in activity_known */
	COUNTER_PREVENTED = 10,      /* operations killed by a rule in enforce mode */
	COUNTER_AUDITED = 11,        /* operations a rule in audit mode would have killed */
	COUNTER_LOAD_AGGREGATED = 12, /* repeat package loads counted in load_known */
	COUNTER_MAX = 13,
};

enum exec_flag {
	EXEC_ARGV_TRUNCATED = 1,
	EXEC_ARGV_FAULT = 2,
	EXEC_UPPER_KNOWN = 4,
	EXEC_UPPER = 8,
	EXEC_UNLINKED = 16, /* the exec'd file has no link left: deleted, or a memfd */
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
	char dname[NAME_LEN]; /* the exec'd file's own name (memfd:<name> for a memfd) */
};

struct activity_event {
	struct event_header h;
	__u32 kind;
	__u32 flags;
	__s64 result;
	__u64 aux;  /* open flags, mode, CLONE_* flags, prog type, ptrace target pid */
	__u64 aux2; /* mount flags, ptrace request */
	char path[PATH_LEN];
	char path2[PATH_LEN]; /* rename source, mount source, pivot_root put_old */
	char name[NAME_LEN];  /* fstype, memfd name */
	/* Opens: the opened file's identity (device in the kernel's encoding) and the opening
	 * process's executable's; zero for other kinds. */
	__u64 ino;
	__u64 exe_ino;
	__u32 dev;
	__u32 exe_dev;
};

/* An exec user space has already seen in this cgroup; repeats only count here. */
struct exec_key {
	__u64 cgroup_id;
	__u64 ino;
	__s64 mtime_sec;
	__u32 mtime_nsec;
	__u32 dev;
	char filename[PATH_LEN];
	/* The command line: the same binary run with other arguments is another exec, whose
	 * argv the samples must show. */
	char argv[ARGV_LEN];
};

/* Repeats are counted in the slot of the current epoch (config.epoch & 1): user space
 * moves to the next epoch when it closes a batch window and then reads the previous
 * slot, which no exec writes to any more. count only grows (user space takes
 * differences); first_boot_ns restarts when a slot is reused by a later epoch. */
struct exec_slot {
	__u64 count;
	__u64 first_boot_ns;
	__u64 last_boot_ns;
	__u64 epoch;
};

struct exec_count {
	struct exec_slot slot[2];
};

/* A file activity user space has already seen in this cgroup; repeats only count here. */
struct activity_key {
	__u64 cgroup_id;
	__u32 kind;
	__u32 _pad;
	char path[PATH_LEN];
};

/* A package file, by identity, watched in one container cgroup (vigil/sensor/load_identities.py). */
struct load_key {
	__u64 cgroup_id;
	__u64 ino;
	__u32 dev;
	__u32 _pad;
};

/* A package load user space has already recorded: its repeats by the same executable only count. */
struct load_seen {
	struct load_key file;
	__u64 exe_ino;
	__u32 exe_dev;
	__u32 _pad;
};

struct watch_key {
	__u32 prefixlen; /* in bits */
	char data[PATH_LEN];
};

struct watch_value {
	__u32 prefix_flags; /* apply to every path under this prefix */
	__u32 exact_flags;  /* apply only to a path equal to it */
	__u32 len;
	__u32 _pad;
};

struct pending {
	__u32 kind;
	__u32 _pad;
	__u64 args[5];
};

/* Per-CPU working memory: paths are built backwards into buf, then copied. */
struct scratch {
	char buf[1024];
	struct watch_key key;
	struct exec_key exec;
	struct activity_key activity;
};

struct exit_event {
	struct event_header h;
	__s32 exit_code;
	__u32 _pad;
};

/* An operation a prevention rule acted on (enforce) or would have (audit). */
struct prevent_event {
	struct event_header h;
	__u32 rule;   /* one enum prevent_rule bit */
	__u32 flags;  /* enum prevent_flag */
	__u32 op;     /* 0: exec; else the escape syscall's enum activity_kind */
	__s32 signal_result; /* bpf_send_signal's return (0: sent) */
	__u64 ino;
	__s64 size;
	__s64 mtime_sec;
	__u32 mtime_nsec;
	__u32 dev;
	__u64 aux;    /* escape: CLONE_* flags of unshare/setns */
	__u32 argv_len;
	__u32 _pad;
	char filename[PATH_LEN]; /* exec: the path given to execve; escape: the target */
	char interp[PATH_LEN];   /* exec: the file the kernel loaded */
	char dname[NAME_LEN];
	char argv[ARGV_LEN];
};

/* The rules a container's cgroup is under, one enum prevent_rule bit each per mode. */
struct prevent_bits {
	__u32 enforce;
	__u32 audit;
};

/* A file identity whose sha256 user space found on the deny list (or, with a cgroup, drift). */
struct file_id {
	__u64 ino;
	__s64 mtime_sec;
	__u32 mtime_nsec;
	__u32 dev;
};

struct config {
	__u32 include_host;
	__u32 wakeup_bytes;
	/* Count forks and exits but queue only execs: a shipping sensor uses nothing
	 * else, and each record saved is work saved on the node's busiest path. */
	__u32 exec_only;
	/* Trace file access and kernel operations (the syscall programs). */
	__u32 activities;
	/* Count repeat execs found in exec_known instead of queueing them. */
	__u32 exec_aggregation;
	/* The batch window user space is in; selects the exec_known slot. */
	__u32 epoch;
	/* pid 1's mount namespace: an exec or syscall in a container's cgroup but in this namespace
	 * is the runtime's helper entering the container (runc init), never prevented. */
	__u32 host_mnt_ns;
	__u32 _pad;
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

/* Arguments of a traced syscall, from its entry to its exit, per thread. LRU: a thread
 * killed inside a syscall never reaches its exit, and its entry must not hold a slot. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64);
	__type(value, struct pending);
} pending SEC(".maps");

/* Watched path prefixes, filled by user space (vigil/sensor/watch.py). */
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 1024);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct watch_key);
	__type(value, struct watch_value);
} watch_paths SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, struct exec_key);
	__type(value, struct exec_count);
} exec_known SEC(".maps");

/* Never written: a source of zeroes for keys too large for an inline memset. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct exec_key);
} zeroes SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, struct activity_key);
	__type(value, struct exec_count);
} activity_known SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct scratch);
} scratch SEC(".maps");

/* cgroup id -> the prevention rules its processes are under (vigil/sensor/prevention.py). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64);
	__type(value, struct prevent_bits);
} prevent_cgroups SEC(".maps");

/* Identities of files whose sha256 is deny-listed, entered once user space hashed them. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, struct file_id);
	__type(value, __u8);
} deny_files SEC(".maps");

/* A file identity executed in one container cgroup. */
struct drift_key {
	struct file_id file;
	__u64 cgroup_id;
};

/* Identities of files whose sha256 the service knows is not in the image of the container of
 * cgroup_id (it ran there and the image's manifest holds it nowhere), entered once user space
 * hashed them: judged under that cgroup's drift rule. Per cgroup, as the same bytes may be
 * another container's image's own. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, struct drift_key);
	__type(value, __u8);
} drift_files SEC(".maps");

/* The package files of each container's load watch by identity: an open of one is a package load
 * whatever path (a hard link, another bind mount) it was opened by. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, struct load_key);
	__type(value, __u8);
} load_files SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, struct load_seen);
	__type(value, struct exec_count);
} load_known SEC(".maps");

/* Processes that ran a program inside a container (an exec in a container's cgroup, off the host's
 * mount namespace), and their children: tgid -> start time in /proc's clock ticks, so that an entry
 * left by a process whose exit was missed never vouches for a later one given its pid. runc's init
 * stages are never here: they are runc, run from the host side, until they exec the workload. So
 * only a process not in here may be spared as runc by its `runc:[` name, which any process can give
 * itself (prctl PR_SET_NAME). Processes that started before the sensor are entered from /proc. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, __u32);
	__type(value, __u64);
} workload_tasks SEC(".maps");

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

static __always_inline struct scratch *get_scratch(void)
{
	__u32 zero = 0;
	return bpf_map_lookup_elem(&scratch, &zero);
}

/* For a file on overlayfs, whether it exists on the upper layer: created or
 * copied up after the container started. The overlay inode wraps the VFS inode. */
static __always_inline __u32 upper_flags(struct inode *inode, __u32 known, __u32 upper)
{
	if (BPF_CORE_READ(inode, i_sb, s_magic) != OVERLAYFS_SUPER_MAGIC)
		return 0;
	struct ovl_inode *oi = (void *)inode - bpf_core_field_offset(struct ovl_inode, vfs_inode);
	return BPF_CORE_READ(oi, __upperdentry) ? known | upper : known;
}

/* Counts a repeat in the current epoch's slot; false for the first of the epoch, which is
 * queued instead (counted by user space) so that every window's record has a full sample. */
static __always_inline bool count_repeat(struct config *cfg, struct exec_count *c)
{
	__u64 now = bpf_ktime_get_boot_ns();
	__u32 epoch = cfg->epoch;
	struct exec_slot *slot = &c->slot[epoch & 1];
	if (slot->epoch != epoch) {
		slot->epoch = epoch;
		slot->first_boot_ns = now;
		slot->last_boot_ns = now;
		return false;
	}
	__sync_fetch_and_add(&slot->count, 1);
	slot->last_boot_ns = now;
	return true;
}

/* True when this exec repeats one user space has seen (and entered in exec_known):
 * it is counted there and not queued. */
static __always_inline bool exec_repeat(struct config *cfg, struct task_struct *task, struct linux_binprm *bprm,
					struct inode *inode, __u64 cgroup_id)
{
	struct scratch *s = get_scratch();
	if (!s)
		return false;
	struct exec_key *k = &s->exec;
	__u32 zero = 0;
	void *z = bpf_map_lookup_elem(&zeroes, &zero);
	if (!z)
		return false;
	bpf_probe_read_kernel(k, sizeof(*k), z);
	k->cgroup_id = cgroup_id;
	k->ino = BPF_CORE_READ(inode, i_ino);
	k->mtime_sec = BPF_CORE_READ(inode, i_mtime_sec);
	k->mtime_nsec = BPF_CORE_READ(inode, i_mtime_nsec);
	k->dev = BPF_CORE_READ(inode, i_sb, s_dev);
	bpf_probe_read_kernel_str(&k->filename, sizeof(k->filename), BPF_CORE_READ(bprm, filename));
	unsigned long start = BPF_CORE_READ(task, mm, arg_start);
	unsigned long end = BPF_CORE_READ(task, mm, arg_end);
	unsigned long len = end > start ? end - start : 0;
	if (len > ARGV_LEN)
		len = ARGV_LEN;
	if (bpf_probe_read_user(&k->argv, len, (const void *)start) < 0)
		return false;
	struct exec_count *c = bpf_map_lookup_elem(&exec_known, k);
	if (!c || !count_repeat(cfg, c))
		return false;
	count(COUNTER_EXEC_AGGREGATED);
	return true;
}

/* ---- paths from dentries (exec prevention and the syscall programs) ---- */

#define BUF_MASK 511
#define LEN_MASK 255

struct walk_ctx {
	struct dentry *d;
	struct vfsmount *mnt;
	struct dentry *root_d;
	struct vfsmount *root_m;
	int off;
	int status; /* 0 walking, 1 done, -1 did not fit */
};

/* One step up the dentry tree (a bpf_loop callback: verified once, not per iteration). */
static long walk_step(__u64 index, void *arg)
{
	struct walk_ctx *w = arg;
	struct scratch *s = get_scratch();
	if (!s) {
		w->status = -1;
		return 1;
	}
	struct dentry *d = w->d;
	struct vfsmount *mnt = w->mnt;
	if (d == w->root_d && mnt == w->root_m) {
		w->status = 1;
		return 1;
	}
	struct dentry *mroot = BPF_CORE_READ(mnt, mnt_root);
	struct dentry *parent = BPF_CORE_READ(d, d_parent);
	if (d == mroot || d == parent) {
		struct mount *m = (void *)mnt - bpf_core_field_offset(struct mount, mnt);
		struct mount *pm = BPF_CORE_READ(m, mnt_parent);
		if (pm == m || d != mroot) {
			w->status = 1;
			return 1;
		}
		w->d = BPF_CORE_READ(m, mnt_mountpoint);
		w->mnt = (void *)pm + bpf_core_field_offset(struct mount, mnt);
		return 0;
	}
	__u32 len = BPF_CORE_READ(d, d_name.len);
	const unsigned char *name = BPF_CORE_READ(d, d_name.name);
	int off = w->off;
	if (len > LEN_MASK || (int)len + 1 > off) {
		w->status = -1;
		return 1;
	}
	off -= len;
	bpf_probe_read_kernel(&s->buf[off & BUF_MASK], len & LEN_MASK, name);
	off -= 1;
	s->buf[off & BUF_MASK] = '/';
	w->off = off;
	w->d = parent;
	return 0;
}

/* Writes the path of (d, mnt) as the task sees it from its root into s->buf, backwards,
 * ending before offset end; returns where it starts, or -1 when it does not fit. Mount
 * points are crossed to the parent mount, as d_path does. */
static __always_inline int walk(struct task_struct *task, struct dentry *d, struct vfsmount *mnt, int end)
{
	struct walk_ctx w = {
		.d = d,
		.mnt = mnt,
		.root_d = BPF_CORE_READ(task, fs, root.dentry),
		.root_m = BPF_CORE_READ(task, fs, root.mnt),
		.off = end,
		.status = 0,
	};
	bpf_loop(WALK_DEPTH, walk_step, &w, 0);
	return w.status == 1 ? w.off : -1;
}

static __always_inline bool prefixed(const char *s, const char *p, int n)
{
	for (int i = 0; i < n; i++)
		if (s[i] != p[i])
			return false;
	return true;
}

/* Whether a path's first bytes put it under /tmp/, /dev/shm/ or /var/tmp/. */
static __always_inline bool tmp_path(const char *head)
{
	return prefixed(head, "/tmp/", 5) || prefixed(head, "/dev/shm/", 9) || prefixed(head, "/var/tmp/", 9);
}

static __always_inline __u32 task_mnt_ns(struct task_struct *task)
{
	return BPF_CORE_READ(task, nsproxy, mnt_ns, ns.inum);
}

/* The process's start as /proc/PID/stat gives it (USER_HZ is 100 on every architecture Vigil runs on). */
static __always_inline __u64 start_ticks(struct task_struct *task)
{
	return BPF_CORE_READ(task, group_leader, start_boottime) / 10000000;
}

static __always_inline void mark_workload(struct task_struct *task)
{
	__u32 tgid = BPF_CORE_READ(task, tgid);
	__u64 ticks = start_ticks(task);
	bpf_map_update_elem(&workload_tasks, &tgid, &ticks, BPF_ANY);
}

static __always_inline bool is_workload(struct task_struct *task)
{
	__u32 tgid = BPF_CORE_READ(task, tgid);
	__u64 *ticks = bpf_map_lookup_elem(&workload_tasks, &tgid);
	return ticks && *ticks == start_ticks(task);
}

/* runc's own init stages setting a container up: named runc:[N:...] and never a workload's. */
static __always_inline bool runtime_init(struct task_struct *task)
{
	char comm[8] = {};
	bpf_get_current_comm(comm, sizeof(comm));
	return prefixed(comm, "runc:[", 6) && !is_workload(task);
}

/* The cgroup's rule bits that apply to this task; 0 for the runtime's helpers. */
static __always_inline struct prevent_bits *prevent_rules(struct config *cfg, struct task_struct *task,
							  __u64 cgroup_id)
{
	struct prevent_bits *b = bpf_map_lookup_elem(&prevent_cgroups, &cgroup_id);
	if (!b || !(b->enforce | b->audit))
		return 0;
	if (cfg && cfg->host_mnt_ns && task_mnt_ns(task) == cfg->host_mnt_ns)
		return 0;
	return b;
}

/* Of the rules hit, the one to act under: an enforced one first, then by rule order. Kills in
 * enforce mode; returns the event flags (0: no rule hit). */
static __always_inline __u32 act(struct prevent_bits *b, __u32 hit, __u32 *rule, __s32 *signal_result)
{
	__u32 enforced = hit & b->enforce;
	__u32 audited = hit & b->audit;
	if (enforced) {
		*rule = enforced & -enforced;
		*signal_result = bpf_send_signal(9);
		count(COUNTER_PREVENTED);
		return PREVENT_ACTED | PREVENT_ENFORCE | (*signal_result == 0 ? PREVENT_KILLED : 0);
	}
	if (audited) {
		*rule = audited & -audited;
		*signal_result = 0;
		count(COUNTER_AUDITED);
		return PREVENT_ACTED;
	}
	return 0;
}

/* The exec rules' verdict on this exec; emits the prevented event. True when the process was
 * killed: it never runs an instruction of the new program (the signal is pending before the
 * exec returns to user space), so its exec is not reported as having run. */
static __always_inline bool prevent_exec(struct config *cfg, struct task_struct *task, struct linux_binprm *bprm,
					 struct file *file, struct inode *inode, __u64 cgroup_id)
{
	struct prevent_bits *b = prevent_rules(cfg, task, cgroup_id);
	if (!b)
		return false;
	__u32 armed = (b->enforce | b->audit) & EXEC_RULES;
	if (!armed)
		return false;
	__u32 hit = 0;
	__u32 upper = upper_flags(inode, PREVENT_UPPER_KNOWN, PREVENT_UPPER);
	if (upper & PREVENT_UPPER)
		hit |= RULE_DRIFT;
	if (BPF_CORE_READ(inode, i_nlink) == 0) {
		upper |= PREVENT_UNLINKED;
		char name[8] = {};
		bpf_probe_read_kernel_str(name, sizeof(name), BPF_CORE_READ(file, f_path.dentry, d_name.name));
		hit |= prefixed(name, "memfd:", 6) ? RULE_MEMFD_EXEC : RULE_DELETED_EXEC;
	}
	if (armed & (RULE_DENY_LISTED | RULE_DRIFT)) {
		struct drift_key dk = {
			.file = {
				.ino = BPF_CORE_READ(inode, i_ino),
				.mtime_sec = BPF_CORE_READ(inode, i_mtime_sec),
				.mtime_nsec = BPF_CORE_READ(inode, i_mtime_nsec),
				.dev = BPF_CORE_READ(inode, i_sb, s_dev),
			},
			.cgroup_id = cgroup_id,
		};
		if ((armed & RULE_DENY_LISTED) && bpf_map_lookup_elem(&deny_files, &dk.file))
			hit |= RULE_DENY_LISTED;
		if ((armed & RULE_DRIFT) && !(hit & RULE_DRIFT) && bpf_map_lookup_elem(&drift_files, &dk))
			hit |= RULE_DRIFT;
	}
	if (armed & RULE_TMP_EXEC) {
		/* The file the kernel loaded, by its path from the task's root (a relative or
		 * symlinked execve path is resolved so), and for a #! script the script's path. */
		char head[16] = {};
		struct scratch *s = get_scratch();
		if (s) {
			int off = walk(task, BPF_CORE_READ(file, f_path.dentry), BPF_CORE_READ(file, f_path.mnt), 256);
			if (off >= 0 && off < 256) {
				int len = 256 - off;
				bpf_probe_read_kernel(head, sizeof(head), &s->buf[off & BUF_MASK]);
				if (len < 16)
					head[len & 15] = 0;
				if (tmp_path(head))
					hit |= RULE_TMP_EXEC;
			}
		}
		char given[16] = {};
		bpf_probe_read_kernel_str(given, sizeof(given), BPF_CORE_READ(bprm, filename));
		if (tmp_path(given))
			hit |= RULE_TMP_EXEC;
	}
	hit &= armed;
	if (!hit)
		return false;
	__u32 rule = 0;
	__s32 signal_result = 0;
	__u32 flags = act(b, hit, &rule, &signal_result);
	if (!flags)
		return false;
	struct prevent_event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e) {
		count(COUNTER_LOST);
		return flags & PREVENT_KILLED;
	}
	fill_header(&e->h, EVENT_PREVENTED, task, cgroup_id);
	fill_namespaces(&e->h, task);
	e->rule = rule;
	e->flags = (flags & (PREVENT_ENFORCE | PREVENT_KILLED)) | upper;
	e->op = 0;
	e->signal_result = signal_result;
	e->ino = BPF_CORE_READ(inode, i_ino);
	e->size = BPF_CORE_READ(inode, i_size);
	e->mtime_sec = BPF_CORE_READ(inode, i_mtime_sec);
	e->mtime_nsec = BPF_CORE_READ(inode, i_mtime_nsec);
	e->dev = BPF_CORE_READ(inode, i_sb, s_dev);
	e->aux = 0;
	e->_pad = 0;
	bpf_probe_read_kernel_str(&e->dname, sizeof(e->dname), BPF_CORE_READ(file, f_path.dentry, d_name.name));
	bpf_probe_read_kernel_str(&e->filename, sizeof(e->filename), BPF_CORE_READ(bprm, filename));
	bpf_probe_read_kernel_str(&e->interp, sizeof(e->interp), BPF_CORE_READ(bprm, interp));
	unsigned long start = BPF_CORE_READ(task, mm, arg_start);
	unsigned long end = BPF_CORE_READ(task, mm, arg_end);
	unsigned long len = end > start ? end - start : 0;
	if (len > ARGV_LEN)
		len = ARGV_LEN;
	if (bpf_probe_read_user(&e->argv, len, (const void *)start) < 0)
		len = 0;
	e->argv_len = len;
	/* Rare and urgent: user space is woken at once. */
	bpf_ringbuf_submit(e, BPF_RB_FORCE_WAKEUP);
	return flags & PREVENT_KILLED;
}

SEC("tp_btf/sched_process_exec")
int BPF_PROG(vigil_exec, struct task_struct *task, int old_pid, struct linux_binprm *bprm)
{
	struct config *cfg = get_config();
	__u64 cgroup_id = bpf_get_current_cgroup_id();
	if (filtered(cfg, cgroup_id))
		return 0;
	count(COUNTER_EXEC);
	if (!(cfg && cfg->host_mnt_ns && task_mnt_ns(task) == cfg->host_mnt_ns))
		mark_workload(task);
	struct file *file = BPF_CORE_READ(bprm, file);
	struct inode *inode = BPF_CORE_READ(file, f_inode);
	if (prevent_exec(cfg, task, bprm, file, inode, cgroup_id))
		return 0;
	if (cfg && cfg->exec_aggregation && exec_repeat(cfg, task, bprm, inode, cgroup_id))
		return 0;

	struct exec_event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e) {
		count(COUNTER_LOST);
		return 0;
	}
	fill_header(&e->h, EVENT_EXEC, task, cgroup_id);
	fill_namespaces(&e->h, task);

	e->ino = BPF_CORE_READ(inode, i_ino);
	e->size = BPF_CORE_READ(inode, i_size);
	e->mtime_sec = BPF_CORE_READ(inode, i_mtime_sec);
	e->mtime_nsec = BPF_CORE_READ(inode, i_mtime_nsec);
	e->dev = BPF_CORE_READ(inode, i_sb, s_dev);
	e->argc = BPF_CORE_READ(bprm, argc);
	e->flags = upper_flags(inode, EXEC_UPPER_KNOWN, EXEC_UPPER);
	if (BPF_CORE_READ(inode, i_nlink) == 0)
		e->flags |= EXEC_UNLINKED;
	e->_pad = 0;
	bpf_probe_read_kernel_str(&e->dname, sizeof(e->dname), BPF_CORE_READ(file, f_path.dentry, d_name.name));
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
	if (is_workload(parent))
		mark_workload(child);
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
	__u32 tgid = BPF_CORE_READ(task, tgid);
	bpf_map_delete_elem(&workload_tasks, &tgid);
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

/* ---- file access and kernel operations (syscall tracepoints) ---- */

#define O_WRITE_INTENT (01 | 02 | 0100 | 01000) /* O_WRONLY | O_RDWR | O_CREAT | O_TRUNC */
#define O_CREAT_WRONLY_TRUNC (01 | 0100 | 01000)
#define EPERM 1
#define EACCES 13
#define EROFS 30
#define PTRACE_ATTACH 16
#define PTRACE_SEIZE 0x4206
#define BPF_PROG_LOAD 5
#define CLONE_NS_FLAGS (0x00000080 | 0x00020000 | 0x02000000 | 0x04000000 | 0x08000000 | 0x20000000 | 0x40000000)
#define S_IXUGO 0111

struct dots_ctx {
	int n;
	int found;
};

/* Whether byte i of the user path in s->buf[256..] starts a "." component. */
static long dots_step(__u64 i, void *arg)
{
	struct dots_ctx *c = arg;
	struct scratch *s = get_scratch();
	if (!s || (int)i + 1 >= c->n)
		return 1;
	if (s->buf[(256 + i) & BUF_MASK] == '.' && (i == 0 || s->buf[(255 + i) & BUF_MASK] == '/')) {
		c->found = 1;
		return 1;
	}
	return 0;
}

/* Copies s->buf[off, end) into the watch key's data as a C string; returns its length. */
static __always_inline int copy_out(struct scratch *s, int off, int end)
{
	int len = end - off;
	if (len <= 0 || len > LEN_MASK)
		return -1;
	bpf_probe_read_kernel(s->key.data, len & LEN_MASK, &s->buf[off & BUF_MASK]);
	s->key.data[len & LEN_MASK] = 0;
	return len;
}

static __always_inline struct file *fd_file(struct task_struct *task, __s64 fd)
{
	struct fdtable *fdt = BPF_CORE_READ(task, files, fdt);
	if (fd < 0 || fd >= BPF_CORE_READ(fdt, max_fds))
		return 0;
	struct file **fds = BPF_CORE_READ(fdt, fd);
	struct file *f = 0;
	bpf_probe_read_kernel(&f, sizeof(f), &fds[fd]);
	return f;
}

/* The absolute path of an open file descriptor, into s->key.data. */
static __always_inline int fd_path(struct task_struct *task, __s64 fd, struct scratch *s, __u32 *flags)
{
	struct file *f = fd_file(task, fd);
	if (!f)
		return -1;
	*flags |= upper_flags(BPF_CORE_READ(f, f_inode), ACT_UPPER_KNOWN, ACT_UPPER);
	struct dentry *d = BPF_CORE_READ(f, f_path.dentry);
	struct vfsmount *mnt = BPF_CORE_READ(f, f_path.mnt);
	int off = walk(task, d, mnt, 256);
	if (off < 0) {
		*flags |= ACT_TRUNCATED;
		return -1;
	}
	if (off == 256) {
		off = 255;
		s->buf[255] = '/';
	}
	return copy_out(s, off, 256);
}

/* A path as given to a syscall (user memory), made absolute against dirfd or the cwd
 * in the kernel. A path with "." components is left to user space (ACT_UNRESOLVED):
 * the prefix tables only match normalised paths. */
static __always_inline int user_path(struct task_struct *task, __s64 dfd, __u64 upath, struct scratch *s,
				     __u32 *flags)
{
	long n = bpf_probe_read_user_str(&s->buf[256], 256, (const void *)upath);
	if (n <= 1)
		return -1;
	struct dots_ctx dots = {.n = n, .found = 0};
	bpf_loop(255, dots_step, &dots, 0);
	if (dots.found)
		*flags |= ACT_UNRESOLVED;
	if (s->buf[256] == '/')
		return copy_out(s, 256, 256 + n - 1);
	struct dentry *d;
	struct vfsmount *mnt;
	if ((__s32)dfd == AT_FDCWD) {
		d = BPF_CORE_READ(task, fs, pwd.dentry);
		mnt = BPF_CORE_READ(task, fs, pwd.mnt);
	} else {
		struct file *f = fd_file(task, (__s32)dfd);
		if (!f) {
			*flags |= ACT_UNRESOLVED;
			return copy_out(s, 256, 256 + n - 1);
		}
		d = BPF_CORE_READ(f, f_path.dentry);
		mnt = BPF_CORE_READ(f, f_path.mnt);
	}
	int off = walk(task, d, mnt, 255);
	if (off < 0) {
		*flags |= ACT_TRUNCATED;
		return -1;
	}
	s->buf[255] = '/';
	return copy_out(s, off, 256 + n - 1);
}

/* The watch flags of the path in s->key.data (len bytes). */
static __always_inline __u32 watched(struct scratch *s, int len)
{
	s->key.prefixlen = len * 8;
	struct watch_value *v = bpf_map_lookup_elem(&watch_paths, &s->key);
	if (!v)
		return 0;
	__u32 f = v->prefix_flags;
	if (v->len == (__u32)len)
		f |= v->exact_flags;
	if ((f & WATCH_PROC) && len > 8) {
		const char suffix[] = "/environ";
		char diff = 0;
		for (int i = 0; i < 8; i++)
			diff |= s->key.data[(len - 8 + i) & LEN_MASK] ^ suffix[i];
		if (!diff)
			f |= WATCH_READ;
	}
	return f;
}

/* An open file's (inode number, device), as the inode the fd table holds has them. */
static __always_inline void file_identity(struct file *f, __u64 *ino, __u32 *dev)
{
	struct inode *inode = BPF_CORE_READ(f, f_inode);
	*ino = BPF_CORE_READ(inode, i_ino);
	*dev = BPF_CORE_READ(inode, i_sb, s_dev);
}

static __always_inline void open_identities(struct task_struct *task, struct file *f, struct activity_event *e)
{
	file_identity(f, &e->ino, &e->dev);
	struct file *exe = BPF_CORE_READ(task, mm, exe_file);
	if (exe)
		file_identity(exe, &e->exe_ino, &e->exe_dev);
}

/* An open for read of a file load_files holds for the task's cgroup, whatever path it was opened
 * by: counted in load_known when user space has recorded it for this executable (the first of
 * each epoch is queued anyway, as for execs), else queued as a package load with the path it was
 * opened by. False when the file is not in load_files: the path tables decide then. Checked
 * before the path is built, so a repeat costs two hash lookups and no dentry walk. */
static __always_inline bool package_load(struct task_struct *task, __s64 fd, struct pending *p)
{
	struct file *f = fd_file(task, fd);
	if (!f)
		return false;
	struct load_seen k = {};
	k.file.cgroup_id = bpf_get_current_cgroup_id();
	file_identity(f, &k.file.ino, &k.file.dev);
	if (!bpf_map_lookup_elem(&load_files, &k.file))
		return false;
	struct config *cfg = get_config();
	if (cfg && cfg->exec_aggregation) {
		struct file *exe = BPF_CORE_READ(task, mm, exe_file);
		if (exe)
			file_identity(exe, &k.exe_ino, &k.exe_dev);
		struct exec_count *c = bpf_map_lookup_elem(&load_known, &k);
		if (c && count_repeat(cfg, c)) {
			count(COUNTER_LOAD_AGGREGATED);
			return true;
		}
	}
	struct scratch *s = get_scratch();
	if (!s)
		return true;
	__u32 flags = ACT_IDENTITY;
	int len = fd_path(task, fd, s, &flags);
	struct activity_event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e) {
		count(COUNTER_LOST);
		return true;
	}
	fill_header(&e->h, EVENT_ACTIVITY, task, k.file.cgroup_id);
	fill_namespaces(&e->h, task);
	e->kind = ACT_PACKAGE_LOAD;
	e->flags = flags;
	e->result = fd;
	e->aux = p->args[2];
	e->aux2 = 0;
	e->path[0] = 0;
	e->path2[0] = 0;
	e->name[0] = 0;
	if (len >= 0)
		bpf_probe_read_kernel(e->path, PATH_LEN, s->key.data);
	e->ino = 0;
	e->exe_ino = 0;
	e->dev = 0;
	e->exe_dev = 0;
	open_identities(task, f, e);
	count(COUNTER_ACTIVITY);
	submit(e, cfg);
	return true;
}

static __always_inline int enter(struct sys_enter_ctx *ctx, __u32 kind, __u64 a0, __u64 a1, __u64 a2, __u64 a3,
				 __u64 a4)
{
	struct config *cfg = get_config();
	if (!cfg || !cfg->activities)
		return 0;
	if (filtered(cfg, bpf_get_current_cgroup_id()))
		return 0;
	struct pending p = {.kind = kind, .args = {a0, a1, a2, a3, a4}};
	__u64 id = bpf_get_current_pid_tgid();
	bpf_map_update_elem(&pending, &id, &p, BPF_ANY);
	return 0;
}

/* A write that is an escape attempt: the host's core dump handler, or a cgroup v1 release agent. */
static __always_inline bool escape_file(struct scratch *s, int len)
{
	const char core[] = "/proc/sys/kernel/core_pattern";
	const char agent[] = "/release_agent";
	char diff = 0;
	if (len == sizeof(core) - 1) {
		for (int i = 0; i < (int)sizeof(core) - 1; i++)
			diff |= s->key.data[i] ^ core[i];
		return !diff;
	}
	if (len < (int)sizeof(agent) - 1)
		return false;
	for (int i = 0; i < (int)sizeof(agent) - 1; i++)
		diff |= s->key.data[(len - (int)sizeof(agent) + 1 + i) & LEN_MASK] ^ agent[i];
	return !diff;
}

/* The escape rule, at the syscall's exit: the syscall itself has completed (a tracepoint cannot
 * refuse it); in enforce mode the process is killed before it returns to user space. */
static __always_inline void prevent_escape(struct config *cfg, struct task_struct *task, __u64 cgroup_id, __u32 out,
					   int len, struct scratch *s, struct pending *p)
{
	bool escape = out == ACT_MOUNT || out == ACT_UNSHARE || out == ACT_SETNS || out == ACT_PIVOT_ROOT;
	if (!escape && out == ACT_FILE_WRITE && len > 0)
		escape = escape_file(s, len);
	if (!escape)
		return;
	struct prevent_bits *b = prevent_rules(cfg, task, cgroup_id);
	if (!b)
		return;
	if (runtime_init(task))
		return; /* runc setting the container up: the runtime's own mounts and pivot_root */
	__u32 rule = 0;
	__s32 signal_result = 0;
	__u32 flags = act(b, RULE_ESCAPE, &rule, &signal_result);
	if (!flags)
		return;
	struct prevent_event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e) {
		count(COUNTER_LOST);
		return;
	}
	fill_header(&e->h, EVENT_PREVENTED, task, cgroup_id);
	fill_namespaces(&e->h, task);
	e->rule = rule;
	e->flags = flags & (PREVENT_ENFORCE | PREVENT_KILLED);
	e->op = out;
	e->signal_result = signal_result;
	e->ino = 0;
	e->size = 0;
	e->mtime_sec = 0;
	e->mtime_nsec = 0;
	e->dev = 0;
	e->aux = 0;
	e->argv_len = 0;
	e->_pad = 0;
	e->filename[0] = 0;
	e->interp[0] = 0;
	e->dname[0] = 0;
	if (out == ACT_FILE_WRITE)
		bpf_probe_read_kernel_str(e->filename, PATH_LEN, s->key.data);
	else if (out == ACT_MOUNT)
		bpf_probe_read_user_str(e->filename, PATH_LEN, (const void *)p->args[1]);
	else if (out == ACT_PIVOT_ROOT)
		bpf_probe_read_user_str(e->filename, PATH_LEN, (const void *)p->args[0]);
	else if (out == ACT_UNSHARE)
		e->aux = p->args[0];
	else
		e->aux = p->args[1];
	bpf_ringbuf_submit(e, BPF_RB_FORCE_WAKEUP);
}

static __always_inline int leave(struct sys_exit_ctx *ctx, __u32 kind)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct pending *pp = bpf_map_lookup_elem(&pending, &id);
	if (!pp)
		return 0;
	struct pending p = *pp;
	bpf_map_delete_elem(&pending, &id);
	if (p.kind != kind)
		return 0;
	struct scratch *s = get_scratch();
	if (!s)
		return 0;
	struct task_struct *task = (void *)bpf_get_current_task();
	__s64 ret = ctx->ret;
	__u32 flags = 0, out = kind;
	int len = -1;

	if (kind == ACT_OPEN) {
		bool write = p.args[2] & O_WRITE_INTENT;
		if (ret >= 0 && !write && package_load(task, ret, &p))
			return 0;
		if (ret >= 0)
			len = fd_path(task, ret, s, &flags);
		else if (write && (ret == -EACCES || ret == -EPERM || ret == -EROFS))
			/* A refused write to a watched path is an attempt worth reporting. */
			len = user_path(task, (__s64)p.args[0], p.args[1], s, &flags);
		if (len < 0)
			return 0;
		out = write ? ACT_FILE_WRITE : ACT_FILE_READ;
	} else if (kind == ACT_FILE_RENAME || kind == ACT_FILE_UNLINK || kind == ACT_FILE_CHMOD) {
		if (ret < 0)
			return 0;
		if (kind == ACT_FILE_RENAME)
			len = user_path(task, (__s64)p.args[3], p.args[4], s, &flags);
		else if (kind == ACT_FILE_CHMOD && p.args[4])
			len = fd_path(task, (__s64)p.args[0], s, &flags);
		else
			len = user_path(task, (__s64)p.args[0], p.args[1], s, &flags);
		if (len < 0)
			return 0;
	}
	if (len >= 0 && !(flags & ACT_UNRESOLVED)) {
		__u32 w = watched(s, len);
		if (!(w & (out == ACT_FILE_READ ? WATCH_READ : WATCH_WRITE))) {
			count(COUNTER_PATH_FILTERED);
			return 0;
		}
	}

	struct config *cfg = get_config();
	__u64 cgroup_id = bpf_get_current_cgroup_id();
	prevent_escape(cfg, task, cgroup_id, out, len, s, &p);
	if (cfg && cfg->exec_aggregation && len >= 0 && !(flags & ACT_UNRESOLVED)) {
		/* A file activity user space has already recorded: counted here, not queued. */
		struct activity_key *k = &s->activity;
		__builtin_memset(k, 0, sizeof(*k));
		k->cgroup_id = cgroup_id;
		k->kind = out;
		bpf_probe_read_kernel(k->path, len & LEN_MASK, s->key.data);
		struct exec_count *c = bpf_map_lookup_elem(&activity_known, k);
		if (c && count_repeat(cfg, c)) {
			count(COUNTER_ACTIVITY_AGGREGATED);
			return 0;
		}
	}
	struct activity_event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e) {
		count(COUNTER_LOST);
		return 0;
	}
	fill_header(&e->h, EVENT_ACTIVITY, task, cgroup_id);
	fill_namespaces(&e->h, task);
	e->kind = out;
	e->result = ret;
	e->aux = 0;
	e->aux2 = 0;
	e->path[0] = 0;
	e->path2[0] = 0;
	e->name[0] = 0;
	e->ino = 0;
	e->exe_ino = 0;
	e->dev = 0;
	e->exe_dev = 0;
	if (len >= 0)
		bpf_probe_read_kernel(e->path, PATH_LEN, s->key.data);
	switch (kind) {
	case ACT_OPEN: {
		e->aux = p.args[2];
		/* The identity lets user space enter a package file it only knew by path (vigil/sensor/load_watch.py). */
		struct file *f = ret >= 0 ? fd_file(task, ret) : 0;
		if (f)
			open_identities(task, f, e);
		break;
	}
	case ACT_FILE_RENAME:
		bpf_probe_read_user_str(e->path2, PATH_LEN, (const void *)p.args[1]);
		break;
	case ACT_FILE_CHMOD:
		e->aux = p.args[2];
		break;
	case ACT_PTRACE:
		e->aux = p.args[1];
		e->aux2 = p.args[0];
		break;
	case ACT_SETNS:
		e->aux = p.args[1];
		e->aux2 = p.args[0];
		break;
	case ACT_UNSHARE:
		e->aux = p.args[0];
		break;
	case ACT_MOUNT:
		bpf_probe_read_user_str(e->path2, PATH_LEN, (const void *)p.args[0]);
		bpf_probe_read_user_str(e->path, PATH_LEN, (const void *)p.args[1]);
		bpf_probe_read_user_str(e->name, NAME_LEN, (const void *)p.args[2]);
		e->aux2 = p.args[3];
		break;
	case ACT_PIVOT_ROOT:
		bpf_probe_read_user_str(e->path, PATH_LEN, (const void *)p.args[0]);
		bpf_probe_read_user_str(e->path2, PATH_LEN, (const void *)p.args[1]);
		break;
	case ACT_BPF_LOAD:
		e->aux = p.args[2];
		break;
	case ACT_MODULE_LOAD:
		if ((__s64)p.args[0] >= 0 && fd_path(task, (__s64)p.args[0], s, &flags) >= 0)
			bpf_probe_read_kernel(e->path, PATH_LEN, s->key.data);
		break;
	case ACT_MEMFD_CREATE:
		bpf_probe_read_user_str(e->name, NAME_LEN, (const void *)p.args[0]);
		e->aux = p.args[1];
		break;
	}
	if (is_workload(task))
		flags |= ACT_WORKLOAD;
	e->flags = flags;
	count(COUNTER_ACTIVITY);
	submit(e, cfg);
	return 0;
}

#define ENTER(call, kind, a0, a1, a2, a3, a4)                                                        \
	SEC("tp/syscalls/sys_enter_" #call)                                                          \
	int vigil_enter_##call(struct sys_enter_ctx *ctx)                                            \
	{                                                                                            \
		__u64 *a = ctx->args;                                                                \
		(void)a;                                                                             \
		return enter(ctx, kind, a0, a1, a2, a3, a4);                                         \
	}                                                                                            \
	SEC("tp/syscalls/sys_exit_" #call)                                                           \
	int vigil_exit_##call(struct sys_exit_ctx *ctx)                                              \
	{                                                                                            \
		return leave(ctx, kind);                                                             \
	}

#define CWD ((__u64)(__s64)AT_FDCWD)

/* Canonical pending layout for path syscalls: dfd, path, flags or mode, dfd2, path2 (or
 * "by fd" for fchmod). */
ENTER(openat, ACT_OPEN, a[0], a[1], a[2], 0, 0)
ENTER(open, ACT_OPEN, CWD, a[0], a[1], 0, 0)
ENTER(creat, ACT_OPEN, CWD, a[0], O_CREAT_WRONLY_TRUNC, 0, 0)
ENTER(rename, ACT_FILE_RENAME, CWD, a[0], 0, CWD, a[1])
ENTER(renameat, ACT_FILE_RENAME, a[0], a[1], 0, a[2], a[3])
ENTER(renameat2, ACT_FILE_RENAME, a[0], a[1], 0, a[2], a[3])
ENTER(unlink, ACT_FILE_UNLINK, CWD, a[0], 0, 0, 0)
ENTER(unlinkat, ACT_FILE_UNLINK, a[0], a[1], 0, 0, 0)
ENTER(unshare, ACT_UNSHARE, a[0], 0, 0, 0, 0)
ENTER(setns, ACT_SETNS, a[0], a[1], 0, 0, 0)
ENTER(mount, ACT_MOUNT, a[0], a[1], a[2], a[3], 0)
ENTER(pivot_root, ACT_PIVOT_ROOT, a[0], a[1], 0, 0, 0)
ENTER(memfd_create, ACT_MEMFD_CREATE, a[0], a[1], 0, 0, 0)
ENTER(init_module, ACT_MODULE_LOAD, (__u64)-1, 0, 0, 0, 0)
ENTER(finit_module, ACT_MODULE_LOAD, a[0], 0, 0, 0, 0)

/* Syscalls filtered on their arguments at entry, before any map update. */
static __always_inline __u64 prog_type(__u64 attr)
{
	__u32 t = 0;
	bpf_probe_read_user(&t, sizeof(t), (const void *)attr);
	return t;
}

#define ENTER_IF(call, kind, cond, a0, a1, a2, a3, a4)                                               \
	SEC("tp/syscalls/sys_enter_" #call)                                                          \
	int vigil_enter_##call(struct sys_enter_ctx *ctx)                                            \
	{                                                                                            \
		__u64 *a = ctx->args;                                                                \
		if (!(cond))                                                                         \
			return 0;                                                                    \
		return enter(ctx, kind, a0, a1, a2, a3, a4);                                         \
	}                                                                                            \
	SEC("tp/syscalls/sys_exit_" #call)                                                           \
	int vigil_exit_##call(struct sys_exit_ctx *ctx)                                              \
	{                                                                                            \
		return leave(ctx, kind);                                                             \
	}

ENTER_IF(chmod, ACT_FILE_CHMOD, a[1] & S_IXUGO, CWD, a[0], a[1], 0, 0)
ENTER_IF(fchmodat, ACT_FILE_CHMOD, a[2] & S_IXUGO, a[0], a[1], a[2], 0, 0)
ENTER_IF(fchmodat2, ACT_FILE_CHMOD, a[2] & S_IXUGO, a[0], a[1], a[2], 0, 0)
ENTER_IF(fchmod, ACT_FILE_CHMOD, a[1] & S_IXUGO, a[0], 0, a[1], 0, 1)
ENTER_IF(ptrace, ACT_PTRACE, a[0] == PTRACE_ATTACH || a[0] == PTRACE_SEIZE, a[0], a[1], 0, 0, 0)
ENTER_IF(bpf, ACT_BPF_LOAD, a[0] == BPF_PROG_LOAD, a[0], a[1], prog_type(a[1]), 0, 0)

SEC("tp/syscalls/sys_enter_openat2")
int vigil_enter_openat2(struct sys_enter_ctx *ctx)
{
	/* struct open_how starts with the u64 flags. */
	__u64 how_flags = 0;
	bpf_probe_read_user(&how_flags, sizeof(how_flags), (const void *)ctx->args[2]);
	return enter(ctx, ACT_OPEN, ctx->args[0], ctx->args[1], how_flags, 0, 0);
}

SEC("tp/syscalls/sys_exit_openat2")
int vigil_exit_openat2(struct sys_exit_ctx *ctx)
{
	return leave(ctx, ACT_OPEN);
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
