/*
 * Reactors across threads: messages posted from several threads arrive once
 * each, in each poster's order; a group's reactors run on their own threads
 * and say so through isd_reactor_current(); an idle ADAPTIVE reactor sleeps.
 * The tsan preset runs this file too, so a data race here fails CI.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "reactor/reactor.h"

#define POSTERS 4
#define PER_POSTER 20000

struct tally {
	struct isd_reactor *r;
	uint32_t next[POSTERS];         /* the sequence number expected next, per poster */
	uint32_t got;
	uint32_t out_of_order;
};

struct msg {
	struct isd_reactor_msg m;
	struct tally *t;
	unsigned poster;
	uint32_t seq;
};

static void
msg_cb(void *arg)
{
	struct msg *m = arg;
	struct tally *t = m->t;

	assert_ptr_equal(isd_reactor_current(), t->r);
	if (m->seq != t->next[m->poster])
		t->out_of_order++;
	t->next[m->poster] = m->seq + 1;
	if (++t->got == POSTERS * PER_POSTER)
		isd_reactor_stop(t->r);
	free(m);
}

struct poster {
	struct tally *t;
	unsigned id;
};

static void *
poster_thread(void *arg)
{
	struct poster *p = arg;

	for (uint32_t i = 0; i < PER_POSTER; i++) {
		struct msg *m = malloc(sizeof(*m));

		if (m == NULL)
			abort();
		m->m.cb = msg_cb;
		m->m.arg = m;
		m->t = p->t;
		m->poster = p->id;
		m->seq = i;
		isd_reactor_post(p->t->r, &m->m);
		if (i % 1024 == 0)
			usleep(100);    /* let the reactor sleep now and then: the eventfd path */
	}
	return NULL;
}

static void
run_posters(enum isd_reactor_mode mode)
{
	struct tally t = {0};
	struct poster p[POSTERS];
	pthread_t th[POSTERS];
	struct isd_reactor_stats st;

	assert_int_equal(isd_reactor_create(&t.r), 0);
	isd_reactor_set_mode(t.r, mode, 50);
	for (unsigned i = 0; i < POSTERS; i++) {
		p[i].t = &t;
		p[i].id = i;
		assert_int_equal(pthread_create(&th[i], NULL, poster_thread, &p[i]), 0);
	}
	assert_int_equal(isd_reactor_run(t.r), 0);
	for (unsigned i = 0; i < POSTERS; i++)
		pthread_join(th[i], NULL);
	assert_int_equal(t.got, POSTERS * PER_POSTER);
	assert_int_equal(t.out_of_order, 0);
	for (unsigned i = 0; i < POSTERS; i++)
		assert_int_equal(t.next[i], PER_POSTER);
	isd_reactor_get_stats(t.r, &st);
	assert_int_equal(st.msgs, POSTERS * PER_POSTER);
	if (mode == ISD_REACTOR_POLL)
		assert_int_equal(st.sleeps, 0);
	isd_reactor_destroy(t.r);
}

static void
test_posts_from_threads_event(void **state)
{
	(void)state;
	run_posters(ISD_REACTOR_EVENT);
}

static void
test_posts_from_threads_poll(void **state)
{
	(void)state;
	run_posters(ISD_REACTOR_POLL);
}

static void
test_posts_from_threads_adaptive(void **state)
{
	(void)state;
	run_posters(ISD_REACTOR_ADAPTIVE);
}

static void
self_cb(void *arg)
{
	int *ran = arg;

	(*ran)++;
}

static void
test_post_to_self_runs_later(void **state)
{
	struct isd_reactor *r;
	struct isd_reactor_msg m = {.cb = self_cb};
	int ran = 0;

	(void)state;
	m.arg = &ran;
	assert_int_equal(isd_reactor_create(&r), 0);
	isd_reactor_post(r, &m);
	assert_int_equal(ran, 0);       /* never inside the post */
	assert_int_equal(isd_reactor_poll(r, 1000), 0);
	assert_int_equal(ran, 1);
	isd_reactor_destroy(r);
}

/* ---- groups ---- */

struct hop {
	struct isd_reactor_msg m;
	struct isd_reactor_group *g;
	struct isd_reactor *main_r;
	unsigned at;                    /* reactor the message is sent to next */
	atomic_uint seen;               /* bit per reactor index that ran it on its own thread */
	pthread_t thread_of[4];
};

