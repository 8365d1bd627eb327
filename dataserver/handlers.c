/*
 * handlers: one function per data-server message, dispatched by one switch
 * (see handlers.h).
 *
 * The hot paths are DS_WRITE and DS_READ of 4 KiB..1 MiB.  A write goes to
 * the chunkstore straight from the request frame; when it has replicas, the
 * bytes are copied once (the frame dies with the handler call) and sent by
 * reference to every replica over the pooled connections.  A read fills one
 * reusable buffer that rpc_reply_data() copies into the socket's output.
 * DS_SYNC's fdatasync runs on a worker thread (workers.c) while the
 * replicas sync, so a disk flush never stalls the loop.  A DS_COPY is
 * mapped on the loop (chunkstore_copy_prepare), copied and synced on a copy
 * thread, and indexed back on the loop; at most copy_threads copies are
 * prepared at a time (each holds duplicates of its source's files and a map
 * of its data), the others wait in a FIFO.
 *
 * The counters of ds.stats are a few additions per request; the file is
 * rewritten from a one-second timer only when they changed.
 *
 * A forwarded operation (struct fwd_op) is reference counted: one reference
 * until it has replied, one per call in flight.  rpc callbacks may run inside
 * peerpool_drop()/peerpool_free(), so every path that can trigger them holds
 * a reference of its own.
 */
#include "handlers.h"

#include "log.h"
#include "peerpool.h"
#include "workers.h"

#include <errno.h>
#include <stddef.h>
#include <event2/event.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

_Static_assert(CHUNKSTORE_CHAIN_MAX == VDIFS_DEPTH_MAX - 1, "a delta has at most VDIFS_DEPTH_MAX - 1 bases");

#define STATS_INTERVAL_MS 1000

/* Everything the stats file holds, to tell whether it changed. */
struct stats_snap {
	struct handlers_stats h;
	struct chunkstore_counters cs;
};

/* A replica to forward to, as decoded from a request's fwd records, or a
 * server a chunk is being copied to (a mirror: see handlers_mirror_start). */
struct fwd_dest {
	char host[VDIFS_NAME_MAX + 1];
	uint16_t port;
	bool mirror;
};

#define FWD_MAX (VDIFS_MAX_REPLICAS + 1) /* the replicas and a mirror */
#define MIRRORS_MAX 64
#define READ_FETCH_MAX 64                /* cold DS_READs fetching at once; more read on the loop */
#define READ_FETCH_SCRATCH (1024 * 1024) /* a reader's buffer for the bytes it fetches */

struct mirror {
	uint64_t chunk_id;
	struct fwd_dest dest;
	handlers_mirror_failed_fn failed;
	void *arg;
};

struct copy_op;

struct handlers {
	struct handlers_config cfg;
	struct peerpool *peers;
	struct workers *workers; /* local fdatasyncs */
	struct workers *copiers; /* DS_COPY */
	struct workers *readers; /* cold DS_READs: their disk reads (fetches) */
	unsigned reads_fetching; /* DS_READs waiting for a fetch */
	unsigned copy_max;       /* copies prepared at a time */
	unsigned copies_running;
	struct copy_op *copy_head, *copy_tail; /* waiting, FIFO */
	bool copy_starting;      /* in copies_start() */
	bool closing;
	void (*on_delete)(void *arg, uint64_t chunk_id);
	void *on_delete_arg;
	bool (*serving)(void *arg, char *why, size_t cap); /* the gate, see handlers_gate */
	void *serving_arg;
	struct mirror mirrors[MIRRORS_MAX];
	unsigned nmirrors;
	uint8_t *rbuf; /* DS_READ buffer, VDIFS_DATA_MAX bytes once used */
	struct handlers_stats stats;
	char *stats_path;          /* NULL: no stats file */
	struct event *stats_timer; /* persistent, STATS_INTERVAL_MS */
	struct stats_snap written; /* as last written */
	bool stats_ever;           /* written at least once */
};

/* A request's chain of bases, decoded. */
struct req_chain {
	uint32_t n;
	struct chunkstore_base b[CHUNKSTORE_CHAIN_MAX];
};

/* A DS_COPY: waiting in the queue, then running (cj prepared). */
struct copy_op {
	struct workers_job job;
	struct handlers *h;
	struct rpc_request req; /* payload not kept; holds a reference on the connection */
	struct copy_op *next;
	uint64_t id, chunk_size, src_id;
	uint32_t version, src_version, src_extent;
	struct req_chain ch;
	struct chunkstore_copy_job *cj;
};

/* A DS_READ whose data was not in the page cache: a reader thread reads a
 * plain chunk's blocks itself (whole), or brings a chain's ranges into the
 * page cache for the loop to read again; the loop answers. */
struct read_op {
	struct workers_job job;
	struct handlers *h;
	struct rpc_request req; /* payload not kept; holds a reference on the connection */
	uint64_t chunk_id, offset;
	uint32_t version, length;
	struct req_chain ch;
	bool whole;                    /* a plain chunk: read and checked by the thread (pread) */
	struct chunkstore_pread pread; /* whole: the blocks, into buf */
	uint8_t *buf;
	int status;                    /* whole: chunkstore_pread_run's */
	struct chunkstore_fetch fetch; /* else: the ranges to bring into the page cache */
};

struct fwd_op;

struct fwd_target {
	struct fwd_op *op;
	struct rpc_peer *peer; /* valid while !done */
	char addr[VDIFS_NAME_MAX + 8];
	bool done;
	bool mirror;       /* its failure ends the copy, not the operation */
	uint64_t chunk_id; /* of a mirror */
};

struct fwd_op {
	struct handlers *h;
	struct rpc_request req; /* payload not kept: only conn, type and id */
	int refs;
	unsigned waiting; /* targets not done */
	bool replied;
	int status;       /* first failure, 0 if none */
	char msg[512];
	struct wbuf head;  /* the forwarded request (before the data) */
	struct wbuf reply; /* the answer when every replica succeeded */
	uint8_t *data;     /* owned copy of the bytes forwarded */
	size_t dlen;
	struct event *timer;
	uint64_t chunk_id;
	unsigned n;
	struct fwd_target t[FWD_MAX];
	struct workers_job job;              /* DS_SYNC: the local sync, off the loop */
	struct chunkstore_sync_job sync;
};

/* ---- forwarding ------------------------------------------------------------------ */

