/*
 * fs_ops: the FUSE low-level operations of vdifs-mount.
 *
 * Each handler translates one kernel request into client API calls and
 * answers it exactly once, on every path, from the FUSE thread that got it
 * (the client API blocks; FUSE runs many threads).  Handlers keep no inode
 * table: the MDS owns inodes, the client API owns per-open state, so forget
 * has nothing to release.  File handles (fi->fh) are struct vdifs_file for
 * files and struct dirh for directories.
 *
 * Data requests (read/write of up to 1 MiB) are the hot path: no MDS round
 * trip once a chunk is known, no copy of written data.
 */
#include "fs.h"
#include "dirh.h"
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#define FS_BLKSIZE (1u << 20) /* st_blksize: the largest request we are sent */

static struct fs *fs_of(fuse_req_t req) { return fuse_req_userdata(req); }

uint64_t fs_to_fuse(const struct fs *fs, uint64_t ino)
{
	if (ino == fs->root_ino)
		return FUSE_ROOT_ID;
	if (ino == FUSE_ROOT_ID)
		return fs->root_ino;
	return ino;
}

uint64_t fs_from_fuse(const struct fs *fs, fuse_ino_t ino)
{
	if (ino == FUSE_ROOT_ID)
		return fs->root_ino;
	if (ino == fs->root_ino)
		return FUSE_ROOT_ID;
	return ino;
}

void fs_fill_stat(const struct fs *fs, const struct vdifs_attr *a, struct stat *st)
{
	memset(st, 0, sizeof(*st));
	st->st_ino = fs_to_fuse(fs, a->ino);
	st->st_mode = a->mode;
	st->st_nlink = a->nlink;
	st->st_uid = a->uid;
	st->st_gid = a->gid;
	st->st_rdev = a->rdev;
	st->st_size = (off_t)a->size;
	st->st_blocks = (blkcnt_t)a->blocks;
	st->st_blksize = FS_BLKSIZE;
	st->st_atim.tv_sec = a->atime_s;
	st->st_atim.tv_nsec = a->atime_ns;
	st->st_mtim.tv_sec = a->mtime_s;
	st->st_mtim.tv_nsec = a->mtime_ns;
	st->st_ctim.tv_sec = a->ctime_s;
	st->st_ctim.tv_nsec = a->ctime_ns;
}

/* Errors the kernel understands: protocol failures become EIO. */
static int fs_errno(int rc)
{
	switch (rc) {
	case -EBADMSG:
	case -EPROTO:
	case -EPROTONOSUPPORT:
	case -EMSGSIZE:
	case -ECONNREFUSED:
	case -ECONNRESET:
	case -ECANCELED:
	case -EHOSTUNREACH:
	case -ETIMEDOUT:
	case -EPIPE:
		return EIO;
	}
	return rc < 0 ? -rc : EIO;
}

/* Logs a failure worth an administrator's attention (not ENOENT & co). */
static void fs_log_fail(const char *op, uint64_t ino, int rc)
{
	switch (-rc) {
	case ENOENT: case EEXIST: case ENOTEMPTY: case ENODATA: case ERANGE: case EACCES:
	case EPERM: case ENOTDIR: case EISDIR: case ENXIO: case EROFS: case EINVAL: case ENOSPC:
	case EXDEV: case ENAMETOOLONG: case EOPNOTSUPP:
		log_debug("%s ino %llu: %s", op, (unsigned long long)ino, vdifs_last_error());
		return;
	}
	log_warn("%s ino %llu: %s", op, (unsigned long long)ino, vdifs_last_error());
}

static void fs_reply_err(fuse_req_t req, const char *op, uint64_t ino, int rc)
{
	if (rc != 0)
		fs_log_fail(op, ino, rc);
	fuse_reply_err(req, rc == 0 ? 0 : fs_errno(rc));
}

static void fs_reply_entry(fuse_req_t req, const struct vdifs_attr *a)
{
	struct fs *fs = fs_of(req);
	struct fuse_entry_param e;
	memset(&e, 0, sizeof(e));
	e.ino = fs_to_fuse(fs, a->ino);
	e.generation = 0;
	e.attr_timeout = fs->attr_timeout;
	e.entry_timeout = fs->entry_timeout;
	fs_fill_stat(fs, a, &e.attr);
	fuse_reply_entry(req, &e);
}

