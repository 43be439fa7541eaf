/* SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause */
/*
 * The few kernel types the Vigil sensor reads, declared for BPF CO-RE.
 *
 * Why not a full vmlinux.h: bpftool's dump of this kernel's BTF is ~2.8 MB and
 * depends on the build machine's kernel, which would make the committed object
 * change whenever the build host's kernel does. Every struct below is marked
 * preserve_access_index, so clang records each field access as a CO-RE
 * relocation and libbpf resolves it against the running kernel's BTF
 * (/sys/kernel/btf/vmlinux) at load time: only the type and field NAMES here
 * must match the kernel, never their layout. A rename in a future kernel shows
 * up as a clear load error naming the field.
 */
#ifndef VIGIL_KERNEL_H
#define VIGIL_KERNEL_H

typedef unsigned char __u8;
typedef unsigned short __u16;
typedef unsigned int __u32;
typedef unsigned long long __u64;
typedef signed char __s8;
typedef short __s16;
typedef int __s32;
typedef long long __s64;
typedef __u16 __be16;
typedef __u32 __be32;
typedef __u32 __wsum;
typedef _Bool bool;
#define true 1
#define false 0

/* uapi constants (stable ABI values from include/uapi/linux/bpf.h) */
enum bpf_map_type {
	BPF_MAP_TYPE_HASH = 1,
	BPF_MAP_TYPE_ARRAY = 2,
	BPF_MAP_TYPE_PERCPU_ARRAY = 6,
	BPF_MAP_TYPE_LRU_HASH = 9,
	BPF_MAP_TYPE_LPM_TRIE = 11,
	BPF_MAP_TYPE_RINGBUF = 27,
};
enum {
	BPF_RB_NO_WAKEUP = 1,
	BPF_RB_FORCE_WAKEUP = 2,
};
enum {
	BPF_RB_AVAIL_DATA = 0,
};
enum {
	BPF_ANY = 0,
	BPF_NOEXIST = 1,
};
enum {
	BPF_F_NO_PREALLOC = 1,
};

#pragma clang attribute push(__attribute__((preserve_access_index)), apply_to = record)

typedef struct { int counter; } atomic_t;
typedef struct { unsigned int val; } kuid_t;
typedef struct { unsigned int val; } kgid_t;

struct ns_common {
	unsigned int inum;
};
struct mnt_namespace {
	struct ns_common ns;
};
struct pid_namespace {
	struct ns_common ns;
};
struct nsproxy {
	struct mnt_namespace *mnt_ns;
	struct pid_namespace *pid_ns_for_children;
};
struct cred {
	kuid_t uid;
	kgid_t gid;
};
struct super_block {
	unsigned int s_dev;
	unsigned long s_magic;
};
struct inode {
	struct super_block *i_sb;
	unsigned long i_ino;
	long long i_size;
	long long i_mtime_sec;
	unsigned int i_mtime_nsec;
	unsigned int i_nlink;
};
struct qstr {
	union {
		struct {
			__u32 hash;
			__u32 len;
		};
		__u64 hash_len;
	};
	const unsigned char *name;
};
struct dentry {
	struct dentry *d_parent;
	struct qstr d_name;
	struct inode *d_inode;
};
struct vfsmount {
	struct dentry *mnt_root;
};
/* fs/mount.h: the vfsmount is embedded in it, reached with container_of. */
struct mount {
	struct mount *mnt_parent;
	struct dentry *mnt_mountpoint;
	struct vfsmount mnt;
};
struct path {
	struct vfsmount *mnt;
	struct dentry *dentry;
};
struct file {
	struct inode *f_inode;
	struct path f_path;
};
struct mm_struct {
	unsigned long arg_start;
	unsigned long arg_end;
	struct file *exe_file;
};
struct fs_struct {
	struct path root;
	struct path pwd;
};
struct fdtable {
	unsigned int max_fds;
	struct file **fd;
};
struct files_struct {
	struct fdtable *fdt;
};
/* fs/overlayfs/ovl_entry.h: an overlay inode, whose upper dentry is set once the
 * file exists on the upper (container-writable) layer. */
struct ovl_inode {
	struct inode vfs_inode;
	struct dentry *__upperdentry;
};
struct linux_binprm {
	struct file *file;
	int argc;
	const char *filename;
	const char *interp;
};
struct signal_struct {
	atomic_t live;
};
struct task_struct {
	int pid;
	int tgid;
	struct task_struct *real_parent;
	struct task_struct *group_leader;
	const struct cred *cred;
	struct nsproxy *nsproxy;
	struct mm_struct *mm;
	struct fs_struct *fs;
	struct files_struct *files;
	struct signal_struct *signal;
	char comm[16];
	unsigned long long start_boottime;
	int exit_code;
};

#pragma clang attribute pop

/* The syscall tracepoints' records (tracefs events/syscalls/sys_{enter,exit}_* format):
 * after the 8-byte common header and the syscall number, each argument is 8 bytes. */
struct sys_enter_ctx {
	__u64 common;
	__s32 syscall_nr;
	__u32 _pad;
	__u64 args[6];
};
struct sys_exit_ctx {
	__u64 common;
	__s32 syscall_nr;
	__u32 _pad;
	__s64 ret;
};

#endif
