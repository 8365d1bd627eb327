/*
 * namespace: POSIX operations on the names and inodes of a volume (see
 * namespace.h).
 *
 * Tuned for a metadata load dominated by LOOKUP, GETATTR and READDIR (a
 * desktop farm's hosts browse and stat far more than they create): a lookup
 * is two point reads, a readdir one range scan plus one read per entry.
 * Each mutation loads the few inodes it touches, edits them in memory and
 * stages them in one transaction; directory link counts follow the classic
 * rule (2 + number of subdirectories).
 */
#include "namespace.h"

#include "flatten.h"
#include "layer.h"
#include "log.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define NS_BSIZE 4096
/* Free inodes reported by STATFS: inode numbers are 64-bit and never run out. */
#define NS_FFREE (1ull << 32)
/* Reply size at which READDIR stops early (the client asks again). */
#define NS_READDIR_BYTES (1u << 20)
/* Deepest directory walk while checking a rename (cycle guard). */
#define NS_DEPTH_MAX 65536

int namespace_check_name(struct vbytes name)
{
	if (name.len == 0)
		return -EINVAL;
	if (name.len > VDIFS_NAME_MAX)
		return -ENAMETOOLONG;
	if (vbytes_eq(name, ".") || vbytes_eq(name, ".."))
		return -EINVAL;
	if (memchr(name.p, '/', name.len) || memchr(name.p, '\0', name.len))
		return -EINVAL;
	return 0;
}

/* Xattr names: 1..255 bytes without NUL. */
const struct vbytes namespace_snapdir = {(const uint8_t *)VDIFS_SNAPDIR_NAME, sizeof(VDIFS_SNAPDIR_NAME) - 1};

bool namespace_is_snapdir_name(struct vbytes name)
{
	return name.len == namespace_snapdir.len && memcmp(name.p, namespace_snapdir.p, name.len) == 0;
}

/* Snapshots and snapshot directories change only through SNAP_* calls. */
static bool read_only_inode(const struct md_inode *i)
{
	return (i->flags & (MD_INODE_SNAPSHOT | MD_INODE_SNAPDIR)) != 0;
}

static int check_xattr_name(struct vbytes name)
{
	if (name.len == 0 || memchr(name.p, '\0', name.len))
		return -EINVAL;
	return name.len > VDIFS_NAME_MAX ? -ERANGE : 0;
}

void namespace_init_inode(struct md_inode *i, uint32_t vol, uint64_t ino, uint32_t mode, uint32_t uid,
			  uint32_t gid, const struct md_time *now)
{
	memset(i, 0, offsetof(struct md_inode, target));
	i->target[0] = '\0';
	i->vol = vol;
	i->ino = ino;
	i->mode = mode;
	i->nlink = S_ISDIR(mode) ? 2 : 1;
	i->uid = uid;
	i->gid = gid;
	i->atime = i->mtime = i->ctime = *now;
}

int namespace_begin(struct mds *m, uint32_t vol, struct md_volume *v, struct mdstore_txn **t)
{
	*t = mdstore_txn_begin(m->store);
	if (!*t)
		return -ENOMEM;
	int rc = mdstore_get_volume(*t, vol, v);
	if (rc < 0) {
		mdstore_txn_abort(*t);
		*t = NULL;
	}
	return rc;
}

/* Loads a directory that still has a name.  -ENOENT, -ENOTDIR. */
static int load_dir(struct mdstore_txn *t, uint32_t vol, uint64_t ino, struct md_inode *d)
{
	int rc = mdstore_get_inode(t, vol, ino, d);
	if (rc < 0)
		return rc;
	if (!S_ISDIR(d->mode))
		return -ENOTDIR;
	if (d->nlink == 0)
		return -ENOENT; /* removed while a client still held it */
	return 0;
}

/* The start of every operation on one name in a directory: checks the name,
 * begins a transaction, loads the directory and looks the name up.  Returns 0
 * with *t open and *found telling whether the name exists (then *de is its
 * entry), or -errno with no transaction open. */
int namespace_begin_file(struct mds *m, uint32_t vol, uint64_t ino, struct md_volume *v, struct mdstore_txn **t,
			 struct md_inode *i)
{
	int rc = namespace_begin(m, vol, v, t);
	if (rc < 0)
		return rc;
	rc = mdstore_get_inode(*t, vol, ino, i);
	if (rc == 0 && S_ISDIR(i->mode))
		rc = -EISDIR;
	else if (rc == 0 && (!S_ISREG(i->mode) || i->layer == 0))
		rc = -EINVAL;
	if (rc < 0) {
		mdstore_txn_abort(*t);
		*t = NULL;
	}
	return rc;
}

int namespace_begin_in_dir(struct mds *m, uint32_t vol, uint64_t parent, struct vbytes name, struct md_volume *v,
			   struct mdstore_txn **t, struct md_inode *d, struct md_dirent *de, bool *found)
{
	int rc = namespace_check_name(name);
	if (rc < 0)
		return rc;
	rc = namespace_begin(m, vol, v, t);
	if (rc < 0)
		return rc;
	rc = load_dir(*t, vol, parent, d);
	if (rc == 0) {
		rc = mdstore_get_dirent(*t, vol, parent, name.p, name.len, de);
		*found = rc == 0;
		if (rc == -ENOENT) /* the directory is there, the name is not */
			rc = 0;
	}
	if (rc < 0) {
		mdstore_txn_abort(*t);
		*t = NULL;
	}
	return rc;
}

