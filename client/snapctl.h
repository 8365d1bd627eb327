/*
 * snapctl: snapshots and clones through the mount -- the reserved
 * "user.vdifs." extended attributes the tools use, and whole-file
 * copy_file_range as a clone (see snapctl.c).
 */
#ifndef VDIFS_CLIENT_SNAPCTL_H
#define VDIFS_CLIENT_SNAPCTL_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define SNAPCTL_RECENT 32
/* How long a clone made by copy_file_range answers the rest of that copy. */
#define SNAPCTL_RECENT_MS 10000

struct snapctl_clone {
	uint64_t src, dst, size;
	uint64_t until_ms;
};

/* Flattens in progress through this mount: what the steps learnt so far
 * (the copies' sizes go to the MDS at the end). */
#define SNAPCTL_FLATTENS 8
struct snapctl_flatten {
	uint64_t ino; /* 0: a free slot */
	bool flat;
	uint64_t chunks;
	struct wbuf *allocs;
	uint32_t nallocs;
};

/* Recent whole-file clones made by copy_file_range, so that the calls that
 * follow for the rest of the same copy (the kernel caps one call near
 * 4 GiB) succeed without copying anything. */
struct snapctl {
	pthread_mutex_t lock;
	struct snapctl_clone recent[SNAPCTL_RECENT];
	unsigned next;
	struct snapctl_flatten flattens[SNAPCTL_FLATTENS];
};

struct fs;
struct vdifs_file;
struct wbuf;

void snapctl_init(struct snapctl *s);
void snapctl_destroy(struct snapctl *s);

/* Whether an xattr name is in the reserved control namespace. */
bool snapctl_is_ctl(const char *name);
/* A control setxattr on directory dir (vdifs inode) by uid/gid -- or, for
 * "flatten", on the file itself: 0 or -errno.  made (VDIFS_NAME_MAX + 1
 * bytes) gets the name it created in dir, if any, for the caller to
 * invalidate in the kernel's cache. */
int snapctl_setxattr(struct fs *fs, uint64_t dir, const char *name, const char *value, size_t size,
		     uint32_t uid, uint32_t gid, char *made);
/* A control getxattr on ino: the value's length with *out malloc'ed (may be
 * NULL when empty), or -errno (-ENODATA for an unknown name). */
ssize_t snapctl_getxattr(struct fs *fs, uint64_t ino, const char *name, char **out);
/* copy_file_range from src to dst (vdifs inodes): a whole-file copy into an
 * empty file becomes a clone and returns the bytes "copied"; anything else
 * is -EOPNOTSUPP (callers such as cp then copy the bytes themselves). */
ssize_t snapctl_copy_range(struct fs *fs, struct vdifs_file *fin, uint64_t src, uint64_t off_in,
			   struct vdifs_file *fout, uint64_t dst, uint64_t off_out, size_t len);

#endif
