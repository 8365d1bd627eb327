/*
 * mdslink: registration and heartbeats to the MDS (see mdslink.h).
 *
 * One connection, at most one call on it at a time: a register, then one
 * heartbeat per tick (a tick that finds the previous heartbeat unanswered
 * counts a miss; several misses in a row drop the connection).  States:
 *
 *   DOWN --retry--> REGISTERING --ok--> REPORTING --last part ok--> UP --heartbeat...
 *     ^                  | error             | error                   | transport error,
 *     +------------------+-------------------+-------------------------+ MDS forgot us
 *
 * REPORTING sends the ids and versions of every chunk held (DS_CHUNK_REPORT,
 * in parts) and deletes what the MDS answers is stale or unknown.  The
 * server serves I/O only in UP and only within the lease: lease_ms after
 * sending the last call the MDS answered (mdslink_serving), so a server cut
 * off from the MDS stops serving before the MDS marks it down and moves its
 * chunks' writes elsewhere.
 *
 * Deletions are reported as a list of chunk ids that is trimmed only when a
 * heartbeat carrying them was acknowledged, so none is lost to an outage.
 * Nothing here is hot: one small message per second.
 */
#include "mdslink.h"

#include "log.h"

#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#define HEARTBEAT_DEFAULT_MS 1000u
#define HEARTBEAT_MIN_MS 50u
#define HEARTBEAT_MAX_MS 60000u
#define HEARTBEAT_MISSES 5u          /* unanswered ticks before the MDS is given up */
#define REPORT_BATCH 65536u          /* deleted ids per heartbeat */
#define CHUNK_REPORT_BATCH 8192u     /* chunks per DS_CHUNK_REPORT */

enum link_state { LINK_DOWN, LINK_REGISTERING, LINK_REPORTING, LINK_UP };

struct held_chunk {
	uint64_t id;
	uint32_t version;
};

struct mdslink {
	struct mdslink_config cfg;
	struct rpc_auth auth;
	char mds_host[256], adv_host[256], uuid[MDSLINK_UUID_MAX + 1], name[300];
	enum link_state state;
	struct rpc_peer *peer;
	struct event *retry; /* one-shot: reconnect */
	struct event *tick;  /* periodic: heartbeat */
	struct event *lease_ev; /* one-shot: the lease's end */
	bool fenced;            /* on_fence called for the lease that ran out */
	uint32_t ds_id;
	uint32_t heartbeat_ms;
	bool in_flight;     /* a call is pending on peer */
	unsigned misses;    /* ticks that found a heartbeat unanswered */
	uint32_t reported;  /* ids of pending sent in the heartbeat in flight */
	bool outage_logged; /* the current outage was logged */
	bool ever_up;
	uint64_t *pending;  /* deleted, not yet acknowledged by the MDS */
	size_t npending, cap;
	uint32_t lease_ms;
	uint64_t sent_ms;        /* when the call in flight left */
	uint64_t lease_until_ms; /* serving until then (in UP) */
	uint64_t corrupt[MDSLINK_CORRUPT_MAX]; /* copies found bad, to report */
	uint32_t ncorrupt, corrupt_sent;
	uint32_t scrub_seen; /* the MDS's scrub counter last seen */
	bool scrub_known;
	uint32_t report_seen; /* the MDS's chunk-list counter last seen */
	bool report_known;
	bool checking;        /* the report being sent is a list for fsck */
	struct held_chunk *held; /* the chunk report being sent */
	size_t nheld, held_cap, held_sent, held_part;
	uint32_t report_deleted;
};

static uint64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* The lease runs until `until` (an answered call): arm its end. */
static void lease_renew(struct mdslink *l, uint64_t until)
{
	l->lease_until_ms = until;
	l->fenced = false;
	uint64_t now = mono_ms(), left = until > now ? until - now : 0;
	struct timeval tv = {.tv_sec = (time_t)(left / 1000), .tv_usec = (suseconds_t)(left % 1000) * 1000};
	evtimer_add(l->lease_ev, &tv);
}

static void lease_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct mdslink *l = arg;
	if (l->fenced)
		return;
	if (mono_ms() < l->lease_until_ms) {
		lease_renew(l, l->lease_until_ms); /* woke a little early */
		return;
	}
	l->fenced = true;
	log_warn("no heartbeat answered by the MDS for %u ms: not serving until it answers again", l->lease_ms);
	if (l->cfg.on_fence)
		l->cfg.on_fence(l->cfg.fence_arg);
}

