/*
 * layer: layers and their chunk tables, chunk records, and the four file
 * layout operations (LAYOUT, CHUNK_ALLOC, CHUNK_DROP, COMMIT).
 *
 * A layer maps chunk index -> chunk id or HOLE and may have a parent layer;
 * reading index i walks the file's layer and then its ancestors, and the
 * first entry found wins (a HOLE hides the ancestors' data).  Chunks are
 * reference counted by the layer entries that point at them; a chunk whose
 * count reaches zero is deleted and each of its replicas is queued for
 * deletion on its data server ("G" keys).  Layers are reference counted by
 * the inodes (and, with clones, the child layers) that use them.
 */
#ifndef VDIFS_MDS_LAYER_H
#define VDIFS_MDS_LAYER_H

#include "mds.h"
#include "mdstore.h"
#include "proto.h"

#include <stdbool.h>
#include <stdint.h>

/* Most chunk_loc records one LAYOUT reply carries; a larger answer is
 * -E2BIG and the client asks for a smaller range. */
#define LAYER_LAYOUT_MAX 32768
/* Longest ancestor chain walked before the data is declared corrupt. */
#define LAYER_DEPTH_MAX 4096

/* 512-byte blocks charged for a chunk with alloc bytes allocated. */
static inline uint64_t layer_alloc_blocks(uint64_t alloc) { return alloc / 512 + (alloc % 512 != 0); }

/* One chunk-table entry as scanned: chunk 0 is a HOLE. */
struct layer_ent {
	uint64_t index;
	uint64_t chunk;
	bool shared; /* layer_view: from a frozen ancestor of the layer (it never changes) */
};

/* ---- building blocks, inside a caller's transaction ----------------------------- */

/* A layer or chunk that a record references (an inode, a layer's parent, a
 * chunk table): 0 and *out, -EIO (logged) when it is missing, -errno. */
int layer_load(struct mdstore_txn *t, uint64_t id, struct md_layer *out);
int layer_load_chunk(struct mdstore_txn *t, uint64_t id, struct md_chunk *out);

/* Number of layers in the chain from layer up (0 for layer 0).  -EIO on a
 * broken or cyclic chain. */
int layer_depth(struct mdstore_txn *t, uint64_t layer, uint32_t *depth);

/* What a file whose layer is layer shows in chunk indexes [first, end): for
 * each index with an entry in the chain, the nearest one (HOLEs included),
 * in index order, as a malloc'ed array (*out, *nout).  Reads the committed
 * chunk tables.  -EIO, -ENOMEM. */
int layer_view(struct mdstore_txn *t, uint64_t layer, uint64_t first, uint64_t end, struct layer_ent **out,
	       size_t *nout);

/* Space of the chunks in layer's own chunk table (committed state): the
 * 512-byte blocks they are charged, and the bytes (one replica) they own (a
 * delta counts its own extents only).  0 or -errno. */
int layer_space(struct mdstore_txn *t, uint64_t layer, uint64_t *blocks, uint64_t *owned);

/* Adds one reference to layer id.  0, -EIO (missing layer), -errno. */
int layer_ref(struct mdstore_txn *t, uint64_t id);
/* 1 when layer has no chunk-table entry (not even a HOLE), 0 when it has
 * one (committed state), -errno. */
int layer_is_empty(struct mdstore_txn *t, uint64_t layer);

/* Appends the chunk_loc record of chunk c at index, with its chain of bases
 * for a delta chunk, and flags (VDIFS_CHUNK_*).  0, -EIO (a broken chain),
 * -ENOMEM. */
int layer_put_chunk_loc(const struct mds *m, struct mdstore_txn *t, struct wbuf *b, uint64_t index,
			const struct md_chunk *c, uint32_t flags);

/* Stages chunk *c (replicas, base, extent, alloc and own as the caller set
 * them; version 1, refcount 1, volume v's chunk size) as a new chunk, the
 * entry of layer at index, and counts it.  Fills c->id.  0 or -errno. */
int layer_chunk_add(struct mdstore_txn *t, const struct md_volume *v, uint64_t layer, uint64_t index,
		    struct md_chunk *c);

