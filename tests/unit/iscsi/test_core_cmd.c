/*
 * The iSCSI core in full feature phase, through the fake datamover: the SCSI
 * command path to a RAM LU, CmdSN ordering, NOP, Reject, TMF, Text, Logout.
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

#include "bstore/bstore.h"
#include "fake_dm.h"
#include "iscsi/iscsi.h"
#include "iscsi/pdu.h"
#include "reactor/reactor.h"
#include "scsi/scsi.h"
#include "util/log.h"

#define TNAME "iqn.2024-01.org.example:ram"
#define INAME "iqn.1993-08.org.debian:01:cmdtest"

struct fx {
	struct isd_reactor *r;
	struct isd_iscsi_tgt *t;
	struct isd_tnode node;
	struct isd_scsi_dev *dev;
	struct fake_dm fd;
	uint32_t cmdsn;                 /* next CmdSN to use */
	uint32_t itt;
	struct isd_tnode *extra;
};

static const uint8_t g_isid[6] = { 0x80, 0, 0, 0, 0x12, 0x34 };

static struct isd_pdu *wait_pdu(struct fx *f);

/* The first command of a new nexus meets the POWER ON unit attention: take it. */
static void
clear_power_on_ua(struct fx *f)
{
	uint8_t bhs[ISD_BHS_LEN] = { ISD_OP_SCSI_CMD, ISD_BHS_F | 1 };
	struct isd_pdu *rsp;

	put_be32(bhs + 16, f->itt++);
	put_be32(bhs + 24, f->cmdsn++);
	fake_dm_inject(&f->fd, bhs, NULL, 0);      /* TEST UNIT READY */
	rsp = wait_pdu(f);
	assert_non_null(rsp);
	assert_int_equal(isd_bhs_opcode(rsp->bhs), ISD_OP_SCSI_RSP);
	isd_pdu_free(rsp);
}

static int
setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	struct isd_iscsi_cfg cfg;
	struct isd_scsi_lu_cfg lcfg;
	struct isd_bstore *bs;
	char err[128];

	assert_non_null(f);
	assert_int_equal(isd_reactor_create(&f->r), 0);
	isd_iscsi_cfg_init(&cfg);
	cfg.nop_interval_ms = 0;
	assert_int_equal(isd_iscsi_tgt_create(f->r, &cfg, &f->t), 0);
	assert_int_equal(isd_scsi_dev_create(TNAME, &f->dev), 0);
	assert_int_equal(isd_bstore_open(f->r, "ram:1M", &bs, err, sizeof(err)), 0);
	memset(&lcfg, 0, sizeof(lcfg));
	lcfg.bstore = bs;
	lcfg.block_size = 512;
	snprintf(lcfg.vendor, sizeof(lcfg.vendor), "ISERD");
	snprintf(lcfg.product, sizeof(lcfg.product), "RAM");
	snprintf(lcfg.revision, sizeof(lcfg.revision), "0001");
	snprintf(lcfg.serial, sizeof(lcfg.serial), "ram0");
	lcfg.naa_id = 0x123456789ull;
	assert_int_equal(isd_scsi_dev_add_lu(f->dev, 0, &lcfg), 0);
	snprintf(f->node.name, sizeof(f->node.name), "%s", TNAME);
	f->node.dev = f->dev;
	f->node.queue_depth = 8;
	isd_key_policy_init(&f->node.policy);
	assert_int_equal(isd_iscsi_tgt_add_node(f->t, &f->node), 0);
	fake_dm_init(&f->fd);
	assert_int_equal(fake_dm_connect(&f->fd, f->t, f->r, 1), 0);
	f->cmdsn = 100;
	assert_int_equal(fake_dm_login(&f->fd, INAME, TNAME, g_isid, f->cmdsn, NULL), 0);
	assert_true(f->fd.noticed);
	f->itt = 1;
	clear_power_on_ua(f);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fx *f = *state;
	struct isd_iscsi_stats st;

	if (f->fd.conn != NULL)
		fake_dm_terminate_notify(&f->fd, true);
	for (int i = 0; i < 100; i++)
		isd_reactor_poll(f->r, 0);
	fake_dm_fini(&f->fd);
	isd_iscsi_tgt_get_stats(f->t, &st);
	assert_int_equal(st.connections, 0);
	assert_int_equal(st.sessions, 0);
	assert_int_equal(st.tasks, 0);
	isd_iscsi_tgt_destroy(f->t);
	isd_scsi_dev_destroy(f->dev);
	isd_reactor_destroy(f->r);
	free(f->extra);
	free(f);
	return 0;
}

/* Runs the reactor until the fake has sent something (backing store I/O is async). */
static struct isd_pdu *
wait_pdu(struct fx *f)
{
	for (int i = 0; i < 200 && TAILQ_EMPTY(&f->fd.sent); i++)
		isd_reactor_poll(f->r, 1);
	return fake_dm_pop(&f->fd);
}

static void
cmd_bhs(uint8_t *bhs, uint8_t flags, uint32_t itt, uint32_t edtl, uint32_t cmdsn,
	const uint8_t *cdb, size_t cdb_len)
{
	memset(bhs, 0, ISD_BHS_LEN);
	bhs[0] = ISD_OP_SCSI_CMD;
	bhs[1] = flags | 1;     /* SIMPLE */
	put_be32(bhs + 16, itt);
	put_be32(bhs + 20, edtl);
	put_be32(bhs + 24, cmdsn);
	memcpy(bhs + 32, cdb, cdb_len);
}

static void
rw10(uint8_t *cdb, uint8_t op, uint32_t lba, uint16_t blocks)
{
	memset(cdb, 0, 16);
	cdb[0] = op;
	put_be32(cdb + 2, lba);
	put_be16(cdb + 7, blocks);
}

static void
data_out_bhs(uint8_t *bhs, uint8_t flags, uint32_t itt, uint32_t ttt, uint32_t datasn,
	     uint32_t offset)
{
	memset(bhs, 0, ISD_BHS_LEN);
	bhs[0] = ISD_OP_DATA_OUT;
	bhs[1] = flags;
	put_be32(bhs + 16, itt);
	put_be32(bhs + 20, ttt);
	put_be32(bhs + 36, datasn);
	put_be32(bhs + 40, offset);
}

static void
nop_bhs(uint8_t *bhs, bool imm, uint32_t itt, uint32_t cmdsn)
{
	memset(bhs, 0, ISD_BHS_LEN);
	bhs[0] = ISD_OP_NOP_OUT | (imm ? ISD_BHS_I : 0);
	bhs[1] = ISD_BHS_F;
	put_be32(bhs + 16, itt);
	put_be32(bhs + 20, ISD_RSVD_TAG);
	put_be32(bhs + 24, cmdsn);
}

/* WRITE(10) 8 blocks at LBA 16: 1 KiB immediate, 1 KiB unsolicited, 2 KiB solicited. */
static void
do_write(struct fx *f, const uint8_t *buf)
{
	uint8_t bhs[ISD_BHS_LEN], cdb[16];
	uint32_t itt = f->itt++;
	struct isd_pdu *rsp;

	rw10(cdb, 0x2a, 16, 8);
	cmd_bhs(bhs, ISD_CMD_W, itt, 4096, f->cmdsn++, cdb, 16);    /* F=0: Data-Out follows */
	fake_dm_inject(&f->fd, bhs, buf, 1024);
	assert_int_equal(f->fd.n_sent, 0);
	data_out_bhs(bhs, ISD_BHS_F, itt, ISD_RSVD_TAG, 0, 1024);
	fake_dm_inject(&f->fd, bhs, buf + 1024, 1024);
	/* the rest is solicited through get_data */
	assert_int_equal(f->fd.n_xfers, 1);
	assert_false(f->fd.xfers[0].put);
	assert_int_equal(f->fd.xfers[0].offset, 2048);
	assert_int_equal(f->fd.xfers[0].length, 2048);
	assert_int_equal(fake_dm_complete(&f->fd, buf + 2048, 0), 0);
	rsp = wait_pdu(f);
	assert_non_null(rsp);
	assert_int_equal(isd_bhs_opcode(rsp->bhs), ISD_OP_SCSI_RSP);
	assert_int_equal(isd_bhs_itt(rsp->bhs), itt);
	assert_int_equal(rsp->bhs[3], ISD_SAM_GOOD);
	assert_int_equal(rsp->bhs[1] & (ISD_RSP_U | ISD_RSP_O), 0);
	isd_pdu_free(rsp);
}

static void
test_cmd_write_then_read(void **state)
{
	struct fx *f = *state;
	uint8_t buf[4096], bhs[ISD_BHS_LEN], cdb[16];
	struct isd_pdu *rsp;
	struct isd_iscsi_stats st;
	uint32_t itt;

	for (size_t i = 0; i < sizeof(buf); i++)
		buf[i] = (uint8_t)(i * 7 + 3);
	do_write(f, buf);

	itt = f->itt++;
	rw10(cdb, 0x28, 16, 8);
	cmd_bhs(bhs, ISD_BHS_F | ISD_CMD_R, itt, 4096, f->cmdsn++, cdb, 16);
	fake_dm_inject(&f->fd, bhs, NULL, 0);
	rsp = wait_pdu(f);
	assert_non_null(rsp);
	/* put_data carried the data and the response */
	assert_int_equal(f->fd.n_xfers, 1);
	assert_true(f->fd.xfers[0].put);
	assert_int_equal(f->fd.read_len, 4096);
	assert_memory_equal(f->fd.read_data, buf, 4096);
	assert_int_equal(isd_bhs_opcode(rsp->bhs), ISD_OP_SCSI_RSP);
	assert_int_equal(rsp->bhs[3], ISD_SAM_GOOD);
	assert_int_equal(rsp->bhs[1] & (ISD_RSP_U | ISD_RSP_O), 0);
	isd_pdu_free(rsp);
	isd_iscsi_tgt_get_stats(f->t, &st);
	assert_int_equal(st.tasks, 1);
	assert_int_equal(fake_dm_complete(&f->fd, NULL, 0), 0);
	isd_iscsi_tgt_get_stats(f->t, &st);
	assert_int_equal(st.tasks, 0);
	assert_int_equal(f->fd.released, f->fd.injected);
}

