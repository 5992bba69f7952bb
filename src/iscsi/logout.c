/* Logout (RFC 7143 §11.14, §11.15). ERL 0: no connection recovery. */
#include "iscsi/core.h"
#include "util/log.h"

void
isd_logout_rx(struct isd_conn *c, struct isd_pdu *pdu)
{
	const uint8_t *bhs = pdu->bhs;
	uint8_t reason = isd_bhs_flags(bhs) & 0x7f;
	uint16_t cid = get_be16(bhs + 20);
	struct isd_pdu *rsp;
	uint8_t response;
	bool close = false;

	switch (reason) {
	case ISD_LOGOUT_CLOSE_SESSION:
		response = ISD_LOGOUT_RSP_OK;
		close = true;
		break;
	case ISD_LOGOUT_CLOSE_CONNECTION:
		/* with one connection per session only our own CID can be named */
		if (cid != c->cid) {
			response = ISD_LOGOUT_RSP_CID_NOT_FOUND;
		} else {
			response = ISD_LOGOUT_RSP_OK;
			close = true;
		}
		break;
	case ISD_LOGOUT_REMOVE_CONN_RECOVERY:
		response = ISD_LOGOUT_RSP_RECOVERY_UNSUPPORTED;
		break;
	default:
		isd_reject_send(c, bhs, ISD_REJECT_INVALID_PDU_FIELD);
		isd_conn_release_pdu(c, pdu);
		return;
	}
	rsp = isd_conn_pdu_alloc(c, ISD_OP_LOGOUT_RSP, 0);
	if (rsp == NULL) {
		isd_conn_release_pdu(c, pdu);
		return;
	}
	rsp->bhs[1] = ISD_BHS_F;
	rsp->bhs[2] = response;
	put_be32(rsp->bhs + 16, isd_bhs_itt(bhs));
	isd_conn_release_pdu(c, pdu);
	if (close) {
		/* outstanding tasks end without responses; the session ends with us */
		isd_conn_abort_all_tasks(c);
		isd_cmdsn_flush(c);
		isd_session_unlink(c->sess);
		/*
		 * The I_T nexus ends with the logout, not when the connection is
		 * torn down later: an initiator that logs out and at once uses
		 * another session must not find its RESERVE(6) still held.
		 */
		isd_session_nexus_end(c->sess);
		c->logged_out = true;
	}
	isd_conn_fill_sn(c, rsp->bhs, true);
	/* Time2Wait and Time2Retain stay 0: ERL 0 keeps nothing to reconnect to */
	if (isd_conn_send(c, rsp) < 0)
		return;
	if (close) {
		isd_log_dbg("iscsi", "conn %p: logged out (reason %u)", (void *)c, reason);
		isd_conn_close(c);
	}
}
