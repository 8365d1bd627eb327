/*
 * mds: the state one metadata server runs on, handed to every module --
 * the LevelDB store, the data-server registry and the client sessions.
 *
 * mds_open() brings it up from a data directory (and frees orphans left by a
 * previous run); the daemon and the unit tests both start here.
 */
#ifndef VDIFS_MDS_H
#define VDIFS_MDS_H

#include "dsreg.h"
#include "mdstore.h"
#include "session.h"

#include <stddef.h>
#include <stdint.h>

struct recovery;

struct mds {
	struct mdstore *store;
	struct dsreg *dsreg;
	struct session_tab *sessions;
	struct recovery *recovery; /* re-replication (recovery.h) */
	uint32_t scrub_requests;   /* vdifs-admin scrub: told to data servers in heartbeats */
	struct replicas_checks *checks; /* chunk lists asked for by fsck (replicas.h) */
	struct dedup_floors *dedup_floors; /* where each session's live records start (dedup.c) */
};

struct mds_options {
	uint32_t heartbeat_ms; /* 0: DSREG_DEFAULT_HEARTBEAT_MS */
	uint32_t ds_timeout_ms; /* 0: DSREG_DEFAULT_TIMEOUT_MS */
	uint32_t recovery_streams; /* 0: RECOVERY_DEFAULT_STREAMS */
};

/* Opens the LevelDB at db_path (created if missing), loads the registry and
 * frees orphan inodes left from a previous run.  Returns 0 and *out, or
 * -errno with a message in err.  The caller frees it with mds_close(). */
int mds_open(const char *db_path, const struct mds_options *opts, struct mds **out, char *err,
	     size_t errlen);
/* Frees m; open counts held by sessions are forgotten (their orphans are
 * freed at the next mds_open).  NULL is fine. */
void mds_close(struct mds *m);

#endif