/* send_response: the datamover's hook for a task's final SCSI Response */
static int g_rsp_calls;
static uint32_t g_rsp_itt;

static int
rec_send_response(struct isd_dm_conn *c, struct isd_dm_task *t, struct isd_pdu *pdu)
{
	g_rsp_calls++;
	g_rsp_itt = isd_dmt_itt(t);
	assert_int_equal(isd_bhs_opcode(pdu->bhs), ISD_OP_SCSI_RSP);
	assert_int_equal(isd_bhs_itt(pdu->bhs), g_rsp_itt);
	return fake_dm_ops.send_control(c, pdu);
}

static void
test_cmd_send_response_hook(void **state)
{
	struct fx *f = *state;
	uint8_t buf[4096], bhs[ISD_BHS_LEN], cdb[16] = {0};
	struct isd_pdu *rsp;
	uint32_t itt;

	memset(buf, 0x5a, sizeof(buf));
	g_rsp_calls = 0;
	fake_dm_ops.send_response = rec_send_response;
	/* a WRITE's response (no data left to move) goes through the hook, with its task */
	itt = f->itt;
	do_write(f, buf);
	assert_int_equal(g_rsp_calls, 1);
	assert_int_equal(g_rsp_itt, itt);
	/* so does TEST UNIT READY's */
	itt = f->itt++;
	cmd_bhs(bhs, ISD_BHS_F, itt, 0, f->cmdsn++, cdb, 16);
	fake_dm_inject(&f->fd, bhs, NULL, 0);
	rsp = wait_pdu(f);
	assert_non_null(rsp);
	assert_int_equal(rsp->bhs[3], ISD_SAM_GOOD);
	isd_pdu_free(rsp);
	assert_int_equal(g_rsp_calls, 2);
	assert_int_equal(g_rsp_itt, itt);
	/* a READ's response travels with its data (put_data), not through the hook */
	rw10(cdb, 0x28, 16, 8);
	cmd_bhs(bhs, ISD_BHS_F | ISD_CMD_R, f->itt++, 4096, f->cmdsn++, cdb, 16);
	fake_dm_inject(&f->fd, bhs, NULL, 0);
	rsp = wait_pdu(f);
	assert_non_null(rsp);
	assert_true(f->fd.xfers[f->fd.n_xfers - 1].put);
	isd_pdu_free(rsp);
	assert_int_equal(fake_dm_complete(&f->fd, NULL, 0), 0);
	assert_int_equal(g_rsp_calls, 2);
	fake_dm_ops.send_response = NULL;
}

static void
test_cmd_read_underflow_residual(void **state)
{
	struct fx *f = *state;
	uint8_t bhs[ISD_BHS_LEN], cdb[16];
	struct isd_pdu *rsp;

	/* READ 1 block with EDTL 1024: underflow of 512 */
	rw10(cdb, 0x28, 0, 1);
	cmd_bhs(bhs, ISD_BHS_F | ISD_CMD_R, f->itt++, 1024, f->cmdsn++, cdb, 16);
	fake_dm_inject(&f->fd, bhs, NULL, 0);
	rsp = wait_pdu(f);
	assert_non_null(rsp);
	assert_int_equal(f->fd.read_len, 512);
	assert_true(rsp->bhs[1] & ISD_RSP_U);
	assert_int_equal(get_be32(rsp->bhs + 44), 512);
	isd_pdu_free(rsp);
	assert_int_equal(fake_dm_complete(&f->fd, NULL, 0), 0);

	/* READ 2 blocks with EDTL 512: overflow of 512, only 512 bytes sent */
	fake_dm_fini(&f->fd);
	rw10(cdb, 0x28, 0, 2);
	cmd_bhs(bhs, ISD_BHS_F | ISD_CMD_R, f->itt++, 512, f->cmdsn++, cdb, 16);
	fake_dm_inject(&f->fd, bhs, NULL, 0);
	rsp = wait_pdu(f);
	assert_non_null(rsp);
	if (f->fd.n_xfers > 0) {
		assert_int_equal(f->fd.read_len, 512);
		assert_int_equal(fake_dm_complete(&f->fd, NULL, 0), 0);
	}
	assert_true(rsp->bhs[1] & ISD_RSP_O);
	assert_int_equal(get_be32(rsp->bhs + 44), 512);
	isd_pdu_free(rsp);
}

static void
expect_crc_check_condition(struct fx *f, uint32_t itt)
{
	struct isd_pdu *rsp = wait_pdu(f);

	assert_non_null(rsp);
	assert_int_equal(isd_bhs_opcode(rsp->bhs), ISD_OP_SCSI_RSP);
	assert_int_equal(isd_bhs_itt(rsp->bhs), itt);
	assert_int_equal(rsp->bhs[3], ISD_SAM_CHECK_CONDITION);
	assert_true(rsp->data_len >= 2 + 14);
	assert_int_equal(rsp->data[2 + 2] & 0x0f, ISD_SK_ABORTED_COMMAND);
	assert_int_equal(rsp->data[2 + 12], 0x47);     /* PROTOCOL SERVICE CRC ERROR */
	assert_int_equal(rsp->data[2 + 13], 0x05);
	isd_pdu_free(rsp);
}

/*
 * Data-out that failed its data digest (RFC 7143 §7.8, ERL 0): the command is
 * never run; once all its data is in it ends with CHECK CONDITION, ABORTED
 * COMMAND, PROTOCOL SERVICE CRC ERROR. Unsolicited: the datamover reports the
 * Data-Out it dropped and the core answers Reject, then ends the burst without
 * soliciting the rest. Solicited: get_data completes with -EILSEQ.
 */
static void
test_cmd_data_digest_error_check_condition(void **state)
{
	struct fx *f = *state;
	uint8_t buf[4096], bhs[ISD_BHS_LEN], cdb[16];
	struct isd_pdu *rsp;
	uint32_t itt = f->itt++;

	memset(buf, 0x3c, sizeof(buf));
	rw10(cdb, 0x2a, 16, 8);
	cmd_bhs(bhs, ISD_CMD_W, itt, 4096, f->cmdsn++, cdb, 16);    /* F=0: Data-Out follows */
	fake_dm_inject(&f->fd, bhs, buf, 1024);
	data_out_bhs(bhs, ISD_BHS_F, itt, ISD_RSVD_TAG, 0, 1024);
	isd_bhs_set_dsl(bhs, 1024);
	isd_dm_pdu_error_notify(f->fd.conn, bhs, ISD_REJECT_DIGEST_ERROR);
	rsp = wait_pdu(f);
	assert_non_null(rsp);
	assert_int_equal(isd_bhs_opcode(rsp->bhs), ISD_OP_REJECT);
	assert_int_equal(rsp->bhs[2], ISD_REJECT_DIGEST_ERROR);
	isd_pdu_free(rsp);
	expect_crc_check_condition(f, itt);
	assert_int_equal(f->fd.n_xfers, 0);     /* nothing solicited after a bad burst */

	/* A wrong digest on a Data-Out that fits no burst changes nothing but a Reject. */
	data_out_bhs(bhs, ISD_BHS_F, 0x7777, ISD_RSVD_TAG, 0, 0);
	isd_bhs_set_dsl(bhs, 512);
	isd_dm_pdu_error_notify(f->fd.conn, bhs, ISD_REJECT_DIGEST_ERROR);
	rsp = wait_pdu(f);
	assert_non_null(rsp);
	assert_int_equal(isd_bhs_opcode(rsp->bhs), ISD_OP_REJECT);
	isd_pdu_free(rsp);

	itt = f->itt++;
	cmd_bhs(bhs, ISD_BHS_F | ISD_CMD_W, itt, 4096, f->cmdsn++, cdb, 16);
	fake_dm_inject(&f->fd, bhs, NULL, 0);
	assert_int_equal(f->fd.n_xfers, 1);
	assert_false(f->fd.xfers[0].put);
	assert_int_equal(fake_dm_complete(&f->fd, NULL, -EILSEQ), 0);
	expect_crc_check_condition(f, itt);
	assert_false(f->fd.terminate_called);

	/* The connection goes on. */
	do_write(f, buf);
}

static void
test_cmd_bidi_check_condition(void **state)
{
	struct fx *f = *state;
	uint8_t bhs[ISD_BHS_LEN], cdb[16];
	struct isd_pdu *rsp;

	rw10(cdb, 0x28, 0, 1);
	cmd_bhs(bhs, ISD_BHS_F | ISD_CMD_R | ISD_CMD_W, f->itt++, 512, f->cmdsn++, cdb, 16);
	fake_dm_inject(&f->fd, bhs, NULL, 0);
	rsp = wait_pdu(f);
	assert_non_null(rsp);
	assert_int_equal(isd_bhs_opcode(rsp->bhs), ISD_OP_SCSI_RSP);
	assert_int_equal(rsp->bhs[3], ISD_SAM_CHECK_CONDITION);
	assert_true(rsp->data_len > 2);
	assert_int_equal(get_be16(rsp->data), rsp->data_len - 2);
	assert_int_equal(rsp->data[2 + 2] & 0x0f, ISD_SK_ILLEGAL_REQUEST);
	assert_int_equal(rsp->data[2 + 12], 0x24);
	isd_pdu_free(rsp);
}

