/*
 * fsck: consistency check and repair of the MDS store (see fsck.h).
 *
 * Reads every inode, layer and chunk record into hash tables, then walks
 * the records that reference them (dirents, orphan and flatten records,
 * chunk tables), counting references; findings are compared with the
 * records and, with repair, fixed in one transaction at the end in an order
 * that keeps the free paths' arithmetic right: id and live counters first,
 * then records set to what was counted, then orphans freed (their frees
 * decrement what was just set).
 */
#include "fsck.h"

#include "layer.h"
#include "log.h"
#include "mdstore.h"
#include "replicas.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>

enum fsck_kind {
	K_DANGLING_DIRENT, K_DIRENT_TYPE, K_LINK_COUNT, K_UNNAMED_INODE, K_ORPHAN_RECORD,
	K_MISSING_LAYER, K_MISSING_PARENT, K_FLATTEN_RECORD, K_LAYER_REFCOUNT, K_ORPHAN_LAYER,
	K_LAYER_CYCLE, K_LAYER_DEPTH, K_STRAY_CHUNK_ENTRY, K_MISSING_CHUNK, K_CHUNK_REFCOUNT,
	K_ORPHAN_CHUNK, K_MISSING_BASE, K_COUNTER, K_MISSING_REPLICA, K_ORPHAN_REPLICA, K_NKINDS
};
static const char *const kind_names[K_NKINDS] = {
	"dangling_dirent", "dirent_type", "link_count", "unnamed_inode", "orphan_record",
	"missing_layer", "missing_parent", "flatten_record", "layer_refcount", "orphan_layer",
	"layer_cycle", "layer_depth", "stray_chunk_entry", "missing_chunk", "chunk_refcount",
	"orphan_chunk", "missing_base", "counter", "missing_replica", "orphan_replica",
};

struct f_inode {
	uint32_t vol, mode, nlink, flags;
	uint64_t ino, layer;
	uint32_t links, subdirs;
	bool orphan;
};
struct f_layer {
	uint64_t id, parent;
	uint32_t refcount, refs, vol;
	bool bad_chain; /* cyclic: never freed */
};
struct f_chunk {
	uint64_t id, base;
	uint32_t refcount, refs, vol, nrep;
	uint32_t ds[VDIFS_MAX_REPLICAS];
	bool is_base; /* the base of a delta chunk: never freed as an orphan */
	bool written; /* the MDS knows data was written (own bytes committed) */
};

/* Open-addressing map (a, b) -> index into one of the arrays. */
struct fmap {
	uint64_t *ka, *kb;
	uint32_t *val; /* index + 1; 0 = empty */
	size_t cap, n;
};

struct finding {
	uint8_t kind;
	bool repairable;
	char line[240];
};

struct fsck {
	struct mds *m;
	bool repair;
	struct mdstore_txn *t; /* repairs, when repair */
	struct f_inode *inodes;
	size_t ninodes, capinodes;
	struct f_layer *layers;
	size_t nlayers, caplayers;
	struct f_chunk *chunks;
	size_t nchunks, capchunks;
	struct fmap imap, lmap, cmap;
	uint32_t *vols;
	size_t nvols, capvols;
	uint64_t found[K_NKINDS], fixable[K_NKINDS];
	struct finding *items;
	size_t nitems, capitems;
	uint64_t keys;
	int err; /* sticky -ENOMEM */
};

static uint64_t fmap_hash(uint64_t a, uint64_t b)
{
	uint64_t h = (a * 0x9E3779B97F4A7C15ull) ^ (b + 0x632BE59BD9B4E019ull + (a << 6));
	return h ^ (h >> 29);
}

static int fmap_grow(struct fmap *m)
{
	size_t cap = m->cap ? m->cap * 2 : 1024;
	struct fmap nm = {calloc(cap, 8), calloc(cap, 8), calloc(cap, 4), cap, 0};
	if (!nm.ka || !nm.kb || !nm.val) {
		free(nm.ka);
		free(nm.kb);
		free(nm.val);
		return -ENOMEM;
	}
	for (size_t i = 0; i < m->cap; i++) {
		if (!m->val[i])
			continue;
		size_t j = fmap_hash(m->ka[i], m->kb[i]) & (cap - 1);
		while (nm.val[j])
			j = (j + 1) & (cap - 1);
		nm.ka[j] = m->ka[i];
		nm.kb[j] = m->kb[i];
		nm.val[j] = m->val[i];
	}
	nm.n = m->n;
	free(m->ka);
	free(m->kb);
	free(m->val);
	*m = nm;
	return 0;
}

