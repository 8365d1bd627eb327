/*
 * chunkstore: chunk replicas as files on local disks (see chunkstore.h and
 * "Chunk files" in docs/ARCHITECTURE.md).
 *
 * Owns the chunk files, an index of chunk id -> directory (open addressing,
 * one slot per chunk, so a million chunks cost ~32 MB), and a bounded LRU
 * cache of open chunk files with their block tables in memory.
 *
 * Tuned for VM images: 4 KiB random and 1 MiB sequential I/O into 64 MiB
 * chunks.  A write is one pwrite per 64 KiB (or extent) of the range,
 * straight from the caller's bytes (see write_segs), plus one pwrite of the
 * table entries it changed; a partial block costs a read of the bytes it
 * replaces (not of the block): their difference updates the block's CRC
 * (block_patch_crc).  A read is one preadv per run of written blocks,
 * straight into the caller's buffer except for the partial blocks at its two
 * ends.  Nothing is fsynced except by chunkstore_sync(): a crash between a
 * data write and its table write leaves a block whose CRC does not match,
 * which reads as -EIO, never as wrong data.
 *
 * Delta chunks (clones and snapshots written after the fact) use the same
 * layout with the extent as block size, so the block table is the extent
 * map.  Their table is sparse on disk (only the pages of entries ever
 * written are allocated), so 4 KiB writes scattered over a clone of a large
 * image cost about what they write.  Reading an INHERIT range walks the
 * chain the request names (chain_read, held_find): at most
 * CHUNKSTORE_CHAIN_MAX chunks deep, each opened through the same LRU cache;
 * the chunks an operation is working in are pinned so that opening a base
 * never closes them.  An open delta keeps, per extent, whether the chain
 * shows data under it (struct cs_delta's view), so that the space it
 * reports is updated per write instead of recomputed over the table.
 *
 * A copy (chunkstore_copy_*) walks the source as a read would (held_walk:
 * the same recursion as reads) but only records where its data lies: runs
 * of a chunk's blocks with their CRCs, and a duplicate of each file.  That
 * map is all the copy thread needs: it reads each source chunk's blocks once
 * per 1 MiB window, checks them, and writes the blocks with data into a
 * temporary file that is synced and renamed into place.
 */
#include "chunkstore.h"

#include "crc.h"
#include "log.h"
#include "wire.h"

#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/uio.h>
#include <unistd.h>

#define BS CHUNKSTORE_BLOCK_SIZE
#define PAGE 4096u
#define XMAX CHUNKSTORE_EXTENT_MAX
#define ENTRIES_PER_PAGE (PAGE / CHUNKSTORE_ENTRY_SIZE)

_Static_assert(BS % PAGE == 0, "blocks are whole pages");
_Static_assert(CHUNKSTORE_EXTENT_MIN % PAGE == 0, "extents are whole pages");
_Static_assert(CHUNKSTORE_CHUNK_MAX / CHUNKSTORE_EXTENT_MIN <= UINT32_MAX, "block numbers fit in 32 bits");
_Static_assert(CHUNKSTORE_CHAIN_MAX < 32, "a chain's held members fit a u32 mask");

/* Header field offsets (docs/ARCHITECTURE.md). */
enum {
	HDR_MAGIC = 0,
	HDR_FORMAT = 8,
	HDR_BLOCK_SIZE = 12,
	HDR_ID = 16,
	HDR_VERSION = 24,
	HDR_NBLOCKS = 28,
	HDR_CHUNK_SIZE = 32,
	HDR_CRC = 40, /* format 1: masked crc32c of bytes [0, HDR_CRC) */
	HDR_BASE_ID = 40,      /* format 2 (delta): the immediate base */
	HDR_BASE_VERSION = 48,
	HDR_DELTA_CRC = 52,    /* format 2: masked crc32c of bytes [0, HDR_DELTA_CRC) */
};

/* State of a block (a delta's extent) from its table entry. */
enum blk_state { ST_INHERIT, ST_OWN, ST_ZERO };

struct cs_open;

/* One indexed chunk.  Slots move when the table grows or shrinks: nothing
 * keeps a pointer to a slot across an index change. */
struct cs_slot {
	uint64_t id;          /* 0: empty (chunk id 0 is never allocated) */
	uint64_t file_bytes;  /* st_blocks * 512 of the file when last seen */
	struct cs_open *open; /* in the fd cache, or NULL */
	uint32_t version;     /* from the header (0 while bad) */
	uint16_t dir;
	uint8_t bad;       /* header corrupt: refused until deleted */
	uint8_t dir_dirty; /* created since the last sync: fsync the directory too */
};

/* What an open delta knows beyond its table. */
struct cs_delta {
	struct chunkstore_base base; /* the immediate base, from the header */
	uint8_t *page_used;          /* bit per table page: written, so allocated on disk */
	uint32_t npages_used;
	/* The view: which INHERIT extents the chain shows data under, for
	 * the chain last named and the held/absent state of its members
	 * then (a member created or deleted since invalidates it). */
	bool view;
	uint32_t nchain;
	struct chunkstore_base chain[CHUNKSTORE_CHAIN_MAX];
	uint32_t held; /* bit k: chain[k] was held */
	uint64_t gen;  /* chunkstore.gen when built */
	uint8_t *inh;  /* bit per extent: INHERIT with data in the chain */
	uint32_t ninh; /* bits set in inh */
};

/* An open chunk file and its block table (the on-disk bytes). */
struct cs_open {
	uint64_t id;
	uint64_t chunk_size;
	uint64_t data_off;
	uint32_t version;
	uint32_t nblocks;
	uint32_t bs; /* block size: BS, or a delta's extent */
	int fd;
	unsigned pins;       /* operations working in it: never evicted while > 0 */
	uint8_t *table;
	struct cs_delta *d;  /* NULL: plain chunk */
	struct cs_open *prev, *next; /* LRU list, most recent first */
};

struct cs_dir {
	char *path;
	dev_t dev;
	ino_t ino;
	uint8_t unlinked[256 / 8]; /* subdirectories with unsynced unlinks */
};

struct chunkstore {
	void (*on_corrupt)(void *arg, uint64_t id); /* a block failed its CRC */
	void *on_corrupt_arg;
	struct cs_dir dirs[CHUNKSTORE_DIRS_MAX];
	size_t ndirs;
	struct cs_slot *slots;
	size_t cap; /* power of two */
	size_t count;
	struct cs_open *lru_head, *lru_tail;
	unsigned nopen, max_open;
	uint64_t used;
	unsigned next_dir;
	uint64_t gen;        /* bumped by every deletion: chain views built before are stale */
	uint8_t *scratch[2]; /* whole blocks at the two ends of a read (XMAX bytes each) */
	bool nowait;         /* reads take only what the page cache holds (chunkstore_read_cached) */
	uint8_t *cow[2];     /* extents being merged by a write or punch (XMAX bytes each) */
	uint32_t zero_crc;   /* crc32c of a block of zeros */
	struct chunkstore_copy_job *copies; /* prepared, not finished */
	struct chunkstore_counters ctr;
};

static const uint8_t zero_block[BS];

/* ---- geometry and table entries ------------------------------------------ */

static uint32_t nblocks_for(uint64_t chunk_size, uint32_t bs) { return (uint32_t)((chunk_size + bs - 1) / bs); }

static uint64_t data_off_for(uint64_t chunk_size, uint32_t bs)
{
	uint64_t table = (uint64_t)nblocks_for(chunk_size, bs) * CHUNKSTORE_ENTRY_SIZE;
	return CHUNKSTORE_HDR_SIZE + (table + PAGE - 1) / PAGE * PAGE;
}

uint64_t chunkstore_data_off(uint64_t chunk_size) { return data_off_for(chunk_size, BS); }
uint64_t chunkstore_delta_data_off(uint64_t chunk_size, uint32_t extent) { return data_off_for(chunk_size, extent); }

static bool is_extent(uint32_t x)
{
	return x >= CHUNKSTORE_EXTENT_MIN && x <= CHUNKSTORE_EXTENT_MAX && (x & (x - 1)) == 0;
}

static bool base_eq(const struct chunkstore_base *a, const struct chunkstore_base *b)
{
	return a->id == b->id && a->version == b->version;
}

/* A replica serves a request naming its version or a newer one: the MDS
 * bumps a chunk's version when its replica set changes and a replica still
 * in the set learns the new number from the next request (or a
 * DS_SET_VERSION).  A replica that was dropped from the set keeps the old
 * number and is never named again (docs/ARCHITECTURE.md, "Failures"); an
 * older number asked of a newer replica is a client with a stale layout. */
static bool version_ok(uint32_t held, uint32_t asked) { return held <= asked; }

/* Whether a delta's header names base b: by id, since the base's version
 * goes up when its replica set changes after the delta was made. */
static bool base_is(const struct chunkstore_base *hdr, const struct chunkstore_base *b) { return hdr->id == b->id; }

static uint32_t block_len(const struct cs_open *c, uint32_t b)
{
	uint64_t left = c->chunk_size - (uint64_t)b * c->bs;
	return left < c->bs ? (uint32_t)left : c->bs;
}

static uint32_t tab_crc(const struct cs_open *c, uint32_t b) { return le_get32(c->table + (size_t)b * 8); }
static bool tab_written(const struct cs_open *c, uint32_t b)
{
	return le_get32(c->table + (size_t)b * 8 + 4) & CHUNKSTORE_BLOCK_WRITTEN;
}
/* A plain chunk's unwritten block is ZERO; a delta's extent with neither
 * flag INHERIT. */
static enum blk_state tab_state(const struct cs_open *c, uint32_t b)
{
	uint32_t f = le_get32(c->table + (size_t)b * 8 + 4);
	if (f & CHUNKSTORE_BLOCK_WRITTEN)
		return ST_OWN;
	return !c->d || (f & CHUNKSTORE_BLOCK_ZERO) ? ST_ZERO : ST_INHERIT;
}

static bool bit_get(const uint8_t *m, uint32_t i) { return m[i / 8] >> (i % 8) & 1; }
static void bit_set(uint8_t *m, uint32_t i) { m[i / 8] |= (uint8_t)(1u << (i % 8)); }
static void bit_clear(uint8_t *m, uint32_t i) { m[i / 8] &= (uint8_t)~(1u << (i % 8)); }

/* Sets block b's entry (in memory; table_store writes it).  A delta extent
 * leaving INHERIT stops counting as inherited data. */
static void tab_set(struct cs_open *c, uint32_t b, uint32_t masked_crc, uint32_t flags)
{
	struct cs_delta *d = c->d;
	if (d && d->view && bit_get(d->inh, b) && (flags & (CHUNKSTORE_BLOCK_WRITTEN | CHUNKSTORE_BLOCK_ZERO))) {
		bit_clear(d->inh, b);
		d->ninh--;
	}
	le_put32(c->table + (size_t)b * 8, masked_crc);
	le_put32(c->table + (size_t)b * 8 + 4, flags);
}

/* Whether [off, off+len) covers block b entirely. */
static bool covers(const struct cs_open *c, uint32_t b, uint64_t off, uint64_t len)
{
	uint64_t start = (uint64_t)b * c->bs;
	return off <= start && off + len >= start + block_len(c, b);
}

/* Whether a chain is well formed for chunk id: at most CHUNKSTORE_CHAIN_MAX
 * bases, none 0, id itself or repeated. */
static bool chain_ok(uint64_t id, const struct chunkstore_base *chain, uint32_t n)
{
	if (n > CHUNKSTORE_CHAIN_MAX || (n > 0 && !chain))
		return false;
	for (uint32_t k = 0; k < n; k++) {
		if (chain[k].id == 0 || chain[k].id == id)
			return false;
		for (uint32_t j = 0; j < k; j++)
			if (chain[j].id == chain[k].id)
				return false;
	}
	return true;
}

static bool geom_ok(uint64_t id, const struct chunkstore_geom *g)
{
	if (id == 0 || g->chunk_size == 0 || g->chunk_size > CHUNKSTORE_CHUNK_MAX)
		return false;
	if (g->extent == 0)
		return g->nbase == 0;
	return is_extent(g->extent) && g->chunk_size % g->extent == 0 && g->nbase >= 1 &&
	       chain_ok(id, g->base, g->nbase);
}

/* ---- header ------------------------------------------------------------------ */

/* What a header says. */
struct hdr_info {
	uint32_t version;
	uint64_t chunk_size;
	uint32_t bs;
	bool delta;
	struct chunkstore_base base;
};

/* Encodes the header of a plain chunk (base NULL) or of a delta over base. */
static void hdr_encode(uint8_t *h, uint64_t id, uint32_t version, uint64_t chunk_size, uint32_t bs,
		       const struct chunkstore_base *base)
{
	memset(h, 0, CHUNKSTORE_HDR_SIZE);
	memcpy(h + HDR_MAGIC, CHUNKSTORE_MAGIC, 8);
	le_put32(h + HDR_FORMAT, base ? CHUNKSTORE_FORMAT_DELTA : CHUNKSTORE_FORMAT);
	le_put32(h + HDR_BLOCK_SIZE, bs);
	le_put64(h + HDR_ID, id);
	le_put32(h + HDR_VERSION, version);
	le_put32(h + HDR_NBLOCKS, nblocks_for(chunk_size, bs));
	le_put64(h + HDR_CHUNK_SIZE, chunk_size);
	if (!base) {
		le_put32(h + HDR_CRC, crc32c_mask(crc32c(0, h, HDR_CRC)));
		return;
	}
	le_put64(h + HDR_BASE_ID, base->id);
	le_put32(h + HDR_BASE_VERSION, base->version);
	le_put32(h + HDR_DELTA_CRC, crc32c_mask(crc32c(0, h, HDR_DELTA_CRC)));
}

/* Checks a header read from the file of chunk id.  Returns NULL and fills
 * *hi, or a reason for refusing the file. */
static const char *hdr_decode(const uint8_t *h, uint64_t id, struct hdr_info *hi)
{
	if (memcmp(h + HDR_MAGIC, CHUNKSTORE_MAGIC, 8) != 0)
		return "bad magic";
	uint32_t format = le_get32(h + HDR_FORMAT);
	if (format != CHUNKSTORE_FORMAT && format != CHUNKSTORE_FORMAT_DELTA)
		return "unknown format";
	bool delta = format == CHUNKSTORE_FORMAT_DELTA;
	size_t crc_at = delta ? HDR_DELTA_CRC : HDR_CRC;
	if (le_get32(h + crc_at) != crc32c_mask(crc32c(0, h, crc_at)))
		return "header CRC mismatch";
	uint32_t bs = le_get32(h + HDR_BLOCK_SIZE);
	if (delta ? !is_extent(bs) : bs != BS)
		return "unsupported block size";
	if (le_get64(h + HDR_ID) != id)
		return "chunk id does not match the file name";
	uint64_t size = le_get64(h + HDR_CHUNK_SIZE);
	if (size == 0 || size > CHUNKSTORE_CHUNK_MAX || (delta && size % bs != 0))
		return "bad chunk size";
	if (le_get32(h + HDR_NBLOCKS) != nblocks_for(size, bs))
		return "block count does not match the chunk size";
	memset(hi, 0, sizeof(*hi));
	if (delta) {
		hi->base.id = le_get64(h + HDR_BASE_ID);
		hi->base.version = le_get32(h + HDR_BASE_VERSION);
		if (hi->base.id == 0 || hi->base.id == id)
			return "bad base chunk";
	}
	hi->version = le_get32(h + HDR_VERSION);
	hi->chunk_size = size;
	hi->bs = bs;
	hi->delta = delta;
	return NULL;
}

