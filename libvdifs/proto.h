/*
 * proto: the vdifs message catalogue and its codecs.
 *
 * Every message payload is a record: a fixed sequence of fields described once
 * in an X-macro list below.  From that list proto.c generates the C struct,
 * an encoder and a bounds-checked decoder, so a field cannot be added to one
 * side and forgotten on the other.  docs/protocol.md is the human-readable
 * form of this file; keep them in step.
 *
 * Field kinds and their bounds on decode:
 *   U8 U16 U32 U64 I64   little-endian integers
 *   NONCE                16 raw bytes          PROOF  32 raw bytes
 *   NAME                 u32 len + bytes, len <= VDIFS_NAME_MAX (a file name)
 *   PATH                 u32 len + bytes, len <= VDIFS_PATH_MAX (symlink target)
 *   VALUE                u32 len + bytes, len <= VDIFS_XATTR_MAX
 *   BLOB                 u32 len + bytes, len <= VDIFS_BLOB_MAX (nested records)
 *   DATA                 u32 len + bytes, len <= VDIFS_DATA_MAX; always the last
 *                        field, so a sender may append the bytes without a copy
 *   ATTR                 a nested struct vdifs_attr
 * Decoded byte strings point into the frame buffer.  A decoder returns 0, or
 * -EBADMSG when a field is short, a length is over its bound, or bytes are
 * left over.
 */
#ifndef VDIFS_PROTO_H
#define VDIFS_PROTO_H

#include "wire.h"

#include <stdbool.h>
#include <stdint.h>

#define VDIFS_PROTO_MAGIC 0x53464456u /* "VDFS" little-endian */
#define VDIFS_PROTO_VERSION 1
#define VDIFS_FRAME_HDR_LEN 24
#define VDIFS_REPLY_BIT 0x8000u

#define VDIFS_NAME_MAX 255
#define VDIFS_PATH_MAX 4095
#define VDIFS_XATTR_MAX 65536
#define VDIFS_BLOB_MAX (4u << 20)
#define VDIFS_DATA_MAX (4u << 20)
#define VDIFS_MAX_REPLICAS 8
/* Most layers in a file's chain (its own and its frozen ancestors), and so
 * most base chunks under a delta chunk.  A snapshot or clone that would go
 * deeper is refused with EMLINK ("depth limit reached"). */
#define VDIFS_DEPTH_MAX 32
/* Reserved name of the hidden snapshot directory of every directory. */
#define VDIFS_SNAPDIR_NAME ".snap"
/* Default bound on a frame payload; servers may configure a different one. */
#define VDIFS_DEFAULT_MAX_PAYLOAD ((4u << 20) + 65536u)

/* Roles a peer declares in HELLO. */
enum vdifs_role { VDIFS_ROLE_CLIENT = 1, VDIFS_ROLE_DS = 2, VDIFS_ROLE_ADMIN = 3 };

/* Message types (requests).  A reply carries type | VDIFS_REPLY_BIT. */
#define VDIFS_MSG_TYPES(X)                                                   \
	X(HELLO, 1) X(AUTH, 2)                                               \
	X(VOL_CREATE, 16) X(VOL_LIST, 17) X(VOL_REMOVE, 18) X(VOL_SET, 19)   \
	X(MOUNT, 20) X(STATFS, 21) X(DS_LIST, 22) X(CLUSTER_STATUS, 23)      \
	X(SCRUB, 24)      \
	X(FSCK, 31)                                                          \
	X(LOOKUP, 32) X(GETATTR, 33) X(SETATTR, 34) X(MKNOD, 35)             \
	X(SYMLINK, 36) X(LINK, 37) X(UNLINK, 38) X(RMDIR, 39) X(RENAME, 40)  \
	X(READLINK, 41) X(READDIR, 42) X(SETXATTR, 43) X(GETXATTR, 44)       \
	X(LISTXATTR, 45) X(REMOVEXATTR, 46) X(OPEN, 47) X(RELEASE, 48)       \
	X(LAYOUT, 64) X(CHUNK_ALLOC, 65) X(CHUNK_DROP, 66) X(COMMIT, 67)     \
	X(SNAP_CREATE, 68) X(SNAP_LIST, 69) X(SNAP_DELETE, 70)              \
	X(SNAP_REVERT, 71) X(CLONE, 72) X(FILE_INFO, 73) X(FILE_TREE, 74)   \
	X(FLATTEN_BEGIN, 75) X(FLATTEN_CHUNKS, 76) X(FLATTEN_END, 77)       \
	X(CHUNK_REPAIR, 78)                                                  \
	X(DS_REGISTER, 80) X(DS_HEARTBEAT, 81) X(DS_CHUNK_REPORT, 82)        \
	X(DS_WRITE, 96) X(DS_READ, 97) X(DS_PUNCH, 98) X(DS_SYNC, 99)        \
	X(DS_SEEK, 100) X(DS_STAT, 101) X(DS_DELETE, 102) X(DS_COPY, 103)   \
	X(DS_RECV, 104) X(DS_SET_VERSION, 105)

