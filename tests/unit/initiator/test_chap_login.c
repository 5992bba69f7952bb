/*
 * The initiator's CHAP login (src/initiator/session.c) against a scripted
 * target on a socketpair: the CHAP_A list we offer, our response for each
 * algorithm the target may choose (checked against OpenSSL computed here),
 * refusal of an algorithm we did not offer, mutual CHAP with the target's
 * algorithm, refusal of our own challenge played back to us (reflection), and
 * target values escaped in error and log messages.
 */
#include <errno.h>
#include <fcntl.h>
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
#include <openssl/evp.h>

#include "initiator/init_int.h"
#include "util/endian.h"

#define USER "alice"
#define SECRET "alicesecret12"
#define TUSER "target1"
#define TSECRET "targetsecret12"

struct peer {
	struct iserd_context *pub;
	int fd; /* the target's end */
	uint32_t statsn;
	uint8_t text[8192]; /* the last request's key text */
	uint32_t text_len;
};

static void
peer_open(struct peer *p, bool mutual)
{
	struct isd_ictx *c;
	int sv[2];

	memset(p, 0, sizeof(*p));
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
	assert_int_equal(fcntl(sv[1], F_SETFL, 0), 0);
	assert_int_equal(iserd_context_create(NULL, &p->pub), 0);
	c = &p->pub->c;
	assert_int_equal(iserd_set_chap(p->pub, USER, SECRET), 0);
	if (mutual)
		assert_int_equal(iserd_set_mutual_chap(p->pub, TUSER, TSECRET), 0);
	iserd_set_reconnect(p->pub, ISERD_RECONNECT_OFF, 0, 0);
	assert_int_equal(isd_init_slots_alloc(c), 0);
	c->stype = ISERD_SESSION_NORMAL;
	snprintf(c->url.host, sizeof(c->url.host), "peer");
	snprintf(c->url.target, sizeof(c->url.target), "iqn.2026-11.org.test:t");
	c->login_deadline_ns = isd_init_now_ns() + 60000000000ull;
	assert_int_equal(isd_init_x_adopt_tcp(c, sv[0]), 0);
	p->fd = sv[1];
}

static void
peer_close(struct peer *p)
{
	iserd_context_destroy(p->pub);
	close(p->fd);
}

static void
read_full(int fd, uint8_t *buf, size_t len)
{
	size_t off = 0;

	while (off < len) {
		ssize_t n = read(fd, buf + off, len - off);

		assert_true(n > 0);
		off += (size_t)n;
	}
}

/* Reads the initiator's next Login Request; its key text lands in p->text. */
static void
peer_read(struct peer *p)
{
	uint8_t bhs[ISD_BHS_LEN];
	uint32_t dsl;

	read_full(p->fd, bhs, sizeof(bhs));
	assert_int_equal(bhs[0] & 0x3f, ISD_OP_LOGIN_REQ);
	dsl = get_be24(bhs + 5);
	assert_true(dsl + 4 <= sizeof(p->text));
	read_full(p->fd, p->text, dsl + isd_pad4(dsl));
	p->text_len = dsl;
}

/* The value of `key` in the last request, or NULL. */
static const char *
peer_key(struct peer *p, const char *key)
{
	size_t kl = strlen(key);
	uint32_t off = 0;

	while (off < p->text_len) {
		const char *kv = (const char *)p->text + off;
		size_t l = strnlen(kv, p->text_len - off);

		if (l > kl && memcmp(kv, key, kl) == 0 && kv[kl] == '=')
			return kv + kl + 1;
		off += (uint32_t)l + 1;
	}
	return NULL;
}

/* Lets the initiator run; -1 once it gave the connection up (login failed). */
static int
service(struct peer *p)
{
	int rc = iserd_service(p->pub, POLLIN | POLLOUT);

	return rc < 0 || p->pub->c.state != ISD_ICTX_LOGIN ? -1 : 0;
}

/*
 * Sends a Login Response in the security stage with the keys in `text`
 * (NUL-separated, `len` bytes) and lets the initiator process it.
 * Returns 0, or -1 once the initiator gave the connection up.
 */
static int
peer_send(struct peer *p, bool transit, const char *text, size_t len)
{
	struct isd_ictx *c = &p->pub->c;
	uint8_t pdu[ISD_BHS_LEN + 1024];
	size_t total = ISD_BHS_LEN + len + isd_pad4((uint32_t)len);

	assert_true(total <= sizeof(pdu));
	memset(pdu, 0, sizeof(pdu));
	pdu[0] = ISD_OP_LOGIN_RSP;
	/* in the stage of the request we answer, on to the next one */
	pdu[1] = (uint8_t)(c->login_csg << 2);
	if (transit)
		pdu[1] |= ISD_LOGIN_T | (c->login_csg == ISD_STAGE_SECURITY ? ISD_STAGE_OPERATIONAL
									  : ISD_STAGE_FFP);
	put_be24(pdu + 5, (uint32_t)len);
	memcpy(pdu + 8, c->isid, 6);
	put_be32(pdu + 16, c->login_itt);
	put_be32(pdu + 24, p->statsn++);
	put_be32(pdu + 28, 1);
	put_be32(pdu + 32, 64);
	memcpy(pdu + ISD_BHS_LEN, text, len);
	assert_int_equal(write(p->fd, pdu, total), (ssize_t)total);
	return service(p);
}

