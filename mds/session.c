/*
 * session: per-connection sessions and open counts (see session.h).
 *
 * Every OPEN and RELEASE goes through here, so both the per-session and the
 * global count are hash maps keyed by (volume, inode): a hypervisor host may
 * hold thousands of images open on one connection.
 */
#include "session.h"

#include <errno.h>
#include <stdlib.h>

struct open_node {
	uint32_t vol;
	uint64_t ino;
	uint32_t count;
	struct open_node *next;
};

/* Chained hash map (vol, ino) -> count; nodes with count 0 are removed. */
struct openmap {
	struct open_node **buckets;
	size_t nbuckets; /* power of two, or 0 before the first insert */
	size_t n;
};

struct session_tab {
	uint64_t next_id;
	struct openmap total;
	struct session *sessions; /* live ones, for session_tab_free */
};

static size_t bucket_of(const struct openmap *m, uint32_t vol, uint64_t ino)
{
	uint64_t h = (ino ^ ((uint64_t)vol << 40)) * 0x9E3779B97F4A7C15ull;
	return (size_t)(h >> 32) & (m->nbuckets - 1);
}

static struct open_node *map_find(const struct openmap *m, uint32_t vol, uint64_t ino)
{
	if (!m->nbuckets)
		return NULL;
	for (struct open_node *n = m->buckets[bucket_of(m, vol, ino)]; n; n = n->next)
		if (n->vol == vol && n->ino == ino)
			return n;
	return NULL;
}

static int map_grow(struct openmap *m)
{
	if (m->n < m->nbuckets)
		return 0;
	size_t nb = m->nbuckets ? m->nbuckets * 2 : 16;
	struct open_node **b = calloc(nb, sizeof(*b));
	if (!b)
		return -ENOMEM;
	struct openmap nm = {b, nb, m->n};
	for (size_t i = 0; i < m->nbuckets; i++) {
		struct open_node *n = m->buckets[i];
		while (n) {
			struct open_node *next = n->next;
			size_t bi = bucket_of(&nm, n->vol, n->ino);
			n->next = b[bi];
			b[bi] = n;
			n = next;
		}
	}
	free(m->buckets);
	*m = nm;
	return 0;
}

/* Adds delta (+1 or -1) to the count of (vol, ino); returns the new count, or
 * -ENOMEM / -EBADF (decrement of a missing entry). */
static int64_t map_add(struct openmap *m, uint32_t vol, uint64_t ino, int delta)
{
	struct open_node *n = map_find(m, vol, ino);
	if (!n) {
		if (delta < 0)
			return -EBADF;
		if (map_grow(m) < 0)
			return -ENOMEM;
		n = calloc(1, sizeof(*n));
		if (!n)
			return -ENOMEM;
		n->vol = vol;
		n->ino = ino;
		size_t bi = bucket_of(m, vol, ino);
		n->next = m->buckets[bi];
		m->buckets[bi] = n;
		m->n++;
	}
	if (delta > 0) {
		if (n->count == UINT32_MAX)
			return -EMFILE;
		n->count++;
		return n->count;
	}
	n->count--;
	if (n->count > 0)
		return n->count;
	struct open_node **pp = &m->buckets[bucket_of(m, vol, ino)];
	while (*pp != n)
		pp = &(*pp)->next;
	*pp = n->next;
	free(n);
	m->n--;
	return 0;
}

static void map_clear(struct openmap *m)
{
	for (size_t i = 0; i < m->nbuckets; i++) {
		struct open_node *n = m->buckets[i];
		while (n) {
			struct open_node *next = n->next;
			free(n);
			n = next;
		}
	}
	free(m->buckets);
	m->buckets = NULL;
	m->nbuckets = m->n = 0;
}

int session_tab_new(uint64_t first_id, struct session_tab **out)
{
	struct session_tab *tab = calloc(1, sizeof(*tab));
	if (!tab)
		return -ENOMEM;
	tab->next_id = first_id ? first_id : 1;
	*out = tab;
	return 0;
}

void session_tab_free(struct session_tab *tab)
{
	if (!tab)
		return;
	while (tab->sessions)
		session_close(tab, tab->sessions, NULL, NULL);
	map_clear(&tab->total);
	free(tab);
}

struct session *session_new(struct session_tab *tab)
{
	struct session *s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	s->opens = calloc(1, sizeof(*s->opens));
	if (!s->opens) {
		free(s);
		return NULL;
	}
	s->id = tab->next_id++;
	s->next = tab->sessions;
	if (s->next)
		s->next->prev = s;
	tab->sessions = s;
	return s;
}

int session_open(struct session_tab *tab, struct session *s, uint32_t vol, uint64_t ino)
{
	int64_t rc = map_add(s->opens, vol, ino, +1);
	if (rc < 0)
		return (int)rc;
	rc = map_add(&tab->total, vol, ino, +1);
	if (rc < 0) {
		map_add(s->opens, vol, ino, -1);
		return (int)rc;
	}
	return 0;
}

int session_release(struct session_tab *tab, struct session *s, uint32_t vol, uint64_t ino, bool *last)
{
	*last = false;
	int64_t rc = map_add(s->opens, vol, ino, -1);
	if (rc < 0)
		return (int)rc;
	rc = map_add(&tab->total, vol, ino, -1);
	/* The total counts every session's opens, so it cannot be missing. */
	if (rc < 0)
		return (int)rc;
	*last = rc == 0;
	return 0;
}

uint32_t session_open_count(const struct session_tab *tab, uint32_t vol, uint64_t ino)
{
	const struct open_node *n = map_find(&tab->total, vol, ino);
	return n ? n->count : 0;
}

void session_close(struct session_tab *tab, struct session *s, session_last_fn last, void *arg)
{
	if (!s)
		return;
	struct openmap *m = s->opens;
	for (size_t i = 0; i < m->nbuckets; i++) {
		for (struct open_node *n = m->buckets[i]; n; n = n->next) {
			struct open_node *tn = map_find(&tab->total, n->vol, n->ino);
			if (!tn)
				continue;
			if (tn->count > n->count) {
				tn->count -= n->count;
				continue;
			}
			/* Count it down to zero (which unlinks the node), then report. */
			tn->count = 1;
			map_add(&tab->total, n->vol, n->ino, -1);
			if (last)
				last(arg, n->vol, n->ino);
		}
	}
	map_clear(m);
	free(m);
	if (s->prev)
		s->prev->next = s->next;
	else
		tab->sessions = s->next;
	if (s->next)
		s->next->prev = s->prev;
	free(s);
}
