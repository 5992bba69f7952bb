/* Persistent reservations (SPC-5 5.14): register/reserve/conflict sequences. */
#include "scsi_harness.h"
#include "scsi/scsi_int.h"

#include <unistd.h>

enum { A = 0, B = 1, C = 2 };

static struct h_res *
pr_out(struct h *h, int nexus, uint8_t sa, uint8_t type, uint64_t key, uint64_t sakey,
       uint8_t flags)
{
	uint8_t cdb[10] = { 0x5f, sa, type, 0, 0, 0, 0, 0, 24, 0 };
	uint8_t p[24];

	memset(p, 0, sizeof(p));
	put_be64(p, key);
	put_be64(p + 8, sakey);
	p[20] = flags;
	return h_run(h, nexus, 0, cdb, 10, p, sizeof(p));
}

static struct h_res *
pr_in(struct h *h, int nexus, uint8_t sa)
{
	uint8_t cdb[10] = { 0x5e, sa, 0, 0, 0, 0, 0, 0x10, 0x00, 0 };

	return h_run(h, nexus, 0, cdb, 10, NULL, 0);
}

static struct h_res *
wr(struct h *h, int nexus)
{
	uint8_t blk[512] = { 1 };

	return h_rw10(h, nexus, 0, 0x2a, 5, 1, blk, sizeof(blk));
}

static struct h_res *
rd(struct h *h, int nexus)
{
	return h_rw10(h, nexus, 0, 0x28, 5, 1, NULL, 0);
}

static void
setup(struct h *h)
{
	h_init(h);
	h_add_ram_lu(h, 0, false, false);
	h_clear_ua(h, 0);
}

static void
test_pr_register_and_keys(void **state)
{
	struct h_res *res;
	struct h h;

	(void)state;
	setup(&h);
	/* unregistered with a non-zero key: conflict */
	assert_status(pr_out(&h, A, 0, 0, 0x99, 0xa, 0), ISD_SAM_RESERVATION_CONFLICT);
	assert_good(pr_out(&h, A, 0, 0, 0, 0xa, 0));
	assert_good(pr_out(&h, B, 0, 0, 0, 0xb, 0));
	res = pr_in(&h, A, 0);
	assert_good(res);
	assert_int_equal(get_be32(res->data), 2);       /* PRgeneration */
	assert_int_equal(get_be32(res->data + 4), 16);
	assert_true(get_be64(res->data + 8) == 0xa);
	assert_true(get_be64(res->data + 16) == 0xb);
	/* re-register with the wrong key: conflict; with the right one: key changes */
	assert_status(pr_out(&h, A, 0, 0, 0xb, 0xaa, 0), ISD_SAM_RESERVATION_CONFLICT);
	assert_good(pr_out(&h, A, 0, 0, 0xa, 0xaa, 0));
	/* REGISTER AND IGNORE EXISTING KEY */
	assert_good(pr_out(&h, A, 6, 0, 0x1234, 0xa, 0));
	res = pr_in(&h, A, 0);
	assert_int_equal(get_be32(res->data), 4);
	assert_true(get_be64(res->data + 8) == 0xa);
	/* APTPL, ALL_TG_PT, SPEC_I_PT are refused: INVALID FIELD IN PARAMETER LIST */
	assert_sense(pr_out(&h, C, 0, 0, 0, 0xc, 0x01), ISD_SK_ILLEGAL_REQUEST, 0x26, 0x00);
	assert_sense(pr_out(&h, C, 0, 0, 0, 0xc, 0x04), ISD_SK_ILLEGAL_REQUEST, 0x26, 0x00);
	assert_sense(pr_out(&h, C, 0, 0, 0, 0xc, 0x08), ISD_SK_ILLEGAL_REQUEST, 0x26, 0x00);
	/* unregister */
	assert_good(pr_out(&h, B, 0, 0, 0xb, 0, 0));
	res = pr_in(&h, A, 0);
	assert_int_equal(get_be32(res->data + 4), 8);
	/* REPORT CAPABILITIES */
	res = pr_in(&h, A, 2);
	assert_good(res);
	assert_int_equal(get_be16(res->data), 8);
	assert_int_equal(res->data[2] & 0x0d, 0);       /* no SIP_C, ATP_C, PTPL_C */
	assert_int_equal(res->data[3] & 0x80, 0x80);    /* TMV */
	assert_int_equal(res->data[4], 0xea);
	assert_int_equal(res->data[5], 0x01);
	/* a truncated parameter list is never acted on */
	{
		uint8_t cdb[10] = { 0x5f, 0, 0, 0, 0, 0, 0, 0, 24, 0 };
		uint8_t p[24] = { 0 };

		put_be64(p + 8, 0xdd);
		assert_sense(h_run_edtl(&h, C, 0, cdb, 10, 16, p, 24), ISD_SK_ILLEGAL_REQUEST,
			     0x1a, 0x00);
		cdb[8] = 28;
		assert_sense(h_run(&h, C, 0, cdb, 10, p, 24), ISD_SK_ILLEGAL_REQUEST, 0x1a, 0);
		assert_int_equal(get_be32(pr_in(&h, A, 0)->data + 4), 8);
	}
	h_fini(&h);
}

