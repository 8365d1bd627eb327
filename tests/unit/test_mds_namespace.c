/*
 * test_mds_namespace: every namespace operation on a real store -- create of
 * each file type, names, attributes and times, symlinks, hard links and link
 * counts, unlink/rmdir, the POSIX rename rules (including NOREPLACE and
 * EXCHANGE), readdir paging, xattrs, statfs, open counts and orphans, and
 * persistence across a reopen.
 */
#include "test_mds_util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#define ROOT 1

static int64_t ts_cmp(int64_t as, uint32_t ans, int64_t bs, uint32_t bns)
{
	return as != bs ? as - bs : (int64_t)ans - (int64_t)bns;
}

static void test_mknod_types(void **state)
{
	struct tmds *t = *state;
	uint32_t vol = tmds_volume(t, "v", 0, 0);
	struct vdifs_attr root0 = tmds_attr(t, vol, ROOT);
	struct msg_mknod_req q = {.vol = vol, .parent = ROOT, .name = vb("dev"), .mode = S_IFCHR | 0600,
				  .rdev = 0x0103, .uid = 5, .gid = 6};
	struct vdifs_attr a;
	assert_int_equal(namespace_mknod(t->m, &q, &a), 0);
	assert_int_equal(a.mode, S_IFCHR | 0600);
	assert_int_equal(a.rdev, 0x0103);
	assert_int_equal(a.uid, 5);
	assert_int_equal(a.gid, 6);
	assert_int_equal(a.nlink, 1);
	assert_int_equal(a.layer, 0);

	uint64_t f = tmds_mknod(t, vol, ROOT, "file", S_IFREG | 0644);
	struct vdifs_attr fa = tmds_attr(t, vol, f);
	assert_int_equal(fa.mode, S_IFREG | 0644);
	assert_int_not_equal(fa.layer, 0); /* a fresh writable layer */
	assert_int_equal(fa.size, 0);
	assert_int_equal(fa.blocks, 0);
	assert_true(fa.mtime_s >= root0.mtime_s);
	uint64_t g = tmds_mknod(t, vol, ROOT, "notype", 0640); /* no type: regular */
	assert_int_equal(tmds_attr(t, vol, g).mode, S_IFREG | 0640);
	assert_int_not_equal(tmds_attr(t, vol, g).layer, fa.layer);
	tmds_mknod(t, vol, ROOT, "fifo", S_IFIFO | 0644);
	tmds_mknod(t, vol, ROOT, "sock", S_IFSOCK | 0644);
	tmds_mknod(t, vol, ROOT, "blk", S_IFBLK | 0644);
	assert_int_equal(tmds_mknod_rc(t, vol, ROOT, "lnk", S_IFLNK | 0777), -EINVAL);
	assert_int_equal(tmds_mknod_rc(t, vol, ROOT, "file", S_IFREG | 0644), -EEXIST);
	assert_int_equal(tmds_mknod_rc(t, vol, f, "under-file", S_IFREG | 0644), -ENOTDIR);
	assert_int_equal(tmds_mknod_rc(t, vol, 9999, "x", S_IFREG | 0644), -ENOENT);
	assert_int_equal(tmds_mknod_rc(t, vol + 1, ROOT, "x", S_IFREG | 0644), -ENOENT);
	struct vdifs_attr root1 = tmds_attr(t, vol, ROOT);
	assert_int_equal(root1.nlink, 2); /* no subdirectory yet */

	uint64_t d = tmds_mknod(t, vol, ROOT, "dir", S_IFDIR | 0755);
	assert_int_equal(tmds_attr(t, vol, d).nlink, 2);
	assert_int_equal(tmds_attr(t, vol, ROOT).nlink, 3);
	assert_true(ts_cmp(tmds_attr(t, vol, ROOT).mtime_s, tmds_attr(t, vol, ROOT).mtime_ns, root0.mtime_s,
			   root0.mtime_ns) > 0);
	tmds_mknod(t, vol, d, "sub", S_IFDIR | 0700);
	assert_int_equal(tmds_attr(t, vol, d).nlink, 3);
	assert_int_equal(tmds_lookup(t, vol, ROOT, "dir"), d);
	assert_int_equal(tmds_lookup(t, vol, ROOT, "missing"), 0);
}

static void test_names(void **state)
{
	struct tmds *t = *state;
	uint32_t vol = tmds_volume(t, "v", 0, 0);
	char n255[256], n256[257];
	memset(n255, 'n', 255);
	n255[255] = '\0';
	memset(n256, 'n', 256);
	n256[256] = '\0';
	assert_int_equal(tmds_mknod_rc(t, vol, ROOT, "", S_IFREG), -EINVAL);
	assert_int_equal(tmds_mknod_rc(t, vol, ROOT, ".", S_IFREG), -EINVAL);
	assert_int_equal(tmds_mknod_rc(t, vol, ROOT, "..", S_IFREG), -EINVAL);
	assert_int_equal(tmds_mknod_rc(t, vol, ROOT, "a/b", S_IFREG), -EINVAL);
	assert_int_equal(tmds_mknod_rc(t, vol, ROOT, n256, S_IFREG), -ENAMETOOLONG);
	struct vbytes withnul = {(const uint8_t *)"a\0b", 3};
	struct vdifs_attr a;
	assert_int_equal(namespace_lookup(t->m, vol, ROOT, withnul, &a), -EINVAL);
	struct vbytes long_name = {(const uint8_t *)n256, 256};
	assert_int_equal(namespace_lookup(t->m, vol, ROOT, long_name, &a), -ENAMETOOLONG);
	assert_int_equal(tmds_mknod_rc(t, vol, ROOT, n255, S_IFREG), 0);
	assert_int_equal(tmds_mknod_rc(t, vol, ROOT, "...", S_IFREG), 0);
	assert_int_equal(tmds_mknod_rc(t, vol, ROOT, "caf\xc3\xa9 \x01", S_IFREG), 0);
	assert_int_not_equal(tmds_lookup(t, vol, ROOT, n255), 0);
}

