/*
 * test_ds_scrub: the background scrubber on a real chunk store -- a pass
 * reads every written block of every chunk (plain and delta), reports each
 * chunk with a bad block once through the store's corrupt hook, skips
 * chunks deleted during the pass, and keeps to its rate.
 */
#include <errno.h>
#include <event2/event.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "chunkstore.h"
#include "log.h"
#include "scrub.h"
#include "test_fs_util.h"

#define MiB (1024u * 1024u)

struct fixture {
	char root[64], dir[128];
	struct chunkstore *cs;
	struct event_base *base;
	uint64_t bad[16];
	int nbad;
};

static void on_corrupt(void *arg, uint64_t id)
{
	struct fixture *f = arg;
	if (f->nbad < 16)
		f->bad[f->nbad++] = id;
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	char err[256];
	snprintf(f->root, sizeof(f->root), "/tmp/test_ds_scrub.XXXXXX");
	assert_non_null(mkdtemp(f->root));
	snprintf(f->dir, sizeof(f->dir), "%s/d", f->root);
	const char *dirs[1] = {f->dir};
	struct chunkstore_config cfg = {.dirs = dirs, .ndirs = 1};
	assert_int_equal(chunkstore_open(&cfg, &f->cs, err, sizeof(err)), 0);
	chunkstore_on_corrupt(f->cs, on_corrupt, f);
	f->base = event_base_new();
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	chunkstore_close(f->cs);
	event_base_free(f->base);
	test_rm_tree(f->root);
	free(f);
	return 0;
}

/* Runs the loop until the scrubber has finished `passes` passes (or 20 s). */
static void run_passes(struct fixture *f, struct scrub *s, uint64_t passes)
{
	struct scrub_stats st;
	for (int i = 0; i < 2000; i++) {
		scrub_stats(s, &st);
		if (st.passes >= passes)
			return;
		struct timeval tv = {0, 10000};
		event_base_loopexit(f->base, &tv);
		event_base_dispatch(f->base);
	}
	fail_msg("scrub pass not finished");
}

static void write_chunks(struct fixture *f, uint8_t *w)
{
	struct chunkstore_geom plain = {.chunk_size = 4 * MiB};
	for (size_t i = 0; i < 4 * MiB; i++)
		w[i] = (uint8_t)(i * 31 + 7);
	for (uint64_t id = 1; id <= 3; id++)
		assert_int_equal(chunkstore_write(f->cs, id, 1, &plain, 0, w, 4 * MiB, NULL), 0);
	/* A delta over chunk 1 with a few extents of its own. */
	struct chunkstore_base b = {1, 1};
	struct chunkstore_geom dg = {.chunk_size = 4 * MiB, .extent = 65536, .nbase = 1, .base = &b};
	assert_int_equal(chunkstore_write(f->cs, 4, 1, &dg, 100000, w, 300000, NULL), 0);
}

static void test_pass_finds_bad_chunks(void **state)
{
	struct fixture *f = *state;
	uint8_t *w = malloc(4 * MiB);
	write_chunks(f, w);
	/* Bad bytes in chunk 2 (twice: one report) and in the delta's own extent. */
	test_flip_chunk_byte(f->cs, 2, chunkstore_data_off(4 * MiB) + 3 * 65536 + 5);
	test_flip_chunk_byte(f->cs, 2, chunkstore_data_off(4 * MiB) + 40 * 65536 + 5);
	test_flip_chunk_byte(f->cs, 4, chunkstore_delta_data_off(4 * MiB, 65536) + 2 * 65536 + 9);
	struct scrub_config cfg = {.base = f->base, .store = f->cs, .rate_mb_s = 2000, .interval_s = 3600};
	struct scrub *s = scrub_new(&cfg);
	assert_non_null(s);
	scrub_start(s, "test");
	run_passes(f, s, 1);
	struct scrub_stats st;
	scrub_stats(s, &st);
	assert_int_equal(st.chunks, 4);
	assert_int_equal(st.bad_chunks, 2);
	assert_true(st.bytes >= 8 * MiB); /* chunks 1 and 3 whole, at least */
	assert_int_equal(f->nbad, 2);
	assert_true((f->bad[0] == 2 && f->bad[1] == 4) || (f->bad[0] == 4 && f->bad[1] == 2));
	/* A second pass: the same findings, nothing else. */
	f->nbad = 0;
	scrub_start(s, "again");
	run_passes(f, s, 2);
	assert_int_equal(f->nbad, 2);
	scrub_free(s);
	free(w);
}

static void test_deleted_during_pass_and_rate(void **state)
{
	struct fixture *f = *state;
	uint8_t *w = malloc(4 * MiB);
	write_chunks(f, w);
	/* 8 MiB/s: 12+ MiB of data take over a second. */
	struct scrub_config cfg = {.base = f->base, .store = f->cs, .rate_mb_s = 8, .interval_s = 3600};
	struct scrub *s = scrub_new(&cfg);
	assert_non_null(s);
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	scrub_start(s, "test");
	assert_int_equal(chunkstore_delete(f->cs, 3), 0); /* listed, then gone */
	run_passes(f, s, 1);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	struct scrub_stats st;
	scrub_stats(s, &st);
	assert_int_equal(f->nbad, 0);
	assert_int_equal(st.bad_chunks, 0);
	assert_true(st.bytes >= 8 * MiB && st.bytes < 12 * MiB); /* chunk 3 skipped */
	assert_true(secs > 0.8); /* 8+ MiB at 8 MiB/s */
	scrub_free(s);
	free(w);
}

int main(void)
{
	log_init("test_ds_scrub", LOG_ERROR);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_pass_finds_bad_chunks, setup, teardown),
		cmocka_unit_test_setup_teardown(test_deleted_during_pass_and_rate, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
