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

/*
 * CRC32C of an n-byte message after its len bytes at off changed from old to
 * new, given crc, the CRC32C of the message before.  Reads only those len
 * bytes of each (old or new NULL: zeros), never the rest of the message: CRC32C
 * is affine over GF(2), so crc(M ^ D) = crc(M) ^ crc(D) ^ crc(0...0) for
 * messages of equal length, and the changed range's part is moved to its
 * place in the message by a multiplication by x^(8 * bytes after it).  If crc
 * was not the CRC of the message, the result is not the CRC of the new one
 * either: a mismatch is carried forward, never repaired.  off + len <= n.
 */
uint32_t crc32c_replace(uint32_t crc, size_t n, size_t off, const void *old, const void *new, size_t len);

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
