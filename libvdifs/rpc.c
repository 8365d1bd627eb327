/*
 * rpc: framed, pipelined request/reply over TCP on libevent (see rpc.h).
 *
 * Servers own their connections on one event_base thread: no locks, a frame is
 * parsed in place from the bufferevent's input (pulled up only when complete)
 * and handed to the handler.  Clients share one connection between many
 * threads: each request is written as one evbuffer (header, payload and a
 * by-reference data tail) so frames never interleave, and replies are matched
 * to calls by request id in a small hash table.  Tuned for many small
 * metadata calls and 4 KiB..1 MiB data calls in flight at once: both sides
 * write frames to the socket themselves (a server once per turn of its loop,
 * a client at once from the calling thread), and a bufferevent's write event
 * is enabled only to send what the socket did not take (bev_write_now).
 *
 * Lock order on the client side: a bufferevent's own lock (held by libevent
 * around our callbacks) may be taken before peer->mu, never after it.
 */
#include "rpc.h"

#include "frame.h"
#include "log.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <event2/thread.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define LABEL_SERVER "vdifs-server-proof"
#define LABEL_CLIENT "vdifs-client-proof"

static pthread_once_t global_once = PTHREAD_ONCE_INIT;

static void global_init_once(void)
{
	evthread_use_pthreads();
}

void rpc_global_init(void)
{
	pthread_once(&global_once, global_init_once);
}

static void set_nodelay(evutil_socket_t fd)
{
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

/* libevent moves at most 16 KiB per socket read or write by default: a 1 MiB
 * chunk write would take 64 turns of the loop.  Let one turn move a frame. */
#define RPC_SINGLE_IO (1 << 20)

static void set_io_sizes(struct bufferevent *bev)
{
	bufferevent_set_max_single_read(bev, RPC_SINGLE_IO);
	bufferevent_set_max_single_write(bev, RPC_SINGLE_IO);
}

static void random_nonce(struct vdifs_nonce *n)
{
	if (RAND_bytes(n->b, sizeof(n->b)) != 1) {
		/* Never proceed with a predictable challenge. */
		log_error("no randomness for a handshake nonce");
		abort();
	}
}

static struct timeval ms_to_tv(uint32_t ms)
{
	struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};
	return tv;
}

static uint64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

uint64_t rpc_raise_nofile(void)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		return 1024;
	if (rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl) < 0 || getrlimit(RLIMIT_NOFILE, &rl) < 0)
			return 1024;
	}
	return rl.rlim_cur == RLIM_INFINITY ? UINT64_MAX : (uint64_t)rl.rlim_cur;
}

/* Writes what bev's output holds to its socket now, as much as the socket
 * takes (EAGAIN and errors are left to the bufferevent, which meets them
 * again when its write event is enabled).  A socket bufferevent freezes the
 * front of its output so that nothing but its own write callback drains it
 * (a plain evbuffer_write() on it fails and writes nothing); this does what
 * that callback does, under the bufferevent's lock, which the caller holds
 * (or is the loop thread of a bufferevent without locking).  Returns the
 * bytes left. */
static size_t bev_write_now(struct bufferevent *bev)
{
	struct evbuffer *out = bufferevent_get_output(bev);
	evutil_socket_t fd = bufferevent_getfd(bev);
	if (fd >= 0 && evbuffer_get_length(out) > 0) {
		evbuffer_unfreeze(out, 1);
		evbuffer_write(out, fd);
		evbuffer_freeze(out, 1);
	}
	return evbuffer_get_length(out);
}

/* Writes one frame (header, payload, then data by reference) atomically. */
static int write_frame(struct bufferevent *bev, uint16_t type, uint64_t id, int32_t status,
		       const struct wbuf *payload, const void *data, size_t dlen)
{
	size_t plen = (payload ? payload->len : 0) + dlen;
	if (plen > UINT32_MAX)
		return -EMSGSIZE;
	if (payload && payload->err)
		return -ENOMEM;
	uint8_t hdr[VDIFS_FRAME_HDR_LEN];
	frame_hdr_encode(hdr, type, id, (uint32_t)plen, status);
	struct evbuffer *frame = evbuffer_new();
	if (!frame)
		return -ENOMEM;
	int rc = evbuffer_add(frame, hdr, sizeof(hdr));
	if (rc == 0 && payload && payload->len)
		rc = evbuffer_add(frame, payload->data, payload->len);
	if (rc == 0 && dlen)
		rc = evbuffer_add_reference(frame, data, dlen, NULL, NULL);
	if (rc == 0)
		rc = bufferevent_write_buffer(bev, frame);
	evbuffer_free(frame);
	return rc == 0 ? 0 : -ENOMEM;
}

/* ======================================================================== */
/* servers                                                                  */
/* ======================================================================== */

enum conn_state { CONN_WAIT_HELLO, CONN_WAIT_AUTH, CONN_READY };

/*
 * Hostile peers.  Until a peer has proved the cluster key it may hold
 * little: its frames are bounded by RPC_HANDSHAKE_MAX_PAYLOAD (HELLO and AUTH
 * are a few hundred bytes), the whole handshake must end within
 * idle_timeout_ms of the accept (a peer trickling a byte at a time does not
 * restart the clock), and it owns no place in max_conns: when the server is
 * full, or accept() runs out of file descriptors, the oldest connection still
 * in the handshake is dropped to make room.  New connections are refused only
 * while every place is held by an authenticated peer.  A real client needs
 * two round trips to authenticate; a flood of connections that never do
 * pushes it out only if it brings as many new ones as there are places in
 * that time.  The listener yields to the rest of the loop after every
 * RPC_ACCEPT_BURST accepts, so that a storm of connects waiting in the
 * backlog cannot push out a client whose HELLO is already there before it is
 * read.  What unauthenticated peers cause (refusals, drops, failed
 * handshakes) is logged at most RPC_LOG_BURST lines a second, each line
 * counting what was left out, so a flood cannot fill the disk.
 */
#define RPC_HANDSHAKE_MAX_PAYLOAD 1024
#define RPC_ACCEPT_BURST 16
#define RPC_LOG_BURST 10
/* accept() failed for want of file descriptors with no handshake to drop:
 * stop accepting this long (the listening socket stays readable, and the
 * loop would spin on it). */
#define RPC_ACCEPT_PAUSE_MS 100
#define RPC_WRITE_STALL_MIN_MS 5000

_Static_assert(RPC_HANDSHAKE_MAX_PAYLOAD >= 1 + 16 + 4 + VDIFS_NAME_MAX, "a HELLO fits the handshake bound");

struct rpc_server {
	struct event_base *base;
	struct evconnlistener *listener;
	struct rpc_server_config cfg;
	uint32_t nconns;
	uint16_t port;
	struct rpc_conn *conns;   /* every connection not yet freed */
	struct event *flush_ev;   /* made active when a reply is queued: see conn_want_flush */
	struct rpc_conn *flushq;  /* connections with replies to write (each holds a ref) */
	struct rpc_conn *hs_head, *hs_tail; /* open connections in the handshake, oldest first */
	struct event *resume_ev;  /* re-enables the listener after a pause */
	uint32_t accepts;         /* since the listener last yielded */
	/* log lines about unauthenticated peers: this second's count, left out */
	uint64_t log_second;
	uint32_t log_lines;
	uint64_t log_skipped;
};

