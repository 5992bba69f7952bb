/*
 * The configuration of the control socket (control_socket, control_mode,
 * --control-socket) and of portal bindings (a target's portals list): what
 * the loader and the flag parser accept, and the one-line errors otherwise.
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

#include "server/target.h"

#define MAX_ARGS 16

static char g_dir[64];

static const char *
conf(const char *text)
{
	static char path[128];
	static int n;
	FILE *f;

	snprintf(path, sizeof(path), "%s/c%d.conf", g_dir, n++);
	f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
	return path;
}

/* The flag parser on a NULL-terminated list (after "-c FILE" when text is not NULL). */
static int
parse(struct isd_target_cfg *cfg, char *err, size_t errlen, const char *text, ...)
{
	char *argv[MAX_ARGS] = {"iserd"};
	int argc = 1;
	va_list ap;
	const char *a;

	if (text != NULL) {
		argv[argc++] = "-c";
		argv[argc++] = (char *)conf(text);
	}
	va_start(ap, text);
	while ((a = va_arg(ap, const char *)) != NULL && argc < MAX_ARGS - 1)
		argv[argc++] = (char *)a;
	va_end(ap);
	argv[argc] = NULL;
	isd_target_cfg_init(cfg);
	err[0] = '\0';
	return isd_target_cfg_parse_args(argc, argv, cfg, err, errlen);
}

#define TARGET                                                                                     \
	"targets = ( { name = \"iqn.2026-11.org.iserd:t\"; luns = ( { backing = \"ram:1M\"; } ); "
#define PORTALS "portals = ( \"tcp://127.0.0.1:3260\", \"tcp://[::1]:3261\" );\n"

static void
expect_bad(const char *text, const char *needle, ...)
{
	struct isd_target_cfg cfg;
	char err[1024];
	char *argv[MAX_ARGS] = {"iserd", "-c", (char *)conf(text)};
	int argc = 3;
	va_list ap;
	const char *a;

	va_start(ap, needle);
	while ((a = va_arg(ap, const char *)) != NULL && argc < MAX_ARGS - 1)
		argv[argc++] = (char *)a;
	va_end(ap);
	isd_target_cfg_init(&cfg);
	err[0] = '\0';
	assert_int_equal(isd_target_cfg_parse_args(argc, argv, &cfg, err, sizeof(err)), -EINVAL);
	if (strstr(err, needle) == NULL)
		fail_msg("error '%s' lacks '%s'", err, needle);
	assert_null(strchr(err, '\n'));
	isd_target_cfg_fini(&cfg);
}

static void
test_control_defaults(void **state)
{
	struct isd_target_cfg cfg;
	char err[512];

	(void)state;
	assert_int_equal(parse(&cfg, err, sizeof(err), NULL, NULL), 0);
	assert_string_equal(cfg.control_socket, "");
	assert_int_equal(cfg.control_mode, -1);
	isd_target_cfg_fini(&cfg);
	/* fini leaves an initialised model */
	assert_int_equal(cfg.control_mode, -1);
}

static void
test_control_settings(void **state)
{
	struct isd_target_cfg cfg;
	char err[512], longp[200];

	(void)state;
	assert_int_equal(parse(&cfg, err, sizeof(err),
			       "global = { control_socket = \"/run/x.sock\"; control_mode = \"0660\"; "
			       "};\n" PORTALS TARGET "} );\n",
			       NULL),
			 0);
	assert_string_equal(cfg.control_socket, "/run/x.sock");
	assert_int_equal(cfg.control_mode, 0660);
	isd_target_cfg_fini(&cfg);
	/* the flag wins over the file; "none" is a value like any other here */
	assert_int_equal(parse(&cfg, err, sizeof(err),
			       "global = { control_socket = \"/run/x.sock\"; control_mode = 384; };\n" PORTALS
				   TARGET "} );\n",
			       "--control-socket", "none", NULL),
			 0);
	assert_string_equal(cfg.control_socket, "none");
	assert_int_equal(cfg.control_mode, 0600);
	isd_target_cfg_fini(&cfg);
	assert_int_equal(parse(&cfg, err, sizeof(err), NULL, "--control-socket=/tmp/s", NULL), 0);
	assert_string_equal(cfg.control_socket, "/tmp/s");
	isd_target_cfg_fini(&cfg);

	memset(longp, 'a', sizeof(longp));
	longp[0] = '/';
	longp[108] = '\0';      /* one byte too many for sun_path */
	assert_int_equal(parse(&cfg, err, sizeof(err), NULL, "--control-socket", longp, NULL),
			 -EINVAL);
	assert_non_null(strstr(err, "--control-socket"));
	isd_target_cfg_fini(&cfg);
	assert_int_equal(parse(&cfg, err, sizeof(err), NULL, "--control-socket=", NULL), -EINVAL);
	isd_target_cfg_fini(&cfg);
	longp[107] = '\0';
	assert_int_equal(parse(&cfg, err, sizeof(err), NULL, "--control-socket", longp, NULL), 0);
	isd_target_cfg_fini(&cfg);

	expect_bad("global = { control_socket = \"\"; };\n", "control_socket must be a path", NULL);
	expect_bad("global = { control_socket = 1; };\n", "must be a string", NULL);
	expect_bad("global = { control_mode = \"0999\"; };\n", "octal permission bits", NULL);
	expect_bad("global = { control_mode = \"rw\"; };\n", "octal permission bits", NULL);
	expect_bad("global = { control_mode = \"01777\"; };\n", "octal permission bits", NULL);
	expect_bad("global = { control_mode = 512; };\n", "out of range", NULL);
	expect_bad("global = { control_mode = true; };\n", "must be an integer", NULL);
}