static void fs_init(void *userdata, struct fuse_conn_info *conn)
{
	(void)userdata;
	/* Close-to-open needs every write to reach us at once. */
	conn->want &= ~FUSE_CAP_WRITEBACK_CACHE;
	/* We do not clear suid/sgid on write ourselves. */
	conn->want &= ~FUSE_CAP_HANDLE_KILLPRIV;
	if (conn->capable & FUSE_CAP_PARALLEL_DIROPS)
		conn->want |= FUSE_CAP_PARALLEL_DIROPS;
	conn->max_write = VDIFS_IO_UNIT;
	conn->max_read = VDIFS_IO_UNIT; /* as the max_read mount option main.c passes */
	conn->max_background = 64;
	conn->congestion_threshold = 48;
}

static void fs_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct fs *fs = fs_of(req);
	struct vdifs_attr a;
	int rc = vdifs_lookup(fs->c, fs_from_fuse(fs, parent), name, &a);
	if (rc == -ENOENT) {
		/* A negative entry, cached for entry_timeout. */
		struct fuse_entry_param e;
		memset(&e, 0, sizeof(e));
		e.entry_timeout = fs->entry_timeout;
		fuse_reply_entry(req, &e);
		return;
	}
	if (rc != 0) {
		fs_reply_err(req, "lookup", parent, rc);
		return;
	}
	fs_reply_entry(req, &a);
}

static void fs_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
	(void)ino;
	(void)nlookup;
	fuse_reply_none(req);
}

static void fs_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *forgets)
{
	(void)count;
	(void)forgets;
	fuse_reply_none(req);
}

static void fs_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fs *fs = fs_of(req);
	struct vdifs_attr a;
	struct stat st;
	(void)fi;
	int rc = vdifs_getattr(fs->c, fs_from_fuse(fs, ino), &a);
	if (rc != 0) {
		fs_reply_err(req, "getattr", ino, rc);
		return;
	}
	fs_fill_stat(fs, &a, &st);
	fuse_reply_attr(req, &st, fs->attr_timeout);
}

static void fs_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
		       struct fuse_file_info *fi)
{
	struct fs *fs = fs_of(req);
	struct vdifs_setattr sa;
	struct vdifs_attr a;
	struct stat st;
	int rc;

	(void)fi; /* the client finds the open state of the inode itself */
	if (fs->ro) {
		fuse_reply_err(req, EROFS);
		return;
	}
	memset(&sa, 0, sizeof(sa));
	if (to_set & FUSE_SET_ATTR_MODE) {
		sa.valid |= VDIFS_SET_MODE;
		sa.mode = attr->st_mode;
	}
	if (to_set & FUSE_SET_ATTR_UID) {
		sa.valid |= VDIFS_SET_UID;
		sa.uid = attr->st_uid;
	}
	if (to_set & FUSE_SET_ATTR_GID) {
		sa.valid |= VDIFS_SET_GID;
		sa.gid = attr->st_gid;
	}
	if (to_set & FUSE_SET_ATTR_SIZE) {
		if (attr->st_size < 0) {
			fuse_reply_err(req, EINVAL);
			return;
		}
		sa.valid |= VDIFS_SET_SIZE;
		sa.size = (uint64_t)attr->st_size;
	}
	if (to_set & FUSE_SET_ATTR_ATIME_NOW) {
		sa.valid |= VDIFS_SET_ATIME_NOW;
	} else if (to_set & FUSE_SET_ATTR_ATIME) {
		sa.valid |= VDIFS_SET_ATIME;
		sa.atime = attr->st_atim;
	}
	if (to_set & FUSE_SET_ATTR_MTIME_NOW) {
		sa.valid |= VDIFS_SET_MTIME_NOW;
	} else if (to_set & FUSE_SET_ATTR_MTIME) {
		sa.valid |= VDIFS_SET_MTIME;
		sa.mtime = attr->st_mtim;
	}
	if (to_set & FUSE_SET_ATTR_CTIME)
		sa.valid |= VDIFS_SET_CTIME;
	rc = vdifs_setattr(fs->c, fs_from_fuse(fs, ino), &sa, &a);
	if (rc != 0) {
		fs_reply_err(req, "setattr", ino, rc);
		return;
	}
	fs_fill_stat(fs, &a, &st);
	fuse_reply_attr(req, &st, fs->attr_timeout);
}

