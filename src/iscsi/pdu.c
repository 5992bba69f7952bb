/*
 * iSCSI PDU codec (RFC 7143 §11): allocation of outgoing PDUs, validation of a
 * received BHS in isolation, the AHS walk, and names for logs. Pure code: no
 * I/O, no datamover knowledge, no session state.
 */
#include <assert.h>
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "iscsi/pdu.h"
#include "util/crc32c.h"
#include "util/endian.h"
#include "util/mem.h"

static_assert(ISD_BHS_LEN == 48, "RFC 7143 §11.2: the BHS is 48 bytes");
static_assert(ISD_MAX_AHS_LEN == 1020, "TotalAHSLength is one byte of 4-byte words");

/* Every AHS starts with AHSLength (2 bytes) and AHSType (1 byte), §11.2.2. */
#define AHS_HDR_LEN 3
/* Bidirectional Read Expected Data Transfer Length AHS: AHSLength is 5 (reserved byte + 4). */
#define AHS_BIDI_LEN 5
/* SPC-4 CDBs are at most 260 bytes: 16 in the BHS, 244 in the extended-CDB AHS. */
#define AHS_EXT_CDB_MAX 244
/* §11.2.2.1: AHS codes 3..59 are reserved; 60..63 and the rest are extensions we skip. */
#define AHS_CODE_RESERVED_LAST 59

struct isd_pdu *
isd_pdu_alloc(uint32_t data_cap)
{
	struct isd_pdu *pdu;

	/* One block: the struct and its inline data storage, so a send is one free(). */
	pdu = isd_mem_zalloc(sizeof(*pdu) + (size_t)data_cap);
	if (pdu == NULL)
		return NULL;
	pdu->data = pdu->inline_data;
	pdu->data_len = 0;
	return pdu;
}

struct isd_pdu *
isd_pdu_alloc_rx(uint32_t data_cap, uint32_t align)
{
	struct isd_pdu *pdu;

	pdu = isd_mem_alloc_at(sizeof(*pdu) + (size_t)data_cap, align,
			       offsetof(struct isd_pdu, inline_data));
	if (pdu == NULL)
		return NULL;
	memset(pdu, 0, sizeof(*pdu));
	pdu->data = pdu->inline_data;
	pdu->data_len = 0;
	return pdu;
}

/*
 * Frees only the PDU block. pdu->ahs and pdu->data_iov belong to whoever set
 * them (a receiver that malloc'ed an AHS frees it itself before this call).
 */
void
isd_pdu_free(struct isd_pdu *pdu)
{
	isd_mem_free(pdu);
}

static bool
initiator_opcode(uint8_t op)
{
	switch (op) {
	case ISD_OP_NOP_OUT:
	case ISD_OP_SCSI_CMD:
	case ISD_OP_TMF_REQ:
	case ISD_OP_LOGIN_REQ:
	case ISD_OP_TEXT_REQ:
	case ISD_OP_DATA_OUT:
	case ISD_OP_LOGOUT_REQ:
	case ISD_OP_SNACK_REQ:
		return true;
	default:
		/* 0x1c..0x1e are initiator vendor-specific codes (§11.1.1). */
		return op >= 0x1c && op <= 0x1e;
	}
}

static bool
target_opcode(uint8_t op)
{
	switch (op) {
	case ISD_OP_NOP_IN:
	case ISD_OP_SCSI_RSP:
	case ISD_OP_TMF_RSP:
	case ISD_OP_LOGIN_RSP:
	case ISD_OP_TEXT_RSP:
	case ISD_OP_DATA_IN:
	case ISD_OP_LOGOUT_RSP:
	case ISD_OP_R2T:
	case ISD_OP_ASYNC_MSG:
	case ISD_OP_REJECT:
		return true;
	default:
		/* 0x3c..0x3e are target vendor-specific codes. */
		return op >= 0x3c && op <= 0x3e;
	}
}

static bool
vendor_opcode(uint8_t op)
{
	return (op >= 0x1c && op <= 0x1e) || (op >= 0x3c && op <= 0x3e);
}

void
isd_bhs_dataout(uint8_t *bhs, uint64_t lun, uint32_t itt, uint32_t ttt, uint32_t datasn,
		uint32_t offset, uint32_t len, bool final)
{
	memset(bhs, 0, ISD_BHS_LEN);
	bhs[0] = ISD_OP_DATA_OUT;
	if (final)
		bhs[1] = ISD_BHS_F;
	isd_bhs_set_dsl(bhs, len);
	put_be64(bhs + 8, lun);
	put_be32(bhs + 16, itt);
	put_be32(bhs + 20, ttt);
	put_be32(bhs + 36, datasn);
	put_be32(bhs + 40, offset);
}

