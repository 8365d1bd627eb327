/*
 * test_ds_chunkstore: the data server's chunk files on a temporary directory.
 * Round trips, sparseness, CRC and header corruption, punch, seek, versions,
 * deletion, persistence, and random operations against a naive model.
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
#include <sys/statvfs.h>
#include <unistd.h>

#include <cmocka.h>

#include "chunkstore.h"
#include "log.h"
#include "test_fs_util.h"

#define BS CHUNKSTORE_BLOCK_SIZE
#define MiB (1024ull * 1024)

struct fixture {
	char root[64];
	char dir[2][128];
	struct chunkstore *cs;
};

/* The plain-chunk operations (extent 0, no bases) with the arguments they
 * had before delta chunks; a plain chunk's space is all its own. */
static int plain_write(struct chunkstore *cs, uint64_t id, uint32_t version, uint64_t chunk_size, uint64_t off,
		       const void *buf, size_t len, uint64_t *alloc)
{
	struct chunkstore_geom g = {.chunk_size = chunk_size};
	struct chunkstore_alloc a;
	int rc = chunkstore_write(cs, id, version, &g, off, buf, len, &a);
	if (rc == 0) {
		assert_int_equal(a.bytes, a.own);
		if (alloc)
			*alloc = a.bytes;
	}
	return rc;
}

static int plain_punch(struct chunkstore *cs, uint64_t id, uint32_t version, uint64_t chunk_size, uint64_t off,
		       uint64_t len, uint64_t *alloc)
{
	struct chunkstore_geom g = {.chunk_size = chunk_size};
	struct chunkstore_alloc a;
	int rc = chunkstore_punch(cs, id, version, &g, off, len, &a);
	if (rc == 0) {
		assert_int_equal(a.bytes, a.own);
		if (alloc)
			*alloc = a.bytes;
	}
	return rc;
}

static int plain_read(struct chunkstore *cs, uint64_t id, uint32_t version, uint64_t off, void *buf, size_t len)
{
	return chunkstore_read(cs, id, version, NULL, 0, off, buf, len);
}

static int plain_seek(struct chunkstore *cs, uint64_t id, uint32_t version, uint64_t off, int whence, bool *found,
		      uint64_t *out)
{
	return chunkstore_seek(cs, id, version, NULL, 0, off, whence, found, out);
}

