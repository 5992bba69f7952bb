#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <time.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "reactor/reactor.h"

struct order {
	int seq[8];
	int n;
};

struct tick {
	struct order *o;
	int id;
};

static void
tick_cb(void *arg)
{
	struct tick *t = arg;

	t->o->seq[t->o->n++] = t->id;
}

static void
test_timers_fire_in_deadline_order(void **state)
{
	struct isd_reactor *r;
	struct order o = {0};
	struct tick a = {&o, 1}, b = {&o, 2}, c = {&o, 3};
	struct isd_timer ta, tb, tc;
	uint64_t start = isd_now_ns();

	(void)state;
	assert_int_equal(isd_reactor_create(&r), 0);
	isd_timer_init(&ta, tick_cb, &a);
	isd_timer_init(&tb, tick_cb, &b);
	isd_timer_init(&tc, tick_cb, &c);
	isd_reactor_timer_start(r, &ta, 30);
	isd_reactor_timer_start(r, &tb, 10);
	isd_reactor_defer(r, &tc);
	while (o.n < 3 && isd_now_ns() - start < 2000000000ull)
		assert_int_equal(isd_reactor_poll(r, 100), 0);
	assert_int_equal(o.n, 3);
	assert_int_equal(o.seq[0], 3);
	assert_int_equal(o.seq[1], 2);
	assert_int_equal(o.seq[2], 1);
	isd_reactor_destroy(r);
}

static void
test_timer_stop_prevents_callback(void **state)
{
	struct isd_reactor *r;
	struct order o = {0};
	struct tick a = {&o, 1};
	struct isd_timer ta;

	(void)state;
	assert_int_equal(isd_reactor_create(&r), 0);
	isd_timer_init(&ta, tick_cb, &a);
	isd_reactor_defer(r, &ta);
	isd_reactor_timer_stop(r, &ta);
	assert_int_equal(isd_reactor_poll(r, 20), 0);
	assert_int_equal(o.n, 0);
	isd_reactor_destroy(r);
}

struct pipe_ctx {
	struct isd_reactor *r;
	int fd;
	int reads;
};

static void
pipe_cb(void *arg, uint32_t events)
{
	struct pipe_ctx *p = arg;
	char buf[16];

	assert_true(events & EPOLLIN);
	assert_true(read(p->fd, buf, sizeof(buf)) > 0);
	p->reads++;
	/* removing the fd from inside its own callback must be safe */
	assert_int_equal(isd_reactor_del_fd(p->r, p->fd), 0);
}

static void
test_fd_events_and_removal_in_callback(void **state)
{
	struct isd_reactor *r;
	struct pipe_ctx p = {0};
	int fds[2];

	(void)state;
	assert_int_equal(isd_reactor_create(&r), 0);
	assert_int_equal(pipe(fds), 0);
	p.r = r;
	p.fd = fds[0];
	assert_int_equal(isd_reactor_add_fd(r, fds[0], EPOLLIN, pipe_cb, &p), 0);
	assert_int_equal(isd_reactor_add_fd(r, fds[0], EPOLLIN, pipe_cb, &p), -EEXIST);
	assert_int_equal(write(fds[1], "x", 1), 1);
	assert_int_equal(isd_reactor_poll(r, 1000), 0);
	assert_int_equal(p.reads, 1);
	assert_int_equal(isd_reactor_del_fd(r, fds[0]), -ENOENT);
	close(fds[0]);
	close(fds[1]);
	isd_reactor_destroy(r);
}

static void
stop_cb(void *arg)
{
	isd_reactor_stop(arg);
}

struct turn {
	struct isd_reactor *r;
	struct isd_timer t;
	struct order *o;
	int again;                      /* times it re-arms itself */
};

static void
turn_cb(void *arg)
{
	struct turn *x = arg;

	x->o->seq[x->o->n++] = 9;
	if (x->again-- > 0)
		isd_reactor_at_turn_end(x->r, &x->t);
}

static void
defer_then_turn_end(void *arg)
{
	struct turn *x = arg;

	x->o->seq[x->o->n++] = 1;
	isd_reactor_at_turn_end(x->r, &x->t);
	isd_reactor_at_turn_end(x->r, &x->t);   /* armed twice: runs once */
}

/* A turn-end call runs after the turn's timers, in the same turn, once however
 * often it was armed; one that re-arms itself runs again in that turn; a
 * stopped one never runs; it keeps the loop from sleeping. */
