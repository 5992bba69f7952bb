/*
 * Portals of a running target (live.h): add, remove, bind, and the running
 * model kept in step. TCP portals listen for real on loopback addresses; the
 * iSER portal listens on the fake verbs device, where the LUN memory must get
 * registered when the first iSER portal opens after the LUNs.
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

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "fakeverbs.h"
#include "iscsi/iscsi.h"
#include "reactor/reactor.h"
#include "server/config_int.h"
#include "server/live.h"
#include "server/running_int.h"

#define NAME_A "iqn.2024-01.org.example:a"
#define NAME_B "iqn.2024-01.org.example:b"

static char g_conf[64];

static const char g_text[] =
	"portals = ( \"tcp://127.0.0.1:0\", \"tcp://127.0.0.2:0\" );\n"
	"targets = (\n"
	"  { name = \"" NAME_A "\"; luns = ( { backing = \"ram:1M\"; } );\n"
	"    portals = [ \"tcp://127.0.0.2:0\" ]; },\n"
	"  { name = \"" NAME_B "\"; luns = ( { backing = \"ram:1M\"; read_only = true; } ); }\n"
	");\n";

struct fx {
	struct isd_reactor *r;
	struct isd_target_running *rt;
};

static void
load(struct isd_target_cfg *cfg)
{
	char err[512];

	isd_target_cfg_init(cfg);
	if (isd_target_cfg_load_file(g_conf, cfg, err, sizeof(err)) != 0 ||
	    isd_target_cfg_validate(cfg, err, sizeof(err)) != 0)
		fail_msg("%s", err);
}

static int
setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	struct isd_target_cfg cfg;
	char err[512];

	assert_non_null(f);
	load(&cfg);
	assert_int_equal(isd_reactor_create(&f->r), 0);
	if (isd_target_start(&cfg, f->r, &f->rt, err, sizeof(err)) != 0)
		fail_msg("start: %s", err);
	isd_target_cfg_fini(&cfg);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fx *f = *state;

	isd_target_stop(f->rt);
	isd_reactor_destroy(f->r);
	assert_int_equal(fv_live_objects(), 0);
	fv_reset();
	free(f);
	return 0;
}

/* Whether something listens on the portal named by a running URL "tcp://A:P". */
static bool
listening(const char *url)
{
	struct isd_target_portal_spec ps;
	struct sockaddr_in sa;
	int fd, rc;

	assert_int_equal(isd_target_portal_parse(url, &ps, NULL, 0), 0);
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_port = htons(ps.port);
	assert_int_equal(inet_pton(AF_INET, ps.host, &sa.sin_addr), 1);
	fd = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(fd >= 0);
	rc = connect(fd, (struct sockaddr *)&sa, sizeof(sa));
	close(fd);
	return rc == 0;
}

static struct isd_tnode *
node(struct fx *f, const char *name)
{
	struct isd_tnode *tn = isd_iscsi_tgt_find_node(f->rt->tgt, name);

	assert_non_null(tn);
	return tn;
}

static void
test_start_binds(void **state)
{
	struct fx *f = *state;
	struct isd_tnode *a = node(f, NAME_A), *b = node(f, NAME_B);
	char url[ISD_TARGET_URL_MAX], got[ISD_TARGET_URL_MAX];

	assert_int_equal(f->rt->portal_count, 2);
	assert_true(a->bound);
	assert_int_equal(a->portal_count, 1);
	assert_ptr_equal(a->portals[0], &f->rt->portals[1]->pc);
	assert_false(b->bound);
	/* the URL as listed: the port bound */
	snprintf(url, sizeof(url), "tcp://127.0.0.2:%u", f->rt->portals[1]->pc.port);
	assert_string_equal(f->rt->portals[1]->url, url);
	assert_true(listening(url));
	/* the model keeps the port asked for; the URL listened on has the one bound */
	assert_int_equal(f->rt->cfg.portals[1].port, 0);
	assert_int_equal(isd_live_portal_listening(f->rt, &f->rt->cfg.portals[1], got, sizeof(got)),
			 0);
	assert_string_equal(got, url);
}