enum vdifs_msg_type {
#define VDIFS_ENUM(name, num) VDIFS_MSG_##name = num,
	VDIFS_MSG_TYPES(VDIFS_ENUM)
#undef VDIFS_ENUM
};

/* Name of a message type for logs ("LOOKUP"); "?" when unknown. */
const char *proto_msg_name(uint16_t type);

/* ---- nested records --------------------------------------------------- */

/* POSIX attributes of an inode as the MDS reports them. */
#define REC_attr(F)                                                          \
	F(U64, ino) F(U32, mode) F(U32, nlink) F(U32, uid) F(U32, gid)       \
	F(U32, rdev) F(U64, size) F(U64, blocks) F(I64, atime_s)             \
	F(U32, atime_ns) F(I64, mtime_s) F(U32, mtime_ns) F(I64, ctime_s)    \
	F(U32, ctime_ns) F(U64, layer)

/* Where one replica of a chunk lives. */
#define REC_replica(F) F(U32, ds_id) F(NAME, host) F(U16, port)

/* One chunk a delta chunk inherits from (VDIFS_BASE_REF_LEN bytes). */
#define REC_base_ref(F) F(U64, chunk_id) F(U32, version)
#define VDIFS_BASE_REF_LEN 12

/* One chunk of a file: index in the file, identity, and replicas (BLOB of
 * replica records, nrep of them, the first is the primary).  A delta chunk
 * (copy-on-write over the chunk an ancestor layer holds at the same index)
 * has extent > 0, its copy-on-write extent size, and its chain of bases:
 * nbase base_ref records, the nearest first (at most VDIFS_DEPTH_MAX - 1).
 * A plain chunk has extent 0 and no bases. */
#define REC_chunk_loc(F)                                                     \
	F(U64, index) F(U64, chunk_id) F(U32, version) F(U32, flags)         \
	F(U32, nrep) F(BLOB, replicas) F(U32, extent) F(U32, nbase)          \
	F(BLOB, bases)

/* A volume and its settings. */
#define REC_vol_info(F)                                                      \
	F(U32, vol) F(NAME, name) F(U64, chunk_size) F(U32, replicas)        \
	F(U64, root_ino) F(U64, inodes) F(I64, created_s) F(U32, extent_size)

/* One directory entry with the child's attributes. */
#define REC_dirent(F) F(NAME, name) F(ATTR, attr)

/* Allocated bytes of one chunk as a data server reported them to a client:
 * bytes the chunk's content occupies (a delta counts the data it inherits)
 * and bytes it owns (a delta's own extents; = bytes for a plain chunk). */
#define REC_alloc(F) F(U64, index) F(U64, chunk_id) F(U64, bytes) F(U64, own)

/* A data server as the MDS sees it. */
#define REC_ds_info(F)                                                       \
	F(U32, ds_id) F(NAME, uuid) F(NAME, host) F(U16, port) F(U8, up)     \
	F(U64, total) F(U64, avail) F(U64, used) F(U64, nchunks)             \
	F(I64, idle_ms)

/* ---- handshake --------------------------------------------------------- */
#define REC_hello_req(F) F(U8, role) F(NONCE, nonce) F(NAME, name)
#define REC_hello_rep(F) F(NONCE, nonce) F(PROOF, proof)
#define REC_auth_req(F) F(PROOF, proof)

/* Error replies carry a human-readable reason (the status is in the header). */
#define REC_error_rep(F) F(PATH, message)

