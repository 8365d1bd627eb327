/*
 * mdstore: LevelDB keys, record codecs and transactions of the MDS (see
 * mdstore.h for the key and record grammar).
 *
 * Tuned for many small metadata operations, each a handful of point reads and
 * writes: a transaction keeps its pending writes in a small open-addressing
 * hash table so that reads see them in O(1), and becomes one synchronous
 * write batch.  Large transactions (freeing a file of many chunks, removing
 * a volume) stay linear in the number of keys they touch.
 */
#include "mdstore.h"

#include "log.h"

#include <leveldb/c.h>

#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

struct mdstore {
	leveldb_t *db;
	leveldb_options_t *opts;
	leveldb_cache_t *cache;
	leveldb_filterpolicy_t *bloom;
	leveldb_readoptions_t *ropts;
	leveldb_writeoptions_t *wopts;
	mdstore_commit_hook_fn hook; /* mdstore_set_commit_hook */
	void *hook_arg;
};

/* One staged write.  val == NULL with deleted set is a delete. */
struct txn_entry {
	uint8_t *key;
	size_t klen;
	uint8_t *val;
	size_t vlen;
	bool deleted;
};

struct mdstore_txn {
	struct mdstore *st;
	struct txn_entry *ents;
	size_t nents, capents;
	uint32_t *slots; /* index+1 into ents; 0 = empty */
	size_t nslots;   /* power of two */
	int err;         /* sticky -ENOMEM */
};

struct mdstore_iter {
	leveldb_iterator_t *it;
	struct mdstore_key prefix;
	bool started;
};

/* ---- the database ---------------------------------------------------------- */

int mdstore_open(const char *path, struct mdstore **out, char *err, size_t errlen)
{
	char *lerr = NULL;
	struct mdstore *st = calloc(1, sizeof(*st));
	if (!st) {
		snprintf(err, errlen, "%s: out of memory", path);
		return -ENOMEM;
	}
	st->opts = leveldb_options_create();
	st->cache = leveldb_cache_create_lru(64u << 20);
	st->bloom = leveldb_filterpolicy_create_bloom(10);
	st->ropts = leveldb_readoptions_create();
	st->wopts = leveldb_writeoptions_create();
	if (!st->opts || !st->cache || !st->bloom || !st->ropts || !st->wopts) {
		snprintf(err, errlen, "%s: out of memory", path);
		goto fail;
	}
	leveldb_options_set_create_if_missing(st->opts, 1);
	leveldb_options_set_paranoid_checks(st->opts, 1);
	leveldb_options_set_cache(st->opts, st->cache);
	leveldb_options_set_filter_policy(st->opts, st->bloom);
	leveldb_readoptions_set_verify_checksums(st->ropts, 1);
	leveldb_writeoptions_set_sync(st->wopts, 1);

	st->db = leveldb_open(st->opts, path, &lerr);
	if (lerr) {
		snprintf(err, errlen, "%s: %s", path, lerr);
		leveldb_free(lerr);
		goto fail;
	}
	*out = st;
	return 0;
fail:
	mdstore_close(st);
	return -EIO;
}

void mdstore_close(struct mdstore *st)
{
	if (!st)
		return;
	if (st->db)
		leveldb_close(st->db);
	if (st->wopts)
		leveldb_writeoptions_destroy(st->wopts);
	if (st->ropts)
		leveldb_readoptions_destroy(st->ropts);
	if (st->opts)
		leveldb_options_destroy(st->opts);
	if (st->bloom)
		leveldb_filterpolicy_destroy(st->bloom);
	if (st->cache)
		leveldb_cache_destroy(st->cache);
	free(st);
}

void mdstore_now(struct md_time *t)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	t->s = ts.tv_sec;
	t->ns = (uint32_t)ts.tv_nsec;
}

/* ---- keys ------------------------------------------------------------------ */

static void key_tag(struct mdstore_key *k, char tag)
{
	k->b[0] = (uint8_t)tag;
	k->len = 1;
}

static void key_u32(struct mdstore_key *k, uint32_t v)
{
	assert(k->len + 4 <= sizeof(k->b));
	for (int i = 0; i < 4; i++)
		k->b[k->len++] = (uint8_t)(v >> (24 - 8 * i));
}

static void key_u64(struct mdstore_key *k, uint64_t v)
{
	assert(k->len + 8 <= sizeof(k->b));
	for (int i = 0; i < 8; i++)
		k->b[k->len++] = (uint8_t)(v >> (56 - 8 * i));
}

