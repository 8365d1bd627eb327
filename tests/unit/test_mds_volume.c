/*
 * test_mds_volume: volume create (defaults, bounds, names), lookup, list,
 * set, remove (refused when not empty, forced with files and chunks), and
 * persistence across a reopen.
 */
#include "test_mds_util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static int create_rc(struct tmds *t, const char *name, uint64_t cs, uint32_t rep)
{
	struct msg_vol_create_req q = {.name = vb(name), .chunk_size = cs, .replicas = rep};
	struct md_volume v;
	return volume_create(t->m, &q, &v);
}

static void test_create_defaults_and_root(void **state)
{
	struct tmds *t = *state;
	struct msg_vol_create_req q = {.name = vb("golden")};
	struct md_volume v, w;
	assert_int_equal(volume_create(t->m, &q, &v), 0);
	assert_int_equal(v.chunk_size, 64ull << 20);
	assert_int_equal(v.replicas, 2);
	assert_int_equal(v.root_ino, 1);
	assert_string_equal(v.name, "golden");
	assert_true(v.created.s > 1600000000);

	assert_int_equal(volume_lookup(t->m, vb("golden"), &w), 0);
	assert_int_equal(w.id, v.id);
	assert_int_equal(volume_lookup(t->m, vb("other"), &w), -ENOENT);

	struct vdifs_attr a = tmds_attr(t, v.id, v.root_ino);
	assert_int_equal(a.mode, S_IFDIR | 0755);
	assert_int_equal(a.nlink, 2);
	assert_int_equal(a.uid, 0);
	assert_int_equal(a.gid, 0);
	assert_int_equal(a.ino, 1);

	/* A second volume gets another id and its own inode numbers. */
	uint32_t v2 = tmds_volume(t, "desk-01", 1 << 20, 3);
	assert_int_not_equal(v2, v.id);
	assert_int_equal(tmds_mknod(t, v2, 1, "a", S_IFREG | 0600), 2);
	assert_int_equal(tmds_mknod(t, v.id, 1, "a", S_IFREG | 0600), 2);
	assert_int_equal(create_rc(t, "golden", 0, 0), -EEXIST);
}

static void test_create_bounds(void **state)
{
	struct tmds *t = *state;
	char name64[65], name65[66];
	memset(name64, 'x', 64);
	name64[64] = '\0';
	memset(name65, 'y', 65);
	name65[65] = '\0';
	assert_int_equal(create_rc(t, "", 0, 0), -EINVAL);
	assert_int_equal(create_rc(t, name65, 0, 0), -EINVAL);
	assert_int_equal(create_rc(t, "a/b", 0, 0), -EINVAL);
	assert_int_equal(create_rc(t, "a b", 0, 0), -EINVAL);
	assert_int_equal(create_rc(t, "caf\xc3\xa9", 0, 0), -EINVAL);
	assert_int_equal(create_rc(t, "ab\n", 0, 0), -EINVAL);
	assert_int_equal(create_rc(t, name64, 0, 0), 0);
	assert_int_equal(create_rc(t, "Az09._-", 0, 0), 0);

	assert_int_equal(create_rc(t, "c1", 512 << 10, 0), -EINVAL);      /* below 1 MiB */
	assert_int_equal(create_rc(t, "c2", 3 << 20, 0), -EINVAL);        /* not a power of two */
	assert_int_equal(create_rc(t, "c3", 2ull << 30, 0), -EINVAL);     /* above 1 GiB */
	assert_int_equal(create_rc(t, "c4", 1 << 20, 0), 0);
	assert_int_equal(create_rc(t, "c5", 1ull << 30, 0), 0);
	assert_int_equal(create_rc(t, "r1", 0, 9), -EINVAL);
	assert_int_equal(create_rc(t, "r2", 0, 8), 0);
	assert_int_equal(create_rc(t, "r3", 0, 1), 0);
}

