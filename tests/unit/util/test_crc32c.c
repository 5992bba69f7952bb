/* Unit tests for src/util/crc32c.c against known CRC32C (Castagnoli) vectors. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "util/crc32c.h"

static void
test_crc32c_known_vectors(void **state)
{
	uint8_t zeros[32], ones[32], inc[32], dec[32];

	(void)state;
	memset(zeros, 0, sizeof(zeros));
	memset(ones, 0xff, sizeof(ones));
	for (int i = 0; i < 32; i++) {
		inc[i] = (uint8_t)i;
		dec[i] = (uint8_t)(31 - i);
	}
	/* RFC 3720 Appendix B.4 / RFC 7143 test patterns */
	assert_int_equal(isd_crc32c(zeros, 32), 0x8a9136aa);
	assert_int_equal(isd_crc32c(ones, 32), 0x62a8ab43);
	assert_int_equal(isd_crc32c(inc, 32), 0x46dd794e);
	assert_int_equal(isd_crc32c(dec, 32), 0x113fdb5c);
	/* the classic check value */
	assert_int_equal(isd_crc32c("123456789", 9), 0xe3069283);
	assert_int_equal(isd_crc32c("", 0), 0);
}

static void
test_crc32c_running(void **state)
{
	const char *s = "123456789";
	uint32_t crc = ISD_CRC32C_INIT;

	(void)state;
	for (int i = 0; i < 9; i++)
		crc = isd_crc32c_update(crc, s + i, 1);
	assert_int_equal(isd_crc32c_final(crc), 0xe3069283);
	crc = isd_crc32c_update(ISD_CRC32C_INIT, s, 4);
	crc = isd_crc32c_update(crc, s + 4, 0);
	crc = isd_crc32c_update(crc, s + 4, 5);
	assert_int_equal(isd_crc32c_final(crc), 0xe3069283);
}

static void
test_crc32c_iov_and_pad(void **state)
{
	char a[] = "1234", b[] = "56789";
	struct iovec iov[3] = { { a, 4 }, { b, 0 }, { b, 5 } };
	uint8_t padded[8] = { 'a', 'b', 'c', 'd', 'e', 0, 0, 0 };

	(void)state;
	assert_int_equal(isd_crc32c_iov(iov, 3, 0), 0xe3069283);
	/* data digest over data plus its padding: same as the padded buffer */
	struct iovec one = { padded, 5 };
	assert_int_equal(isd_crc32c_iov(&one, 1, 3), isd_crc32c(padded, 8));
	assert_int_equal(isd_crc32c_iov(NULL, 0, 0), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_crc32c_known_vectors),
		cmocka_unit_test(test_crc32c_running),
		cmocka_unit_test(test_crc32c_iov_and_pad),
	};

	return cmocka_run_group_tests_name("crc32c", tests, NULL, NULL);
}