static void hop_cb(void *arg);

static void
hop_send(struct hop *h)
{
	h->m.cb = hop_cb;
	h->m.arg = h;
	isd_reactor_post(isd_reactor_group_get(h->g, h->at), &h->m);
}

static void
hop_cb(void *arg)
{
	struct hop *h = arg;
	struct isd_reactor *cur = isd_reactor_current();

	assert_ptr_equal(cur, isd_reactor_group_get(h->g, h->at));
	assert_int_equal(isd_reactor_index(cur), h->at);
	h->thread_of[h->at] = pthread_self();
	atomic_fetch_or(&h->seen, 1u << h->at);
	if (++h->at == isd_reactor_group_size(h->g)) {
		isd_reactor_stop(h->main_r);
		return;
	}
	hop_send(h);
}

static void
test_group_threads(void **state)
{
	struct isd_reactor_group *g;
	struct hop h = {0};
	struct isd_reactor_stats st;

	(void)state;
	assert_int_equal(isd_reactor_group_create(0, &g), -EINVAL);
	assert_int_equal(isd_reactor_group_create(4, &g), 0);
	assert_int_equal(isd_reactor_group_size(g), 4);
	assert_null(isd_reactor_group_get(g, 4));
	for (unsigned i = 0; i < 4; i++)
		isd_reactor_set_mode(isd_reactor_group_get(g, i), ISD_REACTOR_ADAPTIVE, 20);
	assert_int_equal(isd_reactor_group_start(g, NULL, 0), 0);
	h.g = g;
	h.main_r = isd_reactor_group_get(g, 0);
	/* 0 -> 1 -> 2 -> 3, then stop reactor 0, which this thread runs */
	hop_send(&h);
	assert_int_equal(isd_reactor_run(h.main_r), 0);
	assert_int_equal(atomic_load(&h.seen), 0xfu);
	assert_true(pthread_equal(h.thread_of[0], pthread_self()));
	for (unsigned i = 1; i < 4; i++) {
		assert_false(pthread_equal(h.thread_of[i], pthread_self()));
		for (unsigned j = i + 1; j < 4; j++)
			assert_false(pthread_equal(h.thread_of[i], h.thread_of[j]));
	}
	/* idle, the adaptive reactors go to sleep instead of spinning (waited for,
	 * not timed: a loaded machine may take long to run the thread at all) */
	for (int i = 0; i < 500; i++) {
		isd_reactor_get_stats(isd_reactor_group_get(g, 2), &st);
		if (st.sleeps >= 1)
			break;
		usleep(10000);
	}
	assert_true(st.sleeps >= 1);
	{
		uint64_t turns = st.turns;

		usleep(100000);
		isd_reactor_get_stats(isd_reactor_group_get(g, 2), &st);
		assert_true(st.turns - turns < 50);     /* asleep: a few timer turns at most */
	}
	isd_reactor_group_join(g);
	isd_reactor_group_destroy(g);
}

/* ---- stop the world ---- */

struct shared {
	uint64_t plain[4];              /* no atomics: the barrier must order them */
	atomic_bool stop;
	atomic_uint ticks[4];
};

struct ticker {
	struct isd_timer t;
	struct isd_reactor *r;
	struct shared *sh;
	unsigned i;
};

static void
tick(void *arg)
{
	struct ticker *k = arg;

	if (atomic_load(&k->sh->stop))
		return;
	/* each reactor its own slot; the paused main thread writes them all */
	k->sh->plain[k->i]++;
	atomic_fetch_add(&k->sh->ticks[k->i], 1);
	isd_reactor_timer_start(k->r, &k->t, 0);
}

static void
start_ticker(void *arg)
{
	struct ticker *k = arg;

	isd_timer_init(&k->t, tick, k);
	isd_reactor_timer_start(k->r, &k->t, 0);
}

