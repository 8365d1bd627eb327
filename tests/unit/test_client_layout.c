/*
 * test_client_layout: the client's chunk layout cache (struct vdifs_layout)
 * against a naive model (an array indexed by chunk index) under random
 * put / remove / replace operations, plus the rules a refresh must keep:
 * client state survives only for the same chunk id and version.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "client.h"

#define NIDX 48

struct model {
	bool present;
	struct vdifs_chunk ch;
};

static struct vdifs_chunk mk(uint64_t index, uint64_t id, uint32_t version, uint32_t flags)
{
	struct vdifs_chunk ch;
	memset(&ch, 0, sizeof(ch));
	ch.index = index;
	ch.chunk_id = id;
	ch.version = version;
	ch.flags = flags;
	ch.nrep = flags & VDIFS_CHUNK_HOLE ? 0 : 1;
	return ch;
}

static void check_against(struct vdifs_layout *l, const struct model *m)
{
	size_t n = 0;
	for (uint64_t i = 0; i < NIDX; i++) {
		struct vdifs_chunk *ch = vdifs_layout_get(l, i);
		if (!m[i].present) {
			assert_null(ch);
			continue;
		}
		n++;
		assert_non_null(ch);
		assert_memory_equal(ch, &m[i].ch, sizeof(*ch));
	}
	assert_int_equal(l->n, n);
	for (size_t i = 1; i < l->n; i++)
		assert_true(l->v[i - 1].index < l->v[i].index);
	/* next(): the first non-hole entry at or after each index. */
	for (uint64_t i = 0; i <= NIDX; i++) {
		uint64_t want = NIDX;
		for (uint64_t j = i; j < NIDX; j++)
			if (m[j].present && !(m[j].ch.flags & VDIFS_CHUNK_HOLE)) {
				want = j;
				break;
			}
		struct vdifs_chunk *ch = vdifs_layout_next(l, i);
		if (want == NIDX)
			assert_null(ch);
		else
			assert_int_equal(ch->index, want);
	}
}

static void test_basic(void **state)
{
	(void)state;
	struct vdifs_layout l;
	vdifs_layout_init(&l);
	assert_null(vdifs_layout_get(&l, 0));
	assert_null(vdifs_layout_next(&l, 0));
	struct vdifs_chunk a = mk(5, 100, 1, 0), b = mk(2, 101, 1, 0), h = mk(3, 0, 0, VDIFS_CHUNK_HOLE);
	assert_int_equal(vdifs_layout_put(&l, &a), 0);
	assert_int_equal(vdifs_layout_put(&l, &b), 0);
	assert_int_equal(vdifs_layout_put(&l, &h), 0);
	assert_int_equal(vdifs_layout_get(&l, 5)->chunk_id, 100);
	assert_int_equal(vdifs_layout_next(&l, 3)->index, 5); /* the hole is skipped */
	assert_int_equal(vdifs_layout_next(&l, 0)->index, 2);
	a.version = 2;
	assert_int_equal(vdifs_layout_put(&l, &a), 0); /* replaces, no duplicate */
	assert_int_equal(l.n, 3);
	vdifs_layout_remove(&l, 3, UINT64_MAX - 3); /* truncate from index 3 on */
	assert_int_equal(l.n, 1);
	assert_null(vdifs_layout_get(&l, 5));
	vdifs_layout_free(&l);
	assert_int_equal(l.n, 0);
}

