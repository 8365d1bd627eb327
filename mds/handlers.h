/*
 * handlers: the MDS side of every request in the message catalogue -- decode,
 * check the caller may do it, call the module, encode the reply.
 *
 * Plugged into rpc_server_config: handlers_dispatch as the handler and
 * handlers_conn_closed as on_close, both with the struct handlers * from
 * handlers_new() as arg.
 */
#ifndef VDIFS_MDS_HANDLERS_H
#define VDIFS_MDS_HANDLERS_H

#include "mds.h"
#include "rpc.h"

struct event_base;
struct handlers;

/* Makes the handler context for m on base (a timer for deferred requests
 * lives there).  0 and *out, or -ENOMEM.  Free it with handlers_free()
 * before the base. */
int handlers_new(struct event_base *base, struct mds *m, struct handlers **out);
/* Drops requests still deferred (their connections are released). */
void handlers_free(struct handlers *h);

/* rpc_handler_fn: answers req before returning, except a CHUNK_ALLOC that
 * must wait for the data servers to report after an MDS start: that one is
 * answered from a timer, within the liveness timeout. */
void handlers_dispatch(void *arg, const struct rpc_request *req);
/* rpc_close_fn: ends the connection's session (releasing its open files). */
void handlers_conn_closed(void *arg, struct rpc_conn *conn);

#endif