static void
test_portal_bindings(void **state)
{
	struct isd_target_cfg cfg;
	char err[512];

	(void)state;
	/* URLs as the portals list names them, or spelled otherwise */
	assert_int_equal(parse(&cfg, err, sizeof(err),
			       PORTALS TARGET "portals = [ \"127.0.0.1:3260\", \"tcp://[::1]:3261\" ]; "
					      "} );\n",
			       NULL),
			 0);
	assert_int_equal(cfg.nodes[0].portal_bind_count, 2);
	assert_string_equal(cfg.nodes[0].portals[0], "127.0.0.1:3260");
	isd_target_cfg_fini(&cfg);
	/* a portal from a flag counts */
	assert_int_equal(parse(&cfg, err, sizeof(err),
			       TARGET "portals = [ \"tcp://127.0.0.1:3999\" ]; } );\n", "--portal",
			       "tcp://127.0.0.1:3999", NULL),
			 0);
	isd_target_cfg_fini(&cfg);
	/* the default portal too (named when nothing else is) */
	assert_int_equal(parse(&cfg, err, sizeof(err),
			       TARGET "portals = [ \"" ISD_TARGET_DEFAULT_PORTAL "\" ]; } );\n", NULL),
			 0);
	isd_target_cfg_fini(&cfg);

	expect_bad(PORTALS TARGET "portals = [ \"tcp://127.0.0.1:3261\" ]; } );\n",
		   "portal tcp://127.0.0.1:3261 is not configured", NULL);
	expect_bad(PORTALS TARGET "portals = [ \"iser://127.0.0.1:3260\" ]; } );\n",
		   "is not configured", NULL);
	expect_bad(PORTALS TARGET "portals = [ \"tcp://[::1]:3261\", \"[::1]:3261\" ]; } );\n",
		   "named twice", NULL);
	expect_bad(PORTALS TARGET "portals = [ \"udp://x\" ]; } );\n", "unknown transport", NULL);
	expect_bad(PORTALS TARGET "portals = [ 1 ]; } );\n", "portals must be strings", NULL);
	/* nothing in an address that a message would have to escape */
	expect_bad(PORTALS TARGET "portals = [ \"tcp://127.0.0.1\\n:3260\" ]; } );\n",
		   "bad character in address", NULL);
	expect_bad("portals = ( \"tcp://a b:3260\" );\n", "bad character in address", NULL);
	expect_bad(PORTALS TARGET "portals = \"tcp://127.0.0.1:3260\"; } );\n",
		   "portals must be a list", NULL);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_control_defaults),
	    cmocka_unit_test(test_control_settings),
	    cmocka_unit_test(test_portal_bindings),
	};
	char cmd[128];
	int rc;

	snprintf(g_dir, sizeof(g_dir), "/tmp/isd-ctlcfg.XXXXXX");
	assert_non_null(mkdtemp(g_dir));
	rc = cmocka_run_group_tests(tests, NULL, NULL);
	/* the test's own temporary directory only */
	snprintf(cmd, sizeof(cmd), "rm -rf -- '%s'", g_dir);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", g_dir);
	return rc;
}
