/*
 * vdifs-clone: writable clones of files on a vdifs mount, their inheritance
 * tree, and flattening.
 *
 *   vdifs-clone SRC DST...      each DST becomes an independent copy of SRC
 *                               (a file or a snapshot in a .snap directory),
 *                               made instantly: it shares SRC's data and owns
 *                               only what it writes.
 *   vdifs-clone tree FILE       the layers FILE's family shares: the oldest
 *                               ancestor's content, the snapshots and clones
 *                               made from it, and the bytes each layer owns.
 *   vdifs-clone flatten FILE    copies what FILE inherits into FILE itself,
 *                               on the data servers (no data crosses the
 *                               network), so it has no ancestor left.
 *
 * The same as a clone happens for `cp SRC DST` (a whole-file
 * copy_file_range into an empty file); vdifs-clone refuses to overwrite DST
 * and says why it failed.
 */
#include "mountctl.h"
#include "toolutil.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Chunks copied per flatten step: a step is one progress update. */
#define FLATTEN_STEP 16

static void usage(FILE *f)
{
	fprintf(f,
		"usage: %s SRC DST...\n"
		"       %s tree [--json] FILE\n"
		"       %s flatten FILE\n"
		"SRC DST...    makes each DST an instant writable clone of SRC (a file or a\n"
		"              snapshot) on the same vdifs mount.  DST must not exist.\n"
		"tree FILE     shows the inheritance tree of FILE's layers: which files and\n"
		"              snapshots share what, and the bytes each layer owns.\n"
		"flatten FILE  copies the data FILE inherits into FILE itself (on the data\n"
		"              servers), so FILE no longer depends on any ancestor.  Needed\n"
		"              when a chain reaches the depth limit (32 layers).\n"
		"(To clone a file named 'tree' or 'flatten', write ./tree.)\n"
		"  --json      machine-readable output (tree)\n"
		"  -h, --help\n"
		"Exit status: 0 done, 1 failed, 2 usage.\n",
		tool_prog, tool_prog, tool_prog);
}

/* A regular file on a vdifs mount, or a printed error. */
static int check_file(const char *path, struct stat *st)
{
	if (stat(path, st) != 0) {
		tool_error("%s: %s", path, strerror(errno));
		return -errno;
	}
	if (!S_ISREG(st->st_mode)) {
		tool_error("%s: not a regular file", path);
		return -EINVAL;
	}
	return mctl_check(path);
}

static int do_clone(const char *src, int ndst, char **dsts)
{
	struct stat ss, ds;
	char ino[32];
	int status = 0;
	if (check_file(src, &ss) < 0)
		return 1;
	snprintf(ino, sizeof(ino), "%" PRIu64, (uint64_t)ss.st_ino);
	for (int k = 0; k < ndst; k++) {
		struct mctl_path p;
		const char *dst = dsts[k];
		if (mctl_split(dst, &p) < 0) {
			status = 1;
			continue;
		}
		/* No lstat(dst) here: a lookup of the missing name would leave
		 * the kernel caching it as missing; the MDS refuses an existing
		 * DST. */
		if (stat(p.dir, &ds) != 0) {
			tool_error("%s: %s", p.dir, strerror(errno));
			status = 1;
			continue;
		}
		if (ds.st_dev != ss.st_dev) {
			tool_error("%s: not on the same vdifs mount as %s", dst, src);
			status = 1;
			continue;
		}
		int rc = mctl_set(p.dir, "clone", ino, p.name);
		if (rc < 0) {
			tool_error("%s: %s", dst, mctl_strerror(-rc, false));
			status = 1;
		}
	}
	return status;
}

/* ---- tree ------------------------------------------------------------------ */

enum { KIND_FILE = 1, KIND_SNAPSHOT = 2, KIND_FROZEN = 3 };

struct node {
	uint64_t layer, parent, ino, size, owned;
	unsigned kind;
	char *path; /* relative to the mount, when found */
};

struct tree {
	struct node *v;
	size_t n, cap;
	size_t unnamed; /* nodes with an inode and no path yet */
};

static int tree_fetch(const char *file, struct tree *t)
{
	for (;;) {
		char op[32], *text = NULL;
		size_t got = 0;
		snprintf(op, sizeof(op), t->n ? "tree.%zu" : "tree", t->n);
		ssize_t len = mctl_get(file, op, &text);
		if (len < 0)
			return (int)len;
		for (char *save = NULL, *line = strtok_r(text ? text : (char[]){0}, "\n", &save); line;
		     line = strtok_r(NULL, "\n", &save)) {
			struct node nd = {0};
			if (sscanf(line, "%" SCNu64 " %" SCNu64 " %u %" SCNu64 " %" SCNu64 " %" SCNu64, &nd.layer,
				   &nd.parent, &nd.kind, &nd.ino, &nd.size, &nd.owned) != 6) {
				free(text);
				return -EPROTO;
			}
			if (t->n == t->cap) {
				size_t cap = t->cap ? t->cap * 2 : 64;
				struct node *v = realloc(t->v, cap * sizeof(*v));
				if (!v) {
					free(text);
					return -ENOMEM;
				}
				t->v = v;
				t->cap = cap;
			}
			t->v[t->n++] = nd;
			t->unnamed += nd.ino != 0;
			got++;
		}
		free(text);
		if (got == 0)
			return 0;
	}
}