static int fmap_put(struct fmap *m, uint64_t a, uint64_t b, size_t idx)
{
	if ((m->n + 1) * 2 > m->cap && fmap_grow(m) < 0)
		return -ENOMEM;
	size_t j = fmap_hash(a, b) & (m->cap - 1);
	while (m->val[j])
		j = (j + 1) & (m->cap - 1);
	m->ka[j] = a;
	m->kb[j] = b;
	m->val[j] = (uint32_t)idx + 1;
	m->n++;
	return 0;
}

/* Index of (a, b), or -1. */
static ssize_t fmap_get(const struct fmap *m, uint64_t a, uint64_t b)
{
	if (!m->cap)
		return -1;
	for (size_t j = fmap_hash(a, b) & (m->cap - 1); m->val[j]; j = (j + 1) & (m->cap - 1))
		if (m->ka[j] == a && m->kb[j] == b)
			return (ssize_t)m->val[j] - 1;
	return -1;
}

static void fmap_free(struct fmap *m)
{
	free(m->ka);
	free(m->kb);
	free(m->val);
}

/* Room for one more element in *arr (n used of *cap); NULL on ENOMEM. */
static void *grow(void **arr, size_t *cap, size_t n, size_t size)
{
	if (n == *cap) {
		size_t nc = *cap ? *cap * 2 : 256;
		void *p = realloc(*arr, nc * size);
		if (!p)
			return NULL;
		*arr = p;
		*cap = nc;
	}
	return (uint8_t *)*arr + n * size;
}

static struct f_inode *inode_of(struct fsck *f, uint32_t vol, uint64_t ino)
{
	ssize_t i = fmap_get(&f->imap, vol, ino);
	return i < 0 ? NULL : &f->inodes[i];
}
static struct f_layer *layer_of(struct fsck *f, uint64_t id)
{
	ssize_t i = fmap_get(&f->lmap, id, 0);
	return i < 0 ? NULL : &f->layers[i];
}
static struct f_chunk *chunk_of(struct fsck *f, uint64_t id)
{
	ssize_t i = fmap_get(&f->cmap, id, 0);
	return i < 0 ? NULL : &f->chunks[i];
}

/* Records one inconsistency (repairable: what repair would do about it). */
static void __attribute__((format(printf, 4, 5))) finding(struct fsck *f, enum fsck_kind kind, bool repairable,
							 const char *fmt, ...)
{
	char line[240];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	f->found[kind]++;
	if (repairable)
		f->fixable[kind]++;
	log_warn("fsck: %s: %s%s", kind_names[kind], line,
		 !repairable ? " (not repairable)" : f->repair ? " (repairing)" : "");
	if (f->nitems >= VDIFS_FSCK_ITEMS_MAX)
		return;
	struct finding *it = grow((void **)&f->items, &f->capitems, f->nitems, sizeof(*it));
	if (!it) {
		f->err = -ENOMEM;
		return;
	}
	*it = (struct finding){.kind = (uint8_t)kind, .repairable = repairable};
	snprintf(it->line, sizeof(it->line), "%s", line);
	f->nitems++;
}

typedef int (*scan_fn)(struct fsck *f, const uint8_t *key, size_t klen, const uint8_t *val, size_t vlen);

/* Calls fn for every committed key with tag. */
static int scan(struct fsck *f, char tag, scan_fn fn)
{
	struct mdstore_key prefix;
	struct mdstore_iter *it;
	const uint8_t *key, *val;
	size_t klen, vlen;
	mdstore_key_tag(&prefix, tag);
	int rc = mdstore_iter_open(f->m->store, &prefix, NULL, &it);
	if (rc < 0)
		return rc;
	while ((rc = mdstore_iter_next(it, &key, &klen, &val, &vlen)) == 1) {
		f->keys++;
		rc = fn(f, key, klen, val, vlen);
		if (rc == 0)
			rc = f->err;
		if (rc < 0)
			break;
	}
	mdstore_iter_close(it);
	return rc < 0 ? rc : 0;
}

