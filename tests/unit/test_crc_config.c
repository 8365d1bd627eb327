/* Unit tests for crc (known CRC32C vectors, masking) and config parsing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <fcntl.h>

#include "config.h"
#include "crc.h"
#include "log.h"

static void test_crc32c_vectors(void **state)
{
	(void)state;
	assert_int_equal(crc32c(0, "123456789", 9), 0xe3069283u);
	uint8_t zeros[32] = {0}, ones[32];
	memset(ones, 0xff, sizeof(ones));
	/* RFC 3720 B.4 test vectors. */
	assert_int_equal(crc32c(0, zeros, 32), 0x8a9136aau);
	assert_int_equal(crc32c(0, ones, 32), 0x62a8ab43u);
	assert_int_equal(crc32c_zeros(32), 0x8a9136aau);
	/* Incremental equals one shot. */
	assert_int_equal(crc32c(crc32c(0, "1234", 4), "56789", 5), 0xe3069283u);
	for (uint32_t v = 0; v < 100000; v += 7919)
		assert_int_equal(crc32c_unmask(crc32c_mask(v)), v);
	assert_int_not_equal(crc32c_mask(0xe3069283u), 0xe3069283u);
}

/* crc32c_replace against a full recomputation, random ranges of random
 * messages (lengths up to and past one 64 KiB block), zeros on either side. */
static void test_crc32c_replace(void **state)
{
	(void)state;
	enum { MAX = 65536 + 4096 };
	uint8_t *m = malloc(MAX), *nw = malloc(MAX), *was = malloc(MAX);
	assert_non_null(m);
	assert_non_null(nw);
	assert_non_null(was);
	uint64_t r = 0x9e3779b97f4a7c15ull;
	for (size_t i = 0; i < MAX; i++) {
		r = r * 6364136223846793005ull + 1442695040888963407ull;
		m[i] = (uint8_t)(r >> 56);
	}
	for (int iter = 0; iter < 3000; iter++) {
		r = r * 6364136223846793005ull + 1442695040888963407ull;
		size_t n = iter < 4 ? (size_t[]){1, 4096, 65536, MAX}[iter] : 1 + (size_t)(r >> 33) % MAX;
		r = r * 6364136223846793005ull + 1442695040888963407ull;
		size_t off = (size_t)(r >> 33) % (n + 1);
		r = r * 6364136223846793005ull + 1442695040888963407ull;
		size_t len = (iter % 5 == 0) ? n - off : (size_t)(r >> 33) % (n - off + 1);
		int mode = iter % 3; /* 0: new bytes, 1: new zeros, 2: old zeros */
		uint32_t before = crc32c(0, m, n);
		memcpy(was, m + off, len);
		for (size_t i = 0; i < len; i++)
			nw[i] = (uint8_t)(m[off + i] * 31u + (uint8_t)iter + 1u);
		if (mode == 2) {
			memset(m + off, 0, len); /* the old range was zeros */
			before = crc32c(0, m, n);
		}
		memcpy(m + off, mode == 1 ? (const uint8_t *)memset(nw, 0, len) : nw, len);
		uint32_t want = crc32c(0, m, n);
		uint32_t got = crc32c_replace(before, n, off, mode == 2 ? NULL : was, mode == 1 ? NULL : nw, len);
		if (got != want)
			fail_msg("n %zu off %zu len %zu mode %d: %08x, want %08x", n, off, len, mode, got, want);
	}
	/* The CRC of n zeros patched to hold "123456789" at the front. */
	uint32_t z = crc32c_zeros(9);
	assert_int_equal(crc32c_replace(z, 9, 0, NULL, "123456789", 9), 0xe3069283u);
	/* A wrong starting CRC stays wrong: the error is carried, not repaired. */
	uint32_t good = crc32c(0, m, 4096);
	assert_int_not_equal(crc32c_replace(good ^ 1, 4096, 100, m + 100, "abcd", 4),
			     crc32c_replace(good, 4096, 100, m + 100, "abcd", 4));
	free(m);
	free(nw);
	free(was);
}