/* ---- uuid -------------------------------------------------------------------------- */

static bool uuid_valid(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > MDSLINK_UUID_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f') ||
		      (s[i] >= 'A' && s[i] <= 'F') || s[i] == '-'))
			return false;
	return true;
}

static int uuid_generate(char *out, size_t cap)
{
	uint8_t b[16];
	size_t got = 0;
	while (got < sizeof(b)) {
		ssize_t n = getrandom(b + got, sizeof(b) - got, 0);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		got += (size_t)n;
	}
	b[6] = (uint8_t)((b[6] & 0x0f) | 0x40); /* RFC 4122 version 4 */
	b[8] = (uint8_t)((b[8] & 0x3f) | 0x80);
	snprintf(out, cap,
		 "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
		 b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14],
		 b[15]);
	return 0;
}

/* Writes s durably to path: temporary file, fsync, rename, directory fsync. */
static int write_durably(const char *dir, const char *path, const char *s)
{
	char tmp[4200];
	int fd = -1, rc = 0;
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return -errno;
	size_t len = strlen(s);
	if (write(fd, s, len) != (ssize_t)len || fsync(fd) < 0) {
		rc = errno ? -errno : -EIO;
		goto fail;
	}
	close(fd);
	fd = -1;
	if (rename(tmp, path) < 0) {
		rc = -errno;
		goto fail;
	}
	int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd >= 0) {
		fsync(dfd);
		close(dfd);
	}
	return 0;
fail:
	if (fd >= 0)
		close(fd);
	unlink(tmp);
	return rc;
}

int mdslink_load_uuid(const char *dir, char *out, size_t cap, char *err, size_t errlen)
{
	char path[4096], buf[MDSLINK_UUID_MAX + 16];
	int rc;
	if (cap < MDSLINK_UUID_MAX + 1) {
		snprintf(err, errlen, "uuid buffer too small");
		return -EINVAL;
	}
	if (snprintf(path, sizeof(path), "%s/%s", dir, MDSLINK_UUID_FILE) >= (int)sizeof(path)) {
		snprintf(err, errlen, "%s: path too long", dir);
		return -ENAMETOOLONG;
	}
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		ssize_t got = read(fd, buf, sizeof(buf) - 1);
		rc = got < 0 ? -errno : 0;
		close(fd);
		if (rc < 0) {
			snprintf(err, errlen, "%s: %s", path, strerror(-rc));
			return rc;
		}
		size_t n = got > 0 && (size_t)got < sizeof(buf) ? (size_t)got : 0;
		buf[n] = '\0';
		while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == ' ' || buf[n - 1] == '\r'))
			buf[--n] = '\0';
		if (!uuid_valid(buf)) {
			snprintf(err, errlen, "%s: does not hold a uuid (remove it to make a new identity)", path);
			return -EINVAL;
		}
		snprintf(out, cap, "%s", buf);
		return 0;
	}
	if (errno != ENOENT) {
		rc = -errno;
		snprintf(err, errlen, "%s: %s", path, strerror(-rc));
		return rc;
	}
	if ((rc = uuid_generate(buf, sizeof(buf))) < 0) {
		snprintf(err, errlen, "no randomness for a uuid: %s", strerror(-rc));
		return rc;
	}
	char line[sizeof(buf) + 2];
	snprintf(line, sizeof(line), "%s\n", buf);
	if ((rc = write_durably(dir, path, line)) < 0) {
		snprintf(err, errlen, "%s: %s", path, strerror(-rc));
		return rc;
	}
	log_info("new data server identity %s (in %s)", buf, path);
	snprintf(out, cap, "%s", buf);
	return 0;
}

/* ---- deletions ----------------------------------------------------------------------- */

static void pending_add(struct mdslink *l, uint64_t id)
{
	if (l->npending >= MDSLINK_PENDING_MAX) {
		log_warn("chunk %016" PRIx64 ": too many deletions waiting for the MDS; not reported", id);
		return;
	}
	if (l->npending == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 256;
		uint64_t *p = realloc(l->pending, cap * sizeof(*p));
		if (!p) {
			log_error("chunk %016" PRIx64 ": out of memory: deletion not reported", id);
			return;
		}
		l->pending = p;
		l->cap = cap;
	}
	l->pending[l->npending++] = id;
}