/* Stages a new writable layer (refcount 1) over parent (0: none; else the
 * parent gains a reference).  0 and *id, -EMLINK when the chain would be
 * deeper than VDIFS_DEPTH_MAX, or -errno. */
int layer_create(struct mdstore_txn *t, uint32_t vol, uint64_t parent, uint64_t *id);

/* Drops one reference to layer id; at zero stages the removal of its chunk
 * table (dereferencing its chunks) and of the layer, then drops its parent.
 * 0 or -errno (-EIO on corrupt records). */
int layer_unref(struct mdstore_txn *t, uint64_t id);
/* Drops one layer-entry reference to chunk id; at zero stages the removal of
 * the chunk and queues each replica for deletion on its server (G keys).
 * 0 or -errno. */
int layer_chunk_unref(struct mdstore_txn *t, uint64_t id);

/* Removes the entries of layer in [first, first + count) (count saturates at
 * the end of the index space), dereferencing their chunks, and writes HOLE
 * where an ancestor has an entry, so the range reads as zeros.  *freed_blocks
 * gets the 512-byte blocks the removed chunks were charged.  0 or -errno. */
int layer_drop_range(struct mdstore_txn *t, uint64_t layer, uint64_t first, uint64_t count,
		     uint64_t *freed_blocks);

/* Drops every chunk of a regular file from index ceil(size / chunk_size) on
 * and lowers i->blocks accordingly (the caller stores i).  0, -EROFS (frozen
 * layer), -EINVAL (not a regular file) or -errno. */
int layer_truncate(struct mdstore_txn *t, struct md_inode *i, uint64_t chunk_size, uint64_t size);

/* ---- requests -------------------------------------------------------------- */

/* LAYOUT: appends a chunk_loc record to items for every chunk the file has in
 * [first, first + max), walking its layer then the ancestors and leaving out
 * HOLEs, in index order; *count gets their number.  -ENOENT (no volume or
 * inode), -EINVAL (not a regular file), -E2BIG (more than LAYER_LAYOUT_MAX
 * chunks in the range), -EIO, -ENOMEM. */
int layer_layout(struct mds *m, const struct msg_layout_req *req, struct wbuf *items, uint32_t *count);

/* CHUNK_ALLOC: the chunk at index in the file's own layer, made (placed on
 * the volume's replica count of distinct up data servers, as many as are up,
 * version 1) and stored when there is none.  Appends its chunk_loc record to
 * reply.  With settle, a new chunk that would get fewer replicas than the
 * volume asks (or none: ENOSPC) while the registry is settling
 * (dsreg_settling: just after an MDS start) is not made: -EAGAIN, and the
 * caller asks again shortly.
 * -ENOENT, -EINVAL (not a regular file), -EROFS (frozen layer), -EFBIG
 * (index past the largest file), -ENOSPC (no data server up with space),
 * -EIO, -ENOMEM. */
int layer_chunk_alloc(struct mds *m, const struct msg_chunk_alloc_req *req, bool settle, struct wbuf *reply);

/* CHUNK_DROP: layer_drop_range on the file's own layer, updating its blocks
 * and mtime/ctime.  -ENOENT, -EINVAL, -EROFS, -EIO, -ENOMEM. */
int layer_chunk_drop(struct mds *m, const struct msg_chunk_drop_req *req);

/* COMMIT: stores the allocated bytes of each alloc item that names a chunk of
 * the file's own layer (stale items are ignored), keeps blocks equal to the
 * sum over the chunks the file shows, and applies VDIFS_COMMIT_SIZE (size = max(size,
 * given)) and VDIFS_COMMIT_MTIME (mtime = given, ctime = now).  Fills out
 * with the new attributes.  -EBADMSG (items not count alloc records),
 * -ENOENT, -EINVAL, -EROFS (a frozen layer: a snapshot), -EFBIG, -EIO,
 * -ENOMEM. */
int layer_commit(struct mds *m, const struct msg_commit_req *req, struct vdifs_attr *out);

/* Chunks in the cluster (all volumes).  0 or -errno. */
int layer_count_chunks(struct mds *m, uint64_t *count);

#endif
