/* test_mds_util: the MDS test fixture (see test_mds_util.h). */
#include "test_mds_util.h"

#include "log.h"
#include "test_fs_util.h"

#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static uint64_t fake_clock(void *arg) { return *(const uint64_t *)arg; }

static void open_mds(struct tmds *t)
{
	char err[256] = "";
	struct mds_options o = {.heartbeat_ms = 1000, .ds_timeout_ms = 5000};
	int rc = mds_open(t->db, &o, &t->m, err, sizeof(err));
	if (rc != 0)
		fail_msg("mds_open(%s): %d %s", t->db, rc, err);
	dsreg_set_clock(t->m->dsreg, fake_clock, &t->now_ms);
	dsreg_seed(t->m->dsreg, 12345);
}

int tmds_setup(void **state)
{
	struct tmds *t = calloc(1, sizeof(*t));
	assert_non_null(t);
	log_init("test_mds", LOG_ERROR);
	snprintf(t->dir, sizeof(t->dir), "/tmp/test_mds.XXXXXX");
	assert_non_null(mkdtemp(t->dir));
	snprintf(t->db, sizeof(t->db), "%s/meta.ldb", t->dir);
	t->now_ms = 1000000;
	open_mds(t);
	*state = t;
	return 0;
}

int tmds_teardown(void **state)
{
	struct tmds *t = *state;
	mds_close(t->m);
	test_rm_tree(t->dir);
	free(t);
	return 0;
}

void tmds_reopen(struct tmds *t)
{
	mds_close(t->m);
	t->m = NULL;
	open_mds(t);
}

struct vbytes vb(const char *s) { return (struct vbytes){(const uint8_t *)s, (uint32_t)strlen(s)}; }

uint32_t tmds_volume(struct tmds *t, const char *name, uint64_t chunk_size, uint32_t replicas)
{
	struct msg_vol_create_req q = {.name = vb(name), .chunk_size = chunk_size, .replicas = replicas};
	struct md_volume v;
	int rc = volume_create(t->m, &q, &v);
	if (rc != 0)
		fail_msg("volume_create(%s): %d", name, rc);
	return v.id;
}

int tmds_mknod_rc(struct tmds *t, uint32_t vol, uint64_t parent, const char *name, uint32_t mode)
{
	struct msg_mknod_req q = {.vol = vol, .parent = parent, .name = vb(name), .mode = mode, .uid = 1000,
				  .gid = 100};
	struct vdifs_attr a;
	return namespace_mknod(t->m, &q, &a);
}

uint64_t tmds_mknod(struct tmds *t, uint32_t vol, uint64_t parent, const char *name, uint32_t mode)
{
	struct msg_mknod_req q = {.vol = vol, .parent = parent, .name = vb(name), .mode = mode, .uid = 1000,
				  .gid = 100};
	struct vdifs_attr a;
	int rc = namespace_mknod(t->m, &q, &a);
	if (rc != 0)
		fail_msg("mknod(%s, 0%o): %d", name, mode, rc);
	return a.ino;
}

struct vdifs_attr tmds_attr(struct tmds *t, uint32_t vol, uint64_t ino)
{
	struct vdifs_attr a;
	int rc = namespace_getattr(t->m, vol, ino, &a);
	if (rc != 0)
		fail_msg("getattr(%u, %llu): %d", vol, (unsigned long long)ino, rc);
	return a;
}

uint64_t tmds_lookup(struct tmds *t, uint32_t vol, uint64_t parent, const char *name)
{
	struct vdifs_attr a;
	int rc = namespace_lookup(t->m, vol, parent, vb(name), &a);
	if (rc == -ENOENT)
		return 0;
	if (rc != 0)
		fail_msg("lookup(%s): %d", name, rc);
	return a.ino;
}

int tmds_rename(struct tmds *t, uint32_t vol, uint64_t parent, const char *name, uint64_t newparent,
		const char *newname, uint32_t flags)
{
	struct msg_rename_req q = {.vol = vol, .parent = parent, .name = vb(name), .newparent = newparent,
				   .newname = vb(newname), .flags = flags};
	return namespace_rename(t->m, &q);
}

