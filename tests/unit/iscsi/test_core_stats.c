/*
 * Per-session I/O statistics in the iSCSI core and the session listing
 * (isd_iscsi_tgt_for_each_session), through the fake datamover: commands,
 * bytes and in-flight while a transfer is pending, an aborted task, and a
 * connection lost mid-write, each leaving the session's and the LU's
 * in-flight counts at 0.
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

#define TNAME "iqn.2024-01.org.example:stats"
#define INAME "iqn.1993-08.org.debian:01:statstest"

struct fx {
	struct isd_reactor *r;
	struct isd_iscsi_tgt *t;
	struct isd_tnode node;
	struct isd_scsi_dev *dev;
	struct fake_dm fd;
	uint16_t tsih;
	uint32_t cmdsn;
	uint32_t itt;
};

static const uint8_t g_isid[6] = {0x80, 0, 0, 0, 0x56, 0x78};

static struct isd_pdu *
wait_pdu(struct fx *f)
{
	for (int i = 0; i < 200 && TAILQ_EMPTY(&f->fd.sent); i++)
		isd_reactor_poll(f->r, 1);
	return fake_dm_pop(&f->fd);
}

static void
cmd_bhs(uint8_t *bhs, uint8_t flags, uint32_t itt, uint32_t edtl, uint32_t cmdsn, uint8_t op,
	uint32_t lba, uint16_t blocks)
{
	memset(bhs, 0, ISD_BHS_LEN);
	bhs[0] = ISD_OP_SCSI_CMD;
	bhs[1] = flags | 1;
	put_be32(bhs + 16, itt);
	put_be32(bhs + 20, edtl);
	put_be32(bhs + 24, cmdsn);
	bhs[32] = op;
	if (op != 0) {
		put_be32(bhs + 34, lba);
		put_be16(bhs + 39, blocks);
	}
}

static int
setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	struct isd_iscsi_cfg cfg;
	struct isd_scsi_lu_cfg lcfg;
	struct isd_bstore *bs;
	uint8_t bhs[ISD_BHS_LEN];
	struct isd_pdu *rsp;
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
	assert_int_equal(isd_scsi_dev_add_lu(f->dev, 0, &lcfg), 0);
	snprintf(f->node.name, sizeof(f->node.name), "%s", TNAME);
	f->node.dev = f->dev;
	f->node.queue_depth = 8;
	isd_key_policy_init(&f->node.policy);
	assert_int_equal(isd_iscsi_tgt_add_node(f->t, &f->node), 0);
	fake_dm_init(&f->fd);
	assert_int_equal(fake_dm_connect(&f->fd, f->t, f->r, 1), 0);
	f->cmdsn = 10;
	assert_int_equal(fake_dm_login(&f->fd, INAME, TNAME, g_isid, f->cmdsn, &f->tsih), 0);
	f->itt = 1;
	/* TEST UNIT READY meets the power-on unit attention */
	cmd_bhs(bhs, ISD_BHS_F, f->itt++, 0, f->cmdsn++, 0, 0, 0);
	fake_dm_inject(&f->fd, bhs, NULL, 0);
	rsp = wait_pdu(f);
	assert_non_null(rsp);
	assert_int_equal(rsp->bhs[3], ISD_SAM_CHECK_CONDITION);
	isd_pdu_free(rsp);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fx *f = *state;

	if (f->fd.conn != NULL)
		fake_dm_terminate_notify(&f->fd, true);
	for (int i = 0; i < 100; i++)
		isd_reactor_poll(f->r, 0);
	fake_dm_fini(&f->fd);
	isd_iscsi_tgt_destroy(f->t);
	isd_scsi_dev_destroy(f->dev);
	isd_reactor_destroy(f->r);
	free(f);
	return 0;
}

struct seen {
	int n;
	struct isd_iscsi_session_info si;
};

static void
on_session(void *arg, const struct isd_iscsi_session_info *si)
{
	struct seen *s = arg;

	s->n++;
	s->si = *si;
}

