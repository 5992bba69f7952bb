/*
 * iSCSI PDU codec (RFC 7143 §11): constants, the in-memory PDU, and pure
 * functions that read and write Basic Header Segment fields at explicit byte
 * offsets. Nothing here does I/O or knows a datamover.
 */
#ifndef ISD_ISCSI_PDU_H
#define ISD_ISCSI_PDU_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>
#include <sys/uio.h>

#include "util/endian.h"

#define ISD_BHS_LEN 48
#define ISD_MAX_AHS_LEN (255 * 4)       /* TotalAHSLength is one byte of 4-byte words */
#define ISD_MAX_DSL ((1u << 24) - 1)    /* DataSegmentLength is 24 bits */
#define ISD_RSVD_TAG 0xffffffffu        /* reserved ITT/TTT value */

/* Opcodes, initiator to target */
#define ISD_OP_NOP_OUT 0x00
#define ISD_OP_SCSI_CMD 0x01
#define ISD_OP_TMF_REQ 0x02
#define ISD_OP_LOGIN_REQ 0x03
#define ISD_OP_TEXT_REQ 0x04
#define ISD_OP_DATA_OUT 0x05
#define ISD_OP_LOGOUT_REQ 0x06
#define ISD_OP_SNACK_REQ 0x10
/* Opcodes, target to initiator */
#define ISD_OP_NOP_IN 0x20
#define ISD_OP_SCSI_RSP 0x21
#define ISD_OP_TMF_RSP 0x22
#define ISD_OP_LOGIN_RSP 0x23
#define ISD_OP_TEXT_RSP 0x24
#define ISD_OP_DATA_IN 0x25
#define ISD_OP_LOGOUT_RSP 0x26
#define ISD_OP_R2T 0x31
#define ISD_OP_ASYNC_MSG 0x32
#define ISD_OP_REJECT 0x3f

/* Byte 0 */
#define ISD_BHS_I 0x40          /* immediate delivery */
#define ISD_BHS_OPCODE_MASK 0x3f
/* Byte 1 flags */
#define ISD_BHS_F 0x80          /* final */
#define ISD_CMD_R 0x40          /* SCSI Command: read */
#define ISD_CMD_W 0x20          /* SCSI Command: write */
#define ISD_CMD_ATTR_MASK 0x07  /* SCSI Command: task attribute */
#define ISD_TEXT_C 0x40         /* Text: continue */
#define ISD_LOGIN_T 0x80        /* Login: transit */
#define ISD_LOGIN_C 0x40        /* Login: continue */
#define ISD_LOGIN_CSG(b1) (((b1) >> 2) & 3)
#define ISD_LOGIN_NSG(b1) ((b1) & 3)
#define ISD_DATAIN_A 0x40       /* Data-In: acknowledge */
#define ISD_DATAIN_O 0x04       /* Data-In / SCSI Response: residual overflow */
#define ISD_DATAIN_U 0x02       /* Data-In / SCSI Response: residual underflow */
#define ISD_DATAIN_S 0x01       /* Data-In: status present */
#define ISD_RSP_o 0x10          /* SCSI Response: bidi read residual overflow */
#define ISD_RSP_u 0x08          /* SCSI Response: bidi read residual underflow */
#define ISD_RSP_O 0x04
#define ISD_RSP_U 0x02

/* Login stages */
#define ISD_STAGE_SECURITY 0
#define ISD_STAGE_OPERATIONAL 1
#define ISD_STAGE_FFP 3

/* Login status class/detail (RFC 7143 §11.13.5) */
#define ISD_LOGIN_STATUS_SUCCESS 0x0000
#define ISD_LOGIN_STATUS_TGT_MOVED_TEMP 0x0101
#define ISD_LOGIN_STATUS_TGT_MOVED_PERM 0x0102
#define ISD_LOGIN_STATUS_INIT_ERR 0x0200
#define ISD_LOGIN_STATUS_AUTH_FAILED 0x0201
#define ISD_LOGIN_STATUS_TGT_FORBIDDEN 0x0202
#define ISD_LOGIN_STATUS_TGT_NOT_FOUND 0x0203
#define ISD_LOGIN_STATUS_TGT_REMOVED 0x0204
#define ISD_LOGIN_STATUS_NO_VERSION 0x0205
#define ISD_LOGIN_STATUS_ISID_ERROR 0x0206
#define ISD_LOGIN_STATUS_MISSING_FIELDS 0x0207
#define ISD_LOGIN_STATUS_CONN_ADD_FAIL 0x0208
#define ISD_LOGIN_STATUS_NO_SESSION_TYPE 0x0209
#define ISD_LOGIN_STATUS_NO_SESSION 0x020a
#define ISD_LOGIN_STATUS_INVALID_REQUEST 0x020b
#define ISD_LOGIN_STATUS_TARGET_ERROR 0x0300
#define ISD_LOGIN_STATUS_SVC_UNAVAILABLE 0x0301
#define ISD_LOGIN_STATUS_NO_RESOURCES 0x0302

