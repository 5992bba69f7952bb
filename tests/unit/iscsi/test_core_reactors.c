/*
 * One target instance, its connections on three reactors (a reactor group),
 * through the fake datamover: concurrent logins and logouts, session
 * reinstatement racing between reactors, connection and session limits hit
 * from three reactors at once, a connection dropped and a reference dropped
 * from another reactor, and the shutdown. Every fake connection is driven only
 * on the reactor it was created on; the core must free each one there
 * (checked in free_conn) and run the conn_gone callback and the shutdown's on
 * reactor 0. The tsan preset runs this file too, so a data race in the
 * target's tables or counters fails CI.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fake_dm.h"
#include "iscsi/core.h"
#include "iscsi/iscsi.h"
#include "iscsi/pdu.h"
#include "reactor/reactor.h"
#include "util/log.h"
#include "util/monitor.h"

#define NR 3                            /* reactors */
#define SLOTS 48                        /* fake connections per reactor */
#define TNAME "iqn.2024-01.org.example:mr"
#define INAME "iqn.1993-08.org.debian:01:mr"

struct world;

/* Work run on one reactor; a chain re-posts itself (rounds left) so that what
 * other reactors posted to this one runs between two rounds. */
struct job {
	struct isd_reactor_msg m;
	struct world *w;
	unsigned ri;                    /* the reactor it runs on */
	int rounds;
	int round;
	void (*fn)(struct job *j);
	sem_t *done;
};

struct world {
	struct isd_reactor_group *g;
	struct isd_reactor *r[NR];
	struct isd_iscsi_tgt *t;
	struct isd_tnode node;
	struct fake_dm fd[NR][SLOTS];   /* fd[i] touched only on reactor i */
	int ok[NR], refused[NR], other[NR];     /* per reactor: read after its job */
	uint16_t tsih[NR];
	struct isd_conn *held;          /* a reference taken on reactor 0 */
	atomic_int failures;
	atomic_int gone_calls, gone_elsewhere;
	atomic_int freed_elsewhere;
	atomic_int shutdown_cbs, shutdown_elsewhere;
	sem_t shutdown_sem;
	pthread_t controller;
	void (*script)(struct world *w);
};

#define CHECK(w, cond)                                                                             \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);  \
			atomic_fetch_add(&(w)->failures, 1);                                       \
		}                                                                                  \
	} while (0)

static struct world *g_world;           /* for the free_conn wrapper */
static void (*real_free_conn)(struct isd_dm_conn *c);

/* Which reactor a fake connection belongs to, from the fake's own pointer. */
static int
reactor_of_fd(struct world *w, const struct fake_dm *fd)
{
	for (int i = 0; i < NR; i++)
		if (fd >= &w->fd[i][0] && fd < &w->fd[i][SLOTS])
			return i;
	return -1;
}

static void
checked_free_conn(struct isd_dm_conn *c)
{
	/* the fake's private area starts with its struct fake_dm pointer */
	struct fake_dm *fd = *(struct fake_dm **)isd_dmc_priv(c);
	int ri = reactor_of_fd(g_world, fd);

	if (ri < 0 || isd_reactor_current() != g_world->r[ri])
		atomic_fetch_add(&g_world->freed_elsewhere, 1);
	real_free_conn(c);
}

static void
conn_gone(void *arg)
{
	struct world *w = arg;

	atomic_fetch_add(&w->gone_calls, 1);
	if (isd_reactor_current() != w->r[0])
		atomic_fetch_add(&w->gone_elsewhere, 1);
}

static void
shutdown_cb(void *arg)
{
	struct world *w = arg;

	atomic_fetch_add(&w->shutdown_cbs, 1);
	if (isd_reactor_current() != w->r[0])
		atomic_fetch_add(&w->shutdown_elsewhere, 1);
	sem_post(&w->shutdown_sem);
}

/* ---- running work on the reactors, from the controller thread ---- */

static void
job_cb(void *arg)
{
	struct job *j = arg;

	j->fn(j);
	if (++j->round < j->rounds) {
		isd_reactor_post(j->w->r[j->ri], &j->m);
		return;
	}
	sem_post(j->done);
}

/* Runs fn `rounds` times on each reactor of mask, the reactors at once; returns
 * when every one has finished. */