static void key_bytes(struct mdstore_key *k, const void *p, size_t n)
{
	assert(k->len + n <= sizeof(k->b));
	if (n)
		memcpy(k->b + k->len, p, n);
	k->len += n;
}

void mdstore_key_tag(struct mdstore_key *k, char tag) { key_tag(k, tag); }

void mdstore_key_volume(struct mdstore_key *k, uint32_t vol)
{
	key_tag(k, 'V');
	key_u32(k, vol);
}

void mdstore_key_volname(struct mdstore_key *k, const char *name, size_t len)
{
	key_tag(k, 'N');
	key_bytes(k, name, len);
}

void mdstore_key_inode(struct mdstore_key *k, uint32_t vol, uint64_t ino)
{
	key_tag(k, 'I');
	key_u32(k, vol);
	key_u64(k, ino);
}

void mdstore_key_vol_prefix(struct mdstore_key *k, char tag, uint32_t vol)
{
	key_tag(k, tag);
	key_u32(k, vol);
}

void mdstore_key_dirent(struct mdstore_key *k, uint32_t vol, uint64_t dir, const void *name, size_t len)
{
	key_tag(k, 'D');
	key_u32(k, vol);
	key_u64(k, dir);
	key_bytes(k, name, len);
}

void mdstore_key_xattr(struct mdstore_key *k, uint32_t vol, uint64_t ino, const void *name, size_t len)
{
	key_tag(k, 'X');
	key_u32(k, vol);
	key_u64(k, ino);
	key_bytes(k, name, len);
}

void mdstore_key_layer(struct mdstore_key *k, uint64_t layer)
{
	key_tag(k, 'L');
	key_u64(k, layer);
}

void mdstore_key_chunkent(struct mdstore_key *k, uint64_t layer, uint64_t index)
{
	key_tag(k, 'C');
	key_u64(k, layer);
	key_u64(k, index);
}

void mdstore_key_chunkent_prefix(struct mdstore_key *k, uint64_t layer)
{
	key_tag(k, 'C');
	key_u64(k, layer);
}

void mdstore_key_chunk(struct mdstore_key *k, uint64_t chunk)
{
	key_tag(k, 'K');
	key_u64(k, chunk);
}

void mdstore_key_ds(struct mdstore_key *k, uint32_t ds)
{
	key_tag(k, 'S');
	key_u32(k, ds);
}

void mdstore_key_gc(struct mdstore_key *k, uint32_t ds, uint64_t chunk)
{
	key_tag(k, 'G');
	key_u32(k, ds);
	key_u64(k, chunk);
}

void mdstore_key_gc_prefix(struct mdstore_key *k, uint32_t ds)
{
	key_tag(k, 'G');
	key_u32(k, ds);
}

void mdstore_key_orphan(struct mdstore_key *k, uint32_t vol, uint64_t ino)
{
	key_tag(k, 'O');
	key_u32(k, vol);
	key_u64(k, ino);
}

void mdstore_key_snap(struct mdstore_key *k, uint32_t vol, uint64_t origin, uint64_t snap)
{
	key_tag(k, 'Q');
	key_u32(k, vol);
	key_u64(k, origin);
	if (snap)
		key_u64(k, snap);
}

void mdstore_key_flatten(struct mdstore_key *k, uint32_t vol, uint64_t ino)
{
	key_tag(k, 'P');
	key_u32(k, vol);
	key_u64(k, ino);
}

void mdstore_key_counter(struct mdstore_key *k, const char *name, bool per_vol, uint32_t vol)
{
	key_tag(k, 'M');
	key_bytes(k, name, strlen(name));
	if (per_vol)
		key_u32(k, vol);
}

/* Printable form of a key for log lines: tag then hex. */
static const char *key_str(const uint8_t *key, size_t len, char *buf, size_t cap)
{
	size_t o = 0;
	if (cap < 4)
		return "";
	buf[o++] = len ? (char)key[0] : '?';
	for (size_t i = 1; i < len && o + 3 < cap; i++)
		o += (size_t)snprintf(buf + o, cap - o, "%02x", key[i]);
	buf[o] = '\0';
	return buf;
}

static int corrupt(const struct mdstore_key *k, const char *what)
{
	char buf[128];
	log_error("corrupt %s record at key %s", what, key_str(k->b, k->len, buf, sizeof(buf)));
	return -EIO;
}

/* ---- transactions -------------------------------------------------------- */

static uint64_t key_hash(const uint8_t *p, size_t n)
{
	uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a */
	for (size_t i = 0; i < n; i++) {
		h ^= p[i];
		h *= 0x100000001b3ull;
	}
	return h;
}

