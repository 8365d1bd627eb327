/*
 * test_mds_replicas: the MDS side of failures on a real store -- chunk
 * reports after a registration (stale, unknown and corrupt copies are
 * deleted), CHUNK_REPAIR (replicas on servers marked down leave the set with
 * a version bump), and re-replication (planning, the single-copy chunks
 * first, the chain rule for delta chunks, and taking or refusing a copy).
 */
#include "test_mds_util.h"

#include "recovery.h"
#include "replicas.h"
#include "snapshot.h"

#include <errno.h>
#include <string.h>
#include <sys/stat.h>

#define ROOT 1
#define TIMEOUT_MS 5000 /* tmds's ds_timeout */

static struct md_chunk chunk(struct tmds *t, uint64_t id)
{
	struct md_chunk c;
	struct mdstore_txn *x = mdstore_txn_begin(t->m->store);
	assert_int_equal(mdstore_get_chunk(x, id, &c), 0);
	mdstore_txn_abort(x);
	return c;
}

static bool has(const struct md_chunk *c, uint32_t ds)
{
	for (uint32_t k = 0; k < c->nrep; k++)
		if (c->ds[k] == ds)
			return true;
	return false;
}

/* Only the servers listed stay up (the others miss their heartbeats). */
static void only_up(struct tmds *t, const uint32_t *ds, int n)
{
	t->now_ms += TIMEOUT_MS + 1;
	for (int i = 0; i < n; i++)
		tmds_heartbeat(t, ds[i], 1ull << 40);
}

static int report(struct tmds *t, uint32_t ds, const uint64_t *ids, const uint32_t *vers, uint32_t n, bool last,
		  uint64_t *del, uint32_t *ndel)
{
	struct wbuf items, out;
	wbuf_init(&items);
	wbuf_init(&out);
	for (uint32_t i = 0; i < n; i++)
		msg_chunk_version_put(&items, &(struct msg_chunk_version){.chunk_id = ids[i], .version = vers[i]});
	struct msg_ds_report_req q = {.ds_id = ds, .flags = last ? VDIFS_REPORT_LAST : 0, .count = n,
				      .items = {items.data, (uint32_t)items.len}};
	int rc = replicas_report(t->m, &q, &out, ndel);
	for (uint32_t i = 0; rc == 0 && i < *ndel; i++)
		del[i] = le_get64(out.data + 8 * i);
	wbuf_free(&items);
	wbuf_free(&out);
	return rc;
}

static int repair(struct tmds *t, uint32_t vol, uint64_t ino, uint64_t index, uint64_t id, uint32_t version,
		  struct msg_chunk_loc *loc)
{
	struct wbuf b;
	wbuf_init(&b);
	struct msg_chunk_repair_req q = {.vol = vol, .ino = ino, .index = index, .chunk_id = id, .version = version};
	int rc = replicas_repair(t->m, &q, &b);
	if (rc == 0) {
		struct msg_chunk_loc m;
		assert_int_equal(msg_chunk_loc_decode(b.data, b.len, &m), 0);
		*loc = m;
		loc->replicas = (struct vbytes){NULL, 0}; /* b is freed */
		loc->bases = (struct vbytes){NULL, 0};
	}
	wbuf_free(&b);
	return rc;
}

