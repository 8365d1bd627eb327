/*
 * vdifs-ds: the data server daemon.  Parses the configuration, opens the
 * chunk store, serves chunk I/O on one libevent loop (handlers.c), keeps the
 * MDS informed (mdslink.c), keeps DIR/ds.stats current (handlers.c) and
 * exits cleanly on SIGTERM/SIGINT.  Disk I/O
 * runs on the loop thread: chunk files are cached open and nothing is synced
 * except on DS_SYNC (whose fdatasync runs on worker threads), so a request
 * costs a few page-cache syscalls.
 */
#include "chunkstore.h"
#include "config.h"
#include "daemon.h"
#include "handlers.h"
#include "log.h"
#include "mdslink.h"
#include "replicate.h"
#include "scrub.h"
#include "rpc.h"

#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#define PROG "vdifs-ds"
#define PEERS_GUESS 64 /* other data servers we forward to, for the fd budget */
#define DS_STATS_FILE "ds.stats" /* counters, in the first data directory (docs/ARCHITECTURE.md) */

struct ds_opts {
	char *listen;
	char *advertise;
	char *mds;
	char *data_dir;
	char *data_dirs;
	char *key_file;
	bool insecure;
	uint64_t max_payload;
	uint32_t max_conns;
	uint32_t idle_timeout_ms;
	uint32_t fwd_timeout_ms;
	uint32_t recovery_mb_s;
	uint32_t scrub_mb_s;
	uint32_t scrub_interval_s;
	uint32_t fd_cache;
	char *log_level;
	char *log_file;
	char *pid_file;
};

/* Splits the comma-separated data_dirs and adds data_dir; dies on none. */
static size_t collect_dirs(const struct ds_opts *o, char **dirs, size_t max)
{
	size_t n = 0;
	if (o->data_dir && *o->data_dir)
		dirs[n++] = o->data_dir;
	if (o->data_dirs) {
		char *list = strdup(o->data_dirs), *save = NULL;
		if (!list)
			daemon_die("out of memory");
		for (char *d = strtok_r(list, ",", &save); d; d = strtok_r(NULL, ",", &save)) {
			while (*d == ' ')
				d++;
			if (!*d)
				continue;
			if (n == max)
				daemon_die("--data-dirs: more than %zu directories", max);
			dirs[n++] = d; /* list is kept for the life of the process */
		}
	}
	if (n == 0)
		daemon_die("--data-dir: required (a directory for chunk files; --data-dirs DIR1,DIR2 for several)");
	return n;
}

/* Takes an exclusive lock on dir/ds.lock (creating dir if needed) so that two
 * servers never share a store; the fd stays open (and locked) until exit. */
static void lock_dir(const char *dir)
{
	char path[4096];
	if (snprintf(path, sizeof(path), "%s/ds.lock", dir) >= (int)sizeof(path))
		daemon_die("%s: path too long", dir);
	if (mkdir(dir, 0755) < 0 && errno != EEXIST)
		daemon_die("data directory: %s: %s", dir, strerror(errno));
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0)
		daemon_die("data directory: %s: %s", path, strerror(errno));
	if (flock(fd, LOCK_EX | LOCK_NB) < 0)
		daemon_die("data directory: %s: %s", dir,
		    errno == EWOULDBLOCK ? "in use by another vdifs-ds (or listed twice)" : strerror(errno));
}

/* As many open files as allowed (chunk files are cached open), and a chunk
 * file cache that leaves room for the connections. */
static void fit_nofile(struct ds_opts *o)
{
	uint64_t nofile = rpc_raise_nofile();
	/* Peers, the MDS link, sync duplicates, logs and spare; the rest is
	 * shared by client connections and cached chunk files. */
	uint64_t spare = 2 * PEERS_GUESS + 64;
	if ((uint64_t)o->fd_cache + o->max_conns + spare <= nofile)
		return;
	uint64_t budget = nofile > spare + 64 ? nofile - spare : 64;
	uint32_t cache = o->fd_cache < budget / 3 ? o->fd_cache : (uint32_t)(budget / 3);
	uint32_t conns = o->max_conns < budget - cache ? o->max_conns : (uint32_t)(budget - cache);
	log_warn("open file limit %llu: chunk file cache %u (not %u), connections %u (not %u); raise ulimit -n",
		 (unsigned long long)nofile, cache, o->fd_cache, conns, o->max_conns);
	o->fd_cache = cache;
	o->max_conns = conns;
}

/* The lease ran out (mdslink.h): requests still on their way to us, from
 * before, must meet a closed socket, not a late answer. */
static void fence(void *arg)
{
	rpc_server_drop_all(arg, "no lease from the MDS: every client and peer must connect again");
}