struct mdstore_txn *mdstore_txn_begin(struct mdstore *st)
{
	struct mdstore_txn *t = calloc(1, sizeof(*t));
	if (!t)
		return NULL;
	t->st = st;
	return t;
}

struct mdstore *mdstore_txn_store(struct mdstore_txn *t) { return t->st; }

static void txn_free(struct mdstore_txn *t)
{
	for (size_t i = 0; i < t->nents; i++) {
		free(t->ents[i].key);
		free(t->ents[i].val);
	}
	free(t->ents);
	free(t->slots);
	free(t);
}

void mdstore_txn_abort(struct mdstore_txn *t)
{
	if (t)
		txn_free(t);
}

/* Finds the slot of key: the slot holding it, or the empty one it would go in. */
static size_t txn_slot(const struct mdstore_txn *t, const uint8_t *key, size_t klen)
{
	size_t mask = t->nslots - 1;
	size_t s = (size_t)key_hash(key, klen) & mask;
	for (;;) {
		uint32_t e = t->slots[s];
		if (e == 0)
			return s;
		const struct txn_entry *ent = &t->ents[e - 1];
		if (ent->klen == klen && memcmp(ent->key, key, klen) == 0)
			return s;
		s = (s + 1) & mask;
	}
}

static struct txn_entry *txn_find(const struct mdstore_txn *t, const struct mdstore_key *k)
{
	if (t->nslots == 0)
		return NULL;
	uint32_t e = t->slots[txn_slot(t, k->b, k->len)];
	return e ? &t->ents[e - 1] : NULL;
}

/* Keeps the table at most half full. */
static int txn_grow(struct mdstore_txn *t)
{
	if ((t->nents + 1) * 2 <= t->nslots)
		return 0;
	size_t n = t->nslots ? t->nslots * 2 : 64;
	uint32_t *slots = calloc(n, sizeof(*slots));
	if (!slots)
		return -ENOMEM;
	free(t->slots);
	t->slots = slots;
	t->nslots = n;
	for (size_t i = 0; i < t->nents; i++)
		t->slots[txn_slot(t, t->ents[i].key, t->ents[i].klen)] = (uint32_t)(i + 1);
	return 0;
}

static void txn_stage(struct mdstore_txn *t, const struct mdstore_key *k, const void *val, size_t len,
		      bool deleted)
{
	if (t->err)
		return;
	uint8_t *copy = NULL;
	if (!deleted && len) {
		copy = malloc(len);
		if (!copy)
			goto nomem;
		memcpy(copy, val, len);
	}
	struct txn_entry *ent = txn_find(t, k);
	if (ent) {
		free(ent->val);
		ent->val = copy;
		ent->vlen = deleted ? 0 : len;
		ent->deleted = deleted;
		return;
	}
	if (txn_grow(t) < 0)
		goto nomem_copy;
	if (t->nents == t->capents) {
		size_t cap = t->capents ? t->capents * 2 : 16;
		struct txn_entry *ents = realloc(t->ents, cap * sizeof(*ents));
		if (!ents)
			goto nomem_copy;
		t->ents = ents;
		t->capents = cap;
	}
	uint8_t *key = malloc(k->len);
	if (!key)
		goto nomem_copy;
	memcpy(key, k->b, k->len);
	t->ents[t->nents] = (struct txn_entry){key, k->len, copy, deleted ? 0 : len, deleted};
	t->nents++;
	t->slots[txn_slot(t, key, k->len)] = (uint32_t)t->nents;
	return;
nomem_copy:
	free(copy);
nomem:
	t->err = -ENOMEM;
}

void mdstore_txn_put(struct mdstore_txn *t, const struct mdstore_key *k, const void *val, size_t len)
{
	txn_stage(t, k, val, len, false);
}

void mdstore_txn_del(struct mdstore_txn *t, const struct mdstore_key *k) { txn_stage(t, k, NULL, 0, true); }

int mdstore_txn_get(struct mdstore_txn *t, const struct mdstore_key *k, uint8_t **val, size_t *len)
{
	*val = NULL;
	*len = 0;
	const struct txn_entry *ent = txn_find(t, k);
	if (ent) {
		if (ent->deleted)
			return -ENOENT;
		if (ent->vlen) {
			*val = malloc(ent->vlen);
			if (!*val)
				return -ENOMEM;
			memcpy(*val, ent->val, ent->vlen);
		}
		*len = ent->vlen;
		return 0;
	}
	char *lerr = NULL;
	size_t n = 0;
	char *v = leveldb_get(t->st->db, t->st->ropts, (const char *)k->b, k->len, &n, &lerr);
	if (lerr) {
		char buf[128];
		log_error("leveldb get %s: %s", key_str(k->b, k->len, buf, sizeof(buf)), lerr);
		leveldb_free(lerr);
		return -EIO;
	}
	if (!v)
		return -ENOENT;
	if (n == 0) {
		leveldb_free(v);
		return 0;
	}
	/* leveldb_get's buffer is malloc'ed; hand it on as ours. */
	*val = (uint8_t *)v;
	*len = n;
	return 0;
}

