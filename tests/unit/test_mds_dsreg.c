/*
 * test_mds_dsreg: the data-server registry -- ids by uuid across restarts,
 * liveness on a fake clock, deletion queues handed out in heartbeats and
 * acknowledged, placement (distinct, up, weighted, preferred), listings.
 */
#include "test_mds_util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void test_register_ids_persist(void **state)
{
	struct tmds *t = *state;
	uint32_t a = tmds_add_ds(t, "uuid-a", 9401, 1 << 30);
	uint32_t b = tmds_add_ds(t, "uuid-b", 9402, 1 << 30);
	assert_int_not_equal(a, b);
	assert_int_equal(tmds_add_ds(t, "uuid-a", 9401, 1 << 30), a);

	/* A restarted server at a new address keeps its id and moves. */
	struct msg_ds_register_req q = {.uuid = vb("uuid-b"), .host = vb("10.1.2.3"), .port = 7000, .total = 10,
					.avail = 5};
	uint32_t id;
	assert_int_equal(dsreg_register(t->m->dsreg, &q, &id), 0);
	assert_int_equal(id, b);
	assert_string_equal(dsreg_get(t->m->dsreg, b)->rec.host, "10.1.2.3");

	tmds_reopen(t);
	const struct dsreg_entry *e = dsreg_get(t->m->dsreg, b);
	assert_non_null(e);
	assert_string_equal(e->rec.uuid, "uuid-b");
	assert_string_equal(e->rec.host, "10.1.2.3");
	assert_int_equal(e->rec.port, 7000);
	/* Known but down until it speaks again after the MDS restart. */
	assert_false(dsreg_is_up(t->m->dsreg, b));
	assert_int_equal(tmds_add_ds(t, "uuid-a", 9401, 1 << 30), a);
	assert_true(dsreg_is_up(t->m->dsreg, a));
	uint32_t c = tmds_add_ds(t, "uuid-c", 9403, 1 << 30);
	assert_true(c != a && c != b);

	struct msg_ds_register_req bad = {.uuid = vb(""), .host = vb("h"), .port = 1};
	assert_int_equal(dsreg_register(t->m->dsreg, &bad, &id), -EINVAL);
	bad.uuid = vb("x");
	bad.port = 0;
	assert_int_equal(dsreg_register(t->m->dsreg, &bad, &id), -EINVAL);
}

static void test_liveness(void **state)
{
	struct tmds *t = *state;
	uint32_t a = tmds_add_ds(t, "a", 1, 1 << 30);
	assert_true(dsreg_is_up(t->m->dsreg, a));
	t->now_ms += 4999; /* tmds: ds_timeout 5 s */
	assert_true(dsreg_is_up(t->m->dsreg, a));
	t->now_ms += 2;
	assert_false(dsreg_is_up(t->m->dsreg, a));
	/* A heartbeat from a server marked down is refused: it must register
	 * and report its chunks again before it is used. */
	struct msg_ds_heartbeat_req hb = {.ds_id = a, .total = 246, .avail = 123};
	struct wbuf hids;
	uint32_t hcount;
	wbuf_init(&hids);
	assert_int_equal(dsreg_heartbeat(t->m->dsreg, &hb, &hids, &hcount), -ENOENT);
	wbuf_free(&hids);
	assert_false(dsreg_is_up(t->m->dsreg, a));
	struct dsreg_totals tot;
	dsreg_totals(t->m->dsreg, &tot);
	assert_int_equal(tot.up, 0);
	assert_int_equal(tot.known, 1);
	assert_int_equal(tot.total, 0);
	tmds_heartbeat(t, a, 123);
	assert_true(dsreg_is_up(t->m->dsreg, a));
	dsreg_totals(t->m->dsreg, &tot);
	assert_int_equal(tot.up, 1);
	assert_int_equal(tot.avail, 123);
	assert_int_equal(tot.total, 246);
	dsreg_sweep(t->m->dsreg); /* logs only; must not disturb */
	assert_false(dsreg_is_up(t->m->dsreg, 999));

	struct msg_ds_heartbeat_req q = {.ds_id = 999};
	struct wbuf ids;
	uint32_t count;
	wbuf_init(&ids);
	assert_int_equal(dsreg_heartbeat(t->m->dsreg, &q, &ids, &count), -ENOENT);
	q.ds_id = a;
	q.count = 2;
	q.deleted = vb("12345678"); /* 8 bytes, but 2 ids claimed */
	assert_int_equal(dsreg_heartbeat(t->m->dsreg, &q, &ids, &count), -EBADMSG);
	wbuf_free(&ids);
}