/* Loads the inode a directory entry names.  A dangling entry is -EIO. */
int namespace_load_child(struct mdstore_txn *t, uint32_t vol, const struct md_dirent *d, struct md_inode *i)
{
	int rc = mdstore_get_inode(t, vol, d->ino, i);
	if (rc == -ENOENT) {
		log_error("volume %u: directory entry points at missing inode %llu", vol,
			  (unsigned long long)d->ino);
		return -EIO;
	}
	return rc;
}

static void touch_dir(struct md_inode *d, const struct md_time *now)
{
	d->mtime = *now;
	d->ctime = *now;
}

int namespace_free_inode(struct mdstore_txn *t, const struct md_inode *i)
{
	struct mdstore_iter *it = NULL;
	struct mdstore_key k, prefix;
	const uint8_t *key, *val;
	size_t kl, vl;
	int rc;

	mdstore_key_xattr(&prefix, i->vol, i->ino, NULL, 0);
	rc = mdstore_iter_open(mdstore_txn_store(t), &prefix, NULL, &it);
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
	if (rc < 0)
		return rc;
	if (S_ISREG(i->mode) && i->layer) {
		rc = flatten_release(t, i->vol, i->ino);
		if (rc == 0)
			rc = layer_unref(t, i->layer);
		if (rc < 0)
			return rc;
	}
	if (i->flags & MD_INODE_SNAPSHOT) {
		mdstore_key_snap(&k, i->vol, i->parent, i->ino);
		mdstore_txn_del(t, &k);
	}
	mdstore_key_inode(&k, i->vol, i->ino);
	mdstore_txn_del(t, &k);
	mdstore_key_orphan(&k, i->vol, i->ino);
	mdstore_txn_del(t, &k);
	return mdstore_counter_add(t, "inodes", true, i->vol, -1);
}

/* Drops one name of i (or, for a directory, its only one): at nlink 0 the
 * inode is freed, or kept as an orphan while a session has it open.
 * Stages i.  0 or -errno. */
int namespace_drop_link(struct mds *m, struct mdstore_txn *t, struct md_inode *i, const struct md_time *now)
{
	if (S_ISDIR(i->mode) || i->nlink <= 1)
		i->nlink = 0;
	else
		i->nlink--;
	i->ctime = *now;
	if (i->nlink > 0) {
		mdstore_put_inode(t, i);
		return 0;
	}
	if (session_open_count(m->sessions, i->vol, i->ino) > 0) {
		struct mdstore_key k;
		mdstore_key_orphan(&k, i->vol, i->ino);
		mdstore_txn_put(t, &k, NULL, 0);
		mdstore_put_inode(t, i);
		return 0;
	}
	return namespace_free_inode(t, i);
}

/* Whether directory dir has entries: 0 (none), 1 (some), -EIO. */
static int has_entries(struct mdstore *st, uint32_t vol, uint64_t dir, bool skip_snapdir)
{
	struct mdstore_iter *it = NULL;
	struct mdstore_key prefix;
	const uint8_t *key, *val;
	size_t kl, vl;
	mdstore_key_dirent(&prefix, vol, dir, NULL, 0);
	int rc = mdstore_iter_open(st, &prefix, NULL, &it);
	if (rc < 0)
		return rc;
	while ((rc = mdstore_iter_next(it, &key, &kl, &val, &vl)) > 0) {
		struct vbytes name = {key + prefix.len, (uint32_t)(kl - prefix.len)};
		if (!(skip_snapdir && kl > prefix.len && namespace_is_snapdir_name(name)))
			break;
	}
	mdstore_iter_close(it);
	return rc;
}

/* 0 when directory dir may be removed: no entries, or only a snapshot
 * directory without snapshots, which is then removed in t too.
 * -ENOTEMPTY (snapshots count), -EIO. */
static int dir_empty(struct mdstore_txn *t, uint32_t vol, uint64_t dir)
{
	struct mdstore *st = mdstore_txn_store(t);
	struct md_dirent de;
	struct md_inode sd;
	struct mdstore_key k;
	int rc = has_entries(st, vol, dir, true);
	if (rc != 0)
		return rc > 0 ? -ENOTEMPTY : rc;
	rc = mdstore_get_dirent(t, vol, dir, namespace_snapdir.p, namespace_snapdir.len, &de);
	if (rc == -ENOENT)
		return 0;
	if (rc == 0)
		rc = namespace_load_child(t, vol, &de, &sd);
	if (rc == 0)
		rc = has_entries(st, vol, sd.ino, false);
	if (rc != 0)
		return rc > 0 ? -ENOTEMPTY : rc;
	mdstore_key_dirent(&k, vol, dir, namespace_snapdir.p, namespace_snapdir.len);
	mdstore_txn_del(t, &k);
	return namespace_free_inode(t, &sd);
}

/* Whether directory anc is dir or one of dir's ancestors.  0 (no), 1 (yes),
 * -EIO (broken parent chain). */
