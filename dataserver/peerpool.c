/*
 * peerpool: connections to peer data servers, keyed by host:port (see
 * peerpool.h).
 *
 * A cluster has tens to a few hundred data servers and a write forwards to
 * at most VDIFS_MAX_REPLICAS - 1 of them, so a linear scan of a small array
 * is cheaper than hashing and keeps the code obvious.
 */
#include "peerpool.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

struct pp_entry {
	char host[256];
	uint16_t port;
	struct rpc_peer *peer;
};

struct peerpool {
	struct peerpool_config cfg;
	struct rpc_auth auth;
	char name[64];
	struct pp_entry *ents;
	size_t n, cap;
};

struct peerpool *peerpool_new(const struct peerpool_config *cfg)
{
	struct peerpool *pp = calloc(1, sizeof(*pp));
	if (!pp)
		return NULL;
	pp->cfg = *cfg;
	if (cfg->auth)
		pp->auth = *cfg->auth;
	pp->cfg.auth = &pp->auth;
	strncpy(pp->name, cfg->name ? cfg->name : "vdifs-ds", sizeof(pp->name) - 1);
	pp->cfg.name = pp->name;
	return pp;
}

void peerpool_free(struct peerpool *pp)
{
	if (!pp)
		return;
	/* Detach first: callbacks run by the frees must find an empty pool. */
	struct pp_entry *ents = pp->ents;
	size_t n = pp->n;
	pp->ents = NULL;
	pp->n = pp->cap = 0;
	for (size_t i = 0; i < n; i++)
		rpc_peer_free(ents[i].peer);
	free(ents);
	free(pp);
}

static struct rpc_peer *connect_peer(struct peerpool *pp, const char *host, uint16_t port)
{
	struct rpc_peer_config pc = {
		.host = host,
		.port = port,
		.auth = &pp->auth,
		.role = VDIFS_ROLE_DS,
		.name = pp->name,
		.max_payload = pp->cfg.max_payload,
		.connect_timeout_ms = pp->cfg.connect_timeout_ms,
	};
	return rpc_peer_new(pp->cfg.base, &pc);
}

/* Removes entry i (its peer already freed or about to be). */
static void remove_at(struct peerpool *pp, size_t i)
{
	pp->ents[i] = pp->ents[--pp->n];
}

struct rpc_peer *peerpool_get(struct peerpool *pp, const char *host, uint16_t port)
{
	if (strlen(host) >= sizeof(pp->ents[0].host))
		return NULL;
	for (size_t i = 0; i < pp->n; i++) {
		struct pp_entry *e = &pp->ents[i];
		if (e->port != port || strcmp(e->host, host) != 0)
			continue;
		if (!rpc_peer_dead(e->peer))
			return e->peer;
		/* Dead: no call is pending on it, so freeing runs no callback. */
		struct rpc_peer *p = connect_peer(pp, host, port);
		if (!p)
			return NULL;
		rpc_peer_free(e->peer);
		e->peer = p;
		return p;
	}
	if (pp->n == pp->cap) {
		/* Forget dead peers of servers nobody asked for since. */
		for (size_t i = pp->n; i-- > 0;) {
			if (rpc_peer_dead(pp->ents[i].peer)) {
				rpc_peer_free(pp->ents[i].peer);
				remove_at(pp, i);
			}
		}
	}
	if (pp->n == pp->cap) {
		if (pp->cap >= PEERPOOL_MAX)
			return NULL;
		size_t cap = pp->cap ? pp->cap * 2 : 8;
		struct pp_entry *ents = realloc(pp->ents, cap * sizeof(*ents));
		if (!ents)
			return NULL;
		pp->ents = ents;
		pp->cap = cap;
	}
	struct rpc_peer *p = connect_peer(pp, host, port);
	if (!p)
		return NULL;
	struct pp_entry *e = &pp->ents[pp->n++];
	memset(e, 0, sizeof(*e));
	memcpy(e->host, host, strlen(host) + 1);
	e->port = port;
	e->peer = p;
	return p;
}

void peerpool_drop(struct peerpool *pp, struct rpc_peer *p)
{
	for (size_t i = 0; i < pp->n; i++) {
		if (pp->ents[i].peer == p) {
			/* Unlink first: callbacks run by the free may call peerpool_get. */
			remove_at(pp, i);
			rpc_peer_free(p);
			return;
		}
	}
}
