/*
 * client_ns: the namespace and xattr calls of the client API, in the mounted
 * volume: one typed MDS message each (lookup, getattr, mknod, symlink, link,
 * unlink, rmdir, rename, readlink, readdir, *xattr).  vdifs_setattr is in
 * client_file.c: a size change needs the file's layout.
 *
 * Owns nothing: every call encodes its request, waits for the reply through
 * client_mds_call and decodes it into the caller's structs.  Attributes
 * returned carry this client's dirty state of open files (client_overlay).
 *
 * Tuned for FUSE metadata traffic: one round trip per call, no caching here
 * (the kernel caches entries and attributes); readdir asks pages of
 * VDIFS_READDIR_PAGE entries so a large directory costs few round trips.
 */
#include "client_int.h"

#include <errno.h>
#include <string.h>

int vdifs_lookup(struct vdifs_client *c, uint64_t parent, const char *name, struct vdifs_attr *out)
{
	struct msg_lookup_req m = { .vol = c->vol, .parent = parent, .name = client_vb(name) };
	struct wbuf b;
	int rc = client_check_name(name);
	if (rc != 0)
		return rc;
	wbuf_init(&b);
	msg_lookup_req_put(&b, &m);
	rc = client_call_attr(c, VDIFS_MSG_LOOKUP, &b, out);
	wbuf_free(&b);
	if (rc == 0)
		client_overlay(c, out);
	return rc;
}

int vdifs_getattr(struct vdifs_client *c, uint64_t ino, struct vdifs_attr *out)
{
	struct msg_ino_req m = { .vol = c->vol, .ino = ino };
	struct wbuf b;
	wbuf_init(&b);
	msg_ino_req_put(&b, &m);
	int rc = client_call_attr(c, VDIFS_MSG_GETATTR, &b, out);
	wbuf_free(&b);
	if (rc == 0)
		client_overlay(c, out);
	return rc;
}

int vdifs_mknod(struct vdifs_client *c, uint64_t parent, const char *name, uint32_t mode, uint32_t rdev,
		uint32_t uid, uint32_t gid, struct vdifs_attr *out)
{
	struct msg_mknod_req m = { .vol = c->vol, .parent = parent, .name = client_vb(name), .mode = mode,
				   .rdev = rdev, .uid = uid, .gid = gid };
	struct wbuf b;
	int rc = client_check_name(name);
	if (rc != 0)
		return rc;
	wbuf_init(&b);
	msg_mknod_req_put(&b, &m);
	rc = client_call_attr(c, VDIFS_MSG_MKNOD, &b, out);
	wbuf_free(&b);
	return rc;
}

int vdifs_symlink(struct vdifs_client *c, uint64_t parent, const char *name, const char *target,
		  uint32_t uid, uint32_t gid, struct vdifs_attr *out)
{
	struct msg_symlink_req m = { .vol = c->vol, .parent = parent, .name = client_vb(name),
				     .target = client_vb(target), .uid = uid, .gid = gid };
	struct wbuf b;
	int rc = client_check_name(name);
	if (rc != 0)
		return rc;
	if (strlen(target) > VDIFS_PATH_MAX) {
		client_seterr("symlink target too long");
		return -ENAMETOOLONG;
	}
	wbuf_init(&b);
	msg_symlink_req_put(&b, &m);
	rc = client_call_attr(c, VDIFS_MSG_SYMLINK, &b, out);
	wbuf_free(&b);
	return rc;
}

int vdifs_link(struct vdifs_client *c, uint64_t ino, uint64_t newparent, const char *newname,
	       struct vdifs_attr *out)
{
	struct msg_link_req m = { .vol = c->vol, .ino = ino, .newparent = newparent,
				  .newname = client_vb(newname) };
	struct wbuf b;
	int rc = client_check_name(newname);
	if (rc != 0)
		return rc;
	wbuf_init(&b);
	msg_link_req_put(&b, &m);
	rc = client_call_attr(c, VDIFS_MSG_LINK, &b, out);
	wbuf_free(&b);
	if (rc == 0 && out)
		client_overlay(c, out);
	return rc;
}

static int client_name_op(struct vdifs_client *c, uint16_t type, uint64_t parent, const char *name)
{
	struct msg_lookup_req m = { .vol = c->vol, .parent = parent, .name = client_vb(name) };
	struct wbuf b;
	int rc = client_check_name(name);
	if (rc != 0)
		return rc;
	wbuf_init(&b);
	msg_lookup_req_put(&b, &m);
	rc = client_call_void(c, type, &b);
	wbuf_free(&b);
	return rc;
}

int vdifs_unlink(struct vdifs_client *c, uint64_t parent, const char *name)
{
	return client_name_op(c, VDIFS_MSG_UNLINK, parent, name);
}

int vdifs_rmdir(struct vdifs_client *c, uint64_t parent, const char *name)
{
	return client_name_op(c, VDIFS_MSG_RMDIR, parent, name);
}

int vdifs_rename(struct vdifs_client *c, uint64_t parent, const char *name, uint64_t newparent,
		 const char *newname, uint32_t flags)
{
	struct msg_rename_req m = { .vol = c->vol, .parent = parent, .name = client_vb(name),
				    .newparent = newparent, .newname = client_vb(newname), .flags = flags };
	struct wbuf b;
	int rc = client_check_name(name);
	if (rc == 0)
		rc = client_check_name(newname);
	if (rc != 0)
		return rc;
	wbuf_init(&b);
	msg_rename_req_put(&b, &m);
	rc = client_call_void(c, VDIFS_MSG_RENAME, &b);
	wbuf_free(&b);
	return rc;
}