static struct isd_iscsi_session_info
session(struct fx *f)
{
	struct seen s = {0};

	assert_int_equal(isd_iscsi_tgt_for_each_session(f->t, on_session, &s), 1);
	assert_int_equal(s.n, 1);
	return s.si;
}

static struct isd_io_stats
lu_io(struct fx *f)
{
	struct isd_scsi_lu_info li;

	assert_int_equal(isd_scsi_dev_lu_info(f->dev, 0, &li), 0);
	return li.io;
}

static void
test_session_info(void **state)
{
	struct fx *f = *state;
	struct isd_iscsi_session_info si = session(f);

	assert_int_equal(si.tsih, f->tsih);
	assert_false(si.discovery);
	assert_string_equal(si.target, TNAME);
	assert_string_equal(si.initiator, INAME);
	assert_memory_equal(si.isid, g_isid, 6);
	assert_int_equal(si.queue_depth, 8);
	assert_string_equal(si.conn.peer_addr, "192.0.2.1");
	assert_true(si.max_recv_dsl > 0 && si.max_xmit_dsl > 0);
	assert_true(si.params.max_burst_length > 0);
	assert_true(si.age_ms < 60000);
	assert_int_equal(si.in_flight, 0);
	/* the TEST UNIT READY of setup, with its unit attention */
	assert_int_equal(si.io.cmds[ISD_IO_OTHER], 1);
	assert_int_equal(si.io.errors[ISD_IO_ERR_UNIT_ATTENTION], 1);
	assert_int_equal(isd_iscsi_tgt_for_each_session(f->t, NULL, NULL), 1);
}

static void
test_write_read_counts(void **state)
{
	struct fx *f = *state;
	uint8_t bhs[ISD_BHS_LEN], buf[4096];
	struct isd_iscsi_session_info si;
	struct isd_io_stats lu;
	struct isd_pdu *rsp;

	memset(buf, 0x3c, sizeof(buf));
	/* WRITE(10) 8 blocks, 512 bytes immediate, the rest solicited */
	cmd_bhs(bhs, ISD_BHS_F | ISD_CMD_W, f->itt++, 4096, f->cmdsn++, 0x2a, 0, 8);
	fake_dm_inject(&f->fd, bhs, buf, 512);
	assert_int_equal(f->fd.n_xfers, 1);
	si = session(f);
	assert_int_equal(si.in_flight, 1);
	assert_int_equal(si.io.in_flight, 1);
	assert_int_equal(lu_io(f).in_flight, 1);
	assert_int_equal(fake_dm_complete(&f->fd, buf + 512, 0), 0);
	rsp = wait_pdu(f);
	assert_non_null(rsp);
	assert_int_equal(rsp->bhs[3], ISD_SAM_GOOD);
	isd_pdu_free(rsp);

	/* READ(10) 8 blocks: counted when its data and response have gone */
	cmd_bhs(bhs, ISD_BHS_F | ISD_CMD_R, f->itt++, 4096, f->cmdsn++, 0x28, 0, 8);
	fake_dm_inject(&f->fd, bhs, NULL, 0);
	rsp = wait_pdu(f);
	assert_non_null(rsp);
	isd_pdu_free(rsp);
	si = session(f);
	assert_int_equal(si.io.in_flight, 1);
	assert_int_equal(si.io.cmds[ISD_IO_READ], 0);
	/* the LU counts it complete once its status is known */
	assert_int_equal(lu_io(f).cmds[ISD_IO_READ], 1);
	assert_int_equal(fake_dm_complete(&f->fd, NULL, 0), 0);

	si = session(f);
	lu = lu_io(f);
	assert_int_equal(si.io.in_flight, 0);
	assert_int_equal(si.io.cmds[ISD_IO_WRITE], 1);
	assert_int_equal(si.io.bytes[ISD_IO_WRITE], 4096);
	assert_int_equal(si.io.cmds[ISD_IO_READ], 1);
	assert_int_equal(si.io.bytes[ISD_IO_READ], 4096);
	assert_int_equal(lu.cmds[ISD_IO_WRITE], 1);
	assert_int_equal(lu.bytes[ISD_IO_WRITE], 4096);
	assert_int_equal(lu.bytes[ISD_IO_READ], 4096);
	assert_int_equal(lu.in_flight, 0);

	/* a bidirectional command never reaches the SCSI layer; the session counts it */
	cmd_bhs(bhs, ISD_BHS_F | ISD_CMD_R | ISD_CMD_W, f->itt++, 512, f->cmdsn++, 0x28, 0, 1);
	fake_dm_inject(&f->fd, bhs, NULL, 0);
	rsp = wait_pdu(f);
	assert_non_null(rsp);
	assert_int_equal(rsp->bhs[3], ISD_SAM_CHECK_CONDITION);
	isd_pdu_free(rsp);
	si = session(f);
	assert_int_equal(si.io.errors[ISD_IO_ERR_ILLEGAL], 1);
	assert_int_equal(si.io.cmds[ISD_IO_READ], 2);
	assert_int_equal(lu_io(f).cmds[ISD_IO_READ], 1);
}

