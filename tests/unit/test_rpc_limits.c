/*
 * rpc server limits against hostile peers, on real loopback sockets: a full
 * server drops the oldest unauthenticated connection for a new one (never an
 * authenticated one), a handshake has a deadline that trickled bytes do not
 * move, frames before authentication are bounded small, a peer that reads
 * none of its replies is closed, and a server out of file descriptors
 * neither spins nor stops serving (a forked server with a low RLIMIT_NOFILE).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

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
};

/* GETATTR echoes the ino; DS_READ returns `length` bytes. */
static void handler(void *arg, const struct rpc_request *req)
{
	(void)arg;
	struct wbuf b;
	wbuf_init(&b);
	if (req->type == VDIFS_MSG_GETATTR) {
		struct msg_ino_req m;
		if (msg_ino_req_decode(req->payload, req->len, &m) < 0) {
			rpc_reject(req, -EBADMSG, "malformed GETATTR");
		} else {
			struct msg_attr_rep r = {.attr = {.ino = m.ino, .mode = 0100644}};
			msg_attr_rep_put(&b, &r);
			rpc_reply(req, &b);
		}
	} else if (req->type == VDIFS_MSG_DS_READ) {
		struct msg_ds_read_req m;
		if (msg_ds_read_req_decode(req->payload, req->len, &m) < 0 || m.length > VDIFS_DATA_MAX) {
			rpc_reject(req, -EBADMSG, "malformed DS_READ");
		} else {
			uint8_t *data = calloc(1, m.length ? m.length : 1);
			msg_ds_read_rep_put_head(&b, m.length);
			rpc_reply_data(req, &b, data, m.length);
			free(data);
		}
	} else {
		rpc_reject(req, -EOPNOTSUPP, "unknown message type %u", req->type);
	}
	wbuf_free(&b);
}

static void set_key(struct rpc_auth *key)
{
	memcpy(key->key, "0123456789abcdef0123456789abcdef", 32);
	key->keylen = 32;
}

static struct rpc_server *start_server(struct event_base *base, const struct rpc_auth *key, uint32_t max_conns,
				       uint32_t idle_ms)
{
	struct rpc_server_config cfg = {.name = "test", .host = "127.0.0.1", .port = 0,
					.max_payload = VDIFS_DEFAULT_MAX_PAYLOAD, .max_conns = max_conns,
					.idle_timeout_ms = idle_ms, .auth = key, .handler = handler};
	char err[256];
	struct rpc_server *srv = rpc_server_start(base, &cfg, err, sizeof(err));
	assert_non_null(srv);
	return srv;
}

static struct fixture *fixture_new(uint32_t max_conns, uint32_t idle_ms)
{
	struct fixture *f = calloc(1, sizeof(*f));
	rpc_global_init();
	f->base = event_base_new();
	set_key(&f->key);
	f->srv = start_server(f->base, &f->key, max_conns, idle_ms);
	f->port = rpc_server_port(f->srv);
	pthread_create(&f->thread, NULL, test_loop_main, f->base);
	f->loop = rpc_loop_start();
	return f;
}

static void fixture_free(struct fixture *f)
{
	rpc_loop_stop(f->loop);
	event_base_loopbreak(f->base);
	pthread_join(f->thread, NULL);
	rpc_server_free(f->srv);
	event_base_free(f->base);
	free(f);
}

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void sleep_ms(long ms)
{
	struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};
	nanosleep(&ts, NULL);
}

static struct rpc_peer *peer_new(struct fixture *f)
{
	struct rpc_peer_config pc = {.host = "127.0.0.1", .port = f->port, .auth = &f->key,
				     .role = VDIFS_ROLE_CLIENT, .name = "unit"};
	return rpc_peer_new(rpc_loop_base(f->loop), &pc);
}

/* GETATTR of ino on p; returns the status (0: echoed correctly). */
static int getattr(struct rpc_peer *p, uint64_t ino)
{
	struct wbuf b;
	wbuf_init(&b);
	struct msg_ino_req m = {.vol = 1, .ino = ino};
	msg_ino_req_put(&b, &m);
	struct rpc_result res;
	int rc = rpc_call(p, VDIFS_MSG_GETATTR, &b, NULL, 0, &res, 3000);
	wbuf_free(&b);
	if (rc == 0) {
		struct msg_attr_rep r;
		assert_int_equal(msg_attr_rep_decode(res.payload, res.len, &r), 0);
		assert_true(r.attr.ino == ino);
	}
	rpc_result_free(&res);
	return rc;
}

/* Reads and drops what comes until the server closes: true then, false when
 * nothing closed it within the socket's receive timeout. */
