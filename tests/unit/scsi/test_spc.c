/* SPC commands: INQUIRY and VPD contents, REPORT LUNS, MODE SENSE/SELECT, RESERVE/RELEASE. */
#include "scsi_harness.h"

static void
setup_one(struct h *h, bool thin, bool ro)
{
	h_init(h);
	h_add_ram_lu(h, 0, thin, ro);
	h_clear_ua(h, 0);
}

static void
test_inquiry_standard(void **state)
{
	uint8_t cdb[6] = { 0x12, 0, 0, 0, 255 };
	uint8_t cdb_short[6] = { 0x12, 0, 0, 0, 5 };
	struct h_res *res;
	struct h h;

	(void)state;
	setup_one(&h, false, false);
	res = h_run(&h, 0, 0, cdb, 6, NULL, 0);
	assert_good(res);
	assert_int_equal(res->data[0], 0x00);           /* PQ 0, direct access */
	assert_int_equal(res->data[2], 0x06);           /* SPC-4 claimed (see inquiry_std) */
	assert_int_equal(res->data[3] & 0x1f, 0x12);    /* HISUP, format 2 */
	assert_int_equal(res->data[4] + 5, res->len);
	assert_true(res->len >= 36);
	assert_int_equal(res->data[7] & 0x02, 0x02);    /* CMDQUE */
	assert_memory_equal(res->data + 8, "ISERD   ", 8);
	assert_memory_equal(res->data + 16, "unit test       ", 16);
	assert_memory_equal(res->data + 32, "1.0 ", 4);
	/* allocation length smaller than the data: truncated, never more */
	res = h_run(&h, 0, 0, cdb_short, 6, NULL, 0);
	assert_good(res);
	assert_int_equal(res->len, 5);
	h_fini(&h);
}

static const uint8_t *
find_designator(const uint8_t *page, uint8_t type, uint8_t assoc)
{
	uint32_t len = get_be16(page + 2) + 4;

	for (uint32_t off = 4; off + 4 <= len; off += 4 + page[off + 3]) {
		if ((page[off + 1] & 0x0f) == type && ((page[off + 1] >> 4) & 3) == assoc)
			return page + off;
	}
	return NULL;
}

static void
test_inquiry_vpd(void **state)
{
	uint8_t cdb[6] = { 0x12, 1, 0, 0, 255 };
	struct h_res *res;
	const uint8_t *d;
	struct h h;

	(void)state;
	setup_one(&h, true, false);
	res = h_run(&h, 0, 0, cdb, 6, NULL, 0);
	assert_good(res);
	assert_int_equal(res->data[1], 0x00);
	assert_int_equal(get_be16(res->data + 2), 7);
	assert_memory_equal(res->data + 4, "\x00\x80\x83\x8f\xb0\xb1\xb2", 7);

	cdb[2] = 0x80;
	res = h_run(&h, 0, 0, cdb, 6, NULL, 0);
	assert_good(res);
	assert_int_equal(get_be16(res->data + 2), 4);
	assert_memory_equal(res->data + 4, "SER0", 4);

	cdb[2] = 0x83;
	res = h_run(&h, 0, 0, cdb, 6, NULL, 0);
	assert_good(res);
	assert_int_equal(res->len, get_be16(res->data + 2) + 4);
	d = find_designator(res->data, 3, 0);   /* NAA, LU */
	assert_non_null(d);
	assert_int_equal(d[3], 16);
	assert_int_equal(d[4] >> 4, 6);         /* NAA IEEE Registered Extended */
	assert_true((get_be64(d + 4) & 0x0fffffffffffffffull) == 0x0123456789abcdeull);
	d = find_designator(res->data, 1, 0);   /* T10 vendor ID */
	assert_non_null(d);
	assert_int_equal(d[0] & 0x0f, 2);       /* ASCII */
	assert_memory_equal(d + 4, "ISERD   ", 8);
	d = find_designator(res->data, 4, 1);   /* relative target port */
	assert_non_null(d);
	assert_int_equal(d[1] & 0x80, 0x80);    /* PIV */
	assert_int_equal(d[0] >> 4, 5);         /* iSCSI */
	assert_int_equal(get_be16(d + 6), 1);
	d = find_designator(res->data, 8, 1);   /* SCSI name string, target port */
	assert_non_null(d);
	assert_int_equal(d[3] % 4, 0);
	assert_string_equal((const char *)d + 4, "iqn.2024-01.test:tgt,t,0x0001");

	cdb[2] = 0xb0;
	res = h_run(&h, 0, 0, cdb, 6, NULL, 0);
	assert_good(res);
	assert_int_equal(get_be16(res->data + 2), 0x3c);
	assert_int_equal(res->data[5], 0xff);                           /* max CAW length */
	assert_int_equal(get_be32(res->data + 8), (16u << 20) / 512);   /* max transfer */
	assert_true(get_be32(res->data + 20) > 0);                      /* max unmap LBAs */
	assert_true(get_be32(res->data + 24) > 0);                      /* max unmap descs */
	assert_true(get_be64(res->data + 36) > 0);                      /* max write same */

	cdb[2] = 0xb1;
	res = h_run(&h, 0, 0, cdb, 6, NULL, 0);
	assert_good(res);
	assert_int_equal(get_be16(res->data + 4), 1);   /* non-rotating */

	cdb[2] = 0xb2;
	res = h_run(&h, 0, 0, cdb, 6, NULL, 0);
	assert_good(res);
	assert_int_equal(res->data[5] & 0xe0, 0xe0);    /* LBPU LBPWS LBPWS10 */
	assert_int_equal(res->data[5] & 0x1c, 0x04);    /* LBPRZ 001b */
	assert_int_equal(res->data[6] & 0x07, 2);       /* thin */
	h_fini(&h);
}

