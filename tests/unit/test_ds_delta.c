/*
 * test_ds_delta: delta chunks (copy-on-write over a local base chain) in the
 * data server's chunkstore.  What a write copies from the base (counters),
 * reads and seeks through chains with missing members, cold reads (the
 * cached read, its fetch plan), punches hiding the
 * base, space (alloc/own, and the space bound of scattered 4 KiB writes),
 * refused chains and corrupt bases; copies into plain chunks (content,
 * holes, retries, refusals); then random writes, punches, freezes (a new
 * delta over the current chunk), deletions of unwritten bases and copies
 * against a naive byte-array model.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "chunkstore.h"
#include "log.h"
#include "test_fs_util.h"

#define KiB 1024ull
#define MiB (1024ull * 1024)
#define BS CHUNKSTORE_BLOCK_SIZE

struct fixture {
	char root[64];
	char dir[128];
	struct chunkstore *cs;
};

static struct chunkstore *store_open(struct fixture *f, unsigned fd_cache)
{
	const char *dirs[1] = {f->dir};
	struct chunkstore_config cfg = {.dirs = dirs, .ndirs = 1, .fd_cache = fd_cache};
	char err[256] = "";
	struct chunkstore *cs = NULL;
	int rc = chunkstore_open(&cfg, &cs, err, sizeof(err));
	if (rc != 0)
		fail_msg("chunkstore_open: %d %s", rc, err);
	return cs;
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	snprintf(f->root, sizeof(f->root), "/tmp/test_ds_delta.XXXXXX");
	assert_non_null(mkdtemp(f->root));
	snprintf(f->dir, sizeof(f->dir), "%s/d0", f->root);
	f->cs = store_open(f, 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	chunkstore_close(f->cs);
	test_rm_tree(f->root);
	free(f);
	return 0;
}

static void reopen(struct fixture *f, unsigned fd_cache)
{
	chunkstore_close(f->cs);
	f->cs = store_open(f, fd_cache);
}

static void fill(uint8_t *p, size_t n, uint32_t seed)
{
	for (size_t i = 0; i < n; i++) {
		seed = seed * 1103515245u + 12345u;
		p[i] = (uint8_t)(seed >> 16 | 1); /* never zero: data is told from holes */
	}
}

static const struct chunkstore_counters *ctr(struct fixture *f) { return chunkstore_counters(f->cs); }

/* Geometry of a plain chunk, and of a delta over chain. */
static struct chunkstore_geom plain(uint64_t size) { return (struct chunkstore_geom){.chunk_size = size}; }
static struct chunkstore_geom delta(uint64_t size, uint32_t extent, const struct chunkstore_base *chain, uint32_t n)
{
	return (struct chunkstore_geom){.chunk_size = size, .extent = extent, .nbase = n, .base = chain};
}

/* A 1 MiB plain chunk id fully written with fill(seed); the bytes in *data
 * (the caller frees them). */
static uint8_t *make_base(struct fixture *f, uint64_t id, uint32_t seed)
{
	uint8_t *data = malloc(MiB);
	struct chunkstore_geom g = plain(MiB);
	fill(data, MiB, seed);
	assert_int_equal(chunkstore_write(f->cs, id, 1, &g, 0, data, MiB, NULL), 0);
	return data;
}

/* ---- copy-on-write ------------------------------------------------------------------------ */

static void test_whole_extent_write_copies_nothing(void **state)
{
	struct fixture *f = *state;
	uint8_t *base = make_base(f, 1, 1), *w = malloc(MiB), *r = malloc(MiB);
	struct chunkstore_base chain[1] = {{1, 1}};
	struct chunkstore_geom g = delta(MiB, 4096, chain, 1);
	fill(w, MiB, 2);
	assert_int_equal(chunkstore_write(f->cs, 2, 1, &g, 4096, w, 8192, NULL), 0);
	/* A 1 MiB aligned write is whole extents too. */
	struct chunkstore_geom g3 = delta(MiB, 4096, chain, 1);
	assert_int_equal(chunkstore_write(f->cs, 3, 1, &g3, 0, w, MiB, NULL), 0);
	assert_int_equal(ctr(f)->cow_extents, 0);
	assert_int_equal(ctr(f)->cow_bytes, 0);
	assert_int_equal(ctr(f)->deltas_created, 2);
	assert_int_equal(chunkstore_read(f->cs, 2, 1, chain, 1, 0, r, MiB), 0);
	assert_memory_equal(r, base, 4096);
	assert_memory_equal(r + 4096, w, 8192);
	assert_memory_equal(r + 12288, base + 12288, MiB - 12288);
	assert_int_equal(chunkstore_read(f->cs, 3, 1, chain, 1, 0, r, MiB), 0);
	assert_memory_equal(r, w, MiB);
	struct chunkstore_stat st;
	assert_int_equal(chunkstore_stat(f->cs, 2, &st), 0);
	assert_int_equal(st.extent, 4096);
	assert_int_equal(st.base.id, 1);
	assert_int_equal(st.base.version, 1);
	free(base);
	free(w);
	free(r);
}

static void test_partial_write_copies_one_extent(void **state)
{
	struct fixture *f = *state;
	uint8_t *base = make_base(f, 1, 1), *r = malloc(MiB), w[300];
	struct chunkstore_base chain[1] = {{1, 1}};
	struct chunkstore_geom g = delta(MiB, 4096, chain, 1);
	fill(w, sizeof(w), 3);
	assert_int_equal(chunkstore_write(f->cs, 2, 1, &g, 3 * 4096 + 10, w, 100, NULL), 0);
	assert_int_equal(ctr(f)->cow_extents, 1);
	assert_int_equal(ctr(f)->cow_bytes, 4096);
	/* The extent is owned now: writing into it again copies nothing. */
	assert_int_equal(chunkstore_write(f->cs, 2, 1, &g, 3 * 4096 + 500, w, 100, NULL), 0);
	assert_int_equal(ctr(f)->cow_extents, 1);
	/* Across an extent boundary: the two extents it touches. */
	assert_int_equal(chunkstore_write(f->cs, 2, 1, &g, 10 * 4096 - 150, w, 300, NULL), 0);
	assert_int_equal(ctr(f)->cow_extents, 3);
	/* Partial at both ends of a longer write: two copies, the middle not. */
	uint8_t *big = malloc(64 * KiB);
	fill(big, 64 * KiB, 4);
	assert_int_equal(chunkstore_write(f->cs, 2, 1, &g, 100 * 4096 + 1, big, 64 * KiB - 2, NULL), 0);
	assert_int_equal(ctr(f)->cow_extents, 5);
	assert_int_equal(ctr(f)->cow_bytes, 5 * 4096);

	memcpy(base + 3 * 4096 + 10, w, 100);
	memcpy(base + 3 * 4096 + 500, w, 100);
	memcpy(base + 10 * 4096 - 150, w, 300);
	memcpy(base + 100 * 4096 + 1, big, 64 * KiB - 2);
	assert_int_equal(chunkstore_read(f->cs, 2, 1, chain, 1, 0, r, MiB), 0);
	assert_memory_equal(r, base, MiB);
	/* After a reopen (the table from disk) too. */
	reopen(f, 0);
	memset(r, 0, MiB);
	assert_int_equal(chunkstore_read(f->cs, 2, 1, chain, 1, 0, r, MiB), 0);
	assert_memory_equal(r, base, MiB);
	free(big);
	free(base);
	free(r);
}

/* A partial write into a ZERO extent merges with zeros, not the base. */
static void test_partial_write_into_zero_extent(void **state)
{
	struct fixture *f = *state;
	uint8_t *base = make_base(f, 1, 1), *r = malloc(MiB), w[100];
	struct chunkstore_base chain[1] = {{1, 1}};
	struct chunkstore_geom g = delta(MiB, 64 * KiB, chain, 1);
	fill(w, sizeof(w), 5);
	assert_int_equal(chunkstore_punch(f->cs, 2, 1, &g, 64 * KiB, 64 * KiB, NULL), 0);
	assert_int_equal(chunkstore_write(f->cs, 2, 1, &g, 64 * KiB + 1000, w, 100, NULL), 0);
	assert_int_equal(ctr(f)->cow_extents, 0);
	assert_int_equal(chunkstore_read(f->cs, 2, 1, chain, 1, 64 * KiB, r, 64 * KiB), 0);
	assert_true(test_all_zero(r, 1000));
	assert_memory_equal(r + 1000, w, 100);
	assert_true(test_all_zero(r + 1100, 64 * KiB - 1100));
	assert_int_equal(chunkstore_read(f->cs, 2, 1, chain, 1, 0, r, 64 * KiB), 0);
	assert_memory_equal(r, base, 64 * KiB);
	free(base);
	free(r);
}

/* ---- reads through chains -------------------------------------------------------------------- */

static void test_unwritten_delta_reads_base(void **state)
{
	struct fixture *f = *state;
	uint8_t *base = make_base(f, 1, 1), *r = malloc(MiB);
	struct chunkstore_base chain[1] = {{1, 1}};
	/* Chunk 2 is not held here: it shows its base. */
	assert_int_equal(chunkstore_read(f->cs, 2, 1, chain, 1, 0, r, MiB), 0);
	assert_memory_equal(r, base, MiB);
	assert_int_equal(chunkstore_read(f->cs, 2, 1, chain, 1, 12345, r, 4000), 0);
	assert_memory_equal(r, base + 12345, 4000);
	assert_int_equal(ctr(f)->chain_read_bytes, MiB + 4000);
	assert_int_equal(chunkstore_read(f->cs, 2, 1, chain, 1, MiB - 10, r, 11), -EINVAL);
	/* Without a chain it does not exist. */
	assert_int_equal(chunkstore_read(f->cs, 2, 1, NULL, 0, 0, r, 10), -ENOENT);
	/* Nothing of the chain held: zeros. */
	struct chunkstore_base ghost[2] = {{50, 1}, {51, 1}};
	memset(r, 0xee, 4096);
	assert_int_equal(chunkstore_read(f->cs, 2, 1, ghost, 2, 0, r, 4096), 0);
	assert_true(test_all_zero(r, 4096));
	/* Created by an empty write: still its base. */
	struct chunkstore_geom g = delta(MiB, 4096, chain, 1);
	struct chunkstore_alloc a;
	assert_int_equal(chunkstore_write(f->cs, 2, 1, &g, 0, NULL, 0, &a), 0);
	assert_int_equal(a.own, 0);
	assert_int_equal(a.bytes, MiB);
	assert_int_equal(chunkstore_read(f->cs, 2, 1, chain, 1, 0, r, MiB), 0);
	assert_memory_equal(r, base, MiB);
	free(base);
	free(r);
}

