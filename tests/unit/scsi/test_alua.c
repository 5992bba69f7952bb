/*
 * Implicit ALUA (alua.c): nothing changes without it (TPGS 0, no REPORT
 * TARGET PORT GROUPS); with it INQUIRY TPGS 01b, the Target Port Group
 * designator of VPD 0x83, REPORT TARGET PORT GROUPS in both formats and any
 * allocation length, the commands each access state refuses with the sense
 * SPC-5 gives, and the unit attention a state change establishes.
 */
#include "scsi_harness.h"

#define GROUP 10
#define PEER1 20
#define PEER2 30

static void
alua_on(struct h *h)
{
	struct isd_scsi_alua_cfg a;

	memset(&a, 0, sizeof(a));
	a.group = GROUP;
	a.rtpi = 1;
	a.transition_secs = 30;
	a.npeers = 2;
	a.peers[0].group = PEER1;
	a.peers[0].rtpi = 2;
	a.peers[1].group = PEER2;   /* no port listed */
	assert_int_equal(isd_scsi_dev_set_alua(h->dev, &a), 0);
}

static void
setup_lu(struct h *h, bool alua)
{
	h_init(h);
	h_add_ram_lu(h, 0, false, false);
	if (alua)
		alua_on(h);
	h_clear_ua(h, 0);
}

static struct h_res *
inquiry(struct h *h, bool evpd, uint8_t page)
{
	uint8_t cdb[6] = { 0x12, evpd ? 1 : 0, page, 0x04, 0x00, 0 };

	return h_run(h, 0, 0, cdb, 6, NULL, 0);
}

static struct h_res *
rtpg(struct h *h, int nexus, uint8_t fmt, uint32_t alloc)
{
	uint8_t cdb[12] = { 0xa3, (uint8_t)(fmt << 5 | 0x0a) };

	put_be32(cdb + 6, alloc);
	return h_run(h, nexus, 0, cdb, 12, NULL, 0);
}

/* Finds a designator of type `type` (association target port) in VPD 0x83. */
static const uint8_t *
vpd83_find(const struct h_res *r, uint8_t type)
{
	uint32_t len = get_be16(r->data + 2) + 4;

	for (uint32_t off = 4; off + 4 <= len; off += 4 + r->data[off + 3])
		if ((r->data[off + 1] & 0x0f) == type)
			return r->data + off;
	return NULL;
}

static void
test_off_unchanged(void **state)
{
	struct h h;
	struct h_res *r;
	uint8_t rsoc[12] = { 0xa3, 0x0c, 0x02, 0xa3, 0x00, 0x0a, 0, 0, 0x10, 0 };

	(void)state;
	setup_lu(&h, false);
	r = inquiry(&h, false, 0);
	assert_good(r);
	assert_int_equal(r->data[5] & 0x30, 0);         /* TPGS 00b */
	r = inquiry(&h, true, 0x83);
	assert_good(r);
	assert_null(vpd83_find(r, 0x5));
	assert_non_null(vpd83_find(r, 0x4));
	/* as before ALUA existed: a MAINTENANCE IN service action not implemented */
	r = rtpg(&h, 0, 0, 1024);
	assert_sense(r, ISD_SK_ILLEGAL_REQUEST, 0x24, 0x00);
	assert_int_equal(get_be16(r->sense + 16), 1);
	r = h_run(&h, 0, 0, rsoc, 12, NULL, 0);
	assert_good(r);
	assert_int_equal(r->data[1] & 0x07, 0x01);      /* not supported */
	/* a state set meanwhile changes nothing and raises nothing */
	assert_int_equal(isd_scsi_lu_set_alua_state(h.dev, 0, ISD_ALUA_STANDBY), 0);
	h_tur(&h, 0, 0);
	assert_good(&g_res);
	h_fini(&h);
}

