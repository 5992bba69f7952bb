/*
 * The backing store registry: lookup by scheme, the unknown-scheme message,
 * every kind's spec parser (canonical forms, bad sizes and options), and that
 * --help and the docs list every registered kind. The loops run over the
 * table, so a new kind is held to the same rules without editing this file.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "bstore/bstore.h"
#include "reactor/reactor.h"
#include "server/target.h"

static struct isd_bstore_spec g_spec;   /* 8K: kept off the stack */

static void
test_every_kind_is_complete(void **state)
{
	(void)state;
	assert_true(isd_bstore_kind_count >= 3);
	for (unsigned i = 0; i < isd_bstore_kind_count; i++) {
		const struct isd_bstore_kind *k = isd_bstore_kinds[i];
		size_t sl = strlen(k->scheme);
		char spec[64];

		assert_true(sl > 0 && strchr(k->scheme, ':') == NULL);
		/* the usage is a spec of this scheme */
		assert_int_equal(strncmp(k->usage, k->scheme, sl), 0);
		assert_int_equal(k->usage[sl], ':');
		assert_non_null(k->help);
		assert_true(strlen(k->help) < 30);
		assert_true(k->product != NULL && k->product[0] != '\0');
		assert_true(strlen(k->product) <= 16);
		assert_non_null(k->parse);
		assert_non_null(k->create);
		snprintf(spec, sizeof(spec), "%s:whatever", k->scheme);
		assert_ptr_equal(isd_bstore_kind_find(spec), k);
		/* schemes are unique */
		for (unsigned j = 0; j < i; j++)
			assert_string_not_equal(isd_bstore_kinds[j]->scheme, k->scheme);
	}
}

static void
test_find(void **state)
{
	(void)state;
	assert_string_equal(isd_bstore_kind_find("ram:1G")->scheme, "ram");
	assert_string_equal(isd_bstore_kind_find("file:/x")->scheme, "file");
	assert_string_equal(isd_bstore_kind_find("dev:/dev/sda")->scheme, "dev");
	/* the whole scheme must match, and it ends at the first ':' */
	assert_null(isd_bstore_kind_find("ramx:1G"));
	assert_null(isd_bstore_kind_find("ra:1G"));
	assert_null(isd_bstore_kind_find("RAM:1G"));
	assert_null(isd_bstore_kind_find("ram"));
	assert_null(isd_bstore_kind_find(""));
	assert_null(isd_bstore_kind_find(":1G"));
	assert_null(isd_bstore_kind_find(NULL));
}

static void
test_unknown_scheme(void **state)
{
	const char *bad[] = { "nbd:host", "ram", "", ":1G", "disk:/tmp/x", "RAM:1G" };
	char why[512];

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		why[0] = '\0';
		assert_int_equal(isd_bstore_spec_parse(bad[i], &g_spec, why, sizeof(why)),
				 -EINVAL);
		/* the message the target layer has always given, listing every kind */
		assert_int_equal(strncmp(why, "expected ram:SIZE, ", 19), 0);
		for (unsigned k = 0; k < isd_bstore_kind_count; k++)
			assert_non_null(strstr(why, isd_bstore_kinds[k]->usage));
	}
	/* a NULL or short why is fine */
	assert_int_equal(isd_bstore_spec_parse("nbd:host", &g_spec, NULL, 0), -EINVAL);
	assert_int_equal(isd_bstore_spec_parse("nbd:host", &g_spec, why, 4), -EINVAL);
	assert_int_equal(strlen(why), 3);
}

static void
test_usage_join(void **state)
{
	char buf[512], small[8];
	int n;

	(void)state;
	n = isd_bstore_kinds_usage(buf, sizeof(buf), ", ", " or ");
	assert_int_equal(n, (int)strlen(buf));
	/* in ISD_BSTORE_KINDS order; " or " before the last only */
	assert_int_equal(strncmp(buf, "ram:SIZE, file:PATH[,size=SIZE][,ro]", 36), 0);
	assert_non_null(strstr(buf, " or "));
	assert_null(strstr(strstr(buf, " or "), ", "));
	/* truncation still terminates, and says how long it would have been */
	assert_int_equal(isd_bstore_kinds_usage(small, sizeof(small), ", ", " or "), n);
	assert_string_equal(small, "ram:SIZ");
}

/* Specs every kind must refuse, each with a reason. */
static void
test_every_parser_rejects_garbage(void **state)
{
	static const char *tails[] = { "", ",", "1G,nosuchoption", "1G,size=1G,bogus=1" };
	char spec[128], why[256];

	(void)state;
	for (unsigned i = 0; i < isd_bstore_kind_count; i++) {
		for (size_t t = 0; t < sizeof(tails) / sizeof(tails[0]); t++) {
			snprintf(spec, sizeof(spec), "%s:%s", isd_bstore_kinds[i]->scheme,
				 tails[t]);
			why[0] = '\0';
			if (isd_bstore_spec_parse(spec, &g_spec, why, sizeof(why)) == 0)
				fail_msg("'%s' was accepted", spec);
			assert_true(why[0] != '\0');
		}
	}
}

struct row {
	const char *spec;
	const char *want;       /* canonical spec, or the start of the error */
	bool ok;
	bool ro;
};

