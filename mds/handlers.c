/*
 * handlers: one function per MDS message type behind one switch (see
 * handlers.h).
 *
 * Every handler does the same four steps -- decode (a malformed payload
 * closes the connection), check the caller's rights (role, read-only mount),
 * call the module, reply -- and answers before returning: the MDS is one
 * event-loop thread and each operation is a short LevelDB transaction.  The
 * one exception is a CHUNK_ALLOC arriving while the data servers are still
 * reporting after an MDS start: it waits on a short timer rather than
 * placing a chunk on fewer replicas than asked (or failing with ENOSPC).
 */
#include "handlers.h"

#include "dedup.h"
#include "dsreg.h"
#include "fsck.h"
#include "flatten.h"
#include "layer.h"
#include "log.h"
#include "mds.h"
#include "namespace.h"
#include "recovery.h"
#include "replicas.h"
#include "session.h"
#include "snapshot.h"
#include "tree.h"
#include "volume.h"

#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Period of the retry of deferred CHUNK_ALLOCs. */
#define HANDLERS_RETRY_MS 100
/* Period of the sweep of old duplicate-request records (mds/dedup.h). */
#define HANDLERS_SWEEP_S 600

/* A request waiting for the registry to settle; holds a connection ref. */
struct deferred {
	struct rpc_request req; /* payload points at buf */
	uint8_t *buf;
	struct deferred *next;
};

struct handlers {
	struct mds *m;
	struct event *retry;
	struct event *sweep; /* periodic dedup_sweep */
	struct deferred *pending; /* in arrival order */
	struct deferred **tail;
};

/* ---- helpers ----------------------------------------------------------------- */

/* True when the payload decoded; otherwise rejects the request, which closes
 * the connection. */
static bool decoded(const struct rpc_request *req, int rc)
{
	if (rc == 0)
		return true;
	rpc_reject(req, -EBADMSG, "malformed %s", proto_msg_name(req->type));
	return false;
}

/* Requests without a payload must come without one. */
static bool decoded_empty(const struct rpc_request *req) { return decoded(req, req->len ? -EBADMSG : 0); }

/* Error reply "<what>: <strerror>".  -EBADMSG (an inconsistent nested list)
 * is malformed input and closes the connection. */
static void __attribute__((format(printf, 3, 4))) fail(const struct rpc_request *req, int rc, const char *fmt, ...)
{
	char what[384];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	if (rc == -EBADMSG)
		rpc_reject(req, rc, "malformed %s: %s", proto_msg_name(req->type), what);
	else
		rpc_reply_error(req, rc, "%s: %s", what, strerror(-rc));
}

/* The connection's session, made on first use.  NULL (and an ENOMEM reply)
 * when out of memory. */
static struct session *session_of(struct mds *m, const struct rpc_request *req)
{
	struct session *s = rpc_conn_get_data(req->conn);
	if (!s) {
		s = session_new(m->sessions);
		if (!s) {
			rpc_reply_error(req, -ENOMEM, "out of memory for a session");
			return NULL;
		}
		rpc_conn_set_data(req->conn, s);
	}
	return s;
}

/* False (with an EROFS reply) when this connection mounted vol read-only. */
static bool writable(const struct rpc_request *req, uint32_t vol)
{
	const struct session *s = rpc_conn_get_data(req->conn);
	if (s && s->mounted && s->ro && s->vol == vol) {
		rpc_reply_error(req, -EROFS, "%s: volume %u is mounted read-only on this connection",
				proto_msg_name(req->type), vol);
		return false;
	}
	return true;
}

static void reply_attr(const struct rpc_request *req, const struct vdifs_attr *a)
{
	struct wbuf b;
	struct msg_attr_rep r = {.attr = *a};
	wbuf_init(&b);
	msg_attr_rep_put(&b, &r);
	rpc_reply(req, &b);
	wbuf_free(&b);
}

static void reply_list(const struct rpc_request *req, uint32_t count, const struct wbuf *items)
{
	struct wbuf b;
	struct msg_list_rep r = {.count = count, .items = {items->data, (uint32_t)items->len}};
	wbuf_init(&b);
	if (items->err)
		b.err = true;
	else
		msg_list_rep_put(&b, &r);
	rpc_reply(req, &b);
	wbuf_free(&b);
}

#define NAMEF "'%.*s'"
#define NAMEA(v) (int)(v).len, (const char *)(v).p

/* ---- volumes and cluster ------------------------------------------------------- */

static void reply_vol_info(struct mds *m, const struct rpc_request *req, const struct md_volume *v)
{
	struct wbuf b;
	wbuf_init(&b);
	int rc = volume_put_info(m, v, &b);
	if (rc < 0)
		fail(req, rc, "volume %s", v->name);
	else
		rpc_reply(req, &b);
	wbuf_free(&b);
}

static void h_vol_create(struct mds *m, const struct rpc_request *req)
{
	struct msg_vol_create_req q;
	struct md_volume v;
	if (!decoded(req, msg_vol_create_req_decode(req->payload, req->len, &q)))
		return;
	int rc = volume_create(m, &q, &v);
	if (rc < 0) {
		fail(req, rc, "create volume " NAMEF " (chunk size %llu, %u replicas)%s", NAMEA(q.name),
		     (unsigned long long)q.chunk_size, q.replicas,
		     rc == -EINVAL ? ": names are 1-64 of [A-Za-z0-9._-], chunk size a power of two "
				     "1M..1G, replicas 1..8"
				   : "");
		return;
	}
	reply_vol_info(m, req, &v);
}

static void h_vol_list(struct mds *m, const struct rpc_request *req)
{
	struct wbuf items;
	uint32_t count;
	if (!decoded_empty(req))
		return;
	wbuf_init(&items);
	int rc = volume_list(m, &items, &count);
	if (rc < 0)
		fail(req, rc, "list volumes");
	else
		reply_list(req, count, &items);
	wbuf_free(&items);
}

static void h_vol_remove(struct mds *m, const struct rpc_request *req)
{
	struct msg_vol_remove_req q;
	if (!decoded(req, msg_vol_remove_req_decode(req->payload, req->len, &q)))
		return;
	int rc = volume_remove(m, q.name, q.flags);
	if (rc < 0)
		fail(req, rc, "remove volume " NAMEF "%s", NAMEA(q.name),
		     rc == -ENOTEMPTY ? " (it has files; force removes them)" : "");
	else
		rpc_reply(req, NULL);
}

