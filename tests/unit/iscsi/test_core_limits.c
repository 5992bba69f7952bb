/*
 * The iSCSI core's resource limits, through the fake datamover: connection
 * limits at creation, session limits in login (0x0302), and the held-PDU
 * limits of the CmdSN window; every refusal counted in the stats.
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

#define TNAME_A "iqn.2024-01.org.example:a"
#define TNAME_B "iqn.2024-01.org.example:b"
#define INAME "iqn.1993-08.org.debian:01:limits"
#define NFD 8

struct fx {
	struct isd_reactor *r;
	struct isd_iscsi_tgt *t;
	struct isd_tnode a, b;
	struct fake_dm fd[NFD];
};

static struct fx *
fx_new(const struct isd_iscsi_cfg *cfg)
{
	struct fx *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	assert_int_equal(isd_reactor_create(&f->r), 0);
	assert_int_equal(isd_iscsi_tgt_create(f->r, cfg, &f->t), 0);
	snprintf(f->a.name, sizeof(f->a.name), "%s", TNAME_A);
	snprintf(f->b.name, sizeof(f->b.name), "%s", TNAME_B);
	isd_key_policy_init(&f->a.policy);
	isd_key_policy_init(&f->b.policy);
	assert_int_equal(isd_iscsi_tgt_add_node(f->t, &f->a), 0);
	assert_int_equal(isd_iscsi_tgt_add_node(f->t, &f->b), 0);
	for (int i = 0; i < NFD; i++)
		fake_dm_init(&f->fd[i]);
	return f;
}

static struct isd_iscsi_stats
stats(struct fx *f)
{
	struct isd_iscsi_stats st;

	isd_iscsi_tgt_get_stats(f->t, &st);
	return st;
}

/* Drops every connection and checks that the counters are back at zero. */
static void
fx_free(struct fx *f)
{
	struct isd_iscsi_stats st;

	for (int i = 0; i < NFD; i++) {
		if (f->fd[i].conn != NULL && !f->fd[i].terminate_notified)
			fake_dm_terminate_notify(&f->fd[i], true);
		fake_dm_fini(&f->fd[i]);
	}
	st = stats(f);
	assert_int_equal(st.connections, 0);
	assert_int_equal(st.sessions, 0);
	assert_int_equal(st.login_connections, 0);
	isd_iscsi_tgt_destroy(f->t);
	isd_reactor_destroy(f->r);
	free(f);
}

static void
base_cfg(struct isd_iscsi_cfg *cfg)
{
	isd_iscsi_cfg_init(cfg);
	cfg->nop_interval_ms = 0;
}

static void
test_defaults(void **state)
{
	struct isd_iscsi_cfg cfg;

	(void)state;
	isd_iscsi_cfg_init(&cfg);
	assert_int_equal(cfg.max_connections, 1024);
	assert_int_equal(cfg.max_connections_per_address, 64);
	assert_int_equal(cfg.max_login_connections, 128);
	assert_int_equal(cfg.max_sessions, 512);
	assert_int_equal(cfg.max_sessions_per_target, 256);
	assert_int_equal(cfg.max_discovery_sessions, 32);
	assert_int_equal(cfg.max_held_bytes, 1u << 20);
	assert_int_equal(cfg.max_held_pdus, 64);
	assert_int_equal(cfg.max_session_buffer_bytes, 64u << 20);
}

