/*
 * chunkstore: chunk replicas as files on local disks (see chunkstore.h and
 * "Chunk files" in docs/ARCHITECTURE.md).
 *
 * Owns the chunk files, an index of chunk id -> directory (open addressing,
 * one slot per chunk, so a million chunks cost ~32 MB), and a bounded LRU
 * cache of open chunk files with their block tables in memory.
 *
 * Tuned for VM images: 4 KiB random and 1 MiB sequential I/O into 64 MiB
 * chunks.  A write is one pwrite per block of the caller's bytes (never
 * copied; see write_blocks) plus one pwrite of the table entries it changed;
 * a partial block costs a read of the bytes it replaces (not of the block):
 * their difference updates the block's CRC (block_patch_crc).  A read is
 * one preadv per run of written blocks, straight into the caller's buffer
 * except for the partial blocks at its two ends.  Nothing is fsynced except by
 * chunkstore_sync(): a crash between a data write and its table write leaves
 * a block whose CRC does not match, which reads as -EIO, never as wrong data.
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

_Static_assert(BS % PAGE == 0, "blocks are whole pages");
_Static_assert(CHUNKSTORE_CHUNK_MAX / BS <= UINT32_MAX, "block numbers fit in 32 bits");

/* Header field offsets (docs/ARCHITECTURE.md). */
enum {
	HDR_MAGIC = 0,
	HDR_FORMAT = 8,
	HDR_BLOCK_SIZE = 12,
	HDR_ID = 16,
	HDR_VERSION = 24,
	HDR_NBLOCKS = 28,
	HDR_CHUNK_SIZE = 32,
	HDR_CRC = 40, /* masked crc32c of bytes [0, HDR_CRC) */
};

struct cs_open;

/* One indexed chunk.  Slots move when the table grows or shrinks: nothing
 * keeps a pointer to a slot across an index change. */
struct cs_slot {
	uint64_t id;          /* 0: empty (chunk id 0 is never allocated) */
	uint64_t file_bytes;  /* st_blocks * 512 of the file when last seen */
	struct cs_open *open; /* in the fd cache, or NULL */
	uint16_t dir;
	uint8_t bad;       /* header corrupt: refused until deleted */
	uint8_t dir_dirty; /* created since the last sync: fsync the directory too */
};

/* An open chunk file and its block table (the on-disk bytes). */
struct cs_open {
	uint64_t id;
	uint64_t chunk_size;
	uint64_t data_off;
	uint32_t version;
	uint32_t nblocks;
	int fd;
	uint8_t *table;
	struct cs_open *prev, *next; /* LRU list, most recent first */
};

struct cs_dir {
	char *path;
	dev_t dev;
	ino_t ino;
	uint8_t unlinked[256 / 8]; /* subdirectories with unsynced unlinks */
};

struct chunkstore {
	struct cs_dir dirs[CHUNKSTORE_DIRS_MAX];
	size_t ndirs;
	struct cs_slot *slots;
	size_t cap; /* power of two */
	size_t count;
	struct cs_open *lru_head, *lru_tail;
	unsigned nopen, max_open;
	uint64_t used;
	unsigned next_dir;
	uint8_t *scratch[2]; /* whole blocks at the two ends of an I/O */
	uint32_t zero_crc;   /* crc32c of a block of zeros */
};

static const uint8_t zero_block[BS];

/* ---- geometry and table entries ------------------------------------------ */

static uint32_t nblocks_of(uint64_t chunk_size) { return (uint32_t)((chunk_size + BS - 1) / BS); }

uint64_t chunkstore_data_off(uint64_t chunk_size)
{
	uint64_t table = (uint64_t)nblocks_of(chunk_size) * CHUNKSTORE_ENTRY_SIZE;
	return CHUNKSTORE_HDR_SIZE + (table + PAGE - 1) / PAGE * PAGE;
}

static uint32_t block_len(const struct cs_open *c, uint32_t b)
{
	uint64_t left = c->chunk_size - (uint64_t)b * BS;
	return left < BS ? (uint32_t)left : BS;
}