static char *s_opt;
static uint32_t u32_opt;
static uint64_t size_opt;
static bool bool_opt;
static const struct config_opt opts[] = {
	{"name", CONFIG_STR, &s_opt, "a name"},
	{"count", CONFIG_U32, &u32_opt, "a count"},
	{"chunk_size", CONFIG_SIZE, &size_opt, "a size"},
	{"insecure", CONFIG_BOOL, &bool_opt, "a flag"},
	{NULL, 0, NULL, NULL},
};

static void test_sizes(void **state)
{
	(void)state;
	uint64_t v;
	assert_int_equal(config_parse_size("64M", &v), 0);
	assert_true(v == 64ull << 20);
	assert_int_equal(config_parse_size("1GiB", &v), 0);
	assert_true(v == 1ull << 30);
	assert_int_equal(config_parse_size("4096", &v), 0);
	assert_true(v == 4096);
	assert_int_equal(config_parse_size("12Q", &v), -EINVAL);
	assert_int_equal(config_parse_size("-1", &v), -EINVAL);
	assert_int_equal(config_parse_size("99999999999T", &v), -EINVAL);
}

static void test_file_then_args(void **state)
{
	(void)state;
	char path[] = "/tmp/vdifs-config-XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	const char *text = "# comment\n  name = alpha \ncount=7\nchunk_size = 2M\n\n";
	assert_int_equal(write(fd, text, strlen(text)), (int)strlen(text));
	close(fd);
	char cfgarg[64];
	snprintf(cfgarg, sizeof(cfgarg), "--config=%s", path);
	char *argv[] = {"prog", cfgarg, "--count", "9", "--insecure", "rest", NULL};
	int first;
	bool help;
	char err[256];
	assert_int_equal(config_parse_args(opts, 6, argv, &first, &help, err, sizeof(err)), 0);
	assert_string_equal(s_opt, "alpha");
	assert_int_equal(u32_opt, 9); /* the command line wins over the file */
	assert_true(size_opt == 2u << 20);
	assert_true(bool_opt);
	assert_int_equal(first, 5);
	assert_false(help);

	/* Errors name the file, the line and the key. */
	fd = open(path, O_WRONLY | O_TRUNC);
	const char *bad = "name = x\nbogus = 1\n";
	assert_int_equal(write(fd, bad, strlen(bad)), (int)strlen(bad));
	close(fd);
	assert_int_equal(config_load_file(opts, path, err, sizeof(err)), -ENOENT);
	assert_non_null(strstr(err, ":2: unknown setting 'bogus'"));
	fd = open(path, O_WRONLY | O_TRUNC);
	const char *badval = "count = lots\n";
	assert_int_equal(write(fd, badval, strlen(badval)), (int)strlen(badval));
	close(fd);
	assert_int_equal(config_load_file(opts, path, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "bad value 'lots' for 'count'"));
	unlink(path);
	assert_true(config_load_file(opts, path, err, sizeof(err)) == -ENOENT);

	char *argv2[] = {"prog", "--nope=1", NULL};
	assert_int_equal(config_parse_args(opts, 2, argv2, &first, &help, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "unknown option"));
	char *argv3[] = {"prog", "--count", NULL};
	assert_int_equal(config_parse_args(opts, 2, argv3, &first, &help, err, sizeof(err)), -EINVAL);
	char *argv4[] = {"prog", "--count=5000000000", NULL};
	assert_int_equal(config_parse_args(opts, 2, argv4, &first, &help, err, sizeof(err)), -EINVAL);
}

static void test_log_levels(void **state)
{
	(void)state;
	enum log_level l;
	assert_int_equal(log_level_parse("debug", &l), 0);
	assert_int_equal(l, LOG_DEBUG);
	assert_int_equal(log_level_parse("loud", &l), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_crc32c_vectors),
		cmocka_unit_test(test_crc32c_replace),
		cmocka_unit_test(test_sizes),
		cmocka_unit_test(test_file_then_args),
		cmocka_unit_test(test_log_levels),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
