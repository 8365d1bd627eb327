/*
 * layer: layers, chunk tables and chunk records (see layer.h).
 *
 * Tuned for virtual-disk images: few files, each of many chunks, whose layout
 * a client fetches once per open and then extends one CHUNK_ALLOC at a time.
 * Chunk tables are LevelDB ranges ("C" + layer + index), so a layout or a
 * truncation is one range scan per layer of the chain, never a scan of the
 * index space: a 1 TiB sparse image with three chunks costs three entries.
 */
#include "layer.h"

#include "dsreg.h"
#include "log.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>


/* End of [first, first + count), saturating. */
static uint64_t range_end(uint64_t first, uint64_t count)
{
	return count > UINT64_MAX - first ? UINT64_MAX : first + count;
}

/* Number of chunk indexes a file may use: offsets stay within INT64_MAX. */
static uint64_t index_limit(uint64_t chunk_size) { return ((uint64_t)INT64_MAX + 1) / chunk_size; }

int layer_load(struct mdstore_txn *t, uint64_t id, struct md_layer *out)
{
	int rc = mdstore_get_layer(t, id, out);
	if (rc == -ENOENT) {
		log_error("reference to missing layer %llu", (unsigned long long)id);
		return -EIO;
	}
	return rc;
}

int layer_load_chunk(struct mdstore_txn *t, uint64_t id, struct md_chunk *out)
{
	int rc = mdstore_get_chunk(t, id, out);
	if (rc == -ENOENT) {
		log_error("reference to missing chunk %llu", (unsigned long long)id);
		return -EIO;
	}
	return rc;
}

int layer_depth(struct mdstore_txn *t, uint64_t layer, uint32_t *depth)
{
	*depth = 0;
	while (layer) {
		struct md_layer l;
		if (*depth >= LAYER_DEPTH_MAX) {
			log_error("layer %llu: ancestor chain too long (a cycle?)", (unsigned long long)layer);
			return -EIO;
		}
		int rc = layer_load(t, layer, &l);
		if (rc < 0)
			return rc;
		(*depth)++;
		layer = l.parent;
	}
	return 0;
}

int layer_ref(struct mdstore_txn *t, uint64_t id)
{
	struct md_layer l;
	int rc = layer_load(t, id, &l);
	if (rc < 0)
		return rc;
	l.refcount++;
	mdstore_put_layer(t, &l);
	return 0;
}

int layer_is_empty(struct mdstore_txn *t, uint64_t layer)
{
	struct mdstore_iter *it = NULL;
	struct mdstore_key prefix;
	const uint8_t *key, *val;
	size_t kl, vl;
	mdstore_key_chunkent_prefix(&prefix, layer);
	int rc = mdstore_iter_open(mdstore_txn_store(t), &prefix, NULL, &it);
	if (rc < 0)
		return rc;
	rc = mdstore_iter_next(it, &key, &kl, &val, &vl);
	mdstore_iter_close(it);
	return rc < 0 ? rc : rc == 0;
}

int layer_create(struct mdstore_txn *t, uint32_t vol, uint64_t parent, uint64_t *id)
{
	struct md_layer l = {.parent = parent, .refcount = 1, .vol = vol};
	int rc;
	if (parent) {
		uint32_t depth;
		rc = layer_depth(t, parent, &depth);
		if (rc < 0)
			return rc;
		if (depth + 1 > VDIFS_DEPTH_MAX)
			return -EMLINK;
		rc = layer_ref(t, parent);
		if (rc < 0)
			return rc;
	}
	rc = mdstore_counter_next(t, "layer", false, 0, &l.id);
	if (rc < 0)
		return rc;
	mdstore_put_layer(t, &l);
	*id = l.id;
	return 0;
}

/* Drops one layer-entry reference to chunk id; at zero deletes the chunk and
 * queues each replica for deletion on its server.  0 or -errno. */
int layer_chunk_unref(struct mdstore_txn *t, uint64_t id)
{
	struct md_chunk c;
	struct mdstore_key k;
	int rc = layer_load_chunk(t, id, &c);
	if (rc < 0)
		return rc;
	if (c.refcount > 1) {
		c.refcount--;
		mdstore_put_chunk(t, &c);
		return 0;
	}
	mdstore_key_chunk(&k, id);
	mdstore_txn_del(t, &k);
	for (uint32_t i = 0; i < c.nrep; i++) {
		mdstore_key_gc(&k, c.ds[i], id);
		mdstore_txn_put(t, &k, NULL, 0);
	}
	rc = mdstore_counter_add(t, "chunks", false, 0, -1);
	if (rc == 0)
		rc = mdstore_counter_add(t, "vchunks", true, c.vol, -1);
	return rc;
}

