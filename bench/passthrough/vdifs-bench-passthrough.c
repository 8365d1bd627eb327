/*
 * vdifs-bench-passthrough: a FUSE passthrough file system, the "FUSE ceiling"
 * of the benchmark suite (bench/systems/passthrough.sh).  It mirrors SOURCE,
 * a directory on a local file system, at MOUNTPOINT, adding nothing but the
 * cost of going through FUSE: what any FUSE file system can reach on this
 * machine.
 *
 * Tuned for throughput and for many small metadata operations:
 *  - low-level API, multi-threaded session loop with one /dev/fuse clone per
 *    worker; enough workers (default 16) that a queue depth of 16 direct
 *    I/Os keeps 16 backing syscalls in flight;
 *  - 1 MiB requests (conn->max_write; libfuse derives max_pages from it);
 *  - reads are answered with the open file's fd (fuse_reply_data with
 *    FUSE_BUF_FD_SEEK), which libfuse splices from the backing file into
 *    /dev/fuse; writes arrive in a pipe (splice read) and go to the backing
 *    file with fuse_buf_copy, so the data is not copied through this process;
 *  - inodes are kept in a hash table keyed by (st_dev, st_ino), each holding
 *    an O_PATH fd; their lifetime follows the kernel's lookup/forget counts;
 *  - the kernel's writeback cache is off unless --writeback: then the kernel
 *    caches writes and sends them in large batches, as a local file system
 *    does;
 *  - O_DIRECT is passed to the backing file, so direct I/O bypasses both page
 *    caches; its data goes through a per-thread aligned buffer, since the
 *    request's payload is not aligned the way O_DIRECT requires;
 *  - extended attributes only with --xattr (see pt_xattr_path: with them,
 *    every write costs the kernel a GETXATTR round trip first).
 *
 * Operations as root are done as root (a benchmark tool, not a shared mount):
 * the kernel checks permissions itself (-o default_permissions), and files
 * created for another user are handed to that user with fchownat.
 */
#define FUSE_USE_VERSION 314

#include <fuse_lowlevel.h>

#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#define PROG "vdifs-bench-passthrough"
#define PT_MAX_IO (1u << 20)       /* max_write and the largest read */
#define PT_DEFAULT_THREADS 16u
#define PT_MAX_BACKGROUND 64u
#define PT_DIO_ALIGN 4096u         /* covers every logical block size */
#define PT_HASH_MIN_BITS 12u

/* One backing inode the kernel knows about. */
struct pt_inode {
	struct pt_inode *next;  /* hash chain */
	int fd;                 /* O_PATH */
	dev_t dev;
	ino_t ino;
	mode_t type;            /* S_IFMT bits */
	uint64_t nlookup;       /* under pt.lock */
};

struct pt_dir {
	DIR *dp;
	off_t offset;           /* where the next readdir starts */
	struct dirent *entry;   /* read but not yet handed out */
};

static struct {
	pthread_mutex_t lock;   /* the table and every nlookup */
	struct pt_inode **table;
	size_t bits;
	size_t count;
	struct pt_inode root;
	double timeout;
	bool writeback;
	bool direct_io;
	bool splice;
	bool xattr;
	bool debug;
	pthread_key_t dio_key;  /* per-thread aligned buffer for O_DIRECT files */
} pt = { .lock = PTHREAD_MUTEX_INITIALIZER };

/* ---- inode table ---- */

static size_t pt_hash(dev_t dev, ino_t ino)
{
	uint64_t h = (uint64_t)ino * 0x9E3779B97F4A7C15ull ^ (uint64_t)dev * 0xC2B2AE3D27D4EB4Full;
	return (size_t)(h >> (64 - pt.bits));
}

static struct pt_inode *pt_inode(fuse_ino_t ino)
{
	if (ino == FUSE_ROOT_ID)
		return &pt.root;
	return (struct pt_inode *)(uintptr_t)ino;
}

static fuse_ino_t pt_nodeid(struct pt_inode *in)
{
	return in == &pt.root ? FUSE_ROOT_ID : (fuse_ino_t)(uintptr_t)in;
}

/* Doubles the table; the caller holds pt.lock.  On ENOMEM the table stays as
 * it was (longer chains, still correct). */
static void pt_table_grow(void)
{
	size_t nbits = pt.bits + 1;
	struct pt_inode **nt = calloc((size_t)1 << nbits, sizeof(*nt));
	if (!nt)
		return;
	size_t old = (size_t)1 << pt.bits;
	struct pt_inode **ot = pt.table;
	pt.bits = nbits;
	for (size_t i = 0; i < old; i++) {
		struct pt_inode *in = ot[i];
		while (in) {
			struct pt_inode *next = in->next;
			size_t h = pt_hash(in->dev, in->ino);
			in->next = nt[h];
			nt[h] = in;
			in = next;
		}
	}
	pt.table = nt;
	free(ot);
}

