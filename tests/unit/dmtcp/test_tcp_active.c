/*
 * The TCP datamover's active role (an initiator's connection), alone: the
 * test is the core (its own upcall table) and, on the other end of a
 * loopback socket or a socketpair, the target. It checks what dm.h promises
 * for each failure path, above all that no upcall ever comes from inside a
 * call down: connect to a closed port, an unknown host, a Data-In the core
 * refuses, a Data-In whose data digest is wrong, a task cleaned up between a
 * Data-In header and its payload, calls on a closed connection; and the
 * framing of what the role sends (SCSI Command with borrowed immediate data,
 * Data-Out sequences) and places (Data-In straight into the task's buffer).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
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

#include "dm/tcp/tcp.h"
#include "dm/tcp/tcp_int.h"
#include "iscsi/dm.h"
#include "reactor/reactor.h"
#include "util/endian.h"

/* ---- the fake core ---- */

struct fx {
	struct isd_reactor *r;
	struct isd_params params;
	struct isd_dm_conn dc;
	struct isd_dm_task task;
	_Alignas(16) uint8_t conn_priv[sizeof(struct isd_tcp_conn)];
	_Alignas(16) uint8_t task_priv[sizeof(struct isd_tcp_task)];
	int peer;                       /* the target's end */
	/* what came up */
	bool in_call_down;
	int upcalls_in_call_down;
	int connected, connected_status;
	int terminated, term_reason;
	int completions, completion_status;
	int controls, errors, error_reason;
	uint8_t last_bhs[ISD_BHS_LEN];
	uint32_t last_data_len;
	int data_in_calls;
	int data_in_rc;                 /* what data_in answers */
	bool data_in_skip;              /* answer "no task" */
	bool cleanup_in_data_in;        /* task_cleanup from inside data_in */
	uint8_t buf[65536];             /* the task's buffer */
	struct iovec iov[2];
};

static struct fx *g_fx;

static void
note_up(struct fx *f)
{
	if (f->in_call_down)
		f->upcalls_in_call_down++;
}

static void
up_control(struct isd_dm_conn *c, struct isd_pdu *pdu)
{
	struct fx *f = g_fx;

	note_up(f);
	f->controls++;
	memcpy(f->last_bhs, pdu->bhs, ISD_BHS_LEN);
	f->last_data_len = pdu->data_len;
	c->ops->release_pdu(c, pdu);
}

static void
up_error(struct isd_dm_conn *c, const uint8_t *bhs, int reason)
{
	(void)c;
	(void)bhs;
	note_up(g_fx);
	g_fx->errors++;
	g_fx->error_reason = reason;
}

static void
up_completion(struct isd_dm_conn *c, struct isd_dm_task *t, int status)
{
	(void)c;
	assert_ptr_equal(t, &g_fx->task);
	note_up(g_fx);
	g_fx->completions++;
	g_fx->completion_status = status;
}

static void
up_terminate(struct isd_dm_conn *c, int reason)
{
	(void)c;
	note_up(g_fx);
	g_fx->terminated++;
	g_fx->term_reason = reason;
}

static void
up_connected(struct isd_dm_conn *c, int status)
{
	(void)c;
	note_up(g_fx);
	g_fx->connected++;
	g_fx->connected_status = status;
}

static int
up_data_in(struct isd_dm_conn *c, const uint8_t *bhs, struct isd_dm_task **t,
	   const struct iovec **iov, int *iovcnt)
{
	struct fx *f = g_fx;

	note_up(f);
	f->data_in_calls++;
	assert_int_equal(isd_bhs_opcode(bhs), ISD_OP_DATA_IN);
	if (f->data_in_rc < 0)
		return f->data_in_rc;
	if (f->data_in_skip) {
		*t = NULL;
		return 0;
	}
	*t = &f->task;
	*iov = f->iov;
	*iovcnt = 2;
	if (f->cleanup_in_data_in)
		c->ops->task_cleanup(c, &f->task, NULL);
	return 0;
}

