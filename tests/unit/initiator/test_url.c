/*
 * Unit tests for src/initiator/url.c: the iscsi:// and iser:// URLs of
 * libiscsi and QEMU, iscsi://[user[%password]@]host[:port]/target-iqn/lun.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "iserd/iserd.h"

#define IQN "iqn.2026-11.org.iserd:target0"

static void
test_url_full_defaults_port_3260(void **state)
{
	struct iserd_url u;
	char err[128];

	(void)state;
	assert_int_equal(iserd_url_parse_full("iscsi://10.0.0.1/" IQN "/3", &u, err, sizeof(err)),
			 0);
	assert_int_equal(u.transport, ISERD_TRANSPORT_TCP);
	assert_string_equal(u.host, "10.0.0.1");
	assert_int_equal(u.port, 3260);
	assert_string_equal(u.target, IQN);
	assert_true(u.has_lun);
	assert_int_equal(u.lun, 3);
	assert_string_equal(u.user, "");
	assert_string_equal(u.password, "");
	assert_int_equal(u.header_digest, -1);
}

static void
test_url_port_and_host_name(void **state)
{
	struct iserd_url u;

	(void)state;
	assert_int_equal(
	    iserd_url_parse_full("iscsi://storage.example.com:3261/" IQN "/0", &u, NULL, 0), 0);
	assert_string_equal(u.host, "storage.example.com");
	assert_int_equal(u.port, 3261);
	assert_int_equal(u.lun, 0);
}

static void
test_url_ipv6_brackets(void **state)
{
	struct iserd_url u;

	(void)state;
	assert_int_equal(iserd_url_parse_full("iscsi://[::1]:3300/" IQN "/1", &u, NULL, 0), 0);
	assert_string_equal(u.host, "::1");
	assert_int_equal(u.port, 3300);
	assert_int_equal(iserd_url_parse_full("iscsi://[fe80::1:2]/" IQN "/1", &u, NULL, 0), 0);
	assert_string_equal(u.host, "fe80::1:2");
	assert_int_equal(u.port, 3260);
}

static void
test_url_user_password(void **state)
{
	struct iserd_url u;

	(void)state;
	assert_int_equal(iserd_url_parse_full("iscsi://alice%s3cret@h/" IQN "/0", &u, NULL, 0), 0);
	assert_string_equal(u.user, "alice");
	assert_string_equal(u.password, "s3cret");
	assert_string_equal(u.host, "h");
}

static void
test_url_percent_and_at_in_password(void **state)
{
	struct iserd_url u;

	(void)state;
	/* The first '%' ends the user; the last '@' ends the password (libiscsi's rule). */
	assert_int_equal(
	    iserd_url_parse_full("iscsi://bob%pa%ss@w:rd/x@[::1]:3261/" IQN "/2", &u, NULL, 0), 0);
	assert_string_equal(u.user, "bob");
	assert_string_equal(u.password, "pa%ss@w:rd/x");
	assert_string_equal(u.host, "::1");
	assert_int_equal(u.port, 3261);
	assert_int_equal(u.lun, 2);
}

static void
test_url_user_without_password(void **state)
{
	struct iserd_url u;

	(void)state;
	assert_int_equal(iserd_url_parse_full("iscsi://carol@h/" IQN "/0", &u, NULL, 0), 0);
	assert_string_equal(u.user, "carol");
	assert_string_equal(u.password, "");
}

static void
test_url_iser_scheme(void **state)
{
	struct iserd_url u;

	(void)state;
	assert_int_equal(iserd_url_parse_full("iser://192.168.1.5/" IQN "/0", &u, NULL, 0), 0);
	assert_int_equal(u.transport, ISERD_TRANSPORT_ISER);
	assert_int_equal(u.port, 3260);
}

