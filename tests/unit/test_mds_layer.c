/*
 * test_mds_layer: chunk tables with data servers registered through the
 * real registry -- CHUNK_ALLOC (placement on distinct up servers, ENOSPC, one
 * chunk per index), LAYOUT ranges, CHUNK_DROP and truncation (chunks freed
 * and queued for deletion on each replica), COMMIT (sizes, times, blocks),
 * and layers with a frozen parent as clones will make them.
 */
#include "test_mds_util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define ROOT 1
#define MiB (1ull << 20)

struct loc {
	uint64_t index, chunk;
	uint32_t flags;
	uint32_t nrep;
	uint32_t ds[VDIFS_MAX_REPLICAS];
};

/* LAYOUT decoded into out[]; returns the count or a negative errno. */
static int layout(struct tmds *t, uint32_t vol, uint64_t ino, uint64_t first, uint32_t max, struct loc *out,
		  int cap)
{
	struct msg_layout_req q = {.vol = vol, .ino = ino, .first = first, .max = max};
	struct wbuf items;
	uint32_t count;
	wbuf_init(&items);
	int rc = layer_layout(t->m, &q, &items, &count);
	if (rc < 0) {
		wbuf_free(&items);
		return rc;
	}
	assert_true((int)count <= cap);
	struct wreader r;
	wreader_init(&r, items.data, items.len);
	for (uint32_t i = 0; i < count; i++) {
		struct msg_chunk_loc l;
		msg_chunk_loc_get(&r, &l);
		assert_false(r.err);
		assert_int_equal(l.flags & ~(uint32_t)VDIFS_CHUNK_SHARED, 0);
		out[i].flags = l.flags;
		out[i].index = l.index;
		out[i].chunk = l.chunk_id;
		out[i].nrep = l.nrep;
		struct wreader rr;
		wreader_init(&rr, l.replicas.p, l.replicas.len);
		for (uint32_t j = 0; j < l.nrep; j++) {
			struct msg_replica rep;
			msg_replica_get(&rr, &rep);
			out[i].ds[j] = rep.ds_id;
		}
		assert_int_equal(wreader_finish(&rr), 0);
	}
	assert_int_equal(wreader_finish(&r), 0);
	wbuf_free(&items);
	return (int)count;
}

static int commit(struct tmds *t, uint32_t vol, uint64_t ino, uint32_t flags, uint64_t size, int64_t mtime_s,
		  const struct msg_alloc *items, uint32_t n, struct vdifs_attr *out)
{
	struct wbuf b;
	wbuf_init(&b);
	for (uint32_t i = 0; i < n; i++)
		msg_alloc_put(&b, &items[i]);
	struct msg_commit_req q = {.vol = vol, .ino = ino, .flags = flags, .size = size, .mtime_s = mtime_s,
				   .count = n, .items = {b.data, (uint32_t)b.len}};
	int rc = layer_commit(t->m, &q, out);
	wbuf_free(&b);
	return rc;
}

