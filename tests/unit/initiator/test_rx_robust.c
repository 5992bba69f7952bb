/*
 * Robustness of the initiator's receive path against a hostile or broken
 * target: over a socketpair, the peer sends thousands of PDUs with random
 * opcodes, flags, lengths, tags, offsets and key text, in full feature phase
 * (with reads and writes outstanding) and during login. The context must
 * either go on or fail the connection cleanly (every callback exactly once,
 * nothing touched outside the buffers), never crash; AddressSanitizer and
 * UBSan builds check the "never".
 */
#include <errno.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "initiator/init_int.h"
#include "util/endian.h"

static uint64_t g_rng = 0x1234567887654321ull;

static uint32_t
rnd(void)
{
	g_rng ^= g_rng >> 12;
	g_rng ^= g_rng << 25;
	g_rng ^= g_rng >> 27;
	return (uint32_t)((g_rng * 2685821657736338717ull) >> 32);
}

struct slot {
	struct iserd_task t;
	uint8_t buf[8192];
	int done;
};

static void
done_cb(struct iserd_context *ctx, int status, void *data, void *arg)
{
	struct slot *s = arg;

	(void)ctx;
	(void)status;
	assert_ptr_equal(data, &s->t);
	s->done++;
}

static struct iserd_context *
make_ctx(int fd, enum isd_ictx_state st)
{
	struct iserd_context *pub;
	struct isd_ictx *c;

	assert_int_equal(iserd_context_create(NULL, &pub), 0);
	c = &pub->c;
	assert_int_equal(iserd_set_queue_depth(pub, 8), 0);
	assert_int_equal(isd_init_slots_alloc(c), 0);
	c->stype = ISERD_SESSION_NORMAL;
	snprintf(c->url.host, sizeof(c->url.host), "peer");
	snprintf(c->url.target, sizeof(c->url.target), "iqn.2026-11.org.test:t");
	isd_params_init_defaults(&c->params);
	c->params.max_recv_dsl = ISD_INIT_MAX_RECV_DSL;
	c->params.max_xmit_dsl = 8192;
	c->params.immediate_data = (rnd() & 1) != 0;
	c->params.initial_r2t = (rnd() & 1) != 0;
	c->params.max_outstanding_r2t = 1 + rnd() % 8;
	c->cmdsn = 1;
	c->exp_cmdsn = 1;
	c->max_cmdsn = 64;
	c->ever_logged_in = true;
	c->state = st;
	if (st == ISD_ICTX_LOGIN) {
		c->login_itt = 0x80000001u;
		c->lstep = (enum isd_login_step)(rnd() % 4);
		c->login_csg = c->lstep == ISD_LS_OPERATIONAL ? 1 : 0;
		c->login_deadline_ns = isd_init_now_ns() + 60000000000ull;
		if (rnd() & 1)
			iserd_set_chap(pub, "user", "secretsecret");
		if (rnd() & 1)
			iserd_set_mutual_chap(pub, "tgt", "tgtsecretsecret");
	}
	assert_int_equal(isd_init_x_adopt_tcp(c, fd), 0);
	return pub;
}

static const char *const g_keys[] = {
    "HeaderDigest",
    "DataDigest",
    "MaxRecvDataSegmentLength",
    "InitialR2T",
    "ImmediateData",
    "MaxBurstLength",
    "FirstBurstLength",
    "MaxOutstandingR2T",
    "AuthMethod",
    "CHAP_A",
    "CHAP_I",
    "CHAP_C",
    "CHAP_N",
    "CHAP_R",
    "TargetAlias",
    "TargetPortalGroupTag",
    "X-vendor",
    "ErrorRecoveryLevel",
    "SendTargets",
    "TargetName",
    "TargetAddress",
};
static const char *const g_vals[] = {
    "CRC32C",
    "None",
    "Yes",
    "No",
    "0",
    "512",
    "16777215",
    "99999999999",
    "CHAP",
    "5",
    "7",
    "0x",
    "0x00112233445566778899aabbccddeeff",
    "0bAAAA",
    "",
    "Reject",
    "NotUnderstood",
    "tgt",
    "1",
    "-1",
    "0xzz",
};