static struct chunkstore *store_open(struct fixture *f, size_t ndirs, unsigned fd_cache)
{
	const char *dirs[2] = {f->dir[0], f->dir[1]};
	struct chunkstore_config cfg = {.dirs = dirs, .ndirs = ndirs, .fd_cache = fd_cache};
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
	snprintf(f->root, sizeof(f->root), "/tmp/test_ds_cs.XXXXXX");
	assert_non_null(mkdtemp(f->root));
	snprintf(f->dir[0], sizeof(f->dir[0]), "%s/d0", f->root);
	snprintf(f->dir[1], sizeof(f->dir[1]), "%s/d1", f->root);
	f->cs = store_open(f, 1, 0);
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

static void reopen(struct fixture *f, size_t ndirs, unsigned fd_cache)
{
	chunkstore_close(f->cs);
	f->cs = store_open(f, ndirs, fd_cache);
}

static void fill(uint8_t *p, size_t n, uint32_t seed)
{
	for (size_t i = 0; i < n; i++) {
		seed = seed * 1103515245u + 12345u;
		p[i] = (uint8_t)(seed >> 16);
	}
}

static void test_roundtrip_aligned(void **state)
{
	struct fixture *f = *state;
	size_t n = 1 * MiB;
	uint8_t *w = malloc(n), *r = malloc(n);
	uint64_t alloc = 0;
	fill(w, n, 1);
	assert_int_equal(plain_write(f->cs, 7, 1, 64 * MiB, 2 * MiB, w, n, &alloc), 0);
	assert_true(alloc >= n);
	assert_int_equal(plain_read(f->cs, 7, 1, 2 * MiB, r, n), 0);
	assert_memory_equal(w, r, n);
	/* One block alone, and a block-aligned middle part. */
	assert_int_equal(plain_read(f->cs, 7, 1, 2 * MiB + 3 * BS, r, BS), 0);
	assert_memory_equal(w + 3 * BS, r, BS);
	free(w);
	free(r);
}

static void test_roundtrip_unaligned(void **state)
{
	struct fixture *f = *state;
	size_t n = 300000;
	uint8_t *w = malloc(n), *r = malloc(n + 2 * BS), *w2 = malloc(4096);
	fill(w, n, 2);
	fill(w2, 4096, 3);
	/* Spans five blocks, starting and ending mid-block. */
	assert_int_equal(plain_write(f->cs, 9, 4, 8 * MiB, 60000, w, n, NULL), 0);
	assert_int_equal(plain_read(f->cs, 9, 4, 60000, r, n), 0);
	assert_memory_equal(w, r, n);
	/* A 4 KiB write inside a written block is merged with its neighbours. */
	assert_int_equal(plain_write(f->cs, 9, 4, 8 * MiB, 70001, w2, 4096, NULL), 0);
	memcpy(w + (70001 - 60000), w2, 4096);
	assert_int_equal(plain_read(f->cs, 9, 4, 60000, r, n), 0);
	assert_memory_equal(w, r, n);
	/* A read that starts in a hole and ends past the data. */
	assert_int_equal(plain_read(f->cs, 9, 4, 1000, r, n + BS), 0);
	assert_true(test_all_zero(r, 59000));
	assert_memory_equal(r + 59000, w, n);
	assert_true(test_all_zero(r + 59000 + n, BS - 59000));
	/* Odd sizes and single bytes. */
	assert_int_equal(plain_write(f->cs, 9, 4, 8 * MiB, 8 * MiB - 1, "z", 1, NULL), 0);
	assert_int_equal(plain_read(f->cs, 9, 4, 8 * MiB - 3, r, 3), 0);
	assert_memory_equal(r, "\0\0z", 3);
	free(w);
	free(r);
	free(w2);
}

static void test_sparse(void **state)
{
	struct fixture *f = *state;
	uint8_t w[4096], *r = malloc(MiB);
	uint64_t alloc = 0;
	fill(w, sizeof(w), 4);
	assert_int_equal(plain_write(f->cs, 11, 1, 64 * MiB, 10 * MiB + 8192, w, 4096, &alloc), 0);
	/* Only the written page (plus header and table) uses disk. */
	assert_true(alloc >= 4096 && alloc <= 16384);
	assert_true(test_chunk_file_bytes(f->cs, 11) <= chunkstore_data_off(64 * MiB) + 16384);
	assert_int_equal(plain_read(f->cs, 11, 1, 10 * MiB, r, MiB), 0);
	assert_true(test_all_zero(r, 8192));
	assert_memory_equal(r + 8192, w, 4096);
	assert_true(test_all_zero(r + 12288, MiB - 12288));
	assert_int_equal(plain_read(f->cs, 11, 1, 40 * MiB, r, MiB), 0);
	assert_true(test_all_zero(r, MiB));
	struct chunkstore_stat st;
	assert_int_equal(chunkstore_stat(f->cs, 11, &st), 0);
	assert_int_equal(st.version, 1);
	assert_int_equal(st.chunk_size, 64 * MiB);
	assert_int_equal(st.alloc, alloc);
	free(r);
}

static void test_crc_mismatch(void **state)
{
	struct fixture *f = *state;
	uint8_t w[3 * BS], r[3 * BS];
	uint64_t off = chunkstore_data_off(4 * MiB);
	fill(w, sizeof(w), 5);
	assert_int_equal(plain_write(f->cs, 13, 2, 4 * MiB, 0, w, sizeof(w), NULL), 0);
	test_flip_chunk_byte(f->cs, 13, off + BS + 777);
	/* Any read touching block 1 fails; blocks 0 and 2 still read. */
	assert_int_equal(plain_read(f->cs, 13, 2, 0, r, sizeof(r)), -EIO);
	assert_int_equal(plain_read(f->cs, 13, 2, BS + 4096, r, 10), -EIO);
	assert_int_equal(plain_read(f->cs, 13, 2, 0, r, BS), 0);
	assert_memory_equal(r, w, BS);
	assert_int_equal(plain_read(f->cs, 13, 2, 2 * BS, r, BS), 0);
	assert_memory_equal(r, w + 2 * BS, BS);
	/* After a reopen too (the table comes from disk). */
	reopen(f, 1, 0);
	assert_int_equal(plain_read(f->cs, 13, 2, BS + 700, r, 100), -EIO);
	/* A partial write or punch does not read the whole block, so it is not
	 * refused, but the block stays corrupt (test_partial_write_keeps_corruption);
	 * a whole-block write repairs it. */
	assert_int_equal(plain_write(f->cs, 13, 2, 4 * MiB, BS + 10, w, 10, NULL), 0);
	assert_int_equal(plain_read(f->cs, 13, 2, BS + 700, r, 100), -EIO);
	assert_int_equal(plain_punch(f->cs, 13, 2, 4 * MiB, BS + 10, 10, NULL), 0);
	assert_int_equal(plain_read(f->cs, 13, 2, BS, r, 10), -EIO);
	assert_int_equal(plain_write(f->cs, 13, 2, 4 * MiB, BS, w + BS, BS, NULL), 0);
	assert_int_equal(plain_read(f->cs, 13, 2, 0, r, sizeof(r)), 0);
	assert_memory_equal(r, w, sizeof(r));
	/* A corrupt table entry is caught the same way. */
	test_flip_chunk_byte(f->cs, 13, CHUNKSTORE_HDR_SIZE + 2 * 8 + 1);
	reopen(f, 1, 0);
	assert_int_equal(plain_read(f->cs, 13, 2, 2 * BS, r, 1), -EIO);
}

/* A partial write updates the block's CRC from the bytes it replaces only:
 * corruption elsewhere in the block must still fail the next read (nothing
 * masked), after any number of partial writes and punches, after a reopen,
 * whether the corruption is on disk or a torn write (data without its table
 * entry), while the neighbouring blocks and the written bytes stay intact. */
static void test_partial_write_keeps_corruption(void **state)
{
	struct fixture *f = *state;
	uint8_t w[3 * BS], r[3 * BS], p[4096];
	uint64_t off = chunkstore_data_off(4 * MiB);
	fill(w, sizeof(w), 21);
	fill(p, sizeof(p), 22);
	assert_int_equal(plain_write(f->cs, 14, 1, 4 * MiB, 0, w, sizeof(w), NULL), 0);

	/* A flipped byte at the end of block 1, a 4 KiB write at its start. */
	test_flip_chunk_byte(f->cs, 14, off + 2 * BS - 3);
	assert_int_equal(plain_write(f->cs, 14, 1, 4 * MiB, BS, p, sizeof(p), NULL), 0);
	assert_int_equal(plain_read(f->cs, 14, 1, BS, r, 4096), -EIO);
	assert_int_equal(plain_read(f->cs, 14, 1, BS + 8192, r, 10), -EIO);
	/* More partial writes and a partial punch do not wash it out... */
	for (int i = 0; i < 8; i++)
		assert_int_equal(plain_write(f->cs, 14, 1, 4 * MiB, BS + 4096 * (uint64_t)i + 100, p, 333, NULL), 0);
	assert_int_equal(plain_punch(f->cs, 14, 1, 4 * MiB, BS + 40000, 5000, NULL), 0);
	assert_int_equal(plain_read(f->cs, 14, 1, BS, r, BS), -EIO);
	/* ...nor does a reopen (the CRC comes from the table on disk). */
	reopen(f, 1, 0);
	assert_int_equal(plain_read(f->cs, 14, 1, BS, r, 1), -EIO);
	/* Blocks 0 and 2 are untouched and fine. */
	assert_int_equal(plain_read(f->cs, 14, 1, 0, r, BS), 0);
	assert_memory_equal(r, w, BS);
	assert_int_equal(plain_read(f->cs, 14, 1, 2 * BS, r, BS), 0);
	assert_memory_equal(r, w + 2 * BS, BS);
	/* The partial writes did reach the disk: flipping the byte back shows
	 * the block as those writes left it, and it checks again. */
	test_flip_chunk_byte(f->cs, 14, off + 2 * BS - 3);
	memcpy(w + BS, p, sizeof(p));
	for (int i = 0; i < 8; i++)
		memcpy(w + BS + 4096 * i + 100, p, 333);
	memset(w + BS + 40000, 0, 5000);
	assert_int_equal(plain_read(f->cs, 14, 1, 0, r, sizeof(r)), 0);
	assert_memory_equal(r, w, sizeof(r));

	/* Corruption inside the range written next: the write replaces the bad
	 * bytes, but the CRC was derived from them, so the block still reads
	 * as -EIO (a false alarm is allowed, a missed one is not). */
	test_flip_chunk_byte(f->cs, 14, off + 2 * BS + 50);
	assert_int_equal(plain_write(f->cs, 14, 1, 4 * MiB, 2 * BS + 48, p, 8, NULL), 0);
	assert_int_equal(plain_read(f->cs, 14, 1, 2 * BS, r, 8), -EIO);
	/* A whole-block write is trusted as is and repairs the block. */
	assert_int_equal(plain_write(f->cs, 14, 1, 4 * MiB, 2 * BS, w + 2 * BS, BS, NULL), 0);
	assert_int_equal(plain_read(f->cs, 14, 1, 0, r, sizeof(r)), 0);
	assert_memory_equal(r, w, sizeof(r));

	/* A torn write: new data on disk in block 0 without its table entry
	 * (a crash between the two pwrites).  A later partial write elsewhere in
	 * block 0 must not make the torn bytes pass. */
	char path[4096];
	assert_int_equal(chunkstore_path(f->cs, 14, path, sizeof(path)), 0);
	int fd = open(path, O_RDWR);
	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, p, 4096, (off_t)(off + 8192)), 4096);
	close(fd);
	assert_int_equal(plain_write(f->cs, 14, 1, 4 * MiB, 100, p, 200, NULL), 0);
	assert_int_equal(plain_read(f->cs, 14, 1, 0, r, 300), -EIO);
	reopen(f, 1, 0);
	assert_int_equal(plain_read(f->cs, 14, 1, 0, r, 300), -EIO);
}

