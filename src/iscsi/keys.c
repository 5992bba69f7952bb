/*
 * Text keys (RFC 7143 §6, §13; iSER keys RFC 7145 §6): key=value parsing,
 * response building, value parsers, and the target-side negotiation engine.
 *
 * The engine only ever answers: the target never proposes a negotiated key.
 * Its own contributions are declarations (MaxRecvDataSegmentLength, and
 * TargetRecvDataSegmentLength on iSER), made once per login.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "iscsi/keys.h"
#include "iscsi/pdu.h"

/* ---------------------------------------------------------------------------------------- */
/* key=value lists                                                                          */

static int
check_key_name(const char *key, size_t len)
{
	size_t i;

	if (len == 0 || len > ISD_KEY_NAME_MAX)
		return -EINVAL;
	/*
	 * §6.1: key names use letters, digits, '.', '-', '+', '@' and '_'; '#'
	 * appears in the IANA extension prefix "X#".
	 */
	for (i = 0; i < len; i++) {
		char c = key[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '.' || c == '-' || c == '+' || c == '@' || c == '_' || c == '#'))
			return -EINVAL;
	}
	return 0;
}

int
isd_kv_parse(const uint8_t *data, uint32_t len, struct isd_kv_list *out)
{
	uint32_t off = 0;
	char *s;
	int rc;

	out->count = 0;
	out->storage = NULL;
	if (len == 0)
		return 0;
	if (data == NULL)
		return -EINVAL;
	/* §6.1: every pair ends with a NUL; a PDU ending mid-pair is the caller's to join. */
	if (data[len - 1] != '\0')
		return -EINVAL;

	s = malloc(len);
	if (s == NULL)
		return -ENOMEM;
	memcpy(s, data, len);

	while (off < len) {
		char *pair = s + off;
		size_t plen = strlen(pair); /* bounded: s[len - 1] is NUL */
		char *eq;

		if (plen == 0) {
			/* Only trailing padding may be empty: the rest must be all NULs. */
			uint32_t i;

			for (i = off; i < len; i++) {
				if (s[i] != '\0') {
					rc = -EINVAL;
					goto err_free;
				}
			}
			break;
		}
		eq = memchr(pair, '=', plen);
		if (eq == NULL) {
			rc = -EINVAL;
			goto err_free;
		}
		rc = check_key_name(pair, (size_t)(eq - pair));
		if (rc < 0)
			goto err_free;
		if (plen - (size_t)(eq - pair) - 1 > ISD_KEY_VALUE_MAX) {
			rc = -EINVAL;
			goto err_free;
		}
		if (out->count >= ISD_KV_MAX) {
			rc = -EINVAL;
			goto err_free;
		}
		*eq = '\0';
		out->kv[out->count].key = pair;
		out->kv[out->count].value = eq + 1;
		out->count++;
		off += (uint32_t)plen + 1;
	}
	out->storage = s;
	return 0;

err_free:
	free(s);
	out->count = 0;
	return rc;
}

void
isd_kv_list_fini(struct isd_kv_list *l)
{
	free(l->storage);
	l->storage = NULL;
	l->count = 0;
}

const char *
isd_kv_get(const struct isd_kv_list *l, const char *key)
{
	int i;

	for (i = 0; i < l->count; i++) {
		if (strcmp(l->kv[i].key, key) == 0)
			return l->kv[i].value;
	}
	return NULL;
}

/* ---------------------------------------------------------------------------------------- */
/* Response text                                                                            */

/* Far beyond any login or text response; keeps the uint32_t arithmetic safe. */
#define TEXT_BUF_LIMIT (64u << 20)

void
isd_text_buf_init(struct isd_text_buf *b)
{
	memset(b, 0, sizeof(*b));
}

void
isd_text_buf_fini(struct isd_text_buf *b)
{
	free(b->buf);
	memset(b, 0, sizeof(*b));
}

static int
text_reserve(struct isd_text_buf *b, size_t more)
{
	size_t need, cap;
	char *nb;

	if (b->oom)
		return -ENOMEM;
	need = (size_t)b->len + more;
	if (need <= b->cap)
		return 0;
	if (need > TEXT_BUF_LIMIT)
		goto fail;
	cap = b->cap ? b->cap : 256;
	while (cap < need)
		cap *= 2;
	nb = realloc(b->buf, cap);
	if (nb == NULL)
		goto fail;
	b->buf = nb;
	b->cap = (uint32_t)cap;
	return 0;

fail:
	b->oom = true;
	return -ENOMEM;
}