static void op_put(struct fwd_op *op)
{
	if (--op->refs > 0)
		return;
	if (op->timer)
		event_free(op->timer);
	wbuf_free(&op->head);
	wbuf_free(&op->reply);
	free(op->data);
	free(op);
}

static void mirror_failed(struct handlers *h, uint64_t chunk_id, const char *why);

/* Records a target's failure; the first failure is the one reported.  A
 * mirror's failure stops that copy instead. */
static void target_fail(struct fwd_target *t, int status, const char *why)
{
	struct fwd_op *op = t->op;
	t->done = true;
	op->waiting--;
	if (t->mirror) {
		mirror_failed(op->h, t->chunk_id, why);
		return;
	}
	if (op->status == 0) {
		op->status = status < 0 ? status : -EIO;
		snprintf(op->msg, sizeof(op->msg), "replica %s: %.200s", t->addr, why);
	}
}

/* Replies once every target is done; drops the reference held until then. */
static void op_finish_if_done(struct fwd_op *op)
{
	if (op->replied || op->waiting > 0)
		return;
	op->replied = true;
	if (op->timer)
		evtimer_del(op->timer);
	if (op->status < 0) {
		log_warn("%s: %s not done on every replica: %s", rpc_conn_peer(op->req.conn),
			 proto_msg_name(op->req.type), op->msg);
		rpc_reply_error(&op->req, op->status, "%s", op->msg);
	} else {
		rpc_reply(&op->req, &op->reply);
	}
	rpc_conn_unref(op->req.conn);
	op_put(op);
}

static void fwd_reply_cb(void *arg, int status, const uint8_t *payload, uint32_t len)
{
	struct fwd_target *t = arg;
	struct fwd_op *op = t->op;
	if (!t->done) {
		if (status >= 0) {
			t->done = true;
			op->waiting--;
		} else if (payload) {
			/* The replica answered with an error: pass its status on, but
			 * a replica that lacks a chunk we hold has lost it: that is an
			 * I/O error, not "never written" (which ENOENT tells clients). */
			struct msg_error_rep e;
			char why[256];
			if (msg_error_rep_decode(payload, len, &e) < 0 ||
			    vbytes_to_cstr(e.message, why, sizeof(why)) < 0)
				snprintf(why, sizeof(why), "%s", strerror(-status));
			target_fail(t, status == -ENOENT ? -EIO : status, why);
		} else {
			/* Transport failure: the replica is unreachable, not wrong. */
			const char *why = rpc_peer_error(t->peer);
			target_fail(t, -EIO, why && *why ? why : strerror(-status));
		}
	}
	op_finish_if_done(op);
	op_put(op);
}

static void fwd_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct fwd_op *op = arg;
	op->refs++; /* callbacks run inside peerpool_drop() */
	for (unsigned i = 0; i < op->n; i++) {
		struct fwd_target *t = &op->t[i];
		if (t->done)
			continue;
		char why[64];
		snprintf(why, sizeof(why), "no reply within %u ms", op->h->cfg.fwd_timeout_ms);
		struct rpc_peer *p = t->peer;
		target_fail(t, -ETIMEDOUT, why);
		/* A replica that does not answer is cut off: the next use reconnects. */
		peerpool_drop(op->h->peers, p);
	}
	op_finish_if_done(op);
	op_put(op);
}

/* Sends op->head (+ op->data) to every destination and arranges the reply.
 * Takes over the request: it is answered when every destination (and the
 * local job the caller counted in op->waiting, if any) is done. */
static void fwd_start(struct fwd_op *op, const struct fwd_dest *dests, unsigned n)
{
	struct handlers *h = op->h;
	rpc_conn_ref(op->req.conn);
	op->n = n;
	op->waiting += n; /* (plus a local job counted by the caller) */
	op->refs++;       /* ours, while sending */
	for (unsigned i = 0; i < n; i++) {
		struct fwd_target *t = &op->t[i];
		t->op = op;
		t->mirror = dests[i].mirror;
		t->chunk_id = op->chunk_id;
		snprintf(t->addr, sizeof(t->addr), "%s:%u", dests[i].host, dests[i].port);
		if (op->head.err) {
			target_fail(t, -ENOMEM, "out of memory");
			continue;
		}
		t->peer = peerpool_get(h->peers, dests[i].host, dests[i].port);
		if (!t->peer) {
			target_fail(t, -ENOMEM, "out of memory or too many peers");
			continue;
		}
		op->refs++;
		int rc = rpc_call_async(t->peer, op->req.type, &op->head, op->data, op->dlen, fwd_reply_cb, t);
		if (rc < 0) {
			op->refs--;
			const char *why = rpc_peer_error(t->peer);
			target_fail(t, -EIO, why && *why ? why : strerror(-rc));
		}
	}
	bool sent = false;
	for (unsigned i = 0; i < n; i++)
		sent = sent || !op->t[i].done;
	if (sent) {
		struct timeval tv = {.tv_sec = h->cfg.fwd_timeout_ms / 1000,
				     .tv_usec = (h->cfg.fwd_timeout_ms % 1000) * 1000};
		op->timer = evtimer_new(h->cfg.base, fwd_timeout_cb, op);
		if (!op->timer || evtimer_add(op->timer, &tv) < 0)
			log_error("no timer for a forwarded %s: it waits for its replicas", proto_msg_name(op->req.type));
	}
	op_finish_if_done(op);
	op_put(op);
}

static struct fwd_op *op_new(struct handlers *h, const struct rpc_request *req, uint64_t chunk_id)
{
	struct fwd_op *op = calloc(1, sizeof(*op));
	if (!op)
		return NULL;
	op->h = h;
	op->chunk_id = chunk_id;
	op->req = *req;
	op->req.payload = NULL;
	op->req.len = 0;
	op->refs = 1;
	wbuf_init(&op->head);
	wbuf_init(&op->reply);
	return op;
}

/* Decodes the fwd records of a request: 0 or -EBADMSG. */
static int parse_fwd(uint32_t nfwd, struct vbytes blob, struct fwd_dest *out)
{
	struct wreader r;
	if (nfwd > VDIFS_MAX_REPLICAS)
		return -EBADMSG;
	wreader_init(&r, blob.p, blob.len);
	for (uint32_t i = 0; i < nfwd; i++) {
		struct msg_replica m;
		msg_replica_get(&r, &m);
		if (r.err || m.host.len == 0 || memchr(m.host.p, '\0', m.host.len) || m.port == 0 ||
		    vbytes_to_cstr(m.host, out[i].host, sizeof(out[i].host)) < 0)
			return -EBADMSG;
		out[i].port = m.port;
		out[i].mirror = false;
	}
	return wreader_finish(&r);
}

