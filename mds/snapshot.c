/*
 * snapshot: snapshots, clones and reverts by moving layer references (see
 * snapshot.h).
 */
#include "snapshot.h"

#include "layer.h"
#include "log.h"
#include "mdstore.h"
#include "namespace.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int snapshot_live_file(const struct md_inode *i)
{
	if (S_ISDIR(i->mode))
		return -EISDIR;
	if (!S_ISREG(i->mode) || i->layer == 0 || (i->flags & MD_INODE_SNAPSHOT))
		return -EINVAL;
	return 0;
}

int snapshot_freeze(struct mdstore_txn *t, struct md_inode *i, uint64_t *frozen)
{
	struct md_layer l;
	int rc = layer_load(t, i->layer, &l);
	if (rc < 0)
		return rc;
	if (l.flags & MD_LAYER_FROZEN) {
		*frozen = l.id;
		return layer_ref(t, l.id);
	}
	if (l.parent) {
		rc = layer_is_empty(t, l.id);
		if (rc < 0)
			return rc;
		if (rc) {
			*frozen = l.parent;
			return layer_ref(t, l.parent);
		}
	}
	uint64_t fresh;
	l.flags |= MD_LAYER_FROZEN;
	mdstore_put_layer(t, &l);
	rc = layer_create(t, i->vol, l.id, &fresh);
	if (rc < 0)
		return rc;
	*frozen = l.id; /* the reference i held on it is now the caller's */
	i->layer = fresh;
	mdstore_put_inode(t, i);
	return 0;
}

/* Snapshot index value: u64 snapshot directory | bytes entry name. */
static int put_index(struct mdstore_txn *t, uint32_t vol, uint64_t origin, uint64_t snap, uint64_t snapdir,
		     const char *entry)
{
	struct mdstore_key k;
	struct wbuf b;
	wbuf_init(&b);
	wbuf_put_u64(&b, snapdir);
	wbuf_put_cstr(&b, entry);
	if (b.err) {
		wbuf_free(&b);
		return -ENOMEM;
	}
	mdstore_key_snap(&k, vol, origin, snap);
	mdstore_txn_put(t, &k, b.data, b.len);
	wbuf_free(&b);
	return 0;
}

struct snap_ref {
	uint64_t ino;     /* the snapshot inode */
	uint64_t snapdir; /* the directory holding it */
	char entry[VDIFS_NAME_MAX + 1];
	const char *name; /* the snapshot's name: after the last '@' of entry */
};

static int decode_index(const uint8_t *key, size_t kl, const uint8_t *val, size_t vl, struct snap_ref *out)
{
	struct wreader r;
	if (kl != 1 + 4 + 8 + 8)
		return -EIO;
	out->ino = mdstore_be64(key + 13);
	wreader_init(&r, val, vl);
	out->snapdir = wreader_u64(&r);
	struct vbytes e = wreader_bytes(&r, VDIFS_NAME_MAX);
	if (wreader_finish(&r) < 0 || vbytes_to_cstr(e, out->entry, sizeof(out->entry)) < 0)
		return -EIO;
	const char *at = strrchr(out->entry, '@');
	if (!at)
		return -EIO;
	out->name = at + 1;
	return 0;
}

/* Calls fn for each snapshot of origin, in creation order, until it
 * returns non-zero (then returns that).  0 when all were seen, -EIO. */
static int each_snapshot(struct mdstore_txn *t, uint32_t vol, uint64_t origin,
			 int (*fn)(void *arg, const struct snap_ref *s), void *arg)
{
	struct mdstore_iter *it = NULL;
	struct mdstore_key prefix;
	const uint8_t *key, *val;
	size_t kl, vl;
	mdstore_key_snap(&prefix, vol, origin, 0);
	int rc = mdstore_iter_open(mdstore_txn_store(t), &prefix, NULL, &it);
	if (rc < 0)
		return rc;
	while ((rc = mdstore_iter_next(it, &key, &kl, &val, &vl)) > 0) {
		struct snap_ref s;
		if (decode_index(key, kl, val, vl, &s) < 0) {
			log_error("volume %u inode %llu: corrupt snapshot index entry", vol,
				  (unsigned long long)origin);
			rc = -EIO;
			break;
		}
		rc = fn(arg, &s);
		if (rc != 0)
			break;
	}
	mdstore_iter_close(it);
	return rc;
}