static void
test_cmd_duplicate_itt_and_bad_immediate(void **state)
{
	struct fx *f = *state;
	uint8_t bhs[ISD_BHS_LEN], cdb[16], buf[1024] = { 0 };
	struct isd_pdu *rsp;

	/* a write waiting for unsolicited data keeps its ITT busy */
	rw10(cdb, 0x2a, 0, 4);
	cmd_bhs(bhs, ISD_CMD_W, 0x55, 2048, f->cmdsn++, cdb, 16);
	fake_dm_inject(&f->fd, bhs, buf, 512);
	assert_int_equal(f->fd.n_sent, 0);
	rw10(cdb, 0x28, 0, 1);
	cmd_bhs(bhs, ISD_BHS_F | ISD_CMD_R, 0x55, 512, f->cmdsn++, cdb, 16);
	fake_dm_inject(&f->fd, bhs, NULL, 0);
	rsp = fake_dm_pop(&f->fd);
	assert_non_null(rsp);
	assert_int_equal(isd_bhs_opcode(rsp->bhs), ISD_OP_REJECT);
	assert_int_equal(rsp->bhs[2], ISD_REJECT_TASK_IN_PROGRESS);
	isd_pdu_free(rsp);

	/* two more waiting writes whose ITTs share 0x55's bucket of the
	 * connection's ITT index: each is found, neither hides the other */
	{
		uint32_t same[2], n = 0;

		for (uint32_t x = 0x1000; n < 2; x++)
			if (((x * 0x9e3779b1u) >> 26) == ((0x55u * 0x9e3779b1u) >> 26))
				same[n++] = x;
		for (unsigned i = 0; i < 2; i++) {
			rw10(cdb, 0x2a, 8 + 8 * i, 4);
			cmd_bhs(bhs, ISD_CMD_W, same[i], 2048, f->cmdsn++, cdb, 16);
			fake_dm_inject(&f->fd, bhs, buf, 512);
			assert_null(fake_dm_pop(&f->fd));
		}
		for (unsigned i = 0; i < 3; i++) {
			rw10(cdb, 0x28, 0, 1);
			cmd_bhs(bhs, ISD_BHS_F | ISD_CMD_R, i < 2 ? same[i] : 0x55, 512,
				f->cmdsn++, cdb, 16);
			fake_dm_inject(&f->fd, bhs, NULL, 0);
			rsp = fake_dm_pop(&f->fd);
			assert_non_null(rsp);
			assert_int_equal(isd_bhs_opcode(rsp->bhs), ISD_OP_REJECT);
			assert_int_equal(rsp->bhs[2], ISD_REJECT_TASK_IN_PROGRESS);
			isd_pdu_free(rsp);
		}
	}

	/* immediate data larger than EDTL */
	rw10(cdb, 0x2a, 0, 1);
	cmd_bhs(bhs, ISD_BHS_F | ISD_CMD_W, 0x56, 512, f->cmdsn++, cdb, 16);
	fake_dm_inject(&f->fd, bhs, buf, 1024);
	rsp = fake_dm_pop(&f->fd);
	assert_non_null(rsp);
	assert_int_equal(isd_bhs_opcode(rsp->bhs), ISD_OP_REJECT);
	assert_int_equal(rsp->bhs[2], ISD_REJECT_PROTOCOL_ERROR);
	isd_pdu_free(rsp);

	/* Data-Out for an unknown ITT */
	data_out_bhs(bhs, ISD_BHS_F, 0x999, ISD_RSVD_TAG, 0, 0);
	fake_dm_inject(&f->fd, bhs, buf, 512);
	rsp = fake_dm_pop(&f->fd);
	assert_non_null(rsp);
	assert_int_equal(rsp->bhs[2], ISD_REJECT_INVALID_PDU_FIELD);
	isd_pdu_free(rsp);

	/* Data-Out with a TTT we never issued */
	data_out_bhs(bhs, ISD_BHS_F, 0x55, 0x1234, 0, 512);
	fake_dm_inject(&f->fd, bhs, buf, 512);
	rsp = fake_dm_pop(&f->fd);
	assert_non_null(rsp);
	assert_int_equal(rsp->bhs[2], ISD_REJECT_INVALID_PDU_FIELD);
	isd_pdu_free(rsp);
	assert_int_equal(f->fd.released, f->fd.injected);
}

static void
test_cmdsn_window(void **state)
{
	struct fx *f = *state;
	uint8_t bhs[ISD_BHS_LEN];
	struct isd_pdu *rsp;
	uint32_t exp = f->cmdsn, stat_sn;

	/* ahead of ExpCmdSN but in the window: held */
	nop_bhs(bhs, false, 0x10, exp + 2);
	fake_dm_inject(&f->fd, bhs, NULL, 0);
	assert_int_equal(f->fd.n_sent, 0);
	/* outside the window: silently dropped (RFC 7143 §3.2.2.1) */
	nop_bhs(bhs, false, 0x11, exp + 1000);
	fake_dm_inject(&f->fd, bhs, NULL, 0);
	nop_bhs(bhs, false, 0x12, exp - 1);
	fake_dm_inject(&f->fd, bhs, NULL, 0);
	assert_int_equal(f->fd.n_sent, 0);
	assert_int_equal(f->fd.released, f->fd.injected - 1);
	/* immediate: delivered at once, ExpCmdSN unchanged */
	nop_bhs(bhs, true, 0x13, exp);
	fake_dm_inject(&f->fd, bhs, NULL, 0);
	rsp = fake_dm_pop(&f->fd);
	assert_non_null(rsp);
	assert_int_equal(isd_bhs_itt(rsp->bhs), 0x13);
	assert_int_equal(get_be32(rsp->bhs + 28), exp);
	stat_sn = get_be32(rsp->bhs + 24);
	isd_pdu_free(rsp);
	/* filling the gap delivers in order: exp, exp+1, then the held exp+2 */
	nop_bhs(bhs, false, 0x14, exp + 1);
	fake_dm_inject(&f->fd, bhs, NULL, 0);
	assert_int_equal(f->fd.n_sent, 0);
	nop_bhs(bhs, false, 0x15, exp);
	fake_dm_inject(&f->fd, bhs, NULL, 0);
	assert_int_equal(f->fd.n_sent, 3);
	for (uint32_t itt = 0x15, i = 0; i < 3; i++) {
		rsp = fake_dm_pop(&f->fd);
		assert_int_equal(isd_bhs_itt(rsp->bhs), i == 0 ? itt : i == 1 ? 0x14 : 0x10);
		assert_int_equal(get_be32(rsp->bhs + 24), stat_sn + 1 + i);
		isd_pdu_free(rsp);
	}
	f->cmdsn = exp + 3;
	assert_int_equal(f->fd.released, f->fd.injected);
}

/* A WRITE (ITT 0x70) one ahead of the gap at ExpCmdSN, 512 of its 1024 bytes immediate:
 * it is parked. Leaves the header of its final unsolicited Data-Out in bhs. */
static void
park_write(struct fx *f, uint8_t *bhs, const uint8_t *buf)
{
	uint8_t cdb[16];

	rw10(cdb, 0x2a, 40, 2);
	cmd_bhs(bhs, ISD_CMD_W, 0x70, 1024, f->cmdsn + 1, cdb, 16);
	fake_dm_inject(&f->fd, bhs, buf, 512);
	data_out_bhs(bhs, ISD_BHS_F, 0x70, ISD_RSVD_TAG, 0, 512);
}

static void
test_cmdsn_unsolicited_data_for_held_command(void **state)
{
	struct fx *f = *state;
	uint8_t bhs[ISD_BHS_LEN], buf[1024];
	struct isd_pdu *rsp;
	uint32_t exp = f->cmdsn;

	memset(buf, 0xab, sizeof(buf));
	/* a WRITE two ahead, whose unsolicited Data-Out arrives before the gap fills */
	park_write(f, bhs, buf);
	fake_dm_inject(&f->fd, bhs, buf + 512, 512);
	assert_int_equal(f->fd.n_sent, 0);
	nop_bhs(bhs, false, 0x71, exp);
	fake_dm_inject(&f->fd, bhs, NULL, 0);
	rsp = wait_pdu(f);
	assert_int_equal(isd_bhs_itt(rsp->bhs), 0x71);
	isd_pdu_free(rsp);
	rsp = wait_pdu(f);
	assert_non_null(rsp);
	assert_int_equal(isd_bhs_itt(rsp->bhs), 0x70);
	assert_int_equal(rsp->bhs[3], ISD_SAM_GOOD);
	isd_pdu_free(rsp);
	f->cmdsn = exp + 2;
}

/* The same Data-Out failing its digest: nothing to continue the burst with at ERL 0, the
 * connection goes (and the parked WRITE with it, unrun). */
static void
test_cmdsn_held_command_data_digest_error(void **state)
{
	struct fx *f = *state;
	uint8_t bhs[ISD_BHS_LEN], buf[512];
	struct isd_pdu *rsp;

	memset(buf, 0xab, sizeof(buf));
	park_write(f, bhs, buf);
	isd_bhs_set_dsl(bhs, 512);
	isd_dm_pdu_error_notify(f->fd.conn, bhs, ISD_REJECT_DIGEST_ERROR);
	rsp = wait_pdu(f);
	assert_non_null(rsp);
	assert_int_equal(isd_bhs_opcode(rsp->bhs), ISD_OP_REJECT);
	isd_pdu_free(rsp);
	assert_true(f->fd.terminate_called);
}