struct rpc_conn {
	struct rpc_server *srv; /* NULL once the server was freed */
	struct rpc_conn *prev, *next;
	struct bufferevent *bev;
	int refs;
	bool closed;  /* no more input is processed; freed when flushed and unreferenced */
	bool counted; /* holds a place in srv->nconns */
	enum conn_state state;
	enum vdifs_role role;
	struct vdifs_nonce cnonce, snonce;
	char peer[160];
	void *data;
	bool flush_queued;            /* on srv->flushq */
	struct rpc_conn *flush_next;
	bool in_hs;                   /* on srv's handshake list */
	struct rpc_conn *hs_prev, *hs_next;
	uint64_t accepted_ms;         /* monotonic */
};

/* Logs a warning about a peer that has not authenticated, within the
 * server's budget of RPC_LOG_BURST such lines a second. */
static void server_log_hostile(struct rpc_server *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void server_log_hostile(struct rpc_server *s, const char *fmt, ...)
{
	uint64_t sec = mono_ms() / 1000;
	if (sec != s->log_second) {
		s->log_second = sec;
		s->log_lines = 0;
	}
	if (s->log_lines >= RPC_LOG_BURST) {
		s->log_skipped++;
		return;
	}
	s->log_lines++;
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (s->log_skipped)
		log_warn("%s (%llu similar lines about unauthenticated peers left out before this one)", msg,
			 (unsigned long long)s->log_skipped);
	else
		log_warn("%s", msg);
	s->log_skipped = 0;
}

static void hs_unlink(struct rpc_conn *c)
{
	if (!c->in_hs)
		return;
	struct rpc_server *s = c->srv;
	if (c->hs_prev)
		c->hs_prev->hs_next = c->hs_next;
	else
		s->hs_head = c->hs_next;
	if (c->hs_next)
		c->hs_next->hs_prev = c->hs_prev;
	else
		s->hs_tail = c->hs_prev;
	c->hs_prev = c->hs_next = NULL;
	c->in_hs = false;
}

static void hs_append(struct rpc_server *s, struct rpc_conn *c)
{
	c->hs_prev = s->hs_tail;
	c->hs_next = NULL;
	if (s->hs_tail)
		s->hs_tail->hs_next = c;
	else
		s->hs_head = c;
	s->hs_tail = c;
	c->in_hs = true;
}

static void conn_unlink(struct rpc_conn *c)
{
	if (!c->srv)
		return;
	hs_unlink(c);
	if (c->prev)
		c->prev->next = c->next;
	else
		c->srv->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	if (c->counted)
		c->srv->nconns--;
	c->srv = NULL;
}

static void conn_free(struct rpc_conn *c)
{
	if (c->bev)
		bufferevent_free(c->bev);
	conn_unlink(c);
	free(c);
}

void rpc_conn_ref(struct rpc_conn *c) { c->refs++; }

void rpc_conn_unref(struct rpc_conn *c)
{
	if (--c->refs == 0)
		conn_free(c);
}

enum vdifs_role rpc_conn_role(const struct rpc_conn *c) { return c->role; }
const char *rpc_conn_peer(const struct rpc_conn *c) { return c->peer; }
void rpc_conn_set_data(struct rpc_conn *c, void *data) { c->data = data; }
void *rpc_conn_get_data(const struct rpc_conn *c) { return c->data; }

static void conn_flushed_cb(struct bufferevent *bev, void *arg)
{
	(void)bev;
	struct rpc_conn *c = arg;
	hs_unlink(c);
	bufferevent_free(c->bev);
	c->bev = NULL;
	rpc_conn_unref(c);
}

static void conn_flush_failed_cb(struct bufferevent *bev, short what, void *arg)
{
	(void)what;
	conn_flushed_cb(bev, arg);
}

/* Stops reading, tells the owner, and frees the socket once output drained. */
static void conn_close(struct rpc_conn *c)
{
	if (c->closed)
		return;
	c->closed = true;
	if (c->srv && c->srv->cfg.on_close)
		c->srv->cfg.on_close(c->srv->cfg.arg, c);
	bufferevent_disable(c->bev, EV_READ);
	if (evbuffer_get_length(bufferevent_get_output(c->bev)) == 0) {
		hs_unlink(c);
		bufferevent_free(c->bev);
		c->bev = NULL;
		rpc_conn_unref(c);
		return;
	}
	/* Give the error reply a bounded time to leave.  An unauthenticated
	 * peer stays on the handshake list meanwhile: a flood of peers that do
	 * not read their refusals is dropped like any other. */
	struct timeval tv = {.tv_sec = 5, .tv_usec = 0};
	bufferevent_set_timeouts(c->bev, NULL, &tv);
	bufferevent_setcb(c->bev, NULL, conn_flushed_cb, conn_flush_failed_cb, c);
	bufferevent_enable(c->bev, EV_WRITE);
}

/* Closes c and frees its socket now, dropping output not yet sent. */
static void conn_abort(struct rpc_conn *c)
{
	rpc_conn_ref(c);
	conn_close(c);
	if (c->bev) { /* was flushing: give up on the rest */
		hs_unlink(c);
		bufferevent_free(c->bev);
		c->bev = NULL;
		rpc_conn_unref(c);
	}
	rpc_conn_unref(c);
}

/* Drops the oldest connection still in the handshake, to free a place or a
 * file descriptor; false when there is none. */
static bool server_drop_oldest_handshake(struct rpc_server *s, const char *why)
{
	struct rpc_conn *c = s->hs_head;
	if (!c)
		return false;
	server_log_hostile(s, "%s: dropped, still unauthenticated, %s", c->peer, why);
	conn_abort(c);
	return true;
}

/* A peer that sends requests but never reads replies must not make us buffer
 * without bound: past this much queued output we stop reading its requests. */
#define CONN_OUTPUT_HIGH (32u << 20)

/*
 * Replies are written by us, not by the bufferevent: a connection's write
 * event is enabled only while output is left over (the socket was full), so
 * that a reply does not cost an epoll_ctl to watch for writability, a turn of
 * the loop to find it, and another epoll_ctl to stop watching (measured: two
 * epoll_ctl per reply on a data server).  Replies queued during one turn of
 * the loop leave together at its end (as Redis writes replies before it
 * sleeps): conn_want_flush() queues the connection and makes flush_ev
 * active, which libevent runs after the callbacks already active.
 */
static void conn_flush(struct rpc_conn *c)
{
	if (c->closed || !c->bev)
		return; /* a closing connection's bufferevent sends the rest */
	struct bufferevent *bev = c->bev;
	if (bev_write_now(bev) > 0)
		bufferevent_enable(bev, EV_WRITE);
	else if (!(bufferevent_get_enabled(bev) & EV_READ))
		bufferevent_enable(bev, EV_READ); /* drained below CONN_OUTPUT_HIGH */
}

static void conn_want_flush(struct rpc_conn *c)
{
	struct rpc_server *s = c->srv;
	if (c->flush_queued)
		return;
	if (!s) { /* detached from a freed server: no loop turn to wait for */
		conn_flush(c);
		return;
	}
	rpc_conn_ref(c);
	c->flush_queued = true;
	c->flush_next = s->flushq;
	s->flushq = c;
	event_active(s->flush_ev, EV_TIMEOUT, 0);
}

static void server_flush_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct rpc_server *s = arg;
	while (s->flushq) {
		struct rpc_conn *c = s->flushq;
		s->flushq = c->flush_next;
		c->flush_queued = false;
		conn_flush(c);
		rpc_conn_unref(c);
	}
}

