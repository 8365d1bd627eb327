/*
 * client: the vdifs client API (see client.h for the contract).
 *
 * Owns: the rpc_loop thread, the MDS connection, the data-server address
 * table with its connection pools, and the per-inode state shared by the
 * opens of one inode (cached layout, dirty size/mtime/allocation).
 *
 * Tuned for a hypervisor host: many parallel 4 KiB..1 MiB reads and writes
 * from FUSE threads into few, large (64 MiB) chunks.  Once a file is open and
 * a chunk has been written once, a write is one DS_WRITE round trip with no
 * MDS involvement and no copy of the data (it is sent by reference); a read
 * copies the reply once, straight into the caller's buffer.
 *
 * Locks, in the order they may nest: client lock (MDS peer, data-server
 * table, graveyard, inode table) -> inode lock (layout, dirty state).  An
 * inode's alloc_lock serialises CHUNK_ALLOC and layout fetches of that inode
 * and is never taken while holding the other two.  No lock is held across a
 * network round trip except alloc_lock.
 *
 * Dead connections are replaced by fresh ones; the dead rpc_peer objects go
 * to a graveyard freed with the client, because another thread may still
 * hold the pointer it took from a pool.  A data server that refuses
 * connections or leaves a request unanswered (probed after 10 s, see
 * io_wait) is "suspect" for 30 s: reads go to its peers first.  Writes need
 * every replica; a write to a chunk with a dead replica fails until the MDS
 * hands out a new replica set (CHUNK_ALLOC is asked again).
 */
#include "client.h"
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CLIENT_ITAB 256 /* inode table buckets (open inodes) */

struct vdifs_ds {
	struct vdifs_ds *next; /* client list, client lock */
	uint32_t ds_id;
	char host[VDIFS_NAME_MAX + 1];
	uint16_t port;
	struct rpc_peer *peers[VDIFS_DS_CONNS]; /* client lock */
	unsigned rr;                            /* client lock */
	uint64_t suspect_until;                 /* monotonic ms; atomic access */
};

/* How long a data server that failed to answer is read from last. */
#define CLIENT_SUSPECT_MS 30000

struct grave {
	struct grave *next;
	struct rpc_peer *peer;
};

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

struct vdifs_client {
	struct rpc_loop *loop;
	struct event_base *base;
	struct rpc_auth auth;
	enum vdifs_role role;
	char name[64];
	char mds_host[256];
	uint16_t mds_port;
	uint32_t timeout_ms;
	uint32_t layout_ttl_ms;
	uint32_t vol;          /* mounted volume (0: none) */
	uint64_t chunk_size;
	pthread_mutex_t lock;
	struct rpc_peer *mds;
	struct vdifs_ds *ds;
	struct grave *graves;
	struct inode *itab[CLIENT_ITAB];
};

/* ---- errors ----------------------------------------------------------------- */

static _Thread_local char client_errbuf[512];
static _Thread_local bool client_err_transport;

const char *vdifs_last_error(void) { return client_errbuf; }

__attribute__((format(printf, 1, 2))) static void client_seterr(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(client_errbuf, sizeof(client_errbuf), fmt, ap);
	va_end(ap);
	client_err_transport = false;
}

/* "HOST:PORT: reason" with the reason in lower case as tools print it
 * ("127.0.0.1:9400: connection refused"); why may carry the prefix already. */
static void client_set_transport_err(const char *host, uint16_t port, const char *why)
{
	char prefix[300];
	snprintf(prefix, sizeof(prefix), "%s:%u: ", host, port);
	if (strncmp(why, prefix, strlen(prefix)) == 0)
		why += strlen(prefix);
	client_seterr("%s%s", prefix, why);
	char *r = client_errbuf + strlen(prefix) < client_errbuf + sizeof(client_errbuf) - 1
			  ? client_errbuf + strlen(prefix)
			  : NULL;
	if (r && r[0] >= 'A' && r[0] <= 'Z' && r[1] >= 'a' && r[1] <= 'z')
		r[0] = (char)(r[0] - 'A' + 'a');
	client_err_transport = true;
}

static uint64_t client_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static struct vbytes client_vb(const char *s)
{
	struct vbytes v = { (const uint8_t *)s, (uint32_t)strlen(s) };
	return v;
}

static int client_check_name(const char *name)
{
	if (strlen(name) > VDIFS_NAME_MAX) {
		client_seterr("name too long");
		return -ENAMETOOLONG;
	}
	return 0;
}

/* ---- client and connections ------------------------------------------------- */

struct vdifs_client *vdifs_client_new(const char *host, uint16_t port, const struct rpc_auth *auth,
				      enum vdifs_role role, const char *name, int *err)
{
	struct vdifs_client *c = calloc(1, sizeof(*c));
	int rc = -ENOMEM;

	if (!c)
		goto fail;
	if (strlen(host) >= sizeof(c->mds_host)) {
		rc = -EINVAL;
		goto fail_free;
	}
	snprintf(c->mds_host, sizeof(c->mds_host), "%s", host);
	snprintf(c->name, sizeof(c->name), "%s", name ? name : "client");
	c->mds_port = port;
	c->auth = *auth;
	c->role = role;
	c->timeout_ms = 60000;
	c->layout_ttl_ms = 1000;
	if (pthread_mutex_init(&c->lock, NULL) != 0)
		goto fail_free;
	c->loop = rpc_loop_start();
	if (!c->loop)
		goto fail_lock;
	c->base = rpc_loop_base(c->loop);
	return c;

fail_lock:
	pthread_mutex_destroy(&c->lock);
fail_free:
	free(c);
fail:
	client_seterr("cannot start the client: %s", strerror(-rc));
	if (err)
		*err = rc;
	return NULL;
}

void vdifs_client_free(struct vdifs_client *c)
{
	if (!c)
		return;
	if (c->mds)
		rpc_peer_free(c->mds);
	for (struct vdifs_ds *d = c->ds, *next; d; d = next) {
		next = d->next;
		for (int i = 0; i < VDIFS_DS_CONNS; i++)
			if (d->peers[i])
				rpc_peer_free(d->peers[i]);
		free(d);
	}
	for (struct grave *g = c->graves, *next; g; g = next) {
		next = g->next;
		rpc_peer_free(g->peer);
		free(g);
	}
	rpc_loop_stop(c->loop);
	/* Files left open: free their state anyway. */
	for (int i = 0; i < CLIENT_ITAB; i++)
		for (struct inode *in = c->itab[i], *next; in; in = next) {
			next = in->next;
			vdifs_layout_free(&in->layout);
			pthread_mutex_destroy(&in->lock);
			pthread_mutex_destroy(&in->alloc_lock);
			free(in);
		}
	pthread_mutex_destroy(&c->lock);
	free(c);
}

void vdifs_client_set_timeout(struct vdifs_client *c, uint32_t ms) { c->timeout_ms = ms; }
void vdifs_client_set_layout_ttl(struct vdifs_client *c, uint32_t ms) { c->layout_ttl_ms = ms; }

static struct rpc_peer *client_new_peer(struct vdifs_client *c, const char *host, uint16_t port)
{
	struct rpc_peer_config cfg = {
		.host = host,
		.port = port,
		.auth = &c->auth,
		.role = c->role,
		.name = c->name,
		.max_payload = VDIFS_DEFAULT_MAX_PAYLOAD,
		.connect_timeout_ms = 10000,
	};
	return rpc_peer_new(c->base, &cfg);
}

/* Moves a dead peer to the graveyard.  Client lock held.  On ENOMEM the peer
 * is leaked rather than freed under another thread's feet. */
static void client_bury(struct vdifs_client *c, struct rpc_peer *p)
{
	struct grave *g = malloc(sizeof(*g));
	if (!g)
		return;
	g->peer = p;
	g->next = c->graves;
	c->graves = g;
}