static void
test_url_missing_lun_rejected_when_full(void **state)
{
	struct iserd_url u;
	char err[160] = "";

	(void)state;
	assert_int_equal(iserd_url_parse_full("iscsi://h/" IQN, &u, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "LUN"));
	assert_int_equal(iserd_url_parse_full("iscsi://h/" IQN "/", &u, err, sizeof(err)), -EINVAL);
	/* ...but a portal URL may omit target and LUN. */
	assert_int_equal(iserd_url_parse_portal("iscsi://h/" IQN, &u, NULL, 0), 0);
	assert_false(u.has_lun);
	assert_int_equal(iserd_url_parse_portal("iscsi://h:3262", &u, NULL, 0), 0);
	assert_string_equal(u.target, "");
	assert_int_equal(u.port, 3262);
	assert_int_equal(iserd_url_parse_portal("iscsi://h/", &u, NULL, 0), 0);
}

static void
test_url_missing_target_rejected_when_full(void **state)
{
	struct iserd_url u;
	char err[160] = "";

	(void)state;
	assert_int_equal(iserd_url_parse_full("iscsi://h:3260", &u, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "target"));
}

static void
test_url_bad_urls(void **state)
{
	static const char *const bad[] = {
	    NULL,
	    "",
	    "http://h/" IQN "/0",
	    "iscsi:/h/" IQN "/0",
	    "iscsi://",
	    "iscsi:///" IQN "/0",
	    "iscsi://h:/" IQN "/0",
	    "iscsi://h:0/" IQN "/0",
	    "iscsi://h:65536/" IQN "/0",
	    "iscsi://h:32a/" IQN "/0",
	    "iscsi://[::1/" IQN "/0",
	    "iscsi://[]/" IQN "/0",
	    "iscsi://[::1]x/" IQN "/0",
	    "iscsi://h/" IQN "/abc",
	    "iscsi://h/" IQN "/-1",
	    "iscsi://h/" IQN "/99999",
	    "iscsi://h/" IQN "/1x",
	    "iscsi://h//0",
	    "iscsi://%pw@h/" IQN "/0",
	    "iscsi://h/" IQN "/0?header_digest=md5",
	    "iscsi://h/" IQN "/0?nosuchkey=1",
	    "iscsi://h/" IQN "/0?header_digest",
	};
	struct iserd_url u;
	char err[200];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		if (iserd_url_parse_full(bad[i], &u, err, sizeof(err)) != -EINVAL)
			fail_msg("accepted bad URL '%s'", bad[i] ? bad[i] : "(null)");
		assert_true(err[0] != '\0');
	}
}

static void
test_url_query_arguments(void **state)
{
	struct iserd_url u;

	(void)state;
	assert_int_equal(
	    iserd_url_parse_full("iscsi://u%p@h/" IQN "/0?header_digest=crc32c&"
				 "data_digest=none,crc32c&target_user=t&target_password=tp",
				 &u, NULL, 0),
	    0);
	assert_int_equal(u.header_digest, ISERD_DIGEST_CRC32C);
	assert_int_equal(u.data_digest, ISERD_DIGEST_NONE_CRC32C);
	assert_string_equal(u.target_user, "t");
	assert_string_equal(u.target_password, "tp");
	assert_string_equal(u.target, IQN);
}

static void
test_url_long_target_rejected(void **state)
{
	char buf[600];
	struct iserd_url u;

	(void)state;
	memset(buf, 0, sizeof(buf));
	strcpy(buf, "iscsi://h/iqn.2026-11.org.x:");
	memset(buf + strlen(buf), 'a', 300);
	strcat(buf, "/0");
	assert_int_equal(iserd_url_parse_full(buf, &u, NULL, 0), -EINVAL);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_url_full_defaults_port_3260),
	    cmocka_unit_test(test_url_port_and_host_name),
	    cmocka_unit_test(test_url_ipv6_brackets),
	    cmocka_unit_test(test_url_user_password),
	    cmocka_unit_test(test_url_percent_and_at_in_password),
	    cmocka_unit_test(test_url_user_without_password),
	    cmocka_unit_test(test_url_iser_scheme),
	    cmocka_unit_test(test_url_missing_lun_rejected_when_full),
	    cmocka_unit_test(test_url_missing_target_rejected_when_full),
	    cmocka_unit_test(test_url_bad_urls),
	    cmocka_unit_test(test_url_query_arguments),
	    cmocka_unit_test(test_url_long_target_rejected),
	};

	return cmocka_run_group_tests_name("initiator_url", tests, NULL, NULL);
}