static void test_setattr(void **state)
{
	struct tmds *t = *state;
	uint32_t vol = tmds_volume(t, "v", 0, 0);
	uint64_t f = tmds_mknod(t, vol, ROOT, "f", S_IFREG | 0644);
	uint64_t d = tmds_mknod(t, vol, ROOT, "d", S_IFDIR | 0755);
	uint64_t p = tmds_mknod(t, vol, ROOT, "p", S_IFIFO | 0644);
	struct vdifs_attr before = tmds_attr(t, vol, f), a;

	struct msg_setattr_req q = {.vol = vol, .ino = f, .valid = VDIFS_SET_MODE, .mode = S_IFDIR | 04711};
	assert_int_equal(namespace_setattr(t->m, &q, &a), 0);
	assert_int_equal(a.mode, S_IFREG | 04711); /* the type never changes */
	assert_true(ts_cmp(a.ctime_s, a.ctime_ns, before.ctime_s, before.ctime_ns) > 0);
	assert_int_equal(a.mtime_s, before.mtime_s);
	assert_int_equal(a.mtime_ns, before.mtime_ns);

	q = (struct msg_setattr_req){.vol = vol, .ino = f, .valid = VDIFS_SET_UID | VDIFS_SET_GID, .uid = 7,
				     .gid = 8};
	assert_int_equal(namespace_setattr(t->m, &q, &a), 0);
	assert_int_equal(a.uid, 7);
	assert_int_equal(a.gid, 8);

	q = (struct msg_setattr_req){.vol = vol, .ino = f, .valid = VDIFS_SET_ATIME | VDIFS_SET_MTIME,
				     .atime_s = 1000, .atime_ns = 5, .mtime_s = -2000, .mtime_ns = 999999999};
	assert_int_equal(namespace_setattr(t->m, &q, &a), 0);
	assert_int_equal(a.atime_s, 1000);
	assert_int_equal(a.atime_ns, 5);
	assert_int_equal(a.mtime_s, -2000);
	assert_int_equal(a.mtime_ns, 999999999);
	q.atime_ns = 1000000000;
	assert_int_equal(namespace_setattr(t->m, &q, &a), -EINVAL);

	time_t now = time(NULL);
	q = (struct msg_setattr_req){.vol = vol, .ino = f, .valid = VDIFS_SET_ATIME_NOW | VDIFS_SET_MTIME_NOW};
	assert_int_equal(namespace_setattr(t->m, &q, &a), 0);
	assert_true(a.atime_s >= now - 1 && a.atime_s <= now + 1);
	assert_true(a.mtime_s >= now - 1 && a.mtime_s <= now + 1);
	assert_int_equal(a.mtime_s, a.ctime_s);
	assert_int_equal(a.mtime_ns, a.ctime_ns);

	/* Size: regular files only; it sets mtime unless one is given. */
	q = (struct msg_setattr_req){.vol = vol, .ino = f, .valid = VDIFS_SET_SIZE, .size = 12345};
	assert_int_equal(namespace_setattr(t->m, &q, &a), 0);
	assert_int_equal(a.size, 12345);
	q = (struct msg_setattr_req){.vol = vol, .ino = f, .valid = VDIFS_SET_SIZE | VDIFS_SET_MTIME, .size = 10,
				     .mtime_s = 42};
	assert_int_equal(namespace_setattr(t->m, &q, &a), 0);
	assert_int_equal(a.size, 10);
	assert_int_equal(a.mtime_s, 42);
	q.ino = d;
	assert_int_equal(namespace_setattr(t->m, &q, &a), -EISDIR);
	q.ino = p;
	assert_int_equal(namespace_setattr(t->m, &q, &a), -EINVAL);
	q.ino = f;
	q.size = (uint64_t)INT64_MAX + 1;
	assert_int_equal(namespace_setattr(t->m, &q, &a), -EFBIG);
	q.ino = 12345;
	q.valid = VDIFS_SET_MODE;
	assert_int_equal(namespace_setattr(t->m, &q, &a), -ENOENT);

	tmds_reopen(t);
	a = tmds_attr(t, vol, f);
	assert_int_equal(a.size, 10);
	assert_int_equal(a.uid, 7);
	assert_int_equal(a.mode, S_IFREG | 04711);
}