ssize_t vdifs_readlink(struct vdifs_client *c, uint64_t ino, char *buf, size_t cap)
{
	struct msg_ino_req m = { .vol = c->vol, .ino = ino };
	struct msg_readlink_rep rep;
	struct rpc_result res;
	struct wbuf b;
	wbuf_init(&b);
	msg_ino_req_put(&b, &m);
	ssize_t rc = client_mds_call(c, VDIFS_MSG_READLINK, &b, &res);
	wbuf_free(&b);
	if (rc == 0 && msg_readlink_rep_decode(res.payload, res.len, &rep) != 0)
		rc = client_bad_reply(VDIFS_MSG_READLINK);
	if (rc == 0) {
		rc = vbytes_to_cstr(rep.target, buf, cap);
		if (rc == 0)
			rc = rep.target.len;
		else
			client_seterr("symlink target longer than the buffer");
	}
	rpc_result_free(&res);
	return rc;
}

int vdifs_readdir(struct vdifs_client *c, uint64_t ino, vdifs_dirent_fn fn, void *arg)
{
	char after[VDIFS_NAME_MAX + 1] = "";
	int rc;

	for (;;) {
		struct msg_readdir_req m = { .vol = c->vol, .ino = ino, .after = client_vb(after),
					     .max = VDIFS_READDIR_PAGE };
		struct msg_readdir_rep rep;
		struct rpc_result res;
		struct wbuf b;
		struct wreader r;
		bool eof = true;

		wbuf_init(&b);
		msg_readdir_req_put(&b, &m);
		rc = client_mds_call(c, VDIFS_MSG_READDIR, &b, &res);
		wbuf_free(&b);
		if (rc == 0 && msg_readdir_rep_decode(res.payload, res.len, &rep) != 0)
			rc = client_bad_reply(VDIFS_MSG_READDIR);
		if (rc == 0) {
			eof = rep.eof != 0 || rep.count == 0;
			wreader_init(&r, rep.items.p, rep.items.len);
			for (uint32_t i = 0; i < rep.count && rc == 0; i++) {
				struct msg_dirent d;
				char name[VDIFS_NAME_MAX + 1];
				msg_dirent_get(&r, &d);
				if (r.err || d.name.len == 0 || vbytes_to_cstr(d.name, name, sizeof(name)) != 0) {
					rc = client_bad_reply(VDIFS_MSG_READDIR);
					break;
				}
				client_overlay(c, &d.attr);
				rc = fn(arg, name, &d.attr);
				memcpy(after, name, strlen(name) + 1);
			}
		}
		rpc_result_free(&res);
		if (rc != 0 || eof)
			return rc;
	}
}

int vdifs_setxattr(struct vdifs_client *c, uint64_t ino, const char *name, const void *value, size_t size,
		   uint32_t flags)
{
	struct msg_setxattr_req m = { .vol = c->vol, .ino = ino, .name = client_vb(name),
				      .value = { value, (uint32_t)size }, .flags = flags };
	struct wbuf b;
	int rc = client_check_name(name);
	if (rc != 0)
		return rc;
	if (size > VDIFS_XATTR_MAX) {
		client_seterr("xattr value too large");
		return -E2BIG;
	}
	wbuf_init(&b);
	msg_setxattr_req_put(&b, &m);
	rc = client_call_void(c, VDIFS_MSG_SETXATTR, &b);
	wbuf_free(&b);
	return rc;
}

/* Copies a value reply into buf by the getxattr(2) size rules. */
static ssize_t client_xattr_value(struct vdifs_client *c, uint16_t type, const struct wbuf *req,
				  void *buf, size_t cap)
{
	struct msg_xattr_rep rep;
	struct rpc_result res;
	ssize_t rc = client_mds_call(c, type, req, &res);
	if (rc == 0 && msg_xattr_rep_decode(res.payload, res.len, &rep) != 0)
		rc = client_bad_reply(type);
	if (rc == 0) {
		rc = rep.value.len;
		if (cap > 0 && rep.value.len > cap) {
			client_seterr("value larger than the buffer");
			rc = -ERANGE;
		} else if (cap > 0) {
			memcpy(buf, rep.value.p, rep.value.len);
		}
	}
	rpc_result_free(&res);
	return rc;
}

ssize_t vdifs_getxattr(struct vdifs_client *c, uint64_t ino, const char *name, void *buf, size_t cap)
{
	struct msg_xattr_req m = { .vol = c->vol, .ino = ino, .name = client_vb(name) };
	struct wbuf b;
	ssize_t rc = client_check_name(name);
	if (rc != 0)
		return rc;
	wbuf_init(&b);
	msg_xattr_req_put(&b, &m);
	rc = client_xattr_value(c, VDIFS_MSG_GETXATTR, &b, buf, cap);
	wbuf_free(&b);
	return rc;
}

ssize_t vdifs_listxattr(struct vdifs_client *c, uint64_t ino, void *buf, size_t cap)
{
	struct msg_ino_req m = { .vol = c->vol, .ino = ino };
	struct wbuf b;
	wbuf_init(&b);
	msg_ino_req_put(&b, &m);
	ssize_t rc = client_xattr_value(c, VDIFS_MSG_LISTXATTR, &b, buf, cap);
	wbuf_free(&b);
	return rc;
}

int vdifs_removexattr(struct vdifs_client *c, uint64_t ino, const char *name)
{
	struct msg_xattr_req m = { .vol = c->vol, .ino = ino, .name = client_vb(name) };
	struct wbuf b;
	int rc = client_check_name(name);
	if (rc != 0)
		return rc;
	wbuf_init(&b);
	msg_xattr_req_put(&b, &m);
	rc = client_call_void(c, VDIFS_MSG_REMOVEXATTR, &b);
	wbuf_free(&b);
	return rc;
}
