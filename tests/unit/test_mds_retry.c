/*
 * test_mds_retry: retried mutations through the real wire path -- the MDS's
 * handlers behind an rpc server on a real store, and clients over TCP.  A
 * tagged mutation sent twice (as a client resends it after losing the
 * reply) is applied once and both answers agree, also across an MDS
 * restart, while the same request untagged fails as it always did (EEXIST,
 * ENOENT); a malformed tag closes the connection; and the client library
 * waits through an MDS outage (connection refused) instead of failing, up
 * to its bound, then fails with EIO.
 */
#include "test_mds_util.h"

#include "client.h"
#include "handlers.h"
#include "log.h"
#include "rpc.h"

#include <errno.h>
#include <event2/event.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define ROOT 1
#define SESSION 0x5eed5eed5eed5eedull

struct srv {
	struct tmds *t;
	struct event_base *base;
	struct handlers *h;
	struct rpc_server *rs;
	pthread_t thread;
	uint16_t port;
	bool up;
};

static struct rpc_auth key = {.keylen = 0};

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void *srv_main(void *arg)
{
	struct srv *s = arg;
	event_base_loop(s->base, EVLOOP_NO_EXIT_ON_EMPTY);
	return NULL;
}

/* Serves s->t's MDS on s->port (0: pick one). */
static void srv_start(struct srv *s)
{
	struct rpc_server_config cfg = {.name = "mds", .host = "127.0.0.1", .port = s->port,
					.max_payload = VDIFS_DEFAULT_MAX_PAYLOAD, .max_conns = 16,
					.idle_timeout_ms = 5000, .auth = &key, .handler = handlers_dispatch,
					.on_close = handlers_conn_closed};
	char err[256];
	s->base = event_base_new();
	assert_non_null(s->base);
	assert_int_equal(handlers_new(s->base, s->t->m, &s->h), 0);
	cfg.arg = s->h;
	s->rs = rpc_server_start(s->base, &cfg, err, sizeof(err));
	if (!s->rs)
		fail_msg("rpc_server_start: %s", err);
	s->port = rpc_server_port(s->rs);
	assert_int_equal(pthread_create(&s->thread, NULL, srv_main, s), 0);
	s->up = true;
}

static void srv_stop(struct srv *s)
{
	if (!s->up)
		return;
	event_base_loopbreak(s->base);
	pthread_join(s->thread, NULL);
	rpc_server_free(s->rs);
	handlers_free(s->h);
	event_base_free(s->base);
	s->up = false;
}

static int setup(void **state)
{
	rpc_global_init();
	struct srv *s = calloc(1, sizeof(*s));
	assert_non_null(s);
	void *t;
	tmds_setup(&t);
	s->t = t;
	srv_start(s);
	*state = s;
	return 0;
}

static int teardown(void **state)
{
	struct srv *s = *state;
	srv_stop(s);
	void *t = s->t;
	tmds_teardown(&t);
	free(s);
	return 0;
}

static struct rpc_peer *peer(struct srv *s, struct rpc_loop *loop)
{
	struct rpc_peer_config pc = {.host = "127.0.0.1", .port = s->port, .auth = &key,
				     .role = VDIFS_ROLE_CLIENT, .name = "unit", .max_payload = VDIFS_DEFAULT_MAX_PAYLOAD,
				     .connect_timeout_ms = 2000};
	struct rpc_peer *p = rpc_peer_new(rpc_loop_base(loop), &pc);
	assert_non_null(p);
	return p;
}

/* Sends record rec of type, tagged with seq when seq != 0; the attr of an
 * attr_rep reply goes to *a when a is not NULL. */
static int call(struct rpc_peer *p, uint16_t type, const struct wbuf *rec, uint64_t seq, struct vdifs_attr *a)
{
	struct wbuf b;
	struct rpc_result res;
	wbuf_init(&b);
	wbuf_put_raw(&b, rec->data, rec->len);
	if (seq) {
		struct msg_seq_tag tag = {.session = SESSION, .seq = seq, .acked = 1};
		msg_seq_tag_put(&b, &tag);
		type |= VDIFS_SEQ_BIT;
	}
	int rc = rpc_call(p, type, &b, NULL, 0, &res, 5000);
	if (rc == 0 && a) {
		struct msg_attr_rep r;
		assert_int_equal(msg_attr_rep_decode(res.payload, res.len, &r), 0);
		*a = r.attr;
	}
	rpc_result_free(&res);
	wbuf_free(&b);
	return rc;
}

static void mknod_rec(struct wbuf *b, uint32_t vol, const char *name, uint32_t mode)
{
	struct msg_mknod_req q = {.vol = vol, .parent = ROOT, .name = vb(name), .mode = mode};
	wbuf_reset(b);
	msg_mknod_req_put(b, &q);
}

static void name_rec(struct wbuf *b, uint32_t vol, const char *name)
{
	struct msg_lookup_req q = {.vol = vol, .parent = ROOT, .name = vb(name)};
	wbuf_reset(b);
	msg_lookup_req_put(b, &q);
}