void mdslink_note_deleted(void *arg, uint64_t chunk_id) { pending_add(arg, chunk_id); }

void mdslink_note_corrupt(void *arg, uint64_t chunk_id)
{
	struct mdslink *l = arg;
	for (uint32_t i = 0; i < l->ncorrupt; i++)
		if (l->corrupt[i] == chunk_id)
			return;
	if (l->ncorrupt == MDSLINK_CORRUPT_MAX) {
		log_warn("chunk %016" PRIx64 ": bad copy not reported (too many waiting); the next read or scrub finds it",
			 chunk_id);
		return;
	}
	l->corrupt[l->ncorrupt++] = chunk_id;
}

/* Deletes what the MDS listed; each id gone (or never here) is reported.
 * Returns how many were deleted. */
static unsigned apply_deletes(struct mdslink *l, const struct msg_ds_heartbeat_rep *rep, bool quiet)
{
	unsigned done = 0;
	for (uint32_t i = 0; i < rep->count; i++) {
		uint64_t id = le_get64(rep->delete_ids.p + 8 * (size_t)i);
		int rc = chunkstore_delete(l->cfg.store, id);
		if (rc == 0 || rc == -ENOENT) {
			pending_add(l, id);
			done += rc == 0;
		} else {
			log_error("chunk %016" PRIx64 ": delete asked by the MDS failed: %s", id, strerror(-rc));
		}
	}
	if (done && !quiet)
		log_info("deleted %u chunk%s on request of the MDS", done, done == 1 ? "" : "s");
	return done;
}

/* ---- re-replication ------------------------------------------------------------------- */

/* The MDS's answers to copies reported done, then new copy tasks. */
static void apply_recovery(struct mdslink *l, const struct msg_ds_heartbeat_rep *rep)
{
	struct wreader r;
	wreader_init(&r, rep->commits.p, rep->commits.len);
	for (uint32_t i = 0; i < rep->ncommit && i <= REPLICATE_JOBS_MAX; i++) {
		struct msg_repl_commit c;
		msg_repl_commit_get(&r, &c);
		if (r.err)
			break;
		replicate_commit(l->cfg.repl, &c);
	}
	if (r.err || wreader_finish(&r) != 0)
		log_warn("MDS %s:%u: malformed copy answers in a heartbeat reply", l->mds_host, l->cfg.mds_port);
	wreader_init(&r, rep->tasks.p, rep->tasks.len);
	for (uint32_t i = 0; i < rep->ntask && i <= REPLICATE_JOBS_MAX; i++) {
		struct msg_repl_task t;
		msg_repl_task_get(&r, &t);
		if (r.err)
			break;
		replicate_add(l->cfg.repl, &t);
	}
	if (r.err || wreader_finish(&r) != 0)
		log_warn("MDS %s:%u: malformed copy tasks in a heartbeat reply", l->mds_host, l->cfg.mds_port);
}

/* ---- connection ------------------------------------------------------------------------ */

static void register_cb(void *arg, int status, const uint8_t *payload, uint32_t len);
static void report_cb(void *arg, int status, const uint8_t *payload, uint32_t len);
static void start_report(struct mdslink *l, bool checking);
static void heartbeat_cb(void *arg, int status, const uint8_t *payload, uint32_t len);

static const char *reply_message(int status, const uint8_t *payload, uint32_t len, char *buf, size_t cap)
{
	struct msg_error_rep e;
	if (payload && msg_error_rep_decode(payload, len, &e) == 0 && vbytes_to_cstr(e.message, buf, cap) == 0)
		return buf;
	snprintf(buf, cap, "%s", strerror(-status));
	return buf;
}

/* The MDS is gone (or refused us): stop heartbeating, retry in a second.
 * Logged once per outage.  The peer is freed by the retry, never inside its
 * own callback. */