static void test_alloc_and_layout(void **state)
{
	struct tmds *t = *state;
	uint32_t d1 = tmds_add_ds(t, "a", 9401, 1ull << 40);
	uint32_t d2 = tmds_add_ds(t, "b", 9402, 1ull << 40);
	uint32_t d3 = tmds_add_ds(t, "c", 9403, 1ull << 40);
	uint32_t vol = tmds_volume(t, "v", MiB, 2);
	uint64_t f = tmds_mknod(t, vol, ROOT, "disk", S_IFREG | 0644);
	const uint64_t idx[] = {0, 5, 2, 1000};
	uint64_t ids[4];
	for (int i = 0; i < 4; i++) {
		uint32_t ds[8], nrep;
		assert_int_equal(tmds_alloc(t, vol, f, idx[i], &ids[i], ds, &nrep), 0);
		assert_int_equal(nrep, 2);
		assert_int_not_equal(ds[0], ds[1]);
		for (int j = 0; j < 2; j++)
			assert_true(ds[j] == d1 || ds[j] == d2 || ds[j] == d3);
		for (int j = 0; j < i; j++)
			assert_int_not_equal(ids[j], ids[i]);
	}
	uint64_t again;
	assert_int_equal(tmds_alloc(t, vol, f, 5, &again, NULL, NULL), 0);
	assert_int_equal(again, ids[1]); /* one chunk per index */

	struct loc l[8];
	assert_int_equal(layout(t, vol, f, 0, 10, l, 8), 3);
	assert_int_equal(l[0].index, 0);
	assert_int_equal(l[0].chunk, ids[0]);
	assert_int_equal(l[1].index, 2);
	assert_int_equal(l[1].chunk, ids[2]);
	assert_int_equal(l[2].index, 5);
	assert_int_equal(l[2].chunk, ids[1]);
	assert_int_equal(l[2].nrep, 2);
	assert_int_equal(layout(t, vol, f, 3, 100, l, 8), 1);
	assert_int_equal(l[0].index, 5);
	assert_int_equal(layout(t, vol, f, 6, 994, l, 8), 0); /* [6, 1000): 1000 is outside */
	assert_int_equal(layout(t, vol, f, 6, 995, l, 8), 1);
	assert_int_equal(layout(t, vol, f, 0, 0, l, 8), 0);
	assert_int_equal(layout(t, vol, f, 0, UINT32_MAX, l, 8), 4);
	assert_int_equal(layout(t, vol, f, UINT64_MAX - 1, UINT32_MAX, l, 8), 0);

	tmds_reopen(t);
	struct loc m[8];
	tmds_heartbeat(t, d1, 1ull << 40);
	assert_int_equal(layout(t, vol, f, 0, UINT32_MAX, m, 8), 4);
	assert_int_equal(m[3].index, 1000);
	assert_int_equal(m[3].chunk, ids[3]);
	assert_int_equal(m[0].ds[0], l[0].ds[0]);
	assert_int_equal(m[0].ds[1], l[0].ds[1]);

	uint64_t dir = tmds_mknod(t, vol, ROOT, "dir", S_IFDIR | 0755);
	assert_int_equal(layout(t, vol, dir, 0, 1, l, 8), -EISDIR);
	assert_int_equal(layout(t, vol, 4242, 0, 1, l, 8), -ENOENT);
	assert_int_equal(layout(t, vol + 1, f, 0, 1, l, 8), -ENOENT);
	uint64_t chunks;
	assert_int_equal(layer_count_chunks(t->m, &chunks), 0);
	assert_int_equal(chunks, 4);
}

static void test_alloc_limits(void **state)
{
	struct tmds *t = *state;
	uint32_t vol = tmds_volume(t, "v", MiB, 3);
	uint64_t f = tmds_mknod(t, vol, ROOT, "f", S_IFREG | 0644);
	uint32_t ds[8], nrep;
	uint64_t id;
	assert_int_equal(tmds_alloc(t, vol, f, 0, &id, ds, &nrep), -ENOSPC); /* no server at all */
	uint32_t only = tmds_add_ds(t, "only", 9401, 1ull << 30);
	/* Fewer servers up than replicas: as many as there are. */
	assert_int_equal(tmds_alloc(t, vol, f, 0, &id, ds, &nrep), 0);
	assert_int_equal(nrep, 1);
	assert_int_equal(ds[0], only);
	t->now_ms += 60000; /* the server missed its heartbeats */
	assert_int_equal(tmds_alloc(t, vol, f, 1, &id, ds, &nrep), -ENOSPC);
	/* An existing chunk is still handed out without any server up. */
	assert_int_equal(tmds_alloc(t, vol, f, 0, &id, ds, &nrep), 0);
	tmds_heartbeat(t, only, 1ull << 30);
	assert_int_equal(tmds_alloc(t, vol, f, 1, &id, ds, &nrep), 0);

	/* Index bounds: offsets must stay within 2^63. */
	assert_int_equal(tmds_alloc(t, vol, f, 1ull << 43, &id, ds, &nrep), -EFBIG);
	assert_int_equal(tmds_alloc(t, vol, f, (1ull << 43) - 1, &id, ds, &nrep), 0);

	uint64_t dir = tmds_mknod(t, vol, ROOT, "d", S_IFDIR | 0755);
	uint64_t fifo = tmds_mknod(t, vol, ROOT, "p", S_IFIFO | 0644);
	assert_int_equal(tmds_alloc(t, vol, dir, 0, &id, ds, &nrep), -EISDIR);
	assert_int_equal(tmds_alloc(t, vol, fifo, 0, &id, ds, &nrep), -EINVAL);
	assert_int_equal(tmds_alloc(t, vol, 999, 0, &id, ds, &nrep), -ENOENT);
}