struct find_arg {
	struct vbytes name;
	struct snap_ref found;
};

static int find_cb(void *arg, const struct snap_ref *s)
{
	struct find_arg *f = arg;
	if (strlen(s->name) != f->name.len || memcmp(s->name, f->name.p, f->name.len) != 0)
		return 0;
	f->found = *s;
	f->found.name = f->found.entry + (s->name - s->entry);
	return 1;
}

/* The snapshot called name of origin: 0 and *out, -ENOENT, -EIO. */
static int find_snapshot(struct mdstore_txn *t, uint32_t vol, uint64_t origin, struct vbytes name,
			 struct snap_ref *out)
{
	struct find_arg f = {.name = name};
	int rc = each_snapshot(t, vol, origin, find_cb, &f);
	if (rc < 0)
		return rc;
	if (rc == 0)
		return -ENOENT;
	*out = f.found;
	return 0;
}

/* Loads the file q names (with its directory): 0 with *t open, or -errno. */
static int begin_file(struct mds *m, const struct msg_snap_req *q, struct mdstore_txn **t, struct md_volume *v,
		      struct md_inode *d, struct md_inode *i)
{
	struct md_dirent de;
	bool found;
	int rc = namespace_begin_in_dir(m, q->vol, q->parent, q->name, v, t, d, &de, &found);
	if (rc < 0)
		return rc;
	rc = found ? namespace_load_child(*t, q->vol, &de, i) : -ENOENT;
	if (rc == 0 && (d->flags & MD_INODE_SNAPDIR))
		rc = -EROFS;
	if (rc == 0)
		rc = snapshot_live_file(i);
	if (rc < 0) {
		mdstore_txn_abort(*t);
		*t = NULL;
	}
	return rc;
}

/* The snapshot directory of d, made when missing (d staged then). */
static int get_snapdir(struct mdstore_txn *t, struct md_inode *d, const struct md_time *now, struct md_inode *sd)
{
	struct md_dirent de;
	int rc = mdstore_get_dirent(t, d->vol, d->ino, namespace_snapdir.p, namespace_snapdir.len, &de);
	if (rc == 0) {
		rc = namespace_load_child(t, d->vol, &de, sd);
		if (rc == 0 && !(sd->flags & MD_INODE_SNAPDIR)) {
			log_error("volume %u directory %llu: %s is not a snapshot directory", d->vol,
				  (unsigned long long)d->ino, VDIFS_SNAPDIR_NAME);
			rc = -EIO;
		}
		return rc;
	}
	if (rc != -ENOENT)
		return rc;
	memset(sd, 0, sizeof(*sd));
	sd->mode = S_IFDIR | 0555;
	sd->uid = d->uid;
	sd->gid = d->gid;
	sd->flags = MD_INODE_SNAPDIR;
	rc = namespace_add_entry(t, d, namespace_snapdir, sd, now);
	if (rc < 0)
		return rc;
	/* Hidden from readdir, so not counted in the directory's links either
	 * (find(1) trusts st_nlink to count the subdirectories it will see). */
	d->nlink--;
	mdstore_put_inode(t, d);
	return 0;
}