static void
test_pr_write_exclusive(void **state)
{
	struct h_res *res;
	struct h h;

	(void)state;
	setup(&h);
	assert_good(pr_out(&h, A, 0, 0, 0, 0xa, 0));
	assert_good(pr_out(&h, B, 0, 0, 0, 0xb, 0));
	/* reserve needs registration and the right key */
	assert_status(pr_out(&h, C, 1, ISD_PR_WE, 0, 0, 0), ISD_SAM_RESERVATION_CONFLICT);
	assert_status(pr_out(&h, A, 1, ISD_PR_WE, 0xb, 0, 0), ISD_SAM_RESERVATION_CONFLICT);
	assert_good(pr_out(&h, A, 1, ISD_PR_WE, 0xa, 0, 0));
	assert_good(pr_out(&h, A, 1, ISD_PR_WE, 0xa, 0, 0));     /* same again: GOOD */
	assert_status(pr_out(&h, A, 1, 0x03, 0xa, 0, 0), ISD_SAM_RESERVATION_CONFLICT);
	assert_status(pr_out(&h, B, 1, ISD_PR_WE, 0xb, 0, 0), ISD_SAM_RESERVATION_CONFLICT);
	res = pr_in(&h, B, 1);
	assert_good(res);
	assert_int_equal(get_be32(res->data + 4), 16);
	assert_true(get_be64(res->data + 8) == 0xa);
	assert_int_equal(res->data[21], 0x01);
	/* Write Exclusive: the holder writes, others (registered or not) only read */
	assert_good(wr(&h, A));
	assert_status(wr(&h, B), ISD_SAM_RESERVATION_CONFLICT);
	assert_status(wr(&h, C), ISD_SAM_RESERVATION_CONFLICT);
	assert_good(rd(&h, B));
	assert_good(rd(&h, C));
	/* SPC-2 RESERVE from a non-holder conflicts while a PR exists */
	{
		uint8_t res6[6] = { 0x16 };

		assert_status(h_run(&h, C, 0, res6, 6, NULL, 0), ISD_SAM_RESERVATION_CONFLICT);
		assert_good(h_run(&h, A, 0, res6, 6, NULL, 0));
	}
	/* RELEASE with the wrong type */
	assert_sense(pr_out(&h, A, 2, 0x03, 0xa, 0, 0), ISD_SK_ILLEGAL_REQUEST, 0x26, 0x04);
	/* RELEASE by a non-holder: GOOD, nothing changes */
	assert_good(pr_out(&h, B, 2, ISD_PR_WE, 0xb, 0, 0));
	assert_status(wr(&h, B), ISD_SAM_RESERVATION_CONFLICT);
	assert_good(pr_out(&h, A, 2, ISD_PR_WE, 0xa, 0, 0));
	assert_good(wr(&h, B));
	res = pr_in(&h, B, 1);
	assert_int_equal(get_be32(res->data + 4), 0);
	h_fini(&h);
}

