/*
 * EXTENDED COPY between two devices, from two reactors at once: reactor 1
 * runs copies on device A from A's LU into B's, reactor 2 copies on device B
 * from B's LU into A's (the opposite direction, so each copy looks into the
 * other device while that device's own reactor runs in it), while reactor 3
 * adds and removes LUs on both devices (the LU tables the designator lookup
 * walks). Every copy must end GOOD (or with the unit attention the LU changes
 * raise, then it is sent again), its data must arrive, and its completion
 * must run on the reactor that sent it. Under the tsan preset, a LU of the
 * other device read outside that device's monitor, or a table read outside
 * the registry's mutex, fails the test; a copy that waited for the other
 * device's monitor while holding its own would hang it (two copies in
 * opposite directions).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bstore/bstore.h"
#include "reactor/reactor.h"
#include "scsi/scsi.h"
#include "util/endian.h"
#include "util/monitor.h"

#define BS 512u
#define NB 64u                  /* blocks a copy */
#define SLOTS 16u               /* where a round's copy goes: slot * NB */
#define ROUNDS 300u
#define CHURN_ROUNDS 400u
#define XC_HDR 16
#define XC_TGT 32
#define XC_SEG 28
#define LIST_LEN (XC_HDR + 2 * XC_TGT + XC_SEG)

static const uint64_t naa_a = 0x0a0a0a0a0a01ull, naa_b = 0x0b0b0b0b0b01ull;

struct copier {
	struct isd_reactor_msg start;
	struct isd_reactor *r;
	struct isd_reactor *main_r;
	struct isd_scsi_dev *dev;       /* the copy runs here ... */
	uint64_t src_naa, dst_naa;      /* ... from this LU 0 into that one */
	uint32_t base;                  /* first block of its area */
	struct isd_scsi_nexus nexus;
	struct isd_timer next;
	struct isd_scsi_cmd cmd;
	uint8_t cdb[16];
	uint32_t round;
	uint32_t bad_status, wrong_thread, done_inside, unit_attentions, busy;
	atomic_int *left;
};

struct churner {
	struct isd_reactor_msg start;
	struct isd_reactor *r;
	struct isd_reactor *main_r;
	struct isd_scsi_dev *dev[2];
	struct isd_timer next;
	uint32_t round;
	atomic_int *left;
};

static void
finished(atomic_int *left, struct isd_reactor *main_r)
{
	if (atomic_fetch_sub(left, 1) == 1)
		isd_reactor_stop(main_r);
}

static void
naa(uint64_t id, uint32_t lun, uint8_t out[16])
{
	put_be64(out, (6ull << 60) | id);
	put_be64(out + 8, lun);
}

/* One block to block segment: the round's slot of src's area into dst's. */
static void
build_list(const struct copier *c, uint8_t *p)
{
	uint8_t *t = p + XC_HDR, *s = p + XC_HDR + 2 * XC_TGT;
	uint64_t lba = c->base + (uint64_t)(c->round % SLOTS) * NB;

	memset(p, 0, LIST_LEN);
	p[1] = 0x03 << 3;               /* LIST ID USAGE 11b: nothing held */
	put_be16(p + 2, 2 * XC_TGT);
	put_be32(p + 8, XC_SEG);
	for (int i = 0; i < 2; i++) {
		uint8_t *d = t + i * XC_TGT;

		d[0] = 0xe4;
		d[4] = 0x01;
		d[5] = 0x03;
		d[7] = 16;
		naa(i == 0 ? c->src_naa : c->dst_naa, 0, d + 8);
		put_be24(d + 29, BS);
	}
	s[0] = 0x02;
	put_be16(s + 2, XC_SEG - 4);
	put_be16(s + 4, 0);
	put_be16(s + 6, 1);
	put_be16(s + 10, NB);
	put_be64(s + 12, lba);
	put_be64(s + 20, lba);
}

static void copy_next(void *arg);