/* Logs in up to the target's challenge: AuthMethod, then our CHAP_A. */
static void
login_to_chap_a(struct peer *p)
{
	static const char am[] = "AuthMethod=CHAP";

	assert_int_equal(isd_init_login_start(&p->pub->c), 0);
	assert_int_equal(iserd_service(p->pub, POLLOUT), 0);
	peer_read(p);
	assert_int_equal(peer_send(p, false, am, sizeof(am)), 0);
	peer_read(p);
}

static const EVP_MD *
md_of(int alg)
{
	switch (alg) {
	case 5:
		return EVP_md5();
	case 6:
		return EVP_sha1();
	case 7:
		return EVP_sha256();
	default:
		return EVP_sha3_256();
	}
}

/* "0x" + hex of H(id || secret || challenge), computed here with OpenSSL. */
static void
expect_hex(int alg, uint8_t id, const char *secret, const uint8_t *chal, size_t clen, char *out)
{
	uint8_t d[EVP_MAX_MD_SIZE];
	unsigned int dl = 0;
	EVP_MD_CTX *x = EVP_MD_CTX_new();

	assert_non_null(x);
	assert_int_equal(EVP_DigestInit_ex(x, md_of(alg), NULL), 1);
	assert_int_equal(EVP_DigestUpdate(x, &id, 1), 1);
	assert_int_equal(EVP_DigestUpdate(x, secret, strlen(secret)), 1);
	assert_int_equal(EVP_DigestUpdate(x, chal, clen), 1);
	assert_int_equal(EVP_DigestFinal_ex(x, d, &dl), 1);
	EVP_MD_CTX_free(x);
	out += sprintf(out, "0x");
	for (unsigned int i = 0; i < dl; i++)
		out += sprintf(out, "%02x", d[i]);
}

/* Sends CHAP_A/CHAP_I/CHAP_C; returns what peer_send() returned. */
static int
send_challenge(struct peer *p, const char *alg, unsigned int id, const char *chal_hex)
{
	char text[512];
	int n = snprintf(text, sizeof(text), "CHAP_A=%s%cCHAP_I=%u%cCHAP_C=%s", alg, 0, id, 0,
			 chal_hex);

	return peer_send(p, false, text, (size_t)n + 1);
}

static const uint8_t g_chal[16] = {0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef,
				   0xfe, 0xdc, 0xba, 0x98, 0x76, 0x54, 0x32, 0x10};
#define CHAL_HEX "0x0123456789abcdeffedcba9876543210"

static void
test_offers_strongest_first(void **state)
{
	struct peer p;

	(void)state;
	peer_open(&p, false);
	login_to_chap_a(&p);
	assert_non_null(peer_key(&p, "CHAP_A"));
	assert_string_equal(peer_key(&p, "CHAP_A"), "8,7,6,5");
	peer_close(&p);
}

/* iserd_set_chap_algs(): the list we offer, and what we then refuse. */
static void
test_offer_configured(void **state)
{
	struct peer p;

	(void)state;
	peer_open(&p, false);
	assert_int_equal(iserd_set_chap_algs(p.pub, "md5,SHA256"), 0);
	login_to_chap_a(&p);
	assert_string_equal(peer_key(&p, "CHAP_A"), "7,5");
	assert_true(send_challenge(&p, "8", 1, CHAL_HEX) < 0);
	assert_non_null(strstr(iserd_get_error(p.pub), "CHAP_A=8, we offered 7,5"));
	peer_close(&p);

	peer_open(&p, false);
	assert_int_equal(iserd_set_chap_algs(p.pub, "sha3-256"), 0);
	assert_int_equal(iserd_set_chap_algs(p.pub, "sha3-256,md4"), -EINVAL);
	assert_int_equal(iserd_set_chap_algs(p.pub, ""), -EINVAL);
	assert_int_equal(iserd_set_chap_algs(p.pub, ","), -EINVAL);
	login_to_chap_a(&p);
	assert_string_equal(peer_key(&p, "CHAP_A"), "8");
	peer_close(&p);

	peer_open(&p, false);
	assert_int_equal(iserd_set_chap_algs(p.pub, "sha1"), 0);
	assert_int_equal(iserd_set_chap_algs(p.pub, NULL), 0);
	login_to_chap_a(&p);
	assert_string_equal(peer_key(&p, "CHAP_A"), "8,7,6,5");
	peer_close(&p);
}

