/*
 * Unit tests for src/iscsi/chap.c. The expected digests were computed by hand:
 *   printf '\x07verysecretpw\x00\x01...\x0f' | openssl dgst -md5   (and -sha1, -sha256, -sha3-256)
 *   printf '\x2amutualsecret1\xaa\xbb\xcc\xdd\xee\xff\x11\x22' | openssl dgst -md5
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "iscsi/chap.h"
#include "iscsi/keys.h"

#define SECRET "verysecretpw"
#define USER "iqn.1994-05.com.example:ini"
#define MD5_RESP "0x7c9f698705fb2dd681fed4c083dd6349"
#define MUTUAL_SECRET "mutualsecret1"
#define MUTUAL_RESP "0x9a0d8aae54237aef8744a96ee0528a3d"
#define INI_CHAL "0xaabbccddeeff1122"

static void
fixed_target(struct isd_chap_target *c, int alg)
{
	memset(c, 0, sizeof(*c));
	c->alg = alg;
	c->id = 7;
	c->challenge_len = 16;
	for (int i = 0; i < 16; i++)
		c->challenge[i] = (uint8_t)i;
}

static void
test_digest_vectors(void **state)
{
	static const struct {
		int alg;
		const char *hex;
	} cases[] = {
		{ ISD_CHAP_MD5, "0x7c9f698705fb2dd681fed4c083dd6349" },
		{ ISD_CHAP_SHA1, "0xfa95de5727a4a5511045c8586f2d463c6f44af61" },
		{ ISD_CHAP_SHA256, "0x012ede9f8a50698ec49c4407f84ea86bc505df646d08123f3b2a75bbee228f61" },
		{ ISD_CHAP_SHA3_256,
		  "0x35a8edf0e7f838bff4c8bd95d2d86de3679372ac885833e84d5ad7f42a02afb9" },
	};
	struct isd_chap_target c;
	uint8_t out[ISD_CHAP_MAX_DIGEST];
	char hex[2 * ISD_CHAP_MAX_DIGEST + 3];

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int n;

		fixed_target(&c, cases[i].alg);
		n = isd_chap_response(c.alg, c.id, SECRET, c.challenge, c.challenge_len, out,
				      sizeof(out));
		assert_int_equal(n, (int)isd_chap_digest_len(cases[i].alg));
		assert_int_equal(isd_key_format_hex(out, (size_t)n, hex, sizeof(hex)), 0);
		assert_string_equal(hex, cases[i].hex);
	}
	assert_int_equal(isd_chap_digest_len(5), 16);
	assert_int_equal(isd_chap_digest_len(6), 20);
	assert_int_equal(isd_chap_digest_len(7), 32);
	assert_int_equal(isd_chap_digest_len(8), 32);
	assert_int_equal(isd_chap_digest_len(9), 0);
	assert_int_equal(isd_chap_response(9, 0, "x", NULL, 0, out, sizeof(out)), -EINVAL);
	assert_int_equal(isd_chap_response(ISD_CHAP_MD5, 0, "x", NULL, 0, out, 15), -ENOSPC);
}

static void
test_pick_alg(void **state)
{
	(void)state;
	assert_int_equal(isd_chap_pick_alg("5", 0), 5);
	/* the strongest listed wins, whatever the order: MD5 is never picked beside another */
	assert_int_equal(isd_chap_pick_alg("7,6,5", 0), 7);
	assert_int_equal(isd_chap_pick_alg("5,7", 0), 7);
	assert_int_equal(isd_chap_pick_alg("5,6", 0), 6);
	assert_int_equal(isd_chap_pick_alg("5,8,7,6", 0), 8);
	assert_int_equal(isd_chap_pick_alg("7,6", 0), 7);
	assert_int_equal(isd_chap_pick_alg("8,6", 0), 8);
	assert_int_equal(isd_chap_pick_alg("0x5", 0), 5);
	assert_int_equal(isd_chap_pick_alg("99,x,,6", 0), 6);
	assert_int_equal(isd_chap_pick_alg("1,2,3", 0), -ENOTSUP);
	assert_int_equal(isd_chap_pick_alg("", 0), -ENOTSUP);
	assert_int_equal(isd_chap_pick_alg("261", 0), -ENOTSUP);  /* 261 & 0xff == 5 */
	assert_int_equal(isd_chap_pick_alg("37", 0), -ENOTSUP);   /* 1 << 37 would overflow */
	assert_int_equal(isd_chap_pick_alg(NULL, 0), -ENOTSUP);
	/* an allowed mask narrows the choice */
	assert_int_equal(isd_chap_pick_alg("5,7", ISD_CHAP_ALG_BIT(5)), 5);
	assert_int_equal(isd_chap_pick_alg("5,7,8", ISD_CHAP_ALG_BIT(7) | ISD_CHAP_ALG_BIT(6)), 7);
	assert_int_equal(isd_chap_pick_alg("5", ISD_CHAP_ALG_BIT(7)), -ENOTSUP);
}

