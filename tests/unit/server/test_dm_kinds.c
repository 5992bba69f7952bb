/*
 * The datamover registry (dm/dm_kind.h): every kind complete, schemes and
 * setting names unique, portal URLs found by scheme, the unknown-scheme
 * message naming every kind, each setting read from the configuration file
 * and checked against its range, and the docs listing every setting with its
 * default. The loops run over the table, so a new datamover is held to the
 * same rules without editing this file.
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

#include "dm/dm_kind.h"
#include "server/target.h"

static void
test_every_kind_is_complete(void **state)
{
	(void)state;
	assert_true(isd_dm_kind_count >= 2);
	assert_true(isd_dm_kind_count <= ISD_TARGET_DM_KINDS_MAX);
	for (unsigned i = 0; i < isd_dm_kind_count; i++) {
		const struct isd_dm_kind *k = isd_dm_kinds[i];

		assert_true(k->scheme != NULL && k->scheme[0] != '\0');
		assert_null(strchr(k->scheme, ':'));
		assert_non_null(k->listen);
		assert_non_null(k->port);
		assert_non_null(k->close);
		assert_non_null(k->stats);
		assert_true(k->knob_count >= 0 && k->knob_count <= ISD_DM_KNOBS_MAX);
		/* memory registration comes in pairs */
		assert_true((k->register_memory == NULL) == (k->unregister_memory == NULL));
		for (int j = 0; j < k->knob_count; j++) {
			const struct isd_dm_knob *kn = &k->knobs[j];

			assert_true(kn->min <= kn->dflt && kn->dflt <= kn->max);
			assert_true(!kn->is_bool || (kn->min == 0 && kn->max == 1));
		}
		for (unsigned o = 0; o < i; o++) {
			assert_string_not_equal(isd_dm_kinds[o]->scheme, k->scheme);
			for (int j = 0; j < k->knob_count; j++)
				for (int m = 0; m < isd_dm_kinds[o]->knob_count; m++)
					assert_string_not_equal(isd_dm_kinds[o]->knobs[m].name,
								k->knobs[j].name);
		}
	}
}

static void
test_portal_scheme_finds_kind(void **state)
{
	struct isd_target_portal_spec ps;
	char url[128], why[256];

	(void)state;
	for (unsigned i = 0; i < isd_dm_kind_count; i++) {
		snprintf(url, sizeof(url), "%s://192.0.2.1:3262", isd_dm_kinds[i]->scheme);
		assert_int_equal(isd_target_portal_parse(url, &ps, why, sizeof(why)), 0);
		assert_ptr_equal(ps.kind, isd_dm_kinds[i]);
		assert_int_equal(ps.transport, isd_dm_kinds[i]->transport);
		assert_int_equal(ps.port, 3262);
	}
	/* a bare address is TCP */
	assert_int_equal(isd_target_portal_parse("192.0.2.1", &ps, why, sizeof(why)), 0);
	assert_int_equal(ps.transport, ISD_TRANSPORT_TCP);
	/* a scheme must match whole; the message names every kind */
	assert_int_equal(isd_target_portal_parse("tc://192.0.2.1", &ps, why, sizeof(why)), -EINVAL);
	assert_non_null(strstr(why, "unknown transport"));
	for (unsigned i = 0; i < isd_dm_kind_count; i++) {
		snprintf(url, sizeof(url), "%s://ADDR[:PORT]", isd_dm_kinds[i]->scheme);
		assert_non_null(strstr(why, url));
	}
	assert_int_equal(isd_target_portal_parse("tcpx://192.0.2.1", &ps, why, sizeof(why)),
			 -EINVAL);
}

static int
load_text(const char *text, struct isd_target_cfg *cfg, char *err, size_t errlen)
{
	char path[] = "/tmp/isd-dmkinds-XXXXXX";
	int fd = mkstemp(path), rc;

	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	isd_target_cfg_init(cfg);
	rc = isd_target_cfg_load_file(path, cfg, err, errlen);
	unlink(path);
	return rc;
}

/* Every setting of every kind: read from the file, refused past its range. */
static void
test_settings_from_file(void **state)
{
	struct isd_target_cfg cfg;
	char text[512], err[512];

	(void)state;
	for (unsigned i = 0; i < isd_dm_kind_count; i++) {
		const struct isd_dm_kind *k = isd_dm_kinds[i];

		for (int j = 0; j < k->knob_count; j++) {
			const struct isd_dm_knob *kn = &k->knobs[j];
			const struct isd_dm_knob *found = NULL;

			if (kn->is_bool)
				snprintf(text, sizeof(text), "global = { %s = false; };\n", kn->name);
			else
				snprintf(text, sizeof(text), "global = { %s = %lld; };\n", kn->name,
					 (long long)kn->min);
			assert_int_equal(load_text(text, &cfg, err, sizeof(err)), 0);
			assert_true(isd_target_dm_setting_get(&cfg, kn->name) == kn->min);
			assert_non_null(isd_target_dm_setting(&cfg, kn->name, &found));
			assert_ptr_equal(found, kn);
			isd_target_cfg_fini(&cfg);
			if (!kn->is_bool) {
				snprintf(text, sizeof(text), "global = { %s = %lld; };\n", kn->name,
					 (long long)kn->max + 1);
				assert_int_not_equal(load_text(text, &cfg, err, sizeof(err)), 0);
				assert_non_null(strstr(err, kn->name));
				isd_target_cfg_fini(&cfg);
			}
		}
	}
	/* unset stays -1 (the kind's default applies at start) */
	isd_target_cfg_init(&cfg);
	for (unsigned i = 0; i < isd_dm_kind_count; i++)
		for (int j = 0; j < isd_dm_kinds[i]->knob_count; j++)
			assert_true(isd_target_dm_setting_get(&cfg,
							      isd_dm_kinds[i]->knobs[j].name) == -1);
	isd_target_cfg_fini(&cfg);
}

static char *
slurp(const char *rel)
{
	const char *marker = strstr(__FILE__, "tests/unit/server/");
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

/* The settings table of docs/iserd.md has a row per setting, with its default. */
static void
test_docs_list_every_setting(void **state)
{
	char *md = slurp("docs/iserd.md");
	char row[128];

	(void)state;
	if (md == NULL)
		skip();
	for (unsigned i = 0; i < isd_dm_kind_count; i++) {
		for (int j = 0; j < isd_dm_kinds[i]->knob_count; j++) {
			const struct isd_dm_knob *kn = &isd_dm_kinds[i]->knobs[j];

			if (kn->is_bool)
				snprintf(row, sizeof(row), "| `%s` | boolean | %s |", kn->name,
					 kn->dflt ? "true" : "false");
			else
				snprintf(row, sizeof(row), "| `%s` | integer | %lld |", kn->name,
					 (long long)kn->dflt);
			if (strstr(md, row) == NULL)
				fail_msg("docs/iserd.md has no row '%s'", row);
		}
	}
	free(md);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_every_kind_is_complete),
		cmocka_unit_test(test_portal_scheme_finds_kind),
		cmocka_unit_test(test_settings_from_file),
		cmocka_unit_test(test_docs_list_every_setting),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