static void test_symlink_readlink(void **state)
{
	struct tmds *t = *state;
	uint32_t vol = tmds_volume(t, "v", 0, 0);
	struct msg_symlink_req q = {.vol = vol, .parent = ROOT, .name = vb("ln"), .target = vb("../some/where"),
				    .uid = 3, .gid = 4};
	struct vdifs_attr a;
	char target[VDIFS_PATH_MAX + 1];
	uint32_t len;
	assert_int_equal(namespace_symlink(t->m, &q, &a), 0);
	assert_int_equal(a.mode, S_IFLNK | 0777);
	assert_int_equal(a.size, 13);
	assert_int_equal(a.uid, 3);
	assert_int_equal(namespace_readlink(t->m, vol, a.ino, target, &len), 0);
	assert_int_equal(len, 13);
	assert_string_equal(target, "../some/where");
	assert_int_equal(namespace_symlink(t->m, &q, &a), -EEXIST);
	q.name = vb("empty");
	q.target = vb("");
	assert_int_equal(namespace_symlink(t->m, &q, &a), -ENOENT);

	/* The longest target survives a reopen. */
	char *longest = malloc(VDIFS_PATH_MAX + 1);
	memset(longest, 'p', VDIFS_PATH_MAX);
	longest[VDIFS_PATH_MAX] = '\0';
	q.name = vb("long");
	q.target = vb(longest);
	assert_int_equal(namespace_symlink(t->m, &q, &a), 0);
	tmds_reopen(t);
	assert_int_equal(namespace_readlink(t->m, vol, a.ino, target, &len), 0);
	assert_int_equal(len, VDIFS_PATH_MAX);
	assert_string_equal(target, longest);
	free(longest);

	uint64_t f = tmds_mknod(t, vol, ROOT, "f", S_IFREG | 0644);
	assert_int_equal(namespace_readlink(t->m, vol, f, target, &len), -EINVAL);
}

static int link_rc(struct tmds *t, uint32_t vol, uint64_t ino, uint64_t newparent, const char *name,
		   struct vdifs_attr *a)
{
	struct msg_link_req q = {.vol = vol, .ino = ino, .newparent = newparent, .newname = vb(name)};
	return namespace_link(t->m, &q, a);
}

static void test_links_and_unlink(void **state)
{
	struct tmds *t = *state;
	uint32_t vol = tmds_volume(t, "v", 0, 0);
	uint64_t d = tmds_mknod(t, vol, ROOT, "d", S_IFDIR | 0755);
	uint64_t f = tmds_mknod(t, vol, ROOT, "f", S_IFREG | 0644);
	struct vdifs_attr a, before = tmds_attr(t, vol, f);
	assert_int_equal(link_rc(t, vol, f, d, "f2", &a), 0);
	assert_int_equal(a.nlink, 2);
	assert_int_equal(a.ino, f);
	assert_true(ts_cmp(a.ctime_s, a.ctime_ns, before.ctime_s, before.ctime_ns) > 0);
	assert_int_equal(tmds_lookup(t, vol, d, "f2"), f);
	assert_int_equal(link_rc(t, vol, f, d, "f2", &a), -EEXIST);
	assert_int_equal(link_rc(t, vol, d, ROOT, "dlink", &a), -EPERM);
	assert_int_equal(link_rc(t, vol, f, f, "x", &a), -ENOTDIR);
	assert_int_equal(link_rc(t, vol, 777, ROOT, "x", &a), -ENOENT);
	assert_int_equal(tmds_attr(t, vol, d).nlink, 2); /* a file link is no subdirectory */

	assert_int_equal(namespace_unlink(t->m, vol, ROOT, vb("d")), -EISDIR);
	assert_int_equal(namespace_unlink(t->m, vol, ROOT, vb("nope")), -ENOENT);
	assert_int_equal(namespace_unlink(t->m, vol, ROOT, vb("f")), 0);
	assert_int_equal(tmds_lookup(t, vol, ROOT, "f"), 0);
	a = tmds_attr(t, vol, f);
	assert_int_equal(a.nlink, 1);
	assert_int_equal(namespace_unlink(t->m, vol, d, vb("f2")), 0);
	assert_int_equal(namespace_getattr(t->m, vol, f, &a), -ENOENT);
	/* The layer went with the last name. */
	struct mdstore_txn *x = mdstore_txn_begin(t->m->store);
	struct md_layer l;
	assert_int_equal(mdstore_get_layer(x, before.layer, &l), -ENOENT);
	mdstore_txn_abort(x);

	struct msg_statfs_rep s;
	assert_int_equal(namespace_statfs(t->m, vol, &s), 0);
	assert_int_equal(s.files, 2); /* root and d */
}

static void test_rmdir(void **state)
{
	struct tmds *t = *state;
	uint32_t vol = tmds_volume(t, "v", 0, 0);
	uint64_t d = tmds_mknod(t, vol, ROOT, "d", S_IFDIR | 0755);
	uint64_t e = tmds_mknod(t, vol, d, "e", S_IFDIR | 0755);
	tmds_mknod(t, vol, e, "file", S_IFREG | 0644);
	tmds_mknod(t, vol, ROOT, "f", S_IFREG | 0644);
	struct vdifs_attr a;
	assert_int_equal(namespace_rmdir(t->m, vol, ROOT, vb("f")), -ENOTDIR);
	assert_int_equal(namespace_rmdir(t->m, vol, ROOT, vb("d")), -ENOTEMPTY);
	assert_int_equal(namespace_rmdir(t->m, vol, d, vb("e")), -ENOTEMPTY);
	assert_int_equal(namespace_rmdir(t->m, vol, ROOT, vb(".")), -EINVAL);
	assert_int_equal(namespace_unlink(t->m, vol, e, vb("file")), 0);
	assert_int_equal(tmds_attr(t, vol, d).nlink, 3);
	assert_int_equal(namespace_rmdir(t->m, vol, d, vb("e")), 0);
	assert_int_equal(namespace_getattr(t->m, vol, e, &a), -ENOENT);
	assert_int_equal(tmds_attr(t, vol, d).nlink, 2);
	assert_int_equal(tmds_attr(t, vol, ROOT).nlink, 3);
	assert_int_equal(namespace_rmdir(t->m, vol, ROOT, vb("d")), 0);
	assert_int_equal(tmds_attr(t, vol, ROOT).nlink, 2);
	assert_int_equal(tmds_mknod_rc(t, vol, d, "x", S_IFREG), -ENOENT);
}