static void
test_report_luns(void **state)
{
	uint8_t cdb[12] = { 0xa0, 0, 0, 0, 0, 0, 0, 0, 0, 16 };
	struct h_res *res;
	struct h h;

	(void)state;
	h_init(&h);
	h_add_ram_lu(&h, 0, false, false);
	h_add_ram_lu(&h, 2, false, false);
	h_add_ram_lu(&h, 255, false, false);
	/* allocation length 16: header plus the first LUN, list length still says 3 */
	res = h_run(&h, 0, 0, cdb, 12, NULL, 0);
	assert_good(res);
	assert_int_equal(res->len, 16);
	assert_int_equal(get_be32(res->data), 24);
	cdb[9] = 255;
	res = h_run(&h, 0, 0, cdb, 12, NULL, 0);
	assert_good(res);
	assert_int_equal(res->len, 32);
	assert_true(get_be64(res->data + 16) == isd_scsi_lun_encode(2));
	assert_true(get_be64(res->data + 24) == isd_scsi_lun_encode(255));
	cdb[2] = 1;     /* well-known LUs only: none */
	res = h_run(&h, 0, 0, cdb, 12, NULL, 0);
	assert_good(res);
	assert_int_equal(get_be32(res->data), 0);
	assert_int_equal(res->len, 8);
	cdb[2] = 2;
	assert_int_equal(get_be32(h_run(&h, 0, 0, cdb, 12, NULL, 0)->data), 24);
	h_fini(&h);
}

static void
test_mode_sense_lengths(void **state)
{
	uint8_t ms6[6] = { 0x1a, 0, 0x3f, 0, 255 };
	uint8_t ms10[10] = { 0x5a, 0x10, 0x3f, 0, 0, 0, 0, 0x01, 0x00, 0 };
	uint8_t ms6_changeable[6] = { 0x1a, 0x08, 0x48, 0, 255 };
	struct h_res *res;
	struct h h;

	(void)state;
	setup_one(&h, false, true);
	res = h_run(&h, 0, 0, ms6, 6, NULL, 0);
	assert_good(res);
	assert_int_equal(res->len, 4 + 8 + 20 + 12 + 12);
	assert_int_equal(res->data[0], res->len - 1);
	assert_int_equal(res->data[2] & 0x80, 0x80);    /* WP: read-only LU */
	assert_int_equal(res->data[2] & 0x10, 0x10);    /* DPOFUA */
	assert_int_equal(res->data[3], 8);
	assert_int_equal(get_be32(res->data + 4), H_BLOCKS);
	assert_int_equal(get_be24(res->data + 9), H_BS);
	assert_int_equal(res->data[12], 0x08);          /* caching page first */
	assert_int_equal(res->data[14] & 0x04, 0x04);   /* WCE */
	assert_int_equal(res->data[32], 0x0a);
	assert_int_equal(res->data[44], 0x1c);
	/* DBD */
	ms6[1] = 0x08;
	res = h_run(&h, 0, 0, ms6, 6, NULL, 0);
	assert_int_equal(res->len, 4 + 44);
	assert_int_equal(res->data[3], 0);
	/* truncated by the allocation length, the header still tells the full size */
	ms6[4] = 2;
	res = h_run(&h, 0, 0, ms6, 6, NULL, 0);
	assert_int_equal(res->len, 2);
	assert_int_equal(res->data[0], 4 + 44 - 1);
	/* MODE SENSE(10) with LLBAA: long block descriptor */
	res = h_run(&h, 0, 0, ms10, 10, NULL, 0);
	assert_good(res);
	assert_int_equal(res->len, 8 + 16 + 44);
	assert_int_equal(get_be16(res->data), res->len - 2);
	assert_int_equal(res->data[4] & 1, 1);
	assert_int_equal(get_be16(res->data + 6), 16);
	assert_true(get_be64(res->data + 8) == H_BLOCKS);
	assert_int_equal(get_be32(res->data + 8 + 12), H_BS);
	/* changeable values: only WCE */
	res = h_run(&h, 0, 0, ms6_changeable, 6, NULL, 0);
	assert_good(res);
	assert_int_equal(res->len, 24);
	assert_int_equal(res->data[6], 0x04);
	for (int i = 7; i < 24; i++)
		assert_int_equal(res->data[i], 0);
	h_fini(&h);
}

