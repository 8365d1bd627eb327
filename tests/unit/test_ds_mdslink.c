/*
 * test_ds_mdslink: the data server's MDS link against a fake MDS (an rpc
 * server in this process): uuid persistence, registration, heartbeats with
 * space, deletions asked and reported, and recovery when the MDS goes away
 * or forgets the data server.
 */
#include <errno.h>
#include <event2/event.h>
#include <ftw.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "chunkstore.h"
#include "log.h"
#include "mdslink.h"
#include "rpc.h"
#include "test_fs_util.h"

#define MAXIDS 64

/* The fake MDS; fields under mu (the test thread reads them). */
struct fake {
	pthread_mutex_t mu;
	int registrations;
	int heartbeats;
	char uuid[80], host[80];
	uint16_t port;
	uint64_t total, nchunks;
	uint64_t queue[MAXIDS]; /* to delete: sent until reported */
	int nqueue;
	uint64_t reported[MAXIDS];
	int nreported;
	bool forget;      /* answer the next heartbeat with -ENOENT */
	bool hang_up;     /* reject the next heartbeat (closes the connection) */
	bool mute;        /* leave heartbeats unanswered */
	int reports;      /* complete chunk reports */
	uint32_t report_chunks; /* chunks in the last complete one */
	uint32_t report_acc;    /* chunks in the parts of the one under way */
	uint64_t stale[MAXIDS]; /* answered "delete" when reported */
	int nstale;
};

struct env {
	char root[64], dir[128];
	struct event_base *base;
	pthread_t thread;
	struct rpc_auth auth;
	struct fake fake;
	struct rpc_server *mds;
	uint16_t mds_port;
	struct chunkstore *cs;
	struct mdslink *link;
	char uuid[MDSLINK_UUID_MAX + 1];
};

static void fake_handler(void *arg, const struct rpc_request *req)
{
	struct fake *f = arg;
	struct wbuf b;
	wbuf_init(&b);
	pthread_mutex_lock(&f->mu);
	if (req->type == VDIFS_MSG_DS_REGISTER) {
		struct msg_ds_register_req m;
		assert_int_equal(msg_ds_register_req_decode(req->payload, req->len, &m), 0);
		vbytes_to_cstr(m.uuid, f->uuid, sizeof(f->uuid));
		vbytes_to_cstr(m.host, f->host, sizeof(f->host));
		f->port = m.port;
		f->total = m.total;
		f->nchunks = m.nchunks;
		f->registrations++;
		f->forget = false;
		msg_ds_register_rep_put(&b, &(struct msg_ds_register_rep){.ds_id = 7, .heartbeat_ms = 50, .lease_ms = 200});
		rpc_reply(req, &b);
	} else if (req->type == VDIFS_MSG_DS_CHUNK_REPORT) {
		struct msg_ds_report_req m;
		struct wreader r;
		struct wbuf ids;
		uint32_t n = 0;
		assert_int_equal(msg_ds_report_req_decode(req->payload, req->len, &m), 0);
		assert_int_equal(m.items.len, VDIFS_CHUNK_VERSION_LEN * m.count);
		wbuf_init(&ids);
		wreader_init(&r, m.items.p, m.items.len);
		for (uint32_t i = 0; i < m.count; i++) {
			struct msg_chunk_version cv;
			msg_chunk_version_get(&r, &cv);
			for (int j = 0; j < f->nstale; j++)
				if (f->stale[j] == cv.chunk_id) {
					wbuf_put_u64(&ids, cv.chunk_id);
					n++;
				}
		}
		f->report_acc += m.count;
		if (m.flags & VDIFS_REPORT_LAST) {
			f->reports++;
			f->report_chunks = f->report_acc;
			f->report_acc = 0;
		}
		msg_ds_heartbeat_rep_put(&b, &(struct msg_ds_heartbeat_rep){.count = n,
									  .delete_ids = {ids.data, (uint32_t)ids.len}});
		rpc_reply(req, &b);
		wbuf_free(&ids);
	} else if (req->type == VDIFS_MSG_DS_HEARTBEAT && f->mute) {
		/* no answer */
	} else if (req->type == VDIFS_MSG_DS_HEARTBEAT) {
		struct msg_ds_heartbeat_req m;
		assert_int_equal(msg_ds_heartbeat_req_decode(req->payload, req->len, &m), 0);
		assert_int_equal(m.deleted.len, 8 * m.count);
		if (f->hang_up) {
			f->hang_up = false;
			rpc_reject(req, -ECONNRESET, "going away");
		} else if (f->forget || m.ds_id != 7) {
			rpc_reply_error(req, -ENOENT, "no data server %u", m.ds_id);
		} else {
			f->heartbeats++;
			f->total = m.total;
			f->nchunks = m.nchunks;
			for (uint32_t i = 0; i < m.count; i++) {
				uint64_t id = le_get64(m.deleted.p + 8 * i);
				if (f->nreported < MAXIDS)
					f->reported[f->nreported++] = id;
				for (int j = 0; j < f->nqueue; j++)
					if (f->queue[j] == id)
						f->queue[j--] = f->queue[--f->nqueue];
			}
			struct wbuf ids;
			wbuf_init(&ids);
			for (int j = 0; j < f->nqueue; j++)
				wbuf_put_u64(&ids, f->queue[j]);
			msg_ds_heartbeat_rep_put(&b, &(struct msg_ds_heartbeat_rep){
							     .count = (uint32_t)f->nqueue,
							     .delete_ids = {ids.data, (uint32_t)ids.len}});
			rpc_reply(req, &b);
			wbuf_free(&ids);
		}
	} else {
		rpc_reject(req, -EOPNOTSUPP, "fake MDS");
	}
	pthread_mutex_unlock(&f->mu);
	wbuf_free(&b);
}

