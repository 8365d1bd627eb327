/*
 * vdifs-admin: cluster administration from the command line: volumes
 * (create, list, remove, set), data servers (list), cluster status and
 * fsck of the MDS.
 * Quiet on success except for what was asked; --json for scripts.
 */
#include "config.h"
#include "toolutil.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const char usage[] =
	"usage: vdifs-admin [OPTIONS] COMMAND [ARGS]\n"
	"\n"
	"Commands:\n"
	"  volume create NAME [--chunk-size SIZE] [--replicas N]\n"
	"  volume list\n"
	"  volume remove NAME [--force]     (--force: remove a volume that still has files)\n"
	"  volume set NAME KEY VALUE        (keys: replicas, chunk_size)\n"
	"  ds list                          data servers, up or down, and their space\n"
	"  status [--wait]                  cluster summary, with chunks short of replicas and\n"
	"                                   the re-replication under way; --wait: until every\n"
	"                                   chunk has its replica count again (a progress bar\n"
	"                                   on a terminal)\n"
	"  scrub                            every data server up starts a scrub pass now\n"
	"                                   (reads every chunk and checks its CRCs; bad\n"
	"                                   copies are replaced from good ones)\n"
	"  fsck [--repair] [--mds-only]     check the MDS's records (links, refcounts, layer\n"
	"                                   tree, counters) and, unless --mds-only, the replicas\n"
	"                                   against the data servers' chunk lists (missing and\n"
	"                                   orphan copies); --repair fixes what is safe\n"
	"\n"
	"Options:\n"
	"  -C, --cluster DIR   use the cluster started by 'vdifs-cluster start DIR'\n"
	"  --mds HOST:PORT     metadata server (default $VDIFS_MDS or 127.0.0.1:9400)\n"
	"  --key-file FILE     cluster key (default $VDIFS_KEY_FILE or /etc/vdifs/cluster.key)\n"
	"  --insecure          the cluster runs without a key\n"
	"  --json              machine-readable output\n"
	"  -h, --help          show this help\n"
	"\n"
	"Exit status: 0 success, 1 the operation failed, 2 bad usage.\n"
	"fsck: 0 clean (or all repaired), 1 inconsistencies left, 2 bad usage or no answer.\n";

static bool json;
static bool force;
static bool repair;
static bool wait_recovery;
static bool mds_only;
static uint64_t chunk_size;
static uint32_t replicas;

static int print_volume(void *arg, const struct vdifs_vol_info *v)
{
	int *n = arg;
	char cs[32];
	if (json) {
		printf("%s{\"id\":%u,\"name\":", (*n)++ ? "," : "", v->vol);
		tool_json_string(stdout, v->name);
		printf(",\"chunk_size\":%" PRIu64 ",\"replicas\":%u,\"inodes\":%" PRIu64 ",\"created\":%" PRId64 "}",
		       v->chunk_size, v->replicas, v->inodes, v->created_s);
	} else {
		if ((*n)++ == 0)
			printf("%-4s %-24s %-10s %-8s %s\n", "ID", "NAME", "CHUNK", "REPLICAS", "INODES");
		printf("%-4u %-24s %-10s %-8u %" PRIu64 "\n", v->vol, v->name,
		       tool_human_size(v->chunk_size, cs, sizeof(cs)), v->replicas, v->inodes);
	}
	return 0;
}

