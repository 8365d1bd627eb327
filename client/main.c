/*
 * vdifs-mount: mounts a vdifs volume with FUSE (also installed as
 * mount.vdifs and mount.fuse.vdifs for mount(8) and /etc/fstab).
 *
 *   vdifs-mount [options] MDS_HOST:PORT/VOLUME MOUNTPOINT
 *   mount.vdifs MDS_HOST:PORT/VOLUME MOUNTPOINT [-sfnv] [-o opts]
 *
 * This file owns the command line (fuse_opt tables), the connection to the
 * MDS, the FUSE session and its thread pool.  The MOUNT call to the MDS
 * happens before the process detaches, so a wrong address, key or volume is
 * reported on the terminal with a non-zero exit status.  Because the client
 * API runs a thread and threads do not survive fork(), the process forks
 * first and the parent waits for the child's verdict, as fuse_daemonize()
 * does, instead of calling fuse_daemonize() once the client is running.
 */
#include "fs.h"
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define MOUNT_PROG "vdifs-mount"
#define MOUNT_DEFAULT_KEY "/etc/vdifs/cluster.key"
#define MOUNT_DEFAULT_THREADS 64
#define MOUNT_DEFAULT_MDS_TIMEOUT 120
#define MOUNT_MIN_IDLE_THREADS 16

struct mount_opts {
	char *keyfile;
	char *log;
	int insecure;
	int ro;
	double attr_timeout;
	double entry_timeout;
	unsigned threads;
	unsigned io_timeout;  /* s; 0: forever */
	unsigned mds_timeout; /* s; 0: forever */
	unsigned shared_cache_mb;
	int help;
	int version;
	char *src;      /* MDS_HOST:PORT/VOLUME */
	int nonopts;
};

enum { KEY_RO, KEY_HELP, KEY_VERSION, KEY_DISCARD };

#define MOUNT_OPT(t, p, v) { t, offsetof(struct mount_opts, p), v }
static const struct fuse_opt mount_opt_spec[] = {
	MOUNT_OPT("keyfile=%s", keyfile, 0),
	MOUNT_OPT("insecure", insecure, 1),
	MOUNT_OPT("attr_timeout=%lf", attr_timeout, 0),
	MOUNT_OPT("entry_timeout=%lf", entry_timeout, 0),
	MOUNT_OPT("threads=%u", threads, 0),
	MOUNT_OPT("io_timeout=%u", io_timeout, 0),
	MOUNT_OPT("mds_timeout=%u", mds_timeout, 0),
	MOUNT_OPT("shared_cache=%u", shared_cache_mb, 0),
	MOUNT_OPT("log=%s", log, 0),
	FUSE_OPT_KEY("ro", KEY_RO),
	FUSE_OPT_KEY("-h", KEY_HELP),
	FUSE_OPT_KEY("--help", KEY_HELP),
	FUSE_OPT_KEY("-V", KEY_VERSION),
	FUSE_OPT_KEY("--version", KEY_VERSION),
	/* mount(8) helper flags and fstab-only options the kernel must not see. */
	FUSE_OPT_KEY("-n", KEY_DISCARD),
	FUSE_OPT_KEY("-v", KEY_DISCARD),
	FUSE_OPT_KEY("defaults", KEY_DISCARD),
	FUSE_OPT_KEY("auto", KEY_DISCARD),
	FUSE_OPT_KEY("noauto", KEY_DISCARD),
	FUSE_OPT_KEY("user", KEY_DISCARD),
	FUSE_OPT_KEY("nouser", KEY_DISCARD),
	FUSE_OPT_KEY("users", KEY_DISCARD),
	FUSE_OPT_KEY("_netdev", KEY_DISCARD),
	FUSE_OPT_KEY("nofail", KEY_DISCARD),
	FUSE_OPT_END
};

