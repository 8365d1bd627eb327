/*
 * client: the vdifs client API (see client.h for the contract); this file
 * holds the client itself, its connections, the calling thread's last
 * error, the plumbing of MDS calls and the volume and cluster calls.  Files
 * are in client_file.c, data-server I/O in client_dsio.c, namespace calls in
 * client_ns.c, the layout building blocks in client_layout.c; client_int.h
 * is what they share (with the lock order).
 *
 * Owns: the rpc_loop thread, the MDS connection, the data-server address
 * table with its connection pools, and the graveyard of dead connections.
 *
 * Tuned for a hypervisor host: many parallel 4 KiB..1 MiB reads and writes
 * from FUSE threads into few, large (64 MiB) chunks.  The MDS sees few calls
 * (opens, first writes of a chunk, commits, namespace); a data-server
 * request only looks up a connection in a pool under the client lock, a
 * short critical section taken per request.
 *
 * Dead connections are replaced by fresh ones; the dead rpc_peer objects go
 * to a graveyard freed with the client, because another thread may still
 * hold the pointer it took from a pool.
 */
#include "client_int.h"

#include "log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/random.h>
#include <unistd.h>

/* Backoff of MDS reconnects during an outage. */
#define CLIENT_MDS_BACKOFF_MIN_MS 100
#define CLIENT_MDS_BACKOFF_MAX_MS 1000

struct grave {
	struct grave *next;
	struct rpc_peer *peer;
};

/* ---- errors ----------------------------------------------------------------- */

static _Thread_local char client_errbuf[512];
static _Thread_local bool client_err_transport;

const char *vdifs_last_error(void) { return client_errbuf; }

void client_seterr(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(client_errbuf, sizeof(client_errbuf), fmt, ap);
	va_end(ap);
	client_err_transport = false;
}

const char *client_peer_prefix(char *prefix, size_t cap, const char *host, uint16_t port,
			       const char *why)
{
	snprintf(prefix, cap, "%s:%u: ", host, port);
	size_t n = strlen(prefix);
	return strncmp(why, prefix, n) == 0 ? why + n : why;
}

/* "HOST:PORT: reason" with the reason in lower case as tools print it
 * ("127.0.0.1:9400: connection refused"); why may carry the prefix already. */
static void client_set_transport_err(const char *host, uint16_t port, const char *why)
{
	char prefix[300];
	why = client_peer_prefix(prefix, sizeof(prefix), host, port, why);
	client_seterr("%s%s", prefix, why);
	char *r = client_errbuf + strlen(prefix) < client_errbuf + sizeof(client_errbuf) - 1
			  ? client_errbuf + strlen(prefix)
			  : NULL;
	if (r && r[0] >= 'A' && r[0] <= 'Z' && r[1] >= 'a' && r[1] <= 'z')
		r[0] = (char)(r[0] - 'A' + 'a');
	client_err_transport = true;
}

int client_check_name(const char *name)
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
	c->io_timeout_ms = VDIFS_IO_TIMEOUT_DEFAULT_MS;
	c->layout_ttl_ms = 1000;
	c->next_seq = 1;
	/* The seq-tag session: random, so no two clients (or two lives of
	 * one) share it; 0 means "untagged" on the wire. */
	while (c->session == 0)
		if (getrandom(&c->session, sizeof(c->session), 0) != sizeof(c->session))
			c->session = (uint64_t)client_now_ms() * 0x9E3779B97F4A7C15ull ^ (uint64_t)getpid();
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
	client_inodes_free(c);
	fcache_free(c->fcache);
	pthread_mutex_destroy(&c->lock);
	free(c);
}

void vdifs_client_set_timeout(struct vdifs_client *c, uint32_t ms) { c->timeout_ms = ms; }
void vdifs_client_set_layout_ttl(struct vdifs_client *c, uint32_t ms) { c->layout_ttl_ms = ms; }
void vdifs_client_set_io_timeout(struct vdifs_client *c, uint32_t ms) { c->io_timeout_ms = ms; }
void vdifs_client_set_mds_wait(struct vdifs_client *c, uint32_t ms) { c->mds_wait_ms = ms; }

int vdifs_client_set_shared_cache(struct vdifs_client *c, uint64_t bytes)
{
	fcache_free(c->fcache);
	c->fcache = NULL;
	if (bytes == 0)
		return 0;
	c->fcache = fcache_new(bytes);
	if (!c->fcache) {
		client_seterr("shared chunk cache of %llu bytes: out of memory", (unsigned long long)bytes);
		return -ENOMEM;
	}
	return 0;
}