static void
test_response_per_algorithm(void **state)
{
	static const char *const algs[] = {"5", "6", "7", "8"};

	(void)state;
	for (size_t i = 0; i < sizeof(algs) / sizeof(algs[0]); i++) {
		char want[2 + 2 * EVP_MAX_MD_SIZE + 1];
		struct peer p;

		peer_open(&p, false);
		login_to_chap_a(&p);
		assert_int_equal(send_challenge(&p, algs[i], 42, CHAL_HEX), 0);
		peer_read(&p);
		assert_string_equal(peer_key(&p, "CHAP_N"), USER);
		expect_hex(atoi(algs[i]), 42, SECRET, g_chal, sizeof(g_chal), want);
		assert_string_equal(peer_key(&p, "CHAP_R"), want);
		assert_int_equal(p.pub->c.chap_alg, atoi(algs[i]));
		peer_close(&p);
	}
}

static void
test_algorithm_not_offered_refused(void **state)
{
	static const char *const bad[] = {"4", "9", "5,7", "", "md5", "4294967301"};

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct peer p;

		peer_open(&p, false);
		login_to_chap_a(&p);
		assert_true(send_challenge(&p, bad[i], 1, CHAL_HEX) < 0);
		assert_non_null(strstr(iserd_get_error(p.pub), "we offered 8,7,6,5"));
		peer_close(&p);
	}
}

static void
test_malformed_challenge_refused(void **state)
{
	static const char *const ids[] = {"256", "-1", "x"};
	static const char *const chals[] = {"0x", "0xzz", "abc"};
	char text[64];
	struct peer p;
	int n;

	(void)state;
	for (size_t i = 0; i < 3; i++) {
		peer_open(&p, false);
		login_to_chap_a(&p);
		n = snprintf(text, sizeof(text), "CHAP_A=7%cCHAP_I=%s%cCHAP_C=%s", 0, ids[i], 0,
			     CHAL_HEX);
		assert_true(peer_send(&p, false, text, (size_t)n + 1) < 0);
		assert_non_null(strstr(iserd_get_error(p.pub), "bad CHAP_I"));
		peer_close(&p);

		peer_open(&p, false);
		login_to_chap_a(&p);
		assert_true(send_challenge(&p, "7", 1, chals[i]) < 0);
		assert_non_null(strstr(iserd_get_error(p.pub), "bad CHAP_C"));
		peer_close(&p);
	}
}

/* Mutual CHAP: we challenge the target with its algorithm and check its answer. */
static void
mutual_round(struct peer *p, const char *alg, bool right, char *our_chal_hex)
{
	uint8_t chal[ISD_INIT_CHAP_CHALLENGE_LEN];
	char text[512], resp[2 + 2 * EVP_MAX_MD_SIZE + 1];
	const char *ci, *cc;
	int n, rc;

	login_to_chap_a(p);
	assert_int_equal(send_challenge(p, alg, 9, CHAL_HEX), 0);
	peer_read(p);
	ci = peer_key(p, "CHAP_I");
	cc = peer_key(p, "CHAP_C");
	assert_non_null(ci);
	assert_non_null(cc);
	assert_int_equal(isd_key_parse_binary(cc, chal, sizeof(chal)), (int)sizeof(chal));
	if (our_chal_hex != NULL)
		strcpy(our_chal_hex, cc);
	expect_hex(atoi(alg), (uint8_t)atoi(ci), right ? TSECRET : "notthesecret1", chal,
		   sizeof(chal), resp);
	n = snprintf(text, sizeof(text), "CHAP_N=%s%cCHAP_R=%s", TUSER, 0, resp);
	rc = peer_send(p, true, text, (size_t)n + 1);
	if (right) {
		assert_int_equal(rc, 0);
		/* on to the operational stage */
		assert_int_equal(p->pub->c.lstep, ISD_LS_OPERATIONAL);
	} else {
		assert_true(rc < 0);
		assert_non_null(strstr(iserd_get_error(p->pub), "target's response is wrong"));
	}
}

static void
test_mutual_same_algorithm(void **state)
{
	static const char *const algs[] = {"5", "6", "7", "8"};

	(void)state;
	for (size_t i = 0; i < sizeof(algs) / sizeof(algs[0]); i++) {
		struct peer p;

		peer_open(&p, true);
		mutual_round(&p, algs[i], true, NULL);
		peer_close(&p);
		peer_open(&p, true);
		mutual_round(&p, algs[i], false, NULL);
		peer_close(&p);
	}
}

/*
 * A target that plays our last challenge back to us in the next login (after
 * a reconnect) would get from us the answer it owes us. Refused.
 */