uint32_t tmds_add_ds(struct tmds *t, const char *uuid, uint16_t port, uint64_t avail)
{
	struct msg_ds_register_req q = {.uuid = vb(uuid), .host = vb("127.0.0.1"), .port = port,
					.total = avail * 2, .avail = avail};
	uint32_t id;
	int rc = dsreg_register(t->m->dsreg, &q, &id);
	if (rc != 0)
		fail_msg("dsreg_register(%s): %d", uuid, rc);
	/* It holds nothing yet: its chunk report is empty. */
	rc = dsreg_validated(t->m->dsreg, id);
	if (rc != 0)
		fail_msg("dsreg_validated(%u): %d", id, rc);
	return id;
}

void tmds_rejoin(struct tmds *t, uint32_t ds)
{
	const struct dsreg_entry *e = dsreg_get(t->m->dsreg, ds);
	if (!e)
		fail_msg("no data server %u to rejoin", ds);
	struct md_ds rec = e->rec;
	struct msg_ds_register_req q = {.uuid = vb(rec.uuid), .host = vb(rec.host), .port = rec.port,
					.total = rec.total, .avail = rec.avail};
	uint32_t id;
	if (dsreg_register(t->m->dsreg, &q, &id) != 0 || id != ds || dsreg_validated(t->m->dsreg, id) != 0)
		fail_msg("data server %u could not register again", ds);
}

uint32_t tmds_heartbeat(struct tmds *t, uint32_t ds, uint64_t avail)
{
	struct msg_ds_heartbeat_req q = {.ds_id = ds, .total = avail * 2, .avail = avail};
	struct wbuf ids;
	uint32_t count;
	wbuf_init(&ids);
	int rc = dsreg_heartbeat(t->m->dsreg, &q, &ids, &count);
	if (rc == -ENOENT && dsreg_get(t->m->dsreg, ds)) {
		/* Down (or the MDS restarted): a real server registers again. */
		tmds_rejoin(t, ds);
		rc = dsreg_heartbeat(t->m->dsreg, &q, &ids, &count);
	}
	wbuf_free(&ids);
	if (rc != 0)
		fail_msg("dsreg_heartbeat(%u): %d", ds, rc);
	return count;
}

int tmds_alloc(struct tmds *t, uint32_t vol, uint64_t ino, uint64_t index, uint64_t *chunk_id, uint32_t *ds,
	       uint32_t *nrep)
{
	struct msg_chunk_alloc_req q = {.vol = vol, .ino = ino, .index = index};
	struct wbuf b;
	struct msg_chunk_loc loc;
	wbuf_init(&b);
	int rc = layer_chunk_alloc(t->m, &q, t->settle, &b);
	if (rc != 0) {
		wbuf_free(&b);
		return rc;
	}
	assert_int_equal(msg_chunk_loc_decode(b.data, b.len, &loc), 0);
	assert_int_equal(loc.index, index);
	assert_int_equal(loc.version, 1);
	assert_true(loc.nrep >= 1 && loc.nrep <= VDIFS_MAX_REPLICAS);
	struct wreader r;
	wreader_init(&r, loc.replicas.p, loc.replicas.len);
	for (uint32_t i = 0; i < loc.nrep; i++) {
		struct msg_replica rep;
		msg_replica_get(&r, &rep);
		assert_false(r.err);
		assert_true(vbytes_eq(rep.host, "127.0.0.1"));
		assert_true(rep.port != 0);
		if (ds)
			ds[i] = rep.ds_id;
	}
	assert_int_equal(wreader_finish(&r), 0);
	if (chunk_id)
		*chunk_id = loc.chunk_id;
	if (nrep)
		*nrep = loc.nrep;
	wbuf_free(&b);
	return 0;
}

bool tmds_gc_queued(struct tmds *t, uint32_t ds, uint64_t chunk)
{
	struct mdstore_txn *x = mdstore_txn_begin(t->m->store);
	struct mdstore_key k;
	assert_non_null(x);
	mdstore_key_gc(&k, ds, chunk);
	int rc = mdstore_txn_exists(x, &k);
	mdstore_txn_abort(x);
	assert_true(rc == 0 || rc == -ENOENT);
	return rc == 0;
}

bool tmds_chunk_exists(struct tmds *t, uint64_t chunk)
{
	struct mdstore_txn *x = mdstore_txn_begin(t->m->store);
	struct md_chunk c;
	assert_non_null(x);
	int rc = mdstore_get_chunk(x, chunk, &c);
	mdstore_txn_abort(x);
	assert_true(rc == 0 || rc == -ENOENT);
	return rc == 0;
}