/* Writes chunk id's pages back and drops them from the page cache. */
static void evict_chunk(struct chunkstore *cs, uint64_t id)
{
	char path[4096];
	assert_int_equal(chunkstore_path(cs, id, path, sizeof(path)), 0);
	int fd = open(path, O_RDONLY);
	assert_true(fd >= 0);
	assert_int_equal(fdatasync(fd), 0);
	assert_int_equal(posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED), 0);
	close(fd);
}

/* A cold read: a cached read stops with -EAGAIN, the plan names the range
 * of each file the read needs, fetching it makes the cached read succeed. */
static void test_cold_read_fetch(void **state)
{
	struct fixture *f = *state;
	uint8_t *base = make_base(f, 1, 1), *r = malloc(MiB), w[8192], scratch[64 * KiB];
	struct chunkstore_base chain[1] = {{1, 1}};
	struct chunkstore_geom g = delta(MiB, 4096, chain, 1);
	struct chunkstore_fetch fp;
	fill(w, sizeof(w), 9);
	assert_int_equal(chunkstore_write(f->cs, 2, 1, &g, 4096, w, sizeof(w), NULL), 0);
	uint8_t *want = malloc(MiB); /* chunk 2 */
	memcpy(want, base, MiB);
	memcpy(want + 4096, w, sizeof(w));
	evict_chunk(f->cs, 1);
	evict_chunk(f->cs, 2);
	int rc = chunkstore_read_cached(f->cs, 2, 1, chain, 1, 0, r, MiB);
	if (rc == 0)
		skip(); /* a file system whose pages cannot be dropped (tmpfs) */
	assert_int_equal(rc, -EAGAIN);
	assert_int_equal(ctr(f)->chain_read_bytes, 0); /* nothing counted for a read that stopped */

	assert_int_equal(chunkstore_fetch_plan(f->cs, 2, 1, chain, 1, 0, MiB, &fp), 0);
	assert_int_equal(fp.n, 2);
	for (unsigned i = 0; i < fp.n; i++) {
		assert_true(fp.r[i].fd >= 0);
		if (fp.r[i].id == 2) { /* its own extents */
			assert_int_equal(fp.r[i].start, chunkstore_delta_data_off(MiB, 4096) + 4096);
			assert_int_equal(fp.r[i].end, chunkstore_delta_data_off(MiB, 4096) + 4096 + sizeof(w));
		} else { /* the base's blocks under the rest */
			assert_int_equal(fp.r[i].id, 1);
			assert_int_equal(fp.r[i].start, chunkstore_data_off(MiB));
			assert_int_equal(fp.r[i].end, chunkstore_data_off(MiB) + MiB);
		}
	}
	chunkstore_fetch_run(&fp, scratch, sizeof(scratch));
	assert_int_equal(fp.n, 0);
	assert_int_equal(chunkstore_read_cached(f->cs, 2, 1, chain, 1, 0, r, MiB), 0);
	assert_memory_equal(r, want, MiB);
	assert_int_equal(ctr(f)->chain_read_bytes, MiB - sizeof(w));

	/* A chunk not held here reads its chain: the plan is the base's. */
	evict_chunk(f->cs, 1);
	assert_int_equal(chunkstore_read_cached(f->cs, 3, 1, chain, 1, 100, r, 5000), -EAGAIN);
	assert_int_equal(chunkstore_fetch_plan(f->cs, 3, 1, chain, 1, 100, 5000, &fp), 0);
	assert_int_equal(fp.n, 1);
	assert_int_equal(fp.r[0].id, 1);
	assert_int_equal(fp.r[0].start, chunkstore_data_off(MiB));
	assert_int_equal(fp.r[0].end, chunkstore_data_off(MiB) + BS);
	chunkstore_fetch_run(&fp, scratch, 1000); /* a scratch smaller than the range */
	assert_int_equal(chunkstore_read_cached(f->cs, 3, 1, chain, 1, 100, r, 5000), 0);
	assert_memory_equal(r, base + 100, 5000);

	/* Plans fail as reads do, holding nothing. */
	assert_int_equal(chunkstore_fetch_plan(f->cs, 9, 1, NULL, 0, 0, 10, &fp), -ENOENT);
	assert_int_equal(fp.n, 0);
	assert_int_equal(chunkstore_fetch_plan(f->cs, 2, 1, chain, 1, MiB - 1, 10, &fp), -EINVAL);
	assert_int_equal(fp.n, 0);
	free(want);
	free(base);
	free(r);
}

static void test_punch_hides_base(void **state)
{
	struct fixture *f = *state;
	uint8_t *base = make_base(f, 1, 1), *r = malloc(MiB), *w = malloc(256 * KiB);
	struct chunkstore_base chain[1] = {{1, 1}};
	struct chunkstore_geom g = delta(MiB, 4096, chain, 1);
	struct chunkstore_alloc a0, a1;
	fill(w, 256 * KiB, 6);
	assert_int_equal(chunkstore_write(f->cs, 2, 1, &g, 0, w, 256 * KiB, &a0), 0);
	/* Whole extents (owned and inherited) and partial ones at both ends. */
	assert_int_equal(chunkstore_punch(f->cs, 2, 1, &g, 100 * KiB + 7, 300 * KiB, &a1), 0);
	/* The owned extents' space came back (152 KiB, less the 4 KiB of the
	 * inherited extent copied at the end). */
	assert_true(a1.own <= a0.own - 140 * KiB);
	memcpy(base, w, 256 * KiB);
	memset(base + 100 * KiB + 7, 0, 300 * KiB);
	assert_int_equal(chunkstore_read(f->cs, 2, 1, chain, 1, 0, r, MiB), 0);
	assert_memory_equal(r, base, MiB);
	/* The inherited partial extent at the end was copied. */
	assert_int_equal(ctr(f)->cow_extents, 1);
	/* A punch of a not yet held delta creates it, hiding the base. */
	assert_int_equal(chunkstore_punch(f->cs, 3, 1, &g, 0, MiB, &a1), 0);
	assert_int_equal(a1.bytes, 0);
	assert_int_equal(chunkstore_read(f->cs, 3, 1, chain, 1, 0, r, MiB), 0);
	assert_true(test_all_zero(r, MiB));
	bool found;
	uint64_t at;
	assert_int_equal(chunkstore_seek(f->cs, 3, 1, chain, 1, 0, CHUNKSTORE_SEEK_DATA, &found, &at), 0);
	assert_false(found);
	free(base);
	free(r);
	free(w);
}

/* A (plain, held) <- B (never written: not here) <- C <- D. */
static void test_chain_missing_middle(void **state)
{
	struct fixture *f = *state;
	uint8_t *a = make_base(f, 10, 7), *r = malloc(MiB), w[5000];
	struct chunkstore_base cchain[2] = {{11, 1}, {10, 1}};
	struct chunkstore_base dchain[3] = {{12, 1}, {11, 1}, {10, 1}};
	struct chunkstore_geom gc = delta(MiB, 4096, cchain, 2);
	fill(w, sizeof(w), 8);
	assert_int_equal(chunkstore_write(f->cs, 12, 1, &gc, 8190, w, sizeof(w), NULL), 0);
	assert_int_equal(ctr(f)->cow_extents, 2); /* from A, through the missing B */
	memcpy(a + 8190, w, sizeof(w));
	assert_int_equal(chunkstore_read(f->cs, 12, 1, cchain, 2, 0, r, MiB), 0);
	assert_memory_equal(r, a, MiB);
	/* D, not held either, shows C over A. */
	assert_int_equal(chunkstore_read(f->cs, 13, 1, dchain, 3, 0, r, MiB), 0);
	assert_memory_equal(r, a, MiB);
	/* D written: its own extent, C's, A's. */
	struct chunkstore_geom gd = delta(MiB, 64 * KiB, dchain, 3);
	assert_int_equal(chunkstore_write(f->cs, 13, 1, &gd, 10, w, 10, NULL), 0);
	memcpy(a + 10, w, 10);
	assert_int_equal(chunkstore_read(f->cs, 13, 1, dchain, 3, 0, r, MiB), 0);
	assert_memory_equal(r, a, MiB);
	/* A chain that skips C (held here) is not D's: C's header names B. */
	struct chunkstore_base bad[2] = {{12, 1}, {10, 1}};
	assert_int_equal(chunkstore_read(f->cs, 13, 1, bad, 2, 64 * KiB, r, 10), -EINVAL);
	/* A base held with a newer version than named: a stale layout. */
	struct chunkstore_base stale[3] = {{12, 1}, {11, 1}, {10, 0}};
	assert_int_equal(chunkstore_read(f->cs, 13, 1, stale, 3, 0, r, MiB), -ESTALE);
	free(a);
	free(r);
}

/* ---- seek ------------------------------------------------------------------------------------ */

