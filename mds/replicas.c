/*
 * replicas: chunk reports, repair of replica sets, health (see replicas.h).
 *
 * A replica set only shrinks here, and always with a version bump in the
 * same LevelDB batch: the copies left out keep the old version, and a data
 * server serves only the version it holds or a newer one (chunkstore.c,
 * version_ok), so a copy that missed a write can never be read by a client
 * holding the new layout, and its server deletes it when it reports.
 */
#include "replicas.h"

#include "layer.h"
#include "log.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

bool replicas_holds(const struct md_chunk *c, uint32_t ds)
{
	for (uint32_t k = 0; k < c->nrep; k++)
		if (c->ds[k] == ds)
			return true;
	return false;
}

/* Keeps the replicas keep() says yes to; returns how many left the set. */
static uint32_t keep_only(struct md_chunk *c, bool (*keep)(const void *arg, uint32_t ds), const void *arg)
{
	uint32_t n = 0, before = c->nrep;
	for (uint32_t k = 0; k < c->nrep; k++)
		if (keep(arg, c->ds[k]))
			c->ds[n++] = c->ds[k];
	c->nrep = n;
	return before - n;
}

static bool not_this(const void *arg, uint32_t ds) { return ds != *(const uint32_t *)arg; }
static bool is_up(const void *arg, uint32_t ds) { return dsreg_is_up(arg, ds); }

void replicas_drop(struct md_chunk *c, uint32_t ds) { keep_only(c, not_this, &ds); }

uint32_t replicas_drop_down(const struct dsreg *reg, struct md_chunk *c) { return keep_only(c, is_up, reg); }

/* ---- chunk lists for fsck ---------------------------------------------------------- */

struct check_list {
	uint32_t ds_id;
	uint32_t epoch;  /* the request it answers (complete) */
	bool building;   /* parts arriving */
	bool complete;
	uint64_t *ids;
	size_t n, cap;
};

struct replicas_checks {
	uint32_t epoch; /* requests so far */
	bool pending;   /* the last request is not answered yet */
	uint64_t asked_ms;
	uint64_t below;
	struct check_list *v;
	size_t n;
};

void replicas_checks_free(struct replicas_checks *c)
{
	if (!c)
		return;
	for (size_t i = 0; i < c->n; i++)
		free(c->v[i].ids);
	free(c->v);
	free(c);
}

uint32_t replicas_check_epoch(const struct mds *m) { return m->checks ? m->checks->epoch : 0; }

int replicas_check_ask(struct mds *m)
{
	if (!m->checks && !(m->checks = calloc(1, sizeof(*m->checks))))
		return -ENOMEM;
	struct mdstore_txn *t = mdstore_txn_begin(m->store);
	if (!t)
		return -ENOMEM;
	uint64_t next;
	int rc = mdstore_counter_get(t, "chunk", false, 0, &next);
	mdstore_txn_abort(t);
	if (rc < 0)
		return rc;
	m->checks->epoch++;
	m->checks->pending = true;
	m->checks->asked_ms = dsreg_now_ms(m->dsreg);
	m->checks->below = next ? next : 1;
	return 0;
}

static struct check_list *check_list_of(struct mds *m, uint32_t ds)
{
	struct replicas_checks *c = m->checks;
	for (size_t i = 0; i < c->n; i++)
		if (c->v[i].ds_id == ds)
			return &c->v[i];
	struct check_list *v = realloc(c->v, (c->n + 1) * sizeof(*v));
	if (!v)
		return NULL;
	c->v = v;
	memset(&v[c->n], 0, sizeof(v[c->n]));
	v[c->n].ds_id = ds;
	return &v[c->n++];
}

/* Keeps a chunk a server listed for the check under way (not one queued
 * for deletion there: it is on its way out). */
