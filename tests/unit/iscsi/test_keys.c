/* Unit tests for src/iscsi/keys.c: text parsing, value parsing, the negotiation engine. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "iscsi/keys.h"
#include "iscsi/pdu.h"

/* A string literal with embedded NULs, as a (bytes, length) pair; the literal's own
 * terminating NUL is not counted, so "a=1\0" is exactly 4 bytes. */
#define TXT(s) (const uint8_t *)(s), (uint32_t)(sizeof(s) - 1)

/* ---- isd_kv_parse ---- */

static void
test_kv_parse_basic(void **state)
{
	struct isd_kv_list l;

	(void)state;
	assert_int_equal(isd_kv_parse(TXT("InitiatorName=iqn.x\0HeaderDigest=None\0a.b-c+d@e_f=\0"),
				      &l), 0);
	assert_int_equal(l.count, 3);
	assert_string_equal(l.kv[0].key, "InitiatorName");
	assert_string_equal(l.kv[0].value, "iqn.x");
	assert_string_equal(isd_kv_get(&l, "HeaderDigest"), "None");
	assert_string_equal(isd_kv_get(&l, "a.b-c+d@e_f"), "");
	assert_null(isd_kv_get(&l, "DataDigest"));
	isd_kv_list_fini(&l);
	isd_kv_list_fini(&l); /* idempotent */
}

static void
test_kv_parse_value_with_equals(void **state)
{
	struct isd_kv_list l;

	(void)state;
	assert_int_equal(isd_kv_parse(TXT("CHAP_C=0b3q==\0"), &l), 0);
	assert_string_equal(l.kv[0].value, "0b3q==");
	isd_kv_list_fini(&l);
}

static void
test_kv_parse_padding_and_empty(void **state)
{
	struct isd_kv_list l;

	(void)state;
	assert_int_equal(isd_kv_parse(TXT("a=1\0\0\0\0"), &l), 0);
	assert_int_equal(l.count, 1);
	isd_kv_list_fini(&l);
	assert_int_equal(isd_kv_parse(NULL, 0, &l), 0);
	assert_int_equal(l.count, 0);
	isd_kv_list_fini(&l);
	assert_int_equal(isd_kv_parse(TXT("\0\0\0\0"), &l), 0);
	assert_int_equal(l.count, 0);
	isd_kv_list_fini(&l);
}

static void
test_kv_parse_malformed(void **state)
{
	static const struct {
		const char *what;
		const char *text;
		uint32_t len;
	} cases[] = {
		{ "missing final NUL", "a=1", 3 },
		{ "missing NUL after second pair", "a=1\0b=2", 7 },
		{ "no '='", "abc\0", 4 },
		{ "empty key", "=1\0", 3 },
		{ "bad key character", "a b=1\0", 6 },
		{ "key with slash", "a/b=1\0", 6 },
		{ "pair after padding", "a=1\0\0b=2\0", 9 },
	};
	struct isd_kv_list l;

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		if (isd_kv_parse((const uint8_t *)cases[i].text, cases[i].len, &l) != -EINVAL)
			fail_msg("'%s' accepted", cases[i].what);
		assert_null(l.storage);
	}
}

static void
test_kv_parse_limits(void **state)
{
	struct isd_kv_list l;
	size_t cap = 16384;
	char *buf = calloc(1, cap);
	uint32_t n;

	(void)state;
	assert_non_null(buf);
	/* key of exactly 63 bytes is fine, 64 is not */
	memset(buf, 'k', 63);
	buf[63] = '=';
	buf[64] = 'v';
	assert_int_equal(isd_kv_parse((uint8_t *)buf, 66, &l), 0);
	isd_kv_list_fini(&l);
	memset(buf, 'k', 64);
	buf[64] = '=';
	buf[65] = 'v';
	buf[66] = '\0';
	assert_int_equal(isd_kv_parse((uint8_t *)buf, 67, &l), -EINVAL);

	/* value of ISD_KEY_VALUE_MAX bytes is fine, one more is not */
	memset(buf, 0, cap);
	memcpy(buf, "CHAP_C=", 7);
	memset(buf + 7, 'a', ISD_KEY_VALUE_MAX);
	assert_int_equal(isd_kv_parse((uint8_t *)buf, 7 + ISD_KEY_VALUE_MAX + 1, &l), 0);
	isd_kv_list_fini(&l);
	memset(buf + 7, 'a', ISD_KEY_VALUE_MAX + 1);
	assert_int_equal(isd_kv_parse((uint8_t *)buf, 7 + ISD_KEY_VALUE_MAX + 2, &l), -EINVAL);

	/* ISD_KV_MAX pairs are fine, one more is not */
	memset(buf, 0, cap);
	n = 0;
	for (int i = 0; i < ISD_KV_MAX; i++) {
		memcpy(buf + n, "X-a=1", 6);
		n += 6;
	}
	assert_int_equal(isd_kv_parse((uint8_t *)buf, n, &l), 0);
	assert_int_equal(l.count, ISD_KV_MAX);
	isd_kv_list_fini(&l);
	memcpy(buf + n, "X-a=1", 6);
	n += 6;
	assert_int_equal(isd_kv_parse((uint8_t *)buf, n, &l), -EINVAL);
	free(buf);
}

/* ---- text buffer ---- */

static void
test_text_buf(void **state)
{
	struct isd_text_buf b;

	(void)state;
	isd_text_buf_init(&b);
	assert_int_equal(isd_text_append(&b, "A", "1"), 0);
	assert_int_equal(isd_text_appendf(&b, "B", "%u", 42u), 0);
	assert_int_equal(b.len, 9);
	assert_memory_equal(b.buf, "A=1\0B=42\0", 9);
	/* grow well past the first allocation, including a long formatted value */
	for (int i = 0; i < 200; i++)
		assert_int_equal(isd_text_appendf(&b, "LongKeyName", "%0200d", i), 0);
	assert_int_equal(b.len, 9 + 200 * (11 + 1 + 200 + 1));
	assert_false(b.oom);
	isd_text_buf_fini(&b);
	assert_null(b.buf);
	assert_int_equal(b.len, 0);
}

