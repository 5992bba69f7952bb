/* metrics_listen: the --metrics-listen flag, the global setting, and the
 * ADDR:PORT parser behind both. */
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

#include "server/target.h"

static int
parse(struct isd_target_cfg *cfg, char *err, size_t errlen, const char *a1, const char *a2,
      const char *a3)
{
	char *argv[5] = {"iserd", (char *)a1, (char *)a2, (char *)a3, NULL};
	int argc = 1;

	while (argc < 4 && argv[argc] != NULL)
		argc++;
	isd_target_cfg_init(cfg);
	err[0] = '\0';
	return isd_target_cfg_parse_args(argc, argv, cfg, err, errlen);
}

static void
test_listen_parse(void **state)
{
	static const struct {
		const char *in;
		const char *host;       /* NULL: refused */
		uint16_t port;
	} cases[] = {
		{"127.0.0.1:9580", "127.0.0.1", 9580},
		{"0.0.0.0:0", "0.0.0.0", 0},
		{"[::1]:9580", "::1", 9580},
		{"[fe80::1]:65535", "fe80::1", 65535},
		{"::1:9580", NULL, 0},          /* IPv6 without brackets */
		{"127.0.0.1", NULL, 0},
		{"127.0.0.1:", NULL, 0},
		{"127.0.0.1:65536", NULL, 0},
		{"127.0.0.1:-1", NULL, 0},
		{"127.0.0.1:95x", NULL, 0},
		{"localhost:9580", NULL, 0},    /* numeric only */
		{"[::1]9580", NULL, 0},
		{"[127.0.0.1]:9580", NULL, 0},
		{":9580", NULL, 0},
		{"", NULL, 0},
	};
	char host[64], why[160];
	uint16_t port;

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int rc = isd_target_listen_parse(cases[i].in, host, sizeof(host), &port, why,
						 sizeof(why));

		if (cases[i].host == NULL) {
			if (rc != -EINVAL)
				fail_msg("'%s' accepted", cases[i].in);
			assert_null(strchr(why, '\n'));
			continue;
		}
		if (rc != 0)
			fail_msg("'%s' refused: %s", cases[i].in, why);
		assert_string_equal(host, cases[i].host);
		assert_int_equal(port, cases[i].port);
	}
}

static void
test_flag(void **state)
{
	struct isd_target_cfg cfg;
	char err[512];

	(void)state;
	assert_int_equal(parse(&cfg, err, sizeof(err), NULL, NULL, NULL), 0);
	assert_string_equal(cfg.metrics_listen, "");            /* off by default */
	isd_target_cfg_fini(&cfg);
	assert_int_equal(parse(&cfg, err, sizeof(err), "--metrics-listen", "[::1]:9580", NULL), 0);
	assert_string_equal(cfg.metrics_listen, "[::1]:9580");
	isd_target_cfg_fini(&cfg);
	assert_int_equal(parse(&cfg, err, sizeof(err), "--metrics-listen=127.0.0.1:1", NULL, NULL),
			 0);
	assert_string_equal(cfg.metrics_listen, "127.0.0.1:1");
	isd_target_cfg_fini(&cfg);
	assert_int_equal(parse(&cfg, err, sizeof(err), "--metrics-listen", "nowhere", NULL),
			 -EINVAL);
	assert_non_null(strstr(err, "--metrics-listen"));
	assert_null(strchr(err, '\n'));
	isd_target_cfg_fini(&cfg);
	assert_int_equal(parse(&cfg, err, sizeof(err), "--metrics-listen", NULL, NULL), -EINVAL);
	isd_target_cfg_fini(&cfg);
}

static const char *
write_conf(char *path, size_t cap, const char *text)
{
	int fd;

	snprintf(path, cap, "/tmp/iserd-metrics-cfg-XXXXXX");
	fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	return path;
}

static void
test_file(void **state)
{
	struct isd_target_cfg cfg;
	char err[512], path[64];

	(void)state;
	write_conf(path, sizeof(path), "global = { metrics_listen = \"127.0.0.1:9580\"; };\n");
	isd_target_cfg_init(&cfg);
	assert_int_equal(isd_target_cfg_load_file(path, &cfg, err, sizeof(err)), 0);
	assert_string_equal(cfg.metrics_listen, "127.0.0.1:9580");
	isd_target_cfg_fini(&cfg);
	/* the flag wins over the file */
	assert_int_equal(parse(&cfg, err, sizeof(err), "-c", path, NULL), 0);
	assert_string_equal(cfg.metrics_listen, "127.0.0.1:9580");
	isd_target_cfg_fini(&cfg);
	{
		char *argv[] = {"iserd", "-c", path, "--metrics-listen", "[::1]:1", NULL};

		isd_target_cfg_init(&cfg);
		assert_int_equal(isd_target_cfg_parse_args(5, argv, &cfg, err, sizeof(err)), 0);
		assert_string_equal(cfg.metrics_listen, "[::1]:1");
		isd_target_cfg_fini(&cfg);
	}
	unlink(path);

	write_conf(path, sizeof(path), "\nglobal = { metrics_listen = \"9580\"; };\n");
	isd_target_cfg_init(&cfg);
	assert_int_equal(isd_target_cfg_load_file(path, &cfg, err, sizeof(err)), -EINVAL);
	if (strstr(err, ":2: metrics_listen:") == NULL)
		fail_msg("error '%s'", err);
	isd_target_cfg_fini(&cfg);
	unlink(path);

	write_conf(path, sizeof(path), "global = { metrics_listen = 9580; };\n");
	isd_target_cfg_init(&cfg);
	assert_int_equal(isd_target_cfg_load_file(path, &cfg, err, sizeof(err)), -EINVAL);
	isd_target_cfg_fini(&cfg);
	unlink(path);

	/* "" is off, as if absent */
	write_conf(path, sizeof(path), "global = { metrics_listen = \"\"; };\n");
	isd_target_cfg_init(&cfg);
	assert_int_equal(isd_target_cfg_load_file(path, &cfg, err, sizeof(err)), 0);
	assert_string_equal(cfg.metrics_listen, "");
	isd_target_cfg_fini(&cfg);
	unlink(path);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_listen_parse),
	    cmocka_unit_test(test_flag),
	    cmocka_unit_test(test_file),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
