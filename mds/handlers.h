/*
 * handlers: the MDS side of every request in the message catalogue -- decode,
 * check the caller may do it, call the module, encode the reply.
 *
 * Plugged into rpc_server_config: handlers_dispatch as the handler and
 * handlers_conn_closed as on_close, both with a struct mds * as arg.
 */
#ifndef VDIFS_MDS_HANDLERS_H
#define VDIFS_MDS_HANDLERS_H

#include "rpc.h"

/* rpc_handler_fn: answers req at once (every MDS operation is synchronous). */
void handlers_dispatch(void *arg, const struct rpc_request *req);
/* rpc_close_fn: ends the connection's session (releasing its open files). */
void handlers_conn_closed(void *arg, struct rpc_conn *conn);

#endif