static void
test_connection_limits(void **state)
{
	struct isd_iscsi_cfg cfg;
	struct isd_iscsi_stats st;
	struct fx *f;
	uint8_t isid[6] = { 0x80, 0, 0, 0, 0, 1 };

	(void)state;
	base_cfg(&cfg);
	cfg.max_connections = 4;
	cfg.max_connections_per_address = 2;
	cfg.max_login_connections = 2;
	f = fx_new(&cfg);

	/* two from one address, both in login: the third from it is refused by address */
	assert_int_equal(fake_dm_connect_from(&f->fd[0], f->t, f->r, 1, "192.0.2.1"), 0);
	assert_int_equal(fake_dm_connect_from(&f->fd[1], f->t, f->r, 1, "192.0.2.1"), 0);
	assert_int_equal(stats(f).login_connections, 2);
	assert_int_equal(fake_dm_connect_from(&f->fd[2], f->t, f->r, 1, "192.0.2.1"), -EAGAIN);
	assert_int_equal(stats(f).refused.per_address, 1);
	/* another address: the login slots are full */
	assert_int_equal(fake_dm_connect_from(&f->fd[2], f->t, f->r, 1, "192.0.2.2"), -EAGAIN);
	assert_int_equal(stats(f).refused.login_connections, 1);
	assert_null(f->fd[2].conn);

	/* a finished login frees its login slot, not its connection slot */
	assert_int_equal(fake_dm_login(&f->fd[0], INAME, TNAME_A, isid, 1, NULL), 0);
	st = stats(f);
	assert_int_equal(st.login_connections, 1);
	assert_int_equal(st.connections, 2);
	assert_int_equal(fake_dm_connect_from(&f->fd[2], f->t, f->r, 1, "192.0.2.2"), 0);
	isid[5] = 2;
	assert_int_equal(fake_dm_login(&f->fd[2], INAME, TNAME_A, isid, 1, NULL), 0);
	assert_int_equal(fake_dm_connect_from(&f->fd[3], f->t, f->r, 1, "192.0.2.3"), 0);
	/* four alive: the fifth is refused whatever its address */
	assert_int_equal(fake_dm_connect_from(&f->fd[4], f->t, f->r, 1, "192.0.2.4"), -EAGAIN);
	st = stats(f);
	assert_int_equal(st.refused.connections, 1);
	assert_int_equal(st.connections, 4);
	assert_int_equal(st.login_connections, 2);

	/* a closed login connection gives its slots back at once (counted until freed) */
	fake_dm_terminate_notify(&f->fd[3], true);
	assert_int_equal(stats(f).login_connections, 1);
	assert_int_equal(fake_dm_connect_from(&f->fd[4], f->t, f->r, 1, "192.0.2.4"), 0);
	assert_int_equal(stats(f).refused.connections, 1);
	fx_free(f);
}

static void
test_zero_is_unlimited(void **state)
{
	struct isd_iscsi_cfg cfg;
	struct fx *f;

	(void)state;
	base_cfg(&cfg);
	cfg.max_connections = 0;
	cfg.max_connections_per_address = 0;
	cfg.max_login_connections = 0;
	f = fx_new(&cfg);
	for (int i = 0; i < NFD; i++)
		assert_int_equal(fake_dm_connect(&f->fd[i], f->t, f->r, 1), 0);
	assert_int_equal(stats(f).login_connections, NFD);
	fx_free(f);
}

static uint16_t
login_as(struct fx *f, int i, const char *target, uint8_t isid_lo)
{
	uint8_t isid[6] = { 0x80, 0, 0, 0, 0, isid_lo };
	int rc;

	assert_int_equal(fake_dm_connect(&f->fd[i], f->t, f->r, 1), 0);
	rc = fake_dm_login(&f->fd[i], INAME, target, isid, 1, NULL);
	assert_true(rc >= 0);
	return (uint16_t)rc;
}

static void
test_session_limits(void **state)
{
	struct isd_iscsi_cfg cfg;
	struct isd_iscsi_stats st;
	struct fx *f;

	(void)state;
	base_cfg(&cfg);
	cfg.max_sessions = 3;
	cfg.max_sessions_per_target = 1;
	cfg.max_discovery_sessions = 1;
	f = fx_new(&cfg);

	assert_int_equal(login_as(f, 0, TNAME_A, 1), 0);
	/* a second session to the same target */
	assert_int_equal(login_as(f, 1, TNAME_A, 2), ISD_LOGIN_STATUS_NO_RESOURCES);
	assert_true(f->fd[1].terminate_called);
	assert_int_equal(stats(f).refused.sessions_per_target, 1);
	/* reinstating the session (same ISID) replaces it: not refused */
	assert_int_equal(login_as(f, 2, TNAME_A, 1), 0);
	assert_true(f->fd[0].terminate_called);
	fake_dm_terminate_notify(&f->fd[0], false);

	assert_int_equal(login_as(f, 3, NULL, 1), 0);                  /* discovery */
	assert_int_equal(login_as(f, 4, NULL, 2), ISD_LOGIN_STATUS_NO_RESOURCES);
	assert_int_equal(stats(f).refused.discovery_sessions, 1);
	assert_int_equal(login_as(f, 5, TNAME_B, 1), 0);
	/* three sessions: the global limit refuses before the others */
	assert_int_equal(login_as(f, 6, NULL, 3), ISD_LOGIN_STATUS_NO_RESOURCES);
	st = stats(f);
	assert_int_equal(st.refused.sessions, 1);
	assert_int_equal(st.refused.sessions_per_target, 1);
	assert_int_equal(st.refused.discovery_sessions, 1);
	assert_int_equal(st.sessions, 3);
	fx_free(f);
}