int mdstore_txn_exists(struct mdstore_txn *t, const struct mdstore_key *k)
{
	uint8_t *v;
	size_t n;
	int rc = mdstore_txn_get(t, k, &v, &n);
	free(v);
	return rc;
}

int mdstore_txn_commit(struct mdstore_txn *t)
{
	int rc = t->err;
	if (rc < 0 || t->nents == 0)
		goto out;
	if (t->st->hook) {
		t->st->hook(t->st->hook_arg, t);
		if ((rc = t->err) < 0)
			goto out;
	}
	leveldb_writebatch_t *wb = leveldb_writebatch_create();
	if (!wb) {
		rc = -ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < t->nents; i++) {
		const struct txn_entry *e = &t->ents[i];
		if (e->deleted)
			leveldb_writebatch_delete(wb, (const char *)e->key, e->klen);
		else
			leveldb_writebatch_put(wb, (const char *)e->key, e->klen, (const char *)e->val, e->vlen);
	}
	char *lerr = NULL;
	leveldb_write(t->st->db, t->st->wopts, wb, &lerr);
	leveldb_writebatch_destroy(wb);
	if (lerr) {
		log_error("leveldb write of %zu keys: %s", t->nents, lerr);
		leveldb_free(lerr);
		rc = -EIO;
	}
out:
	txn_free(t);
	return rc;
}

void mdstore_set_commit_hook(struct mdstore *st, mdstore_commit_hook_fn fn, void *arg)
{
	st->hook = fn;
	st->hook_arg = arg;
}

/* ---- iteration ------------------------------------------------------------- */

int mdstore_iter_open(struct mdstore *st, const struct mdstore_key *prefix,
		      const struct mdstore_key *start, struct mdstore_iter **out)
{
	struct mdstore_iter *it = calloc(1, sizeof(*it));
	if (!it)
		return -ENOMEM;
	it->it = leveldb_create_iterator(st->db, st->ropts);
	if (!it->it) {
		free(it);
		return -ENOMEM;
	}
	it->prefix = *prefix;
	if (!start)
		start = prefix;
	leveldb_iter_seek(it->it, (const char *)start->b, start->len);
	*out = it;
	return 0;
}

int mdstore_iter_next(struct mdstore_iter *it, const uint8_t **key, size_t *klen, const uint8_t **val,
		      size_t *vlen)
{
	if (it->started && leveldb_iter_valid(it->it))
		leveldb_iter_next(it->it);
	it->started = true;
	if (!leveldb_iter_valid(it->it)) {
		char *lerr = NULL;
		leveldb_iter_get_error(it->it, &lerr);
		if (lerr) {
			log_error("leveldb iterator: %s", lerr);
			leveldb_free(lerr);
			return -EIO;
		}
		return 0;
	}
	size_t kl, vl;
	const char *k = leveldb_iter_key(it->it, &kl);
	if (kl < it->prefix.len || memcmp(k, it->prefix.b, it->prefix.len) != 0)
		return 0;
	const char *v = leveldb_iter_value(it->it, &vl);
	*key = (const uint8_t *)k;
	*klen = kl;
	*val = (const uint8_t *)v;
	*vlen = vl;
	return 1;
}

void mdstore_iter_close(struct mdstore_iter *it)
{
	if (!it)
		return;
	leveldb_iter_destroy(it->it);
	free(it);
}

/* ---- counters ------------------------------------------------------------- */

int mdstore_counter_get(struct mdstore_txn *t, const char *name, bool per_vol, uint32_t vol, uint64_t *out)
{
	struct mdstore_key k;
	mdstore_key_counter(&k, name, per_vol, vol);
	uint8_t *v;
	size_t n;
	int rc = mdstore_txn_get(t, &k, &v, &n);
	*out = 0;
	if (rc == -ENOENT)
		return 0;
	if (rc < 0)
		return rc;
	if (n != 8) {
		free(v);
		return corrupt(&k, "counter");
	}
	*out = le_get64(v);
	free(v);
	return 0;
}