static void
test_mode_select(void **state)
{
	uint8_t ms[6] = { 0x1a, 0x08, 0x08, 0, 255 };
	uint8_t sel[6] = { 0x15, 0x10, 0, 0, 24 };
	uint8_t sel10[10] = { 0x55, 0x10, 0, 0, 0, 0, 0, 0, 28, 0 };
	uint8_t p[64];
	struct h_res *res;
	struct h h;

	(void)state;
	setup_one(&h, false, false);
	res = h_run(&h, 0, 0, ms, 6, NULL, 0);
	memcpy(p, res->data, 24);
	p[0] = 0;
	/* a bit that is not changeable (RCD) */
	p[6] |= 0x01;
	res = h_run(&h, 0, 0, sel, 6, p, 24);
	assert_sense(res, ISD_SK_ILLEGAL_REQUEST, 0x26, 0x00);
	assert_int_equal(res->sense[15] & 0xc0, 0x80);  /* SKSV, C/D = 0 (parameter data) */
	assert_int_equal(get_be16(res->sense + 16), 6);
	p[6] &= ~0x01;
	/* wrong page length */
	p[5] = 0x10;
	assert_sense(h_run(&h, 0, 0, sel, 6, p, 24), ISD_SK_ILLEGAL_REQUEST, 0x26, 0x00);
	p[5] = 0x12;
	/* truncated page */
	sel[4] = 20;
	assert_sense(h_run(&h, 0, 0, sel, 6, p, 24), ISD_SK_ILLEGAL_REQUEST, 0x1a, 0x00);
	sel[4] = 24;
	/* short data-out (EDTL under the parameter list length) acts on nothing */
	assert_sense(h_run_edtl(&h, 0, 0, sel, 6, 10, p, 24), ISD_SK_ILLEGAL_REQUEST, 0x1a, 0);
	/* unknown page */
	p[4] = 0x19;
	assert_sense(h_run(&h, 0, 0, sel, 6, p, 24), ISD_SK_ILLEGAL_REQUEST, 0x26, 0x00);
	p[4] = 0x08;
	/* clear WCE: accepted, visible, other nexus told */
	p[6] &= ~0x04;
	assert_good(h_run(&h, 0, 0, sel, 6, p, 24));
	res = h_run(&h, 0, 0, ms, 6, NULL, 0);
	assert_int_equal(res->data[6] & 0x04, 0);
	assert_sense(h_run(&h, 1, 0, ms, 6, NULL, 0), ISD_SK_UNIT_ATTENTION, 0x2a, 0x01);
	assert_good(h_run(&h, 0, 0, ms, 6, NULL, 0));
	/* MODE SELECT(10) with a block descriptor that matches the geometry */
	memset(p, 0, sizeof(p));
	put_be16(p + 6, 8);
	put_be32(p + 8, H_BLOCKS);
	put_be24(p + 8 + 5, H_BS);
	p[16] = 0x08;
	p[17] = 0x12;
	p[18] = 0x04;
	sel10[8] = 36;
	assert_good(h_run(&h, 0, 0, sel10, 10, p, 36));
	/* ... and one that tries to change the block size */
	put_be24(p + 8 + 5, 4096);
	assert_sense(h_run(&h, 0, 0, sel10, 10, p, 36), ISD_SK_ILLEGAL_REQUEST, 0x26, 0);
	/* empty parameter list is fine */
	sel[4] = 0;
	assert_good(h_run(&h, 0, 0, sel, 6, NULL, 0));
	h_fini(&h);
}