/* After a restart, placement waits until the servers known from before
 * have reported, or until the liveness timeout. */
static void test_settling(void **state)
{
	struct tmds *t = *state;
	assert_false(dsreg_settling(t->m->dsreg)); /* nothing known */
	uint32_t a = tmds_add_ds(t, "a", 1, 1 << 30);
	uint32_t b = tmds_add_ds(t, "b", 2, 1 << 30);
	assert_false(dsreg_settling(t->m->dsreg)); /* all heard from */
	tmds_reopen(t);
	assert_true(dsreg_settling(t->m->dsreg));
	tmds_heartbeat(t, a, 1 << 30);
	assert_true(dsreg_settling(t->m->dsreg));
	tmds_heartbeat(t, b, 1 << 30);
	assert_false(dsreg_settling(t->m->dsreg));
	tmds_reopen(t);
	tmds_heartbeat(t, a, 1 << 30);
	t->now_ms += 4999; /* tmds: ds_timeout 5 s */
	assert_true(dsreg_settling(t->m->dsreg));
	t->now_ms += 1;
	assert_false(dsreg_settling(t->m->dsreg)); /* b is gone for good */
}

static void test_deletion_queue(void **state)
{
	struct tmds *t = *state;
	uint32_t a = tmds_add_ds(t, "a", 1, 1 << 30);
	uint32_t b = tmds_add_ds(t, "b", 2, 1 << 30);
	struct mdstore_txn *x = mdstore_txn_begin(t->m->store);
	struct mdstore_key k;
	for (uint64_t c = 1; c <= 1500; c++) {
		mdstore_key_gc(&k, a, c * 3);
		mdstore_txn_put(x, &k, NULL, 0);
	}
	mdstore_key_gc(&k, b, 42);
	mdstore_txn_put(x, &k, NULL, 0);
	assert_int_equal(mdstore_txn_commit(x), 0);

	struct msg_ds_heartbeat_req q = {.ds_id = a, .total = 10, .avail = 5};
	struct wbuf ids;
	uint32_t count;
	wbuf_init(&ids);
	assert_int_equal(dsreg_heartbeat(t->m->dsreg, &q, &ids, &count), 0);
	assert_int_equal(count, DSREG_DELETE_BATCH);
	assert_int_equal(ids.len, 8 * DSREG_DELETE_BATCH);
	for (uint32_t i = 0; i < count; i++)
		assert_int_equal(le_get64(ids.data + 8 * i), 3 * (i + 1));

	/* Unacknowledged ids come again; acknowledged ones never. */
	struct wbuf again;
	wbuf_init(&again);
	assert_int_equal(dsreg_heartbeat(t->m->dsreg, &q, &again, &count), 0);
	assert_int_equal(count, DSREG_DELETE_BATCH);
	assert_memory_equal(again.data, ids.data, ids.len);
	wbuf_reset(&again);

	q.count = DSREG_DELETE_BATCH;
	q.deleted = (struct vbytes){ids.data, (uint32_t)ids.len};
	assert_int_equal(dsreg_heartbeat(t->m->dsreg, &q, &again, &count), 0);
	assert_int_equal(count, 1500 - DSREG_DELETE_BATCH);
	assert_int_equal(le_get64(again.data), 3 * (DSREG_DELETE_BATCH + 1));
	assert_false(tmds_gc_queued(t, a, 3));
	assert_true(tmds_gc_queued(t, b, 42)); /* another server's queue is untouched */

	wbuf_reset(&ids);
	wbuf_put_raw(&ids, again.data, again.len);
	q.count = count;
	q.deleted = (struct vbytes){ids.data, (uint32_t)ids.len};
	wbuf_reset(&again);
	assert_int_equal(dsreg_heartbeat(t->m->dsreg, &q, &again, &count), 0);
	assert_int_equal(count, 0);
	wbuf_free(&ids);
	wbuf_free(&again);
}