/* The limit is checked again when the session is created: logins that passed the
 * first check together cannot all become sessions. */
static void
test_session_limit_rechecked_at_finish(void **state)
{
	struct isd_iscsi_cfg cfg;
	struct fx *f;
	uint8_t bhs[ISD_BHS_LEN], text[256];
	uint32_t len;
	struct isd_pdu *rsp;
	const uint8_t isid1[6] = { 0x80, 0, 0, 0, 0, 1 }, isid2[6] = { 0x80, 0, 0, 0, 0, 2 };

	(void)state;
	base_cfg(&cfg);
	cfg.max_sessions = 1;
	f = fx_new(&cfg);
	len = fake_text(text, sizeof(text), "InitiatorName=" INAME, "TargetName=" TNAME_A,
			"AuthMethod=None", (const char *)NULL);
	/* both logins pass the security stage while no session exists */
	for (int i = 0; i < 2; i++) {
		assert_int_equal(fake_dm_connect(&f->fd[i], f->t, f->r, 1), 0);
		fake_login_bhs(bhs, ISD_LOGIN_T | (ISD_STAGE_SECURITY << 2) | ISD_STAGE_OPERATIONAL,
			       i ? isid2 : isid1, 0, 0x10, 1);
		fake_dm_inject(&f->fd[i], bhs, text, len);
		rsp = fake_dm_pop(&f->fd[i]);
		assert_non_null(rsp);
		assert_int_equal((rsp->bhs[36] << 8) | rsp->bhs[37], 0);
		isd_pdu_free(rsp);
	}
	for (int i = 0; i < 2; i++) {
		fake_login_bhs(bhs, ISD_LOGIN_T | (ISD_STAGE_OPERATIONAL << 2) | ISD_STAGE_FFP,
			       i ? isid2 : isid1, 0, 0x10, 1);
		fake_dm_inject(&f->fd[i], bhs, NULL, 0);
		rsp = fake_dm_pop(&f->fd[i]);
		assert_non_null(rsp);
		assert_int_equal((rsp->bhs[36] << 8) | rsp->bhs[37],
				 i ? ISD_LOGIN_STATUS_NO_RESOURCES : 0);
		isd_pdu_free(rsp);
	}
	assert_int_equal(stats(f).sessions, 1);
	assert_int_equal(stats(f).refused.sessions, 1);
	fx_free(f);
}

/* A session to target A (NULL: discovery) under the given held-PDU limits. */
static struct fx *
held_fx(uint32_t max_pdus, uint32_t max_bytes, const char *target)
{
	struct isd_iscsi_cfg cfg;
	struct fx *f;

	base_cfg(&cfg);
	if (max_pdus)
		cfg.max_held_pdus = max_pdus;
	if (max_bytes)
		cfg.max_held_bytes = max_bytes;
	f = fx_new(&cfg);
	assert_int_equal(login_as(f, 0, target, 1), 0);
	return f;
}

/* The last PDU was one too many: the connection is closed, the refusal counted, and
 * every parked PDU given back to the datamover. */
static void
held_closed(struct fx *f)
{
	assert_true(f->fd[0].terminate_called);
	assert_int_equal(stats(f).refused.held_pdus, 1);
	fake_dm_terminate_notify(&f->fd[0], false);
	assert_int_equal(f->fd[0].released, f->fd[0].injected);
	fx_free(f);
}

/* A BHS with the fields every request here sets: opcode, flags, ITT, the word at 20
 * (EDTL or TTT) and the one at 24 (CmdSN, or for Data-Out ExpStatSN, unused). */
static void
req_bhs(uint8_t *bhs, uint8_t op, uint8_t flags, uint32_t itt, uint32_t w20, uint32_t w24)
{
	memset(bhs, 0, ISD_BHS_LEN);
	bhs[0] = op;
	bhs[1] = flags;
	put_be32(bhs + 16, itt);
	put_be32(bhs + 20, w20);
	put_be32(bhs + 24, w24);
}

/* TEST UNIT READY, or WRITE(10) with `len` bytes of immediate data (F=1 unless more). */
static void
inject_cmd(struct fake_dm *fd, uint32_t itt, uint32_t cmdsn, const uint8_t *data, uint32_t len,
	   uint32_t edtl)
{
	uint8_t bhs[ISD_BHS_LEN];

	req_bhs(bhs, ISD_OP_SCSI_CMD, (edtl > len ? 0 : ISD_BHS_F) | (edtl ? ISD_CMD_W : 0) | 1,
		itt, edtl, cmdsn);
	if (edtl > 0) {
		bhs[32] = 0x2a;
		put_be16(bhs + 32 + 7, (uint16_t)(edtl / 512));
	}
	fake_dm_inject(fd, bhs, data, len);
}

