/*
 * The initiator's requests carry ExpStatSN (RFC 7143 §11: bytes 28..31 of a
 * SCSI Command, NOP-Out, Task Management, Text and Logout Request): the
 * StatSN after the last status it saw. istgt drops a connection whose
 * ExpStatSN falls a window behind its StatSN, so a constant 0 there ends a
 * session after a few hundred commands. Over a socketpair: a SCSI Command
 * before and after a SCSI Response, and a NOP-Out after it.
 */
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "initiator/init_int.h"
#include "util/endian.h"

static int g_done;

static void
done_cb(struct iserd_context *ctx, int status, void *data, void *arg)
{
	(void)ctx;
	(void)status;
	(void)data;
	(void)arg;
	g_done++;
}

static struct iserd_context *
make_ctx(int fd)
{
	struct iserd_context *pub;
	struct isd_ictx *c;

	assert_int_equal(iserd_context_create(NULL, &pub), 0);
	c = &pub->c;
	assert_int_equal(iserd_set_queue_depth(pub, 8), 0);
	assert_int_equal(isd_init_slots_alloc(c), 0);
	c->stype = ISERD_SESSION_NORMAL;
	snprintf(c->url.host, sizeof(c->url.host), "peer");
	snprintf(c->url.target, sizeof(c->url.target), "iqn.2026-11.org.test:t");
	isd_params_init_defaults(&c->params);
	c->params.max_recv_dsl = ISD_INIT_MAX_RECV_DSL;
	c->params.max_xmit_dsl = 8192;
	c->cmdsn = 1;
	c->exp_cmdsn = 1;
	c->max_cmdsn = 64;
	c->ever_logged_in = true;
	c->state = ISD_ICTX_FFP;
	/* as if the login response had StatSN 6 */
	c->exp_statsn = 7;
	assert_int_equal(isd_init_x_adopt_tcp(c, fd), 0);
	return pub;
}

/* The next PDU the initiator sent (no data segment expected): its BHS. */
static void
next_bhs(struct iserd_context *pub, int peer, uint8_t *bhs)
{
	size_t got = 0;
	int i;

	for (i = 0; i < 100 && got < ISD_BHS_LEN; i++) {
		ssize_t n;

		iserd_service(pub, POLLOUT);
		n = read(peer, bhs + got, ISD_BHS_LEN - got);
		if (n > 0)
			got += (size_t)n;
	}
	assert_int_equal(got, ISD_BHS_LEN);
	assert_int_equal(isd_bhs_dsl(bhs), 0);
}

static void
test_requests_carry_expstatsn(void **state)
{
	static uint8_t buf[2][512];
	struct iserd_task t[2];
	struct iserd_context *pub;
	uint8_t bhs[ISD_BHS_LEN], rsp[ISD_BHS_LEN];
	int sv[2], i;

	(void)state;
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
	pub = make_ctx(sv[0]);

	/* the first command acknowledges the login's status */
	iserd_task_read16(&t[0], 0, 0, 1, 512, buf[0]);
	assert_int_equal(iserd_task_submit(pub, &t[0], done_cb, NULL), 0);
	next_bhs(pub, sv[1], bhs);
	assert_int_equal(bhs[0] & 0x3f, ISD_OP_SCSI_CMD);
	assert_int_equal(get_be32(bhs + 28), 7);

	/* its SCSI Response, GOOD, StatSN 41 */
	memset(rsp, 0, sizeof(rsp));
	rsp[0] = ISD_OP_SCSI_RSP;
	rsp[1] = 0x80;
	memcpy(rsp + 16, bhs + 16, 4);
	put_be32(rsp + 24, 41);
	put_be32(rsp + 28, 2);
	put_be32(rsp + 32, 64);
	assert_int_equal(write(sv[1], rsp, sizeof(rsp)), (ssize_t)sizeof(rsp));
	for (i = 0; i < 100 && g_done == 0; i++)
		iserd_service(pub, POLLIN);
	assert_int_equal(g_done, 1);

	/* the next command and a NOP-Out acknowledge StatSN 41 */
	iserd_task_read16(&t[1], 0, 8, 1, 512, buf[1]);
	assert_int_equal(iserd_task_submit(pub, &t[1], done_cb, NULL), 0);
	next_bhs(pub, sv[1], bhs);
	assert_int_equal(bhs[0] & 0x3f, ISD_OP_SCSI_CMD);
	assert_int_equal(get_be32(bhs + 28), 42);
	assert_int_equal(iserd_nop_async(pub, done_cb, NULL), 0);
	next_bhs(pub, sv[1], bhs);
	assert_int_equal(bhs[0] & 0x3f, ISD_OP_NOP_OUT);
	assert_int_equal(get_be32(bhs + 28), 42);

	iserd_context_destroy(pub);
	close(sv[1]);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_requests_carry_expstatsn),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