static void h_vol_set(struct mds *m, const struct rpc_request *req)
{
	struct msg_vol_set_req q;
	struct md_volume v;
	if (!decoded(req, msg_vol_set_req_decode(req->payload, req->len, &q)))
		return;
	int rc = volume_set(m, &q, &v);
	if (rc < 0) {
		fail(req, rc, "set " NAMEF " = " NAMEF " on volume " NAMEF "%s", NAMEA(q.key), NAMEA(q.value),
		     NAMEA(q.name),
		     rc == -EBUSY ? " (the chunk size is fixed once the volume has data)"
		     : rc == -EINVAL ? " (keys: replicas 1..8, chunk_size a power of two 1M..1G)" : "");
		return;
	}
	reply_vol_info(m, req, &v);
}

static void h_mount(struct mds *m, const struct rpc_request *req)
{
	struct msg_mount_req q;
	struct md_volume v;
	if (!decoded(req, msg_mount_req_decode(req->payload, req->len, &q)))
		return;
	struct session *s = session_of(m, req);
	if (!s)
		return;
	int rc = volume_lookup(m, q.volume, &v);
	if (rc < 0) {
		fail(req, rc, "mount volume " NAMEF, NAMEA(q.volume));
		return;
	}
	s->mounted = true;
	s->vol = v.id;
	s->ro = q.flags & VDIFS_MOUNT_RO;
	log_info("%s mounted volume %s%s (session %llu)", rpc_conn_peer(req->conn), v.name,
		 s->ro ? " read-only" : "", (unsigned long long)s->id);
	struct msg_mount_rep r = {
		.vol = v.id,
		.root_ino = v.root_ino,
		.chunk_size = v.chunk_size,
		.replicas = v.replicas,
		.session = s->id,
	};
	struct wbuf b;
	wbuf_init(&b);
	msg_mount_rep_put(&b, &r);
	rpc_reply(req, &b);
	wbuf_free(&b);
}

static void h_statfs(struct mds *m, const struct rpc_request *req)
{
	struct msg_vol_req q;
	struct msg_statfs_rep r;
	if (!decoded(req, msg_vol_req_decode(req->payload, req->len, &q)))
		return;
	int rc = namespace_statfs(m, q.vol, &r);
	if (rc < 0) {
		fail(req, rc, "statfs of volume %u", q.vol);
		return;
	}
	struct wbuf b;
	wbuf_init(&b);
	msg_statfs_rep_put(&b, &r);
	rpc_reply(req, &b);
	wbuf_free(&b);
}

static void h_ds_list(struct mds *m, const struct rpc_request *req)
{
	struct wbuf items;
	uint32_t count;
	if (!decoded_empty(req))
		return;
	wbuf_init(&items);
	dsreg_list(m->dsreg, &items, &count);
	reply_list(req, count, &items);
	wbuf_free(&items);
}

static void h_cluster_status(struct mds *m, const struct rpc_request *req)
{
	struct msg_cluster_status_rep r;
	struct dsreg_totals t;
	uint32_t volumes;
	uint64_t chunks;
	if (!decoded_empty(req))
		return;
	uint64_t under = 0, lost = 0;
	int rc = volume_count(m, &volumes);
	if (rc == 0)
		rc = layer_count_chunks(m, &chunks);
	if (rc == 0)
		rc = replicas_health(m, &under, &lost);
	if (rc < 0) {
		fail(req, rc, "cluster status");
		return;
	}
	dsreg_totals(m->dsreg, &t);
	r = (struct msg_cluster_status_rep){
		.volumes = volumes,
		.ds_up = t.up,
		.ds_total = t.known,
		.chunks = chunks,
		.total = t.total,
		.avail = t.avail,
		.used = t.used,
		.under = under,
		.lost = lost,
	};
	recovery_counts(m->recovery, &r.recovering, &r.recovered);
	struct wbuf b;
	wbuf_init(&b);
	msg_cluster_status_rep_put(&b, &r);
	rpc_reply(req, &b);
	wbuf_free(&b);
}

/* FSCK (admin only).  Runs whole on the loop (mds/fsck.h says what that
 * costs).  With VDIFS_FSCK_DATA, first waits (EAGAIN: the tool asks again)
 * for the data servers' chunk lists to compare the replicas with. */
static void h_fsck(struct mds *m, const struct rpc_request *req)
{
	struct msg_fsck_req q;
	struct fsck_result r;
	if (!decoded(req, msg_fsck_req_decode(req->payload, req->len, &q)))
		return;
	if (rpc_conn_role(req->conn) != VDIFS_ROLE_ADMIN) {
		rpc_reply_error(req, -EACCES, "FSCK is for administrators only");
		return;
	}
	struct replicas_check_list *lists = NULL;
	struct fsck_ds_report *reports = NULL;
	size_t nlists = 0;
	if (q.flags & VDIFS_FSCK_DATA) {
		uint64_t below;
		uint32_t waiting;
		int rc = replicas_check_lists(m, &lists, &nlists, &below, &waiting);
		if (rc == -EAGAIN) {
			rpc_reply_error(req, rc, "waiting for the chunk lists of %u data server%s", waiting,
					waiting == 1 ? "" : "s");
			return;
		}
		if (rc == -ETIMEDOUT) {
			rpc_reply_error(req, rc, "%u data server%s sent no chunk list in %u s", waiting,
					waiting == 1 ? "" : "s", REPLICAS_CHECK_WAIT_MS / 1000);
			return;
		}
		if (rc == 0 && !(reports = calloc(nlists ? nlists : 1, sizeof(*reports))))
			rc = -ENOMEM;
		if (rc < 0) {
			replicas_check_lists_free(lists, nlists);
			fail(req, rc, "fsck");
			return;
		}
		for (size_t i = 0; i < nlists; i++)
			reports[i] = (struct fsck_ds_report){lists[i].ds_id, lists[i].ids, lists[i].n, below};
	}
	log_info("%s: fsck%s%s", rpc_conn_peer(req->conn), q.flags & VDIFS_FSCK_REPAIR ? " --repair" : "",
		 reports ? " (with the data servers' chunk lists)" : "");
	int rc = fsck_run(m, q.flags & VDIFS_FSCK_REPAIR, reports, nlists, &r);
	free(reports);
	replicas_check_lists_free(lists, nlists);
	if (rc < 0) {
		fail(req, rc, "fsck");
	} else {
		struct msg_fsck_rep rep = {
			.keys = r.keys, .found = r.found, .repaired = r.repaired,
			.nkinds = r.nkinds, .kinds = {r.kinds.data, (uint32_t)r.kinds.len},
			.count = r.count, .items = {r.items.data, (uint32_t)r.items.len},
		};
		struct wbuf b;
		wbuf_init(&b);
		msg_fsck_rep_put(&b, &rep);
		rpc_reply(req, &b);
		wbuf_free(&b);
	}
	fsck_result_free(&r);
}

