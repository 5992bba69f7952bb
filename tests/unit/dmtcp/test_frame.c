/*
 * Pure framing helpers of the TCP datamover (src/dm/tcp/tcp_frame.c):
 * digests with known CRC32C values, iovec slicing, Data-In/R2T headers,
 * status collapse, and the solicited Data-Out checks.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "dm/tcp/tcp_int.h"
#include "util/crc32c.h"
#include "util/endian.h"

/* RFC 3720 Appendix B.4: 32 bytes of zeros -> aa 36 91 8a on the wire. */
static void
test_digest_known_vector_le_on_wire(void **state)
{
	uint8_t zeros[32] = {0};
	struct iovec iov[3] = {
		{zeros, 5}, {zeros + 5, 20}, {zeros + 25, 7},
	};
	uint8_t wire[4];
	uint32_t crc;

	(void)state;
	crc = isd_tcp_frame_data_digest(iov, 3, NULL, 0);
	assert_int_equal(crc, 0x8a9136aa);
	isd_tcp_put_digest(wire, crc);
	assert_int_equal(wire[0], 0xaa);
	assert_int_equal(wire[1], 0x36);
	assert_int_equal(wire[2], 0x91);
	assert_int_equal(wire[3], 0x8a);
	assert_int_equal(isd_tcp_get_digest(wire), crc);
}

/* RFC 3720 B.4: 32 bytes 0x00..0x1f -> 0x46dd794e; the digest covers the padding. */
static void
test_digest_covers_padding(void **state)
{
	uint8_t inc[32];
	uint8_t pad[3] = {0};
	struct iovec iov;

	(void)state;
	for (int i = 0; i < 32; i++)
		inc[i] = (uint8_t)i;
	iov.iov_base = inc;
	iov.iov_len = 32;
	assert_int_equal(isd_tcp_frame_data_digest(&iov, 1, pad, 0), 0x46dd794e);
	/* 29 bytes + 3 pad bytes equal the CRC of the 32-byte padded block. */
	memset(inc + 29, 0, 3);
	iov.iov_len = 29;
	assert_int_equal(isd_tcp_frame_data_digest(&iov, 1, pad, 3), isd_crc32c(inc, 32));
}

static void
test_hdr_digest_is_bhs_then_ahs(void **state)
{
	uint8_t buf[ISD_BHS_LEN + 8];

	(void)state;
	for (size_t i = 0; i < sizeof(buf); i++)
		buf[i] = (uint8_t)(i * 7);
	assert_int_equal(isd_tcp_frame_hdr_digest(buf, NULL, 0), isd_crc32c(buf, ISD_BHS_LEN));
	assert_int_equal(isd_tcp_frame_hdr_digest(buf, buf + ISD_BHS_LEN, 8),
			 isd_crc32c(buf, sizeof(buf)));
}

static void
test_slice_stops_at_out_max(void **state)
{
	uint8_t a[10], b[10], c[10];
	struct iovec iov[3] = {{a, 10}, {b, 10}, {c, 10}};
	struct iovec out[3];
	uint32_t covered;
	int n;

	(void)state;
	n = isd_tcp_frame_slice(iov, 3, 5, 20, out, 3, &covered);
	assert_int_equal(n, 3);
	assert_int_equal(covered, 20);
	assert_ptr_equal(out[0].iov_base, a + 5);
	assert_int_equal(out[0].iov_len, 5);
	assert_int_equal(out[1].iov_len, 10);
	assert_ptr_equal(out[2].iov_base, c);
	assert_int_equal(out[2].iov_len, 5);
	/* Only two entries allowed: the slice is short, never an error. */
	n = isd_tcp_frame_slice(iov, 3, 5, 20, out, 2, &covered);
	assert_int_equal(n, 2);
	assert_int_equal(covered, 15);
	/* Past the end of the iovec: covered reports what exists. */
	n = isd_tcp_frame_slice(iov, 3, 25, 20, out, 3, &covered);
	assert_int_equal(n, 1);
	assert_int_equal(covered, 5);
	n = isd_tcp_frame_slice(iov, 3, 30, 1, out, 3, &covered);
	assert_int_equal(n, 0);
	assert_int_equal(covered, 0);
}

static void
test_datain_fields(void **state)
{
	uint8_t bhs[ISD_BHS_LEN];

	(void)state;
	memset(bhs, 0xee, sizeof(bhs));
	isd_tcp_frame_datain(bhs, 0x11223344, 0x0001000000000000ull, 7, 16384, 8192, false);
	assert_int_equal(bhs[0], ISD_OP_DATA_IN);
	assert_int_equal(bhs[1], 0);
	assert_int_equal(bhs[4], 0);
	assert_int_equal(isd_bhs_dsl(bhs), 8192);
	assert_true(isd_bhs_lun(bhs) == 0x0001000000000000ull);
	assert_int_equal(isd_bhs_itt(bhs), 0x11223344);
	assert_int_equal(isd_bhs_ttt(bhs), ISD_RSVD_TAG);
	assert_int_equal(get_be32(bhs + 36), 7);
	assert_int_equal(get_be32(bhs + 40), 16384);
	assert_int_equal(get_be32(bhs + 44), 0);
	isd_tcp_frame_datain(bhs, 1, 0, 0, 0, 1, true);
	assert_int_equal(bhs[1], ISD_BHS_F);
}

