/*
 * The target layer's configuration front ends: command-line flags, the
 * libconfig file, and validation. Every error must be one line naming the
 * offending flag, or the file and line.
 */
#include <errno.h>
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

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "loopdev.h"
#include "reactor/reactor.h"
#include "scsi/scsi.h"
#include "server/target.h"

#define MAX_ARGS 32

/* Runs the flag parser on a NULL-terminated list; returns its rc, fills cfg and err. */
static int
parse(struct isd_target_cfg *cfg, char *err, size_t errlen, ...)
{
	char *argv[MAX_ARGS] = {"iserd"};
	int argc = 1;
	va_list ap;
	const char *a;

	va_start(ap, errlen);
	while ((a = va_arg(ap, const char *)) != NULL && argc < MAX_ARGS - 1)
		argv[argc++] = (char *)a;
	va_end(ap);
	argv[argc] = NULL;
	isd_target_cfg_init(cfg);
	err[0] = '\0';
	return isd_target_cfg_parse_args(argc, argv, cfg, err, errlen);
}

/* Expects the flags to fail with a message containing `needle`. */
#define EXPECT_BAD(needle, ...)                                                                    \
	do {                                                                                       \
		struct isd_target_cfg c_;                                                          \
		char e_[1024];                                                                     \
		assert_int_equal(parse(&c_, e_, sizeof(e_), __VA_ARGS__, NULL), -EINVAL);          \
		if (strstr(e_, needle) == NULL)                                                    \
			fail_msg("error '%s' lacks '%s'", e_, needle);                             \
		assert_null(strchr(e_, '\n'));                                                     \
		isd_target_cfg_fini(&c_);                                                          \
	} while (0)

static char g_tmpdir[64];

static const char *
write_file(const char *name, const char *text)
{
	static char path[128];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", g_tmpdir, name);
	f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
	return path;
}

static void
test_args_defaults(void **state)
{
	struct isd_target_cfg cfg;
	char err[512];

	(void)state;
	assert_int_equal(parse(&cfg, err, sizeof(err), NULL), 0);
	assert_int_equal(cfg.portal_count, 1);
	assert_string_equal(cfg.portals[0].host, "127.0.0.1");
	assert_int_equal(cfg.portals[0].port, 3260);
	assert_int_equal(cfg.portals[0].transport, ISD_TRANSPORT_TCP);
	assert_int_equal(cfg.node_count, 1);
	assert_string_equal(cfg.nodes[0].name, ISD_TARGET_DEFAULT_NAME);
	assert_int_equal(cfg.nodes[0].lun_count, 1);
	assert_int_equal(cfg.nodes[0].luns[0].number, 0);
	assert_string_equal(cfg.nodes[0].luns[0].kind->scheme, "ram");
	assert_string_equal(cfg.nodes[0].luns[0].spec, "ram:1G");
	assert_true(cfg.nodes[0].luns[0].size == 1ULL << 30);
	assert_int_equal(cfg.log_level, -1);
	assert_false(cfg.check_only);
	/* limits unset: the core's defaults apply (isd_iscsi_cfg_init) */
	assert_true(cfg.max_connections == -1);
	assert_true(cfg.max_sessions == -1);
	assert_true(cfg.max_held_bytes == -1);
	isd_target_cfg_fini(&cfg);
}

static void
test_args_good_flags(void **state)
{
	struct isd_target_cfg cfg;
	struct isd_target_node_cfg *a, *b;
	char err[512];

	(void)state;
	assert_int_equal(parse(&cfg, err, sizeof(err), "--portal", "tcp://0.0.0.0:3261", "-p",
			       "tcp://[::1]:3262", "--portal=10.0.0.1", "--target",
			       "iqn.2026-01.com.example:a", "--alias", "disk A", "--lun", "ram:64m",
			       "-l", "file:/tmp/x.img,size=1024M,ro", "--lun=dev:/dev/null",
			       "--chap", "user:secret:with:colons", "--mutual-chap",
			       "tgt:mutualsecret1", "--allow", "iqn.1993-08.org.debian:01:abc",
			       "-a", "eui.02004567A425678D", "-t", "naa.52004567ba64678d", "-v",
			       "-d", "iscsi,tcp", "--check", NULL),
			 0);
	assert_int_equal(cfg.portal_count, 3);
	assert_string_equal(cfg.portals[0].host, "0.0.0.0");
	assert_int_equal(cfg.portals[0].port, 3261);
	assert_string_equal(cfg.portals[1].host, "::1");
	assert_int_equal(cfg.portals[1].port, 3262);
	assert_string_equal(cfg.portals[2].host, "10.0.0.1");
	assert_int_equal(cfg.portals[2].port, 3260);
	assert_int_equal(cfg.node_count, 2);
	a = &cfg.nodes[0];
	b = &cfg.nodes[1];
	assert_string_equal(a->name, "iqn.2026-01.com.example:a");
	assert_string_equal(a->alias, "disk A");
	assert_int_equal(a->lun_count, 3);
	assert_string_equal(a->luns[0].spec, "ram:64M");
	assert_int_equal(a->luns[1].number, 1);
	assert_string_equal(a->luns[1].kind->scheme, "file");
	assert_string_equal(a->luns[1].path, "/tmp/x.img");
	assert_string_equal(a->luns[1].spec, "file:/tmp/x.img,size=1G");
	assert_true(a->luns[1].read_only);
	assert_false(a->luns[0].read_only);
	assert_int_equal(a->luns[2].number, 2);
	assert_string_equal(a->luns[2].kind->scheme, "dev");
	assert_string_equal(a->luns[2].origin, "--lun dev:/dev/null");
	assert_true(a->auth.require_chap);
	assert_string_equal(a->auth.chap.user, "user");
	assert_string_equal(a->auth.chap.secret, "secret:with:colons");
	assert_true(a->auth.mutual);
	assert_string_equal(a->auth.mutual_chap.user, "tgt");
	assert_int_equal(a->acl_count, 2);
	assert_string_equal(a->acl[0], "iqn.1993-08.org.debian:01:abc");
	/* a target given by flags without --lun gets the default RAM LUN */
	assert_string_equal(b->name, "naa.52004567ba64678d");
	assert_int_equal(b->lun_count, 1);
	assert_string_equal(b->luns[0].spec, "ram:1G");
	assert_int_equal(b->acl_count, 0);
	assert_false(b->auth.require_chap);
	assert_int_equal(cfg.log_level, ISD_LOG_DEBUG);
	assert_string_equal(cfg.debug, "iscsi,tcp");
	assert_true(cfg.check_only);
	isd_target_cfg_fini(&cfg);
}

static void
test_args_reactor_mode(void **state)
{
	static const char *const bad[] = {
		"", "bogus", "adaptive:", "adaptive:x", "adaptive:100001", "adaptive:-1",
		"adaptive:10x", "eventpoll", "adaptive:99999999999999999999999", ":10",
	};
	struct isd_target_cfg cfg;
	char err[512];
	int mode;
	unsigned us;

	(void)state;
	assert_int_equal(parse(&cfg, err, sizeof(err), NULL), 0);
	isd_target_reactor_mode(&cfg, &mode, &us);
	assert_int_equal(mode, 2);      /* adaptive unless asked */
	assert_int_equal(us, ISD_TARGET_DEFAULT_POLL_US);
	isd_target_cfg_fini(&cfg);
	assert_int_equal(parse(&cfg, err, sizeof(err), "--reactor-mode", "adaptive:20", NULL), 0);
	isd_target_reactor_mode(&cfg, &mode, &us);
	assert_int_equal(mode, 2);
	assert_int_equal(us, 20);
	isd_target_cfg_fini(&cfg);
	assert_int_equal(parse(&cfg, err, sizeof(err), "--reactor-mode=poll", NULL), 0);
	assert_int_equal(cfg.reactor_mode, 1);
	assert_int_equal(cfg.reactor_poll_us, -1);
	isd_target_cfg_fini(&cfg);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(parse(&cfg, err, sizeof(err), "--reactor-mode", bad[i], NULL),
				 -EINVAL);
		assert_non_null(strstr(err, "--reactor-mode"));
		isd_target_cfg_fini(&cfg);
	}
}

static void expect_file_error(const char *text, const char *needle);