/* Parses a chunk-table key of layer; false when it is malformed. */
static bool ent_key(const uint8_t *k, size_t kl, uint64_t *index)
{
	if (kl != 17)
		return false;
	*index = mdstore_be64(k + 9);
	return true;
}

static int view_collect(struct mdstore_txn *t, uint64_t layer, uint64_t first, uint64_t end, size_t limit,
			struct layer_ent **out, size_t *nout);

/*
 * Removes the own-layer entries in [first, end) and dereferences their chunks.
 * The scan reads committed state; each entry is re-read through the
 * transaction so one already removed by it is not freed twice.
 */
static int drop_own(struct mdstore_txn *t, uint64_t layer, uint64_t first, uint64_t end)
{
	struct mdstore_iter *it = NULL;
	struct mdstore_key prefix, start, k;
	const uint8_t *key, *val;
	size_t kl, vl;
	int rc;

	mdstore_key_chunkent_prefix(&prefix, layer);
	mdstore_key_chunkent(&start, layer, first);
	rc = mdstore_iter_open(mdstore_txn_store(t), &prefix, &start, &it);
	if (rc < 0)
		return rc;
	while ((rc = mdstore_iter_next(it, &key, &kl, &val, &vl)) > 0) {
		uint64_t index, chunk;
		if (!ent_key(key, kl, &index)) {
			log_error("corrupt chunk-table key in layer %llu", (unsigned long long)layer);
			rc = -EIO;
			break;
		}
		if (index >= end)
			break;
		rc = mdstore_get_chunkent(t, layer, index, &chunk);
		if (rc == -ENOENT)
			continue;
		if (rc < 0)
			break;
		mdstore_key_chunkent(&k, layer, index);
		mdstore_txn_del(t, &k);
		if (chunk == 0)
			continue;
		rc = layer_chunk_unref(t, chunk);
		if (rc < 0)
			break;
	}
	mdstore_iter_close(it);
	return rc < 0 ? rc : 0;
}

/* Writes HOLE in layer wherever an ancestor of it has an entry in [first, end). */
static int hide_ancestors(struct mdstore_txn *t, uint64_t layer, uint64_t first, uint64_t end)
{
	struct md_layer l;
	int rc = layer_load(t, layer, &l);
	if (rc < 0)
		return rc;
	for (int depth = 0; l.parent; depth++) {
		struct mdstore_iter *it = NULL;
		struct mdstore_key prefix, start;
		const uint8_t *key, *val;
		size_t kl, vl;
		uint64_t anc = l.parent;

		if (depth >= LAYER_DEPTH_MAX) {
			log_error("layer %llu: ancestor chain too long (a cycle?)", (unsigned long long)layer);
			return -EIO;
		}
		mdstore_key_chunkent_prefix(&prefix, anc);
		mdstore_key_chunkent(&start, anc, first);
		rc = mdstore_iter_open(mdstore_txn_store(t), &prefix, &start, &it);
		if (rc < 0)
			return rc;
		while ((rc = mdstore_iter_next(it, &key, &kl, &val, &vl)) > 0) {
			uint64_t index;
			if (!ent_key(key, kl, &index)) {
				rc = -EIO;
				break;
			}
			if (index >= end)
				break;
			mdstore_put_chunkent(t, layer, index, 0);
		}
		mdstore_iter_close(it);
		if (rc < 0)
			return rc;
		rc = layer_load(t, anc, &l);
		if (rc < 0)
			return rc;
	}
	return 0;
}

/* Over the chunks entries ents[0..n) name: *blocks, the 512-byte blocks
 * they are charged, and *owned, the bytes they own (a delta its own
 * extents).  0 or -errno (-EIO for a missing chunk). */