static void
test_inquiry_and_vpd(void **state)
{
	struct h h;
	struct h_res *r;
	const uint8_t *d;

	(void)state;
	setup_lu(&h, true);
	r = inquiry(&h, false, 0);
	assert_good(r);
	assert_int_equal(r->data[5] & 0x30, 0x10);      /* TPGS 01b: implicit only */
	r = inquiry(&h, true, 0x83);
	assert_good(r);
	d = vpd83_find(r, 0x5);
	assert_non_null(d);
	assert_int_equal(d[0], 0x51);                   /* iSCSI, binary */
	assert_int_equal(d[1], 0x95);                   /* PIV, target port, type 5h */
	assert_int_equal(d[3], 4);
	assert_int_equal(get_be16(d + 6), GROUP);
	d = vpd83_find(r, 0x4);
	assert_non_null(d);
	assert_int_equal(get_be16(d + 6), 1);
	/* the LU's NAA designator: 6h, the configured 60 bits, the LUN as extension */
	d = r->data + 4;
	assert_int_equal(d[1] & 0x0f, 0x3);
	assert_int_equal(get_be64(d + 4), (6ull << 60) | 0x0123456789abcdeull);
	assert_int_equal(get_be64(d + 12), 0);
	h_fini(&h);
}

static void
test_naa_extension(void **state)
{
	struct h h;
	struct isd_scsi_lu_cfg cfg;
	struct isd_bstore *bs;
	struct h_res *r;
	char err[128];
	uint8_t cdb[6] = { 0x12, 1, 0x83, 0x04, 0x00, 0 };

	(void)state;
	h_init(&h);
	memset(&cfg, 0, sizeof(cfg));
	assert_int_equal(isd_bstore_open(h.r, "ram:1M", &bs, err, sizeof(err)), 0);
	cfg.bstore = bs;
	cfg.block_size = H_BS;
	cfg.naa_id = 0x1405abcdef01234ull;
	cfg.naa_ext = 0xfeedfacecafebeefull;
	cfg.naa_ext_set = true;
	assert_int_equal(isd_scsi_dev_add_lu(h.dev, 3, &cfg), 0);
	h_clear_ua(&h, 3);
	r = h_run(&h, 0, 3, cdb, 6, NULL, 0);
	assert_good(r);
	assert_int_equal(get_be64(r->data + 8), (6ull << 60) | 0x1405abcdef01234ull);
	assert_int_equal(get_be64(r->data + 16), 0xfeedfacecafebeefull);
	/* a first state that is not one of the five is refused */
	assert_int_equal(isd_bstore_open(h.r, "ram:1M", &bs, err, sizeof(err)), 0);
	cfg.bstore = bs;
	cfg.alua_state = 7;
	assert_int_equal(isd_scsi_dev_add_lu(h.dev, 4, &cfg), -EINVAL);
	isd_bstore_close(bs);
	h_fini(&h);
}

static void
check_desc(const uint8_t *d, uint16_t group, uint8_t st, uint8_t status, uint8_t nports,
	   uint16_t port0)
{
	assert_int_equal(d[0], st);
	assert_int_equal(d[1], 0x8f);           /* T_SUP U_SUP S_SUP AN_SUP AO_SUP */
	assert_int_equal(get_be16(d + 2), group);
	assert_int_equal(d[5], status);
	assert_int_equal(d[7], nports);
	if (nports > 0)
		assert_int_equal(get_be16(d + 10), port0);
}