static int is_ancestor(struct mdstore_txn *t, uint32_t vol, uint64_t anc, uint64_t dir)
{
	for (int depth = 0; dir; depth++) {
		struct md_inode d;
		if (dir == anc)
			return 1;
		if (depth >= NS_DEPTH_MAX)
			return -EIO;
		int rc = mdstore_get_inode(t, vol, dir, &d);
		if (rc < 0)
			return rc == -ENOENT ? -EIO : rc;
		if (d.parent == dir)
			break; /* the root is its own parent */
		dir = d.parent;
	}
	return 0;
}

int namespace_lookup(struct mds *m, uint32_t vol, uint64_t parent, struct vbytes name, struct vdifs_attr *out)
{
	struct mdstore_txn *t;
	struct md_volume v;
	struct md_inode d, i;
	struct md_dirent de;
	bool found;
	int rc = namespace_begin_in_dir(m, vol, parent, name, &v, &t, &d, &de, &found);
	if (rc < 0)
		return rc;
	if (!found)
		rc = -ENOENT;
	if (rc == 0)
		rc = namespace_load_child(t, vol, &de, &i);
	if (rc == 0)
		mdstore_inode_attr(&i, out);
	mdstore_txn_abort(t);
	return rc;
}

int namespace_getattr(struct mds *m, uint32_t vol, uint64_t ino, struct vdifs_attr *out)
{
	struct mdstore_txn *t;
	struct md_volume v;
	struct md_inode i;
	int rc = namespace_begin(m, vol, &v, &t);
	if (rc < 0)
		return rc;
	rc = mdstore_get_inode(t, vol, ino, &i);
	if (rc == 0)
		mdstore_inode_attr(&i, out);
	mdstore_txn_abort(t);
	return rc;
}

int namespace_setattr(struct mds *m, const struct msg_setattr_req *req, struct vdifs_attr *out)
{
	struct mdstore_txn *t;
	struct md_volume v;
	struct md_inode i;
	struct md_time now;
	uint32_t valid = req->valid;
	int rc;

	if (((valid & VDIFS_SET_ATIME) && req->atime_ns >= 1000000000u) ||
	    ((valid & VDIFS_SET_MTIME) && req->mtime_ns >= 1000000000u))
		return -EINVAL;
	rc = namespace_begin(m, req->vol, &v, &t);
	if (rc < 0)
		return rc;
	rc = mdstore_get_inode(t, req->vol, req->ino, &i);
	if (rc == 0 && read_only_inode(&i) && (valid & ~(uint32_t)(VDIFS_SET_ATIME | VDIFS_SET_ATIME_NOW)))
		rc = -EROFS;
	if (rc < 0)
		goto fail;
	mdstore_now(&now);
	if (valid & VDIFS_SET_MODE)
		i.mode = (i.mode & S_IFMT) | (req->mode & 07777);
	if (valid & VDIFS_SET_UID)
		i.uid = req->uid;
	if (valid & VDIFS_SET_GID)
		i.gid = req->gid;
	if (valid & VDIFS_SET_SIZE) {
		if (S_ISDIR(i.mode)) {
			rc = -EISDIR;
			goto fail;
		}
		if (!S_ISREG(i.mode)) {
			rc = -EINVAL;
			goto fail;
		}
		if (req->size > (uint64_t)INT64_MAX) {
			rc = -EFBIG;
			goto fail;
		}
		rc = layer_truncate(t, &i, v.chunk_size, req->size);
		if (rc < 0)
			goto fail;
		i.size = req->size;
		if (!(valid & (VDIFS_SET_MTIME | VDIFS_SET_MTIME_NOW)))
			i.mtime = now;
	}
	if (valid & VDIFS_SET_ATIME_NOW) {
		i.atime = now;
	} else if (valid & VDIFS_SET_ATIME) {
		i.atime.s = req->atime_s;
		i.atime.ns = req->atime_ns;
	}
	if (valid & VDIFS_SET_MTIME_NOW) {
		i.mtime = now;
	} else if (valid & VDIFS_SET_MTIME) {
		i.mtime.s = req->mtime_s;
		i.mtime.ns = req->mtime_ns;
	}
	i.ctime = now;
	mdstore_put_inode(t, &i);
	rc = mdstore_txn_commit(t);
	if (rc == 0)
		mdstore_inode_attr(&i, out);
	return rc;
fail:
	mdstore_txn_abort(t);
	return rc;
}

int namespace_add_entry(struct mdstore_txn *t, struct md_inode *d, struct vbytes name, struct md_inode *i,
			const struct md_time *now)
{
	struct md_dirent de;
	uint32_t vol = d->vol;
	int rc = mdstore_counter_next(t, "ino", true, vol, &i->ino);
	if (rc < 0)
		return rc;
	i->vol = vol;
	i->nlink = S_ISDIR(i->mode) ? 2 : 1;
	i->atime = i->mtime = i->ctime = *now;
	if (S_ISDIR(i->mode))
		i->parent = d->ino;
	if (S_ISREG(i->mode) && i->layer == 0) {
		rc = layer_create(t, vol, 0, &i->layer);
		if (rc < 0)
			return rc;
	}
	rc = mdstore_counter_add(t, "inodes", true, vol, 1);
	if (rc < 0)
		return rc;
	de.ino = i->ino;
	de.mode = i->mode;
	mdstore_put_dirent(t, vol, d->ino, name.p, name.len, &de);
	mdstore_put_inode(t, i);
	if (S_ISDIR(i->mode))
		d->nlink++;
	touch_dir(d, now);
	mdstore_put_inode(t, d);
	return 0;
}

