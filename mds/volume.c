/*
 * volume: volumes and their settings (see volume.h).
 *
 * Admin operations, rare and never on a hot path: a cluster holds a few to a
 * few hundred volumes, so listing scans them all.  Removing a volume is one
 * transaction over everything it owns -- slow for a huge volume, but never
 * half done.
 */
#include "volume.h"

#include "config.h"
#include "log.h"
#include "namespace.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int volume_check_name(struct vbytes name)
{
	if (name.len == 0 || name.len > MDSTORE_VOLNAME_MAX)
		return -EINVAL;
	for (uint32_t i = 0; i < name.len; i++) {
		uint8_t c = name.p[i];
		bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
			  c == '.' || c == '_' || c == '-';
		if (!ok)
			return -EINVAL;
	}
	return 0;
}

static bool chunk_size_ok(uint64_t cs)
{
	return cs >= VOLUME_MIN_CHUNK_SIZE && cs <= VOLUME_MAX_CHUNK_SIZE && (cs & (cs - 1)) == 0;
}

static bool extent_size_ok(uint64_t e, uint64_t chunk_size)
{
	return e >= VOLUME_MIN_EXTENT && e <= VOLUME_MAX_EXTENT && (e & (e - 1)) == 0 && e <= chunk_size;
}

int volume_create(struct mds *m, const struct msg_vol_create_req *req, struct md_volume *out)
{
	struct mdstore_txn *t = NULL;
	struct mdstore_key k;
	struct md_volume v;
	struct md_inode root;
	uint64_t id;
	uint32_t existing;
	uint8_t idbuf[4];
	int rc = volume_check_name(req->name);
	if (rc < 0)
		return rc;
	memset(&v, 0, sizeof(v));
	v.chunk_size = req->chunk_size ? req->chunk_size : VOLUME_DEFAULT_CHUNK_SIZE;
	v.replicas = req->replicas ? req->replicas : VOLUME_DEFAULT_REPLICAS;
	v.extent_size = VOLUME_DEFAULT_EXTENT;
	if (!chunk_size_ok(v.chunk_size) || v.replicas > VDIFS_MAX_REPLICAS)
		return -EINVAL;
	vbytes_to_cstr(req->name, v.name, sizeof(v.name));

	t = mdstore_txn_begin(m->store);
	if (!t)
		return -ENOMEM;
	rc = mdstore_get_volname(t, v.name, req->name.len, &existing);
	if (rc == 0)
		rc = -EEXIST;
	if (rc != -ENOENT)
		goto fail;
	rc = mdstore_counter_next(t, "vol", false, 0, &id);
	if (rc < 0)
		goto fail;
	if (id > UINT32_MAX) {
		rc = -ENOSPC;
		goto fail;
	}
	v.id = (uint32_t)id;
	rc = mdstore_counter_next(t, "ino", true, v.id, &v.root_ino);
	if (rc < 0)
		goto fail;
	rc = mdstore_counter_add(t, "inodes", true, v.id, 1);
	if (rc < 0)
		goto fail;
	mdstore_now(&v.created);
	namespace_init_inode(&root, v.id, v.root_ino, S_IFDIR | 0755, 0, 0, &v.created);
	root.parent = v.root_ino; /* ".." of the root is the root */
	mdstore_put_inode(t, &root);
	mdstore_put_volume(t, &v);
	mdstore_key_volname(&k, v.name, req->name.len);
	le_put32(idbuf, v.id);
	mdstore_txn_put(t, &k, idbuf, sizeof(idbuf));
	rc = mdstore_txn_commit(t);
	if (rc < 0)
		return rc;
	log_info("volume %s created: id %u, chunk size %llu, %u replicas", v.name, v.id,
		 (unsigned long long)v.chunk_size, v.replicas);
	*out = v;
	return 0;
fail:
	mdstore_txn_abort(t);
	return rc;
}

int volume_get(struct mds *m, uint32_t vol, struct md_volume *out)
{
	struct mdstore_txn *t = mdstore_txn_begin(m->store);
	if (!t)
		return -ENOMEM;
	int rc = mdstore_get_volume(t, vol, out);
	mdstore_txn_abort(t);
	return rc;
}

int volume_lookup(struct mds *m, struct vbytes name, struct md_volume *out)
{
	uint32_t vol;
	if (volume_check_name(name) < 0)
		return -ENOENT;
	struct mdstore_txn *t = mdstore_txn_begin(m->store);
	if (!t)
		return -ENOMEM;
	int rc = mdstore_get_volname(t, (const char *)name.p, name.len, &vol);
	if (rc == 0) {
		rc = mdstore_get_volume(t, vol, out);
		if (rc == -ENOENT) {
			log_error("volume name %.*s points at missing volume %u", (int)name.len, name.p, vol);
			rc = -EIO;
		}
	}
	mdstore_txn_abort(t);
	return rc;
}

