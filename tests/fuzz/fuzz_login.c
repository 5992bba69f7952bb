/*
 * The login state machine and CHAP verification through the core with the
 * fake datamover: a fresh target per input (without CHAP, with CHAP, with
 * mutual CHAP, CHAP on discovery; optionally an ACL), then a sequence of
 * Login Requests. The harness can answer the target's CHAP challenge
 * correctly on request, so the fuzzer gets past verification into mutual
 * CHAP and the operational stage, as well as failing it in every way. At the
 * end the connection is dropped and the target must be back to zero
 * connections, sessions and tasks. Where CHAP is required for every session,
 * a connection on which the harness did not answer the challenge must never
 * reach full feature phase (the fuzzer cannot compute a response itself: the
 * challenge is random).
 *
 * Input (make_corpus.py writes seeds in this layout):
 *   [0]  target: bit0-1 auth (0 none, 1 CHAP for every session, 2 the same
 *        with mutual CHAP, 3 mutual CHAP for discovery only), bit2 ACL of one
 *        initiator name
 *   then records: [Login flags byte 1][ctl][text length be16][BHS 48 if ctl&1][text]
 *   ctl: 0x01 the BHS comes from the input (opcode, ITT, TSIH and all),
 *        0x02 append CHAP_N and the right CHAP_R for the last CHAP_A/I/C we got,
 *        0x04 drop the connection and log in on a new one first,
 *        0x08 prepend InitiatorName, TargetName and SessionType=Normal,
 *        0x10 TSIH of the last session the target gave us (harness-built BHS)
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fake_dm.h"
#include "fuzz_core.h"
#include "fuzz_input.h"
#include "iscsi/chap.h"
#include "iscsi/iscsi.h"
#include "iscsi/keys.h"
#include "iscsi/pdu.h"
#include "reactor/reactor.h"
#include "util/endian.h"

#define TNAME "iqn.2024-01.org.example:fuzz"
#define INAME "iqn.1993-08.org.debian:01:fuzz"
#define USER "alice"
#define SECRET "secret-12345"
#define MAX_RECORDS 64
#define MAX_TEXT 16384

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct isd_reactor *g_r;

struct lf {
	struct isd_iscsi_tgt *t;
	struct isd_tnode node;
	struct isd_portal_cfg portal;
	char *acl[1];
	struct fake_dm fd;
	uint32_t statsn;
	uint16_t tsih;
	/* the last challenge the target sent */
	int chap_a;
	int chap_i;
	uint8_t chap_c[1024];
	int chap_c_len;
	bool chap_everywhere;           /* no session without CHAP */
	bool answered;                  /* the harness answered a challenge on this connection */
};

static void
set_chap(struct isd_auth_cfg *a, bool mutual)
{
	a->require_chap = true;
	snprintf(a->chap.user, sizeof(a->chap.user), USER);
	snprintf(a->chap.secret, sizeof(a->chap.secret), SECRET);
	a->mutual = mutual;
	snprintf(a->mutual_chap.user, sizeof(a->mutual_chap.user), "tgt");
	snprintf(a->mutual_chap.secret, sizeof(a->mutual_chap.secret), "tgt-secret-67890");
}

static void
setup(struct lf *f, uint8_t cfg)
{
	struct isd_iscsi_cfg tcfg;

	memset(f, 0, sizeof(*f));
	isd_iscsi_cfg_init(&tcfg);
	tcfg.nop_interval_ms = 0;
	if ((cfg & 3) != 0)
		set_chap(&tcfg.discovery_auth, (cfg & 3) != 1);
	if (isd_iscsi_tgt_create(g_r, &tcfg, &f->t) < 0)
		abort();
	snprintf(f->node.name, sizeof(f->node.name), "%s", TNAME);
	snprintf(f->node.alias, sizeof(f->node.alias), "fuzz");
	f->node.tpgt = 1;
	f->node.queue_depth = 8;
	isd_key_policy_init(&f->node.policy);
	if ((cfg & 3) == 1 || (cfg & 3) == 2)
		set_chap(&f->node.auth, (cfg & 3) == 2);
	if (cfg & 4) {
		f->acl[0] = INAME;
		f->node.acl = f->acl;
		f->node.acl_count = 1;
	}
	f->chap_everywhere = (cfg & 3) == 1 || (cfg & 3) == 2;
	if (isd_iscsi_tgt_add_node(f->t, &f->node) < 0)
		abort();
	snprintf(f->portal.host, sizeof(f->portal.host), "192.0.2.10");
	f->portal.port = 3260;
	f->portal.tpgt = 1;
	if (isd_iscsi_tgt_add_portal(f->t, &f->portal) < 0)
		abort();
	fake_dm_init(&f->fd);
}

static void
drop_conn(struct lf *f)
{
	if (f->fd.conn != NULL)
		fake_dm_terminate_notify(&f->fd, true);
	fuzz_pump(2);
	fake_dm_fini(&f->fd);
	fake_dm_init(&f->fd);
}

