/*
 * LUNs and targets changing while an iSER portal is open (on the fake verbs
 * device): a RAM LUN added live is registered with the datamover (without
 * write access when read-only), and deregistered when it is removed or its
 * target is freed, before its store closes; a LUN registered read-only cannot
 * be made writable in place.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "fakeverbs.h"
#include "iscsi/iscsi.h"
#include "reactor/reactor.h"
#include "server/config_int.h"
#include "server/live.h"
#include "server/running_int.h"
#include "util/log.h"

#define TA "iqn.2026-11.org.iserd:a"
#define TB "iqn.2026-11.org.iserd:b"

struct fx {
	struct isd_reactor *r;
	struct isd_target_running *rt;
	char err[1024];
};

static int
setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	struct isd_target_cfg cfg;
	struct isd_target_portal_spec ps;
	char *argv[] = {"iserd", "--portal", "tcp://127.0.0.1:0", "--target", TA, "--lun",
			"ram:1M", "--target", TB, "--lun", "ram:1M", NULL};
	bool iser = false;

	assert_non_null(f);
	isd_log_set_level(ISD_LOG_WARN);
	for (unsigned k = 0; k < isd_dm_kind_count; k++)
		iser |= isd_dm_kinds[k]->transport == ISD_TRANSPORT_ISER;
	if (!iser)
		skip();
	isd_target_cfg_init(&cfg);
	assert_int_equal(isd_target_cfg_parse_args(11, argv, &cfg, f->err, sizeof(f->err)), 0);
	assert_int_equal(isd_reactor_create(&f->r), 0);
	if (isd_target_start(&cfg, f->r, &f->rt, f->err, sizeof(f->err)) != 0)
		fail_msg("start: %s", f->err);
	isd_target_cfg_fini(&cfg);
	assert_int_equal(isd_target_portal_parse("iser://127.0.0.1:0", &ps, NULL, 0), 0);
	if (isd_live_portal_add(f->rt, &ps, f->err, sizeof(f->err)) != 0)
		fail_msg("iser portal: %s", f->err);
	assert_int_equal(f->rt->registered_count, 2);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fx *f = *state;

	isd_target_stop(f->rt);
	isd_reactor_destroy(f->r);
	/* every registration the LUNs made went before their memory */
	assert_int_equal(fv_live_objects(), 0);
	fv_reset();
	free(f);
	return 0;
}

static bool
registered(struct fx *f, const void *base, bool *ro)
{
	return isd_target_mem_registered(f->rt, base, ro);
}

static void
test_lun_add_remove_registers(void **state)
{
	struct fx *f = *state;
	struct isd_target_lun_cfg l;
	struct isd_target_node *n = isd_target_node_find(f->rt, TA);
	void *base;
	bool ro = false;

	memset(&l, 0, sizeof(l));
	assert_int_equal(isd_target_lun_spec_parse("ram:2M", &l, f->err, sizeof(f->err)), 0);
	l.number = 1;
	l.read_only = true;
	assert_int_equal(isd_live_lun_add(f->rt, TA, &l, f->err, sizeof(f->err)), 0);
	assert_int_equal(f->rt->registered_count, 3);
	base = n->bs[1]->mem_base;
	assert_true(registered(f, base, &ro));
	assert_true(ro);
	assert_true(n->bs[1]->mem_pinned);
	/* registered without write access: cannot become writable in place */
	assert_int_equal(isd_live_lun_set_read_only(f->rt, TA, 1, false, f->err, sizeof(f->err)),
			 -EROFS);
	assert_non_null(strstr(f->err, "remove the LUN"));
	assert_true(isd_target_running_cfg(f->rt)->nodes[0].luns[1].read_only);
	/* nor change size */
	assert_int_equal(isd_live_lun_resize(f->rt, TA, 1, 4u << 20, f->err, sizeof(f->err)),
			 -ENOTSUP);
	assert_int_equal(isd_live_lun_remove(f->rt, TA, 1, f->err, sizeof(f->err)), 0);
	assert_int_equal(f->rt->registered_count, 2);
	assert_false(registered(f, base, NULL));
	/* a writable LUN 0 can go read-only and back (its registration allows writes) */
	assert_int_equal(isd_live_lun_set_read_only(f->rt, TA, 0, true, f->err, sizeof(f->err)), 0);
	assert_int_equal(isd_live_lun_set_read_only(f->rt, TA, 0, false, f->err, sizeof(f->err)),
			 0);
}

static void
test_target_remove_deregisters(void **state)
{
	struct fx *f = *state;
	struct isd_target_node *n = isd_target_node_find(f->rt, TB);
	void *base = n->bs[0]->mem_base;

	assert_true(registered(f, base, NULL));
	assert_int_equal(isd_live_target_remove(f->rt, TB, false, f->err, sizeof(f->err)), 0);
	for (int i = 0; i < 5; i++)
		isd_reactor_poll(f->r, 1);
	assert_true(TAILQ_EMPTY(&f->rt->removed));
	assert_int_equal(f->rt->registered_count, 1);
	assert_false(registered(f, base, NULL));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_lun_add_remove_registers, setup, teardown),
		cmocka_unit_test_setup_teardown(test_target_remove_deregisters, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