/* ---- volumes and cluster (admin) -------------------------------------- */
#define REC_vol_create_req(F) F(NAME, name) F(U64, chunk_size) F(U32, replicas)
#define REC_vol_name_req(F) F(NAME, name)
#define REC_vol_remove_req(F) F(NAME, name) F(U32, flags)
#define REC_vol_set_req(F) F(NAME, name) F(NAME, key) F(NAME, value)
#define REC_list_rep(F) F(U32, count) F(BLOB, items)
#define REC_mount_req(F) F(NAME, volume) F(U32, flags)
#define REC_mount_rep(F)                                                     \
	F(U32, vol) F(U64, root_ino) F(U64, chunk_size) F(U32, replicas)     \
	F(U64, session)
#define REC_vol_req(F) F(U32, vol)
#define REC_statfs_rep(F)                                                    \
	F(U64, total) F(U64, free) F(U64, avail) F(U64, files) F(U64, ffree) \
	F(U32, bsize) F(U32, namemax)
/* under: chunks with fewer replicas on servers that are up than their
 * volume asks; lost: chunks with none. */
/* recovering: copies under way; recovered: copies taken into replica sets
 * since the MDS started. */
#define REC_cluster_status_rep(F)                                            \
	F(U32, volumes) F(U32, ds_up) F(U32, ds_total) F(U64, chunks)        \
	F(U64, total) F(U64, avail) F(U64, used) F(U64, under) F(U64, lost)  \
	F(U32, recovering) F(U64, recovered)

/* ---- fsck and retried mutations (issue 4) ------------------------------ */
/* FSCK (admin): checks the MDS's own state; flags VDIFS_FSCK_REPAIR fixes
 * what is safe.  Reply: per-kind counts (fsck_count) and the first findings
 * as lines (fsck_item; at most VDIFS_FSCK_ITEMS_MAX, the counts are whole). */
#define REC_fsck_req(F) F(U32, flags)
#define REC_fsck_count(F) F(NAME, kind) F(U64, found) F(U64, repaired)
#define REC_fsck_item(F) F(U8, repaired) F(PATH, line)
#define REC_fsck_rep(F)                                                      \
	F(U64, keys) F(U64, found) F(U64, repaired) F(U32, nkinds)           \
	F(BLOB, kinds) F(U32, count) F(BLOB, items)
#define VDIFS_FSCK_ITEMS_MAX 2000
/* VDIFS_FSCK_DATA: compare with the data servers' chunk lists too: the first
 * such call asks every data server up for its list and answers EAGAIN, as
 * do the calls until every list is in (the tool retries). */
enum { VDIFS_FSCK_REPAIR = 1 << 0, VDIFS_FSCK_DATA = 1 << 1 };
/* A request whose type has VDIFS_SEQ_BIT set carries a seq_tag
 * (VDIFS_SEQ_TAG_LEN bytes) after its record: session (random, non-zero,
 * fixed for the client's life), seq (numbers its tagged requests) and acked
 * (lowest seq it may still retry).  The MDS applies a tagged mutation once:
 * a retry of an applied one is answered from the current state.  The reply
 * carries the plain type | VDIFS_REPLY_BIT. */
#define VDIFS_SEQ_BIT 0x4000u
/* Whether a tagged request of this type is applied exactly once (the
 * namespace, attribute, xattr, snapshot and clone mutations). */
bool proto_msg_exactly_once(uint16_t type);
#define REC_seq_tag(F) F(U64, session) F(U64, seq) F(U64, acked)
#define VDIFS_SEQ_TAG_LEN 24

/* ---- namespace ----------------------------------------------------------- */
#define REC_lookup_req(F) F(U32, vol) F(U64, parent) F(NAME, name)
#define REC_ino_req(F) F(U32, vol) F(U64, ino)
#define REC_attr_rep(F) F(ATTR, attr)
#define REC_setattr_req(F)                                                   \
	F(U32, vol) F(U64, ino) F(U32, valid) F(U32, mode) F(U32, uid)       \
	F(U32, gid) F(U64, size) F(I64, atime_s) F(U32, atime_ns)            \
	F(I64, mtime_s) F(U32, mtime_ns)
#define REC_mknod_req(F)                                                     \
	F(U32, vol) F(U64, parent) F(NAME, name) F(U32, mode) F(U32, rdev)   \
	F(U32, uid) F(U32, gid)
#define REC_symlink_req(F)                                                   \
	F(U32, vol) F(U64, parent) F(NAME, name) F(PATH, target)             \
	F(U32, uid) F(U32, gid)