static void fs_mknod_common(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode, dev_t rdev)
{
	struct fs *fs = fs_of(req);
	const struct fuse_ctx *ctx = fuse_req_ctx(req);
	struct vdifs_attr a;
	if (fs->ro) {
		fuse_reply_err(req, EROFS);
		return;
	}
	int rc = vdifs_mknod(fs->c, fs_from_fuse(fs, parent), name, mode, (uint32_t)rdev, ctx->uid, ctx->gid, &a);
	if (rc != 0) {
		fs_reply_err(req, "mknod", parent, rc);
		return;
	}
	fs_reply_entry(req, &a);
}

static void fs_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode, dev_t rdev)
{
	fs_mknod_common(req, parent, name, mode, rdev);
}

static void fs_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode)
{
	fs_mknod_common(req, parent, name, (mode & 07777) | S_IFDIR, 0);
}

static void fs_symlink(fuse_req_t req, const char *link, fuse_ino_t parent, const char *name)
{
	struct fs *fs = fs_of(req);
	const struct fuse_ctx *ctx = fuse_req_ctx(req);
	struct vdifs_attr a;
	if (fs->ro) {
		fuse_reply_err(req, EROFS);
		return;
	}
	int rc = vdifs_symlink(fs->c, fs_from_fuse(fs, parent), name, link, ctx->uid, ctx->gid, &a);
	if (rc != 0) {
		fs_reply_err(req, "symlink", parent, rc);
		return;
	}
	fs_reply_entry(req, &a);
}

static void fs_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char *newname)
{
	struct fs *fs = fs_of(req);
	struct vdifs_attr a;
	if (fs->ro) {
		fuse_reply_err(req, EROFS);
		return;
	}
	int rc = vdifs_link(fs->c, fs_from_fuse(fs, ino), fs_from_fuse(fs, newparent), newname, &a);
	if (rc != 0) {
		fs_reply_err(req, "link", ino, rc);
		return;
	}
	fs_reply_entry(req, &a);
}

static void fs_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct fs *fs = fs_of(req);
	int rc = fs->ro ? -EROFS : vdifs_unlink(fs->c, fs_from_fuse(fs, parent), name);
	fs_reply_err(req, "unlink", parent, rc);
}

static void fs_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct fs *fs = fs_of(req);
	int rc = fs->ro ? -EROFS : vdifs_rmdir(fs->c, fs_from_fuse(fs, parent), name);
	fs_reply_err(req, "rmdir", parent, rc);
}

static void fs_rename(fuse_req_t req, fuse_ino_t parent, const char *name, fuse_ino_t newparent,
		      const char *newname, unsigned int flags)
{
	struct fs *fs = fs_of(req);
	int rc = fs->ro ? -EROFS
			: vdifs_rename(fs->c, fs_from_fuse(fs, parent), name, fs_from_fuse(fs, newparent),
				       newname, flags);
	fs_reply_err(req, "rename", parent, rc);
}

static void fs_readlink(fuse_req_t req, fuse_ino_t ino)
{
	struct fs *fs = fs_of(req);
	char buf[VDIFS_PATH_MAX + 1];
	ssize_t rc = vdifs_readlink(fs->c, fs_from_fuse(fs, ino), buf, sizeof(buf));
	if (rc < 0) {
		fs_reply_err(req, "readlink", ino, (int)rc);
		return;
	}
	fuse_reply_readlink(req, buf);
}

/* Sets the per-open FUSE flags of a file handle. */
static void fs_file_flags(struct fuse_file_info *fi)
{
	/* O_DIRECT (qemu cache=none) bypasses the page cache for this open. */
	fi->direct_io = (fi->flags & O_DIRECT) != 0;
	/* Close-to-open: no keep_cache, so the kernel drops the file's pages. */
	fi->keep_cache = 0;
}

