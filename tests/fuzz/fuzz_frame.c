/*
 * fuzz_frame: feeds the first 24 input bytes to frame_hdr_decode() (the
 * header every server and client reads off a socket) with the payload bound
 * taken from the next 4 bytes (the default bound when absent).  A header it
 * accepts must re-encode to the same bytes and respect that bound.
 */
#include "frame.h"
#include "fuzz_util.h"
#include "proto.h"
#include "wire.h"

#include <errno.h>
#include <stdint.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < VDIFS_FRAME_HDR_LEN)
		return 0;
	uint32_t max_payload = size >= VDIFS_FRAME_HDR_LEN + 4 ? le_get32(data + VDIFS_FRAME_HDR_LEN)
							       : VDIFS_DEFAULT_MAX_PAYLOAD;
	struct vdifs_frame_hdr h;
	int rc = frame_hdr_decode(data, max_payload, &h);
	FUZZ_CHECK(rc == 0 || rc == -EPROTO || rc == -EPROTONOSUPPORT || rc == -EMSGSIZE, "rc %d", rc);
	FUZZ_CHECK(proto_msg_name(h.type) != NULL, "type %u", h.type);
	if (rc < 0)
		return 0;
	FUZZ_CHECK(h.len <= max_payload, "len %u over %u", h.len, max_payload);
	uint8_t out[VDIFS_FRAME_HDR_LEN];
	frame_hdr_encode(out, h.type, h.req_id, h.len, h.status);
	FUZZ_CHECK(memcmp(out, data, sizeof(out)) == 0, "re-encoded header differs");
	return 0;
}
