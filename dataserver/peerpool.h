/*
 * peerpool: this data server's client connections to other data servers,
 * one rpc_peer per host:port, shared by every operation forwarded there so
 * that forwarded writes to one replica keep their order on one connection.
 *
 * A dead peer (connection refused, reset, authentication failed) stays in the
 * pool until the next peerpool_get() of its address, which replaces it: a
 * replica that comes back is reconnected on first use, never in a loop.
 * Used from the event loop thread of the base it was made for.
 */
#ifndef VDIFS_DS_PEERPOOL_H
#define VDIFS_DS_PEERPOOL_H

#include "rpc.h"

#include <stdint.h>

#define PEERPOOL_MAX 1024u /* distinct peers kept; beyond that new ones are refused */

struct event_base;
struct peerpool;

struct peerpool_config {
	struct event_base *base;
	const struct rpc_auth *auth; /* copied by each peer */
	const char *name;            /* told to peers in HELLO */
	uint32_t max_payload;        /* bound on replies (0: default) */
	uint32_t connect_timeout_ms; /* 0: rpc's default */
};

/* A pool with no connections yet; NULL on ENOMEM.  cfg strings are copied. */
struct peerpool *peerpool_new(const struct peerpool_config *cfg);
/* Frees every peer; their pending calls complete with -ECANCELED before it
 * returns.  NULL is a no-op. */
void peerpool_free(struct peerpool *pp);
/* The live peer for host:port, connecting (asynchronously) when there is none
 * or the old one died.  The pool owns it: valid until it is dropped or the
 * pool freed.  NULL when out of memory or PEERPOOL_MAX peers are live. */
struct rpc_peer *peerpool_get(struct peerpool *pp, const char *host, uint16_t port);
/* Closes p (one that stopped answering): its pending calls complete with
 * -ECANCELED, possibly before this returns; the next get reconnects.  A peer
 * not in the pool is ignored. */
void peerpool_drop(struct peerpool *pp, struct rpc_peer *p);

#endif