/* Decodes nbase base_ref records: 0, or -EBADMSG (more than
 * CHUNKSTORE_CHAIN_MAX, or a blob that is not exactly nbase records). */
static int parse_bases(uint32_t nbase, struct vbytes blob, struct req_chain *out)
{
	struct wreader r;
	if (nbase > CHUNKSTORE_CHAIN_MAX)
		return -EBADMSG;
	wreader_init(&r, blob.p, blob.len);
	for (uint32_t i = 0; i < nbase; i++) {
		struct msg_base_ref m;
		msg_base_ref_get(&r, &m);
		if (r.err)
			return -EBADMSG;
		out->b[i] = (struct chunkstore_base){.id = m.chunk_id, .version = m.version};
	}
	out->n = nbase;
	return wreader_finish(&r);
}

/* What is wrong with a well-encoded chain for chunk id (NULL: nothing). */
static const char *chain_problem(uint64_t id, const struct req_chain *ch)
{
	for (uint32_t k = 0; k < ch->n; k++) {
		if (ch->b[k].id == 0)
			return "base chunk id 0";
		if (ch->b[k].id == id)
			return "the chunk is its own base";
		for (uint32_t j = 0; j < k; j++)
			if (ch->b[j].id == ch->b[k].id)
				return "a base named twice";
	}
	return NULL;
}

/* What is wrong with the geometry of a write or punch (NULL: nothing). */
static const char *geom_problem(uint64_t id, uint64_t chunk_size, uint32_t extent, const struct req_chain *ch)
{
	if (extent == 0)
		return ch->n == 0 ? NULL : "bases without an extent";
	if (extent < CHUNKSTORE_EXTENT_MIN || extent > CHUNKSTORE_EXTENT_MAX || (extent & (extent - 1)) != 0)
		return "extent not a power of two in [4 KiB, 1 MiB]";
	if (chunk_size == 0 || chunk_size % extent != 0)
		return "extent does not divide the chunk size";
	if (ch->n == 0)
		return "an extent without bases";
	return chain_problem(id, ch);
}

/* Refuses a request whose delta fields make no sense: EINVAL, logged. */
static void reject_geom(const struct rpc_request *req, uint64_t id, uint32_t extent, uint32_t nbase, const char *why)
{
	log_warn("%s: %s of chunk %016" PRIx64 " refused: %s (extent %" PRIu32 ", %" PRIu32 " bases)",
		 rpc_conn_peer(req->conn), proto_msg_name(req->type), id, why, extent, nbase);
	rpc_reply_error(req, -EINVAL, "chunk %016" PRIx64 ": %s", id, why);
}

/* Answers now when there is nothing to forward, else forwards head (+ a copy
 * of data) and answers when the replicas have.  reply is consumed. */
static void reply_or_forward(struct handlers *h, const struct rpc_request *req, uint64_t chunk_id, struct wbuf *reply,
			     const struct fwd_dest *dests, unsigned n, struct wbuf *head,
			     const void *data, size_t dlen)
{
	if (n == 0) {
		rpc_reply(req, reply);
		wbuf_free(reply);
		return;
	}
	struct fwd_op *op = op_new(h, req, chunk_id);
	if (op && dlen) {
		op->data = malloc(dlen);
		if (op->data) {
			memcpy(op->data, data, dlen);
			op->dlen = dlen;
		}
	}
	if (!op || (dlen && !op->data)) {
		if (op)
			op_put(op);
		wbuf_free(reply);
		rpc_reply_error(req, -ENOMEM, "out of memory forwarding to replicas");
		return;
	}
	op->reply = *reply;
	op->head = *head;
	wbuf_init(reply);
	wbuf_init(head);
	fwd_start(op, dests, n);
}

/* ---- mirrors (chunks being copied to another server) ------------------------------ */

static int mirror_find(const struct handlers *h, uint64_t chunk_id)
{
	for (unsigned i = 0; i < h->nmirrors; i++)
		if (h->mirrors[i].chunk_id == chunk_id)
			return (int)i;
	return -1;
}

/* Appends the mirror of chunk_id, if any, to the n destinations. */
static unsigned add_mirror(const struct handlers *h, uint64_t chunk_id, struct fwd_dest *dests, unsigned n)
{
	int i = mirror_find(h, chunk_id);
	if (i < 0 || n >= FWD_MAX)
		return n;
	dests[n] = h->mirrors[i].dest;
	dests[n].mirror = true;
	return n + 1;
}

static void mirror_failed(struct handlers *h, uint64_t chunk_id, const char *why)
{
	int i = mirror_find(h, chunk_id);
	if (i < 0)
		return;
	struct mirror m = h->mirrors[i];
	h->mirrors[i] = h->mirrors[--h->nmirrors];
	log_warn("chunk %016" PRIx64 ": copy to %s:%u stopped: a write did not reach it: %s", chunk_id, m.dest.host,
		 m.dest.port, why);
	if (m.failed)
		m.failed(m.arg, chunk_id, why);
}

int handlers_mirror_start(struct handlers *h, uint64_t chunk_id, const char *host, uint16_t port,
			  handlers_mirror_failed_fn failed, void *arg)
{
	if (mirror_find(h, chunk_id) >= 0)
		return -EBUSY;
	if (h->nmirrors == MIRRORS_MAX || strlen(host) > VDIFS_NAME_MAX)
		return -ENOSPC;
	struct mirror *m = &h->mirrors[h->nmirrors++];
	memset(m, 0, sizeof(*m));
	m->chunk_id = chunk_id;
	snprintf(m->dest.host, sizeof(m->dest.host), "%s", host);
	m->dest.port = port;
	m->failed = failed;
	m->arg = arg;
	return 0;
}

void handlers_mirror_stop(struct handlers *h, uint64_t chunk_id)
{
	int i = mirror_find(h, chunk_id);
	if (i >= 0)
		h->mirrors[i] = h->mirrors[--h->nmirrors];
}

struct rpc_peer *handlers_peer(struct handlers *h, const char *host, uint16_t port)
{
	return peerpool_get(h->peers, host, port);
}

/* ---- handlers -------------------------------------------------------------------- */

