/*
 * replicas: keeping each chunk's replica set true after failures.
 *
 * - A data server's chunk report (after every registration) is checked
 *   against the chunk table: copies the MDS does not know, that are not in
 *   the chunk's replica set any more, or that the server found corrupt are
 *   deleted before the server is used again (a server that missed writes
 *   while it was away never serves them).
 * - CHUNK_REPAIR, from a client whose write failed on a replica: the
 *   replicas on servers marked down leave the set and the chunk's version
 *   goes up, so the client finishes its write on the others and the copies
 *   left behind are known stale (docs/ARCHITECTURE.md, "Failures").
 * - Health: how many chunks have fewer replicas on servers that are up
 *   than their volume asks for.
 */
#ifndef VDIFS_MDS_REPLICAS_H
#define VDIFS_MDS_REPLICAS_H

#include "mds.h"
#include "proto.h"

#include <stdbool.h>
#include <stdint.h>

/* Replica-set edits (the caller bumps the version once for the change). */
bool replicas_holds(const struct md_chunk *c, uint32_t ds);
void replicas_drop(struct md_chunk *c, uint32_t ds);
/* Drops the replicas on servers that are not up; returns how many. */
uint32_t replicas_drop_down(const struct dsreg *reg, struct md_chunk *c);

/* Most chunk_version records in one DS_CHUNK_REPORT. */
#define REPLICAS_REPORT_MAX 65536u

/* DS_CHUNK_REPORT: appends the ids the server must delete (u64 LE each) to
 * ids, count in *count; the last part marks the server validated.  0,
 * -ENOENT (unknown server: register first), -EBADMSG (items not count
 * records, too many), -EIO, -ENOMEM. */
int replicas_report(struct mds *m, const struct msg_ds_report_req *req, struct wbuf *ids, uint32_t *count);

/* CHUNK_REPAIR: appends the chunk_loc to retry with to reply.  0, -EAGAIN
 * (every replica up, or none), -ESTALE (the file's layer has no such
 * chunk at index), -ENOENT (no such file), -EIO, -ENOMEM. */
int replicas_repair(struct mds *m, const struct msg_chunk_repair_req *req, struct wbuf *reply);

/* The replica count chunk c's volume asks for (its own count when the
 * volume is gone), through a one-entry cache: chunks of a volume are
 * mostly adjacent in id order.  Start the cache zeroed. */
struct replicas_want_cache {
	uint32_t vol, replicas;
	bool valid;
};
uint32_t replicas_want(struct mdstore_txn *t, struct replicas_want_cache *vc, const struct md_chunk *c);

/*
 * Chunk lists for fsck.  replicas_check_lists, when no request is under
 * way, asks every data server for the list of chunks it holds (the
 * heartbeat reply's report counter goes up: replicas_check_ask) and answers
 * -EAGAIN; their DS_CHUNK_REPORT (CHECK) parts are kept here, without the
 * chunks queued for deletion there.  Once every server up has sent its list
 * (a registration after the request counts too) it hands them out: 0 with
 * *lists (each sorted; free with replicas_check_lists_free) and *below
 * (chunk ids from it on were made after the request: not compared), and
 * the next call asks again.  -EAGAIN while lists are missing (*waiting: how
 * many), -ETIMEDOUT when they still are REPLICAS_CHECK_WAIT_MS after the
 * request.
 */
#define REPLICAS_CHECK_WAIT_MS 30000
struct replicas_checks;
struct replicas_check_list {
	uint32_t ds_id;
	uint64_t *ids;
	size_t n;
};
int replicas_check_ask(struct mds *m);
/* The report counter to put in heartbeat replies. */
uint32_t replicas_check_epoch(const struct mds *m);
int replicas_check_lists(struct mds *m, struct replicas_check_list **lists, size_t *nlists, uint64_t *below,
			 uint32_t *waiting);
void replicas_check_lists_free(struct replicas_check_list *lists, size_t n);
void replicas_checks_free(struct replicas_checks *c);

/* Server ds found its copy of chunk id corrupt: when another replica is
 * on a server that is up, that copy leaves the set (version bump) and is
 * queued for deletion there; re-replication makes a new one.  The last
 * copy stays (bad blocks read as EIO, the others are still there).
 * 0, -EIO, -ENOMEM. */
int replicas_corrupt(struct mds *m, uint32_t ds, uint64_t id);

/* Counts chunks with fewer replicas up than their volume's replica count
 * (under) and with none up (lost).  Walks the chunk table: an admin call.
 * 0, -EIO, -ENOMEM. */
int replicas_health(struct mds *m, uint64_t *under, uint64_t *lost);

#endif
