/*
 * Unit tests for iserd_escape(): what a target sent, made safe to print (the
 * iserinit CLI prints discovery names and addresses, the TargetAlias and the
 * unit serial number through it).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "iserd/iserd.h"

static void
test_escape_plain_name_unchanged(void **state)
{
	char b[256];

	(void)state;
	assert_string_equal(iserd_escape(b, sizeof(b), "iqn.2026-11.org.iserd:t0"),
			    "iqn.2026-11.org.iserd:t0");
	assert_string_equal(iserd_escape(b, sizeof(b), "10.0.0.1:3260"), "10.0.0.1:3260");
}

static void
test_escape_forged_line_and_terminal_escape(void **state)
{
	char b[256];

	(void)state;
	/* a name that would print a second, forged line and clear the screen */
	assert_string_equal(iserd_escape(b, sizeof(b), "iqn.x\n10.6.6.6:3260,1 iqn.evil\x1b[2J"),
			    "iqn.x\\x0a10.6.6.6:3260,1 iqn.evil\\x1b[2J");
	assert_string_equal(iserd_escape(b, sizeof(b), "a\\b\x7f\xff"), "a\\x5cb\\x7f\\xff");
	assert_null(memchr(b, '\n', strlen(b)));
}

static void
test_escape_cut_and_edges(void **state)
{
	char b[12];

	(void)state;
	iserd_escape(b, sizeof(b), "0123456789abcdef");
	assert_true(strlen(b) < sizeof(b));
	assert_non_null(strstr(b, "..."));
	/* never cuts inside an escape */
	iserd_escape(b, sizeof(b), "\n\n\n\n\n\n");
	assert_true(strlen(b) < sizeof(b));
	assert_null(strstr(b, "\\x0...") );
	assert_string_equal(iserd_escape(b, sizeof(b), NULL), "(null)");
	assert_string_equal(iserd_escape(b, 3, "abc"), "");
	assert_string_equal(iserd_escape(NULL, 16, "abc"), "");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_escape_plain_name_unchanged),
		cmocka_unit_test(test_escape_forged_line_and_terminal_escape),
		cmocka_unit_test(test_escape_cut_and_edges),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
