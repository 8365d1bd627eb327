/*
 * dsreg: the registry of data servers -- identity, liveness, space, placement
 * of new chunks, and the per-server queues of chunk replicas to delete.
 *
 * A data server is known by its uuid: registering again with the same uuid
 * (after a restart, or from a new address) gives back the same id.  Records
 * live in LevelDB ("S" keys); liveness and current space live in memory and
 * come from heartbeats, so after an MDS restart every server is down until
 * it registers again.  A server is up from the end of its chunk report
 * (which follows every registration) until timeout_ms passes without a
 * heartbeat; a heartbeat from a server that is not up is
 * refused with ENOENT (register again), so a server that was marked down
 * always reports its chunks before it is used again.
 */
#ifndef VDIFS_MDS_DSREG_H
#define VDIFS_MDS_DSREG_H

#include "mdstore.h"
#include "proto.h"

#include <stdbool.h>
#include <stdint.h>

#define DSREG_DEFAULT_HEARTBEAT_MS 500
#define DSREG_DEFAULT_TIMEOUT_MS 3000
/* Placement skips a server with this little space or less (its chunks
 * being written still need room); see dsreg_set_min_avail. */
#define DSREG_DEFAULT_MIN_AVAIL (128ull << 20)
/* Most chunk ids handed to a server in one heartbeat reply. */
#define DSREG_DELETE_BATCH 1024

struct dsreg;

struct dsreg_entry {
	struct md_ds rec;     /* as registered; space updated by heartbeats */
	bool seen;            /* registered or heartbeat since the MDS started */
	bool validated;       /* its chunk report since it registered is in */
	uint64_t last_seen_ms; /* registry clock */
};

struct dsreg_totals {
	uint32_t up, known;
	uint64_t total, avail, used; /* sums over servers that are up */
};

/* Loads every registered server from st.  Returns 0 and *out, -EIO on a
 * corrupt record, -ENOMEM.  The registry borrows st; free it before st. */
int dsreg_open(struct mdstore *st, uint32_t heartbeat_ms, uint32_t timeout_ms, struct dsreg **out);
void dsreg_free(struct dsreg *r);

/* Replaces the monotonic millisecond clock (tests); the registry's start
 * time is taken again from the new clock. */
void dsreg_set_clock(struct dsreg *r, uint64_t (*now_ms)(void *arg), void *arg);
/* Sets the free space at or below which placement skips a server. */
void dsreg_set_min_avail(struct dsreg *r, uint64_t bytes);
/* Seeds the placement random generator (tests make placement repeatable). */
void dsreg_seed(struct dsreg *r, uint64_t seed);
uint32_t dsreg_heartbeat_ms(const struct dsreg *r);
/* How long a server may serve I/O after sending a heartbeat the MDS
 * answered: shorter than the liveness timeout, so that a server cut off
 * from the MDS has stopped serving by the time the MDS marks it down and
 * hands its chunks' writes to other replicas. */
uint32_t dsreg_lease_ms(const struct dsreg *r);
/* The server's chunk report is in (DS_CHUNK_REPORT, last part): it counts
 * as up from now on.  0 or -ENOENT (unknown, or not registered since the
 * MDS started). */
int dsreg_validated(struct dsreg *r, uint32_t id);

/* DS_REGISTER: same uuid -> same id; a new uuid gets a new id.  Stores the
 * address and space, marks the server seen now.  0 and *ds_id, -EINVAL (empty
 * uuid or host, port 0), -EIO, -ENOMEM. */
int dsreg_register(struct dsreg *r, const struct msg_ds_register_req *req, uint32_t *ds_id);

/* DS_HEARTBEAT: updates space and last-seen, drops the chunk ids the server
 * reports deleted from its queue, and appends up to DSREG_DELETE_BATCH ids
 * still queued for it to ids (u64 little-endian each), count in *count.
 * -ENOENT for an unknown ds id or one that is not up (the server must
 * register and report again), -EBADMSG
 * when the deleted blob is not count u64s, -EIO, -ENOMEM. */
int dsreg_heartbeat(struct dsreg *r, const struct msg_ds_heartbeat_req *req, struct wbuf *ids,
		    uint32_t *count);

/* The server with this id, or NULL.  The pointer lives until the next register. */
const struct dsreg_entry *dsreg_get(const struct dsreg *r, uint32_t id);
bool dsreg_is_up(const struct dsreg *r, uint32_t id);

/* The registry's clock (monotonic ms; the tests' when replaced). */
uint64_t dsreg_now_ms(const struct dsreg *r);
/* Ids of the servers up now, in id order (at most cap): how many. */
size_t dsreg_up_ids(const struct dsreg *r, uint32_t *out, size_t cap);

/* True while the registry is settling after an MDS start: less than the
 * liveness timeout has passed and some server registered before the start
 * has not been heard from yet.  Placement done now may miss servers that
 * are about to report. */
bool dsreg_settling(const struct dsreg *r);

/*
 * Chooses up to want distinct servers that are up and have more space than
 * the reserve (DSREG_DEFAULT_MIN_AVAIL), weighted by
 * available space.  Servers in prefer (that are up) come first, in order;
 * servers in exclude are never chosen.  When fewer are up than wanted, uses
 * as many as there are.  0 with out[0..*nout), or -ENOSPC when none qualifies.
 */
int dsreg_place(struct dsreg *r, uint32_t want, const uint32_t *prefer, uint32_t nprefer,
		uint32_t *out, uint32_t *nout);

/* Appends a replica record {ds_id, host, port} for ds id (empty host and
 * port 0 for a server no longer known). */
void dsreg_put_replica(const struct dsreg *r, struct wbuf *b, uint32_t id);
/* Appends a ds_info record per server, in id order. */
void dsreg_list(const struct dsreg *r, struct wbuf *items, uint32_t *count);
void dsreg_totals(const struct dsreg *r, struct dsreg_totals *t);
/* Logs servers that went down or came up since the last sweep. */
void dsreg_sweep(struct dsreg *r);

#endif
