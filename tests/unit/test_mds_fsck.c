/*
 * test_mds_fsck: fsck on a real store -- a store populated with files,
 * chunks, hard links, directories, a snapshot, a clone, an abandoned flatten
 * and an orphan is clean; then each corruption made on purpose (wrong layer
 * and chunk refcounts, a dangling dirent, a missing layer, an orphan layer
 * and chunk, a wrong link count, a wrong counter, a layer cycle, replicas
 * that differ from the data servers' reports) is found as its own kind, and
 * --repair leaves a store that checks clean, freeing orphans through the
 * ordinary paths (their replicas queued for deletion).
 */
#include "test_mds_util.h"

#include "flatten.h"
#include "fsck.h"
#include "snapshot.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define ROOT 1

struct world {
	uint32_t vol, ds;
	uint64_t file, dir, snapfile, clone, chunk;
};

/* A volume with a bit of everything fsck must count right. */
static struct world populate(struct tmds *t)
{
	struct world w = {0};
	w.ds = tmds_add_ds(t, "a", 9401, 1ull << 40);
	tmds_heartbeat(t, w.ds, 1ull << 40);
	w.vol = tmds_volume(t, "v", 0, 1);
	w.dir = tmds_mknod(t, w.vol, ROOT, "dir", S_IFDIR | 0755);
	tmds_mknod(t, w.vol, w.dir, "sub", S_IFDIR | 0755);
	w.file = tmds_mknod(t, w.vol, w.dir, "file", S_IFREG | 0644);
	uint32_t ds[VDIFS_MAX_REPLICAS], nrep;
	assert_int_equal(tmds_alloc(t, w.vol, w.file, 0, &w.chunk, ds, &nrep), 0);
	uint64_t c1;
	assert_int_equal(tmds_alloc(t, w.vol, w.file, 1, &c1, ds, &nrep), 0);
	struct msg_link_req lq = {.vol = w.vol, .ino = w.file, .newparent = ROOT, .newname = vb("hard")};
	struct vdifs_attr a;
	assert_int_equal(namespace_link(t->m, &lq, &a), 0);
	struct msg_snap_req sq = {.vol = w.vol, .parent = w.dir, .name = vb("file"), .snap = vb("s1")};
	assert_int_equal(snapshot_create(t->m, &sq, &a), 0);
	w.snapfile = a.ino;
	struct msg_clone_req cq = {.vol = w.vol, .src = w.file, .parent = ROOT, .name = vb("clone")};
	assert_int_equal(snapshot_clone(t->m, &cq, &a), 0);
	w.clone = a.ino;
	uint64_t d;
	assert_int_equal(tmds_alloc(t, w.vol, w.clone, 0, &d, ds, &nrep), 0); /* a delta chunk */
	struct msg_flatten_rep fr;
	assert_int_equal(flatten_begin(t->m, w.vol, w.clone, &fr), 0); /* left abandoned */
	/* An orphan: unlinked while open. */
	uint64_t o = tmds_mknod(t, w.vol, ROOT, "open", S_IFREG | 0644);
	struct session *s = session_new(t->m->sessions);
	assert_non_null(s);
	assert_int_equal(namespace_open(t->m, s, w.vol, o, true, &a), 0);
	assert_int_equal(namespace_unlink(t->m, w.vol, ROOT, vb("open")), 0);
	return w;
}

/* Runs fsck; returns the number found of kind (or of all when kind NULL). */
static uint64_t run(struct tmds *t, bool repair, const char *kind, const struct fsck_ds_report *reps, size_t nreps,
		    uint64_t *repaired)
{
	struct fsck_result r;
	assert_int_equal(fsck_run(t->m, repair, reps, nreps, &r), 0);
	uint64_t found = kind ? 0 : r.found;
	if (repaired)
		*repaired = r.repaired;
	struct wreader rd;
	wreader_init(&rd, r.kinds.data, r.kinds.len);
	for (uint32_t i = 0; i < r.nkinds; i++) {
		struct msg_fsck_count c;
		msg_fsck_count_get(&rd, &c);
		assert_false(rd.err);
		if (kind && vbytes_eq(c.kind, kind))
			found = c.found;
	}
	assert_int_equal(wreader_finish(&rd), 0);
	assert_true(r.count <= r.found);
	fsck_result_free(&r);
	return found;
}