static uint32_t tab_crc(const struct cs_open *c, uint32_t b) { return le_get32(c->table + (size_t)b * 8); }
static bool tab_written(const struct cs_open *c, uint32_t b)
{
	return le_get32(c->table + (size_t)b * 8 + 4) & CHUNKSTORE_BLOCK_WRITTEN;
}
static void tab_set(struct cs_open *c, uint32_t b, uint32_t masked_crc, uint32_t flags)
{
	le_put32(c->table + (size_t)b * 8, masked_crc);
	le_put32(c->table + (size_t)b * 8 + 4, flags);
}

/* Whether [off, off+len) covers block b entirely. */
static bool covers(const struct cs_open *c, uint32_t b, uint64_t off, uint64_t len)
{
	uint64_t start = (uint64_t)b * BS;
	return off <= start && off + len >= start + block_len(c, b);
}

/* ---- header ------------------------------------------------------------------ */

static void hdr_encode(uint8_t *h, uint64_t id, uint32_t version, uint64_t chunk_size)
{
	memset(h, 0, CHUNKSTORE_HDR_SIZE);
	memcpy(h + HDR_MAGIC, CHUNKSTORE_MAGIC, 8);
	le_put32(h + HDR_FORMAT, CHUNKSTORE_FORMAT);
	le_put32(h + HDR_BLOCK_SIZE, BS);
	le_put64(h + HDR_ID, id);
	le_put32(h + HDR_VERSION, version);
	le_put32(h + HDR_NBLOCKS, nblocks_of(chunk_size));
	le_put64(h + HDR_CHUNK_SIZE, chunk_size);
	le_put32(h + HDR_CRC, crc32c_mask(crc32c(0, h, HDR_CRC)));
}

/* Checks a header read from the file of chunk id.  Returns NULL and fills the
 * geometry, or a reason for refusing the file. */
