/* I/O statistics of the device server: per-LU and per-device counters by
 * direction, bytes, error classes, latency buckets, and in-flight returning to
 * 0 however a command ends (completed, finished in setup, aborted, cancelled,
 * abandoned by the transport). */
#include "scsi_harness.h"

static int g_stat_done;

static void
stat_done(struct isd_scsi_cmd *cmd)
{
	(void)cmd;
	g_stat_done++;
}

static void
cmd_init(struct h *h, struct isd_scsi_cmd *cmd, uint8_t *cdb16, uint32_t lun, uint32_t edtl,
	 bool rd)
{
	memset(cmd, 0, sizeof(*cmd));
	cmd->dev = h->dev;
	cmd->nexus = &h->nx[0];
	cmd->lun = isd_scsi_lun_encode(lun);
	cmd->cdb = cdb16;
	cmd->cdb_len = 16;
	cmd->edtl = edtl;
	cmd->read_flag = rd;
	cmd->write_flag = !rd && edtl > 0;
	cmd->done = stat_done;
}

/* Runs a command to completion; returns its status. */
static uint8_t
run(struct h *h, uint32_t lun, const uint8_t *cdb, uint32_t cdb_len, uint32_t edtl, bool rd)
{
	struct isd_scsi_cmd cmd;
	uint8_t cdb16[16] = { 0 };
	uint8_t status;

	memcpy(cdb16, cdb, cdb_len);
	cmd_init(h, &cmd, cdb16, lun, edtl, rd);
	g_stat_done = 0;
	if (isd_scsi_cmd_setup(&cmd) == ISD_SCSI_SETUP_READY) {
		if (cmd.dir == ISD_SCSI_DIR_OUT && cmd.data_out_len > 0)
			memset(cmd.iov[0].iov_base, 0x5a, cmd.data_out_len);
		isd_scsi_cmd_exec(&cmd);
		for (int i = 0; i < 1000 && g_stat_done == 0; i++)
			assert_int_equal(isd_reactor_poll(h->r, 10), 0);
		assert_int_equal(g_stat_done, 1);
	}
	status = cmd.status;
	isd_scsi_cmd_release(&cmd);
	return status;
}

static void
rw10(uint8_t *cdb, uint8_t op, uint32_t lba, uint16_t nb)
{
	memset(cdb, 0, 10);
	cdb[0] = op;
	put_be32(cdb + 2, lba);
	put_be16(cdb + 7, nb);
}

static struct isd_io_stats
lu_io(struct h *h, uint32_t lun)
{
	struct isd_scsi_lu_info li;

	assert_int_equal(isd_scsi_dev_lu_info(h->dev, lun, &li), 0);
	return li.io;
}

static struct isd_io_stats
dev_io(struct h *h)
{
	struct isd_io_stats st;

	isd_scsi_dev_io_stats(h->dev, &st);
	return st;
}

static uint64_t
lat_total(const struct isd_io_stats *st)
{
	uint64_t n = 0;

	for (int i = 0; i < ISD_IO_LAT_BUCKETS; i++)
		n += st->lat[i];
	return n;
}

static uint64_t
cmds_total(const struct isd_io_stats *st)
{
	return st->cmds[ISD_IO_READ] + st->cmds[ISD_IO_WRITE] + st->cmds[ISD_IO_OTHER];
}

static void
setup2(struct h *h)
{
	h_init(h);
	h_add_ram_lu(h, 0, false, false);
	h_add_ram_lu(h, 3, false, true);
}

