/*
 * auth: the shared cluster key and the HMAC-SHA256 proofs of the handshake
 * (OpenSSL libcrypto: a well-kept HMAC and CSPRNG, nothing hand-rolled).
 * Runs once per connection, never on the data path.
 */
#include "rpc.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static int hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = tolower(c);
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

int rpc_auth_load_key(struct rpc_auth *a, const char *path, char *err, size_t errlen)
{
	char buf[1024];
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		int e = errno;
		snprintf(err, errlen, "%s: %s", path, strerror(e));
		return -e;
	}
	ssize_t n = read(fd, buf, sizeof(buf));
	int e = errno;
	close(fd);
	if (n < 0) {
		snprintf(err, errlen, "%s: %s", path, strerror(e));
		return -e;
	}
	if ((size_t)n == sizeof(buf)) {
		snprintf(err, errlen, "%s: key file too long (at most %d bytes)", path, RPC_KEY_MAX * 2);
		return -EINVAL;
	}
	size_t s = 0, end = (size_t)n;
	while (s < end && isspace((unsigned char)buf[s]))
		s++;
	while (end > s && isspace((unsigned char)buf[end - 1]))
		end--;
	size_t len = end - s;
	bool hex = len % 2 == 0;
	for (size_t i = s; hex && i < end; i++)
		hex = hexval((unsigned char)buf[i]) >= 0;
	memset(a, 0, sizeof(*a));
	if (hex) {
		len /= 2;
		if (len <= RPC_KEY_MAX)
			for (size_t i = 0; i < len; i++)
				a->key[i] = (uint8_t)(hexval(buf[s + 2 * i]) << 4 | hexval(buf[s + 2 * i + 1]));
	} else if (len <= RPC_KEY_MAX) {
		memcpy(a->key, buf + s, len);
	}
	if (len < 16 || len > RPC_KEY_MAX) {
		snprintf(err, errlen, "%s: key must be 16 to %d bytes, found %zu", path, RPC_KEY_MAX, len);
		memset(a, 0, sizeof(*a));
		return -EINVAL;
	}
	a->keylen = len;
	return 0;
}

int rpc_auth_generate_key(const char *path, char *err, size_t errlen)
{
	uint8_t key[32];
	char hex[sizeof(key) * 2 + 2];
	if (RAND_bytes(key, sizeof(key)) != 1) {
		snprintf(err, errlen, "%s: no randomness available", path);
		return -EIO;
	}
	for (size_t i = 0; i < sizeof(key); i++)
		snprintf(hex + 2 * i, 3, "%02x", key[i]);
	hex[sizeof(key) * 2] = '\n';
	hex[sizeof(key) * 2 + 1] = '\0';
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0) {
		int e = errno;
		snprintf(err, errlen, "%s: %s", path, strerror(e));
		return -e;
	}
	size_t len = strlen(hex);
	ssize_t w = write(fd, hex, len);
	int e = errno;
	if (fsync(fd) < 0 && w == (ssize_t)len) {
		e = errno;
		w = -1;
	}
	close(fd);
	OPENSSL_cleanse(key, sizeof(key));
	if (w != (ssize_t)len) {
		snprintf(err, errlen, "%s: %s", path, w < 0 ? strerror(e) : "short write");
		return w < 0 ? -e : -EIO;
	}
	return 0;
}

void rpc_auth_proof(const struct rpc_auth *a, const char *label, const struct vdifs_nonce *n1,
		    const struct vdifs_nonce *n2, struct vdifs_proof *out)
{
	uint8_t msg[64 + 2 * sizeof(n1->b)];
	size_t ll = strlen(label);
	if (ll > 64)
		ll = 64;
	memcpy(msg, label, ll);
	memcpy(msg + ll, n1->b, sizeof(n1->b));
	memcpy(msg + ll + sizeof(n1->b), n2->b, sizeof(n2->b));
	static const uint8_t empty_key[1];
	unsigned int outlen = sizeof(out->b);
	/* An insecure peer has an empty key: the exchange still checks versions. */
	if (!HMAC(EVP_sha256(), a->keylen ? a->key : empty_key, (int)a->keylen, msg,
		  ll + 2 * sizeof(n1->b), out->b, &outlen))
		memset(out->b, 0, sizeof(out->b));
}
