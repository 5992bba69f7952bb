#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <string.h>

#include "dm/iser/iser_proto.h"

/* A SCSI READ header as Linux ib_iser sends it: flags 0x14 (ctrl|RSV), read STag/VA. */
static const uint8_t k_read_hdr[ISD_ISER_HDR_LEN] = {
	0x14, 0, 0, 0,
	0, 0, 0, 0,                             /* write STag */
	0, 0, 0, 0, 0, 0, 0, 0,                 /* write VA */
	0x00, 0x12, 0x34, 0x56,                 /* read STag @16 */
	0x00, 0x00, 0x7f, 0xaa, 0xbb, 0xcc, 0xd0, 0x00, /* read VA @20 */
};

static void
test_hdr_decode_read_command(void **state)
{
	struct isd_iser_hdr h;

	(void)state;
	assert_int_equal(isd_iser_hdr_decode(k_read_hdr, sizeof(k_read_hdr), &h), 0);
	assert_int_equal(h.opcode, ISD_ISER_OP_CTRL);
	assert_true(h.rsv);
	assert_false(h.wsv);
	assert_int_equal(h.read_stag, 0x123456);
	assert_true(h.read_va == 0x00007faabbccd000ull);
	assert_int_equal(h.write_stag, 0);
}

static void
test_hdr_roundtrip_write_and_read(void **state)
{
	struct isd_iser_hdr h = {
		.opcode = ISD_ISER_OP_CTRL, .wsv = true, .rsv = true,
		.write_stag = 0xdeadbeef, .write_va = 0x1122334455667788ull,
		.read_stag = 0x01020304, .read_va = 0x8877665544332211ull,
	}, back;
	uint8_t buf[ISD_ISER_HDR_LEN];

	(void)state;
	isd_iser_hdr_encode(&h, buf);
	assert_int_equal(buf[0], 0x1c);
	assert_int_equal(isd_iser_hdr_decode(buf, sizeof(buf), &back), 0);
	assert_true(back.wsv && back.rsv);
	assert_int_equal(back.write_stag, h.write_stag);
	assert_true(back.write_va == h.write_va);
	assert_int_equal(back.read_stag, h.read_stag);
	assert_true(back.read_va == h.read_va);
}

static void
test_hdr_invalid_fields_are_not_reported(void **state)
{
	uint8_t buf[ISD_ISER_HDR_LEN];
	struct isd_iser_hdr h;

	(void)state;
	memset(buf, 0xff, sizeof(buf));
	buf[0] = ISD_ISER_OP_CTRL;              /* neither WSV nor RSV */
	assert_int_equal(isd_iser_hdr_decode(buf, sizeof(buf), &h), 0);
	assert_int_equal(h.write_stag, 0);
	assert_true(h.read_va == 0);
}

static void
test_hdr_rejects_short_and_unknown(void **state)
{
	uint8_t buf[ISD_ISER_HDR_LEN] = {0x10};
	struct isd_iser_hdr h;

	(void)state;
	assert_int_equal(isd_iser_hdr_decode(buf, ISD_ISER_HDR_LEN - 1, &h), -EINVAL);
	buf[0] = 0x40;
	assert_int_equal(isd_iser_hdr_decode(buf, sizeof(buf), &h), -EINVAL);
	buf[0] = 0x00;
	assert_int_equal(isd_iser_hdr_decode(buf, sizeof(buf), &h), -EINVAL);
	assert_int_equal(isd_iser_hdr_decode(NULL, 100, &h), -EINVAL);
}

static void
test_hello_roundtrip(void **state)
{
	struct isd_iser_hello h = {.reply = true, .reject = true, .max_ver = 1,
				   .min_or_cur_ver = 1, .ird_or_ord = 16}, back;
	uint8_t buf[ISD_ISER_HELLO_LEN];

	(void)state;
	isd_iser_hello_encode(&h, buf);
	assert_int_equal(buf[0], 0x31);
	assert_int_equal(buf[1], 0x11);
	assert_int_equal(isd_iser_hello_decode(buf, sizeof(buf), &back), 0);
	assert_true(back.reply && back.reject);
	assert_int_equal(back.ird_or_ord, 16);
	buf[0] = 0x10;
	assert_int_equal(isd_iser_hello_decode(buf, sizeof(buf), &back), -EINVAL);
}

static void
test_cm_private_data(void **state)
{
	struct isd_iser_cm cm;
	uint8_t linux_req[4] = {0x80, 0, 0, 0}, libiscsi_req[4] = {0xc0, 0, 0, 0}, out[4];

	(void)state;
	isd_iser_cm_decode(linux_req, sizeof(linux_req), &cm);
	assert_true(cm.present);
	assert_true(cm.zbva_not_supported);
	assert_false(cm.send_w_inv_not_supported);
	isd_iser_cm_decode(libiscsi_req, sizeof(libiscsi_req), &cm);
	assert_true(cm.send_w_inv_not_supported);
	isd_iser_cm_decode(NULL, 0, &cm);       /* tgt's REP carries none */
	assert_false(cm.present || cm.zbva_not_supported || cm.send_w_inv_not_supported);
	cm.zbva_not_supported = true;
	cm.send_w_inv_not_supported = true;
	isd_iser_cm_encode(&cm, out);
	assert_memory_equal(out, libiscsi_req, 4);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_hdr_decode_read_command),
		cmocka_unit_test(test_hdr_roundtrip_write_and_read),
		cmocka_unit_test(test_hdr_invalid_fields_are_not_reported),
		cmocka_unit_test(test_hdr_rejects_short_and_unknown),
		cmocka_unit_test(test_hello_roundtrip),
		cmocka_unit_test(test_cm_private_data),
	};

	return cmocka_run_group_tests_name("iser_proto", tests, NULL, NULL);
}