static void send_reply(struct rpc_conn *c, uint16_t type, uint64_t id, int status, const struct wbuf *p,
		       const void *data, size_t dlen)
{
	if (c->closed || !c->bev)
		return;
	if (write_frame(c->bev, (uint16_t)(type | VDIFS_REPLY_BIT), id, status, p, data, dlen) < 0) {
		log_error("%s: out of memory queueing a reply; closing", c->peer);
		conn_close(c);
		return;
	}
	conn_want_flush(c);
}

void rpc_reply(const struct rpc_request *req, const struct wbuf *payload)
{
	send_reply(req->conn, req->type, req->req_id, 0, payload, NULL, 0);
}

void rpc_reply_data(const struct rpc_request *req, const struct wbuf *head, const void *data, size_t len)
{
	/* The data may be freed as soon as we return: copy it into the output. */
	struct rpc_conn *c = req->conn;
	if (c->closed || !c->bev)
		return;
	size_t hl = head ? head->len : 0;
	uint8_t hdr[VDIFS_FRAME_HDR_LEN];
	frame_hdr_encode(hdr, (uint16_t)(req->type | VDIFS_REPLY_BIT), req->req_id, (uint32_t)(hl + len), 0);
	struct evbuffer *out = bufferevent_get_output(c->bev);
	if (evbuffer_add(out, hdr, sizeof(hdr)) < 0 || (hl && evbuffer_add(out, head->data, hl) < 0) ||
	    (len && evbuffer_add(out, data, len) < 0)) {
		log_error("%s: out of memory queueing a reply; closing", c->peer);
		conn_close(c);
		return;
	}
	conn_want_flush(c);
}

static void send_error(const struct rpc_request *req, int status, const char *msg)
{
	struct wbuf b;
	wbuf_init(&b);
	struct msg_error_rep m = {.message = {(const uint8_t *)msg, (uint32_t)strnlen(msg, VDIFS_PATH_MAX)}};
	msg_error_rep_put(&b, &m);
	send_reply(req->conn, req->type, req->req_id, status < 0 ? status : -EIO, &b, NULL, 0);
	wbuf_free(&b);
}

void rpc_reply_error(const struct rpc_request *req, int status, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	log_debug("%s: %s failed: %s (%s)", req->conn->peer, proto_msg_name(req->type), msg, strerror(-status));
	send_error(req, status, msg);
}

void rpc_reject(const struct rpc_request *req, int status, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	struct rpc_conn *c = req->conn;
	if (c->state != CONN_READY && c->srv)
		server_log_hostile(c->srv, "%s: %s; closing connection", c->peer, msg);
	else
		log_warn("%s: %s; closing connection", c->peer, msg);
	send_error(req, status, msg);
	conn_close(c);
}

static void handle_hello(struct rpc_conn *c, const struct rpc_request *req)
{
	struct msg_hello_req m;
	if (req->type != VDIFS_MSG_HELLO) {
		rpc_reject(req, -EACCES, "%s before the handshake", proto_msg_name(req->type));
		return;
	}
	if (msg_hello_req_decode(req->payload, req->len, &m) < 0) {
		rpc_reject(req, -EBADMSG, "malformed HELLO");
		return;
	}
	if (m.role < VDIFS_ROLE_CLIENT || m.role > VDIFS_ROLE_ADMIN) {
		rpc_reject(req, -EINVAL, "HELLO with unknown role %u", m.role);
		return;
	}
	c->role = (enum vdifs_role)m.role;
	c->cnonce = m.nonce;
	size_t pl = strlen(c->peer);
	snprintf(c->peer + pl, sizeof(c->peer) - pl, " (%.*s)", (int)(m.name.len > 64 ? 64 : m.name.len),
		 (const char *)m.name.p);
	random_nonce(&c->snonce);
	struct msg_hello_rep r = {.nonce = c->snonce};
	rpc_auth_proof(c->srv->cfg.auth, LABEL_SERVER, &c->cnonce, &c->snonce, &r.proof);
	struct wbuf b;
	wbuf_init(&b);
	msg_hello_rep_put(&b, &r);
	rpc_reply(req, &b);
	wbuf_free(&b);
	c->state = CONN_WAIT_AUTH;
}

static void handle_auth(struct rpc_conn *c, const struct rpc_request *req)
{
	struct msg_auth_req m;
	if (req->type != VDIFS_MSG_AUTH) {
		rpc_reject(req, -EACCES, "%s before authentication", proto_msg_name(req->type));
		return;
	}
	if (msg_auth_req_decode(req->payload, req->len, &m) < 0) {
		rpc_reject(req, -EBADMSG, "malformed AUTH");
		return;
	}
	struct vdifs_proof want;
	rpc_auth_proof(c->srv->cfg.auth, LABEL_CLIENT, &c->snonce, &c->cnonce, &want);
	if (CRYPTO_memcmp(want.b, m.proof.b, sizeof(want.b)) != 0) {
		rpc_reject(req, -EACCES, "authentication failed (wrong or missing cluster key)");
		return;
	}
	c->state = CONN_READY;
	hs_unlink(c);
	log_debug("%s: authenticated", c->peer);
	rpc_reply(req, NULL);
}

static void conn_dispatch(struct rpc_conn *c, const struct vdifs_frame_hdr *h, const uint8_t *payload)
{
	struct rpc_request req = {
		.conn = c, .type = h->type, .req_id = h->req_id, .payload = payload, .len = h->len};
	if (h->type & VDIFS_REPLY_BIT) {
		rpc_reject(&req, -EPROTO, "unexpected reply frame (type 0x%x)", h->type);
		return;
	}
	switch (c->state) {
	case CONN_WAIT_HELLO:
		handle_hello(c, &req);
		return;
	case CONN_WAIT_AUTH:
		handle_auth(c, &req);
		return;
	case CONN_READY:
		if (h->type == VDIFS_MSG_HELLO || h->type == VDIFS_MSG_AUTH) {
			rpc_reject(&req, -EPROTO, "repeated handshake");
			return;
		}
		c->srv->cfg.handler(c->srv->cfg.arg, &req);
		return;
	}
}

/* The bufferevent sent what conn_flush() left over: replies go back to
 * being written directly (conn_flush). */