static __attribute__((format(printf, 2, 3))) void link_lost(struct mdslink *l, const char *fmt, ...)
{
	char why[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	if (!l->outage_logged) {
		log_warn("%s; retrying every %u ms", why, MDSLINK_RETRY_MS);
		l->outage_logged = true;
	} else {
		log_debug("%s", why);
	}
	l->state = LINK_DOWN;
	l->in_flight = false;
	evtimer_del(l->tick);
	struct timeval tv = {.tv_sec = MDSLINK_RETRY_MS / 1000, .tv_usec = (MDSLINK_RETRY_MS % 1000) * 1000};
	evtimer_add(l->retry, &tv);
}

/* Why the connection failed (the peer's error names the address). */
static const char *transport_error(struct mdslink *l, int status)
{
	const char *why = l->peer ? rpc_peer_error(l->peer) : NULL;
	return why && *why ? why : strerror(-status);
}

static int fill_space(struct mdslink *l, struct chunkstore_space *sp)
{
	int rc = chunkstore_space(l->cfg.store, sp);
	if (rc < 0)
		log_warn("statvfs of the data directories: %s", strerror(-rc));
	return rc;
}

static void send_register(struct mdslink *l)
{
	struct chunkstore_space sp;
	struct wbuf b;
	fill_space(l, &sp);
	struct msg_ds_register_req m = {
		.uuid = {(const uint8_t *)l->uuid, (uint32_t)strlen(l->uuid)},
		.host = {(const uint8_t *)l->adv_host, (uint32_t)strlen(l->adv_host)},
		.port = l->cfg.adv_port,
		.total = sp.total,
		.avail = sp.avail,
		.used = sp.used,
		.nchunks = sp.nchunks,
	};
	wbuf_init(&b);
	msg_ds_register_req_put(&b, &m);
	l->state = LINK_REGISTERING;
	l->in_flight = true;
	l->sent_ms = mono_ms();
	int rc = rpc_call_async(l->peer, VDIFS_MSG_DS_REGISTER, &b, NULL, 0, register_cb, l);
	wbuf_free(&b);
	if (rc < 0)
		link_lost(l, "cannot reach the MDS: %s", transport_error(l, rc));
}

static void retry_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct mdslink *l = arg;
	if (l->peer)
		rpc_peer_free(l->peer); /* dead or refused us: nothing pending on it */
	struct rpc_peer_config pc = {
		.host = l->mds_host,
		.port = l->cfg.mds_port,
		.auth = &l->auth,
		.role = VDIFS_ROLE_DS,
		.name = l->name,
		.max_payload = l->cfg.max_payload,
		.connect_timeout_ms = 3000,
	};
	l->peer = rpc_peer_new(l->cfg.base, &pc);
	if (!l->peer) {
		link_lost(l, "MDS %s:%u: out of memory for a connection", l->mds_host, l->cfg.mds_port);
		return;
	}
	send_register(l);
}

static void register_cb(void *arg, int status, const uint8_t *payload, uint32_t len)
{
	struct mdslink *l = arg;
	struct msg_ds_register_rep rep;
	char why[256];
	l->in_flight = false;
	if (status == -ECANCELED && !payload)
		return; /* mdslink_stop */
	if (status < 0 && !payload) {
		link_lost(l, "cannot reach the MDS: %s", transport_error(l, status));
		return;
	}
	if (status < 0) {
		link_lost(l, "MDS %s:%u refused the registration: %s", l->mds_host, l->cfg.mds_port,
			  reply_message(status, payload, len, why, sizeof(why)));
		return;
	}
	if (msg_ds_register_rep_decode(payload, len, &rep) < 0) {
		link_lost(l, "MDS %s:%u: malformed DS_REGISTER reply", l->mds_host, l->cfg.mds_port);
		return;
	}
	uint32_t hb = rep.heartbeat_ms ? rep.heartbeat_ms : HEARTBEAT_DEFAULT_MS;
	hb = hb < HEARTBEAT_MIN_MS ? HEARTBEAT_MIN_MS : hb > HEARTBEAT_MAX_MS ? HEARTBEAT_MAX_MS : hb;
	if (!l->ever_up || l->outage_logged || rep.ds_id != l->ds_id)
		log_info("registered with the MDS at %s:%u as data server %" PRIu32 " (uuid %s, %s:%u, heartbeat every %" PRIu32 " ms)",
			 l->mds_host, l->cfg.mds_port, rep.ds_id, l->uuid, l->adv_host, l->cfg.adv_port, hb);
	l->ds_id = rep.ds_id;
	l->heartbeat_ms = hb;
	l->lease_ms = rep.lease_ms ? rep.lease_ms : 3 * hb;
	l->misses = 0;
	/* A chunk list asked for while we were away may still be waited for:
	 * the first heartbeat that shows any request sends one. */
	l->report_seen = 0;
	l->report_known = true;
	start_report(l, false);
}