/* Error reply for a failed chunkstore call, with the replica's version when
 * the caller's is stale. */
static void reply_chunk_error(struct handlers *h, const struct rpc_request *req, int rc, uint64_t id,
			      uint32_t version)
{
	struct chunkstore_stat st;
	if (rc == -ESTALE && chunkstore_stat(h->cfg.store, id, &st) == 0 && st.version != version)
		rpc_reply_error(req, rc, "chunk %016" PRIx64 ": version %" PRIu32 " asked, this replica has %" PRIu32,
				id, version, st.version);
	else if (rc == -ESTALE)
		rpc_reply_error(req, rc, "chunk %016" PRIx64 ": a base chunk here has another version than asked", id);
	else
		rpc_reply_error(req, rc, "chunk %016" PRIx64 ": %s", id, strerror(-rc));
}

static void reject_malformed(const struct rpc_request *req)
{
	rpc_reject(req, -EBADMSG, "malformed %s", proto_msg_name(req->type));
}

/* DS_WRITE.  With replicas, the forwards leave first (rpc_call_async sends
 * at once) so that the replicas write their copies while this server writes
 * its own: the latency is the slowest copy, not their sum. */
static void handle_write(struct handlers *h, const struct rpc_request *req)
{
	struct msg_ds_write_req m;
	struct fwd_dest dests[FWD_MAX];
	struct req_chain ch;
	struct chunkstore_alloc alloc = {0, 0};
	if (msg_ds_write_req_decode(req->payload, req->len, &m) < 0 || parse_fwd(m.nfwd, m.fwd, dests) < 0 ||
	    parse_bases(m.nbase, m.bases, &ch) < 0) {
		reject_malformed(req);
		return;
	}
	if (rpc_conn_role(req->conn) == VDIFS_ROLE_DS) {
		h->stats.write_fwd_reqs++;
		h->stats.write_fwd_bytes += m.data.len;
	} else {
		h->stats.write_client_reqs++;
		h->stats.write_client_bytes += m.data.len;
	}
	const char *why = geom_problem(m.chunk_id, m.chunk_size, m.extent, &ch);
	if (why) {
		reject_geom(req, m.chunk_id, m.extent, m.nbase, why);
		return;
	}
	struct chunkstore_geom g = {.chunk_size = m.chunk_size, .extent = m.extent, .nbase = ch.n, .base = ch.b};
	unsigned nf = add_mirror(h, m.chunk_id, dests, m.nfwd);
	if (nf == 0) {
		int rc = chunkstore_write(h->cfg.store, m.chunk_id, m.version, &g, m.offset, m.data.p, m.data.len,
					  &alloc);
		if (rc < 0) {
			reply_chunk_error(h, req, rc, m.chunk_id, m.version);
			return;
		}
		struct wbuf reply;
		wbuf_init(&reply);
		msg_ds_io_rep_put(&reply, &(struct msg_ds_io_rep){.alloc = alloc.bytes, .own = alloc.own});
		rpc_reply(req, &reply);
		wbuf_free(&reply);
		return;
	}
	if (chunkstore_check_version(h->cfg.store, m.chunk_id, m.version) < 0) {
		reply_chunk_error(h, req, -ESTALE, m.chunk_id, m.version); /* forward nothing stale */
		return;
	}
	struct fwd_op *op = op_new(h, req, m.chunk_id);
	if (op && m.data.len) {
		op->data = malloc(m.data.len);
		if (op->data) {
			memcpy(op->data, m.data.p, m.data.len);
			op->dlen = m.data.len;
		}
	}
	if (!op || (m.data.len && !op->data)) {
		if (op)
			op_put(op);
		rpc_reply_error(req, -ENOMEM, "out of memory forwarding to replicas");
		return;
	}
	struct msg_ds_write_req f = m;
	f.nfwd = 0;
	f.fwd = (struct vbytes){NULL, 0};
	msg_ds_write_req_put_head(&op->head, &f);
	op->waiting = 1; /* the local write */
	op->refs++;      /* ours until the local write is counted */
	fwd_start(op, dests, nf);
	int rc = chunkstore_write(h->cfg.store, m.chunk_id, m.version, &g, m.offset, op->data, op->dlen, &alloc);
	op->waiting--;
	if (rc < 0) {
		/* A local failure outranks a replica's: report ours. */
		op->status = rc;
		snprintf(op->msg, sizeof(op->msg), "chunk %016" PRIx64 ": %s", m.chunk_id, strerror(-rc));
	} else {
		msg_ds_io_rep_put(&op->reply, &(struct msg_ds_io_rep){.alloc = alloc.bytes, .own = alloc.own});
	}
	op_finish_if_done(op);
	op_put(op);
}

static void read_send(const struct rpc_request *req, const uint8_t *data, uint32_t length)
{
	struct wbuf head;
	wbuf_init(&head);
	msg_ds_read_rep_put_head(&head, length);
	rpc_reply_data(req, &head, data, length);
	wbuf_free(&head);
}

/* Reads and answers a DS_READ (on the loop); cached: take only what the
 * page cache holds (-EAGAIN when a page is missing, nothing answered). */
static int read_reply(struct handlers *h, const struct rpc_request *req, uint64_t id, uint32_t version,
		      const struct req_chain *ch, uint64_t offset, uint32_t length, bool cached)
{
	if (!h->rbuf && !(h->rbuf = malloc(VDIFS_DATA_MAX))) {
		rpc_reply_error(req, -ENOMEM, "out of memory");
		return 0;
	}
	int rc = (cached ? chunkstore_read_cached : chunkstore_read)(h->cfg.store, id, version, ch->b, ch->n, offset,
								    h->rbuf, length);
	if (rc == -EAGAIN && cached)
		return rc;
	if (rc < 0) {
		reply_chunk_error(h, req, rc, id, version);
		return 0;
	}
	read_send(req, h->rbuf, length);
	return 0;
}

/* On a reader thread: a plain chunk's blocks read and checked into op->buf,
 * or the ranges a read through a chain needs brought into the page cache. */
static void read_fetch_run(struct workers_job *j)
{
	struct read_op *op = (struct read_op *)((char *)j - offsetof(struct read_op, job));
	if (op->whole) {
		op->status = chunkstore_pread_run(&op->pread, op->buf);
		return;
	}
	size_t cap = op->length < READ_FETCH_SCRATCH ? op->length : READ_FETCH_SCRATCH;
	void *scratch = malloc(cap ? cap : 1);
	if (scratch)
		chunkstore_fetch_run(&op->fetch, scratch, cap);
	else
		chunkstore_fetch_release(&op->fetch); /* the read on the loop goes to the disk itself */
	free(scratch);
}