static void conn_write_cb(struct bufferevent *bev, void *arg)
{
	struct rpc_conn *c = arg;
	size_t left = evbuffer_get_length(bufferevent_get_output(bev));
	if (left == 0)
		bufferevent_disable(bev, EV_WRITE);
	if (!c->closed && left < CONN_OUTPUT_HIGH / 2 && !(bufferevent_get_enabled(bev) & EV_READ))
		bufferevent_enable(bev, EV_READ);
}

/*
 * The read timeout guards the handshake (the whole of it: it must end
 * idle_timeout_ms after the accept) and partial frames (idle_timeout_ms
 * without a byte), not idle authenticated peers.  The write timeout closes a peer that stops
 * reading its replies for idle_timeout_ms, but not less than
 * RPC_WRITE_STALL_MIN_MS (a busy client's loop may pause a while between
 * reads); it runs only while output waits for the socket (the write event is
 * enabled only then, see conn_flush).
 */
static uint32_t write_stall_ms(const struct rpc_server *s)
{
	return s->cfg.idle_timeout_ms > RPC_WRITE_STALL_MIN_MS ? s->cfg.idle_timeout_ms : RPC_WRITE_STALL_MIN_MS;
}

static void conn_arm_timeout(struct rpc_conn *c)
{
	if (c->closed || !c->bev || !c->srv->cfg.idle_timeout_ms)
		return;
	uint32_t idle = c->srv->cfg.idle_timeout_ms;
	struct timeval rtv, wtv = ms_to_tv(write_stall_ms(c->srv));
	const struct timeval *rp = NULL;
	if (c->state != CONN_READY) {
		uint64_t deadline = c->accepted_ms + c->srv->cfg.idle_timeout_ms, now = mono_ms();
		rtv = ms_to_tv(deadline > now ? (uint32_t)(deadline - now) : 1);
		rp = &rtv;
	} else if (evbuffer_get_length(bufferevent_get_input(c->bev)) > 0) {
		rtv = ms_to_tv(idle);
		rp = &rtv;
	}
	bufferevent_set_timeouts(c->bev, rp, &wtv);
}

static void conn_read_cb(struct bufferevent *bev, void *arg)
{
	struct rpc_conn *c = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	rpc_conn_ref(c);
	while (!c->closed) {
		size_t avail = evbuffer_get_length(in);
		if (avail < VDIFS_FRAME_HDR_LEN)
			break;
		uint8_t hb[VDIFS_FRAME_HDR_LEN];
		evbuffer_copyout(in, hb, sizeof(hb));
		struct vdifs_frame_hdr h;
		uint32_t bound = c->srv->cfg.max_payload;
		if (c->state != CONN_READY && bound > RPC_HANDSHAKE_MAX_PAYLOAD)
			bound = RPC_HANDSHAKE_MAX_PAYLOAD;
		int rc = frame_hdr_decode(hb, bound, &h);
		if (rc < 0) {
			struct rpc_request req = {.conn = c, .type = h.type & ~VDIFS_REPLY_BIT, .req_id = h.req_id};
			if (rc == -EPROTO)
				rpc_reject(&req, rc, "bad frame magic 0x%08x", h.magic);
			else if (rc == -EPROTONOSUPPORT)
				rpc_reject(&req, rc, "protocol version %u not supported (this server speaks %u)",
					   h.version, VDIFS_PROTO_VERSION);
			else
				rpc_reject(&req, rc, "frame of %u bytes is over the bound of %u%s", h.len, bound,
					   c->state == CONN_READY ? "" : " before authentication");
			break;
		}
		size_t flen = VDIFS_FRAME_HDR_LEN + (size_t)h.len;
		if (avail < flen)
			break;
		uint8_t *frame = evbuffer_pullup(in, (ssize_t)flen);
		if (!frame) {
			log_error("%s: out of memory for a %zu-byte frame; closing", c->peer, flen);
			conn_close(c);
			break;
		}
		conn_dispatch(c, &h, frame + VDIFS_FRAME_HDR_LEN);
		if (c->bev)
			evbuffer_drain(in, flen);
	}
	if (!c->closed && c->bev && evbuffer_get_length(bufferevent_get_output(c->bev)) > CONN_OUTPUT_HIGH)
		bufferevent_disable(c->bev, EV_READ);
	conn_arm_timeout(c);
	rpc_conn_unref(c);
}

static void conn_event_cb(struct bufferevent *bev, short what, void *arg)
{
	(void)bev;
	struct rpc_conn *c = arg;
	uint32_t ms = c->srv ? c->srv->cfg.idle_timeout_ms : 0;
	if ((what & BEV_EVENT_TIMEOUT) && (what & BEV_EVENT_WRITING))
		log_warn("%s: read none of its replies for %u ms; closing connection", c->peer,
			 c->srv ? write_stall_ms(c->srv) : 0);
	else if ((what & BEV_EVENT_TIMEOUT) && c->state == CONN_READY)
		log_warn("%s: stalled in the middle of a frame for %u ms; closing connection", c->peer, ms);
	else if ((what & BEV_EVENT_TIMEOUT) && c->srv)
		server_log_hostile(c->srv, "%s: handshake not done within %u ms; closing connection", c->peer, ms);
	else if (what & BEV_EVENT_ERROR)
		log_debug("%s: %s", c->peer, evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
	else
		log_debug("%s: disconnected", c->peer);
	if ((what & BEV_EVENT_TIMEOUT) && (what & BEV_EVENT_WRITING))
		conn_abort(c); /* it would not read the rest either */
	else
		conn_close(c);
}

static void format_addr(const struct sockaddr *sa, char *out, size_t len)
{
	char host[INET6_ADDRSTRLEN] = "?";
	uint16_t port = 0;
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *s4 = (const struct sockaddr_in *)sa;
		inet_ntop(AF_INET, &s4->sin_addr, host, sizeof(host));
		port = ntohs(s4->sin_port);
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)sa;
		inet_ntop(AF_INET6, &s6->sin6_addr, host, sizeof(host));
		port = ntohs(s6->sin6_port);
	}
	snprintf(out, len, "%s:%u", host, port);
}

/* Stops accepting for ms (0: until the loop has run what is ready now). */
static void listener_pause(struct rpc_server *s, uint32_t ms)
{
	struct timeval tv = ms_to_tv(ms);
	if (evconnlistener_disable(s->listener) == 0 && event_add(s->resume_ev, &tv) < 0)
		evconnlistener_enable(s->listener);
}

static void listener_resume_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct rpc_server *s = arg;
	evconnlistener_enable(s->listener);
}