static int held_add(void *arg, uint64_t id, uint32_t version)
{
	struct mdslink *l = arg;
	if (l->nheld == l->held_cap) {
		size_t cap = l->held_cap ? l->held_cap * 2 : 1024;
		struct held_chunk *p = realloc(l->held, cap * sizeof(*p));
		if (!p)
			return -ENOMEM;
		l->held = p;
		l->held_cap = cap;
	}
	l->held[l->nheld++] = (struct held_chunk){id, version};
	return 0;
}

/* Sends the next part of the chunk report. */
static void send_report_part(struct mdslink *l)
{
	struct wbuf b, items;
	size_t n = l->nheld - l->held_sent;
	if (n > CHUNK_REPORT_BATCH)
		n = CHUNK_REPORT_BATCH;
	wbuf_init(&b);
	wbuf_init(&items);
	for (size_t i = 0; i < n; i++)
		msg_chunk_version_put(&items, &(struct msg_chunk_version){.chunk_id = l->held[l->held_sent + i].id,
									   .version = l->held[l->held_sent + i].version});
	struct msg_ds_report_req m = {
		.ds_id = l->ds_id,
		.flags = (l->held_sent + n == l->nheld ? VDIFS_REPORT_LAST : 0) | (l->checking ? VDIFS_REPORT_CHECK : 0),
		.count = (uint32_t)n,
		.items = {items.data, (uint32_t)items.len},
	};
	msg_ds_report_req_put(&b, &m);
	l->held_part = n;
	l->in_flight = true;
	l->sent_ms = mono_ms();
	int rc = b.err || items.err ? -ENOMEM
				    : rpc_call_async(l->peer, VDIFS_MSG_DS_CHUNK_REPORT, &b, NULL, 0, report_cb, l);
	wbuf_free(&b);
	wbuf_free(&items);
	if (rc < 0)
		link_lost(l, "cannot report chunks to the MDS: %s", transport_error(l, rc));
}

/* After registering: report every chunk held before serving.  checking:
 * a list fsck asked for instead, sent while serving. */
static void start_report(struct mdslink *l, bool checking)
{
	l->checking = checking;
	if (!checking)
		l->state = LINK_REPORTING;
	l->nheld = l->held_sent = 0;
	l->report_deleted = 0;
	if (chunkstore_list(l->cfg.store, held_add, l) != 0) {
		link_lost(l, "out of memory listing the chunks to report");
		return;
	}
	send_report_part(l);
}

static void report_cb(void *arg, int status, const uint8_t *payload, uint32_t len)
{
	struct mdslink *l = arg;
	struct msg_ds_heartbeat_rep rep;
	char why[256];
	if (status == -ECANCELED && !payload)
		return;
	l->in_flight = false;
	if (status < 0 && !payload) {
		link_lost(l, "lost the MDS while reporting chunks: %s", transport_error(l, status));
		return;
	}
	if (l->checking && status < 0) {
		log_warn("MDS %s:%u refused the chunk list for fsck: %s", l->mds_host, l->cfg.mds_port,
			 reply_message(status, payload, len, why, sizeof(why)));
		l->checking = false;
		return;
	}
	if (status < 0) {
		link_lost(l, "MDS %s:%u refused the chunk report: %s", l->mds_host, l->cfg.mds_port,
			  reply_message(status, payload, len, why, sizeof(why)));
		return;
	}
	if (msg_ds_heartbeat_rep_decode(payload, len, &rep) < 0 || (uint64_t)rep.count * 8 != rep.delete_ids.len) {
		link_lost(l, "MDS %s:%u: malformed DS_CHUNK_REPORT reply", l->mds_host, l->cfg.mds_port);
		return;
	}
	l->report_deleted += apply_deletes(l, &rep, true);
	l->held_sent += l->held_part;
	if (l->held_sent < l->nheld) {
		send_report_part(l);
		return;
	}
	if (l->checking) {
		log_info("sent the list of %zu chunk%s the MDS asked for (fsck)", l->nheld, l->nheld == 1 ? "" : "s");
		l->checking = false;
		l->nheld = 0;
		return;
	}
	log_info("reported %zu chunk%s to the MDS (%" PRIu32 " stale or unknown deleted): serving", l->nheld,
		 l->nheld == 1 ? "" : "s", l->report_deleted);
	l->nheld = 0;
	l->state = LINK_UP;
	l->ever_up = true;
	l->outage_logged = false;
	lease_renew(l, l->sent_ms + l->lease_ms);
	uint32_t hb = l->heartbeat_ms;
	struct timeval tv = {.tv_sec = hb / 1000, .tv_usec = (hb % 1000) * 1000};
	evtimer_del(l->tick);
	event_add(l->tick, &tv);
}

