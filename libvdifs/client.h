/*
 * client: the vdifs client API, shared by the FUSE client (vdifs-mount) and
 * the tools (vdifs-admin, vdifs-snap, vdifs-clone).
 *
 * A struct vdifs_client owns one rpc_loop thread, one connection to the MDS
 * (replaced by a fresh one when it dies) and a pool of connections to data
 * servers keyed by host:port (up to VDIFS_DS_CONNS per server, used round
 * robin so parallel callers do not queue behind each other).  Every function
 * is thread-safe and blocks the calling thread; none may be called from the
 * rpc_loop thread.
 *
 * Metadata calls are typed wrappers around one MDS message each: they return
 * 0 (or a length) on success and -errno on failure; the reason (the server's
 * message or the transport error) stays readable with vdifs_last_error() in
 * the calling thread until its next failing call.
 *
 * File data never goes through the MDS: a struct vdifs_file caches the file's
 * chunk layout and reads and writes chunks directly on the data servers.
 * Size, mtime and allocation changes made by writes stay dirty in the client
 * (per inode, shared by every open of that inode in this client) until
 * vdifs_file_commit/fsync/close, and are overlaid on attributes this client
 * returns, so a writer sees its own writes at once (close-to-open between
 * clients, docs/ARCHITECTURE.md).
 */
#ifndef VDIFS_CLIENT_H
#define VDIFS_CLIENT_H

#include "proto.h"
#include "rpc.h"

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#define VDIFS_DS_CONNS 4                 /* connections per data server */
#define VDIFS_IO_UNIT (1u << 20)         /* largest DS_READ/DS_WRITE payload sent */
#define VDIFS_LAYOUT_WINDOW (1u << 20)   /* chunk indexes asked per LAYOUT call at first */
#define VDIFS_LAYOUT_MIN_WINDOW 1024     /* ... and at least, after E2BIG */
#define VDIFS_READDIR_PAGE 1024          /* entries asked per READDIR call */

struct vdifs_client;
struct vdifs_file;
struct vdifs_ds; /* a data server address with its connections (client-owned) */

/* ---- client ----------------------------------------------------------------- */

/* Starts the rpc_loop thread and a connection to the MDS at host:port (the
 * connection is made asynchronously: errors show on the first call).  auth is
 * copied.  name is told to servers for their logs (NULL: "client").  Returns
 * NULL with *err = -errno on failure. */
struct vdifs_client *vdifs_client_new(const char *host, uint16_t port, const struct rpc_auth *auth,
				      enum vdifs_role role, const char *name, int *err);
/* Closes every connection and stops the loop.  Open files must be closed. */
void vdifs_client_free(struct vdifs_client *c);
/* Timeout of one MDS call in ms (default 60000; 0: none). */
void vdifs_client_set_timeout(struct vdifs_client *c, uint32_t ms);
/* How long (ms) MDS calls wait through an MDS outage (connection refused,
 * reset or silent), reconnecting with a backoff of 100 ms growing to 1 s,
 * before they fail with EIO.  0 (the default): one immediate reconnect, then
 * the transport error; UINT32_MAX: forever.  Mutations are tagged (see
 * docs/protocol.md, seq tag) so a retry is applied once. */
void vdifs_client_set_mds_wait(struct vdifs_client *c, uint32_t ms);
/* How long (ms) a layout fetched from the MDS is trusted to say a chunk is a
 * hole before a read of that chunk fetches it again (default 1000). */
void vdifs_client_set_layout_ttl(struct vdifs_client *c, uint32_t ms);
/* How long (ms) a write, punch or fsync keeps retrying while replicas of
 * its chunk fail (a data server died: the MDS must mark it down before the
 * write can go on without it; or none is up), and a read while no replica
 * answers (unreachable, or not serving during an MDS outage), before it
 * fails with the last error (default VDIFS_IO_TIMEOUT_DEFAULT_MS). */
#define VDIFS_IO_TIMEOUT_DEFAULT_MS 60000u
void vdifs_client_set_io_timeout(struct vdifs_client *c, uint32_t ms);
/* Bytes of shared chunk blocks (a snapshot's or clone source's content,
 * which never changes) kept for every file of this client: a golden image
 * many clones read is fetched once (client_fcache.h).  Call before any
 * read; 0 (the default) turns it off.  0 or -ENOMEM. */