/* Just after a restart, a new chunk waits (EAGAIN) rather than being placed
 * on fewer servers than asked or failing with ENOSPC; an existing one does
 * not wait. */
static void test_alloc_waits_after_restart(void **state)
{
	struct tmds *t = *state;
	uint32_t a = tmds_add_ds(t, "a", 9401, 1ull << 40);
	uint32_t b = tmds_add_ds(t, "b", 9402, 1ull << 40);
	uint32_t vol = tmds_volume(t, "v", MiB, 2);
	uint64_t f = tmds_mknod(t, vol, ROOT, "f", S_IFREG | 0644);
	uint32_t ds[8], nrep;
	assert_int_equal(tmds_alloc(t, vol, f, 0, NULL, NULL, NULL), 0);
	tmds_reopen(t);
	t->settle = true;
	assert_int_equal(tmds_alloc(t, vol, f, 1, NULL, ds, &nrep), -EAGAIN); /* none up yet */
	assert_int_equal(tmds_alloc(t, vol, f, 0, NULL, ds, &nrep), 0);
	tmds_heartbeat(t, a, 1ull << 40);
	assert_int_equal(tmds_alloc(t, vol, f, 1, NULL, ds, &nrep), -EAGAIN); /* one of two */
	tmds_heartbeat(t, b, 1ull << 40);
	assert_int_equal(tmds_alloc(t, vol, f, 1, NULL, ds, &nrep), 0);
	assert_int_equal(nrep, 2);
	/* A server that never comes back delays new chunks by the timeout only. */
	tmds_reopen(t);
	t->settle = true;
	tmds_heartbeat(t, a, 1ull << 40);
	assert_int_equal(tmds_alloc(t, vol, f, 2, NULL, ds, &nrep), -EAGAIN);
	t->now_ms += 5000;
	tmds_heartbeat(t, a, 1ull << 40);
	assert_int_equal(tmds_alloc(t, vol, f, 2, NULL, ds, &nrep), 0);
	assert_int_equal(nrep, 1);
	assert_int_equal(ds[0], a);
	/* Without settle (the default of the other tests) nothing waits. */
	t->settle = false;
	tmds_reopen(t);
	assert_int_equal(tmds_alloc(t, vol, f, 3, NULL, ds, &nrep), -ENOSPC);
}

static void test_commit(void **state)
{
	struct tmds *t = *state;
	tmds_add_ds(t, "a", 9401, 1ull << 40);
	uint32_t vol = tmds_volume(t, "v", MiB, 1);
	uint64_t f = tmds_mknod(t, vol, ROOT, "f", S_IFREG | 0644);
	uint64_t c0, c1;
	assert_int_equal(tmds_alloc(t, vol, f, 0, &c0, NULL, NULL), 0);
	assert_int_equal(tmds_alloc(t, vol, f, 1, &c1, NULL, NULL), 0);
	struct vdifs_attr a, before = tmds_attr(t, vol, f);

	struct msg_alloc items[2] = {{0, c0, 4096, 4096}, {1, c1, 1000, 1000}};
	assert_int_equal(commit(t, vol, f, VDIFS_COMMIT_SIZE | VDIFS_COMMIT_MTIME, 3 * MiB / 2, 777, items, 2, &a),
			 0);
	assert_int_equal(a.size, 3 * MiB / 2);
	assert_int_equal(a.blocks, 8 + 2); /* 4096/512 + ceil(1000/512) */
	assert_int_equal(a.mtime_s, 777);
	assert_true(a.ctime_s > before.ctime_s || (a.ctime_s == before.ctime_s && a.ctime_ns > before.ctime_ns));

	/* Size only grows through COMMIT; an update replaces a chunk's bytes. */
	struct msg_alloc upd = {0, c0, 65536, 65536};
	assert_int_equal(commit(t, vol, f, VDIFS_COMMIT_SIZE, 10, 0, &upd, 1, &a), 0);
	assert_int_equal(a.size, 3 * MiB / 2);
	assert_int_equal(a.blocks, 128 + 2);
	assert_int_equal(a.mtime_s, 777);

	/* Stale items (a chunk id the file does not hold there) are ignored. */
	struct msg_alloc stale[2] = {{0, c1, 4096, 4096}, {7, c0, 4096, 4096}};
	assert_int_equal(commit(t, vol, f, 0, 0, 0, stale, 2, &a), 0);
	assert_int_equal(a.blocks, 130);
	/* More than a chunk is clamped to the chunk size. */
	struct msg_alloc huge = {1, c1, 10 * MiB, 10 * MiB};
	assert_int_equal(commit(t, vol, f, 0, 0, 0, &huge, 1, &a), 0);
	assert_int_equal(a.blocks, 128 + 2048);

	/* Malformed item lists. */
	struct wbuf b;
	wbuf_init(&b);
	msg_alloc_put(&b, &items[0]);
	struct msg_commit_req q = {.vol = vol, .ino = f, .count = 2, .items = {b.data, (uint32_t)b.len}};
	assert_int_equal(layer_commit(t->m, &q, &a), -EBADMSG);
	q.count = 0;
	assert_int_equal(layer_commit(t->m, &q, &a), -EBADMSG);
	wbuf_free(&b);
	q = (struct msg_commit_req){.vol = vol, .ino = f, .flags = VDIFS_COMMIT_SIZE, .size = 1ull << 63};
	assert_int_equal(layer_commit(t->m, &q, &a), -EFBIG);
	q = (struct msg_commit_req){.vol = vol, .ino = ROOT};
	assert_int_equal(layer_commit(t->m, &q, &a), -EISDIR);

	tmds_reopen(t);
	a = tmds_attr(t, vol, f);
	assert_int_equal(a.blocks, 128 + 2048);
	assert_int_equal(a.size, 3 * MiB / 2);
}