static void
run_rounds(struct world *w, unsigned mask, int rounds, void (*fn)(struct job *j))
{
	struct job jobs[NR];
	sem_t done;
	int n = 0;

	sem_init(&done, 0, 0);
	for (unsigned i = 0; i < NR; i++) {
		if (!(mask & (1u << i)))
			continue;
		jobs[i] = (struct job){ .w = w, .ri = i, .rounds = rounds, .fn = fn, .done = &done };
		jobs[i].m.cb = job_cb;
		jobs[i].m.arg = &jobs[i];
		isd_reactor_post(w->r[i], &jobs[i].m);
		n++;
	}
	while (n-- > 0)
		sem_wait(&done);
	sem_destroy(&done);
}

static void
run_on(struct world *w, unsigned ri, void (*fn)(struct job *j))
{
	run_rounds(w, 1u << ri, 1, fn);
}

#define ALL ((1u << NR) - 1)

static void
noop(struct job *j)
{
	(void)j;
}

/* Delivers Connection_Terminate_Notify wherever the core asked for a close,
 * and makes freed slots fresh. */
static void
sweep(struct job *j)
{
	for (int s = 0; s < SLOTS; s++) {
		struct fake_dm *fd = &j->w->fd[j->ri][s];

		fake_dm_terminate_notify(fd, false);
		if (fd->conn == NULL && (fd->freed || fd->injected > 0 || fd->n_sent > 0)) {
			fake_dm_fini(fd);
			fake_dm_init(fd);
		}
	}
}

/* Drops every connection still there. */
static void
drop_all(struct job *j)
{
	for (int s = 0; s < SLOTS; s++)
		fake_dm_terminate_notify(&j->w->fd[j->ri][s], true);
	sweep(j);
}

static struct fake_dm *
free_slot(struct job *j)
{
	for (int s = 0; s < SLOTS; s++) {
		struct fake_dm *fd = &j->w->fd[j->ri][s];

		if (fd->conn == NULL && !fd->freed && fd->injected == 0)
			return fd;
	}
	return NULL;
}

static void
isid_of(uint8_t *isid, unsigned ri, unsigned n)
{
	isid[0] = 0x80;
	isid[1] = 0;
	isid[2] = 0;
	isid[3] = (uint8_t)ri;
	isid[4] = (uint8_t)(n >> 8);
	isid[5] = (uint8_t)n;
}

static void
logout(struct fake_dm *fd, uint32_t cmdsn)
{
	uint8_t bhs[ISD_BHS_LEN];
	struct isd_pdu *rsp;

	memset(bhs, 0, sizeof(bhs));
	bhs[0] = ISD_OP_LOGOUT_REQ | ISD_BHS_I;
	bhs[1] = ISD_BHS_F | ISD_LOGOUT_CLOSE_SESSION;
	put_be32(bhs + 16, 0x77);
	put_be32(bhs + 24, cmdsn);
	fake_dm_inject(fd, bhs, NULL, 0);
	rsp = fake_dm_pop(fd);
	if (rsp != NULL)
		isd_pdu_free(rsp);
}

/* ---- the world: a group of NR reactors, reactor 0 on the main thread ---- */

static void *
controller_main(void *arg)
{
	struct world *w = arg;

	w->script(w);
	/* whatever the frees posted to reactor 0 has run before this */
	run_on(w, 1, noop);
	run_on(w, 2, noop);
	run_on(w, 0, noop);
	isd_reactor_stop(w->r[0]);
	return NULL;
}

static void
world_run(const struct isd_iscsi_cfg *cfg, void (*script)(struct world *w))
{
	struct world *w = calloc(1, sizeof(*w));
	struct isd_iscsi_stats st;

	assert_non_null(w);
	g_world = w;
	real_free_conn = fake_dm_ops.free_conn;
	fake_dm_ops.free_conn = checked_free_conn;
	w->script = script;
	sem_init(&w->shutdown_sem, 0, 0);
	isd_monitor_set_threaded(true);
	assert_int_equal(isd_reactor_group_create(NR, &w->g), 0);
	for (int i = 0; i < NR; i++)
		w->r[i] = isd_reactor_group_get(w->g, (unsigned)i);
	assert_int_equal(isd_iscsi_tgt_create(w->r[0], cfg, &w->t), 0);
	snprintf(w->node.name, sizeof(w->node.name), "%s", TNAME);
	isd_key_policy_init(&w->node.policy);
	assert_int_equal(isd_iscsi_tgt_add_node(w->t, &w->node), 0);
	isd_iscsi_tgt_set_conn_gone(w->t, conn_gone, w);
	for (int i = 0; i < NR; i++)
		for (int s = 0; s < SLOTS; s++)
			fake_dm_init(&w->fd[i][s]);

	assert_int_equal(isd_reactor_group_start(w->g, NULL, 0), 0);
	assert_int_equal(pthread_create(&w->controller, NULL, controller_main, w), 0);
	assert_int_equal(isd_reactor_run(w->r[0]), 0);
	pthread_join(w->controller, NULL);
	isd_reactor_group_join(w->g);

	isd_iscsi_tgt_get_stats(w->t, &st);
	assert_int_equal(st.connections, 0);
	assert_int_equal(st.sessions, 0);
	assert_int_equal(st.login_connections, 0);
	assert_int_equal(st.tasks, 0);
	for (int i = 0; i < NR; i++)
		for (int s = 0; s < SLOTS; s++)
			fake_dm_fini(&w->fd[i][s]);
	isd_iscsi_tgt_destroy(w->t);
	isd_reactor_group_destroy(w->g);
	isd_monitor_set_threaded(false);
	fake_dm_ops.free_conn = real_free_conn;
	sem_destroy(&w->shutdown_sem);
	assert_int_equal(atomic_load(&w->freed_elsewhere), 0);
	assert_int_equal(atomic_load(&w->gone_elsewhere), 0);
	assert_int_equal(atomic_load(&w->shutdown_elsewhere), 0);
	assert_true(atomic_load(&w->gone_calls) > 0);
	assert_int_equal(atomic_load(&w->failures), 0);
	g_world = NULL;
	free(w);
}

