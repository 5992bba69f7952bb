/*
 * One SCSI device, several reactors at once: each reactor of a group runs
 * commands from its own I_T nexus against the same RAM LU (writes read back
 * and checked, PERSISTENT RESERVE OUT registrations and PR IN, TEST UNIT
 * READY), while one of them keeps raising unit attentions on every nexus
 * (capacity changed) and reactor 0 reads the device's counters. Every way
 * into the SCSI layer enters the device's monitor (util/monitor.h), every
 * store completion runs under it and every cmd->done after it; the tsan
 * preset runs this test, so state of the layer touched outside the monitor
 * fails CI.
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
#include <unistd.h>

#include "bstore/bstore.h"
#include "reactor/reactor.h"
#include "scsi/scsi.h"
#include "util/endian.h"
#include "util/monitor.h"

#define NWORKERS 3              /* reactors 1..3; reactor 0 reads counters */
#define BS 512u
#define NB 8u                   /* blocks a write */
#define ROUNDS 400u

enum step { S_WRITE, S_READ, S_REGISTER, S_READ_KEYS, S_TUR, S_UNREGISTER, S_UA, S_NSTEPS };

struct worker {
	struct isd_reactor_msg start;
	struct isd_reactor *r;
	struct isd_reactor *main_r;
	struct isd_scsi_dev *dev;
	struct isd_scsi_nexus nexus;
	unsigned index;
	struct isd_timer next;
	struct isd_scsi_cmd cmd;
	uint8_t cdb[16];
	uint8_t param[24];
	uint32_t round;
	enum step step;
	uint32_t bad_data, bad_status, wrong_thread, unit_attentions, done_inside;
	bool in_call;
	atomic_int *left;
};

static void run_step(void *arg);

static void
pattern(const struct worker *w, uint32_t round, uint8_t *buf)
{
	for (uint32_t i = 0; i < NB * BS; i++)
		buf[i] = (uint8_t)(w->index * 61u + round * 7u + i);
}

static uint32_t
lba_of(const struct worker *w, uint32_t round)
{
	return (round % 32u * NWORKERS + w->index) * NB;
}

static void
advance(struct worker *w)
{
	if (++w->step == S_NSTEPS) {
		w->step = S_WRITE;
		if (++w->round == ROUNDS) {
			if (atomic_fetch_sub(w->left, 1) == 1)
				isd_reactor_stop(w->main_r);
			return;
		}
	}
	/* the next command from the next turn, not from inside this completion */
	isd_reactor_defer(w->r, &w->next);
}

static void
cmd_done(struct isd_scsi_cmd *cmd)
{
	struct worker *w = cmd->cb_arg;
	uint8_t want[NB * BS];

	if (isd_reactor_current() != w->r)
		w->wrong_thread++;
	/* cmd->done runs once the monitor is left, never inside it */
	if (isd_monitor_current() != NULL)
		w->done_inside++;
	if (cmd->status == ISD_SAM_CHECK_CONDITION && cmd->sense_len >= 14 &&
	    (cmd->sense[2] & 0x0f) == 0x06) {
		/* a unit attention another reactor raised: the same step again */
		w->unit_attentions++;
		isd_scsi_cmd_release(cmd);
		isd_reactor_defer(w->r, &w->next);
		return;
	}
	if (cmd->status != ISD_SAM_GOOD)
		w->bad_status++;
	if (w->step == S_READ && cmd->status == ISD_SAM_GOOD) {
		pattern(w, w->round, want);
		if (cmd->data_in_len != sizeof(want) || cmd->iovcnt < 1 ||
		    memcmp(cmd->iov[0].iov_base, want, sizeof(want)) != 0)
			w->bad_data++;
	}
	if (w->step == S_READ_KEYS && cmd->status == ISD_SAM_GOOD) {
		/* our own key is among the registered ones */
		const uint8_t *d = cmd->iov[0].iov_base;
		uint32_t n = get_be32(d + 4) / 8;
		bool found = false;

		for (uint32_t i = 0; i < n && 8 + 8 * i + 8 <= cmd->data_in_len; i++)
			found |= get_be64(d + 8 + 8 * i) == 0x1000u + w->index;
		if (!found)
			w->bad_data++;
	}
	isd_scsi_cmd_release(cmd);
	advance(w);
}