static void
test_rtpg_formats(void **state)
{
	struct h h;
	struct h_res *r;
	uint8_t full[256];
	uint32_t full_len;

	(void)state;
	setup_lu(&h, true);
	/* length only: 4 + ours (8 + 4) + peer (8 + 4) + peer (8) */
	r = rtpg(&h, 0, 0, 1024);
	assert_good(r);
	assert_int_equal(r->len, 4 + 12 + 12 + 8);
	assert_int_equal(get_be32(r->data), r->len - 4);
	check_desc(r->data + 4, GROUP, ISD_ALUA_ACTIVE_OPTIMIZED, 0, 1, 1);
	check_desc(r->data + 16, PEER1, ISD_ALUA_ACTIVE_NON_OPTIMIZED, 0, 1, 2);
	check_desc(r->data + 28, PEER2, ISD_ALUA_ACTIVE_NON_OPTIMIZED, 0, 0, 0);
	memcpy(full, r->data, r->len);
	full_len = r->len;
	/* extended header: FORMAT TYPE 001b, IMPLICIT TRANSITION TIME */
	r = rtpg(&h, 0, 1, 1024);
	assert_good(r);
	assert_int_equal(r->len, full_len + 4);
	assert_int_equal(get_be32(r->data), r->len - 4);
	assert_int_equal(r->data[4], 0x10);
	assert_int_equal(r->data[5], 30);
	assert_memory_equal(r->data + 8, full + 4, full_len - 4);
	/* every short allocation length gets the first bytes, GOOD */
	for (uint32_t a = 0; a < full_len; a++) {
		r = rtpg(&h, 0, 0, a);
		assert_good(r);
		assert_int_equal(r->len, a);
		if (a > 0)
			assert_memory_equal(r->data, full, a);
	}
	/* where non-owners are kept in standby, the peers are reported so */
	{
		struct isd_scsi_alua_cfg a;

		memset(&a, 0, sizeof(a));
		a.group = GROUP;
		a.rtpi = 1;
		a.npeers = 1;
		a.peers[0].group = PEER1;
		a.peers[0].rtpi = 2;
		a.peer_state = ISD_ALUA_STANDBY;
		assert_int_equal(isd_scsi_dev_set_alua(h.dev, &a), 0);
		r = rtpg(&h, 0, 0, 1024);
		assert_sense(r, ISD_SK_UNIT_ATTENTION, 0x3f, 0x03);     /* regrouped */
		r = rtpg(&h, 0, 0, 1024);
		assert_good(r);
		assert_int_equal(r->len, 4 + 12 + 12);
		check_desc(r->data + 16, PEER1, ISD_ALUA_STANDBY, 0, 1, 2);
		alua_on(&h);
		h_clear_ua(&h, 0);
	}
	/* a nexus on another target port is listed in our group beside ours */
	h.nx[1].rel_tgt_port_id = 7;
	r = rtpg(&h, 1, 0, 1024);
	assert_good(r);
	check_desc(r->data + 4, GROUP, 0, 0, 2, 1);
	assert_int_equal(get_be16(r->data + 4 + 14), 7);
	h_fini(&h);
}