static void
test_args_reactors(void **state)
{
	static const char *const bad_n[] = {"", "0", "-1", "257", "2x", "Auto", " 2", "1e3"};
	static const char *const bad_cpus[] = {
		"", ",", "1,", "a", "3-1", "1-", "-1", "0;1", "1 2", "99999", "0-99999",
	};
	struct isd_target_cfg cfg;
	char err[512];
	int cpus[8];
	unsigned n;

	(void)state;
	/* the default stays one reactor, unpinned */
	assert_int_equal(parse(&cfg, err, sizeof(err), NULL), 0);
	assert_int_equal(cfg.reactors, -1);
	assert_int_equal(isd_target_reactor_count(&cfg), 1);
	assert_string_equal(cfg.reactor_cpus, "");
	isd_target_cfg_fini(&cfg);
	assert_int_equal(parse(&cfg, err, sizeof(err), "--reactors", "4", "--reactor-cpus",
			       "0,2-3", NULL),
			 0);
	assert_int_equal(cfg.reactors, 4);
	assert_int_equal(isd_target_reactor_count(&cfg), 4);
	assert_string_equal(cfg.reactor_cpus, "0,2-3");
	isd_target_cfg_fini(&cfg);
	assert_int_equal(parse(&cfg, err, sizeof(err), "--reactors=256", NULL), 0);
	assert_int_equal(isd_target_reactor_count(&cfg), ISD_REACTOR_MAX);
	isd_target_cfg_fini(&cfg);
	/* auto: the CPUs of the affinity mask, at least one */
	assert_int_equal(parse(&cfg, err, sizeof(err), "--reactors", "auto", NULL), 0);
	assert_int_equal(cfg.reactors, 0);
	assert_true(isd_target_reactor_count(&cfg) >= 1);
	assert_true(isd_target_reactor_count(&cfg) <= ISD_REACTOR_MAX);
	isd_target_cfg_fini(&cfg);
	for (size_t i = 0; i < sizeof(bad_n) / sizeof(bad_n[0]); i++) {
		assert_int_equal(parse(&cfg, err, sizeof(err), "--reactors", bad_n[i], NULL),
				 -EINVAL);
		if (strstr(err, "--reactors: expected a number 1..256 or auto") == NULL)
			fail_msg("'%s': error '%s'", bad_n[i], err);
		isd_target_cfg_fini(&cfg);
	}
	for (size_t i = 0; i < sizeof(bad_cpus) / sizeof(bad_cpus[0]); i++) {
		assert_int_equal(parse(&cfg, err, sizeof(err), "--reactor-cpus", bad_cpus[i], NULL),
				 -EINVAL);
		if (strstr(err, "--reactor-cpus: ") == NULL)
			fail_msg("'%s': error '%s'", bad_cpus[i], err);
		assert_null(strchr(err, '\n'));
		isd_target_cfg_fini(&cfg);
	}
	/* the list parser itself: ranges expand, the limit holds */
	assert_int_equal(isd_target_cpu_list_parse("0,2-4,7", cpus, 8, &n, err, sizeof(err)), 0);
	assert_int_equal(n, 5);
	assert_int_equal(cpus[0], 0);
	assert_int_equal(cpus[1], 2);
	assert_int_equal(cpus[3], 4);
	assert_int_equal(cpus[4], 7);
	assert_int_equal(isd_target_cpu_list_parse("0-8", cpus, 8, &n, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "more than 8 CPUs"));
	assert_int_equal(isd_target_reactors_parse("auto"), 0);
	assert_int_equal(isd_target_reactors_parse("12"), 12);
	assert_int_equal(isd_target_reactors_parse("300"), -1);
}

/* reactors and reactor_cpus in the file: forms, errors, and the flags over them */
static void
test_file_reactors(void **state)
{
	struct isd_target_cfg cfg;
	char err[512], path[128];

	(void)state;
	snprintf(path, sizeof(path), "%s",
		 write_file("reactors.conf", "global = { reactors = 2; reactor_cpus = \"1,3\"; };\n"));
	isd_target_cfg_init(&cfg);
	assert_int_equal(isd_target_cfg_load_file(path, &cfg, err, sizeof(err)), 0);
	assert_int_equal(cfg.reactors, 2);
	assert_string_equal(cfg.reactor_cpus, "1,3");
	isd_target_cfg_fini(&cfg);
	/* flags win over the file */
	assert_int_equal(parse(&cfg, err, sizeof(err), "-c", path, "--reactors", "auto",
			       "--reactor-cpus", "0", NULL),
			 0);
	assert_int_equal(cfg.reactors, 0);
	assert_string_equal(cfg.reactor_cpus, "0");
	isd_target_cfg_fini(&cfg);
	snprintf(path, sizeof(path), "%s",
		 write_file("reactors-auto.conf", "global = { reactors = \"auto\"; };\n"));
	isd_target_cfg_init(&cfg);
	assert_int_equal(isd_target_cfg_load_file(path, &cfg, err, sizeof(err)), 0);
	assert_int_equal(cfg.reactors, 0);
	isd_target_cfg_fini(&cfg);

	expect_file_error("global = { reactors = 0; };\n", "bad.conf:1: 'reactors' out of range (1..256)");
	expect_file_error("global = { reactors = 257; };\n", "'reactors' out of range (1..256)");
	expect_file_error("global = { reactors = \"many\"; };\n",
			  "bad.conf:1: reactors must be a number 1..256 or \"auto\"");
	expect_file_error("global = { reactors = 2.5; };\n",
			  "reactors must be a number 1..256 or \"auto\"");
	expect_file_error("global = { reactor_cpus = 3; };\n", "'reactor_cpus' must be a string");
	expect_file_error("global = { reactor_cpus = \"2-1\"; };\n",
			  "bad.conf:1: reactor_cpus: CPU list '2-1': bad range");
	expect_file_error("global = { reactor_cpus = \"0,x\"; };\n",
			  "reactor_cpus: CPU list '0,x'");

	/* validation catches what the front ends let through into a model */
	isd_target_cfg_init(&cfg);
	cfg.reactors = 300;
	assert_int_equal(isd_target_cfg_validate(&cfg, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "reactors must be 1..256"));
	isd_target_cfg_fini(&cfg);
	isd_target_cfg_init(&cfg);
	snprintf(cfg.reactor_cpus, sizeof(cfg.reactor_cpus), "1-");
	assert_int_equal(isd_target_cfg_validate(&cfg, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "reactor_cpus: CPU list '1-'"));
	isd_target_cfg_fini(&cfg);

	/* reactors that poll whatever reactor_mode says: a reactor list, checked the same way */
	snprintf(path, sizeof(path), "%s",
		 write_file("polling.conf", "global = { reactors = 3; polling_reactors = \"1-2\"; };\n"
					    "portals = ( \"tcp://127.0.0.1:3260\" );\n"
					    "targets = ( { name = \"iqn.2026-11.t:a\";\n"
					    "  luns = ( { backing = \"ram:1M\"; } ); } );\n"));
	isd_target_cfg_init(&cfg);
	assert_int_equal(isd_target_cfg_load_file(path, &cfg, err, sizeof(err)), 0);
	assert_string_equal(cfg.polling_reactors, "1-2");
	assert_int_equal(isd_target_cfg_validate(&cfg, err, sizeof(err)), 0);
	cfg.reactors = 2;
	assert_int_equal(isd_target_cfg_validate(&cfg, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "polling_reactors: reactor 2 does not run (2 reactors"));
	isd_target_cfg_fini(&cfg);
	assert_int_equal(parse(&cfg, err, sizeof(err), "-c", path, "--polling-reactors", "0",
			       NULL),
			 0);
	assert_string_equal(cfg.polling_reactors, "0");
	isd_target_cfg_fini(&cfg);
	assert_int_equal(parse(&cfg, err, sizeof(err), "--polling-reactors", "0-", NULL), -EINVAL);
	assert_non_null(strstr(err, "--polling-reactors: reactor list '0-': bad range"));
	isd_target_cfg_fini(&cfg);
	expect_file_error("global = { polling_reactors = 1; };\n",
			  "'polling_reactors' must be a string");
	expect_file_error("global = { polling_reactors = \"300\"; };\n",
			  "polling_reactors: reactor list '300'");

	/* a portal's placement: a reactor list, checked against the reactors that run */
	snprintf(path, sizeof(path), "%s",
		 write_file("portal-reactors.conf",
			    "global = { reactors = 3; };\n"
			    "portals = ( { url = \"tcp://127.0.0.1:3260\"; reactors = \"1-2\"; },\n"
			    "  \"tcp://127.0.0.1:3261\" );\n"
			    "targets = ( { name = \"iqn.2026-11.t:a\";\n"
			    "  luns = ( { backing = \"ram:1M\"; } ); } );\n"));
	isd_target_cfg_init(&cfg);
	assert_int_equal(isd_target_cfg_load_file(path, &cfg, err, sizeof(err)), 0);
	assert_int_equal(cfg.portal_count, 2);
	assert_string_equal(cfg.portals[0].reactors, "1-2");
	assert_string_equal(cfg.portals[1].reactors, "");
	assert_int_equal(isd_target_cfg_validate(&cfg, err, sizeof(err)), 0);
	/* two reactors run: reactor 2 does not */
	cfg.reactors = 2;
	assert_int_equal(isd_target_cfg_validate(&cfg, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "reactors: reactor 2 does not run (2 reactors, numbered from 0)"));
	isd_target_cfg_fini(&cfg);
	expect_file_error("portals = ( { url = \"tcp://127.0.0.1:3260\"; reactors = 1; } );\n",
			  "'reactors' must be a string");
	expect_file_error("portals = ( { url = \"tcp://127.0.0.1:3260\"; reactors = \"0,x\"; } );\n",
			  "bad.conf:1: reactors: reactor list '0,x': expected reactor numbers 0..255");
	expect_file_error("portals = ( { url = \"tcp://127.0.0.1:3260\"; reactors = \"256\"; } );\n",
			  "reactors: reactor list '256'");
	expect_file_error("portals = ( { url = \"tcp://127.0.0.1:3260\"; reactors = \"\"; } );\n",
			  "reactors: empty reactor list");
	expect_file_error("portals = ( { url = \"tcp://127.0.0.1:3260\"; reactors = \"\\x1b[2J\"; } );\n",
			  "reactor list '\\x1b[2J'");
}

static void
test_args_lun_before_target_goes_to_default(void **state)
{
	struct isd_target_cfg cfg;
	char err[512];

	(void)state;
	assert_int_equal(parse(&cfg, err, sizeof(err), "--lun", "ram:1M", "--lun", "ram:2M", "-t",
			       "iqn.2026-11.org.iserd:other", NULL),
			 0);
	assert_int_equal(cfg.node_count, 2);
	assert_string_equal(cfg.nodes[0].name, ISD_TARGET_DEFAULT_NAME);
	assert_int_equal(cfg.nodes[0].lun_count, 2);
	assert_int_equal(cfg.nodes[0].luns[1].number, 1);
	assert_int_equal(cfg.nodes[1].lun_count, 1);
	isd_target_cfg_fini(&cfg);
}