/* Back on the loop: the answer, from the thread's buffer or read again
 * (now from the page cache; and whenever the thread's read failed, since
 * the loop's read is the one that tells a changed block from a corrupt one). */
static void read_fetch_done(struct workers_job *j)
{
	struct read_op *op = (struct read_op *)((char *)j - offsetof(struct read_op, job));
	struct handlers *h = op->h;
	h->reads_fetching--;
	if (h->closing) {
		rpc_reply_error(&op->req, -ESHUTDOWN, "data server shutting down");
	} else if (op->whole && op->status == 0) {
		read_send(&op->req, op->buf + op->pread.skip, op->length);
	} else {
		(void)read_reply(h, &op->req, op->chunk_id, op->version, &op->ch, op->offset, op->length, false);
	}
	rpc_conn_unref(op->req.conn);
	free(op->buf);
	free(op);
}

/* A read that would wait for the disk: done on a reader thread so that the
 * loop serves other requests meanwhile, and the disk sees several reads at
 * once.  False when it cannot be (the caller reads on the loop). */
static bool read_defer(struct handlers *h, const struct rpc_request *req, const struct msg_ds_read_req *m,
		       const struct req_chain *ch)
{
	if (h->reads_fetching >= READ_FETCH_MAX)
		return false;
	struct read_op *op = calloc(1, sizeof(*op));
	if (!op)
		return false;
	int rc = chunkstore_pread_plan(h->cfg.store, m->chunk_id, m->version, ch->b, ch->n, m->offset, m->length,
				       &op->pread);
	if (rc == 0) {
		op->whole = true;
		op->buf = malloc((size_t)op->pread.nblocks * op->pread.bs);
		if (!op->buf) {
			chunkstore_pread_release(&op->pread);
			free(op);
			return false;
		}
	} else if (rc != -EOPNOTSUPP ||
		   chunkstore_fetch_plan(h->cfg.store, m->chunk_id, m->version, ch->b, ch->n, m->offset, m->length,
					 &op->fetch) < 0) {
		free(op); /* the read on the loop answers the error */
		return false;
	}
	op->h = h;
	op->req = *req;
	op->req.payload = NULL;
	op->req.len = 0;
	op->chunk_id = m->chunk_id;
	op->offset = m->offset;
	op->version = m->version;
	op->length = m->length;
	op->ch = *ch;
	rpc_conn_ref(op->req.conn);
	op->job.run = read_fetch_run;
	op->job.done = read_fetch_done;
	h->reads_fetching++;
	workers_submit(h->readers, &op->job);
	return true;
}

static void handle_read(struct handlers *h, const struct rpc_request *req)
{
	struct msg_ds_read_req m;
	struct req_chain ch;
	if (msg_ds_read_req_decode(req->payload, req->len, &m) < 0 || parse_bases(m.nbase, m.bases, &ch) < 0) {
		reject_malformed(req);
		return;
	}
	h->stats.read_reqs++;
	h->stats.read_bytes += m.length;
	const char *why = chain_problem(m.chunk_id, &ch);
	if (why) {
		reject_geom(req, m.chunk_id, 0, m.nbase, why);
		return;
	}
	if (m.length > VDIFS_DATA_MAX) {
		rpc_reply_error(req, -EINVAL, "read of %" PRIu32 " bytes is over the limit of %u", m.length,
				VDIFS_DATA_MAX);
		return;
	}
	if (read_reply(h, req, m.chunk_id, m.version, &ch, m.offset, m.length, true) != -EAGAIN)
		return;
	h->stats.read_fetches++;
	if (!read_defer(h, req, &m, &ch))
		(void)read_reply(h, req, m.chunk_id, m.version, &ch, m.offset, m.length, false);
}

static void handle_punch(struct handlers *h, const struct rpc_request *req)
{
	struct msg_ds_punch_req m;
	struct fwd_dest dests[FWD_MAX];
	struct req_chain ch;
	struct wbuf reply, head;
	struct chunkstore_alloc alloc = {0, 0};
	if (msg_ds_punch_req_decode(req->payload, req->len, &m) < 0 || parse_fwd(m.nfwd, m.fwd, dests) < 0 ||
	    parse_bases(m.nbase, m.bases, &ch) < 0) {
		reject_malformed(req);
		return;
	}
	const char *why = geom_problem(m.chunk_id, m.chunk_size, m.extent, &ch);
	if (why) {
		reject_geom(req, m.chunk_id, m.extent, m.nbase, why);
		return;
	}
	struct chunkstore_geom g = {.chunk_size = m.chunk_size, .extent = m.extent, .nbase = ch.n, .base = ch.b};
	int rc = chunkstore_punch(h->cfg.store, m.chunk_id, m.version, &g, m.offset, m.length, &alloc);
	if (rc < 0) {
		reply_chunk_error(h, req, rc, m.chunk_id, m.version);
		return;
	}
	wbuf_init(&reply);
	wbuf_init(&head);
	msg_ds_io_rep_put(&reply, &(struct msg_ds_io_rep){.alloc = alloc.bytes, .own = alloc.own});
	unsigned nf = add_mirror(h, m.chunk_id, dests, m.nfwd);
	if (nf) {
		struct msg_ds_punch_req f = m;
		f.nfwd = 0;
		f.fwd = (struct vbytes){NULL, 0};
		msg_ds_punch_req_put(&head, &f);
	}
	reply_or_forward(h, req, m.chunk_id, &reply, dests, nf, &head, NULL, 0);
	wbuf_free(&head);
}

/* The local fdatasync of a DS_SYNC, on a worker thread. */
static void sync_run(struct workers_job *j)
{
	struct fwd_op *op = (struct fwd_op *)((char *)j - offsetof(struct fwd_op, job));
	chunkstore_sync_run(&op->sync);
}