/*
 * Creates inode i (its mode, uid, gid, rdev, target set by the caller) under
 * name in directory parent: allocates its number, a layer for a regular
 * file, the entry, the parent's times and link count.  Commits.
 */
static int create(struct mds *m, uint32_t vol, uint64_t parent, struct vbytes name, struct md_inode *i,
		  struct vdifs_attr *out)
{
	struct mdstore_txn *t;
	struct md_volume v;
	struct md_inode d;
	struct md_dirent de;
	struct md_time now;
	bool found;
	int rc = namespace_begin_in_dir(m, vol, parent, name, &v, &t, &d, &de, &found);
	if (rc < 0)
		return rc;
	if (found) {
		rc = -EEXIST;
		goto fail;
	}
	if (namespace_is_snapdir_name(name)) {
		rc = -EPERM;
		goto fail;
	}
	if (read_only_inode(&d)) {
		rc = -EROFS;
		goto fail;
	}
	if (S_ISDIR(i->mode) && d.nlink == UINT32_MAX) {
		rc = -EMLINK;
		goto fail;
	}
	mdstore_now(&now);
	i->layer = 0;
	i->parent = 0;
	rc = namespace_add_entry(t, &d, name, i, &now);
	if (rc < 0)
		goto fail;
	rc = mdstore_txn_commit(t);
	if (rc == 0)
		mdstore_inode_attr(i, out);
	return rc;
fail:
	mdstore_txn_abort(t);
	return rc;
}

int namespace_mknod(struct mds *m, const struct msg_mknod_req *req, struct vdifs_attr *out)
{
	struct md_inode i;
	struct md_time zero = {0, 0};
	uint32_t type = req->mode & S_IFMT;
	if (type == 0)
		type = S_IFREG;
	switch (type) {
	case S_IFREG: case S_IFDIR: case S_IFIFO: case S_IFCHR: case S_IFBLK: case S_IFSOCK:
		break;
	default:
		return -EINVAL; /* symlinks have their own request */
	}
	namespace_init_inode(&i, req->vol, 0, type | (req->mode & 07777), req->uid, req->gid, &zero);
	if (S_ISCHR(type) || S_ISBLK(type))
		i.rdev = req->rdev;
	return create(m, req->vol, req->parent, req->name, &i, out);
}

int namespace_symlink(struct mds *m, const struct msg_symlink_req *req, struct vdifs_attr *out)
{
	struct md_inode i;
	struct md_time zero = {0, 0};
	if (req->target.len == 0)
		return -ENOENT;
	if (memchr(req->target.p, '\0', req->target.len))
		return -EINVAL;
	namespace_init_inode(&i, req->vol, 0, S_IFLNK | 0777, req->uid, req->gid, &zero);
	/* PATH fields are bounded by VDIFS_PATH_MAX, which target holds. */
	memcpy(i.target, req->target.p, req->target.len);
	i.target[req->target.len] = '\0';
	i.target_len = req->target.len;
	i.size = req->target.len;
	return create(m, req->vol, req->parent, req->name, &i, out);
}

int namespace_link(struct mds *m, const struct msg_link_req *req, struct vdifs_attr *out)
{
	struct mdstore_txn *t;
	struct md_volume v;
	struct md_inode i, d;
	struct md_dirent de;
	struct md_time now;
	int rc = namespace_check_name(req->newname);
	if (rc < 0)
		return rc;
	rc = namespace_begin(m, req->vol, &v, &t);
	if (rc < 0)
		return rc;
	rc = mdstore_get_inode(t, req->vol, req->ino, &i);
	if (rc < 0)
		goto fail;
	if (S_ISDIR(i.mode) || (i.flags & MD_INODE_SNAPSHOT) || namespace_is_snapdir_name(req->newname)) {
		rc = -EPERM;
		goto fail;
	}
	if (i.nlink == 0) {
		rc = -ENOENT;
		goto fail;
	}
	if (i.nlink == UINT32_MAX) {
		rc = -EMLINK;
		goto fail;
	}
	rc = load_dir(t, req->vol, req->newparent, &d);
	if (rc == 0 && read_only_inode(&d))
		rc = -EROFS;
	if (rc < 0)
		goto fail;
	rc = mdstore_get_dirent(t, req->vol, req->newparent, req->newname.p, req->newname.len, &de);
	if (rc == 0) {
		rc = -EEXIST;
		goto fail;
	}
	if (rc != -ENOENT)
		goto fail;
	mdstore_now(&now);
	i.nlink++;
	i.ctime = now;
	de.ino = i.ino;
	de.mode = i.mode;
	mdstore_put_dirent(t, req->vol, req->newparent, req->newname.p, req->newname.len, &de);
	mdstore_put_inode(t, &i);
	touch_dir(&d, &now);
	mdstore_put_inode(t, &d);
	rc = mdstore_txn_commit(t);
	if (rc == 0)
		mdstore_inode_attr(&i, out);
	return rc;
fail:
	mdstore_txn_abort(t);
	return rc;
}

