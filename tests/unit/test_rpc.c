/*
 * rpc tests on real loopback sockets: a server on its own event-loop thread,
 * clients through rpc_peer, and raw sockets sending malformed frames.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <fcntl.h>

#include "frame.h"
#include "log.h"
#include "rpc.h"
#include "test_rpc_util.h"

struct fixture {
	struct event_base *base;
	struct rpc_server *srv;
	pthread_t thread;
	struct rpc_auth key;
	struct rpc_loop *loop;
	uint16_t port;
	int handled;
};

/* Test server: GETATTR echoes the ino; DS_READ returns `length` bytes of a
 * pattern; DS_WRITE returns the data length; RELEASE never replies;
 * anything else is rejected as unknown. */
static void handler(void *arg, const struct rpc_request *req)
{
	struct fixture *f = arg;
	struct wbuf b;
	wbuf_init(&b);
	f->handled++;
	switch (req->type) {
	case VDIFS_MSG_GETATTR: {
		struct msg_ino_req m;
		if (msg_ino_req_decode(req->payload, req->len, &m) < 0) {
			rpc_reject(req, -EBADMSG, "malformed GETATTR");
			break;
		}
		struct msg_attr_rep r = {.attr = {.ino = m.ino, .mode = 0100644}};
		msg_attr_rep_put(&b, &r);
		rpc_reply(req, &b);
		break;
	}
	case VDIFS_MSG_DS_READ: {
		struct msg_ds_read_req m;
		if (msg_ds_read_req_decode(req->payload, req->len, &m) < 0 || m.length > VDIFS_DATA_MAX) {
			rpc_reject(req, -EBADMSG, "malformed DS_READ");
			break;
		}
		uint8_t *data = malloc(m.length);
		for (uint32_t i = 0; i < m.length; i++)
			data[i] = (uint8_t)(i * 7 + m.offset);
		msg_ds_read_rep_put_head(&b, m.length);
		rpc_reply_data(req, &b, data, m.length);
		free(data);
		break;
	}
	case VDIFS_MSG_DS_WRITE: {
		struct msg_ds_write_req m;
		if (msg_ds_write_req_decode(req->payload, req->len, &m) < 0) {
			rpc_reject(req, -EBADMSG, "malformed DS_WRITE");
			break;
		}
		uint64_t sum = 0;
		for (uint32_t i = 0; i < m.data.len; i++)
			sum += m.data.p[i];
		struct msg_ds_io_rep r = {.alloc = sum};
		msg_ds_io_rep_put(&b, &r);
		rpc_reply(req, &b);
		break;
	}
	case VDIFS_MSG_UNLINK:
		rpc_reply_error(req, -ENOENT, "no such entry 'x'");
		break;
	case VDIFS_MSG_RELEASE:
		break; /* never answers: the client's timeout must fire */
	default:
		rpc_reject(req, -EOPNOTSUPP, "unknown message type %u", req->type);
	}
	wbuf_free(&b);
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	rpc_global_init();
	f->base = event_base_new();
	memcpy(f->key.key, "0123456789abcdef0123456789abcdef", 32);
	f->key.keylen = 32;
	struct rpc_server_config cfg = {.name = "test", .host = "127.0.0.1", .port = 0,
					.max_payload = VDIFS_DEFAULT_MAX_PAYLOAD, .max_conns = 64,
					.idle_timeout_ms = 300, .auth = &f->key, .handler = handler,
					.arg = f};
	char err[256];
	f->srv = rpc_server_start(f->base, &cfg, err, sizeof(err));
	assert_non_null(f->srv);
	f->port = rpc_server_port(f->srv);
	assert_true(f->port > 0);
	pthread_create(&f->thread, NULL, test_loop_main, f->base);
	f->loop = rpc_loop_start();
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	rpc_loop_stop(f->loop);
	event_base_loopbreak(f->base);
	pthread_join(f->thread, NULL);
	rpc_server_free(f->srv);
	event_base_free(f->base);
	free(f);
	return 0;
}