int snapshot_create(struct mds *m, const struct msg_snap_req *q, struct vdifs_attr *out)
{
	struct mdstore_txn *t;
	struct md_volume v;
	struct md_inode d, i, sd, s;
	struct md_dirent de;
	struct snap_ref existing;
	struct md_time now;
	char entry[VDIFS_NAME_MAX + 1];
	uint64_t frozen;

	int rc = namespace_check_name(q->snap);
	if (rc < 0)
		return rc;
	if (memchr(q->snap.p, '@', q->snap.len))
		return -EINVAL;
	if ((size_t)q->name.len + 1 + q->snap.len > VDIFS_NAME_MAX)
		return -ENAMETOOLONG;
	rc = begin_file(m, q, &t, &v, &d, &i);
	if (rc < 0)
		return rc;
	snprintf(entry, sizeof(entry), "%.*s@%.*s", (int)q->name.len, (const char *)q->name.p, (int)q->snap.len,
		 (const char *)q->snap.p);
	struct vbytes ename = {(const uint8_t *)entry, (uint32_t)strlen(entry)};

	rc = find_snapshot(t, q->vol, i.ino, q->snap, &existing);
	if (rc == 0)
		rc = -EEXIST;
	if (rc != -ENOENT)
		goto fail;
	mdstore_now(&now);
	rc = get_snapdir(t, &d, &now, &sd);
	if (rc < 0)
		goto fail;
	rc = mdstore_get_dirent(t, q->vol, sd.ino, ename.p, ename.len, &de);
	if (rc == 0)
		rc = -EEXIST;
	if (rc != -ENOENT)
		goto fail;
	rc = snapshot_freeze(t, &i, &frozen);
	if (rc < 0)
		goto fail;

	memset(&s, 0, sizeof(s));
	s.mode = i.mode;
	s.uid = i.uid;
	s.gid = i.gid;
	s.size = i.size;
	s.blocks = i.blocks;
	s.layer = frozen; /* the reference freeze() gave us */
	s.parent = i.ino;
	s.flags = MD_INODE_SNAPSHOT;
	rc = namespace_add_entry(t, &sd, ename, &s, &now);
	if (rc < 0)
		goto fail;
	s.mtime = i.mtime; /* the content's time, as of the snapshot */
	mdstore_put_inode(t, &s);
	rc = put_index(t, q->vol, i.ino, s.ino, sd.ino, entry);
	if (rc < 0)
		goto fail;
	rc = mdstore_txn_commit(t);
	if (rc < 0)
		return rc;
	mdstore_inode_attr(&s, out);
	return 0;
fail:
	mdstore_txn_abort(t);
	return rc;
}

struct list_arg {
	struct mdstore_txn *t;
	uint32_t vol;
	struct wbuf *items;
	uint32_t *count;
};

static int list_cb(void *arg, const struct snap_ref *s)
{
	struct list_arg *a = arg;
	struct md_inode i;
	int rc = mdstore_get_inode(a->t, a->vol, s->ino, &i);
	if (rc == -ENOENT)
		return 0; /* deleted while open: on its way out */
	if (rc < 0)
		return rc;
	struct msg_dirent ent = {.name = {(const uint8_t *)s->name, (uint32_t)strlen(s->name)}};
	mdstore_inode_attr(&i, &ent.attr);
	msg_dirent_put(a->items, &ent);
	(*a->count)++;
	return a->items->err ? -ENOMEM : 0;
}

int snapshot_list(struct mds *m, uint32_t vol, uint64_t ino, struct wbuf *items, uint32_t *count)
{
	struct mdstore_txn *t;
	struct md_volume v;
	struct md_inode i;
	*count = 0;
	int rc = namespace_begin(m, vol, &v, &t);
	if (rc < 0)
		return rc;
	rc = mdstore_get_inode(t, vol, ino, &i);
	if (rc == 0) {
		struct list_arg a = {t, vol, items, count};
		rc = each_snapshot(t, vol, ino, list_cb, &a);
	}
	mdstore_txn_abort(t);
	return rc;
}