static bool closed_by_server(int fd)
{
	uint8_t buf[65536];
	for (;;) {
		ssize_t n = recv(fd, buf, sizeof(buf), 0);
		if (n == 0 || (n < 0 && errno == ECONNRESET))
			return true;
		if (n < 0)
			return false;
	}
}

/* True when the server has neither closed fd nor sent anything on it. */
static bool open_and_quiet(int fd)
{
	uint8_t b;
	return recv(fd, &b, 1, MSG_DONTWAIT) < 0 && errno == EAGAIN;
}

static void hello_frame(struct wbuf *b, struct vdifs_nonce *cn)
{
	for (size_t i = 0; i < sizeof(cn->b); i++)
		cn->b[i] = (uint8_t)(i * 13 + 1);
	struct msg_hello_req m = {.role = VDIFS_ROLE_CLIENT, .nonce = *cn, .name = {(const uint8_t *)"raw", 3}};
	struct wbuf p;
	wbuf_init(&p);
	msg_hello_req_put(&p, &m);
	uint8_t hdr[VDIFS_FRAME_HDR_LEN];
	frame_hdr_encode(hdr, VDIFS_MSG_HELLO, 0, (uint32_t)p.len, 0);
	wbuf_init(b);
	wbuf_put_raw(b, hdr, sizeof(hdr));
	wbuf_put_raw(b, p.data, p.len);
	wbuf_free(&p);
}

static bool recv_all(int fd, void *buf, size_t len)
{
	size_t got = 0;
	while (got < len) {
		ssize_t n = recv(fd, (uint8_t *)buf + got, len - got, 0);
		if (n <= 0)
			return false;
		got += (size_t)n;
	}
	return true;
}

/* A raw connection through the whole handshake, each reply awaited at most
 * wait_ms; -1 when the server did not complete it. */
static int try_authenticated(uint16_t port, const struct rpc_auth *key, long wait_ms)
{
	int fd = test_raw_connect(port);
	struct timeval tv = {.tv_sec = wait_ms / 1000, .tv_usec = (wait_ms % 1000) * 1000};
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	struct vdifs_nonce cn;
	struct wbuf b;
	hello_frame(&b, &cn);
	bool ok = send(fd, b.data, b.len, MSG_NOSIGNAL) == (ssize_t)b.len;
	wbuf_free(&b);
	uint8_t rep[VDIFS_FRAME_HDR_LEN + 48];
	struct vdifs_frame_hdr h;
	struct msg_hello_rep hr;
	ok = ok && recv_all(fd, rep, sizeof(rep)) && frame_hdr_decode(rep, 1024, &h) == 0 && h.status == 0 &&
	     msg_hello_rep_decode(rep + VDIFS_FRAME_HDR_LEN, h.len, &hr) == 0;
	if (ok) {
		struct msg_auth_req a;
		rpc_auth_proof(key, "vdifs-client-proof", &hr.nonce, &cn, &a.proof);
		struct wbuf p;
		wbuf_init(&p);
		msg_auth_req_put(&p, &a);
		uint8_t hdr[VDIFS_FRAME_HDR_LEN];
		frame_hdr_encode(hdr, VDIFS_MSG_AUTH, 0, (uint32_t)p.len, 0);
		ok = send(fd, hdr, sizeof(hdr), MSG_NOSIGNAL) == (ssize_t)sizeof(hdr) &&
		     send(fd, p.data, p.len, MSG_NOSIGNAL) == (ssize_t)p.len && recv_all(fd, hdr, sizeof(hdr)) &&
		     frame_hdr_decode(hdr, 1024, &h) == 0 && h.status == 0 && h.len == 0;
		wbuf_free(&p);
	}
	if (!ok) {
		close(fd);
		return -1;
	}
	tv.tv_sec = 3;
	tv.tv_usec = 0;
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	return fd;
}

/* A full server drops its oldest unauthenticated connection for a new one,
 * so connections that never authenticate cannot lock out a client. */
static void test_full_drops_oldest_handshake(void **state)
{
	(void)state;
	struct fixture *f = fixture_new(8, 10000);
	int raw[8];
	for (int i = 0; i < 8; i++)
		raw[i] = test_raw_connect(f->port);
	sleep_ms(100); /* all accepted */
	struct rpc_peer *p = peer_new(f);
	assert_int_equal(getattr(p, 42), 0);
	assert_true(closed_by_server(raw[0]));
	for (int i = 1; i < 8; i++)
		assert_true(open_and_quiet(raw[i]));
	for (int i = 0; i < 8; i++)
		close(raw[i]);
	rpc_peer_free(p);
	fixture_free(f);
}

/* With every place held by an authenticated peer a new connection is
 * refused at once, and the authenticated ones go on. */
