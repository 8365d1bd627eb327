/*
 * mdstore: the MDS's LevelDB database -- keys, records, transactions, counters.
 *
 * Every piece of MDS state is a LevelDB key (docs/ARCHITECTURE.md, "LevelDB
 * keys").  Keys start with a one-letter tag and carry integers big-endian so
 * they sort numerically; values are records encoded with the wire.h cursors
 * (little-endian), each starting with a format byte (MDSTORE_FORMAT) except
 * the fixed-size ones.  Record grammar:
 *
 *   V vol      -> u8 fmt | bytes name | u64 chunk_size | u32 replicas |
 *                 u64 root_ino | i64 created_s | u32 created_ns |
 *                 u32 extent_size (fmt 2)
 *   N name     -> u32 vol
 *   I vol ino  -> u8 fmt | u32 mode | u32 nlink | u32 uid | u32 gid | u32 rdev |
 *                 u64 size | u64 blocks | i64 atime_s | u32 atime_ns |
 *                 i64 mtime_s | u32 mtime_ns | i64 ctime_s | u32 ctime_ns |
 *                 u64 layer | u64 parent | bytes target | u32 flags (fmt 2)
 *                 (parent: a directory's parent, a snapshot's origin file,
 *                 0 for others; target: a symlink's target, empty for
 *                 others; flags: MD_INODE_*)
 *   D vol dir name -> u64 ino | u32 mode & S_IFMT
 *   X vol ino name -> raw xattr value
 *   L layer    -> u8 fmt | u64 parent | u32 flags (1: frozen) | u32 refcount |
 *                 u32 vol
 *   C layer idx -> u64 chunk id (0: HOLE)
 *   K chunk    -> u8 fmt | u32 version | u64 chunk_size | u64 base | u64 alloc |
 *                 u32 refcount | u32 vol | u8 nrep | nrep * u32 ds |
 *                 u32 extent | u64 own (fmt 2)
 *   Q vol origin snap -> u64 snapdir | bytes snapshot name (a file's snapshots)
 *   P vol ino  -> u64 flat layer | u64 frozen layer | u64 file layer | u64 size
 *                 (a flatten in progress, mds/flatten.h)
 *   S ds       -> u8 fmt | bytes uuid | bytes host | u16 port | u64 total |
 *                 u64 avail | u64 used | u64 nchunks
 *   G ds chunk -> empty
 *   O vol ino  -> empty
 *   R session seq -> u8 fmt | u16 type | u32 crc | i64 time_s (mds/dedup.c)
 *   M name [u32 vol] -> u64 counter ("vol", "layer", "chunk", "ds": next id;
 *                 "ino"+vol: next inode; "inodes"+vol: live inodes;
 *                 "chunks": live chunks; "vchunks"+vol: live chunks of a volume)
 *   (bytes = u32 length + bytes)
 *
 * Writes go through a transaction: reads inside it see its own pending writes
 * (an in-memory overlay), and commit is one LevelDB write batch with
 * sync = true, so an operation is on disk whole or not at all before its reply
 * is sent.  Iterators read committed state only.  The MDS is single-threaded:
 * there is at most one transaction at a time and no locking.
 *
 * A record that does not decode (short, bad format byte, a length over its
 * bound, bytes left over) is -EIO with a log line naming the key; it never
 * crashes the server.
 */
#ifndef VDIFS_MDSTORE_H
#define VDIFS_MDSTORE_H

#include "proto.h"
#include "wire.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MDSTORE_FORMAT 1
/* Volume, inode and chunk records carry trailing fields since format 2
 * (extent_size; flags; extent and own); format 1 records still decode. */
#define MDSTORE_FORMAT_EXT 2
/* Copy-on-write extent of a volume made before extents were a setting. */
#define MDSTORE_EXTENT_DEFAULT 4096u
/* Longest key: tag + u32 vol + u64 ino + a 255-byte name. */
#define MDSTORE_KEY_MAX (1 + 4 + 8 + VDIFS_NAME_MAX)
#define MDSTORE_VOLNAME_MAX 64