/* Looks up NAME in PARENT and counts one kernel reference to the result.
 * Fills E (attributes and timeouts); returns 0 or an errno. */
static int pt_do_lookup(struct pt_inode *parent, const char *name, struct fuse_entry_param *e)
{
	memset(e, 0, sizeof(*e));
	e->attr_timeout = pt.timeout;
	e->entry_timeout = pt.timeout;

	int fd = openat(parent->fd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return errno;
	if (fstatat(fd, "", &e->attr, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) != 0) {
		int err = errno;
		close(fd);
		return err;
	}

	pthread_mutex_lock(&pt.lock);
	struct pt_inode *in;
	if (e->attr.st_dev == pt.root.dev && e->attr.st_ino == pt.root.ino) {
		in = &pt.root;  /* ".." of a top-level directory */
	} else {
		size_t h = pt_hash(e->attr.st_dev, e->attr.st_ino);
		for (in = pt.table[h]; in; in = in->next)
			if (in->dev == e->attr.st_dev && in->ino == e->attr.st_ino)
				break;
		if (!in) {
			in = calloc(1, sizeof(*in));
			if (!in) {
				pthread_mutex_unlock(&pt.lock);
				close(fd);
				return ENOMEM;
			}
			in->fd = fd;
			fd = -1;
			in->dev = e->attr.st_dev;
			in->ino = e->attr.st_ino;
			in->type = e->attr.st_mode & S_IFMT;
			in->next = pt.table[h];
			pt.table[h] = in;
			if (++pt.count > ((size_t)1 << pt.bits))
				pt_table_grow();
		}
	}
	in->nlookup++;
	pthread_mutex_unlock(&pt.lock);
	if (fd >= 0)
		close(fd);
	e->ino = pt_nodeid(in);
	return 0;
}

/* Drops N kernel references; the inode goes when none is left. */
static void pt_unref(struct pt_inode *in, uint64_t n)
{
	if (in == &pt.root)
		return;
	pthread_mutex_lock(&pt.lock);
	assert(in->nlookup >= n);
	in->nlookup -= n;
	if (in->nlookup != 0) {
		pthread_mutex_unlock(&pt.lock);
		return;
	}
	struct pt_inode **pp = &pt.table[pt_hash(in->dev, in->ino)];
	while (*pp != in)
		pp = &(*pp)->next;
	*pp = in->next;
	pt.count--;
	pthread_mutex_unlock(&pt.lock);
	close(in->fd);
	free(in);
}

/* "/proc/self/fd/N": reaches the file behind an O_PATH fd for the calls that
 * take no fd (getxattr, truncate, open with new flags). */
static void pt_procpath(char buf[static 40], int fd)
{
	snprintf(buf, 40, "/proc/self/fd/%d", fd);
}

/* ---- per-thread aligned buffer for O_DIRECT backing files ---- */

static void *pt_dio_buffer(void)
{
	void *b = pthread_getspecific(pt.dio_key);
	if (b)
		return b;
	if (posix_memalign(&b, PT_DIO_ALIGN, PT_MAX_IO) != 0)
		return NULL;
	if (pthread_setspecific(pt.dio_key, b) != 0) {
		free(b);
		return NULL;
	}
	return b;
}

static bool pt_fd_is_direct(int fd)
{
	int fl = fcntl(fd, F_GETFL);
	return fl >= 0 && (fl & O_DIRECT);
}

/* ---- replies ---- */

static void pt_reply_entry(fuse_req_t req, struct pt_inode *parent, const char *name)
{
	struct fuse_entry_param e;
	int err = pt_do_lookup(parent, name, &e);
	if (err)
		fuse_reply_err(req, err);
	else
		fuse_reply_entry(req, &e);
}

/* After creating NAME for a caller other than ourselves, hand it over. */
static void pt_chown_new(fuse_req_t req, struct pt_inode *parent, const char *name)
{
	const struct fuse_ctx *ctx = fuse_req_ctx(req);
	if (ctx->uid != geteuid() || ctx->gid != getegid())
		if (fchownat(parent->fd, name, ctx->uid, ctx->gid, AT_SYMLINK_NOFOLLOW) != 0)
			fprintf(stderr, PROG ": chown %s: %s\n", name, strerror(errno));
}

/* ---- operations ---- */

static void pt_init(void *userdata, struct fuse_conn_info *conn)
{
	(void)userdata;
	conn->max_write = PT_MAX_IO;
	/* Asynchronous direct I/O and read-ahead are background requests, of
	 * which the kernel allows 12 in flight by default: too few for a queue
	 * depth of 16, or for our worker threads. */
	conn->max_background = PT_MAX_BACKGROUND;
	conn->congestion_threshold = PT_MAX_BACKGROUND * 3 / 4;
	if (pt.splice) {
		if (conn->capable & FUSE_CAP_SPLICE_WRITE)
			conn->want |= FUSE_CAP_SPLICE_WRITE;
		if (conn->capable & FUSE_CAP_SPLICE_READ)
			conn->want |= FUSE_CAP_SPLICE_READ;
	} else {
		conn->want &= ~(FUSE_CAP_SPLICE_WRITE | FUSE_CAP_SPLICE_READ | FUSE_CAP_SPLICE_MOVE);
	}
	if (pt.writeback && (conn->capable & FUSE_CAP_WRITEBACK_CACHE))
		conn->want |= FUSE_CAP_WRITEBACK_CACHE;
	else
		conn->want &= ~FUSE_CAP_WRITEBACK_CACHE;
	if (conn->capable & FUSE_CAP_PARALLEL_DIROPS)
		conn->want |= FUSE_CAP_PARALLEL_DIROPS;
	if (conn->capable & FUSE_CAP_ASYNC_DIO)
		conn->want |= FUSE_CAP_ASYNC_DIO;
	/* We act as root: let the kernel clear suid/sgid on write itself. */
	conn->want &= ~FUSE_CAP_HANDLE_KILLPRIV;
	/* Lock requests stay in the kernel (local locks are what a benchmark
	 * on one host needs). */
	conn->want &= ~(FUSE_CAP_POSIX_LOCKS | FUSE_CAP_FLOCK_LOCKS);
}

static void pt_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	pt_reply_entry(req, pt_inode(parent), name);
}

