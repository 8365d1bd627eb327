/*
 * client_file: files of the client API (vdifs_file_*, and vdifs_setattr,
 * whose size changes need the file's layout) and the per-inode state the
 * opens of one inode share in this client.
 *
 * Owns: the struct inode entries of the client's inode table (a cached
 * layout, the last attributes from the MDS, and the dirty size, mtime and
 * allocation of writes not yet committed) and the struct vdifs_file handles.
 * An entry lives while a file is open on it (refs counts the opens and the
 * calls using the entry).
 *
 * Tuned for a hypervisor host: many parallel 4 KiB..1 MiB reads and writes
 * from FUSE threads into few, large (64 MiB) chunks.  Once a file is open and
 * a chunk has been written once, a write is one DS_WRITE round trip with no
 * MDS involvement and no copy of the data (it is sent by reference); a read
 * copies the reply once, straight into the caller's buffer.  Dirty state is
 * sent in one COMMIT at commit/fsync/close (and before a size change), not
 * per write.
 *
 * Locks as in client_int.h: an inode's lock guards its layout and dirty
 * state and is held only for memory work; alloc_lock serialises CHUNK_ALLOC
 * and layout fetches of that inode.  Writes need every replica; a write to a
 * chunk with a dead replica fails until the MDS hands out a new replica set
 * (CHUNK_ALLOC is asked again).
 */
#include "client_int.h"
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* State of one open inode, shared by every vdifs_file on it. */
struct inode {
	struct inode *next; /* bucket chain, client lock */
	uint64_t ino;
	unsigned refs;      /* client lock */
	pthread_mutex_t alloc_lock;
	pthread_mutex_t lock; /* guards everything below */
	struct vdifs_layout layout;
	uint64_t layout_ms;   /* monotonic time of the last full fetch */
	struct vdifs_attr attr; /* last attributes from the MDS */
	uint64_t size;        /* size as this client knows it */
	bool size_dirty;
	bool mtime_dirty;
	struct timespec mtime;
};

struct vdifs_file {
	struct vdifs_client *c;
	struct inode *in;
	uint32_t flags;
};

/* ---- inode state ---------------------------------------------------------------- */

static struct inode **client_bucket(struct vdifs_client *c, uint64_t ino)
{
	return &c->itab[(ino * 0x9E3779B97F4A7C15ull) >> 56 & (CLIENT_ITAB - 1)];
}

/* Takes a reference on the state of ino, creating it when create is set.
 * NULL when absent (or ENOMEM). */
static struct inode *client_inode_get(struct vdifs_client *c, uint64_t ino, bool create)
{
	pthread_mutex_lock(&c->lock);
	struct inode **b = client_bucket(c, ino), *in;
	for (in = *b; in; in = in->next)
		if (in->ino == ino)
			break;
	if (!in && create) {
		in = calloc(1, sizeof(*in));
		if (in && pthread_mutex_init(&in->lock, NULL) != 0) {
			free(in);
			in = NULL;
		}
		if (in && pthread_mutex_init(&in->alloc_lock, NULL) != 0) {
			pthread_mutex_destroy(&in->lock);
			free(in);
			in = NULL;
		}
		if (in) {
			in->ino = ino;
			vdifs_layout_init(&in->layout);
			in->next = *b;
			*b = in;
		}
	}
	if (in)
		in->refs++;
	pthread_mutex_unlock(&c->lock);
	return in;
}

static void client_inode_free(struct inode *in)
{
	vdifs_layout_free(&in->layout);
	pthread_mutex_destroy(&in->lock);
	pthread_mutex_destroy(&in->alloc_lock);
	free(in);
}

/* Drops a reference taken by client_inode_get; the last one frees the state. */
static void client_inode_put(struct vdifs_client *c, struct inode *in)
{
	pthread_mutex_lock(&c->lock);
	if (--in->refs > 0) {
		pthread_mutex_unlock(&c->lock);
		return;
	}
	for (struct inode **pp = client_bucket(c, in->ino); *pp; pp = &(*pp)->next)
		if (*pp == in) {
			*pp = in->next;
			break;
		}
	pthread_mutex_unlock(&c->lock);
	client_inode_free(in);
}

void client_inodes_free(struct vdifs_client *c)
{
	for (int i = 0; i < CLIENT_ITAB; i++)
		for (struct inode *in = c->itab[i], *next; in; in = next) {
			next = in->next;
			client_inode_free(in);
		}
}

/* Allocated bytes this client wrote that the MDS does not count yet. */
static int64_t client_inode_pending(const struct inode *in)
{
	int64_t sum = 0;
	for (size_t i = 0; i < in->layout.n; i++) {
		const struct vdifs_chunk *ch = &in->layout.v[i];
		if (ch->alloc_known)
			sum += (int64_t)ch->alloc - (int64_t)ch->alloc_base;
	}
	return sum;
}

void client_overlay(struct vdifs_client *c, struct vdifs_attr *a)
{
	pthread_mutex_lock(&c->lock);
	struct inode *in;
	for (in = *client_bucket(c, a->ino); in; in = in->next)
		if (in->ino == a->ino)
			break;
	if (!in) {
		pthread_mutex_unlock(&c->lock);
		return;
	}
	pthread_mutex_lock(&in->lock);
	pthread_mutex_unlock(&c->lock);
	if (in->size_dirty)
		a->size = in->size;
	if (in->mtime_dirty) {
		a->mtime_s = in->mtime.tv_sec;
		a->mtime_ns = (uint32_t)in->mtime.tv_nsec;
		if (a->ctime_s < a->mtime_s || (a->ctime_s == a->mtime_s && a->ctime_ns < a->mtime_ns)) {
			a->ctime_s = a->mtime_s;
			a->ctime_ns = a->mtime_ns;
		}
	}
	int64_t blocks = (int64_t)a->blocks + (client_inode_pending(in) + 511) / 512;
	a->blocks = blocks > 0 ? (uint64_t)blocks : 0;
	pthread_mutex_unlock(&in->lock);
}

int client_chunk_from_loc(struct vdifs_client *c, const struct msg_chunk_loc *m, struct vdifs_chunk *out)
{
	struct wreader r;

	memset(out, 0, sizeof(*out));
	out->index = m->index;
	out->chunk_id = m->chunk_id;
	out->version = m->version;
	out->flags = m->flags;
	if (m->nrep > VDIFS_MAX_REPLICAS)
		return -EBADMSG;
	wreader_init(&r, m->replicas.p, m->replicas.len);
	for (uint32_t i = 0; i < m->nrep; i++) {
		struct msg_replica rep;
		msg_replica_get(&r, &rep);
		if (r.err)
			return -EBADMSG;
		out->rep[i] = client_ds_intern(c, rep.ds_id, rep.host, rep.port);
		if (!out->rep[i])
			return -ENOMEM;
	}
	out->nrep = m->nrep;
	if (wreader_finish(&r) != 0)
		return -EBADMSG;
	/* A delta chunk names 1..VDIFS_DEPTH_MAX-1 bases and an extent; a
	 * plain one neither.  The bases are kept as sent, to send on. */
	if ((m->nbase == 0) != (m->extent == 0) || m->nbase > VDIFS_DEPTH_MAX - 1 ||
	    m->bases.len != (uint64_t)m->nbase * VDIFS_BASE_REF_LEN)
		return -EBADMSG;
	out->extent = m->extent;
	out->nbase = m->nbase;
	if (m->bases.len)
		memcpy(out->bases, m->bases.p, m->bases.len);
	if (out->nrep == 0 && !(out->flags & VDIFS_CHUNK_HOLE))
		return -EBADMSG;
	return 0;
}

