/*
 * vdifs-cluster: a whole vdifs cluster on this machine, under one directory:
 * one vdifs-mds, N vdifs-ds (each its own process on loopback TCP), a volume,
 * and that volume mounted with vdifs-mount at DIR/mnt.
 *
 *   DIR/cluster.conf   settings (read by vdifs-admin -C DIR too)
 *   DIR/mds.conf, DIR/ds.conf  server settings (--config), when present
 *   DIR/cluster.key    the shared cluster secret (0600), unless --insecure
 *   DIR/mds/ DIR/dsN/  server state;  DIR/logs/NAME.log  their output
 *   DIR/run/NAME.pid   pids of the processes this tool started
 *
 * "start" is idempotent: it starts only what is not running, so after a
 * server was killed, "start" brings it back with the same settings.
 */
#include "config.h"
#include "toolutil.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define WAIT_START_MS 20000
#define WAIT_STOP_MS 10000

static const char usage[] =
	"usage: vdifs-cluster start DIR [OPTIONS]   start what is not running (creating DIR on first use)\n"
	"       vdifs-cluster stop DIR              unmount and stop every process of the cluster\n"
	"       vdifs-cluster status DIR [--json]   processes and cluster health\n"
	"\n"
	"Options for the first start (later starts reuse DIR/cluster.conf):\n"
	"  --ds N              data servers (default 3)\n"
	"  --replicas N        replica count of the volume (default 2)\n"
	"  --port BASE         MDS port; data servers use BASE+1.. (default 9400)\n"
	"  --host ADDR         address every server listens on and advertises\n"
	"                      (default 127.0.0.1; e.g. a veth address reachable from\n"
	"                      a network namespace)\n"
	"  --volume NAME       volume to create and mount (default vdi)\n"
	"  --chunk-size SIZE   chunk size of the volume (default 64M)\n"
	"  --insecure          run without a cluster key\n"
	"  --no-mount          do not mount the volume\n"
	"  --json              (status) machine-readable output\n"
	"  -h, --help          show this help\n"
	"\n"
	"DIR/mds.conf and DIR/ds.conf, when present, are the servers' --config files.\n"
	"\n"
	"Binaries are looked up beside this program (or in $VDIFS_BINDIR), then in PATH.\n";

static char bindir[PATH_MAX];

static long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

static void sleep_ms(long ms)
{
	struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};
	nanosleep(&ts, NULL);
}

/* Finds a vdifs binary: beside us (installed), in the build tree, in PATH. */
static int find_binary(const char *name, const char *subdir, char *out, size_t len)
{
	const char *env = getenv("VDIFS_BINDIR");
	const char *dirs[] = {env, bindir, NULL};
	for (int i = 0; i < 2; i++) {
		if (!dirs[i] || !*dirs[i])
			continue;
		snprintf(out, len, "%s/%s", dirs[i], name);
		if (access(out, X_OK) == 0)
			return 0;
		snprintf(out, len, "%s/../%s/%s", dirs[i], subdir, name);
		if (access(out, X_OK) == 0)
			return 0;
	}
	const char *path = getenv("PATH");
	char buf[8192];
	snprintf(buf, sizeof(buf), "%s", path ? path : "/usr/local/bin:/usr/bin:/bin");
	for (char *save, *d = strtok_r(buf, ":", &save); d; d = strtok_r(NULL, ":", &save)) {
		snprintf(out, len, "%s/%s", d, name);
		if (access(out, X_OK) == 0)
			return 0;
	}
	tool_error("%s: program not found beside %s or in PATH", name, bindir);
	return -ENOENT;
}

static void pid_path(const char *dir, const char *what, char *out, size_t len)
{
	snprintf(out, len, "%s/run/%s.pid", dir, what);
}