#define REC_link_req(F) F(U32, vol) F(U64, ino) F(U64, newparent) F(NAME, newname)
#define REC_rename_req(F)                                                    \
	F(U32, vol) F(U64, parent) F(NAME, name) F(U64, newparent)           \
	F(NAME, newname) F(U32, flags)
#define REC_readlink_rep(F) F(PATH, target)
#define REC_readdir_req(F) F(U32, vol) F(U64, ino) F(NAME, after) F(U32, max)
#define REC_readdir_rep(F) F(U8, eof) F(U32, count) F(BLOB, items)
#define REC_setxattr_req(F)                                                  \
	F(U32, vol) F(U64, ino) F(NAME, name) F(VALUE, value) F(U32, flags)
#define REC_xattr_req(F) F(U32, vol) F(U64, ino) F(NAME, name)
#define REC_xattr_rep(F) F(VALUE, value)
#define REC_open_req(F) F(U32, vol) F(U64, ino) F(U32, flags)

/* ---- snapshots and clones ------------------------------------------------ */
/* SNAP_CREATE, SNAP_DELETE, SNAP_REVERT: the file name in directory
 * parent, and the snapshot's name.  A snapshot lives in the directory's
 * hidden VDIFS_SNAPDIR_NAME directory as "<name>@<snap>". */
#define REC_snap_req(F) F(U32, vol) F(U64, parent) F(NAME, name) F(NAME, snap)
/* CLONE: src (a file or a snapshot) into dst when dst != 0 (an empty
 * regular file), else into a new file name in parent. */
#define REC_clone_req(F)                                                     \
	F(U32, vol) F(U64, src) F(U64, dst) F(U64, parent) F(NAME, name)     \
	F(U32, uid) F(U32, gid)
/* FILE_INFO reply: space of a file on one replica. */
#define REC_file_info_rep(F)                                                 \
	F(U64, size) F(U64, allocated) F(U64, owned) F(U64, shared)          \
	F(U32, depth) F(U32, snapshots) F(U64, layer) F(U64, origin)
/* FILE_TREE items: one node of the inheritance tree of a file's layers.
 * kind 1: a file's writable layer, 2: a snapshot, 3: a frozen layer with no
 * inode of its own; ino 0 for kind 3. */
#define REC_tree_node(F)                                                     \
	F(U64, layer) F(U64, parent) F(U8, kind) F(U64, ino) F(U64, size)    \
	F(U64, owned)
/* FILE_TREE request: the tree holding file ino, nodes from number skip on
 * (a reply carries at most what fits a frame; the caller asks again). */
#define REC_tree_req(F) F(U32, vol) F(U64, ino) F(U32, skip)
/* FLATTEN_BEGIN reply: chunks: indexes to copy run over [0, chunks); flat 1
 * when the file has no ancestors and no delta chunk (nothing to do). */
#define REC_flatten_rep(F) F(U8, flat) F(U64, chunks)
/* FLATTEN_CHUNKS: for each index in [first, first + max) the frozen content
 * holds, a plain chunk of the flattened layer; the reply is a list_rep of
 * pairs of chunk_loc records: the new chunk, then the source (with its
 * chain) it is copied from on the same servers. */
#define REC_flatten_chunks_req(F) F(U32, vol) F(U64, ino) F(U64, first) F(U32, max)
/* FLATTEN_END: flags 1 aborts; items: alloc records of the copies made. */
#define REC_flatten_end_req(F)                                               \
	F(U32, vol) F(U64, ino) F(U32, flags) F(U32, count) F(BLOB, items)

/* ---- file layout (metadata only: the MDS never carries file data) -------- */
#define REC_layout_req(F) F(U32, vol) F(U64, ino) F(U64, first) F(U32, max)
#define REC_chunk_alloc_req(F) F(U32, vol) F(U64, ino) F(U64, index)
#define REC_chunk_drop_req(F) F(U32, vol) F(U64, ino) F(U64, first) F(U64, count)
/* CHUNK_REPAIR: a write, punch or sync of chunk chunk_id (at version) of
 * file ino failed on a replica.  The MDS drops the replicas on servers it
 * has marked down, bumps the version and answers the chunk_loc to retry
 * with; EAGAIN while every replica is up (a transient failure: retry as
 * is) or none is (nothing to write to yet); ESTALE when the file no longer
 * has that chunk at index. */
