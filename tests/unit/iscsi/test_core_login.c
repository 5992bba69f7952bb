/* The iSCSI core's login phase, driven through the fake datamover (RFC 7143 §6, §11.12). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "fake_dm.h"
#include "iscsi/chap.h"
#include "iscsi/iscsi.h"
#include "iscsi/keys.h"
#include "iscsi/pdu.h"
#include "reactor/reactor.h"

#define TNAME "iqn.2024-01.org.example:disk1"
#define INAME "iqn.1993-08.org.debian:01:abcdef"

struct fx {
	struct isd_reactor *r;
	struct isd_iscsi_tgt *t;
	struct isd_tnode node;
	struct isd_portal_cfg portal;
	struct fake_dm fd;
	char *acl[1];
};

static const uint8_t g_isid[6] = { 0x80, 0x12, 0x34, 0x56, 0x00, 0x01 };

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
	snprintf(f->node.name, sizeof(f->node.name), "%s", TNAME);
	snprintf(f->node.alias, sizeof(f->node.alias), "disk one");
	f->node.tpgt = 1;
	isd_key_policy_init(&f->node.policy);
	assert_int_equal(isd_iscsi_tgt_add_node(f->t, &f->node), 0);
	snprintf(f->portal.host, sizeof(f->portal.host), "::1");
	f->portal.port = 3260;
	f->portal.tpgt = 1;
	assert_int_equal(isd_iscsi_tgt_add_portal(f->t, &f->portal), 0);
	fake_dm_init(&f->fd);
	*state = f;
	return 0;
}

static void
drop_conn(struct fx *f, struct fake_dm *fd)
{
	if (fd->conn != NULL && !fd->terminate_notified)
		fake_dm_terminate_notify(fd, true);
	fake_dm_fini(fd);
}

static int
teardown(void **state)
{
	struct fx *f = *state;
	struct isd_iscsi_stats st;

	drop_conn(f, &f->fd);
	isd_iscsi_tgt_get_stats(f->t, &st);
	assert_int_equal(st.connections, 0);
	assert_int_equal(st.sessions, 0);
	assert_int_equal(st.tasks, 0);
	isd_iscsi_tgt_destroy(f->t);
	isd_reactor_destroy(f->r);
	free(f);
	return 0;
}

static uint16_t
status_of(const struct isd_pdu *p)
{
	return (uint16_t)((p->bhs[36] << 8) | p->bhs[37]);
}

/* Sends one login request and returns the response (caller frees). */
static struct isd_pdu *
login_step(struct fake_dm *fd, uint8_t flags, uint16_t tsih, const uint8_t *text, uint32_t len)
{
	uint8_t bhs[ISD_BHS_LEN];

	fake_login_bhs(bhs, flags, g_isid, tsih, 0x77, 5);
	fake_dm_inject(fd, bhs, text, len);
	return fake_dm_pop(fd);
}

#define OP_TO_FFP (ISD_LOGIN_T | (ISD_STAGE_OPERATIONAL << 2) | ISD_STAGE_FFP)
#define SEC_TO_OP (ISD_LOGIN_T | (ISD_STAGE_SECURITY << 2) | ISD_STAGE_OPERATIONAL)
#define SEC_STAY (ISD_STAGE_SECURITY << 2)

static void
test_login_normal_one_pdu(void **state)
{
	struct fx *f = *state;
	uint8_t text[1024];
	uint32_t len;
	struct isd_pdu *rsp;
	char v[64];
	struct isd_iscsi_stats st;

	assert_int_equal(fake_dm_connect(&f->fd, f->t, f->r, 1), 0);
	len = fake_text(text, sizeof(text), "InitiatorName=" INAME, "TargetName=" TNAME,
			"SessionType=Normal", "HeaderDigest=CRC32C,None", "DataDigest=None",
			"MaxRecvDataSegmentLength=65536", "ImmediateData=Yes", "InitialR2T=No",
			"ErrorRecoveryLevel=0", "X-com.example.Foo=1", (const char *)NULL);
	rsp = login_step(&f->fd, OP_TO_FFP, 0, text, len);
	assert_non_null(rsp);
	assert_int_equal(isd_bhs_opcode(rsp->bhs), ISD_OP_LOGIN_RSP);
	assert_int_equal(status_of(rsp), 0);
	/* T echoed, CSG 1, NSG 3 */
	assert_int_equal(rsp->bhs[1], OP_TO_FFP);
	assert_memory_equal(rsp->bhs + 8, g_isid, 6);
	assert_int_not_equal(get_be16(rsp->bhs + 14), 0);     /* TSIH assigned */
	assert_int_equal(isd_bhs_itt(rsp->bhs), 0x77);
	assert_int_equal(get_be32(rsp->bhs + 28), 5);           /* ExpCmdSN */
	assert_int_equal(get_be32(rsp->bhs + 32), 5 + 128 - 1); /* MaxCmdSN */
	assert_true(fake_text_get(rsp, "TargetPortalGroupTag", v, sizeof(v)));
	assert_string_equal(v, "1");
	assert_true(fake_text_get(rsp, "TargetAlias", v, sizeof(v)));
	assert_string_equal(v, "disk one");
	assert_true(fake_text_get(rsp, "HeaderDigest", v, sizeof(v)));
	assert_true(fake_text_get(rsp, "MaxRecvDataSegmentLength", v, sizeof(v)));
	assert_true(fake_text_get(rsp, "X-com.example.Foo", v, sizeof(v)));
	assert_string_equal(v, "NotUnderstood");
	isd_pdu_free(rsp);
	assert_true(f->fd.noticed);
	assert_int_equal(f->fd.params.max_xmit_dsl, 65536);
	assert_false(f->fd.terminate_called);
	isd_iscsi_tgt_get_stats(f->t, &st);
	assert_int_equal(st.logins_ok, 1);
	assert_int_equal(st.sessions, 1);
	assert_int_equal(st.connections, 1);
	assert_int_equal(f->fd.released, f->fd.injected);
}

