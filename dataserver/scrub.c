/*
 * scrub: background CRC check of every chunk (see scrub.h).
 *
 * One timer drives a pass: each firing reads one piece (chunkstore_export
 * reads and checks the written blocks of up to 1 MiB of a chunk, and a bad
 * block fires the store's corrupt hook), then waits as long as that many
 * bytes take at the configured rate.  Pieces with nothing written cost no
 * wait.  The chunk list is taken when the pass starts; chunks deleted since
 * are skipped, chunks created since wait for the next pass.
 */
#include "scrub.h"

#include "log.h"

#include <errno.h>
#include <event2/event.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#define PIECE (1u << 20)
#define EMPTY_PIECES_PER_TICK 64 /* unwritten pieces checked per firing */

struct scrub {
	struct scrub_config cfg;
	struct event *timer;
	uint64_t *ids;
	size_t nids, cap, at; /* the pass: chunks, and the one being read */
	uint32_t block;       /* next block of ids[at] */
	uint8_t *entries, *data;
	uint64_t pass_bytes, pass_bad;
	struct scrub_stats st;
};

static void arm(struct scrub *s, uint64_t us)
{
	struct timeval tv = {.tv_sec = (time_t)(us / 1000000u), .tv_usec = (suseconds_t)(us % 1000000u)};
	evtimer_add(s->timer, &tv);
}

static int add_id(void *arg, uint64_t id, uint32_t version)
{
	struct scrub *s = arg;
	(void)version;
	if (s->nids == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 1024;
		uint64_t *p = realloc(s->ids, cap * sizeof(*p));
		if (!p)
			return -ENOMEM;
		s->ids = p;
		s->cap = cap;
	}
	s->ids[s->nids++] = id;
	return 0;
}

static void pass_end(struct scrub *s)
{
	s->st.running = false;
	s->st.passes++;
	log_info("scrub pass done: %zu chunks, %" PRIu64 " MiB read, %" PRIu64 " with a bad block", s->nids,
		 s->pass_bytes >> 20, s->pass_bad);
	s->nids = 0;
	arm(s, (uint64_t)s->cfg.interval_s * 1000000u);
}

/* Reads the next piece(s); returns the bytes read (for the rate). */
static uint64_t step(struct scrub *s)
{
	for (int empty = 0; s->at < s->nids && empty < EMPTY_PIECES_PER_TICK;) {
		uint64_t id = s->ids[s->at];
		struct chunkstore_export_info gi;
		if (chunkstore_export_geom(s->cfg.store, id, &gi) < 0 || s->block >= gi.nblocks) {
			s->at++; /* deleted meanwhile, or done */
			s->block = 0;
			s->st.chunks++;
			continue;
		}
		uint32_t per = PIECE / gi.block_size ? PIECE / gi.block_size : 1;
		uint32_t n = gi.nblocks - s->block < per ? gi.nblocks - s->block : per;
		size_t dlen = 0;
		int rc = chunkstore_export(s->cfg.store, id, s->block, n, s->entries, s->data, PIECE, &dlen);
		if (rc == -EIO) {
			/* Reported by the corrupt hook; the rest of it does not matter. */
			s->pass_bad++;
			s->st.bad_chunks++;
			s->block = gi.nblocks;
			continue;
		}
		if (rc < 0) {
			log_warn("scrub: chunk %016" PRIx64 ": %s: skipped", id, strerror(-rc));
			s->block = gi.nblocks;
			continue;
		}
		s->block += n;
		if (dlen == 0) {
			empty++;
			continue;
		}
		s->pass_bytes += dlen;
		s->st.bytes += dlen;
		return dlen;
	}
	return 0;
}

static void tick(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct scrub *s = arg;
	if (!s->st.running) {
		scrub_start(s, "its interval passed");
		return;
	}
	uint64_t bytes = step(s);
	if (s->at >= s->nids) {
		pass_end(s);
		return;
	}
	arm(s, bytes * 1000000u / ((uint64_t)s->cfg.rate_mb_s << 20));
}

void scrub_start(struct scrub *s, const char *why)
{
	if (s->st.running)
		return;
	s->nids = s->at = 0;
	s->block = 0;
	s->pass_bytes = s->pass_bad = 0;
	if (chunkstore_list(s->cfg.store, add_id, s) != 0) {
		log_error("scrub: out of memory listing the chunks; next try in a minute");
		s->nids = 0;
		arm(s, 60u * 1000000u);
		return;
	}
	log_info("scrub pass started (%s): %zu chunks at up to %" PRIu32 " MiB/s", why, s->nids, s->cfg.rate_mb_s);
	s->st.running = true;
	evtimer_del(s->timer);
	arm(s, 0);
}

struct scrub *scrub_new(const struct scrub_config *cfg)
{
	struct scrub *s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	s->cfg = *cfg;
	if (!s->cfg.rate_mb_s)
		s->cfg.rate_mb_s = SCRUB_DEFAULT_MB_S;
	if (!s->cfg.interval_s)
		s->cfg.interval_s = SCRUB_DEFAULT_INTERVAL_S;
	s->timer = evtimer_new(cfg->base, tick, s);
	s->entries = malloc((size_t)(PIECE / CHUNKSTORE_EXTENT_MIN) * CHUNKSTORE_ENTRY_SIZE);
	s->data = malloc(PIECE);
	if (!s->timer || !s->entries || !s->data) {
		scrub_free(s);
		return NULL;
	}
	arm(s, (uint64_t)s->cfg.interval_s * 1000000u);
	return s;
}

void scrub_free(struct scrub *s)
{
	if (!s)
		return;
	if (s->timer)
		event_free(s->timer);
	free(s->ids);
	free(s->entries);
	free(s->data);
	free(s);
}

void scrub_stats(const struct scrub *s, struct scrub_stats *out) { *out = s->st; }