static void
copy_done(struct isd_scsi_cmd *cmd)
{
	struct copier *c = cmd->cb_arg;

	if (isd_reactor_current() != c->r)
		c->wrong_thread++;
	if (isd_monitor_current() != NULL)
		c->done_inside++;
	isd_scsi_cmd_release(cmd);
	if (cmd->status == ISD_SAM_CHECK_CONDITION && cmd->sense_len >= 14 &&
	    (cmd->sense[2] & 0x0f) == 0x06) {
		/* REPORTED LUNS DATA HAS CHANGED from the churn: send it again */
		c->unit_attentions++;
	} else if (cmd->status == ISD_SAM_BUSY) {
		c->busy++;
	} else {
		if (cmd->status != ISD_SAM_GOOD)
			c->bad_status++;
		if (++c->round == ROUNDS) {
			finished(c->left, c->main_r);
			return;
		}
	}
	isd_reactor_defer(c->r, &c->next);
}

static void
copy_next(void *arg)
{
	struct copier *c = arg;
	struct isd_scsi_cmd *cmd = &c->cmd;

	memset(cmd, 0, sizeof(*cmd));
	memset(c->cdb, 0, sizeof(c->cdb));
	c->cdb[0] = 0x83;
	put_be32(c->cdb + 10, LIST_LEN);
	cmd->dev = c->dev;
	cmd->nexus = &c->nexus;
	cmd->lun = isd_scsi_lun_encode(0);
	cmd->cdb = c->cdb;
	cmd->cdb_len = 16;
	cmd->edtl = LIST_LEN;
	cmd->done = copy_done;
	cmd->cb_arg = c;
	if (isd_scsi_cmd_setup(cmd) != ISD_SCSI_SETUP_READY) {
		/* finished in setup (a unit attention): no done call */
		copy_done(cmd);
		return;
	}
	build_list(c, cmd->iov[0].iov_base);
	isd_scsi_cmd_exec(cmd);
}

static void
start_copier(void *arg)
{
	copy_next(arg);
}

/* Reactor 3: LUNs 1..3 of both devices come and go, each on a store of its own. */
static void
churn(void *arg)
{
	struct churner *ch = arg;
	struct isd_scsi_dev *dev = ch->dev[ch->round % 2];
	uint32_t lun = 1 + ch->round / 2 % 3;
	struct isd_scsi_lu_cfg cfg;
	struct isd_bstore *bs;
	char err[128];

	if (isd_scsi_dev_remove_lu(dev, lun, NULL, NULL) == -ENOENT) {
		memset(&cfg, 0, sizeof(cfg));
		assert_int_equal(isd_bstore_open(ch->r, "ram:64K", &bs, err, sizeof(err)), 0);
		cfg.bstore = bs;
		cfg.block_size = BS;
		snprintf(cfg.serial, sizeof(cfg.serial), "CH%u", lun);
		cfg.naa_id = 0x0c0c0c0c0c00ull + ch->round;
		assert_int_equal(isd_scsi_dev_add_lu(dev, lun, &cfg), 0);
	}
	if (++ch->round == CHURN_ROUNDS) {
		finished(ch->left, ch->main_r);
		return;
	}
	isd_reactor_timer_start(ch->r, &ch->next, 0);
}

static void
start_churner(void *arg)
{
	churn(arg);
}

static void *
add_lu(struct isd_reactor *r, struct isd_scsi_dev *dev, uint64_t naa_id)
{
	struct isd_scsi_lu_cfg cfg;
	struct isd_bstore *bs;
	char err[128];

	memset(&cfg, 0, sizeof(cfg));
	assert_int_equal(isd_bstore_open(r, "ram:4M", &bs, err, sizeof(err)), 0);
	cfg.bstore = bs;
	cfg.block_size = BS;
	cfg.write_cache = true;
	snprintf(cfg.serial, sizeof(cfg.serial), "XM%llx", (unsigned long long)naa_id);
	cfg.naa_id = naa_id;
	assert_int_equal(isd_scsi_dev_add_lu(dev, 0, &cfg), 0);
	return bs->mem_base;
}