static struct rpc_peer *connect_with(struct fixture *f, const struct rpc_auth *key)
{
	struct rpc_peer_config pc = {.host = "127.0.0.1", .port = f->port, .auth = key,
				     .role = VDIFS_ROLE_CLIENT, .name = "unit"};
	return rpc_peer_new(rpc_loop_base(f->loop), &pc);
}

static int getattr(struct rpc_peer *p, uint64_t ino, uint64_t *out, struct rpc_result *res)
{
	struct wbuf b;
	wbuf_init(&b);
	struct msg_ino_req m = {.vol = 1, .ino = ino};
	msg_ino_req_put(&b, &m);
	int rc = rpc_call(p, VDIFS_MSG_GETATTR, &b, NULL, 0, res, 5000);
	wbuf_free(&b);
	if (rc == 0) {
		struct msg_attr_rep r;
		assert_int_equal(msg_attr_rep_decode(res->payload, res->len, &r), 0);
		*out = r.attr.ino;
	}
	rpc_result_free(res);
	return rc;
}

static void test_call_and_error(void **state)
{
	struct fixture *f = *state;
	struct rpc_peer *p = connect_with(f, &f->key);
	struct rpc_result res;
	uint64_t ino = 0;
	assert_int_equal(getattr(p, 42, &ino, &res), 0);
	assert_true(ino == 42);

	struct wbuf b;
	wbuf_init(&b);
	struct msg_lookup_req m = {.vol = 1, .parent = 1, .name = {(const uint8_t *)"x", 1}};
	msg_lookup_req_put(&b, &m);
	assert_int_equal(rpc_call(p, VDIFS_MSG_UNLINK, &b, NULL, 0, &res, 5000), -ENOENT);
	assert_string_equal(res.message, "no such entry 'x'");
	rpc_result_free(&res);
	wbuf_free(&b);
	/* An error reply leaves the connection usable. */
	assert_int_equal(getattr(p, 7, &ino, &res), 0);
	rpc_peer_free(p);
}

struct counter {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int done, bad;
};

static void count_cb(void *arg, int status, const uint8_t *payload, uint32_t len)
{
	struct counter *c = arg;
	struct msg_attr_rep r;
	pthread_mutex_lock(&c->mu);
	if (status != 0 || msg_attr_rep_decode(payload, len, &r) < 0)
		c->bad++;
	c->done++;
	pthread_cond_signal(&c->cv);
	pthread_mutex_unlock(&c->mu);
}

static void test_pipelined(void **state)
{
	struct fixture *f = *state;
	struct rpc_peer *p = connect_with(f, &f->key);
	struct counter c = {.done = 0};
	pthread_mutex_init(&c.mu, NULL);
	pthread_cond_init(&c.cv, NULL);
	/* Issued before the handshake completes: they must queue, then flow. */
	for (uint64_t i = 1; i <= 500; i++) {
		struct wbuf b;
		wbuf_init(&b);
		struct msg_ino_req m = {.vol = 1, .ino = i};
		msg_ino_req_put(&b, &m);
		assert_int_equal(rpc_call_async(p, VDIFS_MSG_GETATTR, &b, NULL, 0, count_cb, &c), 0);
		wbuf_free(&b);
	}
	pthread_mutex_lock(&c.mu);
	while (c.done < 500)
		pthread_cond_wait(&c.cv, &c.mu);
	pthread_mutex_unlock(&c.mu);
	assert_int_equal(c.bad, 0);
	rpc_peer_free(p);
}

