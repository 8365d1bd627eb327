/* daemon: shared server start-up (see daemon.h). */
#include "daemon.h"

#include "log.h"

#include <errno.h>
#include <event2/event.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *daemon_prog = "vdifs";

void daemon_init(const char *prog)
{
	daemon_prog = prog;
	log_init(prog, LOG_INFO);
}

void daemon_die(const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, "%s: ", daemon_prog);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

void daemon_setup_log(const char *level, const char *file)
{
	enum log_level l;
	if (log_level_parse(level, &l) < 0)
		daemon_die("--log-level: '%s' is not error, warn, info or debug", level);
	log_init(daemon_prog, l);
	int rc = file ? log_open(file) : 0;
	if (rc < 0)
		daemon_die("--log-file: %s: %s", file, strerror(-rc));
}

void daemon_load_auth(const char *key_file, bool insecure, struct rpc_auth *auth)
{
	char err[512];
	memset(auth, 0, sizeof(*auth));
	if (key_file && insecure)
		daemon_die("--insecure: conflicts with --key-file (choose one)");
	if (!key_file && !insecure)
		daemon_die("cluster key: none given (use --key-file FILE, or --insecure to run without authentication)");
	if (key_file && rpc_auth_load_key(auth, key_file, err, sizeof(err)) < 0)
		daemon_die("--key-file: %s", err);
}

void daemon_check_max_payload(uint64_t max_payload)
{
	if (max_payload < 65536 + 4096 || max_payload > (256u << 20))
		daemon_die("--max-payload: %llu is outside 68K..256M", (unsigned long long)max_payload);
}

void daemon_write_pid_file(const char *path)
{
	FILE *f = fopen(path, "w");
	if (!f)
		daemon_die("--pid-file: %s: %s", path, strerror(errno));
	if (fprintf(f, "%ld\n", (long)getpid()) < 0 || fclose(f) != 0)
		daemon_die("--pid-file: %s: %s", path, strerror(errno));
}

static void stop_cb(evutil_socket_t sig, short what, void *arg)
{
	(void)what;
	log_info("signal %d: shutting down", (int)sig);
	event_base_loopbreak(arg);
}

void daemon_stop_on_signals(struct event_base *base, struct event *out[2])
{
	signal(SIGPIPE, SIG_IGN);
	out[0] = evsignal_new(base, SIGTERM, stop_cb, base);
	out[1] = evsignal_new(base, SIGINT, stop_cb, base);
	if (!out[0] || !out[1] || evsignal_add(out[0], NULL) < 0 || evsignal_add(out[1], NULL) < 0)
		daemon_die("signal handlers: cannot install");
}
