/* CDB decoding: a table of commands and what setup/exec must answer, unit
 * attentions, missing LUNs, REPORT SUPPORTED OPERATION CODES. */
#include "scsi_harness.h"
#include "scsi/scsi_int.h"

#define CAP H_BLOCKS

struct row {
	const char *what;
	uint8_t cdb[16];
	uint32_t cdb_len;
	uint8_t status;
	uint8_t key, asc, ascq;
	int xfer;               /* expected xfer_len after setup, -1: don't care */
	uint32_t edtl;          /* 0: 16 MiB */
};

#define GOOD(x) ISD_SAM_GOOD, 0, 0, 0, x, 0
#define CC(k, a, q) ISD_SAM_CHECK_CONDITION, k, a, q, -1, 0
/* with an EDTL of e bytes */
#define GOOD_E(x, e) ISD_SAM_GOOD, 0, 0, 0, x, e
#define CC_E(k, a, q, e) ISD_SAM_CHECK_CONDITION, k, a, q, -1, e
#define IR ISD_SK_ILLEGAL_REQUEST
#define BE32(v) (uint8_t)((v) >> 24), (uint8_t)((v) >> 16), (uint8_t)((v) >> 8), (uint8_t)(v)
#define BE16(v) (uint8_t)((v) >> 8), (uint8_t)(v)

