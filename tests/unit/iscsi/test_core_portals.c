/*
 * Portals in the core: which portal a connection came in on, nodes bound to
 * some portals (a login elsewhere is 0x0203, SendTargets elsewhere does not
 * name them), SendTargets listing only portals of the asking connection's
 * transport, and portal removal (refused while a node has no other portal).
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

#include "fake_dm.h"
#include "iscsi/iscsi.h"
#include "iscsi/pdu.h"
#include "reactor/reactor.h"

#define NAME_A "iqn.2024-01.org.example:bound"
#define NAME_B "iqn.2024-01.org.example:everywhere"
#define INAME "iqn.1993-08.org.debian:01:abcdef"

/* the fake datamover's connections arrive on 192.0.2.10:3260 */
enum { P_HERE, P_OTHER, P_ISER, P_WILD, P_NAME, P_COUNT };

struct fx {
	struct isd_reactor *r;
	struct isd_iscsi_tgt *t;
	struct isd_tnode a, b;
	struct isd_portal_cfg p[P_COUNT];
	const struct isd_portal_cfg *a_portals[2];
	struct fake_dm fd;
};

static const uint8_t g_isid[6] = {0x80, 0x12, 0x34, 0x56, 0x00, 0x02};

static void
portal(struct isd_portal_cfg *p, const char *host, uint16_t port, enum isd_transport tr)
{
	snprintf(p->host, sizeof(p->host), "%s", host);
	p->port = port;
	p->tpgt = 1;
	p->transport = tr;
}

static int
setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	struct isd_iscsi_cfg cfg;

	assert_non_null(f);
	assert_int_equal(isd_reactor_create(&f->r), 0);
	isd_iscsi_cfg_init(&cfg);
	cfg.nop_interval_ms = 0;
	assert_int_equal(isd_iscsi_tgt_create(f->r, &cfg, &f->t), 0);
	portal(&f->p[P_HERE], "192.0.2.10", 3260, ISD_TRANSPORT_TCP);
	portal(&f->p[P_OTHER], "198.51.100.1", 3260, ISD_TRANSPORT_TCP);
	portal(&f->p[P_ISER], "192.0.2.10", 3260, ISD_TRANSPORT_ISER);
	portal(&f->p[P_WILD], "::", 3261, ISD_TRANSPORT_TCP);
	portal(&f->p[P_NAME], "localhost", 3262, ISD_TRANSPORT_TCP);
	for (int i = 0; i < P_COUNT; i++)
		assert_int_equal(isd_iscsi_tgt_add_portal(f->t, &f->p[i]), 0);
	snprintf(f->a.name, sizeof(f->a.name), "%s", NAME_A);
	isd_key_policy_init(&f->a.policy);
	/* A: only on the other TCP portal */
	f->a_portals[0] = &f->p[P_OTHER];
	f->a.portals = f->a_portals;
	f->a.portal_count = 1;
	f->a.bound = true;
	snprintf(f->b.name, sizeof(f->b.name), "%s", NAME_B);
	isd_key_policy_init(&f->b.policy);
	assert_int_equal(isd_iscsi_tgt_add_node(f->t, &f->a), 0);
	assert_int_equal(isd_iscsi_tgt_add_node(f->t, &f->b), 0);
	fake_dm_init(&f->fd);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fx *f = *state;
	struct isd_iscsi_stats st;

	if (f->fd.conn != NULL && !f->fd.terminate_notified)
		fake_dm_terminate_notify(&f->fd, true);
	fake_dm_fini(&f->fd);
	isd_iscsi_tgt_get_stats(f->t, &st);
	assert_int_equal(st.connections, 0);
	assert_int_equal(st.sessions, 0);
	isd_iscsi_tgt_destroy(f->t);
	isd_reactor_destroy(f->r);
	free(f);
	return 0;
}

static struct isd_conn_info
info_of(const char *local, uint16_t port, enum isd_transport tr)
{
	struct isd_conn_info info;

	memset(&info, 0, sizeof(info));
	snprintf(info.peer_addr, sizeof(info.peer_addr), "192.0.2.1");
	info.peer_port = 40000;
	snprintf(info.local_addr, sizeof(info.local_addr), "%s", local);
	info.local_port = port;
	info.tpgt = 1;
	info.transport = tr;
	return info;
}