static void
test_pr_exclusive_access_registrants_only(void **state)
{
	struct h h;

	(void)state;
	setup(&h);
	assert_good(pr_out(&h, A, 0, 0, 0, 0xa, 0));
	assert_good(pr_out(&h, B, 0, 0, 0, 0xb, 0));
	assert_good(pr_out(&h, A, 1, ISD_PR_EA_RO, 0xa, 0, 0));
	assert_good(wr(&h, B));
	assert_good(rd(&h, B));
	assert_status(rd(&h, C), ISD_SAM_RESERVATION_CONFLICT);
	assert_status(wr(&h, C), ISD_SAM_RESERVATION_CONFLICT);
	/* INQUIRY, PR IN and TUR are allowed to everyone */
	assert_good(pr_in(&h, C, 0));
	{
		uint8_t tur[6] = { 0 };
		uint8_t inq[6] = { 0x12, 0, 0, 0, 36 };

		assert_good(h_run(&h, C, 0, tur, 6, NULL, 0));
		assert_good(h_run(&h, C, 0, inq, 6, NULL, 0));
	}
	/* the holder unregisters: an RO reservation goes, registrants hear RELEASED */
	assert_good(pr_out(&h, A, 0, 0, 0xa, 0, 0));
	assert_sense(rd(&h, B), ISD_SK_UNIT_ATTENTION, 0x2a, 0x04);
	assert_good(rd(&h, C));
	h_fini(&h);
}

static void
test_pr_preempt_and_clear(void **state)
{
	struct h_res *res;
	struct h h;

	(void)state;
	setup(&h);
	assert_good(pr_out(&h, A, 0, 0, 0, 0xa, 0));
	assert_good(pr_out(&h, B, 0, 0, 0, 0xb, 0));
	assert_good(pr_out(&h, C, 0, 0, 0, 0xc, 0));
	assert_good(pr_out(&h, A, 1, ISD_PR_WE, 0xa, 0, 0));
	/* preempt with an unknown key: conflict; with key 0 and no holder match: invalid */
	assert_status(pr_out(&h, B, 4, ISD_PR_EA, 0xb, 0x77, 0), ISD_SAM_RESERVATION_CONFLICT);
	assert_sense(pr_out(&h, B, 4, ISD_PR_EA, 0xb, 0, 0), ISD_SK_ILLEGAL_REQUEST, 0x26, 0);
	/* B preempts A's reservation and registration, changing the type */
	assert_good(pr_out(&h, B, 4, ISD_PR_EA, 0xb, 0xa, 0));
	assert_sense(rd(&h, A), ISD_SK_UNIT_ATTENTION, 0x2a, 0x05);
	assert_status(rd(&h, A), ISD_SAM_RESERVATION_CONFLICT);
	assert_sense(rd(&h, C), ISD_SK_UNIT_ATTENTION, 0x2a, 0x04);   /* type changed */
	assert_status(rd(&h, C), ISD_SAM_RESERVATION_CONFLICT);
	assert_good(rd(&h, B));
	res = pr_in(&h, B, 1);
	assert_true(get_be64(res->data + 8) == 0xb);
	assert_int_equal(res->data[21], ISD_PR_EA);
	/* READ FULL STATUS: two registrants, B holds, TransportIDs are iSCSI */
	res = pr_in(&h, B, 3);
	assert_good(res);
	{
		uint32_t off = 8, n = 0, end = 8 + get_be32(res->data + 4);
		bool holder_seen = false;

		while (off < end) {
			const uint8_t *d = res->data + off;
			uint32_t tl = get_be32(d + 20);

			if (d[12] & 1) {
				holder_seen = true;
				assert_true(get_be64(d) == 0xb);
				assert_int_equal(d[13], ISD_PR_EA);
			}
			assert_int_equal(d[24] & 0x0f, 5);
			assert_int_equal(d[24] & 0xc0, 0x40);
			assert_int_equal(tl % 4, 0);
			assert_non_null(strstr((const char *)d + 28, ",i,0x"));
			off += 24 + tl;
			n++;
		}
		assert_int_equal(n, 2);
		assert_true(holder_seen);
	}
	/* PREEMPT of a registrant that holds nothing: only the registration goes */
	assert_good(pr_out(&h, B, 5, ISD_PR_EA, 0xb, 0xc, 0));
	assert_sense(pr_in(&h, C, 0), ISD_SK_UNIT_ATTENTION, 0x2a, 0x05);
	assert_int_equal(get_be32(pr_in(&h, B, 0)->data + 4), 8);
	/* CLEAR: everything goes, the others hear PREEMPTED */
	assert_good(pr_out(&h, A, 0, 0, 0, 0xa, 0));
	assert_status(pr_out(&h, C, 3, 0, 0xc, 0, 0), ISD_SAM_RESERVATION_CONFLICT);
	assert_good(pr_out(&h, B, 3, 0, 0xb, 0, 0));
	assert_sense(rd(&h, A), ISD_SK_UNIT_ATTENTION, 0x2a, 0x03);
	assert_good(rd(&h, A));
	assert_good(wr(&h, C));
	res = pr_in(&h, A, 0);
	assert_int_equal(get_be32(res->data + 4), 0);
	h_fini(&h);
}