static const struct row g_rows[] = {
	{ "TUR", { 0x00 }, 6, GOOD(0) },
	{ "unknown opcode", { 0xff }, 16, CC(IR, 0x20, 0x00) },
	{ "unknown opcode 0x02", { 0x02 }, 6, CC(IR, 0x20, 0x00) },
	{ "NACA set", { 0x00, 0, 0, 0, 0, 0x04 }, 6, CC(IR, 0x24, 0x00) },
	{ "READ10 last block", { 0x28, 0, BE32(CAP - 1), 0, BE16(1) }, 10, GOOD(512) },
	{ "READ10 past end", { 0x28, 0, BE32(CAP - 1), 0, BE16(2) }, 10, CC(IR, 0x21, 0x00) },
	{ "READ10 0 blocks at capacity", { 0x28, 0, BE32(CAP), 0, BE16(0) }, 10, GOOD(0) },
	{ "READ10 0 blocks past capacity", { 0x28, 0, BE32(CAP + 1), 0, BE16(0) }, 10,
	  CC(IR, 0x21, 0x00) },
	{ "READ10 LBA -1", { 0x28, 0, BE32(0xffffffffu), 0, BE16(1) }, 10, CC(IR, 0x21, 0x00) },
	{ "READ10 RDPROTECT", { 0x28, 0x20, 0, 0, 0, 0, 0, BE16(1) }, 10, CC(IR, 0x24, 0x00) },
	{ "READ10 FUA DPO", { 0x28, 0x18, 0, 0, 0, 0, 0, BE16(1) }, 10, GOOD(512) },
	{ "READ6 length 0 is 256", { 0x08, 0, 0, 0, 0 }, 6, GOOD(256 * 512) },
	{ "READ6 21-bit LBA", { 0x08, 0xff, 0xff, 0xff, 1 }, 6, CC(IR, 0x21, 0x00) },
	{ "READ12", { 0xa8, 0, BE32(10), BE32(4) }, 12, GOOD(4 * 512) },
	{ "READ16 huge LBA", { 0x88, 0, 0x80, 0, 0, 0, 0, 0, 0, 0, BE32(1) }, 16,
	  CC(IR, 0x21, 0x00) },
	{ "READ16 wrap", { 0x88, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, BE32(2) }, 16,
	  CC(IR, 0x21, 0x00) },
	{ "READ12 over max transfer", { 0xa8, 0, 0, 0, 0, 0, BE32(0x10000000) }, 12,
	  CC(IR, 0x21, 0x00) },
	{ "WRITE10", { 0x2a, 0, BE32(0), 0, BE16(2) }, 10, GOOD(1024) },
	{ "WRITE10 WRPROTECT", { 0x2a, 0x40, BE32(0), 0, BE16(2) }, 10, CC(IR, 0x24, 0x00) },
	{ "WRITE10 0 blocks", { 0x2a, 0, BE32(0), 0, BE16(0) }, 10, GOOD(0) },
	{ "WRITE6 0 is 256", { 0x0a, 0, 0, 0, 0 }, 6, GOOD(256 * 512) },
	{ "WRITE16 past end", { 0x8a, 0, 0, 0, 0, 0, BE32(CAP), BE32(1) }, 16, CC(IR, 0x21, 0x00) },
	{ "WRITE AND VERIFY10 BYTCHK 2", { 0x2e, 0x04, BE32(0), 0, BE16(1) }, 10,
	  CC(IR, 0x24, 0x00) },
	{ "VERIFY10 BYTCHK 0", { 0x2f, 0, BE32(0), 0, BE16(8) }, 10, GOOD(0) },
	{ "VERIFY10 BYTCHK 1", { 0x2f, 0x02, BE32(0), 0, BE16(8) }, 10, GOOD(8 * 512) },
	{ "VERIFY16 BYTCHK 3", { 0x8f, 0x06, 0, 0, 0, 0, BE32(0), BE32(8) }, 16, GOOD(512) },
	{ "VERIFY10 past end", { 0x2f, 0, BE32(CAP), 0, BE16(1) }, 10, CC(IR, 0x21, 0x00) },
	{ "SYNC CACHE10", { 0x35, 0, 0, 0, 0, 0, 0, 0, 0 }, 10, GOOD(0) },
	{ "SYNC CACHE10 past end", { 0x35, 0, BE32(CAP - 1), 0, BE16(2) }, 10, CC(IR, 0x21, 0x00) },
	{ "SYNC CACHE16", { 0x91, 0, 0, 0, 0, 0, BE32(5), BE32(5) }, 16, GOOD(0) },
	/* WSNZ 1: 0 blocks is refused */
	{ "WRITE SAME10 0 blocks (WSNZ)", { 0x41, 0, BE32(CAP - 2), 0, BE16(0) }, 10,
	  CC_E(IR, 0x24, 0x00, 512) },
	{ "WRITE SAME10 ANCHOR", { 0x41, 0x10, BE32(0), 0, BE16(1) }, 10, CC(IR, 0x24, 0x00) },
	{ "WRITE SAME10", { 0x41, 0, BE32(0), 0, BE16(3) }, 10, GOOD_E(512, 512) },
	/* a data-out of other than one block: refused before any arrives */
	{ "WRITE SAME10 EDTL 2 blocks", { 0x41, 0, BE32(0), 0, BE16(3) }, 10,
	  CC_E(IR, 0x24, 0x00, 1024) },
	{ "WRITE SAME16 EDTL half a block", { 0x93, 0, 0, 0, 0, 0, BE32(0), BE32(3) }, 16,
	  CC_E(IR, 0x24, 0x00, 256) },
	{ "WRITE SAME16 NDOB", { 0x93, 0x01, 0, 0, 0, 0, BE32(0), BE32(3) }, 16, GOOD(0) },
	{ "WRITE SAME16 past end", { 0x93, 0, 0, 0, 0, 0, BE32(CAP - 1), BE32(3) }, 16,
	  CC(IR, 0x21, 0x00) },
	{ "UNMAP ANCHOR", { 0x42, 0x01, 0, 0, 0, 0, 0, BE16(24) }, 10, CC(IR, 0x24, 0x00) },
	{ "UNMAP length 0", { 0x42, 0, 0, 0, 0, 0, 0, BE16(0) }, 10, GOOD(0) },
	{ "UNMAP length 4", { 0x42, 0, 0, 0, 0, 0, 0, BE16(4) }, 10, CC(IR, 0x1a, 0x00) },
	{ "UNMAP", { 0x42, 0, 0, 0, 0, 0, 0, BE16(24) }, 10, GOOD(24) },
	{ "CAW past end", { 0x89, 0, 0, 0, 0, 0, BE32(CAP - 1), 0, 0, 0, 2 }, 16,
	  CC(IR, 0x21, 0x00) },
	/* the table runs with EDTL 16 MiB: data for a 0-block CAW means a wrapped count */
	{ "CAW 0 blocks with data", { 0x89, 0, 0, 0, 0, 0, BE32(0), 0, 0, 0, 0 }, 16,
	  CC(IR, 0x24, 0x00) },
	{ "CAW 2 blocks", { 0x89, 0, 0, 0, 0, 0, BE32(0), 0, 0, 0, 2 }, 16, GOOD_E(2048, 2048) },
	{ "CAW 2 blocks EDTL 16 MiB", { 0x89, 0, 0, 0, 0, 0, BE32(0), 0, 0, 0, 2 }, 16,
	  CC(IR, 0x24, 0x00) },
	{ "CAW 3 blocks EDTL 4 blocks", { 0x89, 0, 0, 0, 0, 0, BE32(0), 0, 0, 0, 3 }, 16,
	  CC_E(IR, 0x24, 0x00, 2048) },
	{ "ORWRITE", { 0x8b, 0, 0, 0, 0, 0, BE32(CAP - 2), BE32(2) }, 16, GOOD(1024) },
	{ "ORWRITE 0 blocks", { 0x8b, 0, 0, 0, 0, 0, BE32(CAP), BE32(0) }, 16, GOOD(0) },
	{ "ORWRITE 0 blocks past end", { 0x8b, 0, 0, 0, 0, 0, BE32(CAP + 1), BE32(0) }, 16,
	  CC(IR, 0x21, 0x00) },
	{ "ORWRITE past end", { 0x8b, 0, 0, 0, 0, 0, BE32(CAP - 1), BE32(2) }, 16,
	  CC(IR, 0x21, 0x00) },
	{ "ORWRITE LBA 2^63", { 0x8b, 0, 0x80, 0, 0, 0, 0, 0, 0, 0, BE32(1) }, 16,
	  CC(IR, 0x21, 0x00) },
	{ "ORWRITE ORPROTECT", { 0x8b, 0x20, 0, 0, 0, 0, BE32(0), BE32(1) }, 16,
	  CC(IR, 0x24, 0x00) },
	{ "ORWRITE over max transfer", { 0x8b, 0, 0, 0, 0, 0, BE32(0), BE32(0x10000000) }, 16,
	  CC(IR, 0x21, 0x00) },
	{ "PRE-FETCH10", { 0x34, 0x02, BE32(CAP - 8), 0x03, BE16(8) }, 10, GOOD(0) },
	{ "PRE-FETCH10 0 blocks", { 0x34, 0, BE32(5), 0, BE16(0) }, 10, GOOD(0) },
	{ "PRE-FETCH10 0 blocks at capacity", { 0x34, 0, BE32(CAP), 0, BE16(0) }, 10,
	  CC(IR, 0x21, 0x00) },
	{ "PRE-FETCH10 past end", { 0x34, 0, BE32(CAP - 1), 0, BE16(2) }, 10, CC(IR, 0x21, 0x00) },
	{ "PRE-FETCH10 LBA -1", { 0x34, 0, BE32(0xffffffffu), 0, BE16(1) }, 10,
	  CC(IR, 0x21, 0x00) },
	{ "PRE-FETCH16", { 0x90, 0, 0, 0, 0, 0, BE32(0), BE32(CAP) }, 16, GOOD(0) },
	{ "PRE-FETCH16 wrap", { 0x90, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, BE32(2) },
	  16, CC(IR, 0x21, 0x00) },
	{ "READ DEFECT DATA10", { 0x37, 0, 0x18, 0, 0, 0, 0, BE16(32) }, 10, GOOD(32) },
	{ "READ DEFECT DATA10 format 7", { 0x37, 0, 0x07, 0, 0, 0, 0, BE16(32) }, 10,
	  CC(IR, 0x24, 0x00) },
	{ "READ DEFECT DATA12", { 0xb7, 0x05, 0, 0, 0, 0, BE32(32) }, 12, GOOD(32) },
	{ "READ DEFECT DATA12 format 7", { 0xb7, 0x1f, 0, 0, 0, 0, BE32(32) }, 12,
	  CC(IR, 0x24, 0x00) },
	{ "READ CAPACITY10 PMI 0 LBA 1", { 0x25, 0, BE32(1), 0, 0, 0, 0 }, 10, CC(IR, 0x24, 0x00) },
	{ "READ CAPACITY10", { 0x25 }, 10, GOOD(8) },
	{ "READ CAPACITY16", { 0x9e, 0x10, 0, 0, 0, 0, 0, 0, 0, 0, BE32(32) }, 16, GOOD(32) },
	{ "SERVICE ACTION IN unknown SA", { 0x9e, 0x11 }, 16, CC(IR, 0x24, 0x00) },
	{ "GET LBA STATUS at capacity", { 0x9e, 0x12, 0, 0, 0, 0, BE32(CAP), BE32(24) }, 16,
	  CC(IR, 0x21, 0x00) },
	{ "INQUIRY CMDDT", { 0x12, 0x02, 0, 0, 255 }, 6, CC(IR, 0x24, 0x00) },
	{ "INQUIRY page without EVPD", { 0x12, 0, 0x80, 0, 255 }, 6, CC(IR, 0x24, 0x00) },
	{ "INQUIRY unknown VPD", { 0x12, 1, 0x99, 0, 255 }, 6, CC(IR, 0x24, 0x00) },
	{ "INQUIRY", { 0x12, 0, 0, 0, 36 }, 6, GOOD(36) },
	{ "REQUEST SENSE DESC", { 0x03, 0x01, 0, 0, 18 }, 6, CC(IR, 0x24, 0x00) },
	{ "REPORT LUNS alloc 15", { 0xa0, 0, 0, 0, 0, 0, BE32(15) }, 12, CC(IR, 0x24, 0x00) },
	{ "REPORT LUNS select 3", { 0xa0, 0, 3, 0, 0, 0, BE32(64) }, 12, CC(IR, 0x24, 0x00) },
	{ "MODE SENSE6 bad page", { 0x1a, 0, 0x05, 0, 255 }, 6, CC(IR, 0x24, 0x00) },
	{ "MODE SENSE6 saved", { 0x1a, 0, 0xc8, 0, 255 }, 6, CC(IR, 0x39, 0x00) },
	{ "MODE SENSE6 bad subpage", { 0x1a, 0, 0x08, 1, 255 }, 6, CC(IR, 0x24, 0x00) },
	{ "MODE SENSE10 all", { 0x5a, 0, 0x3f, 0xff, 0, 0, 0, BE16(1000) }, 10, GOOD(1000) },
	{ "MODE SELECT6 SP", { 0x15, 0x11, 0, 0, 24 }, 6, CC(IR, 0x24, 0x00) },
	{ "MODE SELECT6 PF 0", { 0x15, 0x00, 0, 0, 24 }, 6, CC(IR, 0x24, 0x00) },
	{ "PR IN bad SA", { 0x5e, 0x04, 0, 0, 0, 0, 0, BE16(100) }, 10, CC(IR, 0x24, 0x00) },
	{ "PR OUT REGISTER AND MOVE", { 0x5f, 0x07, 0, 0, 0, BE32(24) }, 10, CC(IR, 0x24, 0x00) },
	{ "PR OUT bad type", { 0x5f, 0x01, 0x02, 0, 0, BE32(24) }, 10, CC(IR, 0x24, 0x00) },
	{ "PR OUT scope", { 0x5f, 0x01, 0x11, 0, 0, BE32(24) }, 10, CC(IR, 0x24, 0x00) },
	{ "PR OUT short list", { 0x5f, 0x00, 0, 0, 0, BE32(23) }, 10, CC(IR, 0x1a, 0x00) },
	{ "RSOC options 4", { 0xa3, 0x0c, 0x04, 0, 0, 0, BE32(100) }, 12, CC(IR, 0x24, 0x00) },
	{ "RSOC option 1 on SA opcode", { 0xa3, 0x0c, 0x01, 0x9e, 0, 0, BE32(100) }, 12,
	  CC(IR, 0x24, 0x00) },
	{ "RSOC option 2 on plain opcode", { 0xa3, 0x0c, 0x02, 0x28, 0, 0, BE32(100) }, 12,
	  CC(IR, 0x24, 0x00) },
	{ "MAINTENANCE IN unknown SA", { 0xa3, 0x0a }, 12, CC(IR, 0x24, 0x00) },
	{ "START STOP bad power condition", { 0x1b, 0, 0, 0, 0x40 }, 6, CC(IR, 0x24, 0x00) },
	{ "START STOP", { 0x1b, 0, 0, 0, 0x01 }, 6, GOOD(0) },
	{ "PREVENT 2", { 0x1e, 0, 0, 0, 2 }, 6, CC(IR, 0x24, 0x00) },
	{ "PREVENT ALLOW", { 0x1e, 0, 0, 0, 0 }, 6, GOOD(0) },
	{ "RESERVE10 3RDPTY", { 0x56, 0x10 }, 10, CC(IR, 0x24, 0x00) },
};

