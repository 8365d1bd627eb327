/*
 * test_mds_model: thousands of random operations on the MDS's layers,
 * chunk tables, snapshots, clones and flattens, with the real chunk stores
 * of three data servers as the data plane, against a naive in-memory model.
 *
 * Each run (a fixed seed, printed; VDIFS_MODEL_SEED sets the first seed and
 * VDIFS_MODEL_OPS the operations per run) drives files of up to five 1 MiB
 * chunks, two replicas over three data servers, through writes (aligned,
 * unaligned, across chunks, zeros), punches, truncations, snapshots, clones
 * (into new and into existing files, from files and from snapshots),
 * reverts, renames, deletions of files and of snapshots (orphaned ones
 * too), flattens (whole, or step by step with other operations between the
 * steps, abandoned, at the depth limit), writers that die after
 * CHUNK_ALLOC, extent size changes, a data server going down and up,
 * restarts of the MDS and of the chunk stores, and deletions through
 * heartbeats.  For each it does what the client, the tools and the data
 * servers do (libvdifs/client_file.c, client/snapctl.c, tools/vdifs-clone.c,
 * dataserver/handlers.c and mdslink.c) and checks:
 *  - reads, byte for byte, against a plain byte array per file and
 *    snapshot: after every operation the range it touched (with a margin)
 *    and random windows of the files it changed; every byte of every file
 *    and snapshot on every replica every FULL_EVERY operations and at the
 *    end (bytes past the size too: they must be zeros for a later growth);
 *  - a model of the layers (chains, frozen layers, chunk-table entries and
 *    HOLEs, reference counts, flattens in progress) against every LAYOUT,
 *    CHUNK_ALLOC and FLATTEN_CHUNKS answer (a chunk reused or new, plain or
 *    delta, its chain of bases, extent and replicas on up servers holding
 *    its base), EMLINK at the depth limit, ENOTEMPTY, EEXIST, EROFS, ENOSPC,
 *    EBUSY and EINVAL, st_size, st_blocks (the allocation of every chunk the
 *    file shows, as the data servers reported it), layer ids, and every L,
 *    C, K, G, P and Q record;
 *  - that each chunk freed is queued for deletion on each of its replicas
 *    at once and handed to each by a heartbeat exactly once; and at the end,
 *    everything deleted, that no layer, chunk or queue record is left, the
 *    chunk counter is 0 and the data servers hold no chunk.
 */
#include "test_mds_util.h"

#include "chunkstore.h"
#include "client.h"
#include "flatten.h"
#include "snapshot.h"
#include "test_fs_util.h"

#include <errno.h>
#include <ftw.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#define ROOT 1
#define KiB 1024ull
#define MiB (1024ull * 1024)
#define CS MiB              /* the volume's chunk size: the smallest allowed */
#define NIDX 5              /* chunk indexes a file uses */
#define FMAX (NIDX * CS)    /* largest file */
#define NDS 3
#define REPLICAS 2
#define MAX_FILES 12
#define MAX_SNAPS 16
#define MAX_OBJS (MAX_FILES + MAX_SNAPS + 2)
#define HOLE UINT64_MAX     /* a HOLE in a model chunk table (0: no entry) */
#define FULL_EVERY 100
#define DEFAULT_OPS 2000
#define HIST 32
#define WBUF (2 * MiB)

/* ---- the model ------------------------------------------------------------------- */

/* Bytes of one chunk index of a file or snapshot, shared copy-on-write
 * between the model's objects (NULL: zeros). */
struct mbuf {
	unsigned refs;
	uint8_t b[];
};

/* A layer as layer.c and snapshot.c are documented to keep it. */
struct mlayer {
	uint64_t id;   /* the MDS's id, learnt from the attributes (0 until then) */
	struct mlayer *parent;
	bool frozen;
	unsigned refs; /* objects using it and child layers */
	uint64_t ent[NIDX]; /* chunk id, HOLE, or 0 for no entry */
};

struct mchunk {
	bool made, live;
	bool written;       /* held by its replicas (a write or punch reached them) */
	bool copying;       /* a flatten's copy: its space is the source's until FLATTEN_END */
	uint64_t base;      /* 0: a plain chunk */
	uint32_t extent;    /* a delta's */
	uint32_t nrep;
	int ds[VDIFS_MAX_REPLICAS]; /* store indexes, primary first */
	uint64_t alloc, own; /* as the MDS must record them */
	uint8_t queued;     /* per store: freed, on that server's deletion queue */
	uint8_t collected;  /* per store: handed out by a heartbeat and deleted */
	uint8_t acked;      /* per store: reported deleted by a later heartbeat */
};

/* A file in the root or a snapshot in its .snap. */
struct obj {
	bool live, snap;
	char name[32];       /* a file's name; a snapshot's entry "<file>@<snap>" */
	char sname[8];       /* a snapshot's name */
	struct obj *origin;  /* a snapshot's file, NULL once that is gone */
	uint64_t origin_ino;
	uint64_t ino;
	uint64_t size;
	struct mlayer *layer;
	struct mbuf *data[NIDX];
	/* A file's flatten in progress: the P record. */
	bool fl_on;
	struct mlayer *fl_flat, *fl_frozen;            /* the new layer, the content */
	uint64_t fl_layer, fl_size;                    /* the file's layer id and size at the start */
	bool fl_copied[NIDX];                          /* DS_COPY done: fl_alloc to send */
	struct chunkstore_alloc fl_alloc[NIDX];
};

/* A chunk_loc record, decoded. */
struct cloc {
	uint64_t index, id;
	uint32_t version, extent, nrep, nbase;
	bool shared; /* VDIFS_CHUNK_SHARED */
	int ds[VDIFS_MAX_REPLICAS]; /* store indexes */
	struct chunkstore_base chain[CHUNKSTORE_CHAIN_MAX];
};

/* An allocation report of a data server, to COMMIT. */
struct pend {
	uint64_t index, id;
	struct chunkstore_alloc a;
};

struct counts {
	unsigned write, punch, trunc, snap, clone, clone_into, revert, unlink, snapdel, orphandel, rename,
		mknod, crash, extent, down, reopen_mds, reopen_ds, gc, deepen, erofs;
	unsigned fl_begin, fl_flat, fl_inplace, fl_end, fl_ebusy, fl_einval, fl_abort, fl_copies, fl_nocopy;
	unsigned emlink, eexist, enotempty, enospc, deltas, plain, reused, chain2, freed, collected;
	uint32_t maxdepth;
};

struct sim {
	struct tmds *t;
	uint32_t vol, seed;
	uint64_t rng;
	int op;
	uint32_t extent;    /* the volume's extent_size */
	uint64_t snapdir;   /* the root's .snap, once made */
	struct chunkstore *cs[NDS];
	char csdir[NDS][96];
	uint32_t dsid[NDS];
	bool up[NDS];
	uint64_t *acks[NDS]; /* deleted since that server's last heartbeat */
	size_t nacks[NDS], capacks[NDS];
	struct obj o[MAX_OBJS];
	struct mlayer **layers; /* live model layers */
	size_t nlayers, caplayers;
	struct mchunk *ch;      /* by chunk id */
	size_t capch;
	uint64_t max_chunk, max_layer, layer_floor;
	uint64_t *freed;        /* chunks the running operation freed */
	size_t nfreed, capfreed;
	uint8_t *wbuf, *rbuf, *zero;
	struct mdstore_iter *it; /* open store scan (closed on a failure) */
	char hist[HIST][160];
	unsigned nhist;
	struct counts n;
};

static void *xrealloc(void *p, size_t n)
{
	p = realloc(p, n);
	assert_non_null(p);
	return p;
}

static uint64_t rnd(struct sim *s)
{
	uint64_t z = (s->rng += 0x9E3779B97F4A7C15ull);
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
	return z ^ (z >> 31);
}

static uint64_t rn(struct sim *s, uint64_t n) { return rnd(s) % n; }

static void fill(uint8_t *p, size_t n, uint64_t seed)
{
	size_t i = 0;
	for (; i + 8 <= n; i += 8) {
		seed = seed * 6364136223846793005ull + 1442695040888963407ull;
		uint64_t v = seed ^ (seed >> 29);
		memcpy(p + i, &v, 8);
	}
	for (; i < n; i++) {
		seed = seed * 6364136223846793005ull + 1442695040888963407ull;
		p[i] = (uint8_t)(seed >> 33);
	}
}

/* ---- failures carry the seed, the operation and the last operations ------------------ */