static void counter_put(struct mdstore_txn *t, const char *name, bool per_vol, uint32_t vol, uint64_t v)
{
	struct mdstore_key k;
	uint8_t b[8];
	mdstore_key_counter(&k, name, per_vol, vol);
	le_put64(b, v);
	mdstore_txn_put(t, &k, b, sizeof(b));
}

int mdstore_counter_add(struct mdstore_txn *t, const char *name, bool per_vol, uint32_t vol, int64_t delta)
{
	uint64_t v;
	int rc = mdstore_counter_get(t, name, per_vol, vol, &v);
	if (rc < 0)
		return rc;
	if (delta < 0 && (uint64_t)-delta > v)
		v = 0;
	else
		v += (uint64_t)delta;
	counter_put(t, name, per_vol, vol, v);
	return 0;
}

int mdstore_counter_next(struct mdstore_txn *t, const char *name, bool per_vol, uint32_t vol, uint64_t *id)
{
	uint64_t v;
	int rc = mdstore_counter_get(t, name, per_vol, vol, &v);
	if (rc < 0)
		return rc;
	if (v == 0)
		v = 1;
	*id = v;
	counter_put(t, name, per_vol, vol, v + 1);
	return 0;
}

void mdstore_counter_del(struct mdstore_txn *t, const char *name, bool per_vol, uint32_t vol)
{
	struct mdstore_key k;
	mdstore_key_counter(&k, name, per_vol, vol);
	mdstore_txn_del(t, &k);
}

/* ---- record codecs ------------------------------------------------------- */

/* Copies a decoded byte string into a C string buffer; false when too long or
 * when it holds a NUL. */
static bool bytes_to_str(struct vbytes v, char *out, size_t cap)
{
	if (v.len && memchr(v.p, '\0', v.len))
		return false;
	return vbytes_to_cstr(v, out, cap) == 0;
}

int mdstore_decode_volume(const uint8_t *p, size_t len, struct md_volume *out)
{
	struct wreader r;
	wreader_init(&r, p, len);
	uint8_t fmt = wreader_u8(&r);
	struct vbytes name = wreader_bytes(&r, MDSTORE_VOLNAME_MAX);
	out->chunk_size = wreader_u64(&r);
	out->replicas = wreader_u32(&r);
	out->root_ino = wreader_u64(&r);
	out->created.s = wreader_i64(&r);
	out->created.ns = wreader_u32(&r);
	out->extent_size = fmt >= 2 ? wreader_u32(&r) : MDSTORE_EXTENT_DEFAULT;
	if (wreader_finish(&r) < 0 || fmt < 1 || fmt > MDSTORE_FORMAT_EXT || name.len == 0 ||
	    !bytes_to_str(name, out->name, sizeof(out->name)))
		return -EIO;
	return 0;
}

static void encode_volume(struct wbuf *b, const struct md_volume *v)
{
	wbuf_put_u8(b, MDSTORE_FORMAT_EXT);
	wbuf_put_cstr(b, v->name);
	wbuf_put_u64(b, v->chunk_size);
	wbuf_put_u32(b, v->replicas);
	wbuf_put_u64(b, v->root_ino);
	wbuf_put_i64(b, v->created.s);
	wbuf_put_u32(b, v->created.ns);
	wbuf_put_u32(b, v->extent_size);
}

int mdstore_decode_inode(const uint8_t *p, size_t len, struct md_inode *out)
{
	struct wreader r;
	wreader_init(&r, p, len);
	uint8_t fmt = wreader_u8(&r);
	out->mode = wreader_u32(&r);
	out->nlink = wreader_u32(&r);
	out->uid = wreader_u32(&r);
	out->gid = wreader_u32(&r);
	out->rdev = wreader_u32(&r);
	out->size = wreader_u64(&r);
	out->blocks = wreader_u64(&r);
	out->atime.s = wreader_i64(&r);
	out->atime.ns = wreader_u32(&r);
	out->mtime.s = wreader_i64(&r);
	out->mtime.ns = wreader_u32(&r);
	out->ctime.s = wreader_i64(&r);
	out->ctime.ns = wreader_u32(&r);
	out->layer = wreader_u64(&r);
	out->parent = wreader_u64(&r);
	struct vbytes target = wreader_bytes(&r, VDIFS_PATH_MAX);
	out->flags = fmt >= 2 ? wreader_u32(&r) : 0;
	if (wreader_finish(&r) < 0 || fmt < 1 || fmt > MDSTORE_FORMAT_EXT)
		return -EIO;
	if (target.len && memchr(target.p, '\0', target.len))
		return -EIO;
	if (out->atime.ns >= 1000000000u || out->mtime.ns >= 1000000000u || out->ctime.ns >= 1000000000u)
		return -EIO;
	out->target_len = target.len;
	if (target.len)
		memcpy(out->target, target.p, target.len);
	out->target[target.len] = '\0';
	return 0;
}

