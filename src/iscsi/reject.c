/* Reject PDUs (RFC 7143 §11.17). */
#include <string.h>

#include "iscsi/core.h"
#include "util/log.h"

void
isd_reject_send(struct isd_conn *c, const uint8_t *bhs, uint8_t reason)
{
	struct isd_pdu *pdu;

	if (!isd_conn_can_send(c))
		return;
	pdu = isd_conn_pdu_alloc(c, ISD_OP_REJECT, ISD_BHS_LEN);
	if (pdu == NULL)
		return;
	pdu->bhs[1] = ISD_BHS_F;
	pdu->bhs[2] = reason;
	put_be32(pdu->bhs + 16, ISD_RSVD_TAG);
	/* a Reject is status: it takes a StatSN (RFC 7143 §11.17) */
	isd_conn_fill_sn(c, pdu->bhs, true);
	/* the data segment is the complete header of the rejected PDU */
	memcpy(pdu->data, bhs, ISD_BHS_LEN);
	pdu->data_len = ISD_BHS_LEN;
	isd_bhs_set_dsl(pdu->bhs, ISD_BHS_LEN);
	isd_stat_inc(&c->tgt->stats.rejects_sent);
	isd_log_dbg("iscsi", "conn %p: Reject %s (%s)", (void *)c,
		    isd_opcode_name(isd_bhs_opcode(bhs)), isd_reject_reason_str(reason));
	isd_conn_send(c, pdu);
}
