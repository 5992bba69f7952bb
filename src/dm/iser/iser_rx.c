/*
 * Receives: the login buffer (one posted at a time during login), the
 * full-feature receive buffers (posted before the final Login Response goes
 * out), receive completions turned into PDUs that point into the buffer (no
 * copy), and their repost on release_pdu.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <rdma/rdma_cma.h>

#include "dm/iser/iser_int.h"
#include "rdma/rdma.h"
#include "util/log.h"

int
isd_iser_rx_post(struct isd_iser_conn *ic, struct isd_iser_rx *rx)
{
	struct ibv_sge sge = {
		.addr = (uintptr_t)rx->buf,
		.length = rx->size,
		.lkey = rx->lkey,
	};
	struct ibv_recv_wr wr = { .wr_id = (uintptr_t)&rx->tag, .sg_list = &sge, .num_sge = 1 };
	struct ibv_recv_wr *bad;
	int rc;

	if (rx->posted || rx->lent)
		return 0;
	rc = ibv_post_recv(ic->qp, &wr, &bad);
	if (rc != 0)
		return -rc;
	rx->posted = true;
	if (!rx->login)
		ic->rx_posted++;
	return 0;
}

/* n receives of `data` data bytes each, in one registered area, all posted. */
static int
rx_setup(struct isd_iser_conn *ic, uint32_t data, uint32_t n)
{
	size_t one = isd_iser_rx_buf_size(data);
	struct ibv_recv_wr *wrs = NULL, *bad;
	struct ibv_sge *sges = NULL;
	char err[256];
	void *mem;
	int rc;

	if (ic->rx != NULL)
		return 0;
	if (posix_memalign(&mem, 4096, one * n) != 0)
		return -ENOMEM;
	ic->rx_mem = mem;
	ic->rx_len = one * n;
	rc = isd_rdma_mr_reg(ic->dev, mem, ic->rx_len, IBV_ACCESS_LOCAL_WRITE, &ic->rx_mr, err,
			     sizeof(err));
	if (rc < 0) {
		isd_log_err("iser %s: %s", ic->peer, err);
		return rc;
	}
	isd_iser_stat_add(&isd_iser_g_conn_mrs, 1);
	ic->rx = calloc(n, sizeof(*ic->rx));
	wrs = calloc(n, sizeof(*wrs));
	sges = calloc(n, sizeof(*sges));
	if (ic->rx == NULL || wrs == NULL || sges == NULL) {
		rc = -ENOMEM;
		goto out;
	}
	for (uint32_t i = 0; i < n; i++) {
		struct isd_iser_rx *rx = calloc(1, sizeof(*rx));

		if (rx == NULL) {
			rc = -ENOMEM;
			goto out;
		}
		rx->tag.type = ISD_ISER_TAG_RX;
		rx->ic = ic;
		rx->buf = (uint8_t *)mem + one * i;
		rx->size = (uint32_t)one;
		rx->lkey = ic->rx_mr->lkey;
		ic->rx[i] = rx;
		ic->rx_count = i + 1;
		sges[i].addr = (uintptr_t)rx->buf;
		sges[i].length = rx->size;
		sges[i].lkey = rx->lkey;
		wrs[i].wr_id = (uintptr_t)&rx->tag;
		wrs[i].sg_list = &sges[i];
		wrs[i].num_sge = 1;
		wrs[i].next = i + 1 < n ? &wrs[i + 1] : NULL;
	}
	rc = ibv_post_recv(ic->qp, wrs, &bad);
	if (rc != 0) {
		rc = -rc;
		goto out;
	}
	for (uint32_t i = 0; i < n; i++)
		ic->rx[i]->posted = true;
	ic->rx_posted = n;
	isd_log_dbg("iser", "%s: %u receives of %u data bytes posted (%zu bytes)", ic->peer, n,
		    data, one * n);
out:
	free(wrs);
	free(sges);
	return rc;
}

int
isd_iser_rx_setup_ffp(struct isd_iser_conn *ic, const struct isd_params *p)
{
	uint32_t data = isd_iser_rx_data_size(p);
	uint32_t rq_max = ic->qs.max_recv_wr > 2 ? ic->qs.max_recv_wr - 2 : 1;

	return rx_setup(ic, data, isd_iser_rx_count(p, data, rq_max, ic->rx_budget));
}

int
isd_iser_rx_setup_active(struct isd_iser_conn *ic)
{
	/* a response for each command, the unsolicited PDUs beside them; the
	 * queue keeps one slot for the drain marker */
	uint32_t n = ic->conn->queue_depth + ISD_ISER_RX_SLACK;
	uint32_t rq_max = ic->qs.max_recv_wr > 1 ? ic->qs.max_recv_wr - 1 : 1;

	return rx_setup(ic, ISD_ISER_INI_RECV_DSL, n < rq_max ? n : rq_max);
}

static void
hello_rx(struct isd_iser_conn *ic, const struct isd_iser_rx *rx, uint32_t len)
{
	struct isd_iser_hello h;

	/* docs/iser.md W2: only the illumos initiator sends Hello; no Linux peer
	 * does. We do not run the RFC 5046 Hello exchange: drop the connection. */
	if (isd_iser_hello_decode(rx->buf, len, &h) == 0)
		isd_log_err("iser %s: iSER Hello received (version %u..%u, IRD %u); Hello is not "
			    "supported, closing", ic->peer, h.min_or_cur_ver, h.max_ver,
			    h.ird_or_ord);
	else
		isd_log_err("iser %s: malformed iSER Hello, closing", ic->peer);
	isd_iser_conn_fail(ic, -EPROTO);
}