/* Reject reasons (RFC 7143 §11.17.1) */
#define ISD_REJECT_DIGEST_ERROR 0x02
#define ISD_REJECT_SNACK_REJECT 0x03
#define ISD_REJECT_PROTOCOL_ERROR 0x04
#define ISD_REJECT_CMD_NOT_SUPPORTED 0x05
#define ISD_REJECT_IMM_CMD_REJECT 0x06
#define ISD_REJECT_TASK_IN_PROGRESS 0x07
#define ISD_REJECT_INVALID_DATA_ACK 0x08
#define ISD_REJECT_INVALID_PDU_FIELD 0x09
#define ISD_REJECT_OUT_OF_RESOURCES 0x0a
#define ISD_REJECT_NEGOTIATION_RESET 0x0b
#define ISD_REJECT_WAITING_FOR_LOGOUT 0x0c

/* Task management functions and responses (RFC 7143 §11.5, §11.6) */
#define ISD_TMF_ABORT_TASK 1
#define ISD_TMF_ABORT_TASK_SET 2
#define ISD_TMF_CLEAR_ACA 3
#define ISD_TMF_CLEAR_TASK_SET 4
#define ISD_TMF_LUN_RESET 5
#define ISD_TMF_TARGET_WARM_RESET 6
#define ISD_TMF_TARGET_COLD_RESET 7
#define ISD_TMF_TASK_REASSIGN 8
#define ISD_TMF_RSP_COMPLETE 0
#define ISD_TMF_RSP_NO_TASK 1
#define ISD_TMF_RSP_NO_LUN 2
#define ISD_TMF_RSP_TASK_ALLEGIANT 3
#define ISD_TMF_RSP_NO_FAILOVER 4
#define ISD_TMF_RSP_NOT_SUPPORTED 5
#define ISD_TMF_RSP_AUTH_FAILED 6
#define ISD_TMF_RSP_REJECTED 255

/* Logout reasons and responses */
#define ISD_LOGOUT_CLOSE_SESSION 0
#define ISD_LOGOUT_CLOSE_CONNECTION 1
#define ISD_LOGOUT_REMOVE_CONN_RECOVERY 2
#define ISD_LOGOUT_RSP_OK 0
#define ISD_LOGOUT_RSP_CID_NOT_FOUND 1
#define ISD_LOGOUT_RSP_RECOVERY_UNSUPPORTED 2
#define ISD_LOGOUT_RSP_CLEANUP_FAILED 3

/* Async events */
#define ISD_ASYNC_SCSI_EVENT 0
#define ISD_ASYNC_LOGOUT_REQUEST 1
#define ISD_ASYNC_DROP_CONNECTION 2
#define ISD_ASYNC_DROP_ALL_CONNECTIONS 3
#define ISD_ASYNC_NEGOTIATE 4

/* SCSI Response byte 2 */
#define ISD_RSP_COMPLETED 0x00
#define ISD_RSP_TARGET_FAILURE 0x01

/* AHS types */
#define ISD_AHS_EXTENDED_CDB 1
#define ISD_AHS_BIDI_READ_LEN 2

/*
 * One PDU in memory. Received PDUs are filled by the datamover and handed to
 * the core by control_notify; the core gives them back with
 * isd_conn_pdu_release() (the datamover may own the buffers). PDUs the core
 * sends are allocated with isd_pdu_alloc() and owned by the datamover once
 * passed to send_control, which frees them with isd_pdu_free() when sent.
 */
struct isd_pdu {
	uint8_t bhs[ISD_BHS_LEN];
	uint8_t *ahs;                   /* TotalAHSLength*4 bytes, or NULL */
	uint32_t ahs_len;               /* bytes */
	uint8_t *data;                  /* data segment, data_len bytes (no padding) */
	uint32_t data_len;
	/*
	 * Outgoing only: data taken from the caller's memory instead of `data`
	 * (Data-In from a LUN buffer). Not owned by the PDU.
	 */
	const struct iovec *data_iov;
	int data_iovcnt;
	void *owner;                    /* datamover's tag for received PDUs */
	TAILQ_ENTRY(isd_pdu) link;      /* free for whoever owns the PDU now */
	uint8_t inline_data[];          /* storage for `data` when isd_pdu_alloc'ed */
};
TAILQ_HEAD(isd_pdu_list, isd_pdu);

/* Allocates a zeroed PDU with room for data_cap bytes of data (pdu->data points there,
 * pdu->data_len = 0). Returns NULL on allocation failure. */