static void test_rename_basic(void **state)
{
	struct tmds *t = *state;
	uint32_t vol = tmds_volume(t, "v", 0, 0);
	uint64_t a = tmds_mknod(t, vol, ROOT, "a", S_IFDIR | 0755);
	uint64_t b = tmds_mknod(t, vol, ROOT, "b", S_IFDIR | 0755);
	uint64_t f = tmds_mknod(t, vol, a, "f", S_IFREG | 0644);
	struct vdifs_attr fb = tmds_attr(t, vol, f), ab = tmds_attr(t, vol, a);

	/* Within one directory. */
	assert_int_equal(tmds_rename(t, vol, a, "f", a, "g", 0), 0);
	assert_int_equal(tmds_lookup(t, vol, a, "f"), 0);
	assert_int_equal(tmds_lookup(t, vol, a, "g"), f);
	struct vdifs_attr fa = tmds_attr(t, vol, f), aa = tmds_attr(t, vol, a);
	assert_true(ts_cmp(fa.ctime_s, fa.ctime_ns, fb.ctime_s, fb.ctime_ns) > 0);
	assert_true(ts_cmp(aa.mtime_s, aa.mtime_ns, ab.mtime_s, ab.mtime_ns) > 0);
	assert_int_equal(aa.nlink, 2);

	/* A file across directories. */
	assert_int_equal(tmds_rename(t, vol, a, "g", b, "h", 0), 0);
	assert_int_equal(tmds_lookup(t, vol, b, "h"), f);
	assert_int_equal(tmds_lookup(t, vol, a, "g"), 0);
	assert_int_equal(tmds_attr(t, vol, f).nlink, 1);

	/* A directory across directories moves its "..". */
	uint64_t c = tmds_mknod(t, vol, a, "c", S_IFDIR | 0755);
	assert_int_equal(tmds_attr(t, vol, a).nlink, 3);
	assert_int_equal(tmds_rename(t, vol, a, "c", b, "c", 0), 0);
	assert_int_equal(tmds_attr(t, vol, a).nlink, 2);
	assert_int_equal(tmds_attr(t, vol, b).nlink, 3);
	assert_int_equal(tmds_attr(t, vol, ROOT).nlink, 4);
	/* ... so a later move of b into c is caught as a cycle. */
	assert_int_equal(tmds_rename(t, vol, ROOT, "b", c, "b", 0), -EINVAL);
	assert_int_equal(tmds_rename(t, vol, ROOT, "b", b, "self", 0), -EINVAL);
	uint64_t deep = tmds_mknod(t, vol, c, "deep", S_IFDIR | 0755);
	assert_int_equal(tmds_rename(t, vol, ROOT, "b", deep, "b", 0), -EINVAL);
	assert_int_equal(tmds_rename(t, vol, b, "c", deep, "c2", 0), -EINVAL);
	/* Moving a directory up is fine. */
	assert_int_equal(tmds_rename(t, vol, c, "deep", ROOT, "deep", 0), 0);
	assert_int_equal(tmds_attr(t, vol, c).nlink, 2);
	assert_int_equal(tmds_attr(t, vol, ROOT).nlink, 5);

	assert_int_equal(tmds_rename(t, vol, ROOT, "missing", ROOT, "x", 0), -ENOENT);
	assert_int_equal(tmds_rename(t, vol, ROOT, "a", f, "x", 0), -ENOTDIR);
	assert_int_equal(tmds_rename(t, vol, ROOT, "a", ROOT, "..", 0), -EINVAL);
	assert_int_equal(tmds_rename(t, vol, ROOT, "a", ROOT, "x", 4), -EINVAL);
	assert_int_equal(tmds_rename(t, vol, ROOT, "a", ROOT, "x", 3), -EINVAL);
}

