/*
 * Command ordering (RFC 7143 §3.2.2.1, §4.2.2.1). Non-immediate requests are
 * delivered in CmdSN order: one equal to ExpCmdSN runs at once and advances
 * ExpCmdSN; one ahead of it but within MaxCmdSN waits until the gap fills; one
 * outside [ExpCmdSN, MaxCmdSN] is silently dropped. Immediate requests run at
 * once and do not advance ExpCmdSN. The window bounds how many commands can be
 * parked here; max_held_pdus and max_held_bytes bound the PDUs and memory.
 *
 * Past either limit the connection is closed. Sessions have one connection
 * (MaxConnections=1) over an ordered transport, so a correct initiator never
 * leaves a CmdSN gap at all: a peer that parks this much is broken or hostile.
 * A Reject of the newest PDU is no way out: the one out-of-resources reason,
 * 0x06, is for immediate commands (RFC 7143 §11.17.1), and a rejected
 * non-immediate command leaves its CmdSN unfilled, so ExpCmdSN could never
 * pass it and the session would stall with everything parked still held.
 */
#include <stdlib.h>

#include "iscsi/core.h"
#include "util/log.h"
#include "util/mem.h"

static void
deliver(struct isd_conn *c, struct isd_pdu *pdu)
{
	switch (isd_bhs_opcode(pdu->bhs)) {
	case ISD_OP_SCSI_CMD:
		isd_task_scsi_cmd_rx(c, pdu);
		break;
	case ISD_OP_TMF_REQ:
		isd_tmf_rx(c, pdu);
		break;
	case ISD_OP_TEXT_REQ:
		isd_text_rx(c, pdu);
		break;
	case ISD_OP_NOP_OUT:
		isd_nop_out_rx(c, pdu);
		break;
	case ISD_OP_LOGOUT_REQ:
		isd_logout_rx(c, pdu);
		break;
	default:
		isd_reject_send(c, pdu->bhs, ISD_REJECT_PROTOCOL_ERROR);
		isd_conn_release_pdu(c, pdu);
		break;
	}
}

/* What a parked PDU costs: the PDU with its AHS and data, as the datamover gave it. */
static uint64_t
pdu_cost(const struct isd_pdu *pdu)
{
	return sizeof(*pdu) + (uint64_t)pdu->ahs_len + pdu->data_len;
}

/*
 * True if one more PDU of `cost` bytes may be parked; otherwise counts the
 * refusal and closes the connection (see the top of this file for why). A
 * discovery session parks only Text requests and gets a far smaller share.
 */
static bool
held_admit(struct isd_conn *c, uint64_t cost)
{
	const struct isd_iscsi_cfg *cfg = &c->tgt->cfg;
	struct isd_session *s = c->sess;
	uint64_t max_bytes = cfg->max_held_bytes;

	if (s->type == ISD_SESSION_DISCOVERY &&
	    (max_bytes == 0 || max_bytes > ISD_DISCOVERY_MAX_HELD_BYTES))
		max_bytes = ISD_DISCOVERY_MAX_HELD_BYTES;
	if ((cfg->max_held_pdus == 0 || s->held_pdus < cfg->max_held_pdus) &&
	    (max_bytes == 0 || s->held_bytes + cost <= max_bytes))
		return true;
	isd_stat_inc(&c->tgt->stats.refused.held_pdus);
	isd_log_info("iscsi: %s:%u parks too many PDUs out of CmdSN order (%u PDUs, %llu bytes "
		     "held), closing the connection",
		     c->info.peer_addr, c->info.peer_port, s->held_pdus,
		     (unsigned long long)s->held_bytes);
	isd_conn_close(c);
	return false;
}

/* Takes a parked command out of the list and its memory out of the session's account. */
static void
held_unlink(struct isd_session *s, struct isd_held *h)
{
	TAILQ_REMOVE(&s->held, h, link);
	s->n_held--;
	s->held_pdus -= 1 + h->n_data_outs;
	s->held_bytes -= h->cost;
}

static void
held_free(struct isd_conn *c, struct isd_held *h, bool release_all)
{
	struct isd_pdu *d;

	while ((d = TAILQ_FIRST(&h->data_outs)) != NULL) {
		TAILQ_REMOVE(&h->data_outs, d, link);
		isd_conn_release_pdu(c, d);
	}
	if (release_all && h->pdu != NULL)
		isd_conn_release_pdu(c, h->pdu);
	isd_mem_free(h);
}

