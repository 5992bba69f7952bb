/*
 * Unit tests for src/initiator/sense.c: fixed (0x70/0x71) and descriptor
 * (0x72/0x73) sense data per SPC-5 §4.4, and the words for them.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "iserd/iserd.h"

static void
test_sense_fixed_lba_out_of_range(void **state)
{
	/* current, VALID, ILLEGAL REQUEST, information 0x00123456, ASC 0x21 ASCQ 0x00 */
	const uint8_t s[18] = {0xf0, 0, 0x05, 0x00, 0x12, 0x34, 0x56, 10, 0, 0, 0, 0, 0x21, 0x00};
	struct iserd_sense d;

	(void)state;
	assert_int_equal(iserd_sense_decode(s, sizeof(s), &d), 0);
	assert_int_equal(d.response_code, 0x70);
	assert_false(d.descriptor);
	assert_false(d.deferred);
	assert_int_equal(d.key, 5);
	assert_int_equal(d.asc, 0x21);
	assert_int_equal(d.ascq, 0x00);
	assert_true(d.info_valid);
	assert_int_equal(d.information, 0x123456);
}

static void
test_sense_fixed_sense_key_specific(void **state)
{
	/* INVALID FIELD IN CDB with SKSV, C/D=1, field pointer 2 */
	const uint8_t s[18] = {0x70, 0, 0x05, 0,    0,	  0, 0,	   10,	 0,
			       0,    0, 0,    0x24, 0x00, 0, 0xc0, 0x00, 0x02};
	struct iserd_sense d;

	(void)state;
	assert_int_equal(iserd_sense_decode(s, sizeof(s), &d), 0);
	assert_false(d.info_valid);
	assert_true(d.sks_valid);
	assert_int_equal(d.sks[0], 0xc0);
	assert_int_equal(d.sks[2], 0x02);
}

static void
test_sense_fixed_deferred_and_short(void **state)
{
	const uint8_t s[8] = {0x71, 0, 0x03, 0, 0, 0, 0, 0};
	struct iserd_sense d;

	(void)state;
	/* No ASC bytes present: key only. */
	assert_int_equal(iserd_sense_decode(s, sizeof(s), &d), 0);
	assert_true(d.deferred);
	assert_int_equal(d.key, 3);
	assert_int_equal(d.asc, 0);
	assert_int_equal(iserd_sense_decode(s, 2, &d), -EINVAL);
}

static void
test_sense_descriptor_with_information(void **state)
{
	/* 0x72, MEDIUM ERROR, 0x11/0x00, information descriptor with LBA 0x1122334455667788 */
	const uint8_t s[20] = {0x72, 0x03, 0x11, 0x00, 0,    0,	   0,	 12,   0x00, 0x0a,
			       0x80, 0,	   0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88};
	struct iserd_sense d;

	(void)state;
	assert_int_equal(iserd_sense_decode(s, sizeof(s), &d), 0);
	assert_true(d.descriptor);
	assert_int_equal(d.key, 3);
	assert_int_equal(d.asc, 0x11);
	assert_true(d.info_valid);
	assert_int_equal(d.information, 0x1122334455667788ull);
}

static void
test_sense_descriptor_truncated_descriptor_ignored(void **state)
{
	/* additional length claims more than present: the descriptor is skipped safely */
	const uint8_t s[12] = {0x73, 0x06, 0x29, 0x00, 0, 0, 0, 40, 0x00, 0x0a, 0x80, 0};
	struct iserd_sense d;

	(void)state;
	assert_int_equal(iserd_sense_decode(s, sizeof(s), &d), 0);
	assert_true(d.deferred);
	assert_int_equal(d.key, 6);
	assert_int_equal(d.asc, 0x29);
	assert_false(d.info_valid);
}

static void
test_sense_unknown_response_code(void **state)
{
	const uint8_t s[18] = {0x7f, 0, 5};
	struct iserd_sense d;

	(void)state;
	assert_int_equal(iserd_sense_decode(s, sizeof(s), &d), -EINVAL);
	assert_int_equal(iserd_sense_decode(NULL, 0, &d), -EINVAL);
}

static void
test_sense_strings(void **state)
{
	char buf[200];
	struct iserd_sense d;
	const uint8_t s[18] = {0x70, 0, 0x05, 0, 0, 0, 0, 10, 0, 0, 0, 0, 0x21, 0x00};
	const uint8_t odd[18] = {0x70, 0, 0x0b, 0, 0, 0, 0, 10, 0, 0, 0, 0, 0xee, 0x42};

	(void)state;
	assert_string_equal(iserd_sense_key_str(0x5), "ILLEGAL REQUEST");
	assert_string_equal(iserd_sense_key_str(0x6), "UNIT ATTENTION");
	assert_string_equal(iserd_sense_key_str(0xe), "MISCOMPARE");
	assert_string_equal(iserd_sense_asc_str(0x24, 0x00), "INVALID FIELD IN CDB");
	assert_string_equal(iserd_sense_asc_str(0x29, 0x00),
			    "POWER ON, RESET, OR BUS DEVICE RESET OCCURRED");
	assert_null(iserd_sense_asc_str(0xee, 0x42));
	assert_int_equal(iserd_sense_decode(s, sizeof(s), &d), 0);
	iserd_sense_format(&d, buf, sizeof(buf));
	assert_string_equal(buf, "ILLEGAL REQUEST: LOGICAL BLOCK ADDRESS OUT OF RANGE "
				 "(key 0x5, ASC/ASCQ 0x21/0x00)");
	assert_int_equal(iserd_sense_decode(odd, sizeof(odd), &d), 0);
	iserd_sense_format(&d, buf, sizeof(buf));
	assert_string_equal(buf, "ABORTED COMMAND: ASC/ASCQ 0xee/0x42 (key 0xb)");
	assert_string_equal(iserd_scsi_status_str(ISERD_STATUS_CHECK_CONDITION), "CHECK CONDITION");
	assert_string_equal(iserd_scsi_status_str(ISERD_STATUS_RESERVATION_CONFLICT),
			    "RESERVATION CONFLICT");
}

static void
test_sense_task_result_string(void **state)
{
	struct iserd_task t;
	const uint8_t s[18] = {0x70, 0, 0x03, 0, 0, 0, 0, 10, 0, 0, 0, 0, 0x11, 0x00};
	char buf[200];

	(void)state;
	iserd_task_init(&t);
	iserd_task_result_str(&t, buf, sizeof(buf));
	assert_string_equal(buf, "GOOD (0x00)");
	t.status = ISERD_STATUS_CHECK_CONDITION;
	memcpy(t.sense, s, sizeof(s));
	t.sense_len = sizeof(s);
	t.sense_valid = iserd_sense_decode(t.sense, t.sense_len, &t.sense_info) == 0;
	iserd_task_result_str(&t, buf, sizeof(buf));
	assert_string_equal(buf, "CHECK CONDITION: MEDIUM ERROR: UNRECOVERED READ ERROR "
				 "(key 0x3, ASC/ASCQ 0x11/0x00)");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_sense_fixed_lba_out_of_range),
	    cmocka_unit_test(test_sense_fixed_sense_key_specific),
	    cmocka_unit_test(test_sense_fixed_deferred_and_short),
	    cmocka_unit_test(test_sense_descriptor_with_information),
	    cmocka_unit_test(test_sense_descriptor_truncated_descriptor_ignored),
	    cmocka_unit_test(test_sense_unknown_response_code),
	    cmocka_unit_test(test_sense_strings),
	    cmocka_unit_test(test_sense_task_result_string),
	};

	return cmocka_run_group_tests_name("initiator_sense", tests, NULL, NULL);
}
