/* Unit tests for src/iscsi/pdu.c: BHS checks, AHS walking, names, allocation. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "iscsi/pdu.h"
#include "util/crc32c.h"

static void
make_bhs(uint8_t *bhs, uint8_t op, uint8_t ahs_words, uint32_t dsl)
{
	memset(bhs, 0, ISD_BHS_LEN);
	bhs[0] = op;
	bhs[4] = ahs_words;
	isd_bhs_set_dsl(bhs, dsl);
}

struct bhs_case {
	uint8_t byte0;
	bool target_side;
	uint8_t ahs_words;
	uint32_t dsl;
	uint32_t max_dsl;
	int expect;
};

static const struct bhs_case g_bhs_cases[] = {
	/* every initiator opcode is accepted by the target */
	{ ISD_OP_NOP_OUT | ISD_BHS_I, true, 0, 0, 8192, 0 },
	{ ISD_OP_SCSI_CMD, true, 0, 512, 8192, 0 },
	{ ISD_OP_TMF_REQ | ISD_BHS_I, true, 0, 0, 8192, 0 },
	{ ISD_OP_LOGIN_REQ | ISD_BHS_I, true, 0, 8192, 8192, 0 },
	{ ISD_OP_TEXT_REQ, true, 0, 100, 8192, 0 },
	{ ISD_OP_DATA_OUT, true, 0, 8192, 8192, 0 },
	{ ISD_OP_LOGOUT_REQ, true, 0, 0, 8192, 0 },
	{ ISD_OP_SNACK_REQ, true, 0, 0, 8192, 0 },
	{ 0x1c, true, 0, 0, 8192, 0 },
	{ 0x1e, true, 1, 0, 8192, 0 },          /* vendor opcodes define their own AHS use */
	/* SCSI Command may carry AHS */
	{ ISD_OP_SCSI_CMD, true, 255, 0, 8192, 0 },
	/* target opcodes reaching the target: protocol error (wrong direction) */
	{ ISD_OP_NOP_IN, true, 0, 0, 8192, ISD_REJECT_PROTOCOL_ERROR },
	{ ISD_OP_SCSI_RSP, true, 0, 0, 8192, ISD_REJECT_PROTOCOL_ERROR },
	{ ISD_OP_R2T, true, 0, 0, 8192, ISD_REJECT_PROTOCOL_ERROR },
	{ ISD_OP_REJECT, true, 0, 0, 8192, ISD_REJECT_PROTOCOL_ERROR },
	{ 0x3c, true, 0, 0, 8192, ISD_REJECT_PROTOCOL_ERROR },
	/* undefined opcodes: command not supported */
	{ 0x07, true, 0, 0, 8192, ISD_REJECT_CMD_NOT_SUPPORTED },
	{ 0x0f, true, 0, 0, 8192, ISD_REJECT_CMD_NOT_SUPPORTED },
	{ 0x11, true, 0, 0, 8192, ISD_REJECT_CMD_NOT_SUPPORTED },
	{ 0x1b, true, 0, 0, 8192, ISD_REJECT_CMD_NOT_SUPPORTED },
	{ 0x1f, true, 0, 0, 8192, ISD_REJECT_CMD_NOT_SUPPORTED },
	{ 0x27, true, 0, 0, 8192, ISD_REJECT_CMD_NOT_SUPPORTED },
	{ 0x30, true, 0, 0, 8192, ISD_REJECT_CMD_NOT_SUPPORTED },
	{ 0x3b, false, 0, 0, 8192, ISD_REJECT_CMD_NOT_SUPPORTED },
	/* AHS on a PDU that has none (RFC 7143 §11.2.1.4) */
	{ ISD_OP_LOGIN_REQ | ISD_BHS_I, true, 1, 0, 8192, ISD_REJECT_PROTOCOL_ERROR },
	{ ISD_OP_DATA_OUT, true, 2, 0, 8192, ISD_REJECT_PROTOCOL_ERROR },
	{ ISD_OP_SCSI_RSP, false, 1, 0, 8192, ISD_REJECT_PROTOCOL_ERROR },
	/* DSL against the limit */
	{ ISD_OP_DATA_OUT, true, 0, 8193, 8192, ISD_REJECT_PROTOCOL_ERROR },
	{ ISD_OP_SCSI_CMD, true, 0, ISD_MAX_DSL, ISD_MAX_DSL, 0 },
	{ ISD_OP_NOP_OUT, true, 0, 1, 0, ISD_REJECT_PROTOCOL_ERROR },
	/* initiator side: target opcodes accepted, initiator ones are errors */
	{ ISD_OP_NOP_IN, false, 0, 0, 8192, 0 },
	{ ISD_OP_SCSI_RSP, false, 0, 96, 8192, 0 },
	{ ISD_OP_TMF_RSP, false, 0, 0, 8192, 0 },
	{ ISD_OP_LOGIN_RSP, false, 0, 0, 8192, 0 },
	{ ISD_OP_TEXT_RSP, false, 0, 0, 8192, 0 },
	{ ISD_OP_DATA_IN, false, 0, 8192, 8192, 0 },
	{ ISD_OP_LOGOUT_RSP, false, 0, 0, 8192, 0 },
	{ ISD_OP_R2T, false, 0, 0, 8192, 0 },
	{ ISD_OP_ASYNC_MSG, false, 0, 0, 8192, 0 },
	{ 0x3d, false, 0, 0, 8192, 0 },
	{ ISD_OP_REJECT, false, 0, 48, 8192, 0 },
	{ ISD_OP_SCSI_CMD, false, 0, 0, 8192, ISD_REJECT_PROTOCOL_ERROR },
	{ ISD_OP_SNACK_REQ, false, 0, 0, 8192, ISD_REJECT_PROTOCOL_ERROR },
	{ 0x1d, false, 0, 0, 8192, ISD_REJECT_PROTOCOL_ERROR },
};

