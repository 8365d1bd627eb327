/*
 * client_flatten: drives a flatten (mds/flatten.h) -- the MDS hands out the
 * new chunks in windows and the client asks every server holding one to
 * copy it from its source locally (DS_COPY), so no file data travels.
 */
#include "client_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* Chunks copied at once: each keeps a disk busy on every replica, and a
 * copy of a whole chunk takes a while, so a few per server are enough. */
#define FLATTEN_WINDOW 4

int vdifs_flatten_begin(struct vdifs_client *c, uint64_t ino, struct msg_flatten_rep *out)
{
	struct msg_ino_req m = { .vol = c->vol, .ino = ino };
	struct rpc_result res;
	struct wbuf b;
	wbuf_init(&b);
	msg_ino_req_put(&b, &m);
	int rc = client_mds_call(c, VDIFS_MSG_FLATTEN_BEGIN, &b, &res);
	wbuf_free(&b);
	if (rc == 0 && msg_flatten_rep_decode(res.payload, res.len, out) != 0)
		rc = client_bad_reply(VDIFS_MSG_FLATTEN_BEGIN);
	rpc_result_free(&res);
	return rc;
}

/* Copies pairs[0..n) (new chunk, source) on every replica of the new chunk
 * and appends one alloc record per chunk to allocs. */
static int copy_pairs(struct vdifs_client *c, const struct vdifs_chunk *pairs, size_t n, struct wbuf *allocs,
		      uint32_t *nallocs)
{
	size_t nops = 0;
	for (size_t p = 0; p < n; p++)
		nops += pairs[2 * p].nrep;
	struct dsio_op *ops = dsio_ops_new(nops);
	struct dsio_batch b;
	int rc = 0;
	if (!ops)
		return -ENOMEM;
	dsio_batch_init(&b);
	size_t k = 0;
	for (size_t p = 0; p < n; p++)
		for (unsigned r = 0; r < pairs[2 * p].nrep; r++, k++) {
			ops[k].ch = pairs[2 * p];
			dsio_encode_copy(&ops[k], c->chunk_size, &pairs[2 * p + 1]);
			dsio_issue(c, &b, &ops[k], r, NULL, 0);
		}
	dsio_wait(c, &b, ops, nops);
	k = 0;
	for (size_t p = 0; p < n; p++) {
		uint64_t bytes = 0;
		for (unsigned r = 0; r < pairs[2 * p].nrep; r++, k++) {
			/* A plain source a server does not hold was never written
			 * there and reads as zeros: nothing to copy. */
			if (ops[k].status == -ENOENT && pairs[2 * p + 1].nbase == 0)
				continue;
			if (ops[k].status < 0 && rc == 0) {
				dsio_seterr(&ops[k]);
				/* A server already copying that chunk: another flatten of
				 * the file is running (EBUSY from the MDS means changed). */
				rc = ops[k].status == -EBUSY ? -EALREADY : ops[k].status;
			}
			if (ops[k].has_alloc && ops[k].alloc > bytes)
				bytes = ops[k].alloc;
		}
		struct msg_alloc a = { .index = pairs[2 * p].index, .chunk_id = pairs[2 * p].chunk_id,
				       .bytes = bytes, .own = bytes };
		msg_alloc_put(allocs, &a);
		(*nallocs)++;
	}
	dsio_batch_destroy(&b);
	dsio_ops_free(ops, nops);
	if (rc == 0 && allocs->err)
		rc = -ENOMEM;
	return rc;
}

int vdifs_flatten_copy(struct vdifs_client *c, uint64_t ino, uint64_t first, uint32_t max, struct wbuf *allocs,
		       uint32_t *nallocs)
{
	struct msg_flatten_chunks_req m = { .vol = c->vol, .ino = ino, .first = first, .max = max };
	struct rpc_result res;
	struct msg_list_rep rep;
	struct wreader r;
	struct wbuf b;
	wbuf_init(&b);
	msg_flatten_chunks_req_put(&b, &m);
	int rc = client_mds_call(c, VDIFS_MSG_FLATTEN_CHUNKS, &b, &res);
	wbuf_free(&b);
	if (rc == 0 && msg_list_rep_decode(res.payload, res.len, &rep) != 0)
		rc = client_bad_reply(VDIFS_MSG_FLATTEN_CHUNKS);
	if (rc < 0) {
		rpc_result_free(&res);
		return rc;
	}
	struct vdifs_chunk *pairs = malloc(2 * FLATTEN_WINDOW * sizeof(*pairs));
	size_t n = 0;
	if (!pairs)
		rc = -ENOMEM;
	wreader_init(&r, rep.items.p, rep.items.len);
	for (uint32_t got = 0; got < rep.count && rc == 0; got++) {
		for (int k = 0; k < 2 && rc == 0; k++) {
			struct msg_chunk_loc loc;
			msg_chunk_loc_get(&r, &loc);
			if (r.err || client_chunk_from_loc(c, &loc, &pairs[2 * n + k]) != 0 ||
			    pairs[2 * n + k].nrep == 0 || loc.index < first || loc.index - first >= max)
				rc = client_bad_reply(VDIFS_MSG_FLATTEN_CHUNKS);
		}
		/* A new chunk is plain, on the servers of its source. */
		if (rc == 0 && (pairs[2 * n].nbase || pairs[2 * n].index != pairs[2 * n + 1].index))
			rc = client_bad_reply(VDIFS_MSG_FLATTEN_CHUNKS);
		if (rc == 0 && ++n == FLATTEN_WINDOW) {
			rc = copy_pairs(c, pairs, n, allocs, nallocs);
			n = 0;
		}
	}
	if (rc == 0 && wreader_finish(&r) != 0)
		rc = client_bad_reply(VDIFS_MSG_FLATTEN_CHUNKS);
	if (rc == 0 && n)
		rc = copy_pairs(c, pairs, n, allocs, nallocs);
	free(pairs);
	rpc_result_free(&res);
	return rc;
}

int vdifs_flatten_end(struct vdifs_client *c, uint64_t ino, bool abandon, const struct wbuf *allocs,
		      uint32_t nallocs, struct vdifs_attr *out)
{
	struct msg_flatten_end_req m = { .vol = c->vol, .ino = ino, .flags = abandon ? 1 : 0,
					 .count = abandon ? 0 : nallocs,
					 .items = { abandon ? NULL : allocs->data,
						    abandon ? 0 : (uint32_t)allocs->len } };
	struct vdifs_attr a;
	struct wbuf b;
	wbuf_init(&b);
	msg_flatten_end_req_put(&b, &m);
	int rc = abandon ? client_call_void(c, VDIFS_MSG_FLATTEN_END, &b)
			 : client_call_attr(c, VDIFS_MSG_FLATTEN_END, &b, out ? out : &a);
	wbuf_free(&b);
	return rc;
}
