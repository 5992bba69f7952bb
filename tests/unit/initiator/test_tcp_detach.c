/*
 * Unit test of the initiator's send path on the TCP datamover's active role
 * (src/initiator/task.c, xport.c, src/dm/tcp/tcp_conn.c) over a socketpair
 * whose peer plays the target: a write's Data-Out is half written when the
 * target answers early with CHECK CONDITION. The command must complete at
 * once (the caller gets its buffer back), the half-sent PDU must be finished
 * from the datamover's private copy so the byte stream stays well formed, and
 * nothing else of the command may follow. The slot is free at once: the copy
 * is the datamover's, and a new command gets a new ITT.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "dm/tcp/tcp_int.h"
#include "initiator/init_int.h"
#include "util/endian.h"

#define WRITE_LEN (4u << 20)

struct result {
	int n;
	int status;
	uint8_t scsi;
	uint8_t key;
};

static void
done_cb(struct iserd_context *ctx, int status, void *data, void *arg)
{
	struct result *r = arg;
	struct iserd_task *t = data;

	(void)ctx;
	r->n++;
	r->status = status;
	r->scsi = t->status;
	r->key = t->sense_valid ? t->sense_info.key : 0xff;
}

/* A context in full feature phase on one end of a socketpair. */
static struct iserd_context *
ffp_context(int fd)
{
	struct iserd_context *pub;
	struct isd_ictx *c;
	int small = 16384;

	assert_int_equal(iserd_context_create(NULL, &pub), 0);
	c = &pub->c;
	assert_int_equal(iserd_set_queue_depth(pub, 4), 0);
	assert_int_equal(isd_init_slots_alloc(c), 0);
	c->stype = ISERD_SESSION_NORMAL;
	snprintf(c->url.host, sizeof(c->url.host), "peer");
	isd_params_init_defaults(&c->params);
	c->params.max_recv_dsl = ISD_INIT_MAX_RECV_DSL;
	c->params.max_xmit_dsl = 262144;
	c->params.immediate_data = false;
	c->params.initial_r2t = false;
	c->params.first_burst_length = WRITE_LEN; /* everything unsolicited */
	c->params.max_burst_length = WRITE_LEN;
	c->cmdsn = 1;
	c->exp_cmdsn = 1;
	c->max_cmdsn = 64;
	c->state = ISD_ICTX_FFP;
	c->ever_logged_in = true;
	assert_int_equal(isd_init_x_adopt_tcp(c, fd), 0);
	setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &small, sizeof(small));
	return pub;
}

static void
peer_send_check_condition(int peer, uint32_t itt)
{
	uint8_t pdu[ISD_BHS_LEN + 20];
	uint8_t *bhs = pdu, *data = pdu + ISD_BHS_LEN;

	memset(pdu, 0, sizeof(pdu));
	bhs[0] = ISD_OP_SCSI_RSP;
	bhs[1] = 0x80;
	bhs[2] = 0;    /* command completed at target */
	bhs[3] = 0x02; /* CHECK CONDITION */
	put_be24(bhs + 5, 20);
	put_be32(bhs + 16, itt);
	put_be32(bhs + 24, 1);	/* StatSN */
	put_be32(bhs + 28, 2);	/* ExpCmdSN */
	put_be32(bhs + 32, 64); /* MaxCmdSN */
	put_be16(data, 18);
	data[2] = 0x70;
	data[4] = 0x05; /* ILLEGAL REQUEST */
	data[9] = 10;
	data[14] = 0x21;
	assert_int_equal(write(peer, pdu, sizeof(pdu)), (ssize_t)sizeof(pdu));
}

/* Reads what is there (non-blocking) and appends it to *buf. */
static void
peer_drain(int peer, uint8_t **buf, size_t *len, size_t *cap)
{
	for (;;) {
		ssize_t n;

		if (*cap - *len < 65536) {
			*cap = *cap * 2 + 65536;
			*buf = realloc(*buf, *cap);
			assert_non_null(*buf);
		}
		n = read(peer, *buf + *len, *cap - *len);
		if (n <= 0)
			return;
		*len += (size_t)n;
	}
}