/* Fetches the layout of in from the MDS for every chunk index up to its
 * size and installs it.  LAYOUT answers index windows [first, first+max)
 * and refuses (E2BIG) a window holding too many chunks: windows start large
 * (one call for most files) and shrink on E2BIG.  alloc_lock held. */
static int client_fetch_layout(struct vdifs_client *c, struct inode *in)
{
	struct vdifs_layout fresh;
	uint64_t first = 0, last, window = VDIFS_LAYOUT_WINDOW;
	int rc = 0;

	pthread_mutex_lock(&in->lock);
	uint64_t size = in->size > in->attr.size ? in->size : in->attr.size;
	pthread_mutex_unlock(&in->lock);
	last = size ? (size - 1) / c->chunk_size : 0;
	vdifs_layout_init(&fresh);
	while (first <= last) {
		struct msg_layout_req m = { .vol = c->vol, .ino = in->ino, .first = first,
					    .max = (uint32_t)window };
		struct wbuf b;
		struct rpc_result res;
		struct msg_list_rep rep;
		struct wreader r;

		wbuf_init(&b);
		msg_layout_req_put(&b, &m);
		rc = client_mds_call(c, VDIFS_MSG_LAYOUT, &b, &res);
		wbuf_free(&b);
		if (rc == -E2BIG && window > VDIFS_LAYOUT_MIN_WINDOW) {
			rpc_result_free(&res);
			window /= 8;
			continue;
		}
		if (rc == 0 && msg_list_rep_decode(res.payload, res.len, &rep) != 0)
			rc = client_bad_reply(VDIFS_MSG_LAYOUT);
		if (rc == 0) {
			wreader_init(&r, rep.items.p, rep.items.len);
			for (uint32_t got = 0; got < rep.count && rc == 0; got++) {
				struct msg_chunk_loc loc;
				struct vdifs_chunk ch;
				msg_chunk_loc_get(&r, &loc);
				if (r.err || client_chunk_from_loc(c, &loc, &ch) != 0) {
					rc = client_bad_reply(VDIFS_MSG_LAYOUT);
					break;
				}
				if (vdifs_layout_put(&fresh, &ch) != 0)
					rc = -ENOMEM;
			}
			if (rc == 0 && wreader_finish(&r) != 0)
				rc = client_bad_reply(VDIFS_MSG_LAYOUT);
		}
		rpc_result_free(&res);
		if (rc != 0 || first + window < first)
			break;
		first += window;
	}
	if (rc != 0) {
		vdifs_layout_free(&fresh);
		return rc;
	}
	pthread_mutex_lock(&in->lock);
	vdifs_layout_replace(&in->layout, &fresh);
	in->layout_ms = client_now_ms();
	pthread_mutex_unlock(&in->lock);
	return 0;
}

/* Refetches the layout when it is older than the ttl (a read or seek met a
 * chunk the cache calls a hole; another client may have written it). */
static int client_refresh_stale(struct vdifs_client *c, struct inode *in)
{
	int rc = 0;
	pthread_mutex_lock(&in->alloc_lock);
	pthread_mutex_lock(&in->lock);
	bool stale = client_now_ms() - in->layout_ms > c->layout_ttl_ms;
	pthread_mutex_unlock(&in->lock);
	if (stale)
		rc = client_fetch_layout(c, in);
	pthread_mutex_unlock(&in->alloc_lock);
	return rc;
}

static int client_chunk_ask(struct vdifs_client *c, struct inode *in, uint64_t index, uint16_t type,
			    const struct wbuf *b, struct vdifs_chunk *out);
static void client_chunk_invalidate(struct inode *in, uint64_t index, uint64_t chunk_id);

/* Copies into *out the cached chunk at index if writes may go there (the
 * MDS answered CHUNK_ALLOC for it); false if they may not yet. */
static bool client_cached_writable(struct inode *in, uint64_t index, struct vdifs_chunk *out)
{
	pthread_mutex_lock(&in->lock);
	struct vdifs_chunk *ch = vdifs_layout_get(&in->layout, index);
	bool ok = ch && ch->writable && !(ch->flags & VDIFS_CHUNK_HOLE);
	if (ok)
		*out = *ch;
	pthread_mutex_unlock(&in->lock);
	return ok;
}

/* Copies into *out a chunk that may be written at index, asking the MDS for
 * one (CHUNK_ALLOC) the first time.  0 or -errno. */
static int client_writable_chunk(struct vdifs_client *c, struct inode *in, uint64_t index,
				 struct vdifs_chunk *out)
{
	int rc;

	if (client_cached_writable(in, index, out))
		return 0;
	/* Look again under alloc_lock: another writer may have asked meanwhile. */
	pthread_mutex_lock(&in->alloc_lock);
	if (client_cached_writable(in, index, out)) {
		pthread_mutex_unlock(&in->alloc_lock);
		return 0;
	}

	struct msg_chunk_alloc_req m = { .vol = c->vol, .ino = in->ino, .index = index };
	struct wbuf b;
	wbuf_init(&b);
	msg_chunk_alloc_req_put(&b, &m);
	rc = client_chunk_ask(c, in, index, VDIFS_MSG_CHUNK_ALLOC, &b, out);
	wbuf_free(&b);
	pthread_mutex_unlock(&in->alloc_lock);
	return rc;
}

/* Sends b (CHUNK_ALLOC or CHUNK_REPAIR of index) to the MDS and installs
 * the writable chunk it answers in the cached layout and *out.  alloc_lock
 * held.  0 or -errno. */
static int client_chunk_ask(struct vdifs_client *c, struct inode *in, uint64_t index, uint16_t type,
			    const struct wbuf *b, struct vdifs_chunk *out)
{
	struct vdifs_chunk *ch, fresh;
	struct msg_chunk_loc loc;
	struct rpc_result res;
	int rc = client_mds_call(c, type, b, &res);
	if (rc == 0 && (msg_chunk_loc_decode(res.payload, res.len, &loc) != 0 ||
			client_chunk_from_loc(c, &loc, &fresh) != 0 || fresh.nrep == 0 ||
			fresh.index != index))
		rc = client_bad_reply(type);
	rpc_result_free(&res);
	if (rc == 0) {
		fresh.writable = true;
		pthread_mutex_lock(&in->lock);
		ch = vdifs_layout_get(&in->layout, index);
		if (ch && ch->chunk_id == fresh.chunk_id) {
			/* The chunk we knew: keep what we learnt about it. */
			fresh.unsynced = ch->unsynced;
			fresh.alloc_dirty = ch->alloc_dirty;
			fresh.alloc_known = ch->alloc_known;
			fresh.alloc = ch->alloc;
			fresh.alloc_base = ch->alloc_base;
		} else {
			/* A new plain chunk: the MDS counts nothing for it.  A new
			 * delta: the MDS counts its base's bytes, learnt from the
			 * first write's report. */
			fresh.alloc_known = fresh.nbase == 0;
		}
		rc = vdifs_layout_put(&in->layout, &fresh);
		*out = fresh;
		pthread_mutex_unlock(&in->lock);
	}
	return rc;
}