static void test_drop_and_truncate(void **state)
{
	struct tmds *t = *state;
	uint32_t d1 = tmds_add_ds(t, "a", 9401, 1ull << 40);
	uint32_t d2 = tmds_add_ds(t, "b", 9402, 1ull << 40);
	uint32_t vol = tmds_volume(t, "v", MiB, 2);
	uint64_t f = tmds_mknod(t, vol, ROOT, "f", S_IFREG | 0644);
	uint64_t c[6];
	struct msg_alloc items[6];
	struct vdifs_attr a;
	for (int i = 0; i < 6; i++) {
		assert_int_equal(tmds_alloc(t, vol, f, (uint64_t)i, &c[i], NULL, NULL), 0);
		items[i] = (struct msg_alloc){(uint64_t)i, c[i], MiB, MiB};
	}
	assert_int_equal(commit(t, vol, f, VDIFS_COMMIT_SIZE, 6 * MiB, 0, items, 6, &a), 0);
	assert_int_equal(a.blocks, 6 * 2048);

	/* CHUNK_DROP [1, 3): two chunks gone, queued on both their replicas. */
	struct msg_chunk_drop_req dq = {.vol = vol, .ino = f, .first = 1, .count = 2};
	assert_int_equal(layer_chunk_drop(t->m, &dq), 0);
	struct loc l[8];
	assert_int_equal(layout(t, vol, f, 0, 100, l, 8), 4);
	assert_int_equal(l[0].index, 0);
	assert_int_equal(l[1].index, 3);
	for (int i = 1; i <= 2; i++) {
		assert_false(tmds_chunk_exists(t, c[i]));
		assert_true(tmds_gc_queued(t, d1, c[i]));
		assert_true(tmds_gc_queued(t, d2, c[i]));
	}
	a = tmds_attr(t, vol, f);
	assert_int_equal(a.blocks, 4 * 2048);
	assert_int_equal(a.size, 6 * MiB); /* punching keeps the size */
	/* Dropping nothing, or an empty range, is fine. */
	dq = (struct msg_chunk_drop_req){.vol = vol, .ino = f, .first = 1, .count = 2};
	assert_int_equal(layer_chunk_drop(t->m, &dq), 0);
	dq.count = 0;
	assert_int_equal(layer_chunk_drop(t->m, &dq), 0);
	/* A dropped index gets a new chunk when written again. */
	uint64_t again;
	assert_int_equal(tmds_alloc(t, vol, f, 1, &again, NULL, NULL), 0);
	assert_true(again != c[1] && again > c[5]);

	/* Truncate to 3.5 MiB: chunks 4 and 5 go, 3 (the partial tail) stays. */
	struct msg_setattr_req sq = {.vol = vol, .ino = f, .valid = VDIFS_SET_SIZE, .size = 7 * MiB / 2};
	assert_int_equal(namespace_setattr(t->m, &sq, &a), 0);
	assert_int_equal(a.size, 7 * MiB / 2);
	assert_int_equal(layout(t, vol, f, 0, 100, l, 8), 3);
	assert_int_equal(l[2].index, 3);
	assert_false(tmds_chunk_exists(t, c[4]));
	assert_false(tmds_chunk_exists(t, c[5]));
	assert_true(tmds_gc_queued(t, d1, c[5]));
	assert_int_equal(a.blocks, 2 * 2048); /* chunks 0 and 3; the new chunk 1 has no bytes yet */
	/* Truncate to exactly 1 MiB: only chunk 0 stays. */
	sq.size = MiB;
	assert_int_equal(namespace_setattr(t->m, &sq, &a), 0);
	assert_int_equal(layout(t, vol, f, 0, 100, l, 8), 1);
	assert_int_equal(l[0].index, 0);
	/* To zero: nothing. */
	sq.size = 0;
	assert_int_equal(namespace_setattr(t->m, &sq, &a), 0);
	assert_int_equal(layout(t, vol, f, 0, 100, l, 8), 0);
	assert_int_equal(a.blocks, 0);
	uint64_t chunks;
	assert_int_equal(layer_count_chunks(t->m, &chunks), 0);
	assert_int_equal(chunks, 0);
}