static void pt_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
	pt_unref(pt_inode(ino), nlookup);
	fuse_reply_none(req);
}

static void pt_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *forgets)
{
	for (size_t i = 0; i < count; i++)
		pt_unref(pt_inode(forgets[i].ino), forgets[i].nlookup);
	fuse_reply_none(req);
}

static void pt_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct stat st;
	int rc = fi ? fstat((int)fi->fh, &st)
		    : fstatat(pt_inode(ino)->fd, "", &st, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW);
	if (rc != 0)
		fuse_reply_err(req, errno);
	else
		fuse_reply_attr(req, &st, pt.timeout);
}

static void pt_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int valid,
		       struct fuse_file_info *fi)
{
	struct pt_inode *in = pt_inode(ino);
	char path[40];
	pt_procpath(path, in->fd);
	int rc = 0;

	if (valid & FUSE_SET_ATTR_MODE) {
		if (in->type == S_IFLNK)
			rc = -1, errno = EOPNOTSUPP;
		else
			rc = fi ? fchmod((int)fi->fh, attr->st_mode) : chmod(path, attr->st_mode);
		if (rc != 0)
			goto fail;
	}
	if (valid & (FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID)) {
		uid_t uid = (valid & FUSE_SET_ATTR_UID) ? attr->st_uid : (uid_t)-1;
		gid_t gid = (valid & FUSE_SET_ATTR_GID) ? attr->st_gid : (gid_t)-1;
		if (fchownat(in->fd, "", uid, gid, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) != 0)
			goto fail;
	}
	if (valid & FUSE_SET_ATTR_SIZE) {
		rc = fi ? ftruncate((int)fi->fh, attr->st_size) : truncate(path, attr->st_size);
		if (rc != 0)
			goto fail;
	}
	if (valid & (FUSE_SET_ATTR_ATIME | FUSE_SET_ATTR_MTIME)) {
		struct timespec tv[2] = { { .tv_nsec = UTIME_OMIT }, { .tv_nsec = UTIME_OMIT } };
		if (valid & FUSE_SET_ATTR_ATIME_NOW)
			tv[0].tv_nsec = UTIME_NOW;
		else if (valid & FUSE_SET_ATTR_ATIME)
			tv[0] = attr->st_atim;
		if (valid & FUSE_SET_ATTR_MTIME_NOW)
			tv[1].tv_nsec = UTIME_NOW;
		else if (valid & FUSE_SET_ATTR_MTIME)
			tv[1] = attr->st_mtim;
		if (fi)
			rc = futimens((int)fi->fh, tv);
		else if (in->type == S_IFLNK)
			rc = -1, errno = EOPNOTSUPP;  /* the proc link would follow it */
		else
			rc = utimensat(AT_FDCWD, path, tv, 0);
		if (rc != 0)
			goto fail;
	}
	pt_getattr(req, ino, fi);
	return;
fail:
	fuse_reply_err(req, errno);
}

static void pt_readlink(fuse_req_t req, fuse_ino_t ino)
{
	char buf[PATH_MAX + 1];
	ssize_t n = readlinkat(pt_inode(ino)->fd, "", buf, sizeof(buf));
	if (n < 0)
		fuse_reply_err(req, errno);
	else if ((size_t)n >= sizeof(buf))
		fuse_reply_err(req, ENAMETOOLONG);
	else {
		buf[n] = '\0';
		fuse_reply_readlink(req, buf);
	}
}

static void pt_mknod_any(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
			 dev_t rdev, const char *link)
{
	struct pt_inode *dir = pt_inode(parent);
	int rc;
	if (link)
		rc = symlinkat(link, dir->fd, name);
	else if (S_ISDIR(mode))
		rc = mkdirat(dir->fd, name, mode);
	else
		rc = mknodat(dir->fd, name, mode, rdev);
	if (rc != 0) {
		fuse_reply_err(req, errno);
		return;
	}
	pt_chown_new(req, dir, name);
	pt_reply_entry(req, dir, name);
}

