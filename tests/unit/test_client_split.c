/*
 * test_client_split: vdifs_span_split, the chunk-splitting math of every
 * client read, write and punch: fixed cases at chunk boundaries, and random
 * ranges checked against the properties a split must have.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <cmocka.h>

#include "client.h"

#define MiB (1ull << 20)

static void check_span(const struct vdifs_span *s, uint64_t index, uint32_t off, uint32_t len, uint64_t pos)
{
	assert_int_equal(s->index, index);
	assert_int_equal(s->off, off);
	assert_int_equal(s->len, len);
	assert_int_equal(s->pos, pos);
}

static void test_inside_one_chunk(void **state)
{
	(void)state;
	struct vdifs_span s[4];
	assert_int_equal(vdifs_span_split(4096, 8192, 64 * MiB, 0, s, 4), 1);
	check_span(&s[0], 0, 4096, 8192, 0);
	assert_int_equal(vdifs_span_split(64 * MiB + 5, 1, 64 * MiB, 0, s, 4), 1);
	check_span(&s[0], 1, 5, 1, 0);
}

static void test_empty(void **state)
{
	(void)state;
	assert_int_equal(vdifs_span_split(123, 0, 64 * MiB, 0, NULL, 0), 0);
}

static void test_crossing_boundary(void **state)
{
	(void)state;
	struct vdifs_span s[4];
	uint64_t cs = 64 * MiB;
	assert_int_equal(vdifs_span_split(cs - 10, 20, cs, 0, s, 4), 2);
	check_span(&s[0], 0, (uint32_t)(cs - 10), 10, 0);
	check_span(&s[1], 1, 0, 10, 10);
	/* Ends exactly at a boundary: no empty span after it. */
	assert_int_equal(vdifs_span_split(cs - 10, 10, cs, 0, s, 4), 1);
	check_span(&s[0], 0, (uint32_t)(cs - 10), 10, 0);
	/* Starts exactly at a boundary. */
	assert_int_equal(vdifs_span_split(2 * cs, 10, cs, 0, s, 4), 1);
	check_span(&s[0], 2, 0, 10, 0);
}

static void test_whole_chunks(void **state)
{
	(void)state;
	struct vdifs_span s[4];
	uint64_t cs = MiB;
	assert_int_equal(vdifs_span_split(cs, 2 * cs, cs, 0, s, 4), 2);
	check_span(&s[0], 1, 0, (uint32_t)cs, 0);
	check_span(&s[1], 2, 0, (uint32_t)cs, cs);
	/* Partial, whole, partial: what punch classifies. */
	assert_int_equal(vdifs_span_split(cs / 2, 2 * cs, cs, 0, s, 4), 3);
	check_span(&s[0], 0, (uint32_t)(cs / 2), (uint32_t)(cs / 2), 0);
	check_span(&s[1], 1, 0, (uint32_t)cs, cs / 2);
	check_span(&s[2], 2, 0, (uint32_t)(cs / 2), cs + cs / 2);
}

static void test_unit(void **state)
{
	(void)state;
	struct vdifs_span s[8];
	uint64_t cs = 64 * MiB;
	/* 3.5 MiB inside a chunk with 1 MiB pieces. */
	assert_int_equal(vdifs_span_split(0, 3 * MiB + MiB / 2, cs, (uint32_t)MiB, s, 8), 4);
	check_span(&s[3], 0, 3 * MiB, (uint32_t)(MiB / 2), 3 * MiB);
	/* The unit restarts at a chunk boundary. */
	assert_int_equal(vdifs_span_split(cs - MiB / 2, 2 * MiB, cs, (uint32_t)MiB, s, 8), 3);
	check_span(&s[0], 0, (uint32_t)(cs - MiB / 2), (uint32_t)(MiB / 2), 0);
	check_span(&s[1], 1, 0, (uint32_t)MiB, MiB / 2);
	check_span(&s[2], 1, (uint32_t)MiB, (uint32_t)(MiB / 2), MiB / 2 + MiB);
}

static void test_cap_smaller_than_count(void **state)
{
	(void)state;
	struct vdifs_span s[2];
	uint64_t cs = 4096;
	assert_int_equal(vdifs_span_split(0, 10 * cs, cs, 0, s, 2), 10);
	check_span(&s[1], 1, 0, 4096, 4096);
}

static void test_huge_offsets(void **state)
{
	(void)state;
	struct vdifs_span s[2];
	uint64_t cs = 1ull << 30;
	uint64_t off = (1ull << 62) - 100;
	assert_int_equal(vdifs_span_split(off, 200, cs, 0, s, 2), 2);
	check_span(&s[0], off / cs, (uint32_t)(off % cs), 100, 0);
	check_span(&s[1], off / cs + 1, 0, 100, 100);
	/* 4 GiB chunks: offsets inside still fit 32 bits. */
	cs = 1ull << 32;
	assert_int_equal(vdifs_span_split(cs - 1, 2, cs, 0, s, 2), 2);
	check_span(&s[0], 0, UINT32_MAX, 1, 0);
	check_span(&s[1], 1, 0, 1, 1);
}

/* Random ranges: spans tile the range in order, never cross a chunk and
 * never exceed the unit; pieces are as large as allowed. */
static void test_random(void **state)
{
	(void)state;
	srandom(12345);
	for (int iter = 0; iter < 20000; iter++) {
		uint64_t cs = 1ull << (12 + random() % 15);
		uint32_t unit = random() % 3 == 0 ? 0 : (uint32_t)(1u << (9 + random() % 14));
		uint64_t off = ((uint64_t)random() << 20 ^ (uint64_t)random()) % (cs * 8);
		uint64_t len = (uint64_t)random() % (cs * 3 + 1);
		size_t n = vdifs_span_split(off, len, cs, unit, NULL, 0);
		struct vdifs_span *s = calloc(n ? n : 1, sizeof(*s));
		assert_non_null(s);
		assert_int_equal(vdifs_span_split(off, len, cs, unit, s, n), n);
		uint64_t pos = 0;
		for (size_t i = 0; i < n; i++) {
			uint64_t at = off + pos;
			assert_int_equal(s[i].pos, pos);
			assert_int_equal(s[i].index, at / cs);
			assert_int_equal(s[i].off, at % cs);
			assert_true(s[i].len > 0);
			assert_true(s[i].off + (uint64_t)s[i].len <= cs);
			if (unit)
				assert_true(s[i].len <= unit);
			/* Maximal: a piece is short only at a boundary, the unit or the end. */
			bool at_end = pos + s[i].len == len;
			bool at_chunk = s[i].off + (uint64_t)s[i].len == cs;
			bool at_unit = unit && s[i].len == unit;
			assert_true(at_end || at_chunk || at_unit);
			pos += s[i].len;
		}
		assert_int_equal(pos, len);
		free(s);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_inside_one_chunk),
		cmocka_unit_test(test_empty),
		cmocka_unit_test(test_crossing_boundary),
		cmocka_unit_test(test_whole_chunks),
		cmocka_unit_test(test_unit),
		cmocka_unit_test(test_cap_smaller_than_count),
		cmocka_unit_test(test_huge_offsets),
		cmocka_unit_test(test_random),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