int
isd_bhs_check(const uint8_t *bhs, bool target_side, uint32_t max_dsl)
{
	uint8_t op = isd_bhs_opcode(bhs);

	if (!(target_side ? initiator_opcode(op) : target_opcode(op))) {
		/*
		 * A valid opcode of the other direction is a peer that broke the
		 * protocol; an undefined one is "Command not supported" (§11.17.1;
		 * LIO answers unknown opcodes the same way).
		 */
		if (target_side ? target_opcode(op) : initiator_opcode(op))
			return ISD_REJECT_PROTOCOL_ERROR;
		return ISD_REJECT_CMD_NOT_SUPPORTED;
	}
	/*
	 * Only the SCSI Command defines AHS (§11.2.1.4: extended CDB, bidi read
	 * length); vendor opcodes define their own layout.
	 */
	if (isd_bhs_ahs_len(bhs) != 0 && op != ISD_OP_SCSI_CMD && !vendor_opcode(op))
		return ISD_REJECT_PROTOCOL_ERROR;
	/*
	 * The datamover sized its receive buffers from the negotiated value; a
	 * longer segment breaks the contract the peer agreed to.
	 */
	if (isd_bhs_dsl(bhs) > max_dsl)
		return ISD_REJECT_PROTOCOL_ERROR;
	return 0;
}

int
isd_ahs_parse(const uint8_t *ahs, uint32_t ahs_len, struct isd_ahs_info *out)
{
	uint32_t off = 0;

	memset(out, 0, sizeof(*out));
	if (ahs_len == 0)
		return 0;
	if (ahs == NULL || (ahs_len & 3) != 0 || ahs_len > ISD_MAX_AHS_LEN)
		return -EINVAL;

	while (off < ahs_len) {
		uint32_t left = ahs_len - off;
		uint32_t len, total;
		uint8_t type;

		if (left < AHS_HDR_LEN)
			return -EINVAL;
		len = get_be16(ahs + off);
		type = ahs[off + 2];
		/*
		 * AHSLength counts the bytes after AHSType, including the
		 * reserved byte, but not the padding to 4 (§11.2.2). Every
		 * defined type has at least the reserved byte.
		 */
		if (len == 0)
			return -EINVAL;
		total = AHS_HDR_LEN + len;
		total += isd_pad4(total);
		if (total > left)
			return -EINVAL;

		switch (type) {
		case ISD_AHS_EXTENDED_CDB:
			/* Reserved byte, then the CDB bytes beyond the first 16 (§11.3.5). */
			if (out->ext_cdb != NULL || len < 2 || len - 1 > AHS_EXT_CDB_MAX)
				return -EINVAL;
			out->ext_cdb = ahs + off + AHS_HDR_LEN + 1;
			out->ext_cdb_len = len - 1;
			break;
		case ISD_AHS_BIDI_READ_LEN:
			/* Reserved byte, then the 4-byte length (§11.3.6). */
			if (out->has_bidi_read_len || len != AHS_BIDI_LEN)
				return -EINVAL;
			out->has_bidi_read_len = true;
			out->bidi_read_len = get_be32(ahs + off + AHS_HDR_LEN + 1);
			break;
		default:
			/* Reserved codes are malformed; extension types are skipped. */
			if (type <= AHS_CODE_RESERVED_LAST)
				return -EINVAL;
			break;
		}
		off += total;
	}
	return 0;
}

const char *
isd_opcode_name(uint8_t opcode)
{
	/* Per-thread buffer for unknown codes so concurrent reactors do not race. */
	static __thread char unknown[16];

	switch (opcode & ISD_BHS_OPCODE_MASK) {
	case ISD_OP_NOP_OUT:
		return "NOP-Out";
	case ISD_OP_SCSI_CMD:
		return "SCSI Command";
	case ISD_OP_TMF_REQ:
		return "Task Management Request";
	case ISD_OP_LOGIN_REQ:
		return "Login Request";
	case ISD_OP_TEXT_REQ:
		return "Text Request";
	case ISD_OP_DATA_OUT:
		return "SCSI Data-Out";
	case ISD_OP_LOGOUT_REQ:
		return "Logout Request";
	case ISD_OP_SNACK_REQ:
		return "SNACK Request";
	case ISD_OP_NOP_IN:
		return "NOP-In";
	case ISD_OP_SCSI_RSP:
		return "SCSI Response";
	case ISD_OP_TMF_RSP:
		return "Task Management Response";
	case ISD_OP_LOGIN_RSP:
		return "Login Response";
	case ISD_OP_TEXT_RSP:
		return "Text Response";
	case ISD_OP_DATA_IN:
		return "SCSI Data-In";
	case ISD_OP_LOGOUT_RSP:
		return "Logout Response";
	case ISD_OP_R2T:
		return "R2T";
	case ISD_OP_ASYNC_MSG:
		return "Asynchronous Message";
	case ISD_OP_REJECT:
		return "Reject";
	default:
		opcode &= ISD_BHS_OPCODE_MASK;
		snprintf(unknown, sizeof(unknown), "%s(0x%02x)",
			 vendor_opcode(opcode) ? "vendor" : "unknown", opcode);
		return unknown;
	}
}

