/*
 * Pure framing for the TCP datamover: Data-In and R2T headers, status
 * collapse, digests, and the solicited Data-Out checks. No I/O and no calls
 * into the core, so these are tested alone (tests/unit/dmtcp/test_frame.c).
 * Offsets follow RFC 7143 §11.7 (Data-In), §11.8 (R2T), §11.4 (SCSI Response).
 */
#include "dm/tcp/tcp_int.h"

#include <assert.h>
#include <string.h>

#include "util/endian.h"

static_assert(ISD_BHS_LEN == 48, "BHS is 48 bytes");

void
isd_tcp_frame_datain(uint8_t *bhs, uint32_t itt, uint64_t lun, uint32_t datasn, uint32_t offset,
		     uint32_t len, bool final)
{
	/* a Data-Out's layout, the other opcode, no TTT (RFC 7143 §11.7) */
	isd_bhs_dataout(bhs, lun, itt, ISD_RSVD_TAG, datasn, offset, len, final);
	bhs[0] = ISD_OP_DATA_IN;
}

bool
isd_tcp_frame_can_collapse(const struct isd_pdu *rsp)
{
	uint8_t status;

	if (rsp == NULL || rsp->data_len != 0 || rsp->ahs_len != 0)
		return false;
	if (isd_bhs_opcode(rsp->bhs) != ISD_OP_SCSI_RSP)
		return false;
	/* Bidirectional residuals have no place in a Data-In. */
	if (rsp->bhs[1] & (ISD_RSP_o | ISD_RSP_u))
		return false;
	if (rsp->bhs[2] != ISD_RSP_COMPLETED)
		return false;
	status = rsp->bhs[3];
	/* GOOD, CONDITION MET, INTERMEDIATE, INTERMEDIATE-CONDITION MET */
	return status == 0x00 || status == 0x04 || status == 0x10 || status == 0x14;
}

void
isd_tcp_frame_collapse(uint8_t *bhs, const uint8_t *rsp_bhs)
{
	bhs[1] |= ISD_BHS_F | ISD_DATAIN_S | (rsp_bhs[1] & (ISD_DATAIN_U | ISD_DATAIN_O));
	bhs[3] = rsp_bhs[3];
	memcpy(bhs + 24, rsp_bhs + 24, 12);     /* StatSN, ExpCmdSN, MaxCmdSN */
	memcpy(bhs + 44, rsp_bhs + 44, 4);      /* ResidualCount */
}

void
isd_tcp_frame_r2t(uint8_t *bhs, uint32_t itt, uint64_t lun, uint32_t ttt, uint32_t r2tsn,
		  uint32_t offset, uint32_t len)
{
	memset(bhs, 0, ISD_BHS_LEN);
	bhs[0] = ISD_OP_R2T;
	bhs[1] = ISD_BHS_F;
	put_be64(bhs + 8, lun);
	put_be32(bhs + 16, itt);
	put_be32(bhs + 20, ttt);
	put_be32(bhs + 36, r2tsn);
	put_be32(bhs + 40, offset);
	put_be32(bhs + 44, len);
}

int
isd_tcp_frame_check_dataout(const struct isd_tcp_r2t *r2t, uint32_t itt, const uint8_t *bhs)
{
	uint32_t off = get_be32(bhs + 40);
	uint32_t datasn = get_be32(bhs + 36);
	uint32_t dsl = isd_bhs_dsl(bhs);
	uint32_t left;

	if (!r2t->in_use || isd_bhs_ttt(bhs) != r2t->ttt)
		return ISD_REJECT_INVALID_PDU_FIELD;
	if (isd_bhs_itt(bhs) != itt)
		return ISD_REJECT_PROTOCOL_ERROR;
	/*
	 * DataPDUInOrder=Yes is all we negotiate, so each Data-Out must start
	 * where the previous one of the sequence ended (RFC 7143 §13.19); that
	 * also keeps it inside the R2T's range.
	 */
	if (off != r2t->offset + r2t->received)
		return ISD_REJECT_PROTOCOL_ERROR;
	left = r2t->length - r2t->received;
	if (dsl > left)
		return ISD_REJECT_PROTOCOL_ERROR;
	/* DataSN counts from 0 within each R2T's sequence (RFC 7143 §11.7.5). */
	if (datasn != r2t->next_datasn)
		return ISD_REJECT_PROTOCOL_ERROR;
	/* F ends the sequence, on the PDU with its last bytes and no other (RFC 7143 §11.7.1). */
	if (((bhs[1] & ISD_BHS_F) != 0) != (dsl == left))
		return ISD_REJECT_PROTOCOL_ERROR;
	return 0;
}