static int sum_chunks(struct mdstore_txn *t, const struct layer_ent *ents, size_t n, uint64_t *blocks,
		      uint64_t *owned)
{
	*blocks = *owned = 0;
	for (size_t e = 0; e < n; e++) {
		struct md_chunk c;
		if (ents[e].chunk == 0)
			continue;
		int rc = layer_load_chunk(t, ents[e].chunk, &c);
		if (rc < 0)
			return rc;
		*blocks += layer_alloc_blocks(c.alloc);
		*owned += c.base ? (c.own < c.alloc ? c.own : c.alloc) : c.alloc;
	}
	return 0;
}

int layer_drop_range(struct mdstore_txn *t, uint64_t layer, uint64_t first, uint64_t count,
		     uint64_t *freed_blocks)
{
	uint64_t end = range_end(first, count);
	struct layer_ent *ents = NULL;
	size_t n = 0;
	*freed_blocks = 0;
	if (first >= end)
		return 0;
	/* What the range showed is what the file stops being charged for. */
	uint64_t owned;
	int rc = view_collect(t, layer, first, end, SIZE_MAX, &ents, &n);
	if (rc == 0)
		rc = sum_chunks(t, ents, n, freed_blocks, &owned);
	free(ents);
	if (rc < 0)
		return rc;
	rc = drop_own(t, layer, first, end);
	if (rc < 0)
		return rc;
	return hide_ancestors(t, layer, first, end);
}

int layer_unref(struct mdstore_txn *t, uint64_t id)
{
	/* Iterative over the ancestor chain: freeing a layer drops its parent. */
	for (int depth = 0; id; depth++) {
		struct md_layer l;
		struct mdstore_key k;
		int rc;

		if (depth >= LAYER_DEPTH_MAX)
			return -EIO;
		rc = layer_load(t, id, &l);
		if (rc < 0)
			return rc;
		if (l.refcount > 1) {
			l.refcount--;
			mdstore_put_layer(t, &l);
			return 0;
		}
		rc = drop_own(t, id, 0, UINT64_MAX);
		if (rc < 0)
			return rc;
		mdstore_key_layer(&k, id);
		mdstore_txn_del(t, &k);
		id = l.parent;
	}
	return 0;
}

/* Loads a file's writable layer.  -EROFS when it is frozen (a snapshot). */
static int writable_layer(struct mdstore_txn *t, const struct md_inode *i)
{
	struct md_layer l;
	int rc = layer_load(t, i->layer, &l);
	if (rc < 0)
		return rc;
	return (l.flags & MD_LAYER_FROZEN) ? -EROFS : 0;
}

int layer_truncate(struct mdstore_txn *t, struct md_inode *i, uint64_t chunk_size, uint64_t size)
{
	uint64_t first = size / chunk_size + (size % chunk_size != 0);
	uint64_t freed = 0;
	if (!S_ISREG(i->mode) || i->layer == 0)
		return -EINVAL;
	int rc = writable_layer(t, i);
	if (rc < 0)
		return rc;
	rc = layer_drop_range(t, i->layer, first, UINT64_MAX, &freed);
	if (rc < 0)
		return rc;
	i->blocks = freed > i->blocks ? 0 : i->blocks - freed;
	return 0;
}

/* ---- requests ---------------------------------------------------------------- */

/* Loads the volume and a regular file of it.  -ENOENT, -EISDIR (a directory),
 * -EINVAL (another type, or a file without a layer), -EIO. */
static int load_file(struct mdstore_txn *t, uint32_t vol, uint64_t ino, struct md_volume *v,
		     struct md_inode *i)
{
	int rc = mdstore_get_volume(t, vol, v);
	if (rc < 0)
		return rc;
	rc = mdstore_get_inode(t, vol, ino, i);
	if (rc < 0)
		return rc;
	if (S_ISDIR(i->mode))
		return -EISDIR;
	if (!S_ISREG(i->mode))
		return -EINVAL;
	if (i->layer == 0) {
		log_error("volume %u inode %llu: regular file without a layer", vol, (unsigned long long)ino);
		return -EIO;
	}
	return 0;
}

