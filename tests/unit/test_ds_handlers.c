/*
 * test_ds_handlers: three data servers (chunkstore + handlers + rpc server)
 * on one event loop thread in this process, driven by rpc clients from the
 * test thread: round trips, forwarding to replicas (order, failures named
 * after the replica, stale replicas, timeouts), bounds and malformed input;
 * delta chunks over the wire (fields checked, forwarded, the stats file);
 * DS_COPY (content, errors, several at once, malformed requests).
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
#include <linux/magic.h>
#include <sys/socket.h>
#include <sys/vfs.h>
#include <netinet/in.h>
#include <unistd.h>

#include <cmocka.h>

#include "chunkstore.h"
#include "handlers.h"
#include "replicate.h"
#include "log.h"
#include "rpc.h"
#include "test_fs_util.h"

#define NDS 3
#define MiB (1024u * 1024u)
#define CHUNK (4 * MiB)
#define FWD_TIMEOUT_MS 500

struct node {
	char dir[128];
	char stats[160];
	struct chunkstore *cs;
	struct handlers *h;
	struct rpc_server *srv;
	uint16_t port;
};

struct env {
	char root[64];
	struct event_base *base;
	pthread_t thread;
	struct node ds[NDS];
	struct rpc_peer *cli[NDS];
	struct rpc_auth auth;
	int blackhole; /* listening socket that never answers */
	uint16_t blackhole_port;
};

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

/* Runs fn on the loop thread and waits for it. */
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

static struct rpc_peer *client(struct env *e, int i)
{
	struct rpc_peer_config pc = {.host = "127.0.0.1", .port = e->ds[i].port, .auth = &e->auth,
				     .role = VDIFS_ROLE_CLIENT, .name = "test"};
	struct rpc_peer *p = rpc_peer_new(e->base, &pc);
	assert_non_null(p);
	return p;
}