static void
run_step(void *arg)
{
	struct worker *w = arg;
	struct isd_scsi_cmd *cmd = &w->cmd;
	uint32_t out_len = 0;
	int rc;

	if (w->step == S_UA) {
		/* every nexus of the LU gets CAPACITY DATA HAS CHANGED */
		if (w->index == 1 && w->round % 4 == 0)
			assert_int_equal(isd_scsi_lu_capacity_changed(w->dev, 0), 0);
		advance(w);
		return;
	}
	memset(cmd, 0, sizeof(*cmd));
	memset(w->cdb, 0, sizeof(w->cdb));
	memset(w->param, 0, sizeof(w->param));
	switch (w->step) {
	case S_WRITE:
	case S_READ:
		w->cdb[0] = w->step == S_WRITE ? 0x2a : 0x28;
		put_be32(w->cdb + 2, lba_of(w, w->round));
		put_be16(w->cdb + 7, NB);
		out_len = w->step == S_WRITE ? NB * BS : 0;
		break;
	case S_REGISTER:
	case S_UNREGISTER:
		/* REGISTER AND IGNORE EXISTING KEY: our key, then none */
		w->cdb[0] = 0x5f;
		w->cdb[1] = 0x06;
		put_be32(w->cdb + 5, sizeof(w->param));
		put_be64(w->param + 8, w->step == S_REGISTER ? 0x1000u + w->index : 0);
		out_len = sizeof(w->param);
		break;
	case S_READ_KEYS:
		w->cdb[0] = 0x5e;
		put_be16(w->cdb + 7, 512);
		break;
	case S_TUR:
	default:
		break;
	}
	cmd->dev = w->dev;
	cmd->nexus = &w->nexus;
	cmd->lun = isd_scsi_lun_encode(0);
	cmd->cdb = w->cdb;
	cmd->cdb_len = 16;
	cmd->edtl = out_len != 0 ? out_len : 65536;
	cmd->done = cmd_done;
	cmd->cb_arg = w;
	rc = isd_scsi_cmd_setup(cmd);
	if (rc != ISD_SCSI_SETUP_READY) {
		/* finished in setup (a unit attention, most likely): no done call */
		cmd_done(cmd);
		return;
	}
	if (out_len != 0) {
		if (w->step == S_WRITE)
			pattern(w, w->round, cmd->iov[0].iov_base);
		else
			memcpy(cmd->iov[0].iov_base, w->param, sizeof(w->param));
	}
	isd_scsi_cmd_exec(cmd);
}

static void
start_worker(void *arg)
{
	run_step(arg);
}

/* reactor 0: the counters, read while the workers run (as a scrape would) */
struct reader {
	struct isd_timer t;
	struct isd_reactor *r;
	struct isd_scsi_dev *dev;
	uint64_t reads;
};

static void
read_counters(void *arg)
{
	struct reader *rd = arg;
	struct isd_scsi_lu_info info;
	struct isd_io_stats io;

	assert_int_equal(isd_scsi_dev_lu_info(rd->dev, 0, &info), 0);
	isd_scsi_dev_io_stats(rd->dev, &io);
	rd->reads++;
	isd_reactor_timer_start(rd->r, &rd->t, 1);
}