static void
test_turn_end(void **state)
{
	struct isd_reactor *r;
	struct order o = {0};
	struct turn x = { .o = &o, .again = 2 };
	struct isd_timer d;

	(void)state;
	assert_int_equal(isd_reactor_create(&r), 0);
	x.r = r;
	isd_timer_init(&x.t, turn_cb, &x);
	isd_timer_init(&d, defer_then_turn_end, &x);
	isd_reactor_defer(r, &d);
	assert_int_equal(isd_reactor_poll(r, 0), 0);
	assert_int_equal(o.n, 4);
	assert_int_equal(o.seq[0], 1);
	assert_int_equal(o.seq[1], 9);
	assert_int_equal(o.seq[2], 9);
	assert_int_equal(o.seq[3], 9);
	assert_int_equal(isd_reactor_next_timeout_ms(r), -1);
	/* armed from outside the loop: due at once, and stop disarms it */
	isd_reactor_at_turn_end(r, &x.t);
	assert_int_equal(isd_reactor_next_timeout_ms(r), 0);
	isd_reactor_timer_stop(r, &x.t);
	assert_int_equal(isd_reactor_next_timeout_ms(r), -1);
	assert_int_equal(isd_reactor_poll(r, 0), 0);
	assert_int_equal(o.n, 4);
	/* run_due (an embedding loop) runs it too */
	x.again = 0;
	isd_reactor_at_turn_end(r, &x.t);
	isd_reactor_run_due(r);
	assert_int_equal(o.n, 5);
	isd_reactor_destroy(r);
}

struct redefer {
	struct isd_reactor *r;
	struct isd_timer t, other;
	struct order *o;
	int id;
};

static void
redefer_cb(void *arg)
{
	struct redefer *x = arg;

	x->o->seq[x->o->n++] = x->id;
	/* deferring itself from its own callback: the next round, not this one */
	isd_reactor_defer(x->r, &x->t);
}

static void
stop_other_cb(void *arg)
{
	struct redefer *x = arg;

	x->o->seq[x->o->n++] = x->id;
	isd_reactor_timer_stop(x->r, &x->other);
}

struct defer_pipe {
	struct isd_reactor *r;
	struct isd_timer t;
	int fd;
};

static void
defer_from_fd(void *arg, uint32_t events)
{
	struct defer_pipe *p = arg;
	char c;

	(void)events;
	assert_int_equal(read(p->fd, &c, 1), 1);
	isd_reactor_defer(p->r, &p->t);
}

/*
 * Deferred calls: run in the order armed; deferring a deferred one leaves it
 * in place; one armed from an fd callback runs in the same turn; one that
 * defers itself runs once a round (the round it was armed in ends); stop
 * removes it, also from inside another deferred call of the same round; an
 * armed timer that is deferred moves to the deferred calls, and a deferred
 * one started as a timer moves to the timers; the turn clock moves on.
 */
static void
test_defer(void **state)
{
	struct isd_reactor *r;
	struct order o = {0};
	struct tick a = {&o, 1}, b = {&o, 2}, c = {&o, 3};
	struct isd_timer ta, tb, tc;
	struct redefer x = { .o = &o, .id = 7 }, y = { .o = &o, .id = 8 };
	struct defer_pipe p;
	uint64_t t0;
	int fds[2];

	(void)state;
	assert_int_equal(isd_reactor_create(&r), 0);
	isd_timer_init(&ta, tick_cb, &a);
	isd_timer_init(&tb, tick_cb, &b);
	isd_timer_init(&tc, tick_cb, &c);
	isd_reactor_timer_start(r, &tc, 60000);
	isd_reactor_defer(r, &ta);
	isd_reactor_defer(r, &tb);
	isd_reactor_defer(r, &ta);              /* stays first */
	isd_reactor_defer(r, &tc);              /* leaves the timers */
	assert_int_equal(isd_reactor_next_timeout_ms(r), 0);
	assert_int_equal(isd_reactor_poll(r, 0), 0);
	assert_int_equal(o.n, 3);
	assert_int_equal(o.seq[0], 1);
	assert_int_equal(o.seq[1], 2);
	assert_int_equal(o.seq[2], 3);
	assert_int_equal(isd_reactor_next_timeout_ms(r), -1);

	/* a deferred call made a timer: it waits for its deadline */
	o.n = 0;
	isd_reactor_defer(r, &ta);
	isd_reactor_timer_start(r, &ta, 60000);
	assert_true(isd_reactor_next_timeout_ms(r) > 1000);
	assert_int_equal(isd_reactor_poll(r, 0), 0);
	assert_int_equal(o.n, 0);
	isd_reactor_timer_stop(r, &ta);

	/* once a round, and a stop from a call of the same round holds */
	x.r = y.r = r;
	isd_timer_init(&x.t, redefer_cb, &x);
	isd_timer_init(&y.t, stop_other_cb, &y);
	isd_timer_init(&y.other, tick_cb, &a);
	isd_reactor_defer(r, &x.t);
	isd_reactor_defer(r, &y.t);
	isd_reactor_defer(r, &y.other);
	isd_reactor_run_due(r);
	assert_int_equal(o.n, 2);
	assert_int_equal(o.seq[0], 7);
	assert_int_equal(o.seq[1], 8);
	t0 = isd_reactor_turn_ns(r);
	assert_true(t0 > 0);
	assert_int_equal(isd_reactor_poll(r, 0), 0);
	assert_int_equal(o.n, 3);
	assert_int_equal(o.seq[2], 7);
	assert_true(isd_reactor_turn_ns(r) >= t0);
	isd_reactor_timer_stop(r, &x.t);
	assert_int_equal(isd_reactor_next_timeout_ms(r), -1);

	/* armed from an fd callback: the same turn */
	o.n = 0;
	assert_int_equal(pipe(fds), 0);
	p.r = r;
	p.fd = fds[0];
	isd_timer_init(&p.t, tick_cb, &b);
	assert_int_equal(isd_reactor_add_fd(r, fds[0], EPOLLIN, defer_from_fd, &p), 0);
	assert_int_equal(write(fds[1], "x", 1), 1);
	assert_int_equal(isd_reactor_poll(r, 1000), 0);
	assert_int_equal(o.n, 1);
	assert_int_equal(o.seq[0], 2);
	assert_int_equal(isd_reactor_del_fd(r, fds[0]), 0);
	close(fds[0]);
	close(fds[1]);
	isd_reactor_destroy(r);
}

