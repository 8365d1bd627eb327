/*
 * handlers: the data server's requests (DS_WRITE, DS_READ, DS_PUNCH, DS_SYNC,
 * DS_SEEK, DS_STAT, DS_DELETE, DS_COPY) on its chunkstore.  DS_WRITE, DS_PUNCH and
 * DS_SYNC are applied locally, then forwarded in parallel to the replicas the
 * request names, and answered once every replica has answered (or one has
 * failed or timed out: the reply then names that replica).
 *
 * Requests on delta chunks carry the chunk's extent and chain of bases; they
 * are checked here (bounds and well-formedness) and resolved by the
 * chunkstore.  The server counts what it receives and writes the counters to
 * a stats file (handlers_config.stats_path) once a second when they changed,
 * and when freed.
 *
 * Runs on the server's event loop thread, like the chunkstore it uses; only
 * the fdatasync of DS_SYNC runs on a few worker threads (workers.h), on a
 * duplicate of the chunk's file descriptor, so the loop never waits for a
 * disk flush.  DS_COPY's reads, writes and syncs run on threads of their own
 * (a few copies at a time, the others queued), so that a long copy neither
 * stalls the loop nor delays a DS_SYNC.
 */
#ifndef VDIFS_DS_HANDLERS_H
#define VDIFS_DS_HANDLERS_H

#include "chunkstore.h"
#include "rpc.h"

#include <stdint.h>

#define HANDLERS_FWD_TIMEOUT_DEFAULT_MS 5000u
#define HANDLERS_SYNC_THREADS_DEFAULT 4u
#define HANDLERS_COPY_THREADS_DEFAULT 2u
#define HANDLERS_READ_THREADS_DEFAULT 8u

struct event_base;
struct handlers;

struct handlers_config {
	struct event_base *base;     /* the server's loop: forwards run on it */
	struct chunkstore *store;    /* used, not owned */
	const struct rpc_auth *auth; /* for connections to other data servers (copied) */
	const char *name;            /* told to other data servers in HELLO */
	uint32_t max_payload;        /* bound on replies from other data servers */
	uint32_t fwd_timeout_ms;     /* a replica silent this long fails the operation (0: default) */
	unsigned sync_threads;       /* threads running DS_SYNC's fdatasync (0: default) */
	unsigned copy_threads;       /* threads running DS_COPY, = copies at a time (0: default) */
	unsigned read_threads;       /* threads fetching cold DS_READ data from disk (0: default) */
	const char *stats_path;      /* counters written here ("key value" lines); NULL: none (copied) */
};

/* Counters of requests received (those of the chunkstore are added to the
 * stats file too).  A forwarded copy is one that came from another data
 * server (a connection with role VDIFS_ROLE_DS). */
struct handlers_stats {
	uint64_t write_client_reqs;  /* DS_WRITE from clients */
	uint64_t write_client_bytes; /* their payload bytes */
	uint64_t write_fwd_reqs;     /* DS_WRITE forwarded by a primary */
	uint64_t write_fwd_bytes;
	uint64_t read_reqs;          /* DS_READ */
	uint64_t read_bytes;         /* bytes asked */
	uint64_t read_fetches;       /* DS_READs not all in the page cache (read from disk) */
	uint64_t copy_reqs;          /* DS_COPY (well formed) */
};

/* Handler state; NULL on ENOMEM. */
struct handlers *handlers_new(const struct handlers_config *cfg);
/* Sets a function called after each successful DS_DELETE (e.g. to report
 * the deletion to the MDS); fn NULL removes it. */
void handlers_on_delete(struct handlers *h, void (*fn)(void *arg, uint64_t chunk_id), void *arg);
/*
 * Mirrors: while chunk_id is being copied to host:port (re-replication),
 * every write and punch of it is also forwarded there, on the connection
 * the copy uses, so the copy misses none (see replicate.h).  A write the
 * mirror does not take stops the mirror and calls failed; the write itself
 * is not failed for it.  start: 0, -EBUSY (already mirrored), -ENOSPC.
 */
typedef void (*handlers_mirror_failed_fn)(void *arg, uint64_t chunk_id, const char *why);
int handlers_mirror_start(struct handlers *h, uint64_t chunk_id, const char *host, uint16_t port,
			  handlers_mirror_failed_fn failed, void *arg);
void handlers_mirror_stop(struct handlers *h, uint64_t chunk_id);
/* The pooled connection to another data server (the one forwards and
 * mirrors use); NULL on ENOMEM. */
struct rpc_peer *handlers_peer(struct handlers *h, const char *host, uint16_t port);

/* Sets the gate asked before every request but DS_STAT: when it says no,
 * the request gets EAGAIN and its reason (e.g. mdslink_serving: no lease
 * from the MDS).  fn NULL (the default) serves everything. */
void handlers_gate(struct handlers *h, bool (*serving)(void *arg, char *why, size_t cap), void *arg);
/* Closes the connections to other data servers: forwards still in flight
 * complete with an error reply first; writes the stats file a last time.
 * NULL is a no-op. */
void handlers_free(struct handlers *h);
/* The counters so far. */
const struct handlers_stats *handlers_stats(const struct handlers *h);
/* Writes the stats file now (temporary file and rename, no sync): 0,
 * -ENOENT when there is no stats_path, or -errno (logged). */
int handlers_write_stats(struct handlers *h);
/* The rpc_handler_fn (arg: the struct handlers).  Answers every request
 * exactly once, now or when its forwards complete; malformed requests are
 * rejected (error reply and connection closed), unknown types get
 * -EOPNOTSUPP. */
void handlers_dispatch(void *arg, const struct rpc_request *req);

#endif