static const char *hdr_decode(const uint8_t *h, uint64_t id, uint32_t *version, uint64_t *chunk_size)
{
	if (memcmp(h + HDR_MAGIC, CHUNKSTORE_MAGIC, 8) != 0)
		return "bad magic";
	if (le_get32(h + HDR_CRC) != crc32c_mask(crc32c(0, h, HDR_CRC)))
		return "header CRC mismatch";
	if (le_get32(h + HDR_FORMAT) != CHUNKSTORE_FORMAT)
		return "unknown format";
	if (le_get32(h + HDR_BLOCK_SIZE) != BS)
		return "unsupported block size";
	if (le_get64(h + HDR_ID) != id)
		return "chunk id does not match the file name";
	uint64_t size = le_get64(h + HDR_CHUNK_SIZE);
	if (size == 0 || size > CHUNKSTORE_CHUNK_MAX)
		return "bad chunk size";
	if (le_get32(h + HDR_NBLOCKS) != nblocks_of(size))
		return "block count does not match the chunk size";
	*version = le_get32(h + HDR_VERSION);
	*chunk_size = size;
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

/* Fills the iovecs from off; what lies past the end of the file (a written
 * block cut short by a crash) reads as zeros and is left to the CRC check.
 * The iovecs are consumed.  0 or -errno. */
static int preadv_full(int fd, struct iovec *iov, int n, uint64_t off)
{
	while (n > 0) {
		ssize_t got = preadv(fd, iov, n, (off_t)off);
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
		while (n > 0 && (size_t)got >= iov->iov_len) {
			got -= (ssize_t)iov->iov_len;
			iov++;
			n--;
		}
		if (n > 0) {
			iov->iov_base = (uint8_t *)iov->iov_base + got;
			iov->iov_len -= (size_t)got;
		}
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

static void open_free(struct cs_open *c)
{
	if (c->fd >= 0)
		close(c->fd);
	free(c->table);
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

static void chunk_cache(struct chunkstore *cs, struct cs_slot *s, struct cs_open *c)
{
	while (cs->nopen >= cs->max_open && cs->lru_tail)
		chunk_close(cs, cs->lru_tail);
	lru_push(cs, c);
	cs->nopen++;
	s->open = c;
}

/* Opens the file of an indexed chunk and loads its table.  A header that has
 * gone bad since the scan marks the slot bad.  0 or -errno. */
static int chunk_load(struct chunkstore *cs, struct cs_slot *s, struct cs_open **out)
{
	char path[4096];
	uint8_t hdr[CHUNKSTORE_HDR_SIZE];
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
	const char *why = (size_t)n < sizeof(hdr) ? "file shorter than its header"
						  : hdr_decode(hdr, s->id, &c->version, &c->chunk_size);
	if (why) {
		log_error("chunk %016" PRIx64 ": %s: %s: chunk refused", s->id, path, why);
		s->bad = 1;
		rc = -EIO;
		goto fail;
	}
	c->nblocks = nblocks_of(c->chunk_size);
	c->data_off = chunkstore_data_off(c->chunk_size);
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

/* Refreshes the chunk's allocation from fstat; returns its data bytes. */
static uint64_t chunk_alloc(struct chunkstore *cs, const struct cs_open *c)
{
	struct stat st;
	struct cs_slot *s = index_find(cs, c->id);
	if (fstat(c->fd, &st) < 0 || !s)
		return 0;
	uint64_t bytes = (uint64_t)st.st_blocks * 512;
	cs->used = cs->used - s->file_bytes + bytes;
	s->file_bytes = bytes;
	return bytes > c->data_off ? bytes - c->data_off : 0;
}

/* ---- creation ------------------------------------------------------------------------ */

/* Creates the file of a new chunk in dir: header and zeroed table written to
 * a temporary name, then renamed into place, so a crash never leaves a chunk
 * file without a header.  Returns the open fd or -errno. */
static int create_in(struct chunkstore *cs, unsigned dir, uint64_t id, uint32_t version,
		     uint64_t chunk_size)
{
	char tmp[4096], path[4096], sub[4096];
	uint64_t data_off = chunkstore_data_off(chunk_size);
	uint8_t *meta = NULL;
	int fd = -1, rc;
	if ((rc = chunk_path(cs, dir, id, ".tmp", tmp, sizeof(tmp))) < 0 ||
	    (rc = chunk_path(cs, dir, id, "", path, sizeof(path))) < 0 ||
	    (rc = sub_path(cs, dir, (unsigned)(id & 0xff), sub, sizeof(sub))) < 0)
		return rc;
	for (int attempt = 0; fd < 0; attempt++) {
		fd = open(tmp, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
		if (fd >= 0)
			break;
		rc = -errno;
		if (attempt >= 2)
			return rc;
		if (rc == -ENOENT && mkdir(sub, 0755) < 0 && errno != EEXIST)
			return -errno;
		if (rc == -EEXIST && unlink(tmp) < 0 && errno != ENOENT) /* left by a crash */
			return -errno;
		if (rc != -ENOENT && rc != -EEXIST)
			return rc;
	}
	meta = calloc(1, data_off);
	if (!meta) {
		rc = -ENOMEM;
		goto fail;
	}
	hdr_encode(meta, id, version, chunk_size);
	if ((rc = pwrite_full(fd, meta, data_off, 0)) < 0)
		goto fail;
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

/* Creates chunk id (not indexed) in the roomiest directory that takes it. */
static int chunk_create(struct chunkstore *cs, uint64_t id, uint32_t version, uint64_t chunk_size,
			struct cs_open **out)
{
	unsigned order[CHUNKSTORE_DIRS_MAX];
	size_t n = dirs_by_space(cs, order);
	struct cs_open *c = NULL;
	int fd = -ENOSPC, rc;
	unsigned dir = 0;
	for (size_t i = 0; i < n; i++) {
		dir = order[i];
		fd = create_in(cs, dir, id, version, chunk_size);
		if (fd >= 0 || (fd != -ENOSPC && fd != -EDQUOT))
			break;
	}
	if (fd < 0) {
		log_error("chunk %016" PRIx64 ": cannot create: %s", id, strerror(-fd));
		return fd;
	}
	c = calloc(1, sizeof(*c));
	if (c)
		c->table = calloc(nblocks_of(chunk_size), CHUNKSTORE_ENTRY_SIZE);
	struct cs_slot *s = c && c->table ? index_insert(cs, id) : NULL;
	if (!s) {
		rc = -ENOMEM;
		goto fail;
	}
	c->id = id;
	c->fd = fd;
	c->version = version;
	c->chunk_size = chunk_size;
	c->nblocks = nblocks_of(chunk_size);
	c->data_off = chunkstore_data_off(chunk_size);
	s->dir = (uint16_t)dir;
	s->dir_dirty = 1;
	chunk_cache(cs, s, c);
	chunk_alloc(cs, c);
	*out = c;
	return 0;
fail:
	if (c) {
		c->fd = -1;
		open_free(c);
	}
	close(fd);
	char path[4096];
	if (chunk_path(cs, dir, id, "", path, sizeof(path)) == 0)
		unlink(path);
	return rc;
}

/* The chunk a write or punch goes to, created when missing.  0, -EINVAL
 * (bad chunk size or not the chunk's), -ESTALE, -EIO, -errno. */
static int chunk_for_update(struct chunkstore *cs, uint64_t id, uint32_t version, uint64_t chunk_size,
			    struct cs_open **out)
{
	struct cs_open *c;
	int rc = chunk_get(cs, id, &c);
	if (rc == -ENOENT)
		return chunk_create(cs, id, version, chunk_size, out);
	if (rc < 0)
		return rc;
	if (c->version != version)
		return -ESTALE;
	if (c->chunk_size != chunk_size)
		return -EINVAL;
	*out = c;
	return 0;
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
	return -EIO;
}

/* Masked CRC block b will have once [off, off+len) of the chunk holds buf
 * (NULL: zeros); b is only partly covered.  Reads the bytes being replaced,
 * not the block: the new CRC is the stored one updated by their difference
 * (crc32c_replace).  The rest of the block is not checked here: if it does
 * not match the stored CRC (a corrupt block, or a crash between a data write
 * and its table write), the new CRC does not match the new content either,
 * and the next read still fails with -EIO.  The old bytes of an unwritten
 * block are zeros.  0 or -errno. */
static int block_patch_crc(const struct chunkstore *cs, const struct cs_open *c, uint32_t b, uint64_t off,
			   const uint8_t *buf, uint64_t len, uint32_t *crc)
{
	uint64_t start = (uint64_t)b * BS;
	uint32_t blen = block_len(c, b);
	uint64_t s = off > start ? off : start;
	uint64_t e = off + len < start + blen ? off + len : start + blen;
	const uint8_t *old = NULL;
	uint32_t base;
	assert(s < e && e - s < blen);
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
 * Writes len bytes at offset of the chunk's data with one pwrite per block
 * (or part of one), not one for the whole range.  The page cache gives a
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
 * readahead-sized folios either way.  0 or -errno.
 */
static int write_blocks(const struct cs_open *c, const uint8_t *src, uint64_t offset, size_t len)
{
	while (len > 0) {
		size_t n = BS - offset % BS;
		n = n < len ? n : len;
		int rc = pwrite_full(c->fd, src, n, c->data_off + offset);
		if (rc < 0)
			return rc;
		src += n;
		offset += n;
		len -= n;
	}
	return 0;
}

static int table_store(const struct cs_open *c, uint32_t first, uint32_t last)
{
	return pwrite_full(c->fd, c->table + (size_t)first * 8, (size_t)(last - first + 1) * 8,
			   CHUNKSTORE_HDR_SIZE + (uint64_t)first * 8);
}

/* ---- public operations ---------------------------------------------------------------- */

static bool range_ok(uint64_t chunk_size, uint64_t off, uint64_t len)
{
	return off <= chunk_size && len <= chunk_size - off;
}

int chunkstore_write(struct chunkstore *cs, uint64_t id, uint32_t version, uint64_t chunk_size,
		     uint64_t offset, const void *buf, size_t len, uint64_t *alloc)
{
	const uint8_t *src = buf;
	struct cs_open *c;
	if (id == 0 || chunk_size == 0 || chunk_size > CHUNKSTORE_CHUNK_MAX ||
	    !range_ok(chunk_size, offset, len))
		return -EINVAL;
	int rc = chunk_for_update(cs, id, version, chunk_size, &c);
	if (rc < 0)
		return rc;
	if (len > 0) {
		uint32_t first = (uint32_t)(offset / BS), last = (uint32_t)((offset + len - 1) / BS);
		uint32_t crc_first = 0, crc_last = 0;
		/* Partial blocks first: their old bytes are read before being overwritten. */
		if (!covers(c, first, offset, len) &&
		    (rc = block_patch_crc(cs, c, first, offset, src, len, &crc_first)) < 0)
			return rc;
		if (last != first && !covers(c, last, offset, len) &&
		    (rc = block_patch_crc(cs, c, last, offset, src, len, &crc_last)) < 0)
			return rc;
		rc = write_blocks(c, src, offset, len);
		if (rc < 0) {
			log_error("chunk %016" PRIx64 ": write of %zu bytes at %" PRIu64 ": %s", id, len,
				  offset, strerror(-rc));
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
		if ((rc = table_store(c, first, last)) < 0) {
			log_error("chunk %016" PRIx64 ": block table write: %s", id, strerror(-rc));
			return rc;
		}
	}
	uint64_t a = chunk_alloc(cs, c);
	if (alloc)
		*alloc = a;
	return 0;
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
		uint64_t s = (uint64_t)mid0 * BS, e = (uint64_t)mid1 * BS + block_len(c, mid1);
		iov[n++] = (struct iovec){dst + (s - off), e - s};
	}
	if (p1)
		iov[n++] = (struct iovec){cs->scratch[1], block_len(c, b1)};
	int rc = preadv_full(c->fd, iov, n, c->data_off + (uint64_t)b0 * BS);
	if (rc < 0) {
		log_error("chunk %016" PRIx64 ": read: %s", c->id, strerror(-rc));
		return rc;
	}
	for (uint32_t b = b0; b <= b1; b++) {
		const uint8_t *data = (b == b0 && p0) ? cs->scratch[0]
				      : (b == b1 && p1) ? cs->scratch[1]
							: dst + ((uint64_t)b * BS - off);
		if ((rc = block_check(cs, c, b, data)) < 0)
			return rc;
	}
	for (int i = 0; i < 2; i++) {
		uint32_t b = i == 0 ? b0 : b1;
		if (!(i == 0 ? p0 : p1))
			continue;
		uint64_t start = (uint64_t)b * BS;
		uint64_t s = off > start ? off : start;
		uint64_t e = off + len < start + block_len(c, b) ? off + len : start + block_len(c, b);
		memcpy(dst + (s - off), cs->scratch[i] + (s - start), e - s);
	}
	return 0;
}

int chunkstore_read(struct chunkstore *cs, uint64_t id, uint32_t version, uint64_t offset, void *buf,
		    size_t len)
{
	struct cs_open *c;
	uint8_t *dst = buf;
	int rc = chunk_get(cs, id, &c);
	if (rc < 0)
		return rc;
	if (c->version != version)
		return -ESTALE;
	if (!range_ok(c->chunk_size, offset, len))
		return -EINVAL;
	if (len == 0)
		return 0;
	uint32_t first = (uint32_t)(offset / BS), last = (uint32_t)((offset + len - 1) / BS);
	for (uint32_t b = first; b <= last;) {
		if (!tab_written(c, b)) {
			uint64_t start = (uint64_t)b * BS;
			uint64_t s = offset > start ? offset : start;
			uint64_t e = offset + len < start + block_len(c, b) ? offset + len
									     : start + block_len(c, b);
			memset(dst + (s - offset), 0, e - s);
			b++;
			continue;
		}
		uint32_t e = b;
		while (e < last && tab_written(c, e + 1))
			e++;
		if ((rc = read_run(cs, c, b, e, offset, dst, len)) < 0)
			return rc;
		b = e + 1;
	}
	return 0;
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

int chunkstore_punch(struct chunkstore *cs, uint64_t id, uint32_t version, uint64_t chunk_size,
		     uint64_t offset, uint64_t len, uint64_t *alloc)
{
	struct cs_open *c;
	if (id == 0 || chunk_size == 0 || chunk_size > CHUNKSTORE_CHUNK_MAX ||
	    !range_ok(chunk_size, offset, len))
		return -EINVAL;
	int rc = chunk_for_update(cs, id, version, chunk_size, &c);
	if (rc < 0)
		return rc;
	if (len > 0) {
		uint32_t first = (uint32_t)(offset / BS), last = (uint32_t)((offset + len - 1) / BS);
		uint32_t ends[2] = {first, last}, crc[2] = {0, 0};
		bool part[2];
		for (int i = 0; i < 2; i++) {
			part[i] = (i == 0 || last != first) && !covers(c, ends[i], offset, len) &&
				  tab_written(c, ends[i]);
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
				goto io_fail;
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
				goto io_fail;
			tab_set(c, ends[i], crc[i], CHUNKSTORE_BLOCK_WRITTEN);
		}
		if ((rc = table_store(c, first, last)) < 0)
			goto io_fail;
	}
	uint64_t a = chunk_alloc(cs, c);
	if (alloc)
		*alloc = a;
	return 0;
io_fail:
	log_error("chunk %016" PRIx64 ": punch of %" PRIu64 " bytes at %" PRIu64 ": %s", id, len, offset,
		  strerror(-rc));
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
	if (c->version != version)
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

int chunkstore_seek(struct chunkstore *cs, uint64_t id, uint32_t version, uint64_t offset,
		    int whence, bool *found, uint64_t *out)
{
	struct cs_open *c;
	if (whence != CHUNKSTORE_SEEK_DATA && whence != CHUNKSTORE_SEEK_HOLE)
		return -EINVAL;
	int rc = chunk_get(cs, id, &c);
	if (rc < 0)
		return rc;
	if (c->version != version)
		return -ESTALE;
	if (offset > c->chunk_size)
		return -EINVAL;
	*found = false;
	*out = 0;
	bool want = whence == CHUNKSTORE_SEEK_DATA;
	for (uint32_t b = (uint32_t)(offset / BS); b < c->nblocks; b++) {
		if (tab_written(c, b) == want) {
			uint64_t start = (uint64_t)b * BS;
			*found = true;
			*out = offset > start ? offset : start;
			break;
		}
	}
	return 0;
}

int chunkstore_stat(struct chunkstore *cs, uint64_t id, struct chunkstore_stat *st)
{
	struct cs_open *c;
	int rc = chunk_get(cs, id, &c);
	if (rc < 0)
		return rc;
	st->version = c->version;
	st->chunk_size = c->chunk_size;
	st->alloc = chunk_alloc(cs, c);
	return 0;
}

int chunkstore_delete(struct chunkstore *cs, uint64_t id)
{
	char path[4096];
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
	if (s->open)
		chunk_close(cs, s->open);
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
	uint32_t version;
	uint64_t chunk_size;
	ssize_t n = pread_full(fd, hdr, sizeof(hdr), 0);
	const char *why = n < 0                    ? strerror((int)-n)
			  : (size_t)n < sizeof(hdr) ? "file shorter than its header"
						    : hdr_decode(hdr, id, &version, &chunk_size);
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
	cs->scratch[0] = malloc(BS);
	cs->scratch[1] = malloc(BS);
	cs->zero_crc = crc32c_zeros(BS);
	if (!cs->slots || !cs->scratch[0] || !cs->scratch[1])
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
	free(cs->scratch[0]);
	free(cs->scratch[1]);
	free(cs);
}