static int print_ds(void *arg, const struct vdifs_ds_info *d)
{
	int *n = arg;
	char t[32], a[32], u[32];
	if (json) {
		printf("%s{\"id\":%u,\"uuid\":", (*n)++ ? "," : "", d->ds_id);
		tool_json_string(stdout, d->uuid);
		printf(",\"address\":\"%s:%u\",\"up\":%s,\"total\":%" PRIu64 ",\"avail\":%" PRIu64
		       ",\"used\":%" PRIu64 ",\"chunks\":%" PRIu64 ",\"idle_ms\":%" PRId64 "}",
		       d->host, d->port, d->up ? "true" : "false", d->total, d->avail, d->used, d->nchunks,
		       d->idle_ms);
	} else {
		if ((*n)++ == 0)
			printf("%-4s %-22s %-5s %-11s %-11s %-11s %s\n", "ID", "ADDRESS", "STATE", "TOTAL", "AVAIL",
			       "USED", "CHUNKS");
		char addr[300];
		snprintf(addr, sizeof(addr), "%s:%u", d->host, d->port);
		printf("%-4u %-22s %-5s %-11s %-11s %-11s %" PRIu64 "\n", d->ds_id, addr, d->up ? "up" : "DOWN",
		       tool_human_size(d->total, t, sizeof(t)), tool_human_size(d->avail, a, sizeof(a)),
		       tool_human_size(d->used, u, sizeof(u)), d->nchunks);
	}
	return 0;
}

static int fail(const char *what)
{
	tool_error("%s: %s", what, vdifs_last_error());
	return 1;
}

static int cmd_volume(struct vdifs_client *c, int argc, char **argv)
{
	if (argc < 1) {
		tool_error("volume: missing subcommand (create, list, remove, set)");
		return 2;
	}
	const char *sub = argv[0];
	if (strcmp(sub, "create") == 0 && argc == 2) {
		struct vdifs_vol_info v;
		if (vdifs_vol_create(c, argv[1], chunk_size, replicas, &v) < 0)
			return fail(argv[1]);
		if (json) {
			int n = 0;
			print_volume(&n, &v);
			putchar('\n');
		}
		return 0;
	}
	if (strcmp(sub, "list") == 0 && argc == 1) {
		int n = 0;
		if (json)
			putchar('[');
		if (vdifs_vol_list(c, print_volume, &n) < 0)
			return fail("volume list");
		if (json)
			printf("]\n");
		return 0;
	}
	if (strcmp(sub, "remove") == 0 && argc == 2) {
		int r = vdifs_vol_remove(c, argv[1], force ? VDIFS_VOL_REMOVE_FORCE : 0);
		if (r < 0) {
			int rc = fail(argv[1]);
			if (r == -ENOTEMPTY)
				fprintf(stderr, "%s: use --force to remove it with its files\n", tool_prog);
			return rc;
		}
		return 0;
	}
	if (strcmp(sub, "set") == 0 && argc == 4) {
		if (vdifs_vol_set(c, argv[1], argv[2], argv[3]) < 0)
			return fail(argv[1]);
		return 0;
	}
	tool_error("volume: bad arguments (see --help)");
	return 2;
}

static int cmd_status(struct vdifs_client *c)
{
	struct msg_cluster_status_rep s;
	if (vdifs_cluster_status(c, &s) < 0)
		return fail("status");
	if (wait_recovery) {
		/* Progress: chunks brought back since the most seen short. */
		uint64_t most = s.under;
		while (s.under > 0) {
			if (s.under > most)
				most = s.under;
			tool_progress("re-replicating", most - s.under, most);
			struct timespec ts = {0, 500 * 1000 * 1000};
			nanosleep(&ts, NULL);
			if (vdifs_cluster_status(c, &s) < 0)
				return fail("status");
		}
		tool_progress("re-replicating", most, most);
	}
	if (json) {
		printf("{\"volumes\":%u,\"ds_up\":%u,\"ds_total\":%u,\"chunks\":%" PRIu64 ",\"total\":%" PRIu64
		       ",\"avail\":%" PRIu64 ",\"used\":%" PRIu64 ",\"under_replicated\":%" PRIu64
		       ",\"no_replica_up\":%" PRIu64 ",\"recovering\":%u,\"recovered\":%" PRIu64 "}\n",
		       s.volumes, s.ds_up, s.ds_total, s.chunks, s.total, s.avail, s.used, s.under, s.lost,
		       s.recovering, s.recovered);
		return 0;
	}
	char t[32], a[32], u[32];
	printf("volumes:      %u\n", s.volumes);
	printf("data servers: %u up of %u\n", s.ds_up, s.ds_total);
	printf("chunks:       %" PRIu64 "\n", s.chunks);
	printf("replication:  %" PRIu64 " chunk%s short of replicas (%" PRIu64 " with none up); %u cop%s under way, %" PRIu64
	       " made since the MDS started\n",
	       s.under, s.under == 1 ? "" : "s", s.lost, s.recovering, s.recovering == 1 ? "y" : "ies", s.recovered);
	printf("space:        %s total, %s available, %s used by chunks\n", tool_human_size(s.total, t, sizeof(t)),
	       tool_human_size(s.avail, a, sizeof(a)), tool_human_size(s.used, u, sizeof(u)));
	return 0;
}