/* After chunk *failed could not be updated on every replica: the chunk to
 * retry with, from the MDS (CHUNK_REPAIR: it leaves out the replicas on
 * servers that are down, with a new version), or from the cache when
 * another thread repaired it meanwhile.  0, -EAGAIN (no replica to leave
 * out yet: every one is up, or none is), -errno. */
static int client_chunk_repair(struct vdifs_client *c, struct inode *in, const struct vdifs_chunk *failed,
			       struct vdifs_chunk *out)
{
	struct vdifs_chunk now;
	pthread_mutex_lock(&in->alloc_lock);
	if (client_cached_writable(in, failed->index, &now) && now.chunk_id == failed->chunk_id &&
	    now.version > failed->version) {
		pthread_mutex_unlock(&in->alloc_lock);
		*out = now;
		return 0;
	}
	struct msg_chunk_repair_req m = { .vol = c->vol, .ino = in->ino, .index = failed->index,
					  .chunk_id = failed->chunk_id, .version = failed->version };
	struct wbuf b;
	wbuf_init(&b);
	msg_chunk_repair_req_put(&b, &m);
	int rc = client_chunk_ask(c, in, failed->index, VDIFS_MSG_CHUNK_REPAIR, &b, out);
	wbuf_free(&b);
	pthread_mutex_unlock(&in->alloc_lock);
	if (rc == -ESTALE) {
		/* The file's chunk at index is another one now (a snapshot, a
		 * revert): write to whatever it is. */
		client_chunk_invalidate(in, failed->index, failed->chunk_id);
		rc = client_writable_chunk(c, in, failed->index, out);
	}
	return rc;
}

/* Errors that say a data server cannot answer for now (unreachable, not
 * serving, a broken connection): the same request may succeed later. */
static bool client_error_transient(int status)
{
	switch (-status) {
	case EAGAIN: case ETIMEDOUT: case ECONNREFUSED: case ECONNRESET: case EHOSTUNREACH: case EHOSTDOWN:
	case ENETUNREACH: case ENOTCONN: case EPIPE: case ECANCELED:
		return true;
	default:
		return false;
	}
}

/* Errors after which an update may succeed on a retry: transient ones, or
 * the replica set or version changed under it (ESTALE; EIO: a replica the
 * primary forwarded to failed). */
static bool client_update_retryable(int status)
{
	return client_error_transient(status) || status == -ESTALE || status == -EIO;
}

typedef void (*client_encode_fn)(struct dsio_op *op, uint64_t chunk_size);

static void client_encode_sync(struct dsio_op *op, uint64_t chunk_size)
{
	(void)chunk_size;
	dsio_encode_sync(op);
}

/*
 * Retries op (a DS_WRITE, DS_PUNCH or DS_SYNC that failed) until it is done
 * on every replica of its chunk: on a fresh connection first, then with the
 * chunk as the MDS has it now (ESTALE), or with the replicas on servers that
 * are down left out (CHUNK_REPAIR; while the MDS has not marked the failed
 * server down yet, about its ds_timeout, it answers EAGAIN and the retry
 * waits).  Gives up after the client's io timeout.  0, or op's last error
 * (set as the thread's error).
 */
static int client_update_retry(struct vdifs_client *c, struct inode *in, struct dsio_op *op, client_encode_fn encode,
			       const void *data, size_t dlen)
{
	uint64_t start = client_now_ms();
	unsigned delay_ms = 20;
	bool reconnected = false, waited = false;
	while (op->status != 0) {
		bool transport = dsio_transport_failed(op);
		if (!transport && !client_update_retryable(op->status))
			break;
		if (c->io_timeout_ms && client_now_ms() - start > c->io_timeout_ms)
			break;
		int rc = 0;
		if (op->status == -ESTALE) {
			client_chunk_invalidate(in, op->sp.index, op->ch.chunk_id);
			rc = client_writable_chunk(c, in, op->sp.index, &op->ch);
		} else {
			/* Ask first: a server already marked down is left out at once
			 * (no connect timeout to an unreachable address). */
			rc = client_chunk_repair(c, in, &op->ch, &op->ch);
			if (rc == -EAGAIN && transport && !reconnected) {
				reconnected = true; /* all up: the connection broke, once more as is */
				rc = 0;
			} else if (rc == -EAGAIN) {
				if (!waited)
					log_warn("inode %llu: chunk %016llx: %s: waiting for the MDS to mark the failed server down",
						 (unsigned long long)in->ino, (unsigned long long)op->ch.chunk_id, op->msg);
				waited = true;
				struct timespec ts = { 0, (long)delay_ms * 1000000L };
				nanosleep(&ts, NULL);
				delay_ms = delay_ms < 500 ? delay_ms * 2 : 1000;
				rc = 0;
			}
		}
		if (rc != 0)
			return rc;
		encode(op, c->chunk_size);
		dsio_run1(c, op, 0, data, dlen);
	}
	if (op->status != 0) {
		dsio_seterr(op);
		return op->status;
	}
	if (waited)
		log_info("inode %llu: chunk %016llx: written again after %llu ms", (unsigned long long)in->ino,
			 (unsigned long long)op->ch.chunk_id, (unsigned long long)(client_now_ms() - start));
	return 0;
}

/* Forgets the cached writability of index so the next write asks the MDS
 * again (after -ESTALE: the replica set or version changed). */
static void client_chunk_invalidate(struct inode *in, uint64_t index, uint64_t chunk_id)
{
	pthread_mutex_lock(&in->lock);
	struct vdifs_chunk *ch = vdifs_layout_get(&in->layout, index);
	if (ch && ch->chunk_id == chunk_id)
		ch->writable = false;
	pthread_mutex_unlock(&in->lock);
}

/* Records a data server's allocation report for a chunk; written is the
 * number of bytes the operation wrote (to estimate what the MDS counted
 * before, when unknown).  Inode lock held. */