static void
test_bhs_check_table(void **state)
{
	uint8_t bhs[ISD_BHS_LEN];

	(void)state;
	for (size_t i = 0; i < sizeof(g_bhs_cases) / sizeof(g_bhs_cases[0]); i++) {
		const struct bhs_case *c = &g_bhs_cases[i];

		make_bhs(bhs, c->byte0, c->ahs_words, c->dsl);
		if (isd_bhs_check(bhs, c->target_side, c->max_dsl) != c->expect)
			fail_msg("case %zu (byte0 0x%02x, %s side): got %d, want %d", i, c->byte0,
				 c->target_side ? "target" : "initiator",
				 isd_bhs_check(bhs, c->target_side, c->max_dsl), c->expect);
	}
}

static void
test_bhs_field_access(void **state)
{
	uint8_t bhs[ISD_BHS_LEN] = { 0 };

	(void)state;
	bhs[0] = ISD_BHS_I | ISD_OP_LOGIN_REQ;
	bhs[1] = ISD_LOGIN_T | (1 << 2) | 3;
	bhs[4] = 3;
	isd_bhs_set_dsl(bhs, 0x123456);
	put_be64(bhs + 8, 0x0001020304050607ull);
	put_be32(bhs + 16, 0xdeadbeef);
	put_be32(bhs + 20, 0x11223344);
	put_be32(bhs + 24, 7);
	put_be32(bhs + 28, 9);
	assert_int_equal(isd_bhs_opcode(bhs), ISD_OP_LOGIN_REQ);
	assert_true(isd_bhs_immediate(bhs));
	assert_int_equal(ISD_LOGIN_CSG(isd_bhs_flags(bhs)), 1);
	assert_int_equal(ISD_LOGIN_NSG(isd_bhs_flags(bhs)), 3);
	assert_int_equal(isd_bhs_ahs_len(bhs), 12);
	assert_int_equal(isd_bhs_dsl(bhs), 0x123456);
	assert_int_equal(bhs[5], 0x12);
	assert_int_equal(bhs[7], 0x56);
	assert_true(isd_bhs_lun(bhs) == 0x0001020304050607ull);
	assert_int_equal(isd_bhs_itt(bhs), 0xdeadbeef);
	assert_int_equal(isd_bhs_ttt(bhs), 0x11223344);
	assert_int_equal(isd_bhs_cmdsn(bhs), 7);
	assert_int_equal(isd_bhs_expstatsn(bhs), 9);
	assert_int_equal(isd_pad4(0), 0);
	assert_int_equal(isd_pad4(1), 3);
	assert_int_equal(isd_pad4(3), 1);
	assert_int_equal(isd_pad4(4), 0);
}

static void
test_pdu_alloc(void **state)
{
	struct isd_pdu *p;

	(void)state;
	p = isd_pdu_alloc(100);
	assert_non_null(p);
	assert_ptr_equal(p->data, p->inline_data);
	assert_int_equal(p->data_len, 0);
	assert_null(p->ahs);
	assert_null(p->data_iov);
	for (int i = 0; i < ISD_BHS_LEN; i++)
		assert_int_equal(p->bhs[i], 0);
	memset(p->data, 0xab, 100); /* ASan checks the inline area really exists */
	isd_pdu_free(p);

	p = isd_pdu_alloc(0);
	assert_non_null(p);
	isd_pdu_free(p);
	isd_pdu_free(NULL);
}