static void
test_rtpg_hostile(void **state)
{
	struct h h;
	struct h_res *r;
	uint8_t cdb[12] = { 0xa3, 0x0a };
	uint8_t rsoc[12] = { 0xa3, 0x0c, 0x02, 0xa3, 0x00, 0x0a, 0, 0, 0x10, 0 };

	(void)state;
	setup_lu(&h, true);
	/* reserved PARAMETER DATA FORMAT values: the field's top bit is pointed at */
	for (uint8_t fmt = 2; fmt < 8; fmt++) {
		r = rtpg(&h, 0, fmt, 1024);
		assert_sense(r, ISD_SK_ILLEGAL_REQUEST, 0x24, 0x00);
		assert_int_equal(r->sense[15], 0x80 | 0x40 | 0x08 | 7);
		assert_int_equal(get_be16(r->sense + 16), 1);
	}
	/* NACA */
	put_be32(cdb + 6, 64);
	cdb[11] = 0x04;
	r = h_run(&h, 0, 0, cdb, 12, NULL, 0);
	assert_sense(r, ISD_SK_ILLEGAL_REQUEST, 0x24, 0x00);
	/* the largest allocation length: the response, no more */
	cdb[11] = 0;
	put_be32(cdb + 6, 0xffffffffu);
	r = h_run(&h, 0, 0, cdb, 12, NULL, 0);
	assert_good(r);
	assert_int_equal(r->len, 36);
	/* a CDB shorter than 12 bytes */
	{
		struct isd_scsi_cmd cmd;

		memset(&cmd, 0, sizeof(cmd));
		cmd.dev = h.dev;
		cmd.nexus = &h.nx[0];
		cmd.lun = isd_scsi_lun_encode(0);
		cmd.cdb = cdb;
		cmd.cdb_len = 10;
		cmd.edtl = 64;
		cmd.done = h_done;
		assert_int_equal(isd_scsi_cmd_setup(&cmd), ISD_SCSI_SETUP_DONE);
		assert_int_equal(cmd.status, ISD_SAM_CHECK_CONDITION);
		assert_int_equal(cmd.sense[12], 0x24);
		isd_scsi_cmd_release(&cmd);
	}
	/* a LUN that is not there */
	put_be32(cdb + 6, 64);
	r = h_run(&h, 0, 9, cdb, 12, NULL, 0);
	assert_sense(r, ISD_SK_ILLEGAL_REQUEST, 0x25, 0x00);
	/* REPORT SUPPORTED OPERATION CODES knows it, with its CDB usage data */
	r = h_run(&h, 0, 0, rsoc, 12, NULL, 0);
	assert_good(r);
	assert_int_equal(r->data[1] & 0x07, 0x03);
	assert_int_equal(get_be16(r->data + 2), 12);
	assert_int_equal(r->data[4], 0xa3);
	assert_int_equal(r->data[5], 0xea);
	/* SET TARGET PORT GROUPS is not offered: an unknown opcode */
	{
		uint8_t stpg[12] = { 0xa4, 0x0a, 0, 0, 0, 0, 0, 0, 0, 4, 0, 0 };

		r = h_run(&h, 0, 0, stpg, 12, NULL, 0);
		assert_sense(r, ISD_SK_ILLEGAL_REQUEST, 0x20, 0x00);
	}
	/* bad configurations and states */
	{
		struct isd_scsi_alua_cfg a;

		memset(&a, 0, sizeof(a));
		a.group = 5;
		a.npeers = 1;
		a.peers[0].group = 5;
		assert_int_equal(isd_scsi_dev_set_alua(h.dev, &a), -EINVAL);
		a.peers[0].group = 0;
		assert_int_equal(isd_scsi_dev_set_alua(h.dev, &a), -EINVAL);
		a.npeers = 2;
		a.peers[0].group = 6;
		a.peers[1].group = 6;
		assert_int_equal(isd_scsi_dev_set_alua(h.dev, &a), -EINVAL);
		a.npeers = ISD_SCSI_ALUA_MAX_PEERS + 1;
		assert_int_equal(isd_scsi_dev_set_alua(h.dev, &a), -EINVAL);
		a.npeers = 0;
		a.peer_state = ISD_ALUA_TRANSITIONING;
		assert_int_equal(isd_scsi_dev_set_alua(h.dev, &a), -EINVAL);
		a.peer_state = 4;
		assert_int_equal(isd_scsi_dev_set_alua(h.dev, &a), -EINVAL);
	}
	assert_int_equal(isd_scsi_lu_set_alua_state(h.dev, 0, (enum isd_scsi_alua_state)4),
			 -EINVAL);
	assert_int_equal(isd_scsi_lu_set_alua_state(h.dev, 9, ISD_ALUA_STANDBY), -ENOENT);
	assert_int_equal(isd_scsi_lu_set_alua_state(NULL, 0, ISD_ALUA_STANDBY), -ENOENT);
	h_fini(&h);
}

/* A command, and what each state answers to it: 0 = processed, else the ASCQ
 * under NOT READY / 04h. */
struct probe {
	const char *name;
	uint8_t cdb[16];
	uint8_t len;
	bool sb;        /* processed in standby */
	bool un;        /* processed in unavailable and transitioning */
};

static const struct probe g_probes[] = {
	{ "TEST UNIT READY", { 0x00 }, 6, false, false },
	{ "READ(10)", { 0x28, 0, 0, 0, 0, 0, 0, 0, 1, 0 }, 10, false, false },
	{ "WRITE(10)", { 0x2a, 0, 0, 0, 0, 0, 0, 0, 1, 0 }, 10, false, false },
	{ "READ CAPACITY(10)", { 0x25 }, 10, true, false },
	{ "READ CAPACITY(16)", { 0x9e, 0x10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 32, 0, 0 }, 16, true,
	  false },
	{ "SYNCHRONIZE CACHE(10)", { 0x35 }, 10, false, false },
	{ "START STOP UNIT", { 0x1b, 0, 0, 0, 1, 0 }, 6, false, false },
	{ "RESERVE(6)", { 0x16 }, 6, false, false },
	{ "INQUIRY", { 0x12, 0, 0, 0, 36, 0 }, 6, true, true },
	{ "REPORT LUNS", { 0xa0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0 }, 12, true, true },
	{ "REQUEST SENSE", { 0x03, 0, 0, 0, 18, 0 }, 6, true, true },
	{ "REPORT TARGET PORT GROUPS", { 0xa3, 0x0a, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0 }, 12, true,
	  true },
	{ "MODE SENSE(6)", { 0x1a, 0, 0x3f, 0, 0xff, 0 }, 6, true, false },
	{ "MODE SENSE(10)", { 0x5a, 0, 0x3f, 0, 0, 0, 0, 0x01, 0, 0 }, 10, true, false },
	{ "PERSISTENT RESERVE IN", { 0x5e, 0, 0, 0, 0, 0, 0, 0x10, 0, 0 }, 10, true, false },
	{ "REPORT SUPPORTED OPERATION CODES", { 0xa3, 0x0c, 0, 0, 0, 0, 0, 0, 0x10, 0, 0, 0 },
	  12, true, false },
};