static void
base_cfg(struct isd_iscsi_cfg *cfg)
{
	isd_iscsi_cfg_init(cfg);
	cfg->nop_interval_ms = 0;
	cfg->login_timeout_ms = 0;
}

/* ---- logins and logouts on three reactors at once ---- */

#define CHURN_ROUNDS 150

static void
churn_round(struct job *j)
{
	struct world *w = j->w;
	struct fake_dm *fd;
	uint8_t isid[6];
	int rc;

	/* the one left open two rounds ago goes now: a few at a time stay open */
	if (j->round % 3 == 0)
		drop_all(j);
	else
		sweep(j);
	fd = free_slot(j);
	CHECK(w, fd != NULL);
	if (fd == NULL)
		return;
	isid_of(isid, j->ri, (unsigned)j->round);
	CHECK(w, fake_dm_connect(fd, w->t, w->r[j->ri], 1) == 0);
	/* every fourth a discovery session */
	rc = fake_dm_login(fd, INAME, j->round % 4 == 3 ? NULL : TNAME, isid, 1, NULL);
	CHECK(w, rc == 0);
	if (rc == 0)
		w->ok[j->ri]++;
	switch (j->round % 3) {
	case 0:
		logout(fd, 1);  /* Logout: the core closes, the fake notifies */
		CHECK(w, fd->terminate_called);
		fake_dm_terminate_notify(fd, false);
		CHECK(w, fd->freed);
		break;
	case 1:
		fake_dm_terminate_notify(fd, true);     /* the transport broke */
		CHECK(w, fd->freed);
		break;
	default:
		break;          /* left for the next round's neighbours, dropped at the end */
	}
}

static void
churn_script(struct world *w)
{
	struct isd_iscsi_stats st;

	run_rounds(w, ALL, CHURN_ROUNDS, churn_round);
	run_rounds(w, ALL, 1, drop_all);
	isd_iscsi_tgt_get_stats(w->t, &st);
	CHECK(w, st.logins_ok == (uint64_t)NR * CHURN_ROUNDS);
	CHECK(w, st.logins_failed == 0);
	CHECK(w, st.sessions == 0);
	CHECK(w, st.connections == 0);
	for (int i = 0; i < NR; i++)
		CHECK(w, w->ok[i] == CHURN_ROUNDS);
}

static void
test_concurrent_logins(void **state)
{
	struct isd_iscsi_cfg cfg;

	(void)state;
	base_cfg(&cfg);
	world_run(&cfg, churn_script);
}

/* ---- one ISID logging in again and again from three reactors ---- */

#define REINSTATE_ROUNDS 100

static void
reinstate_round(struct job *j)
{
	struct world *w = j->w;
	struct fake_dm *fd;
	uint8_t isid[6];
	int rc;

	sweep(j);               /* closes other reactors' reinstatements posted here */
	fd = free_slot(j);
	CHECK(w, fd != NULL);
	if (fd == NULL)
		return;
	isid_of(isid, 0, 7);    /* the same ISID everywhere */
	CHECK(w, fake_dm_connect(fd, w->t, w->r[j->ri], 1) == 0);
	rc = fake_dm_login(fd, INAME, TNAME, isid, 1, NULL);
	CHECK(w, rc == 0);
	if (rc == 0)
		w->ok[j->ri]++;
}