static void
test_nop_echo_and_reject_opcode(void **state)
{
	struct fx *f = *state;
	uint8_t bhs[ISD_BHS_LEN], ping[100];
	struct isd_pdu *rsp;

	for (size_t i = 0; i < sizeof(ping); i++)
		ping[i] = (uint8_t)i;
	nop_bhs(bhs, true, 0x42, f->cmdsn);
	bhs[9] = 3;     /* LUN echoed */
	fake_dm_inject(&f->fd, bhs, ping, sizeof(ping));
	rsp = fake_dm_pop(&f->fd);
	assert_non_null(rsp);
	assert_int_equal(isd_bhs_opcode(rsp->bhs), ISD_OP_NOP_IN);
	assert_int_equal(isd_bhs_itt(rsp->bhs), 0x42);
	assert_int_equal(isd_bhs_ttt(rsp->bhs), ISD_RSVD_TAG);
	assert_int_equal(rsp->bhs[9], 3);
	assert_int_equal(rsp->data_len, sizeof(ping));
	assert_memory_equal(rsp->data, ping, sizeof(ping));
	isd_pdu_free(rsp);

	/* a NOP-Out with the reserved ITT wants no answer */
	nop_bhs(bhs, true, ISD_RSVD_TAG, f->cmdsn);
	fake_dm_inject(&f->fd, bhs, NULL, 0);
	assert_int_equal(f->fd.n_sent, 0);

	/* an opcode that does not exist */
	memset(bhs, 0, sizeof(bhs));
	bhs[0] = 0x1b | ISD_BHS_I;
	bhs[1] = ISD_BHS_F;
	fake_dm_inject(&f->fd, bhs, NULL, 0);
	rsp = fake_dm_pop(&f->fd);
	assert_non_null(rsp);
	assert_int_equal(isd_bhs_opcode(rsp->bhs), ISD_OP_REJECT);
	assert_int_equal(isd_bhs_dsl(rsp->bhs), ISD_BHS_LEN);
	assert_memory_equal(rsp->data, bhs, ISD_BHS_LEN);
	isd_pdu_free(rsp);

	/* SNACK at ERL 0 */
	memset(bhs, 0, sizeof(bhs));
	bhs[0] = ISD_OP_SNACK_REQ;
	bhs[1] = ISD_BHS_F;
	fake_dm_inject(&f->fd, bhs, NULL, 0);
	rsp = fake_dm_pop(&f->fd);
	assert_non_null(rsp);
	assert_int_equal(isd_bhs_opcode(rsp->bhs), ISD_OP_REJECT);
	isd_pdu_free(rsp);
	assert_false(f->fd.terminate_called);
}

static void
test_nop_ping_timeout(void **state)
{
	struct fx *f = *state;
	struct isd_iscsi_cfg cfg;
	struct isd_iscsi_tgt *t2;
	struct fake_dm fd;
	struct isd_pdu *ping;
	uint8_t bhs[ISD_BHS_LEN];

	isd_iscsi_cfg_init(&cfg);
	cfg.nop_interval_ms = 5;
	cfg.nop_timeout_ms = 20;
	assert_int_equal(isd_iscsi_tgt_create(f->r, &cfg, &t2), 0);
	fake_dm_init(&fd);
	assert_int_equal(fake_dm_connect(&fd, t2, f->r, 1), 0);
	assert_int_equal(fake_dm_login(&fd, INAME, NULL, g_isid, 1, NULL), 0);
	for (int i = 0; i < 100 && fd.n_sent == 0; i++)
		isd_reactor_poll(f->r, 2);
	ping = fake_dm_pop(&fd);
	assert_non_null(ping);
	assert_int_equal(isd_bhs_opcode(ping->bhs), ISD_OP_NOP_IN);
	assert_int_equal(isd_bhs_itt(ping->bhs), ISD_RSVD_TAG);
	assert_int_not_equal(isd_bhs_ttt(ping->bhs), ISD_RSVD_TAG);
	/* answer it: the connection stays */
	nop_bhs(bhs, true, ISD_RSVD_TAG, 1);
	put_be32(bhs + 20, isd_bhs_ttt(ping->bhs));
	isd_pdu_free(ping);
	fake_dm_inject(&fd, bhs, NULL, 0);
	assert_false(fd.terminate_called);
	/* then stay silent: the next ping times out */
	for (int i = 0; i < 200 && !fd.terminate_called; i++)
		isd_reactor_poll(f->r, 2);
	assert_true(fd.terminate_called);
	fake_dm_terminate_notify(&fd, false);
	fake_dm_fini(&fd);
	isd_iscsi_tgt_destroy(t2);
}

static void
tmf_bhs(uint8_t *bhs, uint8_t func, uint32_t itt, uint32_t rtt, uint32_t cmdsn, uint32_t refcmdsn)
{
	memset(bhs, 0, ISD_BHS_LEN);
	bhs[0] = ISD_OP_TMF_REQ | ISD_BHS_I;
	bhs[1] = ISD_BHS_F | func;
	put_be32(bhs + 16, itt);
	put_be32(bhs + 20, rtt);
	put_be32(bhs + 24, cmdsn);
	put_be32(bhs + 32, refcmdsn);
}

static void
test_tmf_abort_task(void **state)
{
	struct fx *f = *state;
	uint8_t bhs[ISD_BHS_LEN], cdb[16], buf[512] = { 0 };
	struct isd_pdu *rsp;
	struct isd_iscsi_stats st;

	/* a write waiting in get_data */
	rw10(cdb, 0x2a, 0, 2);
	cmd_bhs(bhs, ISD_BHS_F | ISD_CMD_W, 0x80, 1024, f->cmdsn++, cdb, 16);
	fake_dm_inject(&f->fd, bhs, buf, 512);
	assert_int_equal(f->fd.n_xfers, 1);
	tmf_bhs(bhs, ISD_TMF_ABORT_TASK, 0x81, 0x80, f->cmdsn, f->cmdsn - 1);
	fake_dm_inject(&f->fd, bhs, NULL, 0);
	rsp = fake_dm_pop(&f->fd);
	assert_non_null(rsp);
	assert_int_equal(isd_bhs_opcode(rsp->bhs), ISD_OP_TMF_RSP);
	assert_int_equal(isd_bhs_itt(rsp->bhs), 0x81);
	assert_int_equal(rsp->bhs[2], ISD_TMF_RSP_COMPLETE);
	isd_pdu_free(rsp);
	assert_int_equal(f->fd.task_cleanups, 1);
	assert_int_equal(f->fd.n_xfers, 0);
	assert_int_equal(f->fd.n_sent, 0);     /* no SCSI Response for the aborted task */
	isd_iscsi_tgt_get_stats(f->t, &st);
	assert_int_equal(st.tasks, 0);

	/* unknown task: "does not exist" when its RefCmdSN is already past (the task
	 * ran and answered: RFC 7143 §11.5.1 c), not before the TMF's own CmdSN, or
	 * beyond the window (test_tmf_abort_before_delivery: inside it) */
	tmf_bhs(bhs, ISD_TMF_ABORT_TASK, 0x82, 0x1234, f->cmdsn, f->cmdsn - 1);
	fake_dm_inject(&f->fd, bhs, NULL, 0);
	rsp = fake_dm_pop(&f->fd);
	assert_int_equal(rsp->bhs[2], ISD_TMF_RSP_NO_TASK);
	isd_pdu_free(rsp);
	tmf_bhs(bhs, ISD_TMF_ABORT_TASK, 0x84, 0x1235, f->cmdsn, f->cmdsn + 3);
	fake_dm_inject(&f->fd, bhs, NULL, 0);
	rsp = fake_dm_pop(&f->fd);
	assert_int_equal(rsp->bhs[2], ISD_TMF_RSP_NO_TASK);
	isd_pdu_free(rsp);
	tmf_bhs(bhs, ISD_TMF_ABORT_TASK, 0x83, 0x1234, f->cmdsn, f->cmdsn + 100000);
	fake_dm_inject(&f->fd, bhs, NULL, 0);
	rsp = fake_dm_pop(&f->fd);
	assert_int_equal(rsp->bhs[2], ISD_TMF_RSP_NO_TASK);
	isd_pdu_free(rsp);

	/* missing LUN, unsupported and unknown functions */
	tmf_bhs(bhs, ISD_TMF_LUN_RESET, 0x84, ISD_RSVD_TAG, f->cmdsn, 0);
	put_be64(bhs + 8, isd_scsi_lun_encode(7));
	fake_dm_inject(&f->fd, bhs, NULL, 0);
	rsp = fake_dm_pop(&f->fd);
	assert_int_equal(rsp->bhs[2], ISD_TMF_RSP_NO_LUN);
	isd_pdu_free(rsp);
	tmf_bhs(bhs, ISD_TMF_CLEAR_ACA, 0x85, ISD_RSVD_TAG, f->cmdsn, 0);
	fake_dm_inject(&f->fd, bhs, NULL, 0);
	rsp = fake_dm_pop(&f->fd);
	assert_int_equal(rsp->bhs[2], ISD_TMF_RSP_NOT_SUPPORTED);
	isd_pdu_free(rsp);
	tmf_bhs(bhs, ISD_TMF_TASK_REASSIGN, 0x86, 0x1, f->cmdsn, 0);
	fake_dm_inject(&f->fd, bhs, NULL, 0);
	rsp = fake_dm_pop(&f->fd);
	assert_int_equal(rsp->bhs[2], ISD_TMF_RSP_NO_FAILOVER);
	isd_pdu_free(rsp);
	tmf_bhs(bhs, 0x55, 0x87, 0x1, f->cmdsn, 0);
	fake_dm_inject(&f->fd, bhs, NULL, 0);
	rsp = fake_dm_pop(&f->fd);
	assert_int_equal(rsp->bhs[2], ISD_TMF_RSP_REJECTED);
	isd_pdu_free(rsp);
	/* LUN RESET of LUN 0 */
	tmf_bhs(bhs, ISD_TMF_LUN_RESET, 0x88, ISD_RSVD_TAG, f->cmdsn, 0);
	fake_dm_inject(&f->fd, bhs, NULL, 0);
	rsp = fake_dm_pop(&f->fd);
	assert_int_equal(rsp->bhs[2], ISD_TMF_RSP_COMPLETE);
	isd_pdu_free(rsp);
}

