/*
 * wire: cursor-advancing serialisation helpers for the vdifs protocol.
 *
 * Every field is little-endian and fixed-width; byte strings are a u32 length
 * followed by the bytes.  A writer (struct wbuf) grows on demand; a reader
 * (struct wreader) never reads past its end: a short read sets a sticky error
 * flag and returns zero, so a decoder can read all fields and check once at
 * the end with wreader_finish().  Decoded byte strings point into the input
 * buffer (no copy): they live as long as that buffer does.
 */
#ifndef VDIFS_WIRE_H
#define VDIFS_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A byte string borrowed from a buffer; not NUL-terminated. */
struct vbytes {
	const uint8_t *p;
	uint32_t len;
};

struct wbuf {
	uint8_t *data;
	size_t len;
	size_t cap;
	bool err; /* allocation failed: the content is incomplete */
};

struct wreader {
	const uint8_t *p;
	size_t left;
	bool err; /* a field ran past the end, or a length exceeded its bound */
};

void wbuf_init(struct wbuf *b);
void wbuf_free(struct wbuf *b);
void wbuf_reset(struct wbuf *b);
/* Reserves n bytes at the end and returns them (NULL and err set on ENOMEM). */
uint8_t *wbuf_reserve(struct wbuf *b, size_t n);
void wbuf_put_u8(struct wbuf *b, uint8_t v);
void wbuf_put_u16(struct wbuf *b, uint16_t v);
void wbuf_put_u32(struct wbuf *b, uint32_t v);
void wbuf_put_u64(struct wbuf *b, uint64_t v);
void wbuf_put_i64(struct wbuf *b, int64_t v);
void wbuf_put_raw(struct wbuf *b, const void *p, size_t n);
void wbuf_put_bytes(struct wbuf *b, const void *p, uint32_t n);
void wbuf_put_vbytes(struct wbuf *b, struct vbytes v);
void wbuf_put_cstr(struct wbuf *b, const char *s);

void wreader_init(struct wreader *r, const void *p, size_t len);
uint8_t wreader_u8(struct wreader *r);
uint16_t wreader_u16(struct wreader *r);
uint32_t wreader_u32(struct wreader *r);
uint64_t wreader_u64(struct wreader *r);
int64_t wreader_i64(struct wreader *r);
/* Fixed-size raw field: copies n bytes into out (zeros on error). */
void wreader_raw(struct wreader *r, void *out, size_t n);
/* Length-prefixed byte string, refused (err set) when longer than max. */
struct vbytes wreader_bytes(struct wreader *r, uint32_t max);
/* 0 when every field fit and nothing is left over, else -EBADMSG. */
int wreader_finish(const struct wreader *r);

/* Raw little-endian access for fixed headers (on-disk and frame headers). */
static inline void le_put16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); }
static inline void le_put32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}
static inline void le_put64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}
static inline uint16_t le_get16(const uint8_t *p) { return (uint16_t)(p[0] | (p[1] << 8)); }
static inline uint32_t le_get32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static inline uint64_t le_get64(const uint8_t *p)
{
	return (uint64_t)le_get32(p) | (uint64_t)le_get32(p + 4) << 32;
}

/* Compares a vbytes with a C string. */
bool vbytes_eq(struct vbytes v, const char *s);
/* Copies v into a NUL-terminated string of size cap; -ENAMETOOLONG if it does not fit. */
int vbytes_to_cstr(struct vbytes v, char *out, size_t cap);

#endif