static void
reinstate_script(struct world *w)
{
	struct isd_iscsi_stats st;

	run_rounds(w, ALL, REINSTATE_ROUNDS, reinstate_round);
	/* every close posted by the last rounds has run before these */
	run_rounds(w, ALL, 1, sweep);
	isd_iscsi_tgt_get_stats(w->t, &st);
	/* all but the last login's session were reinstated away */
	CHECK(w, st.sessions == 1);
	CHECK(w, st.connections == 1);
	CHECK(w, st.logins_ok == (uint64_t)NR * REINSTATE_ROUNDS);
	run_rounds(w, ALL, 1, drop_all);
}

static void
test_reinstatement_across_reactors(void **state)
{
	struct isd_iscsi_cfg cfg;

	(void)state;
	base_cfg(&cfg);
	world_run(&cfg, reinstate_script);
}

/* ---- limits hit from three reactors at once ---- */

#define LIMIT_CONNS 5
#define LIMIT_SESSIONS 3
#define TRY_CONNS 4                     /* per reactor */

static void
connect_many(struct job *j)
{
	struct world *w = j->w;
	char addr[32];

	snprintf(addr, sizeof(addr), "192.0.2.%u", 20 + j->ri);
	for (int s = 0; s < TRY_CONNS; s++) {
		int rc = fake_dm_connect_from(&w->fd[j->ri][s], w->t, w->r[j->ri], 1, addr);

		if (rc == 0)
			w->ok[j->ri]++;
		else if (rc == -EAGAIN)
			w->refused[j->ri]++;
		else
			w->other[j->ri]++;
	}
}

static void
login_many(struct job *j)
{
	struct world *w = j->w;

	w->ok[j->ri] = w->refused[j->ri] = w->other[j->ri] = 0;
	for (int s = 0; s < TRY_CONNS; s++) {
		struct fake_dm *fd = &w->fd[j->ri][s];
		uint8_t isid[6];
		int rc;

		if (fd->conn == NULL)
			continue;
		isid_of(isid, j->ri, (unsigned)s);
		rc = fake_dm_login(fd, INAME, TNAME, isid, 1, NULL);
		if (rc == 0)
			w->ok[j->ri]++;
		else if (rc == ISD_LOGIN_STATUS_NO_RESOURCES)
			w->refused[j->ri]++;
		else
			w->other[j->ri]++;
	}
	sweep(j);               /* the refused logins were closed */
}

static int
sum(const int *v)
{
	int n = 0;

	for (int i = 0; i < NR; i++)
		n += v[i];
	return n;
}

static void
limits_script(struct world *w)
{
	struct isd_iscsi_stats st;

	run_rounds(w, ALL, 1, connect_many);
	CHECK(w, sum(w->ok) == LIMIT_CONNS);
	CHECK(w, sum(w->refused) == NR * TRY_CONNS - LIMIT_CONNS);
	CHECK(w, sum(w->other) == 0);
	isd_iscsi_tgt_get_stats(w->t, &st);
	CHECK(w, st.connections == LIMIT_CONNS);
	CHECK(w, st.login_connections == LIMIT_CONNS);
	CHECK(w, st.refused.connections == NR * TRY_CONNS - LIMIT_CONNS);

	run_rounds(w, ALL, 1, login_many);
	CHECK(w, sum(w->ok) == LIMIT_SESSIONS);
	CHECK(w, sum(w->refused) == LIMIT_CONNS - LIMIT_SESSIONS);
	CHECK(w, sum(w->other) == 0);
	isd_iscsi_tgt_get_stats(w->t, &st);
	CHECK(w, st.sessions == LIMIT_SESSIONS);
	CHECK(w, st.connections == LIMIT_SESSIONS);
	CHECK(w, st.login_connections == 0);
	CHECK(w, st.logins_ok == LIMIT_SESSIONS);
	CHECK(w, st.logins_failed == LIMIT_CONNS - LIMIT_SESSIONS);
	CHECK(w, st.refused.sessions == LIMIT_CONNS - LIMIT_SESSIONS);
	run_rounds(w, ALL, 1, drop_all);
}

static void
test_limits_across_reactors(void **state)
{
	struct isd_iscsi_cfg cfg;

	(void)state;
	base_cfg(&cfg);
	cfg.max_connections = LIMIT_CONNS;
	cfg.max_connections_per_address = 0;
	cfg.max_login_connections = 0;
	cfg.max_sessions = LIMIT_SESSIONS;
	world_run(&cfg, limits_script);
}

/* ---- closes and references from another reactor; the shutdown ---- */