static void test_corrupt_header(void **state)
{
	struct fixture *f = *state;
	uint8_t w[1000], r[1000];
	char path[4096];
	fill(w, sizeof(w), 6);
	assert_int_equal(plain_write(f->cs, 21, 1, MiB, 0, w, sizeof(w), NULL), 0);
	assert_int_equal(plain_write(f->cs, 22, 1, MiB, 0, w, sizeof(w), NULL), 0);
	assert_int_equal(plain_write(f->cs, 23, 1, MiB, 0, w, sizeof(w), NULL), 0);
	test_flip_chunk_byte(f->cs, 21, 20); /* inside the chunk id: header CRC no longer matches */
	assert_int_equal(chunkstore_path(f->cs, 23, path, sizeof(path)), 0);
	assert_int_equal(truncate(path, 100), 0);
	reopen(f, 1, 0);
	/* The store opened; the bad chunks are refused, the good one reads. */
	assert_int_equal(plain_read(f->cs, 21, 1, 0, r, sizeof(r)), -EIO);
	assert_int_equal(plain_write(f->cs, 21, 1, MiB, 0, w, 10, NULL), -EIO);
	assert_int_equal(plain_read(f->cs, 23, 1, 0, r, sizeof(r)), -EIO);
	struct chunkstore_stat st;
	assert_int_equal(chunkstore_stat(f->cs, 21, &st), -EIO);
	assert_int_equal(plain_read(f->cs, 22, 1, 0, r, sizeof(r)), 0);
	assert_memory_equal(r, w, sizeof(r));
	/* The corrupt file stays until deleted; then the id can be written anew. */
	assert_int_equal(chunkstore_path(f->cs, 21, path, sizeof(path)), 0);
	assert_int_equal(access(path, F_OK), 0);
	assert_int_equal(chunkstore_delete(f->cs, 21), 0);
	assert_int_equal(access(path, F_OK), -1);
	assert_int_equal(plain_write(f->cs, 21, 3, MiB, 0, w, 10, NULL), 0);
	assert_int_equal(plain_read(f->cs, 21, 3, 0, r, 10), 0);
	assert_memory_equal(r, w, 10);
}