/*
 * Control mode page SWP: changeable, set by one nexus it write-protects the LU for
 * every nexus (one Control mode page, TST = 000b), shows as WP in the mode parameter
 * header, and the others get MODE PARAMETERS CHANGED; cleared, writes work again.
 */
static void
test_mode_select_swp(void **state)
{
	uint8_t ms[6] = { 0x1a, 0x08, 0x0a, 0, 255 };
	uint8_t ms_chg[6] = { 0x1a, 0x08, 0x4a, 0, 255 };
	uint8_t sel[6] = { 0x15, 0x10, 0, 0, 16 };
	uint8_t ws16[16] = { 0x93, 0x08 };
	uint8_t blk[H_BS];
	uint8_t p[16];
	struct h_res *res;
	struct h h;

	(void)state;
	setup_one(&h, true, false);
	memset(blk, 0x5a, sizeof(blk));
	res = h_run(&h, 0, 0, ms_chg, 6, NULL, 0);
	assert_good(res);
	assert_int_equal(res->len, 16);
	assert_int_equal(res->data[4], 0x0a);
	assert_int_equal(res->data[4 + 4], 0x08);       /* SWP changeable */
	res = h_run(&h, 0, 0, ms, 6, NULL, 0);
	assert_int_equal(res->data[2] & 0x80, 0);       /* WP clear */
	assert_int_equal(res->data[4 + 4] & 0x08, 0);
	memcpy(p, res->data, 16);
	p[0] = 0;
	p[2] = 0;
	/* a bit that is not changeable next to SWP (TAS) */
	p[4 + 4] |= 0x80;
	assert_sense(h_run(&h, 1, 0, sel, 6, p, 16), ISD_SK_ILLEGAL_REQUEST, 0x26, 0x00);
	p[4 + 4] &= ~0x80;
	assert_good(h_rw10(&h, 0, 0, 0x2a, 0, 1, blk, sizeof(blk)));
	/* nexus 1 sets SWP */
	p[4 + 4] |= 0x08;
	assert_good(h_run(&h, 1, 0, sel, 6, p, 16));
	assert_sense(h_run(&h, 0, 0, ms, 6, NULL, 0), ISD_SK_UNIT_ATTENTION, 0x2a, 0x01);
	res = h_run(&h, 0, 0, ms, 6, NULL, 0);
	assert_good(res);
	assert_int_equal(res->data[2] & 0x80, 0x80);    /* WP */
	assert_int_equal(res->data[4 + 4] & 0x08, 0x08);
	/* every write path is refused, on every nexus; reads still work */
	assert_sense(h_rw10(&h, 0, 0, 0x2a, 0, 1, blk, sizeof(blk)), ISD_SK_DATA_PROTECT, 0x27,
		     0x00);
	assert_sense(h_rw10(&h, 1, 0, 0x2a, 0, 1, blk, sizeof(blk)), ISD_SK_DATA_PROTECT, 0x27,
		     0x00);
	put_be32(ws16 + 10, 8);
	assert_sense(h_run(&h, 1, 0, ws16, 16, blk, sizeof(blk)), ISD_SK_DATA_PROTECT, 0x27, 0);
	assert_good(h_rw10(&h, 0, 0, 0x28, 0, 1, NULL, 0));
	assert_int_equal(h.mem[0] != NULL && ((uint8_t *)h.mem[0])[0] == 0x5a, 1);
	/* setting it again changes nothing: no new unit attention */
	assert_good(h_run(&h, 1, 0, sel, 6, p, 16));
	assert_good(h_run(&h, 0, 0, ms, 6, NULL, 0));
	/* cleared by nexus 1: writable again, nexus 0 told */
	p[4 + 4] &= ~0x08;
	assert_good(h_run(&h, 1, 0, sel, 6, p, 16));
	assert_sense(h_rw10(&h, 0, 0, 0x2a, 0, 1, blk, sizeof(blk)), ISD_SK_UNIT_ATTENTION, 0x2a,
		     0x01);
	assert_good(h_rw10(&h, 0, 0, 0x2a, 0, 1, blk, sizeof(blk)));
	res = h_run(&h, 0, 0, ms, 6, NULL, 0);
	assert_int_equal(res->data[2] & 0x80, 0);
	h_fini(&h);
}