static void h_scrub(struct mds *m, const struct rpc_request *req)
{
	struct dsreg_totals t;
	if (!decoded_empty(req))
		return;
	if (rpc_conn_role(req->conn) != VDIFS_ROLE_ADMIN) {
		rpc_reply_error(req, -EACCES, "SCRUB is for administrators only");
		return;
	}
	m->scrub_requests++;
	dsreg_totals(m->dsreg, &t);
	log_info("scrub asked by %s: the %u data servers up start a pass", rpc_conn_peer(req->conn), t.up);
	struct wbuf b;
	wbuf_init(&b);
	msg_scrub_rep_put(&b, &(struct msg_scrub_rep){.servers = t.up});
	rpc_reply(req, &b);
	wbuf_free(&b);
}

/* ---- namespace --------------------------------------------------------------- */

static void h_lookup(struct mds *m, const struct rpc_request *req)
{
	struct msg_lookup_req q;
	struct vdifs_attr a;
	if (!decoded(req, msg_lookup_req_decode(req->payload, req->len, &q)))
		return;
	int rc = namespace_lookup(m, q.vol, q.parent, q.name, &a);
	if (rc < 0)
		fail(req, rc, "lookup " NAMEF " in directory %llu of volume %u", NAMEA(q.name),
		     (unsigned long long)q.parent, q.vol);
	else
		reply_attr(req, &a);
}

static void h_getattr(struct mds *m, const struct rpc_request *req)
{
	struct msg_ino_req q;
	struct vdifs_attr a;
	if (!decoded(req, msg_ino_req_decode(req->payload, req->len, &q)))
		return;
	int rc = namespace_getattr(m, q.vol, q.ino, &a);
	if (rc < 0)
		fail(req, rc, "getattr of inode %llu of volume %u", (unsigned long long)q.ino, q.vol);
	else
		reply_attr(req, &a);
}

static void h_setattr(struct mds *m, const struct rpc_request *req)
{
	struct msg_setattr_req q;
	struct vdifs_attr a;
	if (!decoded(req, msg_setattr_req_decode(req->payload, req->len, &q)) || !writable(req, q.vol))
		return;
	int rc = namespace_setattr(m, &q, &a);
	if (rc < 0)
		fail(req, rc, "setattr (valid 0x%x) of inode %llu of volume %u", q.valid, (unsigned long long)q.ino,
		     q.vol);
	else
		reply_attr(req, &a);
}

static void h_mknod(struct mds *m, const struct rpc_request *req)
{
	struct msg_mknod_req q;
	struct vdifs_attr a;
	if (!decoded(req, msg_mknod_req_decode(req->payload, req->len, &q)) || !writable(req, q.vol))
		return;
	int rc = namespace_mknod(m, &q, &a);
	if (rc < 0)
		fail(req, rc, "create " NAMEF " (mode 0%o) in directory %llu of volume %u", NAMEA(q.name), q.mode,
		     (unsigned long long)q.parent, q.vol);
	else
		reply_attr(req, &a);
}

static void h_symlink(struct mds *m, const struct rpc_request *req)
{
	struct msg_symlink_req q;
	struct vdifs_attr a;
	if (!decoded(req, msg_symlink_req_decode(req->payload, req->len, &q)) || !writable(req, q.vol))
		return;
	int rc = namespace_symlink(m, &q, &a);
	if (rc < 0)
		fail(req, rc, "symlink " NAMEF " in directory %llu of volume %u", NAMEA(q.name),
		     (unsigned long long)q.parent, q.vol);
	else
		reply_attr(req, &a);
}

static void h_link(struct mds *m, const struct rpc_request *req)
{
	struct msg_link_req q;
	struct vdifs_attr a;
	if (!decoded(req, msg_link_req_decode(req->payload, req->len, &q)) || !writable(req, q.vol))
		return;
	int rc = namespace_link(m, &q, &a);
	if (rc < 0)
		fail(req, rc, "link inode %llu as " NAMEF " in directory %llu of volume %u%s",
		     (unsigned long long)q.ino, NAMEA(q.newname), (unsigned long long)q.newparent, q.vol,
		     rc == -EPERM ? " (directories cannot be hard-linked)" : "");
	else
		reply_attr(req, &a);
}

static void h_remove(struct mds *m, const struct rpc_request *req, bool dir)
{
	struct msg_lookup_req q;
	if (!decoded(req, msg_lookup_req_decode(req->payload, req->len, &q)) || !writable(req, q.vol))
		return;
	int rc = dir ? namespace_rmdir(m, q.vol, q.parent, q.name) : namespace_unlink(m, q.vol, q.parent, q.name);
	if (rc < 0)
		fail(req, rc, "%s " NAMEF " in directory %llu of volume %u", dir ? "rmdir" : "unlink", NAMEA(q.name),
		     (unsigned long long)q.parent, q.vol);
	else
		rpc_reply(req, NULL);
}

static void h_rename(struct mds *m, const struct rpc_request *req)
{
	struct msg_rename_req q;
	if (!decoded(req, msg_rename_req_decode(req->payload, req->len, &q)) || !writable(req, q.vol))
		return;
	int rc = namespace_rename(m, &q);
	if (rc < 0)
		fail(req, rc, "rename " NAMEF " in %llu to " NAMEF " in %llu (flags %u) in volume %u", NAMEA(q.name),
		     (unsigned long long)q.parent, NAMEA(q.newname), (unsigned long long)q.newparent, q.flags,
		     q.vol);
	else
		rpc_reply(req, NULL);
}

static void h_readlink(struct mds *m, const struct rpc_request *req)
{
	struct msg_ino_req q;
	char target[VDIFS_PATH_MAX + 1];
	uint32_t len;
	if (!decoded(req, msg_ino_req_decode(req->payload, req->len, &q)))
		return;
	int rc = namespace_readlink(m, q.vol, q.ino, target, &len);
	if (rc < 0) {
		fail(req, rc, "readlink of inode %llu of volume %u", (unsigned long long)q.ino, q.vol);
		return;
	}
	struct msg_readlink_rep r = {.target = {(const uint8_t *)target, len}};
	struct wbuf b;
	wbuf_init(&b);
	msg_readlink_rep_put(&b, &r);
	rpc_reply(req, &b);
	wbuf_free(&b);
}

