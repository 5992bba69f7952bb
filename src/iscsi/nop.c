/*
 * NOP-Out / NOP-In (RFC 7143 §11.18, §11.19): echoing the initiator's pings,
 * and our own pings that detect a dead peer on an idle connection.
 */
#include <string.h>

#include "iscsi/core.h"
#include "util/log.h"

void
isd_nop_out_rx(struct isd_conn *c, struct isd_pdu *pdu)
{
	const uint8_t *bhs = pdu->bhs;
	uint32_t itt = isd_bhs_itt(bhs);
	uint32_t ttt = isd_bhs_ttt(bhs);
	struct isd_pdu *rsp;
	uint32_t len;

	if (ttt != ISD_RSVD_TAG) {
		/* the answer to one of our pings; a stale TTT is ignored */
		if (c->ping_outstanding && ttt == c->ping_ttt) {
			c->ping_outstanding = false;
			isd_reactor_timer_stop(c->reactor, &c->nop_timeout_timer);
		}
	}
	if (itt == ISD_RSVD_TAG) {
		/* no response wanted (RFC 7143 §11.18.2) */
		isd_conn_release_pdu(c, pdu);
		return;
	}
	len = pdu->data_len;
	if (len > isd_conn_tx_dsl(c))
		len = isd_conn_tx_dsl(c);
	rsp = isd_conn_pdu_alloc(c, ISD_OP_NOP_IN, len);
	if (rsp == NULL) {
		isd_conn_release_pdu(c, pdu);
		return;
	}
	rsp->bhs[1] = ISD_BHS_F;
	memcpy(rsp->bhs + 8, bhs + 8, 8);       /* LUN echoed */
	put_be32(rsp->bhs + 16, itt);
	put_be32(rsp->bhs + 20, ISD_RSVD_TAG);
	/* a NOP-In answering a NOP-Out is status: it takes a StatSN */
	isd_conn_fill_sn(c, rsp->bhs, true);
	if (len > 0)
		memcpy(rsp->data, pdu->data, len);
	rsp->data_len = len;
	isd_bhs_set_dsl(rsp->bhs, len);
	isd_conn_release_pdu(c, pdu);
	isd_conn_send(c, rsp);
}

void
isd_nop_timeout(void *arg)
{
	struct isd_conn *c = arg;

	if (c->state != ISD_CONN_FFP || !c->ping_outstanding)
		return;
	if (c->last_rx_ns > c->ping_sent_ns) {
		/* the peer is talking, just slow to answer this ping */
		c->ping_outstanding = false;
		return;
	}
	isd_log_info("iscsi: %s:%u did not answer a NOP-In within %u ms, dropping connection",
		     c->info.peer_addr, c->info.peer_port, c->tgt->cfg.nop_timeout_ms);
	isd_conn_close(c);
}

void
isd_nop_tick(void *arg)
{
	struct isd_conn *c = arg;
	uint64_t interval_ns = (uint64_t)c->tgt->cfg.nop_interval_ms * 1000000u;
	uint64_t now = isd_now_ns();
	struct isd_pdu *pdu;

	if (c->state != ISD_CONN_FFP)
		return;
	isd_reactor_timer_start(c->reactor, &c->nop_timer, c->tgt->cfg.nop_interval_ms);
	if (c->ping_outstanding || now - c->last_rx_ns < interval_ns)
		return;
	pdu = isd_conn_pdu_alloc(c, ISD_OP_NOP_IN, 0);
	if (pdu == NULL)
		return;
	if (++c->ping_ttt == ISD_RSVD_TAG)
		c->ping_ttt = 1;
	pdu->bhs[1] = ISD_BHS_F;
	put_be32(pdu->bhs + 16, ISD_RSVD_TAG);
	put_be32(pdu->bhs + 20, c->ping_ttt);
	/* an unsolicited NOP-In carries the next StatSN without advancing it */
	isd_conn_fill_sn(c, pdu->bhs, false);
	c->ping_outstanding = true;
	c->ping_sent_ns = now;
	if (isd_conn_send(c, pdu) < 0)
		return;
	if (c->tgt->cfg.nop_timeout_ms > 0)
		isd_reactor_timer_start(c->reactor, &c->nop_timeout_timer,
					c->tgt->cfg.nop_timeout_ms);
}

void
isd_nop_start(struct isd_conn *c)
{
	if (c->tgt->cfg.nop_interval_ms > 0)
		isd_reactor_timer_start(c->reactor, &c->nop_timer, c->tgt->cfg.nop_interval_ms);
}

void
isd_nop_stop(struct isd_conn *c)
{
	isd_reactor_timer_stop(c->reactor, &c->nop_timer);
	isd_reactor_timer_stop(c->reactor, &c->nop_timeout_timer);
	c->ping_outstanding = false;
}
