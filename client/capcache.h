/*
 * capcache: inodes known, for a short while, to have no security.capability
 * extended attribute.  The kernel asks a FUSE file system for it before
 * every write (to drop a file's capabilities, as it drops suid bits), while
 * holding the file's lock: answering from the MDS each time put a metadata
 * round trip inside every write, and serialised the writes to one file.
 * A capability set by another mount shows within ttl, as attributes do
 * (attr_timeout); one set or removed through this mount at once.
 */
#ifndef VDIFS_MOUNT_CAPCACHE_H
#define VDIFS_MOUNT_CAPCACHE_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#define CAPCACHE_SLOTS 1024u /* direct-mapped by inode */

struct capcache {
	pthread_mutex_t m;
	uint32_t ttl_ms; /* 0: nothing is cached */
	struct {
		uint64_t ino;
		uint64_t until_ms; /* monotonic */
	} slot[CAPCACHE_SLOTS];
};

void capcache_init(struct capcache *cc, uint32_t ttl_ms);
void capcache_destroy(struct capcache *cc);
/* True when ino is known to have no security.capability now. */
bool capcache_absent(struct capcache *cc, uint64_t ino);
/* The MDS said ino has none. */
void capcache_note_absent(struct capcache *cc, uint64_t ino);
/* ino's security attributes changed: ask again. */
void capcache_forget(struct capcache *cc, uint64_t ino);
/* Whether name is the attribute the cache answers for. */
bool capcache_is_cap(const char *name);

#endif