int
isd_text_append(struct isd_text_buf *b, const char *key, const char *value)
{
	size_t kl = strlen(key), vl = strlen(value);
	int rc;

	rc = text_reserve(b, kl + vl + 2);
	if (rc < 0)
		return rc;
	memcpy(b->buf + b->len, key, kl);
	b->buf[b->len + kl] = '=';
	memcpy(b->buf + b->len + kl + 1, value, vl);
	b->buf[b->len + kl + 1 + vl] = '\0';
	b->len += (uint32_t)(kl + vl + 2);
	return 0;
}

int
isd_text_appendf(struct isd_text_buf *b, const char *key, const char *fmt, ...)
{
	char small[128];
	char *big = NULL;
	va_list ap;
	int n, rc;

	if (b->oom)
		return -ENOMEM;
	va_start(ap, fmt);
	n = vsnprintf(small, sizeof(small), fmt, ap);
	va_end(ap);
	if (n < 0) {
		b->oom = true;
		return -ENOMEM;
	}
	if ((size_t)n < sizeof(small))
		return isd_text_append(b, key, small);

	big = malloc((size_t)n + 1);
	if (big == NULL) {
		b->oom = true;
		return -ENOMEM;
	}
	va_start(ap, fmt);
	vsnprintf(big, (size_t)n + 1, fmt, ap);
	va_end(ap);
	rc = isd_text_append(b, key, big);
	free(big);
	return rc;
}

/* ---------------------------------------------------------------------------------------- */
/* Value parsers                                                                            */

static int
hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int
isd_key_parse_u64(const char *value, uint64_t *out)
{
	uint64_t v = 0;
	const char *p = value;

	if (value == NULL || *value == '\0')
		return -EINVAL;
	/* §6.1: decimal-constant or hex-constant ("0x"/"0X"); no sign, no blanks. */
	if (p[0] == '0' && (p[1] == 'x' || p[1] == 'X')) {
		p += 2;
		if (*p == '\0')
			return -EINVAL;
		for (; *p; p++) {
			int d = hexval(*p);

			if (d < 0 || v > (UINT64_MAX >> 4))
				return -EINVAL;
			v = (v << 4) | (uint64_t)d;
		}
	} else {
		for (; *p; p++) {
			uint64_t d;

			if (*p < '0' || *p > '9')
				return -EINVAL;
			d = (uint64_t)(*p - '0');
			if (v > (UINT64_MAX - d) / 10)
				return -EINVAL;
			v = v * 10 + d;
		}
	}
	*out = v;
	return 0;
}

int
isd_key_parse_bool(const char *value, bool *out)
{
	/* §6.1: boolean values are exactly "Yes" or "No" (case-sensitive). */
	if (value == NULL)
		return -EINVAL;
	if (strcmp(value, "Yes") == 0) {
		*out = true;
		return 0;
	}
	if (strcmp(value, "No") == 0) {
		*out = false;
		return 0;
	}
	return -EINVAL;
}

static int
b64val(char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

static int
parse_hex_binary(const char *p, uint8_t *out, size_t cap)
{
	size_t n = strlen(p), i, olen, o = 0;

	if (n == 0)
		return -EINVAL;
	/* An odd digit count implies a leading zero nibble. */
	olen = (n + 1) / 2;
	if (olen > cap || olen > (size_t)INT32_MAX)
		return -EINVAL;
	i = 0;
	if (n & 1) {
		int d = hexval(p[0]);

		if (d < 0)
			return -EINVAL;
		out[o++] = (uint8_t)d;
		i = 1;
	}
	for (; i < n; i += 2) {
		int hi = hexval(p[i]), lo = hexval(p[i + 1]);

		if (hi < 0 || lo < 0)
			return -EINVAL;
		out[o++] = (uint8_t)((hi << 4) | lo);
	}
	return (int)o;
}

static int
parse_b64_binary(const char *p, uint8_t *out, size_t cap)
{
	size_t n = strlen(p), i, pad = 0, o = 0;
	uint32_t acc = 0;
	int bits = 0;

	/* RFC 4648 base64; the trailing '=' padding is optional. */
	while (n > 0 && p[n - 1] == '=' && pad < 2) {
		n--;
		pad++;
	}
	if (n == 0 || n % 4 == 1)
		return -EINVAL;
	if (pad != 0 && (n + pad) % 4 != 0)
		return -EINVAL;
	for (i = 0; i < n; i++) {
		int v = b64val(p[i]);

		if (v < 0)
			return -EINVAL;
		acc = (acc << 6) | (uint32_t)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			if (o >= cap || o >= (size_t)INT32_MAX)
				return -EINVAL;
			out[o++] = (uint8_t)(acc >> bits);
			acc &= (1u << bits) - 1;
		}
	}
	/* Leftover bits must be zero, or the encoding is not canonical. */
	if (acc != 0)
		return -EINVAL;
	return (int)o;
}