static void
test_pr_all_registrants(void **state)
{
	struct h_res *res;
	struct h h;

	(void)state;
	setup(&h);
	assert_good(pr_out(&h, A, 0, 0, 0, 0xa, 0));
	assert_good(pr_out(&h, B, 0, 0, 0, 0xb, 0));
	assert_good(pr_out(&h, A, 1, ISD_PR_WE_AR, 0xa, 0, 0));
	/* every registrant is a holder */
	assert_good(pr_out(&h, B, 1, ISD_PR_WE_AR, 0xb, 0, 0));
	assert_good(wr(&h, B));
	assert_status(wr(&h, C), ISD_SAM_RESERVATION_CONFLICT);
	res = pr_in(&h, C, 1);
	assert_true(get_be64(res->data + 8) == 0);       /* key 0 for all-registrants */
	/* the reservation stays while one registrant is left */
	assert_good(pr_out(&h, A, 0, 0, 0xa, 0, 0));
	assert_status(wr(&h, C), ISD_SAM_RESERVATION_CONFLICT);
	assert_good(pr_out(&h, B, 0, 0, 0xb, 0, 0));
	assert_good(wr(&h, C));
	/* PREEMPT with key 0 of an all-registrants reservation removes everyone else */
	assert_good(pr_out(&h, A, 0, 0, 0, 0xa, 0));
	assert_good(pr_out(&h, B, 0, 0, 0, 0xb, 0));
	assert_good(pr_out(&h, A, 1, ISD_PR_EA_AR, 0xa, 0, 0));
	assert_good(pr_out(&h, A, 4, ISD_PR_WE, 0xa, 0, 0));
	assert_sense(rd(&h, B), ISD_SK_UNIT_ATTENTION, 0x2a, 0x05);
	assert_status(wr(&h, B), ISD_SAM_RESERVATION_CONFLICT);
	assert_good(rd(&h, B));
	res = pr_in(&h, A, 1);
	assert_int_equal(res->data[21], ISD_PR_WE);
	assert_true(get_be64(res->data + 8) == 0xa);
	/* registrations survive the nexus; the key is still there after re-login */
	isd_scsi_nexus_remove(h.dev, &h.nx[A]);
	isd_scsi_nexus_add(h.dev, &h.nx[A]);
	assert_sense(wr(&h, A), ISD_SK_UNIT_ATTENTION, 0x29, 0x00);
	assert_good(wr(&h, A));
	h_fini(&h);
}

/* ---- fencing: commands already under way when the reservation changes ---- */

/* One command held between setup and exec, as a transport holds it while data-out
 * comes in. */
struct pend {
	struct isd_scsi_cmd cmd;
	uint8_t cdb[16];
	int done;
};

static void
pend_done(struct isd_scsi_cmd *cmd)
{
	struct pend *p = cmd->cb_arg;

	p->done++;
}

static int
pend_setup(struct h *h, struct pend *p, int nexus, const uint8_t *cdb, uint32_t len,
	   uint32_t edtl)
{
	memset(p, 0, sizeof(*p));
	memcpy(p->cdb, cdb, len);
	p->cmd.dev = h->dev;
	p->cmd.nexus = &h->nx[nexus];
	p->cmd.lun = isd_scsi_lun_encode(0);
	p->cmd.cdb = p->cdb;
	p->cmd.cdb_len = 16;
	p->cmd.edtl = edtl;
	p->cmd.done = pend_done;
	p->cmd.cb_arg = p;
	return isd_scsi_cmd_setup(&p->cmd);
}

