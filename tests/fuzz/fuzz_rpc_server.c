/*
 * fuzz_rpc_server: feeds a byte stream to a real rpc server (libvdifs/rpc.c:
 * frame reading, the HELLO/AUTH handshake, dispatch, replies) over a loopback
 * TCP connection, the way a hostile peer would.  Input byte 0, bit 0: the
 * harness first completes the handshake as an honest client (insecure key),
 * so the rest reaches the request path; else the rest is the whole stream
 * and meets the handshake.  The stream is sent, the connection half-closed,
 * and everything the server sends back is read until it closes: it must
 * close (never hang) and send only well-formed reply frames.  The handler
 * answers request ids by id % 4: the payload echoed, an error reply, a
 * reject (closes), the payload as a zero-copy data reply.  Record payloads
 * are fuzzed by fuzz_proto.
 */
#include "frame.h"
#include "fuzz_util.h"
#include "proto.h"
#include "rpc.h"
#include "wire.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

#define FUZZ_MAX_PAYLOAD 65536u

static struct event_base *base;
static struct rpc_server *srv;
static uint16_t port;
static const struct rpc_auth insecure = {.keylen = 0};

static void handler(void *arg, const struct rpc_request *req)
{
	(void)arg;
	struct wbuf b;
	wbuf_init(&b);
	switch (req->req_id % 4) {
	case 0:
		wbuf_put_raw(&b, req->payload, req->len);
		rpc_reply(req, &b);
		break;
	case 1: rpc_reply_error(req, -EINVAL, "fuzz error reply to %s", proto_msg_name(req->type)); break;
	case 2: rpc_reject(req, -EBADMSG, "fuzz reject of %s", proto_msg_name(req->type)); break;
	default:
		msg_ds_read_rep_put_head(&b, req->len);
		rpc_reply_data(req, &b, req->payload, req->len);
		break;
	}
	wbuf_free(&b);
}

static void *server_main(void *arg)
{
	(void)arg;
	event_base_loop(base, EVLOOP_NO_EXIT_ON_EMPTY);
	return NULL;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	fuzz_quiet_log("fuzz_rpc_server");
	rpc_global_init();
	base = event_base_new();
	FUZZ_CHECK(base, "event_base_new failed");
	struct rpc_server_config cfg = {.name = "fuzz", .host = "127.0.0.1", .port = 0,
					.max_payload = FUZZ_MAX_PAYLOAD, .max_conns = 64,
					.idle_timeout_ms = 2000, .auth = &insecure, .handler = handler};
	char err[256];
	srv = rpc_server_start(base, &cfg, err, sizeof(err));
	FUZZ_CHECK(srv, "rpc_server_start: %s", err);
	port = rpc_server_port(srv);
	pthread_t t;
	FUZZ_CHECK(pthread_create(&t, NULL, server_main, NULL) == 0, "pthread_create failed");
	pthread_detach(t);
	return 0;
}

static int peer_connect(void)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	FUZZ_CHECK(fd >= 0, "socket: %s", strerror(errno));
	struct timeval tv = {.tv_sec = 5};
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	int one = 1; /* header and payload go in two sends: no Nagle delay */
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	/* A signal (LeakSanitizer stops the world with them) may interrupt the
	 * connect: it then completes in the background. */
	while (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 && errno != EISCONN) {
		FUZZ_CHECK(errno == EINTR || errno == EALREADY, "connect: %s", strerror(errno));
		poll(&(struct pollfd){.fd = fd, .events = POLLOUT}, 1, 100);
	}
	return fd;
}

static void send_all(int fd, const void *p, size_t n)
{
	const uint8_t *q = p;
	while (n > 0) {
		ssize_t k = send(fd, q, n, MSG_NOSIGNAL);
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0 && (errno == EPIPE || errno == ECONNRESET))
			return; /* the server closed on an earlier frame: fine */
		FUZZ_CHECK(k > 0, "send: %s", strerror(errno));
		q += k;
		n -= (size_t)k;
	}
}

/* n bytes, or false at the end of the stream. */
static bool recv_all(int fd, void *p, size_t n)
{
	uint8_t *q = p;
	while (n > 0) {
		ssize_t k = recv(fd, q, n, 0);
		if (k < 0 && errno == EINTR)
			continue;
		if (k == 0 || (k < 0 && errno == ECONNRESET))
			return false;
		FUZZ_CHECK(k > 0, "recv: %s (the server neither answered nor closed)", strerror(errno));
		q += k;
		n -= (size_t)k;
	}
	return true;
}

/* Reads one reply frame and checks its header; false at the end. */
static bool recv_reply(int fd, struct vdifs_frame_hdr *h, uint8_t *payload)
{
	uint8_t hb[VDIFS_FRAME_HDR_LEN];
	if (!recv_all(fd, hb, sizeof(hb)))
		return false;
	/* A reply carries at most the request's payload plus a small head. */
	int rc = frame_hdr_decode(hb, FUZZ_MAX_PAYLOAD + 4096, h);
	FUZZ_CHECK(rc == 0, "server sent a bad frame header (%d)", rc);
	FUZZ_CHECK(h->type & VDIFS_REPLY_BIT, "server sent a non-reply frame (type 0x%x)", h->type);
	FUZZ_CHECK(recv_all(fd, payload, h->len), "server closed in the middle of a %u-byte reply", h->len);
	return true;
}

static void send_frame(int fd, uint16_t type, uint64_t id, const struct wbuf *b)
{
	uint8_t hb[VDIFS_FRAME_HDR_LEN];
	frame_hdr_encode(hb, type, id, (uint32_t)b->len, 0);
	send_all(fd, hb, sizeof(hb));
	send_all(fd, b->data, b->len);
}

/* HELLO and AUTH as an honest client with no key (docs/protocol.md). */
static void handshake(int fd, uint8_t *payload)
{
	struct msg_hello_req hello = {.role = VDIFS_ROLE_CLIENT, .name = {(const uint8_t *)"fuzz", 4}};
	memset(hello.nonce.b, 0x42, sizeof(hello.nonce.b));
	struct wbuf b;
	wbuf_init(&b);
	msg_hello_req_put(&b, &hello);
	send_frame(fd, VDIFS_MSG_HELLO, 1, &b);
	struct vdifs_frame_hdr h;
	struct msg_hello_rep rep;
	FUZZ_CHECK(recv_reply(fd, &h, payload) && h.status == 0, "HELLO refused");
	FUZZ_CHECK(msg_hello_rep_decode(payload, h.len, &rep) == 0, "malformed HELLO reply");
	struct msg_auth_req auth;
	rpc_auth_proof(&insecure, "vdifs-client-proof", &rep.nonce, &hello.nonce, &auth.proof);
	wbuf_reset(&b);
	msg_auth_req_put(&b, &auth);
	send_frame(fd, VDIFS_MSG_AUTH, 2, &b);
	FUZZ_CHECK(recv_reply(fd, &h, payload) && h.status == 0, "AUTH refused");
	wbuf_free(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t payload[FUZZ_MAX_PAYLOAD + 4096];
	if (size < 1)
		return 0;
	int fd = peer_connect();
	if (data[0] & 1)
		handshake(fd, payload);
	send_all(fd, data + 1, size - 1);
	shutdown(fd, SHUT_WR);
	struct vdifs_frame_hdr h;
	while (recv_reply(fd, &h, payload))
		;
	close(fd);
	return 0;
}
