/* toolutil: see toolutil.h.  Start-up and output helpers; nothing hot. */
#include "toolutil.h"

#include "config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

const char *tool_prog = "vdifs";

void tool_error(const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, "%s: ", tool_prog);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

void tool_target_defaults(struct tool_target *t)
{
	memset(t, 0, sizeof(*t));
	const char *m = getenv("VDIFS_MDS"), *k = getenv("VDIFS_KEY_FILE");
	snprintf(t->mds, sizeof(t->mds), "%s", m && *m ? m : "127.0.0.1:9400");
	snprintf(t->key_file, sizeof(t->key_file), "%s", k && *k ? k : "/etc/vdifs/cluster.key");
}

int tool_cluster_load(struct tool_cluster *cl, const char *dir, bool quiet)
{
	char path[4200], err[4400];
	char *mds = NULL, *key = NULL, *volume = NULL, *mnt = NULL, *host = NULL;
	memset(cl, 0, sizeof(*cl));
	const struct config_opt opts[] = {
		{"mds", CONFIG_STR, &mds, ""},
		{"key_file", CONFIG_STR, &key, ""},
		{"insecure", CONFIG_BOOL, &cl->insecure, ""},
		{"ds", CONFIG_U32, &cl->nds, ""},
		{"replicas", CONFIG_U32, &cl->replicas, ""},
		{"port", CONFIG_U32, &cl->port, ""},
		{"host", CONFIG_STR, &host, ""},
		{"chunk_size", CONFIG_SIZE, &cl->chunk_size, ""},
		{"volume", CONFIG_STR, &volume, ""},
		{"mount", CONFIG_STR, &mnt, ""},
		{NULL, 0, NULL, NULL},
	};
	snprintf(path, sizeof(path), "%s/cluster.conf", dir);
	int rc = config_load_file(opts, path, err, sizeof(err));
	if (rc == 0 && (!mds || !volume || !mnt)) {
		snprintf(err, sizeof(err), "%s: incomplete (needs mds, volume, mount)", path);
		rc = -EINVAL;
	}
	if (rc < 0) {
		if (!quiet)
			tool_error("%s%s", err, rc == -ENOENT ? " (not a vdifs-cluster directory?)" : "");
		return rc;
	}
	snprintf(cl->mds, sizeof(cl->mds), "%s", mds);
	snprintf(cl->key_file, sizeof(cl->key_file), "%s", key ? key : "");
	snprintf(cl->volume, sizeof(cl->volume), "%s", volume);
	snprintf(cl->mnt, sizeof(cl->mnt), "%s", mnt);
	snprintf(cl->host, sizeof(cl->host), "%s", host ? host : "127.0.0.1");
	return 0;
}

int tool_cluster_save(const struct tool_cluster *cl, const char *dir)
{
	char path[4200], tmp[4300];
	snprintf(path, sizeof(path), "%s/cluster.conf", dir);
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	FILE *f = fopen(tmp, "w");
	if (!f) {
		int e = errno;
		tool_error("%s: %s", tmp, strerror(e));
		return -e;
	}
	fprintf(f, "# vdifs local cluster, written by vdifs-cluster; read by vdifs-cluster and vdifs-admin -C\n");
	fprintf(f, "mds = %s\n", cl->mds);
	if (cl->key_file[0])
		fprintf(f, "key_file = %s\n", cl->key_file);
	fprintf(f, "insecure = %s\n", cl->insecure ? "true" : "false");
	fprintf(f, "ds = %u\nreplicas = %u\nport = %u\nchunk_size = %llu\n", cl->nds, cl->replicas, cl->port,
		(unsigned long long)cl->chunk_size);
	fprintf(f, "volume = %s\nmount = %s\nhost = %s\n", cl->volume, cl->mnt, cl->host);
	if (fclose(f) != 0 || rename(tmp, path) != 0) {
		int e = errno;
		tool_error("%s: %s", path, strerror(e));
		return -e;
	}
	return 0;
}

int tool_target_from_cluster_dir(struct tool_target *t, const char *dir)
{
	struct tool_cluster cl;
	int rc = tool_cluster_load(&cl, dir, false);
	if (rc < 0)
		return rc;
	snprintf(t->mds, sizeof(t->mds), "%s", cl.mds);
	snprintf(t->key_file, sizeof(t->key_file), "%s", cl.key_file);
	t->insecure = cl.insecure;
	return 0;
}

struct vdifs_client *tool_connect(const struct tool_target *t, enum vdifs_role role)
{
	char host[256], err[512];
	uint16_t port;
	if (rpc_parse_hostport(t->mds, host, &port) < 0) {
		tool_error("%s: not a HOST:PORT address", t->mds);
		return NULL;
	}
	struct rpc_auth auth = {.keylen = 0};
	if (!t->insecure) {
		if (rpc_auth_load_key(&auth, t->key_file, err, sizeof(err)) < 0) {
			tool_error("%s (use --key-file FILE, or --insecure for a cluster without a key)", err);
			return NULL;
		}
	}
	int e = 0;
	struct vdifs_client *c = vdifs_client_new(host, port, &auth, role, tool_prog, &e);
	if (!c)
		tool_error("%s: %s", t->mds, strerror(-e));
	return c;
}

const char *tool_human_size(uint64_t bytes, char *buf, size_t len)
{
	static const char *units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
	double v = (double)bytes;
	int u = 0;
	while (v >= 1024 && u < 5) {
		v /= 1024;
		u++;
	}
	if (u == 0)
		snprintf(buf, len, "%llu B", (unsigned long long)bytes);
	else
		snprintf(buf, len, "%.1f %s", v, units[u]);
	return buf;
}

void tool_json_string(FILE *f, const char *s)
{
	fputc('"', f);
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;
		if (ch == '"' || ch == '\\')
			fprintf(f, "\\%c", ch);
		else if (ch < 0x20)
			fprintf(f, "\\u%04x", ch);
		else
			fputc(ch, f);
	}
	fputc('"', f);
}

void tool_progress(const char *what, uint64_t done, uint64_t total)
{
	if (!isatty(STDERR_FILENO) || total == 0)
		return;
	const int width = 30;
	int fill = (int)(done * (uint64_t)width / total);
	fprintf(stderr, "\r%s [%.*s%*s] %3d%%", what, fill, "##############################", width - fill, "",
		(int)(done * 100 / total));
	if (done >= total)
		fputc('\n', stderr);
	fflush(stderr);
}