/* SBC-4 5.3: NUMBER OF LOGICAL BLOCKS 0 with no data is not an error. */
static void
test_caw_zero_blocks_without_data(void **state)
{
	static const uint8_t cdb[16] = { 0x89 };
	struct h_res *res;
	struct h h;

	(void)state;
	h_init(&h);
	h_add_ram_lu(&h, 0, true, false);
	h_clear_ua(&h, 0);
	res = h_run_edtl(&h, 0, 0, cdb, sizeof(cdb), 0, NULL, 0);
	assert_int_equal(res->status, ISD_SAM_GOOD);
	assert_int_equal(res->xfer_len, 0);
	h_fini(&h);
}

static void
test_cdb_table(void **state)
{
	struct h h;

	(void)state;
	h_init(&h);
	h_add_ram_lu(&h, 0, true, false);
	h_clear_ua(&h, 0);
	for (size_t i = 0; i < sizeof(g_rows) / sizeof(g_rows[0]); i++) {
		const struct row *r = &g_rows[i];
		struct h_res *res = h_run_edtl(&h, 0, 0, r->cdb, r->cdb_len,
					       r->edtl != 0 ? r->edtl : 16u << 20, NULL, 0);

		if (res->status != r->status || res->key != r->key || res->asc != r->asc ||
		    res->ascq != r->ascq || (r->xfer >= 0 && res->xfer_len != (uint32_t)r->xfer)) {
			fail_msg("%s: status %02x sense %x/%02x/%02x xfer %u", r->what, res->status,
				 res->key, res->asc, res->ascq, res->xfer_len);
		}
	}
	h_fini(&h);
}