static void client_note_alloc(struct inode *in, uint64_t index, uint64_t chunk_id, uint64_t alloc,
			      uint64_t own, uint64_t written, bool exact)
{
	struct vdifs_chunk *ch = vdifs_layout_get(&in->layout, index);
	if (!ch || ch->chunk_id != chunk_id)
		return;
	if (!ch->alloc_known) {
		ch->alloc_base = exact ? alloc : (alloc > written ? alloc - written : 0);
		ch->alloc_known = true;
	}
	/* Parallel writes may answer out of order: a write never shrinks. */
	ch->alloc = exact ? alloc : (alloc > ch->alloc ? alloc : ch->alloc);
	ch->own = exact ? own : (own > ch->own ? own : ch->own);
	ch->alloc_dirty = true;
}

/* ---- files ----------------------------------------------------------------------- */

/* Splits a range into spans (malloc'ed, *n of them); NULL on ENOMEM. */
static struct vdifs_span *client_split(uint64_t off, uint64_t len, uint64_t cs, uint32_t unit, size_t *n)
{
	*n = vdifs_span_split(off, len, cs, unit, NULL, 0);
	struct vdifs_span *sp = malloc((*n ? *n : 1) * sizeof(*sp));
	if (sp)
		vdifs_span_split(off, len, cs, unit, sp, *n);
	return sp;
}

static int client_open_raw(struct vdifs_client *c, uint64_t ino, uint32_t flags, struct vdifs_attr *out)
{
	struct msg_open_req m = { .vol = c->vol, .ino = ino, .flags = flags };
	struct wbuf b;
	wbuf_init(&b);
	msg_open_req_put(&b, &m);
	int rc = client_call_attr(c, VDIFS_MSG_OPEN, &b, out);
	wbuf_free(&b);
	return rc;
}

static int client_release_raw(struct vdifs_client *c, uint64_t ino)
{
	struct msg_ino_req m = { .vol = c->vol, .ino = ino };
	struct wbuf b;
	wbuf_init(&b);
	msg_ino_req_put(&b, &m);
	int rc = client_call_void(c, VDIFS_MSG_RELEASE, &b);
	wbuf_free(&b);
	return rc;
}

int vdifs_file_open(struct vdifs_client *c, uint64_t ino, uint32_t flags, struct vdifs_file **out,
		    struct vdifs_attr *attr)
{
	struct vdifs_attr a;
	struct vdifs_file *f = NULL;
	struct inode *in;
	int rc;

	*out = NULL;
	rc = client_open_raw(c, ino, flags & ~(uint32_t)O_TRUNC, &a);
	if (rc != 0)
		return rc;
	in = client_inode_get(c, ino, true);
	f = calloc(1, sizeof(*f));
	if (!in || !f) {
		client_seterr("out of memory");
		rc = -ENOMEM;
		goto fail_release;
	}
	f->c = c;
	f->in = in;
	f->flags = flags;
	pthread_mutex_lock(&in->lock);
	in->attr = a;
	if (!in->size_dirty)
		in->size = a.size;
	pthread_mutex_unlock(&in->lock);

	/* Close-to-open: every open fetches the layout afresh, except that of
	 * an empty file (a new one, mostly), which has no chunks. */
	pthread_mutex_lock(&in->lock);
	bool empty = in->size == 0 && in->layout.n == 0;
	if (empty)
		in->layout_ms = client_now_ms();
	pthread_mutex_unlock(&in->lock);
	if (!empty) {
		pthread_mutex_lock(&in->alloc_lock);
		rc = client_fetch_layout(c, in);
		pthread_mutex_unlock(&in->alloc_lock);
		if (rc != 0)
			goto fail_release;
	}
	if (flags & O_TRUNC) {
		rc = vdifs_file_truncate(f, 0);
		if (rc != 0)
			goto fail_release;
	}
	if (attr) {
		pthread_mutex_lock(&in->lock);
		*attr = in->attr;
		pthread_mutex_unlock(&in->lock);
		client_overlay(c, attr);
	}
	*out = f;
	return 0;

fail_release:
	if (in)
		client_inode_put(c, in);
	free(f);
	client_release_raw(c, ino);
	return rc;
}

uint64_t vdifs_file_ino(const struct vdifs_file *f) { return f->in->ino; }

uint64_t vdifs_file_size(struct vdifs_file *f)
{
	pthread_mutex_lock(&f->in->lock);
	uint64_t size = f->in->size;
	pthread_mutex_unlock(&f->in->lock);
	return size;
}

/* COMMIT of the inode's dirty state.  Flags are cleared before the call and
 * restored if it fails, so writes racing with the commit stay dirty. */
static int client_inode_commit(struct vdifs_client *c, struct inode *in)
{
	struct msg_commit_req m = { .vol = c->vol, .ino = in->ino };
	struct wbuf items, b;
	struct rpc_result res;
	int rc;

	wbuf_init(&items);
	wbuf_init(&b);
	pthread_mutex_lock(&in->lock);
	for (size_t i = 0; i < in->layout.n; i++) {
		struct vdifs_chunk *ch = &in->layout.v[i];
		if (!ch->alloc_dirty)
			continue;
		struct msg_alloc a = { .index = ch->index, .chunk_id = ch->chunk_id, .bytes = ch->alloc,
				       .own = ch->own };
		msg_alloc_put(&items, &a);
		ch->alloc_dirty = false;
		m.count++;
	}
	if (in->size_dirty) {
		m.flags |= VDIFS_COMMIT_SIZE;
		m.size = in->size;
		in->size_dirty = false;
	}
	if (in->mtime_dirty) {
		m.flags |= VDIFS_COMMIT_MTIME;
		m.mtime_s = in->mtime.tv_sec;
		m.mtime_ns = (uint32_t)in->mtime.tv_nsec;
		in->mtime_dirty = false;
	}
	pthread_mutex_unlock(&in->lock);
	if (m.flags == 0 && m.count == 0) {
		rc = 0;
		goto out;
	}
	m.items.p = items.data;
	m.items.len = (uint32_t)items.len;
	msg_commit_req_put(&b, &m);
	if (items.err)
		b.err = true;
	rc = client_mds_call(c, VDIFS_MSG_COMMIT, &b, &res);
	struct msg_attr_rep rep;
	bool have_attr = rc == 0 && res.len > 0 && msg_attr_rep_decode(res.payload, res.len, &rep) == 0;
	rpc_result_free(&res);

	pthread_mutex_lock(&in->lock);
	struct wreader r;
	wreader_init(&r, items.data, items.len);
	for (uint32_t i = 0; i < m.count; i++) {
		struct msg_alloc a;
		msg_alloc_get(&r, &a);
		struct vdifs_chunk *ch = vdifs_layout_get(&in->layout, a.index);
		if (!ch || ch->chunk_id != a.chunk_id)
			continue;
		if (rc != 0)
			ch->alloc_dirty = true;
		else if (ch->alloc_known)
			ch->alloc_base = a.bytes;
	}
	if (rc != 0) {
		if (m.flags & VDIFS_COMMIT_SIZE)
			in->size_dirty = true;
		if ((m.flags & VDIFS_COMMIT_MTIME) && !in->mtime_dirty) {
			in->mtime_dirty = true;
			in->mtime.tv_sec = m.mtime_s;
			in->mtime.tv_nsec = m.mtime_ns;
		}
	} else if (have_attr) {
		in->attr = rep.attr;
		if (!in->size_dirty)
			in->size = rep.attr.size;
	}
	pthread_mutex_unlock(&in->lock);
out:
	wbuf_free(&items);
	wbuf_free(&b);
	return rc;
}