/* The pid recorded for `what` if that process still runs the expected program. */
static pid_t running_pid(const char *dir, const char *what, const char *prog)
{
	char path[PATH_MAX];
	pid_path(dir, what, path, sizeof(path));
	FILE *f = fopen(path, "r");
	if (!f)
		return 0;
	long pid = 0;
	if (fscanf(f, "%ld", &pid) != 1)
		pid = 0;
	fclose(f);
	if (pid <= 0 || kill((pid_t)pid, 0) != 0)
		return 0;
	/* Guard against a recycled pid: the command line must name the program. */
	char cmd[PATH_MAX], exe[4096] = "";
	snprintf(cmd, sizeof(cmd), "/proc/%ld/cmdline", pid);
	int fd = open(cmd, O_RDONLY);
	if (fd >= 0) {
		ssize_t n = read(fd, exe, sizeof(exe) - 1);
		exe[n > 0 ? n : 0] = '\0';
		close(fd);
	}
	if (!strstr(exe, prog))
		return 0;
	/* A zombie child of ours is not running. */
	char stat[PATH_MAX], st[512] = "";
	snprintf(stat, sizeof(stat), "/proc/%ld/stat", pid);
	fd = open(stat, O_RDONLY);
	if (fd >= 0) {
		ssize_t n = read(fd, st, sizeof(st) - 1);
		st[n > 0 ? n : 0] = '\0';
		close(fd);
		char *rp = strrchr(st, ')');
		if (rp && rp[1] == ' ' && rp[2] == 'Z')
			return 0;
	}
	return (pid_t)pid;
}

static int write_pid(const char *dir, const char *what, pid_t pid)
{
	char path[PATH_MAX];
	pid_path(dir, what, path, sizeof(path));
	FILE *f = fopen(path, "w");
	if (!f) {
		tool_error("%s: %s", path, strerror(errno));
		return -errno;
	}
	fprintf(f, "%ld\n", (long)pid);
	fclose(f);
	return 0;
}