static void
pend_exec(struct h *h, struct pend *p)
{
	isd_scsi_cmd_exec(&p->cmd);
	for (int i = 0; i < 1000 && p->done == 0; i++)
		assert_int_equal(isd_reactor_poll(h->r, 10), 0);
	assert_int_equal(p->done, 1);
}

/* A transport that records which of its tasks the device server aborts. */
#define FAKE_MAX 4
static struct {
	struct isd_scsi_cmd *tasks[FAKE_MAX];
	bool matched[FAKE_MAX];
	int ntasks;
	int calls;
	bool any;
	bool in_flight;                 /* pretend an aborted task's exec is still running */
	void (*drained)(struct isd_scsi_cmd *self);
	struct isd_scsi_cmd *self;
} g_fake;

static void *
fake_abort_begin(void *ctx, struct isd_scsi_cmd *self, void (*drained)(struct isd_scsi_cmd *self))
{
	assert_ptr_equal(ctx, &g_fake);
	g_fake.calls++;
	g_fake.any = false;
	g_fake.drained = drained;
	g_fake.self = self;
	return drained != NULL ? &g_fake : NULL;
}

static bool
fake_abort_one(void *ctx, struct isd_scsi_cmd *victim, void *wait)
{
	bool known = false;

	assert_ptr_equal(ctx, &g_fake);
	assert_true(wait == NULL || wait == &g_fake);
	assert_ptr_not_equal(victim, g_fake.self);
	for (int i = 0; i < g_fake.ntasks; i++) {
		if (g_fake.tasks[i] == victim) {
			g_fake.matched[i] = true;
			known = true;
		}
	}
	assert_true(known);
	g_fake.any = true;
	return false;
}

static bool
fake_abort_end(void *ctx, void *wait)
{
	assert_ptr_equal(ctx, &g_fake);
	assert_ptr_equal(wait, &g_fake);
	if (!g_fake.in_flight || !g_fake.any) {
		g_fake.drained = NULL;
		return false;
	}
	return true;
}

static void
fake_install(struct h *h)
{
	struct isd_scsi_task_ops ops = {
		.abort_begin = fake_abort_begin,
		.abort_one = fake_abort_one,
		.abort_end = fake_abort_end,
		.ctx = &g_fake,
	};

	memset(&g_fake, 0, sizeof(g_fake));
	isd_scsi_dev_set_task_ops(h->dev, &ops);
}

static void
cdb_rw10(uint8_t *cdb, uint8_t op, uint32_t lba, uint16_t nb)
{
	memset(cdb, 0, 10);
	cdb[0] = op;
	put_be32(cdb + 2, lba);
	put_be16(cdb + 7, nb);
}

static bool
mem_is(const void *mem, uint32_t lba, uint32_t nb, uint8_t v)
{
	const uint8_t *p = (const uint8_t *)mem + (size_t)lba * H_BS;

	for (size_t i = 0; i < (size_t)nb * H_BS; i++)
		if (p[i] != v)
			return false;
	return true;
}

/* A staged write (and WRITE SAME) that passed setup stores nothing once its
 * nexus was preempted before its data-out was in: RESERVATION CONFLICT at exec. */
