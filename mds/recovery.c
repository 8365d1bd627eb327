/*
 * recovery: re-replication planning and bookkeeping (see recovery.h).
 *
 * A cluster holds up to millions of chunks and loses a server rarely, so a
 * scan of the whole chunk table once a second while something is under
 * replicated (and a few hundred tasks in a flat array) is simple and cheap
 * enough: LevelDB iterates a hundred thousand small records in tens of
 * milliseconds.
 */
#include "recovery.h"

#include "log.h"
#include "replicas.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#define CANDIDATES_MAX 1024 /* planned per scan, per priority */

struct task {
	uint64_t chunk_id;
	uint32_t version, src, dst;
	uint64_t started_ms;
	bool handed;
};

struct recovery {
	struct mds *m;
	unsigned streams;
	struct task t[RECOVERY_TASKS_MAX];
	unsigned n;
	uint64_t last_scan_ms;
	bool scanned;
	bool planned;        /* the last scan planned copies */
	uint32_t up;         /* servers up at the last tick */
	uint64_t changed_ms; /* when that number last changed */
	uint64_t recovered;
};

struct recovery *recovery_new(struct mds *m, unsigned streams)
{
	struct recovery *r = calloc(1, sizeof(*r));
	if (!r)
		return NULL;
	r->m = m;
	r->streams = streams ? streams : RECOVERY_DEFAULT_STREAMS;
	return r;
}

void recovery_free(struct recovery *r) { free(r); }

void recovery_counts(const struct recovery *r, uint32_t *running, uint64_t *recovered)
{
	*running = r->n;
	*recovered = r->recovered;
}

static int find_task(const struct recovery *r, uint64_t chunk_id)
{
	for (unsigned i = 0; i < r->n; i++)
		if (r->t[i].chunk_id == chunk_id)
			return (int)i;
	return -1;
}

static unsigned src_load(const struct recovery *r, uint32_t ds)
{
	unsigned n = 0;
	for (unsigned i = 0; i < r->n; i++)
		n += r->t[i].src == ds;
	return n;
}

static void remove_task(struct recovery *r, unsigned i) { r->t[i] = r->t[--r->n]; }

/* Queues chunk for deletion on server ds (a partial copy left there). */
static int queue_delete(struct mds *m, uint32_t ds, uint64_t chunk)
{
	struct mdstore_txn *t = mdstore_txn_begin(m->store);
	struct mdstore_key k;
	if (!t)
		return -ENOMEM;
	mdstore_key_gc(&k, ds, chunk);
	mdstore_txn_put(t, &k, NULL, 0);
	return mdstore_txn_commit(t);
}

static void expire(struct recovery *r, uint64_t now)
{
	for (unsigned i = 0; i < r->n;) {
		struct task *t = &r->t[i];
		bool late = now - t->started_ms > RECOVERY_TASK_TIMEOUT_MS;
		if (!late && dsreg_is_up(r->m->dsreg, t->src)) {
			i++;
			continue;
		}
		log_warn("chunk %016" PRIx64 ": copy from data server %" PRIu32 " to %" PRIu32 " %s: planned again",
			 t->chunk_id, t->src, t->dst, late ? "not reported in time" : "lost its source");
		if (queue_delete(r->m, t->dst, t->chunk_id) < 0)
			log_error("chunk %016" PRIx64 ": cannot queue the partial copy on %" PRIu32 " for deletion",
				  t->chunk_id, t->dst);
		remove_task(r, i);
	}
}

/* Whether server ds holds every chunk of c's chain (a delta's bases). */
static int holds_chain(struct mdstore_txn *t, const struct md_chunk *c, uint32_t ds, bool *ok)
{
	uint64_t b = c->base;
	*ok = true;
	for (int depth = 0; b && depth < VDIFS_DEPTH_MAX; depth++) {
		struct md_chunk base;
		int rc = mdstore_get_chunk(t, b, &base);
		if (rc == -ENOENT)
			break; /* freed with nothing above it but us: nothing to hold */
		if (rc < 0)
			return rc;
		if (!replicas_holds(&base, ds)) {
			*ok = false;
			return 0;
		}
		b = base.base;
	}
	return 0;
}

/* Plans a copy of chunk id if it still needs one and a source and a
 * destination can be found now. */
