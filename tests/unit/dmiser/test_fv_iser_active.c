/*
 * The iSER datamover's active role (an initiator's connection), alone: the
 * test is the initiator core (its own upcall table, PDUs built by hand) and
 * the in-process target (tests/support/fv_target.*) is the peer, on the fake
 * verbs device. It checks what dm.h promises for each failure path, above all
 * that no upcall ever comes from inside a call down: a connect nobody
 * answers, an unknown host, a post that fails inside send_command and inside
 * put_data, completions flushed by a QP gone to error, and the link dropping
 * mid-transfer; and the happy path: a WRITE with immediate data and the rest
 * fetched by the target's RDMA Read from the write STag, read back byte for
 * byte (into one range, and through a bounce copy). The target votes
 * InitialR2T=Yes over iSER, so the framing of unsolicited Data-Out Sends is
 * checked on what it sends back in its Rejects.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "dm/iser/iser_int.h"
#include "fake_dm.h"
#include "fakeverbs.h"
#include "fv_target.h"
#include "iscsi/dm.h"
#include "reactor/reactor.h"
#include "util/endian.h"
#include "util/log.h"

#define INAME "iqn.1993-08.org.debian:01:fvactive"
#define BS 512u
#define MAXX 4096u              /* the target's MaxRecvDataSegmentLength we keep to */
#define FBL 65536u              /* FirstBurstLength (the target's policy) */

static const uint8_t g_isid[6] = { 0x80, 0, 0, 0, 0x12, 0x34 };

struct fx {
	struct fv_target tg;
	struct isd_reactor *r;          /* the initiator's */
	struct isd_params params;
	struct isd_dm_conn dc;
	struct isd_dm_task task;
	_Alignas(16) uint8_t conn_priv[sizeof(struct isd_iser_conn)];
	_Alignas(16) uint8_t task_priv[sizeof(struct isd_iser_task)];
	uint32_t cmdsn, expstatsn, itt;
	/* what came up */
	bool in_call_down;
	int upcalls_in_call_down;
	int connected, connected_status;
	int terminated, term_reason;
	int completions, completion_status;
	int rsps, last_status;
	uint8_t last_op;
	int rejects;
	uint8_t rejected[8][ISD_BHS_LEN];       /* the BHS each Reject carries back */
	uint8_t *out, *in;
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
	f->last_op = isd_bhs_opcode(pdu->bhs);
	if (f->last_op == ISD_OP_SCSI_RSP) {
		f->rsps++;
		f->last_status = pdu->bhs[3];
	} else if (f->last_op == ISD_OP_LOGIN_RSP) {
		f->last_status = (pdu->bhs[36] << 8) | pdu->bhs[37];
	}
	f->expstatsn = get_be32(pdu->bhs + 24) + 1;
	if (f->last_op == ISD_OP_REJECT && f->rejects < 8 && pdu->data_len >= ISD_BHS_LEN)
		memcpy(f->rejected[f->rejects++], pdu->data, ISD_BHS_LEN);
	c->ops->release_pdu(c, pdu);
}

