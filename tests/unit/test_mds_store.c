/*
 * test_mds_store: the MDS's LevelDB layer -- key order, transactions (reads
 * see staged writes, abort drops them, commit persists them), a large
 * transaction against a reference array, counters, record round trips, and
 * corrupt records read back as -EIO.
 */
#include "test_mds_util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static void test_keys_sort_numerically(void **state)
{
	(void)state;
	const uint64_t inos[] = {1, 2, 255, 256, 65536, 1ull << 32, (1ull << 63) + 5};
	struct mdstore_key a, b;
	for (size_t i = 0; i + 1 < sizeof(inos) / sizeof(inos[0]); i++) {
		mdstore_key_inode(&a, 7, inos[i]);
		mdstore_key_inode(&b, 7, inos[i + 1]);
		assert_int_equal(a.len, 13);
		assert_true(memcmp(a.b, b.b, a.len) < 0);
	}
	/* Volume before inode number: everything of volume 1 sorts before volume 2. */
	mdstore_key_inode(&a, 1, UINT64_MAX);
	mdstore_key_inode(&b, 2, 0);
	assert_true(memcmp(a.b, b.b, a.len) < 0);
	mdstore_key_chunkent(&a, 3, 9);
	assert_int_equal(a.b[0], 'C');
	assert_int_equal(mdstore_be64(a.b + 1), 3);
	assert_int_equal(mdstore_be64(a.b + 9), 9);
	mdstore_key_dirent(&a, 1, 2, "name", 4);
	assert_int_equal(a.len, 1 + 4 + 8 + 4);
	assert_memory_equal(a.b + 13, "name", 4);
}

static void test_txn_overlay_commit_abort(void **state)
{
	struct tmds *t = *state;
	struct mdstore_key k1, k2;
	uint8_t *v;
	size_t n;
	mdstore_key_counter(&k1, "test-a", false, 0);
	mdstore_key_counter(&k2, "test-b", false, 0);

	struct mdstore_txn *x = mdstore_txn_begin(t->m->store);
	assert_int_equal(mdstore_txn_get(x, &k1, &v, &n), -ENOENT);
	mdstore_txn_put(x, &k1, "one", 3);
	assert_int_equal(mdstore_txn_get(x, &k1, &v, &n), 0);
	assert_int_equal(n, 3);
	assert_memory_equal(v, "one", 3);
	free(v);
	mdstore_txn_put(x, &k1, "uno!", 4); /* overwrite in the overlay */
	mdstore_txn_put(x, &k2, "two", 3);
	mdstore_txn_del(x, &k2);
	assert_int_equal(mdstore_txn_get(x, &k2, &v, &n), -ENOENT);
	mdstore_txn_abort(x);

	/* Aborted: nothing reached the database. */
	x = mdstore_txn_begin(t->m->store);
	assert_int_equal(mdstore_txn_exists(x, &k1), -ENOENT);
	mdstore_txn_put(x, &k1, "uno!", 4);
	mdstore_txn_put(x, &k2, "", 0);
	assert_int_equal(mdstore_txn_commit(x), 0);

	tmds_reopen(t);
	x = mdstore_txn_begin(t->m->store);
	assert_int_equal(mdstore_txn_get(x, &k1, &v, &n), 0);
	assert_int_equal(n, 4);
	assert_memory_equal(v, "uno!", 4);
	free(v);
	assert_int_equal(mdstore_txn_get(x, &k2, &v, &n), 0);
	assert_int_equal(n, 0);
	assert_null(v);
	mdstore_txn_del(x, &k1);
	assert_int_equal(mdstore_txn_exists(x, &k1), -ENOENT);
	assert_int_equal(mdstore_txn_commit(x), 0);
	x = mdstore_txn_begin(t->m->store);
	assert_int_equal(mdstore_txn_exists(x, &k1), -ENOENT);
	assert_int_equal(mdstore_txn_exists(x, &k2), 0);
	mdstore_txn_abort(x);
}

