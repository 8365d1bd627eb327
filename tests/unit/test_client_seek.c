/*
 * test_client_seek: lseek SEEK_DATA / SEEK_HOLE over a chunk layout
 * (vdifs_seek_layout, the code vdifs_file_seek runs).  The data-server part
 * is a fake that answers DS_SEEK from a per-chunk block bitmap, the way a
 * chunk file answers it; the result is checked against a naive scan of the
 * same file, byte offsets and block granularity, for random files and
 * offsets.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "client.h"

#define CS 65536u            /* chunk size of the fake volume */
#define BS 4096u             /* block size of the fake data servers */
#define NBLK (CS / BS)
#define NCHUNK 12

struct fake {
	bool present[NCHUNK];        /* in the layout */
	bool hole_entry[NCHUNK];     /* in the layout as a HOLE marker */
	bool data[NCHUNK][NBLK];     /* blocks written on the data servers */
	bool eof_found;              /* HOLE at the chunk's end: found=1 at CS, else found=0 */
	int fail_chunk;              /* -1, or the chunk whose DS_SEEK fails */
	int calls;
};

static int fake_seek(void *arg, const struct vdifs_chunk *ch, uint32_t off, int whence, uint32_t *res)
{
	struct fake *f = arg;
	f->calls++;
	assert_true(ch->index < NCHUNK);
	assert_true(f->present[ch->index] && !f->hole_entry[ch->index]);
	assert_true(off < CS);
	if ((int)ch->index == f->fail_chunk)
		return -EIO;
	for (uint32_t b = off / BS; b < NBLK; b++) {
		bool want = whence == VDIFS_SEEK_DATA;
		if (f->data[ch->index][b] == want) {
			*res = b * BS > off ? b * BS : off;
			return 1;
		}
	}
	if (whence == VDIFS_SEEK_HOLE && f->eof_found) {
		*res = CS;
		return 1;
	}
	return 0;
}

static void build_layout(const struct fake *f, struct vdifs_layout *l)
{
	vdifs_layout_init(l);
	for (uint64_t i = 0; i < NCHUNK; i++) {
		if (!f->present[i])
			continue;
		struct vdifs_chunk ch;
		memset(&ch, 0, sizeof(ch));
		ch.index = i;
		ch.chunk_id = 1000 + i;
		ch.flags = f->hole_entry[i] ? VDIFS_CHUNK_HOLE : 0;
		ch.nrep = f->hole_entry[i] ? 0 : 1;
		assert_int_equal(vdifs_layout_put(l, &ch), 0);
	}
}

static bool ref_is_data(const struct fake *f, uint64_t pos)
{
	uint64_t c = pos / CS;
	return c < NCHUNK && f->present[c] && !f->hole_entry[c] && f->data[c][(pos % CS) / BS];
}

/* lseek(2) semantics by a scan (block steps are exact: data is per block). */
static int64_t ref_seek(const struct fake *f, uint64_t size, uint64_t off, int whence)
{
	if (off >= size)
		return -ENXIO;
	for (uint64_t pos = off; pos < size; pos = (pos / BS + 1) * BS) {
		if (whence == SEEK_DATA && ref_is_data(f, pos))
			return (int64_t)pos;
		if (whence == SEEK_HOLE && !ref_is_data(f, pos))
			return (int64_t)pos;
	}
	return whence == SEEK_DATA ? -ENXIO : (int64_t)size;
}

