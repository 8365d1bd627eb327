/*
 * replicate: the copies of chunks this server makes to other servers when
 * the MDS asks (re-replication after a failure, docs/ARCHITECTURE.md
 * "Failures").
 *
 * A task names a chunk, the version the MDS has for it and a destination
 * server.  The copy: bring the local replica to that version; mirror the
 * chunk's writes to the destination (handlers_mirror_start); send
 * DS_RECV BEGIN, then the block table and written blocks in pieces of at
 * most 1 MiB (skipping pieces with nothing written), at most rate_mb_s
 * MiB/s over all copies; DS_SYNC on the destination; then report the copy
 * done to the MDS (in the next heartbeat, replicate_take_done) and keep
 * mirroring until the MDS answers (replicate_commit): taken, with the new
 * version, which both replicas record (the destination by DS_SET_VERSION,
 * sent on the same connection after every mirrored write); or refused,
 * and the copy on the destination is deleted.  Everything runs on the
 * server's event loop.
 */
#ifndef VDIFS_DS_REPLICATE_H
#define VDIFS_DS_REPLICATE_H

#include "chunkstore.h"
#include "handlers.h"
#include "proto.h"

#include <stdint.h>

#define REPLICATE_DEFAULT_MB_S 200u
#define REPLICATE_PIECE (1u << 20)
#define REPLICATE_JOBS_MAX 64

struct event_base;
struct replicate;

struct replicate_config {
	struct event_base *base;
	struct chunkstore *store; /* used, not owned */
	struct handlers *h;       /* used, not owned: mirrors and connections */
	uint32_t rate_mb_s;       /* 0: REPLICATE_DEFAULT_MB_S */
};

struct replicate *replicate_new(const struct replicate_config *cfg);
/* Stops every copy (the destinations' partial copies are left to the MDS). */
void replicate_free(struct replicate *r);

/* A task from the MDS (a heartbeat reply).  A task for a chunk already
 * being copied, or beyond REPLICATE_JOBS_MAX, is ignored (the MDS plans it
 * again later). */
void replicate_add(struct replicate *r, const struct msg_repl_task *t);
/* Appends a repl_done record for every copy finished (or failed) and not
 * answered yet; returns how many.  Sent in each heartbeat until answered. */
uint32_t replicate_take_done(struct replicate *r, struct wbuf *done);
/* The MDS's answer to a repl_done. */
void replicate_commit(struct replicate *r, const struct msg_repl_commit *c);

/* Counters for ds.stats. */
struct replicate_stats {
	uint64_t copies_done;  /* taken by the MDS */
	uint64_t copies_failed;
	uint64_t bytes_sent;
};
void replicate_stats(const struct replicate *r, struct replicate_stats *out);

#endif