static void test_report(void **state)
{
	struct tmds *t = *state;
	uint32_t a = tmds_add_ds(t, "a", 1, 1ull << 40), b = tmds_add_ds(t, "b", 2, 1ull << 40);
	uint32_t vol = tmds_volume(t, "v", 0, 2);
	uint64_t f = tmds_mknod(t, vol, ROOT, "f", S_IFREG | 0644);
	uint64_t c1, c2;
	uint32_t ds[8], n;
	assert_int_equal(tmds_alloc(t, vol, f, 0, &c1, ds, &n), 0);
	assert_int_equal(tmds_alloc(t, vol, f, 1, &c2, ds, &n), 0);
	assert_int_equal(n, 2);
	/* a reports c1 current, c2 corrupt, and a chunk the MDS never made. */
	uint64_t ids[3] = {c1, c2, 999}, del[8];
	uint32_t vers[3] = {1, 0, 1}, ndel;
	tmds_rejoin(t, a);
	assert_int_equal(report(t, a, ids, vers, 3, false, del, &ndel), 0);
	assert_int_equal(ndel, 2);
	assert_true((del[0] == c2 && del[1] == 999) || (del[0] == 999 && del[1] == c2));
	struct md_chunk k2 = chunk(t, c2);
	assert_false(has(&k2, a)); /* the corrupt copy left the set */
	assert_int_equal(k2.version, 2);
	struct md_chunk k1 = chunk(t, c1);
	assert_true(has(&k1, a));
	/* Not up before the last part; up after it. */
	struct msg_ds_register_req rq = {.uuid = vb("a"), .host = vb("127.0.0.1"), .port = 1, .total = 2, .avail = 1};
	uint32_t id;
	assert_int_equal(dsreg_register(t->m->dsreg, &rq, &id), 0);
	assert_false(dsreg_is_up(t->m->dsreg, a));
	assert_int_equal(report(t, a, ids, vers, 1, true, del, &ndel), 0);
	assert_int_equal(ndel, 0);
	assert_true(dsreg_is_up(t->m->dsreg, a));
	/* A copy no longer in the set is stale: deleted. */
	uint64_t only2[1] = {c2};
	uint32_t v2[1] = {1};
	assert_int_equal(report(t, a, only2, v2, 1, true, del, &ndel), 0);
	assert_int_equal(ndel, 1);
	assert_int_equal(del[0], c2);
	(void)b;
	/* Malformed: items not count records; an unknown server. */
	struct msg_ds_report_req bad = {.ds_id = a, .count = 2, .items = vb("12345678901")};
	struct wbuf out;
	wbuf_init(&out);
	assert_int_equal(replicas_report(t->m, &bad, &out, &ndel), -EBADMSG);
	bad.ds_id = 77;
	assert_int_equal(replicas_report(t->m, &bad, &out, &ndel), -ENOENT);
	wbuf_free(&out);
}

static void test_repair(void **state)
{
	struct tmds *t = *state;
	uint32_t a = tmds_add_ds(t, "a", 1, 1ull << 40), b = tmds_add_ds(t, "b", 2, 1ull << 40);
	uint32_t vol = tmds_volume(t, "v", 0, 2);
	uint64_t f = tmds_mknod(t, vol, ROOT, "f", S_IFREG | 0644);
	uint64_t c;
	uint32_t ds[8], n;
	struct msg_chunk_loc loc;
	assert_int_equal(tmds_alloc(t, vol, f, 0, &c, ds, &n), 0);
	/* Every replica up: a transient failure, retry as is. */
	assert_int_equal(repair(t, vol, f, 0, c, 1, &loc), -EAGAIN);
	/* Not the file's chunk at that index: the client's layout is stale. */
	assert_int_equal(repair(t, vol, f, 0, c + 1, 1, &loc), -ESTALE);
	assert_int_equal(repair(t, vol, f, 5, c, 1, &loc), -ESTALE);
	assert_int_equal(repair(t, vol, 99, 0, c, 1, &loc), -ENOENT);
	/* b is down: it leaves the set, one version bump. */
	only_up(t, &a, 1);
	assert_int_equal(repair(t, vol, f, 0, c, 1, &loc), 0);
	assert_int_equal(loc.version, 2);
	assert_int_equal(loc.nrep, 1);
	struct md_chunk k = chunk(t, c);
	assert_int_equal(k.nrep, 1);
	assert_int_equal(k.ds[0], a);
	assert_int_equal(k.version, 2);
	/* A second client with the old version gets the repaired set, no bump. */
	assert_int_equal(repair(t, vol, f, 0, c, 1, &loc), 0);
	assert_int_equal(loc.version, 2);
	assert_int_equal(chunk(t, c).version, 2);
	/* None up: nothing to write to yet. */
	t->now_ms += TIMEOUT_MS + 1;
	assert_int_equal(repair(t, vol, f, 0, c, 2, &loc), -EAGAIN);
	/* Right after an MDS restart, a server not registered again yet is not
	 * "down": nothing is dropped while the registry settles. */
	uint64_t c2;
	assert_int_equal(tmds_alloc(t, vol, f, 1, &c2, ds, &n), -ENOSPC); /* (none up) */
	tmds_heartbeat(t, a, 1ull << 40);
	tmds_heartbeat(t, b, 1ull << 40);
	assert_int_equal(tmds_alloc(t, vol, f, 1, &c2, ds, &n), 0);
	assert_int_equal(n, 2);
	tmds_reopen(t);
	tmds_heartbeat(t, a, 1ull << 40);
	assert_true(dsreg_settling(t->m->dsreg));
	assert_int_equal(repair(t, vol, f, 1, c2, 1, &loc), -EAGAIN);
	assert_int_equal(chunk(t, c2).version, 1);
}