static void test_punch_whole(void **state)
{
	struct fixture *f = *state;
	size_t n = 8 * BS;
	uint8_t *w = malloc(n), *r = malloc(n);
	uint64_t a0 = 0, a1 = 0;
	fill(w, n, 7);
	assert_int_equal(plain_write(f->cs, 31, 1, 64 * MiB, 0, w, n, &a0), 0);
	assert_int_equal(plain_punch(f->cs, 31, 1, 64 * MiB, 2 * BS, 3 * BS, &a1), 0);
	assert_int_equal(a0 - a1, 3 * BS); /* the space came back */
	memset(w + 2 * BS, 0, 3 * BS);
	assert_int_equal(plain_read(f->cs, 31, 1, 0, r, n), 0);
	assert_memory_equal(r, w, n);
	bool found;
	uint64_t at;
	assert_int_equal(plain_seek(f->cs, 31, 1, BS + 5, CHUNKSTORE_SEEK_HOLE, &found, &at), 0);
	assert_true(found);
	assert_int_equal(at, 2 * BS);
	/* Punching a range with holes and the end of the chunk. */
	assert_int_equal(plain_punch(f->cs, 31, 1, 64 * MiB, 0, 64 * MiB, &a1), 0);
	assert_int_equal(a1, 0);
	assert_int_equal(plain_read(f->cs, 31, 1, 0, r, n), 0);
	assert_true(test_all_zero(r, n));
	free(w);
	free(r);
}