/* Back on the loop: counts the local sync as one more acknowledgement. */
static void sync_done(struct workers_job *j)
{
	struct fwd_op *op = (struct fwd_op *)((char *)j - offsetof(struct fwd_op, job));
	chunkstore_sync_finish(op->h->cfg.store, &op->sync);
	op->waiting--;
	if (op->sync.rc < 0) {
		/* A local failure outranks a replica's: report ours. */
		op->status = op->sync.rc;
		snprintf(op->msg, sizeof(op->msg), "chunk %016" PRIx64 ": fdatasync: %s", op->sync.id,
			 strerror(-op->sync.rc));
	}
	op_finish_if_done(op);
	op_put(op);
}

/* DS_SYNC: the local fdatasync runs on a worker while the replicas sync. */
static void handle_sync(struct handlers *h, const struct rpc_request *req)
{
	struct msg_ds_sync_req m;
	struct fwd_dest dests[FWD_MAX];
	if (msg_ds_sync_req_decode(req->payload, req->len, &m) < 0 || parse_fwd(m.nfwd, m.fwd, dests) < 0) {
		reject_malformed(req);
		return;
	}
	struct fwd_op *op = op_new(h, req, m.chunk_id);
	if (!op) {
		rpc_reply_error(req, -ENOMEM, "out of memory");
		return;
	}
	int rc = chunkstore_sync_prepare(h->cfg.store, m.chunk_id, m.version, &op->sync);
	if (rc < 0) {
		op_put(op);
		reply_chunk_error(h, req, rc, m.chunk_id, m.version);
		return;
	}
	if (m.nfwd) {
		struct msg_ds_sync_req f = m;
		f.nfwd = 0;
		f.fwd = (struct vbytes){NULL, 0};
		msg_ds_sync_req_put(&op->head, &f);
	}
	op->waiting = 1; /* the local sync */
	op->refs++;      /* held by the job until sync_done */
	fwd_start(op, dests, m.nfwd);
	op->job.run = sync_run;
	op->job.done = sync_done;
	workers_submit(h->workers, &op->job);
}

static void handle_seek(struct handlers *h, const struct rpc_request *req)
{
	struct msg_ds_seek_req m;
	struct req_chain ch;
	bool found = false;
	uint64_t off = 0;
	if (msg_ds_seek_req_decode(req->payload, req->len, &m) < 0 || parse_bases(m.nbase, m.bases, &ch) < 0) {
		reject_malformed(req);
		return;
	}
	const char *why = chain_problem(m.chunk_id, &ch);
	if (why) {
		reject_geom(req, m.chunk_id, 0, m.nbase, why);
		return;
	}
	int whence = m.whence == VDIFS_SEEK_DATA   ? CHUNKSTORE_SEEK_DATA
		     : m.whence == VDIFS_SEEK_HOLE ? CHUNKSTORE_SEEK_HOLE
						   : -1;
	int rc = chunkstore_seek(h->cfg.store, m.chunk_id, m.version, ch.b, ch.n, m.offset, whence, &found, &off);
	if (rc < 0) {
		reply_chunk_error(h, req, rc, m.chunk_id, m.version);
		return;
	}
	struct wbuf reply;
	wbuf_init(&reply);
	/* off <= chunk size <= CHUNKSTORE_CHUNK_MAX: it fits the u32 field. */
	msg_ds_seek_rep_put(&reply, &(struct msg_ds_seek_rep){.found = found, .offset = (uint32_t)off});
	rpc_reply(req, &reply);
	wbuf_free(&reply);
}

static void handle_stat(struct handlers *h, const struct rpc_request *req)
{
	struct msg_ds_chunk_req m;
	struct chunkstore_stat st;
	if (msg_ds_chunk_req_decode(req->payload, req->len, &m) < 0) {
		reject_malformed(req);
		return;
	}
	int rc = chunkstore_stat(h->cfg.store, m.chunk_id, &st);
	if (rc < 0) {
		reply_chunk_error(h, req, rc, m.chunk_id, 0);
		return;
	}
	struct wbuf reply;
	wbuf_init(&reply);
	msg_ds_stat_rep_put(&reply, &(struct msg_ds_stat_rep){.version = st.version, .alloc = st.alloc,
							      .chunk_size = st.chunk_size});
	rpc_reply(req, &reply);
	wbuf_free(&reply);
}

static void handle_delete(struct handlers *h, const struct rpc_request *req)
{
	struct msg_ds_chunk_req m;
	if (msg_ds_chunk_req_decode(req->payload, req->len, &m) < 0) {
		reject_malformed(req);
		return;
	}
	int rc = chunkstore_delete(h->cfg.store, m.chunk_id);
	if (rc < 0) {
		reply_chunk_error(h, req, rc, m.chunk_id, 0);
		return;
	}
	log_info("chunk %016" PRIx64 " deleted on request of %s", m.chunk_id, rpc_conn_peer(req->conn));
	if (h->on_delete)
		h->on_delete(h->on_delete_arg, m.chunk_id);
	rpc_reply(req, NULL);
}

/* ---- re-replication: the receiving end ------------------------------------------- */

static bool from_peer(const struct rpc_request *req)
{
	if (rpc_conn_role(req->conn) == VDIFS_ROLE_DS)
		return true;
	rpc_reply_error(req, -EACCES, "%s is for data servers only", proto_msg_name(req->type));
	return false;
}

/* DS_RECV: a piece of a chunk another server copies here. */
static void handle_recv(struct handlers *h, const struct rpc_request *req)
{
	struct msg_ds_recv_req m;
	if (msg_ds_recv_req_decode(req->payload, req->len, &m) < 0 || (uint64_t)m.count * 8 != m.entries.len) {
		reject_malformed(req);
		return;
	}
	if (!from_peer(req))
		return;
	int rc = 0;
	if (m.flags & VDIFS_RECV_BEGIN) {
		struct chunkstore_base base = {.id = m.base_id, .version = m.base_version};
		struct chunkstore_geom g = {.chunk_size = m.chunk_size, .extent = m.extent, .nbase = m.extent ? 1 : 0,
					    .base = &base};
		rc = chunkstore_import_begin(h->cfg.store, m.chunk_id, m.version, &g);
	}
	if (rc == 0)
		rc = chunkstore_import(h->cfg.store, m.chunk_id, m.first, m.count, m.entries.p, m.data.p, m.data.len);
	if (rc < 0)
		rpc_reply_error(req, rc, "chunk %016" PRIx64 ": copy from %s: %s", m.chunk_id, rpc_conn_peer(req->conn),
				strerror(-rc));
	else
		rpc_reply(req, NULL);
}