static void
test_login_discovery_and_sendtargets(void **state)
{
	struct fx *f = *state;
	uint8_t bhs[ISD_BHS_LEN], text[64];
	uint32_t len;
	struct isd_pdu *rsp;
	char v[300];
	uint16_t tsih;

	assert_int_equal(fake_dm_connect(&f->fd, f->t, f->r, 1), 0);
	assert_int_equal(fake_dm_login(&f->fd, INAME, NULL, g_isid, 1, &tsih), 0);
	assert_int_not_equal(tsih, 0);
	/* Text SendTargets=All */
	memset(bhs, 0, sizeof(bhs));
	bhs[0] = ISD_OP_TEXT_REQ | ISD_BHS_I;
	bhs[1] = ISD_BHS_F;
	put_be32(bhs + 16, 0x10);
	put_be32(bhs + 20, ISD_RSVD_TAG);
	put_be32(bhs + 24, 1);
	len = fake_text(text, sizeof(text), "SendTargets=All", (const char *)NULL);
	fake_dm_inject(&f->fd, bhs, text, len);
	rsp = fake_dm_pop(&f->fd);
	assert_non_null(rsp);
	assert_int_equal(isd_bhs_opcode(rsp->bhs), ISD_OP_TEXT_RSP);
	assert_int_equal(rsp->bhs[1], ISD_BHS_F);
	assert_int_equal(isd_bhs_ttt(rsp->bhs), ISD_RSVD_TAG);
	assert_true(fake_text_get(rsp, "TargetName", v, sizeof(v)));
	assert_string_equal(v, TNAME);
	assert_true(fake_text_get(rsp, "TargetAddress", v, sizeof(v)));
	assert_string_equal(v, "[::1]:3260,1");
	isd_pdu_free(rsp);

	/* a SCSI command in a discovery session is a protocol error */
	memset(bhs, 0, sizeof(bhs));
	bhs[0] = ISD_OP_SCSI_CMD;
	bhs[1] = ISD_BHS_F;
	put_be32(bhs + 16, 0x11);
	put_be32(bhs + 24, 1);
	fake_dm_inject(&f->fd, bhs, NULL, 0);
	rsp = fake_dm_pop(&f->fd);
	assert_non_null(rsp);
	assert_int_equal(isd_bhs_opcode(rsp->bhs), ISD_OP_REJECT);
	assert_int_equal(rsp->bhs[2], ISD_REJECT_PROTOCOL_ERROR);
	assert_int_equal(isd_bhs_itt(rsp->bhs), ISD_RSVD_TAG);
	assert_int_equal(isd_bhs_dsl(rsp->bhs), ISD_BHS_LEN);
	assert_memory_equal(rsp->data, bhs, 16);
	isd_pdu_free(rsp);
}

static void
expect_fail(struct fx *f, uint8_t flags, const uint8_t *text, uint32_t len, uint16_t status)
{
	struct isd_pdu *rsp;
	struct isd_iscsi_stats st;

	assert_int_equal(fake_dm_connect(&f->fd, f->t, f->r, 1), 0);
	rsp = login_step(&f->fd, flags, 0, text, len);
	assert_non_null(rsp);
	assert_int_equal(status_of(rsp), status);
	assert_int_equal(get_be16(rsp->bhs + 14), 0);
	isd_pdu_free(rsp);
	assert_true(f->fd.terminate_called);
	isd_iscsi_tgt_get_stats(f->t, &st);
	assert_int_equal(st.logins_failed, 1);
	assert_int_equal(st.logins_ok, 0);
}

static void
test_login_missing_initiator_name(void **state)
{
	uint8_t text[256];
	uint32_t len = fake_text(text, sizeof(text), "TargetName=" TNAME, (const char *)NULL);

	expect_fail(*state, OP_TO_FFP, text, len, ISD_LOGIN_STATUS_MISSING_FIELDS);
}

static void
test_login_missing_target_name(void **state)
{
	uint8_t text[256];
	uint32_t len = fake_text(text, sizeof(text), "InitiatorName=" INAME, (const char *)NULL);

	expect_fail(*state, OP_TO_FFP, text, len, ISD_LOGIN_STATUS_MISSING_FIELDS);
}

static void
test_login_unknown_target(void **state)
{
	uint8_t text[256];
	uint32_t len = fake_text(text, sizeof(text), "InitiatorName=" INAME,
				 "TargetName=iqn.2024-01.org.example:nope", (const char *)NULL);

	expect_fail(*state, OP_TO_FFP, text, len, ISD_LOGIN_STATUS_TGT_NOT_FOUND);
}

static void
test_login_acl_forbidden(void **state)
{
	struct fx *f = *state;
	uint8_t text[256];
	uint32_t len = fake_text(text, sizeof(text), "InitiatorName=" INAME,
				 "TargetName=" TNAME, (const char *)NULL);

	f->acl[0] = "iqn.1993-08.org.debian:01:someone-else";
	f->node.acl = f->acl;
	f->node.acl_count = 1;
	expect_fail(f, OP_TO_FFP, text, len, ISD_LOGIN_STATUS_TGT_FORBIDDEN);
}

