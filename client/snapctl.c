/*
 * snapctl: snapshots and clones through the mount.
 *
 * Tools (vdifs-snap, vdifs-clone) work on paths inside a mount and need no
 * cluster address or key: they talk to the mount through extended
 * attributes in the reserved "user.vdifs." namespace, which are never
 * stored (docs/ARCHITECTURE.md, "Snapshots and clones"):
 *
 *   setxattr(DIR, "user.vdifs.snap.create", "FILE/SNAP")   snapshot FILE in DIR
 *   setxattr(DIR, "user.vdifs.snap.delete", "FILE/SNAP")
 *   setxattr(DIR, "user.vdifs.snap.revert", "FILE/SNAP")
 *   setxattr(DIR, "user.vdifs.clone",       "SRCINO/NAME") clone inode SRCINO as DIR/NAME
 *   getxattr(FILE, "user.vdifs.snaps")  one line per snapshot: name size mtime_s mtime_ns
 *   getxattr(FILE, "user.vdifs.info")   key=value lines (size allocated owned shared ...)
 *   getxattr(FILE, "user.vdifs.tree[.SKIP]")  inheritance tree, one node per
 *                 line from node SKIP on ("layer parent kind ino size owned";
 *                 as many as fit 60 KB: ask again from SKIP + lines)
 *   setxattr(FILE, "user.vdifs.flatten", "begin" | "copy FIRST COUNT" | "end" |
 *                 "abort")  flatten in steps, so the tool can show progress;
 *   getxattr(FILE, "user.vdifs.flatten")  after "begin": flat=0|1 chunks=N
 *
 * Going through the mount keeps the kernel's permission checks (write
 * access to DIR) and lets the mount fix its own caches: it commits a file's
 * pending size before freezing it and reloads a file whose content was
 * replaced.  A whole-file copy_file_range into an empty file is a clone too
 * (what GNU cp does), see snapctl_copy_range().
 */
#include "snapctl.h"

#include "fs.h"
#include "log.h"

#include <time.h>

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CTL_PREFIX "user.vdifs."
/* A copy_file_range this long is the kernel's "rest of the file" (it caps
 * one call near 4 GiB), so it may start a whole-file clone. */
#define CTL_WHOLE_COPY (1ull << 30)

bool snapctl_is_ctl(const char *name) { return strncmp(name, CTL_PREFIX, sizeof(CTL_PREFIX) - 1) == 0; }

/* Splits "A/B" (size bytes, not NUL-terminated) into two names. */
static int split_pair(const char *value, size_t size, char *a, char *b)
{
	const char *slash = memchr(value, '/', size);
	if (!slash)
		return -EINVAL;
	size_t na = (size_t)(slash - value), nb = size - na - 1;
	if (na == 0 || nb == 0 || na > VDIFS_NAME_MAX || nb > VDIFS_NAME_MAX || memchr(slash + 1, '/', nb) ||
	    memchr(value, '\0', size))
		return -EINVAL;
	memcpy(a, value, na);
	a[na] = '\0';
	memcpy(b, slash + 1, nb);
	b[nb] = '\0';
	return 0;
}

/* The flatten slot of ino (a free one when make), under s->lock; NULL when
 * there is none. */
static struct snapctl_flatten *flatten_slot(struct snapctl *s, uint64_t ino, bool make)
{
	for (unsigned k = 0; k < SNAPCTL_FLATTENS; k++)
		if (s->flattens[k].ino == ino)
			return &s->flattens[k];
	for (unsigned k = 0; make && k < SNAPCTL_FLATTENS; k++)
		if (s->flattens[k].ino == 0)
			return &s->flattens[k];
	return NULL;
}

static void flatten_forget(struct snapctl *s, uint64_t ino)
{
	pthread_mutex_lock(&s->lock);
	struct snapctl_flatten *j = flatten_slot(s, ino, false);
	if (j) {
		if (j->allocs)
			wbuf_free(j->allocs);
		free(j->allocs);
		memset(j, 0, sizeof(*j));
	}
	pthread_mutex_unlock(&s->lock);
}

