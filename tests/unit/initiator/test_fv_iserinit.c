/*
 * The initiator library over iSER (the iSER datamover's active role: rdma_cm
 * address/route resolution and connect, its QP, CQ and registration cache)
 * against the real target (core, RAM LU, iSER portal) in the same process, on
 * the fake verbs device (tests/support/fakeverbs): the rdma_cm client's QP and
 * the target's form one loopback wire. Only libiserd's public API is used, over
 * an iser:// URL: login, READ and WRITE of several sizes (data checked byte for
 * byte, up to 2 MiB), logout; every iSER counter of the target and every fake
 * object back to 0. Failure paths: a wrong target name (login refused), a port
 * nobody listens on (CM REJECTED), and the link dropping with a READ in flight.
 *
 * One thread: the library's async calls, and a pump that services the context
 * and runs one non-blocking turn of the target's reactor.
 */
#include <errno.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "fakeverbs.h"
#include "fv_target.h"
#include "iserd/iserd.h"
#include "reactor/reactor.h"

#define INAME "iqn.1993-08.org.debian:01:fvinit"
#define BS 512u
#define LUN_MIB 8u

struct done {
	bool done;
	int status;
};

struct fx {
	struct fv_target tg;
	struct iserd_context *ctx;
	uint8_t *out, *in;
	size_t len;
};

static void
cb(struct iserd_context *ctx, int status, void *data, void *arg)
{
	struct done *d = arg;

	(void)ctx;
	(void)data;
	d->done = true;
	d->status = status;
}

static void
pump_once(struct fx *f)
{
	(void)isd_reactor_poll(f->tg.r, 0);
	(void)iserd_service(f->ctx, POLLIN);
}


/* Pumps until *flag (bounded); returns whether it came. */
static bool
pump_until(struct fx *f, const bool *flag)
{
	for (int i = 0; i < 20000 && !*flag; i++)
		pump_once(f);
	return *flag;
}

static void
url_for(struct fx *f, const char *target, uint16_t port, struct iserd_url *u)
{
	char s[512], err[128];

	snprintf(s, sizeof(s), "iser://127.0.0.1:%u/%s/0", port, target);
	assert_int_equal(iserd_url_parse_full(s, u, err, sizeof(err)), 0);
	(void)f;
}

static int
do_connect(struct fx *f, const char *target, uint16_t port)
{
	struct iserd_url u;
	struct done d = { 0 };
	int rc;

	url_for(f, target, port, &u);
	rc = iserd_connect_async(f->ctx, &u, ISERD_SESSION_NORMAL, cb, &d);
	if (rc < 0)
		return rc;
	assert_true(pump_until(f, &d.done));
	return d.status;
}

static int
do_task(struct fx *f, struct iserd_task *t)
{
	struct done d = { 0 };
	int rc = iserd_task_submit(f->ctx, t, cb, &d);

	if (rc < 0)
		return rc;
	assert_true(pump_until(f, &d.done));
	return d.status;
}

static void
do_logout(struct fx *f)
{
	struct done d = { 0 };

	assert_int_equal(iserd_logout_async(f->ctx, cb, &d), 0);
	assert_true(pump_until(f, &d.done));
	assert_int_equal(d.status, 0);
	assert_false(iserd_is_logged_in(f->ctx));
}

static int g_drain_timeouts;     /* drains that ended by their timeout (log_fn) */

static void
log_fn(enum iserd_log_level level, const char *msg, void *arg)
{
	(void)arg;
	/*
	 * The teardown's drain once waited out its timeout for completions
	 * cq_poll had taken and dropped: a drain that ends by its timeout says
	 * so at warning level, and fails the test (not a clock, which a loaded
	 * machine would trip).
	 */
	if (strstr(msg, "did not arrive") != NULL)
		g_drain_timeouts++;
	if (level <= ISERD_LOG_WARN || getenv("FV_DEBUG") != NULL)
		fprintf(stderr, "iserd: %s\n", msg);
}

static int
setup(void **state)
{
	g_drain_timeouts = 0;
	struct fx *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	fv_reset();
	fv_target_start(&f->tg, &(struct fv_target_cfg){ .lun_mib = LUN_MIB });
	assert_int_equal(iserd_context_create(INAME, &f->ctx), 0);
	iserd_set_log_fn(f->ctx, log_fn, NULL);
	if (getenv("FV_DEBUG") != NULL)
		iserd_set_log_level(f->ctx, ISERD_LOG_DEBUG);
	iserd_set_reconnect(f->ctx, ISERD_RECONNECT_OFF, 0, 0);
	f->len = 4u << 20;
	f->out = malloc(f->len);
	f->in = malloc(f->len);
	assert_non_null(f->out);
	assert_non_null(f->in);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fx *f = *state;
	struct fv_stats fs;

	iserd_context_destroy(f->ctx);
	for (int i = 0; i < 2000 && fv_target_iser_conns() > 0; i++)
		(void)isd_reactor_poll(f->tg.r, 0);
	for (int i = 0; i < 5; i++)
		(void)isd_reactor_poll(f->tg.r, 0);
	fv_target_assert_idle(&f->tg);
	assert_int_equal(g_drain_timeouts, 0);
	fv_target_stop(&f->tg);
	fv_get_stats(&fs);
	if (fs.bugs != 0)
		fprintf(stderr, "fakeverbs: %s\n", fs.last_bug);
	assert_int_equal(fs.bugs, 0);
	assert_int_equal(fv_live_objects(), 0);
	free(f->out);
	free(f->in);
	free(f);
	return 0;
}

static void
fill(uint8_t *p, size_t n, uint32_t seed)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)((i * 131u + seed * 7u + (i >> 9)) ^ (seed >> 3));
}