int
isd_key_parse_binary(const char *value, uint8_t *out, size_t cap)
{
	if (value == NULL || value[0] != '0')
		return -EINVAL;
	if (value[1] == 'x' || value[1] == 'X')
		return parse_hex_binary(value + 2, out, cap);
	if (value[1] == 'b' || value[1] == 'B')
		return parse_b64_binary(value + 2, out, cap);
	return -EINVAL;
}

int
isd_key_format_hex(const uint8_t *in, size_t len, char *out, size_t cap)
{
	static const char digits[] = "0123456789abcdef";
	size_t i;

	if (cap < 3 || (cap - 3) / 2 < len)
		return -ENOSPC;
	out[0] = '0';
	out[1] = 'x';
	for (i = 0; i < len; i++) {
		out[2 + 2 * i] = digits[in[i] >> 4];
		out[3 + 2 * i] = digits[in[i] & 0xf];
	}
	out[2 + 2 * len] = '\0';
	return 0;
}

/* ---------------------------------------------------------------------------------------- */
/* Defaults                                                                                 */

void
isd_params_init_defaults(struct isd_params *p)
{
	/* RFC 7143 §13 and RFC 7145 §6 defaults: what applies if a key is never negotiated. */
	memset(p, 0, sizeof(*p));
	p->header_digest = false;
	p->data_digest = false;
	p->max_connections = 1;
	p->initial_r2t = true;
	p->immediate_data = true;
	p->max_recv_dsl = 8192;
	p->max_xmit_dsl = 8192;
	p->max_burst_length = 262144;
	p->first_burst_length = 65536;
	p->default_time2wait = 2;
	p->default_time2retain = 20;
	p->max_outstanding_r2t = 1;
	p->data_pdu_in_order = true;
	p->data_sequence_in_order = true;
	p->error_recovery_level = 0;
	p->rdma_extensions = false;
	p->target_recv_dsl = 8192;
	p->initiator_recv_dsl = 8192;
	p->max_outstanding_unexpected_pdus = 0;
	p->session_type = ISD_SESSION_NORMAL;
}

void
isd_key_policy_init(struct isd_key_policy *pol)
{
	memset(pol, 0, sizeof(*pol));
	pol->allow_header_digest = true;
	pol->allow_data_digest = true;
	pol->prefer_digest = false;
	pol->digests_forbidden = false;
	pol->rdma_capable = false;
	pol->max_connections = 1;
	pol->initial_r2t = false;
	pol->immediate_data = true;
	pol->max_recv_dsl = 262144;
	pol->max_burst_length = 1048576;
	pol->first_burst_length = 65536;
	pol->default_time2wait = 2;
	pol->default_time2retain = 20;
	pol->max_outstanding_r2t = 1;
	pol->error_recovery_level = 0;
	pol->target_recv_dsl = 262144;
}

/* ---------------------------------------------------------------------------------------- */
/* Negotiation engine                                                                       */

enum key_id {
	K_HEADER_DIGEST,
	K_DATA_DIGEST,
	K_MAX_CONNECTIONS,
	K_INITIAL_R2T,
	K_IMMEDIATE_DATA,
	K_MAX_RECV_DSL,
	K_MAX_BURST,
	K_FIRST_BURST,
	K_TIME2WAIT,
	K_TIME2RETAIN,
	K_MAX_OUT_R2T,
	K_DATA_PDU_IN_ORDER,
	K_DATA_SEQ_IN_ORDER,
	K_ERL,
	K_IFMARKER,
	K_OFMARKER,
	K_IFMARKINT,
	K_OFMARKINT,
	K_TASK_REPORTING,
	K_PROTOCOL_LEVEL,
	K_RDMA_EXT,
	K_TARGET_RDSL,
	K_INITIATOR_RDSL,
	K_MAX_OUT_UNEXP,
	K_ISER_HELLO,
	K_MAX_AHS_LEN,
	K_TAGGED_BUF,
	K_COUNT
};

