/*
 * Codec tests for wire, frame and every record of proto.h: each record is
 * filled with random values, encoded, decoded and re-encoded byte for byte;
 * every strict prefix of its encoding and any trailing byte are refused; each
 * length-bounded field is refused one byte over its bound.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "frame.h"
#include "proto.h"
#include "wire.h"

static uint8_t pool[VDIFS_XATTR_MAX + 16];

static struct vbytes rand_bytes(uint32_t max)
{
	uint32_t n = (uint32_t)rand() % (max < 40 ? max + 1 : 40);
	for (uint32_t i = 0; i < n; i++)
		pool[i] = (uint8_t)rand();
	return (struct vbytes){pool, n};
}

static uint64_t rand64(void) { return (uint64_t)rand() << 40 ^ (uint64_t)rand() << 20 ^ (uint64_t)rand(); }

#define FILL_U8(v) (v) = (uint8_t)rand()
#define FILL_U16(v) (v) = (uint16_t)rand()
#define FILL_U32(v) (v) = (uint32_t)rand64()
#define FILL_U64(v) (v) = rand64()
#define FILL_I64(v) (v) = (int64_t)rand64()
#define FILL_NONCE(v) for (size_t i_ = 0; i_ < sizeof((v).b); i_++) (v).b[i_] = (uint8_t)rand()
#define FILL_PROOF(v) FILL_NONCE(v)
#define FILL_NAME(v) (v) = rand_bytes(VDIFS_NAME_MAX)
#define FILL_PATH(v) (v) = rand_bytes(VDIFS_PATH_MAX)
#define FILL_VALUE(v) (v) = rand_bytes(VDIFS_XATTR_MAX)
#define FILL_BLOB(v) (v) = rand_bytes(1000)
#define FILL_DATA(v) (v) = rand_bytes(1000)
#define FILL_ATTR(v) do { struct vdifs_attr *a_ = &(v); REC_attr(FILL_FIELD_A) } while (0)
#define FILL_FIELD_A(kind, name) FILL_##kind(a_->name);
#define FILL_FIELD(kind, name) FILL_##kind(m.name);

/* Round trip, every truncation, and one trailing byte, for one record. */
#define CHECK_RECORD(rec)                                                    \
	static void check_##rec(void)                                        \
	{                                                                    \
		struct msg_##rec m, d;                                       \
		memset(&m, 0, sizeof(m));                                    \
		REC_##rec(FILL_FIELD);                                       \
		struct wbuf a, b;                                            \
		wbuf_init(&a);                                               \
		wbuf_init(&b);                                               \
		msg_##rec##_put(&a, &m);                                     \
		assert_false(a.err);                                         \
		assert_int_equal(msg_##rec##_decode(a.data, a.len, &d), 0);  \
		msg_##rec##_put(&b, &d);                                     \
		assert_int_equal(a.len, b.len);                              \
		assert_memory_equal(a.data, b.data, a.len);                  \
		for (size_t cut = 0; cut < a.len; cut++)                     \
			assert_int_equal(msg_##rec##_decode(a.data, cut, &d), -EBADMSG); \
		uint8_t *longer = malloc(a.len + 1);                         \
		memcpy(longer, a.data, a.len);                               \
		longer[a.len] = 0;                                           \
		assert_int_equal(msg_##rec##_decode(longer, a.len + 1, &d), -EBADMSG); \
		free(longer);                                                \
		wbuf_free(&a);                                               \
		wbuf_free(&b);                                               \
	}
VDIFS_RECORDS(CHECK_RECORD)

static void test_all_records(void **state)
{
	(void)state;
	for (int round = 0; round < 50; round++) {
#define CALL_CHECK(rec) check_##rec();
		VDIFS_RECORDS(CALL_CHECK)
	}
}

static void test_bounds(void **state)
{
	(void)state;
	struct wbuf b;
	wbuf_init(&b);
	/* A name one byte over NAME_MAX is refused; at the bound it is accepted. */
	static uint8_t big[VDIFS_XATTR_MAX + 1];
	struct msg_lookup_req m = {.vol = 1, .parent = 1, .name = {big, VDIFS_NAME_MAX}}, d;
	msg_lookup_req_put(&b, &m);
	assert_int_equal(msg_lookup_req_decode(b.data, b.len, &d), 0);
	wbuf_reset(&b);
	m.name.len = VDIFS_NAME_MAX + 1;
	msg_lookup_req_put(&b, &m);
	assert_int_equal(msg_lookup_req_decode(b.data, b.len, &d), -EBADMSG);
	/* An xattr value over its bound. */
	wbuf_reset(&b);
	struct msg_xattr_rep x = {.value = {big, VDIFS_XATTR_MAX + 1}}, xd;
	msg_xattr_rep_put(&b, &x);
	assert_int_equal(msg_xattr_rep_decode(b.data, b.len, &xd), -EBADMSG);
	/* A length field claiming more than the frame holds. */
	wbuf_reset(&b);
	wbuf_put_u32(&b, 1);
	wbuf_put_u64(&b, 1);
	wbuf_put_u32(&b, 0xffffffffu);
	assert_int_equal(msg_lookup_req_decode(b.data, b.len, &d), -EBADMSG);
	wbuf_free(&b);
}

static void test_data_head(void **state)
{
	(void)state;
	/* A write encoded head-only plus appended bytes equals a full encoding. */
	uint8_t data[100];
	for (int i = 0; i < 100; i++)
		data[i] = (uint8_t)i;
	struct msg_ds_write_req m = {.chunk_id = 7, .version = 1, .chunk_size = 1 << 20, .offset = 4096,
				     .data = {data, sizeof(data)}}, d;
	struct wbuf full, head;
	wbuf_init(&full);
	wbuf_init(&head);
	msg_ds_write_req_put(&full, &m);
	msg_ds_write_req_put_head(&head, &m);
	wbuf_put_raw(&head, data, sizeof(data));
	assert_int_equal(full.len, head.len);
	assert_memory_equal(full.data, head.data, full.len);
	assert_int_equal(msg_ds_write_req_decode(head.data, head.len, &d), 0);
	assert_int_equal(d.data.len, 100);
	assert_memory_equal(d.data.p, data, 100);
	wbuf_free(&full);
	wbuf_free(&head);
}

static void test_frame_header(void **state)
{
	(void)state;
	uint8_t h[VDIFS_FRAME_HDR_LEN];
	struct vdifs_frame_hdr d;
	frame_hdr_encode(h, VDIFS_MSG_LOOKUP, 0x1122334455667788ull, 1000, -ENOENT);
	assert_int_equal(frame_hdr_decode(h, 4096, &d), 0);
	assert_int_equal(d.type, VDIFS_MSG_LOOKUP);
	assert_true(d.req_id == 0x1122334455667788ull);
	assert_int_equal(d.len, 1000);
	assert_int_equal(d.status, -ENOENT);
	assert_int_equal(frame_hdr_decode(h, 999, &d), -EMSGSIZE);
	h[0] ^= 1;
	assert_int_equal(frame_hdr_decode(h, 4096, &d), -EPROTO);
	h[0] ^= 1;
	h[4] = 9;
	assert_int_equal(frame_hdr_decode(h, 4096, &d), -EPROTONOSUPPORT);
}

static void test_wire_reader(void **state)
{
	(void)state;
	uint8_t buf[3] = {1, 2, 3};
	struct wreader r;
	wreader_init(&r, buf, sizeof(buf));
	assert_int_equal(wreader_u16(&r), 0x0201);
	assert_int_equal(wreader_u32(&r), 0); /* short: sticky error */
	assert_true(r.err);
	assert_int_equal(wreader_u8(&r), 0);
	assert_int_equal(wreader_finish(&r), -EBADMSG);
	assert_string_equal(proto_msg_name(VDIFS_MSG_DS_WRITE | VDIFS_REPLY_BIT), "DS_WRITE");
	assert_string_equal(proto_msg_name(9999), "?");
	char out[4];
	assert_int_equal(vbytes_to_cstr((struct vbytes){(const uint8_t *)"abcd", 4}, out, sizeof(out)), -ENAMETOOLONG);
	assert_int_equal(vbytes_to_cstr((struct vbytes){(const uint8_t *)"abc", 3}, out, sizeof(out)), 0);
	assert_string_equal(out, "abc");
}

int main(void)
{
	srand(12345);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_all_records), cmocka_unit_test(test_bounds),
		cmocka_unit_test(test_data_head),   cmocka_unit_test(test_frame_header),
		cmocka_unit_test(test_wire_reader),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
