/*
 * flatten: a file's content copied into a parentless layer on the data
 * servers themselves (see flatten.h).
 */
#include "flatten.h"

#include "layer.h"
#include "log.h"
#include "namespace.h"
#include "snapshot.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

struct job {
	uint64_t flat;   /* the new layer (one reference) */
	uint64_t frozen; /* the content being copied (one reference) */
	uint64_t layer;  /* the file's layer when the flatten began */
	uint64_t size;   /* and its size */
};

static int get_job(struct mdstore_txn *t, uint32_t vol, uint64_t ino, struct job *j)
{
	struct mdstore_key k;
	uint8_t *val = NULL;
	size_t len = 0;
	mdstore_key_flatten(&k, vol, ino);
	int rc = mdstore_txn_get(t, &k, &val, &len);
	if (rc < 0)
		return rc;
	struct wreader r;
	wreader_init(&r, val, len);
	j->flat = wreader_u64(&r);
	j->frozen = wreader_u64(&r);
	j->layer = wreader_u64(&r);
	j->size = wreader_u64(&r);
	rc = wreader_finish(&r);
	free(val);
	if (rc < 0) {
		log_error("volume %u inode %llu: corrupt flatten record", vol, (unsigned long long)ino);
		return -EIO;
	}
	return 0;
}

static int put_job(struct mdstore_txn *t, uint32_t vol, uint64_t ino, const struct job *j)
{
	struct mdstore_key k;
	struct wbuf b;
	wbuf_init(&b);
	wbuf_put_u64(&b, j->flat);
	wbuf_put_u64(&b, j->frozen);
	wbuf_put_u64(&b, j->layer);
	wbuf_put_u64(&b, j->size);
	int rc = b.err ? -ENOMEM : 0;
	if (rc == 0) {
		mdstore_key_flatten(&k, vol, ino);
		mdstore_txn_put(t, &k, b.data, b.len);
	}
	wbuf_free(&b);
	return rc;
}

/* A flatten of a file at the depth limit froze the file's own layer in
 * place (no room for a layer over it): thaws it when the file and the job
 * are still its only users.  0 or -errno. */
static int thaw(struct mdstore_txn *t, uint32_t vol, uint64_t ino, const struct job *j)
{
	struct md_inode i;
	struct md_layer l;
	int rc = mdstore_get_inode(t, vol, ino, &i);
	if (rc == -ENOENT || (rc == 0 && i.layer != j->frozen))
		return 0;
	if (rc == 0)
		rc = layer_load(t, j->frozen, &l);
	if (rc < 0)
		return rc;
	if (l.refcount == 2) {
		l.flags &= ~(uint32_t)MD_LAYER_FROZEN;
		mdstore_put_layer(t, &l);
	} else {
		log_warn("volume %u inode %llu: left read-only by an abandoned flatten (a snapshot took its "
			 "content meanwhile): flatten it again", vol, (unsigned long long)ino);
	}
	return 0;
}

int flatten_release(struct mdstore_txn *t, uint32_t vol, uint64_t ino)
{
	struct mdstore_key k;
	struct job j;
	int rc = get_job(t, vol, ino, &j);
	if (rc == -ENOENT)
		return 0;
	if (rc == 0)
		rc = thaw(t, vol, ino, &j);
	if (rc < 0)
		return rc;
	mdstore_key_flatten(&k, vol, ino);
	mdstore_txn_del(t, &k);
	/* Chunks already copied are queued for deletion with the layer. */
	rc = layer_unref(t, j.flat);
	return rc < 0 ? rc : layer_unref(t, j.frozen);
}

/* Whether the content of layer is flat already: no parent and no delta
 * chunk.  1, 0, or -errno. */
static int is_flat(struct mdstore_txn *t, uint64_t layer)
{
	struct md_layer l;
	struct layer_ent *ents = NULL;
	size_t n = 0;
	int rc = layer_load(t, layer, &l);
	if (rc < 0)
		return rc;
	if (l.parent)
		return 0;
	rc = layer_view(t, layer, 0, UINT64_MAX, &ents, &n);
	int flat = 1;
	for (size_t e = 0; rc == 0 && e < n && flat; e++) {
		struct md_chunk c;
		if (ents[e].chunk == 0)
			continue;
		rc = layer_load_chunk(t, ents[e].chunk, &c);
		if (rc == 0 && c.base)
			flat = 0;
	}
	free(ents);
	return rc < 0 ? rc : flat;
}

