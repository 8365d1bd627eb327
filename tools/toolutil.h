/*
 * toolutil: what every vdifs command-line tool shares: finding the cluster
 * (--mds, --key-file, --insecure, or -C DIR of a vdifs-cluster), errors in the
 * form "prog: thing: cause", human-readable sizes, and JSON string output.
 */
#ifndef VDIFS_TOOLUTIL_H
#define VDIFS_TOOLUTIL_H

#include "client.h"
#include "rpc.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

extern const char *tool_prog;

struct tool_target {
	char mds[300];      /* host:port */
	char key_file[4096];
	bool insecure;
};

/* Defaults from the environment (VDIFS_MDS, VDIFS_KEY_FILE), else
 * 127.0.0.1:9400 and /etc/vdifs/cluster.key. */
void tool_target_defaults(struct tool_target *t);
/* A local cluster as vdifs-cluster records it in DIR/cluster.conf. */
struct tool_cluster {
	char mds[300];
	char key_file[4096];
	bool insecure;
	uint32_t nds;
	uint32_t replicas;
	uint32_t port;
	char host[64]; /* address every server listens on and advertises (default 127.0.0.1) */
	uint64_t chunk_size;
	char volume[256];
	char mnt[4096];
};

/* Reads DIR/cluster.conf.  0 or -errno (a message is printed unless quiet). */
int tool_cluster_load(struct tool_cluster *cl, const char *dir, bool quiet);
/* Writes DIR/cluster.conf.  0 or -errno (message printed). */
int tool_cluster_save(const struct tool_cluster *cl, const char *dir);
/* Points t at the cluster of DIR.  0 or -errno (message printed). */
int tool_target_from_cluster_dir(struct tool_target *t, const char *dir);
/* Connects as role; prints the error and returns NULL on failure. */
struct vdifs_client *tool_connect(const struct tool_target *t, enum vdifs_role role);

void tool_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* "64.0 MiB" */
const char *tool_human_size(uint64_t bytes, char *buf, size_t len);
/* Writes s as a JSON string literal (quotes included). */
void tool_json_string(FILE *f, const char *s);
/* A progress bar "what [####    ]  42%" on stderr when it is a terminal
 * (nothing otherwise); done == total ends the line. */
void tool_progress(const char *what, uint64_t done, uint64_t total);

#endif