static void
test_tmf_abort_waits_for_exec(void **state)
{
	struct fx *f = *state;
	uint8_t bhs[ISD_BHS_LEN], cdb[16];
	struct isd_pdu *rsp;

	uint8_t buf[1024] = { 0 };

	/* a WRITE whose backing-store I/O is in flight (all data immediate) */
	rw10(cdb, 0x2a, 0, 2);
	cmd_bhs(bhs, ISD_BHS_F | ISD_CMD_W, 0x90, 1024, f->cmdsn++, cdb, 16);
	fake_dm_inject(&f->fd, bhs, buf, sizeof(buf));
	if (f->fd.n_sent > 0 || f->fd.n_xfers > 0) {
		/* the LU answered synchronously: nothing in flight to wait for */
		skip();
	}
	tmf_bhs(bhs, ISD_TMF_ABORT_TASK, 0x91, 0x90, f->cmdsn, f->cmdsn - 1);
	fake_dm_inject(&f->fd, bhs, NULL, 0);
	assert_int_equal(f->fd.n_sent, 0);     /* waits for the I/O */
	rsp = wait_pdu(f);
	assert_non_null(rsp);
	assert_int_equal(isd_bhs_opcode(rsp->bhs), ISD_OP_TMF_RSP);
	assert_int_equal(rsp->bhs[2], ISD_TMF_RSP_COMPLETE);
	isd_pdu_free(rsp);
	assert_int_equal(f->fd.n_xfers, 0);
	assert_int_equal(f->fd.n_sent, 0);
}

/* A READ(10) of one block at LBA 0 (CmdSN cmdsn): the first byte read back. */
static uint8_t
read_first_byte(struct fx *f, uint32_t cmdsn)
{
	uint8_t bhs[ISD_BHS_LEN], cdb[16];
	struct isd_pdu *rsp;
	uint8_t b;

	rw10(cdb, 0x28, 0, 1);
	cmd_bhs(bhs, ISD_BHS_F | ISD_CMD_R, 0xe0, 512, cmdsn, cdb, 16);
	fake_dm_inject(&f->fd, bhs, NULL, 0);
	rsp = wait_pdu(f);
	assert_non_null(rsp);
	assert_int_equal(isd_bhs_opcode(rsp->bhs), ISD_OP_SCSI_RSP);
	assert_int_equal(rsp->bhs[3], ISD_SAM_GOOD);
	isd_pdu_free(rsp);
	assert_true(f->fd.read_len >= 512);
	b = f->fd.read_data[f->fd.read_len - 512];
	assert_int_equal(fake_dm_complete(&f->fd, NULL, 0), 0);
	return b;
}

/*
 * RFC 7143 §11.5.1 b: an ABORT TASK whose RefCmdSN is inside the window names a
 * command that can still be aborted even though it is not running: one not
 * received yet (the ABORT overtook it) and one parked behind a CmdSN gap. Both are
 * "Function complete", neither runs nor answers when it arrives or its turn comes,
 * and the commands after them are not held up.
 */
static void
test_tmf_abort_before_delivery(void **state)
{
	struct fx *f = *state;
	uint8_t bhs[ISD_BHS_LEN], cdb[16], buf[512];
	uint32_t sn = f->cmdsn;
	struct isd_pdu *rsp;
	struct isd_iscsi_stats st;

	memset(buf, 0xab, sizeof(buf));
	/* the ABORT first, for the WRITE with CmdSN sn that has not arrived */
	tmf_bhs(bhs, ISD_TMF_ABORT_TASK, 0xd1, 0xd0, sn + 1, sn);
	fake_dm_inject(&f->fd, bhs, NULL, 0);
	rsp = fake_dm_pop(&f->fd);
	assert_non_null(rsp);
	assert_int_equal(rsp->bhs[2], ISD_TMF_RSP_COMPLETE);
	assert_int_equal(get_be32(rsp->bhs + 28), sn + 1);     /* ExpCmdSN: taken as received */
	isd_pdu_free(rsp);
	/* then the WRITE (all data immediate) and an unsolicited-looking Data-Out for it:
	 * dropped without an answer, no Reject */
	rw10(cdb, 0x2a, 0, 1);
	cmd_bhs(bhs, ISD_BHS_F | ISD_CMD_W, 0xd0, 512, sn, cdb, 16);
	fake_dm_inject(&f->fd, bhs, buf, sizeof(buf));
	data_out_bhs(bhs, ISD_BHS_F, 0xd0, ISD_RSVD_TAG, 0, 0);
	fake_dm_inject(&f->fd, bhs, buf, 16);
	for (int i = 0; i < 50; i++)
		isd_reactor_poll(f->r, 0);
	assert_int_equal(f->fd.n_sent, 0);
	assert_int_equal(f->fd.n_xfers, 0);
	isd_iscsi_tgt_get_stats(f->t, &st);
	assert_int_equal(st.tasks, 0);
	assert_int_equal(read_first_byte(f, sn + 1), 0x00);    /* nothing landed */

	/* a WRITE parked behind a gap at sn + 2, aborted there */
	cmd_bhs(bhs, ISD_BHS_F | ISD_CMD_W, 0xd2, 512, sn + 3, cdb, 16);
	fake_dm_inject(&f->fd, bhs, buf, sizeof(buf));
	assert_int_equal(f->fd.n_sent, 0);
	tmf_bhs(bhs, ISD_TMF_ABORT_TASK, 0xd3, 0xd2, sn + 4, sn + 3);
	fake_dm_inject(&f->fd, bhs, NULL, 0);
	rsp = fake_dm_pop(&f->fd);
	assert_non_null(rsp);
	assert_int_equal(rsp->bhs[2], ISD_TMF_RSP_COMPLETE);
	isd_pdu_free(rsp);
	/* the gap fills: the READ at sn + 2 runs, the aborted slot is passed over,
	 * and a command at sn + 4 runs at once */
	assert_int_equal(read_first_byte(f, sn + 2), 0x00);
	assert_int_equal(read_first_byte(f, sn + 4), 0x00);
	isd_iscsi_tgt_get_stats(f->t, &st);
	assert_int_equal(st.tasks, 0);

	/* a RefCmdSN that is not before the TMF's own CmdSN names nothing */
	tmf_bhs(bhs, ISD_TMF_ABORT_TASK, 0xd5, 0xd4, sn + 5, sn + 5);
	fake_dm_inject(&f->fd, bhs, NULL, 0);
	rsp = fake_dm_pop(&f->fd);
	assert_non_null(rsp);
	assert_int_equal(rsp->bhs[2], ISD_TMF_RSP_NO_TASK);
	isd_pdu_free(rsp);
	f->cmdsn = sn + 5;
}

static void
test_text_sendtargets_normal_and_continuation(void **state)
{
	struct fx *f = *state;
	uint8_t bhs[ISD_BHS_LEN], text[64];
	uint32_t len, ttt, got = 0;
	struct isd_pdu *rsp;
	char v[300];
	struct isd_tnode *extra;
	int n = 60;

	/* a normal session only sees its own target */
	memset(bhs, 0, sizeof(bhs));
	bhs[0] = ISD_OP_TEXT_REQ | ISD_BHS_I;
	bhs[1] = ISD_BHS_F;
	put_be32(bhs + 16, 0xa0);
	put_be32(bhs + 20, ISD_RSVD_TAG);
	len = fake_text(text, sizeof(text), "SendTargets=", (const char *)NULL);
	fake_dm_inject(&f->fd, bhs, text, len);
	rsp = fake_dm_pop(&f->fd);
	assert_non_null(rsp);
	assert_true(fake_text_get(rsp, "TargetName", v, sizeof(v)));
	assert_string_equal(v, TNAME);
	assert_true(fake_text_get(rsp, "TargetAddress", v, sizeof(v)));
	assert_string_equal(v, "192.0.2.10:3260,1");
	isd_pdu_free(rsp);

	/* many targets through a discovery session with a small MaxRecvDataSegmentLength */
	extra = calloc((size_t)n, sizeof(*extra));
	assert_non_null(extra);
	for (int i = 0; i < n; i++) {
		snprintf(extra[i].name, sizeof(extra[i].name),
			 "iqn.2024-01.org.example:a-rather-long-target-name-to-fill-pages-%03d", i);
		assert_int_equal(isd_iscsi_tgt_add_node(f->t, &extra[i]), 0);
	}
	{
		struct fake_dm fd;
		uint8_t login[512];
		uint8_t lb[ISD_BHS_LEN];
		uint32_t ll;

		fake_dm_init(&fd);
		assert_int_equal(fake_dm_connect(&fd, f->t, f->r, 1), 0);
		ll = fake_text(login, sizeof(login), "InitiatorName=" INAME,
			       "SessionType=Discovery", "MaxRecvDataSegmentLength=1024",
			       (const char *)NULL);
		fake_login_bhs(lb, ISD_LOGIN_T | (1 << 2) | 3, g_isid, 0, 1, 1);
		fake_dm_inject(&fd, lb, login, ll);
		rsp = fake_dm_pop(&fd);
		assert_int_equal(rsp->bhs[36], 0);
		isd_pdu_free(rsp);

		len = fake_text(text, sizeof(text), "SendTargets=All", (const char *)NULL);
		put_be32(bhs + 16, 0xb0);
		put_be32(bhs + 20, ISD_RSVD_TAG);
		fake_dm_inject(&fd, bhs, text, len);
		for (int pages = 0;; pages++) {
			rsp = fake_dm_pop(&fd);
			assert_non_null(rsp);
			assert_int_equal(isd_bhs_opcode(rsp->bhs), ISD_OP_TEXT_RSP);
			assert_true(rsp->data_len <= 1024);
			got += rsp->data_len;
			if (rsp->bhs[1] & ISD_BHS_F) {
				assert_int_equal(isd_bhs_ttt(rsp->bhs), ISD_RSVD_TAG);
				assert_true(pages > 3);
				isd_pdu_free(rsp);
				break;
			}
			assert_true(rsp->bhs[1] & ISD_TEXT_C);
			ttt = isd_bhs_ttt(rsp->bhs);
			assert_int_not_equal(ttt, ISD_RSVD_TAG);
			isd_pdu_free(rsp);
			/* an empty request with the TTT fetches the next page */
			put_be32(bhs + 20, ttt);
			fake_dm_inject(&fd, bhs, NULL, 0);
		}
		assert_true(got > (uint32_t)n * 60);
		fake_dm_terminate_notify(&fd, true);
		fake_dm_fini(&fd);
	}
	f->extra = extra;       /* registered nodes live until the target is destroyed */
}