/* One step of a flatten of file ino (see the list at the top). */
static int flatten_step(struct fs *fs, uint64_t ino, const char *value, size_t size)
{
	char cmd[64];
	unsigned long long first, count;
	struct snapctl_flatten *j;
	struct vdifs_attr out;
	struct msg_flatten_rep rep;
	int rc;
	if (size == 0 || size >= sizeof(cmd) || memchr(value, '\0', size))
		return -EINVAL;
	memcpy(cmd, value, size);
	cmd[size] = '\0';
	if (strcmp(cmd, "begin") == 0) {
		flatten_forget(&fs->ctl, ino);
		rc = vdifs_inode_commit(fs->c, ino);
		if (rc == 0)
			rc = vdifs_flatten_begin(fs->c, ino, &rep);
		if (rc < 0)
			return rc;
		vdifs_inode_frozen(fs->c, ino);
		struct wbuf *w = calloc(1, sizeof(*w));
		if (!w)
			return -ENOMEM;
		wbuf_init(w);
		pthread_mutex_lock(&fs->ctl.lock);
		j = flatten_slot(&fs->ctl, 0, true);
		if (j)
			*j = (struct snapctl_flatten){ino, rep.flat != 0, rep.chunks, w, 0};
		pthread_mutex_unlock(&fs->ctl.lock);
		if (!j) {
			free(w);
			vdifs_flatten_end(fs->c, ino, true, NULL, 0, NULL);
			return -EBUSY; /* too many flattens through this mount at once */
		}
		return 0;
	}
	bool end = strcmp(cmd, "end") == 0, abandon = strcmp(cmd, "abort") == 0;
	char extra;
	if (!end && !abandon && sscanf(cmd, "copy %llu %llu%c", &first, &count, &extra) != 2)
		return -EINVAL;
	/* The job's list of copies is only touched by its own steps, which
	 * one tool makes one after the other. */
	pthread_mutex_lock(&fs->ctl.lock);
	j = flatten_slot(&fs->ctl, ino, false);
	struct snapctl_flatten job = j ? *j : (struct snapctl_flatten){0};
	pthread_mutex_unlock(&fs->ctl.lock);
	if (!j && !abandon)
		return -ENOENT;
	if (!end && !abandon) {
		uint32_t n = job.nallocs;
		rc = vdifs_flatten_copy(fs->c, ino, first, count > UINT32_MAX ? UINT32_MAX : (uint32_t)count,
					job.allocs, &n);
		pthread_mutex_lock(&fs->ctl.lock);
		j = flatten_slot(&fs->ctl, ino, false);
		if (j)
			j->nallocs = n;
		pthread_mutex_unlock(&fs->ctl.lock);
		return rc;
	}
	rc = vdifs_flatten_end(fs->c, ino, abandon, job.allocs, job.nallocs, &out);
	flatten_forget(&fs->ctl, ino);
	if (rc == 0 && end) {
		rc = vdifs_inode_reload(fs->c, ino);
		/* Same bytes, but the kernel's attributes (blocks) are old. */
		if (fs->se)
			fuse_lowlevel_notify_inval_inode(fs->se, fs_to_fuse(fs, ino), -1, 0);
	}
	return rc;
}

int snapctl_setxattr(struct fs *fs, uint64_t dir, const char *name, const char *value, size_t size,
		     uint32_t uid, uint32_t gid, char *made)
{
	const char *op = name + sizeof(CTL_PREFIX) - 1;
	char a[VDIFS_NAME_MAX + 1], b[VDIFS_NAME_MAX + 1];
	struct vdifs_attr fa, out;
	int rc;

	if (fs->ro)
		return -EROFS;
	if (strcmp(op, "flatten") == 0)
		return flatten_step(fs, dir, value, size);
	rc = split_pair(value, size, a, b);
	if (rc < 0)
		return rc;
	if (strcmp(op, "clone") == 0) {
		char *end;
		unsigned long long src = strtoull(a, &end, 10);
		if (*end || src == 0)
			return -EINVAL;
		rc = vdifs_inode_commit(fs->c, fs_from_fuse(fs, src));
		if (rc == 0)
			rc = vdifs_clone(fs->c, fs_from_fuse(fs, src), 0, dir, b, uid, gid, &out);
		if (rc == 0) {
			vdifs_inode_frozen(fs->c, fs_from_fuse(fs, src));
			strcpy(made, b);
		}
		return rc;
	}
	bool create = strcmp(op, "snap.create") == 0, revert = strcmp(op, "snap.revert") == 0;
	if (!create && !revert && strcmp(op, "snap.delete") != 0)
		return -EINVAL;
	rc = vdifs_lookup(fs->c, dir, a, &fa);
	if (rc < 0)
		return rc;
	if (create) {
		rc = vdifs_inode_commit(fs->c, fa.ino);
		if (rc == 0)
			rc = vdifs_snap_create(fs->c, dir, a, b, &out);
		if (rc == 0) {
			vdifs_inode_frozen(fs->c, fa.ino);
			strcpy(made, VDIFS_SNAPDIR_NAME);
		}
	} else if (revert) {
		rc = vdifs_snap_revert(fs->c, dir, a, b, &out);
		if (rc == 0) {
			rc = vdifs_inode_reload(fs->c, fa.ino);
			/* The kernel's pages and attributes of the file are old content. */
			if (fs->se)
				fuse_lowlevel_notify_inval_inode(fs->se, fs_to_fuse(fs, fa.ino), 0, 0);
		}
	} else {
		rc = vdifs_snap_delete(fs->c, dir, a, b);
	}
	return rc;
}