static void accept_cb(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int salen, void *arg)
{
	(void)l;
	(void)salen;
	struct rpc_server *s = arg;
	if (++s->accepts >= RPC_ACCEPT_BURST) {
		s->accepts = 0;
		listener_pause(s, 0);
	}
	char peer[64];
	format_addr(sa, peer, sizeof(peer));
	if (s->cfg.max_conns && s->nconns >= s->cfg.max_conns &&
	    !server_drop_oldest_handshake(s, "to make room for a new connection (max_conns)")) {
		server_log_hostile(s, "%s: refused: %u authenticated connections already open (max_conns)", peer,
				   s->nconns);
		evutil_closesocket(fd);
		return;
	}
	struct rpc_conn *c = calloc(1, sizeof(*c));
	if (!c) {
		evutil_closesocket(fd);
		return;
	}
	c->srv = s;
	c->refs = 1;
	c->next = s->conns;
	if (s->conns)
		s->conns->prev = c;
	s->conns = c;
	snprintf(c->peer, sizeof(c->peer), "%s", peer);
	c->bev = bufferevent_socket_new(s->base, fd, BEV_OPT_CLOSE_ON_FREE);
	if (!c->bev) {
		evutil_closesocket(fd);
		conn_free(c);
		return;
	}
	c->counted = true;
	s->nconns++;
	c->accepted_ms = mono_ms();
	hs_append(s, c);
	set_nodelay(fd);
	set_io_sizes(c->bev);
	bufferevent_setcb(c->bev, conn_read_cb, conn_write_cb, conn_event_cb, c);
	bufferevent_enable(c->bev, EV_READ); /* EV_WRITE: see conn_flush() */
	conn_arm_timeout(c);
	log_debug("%s: connected", c->peer);
}

/*
 * accept() failed (libevent already retries EINTR, EAGAIN, ECONNABORTED).
 * Out of file descriptors (EMFILE, ENFILE) or memory: drop the oldest
 * unauthenticated connection so that the next accept gets its descriptor,
 * or, with none to drop, stop accepting for RPC_ACCEPT_PAUSE_MS, since the
 * listening socket stays readable and the loop would spin on it.  The
 * connections we have are served on.
 */
static void listener_error_cb(struct evconnlistener *l, void *arg)
{
	(void)l;
	struct rpc_server *s = arg;
	int e = EVUTIL_SOCKET_ERROR();
	bool no_fds = e == EMFILE || e == ENFILE || e == ENOBUFS || e == ENOMEM;
	if (no_fds && server_drop_oldest_handshake(s, "to free a file descriptor (accept: out of them)"))
		return;
	server_log_hostile(s, "%s: accept failed: %s; not accepting for %d ms", s->cfg.name,
			   evutil_socket_error_to_string(e), RPC_ACCEPT_PAUSE_MS);
	listener_pause(s, RPC_ACCEPT_PAUSE_MS);
}

struct rpc_server *rpc_server_start(struct event_base *base, const struct rpc_server_config *cfg,
				    char *err, size_t errlen)
{
	struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE};
	struct addrinfo *ai = NULL;
	char port[8];
	snprintf(port, sizeof(port), "%u", cfg->port);
	int gai = getaddrinfo(cfg->host, port, &hints, &ai);
	if (gai != 0) {
		snprintf(err, errlen, "%s: %s", cfg->host, gai_strerror(gai));
		return NULL;
	}
	struct rpc_server *s = calloc(1, sizeof(*s));
	if (!s) {
		freeaddrinfo(ai);
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	s->base = base;
	s->cfg = *cfg;
	if (!s->cfg.max_payload)
		s->cfg.max_payload = VDIFS_DEFAULT_MAX_PAYLOAD;
	s->flush_ev = event_new(base, -1, 0, server_flush_cb, s);
	s->resume_ev = evtimer_new(base, listener_resume_cb, s);
	if (!s->flush_ev || !s->resume_ev) {
		freeaddrinfo(ai);
		if (s->flush_ev)
			event_free(s->flush_ev);
		if (s->resume_ev)
			event_free(s->resume_ev);
		free(s);
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	s->listener = evconnlistener_new_bind(base, accept_cb, s,
					      LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_EXEC,
					      128, ai->ai_addr, (int)ai->ai_addrlen);
	if (!s->listener) {
		int e = errno;
		snprintf(err, errlen, "%s:%u: %s", cfg->host, cfg->port, strerror(e));
		freeaddrinfo(ai);
		event_free(s->flush_ev);
		event_free(s->resume_ev);
		free(s);
		return NULL;
	}
	freeaddrinfo(ai);
	evconnlistener_set_error_cb(s->listener, listener_error_cb);
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	if (getsockname(evconnlistener_get_fd(s->listener), (struct sockaddr *)&ss, &sl) == 0)
		s->port = ntohs(ss.ss_family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port
							: ((struct sockaddr_in6 *)&ss)->sin6_port);
	return s;
}

uint16_t rpc_server_port(const struct rpc_server *s) { return s->port; }

void rpc_server_drop_all(struct rpc_server *s, const char *why)
{
	size_t n = 0;
	for (struct rpc_conn *c = s->conns; c; c = c->next)
		n += !c->closed;
	if (n == 0)
		return;
	struct rpc_conn **v = malloc(n * sizeof(*v));
	if (!v) {
		log_error("%s: out of memory closing every connection (%s)", s->cfg.name, why);
		return;
	}
	size_t k = 0;
	for (struct rpc_conn *c = s->conns; c && k < n; c = c->next)
		if (!c->closed) {
			rpc_conn_ref(c);
			v[k++] = c;
		}
	log_warn("%s: closing %zu connection%s: %s", s->cfg.name, k, k == 1 ? "" : "s", why);
	for (size_t i = 0; i < k; i++) {
		conn_abort(v[i]);
		rpc_conn_unref(v[i]);
	}
	free(v);
}

void rpc_server_free(struct rpc_server *s)
{
	if (!s)
		return;
	evconnlistener_free(s->listener);
	server_flush_cb(-1, 0, s); /* replies already queued still leave */
	/* Close what is still open; a connection a handler still references
	 * lives on, detached, until its last rpc_conn_unref. */
	while (s->conns) {
		struct rpc_conn *c = s->conns;
		rpc_conn_ref(c);
		conn_abort(c);
		conn_unlink(c);
		rpc_conn_unref(c);
	}
	server_flush_cb(-1, 0, s); /* drops refs taken by replies made by on_close */
	event_free(s->resume_ev);
	event_free(s->flush_ev);
	free(s);
}

/* ======================================================================== */
/* client event loop thread                                                 */
/* ======================================================================== */

struct rpc_loop {
	struct event_base *base;
	struct event *stop_ev; /* made active by rpc_loop_stop() */
	pthread_t thread;
};

static void *loop_main(void *arg)
{
	struct rpc_loop *l = arg;
	event_base_loop(l->base, EVLOOP_NO_EXIT_ON_EMPTY);
	return NULL;
}

/* Breaks the loop from inside it.  An event_base_loopbreak() from another
 * thread is lost when it comes before the thread has entered
 * event_base_loop() (which clears the flag on entry): a client freed right
 * after it was made (vdifs-admin with bad arguments) then waited forever in
 * pthread_join.  An active event waits for the loop instead. */
static void loop_stop_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	event_base_loopbreak(arg);
}