static void test_data(void **state)
{
	struct fixture *f = *state;
	struct rpc_peer *p = connect_with(f, &f->key);
	size_t n = 1 << 20;
	uint8_t *data = malloc(n);
	uint64_t sum = 0;
	for (size_t i = 0; i < n; i++) {
		data[i] = (uint8_t)(i * 31);
		sum += data[i];
	}
	struct msg_ds_write_req w = {.chunk_id = 1, .data = {data, (uint32_t)n}};
	struct wbuf b;
	wbuf_init(&b);
	msg_ds_write_req_put_head(&b, &w);
	struct rpc_result res;
	assert_int_equal(rpc_call(p, VDIFS_MSG_DS_WRITE, &b, data, n, &res, 5000), 0);
	struct msg_ds_io_rep r;
	assert_int_equal(msg_ds_io_rep_decode(res.payload, res.len, &r), 0);
	assert_true(r.alloc == sum);
	rpc_result_free(&res);

	wbuf_reset(&b);
	struct msg_ds_read_req rd = {.chunk_id = 1, .offset = 3, .length = (uint32_t)n};
	msg_ds_read_req_put(&b, &rd);
	assert_int_equal(rpc_call(p, VDIFS_MSG_DS_READ, &b, NULL, 0, &res, 5000), 0);
	struct msg_ds_read_rep rr;
	assert_int_equal(msg_ds_read_rep_decode(res.payload, res.len, &rr), 0);
	assert_int_equal(rr.data.len, n);
	for (size_t i = 0; i < n; i += 4099)
		assert_int_equal(rr.data.p[i], (uint8_t)(i * 7 + 3));
	rpc_result_free(&res);
	wbuf_free(&b);
	free(data);
	rpc_peer_free(p);
}

/* Many 1 MiB calls in flight from several threads, both ways: the frames
 * fill the sockets, so both sides write part of their output at once and
 * leave the rest to the loop, and the server's queued replies pass its
 * output bound (it stops reading, then resumes).  Every reply must arrive
 * whole and in its place. */
struct flood {
	struct rpc_peer *p;
	struct counter c;
	uint8_t *wdata;
	uint64_t wsum;
	unsigned id;
};

static void flood_write_cb(void *arg, int status, const uint8_t *payload, uint32_t len)
{
	struct flood *fl = arg;
	struct msg_ds_io_rep r;
	pthread_mutex_lock(&fl->c.mu);
	if (status != 0 || msg_ds_io_rep_decode(payload, len, &r) < 0 || r.alloc != fl->wsum)
		fl->c.bad++;
	fl->c.done++;
	pthread_cond_signal(&fl->c.cv);
	pthread_mutex_unlock(&fl->c.mu);
}

static void flood_read_cb(void *arg, int status, const uint8_t *payload, uint32_t len)
{
	struct flood *fl = arg;
	struct msg_ds_read_rep rr;
	bool ok = status == 0 && msg_ds_read_rep_decode(payload, len, &rr) == 0 && rr.data.len == (1u << 20);
	for (uint32_t i = 0; ok && i < rr.data.len; i++)
		ok = rr.data.p[i] == (uint8_t)(i * 7 + fl->id);
	pthread_mutex_lock(&fl->c.mu);
	if (!ok)
		fl->c.bad++;
	fl->c.done++;
	pthread_cond_signal(&fl->c.cv);
	pthread_mutex_unlock(&fl->c.mu);
}

#define FLOOD_CALLS 24

static void *flood_thread(void *arg)
{
	struct flood *fl = arg;
	for (int i = 0; i < FLOOD_CALLS; i++) {
		struct wbuf b;
		wbuf_init(&b);
		if (i % 2 == 0) {
			struct msg_ds_write_req w = {.chunk_id = 1, .data = {fl->wdata, 1u << 20}};
			msg_ds_write_req_put_head(&b, &w);
			if (rpc_call_async(fl->p, VDIFS_MSG_DS_WRITE, &b, fl->wdata, 1u << 20, flood_write_cb, fl) < 0)
				fl->c.bad++;
		} else {
			/* Each thread reads at its own offset, so its bytes are its own. */
			struct msg_ds_read_req rd = {.chunk_id = 1, .offset = fl->id, .length = 1u << 20};
			msg_ds_read_req_put(&b, &rd);
			if (rpc_call_async(fl->p, VDIFS_MSG_DS_READ, &b, NULL, 0, flood_read_cb, fl) < 0)
				fl->c.bad++;
		}
		wbuf_free(&b);
	}
	return NULL;
}