/* ---- syscall helpers ----------------------------------------------------------- */

/* Reads until len bytes or end of file: bytes read, or -errno. */
static ssize_t pread_full(int fd, void *buf, size_t len, uint64_t off)
{
	size_t done = 0;
	while (done < len) {
		ssize_t n = pread(fd, (uint8_t *)buf + done, len - done, (off_t)(off + done));
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			break;
		done += (size_t)n;
	}
	return (ssize_t)done;
}

static int pwrite_full(int fd, const void *buf, size_t len, uint64_t off)
{
	size_t done = 0;
	while (done < len) {
		ssize_t n = pwrite(fd, (const uint8_t *)buf + done, len - done, (off_t)(off + done));
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		done += (size_t)n;
	}
	return 0;
}

/* Drops done bytes from the front of the iovecs (*iov, *n). */
static void iov_consume(struct iovec **iov, int *n, size_t done)
{
	while (*n > 0 && done >= (*iov)->iov_len) {
		done -= (*iov)->iov_len;
		(*iov)++;
		(*n)--;
	}
	if (*n > 0) {
		(*iov)->iov_base = (uint8_t *)(*iov)->iov_base + done;
		(*iov)->iov_len -= done;
	}
}

/* Fills the iovecs from off; what lies past the end of the file (a written
 * block cut short by a crash) reads as zeros and is left to the CRC check.
 * The iovecs are consumed.  flags: preadv2's (RWF_NOWAIT: -EAGAIN when a
 * page is not in the page cache).  0 or -errno. */