#define VDIFS_SHARED_CACHE_DEFAULT_MB 256u
int vdifs_client_set_shared_cache(struct vdifs_client *c, uint64_t bytes);
/* The cache's counters: false when there is no cache. */
bool vdifs_client_shared_cache_stats(struct vdifs_client *c, uint64_t *hits, uint64_t *fills, uint64_t *bytes);
/* The reason of the calling thread's last failed call ("" if none). */
const char *vdifs_last_error(void);

/* ---- volumes and cluster (admin role) --------------------------------------- */

struct vdifs_mount_info {
	uint32_t vol;
	uint64_t root_ino;
	uint64_t chunk_size;
	uint32_t replicas;
	uint64_t session;
};

/* Owned copies of the records an MDS lists. */
struct vdifs_vol_info {
	uint32_t vol;
	char name[VDIFS_NAME_MAX + 1];
	uint64_t chunk_size;
	uint32_t replicas;
	uint64_t root_ino;
	uint64_t inodes;
	int64_t created_s;
};

struct vdifs_ds_info {
	uint32_t ds_id;
	char uuid[VDIFS_NAME_MAX + 1];
	char host[VDIFS_NAME_MAX + 1];
	uint16_t port;
	bool up;
	uint64_t total, avail, used, nchunks;
	int64_t idle_ms;
};

/* Mounts volume: every later namespace and file call works in it. */
int vdifs_mount(struct vdifs_client *c, const char *volume, uint32_t flags,
		struct vdifs_mount_info *out);
/* info may be NULL. */
int vdifs_vol_create(struct vdifs_client *c, const char *name, uint64_t chunk_size,
		     uint32_t replicas, struct vdifs_vol_info *info);
int vdifs_vol_remove(struct vdifs_client *c, const char *name, uint32_t flags);
int vdifs_vol_set(struct vdifs_client *c, const char *name, const char *key, const char *value);
/* Calls fn once per volume; a non-zero return from fn stops and is returned. */
int vdifs_vol_list(struct vdifs_client *c, int (*fn)(void *arg, const struct vdifs_vol_info *v),
		   void *arg);
int vdifs_ds_list(struct vdifs_client *c, int (*fn)(void *arg, const struct vdifs_ds_info *d),
		  void *arg);
int vdifs_cluster_status(struct vdifs_client *c, struct msg_cluster_status_rep *out);
/* SCRUB (admin): every data server up starts a scrub pass at its next
 * heartbeat; *servers is how many. */
int vdifs_scrub(struct vdifs_client *c, uint32_t *servers);
int vdifs_statfs(struct vdifs_client *c, struct msg_statfs_rep *out);

/* ---- namespace (in the mounted volume) ---------------------------------------- */

/* Attributes returned by these calls already carry this client's dirty size,
 * mtime and blocks of the inode. */
int vdifs_lookup(struct vdifs_client *c, uint64_t parent, const char *name, struct vdifs_attr *out);
int vdifs_getattr(struct vdifs_client *c, uint64_t ino, struct vdifs_attr *out);

struct vdifs_setattr {
	uint32_t valid; /* VDIFS_SET_* */
	uint32_t mode, uid, gid;
	uint64_t size;
	struct timespec atime, mtime;
};
/* Applies sa.  A size change zeroes the tail of the new last chunk on the data
 * servers first and commits this client's dirty state of the inode; an explicit
 * mtime replaces the dirty mtime of earlier writes.  out may be NULL. */
int vdifs_setattr(struct vdifs_client *c, uint64_t ino, const struct vdifs_setattr *sa,
		  struct vdifs_attr *out);
/* mode carries the file type (S_IFREG, S_IFDIR, S_IFIFO ...). */
int vdifs_mknod(struct vdifs_client *c, uint64_t parent, const char *name, uint32_t mode,
		uint32_t rdev, uint32_t uid, uint32_t gid, struct vdifs_attr *out);
int vdifs_symlink(struct vdifs_client *c, uint64_t parent, const char *name, const char *target,
		  uint32_t uid, uint32_t gid, struct vdifs_attr *out);