/* UNLINK and RMDIR: remove name from parent; want_dir picks which. */
static int remove_name(struct mds *m, uint32_t vol, uint64_t parent, struct vbytes name, bool want_dir)
{
	struct mdstore_txn *t;
	struct md_volume v;
	struct md_inode d, i;
	struct md_dirent de;
	struct md_time now;
	struct mdstore_key k;
	bool found;
	int rc = namespace_begin_in_dir(m, vol, parent, name, &v, &t, &d, &de, &found);
	if (rc < 0)
		return rc;
	if (!found) {
		rc = -ENOENT;
		goto fail;
	}
	rc = namespace_load_child(t, vol, &de, &i);
	if (rc < 0)
		goto fail;
	if (i.flags & MD_INODE_SNAPDIR) {
		rc = -EPERM;
		goto fail;
	}
	if (want_dir) {
		if (!S_ISDIR(i.mode)) {
			rc = -ENOTDIR;
			goto fail;
		}
		rc = dir_empty(t, vol, i.ino);
		if (rc < 0)
			goto fail;
		if (d.nlink > 2)
			d.nlink--;
	} else if (S_ISDIR(i.mode)) {
		rc = -EISDIR;
		goto fail;
	}
	mdstore_now(&now);
	mdstore_key_dirent(&k, vol, parent, name.p, name.len);
	mdstore_txn_del(t, &k);
	touch_dir(&d, &now);
	mdstore_put_inode(t, &d);
	rc = namespace_drop_link(m, t, &i, &now);
	if (rc < 0)
		goto fail;
	return mdstore_txn_commit(t);
fail:
	mdstore_txn_abort(t);
	return rc;
}

int namespace_unlink(struct mds *m, uint32_t vol, uint64_t parent, struct vbytes name)
{
	return remove_name(m, vol, parent, name, false);
}

int namespace_rmdir(struct mds *m, uint32_t vol, uint64_t parent, struct vbytes name)
{
	return remove_name(m, vol, parent, name, true);
}

/* Moves a directory's ".." from one parent to another: link counts and its
 * parent pointer.  op and np may be the same inode (then nothing changes). */
static void move_dir(struct md_inode *dir, struct md_inode *op, struct md_inode *np)
{
	if (op == np)
		return;
	if (op->nlink > 2)
		op->nlink--;
	np->nlink++;
	dir->parent = np->ino;
}

int namespace_rename(struct mds *m, const struct msg_rename_req *req)
{
	const uint32_t known = NAMESPACE_RENAME_NOREPLACE | NAMESPACE_RENAME_EXCHANGE;
	struct mdstore_txn *t = NULL;
	struct md_volume v;
	struct md_inode p, np_store, src, dst;
	struct md_inode *np = &p;
	struct md_dirent sde, dde;
	struct md_time now;
	struct mdstore_key k;
	bool have_dst = false, exchange = req->flags & NAMESPACE_RENAME_EXCHANGE;
	uint32_t vol = req->vol;
	int rc;

	if ((req->flags & ~known) || (req->flags & known) == known)
		return -EINVAL;
	rc = namespace_check_name(req->name);
	if (rc == 0)
		rc = namespace_check_name(req->newname);
	if (rc < 0)
		return rc;
	rc = namespace_begin(m, vol, &v, &t);
	if (rc < 0)
		return rc;
	rc = load_dir(t, vol, req->parent, &p);
	if (rc < 0)
		goto fail;
	if (req->newparent != req->parent) {
		np = &np_store;
		rc = load_dir(t, vol, req->newparent, np);
		if (rc < 0)
			goto fail;
	}
	if (read_only_inode(&p) || read_only_inode(np)) {
		rc = -EROFS;
		goto fail;
	}
	if (namespace_is_snapdir_name(req->name) || namespace_is_snapdir_name(req->newname)) {
		rc = -EPERM;
		goto fail;
	}
	rc = mdstore_get_dirent(t, vol, req->parent, req->name.p, req->name.len, &sde);
	if (rc < 0)
		goto fail;
	rc = namespace_load_child(t, vol, &sde, &src);
	if (rc < 0)
		goto fail;
	rc = mdstore_get_dirent(t, vol, req->newparent, req->newname.p, req->newname.len, &dde);
	if (rc == 0) {
		have_dst = true;
		rc = namespace_load_child(t, vol, &dde, &dst);
	} else if (rc == -ENOENT) {
		rc = 0;
	}
	if (rc < 0)
		goto fail;

	if (have_dst && (req->flags & NAMESPACE_RENAME_NOREPLACE)) {
		rc = -EEXIST;
		goto fail;
	}
	if (!have_dst && exchange) {
		rc = -ENOENT;
		goto fail;
	}
	if (have_dst && dst.ino == src.ino) {
		rc = 0; /* two names of one file: POSIX says do nothing */
		goto fail;
	}
	/* A directory cannot move below itself. */
	if (S_ISDIR(src.mode)) {
		rc = is_ancestor(t, vol, src.ino, req->newparent);
		if (rc > 0)
			rc = -EINVAL;
		if (rc < 0)
			goto fail;
	}
	if (exchange && S_ISDIR(dst.mode)) {
		rc = is_ancestor(t, vol, dst.ino, req->parent);
		if (rc > 0)
			rc = -EINVAL;
		if (rc < 0)
			goto fail;
	}
	if (have_dst && !exchange) {
		if (S_ISDIR(src.mode) && !S_ISDIR(dst.mode)) {
			rc = -ENOTDIR;
			goto fail;
		}
		if (!S_ISDIR(src.mode) && S_ISDIR(dst.mode)) {
			rc = -EISDIR;
			goto fail;
		}
		if (S_ISDIR(dst.mode)) {
			rc = dir_empty(t, vol, dst.ino);
			if (rc < 0)
				goto fail;
		}
	}

	mdstore_now(&now);
	src.ctime = now;
	if (exchange) {
		mdstore_put_dirent(t, vol, req->parent, req->name.p, req->name.len, &dde);
		mdstore_put_dirent(t, vol, req->newparent, req->newname.p, req->newname.len, &sde);
		if (S_ISDIR(src.mode))
			move_dir(&src, &p, np);
		if (S_ISDIR(dst.mode))
			move_dir(&dst, np, &p);
		dst.ctime = now;
		mdstore_put_inode(t, &dst);
	} else {
		mdstore_key_dirent(&k, vol, req->parent, req->name.p, req->name.len);
		mdstore_txn_del(t, &k);
		mdstore_put_dirent(t, vol, req->newparent, req->newname.p, req->newname.len, &sde);
		if (S_ISDIR(src.mode))
			move_dir(&src, &p, np);
		if (have_dst) {
			/* The replaced directory's ".." goes away with it. */
			if (S_ISDIR(dst.mode) && np->nlink > 2)
				np->nlink--;
			rc = namespace_drop_link(m, t, &dst, &now);
			if (rc < 0)
				goto fail;
		}
	}
	mdstore_put_inode(t, &src);
	touch_dir(&p, &now);
	mdstore_put_inode(t, &p);
	if (np != &p) {
		touch_dir(np, &now);
		mdstore_put_inode(t, np);
	}
	return mdstore_txn_commit(t);
fail:
	mdstore_txn_abort(t);
	return rc;
}