static void
test_target_challenge(void **state)
{
	struct isd_chap_target c, c2;
	char a[8], i[8], ch[64];
	uint8_t bin[32];

	(void)state;
	assert_int_equal(isd_chap_target_challenge(&c, "5,7", 0, a, sizeof(a), i, sizeof(i), ch,
						   sizeof(ch)), 0);
	assert_string_equal(a, "7");
	assert_int_equal(c.alg, 7);
	assert_int_equal(isd_chap_target_challenge(&c, "7,5", ISD_CHAP_ALG_BIT(5), a, sizeof(a), i,
						   sizeof(i), ch, sizeof(ch)), 0);
	assert_string_equal(a, "5");
	assert_int_equal(c.alg, 5);
	assert_int_equal(c.challenge_len, ISD_CHAP_CHALLENGE_LEN);
	assert_int_equal(strlen(ch), 2 + 2 * ISD_CHAP_CHALLENGE_LEN);
	assert_int_equal(isd_key_parse_binary(ch, bin, sizeof(bin)), ISD_CHAP_CHALLENGE_LEN);
	assert_memory_equal(bin, c.challenge, ISD_CHAP_CHALLENGE_LEN);
	assert_int_equal(atoi(i), c.id);
	/* a second challenge differs (random) */
	assert_int_equal(isd_chap_target_challenge(&c2, "5", 0, a, sizeof(a), i, sizeof(i), ch,
						   sizeof(ch)), 0);
	assert_memory_not_equal(c.challenge, c2.challenge, ISD_CHAP_CHALLENGE_LEN);
	/* no acceptable algorithm */
	assert_int_equal(isd_chap_target_challenge(&c, "1,2", 0, a, sizeof(a), i, sizeof(i), ch,
						   sizeof(ch)), -ENOTSUP);
	/* output too small */
	assert_int_equal(isd_chap_target_challenge(&c, "5", 0, a, sizeof(a), i, sizeof(i), ch, 20),
			 -ENOSPC);
}

/* The whole exchange, with an initiator computed by isd_chap_response. */
static void
test_roundtrip_sha256(void **state)
{
	struct isd_chap_target c;
	char a[8], i[8], ch[64], r[80];
	uint8_t out[32];
	int n;

	(void)state;
	assert_int_equal(isd_chap_target_challenge(&c, "7", 0, a, sizeof(a), i, sizeof(i), ch,
						   sizeof(ch)), 0);
	assert_string_equal(a, "7");
	n = isd_chap_response(7, (uint8_t)atoi(i), SECRET, c.challenge, c.challenge_len, out,
			      sizeof(out));
	assert_int_equal(n, 32);
	assert_int_equal(isd_key_format_hex(out, 32, r, sizeof(r)), 0);
	assert_int_equal(isd_chap_target_verify(&c, USER, SECRET, USER, r, NULL, NULL, NULL, NULL,
						NULL, 0, NULL, 0), 0);
}

static void
test_verify_one_way(void **state)
{
	struct isd_chap_target c;

	(void)state;
	fixed_target(&c, ISD_CHAP_MD5);
	assert_int_equal(isd_chap_target_verify(&c, USER, SECRET, USER, MD5_RESP, NULL, NULL, NULL,
						NULL, NULL, 0, NULL, 0), 0);
	/* upper-case hex and base64 are the same value */
	assert_int_equal(isd_chap_target_verify(&c, USER, SECRET, USER,
						"0x7C9F698705FB2DD681FED4C083DD6349", NULL, NULL,
						NULL, NULL, NULL, 0, NULL, 0), 0);
	assert_int_equal(isd_chap_target_verify(&c, USER, SECRET, USER,
						"0bfJ9phwX7LdaB/tTAg91jSQ==", NULL, NULL, NULL,
						NULL, NULL, 0, NULL, 0), 0);
}