static void
up_error(struct isd_dm_conn *c, const uint8_t *bhs, int reason)
{
	(void)c;
	(void)bhs;
	(void)reason;
	fail_msg("no PDU error is expected over iSER");
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

static const struct isd_dm_upcalls g_up = {
	.control_notify = up_control,
	.pdu_error_notify = up_error,
	.data_completion_notify = up_completion,
	.terminate_notify = up_terminate,
	.connected = up_connected,
};

static void
pump(struct fx *f, int n)
{
	for (int i = 0; i < n; i++) {
		(void)isd_reactor_poll(f->tg.r, 0);
		(void)isd_reactor_poll(f->r, 0);
	}
}

/* Pumps until *counter passes `was` (bounded). */
static void
pump_until(struct fx *f, const int *counter, int was)
{
	for (int i = 0; i < 5000 && *counter == was; i++)
		pump(f, 1);
	assert_int_not_equal(*counter, was);
}

static int
setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	fv_reset();
	if (getenv("FV_DEBUG") != NULL)
		isd_log_enable("iscsi,iser");
	fv_target_start(&f->tg, &(struct fv_target_cfg){ .lun_mib = 4 });
	assert_int_equal(isd_reactor_create(&f->r), 0);
	isd_params_init_defaults(&f->params);
	f->dc.ops = &isd_iser_dm_ops;
	f->dc.up = &g_up;
	f->dc.r = f->r;
	f->dc.params = &f->params;
	f->dc.active = true;
	f->dc.queue_depth = 4;
	f->dc.priv = f->conn_priv;
	f->task.priv = f->task_priv;
	f->task.lun = 0;
	f->out = malloc(1u << 20);
	f->in = malloc(1u << 20);
	assert_non_null(f->out);
	assert_non_null(f->in);
	g_fx = f;
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fx *f = *state;
	struct fv_stats fs;

	f->dc.ops->free_conn(&f->dc);
	for (int i = 0; i < 2000 && fv_target_iser_conns() > 0; i++)
		pump(f, 1);
	pump(f, 5);
	isd_reactor_destroy(f->r);
	fv_target_assert_idle(&f->tg);
	fv_target_stop(&f->tg);
	fv_get_stats(&fs);
	if (fs.bugs != 0)
		fprintf(stderr, "fakeverbs: %s\n", fs.last_bug);
	assert_int_equal(fs.bugs, 0);
	assert_int_equal(fv_live_objects(), 0);
	assert_int_equal(f->upcalls_in_call_down, 0);
	free(f->out);
	free(f->in);
	free(f);
	return 0;
}

/* ---- the fake core's calls down, each marked so that an upcall inside shows ---- */

static int
dn_connect(struct fx *f, const char *host, uint16_t port)
{
	int rc;

	f->in_call_down = true;
	rc = f->dc.ops->connect(&f->dc, host, port);
	f->in_call_down = false;
	return rc;
}

static int
dn_send_control(struct fx *f, struct isd_pdu *pdu)
{
	int rc;

	f->in_call_down = true;
	rc = f->dc.ops->send_control(&f->dc, pdu);
	f->in_call_down = false;
	return rc;
}

static int
dn_send_command(struct fx *f, struct isd_pdu *pdu)
{
	int rc;

	f->in_call_down = true;
	rc = f->dc.ops->send_command(&f->dc, &f->task, pdu);
	f->in_call_down = false;
	return rc;
}

static int
dn_put_data(struct fx *f, uint32_t off, uint32_t len)
{
	struct isd_xfer x = { .iov = f->task.iov, .iovcnt = f->task.iovcnt, .offset = off,
			      .length = len, .ttt = ISD_RSVD_TAG };
	int rc;

	f->in_call_down = true;
	rc = f->dc.ops->put_data(&f->dc, &f->task, &x);
	f->in_call_down = false;
	return rc;
}

static void
dn_task_cleanup(struct fx *f)
{
	f->in_call_down = true;
	f->dc.ops->task_cleanup(&f->dc, &f->task, NULL);
	f->in_call_down = false;
}

