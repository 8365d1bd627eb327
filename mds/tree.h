/*
 * tree: the inheritance tree of a file's layers (FILE_TREE, `vdifs-clone
 * tree`): every layer descending from the file's oldest ancestor, with the
 * files and snapshots that use each and the bytes each layer owns.
 *
 * An administrator's question, not a data-path one: it scans the volume's
 * layer and inode records (O(layers + inodes) of the cluster and volume)
 * and the chunk tables of the layers in the tree.
 */
#ifndef VDIFS_MDS_TREE_H
#define VDIFS_MDS_TREE_H

#include "mds.h"
#include "proto.h"
#include "wire.h"

#include <stdint.h>

/* Most tree_node records one FILE_TREE reply carries. */
#define TREE_REPLY_MAX 16384

enum { TREE_FILE = 1, TREE_SNAPSHOT = 2, TREE_FROZEN = 3 };

/* FILE_TREE: tree_node records (layer, its parent layer, kind, the inode
 * using it -- one node per inode, a frozen layer no inode uses is one node
 * with ino 0 --, the inode's size and the bytes the layer owns on one
 * replica), ordered by layer then inode, from node number skip on, at most
 * TREE_REPLY_MAX.  -ENOENT, -EISDIR, -EINVAL (not a regular file), -EIO,
 * -ENOMEM. */
int tree_list(struct mds *m, uint32_t vol, uint64_t ino, uint32_t skip, struct wbuf *items, uint32_t *count);

#endif
