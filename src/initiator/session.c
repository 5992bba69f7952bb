/*
 * Session level of the initiator: connect and login (RFC 7143 §6: security
 * stage with CHAP and mutual CHAP per §12.1.3, operational negotiation per
 * §13), logout, SendTargets discovery (Text), NOP ping and answers, task
 * management, asynchronous messages, rejects, and reconnect with re-login
 * after a dropped connection (ERL 0: session reinstatement with the same ISID
 * and TSIH 0).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "initiator/init_int.h"
#include "util/endian.h"
#include "util/log.h"

/* ---- helpers ---- */

struct isd_pdu *
isd_init_ctl_pdu(struct isd_ictx *c, uint8_t opcode, uint32_t data_len)
{
	struct isd_pdu *pdu = isd_pdu_alloc(data_len);

	(void)c;
	if (pdu == NULL)
		return NULL;
	pdu->bhs[0] = opcode;
	pdu->data_len = data_len;
	return pdu;
}

/* Every request but a SCSI Command (isd_init_cmd_bhs) and a Data-Out: Login, NOP-Out, Text,
 * Task Management and Logout all carry ExpStatSN at bytes 28..31 (RFC 7143 §11). */
void
isd_init_send_pdu(struct isd_ictx *c, struct isd_pdu *pdu)
{
	put_be32(pdu->bhs + 28, c->exp_statsn);
	isd_init_x_send_pdu(c, pdu);
}

static uint32_t
new_itt(struct isd_ictx *c)
{
	uint32_t itt;

	do {
		itt = 0x80000000u | (c->next_itt++ & 0x7fffffffu);
	} while (itt == ISD_RSVD_TAG);
	return itt;
}

void
isd_init_sn_update(struct isd_ictx *c, const uint8_t *bhs)
{
	uint32_t exp = get_be32(bhs + 28), max = get_be32(bhs + 32);

	/* RFC 7143 §4.2.2.1: ignore a window that is not MaxCmdSN >= ExpCmdSN - 1. */
	if (sn_lt(max, exp - 1))
		return;
	if (sn_gt(exp, c->exp_cmdsn))
		c->exp_cmdsn = exp;
	if (sn_gt(max, c->max_cmdsn))
		c->max_cmdsn = max;
}

void
isd_init_statsn_update(struct isd_ictx *c, const uint8_t *bhs)
{
	uint32_t statsn = get_be32(bhs + 24);

	if (sn_ge(statsn, c->exp_statsn))
		c->exp_statsn = statsn + 1;
}

static struct isd_ireq *
req_new(struct isd_ictx *c, enum isd_ireq_kind kind, iserd_cb cb, void *cb_arg)
{
	struct isd_ireq *r = calloc(1, sizeof(*r));

	if (r == NULL) {
		isd_init_set_error(c, "out of memory");
		return NULL;
	}
	r->kind = kind;
	r->cb = cb;
	r->cb_arg = cb_arg;
	r->itt = new_itt(c);
	return r;
}

static void
req_complete(struct isd_ictx *c, struct isd_ireq *r, int status, void *data)
{
	/* Freed after the callback: data may point into r (the TMF response). */
	if (r->cb != NULL)
		r->cb(isd_init_pub(c), status, data, r->cb_arg);
	free(r->text);
	free(r);
}

static struct isd_ireq *
req_find(struct isd_ictx *c, uint32_t itt)
{
	struct isd_ireq *r;

	TAILQ_FOREACH(r, &c->reqs, link)
		if (r->itt == itt)
			return r;
	return NULL;
}

void
isd_init_fail_reqs(struct isd_ictx *c, int rc)
{
	struct isd_ireq *r;

	while ((r = TAILQ_FIRST(&c->reqs)) != NULL) {
		TAILQ_REMOVE(&c->reqs, r, link);
		if (r->kind == ISD_IREQ_TMF) {
			r->tmf_response = ISD_TMF_RSP_REJECTED;
			req_complete(c, r, rc, &r->tmf_response);
		} else {
			req_complete(c, r, rc, NULL);
		}
	}
	if (c->connect_req != NULL) {
		r = c->connect_req;
		c->connect_req = NULL;
		req_complete(c, r, rc, NULL);
	}
}

/* ---- login ---- */

static int
send_login(struct isd_ictx *c, bool transit, uint8_t csg, uint8_t nsg,
	   const struct isd_text_buf *keys)
{
	struct isd_pdu *pdu;
	uint32_t len = keys != NULL ? keys->len : 0;

	if (keys != NULL && keys->oom)
		return -ENOMEM;
	pdu = isd_init_ctl_pdu(c, ISD_OP_LOGIN_REQ | ISD_BHS_I, len);
	if (pdu == NULL)
		return -ENOMEM;
	if (len > 0)
		memcpy(pdu->data, keys->buf, len);
	pdu->bhs[1] = (uint8_t)((transit ? ISD_LOGIN_T : 0) | (csg << 2) | (transit ? nsg : 0));
	pdu->bhs[2] = 0; /* VersionMax */
	pdu->bhs[3] = 0; /* VersionMin */
	memcpy(pdu->bhs + 8, c->isid, 6);
	put_be16(pdu->bhs + 14, c->tsih);
	put_be32(pdu->bhs + 16, c->login_itt);
	put_be16(pdu->bhs + 20, c->cid);
	put_be32(pdu->bhs + 24, c->cmdsn);
	c->login_csg = csg;
	isd_init_send_pdu(c, pdu);
	return 0;
}

static const char *
digest_offer(enum iserd_digest d)
{
	switch (d) {
	case ISERD_DIGEST_CRC32C:
		return "CRC32C";
	case ISERD_DIGEST_CRC32C_NONE:
		return "CRC32C,None";
	case ISERD_DIGEST_NONE_CRC32C:
		return "None,CRC32C";
	default:
		return "None";
	}
}

int
isd_init_login_start(struct isd_ictx *c)
{
	struct isd_text_buf k;
	int rc;

	c->state = ISD_ICTX_LOGIN;
	c->login_itt = new_itt(c);
	c->tsih = 0;
	c->exp_statsn = 0;
	c->login_status = 0;
	free(c->login_text);
	c->login_text = NULL;
	c->login_text_len = 0;
	isd_params_init_defaults(&c->params);
	c->params.max_recv_dsl = c->url.transport == ISERD_TRANSPORT_ISER ? ISD_INIT_ISER_RECV_DSL
									 : ISD_INIT_MAX_RECV_DSL;
	c->params.session_type =
	    c->stype == ISERD_SESSION_DISCOVERY ? ISD_SESSION_DISCOVERY : ISD_SESSION_NORMAL;
	memset(&c->neg, 0, sizeof(c->neg));
	isd_text_buf_init(&k);
	isd_text_append(&k, "InitiatorName", c->initiator_name);
	isd_text_append(&k, "SessionType",
			c->stype == ISERD_SESSION_DISCOVERY ? "Discovery" : "Normal");
	if (c->stype == ISERD_SESSION_NORMAL)
		isd_text_append(&k, "TargetName", c->url.target);
	if (c->chap_user[0] != '\0') {
		isd_text_append(&k, "AuthMethod", c->mchap_user[0] ? "CHAP" : "CHAP,None");
		c->lstep = ISD_LS_SECURITY;
		rc = send_login(c, false, ISD_STAGE_SECURITY, ISD_STAGE_OPERATIONAL, &k);
	} else {
		isd_text_append(&k, "AuthMethod", "None");
		c->lstep = ISD_LS_SECURITY;
		rc = send_login(c, true, ISD_STAGE_SECURITY, ISD_STAGE_OPERATIONAL, &k);
	}
	isd_text_buf_fini(&k);
	return rc;
}