int snapshot_delete(struct mds *m, const struct msg_snap_req *q)
{
	struct mdstore_txn *t;
	struct md_volume v;
	struct md_inode d, i, sd, s;
	struct snap_ref ref = {0};
	struct mdstore_key k;
	struct md_time now;
	int rc = begin_file(m, q, &t, &v, &d, &i);
	if (rc < 0)
		return rc;
	rc = find_snapshot(t, q->vol, i.ino, q->snap, &ref);
	if (rc == 0)
		rc = mdstore_get_inode(t, q->vol, ref.snapdir, &sd);
	if (rc == 0)
		rc = mdstore_get_inode(t, q->vol, ref.ino, &s);
	if (rc == -ENOENT && ref.ino) {
		log_error("volume %u: snapshot index of inode %llu names a missing inode", q->vol,
			  (unsigned long long)i.ino);
		rc = -EIO;
	}
	if (rc < 0)
		goto fail;
	mdstore_now(&now);
	mdstore_key_dirent(&k, q->vol, sd.ino, ref.entry, strlen(ref.entry));
	mdstore_txn_del(t, &k);
	mdstore_key_snap(&k, q->vol, i.ino, s.ino);
	mdstore_txn_del(t, &k);
	sd.mtime = sd.ctime = now;
	mdstore_put_inode(t, &sd);
	rc = namespace_drop_link(m, t, &s, &now);
	if (rc < 0)
		goto fail;
	return mdstore_txn_commit(t);
fail:
	mdstore_txn_abort(t);
	return rc;
}