static void mount_usage(const char *prog)
{
	printf("usage: %s [options] MDS_HOST:PORT/VOLUME MOUNTPOINT\n"
	       "       mount.vdifs MDS_HOST:PORT/VOLUME MOUNTPOINT [-o options]\n"
	       "\n"
	       "vdifs options:\n"
	       "    -o keyfile=PATH        cluster key (default " MOUNT_DEFAULT_KEY ")\n"
	       "    -o insecure            the cluster runs without a key\n"
	       "    -o ro                  mount read-only\n"
	       "    -o attr_timeout=SEC    attribute cache timeout (default 1)\n"
	       "    -o entry_timeout=SEC   name cache timeout (default 1)\n"
	       "    -o threads=N           most FUSE worker threads (default %d)\n"
	       "    -o io_timeout=SEC      how long I/O retries while data servers fail\n"
	       "                           before it fails with EIO (default %u; 0: forever)\n"
	       "    -o log=FILE            log to FILE (once detached, logs go nowhere otherwise)\n"
	       "    -o mds_timeout=SEC     while the MDS is down or restarting, metadata operations\n"
	       "                           wait and retry this long, then fail with EIO\n"
	       "                           (default %d; 0: wait forever)\n"
	       "    -o shared_cache=MB     memory for blocks of snapshots' and clone sources' content\n"
	       "                           that several files read (clones of one image), read from\n"
	       "                           the data servers once for all of them (default %u; 0: off)\n"
	       "\n",
	       prog, MOUNT_DEFAULT_THREADS, VDIFS_IO_TIMEOUT_DEFAULT_MS / 1000, MOUNT_DEFAULT_MDS_TIMEOUT,
	       VDIFS_SHARED_CACHE_DEFAULT_MB);
	fuse_cmdline_help();
	fuse_lowlevel_help();
}

static int mount_opt_proc(void *data, const char *arg, int key, struct fuse_args *outargs)
{
	struct mount_opts *o = data;
	(void)outargs;
	switch (key) {
	case KEY_RO:
		o->ro = 1;
		return 1; /* the kernel mount is read-only too */
	case KEY_HELP:
		o->help = 1;
		return 0;
	case KEY_VERSION:
		o->version = 1;
		return 0;
	case KEY_DISCARD:
		return 0;
	case FUSE_OPT_KEY_OPT:
		if (strncmp(arg, "x-", 2) == 0 || strncmp(arg, "comment=", 8) == 0)
			return 0; /* x-systemd.* and other userspace-only options */
		return 1;
	case FUSE_OPT_KEY_NONOPT:
		o->nonopts++;
		if (o->nonopts == 1) {
			o->src = strdup(arg);
			return o->src ? 0 : -1;
		}
		if (o->nonopts == 2)
			return 1; /* the mountpoint, for fuse_parse_cmdline */
		fprintf(stderr, MOUNT_PROG ": unexpected argument '%s'\n", arg);
		return -1;
	}
	return 1;
}

/* Splits "HOST:PORT/VOLUME". */
static int mount_parse_src(const char *src, char *host, uint16_t *port, char *volume, size_t vcap)
{
	const char *slash = strrchr(src, '/');
	char hp[300];
	if (!slash || slash == src || slash[1] == '\0' || strlen(slash + 1) >= vcap ||
	    (size_t)(slash - src) >= sizeof(hp))
		return -EINVAL;
	memcpy(hp, src, (size_t)(slash - src));
	hp[slash - src] = '\0';
	if (rpc_parse_hostport(hp, host, port) != 0)
		return -EINVAL;
	snprintf(volume, vcap, "%s", slash + 1);
	return 0;
}

/* Detaching: the child does the work and tells the parent, through a pipe,
 * whether the mount succeeded; the parent exits with that status. */
static int mount_fork(int *notify_fd)
{
	int p[2];
	if (pipe(p) != 0) {
		perror(MOUNT_PROG ": pipe");
		return -1;
	}
	pid_t pid = fork();
	if (pid < 0) {
		perror(MOUNT_PROG ": fork");
		return -1;
	}
	if (pid > 0) {
		char status = 1;
		close(p[1]);
		if (read(p[0], &status, 1) != 1)
			status = 1; /* the child died before telling */
		_exit(status);
	}
	close(p[0]);
	if (setsid() < 0)
		perror(MOUNT_PROG ": setsid");
	*notify_fd = p[1];
	return 0;
}

static void mount_notify(int *fd, char status)
{
	if (*fd < 0)
		return;
	if (write(*fd, &status, 1) != 1)
		perror(MOUNT_PROG ": notify");
	close(*fd);
	*fd = -1;
}