int namespace_readlink(struct mds *m, uint32_t vol, uint64_t ino, char *target, uint32_t *len)
{
	struct mdstore_txn *t;
	struct md_volume v;
	struct md_inode i;
	int rc = namespace_begin(m, vol, &v, &t);
	if (rc < 0)
		return rc;
	rc = mdstore_get_inode(t, vol, ino, &i);
	mdstore_txn_abort(t);
	if (rc < 0)
		return rc;
	if (!S_ISLNK(i.mode))
		return -EINVAL;
	memcpy(target, i.target, (size_t)i.target_len + 1);
	*len = i.target_len;
	return 0;
}

int namespace_readdir(struct mds *m, const struct msg_readdir_req *req, struct wbuf *items, uint32_t *count,
		      bool *eof)
{
	struct mdstore_txn *t;
	struct mdstore_iter *it = NULL;
	struct md_volume v;
	struct md_inode d;
	struct mdstore_key prefix, start;
	const uint8_t *key, *val;
	size_t kl, vl;
	uint32_t max = req->max == 0 || req->max > NAMESPACE_READDIR_MAX ? NAMESPACE_READDIR_MAX : req->max;
	int rc;

	*count = 0;
	*eof = false;
	rc = namespace_begin(m, req->vol, &v, &t);
	if (rc < 0)
		return rc;
	rc = mdstore_get_inode(t, req->vol, req->ino, &d);
	if (rc < 0)
		goto out;
	if (!S_ISDIR(d.mode)) {
		rc = -ENOTDIR;
		goto out;
	}
	mdstore_key_dirent(&prefix, req->vol, req->ino, NULL, 0);
	mdstore_key_dirent(&start, req->vol, req->ino, req->after.p, req->after.len);
	rc = mdstore_iter_open(m->store, &prefix, &start, &it);
	if (rc < 0)
		goto out;
	while ((rc = mdstore_iter_next(it, &key, &kl, &val, &vl)) > 0) {
		struct md_dirent de;
		struct md_inode i;
		struct msg_dirent ent;
		if (req->after.len && kl == start.len && memcmp(key, start.b, kl) == 0)
			continue; /* the cursor name itself */
		if (*count == max || items->len >= NS_READDIR_BYTES)
			break; /* one more exists: not at the end */
		ent.name.p = key + prefix.len;
		ent.name.len = (uint32_t)(kl - prefix.len);
		if (kl > prefix.len && namespace_is_snapdir_name(ent.name))
			continue; /* hidden: reached by name only */
		if (kl <= prefix.len || mdstore_decode_dirent(val, vl, &de) < 0) {
			log_error("volume %u directory %llu: corrupt entry", req->vol, (unsigned long long)req->ino);
			rc = -EIO;
			goto out;
		}
		rc = namespace_load_child(t, req->vol, &de, &i);
		if (rc < 0)
			goto out;
		mdstore_inode_attr(&i, &ent.attr);
		msg_dirent_put(items, &ent);
		(*count)++;
	}
	if (rc < 0)
		goto out;
	*eof = rc == 0;
	rc = items->err ? -ENOMEM : 0;
out:
	mdstore_iter_close(it);
	mdstore_txn_abort(t);
	return rc;
}

