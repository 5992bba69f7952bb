/*
 * Unit tests for src/util/log.c: the escaping helper every call site uses for
 * values from the wire, and the backstop in isd_log_write() that keeps any
 * control byte, escaped at the call site or not, from forging a line.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "util/log.h"

static void
test_escape_plain_and_bytes(void **state)
{
	char out[64];

	(void)state;
	assert_string_equal(isd_log_escape_str(out, sizeof(out), "iqn.2026-11.org:a"),
			    "iqn.2026-11.org:a");
	assert_string_equal(isd_log_escape_str(out, sizeof(out), "a\nb"), "a\\x0ab");
	assert_string_equal(isd_log_escape_str(out, sizeof(out), "\r\x1b[2J"), "\\x0d\\x1b[2J");
	/* the backslash itself, so that "\x0a" typed by a peer cannot pass for a newline */
	assert_string_equal(isd_log_escape_str(out, sizeof(out), "a\\x0a"), "a\\x5cx0a");
	assert_string_equal(isd_log_escape_str(out, sizeof(out), "\x7f\x80\xff"),
			    "\\x7f\\x80\\xff");
	assert_string_equal(isd_log_escape(out, sizeof(out), "a\0b", 3), "a\\x00b");
	assert_string_equal(isd_log_escape_str(out, sizeof(out), NULL), "(null)");
	assert_string_equal(isd_log_escape_str(out, sizeof(out), ""), "");
}

static void
test_escape_bounded(void **state)
{
	char big[600], out[ISD_LOG_ESC_MAX], small[12];

	(void)state;
	memset(big, '\n', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	isd_log_escape_str(out, sizeof(out), big);
	assert_true(strlen(out) < sizeof(out));
	assert_non_null(strstr(out, "..."));
	/* cut at a whole \xNN, never in the middle of one */
	assert_int_equal((strlen(out) - 3) % 4, 0);
	assert_string_equal(out + strlen(out) - 7, "\\x0a...");

	/* exactly fitting text keeps its last character and gets no ellipsis */
	assert_string_equal(isd_log_escape_str(small, sizeof(small), "abcdefghijk"),
			    "abcdefghijk");
	assert_string_equal(isd_log_escape_str(small, sizeof(small), "abcdefghijkl"),
			    "abcdefgh...");
	assert_string_equal(isd_log_escape_str(small, 4, "abcdef"), "...");
	assert_string_equal(isd_log_escape_str(small, 4, "abc"), "abc");
}

/* Logs one message into a memory stream and returns what was written. */
static char *__attribute__((format(printf, 1, 2)))
logged(const char *fmt, ...)
{
	static char msg[4096];
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	va_list ap;

	assert_non_null(f);
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	isd_log_set_stream(f);
	isd_log_write(ISD_LOG_ERR, NULL, "%s", msg);
	isd_log_set_stream(NULL);
	fclose(f);
	return buf;
}

static void
test_backstop(void **state)
{
	char *out;

	(void)state;
	/* an unescaped newline and a forged "iserd: ERROR" line stay on one line */
	out = logged("login from %s failed", "iqn.x\n12:00:00.000 error: forged\r\x1b[1m");
	assert_non_null(strstr(out, "iqn.x\\x0a12:00:00.000 error: forged\\x0d\\x1b[1m failed"));
	assert_ptr_equal(strchr(out, '\n'), out + strlen(out) - 1);
	free(out);
	/* UTF-8 passes the backstop unchanged */
	out = logged("alias %s", "d\xc3\xa9j\xc3\xa0");
	assert_non_null(strstr(out, "alias d\xc3\xa9j\xc3\xa0\n"));
	free(out);
	/* a very long line is cut, still one line */
	{
		char big[3000];

		memset(big, '\t', sizeof(big) - 1);
		big[sizeof(big) - 1] = '\0';
		out = logged("%s", big);
		assert_ptr_equal(strchr(out, '\n'), out + strlen(out) - 1);
		free(out);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_escape_plain_and_bytes),
	    cmocka_unit_test(test_escape_bounded),
	    cmocka_unit_test(test_backstop),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
