/*
 * client_int.h: what the modules of the client API share and nobody else
 * sees.  Not installed, included only by libvdifs/client*.c; everything
 * outside libvdifs uses client.h.
 *
 *   client.c         the client, its connections, the thread's last error,
 *                    MDS call plumbing, volume and cluster calls
 *   client_dsio.c    parallel data-server I/O (batches of DS_* requests)
 *   client_file.c    files and the per-inode state their opens share
 *   client_ns.c      namespace and xattr calls in the mounted volume
 *   client_layout.c  span split, layout cache, seek over a layout
 *   client_fcache.c  cache of shared (frozen) chunk blocks, for every file
 *
 * Locks, in the order they may nest: client lock (MDS peer, data-server
 * table, graveyard, inode table) -> inode lock (layout, dirty state).  An
 * inode's alloc_lock serialises CHUNK_ALLOC and layout fetches of that inode
 * and is never taken while holding the other two.  No lock is held across a
 * network round trip except alloc_lock.
 */
#ifndef VDIFS_CLIENT_INT_H
#define VDIFS_CLIENT_INT_H

#include "client.h"
#include "client_fcache.h"

#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#define CLIENT_ITAB 256 /* inode table buckets (open inodes) */

/* A data server address with its connection pool.  Entries live as long as
 * the client, so chunks point at them without references. */
struct vdifs_ds {
	struct vdifs_ds *next; /* client list, client lock */
	uint32_t ds_id;
	char host[VDIFS_NAME_MAX + 1];
	uint16_t port;
	struct rpc_peer *peers[VDIFS_DS_CONNS]; /* client lock */
	unsigned rr;                            /* client lock */
	uint64_t suspect_until;                 /* monotonic ms; atomic (client_dsio.c) */
};

struct grave; /* a dead rpc_peer kept until the client is freed (client.c) */
struct inode; /* state of one open inode (client_file.c) */
struct client_seq; /* a tagged MDS call in flight (client.c) */

struct vdifs_client {
	struct rpc_loop *loop;
	struct event_base *base;
	struct rpc_auth auth;
	enum vdifs_role role;
	char name[64];
	char mds_host[256];
	uint16_t mds_port;
	uint32_t timeout_ms;
	uint32_t io_timeout_ms; /* how long a write keeps retrying while replicas fail */
	uint32_t layout_ttl_ms;
	uint32_t vol;          /* mounted volume (0: none) */
	uint64_t chunk_size;
	pthread_mutex_t lock;
	struct rpc_peer *mds;
	struct vdifs_ds *ds;
	struct grave *graves;
	struct inode *itab[CLIENT_ITAB];
	/* MDS outages (client.c): calls wait up to mds_wait_ms; tagged
	 * mutations carry (session, seq, lowest seq in flight). */
	uint32_t mds_wait_ms;
	uint64_t session;
	uint64_t next_seq;           /* under lock */
	struct client_seq *inflight; /* tagged calls in flight, under lock */
	uint64_t outage_since_ms;    /* 0: the MDS answers; under lock */
	bool outage_gave_up;         /* a call failed in this outage (logged) */
	struct fcache *fcache;       /* shared chunk blocks; NULL: none (client_fcache.h) */
};

static inline uint64_t client_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* A view of the NUL-terminated s (not copied). */
static inline struct vbytes client_vb(const char *s)
{
	struct vbytes v = { (const uint8_t *)s, (uint32_t)strlen(s) };
	return v;
}

/* ---- client.c: errors -------------------------------------------------------- */

/* Sets the calling thread's vdifs_last_error() (not a transport error). */
__attribute__((format(printf, 1, 2))) void client_seterr(const char *fmt, ...);
/* Writes "HOST:PORT: " to prefix (cap bytes) and returns why without that
 * prefix if it starts with it (a server's or rpc's message may carry it). */
const char *client_peer_prefix(char *prefix, size_t cap, const char *host, uint16_t port,
			       const char *why);
/* 0, or -ENAMETOOLONG with the error set when name is over VDIFS_NAME_MAX. */
int client_check_name(const char *name);

/* ---- client.c: connections ---------------------------------------------------- */

/* The data server at host:port, created on first sight (its ds_id updated);
 * NULL on ENOMEM or a host name too long. */
struct vdifs_ds *client_ds_intern(struct vdifs_client *c, uint32_t ds_id, struct vbytes host,
				  uint16_t port);
/* A live connection to d, round robin over its pool (NULL on ENOMEM).  The
 * peer stays valid as long as the client. */
struct rpc_peer *client_ds_peer(struct vdifs_client *c, struct vdifs_ds *d);

/* ---- client.c: MDS calls ------------------------------------------------------ */