static int plan(struct recovery *r, uint64_t id, uint64_t now)
{
	struct dsreg *reg = r->m->dsreg;
	struct mdstore_txn *t = mdstore_txn_begin(r->m->store);
	struct md_chunk c;
	int rc;
	if (!t)
		return -ENOMEM;
	if ((rc = mdstore_get_chunk(t, id, &c)) < 0)
		goto out;
	uint32_t src = 0;
	for (uint32_t k = 0; k < c.nrep && !src; k++)
		if (dsreg_is_up(reg, c.ds[k]) && src_load(r, c.ds[k]) < r->streams)
			src = c.ds[k];
	if (!src)
		goto out;
	/* The destination: up, not holding it, with room, holding its chain,
	 * no deletion of it pending there; the roomiest. */
	uint32_t ids[256];
	size_t nids = dsreg_up_ids(reg, ids, sizeof(ids) / sizeof(ids[0]));
	uint32_t dst = 0;
	uint64_t best = 0;
	for (size_t i = 0; i < nids; i++) {
		const struct dsreg_entry *e = dsreg_get(reg, ids[i]);
		struct mdstore_key k;
		bool chain_ok;
		if (replicas_holds(&c, ids[i]) || !e || e->rec.avail < c.chunk_size || e->rec.avail <= best)
			continue;
		mdstore_key_gc(&k, ids[i], id);
		if ((rc = mdstore_txn_exists(t, &k)) != -ENOENT) {
			if (rc < 0)
				goto out;
			continue;
		}
		if ((rc = holds_chain(t, &c, ids[i], &chain_ok)) < 0)
			goto out;
		if (!chain_ok)
			continue;
		dst = ids[i];
		best = e->rec.avail;
	}
	rc = 0;
	if (!dst)
		goto out;
	r->t[r->n++] = (struct task){.chunk_id = id, .version = c.version, .src = src, .dst = dst, .started_ms = now};
	log_info("chunk %016" PRIx64 ": %" PRIu32 " replica%s up: copying it from data server %" PRIu32 " to %" PRIu32,
		 id, c.nrep, c.nrep == 1 ? "" : "s", src, dst);
out:
	mdstore_txn_abort(t);
	return rc;
}

int recovery_tick(struct recovery *r)
{
	struct dsreg *reg = r->m->dsreg;
	uint64_t now = dsreg_now_ms(reg);
	expire(r, now);
	struct dsreg_totals tot;
	dsreg_totals(reg, &tot);
	if (tot.up != r->up) {
		r->up = tot.up;
		r->changed_ms = now;
	}
	/* Scan every second while copies are under way or servers came or
	 * went lately; else twice a minute (chunks short because the cluster
	 * is too small, say, find no destination anyway). */
	bool busy = r->n > 0 || r->planned || now - r->changed_ms < RECOVERY_BUSY_MS;
	uint64_t period = busy ? RECOVERY_SCAN_MS : RECOVERY_IDLE_SCAN_MS;
	/* Right after a start, servers that are alive have not all reported:
	 * their chunks must not look lost. */
	if (dsreg_settling(reg) || (r->scanned && now - r->last_scan_ms < period) || r->n >= RECOVERY_TASKS_MAX)
		return 0;
	r->scanned = true;
	r->last_scan_ms = now;

	static uint64_t prio[CANDIDATES_MAX], rest[CANDIDATES_MAX];
	size_t nprio = 0, nrest = 0;
	struct mdstore_key prefix;
	struct mdstore_iter *it = NULL;
	struct replicas_want_cache vc = {0, 0, false};
	struct mdstore_txn *t = mdstore_txn_begin(r->m->store);
	int rc;
	if (!t)
		return -ENOMEM;
	mdstore_key_tag(&prefix, 'K');
	rc = mdstore_iter_open(r->m->store, &prefix, NULL, &it);
	const uint8_t *k, *v;
	size_t kl, vl;
	while (rc == 0 && (rc = mdstore_iter_next(it, &k, &kl, &v, &vl)) > 0) {
		struct md_chunk c;
		rc = 0;
		if (kl != 9 || mdstore_decode_chunk(v, vl, &c) < 0) {
			log_error("corrupt chunk record (key length %zu)", kl);
			rc = -EIO;
			break;
		}
		c.id = mdstore_be64(k + 1);
		uint32_t up = 0;
		for (uint32_t i = 0; i < c.nrep; i++)
			up += dsreg_is_up(reg, c.ds[i]);
		if (up == 0 || up >= replicas_want(t, &vc, &c))
			continue;
		if (find_task(r, c.id) >= 0)
			continue;
		if (up == 1 && nprio < CANDIDATES_MAX)
			prio[nprio++] = c.id;
		else if (up > 1 && nrest < CANDIDATES_MAX)
			rest[nrest++] = c.id;
	}
	mdstore_iter_close(it);
	mdstore_txn_abort(t);
	if (rc < 0) {
		log_error("re-replication scan: %s", strerror(-rc));
		return rc;
	}
	unsigned before = r->n;
	for (size_t i = 0; i < nprio + nrest && r->n < RECOVERY_TASKS_MAX; i++)
		if ((rc = plan(r, i < nprio ? prio[i] : rest[i - nprio], now)) < 0)
			log_error("re-replication: planning a copy: %s", strerror(-rc));
	r->planned = r->n > before;
	return 0;
}