/* Many staged keys (hash table growth) against a plain array. */
static void test_txn_large_against_model(void **state)
{
	struct tmds *t = *state;
	enum { N = 20000 };
	uint32_t *model = calloc(N, sizeof(*model)); /* 0: absent, else value */
	struct mdstore_txn *x = mdstore_txn_begin(t->m->store);
	struct mdstore_key k;
	srandom(7);
	for (int step = 0; step < 3 * N; step++) {
		uint32_t i = (uint32_t)random() % N;
		mdstore_key_chunkent(&k, 99, i);
		if (random() % 4 == 0) {
			mdstore_txn_del(x, &k);
			model[i] = 0;
		} else {
			uint32_t val = (uint32_t)step + 1;
			uint8_t b[4];
			le_put32(b, val);
			mdstore_txn_put(x, &k, b, 4);
			model[i] = val;
		}
	}
	for (uint32_t i = 0; i < N; i++) {
		uint8_t *v;
		size_t n;
		mdstore_key_chunkent(&k, 99, i);
		int rc = mdstore_txn_get(x, &k, &v, &n);
		if (model[i] == 0) {
			assert_int_equal(rc, -ENOENT);
		} else {
			assert_int_equal(rc, 0);
			assert_int_equal(le_get32(v), model[i]);
			free(v);
		}
	}
	assert_int_equal(mdstore_txn_commit(x), 0);

	/* The iterator sees exactly the committed keys, in order. */
	struct mdstore_key prefix;
	struct mdstore_iter *it;
	const uint8_t *key, *val;
	size_t kl, vl;
	uint64_t last = 0, seen = 0, want = 0;
	for (uint32_t i = 0; i < N; i++)
		want += model[i] != 0;
	mdstore_key_chunkent_prefix(&prefix, 99);
	assert_int_equal(mdstore_iter_open(t->m->store, &prefix, NULL, &it), 0);
	int rc;
	while ((rc = mdstore_iter_next(it, &key, &kl, &val, &vl)) > 0) {
		uint64_t idx = mdstore_be64(key + 9);
		assert_true(seen == 0 || idx > last);
		assert_true(idx < N);
		assert_int_equal(vl, 4);
		assert_int_equal(le_get32(val), model[idx]);
		last = idx;
		seen++;
	}
	assert_int_equal(rc, 0);
	assert_int_equal(seen, want);
	mdstore_iter_close(it);
	free(model);
}

static void test_counters(void **state)
{
	struct tmds *t = *state;
	struct mdstore_txn *x = mdstore_txn_begin(t->m->store);
	uint64_t id, v;
	assert_int_equal(mdstore_counter_next(x, "tst", true, 4, &id), 0);
	assert_int_equal(id, 1);
	assert_int_equal(mdstore_counter_next(x, "tst", true, 4, &id), 0);
	assert_int_equal(id, 2);
	assert_int_equal(mdstore_counter_next(x, "tst", true, 5, &id), 0);
	assert_int_equal(id, 1); /* per-volume counters are independent */
	assert_int_equal(mdstore_counter_add(x, "cnt", false, 0, 5), 0);
	assert_int_equal(mdstore_counter_add(x, "cnt", false, 0, -2), 0);
	assert_int_equal(mdstore_counter_get(x, "cnt", false, 0, &v), 0);
	assert_int_equal(v, 3);
	assert_int_equal(mdstore_counter_add(x, "cnt", false, 0, -10), 0);
	assert_int_equal(mdstore_counter_get(x, "cnt", false, 0, &v), 0);
	assert_int_equal(v, 0); /* clamps */
	assert_int_equal(mdstore_txn_commit(x), 0);
	tmds_reopen(t);
	x = mdstore_txn_begin(t->m->store);
	assert_int_equal(mdstore_counter_next(x, "tst", true, 4, &id), 0);
	assert_int_equal(id, 3);
	mdstore_txn_abort(x);
}