static void h_readdir(struct mds *m, const struct rpc_request *req)
{
	struct msg_readdir_req q;
	struct wbuf items, b;
	uint32_t count;
	bool eof;
	if (!decoded(req, msg_readdir_req_decode(req->payload, req->len, &q)))
		return;
	wbuf_init(&items);
	int rc = namespace_readdir(m, &q, &items, &count, &eof);
	if (rc < 0) {
		fail(req, rc, "readdir of %llu in volume %u", (unsigned long long)q.ino, q.vol);
		wbuf_free(&items);
		return;
	}
	struct msg_readdir_rep r = {.eof = eof, .count = count, .items = {items.data, (uint32_t)items.len}};
	wbuf_init(&b);
	msg_readdir_rep_put(&b, &r);
	rpc_reply(req, &b);
	wbuf_free(&b);
	wbuf_free(&items);
}

static void h_setxattr(struct mds *m, const struct rpc_request *req)
{
	struct msg_setxattr_req q;
	if (!decoded(req, msg_setxattr_req_decode(req->payload, req->len, &q)) || !writable(req, q.vol))
		return;
	int rc = namespace_setxattr(m, &q);
	if (rc < 0)
		fail(req, rc, "setxattr " NAMEF " (flags %u) on inode %llu of volume %u", NAMEA(q.name), q.flags,
		     (unsigned long long)q.ino, q.vol);
	else
		rpc_reply(req, NULL);
}

static void reply_value(const struct rpc_request *req, const struct wbuf *value)
{
	struct msg_xattr_rep r = {.value = {value->data, (uint32_t)value->len}};
	struct wbuf b;
	wbuf_init(&b);
	msg_xattr_rep_put(&b, &r);
	rpc_reply(req, &b);
	wbuf_free(&b);
}

static void h_getxattr(struct mds *m, const struct rpc_request *req)
{
	struct msg_xattr_req q;
	struct wbuf value;
	if (!decoded(req, msg_xattr_req_decode(req->payload, req->len, &q)))
		return;
	wbuf_init(&value);
	int rc = namespace_getxattr(m, q.vol, q.ino, q.name, &value);
	if (rc < 0)
		fail(req, rc, "getxattr " NAMEF " of inode %llu of volume %u", NAMEA(q.name),
		     (unsigned long long)q.ino, q.vol);
	else
		reply_value(req, &value);
	wbuf_free(&value);
}

static void h_listxattr(struct mds *m, const struct rpc_request *req)
{
	struct msg_ino_req q;
	struct wbuf names;
	if (!decoded(req, msg_ino_req_decode(req->payload, req->len, &q)))
		return;
	wbuf_init(&names);
	int rc = namespace_listxattr(m, q.vol, q.ino, &names);
	if (rc < 0)
		fail(req, rc, "listxattr of inode %llu of volume %u", (unsigned long long)q.ino, q.vol);
	else
		reply_value(req, &names);
	wbuf_free(&names);
}

static void h_removexattr(struct mds *m, const struct rpc_request *req)
{
	struct msg_xattr_req q;
	if (!decoded(req, msg_xattr_req_decode(req->payload, req->len, &q)) || !writable(req, q.vol))
		return;
	int rc = namespace_removexattr(m, q.vol, q.ino, q.name);
	if (rc < 0)
		fail(req, rc, "removexattr " NAMEF " of inode %llu of volume %u", NAMEA(q.name),
		     (unsigned long long)q.ino, q.vol);
	else
		rpc_reply(req, NULL);
}

static void h_open(struct mds *m, const struct rpc_request *req)
{
	struct msg_open_req q;
	struct vdifs_attr a;
	if (!decoded(req, msg_open_req_decode(req->payload, req->len, &q)))
		return;
	if (((q.flags & O_ACCMODE) != O_RDONLY || (q.flags & O_TRUNC)) && !writable(req, q.vol))
		return;
	struct session *s = session_of(m, req);
	if (!s)
		return;
	int rc = namespace_open(m, s, q.vol, q.ino, (q.flags & O_ACCMODE) != O_RDONLY || (q.flags & O_TRUNC), &a);
	if (rc < 0)
		fail(req, rc, "open of inode %llu of volume %u", (unsigned long long)q.ino, q.vol);
	else
		reply_attr(req, &a);
}

static void h_release(struct mds *m, const struct rpc_request *req)
{
	struct msg_ino_req q;
	if (!decoded(req, msg_ino_req_decode(req->payload, req->len, &q)))
		return;
	struct session *s = session_of(m, req);
	if (!s)
		return;
	int rc = namespace_release(m, s, q.vol, q.ino);
	if (rc < 0)
		fail(req, rc, "release of inode %llu of volume %u%s", (unsigned long long)q.ino, q.vol,
		     rc == -EBADF ? " (not open on this connection)" : "");
	else
		rpc_reply(req, NULL);
}

/* ---- snapshots and clones ------------------------------------------------------- */

static const char *snap_why(int rc)
{
	switch (rc) {
	case -EMLINK: return " (depth limit reached: flatten the file first)";
	case -EEXIST: return " (exists)";
	case -ENOENT: return " (no such file or snapshot)";
	case -ENOTEMPTY: return " (the target file is not empty)";
	default: return "";
	}
}

static void h_snap(struct mds *m, const struct rpc_request *req)
{
	struct msg_snap_req q;
	struct vdifs_attr a;
	int rc;
	if (!decoded(req, msg_snap_req_decode(req->payload, req->len, &q)) || !writable(req, q.vol))
		return;
	switch (req->type) {
	case VDIFS_MSG_SNAP_CREATE: rc = snapshot_create(m, &q, &a); break;
	case VDIFS_MSG_SNAP_REVERT: rc = snapshot_revert(m, &q, &a); break;
	default: rc = snapshot_delete(m, &q); break;
	}
	if (rc < 0)
		fail(req, rc, "%s of " NAMEF " in %llu, snapshot " NAMEF ", volume %u%s", proto_msg_name(req->type),
		     NAMEA(q.name), (unsigned long long)q.parent, NAMEA(q.snap), q.vol, snap_why(rc));
	else if (req->type == VDIFS_MSG_SNAP_DELETE)
		rpc_reply(req, NULL);
	else
		reply_attr(req, &a);
}

static void h_snap_list(struct mds *m, const struct rpc_request *req)
{
	struct msg_ino_req q;
	struct wbuf items;
	uint32_t count;
	if (!decoded(req, msg_ino_req_decode(req->payload, req->len, &q)))
		return;
	wbuf_init(&items);
	int rc = snapshot_list(m, q.vol, q.ino, &items, &count);
	if (rc < 0)
		fail(req, rc, "snapshots of inode %llu of volume %u", (unsigned long long)q.ino, q.vol);
	else
		reply_list(req, count, &items);
	wbuf_free(&items);
}