static void
test_verify_wrong_secret_or_name(void **state)
{
	struct isd_chap_target c;

	(void)state;
	fixed_target(&c, ISD_CHAP_MD5);
	assert_int_equal(isd_chap_target_verify(&c, USER, "anothersecret", USER, MD5_RESP, NULL,
						NULL, NULL, NULL, NULL, 0, NULL, 0), -EACCES);
	assert_int_equal(isd_chap_target_verify(&c, USER, SECRET, "iqn.evil", MD5_RESP, NULL, NULL,
						NULL, NULL, NULL, 0, NULL, 0), -EACCES);
	/* one flipped bit */
	assert_int_equal(isd_chap_target_verify(&c, USER, SECRET, USER,
						"0x7c9f698705fb2dd681fed4c083dd6348", NULL, NULL,
						NULL, NULL, NULL, 0, NULL, 0), -EACCES);
	/* same response against another identifier */
	c.id = 8;
	assert_int_equal(isd_chap_target_verify(&c, USER, SECRET, USER, MD5_RESP, NULL, NULL, NULL,
						NULL, NULL, 0, NULL, 0), -EACCES);
}

static void
test_verify_malformed(void **state)
{
	struct isd_chap_target c;
	static const char *const bad_r[] = {
		"7c9f698705fb2dd681fed4c083dd6349",             /* no prefix */
		"0x7c9f698705fb2dd681fed4c083dd63",             /* too short */
		"0x7c9f698705fb2dd681fed4c083dd634900",         /* too long */
		"0x7c9f698705fb2dd681fed4c083dd634g",           /* not hex */
		"0x",
		"",
		"0b!!!!",
	};
	char n[64], r[80];

	(void)state;
	fixed_target(&c, ISD_CHAP_MD5);
	for (size_t i = 0; i < sizeof(bad_r) / sizeof(bad_r[0]); i++) {
		if (isd_chap_target_verify(&c, USER, SECRET, USER, bad_r[i], NULL, NULL, NULL, NULL,
					   NULL, 0, NULL, 0) != -EINVAL)
			fail_msg("CHAP_R '%s' not rejected as malformed", bad_r[i]);
	}
	assert_int_equal(isd_chap_target_verify(&c, USER, SECRET, NULL, MD5_RESP, NULL, NULL, NULL,
						NULL, NULL, 0, NULL, 0), -EINVAL);
	assert_int_equal(isd_chap_target_verify(&c, USER, SECRET, USER, NULL, NULL, NULL, NULL,
						NULL, NULL, 0, NULL, 0), -EINVAL);
	/* an empty secret is never acceptable */
	assert_int_equal(isd_chap_target_verify(&c, USER, "", USER, MD5_RESP, NULL, NULL, NULL,
						NULL, NULL, 0, NULL, 0), -EINVAL);
	/* mutual: CHAP_I out of range or garbage, CHAP_C malformed, only half of the pair */
	static const struct {
		const char *i, *c;
	} bad_mutual[] = {
		{ "256", INI_CHAL }, { "-1", INI_CHAL }, { "x", INI_CHAL }, { "", INI_CHAL },
		{ "42", "0x" }, { "42", "aabb" }, { "42", "0xzz" }, { "42", NULL }, { NULL, INI_CHAL },
	};
	for (size_t i = 0; i < sizeof(bad_mutual) / sizeof(bad_mutual[0]); i++) {
		if (isd_chap_target_verify(&c, USER, SECRET, USER, MD5_RESP, bad_mutual[i].i,
					   bad_mutual[i].c, "tgt", MUTUAL_SECRET, n, sizeof(n), r,
					   sizeof(r)) != -EINVAL)
			fail_msg("mutual case %zu not rejected", i);
	}
}

static void
test_verify_challenge_length_limits(void **state)
{
	struct isd_chap_target c;
	char big[2 + 2 * 1025 + 1];
	char n[64], r[80];

	(void)state;
	fixed_target(&c, ISD_CHAP_MD5);
	/* 1024 bytes of initiator challenge are fine, 1025 are not */
	memset(big, 0, sizeof(big));
	big[0] = '0';
	big[1] = 'x';
	memset(big + 2, 'a', 2 * 1024);
	assert_int_equal(isd_chap_target_verify(&c, USER, SECRET, USER, MD5_RESP, "1", big, "tgt",
						MUTUAL_SECRET, n, sizeof(n), r, sizeof(r)), 0);
	memset(big + 2, 'a', 2 * 1025);
	assert_int_equal(isd_chap_target_verify(&c, USER, SECRET, USER, MD5_RESP, "1", big, "tgt",
						MUTUAL_SECRET, n, sizeof(n), r, sizeof(r)), -EINVAL);
}

