/*
 * client_dsio: parallel data-server I/O for the client.  A calling thread
 * encodes one DS_READ/WRITE/PUNCH/SYNC/SEEK per span of chunk (a struct
 * dsio_op), sends them all at once on connections from the client's pools
 * and waits for the whole batch; the reply callbacks, on the rpc_loop
 * thread, only decode into their op and count down.
 *
 * Owns: nothing long-lived but the "suspect" mark of each data server.  A
 * data server that refuses connections or leaves a request unanswered
 * (probed after 4 s, see dsio_wait) is suspect for 30 s: reads go to its
 * peers first (dsio_read_order).  Writes need every replica; retrying them
 * is the caller's business (client_file.c).
 *
 * Tuned for FUSE threads issuing up to len / VDIFS_IO_UNIT requests per call
 * into few large chunks: write data is sent by reference, never copied; a
 * read reply is copied once, straight into the caller's buffer; a batch
 * costs one mutex and one condition variable on the caller's stack.
 */
#include "client_int.h"
#include "log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* How long a data server that failed to answer is read from last. */
#define DSIO_SUSPECT_MS 30000

/* A batch waiting this long probes the data servers it waits for. */
#define DSIO_PROBE_AFTER_MS 4000
#define DSIO_PROBE_TIMEOUT_MS 3000

static bool dsio_ds_suspect(const struct vdifs_ds *d)
{
	return __atomic_load_n(&d->suspect_until, __ATOMIC_RELAXED) > client_now_ms();
}

static void dsio_ds_mark_suspect(struct vdifs_ds *d)
{
	__atomic_store_n(&d->suspect_until, client_now_ms() + DSIO_SUSPECT_MS, __ATOMIC_RELAXED);
}

unsigned dsio_read_order(const struct vdifs_chunk *ch, unsigned order[VDIFS_MAX_REPLICAS])
{
	unsigned n = 0;
	for (int pass = 0; pass < 2; pass++)
		for (unsigned r = 0; r < ch->nrep; r++)
			if (dsio_ds_suspect(ch->rep[r]) == (pass == 1))
				order[n++] = r;
	return n;
}

void dsio_batch_init(struct dsio_batch *b)
{
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_mutex_init(&b->m, NULL);
	pthread_cond_init(&b->cv, &ca);
	pthread_condattr_destroy(&ca);
	b->pending = 0;
}

void dsio_batch_destroy(struct dsio_batch *b)
{
	pthread_cond_destroy(&b->cv);
	pthread_mutex_destroy(&b->m);
}

