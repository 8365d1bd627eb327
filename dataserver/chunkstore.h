/*
 * chunkstore: the chunk replicas of one data server, as files in one or more
 * local directories, in the format of docs/ARCHITECTURE.md ("Chunk files").
 *
 * A chunk is created by its first write (or punch), which fixes its
 * geometry; every later operation names the version it expects and is
 * refused with -ESTALE when the replica holds a newer one (an older one is
 * brought up to the version named: see version_ok in chunkstore.c).  Every block
 * carries a masked CRC32C that is checked on every read: a mismatch is -EIO,
 * never wrong data.  Blocks never written are holes: they use no disk.
 *
 * Two kinds of chunk:
 *  - plain (extent 0, no bases): 64 KiB blocks; an unwritten block reads as
 *    zeros.
 *  - delta: copy-on-write over a chain of base chunks (the chunks frozen
 *    ancestor layers hold at the same file index, nearest first).  Its
 *    blocks are its extents (4 KiB..1 MiB), each OWN (data in this file),
 *    ZERO (punched: zeros, hiding the bases) or INHERIT (reads what the
 *    chain shows there).  The chain is resolved on this server: the first
 *    base held here supplies the range (its own INHERIT extents resolving
 *    further down), a base not held here is skipped (it was never written,
 *    so it shows its own base), and an exhausted chain reads as zeros.
 *    Every operation names the chain; its first base must be the one the
 *    delta's header records (-EINVAL otherwise: a confused client).
 *
 * A copy (chunkstore_copy) makes a new plain chunk of what another chunk
 * reads as, chain included; its disk work can run on another thread.
 *
 * Threading: a chunkstore is not thread-safe; one thread (the data server's
 * event loop) makes every call, except chunkstore_sync_run() and
 * chunkstore_copy_run(), which touch no chunkstore.
 */
#ifndef VDIFS_CHUNKSTORE_H
#define VDIFS_CHUNKSTORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CHUNKSTORE_MAGIC "VDCHUNK1"
#define CHUNKSTORE_FORMAT 1u              /* header of a plain chunk */
#define CHUNKSTORE_FORMAT_DELTA 2u        /* header of a delta chunk: format 1 + its base */
#define CHUNKSTORE_BLOCK_SIZE 65536u      /* block size of plain chunks */
#define CHUNKSTORE_HDR_SIZE 4096u
#define CHUNKSTORE_ENTRY_SIZE 8u          /* block table entry: u32 masked crc, u32 flags */
#define CHUNKSTORE_BLOCK_WRITTEN 1u       /* table flag: block holds data (a delta: OWN) */
#define CHUNKSTORE_BLOCK_ZERO 2u          /* table flag, deltas: reads as zeros (ZERO); neither: INHERIT */
#define CHUNKSTORE_EXTENT_MIN 4096u       /* delta extents: powers of two in [MIN, MAX] */
#define CHUNKSTORE_EXTENT_MAX (1u << 20)
#define CHUNKSTORE_CHAIN_MAX 31u          /* bases of a delta (VDIFS_DEPTH_MAX - 1) */
#define CHUNKSTORE_CHUNK_MAX (1ull << 30) /* largest chunk size accepted (docs: 1 MiB..1 GiB) */
#define CHUNKSTORE_FD_CACHE_DEFAULT 512u
#define CHUNKSTORE_DIRS_MAX 64u

enum chunkstore_whence { CHUNKSTORE_SEEK_DATA = 0, CHUNKSTORE_SEEK_HOLE = 1 };

struct chunkstore;

struct chunkstore_config {
	const char *const *dirs; /* data directories (created when missing, not their parents) */
	size_t ndirs;            /* 1..CHUNKSTORE_DIRS_MAX */
	unsigned fd_cache;       /* open chunk files kept (LRU); 0: CHUNKSTORE_FD_CACHE_DEFAULT */
};

/* One base of a delta chunk: a chunk id and the version it must have. */
struct chunkstore_base {
	uint64_t id;
	uint32_t version;
};

/* The geometry a write or punch names (and a creation fixes).  Plain: extent
 * 0, nbase 0.  Delta: extent a power of two in [CHUNKSTORE_EXTENT_MIN,
 * CHUNKSTORE_EXTENT_MAX] dividing chunk_size, and 1..CHUNKSTORE_CHAIN_MAX
 * bases, nearest first, none 0, the chunk itself or repeated. */
struct chunkstore_geom {
	uint64_t chunk_size;
	uint32_t extent;
	uint32_t nbase;
	const struct chunkstore_base *base;
};