static void
test_one_device_many_reactors(void **state)
{
	struct isd_reactor_group *g;
	struct isd_scsi_dev *dev;
	struct isd_scsi_lu_cfg cfg;
	struct isd_bstore *bs;
	struct worker w[NWORKERS];
	struct reader rd;
	struct isd_scsi_lu_info info;
	atomic_int left = NWORKERS;
	char err[128];

	(void)state;
	isd_monitor_set_threaded(true);
	assert_int_equal(isd_reactor_group_create(NWORKERS + 1, &g), 0);
	assert_int_equal(isd_scsi_dev_create("iqn.2026-12.test:mt", &dev), 0);
	memset(&cfg, 0, sizeof(cfg));
	assert_int_equal(isd_bstore_open(isd_reactor_group_get(g, 0), "ram:1M", &bs, err,
					 sizeof(err)), 0);
	cfg.bstore = bs;
	cfg.block_size = BS;
	cfg.write_cache = true;
	snprintf(cfg.serial, sizeof(cfg.serial), "MT0");
	assert_int_equal(isd_scsi_dev_add_lu(dev, 0, &cfg), 0);

	memset(w, 0, sizeof(w));
	for (unsigned i = 0; i < NWORKERS; i++) {
		w[i].index = i + 1;
		w[i].r = isd_reactor_group_get(g, i + 1);
		w[i].main_r = isd_reactor_group_get(g, 0);
		w[i].dev = dev;
		w[i].left = &left;
		snprintf(w[i].nexus.initiator_port, sizeof(w[i].nexus.initiator_port),
			 "iqn.2026-12.test:ini%u,i,0x00023d00000%u", i, i + 1);
		snprintf(w[i].nexus.target_port, sizeof(w[i].nexus.target_port),
			 "iqn.2026-12.test:mt,t,0x0001");
		w[i].nexus.rel_tgt_port_id = 1;
		w[i].nexus.id = 100 + i;
		isd_timer_init(&w[i].next, run_step, &w[i]);
		w[i].start.cb = start_worker;
		w[i].start.arg = &w[i];
	}
	memset(&rd, 0, sizeof(rd));
	rd.r = isd_reactor_group_get(g, 0);
	rd.dev = dev;
	isd_timer_init(&rd.t, read_counters, &rd);
	isd_reactor_timer_start(rd.r, &rd.t, 1);

	assert_int_equal(isd_reactor_group_start(g, NULL, 0), 0);
	for (unsigned i = 0; i < NWORKERS; i++)
		isd_reactor_post(w[i].r, &w[i].start);
	assert_int_equal(isd_reactor_run(isd_reactor_group_get(g, 0)), 0);
	isd_reactor_timer_stop(rd.r, &rd.t);
	isd_reactor_group_join(g);

	for (unsigned i = 0; i < NWORKERS; i++) {
		print_message("reactor %u: %u rounds, %u unit attentions\n", w[i].index, w[i].round,
			      w[i].unit_attentions);
		assert_int_equal(w[i].round, ROUNDS);
		assert_int_equal(w[i].bad_data, 0);
		assert_int_equal(w[i].bad_status, 0);
		assert_int_equal(w[i].wrong_thread, 0);
		assert_int_equal(w[i].done_inside, 0);
	}
	/* every command counted once: 5 a round that reach the LU, plus the retries */
	assert_int_equal(isd_scsi_dev_lu_info(dev, 0, &info), 0);
	assert_true(info.io.cmds[ISD_IO_READ] + info.io.cmds[ISD_IO_WRITE] >=
		    (uint64_t)NWORKERS * ROUNDS * 2);
	assert_true(rd.reads > 0);
	isd_scsi_dev_destroy(dev);
	isd_reactor_group_destroy(g);
	isd_monitor_set_threaded(false);
}

/*
 * A LU removed (on reactor 0, where its store was opened) while a command set
 * up on reactor 1 holds it: the release on reactor 1 drops the last hold, and
 * the LU's gone callback and the store's close must still run on reactor 0,
 * outside any monitor (the daemon deregisters the memory there, from tables
 * only reactor 0 touches).
 */
struct removal {
	struct isd_reactor_msg hold_msg, remove_msg, release_msg;
	struct isd_reactor *r0, *r1;
	struct isd_scsi_dev *dev;
	struct isd_scsi_nexus nexus;
	struct isd_scsi_cmd cmd;
	uint8_t cdb[16];
	int setup_rc, remove_rc;
	bool gone_early;
	atomic_int gone_calls;
	struct isd_reactor *gone_on;
	bool gone_inside;
};

static void
removal_gone(void *arg, struct isd_bstore *bs)
{
	struct removal *rm = arg;

	(void)bs;
	rm->gone_on = isd_reactor_current();
	rm->gone_inside = isd_monitor_current() != NULL;
	atomic_fetch_add(&rm->gone_calls, 1);
	isd_reactor_stop(rm->r0);
}

static void
removal_release(void *arg)
{
	struct removal *rm = arg;

	/* reactor 1: the last hold goes here */
	isd_scsi_cmd_release(&rm->cmd);
}

static void
removal_remove(void *arg)
{
	struct removal *rm = arg;

	/* reactor 0: the command holds the LU, so nothing is freed yet */
	rm->remove_rc = isd_scsi_dev_remove_lu(rm->dev, 0, removal_gone, rm);
	rm->gone_early = atomic_load(&rm->gone_calls) != 0;
	isd_reactor_post(rm->r1, &rm->release_msg);
}

static void
removal_hold(void *arg)
{
	struct removal *rm = arg;
	struct isd_scsi_cmd *cmd = &rm->cmd;

	/* reactor 1: a READ set up (holding the LU), not executed; the first
	 * ones of a new nexus may end in setup with a unit attention */
	for (int i = 0; i < 4; i++) {
		memset(cmd, 0, sizeof(*cmd));
		rm->cdb[0] = 0x28;
		put_be16(rm->cdb + 7, 1);
		cmd->dev = rm->dev;
		cmd->nexus = &rm->nexus;
		cmd->lun = isd_scsi_lun_encode(0);
		cmd->cdb = rm->cdb;
		cmd->cdb_len = 10;
		cmd->edtl = BS;
		rm->setup_rc = isd_scsi_cmd_setup(cmd);
		if (rm->setup_rc == ISD_SCSI_SETUP_READY)
			break;
		isd_scsi_cmd_release(cmd);
	}
	isd_reactor_post(rm->r0, &rm->remove_msg);
}