/* WRITE n bytes at lba from f->out, READ them back into f->in, compare. */
static void
write_read(struct fx *f, uint32_t lba, uint32_t n, uint32_t seed)
{
	struct iserd_task t;

	fill(f->out, n, seed);
	memset(f->in, 0xee, n);
	assert_int_equal(iserd_task_write16(&t, 0, lba, n / BS, BS, f->out, false), 0);
	assert_int_equal(do_task(f, &t), 0);
	assert_int_equal(t.response, 0);
	assert_int_equal(t.status, ISERD_STATUS_GOOD);
	assert_int_equal(iserd_task_read16(&t, 0, lba, n / BS, BS, f->in), 0);
	assert_int_equal(do_task(f, &t), 0);
	assert_int_equal(t.response, 0);
	assert_int_equal(t.status, ISERD_STATUS_GOOD);
	assert_false(t.underflow);
	assert_memory_equal(f->in, f->out, n);
}

static void
test_login_rw_logout(void **state)
{
	static const uint32_t sizes[] = { BS, 4096, 65536, 256u << 10, 1u << 20, (2u << 20) + 4096 };
	struct fx *f = *state;
	struct iserd_task t;
	struct fv_stats fs;
	uint32_t lba = 0;
	int rc;

	assert_int_equal(do_connect(f, FV_TARGET_NAME, f->tg.port), 0);
	assert_true(iserd_is_logged_in(f->ctx));
	assert_int_equal(fv_target_iser_conns(), 1);
	/* the POWER ON unit attention */
	iserd_task_test_unit_ready(&t, 0);
	rc = do_task(f, &t);
	assert_int_equal(rc, 0);
	iserd_task_test_unit_ready(&t, 0);
	assert_int_equal(do_task(f, &t), 0);
	assert_int_equal(t.status, ISERD_STATUS_GOOD);

	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		write_read(f, lba, sizes[i], (uint32_t)i + 1);
		lba += sizes[i] / BS;
	}
	/* the same buffer again: the registration cache's hit */
	write_read(f, 100, 1u << 20, 77);
	fv_get_stats(&fs);
	assert_true(fs.reads > 0);      /* WRITE data moved by RDMA Read */
	assert_true(fs.writes > 0);     /* READ data by RDMA Write */
	assert_true(fs.read_bytes >= (2u << 20));
	assert_true(fs.write_bytes >= (2u << 20));

	do_logout(f);
	for (int i = 0; i < 2000 && fv_target_iser_conns() > 0; i++)
		pump_once(f);
	assert_int_equal(fv_target_iser_conns(), 0);
}

/* The target refuses the login (no such target): a clean failure, no leak. */
static void
test_wrong_target(void **state)
{
	struct fx *f = *state;
	int rc = do_connect(f, "iqn.2024-01.org.example:nosuch", f->tg.port);

	assert_true(rc < 0);
	assert_false(iserd_is_logged_in(f->ctx));
	assert_int_equal(iserd_get_login_status(f->ctx) >> 8, 2);      /* initiator error */
	assert_int_equal(iserd_get_login_status(f->ctx), 0x0203);     /* not found */
	assert_non_null(strstr(iserd_get_error(f->ctx), "target not found"));
	fprintf(stderr, "(expected) %d: %s\n", rc, iserd_get_error(f->ctx));
}

/* Nobody listens on the port: the CM rejects the connection. */
static void
test_cm_rejected(void **state)
{
	struct fx *f = *state;
	int rc = do_connect(f, FV_TARGET_NAME, (uint16_t)(f->tg.port + 1000));

	assert_int_equal(rc, -ECONNREFUSED);
	assert_false(iserd_is_logged_in(f->ctx));
	assert_non_null(strstr(iserd_get_error(f->ctx), "rejected"));
}

/* The link drops with a READ in flight (the target's RDMA Write held on its
 * QP): the command fails, nothing leaks, nothing crashes. */
static void
test_disconnect_mid_read(void **state)
{
	struct fx *f = *state;
	struct iserd_task t;
	struct done d = { 0 };
	struct fv_ini *ini;
	struct ibv_qp *tqp;
	const uint32_t n = 2u << 20;

	assert_int_equal(do_connect(f, FV_TARGET_NAME, f->tg.port), 0);
	iserd_task_test_unit_ready(&t, 0);
	(void)do_task(f, &t);
	ini = fv_active_last();
	assert_non_null(ini);
	tqp = fv_ini_target_qp(ini);
	assert_non_null(tqp);
	fv_qp_hold(tqp, true);
	assert_int_equal(iserd_task_read16(&t, 0, 0, n / BS, BS, f->in), 0);
	assert_int_equal(iserd_task_submit(f->ctx, &t, cb, &d), 0);
	for (int i = 0; i < 2000 && fv_qp_pending_sends(tqp) == 0; i++)
		pump_once(f);
	assert_true(fv_qp_pending_sends(tqp) > 0);     /* the RDMA Write is in flight */
	assert_false(d.done);
	fv_ini_disconnect(ini);
	assert_true(pump_until(f, &d.done));
	assert_true(d.status < 0);
	fprintf(stderr, "(expected) %d: %s\n", d.status, iserd_get_error(f->ctx));
	assert_false(iserd_is_logged_in(f->ctx));
	for (int i = 0; i < 2000 && fv_target_iser_conns() > 0; i++)
		pump_once(f);
	assert_int_equal(fv_target_iser_conns(), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_login_rw_logout, setup, teardown),
		cmocka_unit_test_setup_teardown(test_wrong_target, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cm_rejected, setup, teardown),
		cmocka_unit_test_setup_teardown(test_disconnect_mid_read, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