static struct rpc_peer *client_mds_peer(struct vdifs_client *c)
{
	pthread_mutex_lock(&c->lock);
	if (!c->mds)
		c->mds = client_new_peer(c, c->mds_host, c->mds_port);
	struct rpc_peer *p = c->mds;
	pthread_mutex_unlock(&c->lock);
	return p;
}

/* Replaces the MDS peer p (dead) unless another thread already did. */
static void client_mds_retire(struct vdifs_client *c, struct rpc_peer *p)
{
	pthread_mutex_lock(&c->lock);
	if (c->mds == p) {
		client_bury(c, p);
		c->mds = NULL;
	}
	pthread_mutex_unlock(&c->lock);
}

/* The data server at host:port, created on first sight.  Entries live as long
 * as the client, so chunks may point at them without references. */
static struct vdifs_ds *client_ds_intern(struct vdifs_client *c, uint32_t ds_id, struct vbytes host,
					 uint16_t port)
{
	struct vdifs_ds *d;

	if (host.len > VDIFS_NAME_MAX)
		return NULL;
	pthread_mutex_lock(&c->lock);
	for (d = c->ds; d; d = d->next)
		if (d->port == port && strlen(d->host) == host.len &&
		    memcmp(d->host, host.p, host.len) == 0)
			break;
	if (!d) {
		d = calloc(1, sizeof(*d));
		if (d) {
			memcpy(d->host, host.p, host.len);
			d->host[host.len] = '\0';
			d->port = port;
			d->next = c->ds;
			c->ds = d;
		}
	}
	if (d)
		d->ds_id = ds_id;
	pthread_mutex_unlock(&c->lock);
	return d;
}

/* A live connection to d, round robin over its pool (NULL on ENOMEM). */
static struct rpc_peer *client_ds_peer(struct vdifs_client *c, struct vdifs_ds *d)
{
	pthread_mutex_lock(&c->lock);
	unsigned i = d->rr++ % VDIFS_DS_CONNS;
	struct rpc_peer *p = d->peers[i];
	if (p && rpc_peer_dead(p)) {
		client_bury(c, p);
		p = NULL;
	}
	if (!p) {
		p = client_new_peer(c, d->host, d->port);
		d->peers[i] = p;
	}
	pthread_mutex_unlock(&c->lock);
	return p;
}

static bool client_ds_suspect(const struct vdifs_ds *d)
{
	return __atomic_load_n(&d->suspect_until, __ATOMIC_RELAXED) > client_now_ms();
}

static void client_ds_mark_suspect(struct vdifs_ds *d)
{
	__atomic_store_n(&d->suspect_until, client_now_ms() + CLIENT_SUSPECT_MS, __ATOMIC_RELAXED);
}

/* Replica indexes of ch in the order reads should try them: those not
 * suspect first, each group in layout order (the primary first).  Returns
 * how many were written to order. */
static unsigned client_read_order(const struct vdifs_chunk *ch, unsigned order[VDIFS_MAX_REPLICAS])
{
	unsigned n = 0;
	for (int pass = 0; pass < 2; pass++)
		for (unsigned r = 0; r < ch->nrep; r++)
			if (client_ds_suspect(ch->rep[r]) == (pass == 1))
				order[n++] = r;
	return n;
}

/* ---- MDS calls ------------------------------------------------------------------ */

/*
 * Sends one request to the MDS and waits for its reply.  A connection found
 * dead is replaced and the call sent once more.  Returns 0 or -errno with
 * vdifs_last_error() set; res must be freed by the caller in every case.
 */
static int client_mds_call(struct vdifs_client *c, uint16_t type, const struct wbuf *req,
			   struct rpc_result *res)
{
	memset(res, 0, sizeof(*res));
	if (req->err) {
		client_seterr("out of memory");
		return -ENOMEM;
	}
	for (int attempt = 0;; attempt++) {
		struct rpc_peer *p = client_mds_peer(c);
		if (!p) {
			client_seterr("out of memory");
			return -ENOMEM;
		}
		int rc = rpc_call(p, type, req, NULL, 0, res, c->timeout_ms);
		if (rc == 0)
			return 0;
		if (rpc_peer_dead(p)) {
			char why[256];
			snprintf(why, sizeof(why), "%s", res->message[0] ? res->message : rpc_peer_error(p));
			client_mds_retire(c, p);
			if (attempt == 0) {
				rpc_result_free(res);
				memset(res, 0, sizeof(*res));
				continue;
			}
			client_set_transport_err(c->mds_host, c->mds_port, why);
			return rc;
		}
		if (res->message[0])
			client_seterr("%s", res->message);
		else
			client_seterr("%s: %s", proto_msg_name(type), strerror(-rc));
		client_err_transport = rc == -ETIMEDOUT;
		return rc;
	}
}

static int client_bad_reply(uint16_t type)
{
	client_seterr("malformed %s reply from the MDS", proto_msg_name(type));
	return -EIO;
}

/* A call whose reply is an attr_rep (out may be NULL; an empty reply is
 * accepted only when out is NULL). */
static int client_call_attr(struct vdifs_client *c, uint16_t type, const struct wbuf *req,
			    struct vdifs_attr *out)
{
	struct rpc_result res;
	struct msg_attr_rep rep;
	int rc = client_mds_call(c, type, req, &res);

	if (rc == 0 && (out || res.len > 0)) {
		if (msg_attr_rep_decode(res.payload, res.len, &rep) != 0)
			rc = client_bad_reply(type);
		else if (out)
			*out = rep.attr;
	}
	rpc_result_free(&res);
	return rc;
}

/* A call whose reply carries nothing we need. */
static int client_call_void(struct vdifs_client *c, uint16_t type, const struct wbuf *req)
{
	struct rpc_result res;
	int rc = client_mds_call(c, type, req, &res);
	rpc_result_free(&res);
	return rc;
}

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
	vdifs_layout_free(&in->layout);
	pthread_mutex_destroy(&in->lock);
	pthread_mutex_destroy(&in->alloc_lock);
	free(in);
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

/* Puts this client's dirty size, mtime and blocks of a->ino over a. */
static void client_overlay(struct vdifs_client *c, struct vdifs_attr *a)
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

/* Decodes one chunk_loc into a chunk with interned replica addresses. */
static int client_chunk_from_loc(struct vdifs_client *c, const struct msg_chunk_loc *m,
				 struct vdifs_chunk *out)
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

/* Copies into *out a chunk that may be written at index, asking the MDS for
 * one (CHUNK_ALLOC) the first time.  0 or -errno. */
static int client_writable_chunk(struct vdifs_client *c, struct inode *in, uint64_t index,
				 struct vdifs_chunk *out)
{
	struct vdifs_chunk *ch, fresh;
	int rc;

	pthread_mutex_lock(&in->lock);
	ch = vdifs_layout_get(&in->layout, index);
	if (ch && ch->writable && !(ch->flags & VDIFS_CHUNK_HOLE)) {
		*out = *ch;
		pthread_mutex_unlock(&in->lock);
		return 0;
	}
	pthread_mutex_unlock(&in->lock);

	pthread_mutex_lock(&in->alloc_lock);
	pthread_mutex_lock(&in->lock);
	ch = vdifs_layout_get(&in->layout, index);
	if (ch && ch->writable && !(ch->flags & VDIFS_CHUNK_HOLE)) {
		*out = *ch;
		pthread_mutex_unlock(&in->lock);
		pthread_mutex_unlock(&in->alloc_lock);
		return 0;
	}
	pthread_mutex_unlock(&in->lock);