static void
test_removed_lu_freed_on_its_reactor(void **state)
{
	struct isd_reactor_group *g;
	struct isd_scsi_lu_cfg cfg;
	struct isd_bstore *bs;
	struct removal rm;
	char err[128];

	(void)state;
	isd_monitor_set_threaded(true);
	assert_int_equal(isd_reactor_group_create(2, &g), 0);
	memset(&rm, 0, sizeof(rm));
	rm.r0 = isd_reactor_group_get(g, 0);
	rm.r1 = isd_reactor_group_get(g, 1);
	assert_int_equal(isd_scsi_dev_create("iqn.2026-12.test:rm", &rm.dev), 0);
	memset(&cfg, 0, sizeof(cfg));
	assert_int_equal(isd_bstore_open(rm.r0, "ram:64K", &bs, err, sizeof(err)), 0);
	cfg.bstore = bs;
	cfg.block_size = BS;
	snprintf(cfg.serial, sizeof(cfg.serial), "RM0");
	assert_int_equal(isd_scsi_dev_add_lu(rm.dev, 0, &cfg), 0);
	snprintf(rm.nexus.initiator_port, sizeof(rm.nexus.initiator_port),
		 "iqn.2026-12.test:rmini,i,0x00023d000001");
	snprintf(rm.nexus.target_port, sizeof(rm.nexus.target_port),
		 "iqn.2026-12.test:rm,t,0x0001");
	rm.nexus.rel_tgt_port_id = 1;
	rm.nexus.id = 300;
	rm.hold_msg.cb = removal_hold;
	rm.hold_msg.arg = &rm;
	rm.remove_msg.cb = removal_remove;
	rm.remove_msg.arg = &rm;
	rm.release_msg.cb = removal_release;
	rm.release_msg.arg = &rm;

	assert_int_equal(isd_reactor_group_start(g, NULL, 0), 0);
	isd_reactor_post(rm.r1, &rm.hold_msg);
	assert_int_equal(isd_reactor_run(rm.r0), 0);
	isd_reactor_group_join(g);

	assert_int_equal(rm.setup_rc, ISD_SCSI_SETUP_READY);
	assert_int_equal(rm.remove_rc, 0);
	assert_false(rm.gone_early);
	assert_int_equal(atomic_load(&rm.gone_calls), 1);
	assert_ptr_equal(rm.gone_on, rm.r0);
	assert_false(rm.gone_inside);
	isd_scsi_dev_destroy(rm.dev);
	isd_reactor_group_destroy(g);
	isd_monitor_set_threaded(false);
}

/*
 * Fencing against the shared path: reactor 1 keeps writing 0xaa over LBA
 * 0..7 from a nexus that holds no registration, on the shared path (a RAM
 * LU with nothing unusual); once 50 of those writes have landed, reactor 2
 * registers, takes a WRITE EXCLUSIVE reservation and writes 0xbb over the
 * same blocks. Every write of reactor 1 after the reservation must be
 * refused (RESERVATION CONFLICT), so the blocks end as 0xbb: a write that
 * passed its check before the reservation and stored after it, or a check
 * that read the reservation half made, would leave 0xaa there.
 */
#define FENCE_NB 8u

struct fencer;

struct fence_writer {
	struct isd_reactor_msg start;
	struct isd_reactor *r;
	struct isd_scsi_dev *dev;
	struct isd_scsi_nexus nexus;
	struct isd_timer next;
	struct isd_scsi_cmd cmd;
	uint8_t cdb[16];
	uint32_t good, conflicts, unit_attentions, bad;
	bool posted;
	struct fencer *f;
};

struct fencer {
	struct isd_reactor_msg start;
	struct isd_reactor *r, *main_r;
	struct isd_scsi_dev *dev;
	struct isd_scsi_nexus nexus;
	struct isd_timer next;
	struct isd_scsi_cmd cmd;
	uint8_t cdb[16];
	uint8_t param[24];
	unsigned step;                  /* 0 register, 1 reserve, 2 write, 3 done */
	uint32_t unit_attentions, bad;
	atomic_bool stop;
	atomic_int *left;
};

static void fence_write_next(void *arg);
static void fencer_next(void *arg);

static void
fence_finished(struct fencer *f)
{
	if (atomic_fetch_sub(f->left, 1) == 1)
		isd_reactor_stop(f->main_r);
}