static void
test_run_until_stop(void **state)
{
	struct isd_reactor *r;
	struct isd_timer t;

	(void)state;
	assert_int_equal(isd_reactor_create(&r), 0);
	isd_timer_init(&t, stop_cb, r);
	isd_reactor_timer_start(r, &t, 5);
	assert_int_equal(isd_reactor_run(r), 0);
	isd_reactor_destroy(r);
}

static void
drain_cb(void *arg, uint32_t events)
{
	struct pipe_ctx *p = arg;
	char buf[16];

	(void)events;
	assert_true(read(p->fd, buf, sizeof(buf)) > 0);
	p->reads++;
}

static void
nap_us(long us)
{
	struct timespec ts = { us / 1000000, (us % 1000000) * 1000 };

	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

struct late_write {
	int fd;
	long after_us;
};

static void *
late_write(void *arg)
{
	struct late_write *w = arg;

	nap_us(w->after_us);
	assert_int_equal(write(w->fd, "x", 1), 1);
	return NULL;
}

/* One poll that may sleep, past the spin after the last work, and is woken by
 * the pipe (already written, or written by a thread after_us later). */
static void
sleep_then_work(struct isd_reactor *r, struct pipe_ctx *p, int wfd, long after_us)
{
	struct late_write w = { wfd, after_us };
	pthread_t th;
	int reads = p->reads;

	nap_us(10000);                  /* past any spin (at most 8 x 1 ms here) */
	if (after_us == 0) {
		assert_int_equal(write(wfd, "x", 1), 1);
	} else {
		assert_int_equal(pthread_create(&th, NULL, late_write, &w), 0);
	}
	while (p->reads == reads)
		assert_int_equal(isd_reactor_poll(r, 1000), 0);
	if (after_us != 0)
		assert_int_equal(pthread_join(th, NULL), 0);
}

/* ADAPTIVE: a sleep that work cut short doubles the spin after work, up to
 * 8 x the configured one; a sleep longer than that sets it back. */
static void
test_adaptive_spin(void **state)
{
	struct isd_reactor *r;
	struct isd_reactor_stats st;
	struct pipe_ctx p = {0};
	int fds[2];
	/* 1 ms, so that only a preemption of over 8 ms inside the sleeping poll
	 * could make a sleep that work cut short look long */
	uint64_t want[] = { 2000, 4000, 8000, 8000 };

	(void)state;
	assert_int_equal(isd_reactor_create(&r), 0);
	isd_reactor_set_mode(r, ISD_REACTOR_ADAPTIVE, 1000);
	isd_reactor_get_stats(r, &st);
	assert_int_equal(st.poll_us, 1000);
	assert_int_equal(pipe(fds), 0);
	p.r = r;
	p.fd = fds[0];
	assert_int_equal(isd_reactor_add_fd(r, fds[0], EPOLLIN, drain_cb, &p), 0);
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		/* the byte is there when the poll starts: it sleeps no time at all */
		sleep_then_work(r, &p, fds[1], 0);
		isd_reactor_get_stats(r, &st);
		assert_int_equal(st.poll_us, want[i]);
	}
	/* woken 20 ms after it slept (or later, never sooner): back to 1 ms */
	sleep_then_work(r, &p, fds[1], 20000);
	isd_reactor_get_stats(r, &st);
	assert_int_equal(st.poll_us, 1000);
	assert_int_equal(isd_reactor_del_fd(r, fds[0]), 0);
	close(fds[0]);
	close(fds[1]);
	isd_reactor_destroy(r);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_timers_fire_in_deadline_order),
		cmocka_unit_test(test_timer_stop_prevents_callback),
		cmocka_unit_test(test_fd_events_and_removal_in_callback),
		cmocka_unit_test(test_run_until_stop),
		cmocka_unit_test(test_turn_end),
		cmocka_unit_test(test_defer),
		cmocka_unit_test(test_adaptive_spin),
	};

	return cmocka_run_group_tests_name("reactor", tests, NULL, NULL);
}