/* Connects and logs in (one Login Request, operational stage to FFP). */
static void
connect_login(struct fx *f)
{
	struct isd_pdu *pdu = isd_pdu_alloc(1024);
	char in[300], tn[300];
	int was;

	assert_int_equal(dn_connect(f, "127.0.0.1", f->tg.port), 0);
	assert_int_equal(f->connected, 0);
	pump_until(f, &f->connected, 0);
	assert_int_equal(f->connected_status, 0);
	snprintf(in, sizeof(in), "InitiatorName=%s", INAME);
	snprintf(tn, sizeof(tn), "TargetName=%s", FV_TARGET_NAME);
	assert_non_null(pdu);
	pdu->data_len = fake_text(pdu->data, 1024, in, tn, "SessionType=Normal",
				  "RDMAExtensions=Yes", "HeaderDigest=None", "DataDigest=None",
				  "ImmediateData=Yes", "InitialR2T=No", "MaxBurstLength=262144",
				  "FirstBurstLength=65536", "TargetRecvDataSegmentLength=8192",
				  "InitiatorRecvDataSegmentLength=8192", (const char *)NULL);
	fake_login_bhs(pdu->bhs, ISD_LOGIN_T | (ISD_STAGE_OPERATIONAL << 2) | ISD_STAGE_FFP,
		       g_isid, 0, 0x1000, f->cmdsn);
	f->last_op = 0;
	was = f->connected;
	assert_int_equal(dn_send_control(f, pdu), 0);
	for (int i = 0; i < 5000 && f->last_op != ISD_OP_LOGIN_RSP; i++)
		pump(f, 1);
	assert_int_equal(f->last_op, ISD_OP_LOGIN_RSP);
	assert_int_equal(f->last_status, 0);
	assert_int_equal(f->connected, was);
	f->params.max_xmit_dsl = MAXX;
	f->dc.ops->notice_key_values(&f->dc, &f->params);
}

/* The SCSI Command of f->task: a 10-byte CDB, imm bytes of immediate data. */
static struct isd_pdu *
cmd_pdu(struct fx *f, uint8_t op, uint32_t lba, uint32_t len, uint32_t imm, bool unsol)
{
	struct isd_pdu *pdu = isd_pdu_alloc(0);
	uint8_t *b;

	assert_non_null(pdu);
	b = pdu->bhs;
	f->task.itt = ++f->itt;
	memset(b, 0, ISD_BHS_LEN);
	b[0] = ISD_OP_SCSI_CMD;
	b[1] = (unsol ? 0 : ISD_BHS_F) | 1;
	if (op == 0x2a)
		b[1] |= ISD_CMD_W;
	else if (op == 0x28)
		b[1] |= ISD_CMD_R;
	put_be32(b + 16, f->task.itt);
	put_be32(b + 20, len);
	put_be32(b + 24, f->cmdsn++);
	put_be32(b + 28, f->expstatsn);
	b[32] = op;
	if (op != 0) {
		put_be32(b + 34, lba);
		put_be16(b + 39, (uint16_t)(len / BS));
	}
	if (imm > 0) {
		pdu->data_iov = f->task.iov;
		pdu->data_iovcnt = f->task.iovcnt;
		pdu->data_len = imm;
	}
	return pdu;
}

/* The task's buffer: buf in two pieces (contiguous) or one. */
static void
task_buf(struct fx *f, uint8_t *buf, uint32_t len, bool write, uint32_t unsol)
{
	f->iov[0].iov_base = buf;
	f->iov[0].iov_len = len / 2;
	f->iov[1].iov_base = buf + len / 2;
	f->iov[1].iov_len = len - len / 2;
	f->task.iov = f->iov;
	f->task.iovcnt = 2;
	f->task.write_len = write ? len : 0;
	f->task.read_len = write ? 0 : len;
	f->task.unsol_len = write ? unsol : 0;
}

static void
tur(struct fx *f)
{
	int was = f->rsps;

	task_buf(f, f->in, 0, false, 0);
	f->task.read_len = 0;
	assert_int_equal(dn_send_command(f, cmd_pdu(f, 0, 0, 0, 0, false)), 0);
	pump_until(f, &f->rsps, was);
	dn_task_cleanup(f);
}

/* ---- tests ---- */

/* WRITE 128 KiB: 4 KiB immediate, the rest by the target's RDMA Read from the
 * write VA (just past the immediate data); READ it back. */