static void test_seek_delta(void **state)
{
	struct fixture *f = *state;
	uint8_t w[4096];
	bool found;
	uint64_t at;
	struct chunkstore_geom pg = plain(MiB);
	fill(w, sizeof(w), 9);
	/* Base: data in 64 KiB blocks 2 and 3. */
	assert_int_equal(chunkstore_write(f->cs, 1, 1, &pg, 2 * BS + 100, w, 100, NULL), 0);
	assert_int_equal(chunkstore_write(f->cs, 1, 1, &pg, 3 * BS, w, 100, NULL), 0);
	struct chunkstore_base chain[1] = {{1, 1}};
	/* Not held: the base's map. */
	assert_int_equal(chunkstore_seek(f->cs, 2, 1, chain, 1, 0, CHUNKSTORE_SEEK_DATA, &found, &at), 0);
	assert_true(found);
	assert_int_equal(at, 2 * BS);
	assert_int_equal(chunkstore_seek(f->cs, 2, 1, chain, 1, 2 * BS + 5, CHUNKSTORE_SEEK_HOLE, &found, &at), 0);
	assert_true(found);
	assert_int_equal(at, 4 * BS);
	/* Delta (4 KiB extents): OWN at 4 KiB, ZERO over the base's first
	 * 8 KiB of block 2, the rest inherited. */
	struct chunkstore_geom g = delta(MiB, 4096, chain, 1);
	assert_int_equal(chunkstore_write(f->cs, 2, 1, &g, 4096, w, 4096, NULL), 0);
	assert_int_equal(chunkstore_punch(f->cs, 2, 1, &g, 2 * BS, 8192, NULL), 0);
	struct {
		uint64_t off;
		int whence;
		bool found;
		uint64_t at;
	} cases[] = {
		{0, CHUNKSTORE_SEEK_DATA, true, 4096},
		{0, CHUNKSTORE_SEEK_HOLE, true, 0},
		{4096, CHUNKSTORE_SEEK_HOLE, true, 8192},
		{5000, CHUNKSTORE_SEEK_DATA, true, 5000},
		{8192, CHUNKSTORE_SEEK_DATA, true, 2 * BS + 8192},
		{2 * BS, CHUNKSTORE_SEEK_HOLE, true, 2 * BS},
		{2 * BS + 9000, CHUNKSTORE_SEEK_HOLE, true, 4 * BS},
		{4 * BS, CHUNKSTORE_SEEK_DATA, false, 0},
		{MiB, CHUNKSTORE_SEEK_HOLE, false, 0},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		assert_int_equal(chunkstore_seek(f->cs, 2, 1, chain, 1, cases[i].off, cases[i].whence, &found, &at), 0);
		if (found != cases[i].found || (found && at != cases[i].at))
			fail_msg("case %zu: found %d at %llu", i, found, (unsigned long long)at);
	}
	assert_int_equal(chunkstore_seek(f->cs, 2, 1, chain, 1, MiB + 1, CHUNKSTORE_SEEK_DATA, &found, &at), -EINVAL);
	/* Nothing of the chain held: one hole. */
	struct chunkstore_base ghost[1] = {{77, 1}};
	assert_int_equal(chunkstore_seek(f->cs, 3, 1, ghost, 1, 100, CHUNKSTORE_SEEK_DATA, &found, &at), 0);
	assert_false(found);
	assert_int_equal(chunkstore_seek(f->cs, 3, 1, ghost, 1, 100, CHUNKSTORE_SEEK_HOLE, &found, &at), 0);
	assert_true(found);
	assert_int_equal(at, 100);
}

/* ---- space ------------------------------------------------------------------------------------ */

static void test_alloc_own(void **state)
{
	struct fixture *f = *state;
	uint8_t w[8192];
	struct chunkstore_alloc a;
	struct chunkstore_stat st;
	struct chunkstore_geom pg = plain(MiB);
	uint8_t *big = malloc(256 * KiB);
	fill(big, 256 * KiB, 10);
	fill(w, sizeof(w), 11);
	/* Base: 256 KiB of data at 512 KiB. */
	assert_int_equal(chunkstore_write(f->cs, 1, 1, &pg, 512 * KiB, big, 256 * KiB, &a), 0);
	assert_int_equal(a.bytes, a.own);
	assert_true(a.own >= 256 * KiB && a.own <= 256 * KiB + 16 * KiB);
	struct chunkstore_base chain[1] = {{1, 1}};
	struct chunkstore_geom g = delta(MiB, 4096, chain, 1);
	/* 8 KiB where the base has nothing. */
	assert_int_equal(chunkstore_write(f->cs, 2, 1, &g, 0, w, 8192, &a), 0);
	assert_true(a.own >= 8192 && a.own <= 8192 + 16 * KiB);
	assert_int_equal(a.bytes - a.own, 256 * KiB);
	uint64_t own0 = a.own;
	/* 8 KiB over the base's data: owned now, no longer inherited. */
	assert_int_equal(chunkstore_write(f->cs, 2, 1, &g, 600 * KiB, w, 8192, &a), 0);
	assert_true(a.own >= own0 + 8192 && a.own <= own0 + 8192 + 16 * KiB);
	assert_int_equal(a.bytes - a.own, 256 * KiB - 8192);
	/* Punched over the base's data: neither. */
	assert_int_equal(chunkstore_punch(f->cs, 2, 1, &g, 700 * KiB, 64 * KiB, &a), 0);
	assert_int_equal(a.bytes - a.own, 256 * KiB - 8192 - 64 * KiB);
	assert_int_equal(chunkstore_stat(f->cs, 2, &st), 0);
	assert_int_equal(st.alloc, a.bytes);
	assert_int_equal(st.own, a.own);
	/* After a reopen, DS_STAT (no chain) reads the chain from the headers. */
	reopen(f, 0);
	assert_int_equal(chunkstore_stat(f->cs, 2, &st), 0);
	assert_int_equal(st.alloc, a.bytes);
	assert_int_equal(st.own, a.own);
	/* A deleted base: nothing inherited any more. */
	assert_int_equal(chunkstore_delete(f->cs, 1), 0);
	assert_int_equal(chunkstore_write(f->cs, 2, 1, &g, 0, w, 10, &a), 0);
	assert_int_equal(a.bytes, a.own);
	free(big);
}

/* 16 MiB of random 4 KiB writes into a clone of a 1 GiB image (16 chunks
 * of 64 MiB) cost at most 32 MiB on disk. */
static void test_space_scattered_writes(void **state)
{
	struct fixture *f = *state;
	enum { NCHUNK = 16, NWRITE = 4096 };
	const uint64_t chunk = 64 * MiB;
	uint8_t w[4096];
	struct chunkstore_geom pg = plain(chunk);
	struct chunkstore_base chains[NCHUNK][1];
	fill(w, sizeof(w), 12);
	for (int i = 0; i < NCHUNK; i++) {
		/* Bases exist (a little data each); their content does not matter
		 * to whole-extent writes. */
		assert_int_equal(chunkstore_write(f->cs, 100 + (uint64_t)i, 1, &pg, 0, w, sizeof(w), NULL), 0);
		chains[i][0] = (struct chunkstore_base){100 + (uint64_t)i, 1};
	}
	uint32_t seed = 99;
	for (int n = 0; n < NWRITE; n++) {
		seed = seed * 1103515245u + 12345u;
		uint32_t x = seed >> 8;
		int i = (int)(x % NCHUNK);
		uint64_t off = (uint64_t)((x / NCHUNK) % (chunk / 4096)) * 4096;
		struct chunkstore_geom g = delta(chunk, 4096, chains[i], 1);
		assert_int_equal(chunkstore_write(f->cs, 200 + (uint64_t)i, 1, &g, off, w, sizeof(w), NULL), 0);
	}
	uint64_t total = 0, own = 0;
	for (int i = 0; i < NCHUNK; i++) {
		struct chunkstore_stat st;
		assert_int_equal(chunkstore_stat(f->cs, 200 + (uint64_t)i, &st), 0);
		total += test_chunk_file_bytes(f->cs, 200 + (uint64_t)i);
		own += st.own;
	}
	print_message("16 MiB of 4 KiB writes: %llu KiB on disk, %llu KiB own\n", (unsigned long long)(total / KiB),
		      (unsigned long long)(own / KiB));
	assert_true(total <= 32 * MiB);
	assert_true(own <= 16 * MiB + 64 * KiB);
	assert_int_equal(ctr(f)->cow_extents, 0);
}

/* ---- refusals and corruption ------------------------------------------------------------------ */