static void
test_login_bad_version_and_flags(void **state)
{
	struct fx *f = *state;
	uint8_t bhs[ISD_BHS_LEN], text[256];
	uint32_t len = fake_text(text, sizeof(text), "InitiatorName=" INAME,
				 "TargetName=" TNAME, (const char *)NULL);
	struct isd_pdu *rsp;

	assert_int_equal(fake_dm_connect(&f->fd, f->t, f->r, 1), 0);
	fake_login_bhs(bhs, OP_TO_FFP, g_isid, 0, 1, 1);
	bhs[2] = 2;
	bhs[3] = 1;             /* Version-min 1: unsupported */
	fake_dm_inject(&f->fd, bhs, text, len);
	rsp = fake_dm_pop(&f->fd);
	assert_non_null(rsp);
	assert_int_equal(status_of(rsp), ISD_LOGIN_STATUS_NO_VERSION);
	isd_pdu_free(rsp);
	drop_conn(f, &f->fd);

	/* NSG 2 is reserved */
	fake_dm_init(&f->fd);
	assert_int_equal(fake_dm_connect(&f->fd, f->t, f->r, 1), 0);
	rsp = login_step(&f->fd, ISD_LOGIN_T | (1 << 2) | 2, 0, text, len);
	assert_non_null(rsp);
	assert_int_equal(status_of(rsp), ISD_LOGIN_STATUS_INIT_ERR);
	isd_pdu_free(rsp);
}

static void
test_login_unknown_tsih(void **state)
{
	struct fx *f = *state;
	uint8_t text[256];
	uint32_t len = fake_text(text, sizeof(text), "InitiatorName=" INAME,
				 "TargetName=" TNAME, (const char *)NULL);
	struct isd_pdu *rsp;

	assert_int_equal(fake_dm_connect(&f->fd, f->t, f->r, 1), 0);
	rsp = login_step(&f->fd, OP_TO_FFP, 0x4242, text, len);
	assert_non_null(rsp);
	assert_int_equal(status_of(rsp), ISD_LOGIN_STATUS_NO_SESSION);
	isd_pdu_free(rsp);
}

static void
test_login_second_connection_refused(void **state)
{
	struct fx *f = *state;
	struct fake_dm fd2;
	uint8_t text[256];
	uint32_t len = fake_text(text, sizeof(text), "InitiatorName=" INAME,
				 "TargetName=" TNAME, (const char *)NULL);
	struct isd_pdu *rsp;
	uint16_t tsih;

	assert_int_equal(fake_dm_connect(&f->fd, f->t, f->r, 1), 0);
	assert_int_equal(fake_dm_login(&f->fd, INAME, TNAME, g_isid, 1, &tsih), 0);
	fake_dm_init(&fd2);
	assert_int_equal(fake_dm_connect(&fd2, f->t, f->r, 1), 0);
	rsp = login_step(&fd2, OP_TO_FFP, tsih, text, len);
	assert_non_null(rsp);
	assert_int_equal(status_of(rsp), ISD_LOGIN_STATUS_CONN_ADD_FAIL);
	isd_pdu_free(rsp);
	assert_true(fd2.terminate_called);
	assert_false(f->fd.terminate_called);
	drop_conn(f, &fd2);
}

static void
test_login_reinstatement(void **state)
{
	struct fx *f = *state;
	struct fake_dm fd2;
	uint16_t tsih1, tsih2;
	struct isd_iscsi_stats st;

	assert_int_equal(fake_dm_connect(&f->fd, f->t, f->r, 1), 0);
	assert_int_equal(fake_dm_login(&f->fd, INAME, TNAME, g_isid, 1, &tsih1), 0);
	fake_dm_init(&fd2);
	assert_int_equal(fake_dm_connect(&fd2, f->t, f->r, 1), 0);
	/* same InitiatorName + ISID + target, TSIH 0: the old session is closed */
	assert_int_equal(fake_dm_login(&fd2, INAME, TNAME, g_isid, 1, &tsih2), 0);
	assert_int_not_equal(tsih2, 0);
	assert_int_not_equal(tsih1, tsih2);
	assert_true(f->fd.terminate_called);
	assert_false(fd2.terminate_called);
	fake_dm_terminate_notify(&f->fd, false);
	assert_true(f->fd.freed);
	isd_iscsi_tgt_get_stats(f->t, &st);
	assert_int_equal(st.sessions, 1);
	assert_int_equal(st.connections, 1);
	drop_conn(f, &fd2);
}

static void
test_login_text_continuation(void **state)
{
	struct fx *f = *state;
	const char *a = "InitiatorName=" INAME;
	const char *b = "TargetName=" TNAME;
	uint8_t text[512];
	uint32_t len = fake_text(text, sizeof(text), a, b, (const char *)NULL);
	uint32_t split = (uint32_t)strlen(a) + 6; /* in the middle of the second key */
	struct isd_pdu *rsp;

	assert_int_equal(fake_dm_connect(&f->fd, f->t, f->r, 1), 0);
	rsp = login_step(&f->fd, ISD_LOGIN_C | (ISD_STAGE_OPERATIONAL << 2), 0, text, split);
	assert_non_null(rsp);
	assert_int_equal(status_of(rsp), 0);
	assert_int_equal(isd_bhs_dsl(rsp->bhs), 0);
	assert_int_equal(rsp->bhs[1] & ISD_LOGIN_T, 0);
	isd_pdu_free(rsp);
	rsp = login_step(&f->fd, OP_TO_FFP, 0, text + split, len - split);
	assert_non_null(rsp);
	assert_int_equal(status_of(rsp), 0);
	assert_int_equal(rsp->bhs[1], OP_TO_FFP);
	isd_pdu_free(rsp);
}

static void
set_chap(struct fx *f, bool mutual)
{
	f->node.auth.require_chap = true;
	snprintf(f->node.auth.chap.user, sizeof(f->node.auth.chap.user), "alice");
	snprintf(f->node.auth.chap.secret, sizeof(f->node.auth.chap.secret), "secret-12345");
	f->node.auth.mutual = mutual;
	snprintf(f->node.auth.mutual_chap.user, sizeof(f->node.auth.mutual_chap.user), "tgt");
	snprintf(f->node.auth.mutual_chap.secret, sizeof(f->node.auth.mutual_chap.secret),
		 "tgt-secret-67890");
}