static bool fs_open_writes(int flags)
{
	return (flags & O_ACCMODE) != O_RDONLY || (flags & O_TRUNC);
}

static void fs_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fs *fs = fs_of(req);
	struct vdifs_file *f;
	if (fs->ro && fs_open_writes(fi->flags)) {
		fuse_reply_err(req, EROFS);
		return;
	}
	int rc = vdifs_file_open(fs->c, fs_from_fuse(fs, ino), (uint32_t)fi->flags, &f, NULL);
	if (rc != 0) {
		fs_reply_err(req, "open", ino, rc);
		return;
	}
	fi->fh = (uint64_t)(uintptr_t)f;
	fs_file_flags(fi);
	if (fuse_reply_open(req, fi) != 0)
		vdifs_file_close(f); /* the opener was interrupted: no release will come */
}

static void fs_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
		      struct fuse_file_info *fi)
{
	struct fs *fs = fs_of(req);
	const struct fuse_ctx *ctx = fuse_req_ctx(req);
	struct vdifs_file *f;
	struct vdifs_attr a;
	uint64_t dir = fs_from_fuse(fs, parent);
	int rc;

	if (fs->ro) {
		fuse_reply_err(req, EROFS);
		return;
	}
	int oflags = fi->flags & ~(O_CREAT | O_EXCL);
	rc = vdifs_mknod(fs->c, dir, name, (mode & 07777) | S_IFREG, 0, ctx->uid, ctx->gid, &a);
	if (rc == 0) {
		oflags &= ~O_TRUNC; /* new and empty */
		/* No attributes yet: the kernel's question before the first
		 * write is answered here, not by the MDS. */
		capcache_note_absent(&fs->caps, a.ino);
	}
	if (rc == -EEXIST && !(fi->flags & O_EXCL)) {
		/* Created meanwhile by someone else: open it as open(2) would. */
		rc = vdifs_lookup(fs->c, dir, name, &a);
		if (rc == 0 && S_ISDIR(a.mode))
			rc = -EISDIR;
	}
	if (rc != 0) {
		fs_reply_err(req, "create", parent, rc);
		return;
	}
	rc = vdifs_file_open(fs->c, a.ino, (uint32_t)oflags, &f, &a);
	if (rc != 0) {
		fs_reply_err(req, "create", parent, rc);
		return;
	}
	fi->fh = (uint64_t)(uintptr_t)f;
	fs_file_flags(fi);
	struct fuse_entry_param e;
	memset(&e, 0, sizeof(e));
	e.ino = fs_to_fuse(fs, a.ino);
	e.attr_timeout = fs->attr_timeout;
	e.entry_timeout = fs->entry_timeout;
	fs_fill_stat(fs, &a, &e.attr);
	if (fuse_reply_create(req, &e, fi) != 0)
		vdifs_file_close(f);
}

static struct vdifs_file *fs_file(struct fuse_file_info *fi)
{
	return (struct vdifs_file *)(uintptr_t)fi->fh;
}

static void fs_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi)
{
	void *buf = NULL;
	ssize_t n;

	if (off < 0) {
		fuse_reply_err(req, EINVAL);
		return;
	}
	if (size > 0) {
		buf = malloc(size);
		if (!buf) {
			fuse_reply_err(req, ENOMEM);
			return;
		}
	}
	n = vdifs_file_pread(fs_file(fi), buf, size, (uint64_t)off);
	if (n < 0)
		fs_reply_err(req, "read", ino, (int)n);
	else
		fuse_reply_buf(req, buf, (size_t)n);
	free(buf);
}

static void fs_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size, off_t off,
		     struct fuse_file_info *fi)
{
	struct fs *fs = fs_of(req);
	if (fs->ro) {
		fuse_reply_err(req, EROFS);
		return;
	}
	if (off < 0) {
		fuse_reply_err(req, EINVAL);
		return;
	}
	ssize_t n = vdifs_file_pwrite(fs_file(fi), buf, size, (uint64_t)off);
	if (n < 0)
		fs_reply_err(req, "write", ino, (int)n);
	else
		fuse_reply_write(req, (size_t)n);
}

