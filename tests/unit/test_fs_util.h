/*
 * test_fs_util: small file helpers shared by the unit tests that keep data
 * in temporary directories (data-server stores, the MDS's LevelDB).
 */
#ifndef TEST_FS_UTIL_H
#define TEST_FS_UTIL_H

#include <fcntl.h>
#include <ftw.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

static inline int test_rm_cb(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(path);
}

/* Removes the directory tree at root (what a test made); errors ignored. */
static inline void test_rm_tree(const char *root) { nftw(root, test_rm_cb, 16, FTW_DEPTH | FTW_PHYS); }

static inline bool test_all_zero(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i])
			return false;
	return true;
}

#ifdef VDIFS_CHUNKSTORE_H
/* Bytes the file of chunk id occupies on disk. */
static inline uint64_t test_chunk_file_bytes(struct chunkstore *cs, uint64_t id)
{
	char path[4096];
	struct stat st;
	assert_int_equal(chunkstore_path(cs, id, path, sizeof(path)), 0);
	assert_int_equal(stat(path, &st), 0);
	return (uint64_t)st.st_blocks * 512;
}

/* Flips one byte of chunk id's file at off (a disk returning bad bytes). */
static inline void test_flip_chunk_byte(struct chunkstore *cs, uint64_t id, uint64_t off)
{
	char path[4096];
	uint8_t b;
	assert_int_equal(chunkstore_path(cs, id, path, sizeof(path)), 0);
	int fd = open(path, O_RDWR);
	assert_true(fd >= 0);
	assert_int_equal(pread(fd, &b, 1, (off_t)off), 1);
	b ^= 0x5a;
	assert_int_equal(pwrite(fd, &b, 1, (off_t)off), 1);
	close(fd);
}
#endif

#endif