/* ---- value parsing ---- */

static void
test_parse_u64(void **state)
{
	static const struct {
		const char *s;
		int rc;
		uint64_t v;
	} cases[] = {
		{ "0", 0, 0 },
		{ "8192", 0, 8192 },
		{ "0x2000", 0, 8192 },
		{ "0X2000", 0, 8192 },
		{ "0xffffffffffffffff", 0, UINT64_MAX },
		{ "18446744073709551615", 0, UINT64_MAX },
		{ "18446744073709551616", -EINVAL, 0 },
		{ "0x10000000000000000", -EINVAL, 0 },
		{ "", -EINVAL, 0 },
		{ "0x", -EINVAL, 0 },
		{ "-1", -EINVAL, 0 },
		{ "+1", -EINVAL, 0 },
		{ " 1", -EINVAL, 0 },
		{ "1 ", -EINVAL, 0 },
		{ "12a", -EINVAL, 0 },
		{ "0xg", -EINVAL, 0 },
		{ "Yes", -EINVAL, 0 },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		uint64_t v = 12345;
		int rc = isd_key_parse_u64(cases[i].s, &v);

		if (rc != cases[i].rc || (rc == 0 && v != cases[i].v))
			fail_msg("'%s': rc %d v %llu", cases[i].s, rc, (unsigned long long)v);
	}
	assert_int_equal(isd_key_parse_u64(NULL, &(uint64_t){ 0 }), -EINVAL);
}

static void
test_parse_bool(void **state)
{
	bool b = false;

	(void)state;
	assert_int_equal(isd_key_parse_bool("Yes", &b), 0);
	assert_true(b);
	assert_int_equal(isd_key_parse_bool("No", &b), 0);
	assert_false(b);
	assert_int_equal(isd_key_parse_bool("yes", &b), -EINVAL);
	assert_int_equal(isd_key_parse_bool("", &b), -EINVAL);
	assert_int_equal(isd_key_parse_bool("Yes ", &b), -EINVAL);
	assert_int_equal(isd_key_parse_bool("1", &b), -EINVAL);
}

static void
test_parse_binary(void **state)
{
	uint8_t out[16];
	static const uint8_t seq[16] = { 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15 };

	(void)state;
	assert_int_equal(isd_key_parse_binary("0x000102030405060708090a0B0c0d0e0f", out, 16), 16);
	assert_memory_equal(out, seq, 16);
	assert_int_equal(isd_key_parse_binary("0bAAECAwQFBgcICQoLDA0ODw==", out, 16), 16);
	assert_memory_equal(out, seq, 16);
	assert_int_equal(isd_key_parse_binary("0Bqrvd", out, 16), 3);
	assert_memory_equal(out, "\xaa\xbb\xdd", 3);
	assert_int_equal(isd_key_parse_binary("0bqrvM3e7/ESI=", out, 16), 8);
	assert_memory_equal(out, "\xaa\xbb\xcc\xdd\xee\xff\x11\x22", 8);
	assert_int_equal(isd_key_parse_binary("0bqg==", out, 16), 1);
	assert_int_equal(out[0], 0xaa);
	/* odd hex digit count: implied leading zero */
	assert_int_equal(isd_key_parse_binary("0xabc", out, 16), 2);
	assert_memory_equal(out, "\x0a\xbc", 2);
	/* malformed */
	assert_int_equal(isd_key_parse_binary("0x", out, 16), -EINVAL);
	assert_int_equal(isd_key_parse_binary("0b", out, 16), -EINVAL);
	assert_int_equal(isd_key_parse_binary("0xzz", out, 16), -EINVAL);
	assert_int_equal(isd_key_parse_binary("0x0g", out, 16), -EINVAL);
	assert_int_equal(isd_key_parse_binary("1234", out, 16), -EINVAL);
	assert_int_equal(isd_key_parse_binary("", out, 16), -EINVAL);
	assert_int_equal(isd_key_parse_binary("0", out, 16), -EINVAL);
	assert_int_equal(isd_key_parse_binary("0bqrv", out, 16), -EINVAL);      /* not 4n */
	assert_int_equal(isd_key_parse_binary("0bq=v=", out, 16), -EINVAL);
	assert_int_equal(isd_key_parse_binary("0b====", out, 16), -EINVAL);
	assert_int_equal(isd_key_parse_binary("0bqr=v", out, 16), -EINVAL);
	assert_int_equal(isd_key_parse_binary("0bq*vd", out, 16), -EINVAL);
	/* too long for the buffer */
	assert_int_equal(isd_key_parse_binary("0x0001020304", out, 4), -EINVAL);
	assert_int_equal(isd_key_parse_binary("0bAAECAwQ=", out, 3), -EINVAL);
}

static void
test_format_hex(void **state)
{
	char out[16];

	(void)state;
	assert_int_equal(isd_key_format_hex((const uint8_t *)"\x01\xab\xff", 3, out, 9), 0);
	assert_string_equal(out, "0x01abff");
	assert_int_equal(isd_key_format_hex((const uint8_t *)"\x01\xab\xff", 3, out, 8), -ENOSPC);
	assert_int_equal(isd_key_format_hex(NULL, 0, out, 3), 0);
	assert_string_equal(out, "0x");
	assert_int_equal(isd_key_format_hex(NULL, 0, out, 2), -ENOSPC);
}

/* ---- negotiation ---- */

struct neg {
	struct isd_key_policy pol;
	struct isd_keys k;
	struct isd_text_buf rsp;
	struct isd_kv_list ans;
};