/* Runs AuthMethod + CHAP_A; returns the challenge and id. */
static void
chap_begin(struct fx *f, uint8_t *id, uint8_t *challenge, int *clen)
{
	uint8_t text[512];
	uint32_t len;
	struct isd_pdu *rsp;
	char v[600];

	len = fake_text(text, sizeof(text), "InitiatorName=" INAME, "TargetName=" TNAME,
			"SessionType=Normal", "AuthMethod=CHAP,None", (const char *)NULL);
	rsp = login_step(&f->fd, SEC_TO_OP, 0, text, len);
	assert_non_null(rsp);
	assert_int_equal(status_of(rsp), 0);
	assert_true(fake_text_get(rsp, "AuthMethod", v, sizeof(v)));
	assert_string_equal(v, "CHAP");
	assert_int_equal(rsp->bhs[1] & ISD_LOGIN_T, 0);   /* no transit before auth */
	isd_pdu_free(rsp);

	len = fake_text(text, sizeof(text), "CHAP_A=5", (const char *)NULL);
	rsp = login_step(&f->fd, SEC_STAY, 0, text, len);
	assert_non_null(rsp);
	assert_int_equal(status_of(rsp), 0);
	assert_true(fake_text_get(rsp, "CHAP_A", v, sizeof(v)));
	assert_string_equal(v, "5");
	assert_true(fake_text_get(rsp, "CHAP_I", v, sizeof(v)));
	*id = (uint8_t)atoi(v);
	assert_true(fake_text_get(rsp, "CHAP_C", v, sizeof(v)));
	*clen = isd_key_parse_binary(v, challenge, 1024);
	assert_true(*clen > 0);
	isd_pdu_free(rsp);
}

static void
chap_answer(uint8_t id, const char *secret, const uint8_t *challenge, int clen, char *out)
{
	uint8_t r[ISD_CHAP_MAX_DIGEST];
	int n = isd_chap_response(ISD_CHAP_MD5, id, secret, challenge, (size_t)clen, r,
				  sizeof(r));

	assert_true(n > 0);
	assert_int_equal(isd_key_format_hex(r, (size_t)n, out, 128), 0);
}

static void
test_login_chap_success(void **state)
{
	struct fx *f = *state;
	uint8_t id, challenge[1024], text[512];
	int clen;
	char r[128], kv_r[160];
	uint32_t len;
	struct isd_pdu *rsp;

	set_chap(f, false);
	assert_int_equal(fake_dm_connect(&f->fd, f->t, f->r, 1), 0);
	chap_begin(f, &id, challenge, &clen);
	chap_answer(id, "secret-12345", challenge, clen, r);
	snprintf(kv_r, sizeof(kv_r), "CHAP_R=%s", r);
	len = fake_text(text, sizeof(text), "CHAP_N=alice", kv_r, (const char *)NULL);
	rsp = login_step(&f->fd, SEC_TO_OP, 0, text, len);
	assert_non_null(rsp);
	assert_int_equal(status_of(rsp), 0);
	assert_int_equal(rsp->bhs[1], SEC_TO_OP);
	isd_pdu_free(rsp);
	len = fake_text(text, sizeof(text), "MaxRecvDataSegmentLength=8192", (const char *)NULL);
	rsp = login_step(&f->fd, OP_TO_FFP, 0, text, len);
	assert_non_null(rsp);
	assert_int_equal(status_of(rsp), 0);
	assert_int_equal(rsp->bhs[1], OP_TO_FFP);
	assert_int_not_equal(get_be16(rsp->bhs + 14), 0);
	isd_pdu_free(rsp);
	assert_false(f->fd.terminate_called);
}

static void
test_login_chap_mutual(void **state)
{
	struct fx *f = *state;
	uint8_t id, challenge[1024], text[512], mine[16] = "0123456789abcdef";
	uint8_t exp_r[ISD_CHAP_MAX_DIGEST], got_r[ISD_CHAP_MAX_DIGEST];
	int clen, n;
	char r[128], kv_r[160], v[300];
	uint32_t len;
	struct isd_pdu *rsp;

	set_chap(f, true);
	assert_int_equal(fake_dm_connect(&f->fd, f->t, f->r, 1), 0);
	chap_begin(f, &id, challenge, &clen);
	chap_answer(id, "secret-12345", challenge, clen, r);
	snprintf(kv_r, sizeof(kv_r), "CHAP_R=%s", r);
	len = fake_text(text, sizeof(text), "CHAP_N=alice", kv_r, "CHAP_I=9",
			"CHAP_C=0x30313233343536373839616263646566", (const char *)NULL);
	rsp = login_step(&f->fd, SEC_TO_OP, 0, text, len);
	assert_non_null(rsp);
	assert_int_equal(status_of(rsp), 0);
	assert_true(fake_text_get(rsp, "CHAP_N", v, sizeof(v)));
	assert_string_equal(v, "tgt");
	assert_true(fake_text_get(rsp, "CHAP_R", v, sizeof(v)));
	n = isd_key_parse_binary(v, got_r, sizeof(got_r));
	assert_int_equal(n, 16);
	assert_int_equal(isd_chap_response(ISD_CHAP_MD5, 9, "tgt-secret-67890", mine, 16, exp_r,
					   sizeof(exp_r)),
			 16);
	assert_memory_equal(got_r, exp_r, 16);
	isd_pdu_free(rsp);
}