/* Stages the deletion of a raw key (repair only). */
static void del_key(struct fsck *f, const uint8_t *key, size_t klen)
{
	if (!f->repair || klen > MDSTORE_KEY_MAX)
		return;
	struct mdstore_key k = {.len = klen};
	memcpy(k.b, key, klen);
	mdstore_txn_del(f->t, &k);
}

static int corrupt(const char *what, size_t klen)
{
	log_error("fsck: malformed %s key (%zu bytes)", what, klen);
	return -EIO;
}

/* ---- loading --------------------------------------------------------------------- */

static int load_layer(struct fsck *f, const uint8_t *key, size_t klen, const uint8_t *val, size_t vlen)
{
	struct md_layer l;
	if (klen != 9)
		return corrupt("layer", klen);
	int rc = mdstore_decode_layer(val, vlen, &l);
	if (rc < 0)
		return rc;
	struct f_layer *e = grow((void **)&f->layers, &f->caplayers, f->nlayers, sizeof(*e));
	if (!e || fmap_put(&f->lmap, mdstore_be64(key + 1), 0, f->nlayers) < 0)
		return -ENOMEM;
	*e = (struct f_layer){.id = mdstore_be64(key + 1), .parent = l.parent, .refcount = l.refcount, .vol = l.vol};
	f->nlayers++;
	return 0;
}

static int load_chunk(struct fsck *f, const uint8_t *key, size_t klen, const uint8_t *val, size_t vlen)
{
	struct md_chunk c;
	if (klen != 9)
		return corrupt("chunk", klen);
	int rc = mdstore_decode_chunk(val, vlen, &c);
	if (rc < 0)
		return rc;
	struct f_chunk *e = grow((void **)&f->chunks, &f->capchunks, f->nchunks, sizeof(*e));
	if (!e || fmap_put(&f->cmap, mdstore_be64(key + 1), 0, f->nchunks) < 0)
		return -ENOMEM;
	*e = (struct f_chunk){.id = mdstore_be64(key + 1), .base = c.base, .refcount = c.refcount, .vol = c.vol, .written = c.own > 0,
			      .nrep = c.nrep};
	memcpy(e->ds, c.ds, sizeof(e->ds));
	f->nchunks++;
	return 0;
}

static int load_inode(struct fsck *f, const uint8_t *key, size_t klen, const uint8_t *val, size_t vlen)
{
	struct md_inode i;
	if (klen != 13)
		return corrupt("inode", klen);
	int rc = mdstore_decode_inode(val, vlen, &i);
	if (rc < 0)
		return rc;
	struct f_inode *e = grow((void **)&f->inodes, &f->capinodes, f->ninodes, sizeof(*e));
	uint32_t vol = mdstore_be32(key + 1);
	uint64_t ino = mdstore_be64(key + 5);
	if (!e || fmap_put(&f->imap, vol, ino, f->ninodes) < 0)
		return -ENOMEM;
	*e = (struct f_inode){.vol = vol, .ino = ino, .mode = i.mode, .nlink = i.nlink, .flags = i.flags,
			      .layer = S_ISREG(i.mode) ? i.layer : 0};
	f->ninodes++;
	return 0;
}

static int load_volume(struct fsck *f, const uint8_t *key, size_t klen, const uint8_t *val, size_t vlen)
{
	(void)val;
	(void)vlen;
	if (klen != 5)
		return corrupt("volume", klen);
	uint32_t *v = grow((void **)&f->vols, &f->capvols, f->nvols, sizeof(*v));
	if (!v)
		return -ENOMEM;
	*v = mdstore_be32(key + 1);
	f->nvols++;
	return 0;
}

/* ---- references ----------------------------------------------------------------- */

static int check_orphan(struct fsck *f, const uint8_t *key, size_t klen, const uint8_t *val, size_t vlen)
{
	(void)val;
	(void)vlen;
	if (klen != 13)
		return corrupt("orphan", klen);
	uint32_t vol = mdstore_be32(key + 1);
	uint64_t ino = mdstore_be64(key + 5);
	struct f_inode *i = inode_of(f, vol, ino);
	if (!i) {
		finding(f, K_ORPHAN_RECORD, true, "volume %u: orphan record of inode %llu, which does not exist", vol,
			(unsigned long long)ino);
		del_key(f, key, klen);
	} else {
		i->orphan = true;
	}
	return 0;
}