static void test_flood(void **state)
{
	struct fixture *f = *state;
	struct rpc_peer *p = connect_with(f, &f->key);
	struct rpc_result res;
	uint64_t ino;
	assert_int_equal(getattr(p, 1, &ino, &res), 0); /* handshake done: direct writes from here */
	rpc_result_free(&res);
	enum { NT = 4 };
	struct flood fl[NT];
	pthread_t th[NT];
	for (unsigned t = 0; t < NT; t++) {
		fl[t] = (struct flood){.p = p, .id = t};
		pthread_mutex_init(&fl[t].c.mu, NULL);
		pthread_cond_init(&fl[t].c.cv, NULL);
		fl[t].wdata = malloc(1u << 20);
		assert_non_null(fl[t].wdata);
		for (uint32_t i = 0; i < (1u << 20); i++) {
			fl[t].wdata[i] = (uint8_t)(i * 13 + t);
			fl[t].wsum += fl[t].wdata[i];
		}
	}
	for (unsigned t = 0; t < NT; t++)
		assert_int_equal(pthread_create(&th[t], NULL, flood_thread, &fl[t]), 0);
	for (unsigned t = 0; t < NT; t++) {
		pthread_join(th[t], NULL);
		pthread_mutex_lock(&fl[t].c.mu);
		while (fl[t].c.done < FLOOD_CALLS)
			pthread_cond_wait(&fl[t].c.cv, &fl[t].c.mu);
		pthread_mutex_unlock(&fl[t].c.mu);
		assert_int_equal(fl[t].c.bad, 0);
	}
	/* The connection still works both ways afterwards. */
	assert_int_equal(getattr(p, 77, &ino, &res), 0);
	assert_true(ino == 77);
	rpc_result_free(&res);
	rpc_peer_free(p);
	for (unsigned t = 0; t < NT; t++) {
		pthread_mutex_destroy(&fl[t].c.mu);
		pthread_cond_destroy(&fl[t].c.cv);
		free(fl[t].wdata);
	}
}

/* 48 MiB of replies asked for at once: past the server's output bound
 * (32 MiB) it stops reading the connection until the replies drain, then
 * serves the rest. */
static void test_reply_backlog(void **state)
{
	struct fixture *f = *state;
	struct rpc_peer *p = connect_with(f, &f->key);
	struct rpc_result res;
	uint64_t ino;
	assert_int_equal(getattr(p, 1, &ino, &res), 0);
	rpc_result_free(&res);
	struct flood fl = {.p = p, .id = 5};
	pthread_mutex_init(&fl.c.mu, NULL);
	pthread_cond_init(&fl.c.cv, NULL);
	enum { N = 48 };
	for (int i = 0; i < N; i++) {
		struct wbuf b;
		wbuf_init(&b);
		struct msg_ds_read_req rd = {.chunk_id = 1, .offset = fl.id, .length = 1u << 20};
		msg_ds_read_req_put(&b, &rd);
		assert_int_equal(rpc_call_async(p, VDIFS_MSG_DS_READ, &b, NULL, 0, flood_read_cb, &fl), 0);
		wbuf_free(&b);
	}
	pthread_mutex_lock(&fl.c.mu);
	while (fl.c.done < N)
		pthread_cond_wait(&fl.c.cv, &fl.c.mu);
	pthread_mutex_unlock(&fl.c.mu);
	assert_int_equal(fl.c.bad, 0);
	assert_int_equal(getattr(p, 78, &ino, &res), 0);
	assert_true(ino == 78);
	rpc_result_free(&res);
	rpc_peer_free(p);
	pthread_mutex_destroy(&fl.c.mu);
	pthread_cond_destroy(&fl.c.cv);
}

