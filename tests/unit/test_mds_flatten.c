/*
 * test_mds_flatten: the MDS side of `vdifs-clone tree` and `vdifs-clone
 * flatten` -- the inheritance tree of snapshots and clones (kinds, parents,
 * owned bytes), and flattening: new plain chunks placed on the source
 * chunks' servers, the swap that leaves the file parentless with the same
 * size and its snapshots untouched, the refusal (EBUSY) when the file was
 * written or reverted during the copy, no chunk or layer left behind by an
 * abandoned flatten or by deleting a file mid-flatten, and a file at the
 * depth limit (read-only while flattened, writable again if abandoned).
 */
#include "test_mds_util.h"

#include "flatten.h"
#include "snapshot.h"
#include "tree.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define ROOT 1
#define MiB (1ull << 20)
#define CS (4 * MiB)

struct fx {
	uint32_t vol;
	uint64_t file;
};

/* A volume with three data servers and file "a" of three written chunks
 * (each committed at 1 MiB) and a hole at index 3; size 5 chunks. */
static struct fx make_file(struct tmds *t)
{
	struct fx f;
	tmds_add_ds(t, "a", 9401, 1ull << 40);
	tmds_add_ds(t, "b", 9402, 1ull << 40);
	tmds_add_ds(t, "c", 9403, 1ull << 40);
	f.vol = tmds_volume(t, "v", CS, 2);
	f.file = tmds_mknod(t, f.vol, ROOT, "a", S_IFREG | 0644);
	struct wbuf b;
	wbuf_init(&b);
	uint64_t idx[3] = {0, 1, 4};
	for (int k = 0; k < 3; k++) {
		uint64_t id;
		assert_int_equal(tmds_alloc(t, f.vol, f.file, idx[k], &id, NULL, NULL), 0);
		msg_alloc_put(&b, &(struct msg_alloc){.index = idx[k], .chunk_id = id, .bytes = MiB, .own = MiB});
	}
	struct msg_commit_req q = {.vol = f.vol, .ino = f.file, .flags = VDIFS_COMMIT_SIZE, .size = 5 * CS,
				   .count = 3, .items = {b.data, (uint32_t)b.len}};
	struct vdifs_attr a;
	assert_int_equal(layer_commit(t->m, &q, &a), 0);
	wbuf_free(&b);
	return f;
}

static int snap(struct tmds *t, const struct fx *f, const char *name, const char *s)
{
	struct msg_snap_req q = {.vol = f->vol, .parent = ROOT, .name = vb(name), .snap = vb(s)};
	struct vdifs_attr a;
	return snapshot_create(t->m, &q, &a);
}

static uint64_t clone_of(struct tmds *t, const struct fx *f, uint64_t src, const char *name)
{
	struct msg_clone_req q = {.vol = f->vol, .src = src, .parent = ROOT, .name = vb(name)};
	struct vdifs_attr a;
	assert_int_equal(snapshot_clone(t->m, &q, &a), 0);
	return a.ino;
}

static struct msg_file_info_rep info(struct tmds *t, const struct fx *f, uint64_t ino)
{
	struct msg_file_info_rep r;
	assert_int_equal(snapshot_info(t->m, f->vol, ino, &r), 0);
	return r;
}

/* LAYOUT of ino: chunk ids by index (0 where none), up to 8 indexes. */
static void layout_ids(struct tmds *t, const struct fx *f, uint64_t ino, uint64_t ids[8])
{
	struct msg_layout_req q = {.vol = f->vol, .ino = ino, .first = 0, .max = 8};
	struct wbuf items;
	uint32_t count;
	wbuf_init(&items);
	assert_int_equal(layer_layout(t->m, &q, &items, &count), 0);
	memset(ids, 0, 8 * sizeof(ids[0]));
	struct wreader r;
	wreader_init(&r, items.data, items.len);
	for (uint32_t k = 0; k < count; k++) {
		struct msg_chunk_loc l;
		msg_chunk_loc_get(&r, &l);
		assert_false(r.err);
		ids[l.index] = l.chunk_id;
	}
	wbuf_free(&items);
}

struct pair {
	struct msg_chunk_loc dst, src;
	uint32_t dst_ds[VDIFS_MAX_REPLICAS], src_ds[VDIFS_MAX_REPLICAS];
};

static void replica_ids(const struct msg_chunk_loc *l, uint32_t *out)
{
	struct wreader r;
	wreader_init(&r, l->replicas.p, l->replicas.len);
	for (uint32_t k = 0; k < l->nrep; k++) {
		struct msg_replica rep;
		msg_replica_get(&r, &rep);
		out[k] = rep.ds_id;
	}
	assert_int_equal(wreader_finish(&r), 0);
}