/* ---- fsck ------------------------------------------------------------------------ */

/* What one FSCK reply prints: with --json, kinds and lines are gathered
 * in memory and printed as one object at the end. */
struct fsck_out {
	FILE *kinds, *items;
	int nkinds, nitems;
};

static void fsck_kind(void *arg, const char *name, uint64_t found, uint64_t fixed)
{
	struct fsck_out *o = arg;
	if (json)
		fprintf(o->kinds, "%s\"%s\":{\"found\":%" PRIu64 ",\"repaired\":%" PRIu64 "}", o->nkinds++ ? "," : "",
			name, found, fixed);
}

static void fsck_item(void *arg, bool fixed, const char *line)
{
	struct fsck_out *o = arg;
	if (json) {
		fprintf(o->items, "%s{\"repaired\":%s,\"line\":", o->nitems++ ? "," : "", fixed ? "true" : "false");
		tool_json_string(o->items, line);
		fputc('}', o->items);
	} else {
		printf("%s%s\n", fixed ? "repaired: " : "", line);
	}
}

/* vdifs-admin fsck [--repair]: 0 clean or all repaired, 1 inconsistencies
 * left, 2 no answer. */
static int cmd_fsck(struct vdifs_client *c)
{
	struct vdifs_fsck_summary sum;
	struct fsck_out o = {0};
	char *kinds = NULL, *items = NULL;
	size_t kl = 0, il = 0;
	if (json && (!(o.kinds = open_memstream(&kinds, &kl)) || !(o.items = open_memstream(&items, &il)))) {
		tool_error("fsck: out of memory");
		if (o.kinds)
			fclose(o.kinds);
		free(kinds);
		return 2;
	}
	int rc = vdifs_fsck(c, repair, !mds_only, &sum, fsck_kind, fsck_item, &o);
	if (json) {
		fclose(o.kinds);
		fclose(o.items);
		if (rc == 0)
			printf("{\"records\":%" PRIu64 ",\"found\":%" PRIu64 ",\"repaired\":%" PRIu64
			       ",\"kinds\":{%s},\"items\":[%s]}\n",
			       sum.keys, sum.found, sum.repaired, kinds, items);
		free(kinds);
		free(items);
	} else if (rc == 0) {
		printf("fsck: %" PRIu64 " records checked, %" PRIu64 " inconsistencies, %" PRIu64 " repaired\n", sum.keys,
		       sum.found, sum.repaired);
	}
	if (rc < 0) {
		fail("fsck");
		return 2;
	}
	return sum.found > sum.repaired ? 1 : 0;
}