static void
test_reflected_challenge_refused(void **state)
{
	char ours[2 + 2 * ISD_INIT_CHAP_CHALLENGE_LEN + 1];
	struct peer p;

	(void)state;
	peer_open(&p, true);
	mutual_round(&p, "5", true, ours);
	/* the same context logs in again on the same stream */
	login_to_chap_a(&p);
	assert_true(send_challenge(&p, "5", 3, ours) < 0);
	assert_non_null(strstr(iserd_get_error(p.pub), "our own CHAP challenge"));
	peer_close(&p);
}

static char g_log[4096];

static void
capture_log(enum iserd_log_level level, const char *msg, void *arg)
{
	(void)level;
	(void)arg;
	snprintf(g_log + strlen(g_log), sizeof(g_log) - strlen(g_log), "%s|", msg);
}

/* Operational keys we do not use are logged (debug), escaped. */
static void
test_log_escaped(void **state)
{
	static const char text[] = "MaxConnections=1\nforged\0TargetAlias=x";
	struct peer p;

	(void)state;
	peer_open(&p, true);
	mutual_round(&p, "7", true, NULL);
	peer_read(&p); /* our operational offer */
	g_log[0] = '\0';
	iserd_set_log_fn(p.pub, capture_log, NULL);
	iserd_set_log_level(p.pub, ISERD_LOG_DEBUG);
	assert_int_equal(peer_send(&p, false, text, sizeof(text)), 0);
	assert_non_null(strstr(g_log, "MaxConnections=1\\x0aforged"));
	assert_null(strchr(g_log, '\n'));
	peer_close(&p);
}

/* Values from the target reach the error message escaped: one line, no raw bytes. */
static void
test_error_message_escaped(void **state)
{
	static const char evil[] = "5\nlogin succeeded\x1b[2J";
	char text[128];
	struct peer p;
	const char *err;
	int n;

	(void)state;
	peer_open(&p, false);
	login_to_chap_a(&p);
	assert_true(send_challenge(&p, evil, 1, CHAL_HEX) < 0);
	err = iserd_get_error(p.pub);
	assert_null(strchr(err, '\n'));
	assert_null(strchr(err, '\x1b'));
	assert_non_null(strstr(err, "CHAP_A=5\\x0alogin succeeded\\x1b[2J"));
	peer_close(&p);

	peer_open(&p, false);
	login_to_chap_a(&p);
	n = snprintf(text, sizeof(text), "CHAP_A=7%cCHAP_I=1\r\n%cCHAP_C=%s", 0, 0, CHAL_HEX);
	assert_true(peer_send(&p, false, text, (size_t)n + 1) < 0);
	err = iserd_get_error(p.pub);
	assert_null(strchr(err, '\n'));
	assert_non_null(strstr(err, "'1\\x0d\\x0a'"));
	peer_close(&p);

	/* a redirection's TargetAddress in a failed login's message */
	peer_open(&p, false);
	assert_int_equal(isd_init_login_start(&p.pub->c), 0);
	assert_int_equal(iserd_service(p.pub, POLLOUT), 0);
	peer_read(&p);
	{
		static const char addr[] = "TargetAddress=10.0.0.1:3260,1\nforged line";
		struct isd_ictx *c = &p.pub->c;
		uint8_t pdu[ISD_BHS_LEN + 64];
		size_t total = ISD_BHS_LEN + sizeof(addr) + isd_pad4(sizeof(addr));

		memset(pdu, 0, sizeof(pdu));
		pdu[0] = ISD_OP_LOGIN_RSP;
		put_be24(pdu + 5, sizeof(addr));
		put_be32(pdu + 16, c->login_itt);
		put_be16(pdu + 36, 0x0101); /* redirected, moved temporarily */
		memcpy(pdu + ISD_BHS_LEN, addr, sizeof(addr));
		assert_int_equal(write(p.fd, pdu, total), (ssize_t)total);
		assert_true(service(&p) < 0);
		err = iserd_get_error(p.pub);
		assert_null(strchr(err, '\n'));
		assert_non_null(strstr(err, "10.0.0.1:3260,1\\x0aforged line"));
	}
	peer_close(&p);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_offers_strongest_first),
	    cmocka_unit_test(test_offer_configured),
	    cmocka_unit_test(test_response_per_algorithm),
	    cmocka_unit_test(test_algorithm_not_offered_refused),
	    cmocka_unit_test(test_malformed_challenge_refused),
	    cmocka_unit_test(test_mutual_same_algorithm),
	    cmocka_unit_test(test_reflected_challenge_refused),
	    cmocka_unit_test(test_error_message_escaped),
	    cmocka_unit_test(test_log_escaped),
	};

	return cmocka_run_group_tests_name("initiator_chap_login", tests, NULL, NULL);
}
