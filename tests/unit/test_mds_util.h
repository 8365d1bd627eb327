/*
 * test_mds_util: fixture shared by the MDS unit tests -- a real MDS state
 * (LevelDB, registry, sessions) in a temporary directory that is removed at
 * the end, a fake clock for data-server liveness, and small helpers that
 * turn the request structs into one-line calls.
 */
#ifndef TEST_MDS_UTIL_H
#define TEST_MDS_UTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "dsreg.h"
#include "layer.h"
#include "mds.h"
#include "mdstore.h"
#include "namespace.h"
#include "session.h"
#include "volume.h"

struct tmds {
	char dir[64];
	char db[128];
	struct mds *m;
	uint64_t now_ms; /* the registry's clock */
	bool settle;     /* tmds_alloc asks layer_chunk_alloc to wait for a settling registry */
};

/* cmocka setup/teardown: *state becomes a struct tmds with an open MDS. */
int tmds_setup(void **state);
int tmds_teardown(void **state);
/* Closes and reopens the MDS on the same directory (persistence tests). */
void tmds_reopen(struct tmds *t);

struct vbytes vb(const char *s);

/* Creates a volume (chunk size, replicas: 0 = defaults) and returns its id. */
uint32_t tmds_volume(struct tmds *t, const char *name, uint64_t chunk_size, uint32_t replicas);
/* mknod / symlink returning the new inode; they fail the test on error. */
uint64_t tmds_mknod(struct tmds *t, uint32_t vol, uint64_t parent, const char *name, uint32_t mode);
int tmds_mknod_rc(struct tmds *t, uint32_t vol, uint64_t parent, const char *name, uint32_t mode);
/* Attributes of (vol, ino); fails the test when getattr fails. */
struct vdifs_attr tmds_attr(struct tmds *t, uint32_t vol, uint64_t ino);
/* Inode a name resolves to, or 0 when it does not exist. */
uint64_t tmds_lookup(struct tmds *t, uint32_t vol, uint64_t parent, const char *name);
int tmds_rename(struct tmds *t, uint32_t vol, uint64_t parent, const char *name, uint64_t newparent,
		const char *newname, uint32_t flags);

/* Registers a data server and returns its id. */
uint32_t tmds_add_ds(struct tmds *t, const char *uuid, uint16_t port, uint64_t avail);
/* A heartbeat from ds (no deletions reported); returns the ids queued for it. */
/* A server that was down (or met an MDS restart) registers and reports
 * (an empty report) again, as a data server does on DS_HEARTBEAT ENOENT. */
void tmds_rejoin(struct tmds *t, uint32_t ds);
uint32_t tmds_heartbeat(struct tmds *t, uint32_t ds, uint64_t avail);

/* CHUNK_ALLOC, decoded: chunk id, replicas in ds[] (nrep returned). */
int tmds_alloc(struct tmds *t, uint32_t vol, uint64_t ino, uint64_t index, uint64_t *chunk_id,
	       uint32_t *ds, uint32_t *nrep);
/* Whether a G (deletion queue) key exists for (ds, chunk). */
bool tmds_gc_queued(struct tmds *t, uint32_t ds, uint64_t chunk);
/* Whether the chunk record exists. */
bool tmds_chunk_exists(struct tmds *t, uint64_t chunk);

#endif