static void
test_pr_recheck_at_store(void **state)
{
	struct pend w, ws;
	uint8_t cdb[16];
	struct h h;

	(void)state;
	setup(&h);
	assert_good(pr_out(&h, A, 0, 0, 0, 0xa, 0));
	assert_good(pr_out(&h, A, 1, ISD_PR_WE, 0xa, 0, 0));
	/* EDTL short of the CDB: a staged buffer, stored at exec */
	cdb_rw10(cdb, 0x2a, 40, 2);
	assert_int_equal(pend_setup(&h, &w, A, cdb, 10, H_BS), ISD_SCSI_SETUP_READY);
	assert_false(w.cmd.data_out_direct);
	memset(w.cmd.iov[0].iov_base, 0x5a, H_BS);
	cdb_rw10(cdb, 0x41, 50, 4);                     /* WRITE SAME(10) */
	assert_int_equal(pend_setup(&h, &ws, A, cdb, 10, H_BS), ISD_SCSI_SETUP_READY);
	memset(ws.cmd.iov[0].iov_base, 0x6b, H_BS);

	assert_good(pr_out(&h, B, 0, 0, 0, 0xb, 0));
	assert_good(pr_out(&h, B, 4, ISD_PR_EA, 0xb, 0xa, 0));

	pend_exec(&h, &w);
	assert_int_equal(w.cmd.status, ISD_SAM_RESERVATION_CONFLICT);
	pend_exec(&h, &ws);
	assert_int_equal(ws.cmd.status, ISD_SAM_RESERVATION_CONFLICT);
	isd_scsi_cmd_release(&w.cmd);
	isd_scsi_cmd_release(&ws.cmd);
	assert_true(mem_is(h.mem[0], 40, 2, 0));
	assert_true(mem_is(h.mem[0], 50, 4, 0));
	h_fini(&h);
}

/* PREEMPT AND ABORT selects every task of the preempted nexus (not the others'),
 * completes only once the transport says their in-flight exec finished, and the
 * preempted nexus hears REGISTRATIONS PREEMPTED then COMMANDS CLEARED BY ANOTHER
 * INITIATOR. */
static void
test_pr_preempt_abort_aborts(void **state)
{
	struct pend aw, ar, br, po;
	uint8_t cdb[16], prm[24];
	struct h h;

	(void)state;
	setup(&h);
	fake_install(&h);
	assert_good(pr_out(&h, A, 0, 0, 0, 0xa, 0));
	assert_good(pr_out(&h, A, 1, ISD_PR_WE, 0xa, 0, 0));
	assert_good(pr_out(&h, B, 0, 0, 0, 0xb, 0));
	cdb_rw10(cdb, 0x2a, 60, 2);
	assert_int_equal(pend_setup(&h, &aw, A, cdb, 10, 2 * H_BS), ISD_SCSI_SETUP_READY);
	assert_true(aw.cmd.data_out_direct);
	cdb_rw10(cdb, 0x28, 60, 2);
	assert_int_equal(pend_setup(&h, &ar, A, cdb, 10, 2 * H_BS), ISD_SCSI_SETUP_READY);
	assert_int_equal(pend_setup(&h, &br, B, cdb, 10, 2 * H_BS), ISD_SCSI_SETUP_READY);

	memset(cdb, 0, sizeof(cdb));
	cdb[0] = 0x5f;
	cdb[1] = 5;                                     /* PREEMPT AND ABORT */
	cdb[2] = ISD_PR_EA;
	cdb[8] = 24;
	assert_int_equal(pend_setup(&h, &po, B, cdb, 10, 24), ISD_SCSI_SETUP_READY);
	memset(prm, 0, sizeof(prm));
	put_be64(prm, 0xb);
	put_be64(prm + 8, 0xa);
	memcpy(po.cmd.iov[0].iov_base, prm, sizeof(prm));
	g_fake.tasks[0] = &aw.cmd;
	g_fake.tasks[1] = &ar.cmd;
	g_fake.tasks[2] = &br.cmd;
	g_fake.tasks[3] = &po.cmd;
	g_fake.ntasks = 4;
	g_fake.in_flight = true;
	g_fake.calls = 0;
	isd_scsi_cmd_exec(&po.cmd);
	assert_int_equal(g_fake.calls, 1);
	assert_true(g_fake.matched[0]);
	assert_true(g_fake.matched[1]);
	assert_false(g_fake.matched[2]);
	/* held until the aborted tasks' I/O is over */
	assert_int_equal(po.done, 0);
	assert_ptr_equal(g_fake.self, &po.cmd);
	g_fake.drained(g_fake.self);
	assert_int_equal(po.done, 1);
	assert_int_equal(po.cmd.status, ISD_SAM_GOOD);
	isd_scsi_cmd_release(&po.cmd);
	isd_scsi_cmd_release(&aw.cmd);
	isd_scsi_cmd_release(&ar.cmd);
	isd_scsi_cmd_release(&br.cmd);

	assert_sense(rd(&h, A), ISD_SK_UNIT_ATTENTION, 0x2a, 0x05);
	assert_sense(rd(&h, A), ISD_SK_UNIT_ATTENTION, 0x2f, 0x00);
	assert_status(rd(&h, A), ISD_SAM_RESERVATION_CONFLICT);
	assert_good(rd(&h, B));                         /* B's own task was not touched */
	h_fini(&h);
}