static int preadv_full(int fd, struct iovec *iov, int n, uint64_t off, int flags)
{
	while (n > 0) {
		ssize_t got = preadv2(fd, iov, n, (off_t)off, flags);
		if (got < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (got == 0) {
			for (int i = 0; i < n; i++)
				memset(iov[i].iov_base, 0, iov[i].iov_len);
			return 0;
		}
		off += (uint64_t)got;
		iov_consume(&iov, &n, (size_t)got);
	}
	return 0;
}

/* Writes the iovecs at off (they are consumed).  0 or -errno. */
static int pwritev_full(int fd, struct iovec *iov, int n, uint64_t off)
{
	while (n > 0) {
		ssize_t put = pwritev(fd, iov, n, (off_t)off);
		if (put < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		off += (uint64_t)put;
		iov_consume(&iov, &n, (size_t)put);
	}
	return 0;
}

static int fsync_path(const char *path)
{
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	int rc = fsync(fd) < 0 ? -errno : 0;
	close(fd);
	return rc;
}

/* ---- index ---------------------------------------------------------------------- */

static size_t slot_hash(uint64_t id)
{
	id ^= id >> 33;
	id *= 0xff51afd7ed558ccdull;
	id ^= id >> 33;
	id *= 0xc4ceb9fe1a85ec53ull;
	id ^= id >> 33;
	return (size_t)id;
}

static struct cs_slot *index_find(const struct chunkstore *cs, uint64_t id)
{
	size_t mask = cs->cap - 1;
	for (size_t i = slot_hash(id) & mask;; i = (i + 1) & mask) {
		if (cs->slots[i].id == id)
			return &cs->slots[i];
		if (cs->slots[i].id == 0)
			return NULL;
	}
}

static int index_resize(struct chunkstore *cs, size_t cap)
{
	struct cs_slot *slots = calloc(cap, sizeof(*slots));
	if (!slots)
		return -ENOMEM;
	for (size_t i = 0; i < cs->cap; i++) {
		if (cs->slots[i].id == 0)
			continue;
		size_t j = slot_hash(cs->slots[i].id) & (cap - 1);
		while (slots[j].id != 0)
			j = (j + 1) & (cap - 1);
		slots[j] = cs->slots[i];
	}
	free(cs->slots);
	cs->slots = slots;
	cs->cap = cap;
	return 0;
}

/* Adds id (not present) and returns its zeroed slot, or NULL (ENOMEM).
 * Invalidates every other slot pointer. */
static struct cs_slot *index_insert(struct chunkstore *cs, uint64_t id)
{
	if ((cs->count + 1) * 10 > cs->cap * 7 && index_resize(cs, cs->cap * 2) < 0)
		return NULL;
	size_t mask = cs->cap - 1, i = slot_hash(id) & mask;
	while (cs->slots[i].id != 0)
		i = (i + 1) & mask;
	memset(&cs->slots[i], 0, sizeof(cs->slots[i]));
	cs->slots[i].id = id;
	cs->count++;
	return &cs->slots[i];
}

/* Removes a slot, shifting back the entries of its probe run (no tombstones).
 * Invalidates every other slot pointer. */
static void index_remove(struct chunkstore *cs, struct cs_slot *s)
{
	size_t mask = cs->cap - 1, i = (size_t)(s - cs->slots), j = i;
	for (;;) {
		j = (j + 1) & mask;
		if (cs->slots[j].id == 0)
			break;
		size_t k = slot_hash(cs->slots[j].id) & mask;
		/* Entry j may fill hole i only if its home k is not in (i, j]. */
		bool stays = i <= j ? (i < k && k <= j) : (i < k || k <= j);
		if (stays)
			continue;
		cs->slots[i] = cs->slots[j];
		i = j;
	}
	memset(&cs->slots[i], 0, sizeof(cs->slots[i]));
	cs->count--;
}

/* ---- paths ------------------------------------------------------------------------ */

static int chunk_path(const struct chunkstore *cs, unsigned dir, uint64_t id, const char *suffix,
		      char *path, size_t cap)
{
	int n = snprintf(path, cap, "%s/%02x/%016" PRIx64 ".chk%s", cs->dirs[dir].path,
			 (unsigned)(id & 0xff), id, suffix);
	return n < 0 || (size_t)n >= cap ? -ENAMETOOLONG : 0;
}

static int sub_path(const struct chunkstore *cs, unsigned dir, unsigned hh, char *path, size_t cap)
{
	int n = snprintf(path, cap, "%s/%02x", cs->dirs[dir].path, hh);
	return n < 0 || (size_t)n >= cap ? -ENAMETOOLONG : 0;
}

int chunkstore_path(const struct chunkstore *cs, uint64_t id, char *path, size_t cap)
{
	const struct cs_slot *s = id ? index_find(cs, id) : NULL;
	if (!s)
		return -ENOENT;
	return chunk_path(cs, s->dir, id, "", path, cap);
}

/* ---- fd cache ---------------------------------------------------------------------- */

static void lru_unlink(struct chunkstore *cs, struct cs_open *c)
{
	if (c->prev)
		c->prev->next = c->next;
	else
		cs->lru_head = c->next;
	if (c->next)
		c->next->prev = c->prev;
	else
		cs->lru_tail = c->prev;
	c->prev = c->next = NULL;
}

static void lru_push(struct chunkstore *cs, struct cs_open *c)
{
	c->prev = NULL;
	c->next = cs->lru_head;
	if (cs->lru_head)
		cs->lru_head->prev = c;
	cs->lru_head = c;
	if (!cs->lru_tail)
		cs->lru_tail = c;
}

static void delta_free(struct cs_delta *d)
{
	if (!d)
		return;
	free(d->page_used);
	free(d->inh);
	free(d);
}

static void open_free(struct cs_open *c)
{
	if (c->fd >= 0)
		close(c->fd);
	free(c->table);
	delta_free(c->d);
	free(c);
}

/* Closes an open chunk (its slot, if any, forgets it). */
static void chunk_close(struct chunkstore *cs, struct cs_open *c)
{
	struct cs_slot *s = index_find(cs, c->id);
	if (s && s->open == c)
		s->open = NULL;
	lru_unlink(cs, c);
	cs->nopen--;
	open_free(c);
}

/* Adds an open chunk to the cache, closing the least recently used ones
 * beyond the limit (not pinned ones: the cache may then exceed its limit by
 * the chunks a chain operation is working in). */
static void chunk_cache(struct chunkstore *cs, struct cs_slot *s, struct cs_open *c)
{
	struct cs_open *v = cs->lru_tail;
	while (cs->nopen >= cs->max_open && v) {
		struct cs_open *prev = v->prev;
		if (!v->pins)
			chunk_close(cs, v);
		v = prev;
	}
	lru_push(cs, c);
	cs->nopen++;
	s->open = c;
}

/* Table pages of a delta are allocated on disk once written; a page is
 * counted as used when one of its entries is not INHERIT (entries never go
 * back to INHERIT, and a table write covers only entries it sets). */
static void pages_mark(struct cs_open *c, uint32_t first, uint32_t last)
{
	struct cs_delta *d = c->d;
	if (!d)
		return;
	for (uint32_t p = first / ENTRIES_PER_PAGE; p <= last / ENTRIES_PER_PAGE; p++) {
		if (!bit_get(d->page_used, p)) {
			bit_set(d->page_used, p);
			d->npages_used++;
		}
	}
}

/* Allocates the delta state of c (geometry set) over base; pages_mark()
 * for entries already written.  0 or -ENOMEM. */
static int delta_init(struct cs_open *c, const struct chunkstore_base *base)
{
	struct cs_delta *d = calloc(1, sizeof(*d));
	uint32_t npages = (c->nblocks + ENTRIES_PER_PAGE - 1) / ENTRIES_PER_PAGE;
	if (!d)
		return -ENOMEM;
	d->base = *base;
	d->page_used = calloc((npages + 7) / 8, 1);
	d->inh = calloc((c->nblocks + 7) / 8, 1);
	if (!d->page_used || !d->inh) {
		delta_free(d);
		return -ENOMEM;
	}
	c->d = d;
	for (uint32_t b = 0; b < c->nblocks; b++)
		if (tab_state(c, b) != ST_INHERIT)
			pages_mark(c, b, b);
	return 0;
}

/* Opens the file of an indexed chunk and loads its table.  A header that has
 * gone bad since the scan marks the slot bad.  0 or -errno. */
static int chunk_load(struct chunkstore *cs, struct cs_slot *s, struct cs_open **out)
{
	char path[4096];
	uint8_t hdr[CHUNKSTORE_HDR_SIZE];
	struct hdr_info hi;
	struct cs_open *c = NULL;
	int rc = chunk_path(cs, s->dir, s->id, "", path, sizeof(path));
	if (rc < 0)
		return rc;
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->id = s->id;
	c->fd = open(path, O_RDWR | O_CLOEXEC);
	if (c->fd < 0) {
		rc = -errno;
		log_error("chunk %016" PRIx64 ": %s: %s", s->id, path, strerror(-rc));
		goto fail;
	}
	ssize_t n = pread_full(c->fd, hdr, sizeof(hdr), 0);
	if (n < 0) {
		rc = (int)n;
		log_error("chunk %016" PRIx64 ": %s: %s", s->id, path, strerror(-rc));
		goto fail;
	}
	const char *why = (size_t)n < sizeof(hdr) ? "file shorter than its header" : hdr_decode(hdr, s->id, &hi);
	if (why) {
		log_error("chunk %016" PRIx64 ": %s: %s: chunk refused", s->id, path, why);
		s->bad = 1;
		rc = -EIO;
		goto fail;
	}
	c->version = hi.version;
	c->chunk_size = hi.chunk_size;
	c->bs = hi.bs;
	c->nblocks = nblocks_for(c->chunk_size, c->bs);
	c->data_off = data_off_for(c->chunk_size, c->bs);
	size_t tlen = (size_t)c->nblocks * CHUNKSTORE_ENTRY_SIZE;
	c->table = malloc(tlen);
	if (!c->table) {
		rc = -ENOMEM;
		goto fail;
	}
	n = pread_full(c->fd, c->table, tlen, CHUNKSTORE_HDR_SIZE);
	if (n < 0 || (size_t)n < tlen) {
		rc = n < 0 ? (int)n : -EIO;
		log_error("chunk %016" PRIx64 ": %s: block table unreadable: %s", s->id, path,
			  n < 0 ? strerror(-rc) : "file too short");
		goto fail;
	}
	if (hi.delta && (rc = delta_init(c, &hi.base)) < 0)
		goto fail;
	chunk_cache(cs, s, c);
	*out = c;
	return 0;
fail:
	open_free(c);
	return rc;
}

/* The open chunk id: 0, -ENOENT (not here), -EIO (corrupt header), -errno. */
static int chunk_get(struct chunkstore *cs, uint64_t id, struct cs_open **out)
{
	struct cs_slot *s = id ? index_find(cs, id) : NULL;
	if (!s)
		return -ENOENT;
	if (s->bad)
		return -EIO;
	if (s->open) {
		if (cs->lru_head != s->open) {
			lru_unlink(cs, s->open);
			lru_push(cs, s->open);
		}
		*out = s->open;
		return 0;
	}
	return chunk_load(cs, s, out);
}

/* Refreshes the chunk's allocation from fstat and returns its space (see
 * struct chunkstore_alloc).  A delta's header and written table pages are
 * not its data; its inherited data counts when its view is valid. */
static struct chunkstore_alloc chunk_alloc(struct chunkstore *cs, const struct cs_open *c)
{
	struct chunkstore_alloc a = {0, 0};
	struct stat st;
	struct cs_slot *s = index_find(cs, c->id);
	if (fstat(c->fd, &st) < 0 || !s)
		return a;
	uint64_t bytes = (uint64_t)st.st_blocks * 512;
	cs->used = cs->used - s->file_bytes + bytes;
	s->file_bytes = bytes;
	uint64_t meta = c->d ? CHUNKSTORE_HDR_SIZE + (uint64_t)c->d->npages_used * PAGE : c->data_off;
	a.own = bytes > meta ? bytes - meta : 0;
	a.bytes = a.own + (c->d && c->d->view ? (uint64_t)c->d->ninh * c->bs : 0);
	return a;
}

/* ---- creation ------------------------------------------------------------------------ */

/* Creates the temporary file tmp of a chunk creation (and its subdirectory
 * sub when missing; a file left there by a crash is replaced): the fd or
 * -errno.  Touches no chunkstore. */
static int tmp_create(const char *tmp, const char *sub)
{
	for (int attempt = 0;; attempt++) {
		int fd = open(tmp, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
		if (fd >= 0)
			return fd;
		int rc = -errno;
		if (attempt >= 2)
			return rc;
		if (rc == -ENOENT && mkdir(sub, 0755) < 0 && errno != EEXIST)
			return -errno;
		if (rc == -EEXIST && unlink(tmp) < 0 && errno != ENOENT) /* left by a crash */
			return -errno;
		if (rc != -ENOENT && rc != -EEXIST)
			return rc;
	}
}

/* Creates the file of a new chunk in dir: header and table written to a
 * temporary name, then renamed into place, so a crash never leaves a chunk
 * file without a header.  A plain chunk's table is written (zeros); a
 * delta's is left a hole (ftruncate), allocated page by page as entries are
 * written.  Returns the open fd or -errno. */
static int create_in(struct chunkstore *cs, unsigned dir, uint64_t id, uint32_t version,
		     const struct chunkstore_geom *g)
{
	char tmp[4096], path[4096], sub[4096];
	bool delta = g->extent != 0;
	uint32_t bs = delta ? g->extent : BS;
	uint64_t data_off = data_off_for(g->chunk_size, bs);
	uint8_t *meta = NULL;
	int fd = -1, rc;
	if ((rc = chunk_path(cs, dir, id, ".tmp", tmp, sizeof(tmp))) < 0 ||
	    (rc = chunk_path(cs, dir, id, "", path, sizeof(path))) < 0 ||
	    (rc = sub_path(cs, dir, (unsigned)(id & 0xff), sub, sizeof(sub))) < 0)
		return rc;
	if ((fd = tmp_create(tmp, sub)) < 0)
		return fd;
	size_t mlen = delta ? CHUNKSTORE_HDR_SIZE : data_off;
	meta = calloc(1, mlen);
	if (!meta) {
		rc = -ENOMEM;
		goto fail;
	}
	hdr_encode(meta, id, version, g->chunk_size, bs, delta ? &g->base[0] : NULL);
	if ((rc = pwrite_full(fd, meta, mlen, 0)) < 0)
		goto fail;
	if (delta && ftruncate(fd, (off_t)data_off) < 0) {
		rc = -errno;
		goto fail;
	}
	if (rename(tmp, path) < 0) {
		rc = -errno;
		goto fail;
	}
	free(meta);
	return fd;
fail:
	free(meta);
	close(fd);
	unlink(tmp);
	return rc;
}

/* Orders the directories by available space (most first, round robin among
 * equals) into order; returns how many. */
static size_t dirs_by_space(struct chunkstore *cs, unsigned *order)
{
	uint64_t avail[CHUNKSTORE_DIRS_MAX];
	size_t n = cs->ndirs;
	unsigned start = cs->next_dir++ % n;
	for (size_t i = 0; i < n; i++) {
		unsigned d = (unsigned)((start + i) % n);
		struct statvfs sv;
		order[i] = d;
		avail[d] = statvfs(cs->dirs[d].path, &sv) == 0 ? (uint64_t)sv.f_bavail * sv.f_frsize : 0;
	}
	for (size_t i = 1; i < n; i++) { /* stable insertion sort: few dirs */
		unsigned d = order[i];
		size_t j = i;
		while (j > 0 && avail[order[j - 1]] < avail[d]) {
			order[j] = order[j - 1];
			j--;
		}
		order[j] = d;
	}
	return n;
}

/* Creates chunk id (not indexed) with geometry g in the roomiest directory
 * that takes it. */
static int chunk_create(struct chunkstore *cs, uint64_t id, uint32_t version, const struct chunkstore_geom *g,
			struct cs_open **out)
{
	unsigned order[CHUNKSTORE_DIRS_MAX];
	size_t n = dirs_by_space(cs, order);
	struct cs_open *c = NULL;
	int fd = -ENOSPC, rc;
	unsigned dir = 0;
	uint32_t bs = g->extent ? g->extent : BS;
	for (size_t i = 0; i < n; i++) {
		dir = order[i];
		fd = create_in(cs, dir, id, version, g);
		if (fd >= 0 || (fd != -ENOSPC && fd != -EDQUOT))
			break;
	}
	if (fd < 0) {
		log_error("chunk %016" PRIx64 ": cannot create: %s", id, strerror(-fd));
		return fd;
	}
	c = calloc(1, sizeof(*c));
	if (c) {
		c->fd = -1;
		c->id = id;
		c->version = version;
		c->chunk_size = g->chunk_size;
		c->bs = bs;
		c->nblocks = nblocks_for(g->chunk_size, bs);
		c->data_off = data_off_for(g->chunk_size, bs);
		c->table = calloc(c->nblocks, CHUNKSTORE_ENTRY_SIZE);
	}
	rc = -ENOMEM;
	if (!c || !c->table || (g->extent && (rc = delta_init(c, &g->base[0])) < 0))
		goto fail;
	struct cs_slot *s = index_insert(cs, id);
	if (!s) {
		rc = -ENOMEM;
		goto fail;
	}
	c->fd = fd;
	s->dir = (uint16_t)dir;
	s->version = version;
	s->dir_dirty = 1;
	chunk_cache(cs, s, c);
	chunk_alloc(cs, c);
	if (c->d)
		cs->ctr.deltas_created++;
	*out = c;
	return 0;
fail:
	if (c)
		open_free(c);
	close(fd);
	char path[4096];
	if (chunk_path(cs, dir, id, "", path, sizeof(path)) == 0)
		unlink(path);
	return rc;
}

/* Whether an existing chunk has the geometry g names (logged when not). */
static bool geom_matches(const struct cs_open *c, const struct chunkstore_geom *g)
{
	const char *why = NULL;
	if (c->chunk_size != g->chunk_size)
		why = "chunk size";
	else if ((g->extent != 0) != (c->d != NULL))
		why = c->d ? "a plain chunk's geometry for a delta" : "a delta's geometry for a plain chunk";
	else if (c->d && c->bs != g->extent)
		why = "extent";
	else if (c->d && !base_is(&c->d->base, &g->base[0]))
		why = "base";
	if (!why)
		return true;
	if (c->d)
		log_error("chunk %016" PRIx64 ": request does not match the chunk (%s): chunk size %" PRIu64
			  ", extent %" PRIu32 ", base %016" PRIx64 " v%" PRIu32 "; request: chunk size %" PRIu64
			  ", extent %" PRIu32 ", base %016" PRIx64 " v%" PRIu32,
			  c->id, why, c->chunk_size, c->bs, c->d->base.id, c->d->base.version, g->chunk_size,
			  g->extent, g->nbase ? g->base[0].id : 0, g->nbase ? g->base[0].version : 0);
	else
		log_error("chunk %016" PRIx64 ": request does not match the chunk (%s): chunk size %" PRIu64
			  " plain; request: chunk size %" PRIu64 ", extent %" PRIu32 ", %" PRIu32 " bases",
			  c->id, why, c->chunk_size, g->chunk_size, g->extent, g->nbase);
	return false;
}

/* Whether a held chunk is the one a read or seek with this chain expects:
 * a plain chunk with no chain, or a delta whose first base is the header's
 * (logged when not). */
static bool chain_matches(const struct cs_open *c, const struct chunkstore_base *chain, uint32_t n)
{
	if (!c->d && n == 0)
		return true;
	if (c->d && n > 0 && base_is(&c->d->base, &chain[0]))
		return true;
	if (c->d && n == 0)
		log_error("chunk %016" PRIx64 ": a delta over %016" PRIx64 " v%" PRIu32 " asked with no base", c->id,
			  c->d->base.id, c->d->base.version);
	else if (c->d)
		log_error("chunk %016" PRIx64 ": a delta over %016" PRIx64 " v%" PRIu32 " asked with first base %016" PRIx64
			  " v%" PRIu32,
			  c->id, c->d->base.id, c->d->base.version, chain[0].id, chain[0].version);
	else
		log_error("chunk %016" PRIx64 ": a plain chunk asked with %" PRIu32 " bases", c->id, n);
	return false;
}

/* ---- blocks -------------------------------------------------------------------------- */

/* Checks a whole block's bytes against its table CRC; a mismatch is logged
 * with the chunk, the block and the file: -EIO. */
static int block_check(const struct chunkstore *cs, const struct cs_open *c, uint32_t b,
		       const uint8_t *data)
{
	uint32_t want = tab_crc(c, b), got = crc32c_mask(crc32c(0, data, block_len(c, b)));
	if (want == got)
		return 0;
	char path[4096];
	if (chunkstore_path(cs, c->id, path, sizeof(path)) < 0)
		snprintf(path, sizeof(path), "?");
	log_error("chunk %016" PRIx64 " block %" PRIu32 ": CRC mismatch (stored %08" PRIx32
		  ", computed %08" PRIx32 ") in %s",
		  c->id, b, want, got, path);
	if (cs->on_corrupt)
		cs->on_corrupt(cs->on_corrupt_arg, c->id);
	return -EIO;
}

/* Masked CRC block b will have once [off, off+len) of the chunk holds buf
 * (NULL: zeros); b is only partly covered, and written or a plain chunk's.
 * Reads the bytes being replaced, not the block: the new CRC is the stored
 * one updated by their difference (crc32c_replace).  The rest of the block
 * is not checked here: if it does not match the stored CRC (a corrupt block,
 * or a crash between a data write and its table write), the new CRC does not
 * match the new content either, and the next read still fails with -EIO.
 * The old bytes of an unwritten block are zeros.  Uses scratch[0].  0 or
 * -errno. */
static int block_patch_crc(const struct chunkstore *cs, const struct cs_open *c, uint32_t b, uint64_t off,
			   const uint8_t *buf, uint64_t len, uint32_t *crc)
{
	uint64_t start = (uint64_t)b * c->bs;
	uint32_t blen = block_len(c, b);
	uint64_t s = off > start ? off : start;
	uint64_t e = off + len < start + blen ? off + len : start + blen;
	const uint8_t *old = NULL;
	uint32_t base;
	assert(s < e && e - s < blen);
	assert(!c->d || tab_written(c, b));
	if (tab_written(c, b)) {
		/* What lies past the end of the file (a block cut short by a
		 * crash) reads as zeros, as in chunkstore_read(). */
		ssize_t n = pread_full(c->fd, cs->scratch[0], e - s, c->data_off + s);
		if (n < 0) {
			log_error("chunk %016" PRIx64 ": read of block %" PRIu32 ": %s", c->id, b, strerror((int)-n));
			return (int)n;
		}
		memset(cs->scratch[0] + n, 0, (e - s) - (size_t)n);
		old = cs->scratch[0];
		base = crc32c_unmask(tab_crc(c, b));
	} else {
		base = blen == BS ? cs->zero_crc : crc32c_zeros(blen);
	}
	*crc = crc32c_mask(crc32c_replace(base, blen, s - start, old, buf ? buf + (s - off) : NULL, e - s));
	return 0;
}

/*
 * Writes the segments, which follow each other in the chunk from offset,
 * with one pwritev per block (or part of one; per 64 KiB for deltas with
 * smaller extents), not one for the whole range.  The page cache gives a
 * write folios as large as the write (ext4 with large folios, Linux 6.x),
 * and every later small write into a large folio walks all of its buffer
 * heads: after 1 MiB writes, a 4 KiB overwrite cost 6.3 us instead of 1.6 us
 * on a 64 KiB folio (Linux 6.18, ext4, alone), and ext4_block_write_begin
 * was a quarter of a data server's time under 4 KiB random writes into a
 * sequentially written image.  Capping folios at one block (the unit of the
 * format anyway) took that benchmark from 15k to 19k IOPS.  The costs: a
 * 1 MiB write pays 15 more syscalls (about 30% more time in chunkstore_write
 * alone, no change measured in sequential MB/s end to end), and 4 KiB random
 * reads of data still cached in those folios ran about 5% slower end to end
 * (copies out of smaller folios cost more).  Data read back from disk gets
 * readahead-sized folios either way.  A delta's 4 KiB extents are written
 * 64 KiB at a time all the same: a 1 MiB write is 16 pwritev, not 256.
 * 0 or -errno.
 */
static int write_segs(const struct cs_open *c, uint64_t offset, const struct iovec *seg, int nseg)
{
	uint64_t piece = c->bs > BS ? c->bs : BS;
	size_t skip = 0; /* bytes of seg[i] already written */
	int i = 0;
	while (i < nseg) {
		struct iovec iov[4];
		int k = 0;
		uint64_t want = piece - offset % piece, got = 0;
		while (got < want && i < nseg && k < 4) {
			size_t take = seg[i].iov_len - skip;
			take = take < want - got ? take : (size_t)(want - got);
			if (take > 0)
				iov[k++] = (struct iovec){(uint8_t *)seg[i].iov_base + skip, take};
			got += take;
			skip += take;
			if (skip == seg[i].iov_len) {
				i++;
				skip = 0;
			}
		}
		if (k > 0) {
			int rc = pwritev_full(c->fd, iov, k, c->data_off + offset);
			if (rc < 0)
				return rc;
		}
		offset += got;
	}
	return 0;
}

/* Writes the table entries first..last (one pwrite). */
static int table_store(struct cs_open *c, uint32_t first, uint32_t last)
{
	int rc = pwrite_full(c->fd, c->table + (size_t)first * 8, (size_t)(last - first + 1) * 8,
			     CHUNKSTORE_HDR_SIZE + (uint64_t)first * 8);
	if (rc == 0)
		pages_mark(c, first, last);
	return rc;
}

/* Frees [off, off+len) of the file (it reads as zeros afterwards); where the
 * file system cannot punch, writes zeros when zero_fill, else leaves it. */
static int punch_file(const struct cs_open *c, uint64_t off, uint64_t len, bool zero_fill)
{
	if (fallocate(c->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)off, (off_t)len) == 0)
		return 0;
	if (errno != EOPNOTSUPP)
		return -errno;
	for (uint64_t done = 0; zero_fill && done < len;) {
		size_t n = len - done < BS ? (size_t)(len - done) : BS;
		int rc = pwrite_full(c->fd, zero_block, n, off + done);
		if (rc < 0)
			return rc;
		done += n;
	}
	return 0;
}

static bool range_ok(uint64_t chunk_size, uint64_t off, uint64_t len)
{
	return off <= chunk_size && len <= chunk_size - off;
}

static bool all_zero(const uint8_t *p, size_t n)
{
	return n == 0 || (p[0] == 0 && memcmp(p, p + 1, n - 1) == 0);
}

/* Reads the run of written blocks b0..b1 covering part of [off, off+len)
 * into dst (which holds that range): one preadv, partial end blocks through
 * the scratch buffers, every block checked. */
static int read_run(const struct chunkstore *cs, const struct cs_open *c, uint32_t b0, uint32_t b1,
		    uint64_t off, uint8_t *dst, uint64_t len)
{
	struct iovec iov[3];
	int n = 0;
	bool p0 = !covers(c, b0, off, len);
	bool p1 = b1 != b0 && !covers(c, b1, off, len);
	uint32_t mid0 = p0 ? b0 + 1 : b0, mid1 = p1 ? b1 - 1 : b1;
	if (p0)
		iov[n++] = (struct iovec){cs->scratch[0], block_len(c, b0)};
	if (mid0 <= mid1) {
		uint64_t s = (uint64_t)mid0 * c->bs, e = (uint64_t)mid1 * c->bs + block_len(c, mid1);
		iov[n++] = (struct iovec){dst + (s - off), e - s};
	}
	if (p1)
		iov[n++] = (struct iovec){cs->scratch[1], block_len(c, b1)};
	uint64_t at = c->data_off + (uint64_t)b0 * c->bs;
	if (cs->nowait && b1 > b0) {
		/* Several blocks: the last byte first.  Sequential readahead
		 * fills pages in order, so when it is missing the read would
		 * copy most of the range only to stop short and be done again.
		 * (One block: too little to waste for a syscall on every hit.) */
		uint64_t end = (uint64_t)b1 * c->bs + block_len(c, b1);
		uint8_t probe;
		struct iovec pv = {&probe, 1};
		if (preadv2(c->fd, &pv, 1, (off_t)(c->data_off + end - 1), RWF_NOWAIT) < 0 &&
		    (errno == EAGAIN || errno == EOPNOTSUPP))
			return -EAGAIN;
	}
	int rc = preadv_full(c->fd, iov, n, at, cs->nowait ? RWF_NOWAIT : 0);
	if (cs->nowait && (rc == -EAGAIN || rc == -EOPNOTSUPP))
		return -EAGAIN; /* not cached (or no RWF_NOWAIT here): the caller fetches it */
	if (rc < 0) {
		log_error("chunk %016" PRIx64 ": read: %s", c->id, strerror(-rc));
		return rc;
	}
	for (uint32_t b = b0; b <= b1; b++) {
		const uint8_t *data = (b == b0 && p0) ? cs->scratch[0]
				      : (b == b1 && p1) ? cs->scratch[1]
							: dst + ((uint64_t)b * c->bs - off);
		if ((rc = block_check(cs, c, b, data)) < 0)
			return rc;
	}
	for (int i = 0; i < 2; i++) {
		uint32_t b = i == 0 ? b0 : b1;
		if (!(i == 0 ? p0 : p1))
			continue;
		uint64_t start = (uint64_t)b * c->bs;
		uint64_t s = off > start ? off : start;
		uint64_t e = off + len < start + block_len(c, b) ? off + len : start + block_len(c, b);
		memcpy(dst + (s - off), cs->scratch[i] + (s - start), e - s);
	}
	return 0;
}

/* ---- chains ------------------------------------------------------------------------------ */

/*
 * A chain is the bases of a delta, nearest first, as a request names them;
 * the functions below take the part of it below the chunk they look at.
 * Member k is resolved when this server holds it, and skipped when not (a
 * layer that never wrote the chunk shows its own base).  Every member used
 * is checked: its version (-ESTALE), its chunk size (-EINVAL) and, for a
 * delta, that its header's base is the next member (-EINVAL).  Recursion is
 * at most CHUNKSTORE_CHAIN_MAX deep.
 */

/* What a walk over [off, off+len) of a chunk's content does with its parts,
 * in order: own() for the blocks b0..b1 of held chunk c (OWN extents, a
 * plain chunk's written blocks) showing [s, t); zero() (when not NULL) for
 * [s, t) reading as zeros (ZERO extents, unwritten blocks, an exhausted
 * chain). */
struct walk {
	int (*own)(struct chunkstore *cs, struct cs_open *c, uint32_t b0, uint32_t b1, uint64_t s, uint64_t t,
		   void *arg);
	void (*zero)(uint64_t s, uint64_t t, void *arg);
	void *arg;
	bool skip_inherit; /* the walked chunk's own INHERIT runs are left alone */
};

static int chain_walk(struct chunkstore *cs, const struct chunkstore_base *chain, uint32_t n,
		      uint64_t chunk_size, uint64_t off, uint64_t len, const struct walk *w);
static int chain_find(struct chunkstore *cs, const struct chunkstore_base *chain, uint32_t n,
		      uint64_t chunk_size, uint64_t from, uint64_t to, bool want, uint64_t *pos);

/* Opens chain[k] for resolving through it (chunk_size 0: any).  0 and the
 * chunk in *out, 1 when this server does not hold it, or -ESTALE, -EINVAL,
 * -EIO (a corrupt header), -errno. */
static int member_get(struct chunkstore *cs, const struct chunkstore_base *chain, uint32_t n, uint32_t k,
		      uint64_t chunk_size, struct cs_open **out)
{
	struct cs_open *m;
	int rc = chunk_get(cs, chain[k].id, &m);
	if (rc == -ENOENT)
		return 1;
	if (rc < 0)
		return rc;
	if (!version_ok(m->version, chain[k].version)) {
		log_warn("base chunk %016" PRIx64 ": version %" PRIu32 " asked, this server has %" PRIu32,
			 chain[k].id, chain[k].version, m->version);
		return -ESTALE;
	}
	if (chunk_size && m->chunk_size != chunk_size) {
		log_error("base chunk %016" PRIx64 ": chunk size %" PRIu64 ", not %" PRIu64 " as the chunk above it",
			  m->id, m->chunk_size, chunk_size);
		return -EINVAL;
	}
	if (m->d && (k + 1 >= n || !base_is(&m->d->base, &chain[k + 1]))) {
		log_error("base chunk %016" PRIx64 ": a delta over %016" PRIx64 " v%" PRIu32 ", but the chain names %s%016" PRIx64
			  " v%" PRIu32 " below it",
			  m->id, m->d->base.id, m->d->base.version, k + 1 < n ? "" : "nothing: ",
			  k + 1 < n ? chain[k + 1].id : 0, k + 1 < n ? chain[k + 1].version : 0);
		return -EINVAL;
	}
	*out = m;
	return 0;
}

/* Chunk size of the first member held here (0 when none): 0 or -errno. */
static int chain_size(struct chunkstore *cs, const struct chunkstore_base *chain, uint32_t n, uint64_t *size)
{
	*size = 0;
	for (uint32_t k = 0; k < n; k++) {
		struct cs_open *m;
		int rc = member_get(cs, chain, n, k, 0, &m);
		if (rc == 1)
			continue;
		if (rc == 0)
			*size = m->chunk_size;
		return rc;
	}
	return 0;
}

/* Walks [off, off+len) of held chunk c: its OWN runs, its ZERO runs, and
 * its INHERIT runs through chain (c's bases).  inherited (may be NULL): add
 * the INHERIT bytes to it.  0 or the first -errno of the walk. */
static int held_walk(struct chunkstore *cs, struct cs_open *c, const struct chunkstore_base *chain, uint32_t n,
		     uint64_t off, uint64_t len, const struct walk *w, uint64_t *inherited)
{
	int rc = 0;
	if (len == 0)
		return 0;
	uint32_t first = (uint32_t)(off / c->bs), last = (uint32_t)((off + len - 1) / c->bs);
	c->pins++;
	for (uint32_t b = first; b <= last && rc == 0;) {
		enum blk_state st = tab_state(c, b);
		uint32_t e = b;
		while (e < last && tab_state(c, e + 1) == st)
			e++;
		uint64_t start = (uint64_t)b * c->bs, end = (uint64_t)e * c->bs + block_len(c, e);
		uint64_t s = off > start ? off : start, t = off + len < end ? off + len : end;
		if (st == ST_OWN) {
			rc = w->own(cs, c, b, e, s, t, w->arg);
		} else if (st == ST_ZERO) {
			if (w->zero)
				w->zero(s, t, w->arg);
		} else if (!w->skip_inherit) {
			rc = chain_walk(cs, chain, n, c->chunk_size, s, t - s, w);
			if (rc == 0 && inherited)
				*inherited += t - s;
		}
		b = e + 1;
	}
	c->pins--;
	return rc;
}

/* Walks [off, off+len) as the chain shows it: 0 or -errno. */
static int chain_walk(struct chunkstore *cs, const struct chunkstore_base *chain, uint32_t n,
		      uint64_t chunk_size, uint64_t off, uint64_t len, const struct walk *w)
{
	for (uint32_t k = 0; k < n; k++) {
		struct cs_open *m;
		int rc = member_get(cs, chain, n, k, chunk_size, &m);
		if (rc == 1)
			continue;
		if (rc < 0)
			return rc;
		return held_walk(cs, m, chain + k + 1, n - k - 1, off, len, w, NULL);
	}
	if (w->zero && len > 0)
		w->zero(off, off + len, w->arg);
	return 0;
}

/* A read's destination: [off, ...) of the chunk lands at dst. */
struct read_dst {
	uint8_t *dst;
	uint64_t off;
};

static int read_own(struct chunkstore *cs, struct cs_open *c, uint32_t b0, uint32_t b1, uint64_t s, uint64_t t,
		    void *arg)
{
	const struct read_dst *r = arg;
	return read_run(cs, c, b0, b1, s, r->dst + (s - r->off), t - s);
}

static void read_zero(uint64_t s, uint64_t t, void *arg)
{
	const struct read_dst *r = arg;
	memset(r->dst + (s - r->off), 0, t - s);
}

/* Reads [off, off+len) as the chain shows it into dst: 0 or -errno. */
static int chain_read(struct chunkstore *cs, const struct chunkstore_base *chain, uint32_t n,
		      uint64_t chunk_size, uint64_t off, uint8_t *dst, uint64_t len)
{
	struct read_dst r = {dst, off};
	struct walk w = {read_own, read_zero, &r, false};
	return chain_walk(cs, chain, n, chunk_size, off, len, &w);
}

/* Reads [off, off+len) of held chunk c into dst: written (OWN) runs from its
 * file with CRC checks, ZERO runs as zeros, INHERIT runs through chain (c's
 * bases).  count: add the INHERIT bytes to chain_read_bytes.  0 or -errno. */
static int held_read(struct chunkstore *cs, struct cs_open *c, const struct chunkstore_base *chain, uint32_t n,
		     uint64_t off, uint8_t *dst, uint64_t len, bool count)
{
	struct read_dst r = {dst, off};
	struct walk w = {read_own, read_zero, &r, false};
	/* A delta straight over a plain base with scattered own extents (a
	 * clone of a golden image): read the base once over each stretch of
	 * inherited runs whose gaps are shorter than a base block, then lay
	 * the delta's own and zero runs over it.  Run by run, the base's
	 * checked blocks around every own extent would be read and checked
	 * twice, and the base read in small pieces.  A gap that short holds
	 * no whole base block, so no base block is read that the runs would
	 * not read anyway (a corrupt block hidden by the delta stays hidden). */
	uint64_t inherit = 0;
	if (!c->d || n != 1 || len == 0) {
		int rc = held_walk(cs, c, chain, n, off, len, &w, &inherit);
		if (rc == 0 && count) /* counted once, when read (not when a cached read stops short) */
			cs->ctr.chain_read_bytes += inherit;
		return rc;
	}
	uint32_t first = (uint32_t)(off / c->bs), last = (uint32_t)((off + len - 1) / c->bs);
	uint64_t span_s = 0, span_t = 0;
	bool open = false;
	for (uint32_t b = first; b <= last + 1; b++) {
		uint64_t s = 0, t = 0;
		if (b <= last && tab_state(c, b) == ST_INHERIT) {
			uint64_t b0 = (uint64_t)b * c->bs, b1 = b0 + block_len(c, b);
			s = off > b0 ? off : b0;
			t = off + len < b1 ? off + len : b1;
			inherit += t - s;
			if (open && s - span_t < BS) {
				span_t = t;
				continue;
			}
		} else if (b <= last) {
			continue;
		}
		if (open) {
			int rc = chain_read(cs, chain, n, c->chunk_size, span_s, dst + (span_s - off), span_t - span_s);
			if (rc < 0)
				return rc;
		}
		open = b <= last;
		span_s = s;
		span_t = t;
	}
	w.skip_inherit = true;
	int rc = held_walk(cs, c, chain, n, off, len, &w, NULL);
	if (rc == 0 && count)
		cs->ctr.chain_read_bytes += inherit;
	return rc;
}


/* First position in [from, to) where held chunk c shows data (want) or a
 * hole (!want), at block granularity, INHERIT runs as chain shows them:
 * 1 and *pos, 0 when there is none, or -errno. */
static int held_find(struct chunkstore *cs, struct cs_open *c, const struct chunkstore_base *chain, uint32_t n,
		     uint64_t from, uint64_t to, bool want, uint64_t *pos)
{
	int rc = 0;
	if (to > c->chunk_size)
		to = c->chunk_size;
	if (from >= to)
		return 0;
	c->pins++;
	for (uint32_t b = (uint32_t)(from / c->bs); b < c->nblocks && (uint64_t)b * c->bs < to;) {
		enum blk_state st = tab_state(c, b);
		uint32_t e = b;
		while (e + 1 < c->nblocks && (uint64_t)(e + 1) * c->bs < to && tab_state(c, e + 1) == st)
			e++;
		uint64_t start = (uint64_t)b * c->bs, end = (uint64_t)e * c->bs + block_len(c, e);
		uint64_t s = from > start ? from : start, t = to < end ? to : end;
		if (st == ST_INHERIT) {
			if ((rc = chain_find(cs, chain, n, c->chunk_size, s, t, want, pos)) != 0)
				break;
		} else if ((st == ST_OWN) == want) {
			*pos = s;
			rc = 1;
			break;
		}
		b = e + 1;
	}
	c->pins--;
	return rc;
}

/* As held_find, for what the chain shows in [from, to); an exhausted chain
 * is a hole. */
static int chain_find(struct chunkstore *cs, const struct chunkstore_base *chain, uint32_t n,
		      uint64_t chunk_size, uint64_t from, uint64_t to, bool want, uint64_t *pos)
{
	for (uint32_t k = 0; k < n; k++) {
		struct cs_open *m;
		int rc = member_get(cs, chain, n, k, chunk_size, &m);
		if (rc == 1)
			continue;
		if (rc < 0)
			return rc;
		return held_find(cs, m, chain + k + 1, n - k - 1, from, to, want, pos);
	}
	if (want || from >= to)
		return 0;
	*pos = from;
	return 1;
}

/* Bit k set when this server holds chain[k]. */
static uint32_t held_mask(const struct chunkstore *cs, const struct chunkstore_base *chain, uint32_t n)
{
	uint32_t mask = 0;
	for (uint32_t k = 0; k < n; k++)
		if (index_find(cs, chain[k].id))
			mask |= 1u << k;
	return mask;
}

/* (Re)builds delta c's view for chain: which INHERIT extents the chain
 * shows data under.  Two chain_find per run of data the chain shows (where
 * it starts, where it ends), so at worst about the size of the tables
 * involved times the chain's depth; done when a chunk is loaded and when the
 * chain or its members change, not per write.  0 or -errno (the view then
 * stays invalid). */
static int view_build(struct chunkstore *cs, struct cs_open *c, const struct chunkstore_base *chain, uint32_t n)
{
	struct cs_delta *d = c->d;
	int rc = 0;
	d->view = false;
	memset(d->inh, 0, (c->nblocks + 7) / 8);
	d->ninh = 0;
	c->pins++;
	for (uint32_t b = 0; b < c->nblocks && rc >= 0;) {
		if (tab_state(c, b) != ST_INHERIT) {
			b++;
			continue;
		}
		uint32_t e = b;
		while (e + 1 < c->nblocks && tab_state(c, e + 1) == ST_INHERIT)
			e++;
		uint64_t from = (uint64_t)b * c->bs, to = (uint64_t)(e + 1) * c->bs;
		while (from < to) {
			uint64_t p, q;
			rc = chain_find(cs, chain, n, c->chunk_size, from, to, true, &p);
			if (rc <= 0)
				break;
			/* Data in [p, q): every extent it touches has some. */
			rc = chain_find(cs, chain, n, c->chunk_size, p, to, false, &q);
			if (rc < 0)
				break;
			if (rc == 0)
				q = to;
			assert(q > p);
			if (q <= p) /* (cannot happen: p is data) never loop */
				q = p + 1;
			for (uint32_t x = (uint32_t)(p / c->bs); x <= (q - 1) / c->bs; x++) {
				bit_set(d->inh, x);
				d->ninh++;
			}
			from = ((q - 1) / c->bs + 1) * c->bs;
		}
		b = e + 1;
	}
	c->pins--;
	if (rc < 0)
		return rc;
	d->nchain = n;
	memcpy(d->chain, chain, (size_t)n * sizeof(*chain));
	d->held = held_mask(cs, chain, n);
	d->gen = cs->gen;
	d->view = true;
	return 0;
}

/* Makes delta c's view that of chain, unless it is already. */
static int view_ensure(struct chunkstore *cs, struct cs_open *c, const struct chunkstore_base *chain, uint32_t n)
{
	const struct cs_delta *d = c->d;
	bool current = d->view && d->gen == cs->gen && d->nchain == n;
	for (uint32_t k = 0; current && k < n; k++)
		current = base_eq(&d->chain[k], &chain[k]);
	if (current && held_mask(cs, chain, n) == d->held)
		return 0;
	return view_build(cs, c, chain, n);
}

/* The chain of delta c as far as the headers of the chunks held here tell
 * it (stops at a base not held here: what lies below it is unknown). */
static uint32_t chain_from_headers(struct chunkstore *cs, const struct cs_open *c, struct chunkstore_base *chain)
{
	uint32_t n = 0;
	chain[n++] = c->d->base;
	while (n < CHUNKSTORE_CHAIN_MAX) {
		struct cs_open *m;
		if (chunk_get(cs, chain[n - 1].id, &m) < 0 || m->version < chain[n - 1].version || !m->d)
			break;
		chain[n++] = m->d->base;
	}
	return n;
}

/* Fills buf with extent b of delta c as its chain shows it (a copy-on-write). */
static int cow_fill(struct chunkstore *cs, const struct cs_open *c, const struct chunkstore_base *chain, uint32_t n,
		    uint32_t b, uint8_t *buf)
{
	int rc = chain_read(cs, chain, n, c->chunk_size, (uint64_t)b * c->bs, buf, c->bs);
	if (rc < 0) {
		log_error("chunk %016" PRIx64 ": copy of extent %" PRIu32 " from its base %016" PRIx64 ": %s", c->id,
			  b, chain[0].id, strerror(-rc));
		return rc;
	}
	cs->ctr.cow_extents++;
	cs->ctr.cow_bytes += c->bs;
	return 0;
}

static bool copy_running(const struct chunkstore *cs, uint64_t id);

/* Records a newer version in c's header (see version_ok): 0 or -errno. */
static int chunk_upgrade(struct chunkstore *cs, struct cs_open *c, uint32_t version)
{
	if (c->version >= version)
		return 0;
	uint8_t h[CHUNKSTORE_HDR_SIZE];
	hdr_encode(h, c->id, version, c->chunk_size, c->bs, c->d ? &c->d->base : NULL);
	int rc = pwrite_full(c->fd, h, sizeof(h), 0);
	if (rc < 0) {
		log_error("chunk %016" PRIx64 ": cannot record version %" PRIu32 ": %s", c->id, version, strerror(-rc));
		return rc;
	}
	c->version = version;
	struct cs_slot *s = index_find(cs, c->id);
	if (s)
		s->version = version;
	return 0;
}

/* Whether held chunk c is the one a request names: 0, -ESTALE (a newer
 * version than asked), -EINVAL (another geometry, logged). */
static int chunk_is(const struct cs_open *c, uint32_t version, const struct chunkstore_geom *g)
{
	if (!version_ok(c->version, version))
		return -ESTALE;
	return geom_matches(c, g) ? 0 : -EINVAL;
}

/* The chunk a write or punch goes to, created when missing (after checking
 * the bases held here).  0, -EINVAL (bad geometry or not the chunk's),
 * -ESTALE, -EBUSY (a copy to it is running), -EIO, -errno. */
static int chunk_for_update(struct chunkstore *cs, uint64_t id, uint32_t version, const struct chunkstore_geom *g,
			    struct cs_open **out)
{
	struct cs_open *c;
	if (copy_running(cs, id))
		return -EBUSY;
	int rc = chunk_get(cs, id, &c);
	if (rc == -ENOENT) {
		for (uint32_t k = 0; k < g->nbase; k++) {
			struct cs_open *m;
			if ((rc = member_get(cs, g->base, g->nbase, k, g->chunk_size, &m)) < 0)
				return rc;
		}
		return chunk_create(cs, id, version, g, out);
	}
	if (rc < 0 || (rc = chunk_is(c, version, g)) < 0 || (rc = chunk_upgrade(cs, c, version)) < 0)
		return rc;
	*out = c;
	return 0;
}

/* ---- writes ------------------------------------------------------------------------------- */

static int write_plain(struct chunkstore *cs, struct cs_open *c, uint64_t offset, const uint8_t *src, size_t len)
{
	uint32_t first = (uint32_t)(offset / BS), last = (uint32_t)((offset + len - 1) / BS);
	uint32_t crc_first = 0, crc_last = 0;
	int rc;
	/* Partial blocks first: their old bytes are read before being overwritten. */
	if (!covers(c, first, offset, len) && (rc = block_patch_crc(cs, c, first, offset, src, len, &crc_first)) < 0)
		return rc;
	if (last != first && !covers(c, last, offset, len) &&
	    (rc = block_patch_crc(cs, c, last, offset, src, len, &crc_last)) < 0)
		return rc;
	struct iovec seg = {(void *)src, len};
	if ((rc = write_segs(c, offset, &seg, 1)) < 0) {
		log_error("chunk %016" PRIx64 ": write of %zu bytes at %" PRIu64 ": %s", c->id, len, offset, strerror(-rc));
		return rc;
	}
	for (uint32_t b = first; b <= last; b++) {
		uint32_t crc;
		if (!covers(c, b, offset, len))
			crc = b == first ? crc_first : crc_last;
		else
			crc = crc32c_mask(crc32c(0, src + ((uint64_t)b * BS - offset), block_len(c, b)));
		tab_set(c, b, crc, CHUNKSTORE_BLOCK_WRITTEN);
	}
	if ((rc = table_store(c, first, last)) < 0)
		log_error("chunk %016" PRIx64 ": block table write: %s", c->id, strerror(-rc));
	return rc;
}

/* A write into delta c: whole extents are written as they are; a partial
 * OWN extent as in a plain chunk; a partial ZERO or INHERIT extent is
 * merged in cow[] with zeros or with what the chain shows and written whole.
 * The merged end extents and the caller's bytes between them go out
 * together (write_segs), then the table entries. */
static int write_delta(struct chunkstore *cs, struct cs_open *c, const struct chunkstore_base *chain, uint32_t n,
		       uint64_t offset, const uint8_t *src, size_t len)
{
	uint32_t bs = c->bs;
	uint32_t first = (uint32_t)(offset / bs), last = (uint32_t)((offset + len - 1) / bs);
	uint32_t ends[2] = {first, last}, crc[2] = {0, 0};
	bool part[2] = {false, false}, merged[2] = {false, false};
	int nend = first == last ? 1 : 2, rc;
	uint64_t end = offset + len;
	for (int i = 0; i < nend; i++) {
		uint32_t b = ends[i];
		if (covers(c, b, offset, len))
			continue;
		part[i] = true;
		enum blk_state st = tab_state(c, b);
		if (st == ST_OWN) {
			if ((rc = block_patch_crc(cs, c, b, offset, src, len, &crc[i])) < 0)
				return rc;
			continue;
		}
		uint8_t *m = cs->cow[i];
		uint64_t start = (uint64_t)b * bs;
		if (st == ST_ZERO)
			memset(m, 0, bs);
		else if ((rc = cow_fill(cs, c, chain, n, b, m)) < 0)
			return rc;
		uint64_t s = offset > start ? offset : start, t = end < start + bs ? end : start + bs;
		memcpy(m + (s - start), src + (s - offset), t - s);
		crc[i] = crc32c_mask(crc32c(0, m, bs));
		merged[i] = true;
	}
	bool m_last = nend == 2 && merged[1];
	uint64_t ws = merged[0] ? (uint64_t)first * bs : offset;
	uint64_t mid_s = merged[0] ? (uint64_t)(first + 1) * bs : offset;
	uint64_t mid_e = m_last ? (uint64_t)last * bs : end;
	struct iovec seg[3];
	int ns = 0;
	if (merged[0])
		seg[ns++] = (struct iovec){cs->cow[0], bs};
	if (!(nend == 1 && merged[0])) {
		if (mid_s < mid_e)
			seg[ns++] = (struct iovec){(void *)(src + (mid_s - offset)), mid_e - mid_s};
		if (m_last)
			seg[ns++] = (struct iovec){cs->cow[1], bs};
	}
	if ((rc = write_segs(c, ws, seg, ns)) < 0) {
		log_error("chunk %016" PRIx64 ": write of %zu bytes at %" PRIu64 ": %s", c->id, len, offset, strerror(-rc));
		return rc;
	}
	for (uint32_t b = first; b <= last; b++) {
		int i = b == first ? 0 : b == last ? 1 : -1;
		uint32_t v = i >= 0 && part[i] ? crc[i] : crc32c_mask(crc32c(0, src + ((uint64_t)b * bs - offset), bs));
		tab_set(c, b, v, CHUNKSTORE_BLOCK_WRITTEN);
	}
	if ((rc = table_store(c, first, last)) < 0)
		log_error("chunk %016" PRIx64 ": block table write: %s", c->id, strerror(-rc));
	return rc;
}

int chunkstore_write(struct chunkstore *cs, uint64_t id, uint32_t version, const struct chunkstore_geom *g,
		     uint64_t offset, const void *buf, size_t len, struct chunkstore_alloc *alloc)
{
	struct cs_open *c;
	if (!geom_ok(id, g) || !range_ok(g->chunk_size, offset, len))
		return -EINVAL;
	int rc = chunk_for_update(cs, id, version, g, &c);
	if (rc < 0)
		return rc;
	c->pins++;
	if (c->d)
		rc = view_ensure(cs, c, g->base, g->nbase);
	if (rc == 0 && len > 0)
		rc = c->d ? write_delta(cs, c, g->base, g->nbase, offset, buf, len) : write_plain(cs, c, offset, buf, len);
	if (rc == 0) {
		struct chunkstore_alloc a = chunk_alloc(cs, c);
		if (alloc)
			*alloc = a;
	}
	c->pins--;
	return rc;
}

/* ---- reads ------------------------------------------------------------------------------- */

/* A delta's own extents lie scattered in its file among what it inherits,
 * each its own disk read: start all those of a read at once, so that they
 * arrive together (and while the base's runs are read) instead of one seek
 * after another.  A read the delta owns whole is one read anyway: no
 * syscall for it. */
static void prefetch_own(const struct cs_open *c, uint64_t off, uint64_t len)
{
	if (len == 0)
		return;
	uint32_t first = (uint32_t)(off / c->bs), last = (uint32_t)((off + len - 1) / c->bs);
	for (uint32_t b = first; b <= last; b++) {
		if (tab_state(c, b) != ST_OWN)
			continue;
		uint32_t e = b;
		while (e < last && tab_state(c, e + 1) == ST_OWN)
			e++;
		if (b == first && e == last)
			return;
		(void)posix_fadvise(c->fd, (off_t)(c->data_off + (uint64_t)b * c->bs), (off_t)(e - b + 1) * c->bs,
				    POSIX_FADV_WILLNEED);
		b = e;
	}
}

/* The chunk a read of [offset, offset+len) of id starts from, checked: 0
 * and *c, or *c NULL when this server does not hold id and its chain shows
 * through (*size: the chain's chunk size, 0 when no member is held); or
 * -errno as chunkstore_read. */
static int read_locate(struct chunkstore *cs, uint64_t id, uint32_t version, const struct chunkstore_base *chain,
		       uint32_t nchain, uint64_t offset, size_t len, struct cs_open **c, uint64_t *size)
{
	*c = NULL;
	*size = 0;
	if (!chain_ok(id, chain, nchain))
		return -EINVAL;
	int rc = chunk_get(cs, id, c);
	if (rc == -ENOENT && nchain > 0) {
		/* Never written here: it shows its chain. */
		*c = NULL;
		if ((rc = chain_size(cs, chain, nchain, size)) < 0)
			return rc;
		return range_ok(*size ? *size : CHUNKSTORE_CHUNK_MAX, offset, len) ? 0 : -EINVAL;
	}
	if (rc < 0)
		return rc;
	if (!version_ok((*c)->version, version))
		return -ESTALE;
	if (!chain_matches(*c, chain, nchain))
		return -EINVAL;
	return range_ok((*c)->chunk_size, offset, len) ? 0 : -EINVAL;
}

int chunkstore_read(struct chunkstore *cs, uint64_t id, uint32_t version, const struct chunkstore_base *chain,
		    uint32_t nchain, uint64_t offset, void *buf, size_t len)
{
	struct cs_open *c;
	uint64_t size;
	int rc = read_locate(cs, id, version, chain, nchain, offset, len, &c, &size);
	if (rc < 0)
		return rc;
	if (!c) {
		if ((rc = chain_read(cs, chain, nchain, size, offset, buf, len)) == 0)
			cs->ctr.chain_read_bytes += len;
		return rc;
	}
	if (c->d)
		prefetch_own(c, offset, len);
	return held_read(cs, c, chain, nchain, offset, buf, len, true);
}

int chunkstore_read_cached(struct chunkstore *cs, uint64_t id, uint32_t version, const struct chunkstore_base *chain,
			   uint32_t nchain, uint64_t offset, void *buf, size_t len)
{
	cs->nowait = true;
	int rc = chunkstore_read(cs, id, version, chain, nchain, offset, buf, len);
	cs->nowait = false;
	return rc;
}

/* ---- fetches (cold reads off the loop) ------------------------------------------------ */

/* Widens f's range of chunk c's file to its blocks b0..b1 (a walk's own()). */
static int fetch_own(struct chunkstore *cs, struct cs_open *c, uint32_t b0, uint32_t b1, uint64_t s, uint64_t t,
		     void *arg)
{
	(void)cs, (void)s, (void)t;
	struct chunkstore_fetch *f = arg;
	uint64_t lo = c->data_off + (uint64_t)b0 * c->bs, hi = c->data_off + (uint64_t)b1 * c->bs + block_len(c, b1);
	for (unsigned i = 0; i < f->n; i++) {
		struct chunkstore_fetch_range *r = &f->r[i];
		if (r->id != c->id)
			continue;
		r->start = lo < r->start ? lo : r->start;
		r->end = hi > r->end ? hi : r->end;
		return 0;
	}
	if (f->n == CHUNKSTORE_CHAIN_MAX + 1)
		return -E2BIG; /* cannot happen: one range per chain member */
	/* A duplicate now: opening a later member may close this one's fd. */
	int fd = fcntl(c->fd, F_DUPFD_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	f->r[f->n++] = (struct chunkstore_fetch_range){c->id, fd, lo, hi};
	return 0;
}

void chunkstore_fetch_release(struct chunkstore_fetch *f)
{
	for (unsigned i = 0; i < f->n; i++)
		close(f->r[i].fd);
	f->n = 0;
}

int chunkstore_fetch_plan(struct chunkstore *cs, uint64_t id, uint32_t version, const struct chunkstore_base *chain,
			  uint32_t nchain, uint64_t offset, size_t len, struct chunkstore_fetch *f)
{
	struct cs_open *c;
	uint64_t size;
	struct walk w = {fetch_own, NULL, f, false};
	f->n = 0;
	int rc = read_locate(cs, id, version, chain, nchain, offset, len, &c, &size);
	if (rc == 0)
		rc = c ? held_walk(cs, c, chain, nchain, offset, len, &w, NULL)
		       : chain_walk(cs, chain, nchain, size, offset, len, &w);
	if (rc < 0)
		chunkstore_fetch_release(f);
	return rc;
}

int chunkstore_pread_plan(struct chunkstore *cs, uint64_t id, uint32_t version, const struct chunkstore_base *chain,
			  uint32_t nchain, uint64_t offset, size_t len, struct chunkstore_pread *p)
{
	struct cs_open *c;
	uint64_t size;
	int rc = read_locate(cs, id, version, chain, nchain, offset, len, &c, &size);
	if (rc < 0)
		return rc;
	if (!c || c->d || len == 0)
		return -EOPNOTSUPP; /* through a chain: chunkstore_fetch_plan */
	uint32_t b0 = (uint32_t)(offset / c->bs), b1 = (uint32_t)((offset + len - 1) / c->bs);
	if (b1 - b0 + 1 > CHUNKSTORE_PREAD_BLOCKS)
		return -EOPNOTSUPP;
	int fd = fcntl(c->fd, F_DUPFD_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	*p = (struct chunkstore_pread){.id = id, .fd = fd, .file_off = c->data_off + (uint64_t)b0 * c->bs,
				       .skip = (uint32_t)(offset - (uint64_t)b0 * c->bs), .len = len,
				       .nblocks = b1 - b0 + 1, .bs = c->bs};
	for (uint32_t k = 0; k < p->nblocks; k++) {
		p->crc[k] = tab_crc(c, b0 + k);
		p->blen[k] = block_len(c, b0 + k);
		p->written[k] = tab_written(c, b0 + k);
	}
	return 0;
}

int chunkstore_pread_run(struct chunkstore_pread *p, uint8_t *buf)
{
	uint64_t total = (uint64_t)(p->nblocks - 1) * p->bs + p->blen[p->nblocks - 1];
	ssize_t n = pread_full(p->fd, buf, total, p->file_off);
	int rc = n < 0 ? (int)n : 0;
	if (n >= 0 && (uint64_t)n < total)
		memset(buf + n, 0, total - (uint64_t)n); /* a block cut short: left to its CRC */
	for (uint32_t k = 0; rc == 0 && k < p->nblocks; k++) {
		uint8_t *b = buf + (size_t)k * p->bs;
		if (!p->written[k])
			memset(b, 0, p->blen[k]);
		else if (crc32c_mask(crc32c(0, b, p->blen[k])) != p->crc[k])
			rc = -EIO; /* changed meanwhile, or corrupt: the loop's read tells */
	}
	close(p->fd);
	p->fd = -1;
	return rc;
}

void chunkstore_pread_release(struct chunkstore_pread *p)
{
	if (p->fd >= 0)
		close(p->fd);
	p->fd = -1;
}

void chunkstore_fetch_run(struct chunkstore_fetch *f, void *scratch, size_t scratch_len)
{
	/* Several files (a delta and its bases): start every range first, so
	 * that the disk sees them together.  One file: its own readahead
	 * (which a forced range would not advance) does better. */
	for (unsigned i = 0; f->n > 1 && i < f->n; i++)
		(void)posix_fadvise(f->r[i].fd, (off_t)f->r[i].start, (off_t)(f->r[i].end - f->r[i].start),
				    POSIX_FADV_WILLNEED);
	for (unsigned i = 0; i < f->n; i++) {
		for (uint64_t off = f->r[i].start; off < f->r[i].end;) {
			size_t n = f->r[i].end - off < scratch_len ? (size_t)(f->r[i].end - off) : scratch_len;
			if (pread_full(f->r[i].fd, scratch, n, off) <= 0)
				break; /* the read on the loop reports what is wrong */
			off += n;
		}
	}
	chunkstore_fetch_release(f);
}

/* ---- punches ------------------------------------------------------------------------------ */

static int punch_plain(struct chunkstore *cs, struct cs_open *c, uint64_t offset, uint64_t len)
{
	uint32_t first = (uint32_t)(offset / BS), last = (uint32_t)((offset + len - 1) / BS);
	uint32_t ends[2] = {first, last}, crc[2] = {0, 0};
	bool part[2];
	int rc;
	for (int i = 0; i < 2; i++) {
		part[i] = (i == 0 || last != first) && !covers(c, ends[i], offset, len) && tab_written(c, ends[i]);
		if (part[i] && (rc = block_patch_crc(cs, c, ends[i], offset, NULL, len, &crc[i])) < 0)
			return rc;
	}
	/* Whole blocks become holes; their content no longer matters. */
	int64_t w0 = covers(c, first, offset, len) ? first : (int64_t)first + 1;
	int64_t w1 = covers(c, last, offset, len) ? last : (int64_t)last - 1;
	if (w0 <= w1) {
		uint64_t s = (uint64_t)w0 * BS;
		uint64_t e = (uint64_t)w1 * BS + block_len(c, (uint32_t)w1);
		if ((rc = punch_file(c, c->data_off + s, e - s, false)) < 0)
			return rc;
		for (int64_t b = w0; b <= w1; b++)
			tab_set(c, (uint32_t)b, 0, 0);
	}
	for (int i = 0; i < 2; i++) {
		if (!part[i])
			continue;
		uint64_t start = (uint64_t)ends[i] * BS, end = start + block_len(c, ends[i]);
		uint64_t s = offset > start ? offset : start;
		uint64_t e = offset + len < end ? offset + len : end;
		if ((rc = punch_file(c, c->data_off + s, e - s, true)) < 0)
			return rc;
		tab_set(c, ends[i], crc[i], CHUNKSTORE_BLOCK_WRITTEN);
	}
	return table_store(c, first, last);
}

/* A punch of delta c: whole extents become ZERO; a partial OWN extent is
 * zeroed in place (as in a plain chunk), a partial INHERIT extent copied
 * from the chain and zeroed (ZERO when nothing else is left in it); a
 * partial ZERO extent is zeros already. */
static int punch_delta(struct chunkstore *cs, struct cs_open *c, const struct chunkstore_base *chain, uint32_t n,
		       uint64_t offset, uint64_t len)
{
	enum { P_NONE, P_PATCH, P_MERGED, P_ZERO } act[2] = {P_NONE, P_NONE};
	uint32_t bs = c->bs;
	uint32_t first = (uint32_t)(offset / bs), last = (uint32_t)((offset + len - 1) / bs);
	uint32_t ends[2] = {first, last}, crc[2] = {0, 0};
	int nend = first == last ? 1 : 2, rc;
	for (int i = 0; i < nend; i++) {
		uint32_t b = ends[i];
		if (covers(c, b, offset, len))
			continue;
		uint64_t start = (uint64_t)b * bs;
		uint64_t s = offset > start ? offset : start;
		uint64_t e = offset + len < start + bs ? offset + len : start + bs;
		switch (tab_state(c, b)) {
		case ST_ZERO:
			break;
		case ST_OWN:
			if ((rc = block_patch_crc(cs, c, b, offset, NULL, len, &crc[i])) < 0)
				return rc;
			act[i] = P_PATCH;
			break;
		case ST_INHERIT:
			if ((rc = cow_fill(cs, c, chain, n, b, cs->cow[i])) < 0)
				return rc;
			memset(cs->cow[i] + (s - start), 0, e - s);
			if (all_zero(cs->cow[i], bs)) {
				act[i] = P_ZERO;
			} else {
				crc[i] = crc32c_mask(crc32c(0, cs->cow[i], bs));
				act[i] = P_MERGED;
			}
			break;
		}
	}
	int64_t w0 = covers(c, first, offset, len) ? first : (int64_t)first + 1;
	int64_t w1 = covers(c, last, offset, len) ? last : (int64_t)last - 1;
	if (w0 <= w1) {
		uint64_t s = (uint64_t)w0 * bs, e = (uint64_t)(w1 + 1) * bs;
		if ((rc = punch_file(c, c->data_off + s, e - s, false)) < 0)
			return rc;
		for (int64_t b = w0; b <= w1; b++)
			tab_set(c, (uint32_t)b, 0, CHUNKSTORE_BLOCK_ZERO);
	}
	for (int i = 0; i < nend; i++) {
		uint32_t b = ends[i];
		uint64_t start = (uint64_t)b * bs;
		uint64_t s = offset > start ? offset : start;
		uint64_t e = offset + len < start + bs ? offset + len : start + bs;
		if (act[i] == P_PATCH) {
			if ((rc = punch_file(c, c->data_off + s, e - s, true)) < 0)
				return rc;
			tab_set(c, b, crc[i], CHUNKSTORE_BLOCK_WRITTEN);
		} else if (act[i] == P_MERGED) {
			if ((rc = pwrite_full(c->fd, cs->cow[i], bs, c->data_off + start)) < 0)
				return rc;
			tab_set(c, b, crc[i], CHUNKSTORE_BLOCK_WRITTEN);
		} else if (act[i] == P_ZERO) {
			tab_set(c, b, 0, CHUNKSTORE_BLOCK_ZERO);
		}
	}
	return table_store(c, first, last);
}

int chunkstore_punch(struct chunkstore *cs, uint64_t id, uint32_t version, const struct chunkstore_geom *g,
		     uint64_t offset, uint64_t len, struct chunkstore_alloc *alloc)
{
	struct cs_open *c;
	struct chunkstore_alloc a;
	if (!geom_ok(id, g) || !range_ok(g->chunk_size, offset, len))
		return -EINVAL;
	int rc = chunk_for_update(cs, id, version, g, &c);
	if (rc < 0)
		return rc;
	c->pins++;
	if (c->d && (rc = view_ensure(cs, c, g->base, g->nbase)) < 0)
		goto out;
	if (len > 0) {
		rc = c->d ? punch_delta(cs, c, g->base, g->nbase, offset, len) : punch_plain(cs, c, offset, len);
		if (rc < 0) {
			log_error("chunk %016" PRIx64 ": punch of %" PRIu64 " bytes at %" PRIu64 ": %s", id, len, offset,
				  strerror(-rc));
			goto out;
		}
	}
	a = chunk_alloc(cs, c);
	if (alloc)
		*alloc = a;
out:
	c->pins--;
	return rc;
}

int chunkstore_sync_prepare(struct chunkstore *cs, uint64_t id, uint32_t version,
			    struct chunkstore_sync_job *job)
{
	struct cs_open *c;
	char sub[4096];
	job->id = id;
	job->fd = job->dfd[0] = job->dfd[1] = -1;
	job->rc = 0;
	int rc = chunk_get(cs, id, &c);
	if (rc < 0)
		return rc;
	if (!version_ok(c->version, version))
		return -ESTALE;
	struct cs_slot *s = index_find(cs, id);
	if (s->dir_dirty) {
		if ((rc = sub_path(cs, s->dir, (unsigned)(id & 0xff), sub, sizeof(sub))) < 0)
			return rc;
		job->dfd[0] = open(sub, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		job->dfd[1] = open(cs->dirs[s->dir].path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	}
	job->fd = fcntl(c->fd, F_DUPFD_CLOEXEC, 0);
	if (job->fd < 0 || (s->dir_dirty && (job->dfd[0] < 0 || job->dfd[1] < 0))) {
		rc = -errno;
		log_error("chunk %016" PRIx64 ": sync: %s", id, strerror(-rc));
		job->rc = rc;
		chunkstore_sync_run(job); /* closes what was opened */
		return rc;
	}
	return 0;
}

void chunkstore_sync_run(struct chunkstore_sync_job *job)
{
	int rc = job->rc;
	if (rc == 0 && fdatasync(job->fd) < 0) {
		rc = -errno;
		log_error("chunk %016" PRIx64 ": fdatasync: %s", job->id, strerror(-rc));
	}
	for (int i = 0; i < 2 && rc == 0; i++) {
		if (job->dfd[i] >= 0 && fsync(job->dfd[i]) < 0) {
			rc = -errno;
			log_error("chunk %016" PRIx64 ": directory sync: %s", job->id, strerror(-rc));
		}
	}
	if (job->fd >= 0)
		close(job->fd);
	for (int i = 0; i < 2; i++)
		if (job->dfd[i] >= 0)
			close(job->dfd[i]);
	job->fd = job->dfd[0] = job->dfd[1] = -1;
	job->rc = rc;
}

void chunkstore_sync_finish(struct chunkstore *cs, const struct chunkstore_sync_job *job)
{
	struct cs_slot *s = index_find(cs, job->id);
	if (s && job->rc == 0)
		s->dir_dirty = 0;
}

int chunkstore_sync(struct chunkstore *cs, uint64_t id, uint32_t version)
{
	struct chunkstore_sync_job job;
	int rc = chunkstore_sync_prepare(cs, id, version, &job);
	if (rc < 0)
		return rc;
	chunkstore_sync_run(&job);
	chunkstore_sync_finish(cs, &job);
	return job.rc;
}

/* ---- copies ------------------------------------------------------------------------------- */

/* A chunk the copy reads from: a duplicate of its file. */
struct copy_src {
	uint64_t id;
	int fd;
	uint32_t bs;
	uint64_t data_off;
};

/* [s, t) of the source shows data of copy_src src, whose blocks there have
 * the masked CRCs crc[first..] (first: the block holding s). */
struct copy_seg {
	uint64_t s, t;
	uint32_t src;
	uint32_t first;
};

struct chunkstore_copy_job {
	struct chunkstore_copy_job *next; /* in chunkstore.copies */
	uint64_t id;
	uint32_t version;
	uint64_t chunk_size;
	unsigned dir;
	bool cancelled; /* id deleted meanwhile */
	uint32_t nsrc;
	struct copy_src src[CHUNKSTORE_CHAIN_MAX + 1];
	struct copy_seg *seg; /* in order, disjoint */
	size_t nseg, segcap;
	uint32_t *crc;
	size_t ncrc, crccap;
	char tmp[4096], path[4096], sub[4096], top[4096];
	uint64_t bytes; /* data bytes written */
	int rc;
	bool renamed; /* the new file is in place (even if rc < 0: a directory sync failed) */
};

static bool copy_running(const struct chunkstore *cs, uint64_t id)
{
	for (const struct chunkstore_copy_job *j = cs->copies; j; j = j->next)
		if (j->id == id)
			return true;
	return false;
}

static void copy_cancel(struct chunkstore *cs, uint64_t id)
{
	for (struct chunkstore_copy_job *j = cs->copies; j; j = j->next)
		if (j->id == id)
			j->cancelled = true;
}

static void copy_job_free(struct chunkstore_copy_job *job)
{
	for (uint32_t i = 0; i < job->nsrc; i++)
		close(job->src[i].fd);
	free(job->seg);
	free(job->crc);
	free(job);
}

/* Grows an array of *cap elements of size sz to hold need: 0 or -ENOMEM. */
static int grow(void **p, size_t *cap, size_t need, size_t sz)
{
	if (need <= *cap)
		return 0;
	size_t n = *cap ? *cap * 2 : 64;
	while (n < need)
		n *= 2;
	void *q = realloc(*p, n * sz);
	if (!q)
		return -ENOMEM;
	*p = q;
	*cap = n;
	return 0;
}

/* walk.own of the copy's map: records the run and its blocks' CRCs. */
static int map_own(struct chunkstore *cs, struct cs_open *c, uint32_t b0, uint32_t b1, uint64_t s, uint64_t t,
		   void *arg)
{
	(void)cs;
	struct chunkstore_copy_job *job = arg;
	uint32_t k = 0;
	while (k < job->nsrc && job->src[k].id != c->id)
		k++;
	if (k == job->nsrc) {
		assert(k < sizeof(job->src) / sizeof(job->src[0]));
		int fd = fcntl(c->fd, F_DUPFD_CLOEXEC, 0);
		if (fd < 0)
			return -errno;
		job->src[job->nsrc++] = (struct copy_src){.id = c->id, .fd = fd, .bs = c->bs, .data_off = c->data_off};
	}
	if (grow((void **)&job->seg, &job->segcap, job->nseg + 1, sizeof(*job->seg)) < 0 ||
	    grow((void **)&job->crc, &job->crccap, job->ncrc + (b1 - b0 + 1), sizeof(*job->crc)) < 0)
		return -ENOMEM;
	job->seg[job->nseg++] = (struct copy_seg){.s = s, .t = t, .src = k, .first = (uint32_t)job->ncrc};
	for (uint32_t b = b0; b <= b1; b++)
		job->crc[job->ncrc++] = tab_crc(c, b);
	return 0;
}

/* Maps where the source shows data, as chunkstore_read() resolves it. */
static int copy_map(struct chunkstore *cs, struct chunkstore_copy_job *job, uint64_t src_id, uint32_t src_version,
		    const struct chunkstore_geom *src)
{
	struct walk w = {map_own, NULL, job, false};
	struct cs_open *c;
	int rc = chunk_get(cs, src_id, &c);
	if (rc == -ENOENT && src->nbase > 0) /* a delta never written here: its chain */
		return chain_walk(cs, src->base, src->nbase, src->chunk_size, 0, src->chunk_size, &w);
	if (rc < 0 || (rc = chunk_is(c, src_version, src)) < 0)
		return rc;
	return held_walk(cs, c, src->base, src->nbase, 0, c->chunk_size, &w, NULL);
}

int chunkstore_copy_prepare(struct chunkstore *cs, uint64_t id, uint32_t version, uint64_t src_id,
			    uint32_t src_version, const struct chunkstore_geom *src,
			    struct chunkstore_copy_job **out)
{
	struct chunkstore_copy_job *job;
	struct cs_open *d;
	*out = NULL;
	if (id == 0 || id == src_id || !geom_ok(src_id, src))
		return -EINVAL;
	for (uint32_t k = 0; k < src->nbase; k++)
		if (src->base[k].id == id)
			return -EINVAL;
	if (copy_running(cs, id))
		return -EBUSY;
	int rc = chunk_get(cs, id, &d);
	if (rc == 0)
		rc = chunk_is(d, version, &(struct chunkstore_geom){.chunk_size = src->chunk_size});
	else if (rc == -ENOENT)
		rc = 1; /* a new chunk */
	if (rc < 0)
		return rc;
	if (!(job = calloc(1, sizeof(*job))))
		return -ENOMEM;
	job->id = id;
	job->version = version;
	job->chunk_size = src->chunk_size;
	if (rc == 0) {
		job->dir = index_find(cs, id)->dir; /* a retry replaces it where it is */
	} else {
		unsigned order[CHUNKSTORE_DIRS_MAX];
		dirs_by_space(cs, order);
		job->dir = order[0];
	}
	if ((rc = chunk_path(cs, job->dir, id, ".tmp", job->tmp, sizeof(job->tmp))) < 0 ||
	    (rc = chunk_path(cs, job->dir, id, "", job->path, sizeof(job->path))) < 0 ||
	    (rc = sub_path(cs, job->dir, (unsigned)(id & 0xff), job->sub, sizeof(job->sub))) < 0)
		goto fail;
	if (snprintf(job->top, sizeof(job->top), "%s", cs->dirs[job->dir].path) >= (int)sizeof(job->top)) {
		rc = -ENAMETOOLONG;
		goto fail;
	}
	if ((rc = copy_map(cs, job, src_id, src_version, src)) < 0) {
		log_error("chunk %016" PRIx64 ": copy from %016" PRIx64 " v%" PRIu32 " refused: %s", id, src_id,
			  src_version, strerror(-rc));
		goto fail;
	}
	job->next = cs->copies;
	cs->copies = job;
	*out = job;
	return 0;
fail:
	copy_job_free(job);
	return rc;
}

/* Fills buf with [p, q) of the source (within one XMAX-aligned window, so
 * every source block it touches lies in that window): zeros, then per
 * source chunk one read of the blocks its segments (from *at on) touch,
 * each block checked once.  scratch: XMAX bytes.  0 or -errno. */
static int copy_fill(const struct chunkstore_copy_job *job, size_t at, uint64_t p, uint64_t q, uint8_t *buf,
		     uint8_t *scratch)
{
	uint32_t srcs = 0;
	memset(buf, 0, q - p);
	for (size_t i = at; i < job->nseg && job->seg[i].s < q; i++)
		srcs |= 1u << job->seg[i].src;
	for (uint32_t k = 0; k < job->nsrc; k++) {
		if (!(srcs & 1u << k))
			continue;
		const struct copy_src *src = &job->src[k];
		uint64_t lo = UINT64_MAX, hi = 0;
		for (size_t i = at; i < job->nseg && job->seg[i].s < q; i++) {
			const struct copy_seg *g = &job->seg[i];
			uint64_t x = g->s > p ? g->s : p, y = g->t < q ? g->t : q;
			if (g->src != k)
				continue;
			lo = lo < x / src->bs * src->bs ? lo : x / src->bs * src->bs;
			hi = hi > (y - 1) / src->bs * src->bs + src->bs ? hi : (y - 1) / src->bs * src->bs + src->bs;
		}
		hi = hi < job->chunk_size ? hi : job->chunk_size;
		assert(hi - lo <= XMAX);
		ssize_t n = pread_full(src->fd, scratch, hi - lo, src->data_off + lo);
		if (n < 0) {
			log_error("chunk %016" PRIx64 ": read of %016" PRIx64 " for a copy: %s", job->id, src->id,
				  strerror((int)-n));
			return (int)n;
		}
		memset(scratch + n, 0, (hi - lo) - (size_t)n); /* past the end of the file: left to the CRC */
		int64_t checked = -1;
		for (size_t i = at; i < job->nseg && job->seg[i].s < q; i++) {
			const struct copy_seg *g = &job->seg[i];
			uint64_t x = g->s > p ? g->s : p, y = g->t < q ? g->t : q;
			if (g->src != k)
				continue;
			for (uint64_t b = x / src->bs; b <= (y - 1) / src->bs; b++) {
				if ((int64_t)b <= checked)
					continue;
				uint64_t start = b * src->bs;
				uint64_t len = job->chunk_size - start < src->bs ? job->chunk_size - start : src->bs;
				uint32_t want = job->crc[g->first + (b - g->s / src->bs)];
				uint32_t got = crc32c_mask(crc32c(0, scratch + (start - lo), len));
				if (want != got) {
					log_error("chunk %016" PRIx64 " block %" PRIu64 ": CRC mismatch (stored %08" PRIx32
						  ", computed %08" PRIx32 ") while copying it to %016" PRIx64,
						  src->id, b, want, got, job->id);
					return -EIO;
				}
				checked = (int64_t)b;
			}
			memcpy(buf + (x - p), scratch + (x - lo), y - x);
		}
	}
	return 0;
}

/* Writes [p, q) of buf (p a block boundary) at p in the data of fd, but not
 * its pages of zeros: they stay holes of the file, which read as zeros all
 * the same.  One pwrite per run of other pages within a block (never across
 * blocks: see write_segs).  0 or -errno. */
static int write_sparse(int fd, uint64_t data_off, uint64_t p, uint64_t q, const uint8_t *buf)
{
	for (uint64_t x = p; x < q;) {
		uint64_t blk_end = (x / BS + 1) * BS < q ? (x / BS + 1) * BS : q;
		uint64_t pe = x + PAGE < blk_end ? x + PAGE : blk_end;
		if (all_zero(buf + (x - p), pe - x)) {
			x = pe;
			continue;
		}
		uint64_t y = pe;
		while (y < blk_end) {
			uint64_t ye = y + PAGE < blk_end ? y + PAGE : blk_end;
			if (all_zero(buf + (y - p), ye - y))
				break;
			y = ye;
		}
		int rc = pwrite_full(fd, buf + (x - p), y - x, data_off + x);
		if (rc < 0)
			return rc;
		x = y;
	}
	return 0;
}

/* Writes into fd (a new plain chunk file) every 64 KiB block under which
 * the source shows data, as pieces of at most XMAX bytes within
 * XMAX-aligned windows, and their entries into table.  0 or -errno. */
static int copy_blocks(struct chunkstore_copy_job *job, int fd, uint8_t *table, uint8_t *buf, uint8_t *scratch)
{
	uint64_t data_off = data_off_for(job->chunk_size, BS);
	size_t at = 0; /* first segment not wholly copied */
	uint64_t pos = 0;
	while (at < job->nseg) {
		uint64_t p = (job->seg[at].s > pos ? job->seg[at].s : pos) / BS * BS;
		uint64_t win = p - p % XMAX + XMAX, end = win < job->chunk_size ? win : job->chunk_size, q = p;
		/* Extend over the following blocks with data, up to the window's end. */
		for (size_t i = at; i < job->nseg && job->seg[i].s < end; i++) {
			uint64_t s = job->seg[i].s > p ? job->seg[i].s : p;
			if (s / BS * BS > q)
				break;
			uint64_t t = (job->seg[i].t + BS - 1) / BS * BS;
			q = t < end ? t : end;
		}
		int rc = copy_fill(job, at, p, q, buf, scratch);
		if (rc == 0 && (rc = write_sparse(fd, data_off, p, q, buf)) < 0)
			log_error("chunk %016" PRIx64 ": write of a copy: %s", job->id, strerror(-rc));
		if (rc < 0)
			return rc;
		for (uint64_t b = p / BS; b * BS < q; b++) {
			uint64_t len = q - b * BS < BS ? q - b * BS : BS;
			le_put32(table + b * 8, crc32c_mask(crc32c(0, buf + (b * BS - p), len)));
			le_put32(table + b * 8 + 4, CHUNKSTORE_BLOCK_WRITTEN);
		}
		job->bytes += q - p;
		pos = q;
		while (at < job->nseg && job->seg[at].t <= pos)
			at++;
	}
	return 0;
}

void chunkstore_copy_run(struct chunkstore_copy_job *job)
{
	uint64_t data_off = data_off_for(job->chunk_size, BS);
	uint8_t *buf = malloc(XMAX), *scratch = malloc(XMAX), *meta = calloc(1, data_off);
	const char *what = "out of memory";
	int fd = -1, rc = -ENOMEM;
	if (!buf || !scratch || !meta)
		goto out;
	what = "create";
	if ((rc = fd = tmp_create(job->tmp, job->sub)) < 0)
		goto out;
	what = "copy";
	if ((rc = copy_blocks(job, fd, meta + CHUNKSTORE_HDR_SIZE, buf, scratch)) < 0)
		goto out;
	hdr_encode(meta, job->id, job->version, job->chunk_size, BS, NULL);
	what = "header write";
	if ((rc = pwrite_full(fd, meta, data_off, 0)) < 0)
		goto out;
	what = "fdatasync";
	if (fdatasync(fd) < 0) {
		rc = -errno;
		goto out;
	}
	what = "rename";
	if (rename(job->tmp, job->path) < 0) {
		rc = -errno;
		goto out;
	}
	job->renamed = true;
	what = "directory sync";
	if ((rc = fsync_path(job->sub)) == 0)
		rc = fsync_path(job->top);
out:
	if (rc < 0)
		log_error("chunk %016" PRIx64 ": copy: %s: %s", job->id, what, strerror(-rc));
	if (fd >= 0)
		close(fd);
	if (rc < 0 && !job->renamed)
		unlink(job->tmp);
	free(buf);
	free(scratch);
	free(meta);
	job->rc = rc;
}

/* Indexes the chunk a copy made (replacing the file of a retry's); synced:
 * its directories were. */
static int copy_index(struct chunkstore *cs, const struct chunkstore_copy_job *job, bool synced,
		      struct chunkstore_alloc *alloc)
{
	struct cs_slot *s = index_find(cs, job->id);
	struct cs_open *c;
	if (s && s->open) {
		assert(!s->open->pins);
		chunk_close(cs, s->open); /* the file it had open was replaced */
	}
	if (!s && !(s = index_insert(cs, job->id))) {
		log_error("chunk %016" PRIx64 ": out of memory indexing a copy (indexed at the next start)", job->id);
		return -ENOMEM;
	}
	s->dir = (uint16_t)job->dir;
	s->version = job->version;
	s->bad = 0;
	s->dir_dirty = !synced;
	cs->gen++;        /* chain views that saw the chunk (or not) are stale */
	cs->ctr.copy_bytes += job->bytes;
	int rc = chunk_get(cs, job->id, &c);
	if (rc < 0)
		return rc;
	struct chunkstore_alloc a = chunk_alloc(cs, c);
	if (alloc)
		*alloc = a;
	return 0;
}

int chunkstore_copy_finish(struct chunkstore *cs, struct chunkstore_copy_job *job, struct chunkstore_alloc *alloc)
{
	struct chunkstore_copy_job **pp = &cs->copies;
	while (*pp && *pp != job)
		pp = &(*pp)->next;
	assert(*pp == job);
	if (*pp)
		*pp = job->next;
	int rc = job->rc;
	if (job->renamed && job->cancelled) {
		/* Deleted while it was being copied: the copy goes too. */
		unsigned hh = (unsigned)(job->id & 0xff);
		if (unlink(job->path) < 0 && errno != ENOENT)
			log_error("chunk %016" PRIx64 ": unlink %s: %s", job->id, job->path, strerror(errno));
		cs->dirs[job->dir].unlinked[hh / 8] |= (uint8_t)(1u << (hh % 8));
		log_info("chunk %016" PRIx64 ": deleted while it was being copied", job->id);
		rc = rc < 0 ? rc : -ENOENT;
	} else if (job->renamed) {
		/* In place (a failed directory sync is retried by the next sync). */
		int r = copy_index(cs, job, rc == 0, alloc);
		rc = rc < 0 ? rc : r;
	}
	copy_job_free(job);
	return rc;
}

int chunkstore_copy(struct chunkstore *cs, uint64_t id, uint32_t version, uint64_t src_id, uint32_t src_version,
		    const struct chunkstore_geom *src, struct chunkstore_alloc *alloc)
{
	struct chunkstore_copy_job *job;
	int rc = chunkstore_copy_prepare(cs, id, version, src_id, src_version, src, &job);
	if (rc < 0)
		return rc;
	chunkstore_copy_run(job);
	return chunkstore_copy_finish(cs, job, alloc);
}

int chunkstore_seek(struct chunkstore *cs, uint64_t id, uint32_t version, const struct chunkstore_base *chain,
		    uint32_t nchain, uint64_t offset, int whence, bool *found, uint64_t *out)
{
	struct cs_open *c;
	uint64_t pos = 0;
	*found = false;
	*out = 0;
	if ((whence != CHUNKSTORE_SEEK_DATA && whence != CHUNKSTORE_SEEK_HOLE) || !chain_ok(id, chain, nchain))
		return -EINVAL;
	bool want = whence == CHUNKSTORE_SEEK_DATA;
	int rc = chunk_get(cs, id, &c);
	if (rc == -ENOENT && nchain > 0) {
		/* Never written here: it shows its chain (of unknown size when
		 * no member is held here either: all one hole). */
		uint64_t size;
		if ((rc = chain_size(cs, chain, nchain, &size)) < 0)
			return rc;
		uint64_t to = size ? size : CHUNKSTORE_CHUNK_MAX;
		if (offset > to)
			return -EINVAL;
		rc = chain_find(cs, chain, nchain, size, offset, to, want, &pos);
	} else if (rc < 0) {
		return rc;
	} else {
		if (!version_ok(c->version, version))
			return -ESTALE;
		if (!chain_matches(c, chain, nchain) || offset > c->chunk_size)
			return -EINVAL;
		rc = held_find(cs, c, chain, nchain, offset, c->chunk_size, want, &pos);
	}
	if (rc < 0)
		return rc;
	*found = rc == 1;
	*out = rc == 1 ? pos : 0;
	return 0;
}

int chunkstore_stat(struct chunkstore *cs, uint64_t id, struct chunkstore_stat *st)
{
	struct cs_open *c;
	int rc = chunk_get(cs, id, &c);
	if (rc < 0)
		return rc;
	memset(st, 0, sizeof(*st));
	st->version = c->version;
	st->chunk_size = c->chunk_size;
	if (c->d) {
		/* The chain last named, or what the headers tell. */
		struct chunkstore_base chain[CHUNKSTORE_CHAIN_MAX];
		uint32_t n;
		st->extent = c->bs;
		st->base = c->d->base;
		c->pins++;
		if (c->d->view) {
			n = c->d->nchain;
			memcpy(chain, c->d->chain, (size_t)n * sizeof(*chain));
		} else {
			n = chain_from_headers(cs, c, chain);
		}
		if ((rc = view_ensure(cs, c, chain, n)) < 0)
			log_warn("chunk %016" PRIx64 ": inherited data not counted: %s", id, strerror(-rc));
		c->pins--;
	}
	struct chunkstore_alloc a = chunk_alloc(cs, c);
	st->alloc = a.bytes;
	st->own = a.own;
	return 0;
}

const struct chunkstore_counters *chunkstore_counters(const struct chunkstore *cs) { return &cs->ctr; }

/* ---- copies to other servers (re-replication) ----------------------------------------- */

int chunkstore_export_geom(struct chunkstore *cs, uint64_t id, struct chunkstore_export_info *out)
{
	struct cs_open *c;
	int rc = chunk_get(cs, id, &c);
	if (rc < 0)
		return rc;
	memset(out, 0, sizeof(*out));
	out->version = c->version;
	out->chunk_size = c->chunk_size;
	out->block_size = c->bs;
	out->nblocks = c->nblocks;
	if (c->d) {
		out->extent = c->bs;
		out->base = c->d->base;
	}
	return 0;
}

int chunkstore_export(struct chunkstore *cs, uint64_t id, uint32_t first, uint32_t n, uint8_t *entries,
		      uint8_t *data, size_t cap, size_t *dlen)
{
	struct cs_open *c;
	int rc = chunk_get(cs, id, &c);
	*dlen = 0;
	if (rc < 0)
		return rc;
	if (first > c->nblocks || n > c->nblocks - first)
		return -EINVAL;
	memcpy(entries, c->table + (size_t)first * CHUNKSTORE_ENTRY_SIZE, (size_t)n * CHUNKSTORE_ENTRY_SIZE);
	size_t used = 0;
	for (uint32_t b = first; b < first + n; b++) {
		if (!tab_written(c, b))
			continue;
		uint32_t len = block_len(c, b);
		if (cap - used < len)
			return -EINVAL;
		ssize_t got = pread_full(c->fd, data + used, len, c->data_off + (uint64_t)b * c->bs);
		if (got < 0)
			return (int)got;
		if ((size_t)got < len)
			memset(data + used + got, 0, len - (size_t)got);
		/* A bad block must not spread: this copy is not a source. */
		if ((rc = block_check(cs, c, b, data + used)) < 0)
			return rc;
		used += len;
	}
	*dlen = used;
	return 0;
}

int chunkstore_import_begin(struct chunkstore *cs, uint64_t id, uint32_t version, const struct chunkstore_geom *g)
{
	struct cs_open *c;
	if (!geom_ok(id, g) || g->nbase > 1)
		return -EINVAL;
	if (copy_running(cs, id))
		return -EBUSY;
	int rc = chunkstore_delete(cs, id); /* a leftover of an earlier attempt */
	if (rc < 0 && rc != -ENOENT)
		return rc;
	return chunk_create(cs, id, version, g, &c);
}

int chunkstore_import(struct chunkstore *cs, uint64_t id, uint32_t first, uint32_t n, const uint8_t *entries,
		      const uint8_t *data, size_t dlen)
{
	struct cs_open *c;
	int rc = chunk_get(cs, id, &c);
	if (rc < 0)
		return rc;
	if (n == 0)
		return 0;
	if (first > c->nblocks || n > c->nblocks - first)
		return -EINVAL;
	size_t used = 0;
	for (uint32_t b = first; b < first + n && rc == 0; b++) {
		uint32_t crc = le_get32(entries + (size_t)(b - first) * 8);
		uint32_t flags = le_get32(entries + (size_t)(b - first) * 8 + 4);
		uint64_t at = c->data_off + (uint64_t)b * c->bs;
		uint32_t len = block_len(c, b);
		if (flags & ~(CHUNKSTORE_BLOCK_WRITTEN | CHUNKSTORE_BLOCK_ZERO) ||
		    ((flags & CHUNKSTORE_BLOCK_ZERO) && !c->d))
			return -EINVAL;
		if (flags & CHUNKSTORE_BLOCK_WRITTEN) {
			if (dlen - used < len || crc32c_mask(crc32c(0, data + used, len)) != crc)
				return -EINVAL; /* short, or damaged on the way */
			rc = pwrite_full(c->fd, data + used, len, at);
			used += len;
		} else if (tab_written(c, b)) {
			/* Written here since the copy began, unwritten at the source
			 * now: the source punched it meanwhile. */
			rc = punch_file(c, at, len, true);
		}
		if (rc == 0) {
			if (c->d && tab_written(c, b) && !(flags & (CHUNKSTORE_BLOCK_WRITTEN | CHUNKSTORE_BLOCK_ZERO)))
				c->d->view = false; /* back to INHERIT: recount what it inherits */
			tab_set(c, b, crc, flags);
		}
	}
	if (rc == 0 && used != dlen)
		rc = -EINVAL;
	if (rc == 0)
		rc = table_store(c, first, first + n - 1);
	if (rc < 0)
		log_error("chunk %016" PRIx64 ": copy from another server, blocks %" PRIu32 "+%" PRIu32 ": %s", id, first,
			  n, strerror(-rc));
	chunk_alloc(cs, c);
	return rc;
}

void chunkstore_on_corrupt(struct chunkstore *cs, void (*fn)(void *arg, uint64_t id), void *arg)
{
	cs->on_corrupt = fn;
	cs->on_corrupt_arg = arg;
}

int chunkstore_check_version(const struct chunkstore *cs, uint64_t id, uint32_t version)
{
	const struct cs_slot *s = id ? index_find(cs, id) : NULL;
	return s && !s->bad && !version_ok(s->version, version) ? -ESTALE : 0;
}

int chunkstore_set_version(struct chunkstore *cs, uint64_t id, uint32_t version)
{
	struct cs_open *c;
	int rc = chunk_get(cs, id, &c);
	if (rc < 0)
		return rc;
	if (!version_ok(c->version, version))
		return -ESTALE;
	return chunk_upgrade(cs, c, version);
}

int chunkstore_list(const struct chunkstore *cs, int (*fn)(void *arg, uint64_t id, uint32_t version), void *arg)
{
	for (size_t i = 0; i < cs->cap; i++) {
		const struct cs_slot *s = &cs->slots[i];
		if (s->id == 0 || copy_running(cs, s->id))
			continue;
		int rc = fn(arg, s->id, s->bad ? 0 : s->version);
		if (rc != 0)
			return rc;
	}
	return 0;
}

int chunkstore_delete(struct chunkstore *cs, uint64_t id)
{
	char path[4096];
	copy_cancel(cs, id);
	struct cs_slot *s = id ? index_find(cs, id) : NULL;
	if (!s)
		return -ENOENT;
	int rc = chunk_path(cs, s->dir, id, "", path, sizeof(path));
	if (rc < 0)
		return rc;
	if (unlink(path) < 0 && errno != ENOENT) {
		rc = -errno;
		log_error("chunk %016" PRIx64 ": unlink %s: %s", id, path, strerror(-rc));
		return rc;
	}
	unsigned hh = (unsigned)(id & 0xff);
	cs->dirs[s->dir].unlinked[hh / 8] |= (uint8_t)(1u << (hh % 8));
	assert(!s->open || !s->open->pins);
	if (s->open)
		chunk_close(cs, s->open);
	cs->gen++; /* chain views that saw it are stale */
	s = index_find(cs, id);
	cs->used -= s->file_bytes;
	index_remove(cs, s);
	return 0;
}

int chunkstore_sync_deletes(struct chunkstore *cs)
{
	int rc = 0;
	for (size_t d = 0; d < cs->ndirs; d++) {
		for (unsigned hh = 0; hh < 256; hh++) {
			if (!(cs->dirs[d].unlinked[hh / 8] & (1u << (hh % 8))))
				continue;
			char sub[4096];
			int r = sub_path(cs, (unsigned)d, hh, sub, sizeof(sub));
			if (r == 0)
				r = fsync_path(sub);
			if (r < 0 && r != -ENOENT) {
				log_error("%s: directory sync: %s", sub, strerror(-r));
				rc = rc ? rc : r;
				continue;
			}
			cs->dirs[d].unlinked[hh / 8] &= (uint8_t)~(1u << (hh % 8));
		}
	}
	return rc;
}

int chunkstore_space(struct chunkstore *cs, struct chunkstore_space *sp)
{
	memset(sp, 0, sizeof(*sp));
	for (size_t d = 0; d < cs->ndirs; d++) {
		bool seen = false;
		for (size_t e = 0; e < d; e++)
			seen = seen || cs->dirs[e].dev == cs->dirs[d].dev;
		if (seen)
			continue;
		struct statvfs sv;
		if (statvfs(cs->dirs[d].path, &sv) < 0)
			return -errno;
		sp->total += (uint64_t)sv.f_blocks * sv.f_frsize;
		sp->avail += (uint64_t)sv.f_bavail * sv.f_frsize;
	}
	sp->used = cs->used;
	sp->nchunks = cs->count;
	return 0;
}

/* ---- open and scan ---------------------------------------------------------------------- */

static int hexval(int ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	return -1;
}

/* Parses n lowercase hex digits; -1 when s is not that. */
static int parse_hex(const char *s, int n, uint64_t *out)
{
	uint64_t v = 0;
	for (int i = 0; i < n; i++) {
		int h = hexval((unsigned char)s[i]);
		if (h < 0)
			return -1;
		v = v << 4 | (uint64_t)h;
	}
	*out = v;
	return 0;
}

/* Indexes one chunk file found by the scan. */
static void scan_file(struct chunkstore *cs, unsigned dir, uint64_t id, const char *path)
{
	uint8_t hdr[CHUNKSTORE_HDR_SIZE];
	struct cs_slot *s = index_find(cs, id);
	if (s) {
		log_warn("chunk %016" PRIx64 ": also in %s: ignoring %s", id, cs->dirs[s->dir].path, path);
		return;
	}
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		log_error("%s: %s: chunk skipped", path, strerror(errno));
		return;
	}
	struct stat st;
	struct hdr_info hi;
	ssize_t n = pread_full(fd, hdr, sizeof(hdr), 0);
	const char *why = n < 0                    ? strerror((int)-n)
			  : (size_t)n < sizeof(hdr) ? "file shorter than its header"
						    : hdr_decode(hdr, id, &hi);
	if (fstat(fd, &st) < 0)
		st.st_blocks = 0;
	close(fd);
	s = index_insert(cs, id);
	if (!s) {
		log_error("%s: out of memory: chunk skipped", path);
		return;
	}
	s->dir = (uint16_t)dir;
	s->file_bytes = (uint64_t)st.st_blocks * 512;
	cs->used += s->file_bytes;
	if (why) {
		log_error("%s: %s: chunk refused", path, why);
		s->bad = 1;
	} else {
		s->version = hi.version;
	}
}

static void scan_sub(struct chunkstore *cs, unsigned dir, unsigned hh, const char *sub)
{
	DIR *dp = opendir(sub);
	if (!dp) {
		log_error("%s: %s: skipped", sub, strerror(errno));
		return;
	}
	struct dirent *de;
	char path[4096];
	while ((de = readdir(dp)) != NULL) {
		const char *name = de->d_name;
		size_t len = strlen(name);
		uint64_t id;
		bool chk = len == 20 && strcmp(name + 16, ".chk") == 0;
		bool tmp = len == 24 && strcmp(name + 16, ".chk.tmp") == 0;
		if ((!chk && !tmp) || parse_hex(name, 16, &id) < 0)
			continue;
		if (snprintf(path, sizeof(path), "%s/%s", sub, name) >= (int)sizeof(path))
			continue;
		if (tmp) {
			log_info("%s: removing an interrupted chunk creation", path);
			unlink(path);
		} else if (id == 0 || (id & 0xff) != hh) {
			log_warn("%s: chunk file in the wrong place: skipped", path);
		} else {
			scan_file(cs, dir, id, path);
		}
	}
	closedir(dp);
}

static int scan_dir(struct chunkstore *cs, unsigned dir, char *err, size_t errlen)
{
	DIR *dp = opendir(cs->dirs[dir].path);
	if (!dp) {
		int e = errno;
		snprintf(err, errlen, "%s: %s", cs->dirs[dir].path, strerror(e));
		return -e;
	}
	struct dirent *de;
	char sub[4096];
	while ((de = readdir(dp)) != NULL) {
		uint64_t hh;
		if (strlen(de->d_name) != 2 || parse_hex(de->d_name, 2, &hh) < 0)
			continue;
		if (sub_path(cs, dir, (unsigned)hh, sub, sizeof(sub)) == 0)
			scan_sub(cs, dir, (unsigned)hh, sub);
	}
	closedir(dp);
	return 0;
}

int chunkstore_open(const struct chunkstore_config *cfg, struct chunkstore **out, char *err,
		    size_t errlen)
{
	int rc;
	struct chunkstore *cs = NULL;
	if (cfg->ndirs == 0 || cfg->ndirs > CHUNKSTORE_DIRS_MAX) {
		snprintf(err, errlen, "need 1 to %u data directories", CHUNKSTORE_DIRS_MAX);
		return -EINVAL;
	}
	cs = calloc(1, sizeof(*cs));
	if (!cs)
		goto nomem;
	cs->max_open = cfg->fd_cache ? cfg->fd_cache : CHUNKSTORE_FD_CACHE_DEFAULT;
	cs->cap = 1024;
	cs->slots = calloc(cs->cap, sizeof(*cs->slots));
	for (int i = 0; i < 2; i++) {
		cs->scratch[i] = malloc(XMAX);
		cs->cow[i] = malloc(XMAX);
		if (!cs->scratch[i] || !cs->cow[i])
			goto nomem;
	}
	cs->zero_crc = crc32c_zeros(BS);
	if (!cs->slots)
		goto nomem;
	for (size_t d = 0; d < cfg->ndirs; d++) {
		const char *p = cfg->dirs[d];
		struct stat st;
		if (mkdir(p, 0755) < 0 && errno != EEXIST) {
			rc = -errno;
			snprintf(err, errlen, "%s: %s", p, strerror(-rc));
			goto fail;
		}
		if (stat(p, &st) < 0)
			rc = -errno;
		else if (!S_ISDIR(st.st_mode))
			rc = -ENOTDIR;
		else
			rc = access(p, R_OK | W_OK | X_OK) < 0 ? -errno : 0;
		if (rc < 0) {
			snprintf(err, errlen, "%s: %s", p, strerror(-rc));
			goto fail;
		}
		for (size_t e = 0; e < d; e++) {
			if (cs->dirs[e].dev == st.st_dev && cs->dirs[e].ino == st.st_ino) {
				snprintf(err, errlen, "%s: same directory as %s", p, cs->dirs[e].path);
				rc = -EINVAL;
				goto fail;
			}
		}
		cs->dirs[d].path = strdup(p);
		if (!cs->dirs[d].path)
			goto nomem;
		cs->dirs[d].dev = st.st_dev;
		cs->dirs[d].ino = st.st_ino;
		cs->ndirs = d + 1;
	}
	for (size_t d = 0; d < cs->ndirs; d++)
		if ((rc = scan_dir(cs, (unsigned)d, err, errlen)) < 0)
			goto fail;
	*out = cs;
	return 0;
nomem:
	rc = -ENOMEM;
	snprintf(err, errlen, "out of memory");
fail:
	chunkstore_close(cs);
	return rc;
}

void chunkstore_close(struct chunkstore *cs)
{
	if (!cs)
		return;
	while (cs->lru_head) {
		struct cs_open *c = cs->lru_head;
		lru_unlink(cs, c);
		open_free(c);
	}
	for (size_t d = 0; d < cs->ndirs; d++)
		free(cs->dirs[d].path);
	free(cs->slots);
	for (int i = 0; i < 2; i++) {
		free(cs->scratch[i]);
		free(cs->cow[i]);
	}
	free(cs);
}