/* Remembers the target's StatSN, TSIH and CHAP challenge; frees what it sent. */
static void
take_responses(struct lf *f)
{
	struct isd_pdu *p;
	char v[2100];

	while ((p = fake_dm_pop(&f->fd)) != NULL) {
		if (isd_bhs_opcode(p->bhs) == ISD_OP_LOGIN_RSP) {
			/* full feature phase without the challenge answered: authentication bypass */
			if (f->chap_everywhere && !f->answered && (p->bhs[1] & ISD_LOGIN_T) &&
			    ISD_LOGIN_NSG(p->bhs[1]) == ISD_STAGE_FFP && p->bhs[36] == 0)
				abort();
			f->statsn = get_be32(p->bhs + 24) + 1;
			if (get_be16(p->bhs + 14) != 0)
				f->tsih = get_be16(p->bhs + 14);
			if (fake_text_get(p, "CHAP_A", v, sizeof(v)))
				f->chap_a = atoi(v);
			if (fake_text_get(p, "CHAP_I", v, sizeof(v)))
				f->chap_i = atoi(v);
			if (fake_text_get(p, "CHAP_C", v, sizeof(v))) {
				int n = isd_key_parse_binary(v, f->chap_c, sizeof(f->chap_c));

				f->chap_c_len = n > 0 ? n : 0;
			}
		}
		isd_pdu_free(p);
	}
	if (f->fd.conn != NULL && f->fd.terminate_called)
		fake_dm_terminate_notify(&f->fd, false);
}

static uint32_t
add_text(uint8_t *buf, uint32_t len, const char *kv)
{
	size_t n = strlen(kv) + 1;

	if (len + n > MAX_TEXT + 1024)
		return len;
	memcpy(buf + len, kv, n);
	return len + (uint32_t)n;
}

static uint32_t
add_chap_answer(struct lf *f, uint8_t *buf, uint32_t len, bool *answered)
{
	uint8_t r[ISD_CHAP_MAX_DIGEST];
	char kv[2 * ISD_CHAP_MAX_DIGEST + 16], hex[2 * ISD_CHAP_MAX_DIGEST + 8];
	int n;

	if (f->chap_c_len == 0)
		return len;
	n = isd_chap_response(f->chap_a ? f->chap_a : ISD_CHAP_MD5, (uint8_t)f->chap_i, SECRET,
			      f->chap_c, (size_t)f->chap_c_len, r, sizeof(r));
	if (n <= 0 || isd_key_format_hex(r, (size_t)n, hex, sizeof(hex)) != 0)
		return len;
	len = add_text(buf, len, "CHAP_N=" USER);
	snprintf(kv, sizeof(kv), "CHAP_R=%s", hex);
	*answered = true;
	return add_text(buf, len, kv);
}

static void
record(struct lf *f, struct fz *z)
{
	static const uint8_t isid[6] = {0x80, 0x12, 0x34, 0x56, 0x00, 0x01};
	static uint8_t text[MAX_TEXT + 1024];
	uint8_t flags = fz_u8(z), ctl = fz_u8(z), bhs[ISD_BHS_LEN];
	uint32_t want = fz_u16(z), len = 0;
	const uint8_t *in;
	size_t n;

	if (ctl & 0x01)
		fz_copy(z, bhs, sizeof(bhs));
	else
		fake_login_bhs(bhs, flags, isid, 0, 0x77, 1);
	if (!(ctl & 0x01)) {
		put_be16(bhs + 14, (ctl & 0x10) ? f->tsih : 0);
		put_be32(bhs + 28, f->statsn);
	}
	if (want > MAX_TEXT)
		want = MAX_TEXT;
	n = fz_take(z, want, &in);
	if ((ctl & 0x04) || f->fd.conn == NULL) {
		drop_conn(f);
		f->statsn = 0;
		f->chap_c_len = 0;
		f->answered = false;
		if (fake_dm_connect(&f->fd, f->t, g_r, 1) < 0)
			abort();
	}
	if (ctl & 0x08) {
		len = add_text(text, len, "InitiatorName=" INAME);
		len = add_text(text, len, "TargetName=" TNAME);
		len = add_text(text, len, "SessionType=Normal");
	}
	memcpy(text + len, in, n);
	len += (uint32_t)n;
	if (ctl & 0x02)
		len = add_chap_answer(f, text, len, &f->answered);
	fake_dm_inject(&f->fd, bhs, text, len);
	fuzz_pump(1);
	take_responses(f);
}

static void
teardown(struct lf *f)
{
	if (f->fd.conn != NULL)
		fake_dm_terminate_notify(&f->fd, true);
	fuzz_target_drain_destroy(f->t);
	fake_dm_fini(&f->fd);
	fuzz_pump(2);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct lf f;
	struct fz z;
	uint8_t cfg;

	g_r = fuzz_reactor();
	if (size > 4 * MAX_TEXT)
		return 0;
	fz_init(&z, data, size);
	cfg = fz_u8(&z);
	setup(&f, cfg);
	if (fake_dm_connect(&f.fd, f.t, g_r, 1) < 0)
		abort();
	for (int n = 0; n < MAX_RECORDS && z.left > 0; n++)
		record(&f, &z);
	teardown(&f);
	return 0;
}