/* How a key's result is computed (RFC 7143 §6.2). */
enum key_type {
	T_DIGEST,       /* list: first acceptable entry of the initiator's list */
	T_MIN,          /* numeric, Minimum */
	T_MAX,          /* numeric, Maximum */
	T_MIN_OR_ZERO,  /* numeric, Minimum where 0 means "no limit" */
	T_OR,           /* boolean, OR */
	T_AND,          /* boolean, AND */
	T_DECLARE,      /* numeric, declarative: store, never answer */
	T_ANSWER_NO,    /* boolean we only support as No (markers, iSERHelloRequired) */
	T_ONLY_NO,      /* boolean proposal we can only accept as No: Yes is rejected */
	T_IRRELEVANT,   /* always answered Irrelevant (marker intervals: markers are No) */
	T_TASK_REPORTING,
};

/* Key flags. */
#define F_SESSION 0x01          /* session-wide */
#define F_LEADING 0x02          /* leading connection only: Irrelevant elsewhere */
#define F_DISC_IRR 0x04         /* Irrelevant in a Discovery session */
#define F_RDMA_ONLY 0x08        /* Irrelevant unless RDMAExtensions=Yes (RFC 7145) */
#define F_EARLY 0x10            /* negotiated before the rest of its request */

#define DSL_MIN 512
#define SW_LO_DISC (F_SESSION | F_LEADING | F_DISC_IRR)
#define RDMA_CO (F_RDMA_ONLY | F_DISC_IRR)

struct key_def {
	const char *name;
	uint8_t type;
	uint8_t flags;
	uint64_t lo;
	uint64_t hi;
};

static const struct key_def g_keys[K_COUNT] = {
	[K_HEADER_DIGEST] = { "HeaderDigest", T_DIGEST, 0, 0, 0 },
	[K_DATA_DIGEST] = { "DataDigest", T_DIGEST, 0, 0, 0 },
	[K_MAX_CONNECTIONS] = { "MaxConnections", T_MIN, SW_LO_DISC, 1, 65535 },
	[K_INITIAL_R2T] = { "InitialR2T", T_OR, SW_LO_DISC, 0, 0 },
	[K_IMMEDIATE_DATA] = { "ImmediateData", T_AND, SW_LO_DISC, 0, 0 },
	[K_MAX_RECV_DSL] = { "MaxRecvDataSegmentLength", T_DECLARE, 0, DSL_MIN, ISD_MAX_DSL },
	/* MaxBurstLength goes first so that FirstBurstLength can be bounded by it. */
	[K_MAX_BURST] = { "MaxBurstLength", T_MIN, SW_LO_DISC | F_EARLY, DSL_MIN, ISD_MAX_DSL },
	[K_FIRST_BURST] = { "FirstBurstLength", T_MIN, SW_LO_DISC, DSL_MIN, ISD_MAX_DSL },
	[K_TIME2WAIT] = { "DefaultTime2Wait", T_MAX, F_SESSION | F_LEADING, 0, 3600 },
	[K_TIME2RETAIN] = { "DefaultTime2Retain", T_MIN, F_SESSION | F_LEADING, 0, 3600 },
	[K_MAX_OUT_R2T] = { "MaxOutstandingR2T", T_MIN, SW_LO_DISC, 1, 65535 },
	[K_DATA_PDU_IN_ORDER] = { "DataPDUInOrder", T_OR, SW_LO_DISC, 0, 0 },
	[K_DATA_SEQ_IN_ORDER] = { "DataSequenceInOrder", T_OR, SW_LO_DISC, 0, 0 },
	[K_ERL] = { "ErrorRecoveryLevel", T_MIN, F_SESSION | F_LEADING, 0, 2 },
	[K_IFMARKER] = { "IFMarker", T_ANSWER_NO, 0, 0, 0 },
	[K_OFMARKER] = { "OFMarker", T_ANSWER_NO, 0, 0, 0 },
	[K_IFMARKINT] = { "IFMarkInt", T_IRRELEVANT, 0, 0, 0 },
	[K_OFMARKINT] = { "OFMarkInt", T_IRRELEVANT, 0, 0, 0 },
	[K_TASK_REPORTING] = { "TaskReporting", T_TASK_REPORTING, SW_LO_DISC, 0, 0 },
	[K_PROTOCOL_LEVEL] = { "iSCSIProtocolLevel", T_MIN, F_SESSION | F_LEADING, 0, 31 },
	/* RDMAExtensions goes first: the other iSER keys depend on its result. */
	[K_RDMA_EXT] = { "RDMAExtensions", T_AND, SW_LO_DISC | F_EARLY, 0, 0 },
	[K_TARGET_RDSL] = { "TargetRecvDataSegmentLength", T_MIN, RDMA_CO, DSL_MIN, ISD_MAX_DSL },
	[K_INITIATOR_RDSL] = { "InitiatorRecvDataSegmentLength", T_MIN, RDMA_CO, DSL_MIN,
			       ISD_MAX_DSL },
	[K_MAX_OUT_UNEXP] = { "MaxOutstandingUnexpectedPDUs", T_MIN_OR_ZERO,
			      RDMA_CO | F_SESSION | F_LEADING, 0, UINT32_MAX },
	[K_ISER_HELLO] = { "iSERHelloRequired", T_ANSWER_NO, RDMA_CO | F_SESSION | F_LEADING, 0,
			   0 },
	[K_MAX_AHS_LEN] = { "MaxAHSLength", T_MIN, RDMA_CO | F_SESSION | F_LEADING, 2, 65535 },
	/* We do not implement the tagged-buffer restriction: Yes is rejected. */
	[K_TAGGED_BUF] = { "TaggedBufferForSolicitedDataOnly", T_ONLY_NO,
			   RDMA_CO | F_SESSION | F_LEADING, 0, 0 },
};

