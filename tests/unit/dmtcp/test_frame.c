/*
 * Pure framing helpers of the TCP datamover (src/dm/tcp/tcp_frame.c):
 * Data-In/R2T headers, status collapse, and the solicited Data-Out checks.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "dm/tcp/tcp_int.h"
#include "util/endian.h"

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
	    cmocka_unit_test(test_datain_fields),
	    cmocka_unit_test(test_collapse_rules),
	    cmocka_unit_test(test_collapse_copies_status_fields),
	    cmocka_unit_test(test_r2t_fields),
	    cmocka_unit_test(test_dataout_checks),
	};

	return cmocka_run_group_tests_name("dmtcp_frame", tests, NULL, NULL);
}
