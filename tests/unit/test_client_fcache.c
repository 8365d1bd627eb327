/*
 * test_client_fcache: the client's shared chunk block cache.  When a chunk
 * counts as shared, fills and hits, a failed fill (its waiters see it, the
 * block is gone), eviction by least recent use that spares pinned and
 * filling blocks, and many threads reading overlapping blocks at once: each
 * block filled exactly once while it stays cached, every reader seeing the
 * bytes its filler wrote.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "client_fcache.h"

static void test_shared_after_second_file(void **state)
{
	(void)state;
	struct fcache *fc = fcache_new(1 << 20);
	assert_non_null(fc);
	assert_false(fcache_shared(fc, 7, 100));
	assert_false(fcache_shared(fc, 7, 100)); /* the same file again */
	assert_true(fcache_shared(fc, 7, 200));
	assert_true(fcache_shared(fc, 7, 100)); /* shared now, for every file */
	assert_false(fcache_shared(fc, 8, 100));
	fcache_free(fc);
}

static void test_fill_then_hit(void **state)
{
	(void)state;
	struct fcache *fc = fcache_new(4 * FCACHE_BLOCK);
	bool fill;
	struct fcache_blk *b = fcache_get(fc, 5, 3, &fill);
	assert_true(fill);
	memset(fcache_data(b), 0xab, FCACHE_BLOCK);
	fcache_filled(fc, b, true);
	fcache_put(fc, b);
	b = fcache_get(fc, 5, 3, &fill);
	assert_false(fill);
	assert_true(fcache_wait(fc, b));
	assert_int_equal(fcache_data(b)[FCACHE_BLOCK - 1], 0xab);
	fcache_put(fc, b);
	/* Another block of the chunk, and the same block of another chunk, are others. */
	b = fcache_get(fc, 5, 4, &fill);
	assert_true(fill);
	fcache_filled(fc, b, true);
	fcache_put(fc, b);
	b = fcache_get(fc, 6, 3, &fill);
	assert_true(fill);
	fcache_filled(fc, b, true);
	fcache_put(fc, b);
	struct fcache_stats s = fcache_stats(fc);
	assert_int_equal(s.fills, 3);
	assert_int_equal(s.hits, 1);
	assert_int_equal(s.bytes, 3 * FCACHE_BLOCK);
	fcache_free(fc);
}

static void test_failed_fill(void **state)
{
	(void)state;
	struct fcache *fc = fcache_new(4 * FCACHE_BLOCK);
	bool fill, fill2;
	struct fcache_blk *a = fcache_get(fc, 1, 0, &fill);
	struct fcache_blk *w = fcache_get(fc, 1, 0, &fill2); /* a waiter */
	assert_true(fill);
	assert_false(fill2);
	assert_ptr_equal(a, w);
	fcache_filled(fc, a, false);
	assert_false(fcache_wait(fc, w));
	fcache_put(fc, a);
	fcache_put(fc, w); /* the last pin frees it */
	assert_int_equal(fcache_stats(fc).bytes, 0);
	/* The next reader fills it afresh. */
	a = fcache_get(fc, 1, 0, &fill);
	assert_true(fill);
	fcache_filled(fc, a, true);
	fcache_put(fc, a);
	fcache_free(fc);
}

