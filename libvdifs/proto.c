/*
 * proto: codecs generated from the record lists in proto.h.  Decoding is the
 * hot path on every server, so it is a straight sequence of cursor reads with
 * one error check at the end.
 */
#include "proto.h"

#include <errno.h>
#include <string.h>

const char *proto_msg_name(uint16_t type)
{
	switch (type & ~(VDIFS_REPLY_BIT | VDIFS_SEQ_BIT)) {
#define VDIFS_NAME_CASE(name, num) case num: return #name;
		VDIFS_MSG_TYPES(VDIFS_NAME_CASE)
#undef VDIFS_NAME_CASE
	}
	return "?";
}

bool proto_msg_exactly_once(uint16_t type)
{
	switch (type) {
	case VDIFS_MSG_SETATTR:
	case VDIFS_MSG_MKNOD:
	case VDIFS_MSG_SYMLINK:
	case VDIFS_MSG_LINK:
	case VDIFS_MSG_UNLINK:
	case VDIFS_MSG_RMDIR:
	case VDIFS_MSG_RENAME:
	case VDIFS_MSG_SETXATTR:
	case VDIFS_MSG_REMOVEXATTR:
	case VDIFS_MSG_SNAP_CREATE:
	case VDIFS_MSG_SNAP_DELETE:
	case VDIFS_MSG_SNAP_REVERT:
	case VDIFS_MSG_CLONE: return true;
	default: return false;
	}
}

/* Per-kind writers. */
#define PUT_U8(b, v) wbuf_put_u8(b, v)
#define PUT_U16(b, v) wbuf_put_u16(b, v)
#define PUT_U32(b, v) wbuf_put_u32(b, v)
#define PUT_U64(b, v) wbuf_put_u64(b, v)
#define PUT_I64(b, v) wbuf_put_i64(b, v)
#define PUT_NONCE(b, v) wbuf_put_raw(b, (v).b, sizeof((v).b))
#define PUT_PROOF(b, v) wbuf_put_raw(b, (v).b, sizeof((v).b))
#define PUT_NAME(b, v) wbuf_put_vbytes(b, v)
#define PUT_PATH(b, v) wbuf_put_vbytes(b, v)
#define PUT_VALUE(b, v) wbuf_put_vbytes(b, v)
#define PUT_BLOB(b, v) wbuf_put_vbytes(b, v)
#define PUT_DATA(b, v) wbuf_put_vbytes(b, v)
#define PUT_ATTR(b, v) proto_put_attr(b, &(v))

/* Per-kind readers (bounds are enforced here). */
#define GET_U8(r, v) ((v) = wreader_u8(r))
#define GET_U16(r, v) ((v) = wreader_u16(r))
#define GET_U32(r, v) ((v) = wreader_u32(r))
#define GET_U64(r, v) ((v) = wreader_u64(r))
#define GET_I64(r, v) ((v) = wreader_i64(r))
#define GET_NONCE(r, v) wreader_raw(r, (v).b, sizeof((v).b))
#define GET_PROOF(r, v) wreader_raw(r, (v).b, sizeof((v).b))
#define GET_NAME(r, v) ((v) = wreader_bytes(r, VDIFS_NAME_MAX))
#define GET_PATH(r, v) ((v) = wreader_bytes(r, VDIFS_PATH_MAX))
#define GET_VALUE(r, v) ((v) = wreader_bytes(r, VDIFS_XATTR_MAX))
#define GET_BLOB(r, v) ((v) = wreader_bytes(r, VDIFS_BLOB_MAX))
#define GET_DATA(r, v) ((v) = wreader_bytes(r, VDIFS_DATA_MAX))
#define GET_ATTR(r, v) proto_get_attr(r, &(v))

#define FIELD_PUT(kind, name) PUT_##kind(b, m->name);
#define FIELD_GET(kind, name) GET_##kind(r, m->name);

void proto_put_attr(struct wbuf *b, const struct vdifs_attr *m) { REC_attr(FIELD_PUT) }
void proto_get_attr(struct wreader *r, struct vdifs_attr *m) { REC_attr(FIELD_GET) }

#define PROTO_DEFINE(rec)                                                    \
	void msg_##rec##_put(struct wbuf *b, const struct msg_##rec *m)      \
	{                                                                    \
		REC_##rec(FIELD_PUT)                                         \
	}                                                                    \
	void msg_##rec##_get(struct wreader *r, struct msg_##rec *m)         \
	{                                                                    \
		REC_##rec(FIELD_GET)                                         \
	}                                                                    \
	int msg_##rec##_decode(const void *p, size_t len, struct msg_##rec *m) \
	{                                                                    \
		struct wreader rd;                                           \
		wreader_init(&rd, p, len);                                   \
		memset(m, 0, sizeof(*m));                                    \
		msg_##rec##_get(&rd, m);                                     \
		return wreader_finish(&rd);                                  \
	}
VDIFS_RECORDS(PROTO_DEFINE)
#undef PROTO_DEFINE

void msg_ds_write_req_put_head(struct wbuf *b, const struct msg_ds_write_req *m)
{
	struct msg_ds_write_req head = *m;
	head.data.p = NULL;
	head.data.len = 0;
	msg_ds_write_req_put(b, &head);
	/* Overwrite the zero data length with the real one; bytes follow. */
	if (!b->err)
		le_put32(b->data + b->len - 4, m->data.len);
}

void msg_ds_read_rep_put_head(struct wbuf *b, uint32_t len) { wbuf_put_u32(b, len); }