int layer_put_chunk_loc(const struct mds *m, struct mdstore_txn *t, struct wbuf *b, uint64_t index,
			const struct md_chunk *c, uint32_t flags)
{
	struct wbuf reps, bases;
	uint32_t nbase = 0;
	int rc = 0;
	wbuf_init(&reps);
	wbuf_init(&bases);
	for (uint32_t i = 0; i < c->nrep; i++)
		dsreg_put_replica(m->dsreg, &reps, c->ds[i]);
	for (uint64_t base = c->base; base && rc == 0; nbase++) {
		struct md_chunk bc;
		if (nbase >= VDIFS_DEPTH_MAX - 1) {
			log_error("chunk %llu: chain of bases too long", (unsigned long long)c->id);
			rc = -EIO;
			break;
		}
		rc = mdstore_get_chunk(t, base, &bc);
		if (rc == -ENOENT) {
			log_error("chunk %llu: missing base chunk %llu", (unsigned long long)c->id,
				  (unsigned long long)base);
			rc = -EIO;
		}
		if (rc < 0)
			break;
		msg_base_ref_put(&bases, &(struct msg_base_ref){.chunk_id = bc.id, .version = bc.version});
		base = bc.base;
	}
	struct msg_chunk_loc loc = {
		.index = index,
		.chunk_id = c->id,
		.version = c->version,
		.flags = flags,
		.nrep = c->nrep,
		.replicas = {reps.data, (uint32_t)reps.len},
		.extent = c->base ? c->extent : 0,
		.nbase = nbase,
		.bases = {bases.data, (uint32_t)bases.len},
	};
	if (rc == 0 && (reps.err || bases.err))
		rc = -ENOMEM;
	if (rc == 0)
		msg_chunk_loc_put(b, &loc);
	wbuf_free(&reps);
	wbuf_free(&bases);
	return rc == 0 && b->err ? -ENOMEM : rc;
}

/* Scans the entries (HOLEs included) of layer in [first, end) into a
 * malloc'ed array.  -E2BIG past limit entries. */
static int scan_range(struct mdstore *st, uint64_t layer, uint64_t first, uint64_t end, size_t limit,
		      struct layer_ent **out, size_t *nout)
{
	struct mdstore_iter *it = NULL;
	struct mdstore_key prefix, start;
	struct layer_ent *ents = NULL;
	size_t n = 0, cap = 0;
	const uint8_t *key, *val;
	size_t kl, vl;
	int rc;

	mdstore_key_chunkent_prefix(&prefix, layer);
	mdstore_key_chunkent(&start, layer, first);
	rc = mdstore_iter_open(st, &prefix, &start, &it);
	if (rc < 0)
		return rc;
	while ((rc = mdstore_iter_next(it, &key, &kl, &val, &vl)) > 0) {
		uint64_t index, chunk;
		if (!ent_key(key, kl, &index) || mdstore_decode_chunkent(val, vl, &chunk) < 0) {
			log_error("corrupt chunk-table entry in layer %llu", (unsigned long long)layer);
			rc = -EIO;
			goto fail;
		}
		if (index >= end)
			break;
		if (n == limit) {
			rc = -E2BIG;
			goto fail;
		}
		if (n == cap) {
			cap = cap ? cap * 2 : 64;
			struct layer_ent *e = realloc(ents, cap * sizeof(*e));
			if (!e) {
				rc = -ENOMEM;
				goto fail;
			}
			ents = e;
		}
		ents[n++] = (struct layer_ent){index, chunk, false};
	}
	if (rc < 0)
		goto fail;
	mdstore_iter_close(it);
	*out = ents;
	*nout = n;
	return 0;
fail:
	mdstore_iter_close(it);
	free(ents);
	return rc;
}

/* Merges the sorted ancestor entries b into the sorted entries a: an index
 * already in a keeps a's entry (the nearer layer wins).  Frees both inputs
 * on success; on -ENOMEM leaves them. */
static int merge_ents(struct layer_ent **a, size_t *na, struct layer_ent *b, size_t nb)
{
	if (nb == 0) {
		free(b);
		return 0;
	}
	struct layer_ent *m = malloc((*na + nb) * sizeof(*m));
	if (!m)
		return -ENOMEM;
	size_t i = 0, j = 0, n = 0;
	while (i < *na || j < nb) {
		if (j == nb || (i < *na && (*a)[i].index < b[j].index)) {
			m[n++] = (*a)[i++];
		} else if (i == *na || b[j].index < (*a)[i].index) {
			m[n++] = b[j++];
		} else {
			m[n++] = (*a)[i++];
			j++;
		}
	}
	free(*a);
	free(b);
	*a = m;
	*na = n;
	return 0;
}