static void h_clone(struct mds *m, const struct rpc_request *req)
{
	struct msg_clone_req q;
	struct vdifs_attr a;
	if (!decoded(req, msg_clone_req_decode(req->payload, req->len, &q)) || !writable(req, q.vol))
		return;
	int rc = snapshot_clone(m, &q, &a);
	if (rc < 0)
		fail(req, rc, "clone of inode %llu to %s%llu " NAMEF " in volume %u%s", (unsigned long long)q.src,
		     q.dst ? "inode " : "directory ", (unsigned long long)(q.dst ? q.dst : q.parent), NAMEA(q.name),
		     q.vol, snap_why(rc));
	else
		reply_attr(req, &a);
}

static void h_file_info(struct mds *m, const struct rpc_request *req)
{
	struct msg_ino_req q;
	struct msg_file_info_rep r;
	struct wbuf b;
	if (!decoded(req, msg_ino_req_decode(req->payload, req->len, &q)))
		return;
	int rc = snapshot_info(m, q.vol, q.ino, &r);
	if (rc < 0) {
		fail(req, rc, "info of inode %llu of volume %u", (unsigned long long)q.ino, q.vol);
		return;
	}
	wbuf_init(&b);
	msg_file_info_rep_put(&b, &r);
	rpc_reply(req, &b);
	wbuf_free(&b);
}

static void h_file_tree(struct mds *m, const struct rpc_request *req)
{
	struct msg_tree_req q;
	struct wbuf items;
	uint32_t count;
	if (!decoded(req, msg_tree_req_decode(req->payload, req->len, &q)))
		return;
	wbuf_init(&items);
	int rc = tree_list(m, q.vol, q.ino, q.skip, &items, &count);
	if (rc < 0)
		fail(req, rc, "tree of inode %llu of volume %u", (unsigned long long)q.ino, q.vol);
	else
		reply_list(req, count, &items);
	wbuf_free(&items);
}

static void h_flatten_begin(struct mds *m, const struct rpc_request *req)
{
	struct msg_ino_req q;
	struct msg_flatten_rep r;
	struct wbuf b;
	if (!decoded(req, msg_ino_req_decode(req->payload, req->len, &q)) || !writable(req, q.vol))
		return;
	int rc = flatten_begin(m, q.vol, q.ino, &r);
	if (rc < 0) {
		fail(req, rc, "flatten of inode %llu of volume %u", (unsigned long long)q.ino, q.vol);
		return;
	}
	wbuf_init(&b);
	msg_flatten_rep_put(&b, &r);
	rpc_reply(req, &b);
	wbuf_free(&b);
}

static void h_flatten_chunks(struct mds *m, const struct rpc_request *req)
{
	struct msg_flatten_chunks_req q;
	struct wbuf items;
	uint32_t count;
	if (!decoded(req, msg_flatten_chunks_req_decode(req->payload, req->len, &q)) || !writable(req, q.vol))
		return;
	wbuf_init(&items);
	int rc = flatten_chunks(m, &q, &items, &count);
	if (rc < 0)
		fail(req, rc, "flatten of inode %llu of volume %u%s", (unsigned long long)q.ino, q.vol,
		     rc == -ENOENT ? " (no flatten in progress)" : "");
	else
		reply_list(req, count, &items);
	wbuf_free(&items);
}

static void h_flatten_end(struct mds *m, const struct rpc_request *req)
{
	struct msg_flatten_end_req q;
	struct vdifs_attr a;
	if (!decoded(req, msg_flatten_end_req_decode(req->payload, req->len, &q)) || !writable(req, q.vol))
		return;
	int rc = flatten_end(m, &q, &a);
	if (rc < 0)
		fail(req, rc, "flatten of inode %llu of volume %u%s", (unsigned long long)q.ino, q.vol,
		     rc == -EBUSY    ? " (the file changed during the copy)"
		     : rc == -ENOENT ? " (no flatten in progress)"
				     : "");
	else if (q.flags & 1)
		rpc_reply(req, NULL);
	else
		reply_attr(req, &a);
}

/* ---- file layout -------------------------------------------------------------- */

static void h_layout(struct mds *m, const struct rpc_request *req)
{
	struct msg_layout_req q;
	struct wbuf items;
	uint32_t count;
	if (!decoded(req, msg_layout_req_decode(req->payload, req->len, &q)))
		return;
	wbuf_init(&items);
	int rc = layer_layout(m, &q, &items, &count);
	if (rc < 0)
		fail(req, rc, "layout of inode %llu of volume %u, chunks %llu+%u%s", (unsigned long long)q.ino, q.vol,
		     (unsigned long long)q.first, q.max, rc == -E2BIG ? " (ask for a smaller range)" : "");
	else
		reply_list(req, count, &items);
	wbuf_free(&items);
}

/* Answers a CHUNK_ALLOC; false (nothing sent) when it must wait. */
static bool chunk_alloc_answer(struct mds *m, const struct rpc_request *req, const struct msg_chunk_alloc_req *q)
{
	struct wbuf b;
	wbuf_init(&b);
	int rc = layer_chunk_alloc(m, q, true, &b);
	if (rc == -EAGAIN) {
		wbuf_free(&b);
		return false;
	}
	if (rc < 0)
		fail(req, rc, "chunk %llu of inode %llu of volume %u%s", (unsigned long long)q->index,
		     (unsigned long long)q->ino, q->vol, rc == -ENOSPC ? " (no data server up with free space)" : "");
	else
		rpc_reply(req, &b);
	wbuf_free(&b);
	return true;
}

static void arm_retry(struct handlers *h)
{
	struct timeval tv = {.tv_sec = 0, .tv_usec = HANDLERS_RETRY_MS * 1000};
	if (!evtimer_pending(h->retry, NULL))
		evtimer_add(h->retry, &tv);
}

/* Keeps req (copying its payload) to answer from the retry timer. */
static void defer(struct handlers *h, const struct rpc_request *req)
{
	struct deferred *d = calloc(1, sizeof(*d));
	uint8_t *buf = malloc(req->len ? req->len : 1);
	if (!d || !buf) {
		free(d);
		free(buf);
		rpc_reply_error(req, -EAGAIN, "CHUNK_ALLOC: data servers are still reporting after an MDS start");
		return;
	}
	memcpy(buf, req->payload, req->len);
	d->req = *req;
	d->req.payload = buf;
	d->buf = buf;
	rpc_conn_ref(d->req.conn);
	*h->tail = d;
	h->tail = &d->next;
	arm_retry(h);
}