/* SPC-2 RESERVE/RELEASE: others conflict, except INQUIRY/REPORT LUNS/REQUEST SENSE/RELEASE. */
static void
test_reserve_release_spc2(void **state)
{
	uint8_t res6[6] = { 0x16 };
	uint8_t rel6[6] = { 0x17 };
	uint8_t res10[10] = { 0x56 };
	uint8_t tur[6] = { 0 };
	uint8_t inq[6] = { 0x12, 0, 0, 0, 36 };
	uint8_t rd[10] = { 0x28, 0, 0, 0, 0, 0, 0, 0, 1, 0 };
	struct h h;

	(void)state;
	setup_one(&h, false, false);
	assert_good(h_run(&h, 0, 0, res6, 6, NULL, 0));
	assert_good(h_run(&h, 0, 0, res10, 10, NULL, 0));     /* again, by the holder */
	assert_good(h_run(&h, 0, 0, tur, 6, NULL, 0));
	assert_status(h_run(&h, 1, 0, tur, 6, NULL, 0), ISD_SAM_RESERVATION_CONFLICT);
	assert_status(h_run(&h, 1, 0, rd, 10, NULL, 0), ISD_SAM_RESERVATION_CONFLICT);
	assert_status(h_run(&h, 1, 0, res6, 6, NULL, 0), ISD_SAM_RESERVATION_CONFLICT);
	assert_good(h_run(&h, 1, 0, inq, 6, NULL, 0));
	assert_good(h_run(&h, 1, 0, rel6, 6, NULL, 0));       /* GOOD, but no effect */
	assert_status(h_run(&h, 1, 0, tur, 6, NULL, 0), ISD_SAM_RESERVATION_CONFLICT);
	assert_good(h_run(&h, 0, 0, rel6, 6, NULL, 0));
	assert_good(h_run(&h, 1, 0, tur, 6, NULL, 0));
	/* the reservation goes with its nexus */
	assert_good(h_run(&h, 1, 0, res6, 6, NULL, 0));
	assert_status(h_run(&h, 0, 0, tur, 6, NULL, 0), ISD_SAM_RESERVATION_CONFLICT);
	isd_scsi_nexus_remove(h.dev, &h.nx[1]);
	assert_good(h_run(&h, 0, 0, tur, 6, NULL, 0));
	/* and with a LUN reset */
	assert_good(h_run(&h, 0, 0, res6, 6, NULL, 0));
	assert_int_equal(isd_scsi_lu_reset(h.dev, 0, &h.nx[0]), 0);
	assert_sense(h_run(&h, 2, 0, tur, 6, NULL, 0), ISD_SK_UNIT_ATTENTION, 0x29, 0x03);
	assert_good(h_run(&h, 2, 0, tur, 6, NULL, 0));
	/* target reset: everyone, the sender included */
	isd_scsi_dev_reset(h.dev, NULL);
	assert_sense(h_run(&h, 0, 0, tur, 6, NULL, 0), ISD_SK_UNIT_ATTENTION, 0x29, 0x00);
	h_fini(&h);
}

static void
test_prevent_allow_start_stop(void **state)
{
	uint8_t prevent[6] = { 0x1e, 0, 0, 0, 1 };
	uint8_t allow[6] = { 0x1e, 0, 0, 0, 0 };
	uint8_t eject[6] = { 0x1b, 0, 0, 0, 0x02 };
	struct h h;

	(void)state;
	setup_one(&h, false, false);
	assert_good(h_run(&h, 0, 0, prevent, 6, NULL, 0));
	assert_sense(h_run(&h, 1, 0, eject, 6, NULL, 0), ISD_SK_ILLEGAL_REQUEST, 0x53, 0x02);
	assert_good(h_run(&h, 0, 0, allow, 6, NULL, 0));
	assert_good(h_run(&h, 1, 0, eject, 6, NULL, 0));
	h_fini(&h);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_inquiry_standard),
		cmocka_unit_test(test_inquiry_vpd),
		cmocka_unit_test(test_report_luns),
		cmocka_unit_test(test_mode_sense_lengths),
		cmocka_unit_test(test_mode_select),
		cmocka_unit_test(test_mode_select_swp),
		cmocka_unit_test(test_reserve_release_spc2),
		cmocka_unit_test(test_prevent_allow_start_stop),
	};

	return cmocka_run_group_tests_name("scsi_spc", tests, NULL, NULL);
}
