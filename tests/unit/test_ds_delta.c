/*
 * test_ds_delta: delta chunks (copy-on-write over a local base chain) in the
 * data server's chunkstore.  What a write copies from the base (counters),
 * reads and seeks through chains with missing members, punches hiding the
 * base, space (alloc/own, and the space bound of scattered 4 KiB writes),
 * refused chains and corrupt bases; then random writes, punches, freezes
 * (a new delta over the current chunk) and deletions of unwritten bases
 * against a naive byte-array model.
 */
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

#define KiB 1024ull
#define MiB (1024ull * 1024)
#define BS CHUNKSTORE_BLOCK_SIZE

struct fixture {
	char root[64];
	char dir[128];
	struct chunkstore *cs;
};

static int rm_cb(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(path);
}

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
	nftw(f->root, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
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

static bool all_zero(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i])
			return false;
	return true;
}

static uint64_t file_bytes(struct fixture *f, uint64_t id)
{
	char path[4096];
	struct stat st;
	assert_int_equal(chunkstore_path(f->cs, id, path, sizeof(path)), 0);
	assert_int_equal(stat(path, &st), 0);
	return (uint64_t)st.st_blocks * 512;
}

static void flip_byte(struct fixture *f, uint64_t id, uint64_t off)
{
	char path[4096];
	uint8_t b;
	assert_int_equal(chunkstore_path(f->cs, id, path, sizeof(path)), 0);
	int fd = open(path, O_RDWR);
	assert_true(fd >= 0);
	assert_int_equal(pread(fd, &b, 1, (off_t)off), 1);
	b ^= 0x5a;
	assert_int_equal(pwrite(fd, &b, 1, (off_t)off), 1);
	close(fd);
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
	assert_true(all_zero(r, 1000));
	assert_memory_equal(r + 1000, w, 100);
	assert_true(all_zero(r + 1100, 64 * KiB - 1100));
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
	assert_true(all_zero(r, 4096));
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
	assert_true(all_zero(r, MiB));
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
	/* A base held with another version: stale. */
	struct chunkstore_base stale[3] = {{12, 1}, {11, 1}, {10, 2}};
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
		total += file_bytes(f, 200 + (uint64_t)i);
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
	struct chunkstore_base chain[1] = {{1, 1}}, other[1] = {{5, 1}}, stale[1] = {{1, 2}};
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
	/* The base held with another version than named. */
	struct chunkstore_geom gs = delta(MiB, 4096, stale, 1);
	assert_int_equal(chunkstore_write(f->cs, 2, 1, &gs, 0, r, sizeof(r), NULL), -EINVAL); /* header: v1 */
	assert_int_equal(chunkstore_write(f->cs, 3, 1, &gs, 0, r, sizeof(r), NULL), -ESTALE);
	assert_int_equal(chunkstore_read(f->cs, 3, 1, stale, 1, 0, r, sizeof(r)), -ESTALE);
	assert_int_equal(chunkstore_stat(f->cs, 3, &(struct chunkstore_stat){0}), -ENOENT); /* not created */
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
	flip_byte(f, 1, chunkstore_data_off(MiB) + BS + 5000);
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
	flip_byte(f, 2, chunkstore_delta_data_off(MiB, 4096) + 10);
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
			mset(t, b, all_zero(m->content + s, gs) ? U_ZERO : U_OWN);
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
	}
	model_check_read(f, &m, 0, MCHUNK, buf);
	model_check_alloc(f, &m);
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

int main(void)
{
	log_init("test_ds_delta", LOG_ERROR); /* the refusals log errors on purpose */
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_whole_extent_write_copies_nothing, setup, teardown),
		cmocka_unit_test_setup_teardown(test_partial_write_copies_one_extent, setup, teardown),
		cmocka_unit_test_setup_teardown(test_partial_write_into_zero_extent, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unwritten_delta_reads_base, setup, teardown),
		cmocka_unit_test_setup_teardown(test_punch_hides_base, setup, teardown),
		cmocka_unit_test_setup_teardown(test_chain_missing_middle, setup, teardown),
		cmocka_unit_test_setup_teardown(test_seek_delta, setup, teardown),
		cmocka_unit_test_setup_teardown(test_alloc_own, setup, teardown),
		cmocka_unit_test_setup_teardown(test_space_scattered_writes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bases_mismatch, setup, teardown),
		cmocka_unit_test_setup_teardown(test_corrupt_base_block, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tiny_fd_cache, setup, teardown),
		cmocka_unit_test_setup_teardown(test_random_model_4k, setup, teardown),
		cmocka_unit_test_setup_teardown(test_random_model_64k, setup, teardown),
		cmocka_unit_test_setup_teardown(test_random_model_mixed, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