static void retry_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct handlers *h = arg;
	struct deferred **pp = &h->pending;
	while (*pp) {
		struct deferred *d = *pp;
		struct msg_chunk_alloc_req q;
		/* It decoded when it came in, so the copy decodes the same. */
		if (msg_chunk_alloc_req_decode(d->req.payload, d->req.len, &q) < 0)
			rpc_reply_error(&d->req, -EIO, "CHUNK_ALLOC: deferred request lost");
		else if (!chunk_alloc_answer(h->m, &d->req, &q)) {
			pp = &d->next;
			continue;
		}
		*pp = d->next;
		rpc_conn_unref(d->req.conn);
		free(d->buf);
		free(d);
	}
	h->tail = pp;
	if (h->pending)
		arm_retry(h);
}

static void h_chunk_alloc(struct handlers *h, const struct rpc_request *req)
{
	struct msg_chunk_alloc_req q;
	if (!decoded(req, msg_chunk_alloc_req_decode(req->payload, req->len, &q)) || !writable(req, q.vol))
		return;
	if (!chunk_alloc_answer(h->m, req, &q))
		defer(h, req);
}

static void h_chunk_drop(struct mds *m, const struct rpc_request *req)
{
	struct msg_chunk_drop_req q;
	if (!decoded(req, msg_chunk_drop_req_decode(req->payload, req->len, &q)) || !writable(req, q.vol))
		return;
	int rc = layer_chunk_drop(m, &q);
	if (rc < 0)
		fail(req, rc, "drop chunks %llu+%llu of inode %llu of volume %u", (unsigned long long)q.first,
		     (unsigned long long)q.count, (unsigned long long)q.ino, q.vol);
	else
		rpc_reply(req, NULL);
}

static void h_chunk_repair(struct mds *m, const struct rpc_request *req)
{
	struct msg_chunk_repair_req q;
	struct wbuf b;
	if (!decoded(req, msg_chunk_repair_req_decode(req->payload, req->len, &q)) || !writable(req, q.vol))
		return;
	wbuf_init(&b);
	int rc = replicas_repair(m, &q, &b);
	if (rc == -EAGAIN)
		rpc_reply_error(req, rc, "chunk %016llx: no replica to leave out: every replica is on a server that is up, or none is",
				(unsigned long long)q.chunk_id);
	else if (rc < 0)
		fail(req, rc, "repair chunk %016llx (index %llu of inode %llu of volume %u)",
		     (unsigned long long)q.chunk_id, (unsigned long long)q.index, (unsigned long long)q.ino, q.vol);
	else
		rpc_reply(req, &b);
	wbuf_free(&b);
}

static void h_commit(struct mds *m, const struct rpc_request *req)
{
	struct msg_commit_req q;
	struct vdifs_attr a;
	if (!decoded(req, msg_commit_req_decode(req->payload, req->len, &q)) || !writable(req, q.vol))
		return;
	int rc = layer_commit(m, &q, &a);
	if (rc < 0)
		fail(req, rc, "commit of inode %llu of volume %u (%u chunks)", (unsigned long long)q.ino, q.vol,
		     q.count);
	else
		reply_attr(req, &a);
}

/* ---- data servers ----------------------------------------------------------------- */

static bool from_ds(const struct rpc_request *req)
{
	if (rpc_conn_role(req->conn) == VDIFS_ROLE_DS)
		return true;
	rpc_reply_error(req, -EACCES, "%s is for data servers only", proto_msg_name(req->type));
	return false;
}

static void h_ds_register(struct mds *m, const struct rpc_request *req)
{
	struct msg_ds_register_req q;
	uint32_t id;
	if (!decoded(req, msg_ds_register_req_decode(req->payload, req->len, &q)) || !from_ds(req))
		return;
	int rc = dsreg_register(m->dsreg, &q, &id);
	if (rc < 0) {
		fail(req, rc, "register data server " NAMEF " at " NAMEF ":%u", NAMEA(q.uuid), NAMEA(q.host), q.port);
		return;
	}
	struct msg_ds_register_rep r = {.ds_id = id, .heartbeat_ms = dsreg_heartbeat_ms(m->dsreg),
					.lease_ms = dsreg_lease_ms(m->dsreg)};
	struct wbuf b;
	wbuf_init(&b);
	msg_ds_register_rep_put(&b, &r);
	rpc_reply(req, &b);
	wbuf_free(&b);
}

/* Answers with the chunk ids (u64 LE in ids) a data server must delete;
 * frees ids. */
static void reply_delete_ids(const struct rpc_request *req, struct wbuf *ids, uint32_t count)
{
	struct msg_ds_heartbeat_rep r = {.count = count, .delete_ids = {ids->data, (uint32_t)ids->len}};
	struct wbuf b;
	wbuf_init(&b);
	msg_ds_heartbeat_rep_put(&b, &r);
	rpc_reply(req, &b);
	wbuf_free(&b);
	wbuf_free(ids);
}

/* Most bad copies one heartbeat reports (a data server keeps 256). */
#define MDS_CORRUPT_MAX 4096

/* The re-replication part of a heartbeat: copies the server reports done
 * (answered in commits) and new tasks for it. */
static int heartbeat_recovery(struct mds *m, const struct msg_ds_heartbeat_req *q, struct wbuf *commits,
			      uint32_t *ncommit, struct wbuf *tasks, uint32_t *ntask)
{
	struct wreader r;
	*ncommit = *ntask = 0;
	if (q->ndone > RECOVERY_TASKS_MAX)
		return -EBADMSG;
	wreader_init(&r, q->done.p, q->done.len);
	for (uint32_t i = 0; i < q->ndone; i++) {
		struct msg_repl_done d;
		msg_repl_done_get(&r, &d);
		if (r.err)
			return -EBADMSG;
		int rc = recovery_done(m->recovery, q->ds_id, &d, commits);
		if (rc < 0)
			return rc;
		(*ncommit)++;
	}
	if (wreader_finish(&r) != 0)
		return -EBADMSG;
	if (q->ncorrupt > MDS_CORRUPT_MAX || (uint64_t)q->ncorrupt * 8 != q->corrupt.len)
		return -EBADMSG;
	for (uint32_t i = 0; i < q->ncorrupt; i++) {
		int rc = replicas_corrupt(m, q->ds_id, le_get64(q->corrupt.p + 8 * (size_t)i));
		if (rc < 0)
			return rc;
	}
	*ntask = recovery_take_tasks(m->recovery, q->ds_id, tasks);
	return commits->err || tasks->err ? -ENOMEM : 0;
}