static void
reconnect(struct fx *f, const struct isd_conn_info *info)
{
	if (f->fd.conn != NULL && !f->fd.terminate_notified)
		fake_dm_terminate_notify(&f->fd, true);
	fake_dm_fini(&f->fd);
	fake_dm_init(&f->fd);
	assert_int_equal(fake_dm_connect_info(&f->fd, f->t, f->r, info), 0);
}

static void
test_conn_portal(void **state)
{
	struct fx *f = *state;
	struct isd_conn_info i;

	i = info_of("192.0.2.10", 3260, ISD_TRANSPORT_TCP);
	assert_ptr_equal(isd_iscsi_tgt_conn_portal(f->t, &i), &f->p[P_HERE]);
	i.transport = ISD_TRANSPORT_ISER;
	assert_ptr_equal(isd_iscsi_tgt_conn_portal(f->t, &i), &f->p[P_ISER]);
	/* an IPv4 peer on a dual-stack socket, and any address on the wildcard portal */
	i = info_of("::ffff:198.51.100.1", 3260, ISD_TRANSPORT_TCP);
	assert_ptr_equal(isd_iscsi_tgt_conn_portal(f->t, &i), &f->p[P_OTHER]);
	i = info_of("203.0.113.5", 3261, ISD_TRANSPORT_TCP);
	assert_ptr_equal(isd_iscsi_tgt_conn_portal(f->t, &i), &f->p[P_WILD]);
	/* a portal named by a host name: by its port */
	i = info_of("127.0.0.1", 3262, ISD_TRANSPORT_TCP);
	assert_ptr_equal(isd_iscsi_tgt_conn_portal(f->t, &i), &f->p[P_NAME]);
	i = info_of("203.0.113.5", 3260, ISD_TRANSPORT_TCP);
	assert_null(isd_iscsi_tgt_conn_portal(f->t, &i));
	i = info_of("203.0.113.5", 3261, ISD_TRANSPORT_ISER);
	assert_null(isd_iscsi_tgt_conn_portal(f->t, &i));
	assert_true(isd_tnode_on_portal(&f->b, NULL));
	assert_false(isd_tnode_on_portal(&f->a, NULL));
	assert_false(isd_tnode_on_portal(&f->a, &f->p[P_HERE]));
	assert_true(isd_tnode_on_portal(&f->a, &f->p[P_OTHER]));
}

static void
test_login_on_unbound_portal(void **state)
{
	struct fx *f = *state;
	struct isd_conn_info i = info_of("192.0.2.10", 3260, ISD_TRANSPORT_TCP);
	uint16_t tsih;

	reconnect(f, &i);
	/* the same status as a target that does not exist */
	assert_int_equal(fake_dm_login(&f->fd, INAME, NAME_A, g_isid, 1, &tsih), 0x0203);
	reconnect(f, &i);
	assert_int_equal(fake_dm_login(&f->fd, INAME, "iqn.2024-01.org.example:none", g_isid, 1,
				       &tsih),
			 0x0203);
	reconnect(f, &i);
	assert_int_equal(fake_dm_login(&f->fd, INAME, NAME_B, g_isid, 1, &tsih), 0);
	i = info_of("198.51.100.1", 3260, ISD_TRANSPORT_TCP);
	reconnect(f, &i);
	assert_int_equal(fake_dm_login(&f->fd, INAME, NAME_A, g_isid, 1, &tsih), 0);
}

/* SendTargets=value over the current (logged-in) connection: the answer's text. */
static int
send_targets(struct fx *f, const char *value, char *out, size_t cap)
{
	uint8_t bhs[ISD_BHS_LEN], text[256];
	char kvs[200];
	struct isd_pdu *rsp;
	uint32_t len, n;

	memset(bhs, 0, sizeof(bhs));
	bhs[0] = ISD_OP_TEXT_REQ | ISD_BHS_I;
	bhs[1] = ISD_BHS_F;
	put_be32(bhs + 16, 0x10);
	put_be32(bhs + 20, ISD_RSVD_TAG);
	put_be32(bhs + 24, 1);
	snprintf(kvs, sizeof(kvs), "SendTargets=%s", value);
	len = fake_text(text, sizeof(text), kvs, (const char *)NULL);
	fake_dm_inject(&f->fd, bhs, text, len);
	rsp = fake_dm_pop(&f->fd);
	assert_non_null(rsp);
	assert_int_equal(isd_bhs_opcode(rsp->bhs), ISD_OP_TEXT_RSP);
	/* NULs between pairs become '|' so that the whole answer compares as one string */
	n = rsp->data_len < cap - 1 ? rsp->data_len : (uint32_t)cap - 1;
	for (uint32_t k = 0; k < n; k++)
		out[k] = rsp->data[k] == '\0' ? '|' : (char)rsp->data[k];
	out[n] = '\0';
	isd_pdu_free(rsp);
	return (int)n;
}