/* ---- the loop thread ------------------------------------------------------------ */

static void *loop_main(void *arg)
{
	struct env *e = arg;
	event_base_loop(e->base, EVLOOP_NO_EXIT_ON_EMPTY);
	return NULL;
}

struct on_loop {
	void (*fn)(struct env *);
	struct env *e;
	pthread_mutex_t m;
	pthread_cond_t cv;
	bool done;
};

static void on_loop_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct on_loop *o = arg;
	if (o->fn)
		o->fn(o->e);
	pthread_mutex_lock(&o->m);
	o->done = true;
	pthread_cond_signal(&o->cv);
	pthread_mutex_unlock(&o->m);
}

static void run_on_loop(struct env *e, void (*fn)(struct env *))
{
	struct on_loop o = {.fn = fn, .e = e, .done = false};
	pthread_mutex_init(&o.m, NULL);
	pthread_cond_init(&o.cv, NULL);
	struct timeval now = {0, 0};
	assert_int_equal(event_base_once(e->base, -1, EV_TIMEOUT, on_loop_cb, &o, &now), 0);
	pthread_mutex_lock(&o.m);
	while (!o.done)
		pthread_cond_wait(&o.cv, &o.m);
	pthread_mutex_unlock(&o.m);
	pthread_cond_destroy(&o.cv);
	pthread_mutex_destroy(&o.m);
}

static void mds_start(struct env *e)
{
	char err[256];
	struct rpc_server_config cfg = {.name = "mds", .host = "127.0.0.1", .port = e->mds_port,
					.max_conns = 16, .auth = &e->auth, .handler = fake_handler,
					.arg = &e->fake};
	e->mds = rpc_server_start(e->base, &cfg, err, sizeof(err));
	assert_non_null(e->mds);
	e->mds_port = rpc_server_port(e->mds);
}

static void mds_stop(struct env *e)
{
	rpc_server_free(e->mds);
	e->mds = NULL;
}

