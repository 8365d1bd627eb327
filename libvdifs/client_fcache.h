/*
 * client_fcache: the client's cache of shared chunks -- chunks of frozen
 * layers (VDIFS_CHUNK_SHARED: a snapshot's or a clone source's content),
 * which never change -- in 64 KiB blocks, shared by every file of the
 * client that shows them.  The kernel's page cache is per file, so without
 * it 8 clones of one golden image booting on one host read the image's
 * bytes from the data servers 8 times; with it, once.
 *
 * A chunk goes through the cache only once a second file has read it
 * (fcache_shared): a chunk only one file reads is left to that file's page
 * cache, and its reads pay no copy into the cache.
 *
 * Blocks are looked up without waiting (fcache_get): the caller fills the
 * blocks it created (one data-server read per run of them), then waits for
 * those another thread is filling (fcache_wait), so no thread ever waits
 * while holding a block it must fill.  Least recently used blocks are
 * evicted past the capacity; pinned blocks (between get and put) never are.
 *
 * No network here: the caller reads from the data servers (client_file.c).
 */
#ifndef VDIFS_CLIENT_FCACHE_H
#define VDIFS_CLIENT_FCACHE_H

#include <stdbool.h>
#include <stdint.h>

#define FCACHE_BLOCK (64u * 1024u)

struct fcache;
struct fcache_blk;

struct fcache_stats {
	uint64_t hits;      /* blocks found filled or being filled */
	uint64_t fills;     /* blocks filled from the data servers */
	uint64_t evictions; /* blocks dropped for room */
	uint64_t bytes;     /* bytes held now */
};

/* A cache of at most capacity bytes (rounded down to blocks, at least one);
 * NULL on ENOMEM. */
struct fcache *fcache_new(uint64_t capacity);
/* Frees the cache; no block may be pinned.  NULL is a no-op. */
void fcache_free(struct fcache *fc);

/* Notes that file ino reads shared chunk chunk_id; true once another file
 * read it too (then the cache serves it, for every file). */
bool fcache_shared(struct fcache *fc, uint64_t chunk_id, uint64_t ino);

/* Block bi of chunk chunk_id, pinned; never waits.  *fill: the caller made
 * it and must fill its bytes, then call fcache_filled().  Otherwise it is
 * filled or being filled by another thread: see fcache_wait().  NULL on
 * ENOMEM. */
struct fcache_blk *fcache_get(struct fcache *fc, uint64_t chunk_id, uint32_t bi, bool *fill);
/* The block's FCACHE_BLOCK bytes (to fill, or to read once it is filled). */
uint8_t *fcache_data(struct fcache_blk *b);
/* The caller filled b (ok), or could not (its waiters then read without
 * the cache, and the block is dropped). */
void fcache_filled(struct fcache *fc, struct fcache_blk *b, bool ok);
/* Waits until b is filled: true, or false when its filler failed. */
bool fcache_wait(struct fcache *fc, struct fcache_blk *b);
/* Unpins b. */
void fcache_put(struct fcache *fc, struct fcache_blk *b);

struct fcache_stats fcache_stats(struct fcache *fc);

#endif