int vdifs_file_commit(struct vdifs_file *f) { return client_inode_commit(f->c, f->in); }

int vdifs_inode_commit(struct vdifs_client *c, uint64_t ino)
{
	struct inode *in = client_inode_get(c, ino, false);
	if (!in)
		return 0;
	int rc = client_inode_commit(c, in);
	client_inode_put(c, in);
	return rc;
}

void vdifs_inode_frozen(struct vdifs_client *c, uint64_t ino)
{
	struct inode *in = client_inode_get(c, ino, false);
	if (!in)
		return;
	/* Under alloc_lock so no CHUNK_ALLOC answer lands in between. */
	pthread_mutex_lock(&in->alloc_lock);
	pthread_mutex_lock(&in->lock);
	for (size_t i = 0; i < in->layout.n; i++)
		in->layout.v[i].writable = false;
	pthread_mutex_unlock(&in->lock);
	pthread_mutex_unlock(&in->alloc_lock);
	client_inode_put(c, in);
}

int vdifs_inode_reload(struct vdifs_client *c, uint64_t ino)
{
	struct inode *in = client_inode_get(c, ino, false);
	struct vdifs_attr a;
	if (!in)
		return 0;
	pthread_mutex_lock(&in->alloc_lock);
	int rc = vdifs_getattr(c, ino, &a);
	if (rc == 0) {
		struct vdifs_layout empty;
		vdifs_layout_init(&empty);
		pthread_mutex_lock(&in->lock);
		/* Whatever this client had pending described the old content. */
		vdifs_layout_free(&in->layout);
		vdifs_layout_init(&in->layout);
		in->attr = a;
		in->size = a.size;
		in->size_dirty = false;
		in->mtime_dirty = false;
		pthread_mutex_unlock(&in->lock);
		rc = client_fetch_layout(c, in);
	}
	pthread_mutex_unlock(&in->alloc_lock);
	client_inode_put(c, in);
	return rc;
}

int vdifs_file_close(struct vdifs_file *f)
{
	if (!f)
		return 0;
	struct vdifs_client *c = f->c;
	uint64_t ino = f->in->ino;
	int rc = client_inode_commit(c, f->in);
	client_inode_put(c, f->in);
	free(f);
	int rc2 = client_release_raw(c, ino);
	return rc != 0 ? rc : rc2;
}

ssize_t vdifs_file_pwrite(struct vdifs_file *f, const void *buf, size_t len, uint64_t off)
{
	struct vdifs_client *c = f->c;
	struct inode *in = f->in;
	struct dsio_batch b;
	struct dsio_op *ops = NULL;
	struct vdifs_span *sp = NULL;
	size_t n = 0;
	int rc = 0;

	if (len == 0)
		return 0;
	if (off + len < off || off + len > (uint64_t)INT64_MAX) {
		client_seterr("file too large");
		return -EFBIG;
	}
	sp = client_split(off, len, c->chunk_size, VDIFS_IO_UNIT, &n);
	ops = dsio_ops_new(n);
	if (!sp || !ops) {
		client_seterr("out of memory");
		rc = -ENOMEM;
		goto out;
	}
	/* Writable chunks first (an MDS round trip only on a chunk's first write). */
	for (size_t i = 0; i < n; i++) {
		ops[i].sp = sp[i];
		if (i > 0 && sp[i].index == sp[i - 1].index) {
			ops[i].ch = ops[i - 1].ch;
			continue;
		}
		rc = client_writable_chunk(c, in, sp[i].index, &ops[i].ch);
		if (rc != 0)
			goto out;
	}
	dsio_batch_init(&b);
	for (size_t i = 0; i < n; i++) {
		dsio_encode_write(&ops[i], c->chunk_size);
		dsio_issue(c, &b, &ops[i], 0, (const uint8_t *)buf + ops[i].sp.pos, ops[i].sp.len);
	}
	dsio_wait(c, &b, ops, n);
	dsio_batch_destroy(&b);

	for (size_t i = 0; i < n && rc == 0; i++)
		if (ops[i].status != 0)
			rc = client_update_retry(c, in, &ops[i], dsio_encode_write, (const uint8_t *)buf + ops[i].sp.pos,
						 ops[i].sp.len);
	if (rc != 0)
		goto out;

	struct timespec now;
	clock_gettime(CLOCK_REALTIME, &now);
	pthread_mutex_lock(&in->lock);
	for (size_t i = 0; i < n; i++) {
		struct vdifs_chunk *ch = vdifs_layout_get(&in->layout, ops[i].sp.index);
		if (ch && ch->chunk_id == ops[i].ch.chunk_id)
			ch->unsynced = true;
		if (ops[i].has_alloc)
			client_note_alloc(in, ops[i].sp.index, ops[i].ch.chunk_id, ops[i].alloc, ops[i].own,
					  ops[i].sp.len, false);
	}
	if (off + len > in->size) {
		in->size = off + len;
		in->size_dirty = true;
	}
	in->mtime = now;
	in->mtime_dirty = true;
	pthread_mutex_unlock(&in->lock);
out:
	dsio_ops_free(ops, n);
	free(sp);
	return rc != 0 ? rc : (ssize_t)len;
}

/* Reads one span from the other replicas of its chunk after the parallel
 * attempt on the primary failed, then once more from every replica if a
 * fresh layout shows the chunk moved (or a replica said ESTALE).  Chunks
 * that no replica holds (allocated, never written) read as zeros. */
static int client_read_retry_once(struct vdifs_client *c, struct inode *in, struct dsio_op *op)
{
	unsigned enoent = op->status == -ENOENT;
	bool stale = op->status == -ESTALE;
	unsigned tried = op->r; /* just failed: last resort (fresh connection) */
	dsio_transport_failed(op);

	for (int round = 0; round < 2; round++) {
		unsigned order[VDIFS_MAX_REPLICAS], n = dsio_read_order(&op->ch, order);
		for (unsigned k = 0; k <= n; k++) {
			/* One pass over the others, then the failed one if it is alone. */
			unsigned r = k < n ? order[k] : tried;
			if ((k < n && r == tried && round == 0) || (k == n && (round == 1 || n > 1)))
				continue;
			dsio_encode_read(op);
			if (dsio_run1(c, op, r, NULL, 0) == 0)
				return 0;
			enoent += op->status == -ENOENT;
			stale |= op->status == -ESTALE;
			dsio_transport_failed(op);
		}
		if (enoent >= op->ch.nrep) {
			memset(op->dst, 0, op->sp.len);
			return 0;
		}
		if (round == 1)
			break;
		struct vdifs_chunk old = op->ch;
		pthread_mutex_lock(&in->alloc_lock);
		int rc = client_fetch_layout(c, in);
		pthread_mutex_unlock(&in->alloc_lock);
		if (rc != 0)
			return rc;
		pthread_mutex_lock(&in->lock);
		struct vdifs_chunk *ch = vdifs_layout_get(&in->layout, op->sp.index);
		bool hole = !ch || (ch->flags & VDIFS_CHUNK_HOLE);
		if (!hole)
			op->ch = *ch;
		pthread_mutex_unlock(&in->lock);
		if (hole) {
			memset(op->dst, 0, op->sp.len);
			return 0;
		}
		bool moved = op->ch.chunk_id != old.chunk_id || op->ch.version != old.version ||
			     op->ch.nrep != old.nrep || memcmp(op->ch.rep, old.rep, sizeof(old.rep)) != 0;
		if (!moved && !stale)
			break;
		enoent = 0;
	}
	dsio_seterr(op);
	return op->status ? op->status : -EIO;
}