static void
test_group_pause(void **state)
{
	struct isd_reactor_group *g;
	struct shared sh = {0};
	struct ticker k[4];
	struct isd_reactor_msg go[4];

	(void)state;
	assert_int_equal(isd_reactor_group_create(4, &g), 0);
	assert_int_equal(isd_reactor_group_start(g, NULL, 0), 0);
	for (unsigned i = 1; i < 4; i++) {
		k[i].r = isd_reactor_group_get(g, i);
		k[i].sh = &sh;
		k[i].i = i;
		go[i].cb = start_ticker;
		go[i].arg = &k[i];
		isd_reactor_post(k[i].r, &go[i]);
	}
	for (int round = 0; round < 200; round++) {
		unsigned before[4], after[4];

		isd_reactor_group_pause(g);
		isd_reactor_group_pause(g);     /* nested: counted */
		for (unsigned i = 1; i < 4; i++)
			before[i] = atomic_load(&sh.ticks[i]);
		/* the world stands still: write every slot, no atomics */
		for (unsigned j = 0; j < 4; j++)
			sh.plain[j] += 1000;
		usleep(200);
		for (unsigned i = 1; i < 4; i++) {
			after[i] = atomic_load(&sh.ticks[i]);
			assert_int_equal(before[i], after[i]);
		}
		isd_reactor_group_resume(g);    /* inner: still paused */
		usleep(100);
		for (unsigned i = 1; i < 4; i++)
			assert_int_equal(atomic_load(&sh.ticks[i]), after[i]);
		isd_reactor_group_resume(g);
		if (round % 50 == 0)
			usleep(1000);
	}
	/* each slot: 200 rounds of +1000 from here, plus its own reactor's ticks */
	atomic_store(&sh.stop, true);
	isd_reactor_group_join(g);
	for (unsigned i = 1; i < 4; i++) {
		assert_true(atomic_load(&sh.ticks[i]) > 0);
		assert_int_equal(sh.plain[i], 200000u + atomic_load(&sh.ticks[i]));
	}
	isd_reactor_group_destroy(g);
}

/* Placement: the least loaded reactor, ties to the lowest index; reactor 0 before start. */
static void
test_group_pick(void **state)
{
	struct isd_reactor_group *g;
	struct isd_reactor *r[3];

	(void)state;
	assert_int_equal(isd_reactor_group_create(3, &g), 0);
	for (unsigned i = 0; i < 3; i++) {
		r[i] = isd_reactor_group_get(g, i);
		assert_ptr_equal(isd_reactor_group_of(r[i]), g);
	}
	/* not started: everything on reactor 0, and pause costs nothing */
	assert_false(isd_reactor_group_started(g));
	assert_ptr_equal(isd_reactor_group_pick(g), r[0]);
	assert_int_equal(isd_reactor_conns(r[0]), 1);
	isd_reactor_pause_others(r[0]);
	isd_reactor_resume_others(r[0]);
	isd_reactor_group_pause(NULL);
	isd_reactor_group_resume(NULL);
	isd_reactor_conns_add(r[0], -1);

	assert_int_equal(isd_reactor_group_start(g, NULL, 0), 0);
	assert_true(isd_reactor_group_started(g));
	assert_ptr_equal(isd_reactor_group_pick(g), r[0]);      /* 0 0 0: the lowest */
	assert_ptr_equal(isd_reactor_group_pick(g), r[1]);      /* 1 0 0 */
	assert_ptr_equal(isd_reactor_group_pick(g), r[2]);      /* 1 1 0 */
	assert_ptr_equal(isd_reactor_group_pick(g), r[0]);      /* 1 1 1 */
	isd_reactor_conns_add(r[1], -1);                        /* 2 0 1: one on 1 went */
	assert_ptr_equal(isd_reactor_group_pick(g), r[1]);
	assert_ptr_equal(isd_reactor_group_pick(g), r[1]);      /* 2 1 1 */
	assert_int_equal(isd_reactor_conns(r[0]), 2);
	assert_int_equal(isd_reactor_conns(r[1]), 2);
	assert_int_equal(isd_reactor_conns(r[2]), 1);
	/* the others paused from reactor 0's side (this thread); nesting counts */
	isd_reactor_pause_others(r[0]);
	isd_reactor_pause_others(r[0]);
	isd_reactor_resume_others(r[0]);
	isd_reactor_resume_others(r[0]);
	/* from another reactor's handle: nothing */
	isd_reactor_pause_others(r[1]);
	isd_reactor_resume_others(r[1]);
	isd_reactor_group_join(g);
	isd_reactor_group_destroy(g);
}