#define REC_chunk_repair_req(F)                                              \
	F(U32, vol) F(U64, ino) F(U64, index) F(U64, chunk_id) F(U32, version)
#define REC_commit_req(F)                                                    \
	F(U32, vol) F(U64, ino) F(U32, flags) F(U64, size) F(I64, mtime_s)   \
	F(U32, mtime_ns) F(U32, count) F(BLOB, items)

/* ---- data servers and the MDS --------------------------------------------- */
#define REC_ds_register_req(F)                                               \
	F(NAME, uuid) F(NAME, host) F(U16, port) F(U64, total) F(U64, avail) \
	F(U64, used) F(U64, nchunks)
/* lease_ms: how long after sending a heartbeat that was answered the
 * server may serve I/O (shorter than the MDS's ds_timeout, so a server cut
 * off from the MDS stops serving before the MDS marks it down). */
#define REC_ds_register_rep(F) F(U32, ds_id) F(U32, heartbeat_ms) F(U32, lease_ms)
/* Re-replication (docs/ARCHITECTURE.md, "Failures"): the MDS hands a
 * server that holds a chunk the task of copying it to server dst (in the
 * heartbeat reply); the server reports the copy made (repl_done, in a later
 * heartbeat: status 0 or an errno), and the MDS answers whether it took the
 * copy into the replica set, with the chunk's new version (repl_commit;
 * version 0: refused, the copy must go). */
#define REC_repl_task(F)                                                     \
	F(U64, chunk_id) F(U32, version) F(U32, dst) F(NAME, host) F(U16, port)
#define REC_repl_done(F) F(U64, chunk_id) F(U32, version) F(U32, dst) F(U32, status)
#define REC_repl_commit(F) F(U64, chunk_id) F(U32, dst) F(U32, version)
/* corrupt: u64 ids of chunks whose copy here failed a CRC check (a read,
 * a copy, the scrubber), ncorrupt of them: the MDS replaces that copy.
 * scrub: the MDS's scrub request counter; a server that sees it go up
 * starts a scrub pass at once (vdifs-admin scrub).  report: the same for
 * chunk lists (vdifs-admin fsck): send one (DS_CHUNK_REPORT, CHECK). */
#define REC_ds_heartbeat_req(F)                                              \
	F(U32, ds_id) F(U64, total) F(U64, avail) F(U64, used)               \
	F(U64, nchunks) F(U32, count) F(BLOB, deleted) F(U32, ndone)         \
	F(BLOB, done) F(U32, ncorrupt) F(BLOB, corrupt)
#define REC_ds_heartbeat_rep(F)                                              \
	F(U32, count) F(BLOB, delete_ids) F(U32, ntask) F(BLOB, tasks)       \
	F(U32, ncommit) F(BLOB, commits) F(U32, scrub) F(U32, report)
/* SCRUB (admin) reply: data servers that will start a pass (those up). */
#define REC_scrub_rep(F) F(U32, servers)
/* DS_CHUNK_REPORT, after DS_REGISTER: the chunks the server holds, count
 * chunk_version records per message; flags 1 on the last one.  The reply
 * (a ds_heartbeat_rep) lists those to delete now (unknown to the MDS, not
 * on this server any more, or stale).  Until its last report is answered
 * a server is not used for placement and serves no I/O. */
#define REC_chunk_version(F) F(U64, chunk_id) F(U32, version)
#define VDIFS_CHUNK_VERSION_LEN 12
#define REC_ds_report_req(F) F(U32, ds_id) F(U32, flags) F(U32, count) F(BLOB, items)

/* ---- chunk I/O on data servers ------------------------------------------- */
/* fwd: replica records the receiver must forward the operation to (empty on
 * a forwarded copy).  chunk_size fixes the chunk's geometry at creation. */
/* extent, nbase, bases: as in chunk_loc (a delta chunk and its chain). */
#define REC_ds_write_req(F)                                                  \
	F(U64, chunk_id) F(U32, version) F(U32, flags) F(U64, chunk_size)    \
	F(U32, extent) F(U32, nbase) F(BLOB, bases)                          \
	F(U32, offset) F(U32, nfwd) F(BLOB, fwd) F(DATA, data)