static void pt_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode, dev_t rdev)
{
	pt_mknod_any(req, parent, name, mode, rdev, NULL);
}

static void pt_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode)
{
	pt_mknod_any(req, parent, name, S_IFDIR | mode, 0, NULL);
}

static void pt_symlink(fuse_req_t req, const char *link, fuse_ino_t parent, const char *name)
{
	pt_mknod_any(req, parent, name, S_IFLNK, 0, link);
}

static void pt_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char *newname)
{
	struct pt_inode *in = pt_inode(ino);
	struct pt_inode *dir = pt_inode(newparent);
	char path[40];
	pt_procpath(path, in->fd);
	/* AT_EMPTY_PATH would need CAP_DAC_READ_SEARCH; the proc link does not. */
	if (linkat(AT_FDCWD, path, dir->fd, newname, AT_SYMLINK_FOLLOW) != 0) {
		fuse_reply_err(req, errno);
		return;
	}
	pt_reply_entry(req, dir, newname);
}

static void pt_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	fuse_reply_err(req, unlinkat(pt_inode(parent)->fd, name, 0) == 0 ? 0 : errno);
}

static void pt_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	fuse_reply_err(req, unlinkat(pt_inode(parent)->fd, name, AT_REMOVEDIR) == 0 ? 0 : errno);
}

static void pt_rename(fuse_req_t req, fuse_ino_t parent, const char *name, fuse_ino_t newparent,
		      const char *newname, unsigned int flags)
{
	int rc = renameat2(pt_inode(parent)->fd, name, pt_inode(newparent)->fd, newname, flags);
	fuse_reply_err(req, rc == 0 ? 0 : errno);
}

/* Flags for the backing open: the kernel's, adjusted for the writeback cache
 * (the kernel then reads pages of write-only files and does O_APPEND itself). */
static int pt_open_flags(int flags)
{
	flags &= ~O_NOFOLLOW;
	if (pt.writeback) {
		if ((flags & O_ACCMODE) == O_WRONLY)
			flags = (flags & ~O_ACCMODE) | O_RDWR;
		flags &= ~O_APPEND;
	}
	return flags | O_CLOEXEC;
}

static void pt_set_open_reply(struct fuse_file_info *fi, int fd)
{
	fi->fh = (uint64_t)fd;
	fi->direct_io = pt.direct_io;
	fi->keep_cache = pt.writeback;
	/* A read-only file has nothing to flush on close. */
	fi->noflush = (fi->flags & O_ACCMODE) == O_RDONLY;
}

static void pt_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
		      struct fuse_file_info *fi)
{
	struct pt_inode *dir = pt_inode(parent);
	int fd = openat(dir->fd, name, pt_open_flags(fi->flags) | O_CREAT, mode);
	if (fd < 0) {
		fuse_reply_err(req, errno);
		return;
	}
	pt_chown_new(req, dir, name);
	struct fuse_entry_param e;
	int err = pt_do_lookup(dir, name, &e);
	if (err) {
		close(fd);
		fuse_reply_err(req, err);
		return;
	}
	pt_set_open_reply(fi, fd);
	if (fuse_reply_create(req, &e, fi) != 0) {
		/* The kernel is gone or refused: it will send no release/forget. */
		close(fd);
		pt_unref(pt_inode(e.ino), 1);
	}
}

static void pt_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	char path[40];
	pt_procpath(path, pt_inode(ino)->fd);
	int fd = open(path, pt_open_flags(fi->flags));
	if (fd < 0) {
		fuse_reply_err(req, errno);
		return;
	}
	pt_set_open_reply(fi, fd);
	if (fuse_reply_open(req, fi) != 0)
		close(fd);
}

static void pt_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	(void)ino;
	close((int)fi->fh);
	fuse_reply_err(req, 0);
}

/* close(2) of every descriptor of an open file: closing a dup gives the
 * backing file system its chance to report delayed write errors. */
static void pt_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	(void)ino;
	int fd = dup((int)fi->fh);
	int rc = fd < 0 ? -1 : close(fd);
	fuse_reply_err(req, rc == 0 ? 0 : errno);
}

static void pt_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
	(void)ino;
	int fd = (int)fi->fh;
	int rc = datasync ? fdatasync(fd) : fsync(fd);
	fuse_reply_err(req, rc == 0 ? 0 : errno);
}

