/* Unit tests for tools/toolutil: cluster.conf round trip, sizes, JSON strings. */
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

#include "toolutil.h"

static void test_cluster_conf_round_trip(void **state)
{
	(void)state;
	char dir[] = "/tmp/vdifs-toolutil-XXXXXX";
	assert_non_null(mkdtemp(dir));
	struct tool_cluster a = {.insecure = false, .nds = 5, .replicas = 3, .port = 12340,
				 .chunk_size = 16u << 20};
	snprintf(a.mds, sizeof(a.mds), "127.0.0.1:12340");
	snprintf(a.key_file, sizeof(a.key_file), "%s/cluster.key", dir);
	snprintf(a.volume, sizeof(a.volume), "desk");
	snprintf(a.mnt, sizeof(a.mnt), "%s/mnt", dir);
	assert_int_equal(tool_cluster_save(&a, dir), 0);
	struct tool_cluster b;
	assert_int_equal(tool_cluster_load(&b, dir, true), 0);
	assert_string_equal(b.mds, a.mds);
	assert_string_equal(b.key_file, a.key_file);
	assert_string_equal(b.volume, "desk");
	assert_string_equal(b.mnt, a.mnt);
	assert_int_equal(b.nds, 5);
	assert_int_equal(b.replicas, 3);
	assert_int_equal(b.port, 12340);
	assert_true(b.chunk_size == 16u << 20);
	assert_false(b.insecure);

	struct tool_target t;
	assert_int_equal(tool_target_from_cluster_dir(&t, dir), 0);
	assert_string_equal(t.mds, "127.0.0.1:12340");
	assert_string_equal(t.key_file, a.key_file);

	/* An incomplete file is refused; a missing one is ENOENT. */
	char path[4200];
	snprintf(path, sizeof(path), "%s/cluster.conf", dir);
	FILE *f = fopen(path, "w");
	fputs("mds = 1.2.3.4:5\n", f);
	fclose(f);
	assert_int_equal(tool_cluster_load(&b, dir, true), -EINVAL);
	unlink(path);
	assert_int_equal(tool_cluster_load(&b, dir, true), -ENOENT);
	rmdir(dir);
}

static void test_human_size(void **state)
{
	(void)state;
	char buf[32];
	assert_string_equal(tool_human_size(0, buf, sizeof(buf)), "0 B");
	assert_string_equal(tool_human_size(1023, buf, sizeof(buf)), "1023 B");
	assert_string_equal(tool_human_size(64u << 20, buf, sizeof(buf)), "64.0 MiB");
	assert_string_equal(tool_human_size(3ull << 40, buf, sizeof(buf)), "3.0 TiB");
}

static void test_json_string(void **state)
{
	(void)state;
	char *out = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&out, &len);
	tool_json_string(f, "a\"b\\c\n\x01");
	fclose(f);
	assert_string_equal(out, "\"a\\\"b\\\\c\\u000a\\u0001\"");
	free(out);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cluster_conf_round_trip),
		cmocka_unit_test(test_human_size),
		cmocka_unit_test(test_json_string),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
