/*
 * replicate: chunk copies to other servers (see replicate.h).
 *
 * One job per chunk being copied, a small list: the MDS hands out a couple
 * of tasks per server at a time.  A job is driven by the replies to its own
 * calls (one in flight at a time) and by a timer when the rate limit makes
 * it wait; the rate is shared by all jobs through one "next free" clock.
 * A job whose call is in flight is freed by that call's callback (the
 * callback may run inside peerpool or rpc teardown).
 */
#include "replicate.h"

#include "log.h"
#include "rpc.h"

#include <errno.h>
#include <event2/event.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum job_state {
	J_SENDING,  /* BEGIN and pieces */
	J_SYNCING,  /* DS_SYNC on the destination */
	J_DONE,     /* to report; waiting for the MDS's answer (mirroring if status 0) */
	J_FINISHED, /* answered or abandoned: freed once no call is in flight */
};

struct job {
	struct replicate *r; /* NULL once the module is gone */
	struct job *next;
	uint64_t chunk_id;
	uint32_t version, dst;
	char host[VDIFS_NAME_MAX + 1];
	uint16_t port;
	enum job_state st;
	int status; /* 0, or -errno once failed */
	bool in_flight;
	bool mirrored;
	struct chunkstore_export_info geo;
	uint32_t next_block;
	struct rpc_peer *peer;
	struct event *timer; /* waits for the rate limit */
	uint8_t *entries;    /* one piece's table entries */
	uint8_t *data;       /* one piece's data */
	uint64_t started_ms;
	uint64_t bytes;
};

struct replicate {
	struct replicate_config cfg;
	struct job *jobs;
	unsigned njobs;
	uint64_t next_free_us; /* the rate limit's clock */
	struct replicate_stats stats;
};

static uint64_t now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

struct replicate *replicate_new(const struct replicate_config *cfg)
{
	struct replicate *r = calloc(1, sizeof(*r));
	if (!r)
		return NULL;
	r->cfg = *cfg;
	if (!r->cfg.rate_mb_s)
		r->cfg.rate_mb_s = REPLICATE_DEFAULT_MB_S;
	return r;
}

static void job_free(struct job *j)
{
	if (j->timer)
		event_free(j->timer);
	free(j->entries);
	free(j->data);
	free(j);
}

/* Unlinks j from the list and frees it unless a call of it is in flight
 * (its callback frees it then). */
static void job_finish(struct job *j)
{
	struct replicate *r = j->r;
	if (r) {
		if (j->mirrored)
			handlers_mirror_stop(r->cfg.h, j->chunk_id);
		for (struct job **p = &r->jobs; *p; p = &(*p)->next)
			if (*p == j) {
				*p = j->next;
				r->njobs--;
				break;
			}
	}
	j->mirrored = false;
	j->st = J_FINISHED;
	if (j->timer)
		evtimer_del(j->timer);
	if (!j->in_flight)
		job_free(j);
}

void replicate_free(struct replicate *r)
{
	if (!r)
		return;
	while (r->jobs) {
		struct job *j = r->jobs;
		job_finish(j);
		j->r = NULL;
	}
	free(r);
}

/* The copy failed: stop mirroring and report it (the MDS refuses it and
 * the destination's copy is deleted). */
static void job_fail(struct job *j, int rc, const char *what)
{
	if (j->st == J_DONE || j->st == J_FINISHED)
		return;
	log_warn("chunk %016" PRIx64 ": copy to %s:%u failed: %s: %s", j->chunk_id, j->host, j->port, what,
		 strerror(-rc));
	if (j->mirrored && j->r)
		handlers_mirror_stop(j->r->cfg.h, j->chunk_id);
	j->mirrored = false;
	j->status = rc < 0 ? rc : -EIO;
	j->st = J_DONE;
	if (j->r)
		j->r->stats.copies_failed++;
}

static struct job *job_find(struct replicate *r, uint64_t chunk_id)
{
	for (struct job *j = r->jobs; j; j = j->next)
		if (j->chunk_id == chunk_id)
			return j;
	return NULL;
}

static void send_next(struct job *j);

/* Reply to a DS_RECV or DS_SYNC of the copy. */
static void call_cb(void *arg, int status, const uint8_t *payload, uint32_t len)
{
	struct job *j = arg;
	j->in_flight = false;
	if (j->st == J_FINISHED) {
		job_free(j);
		return;
	}
	if (j->st == J_DONE)
		return; /* failed meanwhile (the mirror) */
	if (status < 0) {
		char why[256] = "";
		struct msg_error_rep e;
		if (payload && msg_error_rep_decode(payload, len, &e) == 0)
			vbytes_to_cstr(e.message, why, sizeof(why));
		else
			snprintf(why, sizeof(why), "%s", j->peer ? rpc_peer_error(j->peer) : "");
		job_fail(j, status, why[0] ? why : "the destination refused");
		return;
	}
	if (j->st == J_SYNCING) {
		j->st = J_DONE;
		log_info("chunk %016" PRIx64 ": copied to %s:%u (%" PRIu64 " bytes in %" PRIu64 " ms): reporting it",
			 j->chunk_id, j->host, j->port, j->bytes, (now_us() / 1000) - j->started_ms);
		return;
	}
	send_next(j);
}