static void test_bases_mismatch(void **state)
{
	struct fixture *f = *state;
	uint8_t *base = make_base(f, 1, 1), *base5 = make_base(f, 5, 2), r[100];
	struct chunkstore_base chain[1] = {{1, 1}}, other[1] = {{5, 1}}, stale[1] = {{1, 0}}, newer[1] = {{1, 2}};
	struct chunkstore_geom g = delta(MiB, 4096, chain, 1);
	assert_int_equal(chunkstore_write(f->cs, 2, 1, &g, 0, r, sizeof(r), NULL), 0);
	struct chunkstore_geom go = delta(MiB, 4096, other, 1);
	assert_int_equal(chunkstore_write(f->cs, 2, 1, &go, 0, r, sizeof(r), NULL), -EINVAL);
	assert_int_equal(chunkstore_punch(f->cs, 2, 1, &go, 0, 10, NULL), -EINVAL);
	assert_int_equal(chunkstore_read(f->cs, 2, 1, other, 1, 0, r, sizeof(r)), -EINVAL);
	assert_int_equal(chunkstore_read(f->cs, 2, 1, NULL, 0, 0, r, sizeof(r)), -EINVAL);
	bool found;
	uint64_t at;
	assert_int_equal(chunkstore_seek(f->cs, 2, 1, other, 1, 0, CHUNKSTORE_SEEK_DATA, &found, &at), -EINVAL);
	/* Another extent, or a plain geometry, for the delta. */
	struct chunkstore_geom gx = delta(MiB, 8192, chain, 1), gp = plain(MiB);
	assert_int_equal(chunkstore_write(f->cs, 2, 1, &gx, 0, r, sizeof(r), NULL), -EINVAL);
	assert_int_equal(chunkstore_write(f->cs, 2, 1, &gp, 0, r, sizeof(r), NULL), -EINVAL);
	/* A delta's geometry, or a chain, for a plain chunk. */
	assert_int_equal(chunkstore_write(f->cs, 1, 1, &g, 0, r, sizeof(r), NULL), -EINVAL);
	assert_int_equal(chunkstore_read(f->cs, 1, 1, other, 1, 0, r, sizeof(r)), -EINVAL);
	/* The base held with a newer version than named: a stale layout. */
	struct chunkstore_geom gs = delta(MiB, 4096, stale, 1);
	assert_int_equal(chunkstore_write(f->cs, 2, 1, &gs, 0, r, sizeof(r), NULL), -ESTALE);
	assert_int_equal(chunkstore_write(f->cs, 3, 1, &gs, 0, r, sizeof(r), NULL), -ESTALE);
	assert_int_equal(chunkstore_read(f->cs, 3, 1, stale, 1, 0, r, sizeof(r)), -ESTALE);
	assert_int_equal(chunkstore_stat(f->cs, 3, &(struct chunkstore_stat){0}), -ENOENT); /* not created */
	/* A base named with a newer version than held: its replica set changed. */
	struct chunkstore_geom gn = delta(MiB, 4096, newer, 1);
	assert_int_equal(chunkstore_write(f->cs, 2, 1, &gn, 0, r, sizeof(r), NULL), 0);
	assert_int_equal(chunkstore_read(f->cs, 2, 1, newer, 1, 0, r, sizeof(r)), 0);
	/* Malformed geometries and chains. */
	struct chunkstore_base self[1] = {{4, 1}}, twice[2] = {{1, 1}, {1, 1}}, zero[1] = {{0, 1}};
	struct chunkstore_geom bad[] = {
		delta(MiB, 4096, self, 1), delta(MiB, 4096, twice, 2), delta(MiB, 4096, zero, 1),
		delta(MiB, 4096, chain, 0), delta(MiB, 3000, chain, 1), delta(MiB, 2048, chain, 1),
		delta(MiB, 2 * MiB, chain, 1), delta(MiB + 4096, 8192, chain, 1), delta(MiB, 0, chain, 1),
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(chunkstore_write(f->cs, 4, 1, &bad[i], 0, r, sizeof(r), NULL), -EINVAL);
	struct chunkstore_base longc[CHUNKSTORE_CHAIN_MAX + 1];
	for (unsigned i = 0; i <= CHUNKSTORE_CHAIN_MAX; i++)
		longc[i] = (struct chunkstore_base){1000 + i, 1};
	assert_int_equal(chunkstore_read(f->cs, 4, 1, longc, CHUNKSTORE_CHAIN_MAX + 1, 0, r, 10), -EINVAL);
	assert_int_equal(chunkstore_read(f->cs, 4, 1, longc, CHUNKSTORE_CHAIN_MAX, 0, r, 10), 0);
	free(base);
	free(base5);
}

static void test_corrupt_base_block(void **state)
{
	struct fixture *f = *state;
	uint8_t *base = make_base(f, 1, 1), *r = malloc(MiB), w[4096];
	struct chunkstore_base chain[1] = {{1, 1}};
	struct chunkstore_geom g = delta(MiB, 4096, chain, 1);
	fill(w, sizeof(w), 13);
	assert_int_equal(chunkstore_write(f->cs, 2, 1, &g, 0, w, 100, NULL), 0);
	/* Corrupt the base's block 1 (64 KiB..128 KiB). */
	test_flip_chunk_byte(f->cs, 1, chunkstore_data_off(MiB) + BS + 5000);
	assert_int_equal(chunkstore_read(f->cs, 2, 1, chain, 1, BS + 4096, r, 100), -EIO);
	assert_int_equal(chunkstore_read(f->cs, 2, 1, chain, 1, 0, r, MiB), -EIO);
	/* A partial write there needs the base: refused, not filled with garbage. */
	assert_int_equal(chunkstore_write(f->cs, 2, 1, &g, BS + 100, w, 100, NULL), -EIO);
	assert_int_equal(chunkstore_punch(f->cs, 2, 1, &g, BS + 100, 100, NULL), -EIO);
	/* Whole extents need nothing from it. */
	for (uint64_t off = BS; off < 2 * BS; off += 4096)
		assert_int_equal(chunkstore_write(f->cs, 2, 1, &g, off, w, 4096, NULL), 0);
	assert_int_equal(chunkstore_read(f->cs, 2, 1, chain, 1, 0, r, MiB), 0);
	assert_memory_equal(r, w, 100);
	assert_memory_equal(r + 100, base + 100, BS - 100);
	for (uint64_t off = BS; off < 2 * BS; off += 4096)
		assert_memory_equal(r + off, w, 4096);
	assert_memory_equal(r + 2 * BS, base + 2 * BS, MiB - 2 * BS);
	/* A corrupt OWN extent of a middle delta fails a read of the one above. */
	struct chunkstore_base c3[2] = {{2, 1}, {1, 1}};
	test_flip_chunk_byte(f->cs, 2, chunkstore_delta_data_off(MiB, 4096) + 10);
	assert_int_equal(chunkstore_read(f->cs, 3, 1, c3, 2, 0, r, 4096), -EIO);
	assert_int_equal(chunkstore_read(f->cs, 3, 1, c3, 2, 4096, r, 4096), 0);
	free(base);
	free(r);
}

/* The cache of open chunks holds one file: chains still resolve (the chunks
 * being worked in are pinned, the others reopened). */
static void test_tiny_fd_cache(void **state)
{
	struct fixture *f = *state;
	uint8_t *a = make_base(f, 1, 1), *r = malloc(MiB), w[3000];
	reopen(f, 1);
	struct chunkstore_base c2[1] = {{1, 1}}, c3[2] = {{2, 1}, {1, 1}}, c4[3] = {{3, 1}, {2, 1}, {1, 1}};
	struct chunkstore_geom g2 = delta(MiB, 4096, c2, 1), g3 = delta(MiB, 64 * KiB, c3, 2),
			       g4 = delta(MiB, 4096, c4, 3);
	fill(w, sizeof(w), 14);
	assert_int_equal(chunkstore_write(f->cs, 2, 1, &g2, 5000, w, 3000, NULL), 0);
	memcpy(a + 5000, w, 3000);
	assert_int_equal(chunkstore_write(f->cs, 3, 1, &g3, 70000, w, 3000, NULL), 0);
	memcpy(a + 70000, w, 3000);
	assert_int_equal(chunkstore_write(f->cs, 4, 1, &g4, 4000, w, 3000, NULL), 0);
	memcpy(a + 4000, w, 3000);
	assert_int_equal(chunkstore_read(f->cs, 4, 1, c4, 3, 0, r, MiB), 0);
	assert_memory_equal(r, a, MiB);
	free(a);
	free(r);
}

/* ---- copies ------------------------------------------------------------------------------ */

/* Pages of p[0, n) holding something else than zeros. */
static uint64_t nonzero_pages(const uint8_t *p, uint64_t n)
{
	uint64_t pages = 0;
	for (uint64_t x = 0; x < n; x += 4096)
		pages += !test_all_zero(p + x, n - x < 4096 ? n - x : 4096);
	return pages;
}

/* Checks plain chunk dst (version ver) against what src (chain, n) reads
 * as: the same bytes, a 64 KiB block written exactly where the source shows
 * data, alloc == own == the pages of those blocks that are not zeros (the
 * others are holes in the file).  Returns the number of data blocks. */
static uint64_t check_copy(struct fixture *f, uint64_t dst, uint32_t ver, uint64_t src, const struct chunkstore_base *chain,
			   uint32_t n, uint64_t size, const struct chunkstore_alloc *a)
{
	uint8_t *want = malloc(size), *got = malloc(size);
	struct chunkstore_stat st;
	uint64_t ndata = 0;
	assert_int_equal(chunkstore_read(f->cs, src, 1, chain, n, 0, want, size), 0);
	assert_int_equal(chunkstore_read(f->cs, dst, ver, NULL, 0, 0, got, size), 0);
	if (memcmp(want, got, size) != 0) {
		size_t i = 0;
		while (want[i] == got[i])
			i++;
		fail_msg("copy %llu of %llu differs at %zu", (unsigned long long)dst, (unsigned long long)src, i);
	}
	for (uint64_t b = 0; b * BS < size; b++) {
		bool sfound, dfound;
		uint64_t sat, dat, end = (b + 1) * BS < size ? (b + 1) * BS : size;
		assert_int_equal(chunkstore_seek(f->cs, src, 1, chain, n, b * BS, CHUNKSTORE_SEEK_DATA, &sfound, &sat), 0);
		assert_int_equal(chunkstore_seek(f->cs, dst, ver, NULL, 0, b * BS, CHUNKSTORE_SEEK_DATA, &dfound, &dat), 0);
		bool sdata = sfound && sat < end, ddata = dfound && dat == b * BS;
		if (sdata != ddata)
			fail_msg("copy %llu of %llu: block %llu data %d, source %d", (unsigned long long)dst,
				 (unsigned long long)src, (unsigned long long)b, ddata, sdata);
		ndata += ddata;
	}
	assert_int_equal(chunkstore_stat(f->cs, dst, &st), 0);
	assert_int_equal(st.version, ver);
	assert_int_equal(st.extent, 0);
	assert_int_equal(st.chunk_size, size);
	assert_int_equal(st.alloc, st.own);
	if (a) {
		assert_int_equal(a->bytes, a->own);
		assert_int_equal(a->bytes, st.alloc);
		/* Only pages of data are allocated. */
		uint64_t nz = nonzero_pages(want, size);
		if (a->own < nz * 4096 || a->own > nz * 4096 + 64 * KiB)
			fail_msg("copy %llu: own %llu for %llu pages of data", (unsigned long long)dst,
				 (unsigned long long)a->own, (unsigned long long)nz);
	}
	free(want);
	free(got);
	return ndata;
}

/* Files in the subdirectory of chunk id (its own, and leftovers). */
static int files_of(struct fixture *f, uint64_t id)
{
	char sub[256];
	int n = 0;
	snprintf(sub, sizeof(sub), "%s/%02x", f->dir, (unsigned)(id & 0xff));
	DIR *d = opendir(sub);
	if (!d)
		return 0;
	for (struct dirent *de; (de = readdir(d)) != NULL;)
		n += de->d_name[0] != '.';
	closedir(d);
	return n;
}

static void test_copy_plain(void **state)
{
	struct fixture *f = *state;
	const uint64_t size = MiB + 1000; /* a short last block */
	uint8_t *w = malloc(size);
	struct chunkstore_geom pg = plain(size);
	struct chunkstore_alloc a, sa;
	fill(w, size, 30);
	/* Data in blocks 0, 2, 3 (partly), 8 (punched in part), the last one. */
	assert_int_equal(chunkstore_write(f->cs, 1, 1, &pg, 0, w, BS, NULL), 0);
	assert_int_equal(chunkstore_write(f->cs, 1, 1, &pg, 2 * BS + 100, w, BS + 5, NULL), 0);
	assert_int_equal(chunkstore_write(f->cs, 1, 1, &pg, 8 * BS, w, BS, NULL), 0);
	assert_int_equal(chunkstore_punch(f->cs, 1, 1, &pg, 8 * BS + 10, 3000, NULL), 0);
	assert_int_equal(chunkstore_write(f->cs, 1, 1, &pg, size - 500, w, 500, &sa), 0);
	/* Blocks 5 and 6 written, then punched whole: holes again. */
	assert_int_equal(chunkstore_write(f->cs, 1, 1, &pg, 5 * BS, w, 2 * BS, NULL), 0);
	assert_int_equal(chunkstore_punch(f->cs, 1, 1, &pg, 5 * BS, 2 * BS, NULL), 0);
	/* 8 KiB of zeros written into block 0: data, but no space in the copy. */
	uint8_t zeros[8192] = {0};
	assert_int_equal(chunkstore_write(f->cs, 1, 1, &pg, 16 * KiB, zeros, sizeof(zeros), NULL), 0);
	assert_int_equal(chunkstore_copy(f->cs, 2, 7, 1, 1, &pg, &a), 0);
	assert_int_equal(check_copy(f, 2, 7, 1, NULL, 0, size, &a), 5);
	/* Pages of zeros in written blocks are holes of the file (st_blocks
	 * may count a block of the file system's extent tree too). */
	assert_true(a.own >= sa.own - sizeof(zeros) && a.own <= sa.own - sizeof(zeros) + 4096);
	assert_int_equal(ctr(f)->copy_bytes, 4 * BS + 1000);
	assert_int_equal(ctr(f)->deltas_created, 0);
	/* Durable and indexed: a reopen finds it, no temporary file is left. */
	reopen(f, 0);
	check_copy(f, 2, 7, 1, NULL, 0, size, NULL);
	assert_int_equal(files_of(f, 2), 1);
	/* The copy is an ordinary chunk: written, synced, deleted. */
	assert_int_equal(chunkstore_write(f->cs, 2, 7, &pg, 7 * BS, w, 10, NULL), 0);
	assert_int_equal(chunkstore_sync(f->cs, 2, 7), 0);
	assert_int_equal(chunkstore_delete(f->cs, 2), 0);
	/* A source with nothing written: an empty copy. */
	assert_int_equal(chunkstore_write(f->cs, 3, 1, &pg, 0, NULL, 0, NULL), 0);
	assert_int_equal(chunkstore_copy(f->cs, 4, 1, 3, 1, &pg, &a), 0);
	assert_int_equal(a.own, 0);
	assert_int_equal(check_copy(f, 4, 1, 3, NULL, 0, size, &a), 0);
	free(w);
}

/* A (plain) <- X (never written: not here) <- B (64 KiB extents) <- C (4 KiB
 * extents), with OWN, ZERO and INHERIT extents at every level. */
static void test_copy_delta_chain(void **state)
{
	struct fixture *f = *state;
	uint8_t *a = make_base(f, 10, 31), *w = malloc(MiB), *r = malloc(MiB);
	struct chunkstore_base bchain[2] = {{11, 1}, {10, 1}};
	struct chunkstore_base cchain[3] = {{12, 1}, {11, 1}, {10, 1}};
	struct chunkstore_base dchain[4] = {{13, 1}, {12, 1}, {11, 1}, {10, 1}};
	struct chunkstore_geom gb = delta(MiB, 64 * KiB, bchain, 2), gc = delta(MiB, 4096, cchain, 3);
	struct chunkstore_alloc al;
	fill(w, MiB, 32);
	/* A: punched [128 KiB, 320 KiB) (blocks 2..4 holes). */
	struct chunkstore_geom pa = plain(MiB);
	assert_int_equal(chunkstore_punch(f->cs, 10, 1, &pa, 128 * KiB, 192 * KiB, NULL), 0);
	/* B: OWN block 1 (partial write: a copy-on-write), ZERO 5..6, OWN 3 (over A's hole). */
	assert_int_equal(chunkstore_write(f->cs, 12, 1, &gb, 64 * KiB + 100, w, 200, NULL), 0);
	assert_int_equal(chunkstore_punch(f->cs, 12, 1, &gb, 5 * 64 * KiB, 2 * 64 * KiB, NULL), 0);
	assert_int_equal(chunkstore_write(f->cs, 12, 1, &gb, 3 * 64 * KiB, w, 64 * KiB, NULL), 0);
	/* C: OWN 4 KiB pieces over A, over B's OWN and ZERO extents and A's
	 * hole; ZERO over A's data (a whole 64 KiB block: a hole in the copy)
	 * and over part of a block; the rest INHERIT. */
	assert_int_equal(chunkstore_write(f->cs, 13, 1, &gc, 8192, w, 4096, NULL), 0);
	assert_int_equal(chunkstore_write(f->cs, 13, 1, &gc, 64 * KiB + 4096, w, 100, NULL), 0);
	assert_int_equal(chunkstore_write(f->cs, 13, 1, &gc, 5 * 64 * KiB + 8192, w, 4096, NULL), 0);
	assert_int_equal(chunkstore_write(f->cs, 13, 1, &gc, 2 * 64 * KiB + 4096, w, 4096, NULL), 0);
	assert_int_equal(chunkstore_punch(f->cs, 13, 1, &gc, 8 * 64 * KiB, 64 * KiB, NULL), 0);
	assert_int_equal(chunkstore_punch(f->cs, 13, 1, &gc, 9 * 64 * KiB, 8192, NULL), 0);
	/* The whole 1 MiB of C reads as: */
	uint64_t copied0 = ctr(f)->copy_bytes;
	assert_int_equal(chunkstore_copy(f->cs, 20, 1, 13, 1, &gc, &al), 0);
	/* Data: blocks 0, 1, 2 (C's OWN over A's hole), 3 (B), 5 (C over B's
	 * ZERO), 7, 9..15; holes: 4 (A punched), 6 (B's ZERO), 8 (C's ZERO). */
	assert_int_equal(check_copy(f, 20, 1, 13, cchain, 3, MiB, &al), 13);
	assert_int_equal(ctr(f)->copy_bytes - copied0, 13 * BS);
	bool found;
	uint64_t at;
	assert_int_equal(chunkstore_seek(f->cs, 20, 1, NULL, 0, 4 * BS, CHUNKSTORE_SEEK_DATA, &found, &at), 0);
	assert_true(found);
	assert_int_equal(at, 5 * BS);
	/* B alone, and A alone, copied the same way. */
	assert_int_equal(chunkstore_copy(f->cs, 21, 1, 12, 1, &gb, &al), 0);
	assert_int_equal(check_copy(f, 21, 1, 12, bchain, 2, MiB, &al), 12);
	/* D, a delta not held here: its chain. */
	struct chunkstore_geom gd = delta(MiB, 4096, dchain, 4);
	assert_int_equal(chunkstore_copy(f->cs, 22, 1, 14, 1, &gd, &al), 0);
	check_copy(f, 22, 1, 13, cchain, 3, MiB, &al);
	/* X, not held, over A: A. */
	struct chunkstore_base xchain[1] = {{10, 1}};
	struct chunkstore_geom gx = delta(MiB, 4096, xchain, 1);
	assert_int_equal(chunkstore_copy(f->cs, 23, 1, 11, 1, &gx, &al), 0);
	check_copy(f, 23, 1, 10, NULL, 0, MiB, &al);
	/* A chain of which nothing is held: an empty chunk. */
	struct chunkstore_base ghost[2] = {{50, 1}, {51, 1}};
	struct chunkstore_geom gg = delta(MiB, 4096, ghost, 2);
	assert_int_equal(chunkstore_copy(f->cs, 24, 1, 52, 1, &gg, &al), 0);
	assert_int_equal(al.bytes, 0);
	assert_int_equal(chunkstore_read(f->cs, 24, 1, NULL, 0, 0, r, MiB), 0);
	assert_true(test_all_zero(r, MiB));
	/* Reading the sources counted nothing as a DS_READ. */
	free(a);
	free(w);
	free(r);
}

/* Chunks of 4 MiB: data runs across 1 MiB windows, 1 MiB extents, a long
 * chain with 4 KiB and 1 MiB extents alternating. */
static void test_copy_large_extents(void **state)
{
	struct fixture *f = *state;
	const uint64_t size = 4 * MiB;
	uint8_t *w = malloc(size);
	struct chunkstore_geom pg = plain(size);
	struct chunkstore_alloc al;
	fill(w, size, 33);
	assert_int_equal(chunkstore_write(f->cs, 100, 1, &pg, MiB - 3 * BS, w, 2 * MiB, NULL), 0);
	uint32_t seed = 5;
	for (uint32_t k = 1; k < 6; k++) {
		/* Layer 100 + k over chain[0..k): nearest first. */
		struct chunkstore_base c[6];
		for (uint32_t j = 0; j < k; j++)
			c[j] = (struct chunkstore_base){100 + k - 1 - j, 1};
		struct chunkstore_geom g = delta(size, k % 2 ? CHUNKSTORE_EXTENT_MAX : 4096, c, k);
		for (int i = 0; i < 6; i++) {
			seed = seed * 1103515245u + 12345u;
			uint64_t off = (seed >> 8) % size, len = 1 + (seed >> 4) % (300 * KiB);
			if (off + len > size)
				len = size - off;
			if (i % 3 == 2)
				assert_int_equal(chunkstore_punch(f->cs, 100 + k, 1, &g, off, len, NULL), 0);
			else
				assert_int_equal(chunkstore_write(f->cs, 100 + k, 1, &g, off, w + off, len, NULL), 0);
		}
		assert_int_equal(chunkstore_copy(f->cs, 200 + k, 1, 100 + k, 1, &g, &al), 0);
		check_copy(f, 200 + k, 1, 100 + k, c, k, size, &al);
	}
	free(w);
}

/* A retry replaces whatever the destination holds with the exact copy;
 * leftovers of a copy interrupted by a crash are ignored and removed. */
static void test_copy_retry(void **state)
{
	struct fixture *f = *state;
	uint8_t *a = make_base(f, 1, 34), w[8192];
	struct chunkstore_base chain[1] = {{1, 1}};
	struct chunkstore_geom g = delta(MiB, 4096, chain, 1), pg = plain(MiB);
	struct chunkstore_alloc al, al2;
	fill(w, sizeof(w), 35);
	assert_int_equal(chunkstore_write(f->cs, 2, 1, &g, 5000, w, 3000, NULL), 0);
	assert_int_equal(chunkstore_punch(f->cs, 2, 1, &g, 4 * BS, 4 * BS, NULL), 0);
	assert_int_equal(chunkstore_copy(f->cs, 3, 1, 2, 1, &g, &al), 0);
	check_copy(f, 3, 1, 2, chain, 1, MiB, &al);
	/* Again: the same chunk. */
	assert_int_equal(chunkstore_copy(f->cs, 3, 1, 2, 1, &g, &al2), 0);
	check_copy(f, 3, 1, 2, chain, 1, MiB, &al2);
	assert_int_equal(al2.own, al.own);
	/* A destination half written (data where the source has a hole, other
	 * bytes elsewhere) is replaced. */
	assert_int_equal(chunkstore_write(f->cs, 3, 1, &pg, 5 * BS, w, sizeof(w), NULL), 0);
	assert_int_equal(chunkstore_write(f->cs, 3, 1, &pg, 100, w, sizeof(w), NULL), 0);
	assert_int_equal(chunkstore_copy(f->cs, 3, 1, 2, 1, &g, &al2), 0);
	check_copy(f, 3, 1, 2, chain, 1, MiB, &al2);
	assert_int_equal(al2.own, al.own);
	/* A temporary file left by a crash in the middle of a copy. */
	char tmp[4096];
	assert_int_equal(chunkstore_path(f->cs, 3, tmp, sizeof(tmp) - 8), 0);
	strcat(tmp, ".tmp");
	int fd = open(tmp, O_WRONLY | O_CREAT, 0644);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, w, 100), 100);
	close(fd);
	assert_int_equal(chunkstore_copy(f->cs, 3, 1, 2, 1, &g, &al2), 0);
	check_copy(f, 3, 1, 2, chain, 1, MiB, &al2);
	assert_int_equal(files_of(f, 3), 1);
	/* And one left next to a chunk never copied: removed by the next start. */
	char tmp5[4096];
	snprintf(tmp5, sizeof(tmp5), "%s/05", f->dir);
	assert_int_equal(mkdir(tmp5, 0755), 0);
	snprintf(tmp5, sizeof(tmp5), "%s/05/%016llx.chk.tmp", f->dir, 5ull);
	fd = open(tmp5, O_WRONLY | O_CREAT, 0644);
	assert_true(fd >= 0);
	close(fd);
	reopen(f, 0);
	assert_int_equal(access(tmp5, F_OK), -1);
	assert_int_equal(chunkstore_stat(f->cs, 5, &(struct chunkstore_stat){0}), -ENOENT);
	assert_int_equal(chunkstore_copy(f->cs, 5, 1, 2, 1, &g, &al2), 0);
	check_copy(f, 5, 1, 2, chain, 1, MiB, &al2);
	check_copy(f, 3, 1, 2, chain, 1, MiB, NULL);
	free(a);
}