static uint64_t found(struct tmds *t, const char *kind) { return run(t, false, kind, NULL, 0, NULL); }

/* Expects fsck to find total inconsistencies, with the given count of each
 * kind: (kind, count) pairs ending with NULL. */
static void expect(struct tmds *t, uint64_t total, ...)
{
	va_list ap;
	va_start(ap, total);
	for (const char *k; (k = va_arg(ap, const char *));) {
		uint64_t want = va_arg(ap, uint64_t);
		uint64_t got = found(t, k);
		if (got != want)
			fail_msg("fsck found %llu of %s, expected %llu", (unsigned long long)got, k,
				 (unsigned long long)want);
	}
	va_end(ap);
	assert_int_equal(found(t, NULL), total);
}

/* Repairs, expecting everything found to be repaired, then checks clean. */
static void repair_all(struct tmds *t)
{
	uint64_t fixed;
	uint64_t n = run(t, true, NULL, NULL, 0, &fixed);
	assert_true(n > 0);
	assert_int_equal(fixed, n);
	assert_int_equal(found(t, NULL), 0);
}

static struct md_layer get_layer(struct tmds *t, uint64_t id)
{
	struct mdstore_txn *x = mdstore_txn_begin(t->m->store);
	struct md_layer l;
	assert_int_equal(mdstore_get_layer(x, id, &l), 0);
	mdstore_txn_abort(x);
	return l;
}

static void put_layer(struct tmds *t, const struct md_layer *l)
{
	struct mdstore_txn *x = mdstore_txn_begin(t->m->store);
	mdstore_put_layer(x, l);
	assert_int_equal(mdstore_txn_commit(x), 0);
}

static void test_populated_store_is_clean(void **state)
{
	struct tmds *t = *state;
	populate(t);
	assert_int_equal(found(t, NULL), 0);
	uint64_t fixed = 9;
	assert_int_equal(run(t, true, NULL, NULL, 0, &fixed), 0); /* repair of a clean store: nothing */
	assert_int_equal(fixed, 0);
}

static void test_wrong_refcounts(void **state)
{
	struct tmds *t = *state;
	struct world w = populate(t);
	struct md_layer l = get_layer(t, tmds_attr(t, w.vol, w.file).layer);
	l.refcount += 3;
	put_layer(t, &l);
	struct mdstore_txn *x = mdstore_txn_begin(t->m->store);
	struct md_chunk c;
	assert_int_equal(mdstore_get_chunk(x, w.chunk, &c), 0);
	c.refcount = 7;
	mdstore_put_chunk(x, &c);
	assert_int_equal(mdstore_counter_add(x, "inodes", true, w.vol, 5), 0);
	assert_int_equal(mdstore_txn_commit(x), 0);
	expect(t, 3, "layer_refcount", (uint64_t)1, "chunk_refcount", (uint64_t)1, "counter", (uint64_t)1, NULL);
	repair_all(t);
	assert_int_equal(get_layer(t, l.id).refcount, l.refcount - 3);
}

static void test_dangling_dirent_and_link_count(void **state)
{
	struct tmds *t = *state;
	struct world w = populate(t);
	struct mdstore_txn *x = mdstore_txn_begin(t->m->store);
	struct md_dirent d = {.ino = 999999, .mode = S_IFDIR};
	mdstore_put_dirent(x, w.vol, w.dir, "ghost", 5, &d);
	struct md_inode i;
	assert_int_equal(mdstore_get_inode(x, w.vol, w.file, &i), 0);
	i.nlink = 5;
	mdstore_put_inode(x, &i);
	assert_int_equal(mdstore_txn_commit(x), 0);
	expect(t, 2, "dangling_dirent", (uint64_t)1, "link_count", (uint64_t)1, NULL);
	repair_all(t);
	assert_int_equal(tmds_lookup(t, w.vol, w.dir, "ghost"), 0);
	assert_int_equal(tmds_attr(t, w.vol, w.file).nlink, 2); /* dir/file and hard */
}

