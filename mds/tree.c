/*
 * tree: the layers descending from a file's oldest ancestor and who uses
 * them (see tree.h).
 */
#include "tree.h"

#include "layer.h"
#include "log.h"
#include "mdstore.h"
#include "namespace.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

struct tlayer {
	uint64_t id, parent, owned;
	bool in_tree, used;
};

struct tree {
	struct tlayer *layers; /* the volume's layers, by id */
	size_t nlayers;
	struct msg_tree_node *nodes;
	size_t nnodes, cap;
};

static struct tlayer *find_layer(struct tree *tr, uint64_t id)
{
	size_t lo = 0, hi = tr->nlayers;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (tr->layers[mid].id == id)
			return &tr->layers[mid];
		if (tr->layers[mid].id < id)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

/* Every layer record of volume vol, in id order (keys sort by id). */
static int load_layers(struct mdstore *st, uint32_t vol, struct tree *tr)
{
	struct mdstore_iter *it = NULL;
	struct mdstore_key prefix;
	const uint8_t *key, *val;
	size_t kl, vl, cap = 0;
	mdstore_key_tag(&prefix, 'L');
	int rc = mdstore_iter_open(st, &prefix, NULL, &it);
	if (rc < 0)
		return rc;
	while ((rc = mdstore_iter_next(it, &key, &kl, &val, &vl)) > 0) {
		struct md_layer l;
		if (kl != 9 || mdstore_decode_layer(val, vl, &l) < 0) {
			log_error("corrupt layer record");
			rc = -EIO;
			break;
		}
		if (l.vol != vol)
			continue;
		if (tr->nlayers == cap) {
			cap = cap ? cap * 2 : 256;
			struct tlayer *n = realloc(tr->layers, cap * sizeof(*n));
			if (!n) {
				rc = -ENOMEM;
				break;
			}
			tr->layers = n;
		}
		tr->layers[tr->nlayers++] = (struct tlayer){.id = mdstore_be64(key + 1), .parent = l.parent};
	}
	mdstore_iter_close(it);
	return rc < 0 ? rc : 0;
}

static int add_node(struct tree *tr, const struct msg_tree_node *n)
{
	if (tr->nnodes == tr->cap) {
		size_t cap = tr->cap ? tr->cap * 2 : 256;
		struct msg_tree_node *p = realloc(tr->nodes, cap * sizeof(*p));
		if (!p)
			return -ENOMEM;
		tr->nodes = p;
		tr->cap = cap;
	}
	tr->nodes[tr->nnodes++] = *n;
	return 0;
}

/* A node per inode of vol whose layer is in the tree. */
static int add_inodes(struct mdstore *st, uint32_t vol, struct tree *tr)
{
	struct mdstore_iter *it = NULL;
	struct mdstore_key prefix;
	const uint8_t *key, *val;
	size_t kl, vl;
	mdstore_key_vol_prefix(&prefix, 'I', vol);
	int rc = mdstore_iter_open(st, &prefix, NULL, &it);
	if (rc < 0)
		return rc;
	while ((rc = mdstore_iter_next(it, &key, &kl, &val, &vl)) > 0) {
		struct md_inode i;
		if (kl != 13 || mdstore_decode_inode(val, vl, &i) < 0) {
			log_error("volume %u: corrupt inode record", vol);
			rc = -EIO;
			break;
		}
		if (!S_ISREG(i.mode) || !i.layer)
			continue;
		struct tlayer *l = find_layer(tr, i.layer);
		if (!l || !l->in_tree)
			continue;
		l->used = true;
		struct msg_tree_node n = {.layer = l->id, .parent = l->parent, .ino = mdstore_be64(key + 5),
					  .size = i.size, .owned = l->owned,
					  .kind = (i.flags & MD_INODE_SNAPSHOT) ? TREE_SNAPSHOT : TREE_FILE};
		rc = add_node(tr, &n);
		if (rc < 0)
			break;
	}
	mdstore_iter_close(it);
	return rc < 0 ? rc : 0;
}

static int node_cmp(const void *a, const void *b)
{
	const struct msg_tree_node *x = a, *y = b;
	if (x->layer != y->layer)
		return x->layer < y->layer ? -1 : 1;
	return x->ino < y->ino ? -1 : x->ino > y->ino;
}

/* Marks the layers descending from root: a parent's id is always below its
 * children's (it existed first), so one pass in id order settles all. */
static int mark_tree(struct mdstore_txn *t, struct tree *tr, uint64_t root)
{
	for (size_t k = 0; k < tr->nlayers; k++) {
		struct tlayer *l = &tr->layers[k];
		struct tlayer *p = l->parent ? find_layer(tr, l->parent) : NULL;
		l->in_tree = l->id == root || (p && p->in_tree);
		if (l->in_tree) {
			uint64_t blocks;
			int rc = layer_space(t, l->id, &blocks, &l->owned);
			if (rc < 0)
				return rc;
		}
	}
	return 0;
}

int tree_list(struct mds *m, uint32_t vol, uint64_t ino, uint32_t skip, struct wbuf *items, uint32_t *count)
{
	struct mdstore_txn *t;
	struct md_volume v;
	struct md_inode i;
	struct tree tr = {0};
	uint64_t root;
	*count = 0;
	int rc = namespace_begin_file(m, vol, ino, &v, &t, &i);
	if (rc < 0)
		return rc;
	/* The oldest ancestor of the file's layer is the root. */
	for (root = i.layer; rc == 0;) {
		struct md_layer l;
		rc = layer_load(t, root, &l);
		if (rc < 0 || !l.parent)
			break;
		root = l.parent;
	}
	if (rc == 0)
		rc = load_layers(mdstore_txn_store(t), vol, &tr);
	if (rc == 0)
		rc = mark_tree(t, &tr, root);
	if (rc == 0)
		rc = add_inodes(mdstore_txn_store(t), vol, &tr);
	for (size_t k = 0; rc == 0 && k < tr.nlayers; k++) {
		const struct tlayer *l = &tr.layers[k];
		if (l->in_tree && !l->used)
			rc = add_node(&tr, &(struct msg_tree_node){.layer = l->id, .parent = l->parent,
								  .kind = TREE_FROZEN, .owned = l->owned});
	}
	if (rc == 0) {
		qsort(tr.nodes, tr.nnodes, sizeof(*tr.nodes), node_cmp);
		for (size_t k = skip; k < tr.nnodes && *count < TREE_REPLY_MAX; k++) {
			msg_tree_node_put(items, &tr.nodes[k]);
			(*count)++;
		}
		if (items->err)
			rc = -ENOMEM;
	}
	free(tr.layers);
	free(tr.nodes);
	mdstore_txn_abort(t);
	return rc;
}