static int setup(void **state)
{
	struct env *e = calloc(1, sizeof(*e));
	char err[256];
	rpc_global_init();
	snprintf(e->root, sizeof(e->root), "/tmp/test_ds_h.XXXXXX");
	assert_non_null(mkdtemp(e->root));
	e->base = event_base_new();
	assert_non_null(e->base);
	for (int i = 0; i < NDS; i++) {
		struct node *n = &e->ds[i];
		snprintf(n->dir, sizeof(n->dir), "%s/ds%d", e->root, i);
		const char *dirs[1] = {n->dir};
		struct chunkstore_config scfg = {.dirs = dirs, .ndirs = 1};
		assert_int_equal(chunkstore_open(&scfg, &n->cs, err, sizeof(err)), 0);
		snprintf(n->stats, sizeof(n->stats), "%s/ds.stats", n->dir);
		struct handlers_config hcfg = {.base = e->base, .store = n->cs, .auth = &e->auth,
					       .name = "test-ds", .fwd_timeout_ms = FWD_TIMEOUT_MS,
					       .stats_path = n->stats};
		n->h = handlers_new(&hcfg);
		assert_non_null(n->h);
		struct rpc_server_config rcfg = {.name = "ds", .host = "127.0.0.1", .port = 0,
						 .max_conns = 64, .idle_timeout_ms = 5000, .auth = &e->auth,
						 .handler = handlers_dispatch, .arg = n->h};
		n->srv = rpc_server_start(e->base, &rcfg, err, sizeof(err));
		assert_non_null(n->srv);
		n->port = rpc_server_port(n->srv);
	}
	/* A server that accepts connections and never says a word. */
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t sl = sizeof(sa);
	e->blackhole = socket(AF_INET, SOCK_STREAM, 0);
	assert_int_equal(bind(e->blackhole, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(e->blackhole, 16), 0);
	assert_int_equal(getsockname(e->blackhole, (struct sockaddr *)&sa, &sl), 0);
	e->blackhole_port = ntohs(sa.sin_port);
	assert_int_equal(pthread_create(&e->thread, NULL, loop_main, e), 0);
	for (int i = 0; i < NDS; i++)
		e->cli[i] = client(e, i);
	*state = e;
	return 0;
}

static void free_handlers(struct env *e)
{
	for (int i = 0; i < NDS; i++) {
		handlers_free(e->ds[i].h);
		e->ds[i].h = NULL;
	}
}

static int teardown(void **state)
{
	struct env *e = *state;
	for (int i = 0; i < NDS; i++)
		rpc_peer_free(e->cli[i]);
	run_on_loop(e, free_handlers);
	usleep(100 * 1000); /* the servers see the connections close */
	run_on_loop(e, NULL);
	event_base_loopbreak(e->base);
	pthread_join(e->thread, NULL);
	for (int i = 0; i < 5; i++)
		event_base_loop(e->base, EVLOOP_NONBLOCK);
	for (int i = 0; i < NDS; i++) {
		rpc_server_free(e->ds[i].srv);
		chunkstore_close(e->ds[i].cs);
	}
	event_base_free(e->base);
	close(e->blackhole);
	test_rm_tree(e->root);
	free(e);
	return 0;
}

/* ---- requests ------------------------------------------------------------------------ */

static void put_fwd(struct wbuf *b, struct env *e, const int *to, int n)
{
	for (int i = 0; i < n; i++) {
		uint16_t port = to[i] < 0 ? (uint16_t)-to[i] : e->ds[to[i]].port;
		struct msg_replica r = {.ds_id = (uint32_t)i + 1, .host = {(const uint8_t *)"127.0.0.1", 9},
					.port = port};
		msg_replica_put(b, &r);
	}
}

/* DS_WRITE to primary p forwarding to the nodes in to (a negative entry is
 * that port on 127.0.0.1).  Returns the status; *alloc and msg when given. */
static int ds_write(struct env *e, struct rpc_peer *p, const int *to, int nto, uint64_t id, uint32_t version,
		    uint32_t off, const void *data, uint32_t len, uint64_t *alloc, char *msg)
{
	struct wbuf fwd, head;
	struct rpc_result res;
	wbuf_init(&fwd);
	wbuf_init(&head);
	put_fwd(&fwd, e, to, nto);
	struct msg_ds_write_req m = {.chunk_id = id, .version = version, .chunk_size = CHUNK, .offset = off,
				     .nfwd = (uint32_t)nto, .fwd = {fwd.data, (uint32_t)fwd.len},
				     .data = {NULL, len}};
	msg_ds_write_req_put_head(&head, &m);
	int rc = rpc_call(p, VDIFS_MSG_DS_WRITE, &head, data, len, &res, 10000);
	if (rc == 0 && alloc) {
		struct msg_ds_io_rep rep;
		assert_int_equal(msg_ds_io_rep_decode(res.payload, res.len, &rep), 0);
		*alloc = rep.alloc;
	}
	if (msg)
		snprintf(msg, 256, "%s", res.message);
	rpc_result_free(&res);
	wbuf_free(&fwd);
	wbuf_free(&head);
	return rc;
}

static int ds_read(struct rpc_peer *p, uint64_t id, uint32_t version, uint32_t off, void *out, uint32_t len)
{
	struct wbuf b;
	struct rpc_result res;
	wbuf_init(&b);
	struct msg_ds_read_req m = {.chunk_id = id, .version = version, .offset = off, .length = len};
	msg_ds_read_req_put(&b, &m);
	int rc = rpc_call(p, VDIFS_MSG_DS_READ, &b, NULL, 0, &res, 10000);
	if (rc == 0) {
		struct msg_ds_read_rep rep;
		assert_int_equal(msg_ds_read_rep_decode(res.payload, res.len, &rep), 0);
		assert_int_equal(rep.data.len, len);
		memcpy(out, rep.data.p, len);
	}
	rpc_result_free(&res);
	wbuf_free(&b);
	return rc;
}

static int ds_chunk_call(struct rpc_peer *p, uint16_t type, uint64_t id, struct msg_ds_stat_rep *st)
{
	struct wbuf b;
	struct rpc_result res;
	wbuf_init(&b);
	msg_ds_chunk_req_put(&b, &(struct msg_ds_chunk_req){.chunk_id = id});
	int rc = rpc_call(p, type, &b, NULL, 0, &res, 10000);
	if (rc == 0 && st)
		assert_int_equal(msg_ds_stat_rep_decode(res.payload, res.len, st), 0);
	rpc_result_free(&res);
	wbuf_free(&b);
	return rc;
}

static void fill(uint8_t *p, size_t n, uint32_t seed)
{
	for (size_t i = 0; i < n; i++) {
		seed = seed * 1103515245u + 12345u;
		p[i] = (uint8_t)(seed >> 16);
	}
}

/* Encodes nbase base_ref records (chunk ids ids[i], version 1). */
static void put_bases(struct wbuf *b, const uint64_t *ids, uint32_t n)
{
	for (uint32_t i = 0; i < n; i++)
		msg_base_ref_put(b, &(struct msg_base_ref){.chunk_id = ids[i], .version = 1});
}

/* DS_WRITE of a delta (extent, bases ids[0..nbase) at version 1) to p
 * forwarding to the nodes in to; nbase_field overrides the count sent when
 * >= 0.  Returns the status; the reply in *rep when given. */
static int ds_write_delta(struct env *e, struct rpc_peer *p, const int *to, int nto, uint64_t id, uint32_t extent,
			  const uint64_t *ids, uint32_t nbase, int nbase_field, uint32_t off, const void *data,
			  uint32_t len, struct msg_ds_io_rep *rep, char *msg)
{
	struct wbuf fwd, head, bases;
	struct rpc_result res;
	wbuf_init(&fwd);
	wbuf_init(&head);
	wbuf_init(&bases);
	put_fwd(&fwd, e, to, nto);
	put_bases(&bases, ids, nbase);
	struct msg_ds_write_req m = {.chunk_id = id, .version = 1, .chunk_size = CHUNK, .extent = extent,
				     .nbase = nbase_field >= 0 ? (uint32_t)nbase_field : nbase,
				     .bases = {bases.data, (uint32_t)bases.len}, .offset = off,
				     .nfwd = (uint32_t)nto, .fwd = {fwd.data, (uint32_t)fwd.len}, .data = {NULL, len}};
	msg_ds_write_req_put_head(&head, &m);
	int rc = rpc_call(p, VDIFS_MSG_DS_WRITE, &head, data, len, &res, 10000);
	if (rc == 0 && rep)
		assert_int_equal(msg_ds_io_rep_decode(res.payload, res.len, rep), 0);
	if (msg)
		snprintf(msg, 256, "%s", res.message);
	rpc_result_free(&res);
	wbuf_free(&fwd);
	wbuf_free(&head);
	wbuf_free(&bases);
	return rc;
}

static int ds_read_delta(struct rpc_peer *p, uint64_t id, const uint64_t *ids, uint32_t nbase, uint32_t off, void *out,
			 uint32_t len)
{
	struct wbuf b, bases;
	struct rpc_result res;
	wbuf_init(&b);
	wbuf_init(&bases);
	put_bases(&bases, ids, nbase);
	struct msg_ds_read_req m = {.chunk_id = id, .version = 1, .nbase = nbase,
				    .bases = {bases.data, (uint32_t)bases.len}, .offset = off, .length = len};
	msg_ds_read_req_put(&b, &m);
	int rc = rpc_call(p, VDIFS_MSG_DS_READ, &b, NULL, 0, &res, 10000);
	if (rc == 0) {
		struct msg_ds_read_rep rep;
		assert_int_equal(msg_ds_read_rep_decode(res.payload, res.len, &rep), 0);
		assert_int_equal(rep.data.len, len);
		memcpy(out, rep.data.p, len);
	}
	rpc_result_free(&res);
	wbuf_free(&b);
	wbuf_free(&bases);
	return rc;
}

/* The value of key in a stats file, or -1 when the file or key is missing. */
static long long stats_value(const char *path, const char *key)
{
	char line[256], k[64];
	long long v, found = -1;
	FILE *f = fopen(path, "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "%63s %lld", k, &v) == 2 && strcmp(k, key) == 0)
			found = v;
	fclose(f);
	return found;
}

/* Waits (up to 3 s: the file is rewritten once a second) for key == want. */
static void wait_stats(const char *path, const char *key, long long want)
{
	long long v = -1;
	for (int i = 0; i < 60 && (v = stats_value(path, key)) != want; i++)
		usleep(50 * 1000);
	if (v != want)
		fail_msg("%s: %s is %lld, not %lld", path, key, v, want);
}

/* Sends b, which the server must reject as malformed: EBADMSG (naming
 * what when given) and the connection closed; then reconnects cli[0]. */
static void expect_malformed(struct env *e, uint16_t type, const struct wbuf *b, const char *what)
{
	struct rpc_result res;
	assert_int_equal(rpc_call(e->cli[0], type, b, NULL, 0, &res, 10000), -EBADMSG);
	if (what && !strstr(res.message, what))
		fail_msg("error '%s' does not say '%s'", res.message, what);
	rpc_result_free(&res);
	usleep(50 * 1000);
	assert_true(rpc_peer_dead(e->cli[0]));
	rpc_peer_free(e->cli[0]);
	e->cli[0] = client(e, 0);
}

/* ---- tests ------------------------------------------------------------------------------ */

static void test_write_read_replicated(void **state)
{
	struct env *e = *state;
	uint32_t n = MiB + 777;
	uint8_t *w = malloc(n), *r = malloc(n);
	uint64_t alloc = 0;
	int to[2] = {1, 2};
	fill(w, n, 1);
	assert_int_equal(ds_write(e, e->cli[0], to, 2, 0x1234, 3, 65536 + 100, w, n, &alloc, NULL), 0);
	assert_true(alloc >= n);
	for (int i = 0; i < NDS; i++) {
		memset(r, 0, n);
		assert_int_equal(ds_read(e->cli[i], 0x1234, 3, 65536 + 100, r, n), 0);
		assert_memory_equal(r, w, n);
	}
	struct msg_ds_stat_rep st;
	assert_int_equal(ds_chunk_call(e->cli[2], VDIFS_MSG_DS_STAT, 0x1234, &st), 0);
	assert_int_equal(st.version, 3);
	assert_int_equal(st.chunk_size, CHUNK);
	assert_true(st.alloc >= n);
	/* A hole reads as zeros through the wire too. */
	assert_int_equal(ds_read(e->cli[1], 0x1234, 3, 3 * MiB, r, 4096), 0);
	for (int i = 0; i < 4096; i++)
		assert_int_equal(r[i], 0);
	free(w);
	free(r);
}

struct pipeline {
	pthread_mutex_t m;
	pthread_cond_t cv;
	int pending, failed;
};

static void pipeline_cb(void *arg, int status, const uint8_t *payload, uint32_t len)
{
	(void)payload;
	(void)len;
	struct pipeline *pl = arg;
	pthread_mutex_lock(&pl->m);
	if (status != 0)
		pl->failed++;
	if (--pl->pending == 0)
		pthread_cond_signal(&pl->cv);
	pthread_mutex_unlock(&pl->m);
}

/* Overlapping writes in flight at once land in the same order everywhere. */
static void test_pipelined_order(void **state)
{
	struct env *e = *state;
	enum { NW = 200, LEN = 8192 };
	static uint8_t bufs[NW][LEN];
	struct wbuf heads[NW], fwd;
	struct pipeline pl = {.pending = NW};
	int to[2] = {1, 2};
	pthread_mutex_init(&pl.m, NULL);
	pthread_cond_init(&pl.cv, NULL);
	wbuf_init(&fwd);
	put_fwd(&fwd, e, to, 2);
	for (int i = 0; i < NW; i++) {
		fill(bufs[i], LEN, (uint32_t)i + 100);
		wbuf_init(&heads[i]);
		struct msg_ds_write_req m = {.chunk_id = 77, .version = 1, .chunk_size = CHUNK,
					     .offset = (uint32_t)(i % 7) * 3000, .nfwd = 2,
					     .fwd = {fwd.data, (uint32_t)fwd.len}, .data = {NULL, LEN}};
		msg_ds_write_req_put_head(&heads[i], &m);
	}
	for (int i = 0; i < NW; i++)
		assert_int_equal(rpc_call_async(e->cli[0], VDIFS_MSG_DS_WRITE, &heads[i], bufs[i], LEN,
						pipeline_cb, &pl),
				 0);
	pthread_mutex_lock(&pl.m);
	while (pl.pending > 0)
		pthread_cond_wait(&pl.cv, &pl.m);
	pthread_mutex_unlock(&pl.m);
	assert_int_equal(pl.failed, 0);
	uint8_t r0[30000], r[30000];
	assert_int_equal(ds_read(e->cli[0], 77, 1, 0, r0, sizeof(r0)), 0);
	for (int i = 1; i < NDS; i++) {
		assert_int_equal(ds_read(e->cli[i], 77, 1, 0, r, sizeof(r)), 0);
		assert_memory_equal(r, r0, sizeof(r));
	}
	/* The last write is on top. */
	assert_memory_equal(r0 + ((NW - 1) % 7) * 3000, bufs[NW - 1], LEN);
	for (int i = 0; i < NW; i++)
		wbuf_free(&heads[i]);
	wbuf_free(&fwd);
	pthread_cond_destroy(&pl.cv);
	pthread_mutex_destroy(&pl.m);
}

/* Replies of concurrent DS_READs: each checked against the bytes written. */
struct cold_reads {
	struct pipeline pl;
	const uint8_t *want;
	int wrong;
};
struct cold_read {
	struct cold_reads *all;
	uint32_t off, len;
};

static void cold_read_cb(void *arg, int status, const uint8_t *payload, uint32_t len)
{
	struct cold_read *r = arg;
	struct msg_ds_read_rep rep;
	bool ok = status == 0 && msg_ds_read_rep_decode(payload, len, &rep) == 0 && rep.data.len == r->len &&
		  memcmp(rep.data.p, r->all->want + r->off, r->len) == 0;
	pthread_mutex_lock(&r->all->pl.m);
	r->all->wrong += !ok;
	if (--r->all->pl.pending == 0)
		pthread_cond_signal(&r->all->pl.cv);
	pthread_mutex_unlock(&r->all->pl.m);
}

/* Reads of data not in the page cache are fetched by reader threads, many
 * at once (more than they take at a time), and answered right. */
static void test_cold_reads(void **state)
{
	struct env *e = *state;
	enum { NR = 100, LEN = 40000 };
	uint8_t *w = malloc(CHUNK);
	char path[4096];
	fill(w, CHUNK, 8);
	assert_int_equal(ds_write(e, e->cli[0], NULL, 0, 0x99, 1, 0, w, CHUNK, NULL, NULL), 0);
	assert_int_equal(chunkstore_path(e->ds[0].cs, 0x99, path, sizeof(path)), 0);
	int fd = open(path, O_RDONLY);
	assert_true(fd >= 0);
	assert_int_equal(fdatasync(fd), 0);
	assert_int_equal(posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED), 0);
	close(fd);

	struct cold_reads all = {.pl = {.pending = NR}, .want = w};
	struct cold_read rd[NR];
	struct wbuf b[NR];
	pthread_mutex_init(&all.pl.m, NULL);
	pthread_cond_init(&all.pl.cv, NULL);
	for (int i = 0; i < NR; i++) {
		rd[i] = (struct cold_read){&all, (uint32_t)(((uint64_t)i * 104729u * 613u) % (CHUNK - LEN)), LEN};
		wbuf_init(&b[i]);
		msg_ds_read_req_put(&b[i], &(struct msg_ds_read_req){.chunk_id = 0x99, .version = 1,
								     .offset = rd[i].off, .length = LEN});
	}
	for (int i = 0; i < NR; i++)
		assert_int_equal(rpc_call_async(e->cli[0], VDIFS_MSG_DS_READ, &b[i], NULL, 0, cold_read_cb, &rd[i]), 0);
	pthread_mutex_lock(&all.pl.m);
	while (all.pl.pending > 0)
		pthread_cond_wait(&all.pl.cv, &all.pl.m);
	pthread_mutex_unlock(&all.pl.m);
	assert_int_equal(all.wrong, 0);
	/* Unless this file system keeps every page (tmpfs), some went to disk. */
	struct statfs sf;
	assert_int_equal(statfs(path, &sf), 0);
	long long fetches = -1;
	for (int i = 0; i < 60 && (fetches = stats_value(e->ds[0].stats, "read_fetches")) < 1; i++)
		usleep(50 * 1000);
	assert_true(sf.f_type == TMPFS_MAGIC ? fetches >= 0 : fetches >= 1);
	/* And a whole cold chunk in one read. */
	fd = open(path, O_RDONLY);
	assert_int_equal(posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED), 0);
	close(fd);
	uint8_t *r = malloc(MiB);
	assert_int_equal(ds_read(e->cli[0], 0x99, 1, 3 * MiB, r, MiB), 0);
	assert_memory_equal(r, w + 3 * MiB, MiB);
	for (int i = 0; i < NR; i++)
		wbuf_free(&b[i]);
	pthread_cond_destroy(&all.pl.cv);
	pthread_mutex_destroy(&all.pl.m);
	free(r);
	free(w);
}