struct mdstore;
struct mdstore_txn;
struct mdstore_iter;

struct mdstore_key {
	size_t len;
	uint8_t b[MDSTORE_KEY_MAX];
};

struct md_time {
	int64_t s;
	uint32_t ns;
};

struct md_volume {
	uint32_t id;
	char name[MDSTORE_VOLNAME_MAX + 1];
	uint64_t chunk_size;
	uint32_t replicas;
	uint64_t root_ino;
	struct md_time created;
	uint32_t extent_size; /* copy-on-write extent of delta chunks */
};

struct md_inode {
	uint32_t vol;
	uint64_t ino;
	uint32_t mode, nlink, uid, gid, rdev;
	uint64_t size;
	uint64_t blocks; /* 512-byte units */
	struct md_time atime, mtime, ctime;
	uint64_t layer;  /* regular files: the writable layer */
	uint64_t parent; /* directories: the parent directory; snapshots: the origin */
	uint32_t flags;  /* MD_INODE_* */
	uint32_t target_len;
	char target[VDIFS_PATH_MAX + 1]; /* symlinks, NUL-terminated */
};

struct md_dirent {
	uint64_t ino;
	uint32_t mode; /* S_IFMT bits only */
};

/* MD_INODE_SNAPDIR: a directory's hidden snapshot directory (read-only,
 * entries are snapshots).  MD_INODE_SNAPSHOT: a read-only snapshot file. */
enum { MD_INODE_SNAPDIR = 1 << 0, MD_INODE_SNAPSHOT = 1 << 1 };

enum { MD_LAYER_FROZEN = 1 << 0 };

struct md_layer {
	uint64_t id;
	uint64_t parent; /* 0: none */
	uint32_t flags;
	uint32_t refcount;
	uint32_t vol;
};

struct md_chunk {
	uint64_t id;
	uint32_t version;
	uint64_t chunk_size;
	uint64_t base; /* delta chunks (issue 3); 0 otherwise */
	uint64_t alloc; /* bytes its content occupies on a replica, as last committed
			 * (a delta counts what it inherits) */
	uint64_t own;   /* bytes the chunk itself allocated (a delta's own extents) */
	uint32_t extent; /* a delta chunk's copy-on-write extent; 0 for a plain chunk */
	uint32_t refcount; /* layer entries pointing here */
	uint32_t vol;
	uint32_t nrep;
	uint32_t ds[VDIFS_MAX_REPLICAS]; /* ds[0] is the primary */
};

struct md_ds {
	uint32_t id;
	char uuid[VDIFS_NAME_MAX + 1];
	char host[VDIFS_NAME_MAX + 1];
	uint16_t port;
	uint64_t total, avail, used, nchunks;
};

/* ---- the database ---------------------------------------------------------- */

/* Opens (creating if missing) the LevelDB at path.  Returns 0 and *out, or
 * -errno with a message in err.  The caller closes it with mdstore_close(). */
int mdstore_open(const char *path, struct mdstore **out, char *err, size_t errlen);
void mdstore_close(struct mdstore *st);

/* Current wall-clock time (CLOCK_REALTIME, nanoseconds). */
void mdstore_now(struct md_time *t);

/* ---- keys ------------------------------------------------------------------ */
/* Each builder overwrites k.  A NULL/0-length name gives the prefix of all
 * keys under the integers given (e.g. every entry of one directory). */
void mdstore_key_volume(struct mdstore_key *k, uint32_t vol);
void mdstore_key_volname(struct mdstore_key *k, const char *name, size_t len);
void mdstore_key_inode(struct mdstore_key *k, uint32_t vol, uint64_t ino);
void mdstore_key_dirent(struct mdstore_key *k, uint32_t vol, uint64_t dir, const void *name,
			size_t len);
void mdstore_key_xattr(struct mdstore_key *k, uint32_t vol, uint64_t ino, const void *name,
		       size_t len);