/* Decodes a VOL_LIST answer into names (comma-separated, in order). */
static void list_names(struct tmds *t, char *out, size_t cap, uint64_t *inodes_of_first)
{
	struct wbuf items;
	uint32_t count;
	wbuf_init(&items);
	assert_int_equal(volume_list(t->m, &items, &count), 0);
	struct wreader r;
	wreader_init(&r, items.data, items.len);
	out[0] = '\0';
	for (uint32_t i = 0; i < count; i++) {
		struct msg_vol_info vi;
		msg_vol_info_get(&r, &vi);
		assert_false(r.err);
		if (i == 0 && inodes_of_first)
			*inodes_of_first = vi.inodes;
		size_t l = strlen(out);
		snprintf(out + l, cap - l, "%s%.*s", i ? "," : "", (int)vi.name.len, vi.name.p);
	}
	assert_int_equal(wreader_finish(&r), 0);
	wbuf_free(&items);
}

static void test_list_and_persistence(void **state)
{
	struct tmds *t = *state;
	char names[256];
	uint64_t inodes = 0;
	list_names(t, names, sizeof(names), NULL);
	assert_string_equal(names, "");
	uint32_t a = tmds_volume(t, "alpha", 0, 0);
	tmds_volume(t, "beta", 0, 0);
	tmds_volume(t, "gamma", 0, 0);
	tmds_mknod(t, a, 1, "f1", S_IFREG | 0644);
	tmds_mknod(t, a, 1, "d1", S_IFDIR | 0755);
	list_names(t, names, sizeof(names), &inodes);
	assert_string_equal(names, "alpha,beta,gamma");
	assert_int_equal(inodes, 3); /* root, f1, d1 */

	tmds_reopen(t);
	list_names(t, names, sizeof(names), &inodes);
	assert_string_equal(names, "alpha,beta,gamma");
	assert_int_equal(inodes, 3);
	uint32_t count;
	assert_int_equal(volume_count(t->m, &count), 0);
	assert_int_equal(count, 3);
	assert_int_not_equal(tmds_lookup(t, a, 1, "d1"), 0);
}

static void test_remove(void **state)
{
	struct tmds *t = *state;
	uint32_t ds1 = tmds_add_ds(t, "u1", 9401, 100ull << 30);
	uint32_t ds2 = tmds_add_ds(t, "u2", 9402, 100ull << 30);
	uint32_t vol = tmds_volume(t, "vm", 1 << 20, 2);
	uint64_t dir = tmds_mknod(t, vol, 1, "dir", S_IFDIR | 0755);
	uint64_t f = tmds_mknod(t, vol, dir, "disk.img", S_IFREG | 0644);
	uint64_t chunk;
	uint32_t ds[8], nrep;
	assert_int_equal(tmds_alloc(t, vol, f, 3, &chunk, ds, &nrep), 0);
	assert_int_equal(nrep, 2);
	struct msg_setxattr_req xq = {.vol = vol, .ino = f, .name = vb("user.a"), .value = vb("1")};
	assert_int_equal(namespace_setxattr(t->m, &xq), 0);

	assert_int_equal(volume_remove(t->m, vb("nope"), 0), -ENOENT);
	assert_int_equal(volume_remove(t->m, vb("vm"), 0), -ENOTEMPTY);
	assert_true(tmds_chunk_exists(t, chunk));
	assert_int_equal(volume_remove(t->m, vb("vm"), VDIFS_VOL_REMOVE_FORCE), 0);

	struct md_volume v;
	struct vdifs_attr a;
	assert_int_equal(volume_lookup(t->m, vb("vm"), &v), -ENOENT);
	assert_int_equal(namespace_getattr(t->m, vol, 1, &a), -ENOENT);
	assert_false(tmds_chunk_exists(t, chunk));
	assert_true(tmds_gc_queued(t, ds1, chunk));
	assert_true(tmds_gc_queued(t, ds2, chunk));

	/* Nothing of the volume is left in the store. */
	const char tags[] = {'I', 'D', 'X', 'O'};
	for (size_t i = 0; i < sizeof(tags); i++) {
		struct mdstore_key p;
		struct mdstore_iter *it;
		const uint8_t *key, *val;
		size_t kl, vl;
		mdstore_key_vol_prefix(&p, tags[i], vol);
		assert_int_equal(mdstore_iter_open(t->m->store, &p, NULL, &it), 0);
		assert_int_equal(mdstore_iter_next(it, &key, &kl, &val, &vl), 0);
		mdstore_iter_close(it);
	}
	uint64_t chunks;
	assert_int_equal(layer_count_chunks(t->m, &chunks), 0);
	assert_int_equal(chunks, 0);

	/* The name can be used again; the new volume gets a new id. */
	uint32_t again = tmds_volume(t, "vm", 0, 0);
	assert_int_not_equal(again, vol);
	/* An empty volume goes without force. */
	assert_int_equal(volume_remove(t->m, vb("vm"), 0), 0);
}

