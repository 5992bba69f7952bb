/*
 * Text requests in full feature phase (RFC 7143 §11.10, §11.11): SendTargets
 * (§13.3, appendix D) and other keys, with C-bit continuation both ways.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "iscsi/core.h"
#include "util/log.h"

void
isd_text_reset(struct isd_conn *c)
{
	free(c->text.req_buf);
	free(c->text.rsp_buf);
	memset(&c->text, 0, sizeof(c->text));
	c->text.ttt = ISD_RSVD_TAG;
	c->text.itt = ISD_RSVD_TAG;
}

/* The instance's counter, shared by every reactor's connections (a TTT need only be
 * unique on its connection, but one counter costs nothing on this path). */
static uint32_t
new_ttt(struct isd_conn *c)
{
	uint32_t ttt = __atomic_fetch_add(&c->tgt->next_ttt, 1, __ATOMIC_RELAXED);

	if (ttt == ISD_RSVD_TAG)
		ttt = __atomic_fetch_add(&c->tgt->next_ttt, 1, __ATOMIC_RELAXED);
	return ttt;
}

static int
append_address(struct isd_text_buf *out, const char *host, uint16_t port, uint16_t tpgt)
{
	bool v6 = strchr(host, ':') != NULL && host[0] != '[';

	return isd_text_appendf(out, "TargetAddress", "%s%s%s:%u,%u", v6 ? "[" : "", host,
				v6 ? "]" : "", port, tpgt);
}

static bool
acl_allows(const struct isd_tnode *n, const char *iname)
{
	if (n->acl_count <= 0 || n->acl == NULL)
		return true;
	for (int i = 0; i < n->acl_count; i++) {
		if (n->acl[i] != NULL && strcasecmp(n->acl[i], iname) == 0)
			return true;
	}
	return false;
}

/*
 * A target and its addresses: the portals it is bound to, of the asking
 * connection's transport only (an iSER initiator cannot use a TCP portal, and a
 * TCP one need not learn of RDMA addresses).
 */
static int
append_node(struct isd_conn *c, const struct isd_tnode *n, struct isd_text_buf *out)
{
	struct isd_iscsi_tgt *t = c->tgt;
	const struct isd_portal_cfg *p;
	bool any = false;
	int rc;

	rc = isd_text_append(out, "TargetName", n->name);
	TAILQ_FOREACH(p, &t->portals, link) {
		const char *host = isd_tgt_wildcard_host(p->host) ? c->info.local_addr : p->host;

		if (host[0] == '\0' || p->transport != c->info.transport ||
		    !isd_tnode_on_portal(n, p))
			continue;
		rc = append_address(out, host, p->port, p->tpgt ? p->tpgt : n->tpgt);
		any = true;
	}
	if (!any && !n->bound && c->info.local_addr[0] != '\0')
		rc = append_address(out, c->info.local_addr, c->info.local_port,
				    c->info.tpgt ? c->info.tpgt : n->tpgt);
	return rc;
}

/*
 * Appends the SendTargets answer for `value` ("All", a target name, or ""). A
 * discovery session names only the targets reachable on the portal it came in
 * on: a target bound to other portals is not announced there (a portal on a
 * management network does not list what only the storage network serves).
 */
int
isd_text_send_targets(struct isd_conn *c, const char *value, struct isd_text_buf *out)
{
	struct isd_session *s = c->sess;
	const struct isd_portal_cfg *here = isd_iscsi_tgt_conn_portal(c->tgt, &c->info);
	struct isd_tnode *n;

	if (s->type == ISD_SESSION_NORMAL) {
		/* a normal session only learns about its own target */
		if (value[0] == '\0' || strcmp(value, "All") == 0 ||
		    strcasecmp(value, s->node->name) == 0)
			return append_node(c, s->node, out);
		return 0;
	}
	if (strcmp(value, "All") == 0) {
		TAILQ_FOREACH(n, &c->tgt->nodes, link) {
			if (acl_allows(n, s->iname) && isd_tnode_on_portal(n, here))
				append_node(c, n, out);
		}
		return out->oom ? -ENOMEM : 0;
	}
	n = isd_iscsi_tgt_find_node(c->tgt, value);
	if (n != NULL && acl_allows(n, s->iname) && isd_tnode_on_portal(n, here))
		return append_node(c, n, out);
	return 0;
}