static void test_punch_partial(void **state)
{
	struct fixture *f = *state;
	size_t n = 2 * BS;
	uint8_t *w = malloc(n), *r = malloc(n);
	fill(w, n, 8);
	assert_int_equal(plain_write(f->cs, 33, 1, MiB, 0, w, n, NULL), 0);
	/* 1000 bytes inside block 0, and a range across the block boundary. */
	assert_int_equal(plain_punch(f->cs, 33, 1, MiB, 5000, 1000, NULL), 0);
	memset(w + 5000, 0, 1000);
	assert_int_equal(plain_punch(f->cs, 33, 1, MiB, BS - 300, 700, NULL), 0);
	memset(w + BS - 300, 0, 700);
	assert_int_equal(plain_read(f->cs, 33, 1, 0, r, n), 0);
	assert_memory_equal(r, w, n);
	/* The CRCs written for the zeroed ranges hold after a reopen. */
	reopen(f, 1, 0);
	assert_int_equal(plain_read(f->cs, 33, 1, 0, r, n), 0);
	assert_memory_equal(r, w, n);
	/* Punching inside an unwritten block changes nothing and costs nothing. */
	uint64_t a0, a1;
	assert_int_equal(plain_punch(f->cs, 33, 1, MiB, 5 * BS + 1, 100, &a0), 0);
	assert_int_equal(plain_punch(f->cs, 33, 1, MiB, 5 * BS + 1, 100, &a1), 0);
	assert_int_equal(a0, a1);
	/* Punch creates a missing chunk, which then reads as zeros. */
	assert_int_equal(plain_punch(f->cs, 34, 2, MiB, 0, 100, &a0), 0);
	assert_int_equal(a0, 0);
	assert_int_equal(plain_read(f->cs, 34, 2, 0, r, 100), 0);
	assert_true(test_all_zero(r, 100));
	free(w);
	free(r);
}

static void test_seek(void **state)
{
	struct fixture *f = *state;
	uint8_t w[100];
	bool found;
	uint64_t at;
	fill(w, sizeof(w), 9);
	assert_int_equal(plain_write(f->cs, 41, 1, MiB, 3 * BS + 10, w, sizeof(w), NULL), 0);
	assert_int_equal(plain_write(f->cs, 41, 1, MiB, 15 * BS, w, sizeof(w), NULL), 0);
	assert_int_equal(plain_seek(f->cs, 41, 1, 0, CHUNKSTORE_SEEK_DATA, &found, &at), 0);
	assert_true(found);
	assert_int_equal(at, 3 * BS);
	assert_int_equal(plain_seek(f->cs, 41, 1, 3 * BS + 7, CHUNKSTORE_SEEK_DATA, &found, &at), 0);
	assert_true(found);
	assert_int_equal(at, 3 * BS + 7);
	assert_int_equal(plain_seek(f->cs, 41, 1, 3 * BS + 7, CHUNKSTORE_SEEK_HOLE, &found, &at), 0);
	assert_true(found);
	assert_int_equal(at, 4 * BS);
	assert_int_equal(plain_seek(f->cs, 41, 1, 4 * BS, CHUNKSTORE_SEEK_DATA, &found, &at), 0);
	assert_true(found);
	assert_int_equal(at, 15 * BS);
	assert_int_equal(plain_seek(f->cs, 41, 1, 15 * BS, CHUNKSTORE_SEEK_HOLE, &found, &at), 0);
	assert_false(found); /* no hole left in this chunk */
	assert_int_equal(plain_punch(f->cs, 41, 1, MiB, 15 * BS, BS, NULL), 0);
	assert_int_equal(plain_seek(f->cs, 41, 1, 4 * BS, CHUNKSTORE_SEEK_DATA, &found, &at), 0);
	assert_false(found);
	assert_int_equal(plain_seek(f->cs, 41, 1, MiB, CHUNKSTORE_SEEK_DATA, &found, &at), 0);
	assert_false(found);
	assert_int_equal(plain_seek(f->cs, 41, 1, MiB + 1, CHUNKSTORE_SEEK_DATA, &found, &at), -EINVAL);
	assert_int_equal(plain_seek(f->cs, 41, 1, 0, 7, &found, &at), -EINVAL);
	assert_int_equal(plain_seek(f->cs, 41, 0, 0, CHUNKSTORE_SEEK_DATA, &found, &at), -ESTALE);
	assert_int_equal(plain_seek(f->cs, 42, 1, 0, CHUNKSTORE_SEEK_DATA, &found, &at), -ENOENT);
}

