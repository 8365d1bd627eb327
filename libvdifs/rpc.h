/*
 * rpc: pipelined request/reply over TCP on libevent, for servers and clients.
 *
 * Frames are as in frame.h.  Every connection begins with the handshake
 * (docs/protocol.md): HELLO carries the protocol version (in the header) and a
 * client nonce; the server answers with its nonce and a proof of the cluster
 * key; the client answers AUTH with its own proof.  Until AUTH succeeds the
 * server accepts nothing else; a failed handshake is logged and the connection
 * closed.  A peer with no key ("insecure") uses an empty key, so an insecure
 * peer can talk only to insecure peers.
 *
 * Servers: rpc_server_start() listens on an event_base it is given and calls
 * one handler per request frame on that base's thread.  A handler answers at
 * once with rpc_reply*() or later: it then keeps a struct rpc_request copy and
 * a reference on the connection (rpc_conn_ref/unref).  Replies to a closed
 * connection are dropped.  Replies and refs are made on the server's
 * event_base thread only.  Malformed input is answered with rpc_reject(),
 * which sends an error reply and closes the connection.
 *
 * Clients: an rpc_peer is one connection to one server, usable from any
 * thread.  Requests are pipelined and matched to replies by request id.
 * rpc_call_async() runs its callback on the peer's event_base thread (or, when
 * the peer is freed or a blocking call times out, on the thread doing that);
 * rpc_call() blocks the calling thread (which must not be that thread).  When
 * a connection fails, every pending call completes with a negative errno and
 * the peer is dead: make a new one to reconnect.
 */
#ifndef VDIFS_RPC_H
#define VDIFS_RPC_H

#include "proto.h"
#include "wire.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct event_base;

/* ---- authentication --------------------------------------------------------- */

#define RPC_KEY_MAX 64

struct rpc_auth {
	uint8_t key[RPC_KEY_MAX];
	size_t keylen; /* 0: insecure */
};

/* Loads a key file (hex or raw text, whitespace trimmed, 16..64 bytes after
 * decoding).  Returns 0 or -errno with a message in err. */
int rpc_auth_load_key(struct rpc_auth *a, const char *path, char *err, size_t errlen);
/* Writes a fresh random 32-byte key as hex to path (mode 0600). */
int rpc_auth_generate_key(const char *path, char *err, size_t errlen);
/* proof = HMAC-SHA256(key, label || n1 || n2). */
void rpc_auth_proof(const struct rpc_auth *a, const char *label, const struct vdifs_nonce *n1,
		    const struct vdifs_nonce *n2, struct vdifs_proof *out);

/* Makes libevent thread-safe (evthread_use_pthreads).  Call once before
 * creating any event_base that rpc peers or servers will use from more than
 * one thread; rpc_loop_start() calls it itself.  Idempotent. */
void rpc_global_init(void);

/* ---- servers ---------------------------------------------------------------- */

struct rpc_conn;
struct rpc_server;

struct rpc_request {
	struct rpc_conn *conn;
	uint16_t type;
	uint64_t req_id;
	const uint8_t *payload; /* valid only during the handler call */
	uint32_t len;
};

typedef void (*rpc_handler_fn)(void *arg, const struct rpc_request *req);
typedef void (*rpc_close_fn)(void *arg, struct rpc_conn *conn);

struct rpc_server_config {
	const char *name;        /* for logs: "mds", "ds" */
	const char *host;        /* address to bind */
	uint16_t port;           /* 0: pick one (see rpc_server_port) */
	uint32_t max_payload;    /* frames longer than this are refused (1 KiB before authentication) */
	uint32_t max_conns;      /* open connections; when full, the oldest one still in the
				  * handshake is dropped for a new one, else (all are
				  * authenticated) the new one is refused */
	uint32_t idle_timeout_ms; /* closes a connection silent this long mid-frame, one not
				   * reading its replies this long (at least 5 s), and a
				   * handshake not done this long after the accept (0: never) */
	const struct rpc_auth *auth;
	rpc_handler_fn handler;
	rpc_close_fn on_close;   /* optional: a connection went away */
	void *arg;
};

/* Binds and listens.  NULL on failure with a message in err.
 * rpc_server_free closes every open connection (on_close is called). */