void mdstore_key_layer(struct mdstore_key *k, uint64_t layer);
void mdstore_key_chunkent(struct mdstore_key *k, uint64_t layer, uint64_t index);
void mdstore_key_chunkent_prefix(struct mdstore_key *k, uint64_t layer);
void mdstore_key_chunk(struct mdstore_key *k, uint64_t chunk);
void mdstore_key_ds(struct mdstore_key *k, uint32_t ds);
void mdstore_key_gc(struct mdstore_key *k, uint32_t ds, uint64_t chunk);
void mdstore_key_gc_prefix(struct mdstore_key *k, uint32_t ds);
void mdstore_key_orphan(struct mdstore_key *k, uint32_t vol, uint64_t ino);
/* snap 0: the prefix of every snapshot of origin. */
void mdstore_key_snap(struct mdstore_key *k, uint32_t vol, uint64_t origin, uint64_t snap);
void mdstore_key_flatten(struct mdstore_key *k, uint32_t vol, uint64_t ino);
/* A one-letter tag alone: the prefix of every key of that kind ('V', 'S', 'O'...). */
void mdstore_key_tag(struct mdstore_key *k, char tag);
/* Tag + u32 vol: the prefix of one volume's keys of a per-volume kind (I, D, X, O). */
void mdstore_key_vol_prefix(struct mdstore_key *k, char tag, uint32_t vol);
/* "M" + name, then u32 vol when per_vol. */
void mdstore_key_counter(struct mdstore_key *k, const char *name, bool per_vol, uint32_t vol);

static inline uint32_t mdstore_be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}
static inline uint64_t mdstore_be64(const uint8_t *p)
{
	return (uint64_t)mdstore_be32(p) << 32 | mdstore_be32(p + 4);
}

/* ---- transactions -------------------------------------------------------- */

/* Starts a transaction; NULL when out of memory. */
struct mdstore_txn *mdstore_txn_begin(struct mdstore *st);
struct mdstore *mdstore_txn_store(struct mdstore_txn *t);
/* Reads a value as the transaction sees it.  Returns 0 with *val malloc'ed
 * (the caller frees it; NULL when the value is empty), -ENOENT, -EIO (LevelDB
 * error, logged) or -ENOMEM. */
int mdstore_txn_get(struct mdstore_txn *t, const struct mdstore_key *k, uint8_t **val, size_t *len);
/* 0 when the key exists, -ENOENT when not, -EIO / -ENOMEM. */
int mdstore_txn_exists(struct mdstore_txn *t, const struct mdstore_key *k);
/* Stage a write.  Failures (ENOMEM) are sticky and reported by commit. */
void mdstore_txn_put(struct mdstore_txn *t, const struct mdstore_key *k, const void *val, size_t len);
void mdstore_txn_del(struct mdstore_txn *t, const struct mdstore_key *k);
/* Writes every staged change in one synchronous batch and frees t.  Returns
 * 0, -EIO (LevelDB error, logged) or -ENOMEM (nothing written). */
int mdstore_txn_commit(struct mdstore_txn *t);
/* Drops every staged change and frees t; NULL is fine. */
void mdstore_txn_abort(struct mdstore_txn *t);
/* While set, fn(arg, t) is called by every commit of a transaction that
 * staged a change, before its batch is written: it may stage more (the
 * duplicate-request record of mds/dedup.c rides in the operation's own
 * batch this way).  fn NULL clears it. */
typedef void (*mdstore_commit_hook_fn)(void *arg, struct mdstore_txn *t);
void mdstore_set_commit_hook(struct mdstore *st, mdstore_commit_hook_fn fn, void *arg);

/* ---- iteration (committed state only) -------------------------------------- */

/* Iterates keys starting with prefix, from start (inclusive; NULL: from the
 * first).  Returns 0 and *out, or -ENOMEM. */
int mdstore_iter_open(struct mdstore *st, const struct mdstore_key *prefix,
		      const struct mdstore_key *start, struct mdstore_iter **out);