static void
test_abort_and_connection_loss(void **state)
{
	struct fx *f = *state;
	uint8_t bhs[ISD_BHS_LEN], buf[512] = {0};
	struct isd_iscsi_session_info si;
	struct isd_io_stats lu;
	struct isd_pdu *rsp;

	/* a write waiting for its data, aborted by ABORT TASK */
	cmd_bhs(bhs, ISD_BHS_F | ISD_CMD_W, 0x80, 1024, f->cmdsn++, 0x2a, 0, 2);
	fake_dm_inject(&f->fd, bhs, buf, 512);
	assert_int_equal(f->fd.n_xfers, 1);
	memset(bhs, 0, sizeof(bhs));
	bhs[0] = ISD_OP_TMF_REQ | ISD_BHS_I;
	bhs[1] = ISD_BHS_F | ISD_TMF_ABORT_TASK;
	put_be32(bhs + 16, 0x81);
	put_be32(bhs + 20, 0x80);
	put_be32(bhs + 24, f->cmdsn);
	put_be32(bhs + 32, f->cmdsn - 1);
	fake_dm_inject(&f->fd, bhs, NULL, 0);
	rsp = fake_dm_pop(&f->fd);
	assert_non_null(rsp);
	assert_int_equal(rsp->bhs[2], ISD_TMF_RSP_COMPLETE);
	isd_pdu_free(rsp);
	si = session(f);
	lu = lu_io(f);
	assert_int_equal(si.in_flight, 0);
	assert_int_equal(si.io.in_flight, 0);
	assert_int_equal(si.io.errors[ISD_IO_ERR_ABORTED], 1);
	assert_int_equal(si.io.bytes[ISD_IO_WRITE], 0);
	assert_int_equal(lu.in_flight, 0);
	assert_int_equal(lu.errors[ISD_IO_ERR_ABORTED], 1);

	/* another one, and the connection goes away under it */
	cmd_bhs(bhs, ISD_BHS_F | ISD_CMD_W, 0x90, 1024, f->cmdsn++, 0x2a, 0, 2);
	fake_dm_inject(&f->fd, bhs, buf, 512);
	assert_int_equal(lu_io(f).in_flight, 1);
	fake_dm_terminate_notify(&f->fd, true);
	for (int i = 0; i < 100; i++)
		isd_reactor_poll(f->r, 0);
	assert_int_equal(isd_iscsi_tgt_for_each_session(f->t, NULL, NULL), 0);
	lu = lu_io(f);
	assert_int_equal(lu.in_flight, 0);
	assert_int_equal(lu.errors[ISD_IO_ERR_ABORTED], 2);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_session_info, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_write_read_counts, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_abort_and_connection_loss, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