static void encode_inode(struct wbuf *b, const struct md_inode *i)
{
	wbuf_put_u8(b, MDSTORE_FORMAT_EXT);
	wbuf_put_u32(b, i->mode);
	wbuf_put_u32(b, i->nlink);
	wbuf_put_u32(b, i->uid);
	wbuf_put_u32(b, i->gid);
	wbuf_put_u32(b, i->rdev);
	wbuf_put_u64(b, i->size);
	wbuf_put_u64(b, i->blocks);
	wbuf_put_i64(b, i->atime.s);
	wbuf_put_u32(b, i->atime.ns);
	wbuf_put_i64(b, i->mtime.s);
	wbuf_put_u32(b, i->mtime.ns);
	wbuf_put_i64(b, i->ctime.s);
	wbuf_put_u32(b, i->ctime.ns);
	wbuf_put_u64(b, i->layer);
	wbuf_put_u64(b, i->parent);
	wbuf_put_bytes(b, i->target, i->target_len);
	wbuf_put_u32(b, i->flags);
}

int mdstore_decode_dirent(const uint8_t *p, size_t len, struct md_dirent *out)
{
	if (len != 12)
		return -EIO;
	out->ino = le_get64(p);
	out->mode = le_get32(p + 8);
	if (out->ino == 0)
		return -EIO;
	return 0;
}

int mdstore_decode_layer(const uint8_t *p, size_t len, struct md_layer *out)
{
	struct wreader r;
	wreader_init(&r, p, len);
	uint8_t fmt = wreader_u8(&r);
	out->parent = wreader_u64(&r);
	out->flags = wreader_u32(&r);
	out->refcount = wreader_u32(&r);
	out->vol = wreader_u32(&r);
	if (wreader_finish(&r) < 0 || fmt != MDSTORE_FORMAT)
		return -EIO;
	return 0;
}

static void encode_layer(struct wbuf *b, const struct md_layer *l)
{
	wbuf_put_u8(b, MDSTORE_FORMAT);
	wbuf_put_u64(b, l->parent);
	wbuf_put_u32(b, l->flags);
	wbuf_put_u32(b, l->refcount);
	wbuf_put_u32(b, l->vol);
}

int mdstore_decode_chunk(const uint8_t *p, size_t len, struct md_chunk *out)
{
	struct wreader r;
	wreader_init(&r, p, len);
	uint8_t fmt = wreader_u8(&r);
	out->version = wreader_u32(&r);
	out->chunk_size = wreader_u64(&r);
	out->base = wreader_u64(&r);
	out->alloc = wreader_u64(&r);
	out->refcount = wreader_u32(&r);
	out->vol = wreader_u32(&r);
	out->nrep = wreader_u8(&r);
	if (r.err || out->nrep > VDIFS_MAX_REPLICAS)
		return -EIO;
	for (uint32_t i = 0; i < out->nrep; i++)
		out->ds[i] = wreader_u32(&r);
	out->extent = fmt >= 2 ? wreader_u32(&r) : 0;
	out->own = fmt >= 2 ? wreader_u64(&r) : out->alloc;
	if (wreader_finish(&r) < 0 || fmt < 1 || fmt > MDSTORE_FORMAT_EXT)
		return -EIO;
	return 0;
}

static void encode_chunk(struct wbuf *b, const struct md_chunk *c)
{
	assert(c->nrep <= VDIFS_MAX_REPLICAS);
	wbuf_put_u8(b, MDSTORE_FORMAT_EXT);
	wbuf_put_u32(b, c->version);
	wbuf_put_u64(b, c->chunk_size);
	wbuf_put_u64(b, c->base);
	wbuf_put_u64(b, c->alloc);
	wbuf_put_u32(b, c->refcount);
	wbuf_put_u32(b, c->vol);
	wbuf_put_u8(b, (uint8_t)c->nrep);
	for (uint32_t i = 0; i < c->nrep; i++)
		wbuf_put_u32(b, c->ds[i]);
	wbuf_put_u32(b, c->extent);
	wbuf_put_u64(b, c->own);
}

