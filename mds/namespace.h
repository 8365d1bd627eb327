/*
 * namespace: the POSIX namespace of each volume -- directories, names, inode
 * attributes, hard links, symlinks, xattrs, open counts and orphans.
 *
 * Every operation takes a volume id that must exist (-ENOENT otherwise) and
 * is one transaction: it is on disk (synchronously) before it returns 0.
 * Names are refused when empty, ".", "..", or holding '/' or NUL (-EINVAL),
 * or longer than 255 bytes (-ENAMETOOLONG).  Times are CLOCK_REALTIME with
 * nanoseconds.  Attributes come back as the wire's struct vdifs_attr.
 *
 * A file whose last name goes away is freed at once unless a session has it
 * open: then it becomes an orphan ("O" key) until its last release or the
 * close of the last connection holding it, or the next MDS start.
 */
#ifndef VDIFS_MDS_NAMESPACE_H
#define VDIFS_MDS_NAMESPACE_H

#include "mds.h"
#include "mdstore.h"
#include "proto.h"
#include "session.h"

#include <stdbool.h>
#include <stdint.h>

/* Flags of RENAME (as renameat2 in linux/fs.h) and SETXATTR (as setxattr). */
#define NAMESPACE_RENAME_NOREPLACE 1u
#define NAMESPACE_RENAME_EXCHANGE 2u
#define NAMESPACE_XATTR_CREATE 1u
#define NAMESPACE_XATTR_REPLACE 2u
/* Most entries in one READDIR reply, whatever the client asks. */
#define NAMESPACE_READDIR_MAX 1024

/* 0, -EINVAL or -ENAMETOOLONG (see above). */
int namespace_check_name(struct vbytes name);
/* VDIFS_SNAPDIR_NAME as bytes. */
extern const struct vbytes namespace_snapdir;
/* Whether name is VDIFS_SNAPDIR_NAME: reserved for the hidden snapshot
 * directory (creating, linking, renaming or removing it is -EPERM). */
bool namespace_is_snapdir_name(struct vbytes name);

/* ---- building blocks for other MDS modules (snapshot.c) ------------------ */

/* Starts a transaction on an existing volume: 0 and *t, or -ENOENT, -EIO,
 * -ENOMEM with no transaction open. */
int namespace_begin(struct mds *m, uint32_t vol, struct md_volume *v, struct mdstore_txn **t);
/* Starts a transaction and loads regular file ino (with a layer): 0 with
 * *t open, or -ENOENT, -EISDIR, -EINVAL (another type), -EIO with none. */
int namespace_begin_file(struct mds *m, uint32_t vol, uint64_t ino, struct md_volume *v, struct mdstore_txn **t,
			 struct md_inode *i);
/* The start of every operation on one name in a directory: checks the name,
 * begins a transaction, loads the directory and looks the name up.  Returns 0
 * with *t open and *found telling whether the name exists (then *de is its
 * entry), or -errno with no transaction open. */
int namespace_begin_in_dir(struct mds *m, uint32_t vol, uint64_t parent, struct vbytes name, struct md_volume *v,
			   struct mdstore_txn **t, struct md_inode *d, struct md_dirent *de, bool *found);
/* Loads the inode a directory entry names.  A dangling entry is -EIO. */
int namespace_load_child(struct mdstore_txn *t, uint32_t vol, const struct md_dirent *d, struct md_inode *i);
/* Drops one name of i (or, for a directory, its only one): at nlink 0 the
 * inode is freed, or kept as an orphan while a session has it open.
 * Stages i.  0 or -errno. */
int namespace_drop_link(struct mds *m, struct mdstore_txn *t, struct md_inode *i, const struct md_time *now);
/* Adds i (mode, uid, gid, size, blocks, layer and flags set by the caller;
 * a regular file with layer 0 gets a fresh one) as name in directory d
 * (loaded, not read-only; the name checked and free): allocates its number,
 * sets nlink and times, and updates d.  Stages everything; no commit. */
int namespace_add_entry(struct mdstore_txn *t, struct md_inode *d, struct vbytes name, struct md_inode *i,
			const struct md_time *now);

/* Fills a new inode record: times now, nlink 2 for directories else 1. */
void namespace_init_inode(struct md_inode *i, uint32_t vol, uint64_t ino, uint32_t mode, uint32_t uid,
			  uint32_t gid, const struct md_time *now);

/* LOOKUP: the attributes of name in directory parent.  -ENOENT, -ENOTDIR. */
int namespace_lookup(struct mds *m, uint32_t vol, uint64_t parent, struct vbytes name,
		     struct vdifs_attr *out);