/* Starts argv[0] in its own session with output appended to log. */
static pid_t spawn(char *const argv[], const char *log)
{
	pid_t pid = fork();
	if (pid < 0) {
		tool_error("fork: %s", strerror(errno));
		return -1;
	}
	if (pid == 0) {
		setsid();
		int in = open("/dev/null", O_RDONLY);
		int out = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
		if (in >= 0)
			dup2(in, 0);
		if (out >= 0) {
			dup2(out, 1);
			dup2(out, 2);
		}
		for (int fd = 3; fd < 1024; fd++)
			close(fd);
		execv(argv[0], argv);
		fprintf(stderr, "vdifs-cluster: %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	return pid;
}

/* True once `pid` (our child) has exited; reaps it. */
static bool child_exited(pid_t pid)
{
	int status;
	return waitpid(pid, &status, WNOHANG) == pid;
}

static void show_log_tail(const char *log)
{
	FILE *f = fopen(log, "r");
	if (!f)
		return;
	char lines[8][512];
	int n = 0;
	while (fgets(lines[n % 8], sizeof(lines[0]), f))
		n++;
	fclose(f);
	int first = n > 8 ? n - 8 : 0;
	fprintf(stderr, "--- last lines of %s ---\n", log);
	for (int i = first; i < n; i++)
		fputs(lines[i % 8], stderr);
}

static bool is_mounted(const char *mnt)
{
	char real[PATH_MAX];
	if (!realpath(mnt, real))
		snprintf(real, sizeof(real), "%s", mnt);
	FILE *f = fopen("/proc/self/mountinfo", "r");
	if (!f)
		return false;
	char line[8192];
	bool found = false;
	while (!found && fgets(line, sizeof(line), f)) {
		/* id parent major:minor root mountpoint ... - fstype source opts */
		char mp[4096];
		if (sscanf(line, "%*s %*s %*s %*s %4095s", mp) != 1)
			continue;
		/* Unescape \040 and friends. */
		char un[4096];
		size_t j = 0;
		for (size_t i = 0; mp[i] && j + 1 < sizeof(un); i++) {
			if (mp[i] == '\\' && mp[i + 1] && mp[i + 2] && mp[i + 3]) {
				un[j++] = (char)((mp[i + 1] - '0') * 64 + (mp[i + 2] - '0') * 8 + (mp[i + 3] - '0'));
				i += 3;
			} else {
				un[j++] = mp[i];
			}
		}
		un[j] = '\0';
		const char *dash = strstr(line, " - ");
		if (strcmp(un, real) == 0 && dash && strncmp(dash + 3, "fuse.vdifs", 10) == 0)
			found = true;
	}
	fclose(f);
	return found;
}

static struct vdifs_client *connect_cluster(const struct tool_cluster *cl, bool quiet)
{
	struct tool_target t;
	memset(&t, 0, sizeof(t));
	snprintf(t.mds, sizeof(t.mds), "%s", cl->mds);
	snprintf(t.key_file, sizeof(t.key_file), "%s", cl->key_file);
	t.insecure = cl->insecure;
	if (quiet) {
		/* Polling while a server starts: keep stderr for real errors. */
		char host[256], err[512];
		uint16_t port;
		struct rpc_auth auth = {.keylen = 0};
		if (rpc_parse_hostport(t.mds, host, &port) < 0)
			return NULL;
		if (!t.insecure && rpc_auth_load_key(&auth, t.key_file, err, sizeof(err)) < 0)
			return NULL;
		int e;
		return vdifs_client_new(host, port, &auth, VDIFS_ROLE_ADMIN, "vdifs-cluster", &e);
	}
	return tool_connect(&t, VDIFS_ROLE_ADMIN);
}

/* Polls the MDS until `ds_up` data servers are up (0: until it answers). */
static int wait_for_cluster(const struct tool_cluster *cl, uint32_t ds_up, pid_t child, const char *log)
{
	long deadline = now_ms() + WAIT_START_MS;
	struct msg_cluster_status_rep s = {0};
	for (;;) {
		struct vdifs_client *c = connect_cluster(cl, true);
		int rc = c ? vdifs_cluster_status(c, &s) : -ENOMEM;
		if (c)
			vdifs_client_free(c);
		if (rc == 0 && s.ds_up >= ds_up)
			return 0;
		if (child > 0 && child_exited(child)) {
			tool_error("%s exited during start-up", log);
			show_log_tail(log);
			return -ECHILD;
		}
		if (now_ms() > deadline) {
			if (rc < 0)
				tool_error("metadata server %s did not answer within %d s", cl->mds, WAIT_START_MS / 1000);
			else
				tool_error("only %u of %u data servers registered within %d s", s.ds_up, ds_up,
					   WAIT_START_MS / 1000);
			if (log)
				show_log_tail(log);
			return -ETIMEDOUT;
		}
		sleep_ms(100);
	}
}

static int mkdir_p(const char *path)
{
	char buf[PATH_MAX];
	snprintf(buf, sizeof(buf), "%s", path);
	for (char *p = buf + 1; *p; p++) {
		if (*p == '/') {
			*p = '\0';
			if (mkdir(buf, 0755) < 0 && errno != EEXIST)
				return -errno;
			*p = '/';
		}
	}
	if (mkdir(buf, 0755) < 0 && errno != EEXIST)
		return -errno;
	return 0;
}

/* "--config=DIR/NAME" in out when that file exists, else "" (no option). */
static void config_arg(const char *dir, const char *name, char *out, size_t len)
{
	snprintf(out, len, "--config=%s/%s", dir, name);
	if (access(out + 9, R_OK) != 0)
		out[0] = '\0';
}

static int start_mds(const char *dir, const struct tool_cluster *cl)
{
	if (running_pid(dir, "mds", "vdifs-mds"))
		return 0;
	char bin[PATH_MAX], data[PATH_MAX], log[PATH_MAX], listen[320], key[PATH_MAX + 16];
	if (find_binary("vdifs-mds", "mds", bin, sizeof(bin)) < 0)
		return -ENOENT;
	snprintf(data, sizeof(data), "%s/mds", dir);
	snprintf(log, sizeof(log), "%s/logs/mds.log", dir);
	snprintf(listen, sizeof(listen), "--listen=%s", cl->mds);
	snprintf(key, sizeof(key), "--key-file=%s", cl->key_file);
	char datarg[PATH_MAX + 16];
	snprintf(datarg, sizeof(datarg), "--data-dir=%s", data);
	char conf[PATH_MAX + 16];
	config_arg(dir, "mds.conf", conf, sizeof(conf));
	char *argv[] = {bin, listen, datarg, cl->insecure ? "--insecure" : key, conf[0] ? conf : NULL, NULL};
	pid_t pid = spawn(argv, log);
	if (pid < 0 || write_pid(dir, "mds", pid) < 0)
		return -EIO;
	return wait_for_cluster(cl, 0, pid, log);
}

static int start_ds(const char *dir, const struct tool_cluster *cl, uint32_t i, pid_t *pid_out)
{
	char what[16];
	snprintf(what, sizeof(what), "ds%u", i);
	*pid_out = 0;
	if (running_pid(dir, what, "vdifs-ds"))
		return 0;
	char bin[PATH_MAX], data[PATH_MAX + 16], log[PATH_MAX], listen[96], mds[320], key[PATH_MAX + 16];
	if (find_binary("vdifs-ds", "dataserver", bin, sizeof(bin)) < 0)
		return -ENOENT;
	char ddir[PATH_MAX];
	snprintf(ddir, sizeof(ddir), "%s/%s", dir, what);
	if (mkdir_p(ddir) < 0) {
		tool_error("%s: %s", ddir, strerror(errno));
		return -errno;
	}
	snprintf(data, sizeof(data), "--data-dir=%s", ddir);
	snprintf(log, sizeof(log), "%s/logs/%s.log", dir, what);
	snprintf(listen, sizeof(listen), "--listen=%s:%u", cl->host, cl->port + i);
	snprintf(mds, sizeof(mds), "--mds=%s", cl->mds);
	snprintf(key, sizeof(key), "--key-file=%s", cl->key_file);
	char conf[PATH_MAX + 16];
	config_arg(dir, "ds.conf", conf, sizeof(conf));
	char *argv[] = {bin, listen, mds, data, cl->insecure ? "--insecure" : key, conf[0] ? conf : NULL, NULL};
	pid_t pid = spawn(argv, log);
	if (pid < 0 || write_pid(dir, what, pid) < 0)
		return -EIO;
	*pid_out = pid;
	return 0;
}

static int ensure_volume(const struct tool_cluster *cl)
{
	struct vdifs_client *c = connect_cluster(cl, false);
	if (!c)
		return -EIO;
	struct vdifs_vol_info v;
	int rc = vdifs_vol_create(c, cl->volume, cl->chunk_size, cl->replicas, &v);
	if (rc == -EEXIST)
		rc = 0;
	else if (rc < 0)
		tool_error("volume %s: %s", cl->volume, vdifs_last_error());
	vdifs_client_free(c);
	return rc;
}

static int start_mount(const char *dir, const struct tool_cluster *cl)
{
	if (is_mounted(cl->mnt))
		return 0;
	char bin[PATH_MAX], log[PATH_MAX], src[600], opts[PATH_MAX + 32];
	if (find_binary("vdifs-mount", "client", bin, sizeof(bin)) < 0)
		return -ENOENT;
	if (mkdir_p(cl->mnt) < 0) {
		tool_error("%s: %s", cl->mnt, strerror(errno));
		return -errno;
	}
	snprintf(log, sizeof(log), "%s/logs/mount.log", dir);
	snprintf(src, sizeof(src), "%s/%s", cl->mds, cl->volume);
	if (cl->insecure)
		snprintf(opts, sizeof(opts), "insecure");
	else
		snprintf(opts, sizeof(opts), "keyfile=%s", cl->key_file);
	char mnt[PATH_MAX];
	snprintf(mnt, sizeof(mnt), "%s", cl->mnt);
	char *argv[] = {bin, "-f", "-o", opts, src, mnt, NULL};
	pid_t pid = spawn(argv, log);
	if (pid < 0 || write_pid(dir, "mount", pid) < 0)
		return -EIO;
	long deadline = now_ms() + WAIT_START_MS;
	while (!is_mounted(cl->mnt)) {
		if (child_exited(pid)) {
			tool_error("vdifs-mount exited before mounting %s", cl->mnt);
			show_log_tail(log);
			return -ECHILD;
		}
		if (now_ms() > deadline) {
			tool_error("%s: not mounted within %d s", cl->mnt, WAIT_START_MS / 1000);
			show_log_tail(log);
			return -ETIMEDOUT;
		}
		sleep_ms(50);
	}
	return 0;
}

static int cmd_start(const char *dir, struct tool_cluster *opt, bool mount)
{
	struct tool_cluster cl;
	char sub[PATH_MAX];
	if (mkdir_p(dir) < 0) {
		tool_error("%s: %s", dir, strerror(errno));
		return 1;
	}
	for (const char *s = "mds\0logs\0run\0"; *s; s += strlen(s) + 1) {
		snprintf(sub, sizeof(sub), "%s/%s", dir, s);
		if (mkdir_p(sub) < 0) {
			tool_error("%s: %s", sub, strerror(errno));
			return 1;
		}
	}
	if (tool_cluster_load(&cl, dir, true) < 0) {
		/* First start: record the settings. */
		char absdir[PATH_MAX];
		if (!realpath(dir, absdir)) {
			tool_error("%s: %s", dir, strerror(errno));
			return 1;
		}
		cl = *opt;
		snprintf(cl.mds, sizeof(cl.mds), "%s:%u", cl.host, cl.port);
		if (snprintf(cl.mnt, sizeof(cl.mnt), "%s/mnt", absdir) >= (int)sizeof(cl.mnt)) {
			tool_error("%s: path too long", absdir);
			return 1;
		}
		if (!cl.insecure) {
			char err[512];
			if (snprintf(cl.key_file, sizeof(cl.key_file), "%s/cluster.key", absdir) >=
			    (int)sizeof(cl.key_file)) {
				tool_error("%s: path too long", absdir);
				return 1;
			}
			if (access(cl.key_file, R_OK) != 0 &&
			    rpc_auth_generate_key(cl.key_file, err, sizeof(err)) < 0) {
				tool_error("%s", err);
				return 1;
			}
		}
		if (tool_cluster_save(&cl, dir) < 0)
			return 1;
	}
	if (start_mds(dir, &cl) < 0)
		return 1;
	pid_t pids[64] = {0};
	for (uint32_t i = 1; i <= cl.nds && i < 64; i++)
		if (start_ds(dir, &cl, i, &pids[i]) < 0)
			return 1;
	if (wait_for_cluster(&cl, cl.nds, 0, NULL) < 0) {
		for (uint32_t i = 1; i <= cl.nds && i < 64; i++) {
			char log[PATH_MAX];
			snprintf(log, sizeof(log), "%s/logs/ds%u.log", dir, i);
			if (pids[i] && child_exited(pids[i]))
				show_log_tail(log);
		}
		return 1;
	}
	if (ensure_volume(&cl) < 0)
		return 1;
	if (mount && start_mount(dir, &cl) < 0)
		return 1;
	return 0;
}

/* SIGTERM, then SIGKILL after WAIT_STOP_MS; only the pid we recorded. */
static void stop_process(const char *dir, const char *what, const char *prog)
{
	pid_t pid = running_pid(dir, what, prog);
	char path[PATH_MAX];
	pid_path(dir, what, path, sizeof(path));
	if (pid > 0) {
		kill(pid, SIGTERM);
		long deadline = now_ms() + WAIT_STOP_MS;
		while (running_pid(dir, what, prog) == pid && now_ms() < deadline)
			sleep_ms(50);
		if (running_pid(dir, what, prog) == pid) {
			tool_error("%s (pid %ld) did not stop in %d s; killing it", what, (long)pid,
				   WAIT_STOP_MS / 1000);
			kill(pid, SIGKILL);
		}
	}
	unlink(path);
}

static int run_wait(char *const argv[])
{
	pid_t pid = fork();
	if (pid == 0) {
		execvp(argv[0], argv);
		_exit(127);
	}
	int status = 0;
	if (pid < 0 || waitpid(pid, &status, 0) < 0)
		return -1;
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static int cmd_stop(const char *dir)
{
	struct tool_cluster cl;
	if (tool_cluster_load(&cl, dir, false) < 0)
		return 1;
	if (is_mounted(cl.mnt)) {
		char *um[] = {"fusermount3", "-u", cl.mnt, NULL};
		if (run_wait(um) != 0) {
			/* Busy (a shell sits in it): detach lazily rather than leave it. */
			char *lazy[] = {"fusermount3", "-u", "-z", cl.mnt, NULL};
			run_wait(lazy);
		}
	}
	stop_process(dir, "mount", "vdifs-mount");
	for (uint32_t i = 1; i <= cl.nds; i++) {
		char what[16];
		snprintf(what, sizeof(what), "ds%u", i);
		stop_process(dir, what, "vdifs-ds");
	}
	stop_process(dir, "mds", "vdifs-mds");
	return 0;
}

static int cmd_status(const char *dir, bool json)
{
	struct tool_cluster cl;
	if (tool_cluster_load(&cl, dir, false) < 0)
		return 1;
	pid_t mds = running_pid(dir, "mds", "vdifs-mds");
	bool mounted = is_mounted(cl.mnt);
	struct msg_cluster_status_rep s = {0};
	int rc = -ENOTCONN;
	if (mds) {
		struct vdifs_client *c = connect_cluster(&cl, true);
		if (c) {
			rc = vdifs_cluster_status(c, &s);
			vdifs_client_free(c);
		}
	}
	if (json) {
		printf("{\"dir\":");
		tool_json_string(stdout, dir);
		printf(",\"mds\":{\"address\":\"%s\",\"pid\":%ld},\"data_servers\":[", cl.mds, (long)mds);
		for (uint32_t i = 1; i <= cl.nds; i++) {
			char what[16];
			snprintf(what, sizeof(what), "ds%u", i);
			printf("%s{\"name\":\"%s\",\"port\":%u,\"pid\":%ld}", i > 1 ? "," : "", what, cl.port + i,
			       (long)running_pid(dir, what, "vdifs-ds"));
		}
		printf("],\"volume\":");
		tool_json_string(stdout, cl.volume);
		printf(",\"mount\":");
		tool_json_string(stdout, cl.mnt);
		printf(",\"mounted\":%s", mounted ? "true" : "false");
		if (rc == 0)
			printf(",\"ds_up\":%u,\"ds_total\":%u,\"chunks\":%" PRIu64 ",\"avail\":%" PRIu64, s.ds_up,
			       s.ds_total, s.chunks, s.avail);
		printf("}\n");
	} else {
		printf("mds     %-22s %s\n", cl.mds, mds ? "running" : "stopped");
		for (uint32_t i = 1; i <= cl.nds; i++) {
			char what[16], addr[96];
			snprintf(what, sizeof(what), "ds%u", i);
			snprintf(addr, sizeof(addr), "%s:%u", cl.host, cl.port + i);
			printf("%-7s %-22s %s\n", what, addr, running_pid(dir, what, "vdifs-ds") ? "running" : "stopped");
		}
		printf("mount   %-22s %s (volume %s)\n", cl.mnt, mounted ? "mounted" : "not mounted", cl.volume);
		if (rc == 0)
			printf("cluster %u of %u data servers up, %" PRIu64 " chunks\n", s.ds_up, s.ds_total, s.chunks);
	}
	bool all = mds && rc == 0 && s.ds_up >= cl.nds;
	return all ? 0 : 3;
}

int main(int argc, char **argv)
{
	tool_prog = "vdifs-cluster";
	char self[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (n > 0) {
		self[n] = '\0';
		char *slash = strrchr(self, '/');
		if (slash)
			*slash = '\0';
		snprintf(bindir, sizeof(bindir), "%s", self);
	}
	struct tool_cluster opt = {.nds = 3, .replicas = 2, .port = 9400, .chunk_size = 64ull << 20};
	snprintf(opt.volume, sizeof(opt.volume), "vdi");
	snprintf(opt.host, sizeof(opt.host), "127.0.0.1");
	bool mount = true, json = false;
	enum { O_DS = 256, O_REPLICAS, O_PORT, O_VOLUME, O_CHUNK, O_INSECURE, O_NOMOUNT, O_JSON, O_HOST };
	static const struct option longopts[] = {
		{"ds", required_argument, NULL, O_DS},        {"replicas", required_argument, NULL, O_REPLICAS},
		{"port", required_argument, NULL, O_PORT},    {"volume", required_argument, NULL, O_VOLUME},
		{"chunk-size", required_argument, NULL, O_CHUNK}, {"insecure", no_argument, NULL, O_INSECURE},
		{"no-mount", no_argument, NULL, O_NOMOUNT},   {"json", no_argument, NULL, O_JSON},
		{"host", required_argument, NULL, O_HOST},
		{"help", no_argument, NULL, 'h'},             {NULL, 0, NULL, 0},
	};
	int o;
	while ((o = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		char *end = NULL;
		unsigned long v = 0;
		if (o == O_DS || o == O_REPLICAS || o == O_PORT)
			v = strtoul(optarg, &end, 10);
		switch (o) {
		case O_DS:
			if (*end || v < 1 || v > 32) {
				tool_error("--ds: '%s' is not a number from 1 to 32", optarg);
				return 2;
			}
			opt.nds = (uint32_t)v;
			break;
		case O_REPLICAS:
			if (*end || v < 1 || v > VDIFS_MAX_REPLICAS) {
				tool_error("--replicas: '%s' is not a number from 1 to %d", optarg, VDIFS_MAX_REPLICAS);
				return 2;
			}
			opt.replicas = (uint32_t)v;
			break;
		case O_PORT:
			if (*end || v < 1024 || v > 65000) {
				tool_error("--port: '%s' is not a port from 1024 to 65000", optarg);
				return 2;
			}
			opt.port = (uint32_t)v;
			break;
		case O_VOLUME: snprintf(opt.volume, sizeof(opt.volume), "%s", optarg); break;
		case O_HOST: {
			struct in_addr ia;
			if (inet_pton(AF_INET, optarg, &ia) != 1) {
				tool_error("--host: '%s' is not an IPv4 address", optarg);
				return 2;
			}
			snprintf(opt.host, sizeof(opt.host), "%s", optarg);
			break;
		}
		case O_CHUNK:
			if (config_parse_size(optarg, &opt.chunk_size) < 0) {
				tool_error("--chunk-size: '%s' is not a size (e.g. 64M)", optarg);
				return 2;
			}
			break;
		case O_INSECURE: opt.insecure = true; break;
		case O_NOMOUNT: mount = false; break;
		case O_JSON: json = true; break;
		case 'h': fputs(usage, stdout); return 0;
		default: fputs(usage, stderr); return 2;
		}
	}
	if (argc - optind != 2) {
		fputs(usage, stderr);
		return 2;
	}
	const char *cmd = argv[optind], *dir = argv[optind + 1];
	if (opt.replicas > opt.nds) {
		tool_error("--replicas %u needs at least as many data servers (--ds %u)", opt.replicas, opt.nds);
		return 2;
	}
	if (strcmp(cmd, "start") == 0)
		return cmd_start(dir, &opt, mount);
	if (strcmp(cmd, "stop") == 0)
		return cmd_stop(dir);
	if (strcmp(cmd, "status") == 0)
		return cmd_status(dir, json);
	tool_error("unknown command '%s' (start, stop, status)", cmd);
	return 2;
}