#define REC_ds_io_rep(F) F(U64, alloc) F(U64, own)
#define REC_ds_read_req(F)                                                   \
	F(U64, chunk_id) F(U32, version) F(U32, nbase) F(BLOB, bases)        \
	F(U32, offset) F(U32, length)
#define REC_ds_read_rep(F) F(DATA, data)
#define REC_ds_punch_req(F)                                                  \
	F(U64, chunk_id) F(U32, version) F(U32, flags) F(U64, chunk_size)    \
	F(U32, extent) F(U32, nbase) F(BLOB, bases)                          \
	F(U32, offset) F(U32, length) F(U32, nfwd) F(BLOB, fwd)
#define REC_ds_sync_req(F) F(U64, chunk_id) F(U32, version) F(U32, nfwd) F(BLOB, fwd)
#define REC_ds_seek_req(F)                                                   \
	F(U64, chunk_id) F(U32, version) F(U32, nbase) F(BLOB, bases)        \
	F(U32, offset) F(U8, whence)
#define REC_ds_seek_rep(F) F(U8, found) F(U32, offset)
#define REC_ds_chunk_req(F) F(U64, chunk_id)
/* DS_COPY: makes plain chunk chunk_id (version, chunk_size) on this server
 * holding what chunk src_id (src_version, a delta when src_extent > 0, over
 * its chain of nbase bases) reads as, copied locally; holes stay holes. */
#define REC_ds_copy_req(F)                                                   \
	F(U64, chunk_id) F(U32, version) F(U64, chunk_size) F(U64, src_id)   \
	F(U32, src_version) F(U32, src_extent) F(U32, nbase) F(BLOB, bases)
#define REC_ds_stat_rep(F) F(U32, version) F(U64, alloc) F(U64, chunk_size)
/* DS_RECV, from another data server copying chunk_id here (re-replication):
 * flags VDIFS_RECV_BEGIN creates it empty with this geometry (extent 0 and
 * base 0 for a plain chunk); then pieces of count block-table entries from
 * block first (entries: count * 8 bytes) with the data of the written ones. */
#define REC_ds_recv_req(F)                                                   \
	F(U64, chunk_id) F(U32, version) F(U32, flags) F(U64, chunk_size)    \
	F(U32, extent) F(U64, base_id) F(U32, base_version) F(U32, first)    \
	F(U32, count) F(BLOB, entries) F(DATA, data)
/* DS_SET_VERSION: the replica is current at version (newer than held). */
#define REC_ds_set_version_req(F) F(U64, chunk_id) F(U32, version)

/* All records, for the generators in proto.c. */
#define VDIFS_RECORDS(R)                                                     \
	R(attr) R(replica) R(base_ref) R(chunk_loc) R(vol_info) R(dirent) R(alloc)       \
	R(ds_info) R(hello_req) R(hello_rep) R(auth_req) R(error_rep)        \
	R(vol_create_req) R(vol_name_req) R(vol_remove_req) R(vol_set_req) R(list_rep)         \
	R(mount_req) R(mount_rep) R(vol_req) R(statfs_rep)                   \
	R(cluster_status_rep) R(lookup_req) R(ino_req) R(attr_rep)           \
	R(setattr_req) R(mknod_req) R(symlink_req) R(link_req)               \
	R(rename_req) R(readlink_rep) R(readdir_req) R(readdir_rep)          \
	R(setxattr_req) R(xattr_req) R(xattr_rep) R(open_req)                \
	R(snap_req) R(clone_req) R(file_info_rep) R(tree_node) R(tree_req)   \
	R(flatten_rep) R(flatten_chunks_req) R(flatten_end_req)              \
	R(layout_req) R(chunk_alloc_req) R(chunk_drop_req) R(chunk_repair_req) \
	R(chunk_version) R(ds_report_req)                                    \
	R(commit_req) R(ds_register_req) R(ds_register_rep)                  \
	R(ds_heartbeat_req) R(ds_heartbeat_rep) R(ds_write_req)              \
	R(ds_io_rep) R(ds_read_req) R(ds_read_rep) R(ds_punch_req)           \
	R(ds_sync_req) R(ds_seek_req) R(ds_seek_rep) R(ds_chunk_req)         \
	R(ds_stat_rep) R(ds_copy_req) R(repl_task) R(repl_done) R(repl_commit) \
	R(ds_recv_req) R(ds_set_version_req) R(scrub_rep)                                        \
	R(fsck_req) R(fsck_count) R(fsck_item) R(fsck_rep) R(seq_tag)

