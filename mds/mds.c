/*
 * mds: brings the metadata server's state up and down (see mds.h).  Runs
 * once per process start; the only work worth noting is freeing orphans a
 * killed MDS left behind.
 */
#include "mds.h"

#include "dedup.h"

#include "namespace.h"
#include "recovery.h"
#include "replicas.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int mds_open(const char *db_path, const struct mds_options *opts, struct mds **out, char *err, size_t errlen)
{
	struct mds *m = calloc(1, sizeof(*m));
	int rc;
	if (!m) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	rc = mdstore_open(db_path, &m->store, err, errlen);
	if (rc < 0)
		goto fail;
	rc = dsreg_open(m->store, opts->heartbeat_ms, opts->ds_timeout_ms, &m->dsreg);
	if (rc < 0) {
		snprintf(err, errlen, "%s: loading data servers: %s", db_path, strerror(-rc));
		goto fail;
	}
	m->recovery = recovery_new(m, opts->recovery_streams);
	if (!m->recovery) {
		rc = -ENOMEM;
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	/* Session ids differ across restarts, so a client can tell a new MDS. */
	rc = session_tab_new((uint64_t)time(NULL) << 20, &m->sessions);
	if (rc < 0) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	rc = namespace_reap_orphans(m);
	if (rc < 0) {
		snprintf(err, errlen, "%s: freeing orphan inodes: %s", db_path, strerror(-rc));
		goto fail;
	}
	/* Duplicate-request records of clients long gone (mds/dedup.h). */
	rc = dedup_sweep(m, DEDUP_TTL_S, NULL);
	if (rc < 0) {
		snprintf(err, errlen, "%s: sweeping duplicate-request records: %s", db_path, strerror(-rc));
		goto fail;
	}
	*out = m;
	return 0;
fail:
	mds_close(m);
	return rc;
}

void mds_close(struct mds *m)
{
	if (!m)
		return;
	session_tab_free(m->sessions);
	recovery_free(m->recovery);
	replicas_checks_free(m->checks);
	dsreg_free(m->dsreg);
	dedup_free(m);
	mdstore_close(m->store);
	free(m);
}