	struct msg_chunk_alloc_req m = { .vol = c->vol, .ino = in->ino, .index = index };
	struct msg_chunk_loc loc;
	struct rpc_result res;
	struct wbuf b;
	wbuf_init(&b);
	msg_chunk_alloc_req_put(&b, &m);
	rc = client_mds_call(c, VDIFS_MSG_CHUNK_ALLOC, &b, &res);
	wbuf_free(&b);
	if (rc == 0 && (msg_chunk_loc_decode(res.payload, res.len, &loc) != 0 ||
			client_chunk_from_loc(c, &loc, &fresh) != 0 || fresh.nrep == 0 ||
			fresh.index != index))
		rc = client_bad_reply(VDIFS_MSG_CHUNK_ALLOC);
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
			/* A new chunk (or a delta over a parent's): the MDS counts nothing. */
			fresh.alloc_known = true;
		}
		rc = vdifs_layout_put(&in->layout, &fresh);
		*out = fresh;
		pthread_mutex_unlock(&in->lock);
	}
	pthread_mutex_unlock(&in->alloc_lock);
	return rc;
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
			      uint64_t written, bool exact)
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
	ch->alloc_dirty = true;
}

/* ---- parallel data-server I/O --------------------------------------------------- */

struct io_batch {
	pthread_mutex_t m;
	pthread_cond_t cv; /* on CLOCK_MONOTONIC */
	int pending;
};

/* A batch waiting this long probes the data servers it waits for. */
#define IO_PROBE_AFTER_MS 10000
#define IO_PROBE_TIMEOUT_MS 5000

struct io_op {
	struct io_batch *b;
	uint16_t type;
	int status;
	struct rpc_peer *peer;
	struct vdifs_chunk ch;  /* copy of the chunk the op goes to */
	struct vdifs_span sp;
	struct wbuf head;
	uint8_t *dst;           /* DS_READ: where the bytes go (sp.len of them) */
	uint64_t alloc;         /* DS_WRITE/DS_PUNCH reply */
	bool has_alloc;
	uint8_t found;          /* DS_SEEK reply */
	uint32_t seek_off;
	bool skip;              /* nothing to send (a hole) */
	bool done;              /* answered (under b->m) */
	unsigned r;             /* replica the op went to */
	char msg[128];          /* server's error message */
};

static void io_batch_init(struct io_batch *b)
{
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_mutex_init(&b->m, NULL);
	pthread_cond_init(&b->cv, &ca);
	pthread_condattr_destroy(&ca);
	b->pending = 0;
}

static void io_batch_destroy(struct io_batch *b)
{
	pthread_cond_destroy(&b->cv);
	pthread_mutex_destroy(&b->m);
}

/* Reply callback, on the loop thread: decode into the op, never block. */
static void io_reply(void *arg, int status, const uint8_t *payload, uint32_t len)
{
	struct io_op *op = arg;

	op->status = status;
	op->msg[0] = '\0';
	if (status == 0) {
		switch (op->type) {
		case VDIFS_MSG_DS_READ: {
			struct msg_ds_read_rep rep;
			if (msg_ds_read_rep_decode(payload, len, &rep) != 0 || rep.data.len > op->sp.len) {
				op->status = -EIO;
				snprintf(op->msg, sizeof(op->msg), "malformed DS_READ reply");
				break;
			}
			memcpy(op->dst, rep.data.p, rep.data.len);
			if (rep.data.len < op->sp.len)
				memset(op->dst + rep.data.len, 0, op->sp.len - rep.data.len);
			break;
		}
		case VDIFS_MSG_DS_WRITE:
		case VDIFS_MSG_DS_PUNCH: {
			struct msg_ds_io_rep rep;
			if (len > 0 && msg_ds_io_rep_decode(payload, len, &rep) == 0) {
				op->alloc = rep.alloc;
				op->has_alloc = true;
			}
			break;
		}
		case VDIFS_MSG_DS_SEEK: {
			struct msg_ds_seek_rep rep;
			if (msg_ds_seek_rep_decode(payload, len, &rep) != 0) {
				op->status = -EIO;
				snprintf(op->msg, sizeof(op->msg), "malformed DS_SEEK reply");
				break;
			}
			op->found = rep.found;
			op->seek_off = rep.offset;
			break;
		}
		default:
			break;
		}
	} else if (payload && len > 0) {
		struct msg_error_rep er;
		if (msg_error_rep_decode(payload, len, &er) == 0)
			vbytes_to_cstr(er.message.len < sizeof(op->msg) ? er.message
									: (struct vbytes){ er.message.p, sizeof(op->msg) - 1 },
				       op->msg, sizeof(op->msg));
	}
	pthread_mutex_lock(&op->b->m);
	op->done = true;
	if (--op->b->pending == 0)
		pthread_cond_signal(&op->b->cv);
	pthread_mutex_unlock(&op->b->m);
}

/* Sends op (its head already encoded) to replica r of its chunk.  data is
 * sent by reference.  Failures to send complete the op at once. */
static void io_issue(struct vdifs_client *c, struct io_batch *b, struct io_op *op, unsigned r,
		     const void *data, size_t dlen)
{
	op->b = b;
	op->r = r;
	op->status = 0;
	op->has_alloc = false;
	op->done = true; /* until it is in flight */
	op->peer = client_ds_peer(c, op->ch.rep[r]);
	if (!op->peer || op->head.err) {
		op->status = -ENOMEM;
		return;
	}
	op->done = false;
	pthread_mutex_lock(&b->m);
	b->pending++;
	pthread_mutex_unlock(&b->m);
	int rc = rpc_call_async(op->peer, op->type, &op->head, data, dlen, io_reply, op);
	if (rc < 0) {
		pthread_mutex_lock(&b->m);
		b->pending--;
		op->done = true;
		pthread_mutex_unlock(&b->m);
		op->status = rc;
	}
}

/* Liveness probe of a connection that has kept a request unanswered: a
 * DS_STAT with a timeout.  An rpc_call that times out drops its connection,
 * which completes every request pending on it (ours included) with an
 * error, so a hung data server costs a retry, not a hung FUSE thread. */
static void io_probe(struct rpc_peer *p, struct vdifs_ds *d, uint64_t chunk_id)
{
	struct msg_ds_chunk_req m = { .chunk_id = chunk_id };
	struct rpc_result res;
	struct wbuf b;
	wbuf_init(&b);
	msg_ds_chunk_req_put(&b, &m);
	rpc_call(p, VDIFS_MSG_DS_STAT, &b, NULL, 0, &res, IO_PROBE_TIMEOUT_MS);
	if (rpc_peer_dead(p)) {
		log_warn("%s:%u: %s", d->host, d->port, rpc_peer_error(p));
		client_ds_mark_suspect(d);
	}
	rpc_result_free(&res);
	wbuf_free(&b);
}

/* Waits until every op of the batch (ops[0..n)) is answered. */
static void io_wait(struct vdifs_client *c, struct io_batch *b, struct io_op *ops, size_t n)
{
	(void)c;
	pthread_mutex_lock(&b->m);
	while (b->pending > 0) {
		struct timespec dl;
		clock_gettime(CLOCK_MONOTONIC, &dl);
		dl.tv_sec += IO_PROBE_AFTER_MS / 1000;
		if (pthread_cond_timedwait(&b->cv, &b->m, &dl) != ETIMEDOUT || b->pending == 0)
			continue;
		/* Probe each connection still owing a reply (once per round). */
		struct rpc_peer *probed[8];
		size_t np = 0;
		for (size_t i = 0; i < n; i++) {
			if (ops[i].done || !ops[i].peer)
				continue;
			bool seen = false;
			for (size_t k = 0; k < np; k++)
				seen |= probed[k] == ops[i].peer;
			if (seen || np == sizeof(probed) / sizeof(probed[0]))
				continue;
			probed[np++] = ops[i].peer;
			uint64_t id = ops[i].ch.chunk_id;
			struct vdifs_ds *d = ops[i].ch.rep[ops[i].r];
			pthread_mutex_unlock(&b->m);
			log_warn("%s:%u: no reply for %d s: probing it", d->host, d->port, IO_PROBE_AFTER_MS / 1000);
			io_probe(probed[np - 1], d, id);
			pthread_mutex_lock(&b->m);
		}
	}
	pthread_mutex_unlock(&b->m);
}