static void test_missing_layer(void **state)
{
	struct tmds *t = *state;
	struct world w = populate(t);
	/* A file's layer vanishes: its chunk table and chunk are left behind. */
	uint64_t f = tmds_mknod(t, w.vol, w.dir, "plain", S_IFREG | 0644), chunk;
	uint32_t ds[VDIFS_MAX_REPLICAS], nrep;
	assert_int_equal(tmds_alloc(t, w.vol, f, 3, &chunk, ds, &nrep), 0);
	uint64_t gone = tmds_attr(t, w.vol, f).layer;
	struct mdstore_txn *x = mdstore_txn_begin(t->m->store);
	struct mdstore_key k;
	mdstore_key_layer(&k, gone);
	mdstore_txn_del(x, &k);
	assert_int_equal(mdstore_txn_commit(x), 0);
	expect(t, 3, "missing_layer", (uint64_t)1, "stray_chunk_entry", (uint64_t)1, "orphan_chunk", (uint64_t)1, NULL);
	repair_all(t);
	struct vdifs_attr a = tmds_attr(t, w.vol, f);
	assert_int_not_equal(a.layer, 0);
	assert_int_not_equal(a.layer, gone);
	assert_int_equal(a.size, 0);
	/* The orphaned chunk went through the free path. */
	assert_false(tmds_chunk_exists(t, chunk));
	assert_true(tmds_gc_queued(t, w.ds, chunk));
}

static void test_orphan_layer_is_freed(void **state)
{
	struct tmds *t = *state;
	struct world w = populate(t);
	/* A layer with a chunk that nothing uses. */
	struct mdstore_txn *x = mdstore_txn_begin(t->m->store);
	uint64_t lid;
	assert_int_equal(layer_create(x, w.vol, 0, &lid), 0);
	struct md_volume v;
	assert_int_equal(mdstore_get_volume(x, w.vol, &v), 0);
	struct md_chunk c = {.nrep = 1, .ds = {w.ds}};
	assert_int_equal(layer_chunk_add(x, &v, lid, 0, &c), 0);
	assert_int_equal(mdstore_txn_commit(x), 0);
	expect(t, 1, "orphan_layer", (uint64_t)1, NULL);
	repair_all(t);
	assert_false(tmds_chunk_exists(t, c.id));
	assert_true(tmds_gc_queued(t, w.ds, c.id));
}

/* A chunk that lost its table entry but is the base of a live delta is
 * kept: freeing it would break the delta. */
static void test_orphan_base_is_kept(void **state)
{
	struct tmds *t = *state;
	struct world w = populate(t);
	struct mdstore_txn *x = mdstore_txn_begin(t->m->store);
	uint64_t frozen = tmds_attr(t, w.vol, w.snapfile).layer;
	mdstore_put_chunkent(x, frozen, 0, 0); /* w.chunk (a base of the clone's delta) is a HOLE now */
	assert_int_equal(mdstore_txn_commit(x), 0);
	assert_int_equal(found(t, "orphan_chunk"), 1);
	uint64_t fixed;
	uint64_t n = run(t, true, NULL, NULL, 0, &fixed);
	assert_true(fixed < n);
	assert_true(tmds_chunk_exists(t, w.chunk));
	assert_int_equal(found(t, "missing_base"), 0);
}

static void test_cycle_is_found_not_repaired(void **state)
{
	struct tmds *t = *state;
	struct world w = populate(t);
	uint64_t top = tmds_attr(t, w.vol, w.file).layer;
	struct md_layer l = get_layer(t, top);
	uint64_t root = l.parent;
	while (root && get_layer(t, root).parent)
		root = get_layer(t, root).parent;
	assert_int_not_equal(root, 0);
	struct md_layer r = get_layer(t, root);
	r.parent = top; /* the oldest ancestor now descends from the newest */
	put_layer(t, &r);
	assert_true(found(t, "layer_cycle") >= 2);
	uint64_t fixed;
	uint64_t n = run(t, true, NULL, NULL, 0, &fixed);
	assert_true(fixed < n); /* what is left makes fsck exit 1 */
	assert_true(found(t, "layer_cycle") >= 2);
}