static void note(struct sim *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void note(struct sim *s, const char *fmt, ...)
{
	va_list ap;
	char *h = s->hist[s->nhist++ % HIST];
	int k = snprintf(h, sizeof(s->hist[0]), "%5d ", s->op);
	va_start(ap, fmt);
	vsnprintf(h + k, sizeof(s->hist[0]) - (size_t)k, fmt, ap);
	va_end(ap);
}

static void sim_fail(struct sim *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sim_fail(struct sim *s, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (s->it) {
		mdstore_iter_close(s->it); /* the store cannot close with a scan open */
		s->it = NULL;
	}
	print_message("last operations (seed %u):\n", s->seed);
	for (unsigned i = s->nhist > HIST ? s->nhist - HIST : 0; i < s->nhist; i++)
		print_message("  %s\n", s->hist[i % HIST]);
	fail_msg("seed %u, operation %d: %s (rerun: VDIFS_MODEL_SEED=%u)", s->seed, s->op, msg, s->seed);
}

#define CHECK_EQ(s, got, want, what) check_eq(s, (uint64_t)(got), (uint64_t)(want), what, __LINE__)
static void check_eq(struct sim *s, uint64_t got, uint64_t want, const char *what, int line)
{
	if (got != want)
		sim_fail(s, "line %d: %s is %lld, expected %lld", line, what, (long long)got, (long long)want);
}
#define CHECK(s, cond) \
	do { \
		if (!(cond)) \
			sim_fail(s, "line %d: %s", __LINE__, #cond); \
	} while (0)

/* ---- model layers and chunks --------------------------------------------------------- */

static struct mchunk *mc(struct sim *s, uint64_t id)
{
	if (id >= s->capch) {
		size_t cap = s->capch ? s->capch : 1024;
		while (cap <= id)
			cap *= 2;
		s->ch = xrealloc(s->ch, cap * sizeof(*s->ch));
		memset(s->ch + s->capch, 0, (cap - s->capch) * sizeof(*s->ch));
		s->capch = cap;
	}
	return &s->ch[id];
}

static uint8_t rep_mask(const struct mchunk *c)
{
	uint8_t m = 0;
	for (uint32_t r = 0; r < c->nrep; r++)
		m |= (uint8_t)(1u << c->ds[r]);
	return m;
}

/* A chunk's last layer entry is gone: the MDS must delete it and queue it on
 * each replica's server. */
static void mc_free(struct sim *s, uint64_t id)
{
	struct mchunk *c = mc(s, id);
	CHECK(s, c->live);
	c->live = false;
	c->queued = rep_mask(c);
	if (s->nfreed == s->capfreed) {
		s->capfreed = s->capfreed ? 2 * s->capfreed : 64;
		s->freed = xrealloc(s->freed, s->capfreed * sizeof(*s->freed));
	}
	s->freed[s->nfreed++] = id;
	s->n.freed++;
}

static struct mlayer *ml_new(struct sim *s, struct mlayer *parent)
{
	struct mlayer *l = calloc(1, sizeof(*l));
	assert_non_null(l);
	l->parent = parent;
	l->refs = 1;
	if (parent)
		parent->refs++;
	if (s->nlayers == s->caplayers) {
		s->caplayers = s->caplayers ? 2 * s->caplayers : 64;
		s->layers = xrealloc(s->layers, s->caplayers * sizeof(*s->layers));
	}
	s->layers[s->nlayers++] = l;
	return l;
}

static uint32_t ml_depth(const struct mlayer *l)
{
	uint32_t d = 0;
	for (; l; l = l->parent)
		d++;
	return d;
}

static bool ml_empty(const struct mlayer *l)
{
	for (int i = 0; i < NIDX; i++)
		if (l->ent[i])
			return false;
	return true;
}

/* The chunk a file on layer l shows at idx (0: none). */
static uint64_t ml_view(const struct mlayer *l, uint64_t idx)
{
	for (; l; l = l->parent)
		if (l->ent[idx])
			return l->ent[idx] == HOLE ? 0 : l->ent[idx];
	return 0;
}

/* Whether the entry l shows at idx is a frozen ancestor's (never changes). */
static bool ml_view_shared(const struct mlayer *l, uint64_t idx)
{
	for (const struct mlayer *k = l; k; k = k->parent)
		if (k->ent[idx])
			return k != l && k->frozen;
	return false;
}

static void ml_unref(struct sim *s, struct mlayer *l)
{
	while (l && --l->refs == 0) {
		struct mlayer *p = l->parent;
		for (int i = 0; i < NIDX; i++)
			if (l->ent[i] && l->ent[i] != HOLE)
				mc_free(s, l->ent[i]);
		for (size_t k = 0; k < s->nlayers; k++)
			if (s->layers[k] == l) {
				s->layers[k] = s->layers[--s->nlayers];
				break;
			}
		free(l);
		l = p;
	}
}

/* CHUNK_DROP of [first, first + count) in layer l: its own chunks go, and a
 * HOLE hides whatever an ancestor has there. */
static void ml_drop(struct sim *s, struct mlayer *l, uint64_t first, uint64_t count)
{
	for (uint64_t i = first; i < NIDX && i - first < count; i++) {
		if (l->ent[i] && l->ent[i] != HOLE)
			mc_free(s, l->ent[i]);
		l->ent[i] = 0;
		for (struct mlayer *a = l->parent; a; a = a->parent)
			if (a->ent[i]) {
				l->ent[i] = HOLE;
				break;
			}
	}
}

/* What freeze() in snapshot.c does to o, decided: the frozen layer showing
 * o's content, and whether o moves to a fresh layer over its own (then
 * -EMLINK when that layer would be too deep). */
static int mfreeze_plan(const struct obj *o, struct mlayer **frozen, bool *fresh)
{
	struct mlayer *l = o->layer;
	*fresh = false;
	*frozen = l;
	if (l->frozen)
		return 0;
	if (l->parent && ml_empty(l)) {
		*frozen = l->parent; /* still empty: its parent already shows the content */
		return 0;
	}
	*fresh = true;
	return ml_depth(l) + 1 > VDIFS_DEPTH_MAX ? -EMLINK : 0;
}

/* The plan done; the caller owns one reference on the frozen layer. */
static void mfreeze_apply(struct sim *s, struct obj *o, struct mlayer *frozen, bool fresh)
{
	if (!fresh) {
		frozen->refs++;
		return;
	}
	frozen->frozen = true;
	o->layer = ml_new(s, frozen); /* o's reference on frozen becomes the caller's */
}

/* A flatten of f ends unfinished: a file left frozen in place is thawed if
 * nothing but f and the flatten uses its layer; the new layer (and the
 * copies in it) and the content go. */
static void mflatten_release(struct sim *s, struct obj *f)
{
	if (!f->fl_on)
		return;
	if (f->layer == f->fl_frozen && f->fl_frozen->refs == 2)
		f->fl_frozen->frozen = false;
	f->fl_on = false;
	ml_unref(s, f->fl_flat);
	ml_unref(s, f->fl_frozen);
}

static uint64_t model_blocks(struct sim *s, const struct obj *o)
{
	uint64_t b = 0;
	for (uint64_t i = 0; i < NIDX; i++) {
		uint64_t c = ml_view(o->layer, i);
		if (c)
			b += layer_alloc_blocks(mc(s, c)->alloc);
	}
	return b;
}

/* ---- model bytes -------------------------------------------------------------------- */

static void mb_put(struct mbuf *m)
{
	if (m && --m->refs == 0)
		free(m);
}

/* o's bytes of chunk idx, made private to o. */
static uint8_t *mb_own(struct obj *o, uint64_t idx)
{
	struct mbuf *m = o->data[idx];
	if (m && m->refs == 1)
		return m->b;
	struct mbuf *n = malloc(sizeof(*n) + CS);
	assert_non_null(n);
	n->refs = 1;
	if (m)
		memcpy(n->b, m->b, CS);
	else
		memset(n->b, 0, CS);
	mb_put(m);
	o->data[idx] = n;
	return n->b;
}

static const uint8_t *m_bytes(struct sim *s, const struct obj *o, uint64_t idx)
{
	return o->data[idx] ? o->data[idx]->b : s->zero;
}

static void m_write(struct obj *o, uint64_t off, const uint8_t *p, uint64_t len)
{
	while (len) {
		uint64_t idx = off / CS, co = off % CS, n = CS - co < len ? CS - co : len;
		memcpy(mb_own(o, idx) + co, p, n);
		off += n;
		p += n;
		len -= n;
	}
}

static void m_zero(struct obj *o, uint64_t off, uint64_t len)
{
	if (off >= FMAX)
		return;
	if (len > FMAX - off)
		len = FMAX - off;
	while (len) {
		uint64_t idx = off / CS, co = off % CS, n = CS - co < len ? CS - co : len;
		if (n == CS) {
			mb_put(o->data[idx]);
			o->data[idx] = NULL;
		} else if (o->data[idx]) {
			memset(mb_own(o, idx) + co, 0, n);
		}
		off += n;
		len -= n;
	}
}

static bool m_is_zero(struct sim *s, const struct obj *o, uint64_t off, uint64_t len)
{
	const uint8_t *p = m_bytes(s, o, off / CS) + off % CS;
	return memcmp(p, s->zero, len) == 0;
}

/* dst's content becomes src's (shared). */
static void m_share(struct obj *dst, const struct obj *src)
{
	for (int i = 0; i < NIDX; i++) {
		struct mbuf *m = src->data[i];
		if (m)
			m->refs++;
		mb_put(dst->data[i]);
		dst->data[i] = m;
	}
	dst->size = src->size;
}

/* ---- objects ------------------------------------------------------------------------- */

static struct obj *obj_new(struct sim *s)
{
	for (int i = 0; i < MAX_OBJS; i++)
		if (!s->o[i].live) {
			struct obj *o = &s->o[i];
			memset(o, 0, sizeof(*o));
			o->live = true;
			return o;
		}
	fail_msg("no free object slot");
	return NULL;
}

/* An object is gone (its layer reference already dropped by the caller). */
static void obj_free(struct sim *s, struct obj *o)
{
	for (int i = 0; i < NIDX; i++)
		mb_put(o->data[i]);
	if (!o->snap)
		for (int i = 0; i < MAX_OBJS; i++)
			if (s->o[i].live && s->o[i].snap && s->o[i].origin == o)
				s->o[i].origin = NULL;
	memset(o, 0, sizeof(*o));
}

static unsigned count_objs(struct sim *s, bool snap)
{
	unsigned n = 0;
	for (int i = 0; i < MAX_OBJS; i++)
		n += s->o[i].live && s->o[i].snap == snap;
	return n;
}

/* A random live object (a file or a snapshot as asked), NULL if none. */
static struct obj *pick(struct sim *s, bool snap)
{
	unsigned n = count_objs(s, snap);
	if (n == 0)
		return NULL;
	unsigned k = (unsigned)rn(s, n);
	for (int i = 0; i < MAX_OBJS; i++)
		if (s->o[i].live && s->o[i].snap == snap && k-- == 0)
			return &s->o[i];
	return NULL;
}

static struct obj *find_file(struct sim *s, const char *name)
{
	for (int i = 0; i < MAX_OBJS; i++)
		if (s->o[i].live && !s->o[i].snap && strcmp(s->o[i].name, name) == 0)
			return &s->o[i];
	return NULL;
}

/* A snapshot of f called sname, or one whose .snap entry is entry. */
static struct obj *find_snap(struct sim *s, const struct obj *f, const char *sname, const char *entry)
{
	for (int i = 0; i < MAX_OBJS; i++) {
		struct obj *o = &s->o[i];
		if (!o->live || !o->snap)
			continue;
		if ((f && o->origin == f && strcmp(o->sname, sname) == 0) || (entry && strcmp(o->name, entry) == 0))
			return o;
	}
	return NULL;
}

/* A random snapshot of f, NULL if it has none. */
static struct obj *pick_snap_of(struct sim *s, const struct obj *f)
{
	unsigned n = 0;
	for (int i = 0; i < MAX_OBJS; i++)
		n += s->o[i].live && s->o[i].snap && s->o[i].origin == f;
	if (n == 0)
		return NULL;
	unsigned k = (unsigned)rn(s, n);
	for (int i = 0; i < MAX_OBJS; i++)
		if (s->o[i].live && s->o[i].snap && s->o[i].origin == f && k-- == 0)
			return &s->o[i];
	return NULL;
}

/* A file name no live file has, from a small pool so that names come back. */
static void free_name(struct sim *s, char *out, size_t cap)
{
	for (;;) {
		snprintf(out, cap, "f%u", (unsigned)rn(s, 2 * MAX_FILES));
		if (!find_file(s, out))
			return;
	}
}

/* ---- wire ---------------------------------------------------------------------------- */

static int ds_index(struct sim *s, uint32_t id)
{
	for (int k = 0; k < NDS; k++)
		if (s->dsid[k] == id)
			return k;
	sim_fail(s, "replica on unknown data server %u", id);
	return -1;
}

static void loc_decode(struct sim *s, const struct msg_chunk_loc *m, struct cloc *out)
{
	struct wreader r;
	memset(out, 0, sizeof(*out));
	CHECK_EQ(s, m->flags & ~(uint32_t)VDIFS_CHUNK_SHARED, 0, "chunk_loc flags");
	out->shared = (m->flags & VDIFS_CHUNK_SHARED) != 0;
	CHECK(s, m->nrep >= 1 && m->nrep <= VDIFS_MAX_REPLICAS);
	CHECK(s, m->nbase <= CHUNKSTORE_CHAIN_MAX);
	out->index = m->index;
	out->id = m->chunk_id;
	out->version = m->version;
	out->extent = m->extent;
	out->nrep = m->nrep;
	out->nbase = m->nbase;
	wreader_init(&r, m->replicas.p, m->replicas.len);
	for (uint32_t i = 0; i < m->nrep; i++) {
		struct msg_replica rep;
		msg_replica_get(&r, &rep);
		CHECK(s, !r.err && rep.port != 0);
		out->ds[i] = ds_index(s, rep.ds_id);
	}
	CHECK_EQ(s, wreader_finish(&r), 0, "replica records");
	wreader_init(&r, m->bases.p, m->bases.len);
	for (uint32_t i = 0; i < m->nbase; i++) {
		struct msg_base_ref b;
		msg_base_ref_get(&r, &b);
		CHECK(s, !r.err);
		out->chain[i] = (struct chunkstore_base){b.chunk_id, b.version};
	}
	CHECK_EQ(s, wreader_finish(&r), 0, "base records");
}

/* A chunk_loc against the model's chunk: identity, extent, replicas, chain. */
static void loc_check(struct sim *s, const struct cloc *l)
{
	CHECK(s, l->id > 0 && l->id <= s->max_chunk);
	const struct mchunk *c = mc(s, l->id);
	if (!c->live)
		sim_fail(s, "chunk %llu at index %llu: freed in the model", (unsigned long long)l->id,
			 (unsigned long long)l->index);
	CHECK_EQ(s, l->version, 1, "chunk version");
	CHECK_EQ(s, l->extent, c->base ? c->extent : 0, "chunk_loc extent");
	CHECK_EQ(s, l->nrep, c->nrep, "replica count");
	for (uint32_t r = 0; r < l->nrep; r++)
		CHECK_EQ(s, l->ds[r], c->ds[r], "replica");
	uint32_t k = 0;
	for (uint64_t b = c->base; b; b = mc(s, b)->base, k++) {
		CHECK(s, k < l->nbase);
		CHECK_EQ(s, l->chain[k].id, b, "base chunk");
		CHECK_EQ(s, l->chain[k].version, 1, "base version");
		CHECK(s, mc(s, b)->live);
	}
	CHECK_EQ(s, l->nbase, k, "chain length");
}

/* LAYOUT of o (and a little past its last index), each record checked
 * against the model; out[idx].id is 0 where o shows no chunk. */
static void sim_layout(struct sim *s, struct obj *o, struct cloc out[NIDX])
{
	struct msg_layout_req q = {.vol = s->vol, .ino = o->ino, .first = 0, .max = NIDX + 64};
	struct wbuf items;
	struct wreader r;
	uint32_t count;
	wbuf_init(&items);
	CHECK_EQ(s, layer_layout(s->t->m, &q, &items, &count), 0, "LAYOUT");
	memset(out, 0, NIDX * sizeof(*out));
	wreader_init(&r, items.data, items.len);
	for (uint32_t i = 0; i < count; i++) {
		struct msg_chunk_loc m;
		msg_chunk_loc_get(&r, &m);
		CHECK(s, !r.err);
		if (m.index >= NIDX)
			sim_fail(s, "%s: chunk %llu at index %llu", o->name, (unsigned long long)m.chunk_id,
				 (unsigned long long)m.index);
		CHECK(s, out[m.index].id == 0);
		loc_decode(s, &m, &out[m.index]);
	}
	CHECK_EQ(s, wreader_finish(&r), 0, "LAYOUT records");
	wbuf_free(&items);
	for (uint64_t i = 0; i < NIDX; i++) {
		uint64_t want = ml_view(o->layer, i);
		if (out[i].id != want)
			sim_fail(s, "%s (ino %llu): LAYOUT shows chunk %llu at index %llu, model %llu", o->name,
				 (unsigned long long)o->ino, (unsigned long long)out[i].id, (unsigned long long)i,
				 (unsigned long long)want);
		if (want)
			loc_check(s, &out[i]);
		if (want && out[i].shared != ml_view_shared(o->layer, i))
			sim_fail(s, "%s: LAYOUT says chunk %llu at index %llu is %sshared", o->name,
				 (unsigned long long)out[i].id, (unsigned long long)i, out[i].shared ? "" : "not ");
	}
}

/* Learns the MDS id of a layer the running operation made. */
static void learn_layer(struct sim *s, struct mlayer *l, uint64_t id)
{
	if (l->id) {
		CHECK_EQ(s, id, l->id, "layer id");
		return;
	}
	CHECK(s, id > s->layer_floor);
	for (size_t k = 0; k < s->nlayers; k++)
		CHECK(s, s->layers[k]->id != id);
	l->id = id;
	if (id > s->max_layer)
		s->max_layer = id;
}

static void check_attr_of(struct sim *s, const struct obj *o, const struct vdifs_attr *a)
{
	CHECK_EQ(s, a->ino, o->ino, "ino");
	CHECK(s, S_ISREG(a->mode));
	CHECK_EQ(s, a->nlink, 1, "nlink");
	CHECK_EQ(s, a->size, o->size, "size");
	CHECK_EQ(s, a->blocks, model_blocks(s, o), "blocks");
	learn_layer(s, o->layer, a->layer);
}

static void check_attr(struct sim *s, struct obj *o)
{
	struct vdifs_attr a;
	CHECK_EQ(s, namespace_getattr(s->t->m, s->vol, o->ino, &a), 0, "GETATTR");
	check_attr_of(s, o, &a);
}

/* ---- the data plane: what a data server does for each request ------------------------- */

static struct chunkstore_geom geom(const struct cloc *l)
{
	return (struct chunkstore_geom){.chunk_size = CS, .extent = l->extent, .nbase = l->nbase, .base = l->chain};
}

/* DS_WRITE (or DS_PUNCH) on the primary and its forwards: the same on every
 * replica, which must report the same space; *a gets it. */
static void ds_io(struct sim *s, const struct cloc *l, uint32_t off, const uint8_t *p, uint32_t len,
		  struct chunkstore_alloc *a)
{
	for (uint32_t r = 0; r < l->nrep; r++) {
		struct chunkstore_geom g = geom(l);
		struct chunkstore_alloc x;
		int rc = p ? chunkstore_write(s->cs[l->ds[r]], l->id, l->version, &g, off, p, len, &x)
			   : chunkstore_punch(s->cs[l->ds[r]], l->id, l->version, &g, off, len, &x);
		if (rc != 0)
			sim_fail(s, "%s of chunk %llu [%u, +%u) on ds %d: %d", p ? "DS_WRITE" : "DS_PUNCH",
				 (unsigned long long)l->id, off, len, l->ds[r], rc);
		if (r == 0)
			*a = x;
		CHECK_EQ(s, x.bytes, a->bytes, "alloc of a replica");
		CHECK_EQ(s, x.own, a->own, "own of a replica");
	}
	mc(s, l->id)->written = true;
}

/* DS_READ from replica r; a chunk that no replica holds (made by CHUNK_ALLOC,
 * never written) reads as zeros, as the client makes it. */
static void ds_read(struct sim *s, const struct cloc *l, uint32_t r, uint32_t off, uint8_t *buf, uint32_t len)
{
	int rc = chunkstore_read(s->cs[l->ds[r]], l->id, l->version, l->chain, l->nbase, off, buf, len);
	if (rc == -ENOENT && l->nbase == 0 && !mc(s, l->id)->written) {
		memset(buf, 0, len);
		return;
	}
	if (rc != 0)
		sim_fail(s, "DS_READ of chunk %llu [%u, +%u) on ds %d: %d", (unsigned long long)l->id, off, len,
			 l->ds[r], rc);
}

/* Reads [off, off + len) of o through locs from replica rep (any: a random
 * one; -1: each) and compares with the model. */
static void read_cmp(struct sim *s, const struct obj *o, const struct cloc *locs, uint64_t off, uint64_t len,
		     int rep)
{
	if (off >= FMAX)
		return;
	if (len > FMAX - off)
		len = FMAX - off;
	while (len) {
		uint64_t idx = off / CS, co = off % CS, n = CS - co < len ? CS - co : len;
		const uint8_t *want = m_bytes(s, o, idx) + co;
		const struct cloc *l = &locs[idx];
		for (uint32_t r = 0; r < (l->id ? l->nrep : 1); r++) {
			const uint8_t *got = s->zero;
			if (l->id && rep >= 0 && r != (uint32_t)rep % l->nrep)
				continue;
			if (l->id) {
				ds_read(s, l, r, (uint32_t)co, s->rbuf, (uint32_t)n);
				got = s->rbuf;
			}
			if (memcmp(got, want, n) != 0) {
				size_t i = 0;
				while (got[i] == want[i])
					i++;
				sim_fail(s, "%s %s (ino %llu, size %llu): byte %llu reads 0x%02x (chunk %llu, ds %d), model 0x%02x",
					 o->snap ? "snapshot" : "file", o->name, (unsigned long long)o->ino,
					 (unsigned long long)o->size, (unsigned long long)(off + i), got[i],
					 (unsigned long long)l->id, l->id ? l->ds[r] : -1, want[i]);
			}
		}
		off += n;
		len -= n;
	}
}

/* After an operation on o over [off, off + len): its layout, attributes,
 * that range with a margin, and a few random windows. */
static void spot_check(struct sim *s, struct obj *o, uint64_t off, uint64_t len)
{
	struct cloc locs[NIDX];
	sim_layout(s, o, locs);
	check_attr(s, o);
	int rep = (int)rn(s, REPLICAS);
	if (len) {
		uint64_t lo = off > 8 * KiB ? off - 8 * KiB : 0;
		read_cmp(s, o, locs, lo, off - lo + len + 8 * KiB, rep);
	}
	for (int k = 0; k < 3; k++)
		read_cmp(s, o, locs, rn(s, FMAX), 1 + rn(s, 64 * KiB), rep);
}

/* ---- the store, record by record ---------------------------------------------------- */

static struct mlayer *find_layer(struct sim *s, uint64_t id)
{
	for (size_t k = 0; k < s->nlayers; k++)
		if (s->layers[k]->id == id)
			return s->layers[k];
	return NULL;
}

static void scan_close(struct sim *s)
{
	mdstore_iter_close(s->it);
	s->it = NULL;
}

/* Every L, C, K, G, P and Q record against the model. */
static void audit_store(struct sim *s)
{
	struct mdstore *st = s->t->m->store;
	struct mdstore_key prefix;
	const uint8_t *key, *val;
	size_t kl, vl, n;
	int rc;

	/* Inodes of files and snapshots: the model learnt every layer id. */
	for (size_t k = 0; k < s->nlayers; k++)
		CHECK(s, s->layers[k]->id != 0);

	mdstore_key_tag(&prefix, 'L');
	assert_int_equal(mdstore_iter_open(st, &prefix, NULL, &s->it), 0);
	for (n = 0; (rc = mdstore_iter_next(s->it, &key, &kl, &val, &vl)) > 0; n++) {
		struct md_layer l;
		CHECK_EQ(s, kl, 9, "L key length");
		CHECK_EQ(s, mdstore_decode_layer(val, vl, &l), 0, "L record");
		uint64_t id = mdstore_be64(key + 1);
		struct mlayer *m = find_layer(s, id);
		if (!m)
			sim_fail(s, "layer %llu (refcount %u, parent %llu) is not in the model", (unsigned long long)id,
				 l.refcount, (unsigned long long)l.parent);
		CHECK_EQ(s, l.parent, m->parent ? m->parent->id : 0, "layer parent");
		CHECK_EQ(s, (l.flags & MD_LAYER_FROZEN) != 0, m->frozen, "layer frozen");
		if (l.refcount != m->refs)
			sim_fail(s, "layer %llu: refcount %u, model %u", (unsigned long long)id, l.refcount, m->refs);
		CHECK_EQ(s, l.vol, s->vol, "layer volume");
	}
	scan_close(s);
	CHECK_EQ(s, rc, 0, "L scan");
	CHECK_EQ(s, n, s->nlayers, "layers");

	size_t ents = 0;
	for (size_t k = 0; k < s->nlayers; k++)
		for (int i = 0; i < NIDX; i++)
			ents += s->layers[k]->ent[i] != 0;
	mdstore_key_tag(&prefix, 'C');
	assert_int_equal(mdstore_iter_open(st, &prefix, NULL, &s->it), 0);
	for (n = 0; (rc = mdstore_iter_next(s->it, &key, &kl, &val, &vl)) > 0; n++) {
		uint64_t chunk;
		CHECK_EQ(s, kl, 17, "C key length");
		CHECK_EQ(s, mdstore_decode_chunkent(val, vl, &chunk), 0, "C record");
		uint64_t id = mdstore_be64(key + 1), idx = mdstore_be64(key + 9);
		struct mlayer *m = find_layer(s, id);
		if (!m || idx >= NIDX || m->ent[idx] != (chunk ? chunk : HOLE))
			sim_fail(s, "layer %llu index %llu -> chunk %llu: model %llu", (unsigned long long)id,
				 (unsigned long long)idx, (unsigned long long)chunk,
				 m && idx < NIDX ? (unsigned long long)m->ent[idx] : 0ull);
	}
	scan_close(s);
	CHECK_EQ(s, rc, 0, "C scan");
	CHECK_EQ(s, n, ents, "chunk-table entries");

	size_t live = 0;
	for (uint64_t id = 1; id <= s->max_chunk; id++)
		live += mc(s, id)->live;
	mdstore_key_tag(&prefix, 'K');
	assert_int_equal(mdstore_iter_open(st, &prefix, NULL, &s->it), 0);
	for (n = 0; (rc = mdstore_iter_next(s->it, &key, &kl, &val, &vl)) > 0; n++) {
		struct md_chunk c;
		CHECK_EQ(s, kl, 9, "K key length");
		CHECK_EQ(s, mdstore_decode_chunk(val, vl, &c), 0, "K record");
		uint64_t id = mdstore_be64(key + 1);
		CHECK(s, id <= s->max_chunk);
		const struct mchunk *m = mc(s, id);
		if (!m->live)
			sim_fail(s, "chunk %llu has a record but is freed in the model", (unsigned long long)id);
		CHECK_EQ(s, c.refcount, 1, "chunk refcount");
		CHECK_EQ(s, c.base, m->base, "chunk base");
		CHECK_EQ(s, c.chunk_size, CS, "chunk size");
		CHECK_EQ(s, c.version, 1, "chunk version");
		CHECK_EQ(s, c.vol, s->vol, "chunk volume");
		if (m->base)
			CHECK_EQ(s, c.extent, m->extent, "chunk extent");
		CHECK_EQ(s, c.alloc, m->alloc, "chunk alloc");
		CHECK_EQ(s, c.own, m->own, "chunk own");
		CHECK_EQ(s, c.nrep, m->nrep, "chunk replicas");
		for (uint32_t r = 0; r < c.nrep; r++)
			CHECK_EQ(s, c.ds[r], s->dsid[m->ds[r]], "chunk replica");
	}
	scan_close(s);
	CHECK_EQ(s, rc, 0, "K scan");
	CHECK_EQ(s, n, live, "chunk records");
	uint64_t counted;
	CHECK_EQ(s, layer_count_chunks(s->t->m, &counted), 0, "chunk counter");
	CHECK_EQ(s, counted, live, "chunk counter");

	size_t queued = 0;
	for (uint64_t id = 1; id <= s->max_chunk; id++)
		queued += (size_t)__builtin_popcount((unsigned)(mc(s, id)->queued & ~mc(s, id)->acked));
	mdstore_key_tag(&prefix, 'G');
	assert_int_equal(mdstore_iter_open(st, &prefix, NULL, &s->it), 0);
	for (n = 0; (rc = mdstore_iter_next(s->it, &key, &kl, &val, &vl)) > 0; n++) {
		CHECK_EQ(s, kl, 13, "G key length");
		int k = ds_index(s, mdstore_be32(key + 1));
		uint64_t id = mdstore_be64(key + 5);
		CHECK(s, id <= s->max_chunk);
		const struct mchunk *m = mc(s, id);
		if (!(m->queued & ~m->acked & (1u << k)))
			sim_fail(s, "chunk %llu queued for deletion on ds %d: model says no", (unsigned long long)id, k);
	}
	scan_close(s);
	CHECK_EQ(s, rc, 0, "G scan");
	CHECK_EQ(s, n, queued, "deletion queue entries");

	size_t jobs = 0;
	for (int i = 0; i < MAX_OBJS; i++)
		jobs += s->o[i].live && s->o[i].fl_on;
	mdstore_key_tag(&prefix, 'P');
	assert_int_equal(mdstore_iter_open(st, &prefix, NULL, &s->it), 0);
	for (n = 0; (rc = mdstore_iter_next(s->it, &key, &kl, &val, &vl)) > 0; n++) {
		CHECK_EQ(s, kl, 13, "P key length");
		CHECK_EQ(s, vl, 32, "P record length");
		uint64_t ino = mdstore_be64(key + 5);
		const struct obj *f = NULL;
		for (int i = 0; i < MAX_OBJS; i++)
			if (s->o[i].live && s->o[i].fl_on && s->o[i].ino == ino)
				f = &s->o[i];
		if (!f)
			sim_fail(s, "a flatten of inode %llu is recorded, none in the model", (unsigned long long)ino);
		CHECK_EQ(s, le_get64(val), f->fl_flat->id, "flatten: new layer");
		CHECK_EQ(s, le_get64(val + 8), f->fl_frozen->id, "flatten: content");
		CHECK_EQ(s, le_get64(val + 16), f->fl_layer, "flatten: file layer");
		CHECK_EQ(s, le_get64(val + 24), f->fl_size, "flatten: size");
	}
	scan_close(s);
	CHECK_EQ(s, rc, 0, "P scan");
	CHECK_EQ(s, n, jobs, "flattens in progress");

	mdstore_key_tag(&prefix, 'Q');
	assert_int_equal(mdstore_iter_open(st, &prefix, NULL, &s->it), 0);
	for (n = 0; (rc = mdstore_iter_next(s->it, &key, &kl, &val, &vl)) > 0; n++) {
		CHECK_EQ(s, kl, 21, "Q key length");
		uint64_t origin = mdstore_be64(key + 5), ino = mdstore_be64(key + 13);
		bool found = false;
		for (int i = 0; i < MAX_OBJS; i++)
			found = found || (s->o[i].live && s->o[i].snap && s->o[i].ino == ino &&
					  s->o[i].origin_ino == origin);
		if (!found)
			sim_fail(s, "snapshot index: origin %llu snapshot %llu is not in the model",
				 (unsigned long long)origin, (unsigned long long)ino);
	}
	scan_close(s);
	CHECK_EQ(s, rc, 0, "Q scan");
	CHECK_EQ(s, n, count_objs(s, true), "snapshot index entries");
}

/* Every live chunk a server holds reports the space the MDS records for it
 * (when its whole chain is held: a delta over a chunk that was never
 * written counts only what the headers it can read describe). */
static void audit_space(struct sim *s)
{
	for (uint64_t id = 1; id <= s->max_chunk; id++) {
		const struct mchunk *c = mc(s, id);
		if (!c->live || !c->written || c->copying)
			continue;
		bool whole = true;
		for (uint64_t b = c->base; b; b = mc(s, b)->base)
			whole = whole && mc(s, b)->written;
		for (uint32_t r = 0; r < c->nrep; r++) {
			struct chunkstore_stat st;
			CHECK_EQ(s, chunkstore_stat(s->cs[c->ds[r]], id, &st), 0, "chunkstore_stat");
			CHECK_EQ(s, st.version, 1, "stored version");
			CHECK_EQ(s, st.chunk_size, CS, "stored chunk size");
			CHECK_EQ(s, st.extent, c->base ? c->extent : 0, "stored extent");
			CHECK_EQ(s, st.base.id, c->base, "stored base");
			if (whole && (st.alloc != c->alloc || st.own != c->own))
				sim_fail(s, "chunk %llu (base %llu, extent %u) on ds %d: alloc %llu own %llu, the MDS has %llu and %llu",
					 (unsigned long long)id, (unsigned long long)c->base, c->extent, c->ds[r],
					 (unsigned long long)st.alloc, (unsigned long long)st.own,
					 (unsigned long long)c->alloc, (unsigned long long)c->own);
		}
	}
}

/* Every byte of every file and snapshot on every replica, and the store. */
static void full_check(struct sim *s)
{
	for (int i = 0; i < MAX_OBJS; i++) {
		struct obj *o = &s->o[i];
		if (!o->live)
			continue;
		struct cloc locs[NIDX];
		sim_layout(s, o, locs);
		check_attr(s, o);
		read_cmp(s, o, locs, 0, FMAX, -1);
	}
	audit_store(s);
	audit_space(s);
}

/* ---- heartbeats and deletion -------------------------------------------------------- */

/* A heartbeat from store k's server, as mdslink.c sends it: it reports what
 * it deleted since the last one, then deletes what the reply lists. */
static void ds_heartbeat(struct sim *s, int k)
{
	struct wbuf del, ids;
	uint32_t count;
	wbuf_init(&del);
	wbuf_init(&ids);
	for (size_t i = 0; i < s->nacks[k]; i++) {
		wbuf_put_u64(&del, s->acks[k][i]);
		mc(s, s->acks[k][i])->acked |= (uint8_t)(1u << k);
	}
	struct msg_ds_heartbeat_req q = {.ds_id = s->dsid[k], .total = 1ull << 41, .avail = 1ull << 40,
					 .count = (uint32_t)s->nacks[k], .deleted = {del.data, (uint32_t)del.len}};
	s->nacks[k] = 0;
	int rc = dsreg_heartbeat(s->t->m->dsreg, &q, &ids, &count);
	if (rc == -ENOENT) { /* marked down: it registers and reports again */
		tmds_rejoin(s->t, s->dsid[k]);
		rc = dsreg_heartbeat(s->t->m->dsreg, &q, &ids, &count);
	}
	CHECK_EQ(s, rc, 0, "DS_HEARTBEAT");
	s->up[k] = true;
	for (uint32_t i = 0; i < count; i++) {
		uint64_t id = le_get64(ids.data + 8 * (size_t)i);
		CHECK(s, id > 0 && id <= s->max_chunk);
		struct mchunk *c = mc(s, id);
		if (c->live || !(c->queued & (1u << k)) || (c->collected & (1u << k)))
			sim_fail(s, "heartbeat of ds %d: delete chunk %llu (live %d, queued %#x, deleted %#x)", k,
				 (unsigned long long)id, c->live, c->queued, c->collected);
		CHECK_EQ(s, chunkstore_delete(s->cs[k], id), c->written ? 0 : -ENOENT, "chunkstore_delete");
		c->collected |= (uint8_t)(1u << k);
		s->n.collected++;
		if (s->nacks[k] == s->capacks[k]) {
			s->capacks[k] = s->capacks[k] ? 2 * s->capacks[k] : 256;
			s->acks[k] = xrealloc(s->acks[k], s->capacks[k] * sizeof(**s->acks));
		}
		s->acks[k][s->nacks[k]++] = id;
	}
	wbuf_free(&del);
	wbuf_free(&ids);
}

static unsigned count_up(const struct sim *s)
{
	unsigned n = 0;
	for (int k = 0; k < NDS; k++)
		n += s->up[k];
	return n;
}

/* ---- operations, as the client does them --------------------------------------------- */

/* CHUNK_ALLOC of index idx of o, checked against the model and recorded in
 * it.  0 and *out, or the error the model expects. */
static int sim_alloc(struct sim *s, struct obj *o, uint64_t idx, struct cloc *out)
{
	struct mlayer *l = o->layer;
	uint64_t own = l->ent[idx], base = 0;
	uint32_t base_up = 0;
	int want = 0;
	if (l->frozen)
		want = -EROFS;
	else if (own == 0)
		base = ml_view(l->parent, idx); /* a HOLE of its own inherits nothing */
	if (base) {
		const struct mchunk *b = mc(s, base);
		for (uint32_t r = 0; r < b->nrep; r++)
			base_up += s->up[b->ds[r]];
		if (base_up == 0)
			want = -ENOSPC; /* deltas live only where their base does */
	}
	struct msg_chunk_alloc_req q = {.vol = s->vol, .ino = o->ino, .index = idx};
	struct msg_chunk_loc m;
	struct wbuf b;
	wbuf_init(&b);
	int rc = layer_chunk_alloc(s->t->m, &q, false, &b);
	if (rc != want)
		sim_fail(s, "CHUNK_ALLOC of %s index %llu: %d, model %d", o->name, (unsigned long long)idx, rc, want);
	if (rc != 0) {
		s->n.enospc += rc == -ENOSPC;
		wbuf_free(&b);
		return rc;
	}
	CHECK_EQ(s, msg_chunk_loc_decode(b.data, b.len, &m), 0, "CHUNK_ALLOC reply");
	CHECK_EQ(s, m.flags, 0, "CHUNK_ALLOC flags"); /* a chunk of the file's own layer */
	loc_decode(s, &m, out);
	wbuf_free(&b);
	CHECK_EQ(s, out->index, idx, "CHUNK_ALLOC index");
	if (own && own != HOLE) {
		CHECK_EQ(s, out->id, own, "CHUNK_ALLOC of a chunk the layer has");
		loc_check(s, out);
		s->n.reused++;
		return 0;
	}
	CHECK(s, out->id > s->max_chunk);
	s->max_chunk = out->id;
	struct mchunk *c = mc(s, out->id);
	memset(c, 0, sizeof(*c));
	c->made = c->live = true;
	c->base = base;
	c->nrep = out->nrep;
	memcpy(c->ds, out->ds, sizeof(c->ds));
	uint8_t seen = 0;
	for (uint32_t r = 0; r < out->nrep; r++) {
		CHECK(s, s->up[out->ds[r]]);
		CHECK(s, !(seen & (1u << out->ds[r])));
		seen |= (uint8_t)(1u << out->ds[r]);
	}
	if (base) {
		/* Placed on up servers holding its base, as many as it can. */
		const struct mchunk *bc = mc(s, base);
		uint32_t want_n = REPLICAS < bc->nrep ? REPLICAS : bc->nrep;
		if (base_up < want_n)
			want_n = base_up;
		CHECK_EQ(s, out->nrep, want_n, "replicas of a delta");
		CHECK_EQ(s, seen & ~rep_mask(bc), 0, "delta replicas outside its base's servers");
		c->extent = s->extent;
		c->alloc = bc->alloc; /* the same content as its base until written */
		s->n.deltas++;
		s->n.chain2 += bc->base != 0;
	} else {
		unsigned up = count_up(s);
		CHECK_EQ(s, out->nrep, REPLICAS < up ? REPLICAS : up, "replicas of a chunk");
		s->n.plain++;
	}
	l->ent[idx] = out->id;
	loc_check(s, out);
	return 0;
}

/* COMMIT of the space reports (and size, mtime) as client_inode_commit()
 * sends them; checks the attributes it returns. */
static void sim_commit(struct sim *s, struct obj *o, const struct pend *p, int n, uint32_t flags, uint64_t size)
{
	struct wbuf items;
	struct vdifs_attr a;
	if (n == 0 && flags == 0)
		return; /* nothing dirty: the client sends nothing */
	wbuf_init(&items);
	for (int i = 0; i < n; i++)
		msg_alloc_put(&items, &(struct msg_alloc){p[i].index, p[i].id, p[i].a.bytes, p[i].a.own});
	struct msg_commit_req q = {.vol = s->vol, .ino = o->ino, .flags = flags, .size = size,
				   .mtime_s = 1000000 + s->op, .count = (uint32_t)n,
				   .items = {items.data, (uint32_t)items.len}};
	CHECK_EQ(s, layer_commit(s->t->m, &q, &a), 0, "COMMIT");
	wbuf_free(&items);
	for (int i = 0; i < n; i++) {
		struct mchunk *c = mc(s, p[i].id);
		if (o->layer->ent[p[i].index] != p[i].id)
			continue; /* no longer the file's own: ignored */
		c->alloc = p[i].a.bytes < CS ? p[i].a.bytes : CS;
		c->own = p[i].a.own < c->alloc ? p[i].a.own : c->alloc;
	}
	if ((flags & VDIFS_COMMIT_SIZE) && size > o->size)
		o->size = size;
	check_attr_of(s, o, &a);
	if (flags & VDIFS_COMMIT_MTIME)
		CHECK_EQ(s, a.mtime_s, 1000000 + s->op, "mtime");
}

static void pend_note(struct pend *p, int *n, const struct cloc *l, const struct chunkstore_alloc *a)
{
	for (int i = 0; i < *n; i++)
		if (p[i].index == l->index) {
			p[i].a = *a; /* the latest report of that chunk */
			return;
		}
	p[(*n)++] = (struct pend){l->index, l->id, *a};
}

/* pwrite as vdifs_file_pwrite() does it: a writable chunk for every index
 * first (CHUNK_ALLOC), then a DS_WRITE per piece, then the COMMIT that
 * fsync or close sends.  0, or the error of a CHUNK_ALLOC (nothing
 * written then). */
static int sim_write(struct sim *s, struct obj *o, uint64_t off, const uint8_t *p, uint64_t len)
{
	struct vdifs_span sp[16];
	struct cloc loc[NIDX];
	struct pend pd[NIDX];
	bool have[NIDX] = {false};
	int np = 0;
	size_t n = vdifs_span_split(off, len, CS, VDIFS_IO_UNIT, sp, 16);
	CHECK(s, n <= 16);
	for (size_t i = 0; i < n; i++) {
		uint64_t idx = sp[i].index;
		if (have[idx])
			continue;
		int rc = sim_alloc(s, o, idx, &loc[idx]);
		if (rc != 0)
			return rc;
		have[idx] = true;
	}
	for (size_t i = 0; i < n; i++) {
		struct chunkstore_alloc a;
		ds_io(s, &loc[sp[i].index], sp[i].off, p + sp[i].pos, sp[i].len, &a);
		pend_note(pd, &np, &loc[sp[i].index], &a);
	}
	m_write(o, off, p, len);
	sim_commit(s, o, pd, np, VDIFS_COMMIT_SIZE | VDIFS_COMMIT_MTIME, off + len);
	return 0;
}

/* client_punch_partial(): DS_PUNCH of a piece of one chunk, on a chunk of
 * the file's own layer, when the layout shows one there. */
static int sim_punch_partial(struct sim *s, struct obj *o, const struct cloc *view, const struct vdifs_span *sp,
			     struct pend *pd, int *np)
{
	uint64_t off = sp->index * CS + sp->off;
	if (!view[sp->index].id) {
		/* Nothing shown there: the model must read zeros too. */
		CHECK(s, m_is_zero(s, o, off, sp->len));
		return 0;
	}
	struct cloc l;
	int rc = sim_alloc(s, o, sp->index, &l);
	if (rc != 0)
		return rc;
	struct chunkstore_alloc a;
	ds_io(s, &l, sp->off, NULL, sp->len, &a);
	pend_note(pd, np, &l, &a);
	m_zero(o, off, sp->len);
	return 0;
}

static int sim_drop(struct sim *s, struct obj *o, uint64_t first, uint64_t count)
{
	struct msg_chunk_drop_req q = {.vol = s->vol, .ino = o->ino, .first = first, .count = count};
	int want = o->layer->frozen ? -EROFS : 0;
	int rc = layer_chunk_drop(s->t->m, &q);
	CHECK_EQ(s, rc, want, "CHUNK_DROP");
	if (rc != 0)
		return rc;
	ml_drop(s, o->layer, first, count);
	m_zero(o, first * CS, count * CS);
	return 0;
}

/* fallocate(PUNCH_HOLE | KEEP_SIZE) as vdifs_file_punch() does it: whole
 * chunks by CHUNK_DROP (runs of them), pieces by DS_PUNCH; then COMMIT. */
static int sim_punch(struct sim *s, struct obj *o, uint64_t off, uint64_t len)
{
	struct vdifs_span sp[16];
	struct cloc view[NIDX];
	struct pend pd[NIDX];
	uint64_t run_first = 0, run_count = 0;
	int np = 0, rc = 0;
	sim_layout(s, o, view); /* the client's cached layout */
	size_t n = vdifs_span_split(off, len, CS, 0, sp, 16);
	CHECK(s, n <= 16);
	for (size_t i = 0; i < n && rc == 0; i++) {
		if (sp[i].len == CS) {
			if (run_count > 0 && run_first + run_count == sp[i].index) {
				run_count++;
			} else {
				if (run_count > 0)
					rc = sim_drop(s, o, run_first, run_count);
				run_first = sp[i].index;
				run_count = 1;
			}
			continue;
		}
		rc = sim_punch_partial(s, o, view, &sp[i], pd, &np);
	}
	if (rc == 0 && run_count > 0)
		rc = sim_drop(s, o, run_first, run_count);
	sim_commit(s, o, pd, np, rc == 0 ? VDIFS_COMMIT_MTIME : 0, 0);
	return rc;
}

/* truncate as client_inode_setattr() does it: zero the tail of the new last
 * chunk (DS_PUNCH, COMMIT), then SETATTR, which drops the chunks past it. */
static int sim_truncate(struct sim *s, struct obj *o, uint64_t size)
{
	struct vdifs_attr a;
	if (size < o->size && size % CS != 0) {
		struct cloc view[NIDX];
		struct pend pd[1];
		int np = 0;
		struct vdifs_span tail = {.index = size / CS, .off = (uint32_t)(size % CS),
					  .len = (uint32_t)(CS - size % CS)};
		sim_layout(s, o, view);
		int rc = sim_punch_partial(s, o, view, &tail, pd, &np);
		if (rc != 0)
			return rc;
		sim_commit(s, o, pd, np, 0, 0);
	}
	struct msg_setattr_req q = {.vol = s->vol, .ino = o->ino, .valid = VDIFS_SET_SIZE, .size = size};
	int want = o->layer->frozen ? -EROFS : 0;
	int rc = namespace_setattr(s->t->m, &q, &a);
	CHECK_EQ(s, rc, want, "SETATTR size");
	if (rc != 0)
		return rc;
	uint64_t keep = size / CS + (size % CS != 0);
	ml_drop(s, o->layer, keep, UINT64_MAX);
	if (size < o->size)
		m_zero(o, size, FMAX - size);
	o->size = size;
	check_attr_of(s, o, &a);
	return 0;
}

/* ---- random operations ---------------------------------------------------------------- */

/* A byte range inside the largest file: tiny, page-aligned, unaligned,
 * large, across chunk boundaries, whole chunks. */
static void rnd_range(struct sim *s, uint64_t *off, uint64_t *len)
{
	uint64_t k = rn(s, 100), o, n;
	if (k < 20)
		n = 1 + rn(s, 600);
	else if (k < 45)
		n = 4096 * (1 + rn(s, 16));
	else if (k < 70)
		n = 1 + rn(s, 128 * KiB);
	else if (k < 82)
		n = 64 * KiB * (1 + rn(s, 4));
	else if (k < 94)
		n = 256 * KiB + rn(s, 1280 * KiB);
	else
		n = CS * (1 + rn(s, 2));
	k = rn(s, 100);
	if (k < 40)
		o = rn(s, FMAX) & ~(uint64_t)4095;
	else if (k < 55)
		o = (1 + rn(s, NIDX - 1)) * CS - 1 - rn(s, 64 * KiB); /* just before a chunk boundary */
	else if (k < 65)
		o = rn(s, NIDX) * CS;
	else
		o = rn(s, FMAX);
	if (n > FMAX - o)
		n = FMAX - o;
	*off = o;
	*len = n;
}

/* The common end of every operation: each chunk it freed is gone from the
 * store and queued for deletion on every replica, the chunk counter
 * agrees, and every FULL_EVERY operations everything is read. */
static void end_op(struct sim *s)
{
	for (size_t i = 0; i < s->nfreed; i++) {
		uint64_t id = s->freed[i];
		const struct mchunk *c = mc(s, id);
		if (tmds_chunk_exists(s->t, id))
			sim_fail(s, "chunk %llu freed in the model still has a record", (unsigned long long)id);
		for (uint32_t r = 0; r < c->nrep; r++)
			if (!tmds_gc_queued(s->t, s->dsid[c->ds[r]], id))
				sim_fail(s, "chunk %llu freed but not queued for deletion on ds %d",
					 (unsigned long long)id, c->ds[r]);
	}
	s->nfreed = 0;
	size_t live = 0;
	for (uint64_t id = 1; id <= s->max_chunk; id++)
		live += mc(s, id)->live;
	uint64_t counted;
	CHECK_EQ(s, layer_count_chunks(s->t->m, &counted), 0, "chunk counter");
	CHECK_EQ(s, counted, live, "chunks counted");
	for (int i = 0; i < MAX_OBJS; i++)
		if (s->o[i].live && ml_depth(s->o[i].layer) > s->n.maxdepth)
			s->n.maxdepth = ml_depth(s->o[i].layer);
	if (s->op % FULL_EVERY == 0)
		full_check(s);
}

static void begin_op(struct sim *s)
{
	s->op++;
	s->layer_floor = s->max_layer;
}

static void op_mknod(struct sim *s)
{
	char name[32];
	free_name(s, name, sizeof(name));
	struct obj *o = obj_new(s);
	snprintf(o->name, sizeof(o->name), "%s", name);
	note(s, "mknod %s", o->name);
	o->ino = tmds_mknod(s->t, s->vol, ROOT, o->name, S_IFREG | 0644);
	o->layer = ml_new(s, NULL);
	check_attr(s, o);
	s->n.mknod++;
}

static void op_write(struct sim *s, struct obj *o)
{
	uint64_t off, len;
	rnd_range(s, &off, &len);
	if (rn(s, 20) == 0)
		memset(s->wbuf, 0, len); /* zeros are data too */
	else
		fill(s->wbuf, len, rnd(s));
	note(s, "write %s [%llu, +%llu)", o->name, (unsigned long long)off, (unsigned long long)len);
	int rc = sim_write(s, o, off, s->wbuf, len);
	CHECK(s, rc == 0 || rc == -ENOSPC || rc == -EROFS);
	s->n.write++;
	s->n.erofs += rc == -EROFS;
	spot_check(s, o, off, len);
}

static void op_punch(struct sim *s, struct obj *o)
{
	uint64_t off, len;
	if (rn(s, 4) == 0) {
		off = rn(s, NIDX) * CS; /* whole chunks: CHUNK_DROP */
		len = CS * (1 + rn(s, 2));
		if (len > FMAX - off)
			len = FMAX - off;
	} else {
		rnd_range(s, &off, &len);
	}
	note(s, "punch %s [%llu, +%llu)", o->name, (unsigned long long)off, (unsigned long long)len);
	int rc = sim_punch(s, o, off, len);
	CHECK(s, rc == 0 || rc == -ENOSPC || rc == -EROFS);
	s->n.punch++;
	s->n.erofs += rc == -EROFS;
	spot_check(s, o, off, len);
}

static void op_truncate(struct sim *s, struct obj *o)
{
	uint64_t k = rn(s, 100), size;
	if (k < 30 && o->size)
		size = rn(s, o->size);
	else if (k < 45)
		size = rn(s, NIDX + 1) * CS;
	else if (k < 55)
		size = 0;
	else
		size = rn(s, FMAX + 1);
	uint64_t old = o->size;
	note(s, "truncate %s %llu -> %llu", o->name, (unsigned long long)old, (unsigned long long)size);
	int rc = sim_truncate(s, o, size);
	CHECK(s, rc == 0 || rc == -ENOSPC || rc == -EROFS);
	s->n.trunc++;
	s->n.erofs += rc == -EROFS;
	uint64_t lo = size < old ? size : old, hi = size < old ? old : size;
	spot_check(s, o, lo, hi - lo);
}

/* SNAP_CREATE of f as sname; returns the snapshot or NULL (EEXIST, EMLINK). */
static struct obj *op_snapshot(struct sim *s, struct obj *f, const char *sname)
{
	char entry[32];
	struct mlayer *frozen = NULL;
	struct vdifs_attr a;
	bool fresh = false;
	snprintf(entry, sizeof(entry), "%.20s@%.7s", f->name, sname);
	note(s, "snapshot %s as %s", f->name, sname);
	int want = find_snap(s, f, sname, entry) ? -EEXIST : mfreeze_plan(f, &frozen, &fresh);
	struct msg_snap_req q = {.vol = s->vol, .parent = ROOT, .name = vb(f->name), .snap = vb(sname)};
	int rc = snapshot_create(s->t->m, &q, &a);
	if (rc != want)
		sim_fail(s, "SNAP_CREATE %s of %s (depth %u): %d, model %d", sname, f->name, ml_depth(f->layer), rc,
			 want);
	s->n.snap++;
	if (rc != 0) {
		s->n.eexist += rc == -EEXIST;
		s->n.emlink += rc == -EMLINK;
		check_attr(s, f);
		return NULL;
	}
	mfreeze_apply(s, f, frozen, fresh);
	struct obj *sn = obj_new(s);
	sn->snap = true;
	snprintf(sn->name, sizeof(sn->name), "%s", entry);
	snprintf(sn->sname, sizeof(sn->sname), "%s", sname);
	sn->origin = f;
	sn->origin_ino = f->ino;
	sn->ino = a.ino;
	sn->layer = frozen;
	m_share(sn, f);
	check_attr_of(s, sn, &a);
	check_attr(s, f);
	if (!s->snapdir) {
		s->snapdir = tmds_lookup(s->t, s->vol, ROOT, VDIFS_SNAPDIR_NAME);
		CHECK(s, s->snapdir != 0);
	}
	CHECK_EQ(s, tmds_lookup(s->t, s->vol, s->snapdir, entry), sn->ino, "snapshot entry");
	return sn;
}

/* CLONE of src into dst (an existing file) or into a new file. */
static void op_clone(struct sim *s, struct obj *src, struct obj *dst)
{
	struct mlayer *frozen = NULL;
	struct vdifs_attr a;
	char name[32] = "";
	bool fresh = false;
	int want = 0;
	if (!dst)
		free_name(s, name, sizeof(name));
	note(s, "clone %s -> %s%s", src->name, dst ? dst->name : name, dst ? " (existing)" : "");
	/* The target must be empty and have no ancestors: what O_TRUNC leaves. */
	if (dst && (dst->size || dst->layer->parent || !ml_empty(dst->layer)))
		want = -ENOTEMPTY;
	if (want == 0)
		want = mfreeze_plan(src, &frozen, &fresh);
	if (want == 0 && ml_depth(frozen) + 1 > VDIFS_DEPTH_MAX)
		want = -EMLINK;
	struct msg_clone_req q = {.vol = s->vol, .src = src->ino, .dst = dst ? dst->ino : 0, .parent = ROOT,
				  .name = vb(name), .uid = 1000, .gid = 100};
	int rc = snapshot_clone(s->t->m, &q, &a);
	if (rc != want)
		sim_fail(s, "CLONE %s -> %s: %d, model %d", src->name, dst ? dst->name : name, rc, want);
	s->n.clone++;
	s->n.clone_into += dst != NULL;
	if (rc != 0) {
		s->n.emlink += rc == -EMLINK;
		s->n.enotempty += rc == -ENOTEMPTY;
		check_attr(s, src);
		if (dst)
			check_attr(s, dst);
		return;
	}
	mfreeze_apply(s, src, frozen, fresh);
	struct mlayer *nl = ml_new(s, frozen);
	ml_unref(s, frozen); /* the new layer holds it now */
	if (dst) {
		ml_unref(s, dst->layer);
	} else {
		dst = obj_new(s);
		snprintf(dst->name, sizeof(dst->name), "%s", name);
		dst->ino = a.ino;
	}
	dst->layer = nl;
	m_share(dst, src);
	check_attr_of(s, dst, &a);
	check_attr(s, src);
	/* A clone is a full copy: check it whole, on one replica. */
	struct cloc locs[NIDX];
	sim_layout(s, dst, locs);
	read_cmp(s, dst, locs, 0, FMAX, (int)rn(s, REPLICAS));
	spot_check(s, src, 0, 0);
}

static void op_revert(struct sim *s, struct obj *f, struct obj *sn)
{
	struct vdifs_attr a;
	note(s, "revert %s to %s", f->name, sn->sname);
	int want = ml_depth(sn->layer) + 1 > VDIFS_DEPTH_MAX ? -EMLINK : 0;
	struct msg_snap_req q = {.vol = s->vol, .parent = ROOT, .name = vb(f->name), .snap = vb(sn->sname)};
	int rc = snapshot_revert(s->t->m, &q, &a);
	CHECK_EQ(s, rc, want, "SNAP_REVERT");
	s->n.revert++;
	if (rc != 0) {
		s->n.emlink++;
		return;
	}
	struct mlayer *old = f->layer;
	f->layer = ml_new(s, sn->layer);
	ml_unref(s, old);
	m_share(f, sn);
	check_attr_of(s, f, &a);
	spot_check(s, f, 0, 0);
}

/* A file is gone: its layer reference goes, its snapshots stay (orphans). */
static void drop_file(struct sim *s, struct obj *f)
{
	mflatten_release(s, f);
	ml_unref(s, f->layer);
	obj_free(s, f);
}

static void op_unlink(struct sim *s, struct obj *f)
{
	note(s, "unlink %s", f->name);
	CHECK_EQ(s, namespace_unlink(s->t->m, s->vol, ROOT, vb(f->name)), 0, "UNLINK");
	drop_file(s, f);
	s->n.unlink++;
}

static void op_snap_delete(struct sim *s, struct obj *sn)
{
	int rc;
	if (sn->origin) {
		note(s, "delete snapshot %s of %s", sn->sname, sn->origin->name);
		struct msg_snap_req q = {.vol = s->vol, .parent = ROOT, .name = vb(sn->origin->name),
					 .snap = vb(sn->sname)};
		rc = snapshot_delete(s->t->m, &q);
		s->n.snapdel++;
	} else {
		/* No file names it any more: only its entry in .snap does. */
		note(s, "unlink orphaned snapshot .snap/%s", sn->name);
		rc = namespace_unlink(s->t->m, s->vol, s->snapdir, vb(sn->name));
		s->n.orphandel++;
	}
	CHECK_EQ(s, rc, 0, "snapshot deletion");
	ml_unref(s, sn->layer);
	obj_free(s, sn);
}

static void op_rename(struct sim *s, struct obj *f)
{
	char name[32];
	snprintf(name, sizeof(name), "f%u", (unsigned)rn(s, 2 * MAX_FILES));
	if (strcmp(name, f->name) == 0)
		return;
	struct obj *victim = find_file(s, name);
	note(s, "rename %s -> %s%s", f->name, name, victim ? " (replacing)" : "");
	CHECK_EQ(s, tmds_rename(s->t, s->vol, ROOT, f->name, ROOT, name, 0), 0, "RENAME");
	if (victim)
		drop_file(s, victim);
	snprintf(f->name, sizeof(f->name), "%s", name);
	CHECK_EQ(s, tmds_lookup(s->t, s->vol, ROOT, name), f->ino, "renamed file");
	s->n.rename++;
}

/* A writer that got a chunk (CHUNK_ALLOC) and died before writing it. */
static void op_crash(struct sim *s, struct obj *f)
{
	struct cloc l;
	uint64_t idx = rn(s, NIDX);
	note(s, "CHUNK_ALLOC only: %s index %llu", f->name, (unsigned long long)idx);
	int rc = sim_alloc(s, f, idx, &l);
	CHECK(s, rc == 0 || rc == -ENOSPC || rc == -EROFS);
	s->n.crash++;
	spot_check(s, f, idx * CS, CS);
}

static void op_extent(struct sim *s)
{
	static const uint32_t ext[] = {4096, 4096, 8192, 16384, 65536, 262144, 1u << 20};
	uint32_t e = ext[rn(s, sizeof(ext) / sizeof(ext[0]))];
	char value[16];
	struct md_volume v;
	snprintf(value, sizeof(value), "%u", e);
	note(s, "extent_size %u", e);
	struct msg_vol_set_req q = {.name = vb("v"), .key = vb("extent_size"), .value = vb(value)};
	CHECK_EQ(s, volume_set(s->t->m, &q, &v), 0, "VOL_SET extent_size");
	CHECK_EQ(s, v.extent_size, e, "extent_size");
	s->extent = e;
	s->n.extent++;
}

/* One data server misses its heartbeats (at most one is down), or comes back. */
static void op_down_up(struct sim *s)
{
	for (int k = 0; k < NDS; k++)
		if (!s->up[k]) {
			note(s, "ds %d up", k);
			ds_heartbeat(s, k);
			CHECK(s, dsreg_is_up(s->t->m->dsreg, s->dsid[k]));
			return;
		}
	int k = (int)rn(s, NDS);
	note(s, "ds %d down", k);
	s->t->now_ms += 6000; /* past the 5 s liveness timeout of tmds */
	s->up[k] = false;
	for (int j = 0; j < NDS; j++)
		if (j != k)
			ds_heartbeat(s, j);
	CHECK(s, !dsreg_is_up(s->t->m->dsreg, s->dsid[k]));
	s->n.down++;
}

static void op_reopen_mds(struct sim *s)
{
	note(s, "restart the MDS");
	tmds_reopen(s->t);
	/* Every server is down after a start until it reports. */
	for (int k = 0; k < NDS; k++)
		if (s->up[k])
			ds_heartbeat(s, k);
	s->n.reopen_mds++;
}

static struct chunkstore *store_open(struct sim *s, int k)
{
	const char *dirs[1] = {s->csdir[k]};
	struct chunkstore_config cfg = {.dirs = dirs, .ndirs = 1};
	struct chunkstore *cs = NULL;
	char err[256] = "";
	if (chunkstore_open(&cfg, &cs, err, sizeof(err)) != 0)
		fail_msg("chunkstore_open(%s): %s", s->csdir[k], err);
	return cs;
}

static void op_reopen_ds(struct sim *s)
{
	note(s, "restart the data servers' stores");
	for (int k = 0; k < NDS; k++) {
		chunkstore_close(s->cs[k]);
		s->cs[k] = store_open(s, k);
	}
	s->n.reopen_ds++;
}

static void op_gc(struct sim *s)
{
	note(s, "heartbeats");
	for (int k = 0; k < NDS; k++)
		if (s->up[k])
			ds_heartbeat(s, k);
	s->n.gc++;
}

/* FLATTEN_BEGIN of f.  The new layer's id comes from the P record. */
static void op_flatten_begin(struct sim *s, struct obj *f)
{
	struct msg_flatten_rep r;
	struct mlayer *frozen;
	bool fresh;
	note(s, "flatten %s: begin (depth %u)", f->name, ml_depth(f->layer));
	mflatten_release(s, f); /* a flatten in progress is replaced */
	bool flat = f->layer->parent == NULL;
	for (uint64_t i = 0; i < NIDX; i++) {
		uint64_t c = ml_view(f->layer, i);
		flat = flat && (!c || !mc(s, c)->base);
	}
	CHECK_EQ(s, flatten_begin(s->t->m, s->vol, f->ino, &r), 0, "FLATTEN_BEGIN");
	CHECK_EQ(s, r.flat, flat, "FLATTEN_BEGIN flat");
	s->n.fl_begin++;
	if (flat) {
		s->n.fl_flat++;
		return;
	}
	if (mfreeze_plan(f, &frozen, &fresh) == -EMLINK) {
		/* No room for a layer over the content: frozen in place. */
		f->layer->frozen = true;
		f->layer->refs++;
		frozen = f->layer;
		s->n.fl_inplace++;
	} else {
		mfreeze_apply(s, f, frozen, fresh);
	}
	f->fl_on = true;
	f->fl_frozen = frozen;
	f->fl_flat = ml_new(s, NULL);
	f->fl_size = f->size;
	memset(f->fl_copied, 0, sizeof(f->fl_copied));
	uint64_t chunks = 0;
	for (uint64_t i = 0; i < NIDX; i++)
		for (struct mlayer *l = frozen; l; l = l->parent)
			if (l->ent[i])
				chunks = i + 1;
	CHECK_EQ(s, r.chunks, chunks, "FLATTEN_BEGIN chunks");
	check_attr(s, f);
	f->fl_layer = f->layer->id; /* an id: the P record holds no reference on it */
	/* The P record names the new layer. */
	struct mdstore_txn *x = mdstore_txn_begin(s->t->m->store);
	struct mdstore_key k;
	uint8_t *val = NULL;
	size_t len = 0;
	assert_non_null(x);
	mdstore_key_flatten(&k, s->vol, f->ino);
	CHECK_EQ(s, mdstore_txn_get(x, &k, &val, &len), 0, "P record");
	mdstore_txn_abort(x);
	CHECK_EQ(s, len, 32, "P record length");
	learn_layer(s, f->fl_flat, le_get64(val));
	free(val);
}

/* DS_COPY on each server of the new chunk (the source and its chain are
 * there); the servers must agree on the space.  0, or the first error. */
static int ds_copy(struct sim *s, const struct cloc *dst, const struct cloc *src, struct chunkstore_alloc *a)
{
	struct chunkstore_geom g = geom(src);
	int ret = 0;
	*a = (struct chunkstore_alloc){0, 0};
	for (uint32_t r = 0; r < dst->nrep; r++) {
		struct chunkstore_alloc x = {0, 0};
		uint32_t k = 0;
		while (k < src->nrep && src->ds[k] != dst->ds[r])
			k++;
		CHECK(s, k < src->nrep); /* the copy is local */
		int rc = chunkstore_copy(s->cs[dst->ds[r]], dst->id, dst->version, src->id, src->version, &g, &x);
		/* A plain source the server does not hold (CHUNK_ALLOC without a
		 * write) reads as zeros: nothing to copy there (as the client). */
		if (rc == -ENOENT && src->nbase == 0)
			continue;
		if (rc < 0) {
			ret = ret ? ret : rc;
			continue;
		}
		mc(s, dst->id)->written = true;
		if (r == 0)
			*a = x;
		CHECK_EQ(s, x.bytes, a->bytes, "copy alloc of a replica");
		CHECK_EQ(s, x.own, x.bytes, "copy own");
	}
	return ret;
}

/* FLATTEN_CHUNKS of max indexes from first, and the copies (each pair on
 * every server of the new chunk).  0, or the copy's error. */
static int sim_flatten_chunks(struct sim *s, struct obj *f, uint64_t first, uint32_t max)
{
	struct msg_flatten_chunks_req q = {.vol = s->vol, .ino = f->ino, .first = first, .max = max};
	struct wbuf items;
	struct wreader r;
	uint32_t count;
	wbuf_init(&items);
	int rc = flatten_chunks(s->t->m, &q, &items, &count);
	CHECK_EQ(s, rc, f->fl_on ? 0 : -ENOENT, "FLATTEN_CHUNKS");
	if (rc != 0) {
		wbuf_free(&items);
		return rc;
	}
	int ret = 0;
	wreader_init(&r, items.data, items.len);
	uint32_t got = 0;
	for (uint64_t i = first; i < NIDX && i - first < max; i++) {
		uint64_t src = ml_view(f->fl_frozen, i);
		if (!src)
			continue;
		struct msg_chunk_loc md, ms;
		struct cloc dl, sl;
		CHECK(s, got < count);
		msg_chunk_loc_get(&r, &md);
		msg_chunk_loc_get(&r, &ms);
		CHECK(s, !r.err);
		loc_decode(s, &md, &dl);
		loc_decode(s, &ms, &sl);
		got++;
		CHECK_EQ(s, dl.index, i, "FLATTEN_CHUNKS index");
		CHECK_EQ(s, sl.index, i, "FLATTEN_CHUNKS source index");
		CHECK_EQ(s, sl.id, src, "FLATTEN_CHUNKS source");
		loc_check(s, &sl);
		uint64_t own = f->fl_flat->ent[i];
		if (own) {
			CHECK_EQ(s, dl.id, own, "FLATTEN_CHUNKS copy asked again");
		} else {
			/* A plain chunk where the source and its chain are. */
			CHECK(s, dl.id > s->max_chunk);
			s->max_chunk = dl.id;
			struct mchunk *c = mc(s, dl.id), *sc = mc(s, src);
			memset(c, 0, sizeof(*c));
			c->made = c->live = true;
			c->nrep = sc->nrep;
			memcpy(c->ds, sc->ds, sizeof(c->ds));
			c->alloc = c->own = sc->alloc; /* until the copies report */
			c->copying = true;
			f->fl_flat->ent[i] = dl.id;
		}
		loc_check(s, &dl);
		/* A plain source no server holds (CHUNK_ALLOC without a write;
		 * it reads as zeros) is skipped: its copy is held nowhere either. */
		int want = 0;
		rc = ds_copy(s, &dl, &sl, &f->fl_alloc[i]);
		if (rc != want)
			sim_fail(s, "DS_COPY of chunk %llu (base %llu, written %d) into %llu: %d, model %d",
				 (unsigned long long)src, (unsigned long long)mc(s, src)->base, mc(s, src)->written,
				 (unsigned long long)dl.id, rc, want);
		ret = ret ? ret : rc;
		f->fl_copied[i] = rc == 0;
		s->n.fl_copies += rc == 0;
	}
	CHECK_EQ(s, got, count, "FLATTEN_CHUNKS pairs");
	CHECK_EQ(s, wreader_finish(&r), 0, "FLATTEN_CHUNKS records");
	wbuf_free(&items);
	return ret;
}

/* FLATTEN_END with the copies' sizes, or abandoned (abort). */
static void op_flatten_end(struct sim *s, struct obj *f, bool abort)
{
	struct msg_flatten_end_req q = {.vol = s->vol, .ino = f->ino, .flags = abort ? 1 : 0};
	struct vdifs_attr a;
	struct wbuf items;
	int want = 0;
	note(s, "flatten %s: %s", f->name, abort ? "abandon" : "end");
	wbuf_init(&items);
	if (!abort && f->fl_on) {
		for (uint64_t i = 0; i < NIDX; i++)
			if (f->fl_copied[i]) {
				msg_alloc_put(&items, &(struct msg_alloc){i, f->fl_flat->ent[i], f->fl_alloc[i].bytes,
									 f->fl_alloc[i].own});
				q.count++;
			}
		q.items = (struct vbytes){items.data, (uint32_t)items.len};
	}
	if (!abort && !f->fl_on) {
		want = -ENOENT;
	} else if (!abort && (f->layer->id != f->fl_layer || f->size != f->fl_size ||
			      (f->layer != f->fl_frozen && !ml_empty(f->layer)))) {
		want = -EBUSY; /* written, truncated or reverted since the start */
	} else if (!abort) {
		for (uint64_t i = 0; i < NIDX; i++)
			if (ml_view(f->fl_frozen, i) && !f->fl_flat->ent[i])
				want = -EINVAL; /* not copied yet */
	}
	int rc = flatten_end(s->t->m, &q, &a);
	wbuf_free(&items);
	if (rc != want)
		sim_fail(s, "FLATTEN_END of %s%s: %d, model %d", f->name, abort ? " (abandon)" : "", rc, want);
	if (abort || rc == -EBUSY) {
		s->n.fl_abort += abort && f->fl_on;
		s->n.fl_ebusy += rc == -EBUSY;
		mflatten_release(s, f);
		check_attr(s, f);
		return;
	}
	if (rc != 0) {
		s->n.fl_einval += rc == -EINVAL;
		return;
	}
	for (uint64_t i = 0; i < NIDX; i++)
		if (f->fl_copied[i]) {
			struct mchunk *c = mc(s, f->fl_flat->ent[i]);
			c->alloc = c->own = f->fl_alloc[i].bytes < CS ? f->fl_alloc[i].bytes : CS;
			c->copying = false;
		}
	/* The file moves to the new layer; its old one and the content go. */
	struct mlayer *old = f->layer;
	f->layer = f->fl_flat;
	f->fl_on = false;
	ml_unref(s, old);
	ml_unref(s, f->fl_frozen);
	check_attr_of(s, f, &a);
	CHECK_EQ(s, ml_depth(f->layer), 1, "depth after a flatten");
	struct cloc locs[NIDX];
	sim_layout(s, f, locs);
	read_cmp(s, f, locs, 0, FMAX, (int)rn(s, REPLICAS));
	s->n.fl_end++;
}

/* A whole flatten at once, as the tool does it. */
static void op_flatten_all(struct sim *s, struct obj *f)
{
	op_flatten_begin(s, f);
	if (!f->fl_on)
		return;
	note(s, "flatten %s: copy", f->name);
	if (sim_flatten_chunks(s, f, 0, NIDX) != 0) {
		s->n.fl_nocopy++;
		op_flatten_end(s, f, true); /* what vdifs-clone does when a step fails */
		return;
	}
	op_flatten_end(s, f, false);
}

/* A step of a flatten (vdifs-clone flatten), other operations in between,
 * or a whole one. */
static void op_flatten(struct sim *s, struct obj *f)
{
	uint64_t k = rn(s, 100);
	if (k < 30) {
		op_flatten_all(s, f);
	} else if (!f->fl_on && k < 85) {
		op_flatten_begin(s, f);
	} else if (k < 60) {
		/* Copies, in windows; sometimes not all of them. */
		uint32_t max = 1 + (uint32_t)rn(s, NIDX);
		note(s, "flatten %s: copy, windows of %u", f->name, max);
		for (uint64_t first = 0; first < NIDX; first += max) {
			if (sim_flatten_chunks(s, f, first, max) != 0) {
				s->n.fl_nocopy++;
				op_flatten_end(s, f, true);
				break;
			}
			if (rn(s, 6) == 0)
				break;
		}
	} else if (k < 92) {
		op_flatten_end(s, f, false);
	} else {
		op_flatten_end(s, f, true);
	}
	spot_check(s, f, 0, 0);
}

/* Data operations on a snapshot are refused and change nothing. */
static void op_erofs(struct sim *s, struct obj *sn)
{
	struct cloc l;
	struct vdifs_attr a;
	note(s, "write, drop and truncate snapshot %s", sn->name);
	CHECK_EQ(s, sim_alloc(s, sn, rn(s, NIDX), &l), -EROFS, "CHUNK_ALLOC of a snapshot");
	CHECK_EQ(s, sim_drop(s, sn, rn(s, NIDX), 1 + rn(s, 2)), -EROFS, "CHUNK_DROP of a snapshot");
	struct msg_setattr_req q = {.vol = s->vol, .ino = sn->ino, .valid = VDIFS_SET_SIZE, .size = rn(s, FMAX)};
	CHECK_EQ(s, namespace_setattr(s->t->m, &q, &a), -EROFS, "SETATTR size of a snapshot");
	s->n.erofs++;
	spot_check(s, sn, 0, 0);
}

/* A write and a snapshot (deleted at once: its frozen layer stays in the
 * chain) after another, until the depth limit refuses one. */
static void op_deepen(struct sim *s, struct obj *f)
{
	s->n.deepen++;
	for (int i = 0; i < VDIFS_DEPTH_MAX + 2 && count_objs(s, true) < MAX_SNAPS; i++) {
		uint64_t off = rn(s, FMAX / 4096) * 4096;
		fill(s->wbuf, 4096, rnd(s));
		note(s, "deepen %s: write [%llu, +4096)", f->name, (unsigned long long)off);
		int rc = sim_write(s, f, off, s->wbuf, 4096);
		CHECK(s, rc == 0 || rc == -ENOSPC || rc == -EROFS);
		spot_check(s, f, off, 4096);
		end_op(s);
		begin_op(s);
		struct obj *sn = op_snapshot(s, f, "d");
		end_op(s);
		begin_op(s);
		if (!sn) {
			/* EMLINK (or EEXIST: an orphan has the name).  At the
			 * limit a flatten is the way out; one abandoned there
			 * leaves the file writable again. */
			uint64_t k = rn(s, 3);
			if (k == 0) {
				op_flatten_all(s, f);
			} else if (k == 1) {
				op_flatten_begin(s, f);
				end_op(s);
				begin_op(s);
				op_write(s, f);
				end_op(s);
				begin_op(s);
				op_flatten_end(s, f, true);
				end_op(s);
				begin_op(s);
				op_write(s, f);
			}
			break;
		}
		op_snap_delete(s, sn);
		end_op(s);
		begin_op(s);
	}
}

static void one_op(struct sim *s)
{
	unsigned files = count_objs(s, false), snaps = count_objs(s, true);
	uint64_t r = rn(s, 1000);
	struct obj *f = pick(s, false), *sn;
	char sname[8];
	if (!f || (r >= 770 && r < 800 && files < MAX_FILES)) {
		op_mknod(s);
		return;
	}
	if (r < 300) {
		op_write(s, f);
	} else if (r < 390) {
		op_punch(s, f);
	} else if (r < 455) {
		op_truncate(s, f);
	} else if (r < 545) {
		snprintf(sname, sizeof(sname), "s%u", (unsigned)rn(s, 5));
		if (snaps < MAX_SNAPS)
			op_snapshot(s, f, sname);
		else
			op_snap_delete(s, pick(s, true));
	} else if (r < 620) {
		struct obj *src = snaps && rn(s, 3) == 0 ? pick(s, true) : f;
		struct obj *dst = files >= MAX_FILES || rn(s, 4) == 0 ? pick(s, false) : NULL;
		if (dst != src)
			op_clone(s, src, dst);
	} else if (r < 670) {
		if ((sn = pick_snap_of(s, f)))
			op_revert(s, f, sn);
	} else if (r < 715) {
		if (files > 1)
			op_unlink(s, f);
	} else if (r < 770) {
		if ((sn = pick(s, true)))
			op_snap_delete(s, sn);
	} else if (r < 830) {
		op_rename(s, f);
	} else if (r < 845) {
		op_crash(s, f);
	} else if (r < 855) {
		if ((sn = pick(s, true)))
			op_erofs(s, sn);
	} else if (r < 863) {
		op_extent(s);
	} else if (r < 871) {
		op_down_up(s);
	} else if (r < 875) {
		op_reopen_mds(s);
	} else if (r < 879) {
		op_reopen_ds(s);
	} else if (r < 935) {
		op_flatten(s, f);
	} else if (r < 995) {
		op_gc(s);
	} else {
		op_deepen(s, f);
	}
}

/* ---- runs ------------------------------------------------------------------------------ */

static int setup(void **state)
{
	void *tv;
	tmds_setup(&tv);
	struct tmds *t = tv;
	/* The MDS syncs every transaction: on tmpfs, when there is one, the
	 * operations take seconds whatever the disk. */
	char shm[sizeof(t->dir)], old[sizeof(t->dir)];
	snprintf(shm, sizeof(shm), "/dev/shm/test_mds_model.XXXXXX");
	if (mkdtemp(shm)) {
		memcpy(old, t->dir, sizeof(old));
		memcpy(t->dir, shm, sizeof(shm));
		snprintf(t->db, sizeof(t->db), "%s/meta.ldb", shm);
		tmds_reopen(t); /* a fresh MDS there */
		test_rm_tree(old);
	}
	struct sim *s = calloc(1, sizeof(*s));
	assert_non_null(s);
	s->t = t;
	s->wbuf = malloc(WBUF);
	s->rbuf = malloc(CS);
	s->zero = calloc(1, CS);
	assert_true(s->wbuf && s->rbuf && s->zero);
	*state = s;
	return 0;
}

static int teardown(void **state)
{
	struct sim *s = *state;
	void *t = s->t;
	for (int k = 0; k < NDS; k++) {
		chunkstore_close(s->cs[k]);
		free(s->acks[k]);
	}
	for (int i = 0; i < MAX_OBJS; i++)
		if (s->o[i].live)
			for (int j = 0; j < NIDX; j++)
				mb_put(s->o[i].data[j]);
	for (size_t k = 0; k < s->nlayers; k++)
		free(s->layers[k]);
	free(s->layers);
	free(s->ch);
	free(s->freed);
	free(s->wbuf);
	free(s->rbuf);
	free(s->zero);
	free(s);
	return tmds_teardown(&t);
}

static uint32_t env_u32(const char *name, uint32_t dflt)
{
	const char *v = getenv(name);
	return v && *v ? (uint32_t)strtoul(v, NULL, 0) : dflt;
}

static void run(struct sim *s, uint32_t seed, int ops)
{
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	s->seed = seed;
	s->rng = seed;
	s->extent = 4096;
	for (int k = 0; k < NDS; k++) {
		char uuid[16];
		snprintf(uuid, sizeof(uuid), "ds%d", k);
		snprintf(s->csdir[k], sizeof(s->csdir[k]), "%s/ds%d", s->t->dir, k);
		s->dsid[k] = tmds_add_ds(s->t, uuid, (uint16_t)(9401 + k), 1ull << 40);
		s->up[k] = true;
		s->cs[k] = store_open(s, k);
	}
	s->vol = tmds_volume(s->t, "v", CS, REPLICAS);
	print_message("seed %u: %d operations\n", seed, ops);

	while (s->op < ops) {
		begin_op(s);
		one_op(s);
		end_op(s);
	}
	begin_op(s);
	note(s, "final check");
	full_check(s);

	/* Everything goes: files, then snapshots (orphans by now). */
	begin_op(s);
	note(s, "delete everything");
	for (int i = 0; i < MAX_OBJS; i++)
		if (s->o[i].live && !s->o[i].snap)
			op_unlink(s, &s->o[i]);
	for (int i = 0; i < MAX_OBJS; i++)
		if (s->o[i].live)
			op_snap_delete(s, &s->o[i]);
	end_op(s);
	CHECK_EQ(s, s->nlayers, 0, "model layers left");
	/* Every server up, heartbeats until the queues are empty and acknowledged. */
	for (int round = 0; round < 4; round++)
		for (int k = 0; k < NDS; k++)
			ds_heartbeat(s, k);
	audit_store(s);
	for (uint64_t id = 1; id <= s->max_chunk; id++) {
		const struct mchunk *c = mc(s, id);
		if (!c->made)
			continue;
		CHECK(s, !c->live);
		if (c->collected != rep_mask(c) || c->acked != rep_mask(c))
			sim_fail(s, "chunk %llu: replicas %#x, deleted on %#x, acknowledged on %#x",
				 (unsigned long long)id, rep_mask(c), c->collected, c->acked);
	}
	for (int k = 0; k < NDS; k++) {
		struct chunkstore_space sp;
		CHECK_EQ(s, chunkstore_space(s->cs[k], &sp), 0, "chunkstore_space");
		CHECK_EQ(s, sp.nchunks, 0, "chunks left on a data server");
	}
	uint64_t chunks;
	CHECK_EQ(s, layer_count_chunks(s->t->m, &chunks), 0, "chunk counter");
	CHECK_EQ(s, chunks, 0, "chunks");

	clock_gettime(CLOCK_MONOTONIC, &t1);
	const struct counts *n = &s->n;
	print_message("seed %u: %d ops in %.2f s: %u writes, %u punches, %u truncations, %u snapshots, "
		      "%u clones (%u into a file), %u reverts, %u unlinks, %u+%u snapshot deletions, %u renames, "
		      "%u mknods, %u crashed writers, %u extent changes, %u servers down, %u+%u restarts, "
		      "%u heartbeat rounds, %u deepenings; flattens: %u begun (%u flat already, %u in place), "
		      "%u copies, %u ended, %u EBUSY, %u EINVAL, %u abandoned (%u over a source never written)\n",
		      seed, s->op, (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9, n->write,
		      n->punch, n->trunc, n->snap, n->clone, n->clone_into, n->revert, n->unlink, n->snapdel,
		      n->orphandel, n->rename, n->mknod, n->crash, n->extent, n->down, n->reopen_mds, n->reopen_ds,
		      n->gc, n->deepen, n->fl_begin, n->fl_flat, n->fl_inplace, n->fl_copies, n->fl_end, n->fl_ebusy,
		      n->fl_einval, n->fl_abort, n->fl_nocopy);
	print_message("seed %u: %u plain and %u delta chunks (%u over a delta), %u reused; EMLINK %u, EEXIST %u, "
		      "ENOTEMPTY %u, ENOSPC %u, EROFS %u; max depth %u; %u chunks freed, %u replicas deleted\n",
		      seed, n->plain, n->deltas, n->chain2, n->reused, n->emlink, n->eexist, n->enotempty, n->enospc,
		      n->erofs, n->maxdepth, n->freed, n->collected);
	if (ops >= 1000) {
		/* The mix reached what it is for. */
		CHECK(s, n->deltas > 0 && n->chain2 > 0 && n->emlink > 0 && n->orphandel > 0);
		CHECK(s, n->revert > 0 && n->clone_into > 0 && n->down > 0 && n->collected > 0);
		CHECK(s, n->fl_end > 0);
	}
}

static void test_run(void **state, uint32_t k)
{
	run(*state, env_u32("VDIFS_MODEL_SEED", 1) + k, (int)env_u32("VDIFS_MODEL_OPS", DEFAULT_OPS));
}

static void test_model_0(void **state) { test_run(state, 0); }
static void test_model_1(void **state) { test_run(state, 1); }
static void test_model_2(void **state) { test_run(state, 2); }
static void test_model_3(void **state) { test_run(state, 3); }

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_model_0, setup, teardown),
		cmocka_unit_test_setup_teardown(test_model_1, setup, teardown),
		cmocka_unit_test_setup_teardown(test_model_2, setup, teardown),
		cmocka_unit_test_setup_teardown(test_model_3, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
