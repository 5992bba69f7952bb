/*
 * One epoll loop per thread. Timers are a list sorted by deadline (connections
 * hold a handful each; a heap can come when profiles ask for it). Deferred
 * calls are 0 ms timers, so they run on the next iteration, after the events
 * of the current one.
 */
#define _GNU_SOURCE     /* pthread_setaffinity_np */
#include "reactor/reactor.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "util/log.h"
#include "util/mem.h"

#define ISD_REACTOR_MAX_EVENTS 64
/* ADAPTIVE: the spin after work grows up to this many times the configured one. */
#define ISD_REACTOR_POLL_GROW 8u

/* Per-fd registration; epoll_event.data.ptr points here. */
struct isd_reactor_fd {
	int fd;
	isd_fd_cb cb;
	void *arg;
	bool dead;                      /* removed while its event was being dispatched */
	struct isd_reactor_fd *next_dead;
};

struct isd_reactor {
	int epfd;
	int wakefd;                     /* eventfd: isd_reactor_stop(), posts to a sleeper */
	atomic_int stop;                /* set from any thread or a signal handler */
	/*
	 * Messages posted by any thread, newest first (a Treiber stack: pushing is
	 * one compare-and-swap, taking them all is one exchange). A poster writes
	 * the eventfd only when the loop says it may sleep: `sleeping` and the
	 * inbox are both seq_cst, so either the poster sees sleeping set and
	 * wakes the loop, or the loop sees the message before it sleeps.
	 */
	_Atomic(struct isd_reactor_msg *) inbox;
	atomic_bool sleeping;
	enum isd_reactor_mode mode;
	uint64_t poll_ns;               /* ADAPTIVE: the configured spin after work (the floor) */
	/* ADAPTIVE: the spin now, poll_ns .. ISD_REACTOR_POLL_GROW x poll_ns
	 * (adapt_spin); only the owner writes it */
	_Atomic uint64_t poll_cur_ns;
	uint64_t last_work_ns;
	uint64_t turn_ns;               /* the clock when this turn's dispatch began */
	unsigned index;
	struct isd_reactor_group *group;        /* NULL: made alone */
	atomic_int conns;                       /* connections placed here (placement) */
	_Atomic uint64_t n_turns, n_sleeps, n_msgs;     /* written by the owner only */
	TAILQ_HEAD(isd_timer_list, isd_timer) timers; /* sorted by deadline */
	struct isd_timer_list turn_end;         /* in the order armed */
	/* isd_reactor_defer(), in the order armed; each one's deadline_ns holds
	 * its number from defer_seq, so a round runs only those armed before it */
	struct isd_timer_list deferred;
	uint64_t defer_seq;
	struct isd_reactor_fd **fds;    /* index: fd number */
	int nfds;
	struct isd_reactor_fd *dead;    /* freed after the current dispatch round */
};

uint64_t
isd_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static _Thread_local struct isd_reactor *tls_current;

struct isd_reactor *
isd_reactor_current(void)
{
	return tls_current;
}

unsigned
isd_reactor_index(const struct isd_reactor *r)
{
	return r->index;
}

void
isd_reactor_set_index(struct isd_reactor *r, unsigned index)
{
	r->index = index;
}

/* A counter only its owner writes: a plain add, atomic only so that another
 * thread may read it. */
static inline void
count(_Atomic uint64_t *c, uint64_t n)
{
	atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + n,
			      memory_order_relaxed);
}

void
isd_reactor_get_stats(const struct isd_reactor *r, struct isd_reactor_stats *out)
{
	out->turns = atomic_load_explicit(&r->n_turns, memory_order_relaxed);
	out->sleeps = atomic_load_explicit(&r->n_sleeps, memory_order_relaxed);
	out->msgs = atomic_load_explicit(&r->n_msgs, memory_order_relaxed);
	out->poll_us = atomic_load_explicit(&r->poll_cur_ns, memory_order_relaxed) / 1000u;
	out->mode = r->mode;
}