/* Field pointers: INVALID FIELD IN CDB names the byte (SPC-5 4.4.2.? SKSV, C/D). */
static void
test_cdb_field_pointer(void **state)
{
	struct h h;
	uint8_t cdb[10] = { 0x28, 0x20 };
	struct h_res *res;

	(void)state;
	h_init(&h);
	h_add_ram_lu(&h, 0, false, false);
	h_clear_ua(&h, 0);
	res = h_run(&h, 0, 0, cdb, 10, NULL, 0);
	assert_sense(res, ISD_SK_ILLEGAL_REQUEST, 0x24, 0x00);
	assert_int_equal(res->sense[15], 0x80 | 0x40 | 0x08 | 7);
	assert_int_equal(get_be16(res->sense + 16), 1);
	assert_int_equal(res->sense[7], 10);    /* 18-byte fixed format */
	h_fini(&h);
}

/* SAM-5: the first command of a nexus gets POWER ON/RESET; INQUIRY and REPORT LUNS
 * neither report nor clear it. */
static void
test_ua_first_command(void **state)
{
	uint8_t inq[6] = { 0x12, 0, 0, 0, 36 };
	uint8_t rl[12] = { 0xa0, 0, 0, 0, 0, 0, 0, 0, 0, 64 };
	uint8_t tur[6] = { 0 };
	struct h h;

	(void)state;
	h_init(&h);
	h_add_ram_lu(&h, 0, false, false);
	isd_scsi_nexus_add(h.dev, &h.nx[0]);
	assert_good(h_run(&h, 0, 0, inq, 6, NULL, 0));
	assert_good(h_run(&h, 0, 0, rl, 12, NULL, 0));
	assert_sense(h_run(&h, 0, 0, tur, 6, NULL, 0), ISD_SK_UNIT_ATTENTION, 0x29, 0x00);
	assert_good(h_run(&h, 0, 0, tur, 6, NULL, 0));
	/* a nexus never announced gets one too, on its first command */
	assert_sense(h_run(&h, 1, 0, tur, 6, NULL, 0), ISD_SK_UNIT_ATTENTION, 0x29, 0x00);
	/* and an unknown opcode also reports the UA first */
	{
		uint8_t bad[16] = { 0xff };

		isd_scsi_nexus_remove(h.dev, &h.nx[1]);
		assert_sense(h_run(&h, 1, 0, bad, 16, NULL, 0), ISD_SK_UNIT_ATTENTION, 0x29, 0);
		assert_sense(h_run(&h, 1, 0, bad, 16, NULL, 0), ISD_SK_ILLEGAL_REQUEST, 0x20, 0);
	}
	h_fini(&h);
}