/* Plain PREEMPT aborts nothing but the writes whose data lands straight in the
 * LU and that the change now forbids; everything else meets the check at exec. */
static void
test_pr_preempt_fences_direct_writes(void **state)
{
	struct pend aw, ar, cw;
	uint8_t cdb[16];
	struct h h;

	(void)state;
	setup(&h);
	fake_install(&h);
	assert_good(pr_out(&h, A, 0, 0, 0, 0xa, 0));
	assert_good(pr_out(&h, A, 1, ISD_PR_WE_RO, 0xa, 0, 0));
	assert_good(pr_out(&h, B, 0, 0, 0, 0xb, 0));
	assert_good(pr_out(&h, C, 0, 0, 0, 0xc, 0));
	cdb_rw10(cdb, 0x2a, 70, 2);
	assert_int_equal(pend_setup(&h, &aw, A, cdb, 10, 2 * H_BS), ISD_SCSI_SETUP_READY);
	assert_int_equal(pend_setup(&h, &cw, C, cdb, 10, 2 * H_BS), ISD_SCSI_SETUP_READY);
	cdb_rw10(cdb, 0x28, 70, 2);
	assert_int_equal(pend_setup(&h, &ar, A, cdb, 10, 2 * H_BS), ISD_SCSI_SETUP_READY);
	g_fake.tasks[0] = &aw.cmd;
	g_fake.tasks[1] = &ar.cmd;
	g_fake.tasks[2] = &cw.cmd;
	g_fake.ntasks = 3;
	g_fake.calls = 0;
	/* B takes A's place as a Write Exclusive holder: A (preempted) loses write access,
	 * C too (a registrant, but WE is not a registrants-only type) */
	assert_good(pr_out(&h, B, 4, ISD_PR_WE, 0xb, 0xa, 0));
	assert_int_equal(g_fake.calls, 1);
	assert_true(g_fake.matched[0]);
	assert_false(g_fake.matched[1]);                /* a read is still allowed under WE */
	assert_true(g_fake.matched[2]);
	pend_exec(&h, &ar);
	assert_int_equal(ar.cmd.status, ISD_SAM_GOOD);
	isd_scsi_cmd_release(&aw.cmd);
	isd_scsi_cmd_release(&ar.cmd);
	isd_scsi_cmd_release(&cw.cmd);
	assert_sense(rd(&h, A), ISD_SK_UNIT_ATTENTION, 0x2a, 0x05);
	assert_sense(rd(&h, A), ISD_SK_UNIT_ATTENTION, 0x2f, 0x00);
	assert_sense(rd(&h, C), ISD_SK_UNIT_ATTENTION, 0x2a, 0x04);     /* type changed */
	assert_sense(rd(&h, C), ISD_SK_UNIT_ATTENTION, 0x2f, 0x00);
	assert_good(rd(&h, C));
	assert_status(wr(&h, C), ISD_SAM_RESERVATION_CONFLICT);
	h_fini(&h);
}

/* An SPC-2 RESERVE ends the other nexuses' RAM-LU writes under way, not its own. */
static void
test_spc2_reserve_fences_direct_writes(void **state)
{
	struct pend aw, bw;
	uint8_t cdb[16];
	struct h h;

	(void)state;
	setup(&h);
	fake_install(&h);
	cdb_rw10(cdb, 0x2a, 80, 2);
	assert_int_equal(pend_setup(&h, &aw, A, cdb, 10, 2 * H_BS), ISD_SCSI_SETUP_READY);
	assert_int_equal(pend_setup(&h, &bw, B, cdb, 10, 2 * H_BS), ISD_SCSI_SETUP_READY);
	g_fake.tasks[0] = &aw.cmd;
	g_fake.tasks[1] = &bw.cmd;
	g_fake.ntasks = 2;
	memset(cdb, 0, sizeof(cdb));
	cdb[0] = 0x16;                                  /* RESERVE(6) */
	assert_good(h_run(&h, B, 0, cdb, 6, NULL, 0));
	assert_int_equal(g_fake.calls, 1);
	assert_true(g_fake.matched[0]);
	assert_false(g_fake.matched[1]);
	isd_scsi_cmd_release(&aw.cmd);
	isd_scsi_cmd_release(&bw.cmd);
	assert_sense(rd(&h, A), ISD_SK_UNIT_ATTENTION, 0x2f, 0x00);
	assert_status(wr(&h, A), ISD_SAM_RESERVATION_CONFLICT);
	h_fini(&h);
}