/* Reads a span again after a failure (client_read_retry_once).  When no
 * replica could answer for now -- every one unreachable, or not serving
 * (a data server stops serving while it cannot reach the MDS, or while it
 * restarts) -- waits and tries again, up to the io timeout. */
static int client_read_retry(struct vdifs_client *c, struct inode *in, struct dsio_op *op)
{
	uint64_t start = client_now_ms();
	unsigned delay_ms = 50;
	bool waited = false;
	for (;;) {
		int rc = client_read_retry_once(c, in, op);
		if (!client_error_transient(rc) || (c->io_timeout_ms && client_now_ms() - start > c->io_timeout_ms)) {
			if (waited && rc == 0)
				log_info("inode %llu: chunk %016llx: read again after %llu ms", (unsigned long long)in->ino,
					 (unsigned long long)op->ch.chunk_id, (unsigned long long)(client_now_ms() - start));
			return rc;
		}
		if (!waited)
			log_warn("inode %llu: chunk %016llx: no replica answers now (%s): waiting", (unsigned long long)in->ino,
				 (unsigned long long)op->ch.chunk_id, vdifs_last_error());
		waited = true;
		struct timespec ts = {0, (long)delay_ms * 1000000L};
		nanosleep(&ts, NULL);
		delay_ms = delay_ms < 500 ? delay_ms * 2 : 1000;
		op->status = rc;
	}
}

/* Reads [sp.off, sp.off + len) of op's chunk into dst as a plain read does:
 * from the preferred replica, then client_read_retry.  0 or -errno. */
static int client_read_direct(struct vdifs_client *c, struct inode *in, const struct dsio_op *like, uint32_t off,
			      uint32_t len, uint8_t *dst)
{
	struct dsio_op *op = dsio_ops_new(1);
	if (!op)
		return -ENOMEM;
	unsigned order[VDIFS_MAX_REPLICAS];
	op->ch = like->ch;
	op->sp = (struct vdifs_span){.index = like->sp.index, .off = off, .len = len};
	op->dst = dst;
	dsio_read_order(&op->ch, order);
	dsio_encode_read(op);
	int rc = dsio_run1(c, op, order[0], NULL, 0);
	if (rc != 0)
		rc = client_read_retry(c, in, op);
	dsio_ops_free(op, 1);
	return rc;
}

/* Reads span op (of a shared chunk) through the shared block cache: the
 * blocks no thread has yet are read from the data servers (one read per
 * run of them), those another thread is reading are waited for.  A block
 * whose reader failed is read directly.  0 or -errno. */
static int client_read_shared(struct vdifs_client *c, struct inode *in, struct dsio_op *op)
{
	enum { NB = VDIFS_IO_UNIT / FCACHE_BLOCK + 1 };
	struct fcache_blk *blk[NB];
	bool fill[NB];
	uint32_t b0 = op->sp.off / FCACHE_BLOCK, nb = (op->sp.off + op->sp.len - 1) / FCACHE_BLOCK - b0 + 1;
	uint8_t *run = NULL;
	int rc = 0;
	if (nb > NB)
		return client_read_direct(c, in, op, op->sp.off, op->sp.len, op->dst);
	for (uint32_t k = 0; k < nb; k++)
		if (!(blk[k] = fcache_get(c->fcache, op->ch.chunk_id, b0 + k, &fill[k]))) {
			for (uint32_t j = 0; j < k; j++) {
				if (fill[j])
					fcache_filled(c->fcache, blk[j], false);
				fcache_put(c->fcache, blk[j]);
			}
			return client_read_direct(c, in, op, op->sp.off, op->sp.len, op->dst);
		}
	/* Fill ours, a run of blocks at a time. */
	for (uint32_t k = 0; k < nb;) {
		if (!fill[k]) {
			k++;
			continue;
		}
		uint32_t e = k;
		while (e + 1 < nb && fill[e + 1])
			e++;
		uint32_t len = (e - k + 1) * FCACHE_BLOCK;
		if (!run)
			run = malloc((size_t)nb * FCACHE_BLOCK);
		int r = run ? client_read_direct(c, in, op, (b0 + k) * FCACHE_BLOCK, len, run) : -ENOMEM;
		for (uint32_t j = k; j <= e; j++) {
			if (r == 0)
				memcpy(fcache_data(blk[j]), run + (size_t)(j - k) * FCACHE_BLOCK, FCACHE_BLOCK);
			fcache_filled(c->fcache, blk[j], r == 0);
		}
		k = e + 1;
	}
	free(run);
	/* Copy out; a block whose filler failed is read directly. */
	for (uint32_t k = 0; k < nb; k++) {
		uint64_t bs = (uint64_t)(b0 + k) * FCACHE_BLOCK, be = bs + FCACHE_BLOCK;
		uint64_t s = op->sp.off > bs ? op->sp.off : bs;
		uint64_t t = (uint64_t)op->sp.off + op->sp.len < be ? (uint64_t)op->sp.off + op->sp.len : be;
		uint8_t *dst = op->dst + (s - op->sp.off);
		if (rc == 0) {
			if (fcache_wait(c->fcache, blk[k]))
				memcpy(dst, fcache_data(blk[k]) + (s - bs), t - s);
			else
				rc = client_read_direct(c, in, op, (uint32_t)s, (uint32_t)(t - s), dst);
		}
		fcache_put(c->fcache, blk[k]);
	}
	return rc;
}

