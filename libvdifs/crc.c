/* crc: CRC32C via ISA-L (see crc.h). */
#include "crc.h"

#include <assert.h>
#include <isa-l/crc.h>
#include <pthread.h>
#include <stdlib.h>

/* CRC32C's polynomial, bit-reflected as ISA-L's register holds it: bit 31 is
 * the coefficient of x^0, bit 0 that of x^31. */
#define POLY 0x82f63b78u

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

/* a * b mod POLY, both reflected polynomials. */
static uint32_t gf2_mulmod(uint32_t a, uint32_t b)
{
	uint32_t prod = 0;
	for (uint32_t bit = 1u << 31; bit; bit >>= 1) {
		if (a & bit)
			prod ^= b;
		b = (b & 1) ? (b >> 1) ^ POLY : b >> 1; /* b *= x */
	}
	return prod;
}

/* x8pow[k] = x^(8 * 2^k) mod POLY: appending 2^k zero bytes multiplies the
 * register by it. */
static uint32_t x8pow[64];
static pthread_once_t x8pow_once = PTHREAD_ONCE_INIT;

static void x8pow_init(void)
{
	x8pow[0] = 1u << (31 - 8); /* x^8 */
	for (int k = 1; k < 64; k++)
		x8pow[k] = gf2_mulmod(x8pow[k - 1], x8pow[k - 1]);
}

/* The raw register after nzeros zero bytes more: reg * x^(8 * nzeros). */
static uint32_t shift_zeros(uint32_t reg, size_t nzeros)
{
	pthread_once(&x8pow_once, x8pow_init);
	for (int k = 0; nzeros && reg; k++, nzeros >>= 1)
		if (nzeros & 1)
			reg = gf2_mulmod(x8pow[k], reg);
	return reg;
}

uint32_t crc32c_replace(uint32_t crc, size_t n, size_t off, const void *old, const void *new, size_t len)
{
	assert(off <= n && len <= n - off);
	/* With a zero initial register crc32_iscsi is linear in the data, and a
	 * range's leading zero bytes leave it at zero: the XOR of the two ranges'
	 * registers, shifted past the bytes after the range, is what the change
	 * does to the register of the whole message (inverted or not). */
	uint32_t reg = 0;
	if (old)
		reg ^= crc32_iscsi((unsigned char *)old, (int)len, 0);
	if (new)
		reg ^= crc32_iscsi((unsigned char *)new, (int)len, 0);
	return crc ^ shift_zeros(reg, n - off - len);
}