/* Random key text, sometimes malformed (no '=', no NUL at the end). */
static uint32_t
rand_text(uint8_t *p, uint32_t cap)
{
	uint32_t len = 0;
	int n = (int)(rnd() % 6), i;

	for (i = 0; i < n; i++) {
		int w = snprintf((char *)p + len, cap - len, "%s%s%s",
				 g_keys[rnd() % (sizeof(g_keys) / sizeof(g_keys[0]))],
				 (rnd() % 16) ? "=" : "",
				 g_vals[rnd() % (sizeof(g_vals) / sizeof(g_vals[0]))]);

		if (w < 0 || (uint32_t)w + 1 >= cap - len)
			break;
		len += (uint32_t)w + 1;
	}
	if (len > 0 && rnd() % 10 == 0)
		len--; /* drop the final NUL */
	return len;
}

/* One random target PDU, biased towards plausible ones. */
static size_t
rand_pdu(uint8_t *out, size_t cap, const uint32_t *itts, int nitt, bool login, uint8_t csg)
{
	/* Weighted: mostly the PDUs a full feature phase sees. */
	static const uint8_t ops[] = {ISD_OP_DATA_IN,
				      ISD_OP_DATA_IN,
				      ISD_OP_DATA_IN,
				      ISD_OP_SCSI_RSP,
				      ISD_OP_SCSI_RSP,
				      ISD_OP_R2T,
				      ISD_OP_R2T,
				      ISD_OP_NOP_IN,
				      ISD_OP_NOP_IN,
				      ISD_OP_ASYNC_MSG,
				      ISD_OP_REJECT,
				      ISD_OP_TMF_RSP,
				      ISD_OP_TEXT_RSP,
				      ISD_OP_LOGOUT_RSP,
				      ISD_OP_LOGIN_RSP,
				      0x1c,
				      0x05};
	uint8_t *bhs = out;
	uint32_t dsl = 0, itt;
	uint8_t op = login && (rnd() % 4) ? ISD_OP_LOGIN_RSP : ops[rnd() % sizeof(ops)];

	memset(out, 0, ISD_BHS_LEN);
	bhs[0] = op;
	bhs[1] = (uint8_t)rnd();
	if (rnd() % 2)
		bhs[1] |= 0x80;
	bhs[2] = (uint8_t)(rnd() % 4 ? 0 : rnd());
	bhs[3] = (uint8_t)(rnd() % 3 ? 0 : rnd());
	if (rnd() % 20 == 0)
		bhs[4] = (uint8_t)(rnd() % 3);
	if (login)
		itt = rnd() % 10 ? 0x80000001u : rnd();
	else if (op == ISD_OP_NOP_IN || op == ISD_OP_ASYNC_MSG)
		itt = rnd() % 4 ? ISD_RSVD_TAG : rnd();
	else
		itt = nitt > 0 && rnd() % 8 ? itts[rnd() % (uint32_t)nitt] : rnd();
	put_be32(bhs + 16, itt);
	put_be32(bhs + 20, rnd() % 3 ? ISD_RSVD_TAG : rnd());
	put_be32(bhs + 24, rnd() % 8);
	put_be32(bhs + 28, 1 + rnd() % 4);
	put_be32(bhs + 32, rnd() % 8 ? 64 : rnd());
	put_be32(bhs + 36, rnd() % 8 ? (rnd() % 4 ? 0 : rnd() % 4) : rnd());
	put_be32(bhs + 40, rnd() % 4 ? (rnd() % 4) * 512 : rnd());
	put_be32(bhs + 44, rnd() % 4 ? 512 + (rnd() % 4) * 512 : rnd());
	if (op == ISD_OP_LOGIN_RSP || op == ISD_OP_TEXT_RSP) {
		dsl = rand_text(out + ISD_BHS_LEN, 1024);
		if (op == ISD_OP_LOGIN_RSP) {
			bhs[2] = rnd() % 4 ? 0 : bhs[2];
			bhs[3] = rnd() % 4 ? 0 : bhs[3];
			put_be16(bhs + 36, rnd() % 6 ? 0 : (uint16_t)rnd());
			bhs[1] =
			    (uint8_t)(rnd() % 6 ? ((rnd() % 3 ? 0x80u : 0u) | ((uint32_t)csg << 2) |
						   (rnd() % 2 ? 1u : 3u))
						: rnd());
		}
	} else if (rnd() % 3 == 0) {
		dsl = rnd() % 2048;
		if (rnd() % 50 == 0)
			dsl = 300000 + rnd() % 1000; /* above our limit */
		if (dsl + ISD_BHS_LEN + 4 > cap)
			dsl = (uint32_t)(cap - ISD_BHS_LEN - 4);
		for (uint32_t i = 0; i < dsl; i++)
			out[ISD_BHS_LEN + i] = (uint8_t)rnd();
	}
	put_be24(bhs + 5, dsl);
	/* pad, plus the AHS bytes if any were announced */
	memset(out + ISD_BHS_LEN + dsl, 0, isd_pad4(dsl) + (uint32_t)bhs[4] * 4);
	return ISD_BHS_LEN + dsl + isd_pad4(dsl) + (size_t)bhs[4] * 4;
}