struct rpc_loop *rpc_loop_start(void)
{
	rpc_global_init();
	struct rpc_loop *l = calloc(1, sizeof(*l));
	if (!l)
		return NULL;
	l->base = event_base_new();
	if (l->base)
		l->stop_ev = event_new(l->base, -1, 0, loop_stop_cb, l->base);
	if (!l->stop_ev || pthread_create(&l->thread, NULL, loop_main, l) != 0) {
		if (l->stop_ev)
			event_free(l->stop_ev);
		if (l->base)
			event_base_free(l->base);
		free(l);
		return NULL;
	}
	return l;
}

struct event_base *rpc_loop_base(struct rpc_loop *l) { return l->base; }

void rpc_loop_stop(struct rpc_loop *l)
{
	if (!l)
		return;
	event_active(l->stop_ev, EV_TIMEOUT, 0);
	pthread_join(l->thread, NULL);
	event_free(l->stop_ev);
	/* Run what was scheduled last (peer frees), then drop the base. */
	event_base_loop(l->base, EVLOOP_NONBLOCK);
	event_base_free(l->base);
	free(l);
}

/* ======================================================================== */
/* client peers                                                             */
/* ======================================================================== */

#define CALL_BUCKETS 64

enum peer_state { PEER_CONNECTING, PEER_HELLO, PEER_AUTH, PEER_READY, PEER_DEAD };

struct call {
	uint64_t id;
	rpc_reply_fn cb;
	void *arg;
	struct call *next;
};

struct rpc_peer {
	struct event_base *base;
	struct bufferevent *bev;
	pthread_mutex_t mu; /* guards state, calls, queued, next_id, error */
	enum peer_state state;
	struct evbuffer *queued; /* frames issued before the handshake finished */
	struct call *calls[CALL_BUCKETS];
	uint64_t next_id;
	int dead_errno;
	char error[256];
	struct rpc_peer_config cfg;
	char host[256];
	char name[64];
	struct rpc_auth auth;
	struct vdifs_nonce cnonce, snonce;
};

static void peer_send_now(struct rpc_peer *p);

static void calls_insert(struct rpc_peer *p, struct call *c)
{
	struct call **b = &p->calls[c->id % CALL_BUCKETS];
	c->next = *b;
	*b = c;
}

static struct call *calls_remove(struct rpc_peer *p, uint64_t id)
{
	for (struct call **pp = &p->calls[id % CALL_BUCKETS]; *pp; pp = &(*pp)->next) {
		if ((*pp)->id == id) {
			struct call *c = *pp;
			*pp = c->next;
			return c;
		}
	}
	return NULL;
}

/* Marks the peer dead and completes every pending call with err.  Safe from
 * any thread; takes the bufferevent lock only after dropping p->mu. */
static void peer_fail(struct rpc_peer *p, int err, const char *fmt, ...)
{
	pthread_mutex_lock(&p->mu);
	if (p->state == PEER_DEAD) {
		pthread_mutex_unlock(&p->mu);
		return;
	}
	p->state = PEER_DEAD;
	p->dead_errno = err;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(p->error, sizeof(p->error), fmt, ap);
	va_end(ap);
	struct call *list = NULL;
	for (int i = 0; i < CALL_BUCKETS; i++) {
		while (p->calls[i]) {
			struct call *c = p->calls[i];
			p->calls[i] = c->next;
			c->next = list;
			list = c;
		}
	}
	evbuffer_drain(p->queued, evbuffer_get_length(p->queued));
	pthread_mutex_unlock(&p->mu);

	/* Nothing more may be sent: drop queued output (it may reference caller
	 * data that is about to be freed). */
	bufferevent_disable(p->bev, EV_READ | EV_WRITE);
	struct evbuffer *out = bufferevent_get_output(p->bev);
	evbuffer_drain(out, evbuffer_get_length(out));
	log_debug("peer %s:%u: %s", p->host, p->cfg.port, p->error);
	while (list) {
		struct call *c = list;
		list = c->next;
		c->cb(c->arg, err, NULL, 0);
		free(c);
	}
}

bool rpc_peer_dead(struct rpc_peer *p)
{
	pthread_mutex_lock(&p->mu);
	bool dead = p->state == PEER_DEAD;
	pthread_mutex_unlock(&p->mu);
	return dead;
}

const char *rpc_peer_error(struct rpc_peer *p) { return p->error; }

static void peer_send_hello(struct rpc_peer *p)
{
	random_nonce(&p->cnonce);
	struct msg_hello_req m = {.role = (uint8_t)p->cfg.role, .nonce = p->cnonce,
				  .name = {(const uint8_t *)p->name, (uint32_t)strlen(p->name)}};
	struct wbuf b;
	wbuf_init(&b);
	msg_hello_req_put(&b, &m);
	if (write_frame(p->bev, VDIFS_MSG_HELLO, 0, 0, &b, NULL, 0) < 0)
		peer_fail(p, -ENOMEM, "out of memory");
	wbuf_free(&b);
	pthread_mutex_lock(&p->mu);
	if (p->state == PEER_CONNECTING)
		p->state = PEER_HELLO;
	pthread_mutex_unlock(&p->mu);
}

static const char *error_message(const uint8_t *payload, uint32_t len, char *buf, size_t cap)
{
	struct msg_error_rep e;
	if (msg_error_rep_decode(payload, len, &e) < 0 || vbytes_to_cstr(e.message, buf, cap) < 0)
		snprintf(buf, cap, "(no message)");
	return buf;
}

/* One handshake reply; returns false when the peer failed. */
static bool peer_handshake_frame(struct rpc_peer *p, const struct vdifs_frame_hdr *h, const uint8_t *payload)
{
	char msg[256];
	pthread_mutex_lock(&p->mu);
	enum peer_state st = p->state;
	pthread_mutex_unlock(&p->mu);
	if (st == PEER_HELLO && h->type == (VDIFS_MSG_HELLO | VDIFS_REPLY_BIT)) {
		if (h->status < 0) {
			peer_fail(p, -EPROTO, "handshake refused: %s", error_message(payload, h->len, msg, sizeof(msg)));
			return false;
		}
		struct msg_hello_rep r;
		if (msg_hello_rep_decode(payload, h->len, &r) < 0) {
			peer_fail(p, -EPROTO, "malformed HELLO reply");
			return false;
		}
		struct vdifs_proof want;
		rpc_auth_proof(&p->auth, LABEL_SERVER, &p->cnonce, &r.nonce, &want);
		if (CRYPTO_memcmp(want.b, r.proof.b, sizeof(want.b)) != 0) {
			peer_fail(p, -EACCES, "server failed authentication (wrong or missing cluster key)");
			return false;
		}
		p->snonce = r.nonce;
		struct msg_auth_req a;
		rpc_auth_proof(&p->auth, LABEL_CLIENT, &p->snonce, &p->cnonce, &a.proof);
		struct wbuf b;
		wbuf_init(&b);
		msg_auth_req_put(&b, &a);
		write_frame(p->bev, VDIFS_MSG_AUTH, 0, 0, &b, NULL, 0);
		wbuf_free(&b);
		pthread_mutex_lock(&p->mu);
		if (p->state == PEER_HELLO)
			p->state = PEER_AUTH;
		pthread_mutex_unlock(&p->mu);
		return true;
	}
	if (st == PEER_AUTH && h->type == (VDIFS_MSG_AUTH | VDIFS_REPLY_BIT)) {
		if (h->status < 0) {
			peer_fail(p, -EACCES, "authentication refused: %s",
				  error_message(payload, h->len, msg, sizeof(msg)));
			return false;
		}
		struct evbuffer *pending = evbuffer_new();
		pthread_mutex_lock(&p->mu);
		if (p->state == PEER_AUTH) {
			p->state = PEER_READY;
			if (pending)
				evbuffer_add_buffer(pending, p->queued);
		}
		pthread_mutex_unlock(&p->mu);
		bufferevent_set_timeouts(p->bev, NULL, NULL);
		if (pending) {
			bufferevent_write_buffer(p->bev, pending);
			evbuffer_free(pending);
		}
		/* From now on frames are written by their callers (peer_send_now). */
		bufferevent_disable(p->bev, EV_WRITE);
		peer_send_now(p);
		return true;
	}
	peer_fail(p, -EPROTO, "unexpected %s frame during the handshake", proto_msg_name(h->type));
	return false;
}

