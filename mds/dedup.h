/*
 * dedup: the durable duplicate-request cache that makes a retried mutation
 * exactly-once across an MDS crash.
 *
 * A client tags each mutating request with (session, seq, acked) (the seq
 * tag, docs/protocol.md; proto_msg_exactly_once() lists the types): session is a random 64-bit id the client picked
 * for its lifetime (it survives reconnects), seq numbers its mutations and
 * acked is the lowest seq it may still retry.  When such a request succeeds,
 * the record R session seq (docs/ARCHITECTURE.md) is staged in the SAME
 * LevelDB write batch as the operation (through the mdstore commit hook), so
 * after a crash either both are on disk or neither is.  A retry that finds
 * its record is answered from the current state (handlers.c rebuilds the
 * reply) instead of being applied twice (EEXIST / ENOENT).
 *
 * Size: each commit drops the session's records below acked (and any more
 * than DEDUP_WINDOW seqs behind), at most DEDUP_DROP_MAX per commit, so a
 * live session holds about as many records as it has calls in flight.  What
 * a session leaves when its client goes away (usually its last record) is
 * swept once it is DEDUP_TTL_S old.
 */
#ifndef VDIFS_MDS_DEDUP_H
#define VDIFS_MDS_DEDUP_H

#include "mds.h"

#include <stdbool.h>
#include <stdint.h>

#define DEDUP_WINDOW 65536u
#define DEDUP_DROP_MAX 256u
#define DEDUP_TTL_S 3600

struct dedup_tag {
	uint64_t session;
	uint64_t seq;
	uint64_t acked;
};

/* Splits a tagged payload of len bytes: the record is the first *reclen
 * bytes, the tag the last VDIFS_SEQ_TAG_LEN.  0, or -EBADMSG when the
 * payload is too short or session is 0. */
int dedup_split(const uint8_t *payload, uint32_t len, uint32_t *reclen, struct dedup_tag *tag);

/* Whether (tag->session, tag->seq) was applied: 1 when its record exists and
 * names the same type and payload (reclen bytes), 0 when not, -EIO on a
 * store error.  A record for another request (a client bug) is logged and
 * treated as absent. */
int dedup_seen(struct mds *m, const struct dedup_tag *tag, uint16_t type, const uint8_t *rec, uint32_t reclen);

/* Arms the commit hook: every commit until dedup_disarm() also stages the
 * record of (tag, type, payload) and the session's stale records.  *a must
 * stay valid until dedup_disarm(). */
struct dedup_arm {
	struct dedup_tag tag;
	uint16_t type;
	uint32_t crc;
	struct mds *m;
};
void dedup_arm(struct mds *m, struct dedup_arm *a, const struct dedup_tag *tag, uint16_t type, const uint8_t *rec,
	       uint32_t reclen);
void dedup_disarm(struct mds *m);

/* Deletes records written more than max_age_s seconds before now (a
 * negative age: all).  *dropped (may be NULL) gets their number.  0 or -EIO /
 * -ENOMEM. */
int dedup_sweep(struct mds *m, int64_t max_age_s, uint64_t *dropped);

/* Frees the in-memory floors of m's sessions (mds_close). */
void dedup_free(struct mds *m);

/* Records a session holds (for tests and fsck). */
int dedup_count(struct mds *m, uint64_t session, uint64_t *out);

#endif