/* The entries (HOLEs included) the file whose layer is layer shows in
 * [first, end): for each index the nearest layer's entry, in index order,
 * in a malloc'ed array.  -E2BIG past limit entries, -EIO, -ENOMEM. */
static int view_collect(struct mdstore_txn *t, uint64_t layer, uint64_t first, uint64_t end, size_t limit,
			struct layer_ent **out, size_t *nout)
{
	struct layer_ent *ents = NULL, *more = NULL;
	size_t n = 0, nmore = 0;
	int rc = 0;
	for (int depth = 0; layer; depth++) {
		struct md_layer l;
		if (depth >= LAYER_DEPTH_MAX) {
			rc = -EIO;
			break;
		}
		rc = layer_load(t, layer, &l);
		if (rc < 0)
			break;
		rc = scan_range(mdstore_txn_store(t), layer, first, end, limit, &more, &nmore);
		if (rc < 0)
			break;
		/* An ancestor's chunks are frozen for good: a layer is thawed
		 * only while it is still a file's own (flatten.c, thaw). */
		for (size_t k = 0; depth > 0 && k < nmore; k++)
			more[k].shared = (l.flags & MD_LAYER_FROZEN) != 0;
		rc = merge_ents(&ents, &n, more, nmore);
		if (rc < 0) {
			free(more);
			break;
		}
		if (n > limit) {
			rc = -E2BIG;
			break;
		}
		layer = l.parent;
	}
	if (rc < 0) {
		free(ents);
		return rc;
	}
	*out = ents;
	*nout = n;
	return 0;
}

int layer_view(struct mdstore_txn *t, uint64_t layer, uint64_t first, uint64_t end, struct layer_ent **out,
	       size_t *nout)
{
	return view_collect(t, layer, first, end, SIZE_MAX, out, nout);
}

int layer_space(struct mdstore_txn *t, uint64_t layer, uint64_t *blocks, uint64_t *owned)
{
	struct layer_ent *ents = NULL;
	size_t n = 0;
	*blocks = *owned = 0;
	int rc = scan_range(mdstore_txn_store(t), layer, 0, UINT64_MAX, SIZE_MAX, &ents, &n);
	if (rc == 0)
		rc = sum_chunks(t, ents, n, blocks, owned);
	free(ents);
	return rc;
}

int layer_layout(struct mds *m, const struct msg_layout_req *req, struct wbuf *items, uint32_t *count)
{
	struct mdstore_txn *t = mdstore_txn_begin(m->store);
	struct layer_ent *ents = NULL;
	size_t n = 0;
	struct md_volume v;
	struct md_inode i;
	uint64_t end = range_end(req->first, req->max);
	int rc;

	*count = 0;
	if (!t)
		return -ENOMEM;
	rc = load_file(t, req->vol, req->ino, &v, &i);
	if (rc < 0)
		goto out;
	if (req->first >= end)
		goto out;
	rc = view_collect(t, i.layer, req->first, end, 4 * (size_t)LAYER_LAYOUT_MAX, &ents, &n);
	if (rc < 0)
		goto out;

	for (size_t e = 0; e < n; e++) {
		struct md_chunk c;
		if (ents[e].chunk == 0)
			continue;
		if (*count == LAYER_LAYOUT_MAX) {
			rc = -E2BIG;
			goto out;
		}
		rc = layer_load_chunk(t, ents[e].chunk, &c);
		if (rc < 0)
			goto out;
		rc = layer_put_chunk_loc(m, t, items, ents[e].index, &c, ents[e].shared ? VDIFS_CHUNK_SHARED : 0);
		if (rc < 0)
			goto out;
		(*count)++;
	}
out:
	free(ents);
	mdstore_txn_abort(t);
	return rc;
}

/* The entry an ancestor of layer has at index: 0 and *chunk (0 when none or
 * a HOLE). */
static int ancestor_chunk(struct mdstore_txn *t, uint64_t layer, uint64_t index, uint64_t *chunk)
{
	struct md_layer l;
	*chunk = 0;
	int rc = mdstore_get_layer(t, layer, &l);
	for (int depth = 0; rc == 0 && l.parent; depth++) {
		if (depth >= LAYER_DEPTH_MAX)
			return -EIO;
		rc = mdstore_get_chunkent(t, l.parent, index, chunk);
		if (rc == 0)
			return 0;
		if (rc != -ENOENT)
			return rc;
		rc = mdstore_get_layer(t, l.parent, &l);
	}
	return rc == -ENOENT ? -EIO : rc;
}