static void test_unlink_queues_deletion(void **state)
{
	struct tmds *t = *state;
	uint32_t d1 = tmds_add_ds(t, "a", 9401, 1ull << 40);
	uint32_t d2 = tmds_add_ds(t, "b", 9402, 1ull << 40);
	uint32_t vol = tmds_volume(t, "v", MiB, 2);
	uint64_t f = tmds_mknod(t, vol, ROOT, "f", S_IFREG | 0644);
	uint64_t c[3];
	for (int i = 0; i < 3; i++)
		assert_int_equal(tmds_alloc(t, vol, f, (uint64_t)i * 7, &c[i], NULL, NULL), 0);
	assert_int_equal(namespace_unlink(t->m, vol, ROOT, vb("f")), 0);
	for (int i = 0; i < 3; i++)
		assert_false(tmds_chunk_exists(t, c[i]));
	/* Each server is told about the replicas it holds. */
	struct msg_ds_heartbeat_req q = {.ds_id = d1, .total = 10, .avail = 5};
	struct wbuf ids;
	uint32_t count;
	wbuf_init(&ids);
	assert_int_equal(dsreg_heartbeat(t->m->dsreg, &q, &ids, &count), 0);
	assert_int_equal(count, 3);
	for (int i = 0; i < 3; i++)
		assert_int_equal(le_get64(ids.data + 8 * i), c[i]);
	wbuf_reset(&ids);
	q.ds_id = d2;
	assert_int_equal(dsreg_heartbeat(t->m->dsreg, &q, &ids, &count), 0);
	assert_int_equal(count, 3);
	wbuf_free(&ids);
}

/* Builds a frozen layer holding chunks at the given indexes (0 in chunks[]
 * makes a HOLE entry) and gives file f a new writable layer over it, as a
 * clone will.  Returns the frozen layer id. */
static uint64_t make_parent(struct tmds *t, uint32_t vol, uint64_t f, const uint64_t *indexes,
			    uint64_t *chunks, int n, uint32_t dsa, uint32_t dsb)
{
	struct mdstore_txn *x = mdstore_txn_begin(t->m->store);
	struct md_inode *i = malloc(sizeof(*i));
	struct md_layer l;
	uint64_t parent, child;
	assert_int_equal(layer_create(x, vol, 0, &parent), 0);
	for (int k = 0; k < n; k++) {
		if (chunks[k] == 0) {
			mdstore_put_chunkent(x, parent, indexes[k], 0);
			continue;
		}
		struct md_chunk c = {.version = 1, .chunk_size = MiB, .refcount = 1, .vol = vol, .alloc = MiB,
				     .nrep = 2, .ds = {dsa, dsb}};
		assert_int_equal(mdstore_counter_next(x, "chunk", false, 0, &c.id), 0);
		mdstore_put_chunk(x, &c);
		mdstore_put_chunkent(x, parent, indexes[k], c.id);
		assert_int_equal(mdstore_counter_add(x, "chunks", false, 0, 1), 0);
		assert_int_equal(mdstore_counter_add(x, "vchunks", true, vol, 1), 0);
		chunks[k] = c.id;
	}
	assert_int_equal(mdstore_get_layer(x, parent, &l), 0);
	l.flags |= MD_LAYER_FROZEN;
	mdstore_put_layer(x, &l);
	assert_int_equal(layer_create(x, vol, parent, &child), 0);
	assert_int_equal(mdstore_get_inode(x, vol, f, i), 0);
	assert_int_equal(layer_unref(x, i->layer), 0);
	i->layer = child;
	mdstore_put_inode(x, i);
	assert_int_equal(mdstore_txn_commit(x), 0);
	free(i);
	return parent;
}