static void
test_logout_close_session(void **state)
{
	struct fx *f = *state;
	uint8_t bhs[ISD_BHS_LEN], cdb[16], buf[512] = { 0 };
	struct isd_pdu *rsp;
	struct isd_iscsi_stats st;

	/* an outstanding write is cleaned up by the logout */
	rw10(cdb, 0x2a, 0, 2);
	cmd_bhs(bhs, ISD_BHS_F | ISD_CMD_W, 0xc0, 1024, f->cmdsn++, cdb, 16);
	fake_dm_inject(&f->fd, bhs, buf, 512);
	assert_int_equal(f->fd.n_xfers, 1);

	memset(bhs, 0, sizeof(bhs));
	bhs[0] = ISD_OP_LOGOUT_REQ | ISD_BHS_I;
	bhs[1] = ISD_BHS_F | ISD_LOGOUT_CLOSE_SESSION;
	put_be32(bhs + 16, 0xc1);
	put_be32(bhs + 24, f->cmdsn);
	fake_dm_inject(&f->fd, bhs, NULL, 0);
	rsp = fake_dm_pop(&f->fd);
	assert_non_null(rsp);
	assert_int_equal(isd_bhs_opcode(rsp->bhs), ISD_OP_LOGOUT_RSP);
	assert_int_equal(rsp->bhs[2], ISD_LOGOUT_RSP_OK);
	assert_int_equal(isd_bhs_itt(rsp->bhs), 0xc1);
	isd_pdu_free(rsp);
	assert_true(f->fd.terminate_called);
	assert_int_equal(f->fd.task_cleanups, 1);
	fake_dm_terminate_notify(&f->fd, false);
	assert_true(f->fd.freed);
	isd_iscsi_tgt_get_stats(f->t, &st);
	assert_int_equal(st.connections, 0);
	assert_int_equal(st.sessions, 0);
	assert_int_equal(st.tasks, 0);
}

/* A TEST UNIT READY from another nexus, straight to the SCSI layer: its status. */
static uint8_t
other_nexus_tur(struct fx *f)
{
	struct isd_scsi_nexus nx;
	struct isd_scsi_cmd cmd;
	uint8_t cdb[16] = { 0 };
	uint8_t status;

	memset(&nx, 0, sizeof(nx));
	snprintf(nx.initiator_port, sizeof(nx.initiator_port), "iqn.other,i,0x01");
	snprintf(nx.target_port, sizeof(nx.target_port), "%s,t,0x0001", TNAME);
	nx.id = 0xfeed;
	memset(&cmd, 0, sizeof(cmd));
	cmd.dev = f->dev;
	cmd.nexus = &nx;
	cmd.cdb = cdb;
	cmd.cdb_len = 16;
	/* setup finishes a TEST UNIT READY (or refuses it) without exec */
	assert_int_equal(isd_scsi_cmd_setup(&cmd), ISD_SCSI_SETUP_DONE);
	status = cmd.status;
	isd_scsi_cmd_release(&cmd);
	return status;
}

/* The I_T nexus ends at the Logout Response, not when the transport lets the
 * connection go: its RESERVE(6) no longer fences the others. */
static void
test_logout_releases_reserve6(void **state)
{
	struct fx *f = *state;
	uint8_t bhs[ISD_BHS_LEN], cdb[16] = { 0x16 };
	struct isd_pdu *rsp;

	cmd_bhs(bhs, ISD_BHS_F, f->itt++, 0, f->cmdsn++, cdb, 16);
	fake_dm_inject(&f->fd, bhs, NULL, 0);
	rsp = wait_pdu(f);
	assert_non_null(rsp);
	assert_int_equal(rsp->bhs[3], ISD_SAM_GOOD);
	isd_pdu_free(rsp);
	(void)other_nexus_tur(f);               /* its POWER ON unit attention */
	assert_int_equal(other_nexus_tur(f), ISD_SAM_RESERVATION_CONFLICT);

	memset(bhs, 0, sizeof(bhs));
	bhs[0] = ISD_OP_LOGOUT_REQ | ISD_BHS_I;
	bhs[1] = ISD_BHS_F | ISD_LOGOUT_CLOSE_SESSION;
	put_be32(bhs + 16, 0xc1);
	put_be32(bhs + 24, f->cmdsn);
	fake_dm_inject(&f->fd, bhs, NULL, 0);
	rsp = fake_dm_pop(&f->fd);
	assert_non_null(rsp);
	assert_int_equal(rsp->bhs[2], ISD_LOGOUT_RSP_OK);
	isd_pdu_free(rsp);
	/* the connection is not gone yet (no terminate notify), the nexus is */
	assert_false(f->fd.freed);
	assert_int_equal(other_nexus_tur(f), ISD_SAM_GOOD);
	fake_dm_terminate_notify(&f->fd, false);
	assert_true(f->fd.freed);
}

static void
test_logout_recovery_unsupported(void **state)
{
	struct fx *f = *state;
	uint8_t bhs[ISD_BHS_LEN];
	struct isd_pdu *rsp;

	memset(bhs, 0, sizeof(bhs));
	bhs[0] = ISD_OP_LOGOUT_REQ | ISD_BHS_I;
	bhs[1] = ISD_BHS_F | ISD_LOGOUT_REMOVE_CONN_RECOVERY;
	put_be32(bhs + 16, 0xd1);
	fake_dm_inject(&f->fd, bhs, NULL, 0);
	rsp = fake_dm_pop(&f->fd);
	assert_non_null(rsp);
	assert_int_equal(rsp->bhs[2], ISD_LOGOUT_RSP_RECOVERY_UNSUPPORTED);
	isd_pdu_free(rsp);
	assert_false(f->fd.terminate_called);
}

static void
test_conn_drop_with_io_in_flight(void **state)
{
	struct fx *f = *state;
	uint8_t bhs[ISD_BHS_LEN], cdb[16];
	struct isd_iscsi_stats st;

	rw10(cdb, 0x28, 0, 8);
	cmd_bhs(bhs, ISD_BHS_F | ISD_CMD_R, 0xe0, 4096, f->cmdsn++, cdb, 16);
	fake_dm_inject(&f->fd, bhs, NULL, 0);
	/* the peer goes away while the read may still be in the backing store */
	fake_dm_terminate_notify(&f->fd, true);
	for (int i = 0; i < 100; i++)
		isd_reactor_poll(f->r, 0);
	assert_true(f->fd.freed);
	isd_iscsi_tgt_get_stats(f->t, &st);
	assert_int_equal(st.tasks, 0);
	assert_int_equal(st.connections, 0);
}

/*
 * A transfer that fails: either put_data/get_data refuses it at once (-errno,
 * no notify follows) or it fails later (a notify with -errno, from the
 * reactor). Either way the core ends the task once and closes the connection.
 */
static void
xfer_failure(struct fx *f, bool read, bool at_once)
{
	uint8_t bhs[ISD_BHS_LEN], cdb[16], buf[4096];
	struct isd_iscsi_stats st;

	memset(buf, 0x3c, sizeof(buf));
	f->fd.xfer_fail = at_once ? -EIO : 0;
	rw10(cdb, read ? 0x28 : 0x2a, 0, 8);
	cmd_bhs(bhs, ISD_BHS_F | (read ? ISD_CMD_R : ISD_CMD_W), 0xe1, 4096, f->cmdsn++, cdb,
		16);
	fake_dm_inject(&f->fd, bhs, NULL, 0);
	for (int i = 0; i < 200 && f->fd.n_xfers == 0 && !f->fd.terminate_called; i++)
		isd_reactor_poll(f->r, 1);
	if (!at_once) {
		assert_int_equal(f->fd.n_xfers, 1);
		assert_false(f->fd.terminate_called);
		assert_int_equal(fake_dm_complete(&f->fd, read ? NULL : buf, -EIO), 0);
	}
	assert_int_equal(f->fd.n_xfers, 0);
	assert_true(f->fd.terminate_called);
	isd_iscsi_tgt_get_stats(f->t, &st);
	assert_int_equal(st.tasks, 0);
	/* no SCSI Response went out for the failed task */
	fake_dm_drop_sent(&f->fd);
}