static void handle_set_version(struct handlers *h, const struct rpc_request *req)
{
	struct msg_ds_set_version_req m;
	if (msg_ds_set_version_req_decode(req->payload, req->len, &m) < 0) {
		reject_malformed(req);
		return;
	}
	if (!from_peer(req))
		return;
	int rc = chunkstore_set_version(h->cfg.store, m.chunk_id, m.version);
	if (rc < 0)
		reply_chunk_error(h, req, rc, m.chunk_id, m.version);
	else
		rpc_reply(req, NULL);
}

/* ---- DS_COPY ------------------------------------------------------------------------ */

static void copy_free(struct copy_op *op)
{
	rpc_conn_unref(op->req.conn);
	free(op);
}

/* Error reply for a failed copy, naming the chunk whose version is stale. */
static void copy_reply_error(struct handlers *h, const struct copy_op *op, int rc)
{
	struct chunkstore_stat st;
	if (rc == -ESTALE && chunkstore_stat(h->cfg.store, op->id, &st) == 0 && st.version != op->version)
		reply_chunk_error(h, &op->req, rc, op->id, op->version);
	else if (rc == -ESTALE)
		reply_chunk_error(h, &op->req, rc, op->src_id, op->src_version);
	else if (rc == -EBUSY)
		rpc_reply_error(&op->req, rc, "chunk %016" PRIx64 ": a copy to it is running", op->id);
	else
		rpc_reply_error(&op->req, rc, "chunk %016" PRIx64 ": copy from %016" PRIx64 " v%" PRIu32 ": %s", op->id,
				op->src_id, op->src_version, strerror(-rc));
}

static void copy_run(struct workers_job *j)
{
	struct copy_op *op = (struct copy_op *)((char *)j - offsetof(struct copy_op, job));
	chunkstore_copy_run(op->cj);
}

static void copies_start(struct handlers *h);

/* Back on the loop: indexes the copy, replies, starts the next one. */
static void copy_done(struct workers_job *j)
{
	struct copy_op *op = (struct copy_op *)((char *)j - offsetof(struct copy_op, job));
	struct handlers *h = op->h;
	struct chunkstore_alloc alloc = {0, 0};
	int rc = chunkstore_copy_finish(h->cfg.store, op->cj, &alloc);
	h->copies_running--;
	if (rc < 0) {
		copy_reply_error(h, op, rc);
	} else {
		struct wbuf reply;
		wbuf_init(&reply);
		msg_ds_io_rep_put(&reply, &(struct msg_ds_io_rep){.alloc = alloc.bytes, .own = alloc.own});
		rpc_reply(&op->req, &reply);
		wbuf_free(&reply);
		log_debug("chunk %016" PRIx64 ": copied from %016" PRIx64 " v%" PRIu32 " (%" PRIu64 " bytes allocated)",
			  op->id, op->src_id, op->src_version, alloc.bytes);
	}
	copy_free(op);
	copies_start(h);
}

/* Prepares and submits waiting copies while a copy thread is free.  Not
 * reentered (with no threads, a copy completes inside workers_submit). */
static void copies_start(struct handlers *h)
{
	if (h->copy_starting)
		return;
	h->copy_starting = true;
	while (h->copy_head && h->copies_running < h->copy_max && !h->closing) {
		struct copy_op *op = h->copy_head;
		h->copy_head = op->next;
		if (!h->copy_head)
			h->copy_tail = NULL;
		struct chunkstore_geom src = {.chunk_size = op->chunk_size, .extent = op->src_extent, .nbase = op->ch.n,
					      .base = op->ch.b};
		int rc = chunkstore_copy_prepare(h->cfg.store, op->id, op->version, op->src_id, op->src_version, &src,
						 &op->cj);
		if (rc < 0) {
			copy_reply_error(h, op, rc);
			copy_free(op);
			continue;
		}
		h->copies_running++;
		op->job.run = copy_run;
		op->job.done = copy_done;
		workers_submit(h->copiers, &op->job);
	}
	h->copy_starting = false;
}

/* DS_COPY: checked here, queued, then copied off the loop (copies_start). */
static void handle_copy(struct handlers *h, const struct rpc_request *req)
{
	struct msg_ds_copy_req m;
	struct req_chain ch;
	if (msg_ds_copy_req_decode(req->payload, req->len, &m) < 0 || parse_bases(m.nbase, m.bases, &ch) < 0) {
		reject_malformed(req);
		return;
	}
	h->stats.copy_reqs++;
	const char *why = geom_problem(m.src_id, m.chunk_size, m.src_extent, &ch);
	if (!why && (m.chunk_id == 0 || m.src_id == 0))
		why = "chunk id 0";
	for (uint32_t k = 0; !why && k < ch.n; k++)
		if (ch.b[k].id == m.chunk_id)
			why = "a copy into its source's chain";
	if (!why && m.chunk_id == m.src_id)
		why = "a copy onto itself";
	if (why) {
		reject_geom(req, m.chunk_id, m.src_extent, m.nbase, why);
		return;
	}
	struct copy_op *op = calloc(1, sizeof(*op));
	if (!op) {
		rpc_reply_error(req, -ENOMEM, "out of memory");
		return;
	}
	*op = (struct copy_op){.h = h, .req = *req, .id = m.chunk_id, .chunk_size = m.chunk_size, .src_id = m.src_id,
			       .version = m.version, .src_version = m.src_version, .src_extent = m.src_extent, .ch = ch};
	op->req.payload = NULL;
	op->req.len = 0;
	rpc_conn_ref(req->conn);
	if (h->copy_tail)
		h->copy_tail->next = op;
	else
		h->copy_head = op;
	h->copy_tail = op;
	copies_start(h);
}

/* ---- stats file --------------------------------------------------------------------- */

static void stats_snap(const struct handlers *h, struct stats_snap *s)
{
	memset(s, 0, sizeof(*s));
	s->h = h->stats;
	s->cs = *chunkstore_counters(h->cfg.store);
}

const struct handlers_stats *handlers_stats(const struct handlers *h) { return &h->stats; }