static void
test_write_read(void **state)
{
	struct fx *f = *state;
	const uint32_t n = 128u << 10;
	struct fv_stats before, after;
	int was;

	connect_login(f);
	tur(f);                         /* the POWER ON unit attention */
	tur(f);
	for (uint32_t i = 0; i < n; i++)
		f->out[i] = (uint8_t)(i * 7 + (i >> 10));
	fv_get_stats(&before);
	task_buf(f, f->out, n, true, MAXX);
	was = f->rsps;
	assert_int_equal(dn_send_command(f, cmd_pdu(f, 0x2a, 8, n, MAXX, false)), 0);
	pump_until(f, &f->rsps, was);
	assert_int_equal(f->last_status, 0);
	fv_get_stats(&after);
	/* the command and the response by Send; the rest by Read */
	assert_int_equal(after.sends - before.sends, 2);
	assert_int_equal(after.read_bytes - before.read_bytes, n - MAXX);
	dn_task_cleanup(f);

	memset(f->in, 0, n);
	task_buf(f, f->in, n, false, 0);
	was = f->rsps;
	assert_int_equal(dn_send_command(f, cmd_pdu(f, 0x28, 8, n, 0, false)), 0);
	pump_until(f, &f->rsps, was);
	assert_int_equal(f->last_status, 0);
	dn_task_cleanup(f);
	assert_memory_equal(f->in, f->out, n);
	/* a buffer that is not one range goes through a registered copy */
	memset(f->in, 0, n);
	f->iov[0].iov_base = f->in;
	f->iov[0].iov_len = n / 2;
	f->iov[1].iov_base = f->in + n / 2 + 4096;
	f->iov[1].iov_len = n / 2;
	was = f->rsps;
	assert_int_equal(dn_send_command(f, cmd_pdu(f, 0x28, 8, n, 0, false)), 0);
	pump_until(f, &f->rsps, was);
	dn_task_cleanup(f);
	assert_memory_equal(f->in, f->out, n / 2);
	assert_memory_equal(f->in + n / 2 + 4096, f->out + n / 2, n / 2);
	assert_int_equal(f->terminated, 0);
}

/* Unsolicited Data-Out as Sends: one per MaxRecvDataSegmentLength, DataSN from
 * 0, F on the last, the reserved TTT, offsets within the buffer; one
 * completion notify once all are sent. This target takes none (InitialR2T=Yes
 * over iSER): each comes back in a Reject, which shows its header. */
static void
test_dataout_framing(void **state)
{
	struct fx *f = *state;
	struct fv_stats before, after;
	int was;

	connect_login(f);
	tur(f);
	tur(f);
	task_buf(f, f->out, 4 * MAXX, true, MAXX);
	was = f->rsps;
	fv_get_stats(&before);
	assert_int_equal(dn_send_command(f, cmd_pdu(f, 0x2a, 0, 4 * MAXX, MAXX, false)), 0);
	assert_int_equal(dn_put_data(f, MAXX, 3 * MAXX - 100), 0);
	assert_int_equal(f->completions, 0);
	pump_until(f, &f->rsps, was);
	for (int i = 0; i < 200 && f->rejects < 3; i++)
		pump(f, 1);
	fv_get_stats(&after);
	assert_int_equal(f->completions, 1);
	assert_int_equal(f->completion_status, 0);
	assert_int_equal(after.sends - before.sends, 1 + 3 + 1 + 3);
	assert_int_equal(f->rejects, 3);
	for (int i = 0; i < 3; i++) {
		const uint8_t *b = f->rejected[i];

		assert_int_equal(isd_bhs_opcode(b), ISD_OP_DATA_OUT);
		assert_int_equal(isd_bhs_itt(b), f->task.itt);
		assert_int_equal(isd_bhs_ttt(b), ISD_RSVD_TAG);
		assert_int_equal(get_be32(b + 36), (uint32_t)i);
		assert_int_equal(get_be32(b + 40), MAXX + (uint32_t)i * MAXX);
		assert_int_equal(isd_bhs_dsl(b), i < 2 ? MAXX : MAXX - 100);
		assert_int_equal((b[1] & ISD_BHS_F) != 0, i == 2);
	}
	dn_task_cleanup(f);
	assert_int_equal(f->terminated, 0);
}