static bool
is_ua(const struct isd_scsi_cmd *cmd)
{
	return cmd->status == ISD_SAM_CHECK_CONDITION && cmd->sense_len >= 14 &&
	       (cmd->sense[2] & 0x0f) == 0x06;
}

static void
fence_write_done(struct isd_scsi_cmd *cmd)
{
	struct fence_writer *w = cmd->cb_arg;
	bool stop = atomic_load(&w->f->stop);

	if (cmd->status == ISD_SAM_GOOD)
		w->good++;
	else if (cmd->status == ISD_SAM_RESERVATION_CONFLICT)
		w->conflicts++;
	else if (is_ua(cmd))
		w->unit_attentions++;
	else
		w->bad++;
	isd_scsi_cmd_release(cmd);
	if (w->good >= 50 && !w->posted) {
		w->posted = true;
		isd_reactor_post(w->f->r, &w->f->start);
	}
	/* done once the fencer's write is in and ours was refused after it */
	if ((stop && cmd->status == ISD_SAM_RESERVATION_CONFLICT) || w->good > 2000000u) {
		fence_finished(w->f);
		return;
	}
	isd_reactor_defer(w->r, &w->next);
}

static void
fence_write_next(void *arg)
{
	struct fence_writer *w = arg;
	struct isd_scsi_cmd *cmd = &w->cmd;

	memset(cmd, 0, sizeof(*cmd));
	memset(w->cdb, 0, sizeof(w->cdb));
	w->cdb[0] = 0x2a;
	put_be16(w->cdb + 7, FENCE_NB);
	cmd->dev = w->dev;
	cmd->nexus = &w->nexus;
	cmd->lun = isd_scsi_lun_encode(0);
	cmd->cdb = w->cdb;
	cmd->cdb_len = 10;
	cmd->edtl = FENCE_NB * BS;
	cmd->data_out_staged = true;    /* into a buffer of its own, stored by exec */
	cmd->done = fence_write_done;
	cmd->cb_arg = w;
	if (isd_scsi_cmd_setup(cmd) != ISD_SCSI_SETUP_READY) {
		fence_write_done(cmd);
		return;
	}
	memset(cmd->iov[0].iov_base, 0xaa, FENCE_NB * BS);
	isd_scsi_cmd_exec(cmd);
}

static void
fencer_done(struct isd_scsi_cmd *cmd)
{
	struct fencer *f = cmd->cb_arg;

	if (is_ua(cmd))
		f->unit_attentions++;
	else if (cmd->status != ISD_SAM_GOOD)
		f->bad++;
	else
		f->step++;
	isd_scsi_cmd_release(cmd);
	if (f->bad > 0 || f->step == 3) {
		atomic_store(&f->stop, true);
		fence_finished(f);
		return;
	}
	isd_reactor_defer(f->r, &f->next);
}

static void
fencer_next(void *arg)
{
	struct fencer *f = arg;
	struct isd_scsi_cmd *cmd = &f->cmd;
	uint32_t out_len;

	memset(cmd, 0, sizeof(*cmd));
	memset(f->cdb, 0, sizeof(f->cdb));
	memset(f->param, 0, sizeof(f->param));
	if (f->step == 2) {
		f->cdb[0] = 0x2a;
		put_be16(f->cdb + 7, FENCE_NB);
		out_len = FENCE_NB * BS;
	} else {
		f->cdb[0] = 0x5f;
		if (f->step == 0) {
			f->cdb[1] = 0x06;               /* REGISTER AND IGNORE EXISTING KEY */
			put_be64(f->param + 8, 0xb0b);
		} else {
			f->cdb[1] = 0x01;               /* RESERVE */
			f->cdb[2] = 0x01;               /* LU scope, WRITE EXCLUSIVE */
			put_be64(f->param, 0xb0b);
		}
		put_be32(f->cdb + 5, sizeof(f->param));
		out_len = sizeof(f->param);
	}
	cmd->dev = f->dev;
	cmd->nexus = &f->nexus;
	cmd->lun = isd_scsi_lun_encode(0);
	cmd->cdb = f->cdb;
	cmd->cdb_len = 10;
	cmd->edtl = out_len;
	cmd->data_out_staged = true;
	cmd->done = fencer_done;
	cmd->cb_arg = f;
	if (isd_scsi_cmd_setup(cmd) != ISD_SCSI_SETUP_READY) {
		fencer_done(cmd);
		return;
	}
	if (f->step == 2)
		memset(cmd->iov[0].iov_base, 0xbb, out_len);
	else
		memcpy(cmd->iov[0].iov_base, f->param, out_len);
	isd_scsi_cmd_exec(cmd);
}