int layer_chunk_add(struct mdstore_txn *t, const struct md_volume *v, uint64_t layer, uint64_t index,
		    struct md_chunk *c)
{
	int rc = mdstore_counter_next(t, "chunk", false, 0, &c->id);
	if (rc < 0)
		return rc;
	c->version = 1;
	c->chunk_size = v->chunk_size;
	c->refcount = 1;
	c->vol = v->id;
	mdstore_put_chunk(t, c);
	mdstore_put_chunkent(t, layer, index, c->id);
	rc = mdstore_counter_add(t, "chunks", false, 0, 1);
	return rc < 0 ? rc : mdstore_counter_add(t, "vchunks", true, v->id, 1);
}

int layer_chunk_alloc(struct mds *m, const struct msg_chunk_alloc_req *req, bool settle, struct wbuf *reply)
{
	struct mdstore_txn *t = mdstore_txn_begin(m->store);
	struct md_volume v;
	struct md_inode i;
	struct md_chunk c;
	uint64_t existing = 0, base = 0;
	int rc;

	if (!t)
		return -ENOMEM;
	rc = load_file(t, req->vol, req->ino, &v, &i);
	if (rc < 0)
		goto fail;
	rc = writable_layer(t, &i);
	if (rc < 0)
		goto fail;
	if (req->index >= index_limit(v.chunk_size)) {
		rc = -EFBIG;
		goto fail;
	}
	rc = mdstore_get_chunkent(t, i.layer, req->index, &existing);
	if (rc == 0 && existing) {
		rc = layer_load_chunk(t, existing, &c);
		if (rc < 0)
			goto fail;
		rc = layer_put_chunk_loc(m, t, reply, req->index, &c, 0);
		mdstore_txn_abort(t);
		return rc;
	}
	if (rc == -ENOENT) {
		/* No entry of its own: a write over an ancestor's chunk makes a
		 * delta chunk on that chunk (issue 3).  A HOLE inherits nothing. */
		rc = ancestor_chunk(t, i.layer, req->index, &base);
	}
	if (rc < 0)
		goto fail;

	memset(&c, 0, sizeof(c));
	if (base) {
		/* A delta chunk lives where its base does, so that copy-on-write
		 * reads the base from the local disk: only base servers qualify. */
		struct md_chunk b;
		uint32_t got[VDIFS_MAX_REPLICAS], ngot = 0;
		rc = layer_load_chunk(t, base, &b);
		if (rc < 0)
			goto fail;
		rc = dsreg_place(m->dsreg, v.replicas < b.nrep ? v.replicas : b.nrep, b.ds, b.nrep, got, &ngot);
		for (uint32_t g = 0; rc == 0 && g < ngot; g++)
			for (uint32_t k = 0; k < b.nrep; k++)
				if (got[g] == b.ds[k])
					c.ds[c.nrep++] = got[g];
		if (rc == 0 && c.nrep == 0)
			rc = -ENOSPC;
		c.extent = v.extent_size;
		c.alloc = b.alloc; /* same content as the base until written */
	} else {
		rc = dsreg_place(m->dsreg, v.replicas, NULL, 0, c.ds, &c.nrep);
	}
	/* Just after a restart the servers have not all reported yet: better
	 * to wait a moment than to place fewer replicas (or fail) for good. */
	if (settle && (rc == -ENOSPC || (rc == 0 && c.nrep < v.replicas && !base)) && dsreg_settling(m->dsreg))
		rc = -EAGAIN;
	if (rc < 0)
		goto fail;
	c.base = base;
	rc = layer_chunk_add(t, &v, i.layer, req->index, &c);
	if (rc < 0)
		goto fail;
	/* The reply is sent only when the commit succeeds (rc 0). */
	rc = layer_put_chunk_loc(m, t, reply, req->index, &c, 0);
	if (rc < 0)
		goto fail;
	rc = mdstore_txn_commit(t);
	if (rc < 0)
		return rc;
	if (c.nrep < v.replicas)
		log_warn("volume %s: chunk %llu placed on %u data servers of %u wanted (not enough up)", v.name,
			 (unsigned long long)c.id, c.nrep, v.replicas);
	return 0;
fail:
	mdstore_txn_abort(t);
	return rc;
}