static void test_version_and_bounds(void **state)
{
	struct fixture *f = *state;
	uint8_t w[10] = "abcdefghi", r[10];
	assert_int_equal(plain_write(f->cs, 51, 5, MiB, 0, w, 10, NULL), 0);
	/* An older version than held: a client with a stale layout. */
	assert_int_equal(plain_write(f->cs, 51, 4, MiB, 0, w, 10, NULL), -ESTALE);
	assert_int_equal(plain_read(f->cs, 51, 4, 0, r, 10), -ESTALE);
	assert_int_equal(plain_punch(f->cs, 51, 4, MiB, 0, 10, NULL), -ESTALE);
	assert_int_equal(chunkstore_sync(f->cs, 51, 4), -ESTALE);
	assert_int_equal(chunkstore_sync(f->cs, 51, 5), 0);
	assert_int_equal(chunkstore_sync(f->cs, 52, 5), -ENOENT);
	/* Geometry is fixed by the first write; ranges stay inside the chunk. */
	assert_int_equal(plain_write(f->cs, 51, 5, 2 * MiB, 0, w, 10, NULL), -EINVAL);
	assert_int_equal(plain_write(f->cs, 51, 5, MiB, MiB - 5, w, 10, NULL), -EINVAL);
	assert_int_equal(plain_write(f->cs, 51, 5, MiB, UINT64_MAX - 2, w, 10, NULL), -EINVAL);
	assert_int_equal(plain_read(f->cs, 51, 5, MiB - 5, r, 10), -EINVAL);
	assert_int_equal(plain_write(f->cs, 53, 1, 0, 0, w, 0, NULL), -EINVAL);
	assert_int_equal(plain_write(f->cs, 53, 1, CHUNKSTORE_CHUNK_MAX * 2, 0, w, 1, NULL), -EINVAL);
	assert_int_equal(plain_write(f->cs, 0, 1, MiB, 0, w, 1, NULL), -EINVAL);
	assert_int_equal(plain_read(f->cs, 53, 1, 0, r, 10), -ENOENT);
	assert_int_equal(plain_read(f->cs, 51, 5, 0, r, 10), 0);
	assert_memory_equal(r, w, 10);
	/* A newer version than held: the replica set changed and this replica
	 * is in it.  Reads serve it; writes and DS_SET_VERSION record it. */
	struct chunkstore_stat st;
	assert_int_equal(plain_read(f->cs, 51, 6, 0, r, 10), 0);
	assert_int_equal(chunkstore_stat(f->cs, 51, &st), 0);
	assert_int_equal(st.version, 5);
	assert_int_equal(plain_write(f->cs, 51, 6, MiB, 0, w, 10, NULL), 0);
	assert_int_equal(plain_write(f->cs, 51, 5, MiB, 0, w, 10, NULL), -ESTALE);
	assert_int_equal(chunkstore_set_version(f->cs, 51, 8), 0);
	assert_int_equal(chunkstore_set_version(f->cs, 51, 7), -ESTALE);
	assert_int_equal(chunkstore_set_version(f->cs, 52, 7), -ENOENT);
	reopen(f, 1, 0);
	assert_int_equal(chunkstore_stat(f->cs, 51, &st), 0);
	assert_int_equal(st.version, 8);
	assert_int_equal(plain_read(f->cs, 51, 8, 0, r, 10), 0);
	assert_memory_equal(r, w, 10);
}

static void test_delete(void **state)
{
	struct fixture *f = *state;
	uint8_t w[BS], r[10];
	struct chunkstore_space sp0, sp1, sp2;
	char path[4096];
	fill(w, sizeof(w), 10);
	assert_int_equal(chunkstore_space(f->cs, &sp0), 0);
	assert_int_equal(plain_write(f->cs, 61, 1, MiB, 0, w, sizeof(w), NULL), 0);
	assert_int_equal(chunkstore_space(f->cs, &sp1), 0);
	assert_int_equal(sp1.nchunks, sp0.nchunks + 1);
	assert_true(sp1.used >= sp0.used + BS);
	assert_int_equal(chunkstore_path(f->cs, 61, path, sizeof(path)), 0);
	assert_int_equal(chunkstore_delete(f->cs, 61), 0);
	assert_int_equal(access(path, F_OK), -1);
	assert_int_equal(chunkstore_sync_deletes(f->cs), 0);
	assert_int_equal(chunkstore_space(f->cs, &sp2), 0);
	assert_int_equal(sp2.nchunks, sp0.nchunks);
	assert_int_equal(sp2.used, sp0.used);
	assert_int_equal(plain_read(f->cs, 61, 1, 0, r, 10), -ENOENT);
	assert_int_equal(chunkstore_delete(f->cs, 61), -ENOENT);
	reopen(f, 1, 0);
	assert_int_equal(plain_read(f->cs, 61, 1, 0, r, 10), -ENOENT);
}

