/* frame: header codec (see frame.h). */
#include "frame.h"

#include "proto.h"
#include "wire.h"

#include <errno.h>

_Static_assert(VDIFS_FRAME_HDR_LEN == 24, "frame header is 24 bytes on the wire");

void frame_hdr_encode(uint8_t out[24], uint16_t type, uint64_t req_id, uint32_t len, int32_t status)
{
	le_put32(out, VDIFS_PROTO_MAGIC);
	le_put16(out + 4, VDIFS_PROTO_VERSION);
	le_put16(out + 6, type);
	le_put64(out + 8, req_id);
	le_put32(out + 16, len);
	le_put32(out + 20, (uint32_t)status);
}

int frame_hdr_decode(const uint8_t in[24], uint32_t max_payload, struct vdifs_frame_hdr *h)
{
	h->magic = le_get32(in);
	h->version = le_get16(in + 4);
	h->type = le_get16(in + 6);
	h->req_id = le_get64(in + 8);
	h->len = le_get32(in + 16);
	h->status = (int32_t)le_get32(in + 20);
	if (h->magic != VDIFS_PROTO_MAGIC)
		return -EPROTO;
	if (h->version != VDIFS_PROTO_VERSION)
		return -EPROTONOSUPPORT;
	if (h->len > max_payload)
		return -EMSGSIZE;
	return 0;
}