static void
make_rsp(struct isd_pdu *rsp, uint8_t flags, uint8_t response, uint8_t status)
{
	memset(rsp, 0, sizeof(*rsp));
	rsp->bhs[0] = ISD_OP_SCSI_RSP;
	rsp->bhs[1] = ISD_BHS_F | flags;
	rsp->bhs[2] = response;
	rsp->bhs[3] = status;
	put_be32(rsp->bhs + 16, 0x42);
	put_be32(rsp->bhs + 24, 100);   /* StatSN */
	put_be32(rsp->bhs + 28, 200);   /* ExpCmdSN */
	put_be32(rsp->bhs + 32, 231);   /* MaxCmdSN */
	put_be32(rsp->bhs + 44, 512);   /* residual */
}

/* RFC 7143 §11.7.4: status only on Data-In without an exception. */
static void
test_collapse_rules(void **state)
{
	struct isd_pdu rsp;

	(void)state;
	make_rsp(&rsp, 0, 0, 0x00);
	assert_true(isd_tcp_frame_can_collapse(&rsp));
	make_rsp(&rsp, ISD_RSP_U, 0, 0x04);
	assert_true(isd_tcp_frame_can_collapse(&rsp));
	make_rsp(&rsp, 0, 0, 0x02);     /* CHECK CONDITION */
	assert_false(isd_tcp_frame_can_collapse(&rsp));
	make_rsp(&rsp, 0, 0, 0x18);     /* RESERVATION CONFLICT */
	assert_false(isd_tcp_frame_can_collapse(&rsp));
	make_rsp(&rsp, 0, ISD_RSP_TARGET_FAILURE, 0x00);
	assert_false(isd_tcp_frame_can_collapse(&rsp));
	make_rsp(&rsp, ISD_RSP_u, 0, 0x00);
	assert_false(isd_tcp_frame_can_collapse(&rsp));
	make_rsp(&rsp, 0, 0, 0x00);
	rsp.data_len = 18;              /* sense data */
	assert_false(isd_tcp_frame_can_collapse(&rsp));
	make_rsp(&rsp, 0, 0, 0x00);
	rsp.bhs[0] = ISD_OP_NOP_IN;
	assert_false(isd_tcp_frame_can_collapse(&rsp));
	assert_false(isd_tcp_frame_can_collapse(NULL));
}

static void
test_collapse_copies_status_fields(void **state)
{
	struct isd_pdu rsp;
	uint8_t bhs[ISD_BHS_LEN];

	(void)state;
	make_rsp(&rsp, ISD_RSP_U, 0, 0x00);
	isd_tcp_frame_datain(bhs, 0x42, 0, 3, 4096, 100, true);
	isd_tcp_frame_collapse(bhs, rsp.bhs);
	assert_int_equal(bhs[1], ISD_BHS_F | ISD_DATAIN_S | ISD_DATAIN_U);
	assert_int_equal(bhs[3], 0);
	assert_int_equal(get_be32(bhs + 24), 100);
	assert_int_equal(get_be32(bhs + 28), 200);
	assert_int_equal(get_be32(bhs + 32), 231);
	assert_int_equal(get_be32(bhs + 36), 3);        /* DataSN kept */
	assert_int_equal(get_be32(bhs + 40), 4096);     /* offset kept */
	assert_int_equal(get_be32(bhs + 44), 512);
	assert_int_equal(isd_bhs_dsl(bhs), 100);
}

static void
test_r2t_fields(void **state)
{
	uint8_t bhs[ISD_BHS_LEN];

	(void)state;
	isd_tcp_frame_r2t(bhs, 0x10, 0x0002000000000000ull, 0x00000105, 2, 65536, 262144);
	assert_int_equal(bhs[0], ISD_OP_R2T);
	assert_int_equal(bhs[1], ISD_BHS_F);
	assert_int_equal(isd_bhs_dsl(bhs), 0);
	assert_true(isd_bhs_lun(bhs) == 0x0002000000000000ull);
	assert_int_equal(isd_bhs_itt(bhs), 0x10);
	assert_int_equal(isd_bhs_ttt(bhs), 0x105);
	assert_int_equal(get_be32(bhs + 36), 2);
	assert_int_equal(get_be32(bhs + 40), 65536);
	assert_int_equal(get_be32(bhs + 44), 262144);
}

