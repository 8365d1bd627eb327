/*
 * frame: the fixed 24-byte header in front of every vdifs message.
 *
 *   u32 magic "VDFS" | u16 version | u16 type | u64 request id |
 *   u32 payload length | i32 status (0 in requests; 0 or -errno in replies)
 */
#ifndef VDIFS_FRAME_H
#define VDIFS_FRAME_H

#include <stdint.h>

struct vdifs_frame_hdr {
	uint32_t magic;
	uint16_t version;
	uint16_t type;
	uint64_t req_id;
	uint32_t len;
	int32_t status;
};

void frame_hdr_encode(uint8_t out[24], uint16_t type, uint64_t req_id, uint32_t len, int32_t status);
/* Decodes and validates a header.  Returns 0, -EPROTO for a bad magic,
 * -EPROTONOSUPPORT for another protocol version, -EMSGSIZE when the payload
 * length exceeds max_payload.  h is filled in every case (for the error reply). */
int frame_hdr_decode(const uint8_t in[24], uint32_t max_payload, struct vdifs_frame_hdr *h);

#endif