static void
drain(int fd)
{
	uint8_t junk[65536];

	while (read(fd, junk, sizeof(junk)) > 0)
		;
}

static void
run_round(bool login)
{
	struct slot *slots = calloc(6, sizeof(*slots));
	uint8_t *pdu = malloc(320000);
	struct iserd_context *pub;
	uint32_t itts[6];
	int sv[2], i, n = 0, k;

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
	pub = make_ctx(sv[0], login ? ISD_ICTX_LOGIN : ISD_ICTX_FFP);
	if (!login) {
		for (i = 0; i < 6; i++) {
			struct iserd_task *t = &slots[i].t;

			if (i % 2)
				iserd_task_read16(t, 0, (uint64_t)i * 16, 16, 512, slots[i].buf);
			else
				iserd_task_write16(t, 0, (uint64_t)i * 16, 16, 512, slots[i].buf,
						   false);
			assert_int_equal(iserd_task_submit(pub, t, done_cb, &slots[i]), 0);
			itts[n++] = ((struct isd_itask *)t->priv)->itt;
		}
	}
	for (k = 0; k < 64; k++) {
		size_t len = rand_pdu(pdu, 320000, itts, n, login, pub->c.login_csg);
		size_t off = 0;
		int rc = 0;

		while (off < len) {
			ssize_t w = write(sv[1], pdu + off, len - off);

			if (w <= 0) {
				rc = iserd_service(pub, POLLIN | POLLOUT);
				drain(sv[1]);
				if (iserd_get_fd(pub) < 0)
					break;
				continue;
			}
			off += (size_t)w;
		}
		if (iserd_get_fd(pub) < 0)
			break;
		rc = iserd_service(pub, POLLIN | POLLOUT);
		drain(sv[1]);
		if (rc < 0 || iserd_get_fd(pub) < 0)
			break;
	}
	iserd_context_destroy(pub);
	/* Every command completed exactly once (by the peer or by the teardown). */
	for (i = 0; i < (login ? 0 : 6); i++)
		assert_int_equal(slots[i].done, 1);
	close(sv[1]);
	free(pdu);
	free(slots);
}

static void
test_rx_random_pdus_in_full_feature_phase(void **state)
{
	int i;

	(void)state;
	for (i = 0; i < 1500; i++)
		run_round(false);
}

static void
test_rx_random_login_responses(void **state)
{
	int i;

	(void)state;
	for (i = 0; i < 1500; i++)
		run_round(true);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_rx_random_pdus_in_full_feature_phase),
	    cmocka_unit_test(test_rx_random_login_responses),
	};

	return cmocka_run_group_tests_name("initiator_rx_robust", tests, NULL, NULL);
}