static void
test_reservation_fences_the_shared_path(void **state)
{
	struct isd_reactor_group *g;
	struct isd_scsi_dev *dev;
	struct isd_scsi_lu_cfg cfg;
	struct isd_bstore *bs;
	struct fence_writer w;
	struct fencer f;
	atomic_int left = 2;
	const uint8_t *mem;
	char err[128];

	(void)state;
	isd_monitor_set_threaded(true);
	assert_int_equal(isd_reactor_group_create(3, &g), 0);
	assert_int_equal(isd_scsi_dev_create("iqn.2026-12.test:fence", &dev), 0);
	memset(&cfg, 0, sizeof(cfg));
	assert_int_equal(isd_bstore_open(isd_reactor_group_get(g, 0), "ram:1M", &bs, err,
					 sizeof(err)), 0);
	mem = bs->mem_base;
	cfg.bstore = bs;
	cfg.block_size = BS;
	cfg.write_cache = true;
	snprintf(cfg.serial, sizeof(cfg.serial), "FN0");
	assert_int_equal(isd_scsi_dev_add_lu(dev, 0, &cfg), 0);

	memset(&w, 0, sizeof(w));
	memset(&f, 0, sizeof(f));
	w.r = isd_reactor_group_get(g, 1);
	w.dev = dev;
	w.f = &f;
	snprintf(w.nexus.initiator_port, sizeof(w.nexus.initiator_port),
		 "iqn.2026-12.test:fw,i,0x00023d000001");
	snprintf(w.nexus.target_port, sizeof(w.nexus.target_port), "iqn.2026-12.test:fence,t,0x0001");
	w.nexus.rel_tgt_port_id = 1;
	w.nexus.id = 400;
	isd_timer_init(&w.next, fence_write_next, &w);
	w.start.cb = fence_write_next;
	w.start.arg = &w;
	f.r = isd_reactor_group_get(g, 2);
	f.main_r = isd_reactor_group_get(g, 0);
	f.dev = dev;
	f.left = &left;
	snprintf(f.nexus.initiator_port, sizeof(f.nexus.initiator_port),
		 "iqn.2026-12.test:ff,i,0x00023d000002");
	snprintf(f.nexus.target_port, sizeof(f.nexus.target_port), "iqn.2026-12.test:fence,t,0x0001");
	f.nexus.rel_tgt_port_id = 1;
	f.nexus.id = 401;
	isd_timer_init(&f.next, fencer_next, &f);
	f.start.cb = fencer_next;
	f.start.arg = &f;

	assert_int_equal(isd_reactor_group_start(g, NULL, 0), 0);
	isd_reactor_post(w.r, &w.start);
	assert_int_equal(isd_reactor_run(f.main_r), 0);
	isd_reactor_group_join(g);

	print_message("writer: %u good, %u conflicts, %u unit attentions; %llu on the shared path\n",
		      w.good, w.conflicts, w.unit_attentions,
		      (unsigned long long)isd_scsi_dev_shared_cmds(dev));
	assert_int_equal(w.bad, 0);
	assert_int_equal(f.bad, 0);
	assert_int_equal(f.step, 3);
	assert_true(w.good >= 50);
	assert_true(w.conflicts >= 1);
	assert_true(isd_scsi_dev_shared_cmds(dev) >= 50);
	for (uint32_t i = 0; i < FENCE_NB * BS; i++)
		if (mem[i] != 0xbb)
			fail_msg("byte %u is 0x%02x: a write stored past the reservation", i, mem[i]);
	isd_scsi_dev_destroy(dev);
	isd_reactor_group_destroy(g);
	isd_monitor_set_threaded(false);
}

/*
 * A file LU's write gate with writes on the shared path: three reactors each
 * WRITE their own blocks (shared: the gate's writer count from several
 * threads), COMPARE AND WRITE the first of them (a read-modify-write: alone at
 * the gate, under the monitor, waiting for the others' shared writes to
 * drain; the last of those lets it in after its section) and read it all back.
 * Every CAW must compare equal and every byte read must be what was written;
 * a lost wake-up at the gate hangs the test.
 *
 * The same on a RAM LU, whose WRITEs place their data straight in the LU
 * (zero copy, the bytes put in after setup as a transport would): each holds
 * the gate from setup to release, and a COMPARE AND WRITE waits until the
 * other reactors' have been released.
 */
#define GATE_NB 4u
#define GATE_ROUNDS 300u

