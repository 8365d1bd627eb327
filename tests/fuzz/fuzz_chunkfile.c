/*
 * fuzz_chunkfile: feeds on-disk chunk files (header, block table with its
 * OWN/ZERO flags, block data; docs/ARCHITECTURE.md "Chunk files") to a data
 * server's chunkstore through its public API.
 *
 * Input: one flags byte, then up to FUZZ_FILES chunk files laid end to end,
 * each after the first starting at a multiple of 4096 bytes with the magic
 * "VDCHUNK1" (a delta and the bases its header names).  Each file is stored
 * as <dir>/<hh>/<id>.chk under the id its header names.  Flags bit 0
 * recomputes each header's CRC and bit 1 the CRC of every block the table
 * marks written, so that mutations reach the checks behind the CRCs.
 *
 * Then the store is opened and every chunk is stat'ed, read, sought, written,
 * punched and copied along the chain its headers describe.  A wrong file
 * must give an error, never a crash or an out-of-bounds access; and what
 * succeeds must be right: a range written (punched) reads back as written
 * (zeros), a copy reads as its source.
 */
#include "../unit/test_fs_util.h" /* before chunkstore.h: only the tree helpers */

#include "chunkstore.h"
#include "crc.h"
#include "fuzz_util.h"
#include "wire.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

#define FUZZ_FILES 3
#define FUZZ_FIX_HDR_CRC 1u
#define FUZZ_FIX_BLOCK_CRC 2u
#define FUZZ_IO_MAX (256u << 10) /* largest read or write tried */
#define FUZZ_COPY_ID 0x00fc0fc0fc0fc0fcull

/* Header field offsets, as docs/ARCHITECTURE.md lays them out. */
enum { H_FORMAT = 8, H_BS = 12, H_ID = 16, H_NBLOCKS = 28, H_SIZE = 32, H_CRC = 40, H_DELTA_CRC = 52 };

static char root[64];
static uint8_t *io_a, *io_b, *pattern;
static const uint8_t zeros[65536];

static void remove_root(void) { test_rm_tree(root); }

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	fuzz_quiet_log("fuzz_chunkfile");
	const char *tmp = getenv("TMPDIR");
	snprintf(root, sizeof(root), "%s/vdifs-fuzz-chunk.XXXXXX", tmp && strlen(tmp) < 32 ? tmp : "/tmp");
	FUZZ_CHECK(mkdtemp(root), "%s: %s", root, strerror(errno));
	atexit(remove_root);
	io_a = malloc(FUZZ_IO_MAX);
	io_b = malloc(FUZZ_IO_MAX);
	pattern = malloc(FUZZ_IO_MAX);
	FUZZ_CHECK(io_a && io_b && pattern, "out of memory");
	for (size_t i = 0; i < FUZZ_IO_MAX; i++)
		pattern[i] = (uint8_t)(i * 7 + 1);
	return 0;
}

struct fuzz_file {
	uint8_t *p; /* a copy: the CRC fix-ups write into it */
	size_t len;
	uint64_t id;
};

/* Fills in the CRCs the flags ask for, from the fields as they are. */
static void fix_crcs(struct fuzz_file *f, unsigned flags)
{
	if (f->len < CHUNKSTORE_HDR_SIZE)
		return;
	bool delta = le_get32(f->p + H_FORMAT) == CHUNKSTORE_FORMAT_DELTA;
	if (flags & FUZZ_FIX_HDR_CRC) {
		size_t at = delta ? H_DELTA_CRC : H_CRC;
		le_put32(f->p + at, crc32c_mask(crc32c(0, f->p, at)));
	}
	uint32_t bs = le_get32(f->p + H_BS), nblocks = le_get32(f->p + H_NBLOCKS);
	uint64_t size = le_get64(f->p + H_SIZE);
	if (!(flags & FUZZ_FIX_BLOCK_CRC) || bs == 0 || size == 0 || size > CHUNKSTORE_CHUNK_MAX)
		return;
	uint64_t data_off = delta ? chunkstore_delta_data_off(size, bs) : chunkstore_data_off(size);
	for (uint64_t b = 0; b < nblocks && CHUNKSTORE_HDR_SIZE + (b + 1) * 8 <= f->len; b++) {
		uint8_t *e = f->p + CHUNKSTORE_HDR_SIZE + b * 8;
		uint64_t start = b * bs;
		if (!(le_get32(e + 4) & CHUNKSTORE_BLOCK_WRITTEN) || start >= size)
			continue;
		uint64_t len = size - start < bs ? size - start : bs, off = data_off + start;
		uint64_t have = off < f->len ? f->len - off : 0;
		if (have > len)
			have = len;
		uint32_t crc = have ? crc32c(0, f->p + off, have) : 0;
		for (uint64_t z = have; z < len; z += sizeof(zeros)) /* past the end: zeros */
			crc = crc32c(crc, zeros, len - z < sizeof(zeros) ? len - z : sizeof(zeros));
		le_put32(e, crc32c_mask(crc));
	}
}