static void
test_login_chap_failure(void **state)
{
	struct fx *f = *state;
	uint8_t id, challenge[1024], text[512];
	int clen;
	char r[128], kv_r[160];
	uint32_t len;
	struct isd_pdu *rsp;
	struct isd_iscsi_stats st;

	set_chap(f, false);
	assert_int_equal(fake_dm_connect(&f->fd, f->t, f->r, 1), 0);
	chap_begin(f, &id, challenge, &clen);
	chap_answer(id, "wrong-secret", challenge, clen, r);
	snprintf(kv_r, sizeof(kv_r), "CHAP_R=%s", r);
	len = fake_text(text, sizeof(text), "CHAP_N=alice", kv_r, (const char *)NULL);
	rsp = login_step(&f->fd, SEC_TO_OP, 0, text, len);
	assert_non_null(rsp);
	assert_int_equal(status_of(rsp), ISD_LOGIN_STATUS_AUTH_FAILED);
	isd_pdu_free(rsp);
	assert_true(f->fd.terminate_called);
	isd_iscsi_tgt_get_stats(f->t, &st);
	assert_int_equal(st.logins_failed, 1);
}

/* The node's default is alice; INAME has its own credentials. */
static struct isd_initiator_auth g_ini_auth;

static void
set_ini_chap(struct fx *f, bool node_default)
{
	if (node_default)
		set_chap(f, false);
	memset(&g_ini_auth, 0, sizeof(g_ini_auth));
	snprintf(g_ini_auth.name, sizeof(g_ini_auth.name), "%s", INAME);
	g_ini_auth.auth.require_chap = true;
	snprintf(g_ini_auth.auth.chap.user, sizeof(g_ini_auth.auth.chap.user), "own");
	snprintf(g_ini_auth.auth.chap.secret, sizeof(g_ini_auth.auth.chap.secret),
		 "own-secret-4567");
	f->node.ini_auth = &g_ini_auth;
	f->node.ini_auth_count = 1;
}

/* Answers the challenge as user/secret; returns the login status. */
static int
chap_try(struct fx *f, const char *user, const char *secret)
{
	uint8_t id, challenge[1024], text[512];
	int clen, st;
	char r[128], kv_r[160], kv_n[80];
	uint32_t len;
	struct isd_pdu *rsp;

	assert_int_equal(fake_dm_connect(&f->fd, f->t, f->r, 1), 0);
	chap_begin(f, &id, challenge, &clen);
	chap_answer(id, secret, challenge, clen, r);
	snprintf(kv_r, sizeof(kv_r), "CHAP_R=%s", r);
	snprintf(kv_n, sizeof(kv_n), "CHAP_N=%s", user);
	len = fake_text(text, sizeof(text), kv_n, kv_r, (const char *)NULL);
	rsp = login_step(&f->fd, SEC_TO_OP, 0, text, len);
	assert_non_null(rsp);
	st = status_of(rsp);
	isd_pdu_free(rsp);
	return st;
}

static void
test_login_chap_per_initiator(void **state)
{
	struct fx *f = *state;

	set_ini_chap(f, true);
	assert_int_equal(chap_try(f, "own", "own-secret-4567"), 0);
	assert_false(f->fd.terminate_called);
}

static void
test_login_chap_per_initiator_not_default(void **state)
{
	struct fx *f = *state;

	/* an initiator with credentials of its own cannot use the node's */
	set_ini_chap(f, true);
	assert_int_equal(chap_try(f, "alice", "secret-12345"), ISD_LOGIN_STATUS_AUTH_FAILED);
}

/* AuthMethod=None where CHAP is required: an authentication failure. */
static void
expect_none_refused(struct fx *f)
{
	uint8_t text[256];
	uint32_t len = fake_text(text, sizeof(text), "InitiatorName=" INAME,
				 "TargetName=" TNAME, "AuthMethod=None", (const char *)NULL);

	expect_fail(f, SEC_TO_OP, text, len, ISD_LOGIN_STATUS_AUTH_FAILED);
}

static void
test_login_chap_per_initiator_required(void **state)
{
	struct fx *f = *state;

	/* the node asks for nothing, the initiator's own entry asks for CHAP */
	set_ini_chap(f, false);
	expect_none_refused(f);
}

static void
test_login_chap_required_none_offered(void **state)
{
	struct fx *f = *state;

	set_chap(f, false);
	expect_none_refused(f);
}

static void
test_login_chap_required_skip_security(void **state)
{
	struct fx *f = *state;
	uint8_t text[256];
	uint32_t len = fake_text(text, sizeof(text), "InitiatorName=" INAME,
				 "TargetName=" TNAME, (const char *)NULL);

	set_chap(f, false);
	expect_fail(f, OP_TO_FFP, text, len, ISD_LOGIN_STATUS_AUTH_FAILED);
}

/*
 * Found by fuzz_login: a first PDU in the operational stage with C=1 (its
 * text continued), then the "continuation" in the security stage without
 * AuthMethod, then operational -> full feature phase. The stage of the
 * continued first PDU must hold, and no path may leave the security stage
 * without CHAP where CHAP is required.
 */
static void
test_login_chap_required_continued_stage_switch(void **state)
{
	struct fx *f = *state;
	uint8_t text[256];
	uint32_t len = fake_text(text, sizeof(text), "InitiatorName=" INAME,
				 "TargetName=" TNAME, "SessionType=Normal", (const char *)NULL);
	struct isd_iscsi_stats st;
	struct isd_pdu *rsp;

	set_chap(f, false);
	assert_int_equal(fake_dm_connect(&f->fd, f->t, f->r, 1), 0);
	rsp = login_step(&f->fd, ISD_LOGIN_C | (ISD_STAGE_OPERATIONAL << 2), 0, NULL, 0);
	assert_non_null(rsp);
	assert_int_equal(status_of(rsp), 0);
	isd_pdu_free(rsp);
	rsp = login_step(&f->fd, SEC_STAY, 0, text, len);
	assert_non_null(rsp);
	assert_int_equal(status_of(rsp) >> 8, 2);    /* initiator error: stage changed */
	isd_pdu_free(rsp);
	assert_true(f->fd.terminate_called);
	isd_iscsi_tgt_get_stats(f->t, &st);
	assert_int_equal(st.sessions, 0);
}