int main(int argc, char **argv)
{
	daemon_init(PROG);
	struct ds_opts o = {
		.listen = "127.0.0.1:9401",
		.mds = "127.0.0.1:9400",
		.max_payload = VDIFS_DEFAULT_MAX_PAYLOAD,
		.max_conns = 1024,
		.idle_timeout_ms = 30000,
		.fwd_timeout_ms = HANDLERS_FWD_TIMEOUT_DEFAULT_MS,
		.recovery_mb_s = REPLICATE_DEFAULT_MB_S,
		.scrub_mb_s = SCRUB_DEFAULT_MB_S,
		.scrub_interval_s = SCRUB_DEFAULT_INTERVAL_S,
		.fd_cache = CHUNKSTORE_FD_CACHE_DEFAULT,
		.log_level = "info",
	};
	const struct config_opt opts[] = {
		{"listen", CONFIG_STR, &o.listen, "HOST:PORT to serve chunk I/O on"},
		{"advertise", CONFIG_STR, &o.advertise, "HOST:PORT clients and peers reach us at (default: --listen)"},
		{"mds", CONFIG_STR, &o.mds, "HOST:PORT of the metadata server"},
		{"data_dir", CONFIG_STR, &o.data_dir, "directory for chunk files"},
		{"data_dirs", CONFIG_STR, &o.data_dirs, "several directories for chunk files, comma-separated"},
		{"key_file", CONFIG_STR, &o.key_file, "cluster key file"},
		{"insecure", CONFIG_BOOL, &o.insecure, "run without a cluster key (no authentication)"},
		{"max_payload", CONFIG_SIZE, &o.max_payload, "largest request frame accepted"},
		{"max_conns", CONFIG_U32, &o.max_conns, "most connections at once (unauthenticated ones give way to new ones)"},
		{"idle_timeout_ms", CONFIG_U32, &o.idle_timeout_ms, "close a connection stalled mid-frame, in the handshake or not reading replies this long"},
		{"fwd_timeout_ms", CONFIG_U32, &o.fwd_timeout_ms, "fail a forwarded write a replica leaves unanswered this long"},
		{"recovery_mb_s", CONFIG_U32, &o.recovery_mb_s,
		 "MiB/s this server sends when copying chunks to others for re-replication (all copies together)"},
		{"scrub_mb_s", CONFIG_U32, &o.scrub_mb_s, "MiB/s of chunk data the background scrubber reads"},
		{"scrub_interval_s", CONFIG_U32, &o.scrub_interval_s,
		 "seconds from the end of one scrub pass to the start of the next (vdifs-admin scrub: at once)"},
		{"fd_cache", CONFIG_U32, &o.fd_cache, "chunk files kept open"},
		{"log_level", CONFIG_STR, &o.log_level, "error, warn, info or debug"},
		{"log_file", CONFIG_STR, &o.log_file, "append the log here instead of stderr"},
		{"pid_file", CONFIG_STR, &o.pid_file, "write the process id here"},
		{NULL, 0, NULL, NULL},
	};
	char err[512];
	int first_arg;
	bool help;
	if (config_parse_args(opts, argc, argv, &first_arg, &help, err, sizeof(err)) < 0)
		daemon_die("%s", err);
	if (help) {
		config_print_help(opts, "usage: " PROG " [--config FILE] [OPTIONS]\n\n"
					"Serves chunk replicas from local directories to vdifs clients and peers.");
		return 0;
	}
	if (first_arg < argc)
		daemon_die("%s: unexpected argument (see --help)", argv[first_arg]);

	daemon_setup_log(o.log_level, o.log_file);

	char lhost[256], ahost[256], mhost[256];
	uint16_t lport, aport, mport;
	if (rpc_parse_hostport(o.listen, lhost, &lport) < 0)
		daemon_die("--listen: '%s' is not HOST:PORT", o.listen);
	if (rpc_parse_hostport(o.mds, mhost, &mport) < 0 || mport == 0)
		daemon_die("--mds: '%s' is not HOST:PORT", o.mds);
	if (o.advertise && (rpc_parse_hostport(o.advertise, ahost, &aport) < 0 || aport == 0))
		daemon_die("--advertise: '%s' is not HOST:PORT", o.advertise);
	if (!o.advertise && (strcmp(lhost, "0.0.0.0") == 0 || strcmp(lhost, "::") == 0))
		daemon_die("--advertise: required when listening on the wildcard address %s", lhost);
	daemon_check_max_payload(o.max_payload);
	if (o.fd_cache == 0)
		daemon_die("--fd-cache: must be at least 1");

	struct rpc_auth auth;
	daemon_load_auth(o.key_file, o.insecure, &auth);

	fit_nofile(&o);
	char *dirs[CHUNKSTORE_DIRS_MAX];
	size_t ndirs = collect_dirs(&o, dirs, CHUNKSTORE_DIRS_MAX);
	struct chunkstore_config scfg = {.dirs = (const char *const *)dirs, .ndirs = ndirs, .fd_cache = o.fd_cache};
	struct chunkstore *store = NULL;
	for (size_t i = 0; i < ndirs; i++)
		lock_dir(dirs[i]); /* before the scan, which removes leftovers */
	if (chunkstore_open(&scfg, &store, err, sizeof(err)) < 0)
		daemon_die("data directory: %s", err);
	char uuid[MDSLINK_UUID_MAX + 1];
	if (mdslink_load_uuid(dirs[0], uuid, sizeof(uuid), err, sizeof(err)) < 0)
		daemon_die("uuid: %s", err);

	rpc_global_init();
	struct event_base *base = event_base_new();
	if (!base)
		daemon_die("event loop: cannot create");

	char name[300], stats_path[4200];
	if (snprintf(stats_path, sizeof(stats_path), "%s/%s", dirs[0], DS_STATS_FILE) >= (int)sizeof(stats_path))
		daemon_die("%s: path too long", dirs[0]);
	struct handlers_config hcfg = {
		.base = base,
		.store = store,
		.auth = &auth,
		.name = name,
		.max_payload = (uint32_t)o.max_payload,
		.fwd_timeout_ms = o.fwd_timeout_ms,
		.stats_path = stats_path,
	};
	struct rpc_server_config rcfg = {
		.name = "ds",
		.host = lhost,
		.port = lport,
		.max_payload = (uint32_t)o.max_payload,
		.max_conns = o.max_conns,
		.idle_timeout_ms = o.idle_timeout_ms,
		.auth = &auth,
		.handler = handlers_dispatch,
	};
	snprintf(name, sizeof(name), "ds %s", o.advertise ? o.advertise : o.listen);
	struct handlers *h = handlers_new(&hcfg);
	if (!h)
		daemon_die("out of memory");
	rcfg.arg = h;
	struct rpc_server *srv = rpc_server_start(base, &rcfg, err, sizeof(err));
	if (!srv)
		daemon_die("--listen: %s", err);
	if (!o.advertise) {
		snprintf(ahost, sizeof(ahost), "%s", lhost);
		aport = rpc_server_port(srv);
	}
	struct replicate_config pcfg = {.base = base, .store = store, .h = h, .rate_mb_s = o.recovery_mb_s};
	struct replicate *repl = replicate_new(&pcfg);
	struct scrub_config sccfg = {.base = base, .store = store, .rate_mb_s = o.scrub_mb_s,
				    .interval_s = o.scrub_interval_s};
	struct scrub *scrub = scrub_new(&sccfg);
	if (!repl || !scrub)
		daemon_die("out of memory");
	struct mdslink_config mcfg = {
		.on_fence = fence,
		.fence_arg = srv,
		.base = base,
		.store = store,
		.auth = &auth,
		.mds_host = mhost,
		.mds_port = mport,
		.adv_host = ahost,
		.adv_port = aport,
		.uuid = uuid,
		.max_payload = (uint32_t)o.max_payload,
		.repl = repl,
		.scrub = scrub,
	};
	struct mdslink *link = mdslink_start(&mcfg);
	if (!link)
		daemon_die("out of memory");
	handlers_on_delete(h, mdslink_note_deleted, link);
	handlers_gate(h, mdslink_serving, link);
	chunkstore_on_corrupt(store, mdslink_note_corrupt, link);

	struct event *stop[2];
	daemon_stop_on_signals(base, stop);
	if (o.pid_file)
		daemon_write_pid_file(o.pid_file);

	struct chunkstore_space sp;
	chunkstore_space(store, &sp);
	log_info("serving %llu chunks from %zu director%s on %s:%u (advertised %s:%u), MDS %s:%u%s",
		 (unsigned long long)sp.nchunks, ndirs, ndirs == 1 ? "y" : "ies", lhost, rpc_server_port(srv),
		 ahost, aport, mhost, mport, auth.keylen ? "" : ", insecure");
	event_base_dispatch(base);

	event_free(stop[0]);
	event_free(stop[1]);
	chunkstore_on_corrupt(store, NULL, NULL);
	mdslink_stop(link);
	scrub_free(scrub);
	rpc_server_free(srv);
	replicate_free(repl); /* before the connections its calls use */
	handlers_free(h);
	/* Run what the frees scheduled (peers are released on the loop). */
	for (int i = 0; i < 3; i++)
		event_base_loop(base, EVLOOP_NONBLOCK);
	chunkstore_close(store);
	event_base_free(base);
	if (o.pid_file)
		unlink(o.pid_file);
	log_info("stopped");
	return 0;
}