/* Space of a chunk.  own: bytes its file's data occupies (st_blocks*512
 * minus header and table); bytes: own plus, for a delta, extent size times
 * its INHERIT extents under which the chain holds data (what the chunk's
 * content occupies, shared or not).  Plain chunk: bytes == own. */
struct chunkstore_alloc {
	uint64_t bytes;
	uint64_t own;
};

struct chunkstore_stat {
	uint32_t version;
	uint64_t alloc;      /* as chunkstore_alloc.bytes */
	uint64_t own;        /* as chunkstore_alloc.own */
	uint64_t chunk_size;
	uint32_t extent;              /* 0: plain chunk */
	struct chunkstore_base base;  /* a delta's immediate base (from its header), else zeros */
};

/* Counters of the store since it was opened (for ds.stats and tests). */
struct chunkstore_counters {
	uint64_t deltas_created;   /* delta chunk files created */
	uint64_t cow_extents;      /* extents copied from a chain by a partial write or punch */
	uint64_t cow_bytes;        /* their bytes */
	uint64_t chain_read_bytes; /* bytes chunkstore_read() resolved through a chain */
	uint64_t copy_bytes;       /* data bytes written by completed copies (chunkstore_copy*) */
};

struct chunkstore_space {
	uint64_t total;   /* size of the file systems holding the directories (each counted once) */
	uint64_t avail;   /* bytes available to us on them */
	uint64_t used;    /* bytes allocated by chunk files */
	uint64_t nchunks; /* chunks indexed (including ones with a corrupt header) */
};

/*
 * Opens the store: checks the directories and indexes every chunk file in
 * them.  A file whose header is corrupt is logged and kept on disk but never
 * read or written (operations on its id return -EIO until it is deleted);
 * leftover temporary files of an interrupted chunk creation are removed.
 * Returns 0 and the store in *out, or -errno with a message in err.
 */
int chunkstore_open(const struct chunkstore_config *cfg, struct chunkstore **out, char *err,
		    size_t errlen);
/* Closes every file and frees the store (NULL is a no-op).  Does not sync. */
void chunkstore_close(struct chunkstore *cs);

/*
 * Writes len bytes of buf at offset of chunk id, creating the chunk with the
 * geometry g and version when it does not exist.  Plain chunk: the CRC of a
 * partly written block is updated from the bytes replaced, without reading or
 * checking the rest of the block: a block that was corrupt stays so (its CRC
 * still mismatches) and fails the next read with -EIO.  Delta: a wholly
 * written extent is written without reading the chain; a partly written
 * INHERIT (ZERO) extent is first filled from the chain (zeros), the whole
 * extent written and owned.  Nothing is synced.  Returns 0 and the chunk's
 * space in *alloc (may be NULL), or -EINVAL (id 0, bad geometry, offset+len
 * beyond the chunk, a geometry or first base not that of the existing
 * chunk, a base of another chunk size), -ESTALE (another version of the
 * chunk or of a base held here), -EBUSY (a copy to the chunk is running),
 * -EIO (a corrupt chunk header, a CRC mismatch in a base extent copied), or
 * the -errno of a failed syscall (-ENOSPC ...).  buf stays the caller's.
 */
int chunkstore_write(struct chunkstore *cs, uint64_t id, uint32_t version, const struct chunkstore_geom *g,
		     uint64_t offset, const void *buf, size_t len, struct chunkstore_alloc *alloc);

/*
 * Reads len bytes at offset of chunk id into buf, resolving a delta's
 * INHERIT extents through chain (its bases, nearest first; nchain 0 for a
 * plain chunk).  A chunk not held here reads as its chain when nchain > 0.
 * Returns 0, or -ENOENT (no such chunk and no chain), -ESTALE (another
 * version, here or of a base), -EINVAL (offset+len beyond the chunk, a chain
 * that is not the chunk's), -EIO (a CRC mismatch in a block touched, here or
 * in a base; it is logged with the chunk and block; buf then holds
 * garbage), -errno.
 */
int chunkstore_read(struct chunkstore *cs, uint64_t id, uint32_t version, const struct chunkstore_base *chain,
		    uint32_t nchain, uint64_t offset, void *buf, size_t len);

/*
 * Cold reads off the event loop.  chunkstore_read_cached() is
 * chunkstore_read() taking only what the page cache holds: -EAGAIN as soon
 * as a page it needs is not there (nothing else changes).  The caller then
 * makes a plan (on the loop): the byte range of each chunk file the read
 * will touch, on duplicates of their descriptors, so the loop may close or
 * delete those chunks meanwhile.  chunkstore_fetch_run() (on any thread)
 * reads those ranges into the page cache through scratch and releases the
 * plan; chunkstore_read() on the loop then finds the data cached.
 */