static void pt_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi)
{
	(void)ino;
	int fd = (int)fi->fh;
	if (size > PT_MAX_IO)
		size = PT_MAX_IO;
	if (pt_fd_is_direct(fd)) {
		void *b = pt_dio_buffer();
		if (!b) {
			fuse_reply_err(req, ENOMEM);
			return;
		}
		ssize_t n = pread(fd, b, size, off);
		if (n < 0)
			fuse_reply_err(req, errno);
		else
			fuse_reply_buf(req, b, (size_t)n);
		return;
	}
	struct fuse_bufvec bv = FUSE_BUFVEC_INIT(size);
	bv.buf[0].flags = FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK;
	bv.buf[0].fd = fd;
	bv.buf[0].pos = off;
	fuse_reply_data(req, &bv, 0);
}

static void pt_write_buf(fuse_req_t req, fuse_ino_t ino, struct fuse_bufvec *in_buf, off_t off,
			 struct fuse_file_info *fi)
{
	(void)ino;
	int fd = (int)fi->fh;
	size_t size = fuse_buf_size(in_buf);
	if (pt_fd_is_direct(fd)) {
		void *b = size <= PT_MAX_IO ? pt_dio_buffer() : NULL;
		if (!b) {
			fuse_reply_err(req, size <= PT_MAX_IO ? ENOMEM : EINVAL);
			return;
		}
		struct fuse_bufvec mem = FUSE_BUFVEC_INIT(size);
		mem.buf[0].mem = b;
		ssize_t got = fuse_buf_copy(&mem, in_buf, 0);
		if (got < 0) {
			fuse_reply_err(req, (int)-got);
			return;
		}
		ssize_t n = pwrite(fd, b, (size_t)got, off);
		if (n < 0)
			fuse_reply_err(req, errno);
		else
			fuse_reply_write(req, (size_t)n);
		return;
	}
	struct fuse_bufvec out = FUSE_BUFVEC_INIT(size);
	out.buf[0].flags = FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK;
	out.buf[0].fd = fd;
	out.buf[0].pos = off;
	ssize_t n = fuse_buf_copy(&out, in_buf, 0);
	if (n < 0)
		fuse_reply_err(req, (int)-n);
	else
		fuse_reply_write(req, (size_t)n);
}

static void pt_fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t off, off_t len,
			 struct fuse_file_info *fi)
{
	(void)ino;
	int rc = fallocate((int)fi->fh, mode, off, len);
	fuse_reply_err(req, rc == 0 ? 0 : errno);
}

static void pt_lseek(fuse_req_t req, fuse_ino_t ino, off_t off, int whence, struct fuse_file_info *fi)
{
	(void)ino;
	off_t r = lseek((int)fi->fh, off, whence);
	if (r < 0)
		fuse_reply_err(req, errno);
	else
		fuse_reply_lseek(req, r);
}

static void pt_copy_file_range(fuse_req_t req, fuse_ino_t ino_in, off_t off_in,
			       struct fuse_file_info *fi_in, fuse_ino_t ino_out, off_t off_out,
			       struct fuse_file_info *fi_out, size_t len, int flags)
{
	(void)ino_in;
	(void)ino_out;
	ssize_t n = copy_file_range((int)fi_in->fh, &off_in, (int)fi_out->fh, &off_out, len,
				    (unsigned)flags);
	if (n < 0)
		fuse_reply_err(req, errno);
	else
		fuse_reply_write(req, (size_t)n);
}

static void pt_statfs(fuse_req_t req, fuse_ino_t ino)
{
	struct statvfs sv;
	if (fstatvfs(pt_inode(ino)->fd, &sv) != 0)
		fuse_reply_err(req, errno);
	else
		fuse_reply_statfs(req, &sv);
}

/* ---- directories ---- */

static struct pt_dir *pt_dir(struct fuse_file_info *fi)
{
	return (struct pt_dir *)(uintptr_t)fi->fh;
}

static void pt_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct pt_dir *d = calloc(1, sizeof(*d));
	if (!d) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	int fd = openat(pt_inode(ino)->fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		goto fail;
	d->dp = fdopendir(fd);
	if (!d->dp) {
		int err = errno;
		close(fd);
		errno = err;
		goto fail;
	}
	fi->fh = (uint64_t)(uintptr_t)d;
	fi->cache_readdir = 0;
	if (fuse_reply_open(req, fi) != 0) {
		closedir(d->dp);
		free(d);
	}
	return;
fail:
	fuse_reply_err(req, errno);
	free(d);
}

static bool pt_is_dot(const char *name)
{
	return name[0] == '.' && (name[1] == '\0' || (name[1] == '.' && name[2] == '\0'));
}

/* Fills one reply buffer of SIZE bytes from OFFSET on.  With PLUS, each
 * entry but "." and ".." is looked up (a kernel reference the kernel takes
 * over only if the entry fits in the reply). */