static void
check_state(struct h *h, enum isd_scsi_alua_state st, uint8_t ascq)
{
	assert_int_equal(isd_scsi_lu_set_alua_state(h->dev, 0, st), 0);
	/* the change is reported once to each nexus first */
	for (int n = 0; n < 3; n++) {
		h_tur(h, n, 0);
		assert_sense(&g_res, ISD_SK_UNIT_ATTENTION, 0x2a, 0x06);
	}
	for (size_t i = 0; i < sizeof(g_probes) / sizeof(g_probes[0]); i++) {
		const struct probe *p = &g_probes[i];
		bool ok = st <= ISD_ALUA_ACTIVE_NON_OPTIMIZED ||
			  (st == ISD_ALUA_STANDBY ? p->sb : p->un);
		struct h_res *r = h_run(h, 0, 0, p->cdb, p->len, "", 0);

		if (ok) {
			assert_good(r);
		} else {
			assert_sense(r, ISD_SK_NOT_READY, 0x04, ascq);
			assert_int_equal(r->sense_len, 18);
		}
	}
}

static void
test_states(void **state)
{
	struct h h;

	(void)state;
	setup_lu(&h, true);
	check_state(&h, ISD_ALUA_STANDBY, 0x0b);
	check_state(&h, ISD_ALUA_UNAVAILABLE, 0x0c);
	check_state(&h, ISD_ALUA_TRANSITIONING, 0x0a);
	check_state(&h, ISD_ALUA_ACTIVE_NON_OPTIMIZED, 0);
	check_state(&h, ISD_ALUA_ACTIVE_OPTIMIZED, 0);
	h_fini(&h);
}

static void
test_transition_ua(void **state)
{
	struct h h;
	struct h_res *r;
	uint8_t rs[6] = { 0x03, 0, 0, 0, 18, 0 };

	(void)state;
	setup_lu(&h, true);
	/* the same state again: no change, nothing raised */
	assert_int_equal(isd_scsi_lu_set_alua_state(h.dev, 0, ISD_ALUA_ACTIVE_OPTIMIZED), 0);
	h_tur(&h, 0, 0);
	assert_good(&g_res);
	assert_int_equal(isd_scsi_lu_set_alua_state(h.dev, 0, ISD_ALUA_ACTIVE_NON_OPTIMIZED), 0);
	/* INQUIRY neither reports nor clears it; REQUEST SENSE reports it */
	r = inquiry(&h, false, 0);
	assert_good(r);
	r = h_run(&h, 0, 0, rs, 6, NULL, 0);
	assert_good(r);
	assert_int_equal(r->data[2] & 0x0f, ISD_SK_UNIT_ATTENTION);
	assert_int_equal(r->data[12], 0x2a);
	assert_int_equal(r->data[13], 0x06);
	h_tur(&h, 0, 0);
	assert_good(&g_res);
	/* nexus 1 still has it; RTPG shows the new state, changed implicitly, and the
	 * peers as owners now */
	r = rtpg(&h, 1, 0, 1024);
	assert_sense(r, ISD_SK_UNIT_ATTENTION, 0x2a, 0x06);
	r = rtpg(&h, 1, 0, 1024);
	assert_good(r);
	check_desc(r->data + 4, GROUP, ISD_ALUA_ACTIVE_NON_OPTIMIZED, 0x02, 1, 1);
	check_desc(r->data + 16, PEER1, ISD_ALUA_ACTIVE_OPTIMIZED, 0, 1, 2);
	/* a LUN reset ranks above it: reported first, the state change after */
	assert_int_equal(isd_scsi_lu_set_alua_state(h.dev, 0, ISD_ALUA_STANDBY), 0);
	assert_int_equal(isd_scsi_lu_reset(h.dev, isd_scsi_lun_encode(0), &h.nx[2]), 0);
	h_tur(&h, 2, 0);
	assert_sense(&g_res, ISD_SK_UNIT_ATTENTION, 0x29, 0x03);
	h_tur(&h, 2, 0);
	assert_sense(&g_res, ISD_SK_UNIT_ATTENTION, 0x2a, 0x06);
	h_tur(&h, 2, 0);
	assert_sense(&g_res, ISD_SK_NOT_READY, 0x04, 0x0b);
	/* a regrouping is INQUIRY DATA HAS CHANGED, the same configuration nothing */
	alua_on(&h);
	h_tur(&h, 2, 0);
	assert_sense(&g_res, ISD_SK_NOT_READY, 0x04, 0x0b);
	assert_int_equal(isd_scsi_dev_set_alua(h.dev, NULL), 0);
	h_tur(&h, 2, 0);
	assert_sense(&g_res, ISD_SK_UNIT_ATTENTION, 0x3f, 0x03);
	h_tur(&h, 2, 0);
	assert_good(&g_res);            /* ALUA off: the standby state is not applied */
	alua_on(&h);
	/* the state is in the LU's description */
	{
		struct isd_scsi_lu_info li;

		assert_int_equal(isd_scsi_dev_lu_info(h.dev, 0, &li), 0);
		assert_int_equal(li.alua_group, GROUP);
		assert_int_equal(li.alua_state, ISD_ALUA_STANDBY);
	}
	h_fini(&h);
}