_Static_assert(K_COUNT <= 64, "answered/declared are 64-bit masks");

#define BIT(id) (1ull << (id))

/* Keys the login state machine handles itself: skipped here, never answered. */
static const char *const g_skip_keys[] = {
	"InitiatorName", "TargetName", "SessionType", "AuthMethod", "CHAP_A", "CHAP_I",
	"CHAP_C", "CHAP_N", "CHAP_R", "InitiatorAlias", "TargetAlias", "TargetAddress",
	"TargetPortalGroupTag", "SendTargets",
};

static int
find_key(const char *name)
{
	int i;

	for (i = 0; i < K_COUNT; i++) {
		if (strcmp(g_keys[i].name, name) == 0)
			return i;
	}
	return -1;
}

static bool
is_skip_key(const char *name)
{
	size_t i;

	for (i = 0; i < sizeof(g_skip_keys) / sizeof(g_skip_keys[0]); i++) {
		if (strcmp(g_skip_keys[i], name) == 0)
			return true;
	}
	return false;
}

bool
isd_key_is_known(const char *key)
{
	return key != NULL && (find_key(key) >= 0 || is_skip_key(key));
}

void
isd_keys_init(struct isd_keys *k, const struct isd_key_policy *pol, bool leading)
{
	memset(k, 0, sizeof(*k));
	k->policy = *pol;
	isd_params_init_defaults(&k->params);
	k->leading = leading;
}

static uint64_t
clamp_u64(uint64_t v, uint64_t lo, uint64_t hi)
{
	return v < lo ? lo : (v > hi ? hi : v);
}

static uint64_t
min_u64(uint64_t a, uint64_t b)
{
	return a < b ? a : b;
}

/* Our side of a numeric key, clamped into the key's legal range. */
static uint64_t
our_number(const struct isd_keys *k, enum key_id id)
{
	const struct isd_key_policy *p = &k->policy;
	uint64_t v;

	switch (id) {
	case K_MAX_CONNECTIONS:
		v = p->max_connections;
		break;
	case K_MAX_RECV_DSL:
		v = p->max_recv_dsl;
		break;
	case K_MAX_BURST:
		v = p->max_burst_length;
		break;
	case K_FIRST_BURST:
		/* Never offer more than the burst the session ends up with (§13.14). */
		v = min_u64(p->first_burst_length, k->params.max_burst_length);
		break;
	case K_TIME2WAIT:
		v = p->default_time2wait;
		break;
	case K_TIME2RETAIN:
		v = p->default_time2retain;
		break;
	case K_MAX_OUT_R2T:
		v = p->max_outstanding_r2t;
		break;
	case K_ERL:
		v = p->error_recovery_level;
		break;
	case K_PROTOCOL_LEVEL:
		v = 1; /* RFC 7143 */
		break;
	case K_TARGET_RDSL:
		v = p->target_recv_dsl;
		break;
	case K_INITIATOR_RDSL:
		/* What the initiator can receive: we can send PDUs of any size. */
		v = ISD_MAX_DSL;
		break;
	case K_MAX_OUT_UNEXP:
		v = 0; /* no limit of ours */
		break;
	case K_MAX_AHS_LEN:
		v = ISD_MAX_AHS_LEN;
		break;
	default:
		v = 0;
		break;
	}
	return clamp_u64(v, g_keys[id].lo, g_keys[id].hi);
}