static void test_replace_keeps_state(void **state)
{
	(void)state;
	struct vdifs_layout l, fresh;
	vdifs_layout_init(&l);
	vdifs_layout_init(&fresh);
	struct vdifs_chunk a = mk(0, 10, 1, 0), b = mk(1, 11, 1, 0), c = mk(2, 12, 1, 0);
	a.writable = b.writable = c.writable = true;
	a.alloc_dirty = b.alloc_dirty = true;
	a.alloc = b.alloc = 65536;
	a.alloc_known = true;
	vdifs_layout_put(&l, &a);
	vdifs_layout_put(&l, &b);
	vdifs_layout_put(&l, &c);
	/* The MDS now says: chunk 0 unchanged, chunk 1 got a new version (its
	 * replica set changed), chunk 2 is gone, chunk 3 appeared. */
	struct vdifs_chunk fa = mk(0, 10, 1, 0), fb = mk(1, 11, 2, 0), fd = mk(3, 13, 1, 0);
	vdifs_layout_put(&fresh, &fa);
	vdifs_layout_put(&fresh, &fb);
	vdifs_layout_put(&fresh, &fd);
	vdifs_layout_replace(&l, &fresh);
	assert_int_equal(fresh.n, 0);
	assert_int_equal(l.n, 3);
	struct vdifs_chunk *x = vdifs_layout_get(&l, 0);
	assert_true(x->writable && x->alloc_dirty && x->alloc_known);
	assert_int_equal(x->alloc, 65536);
	x = vdifs_layout_get(&l, 1);
	assert_int_equal(x->version, 2);
	assert_false(x->writable); /* must ask CHUNK_ALLOC again */
	assert_false(x->alloc_dirty);
	assert_null(vdifs_layout_get(&l, 2));
	assert_false(vdifs_layout_get(&l, 3)->writable);
	vdifs_layout_free(&l);
}

static void test_random_against_model(void **state)
{
	(void)state;
	struct model m[NIDX];
	struct vdifs_layout l;
	memset(m, 0, sizeof(m));
	vdifs_layout_init(&l);
	srandom(4242);
	for (int iter = 0; iter < 20000; iter++) {
		int op = (int)(random() % 10);
		if (op < 5) {
			uint64_t i = (uint64_t)random() % NIDX;
			struct vdifs_chunk ch = mk(i, 1 + (uint64_t)random() % 1000, (uint32_t)random() % 3,
						   random() % 5 == 0 ? VDIFS_CHUNK_HOLE : 0);
			ch.writable = random() % 2;
			ch.alloc = (uint64_t)random();
			assert_int_equal(vdifs_layout_put(&l, &ch), 0);
			m[i].present = true;
			m[i].ch = ch;
		} else if (op < 7) {
			uint64_t first = (uint64_t)random() % NIDX;
			uint64_t count = random() % 4 == 0 ? UINT64_MAX - first : (uint64_t)random() % 6;
			vdifs_layout_remove(&l, first, count);
			for (uint64_t i = first; i < NIDX && i - first < count; i++)
				m[i].present = false;
		} else if (op < 8) {
			/* Refresh: a fresh layout where some entries are unchanged. */
			struct vdifs_layout fresh;
			struct model nm[NIDX];
			vdifs_layout_init(&fresh);
			memset(nm, 0, sizeof(nm));
			for (uint64_t i = 0; i < NIDX; i++) {
				int pick = (int)(random() % 3);
				struct vdifs_chunk ch;
				if (pick == 0)
					continue;
				if (pick == 1 && m[i].present)
					ch = mk(i, m[i].ch.chunk_id, m[i].ch.version, m[i].ch.flags);
				else
					ch = mk(i, 2000 + (uint64_t)random() % 1000, 0, 0);
				assert_int_equal(vdifs_layout_put(&fresh, &ch), 0);
				nm[i].present = true;
				nm[i].ch = ch;
				if (m[i].present && m[i].ch.chunk_id == ch.chunk_id && m[i].ch.version == ch.version) {
					nm[i].ch.writable = m[i].ch.writable;
					nm[i].ch.unsynced = m[i].ch.unsynced;
					nm[i].ch.alloc_dirty = m[i].ch.alloc_dirty;
					nm[i].ch.alloc_known = m[i].ch.alloc_known;
					nm[i].ch.alloc = m[i].ch.alloc;
					nm[i].ch.alloc_base = m[i].ch.alloc_base;
				}
			}
			vdifs_layout_replace(&l, &fresh);
			memcpy(m, nm, sizeof(m));
		} else {
			/* Client state changes through get(), as the I/O path does. */
			uint64_t i = (uint64_t)random() % NIDX;
			struct vdifs_chunk *ch = vdifs_layout_get(&l, i);
			if (ch) {
				ch->unsynced = !ch->unsynced;
				ch->alloc_dirty = true;
				ch->alloc_known = true;
				ch->alloc += 4096;
				m[i].ch = *ch;
			}
		}
		check_against(&l, m);
	}
	vdifs_layout_free(&l);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_basic),
		cmocka_unit_test(test_replace_keeps_state),
		cmocka_unit_test(test_random_against_model),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