static void test_fixed(void **state)
{
	(void)state;
	struct fake f;
	struct vdifs_layout l;
	memset(&f, 0, sizeof(f));
	f.fail_chunk = -1;
	/* chunk 0 absent, chunk 1 data in block 2 only, chunk 2 full, chunk 3 a HOLE entry. */
	f.present[1] = true;
	f.data[1][2] = true;
	f.present[2] = true;
	for (unsigned b = 0; b < NBLK; b++)
		f.data[2][b] = true;
	f.present[3] = f.hole_entry[3] = true;
	build_layout(&f, &l);
	uint64_t size = 4 * CS;
	assert_int_equal(vdifs_seek_layout(&l, NULL, CS, size, 0, SEEK_DATA, fake_seek, &f), CS + 2 * BS);
	assert_int_equal(vdifs_seek_layout(&l, NULL, CS, size, 0, SEEK_HOLE, fake_seek, &f), 0);
	assert_int_equal(vdifs_seek_layout(&l, NULL, CS, size, CS + 2 * BS + 7, SEEK_HOLE, fake_seek, &f),
			 CS + 3 * BS);
	/* Hole search through a full chunk lands in the HOLE entry after it. */
	assert_int_equal(vdifs_seek_layout(&l, NULL, CS, size, 2 * CS + 5, SEEK_HOLE, fake_seek, &f), 3 * CS);
	/* No data after the last data byte: ENXIO, even below the size. */
	assert_int_equal(vdifs_seek_layout(&l, NULL, CS, size, 3 * CS, SEEK_DATA, fake_seek, &f), -ENXIO);
	/* At or past the size: ENXIO for both. */
	assert_int_equal(vdifs_seek_layout(&l, NULL, CS, size, size, SEEK_DATA, fake_seek, &f), -ENXIO);
	assert_int_equal(vdifs_seek_layout(&l, NULL, CS, size, size, SEEK_HOLE, fake_seek, &f), -ENXIO);
	/* A file ending inside full data: the hole is the size. */
	assert_int_equal(vdifs_seek_layout(&l, NULL, CS, 2 * CS + 100, 2 * CS, SEEK_HOLE, fake_seek, &f),
			 2 * CS + 100);
	/* Data past the size does not count. */
	assert_int_equal(vdifs_seek_layout(&l, NULL, CS, CS + BS, CS, SEEK_DATA, fake_seek, &f), -ENXIO);
	/* An empty file. */
	assert_int_equal(vdifs_seek_layout(&l, NULL, CS, 0, 0, SEEK_HOLE, fake_seek, &f), -ENXIO);
	assert_int_equal(vdifs_seek_layout(&l, NULL, CS, size, 0, SEEK_SET, fake_seek, &f), -EINVAL);
	vdifs_layout_free(&l);
}

static void test_error_propagates(void **state)
{
	(void)state;
	struct fake f;
	struct vdifs_layout l;
	memset(&f, 0, sizeof(f));
	f.present[0] = true;
	f.fail_chunk = 0;
	build_layout(&f, &l);
	assert_int_equal(vdifs_seek_layout(&l, NULL, CS, CS, 0, SEEK_DATA, fake_seek, &f), -EIO);
	assert_int_equal(vdifs_seek_layout(&l, NULL, CS, CS, 0, SEEK_HOLE, fake_seek, &f), -EIO);
	vdifs_layout_free(&l);
}

/* A sparse layout of a huge file costs calls only for chunks that exist. */
static void test_sparse_is_cheap(void **state)
{
	(void)state;
	struct fake f;
	struct vdifs_layout l;
	memset(&f, 0, sizeof(f));
	f.fail_chunk = -1;
	f.present[NCHUNK - 1] = true;
	f.data[NCHUNK - 1][NBLK - 1] = true;
	build_layout(&f, &l);
	assert_int_equal(vdifs_seek_layout(&l, NULL, CS, (uint64_t)NCHUNK * CS, 0, SEEK_DATA, fake_seek, &f),
			 (int64_t)NCHUNK * CS - BS);
	assert_int_equal(f.calls, 1);
	vdifs_layout_free(&l);
}

static void test_random_against_scan(void **state)
{
	(void)state;
	pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
	srandom(777);
	for (int iter = 0; iter < 3000; iter++) {
		struct fake f;
		struct vdifs_layout l;
		memset(&f, 0, sizeof(f));
		f.fail_chunk = -1;
		f.eof_found = random() % 2;
		int density = 1 + (int)(random() % 4);
		for (int c = 0; c < NCHUNK; c++) {
			f.present[c] = random() % 3 != 0;
			f.hole_entry[c] = f.present[c] && random() % 6 == 0;
			for (unsigned b = 0; b < NBLK; b++)
				f.data[c][b] = f.present[c] && random() % 5 < density;
		}
		build_layout(&f, &l);
		uint64_t size = (uint64_t)random() % ((uint64_t)NCHUNK * CS + 1);
		for (int k = 0; k < 20; k++) {
			uint64_t off = (uint64_t)random() % ((uint64_t)NCHUNK * CS + CS);
			int whence = random() % 2 ? SEEK_DATA : SEEK_HOLE;
			int64_t want = ref_seek(&f, size, off, whence);
			int64_t got = vdifs_seek_layout(&l, random() % 2 ? &lock : NULL, CS, size, off, whence,
							fake_seek, &f);
			if (want != got)
				fail_msg("size %llu off %llu whence %d: want %lld got %lld", (unsigned long long)size,
					 (unsigned long long)off, whence, (long long)want, (long long)got);
		}
		vdifs_layout_free(&l);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_fixed),
		cmocka_unit_test(test_error_propagates),
		cmocka_unit_test(test_sparse_is_cheap),
		cmocka_unit_test(test_random_against_scan),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