/* Sends one request to the MDS and waits for its reply.  A connection found
 * dead is replaced and the call sent once more.  Returns 0 or -errno with
 * vdifs_last_error() set; res must be freed by the caller in every case. */
int client_mds_call(struct vdifs_client *c, uint16_t type, const struct wbuf *req,
		    struct rpc_result *res);
/* Sets the error for a malformed reply to type; returns -EIO. */
int client_bad_reply(uint16_t type);
/* A call whose reply is an attr_rep (out may be NULL; an empty reply is
 * accepted only when out is NULL). */
int client_call_attr(struct vdifs_client *c, uint16_t type, const struct wbuf *req,
		     struct vdifs_attr *out);
/* A call whose reply carries nothing we need. */
int client_call_void(struct vdifs_client *c, uint16_t type, const struct wbuf *req);

/* ---- client_file.c ------------------------------------------------------------ */

/* Puts this client's dirty size, mtime and blocks of a->ino over a. */
void client_overlay(struct vdifs_client *c, struct vdifs_attr *a);
/* Frees the state of inodes still open (vdifs_client_free; no other thread
 * may use the client any more). */
void client_inodes_free(struct vdifs_client *c);

/* ---- client_dsio.c ------------------------------------------------------------ */

/* Requests in flight from one calling thread; it waits for all of them. */
struct dsio_batch {
	pthread_mutex_t m;
	pthread_cond_t cv; /* on CLOCK_MONOTONIC */
	int pending;
};

/* One DS_* request to one chunk, and its answer. */
struct dsio_op {
	struct dsio_batch *b;
	uint16_t type;
	int status;
	struct rpc_peer *peer;
	struct vdifs_chunk ch;  /* copy of the chunk the op goes to */
	struct vdifs_span sp;
	struct wbuf head;
	uint8_t *dst;           /* DS_READ: where the bytes go (sp.len of them) */
	uint64_t alloc;         /* DS_WRITE/DS_PUNCH reply */
	uint64_t own;
	bool has_alloc;
	uint8_t found;          /* DS_SEEK reply */
	uint32_t seek_off;
	bool skip;              /* nothing to send (a hole) */
	bool shared;            /* DS_READ through the shared block cache (client_read_shared) */
	bool done;              /* answered (under b->m) */
	unsigned r;             /* replica the op went to */
	char msg[128];          /* server's error message */
};

/* Decodes one chunk_loc into a chunk with interned replica addresses.
 * 0, -EBADMSG, -ENOMEM. */
int client_chunk_from_loc(struct vdifs_client *c, const struct msg_chunk_loc *m, struct vdifs_chunk *out);

void dsio_batch_init(struct dsio_batch *b);
void dsio_batch_destroy(struct dsio_batch *b);
/* Sends op (its head already encoded) to replica r of its chunk.  data is
 * sent by reference and must stay valid until the op is answered.  Failures
 * to send complete the op at once. */
void dsio_issue(struct vdifs_client *c, struct dsio_batch *b, struct dsio_op *op, unsigned r,
		const void *data, size_t dlen);
/* Waits until every op of the batch (ops[0..n)) is answered. */
void dsio_wait(struct vdifs_client *c, struct dsio_batch *b, struct dsio_op *ops, size_t n);
/* Sends one op and waits for it; returns its status. */
int dsio_run1(struct vdifs_client *c, struct dsio_op *op, unsigned r, const void *data,
	      size_t dlen);
/* True when the op failed because its connection broke (worth a retry);
 * the data server is then read from last for a while. */
bool dsio_transport_failed(const struct dsio_op *op);
/* Sets vdifs_last_error() from a failed op. */
void dsio_seterr(const struct dsio_op *op);
/* Replica indexes of ch in the order reads should try them: those not
 * suspect first, each group in layout order (the primary first).  Returns
 * how many were written to order. */
unsigned dsio_read_order(const struct vdifs_chunk *ch, unsigned order[VDIFS_MAX_REPLICAS]);

/* Encode op->head for op->ch and op->sp (the data of a write is sent apart). */
void dsio_encode_write(struct dsio_op *op, uint64_t chunk_size);
void dsio_encode_read(struct dsio_op *op);
void dsio_encode_punch(struct dsio_op *op, uint64_t chunk_size);
void dsio_encode_sync(struct dsio_op *op);
void dsio_encode_seek(struct dsio_op *op, uint32_t off, int whence);
/* DS_COPY into op->ch (a new plain chunk) from src, on the server op goes to. */
void dsio_encode_copy(struct dsio_op *op, uint64_t chunk_size, const struct vdifs_chunk *src);

/* n zeroed ops with their heads ready (NULL on ENOMEM); freed with
 * dsio_ops_free (NULL accepted). */
struct dsio_op *dsio_ops_new(size_t n);
void dsio_ops_free(struct dsio_op *ops, size_t n);

#endif
