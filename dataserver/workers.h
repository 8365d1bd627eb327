/*
 * workers: a few threads for the blocking calls the event loop must not wait
 * on (fdatasync of a chunk takes milliseconds to seconds, during which every
 * other client of the data server would stall).  A job runs on a worker and
 * then completes on the loop thread of the base the pool was made for.
 */
#ifndef VDIFS_DS_WORKERS_H
#define VDIFS_DS_WORKERS_H

struct event_base;
struct workers;

/* A job is embedded in the caller's structure, which stays alive until done()
 * was called. */
struct workers_job {
	void (*run)(struct workers_job *j);  /* on a worker: touches nothing the loop owns */
	void (*done)(struct workers_job *j); /* then on the loop thread; may free the job */
	struct workers_job *next;            /* private to the pool */
};

/* Starts nthreads workers completing jobs on base (made with threads enabled:
 * rpc_global_init() before event_base_new()).  With nthreads 0, or when no
 * thread can be started, jobs run inline in workers_submit().  NULL on ENOMEM. */
struct workers *workers_start(struct event_base *base, unsigned nthreads);
/* Queues j (never fails).  Call on the loop thread. */
void workers_submit(struct workers *w, struct workers_job *j);
/* Runs every queued job to its done() (on the calling thread, which must be
 * the loop thread or the loop must be stopped), then stops the threads and
 * frees the pool.  NULL is a no-op. */
void workers_stop(struct workers *w);

#endif