static void test_parent_layer(void **state)
{
	struct tmds *t = *state;
	uint32_t d1 = tmds_add_ds(t, "a", 9401, 1ull << 40);
	uint32_t d2 = tmds_add_ds(t, "b", 9402, 1ull << 40);
	tmds_add_ds(t, "c", 9403, 1ull << 40);
	tmds_add_ds(t, "d", 9404, 1ull << 40);
	uint32_t vol = tmds_volume(t, "v", MiB, 2);
	uint64_t f = tmds_mknod(t, vol, ROOT, "clone", S_IFREG | 0644);
	uint64_t idx[3] = {0, 2, 4}, pc[3] = {1, 1, 0}; /* chunks at 0 and 2, a HOLE at 4 */
	uint64_t parent = make_parent(t, vol, f, idx, pc, 3, d1, d2);

	/* The layout shows the parent's chunks. */
	struct loc l[8];
	assert_int_equal(layout(t, vol, f, 0, 10, l, 8), 2);
	assert_int_equal(l[0].chunk, pc[0]);
	assert_int_equal(l[1].chunk, pc[1]);
	assert_int_equal(l[0].flags, VDIFS_CHUNK_SHARED); /* a frozen ancestor's: never changes */
	assert_int_equal(l[1].flags, VDIFS_CHUNK_SHARED);

	/* Writing index 2 makes a delta chunk on the base's servers. */
	uint64_t delta;
	uint32_t ds[8], nrep;
	assert_int_equal(tmds_alloc(t, vol, f, 2, &delta, ds, &nrep), 0);
	assert_int_not_equal(delta, pc[1]);
	assert_int_equal(nrep, 2);
	assert_int_equal(ds[0], d1);
	assert_int_equal(ds[1], d2);
	struct mdstore_txn *x = mdstore_txn_begin(t->m->store);
	struct md_chunk c;
	assert_int_equal(mdstore_get_chunk(x, delta, &c), 0);
	assert_int_equal(c.base, pc[1]);
	mdstore_txn_abort(x);
	/* Index 4 is a HOLE in the parent: nothing to inherit. */
	uint64_t fresh;
	assert_int_equal(tmds_alloc(t, vol, f, 4, &fresh, NULL, NULL), 0);
	x = mdstore_txn_begin(t->m->store);
	assert_int_equal(mdstore_get_chunk(x, fresh, &c), 0);
	assert_int_equal(c.base, 0);
	mdstore_txn_abort(x);

	/* The nearer layer wins. */
	assert_int_equal(layout(t, vol, f, 0, 10, l, 8), 3);
	assert_int_equal(l[1].index, 2);
	assert_int_equal(l[1].chunk, delta);
	assert_int_equal(l[2].chunk, fresh);
	assert_int_equal(l[0].flags, VDIFS_CHUNK_SHARED);
	assert_int_equal(l[1].flags, 0); /* the file's own */
	assert_int_equal(l[2].flags, 0);

	/* Dropping index 0 hides the parent's chunk without freeing it. */
	struct msg_chunk_drop_req dq = {.vol = vol, .ino = f, .first = 0, .count = 1};
	assert_int_equal(layer_chunk_drop(t->m, &dq), 0);
	assert_int_equal(layout(t, vol, f, 0, 10, l, 8), 2);
	assert_int_equal(l[0].index, 2);
	assert_true(tmds_chunk_exists(t, pc[0]));
	/* Truncating to zero hides everything; the parent keeps its chunks. */
	struct msg_setattr_req sq = {.vol = vol, .ino = f, .valid = VDIFS_SET_SIZE, .size = 0};
	struct vdifs_attr a;
	assert_int_equal(namespace_setattr(t->m, &sq, &a), 0);
	assert_int_equal(layout(t, vol, f, 0, 10, l, 8), 0);
	assert_false(tmds_chunk_exists(t, delta));
	assert_true(tmds_chunk_exists(t, pc[1]));
	/* Writing index 2 again after the truncation inherits nothing. */
	assert_int_equal(tmds_alloc(t, vol, f, 2, &fresh, NULL, NULL), 0);
	x = mdstore_txn_begin(t->m->store);
	assert_int_equal(mdstore_get_chunk(x, fresh, &c), 0);
	assert_int_equal(c.base, 0);
	mdstore_txn_abort(x);

	/* Removing the clone drops its reference on the frozen layer. */
	assert_int_equal(namespace_unlink(t->m, vol, ROOT, vb("clone")), 0);
	struct md_layer pl;
	x = mdstore_txn_begin(t->m->store);
	assert_int_equal(mdstore_get_layer(x, parent, &pl), 0);
	assert_int_equal(pl.refcount, 1);
	/* The last reference frees the frozen layer and its chunks. */
	assert_int_equal(layer_unref(x, parent), 0);
	assert_int_equal(mdstore_txn_commit(x), 0);
	assert_false(tmds_chunk_exists(t, pc[0]));
	assert_false(tmds_chunk_exists(t, pc[1]));
	assert_true(tmds_gc_queued(t, d2, pc[1]));
	uint64_t chunks;
	assert_int_equal(layer_count_chunks(t->m, &chunks), 0);
	assert_int_equal(chunks, 0);
}