int handlers_write_stats(struct handlers *h)
{
	char tmp[4200], text[1024];
	struct stats_snap s;
	if (!h->stats_path)
		return -ENOENT;
	stats_snap(h, &s);
	int len = snprintf(text, sizeof(text),
			   "write_client_reqs %" PRIu64 "\nwrite_client_bytes %" PRIu64 "\n"
			   "write_fwd_reqs %" PRIu64 "\nwrite_fwd_bytes %" PRIu64 "\n"
			   "read_reqs %" PRIu64 "\nread_bytes %" PRIu64 "\nread_fetches %" PRIu64 "\n"
			   "deltas_created %" PRIu64 "\ncow_extents %" PRIu64 "\ncow_bytes %" PRIu64 "\n"
			   "chain_read_bytes %" PRIu64 "\ncopy_reqs %" PRIu64 "\ncopy_bytes %" PRIu64 "\n",
			   s.h.write_client_reqs, s.h.write_client_bytes, s.h.write_fwd_reqs, s.h.write_fwd_bytes,
			   s.h.read_reqs, s.h.read_bytes, s.h.read_fetches, s.cs.deltas_created, s.cs.cow_extents, s.cs.cow_bytes,
			   s.cs.chain_read_bytes, s.h.copy_reqs, s.cs.copy_bytes);
	snprintf(tmp, sizeof(tmp), "%s.tmp", h->stats_path);
	FILE *f = fopen(tmp, "we");
	int rc = 0;
	if (!f) {
		rc = -errno;
	} else {
		if (fwrite(text, 1, (size_t)len, f) != (size_t)len)
			rc = -EIO;
		if (fclose(f) != 0 && rc == 0)
			rc = -errno;
		if (rc == 0 && rename(tmp, h->stats_path) < 0)
			rc = -errno;
		if (rc < 0)
			unlink(tmp);
	}
	if (rc < 0) {
		log_warn("%s: %s", h->stats_path, strerror(-rc));
		return rc;
	}
	h->written = s;
	h->stats_ever = true;
	return 0;
}

static void stats_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct handlers *h = arg;
	struct stats_snap s;
	stats_snap(h, &s);
	if (!h->stats_ever || memcmp(&s, &h->written, sizeof(s)) != 0)
		handlers_write_stats(h);
}

void handlers_dispatch(void *arg, const struct rpc_request *req)
{
	struct handlers *h = arg;
	char why[160];
	if (req->type != VDIFS_MSG_DS_STAT && h->serving && !h->serving(h->serving_arg, why, sizeof(why))) {
		/* Fenced (see mdslink.h): the client tries another replica. */
		rpc_reply_error(req, -EAGAIN, "%s", why);
		return;
	}
	switch (req->type) {
	case VDIFS_MSG_DS_WRITE: handle_write(h, req); break;
	case VDIFS_MSG_DS_READ: handle_read(h, req); break;
	case VDIFS_MSG_DS_PUNCH: handle_punch(h, req); break;
	case VDIFS_MSG_DS_SYNC: handle_sync(h, req); break;
	case VDIFS_MSG_DS_SEEK: handle_seek(h, req); break;
	case VDIFS_MSG_DS_STAT: handle_stat(h, req); break;
	case VDIFS_MSG_DS_DELETE: handle_delete(h, req); break;
	case VDIFS_MSG_DS_COPY: handle_copy(h, req); break;
	case VDIFS_MSG_DS_RECV: handle_recv(h, req); break;
	case VDIFS_MSG_DS_SET_VERSION: handle_set_version(h, req); break;
	default:
		rpc_reject(req, -EOPNOTSUPP, "%s (type %u) is not a data-server request",
			   proto_msg_name(req->type), req->type);
		break;
	}
}

struct handlers *handlers_new(const struct handlers_config *cfg)
{
	struct handlers *h = calloc(1, sizeof(*h));
	if (!h)
		return NULL;
	h->cfg = *cfg;
	if (!h->cfg.fwd_timeout_ms)
		h->cfg.fwd_timeout_ms = HANDLERS_FWD_TIMEOUT_DEFAULT_MS;
	struct peerpool_config pc = {
		.base = cfg->base,
		.auth = cfg->auth,
		.name = cfg->name,
		.max_payload = cfg->max_payload,
	};
	h->peers = peerpool_new(&pc);
	h->workers = workers_start(cfg->base, cfg->sync_threads ? cfg->sync_threads : HANDLERS_SYNC_THREADS_DEFAULT);
	h->copy_max = cfg->copy_threads ? cfg->copy_threads : HANDLERS_COPY_THREADS_DEFAULT;
	h->copiers = workers_start(cfg->base, h->copy_max);
	h->readers = workers_start(cfg->base, cfg->read_threads ? cfg->read_threads : HANDLERS_READ_THREADS_DEFAULT);
	bool stats_ok = true;
	if (cfg->stats_path) {
		struct timeval tv = {.tv_sec = STATS_INTERVAL_MS / 1000, .tv_usec = (STATS_INTERVAL_MS % 1000) * 1000};
		h->stats_path = strdup(cfg->stats_path);
		h->stats_timer = event_new(cfg->base, -1, EV_PERSIST, stats_timer_cb, h);
		stats_ok = h->stats_path && h->stats_timer && evtimer_add(h->stats_timer, &tv) == 0;
	}
	h->cfg.stats_path = NULL; /* the copy is h->stats_path */
	if (!h->peers || !h->workers || !h->copiers || !h->readers || !stats_ok) {
		free(h->stats_path); /* nothing to report */
		h->stats_path = NULL;
		handlers_free(h);
		return NULL;
	}
	return h;
}

void handlers_on_delete(struct handlers *h, void (*fn)(void *arg, uint64_t chunk_id), void *arg)
{
	h->on_delete = fn;
	h->on_delete_arg = arg;
}

void handlers_gate(struct handlers *h, bool (*serving)(void *arg, char *why, size_t cap), void *arg)
{
	h->serving = serving;
	h->serving_arg = arg;
}

void handlers_free(struct handlers *h)
{
	if (!h)
		return;
	h->closing = true;
	workers_stop(h->workers); /* local syncs finish and reply first */
	workers_stop(h->copiers); /* and copies running (no other starts) */
	workers_stop(h->readers); /* cold reads are answered ESHUTDOWN */
	while (h->copy_head) {
		struct copy_op *op = h->copy_head;
		h->copy_head = op->next;
		rpc_reply_error(&op->req, -ESHUTDOWN, "data server shutting down");
		copy_free(op);
	}
	h->copy_tail = NULL;
	peerpool_free(h->peers);
	if (h->stats_timer)
		event_free(h->stats_timer);
	if (h->stats_path)
		handlers_write_stats(h);
	free(h->stats_path);
	free(h->rbuf);
	free(h);
}