/* Runs a heartbeat's worth of recovery for server ds: the tasks it gets. */
static uint32_t tasks_for(struct tmds *t, uint32_t ds, struct msg_repl_task *out, uint32_t max)
{
	struct wbuf b;
	wbuf_init(&b);
	uint32_t n = recovery_take_tasks(t->m->recovery, ds, &b);
	struct wreader r;
	wreader_init(&r, b.data, b.len);
	for (uint32_t i = 0; i < n && i < max; i++) {
		msg_repl_task_get(&r, &out[i]);
		out[i].host = (struct vbytes){NULL, 0};
	}
	assert_false(r.err);
	wbuf_free(&b);
	return n;
}

/* The source of task i of a list whose first na came from a, the rest from c. */
static uint32_t i_src(uint32_t na, uint32_t a, uint32_t c, uint32_t i) { return i < na ? a : c; }

static uint32_t done(struct tmds *t, uint32_t src, const struct msg_repl_task *task, uint32_t status)
{
	struct wbuf b;
	struct msg_repl_commit c;
	wbuf_init(&b);
	struct msg_repl_done d = {.chunk_id = task->chunk_id, .version = task->version, .dst = task->dst,
				  .status = status};
	assert_int_equal(recovery_done(t->m->recovery, src, &d, &b), 0);
	assert_int_equal(msg_repl_commit_decode(b.data, b.len, &c), 0);
	assert_int_equal(c.chunk_id, task->chunk_id);
	wbuf_free(&b);
	return c.version;
}

static void test_recovery(void **state)
{
	struct tmds *t = *state;
	uint32_t a = tmds_add_ds(t, "a", 1, 1ull << 40), b = tmds_add_ds(t, "b", 2, 1ull << 40),
		 c = tmds_add_ds(t, "c", 3, 1ull << 40);
	uint32_t vol = tmds_volume(t, "v", 0, 2);
	uint64_t f = tmds_mknod(t, vol, ROOT, "f", S_IFREG | 0644);
	uint64_t ids[6];
	uint32_t ds[8], n;
	for (int i = 0; i < 6; i++)
		assert_int_equal(tmds_alloc(t, vol, f, (uint64_t)i, &ids[i], ds, &n), 0);
	uint32_t running;
	uint64_t recovered;
	assert_int_equal(recovery_tick(t->m->recovery), 0);
	recovery_counts(t->m->recovery, &running, &recovered);
	assert_int_equal(running, 0); /* nothing short */

	/* b goes down: every chunk b held gets a copy, from its other replica
	 * to the one server left. */
	uint32_t up[2] = {a, c};
	only_up(t, up, 2);
	uint64_t under, lost;
	assert_int_equal(replicas_health(t->m, &under, &lost), 0);
	assert_true(under > 0);
	assert_int_equal(lost, 0);
	assert_int_equal(recovery_tick(t->m->recovery), 0);
	recovery_counts(t->m->recovery, &running, &recovered);
	uint64_t under0 = under;
	assert_true(running >= 1 && running <= 4 && running <= under); /* 2 streams per source, 2 sources */
	struct msg_repl_task tk[16];
	uint32_t na = tasks_for(t, a, tk, 16), nc = tasks_for(t, c, tk + na, 16 - na);
	assert_int_equal(na + nc, running);
	assert_int_equal(tasks_for(t, a, tk + 15, 1), 0); /* handed out once */
	for (uint32_t i = 0; i < na + nc; i++) {
		struct md_chunk k = chunk(t, tk[i].chunk_id);
		uint32_t src = i < na ? a : c;
		assert_true(has(&k, src));
		assert_false(has(&k, tk[i].dst));
		assert_true(tk[i].dst == a || tk[i].dst == c);
		assert_int_equal(tk[i].version, k.version);
	}
	/* The first copy is taken: the set is {source, dst}, a new version. */
	uint32_t v = done(t, i_src(na, a, c, 0), &tk[0], 0);
	struct md_chunk k0 = chunk(t, tk[0].chunk_id);
	assert_int_equal(v, k0.version);
	assert_int_equal(k0.nrep, 2);
	assert_true(has(&k0, tk[0].dst));
	assert_false(has(&k0, b));
	/* Reported twice (the answer was lost): the same answer, no new bump. */
	assert_int_equal(done(t, i_src(na, a, c, 0), &tk[0], 0), v);
	/* A failed copy, and one whose chunk changed meanwhile, are refused. */
	if (na + nc >= 3) {
		assert_int_equal(done(t, i_src(na, a, c, 1), &tk[1], EIO), 0);
		struct md_chunk k2 = chunk(t, tk[2].chunk_id);
		struct mdstore_txn *x = mdstore_txn_begin(t->m->store);
		k2.version++;
		mdstore_put_chunk(x, &k2);
		assert_int_equal(mdstore_txn_commit(x), 0);
		assert_int_equal(done(t, i_src(na, a, c, 2), &tk[2], 0), 0);
	}
	for (uint32_t i = 3; i < na + nc; i++)
		assert_true(done(t, i_src(na, a, c, i), &tk[i], 0) > 0);
	/* Later ticks finish the job: everything back to 2 replicas. */
	for (int round = 0; round < 20; round++) {
		t->now_ms += RECOVERY_SCAN_MS;
		tmds_heartbeat(t, a, 1ull << 40);
		tmds_heartbeat(t, c, 1ull << 40);
		assert_int_equal(recovery_tick(t->m->recovery), 0);
		uint32_t m1 = tasks_for(t, a, tk, 16), m2 = tasks_for(t, c, tk + m1, 16 - m1);
		for (uint32_t i = 0; i < m1 + m2; i++)
			done(t, i < m1 ? a : c, &tk[i], 0);
	}
	assert_int_equal(replicas_health(t->m, &under, &lost), 0);
	assert_int_equal(under, 0);
	recovery_counts(t->m->recovery, &running, &recovered);
	assert_int_equal(running, 0);
	assert_int_equal(recovered, under0); /* each short chunk copied once, refused ones again */
}