static void fs_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	fs_reply_err(req, "flush", ino, vdifs_file_commit(fs_file(fi)));
}

static void fs_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
	(void)datasync; /* size and allocation must reach the MDS either way */
	fs_reply_err(req, "fsync", ino, vdifs_file_fsync(fs_file(fi)));
}

static void fs_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	int rc = vdifs_file_close(fs_file(fi));
	if (rc != 0)
		fs_log_fail("release", ino, rc);
	fuse_reply_err(req, 0); /* the kernel ignores release errors */
}

static void fs_fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t off, off_t len,
			 struct fuse_file_info *fi)
{
	struct fs *fs = fs_of(req);
	struct vdifs_file *f = fs_file(fi);
	bool keep = (mode & FALLOC_FL_KEEP_SIZE) != 0;
	int rc = 0;

	if (fs->ro) {
		fuse_reply_err(req, EROFS);
		return;
	}
	if (off < 0 || len <= 0) {
		fuse_reply_err(req, EINVAL);
		return;
	}
	uint64_t end = (uint64_t)off + (uint64_t)len;
	switch (mode & ~FALLOC_FL_KEEP_SIZE) {
	case 0:
		/* Data servers allocate on write: only the size may change. */
		break;
	case FALLOC_FL_PUNCH_HOLE:
		if (!keep) {
			fuse_reply_err(req, EOPNOTSUPP);
			return;
		}
		rc = vdifs_file_punch(f, (uint64_t)off, (uint64_t)len);
		break;
	case FALLOC_FL_ZERO_RANGE:
		rc = vdifs_file_punch(f, (uint64_t)off, (uint64_t)len);
		break;
	default:
		fuse_reply_err(req, EOPNOTSUPP);
		return;
	}
	if (rc == 0 && !keep && end > vdifs_file_size(f))
		rc = vdifs_file_truncate(f, end);
	fs_reply_err(req, "fallocate", ino, rc);
}

static void fs_lseek(fuse_req_t req, fuse_ino_t ino, off_t off, int whence, struct fuse_file_info *fi)
{
	if (whence != SEEK_DATA && whence != SEEK_HOLE) {
		fuse_reply_err(req, EINVAL);
		return;
	}
	if (off < 0) {
		fuse_reply_err(req, ENXIO);
		return;
	}
	int64_t rc = vdifs_file_seek(fs_file(fi), (uint64_t)off, whence);
	if (rc < 0)
		fs_reply_err(req, "lseek", ino, (int)rc);
	else
		fuse_reply_lseek(req, (off_t)rc);
}

static void fs_copy_file_range(fuse_req_t req, fuse_ino_t ino_in, off_t off_in, struct fuse_file_info *fi_in,
			       fuse_ino_t ino_out, off_t off_out, struct fuse_file_info *fi_out, size_t len,
			       int flags)
{
	struct fs *fs = fs_of(req);
	if (flags != 0 || off_in < 0 || off_out < 0) {
		fuse_reply_err(req, EINVAL);
		return;
	}
	if (fs->ro) {
		fuse_reply_err(req, EROFS);
		return;
	}
	ssize_t n = snapctl_copy_range(fs, fs_file(fi_in), fs_from_fuse(fs, ino_in), (uint64_t)off_in,
				       fs_file(fi_out), fs_from_fuse(fs, ino_out), (uint64_t)off_out, len);
	if (n == -EOPNOTSUPP)
		fuse_reply_err(req, EOPNOTSUPP); /* not an error worth a log line */
	else if (n < 0)
		fs_reply_err(req, "copy_file_range", ino_out, (int)n);
	else
		fuse_reply_write(req, (size_t)n);
}

static void fs_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fs *fs = fs_of(req);
	struct dirh *d;
	int rc = dirh_load(fs, fs_from_fuse(fs, ino), &d);
	if (rc != 0) {
		fs_reply_err(req, "opendir", ino, rc);
		return;
	}
	fi->fh = (uint64_t)(uintptr_t)d;
	if (fuse_reply_open(req, fi) != 0)
		dirh_free(d);
}