ssize_t vdifs_file_pread(struct vdifs_file *f, void *buf, size_t len, uint64_t off)
{
	struct vdifs_client *c = f->c;
	struct inode *in = f->in;
	struct dsio_batch b;
	struct dsio_op *ops = NULL;
	struct vdifs_span *sp = NULL;
	size_t n = 0;
	int rc = 0;

	pthread_mutex_lock(&in->lock);
	uint64_t size = in->size;
	pthread_mutex_unlock(&in->lock);
	if (off >= size || len == 0)
		return 0;
	if (len > size - off)
		len = (size_t)(size - off);
	sp = client_split(off, len, c->chunk_size, VDIFS_IO_UNIT, &n);
	ops = dsio_ops_new(n);
	if (!sp || !ops) {
		client_seterr("out of memory");
		rc = -ENOMEM;
		goto out;
	}
	for (int pass = 0; pass < 2; pass++) {
		bool miss = false;
		pthread_mutex_lock(&in->lock);
		for (size_t i = 0; i < n; i++) {
			struct vdifs_chunk *ch = vdifs_layout_get(&in->layout, sp[i].index);
			ops[i].sp = sp[i];
			ops[i].dst = (uint8_t *)buf + sp[i].pos;
			ops[i].skip = !ch || (ch->flags & VDIFS_CHUNK_HOLE);
			if (!ops[i].skip)
				ops[i].ch = *ch;
			else if (!ch)
				miss = true;
		}
		bool stale = client_now_ms() - in->layout_ms > c->layout_ttl_ms;
		pthread_mutex_unlock(&in->lock);
		if (pass == 1 || !miss || !stale)
			break;
		rc = client_refresh_stale(c, in);
		if (rc != 0)
			goto out;
	}
	dsio_batch_init(&b);
	for (size_t i = 0; i < n; i++) {
		if (ops[i].skip) {
			memset(ops[i].dst, 0, ops[i].sp.len);
			continue;
		}
		if (c->fcache && (ops[i].ch.flags & VDIFS_CHUNK_SHARED) &&
		    fcache_shared(c->fcache, ops[i].ch.chunk_id, in->ino)) {
			ops[i].shared = true; /* read below, through the cache */
			continue;
		}
		unsigned order[VDIFS_MAX_REPLICAS];
		dsio_read_order(&ops[i].ch, order);
		dsio_encode_read(&ops[i]);
		dsio_issue(c, &b, &ops[i], order[0], NULL, 0);
	}
	for (size_t i = 0; i < n && rc == 0; i++)
		if (ops[i].shared)
			rc = client_read_shared(c, in, &ops[i]);
	dsio_wait(c, &b, ops, n);
	dsio_batch_destroy(&b);
	for (size_t i = 0; i < n && rc == 0; i++)
		if (!ops[i].skip && !ops[i].shared && ops[i].status != 0)
			rc = client_read_retry(c, in, &ops[i]);
out:
	dsio_ops_free(ops, n);
	free(sp);
	return rc != 0 ? rc : (ssize_t)len;
}

int vdifs_file_fsync(struct vdifs_file *f)
{
	struct vdifs_client *c = f->c;
	struct inode *in = f->in;
	struct dsio_op *ops = NULL;
	size_t n = 0;
	int rc = 0;

	pthread_mutex_lock(&in->lock);
	for (size_t i = 0; i < in->layout.n; i++)
		n += in->layout.v[i].unsynced;
	ops = dsio_ops_new(n);
	if (!ops) {
		pthread_mutex_unlock(&in->lock);
		client_seterr("out of memory");
		return -ENOMEM;
	}
	for (size_t i = 0, k = 0; i < in->layout.n; i++) {
		struct vdifs_chunk *ch = &in->layout.v[i];
		if (!ch->unsynced)
			continue;
		ch->unsynced = false;
		ops[k].ch = *ch;
		ops[k].sp.index = ch->index;
		k++;
	}
	pthread_mutex_unlock(&in->lock);

	if (n > 0) {
		struct dsio_batch b;
		dsio_batch_init(&b);
		for (size_t i = 0; i < n; i++) {
			dsio_encode_sync(&ops[i]);
			dsio_issue(c, &b, &ops[i], 0, NULL, 0);
		}
		dsio_wait(c, &b, ops, n);
		dsio_batch_destroy(&b);
	}
	for (size_t i = 0; i < n; i++) {
		struct dsio_op *op = &ops[i];
		/* ENOENT: no write ever created the chunk, nothing to make durable. */
		if (op->status == 0 || op->status == -ENOENT)
			continue;
		int orc = rc == 0 ? client_update_retry(c, in, op, client_encode_sync, NULL, 0) : op->status;
		if (op->status == 0 || op->status == -ENOENT)
			continue;
		if (rc == 0)
			rc = orc;
		pthread_mutex_lock(&in->lock);
		struct vdifs_chunk *ch = vdifs_layout_get(&in->layout, op->ch.index);
		if (ch && ch->chunk_id == op->ch.chunk_id)
			ch->unsynced = true;
		pthread_mutex_unlock(&in->lock);
	}
	dsio_ops_free(ops, n);
	if (rc != 0)
		return rc;
	return client_inode_commit(c, in);
}

/* DS_PUNCH of [sp.off, sp.off+sp.len) inside one chunk, if the chunk exists. */
static int client_punch_partial(struct vdifs_client *c, struct inode *in, const struct vdifs_span *sp)
{
	struct dsio_op *op = dsio_ops_new(1);
	int rc;

	if (!op) {
		client_seterr("out of memory");
		return -ENOMEM;
	}
	pthread_mutex_lock(&in->lock);
	struct vdifs_chunk *ch = vdifs_layout_get(&in->layout, sp->index);
	bool present = ch && !(ch->flags & VDIFS_CHUNK_HOLE);
	pthread_mutex_unlock(&in->lock);
	rc = 0;
	if (!present)
		goto out;
	/* A chunk inherited from a parent layer must not change: ask for ours. */
	rc = client_writable_chunk(c, in, sp->index, &op->ch);
	if (rc != 0)
		goto out;
	op->sp = *sp;
	dsio_encode_punch(op, c->chunk_size);
	rc = dsio_run1(c, op, 0, NULL, 0);
	if (rc != 0 && (rc = client_update_retry(c, in, op, dsio_encode_punch, NULL, 0)) != 0)
		goto out;
	pthread_mutex_lock(&in->lock);
	ch = vdifs_layout_get(&in->layout, sp->index);
	if (ch && ch->chunk_id == op->ch.chunk_id)
		ch->unsynced = true;
	if (op->has_alloc)
		client_note_alloc(in, sp->index, op->ch.chunk_id, op->alloc, op->own, 0, true);
	pthread_mutex_unlock(&in->lock);
out:
	dsio_ops_free(op, 1);
	return rc;
}

static int client_chunk_drop(struct vdifs_client *c, struct inode *in, uint64_t first, uint64_t count)
{
	struct msg_chunk_drop_req m = { .vol = c->vol, .ino = in->ino, .first = first, .count = count };
	struct wbuf b;
	wbuf_init(&b);
	msg_chunk_drop_req_put(&b, &m);
	int rc = client_call_void(c, VDIFS_MSG_CHUNK_DROP, &b);
	wbuf_free(&b);
	if (rc == 0) {
		pthread_mutex_lock(&in->lock);
		vdifs_layout_remove(&in->layout, first, count);
		pthread_mutex_unlock(&in->lock);
	}
	return rc;
}