static void
test_put_data_refused_at_once(void **state)
{
	xfer_failure(*state, true, true);
}

static void
test_put_data_fails_later(void **state)
{
	xfer_failure(*state, true, false);
}

static void
test_get_data_refused_at_once(void **state)
{
	xfer_failure(*state, false, true);
}

static void
test_get_data_fails_later(void **state)
{
	xfer_failure(*state, false, false);
}

/* ---- a reservation change from another session ---- */

static struct isd_pdu *
wait_pdu_on(struct fx *f, struct fake_dm *fd)
{
	for (int i = 0; i < 200 && TAILQ_EMPTY(&fd->sent); i++)
		isd_reactor_poll(f->r, 1);
	return fake_dm_pop(fd);
}

/* One command with all its data-out immediate; returns its SCSI status (sense into sk). */
static uint8_t
cmd_on(struct fx *f, struct fake_dm *fd, uint32_t *cmdsn, uint32_t itt, const uint8_t *cdb,
       const void *data, uint32_t len, uint8_t sk[3])
{
	uint8_t bhs[ISD_BHS_LEN];
	struct isd_pdu *rsp;
	uint8_t st;

	cmd_bhs(bhs, ISD_BHS_F | (len ? ISD_CMD_W : 0), itt, len, (*cmdsn)++, cdb, 16);
	fake_dm_inject(fd, bhs, data, len);
	rsp = wait_pdu_on(f, fd);
	assert_non_null(rsp);
	assert_int_equal(isd_bhs_opcode(rsp->bhs), ISD_OP_SCSI_RSP);
	assert_int_equal(isd_bhs_itt(rsp->bhs), itt);
	st = rsp->bhs[3];
	if (sk != NULL) {
		memset(sk, 0, 3);
		if (rsp->data_len >= 2 + 14) {
			sk[0] = rsp->data[2 + 2] & 0x0f;
			sk[1] = rsp->data[2 + 12];
			sk[2] = rsp->data[2 + 13];
		}
	}
	isd_pdu_free(rsp);
	return st;
}

static void
prout_cdb(uint8_t *cdb, uint8_t sa, uint8_t type)
{
	memset(cdb, 0, 16);
	cdb[0] = 0x5f;
	cdb[1] = sa;
	cdb[2] = type;
	cdb[8] = 24;
}

static void
prout_param(uint8_t *p, uint64_t key, uint64_t sakey)
{
	memset(p, 0, 24);
	put_be64(p, key);
	put_be64(p + 8, sakey);
}

/*
 * Session A holds a Write Exclusive reservation and has a WRITE waiting for its
 * solicited data and another whose store I/O is in flight. Session B (another
 * initiator) PREEMPT AND ABORTs A: the waiting WRITE's transfer is cleaned up,
 * B's response waits for the in-flight one, neither of A's WRITEs is answered,
 * A's late Data-Out is dropped quietly, and A's next commands see 2A/05 and 2F/00.
 */
static void
test_pr_preempt_abort_other_session(void **state)
{
	static const uint8_t isid_b[6] = { 0x80, 0, 0, 0, 0x56, 0x78 };
	struct fx *f = *state;
	struct fake_dm fb;
	uint8_t bhs[ISD_BHS_LEN], cdb[16], prm[24], sk[3], buf[1024];
	uint32_t bsn = 500;
	struct isd_iscsi_stats st;
	struct isd_pdu *rsp;

	memset(buf, 0x41, sizeof(buf));
	fake_dm_init(&fb);
	assert_int_equal(fake_dm_connect(&fb, f->t, f->r, 1), 0);
	assert_int_equal(fake_dm_login(&fb, INAME "-b", TNAME, isid_b, bsn, NULL), 0);
	memset(cdb, 0, sizeof(cdb));
	assert_int_equal(cmd_on(f, &fb, &bsn, 0x200, cdb, NULL, 0, sk), ISD_SAM_CHECK_CONDITION);

	prout_cdb(cdb, 0, 0);
	prout_param(prm, 0, 0xa);
	assert_int_equal(cmd_on(f, &f->fd, &f->cmdsn, 0x201, cdb, prm, 24, NULL), ISD_SAM_GOOD);
	prout_cdb(cdb, 1, 1);                           /* RESERVE, Write Exclusive */
	prout_param(prm, 0xa, 0);
	assert_int_equal(cmd_on(f, &f->fd, &f->cmdsn, 0x202, cdb, prm, 24, NULL), ISD_SAM_GOOD);

	/* A: a WRITE waiting for its R2T'd data (lands straight in the RAM LU) */
	rw10(cdb, 0x2a, 8, 2);
	cmd_bhs(bhs, ISD_BHS_F | ISD_CMD_W, 0x300, 1024, f->cmdsn++, cdb, 16);
	fake_dm_inject(&f->fd, bhs, NULL, 0);
	assert_int_equal(f->fd.n_xfers, 1);
	/* A: a staged WRITE (EDTL short of the CDB) whose store write is in flight */
	rw10(cdb, 0x2a, 12, 2);
	cmd_bhs(bhs, ISD_BHS_F | ISD_CMD_W, 0x301, 512, f->cmdsn++, cdb, 16);
	fake_dm_inject(&f->fd, bhs, buf, 512);
	assert_int_equal(f->fd.n_sent, 0);

	prout_cdb(cdb, 0, 0);
	prout_param(prm, 0, 0xb);
	assert_int_equal(cmd_on(f, &fb, &bsn, 0x203, cdb, prm, 24, NULL), ISD_SAM_GOOD);
	prout_cdb(cdb, 5, 3);                           /* PREEMPT AND ABORT, to Exclusive Access */
	prout_param(prm, 0xb, 0xa);
	cmd_bhs(bhs, ISD_BHS_F | ISD_CMD_W, 0x204, 24, bsn++, cdb, 16);
	fake_dm_inject(&fb, bhs, prm, 24);
	assert_int_equal(f->fd.task_cleanups, 1);      /* the R2T'd WRITE's transfer is gone */
	assert_int_equal(f->fd.n_xfers, 0);
	assert_int_equal(fb.n_sent, 0);                 /* held for A's store write */
	rsp = wait_pdu_on(f, &fb);
	assert_non_null(rsp);
	assert_int_equal(isd_bhs_itt(rsp->bhs), 0x204);
	assert_int_equal(rsp->bhs[3], ISD_SAM_GOOD);
	isd_pdu_free(rsp);
	for (int i = 0; i < 20; i++)
		isd_reactor_poll(f->r, 1);
	assert_int_equal(f->fd.n_sent, 0);              /* aborted: no responses */

	/* A's Data-Out for the R2T it had: dropped, no Reject */
	data_out_bhs(bhs, ISD_BHS_F, 0x300, 0x77, 0, 0);
	fake_dm_inject(&f->fd, bhs, buf, 1024);
	assert_int_equal(f->fd.n_sent, 0);

	memset(cdb, 0, sizeof(cdb));
	assert_int_equal(cmd_on(f, &f->fd, &f->cmdsn, 0x205, cdb, NULL, 0, sk),
			 ISD_SAM_CHECK_CONDITION);
	assert_int_equal(sk[0], ISD_SK_UNIT_ATTENTION);
	assert_int_equal(sk[1], 0x2a);
	assert_int_equal(sk[2], 0x05);
	assert_int_equal(cmd_on(f, &f->fd, &f->cmdsn, 0x206, cdb, NULL, 0, sk),
			 ISD_SAM_CHECK_CONDITION);
	assert_int_equal(sk[1], 0x2f);
	assert_int_equal(sk[2], 0x00);
	rw10(cdb, 0x28, 8, 2);
	assert_int_equal(cmd_on(f, &f->fd, &f->cmdsn, 0x207, cdb, NULL, 0, NULL),
			 ISD_SAM_RESERVATION_CONFLICT);
	isd_iscsi_tgt_get_stats(f->t, &st);
	assert_int_equal(st.tasks, 0);

	fake_dm_terminate_notify(&fb, true);
	for (int i = 0; i < 100; i++)
		isd_reactor_poll(f->r, 0);
	assert_true(fb.freed);
	fake_dm_fini(&fb);
}

/*
 * A transfer the datamover cannot stop at once (an RDMA Read already posted,
 * which may land in the RAM LU's own blocks, or an RDMA Write into the
 * initiator's buffer): the answer to the abort waits until the datamover says
 * the transfer has ended. For ABORT TASK, the TMF Response; for PREEMPT AND
 * ABORT, the PERSISTENT RESERVE OUT's GOOD, so no data of the fenced write can
 * land after the preempting initiator sees it.
 */