static int set_rc(struct tmds *t, const char *vol, const char *key, const char *value, struct md_volume *out)
{
	struct msg_vol_set_req q = {.name = vb(vol), .key = vb(key), .value = vb(value)};
	return volume_set(t->m, &q, out);
}

static void test_set(void **state)
{
	struct tmds *t = *state;
	struct md_volume v;
	tmds_add_ds(t, "u1", 9401, 100ull << 30);
	uint32_t vol = tmds_volume(t, "s", 0, 0);
	assert_int_equal(set_rc(t, "s", "replicas", "3", &v), 0);
	assert_int_equal(v.replicas, 3);
	assert_int_equal(set_rc(t, "s", "replicas", "0", &v), -EINVAL);
	assert_int_equal(set_rc(t, "s", "replicas", "9", &v), -EINVAL);
	assert_int_equal(set_rc(t, "s", "replicas", "two", &v), -EINVAL);
	assert_int_equal(set_rc(t, "s", "colour", "blue", &v), -EINVAL);
	assert_int_equal(set_rc(t, "missing", "replicas", "1", &v), -ENOENT);
	assert_int_equal(set_rc(t, "s", "chunk_size", "3M", &v), -EINVAL);
	assert_int_equal(set_rc(t, "s", "chunk_size", "1M", &v), 0);
	assert_int_equal(v.chunk_size, 1 << 20);
	assert_int_equal(set_rc(t, "s", "chunk_size", "4194304", &v), 0);
	assert_int_equal(v.chunk_size, 4 << 20);

	/* An empty file does not pin the chunk size; a chunk does. */
	uint64_t f = tmds_mknod(t, vol, 1, "f", S_IFREG | 0644);
	assert_int_equal(set_rc(t, "s", "chunk_size", "8M", &v), 0);
	assert_int_equal(tmds_alloc(t, vol, f, 0, NULL, NULL, NULL), 0);
	assert_int_equal(set_rc(t, "s", "chunk_size", "16M", &v), -EBUSY);
	assert_int_equal(set_rc(t, "s", "replicas", "1", &v), 0);

	tmds_reopen(t);
	assert_int_equal(volume_lookup(t->m, vb("s"), &v), 0);
	assert_int_equal(v.chunk_size, 8 << 20);
	assert_int_equal(v.replicas, 1);

	/* Once the file is gone, so is the pin. */
	assert_int_equal(namespace_unlink(t->m, vol, 1, vb("f")), 0);
	assert_int_equal(set_rc(t, "s", "chunk_size", "16M", &v), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_create_defaults_and_root, tmds_setup, tmds_teardown),
		cmocka_unit_test_setup_teardown(test_create_bounds, tmds_setup, tmds_teardown),
		cmocka_unit_test_setup_teardown(test_list_and_persistence, tmds_setup, tmds_teardown),
		cmocka_unit_test_setup_teardown(test_remove, tmds_setup, tmds_teardown),
		cmocka_unit_test_setup_teardown(test_set, tmds_setup, tmds_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