static int check_dirent(struct fsck *f, const uint8_t *key, size_t klen, const uint8_t *val, size_t vlen)
{
	struct md_dirent d;
	if (klen < 14)
		return corrupt("dirent", klen);
	int rc = mdstore_decode_dirent(val, vlen, &d);
	if (rc < 0)
		return rc;
	uint32_t vol = mdstore_be32(key + 1);
	uint64_t dir = mdstore_be64(key + 5);
	int nl = (int)(klen - 13);
	const char *name = (const char *)key + 13;
	struct f_inode *p = inode_of(f, vol, dir);
	struct f_inode *c = inode_of(f, vol, d.ino);
	if (!p || !S_ISDIR(p->mode) || !c) {
		finding(f, K_DANGLING_DIRENT, true, "volume %u directory %llu entry '%.*s' -> inode %llu: %s", vol,
			(unsigned long long)dir, nl, name, (unsigned long long)d.ino,
			!p ? "the directory does not exist" : !S_ISDIR(p->mode) ? "not in a directory"
							       : "the inode does not exist");
		del_key(f, key, klen);
		return 0;
	}
	c->links++;
	if (S_ISDIR(c->mode) && !(c->flags & MD_INODE_SNAPDIR))
		p->subdirs++;
	if ((d.mode & S_IFMT) != (c->mode & S_IFMT)) {
		finding(f, K_DIRENT_TYPE, true, "volume %u directory %llu entry '%.*s' records type 0%o, inode %llu is 0%o",
			vol, (unsigned long long)dir, nl, name, d.mode & S_IFMT, (unsigned long long)d.ino,
			c->mode & S_IFMT);
		if (f->repair) {
			d.mode = c->mode & S_IFMT;
			mdstore_put_dirent(f->t, vol, dir, name, (size_t)nl, &d);
		}
	}
	return 0;
}

/* A layer reference from what (for the message); a missing layer is a finding
 * left to the caller. */
static bool ref_layer(struct fsck *f, uint64_t id)
{
	struct f_layer *l = layer_of(f, id);
	if (l)
		l->refs++;
	return l != NULL;
}

static int check_flatten(struct fsck *f, const uint8_t *key, size_t klen, const uint8_t *val, size_t vlen)
{
	if (klen != 13)
		return corrupt("flatten", klen);
	struct wreader r;
	wreader_init(&r, val, vlen);
	uint64_t flat = wreader_u64(&r), frozen = wreader_u64(&r);
	wreader_u64(&r);
	wreader_u64(&r);
	if (wreader_finish(&r) != 0) {
		log_error("fsck: corrupt flatten record of volume %u inode %llu", mdstore_be32(key + 1),
			  (unsigned long long)mdstore_be64(key + 5));
		return -EIO;
	}
	if (layer_of(f, flat) && layer_of(f, frozen)) {
		ref_layer(f, flat);
		ref_layer(f, frozen);
		return 0;
	}
	finding(f, K_FLATTEN_RECORD, true, "volume %u inode %llu: flatten record names missing layer %llu",
		mdstore_be32(key + 1), (unsigned long long)mdstore_be64(key + 5),
		(unsigned long long)(layer_of(f, flat) ? frozen : flat));
	del_key(f, key, klen); /* the surviving layer's refcount is set without it */
	return 0;
}

static int check_chunkent(struct fsck *f, const uint8_t *key, size_t klen, const uint8_t *val, size_t vlen)
{
	uint64_t chunk;
	if (klen != 17)
		return corrupt("chunk table", klen);
	int rc = mdstore_decode_chunkent(val, vlen, &chunk);
	if (rc < 0)
		return rc;
	uint64_t layer = mdstore_be64(key + 1), index = mdstore_be64(key + 9);
	if (!layer_of(f, layer)) {
		finding(f, K_STRAY_CHUNK_ENTRY, true, "chunk table entry %llu of layer %llu, which does not exist",
			(unsigned long long)index, (unsigned long long)layer);
		del_key(f, key, klen);
		return 0;
	}
	if (!chunk)
		return 0;
	struct f_chunk *c = chunk_of(f, chunk);
	if (c) {
		c->refs++;
		return 0;
	}
	finding(f, K_MISSING_CHUNK, true, "layer %llu index %llu names chunk %llu, which does not exist (becomes a hole)",
		(unsigned long long)layer, (unsigned long long)index, (unsigned long long)chunk);
	if (f->repair)
		mdstore_put_chunkent(f->t, layer, index, 0);
	return 0;
}