static bool
our_bool(const struct isd_keys *k, enum key_id id)
{
	switch (id) {
	case K_INITIAL_R2T:
		return k->policy.initial_r2t;
	case K_IMMEDIATE_DATA:
		return k->policy.immediate_data;
	case K_DATA_PDU_IN_ORDER:
	case K_DATA_SEQ_IN_ORDER:
		/* The datamovers expect in-order data; OR with Yes makes the result Yes. */
		return true;
	case K_RDMA_EXT:
		return k->policy.rdma_capable;
	default:
		return false;
	}
}

static void
store_number(struct isd_keys *k, enum key_id id, uint64_t v)
{
	struct isd_params *p = &k->params;

	switch (id) {
	case K_MAX_CONNECTIONS:
		p->max_connections = (uint32_t)v;
		break;
	case K_MAX_RECV_DSL:
		p->max_xmit_dsl = (uint32_t)v;
		break;
	case K_MAX_BURST:
		p->max_burst_length = (uint32_t)v;
		break;
	case K_FIRST_BURST:
		p->first_burst_length = (uint32_t)v;
		break;
	case K_TIME2WAIT:
		p->default_time2wait = (uint32_t)v;
		break;
	case K_TIME2RETAIN:
		p->default_time2retain = (uint32_t)v;
		break;
	case K_MAX_OUT_R2T:
		p->max_outstanding_r2t = (uint32_t)v;
		break;
	case K_ERL:
		p->error_recovery_level = (uint32_t)v;
		break;
	case K_TARGET_RDSL:
		p->target_recv_dsl = (uint32_t)v;
		break;
	case K_INITIATOR_RDSL:
		p->initiator_recv_dsl = (uint32_t)v;
		break;
	case K_MAX_OUT_UNEXP:
		p->max_outstanding_unexpected_pdus = (uint32_t)v;
		break;
	default:
		/* iSCSIProtocolLevel, MaxAHSLength: answered, not kept. */
		break;
	}
}

static void
store_bool(struct isd_keys *k, enum key_id id, bool v)
{
	struct isd_params *p = &k->params;

	switch (id) {
	case K_INITIAL_R2T:
		p->initial_r2t = v;
		break;
	case K_IMMEDIATE_DATA:
		p->immediate_data = v;
		break;
	case K_DATA_PDU_IN_ORDER:
		p->data_pdu_in_order = v;
		break;
	case K_DATA_SEQ_IN_ORDER:
		p->data_sequence_in_order = v;
		break;
	case K_RDMA_EXT:
		p->rdma_extensions = v;
		break;
	default:
		/* TaggedBufferForSolicitedDataOnly: answered, not kept. */
		break;
	}
}

/* Appends "key=<decimal>". */
static void
answer_number(struct isd_text_buf *rsp, const char *key, uint64_t v)
{
	isd_text_appendf(rsp, key, "%llu", (unsigned long long)v);
}

/*
 * Walks the initiator's comma-separated digest list (§6.1: in order of
 * preference). Returns 1 for CRC32C, 0 for None, -1 when nothing in it is
 * acceptable, -2 for a malformed list (an empty entry).
 */
static int
digest_pick(const struct isd_keys *k, enum key_id id, const char *list)
{
	bool allowed = id == K_HEADER_DIGEST ? k->policy.allow_header_digest
					     : k->policy.allow_data_digest;
	bool crc_ok, crc_seen = false;
	int first = -1; /* 0 = None, 1 = CRC32C */
	const char *p = list;

	/* iSER carries no digests (RFC 7145 §5.1); neither does a forbidden datamover. */
	crc_ok = allowed && !k->policy.digests_forbidden && !k->params.rdma_extensions;

	for (;;) {
		const char *comma = strchr(p, ',');
		size_t n = comma ? (size_t)(comma - p) : strlen(p);

		if (n == 0)
			return -2;
		if (n == 4 && memcmp(p, "None", 4) == 0) {
			if (first < 0)
				first = 0;
		} else if (n == 6 && memcmp(p, "CRC32C", 6) == 0 && crc_ok) {
			crc_seen = true;
			if (first < 0)
				first = 1;
		}
		/* Unknown values in a list are skipped (§6.2.1 "first acceptable"). */
		if (comma == NULL)
			break;
		p = comma + 1;
	}
	if (k->policy.prefer_digest && crc_seen)
		return 1;
	return first;
}