/* Returns 1 with the next key/value (borrowed until the next call), 0 at the
 * end, -EIO on a LevelDB error. */
int mdstore_iter_next(struct mdstore_iter *it, const uint8_t **key, size_t *klen, const uint8_t **val,
		      size_t *vlen);
void mdstore_iter_close(struct mdstore_iter *it);

/* ---- counters (key "M...") ---------------------------------------------- */

/* Reads a counter (missing: 0).  0 or -EIO. */
int mdstore_counter_get(struct mdstore_txn *t, const char *name, bool per_vol, uint32_t vol,
			uint64_t *out);
/* Adds delta (may be negative; clamps at 0) and stages the new value. */
int mdstore_counter_add(struct mdstore_txn *t, const char *name, bool per_vol, uint32_t vol,
			int64_t delta);
/* Hands out the next id of an id counter (first id: 1) and stages the bump. */
int mdstore_counter_next(struct mdstore_txn *t, const char *name, bool per_vol, uint32_t vol,
			 uint64_t *id);
void mdstore_counter_del(struct mdstore_txn *t, const char *name, bool per_vol, uint32_t vol);

/* ---- typed records ---------------------------------------------------------
 * get: 0, -ENOENT, -EIO (corrupt or LevelDB error), -ENOMEM.
 * put: stages the record (errors are sticky, reported by commit). */
int mdstore_get_volume(struct mdstore_txn *t, uint32_t vol, struct md_volume *out);
void mdstore_put_volume(struct mdstore_txn *t, const struct md_volume *v);
int mdstore_get_volname(struct mdstore_txn *t, const char *name, size_t len, uint32_t *vol);
int mdstore_get_inode(struct mdstore_txn *t, uint32_t vol, uint64_t ino, struct md_inode *out);
void mdstore_put_inode(struct mdstore_txn *t, const struct md_inode *i);
int mdstore_get_dirent(struct mdstore_txn *t, uint32_t vol, uint64_t dir, const void *name, size_t len,
		       struct md_dirent *out);
void mdstore_put_dirent(struct mdstore_txn *t, uint32_t vol, uint64_t dir, const void *name, size_t len,
			const struct md_dirent *d);
int mdstore_get_layer(struct mdstore_txn *t, uint64_t id, struct md_layer *out);
void mdstore_put_layer(struct mdstore_txn *t, const struct md_layer *l);
/* Chunk table entry: 0 and *chunk (0 = HOLE), or -ENOENT when the layer has
 * no entry for index. */
int mdstore_get_chunkent(struct mdstore_txn *t, uint64_t layer, uint64_t index, uint64_t *chunk);
void mdstore_put_chunkent(struct mdstore_txn *t, uint64_t layer, uint64_t index, uint64_t chunk);
int mdstore_get_chunk(struct mdstore_txn *t, uint64_t id, struct md_chunk *out);
void mdstore_put_chunk(struct mdstore_txn *t, const struct md_chunk *c);
int mdstore_get_ds(struct mdstore_txn *t, uint32_t id, struct md_ds *out);
void mdstore_put_ds(struct mdstore_txn *t, const struct md_ds *d);

/* Record codecs, for iterators (which hand out raw values).  decode returns
 * 0 or -EIO; the ids that live in the key are not touched. */
int mdstore_decode_volume(const uint8_t *p, size_t len, struct md_volume *out);
int mdstore_decode_inode(const uint8_t *p, size_t len, struct md_inode *out);
int mdstore_decode_dirent(const uint8_t *p, size_t len, struct md_dirent *out);
int mdstore_decode_layer(const uint8_t *p, size_t len, struct md_layer *out);
int mdstore_decode_chunk(const uint8_t *p, size_t len, struct md_chunk *out);
int mdstore_decode_ds(const uint8_t *p, size_t len, struct md_ds *out);
int mdstore_decode_chunkent(const uint8_t *p, size_t len, uint64_t *chunk);

/* The wire form of an inode's attributes. */
void mdstore_inode_attr(const struct md_inode *i, struct vdifs_attr *a);

#endif