/* Reply callback, on the loop thread: decode into the op, never block. */
static void dsio_reply(void *arg, int status, const uint8_t *payload, uint32_t len)
{
	struct dsio_op *op = arg;

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
		case VDIFS_MSG_DS_PUNCH:
		case VDIFS_MSG_DS_COPY: {
			struct msg_ds_io_rep rep;
			if (len > 0 && msg_ds_io_rep_decode(payload, len, &rep) == 0) {
				op->alloc = rep.alloc;
				op->own = rep.own;
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

void dsio_issue(struct vdifs_client *c, struct dsio_batch *b, struct dsio_op *op, unsigned r,
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
	int rc = rpc_call_async(op->peer, op->type, &op->head, data, dlen, dsio_reply, op);
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
static void dsio_probe(struct rpc_peer *p, struct vdifs_ds *d, uint64_t chunk_id)
{
	struct msg_ds_chunk_req m = { .chunk_id = chunk_id };
	struct rpc_result res;
	struct wbuf b;
	wbuf_init(&b);
	msg_ds_chunk_req_put(&b, &m);
	rpc_call(p, VDIFS_MSG_DS_STAT, &b, NULL, 0, &res, DSIO_PROBE_TIMEOUT_MS);
	if (rpc_peer_dead(p)) {
		log_warn("%s:%u: %s", d->host, d->port, rpc_peer_error(p));
		dsio_ds_mark_suspect(d);
	}
	rpc_result_free(&res);
	wbuf_free(&b);
}

void dsio_wait(struct vdifs_client *c, struct dsio_batch *b, struct dsio_op *ops, size_t n)
{
	(void)c;
	pthread_mutex_lock(&b->m);
	while (b->pending > 0) {
		struct timespec dl;
		clock_gettime(CLOCK_MONOTONIC, &dl);
		dl.tv_sec += DSIO_PROBE_AFTER_MS / 1000;
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
			log_warn("%s:%u: no reply for %d s: probing it", d->host, d->port, DSIO_PROBE_AFTER_MS / 1000);
			dsio_probe(probed[np - 1], d, id);
			pthread_mutex_lock(&b->m);
		}
	}
	pthread_mutex_unlock(&b->m);
}

int dsio_run1(struct vdifs_client *c, struct dsio_op *op, unsigned r, const void *data, size_t dlen)
{
	struct dsio_batch b;
	dsio_batch_init(&b);
	dsio_issue(c, &b, op, r, data, dlen);
	dsio_wait(c, &b, op, 1);
	dsio_batch_destroy(&b);
	return op->status;
}

bool dsio_transport_failed(const struct dsio_op *op)
{
	bool dead = op->status < 0 && op->peer && rpc_peer_dead(op->peer);
	if (dead && op->r < op->ch.nrep)
		dsio_ds_mark_suspect(op->ch.rep[op->r]);
	return dead;
}

void dsio_seterr(const struct dsio_op *op)
{
	const struct vdifs_ds *d = op->r < op->ch.nrep ? op->ch.rep[op->r] : NULL;
	const char *why = op->msg[0]		       ? op->msg
			  : dsio_transport_failed(op) ? rpc_peer_error(op->peer)
						    : strerror(-op->status);
	char prefix[300];
	why = client_peer_prefix(prefix, sizeof(prefix), d ? d->host : "?", d ? d->port : 0, why);
	client_seterr("%s%s of chunk %016llx: %s", prefix, proto_msg_name(op->type),
		      (unsigned long long)op->ch.chunk_id, why);
}

/* Encodes the replicas after the primary as fwd records. */
static void dsio_put_fwd(struct wbuf *fwd, const struct vdifs_chunk *ch)
{
	for (uint32_t i = 1; i < ch->nrep; i++) {
		struct msg_replica rep = { .ds_id = ch->rep[i]->ds_id, .host = client_vb(ch->rep[i]->host),
					   .port = ch->rep[i]->port };
		msg_replica_put(fwd, &rep);
	}
}

/* The chain of bases of a delta chunk, as the wire carries it. */
static struct vbytes dsio_bases(const struct vdifs_chunk *ch)
{
	struct vbytes v = { ch->bases, ch->nbase * VDIFS_BASE_REF_LEN };
	return v;
}

void dsio_encode_write(struct dsio_op *op, uint64_t chunk_size)
{
	struct wbuf fwd;
	wbuf_init(&fwd);
	dsio_put_fwd(&fwd, &op->ch);
	struct msg_ds_write_req m = {
		.chunk_id = op->ch.chunk_id, .version = op->ch.version, .flags = 0,
		.chunk_size = chunk_size, .extent = op->ch.extent, .nbase = op->ch.nbase,
		.bases = dsio_bases(&op->ch), .offset = op->sp.off, .nfwd = op->ch.nrep - 1,
		.fwd = { fwd.data, (uint32_t)fwd.len }, .data = { NULL, op->sp.len },
	};
	op->type = VDIFS_MSG_DS_WRITE;
	wbuf_reset(&op->head);
	msg_ds_write_req_put_head(&op->head, &m);
	if (fwd.err)
		op->head.err = true;
	wbuf_free(&fwd);
}

void dsio_encode_read(struct dsio_op *op)
{
	struct msg_ds_read_req m = { .chunk_id = op->ch.chunk_id, .version = op->ch.version,
				     .nbase = op->ch.nbase, .bases = dsio_bases(&op->ch),
				     .offset = op->sp.off, .length = op->sp.len };
	op->type = VDIFS_MSG_DS_READ;
	wbuf_reset(&op->head);
	msg_ds_read_req_put(&op->head, &m);
}

void dsio_encode_punch(struct dsio_op *op, uint64_t chunk_size)
{
	struct wbuf fwd;
	wbuf_init(&fwd);
	dsio_put_fwd(&fwd, &op->ch);
	struct msg_ds_punch_req m = {
		.chunk_id = op->ch.chunk_id, .version = op->ch.version, .flags = 0,
		.chunk_size = chunk_size, .extent = op->ch.extent, .nbase = op->ch.nbase,
		.bases = dsio_bases(&op->ch), .offset = op->sp.off, .length = op->sp.len,
		.nfwd = op->ch.nrep - 1, .fwd = { fwd.data, (uint32_t)fwd.len },
	};
	op->type = VDIFS_MSG_DS_PUNCH;
	wbuf_reset(&op->head);
	msg_ds_punch_req_put(&op->head, &m);
	if (fwd.err)
		op->head.err = true;
	wbuf_free(&fwd);
}

void dsio_encode_sync(struct dsio_op *op)
{
	struct wbuf fwd;
	wbuf_init(&fwd);
	dsio_put_fwd(&fwd, &op->ch);
	struct msg_ds_sync_req m = { .chunk_id = op->ch.chunk_id, .version = op->ch.version,
				     .nfwd = op->ch.nrep - 1, .fwd = { fwd.data, (uint32_t)fwd.len } };
	op->type = VDIFS_MSG_DS_SYNC;
	wbuf_reset(&op->head);
	msg_ds_sync_req_put(&op->head, &m);
	if (fwd.err)
		op->head.err = true;
	wbuf_free(&fwd);
}

void dsio_encode_seek(struct dsio_op *op, uint32_t off, int whence)
{
	struct msg_ds_seek_req m = { .chunk_id = op->ch.chunk_id, .version = op->ch.version,
				     .nbase = op->ch.nbase, .bases = dsio_bases(&op->ch),
				     .offset = off, .whence = (uint8_t)whence };
	op->type = VDIFS_MSG_DS_SEEK;
	wbuf_reset(&op->head);
	msg_ds_seek_req_put(&op->head, &m);
}

void dsio_encode_copy(struct dsio_op *op, uint64_t chunk_size, const struct vdifs_chunk *src)
{
	struct msg_ds_copy_req m = { .chunk_id = op->ch.chunk_id, .version = op->ch.version,
				     .chunk_size = chunk_size, .src_id = src->chunk_id,
				     .src_version = src->version, .src_extent = src->extent,
				     .nbase = src->nbase, .bases = dsio_bases(src) };
	op->type = VDIFS_MSG_DS_COPY;
	wbuf_reset(&op->head);
	msg_ds_copy_req_put(&op->head, &m);
}

struct dsio_op *dsio_ops_new(size_t n)
{
	struct dsio_op *ops = calloc(n ? n : 1, sizeof(*ops));
	if (ops)
		for (size_t i = 0; i < n; i++)
			wbuf_init(&ops[i].head);
	return ops;
}

void dsio_ops_free(struct dsio_op *ops, size_t n)
{
	if (!ops)
		return;
	for (size_t i = 0; i < n; i++)
		wbuf_free(&ops[i].head);
	free(ops);
}