static void send_heartbeat(struct mdslink *l)
{
	struct chunkstore_space sp;
	struct wbuf b, ids;
	fill_space(l, &sp);
	uint32_t n = l->npending < REPORT_BATCH ? (uint32_t)l->npending : REPORT_BATCH;
	/* An unlink reported but lost in a crash would come back as an orphan. */
	if (n > 0 && chunkstore_sync_deletes(l->cfg.store) < 0)
		n = 0;
	struct wbuf done, bad;
	wbuf_init(&b);
	wbuf_init(&ids);
	wbuf_init(&done);
	wbuf_init(&bad);
	for (uint32_t i = 0; i < l->ncorrupt; i++)
		wbuf_put_u64(&bad, l->corrupt[i]);
	l->corrupt_sent = l->ncorrupt;
	for (uint32_t i = 0; i < n; i++)
		wbuf_put_u64(&ids, l->pending[i]);
	uint32_t ndone = l->cfg.repl ? replicate_take_done(l->cfg.repl, &done) : 0;
	struct msg_ds_heartbeat_req m = {
		.ds_id = l->ds_id,
		.total = sp.total,
		.avail = sp.avail,
		.used = sp.used,
		.nchunks = sp.nchunks,
		.count = n,
		.deleted = {ids.data, (uint32_t)ids.len},
		.ndone = ndone,
		.done = {done.data, (uint32_t)done.len},
		.ncorrupt = l->ncorrupt,
		.corrupt = {bad.data, (uint32_t)bad.len},
	};
	msg_ds_heartbeat_req_put(&b, &m);
	l->reported = n;
	l->in_flight = true;
	l->sent_ms = mono_ms();
	int rc = b.err || ids.err || done.err || bad.err
			 ? -ENOMEM
			 : rpc_call_async(l->peer, VDIFS_MSG_DS_HEARTBEAT, &b, NULL, 0, heartbeat_cb, l);
	wbuf_free(&b);
	wbuf_free(&ids);
	wbuf_free(&done);
	wbuf_free(&bad);
	if (rc < 0)
		link_lost(l, "lost the MDS: %s", transport_error(l, rc));
}

static void tick_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct mdslink *l = arg;
	if (l->state != LINK_UP)
		return;
	if (l->in_flight) {
		if (++l->misses >= HEARTBEAT_MISSES) {
			/* Fail the pending call so a late reply cannot be taken for a new one. */
			rpc_peer_free(l->peer);
			l->peer = NULL;
			link_lost(l, "MDS %s:%u: no heartbeat reply for %u ms", l->mds_host, l->cfg.mds_port,
				  l->misses * l->heartbeat_ms);
		}
		return;
	}
	send_heartbeat(l);
}