static void
test_counts(void **state)
{
	struct h h;
	struct isd_io_stats st;
	uint8_t cdb[16];
	uint8_t tur[6] = { 0x00 };
	uint8_t inq[6] = { 0x12, 0, 0, 0, 36, 0 };

	(void)state;
	setup2(&h);
	/* the power-on unit attention */
	assert_int_equal(run(&h, 0, tur, 6, 0, false), ISD_SAM_CHECK_CONDITION);
	st = lu_io(&h, 0);
	assert_int_equal(st.cmds[ISD_IO_OTHER], 1);
	assert_int_equal(st.errors[ISD_IO_ERR_UNIT_ATTENTION], 1);
	assert_int_equal(run(&h, 0, tur, 6, 0, false), ISD_SAM_GOOD);

	rw10(cdb, 0x2a, 10, 8);
	assert_int_equal(run(&h, 0, cdb, 10, 8 * H_BS, false), ISD_SAM_GOOD);
	rw10(cdb, 0x28, 10, 8);
	assert_int_equal(run(&h, 0, cdb, 10, 8 * H_BS, true), ISD_SAM_GOOD);
	/* EDTL below the CDB's length: only what the initiator takes is sent */
	assert_int_equal(run(&h, 0, cdb, 10, 2 * H_BS, true), ISD_SAM_GOOD);
	/* out of range: illegal request, no bytes */
	rw10(cdb, 0x28, H_BLOCKS, 1);
	assert_int_equal(run(&h, 0, cdb, 10, H_BS, true), ISD_SAM_CHECK_CONDITION);
	st = lu_io(&h, 0);
	assert_int_equal(st.cmds[ISD_IO_WRITE], 1);
	assert_int_equal(st.bytes[ISD_IO_WRITE], 8 * H_BS);
	assert_int_equal(st.cmds[ISD_IO_READ], 3);
	assert_int_equal(st.bytes[ISD_IO_READ], 10 * H_BS);
	assert_int_equal(st.errors[ISD_IO_ERR_ILLEGAL], 1);
	assert_int_equal(st.cmds[ISD_IO_OTHER], 2);
	assert_int_equal(st.in_flight, 0);
	assert_int_equal(lat_total(&st), cmds_total(&st));

	/* a write to the read-only LU */
	h_clear_ua(&h, 3);
	rw10(cdb, 0x2a, 0, 1);
	assert_int_equal(run(&h, 3, cdb, 10, H_BS, false), ISD_SAM_CHECK_CONDITION);
	st = lu_io(&h, 3);
	assert_int_equal(st.errors[ISD_IO_ERR_DATA_PROTECT], 1);
	assert_int_equal(st.bytes[ISD_IO_WRITE], 0);

	/* a LUN that does not exist counts at the device only */
	assert_int_equal(run(&h, 7, tur, 6, 0, false), ISD_SAM_CHECK_CONDITION);
	assert_int_equal(run(&h, 7, inq, 6, 36, true), ISD_SAM_GOOD);
	st = dev_io(&h);
	{
		struct isd_io_stats sum = lu_io(&h, 0), l3 = lu_io(&h, 3);

		isd_io_stats_sum(&sum, &l3);
		assert_int_equal(cmds_total(&st), cmds_total(&sum) + 2);
		assert_int_equal(st.errors[ISD_IO_ERR_ILLEGAL], sum.errors[ISD_IO_ERR_ILLEGAL] + 1);
		assert_int_equal(st.bytes[ISD_IO_OTHER], sum.bytes[ISD_IO_OTHER] + 36);
		assert_int_equal(st.bytes[ISD_IO_READ], 10 * H_BS);
	}
	assert_int_equal(st.in_flight, 0);
	assert_int_equal(lat_total(&st), cmds_total(&st));
	h_fini(&h);
}

