/*
 * Fuzzes login text: the input is a data segment parsed by isd_kv_parse and,
 * when it parses, negotiated by a fresh target (leading connection, normal
 * session) followed by isd_keys_finish. Also checks that what we answer is
 * itself well-formed text and that the negotiated values stay legal.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "iscsi/keys.h"
#include "iscsi/pdu.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static volatile uint64_t g_sink;

static void
check_params(const struct isd_params *p)
{
	/* Whatever the initiator sent, the result stays within RFC 7143 ranges. */
	if (p->max_xmit_dsl < 512 || p->max_xmit_dsl > ISD_MAX_DSL || p->max_burst_length < 512 ||
	    p->max_burst_length > ISD_MAX_DSL || p->first_burst_length > p->max_burst_length ||
	    p->max_outstanding_r2t < 1 || p->max_connections < 1 || p->error_recovery_level > 2 ||
	    p->default_time2wait > 3600 || p->default_time2retain > 3600 ||
	    p->target_recv_dsl < 512 || p->target_recv_dsl > ISD_MAX_DSL)
		abort();
}

/*
 * Our answers must be well-formed text: "key=value\0" pairs whose keys the
 * parser would accept. (isd_kv_parse itself is not used: a response to a
 * request of ISD_KV_MAX keys plus our declarations may exceed its pair limit.)
 */
static void
check_text(const struct isd_text_buf *b)
{
	uint32_t off = 0;

	if (b->len > 0 && b->buf[b->len - 1] != '\0')
		abort();
	while (off < b->len) {
		const char *pair = b->buf + off;
		size_t len = strlen(pair);
		const char *eq = memchr(pair, '=', len);
		uint8_t one[ISD_KEY_NAME_MAX + ISD_KEY_VALUE_MAX + 2];
		struct isd_kv_list l;

		if (eq == NULL || len >= sizeof(one))
			abort();
		memcpy(one, pair, len + 1);
		if (isd_kv_parse(one, (uint32_t)len + 1, &l) != 0 || l.count != 1)
			abort();
		isd_kv_list_fini(&l);
		off += (uint32_t)len + 1;
	}
}

static void
negotiate(const struct isd_kv_list *req, bool rdma, enum isd_session_type type)
{
	struct isd_key_policy pol;
	struct isd_text_buf rsp;
	struct isd_keys k;
	int rc;

	isd_key_policy_init(&pol);
	pol.rdma_capable = rdma;
	pol.digests_forbidden = rdma;
	isd_keys_init(&k, &pol, true);
	k.params.session_type = type;
	isd_text_buf_init(&rsp);

	rc = isd_keys_negotiate(&k, req, &rsp);
	if ((rc < 0 && rc != -ENOMEM) || (rc > 0 && rc != ISD_LOGIN_STATUS_INIT_ERR))
		abort();
	if (rc == 0)
		rc = isd_keys_finish(&k, &rsp);
	/* A second PDU with the same keys must be refused, never crash. */
	if (rc == 0)
		(void)isd_keys_negotiate(&k, req, &rsp);
	if (!rsp.oom)
		check_text(&rsp);
	check_params(&k.params);
	isd_text_buf_fini(&rsp);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t bin[ISD_KEY_VALUE_MAX];
	struct isd_kv_list req;
	uint64_t v;
	bool b;
	int i;

	if (size > (1u << 20))
		return 0;
	if (isd_kv_parse(data, (uint32_t)size, &req) != 0)
		return 0;
	for (i = 0; i < req.count; i++) {
		if (isd_key_parse_u64(req.kv[i].value, &v) == 0)
			g_sink += v;
		if (isd_key_parse_bool(req.kv[i].value, &b) == 0)
			g_sink += b;
		g_sink += (uint64_t)isd_key_parse_binary(req.kv[i].value, bin, sizeof(bin));
		g_sink += isd_key_is_known(req.kv[i].key);
	}
	negotiate(&req, false, ISD_SESSION_NORMAL);
	negotiate(&req, true, ISD_SESSION_NORMAL);
	negotiate(&req, false, ISD_SESSION_DISCOVERY);
	isd_kv_list_fini(&req);
	return 0;
}