static void heartbeat_cb(void *arg, int status, const uint8_t *payload, uint32_t len)
{
	struct mdslink *l = arg;
	struct msg_ds_heartbeat_rep rep;
	char why[256];
	if (status == -ECANCELED && !payload)
		return; /* mdslink_stop, or given up by tick_cb */
	l->in_flight = false;
	l->misses = 0;
	if (status == -ENOENT && payload) {
		/* The MDS does not know our id (its registry was reset): register again. */
		log_warn("MDS %s:%u does not know data server %" PRIu32 ": registering again", l->mds_host,
			 l->cfg.mds_port, l->ds_id);
		evtimer_del(l->tick);
		send_register(l);
		return;
	}
	if (status < 0 && !payload) {
		link_lost(l, "lost the MDS: %s", transport_error(l, status));
		return;
	}
	if (status < 0) {
		log_warn("MDS %s:%u refused a heartbeat: %s", l->mds_host, l->cfg.mds_port,
			 reply_message(status, payload, len, why, sizeof(why)));
		return;
	}
	/* Acknowledged: the lease runs on, and the ids it carried are recorded
	 * by the MDS. */
	lease_renew(l, l->sent_ms + l->lease_ms);
	if (l->corrupt_sent) {
		memmove(l->corrupt, l->corrupt + l->corrupt_sent, (l->ncorrupt - l->corrupt_sent) * sizeof(*l->corrupt));
		l->ncorrupt -= l->corrupt_sent;
		l->corrupt_sent = 0;
	}
	if (l->reported > 0) {
		memmove(l->pending, l->pending + l->reported, (l->npending - l->reported) * sizeof(*l->pending));
		l->npending -= l->reported;
		l->reported = 0;
	}
	if (msg_ds_heartbeat_rep_decode(payload, len, &rep) < 0 || (uint64_t)rep.count * 8 != rep.delete_ids.len) {
		log_warn("MDS %s:%u: malformed DS_HEARTBEAT reply ignored", l->mds_host, l->cfg.mds_port);
		return;
	}
	apply_deletes(l, &rep, false);
	if (l->cfg.repl)
		apply_recovery(l, &rep);
	if (l->cfg.scrub && l->scrub_known && rep.scrub > l->scrub_seen)
		scrub_start(l->cfg.scrub, "asked by the MDS");
	l->scrub_seen = rep.scrub;
	l->scrub_known = true;
	bool asked = l->report_known && rep.report > l->report_seen;
	l->report_seen = rep.report;
	l->report_known = true;
	if (asked && !l->in_flight)
		start_report(l, true);
}

/* ---- life cycle ------------------------------------------------------------------------- */

struct mdslink *mdslink_start(const struct mdslink_config *cfg)
{
	struct mdslink *l = calloc(1, sizeof(*l));
	if (!l)
		return NULL;
	l->cfg = *cfg;
	if (cfg->auth)
		l->auth = *cfg->auth;
	snprintf(l->mds_host, sizeof(l->mds_host), "%s", cfg->mds_host);
	snprintf(l->adv_host, sizeof(l->adv_host), "%s", cfg->adv_host);
	snprintf(l->uuid, sizeof(l->uuid), "%s", cfg->uuid);
	snprintf(l->name, sizeof(l->name), "ds %s:%u", l->adv_host, cfg->adv_port);
	l->cfg.auth = &l->auth;
	l->cfg.mds_host = l->mds_host;
	l->cfg.adv_host = l->adv_host;
	l->cfg.uuid = l->uuid;
	l->retry = evtimer_new(cfg->base, retry_cb, l);
	l->tick = event_new(cfg->base, -1, EV_PERSIST, tick_cb, l);
	l->lease_ev = evtimer_new(cfg->base, lease_cb, l);
	if (!l->retry || !l->tick || !l->lease_ev) {
		mdslink_stop(l);
		return NULL;
	}
	/* First attempt right away, through the same path as every retry. */
	struct timeval now = {0, 0};
	evtimer_add(l->retry, &now);
	return l;
}

void mdslink_stop(struct mdslink *l)
{
	if (!l)
		return;
	if (l->retry)
		event_free(l->retry);
	if (l->tick)
		event_free(l->tick);
	if (l->lease_ev)
		event_free(l->lease_ev);
	/* Pending callbacks run inside the free with -ECANCELED and touch nothing. */
	if (l->peer)
		rpc_peer_free(l->peer);
	free(l->pending);
	free(l->held);
	free(l);
}

uint32_t mdslink_ds_id(const struct mdslink *l) { return l->ds_id; }
bool mdslink_registered(const struct mdslink *l) { return l->state == LINK_UP; }

bool mdslink_serving(void *arg, char *why, size_t cap)
{
	const struct mdslink *l = arg;
	uint64_t now = mono_ms();
	if (l->state == LINK_UP && now < l->lease_until_ms)
		return true;
	if (l->state == LINK_UP)
		snprintf(why, cap, "not serving: no heartbeat answered by the MDS for %" PRIu64 " ms",
			 now - (l->lease_until_ms - l->lease_ms));
	else if (l->state == LINK_REPORTING)
		snprintf(why, cap, "not serving yet: reporting chunks to the MDS");
	else
		snprintf(why, cap, "not serving: not registered with the MDS");
	return false;
}
