/*
 * dsreg: data-server registry (see dsreg.h).
 *
 * A cluster has a handful to a few hundred data servers, each heartbeating
 * about once a second, and placement runs once per new chunk: a sorted array
 * with linear scans is enough and keeps the code obvious.  Only registration
 * and deletion acknowledgements touch LevelDB; a heartbeat with nothing
 * deleted is memory only.
 */
#include "dsreg.h"

#include "log.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

struct dsreg {
	struct mdstore *st;
	uint32_t heartbeat_ms, timeout_ms;
	struct dsreg_entry *ents; /* sorted by id */
	size_t n, cap;
	bool *was_up; /* parallel to ents, for dsreg_sweep */
	uint64_t (*now_ms)(void *arg);
	void *clock_arg;
	uint64_t start_ms; /* registry clock at open */
	uint64_t min_avail; /* placement skips servers with less free space */
	uint64_t rng;
};

static uint64_t monotonic_ms(void *arg)
{
	(void)arg;
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* xorshift64*: placement needs spread, not cryptographic quality. */
static uint64_t rng_next(struct dsreg *r)
{
	uint64_t x = r->rng;
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	r->rng = x;
	return x * 0x2545F4914F6CDD1Dull;
}

void dsreg_seed(struct dsreg *r, uint64_t seed) { r->rng = seed ? seed : 0x9E3779B97F4A7C15ull; }

void dsreg_set_clock(struct dsreg *r, uint64_t (*now_ms)(void *arg), void *arg)
{
	r->now_ms = now_ms;
	r->clock_arg = arg;
	r->start_ms = now_ms(arg);
}

uint32_t dsreg_heartbeat_ms(const struct dsreg *r) { return r->heartbeat_ms; }

static uint64_t now(const struct dsreg *r) { return r->now_ms(r->clock_arg); }

static struct dsreg_entry *find(const struct dsreg *r, uint32_t id)
{
	size_t lo = 0, hi = r->n;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (r->ents[mid].rec.id == id)
			return &r->ents[mid];
		if (r->ents[mid].rec.id < id)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

const struct dsreg_entry *dsreg_get(const struct dsreg *r, uint32_t id) { return find(r, id); }

static bool entry_up(const struct dsreg *r, const struct dsreg_entry *e)
{
	return e->seen && e->validated && now(r) - e->last_seen_ms <= r->timeout_ms;
}

bool dsreg_is_up(const struct dsreg *r, uint32_t id)
{
	const struct dsreg_entry *e = find(r, id);
	return e && entry_up(r, e);
}

uint32_t dsreg_lease_ms(const struct dsreg *r)
{
	/* Two heartbeats of margin for clock rates and the reply's trip. */
	if (r->timeout_ms > 3 * r->heartbeat_ms)
		return r->timeout_ms - 2 * r->heartbeat_ms;
	return r->timeout_ms / 2;
}

int dsreg_validated(struct dsreg *r, uint32_t id)
{
	struct dsreg_entry *e = find(r, id);
	if (!e || !e->seen)
		return -ENOENT;
	e->validated = true;
	e->last_seen_ms = now(r);
	return 0;
}

uint64_t dsreg_now_ms(const struct dsreg *r) { return now(r); }

/* Room for new chunks: more than the reserve, so that the chunks being
 * written there can still grow (space is reported once a heartbeat). */
static bool has_room(const struct dsreg *r, const struct dsreg_entry *e) { return e->rec.avail > r->min_avail; }

void dsreg_set_min_avail(struct dsreg *r, uint64_t bytes) { r->min_avail = bytes; }

size_t dsreg_up_ids(const struct dsreg *r, uint32_t *out, size_t cap)
{
	size_t n = 0;
	for (size_t i = 0; i < r->n && n < cap; i++)
		if (entry_up(r, &r->ents[i]))
			out[n++] = r->ents[i].rec.id;
	return n;
}

bool dsreg_settling(const struct dsreg *r)
{
	if (now(r) - r->start_ms >= r->timeout_ms)
		return false;
	for (size_t i = 0; i < r->n; i++)
		if (!r->ents[i].validated)
			return true;
	return false;
}

/* Inserts rec keeping ids sorted.  0 or -ENOMEM. */
static int insert(struct dsreg *r, const struct md_ds *rec)
{
	if (r->n == r->cap) {
		size_t cap = r->cap ? r->cap * 2 : 16;
		struct dsreg_entry *ents = realloc(r->ents, cap * sizeof(*ents));
		if (!ents)
			return -ENOMEM;
		r->ents = ents;
		bool *was_up = realloc(r->was_up, cap * sizeof(*was_up));
		if (!was_up)
			return -ENOMEM;
		r->was_up = was_up;
		r->cap = cap;
	}
	size_t pos = r->n;
	while (pos > 0 && r->ents[pos - 1].rec.id > rec->id)
		pos--;
	memmove(&r->ents[pos + 1], &r->ents[pos], (r->n - pos) * sizeof(*r->ents));
	memmove(&r->was_up[pos + 1], &r->was_up[pos], (r->n - pos) * sizeof(*r->was_up));
	memset(&r->ents[pos], 0, sizeof(r->ents[pos]));
	r->ents[pos].rec = *rec;
	r->was_up[pos] = false;
	r->n++;
	return 0;
}

int dsreg_open(struct mdstore *st, uint32_t heartbeat_ms, uint32_t timeout_ms, struct dsreg **out)
{
	struct mdstore_iter *it = NULL;
	struct mdstore_key prefix;
	int rc;
	struct dsreg *r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	r->st = st;
	r->heartbeat_ms = heartbeat_ms ? heartbeat_ms : DSREG_DEFAULT_HEARTBEAT_MS;
	r->timeout_ms = timeout_ms ? timeout_ms : DSREG_DEFAULT_TIMEOUT_MS;
	r->now_ms = monotonic_ms;
	r->start_ms = monotonic_ms(NULL);
	r->min_avail = DSREG_DEFAULT_MIN_AVAIL;
	dsreg_seed(r, (uint64_t)time(NULL) << 20 ^ (uint64_t)getpid());

	mdstore_key_tag(&prefix, 'S');
	rc = mdstore_iter_open(st, &prefix, NULL, &it);
	if (rc < 0)
		goto fail;
	const uint8_t *k, *v;
	size_t kl, vl;
	while ((rc = mdstore_iter_next(it, &k, &kl, &v, &vl)) > 0) {
		struct md_ds rec;
		if (kl != 5 || mdstore_decode_ds(v, vl, &rec) < 0) {
			log_error("corrupt data-server record (key length %zu)", kl);
			rc = -EIO;
			goto fail;
		}
		rec.id = mdstore_be32(k + 1);
		rc = insert(r, &rec);
		if (rc < 0)
			goto fail;
	}
	if (rc < 0)
		goto fail;
	mdstore_iter_close(it);
	*out = r;
	return 0;
fail:
	mdstore_iter_close(it);
	dsreg_free(r);
	return rc;
}

void dsreg_free(struct dsreg *r)
{
	if (!r)
		return;
	free(r->ents);
	free(r->was_up);
	free(r);
}

static void set_space(struct md_ds *rec, uint64_t total, uint64_t avail, uint64_t used, uint64_t nchunks)
{
	rec->total = total;
	rec->avail = avail > total ? total : avail;
	rec->used = used;
	rec->nchunks = nchunks;
}

int dsreg_register(struct dsreg *r, const struct msg_ds_register_req *req, uint32_t *ds_id)
{
	struct md_ds rec;
	struct mdstore_txn *t = NULL;
	struct dsreg_entry *e = NULL;
	int rc;

	memset(&rec, 0, sizeof(rec));
	if (req->uuid.len == 0 || req->host.len == 0 || req->port == 0 ||
	    memchr(req->uuid.p, '\0', req->uuid.len) || memchr(req->host.p, '\0', req->host.len))
		return -EINVAL;
	/* NAME fields are bounded by VDIFS_NAME_MAX, which the record fields hold. */
	vbytes_to_cstr(req->uuid, rec.uuid, sizeof(rec.uuid));
	vbytes_to_cstr(req->host, rec.host, sizeof(rec.host));
	rec.port = req->port;
	set_space(&rec, req->total, req->avail, req->used, req->nchunks);

	for (size_t i = 0; i < r->n; i++) {
		if (strcmp(r->ents[i].rec.uuid, rec.uuid) == 0) {
			e = &r->ents[i];
			break;
		}
	}
	t = mdstore_txn_begin(r->st);
	if (!t)
		return -ENOMEM;
	if (e) {
		rec.id = e->rec.id;
	} else {
		uint64_t id;
		rc = mdstore_counter_next(t, "ds", false, 0, &id);
		if (rc < 0)
			goto fail;
		if (id > UINT32_MAX) {
			rc = -ENOSPC;
			goto fail;
		}
		rec.id = (uint32_t)id;
	}
	mdstore_put_ds(t, &rec);
	rc = mdstore_txn_commit(t);
	t = NULL;
	if (rc < 0)
		goto fail;
	if (!e) {
		rc = insert(r, &rec);
		if (rc < 0)
			goto fail;
		e = find(r, rec.id);
		log_info("data server %u registered: uuid %s at %s:%u", rec.id, rec.uuid, rec.host, rec.port);
	} else {
		if (strcmp(e->rec.host, rec.host) != 0 || e->rec.port != rec.port)
			log_info("data server %u (uuid %s) moved from %s:%u to %s:%u", rec.id, rec.uuid,
				 e->rec.host, e->rec.port, rec.host, rec.port);
		e->rec = rec;
	}
	e->seen = true;
	e->validated = false; /* until its chunk report is in (dsreg_validated) */
	e->last_seen_ms = now(r);
	*ds_id = rec.id;
	return 0;
fail:
	mdstore_txn_abort(t);
	return rc;
}

int dsreg_heartbeat(struct dsreg *r, const struct msg_ds_heartbeat_req *req, struct wbuf *ids,
		    uint32_t *count)
{
	struct mdstore_txn *t = NULL;
	struct mdstore_iter *it = NULL;
	struct mdstore_key k;
	int rc;

	*count = 0;
	struct dsreg_entry *e = find(r, req->ds_id);
	/* Unknown, or marked down meanwhile (its chunks may have moved on): it
	 * must register and report its chunks again before it serves. */
	if (!e || !entry_up(r, e))
		return -ENOENT;
	if ((uint64_t)req->count * 8 != req->deleted.len)
		return -EBADMSG;
	set_space(&e->rec, req->total, req->avail, req->used, req->nchunks);
	e->seen = true;
	e->last_seen_ms = now(r);

	if (req->count) {
		t = mdstore_txn_begin(r->st);
		if (!t)
			return -ENOMEM;
		for (uint32_t i = 0; i < req->count; i++) {
			mdstore_key_gc(&k, req->ds_id, le_get64(req->deleted.p + 8 * (size_t)i));
			mdstore_txn_del(t, &k);
		}
		rc = mdstore_txn_commit(t);
		t = NULL;
		if (rc < 0)
			goto out;
	}

	mdstore_key_gc_prefix(&k, req->ds_id);
	rc = mdstore_iter_open(r->st, &k, NULL, &it);
	if (rc < 0)
		goto out;
	const uint8_t *key, *v;
	size_t kl, vl;
	while (*count < DSREG_DELETE_BATCH && (rc = mdstore_iter_next(it, &key, &kl, &v, &vl)) > 0) {
		if (kl != 13) {
			log_error("corrupt deletion-queue key for data server %u (length %zu)", req->ds_id, kl);
			rc = -EIO;
			goto out;
		}
		wbuf_put_u64(ids, mdstore_be64(key + 5));
		(*count)++;
	}
	if (rc > 0)
		rc = 0;
	if (rc == 0 && ids->err)
		rc = -ENOMEM;
out:
	mdstore_iter_close(it);
	return rc;
}

int dsreg_place(struct dsreg *r, uint32_t want, const uint32_t *prefer, uint32_t nprefer, uint32_t *out,
		uint32_t *nout)
{
	uint32_t n = 0;
	*nout = 0;
	if (want > VDIFS_MAX_REPLICAS)
		want = VDIFS_MAX_REPLICAS;

	/* Preferred servers first (a delta chunk goes where its base is). */
	for (uint32_t i = 0; i < nprefer && n < want; i++) {
		const struct dsreg_entry *e = find(r, prefer[i]);
		bool dup = false;
		for (uint32_t j = 0; j < n; j++)
			dup |= out[j] == prefer[i];
		if (e && !dup && entry_up(r, e) && has_room(r, e))
			out[n++] = prefer[i];
	}

	while (n < want) {
		/* Weighted draw without replacement over the remaining candidates:
		 * weight = available MiB + 1, so a nearly full server is still
		 * chosen rarely rather than never, while an empty disk is skipped. */
		uint64_t sum = 0;
		for (size_t i = 0; i < r->n; i++) {
			const struct dsreg_entry *e = &r->ents[i];
			bool taken = false;
			for (uint32_t j = 0; j < n; j++)
				taken |= out[j] == e->rec.id;
			if (!taken && entry_up(r, e) && has_room(r, e))
				sum += (e->rec.avail >> 20) + 1;
		}
		if (sum == 0)
			break;
		uint64_t pick = rng_next(r) % sum;
		for (size_t i = 0; i < r->n; i++) {
			const struct dsreg_entry *e = &r->ents[i];
			bool taken = false;
			for (uint32_t j = 0; j < n; j++)
				taken |= out[j] == e->rec.id;
			if (taken || !entry_up(r, e) || !has_room(r, e))
				continue;
			uint64_t w = (e->rec.avail >> 20) + 1;
			if (pick < w) {
				out[n++] = e->rec.id;
				break;
			}
			pick -= w;
		}
	}
	if (n == 0)
		return -ENOSPC;
	*nout = n;
	return 0;
}

void dsreg_put_replica(const struct dsreg *r, struct wbuf *b, uint32_t id)
{
	const struct dsreg_entry *e = find(r, id);
	struct msg_replica rep = {.ds_id = id};
	if (e) {
		rep.host.p = (const uint8_t *)e->rec.host;
		rep.host.len = (uint32_t)strlen(e->rec.host);
		rep.port = e->rec.port;
	}
	msg_replica_put(b, &rep);
}

void dsreg_list(const struct dsreg *r, struct wbuf *items, uint32_t *count)
{
	uint64_t t = now(r);
	*count = 0;
	for (size_t i = 0; i < r->n; i++) {
		const struct dsreg_entry *e = &r->ents[i];
		struct msg_ds_info d = {
			.ds_id = e->rec.id,
			.uuid = {(const uint8_t *)e->rec.uuid, (uint32_t)strlen(e->rec.uuid)},
			.host = {(const uint8_t *)e->rec.host, (uint32_t)strlen(e->rec.host)},
			.port = e->rec.port,
			.up = entry_up(r, e),
			.total = e->rec.total,
			.avail = e->rec.avail,
			.used = e->rec.used,
			.nchunks = e->rec.nchunks,
			.idle_ms = e->seen ? (int64_t)(t - e->last_seen_ms) : -1,
		};
		msg_ds_info_put(items, &d);
		(*count)++;
	}
}

void dsreg_totals(const struct dsreg *r, struct dsreg_totals *t)
{
	memset(t, 0, sizeof(*t));
	for (size_t i = 0; i < r->n; i++) {
		const struct dsreg_entry *e = &r->ents[i];
		t->known++;
		if (!entry_up(r, e))
			continue;
		t->up++;
		t->total += e->rec.total;
		t->avail += e->rec.avail;
		t->used += e->rec.used;
	}
}

void dsreg_sweep(struct dsreg *r)
{
	uint64_t t = now(r);
	for (size_t i = 0; i < r->n; i++) {
		const struct dsreg_entry *e = &r->ents[i];
		bool up = entry_up(r, e);
		if (up == r->was_up[i])
			continue;
		if (up)
			log_info("data server %u (%s:%u) is up", e->rec.id, e->rec.host, e->rec.port);
		else
			log_warn("data server %u (%s:%u) is down: no heartbeat for %llu ms", e->rec.id,
				 e->rec.host, e->rec.port, (unsigned long long)(t - e->last_seen_ms));
		r->was_up[i] = up;
	}
}