/* ---- checks on the loaded records --------------------------------------------------- */

static void check_inodes(struct fsck *f)
{
	for (size_t n = 0; n < f->ninodes; n++) {
		struct f_inode *i = &f->inodes[n];
		if (i->layer && !ref_layer(f, i->layer))
			finding(f, K_MISSING_LAYER, true,
				"volume %u inode %llu: its layer %llu does not exist (repair: a new empty layer, the "
				"content is lost)", i->vol, (unsigned long long)i->ino, (unsigned long long)i->layer);
		bool root = i->ino == 1 && S_ISDIR(i->mode);
		if (!i->links && !root && !i->orphan) {
			finding(f, K_UNNAMED_INODE, true,
				"volume %u inode %llu is named by no dirent and is no orphan (repair: freed at the next "
				"MDS start)", i->vol, (unsigned long long)i->ino);
			continue;
		}
		if (i->orphan && i->links) {
			finding(f, K_ORPHAN_RECORD, true, "volume %u inode %llu has an orphan record but %u names",
				i->vol, (unsigned long long)i->ino, i->links);
			if (f->repair) {
				struct mdstore_key k;
				mdstore_key_orphan(&k, i->vol, i->ino);
				mdstore_txn_del(f->t, &k);
			}
			i->orphan = false;
		}
		uint32_t want = S_ISDIR(i->mode) ? 2 + i->subdirs : i->orphan ? 0 : i->links;
		if (i->nlink != want)
			finding(f, K_LINK_COUNT, true, "volume %u inode %llu: link count %u, counted %u", i->vol,
				(unsigned long long)i->ino, i->nlink, want);
	}
}

/* Walks every layer's chain: a cycle, or a chain deeper than VDIFS_DEPTH_MAX. */
static void check_chains(struct fsck *f)
{
	for (size_t n = 0; n < f->nlayers; n++) {
		struct f_layer *l = &f->layers[n];
		if (l->parent && !layer_of(f, l->parent)) {
			finding(f, K_MISSING_PARENT, true, "layer %llu: parent layer %llu does not exist (cut off)",
				(unsigned long long)l->id, (unsigned long long)l->parent);
			continue;
		}
		if (l->parent)
			ref_layer(f, l->parent);
		uint64_t depth = 1;
		const struct f_layer *p = l;
		while (p->parent && depth <= f->nlayers) {
			p = layer_of(f, p->parent);
			if (!p)
				break;
			depth++;
		}
		if (p && p->parent && depth > f->nlayers) {
			finding(f, K_LAYER_CYCLE, false, "layer %llu: its chain of parents loops", (unsigned long long)l->id);
			l->bad_chain = true;
		} else if (depth > VDIFS_DEPTH_MAX) {
			finding(f, K_LAYER_DEPTH, false, "layer %llu: chain of %llu layers (the limit is %d)",
				(unsigned long long)l->id, (unsigned long long)depth, VDIFS_DEPTH_MAX);
		}
	}
}

static void check_refcounts(struct fsck *f)
{
	for (size_t n = 0; n < f->nlayers; n++) {
		const struct f_layer *l = &f->layers[n];
		if (!l->refs && !l->bad_chain)
			finding(f, K_ORPHAN_LAYER, true, "layer %llu (volume %u) is referenced by nothing (refcount %u)",
				(unsigned long long)l->id, l->vol, l->refcount);
		else if (l->refs != l->refcount)
			finding(f, K_LAYER_REFCOUNT, true, "layer %llu: refcount %u, counted %u", (unsigned long long)l->id,
				l->refcount, l->refs);
	}
	for (size_t n = 0; n < f->nchunks; n++) {
		const struct f_chunk *c = &f->chunks[n];
		struct f_chunk *b = c->base ? chunk_of(f, c->base) : NULL;
		if (b)
			b->is_base = true;
		else if (c->base)
			finding(f, K_MISSING_BASE, false, "delta chunk %llu: base chunk %llu does not exist",
				(unsigned long long)c->id, (unsigned long long)c->base);
	}
	for (size_t n = 0; n < f->nchunks; n++) {
		const struct f_chunk *c = &f->chunks[n];
		if (!c->refs && c->is_base)
			finding(f, K_ORPHAN_CHUNK, false, "chunk %llu (volume %u) is in no chunk table but is the base of "
				"a delta chunk (kept)", (unsigned long long)c->id, c->vol);
		else if (!c->refs)
			finding(f, K_ORPHAN_CHUNK, true, "chunk %llu (volume %u) is in no chunk table (refcount %u)",
				(unsigned long long)c->id, c->vol, c->refcount);
		else if (c->refs != c->refcount)
			finding(f, K_CHUNK_REFCOUNT, true, "chunk %llu: refcount %u, counted %u", (unsigned long long)c->id,
				c->refcount, c->refs);
	}
}