static void fs_readdir_common(fuse_req_t req, size_t size, off_t off, struct fuse_file_info *fi, bool plus)
{
	struct fs *fs = fs_of(req);
	struct dirh *d = (struct dirh *)(uintptr_t)fi->fh;
	char *buf = malloc(size ? size : 1);
	size_t pos = 0;

	if (!buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	for (size_t i = off < 0 ? 0 : (size_t)off; i < d->n; i++) {
		const struct dirh_entry *ent = &d->v[i];
		size_t used;
		if (plus) {
			struct fuse_entry_param e;
			memset(&e, 0, sizeof(e));
			fs_fill_stat(fs, &ent->attr, &e.attr);
			if (!ent->dot) {
				/* A real entry: the kernel takes a lookup reference. */
				e.ino = e.attr.st_ino;
				e.attr_timeout = fs->attr_timeout;
				e.entry_timeout = fs->entry_timeout;
			}
			used = fuse_add_direntry_plus(req, buf + pos, size - pos, ent->name, &e, (off_t)(i + 1));
		} else {
			struct stat st;
			memset(&st, 0, sizeof(st));
			st.st_ino = fs_to_fuse(fs, ent->attr.ino);
			st.st_mode = ent->attr.mode;
			used = fuse_add_direntry(req, buf + pos, size - pos, ent->name, &st, (off_t)(i + 1));
		}
		if (used > size - pos)
			break;
		pos += used;
	}
	fuse_reply_buf(req, buf, pos);
	free(buf);
}

static void fs_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi)
{
	(void)ino;
	fs_readdir_common(req, size, off, fi, false);
}

static void fs_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi)
{
	(void)ino;
	fs_readdir_common(req, size, off, fi, true);
}

static void fs_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	(void)ino;
	dirh_free((struct dirh *)(uintptr_t)fi->fh);
	fuse_reply_err(req, 0);
}

static void fs_statfs(fuse_req_t req, fuse_ino_t ino)
{
	struct fs *fs = fs_of(req);
	struct msg_statfs_rep s;
	struct statvfs sv;
	int rc = vdifs_statfs(fs->c, &s);
	if (rc != 0) {
		fs_reply_err(req, "statfs", ino, rc);
		return;
	}
	uint32_t bsize = s.bsize ? s.bsize : 4096;
	memset(&sv, 0, sizeof(sv));
	sv.f_bsize = bsize;
	sv.f_frsize = bsize;
	sv.f_blocks = s.total / bsize;
	sv.f_bfree = s.free / bsize;
	sv.f_bavail = s.avail / bsize;
	/* STATFS reports inodes in use; statvfs wants the total. */
	sv.f_files = s.files + s.ffree;
	sv.f_ffree = s.ffree;
	sv.f_favail = s.ffree;
	sv.f_namemax = s.namemax ? s.namemax : VDIFS_NAME_MAX;
	if (fs->ro)
		sv.f_flag |= ST_RDONLY;
	fuse_reply_statfs(req, &sv);
}

/* POSIX ACLs are not supported (default_permissions checks mode bits only):
 * storing them as plain xattrs would let cp -a "set" an ACL in place of the
 * chmod it falls back to when they are refused. */
static bool fs_is_acl(const char *name)
{
	return strcmp(name, "system.posix_acl_access") == 0 || strcmp(name, "system.posix_acl_default") == 0;
}

static void fs_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name, const char *value, size_t size,
			int flags)
{
	struct fs *fs = fs_of(req);
	if (snapctl_is_ctl(name)) {
		const struct fuse_ctx *ctx = fuse_req_ctx(req);
		char made[VDIFS_NAME_MAX + 1] = "";
		int rc = snapctl_setxattr(fs, fs_from_fuse(fs, ino), name, value, size, ctx->uid, ctx->gid, made);
		fs_reply_err(req, name, ino, rc);
		/* A name made behind the kernel's back may be cached as missing.
		 * Only after the reply: the kernel holds the directory's lock
		 * until then, and the invalidation needs it. */
		if (rc == 0 && made[0] && fs->se)
			fuse_lowlevel_notify_inval_entry(fs->se, ino, made, strlen(made));
		return;
	}
	int rc = fs_is_acl(name) ? -EOPNOTSUPP
		 : fs->ro	 ? -EROFS
				 : vdifs_setxattr(fs->c, fs_from_fuse(fs, ino), name, value, size, (uint32_t)flags);
	if (capcache_is_cap(name))
		capcache_forget(&fs->caps, fs_from_fuse(fs, ino));
	fs_reply_err(req, "setxattr", ino, rc);
}