/* LUN reset: 29h/03h for the other nexuses, not the one that asked; REQUEST SENSE
 * returns and clears a UA; several UAs come out one per command, in priority order. */
static void
test_ua_order_and_request_sense(void **state)
{
	uint8_t tur[6] = { 0 };
	uint8_t rs[6] = { 0x03, 0, 0, 0, 252 };
	uint8_t ms[6] = { 0x1a, 0x08, 0x08, 0, 255 };  /* DBD: header + caching page */
	uint8_t sel[6] = { 0x15, 0x10, 0, 0, 24 };
	uint8_t page[24];
	struct h_res *res;
	struct h h;

	(void)state;
	h_init(&h);
	h_add_ram_lu(&h, 0, false, false);
	h_clear_ua(&h, 0);
	assert_int_equal(isd_scsi_lu_reset(h.dev, isd_scsi_lun_encode(0), &h.nx[0]), 0);
	assert_int_equal(isd_scsi_lu_reset(h.dev, isd_scsi_lun_encode(7), &h.nx[0]), -ENOENT);
	/* the nexus that reset the LU gets the unit attention too (SAM-5 6.3.3) */
	assert_sense(h_run(&h, 0, 0, tur, 6, NULL, 0), ISD_SK_UNIT_ATTENTION, 0x29, 0x03);
	assert_good(h_run(&h, 0, 0, tur, 6, NULL, 0));
	/* nexus 1: LUN reset, then capacity change, then mode change by nexus 0 */
	res = h_run(&h, 0, 0, ms, 6, NULL, 0);
	assert_good(res);
	memcpy(page, res->data, 24);
	assert_int_equal(res->len, 24);
	page[0] = 0;
	page[4 + 2] ^= 0x04;    /* toggle WCE */
	assert_good(h_run(&h, 0, 0, sel, 6, page, 24));
	assert_int_equal(isd_scsi_lu_capacity_changed(h.dev, 0), 0);
	assert_int_equal(isd_scsi_lu_capacity_changed(h.dev, 9), -ENOENT);
	/* nexus 0 got the capacity change too, not its own mode change */
	assert_sense(h_run(&h, 0, 0, tur, 6, NULL, 0), ISD_SK_UNIT_ATTENTION, 0x2a, 0x09);
	assert_good(h_run(&h, 0, 0, tur, 6, NULL, 0));

	res = h_run(&h, 1, 0, rs, 6, NULL, 0);
	assert_good(res);
	assert_int_equal(res->len, 18);
	assert_int_equal(res->data[2], ISD_SK_UNIT_ATTENTION);
	assert_int_equal(res->data[12], 0x29);
	assert_int_equal(res->data[13], 0x03);
	assert_sense(h_run(&h, 1, 0, tur, 6, NULL, 0), ISD_SK_UNIT_ATTENTION, 0x2a, 0x01);
	assert_sense(h_run(&h, 1, 0, tur, 6, NULL, 0), ISD_SK_UNIT_ATTENTION, 0x2a, 0x09);
	assert_good(h_run(&h, 1, 0, tur, 6, NULL, 0));
	res = h_run(&h, 1, 0, rs, 6, NULL, 0);
	assert_good(res);
	assert_int_equal(res->data[2], ISD_SK_NO_SENSE);
	assert_int_equal(res->data[12], 0);
	h_fini(&h);
}