static void test_full_of_authenticated_refuses(void **state)
{
	(void)state;
	struct fixture *f = fixture_new(3, 10000);
	struct rpc_peer *p[3];
	for (int i = 0; i < 3; i++) {
		p[i] = peer_new(f);
		assert_int_equal(getattr(p[i], 10 + (uint64_t)i), 0);
	}
	uint64_t t0 = now_ms();
	int fd = test_raw_connect(f->port);
	assert_true(closed_by_server(fd));
	assert_true(now_ms() - t0 < 2000);
	close(fd);
	for (int i = 0; i < 3; i++)
		assert_int_equal(getattr(p[i], 20 + (uint64_t)i), 0);
	rpc_peer_free(p[0]);
	int rc = -1;
	for (int tries = 0; tries < 20 && rc != 0; tries++) { /* until the server saw the close */
		sleep_ms(50);
		struct rpc_peer *q = peer_new(f);
		rc = getattr(q, 30);
		rpc_peer_free(q);
	}
	assert_int_equal(rc, 0);
	rpc_peer_free(p[1]);
	rpc_peer_free(p[2]);
	fixture_free(f);
}

/* The handshake must end idle_timeout_ms after the accept, however steadily
 * the bytes trickle in; an idle authenticated peer is not timed out. */
static void test_handshake_deadline(void **state)
{
	(void)state;
	struct fixture *f = fixture_new(16, 400);
	struct rpc_peer *idle = peer_new(f);
	assert_int_equal(getattr(idle, 1), 0);
	struct vdifs_nonce cn;
	struct wbuf b;
	hello_frame(&b, &cn);
	uint64_t t0 = now_ms();
	int fd = test_raw_connect(f->port);
	uint64_t closed_at = 0;
	for (size_t i = 0; i < b.len && !closed_at; i++) {
		send(fd, b.data + i, 1, MSG_NOSIGNAL);
		sleep_ms(100);
		uint8_t c;
		ssize_t n = recv(fd, &c, 1, MSG_DONTWAIT);
		if (n == 0 || (n < 0 && errno != EAGAIN))
			closed_at = now_ms();
	}
	wbuf_free(&b);
	assert_true(closed_at != 0);
	assert_true(closed_at - t0 >= 350 && closed_at - t0 < 1500);
	close(fd);
	sleep_ms(600);
	assert_int_equal(getattr(idle, 2), 0);
	rpc_peer_free(idle);
	fixture_free(f);
}

/* Before authentication a frame may not be longer than the handshake needs,
 * even under max_payload: nobody makes the server buffer megabytes unasked. */
static void test_handshake_frame_bound(void **state)
{
	(void)state;
	struct fixture *f = fixture_new(16, 10000);
	int fd = test_raw_connect(f->port);
	uint8_t h[VDIFS_FRAME_HDR_LEN];
	frame_hdr_encode(h, VDIFS_MSG_HELLO, 0, 64 * 1024, 0);
	send(fd, h, sizeof(h), 0);
	uint8_t buf[1024];
	ssize_t n = recv(fd, buf, sizeof(buf), 0);
	assert_true(n >= VDIFS_FRAME_HDR_LEN);
	struct vdifs_frame_hdr r;
	assert_int_equal(frame_hdr_decode(buf, 1024, &r), 0);
	assert_int_equal(r.status, -EMSGSIZE);
	assert_true(closed_by_server(fd));
	close(fd);
	fixture_free(f);
}

/* An authenticated peer that asks for replies and reads none is closed (its
 * output dropped) once nothing left for the write-stall time, 5 s. */
static void test_stalled_reader_closed(void **state)
{
	(void)state;
	struct fixture *f = fixture_new(16, 300);
	int fd = try_authenticated(f->port, &f->key, 3000);
	assert_true(fd >= 0);
	for (uint64_t id = 1; id <= 40; id++) {
		struct wbuf p;
		wbuf_init(&p);
		struct msg_ds_read_req rd = {.chunk_id = 1, .length = 1u << 20};
		msg_ds_read_req_put(&p, &rd);
		uint8_t hdr[VDIFS_FRAME_HDR_LEN];
		frame_hdr_encode(hdr, VDIFS_MSG_DS_READ, id, (uint32_t)p.len, 0);
		send(fd, hdr, sizeof(hdr), MSG_NOSIGNAL);
		send(fd, p.data, p.len, MSG_NOSIGNAL);
		wbuf_free(&p);
	}
	sleep_ms(6500);
	assert_true(closed_by_server(fd));
	close(fd);
	struct rpc_peer *q = peer_new(f);
	assert_int_equal(getattr(q, 5), 0);
	rpc_peer_free(q);
	fixture_free(f);
}

/* ---- out of file descriptors -------------------------------------------- */

static int highest_fd(void)
{
	int hi = 2;
	DIR *d = opendir("/proc/self/fd");
	assert_non_null(d);
	for (struct dirent *e; (e = readdir(d));)
		if (e->d_name[0] != '.' && atoi(e->d_name) > hi)
			hi = atoi(e->d_name);
	closedir(d);
	return hi;
}