/* Answers a getxattr/listxattr: size 0 is a probe for the length. */
static void fs_reply_xattr_value(fuse_req_t req, const char *op, fuse_ino_t ino, const char *name, size_t size)
{
	struct fs *fs = fs_of(req);
	uint64_t vino = fs_from_fuse(fs, ino);
	char *buf = NULL;
	ssize_t n;

	if (name && snapctl_is_ctl(name)) {
		n = snapctl_getxattr(fs, vino, name, &buf);
		if (n < 0)
			fs_reply_err(req, op, ino, (int)n);
		else if (size == 0)
			fuse_reply_xattr(req, (size_t)n);
		else if ((size_t)n > size)
			fuse_reply_err(req, ERANGE);
		else
			fuse_reply_buf(req, buf, (size_t)n);
		free(buf);
		return;
	}
	if (size > 0) {
		buf = malloc(size);
		if (!buf) {
			fuse_reply_err(req, ENOMEM);
			return;
		}
	}
	n = name ? vdifs_getxattr(fs->c, vino, name, buf, size) : vdifs_listxattr(fs->c, vino, buf, size);
	if (n == -ENODATA && name && capcache_is_cap(name))
		capcache_note_absent(&fs->caps, vino);
	if (n < 0)
		fs_reply_err(req, op, ino, (int)n);
	else if (size == 0)
		fuse_reply_xattr(req, (size_t)n);
	else
		fuse_reply_buf(req, buf, (size_t)n);
	free(buf);
}

static void fs_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size)
{
	if (fs_is_acl(name)) {
		fuse_reply_err(req, EOPNOTSUPP);
		return;
	}
	/* Asked before every write: answered here while known absent. */
	struct fs *fs = fs_of(req);
	if (capcache_is_cap(name) && capcache_absent(&fs->caps, fs_from_fuse(fs, ino))) {
		fuse_reply_err(req, ENODATA);
		return;
	}
	fs_reply_xattr_value(req, "getxattr", ino, name, size);
}

static void fs_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
	fs_reply_xattr_value(req, "listxattr", ino, NULL, size);
}

static void fs_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name)
{
	struct fs *fs = fs_of(req);
	int rc = fs_is_acl(name) ? -EOPNOTSUPP
		 : fs->ro	 ? -EROFS
				 : vdifs_removexattr(fs->c, fs_from_fuse(fs, ino), name);
	if (capcache_is_cap(name))
		capcache_forget(&fs->caps, fs_from_fuse(fs, ino));
	fs_reply_err(req, "removexattr", ino, rc);
}

const struct fuse_lowlevel_ops fs_ops = {
	.init = fs_init,
	.lookup = fs_lookup,
	.forget = fs_forget,
	.forget_multi = fs_forget_multi,
	.getattr = fs_getattr,
	.setattr = fs_setattr,
	.readlink = fs_readlink,
	.mknod = fs_mknod,
	.mkdir = fs_mkdir,
	.unlink = fs_unlink,
	.rmdir = fs_rmdir,
	.symlink = fs_symlink,
	.rename = fs_rename,
	.link = fs_link,
	.open = fs_open,
	.create = fs_create,
	.read = fs_read,
	.write = fs_write,
	.flush = fs_flush,
	.fsync = fs_fsync,
	.release = fs_release,
	.opendir = fs_opendir,
	.readdir = fs_readdir,
	.readdirplus = fs_readdirplus,
	.releasedir = fs_releasedir,
	.statfs = fs_statfs,
	.setxattr = fs_setxattr,
	.getxattr = fs_getxattr,
	.listxattr = fs_listxattr,
	.removexattr = fs_removexattr,
	.fallocate = fs_fallocate,
	.lseek = fs_lseek,
	.copy_file_range = fs_copy_file_range,
};