static void test_record_round_trips(void **state)
{
	struct tmds *t = *state;
	struct mdstore_txn *x = mdstore_txn_begin(t->m->store);
	struct md_inode *in = calloc(1, sizeof(*in)), *out = calloc(1, sizeof(*out));
	in->vol = 3;
	in->ino = 77;
	in->mode = S_IFLNK | 0777;
	in->nlink = 1;
	in->uid = 1;
	in->gid = 2;
	in->rdev = 3;
	in->size = 11;
	in->blocks = 8;
	in->atime = (struct md_time){-5, 999999999};
	in->mtime = (struct md_time){1700000000, 1};
	in->ctime = (struct md_time){1700000001, 2};
	in->layer = 0;
	in->parent = 0;
	strcpy(in->target, "../a/target");
	in->target_len = 11;
	mdstore_put_inode(x, in);

	struct md_chunk c = {.id = 5, .version = 3, .chunk_size = 1 << 20, .base = 4, .alloc = 8192,
			     .refcount = 2, .vol = 3, .nrep = 3, .ds = {7, 8, 9}};
	mdstore_put_chunk(x, &c);
	struct md_ds d = {.id = 2, .uuid = "uuid-2", .host = "10.0.0.2", .port = 9401, .total = 100, .avail = 50,
			  .used = 40, .nchunks = 6};
	mdstore_put_ds(x, &d);
	struct md_layer l = {.id = 9, .parent = 4, .flags = MD_LAYER_FROZEN, .refcount = 3, .vol = 3};
	mdstore_put_layer(x, &l);
	assert_int_equal(mdstore_txn_commit(x), 0);
	tmds_reopen(t);

	x = mdstore_txn_begin(t->m->store);
	assert_int_equal(mdstore_get_inode(x, 3, 77, out), 0);
	assert_int_equal(out->mode, in->mode);
	assert_int_equal(out->rdev, 3);
	assert_int_equal(out->size, 11);
	assert_int_equal(out->blocks, 8);
	assert_int_equal(out->atime.s, -5);
	assert_int_equal(out->atime.ns, 999999999);
	assert_int_equal(out->ctime.ns, 2);
	assert_int_equal(out->target_len, 11);
	assert_string_equal(out->target, "../a/target");

	struct md_chunk c2;
	assert_int_equal(mdstore_get_chunk(x, 5, &c2), 0);
	assert_int_equal(c2.version, 3);
	assert_int_equal(c2.base, 4);
	assert_int_equal(c2.alloc, 8192);
	assert_int_equal(c2.refcount, 2);
	assert_int_equal(c2.nrep, 3);
	assert_int_equal(c2.ds[2], 9);
	struct md_ds d2;
	assert_int_equal(mdstore_get_ds(x, 2, &d2), 0);
	assert_string_equal(d2.uuid, "uuid-2");
	assert_string_equal(d2.host, "10.0.0.2");
	assert_int_equal(d2.port, 9401);
	assert_int_equal(d2.nchunks, 6);
	struct md_layer l2;
	assert_int_equal(mdstore_get_layer(x, 9, &l2), 0);
	assert_int_equal(l2.parent, 4);
	assert_int_equal(l2.flags, MD_LAYER_FROZEN);
	assert_int_equal(l2.refcount, 3);
	assert_int_equal(mdstore_get_layer(x, 10, &l2), -ENOENT);
	mdstore_txn_abort(x);
	free(in);
	free(out);
}