/* The server in a child with room for a dozen more descriptors. */
static void emfile_child(int wfd)
{
	struct rpc_auth key;
	set_key(&key);
	rpc_global_init();
	struct event_base *base = event_base_new();
	struct rpc_server *srv = start_server(base, &key, 1000, 20000);
	uint16_t port = rpc_server_port(srv);
	/* Descriptors are numbered from the lowest free one: fill the gaps
	 * below the highest, then allow a dozen above it. */
	int hi = highest_fd();
	for (int fd = open("/dev/null", O_RDONLY); fd >= 0 && fd < hi; fd = open("/dev/null", O_RDONLY))
		;
	struct rlimit rl = {.rlim_cur = (rlim_t)hi + 13, .rlim_max = (rlim_t)hi + 13};
	if (setrlimit(RLIMIT_NOFILE, &rl) < 0 || write(wfd, &port, sizeof(port)) != sizeof(port))
		_exit(1);
	close(wfd);
	event_base_dispatch(base);
	_exit(0);
}

static double cpu_seconds(pid_t pid)
{
	char path[64], buf[1024];
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	FILE *f = fopen(path, "r");
	assert_non_null(f);
	assert_non_null(fgets(buf, sizeof(buf), f));
	fclose(f);
	const char *p = strrchr(buf, ')');
	unsigned long ut = 0, st = 0;
	/* after "pid (comm)": state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime */
	assert_int_equal(sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st), 2);
	return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

static double cpu_in_a_second(pid_t pid)
{
	double c0 = cpu_seconds(pid);
	sleep_ms(1000);
	return cpu_seconds(pid) - c0;
}

/* accept() failing with EMFILE must neither spin the loop (the listening
 * socket stays readable) nor keep a client out: the oldest unauthenticated
 * connection gives its descriptor up, and with none to give up the server
 * stops accepting a while.  A forked server with a dozen descriptors left. */
static void test_out_of_fds(void **state)
{
	(void)state;
	int pfd[2];
	assert_int_equal(pipe(pfd), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		close(pfd[0]);
		emfile_child(pfd[1]);
	}
	close(pfd[1]);
	uint16_t port = 0;
	assert_int_equal(read(pfd[0], &port, sizeof(port)), (ssize_t)sizeof(port));
	close(pfd[0]);
	struct rpc_auth key;
	set_key(&key);

	/* Unauthenticated connections: dropped, oldest first, for new ones. */
	enum { N = 60 };
	int raw[N];
	for (int i = 0; i < N; i++)
		raw[i] = test_raw_connect(port); /* the kernel completes them; the server runs out */
	sleep_ms(300);
	double churn = cpu_in_a_second(pid);
	int dropped = 0;
	for (int i = 0; i < N; i++) {
		dropped += !open_and_quiet(raw[i]);
		close(raw[i]);
	}
	sleep_ms(200);

	/* Authenticated connections hold every descriptor: one more waits in
	 * the backlog while the server pauses accepting. */
	int auth[40], nauth = 0, probe = -1;
	while (nauth < 40 && (probe = try_authenticated(port, &key, 500)) >= 0)
		auth[nauth++] = probe;
	int held = nauth;
	double paused = cpu_in_a_second(pid);
	print_message("server CPU in 1 s out of descriptors: %.2f s dropping handshakes (%d of %d dropped), "
		      "%.2f s with %d authenticated connections holding them\n", churn, dropped, N, paused, held);

	/* One goes: a client gets in (the probe's late handshake is dropped). */
	close(auth[--nauth]);
	struct fixture f = {.port = port, .key = key};
	rpc_global_init();
	f.loop = rpc_loop_start();
	struct rpc_peer *p = peer_new(&f);
	int rc = getattr(p, 77);
	rpc_peer_free(p);
	rpc_loop_stop(f.loop);
	while (nauth > 0)
		close(auth[--nauth]);
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	assert_true(dropped >= N - 20);
	assert_true(probe < 0 && held > 0 && held < 40);
	assert_true(churn < 0.2);
	assert_true(paused < 0.2);
	assert_int_equal(rc, 0);
}

int main(void)
{
	log_init("test_rpc_limits", LOG_ERROR);
	signal(SIGPIPE, SIG_IGN);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_out_of_fds), /* first: it forks, before any thread exists */
		cmocka_unit_test(test_full_drops_oldest_handshake),
		cmocka_unit_test(test_full_of_authenticated_refuses),
		cmocka_unit_test(test_handshake_deadline),
		cmocka_unit_test(test_handshake_frame_bound),
		cmocka_unit_test(test_stalled_reader_closed),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