struct chunkstore_fetch_range {
	uint64_t id; /* chunk */
	int fd;      /* a duplicate, owned by the plan */
	uint64_t start, end;
};
struct chunkstore_fetch {
	unsigned n;
	struct chunkstore_fetch_range r[CHUNKSTORE_CHAIN_MAX + 1];
};
int chunkstore_read_cached(struct chunkstore *cs, uint64_t id, uint32_t version, const struct chunkstore_base *chain,
			   uint32_t nchain, uint64_t offset, void *buf, size_t len);
/* 0 or -errno as chunkstore_read (f is then empty). */
int chunkstore_fetch_plan(struct chunkstore *cs, uint64_t id, uint32_t version, const struct chunkstore_base *chain,
			  uint32_t nchain, uint64_t offset, size_t len, struct chunkstore_fetch *f);
void chunkstore_fetch_run(struct chunkstore_fetch *f, void *scratch, size_t scratch_len);
/* Closes the plan's descriptors (chunkstore_fetch_run does it too). */
void chunkstore_fetch_release(struct chunkstore_fetch *f);

/*
 * A cold read of a plain chunk done whole off the loop: the plan copies the
 * table entries of the blocks the read covers (on the loop);
 * chunkstore_pread_run() (on any thread) reads those blocks into buf
 * (nblocks * bs bytes; the range asked starts at buf + skip), unwritten
 * ones as zeros, and checks every CRC against the entries.  -EIO there
 * means the block changed since the plan or is corrupt: the caller then
 * reads with chunkstore_read() on the loop, which tells which (and reports
 * it).  Plan: 0, -EOPNOTSUPP (a delta, a chain, too many blocks: use
 * chunkstore_fetch_plan), or -errno as chunkstore_read.
 */
#define CHUNKSTORE_PREAD_BLOCKS 18u /* a 1 MiB read over 64 KiB blocks, unaligned */
struct chunkstore_pread {
	uint64_t id;
	int fd; /* a duplicate, owned; -1 once run or released */
	uint64_t file_off;
	uint32_t skip;
	uint64_t len;
	uint32_t nblocks, bs;
	uint32_t crc[CHUNKSTORE_PREAD_BLOCKS];
	uint32_t blen[CHUNKSTORE_PREAD_BLOCKS];
	bool written[CHUNKSTORE_PREAD_BLOCKS];
};
int chunkstore_pread_plan(struct chunkstore *cs, uint64_t id, uint32_t version, const struct chunkstore_base *chain,
			  uint32_t nchain, uint64_t offset, size_t len, struct chunkstore_pread *p);
int chunkstore_pread_run(struct chunkstore_pread *p, uint8_t *buf);
void chunkstore_pread_release(struct chunkstore_pread *p);

/*
 * Makes [offset, offset+len) of chunk id read as zeros.  Plain chunk: whole
 * blocks become holes again (their space is returned), partial blocks are
 * zeroed and get a new CRC.  Delta: whole extents become ZERO (hiding the
 * chain; their space is returned), partial ones are a copy-on-write of
 * zeros.  Creates the chunk like a write when it does not exist.  Returns 0
 * and the space in *alloc (may be NULL), or the errors of chunkstore_write.
 */
int chunkstore_punch(struct chunkstore *cs, uint64_t id, uint32_t version, const struct chunkstore_geom *g,
		     uint64_t offset, uint64_t len, struct chunkstore_alloc *alloc);

/* Makes chunk id durable (fdatasync; the directory too after a creation).
 * Returns 0, -ENOENT, -ESTALE, -EIO or -errno.  Blocks for the sync: see
 * chunkstore_sync_prepare() to run it on another thread. */
int chunkstore_sync(struct chunkstore *cs, uint64_t id, uint32_t version);

/* A sync split in three so that the slow part runs off the loop thread. */
struct chunkstore_sync_job {
	uint64_t id;
	int fd;     /* a dup of the chunk's file: valid even if the chunk is closed or deleted */
	int dfd[2]; /* its directories when they hold an unsynced creation, else -1 */
	int rc;     /* result of chunkstore_sync_run() */
};
/* Checks chunk id and version and fills job (its fds are the job's).
 * 0, -ENOENT, -ESTALE, -EIO, -errno (then job holds nothing). */
int chunkstore_sync_prepare(struct chunkstore *cs, uint64_t id, uint32_t version,
			    struct chunkstore_sync_job *job);
