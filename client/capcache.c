/*
 * capcache: a negative cache of security.capability (see capcache.h).
 */
#include "capcache.h"

#include <string.h>
#include <time.h>

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static unsigned slot_of(uint64_t ino) { return (unsigned)((ino * 0x9E3779B97F4A7C15ull) >> 54) % CAPCACHE_SLOTS; }

void capcache_init(struct capcache *cc, uint32_t ttl_ms)
{
	memset(cc, 0, sizeof(*cc));
	pthread_mutex_init(&cc->m, NULL);
	cc->ttl_ms = ttl_ms;
}

void capcache_destroy(struct capcache *cc) { pthread_mutex_destroy(&cc->m); }

bool capcache_absent(struct capcache *cc, uint64_t ino)
{
	if (cc->ttl_ms == 0)
		return false;
	unsigned k = slot_of(ino);
	pthread_mutex_lock(&cc->m);
	bool absent = cc->slot[k].ino == ino && cc->slot[k].until_ms > now_ms();
	pthread_mutex_unlock(&cc->m);
	return absent;
}

void capcache_note_absent(struct capcache *cc, uint64_t ino)
{
	if (cc->ttl_ms == 0)
		return;
	unsigned k = slot_of(ino);
	pthread_mutex_lock(&cc->m);
	cc->slot[k].ino = ino;
	cc->slot[k].until_ms = now_ms() + cc->ttl_ms;
	pthread_mutex_unlock(&cc->m);
}

void capcache_forget(struct capcache *cc, uint64_t ino)
{
	unsigned k = slot_of(ino);
	pthread_mutex_lock(&cc->m);
	if (cc->slot[k].ino == ino)
		cc->slot[k].until_ms = 0;
	pthread_mutex_unlock(&cc->m);
}

bool capcache_is_cap(const char *name) { return strcmp(name, "security.capability") == 0; }