struct text {
	char *buf;
	size_t len, cap;
	bool over;
};

static void text_add(struct text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void text_add(struct text *t, const char *fmt, ...)
{
	va_list ap;
	char line[512];
	va_start(ap, fmt);
	int n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (n < 0 || t->over)
		return;
	if (t->len + (size_t)n > t->cap) {
		size_t cap = t->cap ? t->cap * 2 : 4096;
		while (cap < t->len + (size_t)n)
			cap *= 2;
		char *b = realloc(t->buf, cap);
		if (!b) {
			t->over = true;
			return;
		}
		t->buf = b;
		t->cap = cap;
	}
	memcpy(t->buf + t->len, line, (size_t)n);
	t->len += (size_t)n;
}

static int list_cb(void *arg, const char *name, const struct vdifs_attr *a)
{
	text_add(arg, "%s %" PRIu64 " %" PRId64 " %" PRIu32 "\n", name, a->size, a->mtime_s, a->mtime_ns);
	return 0;
}

/* Tree lines up to TREE_TEXT_MAX bytes (getxattr values stop at 64 KiB). */
#define TREE_TEXT_MAX 60000
static int tree_cb(void *arg, const struct msg_tree_node *n)
{
	struct text *t = arg;
	if (t->len > TREE_TEXT_MAX)
		return -ENOSPC;
	text_add(t, "%" PRIu64 " %" PRIu64 " %u %" PRIu64 " %" PRIu64 " %" PRIu64 "\n", n->layer, n->parent,
		 n->kind, n->ino, n->size, n->owned);
	return 0;
}

ssize_t snapctl_getxattr(struct fs *fs, uint64_t ino, const char *name, char **out)
{
	const char *op = name + sizeof(CTL_PREFIX) - 1;
	struct text t = {0};
	int rc;
	*out = NULL;
	if (strcmp(op, "snaps") == 0) {
		rc = vdifs_snap_list(fs->c, ino, list_cb, &t);
	} else if (strcmp(op, "info") == 0) {
		struct msg_file_info_rep r;
		rc = vdifs_inode_commit(fs->c, ino);
		if (rc == 0)
			rc = vdifs_file_info(fs->c, ino, &r);
		if (rc == 0)
			text_add(&t,
				 "size=%" PRIu64 "\nallocated=%" PRIu64 "\nowned=%" PRIu64 "\nshared=%" PRIu64
				 "\ndepth=%" PRIu32 "\nsnapshots=%" PRIu32 "\nlayer=%" PRIu64 "\norigin=%" PRIu64 "\n",
				 r.size, r.allocated, r.owned, r.shared, r.depth, r.snapshots, r.layer, r.origin);
	} else if (strcmp(op, "flatten") == 0) {
		pthread_mutex_lock(&fs->ctl.lock);
		struct snapctl_flatten *j = flatten_slot(&fs->ctl, ino, false);
		if (j)
			text_add(&t, "flat=%d\nchunks=%" PRIu64 "\n", j->flat, j->chunks);
		pthread_mutex_unlock(&fs->ctl.lock);
		rc = j ? 0 : -ENODATA;
	} else if (strncmp(op, "tree", 4) == 0 && (op[4] == '\0' || op[4] == '.')) {
		char *end = NULL;
		unsigned long skip = op[4] ? strtoul(op + 5, &end, 10) : 0;
		if (op[4] && (end == op + 5 || *end || skip > UINT32_MAX))
			return -ENODATA;
		uint32_t count;
		rc = vdifs_inode_commit(fs->c, ino);
		if (rc == 0)
			rc = vdifs_file_tree(fs->c, ino, (uint32_t)skip, tree_cb, &t, &count);
		if (rc == -ENOSPC) /* full: the tool asks again for the rest */
			rc = 0;
	} else {
		return -ENODATA;
	}
	if (rc == 0 && t.over)
		rc = -ENOMEM;
	if (rc < 0) {
		free(t.buf);
		return rc;
	}
	*out = t.buf;
	return (ssize_t)t.len;
}

void snapctl_init(struct snapctl *s)
{
	memset(s, 0, sizeof(*s));
	pthread_mutex_init(&s->lock, NULL);
}

void snapctl_destroy(struct snapctl *s)
{
	for (unsigned k = 0; k < SNAPCTL_FLATTENS; k++)
		if (s->flattens[k].allocs) {
			wbuf_free(s->flattens[k].allocs);
			free(s->flattens[k].allocs);
		}
	pthread_mutex_destroy(&s->lock);
}

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* The recent whole-file clone into dst from src, if any: its size.  Each
 * use keeps it a while longer. */
static bool recent_clone(struct snapctl *s, uint64_t src, uint64_t dst, uint64_t *size)
{
	bool found = false;
	uint64_t now = now_ms();
	pthread_mutex_lock(&s->lock);
	for (unsigned i = 0; i < SNAPCTL_RECENT; i++) {
		struct snapctl_clone *r = &s->recent[i];
		if (r->dst == dst && r->src == src && r->until_ms > now) {
			*size = r->size;
			r->until_ms = now + SNAPCTL_RECENT_MS;
			found = true;
		}
	}
	pthread_mutex_unlock(&s->lock);
	return found;
}

static void note_clone(struct snapctl *s, uint64_t src, uint64_t dst, uint64_t size)
{
	pthread_mutex_lock(&s->lock);
	s->recent[s->next % SNAPCTL_RECENT] = (struct snapctl_clone){src, dst, size, now_ms() + SNAPCTL_RECENT_MS};
	s->next++;
	pthread_mutex_unlock(&s->lock);
}

ssize_t snapctl_copy_range(struct fs *fs, struct vdifs_file *fin, uint64_t src, uint64_t off_in,
			   struct vdifs_file *fout, uint64_t dst, uint64_t off_out, size_t len)
{
	struct vdifs_attr sa, da, out;
	uint64_t size;
	(void)fout;
	if (off_in != off_out || src == dst)
		return -EOPNOTSUPP;
	/* The rest of a copy whose first call made a clone: already there. */
	if (recent_clone(&fs->ctl, src, dst, &size))
		return off_in >= size ? 0 : (ssize_t)(len < size - off_in ? len : size - off_in);

	int rc = vdifs_inode_commit(fs->c, src);
	if (rc == 0)
		rc = vdifs_getattr(fs->c, src, &sa);
	if (rc == 0)
		rc = vdifs_getattr(fs->c, dst, &da);
	if (rc < 0)
		return rc;
	/* A clone only where the caller asks for the whole file into an empty
	 * one: from the start (or from the first data, cp skips a leading
	 * hole) to the end, or a kernel-capped "as much as possible". */
	if (da.size != 0 || off_in >= sa.size || (off_in + len < sa.size && len < CTL_WHOLE_COPY))
		return -EOPNOTSUPP;
	if (off_in > 0) {
		int64_t first = vdifs_file_seek(fin, 0, SEEK_DATA);
		if (first < 0 || (uint64_t)first < off_in)
			return -EOPNOTSUPP;
	}
	rc = vdifs_clone(fs->c, src, dst, 0, NULL, 0, 0, &out);
	if (rc == -ENOTEMPTY)
		return -EOPNOTSUPP; /* the caller copies the bytes itself */
	if (rc < 0)
		return rc;
	vdifs_inode_frozen(fs->c, src);
	rc = vdifs_inode_reload(fs->c, dst);
	if (rc < 0)
		return rc;
	note_clone(&fs->ctl, src, dst, out.size);
	log_info("copy_file_range: inode %" PRIu64 " cloned from inode %" PRIu64 " (%" PRIu64 " bytes)", dst, src,
		 out.size);
	return (ssize_t)(len < out.size - off_in ? len : out.size - off_in);
}
