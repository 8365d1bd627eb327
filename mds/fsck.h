/*
 * fsck: checks the MDS's own state for inconsistencies (`vdifs-admin fsck`)
 * and, when asked, repairs what can be repaired safely.
 *
 * Checked: every dirent names an existing inode of the type it records, in
 * an existing directory; link counts equal the dirents (a directory: 2 + its
 * visible subdirectories); every inode is named or an orphan (O key); every
 * file's layer, every layer's parent and every flatten record's layers exist;
 * layer refcounts equal their references (files and snapshot inodes, child
 * layers, flatten records); no layer chain is cyclic or deeper than
 * VDIFS_DEPTH_MAX; every chunk-table entry names an existing layer and chunk;
 * chunk refcounts equal the entries naming them; a delta chunk's base
 * exists; the live counters (M inodes+vol, chunks, vchunks+vol) equal the
 * records and the id counters are past every id in use.  With chunk reports
 * of the data servers (fsck_ds_report), also the replicas: missing on a
 * server that the chunk record names, or held by a server with no record.
 *
 * Repairs (one transaction, after the whole check): dangling dirents and
 * their stray records are deleted; link counts, refcounts, dirent types and
 * counters are set to what was counted; a missing layer of a file becomes a
 * fresh empty one (the content is lost: size 0), a missing parent or base is
 * cut off (parent 0); a missing chunk becomes a HOLE; an unnamed inode
 * becomes an orphan (freed at the next MDS start); orphan layers and chunks
 * are freed through layer_unref / layer_chunk_unref, so their replicas go to
 * the data servers' deletion queues; an orphan replica is queued for
 * deletion.  Not repaired: cycles, chains past the depth limit, a delta whose
 * base is missing, and replicas missing on a data server.
 *
 * Cost: one pass over every key (the whole store is read into hash tables:
 * about 100 bytes of memory per inode, layer and chunk), run on the MDS
 * loop, not in slices: other requests wait until it is done (linear in the
 * records; not measured on a large store yet).  It is an administrator's
 * command, run rarely.
 */
#ifndef VDIFS_MDS_FSCK_H
#define VDIFS_MDS_FSCK_H

#include "mds.h"
#include "wire.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The chunk files one data server holds, as the list it sent for this
 * fsck showed them (replicas_check_lists), without those queued for
 * deletion there.  ids: sorted ascending, no duplicates. */
struct fsck_ds_report {
	uint32_t ds_id;
	const uint64_t *ids;
	size_t n;
	uint64_t below; /* chunks with this id or above were made after the list: not checked */
};

struct fsck_result {
	uint64_t keys;     /* records read */
	uint64_t found;    /* inconsistencies */
	uint64_t repaired; /* of those, repaired */
	/* fsck_count records (kind, found, repaired), nkinds of them */
	struct wbuf kinds;
	uint32_t nkinds;
	/* fsck_item records, count of them (at most VDIFS_FSCK_ITEMS_MAX) */
	struct wbuf items;
	uint32_t count;
};

/* Checks (and with repair, repairs) m's store; reports[0..nreports) are
 * data-server chunk reports (none: NULL, 0).  Fills *res (the caller frees it
 * with fsck_result_free, also on failure).  Every finding is logged too.
 * 0, or -EIO / -ENOMEM when the check itself failed. */
int fsck_run(struct mds *m, bool repair, const struct fsck_ds_report *reports, size_t nreports,
	     struct fsck_result *res);
void fsck_result_free(struct fsck_result *res);

#endif
