/*
 * fuzz_seeds: writes the seed corpora of the fuzz targets into
 * OUTDIR/<target>/ (scripts/fuzz.sh runs it before fuzzing), so that each
 * fuzzer starts from valid input made by the real encoders:
 *   frame      headers of requests and replies;
 *   proto      every record of VDIFS_RECORDS, alone and as a list of three;
 *   config     a settings file and a command line;
 *   chunkfile  chunk files the chunkstore wrote: plain ones, a delta over a
 *              plain base, a delta over that delta (with ZERO extents);
 *   rpc_server request streams after the handshake (each reply kind) and a
 *              stream starting with the handshake.
 * Usage: fuzz_seeds OUTDIR.  Exits non-zero on any failure.
 */
#include "../unit/test_fs_util.h" /* before chunkstore.h: only the tree helpers */

#include "chunkstore.h"
#include "frame.h"
#include "proto.h"
#include "wire.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static const char *outdir;

static void die(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fprintf(stderr, "fuzz_seeds: ");
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	exit(1);
}

static void seed_dir(const char *target)
{
	char path[4096];
	snprintf(path, sizeof(path), "%s/%s", outdir, target);
	if (mkdir(path, 0755) < 0 && errno != EEXIST)
		die("%s: %s", path, strerror(errno));
}

static void seed_write(const char *target, const char *name, const void *p, size_t len)
{
	char path[4096];
	snprintf(path, sizeof(path), "%s/%s/%s", outdir, target, name);
	FILE *f = fopen(path, "w");
	if (!f || fwrite(p, 1, len, f) != len || fclose(f) != 0)
		die("%s: cannot write", path);
}

/* ---- frame ---------------------------------------------------------------- */

static void seeds_frame(void)
{
	const struct { uint16_t type; int32_t status; uint32_t len; } h[] = {
		{VDIFS_MSG_HELLO, 0, 40}, {VDIFS_MSG_DS_WRITE, 0, 70000},
		{VDIFS_MSG_LOOKUP | VDIFS_REPLY_BIT, -2, 12}, {VDIFS_MSG_DS_READ | VDIFS_REPLY_BIT, 0, 4u << 20},
	};
	seed_dir("frame");
	for (size_t i = 0; i < sizeof(h) / sizeof(h[0]); i++) {
		uint8_t b[VDIFS_FRAME_HDR_LEN + 4];
		frame_hdr_encode(b, h[i].type, 1000 + i, h[i].len, h[i].status);
		le_put32(b + VDIFS_FRAME_HDR_LEN, VDIFS_DEFAULT_MAX_PAYLOAD);
		char name[32];
		snprintf(name, sizeof(name), "hdr-%zu", i);
		seed_write("frame", name, b, sizeof(b));
	}
}

/* ---- proto ------------------------------------------------------------------ */

static struct wbuf blob; /* two replica records: the content of every BLOB field */

static void fill_U8(uint8_t *v) { *v = 1; }
static void fill_U16(uint16_t *v) { *v = 9401; }
static void fill_U32(uint32_t *v) { *v = 2; }
static void fill_U64(uint64_t *v) { *v = 0x1122334455667788ull; }
static void fill_I64(int64_t *v) { *v = -5; }
static void fill_NONCE(struct vdifs_nonce *v) { memset(v->b, 0x5a, sizeof(v->b)); }
static void fill_PROOF(struct vdifs_proof *v) { memset(v->b, 0xa5, sizeof(v->b)); }
static void fill_NAME(struct vbytes *v) { *v = (struct vbytes){(const uint8_t *)"name", 4}; }
static void fill_PATH(struct vbytes *v) { *v = (struct vbytes){(const uint8_t *)"/a/target", 9}; }
static void fill_VALUE(struct vbytes *v) { *v = (struct vbytes){(const uint8_t *)"value", 5}; }
static void fill_BLOB(struct vbytes *v) { *v = (struct vbytes){blob.data, (uint32_t)blob.len}; }
static void fill_DATA(struct vbytes *v) { *v = (struct vbytes){(const uint8_t *)"data bytes", 10}; }
#define SEED_FILL(kind, name) fill_##kind(&m->name);
static void fill_ATTR(struct vdifs_attr *m) { REC_attr(SEED_FILL) }

