/*
 * Unit tests for cli/iserinit_env.c: the initiator name from an open-iscsi
 * initiatorname.iscsi file and CHAP credentials from libiscsi's environment
 * variables.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "iserinit.h"

static char g_dir[256];

static int
setup(void **state)
{
	(void)state;
	snprintf(g_dir, sizeof(g_dir), "%s/iserinit-env.XXXXXX",
		 getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
	return mkdtemp(g_dir) != NULL ? 0 : -1;
}

static int
teardown(void **state)
{
	char p[300];

	(void)state;
	snprintf(p, sizeof(p), "%s/f", g_dir);
	unlink(p);
	rmdir(g_dir);
	return 0;
}

/* Writes text to the test's file and returns its path. */
static const char *
file_with(const char *text)
{
	static char p[300];
	FILE *f;

	snprintf(p, sizeof(p), "%s/f", g_dir);
	f = fopen(p, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
	return p;
}

static void
test_initiatorname(void **state)
{
	char name[ISERD_NAME_MAX], err[256];
	const char *p;

	(void)state;
	/* as open-iscsi writes it, with its comment */
	p = file_with("## DO NOT EDIT OR REMOVE THIS FILE!\n"
		      "## If you remove this file, the iSCSI daemon will not start.\n"
		      "InitiatorName=iqn.1993-08.org.debian:01:5b6c2f0e1a\n");
	assert_int_equal(ii_read_initiatorname(p, name, sizeof(name), err, sizeof(err)), 1);
	assert_string_equal(name, "iqn.1993-08.org.debian:01:5b6c2f0e1a");
	/* blanks around, CRLF, other keys, the last name wins */
	p = file_with("GenerateName=yes\r\n  InitiatorName = iqn.a:1 \r\n"
		      "InitiatorAlias=web1\n#InitiatorName=iqn.commented:out\n"
		      "InitiatorName=iqn.b:2\n");
	assert_int_equal(ii_read_initiatorname(p, name, sizeof(name), err, sizeof(err)), 1);
	assert_string_equal(name, "iqn.b:2");
	/* no name yet (GenerateName before iscsid ran), an empty file */
	p = file_with("GenerateName=yes\n");
	assert_int_equal(ii_read_initiatorname(p, name, sizeof(name), err, sizeof(err)), 0);
	p = file_with("");
	assert_int_equal(ii_read_initiatorname(p, name, sizeof(name), err, sizeof(err)), 0);
	/* absent: nothing, no error */
	assert_int_equal(ii_read_initiatorname("/nonexistent/initiatorname.iscsi", name,
					       sizeof(name), err, sizeof(err)),
			 0);
}

static void
test_initiatorname_bad(void **state)
{
	char name[ISERD_NAME_MAX], err[256], big[600];
	const char *p;

	(void)state;
	p = file_with("InitiatorName=\n");
	assert_int_equal(ii_read_initiatorname(p, name, sizeof(name), err, sizeof(err)), -1);
	assert_non_null(strstr(err, ":1: empty InitiatorName"));
	memset(big, 'a', sizeof(big));
	memcpy(big, "InitiatorName=iqn.", 18);
	big[sizeof(big) - 2] = '\n';
	big[sizeof(big) - 1] = '\0';
	p = file_with(big);
	assert_int_equal(ii_read_initiatorname(p, name, sizeof(name), err, sizeof(err)), -1);
	assert_non_null(strstr(err, "longer than 223 bytes"));
	/* a directory is no file of names */
	assert_int_equal(ii_read_initiatorname(g_dir, name, sizeof(name), err, sizeof(err)), -1);
}

static void
test_initiatorname_path(void **state)
{
	(void)state;
	unsetenv("ISERINIT_INITIATORNAME_FILE");
	assert_string_equal(ii_initiatorname_path(), "/etc/iscsi/initiatorname.iscsi");
	setenv("ISERINIT_INITIATORNAME_FILE", "/tmp/x", 1);
	assert_string_equal(ii_initiatorname_path(), "/tmp/x");
	setenv("ISERINIT_INITIATORNAME_FILE", "", 1);
	assert_string_equal(ii_initiatorname_path(), "/etc/iscsi/initiatorname.iscsi");
	unsetenv("ISERINIT_INITIATORNAME_FILE");
}

static void
test_env_cred(void **state)
{
	char user[ISERD_SECRET_MAX], secret[ISERD_SECRET_MAX], err[256], big[400];

	(void)state;
	unsetenv("LIBISCSI_CHAP_USERNAME");
	unsetenv("LIBISCSI_CHAP_PASSWORD");
	assert_int_equal(ii_env_cred("LIBISCSI_CHAP_USERNAME", "LIBISCSI_CHAP_PASSWORD", user,
				     sizeof(user), secret, sizeof(secret), err, sizeof(err)),
			 0);
	setenv("LIBISCSI_CHAP_USERNAME", "alice", 1);
	setenv("LIBISCSI_CHAP_PASSWORD", "a:secret%with@odd/bytes", 1);
	assert_int_equal(ii_env_cred("LIBISCSI_CHAP_USERNAME", "LIBISCSI_CHAP_PASSWORD", user,
				     sizeof(user), secret, sizeof(secret), err, sizeof(err)),
			 1);
	assert_string_equal(user, "alice");
	assert_string_equal(secret, "a:secret%with@odd/bytes");
	/* one without the other is a mistake worth a word, not silence */
	unsetenv("LIBISCSI_CHAP_PASSWORD");
	assert_int_equal(ii_env_cred("LIBISCSI_CHAP_USERNAME", "LIBISCSI_CHAP_PASSWORD", user,
				     sizeof(user), secret, sizeof(secret), err, sizeof(err)),
			 -1);
	assert_string_equal(err, "LIBISCSI_CHAP_USERNAME is set but LIBISCSI_CHAP_PASSWORD is not");
	unsetenv("LIBISCSI_CHAP_USERNAME");
	setenv("LIBISCSI_CHAP_TARGET_PASSWORD", "targetsecret", 1);
	assert_int_equal(ii_env_cred("LIBISCSI_CHAP_TARGET_USERNAME",
				     "LIBISCSI_CHAP_TARGET_PASSWORD", user, sizeof(user), secret,
				     sizeof(secret), err, sizeof(err)),
			 -1);
	assert_string_equal(
	    err, "LIBISCSI_CHAP_TARGET_PASSWORD is set but LIBISCSI_CHAP_TARGET_USERNAME is not");
	unsetenv("LIBISCSI_CHAP_TARGET_PASSWORD");
	/* too long for the library's buffers */
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	setenv("LIBISCSI_CHAP_USERNAME", "bob", 1);
	setenv("LIBISCSI_CHAP_PASSWORD", big, 1);
	assert_int_equal(ii_env_cred("LIBISCSI_CHAP_USERNAME", "LIBISCSI_CHAP_PASSWORD", user,
				     sizeof(user), secret, sizeof(secret), err, sizeof(err)),
			 -1);
	assert_non_null(strstr(err, "longer than 255 bytes"));
	unsetenv("LIBISCSI_CHAP_USERNAME");
	unsetenv("LIBISCSI_CHAP_PASSWORD");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_initiatorname),
	    cmocka_unit_test(test_initiatorname_bad),
	    cmocka_unit_test(test_initiatorname_path),
	    cmocka_unit_test(test_env_cred),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
