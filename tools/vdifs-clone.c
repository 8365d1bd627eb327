/*
 * vdifs-clone: writable clones of files on a vdifs mount.
 *
 *   vdifs-clone SRC DST   DST becomes an independent copy of SRC (a file or a
 *                         snapshot in a .snap directory), made instantly: it
 *                         shares SRC's data and owns only what it writes.
 *
 * The same happens for `cp SRC DST` (a whole-file copy_file_range into an
 * empty file); vdifs-clone refuses to overwrite DST and says why it failed.
 */
#include "mountctl.h"
#include "toolutil.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

static void usage(FILE *f)
{
	fprintf(f,
		"usage: %s SRC DST\n"
		"Makes DST an instant writable clone of SRC (a file or a snapshot) on the\n"
		"same vdifs mount.  DST must not exist.\n"
		"  -h, --help\n"
		"Exit status: 0 done, 1 failed, 2 usage.\n",
		tool_prog);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {{"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}};
	int c;
	tool_prog = "vdifs-clone";
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		usage(c == 'h' ? stdout : stderr);
		return c == 'h' ? 0 : 2;
	}
	if (argc - optind != 2) {
		usage(stderr);
		return 2;
	}
	const char *src = argv[optind], *dst = argv[optind + 1];
	struct stat ss, ds;
	struct mctl_path p;
	char ino[32];

	if (stat(src, &ss) != 0) {
		tool_error("%s: %s", src, strerror(errno));
		return 1;
	}
	if (!S_ISREG(ss.st_mode)) {
		tool_error("%s: not a regular file", src);
		return 1;
	}
	if (mctl_check(src) < 0 || mctl_split(dst, &p) < 0)
		return 1;
	/* No lstat(dst) here: a lookup of the missing name would leave the
	 * kernel caching it as missing; the MDS refuses an existing DST. */
	if (stat(p.dir, &ds) != 0) {
		tool_error("%s: %s", p.dir, strerror(errno));
		return 1;
	}
	if (ds.st_dev != ss.st_dev) {
		tool_error("%s: not on the same vdifs mount as %s", dst, src);
		return 1;
	}
	snprintf(ino, sizeof(ino), "%" PRIu64, (uint64_t)ss.st_ino);
	int rc = mctl_set(p.dir, "clone", ino, p.name);
	if (rc < 0) {
		tool_error("%s: %s", dst, mctl_strerror(-rc, false));
		return 1;
	}
	return 0;
}