int main(int argc, char **argv)
{
	tool_prog = "vdifs-admin";
	struct tool_target t;
	tool_target_defaults(&t);
	enum { O_MDS = 256, O_KEY, O_INSECURE, O_JSON, O_FORCE, O_CHUNK, O_REPLICAS, O_REPAIR, O_WAIT, O_MDS_ONLY };
	static const struct option longopts[] = {
		{"cluster", required_argument, NULL, 'C'}, {"mds", required_argument, NULL, O_MDS},
		{"key-file", required_argument, NULL, O_KEY}, {"insecure", no_argument, NULL, O_INSECURE},
		{"json", no_argument, NULL, O_JSON},        {"force", no_argument, NULL, O_FORCE},
		{"chunk-size", required_argument, NULL, O_CHUNK},
		{"replicas", required_argument, NULL, O_REPLICAS},
		{"repair", no_argument, NULL, O_REPAIR},
		{"wait", no_argument, NULL, O_WAIT},
		{"mds-only", no_argument, NULL, O_MDS_ONLY},
		{"help", no_argument, NULL, 'h'},           {NULL, 0, NULL, 0},
	};
	int opt;
	while ((opt = getopt_long(argc, argv, "C:h", longopts, NULL)) != -1) {
		switch (opt) {
		case 'C':
			if (tool_target_from_cluster_dir(&t, optarg) < 0)
				return 1;
			break;
		case O_MDS: snprintf(t.mds, sizeof(t.mds), "%s", optarg); break;
		case O_KEY: snprintf(t.key_file, sizeof(t.key_file), "%s", optarg); break;
		case O_INSECURE: t.insecure = true; break;
		case O_JSON: json = true; break;
		case O_FORCE: force = true; break;
		case O_REPAIR: repair = true; break;
		case O_WAIT: wait_recovery = true; break;
		case O_MDS_ONLY: mds_only = true; break;
		case O_CHUNK:
			if (config_parse_size(optarg, &chunk_size) < 0) {
				tool_error("--chunk-size: '%s' is not a size (e.g. 64M)", optarg);
				return 2;
			}
			break;
		case O_REPLICAS: {
			char *end;
			unsigned long v = strtoul(optarg, &end, 10);
			if (*end || v < 1 || v > VDIFS_MAX_REPLICAS) {
				tool_error("--replicas: '%s' is not a number from 1 to %d", optarg, VDIFS_MAX_REPLICAS);
				return 2;
			}
			replicas = (uint32_t)v;
			break;
		}
		case 'h': fputs(usage, stdout); return 0;
		default: fputs(usage, stderr); return 2;
		}
	}
	if (optind >= argc) {
		fputs(usage, stderr);
		return 2;
	}
	const char *cmd = argv[optind];
	if (strcmp(cmd, "volume") && strcmp(cmd, "ds") && strcmp(cmd, "status") && strcmp(cmd, "fsck") &&
	    strcmp(cmd, "scrub")) {
		tool_error("unknown command '%s' (see --help)", cmd);
		return 2;
	}
	bool is_fsck = strcmp(cmd, "fsck") == 0;
	if (is_fsck && optind + 1 != argc) {
		tool_error("fsck: takes no arguments (options: --repair, --mds-only, --json)");
		return 2;
	}
	struct vdifs_client *c = tool_connect(&t, VDIFS_ROLE_ADMIN);
	if (!c)
		return is_fsck ? 2 : 1;
	int rc;
	if (strcmp(cmd, "volume") == 0) {
		rc = cmd_volume(c, argc - optind - 1, argv + optind + 1);
	} else if (strcmp(cmd, "ds") == 0) {
		if (optind + 1 >= argc || strcmp(argv[optind + 1], "list") != 0) {
			tool_error("ds: expected 'ds list'");
			rc = 2;
		} else {
			int n = 0;
			if (json)
				putchar('[');
			rc = vdifs_ds_list(c, print_ds, &n) < 0 ? fail("ds list") : 0;
			if (json && rc == 0)
				printf("]\n");
		}
	} else if (is_fsck) {
		rc = cmd_fsck(c);
	} else if (strcmp(cmd, "scrub") == 0) {
		uint32_t n = 0;
		rc = vdifs_scrub(c, &n) < 0 ? fail("scrub") : 0;
		if (rc == 0 && json)
			printf("{\"servers\":%u}\n", n);
		else if (rc == 0 && isatty(STDOUT_FILENO))
			printf("scrub started on %u data server%s\n", n, n == 1 ? "" : "s");
	} else {
		rc = cmd_status(c);
	}
	vdifs_client_free(c);
	return rc;
}