/* Record rec (number idx) alone, then three in a row, behind the selector. */
#define SEED_REC(rec)                                                        \
	static void seed_##rec(uint16_t idx)                                 \
	{                                                                    \
		struct msg_##rec rm, *m = &rm;                               \
		struct wbuf b;                                               \
		char name[64];                                               \
		REC_##rec(SEED_FILL)                                         \
		wbuf_init(&b);                                               \
		wbuf_put_u16(&b, idx);                                       \
		msg_##rec##_put(&b, m);                                      \
		snprintf(name, sizeof(name), "%02u-%s", idx, #rec);          \
		seed_write("proto", name, b.data, b.len);                    \
		msg_##rec##_put(&b, m);                                      \
		msg_##rec##_put(&b, m);                                      \
		snprintf(name, sizeof(name), "%02u-%s-list", idx, #rec);     \
		if (b.err)                                                   \
			die("out of memory");                                \
		seed_write("proto", name, b.data, b.len);                    \
		wbuf_free(&b);                                               \
	}
VDIFS_RECORDS(SEED_REC)
#undef SEED_REC

static void seeds_proto(void)
{
	struct msg_replica rep = {.ds_id = 3, .host = {(const uint8_t *)"127.0.0.1", 9}, .port = 9401};
	wbuf_init(&blob);
	msg_replica_put(&blob, &rep);
	msg_replica_put(&blob, &rep);
	seed_dir("proto");
	uint16_t idx = 0;
#define SEED_CALL(rec) seed_##rec(idx++);
	VDIFS_RECORDS(SEED_CALL)
#undef SEED_CALL
	wbuf_free(&blob);
}

/* ---- config ------------------------------------------------------------------- */

static void seeds_config(void)
{
	static const char file[] = "# a data server\n"
				   "listen = 127.0.0.1:9401\n"
				   "\n"
				   "  data_dir=/var/lib/vdifs/ds  \n"
				   "max_conns = 1024\n"
				   "chunks = 0x40\n"
				   "max_payload = 4MiB\n"
				   "insecure = yes\n";
	static const char args[] = "--listen=0.0.0.0:1\0--max-conns\0" "12\0--insecure\0--max_payload=1G\0--\0rest";
	seed_dir("config");
	seed_write("config", "file", file, sizeof(file) - 1);
	seed_write("config", "args", args, sizeof(args) - 1);
}

/* ---- rpc_server -------------------------------------------------------------- */

static void put_frame(struct wbuf *b, uint16_t type, uint64_t id, const struct wbuf *payload)
{
	uint8_t *h = wbuf_reserve(b, VDIFS_FRAME_HDR_LEN);
	if (h)
		frame_hdr_encode(h, type, id, (uint32_t)payload->len, 0);
	wbuf_put_raw(b, payload->data, payload->len);
}

static void seeds_rpc_server(void)
{
	struct wbuf b, p;
	wbuf_init(&b);
	wbuf_init(&p);
	seed_dir("rpc_server");
	/* After the handshake: one request per reply kind (request id % 4), the
	 * reject last since it closes the connection. */
	wbuf_put_u8(&b, 1);
	msg_lookup_req_put(&p, &(struct msg_lookup_req){.vol = 1, .parent = 1, .name = {(const uint8_t *)"f", 1}});
	put_frame(&b, VDIFS_MSG_LOOKUP, 4, &p);
	put_frame(&b, VDIFS_MSG_DS_READ, 7, &p);
	put_frame(&b, VDIFS_MSG_GETATTR, 5, &p);
	put_frame(&b, VDIFS_MSG_STATFS, 6, &p);
	seed_write("rpc_server", "requests", b.data, b.len);
	/* Regression: an empty payload echoed reserved 0 bytes of an empty wbuf
	 * (NULL + 0 in wbuf_reserve, undefined behaviour). */
	wbuf_reset(&b);
	wbuf_reset(&p);
	wbuf_put_u8(&b, 1);
	put_frame(&b, VDIFS_MSG_STATFS, 8, &p);
	seed_write("rpc_server", "regress-empty-payload", b.data, b.len);
	/* The handshake itself: HELLO, then an AUTH with a wrong proof. */
	wbuf_reset(&b);
	wbuf_reset(&p);
	wbuf_put_u8(&b, 0);
	msg_hello_req_put(&p, &(struct msg_hello_req){.role = VDIFS_ROLE_CLIENT, .name = {(const uint8_t *)"c", 1}});
	put_frame(&b, VDIFS_MSG_HELLO, 1, &p);
	wbuf_reset(&p);
	msg_auth_req_put(&p, &(struct msg_auth_req){{{0}}});
	put_frame(&b, VDIFS_MSG_AUTH, 2, &p);
	if (b.err || p.err)
		die("out of memory");
	seed_write("rpc_server", "handshake", b.data, b.len);
	wbuf_free(&b);
	wbuf_free(&p);
}

/* ---- chunk files --------------------------------------------------------------- */
/* Written near their start: a seed is as long as its file (holes included). */

/* Appends chunk id's file to b, padded to a multiple of 4096 bytes when more
 * files follow (the padding reads as the zeros past the end of the file). */
static void append_chunk(struct wbuf *b, struct chunkstore *cs, uint64_t id, bool pad)
{
	char path[4096];
	if (chunkstore_path(cs, id, path, sizeof(path)) < 0)
		die("chunk %llx: no path", (unsigned long long)id);
	FILE *f = fopen(path, "r");
	if (!f)
		die("%s: %s", path, strerror(errno));
	uint8_t buf[65536];
	size_t n;
	while ((n = fread(buf, 1, sizeof(buf), f)) > 0)
		wbuf_put_raw(b, buf, n);
	fclose(f);
	while (pad && b->len % CHUNKSTORE_HDR_SIZE)
		wbuf_put_u8(b, 0);
	if (b->err)
		die("out of memory");
}

/* The flags byte (fix header and block CRCs) then chunks ids[0..n). */
static void seed_chunks(struct chunkstore *cs, const char *name, const uint64_t *ids, size_t n)
{
	struct wbuf b;
	wbuf_init(&b);
	wbuf_put_u8(&b, 3);
	for (size_t k = 0; k < n; k++)
		append_chunk(&b, cs, ids[k], k + 1 < n);
	seed_write("chunkfile", name, b.data, b.len);
	wbuf_free(&b);
}

static void ok(int rc, const char *what)
{
	if (rc < 0)
		die("%s: %s", what, strerror(-rc));
}

static void seeds_chunkfile(void)
{
	char root[4096], err[256];
	snprintf(root, sizeof(root), "%s/.chunkstore", outdir);
	const char *dirs[] = {root};
	struct chunkstore_config cfg = {.dirs = dirs, .ndirs = 1};
	struct chunkstore *cs;
	test_rm_tree(root);
	if (chunkstore_open(&cfg, &cs, err, sizeof(err)) < 0)
		die("chunkstore_open: %s", err);
	uint8_t data[6000];
	for (size_t i = 0; i < sizeof(data); i++)
		data[i] = (uint8_t)(i * 13 + 5);
	const uint64_t MiB = 1u << 20;
	struct chunkstore_base b1[] = {{0x101, 3}}, b2[] = {{0x202, 1}, {0x101, 3}};
	struct chunkstore_geom plain = {MiB, 0, 0, NULL}, odd = {5000, 0, 0, NULL};
	struct chunkstore_geom d1 = {MiB, 4096, 1, b1}, d2 = {MiB, 8192, 2, b2};

	ok(chunkstore_write(cs, 0x101, 3, &plain, 100, data, 600, NULL), "write plain");
	ok(chunkstore_write(cs, 0x101, 3, &plain, 3000, data, 100, NULL), "write plain");
	ok(chunkstore_write(cs, 0x1ff, 1, &odd, 5000 - 300, data, 300, NULL), "write odd");
	ok(chunkstore_punch(cs, 0x1ff, 1, &odd, 4800, 50, NULL), "punch odd");
	ok(chunkstore_write(cs, 0x202, 1, &d1, 5000, data, 100, NULL), "write delta");
	ok(chunkstore_punch(cs, 0x202, 1, &d1, 3 * 4096, 4096, NULL), "punch delta");
	ok(chunkstore_write(cs, 0x303, 2, &d2, 9000, data, 3000, NULL), "write delta of delta");
	ok(chunkstore_punch(cs, 0x303, 2, &d2, 0, 8192, NULL), "punch delta of delta");

	seed_dir("chunkfile");
	seed_chunks(cs, "plain", (uint64_t[]){0x101}, 1);
	seed_chunks(cs, "plain-odd-size", (uint64_t[]){0x1ff}, 1);
	seed_chunks(cs, "delta", (uint64_t[]){0x202, 0x101}, 2);
	seed_chunks(cs, "delta-of-delta", (uint64_t[]){0x303, 0x202, 0x101}, 3);
	chunkstore_close(cs);
	test_rm_tree(root);
}

int main(int argc, char **argv)
{
	if (argc != 2)
		die("usage: fuzz_seeds OUTDIR");
	outdir = argv[1];
	if (mkdir(outdir, 0755) < 0 && errno != EEXIST)
		die("%s: %s", outdir, strerror(errno));
	seeds_frame();
	seeds_proto();
	seeds_config();
	seeds_chunkfile();
	seeds_rpc_server();
	return 0;
}