static void test_copy_refusals(void **state)
{
	struct fixture *f = *state;
	uint8_t *a = make_base(f, 1, 36), w[100];
	struct chunkstore_base chain[1] = {{1, 1}}, stale[1] = {{1, 0}}, c3[2] = {{2, 1}, {1, 1}};
	struct chunkstore_geom g = delta(MiB, 4096, chain, 1), pg = plain(MiB);
	struct chunkstore_alloc al;
	struct chunkstore_stat st;
	fill(w, sizeof(w), 37);
	assert_int_equal(chunkstore_write(f->cs, 2, 1, &g, 0, w, sizeof(w), NULL), 0);
	/* A plain source not held here; a delta's is its chain. */
	assert_int_equal(chunkstore_copy(f->cs, 9, 1, 8, 1, &pg, &al), -ENOENT);
	/* Versions: of the destination, the source, a base. */
	assert_int_equal(chunkstore_copy(f->cs, 9, 1, 1, 1, &pg, &al), 0);
	assert_int_equal(chunkstore_copy(f->cs, 9, 0, 1, 1, &pg, &al), -ESTALE);
	assert_int_equal(chunkstore_copy(f->cs, 10, 1, 1, 0, &pg, &al), -ESTALE);
	struct chunkstore_geom gs = delta(MiB, 4096, stale, 1);
	assert_int_equal(chunkstore_copy(f->cs, 10, 1, 3, 1, &gs, &al), -ESTALE);
	assert_int_equal(chunkstore_copy(f->cs, 10, 1, 2, 1, &gs, &al), -ESTALE); /* 2's base, older */
	struct chunkstore_base other[1] = {{7, 1}};
	struct chunkstore_geom go = delta(MiB, 4096, other, 1);
	assert_int_equal(chunkstore_copy(f->cs, 10, 1, 2, 1, &go, &al), -EINVAL); /* not 2's first base */
	/* Chunk sizes: not the source's, not the chain's. */
	struct chunkstore_geom p2 = plain(2 * MiB), g2 = delta(2 * MiB, 4096, chain, 1);
	assert_int_equal(chunkstore_copy(f->cs, 10, 1, 1, 1, &p2, &al), -EINVAL);
	assert_int_equal(chunkstore_copy(f->cs, 10, 1, 2, 1, &g2, &al), -EINVAL);
	assert_int_equal(chunkstore_copy(f->cs, 10, 1, 3, 1, &g2, &al), -EINVAL);
	/* Geometries: a delta as plain or with another extent, a plain chunk
	 * as a delta, a chain that is not the delta's. */
	struct chunkstore_geom g8 = delta(MiB, 8192, chain, 1), gc3 = delta(MiB, 4096, c3, 2);
	assert_int_equal(chunkstore_copy(f->cs, 10, 1, 2, 1, &pg, &al), -EINVAL);
	assert_int_equal(chunkstore_copy(f->cs, 10, 1, 2, 1, &g8, &al), -EINVAL);
	assert_int_equal(chunkstore_copy(f->cs, 10, 1, 1, 1, &g, &al), -EINVAL);
	assert_int_equal(chunkstore_copy(f->cs, 10, 1, 2, 1, &gc3, &al), -EINVAL);
	/* Destinations: 0, the source, in its chain, a delta, another size. */
	assert_int_equal(chunkstore_copy(f->cs, 0, 1, 1, 1, &pg, &al), -EINVAL);
	assert_int_equal(chunkstore_copy(f->cs, 1, 1, 1, 1, &pg, &al), -EINVAL);
	assert_int_equal(chunkstore_copy(f->cs, 1, 1, 2, 1, &g, &al), -EINVAL);
	assert_int_equal(chunkstore_copy(f->cs, 2, 1, 1, 1, &pg, &al), -EINVAL);
	struct chunkstore_geom small = plain(BS);
	assert_int_equal(chunkstore_write(f->cs, 11, 1, &small, 0, w, 10, NULL), 0);
	assert_int_equal(chunkstore_copy(f->cs, 11, 1, 1, 1, &pg, &al), -EINVAL);
	/* Malformed source geometries. */
	struct chunkstore_geom bad[] = {plain(0), plain(CHUNKSTORE_CHUNK_MAX + 1), delta(MiB, 3000, chain, 1),
					delta(MiB, 4096, chain, 0), delta(MiB, 0, chain, 1)};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(chunkstore_copy(f->cs, 10, 1, 2, 1, &bad[i], &al), -EINVAL);
	/* Nothing was created by the refusals. */
	assert_int_equal(chunkstore_stat(f->cs, 10, &st), -ENOENT);
	/* A corrupt source block: -EIO, no chunk, no temporary file. */
	test_flip_chunk_byte(f->cs, 1, chunkstore_data_off(MiB) + 3 * BS + 7);
	assert_int_equal(chunkstore_copy(f->cs, 12, 1, 2, 1, &g, &al), -EIO);
	assert_int_equal(chunkstore_stat(f->cs, 12, &st), -ENOENT);
	assert_int_equal(files_of(f, 12), 0);
	/* Only the blocks used are checked: a copy of the first 4 KiB's owner
	 * succeeds when the corrupt block is hidden. */
	struct chunkstore_geom g3 = delta(MiB, 4096, c3, 2);
	assert_int_equal(chunkstore_punch(f->cs, 3, 1, &g3, 3 * BS, BS, NULL), 0);
	assert_int_equal(chunkstore_copy(f->cs, 12, 1, 3, 1, &g3, &al), 0);
	free(a);
}

