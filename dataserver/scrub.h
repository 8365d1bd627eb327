/*
 * scrub: reads every chunk this server holds, in the background, checking
 * every written block against its CRC, so that a bad copy of cold data is
 * found (and replaced: the chunkstore's corrupt hook reports it to the MDS,
 * which drops that copy and re-replicates the chunk from a good one) before
 * it is the last copy.
 *
 * A pass lists the chunks and reads them in pieces of up to 1 MiB on the
 * server's event loop, at most rate_mb_s MiB/s of data read; passes start
 * interval_s after the previous one ended (the first interval_s after the
 * start), or at once on scrub_start (vdifs-admin scrub, through the MDS).
 */
#ifndef VDIFS_DS_SCRUB_H
#define VDIFS_DS_SCRUB_H

#include "chunkstore.h"

#include <stdint.h>

#define SCRUB_DEFAULT_MB_S 50u
#define SCRUB_DEFAULT_INTERVAL_S (7u * 24 * 3600)

struct event_base;
struct scrub;

struct scrub_config {
	struct event_base *base;
	struct chunkstore *store; /* used, not owned */
	uint32_t rate_mb_s;       /* 0: SCRUB_DEFAULT_MB_S */
	uint32_t interval_s;      /* 0: SCRUB_DEFAULT_INTERVAL_S */
};

struct scrub_stats {
	uint64_t passes;      /* finished */
	uint64_t chunks;      /* checked, over every pass */
	uint64_t bytes;       /* data read */
	uint64_t bad_chunks;  /* chunks with a block that failed its CRC */
	bool running;
};

/* NULL on ENOMEM. */
struct scrub *scrub_new(const struct scrub_config *cfg);
void scrub_free(struct scrub *s);
/* Starts a pass now (why is logged); a pass under way goes on. */
void scrub_start(struct scrub *s, const char *why);
void scrub_stats(const struct scrub *s, struct scrub_stats *out);

#endif