/* Splits the input into files (see the top) and names each by its header. */
static size_t split(const uint8_t *data, size_t size, struct fuzz_file *f)
{
	size_t n = 0, start = 0;
	for (size_t at = CHUNKSTORE_HDR_SIZE; n < FUZZ_FILES - 1 && at + 8 <= size; at += CHUNKSTORE_HDR_SIZE) {
		if (memcmp(data + at, CHUNKSTORE_MAGIC, 8) == 0) {
			f[n++] = (struct fuzz_file){.p = (uint8_t *)data + start, .len = at - start};
			start = at;
		}
	}
	f[n++] = (struct fuzz_file){.p = (uint8_t *)data + start, .len = size - start};
	for (size_t k = 0; k < n; k++) {
		f[k].id = f[k].len >= H_ID + 8 ? le_get64(f[k].p + H_ID) : 0;
		if (f[k].id == 0)
			f[k].id = k + 1; /* a name the header cannot match */
	}
	return n;
}

static void store_file(const struct fuzz_file *f, const char *dir)
{
	char path[256];
	snprintf(path, sizeof(path), "%s/%02x", dir, (unsigned)(f->id & 0xff));
	FUZZ_CHECK(mkdir(path, 0755) == 0 || errno == EEXIST, "%s: %s", path, strerror(errno));
	snprintf(path, sizeof(path), "%s/%02x/%016llx.chk", dir, (unsigned)(f->id & 0xff),
		 (unsigned long long)f->id);
	FILE *out = fopen(path, "wx");
	if (!out) { /* two files of one id: the first stays */
		FUZZ_CHECK(errno == EEXIST, "%s: %s", path, strerror(errno));
		return;
	}
	FUZZ_CHECK(fwrite(f->p, 1, f->len, out) == f->len && fclose(out) == 0, "%s: write failed", path);
}

/* The errors the API documents for bad chunks and requests. */
static bool expected(int rc)
{
	return rc == 0 || rc == -ENOENT || rc == -EIO || rc == -EINVAL || rc == -ESTALE || rc == -EBUSY;
}

/* Returns rc after checking it is one of those. */
static int call(const char *what, int rc)
{
	FUZZ_CHECK(expected(rc), "%s: %d (%s)", what, rc, strerror(-rc));
	return rc;
}

/* The chain the headers describe from chunk id: its base, that base's base
 * (when held here and a delta) and so on.  Returns its length. */
static uint32_t chain_of(struct chunkstore *cs, uint64_t id, const struct chunkstore_stat *st,
			 struct chunkstore_base *chain)
{
	uint32_t n = 0;
	struct chunkstore_stat bst = *st;
	while (bst.extent > 0 && n < CHUNKSTORE_CHAIN_MAX) {
		bool seen = bst.base.id == id || bst.base.id == 0;
		for (uint32_t k = 0; k < n; k++)
			seen |= chain[k].id == bst.base.id;
		if (seen)
			break;
		chain[n++] = bst.base;
		if (chunkstore_stat(cs, bst.base.id, &bst) < 0)
			break;
	}
	return n;
}

static uint64_t min_u64(uint64_t a, uint64_t b) { return a < b ? a : b; }

/* Reads [off, off+len) of the copy and of the source: when both succeed
 * they must agree. */
static void check_copy(struct chunkstore *cs, uint64_t id, const struct chunkstore_stat *st,
		       const struct chunkstore_base *chain, uint32_t n, uint64_t off, size_t len)
{
	int a = call("read source", chunkstore_read(cs, id, st->version, chain, n, off, io_a, len));
	int b = call("read copy", chunkstore_read(cs, FUZZ_COPY_ID, 1, NULL, 0, off, io_b, len));
	FUZZ_CHECK(a != 0 || b != 0 || memcmp(io_a, io_b, len) == 0,
		   "copy of chunk %016llx differs at [%llu, +%zu)", (unsigned long long)id,
		   (unsigned long long)off, len);
}

