/*
 * test_client_capcache: the mount's negative cache of security.capability:
 * known absent after the MDS said so, for its time to live only, forgotten
 * on a change through this mount, never with a zero time to live.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <unistd.h>
#include <cmocka.h>

#include "capcache.h"

static void test_absent_until_ttl(void **state)
{
	(void)state;
	struct capcache cc;
	capcache_init(&cc, 200);
	assert_false(capcache_absent(&cc, 42));
	capcache_note_absent(&cc, 42);
	assert_true(capcache_absent(&cc, 42));
	assert_false(capcache_absent(&cc, 43));
	usleep(300 * 1000);
	assert_false(capcache_absent(&cc, 42)); /* expired: ask again */
	capcache_destroy(&cc);
}

static void test_forget_and_collisions(void **state)
{
	(void)state;
	struct capcache cc;
	capcache_init(&cc, 10000);
	capcache_note_absent(&cc, 7);
	capcache_forget(&cc, 8); /* another inode: no effect */
	assert_true(capcache_absent(&cc, 7));
	capcache_forget(&cc, 7);
	assert_false(capcache_absent(&cc, 7));
	/* Many inodes: each is absent only if its own slot still holds it. */
	for (uint64_t i = 1; i <= 5000; i++)
		capcache_note_absent(&cc, i);
	unsigned held = 0;
	for (uint64_t i = 1; i <= 5000; i++)
		held += capcache_absent(&cc, i);
	assert_true(held > 0 && held <= CAPCACHE_SLOTS);
	assert_true(capcache_absent(&cc, 5000)); /* the last noted */
	capcache_destroy(&cc);
}

static void test_off(void **state)
{
	(void)state;
	struct capcache cc;
	capcache_init(&cc, 0);
	capcache_note_absent(&cc, 1);
	assert_false(capcache_absent(&cc, 1));
	assert_true(capcache_is_cap("security.capability"));
	assert_false(capcache_is_cap("security.selinux"));
	assert_false(capcache_is_cap("user.vdifs.clone"));
	capcache_destroy(&cc);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_absent_until_ttl),
		cmocka_unit_test(test_forget_and_collisions),
		cmocka_unit_test(test_off),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