const char *
isd_login_status_str(uint16_t status)
{
	switch (status) {
	case ISD_LOGIN_STATUS_SUCCESS:
		return "success";
	case ISD_LOGIN_STATUS_TGT_MOVED_TEMP:
		return "target moved temporarily";
	case ISD_LOGIN_STATUS_TGT_MOVED_PERM:
		return "target moved permanently";
	case ISD_LOGIN_STATUS_INIT_ERR:
		return "initiator error";
	case ISD_LOGIN_STATUS_AUTH_FAILED:
		return "authentication failure";
	case ISD_LOGIN_STATUS_TGT_FORBIDDEN:
		return "authorization failure";
	case ISD_LOGIN_STATUS_TGT_NOT_FOUND:
		return "target not found";
	case ISD_LOGIN_STATUS_TGT_REMOVED:
		return "target removed";
	case ISD_LOGIN_STATUS_NO_VERSION:
		return "unsupported version";
	case ISD_LOGIN_STATUS_ISID_ERROR:
		return "too many connections";
	case ISD_LOGIN_STATUS_MISSING_FIELDS:
		return "missing parameter";
	case ISD_LOGIN_STATUS_CONN_ADD_FAIL:
		return "can't include in session";
	case ISD_LOGIN_STATUS_NO_SESSION_TYPE:
		return "session type not supported";
	case ISD_LOGIN_STATUS_NO_SESSION:
		return "session does not exist";
	case ISD_LOGIN_STATUS_INVALID_REQUEST:
		return "invalid during login";
	case ISD_LOGIN_STATUS_TARGET_ERROR:
		return "target error";
	case ISD_LOGIN_STATUS_SVC_UNAVAILABLE:
		return "service unavailable";
	case ISD_LOGIN_STATUS_NO_RESOURCES:
		return "out of resources";
	default:
		/* Keep the class readable even when the detail is new to us. */
		switch (status >> 8) {
		case 1:
			return "redirection (unknown detail)";
		case 2:
			return "initiator error (unknown detail)";
		case 3:
			return "target error (unknown detail)";
		default:
			return "unknown status";
		}
	}
}

const char *
isd_reject_reason_str(uint8_t reason)
{
	switch (reason) {
	case 0x01:
		return "reserved";
	case ISD_REJECT_DIGEST_ERROR:
		return "data (payload) digest error";
	case ISD_REJECT_SNACK_REJECT:
		return "SNACK reject";
	case ISD_REJECT_PROTOCOL_ERROR:
		return "protocol error";
	case ISD_REJECT_CMD_NOT_SUPPORTED:
		return "command not supported";
	case ISD_REJECT_IMM_CMD_REJECT:
		return "immediate command reject";
	case ISD_REJECT_TASK_IN_PROGRESS:
		return "task in progress";
	case ISD_REJECT_INVALID_DATA_ACK:
		return "invalid data ack";
	case ISD_REJECT_INVALID_PDU_FIELD:
		return "invalid PDU field";
	case ISD_REJECT_OUT_OF_RESOURCES:
		return "long operation reject";
	case ISD_REJECT_NEGOTIATION_RESET:
		return "deprecated (negotiation reset)";
	case ISD_REJECT_WAITING_FOR_LOGOUT:
		return "waiting for logout";
	default:
		return "unknown reason";
	}
}

uint32_t
isd_pdu_hdr_digest(const uint8_t *bhs, const uint8_t *ahs, uint32_t ahs_len)
{
	uint32_t crc = isd_crc32c_update(ISD_CRC32C_INIT, bhs, ISD_BHS_LEN);

	if (ahs_len > 0)
		crc = isd_crc32c_update(crc, ahs, ahs_len);
	return isd_crc32c_final(crc);
}

uint32_t
isd_pdu_data_digest(const struct iovec *iov, int iovcnt, const uint8_t *pad, uint32_t pad_len)
{
	uint32_t crc = ISD_CRC32C_INIT;

	for (int i = 0; i < iovcnt; i++)
		crc = isd_crc32c_update(crc, iov[i].iov_base, iov[i].iov_len);
	if (pad_len > 0)
		crc = isd_crc32c_update(crc, pad, pad_len);
	return isd_crc32c_final(crc);
}