/* COMPARE AND WRITE on a file LU reads the medium first: a preempt that lands
 * between that read and the write leaves the blocks untouched. */
static void
test_pr_caw_preempted_between_read_and_write(void **state)
{
	char path[] = "/tmp/iserd-test-pr-XXXXXX", spec[64], err[128];
	struct isd_scsi_lu_cfg cfg;
	struct isd_bstore *bs;
	uint8_t cdb[16], buf[2 * H_BS];
	struct h_res *res;
	struct pend caw;
	struct h h;
	int fd;

	(void)state;
	fd = mkstemp(path);
	assert_true(fd >= 0);
	close(fd);
	h_init(&h);
	snprintf(spec, sizeof(spec), "file:%s,size=1M", path);
	assert_int_equal(isd_bstore_open(h.r, spec, &bs, err, sizeof(err)), 0);
	memset(&cfg, 0, sizeof(cfg));
	cfg.bstore = bs;
	cfg.block_size = H_BS;
	assert_int_equal(isd_scsi_dev_add_lu(h.dev, 0, &cfg), 0);
	h_clear_ua(&h, 0);
	assert_good(pr_out(&h, A, 0, 0, 0, 0xa, 0));
	assert_good(pr_out(&h, A, 1, ISD_PR_WE, 0xa, 0, 0));
	assert_good(pr_out(&h, B, 0, 0, 0, 0xb, 0));

	memset(cdb, 0, sizeof(cdb));
	cdb[0] = 0x89;
	put_be64(cdb + 2, 90);
	cdb[13] = 1;
	assert_int_equal(pend_setup(&h, &caw, A, cdb, 16, sizeof(buf)), ISD_SCSI_SETUP_READY);
	memset(buf, 0, H_BS);                           /* compare: the zeros there */
	memset(buf + H_BS, 0x5a, H_BS);                 /* write */
	memcpy(caw.cmd.iov[0].iov_base, buf, sizeof(buf));
	isd_scsi_cmd_exec(&caw.cmd);                    /* the file read is in flight */
	assert_int_equal(caw.done, 0);
	assert_good(pr_out(&h, B, 4, ISD_PR_EA, 0xb, 0xa, 0));
	for (int i = 0; i < 1000 && caw.done == 0; i++)
		assert_int_equal(isd_reactor_poll(h.r, 10), 0);
	assert_int_equal(caw.done, 1);
	assert_int_equal(caw.cmd.status, ISD_SAM_RESERVATION_CONFLICT);
	isd_scsi_cmd_release(&caw.cmd);
	res = h_rw10(&h, B, 0, 0x28, 90, 1, NULL, 0);
	assert_good(res);
	for (int i = 0; i < H_BS; i++)
		assert_int_equal(res->data[i], 0);
	h_fini(&h);
	unlink(path);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_pr_register_and_keys),
		cmocka_unit_test(test_pr_write_exclusive),
		cmocka_unit_test(test_pr_exclusive_access_registrants_only),
		cmocka_unit_test(test_pr_preempt_and_clear),
		cmocka_unit_test(test_pr_all_registrants),
		cmocka_unit_test(test_pr_recheck_at_store),
		cmocka_unit_test(test_pr_preempt_abort_aborts),
		cmocka_unit_test(test_pr_preempt_fences_direct_writes),
		cmocka_unit_test(test_spc2_reserve_fences_direct_writes),
		cmocka_unit_test(test_pr_caw_preempted_between_read_and_write),
	};

	return cmocka_run_group_tests_name("scsi_pr", tests, NULL, NULL);
}