uint32_t recovery_take_tasks(struct recovery *r, uint32_t ds, struct wbuf *tasks)
{
	uint32_t n = 0;
	for (unsigned i = 0; i < r->n; i++) {
		struct task *t = &r->t[i];
		if (t->src != ds || t->handed)
			continue;
		const struct dsreg_entry *e = dsreg_get(r->m->dsreg, t->dst);
		if (!e)
			continue;
		msg_repl_task_put(tasks, &(struct msg_repl_task){
						 .chunk_id = t->chunk_id, .version = t->version, .dst = t->dst,
						 .host = {(const uint8_t *)e->rec.host, (uint32_t)strlen(e->rec.host)},
						 .port = e->rec.port});
		t->handed = true;
		n++;
	}
	return n;
}

int recovery_done(struct recovery *r, uint32_t src, const struct msg_repl_done *d, struct wbuf *commits)
{
	struct msg_repl_commit answer = {.chunk_id = d->chunk_id, .dst = d->dst, .version = 0};
	struct mdstore_txn *t = NULL;
	struct md_chunk c;
	int rc = 0;
	int i = find_task(r, d->chunk_id);
	if (i < 0 || r->t[i].src != src || r->t[i].dst != d->dst || r->t[i].version != d->version) {
		/* Maybe taken already, and our answer lost with a connection: say
		 * so again rather than have the copy deleted. */
		if (!(t = mdstore_txn_begin(r->m->store)))
			return -ENOMEM;
		rc = mdstore_get_chunk(t, d->chunk_id, &c);
		if (rc < 0 && rc != -ENOENT)
			goto out;
		if (rc == 0 && replicas_holds(&c, d->dst) && d->status == 0)
			answer.version = c.version;
		else
			log_warn("chunk %016" PRIx64 ": copy from data server %" PRIu32 " to %" PRIu32
				 " was not asked for (now)", d->chunk_id, src, d->dst);
		rc = 0;
		goto answer;
	}
	remove_task(r, (unsigned)i);
	if (d->status) {
		log_warn("chunk %016" PRIx64 ": copy from data server %" PRIu32 " to %" PRIu32 " failed: %s", d->chunk_id,
			 src, d->dst, strerror((int)d->status));
		goto answer;
	}
	if (!(t = mdstore_txn_begin(r->m->store)))
		return -ENOMEM;
	rc = mdstore_get_chunk(t, d->chunk_id, &c);
	if (rc == -ENOENT) {
		rc = 0;
		goto answer; /* deleted meanwhile */
	}
	if (rc < 0)
		goto out;
	if (c.version != d->version || !replicas_holds(&c, src) || replicas_holds(&c, d->dst) || !dsreg_is_up(r->m->dsreg, d->dst)) {
		log_warn("chunk %016" PRIx64 ": copy to data server %" PRIu32 " not taken: the chunk changed meanwhile",
			 d->chunk_id, d->dst);
		goto answer;
	}
	replicas_drop_down(r->m->dsreg, &c);
	if (c.nrep >= VDIFS_MAX_REPLICAS)
		goto answer;
	c.ds[c.nrep++] = d->dst;
	c.version++;
	mdstore_put_chunk(t, &c);
	rc = mdstore_txn_commit(t);
	t = NULL;
	if (rc < 0)
		goto out;
	r->recovered++;
	answer.version = c.version;
	log_info("chunk %016" PRIx64 ": copy on data server %" PRIu32 " taken: %" PRIu32 " replicas, version %" PRIu32,
		 c.id, d->dst, c.nrep, c.version);
answer:
	msg_repl_commit_put(commits, &answer);
out:
	mdstore_txn_abort(t);
	return rc;
}