static void exercise(struct chunkstore *cs, uint64_t id)
{
	struct chunkstore_stat st;
	struct chunkstore_base chain[CHUNKSTORE_CHAIN_MAX];
	bool found;
	uint64_t at;
	if (call("stat", chunkstore_stat(cs, id, &st)) < 0) {
		call("read refused chunk", chunkstore_read(cs, id, 1, NULL, 0, 0, io_a, 1));
		return;
	}
	FUZZ_CHECK(st.chunk_size > 0 && st.chunk_size <= CHUNKSTORE_CHUNK_MAX, "chunk size %llu",
		   (unsigned long long)st.chunk_size);
	uint32_t n = chain_of(cs, id, &st, chain);
	uint32_t bs = st.extent ? st.extent : CHUNKSTORE_BLOCK_SIZE;
	uint64_t size = st.chunk_size;
	size_t len = (size_t)min_u64(size, FUZZ_IO_MAX);

	call("read head", chunkstore_read(cs, id, st.version, chain, n, 0, io_a, len));
	call("read tail", chunkstore_read(cs, id, st.version, chain, n, size - len, io_a, len));
	uint64_t mid = min_u64(bs - 1, size - 1);
	call("read across a block", chunkstore_read(cs, id, st.version, chain, n, mid, io_a, min_u64(2, size - mid)));
	for (int whence = CHUNKSTORE_SEEK_DATA; whence <= CHUNKSTORE_SEEK_HOLE; whence++) {
		call("seek", chunkstore_seek(cs, id, st.version, chain, n, 0, whence, &found, &at));
		call("seek mid", chunkstore_seek(cs, id, st.version, chain, n, size / 2, whence, &found, &at));
	}

	if (call("copy", chunkstore_copy(cs, FUZZ_COPY_ID, 1, id, st.version,
					 &(struct chunkstore_geom){size, st.extent, n, chain}, NULL)) == 0) {
		check_copy(cs, id, &st, chain, n, 0, len);
		check_copy(cs, id, &st, chain, n, size - len, len);
		call("delete copy", chunkstore_delete(cs, FUZZ_COPY_ID));
	}

	/* A write across a block boundary, then a punch inside it. */
	struct chunkstore_geom g = {size, st.extent, n, chain};
	uint64_t woff = min_u64(bs / 2, size - 1);
	size_t wlen = (size_t)min_u64(min_u64(bs, size - woff), FUZZ_IO_MAX);
	if (call("write", chunkstore_write(cs, id, st.version, &g, woff, pattern, wlen, NULL)) == 0 &&
	    call("read written", chunkstore_read(cs, id, st.version, chain, n, woff, io_a, wlen)) == 0)
		FUZZ_CHECK(memcmp(io_a, pattern, wlen) == 0, "chunk %016llx: a write reads back wrong",
			   (unsigned long long)id);
	uint64_t plen = wlen / 2;
	if (call("punch", chunkstore_punch(cs, id, st.version, &g, woff, plen, NULL)) == 0 &&
	    call("read punched", chunkstore_read(cs, id, st.version, chain, n, woff, io_a, plen)) == 0)
		FUZZ_CHECK(test_all_zero(io_a, plen), "chunk %016llx: a punch reads back non-zero",
			   (unsigned long long)id);
	call("sync", chunkstore_sync(cs, id, st.version));
	call("stat again", chunkstore_stat(cs, id, &st));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	uint8_t *copy = malloc(size);
	FUZZ_CHECK(copy, "out of memory");
	memcpy(copy, data, size);
	struct fuzz_file f[FUZZ_FILES];
	size_t n = split(copy + 1, size - 1, f);
	char dir[128];
	snprintf(dir, sizeof(dir), "%s/store", root);
	FUZZ_CHECK(mkdir(dir, 0755) == 0, "%s: %s", dir, strerror(errno));
	for (size_t k = 0; k < n; k++) {
		fix_crcs(&f[k], copy[0]);
		store_file(&f[k], dir);
	}

	const char *dirs[] = {dir};
	struct chunkstore_config cfg = {.dirs = dirs, .ndirs = 1, .fd_cache = 2};
	struct chunkstore *cs;
	char err[256];
	int rc = chunkstore_open(&cfg, &cs, err, sizeof(err));
	FUZZ_CHECK(rc == 0, "chunkstore_open: %s", err);
	struct chunkstore_space sp;
	call("space", chunkstore_space(cs, &sp));
	for (size_t k = 0; k < n; k++)
		exercise(cs, f[k].id);
	for (size_t k = 0; k < n; k++)
		call("delete", chunkstore_delete(cs, f[k].id));
	chunkstore_close(cs);
	test_rm_tree(dir);
	free(copy);
	return 0;
}