/*
 * A join straight after the start: the threads may not have entered their
 * loops yet, and the stop must not be lost when they do (it once was: the
 * loop cleared it on entry, and the join waited for ever).
 */
static void
test_group_join_right_after_start(void **state)
{
	(void)state;
	for (int k = 0; k < 50; k++) {
		struct isd_reactor_group *g;

		assert_int_equal(isd_reactor_group_create(3, &g), 0);
		assert_int_equal(isd_reactor_group_start(g, NULL, 0), 0);
		isd_reactor_group_join(g);
		assert_false(isd_reactor_group_started(g));
		isd_reactor_group_destroy(g);
	}
}

/* a portal's placement: the fewest connections among the reactors it may use */
static void
test_group_pick_in(void **state)
{
	struct isd_reactor_group *g;
	struct isd_reactor *r[4];
	struct isd_reactor_mask m, none, empty;

	(void)state;
	memset(&m, 0, sizeof(m));
	memset(&none, 0, sizeof(none));
	memset(&empty, 0, sizeof(empty));
	isd_reactor_mask_add(&m, 1);
	isd_reactor_mask_add(&m, 3);
	isd_reactor_mask_add(&none, 200);       /* no such reactor in this group */
	isd_reactor_mask_add(&none, ISD_REACTOR_MAX);   /* out of range: ignored */
	assert_true(isd_reactor_mask_has(&m, 3));
	assert_false(isd_reactor_mask_has(&m, 2));
	assert_false(isd_reactor_mask_has(&m, ISD_REACTOR_MAX));
	assert_true(isd_reactor_mask_empty(&empty));
	assert_false(isd_reactor_mask_empty(&none));
	assert_int_equal(isd_reactor_group_create(4, &g), 0);
	for (unsigned i = 0; i < 4; i++)
		r[i] = isd_reactor_group_get(g, i);
	/* not started: reactor 0 whatever the mask, as only it runs */
	assert_ptr_equal(isd_reactor_group_pick_in(g, &m), r[0]);
	isd_reactor_conns_add(r[0], -1);

	assert_int_equal(isd_reactor_group_start(g, NULL, 0), 0);
	assert_ptr_equal(isd_reactor_group_pick_in(g, &m), r[1]);       /* 0 0 0 0 */
	assert_ptr_equal(isd_reactor_group_pick_in(g, &m), r[3]);       /* 0 1 0 0 */
	assert_ptr_equal(isd_reactor_group_pick_in(g, &m), r[1]);       /* 0 1 0 1 */
	/* reactors 0 and 2 are emptier, but not the portal's */
	assert_int_equal(isd_reactor_conns(r[0]), 0);
	assert_int_equal(isd_reactor_conns(r[2]), 0);
	assert_ptr_equal(isd_reactor_group_pick_in(g, &m), r[3]);       /* 0 2 0 1 */
	/* the whole group again: the emptiest of all */
	assert_ptr_equal(isd_reactor_group_pick_in(g, NULL), r[0]);
	assert_ptr_equal(isd_reactor_group_pick_in(g, &empty), r[2]);
	/* a mask with none of the group's reactors means every reactor */
	assert_ptr_equal(isd_reactor_group_pick_in(g, &none), r[0]);   /* 1 2 1 2 */
	assert_int_equal(isd_reactor_conns(r[0]), 2);
	assert_int_equal(isd_reactor_conns(r[1]), 2);
	assert_int_equal(isd_reactor_conns(r[2]), 1);
	assert_int_equal(isd_reactor_conns(r[3]), 2);
	isd_reactor_group_join(g);
	for (unsigned i = 0; i < 4; i++)
		isd_reactor_conns_add(r[i], -(int)isd_reactor_conns(r[i]));
	isd_reactor_group_destroy(g);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_posts_from_threads_event),
		cmocka_unit_test(test_posts_from_threads_poll),
		cmocka_unit_test(test_posts_from_threads_adaptive),
		cmocka_unit_test(test_post_to_self_runs_later),
		cmocka_unit_test(test_group_threads),
		cmocka_unit_test(test_group_pause),
		cmocka_unit_test(test_group_pick),
		cmocka_unit_test(test_group_pick_in),
		cmocka_unit_test(test_group_join_right_after_start),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
