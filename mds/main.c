/*
 * vdifs-mds: the metadata server daemon.  Parses the configuration, opens the
 * metadata store (DIR/meta.ldb), serves the MDS protocol on one libevent loop
 * (handlers.c), watches data-server liveness on a timer and exits cleanly on
 * SIGTERM/SIGINT.  Everything runs on the loop thread: operations are short
 * synchronous LevelDB transactions and need no locking.
 */
#include "config.h"
#include "daemon.h"
#include "dsreg.h"
#include "handlers.h"
#include "log.h"
#include "mds.h"
#include "recovery.h"
#include "rpc.h"

#include <errno.h>
#include <event2/event.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define PROG "vdifs-mds"
/* Descriptors besides connections: LevelDB's table cache (its default
 * max_open_files), its log and lock files, the log, the event loop. */
#define MDS_OTHER_FDS (1000 + 64)

struct mds_opts {
	char *listen;
	char *data_dir;
	char *key_file;
	bool insecure;
	uint32_t heartbeat_ms;
	uint32_t ds_timeout_ms;
	uint32_t recovery_streams;
	uint64_t ds_reserve;
	uint64_t max_payload;
	uint32_t max_conns;
	uint32_t idle_timeout_ms;
	char *log_level;
	char *log_file;
	char *pid_file;
};

/* mkdir -p with mode 0700 for the directories it makes.  0 or -errno. */
static int make_dirs(const char *path)
{
	char buf[4096];
	if (snprintf(buf, sizeof(buf), "%s", path) >= (int)sizeof(buf))
		return -ENAMETOOLONG;
	for (char *p = buf + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(buf, 0700) < 0 && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	if (mkdir(buf, 0700) < 0 && errno != EEXIST)
		return -errno;
	struct stat st;
	if (stat(buf, &st) < 0)
		return -errno;
	return S_ISDIR(st.st_mode) ? 0 : -ENOTDIR;
}

static void sweep_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct mds *m = arg;
	dsreg_sweep(m->dsreg);
	recovery_tick(m->recovery); /* logs its own errors */
}

