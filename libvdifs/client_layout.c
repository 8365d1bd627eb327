/*
 * client_layout: the client's building blocks that touch no network (and
 * are unit-tested alone, tests/unit/test_client_*): the split of a byte
 * range into per-chunk spans, the per-file layout cache, and lseek
 * SEEK_DATA/SEEK_HOLE over a layout.
 *
 * Owns: the entries of a struct vdifs_layout (a sorted array, one per chunk
 * index); its lock, if any, belongs to the caller.
 *
 * Tuned for files of few large chunks read and written far more often than
 * their layout changes: lookups are a binary search over a flat array, an
 * insert is a memmove (rare: a chunk's first write), and replacing the whole
 * layout after a fetch merges the client state in one pass.
 */
#include "client.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

size_t vdifs_span_split(uint64_t off, uint64_t len, uint64_t chunk_size, uint32_t unit,
			struct vdifs_span *out, size_t cap)
{
	size_t n = 0;
	uint64_t pos = 0;

	while (pos < len) {
		uint64_t at = off + pos;
		uint64_t coff = at & (chunk_size - 1);
		uint64_t piece = chunk_size - coff;
		if (piece > len - pos)
			piece = len - pos;
		if (unit && piece > unit)
			piece = unit;
		if (n < cap) {
			out[n].index = at / chunk_size;
			out[n].off = (uint32_t)coff;
			out[n].len = (uint32_t)piece;
			out[n].pos = pos;
		}
		n++;
		pos += piece;
	}
	return n;
}

void vdifs_layout_init(struct vdifs_layout *l)
{
	l->v = NULL;
	l->n = 0;
	l->cap = 0;
}

void vdifs_layout_free(struct vdifs_layout *l)
{
	free(l->v);
	vdifs_layout_init(l);
}

/* Position of the first entry with index >= index. */
static size_t layout_lower_bound(const struct vdifs_layout *l, uint64_t index)
{
	size_t lo = 0, hi = l->n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (l->v[mid].index < index)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

struct vdifs_chunk *vdifs_layout_get(struct vdifs_layout *l, uint64_t index)
{
	size_t i = layout_lower_bound(l, index);
	return i < l->n && l->v[i].index == index ? &l->v[i] : NULL;
}

struct vdifs_chunk *vdifs_layout_next(struct vdifs_layout *l, uint64_t from)
{
	for (size_t i = layout_lower_bound(l, from); i < l->n; i++)
		if (!(l->v[i].flags & VDIFS_CHUNK_HOLE))
			return &l->v[i];
	return NULL;
}

int vdifs_layout_put(struct vdifs_layout *l, const struct vdifs_chunk *ch)
{
	size_t i = layout_lower_bound(l, ch->index);
	if (i < l->n && l->v[i].index == ch->index) {
		l->v[i] = *ch;
		return 0;
	}
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 16;
		struct vdifs_chunk *v = realloc(l->v, cap * sizeof(*v));
		if (!v)
			return -ENOMEM;
		l->v = v;
		l->cap = cap;
	}
	memmove(&l->v[i + 1], &l->v[i], (l->n - i) * sizeof(*l->v));
	l->v[i] = *ch;
	l->n++;
	return 0;
}

void vdifs_layout_remove(struct vdifs_layout *l, uint64_t first, uint64_t count)
{
	size_t a = layout_lower_bound(l, first);
	size_t b = first + count < first ? l->n : layout_lower_bound(l, first + count);
	if (b <= a)
		return;
	memmove(&l->v[a], &l->v[b], (l->n - b) * sizeof(*l->v));
	l->n -= b - a;
}

void vdifs_layout_replace(struct vdifs_layout *l, struct vdifs_layout *fresh)
{
	/* Both sorted: merge the client state in one pass. */
	size_t j = 0;
	for (size_t i = 0; i < fresh->n; i++) {
		struct vdifs_chunk *nc = &fresh->v[i];
		while (j < l->n && l->v[j].index < nc->index)
			j++;
		if (j < l->n && l->v[j].index == nc->index && l->v[j].chunk_id == nc->chunk_id &&
		    l->v[j].version == nc->version) {
			const struct vdifs_chunk *oc = &l->v[j];
			nc->writable = oc->writable;
			nc->unsynced = oc->unsynced;
			nc->alloc_dirty = oc->alloc_dirty;
			nc->alloc_known = oc->alloc_known;
			nc->alloc = oc->alloc;
			nc->alloc_base = oc->alloc_base;
		}
	}
	free(l->v);
	*l = *fresh;
	vdifs_layout_init(fresh);
}

int64_t vdifs_seek_layout(struct vdifs_layout *l, pthread_mutex_t *lock, uint64_t chunk_size,
			  uint64_t size, uint64_t off, int whence, vdifs_chunk_seek_fn fn, void *arg)
{
	struct vdifs_chunk ch;
	uint64_t i = off / chunk_size;
	uint32_t coff = (uint32_t)(off % chunk_size);
	uint32_t res;
	int rc;

	if (whence != SEEK_DATA && whence != SEEK_HOLE)
		return -EINVAL;
	if (off >= size)
		return -ENXIO;
	for (;;) {
		if (i > (size - 1) / chunk_size)
			return whence == SEEK_DATA ? -ENXIO : (int64_t)size;
		if (lock)
			pthread_mutex_lock(lock);
		struct vdifs_chunk *p = whence == SEEK_DATA ? vdifs_layout_next(l, i) : vdifs_layout_get(l, i);
		bool present = p && !(p->flags & VDIFS_CHUNK_HOLE);
		if (present)
			ch = *p;
		if (lock)
			pthread_mutex_unlock(lock);
		if (whence == SEEK_DATA) {
			if (!present || ch.index > (size - 1) / chunk_size)
				return -ENXIO;
			if (ch.index != i) {
				i = ch.index;
				coff = 0;
			}
			rc = fn(arg, &ch, coff, VDIFS_SEEK_DATA, &res);
			if (rc < 0)
				return rc;
			if (rc == 1 && res < chunk_size) {
				uint64_t pos = i * chunk_size + (res > coff ? res : coff);
				return pos >= size ? -ENXIO : (int64_t)pos;
			}
		} else {
			if (!present)
				return (int64_t)(i * chunk_size + coff);
			rc = fn(arg, &ch, coff, VDIFS_SEEK_HOLE, &res);
			if (rc < 0)
				return rc;
			if (rc == 1 && res < chunk_size) {
				uint64_t pos = i * chunk_size + (res > coff ? res : coff);
				return pos > size ? (int64_t)size : (int64_t)pos;
			}
		}
		i++;
		coff = 0;
	}
}