/* The split API: a copy in flight refuses another copy or a write to its
 * destination, and a deletion cancels it. */
static void test_copy_in_flight(void **state)
{
	struct fixture *f = *state;
	uint8_t *a = make_base(f, 1, 38), w[10] = "0123456789";
	struct chunkstore_geom pg = plain(MiB);
	struct chunkstore_copy_job *job, *job2;
	struct chunkstore_alloc al;
	assert_int_equal(chunkstore_copy_prepare(f->cs, 2, 1, 1, 1, &pg, &job), 0);
	assert_non_null(job);
	assert_int_equal(chunkstore_copy_prepare(f->cs, 2, 1, 1, 1, &pg, &job2), -EBUSY);
	assert_null(job2);
	assert_int_equal(chunkstore_write(f->cs, 2, 1, &pg, 0, w, 10, NULL), -EBUSY);
	assert_int_equal(chunkstore_punch(f->cs, 2, 1, &pg, 0, 10, NULL), -EBUSY);
	/* Another destination is fine meanwhile. */
	assert_int_equal(chunkstore_copy(f->cs, 3, 1, 1, 1, &pg, &al), 0);
	chunkstore_copy_run(job);
	assert_int_equal(chunkstore_copy_finish(f->cs, job, &al), 0);
	check_copy(f, 2, 1, 1, NULL, 0, MiB, &al);
	/* A retry deleted before it ran, and one deleted after it ran. */
	assert_int_equal(chunkstore_copy_prepare(f->cs, 2, 1, 1, 1, &pg, &job), 0);
	assert_int_equal(chunkstore_delete(f->cs, 2), 0);
	chunkstore_copy_run(job);
	assert_int_equal(chunkstore_copy_finish(f->cs, job, &al), -ENOENT);
	assert_int_equal(chunkstore_stat(f->cs, 2, &(struct chunkstore_stat){0}), -ENOENT);
	assert_int_equal(files_of(f, 2), 0);
	assert_int_equal(chunkstore_copy_prepare(f->cs, 2, 1, 1, 1, &pg, &job), 0);
	chunkstore_copy_run(job);
	assert_int_equal(chunkstore_delete(f->cs, 2), -ENOENT); /* not indexed yet */
	assert_int_equal(chunkstore_copy_finish(f->cs, job, &al), -ENOENT);
	assert_int_equal(files_of(f, 2), 0);
	/* Writable again. */
	assert_int_equal(chunkstore_write(f->cs, 2, 1, &pg, 0, w, 10, NULL), 0);
	free(a);
}

/* ---- random operations against a model ------------------------------------------------------ */

#define MCHUNK (1 * MiB)
#define UNIT 4096u
#define NUNITS (MCHUNK / UNIT)

enum { U_INHERIT, U_OWN, U_ZERO };

/* One layer's chunk: its state per 4 KiB unit (a plain chunk: OWN =
 * written block, ZERO = not). */
struct mlayer {
	uint64_t id;
	uint32_t extent; /* 0: plain */
	bool held;
	uint8_t st[NUNITS];
};

struct model {
	struct mlayer l[CHUNKSTORE_CHAIN_MAX + 1];
	int n; /* the top is l[n - 1] */
	uint8_t *content;
	uint64_t next_id;
	uint32_t seed;
};