/* Compares counter name (per_vol: of vol) with want: exactly (live counts)
 * or at least (next-id counters). */
static int check_counter(struct fsck *f, const char *name, bool per_vol, uint32_t vol, uint64_t want, bool at_least)
{
	uint64_t have;
	struct mdstore_txn *t = f->t ? f->t : mdstore_txn_begin(f->m->store);
	if (!t)
		return -ENOMEM;
	int rc = mdstore_counter_get(t, name, per_vol, vol, &have);
	if (rc == 0 && (at_least ? have < want : have != want)) {
		char what[48];
		snprintf(what, sizeof(what), per_vol ? "%s of volume %u" : "%s", name, vol);
		finding(f, K_COUNTER, true, "counter %s is %llu, %s %llu", what, (unsigned long long)have,
			at_least ? "the next id must be at least" : "counted", (unsigned long long)want);
		if (f->repair)
			rc = mdstore_counter_add(t, name, per_vol, vol, (int64_t)(want - have));
	}
	if (t != f->t)
		mdstore_txn_abort(t);
	return rc;
}

static int check_counters(struct fsck *f)
{
	uint64_t max_layer = 0, max_chunk = 0, max_vol = 0;
	for (size_t n = 0; n < f->nlayers; n++)
		if (f->layers[n].id > max_layer)
			max_layer = f->layers[n].id;
	for (size_t n = 0; n < f->nchunks; n++)
		if (f->chunks[n].id > max_chunk)
			max_chunk = f->chunks[n].id;
	int rc = check_counter(f, "layer", false, 0, max_layer + 1, true);
	if (rc == 0)
		rc = check_counter(f, "chunk", false, 0, max_chunk + 1, true);
	if (rc == 0)
		rc = check_counter(f, "chunks", false, 0, f->nchunks, false);
	for (size_t v = 0; v < f->nvols && rc == 0; v++) {
		uint32_t vol = f->vols[v];
		uint64_t inodes = 0, max_ino = 0, vchunks = 0;
		if (vol > max_vol)
			max_vol = vol;
		for (size_t n = 0; n < f->ninodes; n++) {
			if (f->inodes[n].vol != vol)
				continue;
			inodes++;
			if (f->inodes[n].ino > max_ino)
				max_ino = f->inodes[n].ino;
		}
		for (size_t n = 0; n < f->nchunks; n++)
			vchunks += f->chunks[n].vol == vol;
		rc = check_counter(f, "ino", true, vol, max_ino + 1, true);
		if (rc == 0)
			rc = check_counter(f, "inodes", true, vol, inodes, false);
		if (rc == 0)
			rc = check_counter(f, "vchunks", true, vol, vchunks, false);
	}
	if (rc == 0)
		rc = check_counter(f, "vol", false, 0, max_vol + 1, true);
	return rc;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

/* Replicas against the data servers' chunk reports. */
static int check_replicas(struct fsck *f, const struct fsck_ds_report *reports, size_t nreports)
{
	for (size_t r = 0; r < nreports; r++) {
		const struct fsck_ds_report *rep = &reports[r];
		for (size_t n = 0; n < f->nchunks; n++) {
			const struct f_chunk *c = &f->chunks[n];
			for (uint32_t k = 0; k < c->nrep && k < VDIFS_MAX_REPLICAS; k++)
				/* A chunk allocated and never written has no file yet. */
				if (c->ds[k] == rep->ds_id && c->written && (!rep->below || c->id < rep->below) &&
				    !bsearch(&c->id, rep->ids, rep->n, sizeof(uint64_t), cmp_u64)) {
					/* Repair: leave that copy out (new version); re-replication
					 * makes a new one from the others.  The last copy lost
					 * cannot be repaired. */
					bool others = c->nrep > 1;
					finding(f, K_MISSING_REPLICA, others,
						"chunk %llu: data server %u does not hold its replica%s", (unsigned long long)c->id,
						rep->ds_id, others ? "" : " (its only one)");
					struct md_chunk mc;
					if (f->repair && others && mdstore_get_chunk(f->t, c->id, &mc) == 0) {
						replicas_drop(&mc, rep->ds_id);
						mc.version++;
						mdstore_put_chunk(f->t, &mc);
					}
				}
		}
		for (size_t n = 0; n < rep->n; n++) {
			const struct f_chunk *c = chunk_of(f, rep->ids[n]);
			bool placed = false;
			for (uint32_t k = 0; c && k < c->nrep && k < VDIFS_MAX_REPLICAS; k++)
				placed |= c->ds[k] == rep->ds_id;
			if (placed)
				continue;
			struct mdstore_key k;
			mdstore_key_gc(&k, rep->ds_id, rep->ids[n]);
			struct mdstore_txn *t = mdstore_txn_begin(f->m->store);
			if (!t)
				return -ENOMEM;
			int rc = mdstore_txn_exists(t, &k);
			mdstore_txn_abort(t);
			if (rc == 0)
				continue; /* already queued for deletion there */
			if (rc != -ENOENT)
				return rc;
			finding(f, K_ORPHAN_REPLICA, true, "data server %u holds chunk %llu, which %s", rep->ds_id,
				(unsigned long long)rep->ids[n], c ? "is placed elsewhere" : "does not exist");
			if (f->repair)
				mdstore_txn_put(f->t, &k, NULL, 0);
		}
	}
	return 0;
}

/* ---- repairs that need the whole picture ------------------------------------------ */

static int repair_inodes(struct fsck *f)
{
	for (size_t n = 0; n < f->ninodes; n++) {
		const struct f_inode *fi = &f->inodes[n];
		bool root = fi->ino == 1 && S_ISDIR(fi->mode);
		bool unnamed = !fi->links && !root && !fi->orphan;
		uint32_t want = S_ISDIR(fi->mode) ? 2 + fi->subdirs : fi->orphan ? 0 : fi->links;
		bool lost_layer = fi->layer && !layer_of(f, fi->layer);
		if (!unnamed && fi->nlink == want && !lost_layer)
			continue;
		struct md_inode i;
		int rc = mdstore_get_inode(f->t, fi->vol, fi->ino, &i);
		if (rc < 0)
			return rc;
		if (lost_layer) {
			rc = layer_create(f->t, fi->vol, 0, &i.layer);
			if (rc < 0)
				return rc;
			i.size = 0;
			i.blocks = 0;
		}
		i.nlink = unnamed ? 0 : want;
		mdstore_put_inode(f->t, &i);
		if (unnamed) {
			struct mdstore_key k;
			mdstore_key_orphan(&k, fi->vol, fi->ino);
			mdstore_txn_put(f->t, &k, NULL, 0);
		}
	}
	return 0;
}

static int repair_records(struct fsck *f)
{
	for (size_t n = 0; n < f->nchunks; n++) {
		const struct f_chunk *fc = &f->chunks[n];
		uint32_t want = fc->refs ? fc->refs : 1; /* an orphan is freed below from 1 */
		if (fc->refcount == want || (!fc->refs && fc->is_base))
			continue;
		struct md_chunk c;
		int rc = mdstore_get_chunk(f->t, fc->id, &c);
		if (rc < 0)
			return rc;
		c.refcount = want;
		mdstore_put_chunk(f->t, &c);
	}
	for (size_t n = 0; n < f->nlayers; n++) {
		const struct f_layer *fl = &f->layers[n];
		bool lost_parent = fl->parent && !layer_of(f, fl->parent);
		uint32_t want = fl->refs ? fl->refs : 1;
		if (fl->bad_chain || (fl->refcount == want && !lost_parent))
			continue;
		struct md_layer l;
		int rc = mdstore_get_layer(f->t, fl->id, &l);
		if (rc < 0)
			return rc;
		l.refcount = want;
		if (lost_parent)
			l.parent = 0;
		mdstore_put_layer(f->t, &l);
	}
	return 0;
}

/* Frees orphans through the ordinary paths (their replicas are queued for
 * deletion on the data servers). */
static int free_orphans(struct fsck *f)
{
	for (size_t n = 0; n < f->nchunks; n++)
		if (!f->chunks[n].refs && !f->chunks[n].is_base) {
			int rc = layer_chunk_unref(f->t, f->chunks[n].id);
			if (rc < 0)
				return rc;
		}
	for (size_t n = 0; n < f->nlayers; n++)
		if (!f->layers[n].refs && !f->layers[n].bad_chain) {
			int rc = layer_unref(f->t, f->layers[n].id);
			if (rc < 0)
				return rc;
		}
	return 0;
}

/* ---- the run ------------------------------------------------------------------------ */

static void fsck_free(struct fsck *f)
{
	mdstore_txn_abort(f->t);
	free(f->inodes);
	free(f->layers);
	free(f->chunks);
	free(f->vols);
	free(f->items);
	fmap_free(&f->imap);
	fmap_free(&f->lmap);
	fmap_free(&f->cmap);
}

static int fsck_check(struct fsck *f, const struct fsck_ds_report *reports, size_t nreports)
{
	int rc = scan(f, 'L', load_layer);
	if (rc == 0)
		rc = scan(f, 'K', load_chunk);
	if (rc == 0)
		rc = scan(f, 'I', load_inode);
	if (rc == 0)
		rc = scan(f, 'V', load_volume);
	if (rc == 0)
		rc = scan(f, 'O', check_orphan);
	if (rc == 0)
		rc = scan(f, 'D', check_dirent);
	if (rc == 0)
		rc = scan(f, 'P', check_flatten);
	if (rc == 0)
		rc = scan(f, 'C', check_chunkent);
	if (rc < 0)
		return rc;
	check_inodes(f);
	check_chains(f);
	check_refcounts(f);
	rc = check_counters(f);
	if (rc == 0)
		rc = check_replicas(f, reports, nreports);
	if (rc == 0)
		rc = f->err;
	if (rc < 0 || !f->repair)
		return rc;
	/* Counters are right by now (staged), so new ids do not collide. */
	rc = repair_inodes(f);
	if (rc == 0)
		rc = repair_records(f);
	if (rc == 0)
		rc = free_orphans(f);
	if (rc == 0) {
		rc = mdstore_txn_commit(f->t);
		f->t = NULL;
	}
	return rc;
}

int fsck_run(struct mds *m, bool repair, const struct fsck_ds_report *reports, size_t nreports,
	     struct fsck_result *res)
{
	struct fsck f = {.m = m, .repair = repair};
	memset(res, 0, sizeof(*res));
	wbuf_init(&res->kinds);
	wbuf_init(&res->items);
	if (repair && !(f.t = mdstore_txn_begin(m->store)))
		return -ENOMEM;
	int rc = fsck_check(&f, reports, nreports);
	bool fixed = repair && rc == 0;
	res->keys = f.keys;
	for (int k = 0; k < K_NKINDS; k++) {
		if (!f.found[k])
			continue;
		struct msg_fsck_count c = {.kind = {(const uint8_t *)kind_names[k], (uint32_t)strlen(kind_names[k])},
					   .found = f.found[k], .repaired = fixed ? f.fixable[k] : 0};
		msg_fsck_count_put(&res->kinds, &c);
		res->nkinds++;
		res->found += c.found;
		res->repaired += c.repaired;
	}
	for (size_t n = 0; n < f.nitems; n++) {
		char line[300];
		int l = snprintf(line, sizeof(line), "%s: %s%s", kind_names[f.items[n].kind], f.items[n].line,
				 f.items[n].repairable ? "" : " (not repairable)");
		struct msg_fsck_item it = {.repaired = fixed && f.items[n].repairable,
					   .line = {(const uint8_t *)line, (uint32_t)(l < (int)sizeof(line) ? l : (int)sizeof(line) - 1)}};
		msg_fsck_item_put(&res->items, &it);
		res->count++;
	}
	if (rc == 0 && (res->kinds.err || res->items.err))
		rc = -ENOMEM;
	log_info("fsck: %llu records, %llu inconsistencies%s%llu repaired", (unsigned long long)res->keys,
		 (unsigned long long)res->found, rc < 0 ? " (check failed), " : ", ", (unsigned long long)res->repaired);
	fsck_free(&f);
	return rc;
}

void fsck_result_free(struct fsck_result *res)
{
	wbuf_free(&res->kinds);
	wbuf_free(&res->items);
}
