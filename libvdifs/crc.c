/* crc: CRC32C via ISA-L (see crc.h). */
#include "crc.h"

#include <isa-l/crc.h>
#include <stdlib.h>

uint32_t crc32c(uint32_t seed, const void *p, size_t n)
{
	/* crc32_iscsi takes and returns the raw (non-inverted) register; invert
	 * around it to get the standard CRC32C value (0xe3069283 for "123456789"). */
	return ~crc32_iscsi((unsigned char *)p, (int)n, ~seed);
}

uint32_t crc32c_zeros(size_t n)
{
	static const unsigned char zeros[4096];
	uint32_t crc = 0;
	while (n > 0) {
		size_t k = n < sizeof(zeros) ? n : sizeof(zeros);
		crc = crc32c(crc, zeros, k);
		n -= k;
	}
	return crc;
}