static void
test_names(void **state)
{
	enum isd_scsi_alua_state st;

	(void)state;
	assert_string_equal(isd_scsi_alua_state_name(ISD_ALUA_ACTIVE_OPTIMIZED), "active/optimized");
	assert_string_equal(isd_scsi_alua_state_name(ISD_ALUA_TRANSITIONING), "transitioning");
	assert_null(isd_scsi_alua_state_name(4));
	assert_null(isd_scsi_alua_state_name(-1));
	assert_int_equal(isd_scsi_alua_state_parse("Standby", &st), 0);
	assert_int_equal(st, ISD_ALUA_STANDBY);
	assert_int_equal(isd_scsi_alua_state_parse("active/non-optimized", &st), 0);
	assert_int_equal(st, ISD_ALUA_ACTIVE_NON_OPTIMIZED);
	assert_int_equal(isd_scsi_alua_state_parse("ao", &st), 0);
	assert_int_equal(st, ISD_ALUA_ACTIVE_OPTIMIZED);
	assert_int_equal(isd_scsi_alua_state_parse("offline", &st), -EINVAL);
	assert_int_equal(isd_scsi_alua_state_parse("", &st), -EINVAL);
	assert_int_equal(isd_scsi_alua_state_parse(NULL, &st), -EINVAL);
	assert_int_equal(isd_scsi_alua_peer_state(ISD_ALUA_ACTIVE_OPTIMIZED, 0),
			 ISD_ALUA_ACTIVE_NON_OPTIMIZED);
	assert_int_equal(isd_scsi_alua_peer_state(ISD_ALUA_ACTIVE_OPTIMIZED, ISD_ALUA_STANDBY),
			 ISD_ALUA_STANDBY);
	assert_int_equal(isd_scsi_alua_peer_state(ISD_ALUA_STANDBY, 0), ISD_ALUA_ACTIVE_OPTIMIZED);
	assert_int_equal(isd_scsi_alua_peer_state(ISD_ALUA_TRANSITIONING, ISD_ALUA_STANDBY),
			 ISD_ALUA_ACTIVE_OPTIMIZED);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_off_unchanged),
		cmocka_unit_test(test_inquiry_and_vpd),
		cmocka_unit_test(test_naa_extension),
		cmocka_unit_test(test_rtpg_formats),
		cmocka_unit_test(test_rtpg_hostile),
		cmocka_unit_test(test_states),
		cmocka_unit_test(test_transition_ua),
		cmocka_unit_test(test_names),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
