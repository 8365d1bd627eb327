/*
 * snapshot: read-only snapshots and writable clones of files, reverts, and
 * the space report of a file (docs/ARCHITECTURE.md, "Snapshots and clones").
 *
 * Every operation here is O(1) in the file's size: it moves layer
 * references and writes a few records; no chunk is copied or listed and no
 * data server is asked anything.  The content is frozen by marking the
 * file's writable layer frozen and giving the file a fresh empty layer over
 * it; a file whose own layer is still empty is already frozen content (its
 * parent), so 1,000 clones of one idle image share one frozen layer instead
 * of growing a chain 1,000 layers deep.
 *
 * A snapshot is a read-only inode (MD_INODE_SNAPSHOT) named "<file>@<snap>"
 * in the hidden read-only directory VDIFS_SNAPDIR_NAME of the file's
 * directory (created with the first snapshot there), and indexed under its
 * origin ("Q" keys) so SNAP_LIST and SNAP_REVERT find it by file.
 */
#ifndef VDIFS_MDS_SNAPSHOT_H
#define VDIFS_MDS_SNAPSHOT_H

#include "mds.h"
#include "mdstore.h"
#include "proto.h"
#include "wire.h"

#include <stdint.h>

/* 0 when i is a regular file that is not a snapshot (what a snapshot,
 * revert, flatten or clone target must be); -EISDIR, -EINVAL. */
int snapshot_live_file(const struct md_inode *i);

/* A frozen layer showing file i's current content, with one reference for
 * the caller: i's own layer when i is a snapshot; its parent when i's own
 * layer is still empty; else i's layer, frozen now, while i moves to a
 * fresh empty layer over it (i staged).  0 or -errno (-EMLINK). */
int snapshot_freeze(struct mdstore_txn *t, struct md_inode *i, uint64_t *frozen);

/* SNAP_CREATE: snapshot q->snap of the file q->name in directory q->parent.
 * out: the snapshot's attributes.  -ENOENT, -EINVAL (not a regular file, a
 * snapshot, or a snapshot name holding '@'), -EEXIST (the file has a
 * snapshot of that name), -ENAMETOOLONG ("<file>@<snap>" over 255 bytes),
 * -EROFS (in a snapshot directory), -EMLINK (depth limit), -EIO. */
int snapshot_create(struct mds *m, const struct msg_snap_req *q, struct vdifs_attr *out);

/* SNAP_LIST: a dirent record (snapshot name, attributes) per snapshot of
 * file ino, in creation order.  -ENOENT, -EIO, -ENOMEM. */
int snapshot_list(struct mds *m, uint32_t vol, uint64_t ino, struct wbuf *items, uint32_t *count);

/* SNAP_DELETE: removes snapshot q->snap of the file (its space comes back
 * when nothing else uses it).  -ENOENT (no such file or snapshot). */
int snapshot_delete(struct mds *m, const struct msg_snap_req *q);

/* SNAP_REVERT: the file's content, size and blocks become the snapshot's
 * (a new empty layer over it; the file's own writes are dropped).  out: the
 * file's new attributes.  -ENOENT, -EINVAL, -EROFS, -EMLINK, -EIO. */
int snapshot_revert(struct mds *m, const struct msg_snap_req *q, struct vdifs_attr *out);

/* CLONE: a writable copy of q->src (a file or a snapshot) sharing all its
 * chunks, into the empty regular file q->dst, or when q->dst is 0 as the new
 * file q->name in directory q->parent (owned by q->uid, q->gid).
 * -ENOENT, -EEXIST, -EINVAL (not regular files, dst == src), -ENOTEMPTY (dst
 * has content), -EPERM (reserved name), -EROFS, -EMLINK, -EIO. */
int snapshot_clone(struct mds *m, const struct msg_clone_req *q, struct vdifs_attr *out);

/* FILE_INFO: size, bytes of content, bytes the file owns and bytes it
 * shares with its ancestors (one replica), depth and snapshot count. */
int snapshot_info(struct mds *m, uint32_t vol, uint64_t ino, struct msg_file_info_rep *out);

#endif