struct gate_worker {
	struct isd_reactor_msg start;
	struct isd_reactor *r, *main_r;
	struct isd_scsi_dev *dev;
	struct isd_scsi_nexus nexus;
	struct isd_timer next;
	struct isd_scsi_cmd cmd;
	uint8_t cdb[16];
	unsigned index, step;           /* 0 WRITE, 1 COMPARE AND WRITE, 2 READ */
	uint32_t round, bad_status, bad_data, unit_attentions, direct;
	bool ram;
	atomic_int *left;
};

static uint8_t
gate_byte(const struct gate_worker *w, uint32_t round, uint32_t i, bool after_caw)
{
	return (uint8_t)(w->index * 31u + round * 5u + i + (after_caw && i < BS ? 0x80u : 0u));
}

static void gate_next(void *arg);

static void
gate_done(struct isd_scsi_cmd *cmd)
{
	struct gate_worker *w = cmd->cb_arg;

	if (is_ua(cmd)) {
		w->unit_attentions++;
		isd_scsi_cmd_release(cmd);
		isd_reactor_defer(w->r, &w->next);
		return;
	}
	if (cmd->status != ISD_SAM_GOOD)
		w->bad_status++;
	else if (w->step == 2) {
		const uint8_t *d = cmd->iov[0].iov_base;

		if (cmd->data_in_len != GATE_NB * BS || d == NULL)
			w->bad_data++;
		else
			for (uint32_t i = 0; i < GATE_NB * BS; i++)
				if (d[i] != gate_byte(w, w->round, i, true)) {
					w->bad_data++;
					break;
				}
	}
	isd_scsi_cmd_release(cmd);
	if (++w->step == 3) {
		w->step = 0;
		if (++w->round == GATE_ROUNDS) {
			if (atomic_fetch_sub(w->left, 1) == 1)
				isd_reactor_stop(w->main_r);
			return;
		}
	}
	isd_reactor_defer(w->r, &w->next);
}

static void
gate_next(void *arg)
{
	struct gate_worker *w = arg;
	struct isd_scsi_cmd *cmd = &w->cmd;
	uint32_t lba = w->index * 64u, out_len = 0;
	uint8_t *d;

	memset(cmd, 0, sizeof(*cmd));
	memset(w->cdb, 0, sizeof(w->cdb));
	if (w->step == 1) {
		w->cdb[0] = 0x89;
		put_be64(w->cdb + 2, lba);
		w->cdb[13] = 1;
		out_len = 2 * BS;
	} else {
		w->cdb[0] = w->step == 0 ? 0x8a : 0x88;
		put_be64(w->cdb + 2, lba);
		put_be32(w->cdb + 10, GATE_NB);
		out_len = w->step == 0 ? GATE_NB * BS : 0;
	}
	cmd->dev = w->dev;
	cmd->nexus = &w->nexus;
	cmd->lun = isd_scsi_lun_encode(0);
	cmd->cdb = w->cdb;
	cmd->cdb_len = 16;
	cmd->edtl = out_len != 0 ? out_len : GATE_NB * BS;
	cmd->data_out_staged = !w->ram;
	cmd->done = gate_done;
	cmd->cb_arg = w;
	if (isd_scsi_cmd_setup(cmd) != ISD_SCSI_SETUP_READY) {
		gate_done(cmd);
		return;
	}
	d = cmd->iov[0].iov_base;
	if (cmd->data_out_direct)
		w->direct++;
	if (w->step == 0) {
		for (uint32_t i = 0; i < GATE_NB * BS; i++)
			d[i] = gate_byte(w, w->round, i, false);
	} else if (w->step == 1) {
		/* compare with the block just written, write its CAW form */
		for (uint32_t i = 0; i < BS; i++) {
			d[i] = gate_byte(w, w->round, i, false);
			d[BS + i] = gate_byte(w, w->round, i, true);
		}
	}
	isd_scsi_cmd_exec(cmd);
}

/* A lost wake-up leaves every reactor asleep: fail in a minute, not at ctest's timeout. */
static void
gate_watchdog(void *arg)
{
	isd_reactor_stop(arg);
}