static void test_persistence(void **state)
{
	struct fixture *f = *state;
	uint8_t w[5000], r[5000];
	for (uint64_t id = 100; id < 400; id++) {
		fill(w, sizeof(w), (uint32_t)id);
		assert_int_equal(plain_write(f->cs, id, (uint32_t)id % 7, 2 * MiB, id * 1000, w,
						  sizeof(w), NULL),
				 0);
	}
	/* A leftover of an interrupted creation is removed on open. */
	char tmp[4096];
	snprintf(tmp, sizeof(tmp), "%s/05", f->dir[0]);
	mkdir(tmp, 0755); /* may exist already */
	snprintf(tmp, sizeof(tmp), "%s/05/0000000000000505.chk.tmp", f->dir[0]);
	int fd = open(tmp, O_CREAT | O_WRONLY, 0644);
	assert_true(fd >= 0);
	close(fd);
	reopen(f, 1, 16);
	assert_int_equal(access(tmp, F_OK), -1);
	struct chunkstore_space sp;
	assert_int_equal(chunkstore_space(f->cs, &sp), 0);
	assert_int_equal(sp.nchunks, 300);
	for (uint64_t id = 100; id < 400; id++) {
		fill(w, sizeof(w), (uint32_t)id);
		assert_int_equal(plain_read(f->cs, id, (uint32_t)id % 7, id * 1000, r, sizeof(r)), 0);
		assert_memory_equal(r, w, sizeof(r));
		struct chunkstore_stat st;
		assert_int_equal(chunkstore_stat(f->cs, id, &st), 0);
		assert_int_equal(st.version, id % 7);
		assert_int_equal(st.chunk_size, 2 * MiB);
	}
}

static void test_two_dirs(void **state)
{
	struct fixture *f = *state;
	uint8_t w[100], r[100];
	reopen(f, 2, 4);
	for (uint64_t id = 1; id <= 40; id++) {
		fill(w, sizeof(w), (uint32_t)id);
		assert_int_equal(plain_write(f->cs, id, 1, MiB, 0, w, sizeof(w), NULL), 0);
	}
	/* Both directories got chunks (same free space: round robin). */
	int in[2] = {0, 0};
	for (uint64_t id = 1; id <= 40; id++) {
		char path[4096];
		assert_int_equal(chunkstore_path(f->cs, id, path, sizeof(path)), 0);
		in[strncmp(path, f->dir[1], strlen(f->dir[1])) == 0]++;
	}
	assert_true(in[0] > 0 && in[1] > 0);
	/* Two directories on one file system count its space once. */
	struct chunkstore_space sp;
	struct statvfs sv;
	assert_int_equal(chunkstore_space(f->cs, &sp), 0);
	assert_int_equal(statvfs(f->dir[0], &sv), 0);
	assert_int_equal(sp.total, (uint64_t)sv.f_blocks * sv.f_frsize);
	reopen(f, 2, 4);
	for (uint64_t id = 1; id <= 40; id++) {
		fill(w, sizeof(w), (uint32_t)id);
		assert_int_equal(plain_read(f->cs, id, 1, 0, r, sizeof(r)), 0);
		assert_memory_equal(r, w, sizeof(r));
	}
	/* The same directory twice is refused. */
	const char *dirs[2] = {f->dir[0], f->dir[0]};
	struct chunkstore_config cfg = {.dirs = dirs, .ndirs = 2};
	struct chunkstore *cs2 = NULL;
	char err[256];
	assert_int_equal(chunkstore_open(&cfg, &cs2, err, sizeof(err)), -EINVAL);
	assert_null(cs2);
}

/* ---- random operations against a model ----------------------------------------- */

#define NCHUNK 3
#define MODEL_SIZE (MiB + 12345) /* a short last block */
#define MODEL_BLOCKS ((MODEL_SIZE + BS - 1) / BS)

struct model {
	bool exists;
	uint8_t *bytes;
	bool written[MODEL_BLOCKS];
};

static uint64_t rnd_state = 88172645463325252ull;
static uint64_t rnd(void)
{
	rnd_state ^= rnd_state << 13;
	rnd_state ^= rnd_state >> 7;
	rnd_state ^= rnd_state << 17;
	return rnd_state;
}

/* An offset biased toward block and page boundaries. */
static uint64_t rnd_off(uint64_t max)
{
	uint64_t o = rnd() % (max + 1);
	switch (rnd() % 4) {
	case 0: o -= o % BS; break;
	case 1: o -= o % 4096; break;
	default: break;
	}
	return o;
}

static uint64_t rnd_len(uint64_t max)
{
	uint64_t l;
	switch (rnd() % 5) {
	case 0: l = 4096; break;
	case 1: l = BS; break;
	case 2: l = rnd() % 300; break;
	case 3: l = rnd() % (3 * BS); break;
	default: l = rnd() % (MiB / 2); break;
	}
	return l > max ? max : l;
}