int volume_put_info(struct mds *m, const struct md_volume *v, struct wbuf *b)
{
	uint64_t inodes;
	struct mdstore_txn *t = mdstore_txn_begin(m->store);
	if (!t)
		return -ENOMEM;
	int rc = mdstore_counter_get(t, "inodes", true, v->id, &inodes);
	mdstore_txn_abort(t);
	if (rc < 0)
		return rc;
	struct msg_vol_info info = {
		.vol = v->id,
		.name = {(const uint8_t *)v->name, (uint32_t)strlen(v->name)},
		.chunk_size = v->chunk_size,
		.replicas = v->replicas,
		.extent_size = v->extent_size,
		.root_ino = v->root_ino,
		.inodes = inodes,
		.created_s = v->created.s,
	};
	msg_vol_info_put(b, &info);
	return b->err ? -ENOMEM : 0;
}

/* Calls fn on every volume in id order; stops at the first error. */
static int for_each_volume(struct mds *m, int (*fn)(struct mds *m, const struct md_volume *v, void *arg),
			   void *arg)
{
	struct mdstore_iter *it = NULL;
	struct mdstore_key prefix;
	const uint8_t *key, *val;
	size_t kl, vl;
	mdstore_key_tag(&prefix, 'V');
	int rc = mdstore_iter_open(m->store, &prefix, NULL, &it);
	if (rc < 0)
		return rc;
	while ((rc = mdstore_iter_next(it, &key, &kl, &val, &vl)) > 0) {
		struct md_volume v;
		if (kl != 5 || mdstore_decode_volume(val, vl, &v) < 0) {
			log_error("corrupt volume record (key length %zu)", kl);
			rc = -EIO;
			break;
		}
		v.id = mdstore_be32(key + 1);
		rc = fn(m, &v, arg);
		if (rc < 0)
			break;
	}
	mdstore_iter_close(it);
	return rc < 0 ? rc : 0;
}

struct list_ctx {
	struct wbuf *items;
	uint32_t count;
};

static int list_one(struct mds *m, const struct md_volume *v, void *arg)
{
	struct list_ctx *c = arg;
	int rc = volume_put_info(m, v, c->items);
	if (rc == 0)
		c->count++;
	return rc;
}

int volume_list(struct mds *m, struct wbuf *items, uint32_t *count)
{
	struct list_ctx c = {items, 0};
	int rc = for_each_volume(m, list_one, &c);
	*count = c.count;
	return rc;
}

static int count_one(struct mds *m, const struct md_volume *v, void *arg)
{
	(void)m;
	(void)v;
	(*(uint32_t *)arg)++;
	return 0;
}

int volume_count(struct mds *m, uint32_t *count)
{
	*count = 0;
	return for_each_volume(m, count_one, count);
}

/* Stages the deletion of every key of one volume under tag. */
static int del_prefix(struct mdstore_txn *t, char tag, uint32_t vol)
{
	struct mdstore_iter *it = NULL;
	struct mdstore_key prefix, k;
	const uint8_t *key, *val;
	size_t kl, vl;
	mdstore_key_vol_prefix(&prefix, tag, vol);
	int rc = mdstore_iter_open(mdstore_txn_store(t), &prefix, NULL, &it);
	if (rc < 0)
		return rc;
	while ((rc = mdstore_iter_next(it, &key, &kl, &val, &vl)) > 0) {
		if (kl > sizeof(k.b)) {
			rc = -EIO;
			break;
		}
		memcpy(k.b, key, kl);
		k.len = kl;
		mdstore_txn_del(t, &k);
	}
	mdstore_iter_close(it);
	return rc < 0 ? rc : 0;
}

/* Stages freeing every inode of vol (with their layers and chunks). */
static int free_inodes(struct mdstore_txn *t, uint32_t vol, uint64_t *n)
{
	struct mdstore_iter *it = NULL;
	struct mdstore_key prefix;
	const uint8_t *key, *val;
	size_t kl, vl;
	struct md_inode *i = malloc(sizeof(*i));
	int rc;
	if (!i)
		return -ENOMEM;
	mdstore_key_vol_prefix(&prefix, 'I', vol);
	rc = mdstore_iter_open(mdstore_txn_store(t), &prefix, NULL, &it);
	if (rc < 0)
		goto out;
	while ((rc = mdstore_iter_next(it, &key, &kl, &val, &vl)) > 0) {
		if (kl != 13 || mdstore_decode_inode(val, vl, i) < 0) {
			log_error("volume %u: corrupt inode record (key length %zu)", vol, kl);
			rc = -EIO;
			break;
		}
		i->vol = vol;
		i->ino = mdstore_be64(key + 5);
		rc = namespace_free_inode(t, i);
		if (rc < 0)
			break;
		(*n)++;
	}
out:
	mdstore_iter_close(it);
	free(i);
	return rc < 0 ? rc : 0;
}