static void
gate_with_shared_writers(bool ram)
{
	struct isd_reactor_group *g;
	struct isd_scsi_dev *dev;
	struct isd_scsi_lu_cfg cfg;
	struct isd_bstore *bs;
	struct gate_worker w[NWORKERS];
	struct isd_timer watchdog;
	atomic_int left = NWORKERS;
	const char *dir = access("/var/tmp", W_OK) == 0 ? "/var/tmp" : "/tmp";
	char path[256], spec[300], err[128];
	int fd;

	if (ram) {
		snprintf(spec, sizeof(spec), "ram:1M");
	} else {
		snprintf(path, sizeof(path), "%s/isd-gate-mt.XXXXXX", dir);
		fd = mkstemp(path);
		assert_true(fd >= 0);
		close(fd);
		snprintf(spec, sizeof(spec), "file:%s,size=1M", path);
	}
	isd_monitor_set_threaded(true);
	assert_int_equal(isd_reactor_group_create(NWORKERS + 1, &g), 0);
	assert_int_equal(isd_scsi_dev_create("iqn.2026-12.test:gate", &dev), 0);
	memset(&cfg, 0, sizeof(cfg));
	assert_int_equal(isd_bstore_open(isd_reactor_group_get(g, 0), spec, &bs, err,
					 sizeof(err)), 0);
	if (!ram)
		unlink(path);
	cfg.bstore = bs;
	cfg.block_size = BS;
	cfg.write_cache = true;
	snprintf(cfg.serial, sizeof(cfg.serial), "GT0");
	assert_int_equal(isd_scsi_dev_add_lu(dev, 0, &cfg), 0);

	memset(w, 0, sizeof(w));
	for (unsigned i = 0; i < NWORKERS; i++) {
		w[i].index = i + 1;
		w[i].r = isd_reactor_group_get(g, i + 1);
		w[i].main_r = isd_reactor_group_get(g, 0);
		w[i].dev = dev;
		w[i].left = &left;
		w[i].ram = ram;
		snprintf(w[i].nexus.initiator_port, sizeof(w[i].nexus.initiator_port),
			 "iqn.2026-12.test:gate%u,i,0x00023d00000%u", i, i + 1);
		snprintf(w[i].nexus.target_port, sizeof(w[i].nexus.target_port),
			 "iqn.2026-12.test:gate,t,0x0001");
		w[i].nexus.rel_tgt_port_id = 1;
		w[i].nexus.id = 500 + i;
		isd_timer_init(&w[i].next, gate_next, &w[i]);
		w[i].start.cb = gate_next;
		w[i].start.arg = &w[i];
	}
	isd_timer_init(&watchdog, gate_watchdog, isd_reactor_group_get(g, 0));
	isd_reactor_timer_start(isd_reactor_group_get(g, 0), &watchdog, 60000);
	assert_int_equal(isd_reactor_group_start(g, NULL, 0), 0);
	for (unsigned i = 0; i < NWORKERS; i++)
		isd_reactor_post(w[i].r, &w[i].start);
	assert_int_equal(isd_reactor_run(isd_reactor_group_get(g, 0)), 0);
	isd_reactor_timer_stop(isd_reactor_group_get(g, 0), &watchdog);
	for (unsigned i = 0; i < NWORKERS; i++)
		if (w[i].round != GATE_ROUNDS)
			fail_msg("reactor %u stopped at round %u step %u after a minute: a command "
				 "let in at the gate never ran", w[i].index, w[i].round, w[i].step);
	isd_reactor_group_join(g);

	print_message("%s LU: %llu commands on the shared path\n", ram ? "RAM" : "file",
		      (unsigned long long)isd_scsi_dev_shared_cmds(dev));
	for (unsigned i = 0; i < NWORKERS; i++) {
		assert_int_equal(w[i].round, GATE_ROUNDS);
		assert_int_equal(w[i].bad_status, 0);
		assert_int_equal(w[i].bad_data, 0);
		/* the file store stages every write; on RAM most are zero copy */
		if (ram)
			assert_true(w[i].direct > 0);
		else
			assert_int_equal(w[i].direct, 0);
	}
	/* the WRITEs and READs after the first of each nexus (its unit attention) */
	assert_true(isd_scsi_dev_shared_cmds(dev) >= (uint64_t)NWORKERS * GATE_ROUNDS);
	isd_scsi_dev_destroy(dev);
	isd_reactor_group_destroy(g);
	isd_monitor_set_threaded(false);
}

static void
test_file_gate_with_shared_writers(void **state)
{
	(void)state;
	gate_with_shared_writers(false);
}

static void
test_ram_gate_with_direct_writers(void **state)
{
	(void)state;
	gate_with_shared_writers(true);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_one_device_many_reactors),
		cmocka_unit_test(test_removed_lu_freed_on_its_reactor),
		cmocka_unit_test(test_reservation_fences_the_shared_path),
		cmocka_unit_test(test_file_gate_with_shared_writers),
		cmocka_unit_test(test_ram_gate_with_direct_writers),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