/* SAM-5/SPC-5: a missing LUN (here LUN 0) still answers INQUIRY (qualifier 011b),
 * REPORT LUNS and REQUEST SENSE; the rest is LOGICAL UNIT NOT SUPPORTED. */
static void
test_missing_lun(void **state)
{
	uint8_t inq[6] = { 0x12, 0, 0, 0, 96 };
	uint8_t vpd0[6] = { 0x12, 1, 0, 0, 96 };
	uint8_t vpd80[6] = { 0x12, 1, 0x80, 0, 96 };
	uint8_t rl[12] = { 0xa0, 0, 0, 0, 0, 0, 0, 0, 1, 0 };
	uint8_t rs[6] = { 0x03, 0, 0, 0, 18 };
	uint8_t tur[6] = { 0 };
	uint8_t rd[10] = { 0x28, 0, 0, 0, 0, 0, 0, 0, 1, 0 };
	struct h_res *res;
	struct h h;

	(void)state;
	h_init(&h);
	h_add_ram_lu(&h, 1, false, false);
	h_add_ram_lu(&h, 3, false, false);
	res = h_run(&h, 0, 0, inq, 6, NULL, 0);
	assert_good(res);
	assert_int_equal(res->data[0], 0x7f);
	res = h_run(&h, 0, 0, vpd0, 6, NULL, 0);
	assert_good(res);
	assert_int_equal(res->data[0], 0x7f);
	assert_sense(h_run(&h, 0, 0, vpd80, 6, NULL, 0), ISD_SK_ILLEGAL_REQUEST, 0x25, 0);
	res = h_run(&h, 0, 0, rl, 12, NULL, 0);
	assert_good(res);
	assert_int_equal(get_be32(res->data), 16);
	assert_int_equal(res->len, 24);
	assert_true(get_be64(res->data + 8) == isd_scsi_lun_encode(1));
	assert_true(get_be64(res->data + 16) == isd_scsi_lun_encode(3));
	res = h_run(&h, 0, 0, rs, 6, NULL, 0);
	assert_good(res);
	assert_int_equal(res->data[2], ISD_SK_ILLEGAL_REQUEST);
	assert_int_equal(res->data[12], 0x25);
	assert_sense(h_run(&h, 0, 0, tur, 6, NULL, 0), ISD_SK_ILLEGAL_REQUEST, 0x25, 0);
	assert_sense(h_run(&h, 0, 0, rd, 10, NULL, 0), ISD_SK_ILLEGAL_REQUEST, 0x25, 0);
	assert_sense(h_run(&h, 0, 200, tur, 6, NULL, 0), ISD_SK_ILLEGAL_REQUEST, 0x25, 0);
	assert_false(isd_scsi_lun_exists(h.dev, isd_scsi_lun_encode(0)));
	assert_true(isd_scsi_lun_exists(h.dev, isd_scsi_lun_encode(3)));
	assert_int_equal(isd_scsi_dev_lu_count(h.dev), 2);
	h_fini(&h);
}