/* A delta chunk is copied only to a server holding its base. */
static void test_recovery_delta_chain(void **state)
{
	struct tmds *t = *state;
	uint32_t a = tmds_add_ds(t, "a", 1, 1ull << 40), b = tmds_add_ds(t, "b", 2, 1ull << 40);
	uint32_t vol = tmds_volume(t, "v", 0, 2);
	uint64_t f = tmds_mknod(t, vol, ROOT, "f", S_IFREG | 0644);
	uint64_t base, delta;
	uint32_t ds[8], n;
	assert_int_equal(tmds_alloc(t, vol, f, 0, &base, ds, &n), 0);
	struct vdifs_attr at;
	struct msg_snap_req sq = {.vol = vol, .parent = ROOT, .name = vb("f"), .snap = vb("s")};
	assert_int_equal(snapshot_create(t->m, &sq, &at), 0);
	assert_int_equal(tmds_alloc(t, vol, f, 0, &delta, ds, &n), 0);
	assert_int_not_equal(delta, base);
	assert_int_equal(chunk(t, delta).base, base);
	/* c joins, b goes down: the base is copied to c first; the delta waits
	 * for it, then follows. */
	uint32_t c = tmds_add_ds(t, "c", 3, 1ull << 40);
	uint32_t up[2] = {a, c};
	only_up(t, up, 2);
	assert_int_equal(recovery_tick(t->m->recovery), 0);
	struct msg_repl_task tk[4];
	uint32_t k = tasks_for(t, a, tk, 4);
	assert_int_equal(k, 1);
	assert_int_equal(tk[0].chunk_id, base);
	assert_int_equal(tk[0].dst, c);
	assert_true(done(t, a, &tk[0], 0) > 0);
	t->now_ms += RECOVERY_SCAN_MS;
	tmds_heartbeat(t, a, 1ull << 40);
	tmds_heartbeat(t, c, 1ull << 40);
	assert_int_equal(recovery_tick(t->m->recovery), 0);
	k = tasks_for(t, a, tk, 4);
	assert_int_equal(k, 1);
	assert_int_equal(tk[0].chunk_id, delta);
	assert_int_equal(tk[0].dst, c);
	(void)b;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_report, tmds_setup, tmds_teardown),
		cmocka_unit_test_setup_teardown(test_repair, tmds_setup, tmds_teardown),
		cmocka_unit_test_setup_teardown(test_recovery, tmds_setup, tmds_teardown),
		cmocka_unit_test_setup_teardown(test_recovery_delta_chain, tmds_setup, tmds_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