/* Nobody listens: connected(-ECONNREFUSED) from the loop, nothing else. */
static void
test_connect_refused(void **state)
{
	struct fx *f = *state;

	assert_int_equal(dn_connect(f, "127.0.0.1", (uint16_t)(f->tg.port + 1000)), 0);
	assert_int_equal(f->connected, 0);
	pump_until(f, &f->connected, 0);
	assert_int_equal(f->connected_status, -ECONNREFUSED);
	pump(f, 10);
	assert_int_equal(f->connected, 1);
	assert_int_equal(f->terminated, 0);
}

/* An address no RDMA device has: the resolution fails, later. */
static void
test_connect_no_device(void **state)
{
	struct fx *f = *state;

	fv_cfg.no_devices = true;
	assert_int_equal(dn_connect(f, "127.0.0.1", f->tg.port), 0);
	pump_until(f, &f->connected, 0);
	assert_int_equal(f->connected_status, -EHOSTUNREACH);
	assert_int_equal(f->terminated, 0);
	fv_cfg.no_devices = false;
}

/* A name that does not resolve: -ENXIO from the call, nothing follows. */
static void
test_connect_unknown_host(void **state)
{
	struct fx *f = *state;

	assert_int_equal(dn_connect(f, "no-such-host.invalid", 3260), -ENXIO);
	pump(f, 10);
	assert_int_equal(f->connected, 0);
	assert_int_equal(f->terminated, 0);
}

/* The Send of a SCSI Command fails to post: send_command still returns 0, the
 * connection ends from the loop, no completion (no transfer was started). */
static void
test_post_fails_in_send_command(void **state)
{
	struct fx *f = *state;
	struct isd_iser_conn *ic = (struct isd_iser_conn *)f->conn_priv;

	connect_login(f);
	tur(f);
	task_buf(f, f->out, 8192, true, 8192);
	fv_qp_fail_post_send(ic->qp, 1, ENOMEM);
	assert_int_equal(dn_send_command(f, cmd_pdu(f, 0x2a, 0, 8192, MAXX, true)), 0);
	assert_int_equal(f->terminated, 0);
	pump_until(f, &f->terminated, 0);
	assert_int_equal(f->completions, 0);
	dn_task_cleanup(f);
	pump(f, 10);
	assert_int_equal(f->terminated, 1);
}

/* A Data-Out Send fails to post: put_data returns 0, its completion notify
 * (an error) comes from the loop before the terminate notify. Both
 * Data-Outs go in one post: the provider takes the first and refuses the
 * second, which completes as flushed. */
static void
test_post_fails_in_put_data(void **state)
{
	struct fx *f = *state;
	struct isd_iser_conn *ic = (struct isd_iser_conn *)f->conn_priv;

	connect_login(f);
	tur(f);
	task_buf(f, f->out, 3 * MAXX, true, 3 * MAXX);
	assert_int_equal(dn_send_command(f, cmd_pdu(f, 0x2a, 0, 3 * MAXX, MAXX, true)), 0);
	fv_qp_fail_send_wr(ic->qp, 2, EINVAL);          /* the second Data-Out */
	assert_int_equal(dn_put_data(f, MAXX, 2 * MAXX), 0);
	assert_int_equal(f->completions, 0);
	assert_int_equal(f->terminated, 0);
	pump_until(f, &f->terminated, 0);
	assert_int_equal(f->completions, 1);
	assert_true(f->completion_status < 0);
	dn_task_cleanup(f);
}

/* The Data-Out Sends sit on a held QP that goes to error: flushed, the
 * transfer fails (once), the connection ends. */