static int fences; /* on_fence calls (on the loop thread) */
static void count_fence(void *arg)
{
	(void)arg;
	__atomic_add_fetch(&fences, 1, __ATOMIC_RELAXED);
}

static void link_start(struct env *e)
{
	struct mdslink_config cfg = {.base = e->base, .store = e->cs, .auth = &e->auth, .mds_host = "127.0.0.1",
				     .mds_port = e->mds_port, .adv_host = "127.0.0.1", .adv_port = 9555,
				     .uuid = e->uuid, .on_fence = count_fence};
	e->link = mdslink_start(&cfg);
	assert_non_null(e->link);
}

static void link_stop(struct env *e)
{
	mdslink_stop(e->link);
	e->link = NULL;
}

static int setup(void **state)
{
	struct env *e = calloc(1, sizeof(*e));
	char err[256];
	rpc_global_init();
	pthread_mutex_init(&e->fake.mu, NULL);
	snprintf(e->root, sizeof(e->root), "/tmp/test_ds_m.XXXXXX");
	assert_non_null(mkdtemp(e->root));
	snprintf(e->dir, sizeof(e->dir), "%s/data", e->root);
	const char *dirs[1] = {e->dir};
	struct chunkstore_config scfg = {.dirs = dirs, .ndirs = 1};
	assert_int_equal(chunkstore_open(&scfg, &e->cs, err, sizeof(err)), 0);
	assert_int_equal(mdslink_load_uuid(e->dir, e->uuid, sizeof(e->uuid), err, sizeof(err)), 0);
	e->base = event_base_new();
	mds_start(e);
	assert_int_equal(pthread_create(&e->thread, NULL, loop_main, e), 0);
	*state = e;
	return 0;
}

static int teardown(void **state)
{
	struct env *e = *state;
	if (e->link)
		run_on_loop(e, link_stop);
	usleep(50 * 1000);
	run_on_loop(e, NULL);
	event_base_loopbreak(e->base);
	pthread_join(e->thread, NULL);
	for (int i = 0; i < 5; i++)
		event_base_loop(e->base, EVLOOP_NONBLOCK);
	rpc_server_free(e->mds);
	event_base_free(e->base);
	chunkstore_close(e->cs);
	pthread_mutex_destroy(&e->fake.mu);
	test_rm_tree(e->root);
	free(e);
	return 0;
}

/* Polls cond (under the fake's lock) for up to ms. */
static bool wait_for(struct env *e, bool (*cond)(struct fake *), unsigned ms)
{
	for (unsigned t = 0; t < ms; t += 10) {
		pthread_mutex_lock(&e->fake.mu);
		bool ok = cond(&e->fake);
		pthread_mutex_unlock(&e->fake.mu);
		if (ok)
			return true;
		usleep(10 * 1000);
	}
	return false;
}

static bool registered_and_beating(struct fake *f) { return f->registrations >= 1 && f->heartbeats >= 3; }

static void test_uuid_persisted(void **state)
{
	struct env *e = *state;
	char again[MDSLINK_UUID_MAX + 1], err[256], path[300];
	assert_int_equal(strlen(e->uuid), 36);
	assert_int_equal(mdslink_load_uuid(e->dir, again, sizeof(again), err, sizeof(err)), 0);
	assert_string_equal(again, e->uuid);
	/* A file that does not hold a uuid is an error, never replaced. */
	snprintf(path, sizeof(path), "%s/%s", e->dir, MDSLINK_UUID_FILE);
	FILE *f = fopen(path, "w");
	fputs("not a uuid!\n", f);
	fclose(f);
	assert_int_equal(mdslink_load_uuid(e->dir, again, sizeof(again), err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, MDSLINK_UUID_FILE));
}