static uint16_t dead_port(void)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t sl = sizeof(sa);
	int s = socket(AF_INET, SOCK_STREAM, 0);
	assert_int_equal(bind(s, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(getsockname(s, (struct sockaddr *)&sa, &sl), 0);
	close(s); /* nothing listens there now */
	return ntohs(sa.sin_port);
}

static void test_forward_failure_named(void **state)
{
	struct env *e = *state;
	uint8_t w[5000], r[5000];
	char msg[256], want[64];
	uint16_t port = dead_port();
	int to[2] = {1, -(int)port};
	fill(w, sizeof(w), 2);
	int rc = ds_write(e, e->cli[0], to, 2, 0x55, 1, 0, w, sizeof(w), NULL, msg);
	assert_int_equal(rc, -EIO);
	snprintf(want, sizeof(want), "replica 127.0.0.1:%u", port);
	if (!strstr(msg, want))
		fail_msg("error '%s' does not name %s", msg, want);
	/* The replicas that could take it have it. */
	assert_int_equal(ds_read(e->cli[0], 0x55, 1, 0, r, sizeof(r)), 0);
	assert_memory_equal(r, w, sizeof(r));
	assert_int_equal(ds_read(e->cli[1], 0x55, 1, 0, r, sizeof(r)), 0);
	assert_memory_equal(r, w, sizeof(r));
	/* Again (the dead peer is replaced, and fails the same way). */
	assert_int_equal(ds_write(e, e->cli[0], to, 2, 0x55, 1, 0, w, 10, NULL, msg), -EIO);
	assert_non_null(strstr(msg, want));
	/* A good set of replicas works right after. */
	int good[1] = {2};
	assert_int_equal(ds_write(e, e->cli[0], good, 1, 0x55, 1, 0, w, sizeof(w), NULL, NULL), 0);
}

static void test_forward_stale_replica(void **state)
{
	struct env *e = *state;
	uint8_t w[100];
	char msg[256], want[64];
	fill(w, sizeof(w), 3);
	/* ds1 holds version 2 of the chunk; the primary is told version 1. */
	assert_int_equal(ds_write(e, e->cli[1], NULL, 0, 0x66, 2, 0, w, sizeof(w), NULL, NULL), 0);
	int to[1] = {1};
	assert_int_equal(ds_write(e, e->cli[0], to, 1, 0x66, 1, 0, w, sizeof(w), NULL, msg), -ESTALE);
	snprintf(want, sizeof(want), "replica 127.0.0.1:%u", e->ds[1].port);
	assert_non_null(strstr(msg, want));
	assert_non_null(strstr(msg, "version 1 asked, this replica has 2"));
	/* Locally stale: refused before anything is forwarded. */
	assert_int_equal(ds_write(e, e->cli[1], NULL, 0, 0x66, 1, 0, w, sizeof(w), NULL, msg), -ESTALE);
}

static void test_forward_timeout(void **state)
{
	struct env *e = *state;
	uint8_t w[100];
	char msg[256], want[64];
	int to[2] = {1, -(int)e->blackhole_port};
	fill(w, sizeof(w), 4);
	assert_int_equal(ds_write(e, e->cli[0], to, 2, 0x77, 1, 0, w, sizeof(w), NULL, msg), -ETIMEDOUT);
	snprintf(want, sizeof(want), "replica 127.0.0.1:%u", e->blackhole_port);
	assert_non_null(strstr(msg, want));
	assert_non_null(strstr(msg, "no reply within"));
	int good[1] = {1};
	assert_int_equal(ds_write(e, e->cli[0], good, 1, 0x77, 1, 0, w, sizeof(w), NULL, NULL), 0);
}

static void test_punch_sync_forwarded(void **state)
{
	struct env *e = *state;
	uint32_t n = 4 * 65536;
	uint8_t *w = malloc(n), *r = malloc(n);
	int to[2] = {1, 2};
	fill(w, n, 5);
	assert_int_equal(ds_write(e, e->cli[0], to, 2, 0x88, 1, 0, w, n, NULL, NULL), 0);

	struct wbuf fwd, b;
	struct rpc_result res;
	wbuf_init(&fwd);
	wbuf_init(&b);
	put_fwd(&fwd, e, to, 2);
	struct msg_ds_punch_req pm = {.chunk_id = 0x88, .version = 1, .chunk_size = CHUNK, .offset = 1000,
				      .length = 2 * 65536, .nfwd = 2, .fwd = {fwd.data, (uint32_t)fwd.len}};
	msg_ds_punch_req_put(&b, &pm);
	assert_int_equal(rpc_call(e->cli[0], VDIFS_MSG_DS_PUNCH, &b, NULL, 0, &res, 10000), 0);
	struct msg_ds_io_rep io;
	assert_int_equal(msg_ds_io_rep_decode(res.payload, res.len, &io), 0);
	if (io.alloc >= n)
		fail_msg("alloc %llu after the punch", (unsigned long long)io.alloc);
	rpc_result_free(&res);
	memset(w + 1000, 0, 2 * 65536);
	for (int i = 0; i < NDS; i++) {
		assert_int_equal(ds_read(e->cli[i], 0x88, 1, 0, r, n), 0);
		assert_memory_equal(r, w, n);
	}
	wbuf_reset(&b);
	struct msg_ds_sync_req sm = {.chunk_id = 0x88, .version = 1, .nfwd = 2, .fwd = {fwd.data, (uint32_t)fwd.len}};
	msg_ds_sync_req_put(&b, &sm);
	assert_int_equal(rpc_call(e->cli[0], VDIFS_MSG_DS_SYNC, &b, NULL, 0, &res, 10000), 0);
	rpc_result_free(&res);
	/* A sync that cannot reach a replica names it (the local sync is done). */
	wbuf_reset(&b);
	struct wbuf fwd2;
	wbuf_init(&fwd2);
	uint16_t port = dead_port();
	int to2[2] = {1, -(int)port};
	put_fwd(&fwd2, e, to2, 2);
	struct msg_ds_sync_req sm2 = {.chunk_id = 0x88, .version = 1, .nfwd = 2, .fwd = {fwd2.data, (uint32_t)fwd2.len}};
	msg_ds_sync_req_put(&b, &sm2);
	assert_int_equal(rpc_call(e->cli[0], VDIFS_MSG_DS_SYNC, &b, NULL, 0, &res, 10000), -EIO);
	char want[64];
	snprintf(want, sizeof(want), "replica 127.0.0.1:%u", port);
	assert_non_null(strstr(res.message, want));
	rpc_result_free(&res);
	wbuf_free(&fwd2);
	/* Sync of a chunk nobody has: ENOENT from the primary itself. */
	wbuf_reset(&b);
	sm.chunk_id = 0x89;
	msg_ds_sync_req_put(&b, &sm);
	assert_int_equal(rpc_call(e->cli[0], VDIFS_MSG_DS_SYNC, &b, NULL, 0, &res, 10000), -ENOENT);
	rpc_result_free(&res);
	/* A replica that lost a chunk the primary holds: EIO, naming it. */
	assert_int_equal(ds_write(e, e->cli[0], NULL, 0, 0x8a, 1, 0, w, 100, NULL, NULL), 0);
	wbuf_reset(&b);
	sm.chunk_id = 0x8a;
	msg_ds_sync_req_put(&b, &sm);
	assert_int_equal(rpc_call(e->cli[0], VDIFS_MSG_DS_SYNC, &b, NULL, 0, &res, 10000), -EIO);
	snprintf(want, sizeof(want), "replica 127.0.0.1:%u", e->ds[1].port);
	assert_non_null(strstr(res.message, want));
	rpc_result_free(&res);
	wbuf_free(&b);
	wbuf_free(&fwd);
	free(w);
	free(r);
}

static void test_seek_stat_delete(void **state)
{
	struct env *e = *state;
	uint8_t w[10] = "0123456789", r[10];
	assert_int_equal(ds_write(e, e->cli[0], NULL, 0, 0x99, 1, 5 * 65536 + 3, w, 10, NULL, NULL), 0);
	struct wbuf b;
	struct rpc_result res;
	struct msg_ds_seek_rep sr;
	wbuf_init(&b);
	msg_ds_seek_req_put(&b, &(struct msg_ds_seek_req){.chunk_id = 0x99, .version = 1, .offset = 10,
							   .whence = VDIFS_SEEK_DATA});
	assert_int_equal(rpc_call(e->cli[0], VDIFS_MSG_DS_SEEK, &b, NULL, 0, &res, 10000), 0);
	assert_int_equal(msg_ds_seek_rep_decode(res.payload, res.len, &sr), 0);
	assert_int_equal(sr.found, 1);
	assert_int_equal(sr.offset, 5 * 65536);
	rpc_result_free(&res);
	wbuf_reset(&b);
	msg_ds_seek_req_put(&b, &(struct msg_ds_seek_req){.chunk_id = 0x99, .version = 1, .offset = 6 * 65536,
							   .whence = VDIFS_SEEK_DATA});
	assert_int_equal(rpc_call(e->cli[0], VDIFS_MSG_DS_SEEK, &b, NULL, 0, &res, 10000), 0);
	assert_int_equal(msg_ds_seek_rep_decode(res.payload, res.len, &sr), 0);
	assert_int_equal(sr.found, 0);
	rpc_result_free(&res);
	wbuf_reset(&b);
	msg_ds_seek_req_put(&b, &(struct msg_ds_seek_req){.chunk_id = 0x99, .version = 1, .offset = 0, .whence = 9});
	assert_int_equal(rpc_call(e->cli[0], VDIFS_MSG_DS_SEEK, &b, NULL, 0, &res, 10000), -EINVAL);
	rpc_result_free(&res);
	wbuf_free(&b);

	struct msg_ds_stat_rep st;
	assert_int_equal(ds_chunk_call(e->cli[0], VDIFS_MSG_DS_STAT, 0x99, &st), 0);
	assert_int_equal(st.version, 1);
	assert_int_equal(ds_chunk_call(e->cli[0], VDIFS_MSG_DS_DELETE, 0x99, NULL), 0);
	assert_int_equal(ds_read(e->cli[0], 0x99, 1, 0, r, 10), -ENOENT);
	assert_int_equal(ds_chunk_call(e->cli[0], VDIFS_MSG_DS_STAT, 0x99, &st), -ENOENT);
	assert_int_equal(ds_chunk_call(e->cli[0], VDIFS_MSG_DS_DELETE, 0x99, NULL), -ENOENT);
}

static void test_bounds(void **state)
{
	struct env *e = *state;
	uint8_t w[100], r[100];
	fill(w, sizeof(w), 6);
	assert_int_equal(ds_write(e, e->cli[0], NULL, 0, 0xaa, 1, 0, w, sizeof(w), NULL, NULL), 0);
	/* Over the data bound, past the chunk: errors, the connection stays. */
	assert_int_equal(ds_read(e->cli[0], 0xaa, 1, 0, r, VDIFS_DATA_MAX + 1), -EINVAL);
	assert_int_equal(ds_read(e->cli[0], 0xaa, 1, CHUNK - 50, r, 100), -EINVAL);
	assert_int_equal(ds_write(e, e->cli[0], NULL, 0, 0xaa, 1, CHUNK - 50, w, 100, NULL, NULL), -EINVAL);
	assert_int_equal(ds_read(e->cli[0], 0xaa, 0, 0, r, 10), -ESTALE);
	assert_false(rpc_peer_dead(e->cli[0]));
	assert_int_equal(ds_read(e->cli[0], 0xaa, 1, 0, r, sizeof(r)), 0);
	assert_memory_equal(r, w, sizeof(r));
	/* The largest read allowed works. */
	uint8_t *big = malloc(VDIFS_DATA_MAX);
	assert_int_equal(ds_read(e->cli[0], 0xaa, 1, 0, big, VDIFS_DATA_MAX), 0);
	assert_memory_equal(big, w, sizeof(w));
	free(big);
}

static void test_malformed_and_unknown(void **state)
{
	struct env *e = *state;
	struct wbuf b;
	struct rpc_result res;
	wbuf_init(&b);
	/* A DS_WRITE cut short: rejected, the connection is closed. */
	wbuf_put_u64(&b, 1);
	wbuf_put_u32(&b, 1);
	expect_malformed(e, VDIFS_MSG_DS_WRITE, &b, "malformed DS_WRITE");
	/* fwd records that do not add up. */
	wbuf_reset(&b);
	struct msg_ds_sync_req sm = {.chunk_id = 1, .version = 1, .nfwd = 2, .fwd = {(const uint8_t *)"xx", 2}};
	msg_ds_sync_req_put(&b, &sm);
	expect_malformed(e, VDIFS_MSG_DS_SYNC, &b, NULL);
	/* A metadata request to a data server. */
	wbuf_reset(&b);
	msg_vol_req_put(&b, &(struct msg_vol_req){.vol = 1});
	assert_int_equal(rpc_call(e->cli[0], VDIFS_MSG_STATFS, &b, NULL, 0, &res, 10000), -EOPNOTSUPP);
	rpc_result_free(&res);
	rpc_peer_free(e->cli[0]);
	e->cli[0] = client(e, 0);
	wbuf_free(&b);
	/* Still serving. */
	uint8_t w[3] = "abc", r[3];
	assert_int_equal(ds_write(e, e->cli[0], NULL, 0, 0xbb, 1, 0, w, 3, NULL, NULL), 0);
	assert_int_equal(ds_read(e->cli[0], 0xbb, 1, 0, r, 3), 0);
	assert_memory_equal(r, w, 3);
}

/* A delta written through a primary lands on every replica with its
 * fields; replies carry own and alloc; ds.stats counts what came from the
 * client and what was forwarded. */
static void test_delta_replicated(void **state)
{
	struct env *e = *state;
	uint32_t n = 256 * 1024;
	uint8_t *w = malloc(n), *r = malloc(n), d[50];
	int to[2] = {1, 2};
	uint64_t base[1] = {0x500}, other[1] = {0x999};
	struct msg_ds_io_rep rep;
	fill(w, n, 21);
	fill(d, sizeof(d), 22);
	assert_int_equal(ds_write(e, e->cli[0], to, 2, 0x500, 1, 0, w, n, NULL, NULL), 0);
	assert_int_equal(ds_write_delta(e, e->cli[0], to, 2, 0x501, 4096, base, 1, -1, 100, d, sizeof(d), &rep, NULL), 0);
	assert_true(rep.own >= 4096 && rep.own <= 4 * 4096);
	assert_int_equal(rep.alloc - rep.own, n - 4096); /* the rest of the base's data */
	memcpy(w + 100, d, sizeof(d));
	for (int i = 0; i < NDS; i++) {
		memset(r, 0, n);
		assert_int_equal(ds_read_delta(e->cli[i], 0x501, base, 1, 0, r, n), 0);
		assert_memory_equal(r, w, n);
		/* Without its chain, or with another one: refused. */
		assert_int_equal(ds_read(e->cli[i], 0x501, 1, 0, r, 10), -EINVAL);
		assert_int_equal(ds_read_delta(e->cli[i], 0x501, other, 1, 0, r, 10), -EINVAL);
	}
	/* Not yet written anywhere: reads as its base. */
	assert_int_equal(ds_read_delta(e->cli[2], 0x502, base, 1, 0, r, n), 0);
	assert_memory_equal(r + 200, w + 200, n - 200);
	/* A DS_SEEK through the chain. */
	struct wbuf b, bases;
	struct rpc_result res;
	wbuf_init(&b);
	wbuf_init(&bases);
	put_bases(&bases, base, 1);
	msg_ds_seek_req_put(&b, &(struct msg_ds_seek_req){.chunk_id = 0x502, .version = 1, .nbase = 1,
							  .bases = {bases.data, (uint32_t)bases.len}, .offset = 10,
							  .whence = VDIFS_SEEK_HOLE});
	assert_int_equal(rpc_call(e->cli[0], VDIFS_MSG_DS_SEEK, &b, NULL, 0, &res, 10000), 0);
	struct msg_ds_seek_rep sr;
	assert_int_equal(msg_ds_seek_rep_decode(res.payload, res.len, &sr), 0);
	assert_true(sr.found);
	assert_int_equal(sr.offset, n);
	rpc_result_free(&res);
	wbuf_free(&b);
	wbuf_free(&bases);

	wait_stats(e->ds[0].stats, "write_client_reqs", 2);
	assert_int_equal(stats_value(e->ds[0].stats, "write_client_bytes"), n + sizeof(d));
	assert_int_equal(stats_value(e->ds[0].stats, "write_fwd_reqs"), 0);
	assert_int_equal(stats_value(e->ds[0].stats, "deltas_created"), 1);
	assert_int_equal(stats_value(e->ds[0].stats, "cow_extents"), 1);
	assert_int_equal(stats_value(e->ds[0].stats, "cow_bytes"), 4096);
	for (int i = 1; i < NDS; i++) {
		wait_stats(e->ds[i].stats, "write_fwd_reqs", 2);
		assert_int_equal(stats_value(e->ds[i].stats, "write_fwd_bytes"), n + sizeof(d));
		assert_int_equal(stats_value(e->ds[i].stats, "write_client_reqs"), 0);
		assert_int_equal(stats_value(e->ds[i].stats, "deltas_created"), 1);
		assert_int_equal(stats_value(e->ds[i].stats, "cow_extents"), 1);
	}
	/* ds2 read the delta (all but its own extent inherited) and 0x502. */
	wait_stats(e->ds[2].stats, "chain_read_bytes", (long long)(n - 4096) + n);
	free(w);
	free(r);
}

/* Delta fields that make no sense: EINVAL (the connection stays); bases
 * that do not decode: EBADMSG (the connection is closed). */
static void test_delta_bad_fields(void **state)
{
	struct env *e = *state;
	uint8_t d[10] = "0123456789", r[10];
	uint64_t base[1] = {0x600}, self[1] = {0x601}, many[40];
	char msg[256];
	for (int i = 0; i < 40; i++)
		many[i] = 0x700 + (uint64_t)i;
	assert_int_equal(ds_write(e, e->cli[0], NULL, 0, 0x600, 1, 0, d, 10, NULL, NULL), 0);
	assert_int_equal(ds_write_delta(e, e->cli[0], NULL, 0, 0x601, 3000, base, 1, -1, 0, d, 10, NULL, msg), -EINVAL);
	assert_non_null(strstr(msg, "extent"));
	assert_int_equal(ds_write_delta(e, e->cli[0], NULL, 0, 0x601, 2 * MiB, base, 1, -1, 0, d, 10, NULL, NULL),
			 -EINVAL);
	assert_int_equal(ds_write_delta(e, e->cli[0], NULL, 0, 0x601, 4096, base, 0, -1, 0, d, 10, NULL, NULL), -EINVAL);
	assert_int_equal(ds_write_delta(e, e->cli[0], NULL, 0, 0x601, 0, base, 1, -1, 0, d, 10, NULL, NULL), -EINVAL);
	assert_int_equal(ds_write_delta(e, e->cli[0], NULL, 0, 0x601, 4096, self, 1, -1, 0, d, 10, NULL, NULL), -EINVAL);
	assert_int_equal(ds_read_delta(e->cli[0], 0x601, self, 1, 0, r, 10), -EINVAL);
	/* A delta, then another first base for it. */
	assert_int_equal(ds_write_delta(e, e->cli[0], NULL, 0, 0x601, 4096, base, 1, -1, 0, d, 10, NULL, NULL), 0);
	uint64_t other[1] = {0x602};
	assert_int_equal(ds_write_delta(e, e->cli[0], NULL, 0, 0x601, 4096, other, 1, -1, 0, d, 10, NULL, NULL),
			 -EINVAL);
	assert_false(rpc_peer_dead(e->cli[0]));
	/* nbase says 2, the blob holds 1. */
	assert_int_equal(ds_write_delta(e, e->cli[0], NULL, 0, 0x601, 4096, base, 1, 2, 0, d, 10, NULL, NULL), -EBADMSG);
	rpc_peer_free(e->cli[0]);
	e->cli[0] = client(e, 0);
	/* More bases than a chain can have. */
	assert_int_equal(ds_write_delta(e, e->cli[0], NULL, 0, 0x601, 4096, many, 40, -1, 0, d, 10, NULL, NULL),
			 -EBADMSG);
	rpc_peer_free(e->cli[0]);
	e->cli[0] = client(e, 0);
	assert_int_equal(ds_read_delta(e->cli[0], 0x601, base, 1, 0, r, 10), 0);
	assert_memory_equal(r, d, 10);
}

/* DS_COPY of id from src (extent, bases ids[0..nbase) at version 1;
 * nbase_field overrides the count sent when >= 0) into head.  */
static void put_copy(struct wbuf *head, uint64_t id, uint32_t version, uint64_t chunk_size, uint64_t src,
		     uint32_t extent, const uint64_t *ids, uint32_t nbase, int nbase_field)
{
	struct wbuf bases;
	wbuf_init(&bases);
	put_bases(&bases, ids, nbase);
	struct msg_ds_copy_req m = {.chunk_id = id, .version = version, .chunk_size = chunk_size, .src_id = src,
				    .src_version = 1, .src_extent = extent,
				    .nbase = nbase_field >= 0 ? (uint32_t)nbase_field : nbase,
				    .bases = {bases.data, (uint32_t)bases.len}};
	msg_ds_copy_req_put(head, &m);
	wbuf_free(&bases);
}

static int ds_copy(struct rpc_peer *p, uint64_t id, uint32_t version, uint64_t chunk_size, uint64_t src,
		   uint32_t extent, const uint64_t *ids, uint32_t nbase, int nbase_field, struct msg_ds_io_rep *rep,
		   char *msg)
{
	struct wbuf b;
	struct rpc_result res;
	wbuf_init(&b);
	put_copy(&b, id, version, chunk_size, src, extent, ids, nbase, nbase_field);
	int rc = rpc_call(p, VDIFS_MSG_DS_COPY, &b, NULL, 0, &res, 10000);
	if (rc == 0 && rep)
		assert_int_equal(msg_ds_io_rep_decode(res.payload, res.len, rep), 0);
	if (msg)
		snprintf(msg, 256, "%s", res.message);
	rpc_result_free(&res);
	wbuf_free(&b);
	return rc;
}

/* A delta copied into a plain chunk on the server holding it (and on its
 * replicas, each on its own); errors; several copies in flight at once. */
static void test_copy(void **state)
{
	struct env *e = *state;
	uint32_t n = 256 * 1024;
	uint8_t *w = malloc(n), *r = malloc(CHUNK), *want = malloc(CHUNK), d[50];
	int to[2] = {1, 2};
	uint64_t base[1] = {0x800};
	struct msg_ds_io_rep rep;
	char msg[256];
	fill(w, n, 41);
	fill(d, sizeof(d), 42);
	/* Base: 256 KiB of data; delta: 50 bytes at 1 MiB + 100, its 64 KiB
	 * block 1 punched (ZERO extents hiding the base). */
	assert_int_equal(ds_write(e, e->cli[0], to, 2, 0x800, 1, 0, w, n, NULL, NULL), 0);
	assert_int_equal(ds_write_delta(e, e->cli[0], to, 2, 0x801, 4096, base, 1, -1, MiB + 100, d, sizeof(d), NULL,
					NULL),
			 0);
	struct wbuf b, bases, fwd;
	struct rpc_result res;
	wbuf_init(&b);
	wbuf_init(&bases);
	wbuf_init(&fwd);
	put_bases(&bases, base, 1);
	put_fwd(&fwd, e, to, 2);
	struct msg_ds_punch_req pm = {.chunk_id = 0x801, .version = 1, .chunk_size = CHUNK, .extent = 4096, .nbase = 1,
				      .bases = {bases.data, (uint32_t)bases.len}, .offset = 65536, .length = 65536,
				      .nfwd = 2, .fwd = {fwd.data, (uint32_t)fwd.len}};
	msg_ds_punch_req_put(&b, &pm);
	assert_int_equal(rpc_call(e->cli[0], VDIFS_MSG_DS_PUNCH, &b, NULL, 0, &res, 10000), 0);
	rpc_result_free(&res);
	memset(want, 0, CHUNK);
	memcpy(want, w, n);
	memset(want + 65536, 0, 65536);
	memcpy(want + MiB + 100, d, sizeof(d));
	/* Every server copies its own replica. */
	for (int i = 0; i < NDS; i++) {
		assert_int_equal(ds_copy(e->cli[i], 0x810, 2, CHUNK, 0x801, 4096, base, 1, -1, &rep, msg), 0);
		assert_int_equal(rep.alloc, rep.own);
		assert_true(rep.own >= 3 * 65536 + 4096 && rep.own <= 4 * 65536);
		assert_int_equal(ds_read(e->cli[i], 0x810, 2, 0, r, CHUNK), 0);
		assert_memory_equal(r, want, CHUNK);
		struct msg_ds_stat_rep st;
		assert_int_equal(ds_chunk_call(e->cli[i], VDIFS_MSG_DS_STAT, 0x810, &st), 0);
		assert_int_equal(st.version, 2);
		assert_int_equal(st.chunk_size, CHUNK);
		assert_int_equal(st.alloc, rep.alloc);
	}
	/* A retry: the same answer. */
	struct msg_ds_io_rep rep2;
	assert_int_equal(ds_copy(e->cli[0], 0x810, 2, CHUNK, 0x801, 4096, base, 1, -1, &rep2, NULL), 0);
	assert_int_equal(rep2.own, rep.own);
	/* A delta not written here is its chain: the base. */
	uint64_t chain2[2] = {0x801, 0x800};
	assert_int_equal(ds_copy(e->cli[1], 0x811, 1, CHUNK, 0x802, 4096, chain2, 2, -1, NULL, NULL), 0);
	assert_int_equal(ds_read(e->cli[1], 0x811, 1, 0, r, CHUNK), 0);
	assert_memory_equal(r, want, CHUNK);
	/* Errors: a plain source not here, stale versions, a chunk size not the
	 * source's, a copy into the source's chain; the connection stays. */
	assert_int_equal(ds_copy(e->cli[0], 0x812, 1, CHUNK, 0x8ff, 0, NULL, 0, -1, NULL, msg), -ENOENT);
	assert_non_null(strstr(msg, "00000000000008ff"));
	assert_int_equal(ds_copy(e->cli[0], 0x810, 1, CHUNK, 0x801, 4096, base, 1, -1, NULL, msg), -ESTALE);
	assert_non_null(strstr(msg, "version 1 asked, this replica has 2"));
	assert_int_equal(ds_copy(e->cli[0], 0x812, 1, CHUNK, 0x800, 0, NULL, 0, -1, NULL, NULL), 0);
	assert_int_equal(ds_copy(e->cli[0], 0x813, 1, 2 * CHUNK, 0x800, 0, NULL, 0, -1, NULL, NULL), -EINVAL);
	assert_int_equal(ds_copy(e->cli[0], 0x800, 1, CHUNK, 0x801, 4096, base, 1, -1, NULL, msg), -EINVAL);
	assert_non_null(strstr(msg, "chain"));
	assert_int_equal(ds_copy(e->cli[0], 0x813, 1, CHUNK, 0x801, 3000, base, 1, -1, NULL, NULL), -EINVAL);
	assert_false(rpc_peer_dead(e->cli[0]));
	/* Six copies in flight at once (more than the copy threads). */
	enum { NC = 6 };
	struct wbuf heads[NC];
	struct pipeline pl = {.pending = NC};
	pthread_mutex_init(&pl.m, NULL);
	pthread_cond_init(&pl.cv, NULL);
	for (int i = 0; i < NC; i++) {
		wbuf_init(&heads[i]);
		put_copy(&heads[i], 0x820 + (uint64_t)i, 1, CHUNK, 0x801, 4096, base, 1, -1);
	}
	for (int i = 0; i < NC; i++)
		assert_int_equal(rpc_call_async(e->cli[2], VDIFS_MSG_DS_COPY, &heads[i], NULL, 0, pipeline_cb, &pl), 0);
	pthread_mutex_lock(&pl.m);
	while (pl.pending > 0)
		pthread_cond_wait(&pl.cv, &pl.m);
	pthread_mutex_unlock(&pl.m);
	assert_int_equal(pl.failed, 0);
	for (int i = 0; i < NC; i++) {
		assert_int_equal(ds_read(e->cli[2], 0x820 + (uint64_t)i, 1, 0, r, CHUNK), 0);
		assert_memory_equal(r, want, CHUNK);
		wbuf_free(&heads[i]);
	}
	pthread_cond_destroy(&pl.cv);
	pthread_mutex_destroy(&pl.m);
	/* ds.stats: requests (refused ones too) and the data blocks written:
	 * 0, 2, 3 and 16 per copy of the delta; the base's 4 for 0x812. */
	wait_stats(e->ds[0].stats, "copy_reqs", 8);
	assert_int_equal(stats_value(e->ds[0].stats, "copy_bytes"), 3 * 4 * 65536);
	wait_stats(e->ds[2].stats, "copy_reqs", 1 + NC);
	assert_int_equal(stats_value(e->ds[2].stats, "copy_bytes"), (1 + NC) * 4 * 65536);
	assert_int_equal(stats_value(e->ds[2].stats, "chain_read_bytes"), 0); /* reads only */
	wbuf_free(&b);
	wbuf_free(&bases);
	wbuf_free(&fwd);
	free(w);
	free(r);
	free(want);
}

/* Malformed DS_COPY: rejected (EBADMSG, the connection closed), served on. */
static void test_copy_malformed(void **state)
{
	struct env *e = *state;
	struct wbuf b;
	uint64_t base[1] = {0x900}, many[40];
	uint8_t w[10] = "0123456789", r[10];
	wbuf_init(&b);
	/* Cut short. */
	wbuf_put_u64(&b, 0x901);
	wbuf_put_u32(&b, 1);
	wbuf_put_u64(&b, CHUNK);
	expect_malformed(e, VDIFS_MSG_DS_COPY, &b, "malformed DS_COPY");
	/* A byte too many. */
	wbuf_reset(&b);
	put_copy(&b, 0x901, 1, CHUNK, 0x900, 0, NULL, 0, -1);
	wbuf_put_u8(&b, 0);
	expect_malformed(e, VDIFS_MSG_DS_COPY, &b, "malformed DS_COPY");
	/* nbase says 2, the blob holds 1; more bases than a chain can have. */
	wbuf_reset(&b);
	put_copy(&b, 0x901, 1, CHUNK, 0x902, 4096, base, 1, 2);
	expect_malformed(e, VDIFS_MSG_DS_COPY, &b, "malformed DS_COPY");
	for (int i = 0; i < 40; i++)
		many[i] = 0xa00 + (uint64_t)i;
	wbuf_reset(&b);
	put_copy(&b, 0x901, 1, CHUNK, 0x902, 4096, many, 40, -1);
	expect_malformed(e, VDIFS_MSG_DS_COPY, &b, "malformed DS_COPY");
	wbuf_free(&b);
	/* Still serving, copies included; nothing was counted but the copy. */
	assert_int_equal(ds_write(e, e->cli[0], NULL, 0, 0x900, 1, 0, w, 10, NULL, NULL), 0);
	assert_int_equal(ds_copy(e->cli[0], 0x901, 1, CHUNK, 0x900, 0, NULL, 0, -1, NULL, NULL), 0);
	assert_int_equal(ds_read(e->cli[0], 0x901, 1, 0, r, 10), 0);
	assert_memory_equal(r, w, 10);
	wait_stats(e->ds[0].stats, "copy_bytes", 65536);
	assert_int_equal(stats_value(e->ds[0].stats, "copy_reqs"), 1);
}


/* ---- re-replication (replicate.c over the handlers) --------------------------------- */

static struct replicate *repl;
static uint32_t repl_ndone, repl_status;
static struct env *repl_env;
static uint32_t repl_commit_version;
static uint64_t repl_chunk;

static void repl_start(struct env *e)
{
	struct replicate_config rc = {.base = e->base, .store = e->ds[0].cs, .h = e->ds[0].h, .rate_mb_s = 1000};
	repl = replicate_new(&rc);
	assert_non_null(repl);
	char host[] = "127.0.0.1";
	struct msg_repl_task t = {.chunk_id = repl_chunk, .version = 1, .dst = 2,
				  .host = {(const uint8_t *)host, sizeof(host) - 1}, .port = e->ds[1].port};
	replicate_add(repl, &t);
}

static void repl_poll(struct env *e)
{
	(void)e;
	struct wbuf b;
	wbuf_init(&b);
	repl_ndone = replicate_take_done(repl, &b);
	if (repl_ndone) {
		struct msg_repl_done d;
		assert_int_equal(msg_repl_done_decode(b.data, b.len, &d), 0);
		repl_status = d.status;
	}
	wbuf_free(&b);
}

/* Polls until the copy is finished (reported as done), up to 5 s. */
static void repl_wait_done(struct env *e)
{
	for (int t = 0; t < 500; t++) {
		run_on_loop(e, repl_poll);
		if (repl_ndone)
			return;
		usleep(10 * 1000);
	}
}

static void repl_commit(struct env *e)
{
	(void)e;
	replicate_commit(repl, &(struct msg_repl_commit){.chunk_id = repl_chunk, .dst = 2, .version = repl_commit_version});
}

static void repl_stop(struct env *e)
{
	(void)e;
	replicate_free(repl);
	repl = NULL;
}

/* A chunk is copied to another server while it is being written: the copy
 * ends up equal to the source (writes during the copy are mirrored), the
 * copy is durable before it is reported, and both take the new version. */
static void test_replicate(void **state)
{
	struct env *e = *state;
	repl_env = e;
	repl_chunk = 0x900;
	uint8_t *w = malloc(CHUNK), *r0 = malloc(CHUNK), *r1 = malloc(CHUNK);
	fill(w, CHUNK, 91);
	/* Scattered writes: holes stay holes. */
	for (uint32_t off = 0; off < CHUNK; off += 512 * 1024)
		assert_int_equal(ds_write(e, e->cli[0], NULL, 0, repl_chunk, 1, off, w + off, 100000, NULL, NULL), 0);
	run_on_loop(e, repl_start);
	/* Writes while it copies (and until the MDS answers) reach the copy. */
	for (int i = 0; i < 40; i++) {
		uint32_t off = (uint32_t)(i * 97 * 1024) % (CHUNK - 8192);
		assert_int_equal(ds_write(e, e->cli[0], NULL, 0, repl_chunk, 1, off, w + CHUNK - 8192, 8192, NULL, NULL), 0);
	}
	repl_wait_done(e);
	assert_int_equal(repl_ndone, 1);
	assert_int_equal(repl_status, 0);
	assert_int_equal(ds_write(e, e->cli[0], NULL, 0, repl_chunk, 1, 4096, w, 50000, NULL, NULL), 0);
	repl_commit_version = 2;
	run_on_loop(e, repl_commit);
	/* Both hold version 2 and the same bytes; version 1 is stale now. */
	assert_int_equal(ds_read(e->cli[0], repl_chunk, 2, 0, r0, CHUNK), 0);
	int rc = -1;
	for (int t = 0; t < 100 && rc != 0; t++) {
		rc = ds_read(e->cli[1], repl_chunk, 1, 0, r1, 10) == -ESTALE ? 0 : -1;
		if (rc)
			usleep(10 * 1000);
	}
	assert_int_equal(rc, 0);
	assert_int_equal(ds_read(e->cli[1], repl_chunk, 2, 0, r1, CHUNK), 0);
	assert_memory_equal(r0, r1, CHUNK);
	/* After the answer, writes are no longer mirrored. */
	run_on_loop(e, repl_poll);
	assert_int_equal(repl_ndone, 0);
	/* A refused copy is deleted on the destination. */
	repl_chunk = 0x901;
	assert_int_equal(ds_write(e, e->cli[0], NULL, 0, repl_chunk, 1, 0, w, 1000, NULL, NULL), 0);
	run_on_loop(e, repl_stop);
	run_on_loop(e, repl_start);
	repl_wait_done(e);
	assert_int_equal(repl_ndone, 1);
	repl_commit_version = 0;
	run_on_loop(e, repl_commit);
	rc = -1;
	for (int t = 0; t < 100 && rc != 0; t++) {
		rc = ds_read(e->cli[1], repl_chunk, 1, 0, r1, 10) == -ENOENT ? 0 : -1;
		if (rc)
			usleep(10 * 1000);
	}
	assert_int_equal(rc, 0);
	run_on_loop(e, repl_stop);
	free(w);
	free(r0);
	free(r1);
}

int main(void)
{
	log_init("test_ds_handlers", LOG_ERROR);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_write_read_replicated, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pipelined_order, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cold_reads, setup, teardown),
		cmocka_unit_test_setup_teardown(test_forward_failure_named, setup, teardown),
		cmocka_unit_test_setup_teardown(test_forward_stale_replica, setup, teardown),
		cmocka_unit_test_setup_teardown(test_forward_timeout, setup, teardown),
		cmocka_unit_test_setup_teardown(test_punch_sync_forwarded, setup, teardown),
		cmocka_unit_test_setup_teardown(test_seek_stat_delete, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bounds, setup, teardown),
		cmocka_unit_test_setup_teardown(test_malformed_and_unknown, setup, teardown),
		cmocka_unit_test_setup_teardown(test_delta_replicated, setup, teardown),
		cmocka_unit_test_setup_teardown(test_delta_bad_fields, setup, teardown),
		cmocka_unit_test_setup_teardown(test_copy, setup, teardown),
		cmocka_unit_test_setup_teardown(test_copy_malformed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_replicate, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