int namespace_setxattr(struct mds *m, const struct msg_setxattr_req *req)
{
	const uint32_t known = NAMESPACE_XATTR_CREATE | NAMESPACE_XATTR_REPLACE;
	struct mdstore_txn *t;
	struct md_volume v;
	struct md_inode i;
	struct mdstore_key k;
	int rc = check_xattr_name(req->name);
	if (rc < 0)
		return rc;
	if ((req->flags & ~known) || (req->flags & known) == known)
		return -EINVAL;
	rc = namespace_begin(m, req->vol, &v, &t);
	if (rc < 0)
		return rc;
	rc = mdstore_get_inode(t, req->vol, req->ino, &i);
	if (rc == 0 && read_only_inode(&i))
		rc = -EROFS;
	if (rc < 0)
		goto fail;
	mdstore_key_xattr(&k, req->vol, req->ino, req->name.p, req->name.len);
	rc = mdstore_txn_exists(t, &k);
	if (rc == 0 && (req->flags & NAMESPACE_XATTR_CREATE)) {
		rc = -EEXIST;
		goto fail;
	}
	if (rc == -ENOENT && (req->flags & NAMESPACE_XATTR_REPLACE)) {
		rc = -ENODATA;
		goto fail;
	}
	if (rc < 0 && rc != -ENOENT)
		goto fail;
	mdstore_txn_put(t, &k, req->value.p, req->value.len);
	mdstore_now(&i.ctime);
	mdstore_put_inode(t, &i);
	return mdstore_txn_commit(t);
fail:
	mdstore_txn_abort(t);
	return rc;
}

int namespace_getxattr(struct mds *m, uint32_t vol, uint64_t ino, struct vbytes name, struct wbuf *value)
{
	struct mdstore_txn *t;
	struct md_volume v;
	struct md_inode i;
	struct mdstore_key k;
	uint8_t *val = NULL;
	size_t len = 0;
	int rc = check_xattr_name(name);
	if (rc < 0)
		return rc;
	rc = namespace_begin(m, vol, &v, &t);
	if (rc < 0)
		return rc;
	rc = mdstore_get_inode(t, vol, ino, &i);
	if (rc < 0)
		goto out;
	mdstore_key_xattr(&k, vol, ino, name.p, name.len);
	rc = mdstore_txn_get(t, &k, &val, &len);
	if (rc == -ENOENT)
		rc = -ENODATA;
	if (rc < 0)
		goto out;
	if (len > VDIFS_XATTR_MAX) {
		log_error("volume %u inode %llu: xattr value of %zu bytes", vol, (unsigned long long)ino, len);
		rc = -EIO;
		goto out;
	}
	wbuf_put_raw(value, val, len);
	rc = value->err ? -ENOMEM : 0;
out:
	free(val);
	mdstore_txn_abort(t);
	return rc;
}

int namespace_listxattr(struct mds *m, uint32_t vol, uint64_t ino, struct wbuf *names)
{
	struct mdstore_txn *t;
	struct mdstore_iter *it = NULL;
	struct md_volume v;
	struct md_inode i;
	struct mdstore_key prefix;
	const uint8_t *key, *val;
	size_t kl, vl;
	int rc = namespace_begin(m, vol, &v, &t);
	if (rc < 0)
		return rc;
	rc = mdstore_get_inode(t, vol, ino, &i);
	if (rc < 0)
		goto out;
	mdstore_key_xattr(&prefix, vol, ino, NULL, 0);
	rc = mdstore_iter_open(m->store, &prefix, NULL, &it);
	if (rc < 0)
		goto out;
	while ((rc = mdstore_iter_next(it, &key, &kl, &val, &vl)) > 0) {
		size_t n = kl - prefix.len;
		if (names->len + n + 1 > VDIFS_XATTR_MAX) {
			rc = -E2BIG;
			goto out;
		}
		wbuf_put_raw(names, key + prefix.len, n);
		wbuf_put_u8(names, 0);
	}
	if (rc == 0 && names->err)
		rc = -ENOMEM;
out:
	mdstore_iter_close(it);
	mdstore_txn_abort(t);
	return rc;
}

int namespace_removexattr(struct mds *m, uint32_t vol, uint64_t ino, struct vbytes name)
{
	struct mdstore_txn *t;
	struct md_volume v;
	struct md_inode i;
	struct mdstore_key k;
	int rc = check_xattr_name(name);
	if (rc < 0)
		return rc;
	rc = namespace_begin(m, vol, &v, &t);
	if (rc < 0)
		return rc;
	rc = mdstore_get_inode(t, vol, ino, &i);
	if (rc == 0 && read_only_inode(&i))
		rc = -EROFS;
	if (rc < 0)
		goto fail;
	mdstore_key_xattr(&k, vol, ino, name.p, name.len);
	rc = mdstore_txn_exists(t, &k);
	if (rc == -ENOENT)
		rc = -ENODATA;
	if (rc < 0)
		goto fail;
	mdstore_txn_del(t, &k);
	mdstore_now(&i.ctime);
	mdstore_put_inode(t, &i);
	return mdstore_txn_commit(t);
fail:
	mdstore_txn_abort(t);
	return rc;
}