static void test_register_and_heartbeat(void **state)
{
	struct env *e = *state;
	uint8_t w[100] = {1};
	assert_int_equal(chunkstore_write(e->cs, 5, 1, &(struct chunkstore_geom){.chunk_size = 1 << 20}, 0, w, sizeof(w), NULL), 0);
	run_on_loop(e, link_start);
	assert_true(wait_for(e, registered_and_beating, 5000));
	pthread_mutex_lock(&e->fake.mu);
	assert_string_equal(e->fake.uuid, e->uuid);
	assert_string_equal(e->fake.host, "127.0.0.1");
	assert_int_equal(e->fake.port, 9555);
	assert_true(e->fake.total > 0);
	assert_int_equal(e->fake.nchunks, 1);
	assert_int_equal(e->fake.registrations, 1);
	pthread_mutex_unlock(&e->fake.mu);
}

static bool deletions_reported(struct fake *f)
{
	int seen = 0;
	for (int i = 0; i < f->nreported; i++)
		seen += f->reported[i] == 1 || f->reported[i] == 2 || f->reported[i] == 99 || f->reported[i] == 5;
	return seen == 4 && f->nqueue == 0;
}

static uint64_t store_has[4];
static void check_store(struct env *e)
{
	uint64_t ids[4] = {1, 2, 3, 5};
	for (int i = 0; i < 4; i++) {
		struct chunkstore_stat st;
		store_has[i] = chunkstore_stat(e->cs, ids[i], &st) == 0;
	}
}

static void note_5(struct env *e)
{
	assert_int_equal(chunkstore_delete(e->cs, 5), 0);
	mdslink_note_deleted(e->link, 5);
}

static void test_deletions(void **state)
{
	struct env *e = *state;
	uint8_t w[100] = {1};
	for (uint64_t id = 1; id <= 5; id++)
		assert_int_equal(chunkstore_write(e->cs, id, 1, &(struct chunkstore_geom){.chunk_size = 1 << 20}, 0, w, sizeof(w), NULL), 0);
	pthread_mutex_lock(&e->fake.mu);
	e->fake.queue[0] = 1;
	e->fake.queue[1] = 2;
	e->fake.queue[2] = 99; /* never here: reported as gone all the same */
	e->fake.nqueue = 3;
	pthread_mutex_unlock(&e->fake.mu);
	run_on_loop(e, link_start);
	run_on_loop(e, note_5); /* a DS_DELETE from elsewhere */
	assert_true(wait_for(e, deletions_reported, 5000));
	run_on_loop(e, check_store);
	assert_int_equal(store_has[0], 0);
	assert_int_equal(store_has[1], 0);
	assert_int_equal(store_has[2], 1);
	assert_int_equal(store_has[3], 0);
	/* Each deletion is reported once: the acknowledged list is trimmed. */
	usleep(300 * 1000);
	pthread_mutex_lock(&e->fake.mu);
	assert_int_equal(e->fake.nreported, 4);
	pthread_mutex_unlock(&e->fake.mu);
}

static int regs_seen;
static bool registered_again(struct fake *f) { return f->registrations > regs_seen && f->heartbeats > 0; }
static bool no_mds_no_heartbeat(struct fake *f) { return f->heartbeats == 0 && f->registrations == regs_seen; }
static bool hung_up(struct fake *f) { return !f->hang_up; }

static void test_mds_goes_away(void **state)
{
	struct env *e = *state;
	run_on_loop(e, link_start);
	assert_true(wait_for(e, registered_and_beating, 5000));
	/* The MDS drops the connection and stops listening for a while. */
	pthread_mutex_lock(&e->fake.mu);
	e->fake.hang_up = true;
	pthread_mutex_unlock(&e->fake.mu);
	assert_true(wait_for(e, hung_up, 5000));
	run_on_loop(e, mds_stop);
	pthread_mutex_lock(&e->fake.mu);
	regs_seen = e->fake.registrations;
	e->fake.heartbeats = 0;
	pthread_mutex_unlock(&e->fake.mu);
	usleep(1500 * 1000);
	assert_true(wait_for(e, no_mds_no_heartbeat, 10));
	run_on_loop(e, mds_start); /* same port */
	assert_true(wait_for(e, registered_again, 5000));
}