static uint32_t rnd(struct model *m)
{
	m->seed ^= m->seed << 13;
	m->seed ^= m->seed >> 17;
	m->seed ^= m->seed << 5;
	return m->seed;
}

static uint32_t gran(const struct mlayer *l) { return l->extent ? l->extent : BS; }

/* The chain of the top layer, nearest first. */
static uint32_t mchain(const struct model *m, struct chunkstore_base *chain)
{
	uint32_t n = 0;
	for (int k = m->n - 2; k >= 0; k--)
		chain[n++] = (struct chunkstore_base){m->l[k].id, 1};
	return n;
}

/* Whether unit u shows data, resolving from layer k down. */
static bool mdata(const struct model *m, int k, uint32_t u)
{
	for (; k >= 0; k--) {
		const struct mlayer *l = &m->l[k];
		if (!l->held || l->st[u] == U_INHERIT)
			continue;
		return l->st[u] == U_OWN;
	}
	return false;
}

static bool mwritten(const struct mlayer *l)
{
	for (uint32_t u = 0; u < NUNITS; u++)
		if (l->st[u] != U_INHERIT && (l->extent || l->st[u] == U_OWN))
			return true;
	return false;
}

static void mset(struct mlayer *l, uint32_t g, uint8_t st)
{
	uint32_t per = gran(l) / UNIT;
	memset(l->st + (size_t)g * per, st, per);
}

static void model_start(struct model *m)
{
	memset(m->l, 0, sizeof(m->l));
	memset(m->content, 0, MCHUNK);
	m->n = 1;
	m->l[0].id = m->next_id++;
	memset(m->l[0].st, U_ZERO, NUNITS); /* a plain chunk's unwritten blocks */
}

static void model_freeze(struct model *m, uint32_t extent)
{
	struct mlayer *l = &m->l[m->n++];
	memset(l, 0, sizeof(*l));
	l->id = m->next_id++;
	l->extent = extent;
}

static struct chunkstore_geom mgeom(const struct model *m, struct chunkstore_base *chain)
{
	const struct mlayer *t = &m->l[m->n - 1];
	uint32_t n = mchain(m, chain);
	return (struct chunkstore_geom){.chunk_size = MCHUNK, .extent = t->extent, .nbase = n, .base = chain};
}

static void model_write(struct fixture *f, struct model *m, uint64_t off, size_t len, const uint8_t *data)
{
	struct chunkstore_base chain[CHUNKSTORE_CHAIN_MAX] = {{0, 0}};
	struct chunkstore_geom g = mgeom(m, chain);
	struct mlayer *t = &m->l[m->n - 1];
	assert_int_equal(chunkstore_write(f->cs, t->id, 1, &g, off, data, len, NULL), 0);
	t->held = true;
	if (len == 0)
		return;
	memcpy(m->content + off, data, len);
	for (uint32_t b = (uint32_t)(off / gran(t)); b <= (off + len - 1) / gran(t); b++)
		mset(t, b, U_OWN);
}

static void model_punch(struct fixture *f, struct model *m, uint64_t off, uint64_t len)
{
	struct chunkstore_base chain[CHUNKSTORE_CHAIN_MAX] = {{0, 0}};
	struct chunkstore_geom g = mgeom(m, chain);
	struct mlayer *t = &m->l[m->n - 1];
	uint32_t gs = gran(t);
	assert_int_equal(chunkstore_punch(f->cs, t->id, 1, &g, off, len, NULL), 0);
	t->held = true;
	if (len == 0)
		return;
	memset(m->content + off, 0, len);
	for (uint32_t b = (uint32_t)(off / gs); b <= (off + len - 1) / gs; b++) {
		uint64_t s = (uint64_t)b * gs;
		bool whole = off <= s && off + len >= s + gs;
		uint8_t st = t->st[s / UNIT];
		if (whole)
			mset(t, b, U_ZERO);
		else if (t->extent && st == U_INHERIT)
			mset(t, b, test_all_zero(m->content + s, gs) ? U_ZERO : U_OWN);
		/* partial: OWN stays OWN (zeroed in place), ZERO stays ZERO */
	}
}

static void model_check_read(struct fixture *f, struct model *m, uint64_t off, size_t len, uint8_t *buf)
{
	struct chunkstore_base chain[CHUNKSTORE_CHAIN_MAX] = {{0, 0}};
	uint32_t n = mchain(m, chain);
	const struct mlayer *t = &m->l[m->n - 1];
	int rc = chunkstore_read(f->cs, t->id, 1, chain, n, off, buf, len);
	if (!t->held && n == 0) {
		assert_int_equal(rc, -ENOENT);
		return;
	}
	assert_int_equal(rc, 0);
	if (memcmp(buf, m->content + off, len) != 0) {
		size_t i = 0;
		while (buf[i] == m->content[off + i])
			i++;
		fail_msg("read of %zu at %llu (depth %d): first difference at %llu", len, (unsigned long long)off, m->n,
			 (unsigned long long)(off + i));
	}
}

static void model_check_seek(struct fixture *f, struct model *m, uint64_t off, int whence)
{
	struct chunkstore_base chain[CHUNKSTORE_CHAIN_MAX] = {{0, 0}};
	uint32_t n = mchain(m, chain);
	const struct mlayer *t = &m->l[m->n - 1];
	bool found, want_found = false;
	uint64_t at, want_at = 0;
	int rc = chunkstore_seek(f->cs, t->id, 1, chain, n, off, whence, &found, &at);
	if (!t->held && n == 0) {
		assert_int_equal(rc, -ENOENT);
		return;
	}
	assert_int_equal(rc, 0);
	for (uint32_t u = (uint32_t)(off / UNIT); u < NUNITS; u++) {
		if (mdata(m, m->n - 1, u) == (whence == CHUNKSTORE_SEEK_DATA)) {
			want_found = true;
			want_at = (uint64_t)u * UNIT > off ? (uint64_t)u * UNIT : off;
			break;
		}
	}
	if (found != want_found || at != want_at)
		fail_msg("seek %s from %llu (depth %d): found %d at %llu, model %d at %llu",
			 whence == CHUNKSTORE_SEEK_DATA ? "data" : "hole", (unsigned long long)off, m->n, found,
			 (unsigned long long)at, want_found, (unsigned long long)want_at);
}

/* alloc - own = extent * INHERIT extents with data below; own no more than
 * the owned granules. */
static void model_check_alloc(struct fixture *f, struct model *m)
{
	struct chunkstore_base chain[CHUNKSTORE_CHAIN_MAX] = {{0, 0}};
	struct chunkstore_geom g = mgeom(m, chain);
	struct chunkstore_alloc a;
	const struct mlayer *t = &m->l[m->n - 1];
	if (!t->held)
		return;
	/* An empty write reports the space without changing anything. */
	assert_int_equal(chunkstore_write(f->cs, t->id, 1, &g, 0, NULL, 0, &a), 0);
	uint32_t gs = gran(t), per = gs / UNIT, inh = 0, owned = 0;
	for (uint32_t b = 0; b < MCHUNK / gs; b++) {
		uint8_t st = t->st[b * per];
		owned += st == U_OWN;
		if (!t->extent || st != U_INHERIT)
			continue;
		bool data = false;
		for (uint32_t u = b * per; u < (b + 1) * per && !data; u++)
			data = mdata(m, m->n - 2, u);
		inh += data;
	}
	if (a.bytes - a.own != (uint64_t)inh * gs)
		fail_msg("depth %d: alloc %llu own %llu, model: %u inherited extents of %u", m->n,
			 (unsigned long long)a.bytes, (unsigned long long)a.own, inh, gs);
	assert_true(a.own <= (uint64_t)owned * gs + 64 * KiB);
	struct chunkstore_stat st;
	assert_int_equal(chunkstore_stat(f->cs, t->id, &st), 0);
	assert_int_equal(st.alloc, a.bytes);
}

/* The top copied into a new plain chunk: the model's content, a block
 * written where the model shows data. */
static void model_check_copy(struct fixture *f, struct model *m, uint8_t *buf)
{
	struct chunkstore_base chain[CHUNKSTORE_CHAIN_MAX] = {{0, 0}};
	struct chunkstore_geom g = mgeom(m, chain);
	const struct mlayer *t = &m->l[m->n - 1];
	struct chunkstore_alloc a;
	uint64_t dst = m->next_id++, ndata = 0;
	int rc = chunkstore_copy(f->cs, dst, 1, t->id, 1, &g, &a);
	if (!t->held && g.nbase == 0) {
		assert_int_equal(rc, -ENOENT);
		return;
	}
	assert_int_equal(rc, 0);
	assert_int_equal(chunkstore_read(f->cs, dst, 1, NULL, 0, 0, buf, MCHUNK), 0);
	if (memcmp(buf, m->content, MCHUNK) != 0)
		fail_msg("copy of the top (depth %d) differs", m->n);
	for (uint32_t b = 0; b < MCHUNK / BS; b++) {
		bool data = false, found;
		uint64_t at;
		for (uint32_t u = b * (BS / UNIT); u < (b + 1) * (BS / UNIT) && !data; u++)
			data = mdata(m, m->n - 1, u);
		assert_int_equal(chunkstore_seek(f->cs, dst, 1, NULL, 0, (uint64_t)b * BS, CHUNKSTORE_SEEK_DATA, &found, &at),
				 0);
		if (data != (found && at == (uint64_t)b * BS))
			fail_msg("copy of the top (depth %d): block %u data %d, model %d", m->n, b,
				 found && at == (uint64_t)b * BS, data);
		ndata += data;
	}
	uint64_t nz = nonzero_pages(m->content, MCHUNK);
	assert_int_equal(a.bytes, a.own);
	assert_true(a.own >= nz * 4096 && a.own <= nz * 4096 + 64 * KiB);
	assert_true(a.own <= ndata * BS);
	assert_int_equal(chunkstore_delete(f->cs, dst), 0);
}

/* An offset and length: aligned to 4 KiB or 64 KiB, or not at all. */
static void rnd_range(struct model *m, uint64_t *off, size_t *len)
{
	uint32_t kind = rnd(m) % 8;
	size_t n;
	if (kind < 3)
		n = 1 + rnd(m) % 8192;
	else if (kind < 5)
		n = 4096 * (1 + rnd(m) % 4);
	else if (kind < 7)
		n = 1 + rnd(m) % (256 * KiB);
	else
		n = 64 * KiB * (1 + rnd(m) % 4);
	uint64_t o = rnd(m) % MCHUNK;
	if (rnd(m) % 2)
		o &= ~(uint64_t)(rnd(m) % 2 ? 4095 : 65535);
	if (o + n > MCHUNK)
		n = MCHUNK - o;
	*off = o;
	*len = n;
}