/* FLATTEN_CHUNKS decoded; the wbuf keeps the records' bytes alive. */
static uint32_t chunks(struct tmds *t, const struct fx *f, uint64_t ino, struct pair *out, struct wbuf *items)
{
	struct msg_flatten_chunks_req q = {.vol = f->vol, .ino = ino, .first = 0, .max = 64};
	uint32_t count;
	wbuf_init(items);
	assert_int_equal(flatten_chunks(t->m, &q, items, &count), 0);
	struct wreader r;
	wreader_init(&r, items->data, items->len);
	for (uint32_t k = 0; k < count; k++) {
		msg_chunk_loc_get(&r, &out[k].dst);
		msg_chunk_loc_get(&r, &out[k].src);
		assert_false(r.err);
		replica_ids(&out[k].dst, out[k].dst_ds);
		replica_ids(&out[k].src, out[k].src_ds);
	}
	assert_int_equal(wreader_finish(&r), 0);
	return count;
}

static int end(struct tmds *t, const struct fx *f, uint64_t ino, uint32_t flags, const struct pair *p, uint32_t n)
{
	struct wbuf b;
	wbuf_init(&b);
	for (uint32_t k = 0; k < n; k++)
		msg_alloc_put(&b, &(struct msg_alloc){.index = p[k].dst.index, .chunk_id = p[k].dst.chunk_id,
						     .bytes = 2 * MiB, .own = 2 * MiB});
	struct msg_flatten_end_req q = {.vol = f->vol, .ino = ino, .flags = flags, .count = n,
					.items = {b.data, (uint32_t)b.len}};
	struct vdifs_attr a;
	int rc = flatten_end(t->m, &q, &a);
	wbuf_free(&b);
	return rc;
}

static uint64_t chunk_count(struct tmds *t)
{
	uint64_t n;
	assert_int_equal(layer_count_chunks(t->m, &n), 0);
	return n;
}

static void test_tree(void **state)
{
	struct tmds *t = *state;
	struct fx f = make_file(t);
	assert_int_equal(snap(t, &f, "a", "gold"), 0);
	uint64_t c1 = clone_of(t, &f, f.file, "c1");
	uint64_t c2 = clone_of(t, &f, c1, "c2"); /* c1 is still empty: shares gold's layer */
	(void)c2;

	struct wbuf items;
	uint32_t count;
	wbuf_init(&items);
	assert_int_equal(tree_list(t->m, f.vol, c1, 0, &items, &count), 0);
	/* gold (snapshot) on the frozen layer; a, c1, c2 each on its own layer over it. */
	assert_int_equal(count, 4);
	struct wreader r;
	wreader_init(&r, items.data, items.len);
	struct msg_tree_node n[4];
	for (int k = 0; k < 4; k++)
		msg_tree_node_get(&r, &n[k]);
	assert_int_equal(wreader_finish(&r), 0);
	assert_int_equal(n[0].kind, TREE_SNAPSHOT);
	assert_int_equal(n[0].parent, 0);
	assert_int_equal(n[0].owned, 3 * MiB);
	assert_int_equal(n[0].size, 5 * CS);
	for (int k = 1; k < 4; k++) {
		assert_int_equal(n[k].kind, TREE_FILE);
		assert_int_equal(n[k].parent, n[0].layer);
		assert_int_equal(n[k].owned, 0);
	}
	wbuf_free(&items);

	/* Paging: from node 3 on, one node; past the end, none. */
	wbuf_init(&items);
	assert_int_equal(tree_list(t->m, f.vol, f.file, 3, &items, &count), 0);
	assert_int_equal(count, 1);
	wbuf_free(&items);
	wbuf_init(&items);
	assert_int_equal(tree_list(t->m, f.vol, f.file, 9, &items, &count), 0);
	assert_int_equal(count, 0);
	wbuf_free(&items);

	/* Deleting the snapshot leaves its layer as a frozen node no inode uses. */
	struct msg_snap_req q = {.vol = f.vol, .parent = ROOT, .name = vb("a"), .snap = vb("gold")};
	assert_int_equal(snapshot_delete(t->m, &q), 0);
	wbuf_init(&items);
	assert_int_equal(tree_list(t->m, f.vol, f.file, 0, &items, &count), 0);
	assert_int_equal(count, 4);
	wreader_init(&r, items.data, items.len);
	msg_tree_node_get(&r, &n[0]);
	assert_int_equal(n[0].kind, TREE_FROZEN);
	assert_int_equal(n[0].ino, 0);
	wbuf_free(&items);

	/* A directory has no tree. */
	wbuf_init(&items);
	assert_int_equal(tree_list(t->m, f.vol, ROOT, 0, &items, &count), -EISDIR);
	wbuf_free(&items);
}

