/*
 * client_fcache: the cache of shared (frozen) chunk blocks (see
 * client_fcache.h).
 *
 * One mutex over the table, the LRU list and the sharing slots: a lookup
 * is a few pointer steps, and the copies in and out of blocks are made
 * without it (a pinned block is neither freed nor moved).  Blocks are
 * malloc'ed one by one: 64 KiB each, freed on eviction.
 */
#include "client_fcache.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define SHARE_SLOTS 4096u /* chunks whose readers are tracked (direct-mapped) */

enum blk_state { BLK_FILLING, BLK_READY, BLK_FAILED };

struct fcache_blk {
	uint64_t chunk_id;
	uint32_t bi;
	uint8_t state;        /* enum blk_state */
	bool in_table;        /* false once dropped (failed, or evicted): freed at the last put */
	unsigned pins;
	struct fcache_blk *hnext;         /* hash chain */
	struct fcache_blk *lprev, *lnext; /* LRU list, most recent first */
	uint8_t data[];
};

/* The first file seen reading a chunk, until another one does. */
struct share_slot {
	uint64_t chunk_id; /* 0: empty (chunk id 0 is never allocated) */
	uint64_t ino;
	bool shared;
};

struct fcache {
	pthread_mutex_t m;
	pthread_cond_t cv; /* a block left BLK_FILLING */
	struct fcache_blk **buckets;
	size_t nbuckets; /* power of two */
	struct fcache_blk *lru_head, *lru_tail;
	uint64_t nblocks, max_blocks;
	struct share_slot share[SHARE_SLOTS];
	struct fcache_stats st;
};

static size_t bucket_of(const struct fcache *fc, uint64_t chunk_id, uint32_t bi)
{
	uint64_t h = (chunk_id * 0x9E3779B97F4A7C15ull) ^ ((uint64_t)bi * 0xC2B2AE3D27D4EB4Full);
	return (size_t)(h ^ (h >> 29)) & (fc->nbuckets - 1);
}

struct fcache *fcache_new(uint64_t capacity)
{
	struct fcache *fc = calloc(1, sizeof(*fc));
	if (!fc)
		return NULL;
	fc->max_blocks = capacity / FCACHE_BLOCK ? capacity / FCACHE_BLOCK : 1;
	fc->nbuckets = 64;
	while (fc->nbuckets < fc->max_blocks * 2 && fc->nbuckets < ((size_t)1 << 24))
		fc->nbuckets *= 2;
	fc->buckets = calloc(fc->nbuckets, sizeof(*fc->buckets));
	if (!fc->buckets) {
		free(fc);
		return NULL;
	}
	pthread_mutex_init(&fc->m, NULL);
	pthread_cond_init(&fc->cv, NULL);
	return fc;
}

void fcache_free(struct fcache *fc)
{
	if (!fc)
		return;
	for (struct fcache_blk *b = fc->lru_head, *next; b; b = next) {
		next = b->lnext;
		free(b);
	}
	free(fc->buckets);
	pthread_cond_destroy(&fc->cv);
	pthread_mutex_destroy(&fc->m);
	free(fc);
}

bool fcache_shared(struct fcache *fc, uint64_t chunk_id, uint64_t ino)
{
	struct share_slot *s = &fc->share[(chunk_id * 0x9E3779B97F4A7C15ull >> 40) % SHARE_SLOTS];
	pthread_mutex_lock(&fc->m);
	if (s->chunk_id != chunk_id)
		*s = (struct share_slot){chunk_id, ino, false};
	else if (s->ino != ino)
		s->shared = true;
	bool shared = s->shared;
	pthread_mutex_unlock(&fc->m);
	return shared;
}

static void lru_unlink(struct fcache *fc, struct fcache_blk *b)
{
	if (b->lprev)
		b->lprev->lnext = b->lnext;
	else
		fc->lru_head = b->lnext;
	if (b->lnext)
		b->lnext->lprev = b->lprev;
	else
		fc->lru_tail = b->lprev;
	b->lprev = b->lnext = NULL;
}