int layer_chunk_drop(struct mds *m, const struct msg_chunk_drop_req *req)
{
	struct mdstore_txn *t = mdstore_txn_begin(m->store);
	struct md_volume v;
	struct md_inode i;
	uint64_t freed = 0;
	int rc;

	if (!t)
		return -ENOMEM;
	rc = load_file(t, req->vol, req->ino, &v, &i);
	if (rc < 0)
		goto fail;
	rc = writable_layer(t, &i);
	if (rc < 0)
		goto fail;
	rc = layer_drop_range(t, i.layer, req->first, req->count, &freed);
	if (rc < 0)
		goto fail;
	i.blocks = freed > i.blocks ? 0 : i.blocks - freed;
	mdstore_now(&i.mtime);
	i.ctime = i.mtime;
	mdstore_put_inode(t, &i);
	return mdstore_txn_commit(t);
fail:
	mdstore_txn_abort(t);
	return rc;
}

int layer_commit(struct mds *m, const struct msg_commit_req *req, struct vdifs_attr *out)
{
	struct mdstore_txn *t = NULL;
	struct md_volume v;
	struct md_inode i;
	struct wreader r;
	int rc;

	/* Check every item before touching anything: a malformed list is the
	 * sender's bug and closes its connection. */
	wreader_init(&r, req->items.p, req->items.len);
	for (uint32_t n = 0; n < req->count && !r.err; n++) {
		struct msg_alloc a;
		msg_alloc_get(&r, &a);
	}
	if (wreader_finish(&r) < 0)
		return -EBADMSG;
	if ((req->flags & VDIFS_COMMIT_SIZE) && req->size > (uint64_t)INT64_MAX)
		return -EFBIG;
	if ((req->flags & VDIFS_COMMIT_MTIME) && req->mtime_ns >= 1000000000u)
		return -EINVAL;

	t = mdstore_txn_begin(m->store);
	if (!t)
		return -ENOMEM;
	rc = load_file(t, req->vol, req->ino, &v, &i);
	if (rc == 0)
		rc = writable_layer(t, &i); /* a snapshot's size and chunks never change */
	if (rc < 0)
		goto fail;

	wreader_init(&r, req->items.p, req->items.len);
	for (uint32_t n = 0; n < req->count; n++) {
		struct msg_alloc a;
		uint64_t chunk;
		struct md_chunk c;
		msg_alloc_get(&r, &a);
		rc = mdstore_get_chunkent(t, i.layer, a.index, &chunk);
		if (rc == -ENOENT || (rc == 0 && chunk != a.chunk_id))
			continue; /* dropped or replaced since the client wrote it */
		if (rc < 0)
			goto fail;
		rc = layer_load_chunk(t, chunk, &c);
		if (rc < 0)
			goto fail;
		uint64_t bytes = a.bytes > c.chunk_size ? c.chunk_size : a.bytes;
		c.own = a.own > bytes ? bytes : a.own;
		uint64_t old = layer_alloc_blocks(c.alloc);
		i.blocks = (old > i.blocks ? 0 : i.blocks - old) + layer_alloc_blocks(bytes);
		c.alloc = bytes;
		mdstore_put_chunk(t, &c);
	}
	if ((req->flags & VDIFS_COMMIT_SIZE) && req->size > i.size)
		i.size = req->size;
	if (req->flags & VDIFS_COMMIT_MTIME) {
		i.mtime.s = req->mtime_s;
		i.mtime.ns = req->mtime_ns;
		mdstore_now(&i.ctime);
	}
	mdstore_put_inode(t, &i);
	rc = mdstore_txn_commit(t);
	if (rc < 0)
		return rc;
	mdstore_inode_attr(&i, out);
	return 0;
fail:
	mdstore_txn_abort(t);
	return rc;
}

int layer_count_chunks(struct mds *m, uint64_t *count)
{
	struct mdstore_txn *t = mdstore_txn_begin(m->store);
	if (!t)
		return -ENOMEM;
	int rc = mdstore_counter_get(t, "chunks", false, 0, count);
	mdstore_txn_abort(t);
	return rc;
}