static void test_random_model(void **state)
{
	struct fixture *f = *state;
	struct model m[NCHUNK];
	uint8_t *buf = malloc(MODEL_SIZE), *rd = malloc(MODEL_SIZE);
	unsigned counts[4] = {0};
	for (int i = 0; i < NCHUNK; i++) {
		m[i].exists = false;
		m[i].bytes = calloc(1, MODEL_SIZE);
		memset(m[i].written, 0, sizeof(m[i].written));
	}
	reopen(f, 2, 2); /* a tiny fd cache: chunks are closed and reopened all the time */
	for (int op = 0; op < 6000; op++) {
		int i = (int)(rnd() % NCHUNK);
		uint64_t id = 1000 + (uint64_t)i;
		uint64_t off = rnd_off(MODEL_SIZE);
		uint64_t len = rnd_len(MODEL_SIZE - off);
		unsigned kind = (unsigned)(rnd() % 10);
		if (kind < 4) { /* write */
			fill(buf, len, (uint32_t)rnd());
			assert_int_equal(plain_write(f->cs, id, 1, MODEL_SIZE, off, buf, len, NULL), 0);
			memcpy(m[i].bytes + off, buf, len);
			for (uint64_t b = off / BS; len && b <= (off + len - 1) / BS; b++)
				m[i].written[b] = true;
			m[i].exists = true;
			counts[0]++;
		} else if (kind < 6) { /* punch */
			assert_int_equal(plain_punch(f->cs, id, 1, MODEL_SIZE, off, len, NULL), 0);
			memset(m[i].bytes + off, 0, len);
			for (uint64_t b = off / BS; len && b <= (off + len - 1) / BS; b++) {
				uint64_t s = b * BS, e = s + BS < MODEL_SIZE ? s + BS : MODEL_SIZE;
				if (off <= s && off + len >= e)
					m[i].written[b] = false;
			}
			m[i].exists = true;
			counts[1]++;
		} else if (kind < 9) { /* read */
			int rc = plain_read(f->cs, id, 1, off, rd, len);
			if (!m[i].exists) {
				assert_int_equal(rc, -ENOENT);
				continue;
			}
			assert_int_equal(rc, 0);
			if (memcmp(rd, m[i].bytes + off, len) != 0)
				fail_msg("op %d: chunk %d read of %llu at %llu differs", op, i,
					 (unsigned long long)len, (unsigned long long)off);
			counts[2]++;
		} else if (m[i].exists) { /* seek, or once in a while a reopen */
			if (rnd() % 20 == 0) {
				reopen(f, 2, 2);
				continue;
			}
			bool found, want = rnd() % 2;
			uint64_t at, exp_at = 0;
			bool exp_found = false;
			assert_int_equal(plain_seek(f->cs, id, 1, off,
							 want ? CHUNKSTORE_SEEK_DATA : CHUNKSTORE_SEEK_HOLE,
							 &found, &at),
					 0);
			for (uint64_t b = off / BS; b < MODEL_BLOCKS; b++) {
				if (m[i].written[b] == want) {
					exp_found = true;
					exp_at = off > b * BS ? off : b * BS;
					break;
				}
			}
			assert_int_equal(found, exp_found);
			if (found)
				assert_int_equal(at, exp_at);
			counts[3]++;
		}
	}
	/* Everything once more, whole chunks, after a final reopen. */
	reopen(f, 2, 2);
	for (int i = 0; i < NCHUNK; i++) {
		if (!m[i].exists)
			continue;
		assert_int_equal(plain_read(f->cs, 1000 + (uint64_t)i, 1, 0, rd, MODEL_SIZE), 0);
		assert_memory_equal(rd, m[i].bytes, MODEL_SIZE);
		free(m[i].bytes);
	}
	assert_true(counts[0] > 1000 && counts[1] > 500 && counts[2] > 1000 && counts[3] > 100);
	free(buf);
	free(rd);
}

int main(void)
{
	log_init("test_ds_chunkstore", LOG_ERROR);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_roundtrip_aligned, setup, teardown),
		cmocka_unit_test_setup_teardown(test_roundtrip_unaligned, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sparse, setup, teardown),
		cmocka_unit_test_setup_teardown(test_crc_mismatch, setup, teardown),
		cmocka_unit_test_setup_teardown(test_partial_write_keeps_corruption, setup, teardown),
		cmocka_unit_test_setup_teardown(test_corrupt_header, setup, teardown),
		cmocka_unit_test_setup_teardown(test_punch_whole, setup, teardown),
		cmocka_unit_test_setup_teardown(test_punch_partial, setup, teardown),
		cmocka_unit_test_setup_teardown(test_seek, setup, teardown),
		cmocka_unit_test_setup_teardown(test_version_and_bounds, setup, teardown),
		cmocka_unit_test_setup_teardown(test_delete, setup, teardown),
		cmocka_unit_test_setup_teardown(test_persistence, setup, teardown),
		cmocka_unit_test_setup_teardown(test_two_dirs, setup, teardown),
		cmocka_unit_test_setup_teardown(test_random_model, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