static void
negotiate_digest(struct isd_keys *k, enum key_id id, const char *value, struct isd_text_buf *rsp)
{
	int pick = digest_pick(k, id, value);

	if (pick < 0) {
		isd_text_append(rsp, g_keys[id].name, "Reject");
		return;
	}
	if (id == K_HEADER_DIGEST)
		k->params.header_digest = pick == 1;
	else
		k->params.data_digest = pick == 1;
	isd_text_append(rsp, g_keys[id].name, pick == 1 ? "CRC32C" : "None");
}

static void
negotiate_task_reporting(const char *value, struct isd_text_buf *rsp)
{
	const char *p = value;

	/* §13.23: we implement only the RFC 3720 semantics. */
	for (;;) {
		const char *comma = strchr(p, ',');
		size_t n = comma ? (size_t)(comma - p) : strlen(p);

		if (n == 7 && memcmp(p, "RFC3720", 7) == 0) {
			isd_text_append(rsp, "TaskReporting", "RFC3720");
			return;
		}
		if (comma == NULL)
			break;
		p = comma + 1;
	}
	isd_text_append(rsp, "TaskReporting", "Reject");
}

/*
 * Handles one known key. `respond` is false when the initiator's value
 * answers our own earlier declaration of the key: the result is computed but
 * nothing is appended.
 */
static void
negotiate_one(struct isd_keys *k, enum key_id id, const char *value, bool respond,
	      struct isd_text_buf *rsp)
{
	const struct key_def *d = &g_keys[id];
	uint64_t v, r;
	bool b;

	if ((d->flags & F_DISC_IRR) && k->params.session_type == ISD_SESSION_DISCOVERY)
		goto irrelevant;
	if ((d->flags & F_LEADING) && !k->leading)
		goto irrelevant;
	if ((d->flags & F_RDMA_ONLY) && !k->params.rdma_extensions)
		goto irrelevant;

	switch ((enum key_type)d->type) {
	case T_DIGEST:
		negotiate_digest(k, id, value, rsp);
		return;
	case T_MIN:
	case T_MAX:
	case T_MIN_OR_ZERO:
		if (isd_key_parse_u64(value, &v) < 0 || v < d->lo || v > d->hi)
			goto reject;
		/* RFC 7145 §6.5: MaxOutstandingUnexpectedPDUs is 0 or at least 2. */
		if (d->type == T_MIN_OR_ZERO && v == 1)
			goto reject;
		if (d->type == T_MIN) {
			r = min_u64(v, our_number(k, id));
		} else if (d->type == T_MAX) {
			r = v > our_number(k, id) ? v : our_number(k, id);
		} else {
			uint64_t o = our_number(k, id);

			r = v == 0 ? o : (o == 0 ? v : min_u64(v, o));
		}
		store_number(k, id, r);
		if (respond)
			answer_number(rsp, d->name, r);
		return;
	case T_DECLARE:
		if (isd_key_parse_u64(value, &v) < 0 || v < d->lo || v > d->hi)
			goto reject;
		store_number(k, id, v);
		/*
		 * Declare ours alongside (LIO does the same) unless iSER is on:
		 * RFC 7145 replaces it by the Target/InitiatorRecvDataSegmentLength pair.
		 */
		if (!(k->declared & BIT(id)) && !k->params.rdma_extensions) {
			r = our_number(k, id);
			answer_number(rsp, d->name, r);
			k->params.max_recv_dsl = (uint32_t)r;
			k->declared |= BIT(id);
		}
		return;
	case T_OR:
	case T_AND:
		if (isd_key_parse_bool(value, &b) < 0)
			goto reject;
		b = d->type == T_OR ? (b || our_bool(k, id)) : (b && our_bool(k, id));
		store_bool(k, id, b);
		if (respond)
			isd_text_append(rsp, d->name, b ? "Yes" : "No");
		return;
	case T_ANSWER_NO:
		if (isd_key_parse_bool(value, &b) < 0)
			goto reject;
		if (respond)
			isd_text_append(rsp, d->name, "No");
		return;
	case T_ONLY_NO:
		if (isd_key_parse_bool(value, &b) < 0 || b)
			goto reject;
		if (respond)
			isd_text_append(rsp, d->name, "No");
		return;
	case T_IRRELEVANT:
		goto irrelevant;
	case T_TASK_REPORTING:
		negotiate_task_reporting(value, rsp);
		return;
	}
	return;

irrelevant:
	if (respond)
		isd_text_append(rsp, d->name, "Irrelevant");
	return;
reject:
	if (respond)
		isd_text_append(rsp, d->name, "Reject");
}