int snapshot_revert(struct mds *m, const struct msg_snap_req *q, struct vdifs_attr *out)
{
	struct mdstore_txn *t;
	struct md_volume v;
	struct md_inode d, i, s;
	struct snap_ref ref = {0};
	uint64_t fresh, old;
	int rc = begin_file(m, q, &t, &v, &d, &i);
	if (rc < 0)
		return rc;
	rc = find_snapshot(t, q->vol, i.ino, q->snap, &ref);
	if (rc == 0) {
		rc = mdstore_get_inode(t, q->vol, ref.ino, &s);
		if (rc == -ENOENT)
			rc = -EIO;
	}
	if (rc == 0)
		rc = layer_create(t, q->vol, s.layer, &fresh);
	if (rc < 0)
		goto fail;
	old = i.layer;
	i.layer = fresh;
	rc = layer_unref(t, old);
	if (rc < 0)
		goto fail;
	i.size = s.size;
	i.blocks = s.blocks;
	mdstore_now(&i.mtime);
	i.ctime = i.mtime;
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

/* Whether a clone may land in dst: a live regular file with no content of
 * its own and no ancestors (what open(O_CREAT|O_TRUNC) leaves).  0 or -errno. */
static int check_empty_target(struct mdstore_txn *t, const struct md_inode *dst)
{
	struct md_layer l;
	int rc = snapshot_live_file(dst);
	if (rc < 0)
		return rc;
	if (dst->size != 0)
		return -ENOTEMPTY;
	rc = layer_load(t, dst->layer, &l);
	if (rc < 0)
		return rc;
	if (l.parent)
		return -ENOTEMPTY;
	rc = layer_is_empty(t, l.id);
	if (rc < 0)
		return rc;
	return rc ? 0 : -ENOTEMPTY;
}

int snapshot_clone(struct mds *m, const struct msg_clone_req *q, struct vdifs_attr *out)
{
	struct mdstore_txn *t = NULL;
	struct md_volume v;
	struct md_inode d, src, dst;
	struct md_dirent de;
	struct md_time now;
	uint64_t frozen, layer;
	bool found;
	int rc;

	if (q->dst) {
		rc = namespace_begin(m, q->vol, &v, &t);
		if (rc < 0)
			return rc;
		rc = q->dst == q->src ? -EINVAL : mdstore_get_inode(t, q->vol, q->dst, &dst);
		if (rc == 0)
			rc = check_empty_target(t, &dst);
	} else {
		rc = namespace_begin_in_dir(m, q->vol, q->parent, q->name, &v, &t, &d, &de, &found);
		if (rc < 0)
			return rc;
		if (found)
			rc = -EEXIST;
		else if (namespace_is_snapdir_name(q->name))
			rc = -EPERM;
		else if (d.flags & (MD_INODE_SNAPDIR | MD_INODE_SNAPSHOT))
			rc = -EROFS;
	}
	if (rc == 0)
		rc = mdstore_get_inode(t, q->vol, q->src, &src);
	if (rc == 0 && S_ISDIR(src.mode))
		rc = -EISDIR;
	else if (rc == 0 && (!S_ISREG(src.mode) || src.layer == 0))
		rc = -EINVAL;
	if (rc == 0)
		rc = snapshot_freeze(t, &src, &frozen);
	if (rc < 0)
		goto fail;
	rc = layer_create(t, q->vol, frozen, &layer);
	if (rc == 0)
		rc = layer_unref(t, frozen); /* the new layer holds it now */
	if (rc < 0)
		goto fail;

	mdstore_now(&now);
	if (q->dst) {
		rc = layer_unref(t, dst.layer);
		if (rc < 0)
			goto fail;
		dst.layer = layer;
		dst.size = src.size;
		dst.blocks = src.blocks;
		dst.mtime = dst.ctime = now;
		mdstore_put_inode(t, &dst);
	} else {
		memset(&dst, 0, sizeof(dst));
		dst.mode = S_IFREG | (src.mode & 0777);
		dst.uid = q->uid;
		dst.gid = q->gid;
		dst.size = src.size;
		dst.blocks = src.blocks;
		dst.layer = layer;
		rc = namespace_add_entry(t, &d, q->name, &dst, &now);
		if (rc < 0)
			goto fail;
	}
	rc = mdstore_txn_commit(t);
	if (rc < 0)
		return rc;
	mdstore_inode_attr(&dst, out);
	return 0;
fail:
	mdstore_txn_abort(t);
	return rc;
}

static int count_cb(void *arg, const struct snap_ref *s)
{
	(void)s;
	(*(uint32_t *)arg)++;
	return 0;
}

int snapshot_info(struct mds *m, uint32_t vol, uint64_t ino, struct msg_file_info_rep *out)
{
	struct mdstore_txn *t;
	struct md_volume v;
	struct md_inode i;
	struct layer_ent *ents = NULL;
	size_t n = 0;
	memset(out, 0, sizeof(*out));
	int rc = namespace_begin_file(m, vol, ino, &v, &t, &i);
	if (rc < 0)
		return rc;
	rc = layer_depth(t, i.layer, &out->depth);
	if (rc == 0)
		rc = layer_view(t, i.layer, 0, i.size / v.chunk_size + 1, &ents, &n);
	for (size_t e = 0; rc == 0 && e < n; e++) {
		struct md_chunk c;
		uint64_t own_ent = 0;
		if (ents[e].chunk == 0)
			continue;
		rc = layer_load_chunk(t, ents[e].chunk, &c);
		if (rc < 0)
			break;
		rc = mdstore_get_chunkent(t, i.layer, ents[e].index, &own_ent);
		if (rc == -ENOENT)
			rc = 0;
		if (rc < 0)
			break;
		bool own = own_ent == c.id && !(i.flags & MD_INODE_SNAPSHOT);
		uint64_t mine = own ? (c.own < c.alloc ? c.own : c.alloc) : 0;
		out->owned += mine;
		out->shared += c.alloc - mine;
	}
	if (rc == 0)
		rc = each_snapshot(t, vol, ino, count_cb, &out->snapshots);
	free(ents);
	mdstore_txn_abort(t);
	if (rc < 0)
		return rc;
	out->size = i.size;
	out->allocated = i.blocks * 512;
	out->layer = i.layer;
	out->origin = (i.flags & MD_INODE_SNAPSHOT) ? i.parent : 0;
	return 0;
}