/* Cuts the detached child from the terminal. */
static void mount_detach_stdio(void)
{
	int nul = open("/dev/null", O_RDWR);
	if (chdir("/") != 0)
		log_warn("chdir /: %s", strerror(errno));
	if (nul < 0)
		return;
	dup2(nul, 0);
	dup2(nul, 1);
	dup2(nul, 2);
	if (nul > 2)
		close(nul);
}

int main(int argc, char **argv)
{
	struct fuse_args args = FUSE_ARGS_INIT(argc, argv);
	struct mount_opts o = { .attr_timeout = 1.0, .entry_timeout = 1.0, .threads = MOUNT_DEFAULT_THREADS,
				.io_timeout = VDIFS_IO_TIMEOUT_DEFAULT_MS / 1000, .mds_timeout = MOUNT_DEFAULT_MDS_TIMEOUT,
				.shared_cache_mb = VDIFS_SHARED_CACHE_DEFAULT_MB };
	struct fuse_cmdline_opts copts;
	struct fuse_session *se = NULL;
	struct fuse_loop_config *lcfg = NULL;
	struct fs fs;
	struct rpc_auth auth = { .keylen = 0 };
	struct vdifs_mount_info mi;
	char host[256], err[512], *fsopt = NULL;
	const char *prog = strrchr(argv[0], '/') ? strrchr(argv[0], '/') + 1 : argv[0];
	uint16_t port = 0;
	int notify = -1, ret = 1, rc;

	memset(&fs, 0, sizeof(fs));
	snapctl_init(&fs.ctl);
	memset(&copts, 0, sizeof(copts));
	log_init(MOUNT_PROG, LOG_WARN);
	if (fuse_opt_parse(&args, &o, mount_opt_spec, mount_opt_proc) != 0)
		goto out_args;
	if (o.help) {
		mount_usage(prog);
		ret = 0;
		goto out_args;
	}
	if (o.version) {
		printf(MOUNT_PROG " 0.1.0, FUSE library %s\n", fuse_pkgversion());
		ret = 0;
		goto out_args;
	}
	if (o.nonopts != 2) {
		fprintf(stderr, "usage: %s [options] MDS_HOST:PORT/VOLUME MOUNTPOINT (--help for more)\n", prog);
		goto out_args;
	}
	if (mount_parse_src(o.src, host, &port, fs.volume, sizeof(fs.volume)) != 0) {
		fprintf(stderr, MOUNT_PROG ": '%s' is not MDS_HOST:PORT/VOLUME\n", o.src);
		goto out_args;
	}
	if (o.attr_timeout < 0 || o.entry_timeout < 0 || o.threads == 0) {
		fprintf(stderr, MOUNT_PROG ": bad attr_timeout, entry_timeout or threads\n");
		goto out_args;
	}
	if (!o.insecure &&
	    rpc_auth_load_key(&auth, o.keyfile ? o.keyfile : MOUNT_DEFAULT_KEY, err, sizeof(err)) != 0) {
		fprintf(stderr, MOUNT_PROG ": %s (use -o keyfile=PATH, or -o insecure for a cluster without a key)\n",
			err);
		goto out_args;
	}

	/* FUSE mount options of every vdifs mount. */
	if (fuse_opt_add_opt(&fsopt, "subtype=vdifs,default_permissions,max_read=1048576") != 0 ||
	    fuse_opt_add_opt(&fsopt, "fsname=vdifs:") != 0)
		goto out_args;
	{
		char *fsname = NULL;
		if (fuse_opt_add_opt_escaped(&fsname, fs.volume) != 0)
			goto out_args;
		size_t l = strlen(fsopt) + strlen(fsname) + 1;
		char *joined = malloc(l);
		if (!joined) {
			free(fsname);
			goto out_args;
		}
		snprintf(joined, l, "%s%s", fsopt, fsname);
		free(fsname);
		free(fsopt);
		fsopt = joined;
	}
	/* Root mounts serve every user (qemu runs as its own user): the kernel
	 * checks permissions (default_permissions), so this is safe.  Others may
	 * ask for it with -o allow_other (user_allow_other in /etc/fuse.conf). */
	if (geteuid() == 0 && fuse_opt_add_opt(&fsopt, "allow_other") != 0)
		goto out_args;
	if (fuse_opt_add_arg(&args, "-o") != 0 || fuse_opt_add_arg(&args, fsopt) != 0)
		goto out_args;
	if (fuse_parse_cmdline(&args, &copts) != 0)
		goto out_args;
	if (copts.show_help) {
		mount_usage(prog);
		ret = 0;
		goto out_args;
	}
	if (!copts.mountpoint) {
		fprintf(stderr, MOUNT_PROG ": no mountpoint\n");
		goto out_args;
	}
	if (copts.debug)
		log_set_level(LOG_DEBUG);
	if (o.log && log_open(o.log) != 0) {
		fprintf(stderr, MOUNT_PROG ": %s: cannot open the log\n", o.log);
		goto out_args;
	}

	if (!copts.foreground && mount_fork(&notify) != 0)
		goto out_args;

	/* Connect and mount the volume before detaching, so errors show. */
	fs.c = vdifs_client_new(host, port, &auth, VDIFS_ROLE_CLIENT, MOUNT_PROG, &rc);
	if (!fs.c) {
		fprintf(stderr, MOUNT_PROG ": %s\n", vdifs_last_error());
		goto out_notify;
	}
	vdifs_client_set_io_timeout(fs.c, o.io_timeout > UINT32_MAX / 1000 ? UINT32_MAX : o.io_timeout * 1000);
	if (vdifs_client_set_shared_cache(fs.c, (uint64_t)o.shared_cache_mb << 20) != 0) {
		fprintf(stderr, MOUNT_PROG ": %s\n", vdifs_last_error());
		goto out_client;
	}
	rc = vdifs_mount(fs.c, fs.volume, o.ro ? VDIFS_MOUNT_RO : 0, &mi);
	if (rc != 0) {
		fprintf(stderr, MOUNT_PROG ": %s\n", vdifs_last_error());
		goto out_client;
	}
	/* From here on (the mount exists), an MDS outage blocks and retries. */
	vdifs_client_set_mds_wait(fs.c, o.mds_timeout == 0 || o.mds_timeout > UINT32_MAX / 1000
						? UINT32_MAX : o.mds_timeout * 1000u);
	fs.root_ino = mi.root_ino;
	fs.chunk_size = mi.chunk_size;
	fs.ro = o.ro != 0;
	fs.attr_timeout = o.attr_timeout;
	fs.entry_timeout = o.entry_timeout;
	capcache_init(&fs.caps, o.attr_timeout > 0 && o.attr_timeout < 3600 ? (uint32_t)(o.attr_timeout * 1000) : 0);

	se = fuse_session_new(&args, &fs_ops, sizeof(fs_ops), &fs);
	if (!se)
		goto out_client;
	fs.se = se;
	if (fuse_set_signal_handlers(se) != 0)
		goto out_session;
	if (fuse_session_mount(se, copts.mountpoint) != 0)
		goto out_signals;
	log_info("mounted volume '%s' from %s:%u on %s", fs.volume, host, port, copts.mountpoint);
	if (notify >= 0) {
		mount_detach_stdio();
		mount_notify(&notify, 0);
	}

	if (copts.singlethread) {
		rc = fuse_session_loop(se);
	} else {
		lcfg = fuse_loop_cfg_create();
		if (!lcfg) {
			rc = -ENOMEM;
		} else {
			/* Idle threads are kept (not torn down per burst of requests):
			 * all of them unless -o max_idle_threads says otherwise. */
			unsigned idle = copts.max_idle_threads == UINT_MAX ? o.threads : copts.max_idle_threads;
			if (idle < MOUNT_MIN_IDLE_THREADS)
				idle = MOUNT_MIN_IDLE_THREADS;
			unsigned maxt = o.threads > idle ? o.threads : idle;
			fuse_loop_cfg_set_clone_fd(lcfg, 1);
			fuse_loop_cfg_set_idle_threads(lcfg, idle);
			fuse_loop_cfg_set_max_threads(lcfg, maxt);
			rc = fuse_session_loop_mt(se, lcfg);
			fuse_loop_cfg_destroy(lcfg);
		}
	}
	ret = rc == 0 ? 0 : 1;
	fuse_session_unmount(se);
out_signals:
	fuse_remove_signal_handlers(se);
out_session:
	fuse_session_destroy(se);
out_client:
	vdifs_client_free(fs.c);
out_notify:
	mount_notify(&notify, 1);
out_args:
	free(copts.mountpoint);
	free(fsopt);
	free(o.src);
	free(o.keyfile);
	free(o.log);
	fuse_opt_free_args(&args);
	return ret;
}