/* Loads file ino of vol, a regular file that is not a snapshot.  Opens *t. */
static int begin_file(struct mds *m, uint32_t vol, uint64_t ino, struct md_volume *v, struct mdstore_txn **t,
		      struct md_inode *i)
{
	int rc = namespace_begin_file(m, vol, ino, v, t, i);
	if (rc < 0)
		return rc;
	if (i->flags & MD_INODE_SNAPSHOT) {
		rc = -EROFS;
		mdstore_txn_abort(*t);
		*t = NULL;
	}
	return rc;
}

int flatten_begin(struct mds *m, uint32_t vol, uint64_t ino, struct msg_flatten_rep *out)
{
	struct mdstore_txn *t;
	struct md_volume v;
	struct md_inode i;
	struct layer_ent *ents = NULL;
	size_t n = 0;
	struct job j = {0};
	memset(out, 0, sizeof(*out));
	int rc = begin_file(m, vol, ino, &v, &t, &i);
	if (rc < 0)
		return rc;
	rc = flatten_release(t, vol, ino);
	if (rc == 0)
		rc = is_flat(t, i.layer);
	if (rc == 1) {
		out->flat = 1;
		return mdstore_txn_commit(t);
	}
	if (rc == 0)
		rc = snapshot_freeze(t, &i, &j.frozen);
	if (rc == -EMLINK) {
		/* At the depth limit there is no room for a fresh layer over
		 * the content: the file's own layer is frozen in place, and the
		 * file is read-only until the flatten ends (or is abandoned). */
		struct md_layer l;
		rc = layer_load(t, i.layer, &l);
		if (rc == 0) {
			l.flags |= MD_LAYER_FROZEN;
			l.refcount++;
			mdstore_put_layer(t, &l);
			j.frozen = l.id;
		}
	}
	if (rc == 0)
		rc = layer_create(t, vol, 0, &j.flat);
	if (rc == 0)
		rc = layer_view(t, j.frozen, 0, UINT64_MAX, &ents, &n);
	if (rc < 0)
		goto fail;
	j.layer = i.layer;
	j.size = i.size;
	out->chunks = n ? ents[n - 1].index + 1 : 0;
	free(ents);
	rc = put_job(t, vol, ino, &j);
	if (rc < 0)
		goto fail;
	return mdstore_txn_commit(t);
fail:
	mdstore_txn_abort(t);
	return rc;
}

int flatten_chunks(struct mds *m, const struct msg_flatten_chunks_req *q, struct wbuf *items, uint32_t *count)
{
	struct mdstore_txn *t;
	struct md_volume v;
	struct md_inode i;
	struct layer_ent *ents = NULL;
	size_t n = 0;
	struct job j;
	bool made = false;
	uint32_t max = q->max < FLATTEN_CHUNKS_MAX ? q->max : FLATTEN_CHUNKS_MAX;
	uint64_t end = q->first > UINT64_MAX - max ? UINT64_MAX : q->first + max;
	*count = 0;
	int rc = begin_file(m, q->vol, q->ino, &v, &t, &i);
	if (rc < 0)
		return rc;
	rc = get_job(t, q->vol, q->ino, &j);
	if (rc == 0)
		rc = layer_view(t, j.frozen, q->first, end, &ents, &n);
	for (size_t e = 0; rc == 0 && e < n; e++) {
		struct md_chunk src, dst;
		uint64_t id;
		if (ents[e].chunk == 0)
			continue;
		rc = layer_load_chunk(t, ents[e].chunk, &src);
		if (rc < 0)
			break;
		rc = mdstore_get_chunkent(t, j.flat, ents[e].index, &id);
		if (rc == 0) {
			rc = layer_load_chunk(t, id, &dst); /* asked again: the same chunk */
		} else if (rc == -ENOENT) {
			/* Where the source and all its bases are: the copy is local. */
			memset(&dst, 0, sizeof(dst));
			dst.nrep = src.nrep;
			memcpy(dst.ds, src.ds, sizeof(dst.ds));
			dst.alloc = dst.own = src.alloc; /* until the copies report */
			rc = layer_chunk_add(t, &v, j.flat, ents[e].index, &dst);
			made = true;
		}
		if (rc == 0)
			rc = layer_put_chunk_loc(m, t, items, ents[e].index, &dst, 0);
		if (rc == 0)
			rc = layer_put_chunk_loc(m, t, items, ents[e].index, &src, 0);
		if (rc == 0)
			(*count)++;
	}
	free(ents);
	if (rc < 0 || !made) {
		mdstore_txn_abort(t);
		return rc;
	}
	return mdstore_txn_commit(t);
}

