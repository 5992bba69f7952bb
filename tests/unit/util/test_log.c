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
#include <sys/stat.h>

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

/* Writes one line of each level to f, then reads f back from the start. */
static char *
logged_levels(FILE *f)
{
	static char out[4096];
	size_t n;

	isd_log_set_level(ISD_LOG_DEBUG);
	isd_log_set_stream(f);
	isd_log_write(ISD_LOG_ERR, NULL, "e %d", 1);
	isd_log_write(ISD_LOG_WARN, NULL, "w");
	isd_log_write(ISD_LOG_INFO, NULL, "i");
	isd_log_write(ISD_LOG_DEBUG, "tcp", "d");
	isd_log_set_stream(NULL);
	isd_log_set_level(ISD_LOG_INFO);
	fflush(f);
	rewind(f);
	n = fread(out, 1, sizeof(out) - 1, f);
	out[n] = '\0';
	return out;
}

static void
test_journal_prefixes(void **state)
{
	struct stat st;
	char env[64];
	FILE *f = tmpfile();

	(void)state;
	assert_non_null(f);
	assert_int_equal(fstat(fileno(f), &st), 0);
	snprintf(env, sizeof(env), "%llu:%llu", (unsigned long long)st.st_dev,
		 (unsigned long long)st.st_ino);
	assert_int_equal(setenv("JOURNAL_STREAM", env, 1), 0);
	assert_true(isd_log_stream_is_journal(f));
	/* journald: syslog priorities, no timestamp (the journal has its own) */
	assert_string_equal(logged_levels(f), "<3>error: e 1\n"
					      "<4>warn: w\n"
					      "<6>info: i\n"
					      "<7>debug tcp: d\n");
	fclose(f);
}

static void
test_journal_other_stream(void **state)
{
	struct stat st;
	char env[64], *out;
	FILE *f = tmpfile();

	(void)state;
	assert_non_null(f);
	assert_int_equal(fstat(fileno(f), &st), 0);
	/* inherited from a unit but stderr now goes elsewhere: the inode differs */
	snprintf(env, sizeof(env), "%llu:%llu", (unsigned long long)st.st_dev,
		 (unsigned long long)st.st_ino + 1);
	assert_int_equal(setenv("JOURNAL_STREAM", env, 1), 0);
	assert_false(isd_log_stream_is_journal(f));
	out = logged_levels(f);
	assert_true(out[0] >= '0' && out[0] <= '9' && out[2] == ':'); /* HH:MM:SS.mmm */
	assert_non_null(strstr(out, " error: e 1\n"));
	assert_null(strchr(out, '<'));
	fclose(f);

	/* malformed values, a memory stream (no fd) and no variable: plain text */
	f = tmpfile();
	assert_non_null(f);
	assert_int_equal(fstat(fileno(f), &st), 0);
	snprintf(env, sizeof(env), "%llu:%llux", (unsigned long long)st.st_dev,
		 (unsigned long long)st.st_ino);
	assert_int_equal(setenv("JOURNAL_STREAM", env, 1), 0);
	assert_false(isd_log_stream_is_journal(f));
	assert_int_equal(setenv("JOURNAL_STREAM", ":", 1), 0);
	assert_false(isd_log_stream_is_journal(f));
	assert_int_equal(setenv("JOURNAL_STREAM", "", 1), 0);
	assert_false(isd_log_stream_is_journal(f));
	out = logged("x");
	assert_null(strchr(out, '<'));
	free(out);
	assert_int_equal(unsetenv("JOURNAL_STREAM"), 0);
	assert_false(isd_log_stream_is_journal(f));
	assert_null(strchr(logged_levels(f), '<'));
	fclose(f);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_escape_plain_and_bytes),
	    cmocka_unit_test(test_escape_bounded),
	    cmocka_unit_test(test_backstop),
	    cmocka_unit_test(test_journal_prefixes),
	    cmocka_unit_test(test_journal_other_stream),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
