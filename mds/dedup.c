/*
 * dedup: durable duplicate-request cache (see dedup.h).
 *
 * Record grammar (docs/ARCHITECTURE.md, key table):
 *   R u64 session u64 seq -> u8 fmt | u16 type | u32 crc32c of the request
 *                            record | i64 time_s written
 * Tuned for one record per mutation: a put and, amortised, one delete ride in
 * the operation's own batch; the lookup is one point read, made only for a
 * tagged request (every mutation of a mounted client).
 */
#include "dedup.h"

#include "crc.h"
#include "log.h"
#include "mdstore.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define DEDUP_FMT 1
#define DEDUP_VAL_LEN (1 + 2 + 4 + 8)
#define DEDUP_KEY_LEN (1 + 8 + 8)

int dedup_split(const uint8_t *payload, uint32_t len, uint32_t *reclen, struct dedup_tag *tag)
{
	if (len < VDIFS_SEQ_TAG_LEN)
		return -EBADMSG;
	*reclen = len - VDIFS_SEQ_TAG_LEN;
	struct wreader r;
	struct msg_seq_tag m;
	wreader_init(&r, payload + *reclen, VDIFS_SEQ_TAG_LEN);
	msg_seq_tag_get(&r, &m);
	if (wreader_finish(&r) != 0 || m.session == 0)
		return -EBADMSG;
	*tag = (struct dedup_tag){m.session, m.seq, m.acked};
	return 0;
}

static void put_be64(uint8_t *p, uint64_t v)
{
	for (int i = 7; i >= 0; i--, v >>= 8)
		p[i] = (uint8_t)v;
}

/* R + session (+ seq when with_seq). */
static void dedup_key(struct mdstore_key *k, uint64_t session, uint64_t seq, bool with_seq)
{
	mdstore_key_tag(k, 'R');
	put_be64(k->b + k->len, session);
	k->len += 8;
	if (with_seq) {
		put_be64(k->b + k->len, seq);
		k->len += 8;
	}
}

static uint32_t dedup_crc(uint16_t type, const uint8_t *rec, uint32_t reclen)
{
	uint8_t t[2] = {(uint8_t)type, (uint8_t)(type >> 8)};
	return crc32c(crc32c(0, t, sizeof(t)), rec, reclen);
}

int dedup_seen(struct mds *m, const struct dedup_tag *tag, uint16_t type, const uint8_t *rec, uint32_t reclen)
{
	struct mdstore_key k;
	dedup_key(&k, tag->session, tag->seq, true);
	struct mdstore_txn *t = mdstore_txn_begin(m->store);
	if (!t)
		return -ENOMEM;
	uint8_t *val = NULL;
	size_t vlen = 0;
	int rc = mdstore_txn_get(t, &k, &val, &vlen);
	mdstore_txn_abort(t);
	if (rc == -ENOENT)
		return 0;
	if (rc < 0)
		return rc;
	int seen = 0;
	if (vlen != DEDUP_VAL_LEN || val[0] != DEDUP_FMT) {
		log_error("duplicate-request record of session %016llx seq %llu is corrupt (%zu bytes)",
			  (unsigned long long)tag->session, (unsigned long long)tag->seq, vlen);
		rc = -EIO;
	} else if (le_get16(val + 1) != type || le_get32(val + 3) != dedup_crc(type, rec, reclen)) {
		log_warn("session %016llx reused seq %llu for another request (%s): applying it as new",
			 (unsigned long long)tag->session, (unsigned long long)tag->seq, proto_msg_name(type));
	} else {
		seen = 1;
	}
	free(val);
	return rc < 0 ? rc : seen;
}

/*
 * Where each session's live records start.  Records are written and deleted
 * at the rate of mutations, so the front of a session's key range is a long
 * run of LevelDB tombstones until compaction; an iterator sought to the
 * session's prefix steps over every one of them, on every commit (it was
 * half the MDS's time creating files).  The floor is a hint kept in memory:
 * every record of the session below it is deleted (or staged for deletion in
 * a batch that commits or takes the MDS down), so the scan starts there.  A
 * direct-mapped table of DEDUP_FLOOR_SLOTS: a session that loses its slot
 * scans once from its prefix; a floor never skips a live record.
 */
#define DEDUP_FLOOR_SLOTS 256u

struct dedup_floors {
	struct {
		uint64_t session;
		uint64_t floor;
	} slot[DEDUP_FLOOR_SLOTS];
};

void dedup_free(struct mds *m)
{
	free(m->dedup_floors);
	m->dedup_floors = NULL;
}

/* The floor of session, or NULL (out of memory): then scan from 0. */
static uint64_t *dedup_floor(struct mds *m, uint64_t session)
{
	if (!m->dedup_floors && !(m->dedup_floors = calloc(1, sizeof(*m->dedup_floors))))
		return NULL;
	uint64_t h = session * 0x9e3779b97f4a7c15ull;
	struct dedup_floors *f = m->dedup_floors;
	size_t i = (size_t)(h >> 56) % DEDUP_FLOOR_SLOTS;
	if (f->slot[i].session != session) {
		f->slot[i].session = session;
		f->slot[i].floor = 0;
	}
	return &f->slot[i].floor;
}