struct rpc_server *rpc_server_start(struct event_base *base, const struct rpc_server_config *cfg,
				    char *err, size_t errlen);
uint16_t rpc_server_port(const struct rpc_server *s);
/* Closes every open connection at once, unsent replies dropped (why is
 * logged).  A data server that stops serving does this, so that requests
 * still on their way (a network partition healing) meet a closed socket
 * instead of being served late. */
void rpc_server_drop_all(struct rpc_server *s, const char *why);
void rpc_server_free(struct rpc_server *s);

/* Raises this process's soft limit on open files to its hard limit and
 * returns the soft limit now in force (UINT64_MAX: none), for a daemon to
 * fit max_conns and its other descriptors under it. */
uint64_t rpc_raise_nofile(void);

void rpc_reply(const struct rpc_request *req, const struct wbuf *payload);
/* Reply whose payload is head followed by len bytes of data (not copied twice). */
void rpc_reply_data(const struct rpc_request *req, const struct wbuf *head, const void *data, size_t len);
/* Error reply with status (-errno) and a message; the connection stays open. */
void rpc_reply_error(const struct rpc_request *req, int status, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Error reply, a log line naming the peer, and the connection closed. */
void rpc_reject(const struct rpc_request *req, int status, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

void rpc_conn_ref(struct rpc_conn *c);
void rpc_conn_unref(struct rpc_conn *c);
enum vdifs_role rpc_conn_role(const struct rpc_conn *c);
const char *rpc_conn_peer(const struct rpc_conn *c); /* "127.0.0.1:40312 (name)" */
void rpc_conn_set_data(struct rpc_conn *c, void *data);
void *rpc_conn_get_data(const struct rpc_conn *c);

/* ---- clients -------------------------------------------------------------- */

/* A thread running an event_base, for clients that call from other threads. */
struct rpc_loop;
struct rpc_loop *rpc_loop_start(void);
struct event_base *rpc_loop_base(struct rpc_loop *l);
void rpc_loop_stop(struct rpc_loop *l);

struct rpc_peer;

struct rpc_peer_config {
	const char *host;
	uint16_t port;
	const struct rpc_auth *auth;
	enum vdifs_role role;
	const char *name;          /* told to the server in HELLO, for its logs */
	uint32_t max_payload;
	uint32_t connect_timeout_ms;
};

/* Starts connecting (asynchronously) on base; calls may be issued at once. */
struct rpc_peer *rpc_peer_new(struct event_base *base, const struct rpc_peer_config *cfg);
/* Fails pending calls with -ECANCELED; the memory is released on the next
 * turn of the peer's event loop (an owner stopping its loop runs it once
 * with EVLOOP_NONBLOCK before event_base_free, as rpc_loop_stop does). */
void rpc_peer_free(struct rpc_peer *p);
bool rpc_peer_dead(struct rpc_peer *p);
/* Why the peer died ("connection refused", "authentication failed ..."). */
const char *rpc_peer_error(struct rpc_peer *p);

/* status: the reply's status, or a negative errno when the transport failed
 * (payload NULL).  payload is valid only during the callback. */
typedef void (*rpc_reply_fn)(void *arg, int status, const uint8_t *payload, uint32_t len);

/* Sends type with payload (and data appended, not copied: it must stay valid
 * until cb runs).  Returns 0, or -errno (then cb is not called). */
int rpc_call_async(struct rpc_peer *p, uint16_t type, const struct wbuf *payload, const void *data,
		   size_t dlen, rpc_reply_fn cb, void *arg);

struct rpc_result {
	int status;        /* 0, a server's -errno, or a transport -errno */
	uint8_t *payload;  /* malloc'ed reply payload (NULL on transport errors) */
	uint32_t len;
	char message[256]; /* the server's error message or the transport error */
};

/* Blocking call with a timeout (0: none).  Returns res->status; the caller
 * frees res with rpc_result_free(). */
int rpc_call(struct rpc_peer *p, uint16_t type, const struct wbuf *payload, const void *data,
	     size_t dlen, struct rpc_result *res, uint32_t timeout_ms);
void rpc_result_free(struct rpc_result *res);

/* Parses "host:port"; 0 or -EINVAL. host must hold 256 bytes. */
int rpc_parse_hostport(const char *s, char *host, uint16_t *port);

#endif