static void h_ds_heartbeat(struct mds *m, const struct rpc_request *req)
{
	struct msg_ds_heartbeat_req q;
	struct wbuf ids;
	uint32_t count;
	if (!decoded(req, msg_ds_heartbeat_req_decode(req->payload, req->len, &q)) || !from_ds(req))
		return;
	struct wbuf commits, tasks;
	uint32_t ncommit = 0, ntask = 0;
	wbuf_init(&ids);
	wbuf_init(&commits);
	wbuf_init(&tasks);
	int rc = dsreg_heartbeat(m->dsreg, &q, &ids, &count);
	if (rc == 0)
		rc = heartbeat_recovery(m, &q, &commits, &ncommit, &tasks, &ntask);
	if (rc < 0) {
		fail(req, rc, "heartbeat of data server %u%s", q.ds_id,
		     rc == -ENOENT ? " (unknown, or marked down: register again)" : "");
	} else {
		struct msg_ds_heartbeat_rep r = {
			.count = count, .delete_ids = {ids.data, (uint32_t)ids.len},
			.ntask = ntask, .tasks = {tasks.data, (uint32_t)tasks.len},
			.ncommit = ncommit, .commits = {commits.data, (uint32_t)commits.len},
			.scrub = m->scrub_requests,
			.report = replicas_check_epoch(m),
		};
		struct wbuf b;
		wbuf_init(&b);
		msg_ds_heartbeat_rep_put(&b, &r);
		rpc_reply(req, &b);
		wbuf_free(&b);
	}
	wbuf_free(&ids);
	wbuf_free(&commits);
	wbuf_free(&tasks);
}

static void h_ds_chunk_report(struct mds *m, const struct rpc_request *req)
{
	struct msg_ds_report_req q;
	struct wbuf ids;
	uint32_t count;
	if (!decoded(req, msg_ds_report_req_decode(req->payload, req->len, &q)) || !from_ds(req))
		return;
	wbuf_init(&ids);
	int rc = replicas_report(m, &q, &ids, &count);
	if (rc < 0) {
		fail(req, rc, "chunk report of data server %u", q.ds_id);
		wbuf_free(&ids);
		return;
	}
	reply_delete_ids(req, &ids, count);
}

/* ---- retried mutations (seq tags, mds/dedup.h) ------------------------------------ */

/* Answers a retry of a mutation that was applied (before a crash, or while
 * the client's connection died) from the current state, as the first
 * attempt would have been answered. */
static void replay(struct mds *m, const struct rpc_request *req)
{
	struct vdifs_attr a;
	int rc = 0;
	bool attr = true;
	union {
		struct msg_setattr_req setattr;
		struct msg_mknod_req mknod;
		struct msg_symlink_req symlink;
		struct msg_link_req link;
		struct msg_snap_req snap;
		struct msg_clone_req clone;
	} q;
	switch (req->type) {
	case VDIFS_MSG_SETATTR:
		if (!decoded(req, msg_setattr_req_decode(req->payload, req->len, &q.setattr)))
			return;
		rc = namespace_getattr(m, q.setattr.vol, q.setattr.ino, &a);
		break;
	case VDIFS_MSG_MKNOD:
		if (!decoded(req, msg_mknod_req_decode(req->payload, req->len, &q.mknod)))
			return;
		rc = namespace_lookup(m, q.mknod.vol, q.mknod.parent, q.mknod.name, &a);
		break;
	case VDIFS_MSG_SYMLINK:
		if (!decoded(req, msg_symlink_req_decode(req->payload, req->len, &q.symlink)))
			return;
		rc = namespace_lookup(m, q.symlink.vol, q.symlink.parent, q.symlink.name, &a);
		break;
	case VDIFS_MSG_LINK:
		if (!decoded(req, msg_link_req_decode(req->payload, req->len, &q.link)))
			return;
		rc = namespace_lookup(m, q.link.vol, q.link.newparent, q.link.newname, &a);
		break;
	case VDIFS_MSG_SNAP_CREATE:
	case VDIFS_MSG_SNAP_REVERT:
		if (!decoded(req, msg_snap_req_decode(req->payload, req->len, &q.snap)))
			return;
		rc = namespace_lookup(m, q.snap.vol, q.snap.parent, req->type == VDIFS_MSG_SNAP_CREATE ? namespace_snapdir : q.snap.name, &a);
		if (rc == 0 && req->type == VDIFS_MSG_SNAP_CREATE) {
			char n[2 * VDIFS_NAME_MAX + 2];
			int l = snprintf(n, sizeof(n), "%.*s@%.*s", NAMEA(q.snap.name), NAMEA(q.snap.snap));
			rc = namespace_lookup(m, q.snap.vol, a.ino, (struct vbytes){(const uint8_t *)n, (uint32_t)l}, &a);
		}
		break;
	case VDIFS_MSG_CLONE:
		if (!decoded(req, msg_clone_req_decode(req->payload, req->len, &q.clone)))
			return;
		rc = q.clone.dst ? namespace_getattr(m, q.clone.vol, q.clone.dst, &a)
				 : namespace_lookup(m, q.clone.vol, q.clone.parent, q.clone.name, &a);
		break;
	default: attr = false; break; /* UNLINK RMDIR RENAME SETXATTR REMOVEXATTR SNAP_DELETE */
	}
	if (rc < 0)
		fail(req, rc, "%s applied before a restart, but its result changed since", proto_msg_name(req->type));
	else if (attr)
		reply_attr(req, &a);
	else
		rpc_reply(req, NULL);
}

/* A request with a seq tag: strips the tag, then applies a covered mutation
 * once (its dedup record rides in its own write batch) or answers a retry
 * of an applied one with replay(). */
static void dispatch_tagged(struct handlers *h, const struct rpc_request *req)
{
	struct dedup_tag tag;
	struct rpc_request r = *req;
	r.type = (uint16_t)(req->type & ~VDIFS_SEQ_BIT);
	if (!decoded(&r, dedup_split(req->payload, req->len, &r.len, &tag)))
		return;
	if (!proto_msg_exactly_once(r.type)) {
		handlers_dispatch(h, &r);
		return;
	}
	int seen = dedup_seen(h->m, &tag, r.type, r.payload, r.len);
	if (seen < 0) {
		fail(&r, seen, "%s: duplicate-request cache", proto_msg_name(r.type));
	} else if (seen) {
		log_info("%s: %s seq %llu of session %016llx was applied already: answered from the current state",
			 rpc_conn_peer(req->conn), proto_msg_name(r.type), (unsigned long long)tag.seq,
			 (unsigned long long)tag.session);
		replay(h->m, &r);
	} else {
		struct dedup_arm a;
		dedup_arm(h->m, &a, &tag, r.type, r.payload, r.len);
		handlers_dispatch(h, &r);
		dedup_disarm(h->m);
	}
}