static void test_ds_reports(void **state)
{
	struct tmds *t = *state;
	struct world w = populate(t);
	/* The server lacks w.chunk and holds a chunk nobody knows. */
	uint64_t ids[64];
	size_t n = 0;
	struct mdstore_key prefix;
	struct mdstore_iter *it;
	const uint8_t *key, *val;
	size_t klen, vlen;
	mdstore_key_tag(&prefix, 'K');
	assert_int_equal(mdstore_iter_open(t->m->store, &prefix, NULL, &it), 0);
	while (mdstore_iter_next(it, &key, &klen, &val, &vlen) == 1 && n < 63)
		if (mdstore_be64(key + 1) != w.chunk)
			ids[n++] = mdstore_be64(key + 1);
	mdstore_iter_close(it);
	ids[n++] = 1u << 30;
	struct fsck_ds_report rep = {.ds_id = w.ds, .ids = ids, .n = n};
	/* Allocated, never written: no file is expected yet. */
	assert_int_equal(run(t, false, "missing_replica", &rep, 1, NULL), 0);
	struct md_chunk c;
	struct mdstore_txn *x = mdstore_txn_begin(t->m->store);
	assert_int_equal(mdstore_get_chunk(x, w.chunk, &c), 0);
	c.own = c.alloc = 4096; /* a write was committed */
	c.ds[c.nrep++] = tmds_add_ds(t, "b", 9402, 1ull << 40); /* and it has a second copy */
	mdstore_put_chunk(x, &c);
	assert_int_equal(mdstore_txn_commit(x), 0);
	assert_int_equal(run(t, false, "missing_replica", &rep, 1, NULL), 1);
	/* Made after the list was taken: not compared. */
	rep.below = w.chunk;
	assert_int_equal(run(t, false, "missing_replica", &rep, 1, NULL), 0);
	rep.below = 0;
	assert_int_equal(run(t, false, "orphan_replica", &rep, 1, NULL), 1);
	run(t, true, NULL, &rep, 1, NULL);
	assert_true(tmds_gc_queued(t, w.ds, 1u << 30));
	/* Queued now: no longer an orphan; the missing copy left the set (the
	 * chunk's other replica stays, re-replication makes a new one). */
	assert_int_equal(run(t, false, "orphan_replica", &rep, 1, NULL), 0);
	assert_int_equal(run(t, false, "missing_replica", &rep, 1, NULL), 0);
	x = mdstore_txn_begin(t->m->store);
	struct md_chunk after;
	assert_int_equal(mdstore_get_chunk(x, w.chunk, &after), 0);
	mdstore_txn_abort(x);
	assert_int_equal(after.version, c.version + 1);
	for (uint32_t k = 0; k < after.nrep; k++)
		assert_int_not_equal(after.ds[k], w.ds);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_populated_store_is_clean, tmds_setup, tmds_teardown),
		cmocka_unit_test_setup_teardown(test_wrong_refcounts, tmds_setup, tmds_teardown),
		cmocka_unit_test_setup_teardown(test_dangling_dirent_and_link_count, tmds_setup, tmds_teardown),
		cmocka_unit_test_setup_teardown(test_missing_layer, tmds_setup, tmds_teardown),
		cmocka_unit_test_setup_teardown(test_orphan_layer_is_freed, tmds_setup, tmds_teardown),
		cmocka_unit_test_setup_teardown(test_orphan_base_is_kept, tmds_setup, tmds_teardown),
		cmocka_unit_test_setup_teardown(test_cycle_is_found_not_repaired, tmds_setup, tmds_teardown),
		cmocka_unit_test_setup_teardown(test_ds_reports, tmds_setup, tmds_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
