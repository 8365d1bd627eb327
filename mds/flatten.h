/*
 * flatten: makes a file independent of its ancestors (`vdifs-clone flatten`),
 * so its chain of layers shrinks to one and the snapshots it came from can
 * be deleted without keeping their data alive for it.
 *
 * The data never passes through the MDS or the client: the MDS freezes the
 * file's content (as a snapshot would), makes a new parentless layer with a
 * plain chunk for every chunk of that content, placed on the servers that
 * hold the source chunk (and so its whole chain of bases), and the client
 * asks each of those servers to copy the source into the new chunk locally
 * (DS_COPY).  The end swaps the file onto the new layer in one transaction,
 * unless the file was written, truncated or reverted meanwhile (-EBUSY: the
 * copy is thrown away and nothing changed).
 *
 * A file at the depth limit has no room for the layer a freeze puts over
 * its content: its own layer is frozen in place instead, so such a file is
 * read-only (EROFS) while it is flattened.
 *
 * A flatten in progress is a "P" record holding references on the new
 * layer and on the frozen content; a new FLATTEN_BEGIN, FLATTEN_END with
 * the abort flag, or deleting the file releases it.
 */
#ifndef VDIFS_MDS_FLATTEN_H
#define VDIFS_MDS_FLATTEN_H

#include "mds.h"
#include "mdstore.h"
#include "proto.h"
#include "wire.h"

#include <stdint.h>

/* Most chunk pairs one FLATTEN_CHUNKS reply carries. */
#define FLATTEN_CHUNKS_MAX 256

/* FLATTEN_BEGIN: starts flattening file ino (replacing any flatten of it in
 * progress).  out->flat = 1 when it has no ancestor and no delta chunk
 * (nothing to do, nothing started); else out->chunks bounds the chunk
 * indexes to copy.  -ENOENT, -EISDIR, -EINVAL (not a live regular file),
 * -EROFS (a snapshot), -EIO. */
int flatten_begin(struct mds *m, uint32_t vol, uint64_t ino, struct msg_flatten_rep *out);

/* FLATTEN_CHUNKS: the (new chunk, source chunk) chunk_loc pairs of the
 * indexes in [q->first, q->first + q->max) that hold data, making the new
 * chunks not made yet.  -ENOENT (no flatten in progress), -EIO, -ENOMEM. */
int flatten_chunks(struct mds *m, const struct msg_flatten_chunks_req *q, struct wbuf *items,
		   uint32_t *count);

/* FLATTEN_END: with flag 1, abandons the flatten (if any).  Else the file moves to
 * the new layer (alloc items give the copies' sizes) and out gets its
 * attributes.  -ENOENT (no flatten in progress), -EBUSY (the file changed
 * since FLATTEN_BEGIN; abandoned), -EINVAL (chunks not copied yet),
 * -EBADMSG (items malformed), -EIO. */
int flatten_end(struct mds *m, const struct msg_flatten_end_req *q, struct vdifs_attr *out);

/* Releases the flatten in progress of file ino, if any (inside t).  0 or
 * -errno. */
int flatten_release(struct mdstore_txn *t, uint32_t vol, uint64_t ino);

#endif
