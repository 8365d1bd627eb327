/*
 * test_mds_dedup: the durable duplicate-request cache on a real store -- a
 * tagged mutation's record is written in the operation's own batch and
 * survives a reopen, a failed operation records nothing, a retry of another
 * request under the same seq is not taken for a duplicate, acked and the
 * window bound a session's records, the sweep drops old ones, and malformed
 * tags are refused.
 */
#include "test_mds_util.h"

#include "dedup.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define ROOT 1
#define SESSION 0x1234567890abcdefull

/* MKNOD of name under the tag (session, seq, acked), as handlers.c does it:
 * armed around the operation.  Returns the operation's status. */
static int session_mknod(struct tmds *t, uint64_t session, uint32_t vol, const char *name, uint64_t seq,
			 uint64_t acked, struct wbuf *rec)
{
	struct msg_mknod_req q = {.vol = vol, .parent = ROOT, .name = vb(name), .mode = S_IFREG | 0644};
	struct dedup_tag tag = {session, seq, acked};
	struct dedup_arm a;
	struct vdifs_attr attr;
	wbuf_reset(rec);
	msg_mknod_req_put(rec, &q);
	dedup_arm(t->m, &a, &tag, VDIFS_MSG_MKNOD, rec->data, (uint32_t)rec->len);
	int rc = namespace_mknod(t->m, &q, &attr);
	dedup_disarm(t->m);
	return rc;
}

static int tagged_mknod(struct tmds *t, uint32_t vol, const char *name, uint64_t seq, uint64_t acked, struct wbuf *rec)
{
	return session_mknod(t, SESSION, vol, name, seq, acked, rec);
}

static int seen(struct tmds *t, uint64_t seq, uint16_t type, const struct wbuf *rec)
{
	struct dedup_tag tag = {SESSION, seq, 0};
	return dedup_seen(t->m, &tag, type, rec->data, (uint32_t)rec->len);
}

static uint64_t count(struct tmds *t)
{
	uint64_t n;
	assert_int_equal(dedup_count(t->m, SESSION, &n), 0);
	return n;
}

static void test_record_survives_reopen(void **state)
{
	struct tmds *t = *state;
	uint32_t vol = tmds_volume(t, "v", 0, 0);
	struct wbuf rec;
	wbuf_init(&rec);
	assert_int_equal(tagged_mknod(t, vol, "a", 1, 1, &rec), 0);
	tmds_reopen(t);
	assert_int_equal(seen(t, 1, VDIFS_MSG_MKNOD, &rec), 1);
	assert_int_equal(seen(t, 2, VDIFS_MSG_MKNOD, &rec), 0);   /* never sent */
	assert_int_equal(seen(t, 1, VDIFS_MSG_SYMLINK, &rec), 0); /* another type under seq 1 */
	struct wbuf other;
	wbuf_init(&other);
	struct msg_mknod_req q = {.vol = vol, .parent = ROOT, .name = vb("b"), .mode = S_IFREG | 0644};
	msg_mknod_req_put(&other, &q);
	assert_int_equal(seen(t, 1, VDIFS_MSG_MKNOD, &other), 0); /* another payload under seq 1 */
	/* The operation itself is there too (same batch). */
	assert_int_not_equal(tmds_lookup(t, vol, ROOT, "a"), 0);
	wbuf_free(&other);
	wbuf_free(&rec);
}

static void test_failure_and_unarmed_record_nothing(void **state)
{
	struct tmds *t = *state;
	uint32_t vol = tmds_volume(t, "v", 0, 0);
	struct wbuf rec;
	wbuf_init(&rec);
	assert_int_equal(tagged_mknod(t, vol, "a", 1, 1, &rec), 0);
	assert_int_equal(tagged_mknod(t, vol, "a", 2, 1, &rec), -EEXIST);
	assert_int_equal(seen(t, 2, VDIFS_MSG_MKNOD, &rec), 0);
	tmds_mknod(t, vol, ROOT, "plain", S_IFREG | 0644); /* not armed */
	assert_int_equal(count(t), 1);
	wbuf_free(&rec);
}

static void test_acked_and_window_bound_the_session(void **state)
{
	struct tmds *t = *state;
	uint32_t vol = tmds_volume(t, "v", 0, 0);
	struct wbuf rec;
	char name[32];
	wbuf_init(&rec);
	/* Ten calls in flight at once: nothing may be dropped. */
	for (uint64_t s = 1; s <= 10; s++) {
		snprintf(name, sizeof(name), "f%llu", (unsigned long long)s);
		assert_int_equal(tagged_mknod(t, vol, name, s, 1, &rec), 0);
	}
	assert_int_equal(count(t), 10);
	/* All of them answered: the next commit drops them. */
	assert_int_equal(tagged_mknod(t, vol, "g", 11, 11, &rec), 0);
	assert_int_equal(count(t), 1);
	assert_int_equal(seen(t, 11, VDIFS_MSG_MKNOD, &rec), 1);
	/* A client that never advances acked is bounded by the window. */
	assert_int_equal(tagged_mknod(t, vol, "h", 11 + DEDUP_WINDOW, 0, &rec), 0);
	assert_int_equal(count(t), 1);
	/* Other sessions are untouched by this one's acked. */
	assert_int_equal(session_mknod(t, SESSION + 1, vol, "other", 5, 5, &rec), 0);
	assert_int_equal(tagged_mknod(t, vol, "i", 12 + DEDUP_WINDOW, 12 + DEDUP_WINDOW, &rec), 0);
	uint64_t n;
	assert_int_equal(dedup_count(t->m, SESSION + 1, &n), 0);
	assert_int_equal(n, 1);
	assert_int_equal(count(t), 1);
	wbuf_free(&rec);
}

