/*
 * Monitors (monitor.h). Each thread keeps the monitors it holds, innermost
 * last, each with a count, and a queue of deferred calls that run when the
 * last one is left.
 */
#include "util/monitor.h"

#include <stdatomic.h>
#include <stdlib.h>

#include "util/log.h"

struct held {
	struct isd_monitor *m;
	unsigned depth;
};

static __thread struct {
	struct held held[ISD_MONITOR_NEST];
	unsigned n;
	struct isd_monitor_call *head, *tail;
	bool draining;
} t_mon;

static atomic_bool g_threaded;

void
isd_monitor_init(struct isd_monitor *m)
{
	pthread_mutex_init(&m->mu, NULL);
}

void
isd_monitor_destroy(struct isd_monitor *m)
{
	pthread_mutex_destroy(&m->mu);
}

void
isd_monitor_set_threaded(bool on)
{
	atomic_store(&g_threaded, on);
}

bool
isd_monitor_threaded(void)
{
	return atomic_load_explicit(&g_threaded, memory_order_relaxed);
}

static struct held *
find(const struct isd_monitor *m)
{
	for (unsigned i = 0; i < t_mon.n; i++)
		if (t_mon.held[i].m == m)
			return &t_mon.held[i];
	return NULL;
}

void
isd_monitor_enter(struct isd_monitor *m)
{
	struct held *h;

	if (m == NULL || !isd_monitor_threaded())
		return;
	/* the common case first: the one entered last, entered again */
	if (t_mon.n > 0 && t_mon.held[t_mon.n - 1].m == m) {
		t_mon.held[t_mon.n - 1].depth++;
		return;
	}
	h = find(m);
	if (h != NULL) {
		h->depth++;
		return;
	}
	if (t_mon.n == ISD_MONITOR_NEST) {
		isd_log_err("monitor: more than %d monitors held at once", ISD_MONITOR_NEST);
		abort();
	}
	h = &t_mon.held[t_mon.n++];
	h->m = m;
	h->depth = 1;
	pthread_mutex_lock(&m->mu);
}

bool
isd_monitor_try_enter(struct isd_monitor *m)
{
	struct held *h;

	if (m == NULL || !isd_monitor_threaded())
		return true;
	h = find(m);
	if (h != NULL) {
		h->depth++;
		return true;
	}
	if (t_mon.n == ISD_MONITOR_NEST) {
		isd_log_err("monitor: more than %d monitors held at once", ISD_MONITOR_NEST);
		abort();
	}
	if (pthread_mutex_trylock(&m->mu) != 0)
		return false;
	h = &t_mon.held[t_mon.n++];
	h->m = m;
	h->depth = 1;
	return true;
}

static __attribute__((noinline)) void
drain(void)
{
	struct isd_monitor_call *c;

	/* a deferred call that enters and leaves a monitor comes back here: the
	 * outer loop runs what it queues */
	if (t_mon.draining)
		return;
	t_mon.draining = true;
	while ((c = t_mon.head) != NULL) {
		t_mon.head = c->next;
		if (t_mon.head == NULL)
			t_mon.tail = NULL;
		c->next = NULL;
		c->fn(c->arg);
	}
	t_mon.draining = false;
}

void
isd_monitor_leave(struct isd_monitor *m)
{
	struct held *h;

	if (m == NULL || !isd_monitor_threaded())
		return;
	/* the common case: the innermost one, left for good */
	h = t_mon.n > 0 ? &t_mon.held[t_mon.n - 1] : NULL;
	if (h != NULL && h->m == m) {
		if (--h->depth > 0)
			return;
		pthread_mutex_unlock(&m->mu);
		if (--t_mon.n == 0 && t_mon.head != NULL)
			drain();
		return;
	}
	h = find(m);
	if (h == NULL) {
		isd_log_err("monitor: left one this thread does not hold");
		abort();
	}
	if (--h->depth > 0)
		return;
	pthread_mutex_unlock(&m->mu);
	t_mon.n--;
	for (struct held *e = &t_mon.held[t_mon.n]; h < e; h++)
		h[0] = h[1];
	if (t_mon.n == 0 && t_mon.head != NULL)
		drain();
}

struct isd_monitor *
isd_monitor_current(void)
{
	return t_mon.n > 0 ? t_mon.held[t_mon.n - 1].m : NULL;
}

bool
isd_monitor_held(const struct isd_monitor *m)
{
	return m != NULL && find(m) != NULL;
}

void
isd_monitor_after(struct isd_monitor_call *c, void (*fn)(void *arg), void *arg)
{
	c->fn = fn;
	c->arg = arg;
	c->next = NULL;
	if (t_mon.n == 0 && !t_mon.draining) {
		/* also with one reactor, where nothing is ever held */
		fn(arg);
		return;
	}
	if (t_mon.tail != NULL)
		t_mon.tail->next = c;
	else
		t_mon.head = c;
	t_mon.tail = c;
}