/* AHS helpers: append one entry of type t with `len` AHS-specific bytes. */
static uint32_t
put_ahs(uint8_t *buf, uint32_t off, uint16_t len, uint8_t type, uint8_t fill)
{
	put_be16(buf + off, len);
	buf[off + 2] = type;
	memset(buf + off + 3, fill, len);
	buf[off + 3] = 0; /* reserved */
	return off + 3 + len + isd_pad4(3 + len);
}

static void
test_ahs_ext_cdb_and_bidi(void **state)
{
	uint8_t buf[64] = { 0 };
	struct isd_ahs_info info;
	uint32_t off;

	(void)state;
	/* 32-byte CDB: 16 extra bytes, AHSLength = 17 */
	off = put_ahs(buf, 0, 17, ISD_AHS_EXTENDED_CDB, 0x5a);
	assert_int_equal(off, 20);
	put_be16(buf + off, 5);
	buf[off + 2] = ISD_AHS_BIDI_READ_LEN;
	buf[off + 3] = 0;
	put_be32(buf + off + 4, 4096);
	off += 8;
	assert_int_equal(isd_ahs_parse(buf, off, &info), 0);
	assert_non_null(info.ext_cdb);
	assert_ptr_equal(info.ext_cdb, buf + 4);
	assert_int_equal(info.ext_cdb_len, 16);
	assert_int_equal(info.ext_cdb[0], 0x5a);
	assert_true(info.has_bidi_read_len);
	assert_int_equal(info.bidi_read_len, 4096);
}

static void
test_ahs_empty(void **state)
{
	struct isd_ahs_info info;

	(void)state;
	memset(&info, 0xff, sizeof(info));
	assert_int_equal(isd_ahs_parse(NULL, 0, &info), 0);
	assert_null(info.ext_cdb);
	assert_false(info.has_bidi_read_len);
}

static void
test_ahs_skips_vendor_type(void **state)
{
	uint8_t buf[32] = { 0 };
	struct isd_ahs_info info;
	uint32_t off;

	(void)state;
	off = put_ahs(buf, 0, 9, 200, 0x11);
	off = put_ahs(buf, off, 2, ISD_AHS_EXTENDED_CDB, 0x22);
	assert_int_equal(isd_ahs_parse(buf, off, &info), 0);
	assert_int_equal(info.ext_cdb_len, 1);
}

struct ahs_bad {
	const char *what;
	uint8_t bytes[24];
	uint32_t len;
};

static void
test_ahs_malformed(void **state)
{
	static const struct ahs_bad cases[] = {
		{ "length not a multiple of 4", { 0, 1, 2, 0 }, 3 },
		{ "entry runs past the area", { 0, 9, 1, 0, 1, 2, 3, 4 }, 8 },
		{ "huge AHSLength", { 0xff, 0xff, 1, 0 }, 4 },
		{ "zero AHSLength", { 0, 0, 1, 0 }, 4 },
		{ "ext CDB with no CDB byte", { 0, 1, 1, 0 }, 4 },
		{ "bidi with wrong length", { 0, 4, 2, 0, 0, 0, 0, 0 }, 8 },
		{ "bidi with long length", { 0, 9, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0 }, 16 },
		{ "reserved type 0", { 0, 1, 0, 0 }, 4 },
		{ "reserved type 3", { 0, 1, 3, 0 }, 4 },
		{ "two bidi entries", { 0, 5, 2, 0, 0, 0, 0, 1, 0, 5, 2, 0, 0, 0, 0, 1 }, 16 },
		{ "two ext CDB entries", { 0, 2, 1, 0, 9, 0, 0, 0, 0, 2, 1, 0, 9, 0, 0, 0 }, 16 },
		{ "trailing bytes after an entry",
		  { 0, 5, 2, 0, 0, 0, 0, 1, 0, 0, 0, 0 }, 12 },
	};
	struct isd_ahs_info info;

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		if (isd_ahs_parse(cases[i].bytes, cases[i].len, &info) != -EINVAL)
			fail_msg("AHS case '%s' was accepted", cases[i].what);
	}
}

static void
test_ahs_length_limits(void **state)
{
	uint8_t buf[ISD_MAX_AHS_LEN + 4] = { 0 };
	struct isd_ahs_info info;
	uint32_t off;

	(void)state;
	/* Largest legal extended CDB: 260-byte CDB, 244 bytes in the AHS. */
	off = put_ahs(buf, 0, 245, ISD_AHS_EXTENDED_CDB, 1);
	assert_int_equal(isd_ahs_parse(buf, off, &info), 0);
	assert_int_equal(info.ext_cdb_len, 244);
	/* One more byte is past what SPC allows. */
	off = put_ahs(buf, 0, 246, ISD_AHS_EXTENDED_CDB, 1);
	assert_int_equal(isd_ahs_parse(buf, off, &info), -EINVAL);
	/* The area itself cannot exceed 255 words. */
	assert_int_equal(isd_ahs_parse(buf, ISD_MAX_AHS_LEN + 4, &info), -EINVAL);
	/* A vendor AHS may fill the whole area. */
	memset(buf, 0, sizeof(buf));
	off = put_ahs(buf, 0, ISD_MAX_AHS_LEN - 3, 128, 0);
	assert_int_equal(off, ISD_MAX_AHS_LEN);
	assert_int_equal(isd_ahs_parse(buf, off, &info), 0);
	/* Padded entry whose padding would run past the area. */
	put_be16(buf, 2);
	buf[2] = ISD_AHS_EXTENDED_CDB;
	assert_int_equal(isd_ahs_parse(buf, 4, &info), -EINVAL);
}