int namespace_getattr(struct mds *m, uint32_t vol, uint64_t ino, struct vdifs_attr *out);

/* SETATTR: applies the VDIFS_SET_* bits in req->valid (mode keeps the file
 * type; size truncates a regular file, dropping whole chunks past the end,
 * and sets mtime unless an mtime is given; *_NOW is the server's clock);
 * ctime becomes now.  -EISDIR (size of a directory), -EINVAL (size of another
 * non-regular file, nanoseconds >= 1e9), -EFBIG, -EROFS (snapshot). */
int namespace_setattr(struct mds *m, const struct msg_setattr_req *req, struct vdifs_attr *out);

/* MKNOD: a regular file (with a fresh writable layer), directory, fifo,
 * character or block device, or socket, by the type bits of mode (none:
 * regular).  -EEXIST, -ENOTDIR, -EINVAL (symlink or unknown type). */
int namespace_mknod(struct mds *m, const struct msg_mknod_req *req, struct vdifs_attr *out);
/* SYMLINK: -ENOENT for an empty target, -EINVAL for one holding NUL. */
int namespace_symlink(struct mds *m, const struct msg_symlink_req *req, struct vdifs_attr *out);
/* LINK: a new name for a non-directory.  -EPERM (directory), -EEXIST,
 * -ENOENT (no such inode, or it has no name left), -EMLINK. */
int namespace_link(struct mds *m, const struct msg_link_req *req, struct vdifs_attr *out);
/* UNLINK: -EISDIR on a directory. */
int namespace_unlink(struct mds *m, uint32_t vol, uint64_t parent, struct vbytes name);
/* RMDIR: -ENOTDIR, -ENOTEMPTY. */
int namespace_rmdir(struct mds *m, uint32_t vol, uint64_t parent, struct vbytes name);
/* RENAME with POSIX rules and NAMESPACE_RENAME_NOREPLACE / _EXCHANGE:
 * -EEXIST, -ENOENT, -ENOTDIR, -EISDIR, -ENOTEMPTY, -EINVAL (into its own
 * subtree, unknown or conflicting flags).  Same inode at both names: 0, no
 * change. */
int namespace_rename(struct mds *m, const struct msg_rename_req *req);
/* READLINK: copies the target (NUL-terminated, VDIFS_PATH_MAX + 1 bytes) and
 * its length.  -EINVAL when not a symlink. */
int namespace_readlink(struct mds *m, uint32_t vol, uint64_t ino, char *target, uint32_t *len);
/* READDIR: appends dirent records for the names after req->after (in key
 * order), at most req->max (capped at NAMESPACE_READDIR_MAX; 0 means the
 * cap), with *eof set when no name follows.  No "." or "..".  -ENOTDIR. */
int namespace_readdir(struct mds *m, const struct msg_readdir_req *req, struct wbuf *items,
		      uint32_t *count, bool *eof);

/* Extended attributes.  Names: 1..255 bytes, no NUL (-EINVAL). */
int namespace_setxattr(struct mds *m, const struct msg_setxattr_req *req); /* -EEXIST, -ENODATA */
int namespace_getxattr(struct mds *m, uint32_t vol, uint64_t ino, struct vbytes name,
		       struct wbuf *value); /* -ENODATA */
/* Appends each name followed by NUL.  -E2BIG past VDIFS_XATTR_MAX bytes. */
int namespace_listxattr(struct mds *m, uint32_t vol, uint64_t ino, struct wbuf *names);
int namespace_removexattr(struct mds *m, uint32_t vol, uint64_t ino, struct vbytes name); /* -ENODATA */

/* STATFS: space of the data servers that are up (bytes), the volume's
 * inode count in files, bsize 4096, namemax 255. */
int namespace_statfs(struct mds *m, uint32_t vol, struct msg_statfs_rep *out);

/* OPEN: counts an open of ino by session s and returns its attributes. */
int namespace_open(struct mds *m, struct session *s, uint32_t vol, uint64_t ino, bool write,
		   struct vdifs_attr *out);
/* RELEASE: counts a release; the last release of an orphan frees it.
 * -EBADF when s does not have the file open. */
int namespace_release(struct mds *m, struct session *s, uint32_t vol, uint64_t ino);
/* Ends a session: releases what it held open (freeing orphans) and frees s. */
void namespace_session_close(struct mds *m, struct session *s);
/* Frees every orphan recorded in the store (at start, before any session).
 * 0 or -errno. */
int namespace_reap_orphans(struct mds *m);

/* Stages the removal of inode i: its record, xattrs, orphan mark, layer
 * reference, and its volume's inode count.  0 or -errno. */
int namespace_free_inode(struct mdstore_txn *t, const struct md_inode *i);

#endif