static void
test_copies_both_ways_from_two_reactors(void **state)
{
	struct isd_reactor_group *g;
	struct isd_scsi_dev *dev_a, *dev_b;
	struct copier c[2];
	struct churner ch;
	atomic_int left = 3;
	uint8_t *mem_a, *mem_b;
	const size_t area = (size_t)SLOTS * NB * BS;

	(void)state;
	isd_monitor_set_threaded(true);
	assert_int_equal(isd_reactor_group_create(4, &g), 0);
	assert_int_equal(isd_scsi_dev_create("iqn.2026-12.test:xa", &dev_a), 0);
	assert_int_equal(isd_scsi_dev_create("iqn.2026-12.test:xb", &dev_b), 0);
	mem_a = add_lu(isd_reactor_group_get(g, 0), dev_a, naa_a);
	mem_b = add_lu(isd_reactor_group_get(g, 0), dev_b, naa_b);
	/* A's first area goes to B, B's second area to A */
	memset(mem_a, 0xa5, area);
	memset(mem_b, 0, area);
	memset(mem_b + area, 0x5b, area);
	memset(mem_a + area, 0, area);

	memset(c, 0, sizeof(c));
	for (unsigned i = 0; i < 2; i++) {
		c[i].r = isd_reactor_group_get(g, i + 1);
		c[i].main_r = isd_reactor_group_get(g, 0);
		c[i].dev = i == 0 ? dev_a : dev_b;
		c[i].src_naa = i == 0 ? naa_a : naa_b;
		c[i].dst_naa = i == 0 ? naa_b : naa_a;
		c[i].base = i * SLOTS * NB;
		c[i].left = &left;
		snprintf(c[i].nexus.initiator_port, sizeof(c[i].nexus.initiator_port),
			 "iqn.2026-12.test:xini%u,i,0x00023d00000%u", i, i + 1);
		snprintf(c[i].nexus.target_port, sizeof(c[i].nexus.target_port),
			 "iqn.2026-12.test:x%c,t,0x0001", i == 0 ? 'a' : 'b');
		c[i].nexus.rel_tgt_port_id = 1;
		c[i].nexus.id = 200 + i;
		isd_timer_init(&c[i].next, copy_next, &c[i]);
		c[i].start.cb = start_copier;
		c[i].start.arg = &c[i];
	}
	memset(&ch, 0, sizeof(ch));
	ch.r = isd_reactor_group_get(g, 3);
	ch.main_r = isd_reactor_group_get(g, 0);
	ch.dev[0] = dev_a;
	ch.dev[1] = dev_b;
	ch.left = &left;
	isd_timer_init(&ch.next, churn, &ch);
	ch.start.cb = start_churner;
	ch.start.arg = &ch;

	assert_int_equal(isd_reactor_group_start(g, NULL, 0), 0);
	isd_reactor_post(c[0].r, &c[0].start);
	isd_reactor_post(c[1].r, &c[1].start);
	isd_reactor_post(ch.r, &ch.start);
	assert_int_equal(isd_reactor_run(isd_reactor_group_get(g, 0)), 0);
	isd_reactor_group_join(g);

	for (unsigned i = 0; i < 2; i++) {
		print_message("copier %u: %u copies, %u unit attentions, %u busy\n", i, c[i].round,
			      c[i].unit_attentions, c[i].busy);
		assert_int_equal(c[i].round, ROUNDS);
		assert_int_equal(c[i].bad_status, 0);
		assert_int_equal(c[i].wrong_thread, 0);
		assert_int_equal(c[i].done_inside, 0);
	}
	for (size_t i = 0; i < area; i++) {
		if (mem_b[i] != 0xa5 || mem_a[area + i] != 0x5b)
			fail_msg("copied data differs at byte %zu", i);
	}
	isd_scsi_dev_destroy(dev_a);
	isd_scsi_dev_destroy(dev_b);
	isd_reactor_group_destroy(g);
	isd_monitor_set_threaded(false);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_copies_both_ways_from_two_reactors),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