void
isd_reactor_set_mode(struct isd_reactor *r, enum isd_reactor_mode mode, unsigned poll_us)
{
	r->mode = mode;
	r->poll_ns = (uint64_t)poll_us * 1000u;
	atomic_store_explicit(&r->poll_cur_ns, r->poll_ns, memory_order_relaxed);
}

/*
 * ADAPTIVE, after a sleep that new work ended: a sleep shorter than the
 * longest spin we allow is one a longer spin would have saved (the sleep,
 * then a wake-up, which on a virtual CPU is a halt and its exit: tens of
 * microseconds), so the spin doubles, up to ISD_REACTOR_POLL_GROW times the
 * configured one; a longer sleep means the load went away, and the spin
 * drops back to the configured one. (Linux's KVM sizes its halt polling the
 * same way.) An idle reactor still spins at most that long after its last
 * work, then sleeps.
 */
static void
adapt_spin(struct isd_reactor *r, uint64_t slept_ns)
{
	uint64_t cur = atomic_load_explicit(&r->poll_cur_ns, memory_order_relaxed);
	uint64_t max = r->poll_ns * ISD_REACTOR_POLL_GROW;

	if (slept_ns < max)
		cur = cur * 2 < max ? cur * 2 : max;
	else
		cur = r->poll_ns;
	atomic_store_explicit(&r->poll_cur_ns, cur, memory_order_relaxed);
}

void
isd_reactor_post(struct isd_reactor *r, struct isd_reactor_msg *m)
{
	struct isd_reactor_msg *old = atomic_load_explicit(&r->inbox, memory_order_relaxed);

	do {
		m->next = old;
	} while (!atomic_compare_exchange_weak(&r->inbox, &old, m));
	if (atomic_load(&r->sleeping)) {
		uint64_t one = 1;
		ssize_t n = write(r->wakefd, &one, sizeof(one));

		(void)n;        /* EAGAIN: the counter is full, so a wakeup is pending anyway */
	}
}

/* Runs every message posted so far, oldest first; returns how many. */
static unsigned
run_inbox(struct isd_reactor *r)
{
	struct isd_reactor_msg *m, *fifo = NULL;
	unsigned n = 0;

	if (atomic_load_explicit(&r->inbox, memory_order_relaxed) == NULL)
		return 0;
	m = atomic_exchange_explicit(&r->inbox, NULL, memory_order_acquire);
	while (m != NULL) {
		struct isd_reactor_msg *next = m->next;

		m->next = fifo;
		fifo = m;
		m = next;
	}
	while (fifo != NULL) {
		m = fifo;
		fifo = m->next;
		m->next = NULL;
		m->cb(m->arg);  /* may free m */
		n++;
	}
	count(&r->n_msgs, n);
	return n;
}

static void
wake_cb(void *arg, uint32_t events)
{
	struct isd_reactor *r = arg;
	uint64_t v;

	(void)events;
	if (read(r->wakefd, &v, sizeof(v)) < 0 && errno != EAGAIN)
		isd_log_warn("reactor: eventfd read: %s", strerror(errno));
}

int
isd_reactor_create(struct isd_reactor **out)
{
	struct isd_reactor *r;
	int rc;

	r = calloc(1, sizeof(*r));
	if (r == NULL)
		return -ENOMEM;
	TAILQ_INIT(&r->timers);
	TAILQ_INIT(&r->turn_end);
	TAILQ_INIT(&r->deferred);
	atomic_init(&r->inbox, NULL);
	atomic_init(&r->sleeping, false);
	atomic_init(&r->stop, 0);
	atomic_init(&r->conns, 0);
	r->mode = ISD_REACTOR_EVENT;
	r->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (r->epfd < 0) {
		rc = -errno;
		goto err_free;
	}
	r->wakefd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (r->wakefd < 0) {
		rc = -errno;
		goto err_ep;
	}
	rc = isd_reactor_add_fd(r, r->wakefd, EPOLLIN, wake_cb, r);
	if (rc < 0)
		goto err_wake;
	*out = r;
	return 0;

err_wake:
	close(r->wakefd);
err_ep:
	close(r->epfd);
err_free:
	free(r);
	return rc;
}

