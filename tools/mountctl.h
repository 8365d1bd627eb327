/*
 * mountctl: how vdifs-snap and vdifs-clone talk to a vdifs mount -- through
 * the mount's reserved "user.vdifs." extended attributes (client/snapctl.c),
 * so they need no cluster address or key and the kernel checks permissions.
 */
#ifndef VDIFS_TOOLS_MOUNTCTL_H
#define VDIFS_TOOLS_MOUNTCTL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* A file named by a path: its directory and last component. */
struct mctl_path {
	char dir[4096];
	char name[256];
};

/* Splits path into directory and name.  0, or -EINVAL (printed, naming what). */
int mctl_split(const char *path, struct mctl_path *out);
/* 0 when path is on a vdifs mount; else prints "PROG: PATH: not on a vdifs
 * mount" (or the stat error) and returns -errno. */
int mctl_check(const char *path);
/* setxattr(dir, "user.vdifs." op, "A/B"): 0 or -errno. */
int mctl_set(const char *dir, const char *op, const char *a, const char *b);
/* setxattr(path, "user.vdifs." op, value): 0 or -errno. */
int mctl_set_value(const char *path, const char *op, const char *value);
/* getxattr(path, "user.vdifs." op) into a malloc'ed NUL-terminated *out:
 * length or -errno. */
ssize_t mctl_get(const char *path, const char *op, char **out);
/* The message for an error of a snapshot or clone operation. */
const char *mctl_strerror(int err, bool about_snapshot);

#endif