/* ---- dispatch ------------------------------------------------------------------ */

static void sweep_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct handlers *h = arg;
	uint64_t n = 0;
	int rc = dedup_sweep(h->m, DEDUP_TTL_S, &n);
	if (rc < 0)
		log_error("sweeping duplicate-request records: %s", strerror(-rc));
	else if (n)
		log_info("dropped %llu duplicate-request records older than %d s", (unsigned long long)n, DEDUP_TTL_S);
}

int handlers_new(struct event_base *base, struct mds *m, struct handlers **out)
{
	struct handlers *h = calloc(1, sizeof(*h));
	if (!h)
		return -ENOMEM;
	h->m = m;
	h->tail = &h->pending;
	h->retry = evtimer_new(base, retry_cb, h);
	h->sweep = event_new(base, -1, EV_PERSIST, sweep_cb, h);
	struct timeval every = {.tv_sec = HANDLERS_SWEEP_S};
	if (!h->retry || !h->sweep || event_add(h->sweep, &every) != 0) {
		if (h->retry)
			event_free(h->retry);
		if (h->sweep)
			event_free(h->sweep);
		free(h);
		return -ENOMEM;
	}
	*out = h;
	return 0;
}

void handlers_free(struct handlers *h)
{
	if (!h)
		return;
	while (h->pending) {
		struct deferred *d = h->pending;
		h->pending = d->next;
		rpc_conn_unref(d->req.conn);
		free(d->buf);
		free(d);
	}
	event_free(h->retry);
	event_free(h->sweep);
	free(h);
}

void handlers_dispatch(void *arg, const struct rpc_request *req)
{
	struct handlers *h = arg;
	struct mds *m = h->m;
	if (req->type & VDIFS_SEQ_BIT) {
		dispatch_tagged(h, req);
		return;
	}
	switch (req->type) {
	case VDIFS_MSG_VOL_CREATE: h_vol_create(m, req); break;
	case VDIFS_MSG_VOL_LIST: h_vol_list(m, req); break;
	case VDIFS_MSG_VOL_REMOVE: h_vol_remove(m, req); break;
	case VDIFS_MSG_VOL_SET: h_vol_set(m, req); break;
	case VDIFS_MSG_MOUNT: h_mount(m, req); break;
	case VDIFS_MSG_STATFS: h_statfs(m, req); break;
	case VDIFS_MSG_DS_LIST: h_ds_list(m, req); break;
	case VDIFS_MSG_CLUSTER_STATUS: h_cluster_status(m, req); break;
	case VDIFS_MSG_SCRUB: h_scrub(m, req); break;
	case VDIFS_MSG_FSCK: h_fsck(m, req); break;
	case VDIFS_MSG_LOOKUP: h_lookup(m, req); break;
	case VDIFS_MSG_GETATTR: h_getattr(m, req); break;
	case VDIFS_MSG_SETATTR: h_setattr(m, req); break;
	case VDIFS_MSG_MKNOD: h_mknod(m, req); break;
	case VDIFS_MSG_SYMLINK: h_symlink(m, req); break;
	case VDIFS_MSG_LINK: h_link(m, req); break;
	case VDIFS_MSG_UNLINK: h_remove(m, req, false); break;
	case VDIFS_MSG_RMDIR: h_remove(m, req, true); break;
	case VDIFS_MSG_RENAME: h_rename(m, req); break;
	case VDIFS_MSG_READLINK: h_readlink(m, req); break;
	case VDIFS_MSG_READDIR: h_readdir(m, req); break;
	case VDIFS_MSG_SETXATTR: h_setxattr(m, req); break;
	case VDIFS_MSG_GETXATTR: h_getxattr(m, req); break;
	case VDIFS_MSG_LISTXATTR: h_listxattr(m, req); break;
	case VDIFS_MSG_REMOVEXATTR: h_removexattr(m, req); break;
	case VDIFS_MSG_OPEN: h_open(m, req); break;
	case VDIFS_MSG_RELEASE: h_release(m, req); break;
	case VDIFS_MSG_LAYOUT: h_layout(m, req); break;
	case VDIFS_MSG_CHUNK_ALLOC: h_chunk_alloc(h, req); break;
	case VDIFS_MSG_CHUNK_DROP: h_chunk_drop(m, req); break;
	case VDIFS_MSG_CHUNK_REPAIR: h_chunk_repair(m, req); break;
	case VDIFS_MSG_COMMIT: h_commit(m, req); break;
	case VDIFS_MSG_SNAP_CREATE:
	case VDIFS_MSG_SNAP_DELETE:
	case VDIFS_MSG_SNAP_REVERT: h_snap(m, req); break;
	case VDIFS_MSG_SNAP_LIST: h_snap_list(m, req); break;
	case VDIFS_MSG_CLONE: h_clone(m, req); break;
	case VDIFS_MSG_FILE_INFO: h_file_info(m, req); break;
	case VDIFS_MSG_FILE_TREE: h_file_tree(m, req); break;
	case VDIFS_MSG_FLATTEN_BEGIN: h_flatten_begin(m, req); break;
	case VDIFS_MSG_FLATTEN_CHUNKS: h_flatten_chunks(m, req); break;
	case VDIFS_MSG_FLATTEN_END: h_flatten_end(m, req); break;
	case VDIFS_MSG_DS_REGISTER: h_ds_register(m, req); break;
	case VDIFS_MSG_DS_HEARTBEAT: h_ds_heartbeat(m, req); break;
	case VDIFS_MSG_DS_CHUNK_REPORT: h_ds_chunk_report(m, req); break;
	default:
		rpc_reject(req, -EOPNOTSUPP, "message type %u (%s) is not served by the MDS", req->type,
			   proto_msg_name(req->type));
		break;
	}
}

void handlers_conn_closed(void *arg, struct rpc_conn *conn)
{
	struct handlers *h = arg;
	struct mds *m = h->m;
	struct session *s = rpc_conn_get_data(conn);
	if (!s)
		return;
	rpc_conn_set_data(conn, NULL);
	namespace_session_close(m, s);
}