static void test_frozen_layer_is_read_only(void **state)
{
	struct tmds *t = *state;
	tmds_add_ds(t, "a", 9401, 1ull << 40);
	uint32_t vol = tmds_volume(t, "v", MiB, 1);
	uint64_t f = tmds_mknod(t, vol, ROOT, "snap", S_IFREG | 0444);
	assert_int_equal(tmds_alloc(t, vol, f, 0, NULL, NULL, NULL), 0);
	struct vdifs_attr a = tmds_attr(t, vol, f);
	struct mdstore_txn *x = mdstore_txn_begin(t->m->store);
	struct md_layer l;
	assert_int_equal(mdstore_get_layer(x, a.layer, &l), 0);
	l.flags |= MD_LAYER_FROZEN;
	mdstore_put_layer(x, &l);
	assert_int_equal(mdstore_txn_commit(x), 0);

	assert_int_equal(tmds_alloc(t, vol, f, 0, NULL, NULL, NULL), -EROFS);
	assert_int_equal(tmds_alloc(t, vol, f, 1, NULL, NULL, NULL), -EROFS);
	struct msg_chunk_drop_req dq = {.vol = vol, .ino = f, .first = 0, .count = 1};
	assert_int_equal(layer_chunk_drop(t->m, &dq), -EROFS);
	struct msg_setattr_req sq = {.vol = vol, .ino = f, .valid = VDIFS_SET_SIZE, .size = 0};
	assert_int_equal(namespace_setattr(t->m, &sq, &a), -EROFS);
	struct loc lo[2];
	assert_int_equal(layout(t, vol, f, 0, 10, lo, 2), 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_alloc_and_layout, tmds_setup, tmds_teardown),
		cmocka_unit_test_setup_teardown(test_alloc_limits, tmds_setup, tmds_teardown),
		cmocka_unit_test_setup_teardown(test_alloc_waits_after_restart, tmds_setup, tmds_teardown),
		cmocka_unit_test_setup_teardown(test_commit, tmds_setup, tmds_teardown),
		cmocka_unit_test_setup_teardown(test_drop_and_truncate, tmds_setup, tmds_teardown),
		cmocka_unit_test_setup_teardown(test_unlink_queues_deletion, tmds_setup, tmds_teardown),
		cmocka_unit_test_setup_teardown(test_parent_layer, tmds_setup, tmds_teardown),
		cmocka_unit_test_setup_teardown(test_frozen_layer_is_read_only, tmds_setup, tmds_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