int vdifs_file_punch(struct vdifs_file *f, uint64_t off, uint64_t len)
{
	struct vdifs_client *c = f->c;
	struct inode *in = f->in;
	struct vdifs_span *sp;
	uint64_t run_first = 0, run_count = 0;
	size_t n;
	int rc = 0;

	if (len == 0)
		return 0;
	if (off + len < off)
		len = UINT64_MAX - off;
	sp = client_split(off, len, c->chunk_size, 0, &n);
	if (!sp) {
		client_seterr("out of memory");
		return -ENOMEM;
	}
	for (size_t i = 0; i < n && rc == 0; i++) {
		if (sp[i].len == c->chunk_size || (sp[i].off == 0 && c->chunk_size > UINT32_MAX)) {
			if (run_count > 0 && run_first + run_count == sp[i].index) {
				run_count++;
			} else {
				if (run_count > 0)
					rc = client_chunk_drop(c, in, run_first, run_count);
				run_first = sp[i].index;
				run_count = 1;
			}
			continue;
		}
		rc = client_punch_partial(c, in, &sp[i]);
	}
	if (rc == 0 && run_count > 0)
		rc = client_chunk_drop(c, in, run_first, run_count);
	free(sp);
	if (rc == 0) {
		pthread_mutex_lock(&in->lock);
		clock_gettime(CLOCK_REALTIME, &in->mtime);
		in->mtime_dirty = true;
		pthread_mutex_unlock(&in->lock);
	}
	return rc;
}

static int client_setattr_raw(struct vdifs_client *c, uint64_t ino, const struct vdifs_setattr *sa,
			      struct vdifs_attr *out)
{
	struct msg_setattr_req m = {
		.vol = c->vol, .ino = ino, .valid = sa->valid, .mode = sa->mode, .uid = sa->uid,
		.gid = sa->gid, .size = sa->size, .atime_s = sa->atime.tv_sec,
		.atime_ns = (uint32_t)sa->atime.tv_nsec, .mtime_s = sa->mtime.tv_sec,
		.mtime_ns = (uint32_t)sa->mtime.tv_nsec,
	};
	struct wbuf b;
	wbuf_init(&b);
	msg_setattr_req_put(&b, &m);
	int rc = client_call_attr(c, VDIFS_MSG_SETATTR, &b, out);
	wbuf_free(&b);
	return rc;
}

/* SETATTR with a size: commit, zero the tail of the new last chunk, then set
 * the size (the MDS drops whole chunks past it) and forget them here. */
static int client_inode_setattr(struct vdifs_client *c, struct inode *in, const struct vdifs_setattr *sa,
				struct vdifs_attr *out)
{
	struct vdifs_attr a;
	int rc = client_inode_commit(c, in);
	if (rc != 0)
		return rc;
	if (sa->valid & VDIFS_SET_SIZE) {
		pthread_mutex_lock(&in->lock);
		uint64_t old = in->size;
		pthread_mutex_unlock(&in->lock);
		uint64_t cs = c->chunk_size;
		if (sa->size < old && sa->size % cs != 0) {
			struct vdifs_span tail = { .index = sa->size / cs, .off = (uint32_t)(sa->size % cs),
						   .len = (uint32_t)(cs - sa->size % cs) };
			rc = client_punch_partial(c, in, &tail);
			/* The space it freed, so the SETATTR reply counts it. */
			if (rc == 0)
				rc = client_inode_commit(c, in);
			if (rc != 0)
				return rc;
		}
	}
	rc = client_setattr_raw(c, in->ino, sa, &a);
	if (rc != 0)
		return rc;
	pthread_mutex_lock(&in->lock);
	if (sa->valid & VDIFS_SET_SIZE) {
		uint64_t keep = sa->size / c->chunk_size + (sa->size % c->chunk_size != 0);
		vdifs_layout_remove(&in->layout, keep, UINT64_MAX - keep);
		in->size = sa->size;
		in->size_dirty = false;
	}
	if (sa->valid & (VDIFS_SET_MTIME | VDIFS_SET_MTIME_NOW))
		in->mtime_dirty = false;
	in->attr = a;
	pthread_mutex_unlock(&in->lock);
	if (out) {
		*out = a;
		client_overlay(c, out);
	}
	return 0;
}

int vdifs_file_truncate(struct vdifs_file *f, uint64_t size)
{
	struct vdifs_setattr sa = { .valid = VDIFS_SET_SIZE, .size = size };
	if (size > (uint64_t)INT64_MAX) {
		client_seterr("file too large");
		return -EFBIG;
	}
	return client_inode_setattr(f->c, f->in, &sa, NULL);
}

struct client_seek_ctx {
	struct vdifs_client *c;
};

/* DS_SEEK on the replicas of ch in turn.  A chunk no replica has is a hole. */
static int client_chunk_seek(void *arg, const struct vdifs_chunk *ch, uint32_t off, int whence,
			     uint32_t *res)
{
	struct client_seek_ctx *ctx = arg;
	struct dsio_op *op = dsio_ops_new(1);
	unsigned enoent = 0;
	int rc = -EIO;

	if (!op) {
		client_seterr("out of memory");
		return -ENOMEM;
	}
	op->ch = *ch;
	for (unsigned r = 0; r < ch->nrep; r++) {
		dsio_encode_seek(op, off, whence);
		rc = dsio_run1(ctx->c, op, r, NULL, 0);
		if (rc == 0) {
			*res = op->seek_off;
			rc = op->found ? 1 : 0;
			goto out;
		}
		if (rc == -ENOENT)
			enoent++;
	}
	if (enoent == ch->nrep) {
		*res = off;
		rc = whence == VDIFS_SEEK_HOLE ? 1 : 0;
		goto out;
	}
	dsio_seterr(op);
out:
	dsio_ops_free(op, 1);
	return rc;
}

int64_t vdifs_file_seek(struct vdifs_file *f, uint64_t off, int whence)
{
	struct client_seek_ctx ctx = { f->c };
	int rc = client_refresh_stale(f->c, f->in);
	if (rc != 0)
		return rc;
	uint64_t size = vdifs_file_size(f);
	return vdifs_seek_layout(&f->in->layout, &f->in->lock, f->c->chunk_size, size, off, whence,
				 client_chunk_seek, &ctx);
}

int vdifs_setattr(struct vdifs_client *c, uint64_t ino, const struct vdifs_setattr *sa,
		  struct vdifs_attr *out)
{
	struct inode *in = client_inode_get(c, ino, false);
	struct vdifs_file *tmp = NULL;
	int rc;

	if (!in && (sa->valid & VDIFS_SET_SIZE)) {
		/* The tail to zero needs the layout: open the file for the call. */
		rc = vdifs_file_open(c, ino, O_WRONLY, &tmp, NULL);
		if (rc != 0)
			return rc;
		in = client_inode_get(c, ino, false);
	}
	if (in) {
		rc = client_inode_setattr(c, in, sa, out);
		client_inode_put(c, in);
	} else {
		rc = client_setattr_raw(c, ino, sa, out);
	}
	if (tmp) {
		int rc2 = vdifs_file_close(tmp);
		if (rc == 0)
			rc = rc2;
	}
	return rc;
}