static void
test_verify_mutual(void **state)
{
	struct isd_chap_target c;
	char n[64], r[80];

	(void)state;
	fixed_target(&c, ISD_CHAP_MD5);
	assert_int_equal(isd_chap_target_verify(&c, USER, SECRET, USER, MD5_RESP, "42", INI_CHAL,
						"iqn.tgt", MUTUAL_SECRET, n, sizeof(n), r, sizeof(r)),
			 0);
	assert_string_equal(n, "iqn.tgt");
	assert_string_equal(r, MUTUAL_RESP);
	/* base64 challenge, hex identifier */
	assert_int_equal(isd_chap_target_verify(&c, USER, SECRET, USER, MD5_RESP, "0x2a",
						"0bqrvM3e7/ESI=", "iqn.tgt", MUTUAL_SECRET, n,
						sizeof(n), r, sizeof(r)), 0);
	assert_string_equal(r, MUTUAL_RESP);
	/* the initiator must prove itself before we answer */
	r[0] = '\0';
	assert_int_equal(isd_chap_target_verify(&c, USER, "wrongsecret1", USER, MD5_RESP, "42",
						INI_CHAL, "iqn.tgt", MUTUAL_SECRET, n, sizeof(n), r,
						sizeof(r)), -EACCES);
	assert_string_equal(r, "");
	/* no mutual secret configured */
	assert_int_equal(isd_chap_target_verify(&c, USER, SECRET, USER, MD5_RESP, "42", INI_CHAL,
						"iqn.tgt", NULL, n, sizeof(n), r, sizeof(r)),
			 -EPERM);
	assert_int_equal(isd_chap_target_verify(&c, USER, SECRET, USER, MD5_RESP, "42", INI_CHAL,
						"iqn.tgt", "", n, sizeof(n), r, sizeof(r)),
			 -EPERM);
	/* output buffers too small */
	assert_int_equal(isd_chap_target_verify(&c, USER, SECRET, USER, MD5_RESP, "42", INI_CHAL,
						"iqn.tgt", MUTUAL_SECRET, n, 4, r, sizeof(r)),
			 -ENOSPC);
	assert_int_equal(isd_chap_target_verify(&c, USER, SECRET, USER, MD5_RESP, "42", INI_CHAL,
						"iqn.tgt", MUTUAL_SECRET, n, sizeof(n), r, 10),
			 -ENOSPC);
}

static void
test_verify_reflected_challenge(void **state)
{
	struct isd_chap_target c;
	char n[64], r[80];

	(void)state;
	fixed_target(&c, ISD_CHAP_MD5);
	/* RFC 7143 §12.1.3: our own challenge sent back as the initiator's */
	assert_int_equal(isd_chap_target_verify(&c, USER, SECRET, USER, MD5_RESP, "7",
						"0x000102030405060708090a0b0c0d0e0f", "iqn.tgt",
						MUTUAL_SECRET, n, sizeof(n), r, sizeof(r)),
			 -EPERM);
	/* ... also when re-encoded in base64 */
	assert_int_equal(isd_chap_target_verify(&c, USER, SECRET, USER, MD5_RESP, "9",
						"0bAAECAwQFBgcICQoLDA0ODw==", "iqn.tgt",
						MUTUAL_SECRET, n, sizeof(n), r, sizeof(r)),
			 -EPERM);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_digest_vectors),
		cmocka_unit_test(test_pick_alg),
		cmocka_unit_test(test_target_challenge),
		cmocka_unit_test(test_roundtrip_sha256),
		cmocka_unit_test(test_verify_one_way),
		cmocka_unit_test(test_verify_wrong_secret_or_name),
		cmocka_unit_test(test_verify_malformed),
		cmocka_unit_test(test_verify_challenge_length_limits),
		cmocka_unit_test(test_verify_mutual),
		cmocka_unit_test(test_verify_reflected_challenge),
	};

	return cmocka_run_group_tests_name("chap", tests, NULL, NULL);
}