/* ",physical_block_size=N" belongs to the LU: taken out of the spec the store sees. */
static void
test_args_physical_block_size(void **state)
{
	struct isd_target_cfg cfg;
	char err[512];

	(void)state;
	assert_int_equal(parse(&cfg, err, sizeof(err), "--lun", "ram:64M,physical_block_size=4096",
			       "--lun", "file:/tmp/x.img,size=1G,physical_block_size=8K,ro",
			       "--lun", "ram:1M", "--check", NULL),
			 0);
	assert_int_equal(cfg.node_count, 1);
	assert_int_equal(cfg.nodes[0].lun_count, 3);
	assert_int_equal(cfg.nodes[0].luns[0].physical_block_size, 4096);
	assert_string_equal(cfg.nodes[0].luns[0].spec, "ram:64M");
	assert_int_equal(cfg.nodes[0].luns[1].physical_block_size, 8192);
	assert_true(cfg.nodes[0].luns[1].read_only);
	assert_string_equal(cfg.nodes[0].luns[1].path, "/tmp/x.img");
	assert_int_equal(cfg.nodes[0].luns[2].physical_block_size, 0);
	isd_target_cfg_fini(&cfg);
	EXPECT_BAD("physical_block_size 1000 is not a power-of-two multiple of block_size 512",
		   "--lun", "ram:1M,physical_block_size=1000");
	EXPECT_BAD("physical_block_size 256 is not", "--lun", "ram:1M,physical_block_size=256");
	EXPECT_BAD("physical_block_size 131072 is not", "--lun",
		   "ram:1M,physical_block_size=128K");
	EXPECT_BAD("bad physical_block_size=", "--lun", "ram:1M,physical_block_size=");
	EXPECT_BAD("bad physical_block_size=x", "--lun", "ram:1M,physical_block_size=x");
	EXPECT_BAD("bad physical_block_size=99999999999", "--lun",
		   "ram:1M,physical_block_size=99999999999");
	/* the kind part is never an LU option */
	EXPECT_BAD("expected ram:SIZE", "--lun", "physical_block_size=4096");
}

static void expect_file_error(const char *text, const char *needle);

/* ALUA and LU identity: flags, LUN options and file keys, and what each refuses. */
static void
test_alua_config(void **state)
{
	struct isd_target_cfg cfg;
	char err[512];
	const struct isd_target_node_cfg *n;
	uint64_t id, ext;
	bool ext_set;

	(void)state;
	assert_int_equal(parse(&cfg, err, sizeof(err), "--alua-group", "3", "--alua-peer-state",
			       "unavailable", "--alua-peer", "4",
			       "--alua-peer", "5/9", "--lun",
			       "ram:1M,serial=GW-1,naa=6001405ABCDEF012,alua=standby", "--lun",
			       "ram:1M,naa=6001405abcdef0123456789abcdef012", NULL),
			 0);
	n = &cfg.nodes[0];
	assert_int_equal(n->alua_group, 3);
	assert_int_equal(n->alua_peer_count, 2);
	assert_int_equal(n->alua_peer_state, ISD_ALUA_UNAVAILABLE);
	assert_int_equal(n->alua_peers[0].group, 4);
	assert_int_equal(n->alua_peers[0].rtpi, 4);
	assert_int_equal(n->alua_peers[1].group, 5);
	assert_int_equal(n->alua_peers[1].rtpi, 9);
	assert_string_equal(n->luns[0].spec, "ram:1M");
	assert_string_equal(n->luns[0].serial, "GW-1");
	assert_string_equal(n->luns[0].naa, "6001405abcdef012");
	assert_true(n->luns[0].alua_state_set);
	assert_int_equal(n->luns[0].alua_state, ISD_ALUA_STANDBY);
	assert_false(n->luns[1].alua_state_set);
	isd_target_naa_split(n->luns[0].naa, &id, &ext, &ext_set);
	assert_true(id == 0x001405abcdef012ull);
	assert_false(ext_set);
	isd_target_naa_split(n->luns[1].naa, &id, &ext, &ext_set);
	assert_true(ext_set);
	assert_true(ext == 0x3456789abcdef012ull);
	isd_target_cfg_fini(&cfg);

	EXPECT_BAD("naa needs 16 or 32 hex digits", "--lun", "ram:1M,naa=6001");
	EXPECT_BAD("naa needs 16 or 32 hex digits", "--lun", "ram:1M,naa=6001405abcdef01x");
	EXPECT_BAD("naa must start with 6", "--lun", "ram:1M,naa=5001405abcdef012");
	EXPECT_BAD("bad alua=offline", "--lun", "ram:1M,alua=offline");
	EXPECT_BAD("bad serial=", "--lun", "ram:1M,serial=");
	EXPECT_BAD("printable ASCII", "--lun", "ram:1M,serial=a b");
	EXPECT_BAD("bad serial=", "--lun", "ram:1M,serial=0123456789012345678901234567890123");
	EXPECT_BAD("a group number", "--alua-group", "0");
	EXPECT_BAD("a group number", "--alua-group", "65536");
	EXPECT_BAD("a group number", "--alua-group", "1/2");
	EXPECT_BAD("bad ALUA peer '0'", "--alua-peer", "0");
	EXPECT_BAD("bad ALUA peer '2/'", "--alua-peer", "2/");
	EXPECT_BAD("bad ALUA peer '2/x'", "--alua-peer", "2/x");
	EXPECT_BAD("bad ALUA peer '-2'", "--alua-peer", "-2");
	EXPECT_BAD("own alua_group", "--alua-group", "2", "--alua-peer", "2");
	EXPECT_BAD("listed twice", "--alua-group", "1", "--alua-peer", "2", "--alua-peer", "2/5");
	EXPECT_BAD("need an alua_group", "--alua-peer", "2");
	EXPECT_BAD("need an alua_group", "--alua-peer-state", "standby");
	EXPECT_BAD("active/non-optimized, standby or unavailable", "--alua-group", "1",
		   "--alua-peer-state", "active/optimized");
	EXPECT_BAD("active/non-optimized, standby or unavailable", "--alua-group", "1",
		   "--alua-peer-state", "transitioning");

	expect_file_error("targets = ( { name = \"iqn.2026-11.t:a\"; alua_peers = [ 2 ];\n"
			  "  luns = ( { backing = \"ram:1M\"; } ); } );\n",
			  "alua_peers needs alua_group");
	expect_file_error("targets = ( { name = \"iqn.2026-11.t:a\"; alua_group = 1;\n"
			  "  alua_peers = [ 1 ]; luns = ( { backing = \"ram:1M\"; } ); } );\n",
			  "own alua_group");
	expect_file_error("targets = ( { name = \"iqn.2026-11.t:a\"; alua_group = 0;\n"
			  "  luns = ( { backing = \"ram:1M\"; } ); } );\n",
			  "alua_group");
	expect_file_error("targets = ( { name = \"iqn.2026-11.t:a\"; alua_group = 1;\n"
			  "  alua_peers = [ 2.5 ]; luns = ( { backing = \"ram:1M\"; } ); } );\n",
			  "GROUP or");
	expect_file_error("targets = ( { name = \"iqn.2026-11.t:a\";\n"
			  "  luns = ( { backing = \"ram:1M\"; naa = \"6x\"; } ); } );\n",
			  "naa needs");
	expect_file_error("targets = ( { name = \"iqn.2026-11.t:a\";\n"
			  "  luns = ( { backing = \"ram:1M\"; alua_state = \"up\"; } ); } );\n",
			  "alua_state:");
}

static void
test_args_help_version(void **state)
{
	struct isd_target_cfg cfg;
	char err[512];

	(void)state;
	assert_int_equal(parse(&cfg, err, sizeof(err), "--help", "--bogus", NULL), 0);
	assert_true(cfg.show_help);
	isd_target_cfg_fini(&cfg);
	assert_int_equal(parse(&cfg, err, sizeof(err), "-V", NULL), 0);
	assert_true(cfg.show_version);
	isd_target_cfg_fini(&cfg);
	assert_non_null(strstr(isd_target_usage(), "--mutual-chap"));
	assert_non_null(strstr(isd_target_usage(), "--check"));
}