static void test_place(void **state)
{
	struct tmds *t = *state;
	struct dsreg *r = t->m->dsreg;
	uint32_t out[8], n;
	assert_int_equal(dsreg_place(r, 2, NULL, 0, out, &n), -ENOSPC);
	uint32_t big = tmds_add_ds(t, "big", 1, 1000ull << 30);
	uint32_t small = tmds_add_ds(t, "small", 2, 10ull << 30);
	uint32_t full = tmds_add_ds(t, "full", 3, 0);
	uint32_t nearly = tmds_add_ds(t, "nearly", 4, DSREG_DEFAULT_MIN_AVAIL); /* at the reserve */

	/* Distinct servers, never the full ones. */
	for (int i = 0; i < 100; i++) {
		assert_int_equal(dsreg_place(r, 4, NULL, 0, out, &n), 0);
		assert_int_equal(n, 2);
		assert_int_not_equal(out[0], out[1]);
		assert_true(out[0] != full && out[1] != full && out[0] != nearly && out[1] != nearly);
	}
	/* Weighted by free space: the 100x larger server is chosen first
	 * nearly always. */
	int big_first = 0;
	for (int i = 0; i < 1000; i++) {
		assert_int_equal(dsreg_place(r, 1, NULL, 0, out, &n), 0);
		assert_int_equal(n, 1);
		big_first += out[0] == big;
	}
	assert_true(big_first > 950);
	assert_true(big_first < 1000); /* but not always */

	/* Preferred servers come first when up. */
	uint32_t pref[2] = {small, full};
	assert_int_equal(dsreg_place(r, 2, pref, 2, out, &n), 0);
	assert_int_equal(n, 2);
	assert_int_equal(out[0], small);
	assert_int_equal(out[1], big);

	/* Down servers are never chosen. */
	t->now_ms += 6000;
	tmds_heartbeat(t, small, 10ull << 30);
	for (int i = 0; i < 20; i++) {
		assert_int_equal(dsreg_place(r, 2, NULL, 0, out, &n), 0);
		assert_int_equal(n, 1);
		assert_int_equal(out[0], small);
	}
	t->now_ms += 6000;
	assert_int_equal(dsreg_place(r, 2, NULL, 0, out, &n), -ENOSPC);
}

static void test_list(void **state)
{
	struct tmds *t = *state;
	uint32_t a = tmds_add_ds(t, "a", 9401, 1 << 30);
	t->now_ms += 6000;
	uint32_t b = tmds_add_ds(t, "b", 9402, 2ull << 30);
	t->now_ms += 10;
	struct wbuf items;
	uint32_t count;
	wbuf_init(&items);
	dsreg_list(t->m->dsreg, &items, &count);
	assert_int_equal(count, 2);
	struct wreader rd;
	struct msg_ds_info d;
	wreader_init(&rd, items.data, items.len);
	msg_ds_info_get(&rd, &d);
	assert_int_equal(d.ds_id, a);
	assert_true(vbytes_eq(d.uuid, "a"));
	assert_true(vbytes_eq(d.host, "127.0.0.1"));
	assert_int_equal(d.port, 9401);
	assert_int_equal(d.up, 0);
	assert_int_equal(d.idle_ms, 6010);
	msg_ds_info_get(&rd, &d);
	assert_int_equal(d.ds_id, b);
	assert_int_equal(d.up, 1);
	assert_int_equal(d.avail, 2ull << 30);
	assert_int_equal(d.idle_ms, 10);
	assert_int_equal(wreader_finish(&rd), 0);
	wbuf_free(&items);

	struct wbuf rep;
	struct msg_replica r;
	wbuf_init(&rep);
	dsreg_put_replica(t->m->dsreg, &rep, b);
	dsreg_put_replica(t->m->dsreg, &rep, 77);
	wreader_init(&rd, rep.data, rep.len);
	msg_replica_get(&rd, &r);
	assert_int_equal(r.ds_id, b);
	assert_int_equal(r.port, 9402);
	msg_replica_get(&rd, &r);
	assert_int_equal(r.ds_id, 77);
	assert_int_equal(r.host.len, 0);
	assert_int_equal(r.port, 0);
	assert_int_equal(wreader_finish(&rd), 0);
	wbuf_free(&rep);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_register_ids_persist, tmds_setup, tmds_teardown),
		cmocka_unit_test_setup_teardown(test_liveness, tmds_setup, tmds_teardown),
		cmocka_unit_test_setup_teardown(test_settling, tmds_setup, tmds_teardown),
		cmocka_unit_test_setup_teardown(test_deletion_queue, tmds_setup, tmds_teardown),
		cmocka_unit_test_setup_teardown(test_place, tmds_setup, tmds_teardown),
		cmocka_unit_test_setup_teardown(test_list, tmds_setup, tmds_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