static void pt_do_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t offset,
			  struct fuse_file_info *fi, bool plus)
{
	struct pt_dir *d = pt_dir(fi);
	struct pt_inode *dir = pt_inode(ino);
	char *buf = malloc(size);
	if (!buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	if (offset != d->offset) {
		seekdir(d->dp, offset);
		d->entry = NULL;
		d->offset = offset;
	}
	size_t used = 0;
	int err = 0;
	for (;;) {
		if (!d->entry) {
			errno = 0;
			d->entry = readdir(d->dp);
			if (!d->entry) {
				err = errno;  /* 0 at the end */
				break;
			}
		}
		const char *name = d->entry->d_name;
		off_t next = d->entry->d_off;
		size_t n;
		if (plus) {
			struct fuse_entry_param e;
			if (pt_is_dot(name)) {
				memset(&e, 0, sizeof(e));
				e.attr.st_ino = d->entry->d_ino;
				e.attr.st_mode = (mode_t)d->entry->d_type << 12;
			} else {
				err = pt_do_lookup(dir, name, &e);
				if (err)
					break;
			}
			n = fuse_add_direntry_plus(req, buf + used, size - used, name, &e, next);
			if (n > size - used) {
				if (!pt_is_dot(name))
					pt_unref(pt_inode(e.ino), 1);
				break;
			}
		} else {
			struct stat st = { .st_ino = d->entry->d_ino, .st_mode = (mode_t)d->entry->d_type << 12 };
			n = fuse_add_direntry(req, buf + used, size - used, name, &st, next);
			if (n > size - used)
				break;
		}
		used += n;
		d->entry = NULL;
		d->offset = next;
	}
	/* An error after some entries: hand out those, the next call reports it. */
	if (err && used == 0)
		fuse_reply_err(req, err);
	else
		fuse_reply_buf(req, buf, used);
	free(buf);
}

static void pt_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi)
{
	pt_do_readdir(req, ino, size, off, fi, false);
}

static void pt_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
			   struct fuse_file_info *fi)
{
	pt_do_readdir(req, ino, size, off, fi, true);
}

static void pt_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	(void)ino;
	struct pt_dir *d = pt_dir(fi);
	closedir(d->dp);
	free(d);
	fuse_reply_err(req, 0);
}

static void pt_fsyncdir(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
	(void)ino;
	int fd = dirfd(pt_dir(fi)->dp);
	int rc = datasync ? fdatasync(fd) : fsync(fd);
	fuse_reply_err(req, rc == 0 ? 0 : errno);
}

/* ---- extended attributes ---- */

/* Extended attributes are off unless --xattr: then the kernel, before each
 * write, asks for security.capability (a GETXATTR round trip under the
 * inode lock, which serialises writes to one file); ENOSYS makes it stop
 * asking for good.  (FUSE_HANDLE_KILLPRIV_V2 would let it remember "none"
 * per inode, but libfuse 3.14 cannot ask for it.)
 * The proc link of a symlink's O_PATH fd would follow the symlink. */
static bool pt_xattr_path(fuse_req_t req, fuse_ino_t ino, char path[static 40])
{
	struct pt_inode *in = pt_inode(ino);
	if (!pt.xattr) {
		fuse_reply_err(req, ENOSYS);
		return false;
	}
	if (in->type == S_IFLNK) {
		fuse_reply_err(req, EOPNOTSUPP);
		return false;
	}
	pt_procpath(path, in->fd);
	return true;
}

/* getxattr(NAME), or listxattr when NAME is NULL.  A size of 0 asks for the
 * size only. */
static void pt_get_or_list_xattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size)
{
	char path[40];
	if (!pt_xattr_path(req, ino, path))
		return;
	char *buf = size ? malloc(size) : NULL;
	if (size && !buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	ssize_t n = name ? getxattr(path, name, buf, size) : listxattr(path, buf, size);
	if (n < 0)
		fuse_reply_err(req, errno);
	else if (size == 0)
		fuse_reply_xattr(req, (size_t)n);
	else
		fuse_reply_buf(req, buf, (size_t)n);
	free(buf);
}

static void pt_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size)
{
	pt_get_or_list_xattr(req, ino, name, size);
}

static void pt_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
	pt_get_or_list_xattr(req, ino, NULL, size);
}

static void pt_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name, const char *value,
			size_t size, int flags)
{
	char path[40];
	if (!pt_xattr_path(req, ino, path))
		return;
	fuse_reply_err(req, setxattr(path, name, value, size, flags) == 0 ? 0 : errno);
}

static void pt_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name)
{
	char path[40];
	if (!pt_xattr_path(req, ino, path))
		return;
	fuse_reply_err(req, removexattr(path, name) == 0 ? 0 : errno);
}

static const struct fuse_lowlevel_ops pt_ops = {
	.init = pt_init,
	.lookup = pt_lookup,
	.forget = pt_forget,
	.forget_multi = pt_forget_multi,
	.getattr = pt_getattr,
	.setattr = pt_setattr,
	.readlink = pt_readlink,
	.mknod = pt_mknod,
	.mkdir = pt_mkdir,
	.symlink = pt_symlink,
	.link = pt_link,
	.unlink = pt_unlink,
	.rmdir = pt_rmdir,
	.rename = pt_rename,
	.create = pt_create,
	.open = pt_open,
	.release = pt_release,
	.flush = pt_flush,
	.fsync = pt_fsync,
	.read = pt_read,
	.write_buf = pt_write_buf,
	.fallocate = pt_fallocate,
	.lseek = pt_lseek,
	.copy_file_range = pt_copy_file_range,
	.statfs = pt_statfs,
	.opendir = pt_opendir,
	.readdir = pt_readdir,
	.readdirplus = pt_readdirplus,
	.releasedir = pt_releasedir,
	.fsyncdir = pt_fsyncdir,
	.getxattr = pt_getxattr,
	.listxattr = pt_listxattr,
	.setxattr = pt_setxattr,
	.removexattr = pt_removexattr,
};