static void test_retry_is_applied_once(void **state)
{
	struct srv *s = *state;
	uint32_t vol = tmds_volume(s->t, "v", 0, 0);
	struct rpc_loop *loop = rpc_loop_start();
	struct rpc_peer *p = peer(s, loop);
	struct wbuf rec;
	struct vdifs_attr a1, a2;
	wbuf_init(&rec);

	mknod_rec(&rec, vol, "d", S_IFDIR | 0755);
	assert_int_equal(call(p, VDIFS_MSG_MKNOD, &rec, 1, &a1), 0);
	assert_int_equal(call(p, VDIFS_MSG_MKNOD, &rec, 1, &a2), 0); /* the retry */
	assert_int_equal(a1.ino, a2.ino);
	assert_int_equal(a2.mode, S_IFDIR | 0755);
	assert_int_equal(call(p, VDIFS_MSG_MKNOD, &rec, 0, NULL), -EEXIST); /* untagged: as before */
	assert_int_equal(call(p, VDIFS_MSG_MKNOD, &rec, 2, NULL), -EEXIST); /* a new seq is a new request */

	struct msg_rename_req rq = {.vol = vol, .parent = ROOT, .name = vb("d"), .newparent = ROOT, .newname = vb("e")};
	wbuf_reset(&rec);
	msg_rename_req_put(&rec, &rq);
	assert_int_equal(call(p, VDIFS_MSG_RENAME, &rec, 3, NULL), 0);
	assert_int_equal(call(p, VDIFS_MSG_RENAME, &rec, 3, NULL), 0);
	assert_int_equal(call(p, VDIFS_MSG_RENAME, &rec, 0, NULL), -ENOENT);

	name_rec(&rec, vol, "e");
	assert_int_equal(call(p, VDIFS_MSG_RMDIR, &rec, 4, NULL), 0);
	assert_int_equal(call(p, VDIFS_MSG_RMDIR, &rec, 4, NULL), 0);
	assert_int_equal(tmds_lookup(s->t, vol, ROOT, "e"), 0);

	/* A retry of a create that reaches a restarted MDS on a new connection. */
	mknod_rec(&rec, vol, "f", S_IFREG | 0644);
	assert_int_equal(call(p, VDIFS_MSG_MKNOD, &rec, 5, &a1), 0);
	rpc_peer_free(p);
	srv_stop(s);
	tmds_reopen(s->t);
	srv_start(s);
	p = peer(s, loop);
	assert_int_equal(call(p, VDIFS_MSG_MKNOD, &rec, 5, &a2), 0);
	assert_int_equal(a1.ino, a2.ino);
	struct msg_setxattr_req xq = {.vol = vol, .ino = a1.ino, .name = vb("user.k"), .value = vb("v"), .flags = 1};
	wbuf_reset(&rec);
	msg_setxattr_req_put(&rec, &xq);
	assert_int_equal(call(p, VDIFS_MSG_SETXATTR, &rec, 6, NULL), 0);
	assert_int_equal(call(p, VDIFS_MSG_SETXATTR, &rec, 6, NULL), 0); /* XATTR_CREATE would say EEXIST */
	name_rec(&rec, vol, "f");
	assert_int_equal(call(p, VDIFS_MSG_UNLINK, &rec, 7, NULL), 0);
	assert_int_equal(call(p, VDIFS_MSG_UNLINK, &rec, 7, NULL), 0);
	assert_int_equal(call(p, VDIFS_MSG_UNLINK, &rec, 0, NULL), -ENOENT);

	/* A tag that is cut short is malformed: error and the connection closed. */
	struct wbuf bad;
	struct rpc_result res;
	wbuf_init(&bad);
	wbuf_put_u64(&bad, SESSION);
	assert_int_equal(rpc_call(p, VDIFS_MSG_MKNOD | VDIFS_SEQ_BIT, &bad, NULL, 0, &res, 5000), -EBADMSG);
	rpc_result_free(&res);
	wbuf_free(&bad);
	wbuf_free(&rec);
	rpc_peer_free(p);
	rpc_loop_stop(loop);
}

struct restart {
	struct srv *s;
	unsigned after_ms;
};

static void *restart_later(void *arg)
{
	struct restart *r = arg;
	usleep(r->after_ms * 1000u);
	srv_start(r->s);
	return NULL;
}

static void test_client_waits_through_an_outage(void **state)
{
	struct srv *s = *state;
	tmds_volume(s->t, "v", 0, 0);
	int err;
	struct vdifs_client *c = vdifs_client_new("127.0.0.1", s->port, &key, VDIFS_ROLE_CLIENT, "unit", &err);
	assert_non_null(c);
	struct vdifs_mount_info mi;
	assert_int_equal(vdifs_mount(c, "v", 0, &mi), 0);
	vdifs_client_set_mds_wait(c, 10000);
	struct vdifs_attr a;
	assert_int_equal(vdifs_mknod(c, mi.root_ino, "before", S_IFREG | 0644, 0, 0, 0, &a), 0);

	/* Down for 1.5 s: the call blocks and then succeeds. */
	srv_stop(s);
	struct restart r = {s, 1500};
	pthread_t th;
	assert_int_equal(pthread_create(&th, NULL, restart_later, &r), 0);
	uint64_t t0 = now_ms();
	assert_int_equal(vdifs_mknod(c, mi.root_ino, "during", S_IFREG | 0644, 0, 0, 0, &a), 0);
	assert_true(now_ms() - t0 >= 1000);
	pthread_join(th, NULL);
	assert_int_not_equal(tmds_lookup(s->t, mi.vol, mi.root_ino, "during"), 0);

	/* Down for longer than the bound: EIO naming the MDS. */
	vdifs_client_set_mds_wait(c, 1000);
	srv_stop(s);
	assert_int_equal(vdifs_mknod(c, mi.root_ino, "after", S_IFREG | 0644, 0, 0, 0, &a), -EIO);
	char want[64];
	snprintf(want, sizeof(want), "127.0.0.1:%u: MDS unreachable", s->port);
	assert_non_null(strstr(vdifs_last_error(), want));
	srv_start(s);
	assert_int_equal(vdifs_lookup(c, mi.root_ino, "during", &a), 0);
	vdifs_client_free(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_retry_is_applied_once, setup, teardown),
		cmocka_unit_test_setup_teardown(test_client_waits_through_an_outage, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