static void
test_detach_half_written_dataout(void **state)
{
	struct iserd_context *pub;
	struct isd_ictx *c;
	struct iserd_task t;
	struct result r = {0};
	uint8_t *data = malloc(WRITE_LEN), *pattern = malloc(WRITE_LEN), *stream = NULL;
	size_t len = 0, cap = 0, off;
	int sv[2], i, small = 16384;
	uint32_t itt, dataout_bytes = 0;
	struct isd_tcp_conn *tc;
	bool saw_cmd = false;

	(void)state;
	assert_non_null(data);
	assert_non_null(pattern);
	for (i = 0; i < (int)WRITE_LEN; i++)
		pattern[i] = (uint8_t)(i * 7 + (i >> 12));
	memcpy(data, pattern, WRITE_LEN);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
	setsockopt(sv[1], SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
	pub = ffp_context(sv[0]);
	c = &pub->c;

	assert_int_equal(iserd_task_write16(&t, 0, 0, WRITE_LEN / 512, 512, data, false), 0);
	assert_int_equal(iserd_task_submit(pub, &t, done_cb, &r), 0);
	assert_int_equal(r.n, 0);
	itt = ((struct isd_itask *)t.priv)->itt;

	/* Write until the socket is full: a Data-Out PDU is left half written. */
	assert_int_equal(iserd_service(pub, POLLOUT), 0);
	tc = isd_init_x_dmc(c)->priv;
	assert_true(tc->tx_blocked);
	assert_true(tc->txq.tqh_first != NULL && tc->txq.tqh_first->started);

	/* The target answers early. */
	peer_send_check_condition(sv[1], itt);
	assert_int_equal(iserd_service(pub, POLLIN), 0);
	assert_int_equal(r.n, 1);
	assert_int_equal(r.status, 0);
	assert_int_equal(r.scsi, ISERD_STATUS_CHECK_CONDITION);
	assert_int_equal(r.key, 0x5);
	assert_null(t.priv);
	/* The caller owns its buffer again: scribble over it. */
	memset(data, 0xee, WRITE_LEN);
	/* The slot is free; the half-sent PDU is the datamover's copy now. */
	assert_int_equal(c->nfree, 4);
	assert_true(tc->txq.tqh_first != NULL && tc->txq.tqh_first->detached);
	assert_null(tc->txq.tqh_first->link.tqe_next);

	/* Let the rest flow; only the half-written PDU may follow, from the copy. */
	for (i = 0; i < 1000 && tc->txq.tqh_first != NULL; i++) {
		peer_drain(sv[1], &stream, &len, &cap);
		assert_int_equal(iserd_service(pub, POLLOUT), 0);
	}
	peer_drain(sv[1], &stream, &len, &cap);
	assert_null(tc->txq.tqh_first);
	assert_int_equal(c->nfree, 4);

	/* The stream is whole PDUs: the command, then Data-Out whose payload is the
	 * original data, never the bytes written into the buffer afterwards. */
	for (off = 0; off < len;) {
		const uint8_t *bhs = stream + off;
		uint32_t dsl, boff;

		assert_true(off + ISD_BHS_LEN <= len);
		dsl = get_be24(bhs + 5);
		assert_true(off + ISD_BHS_LEN + dsl + isd_pad4(dsl) <= len);
		if (isd_bhs_opcode(bhs) == ISD_OP_SCSI_CMD) {
			assert_false(saw_cmd);
			saw_cmd = true;
			assert_int_equal(dsl, 0); /* ImmediateData=No */
		} else {
			assert_int_equal(isd_bhs_opcode(bhs), ISD_OP_DATA_OUT);
			assert_int_equal(isd_bhs_itt(bhs), itt);
			assert_int_equal(isd_bhs_ttt(bhs), ISD_RSVD_TAG);
			boff = get_be32(bhs + 40);
			assert_true(boff + dsl <= WRITE_LEN);
			assert_memory_equal(bhs + ISD_BHS_LEN, pattern + boff, dsl);
			dataout_bytes += dsl;
		}
		off += ISD_BHS_LEN + dsl + isd_pad4(dsl);
	}
	assert_true(saw_cmd);
	assert_true(dataout_bytes > 0 && dataout_bytes < WRITE_LEN);

	/* The slot works again with a fresh ITT. */
	iserd_task_test_unit_ready(&t, 0);
	assert_int_equal(iserd_task_submit(pub, &t, done_cb, &r), 0);
	assert_int_not_equal(((struct isd_itask *)t.priv)->itt, itt);

	iserd_context_destroy(pub); /* cancels the TUR: its callback runs from here */
	assert_int_equal(r.n, 2);
	assert_int_equal(r.status, -ECANCELED);
	close(sv[1]);
	free(stream);
	free(data);
	free(pattern);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_detach_half_written_dataout),
	};

	return cmocka_run_group_tests_name("initiator_tcp_detach", tests, NULL, NULL);
}
