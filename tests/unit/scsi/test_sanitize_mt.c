/*
 * SANITIZE with several reactors: the store is opened on reactor 0, the
 * SANITIZE commands (OVERWRITE, no IMMED: the command waits for the end)
 * come in on reactor 1 and are aborted while their operation runs, once on
 * reactor 1 itself and once from reactor 2. Each cancelled command must be
 * answered (TASK ABORTED) on reactor 1, where its transport runs, outside
 * the device's monitor: the answer was deferred on the store's reactor
 * (reactor 0) before, which answers on the wrong thread and, from another
 * thread, touches reactor 0's timers unguarded (the tsan preset runs this
 * test).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bstore/bstore.h"
#include "reactor/reactor.h"
#include "scsi/scsi.h"
#include "util/endian.h"
#include "util/monitor.h"

#define BS 512u
#define PLEN 8u                 /* pattern bytes */

struct san_cmd {
	struct isd_scsi_cmd cmd;
	uint8_t cdb[16];
	struct isd_reactor *answered_on;
	bool done_inside;
	int done;
};

static struct {
	struct isd_reactor *r0, *r1, *r2;
	struct isd_scsi_dev *dev;
	struct isd_scsi_nexus nexus;
	struct san_cmd c[2];            /* [0] cancelled on reactor 1, [1] from reactor 2 */
	struct isd_reactor_msg start, cancel_msg;
	struct isd_timer watchdog;
	atomic_int answered;
	atomic_bool r2_cancelled;
	bool timed_out;
} g;

static void
san_done(struct isd_scsi_cmd *cmd)
{
	struct san_cmd *c = cmd->cb_arg;

	c->answered_on = isd_reactor_current();
	c->done_inside = isd_monitor_current() != NULL;
	c->done++;
	if (atomic_fetch_add(&g.answered, 1) == 1)
		isd_reactor_stop(g.r0);
}

/* SANITIZE OVERWRITE of LU lun, one pass of an 8-byte pattern, waiting for the end. */
static void
san_start(struct san_cmd *c, uint32_t lun)
{
	struct isd_scsi_cmd *cmd = &c->cmd;
	uint8_t *p;

	memset(c, 0, sizeof(*c));
	c->cdb[0] = 0x48;
	c->cdb[1] = 0x01;                       /* OVERWRITE */
	put_be16(c->cdb + 7, 4 + PLEN);
	cmd->dev = g.dev;
	cmd->nexus = &g.nexus;
	cmd->lun = isd_scsi_lun_encode(lun);
	cmd->cdb = c->cdb;
	cmd->cdb_len = 10;
	cmd->edtl = 4 + PLEN;
	cmd->done = san_done;
	cmd->cb_arg = c;
	assert_int_equal(isd_scsi_cmd_setup(cmd), ISD_SCSI_SETUP_READY);
	p = cmd->iov[0].iov_base;
	memset(p, 0, 4 + PLEN);
	p[0] = 1;                               /* OVERWRITE COUNT */
	put_be16(p + 2, PLEN);
	memset(p + 4, 0x3c, PLEN);
	isd_scsi_cmd_exec(cmd);
}

/* reactor 2: the abort of the second one comes from here */
static void
cancel_from_r2(void *arg)
{
	(void)arg;
	isd_scsi_cmd_cancel(&g.c[1].cmd);
	atomic_store(&g.r2_cancelled, true);
}

static void
nothing_done(struct isd_scsi_cmd *cmd)
{
	(void)cmd;
}

/* The power-on unit attention, taken by TEST UNIT READYs set up and given up. */
static void
clear_ua(uint32_t lun)
{
	uint8_t cdb[6] = { 0 };
	struct isd_scsi_cmd cmd;
	int rc;

	do {
		memset(&cmd, 0, sizeof(cmd));
		cmd.dev = g.dev;
		cmd.nexus = &g.nexus;
		cmd.lun = isd_scsi_lun_encode(lun);
		cmd.cdb = cdb;
		cmd.cdb_len = 6;
		cmd.done = nothing_done;
		rc = isd_scsi_cmd_setup(&cmd);
		isd_scsi_cmd_release(&cmd);
	} while (rc != ISD_SCSI_SETUP_READY && cmd.status != ISD_SAM_GOOD);
}