static void test_flatten(void **state)
{
	struct tmds *t = *state;
	struct fx f = make_file(t);
	uint64_t before[8], after[8], snapview[8];
	assert_int_equal(snap(t, &f, "a", "gold"), 0);
	uint64_t c1 = clone_of(t, &f, f.file, "c1");
	/* c1 writes index 1: a delta over gold's chunk. */
	assert_int_equal(tmds_alloc(t, f.vol, c1, 1, NULL, NULL, NULL), 0);
	layout_ids(t, &f, c1, before);
	assert_int_equal(info(t, &f, c1).depth, 2);

	struct msg_flatten_rep rep;
	assert_int_equal(flatten_begin(t->m, f.vol, c1, &rep), 0);
	assert_int_equal(rep.flat, 0);
	assert_int_equal(rep.chunks, 5);
	/* Ending before copying is refused: chunks missing. */
	assert_int_equal(end(t, &f, c1, 0, NULL, 0), -EINVAL);
	assert_int_equal(flatten_begin(t->m, f.vol, c1, &rep), 0);

	struct pair p[8];
	struct wbuf items;
	uint32_t n = chunks(t, &f, c1, p, &items);
	assert_int_equal(n, 3);
	for (uint32_t k = 0; k < n; k++) {
		assert_int_equal(p[k].dst.nbase, 0); /* plain */
		assert_int_equal(p[k].dst.extent, 0);
		assert_int_equal(p[k].src.chunk_id, before[p[k].src.index]);
		assert_int_equal(p[k].dst.nrep, p[k].src.nrep);
		assert_memory_equal(p[k].dst_ds, p[k].src_ds, p[k].dst.nrep * sizeof(uint32_t));
	}
	assert_int_equal(p[1].src.nbase, 1); /* the delta, with its base */
	/* Asking again hands out the same chunks. */
	struct pair again[8];
	struct wbuf items2;
	assert_int_equal(chunks(t, &f, c1, again, &items2), 3);
	for (uint32_t k = 0; k < n; k++)
		assert_int_equal(again[k].dst.chunk_id, p[k].dst.chunk_id);
	wbuf_free(&items2);

	assert_int_equal(end(t, &f, c1, 0, p, n), 0);
	wbuf_free(&items);
	layout_ids(t, &f, c1, after);
	for (uint32_t k = 0; k < n; k++)
		assert_int_equal(after[p[k].dst.index], p[k].dst.chunk_id);
	assert_int_equal(after[3], 0);
	struct msg_file_info_rep ri = info(t, &f, c1);
	assert_int_equal(ri.depth, 1);
	assert_int_equal(ri.size, 5 * CS);
	assert_int_equal(ri.owned, 3 * 2 * MiB);
	assert_int_equal(ri.shared, 0);
	assert_int_equal(ri.allocated, 3 * 2 * MiB);
	/* The file is writable in place, with no delta any more. */
	uint64_t id;
	assert_int_equal(tmds_alloc(t, f.vol, c1, 0, &id, NULL, NULL), 0);
	assert_int_equal(id, p[0].dst.chunk_id);
	/* Already flat: nothing to do. */
	assert_int_equal(flatten_begin(t->m, f.vol, c1, &rep), 0);
	assert_int_equal(rep.flat, 1);

	/* The origin and its snapshot are untouched. */
	layout_ids(t, &f, f.file, snapview);
	assert_int_equal(snapview[0], before[0]);
	assert_int_equal(info(t, &f, f.file).depth, 2);

	/* Snapshots are read-only, directories no files. */
	uint64_t gold = tmds_lookup(t, f.vol, tmds_lookup(t, f.vol, ROOT, ".snap"), "a@gold");
	assert_int_equal(flatten_begin(t->m, f.vol, gold, &rep), -EROFS);
	struct msg_commit_req cq = {.vol = f.vol, .ino = gold, .flags = VDIFS_COMMIT_SIZE, .size = 9 * CS};
	struct vdifs_attr ca;
	assert_int_equal(layer_commit(t->m, &cq, &ca), -EROFS); /* a snapshot's size never changes */
	assert_int_equal(flatten_begin(t->m, f.vol, ROOT, &rep), -EISDIR);
}