static void
test_lun_codec(void **state)
{
	(void)state;
	assert_true(isd_scsi_lun_encode(0) == 0);
	assert_true(isd_scsi_lun_encode(5) == 0x0005000000000000ull);
	assert_true(isd_scsi_lun_encode(300) == 0x412c000000000000ull);
	assert_int_equal(isd_scsi_lun_decode(0x0005000000000000ull), 5);
	assert_int_equal(isd_scsi_lun_decode(0x412c000000000000ull), 300);
	assert_int_equal(isd_scsi_lun_decode(0x4005000000000000ull), 5);       /* flat */
	assert_int_equal(isd_scsi_lun_decode(0x0105000000000000ull), UINT32_MAX); /* bus 1 */
	assert_int_equal(isd_scsi_lun_decode(0x8005000000000000ull), UINT32_MAX); /* LUN addr */
	assert_int_equal(isd_scsi_lun_decode(0xc000000000000000ull), UINT32_MAX); /* extended */
	assert_int_equal(isd_scsi_lun_decode(0x0005000100000000ull), UINT32_MAX); /* level 2 */
	for (uint32_t l = 0; l < 16384; l += 97)
		assert_int_equal(isd_scsi_lun_decode(isd_scsi_lun_encode(l)), l);
}

static void
test_rsoc(void **state)
{
	uint8_t all[12] = { 0xa3, 0x0c, 0x00, 0, 0, 0, 0, 0, 0x10, 0 };
	uint8_t all_t[12] = { 0xa3, 0x0c, 0x80, 0, 0, 0, 0, 0, 0x10, 0 };
	uint8_t one[12] = { 0xa3, 0x0c, 0x01, 0x28, 0, 0, 0, 0, 1, 0 };
	uint8_t two[12] = { 0xa3, 0x0c, 0x02, 0x9e, 0, 0x10, 0, 0, 1, 0 };
	uint8_t none[12] = { 0xa3, 0x0c, 0x01, 0xee, 0, 0, 0, 0, 1, 0 };
	uint8_t unmap[12] = { 0xa3, 0x0c, 0x01, 0x42, 0, 0, 0, 0, 1, 0 };
	struct h_res *res;
	bool read10 = false, unmap_listed = false;
	uint32_t n;
	struct h h;

	(void)state;
	h_init(&h);
	h_add_ram_lu(&h, 0, false, false);
	h_clear_ua(&h, 0);
	res = h_run(&h, 0, 0, all, 12, NULL, 0);
	assert_good(res);
	n = get_be32(res->data);
	assert_int_equal(n % 8, 0);
	assert_int_equal(res->len, n + 4);
	for (uint32_t off = 4; off < n + 4; off += 8) {
		read10 |= res->data[off] == 0x28 && get_be16(res->data + off + 6) == 10;
		unmap_listed |= res->data[off] == 0x42;
	}
	assert_true(read10);
	assert_false(unmap_listed);     /* not thin: UNMAP is not offered */
	res = h_run(&h, 0, 0, all_t, 12, NULL, 0);
	assert_good(res);
	assert_int_equal(get_be32(res->data) % 20, 0);
	assert_int_equal(res->data[4 + 5] & 0x02, 0x02);       /* CTDP */
	res = h_run(&h, 0, 0, one, 12, NULL, 0);
	assert_good(res);
	assert_int_equal(res->data[1] & 0x07, 3);
	assert_int_equal(get_be16(res->data + 2), 10);
	assert_int_equal(res->data[4], 0x28);
	assert_int_equal(res->len, 14);
	res = h_run(&h, 0, 0, two, 12, NULL, 0);
	assert_good(res);
	assert_int_equal(res->data[1] & 0x07, 3);
	assert_int_equal(get_be16(res->data + 2), 16);
	assert_int_equal(res->data[5], 0x10);
	res = h_run(&h, 0, 0, none, 12, NULL, 0);
	assert_good(res);
	assert_int_equal(res->data[1] & 0x07, 1);
	res = h_run(&h, 0, 0, unmap, 12, NULL, 0);
	assert_good(res);
	assert_int_equal(res->data[1] & 0x07, 1);
	{
		uint8_t cdb[10] = { 0x42, 0, 0, 0, 0, 0, 0, 0, 24, 0 };

		assert_sense(h_run(&h, 0, 0, cdb, 10, NULL, 0), ISD_SK_ILLEGAL_REQUEST, 0x20, 0);
	}
	h_fini(&h);
}

