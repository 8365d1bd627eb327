/* Unit tests for libvdifs/daemon: start-up checks, in child processes where
 * they exit. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "daemon.h"

/* Runs fn in a child and returns its exit status (stderr silenced). */
static int exit_status_of(void (*fn)(void))
{
	pid_t pid = fork();
	if (pid == 0) {
		freopen("/dev/null", "w", stderr);
		fn();
		_exit(0);
	}
	int st = 0;
	waitpid(pid, &st, 0);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void no_key(void) { struct rpc_auth a; daemon_load_auth(NULL, false, &a); }
static void both(void) { struct rpc_auth a; daemon_load_auth("/x", true, &a); }
static void insecure(void) { struct rpc_auth a; daemon_load_auth(NULL, true, &a); }
static void bad_level(void) { daemon_setup_log("chatty", NULL); }
static void good_level(void) { daemon_setup_log("warn", NULL); }
static void small_payload(void) { daemon_check_max_payload(1000); }
static void fine_payload(void) { daemon_check_max_payload(4u << 20); }

static void test_daemon_checks(void **state)
{
	(void)state;
	daemon_init("test");
	assert_int_equal(exit_status_of(no_key), 1);
	assert_int_equal(exit_status_of(both), 1);
	assert_int_equal(exit_status_of(insecure), 0);
	assert_int_equal(exit_status_of(bad_level), 1);
	assert_int_equal(exit_status_of(good_level), 0);
	assert_int_equal(exit_status_of(small_payload), 1);
	assert_int_equal(exit_status_of(fine_payload), 0);

	char key[] = "/tmp/vdifs-key-XXXXXX";
	int fd = mkstemp(key);
	close(fd);
	char err[256];
	assert_int_equal(rpc_auth_generate_key(key, err, sizeof(err)), 0);
	struct rpc_auth a;
	daemon_load_auth(key, false, &a);
	assert_int_equal(a.keylen, 32);
	char pid[] = "/tmp/vdifs-pid-XXXXXX";
	fd = mkstemp(pid);
	close(fd);
	daemon_write_pid_file(pid);
	FILE *f = fopen(pid, "r");
	long v = 0;
	assert_int_equal(fscanf(f, "%ld", &v), 1);
	fclose(f);
	assert_int_equal(v, (long)getpid());
	unlink(key);
	unlink(pid);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_daemon_checks),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