/* reactor 1: both commands come in here */
static void
start_r1(void *arg)
{
	(void)arg;
	clear_ua(0);
	clear_ua(1);
	san_start(&g.c[0], 0);
	/* the operation runs (its passes go on over the next turns): the command is aborted */
	isd_scsi_cmd_cancel(&g.c[0].cmd);
	san_start(&g.c[1], 1);
	g.cancel_msg.cb = cancel_from_r2;
	isd_reactor_post(g.r2, &g.cancel_msg);
	/*
	 * The passes run on this reactor (the command came in here): until
	 * reactor 2's cancel is in, none runs, so it meets the operation still
	 * running however late reactor 2 gets a CPU (a busy 2-CPU machine once
	 * let a 256M overwrite end first). Bounded: the watchdog has 10 s.
	 */
	for (int i = 0; i < 5000 && !atomic_load(&g.r2_cancelled); i++) {
		struct timespec ms = { 0, 1000000 };

		nanosleep(&ms, NULL);
	}
}

static void
watchdog(void *arg)
{
	(void)arg;
	g.timed_out = true;
	isd_reactor_stop(g.r0);
}

static void
add_lu(uint32_t lun)
{
	struct isd_scsi_lu_cfg cfg;
	struct isd_bstore *bs;
	char err[128];

	memset(&cfg, 0, sizeof(cfg));
	/* opened on reactor 0: the store's reactor is not the commands' */
	/* large enough that no pass ends before either cancel arrives, however busy the machine */
	assert_int_equal(isd_bstore_open(g.r0, "ram:256M", &bs, err, sizeof(err)), 0);
	cfg.bstore = bs;
	cfg.block_size = BS;
	cfg.write_cache = true;
	snprintf(cfg.serial, sizeof(cfg.serial), "SAN%u", lun);
	assert_int_equal(isd_scsi_dev_add_lu(g.dev, lun, &cfg), 0);
}

static void
test_cancelled_sanitize_answered_where_it_came_in(void **state)
{
	struct isd_reactor_group *grp;

	(void)state;
	isd_monitor_set_threaded(true);
	assert_int_equal(isd_reactor_group_create(3, &grp), 0);
	g.r0 = isd_reactor_group_get(grp, 0);
	g.r1 = isd_reactor_group_get(grp, 1);
	g.r2 = isd_reactor_group_get(grp, 2);
	assert_int_equal(isd_scsi_dev_create("iqn.2026-12.test:san", &g.dev), 0);
	add_lu(0);
	add_lu(1);
	snprintf(g.nexus.initiator_port, sizeof(g.nexus.initiator_port),
		 "iqn.2026-12.test:sini,i,0x00023d000001");
	snprintf(g.nexus.target_port, sizeof(g.nexus.target_port), "iqn.2026-12.test:san,t,0x0001");
	g.nexus.rel_tgt_port_id = 1;
	g.nexus.id = 300;
	g.start.cb = start_r1;
	isd_timer_init(&g.watchdog, watchdog, NULL);
	isd_reactor_timer_start(g.r0, &g.watchdog, 10000);

	assert_int_equal(isd_reactor_group_start(grp, NULL, 0), 0);
	isd_reactor_post(g.r1, &g.start);
	assert_int_equal(isd_reactor_run(g.r0), 0);
	isd_reactor_timer_stop(g.r0, &g.watchdog);
	isd_reactor_group_join(grp);

	assert_false(g.timed_out);
	for (unsigned i = 0; i < 2; i++) {
		assert_int_equal(g.c[i].done, 1);
		assert_ptr_equal(g.c[i].answered_on, g.r1);
		assert_false(g.c[i].done_inside);
		assert_int_equal(g.c[i].cmd.status, ISD_SAM_TASK_ABORTED);
	}
	/* the operations may still run: the device's end stops them (iserd stopping) */
	isd_scsi_cmd_release(&g.c[0].cmd);
	isd_scsi_cmd_release(&g.c[1].cmd);
	isd_scsi_dev_destroy(g.dev);
	isd_reactor_group_destroy(grp);
	isd_monitor_set_threaded(false);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cancelled_sanitize_answered_where_it_came_in),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
