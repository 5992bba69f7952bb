/*
 * iSER connections on every reactor: the real target (core, RAM LU, iSER
 * portal) on a group of three reactors, each on its own thread, and six
 * libiserd sessions over iser:// on the fake verbs device, all logged in at
 * once from a controller thread. The portal places each accepted connection
 * on the least loaded reactor (two on each), where its channel, QP and CQ
 * are made and its commands run; their WRITEs and READs at queue depth 4
 * (4 KiB to 128 KiB, the RAM LU's memory moved by RDMA Read and Write) read
 * back what was written; then every session logs out, and every iSER
 * counter, every fake object and every pool buffer is back to 0. The tsan
 * preset runs this file: a race between the reactors on the RDMA layer's
 * pool, registry or counters, or on a connection's setup between the
 * listener's thread and its own, fails CI.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "fakeverbs.h"
#include "fv_target.h"
#include "iserd/iserd.h"
#include "reactor/reactor.h"

#define INAME "iqn.1993-08.org.debian:01:fvreactors"
#define NR 3
#define SESSIONS 6
#define QD 4
#define BS 512u
#define SLOT (128u << 10)

struct sess {
	struct iserd_context *ctx;
	uint8_t *out, *in;              /* QD slots of SLOT bytes */
	int done, failed;
	bool one_done;
	int one_status;
};

struct world {
	struct fv_target tg;
	struct sess s[SESSIONS];
	unsigned placed[NR];            /* connections on each reactor, all logged in */
	int errors;                     /* checks the controller failed (asserts are the main thread's) */
	char why[256];
};

static void
fail_at(struct world *w, const char *what)
{
	if (w->errors++ == 0)
		snprintf(w->why, sizeof(w->why), "%s", what);
}

static void
cb_task(struct iserd_context *ctx, int status, void *data, void *arg)
{
	struct iserd_task *t = data;
	struct sess *s = arg;

	(void)ctx;
	s->done++;
	if (status != 0 || t->status != ISERD_STATUS_GOOD)
		s->failed++;
}

static void
cb_one(struct iserd_context *ctx, int status, void *data, void *arg)
{
	struct sess *s = arg;

	(void)ctx;
	(void)data;
	s->one_done = true;
	s->one_status = status;
}

/* Services every context until pred holds for all of them (about 20 s at most). */
static bool
pump(struct world *w, bool (*pred)(const struct sess *s))
{
	for (int i = 0; i < 400000; i++) {
		bool all = true;

		for (int k = 0; k < SESSIONS; k++) {
			if (w->s[k].ctx != NULL)
				(void)iserd_service(w->s[k].ctx, POLLIN);
			if (!pred(&w->s[k]))
				all = false;
		}
		if (all)
			return true;
		if (i % 64 == 63)
			usleep(50);
	}
	return false;
}

static bool
one_done(const struct sess *s)
{
	return s->one_done;
}

static bool
all_done(const struct sess *s)
{
	return s->done == QD;
}

static void
fill(uint8_t *b, size_t n, unsigned k, unsigned slot, unsigned round)
{
	for (size_t i = 0; i < n; i++)
		b[i] = (uint8_t)(i * 31 + k * 7 + slot * 3 + round);
}