/* Sends the next piece of the pending response (C=1 with a TTT while more follows). */
static void
text_send_chunk(struct isd_conn *c, const uint8_t *req_bhs)
{
	struct isd_text_state *ts = &c->text;
	uint32_t max = isd_conn_tx_dsl(c);
	uint32_t left = ts->rsp_len - ts->rsp_off;
	uint32_t chunk;
	struct isd_pdu *pdu;
	bool last;

	if (c->sess->type == ISD_SESSION_DISCOVERY && max > ISD_DISCOVERY_MAX_CHUNK)
		max = ISD_DISCOVERY_MAX_CHUNK;
	/* over iSER in full feature phase the datamover's limit (128 bytes: what
	 * ib_iser's receives hold) pages the response; a piece never comes out empty */
	if (max == 0)
		max = 512;
	chunk = left > max ? max : left;
	last = chunk == left;
	pdu = isd_conn_pdu_alloc(c, ISD_OP_TEXT_RSP, chunk);
	if (pdu == NULL)
		return;
	pdu->bhs[1] = last ? ISD_BHS_F : ISD_TEXT_C;
	memcpy(pdu->bhs + 8, req_bhs + 8, 8);
	put_be32(pdu->bhs + 16, isd_bhs_itt(req_bhs));
	if (!last) {
		ts->ttt = new_ttt(c);
		ts->itt = isd_bhs_itt(req_bhs);
	}
	put_be32(pdu->bhs + 20, last ? ISD_RSVD_TAG : ts->ttt);
	isd_conn_fill_sn(c, pdu->bhs, true);
	if (chunk > 0)
		memcpy(pdu->data, ts->rsp_buf + ts->rsp_off, chunk);
	pdu->data_len = chunk;
	isd_bhs_set_dsl(pdu->bhs, chunk);
	ts->rsp_off += chunk;
	if (last)
		isd_text_reset(c);
	isd_conn_send(c, pdu);
}

/* An empty Text Response asking for the rest of a C=1 request. */
static void
text_send_ack(struct isd_conn *c, const uint8_t *req_bhs)
{
	struct isd_pdu *pdu = isd_conn_pdu_alloc(c, ISD_OP_TEXT_RSP, 0);

	if (pdu == NULL)
		return;
	memcpy(pdu->bhs + 8, req_bhs + 8, 8);
	put_be32(pdu->bhs + 16, isd_bhs_itt(req_bhs));
	put_be32(pdu->bhs + 20, c->text.ttt);
	isd_conn_fill_sn(c, pdu->bhs, true);
	isd_conn_send(c, pdu);
}

/* Keys other than SendTargets: negotiated by keys.c for a non-leading exchange. */
static int
text_other_keys(struct isd_conn *c, const struct isd_kv_list *kv, struct isd_text_buf *out)
{
	struct isd_session *s = c->sess;
	struct isd_key_policy pol;
	struct isd_keys *keys;
	struct isd_kv_list *rest;
	int rc;

	rest = calloc(1, sizeof(*rest));
	keys = calloc(1, sizeof(*keys));
	if (rest == NULL || keys == NULL) {
		rc = -ENOMEM;
		goto out;
	}
	for (int i = 0; i < kv->count; i++) {
		if (strcmp(kv->kv[i].key, "SendTargets") != 0)
			rest->kv[rest->count++] = kv->kv[i];
	}
	rc = 0;
	if (rest->count == 0)
		goto out;
	pol = s->node != NULL ? s->node->policy : c->tgt->cfg.discovery_policy;
	if (!(c->ops->caps & ISD_DM_CAP_DIGESTS))
		pol.digests_forbidden = true;
	pol.rdma_capable = (c->ops->caps & ISD_DM_CAP_RDMA) != 0;
	isd_keys_init(keys, &pol, false);
	keys->params = c->params;
	rc = isd_keys_negotiate(keys, rest, out);
	if (rc > 0) {
		/* a failure in FFP does not end anything: the answers say what happened */
		rc = 0;
	} else if (rc == 0 && isd_kv_get(rest, "MaxRecvDataSegmentLength") != NULL &&
		   keys->params.max_xmit_dsl != c->params.max_xmit_dsl) {
		/* the one declaration that may change in FFP: how much the peer takes */
		c->params.max_xmit_dsl = keys->params.max_xmit_dsl;
		c->ops->notice_key_values(&c->dmc, &c->params);
	}
out:
	free(rest);
	free(keys);
	return rc;
}