/* Delivers parked requests whose turn has come. */
static void
drain(struct isd_conn *c)
{
	struct isd_session *s = c->sess;
	struct isd_held *h;
	struct isd_pdu *d;

	while (c->state == ISD_CONN_FFP && (h = TAILQ_FIRST(&s->held)) != NULL &&
	       h->cmdsn == s->exp_cmdsn) {
		held_unlink(s, h);
		s->exp_cmdsn++;
		if (h->pdu == NULL) {
			/* a CmdSN an ABORT TASK took as received (isd_cmdsn_abort) */
			held_free(c, h, false);
			continue;
		}
		deliver(c, h->pdu);
		h->pdu = NULL;
		/* then the Data-Outs that arrived for it while it waited, in arrival order */
		while ((d = TAILQ_FIRST(&h->data_outs)) != NULL) {
			TAILQ_REMOVE(&h->data_outs, d, link);
			if (c->state == ISD_CONN_FFP)
				isd_task_data_out_rx(c, d);
			else
				isd_conn_release_pdu(c, d);
		}
		held_free(c, h, false);
	}
}

void
isd_cmdsn_rx(struct isd_conn *c, struct isd_pdu *pdu)
{
	struct isd_session *s = c->sess;
	uint32_t cmdsn = isd_bhs_cmdsn(pdu->bhs);
	struct isd_held *h, *pos;

	if (isd_bhs_immediate(pdu->bhs)) {
		deliver(c, pdu);
		return;
	}
	isd_session_update_window(s);
	if (cmdsn == s->exp_cmdsn) {
		s->exp_cmdsn++;
		deliver(c, pdu);
		drain(c);
		return;
	}
	if (sn_lt(cmdsn, s->exp_cmdsn) || sn_gt(cmdsn, s->max_cmdsn)) {
		isd_log_dbg("iscsi", "conn %p: dropping %s CmdSN %u outside [%u, %u]", (void *)c,
			    isd_opcode_name(isd_bhs_opcode(pdu->bhs)), cmdsn, s->exp_cmdsn,
			    s->max_cmdsn);
		isd_stat_inc(&c->tgt->stats.cmdsn_dropped);
		isd_conn_release_pdu(c, pdu);
		return;
	}
	/* ahead of ExpCmdSN: park it, sorted, one per CmdSN */
	TAILQ_FOREACH(pos, &s->held, link) {
		if (pos->cmdsn == cmdsn) {
			isd_log_dbg("iscsi", "conn %p: duplicate CmdSN %u dropped", (void *)c,
				    cmdsn);
			isd_stat_inc(&c->tgt->stats.cmdsn_dropped);
			isd_conn_release_pdu(c, pdu);
			return;
		}
		if (sn_gt(pos->cmdsn, cmdsn))
			break;
	}
	if (!held_admit(c, sizeof(*h) + pdu_cost(pdu))) {
		isd_conn_release_pdu(c, pdu);
		return;
	}
	h = isd_mem_zalloc(sizeof(*h));
	if (h == NULL) {
		isd_log_err("iscsi: out of memory parking CmdSN %u, closing connection", cmdsn);
		isd_conn_release_pdu(c, pdu);
		isd_conn_close(c);
		return;
	}
	h->pdu = pdu;
	h->cmdsn = cmdsn;
	h->itt = isd_bhs_itt(pdu->bhs);
	h->is_cmd = isd_bhs_opcode(pdu->bhs) == ISD_OP_SCSI_CMD;
	h->cost = sizeof(*h) + pdu_cost(pdu);
	TAILQ_INIT(&h->data_outs);
	if (pos != NULL)
		TAILQ_INSERT_BEFORE(pos, h, link);
	else
		TAILQ_INSERT_TAIL(&s->held, h, link);
	s->n_held++;
	s->held_pdus++;
	s->held_bytes += h->cost;
	isd_log_dbg("iscsi", "conn %p: CmdSN %u parked (ExpCmdSN %u)", (void *)c, cmdsn,
		    s->exp_cmdsn);
}

/*
 * ABORT TASK for a command that has not been delivered (RFC 7143 §11.5.1 b):
 * one parked here is dropped with its Data-Outs; one not received yet, whose
 * RefCmdSN is inside the window and before the TMF's own CmdSN, has its CmdSN
 * taken as received, so that the command is dropped when it arrives (its CmdSN
 * is then below ExpCmdSN, or a duplicate of the slot kept here) and the ones
 * after it are not held up. Either way its ITT is remembered so that its
 * Data-Outs are discarded. Returns true when the task counts as aborted
 * ("Function complete"), false when it names nothing ("Task does not exist").
 */