static void
test_held_pdus_count(void **state)
{
	struct fx *f = held_fx(3, 0, TNAME_A);

	(void)state;
	/* ExpCmdSN is 1; 2, 3, 4 wait for it */
	for (uint32_t sn = 2; sn <= 4; sn++)
		inject_cmd(&f->fd[0], sn, sn, NULL, 0, 0);
	assert_false(f->fd[0].terminate_called);
	assert_int_equal(stats(f).refused.held_pdus, 0);
	inject_cmd(&f->fd[0], 5, 5, NULL, 0, 0);
	held_closed(f);
}

static void
test_held_bytes(void **state)
{
	static uint8_t data[4096];
	/* three 4 KiB commands and their overhead */
	struct fx *f = held_fx(0, 3 * 4096 + 1024, TNAME_A);

	(void)state;
	for (uint32_t sn = 2; sn <= 4; sn++)
		inject_cmd(&f->fd[0], sn, sn, data, sizeof(data), sizeof(data));
	assert_false(f->fd[0].terminate_called);
	inject_cmd(&f->fd[0], 5, 5, data, sizeof(data), sizeof(data));
	held_closed(f);
}

/* Unsolicited Data-Outs parked with their command count as parked PDUs too. */
static void
test_held_data_outs(void **state)
{
	static uint8_t data[512];
	struct fx *f = held_fx(3, 0, TNAME_A);
	uint8_t bhs[ISD_BHS_LEN];

	(void)state;
	/* WRITE(10) of 4 blocks, CmdSN 2 (ExpCmdSN is 1), F=0: Data-Out follows */
	inject_cmd(&f->fd[0], 0x70, 2, data, sizeof(data), 2048);
	for (uint32_t i = 0; i < 3; i++) {
		req_bhs(bhs, ISD_OP_DATA_OUT, 0, 0x70, ISD_RSVD_TAG, 0);
		put_be32(bhs + 36, i);
		put_be32(bhs + 40, 512 * (i + 1));
		assert_false(f->fd[0].terminate_called);
		fake_dm_inject(&f->fd[0], bhs, data, sizeof(data));
	}
	/* the command and two Data-Outs were parked; the third was one too many */
	held_closed(f);
}

/* What was parked and then delivered leaves the account: the limit is on what waits. */
static void
test_held_account_drains(void **state)
{
	struct fx *f = held_fx(2, 450, TNAME_A);        /* two NOP-Outs, 200 bytes each */
	uint8_t bhs[ISD_BHS_LEN];

	(void)state;
	for (uint32_t round = 0; round < 4; round++) {
		uint32_t base = 1 + round * 3;
		const uint32_t order[3] = { base + 1, base + 2, base };  /* the last fills the gap */

		for (int i = 0; i < 3; i++) {
			req_bhs(bhs, ISD_OP_NOP_OUT, ISD_BHS_F, order[i], ISD_RSVD_TAG, order[i]);
			fake_dm_inject(&f->fd[0], bhs, NULL, 0);
		}
		assert_int_equal(f->fd[0].n_sent, 3 * (int)(round + 1));
	}
	assert_false(f->fd[0].terminate_called);
	assert_int_equal(stats(f).refused.held_pdus, 0);
	fx_free(f);
}

/* A discovery session parks Text requests in a window of 4 with at most 64 KiB. */
static void
test_held_discovery_share(void **state)
{
	static uint8_t text[40000];
	struct fx *f = held_fx(0, 0, NULL);
	uint8_t bhs[ISD_BHS_LEN];

	(void)state;
	memcpy(text, "X-a=", 4);
	for (uint32_t sn = 2; sn <= 3; sn++) {
		req_bhs(bhs, ISD_OP_TEXT_REQ, ISD_BHS_F, sn, ISD_RSVD_TAG, sn);
		fake_dm_inject(&f->fd[0], bhs, text, sizeof(text));
	}
	/* the first fits, the second would pass 64 KiB */
	held_closed(f);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_connection_limits),
		cmocka_unit_test(test_zero_is_unlimited),
		cmocka_unit_test(test_session_limits),
		cmocka_unit_test(test_session_limit_rechecked_at_finish),
		cmocka_unit_test(test_held_pdus_count),
		cmocka_unit_test(test_held_bytes),
		cmocka_unit_test(test_held_data_outs),
		cmocka_unit_test(test_held_account_drains),
		cmocka_unit_test(test_held_discovery_share),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