static void test_rename_replace(void **state)
{
	struct tmds *t = *state;
	uint32_t vol = tmds_volume(t, "v", 0, 0);
	uint64_t f1 = tmds_mknod(t, vol, ROOT, "f1", S_IFREG | 0644);
	uint64_t f2 = tmds_mknod(t, vol, ROOT, "f2", S_IFREG | 0644);
	uint64_t d1 = tmds_mknod(t, vol, ROOT, "d1", S_IFDIR | 0755);
	uint64_t d2 = tmds_mknod(t, vol, ROOT, "d2", S_IFDIR | 0755);
	uint64_t d3 = tmds_mknod(t, vol, ROOT, "d3", S_IFDIR | 0755);
	tmds_mknod(t, vol, d3, "inside", S_IFREG | 0644);
	struct vdifs_attr a;

	/* File over file: the old one is freed. */
	assert_int_equal(tmds_rename(t, vol, ROOT, "f1", ROOT, "f2", 0), 0);
	assert_int_equal(tmds_lookup(t, vol, ROOT, "f2"), f1);
	assert_int_equal(namespace_getattr(t->m, vol, f2, &a), -ENOENT);

	/* Mismatched types. */
	assert_int_equal(tmds_rename(t, vol, ROOT, "d1", ROOT, "f2", 0), -ENOTDIR);
	assert_int_equal(tmds_rename(t, vol, ROOT, "f2", ROOT, "d1", 0), -EISDIR);
	/* Directory over a non-empty directory, then over an empty one. */
	assert_int_equal(tmds_rename(t, vol, ROOT, "d1", ROOT, "d3", 0), -ENOTEMPTY);
	assert_int_equal(tmds_attr(t, vol, ROOT).nlink, 5);
	assert_int_equal(tmds_rename(t, vol, ROOT, "d1", ROOT, "d2", 0), 0);
	assert_int_equal(tmds_lookup(t, vol, ROOT, "d2"), d1);
	assert_int_equal(namespace_getattr(t->m, vol, d2, &a), -ENOENT);
	assert_int_equal(tmds_attr(t, vol, ROOT).nlink, 4);

	/* A directory replacing an empty one in another parent. */
	uint64_t e = tmds_mknod(t, vol, d3, "e", S_IFDIR | 0755);
	assert_int_equal(tmds_attr(t, vol, d3).nlink, 3);
	assert_int_equal(tmds_rename(t, vol, ROOT, "d2", d3, "e", 0), 0);
	assert_int_equal(namespace_getattr(t->m, vol, e, &a), -ENOENT);
	assert_int_equal(tmds_attr(t, vol, d3).nlink, 3);
	assert_int_equal(tmds_attr(t, vol, ROOT).nlink, 3);

	/* Two names of one file: nothing happens, both stay. */
	struct msg_link_req lq = {.vol = vol, .ino = f1, .newparent = ROOT, .newname = vb("hard")};
	assert_int_equal(namespace_link(t->m, &lq, &a), 0);
	assert_int_equal(tmds_rename(t, vol, ROOT, "f2", ROOT, "hard", 0), 0);
	assert_int_equal(tmds_lookup(t, vol, ROOT, "f2"), f1);
	assert_int_equal(tmds_lookup(t, vol, ROOT, "hard"), f1);
	assert_int_equal(tmds_attr(t, vol, f1).nlink, 2);

	/* Replacing one of two names of a file keeps the file. */
	uint64_t g = tmds_mknod(t, vol, ROOT, "g", S_IFREG | 0644);
	assert_int_equal(tmds_rename(t, vol, ROOT, "g", ROOT, "hard", 0), 0);
	assert_int_equal(tmds_lookup(t, vol, ROOT, "hard"), g);
	assert_int_equal(tmds_attr(t, vol, f1).nlink, 1);
}

static void test_rename_flags(void **state)
{
	struct tmds *t = *state;
	uint32_t vol = tmds_volume(t, "v", 0, 0);
	uint64_t a = tmds_mknod(t, vol, ROOT, "a", S_IFDIR | 0755);
	uint64_t f = tmds_mknod(t, vol, ROOT, "f", S_IFREG | 0644);
	uint64_t g = tmds_mknod(t, vol, a, "g", S_IFREG | 0644);
	uint64_t sub = tmds_mknod(t, vol, a, "sub", S_IFDIR | 0755);

	assert_int_equal(tmds_rename(t, vol, ROOT, "f", a, "g", NAMESPACE_RENAME_NOREPLACE), -EEXIST);
	assert_int_equal(tmds_rename(t, vol, ROOT, "f", a, "new", NAMESPACE_RENAME_NOREPLACE), 0);
	assert_int_equal(tmds_lookup(t, vol, a, "new"), f);
	assert_int_equal(tmds_rename(t, vol, a, "new", ROOT, "f", 0), 0);

	assert_int_equal(tmds_rename(t, vol, ROOT, "f", a, "none", NAMESPACE_RENAME_EXCHANGE), -ENOENT);
	/* Exchange two files. */
	assert_int_equal(tmds_rename(t, vol, ROOT, "f", a, "g", NAMESPACE_RENAME_EXCHANGE), 0);
	assert_int_equal(tmds_lookup(t, vol, ROOT, "f"), g);
	assert_int_equal(tmds_lookup(t, vol, a, "g"), f);
	/* Exchange a file with a directory in another parent: ".." and link counts follow. */
	assert_int_equal(tmds_attr(t, vol, ROOT).nlink, 3);
	assert_int_equal(tmds_attr(t, vol, a).nlink, 3);
	assert_int_equal(tmds_rename(t, vol, ROOT, "f", a, "sub", NAMESPACE_RENAME_EXCHANGE), 0);
	assert_int_equal(tmds_lookup(t, vol, ROOT, "f"), sub);
	assert_int_equal(tmds_lookup(t, vol, a, "sub"), g);
	assert_int_equal(tmds_attr(t, vol, ROOT).nlink, 4);
	assert_int_equal(tmds_attr(t, vol, a).nlink, 2);
	/* sub's parent is now the root: moving the root's child a into sub
	 * is fine, moving sub into a's subtree as well. */
	assert_int_equal(tmds_rename(t, vol, ROOT, "f", a, "sub-back", 0), 0);
	assert_int_equal(tmds_attr(t, vol, a).nlink, 3);
	/* Exchanging a directory with its own ancestor is a cycle. */
	assert_int_equal(tmds_rename(t, vol, ROOT, "a", a, "sub-back", NAMESPACE_RENAME_EXCHANGE), -EINVAL);
	/* Exchange of a directory with a directory in the same parent. */
	uint64_t b = tmds_mknod(t, vol, ROOT, "b", S_IFDIR | 0755);
	assert_int_equal(tmds_rename(t, vol, ROOT, "a", ROOT, "b", NAMESPACE_RENAME_EXCHANGE), 0);
	assert_int_equal(tmds_lookup(t, vol, ROOT, "a"), b);
	assert_int_equal(tmds_lookup(t, vol, ROOT, "b"), a);
	assert_int_equal(tmds_attr(t, vol, ROOT).nlink, 4);
	assert_int_equal(tmds_lookup(t, vol, a, "sub-back"), sub);
}