/* Sends one op and waits for it. */
static int io_run1(struct vdifs_client *c, struct io_op *op, unsigned r, const void *data, size_t dlen)
{
	struct io_batch b;
	io_batch_init(&b);
	io_issue(c, &b, op, r, data, dlen);
	io_wait(c, &b, op, 1);
	io_batch_destroy(&b);
	return op->status;
}

/* True when the op failed because its connection broke (worth a retry);
 * the data server is then read from last for a while. */
static bool io_transport_failed(const struct io_op *op)
{
	bool dead = op->status < 0 && op->peer && rpc_peer_dead(op->peer);
	if (dead && op->r < op->ch.nrep)
		client_ds_mark_suspect(op->ch.rep[op->r]);
	return dead;
}

static void io_seterr(const struct io_op *op)
{
	const struct vdifs_ds *d = op->r < op->ch.nrep ? op->ch.rep[op->r] : NULL;
	const char *why = op->msg[0]		       ? op->msg
			  : io_transport_failed(op) ? rpc_peer_error(op->peer)
						    : strerror(-op->status);
	char prefix[300];
	snprintf(prefix, sizeof(prefix), "%s:%u: ", d ? d->host : "?", d ? d->port : 0);
	if (strncmp(why, prefix, strlen(prefix)) == 0)
		why += strlen(prefix);
	client_seterr("%s%s of chunk %016llx: %s", prefix, proto_msg_name(op->type),
		      (unsigned long long)op->ch.chunk_id, why);
}

/* Encodes the replicas after the primary as fwd records. */
static void io_put_fwd(struct wbuf *fwd, const struct vdifs_chunk *ch)
{
	for (uint32_t i = 1; i < ch->nrep; i++) {
		struct msg_replica rep = { .ds_id = ch->rep[i]->ds_id, .host = client_vb(ch->rep[i]->host),
					   .port = ch->rep[i]->port };
		msg_replica_put(fwd, &rep);
	}
}

static void io_encode_write(struct io_op *op, uint64_t chunk_size)
{
	struct wbuf fwd;
	wbuf_init(&fwd);
	io_put_fwd(&fwd, &op->ch);
	struct msg_ds_write_req m = {
		.chunk_id = op->ch.chunk_id, .version = op->ch.version, .flags = 0,
		.chunk_size = chunk_size, .offset = op->sp.off, .nfwd = op->ch.nrep - 1,
		.fwd = { fwd.data, (uint32_t)fwd.len }, .data = { NULL, op->sp.len },
	};
	op->type = VDIFS_MSG_DS_WRITE;
	wbuf_reset(&op->head);
	msg_ds_write_req_put_head(&op->head, &m);
	if (fwd.err)
		op->head.err = true;
	wbuf_free(&fwd);
}

static void io_encode_read(struct io_op *op)
{
	struct msg_ds_read_req m = { .chunk_id = op->ch.chunk_id, .version = op->ch.version,
				     .offset = op->sp.off, .length = op->sp.len };
	op->type = VDIFS_MSG_DS_READ;
	wbuf_reset(&op->head);
	msg_ds_read_req_put(&op->head, &m);
}

static void io_encode_punch(struct io_op *op, uint64_t chunk_size)
{
	struct wbuf fwd;
	wbuf_init(&fwd);
	io_put_fwd(&fwd, &op->ch);
	struct msg_ds_punch_req m = {
		.chunk_id = op->ch.chunk_id, .version = op->ch.version, .flags = 0,
		.chunk_size = chunk_size, .offset = op->sp.off, .length = op->sp.len,
		.nfwd = op->ch.nrep - 1, .fwd = { fwd.data, (uint32_t)fwd.len },
	};
	op->type = VDIFS_MSG_DS_PUNCH;
	wbuf_reset(&op->head);
	msg_ds_punch_req_put(&op->head, &m);
	if (fwd.err)
		op->head.err = true;
	wbuf_free(&fwd);
}

static void io_encode_sync(struct io_op *op)
{
	struct wbuf fwd;
	wbuf_init(&fwd);
	io_put_fwd(&fwd, &op->ch);
	struct msg_ds_sync_req m = { .chunk_id = op->ch.chunk_id, .version = op->ch.version,
				     .nfwd = op->ch.nrep - 1, .fwd = { fwd.data, (uint32_t)fwd.len } };
	op->type = VDIFS_MSG_DS_SYNC;
	wbuf_reset(&op->head);
	msg_ds_sync_req_put(&op->head, &m);
	if (fwd.err)
		op->head.err = true;
	wbuf_free(&fwd);
}

static struct io_op *io_ops_new(size_t n)
{
	struct io_op *ops = calloc(n ? n : 1, sizeof(*ops));
	if (ops)
		for (size_t i = 0; i < n; i++)
			wbuf_init(&ops[i].head);
	return ops;
}

static void io_ops_free(struct io_op *ops, size_t n)
{
	if (!ops)
		return;
	for (size_t i = 0; i < n; i++)
		wbuf_free(&ops[i].head);
	free(ops);
}

/* Splits a range into spans (malloc'ed, *n of them); NULL on ENOMEM. */
static struct vdifs_span *client_split(uint64_t off, uint64_t len, uint64_t cs, uint32_t unit, size_t *n)
{
	*n = vdifs_span_split(off, len, cs, unit, NULL, 0);
	struct vdifs_span *sp = malloc((*n ? *n : 1) * sizeof(*sp));
	if (sp)
		vdifs_span_split(off, len, cs, unit, sp, *n);
	return sp;
}

/* ---- files ----------------------------------------------------------------------- */

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
		struct msg_alloc a = { .index = ch->index, .chunk_id = ch->chunk_id, .bytes = ch->alloc };
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
	struct io_batch b;
	struct io_op *ops = NULL;
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
	ops = io_ops_new(n);
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
	io_batch_init(&b);
	for (size_t i = 0; i < n; i++) {
		io_encode_write(&ops[i], c->chunk_size);
		io_issue(c, &b, &ops[i], 0, (const uint8_t *)buf + ops[i].sp.pos, ops[i].sp.len);
	}
	io_wait(c, &b, ops, n);
	io_batch_destroy(&b);

	/* Retry a failure: first on a fresh connection (the old one broke), then
	 * with the chunk as the MDS sees it now (new version or replica set). */
	for (size_t i = 0; i < n && rc == 0; i++) {
		struct io_op *op = &ops[i];
		for (int attempt = 0; attempt < 3 && op->status != 0; attempt++) {
			bool transport = io_transport_failed(op);
			if (!transport && op->status != -ESTALE)
				break;
			if (!transport || attempt > 0) {
				client_chunk_invalidate(in, op->sp.index, op->ch.chunk_id);
				rc = client_writable_chunk(c, in, op->sp.index, &op->ch);
				if (rc != 0)
					break;
				io_encode_write(op, c->chunk_size);
			}
			io_run1(c, op, 0, (const uint8_t *)buf + op->sp.pos, op->sp.len);
		}
		if (rc == 0 && op->status != 0) {
			io_seterr(op);
			rc = op->status;
		}
	}
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
			client_note_alloc(in, ops[i].sp.index, ops[i].ch.chunk_id, ops[i].alloc,
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
	io_ops_free(ops, n);
	free(sp);
	return rc != 0 ? rc : (ssize_t)len;
}