static int check_keep(struct mdstore_txn *t, struct check_list *l, uint32_t ds, uint64_t id)
{
	struct mdstore_key k;
	mdstore_key_gc(&k, ds, id);
	int rc = mdstore_txn_exists(t, &k);
	if (rc == 0)
		return 0;
	if (rc != -ENOENT)
		return rc;
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 1024;
		uint64_t *p = realloc(l->ids, cap * sizeof(*p));
		if (!p)
			return -ENOMEM;
		l->ids = p;
		l->cap = cap;
	}
	l->ids[l->n++] = id;
	return 0;
}

static int cmp_id(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

int replicas_check_lists(struct mds *m, struct replicas_check_list **lists, size_t *nlists, uint64_t *below,
			 uint32_t *waiting)
{
	struct replicas_checks *c = m->checks;
	uint32_t up[256];
	size_t nup = dsreg_up_ids(m->dsreg, up, sizeof(up) / sizeof(up[0]));
	*waiting = 0;
	*lists = NULL;
	*nlists = 0;
	if (!c || !c->pending) {
		int rc = replicas_check_ask(m);
		*waiting = (uint32_t)nup;
		return rc < 0 ? rc : -EAGAIN;
	}
	for (size_t i = 0; i < nup; i++) {
		struct check_list *l = NULL;
		for (size_t k = 0; k < c->n && !l; k++)
			if (c->v[k].ds_id == up[i])
				l = &c->v[k];
		if (!l || !l->complete || l->epoch != c->epoch)
			(*waiting)++;
	}
	if (*waiting && dsreg_now_ms(m->dsreg) - c->asked_ms > REPLICAS_CHECK_WAIT_MS) {
		c->pending = false;
		return -ETIMEDOUT;
	}
	if (*waiting)
		return -EAGAIN;
	c->pending = false;
	struct replicas_check_list *out = calloc(nup ? nup : 1, sizeof(*out));
	if (!out)
		return -ENOMEM;
	for (size_t i = 0; i < nup; i++) {
		struct check_list *l = NULL;
		for (size_t k = 0; k < c->n && !l; k++)
			if (c->v[k].ds_id == up[i])
				l = &c->v[k];
		out[i].ds_id = up[i];
		out[i].n = l->n;
		out[i].ids = malloc((l->n ? l->n : 1) * sizeof(uint64_t));
		if (!out[i].ids) {
			replicas_check_lists_free(out, nup);
			return -ENOMEM;
		}
		if (l->n) { /* (a server holding nothing has no array) */
			memcpy(out[i].ids, l->ids, l->n * sizeof(uint64_t));
			qsort(out[i].ids, l->n, sizeof(uint64_t), cmp_id);
		}
	}
	*lists = out;
	*nlists = nup;
	*below = c->below;
	return 0;
}

void replicas_check_lists_free(struct replicas_check_list *lists, size_t n)
{
	for (size_t i = 0; lists && i < n; i++)
		free(lists[i].ids);
	free(lists);
}

/* ---- chunk reports ------------------------------------------------------------------- */

int replicas_report(struct mds *m, const struct msg_ds_report_req *req, struct wbuf *ids, uint32_t *count)
{
	*count = 0;
	if (!dsreg_get(m->dsreg, req->ds_id))
		return -ENOENT;
	if (req->count > REPLICAS_REPORT_MAX || (uint64_t)req->count * VDIFS_CHUNK_VERSION_LEN != req->items.len)
		return -EBADMSG;
	bool check = req->flags & VDIFS_REPORT_CHECK;
	if (check && !m->checks)
		return -EINVAL; /* nobody asked */
	struct check_list *cl = NULL;
	if (m->checks && !(cl = check_list_of(m, req->ds_id)))
		return -ENOMEM;
	if (cl && !cl->building) {
		cl->building = true;
		cl->complete = false;
		cl->n = 0;
	}
	struct mdstore_txn *t = mdstore_txn_begin(m->store);
	if (!t)
		return -ENOMEM;
	struct wreader r;
	uint32_t stale = 0, unknown = 0, corrupt = 0, changed = 0;
	int rc = 0;
	wreader_init(&r, req->items.p, req->items.len);
	for (uint32_t i = 0; i < req->count && rc == 0; i++) {
		struct msg_chunk_version cv;
		struct md_chunk c;
		msg_chunk_version_get(&r, &cv);
		if (check) {
			rc = r.err ? -EBADMSG : check_keep(t, cl, req->ds_id, cv.chunk_id);
			continue;
		}
		rc = mdstore_get_chunk(t, cv.chunk_id, &c);
		if (rc == -ENOENT) {
			rc = 0;
			unknown++;
		} else if (rc < 0) {
			break;
		} else if (!replicas_holds(&c, req->ds_id)) {
			stale++;
		} else if (cv.version == 0) {
			/* Unreadable there: that copy is lost. */
			log_warn("data server %" PRIu32 ": chunk %016" PRIx64 " is corrupt there: dropped from its replicas",
				 req->ds_id, c.id);
			replicas_drop(&c, req->ds_id);
			c.version++;
			mdstore_put_chunk(t, &c);
			corrupt++;
			changed++;
		} else {
			if (cv.version > c.version)
				log_warn("data server %" PRIu32 ": chunk %016" PRIx64 " at version %" PRIu32
					 ", newer than the MDS's %" PRIu32 ": kept",
					 req->ds_id, c.id, cv.version, c.version);
			/* Current, or older only in number (see replicas.h). */
			if (cl)
				rc = check_keep(t, cl, req->ds_id, cv.chunk_id);
			continue;
		}
		wbuf_put_u64(ids, cv.chunk_id);
		(*count)++;
	}
	if (rc == 0 && r.err)
		rc = -EBADMSG;
	if (rc == 0 && ids->err)
		rc = -ENOMEM;
	if (rc == 0 && changed) {
		rc = mdstore_txn_commit(t);
		t = NULL;
	}
	mdstore_txn_abort(t);
	if (rc < 0)
		return rc;
	if (stale || unknown || corrupt)
		log_info("data server %" PRIu32 " reported %" PRIu32 " chunks: deleting %" PRIu32
			 " stale, %" PRIu32 " unknown, %" PRIu32 " corrupt",
			 req->ds_id, req->count, stale, unknown, corrupt);
	if ((req->flags & VDIFS_REPORT_LAST) && cl) {
		cl->building = false;
		cl->complete = true;
		cl->epoch = m->checks->epoch;
	}
	if (check || !(req->flags & VDIFS_REPORT_LAST))
		return 0;
	return dsreg_validated(m->dsreg, req->ds_id);
}

int replicas_corrupt(struct mds *m, uint32_t ds, uint64_t id)
{
	struct mdstore_txn *t = mdstore_txn_begin(m->store);
	struct md_chunk c;
	struct mdstore_key k;
	if (!t)
		return -ENOMEM;
	int rc = mdstore_get_chunk(t, id, &c);
	if (rc < 0 || !replicas_holds(&c, ds)) {
		mdstore_txn_abort(t);
		return rc == -ENOENT ? 0 : rc;
	}
	uint32_t others = 0;
	for (uint32_t i = 0; i < c.nrep; i++)
		others += c.ds[i] != ds && dsreg_is_up(m->dsreg, c.ds[i]);
	if (others == 0) {
		mdstore_txn_abort(t);
		log_error("chunk %016" PRIx64 ": the copy on data server %" PRIu32
			  " has a bad block and no other replica is up: kept", id, ds);
		return 0;
	}
	replicas_drop(&c, ds);
	c.version++;
	mdstore_put_chunk(t, &c);
	mdstore_key_gc(&k, ds, id);
	mdstore_txn_put(t, &k, NULL, 0);
	rc = mdstore_txn_commit(t);
	if (rc == 0)
		log_warn("chunk %016" PRIx64 ": the copy on data server %" PRIu32 " has a bad block: replaced (version %" PRIu32 ")",
			 id, ds, c.version);
	return rc;
}

int replicas_repair(struct mds *m, const struct msg_chunk_repair_req *req, struct wbuf *reply)
{
	struct mdstore_txn *t = mdstore_txn_begin(m->store);
	struct md_inode i;
	struct md_chunk c;
	uint64_t at = 0;
	int rc;
	if (!t)
		return -ENOMEM;
	rc = mdstore_get_inode(t, req->vol, req->ino, &i);
	if (rc == 0 && !S_ISREG(i.mode))
		rc = -EINVAL;
	if (rc == 0) {
		rc = mdstore_get_chunkent(t, i.layer, req->index, &at);
		if (rc == -ENOENT || (rc == 0 && at != req->chunk_id))
			rc = -ESTALE; /* the layout the client has is not the file's now */
	}
	if (rc == 0)
		rc = layer_load_chunk(t, req->chunk_id, &c);
	if (rc < 0)
		goto out;
	if (c.version == req->version) {
		uint32_t before = c.nrep;
		uint32_t ndown = replicas_drop_down(m->dsreg, &c);
		/* Right after an MDS start the servers that are alive have not all
		 * registered again: none is "down" yet. */
		if (ndown == 0 || ndown == before || dsreg_settling(m->dsreg)) {
			rc = -EAGAIN;
			goto out;
		}
		c.version++;
		mdstore_put_chunk(t, &c);
		rc = mdstore_txn_commit(t);
		t = NULL;
		if (rc < 0)
			goto out;
		log_warn("chunk %016" PRIx64 ": %" PRIu32 " replica%s on servers that are down dropped; version %" PRIu32,
			 c.id, ndown, ndown == 1 ? "" : "s", c.version);
		t = mdstore_txn_begin(m->store);
		if (!t) {
			rc = -ENOMEM;
			goto out;
		}
	}
	/* Repaired now or by an earlier call: the set to write to. */
	rc = layer_put_chunk_loc(m, t, reply, req->index, &c, 0);
out:
	mdstore_txn_abort(t);
	return rc;
}

uint32_t replicas_want(struct mdstore_txn *t, struct replicas_want_cache *vc, const struct md_chunk *c)
{
	if (!vc->valid || vc->vol != c->vol) {
		struct md_volume v;
		vc->vol = c->vol;
		vc->replicas = mdstore_get_volume(t, c->vol, &v) == 0 ? v.replicas : c->nrep;
		vc->valid = true;
	}
	return vc->replicas < VDIFS_MAX_REPLICAS ? vc->replicas : VDIFS_MAX_REPLICAS;
}

int replicas_health(struct mds *m, uint64_t *under, uint64_t *lost)
{
	struct mdstore_key prefix;
	struct mdstore_iter *it = NULL;
	struct replicas_want_cache vc = {0, 0, false};
	struct mdstore_txn *t = mdstore_txn_begin(m->store);
	*under = *lost = 0;
	if (!t)
		return -ENOMEM;
	mdstore_key_tag(&prefix, 'K');
	int rc = mdstore_iter_open(m->store, &prefix, NULL, &it);
	const uint8_t *k, *v;
	size_t kl, vl;
	while (rc == 0 && (rc = mdstore_iter_next(it, &k, &kl, &v, &vl)) > 0) {
		struct md_chunk c;
		if (kl != 9 || mdstore_decode_chunk(v, vl, &c) < 0) {
			log_error("corrupt chunk record (key length %zu)", kl);
			rc = -EIO;
			break;
		}
		uint32_t up = 0;
		for (uint32_t r = 0; r < c.nrep; r++)
			up += dsreg_is_up(m->dsreg, c.ds[r]);
		if (up < replicas_want(t, &vc, &c))
			(*under)++;
		if (up == 0)
			(*lost)++;
		rc = 0;
	}
	mdstore_iter_close(it);
	mdstore_txn_abort(t);
	return rc < 0 ? rc : 0;
}
