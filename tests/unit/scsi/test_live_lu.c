/*
 * LUs changing while the device runs: removal waits for the commands that hold
 * the LU (then the caller's gone hook, then the store closes), REPORTED LUNS
 * DATA HAS CHANGED on the other LUs, read-only switched for new commands, and
 * the stores' resize hook.
 */
#include "scsi_harness.h"

static int g_gone;
static struct isd_bstore *g_gone_bs;

static void
gone(void *arg, struct isd_bstore *bs)
{
	(*(int *)arg)++;
	g_gone++;
	g_gone_bs = bs;
}

/* A READ(10) of one block, set up (it then holds the LU) but not run. */
static void
held_read(struct h *h, struct isd_scsi_cmd *cmd, uint8_t *cdb, uint32_t lun)
{
	memset(cdb, 0, 16);
	cdb[0] = 0x28;
	cdb[8] = 1;
	memset(cmd, 0, sizeof(*cmd));
	cmd->dev = h->dev;
	cmd->nexus = &h->nx[0];
	cmd->lun = isd_scsi_lun_encode(lun);
	cmd->cdb = cdb;
	cmd->cdb_len = 16;
	cmd->edtl = H_BS;
	cmd->done = h_done;
	assert_int_equal(isd_scsi_cmd_setup(cmd), ISD_SCSI_SETUP_READY);
}

static void
run_held(struct h *h, struct isd_scsi_cmd *cmd)
{
	g_done_calls = 0;
	isd_scsi_cmd_exec(cmd);
	for (int i = 0; i < 1000 && g_done_calls == 0; i++)
		isd_reactor_poll(h->r, 1);
	assert_int_equal(g_done_calls, 1);
	assert_int_equal(cmd->status, ISD_SAM_GOOD);
}

static void
test_remove_waits_for_commands(void **state)
{
	struct h h;
	struct isd_scsi_cmd cmd;
	uint8_t cdb[16] = {0}, rcdb[16];
	int calls = 0;

	(void)state;
	h_init(&h);
	h_add_ram_lu(&h, 0, false, false);
	h_add_ram_lu(&h, 1, false, false);
	h_clear_ua(&h, 0);
	h_clear_ua(&h, 1);
	/* a command set up on LUN 1 and not yet released holds it */
	held_read(&h, &cmd, rcdb, 1);
	assert_int_equal(isd_scsi_lu_busy(h.dev, 1), 1);
	g_gone = 0;
	assert_int_equal(isd_scsi_dev_remove_lu(h.dev, 1, gone, &calls), 0);
	assert_int_equal(isd_scsi_dev_remove_lu(h.dev, 1, gone, &calls), -ENOENT);
	assert_int_equal(isd_scsi_dev_lu_count(h.dev), 1);
	assert_int_equal(calls, 0);
	/* new commands: LU NOT SUPPORTED; the other LU reports the change once */
	assert_sense(h_run(&h, 0, 1, cdb, 6, NULL, 0), ISD_SK_ILLEGAL_REQUEST, 0x25, 0);
	for (int n = 0; n < 3; n++)
		assert_sense(h_run(&h, n, 0, cdb, 6, NULL, 0), ISD_SK_UNIT_ATTENTION, 0x3f, 0x0e);
	assert_good(h_run(&h, 0, 0, cdb, 6, NULL, 0));
	/* the held command runs to the end on the LU, then the store goes */
	run_held(&h, &cmd);
	assert_int_equal(calls, 0);
	isd_scsi_cmd_release(&cmd);
	assert_int_equal(calls, 1);
	assert_non_null(g_gone_bs);
	/* an idle LU goes at once; no LU left to tell */
	assert_int_equal(isd_scsi_dev_remove_lu(h.dev, 0, gone, &calls), 0);
	assert_int_equal(calls, 2);
	assert_int_equal(isd_scsi_dev_lu_count(h.dev), 0);
	h_fini(&h);
}

static void
test_release_frees_removed_lu(void **state)
{
	struct h h;
	struct isd_scsi_cmd cmd;
	uint8_t rcdb[16];
	int calls = 0;

	(void)state;
	h_init(&h);
	h_add_ram_lu(&h, 0, false, false);
	h_clear_ua(&h, 0);
	held_read(&h, &cmd, rcdb, 0);
	assert_int_equal(isd_scsi_dev_remove_lu(h.dev, 0, gone, &calls), 0);
	run_held(&h, &cmd);
	isd_scsi_cmd_release(&cmd);
	assert_int_equal(calls, 1);
	h_fini(&h);
}

static void
test_luns_changed_and_read_only(void **state)
{
	struct h h;
	uint8_t cdb[16] = {0}, block[H_BS];

	(void)state;
	h_init(&h);
	h_add_ram_lu(&h, 0, false, false);
	h_clear_ua(&h, 0);
	isd_scsi_dev_luns_changed(h.dev);
	assert_sense(h_run(&h, 1, 0, cdb, 6, NULL, 0), ISD_SK_UNIT_ATTENTION, 0x3f, 0x0e);
	assert_good(h_run(&h, 1, 0, cdb, 6, NULL, 0));
	h_clear_ua(&h, 0);
	memset(block, 7, sizeof(block));
	assert_int_equal(isd_scsi_lu_set_read_only(h.dev, 0, true), 0);
	assert_sense(h_rw10(&h, 0, 0, 0x2a, 0, 1, block, sizeof(block)), ISD_SK_DATA_PROTECT,
		     0x27, 0);
	assert_int_equal(isd_scsi_lu_set_read_only(h.dev, 0, false), 0);
	assert_good(h_rw10(&h, 0, 0, 0x2a, 0, 1, block, sizeof(block)));
	assert_int_equal(isd_scsi_lu_set_read_only(h.dev, 5, true), -ENOENT);
	h_fini(&h);
}

static void
test_bstore_resize(void **state)
{
	struct isd_reactor *r;
	struct isd_bstore *bs;
	char why[256];

	(void)state;
	assert_int_equal(isd_reactor_create(&r), 0);
	assert_int_equal(isd_bstore_open(r, "ram:1M", &bs, why, sizeof(why)), 0);
	assert_int_equal(isd_bstore_resize(bs, 2u << 20, why, sizeof(why)), -ENOTSUP);
	assert_non_null(strstr(why, "cannot change while it runs"));
	assert_int_equal(bs->size, 1u << 20);
	/* its own size is no change */
	assert_int_equal(isd_bstore_resize(bs, 1u << 20, why, sizeof(why)), 0);
	isd_bstore_close(bs);
	assert_int_equal(isd_bstore_open(r, "zero:1M", &bs, why, sizeof(why)), 0);
	assert_int_equal(isd_bstore_resize(bs, 5u << 20, why, sizeof(why)), 0);
	assert_int_equal(bs->size, 5u << 20);
	assert_int_equal(isd_bstore_resize(bs, 0, why, sizeof(why)), -EINVAL);
	isd_bstore_close(bs);
	isd_reactor_destroy(r);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_remove_waits_for_commands),
		cmocka_unit_test(test_release_frees_removed_lu),
		cmocka_unit_test(test_luns_changed_and_read_only),
		cmocka_unit_test(test_bstore_resize),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