bool
isd_cmdsn_abort(struct isd_conn *c, uint32_t itt, uint32_t refcmdsn, uint32_t tmf_cmdsn)
{
	struct isd_session *s = c->sess;
	struct isd_held *h, *pos;
	struct isd_pdu *d;

	h = isd_cmdsn_find_held(s, itt);
	if (h != NULL) {
		if (h->cmdsn != refcmdsn)
			return false;
		/* keep the slot (its CmdSN was received), drop what it holds */
		while ((d = TAILQ_FIRST(&h->data_outs)) != NULL) {
			TAILQ_REMOVE(&h->data_outs, d, link);
			isd_conn_release_pdu(c, d);
		}
		isd_conn_release_pdu(c, h->pdu);
		h->pdu = NULL;
		h->is_cmd = false;
		s->held_pdus -= h->n_data_outs;
		s->held_bytes -= h->cost - sizeof(*h);
		h->cost = sizeof(*h);
		h->n_data_outs = 0;
		h->data_bytes = 0;
		isd_conn_remember_aborted(c, itt);
		return true;
	}
	if (sn_lt(refcmdsn, s->exp_cmdsn) || sn_gt(refcmdsn, s->max_cmdsn) ||
	    !sn_lt(refcmdsn, tmf_cmdsn))
		return false;
	if (refcmdsn == s->exp_cmdsn) {
		isd_conn_remember_aborted(c, itt);
		s->exp_cmdsn++;
		drain(c);
		return true;
	}
	TAILQ_FOREACH(pos, &s->held, link) {
		if (pos->cmdsn == refcmdsn)
			return false;   /* another request has that CmdSN */
		if (sn_gt(pos->cmdsn, refcmdsn))
			break;
	}
	if (!held_admit(c, sizeof(*h)))
		return false;
	h = isd_mem_zalloc(sizeof(*h));
	if (h == NULL)
		return false;
	h->cmdsn = refcmdsn;
	h->itt = itt;
	h->cost = sizeof(*h);
	TAILQ_INIT(&h->data_outs);
	if (pos != NULL)
		TAILQ_INSERT_BEFORE(pos, h, link);
	else
		TAILQ_INSERT_TAIL(&s->held, h, link);
	s->n_held++;
	s->held_pdus++;
	s->held_bytes += h->cost;
	isd_conn_remember_aborted(c, itt);
	return true;
}

struct isd_held *
isd_cmdsn_find_held(struct isd_session *s, uint32_t itt)
{
	struct isd_held *h;

	TAILQ_FOREACH(h, &s->held, link) {
		if (h->is_cmd && h->itt == itt)
			return h;
	}
	return NULL;
}

/*
 * An unsolicited Data-Out for a command that is still parked: keep it with the
 * command (bounded by FirstBurstLength and a PDU count). Returns true if it was
 * taken (or dropped with the connection), false if no parked command owns it.
 */
bool
isd_cmdsn_hold_data_out(struct isd_conn *c, struct isd_pdu *pdu)
{
	struct isd_held *h = isd_cmdsn_find_held(c->sess, isd_bhs_itt(pdu->bhs));

	if (h == NULL)
		return false;
	if (h->n_data_outs >= ISD_HELD_MAX_DATA_OUT ||
	    h->data_bytes + pdu->data_len > c->params.first_burst_length) {
		isd_log_err("iscsi: too much unsolicited data for a parked command, closing");
		isd_stat_inc(&c->tgt->stats.refused.held_pdus);
		isd_conn_release_pdu(c, pdu);
		isd_conn_close(c);
		return true;
	}
	if (!held_admit(c, pdu_cost(pdu))) {
		isd_conn_release_pdu(c, pdu);
		return true;
	}
	h->n_data_outs++;
	h->data_bytes += pdu->data_len;
	h->cost += pdu_cost(pdu);
	c->sess->held_pdus++;
	c->sess->held_bytes += pdu_cost(pdu);
	TAILQ_INSERT_TAIL(&h->data_outs, pdu, link);
	return true;
}

void
isd_cmdsn_flush(struct isd_conn *c)
{
	struct isd_session *s = c->sess;
	struct isd_held *h;

	while ((h = TAILQ_FIRST(&s->held)) != NULL) {
		held_unlink(s, h);
		held_free(c, h, true);
	}
}