static void
test_args_rejects_bad_flags(void **state)
{
	(void)state;
	EXPECT_BAD("unknown option '--bogus'", "--bogus");
	EXPECT_BAD("unknown option '-x'", "-x");
	EXPECT_BAD("unexpected argument 'foo'", "foo");
	EXPECT_BAD("--lun needs an argument", "--lun");
	EXPECT_BAD("--verbose takes no argument", "--verbose=1");
	EXPECT_BAD("-v takes no argument", "-vv");
	EXPECT_BAD("given twice", "-c", "/a", "-c", "/b");
	/* portals */
	EXPECT_BAD("unknown transport", "--portal", "rdma://127.0.0.1:3260");
	EXPECT_BAD("--portal udp://1.2.3.4: unknown transport", "--portal", "udp://1.2.3.4");
	EXPECT_BAD("bad port '99999'", "--portal", "tcp://127.0.0.1:99999");
	EXPECT_BAD("bad port 'x'", "--portal", "tcp://127.0.0.1:x");
	EXPECT_BAD("IPv6 addresses go in brackets", "--portal", "tcp://::1:3260");
	EXPECT_BAD("missing ']'", "--portal", "tcp://[::1:3260");
	EXPECT_BAD("missing address", "--portal", "tcp://:3260");
	EXPECT_BAD("duplicate portal 127.0.0.1:3260", "-p", "tcp://127.0.0.1", "-p",
		   "tcp://127.0.0.1:3260");
	/* names */
	EXPECT_BAD("--target iqn.foo: invalid iSCSI name", "--target", "iqn.foo");
	EXPECT_BAD("invalid iSCSI name", "--target", "iqn.2026-13.org.x:a");
	EXPECT_BAD("invalid iSCSI name", "--target", "iqn.2026-01.Org.x");
	EXPECT_BAD("invalid iSCSI name", "--target", "target0");
	EXPECT_BAD("invalid iSCSI name", "--target", "eui.1234");
	EXPECT_BAD("--allow bad_name: invalid iSCSI name", "--allow", "bad_name");
	/* LUNs */
	EXPECT_BAD("--lun ram:12Q: bad size '12Q'", "--lun", "ram:12Q");
	EXPECT_BAD("bad size '0'", "--lun", "ram:0");
	EXPECT_BAD("bad size", "--lun", "ram:99999999999T");
	EXPECT_BAD("ram: needs a size", "--lun", "ram:");
	EXPECT_BAD("file: needs a path", "--lun", "file:,size=1G");
	EXPECT_BAD("bad size 'big'", "--lun", "file:/x,size=big");
	EXPECT_BAD("unknown option 'size=1G' (ro", "--lun", "dev:/dev/sda,size=1G");
	EXPECT_BAD("unknown option 'y.img'", "--lun", "file:/tmp/x,y.img,size=1G");
	EXPECT_BAD("expected ram:SIZE", "--lun", "nbd:host");
	EXPECT_BAD("not a multiple of block_size", "--lun", "ram:1000");
	/* CHAP */
	EXPECT_BAD("--chap: expected USER:SECRET", "--chap", "nocolon");
	EXPECT_BAD("--chap: expected USER:SECRET", "--chap", ":secret");
	EXPECT_BAD("mutual CHAP needs CHAP", "--mutual-chap", "u:s");
	EXPECT_BAD("--chap given twice", "--chap", "a:b", "--chap", "c:d");
}

static void
test_args_chap_error_hides_secret(void **state)
{
	struct isd_target_cfg cfg;
	char err[512];

	(void)state;
	assert_int_equal(
	    parse(&cfg, err, sizeof(err), "--chap", "u:topsecret", "--chap", "v:topsecret", NULL),
	    -EINVAL);
	assert_null(strstr(err, "topsecret"));
	isd_target_cfg_fini(&cfg);
}

static void
test_portal_parse_iser(void **state)
{
	struct isd_target_portal_spec ps;
	char why[256] = "";

	(void)state;
	assert_int_equal(isd_target_portal_parse("iser://10.99.0.1:3261", &ps, why, sizeof(why)), 0);
	assert_int_equal(ps.transport, ISD_TRANSPORT_ISER);
	assert_int_equal(ps.port, 3261);
	assert_string_equal(ps.host, "10.99.0.1");
	assert_int_equal(isd_target_portal_parse("iser://[::1]", &ps, why, sizeof(why)), 0);
	assert_int_equal(ps.transport, ISD_TRANSPORT_ISER);
	assert_int_equal(ps.port, 3260);
	assert_int_equal(isd_target_portal_parse("tcp://127.0.0.1", &ps, why, sizeof(why)), 0);
	assert_int_equal(ps.transport, ISD_TRANSPORT_TCP);
}

static void
test_name_check_table(void **state)
{
	static const struct {
		const char *name;
		int ok;
	} cases[] = {
	    {"iqn.2026-11.org.iserd:target0", 1},
	    {"iqn.1993-08.org.debian:01:a2b3c4", 1},
	    {"iqn.2001-04.com.example", 1},
	    {"iqn.2001-04.com.example:storage.disk2.sys1.xyz", 1},
	    {"eui.02004567A425678D", 1},
	    {"naa.52004567BA64678D", 1},
	    {"naa.62004567BA64678D0123456789ABCDEF", 1},
	    {"", 0},
	    {"iqn.", 0},
	    {"iqn.2001.com.example", 0},
	    {"iqn.2001-00.com.example", 0},
	    {"iqn.2001-04.", 0},
	    {"iqn.2001-04.:x", 0},
	    {"iqn.2001-04.com.example:UPPER", 0},
	    {"iqn.2001-04.com.example:with space", 0},
	    {"eui.02004567A425678", 0},
	    {"eui.02004567A425678DX", 0},
	    {"naa.1234", 0},
	    {"IQN.2001-04.com.example", 0},
	};
	char why[160], longname[300];

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int rc = isd_target_name_check(cases[i].name, why, sizeof(why));

		if ((rc == 0) != cases[i].ok)
			fail_msg("'%s': expected %s, got %d (%s)", cases[i].name,
				 cases[i].ok ? "ok" : "error", rc, why);
	}
	/* RFC 7143 §4.2.7.1: at most 223 bytes */
	snprintf(longname, sizeof(longname), "iqn.2026-11.org.iserd:%0201d", 0);
	assert_int_equal(strlen(longname), 223);
	assert_int_equal(isd_target_name_check(longname, why, sizeof(why)), 0);
	strcat(longname, "1");
	assert_int_equal(isd_target_name_check(longname, why, sizeof(why)), -EINVAL);
}

static void
test_size_parse_table(void **state)
{
	uint64_t v;

	(void)state;
	assert_int_equal(isd_target_size_parse("1G", &v), 0);
	assert_true(v == 1ULL << 30);
	assert_int_equal(isd_target_size_parse("512k", &v), 0);
	assert_true(v == 512ULL << 10);
	assert_int_equal(isd_target_size_parse("4096", &v), 0);
	assert_true(v == 4096);
	assert_int_equal(isd_target_size_parse("2T", &v), 0);
	assert_true(v == 2ULL << 40);
	assert_int_equal(isd_target_size_parse("0", &v), -EINVAL);
	assert_int_equal(isd_target_size_parse("", &v), -EINVAL);
	assert_int_equal(isd_target_size_parse("1GB", &v), 0);
	assert_true(v == 1ULL << 30);
	assert_int_equal(isd_target_size_parse("2MiB", &v), 0);
	assert_true(v == 2ULL << 20);
	assert_int_equal(isd_target_size_parse("1GX", &v), -EINVAL);
	assert_int_equal(isd_target_size_parse("1iB", &v), -EINVAL);
	assert_int_equal(isd_target_size_parse("-1G", &v), -EINVAL);
	assert_int_equal(isd_target_size_parse("1.5G", &v), -EINVAL);
	assert_int_equal(isd_target_size_parse("99999999999999999999", &v), -EINVAL);
	assert_int_equal(isd_target_size_parse("16777216T", &v), -EINVAL);
}

static const char g_full_conf[] =
    "# a full example\n"
    "global = {\n"
    "  log_level = \"warn\";\n"
    "  debug = \"iscsi\";\n"
    "  login_timeout = 20;\n"
    "  nop_interval = 0;\n"
    "  nop_timeout = 2.5;\n"
    "  max_sessions = 64; max_tx_queue_bytes = 1048576; max_connections = 100; max_connections_per_address = 10;"
    " max_login_connections = 20; max_sessions_per_target = 30; max_discovery_sessions = 0;"
    " max_held_bytes = 65536; max_held_pdus = 8; max_session_buffer_bytes = 1048576;\n"
    "  max_burst_length = 524288;\n"
    "  iser_remote_invalidate = false; iser_recv_memory = 4194304;\n"
    "  discovery_auth = { chap = \"disc:discsecret12\"; };\n"
    "};\n"
    "portals = ( \"tcp://0.0.0.0:3260\", { url = \"tcp://[::]:3260\"; tpgt = 1; } );\n"
    "targets = (\n"
    "  {\n"
    "    name = \"iqn.2026-11.org.iserd:disk1\";\n"
    "    alias = \"first\";\n"
    "    tpgt = 1;\n"
    "    luns = (\n"
    "      { number = 0; backing = \"ram:256M\"; block_size = 4096;\n"
    "        physical_block_size = 16384; },\n"
    "      { number = 3; backing = \"file:/var/tmp/d.img,size=1G\"; read_only = true;\n"
    "        vendor = \"ACME\"; product = \"Disk\"; serial = \"S123\"; },\n"
    "      { backing = \"ram:1M\"; }\n"
    "    );\n"
    "    acl = [ \"iqn.1993-08.org.debian:01:abc\" ];\n"
    "    chap = { user = \"alice\"; secret = \"alicesecret12\"; };\n"
    "    mutual_chap = \"target:targetsecret1\";\n"
    "    max_recv_data_segment_length = 65536;\n"
    "    immediate_data = false;\n"
    "    initial_r2t = true;\n"
    "    header_digest = \"prefer\";\n"
    "    data_digest = false;\n"
    "    queue_depth = 32;\n"
    "    max_outstanding_r2t = 4;\n"
    "    first_burst_length = 65536;\n"
    "  },\n"
    "  { name = \"iqn.2026-11.org.iserd:disk2\"; luns = ( { backing = \"ram:1G\"; } ); }\n"
    ");\n";

