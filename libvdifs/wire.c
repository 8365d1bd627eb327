/*
 * wire: cursor helpers (see wire.h).  Tuned for many small fields per message:
 * the writer grows geometrically, the reader is branch-light and never
 * allocates.
 */
#include "wire.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

void wbuf_init(struct wbuf *b) { memset(b, 0, sizeof(*b)); }

void wbuf_free(struct wbuf *b)
{
	free(b->data);
	wbuf_init(b);
}

void wbuf_reset(struct wbuf *b)
{
	b->len = 0;
	b->err = false;
}

uint8_t *wbuf_reserve(struct wbuf *b, size_t n)
{
	if (b->err)
		return NULL;
	/* An empty buffer allocates even for n == 0: the pointer returned is
	 * never NULL + 0 (undefined behaviour) on success. */
	if (!b->data || b->len + n > b->cap) {
		size_t cap = b->cap ? b->cap : 256;
		while (cap < b->len + n)
			cap *= 2;
		uint8_t *d = realloc(b->data, cap);
		if (!d) {
			b->err = true;
			return NULL;
		}
		b->data = d;
		b->cap = cap;
	}
	uint8_t *p = b->data + b->len;
	b->len += n;
	return p;
}

void wbuf_put_u8(struct wbuf *b, uint8_t v)
{
	uint8_t *p = wbuf_reserve(b, 1);
	if (p)
		*p = v;
}

void wbuf_put_u16(struct wbuf *b, uint16_t v)
{
	uint8_t *p = wbuf_reserve(b, 2);
	if (p)
		le_put16(p, v);
}

void wbuf_put_u32(struct wbuf *b, uint32_t v)
{
	uint8_t *p = wbuf_reserve(b, 4);
	if (p)
		le_put32(p, v);
}

void wbuf_put_u64(struct wbuf *b, uint64_t v)
{
	uint8_t *p = wbuf_reserve(b, 8);
	if (p)
		le_put64(p, v);
}

void wbuf_put_i64(struct wbuf *b, int64_t v) { wbuf_put_u64(b, (uint64_t)v); }

void wbuf_put_raw(struct wbuf *b, const void *src, size_t n)
{
	uint8_t *p = wbuf_reserve(b, n);
	if (p && n)
		memcpy(p, src, n);
}

void wbuf_put_bytes(struct wbuf *b, const void *src, uint32_t n)
{
	wbuf_put_u32(b, n);
	wbuf_put_raw(b, src, n);
}

void wbuf_put_vbytes(struct wbuf *b, struct vbytes v) { wbuf_put_bytes(b, v.p, v.len); }

void wbuf_put_cstr(struct wbuf *b, const char *s)
{
	wbuf_put_bytes(b, s, s ? (uint32_t)strlen(s) : 0);
}

void wreader_init(struct wreader *r, const void *p, size_t len)
{
	r->p = p;
	r->left = len;
	r->err = false;
}

/* Returns a pointer to the next n bytes and advances, or NULL (sticky error). */
static const uint8_t *take(struct wreader *r, size_t n)
{
	if (r->err || r->left < n) {
		r->err = true;
		return NULL;
	}
	const uint8_t *p = r->p;
	r->p += n;
	r->left -= n;
	return p;
}

uint8_t wreader_u8(struct wreader *r)
{
	const uint8_t *p = take(r, 1);
	return p ? *p : 0;
}

uint16_t wreader_u16(struct wreader *r)
{
	const uint8_t *p = take(r, 2);
	return p ? le_get16(p) : 0;
}

uint32_t wreader_u32(struct wreader *r)
{
	const uint8_t *p = take(r, 4);
	return p ? le_get32(p) : 0;
}

uint64_t wreader_u64(struct wreader *r)
{
	const uint8_t *p = take(r, 8);
	return p ? le_get64(p) : 0;
}

int64_t wreader_i64(struct wreader *r) { return (int64_t)wreader_u64(r); }

void wreader_raw(struct wreader *r, void *out, size_t n)
{
	const uint8_t *p = take(r, n);
	if (p)
		memcpy(out, p, n);
	else
		memset(out, 0, n);
}

struct vbytes wreader_bytes(struct wreader *r, uint32_t max)
{
	struct vbytes v = {NULL, 0};
	uint32_t n = wreader_u32(r);
	if (r->err)
		return v;
	if (n > max) {
		r->err = true;
		return v;
	}
	const uint8_t *p = take(r, n);
	if (p) {
		v.p = p;
		v.len = n;
	}
	return v;
}

int wreader_finish(const struct wreader *r)
{
	return (r->err || r->left != 0) ? -EBADMSG : 0;
}

bool vbytes_eq(struct vbytes v, const char *s)
{
	size_t n = strlen(s);
	return v.len == n && (n == 0 || memcmp(v.p, s, n) == 0);
}

int vbytes_to_cstr(struct vbytes v, char *out, size_t cap)
{
	if ((size_t)v.len + 1 > cap)
		return -ENAMETOOLONG;
	if (v.len)
		memcpy(out, v.p, v.len);
	out[v.len] = '\0';
	return 0;
}