int main(int argc, char **argv)
{
	daemon_init(PROG);
	struct mds_opts o = {
		.listen = "127.0.0.1:9400",
		.heartbeat_ms = DSREG_DEFAULT_HEARTBEAT_MS,
		.ds_timeout_ms = DSREG_DEFAULT_TIMEOUT_MS,
		.recovery_streams = RECOVERY_DEFAULT_STREAMS,
		.ds_reserve = DSREG_DEFAULT_MIN_AVAIL,
		.max_payload = VDIFS_DEFAULT_MAX_PAYLOAD,
		.max_conns = 1024,
		.idle_timeout_ms = 30000,
		.log_level = "info",
	};
	const struct config_opt opts[] = {
		{"listen", CONFIG_STR, &o.listen, "HOST:PORT to serve clients, data servers and admins on"},
		{"data_dir", CONFIG_STR, &o.data_dir, "directory for the metadata database (DIR/meta.ldb)"},
		{"key_file", CONFIG_STR, &o.key_file, "cluster key file"},
		{"insecure", CONFIG_BOOL, &o.insecure, "run without a cluster key (no authentication)"},
		{"heartbeat_ms", CONFIG_U32, &o.heartbeat_ms, "heartbeat period asked of data servers"},
		{"ds_timeout_ms", CONFIG_U32, &o.ds_timeout_ms, "a data server silent this long is down"},
		{"ds_reserve", CONFIG_SIZE, &o.ds_reserve,
		 "new chunks go only to data servers with more free space than this"},
		{"recovery_streams", CONFIG_U32, &o.recovery_streams,
		 "re-replication copies at a time per source data server (their rate: recovery_mb_s on the servers)"},
		{"max_payload", CONFIG_SIZE, &o.max_payload, "largest request frame accepted"},
		{"max_conns", CONFIG_U32, &o.max_conns, "most connections at once (unauthenticated ones give way to new ones)"},
		{"idle_timeout_ms", CONFIG_U32, &o.idle_timeout_ms, "close a connection stalled mid-frame, in the handshake or not reading replies this long"},
		{"log_level", CONFIG_STR, &o.log_level, "error, warn, info or debug"},
		{"log_file", CONFIG_STR, &o.log_file, "append the log here instead of stderr"},
		{"pid_file", CONFIG_STR, &o.pid_file, "write the process id here once listening"},
		{NULL, 0, NULL, NULL},
	};
	char err[512];
	int first_arg;
	bool help;
	if (config_parse_args(opts, argc, argv, &first_arg, &help, err, sizeof(err)) < 0)
		daemon_die("%s", err);
	if (help) {
		config_print_help(opts, "usage: " PROG " --data-dir DIR (--key-file FILE | --insecure) [OPTIONS]\n\n"
					"Serves the namespace, volumes and chunk layouts of a vdifs cluster.");
		return 0;
	}
	if (first_arg < argc)
		daemon_die("%s: unexpected argument (see --help)", argv[first_arg]);

	daemon_setup_log(o.log_level, o.log_file);

	char host[256];
	uint16_t port;
	if (rpc_parse_hostport(o.listen, host, &port) < 0)
		daemon_die("--listen: '%s' is not HOST:PORT", o.listen);
	daemon_check_max_payload(o.max_payload);
	if (o.heartbeat_ms == 0 || o.ds_timeout_ms <= o.heartbeat_ms)
		daemon_die("--ds-timeout-ms: %u must exceed --heartbeat-ms (%u), which must be at least 1", o.ds_timeout_ms,
		    o.heartbeat_ms);
	if (o.max_conns == 0)
		daemon_die("--max-conns: must be at least 1");
	uint64_t nofile = rpc_raise_nofile();
	if ((uint64_t)o.max_conns + MDS_OTHER_FDS > nofile) {
		uint32_t fit = nofile > MDS_OTHER_FDS + 16 ? (uint32_t)(nofile - MDS_OTHER_FDS) : 16;
		log_warn("open file limit %llu: max_conns %u (not %u); raise ulimit -n", (unsigned long long)nofile,
			 fit < o.max_conns ? fit : o.max_conns, o.max_conns);
		if (fit < o.max_conns)
			o.max_conns = fit;
	}

	struct rpc_auth auth;
	daemon_load_auth(o.key_file, o.insecure, &auth);

	if (!o.data_dir || !*o.data_dir)
		daemon_die("--data-dir: required (a directory for the metadata database)");
	int rc = make_dirs(o.data_dir);
	if (rc < 0)
		daemon_die("--data-dir: %s: %s", o.data_dir, strerror(-rc));
	char dbpath[4096 + 16];
	snprintf(dbpath, sizeof(dbpath), "%s/meta.ldb", o.data_dir);

	struct mds *m = NULL;
	struct mds_options mo = {.heartbeat_ms = o.heartbeat_ms, .ds_timeout_ms = o.ds_timeout_ms,
				 .recovery_streams = o.recovery_streams};
	if (mds_open(dbpath, &mo, &m, err, sizeof(err)) < 0)
		daemon_die("metadata store: %s", err);
	dsreg_set_min_avail(m->dsreg, o.ds_reserve);

	rpc_global_init();
	struct event_base *base = event_base_new();
	if (!base)
		daemon_die("event loop: cannot create one");
	struct event *stop[2];
	daemon_stop_on_signals(base, stop);
	struct event *sweep = event_new(base, -1, EV_PERSIST, sweep_cb, m);
	struct timeval tv = {.tv_sec = o.heartbeat_ms / 1000, .tv_usec = (o.heartbeat_ms % 1000) * 1000};
	if (!sweep || event_add(sweep, &tv) < 0)
		daemon_die("event loop: cannot install the sweep timer");

	struct handlers *handlers = NULL;
	if (handlers_new(base, m, &handlers) < 0)
		daemon_die("out of memory");

	struct rpc_server_config scfg = {
		.name = "mds",
		.host = host,
		.port = port,
		.max_payload = (uint32_t)o.max_payload,
		.max_conns = o.max_conns,
		.idle_timeout_ms = o.idle_timeout_ms,
		.auth = &auth,
		.handler = handlers_dispatch,
		.on_close = handlers_conn_closed,
		.arg = handlers,
	};
	struct rpc_server *srv = rpc_server_start(base, &scfg, err, sizeof(err));
	if (!srv)
		daemon_die("--listen: %s: %s", o.listen, err);
	if (o.pid_file)
		daemon_write_pid_file(o.pid_file);
	log_info("listening on %s:%u (data in %s, %s)", host, rpc_server_port(srv), dbpath,
		 auth.keylen ? "cluster key required" : "insecure: no authentication");

	event_base_dispatch(base);

	rpc_server_free(srv);
	handlers_free(handlers);
	event_free(sweep);
	event_free(stop[1]);
	event_free(stop[0]);
	event_base_free(base);
	mds_close(m);
	if (o.pid_file)
		unlink(o.pid_file);
	log_info("stopped");
	return 0;
}