static void
test_abort_waits_for_transfer(void **state)
{
	static const uint8_t isid_b[6] = { 0x80, 0, 0, 0, 0x56, 0x79 };
	struct fx *f = *state;
	struct fake_dm fb;
	uint8_t bhs[ISD_BHS_LEN], cdb[16], prm[24], sk[3], buf[512] = { 0 };
	uint32_t bsn = 700;
	struct isd_iscsi_stats st;
	struct isd_pdu *rsp;

	f->fd.hold_fences = true;

	/* ABORT TASK of a write whose data is moving */
	rw10(cdb, 0x2a, 0, 2);
	cmd_bhs(bhs, ISD_BHS_F | ISD_CMD_W, 0x80, 1024, f->cmdsn++, cdb, 16);
	fake_dm_inject(&f->fd, bhs, buf, 512);
	assert_int_equal(f->fd.n_xfers, 1);
	tmf_bhs(bhs, ISD_TMF_ABORT_TASK, 0x81, 0x80, f->cmdsn, f->cmdsn - 1);
	fake_dm_inject(&f->fd, bhs, NULL, 0);
	for (int i = 0; i < 20; i++)
		isd_reactor_poll(f->r, 1);
	assert_int_equal(f->fd.task_cleanups, 1);
	assert_int_equal(f->fd.n_sent, 0);             /* held */
	assert_int_equal(fake_dm_release_fences(&f->fd), 1);
	rsp = fake_dm_pop(&f->fd);
	assert_non_null(rsp);
	assert_int_equal(isd_bhs_opcode(rsp->bhs), ISD_OP_TMF_RSP);
	assert_int_equal(isd_bhs_itt(rsp->bhs), 0x81);
	assert_int_equal(rsp->bhs[2], ISD_TMF_RSP_COMPLETE);
	isd_pdu_free(rsp);

	/* PREEMPT AND ABORT from another initiator while A's write data moves */
	fake_dm_init(&fb);
	assert_int_equal(fake_dm_connect(&fb, f->t, f->r, 1), 0);
	assert_int_equal(fake_dm_login(&fb, INAME "-b", TNAME, isid_b, bsn, NULL), 0);
	memset(cdb, 0, sizeof(cdb));
	assert_int_equal(cmd_on(f, &fb, &bsn, 0x200, cdb, NULL, 0, sk), ISD_SAM_CHECK_CONDITION);
	prout_cdb(cdb, 0, 0);
	prout_param(prm, 0, 0xa);
	assert_int_equal(cmd_on(f, &f->fd, &f->cmdsn, 0x201, cdb, prm, 24, NULL), ISD_SAM_GOOD);
	prout_cdb(cdb, 1, 1);
	prout_param(prm, 0xa, 0);
	assert_int_equal(cmd_on(f, &f->fd, &f->cmdsn, 0x202, cdb, prm, 24, NULL), ISD_SAM_GOOD);
	rw10(cdb, 0x2a, 8, 2);
	cmd_bhs(bhs, ISD_BHS_F | ISD_CMD_W, 0x300, 1024, f->cmdsn++, cdb, 16);
	fake_dm_inject(&f->fd, bhs, NULL, 0);
	assert_int_equal(f->fd.n_xfers, 1);

	prout_cdb(cdb, 0, 0);
	prout_param(prm, 0, 0xb);
	assert_int_equal(cmd_on(f, &fb, &bsn, 0x203, cdb, prm, 24, NULL), ISD_SAM_GOOD);
	prout_cdb(cdb, 5, 3);
	prout_param(prm, 0xb, 0xa);
	cmd_bhs(bhs, ISD_BHS_F | ISD_CMD_W, 0x204, 24, bsn++, cdb, 16);
	fake_dm_inject(&fb, bhs, prm, 24);
	for (int i = 0; i < 20; i++)
		isd_reactor_poll(f->r, 1);
	assert_int_equal(f->fd.task_cleanups, 2);
	assert_int_equal(fb.n_sent, 0);                 /* held for A's transfer */
	assert_int_equal(fake_dm_release_fences(&f->fd), 1);
	rsp = wait_pdu_on(f, &fb);
	assert_non_null(rsp);
	assert_int_equal(isd_bhs_itt(rsp->bhs), 0x204);
	assert_int_equal(rsp->bhs[3], ISD_SAM_GOOD);
	isd_pdu_free(rsp);
	assert_int_equal(f->fd.n_sent, 0);              /* aborted: no response */
	isd_iscsi_tgt_get_stats(f->t, &st);
	assert_int_equal(st.tasks, 0);

	fake_dm_terminate_notify(&fb, true);
	for (int i = 0; i < 100; i++)
		isd_reactor_poll(f->r, 0);
	assert_true(fb.freed);
	fake_dm_fini(&fb);
}

/* Garbage in full feature phase: no crash, no leak, every PDU given back. */
static void
test_random_pdus(void **state)
{
	struct fx *f = *state;
	static const uint8_t ops[] = { ISD_OP_NOP_OUT, ISD_OP_SCSI_CMD, ISD_OP_TMF_REQ,
				       ISD_OP_TEXT_REQ, ISD_OP_DATA_OUT, ISD_OP_SNACK_REQ,
				       ISD_OP_LOGIN_REQ, 0x1c, 0x3f, ISD_OP_SCSI_CMD,
				       ISD_OP_DATA_OUT };
	uint8_t bhs[ISD_BHS_LEN], data[2048], ahs[64];
	struct isd_pdu *rsp;
	unsigned int seed = 12345;

	if (getenv("CORE_DEBUG"))
		isd_log_enable("iscsi");

	for (size_t i = 0; i < sizeof(data); i++)
		data[i] = (uint8_t)rand_r(&seed);
	for (int n = 0; n < 20000 && !f->fd.terminate_called; n++) {
		uint32_t r1 = (uint32_t)rand_r(&seed), r2 = (uint32_t)rand_r(&seed);
		uint32_t len = r1 % 4 == 0 ? (r1 >> 4) % 2048 : 0;
		uint32_t ahs_len = r2 % 16 == 0 ? 4 * ((r2 >> 8) % 16) : 0;

		for (int i = 0; i < ISD_BHS_LEN; i++)
			bhs[i] = (uint8_t)rand_r(&seed);
		for (size_t i = 0; i < sizeof(ahs); i++)
			ahs[i] = (uint8_t)rand_r(&seed);
		bhs[0] = ops[(size_t)rand_r(&seed) % sizeof(ops)] |
			 (rand_r(&seed) % 2 ? ISD_BHS_I : 0);
		/* keep tags, CmdSN and offsets in ranges where they meet each other */
		put_be32(bhs + 16,
			 rand_r(&seed) % 8 == 0 ? ISD_RSVD_TAG : (uint32_t)rand_r(&seed) % 16);
		if (rand_r(&seed) % 2)
			put_be32(bhs + 20, rand_r(&seed) % 4 ? (uint32_t)rand_r(&seed) % 8192
							    : ISD_RSVD_TAG);
		put_be32(bhs + 24, f->cmdsn + (uint32_t)(rand_r(&seed) % 12) - 2);
		put_be32(bhs + 36, (uint32_t)rand_r(&seed) % 4);
		put_be32(bhs + 40, (uint32_t)rand_r(&seed) % 4096);
		memset(bhs + 8, 0, 8);
		bhs[32] = rand_r(&seed) % 2 ? 0x28 : 0x2a;
		bhs[33] = 0;
		put_be32(bhs + 34, (uint32_t)rand_r(&seed) % 64);
		if ((bhs[0] & ISD_BHS_OPCODE_MASK) == ISD_OP_TMF_REQ &&
		    (bhs[1] & 0x7f) == ISD_TMF_TARGET_COLD_RESET)
			bhs[1] = ISD_BHS_F | ISD_TMF_TARGET_WARM_RESET;    /* would end the run */
		fake_dm_inject_ahs(&f->fd, bhs, ahs, ahs_len, data, len);
		while (rand_r(&seed) % 3 == 0 && fake_dm_complete(&f->fd, NULL, 0) == 0)
			;
		/* follow the target's ExpCmdSN so that commands keep landing in the window */
		while ((rsp = fake_dm_pop(&f->fd)) != NULL) {
			if (isd_bhs_opcode(rsp->bhs) != ISD_OP_DATA_IN)
				f->cmdsn = get_be32(rsp->bhs + 28);
			isd_pdu_free(rsp);
		}
		isd_reactor_poll(f->r, 0);
	}
	while (fake_dm_complete(&f->fd, NULL, 0) == 0)
		;
	for (int i = 0; i < 20; i++)
		isd_reactor_poll(f->r, 0);
	fake_dm_drop_sent(&f->fd);
	/* parked requests are given back when the connection goes */
	fake_dm_terminate_notify(&f->fd, true);
	assert_true(f->fd.freed);
	assert_int_equal(f->fd.released, f->fd.injected);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_cmd_write_then_read, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cmd_read_underflow_residual, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cmd_send_response_hook, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cmd_bidi_check_condition, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cmd_data_digest_error_check_condition, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_cmd_duplicate_itt_and_bad_immediate, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_cmdsn_window, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cmdsn_unsolicited_data_for_held_command, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_cmdsn_held_command_data_digest_error, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_nop_echo_and_reject_opcode, setup, teardown),
		cmocka_unit_test_setup_teardown(test_nop_ping_timeout, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tmf_abort_task, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tmf_abort_waits_for_exec, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tmf_abort_before_delivery, setup, teardown),
		cmocka_unit_test_setup_teardown(test_text_sendtargets_normal_and_continuation,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_logout_close_session, setup, teardown),
		cmocka_unit_test_setup_teardown(test_logout_releases_reserve6, setup, teardown),
		cmocka_unit_test_setup_teardown(test_logout_recovery_unsupported, setup, teardown),
		cmocka_unit_test_setup_teardown(test_put_data_refused_at_once, setup, teardown),
		cmocka_unit_test_setup_teardown(test_put_data_fails_later, setup, teardown),
		cmocka_unit_test_setup_teardown(test_get_data_refused_at_once, setup, teardown),
		cmocka_unit_test_setup_teardown(test_get_data_fails_later, setup, teardown),
		cmocka_unit_test_setup_teardown(test_conn_drop_with_io_in_flight, setup, teardown),
		cmocka_unit_test_setup_teardown(test_abort_waits_for_transfer, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pr_preempt_abort_other_session, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_random_pdus, setup, teardown),
	};

	return cmocka_run_group_tests_name("core_cmd", tests, NULL, NULL);
}