/* fdatasyncs the file (and fsyncs the directories), closes the job's fds and
 * sets job->rc (0 or -errno, logged).  Touches no chunkstore: any thread. */
void chunkstore_sync_run(struct chunkstore_sync_job *job);
/* Back on the store's thread: records a successful directory sync. */
void chunkstore_sync_finish(struct chunkstore *cs, const struct chunkstore_sync_job *job);

/*
 * Finds the first data (or hole) at or after offset, at block granularity:
 * *found is false when the rest of the chunk has none; else *out is the
 * offset within the chunk (offset itself when its block qualifies).  In a
 * delta, OWN extents are data, ZERO ones holes, and INHERIT ones show the
 * chain's data and holes (a written block of the base, recursively), at the
 * granularity of the extent or base block; a chunk not held here with a
 * chain shows its chain.  Returns 0, -ENOENT, -ESTALE, -EINVAL (offset
 * beyond the chunk, bad whence, a chain that is not the chunk's), -EIO.
 */
int chunkstore_seek(struct chunkstore *cs, uint64_t id, uint32_t version, const struct chunkstore_base *chain,
		    uint32_t nchain, uint64_t offset, int whence, bool *found, uint64_t *out);

/*
 * Makes plain chunk id (version, chunk size src->chunk_size) hold what chunk
 * src_id (src_version, geometry src: extent 0 and no bases for a plain
 * chunk, else a delta's extent and chain) reads as, exactly as
 * chunkstore_read() shows it: every block used CRC-checked, a chain member
 * not held here skipped, a delta not held here its chain (but a plain
 * source not held here is -ENOENT).  Only the 64 KiB blocks under which the
 * source shows data (as chunkstore_seek() finds it) are written, in 1 MiB
 * windows: holes and ZERO extents stay holes (and so do the 4 KiB pages of
 * zeros inside written blocks: they read as zeros).  The new chunk is built
 * under a temporary name, fdatasynced, renamed into place and its
 * directories fsynced: on return it is durable, and a crash leaves either
 * no chunk or the whole copy.  An id held with this version (a retry) is
 * replaced by a fresh copy.  Memory: two 1 MiB buffers and a map of the
 * source's data runs (at most about chunk size / 4 KiB runs of 28 bytes).
 *
 * Returns 0 and the new chunk's space in *alloc (may be NULL; own ==
 * bytes), or -EINVAL (id 0, id the source or in its chain, a bad source
 * geometry, a chunk size or geometry not that of the source or of a chain
 * member held here, id held as a delta or with another chunk size),
 * -ESTALE (id held with another version; the source or a base used held
 * with another version), -ENOENT (a plain source not held here; id deleted
 * while it was being copied), -EBUSY (a copy to id is running), -EIO (a
 * CRC mismatch or a corrupt header), -errno (-ENOSPC ...).
 */
int chunkstore_copy(struct chunkstore *cs, uint64_t id, uint32_t version, uint64_t src_id, uint32_t src_version,
		    const struct chunkstore_geom *src, struct chunkstore_alloc *alloc);

/* A copy split in three so that the disk work runs off the store's thread.
 * Every prepared job must be finished before chunkstore_close(); while it
 * is, writes and punches of id are -EBUSY and a deletion of id cancels it. */
struct chunkstore_copy_job;
/* Checks everything and maps the source (its files are duplicated, so the
 * job does not depend on the store's cache): 0 and the job in *out, or the
 * errors of chunkstore_copy() (then *out is NULL). */
int chunkstore_copy_prepare(struct chunkstore *cs, uint64_t id, uint32_t version, uint64_t src_id,
			    uint32_t src_version, const struct chunkstore_geom *src,
			    struct chunkstore_copy_job **out);
/* Reads, checks, writes and syncs the new chunk (logging any failure).
 * Touches no chunkstore: any thread. */
void chunkstore_copy_run(struct chunkstore_copy_job *job);
/* Back on the store's thread: indexes the new chunk and frees the job.
 * 0 and the space in *alloc (may be NULL), or the job's error. */
int chunkstore_copy_finish(struct chunkstore *cs, struct chunkstore_copy_job *job, struct chunkstore_alloc *alloc);

/* Version, space and geometry of chunk id: 0, -ENOENT, -EIO, -errno.  A
 * delta's inherited data is counted along the chain its last operation
 * named (or, before any, the chain its held bases' headers describe). */
int chunkstore_stat(struct chunkstore *cs, uint64_t id, struct chunkstore_stat *st);