/* A security-stage request that never negotiated AuthMethod, then T=1 to
 * the operational stage: refused where CHAP is required. */
static void
test_login_chap_required_op_stage_without_auth(void **state)
{
	struct fx *f = *state;
	uint8_t text[256];
	uint32_t len = fake_text(text, sizeof(text), "InitiatorName=" INAME,
				 "TargetName=" TNAME, (const char *)NULL);
	struct isd_pdu *rsp;

	set_chap(f, false);
	assert_int_equal(fake_dm_connect(&f->fd, f->t, f->r, 1), 0);
	rsp = login_step(&f->fd, SEC_STAY, 0, text, len);
	assert_non_null(rsp);
	assert_int_equal(status_of(rsp), 0);
	isd_pdu_free(rsp);
	/* T=1 to the operational stage with no AuthMethod agreed */
	rsp = login_step(&f->fd, SEC_TO_OP, 0, NULL, 0);
	assert_non_null(rsp);
	assert_int_equal(status_of(rsp), ISD_LOGIN_STATUS_AUTH_FAILED);
	isd_pdu_free(rsp);
	assert_true(f->fd.terminate_called);
}

static void
test_login_stage_backwards(void **state)
{
	struct fx *f = *state;
	uint8_t text[256];
	uint32_t len = fake_text(text, sizeof(text), "InitiatorName=" INAME,
				 "TargetName=" TNAME, "AuthMethod=None", (const char *)NULL);
	struct isd_pdu *rsp;

	assert_int_equal(fake_dm_connect(&f->fd, f->t, f->r, 1), 0);
	rsp = login_step(&f->fd, SEC_TO_OP, 0, text, len);
	assert_non_null(rsp);
	assert_int_equal(rsp->bhs[1], SEC_TO_OP);
	isd_pdu_free(rsp);
	rsp = login_step(&f->fd, SEC_TO_OP, 0, NULL, 0);
	assert_non_null(rsp);
	assert_int_equal(status_of(rsp) >> 8, 2);
	isd_pdu_free(rsp);
	assert_true(f->fd.terminate_called);
}

static void
test_login_timeout(void **state)
{
	struct fx *f = *state;
	struct isd_iscsi_cfg cfg;
	struct isd_iscsi_tgt *t2;
	struct isd_iscsi_stats st;

	isd_iscsi_cfg_init(&cfg);
	cfg.login_timeout_ms = 5;
	assert_int_equal(isd_iscsi_tgt_create(f->r, &cfg, &t2), 0);
	assert_int_equal(fake_dm_connect(&f->fd, t2, f->r, 1), 0);
	for (int i = 0; i < 50 && !f->fd.terminate_called; i++)
		isd_reactor_poll(f->r, 10);
	assert_true(f->fd.terminate_called);
	fake_dm_terminate_notify(&f->fd, false);
	isd_iscsi_tgt_get_stats(t2, &st);
	assert_int_equal(st.logins_failed, 1);
	assert_int_equal(st.connections, 0);
	isd_iscsi_tgt_destroy(t2);
}

static void
test_login_non_login_pdu_closes(void **state)
{
	struct fx *f = *state;
	uint8_t bhs[ISD_BHS_LEN] = { ISD_OP_NOP_OUT | ISD_BHS_I, ISD_BHS_F };

	assert_int_equal(fake_dm_connect(&f->fd, f->t, f->r, 1), 0);
	fake_dm_inject(&f->fd, bhs, NULL, 0);
	assert_true(f->fd.terminate_called);
	assert_int_equal(f->fd.released, 1);
}


/* A response over 8192 bytes goes out in pieces with C=1 (RFC 7143 §11.13.2). */
static void
test_login_response_continuation(void **state)
{
	struct fx *f = *state;
	uint8_t *text = calloc(1, 8192);
	uint32_t len = 0, total = 0;
	struct isd_pdu *rsp;
	char v[64];
	int n;

	assert_non_null(text);
	len += (uint32_t)sprintf((char *)text + len, "InitiatorName=%s", INAME) + 1;
	len += (uint32_t)sprintf((char *)text + len, "TargetName=%s", TNAME) + 1;
	for (n = 0; n < 120; n++)
		len += (uint32_t)sprintf((char *)text + len,
					 "X-org.example.an-unknown-key-with-a-rather-long-name-%03d=1", n) + 1;
	assert_true(len <= 8192);
	assert_int_equal(fake_dm_connect(&f->fd, f->t, f->r, 1), 0);
	rsp = login_step(&f->fd, OP_TO_FFP, 0, text, len);
	assert_non_null(rsp);
	assert_int_equal(status_of(rsp), 0);
	assert_true(rsp->bhs[1] & ISD_LOGIN_C);
	assert_int_equal(rsp->bhs[1] & ISD_LOGIN_T, 0);
	assert_int_equal(rsp->data_len, 8192);
	assert_int_equal(get_be16(rsp->bhs + 14), 0);  /* no TSIH before the final response */
	total += rsp->data_len;
	isd_pdu_free(rsp);
	/* an empty request fetches the rest */
	rsp = login_step(&f->fd, OP_TO_FFP, 0, NULL, 0);
	assert_non_null(rsp);
	assert_int_equal(status_of(rsp), 0);
	assert_int_equal(rsp->bhs[1], OP_TO_FFP);
	assert_int_not_equal(get_be16(rsp->bhs + 14), 0);
	total += rsp->data_len;
	assert_true(total > 8192);
	assert_false(fake_text_get(rsp, "TargetPortalGroupTag", v, sizeof(v)));
	isd_pdu_free(rsp);
	assert_true(f->fd.noticed);
	free(text);
}

/*
 * The datamover learns the login's course from the core (dm.h, login_response),
 * never from headers: a request with T=1 NSG=FFP answered by a paged (C=1)
 * response is not the end; the final response is announced with the negotiated
 * values before it is queued, and before notice_key_values.
 */