static void peer_read_cb(struct bufferevent *bev, void *arg)
{
	struct rpc_peer *p = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	for (;;) {
		size_t avail = evbuffer_get_length(in);
		if (avail < VDIFS_FRAME_HDR_LEN)
			return;
		uint8_t hb[VDIFS_FRAME_HDR_LEN];
		evbuffer_copyout(in, hb, sizeof(hb));
		struct vdifs_frame_hdr h;
		int rc = frame_hdr_decode(hb, p->cfg.max_payload, &h);
		if (rc < 0) {
			peer_fail(p, -EPROTO, "protocol error from server (%s)", strerror(-rc));
			return;
		}
		size_t flen = VDIFS_FRAME_HDR_LEN + (size_t)h.len;
		if (avail < flen)
			return;
		uint8_t *frame = evbuffer_pullup(in, (ssize_t)flen);
		if (!frame) {
			peer_fail(p, -ENOMEM, "out of memory for a %zu-byte reply", flen);
			return;
		}
		const uint8_t *payload = frame + VDIFS_FRAME_HDR_LEN;
		if (!(h.type & VDIFS_REPLY_BIT)) {
			peer_fail(p, -EPROTO, "server sent a request frame");
			return;
		}
		if (h.req_id == 0) {
			if (!peer_handshake_frame(p, &h, payload))
				return;
		} else {
			pthread_mutex_lock(&p->mu);
			struct call *c = calls_remove(p, h.req_id);
			pthread_mutex_unlock(&p->mu);
			if (c) {
				c->cb(c->arg, h.status, payload, h.len);
				free(c);
			}
		}
		evbuffer_drain(in, flen);
	}
}

/*
 * Writes what the peer has queued straight to its socket, from the calling
 * thread, instead of waiting for the loop's next write event: a replica gets
 * a forwarded write while the primary is still writing its own copy, and a
 * client thread's request leaves without a hand-off to the loop thread.
 *
 * Once the handshake is done the bufferevent's write event is enabled only
 * while output is left over (the socket was full; the loop then sends the
 * rest and peer_write_cb disables it again).  Leaving it enabled cost every
 * call an epoll_ctl to watch the socket, a wake-up of the loop thread when
 * the call came from another thread, a turn of the loop finding nothing to
 * write, and an epoll_ctl to stop watching.  Under the bufferevent's lock,
 * so "output left => write event enabled" holds whenever the lock is free
 * and no caller is between queuing a frame and calling this.
 */
static void peer_send_now(struct rpc_peer *p)
{
	bufferevent_lock(p->bev);
	if (bev_write_now(p->bev) > 0 && !(bufferevent_get_enabled(p->bev) & EV_WRITE))
		bufferevent_enable(p->bev, EV_WRITE);
	bufferevent_unlock(p->bev);
}

/* The loop sent what peer_send_now() left over (bufferevent lock held). */
static void peer_write_cb(struct bufferevent *bev, void *arg)
{
	struct rpc_peer *p = arg;
	pthread_mutex_lock(&p->mu);
	bool ready = p->state == PEER_READY;
	pthread_mutex_unlock(&p->mu);
	if (ready && evbuffer_get_length(bufferevent_get_output(bev)) == 0)
		bufferevent_disable(bev, EV_WRITE);
}

static void peer_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct rpc_peer *p = arg;
	if (what & BEV_EVENT_CONNECTED) {
		set_nodelay(bufferevent_getfd(bev));
		peer_send_hello(p);
		return;
	}
	if (what & BEV_EVENT_TIMEOUT) {
		peer_fail(p, -ETIMEDOUT, "%s:%u: connection timed out", p->host, p->cfg.port);
		return;
	}
	int e = EVUTIL_SOCKET_ERROR();
	pthread_mutex_lock(&p->mu);
	enum peer_state st = p->state;
	pthread_mutex_unlock(&p->mu);
	if ((what & BEV_EVENT_ERROR) && e)
		peer_fail(p, -(e ? e : ECONNRESET), "%s:%u: %s", p->host, p->cfg.port, strerror(e));
	else if (st == PEER_HELLO || st == PEER_AUTH)
		peer_fail(p, -ECONNRESET, "%s:%u: connection closed during the handshake (wrong cluster key?)",
			  p->host, p->cfg.port);
	else
		peer_fail(p, -ECONNRESET, "%s:%u: connection closed by server", p->host, p->cfg.port);
}

struct rpc_peer *rpc_peer_new(struct event_base *base, const struct rpc_peer_config *cfg)
{
	struct rpc_peer *p = calloc(1, sizeof(*p));
	if (!p)
		return NULL;
	pthread_mutex_init(&p->mu, NULL);
	p->base = base;
	p->cfg = *cfg;
	snprintf(p->host, sizeof(p->host), "%s", cfg->host);
	snprintf(p->name, sizeof(p->name), "%s", cfg->name ? cfg->name : "vdifs");
	p->cfg.host = p->host;
	p->cfg.name = p->name;
	if (cfg->auth)
		p->auth = *cfg->auth;
	if (!p->cfg.max_payload)
		p->cfg.max_payload = VDIFS_DEFAULT_MAX_PAYLOAD;
	p->next_id = 1;
	p->queued = evbuffer_new();
	p->bev = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE | BEV_OPT_THREADSAFE);
	if (!p->queued || !p->bev)
		goto fail;
	bufferevent_setcb(p->bev, peer_read_cb, peer_write_cb, peer_event_cb, p);
	set_io_sizes(p->bev);
	uint32_t cto = cfg->connect_timeout_ms ? cfg->connect_timeout_ms : 5000;
	struct timeval tv = ms_to_tv(cto);
	bufferevent_set_timeouts(p->bev, &tv, &tv);
	bufferevent_enable(p->bev, EV_READ | EV_WRITE);

	struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
	struct addrinfo *ai = NULL;
	char port[8];
	snprintf(port, sizeof(port), "%u", cfg->port);
	int gai = getaddrinfo(p->host, port, &hints, &ai);
	if (gai != 0) {
		peer_fail(p, -EHOSTUNREACH, "%s: %s", p->host, gai_strerror(gai));
		return p;
	}
	if (bufferevent_socket_connect(p->bev, ai->ai_addr, (int)ai->ai_addrlen) < 0) {
		int e = errno ? errno : ECONNREFUSED;
		peer_fail(p, -e, "%s:%u: %s", p->host, cfg->port, strerror(e));
	}
	freeaddrinfo(ai);
	return p;