static void
test_in_flight_returns_to_zero(void **state)
{
	struct h h;
	struct isd_scsi_cmd cmd;
	struct isd_io_stats st;
	uint8_t cdb[16] = { 0 };

	(void)state;
	setup2(&h);
	h_clear_ua(&h, 0);
	/* set up and waiting for data-out: in flight at the LU and the device */
	rw10(cdb, 0x2a, 0, 4);
	cmd_init(&h, &cmd, cdb, 0, 4 * H_BS, false);
	assert_int_equal(isd_scsi_cmd_setup(&cmd), ISD_SCSI_SETUP_READY);
	assert_int_equal(lu_io(&h, 0).in_flight, 1);
	assert_int_equal(dev_io(&h).in_flight, 1);
	/* aborted before exec (ABORT TASK): counted once, at the abort */
	isd_scsi_cmd_abort(&cmd);
	st = lu_io(&h, 0);
	assert_int_equal(st.in_flight, 0);
	assert_int_equal(st.errors[ISD_IO_ERR_ABORTED], 1);
	isd_scsi_cmd_release(&cmd);
	assert_int_equal(lu_io(&h, 0).errors[ISD_IO_ERR_ABORTED], 1);

	/* abandoned (the connection died during the data-out): counted at release */
	cmd_init(&h, &cmd, cdb, 0, 4 * H_BS, false);
	assert_int_equal(isd_scsi_cmd_setup(&cmd), ISD_SCSI_SETUP_READY);
	isd_scsi_cmd_release(&cmd);
	st = lu_io(&h, 0);
	assert_int_equal(st.in_flight, 0);
	assert_int_equal(st.errors[ISD_IO_ERR_ABORTED], 2);
	assert_int_equal(st.cmds[ISD_IO_WRITE], 2);
	assert_int_equal(st.bytes[ISD_IO_WRITE], 0);

	/* cancelled while its exec runs: done still comes once, counted aborted */
	rw10(cdb, 0x28, 0, 4);
	cmd_init(&h, &cmd, cdb, 0, 4 * H_BS, true);
	g_stat_done = 0;
	assert_int_equal(isd_scsi_cmd_setup(&cmd), ISD_SCSI_SETUP_READY);
	isd_scsi_cmd_exec(&cmd);
	isd_scsi_cmd_cancel(&cmd);
	for (int i = 0; i < 1000 && g_stat_done == 0; i++)
		assert_int_equal(isd_reactor_poll(h.r, 10), 0);
	assert_int_equal(g_stat_done, 1);
	isd_scsi_cmd_release(&cmd);
	st = lu_io(&h, 0);
	assert_int_equal(st.in_flight, 0);
	assert_int_equal(st.cmds[ISD_IO_READ], 1);
	assert_int_equal(dev_io(&h).in_flight, 0);
	assert_int_equal(lat_total(&st), cmds_total(&st));

	/* exec called on a command finished in setup counts it once */
	cmd_init(&h, &cmd, cdb, 9, 4 * H_BS, true);
	g_stat_done = 0;
	assert_int_equal(isd_scsi_cmd_setup(&cmd), ISD_SCSI_SETUP_DONE);
	isd_scsi_cmd_exec(&cmd);
	assert_int_equal(g_stat_done, 1);
	isd_scsi_cmd_release(&cmd);
	st = dev_io(&h);
	assert_int_equal(st.in_flight, 0);
	assert_int_equal(lat_total(&st), cmds_total(&st));
	h_fini(&h);
}

