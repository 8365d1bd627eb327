/* mountctl: talking to a vdifs mount through its control xattrs (see mountctl.h). */
#include "mountctl.h"

#include "toolutil.h"

#include <errno.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/xattr.h>

#define MCTL_PREFIX "user.vdifs."

int mctl_split(const char *path, struct mctl_path *out)
{
	char a[4096], b[4096];
	if (strlen(path) >= sizeof(a) || path[0] == '\0') {
		tool_error("%s: invalid path", path);
		return -EINVAL;
	}
	strcpy(a, path);
	strcpy(b, path);
	/* dirname and basename may modify their argument. */
	const char *d = dirname(a), *n = basename(b);
	if (strlen(n) >= sizeof(out->name) || strcmp(n, "/") == 0 || strcmp(n, ".") == 0 || strcmp(n, "..") == 0) {
		tool_error("%s: not a file name", path);
		return -EINVAL;
	}
	snprintf(out->dir, sizeof(out->dir), "%s", d);
	snprintf(out->name, sizeof(out->name), "%s", n);
	return 0;
}

int mctl_check(const char *path)
{
	/* Every vdifs file answers this name (an empty list at worst); other
	 * file systems have no such attribute or no user xattrs at all. */
	ssize_t n = getxattr(path, MCTL_PREFIX "snaps", NULL, 0);
	if (n >= 0)
		return 0;
	int err = errno;
	if (err == ENODATA || err == ENOTSUP || err == EOPNOTSUPP) {
		tool_error("%s: not on a vdifs mount", path);
		return -ENOTSUP;
	}
	tool_error("%s: %s", path, strerror(err));
	return -err;
}

int mctl_set_value(const char *path, const char *op, const char *value)
{
	char name[64];
	snprintf(name, sizeof(name), MCTL_PREFIX "%s", op);
	return setxattr(path, name, value, strlen(value), 0) == 0 ? 0 : -errno;
}

int mctl_set(const char *dir, const char *op, const char *a, const char *b)
{
	char name[64], value[600];
	snprintf(name, sizeof(name), MCTL_PREFIX "%s", op);
	int n = snprintf(value, sizeof(value), "%s/%s", a, b);
	if (n < 0 || (size_t)n >= sizeof(value))
		return -ENAMETOOLONG;
	return setxattr(dir, name, value, (size_t)n, 0) == 0 ? 0 : -errno;
}

ssize_t mctl_get(const char *path, const char *op, char **out)
{
	char name[64];
	snprintf(name, sizeof(name), MCTL_PREFIX "%s", op);
	*out = NULL;
	for (int tries = 0; tries < 4; tries++) {
		ssize_t n = getxattr(path, name, NULL, 0);
		if (n < 0)
			return -errno;
		char *buf = malloc((size_t)n + 1);
		if (!buf)
			return -ENOMEM;
		ssize_t got = getxattr(path, name, buf, (size_t)n);
		if (got < 0 && errno == ERANGE) { /* grew in between */
			free(buf);
			continue;
		}
		if (got < 0) {
			int err = errno;
			free(buf);
			return -err;
		}
		buf[got] = '\0';
		*out = buf;
		return got;
	}
	return -ERANGE;
}

const char *mctl_strerror(int err, bool about_snapshot)
{
	switch (err) {
	case ENOENT: return about_snapshot ? "no such snapshot" : "no such file";
	case EEXIST: return about_snapshot ? "snapshot exists" : "file exists";
	case EMLINK: return "depth limit reached (flatten the file first)";
	case EROFS: return "read-only (a snapshot, or a read-only mount)";
	case EINVAL: return "not a regular file, or an invalid name";
	case ENOTEMPTY: return "destination is not empty";
	case EBUSY: return "the file changed during the flatten (nothing was changed: run it again)";
	case EALREADY: return "another flatten of the file is running";
	case EXDEV: return "not on the same vdifs mount";
	default: return strerror(err);
	}
}