static int
send_operational(struct isd_ictx *c)
{
	struct isd_text_buf k;
	int rc;

	isd_text_buf_init(&k);
	c->offered_hd = c->hd_pref != ISERD_DIGEST_NONE;
	c->offered_dd = c->dd_pref != ISERD_DIGEST_NONE;
	if (c->url.transport == ISERD_TRANSPORT_ISER) {
		/* RFC 7145 §6: no digests over iSER; on a normal session the
		 * Initiator/TargetRecvDataSegmentLength pair replaces
		 * MaxRecvDataSegmentLength. */
		c->offered_hd = c->offered_dd = false;
		isd_text_append(&k, "HeaderDigest", "None");
		isd_text_append(&k, "DataDigest", "None");
		if (c->stype == ISERD_SESSION_NORMAL) {
			isd_text_append(&k, "RDMAExtensions", "Yes");
			isd_text_appendf(&k, "InitiatorRecvDataSegmentLength", "%u",
					 ISD_INIT_ISER_RECV_DSL);
			/* 8192 (the RFC 7145 default): LIO's isert posts 8 KiB
			 * receive buffers whatever it answers here, so larger
			 * immediate data or Data-Out Sends would overrun them. */
			isd_text_append(&k, "TargetRecvDataSegmentLength", "8192");
		} else {
			isd_text_appendf(&k, "MaxRecvDataSegmentLength", "%u",
					 ISD_INIT_ISER_RECV_DSL);
		}
	} else {
		isd_text_append(&k, "HeaderDigest", digest_offer(c->hd_pref));
		isd_text_append(&k, "DataDigest", digest_offer(c->dd_pref));
		isd_text_appendf(&k, "MaxRecvDataSegmentLength", "%u", ISD_INIT_MAX_RECV_DSL);
	}
	if (c->stype == ISERD_SESSION_NORMAL) {
		isd_text_append(&k, "MaxConnections", "1");
		isd_text_append(&k, "InitialR2T", "No");
		isd_text_append(&k, "ImmediateData", "Yes");
		isd_text_append(&k, "MaxBurstLength", "16776192");
		isd_text_append(&k, "FirstBurstLength", "262144");
		isd_text_appendf(&k, "MaxOutstandingR2T", "%u", ISD_INIT_MAX_R2T);
		isd_text_append(&k, "DataPDUInOrder", "Yes");
		isd_text_append(&k, "DataSequenceInOrder", "Yes");
		isd_text_append(&k, "ErrorRecoveryLevel", "0");
	}
	isd_text_append(&k, "DefaultTime2Wait", "2");
	isd_text_append(&k, "DefaultTime2Retain", "0");
	c->lstep = ISD_LS_OPERATIONAL;
	rc = send_login(c, true, ISD_STAGE_OPERATIONAL, ISD_STAGE_FFP, &k);
	isd_text_buf_fini(&k);
	return rc;
}