int mdstore_decode_ds(const uint8_t *p, size_t len, struct md_ds *out)
{
	struct wreader r;
	wreader_init(&r, p, len);
	uint8_t fmt = wreader_u8(&r);
	struct vbytes uuid = wreader_bytes(&r, VDIFS_NAME_MAX);
	struct vbytes host = wreader_bytes(&r, VDIFS_NAME_MAX);
	out->port = wreader_u16(&r);
	out->total = wreader_u64(&r);
	out->avail = wreader_u64(&r);
	out->used = wreader_u64(&r);
	out->nchunks = wreader_u64(&r);
	if (wreader_finish(&r) < 0 || fmt != MDSTORE_FORMAT ||
	    !bytes_to_str(uuid, out->uuid, sizeof(out->uuid)) ||
	    !bytes_to_str(host, out->host, sizeof(out->host)))
		return -EIO;
	return 0;
}

static void encode_ds(struct wbuf *b, const struct md_ds *d)
{
	wbuf_put_u8(b, MDSTORE_FORMAT);
	wbuf_put_cstr(b, d->uuid);
	wbuf_put_cstr(b, d->host);
	wbuf_put_u16(b, d->port);
	wbuf_put_u64(b, d->total);
	wbuf_put_u64(b, d->avail);
	wbuf_put_u64(b, d->used);
	wbuf_put_u64(b, d->nchunks);
}

int mdstore_decode_chunkent(const uint8_t *p, size_t len, uint64_t *chunk)
{
	if (len != 8)
		return -EIO;
	*chunk = le_get64(p);
	return 0;
}

/* ---- typed get/put ------------------------------------------------------------ */

/* Finishes a typed read: frees the value; a decode failure becomes -EIO
 * with a log line naming the key. */
static int read_done(const struct mdstore_key *k, uint8_t *v, int decode_rc, const char *what)
{
	free(v);
	return decode_rc < 0 ? corrupt(k, what) : 0;
}

static void put_encoded(struct mdstore_txn *t, const struct mdstore_key *k, struct wbuf *b)
{
	if (b->err)
		t->err = -ENOMEM;
	else
		mdstore_txn_put(t, k, b->data, b->len);
	wbuf_free(b);
}

int mdstore_get_volume(struct mdstore_txn *t, uint32_t vol, struct md_volume *out)
{
	struct mdstore_key k;
	mdstore_key_volume(&k, vol);
	uint8_t *v;
	size_t n;
	int rc = mdstore_txn_get(t, &k, &v, &n);
	if (rc < 0)
		return rc;
	rc = read_done(&k, v, mdstore_decode_volume(v, n, out), "volume");
	if (rc == 0)
		out->id = vol;
	return rc;
}

void mdstore_put_volume(struct mdstore_txn *t, const struct md_volume *v)
{
	struct mdstore_key k;
	struct wbuf b;
	wbuf_init(&b);
	mdstore_key_volume(&k, v->id);
	encode_volume(&b, v);
	put_encoded(t, &k, &b);
}

int mdstore_get_volname(struct mdstore_txn *t, const char *name, size_t len, uint32_t *vol)
{
	struct mdstore_key k;
	if (len == 0 || len > MDSTORE_VOLNAME_MAX)
		return -ENOENT;
	mdstore_key_volname(&k, name, len);
	uint8_t *v;
	size_t n;
	int rc = mdstore_txn_get(t, &k, &v, &n);
	if (rc < 0)
		return rc;
	if (n != 4) {
		free(v);
		return corrupt(&k, "volume name");
	}
	*vol = le_get32(v);
	free(v);
	return 0;
}

int mdstore_get_inode(struct mdstore_txn *t, uint32_t vol, uint64_t ino, struct md_inode *out)
{
	struct mdstore_key k;
	mdstore_key_inode(&k, vol, ino);
	uint8_t *v;
	size_t n;
	int rc = mdstore_txn_get(t, &k, &v, &n);
	if (rc < 0)
		return rc;
	rc = read_done(&k, v, mdstore_decode_inode(v, n, out), "inode");
	if (rc == 0) {
		out->vol = vol;
		out->ino = ino;
	}
	return rc;
}

void mdstore_put_inode(struct mdstore_txn *t, const struct md_inode *i)
{
	struct mdstore_key k;
	struct wbuf b;
	wbuf_init(&b);
	mdstore_key_inode(&k, i->vol, i->ino);
	encode_inode(&b, i);
	put_encoded(t, &k, &b);
}

int mdstore_get_dirent(struct mdstore_txn *t, uint32_t vol, uint64_t dir, const void *name, size_t len,
		       struct md_dirent *out)
{
	struct mdstore_key k;
	mdstore_key_dirent(&k, vol, dir, name, len);
	uint8_t *v;
	size_t n;
	int rc = mdstore_txn_get(t, &k, &v, &n);
	if (rc < 0)
		return rc;
	return read_done(&k, v, mdstore_decode_dirent(v, n, out), "directory entry");
}