/* Stages deletes of the session's records below acked or DEDUP_WINDOW
 * behind seq, at most DEDUP_DROP_MAX. */
static void dedup_drop_stale(struct mds *m, struct mdstore_txn *t, const struct dedup_tag *tag)
{
	uint64_t below = tag->acked;
	if (tag->seq >= DEDUP_WINDOW && below < tag->seq - DEDUP_WINDOW + 1)
		below = tag->seq - DEDUP_WINDOW + 1;
	if (below > tag->seq)
		below = tag->seq; /* never the record being written */
	uint64_t *floor = dedup_floor(m, tag->session);
	uint64_t from = floor ? *floor : 0;
	if (from >= below)
		return; /* nothing below the floor is left */
	struct mdstore_key prefix, start;
	struct mdstore_iter *it;
	dedup_key(&prefix, tag->session, 0, false);
	dedup_key(&start, tag->session, from, true);
	if (mdstore_iter_open(mdstore_txn_store(t), &prefix, &start, &it) < 0)
		return; /* staying a little bigger is harmless */
	const uint8_t *key, *val;
	size_t klen, vlen;
	unsigned n = 0;
	uint64_t reached = below; /* every record below it is now deleted */
	int rc;
	while ((rc = mdstore_iter_next(it, &key, &klen, &val, &vlen)) == 1) {
		if (klen != DEDUP_KEY_LEN || mdstore_be64(key + 9) >= below)
			break;
		if (n == DEDUP_DROP_MAX) {
			reached = mdstore_be64(key + 9);
			break;
		}
		struct mdstore_key k = {.len = klen};
		memcpy(k.b, key, klen);
		mdstore_txn_del(t, &k);
		n++;
	}
	mdstore_iter_close(it);
	if (floor && rc >= 0 && reached > *floor)
		*floor = reached;
}

static void dedup_hook(void *arg, struct mdstore_txn *t)
{
	const struct dedup_arm *a = arg;
	struct mdstore_key k;
	uint8_t v[DEDUP_VAL_LEN];
	dedup_key(&k, a->tag.session, a->tag.seq, true);
	v[0] = DEDUP_FMT;
	le_put16(v + 1, a->type);
	le_put32(v + 3, a->crc);
	le_put64(v + 7, (uint64_t)(int64_t)time(NULL));
	dedup_drop_stale(a->m, t, &a->tag);
	mdstore_txn_put(t, &k, v, sizeof(v));
}

void dedup_arm(struct mds *m, struct dedup_arm *a, const struct dedup_tag *tag, uint16_t type, const uint8_t *rec,
	       uint32_t reclen)
{
	*a = (struct dedup_arm){.tag = *tag, .type = type, .crc = dedup_crc(type, rec, reclen), .m = m};
	mdstore_set_commit_hook(m->store, dedup_hook, a);
}

void dedup_disarm(struct mds *m) { mdstore_set_commit_hook(m->store, NULL, NULL); }

int dedup_sweep(struct mds *m, int64_t max_age_s, uint64_t *dropped)
{
	struct mdstore_key prefix;
	struct mdstore_iter *it;
	int64_t now = (int64_t)time(NULL);
	uint64_t n = 0;
	mdstore_key_tag(&prefix, 'R');
	int rc = mdstore_iter_open(m->store, &prefix, NULL, &it);
	if (rc < 0)
		return rc;
	struct mdstore_txn *t = mdstore_txn_begin(m->store);
	if (!t) {
		mdstore_iter_close(it);
		return -ENOMEM;
	}
	const uint8_t *key, *val;
	size_t klen, vlen;
	while ((rc = mdstore_iter_next(it, &key, &klen, &val, &vlen)) == 1) {
		bool old = max_age_s < 0;
		if (!old && (vlen != DEDUP_VAL_LEN || val[0] != DEDUP_FMT)) {
			log_warn("dropping a corrupt duplicate-request record (%zu bytes)", vlen);
			old = true;
		} else if (!old) {
			old = now - (int64_t)le_get64(val + 7) > max_age_s;
		}
		if (!old || klen > MDSTORE_KEY_MAX)
			continue;
		struct mdstore_key k = {.len = klen};
		memcpy(k.b, key, klen);
		mdstore_txn_del(t, &k);
		n++;
	}
	mdstore_iter_close(it);
	if (rc < 0) {
		mdstore_txn_abort(t);
		return rc;
	}
	rc = mdstore_txn_commit(t);
	if (rc == 0 && dropped)
		*dropped = n;
	return rc;
}

int dedup_count(struct mds *m, uint64_t session, uint64_t *out)
{
	struct mdstore_key prefix;
	struct mdstore_iter *it;
	dedup_key(&prefix, session, 0, false);
	int rc = mdstore_iter_open(m->store, &prefix, NULL, &it);
	if (rc < 0)
		return rc;
	const uint8_t *key, *val;
	size_t klen, vlen;
	uint64_t n = 0;
	while ((rc = mdstore_iter_next(it, &key, &klen, &val, &vlen)) == 1)
		n++;
	mdstore_iter_close(it);
	*out = n;
	return rc < 0 ? rc : 0;
}