static bool serving_now;
static char serving_why[200];
static void check_serving(struct env *e) { serving_now = mdslink_serving(e->link, serving_why, sizeof(serving_why)); }
static bool reported_and_beating(struct fake *f) { return f->reports >= 1 && f->heartbeats >= 2; }
static bool reported_twice(struct fake *f) { return f->reports >= 2 && f->heartbeats >= 1; }

/* Every registration is followed by a report of the chunks held; those the
 * MDS calls stale are deleted; I/O is served only within the lease. */
static void test_report_and_lease(void **state)
{
	struct env *e = *state;
	uint8_t w[100] = {1};
	for (uint64_t id = 1; id <= 3; id++)
		assert_int_equal(chunkstore_write(e->cs, id, (uint32_t)id, &(struct chunkstore_geom){.chunk_size = 1 << 20},
						  0, w, sizeof(w), NULL), 0);
	pthread_mutex_lock(&e->fake.mu);
	e->fake.stale[e->fake.nstale++] = 2;
	pthread_mutex_unlock(&e->fake.mu);
	fences = 0;
	run_on_loop(e, link_start);
	assert_true(wait_for(e, reported_and_beating, 5000));
	assert_int_equal(__atomic_load_n(&fences, __ATOMIC_RELAXED), 0);
	pthread_mutex_lock(&e->fake.mu);
	assert_int_equal(e->fake.report_chunks, 3);
	pthread_mutex_unlock(&e->fake.mu);
	run_on_loop(e, check_store);
	assert_int_equal(store_has[0], 1);
	assert_int_equal(store_has[1], 0);
	assert_int_equal(store_has[2], 1);
	run_on_loop(e, check_serving);
	assert_true(serving_now);
	/* The MDS stops answering: past the lease (200 ms) the server stops
	 * serving, well before it gives the connection up. */
	pthread_mutex_lock(&e->fake.mu);
	e->fake.mute = true;
	pthread_mutex_unlock(&e->fake.mu);
	usleep(300 * 1000);
	run_on_loop(e, check_serving);
	assert_false(serving_now);
	assert_non_null(strstr(serving_why, "not serving")); /* no answer, or given up already */
	assert_int_equal(__atomic_load_n(&fences, __ATOMIC_RELAXED), 1); /* once per lease run out */
	/* It answers again: the link registers and reports again, then serves. */
	pthread_mutex_lock(&e->fake.mu);
	e->fake.mute = false;
	e->fake.heartbeats = 0;
	pthread_mutex_unlock(&e->fake.mu);
	assert_true(wait_for(e, reported_twice, 5000));
	run_on_loop(e, check_serving);
	assert_true(serving_now);
}

static void test_mds_forgets(void **state)
{
	struct env *e = *state;
	run_on_loop(e, link_start);
	assert_true(wait_for(e, registered_and_beating, 5000));
	pthread_mutex_lock(&e->fake.mu);
	regs_seen = e->fake.registrations;
	e->fake.heartbeats = 0;
	e->fake.forget = true;
	pthread_mutex_unlock(&e->fake.mu);
	assert_true(wait_for(e, registered_again, 5000));
}

int main(void)
{
	log_init("test_ds_mdslink", LOG_ERROR);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_uuid_persisted, setup, teardown),
		cmocka_unit_test_setup_teardown(test_register_and_heartbeat, setup, teardown),
		cmocka_unit_test_setup_teardown(test_deletions, setup, teardown),
		cmocka_unit_test_setup_teardown(test_mds_goes_away, setup, teardown),
		cmocka_unit_test_setup_teardown(test_mds_forgets, setup, teardown),
		cmocka_unit_test_setup_teardown(test_report_and_lease, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