/* ---- copies to other servers (re-replication) ---------------------------
 * The source sends a chunk's block table and written blocks in pieces; the
 * target builds the same chunk file (chunkstore_import_begin, then
 * chunkstore_import per piece).  Writes that reach the target meanwhile
 * (mirrored by the source) are applied as usual: a piece exported after a
 * write carries it, so the copy converges on the source. */
struct chunkstore_export_info {
	uint32_t version;
	uint64_t chunk_size;
	uint32_t block_size; /* CHUNKSTORE_BLOCK_SIZE, or a delta's extent */
	uint32_t nblocks;
	uint32_t extent;     /* 0: plain chunk */
	struct chunkstore_base base; /* a delta's immediate base */
};
int chunkstore_export_geom(struct chunkstore *cs, uint64_t id, struct chunkstore_export_info *out);
/* Table entries of blocks [first, first + n) (n * CHUNKSTORE_ENTRY_SIZE
 * bytes into entries) and the data of the written ones, in order, into data
 * (cap bytes; *dlen used), each checked against its CRC.  0, -ENOENT,
 * -EINVAL (range, cap), -EIO (a block's CRC fails: not a source), -errno. */
int chunkstore_export(struct chunkstore *cs, uint64_t id, uint32_t first, uint32_t n, uint8_t *entries,
		      uint8_t *data, size_t cap, size_t *dlen);
/* Creates chunk id empty with geometry g (at most the immediate base),
 * replacing a copy held from an earlier attempt.  0 or -errno. */
int chunkstore_import_begin(struct chunkstore *cs, uint64_t id, uint32_t version, const struct chunkstore_geom *g);
/* Stores what chunkstore_export gave for [first, first + n).  0, -ENOENT,
 * -EINVAL (range, flags, data not matching the entries or their CRCs),
 * -errno. */
int chunkstore_import(struct chunkstore *cs, uint64_t id, uint32_t first, uint32_t n, const uint8_t *entries,
		      const uint8_t *data, size_t dlen);

/* Sets a function called with the chunk's id whenever a block of it fails
 * its CRC check (a read, a copy, a scrub): the replica is bad and must be
 * replaced.  It may be called several times for one chunk. */
void chunkstore_on_corrupt(struct chunkstore *cs, void (*fn)(void *arg, uint64_t id), void *arg);

/* -ESTALE when chunk id is held here with a newer version than version
 * (the asker's layout is stale), else 0; no disk access.  A primary asks
 * before forwarding a write, so that a stale write reaches no replica. */
int chunkstore_check_version(const struct chunkstore *cs, uint64_t id, uint32_t version);

/* Records that replica id is current at version (a newer one than it
 * holds: its replica set changed, see docs/ARCHITECTURE.md "Failures"):
 * 0, -ENOENT, -ESTALE (it holds a newer version still), -EIO, -errno. */
int chunkstore_set_version(struct chunkstore *cs, uint64_t id, uint32_t version);

/* Calls fn(arg, id, version) for every chunk held (version 0: its header is
 * corrupt), in no order, until fn returns non-zero (which is returned).
 * Chunks a running copy is making are not listed.  fn must not change the
 * store. */
int chunkstore_list(const struct chunkstore *cs, int (*fn)(void *arg, uint64_t id, uint32_t version), void *arg);

/* The store's counters (valid until chunkstore_close). */
const struct chunkstore_counters *chunkstore_counters(const struct chunkstore *cs);

/* Removes chunk id (whatever its version or state): 0, -ENOENT, -errno.
 * A copy to id that is running is cancelled (its finish is -ENOENT). */
int chunkstore_delete(struct chunkstore *cs, uint64_t id);

/* Makes the unlinks of chunkstore_delete() durable (fsyncs the directories
 * they touched), e.g. before reporting them as done: 0 or the first -errno. */
int chunkstore_sync_deletes(struct chunkstore *cs);

/* Space of the directories (statvfs) and of the chunks: 0 or -errno. */
int chunkstore_space(struct chunkstore *cs, struct chunkstore_space *sp);

/* Path of chunk id's file (whether or not it exists) in path (size cap):
 * 0, -ENOENT (not indexed), -ENAMETOOLONG. */
int chunkstore_path(const struct chunkstore *cs, uint64_t id, char *path, size_t cap);

/* Offset of block data in a plain chunk file of that chunk size (the
 * format's data_off), and in a delta chunk file with that extent. */
uint64_t chunkstore_data_off(uint64_t chunk_size);
uint64_t chunkstore_delta_data_off(uint64_t chunk_size, uint32_t extent);

#endif