void
isd_iser_rx_complete(struct isd_iser_conn *ic, struct isd_iser_rx *rx, struct ibv_wc *wc)
{
	struct isd_iser_rx_info info;
	struct isd_pdu *pdu = &rx->pdu;
	int rc;

	rx->posted = false;
	if (!rx->login && ic->rx_posted > 0)
		ic->rx_posted--;
	if (wc->status != IBV_WC_SUCCESS || ic->state >= ISD_ISER_DRAINING)
		return;
	if (ic->state == ISD_ISER_ACCEPTING && !ic->conn->active) {
		/* the first Login Request can beat ESTABLISHED (docs/iser.md W3): tell
		 * rdma_cm the connection is up; our Sends wait for ESTABLISHED */
		(void)rdma_notify(ic->id, IBV_EVENT_COMM_EST);
	}
	rc = isd_iser_rx_check(rx->buf, wc->byte_len, &info);
	if (rc == ISD_ISER_RX_HELLO) {
		hello_rx(ic, rx, wc->byte_len);
		return;
	}
	if (rc < 0) {
		isd_log_err("iser %s: malformed receive (%u bytes, iSER flags 0x%02x): %s; closing",
			    ic->peer, wc->byte_len, wc->byte_len > 0 ? rx->buf[0] : 0,
			    rc == -EPROTO ? "unexpected iSER opcode" : "lengths do not add up");
		isd_iser_conn_fail(ic, -EPROTO);
		return;
	}
	memset(pdu, 0, sizeof(*pdu));
	memcpy(pdu->bhs, rx->buf + ISD_ISER_HDR_LEN, ISD_BHS_LEN);
	pdu->ahs_len = info.ahs_len;
	pdu->ahs = info.ahs_len ? rx->buf + ISD_ISER_HEADERS_LEN : NULL;
	pdu->data_len = info.dsl;
	pdu->data = info.dsl ? rx->buf + ISD_ISER_HEADERS_LEN + info.ahs_len : NULL;
	pdu->owner = rx;
	rx->hdr = info.hdr;
	rx->lent = true;
	isd_dm_control_notify(ic->conn, pdu);
}

void
isd_iser_rx_resume(struct isd_iser_conn *ic)
{
	int rc;

	if (ic->state >= ISD_ISER_DRAINING || ic->closing || ic->rx == NULL)
		return;
	for (uint32_t i = 0; i < ic->rx_count; i++) {
		rc = isd_iser_rx_post(ic, ic->rx[i]);   /* skips posted and lent ones */
		if (rc < 0) {
			isd_log_err("iser %s: ibv_post_recv: %s", ic->peer, strerror(-rc));
			isd_iser_conn_fail(ic, rc);
			return;
		}
	}
}

/*
 * The core is about to queue a Login Response (dm.h). The login buffer is
 * receive-side flow control, and the core says which way it goes: after a
 * non-final response another Login Request may come, so the buffer is posted
 * again (now, or when the core releases the request it holds); after the final
 * one, the full-feature receives go up before the response can reach the
 * initiator, and the login buffer stays retired. Nothing here reads a header.
 */
void
isd_iser_login_response(struct isd_dm_conn *c, const struct isd_params *negotiated, bool final)
{
	struct isd_iser_conn *ic = isd_dmc_priv(c);
	struct isd_iser_rx *lrx = ic->login_rx;
	int rc;

	if (ic->state >= ISD_ISER_DRAINING || ic->closing || ic->login_done)
		return;
	if (final) {
		ic->login_done = true;
		if (lrx != NULL)
			lrx->rearm = false;
		rc = isd_iser_rx_setup_ffp(ic, negotiated);
		if (rc < 0) {
			isd_log_err("iser %s: cannot set up full-feature receives: %s", ic->peer,
				    strerror(-rc));
			isd_iser_conn_fail(ic, rc);
		}
		return;
	}
	if (lrx == NULL)
		return;
	if (lrx->lent) {
		lrx->rearm = true;      /* posted by release_pdu */
		return;
	}
	rc = isd_iser_rx_post(ic, lrx);
	if (rc < 0) {
		isd_log_err("iser %s: ibv_post_recv: %s", ic->peer, strerror(-rc));
		isd_iser_conn_fail(ic, rc);
	}
}

void
isd_iser_release_pdu(struct isd_dm_conn *c, struct isd_pdu *pdu)
{
	struct isd_iser_conn *ic = isd_dmc_priv(c);
	struct isd_iser_rx *rx;
	int rc;

	/* an active connection may be freed inside the control notify that lent
	 * the PDU: its receive buffers went with it, the PDU too */
	if (ic->freed)
		return;
	rx = pdu->owner;
	if (rx == NULL || rx->ic != ic) {
		isd_log_err("iser %s: release of a PDU that is not ours", ic->peer);
		return;
	}
	rx->lent = false;
	if (ic->state >= ISD_ISER_DRAINING || ic->closing)
		return;
	if (rx->login) {
		/* posted again only for the next Login Request the core said may come
		 * (login_response with final false); after the final one, full feature
		 * PDUs land in the FFP receives */
		if (!rx->rearm || ic->login_done)
			return;
		rx->rearm = false;
	}
	if (!rx->login && ic->txq.held)
		return;         /* backpressure: posted again by isd_iser_rx_resume */
	rc = isd_iser_rx_post(ic, rx);
	if (rc < 0) {
		isd_log_err("iser %s: ibv_post_recv: %s", ic->peer, strerror(-rc));
		isd_iser_conn_fail(ic, rc);
	}
}