fail:
	if (p->bev)
		bufferevent_free(p->bev);
	if (p->queued)
		evbuffer_free(p->queued);
	pthread_mutex_destroy(&p->mu);
	free(p);
	return NULL;
}

static void peer_free_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct rpc_peer *p = arg;
	bufferevent_free(p->bev);
	evbuffer_free(p->queued);
	pthread_mutex_destroy(&p->mu);
	free(p);
}

void rpc_peer_free(struct rpc_peer *p)
{
	if (!p)
		return;
	peer_fail(p, -ECANCELED, "closed");
	/* Free on the loop thread, where no callback of this peer can be running. */
	if (event_base_once(p->base, -1, EV_TIMEOUT, peer_free_cb, p, NULL) < 0)
		peer_free_cb(-1, 0, p);
}

int rpc_call_async(struct rpc_peer *p, uint16_t type, const struct wbuf *payload, const void *data,
		   size_t dlen, rpc_reply_fn cb, void *arg)
{
	struct call *c = malloc(sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->cb = cb;
	c->arg = arg;
	pthread_mutex_lock(&p->mu);
	if (p->state == PEER_DEAD) {
		int e = p->dead_errno ? p->dead_errno : -ECONNRESET;
		pthread_mutex_unlock(&p->mu);
		free(c);
		return e;
	}
	c->id = p->next_id++;
	uint64_t id = c->id;
	calls_insert(p, c);
	if (p->state != PEER_READY) {
		/* Before the handshake completes frames wait in order (copied). */
		uint8_t hdr[VDIFS_FRAME_HDR_LEN];
		size_t plen = (payload ? payload->len : 0) + dlen;
		frame_hdr_encode(hdr, type, id, (uint32_t)plen, 0);
		int rc = evbuffer_add(p->queued, hdr, sizeof(hdr));
		if (rc == 0 && payload && payload->len)
			rc = evbuffer_add(p->queued, payload->data, payload->len);
		if (rc == 0 && dlen)
			rc = evbuffer_add(p->queued, data, dlen);
		if (rc < 0) {
			calls_remove(p, id);
			pthread_mutex_unlock(&p->mu);
			free(c);
			return -ENOMEM;
		}
		pthread_mutex_unlock(&p->mu);
		return 0;
	}
	pthread_mutex_unlock(&p->mu);
	if (write_frame(p->bev, type, id, 0, payload, data, dlen) < 0) {
		pthread_mutex_lock(&p->mu);
		struct call *mine = calls_remove(p, id);
		pthread_mutex_unlock(&p->mu);
		if (mine) {
			free(mine);
			return -ENOMEM;
		}
		/* The peer failed meanwhile and already completed the call. */
		return 0;
	}
	peer_send_now(p);
	return 0;
}

struct waiter {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool done;
	struct rpc_result *res;
};

static void waiter_cb(void *arg, int status, const uint8_t *payload, uint32_t len)
{
	struct waiter *w = arg;
	struct rpc_result *res = w->res;
	res->status = status;
	if (payload && status >= 0) {
		res->payload = malloc(len ? len : 1);
		if (res->payload) {
			memcpy(res->payload, payload, len);
			res->len = len;
		} else {
			res->status = -ENOMEM;
		}
	} else if (payload) {
		error_message(payload, len, res->message, sizeof(res->message));
	}
	pthread_mutex_lock(&w->mu);
	w->done = true;
	pthread_cond_signal(&w->cv);
	pthread_mutex_unlock(&w->mu);
}

int rpc_call(struct rpc_peer *p, uint16_t type, const struct wbuf *payload, const void *data, size_t dlen,
	     struct rpc_result *res, uint32_t timeout_ms)
{
	memset(res, 0, sizeof(*res));
	struct waiter w = {.done = false, .res = res};
	pthread_mutex_init(&w.mu, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&w.cv, &ca);
	pthread_condattr_destroy(&ca);

	int rc = rpc_call_async(p, type, payload, data, dlen, waiter_cb, &w);
	if (rc < 0) {
		res->status = rc;
		snprintf(res->message, sizeof(res->message), "%s", p->error[0] ? p->error : strerror(-rc));
		goto out;
	}
	struct timespec deadline;
	clock_gettime(CLOCK_MONOTONIC, &deadline);
	deadline.tv_sec += timeout_ms / 1000;
	deadline.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
	if (deadline.tv_nsec >= 1000000000L) {
		deadline.tv_sec++;
		deadline.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&w.mu);
	while (!w.done) {
		if (!timeout_ms) {
			pthread_cond_wait(&w.cv, &w.mu);
			continue;
		}
		if (pthread_cond_timedwait(&w.cv, &w.mu, &deadline) == ETIMEDOUT && !w.done) {
			/* The server is stuck: drop the connection so every call on it
			 * (ours included) completes, then wait for our callback. */
			pthread_mutex_unlock(&w.mu);
			peer_fail(p, -ETIMEDOUT, "%s:%u: no reply to %s within %u ms", p->host, p->cfg.port,
				  proto_msg_name(type), timeout_ms);
			pthread_mutex_lock(&w.mu);
			timeout_ms = 0;
		}
	}
	pthread_mutex_unlock(&w.mu);
	if (res->status < 0 && !res->message[0])
		snprintf(res->message, sizeof(res->message), "%s",
			 res->payload == NULL && p->error[0] ? p->error : strerror(-res->status));
out:
	pthread_cond_destroy(&w.cv);
	pthread_mutex_destroy(&w.mu);
	return res->status;
}

void rpc_result_free(struct rpc_result *res)
{
	free(res->payload);
	res->payload = NULL;
	res->len = 0;
}

int rpc_parse_hostport(const char *s, char *host, uint16_t *port)
{
	const char *colon = strrchr(s, ':');
	if (!colon || colon == s || (size_t)(colon - s) >= 256)
		return -EINVAL;
	char *end;
	unsigned long v = strtoul(colon + 1, &end, 10);
	if (*end || colon[1] == '\0' || v > 65535)
		return -EINVAL;
	const char *h = s;
	size_t hl = (size_t)(colon - s);
	if (h[0] == '[' && hl >= 2 && h[hl - 1] == ']') {
		h++;
		hl -= 2;
	}
	memcpy(host, h, hl);
	host[hl] = '\0';
	*port = (uint16_t)v;
	return 0;
}
