/*
 * One epoll loop per thread. Timers are a list sorted by deadline (connections
 * hold a handful each; a heap can come when profiles ask for it). Deferred
 * calls are 0 ms timers, so they run on the next iteration, after the events
 * of the current one.
 */
#include "reactor/reactor.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "util/log.h"
#include "util/mem.h"

#define ISD_REACTOR_MAX_EVENTS 64

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
	int wakefd;                     /* eventfd written by isd_reactor_stop() */
	volatile int stop;
	TAILQ_HEAD(isd_timer_list, isd_timer) timers; /* sorted by deadline */
	struct isd_timer_list turn_end;         /* in the order armed */
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
	else
		TAILQ_REMOVE(&r->timers, t, link);
	t->armed = false;
	t->turn_end = false;
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
	isd_reactor_timer_start(r, t, 0);
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

	if (!TAILQ_EMPTY(&r->turn_end))
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
	run_timers(r);
	run_turn_end(r);
}

int
isd_reactor_fd(const struct isd_reactor *r)
{
	return r->epfd;
}

static void
run_timers(struct isd_reactor *r)
{
	uint64_t now = isd_now_ns();
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
	int n;

	n = epoll_wait(r->epfd, evs, ISD_REACTOR_MAX_EVENTS, next_timeout_ms(r, timeout_ms));
	if (n < 0) {
		if (errno == EINTR)
			return 0;
		return -errno;
	}
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
	run_timers(r);
	run_turn_end(r);
	return 0;
}

int
isd_reactor_run(struct isd_reactor *r)
{
	r->stop = 0;
	while (!r->stop) {
		int rc = isd_reactor_poll(r, -1);

		if (rc < 0) {
			isd_log_err("reactor: epoll_wait: %s", strerror(-rc));
			return rc;
		}
	}
	return 0;
}

void
isd_reactor_stop(struct isd_reactor *r)
{
	uint64_t one = 1;
	ssize_t n;

	r->stop = 1;
	n = write(r->wakefd, &one, sizeof(one));
	(void)n;
}
