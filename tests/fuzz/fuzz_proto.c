/*
 * fuzz_proto: feeds every message decoder of libvdifs/proto.h.  The first
 * two input bytes (u16 little-endian, modulo the number of records) select
 * one record of VDIFS_RECORDS, so a record added there is fuzzed with no
 * change here; the rest is:
 *  - decoded whole with msg_<rec>_decode() (what a server does with a
 *    request payload and a client with a reply); when it succeeds, encoding
 *    the result with msg_<rec>_put() must give back exactly those bytes;
 *  - read as a list of records with msg_<rec>_get() (what the readers of
 *    BLOB fields do: replica, base_ref, alloc, dirent, chunk_loc lists); each
 *    record read must re-encode to the bytes it was read from.
 * DS_WRITE's zero-copy encoder (msg_ds_write_req_put_head() then the data)
 * must produce the same bytes as msg_ds_write_req_put().
 */
#include "fuzz_util.h"
#include "proto.h"
#include "wire.h"

#include <stdint.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Most records read from one list input (a BLOB holds at most 4 MiB). */
#define FUZZ_LIST_MAX 4096

static void check_bytes(const char *rec, const char *what, const struct wbuf *b, const uint8_t *p, size_t n)
{
	FUZZ_CHECK(!b->err, "%s: %s: encoder out of memory", rec, what);
	FUZZ_CHECK(b->len == n && (n == 0 || memcmp(b->data, p, n) == 0),
		   "%s: %s: %zu bytes re-encode to %zu different bytes", rec, what, n, b->len);
}

static void check_ds_write_head(const struct msg_ds_write_req *m, const uint8_t *p, size_t n)
{
	struct wbuf b;
	wbuf_init(&b);
	msg_ds_write_req_put_head(&b, m);
	wbuf_put_raw(&b, m->data.p, m->data.len);
	check_bytes("ds_write_req", "put_head + data", &b, p, n);
	wbuf_free(&b);
}

#define FUZZ_ROUNDTRIP(rec)                                                          \
	static void fuzz_##rec(const uint8_t *p, size_t n)                           \
	{                                                                            \
		struct msg_##rec m;                                                  \
		struct wbuf b;                                                       \
		wbuf_init(&b);                                                       \
		if (msg_##rec##_decode(p, n, &m) == 0) {                             \
			msg_##rec##_put(&b, &m);                                     \
			check_bytes(#rec, "decode", &b, p, n);                       \
			if (strcmp(#rec, "ds_write_req") == 0)                     \
				check_ds_write_head((const void *)&m, p, n);         \
		}                                                                    \
		struct wreader r;                                                    \
		wreader_init(&r, p, n);                                              \
		for (int i = 0; i < FUZZ_LIST_MAX && r.left > 0; i++) {              \
			const uint8_t *at = r.p;                                     \
			msg_##rec##_get(&r, &m);                                     \
			if (r.err)                                                   \
				break;                                               \
			wbuf_reset(&b);                                              \
			msg_##rec##_put(&b, &m);                                     \
			check_bytes(#rec, "list item", &b, at, (size_t)(r.p - at)); \
		}                                                                    \
		wbuf_free(&b);                                                       \
	}
VDIFS_RECORDS(FUZZ_ROUNDTRIP)
#undef FUZZ_ROUNDTRIP

static void (*const fuzz_recs[])(const uint8_t *, size_t) = {
#define FUZZ_ENTRY(rec) fuzz_##rec,
	VDIFS_RECORDS(FUZZ_ENTRY)
#undef FUZZ_ENTRY
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 2)
		return 0;
	size_t nrec = sizeof(fuzz_recs) / sizeof(fuzz_recs[0]);
	fuzz_recs[le_get16(data) % nrec](data + 2, size - 2);
	return 0;
}