static void
test_add_bind_remove(void **state)
{
	struct fx *f = *state;
	struct isd_target_portal_spec ps;
	struct isd_tnode *a = node(f, NAME_A);
	struct isd_target_node_cfg *ma = isd_target_cfg_find_node(&f->rt->cfg, NAME_A);
	char err[512], p2[ISD_TARGET_URL_MAX], p3[ISD_TARGET_URL_MAX];
	const char *both[2], *bad[1];

	assert_non_null(ma);
	assert_int_equal(isd_target_portal_parse("tcp://127.0.0.3:0", &ps, NULL, 0), 0);
	snprintf(ps.origin, sizeof(ps.origin), "test");
	assert_int_equal(isd_live_portal_add(f->rt, &ps, err, sizeof(err)), 0);
	assert_int_equal(f->rt->portal_count, 3);
	assert_int_equal(f->rt->cfg.portal_count, 3);
	snprintf(p2, sizeof(p2), "%s", f->rt->portals[1]->url);
	snprintf(p3, sizeof(p3), "%s", f->rt->portals[2]->url);
	assert_true(listening(p3));

	/* a portal that already listens */
	assert_int_equal(isd_target_portal_parse(p3, &ps, NULL, 0), 0);
	assert_int_equal(isd_live_portal_add(f->rt, &ps, err, sizeof(err)), -EEXIST);
	assert_int_equal(f->rt->cfg.portal_count, 3);

	/* bind A to the new portal and the second; what fails changes nothing */
	bad[0] = "tcp://127.0.0.9:1";
	assert_int_equal(isd_live_target_bind(f->rt, NAME_A, bad, 1, err, sizeof(err)), -ENOENT);
	assert_string_equal(err, "no portal tcp://127.0.0.9:1");
	both[0] = p3;
	both[1] = p3;
	assert_int_equal(isd_live_target_bind(f->rt, NAME_A, both, 2, err, sizeof(err)), -EINVAL);
	assert_int_equal(isd_live_target_bind(f->rt, "iqn.2024-01.org.example:none", both, 1, err,
					      sizeof(err)),
			 -ENOENT);
	assert_int_equal(a->portal_count, 1);
	assert_int_equal(ma->portal_bind_count, 1);
	both[1] = p2;
	assert_int_equal(isd_live_target_bind(f->rt, NAME_A, both, 2, err, sizeof(err)), 0);
	assert_int_equal(a->portal_count, 2);
	assert_ptr_equal(a->portals[0], &f->rt->portals[2]->pc);
	assert_int_equal(ma->portal_bind_count, 2);
	/* the model names portals as configured (port 0 stays 0) */
	assert_string_equal(ma->portals[0], "tcp://127.0.0.3:0");
	assert_string_equal(ma->portals[1], "tcp://127.0.0.2:0");

	/* removing the second: A keeps the third; nothing listens there any more */
	assert_int_equal(isd_live_portal_remove(f->rt, p2, err, sizeof(err)), 0);
	assert_false(listening(p2));
	assert_int_equal(f->rt->portal_count, 2);
	assert_int_equal(f->rt->cfg.portal_count, 2);
	assert_int_equal(a->portal_count, 1);
	assert_ptr_equal(a->portals[0], &f->rt->portals[1]->pc);
	assert_int_equal(ma->portal_bind_count, 1);
	assert_string_equal(ma->portals[0], "tcp://127.0.0.3:0");
	assert_int_equal(isd_live_portal_remove(f->rt, p2, err, sizeof(err)), -ENOENT);

	/* the third is A's last: refused until A is unbound */
	assert_int_equal(isd_live_portal_remove(f->rt, p3, err, sizeof(err)), -EBUSY);
	assert_non_null(strstr(err, NAME_A));
	assert_true(listening(p3));
	assert_int_equal(isd_live_target_bind(f->rt, NAME_A, NULL, 0, err, sizeof(err)), 0);
	assert_false(a->bound);
	assert_int_equal(ma->portal_bind_count, 0);
	assert_int_equal(isd_live_portal_remove(f->rt, p3, err, sizeof(err)), 0);
	assert_false(listening(p3));
	assert_int_equal(f->rt->cfg.portal_count, 1);
	assert_int_equal(isd_target_portal_parse("tcp://127.0.0.3:0", &ps, NULL, 0), 0);
	assert_int_equal(isd_live_portal_listening(f->rt, &ps, p3, sizeof(p3)), -ENOENT);
	assert_int_equal(isd_live_portal_remove(f->rt, "tcp://nonsense:x", err, sizeof(err)),
			 -EINVAL);
}