static void
login_two(struct job *j)
{
	struct world *w = j->w;
	uint8_t isid[6];

	isid_of(isid, j->ri, 1);
	/* slot 0 logged in, slot 1 still in its login */
	CHECK(w, fake_dm_connect(&w->fd[j->ri][0], w->t, w->r[j->ri], 1) == 0);
	CHECK(w, fake_dm_login(&w->fd[j->ri][0], INAME, TNAME, isid, 1, &w->tsih[j->ri]) == 0);
	CHECK(w, fake_dm_connect(&w->fd[j->ri][1], w->t, w->r[j->ri], 1) == 0);
}

static void
drop_r1_session(struct job *j)
{
	struct world *w = j->w;

	/* cid 0: what fake_dm_login sends */
	CHECK(w, isd_iscsi_tgt_conn_drop(w->t, w->tsih[1], 0) == 0);
	CHECK(w, isd_iscsi_tgt_conn_drop(w->t, 0, 0) == -ENOENT);
}

static void
check_r1_dropped(struct job *j)
{
	struct world *w = j->w;

	/* the close posted from reactor 0 ran here, before this job */
	CHECK(w, w->fd[1][0].terminate_called);
	CHECK(w, !w->fd[1][1].terminate_called);
	fake_dm_terminate_notify(&w->fd[1][0], false);
	CHECK(w, w->fd[1][0].freed);
}

static void
hold_r2_conn(struct job *j)
{
	struct world *w = j->w;
	struct isd_conn *c;

	isd_tgt_lock(w->t);
	TAILQ_FOREACH(c, &w->t->conns, link) {
		if (c->reactor == w->r[2] && c->sess != NULL && isd_conn_tryget(c)) {
			w->held = c;
			break;
		}
	}
	isd_tgt_unlock(w->t);
	CHECK(w, w->held != NULL);
}

static void
notify_r2_session(struct job *j)
{
	struct world *w = j->w;

	fake_dm_terminate_notify(&w->fd[2][0], true);
	CHECK(w, !w->fd[2][0].freed);   /* reactor 0's reference keeps it */
}

static void
put_held(struct job *j)
{
	struct isd_conn *c = j->w->held;

	j->w->held = NULL;
	if (c != NULL)
		isd_conn_put(c);        /* the last one: the free is posted to reactor 2 */
}

static void
check_r2_freed(struct job *j)
{
	CHECK(j->w, j->w->fd[2][0].freed);
}

static void
shutdown_job(struct job *j)
{
	isd_iscsi_tgt_shutdown(j->w->t, shutdown_cb, j->w);
}

static void
after_shutdown(struct job *j)
{
	struct world *w = j->w;
	struct fake_dm late;

	for (int s = 0; s < 2; s++) {
		struct fake_dm *fd = &w->fd[j->ri][s];

		CHECK(w, fd->conn == NULL || fd->terminate_called);
	}
	sweep(j);
	fake_dm_init(&late);
	CHECK(w, fake_dm_connect(&late, w->t, w->r[j->ri], 1) == -ESHUTDOWN);
}

static void
shutdown_script(struct world *w)
{
	struct isd_iscsi_stats st;
	struct timespec ts;

	run_rounds(w, ALL, 1, login_two);
	isd_iscsi_tgt_get_stats(w->t, &st);
	CHECK(w, st.sessions == NR);
	CHECK(w, st.connections == 2 * NR);

	run_on(w, 0, drop_r1_session);
	run_on(w, 1, check_r1_dropped);

	run_on(w, 0, hold_r2_conn);
	run_on(w, 2, notify_r2_session);
	run_on(w, 0, put_held);
	run_on(w, 2, check_r2_freed);

	isd_iscsi_tgt_get_stats(w->t, &st);
	CHECK(w, st.sessions == NR - 2);
	CHECK(w, st.connections == 2 * NR - 2);

	/* not paused: the others run while reactor 0 shuts the instance down */
	run_on(w, 0, shutdown_job);
	run_rounds(w, ALL, 1, after_shutdown);
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += 20;
	CHECK(w, sem_timedwait(&w->shutdown_sem, &ts) == 0);
	CHECK(w, atomic_load(&w->shutdown_cbs) == 1);
}

static void
test_close_and_shutdown_across_reactors(void **state)
{
	struct isd_iscsi_cfg cfg;

	(void)state;
	base_cfg(&cfg);
	world_run(&cfg, shutdown_script);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_concurrent_logins),
		cmocka_unit_test(test_reinstatement_across_reactors),
		cmocka_unit_test(test_limits_across_reactors),
		cmocka_unit_test(test_close_and_shutdown_across_reactors),
	};

	isd_log_set_level(ISD_LOG_WARN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