/* ---- command line ---- */

struct pt_opts {
	char *source;
	char *mountpoint;
	char *pidfile;
	unsigned threads;
	double timeout;
	int writeback;
	int direct_io;
	int no_splice;
	int xattr;
	int foreground;
	int debug;
	int help;
};

#define PT_OPT(t, m, v) { t, offsetof(struct pt_opts, m), v }
static const struct fuse_opt pt_opt_spec[] = {
	PT_OPT("--writeback", writeback, 1),
	PT_OPT("--direct-io", direct_io, 1),
	PT_OPT("--no-splice", no_splice, 1),
	PT_OPT("--xattr", xattr, 1),
	PT_OPT("--threads %u", threads, 0),
	PT_OPT("--threads=%u", threads, 0),
	PT_OPT("--timeout %lf", timeout, 0),
	PT_OPT("--timeout=%lf", timeout, 0),
	PT_OPT("--pidfile %s", pidfile, 0),
	PT_OPT("--pidfile=%s", pidfile, 0),
	PT_OPT("-f", foreground, 1),
	PT_OPT("--foreground", foreground, 1),
	PT_OPT("-d", debug, 1),
	PT_OPT("--debug", debug, 1),
	PT_OPT("-h", help, 1),
	PT_OPT("--help", help, 1),
	FUSE_OPT_END
};

static void pt_usage(FILE *to)
{
	fprintf(to,
		"usage: " PROG " [options] SOURCE MOUNTPOINT\n"
		"Mirrors the directory SOURCE at MOUNTPOINT through FUSE (the benchmarks' FUSE ceiling).\n"
		"\n"
		"    -o OPT[,OPT...]    FUSE mount options (e.g. allow_other)\n"
		"    --writeback        turn on the kernel's writeback cache (default off)\n"
		"    --direct-io        open every file in FUSE direct_io mode (no page cache)\n"
		"    --no-splice        copy data through this process instead of splicing it\n"
		"    --xattr            serve extended attributes (default off: with them the kernel\n"
		"                       asks for security.capability before every write)\n"
		"    --threads N        worker threads (default %u)\n"
		"    --timeout SEC      attribute and name cache timeout (default 1)\n"
		"    --pidfile FILE     write the serving process's pid to FILE once mounted\n"
		"    -f, --foreground   stay in the foreground (default: detach once mounted)\n"
		"    -d, --debug        print every request (implies -f)\n"
		"    -h, --help         this text\n",
		PT_DEFAULT_THREADS);
}

static int pt_opt_proc(void *data, const char *arg, int key, struct fuse_args *outargs)
{
	(void)outargs;
	struct pt_opts *o = data;
	if (key != FUSE_OPT_KEY_NONOPT)
		return 1;  /* -o options and the rest go to libfuse */
	char **slot = !o->source ? &o->source : !o->mountpoint ? &o->mountpoint : NULL;
	if (!slot) {
		fprintf(stderr, PROG ": unexpected argument '%s'\n", arg);
		return -1;
	}
	*slot = strdup(arg);
	return *slot ? 0 : -1;
}

/* Detaching: the parent waits until the child has mounted (a byte on the
 * pipe) and exits 0, or 1 when the child failed (its errors went to our
 * stderr). */
static int pt_fork(int *notify)
{
	int p[2];
	if (pipe(p) != 0) {
		perror(PROG ": pipe");
		return -1;
	}
	pid_t pid = fork();
	if (pid < 0) {
		perror(PROG ": fork");
		return -1;
	}
	if (pid > 0) {
		close(p[1]);
		char c;
		ssize_t n;
		do
			n = read(p[0], &c, 1);
		while (n < 0 && errno == EINTR);
		if (n == 1)
			_exit(0);
		int st;
		waitpid(pid, &st, 0);
		_exit(1);
	}
	close(p[0]);
	setsid();
	*notify = p[1];
	return 0;
}

static int pt_write_pidfile(const char *path)
{
	FILE *f = fopen(path, "w");
	if (!f || fprintf(f, "%ld\n", (long)getpid()) < 0 || fclose(f) != 0) {
		fprintf(stderr, PROG ": %s: %s\n", path, strerror(errno));
		return -1;
	}
	return 0;
}