static void
dataout(uint8_t *bhs, uint32_t itt, uint32_t ttt, uint32_t datasn, uint32_t off, uint32_t len,
	bool final)
{
	memset(bhs, 0, ISD_BHS_LEN);
	bhs[0] = ISD_OP_DATA_OUT;
	bhs[1] = final ? ISD_BHS_F : 0;
	isd_bhs_set_dsl(bhs, len);
	put_be32(bhs + 16, itt);
	put_be32(bhs + 20, ttt);
	put_be32(bhs + 36, datasn);
	put_be32(bhs + 40, off);
}

static void
test_dataout_checks(void **state)
{
	struct isd_tcp_r2t r2t = {
		.ttt = 0x201, .offset = 8192, .length = 16384, .received = 8192,
		.next_datasn = 1, .in_use = true,
	};
	uint8_t bhs[ISD_BHS_LEN];

	(void)state;
	/* In order, inside, the right DataSN, F on the last bytes. */
	dataout(bhs, 7, 0x201, 1, 16384, 8192, true);
	assert_int_equal(isd_tcp_frame_check_dataout(&r2t, 7, bhs), 0);
	dataout(bhs, 7, 0x201, 1, 16384, 4096, false);
	assert_int_equal(isd_tcp_frame_check_dataout(&r2t, 7, bhs), 0);
	/* ITT of another task. */
	dataout(bhs, 8, 0x201, 1, 16384, 4096, false);
	assert_int_equal(isd_tcp_frame_check_dataout(&r2t, 7, bhs), ISD_REJECT_PROTOCOL_ERROR);
	/* Offsets: a gap, an overlap, before the R2T, past it. */
	dataout(bhs, 7, 0x201, 1, 20480, 4096, false);
	assert_int_equal(isd_tcp_frame_check_dataout(&r2t, 7, bhs), ISD_REJECT_PROTOCOL_ERROR);
	dataout(bhs, 7, 0x201, 1, 12288, 4096, false);
	assert_int_equal(isd_tcp_frame_check_dataout(&r2t, 7, bhs), ISD_REJECT_PROTOCOL_ERROR);
	dataout(bhs, 7, 0x201, 1, 0, 4096, false);
	assert_int_equal(isd_tcp_frame_check_dataout(&r2t, 7, bhs), ISD_REJECT_PROTOCOL_ERROR);
	dataout(bhs, 7, 0x201, 1, 0xfffff000, 4096, false);
	assert_int_equal(isd_tcp_frame_check_dataout(&r2t, 7, bhs), ISD_REJECT_PROTOCOL_ERROR);
	/* Longer than what the R2T still asks for. */
	dataout(bhs, 7, 0x201, 1, 16384, 8196, true);
	assert_int_equal(isd_tcp_frame_check_dataout(&r2t, 7, bhs), ISD_REJECT_PROTOCOL_ERROR);
	/* DataSN repeated or skipped. */
	dataout(bhs, 7, 0x201, 0, 16384, 4096, false);
	assert_int_equal(isd_tcp_frame_check_dataout(&r2t, 7, bhs), ISD_REJECT_PROTOCOL_ERROR);
	dataout(bhs, 7, 0x201, 2, 16384, 4096, false);
	assert_int_equal(isd_tcp_frame_check_dataout(&r2t, 7, bhs), ISD_REJECT_PROTOCOL_ERROR);
	/* F before the sequence is complete. */
	dataout(bhs, 7, 0x201, 1, 16384, 4096, true);
	assert_int_equal(isd_tcp_frame_check_dataout(&r2t, 7, bhs), ISD_REJECT_PROTOCOL_ERROR);
	/* Another TTT, or an R2T no longer in use. */
	dataout(bhs, 7, 0x202, 1, 16384, 4096, false);
	assert_int_equal(isd_tcp_frame_check_dataout(&r2t, 7, bhs), ISD_REJECT_INVALID_PDU_FIELD);
	r2t.in_use = false;
	dataout(bhs, 7, 0x201, 1, 16384, 8192, true);
	assert_int_equal(isd_tcp_frame_check_dataout(&r2t, 7, bhs), ISD_REJECT_INVALID_PDU_FIELD);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_digest_known_vector_le_on_wire),
		cmocka_unit_test(test_digest_covers_padding),
		cmocka_unit_test(test_hdr_digest_is_bhs_then_ahs),
		cmocka_unit_test(test_slice_stops_at_out_max),
		cmocka_unit_test(test_datain_fields),
		cmocka_unit_test(test_collapse_rules),
		cmocka_unit_test(test_collapse_copies_status_fields),
		cmocka_unit_test(test_r2t_fields),
		cmocka_unit_test(test_dataout_checks),
	};

	return cmocka_run_group_tests_name("dmtcp_frame", tests, NULL, NULL);
}