static const struct isd_dm_upcalls g_up = {
	.control_notify = up_control,
	.pdu_error_notify = up_error,
	.data_completion_notify = up_completion,
	.terminate_notify = up_terminate,
	.connected = up_connected,
	.data_in = up_data_in,
};

static int
setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	assert_int_equal(isd_reactor_create(&f->r), 0);
	isd_params_init_defaults(&f->params);
	f->params.max_recv_dsl = 262144;
	f->params.max_xmit_dsl = 1024; /* the target's: Data-Out is cut at 1 KiB */
	f->dc.ops = &isd_tcp_dm_ops;
	f->dc.up = &g_up;
	f->dc.r = f->r;
	f->dc.params = &f->params;
	f->dc.active = true;
	f->dc.priv = f->conn_priv;
	f->task.priv = f->task_priv;
	f->task.itt = 0x1234;
	f->task.lun = 1ull << 48;
	/* as if its SCSI Command had gone out on the connection (send_command) */
	((struct isd_tcp_task *)f->task_priv)->magic = ISD_TCP_TASK_MAGIC;
	f->peer = -1;
	/* a buffer in two pieces: placement and Data-Out cross the seam */
	f->iov[0].iov_base = f->buf;
	f->iov[0].iov_len = 1000;
	f->iov[1].iov_base = f->buf + 1000;
	f->iov[1].iov_len = sizeof(f->buf) - 1000;
	g_fx = f;
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fx *f = *state;

	f->dc.ops->free_conn(&f->dc);
	for (int i = 0; i < 4; i++)
		(void)isd_reactor_poll(f->r, 0);
	isd_reactor_destroy(f->r);
	if (f->peer >= 0)
		close(f->peer);
	free(f);
	return 0;
}

static void
spin(struct fx *f, int rounds)
{
	for (int i = 0; i < rounds; i++)
		assert_int_equal(isd_reactor_poll(f->r, 10), 0);
}

/* An open active connection on one end of a socketpair; the test is the other. */
static void
open_pair(struct fx *f)
{
	int sv[2];

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
	assert_int_equal(fcntl(sv[1], F_SETFL, 0), 0);
	assert_int_equal(isd_tcp_adopt(&f->dc, sv[0], "peer"), 0);
	f->peer = sv[1];
}

static void
read_full(int fd, void *buf, size_t len)
{
	size_t off = 0;

	while (off < len) {
		ssize_t n = read(fd, (uint8_t *)buf + off, len - off);

		assert_true(n > 0);
		off += (size_t)n;
	}
}

static void
write_full(int fd, const void *buf, size_t len)
{
	assert_int_equal(write(fd, buf, len), (ssize_t)len);
}

static void
datain_bhs(uint8_t *bhs, uint32_t off, uint32_t len, uint32_t sn)
{
	memset(bhs, 0, ISD_BHS_LEN);
	bhs[0] = ISD_OP_DATA_IN;
	put_be24(bhs + 5, len);
	put_be32(bhs + 16, 0x1234);
	put_be32(bhs + 20, ISD_RSVD_TAG);
	put_be32(bhs + 36, sn);
	put_be32(bhs + 40, off);
}

/* ---- connect ---- */