static int
neg_setup(void **state)
{
	struct neg *n = calloc(1, sizeof(*n));

	if (n == NULL)
		return -1;
	isd_key_policy_init(&n->pol);
	isd_keys_init(&n->k, &n->pol, true);
	isd_text_buf_init(&n->rsp);
	*state = n;
	return 0;
}

static int
neg_teardown(void **state)
{
	struct neg *n = *state;

	isd_text_buf_fini(&n->rsp);
	isd_kv_list_fini(&n->ans);
	free(n);
	return 0;
}

/* Re-initialises the negotiation with the (modified) policy. */
static void
neg_reset(struct neg *n, bool leading, enum isd_session_type type)
{
	isd_keys_init(&n->k, &n->pol, leading);
	n->k.params.session_type = type;
	isd_text_buf_fini(&n->rsp);
	isd_text_buf_init(&n->rsp);
	isd_kv_list_fini(&n->ans);
}

/* Negotiates `text` and parses the response into n->ans. Returns the negotiate rc. */
static int
neg_run(struct neg *n, const uint8_t *text, uint32_t len)
{
	struct isd_kv_list req;
	int rc;

	assert_int_equal(isd_kv_parse(text, len, &req), 0);
	rc = isd_keys_negotiate(&n->k, &req, &n->rsp);
	isd_kv_list_fini(&req);
	isd_kv_list_fini(&n->ans);
	assert_int_equal(isd_kv_parse((const uint8_t *)n->rsp.buf, n->rsp.len, &n->ans), 0);
	return rc;
}

/* One key=value through a fresh leading normal session; returns the answer (or NULL). */
static const char *
neg_one(struct neg *n, const char *key, const char *value)
{
	char text[512];
	int len = snprintf(text, sizeof(text), "%s=%s", key, value);

	neg_reset(n, true, ISD_SESSION_NORMAL);
	assert_int_equal(neg_run(n, (const uint8_t *)text, (uint32_t)len + 1), 0);
	return isd_kv_get(&n->ans, key);
}

static void
expect_answer(struct neg *n, const char *key, const char *value, const char *want)
{
	const char *got = neg_one(n, key, value);

	if (want == NULL && got == NULL)
		return;
	if (want == NULL || got == NULL || strcmp(got, want) != 0)
		fail_msg("%s=%s: answer '%s', want '%s'", key, value, got ? got : "(none)",
			 want ? want : "(none)");
}

/* Like expect_answer, on a session that negotiated RDMAExtensions=Yes first. */
static void
expect_iser_answer(struct neg *n, const char *key, const char *value, const char *want)
{
	char text[512];
	int len = snprintf(text, sizeof(text), "RDMAExtensions=Yes%c%s=%s", '\0', key, value);
	const char *got;

	neg_reset(n, true, ISD_SESSION_NORMAL);
	assert_int_equal(neg_run(n, (const uint8_t *)text, (uint32_t)len + 1), 0);
	assert_string_equal(isd_kv_get(&n->ans, "RDMAExtensions"), "Yes");
	got = isd_kv_get(&n->ans, key);
	if (got == NULL || strcmp(got, want) != 0)
		fail_msg("iSER %s=%s: answer '%s', want '%s'", key, value, got ? got : "(none)",
			 want);
}

static void
test_params_defaults(void **state)
{
	struct isd_params p;

	(void)state;
	isd_params_init_defaults(&p);
	/* RFC 7143 §13 defaults */
	assert_false(p.header_digest);
	assert_false(p.data_digest);
	assert_int_equal(p.max_connections, 1);
	assert_true(p.initial_r2t);
	assert_true(p.immediate_data);
	assert_int_equal(p.max_xmit_dsl, 8192);
	assert_int_equal(p.max_burst_length, 262144);
	assert_int_equal(p.first_burst_length, 65536);
	assert_int_equal(p.default_time2wait, 2);
	assert_int_equal(p.default_time2retain, 20);
	assert_int_equal(p.max_outstanding_r2t, 1);
	assert_true(p.data_pdu_in_order);
	assert_true(p.data_sequence_in_order);
	assert_int_equal(p.error_recovery_level, 0);
	assert_false(p.rdma_extensions);
	assert_int_equal(p.target_recv_dsl, 8192);
	assert_int_equal(p.initiator_recv_dsl, 8192);
	assert_int_equal(p.session_type, ISD_SESSION_NORMAL);
}