/* C types of the field kinds. */
#define PROTO_CTYPE_U8 uint8_t
#define PROTO_CTYPE_U16 uint16_t
#define PROTO_CTYPE_U32 uint32_t
#define PROTO_CTYPE_U64 uint64_t
#define PROTO_CTYPE_I64 int64_t
#define PROTO_CTYPE_NONCE struct vdifs_nonce
#define PROTO_CTYPE_PROOF struct vdifs_proof
#define PROTO_CTYPE_NAME struct vbytes
#define PROTO_CTYPE_PATH struct vbytes
#define PROTO_CTYPE_VALUE struct vbytes
#define PROTO_CTYPE_BLOB struct vbytes
#define PROTO_CTYPE_DATA struct vbytes
#define PROTO_CTYPE_ATTR struct vdifs_attr

struct vdifs_nonce { uint8_t b[16]; };
struct vdifs_proof { uint8_t b[32]; };

#define PROTO_FIELD_DECL(kind, name) PROTO_CTYPE_##kind name;

struct vdifs_attr { REC_attr(PROTO_FIELD_DECL) };

/* struct msg_<rec>, msg_<rec>_put (append to a wbuf), msg_<rec>_get (read
 * from a cursor, for nested records in a BLOB) and msg_<rec>_decode (a whole
 * payload: 0 or -EBADMSG). */
#define PROTO_DECLARE(rec)                                                   \
	struct msg_##rec { REC_##rec(PROTO_FIELD_DECL) };                    \
	void msg_##rec##_put(struct wbuf *b, const struct msg_##rec *m);     \
	void msg_##rec##_get(struct wreader *r, struct msg_##rec *m);        \
	int msg_##rec##_decode(const void *p, size_t len, struct msg_##rec *m);
VDIFS_RECORDS(PROTO_DECLARE)
#undef PROTO_DECLARE

void proto_put_attr(struct wbuf *b, const struct vdifs_attr *a);
void proto_get_attr(struct wreader *r, struct vdifs_attr *a);

/* Encodes a record whose last field is DATA without copying the data: only
 * its u32 length is written; the sender appends the bytes itself. */
void msg_ds_write_req_put_head(struct wbuf *b, const struct msg_ds_write_req *m);
void msg_ds_read_rep_put_head(struct wbuf *b, uint32_t len);

/* Setattr valid bits. */
enum {
	VDIFS_SET_MODE = 1 << 0,
	VDIFS_SET_UID = 1 << 1,
	VDIFS_SET_GID = 1 << 2,
	VDIFS_SET_SIZE = 1 << 3,
	VDIFS_SET_ATIME = 1 << 4,
	VDIFS_SET_MTIME = 1 << 5,
	VDIFS_SET_ATIME_NOW = 1 << 6,
	VDIFS_SET_MTIME_NOW = 1 << 7,
	VDIFS_SET_CTIME = 1 << 8,
};

/* Commit flags. */
enum { VDIFS_COMMIT_SIZE = 1 << 0, VDIFS_COMMIT_MTIME = 1 << 1 };
/* Mount flags. */
enum { VDIFS_MOUNT_RO = 1 << 0 };
/* Volume remove flags. */
enum { VDIFS_VOL_REMOVE_FORCE = 1 << 0 };
/* chunk_loc flags.  VDIFS_CHUNK_SHARED: the chunk is a frozen ancestor's
 * (a snapshot's or a clone source's content): it never changes, so a client
 * may cache its bytes once for every file that shows it. */
enum { VDIFS_CHUNK_HOLE = 1 << 0, VDIFS_CHUNK_SHARED = 1 << 1 };
/* ds_recv_req flags. */
enum { VDIFS_RECV_BEGIN = 1 << 0 };
/* ds_report_req flags. */
/* VDIFS_REPORT_CHECK: a list asked for by fsck (the heartbeat reply's report
 * counter went up), not a registration's: nothing is deleted. */
enum { VDIFS_REPORT_LAST = 1 << 0, VDIFS_REPORT_CHECK = 1 << 1 };
/* Seek whence on DS_SEEK. */
enum { VDIFS_SEEK_DATA = 0, VDIFS_SEEK_HOLE = 1 };

#endif