static void run_model(struct fixture *f, uint32_t seed, int ops, uint32_t ext_mode)
{
	struct model m = {.content = malloc(MCHUNK), .next_id = 1000000ull * seed, .seed = seed};
	uint8_t *data = malloc(MCHUNK), *buf = malloc(MCHUNK);
	int freezes = 0, deletes = 0, missing = 0;
	model_start(&m);
	if (rnd(&m) % 2)
		model_write(f, &m, 0, 0, NULL); /* a held, empty plain bottom */
	for (int op = 0; op < ops; op++) {
		uint32_t r = rnd(&m) % 100;
		uint64_t off;
		size_t len;
		if (r < 45) {
			rnd_range(&m, &off, &len);
			fill(data, len, rnd(&m));
			model_write(f, &m, off, len, data);
		} else if (r < 57) {
			rnd_range(&m, &off, &len);
			model_punch(f, &m, off, len);
		} else if (r < 60) {
			if (m.n == CHUNKSTORE_CHAIN_MAX + 1) {
				model_start(&m);
				continue;
			}
			/* Sometimes twice in a row: the layer between never writes
			 * (not held here, or held and empty, then deletable). */
			int times = rnd(&m) % 3 == 0 && m.n + 2 <= (int)CHUNKSTORE_CHAIN_MAX + 1 ? 2 : 1;
			for (int i = 0; i < times; i++) {
				uint32_t ext = ext_mode == 0   ? 4096
					       : ext_mode == 1 ? 64 * KiB
							       : (rnd(&m) % 2 ? 4096 : 64 * KiB);
				missing += !m.l[m.n - 1].held;
				model_freeze(&m, ext);
				freezes++;
				if (rnd(&m) % 3 == 0)
					model_write(f, &m, 0, 0, NULL); /* held, empty: deletable */
			}
		} else if (r < 63) {
			/* Delete a held base that never wrote anything: no change. */
			for (int k = 0; k < m.n - 1; k++) {
				if (m.l[k].held && !mwritten(&m.l[k])) {
					assert_int_equal(chunkstore_delete(f->cs, m.l[k].id), 0);
					m.l[k].held = false;
					deletes++;
					break;
				}
			}
		} else if (r < 64) {
			reopen(f, rnd(&m) % 2 ? 2 : 0);
		} else if (r < 75) {
			model_check_seek(f, &m, rnd(&m) % (MCHUNK + 1),
					 rnd(&m) % 2 ? CHUNKSTORE_SEEK_DATA : CHUNKSTORE_SEEK_HOLE);
		} else if (r < 80) {
			model_check_alloc(f, &m);
		} else {
			rnd_range(&m, &off, &len);
			model_check_read(f, &m, off, len, buf);
		}
		if (op % 64 == 0)
			model_check_read(f, &m, 0, MCHUNK, buf);
		if (op % 256 == 0)
			model_check_copy(f, &m, buf);
	}
	model_check_read(f, &m, 0, MCHUNK, buf);
	model_check_alloc(f, &m);
	model_check_copy(f, &m, buf);
	print_message("seed %u: %d ops, %d freezes (%d over a missing chunk), %d deletions, depth %d\n", seed, ops,
		      freezes, missing, deletes, m.n);
	free(m.content);
	free(data);
	free(buf);
}

static void test_random_model_4k(void **state) { run_model(*state, 1, 6000, 0); }
static void test_random_model_64k(void **state) { run_model(*state, 2, 6000, 1); }
static void test_random_model_mixed(void **state)
{
	run_model(*state, 3, 6000, 2);
	run_model(*state, 4, 6000, 2);
}


/* ---- copies for re-replication (export / import) ------------------------------------ */

/* Copies chunk from into chunk to of the same store, the way re-replication
 * does between servers, in pieces of per blocks. */
static void copy_over(struct fixture *f, uint64_t from, uint64_t to, uint32_t per, const struct chunkstore_base *base)
{
	struct chunkstore_export_info gi;
	assert_int_equal(chunkstore_export_geom(f->cs, from, &gi), 0);
	struct chunkstore_geom g = {.chunk_size = gi.chunk_size, .extent = gi.extent, .nbase = gi.extent ? 1 : 0,
				    .base = base};
	assert_int_equal(chunkstore_import_begin(f->cs, to, gi.version, &g), 0);
	uint8_t *ent = malloc((size_t)per * CHUNKSTORE_ENTRY_SIZE), *data = malloc((size_t)per * gi.block_size);
	for (uint32_t b = 0; b < gi.nblocks; b += per) {
		uint32_t n = gi.nblocks - b < per ? gi.nblocks - b : per;
		size_t dlen;
		assert_int_equal(chunkstore_export(f->cs, from, b, n, ent, data, (size_t)per * gi.block_size, &dlen), 0);
		assert_int_equal(chunkstore_import(f->cs, to, b, n, ent, data, dlen), 0);
	}
	free(ent);
	free(data);
}

static void test_export_import(void **state)
{
	struct fixture *f = *state;
	uint8_t *a = make_base(f, 1, 61), *r1 = malloc(MiB), *r2 = malloc(MiB), w[20000];
	struct chunkstore_base chain[1] = {{1, 1}};
	struct chunkstore_geom g = delta(MiB, 16 * KiB, chain, 1);
	fill(w, sizeof(w), 62);
	assert_int_equal(chunkstore_write(f->cs, 2, 1, &g, 5000, w, sizeof(w), NULL), 0); /* partial extents */
	assert_int_equal(chunkstore_write(f->cs, 2, 1, &g, 512 * KiB, w, 16 * KiB, NULL), 0);
	assert_int_equal(chunkstore_punch(f->cs, 2, 1, &g, 700 * KiB, 64 * KiB, NULL), 0); /* ZERO extents */
	copy_over(f, 2, 3, 5, chain);
	assert_int_equal(chunkstore_read(f->cs, 2, 1, chain, 1, 0, r1, MiB), 0);
	assert_int_equal(chunkstore_read(f->cs, 3, 1, chain, 1, 0, r2, MiB), 0);
	assert_memory_equal(r1, r2, MiB);
	struct chunkstore_stat s2, s3;
	assert_int_equal(chunkstore_stat(f->cs, 2, &s2), 0);
	assert_int_equal(chunkstore_stat(f->cs, 3, &s3), 0);
	assert_int_equal(s3.own, s2.own);
	assert_int_equal(s3.extent, 16 * KiB);
	/* A plain chunk too, and a write that reached the copy before its piece
	 * (a mirrored write): the piece brings the source's state. */
	assert_int_equal(chunkstore_import_begin(f->cs, 4, 1, &(struct chunkstore_geom){.chunk_size = MiB}), 0);
	assert_int_equal(chunkstore_write(f->cs, 1, 1, &(struct chunkstore_geom){.chunk_size = MiB}, 100, w, 300, NULL), 0);
	assert_int_equal(chunkstore_write(f->cs, 4, 1, &(struct chunkstore_geom){.chunk_size = MiB}, 100, w, 300, NULL), 0);
	copy_over(f, 1, 4, 3, NULL);
	assert_int_equal(chunkstore_read(f->cs, 1, 1, NULL, 0, 0, r1, MiB), 0);
	assert_int_equal(chunkstore_read(f->cs, 4, 1, NULL, 0, 0, r2, MiB), 0);
	assert_memory_equal(r1, r2, MiB);
	/* Refusals: entries with unknown flags, data that does not match the
	 * CRCs, a range past the chunk. */
	uint8_t ent[16] = {0}, data[BS];
	memset(data, 7, sizeof(data));
	ent[4] = 0x10;
	assert_int_equal(chunkstore_import(f->cs, 4, 0, 1, ent, data, 0), -EINVAL);
	ent[4] = CHUNKSTORE_BLOCK_WRITTEN;
	assert_int_equal(chunkstore_import(f->cs, 4, 0, 1, ent, data, BS), -EINVAL);
	size_t dlen;
	assert_int_equal(chunkstore_export(f->cs, 4, 16, 1, ent, data, BS, &dlen), -EINVAL);
	/* A corrupt block is not exported: that replica is no source. */
	test_flip_chunk_byte(f->cs, 4, chunkstore_data_off(MiB) + 200);
	reopen(f, 0);
	assert_int_equal(chunkstore_export(f->cs, 4, 0, 1, ent, data, BS, &dlen), -EIO);
	free(a);
	free(r1);
	free(r2);
}

int main(void)
{
	log_init("test_ds_delta", LOG_ERROR); /* the refusals log errors on purpose */
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_export_import, setup, teardown),
		cmocka_unit_test_setup_teardown(test_whole_extent_write_copies_nothing, setup, teardown),
		cmocka_unit_test_setup_teardown(test_partial_write_copies_one_extent, setup, teardown),
		cmocka_unit_test_setup_teardown(test_partial_write_into_zero_extent, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unwritten_delta_reads_base, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cold_read_fetch, setup, teardown),
		cmocka_unit_test_setup_teardown(test_punch_hides_base, setup, teardown),
		cmocka_unit_test_setup_teardown(test_chain_missing_middle, setup, teardown),
		cmocka_unit_test_setup_teardown(test_seek_delta, setup, teardown),
		cmocka_unit_test_setup_teardown(test_alloc_own, setup, teardown),
		cmocka_unit_test_setup_teardown(test_space_scattered_writes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bases_mismatch, setup, teardown),
		cmocka_unit_test_setup_teardown(test_corrupt_base_block, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tiny_fd_cache, setup, teardown),
		cmocka_unit_test_setup_teardown(test_copy_plain, setup, teardown),
		cmocka_unit_test_setup_teardown(test_copy_delta_chain, setup, teardown),
		cmocka_unit_test_setup_teardown(test_copy_large_extents, setup, teardown),
		cmocka_unit_test_setup_teardown(test_copy_retry, setup, teardown),
		cmocka_unit_test_setup_teardown(test_copy_refusals, setup, teardown),
		cmocka_unit_test_setup_teardown(test_copy_in_flight, setup, teardown),
		cmocka_unit_test_setup_teardown(test_random_model_4k, setup, teardown),
		cmocka_unit_test_setup_teardown(test_random_model_64k, setup, teardown),
		cmocka_unit_test_setup_teardown(test_random_model_mixed, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