static void
test_neg_numeric_boundaries(void **state)
{
	struct neg *n = *state;
	static const struct {
		const char *key, *value, *want;
	} cases[] = {
		/* MaxBurstLength: min, 512..2^24-1; policy 1 MiB */
		{ "MaxBurstLength", "262144", "262144" },
		{ "MaxBurstLength", "16776192", "1048576" },
		{ "MaxBurstLength", "512", "512" },
		{ "MaxBurstLength", "511", "Reject" },
		{ "MaxBurstLength", "16777215", "1048576" },
		{ "MaxBurstLength", "16777216", "Reject" },
		{ "MaxBurstLength", "0x100000", "1048576" },
		{ "MaxBurstLength", "lots", "Reject" },
		{ "MaxBurstLength", "", "Reject" },
		/* FirstBurstLength: min, policy 65536 */
		{ "FirstBurstLength", "262144", "65536" },
		{ "FirstBurstLength", "4096", "4096" },
		{ "FirstBurstLength", "511", "Reject" },
		{ "FirstBurstLength", "16777216", "Reject" },
		/* MaxConnections: min, 1..65535; policy 1 */
		{ "MaxConnections", "1", "1" },
		{ "MaxConnections", "8", "1" },
		{ "MaxConnections", "65535", "1" },
		{ "MaxConnections", "0", "Reject" },
		{ "MaxConnections", "65536", "Reject" },
		/* DefaultTime2Wait: max, 0..3600; policy 2 */
		{ "DefaultTime2Wait", "0", "2" },
		{ "DefaultTime2Wait", "3600", "3600" },
		{ "DefaultTime2Wait", "3601", "Reject" },
		/* DefaultTime2Retain: min, 0..3600; policy 20 */
		{ "DefaultTime2Retain", "0", "0" },
		{ "DefaultTime2Retain", "3600", "20" },
		{ "DefaultTime2Retain", "3601", "Reject" },
		/* MaxOutstandingR2T: min, 1..65535; policy 1 */
		{ "MaxOutstandingR2T", "1", "1" },
		{ "MaxOutstandingR2T", "65535", "1" },
		{ "MaxOutstandingR2T", "0", "Reject" },
		{ "MaxOutstandingR2T", "65536", "Reject" },
		/* ErrorRecoveryLevel: min, 0..2; we do 0 */
		{ "ErrorRecoveryLevel", "0", "0" },
		{ "ErrorRecoveryLevel", "2", "0" },
		{ "ErrorRecoveryLevel", "3", "Reject" },
		/* iSCSIProtocolLevel: min, 0..31; we implement RFC 7143 (1) */
		{ "iSCSIProtocolLevel", "0", "0" },
		{ "iSCSIProtocolLevel", "31", "1" },
		{ "iSCSIProtocolLevel", "32", "Reject" },
		/* RFC 7145 keys on a session without RDMAExtensions=Yes */
		{ "MaxOutstandingUnexpectedPDUs", "4", "Irrelevant" },
		{ "MaxAHSLength", "256", "Irrelevant" },
		/* MaxRecvDataSegmentLength: declarative, answered with ours (262144) */
		{ "MaxRecvDataSegmentLength", "512", "262144" },
		{ "MaxRecvDataSegmentLength", "16777215", "262144" },
		{ "MaxRecvDataSegmentLength", "511", "Reject" },
		{ "MaxRecvDataSegmentLength", "16777216", "Reject" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		expect_answer(n, cases[i].key, cases[i].value, cases[i].want);
}

static void
test_neg_numeric_params(void **state)
{
	struct neg *n = *state;

	neg_reset(n, true, ISD_SESSION_NORMAL);
	assert_int_equal(neg_run(n, TXT("MaxRecvDataSegmentLength=65536\0MaxBurstLength=131072\0"
					"FirstBurstLength=32768\0DefaultTime2Wait=5\0"
					"DefaultTime2Retain=10\0ErrorRecoveryLevel=1\0")), 0);
	assert_int_equal(n->k.params.max_xmit_dsl, 65536);
	assert_int_equal(n->k.params.max_recv_dsl, 262144);
	assert_int_equal(n->k.params.max_burst_length, 131072);
	assert_int_equal(n->k.params.first_burst_length, 32768);
	assert_int_equal(n->k.params.default_time2wait, 5);
	assert_int_equal(n->k.params.default_time2retain, 10);
	assert_int_equal(n->k.params.error_recovery_level, 0);
	/* a Reject leaves the default */
	neg_reset(n, true, ISD_SESSION_NORMAL);
	assert_int_equal(neg_run(n, TXT("MaxRecvDataSegmentLength=1\0")), 0);
	assert_int_equal(n->k.params.max_xmit_dsl, 8192);
}

static void
test_neg_first_burst_clamped(void **state)
{
	struct neg *n = *state;

	/* FirstBurstLength listed before a smaller MaxBurstLength (RFC 7143 §13.14). */
	n->pol.first_burst_length = 262144;
	neg_reset(n, true, ISD_SESSION_NORMAL);
	assert_int_equal(neg_run(n, TXT("FirstBurstLength=262144\0MaxBurstLength=16384\0")), 0);
	assert_string_equal(isd_kv_get(&n->ans, "MaxBurstLength"), "16384");
	assert_string_equal(isd_kv_get(&n->ans, "FirstBurstLength"), "16384");
	assert_int_equal(n->k.params.first_burst_length, 16384);

	/* MaxBurstLength negotiated lower in a later PDU: the stored value is clamped. */
	neg_reset(n, true, ISD_SESSION_NORMAL);
	assert_int_equal(neg_run(n, TXT("FirstBurstLength=262144\0")), 0);
	assert_int_equal(n->k.params.first_burst_length, 262144);
	assert_int_equal(neg_run(n, TXT("MaxBurstLength=4096\0")), 0);
	assert_int_equal(n->k.params.first_burst_length, 4096);
	n->pol.first_burst_length = 65536;
}

static void
test_neg_booleans(void **state)
{
	struct neg *n = *state;

	/* InitialR2T: OR; our vote No */
	expect_answer(n, "InitialR2T", "No", "No");
	assert_false(n->k.params.initial_r2t);
	expect_answer(n, "InitialR2T", "Yes", "Yes");
	assert_true(n->k.params.initial_r2t);
	/* our vote Yes forces Yes */
	n->pol.initial_r2t = true;
	expect_answer(n, "InitialR2T", "No", "Yes");
	n->pol.initial_r2t = false;
	/* ImmediateData: AND; our vote Yes */
	expect_answer(n, "ImmediateData", "Yes", "Yes");
	assert_true(n->k.params.immediate_data);
	expect_answer(n, "ImmediateData", "No", "No");
	assert_false(n->k.params.immediate_data);
	n->pol.immediate_data = false;
	expect_answer(n, "ImmediateData", "Yes", "No");
	n->pol.immediate_data = true;
	/* DataPDUInOrder / DataSequenceInOrder: OR, we vote Yes */
	expect_answer(n, "DataPDUInOrder", "No", "Yes");
	expect_answer(n, "DataSequenceInOrder", "No", "Yes");
	assert_true(n->k.params.data_sequence_in_order);
	/* malformed booleans */
	expect_answer(n, "InitialR2T", "yes", "Reject");
	expect_answer(n, "ImmediateData", "", "Reject");
	expect_answer(n, "DataPDUInOrder", "1", "Reject");
	/* markers: always No, obsolete */
	expect_answer(n, "IFMarker", "Yes", "No");
	expect_answer(n, "OFMarker", "No", "No");
	expect_answer(n, "OFMarker", "Maybe", "Reject");
	expect_answer(n, "IFMarkInt", "2048~8192", "Irrelevant");
	expect_answer(n, "OFMarkInt", "2048", "Irrelevant");
}

static void
test_neg_digests(void **state)
{
	struct neg *n = *state;
	static const struct {
		bool allow, prefer, forbidden;
		const char *offer, *want;
		bool in_use;
	} cases[] = {
		{ true, false, false, "CRC32C,None", "CRC32C", true },
		{ true, false, false, "None,CRC32C", "None", false },
		{ true, true, false, "None,CRC32C", "CRC32C", true },
		{ true, false, false, "None", "None", false },
		{ true, false, false, "CRC32C", "CRC32C", true },
		{ false, false, false, "CRC32C,None", "None", false },
		{ false, true, false, "None,CRC32C", "None", false },
		{ false, false, false, "CRC32C", "Reject", false },
		{ true, true, true, "CRC32C,None", "None", false },
		{ true, false, true, "CRC32C", "Reject", false },
		{ true, false, false, "FancyDigest,CRC32C", "CRC32C", true },
		{ true, false, false, "FancyDigest", "Reject", false },
		{ true, false, false, "CRC32C,,None", "Reject", false },
		{ true, false, false, "", "Reject", false },
		{ true, false, false, "crc32c", "Reject", false },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		n->pol.allow_header_digest = cases[i].allow;
		n->pol.allow_data_digest = cases[i].allow;
		n->pol.prefer_digest = cases[i].prefer;
		n->pol.digests_forbidden = cases[i].forbidden;
		expect_answer(n, "HeaderDigest", cases[i].offer, cases[i].want);
		assert_int_equal(n->k.params.header_digest, cases[i].in_use);
		expect_answer(n, "DataDigest", cases[i].offer, cases[i].want);
		assert_int_equal(n->k.params.data_digest, cases[i].in_use);
	}
	/* header and data policies are separate */
	n->pol.allow_header_digest = true;
	n->pol.allow_data_digest = false;
	n->pol.prefer_digest = false;
	n->pol.digests_forbidden = false;
	neg_reset(n, true, ISD_SESSION_NORMAL);
	assert_int_equal(neg_run(n, TXT("HeaderDigest=CRC32C,None\0DataDigest=CRC32C,None\0")), 0);
	assert_string_equal(isd_kv_get(&n->ans, "HeaderDigest"), "CRC32C");
	assert_string_equal(isd_kv_get(&n->ans, "DataDigest"), "None");
	isd_key_policy_init(&n->pol);
}

static void
test_neg_discovery_irrelevant(void **state)
{
	struct neg *n = *state;
	static const char *const irrelevant[] = {
		"MaxConnections", "InitialR2T", "ImmediateData", "MaxBurstLength",
		"FirstBurstLength", "MaxOutstandingR2T", "DataPDUInOrder", "DataSequenceInOrder",
		"TaskReporting",
	};

	neg_reset(n, true, ISD_SESSION_DISCOVERY);
	assert_int_equal(neg_run(n, TXT("MaxConnections=1\0InitialR2T=Yes\0ImmediateData=No\0"
					"MaxBurstLength=262144\0FirstBurstLength=65536\0"
					"MaxOutstandingR2T=1\0DataPDUInOrder=Yes\0"
					"DataSequenceInOrder=Yes\0TaskReporting=RFC3720\0"
					"HeaderDigest=None\0DataDigest=None\0"
					"MaxRecvDataSegmentLength=8192\0DefaultTime2Wait=2\0"
					"DefaultTime2Retain=0\0ErrorRecoveryLevel=0\0")), 0);
	for (size_t i = 0; i < sizeof(irrelevant) / sizeof(irrelevant[0]); i++) {
		const char *v = isd_kv_get(&n->ans, irrelevant[i]);

		if (v == NULL || strcmp(v, "Irrelevant") != 0)
			fail_msg("%s answered '%s' in discovery", irrelevant[i], v ? v : "(none)");
	}
	/* the keys relevant to discovery are negotiated */
	assert_string_equal(isd_kv_get(&n->ans, "HeaderDigest"), "None");
	assert_string_equal(isd_kv_get(&n->ans, "DataDigest"), "None");
	assert_string_equal(isd_kv_get(&n->ans, "MaxRecvDataSegmentLength"), "262144");
	assert_string_equal(isd_kv_get(&n->ans, "DefaultTime2Wait"), "2");
	assert_string_equal(isd_kv_get(&n->ans, "DefaultTime2Retain"), "0");
	assert_string_equal(isd_kv_get(&n->ans, "ErrorRecoveryLevel"), "0");
	/* and the irrelevant ones did not touch the parameters */
	assert_true(n->k.params.immediate_data);
	assert_true(n->k.params.initial_r2t);
	assert_int_equal(n->k.params.max_burst_length, 262144);
}

static void
test_neg_non_leading(void **state)
{
	struct neg *n = *state;

	neg_reset(n, false, ISD_SESSION_NORMAL);
	assert_int_equal(neg_run(n, TXT("MaxBurstLength=4096\0HeaderDigest=None\0"
					"MaxRecvDataSegmentLength=4096\0")), 0);
	assert_string_equal(isd_kv_get(&n->ans, "MaxBurstLength"), "Irrelevant");
	assert_string_equal(isd_kv_get(&n->ans, "HeaderDigest"), "None");
	assert_int_equal(n->k.params.max_xmit_dsl, 4096);
}

static void
test_neg_duplicate_key(void **state)
{
	struct neg *n = *state;

	/* RFC 7143 §6.2: re-negotiating a key in the same login is an initiator error. */
	neg_reset(n, true, ISD_SESSION_NORMAL);
	assert_int_equal(neg_run(n, TXT("MaxBurstLength=4096\0MaxBurstLength=8192\0")),
			 ISD_LOGIN_STATUS_INIT_ERR);
	/* ... also across PDUs of one login */
	neg_reset(n, true, ISD_SESSION_NORMAL);
	assert_int_equal(neg_run(n, TXT("ImmediateData=Yes\0")), 0);
	assert_int_equal(neg_run(n, TXT("InitialR2T=Yes\0")), 0);
	assert_int_equal(neg_run(n, TXT("ImmediateData=No\0")), ISD_LOGIN_STATUS_INIT_ERR);
	/* ... and for declarations */
	neg_reset(n, true, ISD_SESSION_NORMAL);
	assert_int_equal(neg_run(n, TXT("MaxRecvDataSegmentLength=8192\0")), 0);
	assert_int_equal(neg_run(n, TXT("MaxRecvDataSegmentLength=8192\0")),
			 ISD_LOGIN_STATUS_INIT_ERR);
	/* ... even when the first attempt was rejected or irrelevant */
	neg_reset(n, true, ISD_SESSION_DISCOVERY);
	assert_int_equal(neg_run(n, TXT("MaxBurstLength=1\0")), 0);
	assert_int_equal(neg_run(n, TXT("MaxBurstLength=4096\0")), ISD_LOGIN_STATUS_INIT_ERR);
	/* skipped keys and unknown keys are not subject to it */
	neg_reset(n, true, ISD_SESSION_NORMAL);
	assert_int_equal(neg_run(n, TXT("InitiatorName=a\0X-foo=1\0")), 0);
	assert_int_equal(neg_run(n, TXT("InitiatorName=a\0X-foo=1\0")), 0);
}

static void
test_neg_unknown_and_skipped(void **state)
{
	struct neg *n = *state;

	neg_reset(n, true, ISD_SESSION_NORMAL);
	assert_int_equal(neg_run(n, TXT("InitiatorName=iqn.2000-01.x:y\0TargetName=iqn.t\0"
					"SessionType=Normal\0AuthMethod=None\0CHAP_A=5\0"
					"InitiatorAlias=host\0X-com.example.foo=1\0"
					"X#ext=2\0Bogus=3\0")), 0);
	assert_int_equal(n->ans.count, 3);
	assert_string_equal(isd_kv_get(&n->ans, "X-com.example.foo"), "NotUnderstood");
	assert_string_equal(isd_kv_get(&n->ans, "X#ext"), "NotUnderstood");
	assert_string_equal(isd_kv_get(&n->ans, "Bogus"), "NotUnderstood");
	/* answers from the initiator are not answered back */
	neg_reset(n, true, ISD_SESSION_NORMAL);
	assert_int_equal(neg_run(n, TXT("MaxBurstLength=Reject\0Bogus=NotUnderstood\0"
					"HeaderDigest=Irrelevant\0")), 0);
	assert_int_equal(n->ans.count, 0);
	assert_true(isd_key_is_known("MaxBurstLength"));
	assert_true(isd_key_is_known("CHAP_R"));
	assert_true(isd_key_is_known("RDMAExtensions"));
	assert_false(isd_key_is_known("maxburstlength"));
	assert_false(isd_key_is_known("X-foo"));
	assert_false(isd_key_is_known(NULL));
}

static void
test_neg_task_reporting(void **state)
{
	struct neg *n = *state;

	expect_answer(n, "TaskReporting", "RFC3720", "RFC3720");
	expect_answer(n, "TaskReporting", "FastAbort,RFC3720", "RFC3720");
	expect_answer(n, "TaskReporting", "FastAbort", "Reject");
}

static void
test_neg_iser_keys(void **state)
{
	struct neg *n = *state;

	/* TCP datamover: RDMAExtensions answered No, iSER keys irrelevant */
	neg_reset(n, true, ISD_SESSION_NORMAL);
	assert_int_equal(neg_run(n, TXT("InitiatorRecvDataSegmentLength=262144\0"
					"TargetRecvDataSegmentLength=8192\0RDMAExtensions=Yes\0")),
			 0);
	assert_string_equal(isd_kv_get(&n->ans, "RDMAExtensions"), "No");
	assert_false(n->k.params.rdma_extensions);
	assert_string_equal(isd_kv_get(&n->ans, "TargetRecvDataSegmentLength"), "Irrelevant");
	assert_string_equal(isd_kv_get(&n->ans, "InitiatorRecvDataSegmentLength"), "Irrelevant");

	/* iSER datamover: the open-iscsi offer, in its own order (RDSL keys first) */
	n->pol.rdma_capable = true;
	n->pol.digests_forbidden = true;
	n->pol.target_recv_dsl = 65536;
	neg_reset(n, true, ISD_SESSION_NORMAL);
	assert_int_equal(neg_run(n, TXT("DefaultTime2Wait=2\0DefaultTime2Retain=0\0IFMarker=No\0"
					"OFMarker=No\0ErrorRecoveryLevel=0\0InitialR2T=No\0"
					"ImmediateData=Yes\0MaxBurstLength=16776192\0"
					"FirstBurstLength=262144\0MaxOutstandingR2T=1\0"
					"MaxConnections=1\0DataPDUInOrder=Yes\0"
					"DataSequenceInOrder=Yes\0"
					"InitiatorRecvDataSegmentLength=262144\0"
					"TargetRecvDataSegmentLength=8192\0RDMAExtensions=Yes\0")),
			 0);
	assert_string_equal(isd_kv_get(&n->ans, "RDMAExtensions"), "Yes");
	assert_true(n->k.params.rdma_extensions);
	assert_string_equal(isd_kv_get(&n->ans, "TargetRecvDataSegmentLength"), "8192");
	assert_int_equal(n->k.params.target_recv_dsl, 8192);
	assert_string_equal(isd_kv_get(&n->ans, "InitiatorRecvDataSegmentLength"), "262144");
	assert_int_equal(n->k.params.initiator_recv_dsl, 262144);
	assert_string_equal(isd_kv_get(&n->ans, "IFMarker"), "No");
	assert_string_equal(isd_kv_get(&n->ans, "FirstBurstLength"), "65536");
	assert_string_equal(isd_kv_get(&n->ans, "MaxBurstLength"), "1048576");

	/* RDMAExtensions=No makes the iSER keys irrelevant, whatever the order */
	neg_reset(n, true, ISD_SESSION_NORMAL);
	assert_int_equal(neg_run(n, TXT("TargetRecvDataSegmentLength=8192\0RDMAExtensions=No\0"
					"MaxOutstandingUnexpectedPDUs=4\0")), 0);
	assert_string_equal(isd_kv_get(&n->ans, "RDMAExtensions"), "No");
	assert_string_equal(isd_kv_get(&n->ans, "TargetRecvDataSegmentLength"), "Irrelevant");
	assert_string_equal(isd_kv_get(&n->ans, "MaxOutstandingUnexpectedPDUs"), "Irrelevant");

	/* MaxOutstandingUnexpectedPDUs: 0 (no limit) or 2..2^32-1, min-or-zero */
	neg_reset(n, true, ISD_SESSION_NORMAL);
	assert_int_equal(neg_run(n, TXT("RDMAExtensions=Yes\0MaxOutstandingUnexpectedPDUs=6\0"
					"TargetRecvDataSegmentLength=1048576\0"
					"iSERHelloRequired=No\0TaggedBufferForSolicitedDataOnly=Yes\0"
					"MaxAHSLength=4096\0")), 0);
	assert_string_equal(isd_kv_get(&n->ans, "MaxOutstandingUnexpectedPDUs"), "6");
	assert_int_equal(n->k.params.max_outstanding_unexpected_pdus, 6);
	assert_string_equal(isd_kv_get(&n->ans, "TargetRecvDataSegmentLength"), "65536");
	assert_string_equal(isd_kv_get(&n->ans, "iSERHelloRequired"), "No");
	assert_string_equal(isd_kv_get(&n->ans, "TaggedBufferForSolicitedDataOnly"), "Reject");
	assert_string_equal(isd_kv_get(&n->ans, "MaxAHSLength"), "1020");
	expect_iser_answer(n, "MaxOutstandingUnexpectedPDUs", "0", "0");
	expect_iser_answer(n, "MaxOutstandingUnexpectedPDUs", "1", "Reject");
	expect_iser_answer(n, "MaxOutstandingUnexpectedPDUs", "4294967295", "4294967295");
	expect_iser_answer(n, "MaxOutstandingUnexpectedPDUs", "4294967296", "Reject");
	/* we never require the Hello exchange: AND with our No */
	expect_iser_answer(n, "iSERHelloRequired", "Yes", "No");
	expect_iser_answer(n, "iSERHelloRequired", "maybe", "Reject");
	expect_iser_answer(n, "TargetRecvDataSegmentLength", "511", "Reject");
	expect_iser_answer(n, "TaggedBufferForSolicitedDataOnly", "No", "No");
	expect_iser_answer(n, "MaxAHSLength", "1", "Reject");
	expect_iser_answer(n, "MaxAHSLength", "2", "2");
	/* DefaultTime2Wait is leading-only: Irrelevant on a second connection */
	neg_reset(n, false, ISD_SESSION_NORMAL);
	assert_int_equal(neg_run(n, TXT("DefaultTime2Wait=10\0")), 0);
	assert_string_equal(isd_kv_get(&n->ans, "DefaultTime2Wait"), "Irrelevant");
	assert_int_equal(n->k.params.default_time2wait, 2);
	/* digests are forbidden under iSER */
	expect_iser_answer(n, "HeaderDigest", "CRC32C,None", "None");
	isd_key_policy_init(&n->pol);
}

static void
test_finish_declares(void **state)
{
	struct neg *n = *state;

	/* Nothing sent: finish declares our MaxRecvDataSegmentLength, once. */
	neg_reset(n, true, ISD_SESSION_NORMAL);
	assert_int_equal(isd_keys_finish(&n->k, &n->rsp), 0);
	assert_int_equal(isd_keys_finish(&n->k, &n->rsp), 0);
	isd_kv_list_fini(&n->ans);
	assert_int_equal(isd_kv_parse((const uint8_t *)n->rsp.buf, n->rsp.len, &n->ans), 0);
	assert_int_equal(n->ans.count, 1);
	assert_string_equal(isd_kv_get(&n->ans, "MaxRecvDataSegmentLength"), "262144");

	/* Already declared in answer to the initiator's: nothing more. */
	neg_reset(n, true, ISD_SESSION_NORMAL);
	assert_int_equal(neg_run(n, TXT("MaxRecvDataSegmentLength=8192\0")), 0);
	assert_int_equal(n->ans.count, 1);
	assert_int_equal(isd_keys_finish(&n->k, &n->rsp), 0);
	isd_kv_list_fini(&n->ans);
	assert_int_equal(isd_kv_parse((const uint8_t *)n->rsp.buf, n->rsp.len, &n->ans), 0);
	assert_int_equal(n->ans.count, 1);

	/* After finish, the initiator's late declaration is stored but not answered. */
	neg_reset(n, true, ISD_SESSION_NORMAL);
	assert_int_equal(isd_keys_finish(&n->k, &n->rsp), 0);
	isd_text_buf_fini(&n->rsp);
	isd_text_buf_init(&n->rsp);
	assert_int_equal(neg_run(n, TXT("MaxRecvDataSegmentLength=4096\0")), 0);
	assert_int_equal(n->ans.count, 0);
	assert_int_equal(n->k.params.max_xmit_dsl, 4096);

	/* Discovery also declares it. */
	n->pol.max_recv_dsl = 8192;
	neg_reset(n, true, ISD_SESSION_DISCOVERY);
	assert_int_equal(isd_keys_finish(&n->k, &n->rsp), 0);
	isd_kv_list_fini(&n->ans);
	assert_int_equal(isd_kv_parse((const uint8_t *)n->rsp.buf, n->rsp.len, &n->ans), 0);
	assert_string_equal(isd_kv_get(&n->ans, "MaxRecvDataSegmentLength"), "8192");
	isd_key_policy_init(&n->pol);
}

static void
test_finish_iser(void **state)
{
	struct neg *n = *state;

	n->pol.rdma_capable = true;
	/* iSER session that negotiated TRDSL: finish adds nothing (no MRDSL under iSER). */
	neg_reset(n, true, ISD_SESSION_NORMAL);
	assert_int_equal(neg_run(n, TXT("RDMAExtensions=Yes\0TargetRecvDataSegmentLength=8192\0")),
			 0);
	isd_text_buf_fini(&n->rsp);
	isd_text_buf_init(&n->rsp);
	assert_int_equal(isd_keys_finish(&n->k, &n->rsp), 0);
	assert_int_equal(n->rsp.len, 0);

	/* TRDSL not sent and we cannot take the 8192 default: we offer ours. */
	n->pol.target_recv_dsl = 4096;
	neg_reset(n, true, ISD_SESSION_NORMAL);
	assert_int_equal(neg_run(n, TXT("RDMAExtensions=Yes\0")), 0);
	isd_text_buf_fini(&n->rsp);
	isd_text_buf_init(&n->rsp);
	assert_int_equal(isd_keys_finish(&n->k, &n->rsp), 0);
	isd_kv_list_fini(&n->ans);
	assert_int_equal(isd_kv_parse((const uint8_t *)n->rsp.buf, n->rsp.len, &n->ans), 0);
	assert_string_equal(isd_kv_get(&n->ans, "TargetRecvDataSegmentLength"), "4096");
	assert_int_equal(n->k.params.target_recv_dsl, 4096);
	/* the initiator's reply to our offer is taken, not answered */
	isd_text_buf_fini(&n->rsp);
	isd_text_buf_init(&n->rsp);
	assert_int_equal(neg_run(n, TXT("TargetRecvDataSegmentLength=4096\0")), 0);
	assert_int_equal(n->ans.count, 0);
	assert_int_equal(n->k.params.target_recv_dsl, 4096);
	isd_key_policy_init(&n->pol);
}

static void
test_policy_defaults(void **state)
{
	struct isd_key_policy p;

	(void)state;
	isd_key_policy_init(&p);
	assert_int_equal(p.max_recv_dsl, 262144);
	assert_int_equal(p.max_burst_length, 1048576);
	assert_int_equal(p.first_burst_length, 65536);
	assert_true(p.immediate_data);
	assert_false(p.initial_r2t);
	assert_int_equal(p.max_outstanding_r2t, 1);
	assert_int_equal(p.error_recovery_level, 0);
	assert_int_equal(p.max_connections, 1);
}

static void
test_neg_misconfigured_policy_clamped(void **state)
{
	struct neg *n = *state;

	/* A zero policy must not make us answer an illegal value. */
	n->pol.max_outstanding_r2t = 0;
	n->pol.max_burst_length = 0;
	expect_answer(n, "MaxOutstandingR2T", "4", "1");
	expect_answer(n, "MaxBurstLength", "65536", "512");
	isd_key_policy_init(&n->pol);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_kv_parse_basic),
		cmocka_unit_test(test_kv_parse_value_with_equals),
		cmocka_unit_test(test_kv_parse_padding_and_empty),
		cmocka_unit_test(test_kv_parse_malformed),
		cmocka_unit_test(test_kv_parse_limits),
		cmocka_unit_test(test_text_buf),
		cmocka_unit_test(test_parse_u64),
		cmocka_unit_test(test_parse_bool),
		cmocka_unit_test(test_parse_binary),
		cmocka_unit_test(test_format_hex),
		cmocka_unit_test(test_params_defaults),
		cmocka_unit_test(test_policy_defaults),
		cmocka_unit_test_setup_teardown(test_neg_numeric_boundaries, neg_setup, neg_teardown),
		cmocka_unit_test_setup_teardown(test_neg_numeric_params, neg_setup, neg_teardown),
		cmocka_unit_test_setup_teardown(test_neg_first_burst_clamped, neg_setup, neg_teardown),
		cmocka_unit_test_setup_teardown(test_neg_booleans, neg_setup, neg_teardown),
		cmocka_unit_test_setup_teardown(test_neg_digests, neg_setup, neg_teardown),
		cmocka_unit_test_setup_teardown(test_neg_discovery_irrelevant, neg_setup,
						neg_teardown),
		cmocka_unit_test_setup_teardown(test_neg_non_leading, neg_setup, neg_teardown),
		cmocka_unit_test_setup_teardown(test_neg_duplicate_key, neg_setup, neg_teardown),
		cmocka_unit_test_setup_teardown(test_neg_unknown_and_skipped, neg_setup,
						neg_teardown),
		cmocka_unit_test_setup_teardown(test_neg_task_reporting, neg_setup, neg_teardown),
		cmocka_unit_test_setup_teardown(test_neg_iser_keys, neg_setup, neg_teardown),
		cmocka_unit_test_setup_teardown(test_finish_declares, neg_setup, neg_teardown),
		cmocka_unit_test_setup_teardown(test_finish_iser, neg_setup, neg_teardown),
		cmocka_unit_test_setup_teardown(test_neg_misconfigured_policy_clamped, neg_setup,
						neg_teardown),
	};

	return cmocka_run_group_tests_name("keys", tests, NULL, NULL);
}
