/*
 * workers: a job queue served by a few threads, with completions handed
 * back to the event loop through one event (see workers.h).
 *
 * Jobs are rare and slow (one fdatasync per DS_SYNC), so one mutex over both
 * lists is plenty; the lists are intrusive, so submitting never allocates.
 */
#include "workers.h"

#include "log.h"

#include <event2/event.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

struct workers {
	struct event_base *base;
	struct event *done_ev;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct workers_job *todo, *todo_tail; /* FIFO */
	struct workers_job *done, *done_tail; /* FIFO */
	bool stopping;
	pthread_t *threads;
	unsigned nthreads;
};

static void push(struct workers_job **head, struct workers_job **tail, struct workers_job *j)
{
	j->next = NULL;
	if (*tail)
		(*tail)->next = j;
	else
		*head = j;
	*tail = j;
}

static void *worker_main(void *arg)
{
	struct workers *w = arg;
	pthread_mutex_lock(&w->mu);
	for (;;) {
		while (!w->todo && !w->stopping)
			pthread_cond_wait(&w->cv, &w->mu);
		struct workers_job *j = w->todo;
		if (!j)
			break; /* stopping and nothing left */
		w->todo = j->next;
		if (!w->todo)
			w->todo_tail = NULL;
		pthread_mutex_unlock(&w->mu);
		j->run(j);
		pthread_mutex_lock(&w->mu);
		push(&w->done, &w->done_tail, j);
		event_active(w->done_ev, EV_READ, 0);
	}
	pthread_mutex_unlock(&w->mu);
	return NULL;
}

/* On the loop thread: every finished job gets its done(). */
static void done_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct workers *w = arg;
	pthread_mutex_lock(&w->mu);
	struct workers_job *j = w->done;
	w->done = w->done_tail = NULL;
	pthread_mutex_unlock(&w->mu);
	while (j) {
		struct workers_job *next = j->next;
		j->done(j);
		j = next;
	}
}

struct workers *workers_start(struct event_base *base, unsigned nthreads)
{
	struct workers *w = calloc(1, sizeof(*w));
	if (!w)
		return NULL;
	w->base = base;
	pthread_mutex_init(&w->mu, NULL);
	pthread_cond_init(&w->cv, NULL);
	w->done_ev = event_new(base, -1, 0, done_cb, w);
	w->threads = nthreads ? calloc(nthreads, sizeof(*w->threads)) : NULL;
	if (!w->done_ev || (nthreads && !w->threads)) {
		workers_stop(w);
		return NULL;
	}
	for (unsigned i = 0; i < nthreads; i++) {
		if (pthread_create(&w->threads[i], NULL, worker_main, w) != 0) {
			log_warn("workers: only %u of %u threads started", i, nthreads);
			break;
		}
		w->nthreads++;
	}
	return w;
}

void workers_submit(struct workers *w, struct workers_job *j)
{
	if (w->nthreads == 0) {
		j->run(j);
		j->done(j);
		return;
	}
	pthread_mutex_lock(&w->mu);
	push(&w->todo, &w->todo_tail, j);
	pthread_cond_signal(&w->cv);
	pthread_mutex_unlock(&w->mu);
}

void workers_stop(struct workers *w)
{
	if (!w)
		return;
	pthread_mutex_lock(&w->mu);
	w->stopping = true;
	pthread_cond_broadcast(&w->cv);
	pthread_mutex_unlock(&w->mu);
	for (unsigned i = 0; i < w->nthreads; i++)
		pthread_join(w->threads[i], NULL);
	/* The threads drained the queue; deliver what the loop has not. */
	if (w->done_ev) {
		done_cb(-1, 0, w);
		event_free(w->done_ev);
	}
	free(w->threads);
	pthread_cond_destroy(&w->cv);
	pthread_mutex_destroy(&w->mu);
	free(w);
}