static void
test_names(void **state)
{
	(void)state;
	assert_string_equal(isd_opcode_name(ISD_OP_SCSI_CMD), "SCSI Command");
	assert_string_equal(isd_opcode_name(ISD_OP_LOGIN_REQ | ISD_BHS_I), "Login Request");
	assert_string_equal(isd_opcode_name(ISD_OP_REJECT), "Reject");
	assert_string_equal(isd_opcode_name(0x1c), "vendor(0x1c)");
	assert_string_equal(isd_opcode_name(0x07), "unknown(0x07)");
	assert_string_equal(isd_opcode_name(0x3b), "unknown(0x3b)");
	for (unsigned op = 0; op < 256; op++)
		assert_non_null(isd_opcode_name((uint8_t)op));
	assert_string_equal(isd_login_status_str(ISD_LOGIN_STATUS_AUTH_FAILED),
			    "authentication failure");
	assert_string_equal(isd_login_status_str(0x0299), "initiator error (unknown detail)");
	assert_string_equal(isd_login_status_str(0x0900), "unknown status");
	assert_string_equal(isd_reject_reason_str(ISD_REJECT_PROTOCOL_ERROR), "protocol error");
	assert_string_equal(isd_reject_reason_str(0xee), "unknown reason");
}

/* RFC 3720 Appendix B.4: 32 bytes of zeros -> aa 36 91 8a on the wire. */
static void
test_digest_known_vector_le_on_wire(void **state)
{
	uint8_t zeros[32] = {0};
	struct iovec iov[3] = {
	    {zeros, 5},
	    {zeros + 5, 20},
	    {zeros + 25, 7},
	};
	uint8_t wire[4];
	uint32_t crc;

	(void)state;
	crc = isd_pdu_data_digest(iov, 3, NULL, 0);
	assert_int_equal(crc, 0x8a9136aa);
	isd_pdu_put_digest(wire, crc);
	assert_int_equal(wire[0], 0xaa);
	assert_int_equal(wire[1], 0x36);
	assert_int_equal(wire[2], 0x91);
	assert_int_equal(wire[3], 0x8a);
	assert_int_equal(isd_pdu_get_digest(wire), crc);
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
	assert_int_equal(isd_pdu_data_digest(&iov, 1, pad, 0), 0x46dd794e);
	/* 29 bytes + 3 pad bytes equal the CRC of the 32-byte padded block. */
	memset(inc + 29, 0, 3);
	iov.iov_len = 29;
	assert_int_equal(isd_pdu_data_digest(&iov, 1, pad, 3), isd_crc32c(inc, 32));
}

static void
test_hdr_digest_is_bhs_then_ahs(void **state)
{
	uint8_t buf[ISD_BHS_LEN + 8];

	(void)state;
	for (size_t i = 0; i < sizeof(buf); i++)
		buf[i] = (uint8_t)(i * 7);
	assert_int_equal(isd_pdu_hdr_digest(buf, NULL, 0), isd_crc32c(buf, ISD_BHS_LEN));
	assert_int_equal(isd_pdu_hdr_digest(buf, buf + ISD_BHS_LEN, 8),
			 isd_crc32c(buf, sizeof(buf)));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_bhs_check_table),
	    cmocka_unit_test(test_bhs_field_access),
	    cmocka_unit_test(test_pdu_alloc),
	    cmocka_unit_test(test_ahs_ext_cdb_and_bidi),
	    cmocka_unit_test(test_ahs_empty),
	    cmocka_unit_test(test_ahs_skips_vendor_type),
	    cmocka_unit_test(test_ahs_malformed),
	    cmocka_unit_test(test_ahs_length_limits),
	    cmocka_unit_test(test_names),
	    cmocka_unit_test(test_digest_known_vector_le_on_wire),
	    cmocka_unit_test(test_digest_covers_padding),
	    cmocka_unit_test(test_hdr_digest_is_bhs_then_ahs),
	};

	return cmocka_run_group_tests_name("pdu", tests, NULL, NULL);
}