/* 0 when every chunk of the frozen content has its copy in the new layer;
 * stores the copies' sizes from items and sums them in *blocks. */
static int apply_copies(struct mdstore_txn *t, const struct job *j, const struct msg_flatten_end_req *q,
			uint64_t *blocks)
{
	struct layer_ent *ents = NULL;
	size_t n = 0;
	struct wreader r;
	int rc = 0;
	wreader_init(&r, q->items.p, q->items.len);
	for (uint32_t k = 0; k < q->count && rc == 0; k++) {
		struct msg_alloc a;
		struct md_chunk c;
		uint64_t id;
		msg_alloc_get(&r, &a);
		if (r.err)
			return -EBADMSG;
		rc = mdstore_get_chunkent(t, j->flat, a.index, &id);
		if (rc == -ENOENT || (rc == 0 && id != a.chunk_id)) {
			rc = 0; /* not a copy of this flatten */
			continue;
		}
		if (rc == 0)
			rc = layer_load_chunk(t, id, &c);
		if (rc == 0) {
			c.alloc = c.own = a.bytes < c.chunk_size ? a.bytes : c.chunk_size;
			mdstore_put_chunk(t, &c);
		}
	}
	if (rc < 0)
		return rc;
	if (wreader_finish(&r) < 0)
		return -EBADMSG;
	/* Every chunk of the content has its copy (what the flat layer holds
	 * and the content shows are the same indexes). */
	rc = layer_view(t, j->frozen, 0, UINT64_MAX, &ents, &n);
	for (size_t e = 0; rc == 0 && e < n; e++) {
		uint64_t id;
		if (ents[e].chunk && mdstore_get_chunkent(t, j->flat, ents[e].index, &id) == -ENOENT)
			rc = -EINVAL;
	}
	free(ents);
	uint64_t owned;
	return rc < 0 ? rc : layer_space(t, j->flat, blocks, &owned);
}

int flatten_end(struct mds *m, const struct msg_flatten_end_req *q, struct vdifs_attr *out)
{
	struct mdstore_txn *t;
	struct md_volume v;
	struct md_inode i;
	struct mdstore_key k;
	struct job j;
	uint64_t blocks = 0;
	int rc = begin_file(m, q->vol, q->ino, &v, &t, &i);
	if (rc < 0)
		return rc;
	if (q->flags & 1) {
		/* Abandoning what is not there (any more) is done already. */
		rc = flatten_release(t, q->vol, q->ino);
		goto done;
	}
	rc = get_job(t, q->vol, q->ino, &j);
	if (rc < 0)
		goto fail;
	/* Written, truncated or reverted since the copy began: the copy is
	 * not the content any more. */
	rc = i.layer != j.layer || i.size != j.size ? 0 : i.layer == j.frozen ? 1 : layer_is_empty(t, i.layer);
	if (rc == 0) {
		rc = flatten_release(t, q->vol, q->ino);
		if (rc == 0)
			rc = mdstore_txn_commit(t);
		return rc < 0 ? rc : -EBUSY;
	}
	if (rc < 0)
		goto fail;
	rc = apply_copies(t, &j, q, &blocks);
	if (rc < 0)
		goto fail;
	/* The job's references move: the flat layer to the file; the file's
	 * old (empty) layer and the frozen content are dropped. */
	mdstore_key_flatten(&k, q->vol, q->ino);
	mdstore_txn_del(t, &k);
	rc = layer_unref(t, i.layer);
	if (rc == 0)
		rc = layer_unref(t, j.frozen);
	if (rc < 0)
		goto fail;
	i.layer = j.flat;
	i.blocks = blocks;
	mdstore_now(&i.ctime);
	mdstore_put_inode(t, &i);
done:
	if (rc < 0)
		goto fail;
	rc = mdstore_txn_commit(t);
	if (rc == 0)
		mdstore_inode_attr(&i, out);
	return rc;
fail:
	mdstore_txn_abort(t);
	return rc;
}