/* Each corruption of a stored record is -EIO, never a crash or garbage. */
static void test_corrupt_records(void **state)
{
	struct tmds *t = *state;
	struct mdstore_txn *x = mdstore_txn_begin(t->m->store);
	struct mdstore_key k;
	struct md_chunk c = {.id = 5, .version = 1, .chunk_size = 1 << 20, .refcount = 1, .nrep = 2, .ds = {1, 2}};
	struct wbuf b;
	mdstore_put_chunk(x, &c);
	assert_int_equal(mdstore_txn_commit(x), 0);

	/* Read the good encoding back raw to damage it in several ways. */
	uint8_t *good;
	size_t n;
	x = mdstore_txn_begin(t->m->store);
	mdstore_key_chunk(&k, 5);
	assert_int_equal(mdstore_txn_get(x, &k, &good, &n), 0);
	mdstore_txn_abort(x);

	struct md_chunk out;
	for (size_t cut = 0; cut < n; cut++) { /* every truncation */
		x = mdstore_txn_begin(t->m->store);
		mdstore_txn_put(x, &k, good, cut);
		assert_int_equal(mdstore_get_chunk(x, 5, &out), -EIO);
		mdstore_txn_abort(x);
	}
	uint8_t *bad = malloc(n + 1);
	memcpy(bad, good, n);
	bad[n] = 0; /* a trailing byte */
	x = mdstore_txn_begin(t->m->store);
	mdstore_txn_put(x, &k, bad, n + 1);
	assert_int_equal(mdstore_get_chunk(x, 5, &out), -EIO);
	bad[0] = 3; /* unknown format */
	mdstore_txn_put(x, &k, bad, n);
	assert_int_equal(mdstore_get_chunk(x, 5, &out), -EIO);
	memcpy(bad, good, n);
	bad[1 + 4 + 8 + 8 + 8 + 4 + 4] = 200; /* nrep over the maximum */
	mdstore_txn_put(x, &k, bad, n);
	assert_int_equal(mdstore_get_chunk(x, 5, &out), -EIO);
	mdstore_txn_abort(x);
	free(bad);
	free(good);

	/* A corrupt inode on disk: getattr and lookup both report EIO. */
	uint32_t vol = tmds_volume(t, "v", 0, 0);
	uint64_t ino = tmds_mknod(t, vol, 1, "f", S_IFREG | 0644);
	x = mdstore_txn_begin(t->m->store);
	mdstore_key_inode(&k, vol, ino);
	mdstore_txn_put(x, &k, "\x01garbage", 8);
	assert_int_equal(mdstore_txn_commit(x), 0);
	tmds_reopen(t);
	struct vdifs_attr a;
	assert_int_equal(namespace_getattr(t->m, vol, ino, &a), -EIO);
	assert_int_equal(namespace_lookup(t->m, vol, 1, vb("f"), &a), -EIO);
	struct msg_readdir_req rq = {.vol = vol, .ino = 1, .max = 10};
	uint32_t count;
	bool eof;
	wbuf_init(&b);
	assert_int_equal(namespace_readdir(t->m, &rq, &b, &count, &eof), -EIO);
	wbuf_free(&b);

	/* A directory entry of the wrong size. */
	x = mdstore_txn_begin(t->m->store);
	mdstore_key_dirent(&k, vol, 1, "g", 1);
	mdstore_txn_put(x, &k, "short", 5);
	assert_int_equal(mdstore_txn_commit(x), 0);
	assert_int_equal(namespace_lookup(t->m, vol, 1, vb("g"), &a), -EIO);

	/* A corrupt volume record. */
	x = mdstore_txn_begin(t->m->store);
	mdstore_key_volume(&k, vol);
	mdstore_txn_put(x, &k, "\x01", 1);
	assert_int_equal(mdstore_txn_commit(x), 0);
	assert_int_equal(namespace_getattr(t->m, vol, 1, &a), -EIO);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_keys_sort_numerically),
		cmocka_unit_test_setup_teardown(test_txn_overlay_commit_abort, tmds_setup, tmds_teardown),
		cmocka_unit_test_setup_teardown(test_txn_large_against_model, tmds_setup, tmds_teardown),
		cmocka_unit_test_setup_teardown(test_counters, tmds_setup, tmds_teardown),
		cmocka_unit_test_setup_teardown(test_record_round_trips, tmds_setup, tmds_teardown),
		cmocka_unit_test_setup_teardown(test_corrupt_records, tmds_setup, tmds_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