static void *
controller(void *arg)
{
	static const uint32_t sizes[] = { 4096, 65536, SLOT };
	struct world *w = arg;
	struct iserd_task t[SESSIONS][QD];
	char url[256], err[128];
	struct iserd_url u;

	snprintf(url, sizeof(url), "iser://127.0.0.1:%u/%s/0", w->tg.port, FV_TARGET_NAME);
	if (iserd_url_parse_full(url, &u, err, sizeof(err)) != 0) {
		fail_at(w, "url");
		goto out;
	}
	for (int k = 0; k < SESSIONS; k++) {
		struct sess *s = &w->s[k];

		if (iserd_context_create(INAME, &s->ctx) != 0) {
			fail_at(w, "context");
			goto out;
		}
		iserd_set_reconnect(s->ctx, ISERD_RECONNECT_OFF, 0, 0);
		s->out = malloc((size_t)QD * SLOT);
		s->in = malloc((size_t)QD * SLOT);
		if (s->out == NULL || s->in == NULL ||
		    iserd_connect_async(s->ctx, &u, ISERD_SESSION_NORMAL, cb_one, s) != 0) {
			fail_at(w, "connect");
			goto out;
		}
	}
	if (!pump(w, one_done)) {
		fail_at(w, "logins did not finish");
		goto out;
	}
	for (int k = 0; k < SESSIONS; k++) {
		if (w->s[k].one_status != 0)
			fail_at(w, "a login failed");
	}
	if (w->errors > 0)
		goto out;
	/* every session is logged in: where did the connections go? */
	for (unsigned i = 0; i < NR; i++)
		w->placed[i] = isd_reactor_conns(isd_reactor_group_get(w->tg.g, i));
	/* the POWER ON unit attention of each I_T nexus */
	for (int k = 0; k < SESSIONS; k++) {
		w->s[k].one_done = false;
		iserd_task_test_unit_ready(&t[k][0], 0);
		if (iserd_task_submit(w->s[k].ctx, &t[k][0], cb_one, &w->s[k]) != 0)
			fail_at(w, "TEST UNIT READY");
	}
	if (!pump(w, one_done))
		fail_at(w, "TEST UNIT READY did not finish");
	for (unsigned round = 0; round < 3 && w->errors == 0; round++) {
		uint32_t n = sizes[round];

		for (int dir = 0; dir < 2 && w->errors == 0; dir++) {
			for (int k = 0; k < SESSIONS; k++) {
				struct sess *s = &w->s[k];

				s->done = 0;
				s->failed = 0;
				for (unsigned q = 0; q < QD; q++) {
					/* each session and slot its own 128 KiB of the LU */
					uint64_t lba = ((uint64_t)k * QD + q) * (SLOT / BS);
					uint8_t *o = s->out + (size_t)q * SLOT;
					uint8_t *in = s->in + (size_t)q * SLOT;
					int rc;

					if (dir == 0) {
						fill(o, n, (unsigned)k, q, round);
						rc = iserd_task_write16(&t[k][q], 0, lba, n / BS, BS, o,
									false);
					} else {
						memset(in, 0, n);
						rc = iserd_task_read16(&t[k][q], 0, lba, n / BS, BS, in);
					}
					if (rc != 0 || iserd_task_submit(s->ctx, &t[k][q], cb_task, s) != 0)
						fail_at(w, "submit");
				}
			}
			if (!pump(w, all_done)) {
				fail_at(w, "I/O did not finish");
				break;
			}
			for (int k = 0; k < SESSIONS; k++) {
				struct sess *s = &w->s[k];

				if (s->failed > 0)
					fail_at(w, "a command failed");
				for (unsigned q = 0; dir == 1 && q < QD; q++) {
					if (memcmp(s->out + (size_t)q * SLOT, s->in + (size_t)q * SLOT,
						   n) != 0)
						fail_at(w, "read back differs");
				}
			}
		}
	}
	for (int k = 0; k < SESSIONS; k++) {
		w->s[k].one_done = false;
		if (iserd_logout_async(w->s[k].ctx, cb_one, &w->s[k]) != 0)
			fail_at(w, "logout");
	}
	if (!pump(w, one_done))
		fail_at(w, "logouts did not finish");
out:
	for (int k = 0; k < SESSIONS; k++) {
		if (w->s[k].ctx != NULL)
			iserd_context_destroy(w->s[k].ctx);
		w->s[k].ctx = NULL;
		free(w->s[k].out);
		free(w->s[k].in);
	}
	/* the target frees each connection on its own reactor */
	for (int i = 0; i < 100000 && fv_target_iser_conns() > 0; i++)
		usleep(100);
	if (fv_target_iser_conns() > 0)
		fail_at(w, "the target kept connections");
	isd_reactor_stop(w->tg.r);
	return NULL;
}

static void
test_iser_sessions_on_three_reactors(void **state)
{
	struct world *w = calloc(1, sizeof(*w));
	pthread_t ct;

	(void)state;
	assert_non_null(w);
	fv_reset();
	fv_target_start(&w->tg, &(struct fv_target_cfg){ .lun_mib = 8, .reactors = NR });
	assert_int_equal(isd_reactor_group_start(w->tg.g, NULL, 0), 0);
	assert_int_equal(pthread_create(&ct, NULL, controller, w), 0);
	assert_int_equal(isd_reactor_run(w->tg.r), 0);
	assert_int_equal(pthread_join(ct, NULL), 0);
	isd_reactor_group_join(w->tg.g);
	if (w->errors > 0)
		fail_msg("%d failures, the first: %s", w->errors, w->why);
	/* two connections on each reactor: placement reached every one */
	for (unsigned i = 0; i < NR; i++) {
		print_message("reactor %u: %u iSER connections\n", i, w->placed[i]);
		assert_int_equal(w->placed[i], SESSIONS / NR);
	}
	fv_target_assert_idle(&w->tg);
	fv_target_stop(&w->tg);
	assert_int_equal(fv_live_objects(), 0);
	free(w);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_iser_sessions_on_three_reactors),
	};

	return cmocka_run_group_tests_name("iser_reactors", tests, NULL, NULL);
}