void mdstore_put_dirent(struct mdstore_txn *t, uint32_t vol, uint64_t dir, const void *name, size_t len,
			const struct md_dirent *d)
{
	struct mdstore_key k;
	uint8_t b[12];
	mdstore_key_dirent(&k, vol, dir, name, len);
	le_put64(b, d->ino);
	le_put32(b + 8, d->mode & S_IFMT);
	mdstore_txn_put(t, &k, b, sizeof(b));
}

int mdstore_get_layer(struct mdstore_txn *t, uint64_t id, struct md_layer *out)
{
	struct mdstore_key k;
	mdstore_key_layer(&k, id);
	uint8_t *v;
	size_t n;
	int rc = mdstore_txn_get(t, &k, &v, &n);
	if (rc < 0)
		return rc;
	rc = read_done(&k, v, mdstore_decode_layer(v, n, out), "layer");
	if (rc == 0)
		out->id = id;
	return rc;
}

void mdstore_put_layer(struct mdstore_txn *t, const struct md_layer *l)
{
	struct mdstore_key k;
	struct wbuf b;
	wbuf_init(&b);
	mdstore_key_layer(&k, l->id);
	encode_layer(&b, l);
	put_encoded(t, &k, &b);
}

int mdstore_get_chunkent(struct mdstore_txn *t, uint64_t layer, uint64_t index, uint64_t *chunk)
{
	struct mdstore_key k;
	mdstore_key_chunkent(&k, layer, index);
	uint8_t *v;
	size_t n;
	int rc = mdstore_txn_get(t, &k, &v, &n);
	if (rc < 0)
		return rc;
	return read_done(&k, v, mdstore_decode_chunkent(v, n, chunk), "chunk table");
}

void mdstore_put_chunkent(struct mdstore_txn *t, uint64_t layer, uint64_t index, uint64_t chunk)
{
	struct mdstore_key k;
	uint8_t b[8];
	mdstore_key_chunkent(&k, layer, index);
	le_put64(b, chunk);
	mdstore_txn_put(t, &k, b, sizeof(b));
}

int mdstore_get_chunk(struct mdstore_txn *t, uint64_t id, struct md_chunk *out)
{
	struct mdstore_key k;
	mdstore_key_chunk(&k, id);
	uint8_t *v;
	size_t n;
	int rc = mdstore_txn_get(t, &k, &v, &n);
	if (rc < 0)
		return rc;
	rc = read_done(&k, v, mdstore_decode_chunk(v, n, out), "chunk");
	if (rc == 0)
		out->id = id;
	return rc;
}

void mdstore_put_chunk(struct mdstore_txn *t, const struct md_chunk *c)
{
	struct mdstore_key k;
	struct wbuf b;
	wbuf_init(&b);
	mdstore_key_chunk(&k, c->id);
	encode_chunk(&b, c);
	put_encoded(t, &k, &b);
}

int mdstore_get_ds(struct mdstore_txn *t, uint32_t id, struct md_ds *out)
{
	struct mdstore_key k;
	mdstore_key_ds(&k, id);
	uint8_t *v;
	size_t n;
	int rc = mdstore_txn_get(t, &k, &v, &n);
	if (rc < 0)
		return rc;
	rc = read_done(&k, v, mdstore_decode_ds(v, n, out), "data server");
	if (rc == 0)
		out->id = id;
	return rc;
}

void mdstore_put_ds(struct mdstore_txn *t, const struct md_ds *d)
{
	struct mdstore_key k;
	struct wbuf b;
	wbuf_init(&b);
	mdstore_key_ds(&k, d->id);
	encode_ds(&b, d);
	put_encoded(t, &k, &b);
}

void mdstore_inode_attr(const struct md_inode *i, struct vdifs_attr *a)
{
	a->ino = i->ino;
	a->mode = i->mode;
	a->nlink = i->nlink;
	a->uid = i->uid;
	a->gid = i->gid;
	a->rdev = i->rdev;
	a->size = i->size;
	a->blocks = i->blocks;
	a->atime_s = i->atime.s;
	a->atime_ns = i->atime.ns;
	a->mtime_s = i->mtime.s;
	a->mtime_ns = i->mtime.ns;
	a->ctime_s = i->ctime.s;
	a->ctime_ns = i->ctime.ns;
	a->layer = i->layer;
}