static void test_wrong_key(void **state)
{
	struct fixture *f = *state;
	struct rpc_auth other = f->key;
	other.key[0] ^= 1;
	struct rpc_peer *p = connect_with(f, &other);
	struct rpc_result res;
	uint64_t ino;
	assert_int_equal(getattr(p, 1, &ino, &res), -EACCES);
	assert_non_null(strstr(res.message, "cluster key"));
	assert_true(rpc_peer_dead(p));
	rpc_peer_free(p);

	struct rpc_auth none = {.keylen = 0};
	p = connect_with(f, &none);
	assert_int_equal(getattr(p, 1, &ino, &res), -EACCES);
	rpc_peer_free(p);
}

static void test_unknown_type_closes(void **state)
{
	struct fixture *f = *state;
	struct rpc_peer *p = connect_with(f, &f->key);
	struct rpc_result res;
	assert_int_equal(rpc_call(p, 999, NULL, NULL, 0, &res, 5000), -EOPNOTSUPP);
	assert_non_null(strstr(res.message, "unknown message type"));
	rpc_result_free(&res);
	uint64_t ino;
	/* The server closed the connection: the peer is dead, calls fail fast. */
	int rc = getattr(p, 1, &ino, &res);
	assert_true(rc == -ECONNRESET || rc < 0);
	rpc_peer_free(p);
}

static void test_timeout(void **state)
{
	struct fixture *f = *state;
	struct rpc_peer *p = connect_with(f, &f->key);
	struct wbuf b;
	wbuf_init(&b);
	struct msg_ino_req m = {.vol = 1, .ino = 1};
	msg_ino_req_put(&b, &m);
	struct rpc_result res;
	assert_int_equal(rpc_call(p, VDIFS_MSG_RELEASE, &b, NULL, 0, &res, 200), -ETIMEDOUT);
	assert_true(rpc_peer_dead(p));
	wbuf_free(&b);
	rpc_peer_free(p);
}

/* ---- raw sockets ---- */