/* "NotUnderstood", "Irrelevant" and "Reject" are answers, never proposals (§6.2). */
static bool
is_answer_value(const char *v)
{
	return strcmp(v, "NotUnderstood") == 0 || strcmp(v, "Irrelevant") == 0 ||
	       strcmp(v, "Reject") == 0;
}

/*
 * One key of the request. Returns 0, or ISD_LOGIN_STATUS_INIT_ERR for a key
 * negotiated twice (§6.1: "neither the initiator nor the target should
 * attempt to declare or negotiate a parameter more than once").
 */
static int
handle_kv(struct isd_keys *k, const struct isd_kv *kv, struct isd_text_buf *rsp)
{
	int id;

	if (is_skip_key(kv->key))
		return 0;
	id = find_key(kv->key);
	if (is_answer_value(kv->value)) {
		/* An answer to a declaration of ours: nothing to negotiate or echo. */
		if (id >= 0 && (k->declared & BIT(id)))
			k->answered |= BIT(id);
		return 0;
	}
	if (id < 0) {
		/* Unknown keys, X- and X# private extensions included (§6.2). */
		isd_text_append(rsp, kv->key, "NotUnderstood");
		return 0;
	}
	if (k->answered & BIT(id))
		return ISD_LOGIN_STATUS_INIT_ERR;
	k->answered |= BIT(id);
	/*
	 * A value for a key we already offered (TargetRecvDataSegmentLength from
	 * isd_keys_finish) is the initiator's response to it: apply, do not answer.
	 * MaxRecvDataSegmentLength is declarative on both sides, so theirs is never
	 * a response to ours.
	 */
	negotiate_one(k, (enum key_id)id, kv->value,
		      id == K_MAX_RECV_DSL || !(k->declared & BIT(id)), rsp);
	return 0;
}

int
isd_keys_negotiate(struct isd_keys *k, const struct isd_kv_list *req, struct isd_text_buf *rsp)
{
	int pass, i, rc = 0;

	/*
	 * Two passes over the request: keys that others depend on (F_EARLY:
	 * RDMAExtensions, MaxBurstLength) first, then the rest in order, so the
	 * result does not depend on the order the initiator happened to use.
	 */
	for (pass = 0; pass < 2 && rc == 0; pass++) {
		for (i = 0; i < req->count; i++) {
			int id = find_key(req->kv[i].key);
			bool early = id >= 0 && (g_keys[id].flags & F_EARLY);

			if (early != (pass == 0))
				continue;
			rc = handle_kv(k, &req->kv[i], rsp);
			if (rc != 0)
				break;
		}
	}
	/*
	 * §13.14: FirstBurstLength MUST NOT exceed MaxBurstLength. Kept true on
	 * every exit so that `params` is always self-consistent.
	 */
	if (k->params.first_burst_length > k->params.max_burst_length)
		k->params.first_burst_length = k->params.max_burst_length;
	if (rc != 0)
		return rc;
	return rsp->oom ? -ENOMEM : 0;
}

int
isd_keys_finish(struct isd_keys *k, struct isd_text_buf *rsp)
{
	uint64_t v;

	if (!k->params.rdma_extensions && !(k->declared & BIT(K_MAX_RECV_DSL))) {
		v = our_number(k, K_MAX_RECV_DSL);
		answer_number(rsp, g_keys[K_MAX_RECV_DSL].name, v);
		k->params.max_recv_dsl = (uint32_t)v;
		k->declared |= BIT(K_MAX_RECV_DSL);
	}
	if (k->params.rdma_extensions && !(k->declared & BIT(K_TARGET_RDSL)) &&
	    !(k->answered & BIT(K_TARGET_RDSL))) {
		/*
		 * The initiator did not offer it; state what we can receive. The
		 * initiator sends at most min(this, its own view), so sizing our
		 * receives from our value is safe either way.
		 */
		v = our_number(k, K_TARGET_RDSL);
		answer_number(rsp, g_keys[K_TARGET_RDSL].name, v);
		k->params.target_recv_dsl = (uint32_t)v;
		k->declared |= BIT(K_TARGET_RDSL);
	}
	if (k->params.first_burst_length > k->params.max_burst_length)
		k->params.first_burst_length = k->params.max_burst_length;
	return rsp->oom ? -ENOMEM : 0;
}