static void
test_classes(void **state)
{
	static const struct {
		uint8_t status;
		int key;                /* -1: no sense */
		int want;
	} cases[] = {
		{ ISD_SAM_GOOD, -1, -1 },
		{ ISD_SAM_BUSY, -1, ISD_IO_ERR_BUSY },
		{ ISD_SAM_TASK_SET_FULL, -1, ISD_IO_ERR_BUSY },
		{ ISD_SAM_RESERVATION_CONFLICT, -1, ISD_IO_ERR_CONFLICT },
		{ ISD_SAM_TASK_ABORTED, -1, ISD_IO_ERR_ABORTED },
		{ ISD_SAM_ACA_ACTIVE, -1, ISD_IO_ERR_OTHER },
		{ ISD_SAM_CHECK_CONDITION, ISD_SK_MEDIUM_ERROR, ISD_IO_ERR_MEDIUM },
		{ ISD_SAM_CHECK_CONDITION, ISD_SK_HARDWARE_ERROR, ISD_IO_ERR_MEDIUM },
		{ ISD_SAM_CHECK_CONDITION, ISD_SK_ILLEGAL_REQUEST, ISD_IO_ERR_ILLEGAL },
		{ ISD_SAM_CHECK_CONDITION, ISD_SK_UNIT_ATTENTION, ISD_IO_ERR_UNIT_ATTENTION },
		{ ISD_SAM_CHECK_CONDITION, ISD_SK_DATA_PROTECT, ISD_IO_ERR_DATA_PROTECT },
		{ ISD_SAM_CHECK_CONDITION, ISD_SK_ABORTED_COMMAND, ISD_IO_ERR_ABORTED },
		{ ISD_SAM_CHECK_CONDITION, ISD_SK_MISCOMPARE, ISD_IO_ERR_MISCOMPARE },
		{ ISD_SAM_CHECK_CONDITION, ISD_SK_NOT_READY, ISD_IO_ERR_OTHER },
		{ ISD_SAM_CHECK_CONDITION, -1, ISD_IO_ERR_OTHER },
	};
	struct isd_scsi_cmd cmd;
	uint8_t cdb[16] = { 0x89 };     /* COMPARE AND WRITE */
	enum isd_io_dir dir;
	uint64_t bytes;
	int err;

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		memset(&cmd, 0, sizeof(cmd));
		cmd.cdb = cdb;
		cmd.cdb_len = 16;
		cmd.status = cases[i].status;
		cmd.dir = ISD_SCSI_DIR_OUT;
		cmd.data_out_len = 1024;
		if (cases[i].key >= 0) {
			isd_scsi_set_sense(&cmd, (uint8_t)cases[i].key, 0, 0);
			cmd.status = cases[i].status;
		}
		isd_scsi_cmd_io_result(&cmd, &dir, &bytes, &err);
		assert_int_equal(dir, ISD_IO_WRITE);
		assert_int_equal(err, cases[i].want);
		assert_int_equal(bytes, cases[i].want < 0 ? 1024 : 0);
	}
	assert_int_equal(isd_scsi_cdb_io_dir((const uint8_t[]){ 0x88 }, 16), ISD_IO_READ);
	assert_int_equal(isd_scsi_cdb_io_dir((const uint8_t[]){ 0x42 }, 10), ISD_IO_WRITE);
	assert_int_equal(isd_scsi_cdb_io_dir((const uint8_t[]){ 0x2f }, 10), ISD_IO_OTHER);
	assert_int_equal(isd_scsi_cdb_io_dir(NULL, 0), ISD_IO_OTHER);
}

static void
test_lu_info(void **state)
{
	struct h h;
	struct isd_scsi_lu_info li;
	uint32_t luns[4];

	(void)state;
	setup2(&h);
	assert_int_equal(isd_scsi_dev_luns(h.dev, luns, 4), 2);
	assert_int_equal(luns[0], 0);
	assert_int_equal(luns[1], 3);
	assert_int_equal(isd_scsi_dev_luns(h.dev, luns, 1), 2);
	assert_int_equal(isd_scsi_dev_lu_info(h.dev, 3, &li), 0);
	assert_int_equal(li.lun, 3);
	assert_int_equal(li.size, H_BLOCKS * H_BS);
	assert_int_equal(li.block_size, H_BS);
	assert_true(li.read_only);
	assert_int_equal(isd_scsi_dev_lu_info(h.dev, 1, &li), -ENOENT);
	assert_int_equal(isd_scsi_dev_lu_info(h.dev, 100000, &li), -ENOENT);
	h_fini(&h);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_counts),
		cmocka_unit_test(test_in_flight_returns_to_zero),
		cmocka_unit_test(test_classes),
		cmocka_unit_test(test_lu_info),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