static void test_eviction_lru_spares_pinned(void **state)
{
	(void)state;
	struct fcache *fc = fcache_new(3 * FCACHE_BLOCK);
	bool fill;
	struct fcache_blk *pinned = fcache_get(fc, 1, 0, &fill);
	fcache_filled(fc, pinned, true); /* kept pinned */
	for (uint32_t i = 1; i <= 2; i++) {
		struct fcache_blk *b = fcache_get(fc, 1, i, &fill);
		fcache_filled(fc, b, true);
		fcache_put(fc, b);
	}
	/* Touch block 1: block 2 is now the least recently used unpinned one. */
	struct fcache_blk *b = fcache_get(fc, 1, 1, &fill);
	assert_false(fill);
	fcache_put(fc, b);
	b = fcache_get(fc, 1, 3, &fill); /* over capacity: evicts block 2 */
	fcache_filled(fc, b, true);
	fcache_put(fc, b);
	assert_int_equal(fcache_stats(fc).evictions, 1);
	assert_int_equal(fcache_stats(fc).bytes, 3 * FCACHE_BLOCK);
	b = fcache_get(fc, 1, 2, &fill);
	assert_true(fill); /* it was evicted */
	fcache_filled(fc, b, true);
	fcache_put(fc, b);
	b = fcache_get(fc, 1, 0, &fill);
	assert_false(fill); /* pinned: never evicted */
	fcache_put(fc, b);
	fcache_put(fc, pinned);
	/* All pinned: the cache grows past capacity rather than drop them. */
	struct fcache_blk *p[5];
	for (uint32_t i = 0; i < 5; i++)
		p[i] = fcache_get(fc, 2, i, &fill); /* filling: pinned */
	assert_true(fcache_stats(fc).bytes >= 5 * FCACHE_BLOCK);
	for (uint32_t i = 0; i < 5; i++) {
		fcache_filled(fc, p[i], true);
		fcache_put(fc, p[i]);
	}
	assert_true(fcache_stats(fc).bytes <= 3 * FCACHE_BLOCK);
	fcache_free(fc);
}

/* ---- threads --------------------------------------------------------------------------- */

enum { NTHREADS = 8, NBLOCKS = 64, ROUNDS = 400 };

struct race {
	struct fcache *fc;
	unsigned seed;
	int wrong;
	unsigned fills;
};

static uint8_t block_byte(uint32_t bi) { return (uint8_t)(bi * 37u + 11u); }

/* Reads runs of blocks as client_read_shared does: get all, fill ours,
 * wait for the others, check, put. */
static void *race_main(void *arg)
{
	struct race *r = arg;
	for (int round = 0; round < ROUNDS; round++) {
		uint32_t b0 = (uint32_t)rand_r(&r->seed) % NBLOCKS, n = 1 + (uint32_t)rand_r(&r->seed) % 8;
		struct fcache_blk *b[8];
		bool fill[8];
		if (b0 + n > NBLOCKS)
			n = NBLOCKS - b0;
		for (uint32_t k = 0; k < n; k++)
			b[k] = fcache_get(r->fc, 42, b0 + k, &fill[k]);
		for (uint32_t k = 0; k < n; k++) {
			if (!fill[k])
				continue;
			usleep(50); /* a data-server read */
			memset(fcache_data(b[k]), block_byte(b0 + k), FCACHE_BLOCK);
			fcache_filled(r->fc, b[k], true);
			r->fills++;
		}
		for (uint32_t k = 0; k < n; k++) {
			if (!fcache_wait(r->fc, b[k]) || fcache_data(b[k])[0] != block_byte(b0 + k) ||
			    fcache_data(b[k])[FCACHE_BLOCK - 1] != block_byte(b0 + k))
				r->wrong++;
			fcache_put(r->fc, b[k]);
		}
	}
	return NULL;
}

static void test_threads(void **state)
{
	(void)state;
	/* Room for every block: each is filled once.  Then a small cache:
	 * refills, still never a wrong byte. */
	for (int small = 0; small < 2; small++) {
		struct fcache *fc = fcache_new((small ? 12 : NBLOCKS) * (uint64_t)FCACHE_BLOCK);
		struct race r[NTHREADS];
		pthread_t t[NTHREADS];
		unsigned fills = 0;
		for (int i = 0; i < NTHREADS; i++) {
			r[i] = (struct race){.fc = fc, .seed = (unsigned)i + 1};
			assert_int_equal(pthread_create(&t[i], NULL, race_main, &r[i]), 0);
		}
		for (int i = 0; i < NTHREADS; i++) {
			pthread_join(t[i], NULL);
			assert_int_equal(r[i].wrong, 0);
			fills += r[i].fills;
		}
		assert_int_equal(fills, fcache_stats(fc).fills);
		if (!small)
			assert_true(fills <= NBLOCKS);
		else
			assert_true(fcache_stats(fc).evictions > 0);
		fcache_free(fc);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_shared_after_second_file),
		cmocka_unit_test(test_fill_then_hit),
		cmocka_unit_test(test_failed_fill),
		cmocka_unit_test(test_eviction_lru_spares_pinned),
		cmocka_unit_test(test_threads),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