/*
 * Digests (RFC 7143 §12.1): CRC32C, on the wire least-significant byte first.
 * The header digest covers BHS and AHS; the data digest covers the data
 * segment and its padding.
 */
uint32_t isd_pdu_hdr_digest(const uint8_t *bhs, const uint8_t *ahs, uint32_t ahs_len);
uint32_t isd_pdu_data_digest(const struct iovec *iov, int iovcnt, const uint8_t *pad,
			     uint32_t pad_len);

static inline void
isd_pdu_put_digest(uint8_t *p, uint32_t crc)
{
	p[0] = (uint8_t)crc;
	p[1] = (uint8_t)(crc >> 8);
	p[2] = (uint8_t)(crc >> 16);
	p[3] = (uint8_t)(crc >> 24);
}

static inline uint32_t
isd_pdu_get_digest(const uint8_t *p)
{
	return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) |
	       ((uint32_t)p[3] << 24);
}

struct isd_pdu *isd_pdu_alloc(uint32_t data_cap);
/*
 * A PDU to receive into: its data storage starts at an address aligned to
 * align (a power of two, at most 64 KiB), so that immediate data used where
 * it arrived can go to a direct-I/O store without a copy. Only the struct is
 * zeroed, not the data storage.
 */
struct isd_pdu *isd_pdu_alloc_rx(uint32_t data_cap, uint32_t align);
void isd_pdu_free(struct isd_pdu *pdu);

/* Field access on a BHS. */
static inline uint8_t isd_bhs_opcode(const uint8_t *bhs)
{
	return bhs[0] & ISD_BHS_OPCODE_MASK;
}
static inline bool isd_bhs_immediate(const uint8_t *bhs)
{
	return (bhs[0] & ISD_BHS_I) != 0;
}
static inline uint8_t isd_bhs_flags(const uint8_t *bhs)
{
	return bhs[1];
}
static inline uint32_t isd_bhs_ahs_len(const uint8_t *bhs)
{
	return (uint32_t)bhs[4] * 4;
}
static inline uint32_t isd_bhs_dsl(const uint8_t *bhs)
{
	return get_be24(bhs + 5);
}
static inline void isd_bhs_set_dsl(uint8_t *bhs, uint32_t len)
{
	put_be24(bhs + 5, len);
}
static inline uint64_t isd_bhs_lun(const uint8_t *bhs)
{
	return get_be64(bhs + 8);
}
static inline uint32_t isd_bhs_itt(const uint8_t *bhs)
{
	return get_be32(bhs + 16);
}
/* bytes 20..23: TTT (Data-Out, NOP, Text, R2T), CID (Login), EDTL (SCSI Cmd) */
static inline uint32_t isd_bhs_ttt(const uint8_t *bhs)
{
	return get_be32(bhs + 20);
}
/* bytes 24..27: CmdSN in requests, StatSN in responses */
static inline uint32_t isd_bhs_cmdsn(const uint8_t *bhs)
{
	return get_be32(bhs + 24);
}
/* bytes 28..31: ExpStatSN in requests, ExpCmdSN in responses */
static inline uint32_t isd_bhs_expstatsn(const uint8_t *bhs)
{
	return get_be32(bhs + 28);
}

/* Padding to a 4-byte boundary (TCP framing). */
static inline uint32_t isd_pad4(uint32_t len)
{
	return (4 - (len & 3)) & 3;
}

/* Fills the BHS of an initiator's Data-Out (RFC 7143 §11.7): DataSN counts
 * from 0 in each sequence, F marks its last PDU. */
void isd_bhs_dataout(uint8_t *bhs, uint64_t lun, uint32_t itt, uint32_t ttt, uint32_t datasn,
		     uint32_t offset, uint32_t len, bool final);

/* Validates a received BHS in isolation: known opcode for the direction, AHS length,
 * DSL within max_dsl. Returns 0, or an ISD_REJECT_* reason (> 0). */
int isd_bhs_check(const uint8_t *bhs, bool target_side, uint32_t max_dsl);

/* Walks the AHS area: finds the extended-CDB (type 1) and bidi read length (type 2)
 * entries. Returns 0 or -EINVAL for a malformed AHS (length past the area, bad padding). */
struct isd_ahs_info {
	const uint8_t *ext_cdb;         /* bytes of CDB beyond the first 16, or NULL */
	uint32_t ext_cdb_len;
	bool has_bidi_read_len;
	uint32_t bidi_read_len;
};
int isd_ahs_parse(const uint8_t *ahs, uint32_t ahs_len, struct isd_ahs_info *out);

/* Human-readable opcode name for logs ("SCSI Command", "unknown(0x1c)"...). */
const char *isd_opcode_name(uint8_t opcode);
const char *isd_login_status_str(uint16_t status);
const char *isd_reject_reason_str(uint8_t reason);

#endif
