/*
 * session: what each client connection holds -- its session id, the volume it
 * mounted (and whether read-only), and the files it has open -- plus the total
 * open count of every file across connections, which decides whether an
 * unlinked file is freed at once or kept as an orphan until its last release.
 *
 * Memory only: open counts die with the MDS process, and orphans left behind
 * are freed at the next start (namespace_reap_orphans).
 */
#ifndef VDIFS_MDS_SESSION_H
#define VDIFS_MDS_SESSION_H

#include <stdbool.h>
#include <stdint.h>

struct session_tab;
struct openmap;

struct session {
	uint64_t id;
	bool mounted;
	bool ro;      /* mounted read-only: mutations of vol are refused */
	uint32_t vol; /* when mounted */
	struct openmap *opens;
	struct session *prev, *next; /* the table's list of live sessions */
};

/* 0 and *out, or -ENOMEM.  session ids start at first_id. */
int session_tab_new(uint64_t first_id, struct session_tab **out);
/* Frees the table and every session still open (their opens are dropped
 * without freeing orphans: the next start does that). */
void session_tab_free(struct session_tab *tab);

/* A new session with the next id; NULL when out of memory.  The caller ends
 * it with session_close(). */
struct session *session_new(struct session_tab *tab);

/* Counts one open of (vol, ino) by s.  0 or -ENOMEM. */
int session_open(struct session_tab *tab, struct session *s, uint32_t vol, uint64_t ino);
/* Counts one release.  0 with *last set when no session has the file open
 * any more, or -EBADF when s does not have it open. */
int session_release(struct session_tab *tab, struct session *s, uint32_t vol, uint64_t ino, bool *last);
/* Opens of (vol, ino) over all sessions. */
uint32_t session_open_count(const struct session_tab *tab, uint32_t vol, uint64_t ino);

typedef void (*session_last_fn)(void *arg, uint32_t vol, uint64_t ino);
/* Ends s: drops all its opens, calls last(arg, vol, ino) for each file that no
 * session has open any more (after the counts are updated), and frees s. */
void session_close(struct session_tab *tab, struct session *s, session_last_fn last, void *arg);

#endif