int vdifs_link(struct vdifs_client *c, uint64_t ino, uint64_t newparent, const char *newname,
	       struct vdifs_attr *out);
int vdifs_unlink(struct vdifs_client *c, uint64_t parent, const char *name);
int vdifs_rmdir(struct vdifs_client *c, uint64_t parent, const char *name);
/* flags: RENAME_NOREPLACE / RENAME_EXCHANGE as renameat2(2). */
int vdifs_rename(struct vdifs_client *c, uint64_t parent, const char *name, uint64_t newparent,
		 const char *newname, uint32_t flags);
/* Copies the target NUL-terminated into buf; returns its length or -errno
 * (-ENAMETOOLONG when cap is too small). */
ssize_t vdifs_readlink(struct vdifs_client *c, uint64_t ino, char *buf, size_t cap);

/* One directory entry; name is NUL-terminated and valid during the callback. */
typedef int (*vdifs_dirent_fn)(void *arg, const char *name, const struct vdifs_attr *attr);
/* Calls fn for every entry of directory ino (pages of VDIFS_READDIR_PAGE);
 * a non-zero return from fn stops and is returned. */
int vdifs_readdir(struct vdifs_client *c, uint64_t ino, vdifs_dirent_fn fn, void *arg);

int vdifs_setxattr(struct vdifs_client *c, uint64_t ino, const char *name, const void *value,
		   size_t size, uint32_t flags);
/* Copies the value into buf and returns its size; with cap 0 only returns the
 * size; -ERANGE when cap is too small. */
ssize_t vdifs_getxattr(struct vdifs_client *c, uint64_t ino, const char *name, void *buf,
		       size_t cap);
/* Names as listxattr(2): each NUL-terminated, same size rules as getxattr. */
ssize_t vdifs_listxattr(struct vdifs_client *c, uint64_t ino, void *buf, size_t cap);
int vdifs_removexattr(struct vdifs_client *c, uint64_t ino, const char *name);

/* ---- files ---------------------------------------------------------------- */

/* Opens ino (OPEN to the MDS, then its layout).  flags are open(2) flags;
 * O_TRUNC truncates to 0.  attr (may be NULL) gets fresh attributes.  The
 * caller closes *out with vdifs_file_close. */
int vdifs_file_open(struct vdifs_client *c, uint64_t ino, uint32_t flags, struct vdifs_file **out,
		    struct vdifs_attr *attr);
/* Commits, sends RELEASE and frees f (even on error: the first error is returned). */
int vdifs_file_close(struct vdifs_file *f);
uint64_t vdifs_file_ino(const struct vdifs_file *f);
/* The size as this client knows it (its own writes included). */
uint64_t vdifs_file_size(struct vdifs_file *f);

/* Returns the bytes read (short only at end of file) or -errno.  Chunks that
 * do not exist read as zeros. */
ssize_t vdifs_file_pread(struct vdifs_file *f, void *buf, size_t len, uint64_t off);
/* Returns len or -errno: all replicas have the bytes when it returns.  buf is
 * sent by reference (no copy) and only read. */
ssize_t vdifs_file_pwrite(struct vdifs_file *f, const void *buf, size_t len, uint64_t off);
/* Sends this client's dirty size, mtime and allocation of the inode (COMMIT). */
int vdifs_file_commit(struct vdifs_file *f);
/* DS_SYNC on every chunk written since the last sync, then commit. */
int vdifs_file_fsync(struct vdifs_file *f);

/* ---- snapshots and clones (client_snap.c) ------------------------------------ */
/* Each is one MDS call, O(1) in the file's size.  Before freezing a file's
 * content the caller commits its dirty size (vdifs_inode_commit); after,
 * vdifs_inode_frozen (the source's cached chunks became an ancestor's) or
 * vdifs_inode_reload (a file's content was replaced). */

/* A snapshot snap of the file name in directory parent; out (may be NULL):
 * the snapshot's attributes.  0 or -errno (-EEXIST, -EMLINK: depth limit). */
int vdifs_snap_create(struct vdifs_client *c, uint64_t parent, const char *name, const char *snap,
		      struct vdifs_attr *out);