static void timer_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	send_next(arg);
}

static int job_call(struct job *j, uint16_t type, const struct wbuf *b)
{
	if (b->err)
		return -ENOMEM;
	j->in_flight = true;
	int rc = rpc_call_async(j->peer, type, b, NULL, 0, call_cb, j);
	if (rc < 0)
		j->in_flight = false;
	return rc;
}

static bool all_zero(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i])
			return false;
	return true;
}

/* Sends the next piece with something in it, or the final DS_SYNC. */
static void send_next(struct job *j)
{
	struct replicate *r = j->r;
	if (!r || j->st != J_SENDING || j->in_flight)
		return;
	uint32_t per = REPLICATE_PIECE / j->geo.block_size;
	if (per == 0)
		per = 1;
	struct wbuf b;
	wbuf_init(&b);
	while (j->next_block < j->geo.nblocks) {
		uint32_t n = j->geo.nblocks - j->next_block < per ? j->geo.nblocks - j->next_block : per;
		size_t dlen = 0;
		int rc = chunkstore_export(r->cfg.store, j->chunk_id, j->next_block, n, j->entries, j->data,
					   (size_t)per * j->geo.block_size, &dlen);
		if (rc < 0) {
			wbuf_free(&b);
			job_fail(j, rc, "reading the local replica");
			return;
		}
		if (all_zero(j->entries, (size_t)n * CHUNKSTORE_ENTRY_SIZE)) {
			j->next_block += n; /* nothing written there, nor at the destination */
			continue;
		}
		/* The rate limit: each piece books its time on the shared clock. */
		uint64_t now = now_us();
		if (r->next_free_us > now + 1000) {
			uint64_t wait = r->next_free_us - now;
			struct timeval tv = {.tv_sec = (time_t)(wait / 1000000u), .tv_usec = (suseconds_t)(wait % 1000000u)};
			wbuf_free(&b);
			if (!j->timer && !(j->timer = evtimer_new(r->cfg.base, timer_cb, j))) {
				job_fail(j, -ENOMEM, "a timer");
				return;
			}
			evtimer_add(j->timer, &tv);
			return;
		}
		uint64_t cost = (uint64_t)dlen * 1000000u / ((uint64_t)r->cfg.rate_mb_s << 20);
		r->next_free_us = (r->next_free_us > now ? r->next_free_us : now) + cost;
		struct msg_ds_recv_req m = {
			.chunk_id = j->chunk_id, .version = j->version, .first = j->next_block, .count = n,
			.entries = {j->entries, n * CHUNKSTORE_ENTRY_SIZE}, .data = {j->data, (uint32_t)dlen},
		};
		msg_ds_recv_req_put(&b, &m);
		if ((rc = job_call(j, VDIFS_MSG_DS_RECV, &b)) < 0) {
			wbuf_free(&b);
			job_fail(j, rc, "sending a piece");
			return;
		}
		wbuf_free(&b);
		j->next_block += n;
		j->bytes += dlen;
		r->stats.bytes_sent += dlen;
		return;
	}
	/* All sent: make it durable there before it counts. */
	msg_ds_sync_req_put(&b, &(struct msg_ds_sync_req){.chunk_id = j->chunk_id, .version = j->version});
	j->st = J_SYNCING;
	int rc = job_call(j, VDIFS_MSG_DS_SYNC, &b);
	wbuf_free(&b);
	if (rc < 0)
		job_fail(j, rc, "sending DS_SYNC");
}

static void mirror_failed(void *arg, uint64_t chunk_id, const char *why)
{
	struct replicate *r = arg;
	struct job *j = job_find(r, chunk_id);
	if (!j)
		return;
	j->mirrored = false; /* the handlers dropped it */
	if (j->st == J_DONE && j->status == 0) {
		/* Reported, not answered: the copy misses a write now. */
		j->status = -EIO;
		r->stats.copies_failed++;
		return;
	}
	job_fail(j, -EIO, why);
}