/* Short CDB buffers and a transport that gives no nexus do not crash. */
static void
test_cdb_robustness(void **state)
{
	struct isd_scsi_cmd cmd;
	uint8_t cdb[6] = { 0x28 };
	struct h h;

	(void)state;
	h_init(&h);
	h_add_ram_lu(&h, 0, false, false);
	memset(&cmd, 0, sizeof(cmd));
	cmd.dev = h.dev;
	cmd.cdb = cdb;
	cmd.cdb_len = 6;        /* READ(10) opcode in a 6-byte CDB */
	h_clear_ua(&h, 0);
	assert_int_equal(isd_scsi_cmd_setup(&cmd), ISD_SCSI_SETUP_DONE);
	assert_int_equal(cmd.status, ISD_SAM_CHECK_CONDITION);
	/* anonymous nexus: UA then GOOD */
	cmd.cdb_len = 6;
	cdb[0] = 0;
	assert_int_equal(isd_scsi_cmd_setup(&cmd), ISD_SCSI_SETUP_DONE);
	cmd.cdb = NULL;
	assert_int_equal(isd_scsi_cmd_setup(&cmd), ISD_SCSI_SETUP_DONE);
	assert_int_equal(cmd.status, ISD_SAM_CHECK_CONDITION);
	isd_scsi_cmd_release(&cmd);
	h_fini(&h);
}

/* The command table stays in opcode order, and the binary search finds what a
 * walk through the whole table finds, for every opcode and service action. */
static void
test_op_find(void **state)
{
	(void)state;
	for (size_t i = 1; i < g_isd_scsi_nops; i++)
		assert_true(g_isd_scsi_ops[i - 1].opcode <= g_isd_scsi_ops[i].opcode);
	for (unsigned opc = 0; opc < 256; opc++) {
		for (unsigned sa = 0; sa < 32; sa++) {
			const struct isd_scsi_op *want = NULL;
			bool want_known = false, known = true;

			for (size_t i = 0; i < g_isd_scsi_nops; i++) {
				const struct isd_scsi_op *op = &g_isd_scsi_ops[i];

				if (op->opcode != opc)
					continue;
				want_known = true;
				if (want == NULL && (!(op->flags & ISD_OPF_HAS_SA) || op->sa == sa))
					want = op;
			}
			assert_ptr_equal(isd_scsi_op_find((uint8_t)opc, (uint16_t)sa, &known), want);
			assert_int_equal(known, want_known);
		}
	}
	/* an opcode with service actions, asked for one it lacks */
	{
		bool known = false;

		assert_null(isd_scsi_op_find(0x9e, 0x1f, &known));
		assert_true(known);
		assert_null(isd_scsi_op_find(0xff, 0, &known));
		assert_false(known);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cdb_table),
		cmocka_unit_test(test_op_find),
		cmocka_unit_test(test_caw_zero_blocks_without_data),
		cmocka_unit_test(test_cdb_field_pointer),
		cmocka_unit_test(test_ua_first_command),
		cmocka_unit_test(test_ua_order_and_request_sense),
		cmocka_unit_test(test_missing_lun),
		cmocka_unit_test(test_lun_codec),
		cmocka_unit_test(test_rsoc),
		cmocka_unit_test(test_cdb_robustness),
	};

	return cmocka_run_group_tests_name("scsi_cdb", tests, NULL, NULL);
}