static void
test_iser_portal_registers_lun_memory(void **state)
{
	struct fx *f = *state;
	struct isd_target_portal_spec ps;
	char err[512], url[ISD_TARGET_URL_MAX];
	int iser = -1;

	for (unsigned k = 0; k < isd_dm_kind_count; k++)
		if (isd_dm_kinds[k]->transport == ISD_TRANSPORT_ISER)
			iser = (int)k;
	if (iser < 0)
		skip();
	/* two RAM LUNs (B's read-only), no iSER portal yet: nothing registered */
	assert_int_equal(f->rt->registered_count, 0);
	assert_false(f->rt->kind_open[iser]);
	assert_int_equal(isd_target_portal_parse("iser://0.0.0.0:0", &ps, NULL, 0), 0);
	if (isd_live_portal_add(f->rt, &ps, err, sizeof(err)) != 0)
		fail_msg("iser portal: %s", err);
	assert_true(f->rt->kind_open[iser]);
	assert_int_equal(f->rt->registered_count, 2);
	for (int i = 0; i < 2; i++) {
		struct isd_target_node *n = isd_target_node_find(f->rt, i ? NAME_B : NAME_A);

		assert_non_null(n);
		assert_non_null(n->bs[0]);
		assert_ptr_equal(f->rt->registered[i].kind, isd_dm_kinds[iser]);
		assert_ptr_equal(f->rt->registered[i].base, n->bs[0]->mem_base);
		/* B's LUN is read-only: registered without write access */
		assert_int_equal(f->rt->registered[i].read_only, i == 1);
		assert_true(n->bs[0]->mem_pinned);
	}
	/* a second iSER portal registers nothing more; removing both keeps the
	 * registrations (connections may still use them) until stop */
	assert_int_equal(isd_target_portal_parse("iser://127.0.0.1:0", &ps, NULL, 0), 0);
	assert_int_equal(isd_live_portal_add(f->rt, &ps, err, sizeof(err)), 0);
	assert_int_equal(f->rt->registered_count, 2);
	snprintf(url, sizeof(url), "%s", f->rt->portals[3]->url);
	assert_int_equal(isd_live_portal_remove(f->rt, url, err, sizeof(err)), 0);
	snprintf(url, sizeof(url), "%s", f->rt->portals[2]->url);
	assert_int_equal(isd_live_portal_remove(f->rt, url, err, sizeof(err)), 0);
	assert_int_equal(f->rt->registered_count, 2);
	assert_int_equal(f->rt->cfg.portal_count, 2);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_start_binds, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_add_bind_remove, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_iser_portal_registers_lun_memory, setup,
					    teardown),
	};
	char dir[] = "/tmp/isd-live-portal.XXXXXX";
	FILE *fp;
	int rc;

	assert_non_null(mkdtemp(dir));
	snprintf(g_conf, sizeof(g_conf), "%s/t.conf", dir);
	fp = fopen(g_conf, "w");
	assert_non_null(fp);
	fputs(g_text, fp);
	fclose(fp);
	rc = cmocka_run_group_tests(tests, NULL, NULL);
	unlink(g_conf);
	rmdir(dir);
	return rc;
}