static void
test_file_full_example(void **state)
{
	struct isd_target_cfg cfg;
	struct isd_target_node_cfg *n;
	char err[512] = "";
	const char *path = write_file("full.conf", g_full_conf);

	(void)state;
	isd_target_cfg_init(&cfg);
	if (isd_target_cfg_load_file(path, &cfg, err, sizeof(err)) != 0)
		fail_msg("%s", err);
	assert_int_equal(isd_target_cfg_validate(&cfg, err, sizeof(err)), 0);
	assert_int_equal(cfg.log_level, ISD_LOG_WARN);
	assert_string_equal(cfg.debug, "iscsi");
	assert_true(cfg.login_timeout_ms == 20000);
	assert_true(cfg.nop_interval_ms == 0);
	assert_true(cfg.nop_timeout_ms == 2500);
	assert_true(cfg.max_sessions == 64);
	assert_true(isd_target_dm_setting_get(&cfg, "max_tx_queue_bytes") == 1048576);
	assert_true(cfg.max_connections == 100);
	assert_true(cfg.max_connections_per_address == 10);
	assert_true(cfg.max_login_connections == 20);
	assert_true(cfg.max_sessions_per_target == 30);
	assert_true(cfg.max_discovery_sessions == 0);      /* 0 = no limit, set explicitly */
	assert_true(cfg.max_held_bytes == 65536);
	assert_true(cfg.max_held_pdus == 8);
	assert_true(cfg.max_session_buffer_bytes == 1048576);
	assert_int_equal(isd_target_dm_setting_get(&cfg, "iser_remote_invalidate"), 0);
	assert_true(isd_target_dm_setting_get(&cfg, "iser_recv_memory") == 4194304);
	assert_true(isd_target_dm_setting_get(&cfg, "no_such_setting") == -1);
	assert_true(cfg.neg.max_burst_length == 524288);
	assert_true(cfg.discovery_auth.require_chap);
	assert_string_equal(cfg.discovery_auth.chap.user, "disc");
	assert_int_equal(cfg.portal_count, 2);
	assert_string_equal(cfg.portals[1].host, "::");
	assert_int_equal(cfg.portals[1].tpgt, 1);
	assert_int_equal(cfg.node_count, 2);
	n = &cfg.nodes[0];
	assert_string_equal(n->alias, "first");
	assert_int_equal(n->lun_count, 3);
	assert_int_equal(n->luns[0].block_size, 4096);
	assert_int_equal(n->luns[0].physical_block_size, 16384);
	assert_int_equal(n->luns[1].physical_block_size, 0);
	assert_int_equal(n->luns[1].number, 3);
	assert_true(n->luns[1].read_only);
	assert_string_equal(n->luns[1].vendor, "ACME");
	assert_string_equal(n->luns[1].serial, "S123");
	assert_int_equal(n->luns[2].number, 4);
	assert_non_null(strstr(n->luns[0].origin, "full.conf:20"));
	assert_int_equal(n->acl_count, 1);
	assert_true(n->auth.require_chap && n->auth.mutual);
	assert_string_equal(n->auth.chap.secret, "alicesecret12");
	assert_string_equal(n->auth.mutual_chap.user, "target");
	assert_true(n->neg.max_recv_data_segment_length == 65536);
	assert_int_equal(n->neg.immediate_data, 0);
	assert_int_equal(n->neg.initial_r2t, 1);
	assert_int_equal(n->neg.header_digest, ISD_TARGET_DIGEST_PREFER);
	assert_int_equal(n->neg.data_digest, ISD_TARGET_DIGEST_NONE);
	assert_true(n->neg.queue_depth == 32);
	assert_false(n->from_flags);
	isd_target_cfg_fini(&cfg);
}

/* Loads text as a file and expects an error containing needle. */
static void
expect_file_error(const char *text, const char *needle)
{
	struct isd_target_cfg cfg;
	char err[512] = "";
	const char *path = write_file("bad.conf", text);
	int rc;

	isd_target_cfg_init(&cfg);
	rc = isd_target_cfg_load_file(path, &cfg, err, sizeof(err));
	if (rc == 0)
		rc = isd_target_cfg_validate(&cfg, err, sizeof(err));
	if (rc == 0)
		fail_msg("expected an error containing '%s'", needle);
	if (strstr(err, needle) == NULL)
		fail_msg("error '%s' lacks '%s'", err, needle);
	assert_null(strchr(err, '\n'));
	isd_target_cfg_fini(&cfg);
}

static void
test_file_rejects_unknown_key_with_line(void **state)
{
	(void)state;
	expect_file_error("targets = (\n"
			  "  { name = \"iqn.2026-11.org.iserd:a\";\n"
			  "    luns = ( { backing = \"ram:1G\"; } );\n"
			  "    max_burst_lenght = 4096;\n"
			  "  }\n"
			  ");\n",
			  "bad.conf:4: unknown setting 'max_burst_lenght' in target");
	expect_file_error("\nglobal = { log_lvl = \"info\"; };\n",
			  "bad.conf:2: unknown setting 'log_lvl' in global");
	expect_file_error("portal = ( \"tcp://0.0.0.0\" );\n",
			  "bad.conf:1: unknown setting 'portal' in the top level");
	expect_file_error("targets = ( { name = \"iqn.2026-11.org.iserd:a\";\n"
			  "  luns = ( { backing = \"ram:1G\";\n  readonly = true; } ); } );\n",
			  "bad.conf:3: unknown setting 'readonly' in lun");
}

static void
test_file_rejects_bad_values(void **state)
{
	(void)state;
	expect_file_error("targets = ( { name = \"iqn.2026-11.org.iserd:a\";\n"
			  "  luns = ( { backing = \"ram:12Q\"; } ); } );\n",
			  "bad.conf:2: backing ram:12Q: bad size '12Q'");
	expect_file_error("targets = ( { name = \"iqn.2026-11.org.iserd:a\";\n"
			  "  luns = ( { number = 1; backing = \"ram:1G\"; },\n"
			  "           { number = 1; backing = \"ram:2G\"; } ); } );\n",
			  "duplicate LUN 1 in target iqn.2026-11.org.iserd:a");
	expect_file_error("targets = ( { name = \"iqn.2026-11.org.iserd:a\";\n"
			  "  luns = ( { number = 1; backing = \"ram:1G\"; },\n"
			  "           { number = 1; backing = \"ram:2G\"; } ); } );\n",
			  "bad.conf:3:");
	expect_file_error("targets = ( {\n name = \"iqn.2026-11.Org.iserd\";\n"
			  " luns = ( { backing = \"ram:1G\"; } ); } );\n",
			  "bad.conf:2: invalid target name 'iqn.2026-11.Org.iserd'");
	expect_file_error("portals = ( \"nvme://0.0.0.0:3260\" );\n", "unknown transport");
	expect_file_error("global = { max_tx_queue_bytes = 4096; };\n", "max_tx_queue_bytes");
	expect_file_error("global = { iser_recv_memory = 4096; };\n",
			  "bad.conf:1: 'iser_recv_memory' out of range");
	expect_file_error("global = { iser_recv_memory = 1073741824; };\n", "bad.conf:1:");
	expect_file_error("targets = ( { name = \"iqn.2026-11.org.iserd:a\"; } );\n",
			  "has no LUNs");
	expect_file_error("targets = ( { name = \"iqn.2026-11.org.iserd:a\";\n"
			  "  luns = ( { backing = \"ram:1G\"; block_size = 1024; } ); } );\n",
			  "block_size must be 512 or 4096");
	expect_file_error("targets = ( { name = \"iqn.2026-11.org.iserd:a\";\n"
			  "  luns = ( { backing = \"ram:1G\"; block_size = 4096;\n"
			  "             physical_block_size = 2048; } ); } );\n",
			  "physical_block_size 2048 is not a power-of-two multiple of block_size 4096");
	expect_file_error("targets = ( { name = \"iqn.2026-11.org.iserd:a\";\n"
			  "  luns = ( { backing = \"ram:1G\"; } );\n"
			  "  queue_depth = 0; } );\n",
			  "queue_depth 0 out of range");
	expect_file_error("targets = ( { name = \"iqn.2026-11.org.iserd:a\";\n"
			  "  luns = ( { backing = \"ram:1G\"; } );\n"
			  "  first_burst_length = 1048576; max_burst_length = 65536; } );\n",
			  "first_burst_length 1048576 exceeds max_burst_length 65536");
	expect_file_error("targets = ( { name = \"iqn.2026-11.org.iserd:a\";\n"
			  "  luns = ( { backing = \"ram:1G\"; } );\n"
			  "  header_digest = \"maybe\"; } );\n",
			  "bad.conf:3: 'header_digest' must be");
	expect_file_error("targets = ( { name = \"iqn.2026-11.org.iserd:a\";\n"
			  "  luns = ( { backing = \"ram:1G\"; } );\n"
			  "  immediate_data = \"yes\"; } );\n",
			  "bad.conf:3: 'immediate_data' must be true or false");
	expect_file_error("targets = ( { name = \"iqn.2026-11.org.iserd:a\";\n"
			  "  luns = ( { backing = \"ram:1G\"; } );\n"
			  "  mutual_chap = \"a:b\"; } );\n",
			  "mutual_chap needs chap");
	expect_file_error("targets = ( { name = \"iqn.2026-11.org.iserd:a\";\n"
			  "  luns = ( { backing = \"ram:1G\"; } );\n"
			  "  acl = [ \"Bad\" ]; } );\n",
			  "bad.conf:3: invalid initiator name 'Bad'");
	expect_file_error("global = { log_level = \"loud\"; };\n", "bad.conf:1: log_level 'loud'");
	expect_file_error("global = { max_held_bytes = -1; };\n",
			  "bad.conf:1: 'max_held_bytes' out of range");
	expect_file_error("global = { max_connections = 2000000; };\n",
			  "bad.conf:1: 'max_connections' out of range");
	expect_file_error("global = { max_login_connections = \"many\"; };\n",
			  "'max_login_connections' must be an integer");
	expect_file_error("global = { max_sesions = 1; };\n", "unknown setting 'max_sesions'");
	expect_file_error("targets = ( { name = \"iqn.2026-11.org.iserd:a\";\n"
			  "  luns = ( { backing = \"ram:1G\"; } ); },\n"
			  "  { name = \"iqn.2026-11.org.iserd:a\";\n"
			  "  luns = ( { backing = \"ram:1G\"; } ); } );\n",
			  "bad.conf:3: duplicate target");
}