static void
test_login_response_tells_datamover(void **state)
{
	struct fx *f = *state;
	uint8_t *text = calloc(1, 8192);
	uint32_t len = 0;
	struct isd_pdu *rsp;
	int n;

	assert_non_null(text);
	len += (uint32_t)sprintf((char *)text + len, "InitiatorName=%s", INAME) + 1;
	len += (uint32_t)sprintf((char *)text + len, "TargetName=%s", TNAME) + 1;
	len += (uint32_t)sprintf((char *)text + len, "MaxRecvDataSegmentLength=%u", 16384) + 1;
	for (n = 0; n < 120; n++)
		len += (uint32_t)sprintf((char *)text + len,
					 "X-org.example.an-unknown-key-with-a-rather-long-name-%03d=1", n) + 1;
	assert_int_equal(fake_dm_connect(&f->fd, f->t, f->r, 1), 0);
	rsp = login_step(&f->fd, OP_TO_FFP, 0, text, len);
	assert_non_null(rsp);
	assert_true(rsp->bhs[1] & ISD_LOGIN_C);
	isd_pdu_free(rsp);
	assert_int_equal(f->fd.login_rsps, 1);
	assert_int_equal(f->fd.login_finals, 0);
	rsp = login_step(&f->fd, OP_TO_FFP, 0, NULL, 0);
	assert_non_null(rsp);
	assert_int_equal(rsp->bhs[1], OP_TO_FFP);
	isd_pdu_free(rsp);
	assert_int_equal(f->fd.login_rsps, 2);
	assert_int_equal(f->fd.login_finals, 1);
	assert_int_equal(f->fd.sent_at_final, 0);       /* the final response not queued yet */
	assert_false(f->fd.final_after_notice);
	assert_true(f->fd.noticed);
	assert_int_equal(f->fd.final_params.max_xmit_dsl, 16384);
	assert_int_equal(f->fd.final_params.session_type, ISD_SESSION_NORMAL);
	free(text);
}

/*
 * An RDMA session's NOP-In echo in full feature phase carries at most what the
 * datamover's ffp_ctl_max_dsl says (iSER: 128), or, with 0, the
 * InitiatorRecvDataSegmentLength the initiator declared.
 */
static uint32_t
rdma_nop_echo_len(struct fx *f, uint32_t ffp_ctl_max_dsl)
{
	struct isd_dm_ops saved = fake_dm_ops;
	uint8_t bhs[ISD_BHS_LEN], text[512], ping[1000];
	struct isd_pdu *rsp;
	uint32_t len, dsl;

	fake_dm_ops.caps = ISD_DM_CAP_RDMA;
	fake_dm_ops.ffp_ctl_max_dsl = ffp_ctl_max_dsl;
	fake_dm_init(&f->fd);
	assert_int_equal(fake_dm_connect(&f->fd, f->t, f->r, 1), 0);
	len = fake_text(text, sizeof(text), "InitiatorName=" INAME, "TargetName=" TNAME,
			"SessionType=Normal", "RDMAExtensions=Yes",
			"InitiatorRecvDataSegmentLength=8192",
			"TargetRecvDataSegmentLength=8192", (const char *)NULL);
	rsp = login_step(&f->fd, OP_TO_FFP, 0, text, len);
	assert_non_null(rsp);
	assert_int_equal(status_of(rsp), 0);
	assert_true(fake_text_get(rsp, "RDMAExtensions", (char *)text, sizeof(text)));
	assert_string_equal((char *)text, "Yes");
	isd_pdu_free(rsp);
	memset(bhs, 0, sizeof(bhs));
	bhs[0] = ISD_OP_NOP_OUT | ISD_BHS_I;
	bhs[1] = ISD_BHS_F;
	put_be32(bhs + 16, 0x10);
	put_be32(bhs + 20, ISD_RSVD_TAG);
	put_be32(bhs + 24, 5);
	memset(ping, 0x5a, sizeof(ping));
	fake_dm_inject(&f->fd, bhs, ping, sizeof(ping));
	rsp = fake_dm_pop(&f->fd);
	assert_non_null(rsp);
	assert_int_equal(isd_bhs_opcode(rsp->bhs), ISD_OP_NOP_IN);
	dsl = isd_bhs_dsl(rsp->bhs);
	isd_pdu_free(rsp);
	drop_conn(f, &f->fd);
	fake_dm_ops = saved;
	return dsl;
}

static void
test_ffp_ctl_max_dsl_from_datamover(void **state)
{
	struct fx *f = *state;

	assert_int_equal(rdma_nop_echo_len(f, 128), 128);
	assert_int_equal(rdma_nop_echo_len(f, 0), 1000);
}

/*
 * Text Responses of an RDMA session in full feature phase are paged in pieces
 * of at most the datamover's ffp_ctl_max_dsl (iSER: 128; ib_iser's receives
 * hold no more), with C=1 and a TTT while more follows; the initiator fetches
 * each next piece with an empty Text Request carrying that TTT. Returns the
 * number of pieces; *total gets the bytes of all of them.
 */
