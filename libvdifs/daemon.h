/*
 * daemon: the start-up steps every vdifs server shares: fatal configuration
 * errors in the form "prog: thing: cause", log level and file, the cluster
 * key (or --insecure), the pid file, and stopping cleanly on SIGTERM/SIGINT.
 * Run once at start; nothing here is on a request path.
 */
#ifndef VDIFS_DAEMON_H
#define VDIFS_DAEMON_H

#include "rpc.h"

#include <stdbool.h>

struct event_base;
struct event;

/* Names the program for daemon_die and the log. */
void daemon_init(const char *prog);
/* Prints "prog: message" to stderr and exits 1. */
void daemon_die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
/* Applies --log-level (error|warn|info|debug) and --log-file (may be NULL); dies on bad values. */
void daemon_setup_log(const char *level, const char *file);
/* Loads the cluster key, or an empty one with --insecure; dies when neither or both are given. */
void daemon_load_auth(const char *key_file, bool insecure, struct rpc_auth *auth);
/* Dies unless max_payload lies in 68 KiB..256 MiB. */
void daemon_check_max_payload(uint64_t max_payload);
/* Writes getpid() to path; dies on failure. */
void daemon_write_pid_file(const char *path);
/* SIGTERM and SIGINT break base's loop; SIGPIPE is ignored.  The two events
 * are returned for event_free after the loop; dies on failure. */
void daemon_stop_on_signals(struct event_base *base, struct event *out[2]);

#endif
