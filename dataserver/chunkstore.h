/*
 * chunkstore: the chunk replicas of one data server, as files in one or more
 * local directories, in the format of docs/ARCHITECTURE.md ("Chunk files").
 *
 * A chunk is created by its first write (or punch), which fixes its chunk
 * size; every later operation names the version it expects and is refused
 * with -ESTALE when the replica holds another one.  Every 64 KiB block carries
 * a masked CRC32C that is checked on every read: a mismatch is -EIO, never
 * wrong data.  Blocks never written are holes: they read as zeros and use no
 * disk.
 *
 * Threading: a chunkstore is not thread-safe; one thread (the data server's
 * event loop) makes every call.
 */
#ifndef VDIFS_CHUNKSTORE_H
#define VDIFS_CHUNKSTORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CHUNKSTORE_MAGIC "VDCHUNK1"
#define CHUNKSTORE_FORMAT 1u
#define CHUNKSTORE_BLOCK_SIZE 65536u
#define CHUNKSTORE_HDR_SIZE 4096u
#define CHUNKSTORE_ENTRY_SIZE 8u          /* block table entry: u32 masked crc, u32 flags */
#define CHUNKSTORE_BLOCK_WRITTEN 1u       /* table flag: block holds data */
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

struct chunkstore_stat {
	uint32_t version;
	uint64_t alloc;      /* bytes of data allocated on disk (st_blocks*512 minus header and table) */
	uint64_t chunk_size;
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
 * Writes len bytes of buf at offset of chunk id, creating the chunk with
 * chunk_size and version when it does not exist.  The CRC of a partly
 * written block is updated from the bytes replaced, without reading or
 * checking the rest of the block: a block that was corrupt stays so (its CRC
 * still mismatches) and fails the next read with -EIO.  Nothing is synced.
 * Returns 0 and the chunk's allocated bytes in *alloc (may be NULL), or
 * -EINVAL (id 0, bad chunk size, offset+len beyond the chunk, chunk size not
 * that of the existing chunk), -ESTALE (another version), -EIO (a corrupt
 * chunk header), or the -errno of a failed syscall (-ENOSPC ...).  buf stays
 * the caller's.
 */
int chunkstore_write(struct chunkstore *cs, uint64_t id, uint32_t version, uint64_t chunk_size,
		     uint64_t offset, const void *buf, size_t len, uint64_t *alloc);

/*
 * Reads len bytes at offset of chunk id into buf; holes read as zeros.
 * Returns 0, or -ENOENT (no such chunk), -ESTALE (another version), -EINVAL
 * (offset+len beyond the chunk), -EIO (a CRC mismatch in a block touched; it
 * is logged with the chunk and block; buf then holds garbage), -errno.
 */
int chunkstore_read(struct chunkstore *cs, uint64_t id, uint32_t version, uint64_t offset, void *buf,
		    size_t len);

/*
 * Makes [offset, offset+len) of chunk id read as zeros: whole blocks become
 * holes again (their space is returned), partial blocks are zeroed and get a
 * new CRC.  Creates the chunk like a write when it does not exist.  Returns
 * 0 and the allocated bytes in *alloc (may be NULL), or the errors of
 * chunkstore_write.
 */
int chunkstore_punch(struct chunkstore *cs, uint64_t id, uint32_t version, uint64_t chunk_size,
		     uint64_t offset, uint64_t len, uint64_t *alloc);

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
 * offset within the chunk (offset itself when its block qualifies).
 * Returns 0, -ENOENT, -ESTALE, -EINVAL (offset beyond the chunk, bad whence).
 */
int chunkstore_seek(struct chunkstore *cs, uint64_t id, uint32_t version, uint64_t offset,
		    int whence, bool *found, uint64_t *out);

/* Version, allocated bytes and chunk size of chunk id: 0, -ENOENT, -EIO, -errno. */
int chunkstore_stat(struct chunkstore *cs, uint64_t id, struct chunkstore_stat *st);

/* Removes chunk id (whatever its version or state): 0, -ENOENT, -errno. */
int chunkstore_delete(struct chunkstore *cs, uint64_t id);

/* Makes the unlinks of chunkstore_delete() durable (fsyncs the directories
 * they touched), e.g. before reporting them as done: 0 or the first -errno. */
int chunkstore_sync_deletes(struct chunkstore *cs);

/* Space of the directories (statvfs) and of the chunks: 0 or -errno. */
int chunkstore_space(struct chunkstore *cs, struct chunkstore_space *sp);

/* Path of chunk id's file (whether or not it exists) in path (size cap):
 * 0, -ENOENT (not indexed), -ENAMETOOLONG. */
int chunkstore_path(const struct chunkstore *cs, uint64_t id, char *path, size_t cap);

/* Offset of block data in a chunk file of that chunk size (the format's data_off). */
uint64_t chunkstore_data_off(uint64_t chunk_size);

#endif