static void
discovery_on(struct fx *f, const struct isd_conn_info *i)
{
	uint16_t tsih;

	reconnect(f, i);
	assert_int_equal(fake_dm_login(&f->fd, INAME, NULL, g_isid, 1, &tsih), 0);
}

static void
test_sendtargets_filters(void **state)
{
	struct fx *f = *state;
	struct isd_conn_info i = info_of("192.0.2.10", 3260, ISD_TRANSPORT_TCP);
	char out[1024];

	/* on 192.0.2.10 over TCP: A is not here; B with the TCP portals only, the wildcard
	 * one under the address the connection came to */
	discovery_on(f, &i);
	send_targets(f, "All", out, sizeof(out));
	assert_string_equal(out, "TargetName=" NAME_B "|TargetAddress=192.0.2.10:3260,1|"
				 "TargetAddress=198.51.100.1:3260,1|TargetAddress=192.0.2.10:3261,1|"
				 "TargetAddress=localhost:3262,1|");
	send_targets(f, NAME_A, out, sizeof(out));
	assert_string_equal(out, "");

	/* over iSER: no TCP portal */
	i.transport = ISD_TRANSPORT_ISER;
	discovery_on(f, &i);
	send_targets(f, "All", out, sizeof(out));
	assert_string_equal(out, "TargetName=" NAME_B "|TargetAddress=192.0.2.10:3260,1|");

	/* on A's portal: A with that portal only */
	i = info_of("198.51.100.1", 3260, ISD_TRANSPORT_TCP);
	discovery_on(f, &i);
	send_targets(f, NAME_A, out, sizeof(out));
	assert_string_equal(out, "TargetName=" NAME_A "|TargetAddress=198.51.100.1:3260,1|");
}

static void
test_remove_portal(void **state)
{
	struct fx *f = *state;
	const struct isd_tnode *busy = NULL;
	struct isd_conn_info i = info_of("192.0.2.10", 3260, ISD_TRANSPORT_TCP);
	char out[1024];

	/* A would be left with no portal */
	assert_int_equal(isd_iscsi_tgt_remove_portal(f->t, &f->p[P_OTHER], &busy), -EBUSY);
	assert_ptr_equal(busy, &f->a);
	assert_int_equal(f->a.portal_count, 1);
	/* bound to two, it loses the one removed */
	f->a_portals[1] = &f->p[P_HERE];
	f->a.portal_count = 2;
	assert_int_equal(isd_iscsi_tgt_remove_portal(f->t, &f->p[P_OTHER], NULL), 0);
	assert_int_equal(f->a.portal_count, 1);
	assert_ptr_equal(f->a.portals[0], &f->p[P_HERE]);
	assert_int_equal(isd_iscsi_tgt_remove_portal(f->t, &f->p[P_OTHER], NULL), -ENOENT);
	/* SendTargets no longer names it */
	discovery_on(f, &i);
	send_targets(f, "All", out, sizeof(out));
	assert_string_equal(out, "TargetName=" NAME_A "|TargetAddress=192.0.2.10:3260,1|"
				 "TargetName=" NAME_B "|TargetAddress=192.0.2.10:3260,1|"
				 "TargetAddress=192.0.2.10:3261,1|TargetAddress=localhost:3262,1|");
	/* the portal a connection came in on is gone: only unbound nodes answer there */
	assert_int_equal(isd_iscsi_tgt_remove_portal(f->t, &f->p[P_WILD], NULL), 0);
	i = info_of("192.0.2.10", 3261, ISD_TRANSPORT_TCP);
	discovery_on(f, &i);
	send_targets(f, "All", out, sizeof(out));
	assert_string_equal(out, "TargetName=" NAME_B "|TargetAddress=192.0.2.10:3260,1|"
				 "TargetAddress=localhost:3262,1|");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_conn_portal, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_login_on_unbound_portal, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_sendtargets_filters, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_remove_portal, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
