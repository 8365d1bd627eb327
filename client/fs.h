/*
 * fs: the vdifs FUSE file system (low-level API) on top of the client API.
 *
 * struct fs is the mount's context, shared read-only by every FUSE thread
 * after fs_ops is handed to fuse_session_new().  FUSE inode numbers are vdifs
 * inode numbers, except that the volume's root is FUSE_ROOT_ID (and vdifs
 * inode FUSE_ROOT_ID, if the volume has one that is not the root, takes the
 * root's number: the mapping is a swap, so it is its own inverse).
 */
#ifndef VDIFS_MOUNT_FS_H
#define VDIFS_MOUNT_FS_H

#define FUSE_USE_VERSION 314
#include <fuse_lowlevel.h>

#include "capcache.h"
#include "client.h"
#include "snapctl.h"

#include <stdbool.h>
#include <stdint.h>

struct fs {
	struct vdifs_client *c;    /* owned by main */
	char volume[VDIFS_NAME_MAX + 1];
	uint64_t root_ino;         /* vdifs inode of the volume root */
	uint64_t chunk_size;
	bool ro;
	double attr_timeout;
	double entry_timeout;
	struct fuse_session *se;   /* for cache invalidations (snapctl) */
	struct snapctl ctl;
	struct capcache caps;      /* its own lock: written by every thread */
};

extern const struct fuse_lowlevel_ops fs_ops;

/* vdifs inode <-> FUSE inode. */
uint64_t fs_to_fuse(const struct fs *fs, uint64_t ino);
uint64_t fs_from_fuse(const struct fs *fs, fuse_ino_t ino);
/* Fills st from a (st_ino mapped to the FUSE number). */
void fs_fill_stat(const struct fs *fs, const struct vdifs_attr *a, struct stat *st);

#endif