static void
test_file_syntax_error_and_missing(void **state)
{
	struct isd_target_cfg cfg;
	char err[512];
	char missing[128];

	(void)state;
	expect_file_error("global = {\n  log_level = \"info\";\n  debug = ;\n};\n",
			  "bad.conf:3: syntax error");
	isd_target_cfg_init(&cfg);
	snprintf(missing, sizeof(missing), "%s/nope.conf", g_tmpdir);
	assert_int_equal(isd_target_cfg_load_file(missing, &cfg, err, sizeof(err)), -ENOENT);
	assert_non_null(strstr(err, "nope.conf: No such file or directory"));
	isd_target_cfg_fini(&cfg);
}

static void
test_flags_add_to_file(void **state)
{
	struct isd_target_cfg cfg;
	char err[512];
	const char *path =
	    write_file("base.conf", "global = { log_level = \"error\"; };\n"
				    "portals = ( \"tcp://127.0.0.1:3300\" );\n"
				    "targets = ( { name = \"iqn.2026-11.org.iserd:disk1\";\n"
				    "  luns = ( { backing = \"ram:1G\"; } ); } );\n");
	char pathcopy[128];

	(void)state;
	snprintf(pathcopy, sizeof(pathcopy), "%s", path);
	/* --target naming a configured target selects it; a new one is added */
	assert_int_equal(parse(&cfg, err, sizeof(err), "-p", "tcp://127.0.0.1:3301", "--target",
			       "iqn.2026-11.org.iserd:disk1", "--lun", "ram:8M", "--allow",
			       "iqn.2026-11.org.x:ini", "-t", "iqn.2026-11.org.iserd:disk2", "-c",
			       pathcopy, "-v", NULL),
			 0);
	assert_string_equal(cfg.config_file, pathcopy);
	assert_int_equal(cfg.log_level, ISD_LOG_DEBUG); /* flags win */
	assert_int_equal(cfg.portal_count, 2);
	assert_int_equal(cfg.portals[0].port, 3300);
	assert_int_equal(cfg.portals[1].port, 3301);
	assert_int_equal(cfg.node_count, 2);
	assert_int_equal(cfg.nodes[0].lun_count, 2);
	assert_int_equal(cfg.nodes[0].luns[1].number, 1);
	assert_int_equal(cfg.nodes[0].acl_count, 1);
	assert_int_equal(cfg.nodes[1].lun_count, 1);
	isd_target_cfg_fini(&cfg);

	/* a file without portals or targets gets the defaults */
	path = write_file("empty.conf", "global = { max_sessions = 4; };\n");
	snprintf(pathcopy, sizeof(pathcopy), "%s", path);
	assert_int_equal(parse(&cfg, err, sizeof(err), "-c", pathcopy, NULL), 0);
	assert_int_equal(cfg.portal_count, 1);
	assert_int_equal(cfg.node_count, 1);
	assert_true(cfg.max_sessions == 4);
	isd_target_cfg_fini(&cfg);

	/* errors in the file surface through the flag parser */
	path = write_file("typo.conf", "\n\nglobal = { max_session = 4; };\n");
	snprintf(pathcopy, sizeof(pathcopy), "%s", path);
	assert_int_equal(parse(&cfg, err, sizeof(err), "--config", pathcopy, NULL), -EINVAL);
	assert_non_null(strstr(err, "typo.conf:3: unknown setting 'max_session' in global"));
	isd_target_cfg_fini(&cfg);
}

static void
test_check_backing(void **state)
{
	struct isd_target_cfg cfg;
	char err[512];
	char spec[160];

	(void)state;
	assert_int_equal(parse(&cfg, err, sizeof(err), "--lun", "file:/nonexistent/nope", NULL), 0);
	assert_int_equal(isd_target_cfg_check_backing(&cfg, err, sizeof(err)), -ENOENT);
	assert_string_equal(err, "--lun file:/nonexistent/nope: No such file or directory");
	isd_target_cfg_fini(&cfg);
	/* a missing file with size= will be created: fine */
	snprintf(spec, sizeof(spec), "file:%s/new.img,size=1M", g_tmpdir);
	assert_int_equal(parse(&cfg, err, sizeof(err), "--lun", spec, "--lun", "ram:1M", NULL), 0);
	assert_int_equal(isd_target_cfg_check_backing(&cfg, err, sizeof(err)), 0);
	isd_target_cfg_fini(&cfg);
	assert_int_equal(parse(&cfg, err, sizeof(err), "--lun", "dev:/dev/null", NULL), 0);
	assert_int_equal(isd_target_cfg_check_backing(&cfg, err, sizeof(err)), -ENOTBLK);
	isd_target_cfg_fini(&cfg);
}

/* The example shipped in docs/ must load and validate as it is. */
static void
test_shipped_example_is_valid(void **state)
{
	struct isd_target_cfg cfg;
	char err[512] = "", path[4096];
	const char *marker = strstr(__FILE__, "tests/unit/server/");

	(void)state;
	if (marker == NULL)
		skip();
	snprintf(path, sizeof(path), "%.*sdocs/iserd.conf.example", (int)(marker - __FILE__),
		 __FILE__);
	if (access(path, R_OK) != 0)
		skip();
	isd_target_cfg_init(&cfg);
	if (isd_target_cfg_load_file(path, &cfg, err, sizeof(err)) != 0 ||
	    isd_target_cfg_validate(&cfg, err, sizeof(err)) != 0)
		fail_msg("%s", err);
	assert_int_equal(cfg.node_count, 2);
	assert_int_equal(cfg.portal_count, 2);
	isd_target_cfg_fini(&cfg);
}

static void
on_shutdown(void *arg)
{
	*(bool *)arg = true;
}

/* Builds the target from flags on a fresh reactor; returns start's rc. */
static int
start_from(struct isd_reactor **r, struct isd_target_running **rt, char *err, size_t errlen,
	   const char *portal, const char *lun)
{
	struct isd_target_cfg cfg;
	int rc;

	assert_int_equal(parse(&cfg, err, errlen, "--portal", portal, "--lun", lun, NULL), 0);
	assert_int_equal(isd_reactor_create(r), 0);
	rc = isd_target_start(&cfg, *r, rt, err, errlen);
	isd_target_cfg_fini(&cfg);
	return rc;
}

static void
test_start_and_clean_shutdown(void **state)
{
	struct isd_reactor *r;
	struct isd_target_running *rt;
	struct isd_iscsi_stats st;
	char err[512] = "";
	bool done = false;

	(void)state;
	if (start_from(&r, &rt, err, sizeof(err), "tcp://127.0.0.1:0", "ram:1M") != 0)
		fail_msg("start: %s", err);
	isd_target_get_stats(rt, &st);
	assert_true(st.connections == 0);
	isd_target_shutdown(rt, on_shutdown, &done);
	/* callbacks never run inside the call */
	assert_false(done);
	for (int i = 0; i < 100 && !done; i++)
		assert_int_equal(isd_reactor_poll(r, 10), 0);
	assert_true(done);
	isd_target_stop(rt);
	isd_reactor_destroy(r);
}

/* Shuts a started target down and frees what start_from made. */
static void
stop_started(struct isd_reactor *r, struct isd_target_running *rt)
{
	bool done = false;

	isd_target_shutdown(rt, on_shutdown, &done);
	for (int i = 0; i < 100 && !done; i++)
		assert_int_equal(isd_reactor_poll(r, 10), 0);
	assert_true(done);
	isd_target_stop(rt);
}

/*
 * A LUN of 512-byte blocks on a device of 4 KiB sectors cannot be served
 * with direct I/O: start says so and what to do; ,buffered starts.
 */
static void
test_start_direct_block_size(void **state)
{
	struct isd_test_loop lo;
	struct isd_reactor *r;
	struct isd_target_running *rt;
	char lun[64], err[512] = "", why[256];

	(void)state;
	if (isd_test_loop_setup(&lo, 1u << 20, 4096, why, sizeof(why)) < 0) {
		print_message("no loop device (%s): skipped\n", why);
		skip();
	}
	snprintf(lun, sizeof(lun), "dev:%s", lo.dev);
	assert_int_equal(start_from(&r, &rt, err, sizeof(err), "tcp://127.0.0.1:0", lun),
			 -EINVAL);
	assert_non_null(strstr(err, "4096-byte blocks"));
	assert_non_null(strstr(err, "buffered"));
	isd_reactor_destroy(r);
	snprintf(lun, sizeof(lun), "dev:%s,buffered", lo.dev);
	if (start_from(&r, &rt, err, sizeof(err), "tcp://127.0.0.1:0", lun) != 0)
		fail_msg("start: %s", err);
	stop_started(r, rt);
	isd_reactor_destroy(r);
	isd_test_loop_teardown(&lo);
}

