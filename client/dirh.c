/*
 * dirh: directory handles for vdifs-mount (see dirh.h).  A listing is taken
 * whole at opendir with READDIR pages of the client API; directories of VDI
 * farms hold at most a few thousand images, so one snapshot per opendir is
 * cheap and gives readdir stable offsets.
 */
#include "dirh.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static int dirh_add(struct dirh *d, const char *name, const struct vdifs_attr *attr, bool dot)
{
	if (d->n == d->cap) {
		size_t cap = d->cap ? d->cap * 2 : 32;
		struct dirh_entry *v = realloc(d->v, cap * sizeof(*v));
		if (!v)
			return -ENOMEM;
		d->v = v;
		d->cap = cap;
	}
	struct dirh_entry *e = &d->v[d->n];
	e->name = strdup(name);
	if (!e->name)
		return -ENOMEM;
	e->attr = *attr;
	e->dot = dot;
	d->n++;
	return 0;
}

static int dirh_collect(void *arg, const char *name, const struct vdifs_attr *attr)
{
	struct dirh *d = arg;
	if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
		return 0; /* added by dirh_load itself */
	return dirh_add(d, name, attr, false);
}

int dirh_load(struct fs *fs, uint64_t ino, struct dirh **out)
{
	struct dirh *d = calloc(1, sizeof(*d));
	struct vdifs_attr dot = { .ino = ino, .mode = S_IFDIR };
	struct vdifs_attr dotdot = { .ino = ino, .mode = S_IFDIR };
	int rc;

	*out = NULL;
	if (!d)
		return -ENOMEM;
	/* The MDS does not name a directory's parent (LOOKUP ".." is EINVAL)
	 * and the kernel resolves ".." itself, so only the d_ino of ".." in a
	 * listing is approximate: the directory's own number, as for the root. */
	rc = dirh_add(d, ".", &dot, true);
	if (rc == 0)
		rc = dirh_add(d, "..", &dotdot, true);
	if (rc == 0)
		rc = vdifs_readdir(fs->c, ino, dirh_collect, d);
	if (rc != 0) {
		dirh_free(d);
		return rc;
	}
	*out = d;
	return 0;
}

void dirh_free(struct dirh *d)
{
	if (!d)
		return;
	for (size_t i = 0; i < d->n; i++)
		free(d->v[i].name);
	free(d->v);
	free(d);
}