static int login_fail(struct isd_ictx *c, int rc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int
login_fail(struct isd_ictx *c, int rc, const char *fmt, ...)
{
	char msg[400];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (c->stype == ISERD_SESSION_NORMAL)
		isd_init_set_error(c, "login to %s at %s:%u failed: %s", c->url.target, c->url.host,
				   c->url.port, msg);
	else
		isd_init_set_error(c, "discovery login at %s:%u failed: %s", c->url.host,
				   c->url.port, msg);
	return rc;
}

static bool
parse_yes(const char *v, bool *out)
{
	return isd_key_parse_bool(v, out) == 0;
}

static bool
parse_num(const char *v, uint32_t lo, uint32_t hi, uint32_t *out)
{
	uint64_t n;

	if (isd_key_parse_u64(v, &n) < 0 || n < lo || n > hi)
		return false;
	*out = (uint32_t)n;
	return true;
}

/* Applies the target's operational answers and declarations. */
static int
apply_op_keys(struct isd_ictx *c, const struct isd_kv_list *l)
{
	struct isd_params *p = &c->params;
	int i;

	for (i = 0; i < l->count; i++) {
		const char *k = l->kv[i].key, *v = l->kv[i].value;
		char esc[ISD_LOG_ESC_MAX], kesc[ISD_LOG_ESC_MAX];
		bool b;
		uint32_t n;

		if (strcmp(k, "HeaderDigest") == 0 || strcmp(k, "DataDigest") == 0) {
			bool hd = k[0] == 'H';
			enum iserd_digest pref = c->url.transport == ISERD_TRANSPORT_ISER
						     ? ISERD_DIGEST_NONE
						     : (hd ? c->hd_pref : c->dd_pref);

			if (strcmp(v, "CRC32C") == 0)
				b = true;
			else if (strcmp(v, "None") == 0)
				b = false;
			else
				return login_fail(c, -EPROTO, "target answered %s", k);
			if (pref == ISERD_DIGEST_CRC32C && !b)
				return login_fail(c, -ENOTSUP, "target refuses %s=CRC32C", k);
			if (pref == ISERD_DIGEST_NONE && b)
				return login_fail(c, -EPROTO, "target chose a %s we did not offer",
						  k);
			if (hd)
				p->header_digest = b;
			else
				p->data_digest = b;
		} else if (strcmp(k, "MaxRecvDataSegmentLength") == 0) {
			if (!parse_num(v, 512, ISD_MAX_DSL, &n))
				return login_fail(c, -EPROTO, "bad %s", k);
			p->max_xmit_dsl = n;
		} else if (strcmp(k, "RDMAExtensions") == 0 &&
			   c->url.transport == ISERD_TRANSPORT_ISER &&
			   c->stype == ISERD_SESSION_NORMAL) {
			if (!parse_yes(v, &b) || !b)
				return login_fail(c, -EPROTO, "target answered RDMAExtensions=%s",
						  isd_log_escape_str(esc, sizeof(esc), v));
		} else if (strcmp(k, "TargetRecvDataSegmentLength") == 0 &&
			   c->url.transport == ISERD_TRANSPORT_ISER) {
			if (!parse_num(v, 512, ISD_MAX_DSL, &n))
				return login_fail(c, -EPROTO, "bad %s", k);
			p->max_xmit_dsl = n;
		} else if (strcmp(k, "InitiatorRecvDataSegmentLength") == 0 &&
			   c->url.transport == ISERD_TRANSPORT_ISER) {
			/* Our declaration echoed or lowered: we never receive more anyway. */
			if (parse_num(v, 512, ISD_MAX_DSL, &n) && n < p->max_recv_dsl)
				p->max_recv_dsl = n;
		} else if (strcmp(k, "InitialR2T") == 0 && parse_yes(v, &b)) {
			p->initial_r2t = b;
		} else if (strcmp(k, "ImmediateData") == 0 && parse_yes(v, &b)) {
			p->immediate_data = b;
		} else if (strcmp(k, "DataPDUInOrder") == 0 && parse_yes(v, &b)) {
			p->data_pdu_in_order = b;
		} else if (strcmp(k, "DataSequenceInOrder") == 0 && parse_yes(v, &b)) {
			p->data_sequence_in_order = b;
		} else if (strcmp(k, "MaxBurstLength") == 0 && parse_num(v, 512, ISD_MAX_DSL, &n)) {
			p->max_burst_length = n;
		} else if (strcmp(k, "FirstBurstLength") == 0 &&
			   parse_num(v, 512, ISD_MAX_DSL, &n)) {
			p->first_burst_length = n;
		} else if (strcmp(k, "MaxOutstandingR2T") == 0 && parse_num(v, 1, 65535, &n)) {
			p->max_outstanding_r2t = n;
		} else if (strcmp(k, "ErrorRecoveryLevel") == 0 && parse_num(v, 0, 2, &n)) {
			p->error_recovery_level = n;
		} else if (strcmp(k, "DefaultTime2Wait") == 0 && parse_num(v, 0, 3600, &n)) {
			p->default_time2wait = n;
		} else if (strcmp(k, "DefaultTime2Retain") == 0 && parse_num(v, 0, 3600, &n)) {
			p->default_time2retain = n;
		} else if (strcmp(k, "MaxConnections") == 0 && parse_num(v, 1, 65535, &n)) {
			p->max_connections = n;
		} else if (strcmp(k, "TargetAlias") == 0) {
			snprintf(c->neg.target_alias, sizeof(c->neg.target_alias), "%s", v);
		} else if (strcmp(k, "TargetPortalGroupTag") == 0 && parse_num(v, 0, 65535, &n)) {
			c->neg.tpgt = (uint16_t)n;
		} else if (strcmp(k, "TargetAddress") == 0 || strcmp(k, "TargetName") == 0 ||
			   strcmp(k, "AuthMethod") == 0 || strcmp(k, "IFMarker") == 0 ||
			   strcmp(k, "OFMarker") == 0) {
			/* informational here */
		} else if (strcmp(v, "NotUnderstood") == 0 || strcmp(v, "Irrelevant") == 0 ||
			   strcmp(v, "Reject") == 0) {
			isd_init_log(c, ISERD_LOG_DEBUG, "target answered %s=%s; default kept",
				     isd_log_escape_str(kesc, sizeof(kesc), k),
				     isd_log_escape_str(esc, sizeof(esc), v));
		} else if (!isd_key_is_known(k)) {
			/* A key the target offers that we do not know (RFC 7143 §6.2). */
			isd_text_append(&c->login_reply, k, "NotUnderstood");
		} else {
			isd_init_log(c, ISERD_LOG_DEBUG, "ignoring %s=%s from the target",
				     isd_log_escape_str(kesc, sizeof(kesc), k),
				     isd_log_escape_str(esc, sizeof(esc), v));
		}
	}
	if (c->stype == ISERD_SESSION_NORMAL) {
		if (p->error_recovery_level != 0)
			return login_fail(c, -EPROTO, "target negotiated ErrorRecoveryLevel %s",
					  "above 0");
		if (p->first_burst_length > p->max_burst_length)
			p->first_burst_length = p->max_burst_length;
		if (p->max_outstanding_r2t > ISD_INIT_MAX_R2T)
			p->max_outstanding_r2t = ISD_INIT_MAX_R2T;
	}
	return 0;
}

static void
login_complete(struct isd_ictx *c)
{
	struct iserd_negotiated *n = &c->neg;
	const struct isd_params *p = &c->params;
	struct isd_ireq *r;

	n->header_digest = p->header_digest;
	n->data_digest = p->data_digest;
	n->initial_r2t = p->initial_r2t;
	n->immediate_data = p->immediate_data;
	n->max_recv_dsl = p->max_recv_dsl;
	n->max_xmit_dsl = p->max_xmit_dsl;
	n->max_burst_length = p->max_burst_length;
	n->first_burst_length = p->first_burst_length;
	n->max_outstanding_r2t = p->max_outstanding_r2t;
	n->error_recovery_level = p->error_recovery_level;
	n->default_time2wait = p->default_time2wait;
	n->default_time2retain = p->default_time2retain;
	n->tsih = c->tsih;
	snprintf(n->target_name, sizeof(n->target_name), "%s", c->url.target);
	n->chap = c->chap_user[0] != '\0' && c->chap_alg != 0;
	n->mutual_chap = n->chap && c->mchap_user[0] != '\0';
	c->state = ISD_ICTX_FFP;
	isd_init_x_enable(c);
	c->last_rx_ns = isd_init_now_ns();
	c->nop_sent_ns = 0;
	if (c->ever_logged_in)
		c->reconnects++;
	c->ever_logged_in = true;
	c->reconnect_attempt = 0;
	isd_init_log(c, ISERD_LOG_INFO, "logged in to %s at %s:%u (TSIH %u)",
		     c->stype == ISERD_SESSION_NORMAL ? c->url.target : "discovery", c->url.host,
		     c->url.port, c->tsih);
	isd_init_kick(c);
	r = c->connect_req;
	c->connect_req = NULL;
	if (r != NULL)
		req_complete(c, r, 0, NULL);
}

/* Our CHAP_A list: the algorithms of the mask, strongest first ("8,7,6,5"). */
static void
chap_offer(const struct isd_ictx *c, char *out, size_t cap)
{
	static const int order[] = {ISD_CHAP_SHA3_256, ISD_CHAP_SHA256, ISD_CHAP_SHA1,
				    ISD_CHAP_MD5};
	size_t o = 0;

	out[0] = '\0';
	for (size_t i = 0; i < sizeof(order) / sizeof(order[0]); i++)
		if ((c->chap_algs & ISD_CHAP_ALG_BIT(order[i])) != 0 && o + 3 < cap)
			o += (size_t)snprintf(out + o, cap - o, "%s%d", o ? "," : "", order[i]);
}

/*
 * CHAP: the target's challenge arrived; answer it (and challenge it for mutual
 * CHAP). Every value is checked before we compute anything with our secret.
 */
static int
chap_answer(struct isd_ictx *c, const struct isd_kv_list *l)
{
	const char *a = isd_kv_get(l, "CHAP_A"), *i = isd_kv_get(l, "CHAP_I");
	const char *ch = isd_kv_get(l, "CHAP_C");
	uint8_t chal[1024], resp[ISD_CHAP_MAX_DIGEST];
	char hex[2 * ISD_CHAP_MAX_DIGEST + 3], chex[2 * ISD_INIT_CHAP_CHALLENGE_LEN + 3];
	char esc[ISD_LOG_ESC_MAX], offer[16];
	struct isd_text_buf k;
	uint64_t alg, id;
	int clen, rlen, rc;

	if (a == NULL || i == NULL || ch == NULL)
		return login_fail(c, -EPROTO, "target's CHAP challenge lacks %s",
				  "CHAP_A, CHAP_I or CHAP_C");
	/* One value, and one we offered: a target must not talk us down. */
	if (isd_key_parse_u64(a, &alg) < 0 || alg >= 32 ||
	    (c->chap_algs & ISD_CHAP_ALG_BIT(alg)) == 0 || isd_chap_digest_len((int)alg) == 0) {
		chap_offer(c, offer, sizeof(offer));
		return login_fail(c, -EPROTO, "target chose CHAP_A=%s, we offered %s",
				  isd_log_escape_str(esc, sizeof(esc), a), offer);
	}
	if (isd_key_parse_u64(i, &id) < 0 || id > 255)
		return login_fail(c, -EPROTO, "bad CHAP_I '%s'",
				  isd_log_escape_str(esc, sizeof(esc), i));
	clen = isd_key_parse_binary(ch, chal, sizeof(chal));
	if (clen <= 0)
		return login_fail(c, -EPROTO, "bad CHAP_C '%s'",
				  isd_log_escape_str(esc, sizeof(esc), ch));
	/*
	 * Our own last challenge played back: answering it would hand the
	 * target the response it owes us (reflection, RFC 7143 §12.1.3).
	 */
	if (c->mchap_sent && (size_t)clen == sizeof(c->mchap_chal) &&
	    memcmp(chal, c->mchap_chal, sizeof(c->mchap_chal)) == 0)
		return login_fail(c, -EACCES, "target sent back our own CHAP challenge%s", "");
	rlen = isd_chap_response((int)alg, (uint8_t)id, c->chap_secret, chal, (size_t)clen, resp,
				 sizeof(resp));
	if (rlen < 0 || isd_key_format_hex(resp, (size_t)rlen, hex, sizeof(hex)) < 0)
		return login_fail(c, -EIO, "cannot compute the CHAP response%s", "");
	c->chap_alg = (uint8_t)alg;
	isd_init_log(c, ISERD_LOG_DEBUG, "CHAP: the target chose %s (CHAP_A=%u)",
		     isd_chap_alg_name((int)alg), (unsigned int)alg);
	isd_text_buf_init(&k);
	isd_text_append(&k, "CHAP_N", c->chap_user);
	isd_text_append(&k, "CHAP_R", hex);
	if (c->mchap_user[0] != '\0') {
		/* Mutual CHAP: we challenge the target with the algorithm it chose. */
		if (isd_chap_random(&c->mchap_id, 1) < 0 ||
		    isd_chap_random(c->mchap_chal, sizeof(c->mchap_chal)) < 0) {
			isd_text_buf_fini(&k);
			return login_fail(c, -EIO, "no random bytes for a challenge%s", "");
		}
		/* Never reflect the target's own challenge back (RFC 7143 §12.1.3). */
		if ((size_t)clen == sizeof(c->mchap_chal) &&
		    memcmp(chal, c->mchap_chal, sizeof(c->mchap_chal)) == 0)
			c->mchap_chal[0] ^= 0xff;
		c->mchap_sent = true;
		isd_key_format_hex(c->mchap_chal, sizeof(c->mchap_chal), chex, sizeof(chex));
		isd_text_appendf(&k, "CHAP_I", "%u", c->mchap_id);
		isd_text_append(&k, "CHAP_C", chex);
	}
	c->lstep = ISD_LS_CHAP_R;
	rc = send_login(c, true, ISD_STAGE_SECURITY, ISD_STAGE_OPERATIONAL, &k);
	isd_text_buf_fini(&k);
	return rc;
}

static int
chap_verify_target(struct isd_ictx *c, const struct isd_kv_list *l)
{
	const char *n = isd_kv_get(l, "CHAP_N"), *r = isd_kv_get(l, "CHAP_R");
	uint8_t want[ISD_CHAP_MAX_DIGEST], got[ISD_CHAP_MAX_DIGEST];
	char esc[ISD_LOG_ESC_MAX];
	int wl, gl;

	if (n == NULL || r == NULL)
		return login_fail(c, -EACCES,
				  "mutual CHAP: the target did not answer our challenge%s", "");
	if (strcmp(n, c->mchap_user) != 0)
		return login_fail(c, -EACCES, "mutual CHAP: the target answered as '%s'",
				  isd_log_escape_str(esc, sizeof(esc), n));
	wl = isd_chap_response(c->chap_alg, c->mchap_id, c->mchap_secret, c->mchap_chal,
			       sizeof(c->mchap_chal), want, sizeof(want));
	gl = isd_key_parse_binary(r, got, sizeof(got));
	if (wl <= 0 || gl != wl || CRYPTO_memcmp(want, got, (size_t)wl) != 0)
		return login_fail(c, -EACCES,
				  "mutual CHAP: the target's response is wrong "
				  "(wrong target secret?)%s",
				  "");
	return 0;
}

static int
rx_login_rsp(struct isd_ictx *c, struct isd_pdu *pdu)
{
	const uint8_t *bhs = pdu->bhs;
	uint8_t flags = bhs[1];
	bool transit = (flags & ISD_LOGIN_T) != 0;
	uint16_t status = get_be16(bhs + 36);
	struct isd_kv_list l;
	int rc;

	if (c->state != ISD_ICTX_LOGIN)
		return login_fail(c, -EPROTO, "unexpected %s", "Login Response");
	if (isd_bhs_itt(bhs) != c->login_itt)
		return login_fail(c, -EPROTO, "Login Response with a wrong ITT%s", "");
	c->login_status = status;
	isd_init_statsn_update(c, bhs);
	if (status != 0) {
		char what[320], esc[ISD_LOG_ESC_MAX];
		int err = (status >> 8) == 2 ? -EACCES : (status >> 8) == 1 ? -EXDEV : -EIO;
		const char *addr = NULL;
		struct isd_kv_list rl;
		bool have = false;

		if (pdu->data_len > 0 && isd_kv_parse(pdu->data, pdu->data_len, &rl) == 0) {
			have = true;
			addr = isd_kv_get(&rl, "TargetAddress");
		}
		snprintf(what, sizeof(what), "%s (status 0x%04x)%s%s", isd_login_status_str(status),
			 status, addr ? ", redirected to " : "",
			 addr ? isd_log_escape_str(esc, sizeof(esc), addr) : "");
		if (have)
			isd_kv_list_fini(&rl);
		return login_fail(c, err, "%s", what);
	}
	if (bhs[2] != 0 && bhs[3] != 0)
		return login_fail(c, -EPROTO, "target's version %s", "is not 0");
	if (ISD_LOGIN_CSG(flags) != c->login_csg)
		return login_fail(c, -EPROTO, "target answered in another stage%s", "");
	/* A login response sets the window outright: a new session (or a
	 * reinstated one) starts its own numbering. */
	if (!sn_lt(get_be32(bhs + 32), get_be32(bhs + 28) - 1)) {
		c->exp_cmdsn = get_be32(bhs + 28);
		c->max_cmdsn = get_be32(bhs + 32);
	}

	/* Collect a text split over several responses (C bit, RFC 7143 §6.3). */
	if (pdu->data_len > 0) {
		char *nt = realloc(c->login_text, c->login_text_len + pdu->data_len);

		if (nt == NULL)
			return -ENOMEM;
		memcpy(nt + c->login_text_len, pdu->data, pdu->data_len);
		c->login_text = nt;
		c->login_text_len += pdu->data_len;
		if (c->login_text_len > 65536)
			return login_fail(c, -EPROTO, "login text too long%s", "");
	}
	if (flags & ISD_LOGIN_C)
		return send_login(c, false, c->login_csg, 0, NULL);

	memset(&l, 0, sizeof(l));
	if (c->login_text_len > 0) {
		rc = isd_kv_parse((const uint8_t *)c->login_text, c->login_text_len, &l);
		free(c->login_text);
		c->login_text = NULL;
		c->login_text_len = 0;
		if (rc < 0)
			return login_fail(c, -EPROTO, "target sent malformed login text%s", "");
	}
	if (transit)
		c->tsih = get_be16(bhs + 14);
	isd_text_buf_fini(&c->login_reply);
	isd_text_buf_init(&c->login_reply);
	{
		const char *v = isd_kv_get(&l, "TargetPortalGroupTag");
		uint64_t n;

		if (v != NULL && isd_key_parse_u64(v, &n) == 0 && n <= 65535)
			c->neg.tpgt = (uint16_t)n;
		v = isd_kv_get(&l, "TargetAlias");
		if (v != NULL)
			snprintf(c->neg.target_alias, sizeof(c->neg.target_alias), "%s", v);
	}

	rc = 0;
	switch (c->lstep) {
	case ISD_LS_SECURITY: {
		const char *am = isd_kv_get(&l, "AuthMethod");

		if (c->chap_user[0] != '\0' && am != NULL && strcmp(am, "CHAP") == 0) {
			struct isd_text_buf k;
			char offer[16];

			chap_offer(c, offer, sizeof(offer));
			isd_text_buf_init(&k);
			isd_text_append(&k, "CHAP_A", offer);
			c->lstep = ISD_LS_CHAP_A;
			rc = send_login(c, false, ISD_STAGE_SECURITY, ISD_STAGE_OPERATIONAL, &k);
			isd_text_buf_fini(&k);
			break;
		}
		if (am != NULL && strcmp(am, "None") != 0 && strcmp(am, "CHAP") != 0) {
			char esc[ISD_LOG_ESC_MAX];

			rc = login_fail(c, -EACCES, "target answered AuthMethod=%s",
					isd_log_escape_str(esc, sizeof(esc), am));
			break;
		}
		if (am != NULL && strcmp(am, "CHAP") == 0) {
			rc = login_fail(c, -EACCES, "%s",
					"target requires CHAP; give a user and secret "
					"(iscsi://user%secret@host/...)");
			break;
		}
		if (c->mchap_user[0] != '\0') {
			rc = login_fail(c, -EACCES, "%s",
					"mutual CHAP requested but the target does not "
					"authenticate");
			break;
		}
		c->chap_alg = 0;
		if (transit && ISD_LOGIN_NSG(flags) == ISD_STAGE_OPERATIONAL)
			rc = send_operational(c);
		else if (transit && ISD_LOGIN_NSG(flags) == ISD_STAGE_FFP)
			login_complete(c);
		else
			rc = send_login(c, true, ISD_STAGE_SECURITY, ISD_STAGE_OPERATIONAL, NULL);
		break;
	}
	case ISD_LS_CHAP_A:
		rc = chap_answer(c, &l);
		break;
	case ISD_LS_CHAP_R:
		if (c->mchap_user[0] != '\0') {
			rc = chap_verify_target(c, &l);
			if (rc < 0)
				break;
		}
		if (!transit) {
			rc = send_login(c, true, ISD_STAGE_SECURITY, ISD_STAGE_OPERATIONAL, NULL);
			break;
		}
		rc = send_operational(c);
		break;
	case ISD_LS_OPERATIONAL:
		rc = apply_op_keys(c, &l);
		if (rc < 0)
			break;
		if (transit && ISD_LOGIN_NSG(flags) == ISD_STAGE_FFP) {
			login_complete(c);
			break;
		}
		rc = send_login(c, true, ISD_STAGE_OPERATIONAL, ISD_STAGE_FFP, &c->login_reply);
		break;
	}
	isd_kv_list_fini(&l);
	return rc;
}

/*
 * A request of full feature phase: its record and its PDU (immediate, F set,
 * its ITT), or -errno with nothing kept. The caller fills in the rest and
 * queues both.
 */
static int
ffp_req(struct isd_ictx *c, enum isd_ireq_kind kind, uint8_t opcode, iserd_cb cb, void *cb_arg,
	struct isd_ireq **rp, struct isd_pdu **pp)
{
	struct isd_ireq *r;
	struct isd_pdu *pdu;

	if (c->state != ISD_ICTX_FFP) {
		isd_init_set_error(c, "not logged in");
		return -ENOTCONN;
	}
	r = req_new(c, kind, cb, cb_arg);
	if (r == NULL)
		return -ENOMEM;
	pdu = isd_init_ctl_pdu(c, opcode | ISD_BHS_I, 0);
	if (pdu == NULL) {
		free(r);
		return -ENOMEM;
	}
	pdu->bhs[1] = ISD_BHS_F;
	put_be32(pdu->bhs + 16, r->itt);
	*rp = r;
	*pp = pdu;
	return 0;
}

/* ---- connect / reconnect ---- */

static int
start_connect(struct isd_ictx *c)
{
	int rc;

	rc = isd_init_x_connect(c);
	if (rc < 0)
		return rc;
	c->state = ISD_ICTX_CONNECTING;
	c->login_deadline_ns = isd_init_now_ns() + (uint64_t)c->login_timeout_ms * 1000000ull;
	return 0;
}

int
iserd_connect_async(struct iserd_context *pub, const struct iserd_url *url,
		    enum iserd_session_type type, iserd_cb cb, void *cb_arg)
{
	struct isd_ictx *c = &pub->c;
	struct isd_ireq *r;
	int rc;

	if (url == NULL || (type != ISERD_SESSION_NORMAL && type != ISERD_SESSION_DISCOVERY))
		return -EINVAL;
	if (c->state != ISD_ICTX_IDLE && c->state != ISD_ICTX_FAILED) {
		isd_init_set_error(c, "already connected");
		return -EISCONN;
	}
	if (type == ISERD_SESSION_NORMAL && url->target[0] == '\0') {
		isd_init_set_error(c, "no target name to log in to");
		return -EINVAL;
	}
	c->url = *url;
	c->stype = type;
	if (url->user[0] != '\0' && iserd_set_chap(pub, url->user, url->password) < 0)
		return -EINVAL;
	if (url->target_user[0] != '\0' &&
	    iserd_set_mutual_chap(pub, url->target_user, url->target_password) < 0)
		return -EINVAL;
	if (c->mchap_user[0] != '\0' && c->chap_user[0] == '\0') {
		isd_init_set_error(c, "mutual CHAP needs a CHAP user and secret too");
		return -EINVAL;
	}
	if (url->header_digest >= 0)
		c->hd_pref = (enum iserd_digest)url->header_digest;
	if (url->data_digest >= 0)
		c->dd_pref = (enum iserd_digest)url->data_digest;
	if (c->slots == NULL && type == ISERD_SESSION_NORMAL) {
		rc = isd_init_slots_alloc(c);
		if (rc < 0)
			return rc;
	}
	r = req_new(c, ISD_IREQ_CONNECT, cb, cb_arg);
	if (r == NULL)
		return -ENOMEM;
	if (!c->isid[0]) {
		/* ISID type 0x80 "random" format (RFC 7143 §11.12.5). */
		c->isid[0] = 0x80;
		if (isd_chap_random(c->isid + 1, 5) < 0) {
			c->isid[0] = 0;
			free(r);
			return -EIO;
		}
		c->cmdsn = 1;
	}
	c->exp_cmdsn = 0;
	c->max_cmdsn = 0;
	c->reconnect_attempt = 0;
	c->err[0] = '\0';
	rc = start_connect(c);
	if (rc < 0) {
		free(r);
		c->state = ISD_ICTX_IDLE;
		return rc;
	}
	c->connect_req = r;
	return 0;
}

void
isd_init_connected(struct isd_ictx *c, int rc)
{
	if (rc == 0)
		rc = isd_init_login_start(c);
	if (rc < 0)
		isd_init_conn_failed(c, rc);
}

static void
schedule_reconnect(struct isd_ictx *c)
{
	c->state = ISD_ICTX_RECONNECT_WAIT;
	c->reconnect_at_ns =
	    isd_init_now_ns() +
	    (c->reconnect_attempt == 0 ? 0 : (uint64_t)c->reconnect_interval_ms * 1000000ull);
}

void
isd_init_conn_failed(struct isd_ictx *c, int rc)
{
	enum isd_ictx_state st = c->state;
	bool reconnecting = st != ISD_ICTX_FFP && c->connect_req == NULL && c->ever_logged_in &&
			    c->reconnect != ISERD_RECONNECT_OFF;
	char reason[512];

	isd_init_x_disconnect(c);
	snprintf(reason, sizeof(reason), "%s", c->err[0] ? c->err : strerror(-rc));
	switch (st) {
	case ISD_ICTX_CONNECTING:
	case ISD_ICTX_LOGIN:
		if (reconnecting && rc != -EACCES && c->reconnect_attempt < c->reconnect_max) {
			isd_init_log(c, ISERD_LOG_WARN, "reconnect attempt %u failed: %s",
				     c->reconnect_attempt, reason);
			schedule_reconnect(c);
			return;
		}
		if (reconnecting) {
			isd_init_set_error(c,
					   "connection to %s:%u lost and not re-established "
					   "after %u attempts: %s",
					   c->url.host, c->url.port, c->reconnect_attempt, reason);
			c->state = ISD_ICTX_FAILED;
			isd_init_tasks_conn_lost(c, -ECONNRESET, false);
			isd_init_fail_reqs(c, -ECONNRESET);
			return;
		}
		c->state = ISD_ICTX_IDLE;
		isd_init_fail_reqs(c, rc);
		return;
	case ISD_ICTX_FFP:
		isd_init_set_error(c, "connection to %s:%u lost: %s", c->url.host, c->url.port,
				   reason);
		isd_init_log(c, ISERD_LOG_WARN, "%s", c->err);
		isd_init_fail_reqs(c, -ECONNRESET);
		if (c->reconnect != ISERD_RECONNECT_OFF && c->stype == ISERD_SESSION_NORMAL) {
			/* Reconnecting first: what callbacks submit now waits for the login. */
			c->reconnect_attempt = 0;
			schedule_reconnect(c);
			isd_init_tasks_conn_lost(c, -ECONNRESET,
						 c->reconnect == ISERD_RECONNECT_RETRY);
			return;
		}
		c->state = ISD_ICTX_FAILED;
		isd_init_tasks_conn_lost(c, -ECONNRESET, false);
		return;
	case ISD_ICTX_LOGOUT:
		/* The target closed first: the session is over either way. */
		c->state = ISD_ICTX_IDLE;
		isd_init_tasks_conn_lost(c, -ECONNRESET, false);
		{
			struct isd_ireq *r;

			while ((r = TAILQ_FIRST(&c->reqs)) != NULL) {
				TAILQ_REMOVE(&c->reqs, r, link);
				req_complete(c, r, r->kind == ISD_IREQ_LOGOUT ? 0 : -ECONNRESET,
					     NULL);
			}
		}
		return;
	default:
		return;
	}
}

void
isd_init_timers(struct isd_ictx *c)
{
	uint64_t now = isd_init_now_ns();

	switch (c->state) {
	case ISD_ICTX_CONNECTING:
	case ISD_ICTX_LOGIN:
	case ISD_ICTX_LOGOUT:
		if (now >= c->login_deadline_ns) {
			isd_init_set_error(c, "%s %s:%u timed out",
					   c->state == ISD_ICTX_LOGOUT	? "logout from"
					   : c->state == ISD_ICTX_LOGIN ? "login to"
									: "connect to",
					   c->url.host, c->url.port);
			isd_init_conn_failed(c, -ETIMEDOUT);
		}
		break;
	case ISD_ICTX_RECONNECT_WAIT:
		if (now >= c->reconnect_at_ns) {
			int rc;

			c->reconnect_attempt++;
			isd_init_log(c, ISERD_LOG_INFO, "reconnecting to %s:%u (attempt %u)",
				     c->url.host, c->url.port, c->reconnect_attempt);
			c->exp_cmdsn = 0;
			c->max_cmdsn = 0;
			rc = start_connect(c);
			if (rc < 0) {
				c->state = ISD_ICTX_CONNECTING;
				isd_init_conn_failed(c, rc);
			}
		}
		break;
	case ISD_ICTX_FFP:
		if (c->nop_interval_ms == 0)
			break;
		if (c->nop_sent_ns != 0 &&
		    now - c->last_rx_ns >= (uint64_t)c->nop_timeout_ms * 1000000ull) {
			isd_init_set_error(
			    c, "target %s:%u did not answer a NOP-Out ping within %u ms",
			    c->url.host, c->url.port, c->nop_timeout_ms);
			isd_init_conn_failed(c, -ETIMEDOUT);
		} else if (c->nop_sent_ns == 0 &&
			   now - c->last_rx_ns >= (uint64_t)c->nop_interval_ms * 1000000ull) {
			struct isd_ireq *r;
			struct isd_pdu *pdu;

			if (ffp_req(c, ISD_IREQ_NOP, ISD_OP_NOP_OUT, NULL, NULL, &r, &pdu) < 0)
				break;
			r->internal = true;
			put_be32(pdu->bhs + 20, ISD_RSVD_TAG);
			put_be32(pdu->bhs + 24, c->cmdsn);
			TAILQ_INSERT_TAIL(&c->reqs, r, link);
			isd_init_send_pdu(c, pdu);
			c->nop_sent_ns = now;
		}
		break;
	default:
		break;
	}
}

/* ---- logout ---- */

int
iserd_logout_async(struct iserd_context *pub, iserd_cb cb, void *cb_arg)
{
	struct isd_ictx *c = &pub->c;
	struct isd_ireq *r;
	struct isd_pdu *pdu;
	int rc = ffp_req(c, ISD_IREQ_LOGOUT, ISD_OP_LOGOUT_REQ, cb, cb_arg, &r, &pdu);

	if (rc < 0)
		return rc;
	pdu->bhs[1] |= ISD_LOGOUT_CLOSE_SESSION;
	put_be16(pdu->bhs + 20, c->cid);
	put_be32(pdu->bhs + 24, c->cmdsn);
	TAILQ_INSERT_TAIL(&c->reqs, r, link);
	isd_init_send_pdu(c, pdu);
	c->state = ISD_ICTX_LOGOUT;
	c->login_deadline_ns = isd_init_now_ns() + 5000000000ull;
	return 0;
}

static int
rx_logout_rsp(struct isd_ictx *c, struct isd_pdu *pdu)
{
	struct isd_ireq *r = req_find(c, isd_bhs_itt(pdu->bhs));
	uint8_t resp = pdu->bhs[2];

	if (r == NULL || r->kind != ISD_IREQ_LOGOUT) {
		isd_init_set_error(c, "unexpected Logout Response");
		return -EPROTO;
	}
	TAILQ_REMOVE(&c->reqs, r, link);
	isd_init_x_disconnect(c);
	c->state = ISD_ICTX_IDLE;
	isd_init_tasks_conn_lost(c, -ECONNRESET, false);
	isd_init_fail_reqs(c, -ECONNRESET);
	if (resp != ISD_LOGOUT_RSP_OK)
		isd_init_set_error(c, "logout response %u (cleanup failed at the target)", resp);
	req_complete(c, r, resp == ISD_LOGOUT_RSP_OK ? 0 : -EIO, NULL);
	return 0;
}

/* ---- discovery ---- */

static int
send_text(struct isd_ictx *c, struct isd_ireq *r, uint32_t ttt, const char *k, const char *v)
{
	struct isd_text_buf t;
	struct isd_pdu *pdu;

	isd_text_buf_init(&t);
	if (k != NULL)
		isd_text_append(&t, k, v);
	if (t.oom) {
		isd_text_buf_fini(&t);
		return -ENOMEM;
	}
	pdu = isd_init_ctl_pdu(c, ISD_OP_TEXT_REQ | ISD_BHS_I, t.len);
	if (pdu == NULL) {
		isd_text_buf_fini(&t);
		return -ENOMEM;
	}
	if (t.len > 0)
		memcpy(pdu->data, t.buf, t.len);
	isd_text_buf_fini(&t);
	pdu->bhs[1] = ISD_BHS_F;
	put_be64(pdu->bhs + 8, 0);
	put_be32(pdu->bhs + 16, r->itt);
	put_be32(pdu->bhs + 20, ttt);
	put_be32(pdu->bhs + 24, c->cmdsn);
	isd_init_send_pdu(c, pdu);
	return 0;
}

int
iserd_discover_async(struct iserd_context *pub, iserd_cb cb, void *cb_arg)
{
	struct isd_ictx *c = &pub->c;
	struct isd_ireq *r;
	int rc;

	if (c->state != ISD_ICTX_FFP) {
		isd_init_set_error(c, "not logged in");
		return -ENOTCONN;
	}
	r = req_new(c, ISD_IREQ_DISCOVER, cb, cb_arg);
	if (r == NULL)
		return -ENOMEM;
	rc = send_text(c, r, ISD_RSVD_TAG, "SendTargets", "All");
	if (rc < 0) {
		free(r);
		return rc;
	}
	TAILQ_INSERT_TAIL(&c->reqs, r, link);
	return 0;
}

void
iserd_discovery_free(struct iserd_discovery *d)
{
	while (d != NULL) {
		struct iserd_discovery *next = d->next;
		struct iserd_discovery_portal *p = d->portals;

		while (p != NULL) {
			struct iserd_discovery_portal *pn = p->next;

			free(p->address);
			free(p);
			p = pn;
		}
		free(d->target_name);
		free(d);
		d = next;
	}
}

static int
parse_sendtargets(const char *text, uint32_t len, struct iserd_discovery **out)
{
	struct iserd_discovery *head = NULL, **tail = &head, *cur = NULL;
	uint32_t off = 0;

	*out = NULL;
	while (off < len) {
		const char *kv = text + off;
		size_t n = strnlen(kv, len - off);
		const char *eq;

		if (n == len - off)
			break; /* not NUL-terminated: ignore the fragment */
		off += (uint32_t)n + 1;
		if (n == 0)
			continue;
		eq = memchr(kv, '=', n);
		if (eq == NULL)
			continue;
		if ((size_t)(eq - kv) == 10 && strncmp(kv, "TargetName", 10) == 0) {
			cur = calloc(1, sizeof(*cur));
			if (cur == NULL || (cur->target_name = strdup(eq + 1)) == NULL) {
				free(cur);
				iserd_discovery_free(head);
				return -ENOMEM;
			}
			*tail = cur;
			tail = &cur->next;
		} else if ((size_t)(eq - kv) == 13 && strncmp(kv, "TargetAddress", 13) == 0 &&
			   cur != NULL) {
			struct iserd_discovery_portal *p = calloc(1, sizeof(*p)), **pt;
			const char *comma;

			if (p == NULL || (p->address = strdup(eq + 1)) == NULL) {
				free(p);
				iserd_discovery_free(head);
				return -ENOMEM;
			}
			comma = strrchr(p->address, ',');
			if (comma != NULL) {
				p->tpgt = atoi(comma + 1);
				p->address[comma - p->address] = '\0';
			}
			for (pt = &cur->portals; *pt != NULL; pt = &(*pt)->next)
				;
			*pt = p;
		}
	}
	*out = head;
	return 0;
}

static int
rx_text_rsp(struct isd_ictx *c, struct isd_pdu *pdu)
{
	struct isd_ireq *r = req_find(c, isd_bhs_itt(pdu->bhs));
	struct iserd_discovery *list = NULL;
	uint8_t flags = pdu->bhs[1];
	int rc;

	if (r == NULL || r->kind != ISD_IREQ_DISCOVER) {
		isd_init_set_error(c, "unexpected Text Response");
		return -EPROTO;
	}
	if (pdu->data_len > 0) {
		char *nt;

		if (r->text_len + pdu->data_len > (16u << 20)) {
			isd_init_set_error(c, "SendTargets answer too long");
			return -EPROTO;
		}
		nt = realloc(r->text, r->text_len + pdu->data_len);
		if (nt == NULL)
			return -ENOMEM;
		memcpy(nt + r->text_len, pdu->data, pdu->data_len);
		r->text = nt;
		r->text_len += pdu->data_len;
	}
	if ((flags & ISD_TEXT_C) || !(flags & ISD_BHS_F))
		return send_text(c, r, isd_bhs_ttt(pdu->bhs), NULL, NULL);
	TAILQ_REMOVE(&c->reqs, r, link);
	rc = parse_sendtargets(r->text, r->text_len, &list);
	req_complete(c, r, rc, list);
	return 0;
}

/* ---- NOP ---- */

int
iserd_nop_async(struct iserd_context *pub, iserd_cb cb, void *cb_arg)
{
	struct isd_ictx *c = &pub->c;
	struct isd_ireq *r;
	struct isd_pdu *pdu;
	int rc = ffp_req(c, ISD_IREQ_NOP, ISD_OP_NOP_OUT, cb, cb_arg, &r, &pdu);

	if (rc < 0)
		return rc;
	put_be32(pdu->bhs + 20, ISD_RSVD_TAG);
	put_be32(pdu->bhs + 24, c->cmdsn);
	TAILQ_INSERT_TAIL(&c->reqs, r, link);
	isd_init_send_pdu(c, pdu);
	return 0;
}

static int
rx_nop_in(struct isd_ictx *c, struct isd_pdu *pdu)
{
	uint32_t itt = isd_bhs_itt(pdu->bhs), ttt = isd_bhs_ttt(pdu->bhs);

	if (itt != ISD_RSVD_TAG) {
		struct isd_ireq *r = req_find(c, itt);

		isd_init_statsn_update(c, pdu->bhs);
		if (r != NULL && r->internal)
			isd_init_log(c, ISERD_LOG_DEBUG, "keepalive ping answered");
		if (r == NULL || r->kind != ISD_IREQ_NOP) {
			isd_init_set_error(c, "NOP-In for an unknown ping (ITT 0x%08x)", itt);
			return -EPROTO;
		}
		TAILQ_REMOVE(&c->reqs, r, link);
		req_complete(c, r, 0, NULL);
		return 0;
	}
	if (ttt != ISD_RSVD_TAG) {
		/* The target pings us: answer with its TTT and its data (RFC 7143 §11.18). */
		uint32_t len = pdu->data_len <= c->params.max_xmit_dsl ? pdu->data_len : 0;
		struct isd_pdu *o = isd_init_ctl_pdu(c, ISD_OP_NOP_OUT | ISD_BHS_I, len);

		if (o == NULL)
			return -ENOMEM;
		isd_init_log(c, ISERD_LOG_DEBUG, "answering the target's NOP-In ping (TTT 0x%08x)",
			     ttt);
		o->bhs[1] = ISD_BHS_F;
		memcpy(o->bhs + 8, pdu->bhs + 8, 8);
		put_be32(o->bhs + 16, ISD_RSVD_TAG);
		put_be32(o->bhs + 20, ttt);
		put_be32(o->bhs + 24, c->cmdsn);
		if (len > 0)
			memcpy(o->data, pdu->data, len);
		isd_init_send_pdu(c, o);
	}
	return 0;
}

/* ---- task management ---- */

static int
send_tmf(struct isd_ictx *c, uint8_t function, uint64_t lun_field, struct isd_itask *ref,
	 iserd_cb cb, void *cb_arg)
{
	struct isd_ireq *r;
	struct isd_pdu *pdu;
	int rc = ffp_req(c, ISD_IREQ_TMF, ISD_OP_TMF_REQ, cb, cb_arg, &r, &pdu);

	if (rc < 0)
		return rc;
	r->tmf_function = function;
	r->tmf_lun = lun_field;
	r->tmf_ref = ref;
	r->tmf_ref_itt = ref != NULL ? ref->itt : ISD_RSVD_TAG;
	pdu->bhs[1] = ISD_BHS_F | function;
	put_be64(pdu->bhs + 8, lun_field);
	put_be32(pdu->bhs + 16, r->itt);
	put_be32(pdu->bhs + 20, r->tmf_ref_itt);
	put_be32(pdu->bhs + 24, c->cmdsn);
	put_be32(pdu->bhs + 32, ref != NULL && ref->state == ISD_IT_SENT ? ref->cmdsn : c->cmdsn);
	TAILQ_INSERT_TAIL(&c->reqs, r, link);
	isd_init_send_pdu(c, pdu);
	return 0;
}

int
iserd_task_abort_async(struct iserd_context *pub, struct iserd_task *t, iserd_cb cb, void *cb_arg)
{
	struct isd_ictx *c = &pub->c;
	struct isd_itask *it = t != NULL ? t->priv : NULL;
	int rc;

	if (it == NULL || it->t != t || it->state == ISD_IT_FREE) {
		isd_init_set_error(c, "task is not outstanding");
		return -ENOENT;
	}
	rc = send_tmf(c, ISD_TMF_ABORT_TASK, it->lun_field, it, cb, cb_arg);
	if (rc < 0)
		return rc;
	if (it->state == ISD_IT_WAITING) {
		/* Never sent: keep it from going out; it completes with the TMF response. */
		TAILQ_REMOVE(&c->waiting, it, link);
		it->state = ISD_IT_SENT;
		TAILQ_INSERT_TAIL(&c->sent, it, link);
	}
	return 0;
}

int
iserd_lun_reset_async(struct iserd_context *pub, uint64_t lun, iserd_cb cb, void *cb_arg)
{
	return send_tmf(&pub->c, ISD_TMF_LUN_RESET, isd_init_lun_field(lun), NULL, cb, cb_arg);
}

static int
rx_tmf_rsp(struct isd_ictx *c, struct isd_pdu *pdu)
{
	struct isd_ireq *r = req_find(c, isd_bhs_itt(pdu->bhs));
	uint8_t resp = pdu->bhs[2];
	int status;

	if (r == NULL || r->kind != ISD_IREQ_TMF) {
		isd_init_set_error(c, "unexpected Task Management Response");
		return -EPROTO;
	}
	TAILQ_REMOVE(&c->reqs, r, link);
	r->tmf_response = resp;
	status = resp == ISD_TMF_RSP_COMPLETE || resp == ISD_TMF_RSP_NO_TASK ? 0 : -EIO;
	if (status == 0) {
		struct isd_itask *it, *tmp;

		/* RFC 7143 §11.6.1: the response comes after every response of the
		 * affected tasks; those still here will never get one. */
		TAILQ_FOREACH_SAFE(it, &c->sent, link, tmp) {
			bool hit = r->tmf_function == ISD_TMF_ABORT_TASK
				       ? it->itt == r->tmf_ref_itt
				       : it->lun_field == r->tmf_lun;

			if (hit) {
				isd_init_set_error(c, "command aborted by task management");
				isd_init_task_done(c, it, -ECANCELED);
			}
		}
	} else {
		isd_init_set_error(c, "task management function %u refused: response %u",
				   r->tmf_function, resp);
	}
	req_complete(c, r, status, &r->tmf_response);
	return 0;
}

/* ---- async messages and rejects ---- */

static int
rx_async(struct isd_ictx *c, struct isd_pdu *pdu)
{
	uint8_t ev = pdu->bhs[36];

	isd_init_statsn_update(c, pdu->bhs);
	switch (ev) {
	case ISD_ASYNC_SCSI_EVENT:
		isd_init_log(c, ISERD_LOG_INFO, "target reported a SCSI asynchronous event");
		return 0;
	case ISD_ASYNC_LOGOUT_REQUEST:
		isd_init_set_error(c, "target %s:%u requests a logout (it is going away)",
				   c->url.host, c->url.port);
		return -ECONNRESET;
	case ISD_ASYNC_DROP_CONNECTION:
	case ISD_ASYNC_DROP_ALL_CONNECTIONS:
		isd_init_set_error(c, "target %s:%u is dropping the connection", c->url.host,
				   c->url.port);
		return -ECONNRESET;
	default:
		isd_init_log(c, ISERD_LOG_INFO, "asynchronous event %u ignored", ev);
		return 0;
	}
}

static int
rx_reject(struct isd_ictx *c, struct isd_pdu *pdu)
{
	uint8_t reason = pdu->bhs[2];
	uint32_t itt;
	struct isd_itask *it;
	struct isd_ireq *r;

	isd_init_statsn_update(c, pdu->bhs);
	if (pdu->data_len < ISD_BHS_LEN) {
		isd_init_set_error(c, "target rejected a PDU: %s", isd_reject_reason_str(reason));
		return -EPROTO;
	}
	itt = isd_bhs_itt(pdu->data);
	isd_init_set_error(c, "target rejected a %s: %s",
			   isd_opcode_name(isd_bhs_opcode(pdu->data)),
			   isd_reject_reason_str(reason));
	isd_init_log(c, ISERD_LOG_WARN, "%s", c->err);
	it = isd_init_task_by_itt(c, itt);
	if (it != NULL) {
		isd_init_task_done(c, it, -EIO);
		return 0;
	}
	r = req_find(c, itt);
	if (r != NULL) {
		TAILQ_REMOVE(&c->reqs, r, link);
		if (r->kind == ISD_IREQ_TMF) {
			r->tmf_response = ISD_TMF_RSP_REJECTED;
			req_complete(c, r, -EIO, &r->tmf_response);
		} else {
			req_complete(c, r, -EIO, NULL);
		}
	}
	return 0;
}

int
isd_init_rx_pdu(struct isd_ictx *c, struct isd_pdu *pdu)
{
	uint8_t op = isd_bhs_opcode(pdu->bhs);

	if (c->state == ISD_ICTX_LOGIN) {
		if (op != ISD_OP_LOGIN_RSP) {
			isd_init_set_error(c, "target sent a %s during login", isd_opcode_name(op));
			return -EPROTO;
		}
		return rx_login_rsp(c, pdu);
	}
	isd_init_sn_update(c, pdu->bhs);
	switch (op) {
	case ISD_OP_SCSI_RSP:
		return isd_init_rx_scsi_rsp(c, pdu);
	case ISD_OP_R2T:
		return isd_init_rx_r2t(c, pdu);
	case ISD_OP_NOP_IN:
		return rx_nop_in(c, pdu);
	case ISD_OP_TMF_RSP:
		isd_init_statsn_update(c, pdu->bhs);
		return rx_tmf_rsp(c, pdu);
	case ISD_OP_TEXT_RSP:
		isd_init_statsn_update(c, pdu->bhs);
		return rx_text_rsp(c, pdu);
	case ISD_OP_LOGOUT_RSP:
		isd_init_statsn_update(c, pdu->bhs);
		return rx_logout_rsp(c, pdu);
	case ISD_OP_ASYNC_MSG:
		return rx_async(c, pdu);
	case ISD_OP_REJECT:
		return rx_reject(c, pdu);
	default:
		isd_init_set_error(c, "target sent an unexpected %s", isd_opcode_name(op));
		return -EPROTO;
	}
}