static void test_readdir_paging(void **state)
{
	struct tmds *t = *state;
	uint32_t vol = tmds_volume(t, "v", 0, 0);
	uint64_t d = tmds_mknod(t, vol, ROOT, "d", S_IFDIR | 0755);
	enum { N = 50 };
	uint64_t inos[N];
	char name[32];
	for (int i = 0; i < N; i++) {
		int n = (i * 17) % N; /* created out of order */
		snprintf(name, sizeof(name), "e%03d", n);
		inos[n] = tmds_mknod(t, vol, d, name, n % 5 ? S_IFREG | 0644 : S_IFDIR | 0700);
	}
	char after[256] = "";
	int seen = 0, pages = 0;
	bool eof = false;
	while (!eof) {
		struct msg_readdir_req q = {.vol = vol, .ino = d, .after = vb(after), .max = 7};
		struct wbuf items;
		uint32_t count;
		wbuf_init(&items);
		assert_int_equal(namespace_readdir(t->m, &q, &items, &count, &eof), 0);
		pages++;
		assert_true(count <= 7);
		struct wreader r;
		wreader_init(&r, items.data, items.len);
		for (uint32_t i = 0; i < count; i++) {
			struct msg_dirent de;
			msg_dirent_get(&r, &de);
			assert_false(r.err);
			snprintf(name, sizeof(name), "e%03d", seen);
			assert_true(vbytes_eq(de.name, name));
			assert_int_equal(de.attr.ino, inos[seen]);
			assert_int_equal(S_ISDIR(de.attr.mode), seen % 5 == 0 ? 1 : 0);
			seen++;
			vbytes_to_cstr(de.name, after, sizeof(after));
		}
		assert_int_equal(wreader_finish(&r), 0);
		wbuf_free(&items);
		assert_true(pages < 20);
	}
	assert_int_equal(seen, N);
	assert_int_equal(pages, (N + 6) / 7);

	/* An empty directory, and a cursor past the end. */
	uint64_t empty = tmds_mknod(t, vol, ROOT, "empty", S_IFDIR | 0755);
	struct msg_readdir_req q = {.vol = vol, .ino = empty, .max = 0};
	struct wbuf items;
	uint32_t count;
	wbuf_init(&items);
	assert_int_equal(namespace_readdir(t->m, &q, &items, &count, &eof), 0);
	assert_int_equal(count, 0);
	assert_true(eof);
	q = (struct msg_readdir_req){.vol = vol, .ino = d, .after = vb("zzz"), .max = 5};
	assert_int_equal(namespace_readdir(t->m, &q, &items, &count, &eof), 0);
	assert_int_equal(count, 0);
	assert_true(eof);
	/* A cursor that is not an entry starts at the next name. */
	q = (struct msg_readdir_req){.vol = vol, .ino = d, .after = vb("e0105"), .max = 1};
	assert_int_equal(namespace_readdir(t->m, &q, &items, &count, &eof), 0);
	assert_int_equal(count, 1);
	assert_false(eof);
	q.ino = inos[1];
	assert_int_equal(namespace_readdir(t->m, &q, &items, &count, &eof), -ENOTDIR);
	wbuf_free(&items);
}

static int setx(struct tmds *t, uint32_t vol, uint64_t ino, const char *name, const char *value, uint32_t flags)
{
	struct msg_setxattr_req q = {.vol = vol, .ino = ino, .name = vb(name), .value = vb(value), .flags = flags};
	return namespace_setxattr(t->m, &q);
}