static void
free_dead(struct isd_reactor *r)
{
	while (r->dead != NULL) {
		struct isd_reactor_fd *f = r->dead;

		r->dead = f->next_dead;
		free(f);
	}
}

void
isd_reactor_destroy(struct isd_reactor *r)
{
	if (r == NULL)
		return;
	if (atomic_load(&r->inbox) != NULL)
		isd_log_warn("reactor: messages still posted at destroy");
	if (tls_current == r)
		tls_current = NULL;
	isd_reactor_del_fd(r, r->wakefd);
	for (int i = 0; i < r->nfds; i++) {
		if (r->fds[i] != NULL) {
			isd_log_warn("reactor: fd %d still registered at destroy", i);
			free(r->fds[i]);
		}
	}
	free_dead(r);
	/* the thread's spare data-path blocks go with its loop (LeakSanitizer sees none) */
	isd_mem_thread_drain();
	free(r->fds);
	close(r->wakefd);
	close(r->epfd);
	free(r);
}

int
isd_reactor_add_fd(struct isd_reactor *r, int fd, uint32_t events, isd_fd_cb cb, void *arg)
{
	struct epoll_event ev = {0};
	struct isd_reactor_fd *f;

	if (fd < 0 || cb == NULL)
		return -EINVAL;
	if (fd >= r->nfds) {
		int n = fd + 64;
		struct isd_reactor_fd **nf = realloc(r->fds, (size_t)n * sizeof(*nf));

		if (nf == NULL)
			return -ENOMEM;
		memset(nf + r->nfds, 0, (size_t)(n - r->nfds) * sizeof(*nf));
		r->fds = nf;
		r->nfds = n;
	}
	if (r->fds[fd] != NULL)
		return -EEXIST;
	f = calloc(1, sizeof(*f));
	if (f == NULL)
		return -ENOMEM;
	f->fd = fd;
	f->cb = cb;
	f->arg = arg;
	ev.events = events;
	ev.data.ptr = f;
	if (epoll_ctl(r->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
		int rc = -errno;

		free(f);
		return rc;
	}
	r->fds[fd] = f;
	return 0;
}

int
isd_reactor_mod_fd(struct isd_reactor *r, int fd, uint32_t events)
{
	struct epoll_event ev = {0};

	if (fd < 0 || fd >= r->nfds || r->fds[fd] == NULL)
		return -ENOENT;
	ev.events = events;
	ev.data.ptr = r->fds[fd];
	if (epoll_ctl(r->epfd, EPOLL_CTL_MOD, fd, &ev) < 0)
		return -errno;
	return 0;
}

int
isd_reactor_del_fd(struct isd_reactor *r, int fd)
{
	struct isd_reactor_fd *f;

	if (fd < 0 || fd >= r->nfds || r->fds[fd] == NULL)
		return -ENOENT;
	f = r->fds[fd];
	r->fds[fd] = NULL;
	epoll_ctl(r->epfd, EPOLL_CTL_DEL, fd, NULL);
	/* An event for it may still sit in the current batch: free it after the batch. */
	f->dead = true;
	f->next_dead = r->dead;
	r->dead = f;
	return 0;
}

void
isd_timer_init(struct isd_timer *t, isd_task_cb cb, void *arg)
{
	memset(t, 0, sizeof(*t));
	t->cb = cb;
	t->arg = arg;
}

void
isd_reactor_timer_stop(struct isd_reactor *r, struct isd_timer *t)
{
	if (!t->armed)
		return;
	if (t->turn_end)
		TAILQ_REMOVE(&r->turn_end, t, link);
	else if (t->deferred)
		TAILQ_REMOVE(&r->deferred, t, link);
	else
		TAILQ_REMOVE(&r->timers, t, link);
	t->armed = false;
	t->turn_end = false;
	t->deferred = false;
}

void
isd_reactor_timer_start(struct isd_reactor *r, struct isd_timer *t, uint64_t ms)
{
	struct isd_timer *it;

	isd_reactor_timer_stop(r, t);
	t->deadline_ns = isd_now_ns() + ms * 1000000ull;
	/* Insert after every timer with an earlier or equal deadline (FIFO for equal). */
	TAILQ_FOREACH_REVERSE(it, &r->timers, isd_timer_list, link) {
		if (it->deadline_ns <= t->deadline_ns)
			break;
	}
	if (it == NULL)
		TAILQ_INSERT_HEAD(&r->timers, t, link);
	else
		TAILQ_INSERT_AFTER(&r->timers, it, t, link);
	t->armed = true;
}

void
isd_reactor_defer(struct isd_reactor *r, struct isd_timer *t)
{
	if (t->armed && t->deferred)
		return;
	isd_reactor_timer_stop(r, t);
	t->deadline_ns = ++r->defer_seq;
	TAILQ_INSERT_TAIL(&r->deferred, t, link);
	t->armed = true;
	t->deferred = true;
}

/* Runs the deferred timers armed before this call (those they arm wait for the
 * next round). */
static void
run_deferred(struct isd_reactor *r)
{
	uint64_t last = r->defer_seq;
	struct isd_timer *t;

	while ((t = TAILQ_FIRST(&r->deferred)) != NULL && t->deadline_ns <= last) {
		TAILQ_REMOVE(&r->deferred, t, link);
		t->armed = false;
		t->deferred = false;
		t->cb(t->arg);
	}
}

void
isd_reactor_at_turn_end(struct isd_reactor *r, struct isd_timer *t)
{
	if (t->armed && t->turn_end)
		return;
	isd_reactor_timer_stop(r, t);
	TAILQ_INSERT_TAIL(&r->turn_end, t, link);
	t->armed = true;
	t->turn_end = true;
}

static void
run_turn_end(struct isd_reactor *r)
{
	struct isd_timer *t;
	int budget = 1024;

	/* one that re-arms itself runs again in this round, up to the budget */
	while ((t = TAILQ_FIRST(&r->turn_end)) != NULL && budget-- > 0) {
		TAILQ_REMOVE(&r->turn_end, t, link);
		t->armed = false;
		t->turn_end = false;
		t->cb(t->arg);
	}
}

static int
next_timeout_ms(struct isd_reactor *r, int timeout_ms)
{
	struct isd_timer *t = TAILQ_FIRST(&r->timers);
	uint64_t now, ms;

	if (!TAILQ_EMPTY(&r->turn_end) || !TAILQ_EMPTY(&r->deferred))
		return 0;
	if (t == NULL)
		return timeout_ms;
	now = isd_now_ns();
	if (t->deadline_ns <= now)
		return 0;
	ms = (t->deadline_ns - now + 999999) / 1000000;
	if (timeout_ms >= 0 && (uint64_t)timeout_ms < ms)
		return timeout_ms;
	return ms > 60000 ? 60000 : (int)ms;
}

int
isd_reactor_next_timeout_ms(struct isd_reactor *r)
{
	return next_timeout_ms(r, -1);
}

static void run_timers(struct isd_reactor *r);

void
isd_reactor_run_due(struct isd_reactor *r)
{
	tls_current = r;
	r->turn_ns = isd_now_ns();
	run_inbox(r);
	run_deferred(r);
	run_timers(r);
	run_turn_end(r);
}

int
isd_reactor_fd(const struct isd_reactor *r)
{
	return r->epfd;
}

uint64_t
isd_reactor_turn_ns(const struct isd_reactor *r)
{
	return r->turn_ns;
}

static void
run_timers(struct isd_reactor *r)
{
	uint64_t now = r->turn_ns;
	struct isd_timer *t;
	int budget = 1024;

	/*
	 * Only timers due at entry run. A callback that re-arms with 0 ms gets a
	 * deadline of "now" at that moment, normally later than `now` here; the
	 * budget bounds the round if the clock did not move.
	 */
	while ((t = TAILQ_FIRST(&r->timers)) != NULL && t->deadline_ns <= now && budget-- > 0) {
		TAILQ_REMOVE(&r->timers, t, link);
		t->armed = false;
		t->cb(t->arg);
	}
}

int
isd_reactor_poll(struct isd_reactor *r, int timeout_ms)
{
	struct epoll_event evs[ISD_REACTOR_MAX_EVENTS];
	int n, wait_ms = next_timeout_ms(r, timeout_ms);
	unsigned ran;
	bool may_sleep = wait_ms != 0;
	uint64_t now = 0;

	tls_current = r;
	if (may_sleep && r->mode == ISD_REACTOR_ADAPTIVE)
		now = isd_now_ns();
	if (may_sleep && r->mode != ISD_REACTOR_EVENT &&
	    (r->mode == ISD_REACTOR_POLL ||
	     now - r->last_work_ns <
		     atomic_load_explicit(&r->poll_cur_ns, memory_order_relaxed))) {
		wait_ms = 0;
		may_sleep = false;
	}
	if (may_sleep) {
		atomic_store(&r->sleeping, true);
		if (atomic_load(&r->inbox) != NULL)
			wait_ms = 0;
		count(&r->n_sleeps, 1);
	}
	n = epoll_wait(r->epfd, evs, ISD_REACTOR_MAX_EVENTS, wait_ms);
	if (may_sleep)
		atomic_store_explicit(&r->sleeping, false, memory_order_relaxed);
	if (n < 0) {
		if (errno == EINTR)
			return 0;
		return -errno;
	}
	count(&r->n_turns, 1);
	/* one clock read serves the turn's timers and what its callbacks stamp */
	r->turn_ns = isd_now_ns();
	for (int i = 0; i < n; i++) {
		struct isd_reactor_fd *f = evs[i].data.ptr;
		uint32_t e = evs[i].events;

		if (f->dead)
			continue;
		if (e & (EPOLLERR | EPOLLHUP))
			e |= EPOLLIN | EPOLLOUT;
		f->cb(f->arg, e);
	}
	free_dead(r);
	ran = run_inbox(r);
	run_deferred(r);
	run_timers(r);
	run_turn_end(r);
	if (n > 0 || ran > 0) {
		if (r->mode == ISD_REACTOR_ADAPTIVE) {
			if (may_sleep && wait_ms != 0)   /* it slept (not a wake-up already posted) */
				adapt_spin(r, r->turn_ns - now);
			r->last_work_ns = isd_now_ns();
		}
	} else if (!may_sleep && wait_ms == 0 && r->mode != ISD_REACTOR_EVENT) {
		/*
		 * A spin that found nothing: give the core to whatever else is
		 * runnable on it (an initiator on the same machine, the kernel's
		 * softirq threads) instead of holding it for a whole time slice.
		 */
		sched_yield();
	}
	return 0;
}

/* Turns until r->stop is set; a stop set before it starts ends it at once. */
static int
run_loop(struct isd_reactor *r)
{
	while (!atomic_load_explicit(&r->stop, memory_order_relaxed)) {
		int rc = isd_reactor_poll(r, -1);

		if (rc < 0) {
			isd_log_err("reactor: epoll_wait: %s", strerror(-rc));
			return rc;
		}
	}
	return 0;
}

int
isd_reactor_run(struct isd_reactor *r)
{
	atomic_store(&r->stop, 0);
	return run_loop(r);
}

void
isd_reactor_stop(struct isd_reactor *r)
{
	uint64_t one = 1;
	ssize_t n;

	atomic_store(&r->stop, 1);
	n = write(r->wakefd, &one, sizeof(one));
	(void)n;
}

/* ---- groups ---- */

struct isd_reactor_group {
	unsigned n;
	bool started;
	struct isd_reactor **r;
	pthread_t *threads;             /* [0] unused: reactor 0 runs on the creator */
	struct isd_reactor_msg *pause_msg;      /* one per reactor, [0] unused */
	/* the barrier of isd_reactor_group_pause */
	pthread_mutex_t lock;
	pthread_cond_t cond;
	unsigned arrived;               /* reactors at the barrier of this pause */
	unsigned depth;                 /* pause nesting on reactor 0 */
	uint64_t epoch;                 /* bumped by each release */
};

static void
pause_here(void *arg)
{
	struct isd_reactor_group *g = arg;
	uint64_t epoch;

	pthread_mutex_lock(&g->lock);
	epoch = g->epoch;
	g->arrived++;
	pthread_cond_broadcast(&g->cond);
	while (g->epoch == epoch)
		pthread_cond_wait(&g->cond, &g->lock);
	pthread_mutex_unlock(&g->lock);
}

void
isd_reactor_group_pause(struct isd_reactor_group *g)
{
	if (g == NULL || !g->started || g->n < 2 || g->depth++ > 0)
		return;
	for (unsigned i = 1; i < g->n; i++)
		isd_reactor_post(g->r[i], &g->pause_msg[i]);
	pthread_mutex_lock(&g->lock);
	while (g->arrived < g->n - 1)
		pthread_cond_wait(&g->cond, &g->lock);
	pthread_mutex_unlock(&g->lock);
}

void
isd_reactor_group_resume(struct isd_reactor_group *g)
{
	if (g == NULL || !g->started || g->n < 2 || g->depth == 0 || --g->depth > 0)
		return;
	pthread_mutex_lock(&g->lock);
	g->epoch++;
	g->arrived = 0;         /* a reactor still leaving belongs to the old round */
	pthread_cond_broadcast(&g->cond);
	pthread_mutex_unlock(&g->lock);
}

int
isd_reactor_group_create(unsigned n, struct isd_reactor_group **out)
{
	struct isd_reactor_group *g;
	int rc;

	if (n == 0 || n > ISD_REACTOR_MAX)
		return -EINVAL;
	g = calloc(1, sizeof(*g));
	if (g == NULL)
		return -ENOMEM;
	pthread_mutex_init(&g->lock, NULL);
	pthread_cond_init(&g->cond, NULL);
	g->r = calloc(n, sizeof(*g->r));
	g->threads = calloc(n, sizeof(*g->threads));
	g->pause_msg = calloc(n, sizeof(*g->pause_msg));
	if (g->r == NULL || g->threads == NULL || g->pause_msg == NULL) {
		rc = -ENOMEM;
		goto err;
	}
	for (unsigned i = 0; i < n; i++) {
		g->pause_msg[i].cb = pause_here;
		g->pause_msg[i].arg = g;
	}
	for (g->n = 0; g->n < n; g->n++) {
		rc = isd_reactor_create(&g->r[g->n]);
		if (rc < 0)
			goto err;
		isd_reactor_set_index(g->r[g->n], g->n);
		g->r[g->n]->group = g;
	}
	*out = g;
	return 0;
err:
	isd_reactor_group_destroy(g);
	return rc;
}

unsigned
isd_reactor_group_size(const struct isd_reactor_group *g)
{
	return g->n;
}

struct isd_reactor *
isd_reactor_group_get(const struct isd_reactor_group *g, unsigned i)
{
	return i < g->n ? g->r[i] : NULL;
}

static int
pin(pthread_t t, int cpu)
{
	cpu_set_t set;

	if (cpu < 0 || cpu >= CPU_SETSIZE)
		return -EINVAL;
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	return -pthread_setaffinity_np(t, sizeof(set), &set);
}

static void *
group_thread(void *arg)
{
	struct isd_reactor *r = arg;
	/* not isd_reactor_run: a join right after the start must not lose its stop */
	int rc = run_loop(r);

	if (rc < 0)
		isd_log_err("reactor %u: stopped: %s", r->index, strerror(-rc));
	/* the thread's cached blocks go back to malloc before it ends */
	isd_mem_thread_drain();
	return NULL;
}

int
isd_reactor_group_start(struct isd_reactor_group *g, const int *cpus, unsigned ncpus)
{
	unsigned i;
	int rc;

	if (g->started)
		return -EALREADY;
	if (cpus != NULL && ncpus > 0) {
		rc = pin(pthread_self(), cpus[0]);
		if (rc < 0)
			return rc;
	}
	for (i = 1; i < g->n; i++) {
		atomic_store(&g->r[i]->stop, 0);
		rc = -pthread_create(&g->threads[i], NULL, group_thread, g->r[i]);
		if (rc < 0)
			goto err;
		if (cpus != NULL && ncpus > 0) {
			rc = pin(g->threads[i], cpus[i % ncpus]);
			if (rc < 0) {
				i++;    /* this one runs: stop it with the others */
				goto err;
			}
		}
	}
	g->started = true;
	return 0;
err:
	while (--i >= 1) {
		isd_reactor_stop(g->r[i]);
		pthread_join(g->threads[i], NULL);
	}
	return rc;
}

void
isd_reactor_group_join(struct isd_reactor_group *g)
{
	if (!g->started)
		return;
	while (g->depth > 0)
		isd_reactor_group_resume(g);
	for (unsigned i = 1; i < g->n; i++)
		isd_reactor_stop(g->r[i]);
	for (unsigned i = 1; i < g->n; i++)
		pthread_join(g->threads[i], NULL);
	g->started = false;
}

void
isd_reactor_group_destroy(struct isd_reactor_group *g)
{
	if (g == NULL)
		return;
	isd_reactor_group_join(g);
	for (unsigned i = 0; g->r != NULL && i < g->n; i++)
		isd_reactor_destroy(g->r[i]);
	free(g->r);
	free(g->threads);
	free(g->pause_msg);
	pthread_cond_destroy(&g->cond);
	pthread_mutex_destroy(&g->lock);
	free(g);
}

struct isd_reactor_group *
isd_reactor_group_of(const struct isd_reactor *r)
{
	return r != NULL ? r->group : NULL;
}

bool
isd_reactor_group_started(const struct isd_reactor_group *g)
{
	return g != NULL && g->started;
}

void
isd_reactor_pause_others(struct isd_reactor *r)
{
	if (r != NULL && r->group != NULL && r->index == 0)
		isd_reactor_group_pause(r->group);
}

void
isd_reactor_resume_others(struct isd_reactor *r)
{
	if (r != NULL && r->group != NULL && r->index == 0)
		isd_reactor_group_resume(r->group);
}

/* ---- placement ---- */

void
isd_reactor_conns_add(struct isd_reactor *r, int delta)
{
	atomic_fetch_add_explicit(&r->conns, delta, memory_order_relaxed);
}

unsigned
isd_reactor_conns(const struct isd_reactor *r)
{
	int n = atomic_load_explicit(&r->conns, memory_order_relaxed);

	return n > 0 ? (unsigned)n : 0;
}

struct isd_reactor *
isd_reactor_group_pick_in(struct isd_reactor_group *g, const struct isd_reactor_mask *in)
{
	struct isd_reactor *best = g->r[0];

	if (in != NULL) {
		unsigned i = 0;

		while (i < g->n && !isd_reactor_mask_has(in, i))
			i++;
		if (i == g->n)
			in = NULL;      /* names none of ours: every reactor */
		else
			best = g->r[i];
	}
	if (g->started) {
		unsigned least = isd_reactor_conns(best);

		for (unsigned i = best->index + 1; i < g->n && least > 0; i++) {
			unsigned c;

			if (in != NULL && !isd_reactor_mask_has(in, i))
				continue;
			c = isd_reactor_conns(g->r[i]);
			if (c < least) {
				least = c;
				best = g->r[i];
			}
		}
	} else {
		best = g->r[0];
	}
	isd_reactor_conns_add(best, 1);
	return best;
}

struct isd_reactor *
isd_reactor_group_pick(struct isd_reactor_group *g)
{
	return isd_reactor_group_pick_in(g, NULL);
}