bool vdifs_client_shared_cache_stats(struct vdifs_client *c, uint64_t *hits, uint64_t *fills, uint64_t *bytes)
{
	if (!c->fcache)
		return false;
	struct fcache_stats s = fcache_stats(c->fcache);
	*hits = s.hits;
	*fills = s.fills;
	*bytes = s.bytes;
	return true;
}

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

struct vdifs_ds *client_ds_intern(struct vdifs_client *c, uint32_t ds_id, struct vbytes host,
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

struct rpc_peer *client_ds_peer(struct vdifs_client *c, struct vdifs_ds *d)
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

/* ---- MDS calls ------------------------------------------------------------------ */

/* A tagged call in flight: its seq bounds the acked of every tagged call. */
struct client_seq {
	uint64_t seq;
	struct client_seq *next;
};

/* Takes the next seq and lists cs as in flight. */
static void client_seq_begin(struct vdifs_client *c, struct client_seq *cs)
{
	pthread_mutex_lock(&c->lock);
	cs->seq = c->next_seq++;
	cs->next = c->inflight;
	c->inflight = cs;
	pthread_mutex_unlock(&c->lock);
}

static void client_seq_end(struct vdifs_client *c, struct client_seq *cs)
{
	pthread_mutex_lock(&c->lock);
	struct client_seq **pp = &c->inflight;
	while (*pp != cs)
		pp = &(*pp)->next;
	*pp = cs->next;
	pthread_mutex_unlock(&c->lock);
}

/* The lowest seq still in flight: the MDS may forget every record below. */
static uint64_t client_seq_acked(struct vdifs_client *c)
{
	pthread_mutex_lock(&c->lock);
	uint64_t low = c->next_seq;
	for (const struct client_seq *cs = c->inflight; cs; cs = cs->next)
		if (cs->seq < low)
			low = cs->seq;
	pthread_mutex_unlock(&c->lock);
	return low;
}

/* A call found the MDS unreachable: logs the outage once. */
static void client_mds_outage(struct vdifs_client *c, const char *why)
{
	pthread_mutex_lock(&c->lock);
	bool first = c->outage_since_ms == 0;
	if (first) {
		c->outage_since_ms = client_now_ms();
		c->outage_gave_up = false;
	}
	pthread_mutex_unlock(&c->lock);
	if (first && c->mds_wait_ms == UINT32_MAX)
		log_warn("MDS %s:%u unreachable (%s): metadata operations wait and retry until it is back",
			 c->mds_host, c->mds_port, why);
	else if (first)
		log_warn("MDS %s:%u unreachable (%s): metadata operations wait and retry for up to %u s",
			 c->mds_host, c->mds_port, why, c->mds_wait_ms / 1000);
}

/* A call got an answer: ends an outage (logged once). */
static void client_mds_reachable(struct vdifs_client *c)
{
	pthread_mutex_lock(&c->lock);
	uint64_t since = c->outage_since_ms;
	c->outage_since_ms = 0;
	pthread_mutex_unlock(&c->lock);
	if (since)
		log_warn("MDS %s:%u reachable again after %.1f s", c->mds_host, c->mds_port,
			 (double)(client_now_ms() - since) / 1000.0);
}

/* One call gave up: logs that once per outage, and says so to the caller. */
static int client_mds_give_up(struct vdifs_client *c, uint16_t type, const char *why)
{
	pthread_mutex_lock(&c->lock);
	bool first = !c->outage_gave_up;
	c->outage_gave_up = true;
	pthread_mutex_unlock(&c->lock);
	if (first)
		log_error("MDS %s:%u unreachable for %u s (mds_timeout): failing metadata operations with EIO "
			  "until it answers (%s)", c->mds_host, c->mds_port, c->mds_wait_ms / 1000, why);
	client_seterr("%s:%u: MDS unreachable for %u s (mds_timeout), %s failed: %s", c->mds_host, c->mds_port,
		      c->mds_wait_ms / 1000, proto_msg_name(type), why);
	client_err_transport = true;
	return -EIO;
}

/*
 * One MDS call.  A dead connection (or one silent for timeout_ms) is replaced
 * at once; after that, with mds_wait_ms set, the call waits through the
 * outage with backoff.  A mutation proto_msg_exactly_once() covers goes out
 * tagged with the same (session, seq) on every attempt, so one the MDS
 * applied before dying is answered, not applied again.
 */
int client_mds_call(struct vdifs_client *c, uint16_t type, const struct wbuf *req,
		    struct rpc_result *res)
{
	memset(res, 0, sizeof(*res));
	if (req->err) {
		client_seterr("out of memory");
		return -ENOMEM;
	}
	struct client_seq cs;
	bool tagged = proto_msg_exactly_once(type);
	struct wbuf tb;
	wbuf_init(&tb);
	if (tagged)
		client_seq_begin(c, &cs);
	uint64_t start = client_now_ms();
	uint32_t backoff = CLIENT_MDS_BACKOFF_MIN_MS;
	int rc;
	for (int attempt = 0;; attempt++) {
		const struct wbuf *payload = req;
		if (tagged) {
			struct msg_seq_tag tag = {.session = c->session, .seq = cs.seq, .acked = client_seq_acked(c)};
			wbuf_reset(&tb);
			wbuf_put_raw(&tb, req->data, req->len);
			msg_seq_tag_put(&tb, &tag);
			payload = &tb;
		}
		struct rpc_peer *p = client_mds_peer(c);
		if (!p || payload->err) {
			client_seterr("out of memory");
			rc = -ENOMEM;
			break;
		}
		rc = rpc_call(p, (uint16_t)(tagged ? type | VDIFS_SEQ_BIT : type), payload, NULL, 0, res,
			      c->timeout_ms);
		/* A silent MDS counts as an outage only for a caller that waits
		 * through them; others get the timeout, as ever. */
		bool dead = rpc_peer_dead(p);
		if (rc == 0 || (!dead && (rc != -ETIMEDOUT || c->mds_wait_ms == 0))) {
			client_mds_reachable(c);
			if (rc != 0 && res->message[0])
				client_seterr("%s", res->message);
			else if (rc != 0)
				client_seterr("%s: %s", proto_msg_name(type), strerror(-rc));
			client_err_transport = rc == -ETIMEDOUT;
			break;
		}
		char why[256];
		snprintf(why, sizeof(why), "%s",
			 !dead ? "no reply" : res->message[0] ? res->message : rpc_peer_error(p));
		client_mds_retire(c, p);
		rpc_result_free(res);
		memset(res, 0, sizeof(*res));
		if (attempt == 0)
			continue; /* a connection that died while idle: reconnect at once */
		if (c->mds_wait_ms == 0) {
			client_set_transport_err(c->mds_host, c->mds_port, why);
			break;
		}
		char prefix[300];
		client_mds_outage(c, client_peer_prefix(prefix, sizeof(prefix), c->mds_host, c->mds_port, why));
		uint64_t waited = client_now_ms() - start;
		if (c->mds_wait_ms != UINT32_MAX && waited >= c->mds_wait_ms) {
			rc = client_mds_give_up(c, type, why);
			break;
		}
		usleep(backoff * 1000u);
		backoff = backoff * 2 > CLIENT_MDS_BACKOFF_MAX_MS ? CLIENT_MDS_BACKOFF_MAX_MS : backoff * 2;
	}
	if (tagged)
		client_seq_end(c, &cs);
	wbuf_free(&tb);
	return rc;
}

int client_bad_reply(uint16_t type)
{
	client_seterr("malformed %s reply from the MDS", proto_msg_name(type));
	return -EIO;
}

int client_call_attr(struct vdifs_client *c, uint16_t type, const struct wbuf *req,
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

int client_call_void(struct vdifs_client *c, uint16_t type, const struct wbuf *req)
{
	struct rpc_result res;
	int rc = client_mds_call(c, type, req, &res);
	rpc_result_free(&res);
	return rc;
}

/* ---- volumes and cluster ------------------------------------------------------------ */

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

/* Sends a request with an empty payload whose reply is a list_rep and calls
 * item once per record, with r at the record: item reads it and returns 0 to
 * go on (or when r ran short: the reply is then malformed), non-zero to stop
 * the walk and have client_list return that. */
static int client_list(struct vdifs_client *c, uint16_t type,
		       int (*item)(struct wreader *r, void *ctx), void *ctx)
{
	struct rpc_result res;
	struct msg_list_rep rep;
	struct wbuf b;

	wbuf_init(&b);
	int rc = client_mds_call(c, type, &b, &res);
	wbuf_free(&b);
	if (rc == 0 && msg_list_rep_decode(res.payload, res.len, &rep) != 0)
		rc = client_bad_reply(type);
	if (rc == 0) {
		struct wreader r;
		wreader_init(&r, rep.items.p, rep.items.len);
		for (uint32_t i = 0; i < rep.count && rc == 0; i++) {
			rc = item(&r, ctx);
			if (r.err) {
				rc = client_bad_reply(type);
				break;
			}
		}
	}
	rpc_result_free(&res);
	return rc;
}

struct client_vol_walk {
	int (*fn)(void *arg, const struct vdifs_vol_info *v);
	void *arg;
};

static int client_vol_item(struct wreader *r, void *ctx)
{
	struct client_vol_walk *w = ctx;
	struct msg_vol_info m;
	struct vdifs_vol_info v;

	msg_vol_info_get(r, &m);
	if (r->err)
		return 0;
	client_vol_info(&m, &v);
	return w->fn(w->arg, &v);
}

int vdifs_vol_list(struct vdifs_client *c, int (*fn)(void *arg, const struct vdifs_vol_info *v), void *arg)
{
	struct client_vol_walk w = { fn, arg };
	return client_list(c, VDIFS_MSG_VOL_LIST, client_vol_item, &w);
}

struct client_ds_walk {
	int (*fn)(void *arg, const struct vdifs_ds_info *d);
	void *arg;
};

static int client_ds_item(struct wreader *r, void *ctx)
{
	struct client_ds_walk *w = ctx;
	struct msg_ds_info m;
	struct vdifs_ds_info d;

	msg_ds_info_get(r, &m);
	if (r->err)
		return 0;
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
	return w->fn(w->arg, &d);
}

int vdifs_ds_list(struct vdifs_client *c, int (*fn)(void *arg, const struct vdifs_ds_info *d), void *arg)
{
	struct client_ds_walk w = { fn, arg };
	return client_list(c, VDIFS_MSG_DS_LIST, client_ds_item, &w);
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

int vdifs_scrub(struct vdifs_client *c, uint32_t *servers)
{
	struct rpc_result res;
	struct msg_scrub_rep rep;
	struct wbuf b;
	wbuf_init(&b);
	int rc = client_mds_call(c, VDIFS_MSG_SCRUB, &b, &res);
	wbuf_free(&b);
	if (rc == 0 && msg_scrub_rep_decode(res.payload, res.len, &rep) != 0)
		rc = client_bad_reply(VDIFS_MSG_SCRUB);
	if (rc == 0)
		*servers = rep.servers;
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

int vdifs_fsck(struct vdifs_client *c, bool repair, bool data, struct vdifs_fsck_summary *sum,
	       void (*kind)(void *arg, const char *name, uint64_t found, uint64_t repaired),
	       void (*item)(void *arg, bool repaired, const char *line), void *arg)
{
	struct msg_fsck_req m = {.flags = (repair ? VDIFS_FSCK_REPAIR : 0) | (data ? VDIFS_FSCK_DATA : 0)};
	struct msg_fsck_rep rep;
	struct rpc_result res;
	struct wbuf b;
	wbuf_init(&b);
	msg_fsck_req_put(&b, &m);
	int rc = client_mds_call(c, VDIFS_MSG_FSCK, &b, &res);
	/* The data servers' chunk lists come with their next heartbeats. */
	for (int tries = 0; rc == -EAGAIN && tries < 600; tries++) {
		rpc_result_free(&res);
		struct timespec ts = {0, 100 * 1000 * 1000};
		nanosleep(&ts, NULL);
		rc = client_mds_call(c, VDIFS_MSG_FSCK, &b, &res);
	}
	wbuf_free(&b);
	if (rc == 0 && msg_fsck_rep_decode(res.payload, res.len, &rep) != 0)
		rc = client_bad_reply(VDIFS_MSG_FSCK);
	/* Both lists are checked whole before the first callback. */
	for (int pass = 0; pass < 2 && rc == 0; pass++) {
		struct wreader r;
		wreader_init(&r, rep.kinds.p, rep.kinds.len);
		for (uint32_t i = 0; i < rep.nkinds && !r.err; i++) {
			struct msg_fsck_count k;
			char name[VDIFS_NAME_MAX + 1];
			msg_fsck_count_get(&r, &k);
			if (!r.err && pass && kind) {
				client_copy_name(name, k.kind);
				kind(arg, name, k.found, k.repaired);
			}
		}
		bool bad = wreader_finish(&r) != 0;
		wreader_init(&r, rep.items.p, rep.items.len);
		for (uint32_t i = 0; i < rep.count && !r.err; i++) {
			struct msg_fsck_item it;
			char line[VDIFS_PATH_MAX + 1];
			msg_fsck_item_get(&r, &it);
			if (!r.err && pass && item && vbytes_to_cstr(it.line, line, sizeof(line)) == 0)
				item(arg, it.repaired != 0, line);
		}
		if (bad || wreader_finish(&r) != 0)
			rc = client_bad_reply(VDIFS_MSG_FSCK);
	}
	if (rc == 0)
		*sum = (struct vdifs_fsck_summary){rep.keys, rep.found, rep.repaired};
	rpc_result_free(&res);
	return rc;
}