static void pt_detach_stdio(void)
{
	int fd = open("/dev/null", O_RDWR);
	if (fd < 0)
		return;
	dup2(fd, 0);
	dup2(fd, 1);
	dup2(fd, 2);
	if (fd > 2)
		close(fd);
}

static void pt_free_dio_buffer(void *b)
{
	free(b);
}

int main(int argc, char *argv[])
{
	struct fuse_args args = FUSE_ARGS_INIT(argc, argv);
	struct pt_opts o = { .threads = PT_DEFAULT_THREADS, .timeout = 1.0 };
	struct fuse_session *se = NULL;
	int ret = 1, notify = -1;

	if (fuse_opt_parse(&args, &o, pt_opt_spec, pt_opt_proc) != 0)
		goto out_args;
	if (o.help) {
		pt_usage(stdout);
		ret = 0;
		goto out_args;
	}
	if (!o.source || !o.mountpoint) {
		fprintf(stderr, PROG ": SOURCE and MOUNTPOINT are required\n");
		pt_usage(stderr);
		goto out_args;
	}
	if (o.threads == 0 || o.threads > 1024 || !(o.timeout >= 0)) {
		fprintf(stderr, PROG ": --threads must be 1..1024 and --timeout >= 0\n");
		goto out_args;
	}
	if (o.debug) {
		o.foreground = 1;
		if (fuse_opt_add_arg(&args, "-d") != 0)
			goto out_args;
	}

	pt.root.fd = open(o.source, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (pt.root.fd < 0) {
		fprintf(stderr, PROG ": %s: %s\n", o.source, strerror(errno));
		goto out_args;
	}
	struct stat st;
	if (fstat(pt.root.fd, &st) != 0) {
		fprintf(stderr, PROG ": %s: %s\n", o.source, strerror(errno));
		goto out_root;
	}
	pt.root.dev = st.st_dev;
	pt.root.ino = st.st_ino;
	pt.root.type = S_IFDIR;
	pt.root.nlookup = 2;
	pt.bits = PT_HASH_MIN_BITS;
	pt.table = calloc((size_t)1 << pt.bits, sizeof(*pt.table));
	if (!pt.table || pthread_key_create(&pt.dio_key, pt_free_dio_buffer) != 0) {
		fprintf(stderr, PROG ": out of memory\n");
		goto out_root;
	}
	pt.timeout = o.timeout;
	pt.writeback = o.writeback;
	pt.direct_io = o.direct_io;
	pt.splice = !o.no_splice;
	pt.xattr = o.xattr;

	/* The kernel checks permissions; name the mount after its source. */
	char fsname[PATH_MAX + 64];
	snprintf(fsname, sizeof(fsname), "-odefault_permissions,subtype=" PROG ",fsname=%s", o.source);
	if (strchr(o.source, ',')) /* a comma would split the option list */
		snprintf(fsname, sizeof(fsname), "-odefault_permissions,subtype=" PROG);
	if (fuse_opt_add_arg(&args, fsname) != 0)
		goto out_table;

	char *mnt = realpath(o.mountpoint, NULL);
	if (!mnt) {
		fprintf(stderr, PROG ": %s: %s\n", o.mountpoint, strerror(errno));
		goto out_table;
	}
	free(o.mountpoint);
	o.mountpoint = mnt;

	if (!o.foreground && pt_fork(&notify) != 0)
		goto out_table;

	se = fuse_session_new(&args, &pt_ops, sizeof(pt_ops), NULL);
	if (!se)
		goto out_notify;
	if (fuse_set_signal_handlers(se) != 0)
		goto out_session;
	if (fuse_session_mount(se, o.mountpoint) != 0)
		goto out_signals;
	if (o.pidfile && pt_write_pidfile(o.pidfile) != 0)
		goto out_unmount;
	if (notify >= 0) {
		if (chdir("/") != 0)
			goto out_unmount;
		pt_detach_stdio();
		(void)!write(notify, "1", 1);
		close(notify);
		notify = -1;
	}

	struct fuse_loop_config *lcfg = fuse_loop_cfg_create();
	if (!lcfg) {
		fprintf(stderr, PROG ": out of memory\n");
		goto out_unmount;
	}
	/* Keep every worker (no thread churn between bursts). */
	fuse_loop_cfg_set_clone_fd(lcfg, 1);
	fuse_loop_cfg_set_max_threads(lcfg, o.threads);
	fuse_loop_cfg_set_idle_threads(lcfg, o.threads);
	int rc = fuse_session_loop_mt(se, lcfg);
	fuse_loop_cfg_destroy(lcfg);
	ret = rc == 0 ? 0 : 1;
out_unmount:
	fuse_session_unmount(se);
out_signals:
	fuse_remove_signal_handlers(se);
out_session:
	fuse_session_destroy(se);
out_notify:
	if (notify >= 0)
		close(notify);
out_table:
	free(pt.table);
out_root:
	close(pt.root.fd);
out_args:
	free(o.source);
	free(o.mountpoint);
	free(o.pidfile);
	fuse_opt_free_args(&args);
	return ret;
}