/* Reads one span from the other replicas of its chunk after the parallel
 * attempt on the primary failed, then once more from every replica if a
 * fresh layout shows the chunk moved (or a replica said ESTALE).  Chunks
 * that no replica holds (allocated, never written) read as zeros. */
static int client_read_retry(struct vdifs_client *c, struct inode *in, struct io_op *op)
{
	unsigned enoent = op->status == -ENOENT;
	bool stale = op->status == -ESTALE;
	unsigned tried = op->r; /* just failed: last resort (fresh connection) */
	io_transport_failed(op);

	for (int round = 0; round < 2; round++) {
		unsigned order[VDIFS_MAX_REPLICAS], n = client_read_order(&op->ch, order);
		for (unsigned k = 0; k <= n; k++) {
			/* One pass over the others, then the failed one if it is alone. */
			unsigned r = k < n ? order[k] : tried;
			if ((k < n && r == tried && round == 0) || (k == n && (round == 1 || n > 1)))
				continue;
			io_encode_read(op);
			if (io_run1(c, op, r, NULL, 0) == 0)
				return 0;
			enoent += op->status == -ENOENT;
			stale |= op->status == -ESTALE;
			io_transport_failed(op);
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
	io_seterr(op);
	return op->status ? op->status : -EIO;
}

ssize_t vdifs_file_pread(struct vdifs_file *f, void *buf, size_t len, uint64_t off)
{
	struct vdifs_client *c = f->c;
	struct inode *in = f->in;
	struct io_batch b;
	struct io_op *ops = NULL;
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
	ops = io_ops_new(n);
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
	io_batch_init(&b);
	for (size_t i = 0; i < n; i++) {
		if (ops[i].skip) {
			memset(ops[i].dst, 0, ops[i].sp.len);
			continue;
		}
		unsigned order[VDIFS_MAX_REPLICAS];
		client_read_order(&ops[i].ch, order);
		io_encode_read(&ops[i]);
		io_issue(c, &b, &ops[i], order[0], NULL, 0);
	}
	io_wait(c, &b, ops, n);
	io_batch_destroy(&b);
	for (size_t i = 0; i < n && rc == 0; i++)
		if (!ops[i].skip && ops[i].status != 0)
			rc = client_read_retry(c, in, &ops[i]);
out:
	io_ops_free(ops, n);
	free(sp);
	return rc != 0 ? rc : (ssize_t)len;
}

int vdifs_file_fsync(struct vdifs_file *f)
{
	struct vdifs_client *c = f->c;
	struct inode *in = f->in;
	struct io_op *ops = NULL;
	size_t n = 0;
	int rc = 0;

	pthread_mutex_lock(&in->lock);
	for (size_t i = 0; i < in->layout.n; i++)
		n += in->layout.v[i].unsynced;
	ops = io_ops_new(n);
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
		struct io_batch b;
		io_batch_init(&b);
		for (size_t i = 0; i < n; i++) {
			io_encode_sync(&ops[i]);
			io_issue(c, &b, &ops[i], 0, NULL, 0);
		}
		io_wait(c, &b, ops, n);
		io_batch_destroy(&b);
	}
	for (size_t i = 0; i < n; i++) {
		struct io_op *op = &ops[i];
		if (op->status != 0 && io_transport_failed(op))
			io_run1(c, op, 0, NULL, 0);
		/* ENOENT: no write ever created the chunk, nothing to make durable. */
		if (op->status == 0 || op->status == -ENOENT)
			continue;
		if (rc == 0) {
			io_seterr(op);
			rc = op->status;
		}
		pthread_mutex_lock(&in->lock);
		struct vdifs_chunk *ch = vdifs_layout_get(&in->layout, op->ch.index);
		if (ch && ch->chunk_id == op->ch.chunk_id)
			ch->unsynced = true;
		pthread_mutex_unlock(&in->lock);
	}
	io_ops_free(ops, n);
	if (rc != 0)
		return rc;
	return client_inode_commit(c, in);
}

/* DS_PUNCH of [sp.off, sp.off+sp.len) inside one chunk, if the chunk exists. */
static int client_punch_partial(struct vdifs_client *c, struct inode *in, const struct vdifs_span *sp)
{
	struct io_op *op = io_ops_new(1);
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
	for (int attempt = 0; attempt < 2; attempt++) {
		io_encode_punch(op, c->chunk_size);
		rc = io_run1(c, op, 0, NULL, 0);
		if (rc == 0 || attempt == 1)
			break;
		if (rc == -ESTALE) {
			client_chunk_invalidate(in, sp->index, op->ch.chunk_id);
			if (client_writable_chunk(c, in, sp->index, &op->ch) != 0)
				break;
		} else if (!io_transport_failed(op)) {
			break;
		}
	}
	if (rc != 0) {
		io_seterr(op);
		goto out;
	}
	pthread_mutex_lock(&in->lock);
	ch = vdifs_layout_get(&in->layout, sp->index);
	if (ch && ch->chunk_id == op->ch.chunk_id)
		ch->unsynced = true;
	if (op->has_alloc)
		client_note_alloc(in, sp->index, op->ch.chunk_id, op->alloc, 0, true);
	pthread_mutex_unlock(&in->lock);
out:
	io_ops_free(op, 1);
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
	struct io_op *op = io_ops_new(1);
	unsigned enoent = 0;
	int rc = -EIO;

	if (!op) {
		client_seterr("out of memory");
		return -ENOMEM;
	}
	op->ch = *ch;
	for (unsigned r = 0; r < ch->nrep; r++) {
		struct msg_ds_seek_req m = { .chunk_id = ch->chunk_id, .version = ch->version,
					     .offset = off, .whence = (uint8_t)whence };
		op->type = VDIFS_MSG_DS_SEEK;
		wbuf_reset(&op->head);
		msg_ds_seek_req_put(&op->head, &m);
		rc = io_run1(ctx->c, op, r, NULL, 0);
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
	io_seterr(op);
out:
	io_ops_free(op, 1);
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

/* ---- namespace -------------------------------------------------------------------- */

int vdifs_mount(struct vdifs_client *c, const char *volume, uint32_t flags, struct vdifs_mount_info *out)
{
	struct msg_mount_req m = { .volume = client_vb(volume), .flags = flags };
	struct msg_mount_rep rep;
	struct rpc_result res;
	struct wbuf b;
	int rc = client_check_name(volume);

	if (rc != 0)
		return rc;
	wbuf_init(&b);
	msg_mount_req_put(&b, &m);
	rc = client_mds_call(c, VDIFS_MSG_MOUNT, &b, &res);
	wbuf_free(&b);
	if (rc == 0 && msg_mount_rep_decode(res.payload, res.len, &rep) != 0)
		rc = client_bad_reply(VDIFS_MSG_MOUNT);
	if (rc == 0 && (rep.chunk_size == 0 || (rep.chunk_size & (rep.chunk_size - 1)) != 0 ||
			rep.chunk_size > (1ull << 32))) {
		client_seterr("volume '%s': unusable chunk size %llu", volume,
			      (unsigned long long)rep.chunk_size);
		rc = -EIO;
	}
	if (rc == 0) {
		c->vol = rep.vol;
		c->chunk_size = rep.chunk_size;
		if (out) {
			out->vol = rep.vol;
			out->root_ino = rep.root_ino;
			out->chunk_size = rep.chunk_size;
			out->replicas = rep.replicas;
			out->session = rep.session;
		}
	} else if (!client_err_transport) {
		char why[sizeof(client_errbuf)];
		snprintf(why, sizeof(why), "%s", rc == -ENOENT ? "no such volume" : client_errbuf);
		client_seterr("volume '%s': %s", volume, why);
	}
	rpc_result_free(&res);
	return rc;
}

static void client_copy_name(char *dst, struct vbytes v)
{
	size_t n = v.len > VDIFS_NAME_MAX ? VDIFS_NAME_MAX : v.len;
	memcpy(dst, v.p, n);
	dst[n] = '\0';
}

static void client_vol_info(const struct msg_vol_info *m, struct vdifs_vol_info *out)
{
	out->vol = m->vol;
	client_copy_name(out->name, m->name);
	out->chunk_size = m->chunk_size;
	out->replicas = m->replicas;
	out->root_ino = m->root_ino;
	out->inodes = m->inodes;
	out->created_s = m->created_s;
}

int vdifs_vol_create(struct vdifs_client *c, const char *name, uint64_t chunk_size, uint32_t replicas,
		     struct vdifs_vol_info *info)
{
	struct msg_vol_create_req m = { .name = client_vb(name), .chunk_size = chunk_size,
					.replicas = replicas };
	struct rpc_result res;
	struct wbuf b;
	int rc = client_check_name(name);

	if (rc != 0)
		return rc;
	wbuf_init(&b);
	msg_vol_create_req_put(&b, &m);
	rc = client_mds_call(c, VDIFS_MSG_VOL_CREATE, &b, &res);
	wbuf_free(&b);
	if (rc == 0 && info) {
		struct msg_vol_info vi;
		if (msg_vol_info_decode(res.payload, res.len, &vi) != 0)
			rc = client_bad_reply(VDIFS_MSG_VOL_CREATE);
		else
			client_vol_info(&vi, info);
	}
	rpc_result_free(&res);
	return rc;
}

int vdifs_vol_remove(struct vdifs_client *c, const char *name, uint32_t flags)
{
	struct msg_vol_remove_req m = { .name = client_vb(name), .flags = flags };
	struct wbuf b;
	int rc = client_check_name(name);
	if (rc != 0)
		return rc;
	wbuf_init(&b);
	msg_vol_remove_req_put(&b, &m);
	rc = client_call_void(c, VDIFS_MSG_VOL_REMOVE, &b);
	wbuf_free(&b);
	return rc;
}

int vdifs_vol_set(struct vdifs_client *c, const char *name, const char *key, const char *value)
{
	struct msg_vol_set_req m = { .name = client_vb(name), .key = client_vb(key),
				     .value = client_vb(value) };
	struct wbuf b;
	int rc = client_check_name(name);
	if (rc == 0)
		rc = client_check_name(key);
	if (rc == 0)
		rc = client_check_name(value);
	if (rc != 0)
		return rc;
	wbuf_init(&b);
	msg_vol_set_req_put(&b, &m);
	rc = client_call_void(c, VDIFS_MSG_VOL_SET, &b);
	wbuf_free(&b);
	return rc;
}

/* A request with an empty payload whose reply is a list_rep. */
static int client_list(struct vdifs_client *c, uint16_t type, struct rpc_result *res,
		       struct msg_list_rep *rep)
{
	struct wbuf b;
	wbuf_init(&b);
	int rc = client_mds_call(c, type, &b, res);
	wbuf_free(&b);
	if (rc == 0 && msg_list_rep_decode(res->payload, res->len, rep) != 0)
		rc = client_bad_reply(type);
	return rc;
}

int vdifs_vol_list(struct vdifs_client *c, int (*fn)(void *arg, const struct vdifs_vol_info *v), void *arg)
{
	struct rpc_result res;
	struct msg_list_rep rep;
	int rc = client_list(c, VDIFS_MSG_VOL_LIST, &res, &rep);
	if (rc == 0) {
		struct wreader r;
		wreader_init(&r, rep.items.p, rep.items.len);
		for (uint32_t i = 0; i < rep.count && rc == 0; i++) {
			struct msg_vol_info m;
			struct vdifs_vol_info v;
			msg_vol_info_get(&r, &m);
			if (r.err) {
				rc = client_bad_reply(VDIFS_MSG_VOL_LIST);
				break;
			}
			client_vol_info(&m, &v);
			rc = fn(arg, &v);
		}
	}
	rpc_result_free(&res);
	return rc;
}

int vdifs_ds_list(struct vdifs_client *c, int (*fn)(void *arg, const struct vdifs_ds_info *d), void *arg)
{
	struct rpc_result res;
	struct msg_list_rep rep;
	int rc = client_list(c, VDIFS_MSG_DS_LIST, &res, &rep);
	if (rc == 0) {
		struct wreader r;
		wreader_init(&r, rep.items.p, rep.items.len);
		for (uint32_t i = 0; i < rep.count && rc == 0; i++) {
			struct msg_ds_info m;
			struct vdifs_ds_info d;
			msg_ds_info_get(&r, &m);
			if (r.err) {
				rc = client_bad_reply(VDIFS_MSG_DS_LIST);
				break;
			}
			d.ds_id = m.ds_id;
			client_copy_name(d.uuid, m.uuid);
			client_copy_name(d.host, m.host);
			d.port = m.port;
			d.up = m.up != 0;
			d.total = m.total;
			d.avail = m.avail;
			d.used = m.used;
			d.nchunks = m.nchunks;
			d.idle_ms = m.idle_ms;
			rc = fn(arg, &d);
		}
	}
	rpc_result_free(&res);
	return rc;
}

int vdifs_cluster_status(struct vdifs_client *c, struct msg_cluster_status_rep *out)
{
	struct rpc_result res;
	struct wbuf b;
	wbuf_init(&b);
	int rc = client_mds_call(c, VDIFS_MSG_CLUSTER_STATUS, &b, &res);
	wbuf_free(&b);
	if (rc == 0 && msg_cluster_status_rep_decode(res.payload, res.len, out) != 0)
		rc = client_bad_reply(VDIFS_MSG_CLUSTER_STATUS);
	rpc_result_free(&res);
	return rc;
}

int vdifs_statfs(struct vdifs_client *c, struct msg_statfs_rep *out)
{
	struct msg_vol_req m = { .vol = c->vol };
	struct rpc_result res;
	struct wbuf b;
	wbuf_init(&b);
	msg_vol_req_put(&b, &m);
	int rc = client_mds_call(c, VDIFS_MSG_STATFS, &b, &res);
	wbuf_free(&b);
	if (rc == 0 && msg_statfs_rep_decode(res.payload, res.len, out) != 0)
		rc = client_bad_reply(VDIFS_MSG_STATFS);
	rpc_result_free(&res);
	return rc;
}

int vdifs_lookup(struct vdifs_client *c, uint64_t parent, const char *name, struct vdifs_attr *out)
{
	struct msg_lookup_req m = { .vol = c->vol, .parent = parent, .name = client_vb(name) };
	struct wbuf b;
	int rc = client_check_name(name);
	if (rc != 0)
		return rc;
	wbuf_init(&b);
	msg_lookup_req_put(&b, &m);
	rc = client_call_attr(c, VDIFS_MSG_LOOKUP, &b, out);
	wbuf_free(&b);
	if (rc == 0)
		client_overlay(c, out);
	return rc;
}

int vdifs_getattr(struct vdifs_client *c, uint64_t ino, struct vdifs_attr *out)
{
	struct msg_ino_req m = { .vol = c->vol, .ino = ino };
	struct wbuf b;
	wbuf_init(&b);
	msg_ino_req_put(&b, &m);
	int rc = client_call_attr(c, VDIFS_MSG_GETATTR, &b, out);
	wbuf_free(&b);
	if (rc == 0)
		client_overlay(c, out);
	return rc;
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

int vdifs_mknod(struct vdifs_client *c, uint64_t parent, const char *name, uint32_t mode, uint32_t rdev,
		uint32_t uid, uint32_t gid, struct vdifs_attr *out)
{
	struct msg_mknod_req m = { .vol = c->vol, .parent = parent, .name = client_vb(name), .mode = mode,
				   .rdev = rdev, .uid = uid, .gid = gid };
	struct wbuf b;
	int rc = client_check_name(name);
	if (rc != 0)
		return rc;
	wbuf_init(&b);
	msg_mknod_req_put(&b, &m);
	rc = client_call_attr(c, VDIFS_MSG_MKNOD, &b, out);
	wbuf_free(&b);
	return rc;
}

int vdifs_symlink(struct vdifs_client *c, uint64_t parent, const char *name, const char *target,
		  uint32_t uid, uint32_t gid, struct vdifs_attr *out)
{
	struct msg_symlink_req m = { .vol = c->vol, .parent = parent, .name = client_vb(name),
				     .target = client_vb(target), .uid = uid, .gid = gid };
	struct wbuf b;
	int rc = client_check_name(name);
	if (rc != 0)
		return rc;
	if (strlen(target) > VDIFS_PATH_MAX) {
		client_seterr("symlink target too long");
		return -ENAMETOOLONG;
	}
	wbuf_init(&b);
	msg_symlink_req_put(&b, &m);
	rc = client_call_attr(c, VDIFS_MSG_SYMLINK, &b, out);
	wbuf_free(&b);
	return rc;
}

int vdifs_link(struct vdifs_client *c, uint64_t ino, uint64_t newparent, const char *newname,
	       struct vdifs_attr *out)
{
	struct msg_link_req m = { .vol = c->vol, .ino = ino, .newparent = newparent,
				  .newname = client_vb(newname) };
	struct wbuf b;
	int rc = client_check_name(newname);
	if (rc != 0)
		return rc;
	wbuf_init(&b);
	msg_link_req_put(&b, &m);
	rc = client_call_attr(c, VDIFS_MSG_LINK, &b, out);
	wbuf_free(&b);
	if (rc == 0 && out)
		client_overlay(c, out);
	return rc;
}

static int client_name_op(struct vdifs_client *c, uint16_t type, uint64_t parent, const char *name)
{
	struct msg_lookup_req m = { .vol = c->vol, .parent = parent, .name = client_vb(name) };
	struct wbuf b;
	int rc = client_check_name(name);
	if (rc != 0)
		return rc;
	wbuf_init(&b);
	msg_lookup_req_put(&b, &m);
	rc = client_call_void(c, type, &b);
	wbuf_free(&b);
	return rc;
}

int vdifs_unlink(struct vdifs_client *c, uint64_t parent, const char *name)
{
	return client_name_op(c, VDIFS_MSG_UNLINK, parent, name);
}

int vdifs_rmdir(struct vdifs_client *c, uint64_t parent, const char *name)
{
	return client_name_op(c, VDIFS_MSG_RMDIR, parent, name);
}

int vdifs_rename(struct vdifs_client *c, uint64_t parent, const char *name, uint64_t newparent,
		 const char *newname, uint32_t flags)
{
	struct msg_rename_req m = { .vol = c->vol, .parent = parent, .name = client_vb(name),
				    .newparent = newparent, .newname = client_vb(newname), .flags = flags };
	struct wbuf b;
	int rc = client_check_name(name);
	if (rc == 0)
		rc = client_check_name(newname);
	if (rc != 0)
		return rc;
	wbuf_init(&b);
	msg_rename_req_put(&b, &m);
	rc = client_call_void(c, VDIFS_MSG_RENAME, &b);
	wbuf_free(&b);
	return rc;
}

ssize_t vdifs_readlink(struct vdifs_client *c, uint64_t ino, char *buf, size_t cap)
{
	struct msg_ino_req m = { .vol = c->vol, .ino = ino };
	struct msg_readlink_rep rep;
	struct rpc_result res;
	struct wbuf b;
	wbuf_init(&b);
	msg_ino_req_put(&b, &m);
	ssize_t rc = client_mds_call(c, VDIFS_MSG_READLINK, &b, &res);
	wbuf_free(&b);
	if (rc == 0 && msg_readlink_rep_decode(res.payload, res.len, &rep) != 0)
		rc = client_bad_reply(VDIFS_MSG_READLINK);
	if (rc == 0) {
		rc = vbytes_to_cstr(rep.target, buf, cap);
		if (rc == 0)
			rc = rep.target.len;
		else
			client_seterr("symlink target longer than the buffer");
	}
	rpc_result_free(&res);
	return rc;
}

int vdifs_readdir(struct vdifs_client *c, uint64_t ino, vdifs_dirent_fn fn, void *arg)
{
	char after[VDIFS_NAME_MAX + 1] = "";
	int rc;

	for (;;) {
		struct msg_readdir_req m = { .vol = c->vol, .ino = ino, .after = client_vb(after),
					     .max = VDIFS_READDIR_PAGE };
		struct msg_readdir_rep rep;
		struct rpc_result res;
		struct wbuf b;
		struct wreader r;
		bool eof = true;

		wbuf_init(&b);
		msg_readdir_req_put(&b, &m);
		rc = client_mds_call(c, VDIFS_MSG_READDIR, &b, &res);
		wbuf_free(&b);
		if (rc == 0 && msg_readdir_rep_decode(res.payload, res.len, &rep) != 0)
			rc = client_bad_reply(VDIFS_MSG_READDIR);
		if (rc == 0) {
			eof = rep.eof != 0 || rep.count == 0;
			wreader_init(&r, rep.items.p, rep.items.len);
			for (uint32_t i = 0; i < rep.count && rc == 0; i++) {
				struct msg_dirent d;
				char name[VDIFS_NAME_MAX + 1];
				msg_dirent_get(&r, &d);
				if (r.err || d.name.len == 0 || vbytes_to_cstr(d.name, name, sizeof(name)) != 0) {
					rc = client_bad_reply(VDIFS_MSG_READDIR);
					break;
				}
				client_overlay(c, &d.attr);
				rc = fn(arg, name, &d.attr);
				memcpy(after, name, strlen(name) + 1);
			}
		}
		rpc_result_free(&res);
		if (rc != 0 || eof)
			return rc;
	}
}

int vdifs_setxattr(struct vdifs_client *c, uint64_t ino, const char *name, const void *value, size_t size,
		   uint32_t flags)
{
	struct msg_setxattr_req m = { .vol = c->vol, .ino = ino, .name = client_vb(name),
				      .value = { value, (uint32_t)size }, .flags = flags };
	struct wbuf b;
	int rc = client_check_name(name);
	if (rc != 0)
		return rc;
	if (size > VDIFS_XATTR_MAX) {
		client_seterr("xattr value too large");
		return -E2BIG;
	}
	wbuf_init(&b);
	msg_setxattr_req_put(&b, &m);
	rc = client_call_void(c, VDIFS_MSG_SETXATTR, &b);
	wbuf_free(&b);
	return rc;
}

/* Copies a value reply into buf by the getxattr(2) size rules. */
static ssize_t client_xattr_value(struct vdifs_client *c, uint16_t type, const struct wbuf *req,
				  void *buf, size_t cap)
{
	struct msg_xattr_rep rep;
	struct rpc_result res;
	ssize_t rc = client_mds_call(c, type, req, &res);
	if (rc == 0 && msg_xattr_rep_decode(res.payload, res.len, &rep) != 0)
		rc = client_bad_reply(type);
	if (rc == 0) {
		rc = rep.value.len;
		if (cap > 0 && rep.value.len > cap) {
			client_seterr("value larger than the buffer");
			rc = -ERANGE;
		} else if (cap > 0) {
			memcpy(buf, rep.value.p, rep.value.len);
		}
	}
	rpc_result_free(&res);
	return rc;
}

ssize_t vdifs_getxattr(struct vdifs_client *c, uint64_t ino, const char *name, void *buf, size_t cap)
{
	struct msg_xattr_req m = { .vol = c->vol, .ino = ino, .name = client_vb(name) };
	struct wbuf b;
	ssize_t rc = client_check_name(name);
	if (rc != 0)
		return rc;
	wbuf_init(&b);
	msg_xattr_req_put(&b, &m);
	rc = client_xattr_value(c, VDIFS_MSG_GETXATTR, &b, buf, cap);
	wbuf_free(&b);
	return rc;
}

ssize_t vdifs_listxattr(struct vdifs_client *c, uint64_t ino, void *buf, size_t cap)
{
	struct msg_ino_req m = { .vol = c->vol, .ino = ino };
	struct wbuf b;
	wbuf_init(&b);
	msg_ino_req_put(&b, &m);
	ssize_t rc = client_xattr_value(c, VDIFS_MSG_LISTXATTR, &b, buf, cap);
	wbuf_free(&b);
	return rc;
}

int vdifs_removexattr(struct vdifs_client *c, uint64_t ino, const char *name)
{
	struct msg_xattr_req m = { .vol = c->vol, .ino = ino, .name = client_vb(name) };
	struct wbuf b;
	int rc = client_check_name(name);
	if (rc != 0)
		return rc;
	wbuf_init(&b);
	msg_xattr_req_put(&b, &m);
	rc = client_call_void(c, VDIFS_MSG_REMOVEXATTR, &b);
	wbuf_free(&b);
	return rc;
}

/* ---- building blocks ---------------------------------------------------------------- */

size_t vdifs_span_split(uint64_t off, uint64_t len, uint64_t chunk_size, uint32_t unit,
			struct vdifs_span *out, size_t cap)
{
	size_t n = 0;
	uint64_t pos = 0;

	while (pos < len) {
		uint64_t at = off + pos;
		uint64_t coff = at & (chunk_size - 1);
		uint64_t piece = chunk_size - coff;
		if (piece > len - pos)
			piece = len - pos;
		if (unit && piece > unit)
			piece = unit;
		if (n < cap) {
			out[n].index = at / chunk_size;
			out[n].off = (uint32_t)coff;
			out[n].len = (uint32_t)piece;
			out[n].pos = pos;
		}
		n++;
		pos += piece;
	}
	return n;
}

void vdifs_layout_init(struct vdifs_layout *l)
{
	l->v = NULL;
	l->n = 0;
	l->cap = 0;
}

void vdifs_layout_free(struct vdifs_layout *l)
{
	free(l->v);
	vdifs_layout_init(l);
}

/* Position of the first entry with index >= index. */
static size_t layout_lower_bound(const struct vdifs_layout *l, uint64_t index)
{
	size_t lo = 0, hi = l->n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (l->v[mid].index < index)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

struct vdifs_chunk *vdifs_layout_get(struct vdifs_layout *l, uint64_t index)
{
	size_t i = layout_lower_bound(l, index);
	return i < l->n && l->v[i].index == index ? &l->v[i] : NULL;
}

struct vdifs_chunk *vdifs_layout_next(struct vdifs_layout *l, uint64_t from)
{
	for (size_t i = layout_lower_bound(l, from); i < l->n; i++)
		if (!(l->v[i].flags & VDIFS_CHUNK_HOLE))
			return &l->v[i];
	return NULL;
}

int vdifs_layout_put(struct vdifs_layout *l, const struct vdifs_chunk *ch)
{
	size_t i = layout_lower_bound(l, ch->index);
	if (i < l->n && l->v[i].index == ch->index) {
		l->v[i] = *ch;
		return 0;
	}
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 16;
		struct vdifs_chunk *v = realloc(l->v, cap * sizeof(*v));
		if (!v)
			return -ENOMEM;
		l->v = v;
		l->cap = cap;
	}
	memmove(&l->v[i + 1], &l->v[i], (l->n - i) * sizeof(*l->v));
	l->v[i] = *ch;
	l->n++;
	return 0;
}

void vdifs_layout_remove(struct vdifs_layout *l, uint64_t first, uint64_t count)
{
	size_t a = layout_lower_bound(l, first);
	size_t b = first + count < first ? l->n : layout_lower_bound(l, first + count);
	if (b <= a)
		return;
	memmove(&l->v[a], &l->v[b], (l->n - b) * sizeof(*l->v));
	l->n -= b - a;
}

void vdifs_layout_replace(struct vdifs_layout *l, struct vdifs_layout *fresh)
{
	/* Both sorted: merge the client state in one pass. */
	size_t j = 0;
	for (size_t i = 0; i < fresh->n; i++) {
		struct vdifs_chunk *nc = &fresh->v[i];
		while (j < l->n && l->v[j].index < nc->index)
			j++;
		if (j < l->n && l->v[j].index == nc->index && l->v[j].chunk_id == nc->chunk_id &&
		    l->v[j].version == nc->version) {
			const struct vdifs_chunk *oc = &l->v[j];
			nc->writable = oc->writable;
			nc->unsynced = oc->unsynced;
			nc->alloc_dirty = oc->alloc_dirty;
			nc->alloc_known = oc->alloc_known;
			nc->alloc = oc->alloc;
			nc->alloc_base = oc->alloc_base;
		}
	}
	free(l->v);
	*l = *fresh;
	vdifs_layout_init(fresh);
}

int64_t vdifs_seek_layout(struct vdifs_layout *l, pthread_mutex_t *lock, uint64_t chunk_size,
			  uint64_t size, uint64_t off, int whence, vdifs_chunk_seek_fn fn, void *arg)
{
	struct vdifs_chunk ch;
	uint64_t i = off / chunk_size;
	uint32_t coff = (uint32_t)(off % chunk_size);
	uint32_t res;
	int rc;

	if (whence != SEEK_DATA && whence != SEEK_HOLE)
		return -EINVAL;
	if (off >= size)
		return -ENXIO;
	for (;;) {
		if (i > (size - 1) / chunk_size)
			return whence == SEEK_DATA ? -ENXIO : (int64_t)size;
		if (lock)
			pthread_mutex_lock(lock);
		struct vdifs_chunk *p = whence == SEEK_DATA ? vdifs_layout_next(l, i) : vdifs_layout_get(l, i);
		bool present = p && !(p->flags & VDIFS_CHUNK_HOLE);
		if (present)
			ch = *p;
		if (lock)
			pthread_mutex_unlock(lock);
		if (whence == SEEK_DATA) {
			if (!present || ch.index > (size - 1) / chunk_size)
				return -ENXIO;
			if (ch.index != i) {
				i = ch.index;
				coff = 0;
			}
			rc = fn(arg, &ch, coff, VDIFS_SEEK_DATA, &res);
			if (rc < 0)
				return rc;
			if (rc == 1 && res < chunk_size) {
				uint64_t pos = i * chunk_size + (res > coff ? res : coff);
				return pos >= size ? -ENXIO : (int64_t)pos;
			}
		} else {
			if (!present)
				return (int64_t)(i * chunk_size + coff);
			rc = fn(arg, &ch, coff, VDIFS_SEEK_HOLE, &res);
			if (rc < 0)
				return rc;
			if (rc == 1 && res < chunk_size) {
				uint64_t pos = i * chunk_size + (res > coff ? res : coff);
				return pos > size ? (int64_t)size : (int64_t)pos;
			}
		}
		i++;
		coff = 0;
	}
}