void
isd_text_rx(struct isd_conn *c, struct isd_pdu *pdu)
{
	struct isd_text_state *ts = &c->text;
	uint8_t req_bhs[ISD_BHS_LEN];
	uint32_t itt = isd_bhs_itt(pdu->bhs);
	uint32_t ttt = isd_bhs_ttt(pdu->bhs);
	bool cbit = isd_bhs_flags(pdu->bhs) & ISD_TEXT_C;
	struct isd_kv_list kv;
	struct isd_text_buf out;
	const char *st;
	int rc;

	memcpy(req_bhs, pdu->bhs, ISD_BHS_LEN);
	if (itt == ISD_RSVD_TAG || (cbit && (isd_bhs_flags(pdu->bhs) & ISD_BHS_F))) {
		isd_reject_send(c, req_bhs, ISD_REJECT_PROTOCOL_ERROR);
		isd_conn_release_pdu(c, pdu);
		return;
	}
	if (ttt != ISD_RSVD_TAG) {
		if (ttt != ts->ttt || itt != ts->itt) {
			isd_reject_send(c, req_bhs, ISD_REJECT_INVALID_PDU_FIELD);
			isd_conn_release_pdu(c, pdu);
			return;
		}
		if (ts->rsp_buf != NULL) {
			/* the initiator asks for the next piece of our response */
			isd_conn_release_pdu(c, pdu);
			text_send_chunk(c, req_bhs);
			return;
		}
	} else if (ts->ttt != ISD_RSVD_TAG || ts->req_len > 0) {
		/* a new exchange abandons the one in progress (RFC 7143 §11.10.4) */
		isd_text_reset(c);
	}

	if (cbit || ts->req_len > 0) {
		uint8_t *nb;

		if (ts->req_len + pdu->data_len > ISD_TEXT_MAX_REQ) {
			isd_reject_send(c, req_bhs, ISD_REJECT_OUT_OF_RESOURCES);
			isd_conn_release_pdu(c, pdu);
			isd_text_reset(c);
			return;
		}
		nb = realloc(ts->req_buf, ts->req_len + pdu->data_len + 1);
		if (nb == NULL) {
			isd_conn_release_pdu(c, pdu);
			isd_conn_close(c);
			return;
		}
		ts->req_buf = nb;
		memcpy(ts->req_buf + ts->req_len, pdu->data, pdu->data_len);
		ts->req_len += pdu->data_len;
	}
	if (cbit) {
		isd_conn_release_pdu(c, pdu);
		if (ts->ttt == ISD_RSVD_TAG)
			ts->ttt = new_ttt(c);
		ts->itt = itt;
		text_send_ack(c, req_bhs);
		return;
	}
	if (ts->req_len > 0)
		rc = isd_kv_parse(ts->req_buf, ts->req_len, &kv);
	else
		rc = isd_kv_parse(pdu->data, pdu->data_len, &kv);
	isd_conn_release_pdu(c, pdu);
	isd_text_reset(c);
	if (rc < 0) {
		if (rc == -ENOMEM)
			isd_conn_close(c);
		else
			isd_reject_send(c, req_bhs, ISD_REJECT_PROTOCOL_ERROR);
		return;
	}
	isd_text_buf_init(&out);
	st = isd_kv_get(&kv, "SendTargets");
	rc = 0;
	if (st != NULL)
		rc = isd_text_send_targets(c, st, &out);
	if (rc == 0)
		rc = text_other_keys(c, &kv, &out);
	isd_kv_list_fini(&kv);
	if (rc < 0 || out.oom) {
		isd_text_buf_fini(&out);
		isd_conn_close(c);
		return;
	}
	ts->rsp_buf = out.buf;
	ts->rsp_len = out.len;
	ts->rsp_off = 0;
	ts->itt = itt;
	out.buf = NULL;
	text_send_chunk(c, req_bhs);
}