static void test_xattrs(void **state)
{
	struct tmds *t = *state;
	uint32_t vol = tmds_volume(t, "v", 0, 0);
	uint64_t f = tmds_mknod(t, vol, ROOT, "f", S_IFREG | 0644);
	struct wbuf v;
	wbuf_init(&v);
	assert_int_equal(namespace_getxattr(t->m, vol, f, vb("user.a"), &v), -ENODATA);
	assert_int_equal(setx(t, vol, f, "user.a", "one", NAMESPACE_XATTR_REPLACE), -ENODATA);
	assert_int_equal(setx(t, vol, f, "user.a", "one", NAMESPACE_XATTR_CREATE), 0);
	assert_int_equal(setx(t, vol, f, "user.a", "two", NAMESPACE_XATTR_CREATE), -EEXIST);
	assert_int_equal(setx(t, vol, f, "user.a", "three", NAMESPACE_XATTR_REPLACE), 0);
	assert_int_equal(setx(t, vol, f, "security.selinux", "", 0), 0);
	assert_int_equal(setx(t, vol, f, "trusted.b", "bee", 0), 0);
	assert_int_equal(setx(t, vol, f, "", "x", 0), -EINVAL);
	assert_int_equal(setx(t, vol, f, "user.c", "x", 3), -EINVAL);
	assert_int_equal(setx(t, vol, 4242, "user.c", "x", 0), -ENOENT);

	assert_int_equal(namespace_getxattr(t->m, vol, f, vb("user.a"), &v), 0);
	assert_int_equal(v.len, 5);
	assert_memory_equal(v.data, "three", 5);
	wbuf_reset(&v);
	assert_int_equal(namespace_getxattr(t->m, vol, f, vb("security.selinux"), &v), 0);
	assert_int_equal(v.len, 0);

	tmds_reopen(t);
	wbuf_reset(&v);
	assert_int_equal(namespace_listxattr(t->m, vol, f, &v), 0);
	const char want[] = "security.selinux\0trusted.b\0user.a\0";
	assert_int_equal(v.len, sizeof(want) - 1);
	assert_memory_equal(v.data, want, sizeof(want) - 1);

	assert_int_equal(namespace_removexattr(t->m, vol, f, vb("trusted.b")), 0);
	assert_int_equal(namespace_removexattr(t->m, vol, f, vb("trusted.b")), -ENODATA);
	wbuf_reset(&v);
	assert_int_equal(namespace_listxattr(t->m, vol, f, &v), 0);
	assert_int_equal(v.len, sizeof("security.selinux\0user.a\0") - 1);

	/* A 64 KiB value round-trips; xattrs go with the inode. */
	char *big = malloc(VDIFS_XATTR_MAX + 1);
	memset(big, 'v', VDIFS_XATTR_MAX);
	big[VDIFS_XATTR_MAX] = '\0';
	assert_int_equal(setx(t, vol, f, "user.big", big, 0), 0);
	wbuf_reset(&v);
	assert_int_equal(namespace_getxattr(t->m, vol, f, vb("user.big"), &v), 0);
	assert_int_equal(v.len, VDIFS_XATTR_MAX);
	free(big);
	assert_int_equal(namespace_unlink(t->m, vol, ROOT, vb("f")), 0);
	struct mdstore_key p;
	struct mdstore_iter *it;
	const uint8_t *key, *val;
	size_t kl, vl;
	mdstore_key_xattr(&p, vol, f, NULL, 0);
	assert_int_equal(mdstore_iter_open(t->m->store, &p, NULL, &it), 0);
	assert_int_equal(mdstore_iter_next(it, &key, &kl, &val, &vl), 0);
	mdstore_iter_close(it);
	wbuf_free(&v);
}

static bool orphan_marked(struct tmds *t, uint32_t vol, uint64_t ino)
{
	struct mdstore_txn *x = mdstore_txn_begin(t->m->store);
	struct mdstore_key k;
	mdstore_key_orphan(&k, vol, ino);
	int rc = mdstore_txn_exists(x, &k);
	mdstore_txn_abort(x);
	return rc == 0;
}

static void test_orphans(void **state)
{
	struct tmds *t = *state;
	uint32_t ds = tmds_add_ds(t, "u", 9401, 1ull << 40);
	uint32_t vol = tmds_volume(t, "v", 1 << 20, 1);
	uint64_t f = tmds_mknod(t, vol, ROOT, "f", S_IFREG | 0644);
	uint64_t chunk;
	assert_int_equal(tmds_alloc(t, vol, f, 0, &chunk, NULL, NULL), 0);
	struct session *s1 = session_new(t->m->sessions), *s2 = session_new(t->m->sessions);
	assert_int_not_equal(s1->id, s2->id);
	struct vdifs_attr a;

	/* Open twice on s1, once on s2; unlink keeps it as an orphan. */
	assert_int_equal(namespace_open(t->m, s1, vol, f, false, &a), 0);
	assert_int_equal(namespace_open(t->m, s1, vol, f, false, &a), 0);
	assert_int_equal(namespace_open(t->m, s2, vol, f, false, &a), 0);
	assert_int_equal(namespace_open(t->m, s2, vol, 999, false, &a), -ENOENT);
	assert_int_equal(namespace_unlink(t->m, vol, ROOT, vb("f")), 0);
	assert_int_equal(tmds_lookup(t, vol, ROOT, "f"), 0);
	a = tmds_attr(t, vol, f);
	assert_int_equal(a.nlink, 0);
	assert_true(orphan_marked(t, vol, f));
	assert_true(tmds_chunk_exists(t, chunk));

	assert_int_equal(namespace_release(t->m, s2, vol, f), 0);
	assert_int_equal(namespace_release(t->m, s2, vol, f), -EBADF);
	assert_int_equal(namespace_release(t->m, s1, vol, f), 0);
	assert_true(tmds_chunk_exists(t, chunk));
	/* Closing the session drops its last open: freed. */
	namespace_session_close(t->m, s1);
	assert_int_equal(namespace_getattr(t->m, vol, f, &a), -ENOENT);
	assert_false(orphan_marked(t, vol, f));
	assert_false(tmds_chunk_exists(t, chunk));
	assert_true(tmds_gc_queued(t, ds, chunk));

	/* An orphan made by rename is freed at its last release. */
	uint64_t g = tmds_mknod(t, vol, ROOT, "g", S_IFREG | 0644);
	assert_int_equal(namespace_open(t->m, s2, vol, g, false, &a), 0);
	assert_int_equal(tmds_rename(t, vol, ROOT, "g", ROOT, "g2", 0), 0);
	uint64_t h = tmds_mknod(t, vol, ROOT, "h", S_IFREG | 0644);
	/* Replacing an open file by rename also makes an orphan. */
	assert_int_equal(tmds_rename(t, vol, ROOT, "h", ROOT, "g2", 0), 0);
	assert_true(orphan_marked(t, vol, g));
	assert_int_equal(tmds_attr(t, vol, g).nlink, 0);
	assert_int_equal(namespace_release(t->m, s2, vol, g), 0);
	assert_int_equal(namespace_getattr(t->m, vol, g, &a), -ENOENT);
	assert_int_equal(tmds_lookup(t, vol, ROOT, "g2"), h);

	/* Orphans left by a dead MDS are freed at the next start. */
	assert_int_equal(namespace_open(t->m, s2, vol, h, false, &a), 0);
	assert_int_equal(namespace_unlink(t->m, vol, ROOT, vb("g2")), 0);
	assert_true(orphan_marked(t, vol, h));
	tmds_reopen(t); /* the sessions are gone with the old state */
	assert_int_equal(namespace_getattr(t->m, vol, h, &a), -ENOENT);
	assert_false(orphan_marked(t, vol, h));

	struct msg_statfs_rep st;
	assert_int_equal(namespace_statfs(t->m, vol, &st), 0);
	assert_int_equal(st.files, 1);
}