static void
check_rows(const struct row *rows, size_t n)
{
	char why[256];

	for (size_t i = 0; i < n; i++) {
		int rc;

		why[0] = '\0';
		rc = isd_bstore_spec_parse(rows[i].spec, &g_spec, why, sizeof(why));
		if (rows[i].ok) {
			if (rc != 0)
				fail_msg("'%s': %s", rows[i].spec, why);
			assert_string_equal(g_spec.canon, rows[i].want);
			assert_ptr_equal(g_spec.kind, isd_bstore_kind_find(rows[i].spec));
			assert_int_equal(g_spec.read_only, rows[i].ro);
		} else {
			if (rc != -EINVAL)
				fail_msg("'%s' gave %d", rows[i].spec, rc);
			if (strncmp(why, rows[i].want, strlen(rows[i].want)) != 0)
				fail_msg("'%s': '%s' does not start '%s'", rows[i].spec, why,
					 rows[i].want);
		}
	}
}

static void
test_parsers(void **state)
{
	static const struct row rows[] = {
		{ "ram:1G", "ram:1G", true, false },
		{ "ram:1024m", "ram:1G", true, false },
		{ "ram:1GiB", "ram:1G", true, false },
		{ "ram:1536K", "ram:1536K", true, false },
		{ "ram:1000", "ram:1000", true, false },
		{ "ram:", "ram: needs a size, e.g. ram:1G", false, false },
		{ "ram:0", "bad size '0'", false, false },
		{ "ram:12Q", "bad size '12Q' (use e.g. 512M, 1G)", false, false },
		{ "ram:99999999999T", "bad size '99999999999T'", false, false },
		{ "ram:1G,ro", "bad size '1G,ro'", false, false },
		{ "file:/x", "file:/x", true, false },
		{ "file:/x,ro", "file:/x", true, true },
		{ "file:/x,size=1024M,ro", "file:/x,size=1G", true, true },
		{ "file:", "file: needs a path", false, false },
		{ "file:,size=1G", "file: needs a path", false, false },
		{ "file:/x,size=big", "bad size 'big'", false, false },
		{ "file:/x,size=0", "bad size '0'", false, false },
		{ "file:/x,size=", "bad size ''", false, false },
		{ "file:/tmp/x,y.img,size=1G", "unknown option 'y.img'", false, false },
		{ "dev:/dev/sdb", "dev:/dev/sdb", true, false },
		{ "dev:/dev/sdb,ro", "dev:/dev/sdb", true, true },
		{ "dev:", "dev: needs a device path", false, false },
		{ "dev:/dev/sda,size=1G", "unknown option 'size=1G' (ro", false, false },
	};

	(void)state;
	check_rows(rows, sizeof(rows) / sizeof(rows[0]));
}

static void
test_open_unknown_and_bad(void **state)
{
	struct isd_reactor *r;
	struct isd_bstore *bs = NULL;
	char err[512];

	(void)state;
	assert_int_equal(isd_reactor_create(&r), 0);
	assert_int_equal(isd_bstore_open(r, "nbd:host", &bs, err, sizeof(err)), -EINVAL);
	assert_int_equal(strncmp(err, "expected ram:SIZE", 17), 0);
	assert_int_equal(isd_bstore_open(r, "ram:12Q", &bs, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "bad size '12Q' (use e.g. 512M, 1G)");
	assert_null(bs);
	isd_reactor_destroy(r);
}

static char *
slurp(const char *rel)
{
	const char *marker = strstr(__FILE__, "tests/unit/bstore/");
	char path[4096];
	FILE *f;
	char *buf;
	long n;

	if (marker == NULL)
		return NULL;
	snprintf(path, sizeof(path), "%.*s%s", (int)(marker - __FILE__), __FILE__, rel);
	f = fopen(path, "r");
	if (f == NULL)
		return NULL;
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	rewind(f);
	buf = calloc(1, (size_t)n + 1);
	assert_non_null(buf);
	assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
	fclose(f);
	return buf;
}

/* --help comes from the registry; the docs must keep up with it by hand. */
static void
test_help_and_docs_list_every_kind(void **state)
{
	const char *help = isd_target_usage();
	char *md = slurp("docs/iserd.md"), *man = slurp("docs/iserd.8");

	(void)state;
	if (md == NULL || man == NULL) {
		free(md);
		free(man);
		skip();
	}
	for (unsigned i = 0; i < isd_bstore_kind_count; i++) {
		const struct isd_bstore_kind *k = isd_bstore_kinds[i];
		char want[128];

		if (strstr(help, k->usage) == NULL || strstr(help, k->help) == NULL)
			fail_msg("--help does not list %s", k->usage);
		snprintf(want, sizeof(want), "- `%s`", k->usage);
		if (strstr(md, want) == NULL)
			fail_msg("docs/iserd.md has no '%s' item under Backing stores", want);
		snprintf(want, sizeof(want), ".BI %s: ", k->scheme);
		if (strstr(man, want) == NULL)
			fail_msg("docs/iserd.8 does not list '%s'", want);
	}
	free(md);
	free(man);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_every_kind_is_complete),
		cmocka_unit_test(test_find),
		cmocka_unit_test(test_unknown_scheme),
		cmocka_unit_test(test_usage_join),
		cmocka_unit_test(test_every_parser_rejects_garbage),
		cmocka_unit_test(test_parsers),
		cmocka_unit_test(test_open_unknown_and_bad),
		cmocka_unit_test(test_help_and_docs_list_every_kind),
	};

	return cmocka_run_group_tests_name("bstore_registry", tests, NULL, NULL);
}
