/*
 * volume: volumes -- create, look up, list, change settings, remove.
 *
 * A volume is a name (1..64 of [A-Za-z0-9._-]), a chunk size (a power of two,
 * 1 MiB..1 GiB, default 64 MiB), a replica count (1..8, default 2) and a root
 * directory (inode 1, mode 040755, owner 0:0).  Volume ids are never reused,
 * so a request naming a removed volume finds nothing (-ENOENT).
 */
#ifndef VDIFS_MDS_VOLUME_H
#define VDIFS_MDS_VOLUME_H

#include "mds.h"
#include "mdstore.h"
#include "proto.h"

#include <stdint.h>

#define VOLUME_DEFAULT_CHUNK_SIZE (64ull << 20)
#define VOLUME_MIN_CHUNK_SIZE (1ull << 20)
#define VOLUME_MAX_CHUNK_SIZE (1ull << 30)
#define VOLUME_DEFAULT_REPLICAS 2u
/* Copy-on-write extent of delta chunks (docs/ARCHITECTURE.md, "Clones and
 * snapshots", says why 4 KiB). */
#define VOLUME_DEFAULT_EXTENT 4096u
#define VOLUME_MIN_EXTENT 4096u
#define VOLUME_MAX_EXTENT (1u << 20)

/* 0 or -EINVAL (bad volume name). */
int volume_check_name(struct vbytes name);

/* VOL_CREATE: chunk_size 0 and replicas 0 take the defaults.  Fills out.
 * -EINVAL (name, chunk size, replicas), -EEXIST, -EIO, -ENOMEM. */
int volume_create(struct mds *m, const struct msg_vol_create_req *req, struct md_volume *out);
/* The volume with this name: -ENOENT. */
int volume_lookup(struct mds *m, struct vbytes name, struct md_volume *out);
int volume_get(struct mds *m, uint32_t vol, struct md_volume *out);
/* Appends v's vol_info record (with its inode count).  0, -EIO, -ENOMEM. */
int volume_put_info(struct mds *m, const struct md_volume *v, struct wbuf *b);
/* VOL_LIST: a vol_info record per volume, in id order. */
int volume_list(struct mds *m, struct wbuf *items, uint32_t *count);
/* Number of volumes. */
int volume_count(struct mds *m, uint32_t *count);
/* VOL_REMOVE: -ENOTEMPTY when the root has entries, unless flags has
 * VDIFS_VOL_REMOVE_FORCE: then every inode, layer and chunk of the volume is
 * freed (chunks queued for deletion on their data servers).  -ENOENT. */
int volume_remove(struct mds *m, struct vbytes name, uint32_t flags);
/* VOL_SET: key "replicas" (1..8, for chunks made from now on) or
 * "chunk_size" (as at creation; K/M/G suffixes; only while the volume has no
 * chunks: -EBUSY).  Fills out.  -EINVAL (key or value), -ENOENT. */
int volume_set(struct mds *m, const struct msg_vol_set_req *req, struct md_volume *out);

#endif