static void lru_push(struct fcache *fc, struct fcache_blk *b)
{
	b->lprev = NULL;
	b->lnext = fc->lru_head;
	if (fc->lru_head)
		fc->lru_head->lprev = b;
	else
		fc->lru_tail = b;
	fc->lru_head = b;
}

/* Takes b out of the table and the LRU list; freed now if unpinned. */
static void drop(struct fcache *fc, struct fcache_blk *b)
{
	struct fcache_blk **p = &fc->buckets[bucket_of(fc, b->chunk_id, b->bi)];
	while (*p != b)
		p = &(*p)->hnext;
	*p = b->hnext;
	lru_unlink(fc, b);
	b->in_table = false;
	fc->nblocks--;
	fc->st.bytes -= FCACHE_BLOCK;
	if (b->pins == 0)
		free(b);
}

/* Evicts unpinned filled blocks, least recently used first, past capacity. */
static void evict(struct fcache *fc)
{
	struct fcache_blk *b = fc->lru_tail;
	while (fc->nblocks > fc->max_blocks && b) {
		struct fcache_blk *prev = b->lprev;
		if (b->pins == 0 && b->state == BLK_READY) {
			drop(fc, b);
			fc->st.evictions++;
		}
		b = prev;
	}
}

struct fcache_blk *fcache_get(struct fcache *fc, uint64_t chunk_id, uint32_t bi, bool *fill)
{
	pthread_mutex_lock(&fc->m);
	size_t k = bucket_of(fc, chunk_id, bi);
	struct fcache_blk *b = fc->buckets[k];
	while (b && (b->chunk_id != chunk_id || b->bi != bi))
		b = b->hnext;
	if (b) {
		b->pins++;
		lru_unlink(fc, b);
		lru_push(fc, b);
		fc->st.hits++;
		*fill = false;
		pthread_mutex_unlock(&fc->m);
		return b;
	}
	b = malloc(sizeof(*b) + FCACHE_BLOCK);
	if (!b) {
		pthread_mutex_unlock(&fc->m);
		return NULL;
	}
	*b = (struct fcache_blk){.chunk_id = chunk_id, .bi = bi, .state = BLK_FILLING, .in_table = true, .pins = 1,
				 .hnext = fc->buckets[k]};
	fc->buckets[k] = b;
	lru_push(fc, b);
	fc->nblocks++;
	fc->st.bytes += FCACHE_BLOCK;
	fc->st.fills++;
	evict(fc);
	*fill = true;
	pthread_mutex_unlock(&fc->m);
	return b;
}

uint8_t *fcache_data(struct fcache_blk *b) { return b->data; }

void fcache_filled(struct fcache *fc, struct fcache_blk *b, bool ok)
{
	pthread_mutex_lock(&fc->m);
	b->state = ok ? BLK_READY : BLK_FAILED;
	if (!ok && b->in_table)
		drop(fc, b); /* pinned by the caller: freed at its put */
	pthread_cond_broadcast(&fc->cv);
	pthread_mutex_unlock(&fc->m);
}

bool fcache_wait(struct fcache *fc, struct fcache_blk *b)
{
	pthread_mutex_lock(&fc->m);
	while (b->state == BLK_FILLING)
		pthread_cond_wait(&fc->cv, &fc->m);
	bool ok = b->state == BLK_READY;
	pthread_mutex_unlock(&fc->m);
	return ok;
}

void fcache_put(struct fcache *fc, struct fcache_blk *b)
{
	pthread_mutex_lock(&fc->m);
	if (--b->pins == 0) {
		if (!b->in_table)
			free(b);
		else if (fc->nblocks > fc->max_blocks)
			evict(fc);
	}
	pthread_mutex_unlock(&fc->m);
}

struct fcache_stats fcache_stats(struct fcache *fc)
{
	pthread_mutex_lock(&fc->m);
	struct fcache_stats s = fc->st;
	pthread_mutex_unlock(&fc->m);
	return s;
}