static void test_statfs(void **state)
{
	struct tmds *t = *state;
	uint32_t vol = tmds_volume(t, "v", 0, 0);
	struct msg_statfs_rep s;
	assert_int_equal(namespace_statfs(t->m, vol, &s), 0);
	assert_int_equal(s.total, 0);
	assert_int_equal(s.files, 1);
	assert_int_equal(s.bsize, 4096);
	assert_int_equal(s.namemax, 255);
	tmds_add_ds(t, "a", 1, 100);
	tmds_add_ds(t, "b", 2, 50);
	tmds_mknod(t, vol, ROOT, "x", S_IFREG | 0644);
	assert_int_equal(namespace_statfs(t->m, vol, &s), 0);
	assert_int_equal(s.total, 300);
	assert_int_equal(s.avail, 150);
	assert_int_equal(s.free, 150);
	assert_int_equal(s.files, 2);
	t->now_ms += 10000; /* both down: nothing counted */
	assert_int_equal(namespace_statfs(t->m, vol, &s), 0);
	assert_int_equal(s.total, 0);
	assert_int_equal(namespace_statfs(t->m, vol + 7, &s), -ENOENT);
}

/* A tree made, reopened, and found whole. */
static void test_persistence(void **state)
{
	struct tmds *t = *state;
	uint32_t vol = tmds_volume(t, "v", 0, 0);
	uint64_t d = tmds_mknod(t, vol, ROOT, "d", S_IFDIR | 0750);
	uint64_t e = tmds_mknod(t, vol, d, "e", S_IFDIR | 0750);
	uint64_t f = tmds_mknod(t, vol, e, "f", S_IFREG | 0600);
	struct msg_link_req lq = {.vol = vol, .ino = f, .newparent = ROOT, .newname = vb("f-link")};
	struct vdifs_attr a;
	assert_int_equal(namespace_link(t->m, &lq, &a), 0);
	tmds_reopen(t);
	assert_int_equal(tmds_lookup(t, vol, ROOT, "d"), d);
	assert_int_equal(tmds_lookup(t, vol, d, "e"), e);
	assert_int_equal(tmds_lookup(t, vol, e, "f"), f);
	assert_int_equal(tmds_lookup(t, vol, ROOT, "f-link"), f);
	assert_int_equal(tmds_attr(t, vol, f).nlink, 2);
	assert_int_equal(tmds_attr(t, vol, d).nlink, 3);
	assert_int_equal(tmds_attr(t, vol, d).mode, S_IFDIR | 0750);
	/* New inode numbers continue after the old ones. */
	uint64_t g = tmds_mknod(t, vol, ROOT, "g", S_IFREG | 0600);
	assert_true(g > f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_mknod_types, tmds_setup, tmds_teardown),
		cmocka_unit_test_setup_teardown(test_names, tmds_setup, tmds_teardown),
		cmocka_unit_test_setup_teardown(test_setattr, tmds_setup, tmds_teardown),
		cmocka_unit_test_setup_teardown(test_symlink_readlink, tmds_setup, tmds_teardown),
		cmocka_unit_test_setup_teardown(test_links_and_unlink, tmds_setup, tmds_teardown),
		cmocka_unit_test_setup_teardown(test_rmdir, tmds_setup, tmds_teardown),
		cmocka_unit_test_setup_teardown(test_rename_basic, tmds_setup, tmds_teardown),
		cmocka_unit_test_setup_teardown(test_rename_replace, tmds_setup, tmds_teardown),
		cmocka_unit_test_setup_teardown(test_rename_flags, tmds_setup, tmds_teardown),
		cmocka_unit_test_setup_teardown(test_readdir_paging, tmds_setup, tmds_teardown),
		cmocka_unit_test_setup_teardown(test_xattrs, tmds_setup, tmds_teardown),
		cmocka_unit_test_setup_teardown(test_orphans, tmds_setup, tmds_teardown),
		cmocka_unit_test_setup_teardown(test_statfs, tmds_setup, tmds_teardown),
		cmocka_unit_test_setup_teardown(test_persistence, tmds_setup, tmds_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
