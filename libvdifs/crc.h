/*
 * crc: CRC32C (Castagnoli) through ISA-L's crc32_iscsi, which uses the SSE4.2
 * crc32 instruction where present.  Stored CRCs are masked (as LevelDB does) so
 * that a CRC of data that itself contains CRCs stays well distributed.
 */
#ifndef VDIFS_CRC_H
#define VDIFS_CRC_H

#include <stddef.h>
#include <stdint.h>

uint32_t crc32c(uint32_t seed, const void *p, size_t n);
/* CRC32C of n zero bytes (cached for the block sizes in use). */
uint32_t crc32c_zeros(size_t n);

static inline uint32_t crc32c_mask(uint32_t crc)
{
	return ((crc >> 15) | (crc << 17)) + 0xa282ead8u;
}
static inline uint32_t crc32c_unmask(uint32_t m)
{
	uint32_t rot = m - 0xa282ead8u;
	return (rot >> 17) | (rot << 15);
}

#endif