static struct node *node_of_ino(struct tree *t, uint64_t ino)
{
	for (size_t k = 0; k < t->n; k++)
		if (t->v[k].ino == ino && !t->v[k].path)
			return &t->v[k];
	return NULL;
}

/* Names the tree's inodes by walking the mount from root (rel: the path so
 * far), looking into each directory's hidden snapshot directory too. */
static void name_walk(struct tree *t, int dirfd, const char *rel, dev_t dev, int depth)
{
	DIR *d = fdopendir(dirfd);
	if (!d) {
		close(dirfd);
		return;
	}
	struct dirent *e;
	bool snapdir_seen = false;
	while (t->unnamed && (e = readdir(d)) != NULL) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		snapdir_seen |= strcmp(e->d_name, ".snap") == 0;
		struct stat st;
		if (fstatat(dirfd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0 || st.st_dev != dev)
			continue;
		char path[4096];
		snprintf(path, sizeof(path), "%s%s%s", rel, rel[0] ? "/" : "", e->d_name);
		if (S_ISREG(st.st_mode)) {
			struct node *nd;
			while ((nd = node_of_ino(t, (uint64_t)st.st_ino)) != NULL) {
				nd->path = strdup(path);
				t->unnamed--;
			}
		} else if (S_ISDIR(st.st_mode) && depth < 64) {
			int fd = openat(dirfd, e->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
			if (fd >= 0)
				name_walk(t, fd, path, dev, depth + 1);
		}
	}
	/* readdir hides .snap; it is there when the directory has snapshots. */
	if (!snapdir_seen && t->unnamed) {
		int fd = openat(dirfd, ".snap", O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
		char path[4096];
		snprintf(path, sizeof(path), "%s%s.snap", rel, rel[0] ? "/" : "");
		if (fd >= 0)
			name_walk(t, fd, path, dev, depth + 1);
	}
	closedir(d);
}

/* The root of the mount holding file path: its highest ancestor directory
 * on the same device.  0 or -errno. */
static int mount_root(const char *path, dev_t dev, char *root, size_t len)
{
	char *real = realpath(path, NULL);
	if (!real)
		return -errno;
	char *slash = strrchr(real, '/');
	while (slash && slash != real) {
		struct stat up;
		*slash = '\0'; /* real is now the candidate's parent... */
		char *pslash = strrchr(real, '/');
		const char *parent = pslash == real ? "/" : real;
		char keep = 0;
		if (pslash && pslash != real) {
			keep = *pslash;
			*pslash = '\0';
		}
		bool same = stat(parent, &up) == 0 && up.st_dev == dev;
		if (keep)
			*pslash = keep;
		if (!same)
			break;
		slash = pslash;
	}
	snprintf(root, len, "%s", real[0] ? real : "/");
	free(real);
	return 0;
}

static const char *kind_name(unsigned kind)
{
	return kind == KIND_FILE ? "file" : kind == KIND_SNAPSHOT ? "snapshot" : "frozen";
}

/* Prints layer (its first node is at index first) and its children. */
static void print_layer(const struct tree *t, size_t first, uint64_t self, const char *prefix, bool last,
			bool top)
{
	const struct node *n = &t->v[first];
	char hs[32], line[8192];
	size_t len = 0;
	len += (size_t)snprintf(line + len, sizeof(line) - len, "layer %" PRIu64 ":", n->layer);
	for (size_t k = first; k < t->n && t->v[k].layer == n->layer && len < sizeof(line) - 600; k++) {
		const struct node *m = &t->v[k];
		if (m->kind == KIND_FROZEN)
			len += (size_t)snprintf(line + len, sizeof(line) - len, " (frozen, no file)");
		else
			len += (size_t)snprintf(line + len, sizeof(line) - len, " %s%s%s", m->path ? m->path : "?",
						m->kind == KIND_SNAPSHOT ? " (snapshot)" : "",
						m->ino == self ? " <==" : "");
	}
	printf("%s%s%s, owns %s\n", prefix, top ? "" : last ? "`-- " : "|-- ", line,
	       tool_human_size(n->owned, hs, sizeof(hs)));
	char sub[1024];
	snprintf(sub, sizeof(sub), "%s%s", prefix, top ? "" : last ? "    " : "|   ");
	/* Children: layers whose parent is this one (the first node of each);
	 * the last one found closes the branch. */
	size_t kid = SIZE_MAX;
	for (size_t k = 0; k <= t->n; k++) {
		bool is_kid = k < t->n && t->v[k].parent == n->layer && (k == 0 || t->v[k - 1].layer != t->v[k].layer);
		if (!is_kid && k < t->n)
			continue;
		if (kid != SIZE_MAX)
			print_layer(t, kid, self, sub, k == t->n, false);
		kid = k;
	}
}

static int do_tree(const char *file, bool json)
{
	struct stat st;
	struct tree t = {0};
	char root[4096];
	if (check_file(file, &st) < 0)
		return 1;
	int rc = tree_fetch(file, &t);
	if (rc < 0) {
		tool_error("%s: %s", file, mctl_strerror(-rc, false));
		free(t.v);
		return 1;
	}
	if (mount_root(file, st.st_dev, root, sizeof(root)) == 0) {
		int fd = open(root, O_RDONLY | O_DIRECTORY);
		if (fd >= 0)
			name_walk(&t, fd, "", st.st_dev, 0);
	}
	if (json) {
		printf("{\"file\":");
		tool_json_string(stdout, file);
		printf(",\"mount\":");
		tool_json_string(stdout, root);
		printf(",\"nodes\":[");
		for (size_t k = 0; k < t.n; k++) {
			const struct node *n = &t.v[k];
			printf("%s{\"layer\":%" PRIu64 ",\"parent\":%" PRIu64 ",\"kind\":\"%s\",\"ino\":%" PRIu64
			       ",\"size\":%" PRIu64 ",\"owned\":%" PRIu64 ",\"path\":",
			       k ? "," : "", n->layer, n->parent, kind_name(n->kind), n->ino, n->size, n->owned);
			if (n->path)
				tool_json_string(stdout, n->path);
			else
				printf("null");
			printf("}");
		}
		printf("]}\n");
	} else {
		/* The root layer: the one whose parent is no layer of the tree. */
		for (size_t k = 0; k < t.n; k++) {
			bool has_parent = false;
			for (size_t p = 0; p < t.n && !has_parent; p++)
				has_parent = t.v[p].layer == t.v[k].parent;
			if (!has_parent && (k == 0 || t.v[k - 1].layer != t.v[k].layer))
				print_layer(&t, k, (uint64_t)st.st_ino, "", true, true);
		}
	}
	for (size_t k = 0; k < t.n; k++)
		free(t.v[k].path);
	free(t.v);
	return 0;
}

/* ---- flatten ----------------------------------------------------------------- */

static int do_flatten(const char *file)
{
	struct stat st;
	char *text = NULL, step[64];
	if (check_file(file, &st) < 0)
		return 1;
	int rc = mctl_set_value(file, "flatten", "begin");
	ssize_t got = rc < 0 ? rc : mctl_get(file, "flatten", &text);
	if (got < 0) {
		tool_error("%s: flatten: %s", file, mctl_strerror((int)-got, false));
		mctl_set_value(file, "flatten", "abort");
		return 1;
	}
	unsigned flat = 0;
	uint64_t chunks = 0;
	if (!text || sscanf(text, "flat=%u\nchunks=%" SCNu64, &flat, &chunks) != 2) {
		free(text);
		tool_error("%s: flatten: malformed answer from the mount", file);
		mctl_set_value(file, "flatten", "abort");
		return 1;
	}
	free(text);
	if (flat) /* nothing inherited: already flat */
		return mctl_set_value(file, "flatten", "abort") < 0;
	for (uint64_t first = 0; first < chunks && rc == 0; first += FLATTEN_STEP) {
		tool_progress("flattening", first, chunks);
		snprintf(step, sizeof(step), "copy %" PRIu64 " %u", first, FLATTEN_STEP);
		rc = mctl_set_value(file, "flatten", step);
	}
	if (rc == 0) {
		tool_progress("flattening", chunks, chunks);
		rc = mctl_set_value(file, "flatten", "end");
	} else {
		mctl_set_value(file, "flatten", "abort");
	}
	if (rc < 0) {
		tool_error("%s: flatten: %s", file, mctl_strerror(-rc, false));
		return 1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	enum { O_JSON = 256 };
	static const struct option opts[] = {
		{"help", no_argument, NULL, 'h'}, {"json", no_argument, NULL, O_JSON}, {NULL, 0, NULL, 0}};
	bool json = false;
	int c;
	tool_prog = "vdifs-clone";
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		if (c == O_JSON) {
			json = true;
			continue;
		}
		usage(c == 'h' ? stdout : stderr);
		return c == 'h' ? 0 : 2;
	}
	int n = argc - optind;
	const char *cmd = n > 0 ? argv[optind] : "";
	if (strcmp(cmd, "tree") == 0 && n == 2)
		return do_tree(argv[optind + 1], json);
	if (strcmp(cmd, "flatten") == 0 && n == 2 && !json)
		return do_flatten(argv[optind + 1]);
	if (n < 2 || json || strcmp(cmd, "tree") == 0 || strcmp(cmd, "flatten") == 0) {
		usage(stderr);
		return 2;
	}
	return do_clone(argv[optind], n - 1, argv + optind + 1);
}