/* Reads one reply frame and then expects the server to close; returns its status. */
static int expect_error_and_close(int fd)
{
	uint8_t buf[4096];
	size_t got = 0;
	for (;;) {
		ssize_t n = recv(fd, buf + got, sizeof(buf) - got, 0);
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	assert_true(got >= VDIFS_FRAME_HDR_LEN);
	struct vdifs_frame_hdr h;
	assert_int_equal(frame_hdr_decode(buf, 1 << 20, &h), 0);
	assert_true(h.type & VDIFS_REPLY_BIT);
	assert_int_equal(got, VDIFS_FRAME_HDR_LEN + h.len);
	close(fd);
	return h.status;
}

static void test_malformed_frames(void **state)
{
	struct fixture *f = *state;
	uint8_t h[VDIFS_FRAME_HDR_LEN];

	int fd = test_raw_connect(f->port); /* wrong magic */
	frame_hdr_encode(h, VDIFS_MSG_HELLO, 0, 0, 0);
	h[1] ^= 0x55;
	send(fd, h, sizeof(h), 0);
	assert_int_equal(expect_error_and_close(fd), -EPROTO);

	fd = test_raw_connect(f->port); /* over the length bound */
	frame_hdr_encode(h, VDIFS_MSG_HELLO, 0, VDIFS_DEFAULT_MAX_PAYLOAD + 1, 0);
	send(fd, h, sizeof(h), 0);
	assert_int_equal(expect_error_and_close(fd), -EMSGSIZE);

	fd = test_raw_connect(f->port); /* another protocol version */
	frame_hdr_encode(h, VDIFS_MSG_HELLO, 0, 0, 0);
	h[4] = 2;
	send(fd, h, sizeof(h), 0);
	assert_int_equal(expect_error_and_close(fd), -EPROTONOSUPPORT);

	fd = test_raw_connect(f->port); /* a request before the handshake */
	frame_hdr_encode(h, VDIFS_MSG_GETATTR, 5, 0, 0);
	send(fd, h, sizeof(h), 0);
	assert_int_equal(expect_error_and_close(fd), -EACCES);

	fd = test_raw_connect(f->port); /* a HELLO whose payload is truncated */
	uint8_t hello[VDIFS_FRAME_HDR_LEN + 3] = {0};
	frame_hdr_encode(hello, VDIFS_MSG_HELLO, 0, 3, 0);
	send(fd, hello, sizeof(hello), 0);
	assert_int_equal(expect_error_and_close(fd), -EBADMSG);

	fd = test_raw_connect(f->port); /* half a header, then silence: closed by the idle timeout */
	send(fd, h, 10, 0);
	uint8_t buf[64];
	assert_int_equal(recv(fd, buf, sizeof(buf), 0), 0);
	close(fd);

	/* The server still serves a well-behaved client. */
	struct rpc_peer *p = connect_with(f, &f->key);
	struct rpc_result res;
	uint64_t ino = 0;
	assert_int_equal(getattr(p, 99, &ino, &res), 0);
	assert_true(ino == 99);
	rpc_peer_free(p);
}

/* Regression: a loop stopped before its thread entered event_base_loop()
 * missed the break and rpc_loop_stop() waited forever (vdifs-admin with bad
 * arguments hung in admin_tools). */
static void test_loop_stop_at_once(void **state)
{
	(void)state;
	for (int i = 0; i < 300; i++) {
		struct rpc_loop *l = rpc_loop_start();
		assert_non_null(l);
		rpc_loop_stop(l);
	}
}

static void test_hostport(void **state)
{
	(void)state;
	char host[256];
	uint16_t port;
	assert_int_equal(rpc_parse_hostport("127.0.0.1:9400", host, &port), 0);
	assert_string_equal(host, "127.0.0.1");
	assert_int_equal(port, 9400);
	assert_int_equal(rpc_parse_hostport("[::1]:80", host, &port), 0);
	assert_string_equal(host, "::1");
	assert_int_equal(rpc_parse_hostport("nohost", host, &port), -EINVAL);
	assert_int_equal(rpc_parse_hostport("h:99999", host, &port), -EINVAL);
	assert_int_equal(rpc_parse_hostport(":1", host, &port), -EINVAL);
}

static void test_key_files(void **state)
{
	(void)state;
	char path[] = "/tmp/vdifs-key-XXXXXX";
	int fd = mkstemp(path);
	close(fd);
	char err[256];
	assert_int_equal(rpc_auth_generate_key(path, err, sizeof(err)), 0);
	struct rpc_auth a, b;
	assert_int_equal(rpc_auth_load_key(&a, path, err, sizeof(err)), 0);
	assert_int_equal(a.keylen, 32);
	assert_int_equal(rpc_auth_generate_key(path, err, sizeof(err)), 0);
	assert_int_equal(rpc_auth_load_key(&b, path, err, sizeof(err)), 0);
	assert_memory_not_equal(a.key, b.key, 32);
	fd = open(path, O_WRONLY | O_TRUNC);
	assert_int_equal(write(fd, "short\n", 6), 6);
	close(fd);
	assert_int_equal(rpc_auth_load_key(&a, path, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "key must be"));
	unlink(path);
	assert_int_equal(rpc_auth_load_key(&a, path, err, sizeof(err)), -ENOENT);
}

int main(void)
{
	log_init("test_rpc", LOG_ERROR);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_call_and_error, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pipelined, setup, teardown),
		cmocka_unit_test_setup_teardown(test_data, setup, teardown),
		cmocka_unit_test_setup_teardown(test_flood, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reply_backlog, setup, teardown),
		cmocka_unit_test_setup_teardown(test_wrong_key, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unknown_type_closes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_timeout, setup, teardown),
		cmocka_unit_test_setup_teardown(test_malformed_frames, setup, teardown),
		cmocka_unit_test(test_loop_stop_at_once),
		cmocka_unit_test(test_hostport),
		cmocka_unit_test(test_key_files),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