/* Starts the copy: version, geometry, mirror, BEGIN. */
static void job_start(struct job *j)
{
	struct replicate *r = j->r;
	int rc = chunkstore_set_version(r->cfg.store, j->chunk_id, j->version);
	if (rc < 0) {
		job_fail(j, rc, rc == -ESTALE ? "this replica is newer than the MDS says" : "the local replica");
		return;
	}
	if ((rc = chunkstore_export_geom(r->cfg.store, j->chunk_id, &j->geo)) < 0) {
		job_fail(j, rc, "the local replica");
		return;
	}
	uint32_t per = REPLICATE_PIECE / j->geo.block_size ? REPLICATE_PIECE / j->geo.block_size : 1;
	j->entries = malloc((size_t)per * CHUNKSTORE_ENTRY_SIZE);
	j->data = malloc((size_t)per * j->geo.block_size);
	j->peer = handlers_peer(r->cfg.h, j->host, j->port);
	if (!j->entries || !j->data || !j->peer) {
		job_fail(j, -ENOMEM, "starting");
		return;
	}
	if ((rc = handlers_mirror_start(r->cfg.h, j->chunk_id, j->host, j->port, mirror_failed, r)) < 0) {
		job_fail(j, rc, "mirroring its writes");
		return;
	}
	j->mirrored = true;
	struct wbuf b;
	wbuf_init(&b);
	msg_ds_recv_req_put(&b, &(struct msg_ds_recv_req){
					.chunk_id = j->chunk_id, .version = j->version, .flags = VDIFS_RECV_BEGIN,
					.chunk_size = j->geo.chunk_size, .extent = j->geo.extent,
					.base_id = j->geo.base.id, .base_version = j->geo.base.version});
	rc = job_call(j, VDIFS_MSG_DS_RECV, &b);
	wbuf_free(&b);
	if (rc < 0)
		job_fail(j, rc, "sending BEGIN");
}

void replicate_add(struct replicate *r, const struct msg_repl_task *t)
{
	if (job_find(r, t->chunk_id) || r->njobs >= REPLICATE_JOBS_MAX || t->host.len == 0 ||
	    t->host.len > VDIFS_NAME_MAX || t->port == 0) {
		log_warn("chunk %016" PRIx64 ": copy to data server %" PRIu32 " not started (busy or bad task)",
			 t->chunk_id, t->dst);
		return;
	}
	struct job *j = calloc(1, sizeof(*j));
	if (!j) {
		log_error("chunk %016" PRIx64 ": out of memory for a copy", t->chunk_id);
		return;
	}
	j->r = r;
	j->chunk_id = t->chunk_id;
	j->version = t->version;
	j->dst = t->dst;
	vbytes_to_cstr(t->host, j->host, sizeof(j->host));
	j->port = t->port;
	j->st = J_SENDING;
	j->started_ms = now_us() / 1000;
	j->next = r->jobs;
	r->jobs = j;
	r->njobs++;
	log_info("chunk %016" PRIx64 ": copying it to data server %" PRIu32 " at %s:%u", j->chunk_id, j->dst, j->host,
		 j->port);
	job_start(j);
}

uint32_t replicate_take_done(struct replicate *r, struct wbuf *done)
{
	uint32_t n = 0;
	for (struct job *j = r->jobs; j; j = j->next) {
		if (j->st != J_DONE)
			continue;
		msg_repl_done_put(done, &(struct msg_repl_done){.chunk_id = j->chunk_id, .version = j->version,
								.dst = j->dst, .status = (uint32_t)-j->status});
		n++;
	}
	return n;
}

/* Fire-and-forget call to the destination (DS_SET_VERSION, DS_DELETE);
 * a failure is logged: the MDS's reports catch up with it. */
static void after_cb(void *arg, int status, const uint8_t *payload, uint32_t len)
{
	(void)payload;
	(void)len;
	uint64_t *id = arg;
	if (status < 0)
		log_warn("chunk %016" PRIx64 ": could not settle the copy on its destination: %s", *id,
			 strerror(-status));
	free(id);
}

static void tell_dst(struct job *j, uint16_t type, const struct wbuf *b)
{
	uint64_t *id = malloc(sizeof(*id));
	if (!id || b->err || rpc_call_async(j->peer, type, b, NULL, 0, after_cb, id) < 0) {
		log_warn("chunk %016" PRIx64 ": could not tell %s:%u about the copy", j->chunk_id, j->host, j->port);
		free(id);
		return;
	}
	*id = j->chunk_id;
}

void replicate_commit(struct replicate *r, const struct msg_repl_commit *c)
{
	struct job *j = job_find(r, c->chunk_id);
	if (!j || j->dst != c->dst || j->st != J_DONE)
		return;
	struct wbuf b;
	wbuf_init(&b);
	if (c->version && j->status == 0) {
		int rc = chunkstore_set_version(r->cfg.store, j->chunk_id, c->version);
		if (rc < 0)
			log_warn("chunk %016" PRIx64 ": cannot record version %" PRIu32 " here: %s", j->chunk_id,
				 c->version, strerror(-rc));
		/* After every mirrored write, on the same connection. */
		msg_ds_set_version_req_put(&b, &(struct msg_ds_set_version_req){.chunk_id = j->chunk_id,
										 .version = c->version});
		tell_dst(j, VDIFS_MSG_DS_SET_VERSION, &b);
		r->stats.copies_done++;
	} else {
		if (j->status == 0)
			r->stats.copies_failed++;
		if (j->peer) {
			msg_ds_chunk_req_put(&b, &(struct msg_ds_chunk_req){.chunk_id = j->chunk_id});
			tell_dst(j, VDIFS_MSG_DS_DELETE, &b);
		}
	}
	wbuf_free(&b);
	job_finish(j);
}

void replicate_stats(const struct replicate *r, struct replicate_stats *out) { *out = r->stats; }
