/*
 * recovery: re-replication.  Brings every chunk back to its volume's
 * replica count after data servers went down (docs/ARCHITECTURE.md,
 * "Failures").
 *
 * Each tick (recovery_tick, on the MDS's sweep timer) looks for chunks with
 * fewer replicas on servers that are up than their volume asks and plans
 * copies, chunks with a single replica left first.  A copy is a task for a server
 * that holds the chunk (the source): it is handed out in the source's
 * heartbeat reply, the source pushes the chunk to the destination server
 * (mirroring the writes it gets meanwhile) and reports it done in a later
 * heartbeat; recovery_done then makes the replica set the replicas on
 * servers that are up plus the destination, with a new version, in one
 * LevelDB batch: the copies on servers that are down are stale from then
 * on.  Until then a server that comes back keeps its copies (they missed
 * no write: a write that fails on a replica drops it first, CHUNK_REPAIR).
 *
 * A delta chunk is copied only to a server that holds every chunk of its
 * chain, so that copy-on-write and reads stay local there; its bases, being
 * older chunks, are copied first.  Tasks live in memory: after an MDS
 * restart the scan plans them again.
 */
#ifndef VDIFS_MDS_RECOVERY_H
#define VDIFS_MDS_RECOVERY_H

#include "mds.h"
#include "proto.h"

#include <stdint.h>

#define RECOVERY_DEFAULT_STREAMS 2      /* copies at a time per source server */
#define RECOVERY_TASK_TIMEOUT_MS 120000 /* a task not reported done by then is planned again */
#define RECOVERY_SCAN_MS 1000           /* scans while busy: at most one a second */
#define RECOVERY_IDLE_SCAN_MS 30000     /* scans while nothing changes */
#define RECOVERY_BUSY_MS 60000          /* busy for this long after servers come or go */
#define RECOVERY_TASKS_MAX 256

struct recovery;

/* NULL on ENOMEM.  streams 0: RECOVERY_DEFAULT_STREAMS. */
struct recovery *recovery_new(struct mds *m, unsigned streams);
void recovery_free(struct recovery *r);

/* Expires tasks and plans new ones (see above).  0 or -errno (logged). */
int recovery_tick(struct recovery *r);

/* The tasks for server ds not handed out yet: appends repl_task records to
 * tasks and returns how many (they count as handed out). */
uint32_t recovery_take_tasks(struct recovery *r, uint32_t ds, struct wbuf *tasks);

/* A copy reported by server src: takes it into the chunk's replica set
 * when the task and the chunk still agree, and appends the repl_commit
 * answer to commits (version 0: refused).  0 or -errno (-EIO, -ENOMEM: the
 * answer is not appended; the server asks again). */
int recovery_done(struct recovery *r, uint32_t src, const struct msg_repl_done *d, struct wbuf *commits);

/* Copies under way, and copies taken into replica sets since the start. */
void recovery_counts(const struct recovery *r, uint32_t *running, uint64_t *recovered);

#endif