/* More stale records than one commit drops: the next commits go on from
 * where the last stopped (the in-memory floor), also after a reopen has
 * forgotten the floors, and an older acked arriving late drops nothing. */
static void test_drop_resumes_past_the_cap(void **state)
{
	struct tmds *t = *state;
	uint32_t vol = tmds_volume(t, "v", 0, 0);
	struct wbuf rec;
	char name[32];
	wbuf_init(&rec);
	const uint64_t n = DEDUP_DROP_MAX + 50;
	for (uint64_t s = 1; s <= n; s++) {
		snprintf(name, sizeof(name), "f%llu", (unsigned long long)s);
		assert_int_equal(tagged_mknod(t, vol, name, s, 1, &rec), 0);
	}
	assert_int_equal(count(t), n);
	assert_int_equal(tagged_mknod(t, vol, "g", n + 1, n + 1, &rec), 0);
	assert_int_equal(count(t), n + 1 - DEDUP_DROP_MAX);
	assert_int_equal(tagged_mknod(t, vol, "h", n + 2, n + 1, &rec), 0);
	assert_int_equal(count(t), 2);
	tmds_reopen(t);
	assert_int_equal(tagged_mknod(t, vol, "i", n + 3, n + 3, &rec), 0);
	assert_int_equal(count(t), 1);
	assert_int_equal(tagged_mknod(t, vol, "j", n + 4, 1, &rec), 0); /* late, older acked */
	assert_int_equal(count(t), 2);
	wbuf_free(&rec);
}

static void test_sweep(void **state)
{
	struct tmds *t = *state;
	uint32_t vol = tmds_volume(t, "v", 0, 0);
	struct wbuf rec;
	uint64_t dropped = 99;
	wbuf_init(&rec);
	assert_int_equal(tagged_mknod(t, vol, "a", 1, 1, &rec), 0);
	assert_int_equal(dedup_sweep(t->m, DEDUP_TTL_S, &dropped), 0);
	assert_int_equal(dropped, 0); /* fresh */
	assert_int_equal(count(t), 1);
	assert_int_equal(dedup_sweep(t->m, -1, &dropped), 0);
	assert_int_equal(dropped, 1);
	assert_int_equal(count(t), 0);
	wbuf_free(&rec);
}

static void test_split(void **state)
{
	(void)state;
	struct wbuf b;
	struct dedup_tag tag;
	uint32_t reclen;
	wbuf_init(&b);
	wbuf_put_u32(&b, 42); /* a 4-byte record */
	struct msg_seq_tag m = {.session = 9, .seq = 8, .acked = 7};
	msg_seq_tag_put(&b, &m);
	assert_int_equal(dedup_split(b.data, (uint32_t)b.len, &reclen, &tag), 0);
	assert_int_equal(reclen, 4);
	assert_int_equal(tag.session, 9);
	assert_int_equal(tag.seq, 8);
	assert_int_equal(tag.acked, 7);
	assert_int_equal(dedup_split(b.data, VDIFS_SEQ_TAG_LEN - 1, &reclen, &tag), -EBADMSG);
	wbuf_reset(&b);
	m.session = 0;
	msg_seq_tag_put(&b, &m);
	assert_int_equal(dedup_split(b.data, (uint32_t)b.len, &reclen, &tag), -EBADMSG);
	wbuf_free(&b);
	assert_true(proto_msg_exactly_once(VDIFS_MSG_RENAME));
	assert_false(proto_msg_exactly_once(VDIFS_MSG_LOOKUP));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_record_survives_reopen, tmds_setup, tmds_teardown),
		cmocka_unit_test_setup_teardown(test_failure_and_unarmed_record_nothing, tmds_setup, tmds_teardown),
		cmocka_unit_test_setup_teardown(test_acked_and_window_bound_the_session, tmds_setup, tmds_teardown),
		cmocka_unit_test_setup_teardown(test_drop_resumes_past_the_cap, tmds_setup, tmds_teardown),
		cmocka_unit_test_setup_teardown(test_sweep, tmds_setup, tmds_teardown),
		cmocka_unit_test(test_split),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