static void test_flatten_refused_when_changed(void **state)
{
	struct tmds *t = *state;
	struct fx f = make_file(t);
	struct msg_flatten_rep rep;
	struct pair p[8];
	struct wbuf items;
	assert_int_equal(snap(t, &f, "a", "gold"), 0);
	uint64_t base_chunks = chunk_count(t);

	/* Written during the copy. */
	assert_int_equal(flatten_begin(t->m, f.vol, f.file, &rep), 0);
	uint32_t n = chunks(t, &f, f.file, p, &items);
	assert_int_equal(chunk_count(t), base_chunks + 3);
	assert_int_equal(tmds_alloc(t, f.vol, f.file, 0, NULL, NULL, NULL), 0);
	assert_int_equal(end(t, &f, f.file, 0, p, n), -EBUSY);
	wbuf_free(&items);
	/* The copies are gone (queued for deletion on their servers). */
	assert_int_equal(chunk_count(t), base_chunks + 1);
	for (uint32_t k = 0; k < n; k++) {
		assert_false(tmds_chunk_exists(t, p[k].dst.chunk_id));
		assert_true(tmds_gc_queued(t, p[k].dst_ds[0], p[k].dst.chunk_id));
	}
	assert_int_equal(info(t, &f, f.file).depth, 2);

	/* Reverted during the copy. */
	assert_int_equal(flatten_begin(t->m, f.vol, f.file, &rep), 0);
	n = chunks(t, &f, f.file, p, &items);
	struct msg_snap_req q = {.vol = f.vol, .parent = ROOT, .name = vb("a"), .snap = vb("gold")};
	struct vdifs_attr a;
	assert_int_equal(snapshot_revert(t->m, &q, &a), 0);
	assert_int_equal(end(t, &f, f.file, 0, p, n), -EBUSY);
	wbuf_free(&items);

	/* Abandoned, twice (the second finds nothing and is fine). */
	assert_int_equal(flatten_begin(t->m, f.vol, f.file, &rep), 0);
	n = chunks(t, &f, f.file, p, &items);
	wbuf_free(&items);
	assert_int_equal(end(t, &f, f.file, 1, NULL, 0), 0);
	assert_int_equal(end(t, &f, f.file, 1, NULL, 0), 0);
	assert_int_equal(end(t, &f, f.file, 0, NULL, 0), -ENOENT);
	assert_int_equal(chunk_count(t), base_chunks);

	/* Deleted during the copy: nothing left behind but the snapshot's. */
	assert_int_equal(flatten_begin(t->m, f.vol, f.file, &rep), 0);
	n = chunks(t, &f, f.file, p, &items);
	wbuf_free(&items);
	assert_int_equal(namespace_unlink(t->m, f.vol, ROOT, vb("a")), 0);
	assert_int_equal(chunk_count(t), base_chunks);
	tmds_reopen(t);
	assert_int_equal(chunk_count(t), base_chunks);
}

static void test_flatten_at_depth_limit(void **state)
{
	struct tmds *t = *state;
	struct fx f = make_file(t);
	struct msg_flatten_rep rep;
	struct pair p[8];
	struct wbuf items;
	char name[16];
	/* A write and a snapshot per level, until the limit refuses. */
	int rc = 0;
	for (int k = 0; rc == 0; k++) {
		assert_int_equal(tmds_alloc(t, f.vol, f.file, 0, NULL, NULL, NULL), 0);
		snprintf(name, sizeof(name), "s%d", k);
		rc = snap(t, &f, "a", name);
		assert_true(k < VDIFS_DEPTH_MAX + 2);
	}
	assert_int_equal(rc, -EMLINK);
	assert_int_equal(info(t, &f, f.file).depth, VDIFS_DEPTH_MAX);

	/* No room for a layer over the content: read-only while flattening. */
	assert_int_equal(flatten_begin(t->m, f.vol, f.file, &rep), 0);
	assert_int_equal(tmds_alloc(t, f.vol, f.file, 2, NULL, NULL, NULL), -EROFS);
	assert_int_equal(end(t, &f, f.file, 1, NULL, 0), 0);
	assert_int_equal(tmds_alloc(t, f.vol, f.file, 2, NULL, NULL, NULL), 0); /* thawed */

	assert_int_equal(flatten_begin(t->m, f.vol, f.file, &rep), 0);
	uint32_t n = chunks(t, &f, f.file, p, &items);
	assert_int_equal(n, 4);
	assert_int_equal(end(t, &f, f.file, 0, p, n), 0);
	wbuf_free(&items);
	assert_int_equal(info(t, &f, f.file).depth, 1);
	assert_int_equal(snap(t, &f, "a", "after"), 0);
	assert_int_equal(tmds_alloc(t, f.vol, f.file, 2, NULL, NULL, NULL), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_tree, tmds_setup, tmds_teardown),
		cmocka_unit_test_setup_teardown(test_flatten, tmds_setup, tmds_teardown),
		cmocka_unit_test_setup_teardown(test_flatten_refused_when_changed, tmds_setup, tmds_teardown),
		cmocka_unit_test_setup_teardown(test_flatten_at_depth_limit, tmds_setup, tmds_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