int namespace_statfs(struct mds *m, uint32_t vol, struct msg_statfs_rep *out)
{
	struct mdstore_txn *t;
	struct md_volume v;
	struct dsreg_totals tot;
	uint64_t inodes;
	int rc = namespace_begin(m, vol, &v, &t);
	if (rc < 0)
		return rc;
	rc = mdstore_counter_get(t, "inodes", true, vol, &inodes);
	mdstore_txn_abort(t);
	if (rc < 0)
		return rc;
	dsreg_totals(m->dsreg, &tot);
	memset(out, 0, sizeof(*out));
	out->total = tot.total;
	out->free = tot.avail;
	out->avail = tot.avail;
	out->files = inodes;
	out->ffree = NS_FFREE;
	out->bsize = NS_BSIZE;
	out->namemax = VDIFS_NAME_MAX;
	return 0;
}

int namespace_open(struct mds *m, struct session *s, uint32_t vol, uint64_t ino, bool write,
		   struct vdifs_attr *out)
{
	struct mdstore_txn *t;
	struct md_volume v;
	struct md_inode i;
	int rc = namespace_begin(m, vol, &v, &t);
	if (rc < 0)
		return rc;
	rc = mdstore_get_inode(t, vol, ino, &i);
	mdstore_txn_abort(t);
	if (rc == 0 && write && read_only_inode(&i))
		rc = -EROFS;
	if (rc < 0)
		return rc;
	rc = session_open(m->sessions, s, vol, ino);
	if (rc < 0)
		return rc;
	mdstore_inode_attr(&i, out);
	return 0;
}

/* Frees (vol, ino) if it is an orphan nobody has open.  0 or -errno. */
static int reap(struct mds *m, uint32_t vol, uint64_t ino)
{
	struct mdstore_txn *t = mdstore_txn_begin(m->store);
	struct mdstore_key k;
	struct md_inode i;
	int rc;
	if (!t)
		return -ENOMEM;
	mdstore_key_orphan(&k, vol, ino);
	rc = mdstore_txn_exists(t, &k);
	if (rc < 0)
		goto out; /* -ENOENT: still linked, nothing to do */
	rc = mdstore_get_inode(t, vol, ino, &i);
	if (rc == -ENOENT) {
		mdstore_txn_del(t, &k); /* stale mark: drop it */
		return mdstore_txn_commit(t);
	}
	if (rc < 0)
		goto out;
	if (i.nlink > 0) {
		mdstore_txn_del(t, &k);
		return mdstore_txn_commit(t);
	}
	rc = namespace_free_inode(t, &i);
	if (rc < 0)
		goto out;
	return mdstore_txn_commit(t);
out:
	mdstore_txn_abort(t);
	return rc == -ENOENT ? 0 : rc;
}

int namespace_release(struct mds *m, struct session *s, uint32_t vol, uint64_t ino)
{
	bool last;
	int rc = session_release(m->sessions, s, vol, ino, &last);
	if (rc < 0 || !last)
		return rc;
	return reap(m, vol, ino);
}

static void reap_cb(void *arg, uint32_t vol, uint64_t ino)
{
	struct mds *m = arg;
	int rc = reap(m, vol, ino);
	if (rc < 0)
		log_error("volume %u: freeing orphan inode %llu: %s", vol, (unsigned long long)ino, strerror(-rc));
}

void namespace_session_close(struct mds *m, struct session *s)
{
	session_close(m->sessions, s, reap_cb, m);
}

int namespace_reap_orphans(struct mds *m)
{
	struct mdstore_iter *it = NULL;
	struct mdstore_key prefix;
	const uint8_t *key, *val;
	size_t kl, vl;
	uint64_t *list = NULL;
	size_t n = 0, cap = 0;
	int rc;

	/* Collect first: freeing writes while the scan is open would be fine
	 * for LevelDB, but the list also lets us log one summary. */
	mdstore_key_tag(&prefix, 'O');
	rc = mdstore_iter_open(m->store, &prefix, NULL, &it);
	if (rc < 0)
		return rc;
	while ((rc = mdstore_iter_next(it, &key, &kl, &val, &vl)) > 0) {
		if (kl != 13) {
			log_error("corrupt orphan key (length %zu)", kl);
			rc = -EIO;
			goto out;
		}
		if (n + 2 > cap) {
			cap = cap ? cap * 2 : 64;
			uint64_t *l = realloc(list, cap * sizeof(*l));
			if (!l) {
				rc = -ENOMEM;
				goto out;
			}
			list = l;
		}
		list[n++] = mdstore_be32(key + 1);
		list[n++] = mdstore_be64(key + 5);
	}
	if (rc < 0)
		goto out;
	for (size_t j = 0; j < n; j += 2) {
		rc = reap(m, (uint32_t)list[j], list[j + 1]);
		if (rc < 0)
			goto out;
	}
	if (n)
		log_info("freed %zu orphan inodes left by the previous run", n / 2);
out:
	mdstore_iter_close(it);
	free(list);
	return rc;
}