static int
rdma_sendtargets_pieces(struct fx *f, uint32_t ffp_ctl_max_dsl, uint32_t *total)
{
	static struct isd_portal_cfg extra[6];
	struct isd_dm_ops saved = fake_dm_ops;
	uint8_t bhs[ISD_BHS_LEN], text[512];
	struct isd_pdu *rsp;
	uint32_t len, ttt = ISD_RSVD_TAG, cmdsn = 1;
	int pieces = 0;
	bool more = true;

	/* a response longer than one 128-byte piece: more portals to list */
	for (int i = 0; i < 6; i++) {
		if (extra[i].port == 0) {
			snprintf(extra[i].host, sizeof(extra[i].host), "2001:db8:aaaa:bbbb::%d", i + 1);
			extra[i].port = 3260;
			extra[i].tpgt = 1;
			assert_int_equal(isd_iscsi_tgt_add_portal(f->t, &extra[i]), 0);
		}
	}
	fake_dm_ops.caps = ISD_DM_CAP_RDMA;
	fake_dm_ops.ffp_ctl_max_dsl = ffp_ctl_max_dsl;
	fake_dm_init(&f->fd);
	assert_int_equal(fake_dm_connect(&f->fd, f->t, f->r, 1), 0);
	len = fake_text(text, sizeof(text), "InitiatorName=" INAME, "TargetName=" TNAME,
			"SessionType=Normal", "RDMAExtensions=Yes",
			"InitiatorRecvDataSegmentLength=8192",
			"TargetRecvDataSegmentLength=8192", (const char *)NULL);
	rsp = login_step(&f->fd, OP_TO_FFP, 0, text, len);
	assert_non_null(rsp);
	assert_int_equal(status_of(rsp), 0);
	isd_pdu_free(rsp);
	*total = 0;
	while (more) {
		memset(bhs, 0, sizeof(bhs));
		bhs[0] = ISD_OP_TEXT_REQ | ISD_BHS_I;
		bhs[1] = ISD_BHS_F;
		put_be32(bhs + 16, 0x20);
		put_be32(bhs + 20, ttt);
		put_be32(bhs + 24, 5 + cmdsn - 1);
		if (ttt == ISD_RSVD_TAG) {
			len = fake_text(text, sizeof(text), "SendTargets=All", (const char *)NULL);
			fake_dm_inject(&f->fd, bhs, text, len);
		} else {
			fake_dm_inject(&f->fd, bhs, NULL, 0);
		}
		rsp = fake_dm_pop(&f->fd);
		assert_non_null(rsp);
		assert_int_equal(isd_bhs_opcode(rsp->bhs), ISD_OP_TEXT_RSP);
		if (ffp_ctl_max_dsl > 0)
			assert_true(isd_bhs_dsl(rsp->bhs) <= ffp_ctl_max_dsl);
		*total += isd_bhs_dsl(rsp->bhs);
		more = (rsp->bhs[1] & ISD_BHS_F) == 0;
		ttt = isd_bhs_ttt(rsp->bhs);
		assert_true(more ? ttt != ISD_RSVD_TAG : ttt == ISD_RSVD_TAG);
		isd_pdu_free(rsp);
		pieces++;
		assert_true(pieces < 100);
	}
	drop_conn(f, &f->fd);
	fake_dm_ops = saved;
	return pieces;
}

static void
test_rdma_text_response_paged_by_datamover(void **state)
{
	struct fx *f = *state;
	uint32_t all, paged;

	assert_int_equal(rdma_sendtargets_pieces(f, 0, &all), 1);
	assert_true(all > 2 * 128);
	assert_true(rdma_sendtargets_pieces(f, 128, &paged) >= 3);
	assert_int_equal(paged, all);
}

/* A refused login is announced as not final. */
static void
test_login_response_refused_not_final(void **state)
{
	struct fx *f = *state;
	uint8_t text[512];
	uint32_t len;
	struct isd_pdu *rsp;

	assert_int_equal(fake_dm_connect(&f->fd, f->t, f->r, 1), 0);
	len = fake_text(text, sizeof(text), "InitiatorName=" INAME,
			"TargetName=iqn.2024-01.org.example:nope", (const char *)NULL);
	rsp = login_step(&f->fd, OP_TO_FFP, 0, text, len);
	assert_non_null(rsp);
	assert_int_not_equal(status_of(rsp), 0);
	isd_pdu_free(rsp);
	assert_int_equal(f->fd.login_rsps, 1);
	assert_int_equal(f->fd.login_finals, 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_login_normal_one_pdu, setup, teardown),
		cmocka_unit_test_setup_teardown(test_login_response_tells_datamover, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_login_response_refused_not_final, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_rdma_text_response_paged_by_datamover, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_ffp_ctl_max_dsl_from_datamover, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_login_discovery_and_sendtargets, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_login_missing_initiator_name, setup, teardown),
		cmocka_unit_test_setup_teardown(test_login_missing_target_name, setup, teardown),
		cmocka_unit_test_setup_teardown(test_login_unknown_target, setup, teardown),
		cmocka_unit_test_setup_teardown(test_login_acl_forbidden, setup, teardown),
		cmocka_unit_test_setup_teardown(test_login_chap_per_initiator, setup, teardown),
		cmocka_unit_test_setup_teardown(test_login_chap_per_initiator_not_default, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_login_chap_per_initiator_required, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_login_bad_version_and_flags, setup, teardown),
		cmocka_unit_test_setup_teardown(test_login_unknown_tsih, setup, teardown),
		cmocka_unit_test_setup_teardown(test_login_second_connection_refused, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_login_reinstatement, setup, teardown),
		cmocka_unit_test_setup_teardown(test_login_text_continuation, setup, teardown),
		cmocka_unit_test_setup_teardown(test_login_chap_success, setup, teardown),
		cmocka_unit_test_setup_teardown(test_login_chap_mutual, setup, teardown),
		cmocka_unit_test_setup_teardown(test_login_chap_failure, setup, teardown),
		cmocka_unit_test_setup_teardown(test_login_chap_required_none_offered, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_login_chap_required_skip_security, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_login_chap_required_continued_stage_switch, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_login_chap_required_op_stage_without_auth, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_login_stage_backwards, setup, teardown),
		cmocka_unit_test_setup_teardown(test_login_timeout, setup, teardown),
		cmocka_unit_test_setup_teardown(test_login_non_login_pdu_closes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_login_response_continuation, setup, teardown),
	};

	return cmocka_run_group_tests_name("core_login", tests, NULL, NULL);
}