int vdifs_snap_delete(struct vdifs_client *c, uint64_t parent, const char *name, const char *snap);
/* The file's content becomes snapshot snap's; out: the file's attributes. */
int vdifs_snap_revert(struct vdifs_client *c, uint64_t parent, const char *name, const char *snap,
		      struct vdifs_attr *out);
/* Calls fn for each snapshot of file ino (its name and attributes). */
int vdifs_snap_list(struct vdifs_client *c, uint64_t ino,
		    int (*fn)(void *arg, const char *name, const struct vdifs_attr *a), void *arg);
/* A clone of src: into the empty file dst when dst != 0, else as the new
 * file name in parent (owned by uid, gid).  out (may be NULL): its attributes. */
int vdifs_clone(struct vdifs_client *c, uint64_t src, uint64_t dst, uint64_t parent, const char *name,
		uint32_t uid, uint32_t gid, struct vdifs_attr *out);
/* Space of file ino: size, allocated, owned and shared bytes, depth... */
int vdifs_file_info(struct vdifs_client *c, uint64_t ino, struct msg_file_info_rep *out);

/* The inheritance tree of file ino's layers (mds/tree.h): fn for each node
 * from number skip on, as many as one reply holds (*count: how many; ask
 * again from skip + *count until 0). */
int vdifs_file_tree(struct vdifs_client *c, uint64_t ino, uint32_t skip,
		    int (*fn)(void *arg, const struct msg_tree_node *n), void *arg, uint32_t *count);

/* Flattening file ino (mds/flatten.h): begin (out->flat: nothing to do;
 * out->chunks: indexes to copy), copy the chunks of index windows (each new
 * chunk copied on the data servers themselves; an alloc record per chunk
 * appended to allocs), then end (abandon: throw the copy away).  The end is
 * -EBUSY when the file changed meanwhile.  The caller reloads the file. */
int vdifs_flatten_begin(struct vdifs_client *c, uint64_t ino, struct msg_flatten_rep *out);
int vdifs_flatten_copy(struct vdifs_client *c, uint64_t ino, uint64_t first, uint32_t max, struct wbuf *allocs,
		       uint32_t *nallocs);
int vdifs_flatten_end(struct vdifs_client *c, uint64_t ino, bool abandon, const struct wbuf *allocs,
		      uint32_t nallocs, struct vdifs_attr *out);

/* Commits the dirty size, mtime and allocation of ino if this client has it open. */
int vdifs_inode_commit(struct vdifs_client *c, uint64_t ino);
/* ino's cached chunks may no longer be written (its content was frozen). */
void vdifs_inode_frozen(struct vdifs_client *c, uint64_t ino);
/* Drops ino's cached layout and dirty state and fetches them again. */
int vdifs_inode_reload(struct vdifs_client *c, uint64_t ino);
/* Deallocates [off, off+len): the range reads as zeros, the size is unchanged. */
int vdifs_file_punch(struct vdifs_file *f, uint64_t off, uint64_t len);
/* Sets the size (shrinking zeroes the tail of the new last chunk first). */
int vdifs_file_truncate(struct vdifs_file *f, uint64_t size);
/* lseek(2) SEEK_DATA / SEEK_HOLE: the offset, or -ENXIO / -errno. */
int64_t vdifs_file_seek(struct vdifs_file *f, uint64_t off, int whence);

/* ---- building blocks (exposed for unit tests) ------------------------------- */

/* One piece of a byte range that stays inside one chunk. */
struct vdifs_span {
	uint64_t index;  /* chunk index */
	uint32_t off;    /* offset inside the chunk */
	uint32_t len;
	uint64_t pos;    /* offset of the piece from the start of the range */
};

/* Splits [off, off+len) at chunk boundaries and into pieces of at most unit
 * bytes (unit 0: no limit but the chunk).  Writes up to cap spans to out and
 * returns how many the range needs (so a first call with cap 0 sizes out).
 * chunk_size must be a power of two no larger than 4 GiB. */
size_t vdifs_span_split(uint64_t off, uint64_t len, uint64_t chunk_size, uint32_t unit,
			struct vdifs_span *out, size_t cap);

