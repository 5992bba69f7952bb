/*
 * iSER wire formats (RFC 7145 §9, as every live peer implements them; see
 * docs/iser.md W1): the 28-byte iSER header that starts every
 * Send, the legacy Hello/HelloReply, and the 4-byte RDMA CM private data.
 * Pure encode/decode; nothing here touches verbs.
 *
 * Header layout (Linux include/scsi/iser.h struct iser_ctrl, packed):
 *   0  flags: opcode in the high nibble, WSV 0x08 / RSV 0x04 in the low one
 *   1  reserved[3]
 *   4  write STag (be32)     8  write VA (be64)
 *  16  read STag (be32)     20  read VA (be64)
 */
#ifndef ISD_DM_ISER_PROTO_H
#define ISD_DM_ISER_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ISD_ISER_HDR_LEN 28
#define ISD_ISER_HEADERS_LEN (ISD_ISER_HDR_LEN + 48)    /* iSER header + BHS */

#define ISD_ISER_OP_MASK 0xf0
#define ISD_ISER_OP_CTRL 0x10           /* iSCSI control-type PDU follows */
#define ISD_ISER_OP_HELLO 0x20
#define ISD_ISER_OP_HELLO_REPLY 0x30
#define ISD_ISER_WSV 0x08               /* write STag/VA valid */
#define ISD_ISER_RSV 0x04               /* read STag/VA valid */
#define ISD_ISER_HELLO_REJ 0x01         /* HelloReply: reject */

/* CM private data (IB Annex A12 "iSER CM REQ/REP"), byte 0 */
#define ISD_ISER_CM_LEN 4
#define ISD_ISER_CM_ZBVA_NOT_SUP 0x80
#define ISD_ISER_CM_SEND_W_INV_NOT_SUP 0x40

struct isd_iser_hdr {
	uint8_t opcode;                 /* ISD_ISER_OP_* */
	bool wsv;
	bool rsv;
	uint32_t write_stag;
	uint64_t write_va;
	uint32_t read_stag;
	uint64_t read_va;
};

/* Decodes the header at the start of a received Send. Returns 0, or -EINVAL if
 * len < ISD_ISER_HDR_LEN or the opcode is not one of ISD_ISER_OP_*. STags and
 * VAs whose valid bit is clear are reported as 0. */
int isd_iser_hdr_decode(const uint8_t *buf, size_t len, struct isd_iser_hdr *out);
/* Writes 28 bytes. Fields whose valid bit is clear are written as zero. */
void isd_iser_hdr_encode(const struct isd_iser_hdr *h, uint8_t *buf);

struct isd_iser_hello {
	bool reply;                     /* HelloReply */
	bool reject;                    /* HelloReply REJ bit */
	uint8_t max_ver;
	uint8_t min_or_cur_ver;         /* MinVer in Hello, CurVer in HelloReply */
	uint16_t ird_or_ord;            /* iSER-IRD in Hello, iSER-ORD in HelloReply */
};
#define ISD_ISER_HELLO_LEN 4
int isd_iser_hello_decode(const uint8_t *buf, size_t len, struct isd_iser_hello *out);
void isd_iser_hello_encode(const struct isd_iser_hello *h, uint8_t *buf);

/* CM private data: flags from a REQ (or REP); a missing or short buffer means
 * "no flags" (tgt sends none). */
struct isd_iser_cm {
	bool present;                   /* decode: the peer sent at least the flags byte */
	bool zbva_not_supported;
	bool send_w_inv_not_supported;
};
void isd_iser_cm_decode(const uint8_t *buf, size_t len, struct isd_iser_cm *out);
void isd_iser_cm_encode(const struct isd_iser_cm *cm, uint8_t buf[ISD_ISER_CM_LEN]);

#endif