static void
test_flushed_dataout(void **state)
{
	struct fx *f = *state;
	struct isd_iser_conn *ic = (struct isd_iser_conn *)f->conn_priv;
	struct fv_stats fs;

	connect_login(f);
	tur(f);
	task_buf(f, f->out, 4 * MAXX, true, 4 * MAXX);
	fv_qp_hold(ic->qp, true);
	assert_int_equal(dn_send_command(f, cmd_pdu(f, 0x2a, 0, 4 * MAXX, MAXX, true)), 0);
	assert_int_equal(dn_put_data(f, MAXX, 3 * MAXX), 0);
	pump(f, 5);
	assert_int_equal(fv_qp_pending_sends(ic->qp), 4);
	fv_qp_to_error(ic->qp);
	pump_until(f, &f->terminated, 0);
	assert_int_equal(f->completions, 1);
	assert_true(f->completion_status < 0);
	fv_get_stats(&fs);
	assert_true(fs.flushed >= 4);
	dn_task_cleanup(f);
	fv_qp_hold(ic->qp, false);
}

/* The target hangs up with its RDMA Write of a READ held: terminate notify;
 * task_cleanup after it gives the registration back; nothing leaks. */
static void
test_disconnect_mid_read(void **state)
{
	struct fx *f = *state;
	const uint32_t n = 256u << 10;
	struct fv_ini *ini;
	struct ibv_qp *tqp;

	connect_login(f);
	tur(f);
	ini = fv_active_last();
	tqp = fv_ini_target_qp(ini);
	assert_non_null(tqp);
	fv_qp_hold(tqp, true);
	task_buf(f, f->in, n, false, 0);
	assert_int_equal(dn_send_command(f, cmd_pdu(f, 0x28, 0, n, 0, false)), 0);
	for (int i = 0; i < 2000 && fv_qp_pending_sends(tqp) == 0; i++)
		pump(f, 1);
	assert_true(fv_qp_pending_sends(tqp) > 0);
	fv_ini_disconnect(ini);
	pump_until(f, &f->terminated, 0);
	assert_int_equal(f->term_reason, -ECONNRESET);
	dn_task_cleanup(f);
}

/* free_conn inside an upcall (the initiator core closes on a SCSI Response):
 * the release that follows and the rest of the poll touch nothing freed. */
static void
close_in_control(struct isd_dm_conn *c, struct isd_pdu *pdu)
{
	struct fx *f = g_fx;

	f->rsps++;
	c->ops->task_cleanup(c, &f->task, NULL);
	c->ops->free_conn(c);
	c->ops->release_pdu(c, pdu);
}

static void
test_free_inside_upcall(void **state)
{
	struct fx *f = *state;
	struct isd_dm_upcalls up = g_up;
	int was;

	connect_login(f);
	tur(f);
	up.control_notify = close_in_control;
	f->dc.up = &up;
	task_buf(f, f->in, 8192, false, 0);
	was = f->rsps;
	assert_int_equal(dn_send_command(f, cmd_pdu(f, 0x28, 0, 8192, 0, false)), 0);
	pump_until(f, &f->rsps, was);
	pump(f, 20);
	/* the target saw the hang-up */
	for (int i = 0; i < 2000 && fv_target_iser_conns() > 0; i++)
		pump(f, 1);
	assert_int_equal(fv_target_iser_conns(), 0);
	/* teardown frees again: make that a no-op on a fresh area */
	memset(f->conn_priv, 0, sizeof(f->conn_priv));
	f->dc.ops = &isd_iser_dm_ops;
	f->dc.up = &g_up;
	isd_iser_conn_init((struct isd_iser_conn *)f->conn_priv, &f->dc, f->r);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_write_read, setup, teardown),
		cmocka_unit_test_setup_teardown(test_dataout_framing, setup, teardown),
		cmocka_unit_test_setup_teardown(test_connect_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_connect_no_device, setup, teardown),
		cmocka_unit_test_setup_teardown(test_connect_unknown_host, setup, teardown),
		cmocka_unit_test_setup_teardown(test_post_fails_in_send_command, setup, teardown),
		cmocka_unit_test_setup_teardown(test_post_fails_in_put_data, setup, teardown),
		cmocka_unit_test_setup_teardown(test_flushed_dataout, setup, teardown),
		cmocka_unit_test_setup_teardown(test_disconnect_mid_read, setup, teardown),
		cmocka_unit_test_setup_teardown(test_free_inside_upcall, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