/* A cached chunk of a file: identity and where its replicas live. */
struct vdifs_chunk {
	uint64_t index;
	uint64_t chunk_id;
	uint32_t version;
	uint32_t flags;      /* VDIFS_CHUNK_HOLE: the range is a hole */
	uint32_t nrep;
	struct vdifs_ds *rep[VDIFS_MAX_REPLICAS]; /* rep[0] is the primary */
	/* A delta chunk: its copy-on-write extent and chain of bases (nbase
	 * base_ref records as on the wire, nearest first); 0 for plain chunks. */
	uint32_t extent;
	uint32_t nbase;
	uint8_t bases[(VDIFS_DEPTH_MAX - 1) * VDIFS_BASE_REF_LEN];
	/* client state */
	bool writable;       /* CHUNK_ALLOC answered for it: writes may go there */
	bool unsynced;       /* written since the last DS_SYNC */
	bool alloc_dirty;    /* alloc not yet sent in a COMMIT */
	bool alloc_known;    /* alloc_base is meaningful */
	uint64_t alloc;      /* allocated bytes as a data server last reported */
	uint64_t own;        /* of which the chunk's own (a delta's written extents) */
	uint64_t alloc_base; /* what the MDS is believed to count for the chunk */
};

/* A file's chunk layout: entries sorted by index, one per index. */
struct vdifs_layout {
	struct vdifs_chunk *v;
	size_t n, cap;
};

void vdifs_layout_init(struct vdifs_layout *l);
void vdifs_layout_free(struct vdifs_layout *l);
/* The entry for index, or NULL (pointer valid until the layout changes). */
struct vdifs_chunk *vdifs_layout_get(struct vdifs_layout *l, uint64_t index);
/* The first entry with index >= from that is not a hole, or NULL. */
struct vdifs_chunk *vdifs_layout_next(struct vdifs_layout *l, uint64_t from);
/* Inserts or replaces the entry for ch->index.  0 or -ENOMEM. */
int vdifs_layout_put(struct vdifs_layout *l, const struct vdifs_chunk *ch);
/* Removes the entries with first <= index < first + count. */
void vdifs_layout_remove(struct vdifs_layout *l, uint64_t first, uint64_t count);
/* Replaces the content of l by fresh (consumed, left empty), keeping the
 * client state (writable, unsynced, alloc) of entries whose chunk id and
 * version did not change. */
void vdifs_layout_replace(struct vdifs_layout *l, struct vdifs_layout *fresh);

/* Data-server part of a seek: within chunk ch, from offset off, finds the
 * first data (whence VDIFS_SEEK_DATA) or hole (VDIFS_SEEK_HOLE) byte.
 * Returns 1 with *res set, 0 when there is none up to the chunk's end, or
 * -errno. */
typedef int (*vdifs_chunk_seek_fn)(void *arg, const struct vdifs_chunk *ch, uint32_t off,
				   int whence, uint32_t *res);
/* lseek(2) SEEK_DATA/SEEK_HOLE (whence as lseek) over a layout of a file of size bytes: chunks
 * absent from the layout or marked holes are holes, the others are asked
 * through fn.  lock (may be NULL) guards l and is not held while fn runs.
 * Returns the offset, -ENXIO, or -errno from fn. */
int64_t vdifs_seek_layout(struct vdifs_layout *l, pthread_mutex_t *lock, uint64_t chunk_size,
			  uint64_t size, uint64_t off, int whence, vdifs_chunk_seek_fn fn, void *arg);

/* FSCK (admin): the MDS checks its store, with data also against the chunk
 * lists of the data servers up (missing and orphan replicas; the call waits
 * for them, up to a minute), and with repair fixes what is safe
 * (docs/OPERATIONS.md).  Calls kind once per kind of inconsistency found
 * and item once per reported line (the MDS sends at most
 * VDIFS_FSCK_ITEMS_MAX; the counts are whole); either may be NULL.  0 with
 * *sum filled, or -errno (a transport or MDS error, or a malformed reply). */
struct vdifs_fsck_summary {
	uint64_t keys, found, repaired;
};
int vdifs_fsck(struct vdifs_client *c, bool repair, bool data, struct vdifs_fsck_summary *sum,
	       void (*kind)(void *arg, const char *name, uint64_t found, uint64_t repaired),
	       void (*item)(void *arg, bool repaired, const char *line), void *arg);

#endif