static void
test_start_reports_busy_port(void **state)
{
	struct sockaddr_in sa = {.sin_family = AF_INET};
	socklen_t len = sizeof(sa);
	struct isd_reactor *r;
	struct isd_target_running *rt = NULL;
	char err[512] = "", portal[64], want[64];
	int fd, rc;

	(void)state;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	fd = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(fd >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(fd, 1), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
	snprintf(portal, sizeof(portal), "tcp://127.0.0.1:%u", ntohs(sa.sin_port));
	snprintf(want, sizeof(want), "127.0.0.1:%u: Address already in use", ntohs(sa.sin_port));
	rc = start_from(&r, &rt, err, sizeof(err), portal, "ram:1M");
	assert_int_equal(rc, -EADDRINUSE);
	assert_string_equal(err, want);
	isd_reactor_destroy(r);
	close(fd);
}

static void
test_start_reports_missing_file(void **state)
{
	struct isd_reactor *r;
	struct isd_target_running *rt = NULL;
	char err[512] = "", spec[128], want[192];
	FILE *f;
	int rc;

	(void)state;
	rc = start_from(&r, &rt, err, sizeof(err), "tcp://127.0.0.1:0", "file:/nonexistent/nope");
	assert_int_equal(rc, -ENOENT);
	assert_string_equal(err, "--lun file:/nonexistent/nope: No such file or directory");
	isd_reactor_destroy(r);

	/* a file whose size is not a whole number of blocks */
	snprintf(spec, sizeof(spec), "file:%s/odd.img", g_tmpdir);
	f = fopen(spec + 5, "w");
	assert_non_null(f);
	fputs("not a multiple of 512", f);
	fclose(f);
	rc = start_from(&r, &rt, err, sizeof(err), "tcp://127.0.0.1:0", spec);
	assert_int_equal(rc, -EINVAL);
	snprintf(want, sizeof(want), "--lun %s: size 21 bytes", spec);
	if (strstr(err, want) == NULL)
		fail_msg("error '%s' lacks '%s'", err, want);
	isd_reactor_destroy(r);
}

static int
setup_tmp(void **state)
{
	(void)state;
	snprintf(g_tmpdir, sizeof(g_tmpdir), "/tmp/isd_test_config.XXXXXX");
	return mkdtemp(g_tmpdir) ? 0 : -1;
}

static int
teardown_tmp(void **state)
{
	char cmd[128];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", g_tmpdir);
	return system(cmd) == 0 ? 0 : -1;
}

/* ---- secrets -------------------------------------------------------------- */

static void
test_args_secret_rules(void **state)
{
	struct isd_target_cfg cfg;
	char err[512];

	(void)state;
	/* RFC 7143 §12.1.3: 96 bits at least; the message names the user, never the secret */
	EXPECT_BAD("default target: CHAP secret of 'u' is 5 bytes; at least 12", "--chap",
		   "u:short");
	assert_int_equal(parse(&cfg, err, sizeof(err), "--chap", "u:elevenbytes", NULL), -EINVAL);
	assert_null(strstr(err, "elevenbytes"));
	isd_target_cfg_fini(&cfg);
	assert_int_equal(parse(&cfg, err, sizeof(err), "--chap", "u:twelve_bytes", NULL), 0);
	isd_target_cfg_fini(&cfg);
	EXPECT_BAD("mutual CHAP secret of 't' is 1 bytes", "--chap", "u:averylongsecret1",
		   "--mutual-chap", "t:x");
	/* explicitly allowed */
	assert_int_equal(parse(&cfg, err, sizeof(err), "--allow-short-secrets", "--chap", "u:x",
			       NULL),
			 0);
	assert_true(cfg.allow_short_secrets);
	isd_target_cfg_fini(&cfg);
	/* the same secret both ways is refused, even where short secrets are allowed */
	EXPECT_BAD("CHAP and mutual CHAP use the same secret", "--chap", "u:averylongsecret1",
		   "--mutual-chap", "t:averylongsecret1");
	EXPECT_BAD("use the same secret", "--allow-short-secrets", "--chap", "u:x", "--mutual-chap",
		   "t:x");
	assert_int_equal(parse(&cfg, err, sizeof(err), "--chap", "u:averylongsecret1",
			       "--mutual-chap", "t:averylongsecret2", NULL),
			 0);
	isd_target_cfg_fini(&cfg);
}

static const char *
write_secret(const char *name, const char *text, mode_t mode)
{
	const char *path = write_file(name, text);

	assert_int_equal(chmod(path, mode), 0);
	return path;
}

static void
test_args_secret_sources(void **state)
{
	struct isd_target_cfg cfg;
	char err[512], flag[256];
	const char *path;

	(void)state;
	/* @FILE: the first line, newline stripped */
	path = write_secret("s600", "fromafilesecret\n", 0600);
	snprintf(flag, sizeof(flag), "u:@%s", path);
	assert_int_equal(parse(&cfg, err, sizeof(err), "--chap", flag, NULL), 0);
	assert_string_equal(cfg.nodes[0].auth.chap.secret, "fromafilesecret");
	assert_int_equal(cfg.warning_count, 0);
	isd_target_cfg_fini(&cfg);
	/* readable by its group: accepted with a warning */
	path = write_secret("s640", "groupreadsecret\r\n", 0640);
	snprintf(flag, sizeof(flag), "u:@%s", path);
	assert_int_equal(parse(&cfg, err, sizeof(err), "--chap", flag, NULL), 0);
	assert_string_equal(cfg.nodes[0].auth.chap.secret, "groupreadsecret");
	assert_int_equal(cfg.warning_count, 1);
	assert_non_null(strstr(cfg.warnings[0], "accessible to its group (mode 0640)"));
	isd_target_cfg_fini(&cfg);
	/* readable by everyone: refused */
	path = write_secret("s644", "everyonereads1\n", 0644);
	snprintf(flag, sizeof(flag), "u:@%s", path);
	EXPECT_BAD("is accessible to others (mode 0644); chmod 600 it", "--chap", flag);
	/* empty, two lines, missing */
	snprintf(flag, sizeof(flag), "u:@%s", write_secret("empty", "\n", 0600));
	EXPECT_BAD("is empty", "--chap", flag);
	snprintf(flag, sizeof(flag), "u:@%s", write_secret("two", "line1line1line1\nline2\n", 0600));
	EXPECT_BAD("one line of text expected", "--chap", flag);
	EXPECT_BAD("No such file", "--chap", "u:@/nonexistent/secret");
	{
		/* 255 bytes fit; with more after the newline it is no longer one line */
		char big[300];

		memset(big, 's', 255);
		strcpy(big + 255, "\n");
		snprintf(flag, sizeof(flag), "u:@%s", write_secret("max", big, 0600));
		assert_int_equal(parse(&cfg, err, sizeof(err), "--chap", flag, NULL), 0);
		assert_int_equal(strlen(cfg.nodes[0].auth.chap.secret), 255);
		isd_target_cfg_fini(&cfg);
		strcpy(big + 255, "\nextra");
		snprintf(flag, sizeof(flag), "u:@%s", write_secret("max2", big, 0600));
		EXPECT_BAD("longer than 255 bytes", "--chap", flag);
		strcpy(big + 255, "s\n");
		snprintf(flag, sizeof(flag), "u:@%s", write_secret("max3", big, 0600));
		EXPECT_BAD("longer than 255 bytes", "--chap", flag);
	}
	/* env:VAR */
	setenv("ISD_TEST_SECRET", "fromtheenvironment", 1);
	assert_int_equal(parse(&cfg, err, sizeof(err), "--chap", "u:env:ISD_TEST_SECRET", NULL), 0);
	assert_string_equal(cfg.nodes[0].auth.chap.secret, "fromtheenvironment");
	isd_target_cfg_fini(&cfg);
	unsetenv("ISD_TEST_SECRET");
	EXPECT_BAD("environment variable 'ISD_TEST_SECRET' is not set", "--chap",
		   "u:env:ISD_TEST_SECRET");
}

static void
test_args_scrub(void **state)
{
	char a0[] = "iserd", a1[] = "--chap", a2[] = "user:averylongsecret1", a3[] = "-t",
	     a4[] = "--chap", a5[] = "--mutual-chap=tgt:othersecret123", a6[] = "--chap",
	     a7[] = "u:@/etc/secret", a8[] = "--mutual-chap", a9[] = "t:env:VAR",
	     a10[] = "--alias", a11[] = "--chap";
	char *argv[] = {a0, a1, a2, a3, a4, a5, a6, a7, a8, a9, a10, a11, NULL};

	(void)state;
	/* a4 is the value of -t, a11 the value of --alias: neither is a flag */
	assert_int_equal(isd_target_args_scrub(12, argv), 2);
	assert_string_equal(a2, "user:xxxxxxxxxxxxxxxx");
	assert_string_equal(a5, "--mutual-chap=tgt:xxxxxxxxxxxxxx");
	assert_string_equal(a4, "--chap");
	assert_string_equal(a7, "u:@/etc/secret");
	assert_string_equal(a9, "t:env:VAR");
	assert_string_equal(a11, "--chap");
}

static void
expect_file_ok(const char *text, struct isd_target_cfg *cfg)
{
	char err[512] = "", full[2048];
	const char *path;

	snprintf(full, sizeof(full), "%sportals = ( \"tcp://127.0.0.1:3260\" );\n", text);
	path = write_file("ok.conf", full);
	isd_target_cfg_init(cfg);
	if (isd_target_cfg_load_file(path, cfg, err, sizeof(err)) != 0 ||
	    isd_target_cfg_validate(cfg, err, sizeof(err)) != 0)
		fail_msg("%s", err);
}

#define T_HEAD "targets = ( { name = \"iqn.2026-11.org.iserd:a\"; luns = ( { backing = \"ram:1M\"; } );\n"
#define INI_A "iqn.2026-11.org.example:a"
#define INI_B "iqn.2026-11.org.example:b"

static void
test_file_secret_rules(void **state)
{
	struct isd_target_cfg cfg;
	char text[1024];

	(void)state;
	expect_file_error(T_HEAD "  chap = \"u:x\"; } );\n",
			  "bad.conf:1: CHAP secret of 'u' is 1 bytes; at least 12");
	expect_file_error(T_HEAD "  chap = \"u:samesamesame1\"; mutual_chap = \"t:samesamesame1\"; } );\n",
			  "CHAP and mutual CHAP use the same secret");
	expect_file_error("global = { discovery_auth = { chap = \"d:samesamesame1\";\n"
			  "  mutual_chap = \"t:samesamesame1\"; }; };\n" T_HEAD "} );\n",
			  "use the same secret");
	expect_file_error("global = { discovery_auth = { chap = \"d:short\"; }; };\n" T_HEAD
			  "} );\n",
			  "is 5 bytes");
	/* per initiator: its own chap against the target's mutual secret */
	expect_file_error(T_HEAD "  chap = \"u:targetdefault1\"; mutual_chap = \"t:mutualsecret12\";\n"
			  "  acl = ( { initiator = \"" INI_A "\"; chap = \"a:mutualsecret12\"; } ); } );\n",
			  "bad.conf:3: CHAP and mutual CHAP use the same secret");
	expect_file_error(T_HEAD "  acl = ( { initiator = \"" INI_A "\"; chap = \"a:short\"; } ); } );\n",
			  "bad.conf:2: CHAP secret of 'a' is 5 bytes");
	expect_file_error(T_HEAD "  acl = ( { initiator = \"" INI_A "\"; chap = \"a:longenoughsecret\"; },\n"
			  "  { initiator = \"" INI_A "\"; chap = \"b:longenoughsecret\"; } ); } );\n",
			  "credentials for " INI_A " given twice");
	expect_file_error(T_HEAD "  acl = ( { initiator = \"" INI_A "\"; secret = \"x\"; } ); } );\n",
			  "unknown setting 'secret' in acl entry");
	expect_file_error(T_HEAD "  acl = ( { chap = \"a:longenoughsecret\"; } ); } );\n",
			  "acl entry needs an initiator name");
	expect_file_error(T_HEAD "  chap = { user = \"u\"; secret = \"abcdefghijklm\";\n"
			  "    secret_env = \"X\"; }; } );\n",
			  "give only one of secret, secret_file, secret_env");
	expect_file_error("global = { chap_algorithms = [ \"md4\" ]; };\n",
			  "bad.conf:1: chap_algorithms: 'md4' is not one of");
	/* allowed explicitly */
	expect_file_ok("global = { allow_short_chap_secrets = true; };\n" T_HEAD
		       "  chap = \"u:x\"; } );\n",
		       &cfg);
	isd_target_cfg_fini(&cfg);

	/* acl groups: per-initiator credentials, secret_file and secret_env */
	setenv("ISD_TEST_B_SECRET", "bsecretfromenv1", 1);
	snprintf(text, sizeof(text),
		 "global = { chap_algorithms = [ \"sha256\", \"SHA3-256\" ]; user = \"nobody\";\n"
		 "  group = \"root\"; };\n" T_HEAD
		 "  chap = \"default:defaultsecret1\";\n"
		 "  acl = ( \"iqn.2026-11.org.example:c\",\n"
		 "    { initiator = \"" INI_A "\"; chap = { user = \"a\"; secret_file = \"%s\"; }; },\n"
		 "    { initiator = \"" INI_B "\"; chap = { user = \"b\"; secret_env = \"ISD_TEST_B_SECRET\"; };\n"
		 "      mutual_chap = \"tgt:mutualforbonly\"; } ); } );\n",
		 write_secret("a.secret", "asecretfromfile1\n", 0600));
	expect_file_ok(text, &cfg);
	unsetenv("ISD_TEST_B_SECRET");
	assert_int_equal(cfg.chap_algs, (1u << 7) | (1u << 8));
	assert_string_equal(cfg.user, "nobody");
	assert_string_equal(cfg.group, "root");
	{
		char e[256];

		assert_int_equal(isd_target_cfg_check_backing(&cfg, e, sizeof(e)), 0);
		snprintf(cfg.user, sizeof(cfg.user), "no-such-user-here");
		assert_int_equal(isd_target_cfg_check_backing(&cfg, e, sizeof(e)), -ENOENT);
		assert_string_equal(e, "user 'no-such-user-here': no such user");
		snprintf(cfg.user, sizeof(cfg.user), "nobody");
		snprintf(cfg.group, sizeof(cfg.group), "no-such-group-here");
		assert_int_equal(isd_target_cfg_check_backing(&cfg, e, sizeof(e)), -ENOENT);
	}
	assert_int_equal(cfg.nodes[0].acl_count, 3);
	assert_string_equal(cfg.nodes[0].acl[1], INI_A);
	assert_int_equal(cfg.nodes[0].ini_count, 2);
	assert_string_equal(cfg.nodes[0].ini[0].name, INI_A);
	assert_true(cfg.nodes[0].ini[0].auth.require_chap);
	assert_false(cfg.nodes[0].ini[0].auth.mutual);
	assert_string_equal(cfg.nodes[0].ini[0].auth.chap.secret, "asecretfromfile1");
	assert_string_equal(cfg.nodes[0].ini[1].auth.chap.secret, "bsecretfromenv1");
	assert_true(cfg.nodes[0].ini[1].auth.mutual);
	assert_string_equal(cfg.nodes[0].ini[1].auth.mutual_chap.user, "tgt");
	isd_target_cfg_fini(&cfg);
}

static void
test_file_mode_warning(void **state)
{
	struct isd_target_cfg cfg;
	char err[512] = "";
	const char *path;

	(void)state;
	/* a file with a literal secret that the group or others may read: a warning */
	path = write_file("loose.conf", T_HEAD "  chap = \"u:averylongsecret1\"; } );\n");
	assert_int_equal(chmod(path, 0644), 0);
	isd_target_cfg_init(&cfg);
	assert_int_equal(isd_target_cfg_load_file(path, &cfg, err, sizeof(err)), 0);
	assert_int_equal(cfg.warning_count, 1);
	assert_non_null(strstr(cfg.warnings[0], "loose.conf holds CHAP secrets and is accessible "
						"to group or others (mode 0644)"));
	isd_target_cfg_fini(&cfg);
	/* 0600: none */
	assert_int_equal(chmod(path, 0600), 0);
	isd_target_cfg_init(&cfg);
	assert_int_equal(isd_target_cfg_load_file(path, &cfg, err, sizeof(err)), 0);
	assert_int_equal(cfg.warning_count, 0);
	isd_target_cfg_fini(&cfg);
	/* the secret in an @include'd file: that file's mode counts */
	path = write_file("inc.conf", T_HEAD "  chap = \"u:averylongsecret1\"; } );\n");
	assert_int_equal(chmod(path, 0604), 0);
	path = write_file("main.conf", "@include \"inc.conf\"\n");
	assert_int_equal(chmod(path, 0600), 0);
	isd_target_cfg_init(&cfg);
	if (isd_target_cfg_load_file(path, &cfg, err, sizeof(err)) != 0)
		fail_msg("%s", err);
	assert_true(cfg.nodes[0].auth.require_chap);
	assert_int_equal(cfg.warning_count, 1);
	assert_non_null(strstr(cfg.warnings[0], "inc.conf holds CHAP secrets"));
	isd_target_cfg_fini(&cfg);
	/* no secret, no warning, whatever the mode */
	path = write_file("nosecret.conf", T_HEAD "} );\n");
	isd_target_cfg_init(&cfg);
	assert_int_equal(isd_target_cfg_load_file(path, &cfg, err, sizeof(err)), 0);
	assert_int_equal(cfg.warning_count, 0);
	isd_target_cfg_fini(&cfg);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_args_defaults),
	    cmocka_unit_test(test_args_good_flags),
	    cmocka_unit_test(test_args_reactor_mode),
	    cmocka_unit_test(test_args_reactors),
	    cmocka_unit_test(test_file_reactors),
	    cmocka_unit_test(test_args_lun_before_target_goes_to_default),
	    cmocka_unit_test(test_args_physical_block_size),
	    cmocka_unit_test(test_alua_config),
	    cmocka_unit_test(test_args_help_version),
	    cmocka_unit_test(test_args_rejects_bad_flags),
	    cmocka_unit_test(test_args_chap_error_hides_secret),
	    cmocka_unit_test(test_portal_parse_iser),
	    cmocka_unit_test(test_name_check_table),
	    cmocka_unit_test(test_size_parse_table),
	    cmocka_unit_test(test_file_full_example),
	    cmocka_unit_test(test_file_rejects_unknown_key_with_line),
	    cmocka_unit_test(test_file_rejects_bad_values),
	    cmocka_unit_test(test_file_syntax_error_and_missing),
	    cmocka_unit_test(test_flags_add_to_file),
	    cmocka_unit_test(test_check_backing),
	    cmocka_unit_test(test_shipped_example_is_valid),
	    cmocka_unit_test(test_start_and_clean_shutdown),
	    cmocka_unit_test(test_start_reports_busy_port),
	    cmocka_unit_test(test_start_direct_block_size),
	    cmocka_unit_test(test_start_reports_missing_file),
	    cmocka_unit_test(test_args_secret_rules),
	    cmocka_unit_test(test_args_secret_sources),
	    cmocka_unit_test(test_args_scrub),
	    cmocka_unit_test(test_file_secret_rules),
	    cmocka_unit_test(test_file_mode_warning),
	};

	return cmocka_run_group_tests_name("target_config", tests, setup_tmp, teardown_tmp);
}