int volume_remove(struct mds *m, struct vbytes name, uint32_t flags)
{
	struct mdstore_txn *t = NULL;
	struct mdstore_iter *it = NULL;
	struct mdstore_key k;
	struct md_volume v;
	uint64_t freed = 0;
	int rc = volume_lookup(m, name, &v);
	if (rc < 0)
		return rc;
	if (!(flags & VDIFS_VOL_REMOVE_FORCE)) {
		const uint8_t *key, *val;
		size_t kl, vl;
		mdstore_key_dirent(&k, v.id, v.root_ino, NULL, 0);
		rc = mdstore_iter_open(m->store, &k, NULL, &it);
		if (rc < 0)
			return rc;
		rc = mdstore_iter_next(it, &key, &kl, &val, &vl);
		mdstore_iter_close(it);
		if (rc != 0)
			return rc > 0 ? -ENOTEMPTY : rc;
	}
	t = mdstore_txn_begin(m->store);
	if (!t)
		return -ENOMEM;
	rc = free_inodes(t, v.id, &freed);
	if (rc == 0)
		rc = del_prefix(t, 'D', v.id);
	if (rc == 0)
		rc = del_prefix(t, 'X', v.id);
	if (rc == 0)
		rc = del_prefix(t, 'O', v.id);
	if (rc < 0)
		goto fail;
	mdstore_key_volume(&k, v.id);
	mdstore_txn_del(t, &k);
	mdstore_key_volname(&k, v.name, strlen(v.name));
	mdstore_txn_del(t, &k);
	mdstore_counter_del(t, "ino", true, v.id);
	mdstore_counter_del(t, "inodes", true, v.id);
	mdstore_counter_del(t, "vchunks", true, v.id);
	rc = mdstore_txn_commit(t);
	if (rc == 0)
		log_info("volume %s (id %u) removed with %llu inodes", v.name, v.id, (unsigned long long)freed);
	return rc;
fail:
	mdstore_txn_abort(t);
	return rc;
}

int volume_set(struct mds *m, const struct msg_vol_set_req *req, struct md_volume *out)
{
	struct mdstore_txn *t = NULL;
	struct md_volume v;
	char value[64];
	uint64_t n;
	int rc = volume_lookup(m, req->name, &v);
	if (rc < 0)
		return rc;
	if (vbytes_to_cstr(req->value, value, sizeof(value)) < 0 || config_parse_size(value, &n) < 0)
		return -EINVAL;
	t = mdstore_txn_begin(m->store);
	if (!t)
		return -ENOMEM;
	if (vbytes_eq(req->key, "replicas")) {
		if (n < 1 || n > VDIFS_MAX_REPLICAS) {
			rc = -EINVAL;
			goto fail;
		}
		v.replicas = (uint32_t)n;
	} else if (vbytes_eq(req->key, "chunk_size")) {
		uint64_t chunks;
		if (!chunk_size_ok(n)) {
			rc = -EINVAL;
			goto fail;
		}
		rc = mdstore_counter_get(t, "vchunks", true, v.id, &chunks);
		if (rc < 0)
			goto fail;
		if (chunks > 0 && n != v.chunk_size) {
			rc = -EBUSY;
			goto fail;
		}
		if (n < v.extent_size) {
			rc = -EINVAL;
			goto fail;
		}
		v.chunk_size = n;
	} else if (vbytes_eq(req->key, "extent_size")) {
		/* Only delta chunks made from now on use it: each records its own. */
		if (!extent_size_ok(n, v.chunk_size)) {
			rc = -EINVAL;
			goto fail;
		}
		v.extent_size = (uint32_t)n;
	} else {
		rc = -EINVAL;
		goto fail;
	}
	mdstore_put_volume(t, &v);
	rc = mdstore_txn_commit(t);
	if (rc < 0)
		return rc;
	log_info("volume %s: %.*s set to %s", v.name, (int)req->key.len, req->key.p, value);
	*out = v;
	return 0;
fail:
	mdstore_txn_abort(t);
	return rc;
}
