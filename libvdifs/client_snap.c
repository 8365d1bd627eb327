/*
 * client_snap: snapshots, clones and file space reports of the client API.
 * Each call is one MDS round trip; the caches of open files are the
 * caller's to fix up (see client.h).
 */
#include "client_int.h"

#include <errno.h>
#include <stdlib.h>

/* SNAP_CREATE / SNAP_DELETE / SNAP_REVERT. */
static int client_snap_call(struct vdifs_client *c, uint16_t type, uint64_t parent, const char *name,
			    const char *snap, struct vdifs_attr *out)
{
	int rc = client_check_name(name);
	if (rc == 0)
		rc = client_check_name(snap);
	if (rc < 0)
		return rc;
	struct msg_snap_req m = { .vol = c->vol, .parent = parent, .name = client_vb(name), .snap = client_vb(snap) };
	struct wbuf b;
	wbuf_init(&b);
	msg_snap_req_put(&b, &m);
	rc = out ? client_call_attr(c, type, &b, out) : client_call_void(c, type, &b);
	wbuf_free(&b);
	return rc;
}

int vdifs_snap_create(struct vdifs_client *c, uint64_t parent, const char *name, const char *snap,
		      struct vdifs_attr *out)
{
	struct vdifs_attr a;
	return client_snap_call(c, VDIFS_MSG_SNAP_CREATE, parent, name, snap, out ? out : &a);
}

int vdifs_snap_delete(struct vdifs_client *c, uint64_t parent, const char *name, const char *snap)
{
	return client_snap_call(c, VDIFS_MSG_SNAP_DELETE, parent, name, snap, NULL);
}

int vdifs_snap_revert(struct vdifs_client *c, uint64_t parent, const char *name, const char *snap,
		      struct vdifs_attr *out)
{
	struct vdifs_attr a;
	return client_snap_call(c, VDIFS_MSG_SNAP_REVERT, parent, name, snap, out ? out : &a);
}

int vdifs_snap_list(struct vdifs_client *c, uint64_t ino,
		    int (*fn)(void *arg, const char *name, const struct vdifs_attr *a), void *arg)
{
	struct msg_ino_req m = { .vol = c->vol, .ino = ino };
	struct rpc_result res;
	struct msg_list_rep rep;
	struct wbuf b;
	struct wreader r;
	wbuf_init(&b);
	msg_ino_req_put(&b, &m);
	int rc = client_mds_call(c, VDIFS_MSG_SNAP_LIST, &b, &res);
	wbuf_free(&b);
	if (rc == 0 && msg_list_rep_decode(res.payload, res.len, &rep) != 0)
		rc = client_bad_reply(VDIFS_MSG_SNAP_LIST);
	if (rc == 0) {
		wreader_init(&r, rep.items.p, rep.items.len);
		for (uint32_t i = 0; i < rep.count && rc == 0; i++) {
			struct msg_dirent d;
			char name[VDIFS_NAME_MAX + 1];
			msg_dirent_get(&r, &d);
			if (r.err || vbytes_to_cstr(d.name, name, sizeof(name)) < 0) {
				rc = client_bad_reply(VDIFS_MSG_SNAP_LIST);
				break;
			}
			rc = fn(arg, name, &d.attr);
		}
		if (rc == 0 && wreader_finish(&r) != 0)
			rc = client_bad_reply(VDIFS_MSG_SNAP_LIST);
	}
	rpc_result_free(&res);
	return rc;
}

int vdifs_clone(struct vdifs_client *c, uint64_t src, uint64_t dst, uint64_t parent, const char *name,
		uint32_t uid, uint32_t gid, struct vdifs_attr *out)
{
	if (!dst) {
		int rc = client_check_name(name);
		if (rc < 0)
			return rc;
	}
	struct msg_clone_req m = { .vol = c->vol, .src = src, .dst = dst, .parent = parent,
				   .name = client_vb(dst ? "" : name), .uid = uid, .gid = gid };
	struct vdifs_attr a;
	struct wbuf b;
	wbuf_init(&b);
	msg_clone_req_put(&b, &m);
	int rc = client_call_attr(c, VDIFS_MSG_CLONE, &b, out ? out : &a);
	wbuf_free(&b);
	return rc;
}

int vdifs_file_info(struct vdifs_client *c, uint64_t ino, struct msg_file_info_rep *out)
{
	struct msg_ino_req m = { .vol = c->vol, .ino = ino };
	struct rpc_result res;
	struct wbuf b;
	wbuf_init(&b);
	msg_ino_req_put(&b, &m);
	int rc = client_mds_call(c, VDIFS_MSG_FILE_INFO, &b, &res);
	wbuf_free(&b);
	if (rc == 0 && msg_file_info_rep_decode(res.payload, res.len, out) != 0)
		rc = client_bad_reply(VDIFS_MSG_FILE_INFO);
	rpc_result_free(&res);
	return rc;
}

int vdifs_file_tree(struct vdifs_client *c, uint64_t ino, uint32_t skip,
		    int (*fn)(void *arg, const struct msg_tree_node *n), void *arg, uint32_t *count)
{
	struct msg_tree_req m = { .vol = c->vol, .ino = ino, .skip = skip };
	struct rpc_result res;
	struct msg_list_rep rep;
	struct wreader r;
	struct wbuf b;
	*count = 0;
	wbuf_init(&b);
	msg_tree_req_put(&b, &m);
	int rc = client_mds_call(c, VDIFS_MSG_FILE_TREE, &b, &res);
	wbuf_free(&b);
	if (rc == 0 && msg_list_rep_decode(res.payload, res.len, &rep) != 0)
		rc = client_bad_reply(VDIFS_MSG_FILE_TREE);
	if (rc == 0) {
		wreader_init(&r, rep.items.p, rep.items.len);
		for (uint32_t i = 0; i < rep.count && rc == 0; i++) {
			struct msg_tree_node n;
			msg_tree_node_get(&r, &n);
			if (r.err) {
				rc = client_bad_reply(VDIFS_MSG_FILE_TREE);
				break;
			}
			rc = fn(arg, &n);
			if (rc == 0)
				(*count)++;
		}
		if (rc == 0 && wreader_finish(&r) != 0)
			rc = client_bad_reply(VDIFS_MSG_FILE_TREE);
	}
	rpc_result_free(&res);
	return rc;
}
