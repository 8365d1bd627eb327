/*
 * dirh: a directory handle, the whole listing of a directory taken at
 * opendir ("." and ".." first), from which readdir serves any offset: the
 * offset of an entry is its position + 1, so a listing never skips or
 * repeats entries however the kernel pages through it.
 */
#ifndef VDIFS_MOUNT_DIRH_H
#define VDIFS_MOUNT_DIRH_H

#include "fs.h"

#include <stddef.h>

struct dirh_entry {
	char *name;              /* owned by the handle */
	struct vdifs_attr attr;
	bool dot;                /* "." or "..": attr carries only ino and mode */
};

struct dirh {
	struct dirh_entry *v;
	size_t n, cap;
};

/* Reads directory ino (a vdifs inode) into a new handle.  Returns 0 with
 * *out set (free it with dirh_free) or -errno. */
int dirh_load(struct fs *fs, uint64_t ino, struct dirh **out);
void dirh_free(struct dirh *d);

#endif