static void
test_connect_refused_comes_later(void **state)
{
	struct fx *f = *state;
	struct sockaddr_in a = {.sin_family = AF_INET};
	socklen_t alen = sizeof(a);
	int s = socket(AF_INET, SOCK_STREAM, 0);
	uint16_t port;

	/* a port nobody listens on: bound, then closed */
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(s, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(getsockname(s, (struct sockaddr *)&a, &alen), 0);
	port = ntohs(a.sin_port);
	close(s);

	f->in_call_down = true;
	assert_int_equal(f->dc.ops->connect(&f->dc, "127.0.0.1", port), 0);
	f->in_call_down = false;
	assert_int_equal(f->connected, 0);
	spin(f, 20);
	assert_int_equal(f->connected, 1);
	assert_int_equal(f->connected_status, -ECONNREFUSED);
	assert_int_equal(f->terminated, 0); /* never opened: no terminate notify */
	assert_int_equal(f->upcalls_in_call_down, 0);
}

static void
test_connect_unknown_host_fails_in_the_call(void **state)
{
	struct fx *f = *state;

	f->in_call_down = true;
	assert_int_equal(f->dc.ops->connect(&f->dc, "no-such-host.invalid", 3260), -ENXIO);
	f->in_call_down = false;
	spin(f, 3);
	assert_int_equal(f->connected, 0);
	assert_int_equal(f->upcalls_in_call_down, 0);
}

static void
test_connect_and_send_command(void **state)
{
	struct fx *f = *state;
	struct sockaddr_in a = {.sin_family = AF_INET};
	socklen_t alen = sizeof(a);
	int ls = socket(AF_INET, SOCK_STREAM, 0), as;
	uint8_t wire[ISD_BHS_LEN + 600];
	struct isd_pdu *pdu;

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(ls, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(listen(ls, 1), 0);
	assert_int_equal(getsockname(ls, (struct sockaddr *)&a, &alen), 0);
	f->in_call_down = true;
	assert_int_equal(f->dc.ops->connect(&f->dc, "127.0.0.1", ntohs(a.sin_port)), 0);
	f->in_call_down = false;
	for (int i = 0; i < 50 && f->connected == 0; i++)
		spin(f, 1);
	assert_int_equal(f->connected, 1);
	assert_int_equal(f->connected_status, 0);
	as = accept(ls, NULL, NULL);
	assert_true(as >= 0);
	close(ls);
	f->peer = as;

	/* a SCSI Command whose 600 bytes of immediate data are borrowed, across the
	 * buffer's two pieces */
	for (uint32_t i = 0; i < sizeof(f->buf); i++)
		f->buf[i] = (uint8_t)(i * 13);
	pdu = isd_pdu_alloc(0);
	assert_non_null(pdu);
	pdu->bhs[0] = ISD_OP_SCSI_CMD;
	pdu->bhs[1] = ISD_BHS_F | ISD_CMD_W;
	put_be32(pdu->bhs + 16, 0x1234);
	pdu->data_iov = f->iov;
	pdu->data_iovcnt = 2;
	pdu->data_len = 600;
	f->iov[0].iov_len = 500;
	f->iov[1].iov_base = f->buf + 500;
	f->in_call_down = true;
	assert_int_equal(f->dc.ops->send_command(&f->dc, &f->task, pdu), 0);
	f->in_call_down = false;
	spin(f, 2);
	read_full(as, wire, sizeof(wire));
	assert_int_equal(isd_bhs_opcode(wire), ISD_OP_SCSI_CMD);
	assert_int_equal(isd_bhs_dsl(wire), 600);
	assert_memory_equal(wire + ISD_BHS_LEN, f->buf, 600);
	assert_int_equal(f->upcalls_in_call_down, 0);
}

/* ---- sending data ---- */

static void
test_dataout_sequence(void **state)
{
	struct fx *f = *state;
	struct isd_xfer x = {.iov = f->iov, .iovcnt = 2, .offset = 512, .length = 2500,
			     .ttt = 0x77};
	uint8_t bhs[ISD_BHS_LEN], data[1024];
	uint32_t off = 512;

	open_pair(f);
	for (uint32_t i = 0; i < sizeof(f->buf); i++)
		f->buf[i] = (uint8_t)(i * 7);
	f->in_call_down = true;
	assert_int_equal(f->dc.ops->put_data(&f->dc, &f->task, &x), 0);
	f->in_call_down = false;
	assert_int_equal(f->completions, 0);
	spin(f, 2);
	/* MaxXmitDataSegmentLength 1024: three PDUs, DataSN 0..2, F on the last; the
	 * first stops where the buffer's first piece ends */
	for (uint32_t sn = 0; off < 3012; sn++) {
		uint32_t dsl;

		read_full(f->peer, bhs, sizeof(bhs));
		assert_int_equal(isd_bhs_opcode(bhs), ISD_OP_DATA_OUT);
		assert_int_equal(get_be32(bhs + 16), 0x1234);
		assert_int_equal(get_be32(bhs + 20), 0x77);
		assert_int_equal(get_be32(bhs + 36), sn);
		assert_int_equal(get_be32(bhs + 40), off);
		assert_int_equal(get_be64(bhs + 8), 1ull << 48);
		dsl = isd_bhs_dsl(bhs);
		assert_true(dsl > 0 && dsl <= 1024);
		read_full(f->peer, data, dsl + isd_pad4(dsl));
		assert_memory_equal(data, f->buf + off, dsl);
		off += dsl;
		assert_int_equal((bhs[1] & ISD_BHS_F) != 0, off == 3012);
	}
	assert_int_equal(f->completions, 1);
	assert_int_equal(f->completion_status, 0);
	assert_int_equal(f->upcalls_in_call_down, 0);
}

static void
test_calls_on_a_closed_connection(void **state)
{
	struct fx *f = *state;
	struct isd_xfer x = {.iov = f->iov, .iovcnt = 2, .offset = 0, .length = 100,
			     .ttt = ISD_RSVD_TAG};
	struct isd_pdu *pdu = isd_pdu_alloc(0);

	open_pair(f);
	close(f->peer);
	f->peer = -1;
	spin(f, 3);
	assert_int_equal(f->terminated, 1);
	assert_int_equal(f->term_reason, -ENOTCONN);
	f->in_call_down = true;
	assert_int_equal(f->dc.ops->send_command(&f->dc, &f->task, pdu), -ENOTCONN);
	assert_int_equal(f->dc.ops->put_data(&f->dc, &f->task, &x), -ENOTCONN);
	f->in_call_down = false;
	spin(f, 3);
	assert_int_equal(f->terminated, 1);
	assert_int_equal(f->completions, 0);
	assert_int_equal(f->upcalls_in_call_down, 0);
}

/* ---- receiving data ---- */

static void
test_datain_placed_in_the_task_buffer(void **state)
{
	struct fx *f = *state;
	uint8_t wire[ISD_BHS_LEN + 1500];

	open_pair(f);
	datain_bhs(wire, 700, 1500, 0);
	for (int i = 0; i < 1500; i++)
		wire[ISD_BHS_LEN + i] = (uint8_t)(i ^ 0x5a);
	write_full(f->peer, wire, sizeof(wire));
	spin(f, 3);
	assert_int_equal(f->data_in_calls, 1);
	assert_int_equal(f->controls, 1);
	/* the header went up alone; the payload is where BufferOffset said */
	assert_int_equal(f->last_data_len, 0);
	assert_int_equal(isd_bhs_dsl(f->last_bhs), 1500);
	assert_memory_equal(f->buf + 700, wire + ISD_BHS_LEN, 1500);
	assert_int_equal(f->upcalls_in_call_down, 0);
}

static void
test_datain_refused_by_the_core(void **state)
{
	struct fx *f = *state;
	uint8_t wire[ISD_BHS_LEN + 16];

	open_pair(f);
	f->data_in_rc = -EPROTO;
	datain_bhs(wire, 0, 16, 0);
	write_full(f->peer, wire, sizeof(wire));
	spin(f, 3);
	assert_int_equal(f->data_in_calls, 1);
	assert_int_equal(f->controls, 0);
	assert_int_equal(f->terminated, 1);
	assert_int_equal(f->term_reason, -EPROTO);
}

static void
test_datain_digest_error(void **state)
{
	struct fx *f = *state;
	uint8_t wire[ISD_BHS_LEN + 4 + 64 + 4];
	struct iovec v = {.iov_base = wire + ISD_BHS_LEN + 4, .iov_len = 64};

	open_pair(f);
	f->params.header_digest = true;
	f->params.data_digest = true;
	f->dc.ops->notice_key_values(&f->dc, &f->params);
	datain_bhs(wire, 0, 64, 0);
	isd_pdu_put_digest(wire + ISD_BHS_LEN, isd_pdu_hdr_digest(wire, NULL, 0));
	memset(wire + ISD_BHS_LEN + 4, 0xab, 64);
	isd_pdu_put_digest(wire + ISD_BHS_LEN + 4 + 64,
			   isd_pdu_data_digest(&v, 1, NULL, 0) ^ 1); /* wrong */
	write_full(f->peer, wire, sizeof(wire));
	spin(f, 3);
	assert_int_equal(f->data_in_calls, 1);
	assert_int_equal(f->errors, 1);
	assert_int_equal(f->error_reason, ISD_REJECT_DIGEST_ERROR);
	assert_int_equal(f->controls, 0); /* the header never goes up as good */
}

static void
test_datain_skipped_and_cleaned_up(void **state)
{
	struct fx *f = *state;
	uint8_t wire[2 * (ISD_BHS_LEN + 32)];

	open_pair(f);
	memset(f->buf, 0, sizeof(f->buf));
	/* the core knows no task: the payload is skipped */
	f->data_in_skip = true;
	datain_bhs(wire, 0, 32, 0);
	memset(wire + ISD_BHS_LEN, 0xcc, 32);
	/* the task goes away between its Data-In header and the payload */
	datain_bhs(wire + ISD_BHS_LEN + 32, 32, 32, 1);
	memset(wire + 2 * ISD_BHS_LEN + 32, 0xdd, 32);
	write_full(f->peer, wire, ISD_BHS_LEN + 32);
	spin(f, 3);
	assert_int_equal(f->data_in_calls, 1);
	f->data_in_skip = false;
	f->cleanup_in_data_in = true;
	write_full(f->peer, wire + ISD_BHS_LEN + 32, ISD_BHS_LEN + 32);
	spin(f, 3);
	assert_int_equal(f->data_in_calls, 2);
	/* neither payload landed, the stream stayed framed, nothing failed */
	for (int i = 0; i < 64; i++)
		assert_int_equal(f->buf[i], 0);
	assert_int_equal(f->terminated, 0);
	assert_int_equal(f->errors, 0);
}

static void
test_terminate_flushes_then_notifies(void **state)
{
	struct fx *f = *state;
	struct isd_pdu *pdu = isd_pdu_alloc(0);
	uint8_t bhs[ISD_BHS_LEN];

	open_pair(f);
	pdu->bhs[0] = ISD_OP_LOGOUT_REQ;
	f->in_call_down = true;
	assert_int_equal(f->dc.ops->send_control(&f->dc, pdu), 0);
	f->dc.ops->terminate(&f->dc);
	f->in_call_down = false;
	assert_int_equal(f->terminated, 0);
	spin(f, 5);
	read_full(f->peer, bhs, sizeof(bhs));
	assert_int_equal(isd_bhs_opcode(bhs), ISD_OP_LOGOUT_REQ);
	assert_int_equal(f->terminated, 1);
	assert_int_equal(f->term_reason, 0);
	assert_int_equal(f->upcalls_in_call_down, 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_connect_refused_comes_later, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_connect_unknown_host_fails_in_the_call, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_connect_and_send_command, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_dataout_sequence, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_calls_on_a_closed_connection, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_datain_placed_in_the_task_buffer, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_datain_refused_by_the_core, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_datain_digest_error, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_datain_skipped_and_cleaned_up, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_terminate_flushes_then_notifies, setup,
					    teardown),
	};

	return cmocka_run_group_tests_name("dmtcp_active", tests, NULL, NULL);
}
