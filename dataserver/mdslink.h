/*
 * mdslink: the data server's link to the MDS.  Registers (DS_REGISTER with a
 * uuid that survives restarts, the advertised address and the space), then
 * heartbeats every heartbeat_ms with the space and the chunks deleted since
 * the last acknowledged heartbeat, and deletes the chunks the MDS lists in
 * its replies.  When the MDS goes away it reconnects and registers again
 * every second, logging once per outage.
 *
 * Runs on the event loop thread of the base it is given, like the
 * chunkstore it shares with the handlers.
 */
#ifndef VDIFS_DS_MDSLINK_H
#define VDIFS_DS_MDSLINK_H

#include "chunkstore.h"
#include "replicate.h"
#include "scrub.h"
#include "rpc.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MDSLINK_UUID_FILE "ds.uuid"
#define MDSLINK_UUID_MAX 64
#define MDSLINK_RETRY_MS 1000u
#define MDSLINK_PENDING_MAX (1u << 20) /* deletions kept for reporting */
#define MDSLINK_CORRUPT_MAX 256u       /* bad copies kept for reporting */

struct event_base;
struct mdslink;

struct mdslink_config {
	struct event_base *base;
	struct chunkstore *store;    /* used, not owned */
	const struct rpc_auth *auth; /* copied */
	const char *mds_host;        /* copied */
	uint16_t mds_port;
	const char *adv_host; /* the address clients and peers reach us at (copied) */
	uint16_t adv_port;
	const char *uuid;     /* from mdslink_load_uuid() (copied) */
	uint32_t max_payload; /* bound on MDS replies (0: default) */
	struct replicate *repl; /* copy tasks from the MDS go there (NULL: none taken) */
	struct scrub *scrub;    /* started when the MDS asks (NULL: none) */
	void (*on_fence)(void *arg); /* the lease ran out: stop serving (NULL: nothing more) */
	void *fence_arg;
};

/*
 * Reads the data server's uuid from dir/ds.uuid, or generates a random one
 * and writes it there durably on first use.  Returns 0 with the uuid in
 * out (cap >= MDSLINK_UUID_MAX + 1), or -errno with a message in err (a file
 * that exists but does not hold a uuid is an error, not overwritten).
 */
int mdslink_load_uuid(const char *dir, char *out, size_t cap, char *err, size_t errlen);

/* Starts connecting and registering at once.  NULL on ENOMEM. */
struct mdslink *mdslink_start(const struct mdslink_config *cfg);
/* Stops the timers and closes the connection (NULL is a no-op). */
void mdslink_stop(struct mdslink *l);

/* Records a chunk deleted outside the MDS's delete lists (e.g. DS_DELETE) so
 * the next heartbeat reports it.  Signature fits handlers_config.on_delete. */
void mdslink_note_deleted(void *l, uint64_t chunk_id);

/* Whether the server may serve I/O now: registered, chunks reported, and
 * within the lease of its last answered heartbeat.  When the lease runs
 * out, on_fence is called once (until the next lease).  When not, why says so
 * (for the error reply).  Signature fits handlers_config.serving. */
bool mdslink_serving(void *l, char *why, size_t cap);

/* Records a chunk whose copy here failed a CRC check; the next heartbeat
 * reports it so the MDS replaces this copy.  Signature fits
 * chunkstore_on_corrupt. */
void mdslink_note_corrupt(void *l, uint64_t chunk_id);

/* The id the MDS gave us, and whether we are registered right now. */
uint32_t mdslink_ds_id(const struct mdslink *l);
bool mdslink_registered(const struct mdslink *l);

#endif
