/*
 * vdifs-snap: read-only snapshots of files on a vdifs mount.
 *
 *   vdifs-snap create FILE NAME    snapshot FILE as NAME (instant, any size)
 *   vdifs-snap list [--json] FILE  its snapshots
 *   vdifs-snap delete FILE NAME
 *   vdifs-snap revert FILE NAME    FILE's content becomes the snapshot's
 *   vdifs-snap info [--json] FILE...  size, bytes owned and shared
 *
 * A snapshot NAME of DIR/FILE reads as DIR/.snap/FILE@NAME.
 */
#include "mountctl.h"
#include "toolutil.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static void usage(FILE *f)
{
	fprintf(f,
		"usage: %s create FILE NAME\n"
		"       %s list [--json] FILE\n"
		"       %s delete FILE NAME\n"
		"       %s revert FILE NAME\n"
		"       %s info [--json] FILE...\n"
		"Snapshots of files on a vdifs mount.  A snapshot NAME of DIR/FILE is the\n"
		"read-only file DIR/.snap/FILE@NAME.  Creating, reverting and deleting are\n"
		"instant whatever the file's size.\n"
		"  --json   machine-readable output\n"
		"  -h, --help\n"
		"Exit status: 0 done, 1 failed, 2 usage.\n",
		tool_prog, tool_prog, tool_prog, tool_prog, tool_prog);
}

/* FILE must be a regular file on a vdifs mount. */
static int check_file(const char *path)
{
	struct stat st;
	if (stat(path, &st) != 0) {
		tool_error("%s: %s", path, strerror(errno));
		return -errno;
	}
	if (!S_ISREG(st.st_mode)) {
		tool_error("%s: not a regular file", path);
		return -EINVAL;
	}
	return mctl_check(path);
}

static int do_op(const char *op, const char *path, const char *name)
{
	struct mctl_path p;
	if (check_file(path) < 0 || mctl_split(path, &p) < 0)
		return 1;
	if (strchr(name, '/') || strchr(name, '@') || name[0] == '\0') {
		tool_error("%s: invalid snapshot name (no '/' or '@')", name);
		return 1;
	}
	int rc = mctl_set(p.dir, op, p.name, name);
	if (rc < 0) {
		tool_error("%s: snapshot %s: %s", path, name, mctl_strerror(-rc, true));
		return 1;
	}
	return 0;
}

static int do_list(const char *path, bool json)
{
	char *text;
	if (check_file(path) < 0)
		return 1;
	ssize_t n = mctl_get(path, "snaps", &text);
	if (n < 0) {
		tool_error("%s: %s", path, mctl_strerror((int)-n, false));
		return 1;
	}
	if (json)
		printf("[");
	int count = 0;
	for (char *save = NULL, *line = strtok_r(text ? text : (char[]){0}, "\n", &save); line;
	     line = strtok_r(NULL, "\n", &save)) {
		char name[256];
		uint64_t size;
		int64_t ms;
		uint32_t mns;
		if (sscanf(line, "%255s %" SCNu64 " %" SCNd64 " %" SCNu32, name, &size, &ms, &mns) != 4)
			continue;
		if (json) {
			printf("%s{\"name\":", count ? "," : "");
			tool_json_string(stdout, name);
			printf(",\"size\":%" PRIu64 ",\"mtime\":%" PRId64 ".%09" PRIu32 "}", size, ms, mns);
		} else {
			char hs[32];
			printf("%-24s %10s\n", name, tool_human_size(size, hs, sizeof(hs)));
		}
		count++;
	}
	if (json)
		printf("]\n");
	free(text);
	return 0;
}

static int do_info(int n, char **paths, bool json)
{
	int status = 0, shown = 0;
	if (json)
		printf("[");
	for (int i = 0; i < n; i++) {
		char *text;
		if (check_file(paths[i]) < 0) {
			status = 1;
			continue;
		}
		ssize_t got = mctl_get(paths[i], "info", &text);
		if (got < 0) {
			tool_error("%s: %s", paths[i], mctl_strerror((int)-got, false));
			status = 1;
			continue;
		}
		uint64_t v[8] = {0};
		const char *keys[8] = {"size", "allocated", "owned", "shared", "depth", "snapshots", "layer", "origin"};
		for (char *save = NULL, *line = strtok_r(text ? text : (char[]){0}, "\n", &save); line;
		     line = strtok_r(NULL, "\n", &save))
			for (int k = 0; k < 8; k++) {
				size_t kl = strlen(keys[k]);
				if (strncmp(line, keys[k], kl) == 0 && line[kl] == '=')
					v[k] = strtoull(line + kl + 1, NULL, 10);
			}
		free(text);
		if (json) {
			printf("%s{\"path\":", shown ? "," : "");
			tool_json_string(stdout, paths[i]);
			for (int k = 0; k < 8; k++)
				printf(",\"%s\":%" PRIu64, keys[k], v[k]);
			printf("}");
		} else {
			char a[32], b[32], c[32], d[32];
			printf("%s: size %s, allocated %s, owns %s, shares %s with its ancestors, depth %" PRIu64
			       ", %" PRIu64 " snapshot%s\n",
			       paths[i], tool_human_size(v[0], a, sizeof(a)), tool_human_size(v[1], b, sizeof(b)),
			       tool_human_size(v[2], c, sizeof(c)), tool_human_size(v[3], d, sizeof(d)), v[4], v[5],
			       v[5] == 1 ? "" : "s");
		}
		shown++;
	}
	if (json)
		printf("]\n");
	return status;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"json", no_argument, NULL, 'j'}, {"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}};
	bool json = false;
	int c;
	tool_prog = "vdifs-snap";
	while ((c = getopt_long(argc, argv, "+h", opts, NULL)) != -1) {
		if (c == 'j')
			json = true;
		else if (c == 'h') {
			usage(stdout);
			return 0;
		} else {
			usage(stderr);
			return 2;
		}
	}
	if (optind >= argc) {
		usage(stderr);
		return 2;
	}
	const char *cmd = argv[optind++];
	/* Options may also follow the command. */
	while ((c = getopt_long(argc, argv, "+h", opts, NULL)) != -1) {
		if (c == 'j')
			json = true;
		else {
			usage(c == 'h' ? stdout : stderr);
			return c == 'h' ? 0 : 2;
		}
	}
	int left = argc - optind;
	char **rest = argv + optind;
	if (strcmp(cmd, "create") == 0 && left == 2)
		return do_op("snap.create", rest[0], rest[1]);
	if (strcmp(cmd, "delete") == 0 && left == 2)
		return do_op("snap.delete", rest[0], rest[1]);
	if (strcmp(cmd, "revert") == 0 && left == 2)
		return do_op("snap.revert", rest[0], rest[1]);
	if (strcmp(cmd, "list") == 0 && left == 1)
		return do_list(rest[0], json);
	if (strcmp(cmd, "info") == 0 && left >= 1)
		return do_info(left, rest, json);
	usage(stderr);
	return 2;
}
