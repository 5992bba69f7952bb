#include "dm/iser/iser_proto.h"

#include <errno.h>
#include <string.h>

#include "util/endian.h"

int
isd_iser_hdr_decode(const uint8_t *buf, size_t len, struct isd_iser_hdr *out)
{
	uint8_t op;

	if (buf == NULL || len < ISD_ISER_HDR_LEN)
		return -EINVAL;
	op = buf[0] & ISD_ISER_OP_MASK;
	if (op != ISD_ISER_OP_CTRL && op != ISD_ISER_OP_HELLO && op != ISD_ISER_OP_HELLO_REPLY)
		return -EINVAL;
	memset(out, 0, sizeof(*out));
	out->opcode = op;
	if (op != ISD_ISER_OP_CTRL)
		return 0;
	out->wsv = (buf[0] & ISD_ISER_WSV) != 0;
	out->rsv = (buf[0] & ISD_ISER_RSV) != 0;
	if (out->wsv) {
		out->write_stag = get_be32(buf + 4);
		out->write_va = get_be64(buf + 8);
	}
	if (out->rsv) {
		out->read_stag = get_be32(buf + 16);
		out->read_va = get_be64(buf + 20);
	}
	return 0;
}

void
isd_iser_hdr_encode(const struct isd_iser_hdr *h, uint8_t *buf)
{
	memset(buf, 0, ISD_ISER_HDR_LEN);
	buf[0] = h->opcode & ISD_ISER_OP_MASK;
	if (h->wsv) {
		buf[0] |= ISD_ISER_WSV;
		put_be32(buf + 4, h->write_stag);
		put_be64(buf + 8, h->write_va);
	}
	if (h->rsv) {
		buf[0] |= ISD_ISER_RSV;
		put_be32(buf + 16, h->read_stag);
		put_be64(buf + 20, h->read_va);
	}
}

int
isd_iser_hello_decode(const uint8_t *buf, size_t len, struct isd_iser_hello *out)
{
	uint8_t op;

	if (buf == NULL || len < ISD_ISER_HELLO_LEN)
		return -EINVAL;
	op = buf[0] & ISD_ISER_OP_MASK;
	if (op != ISD_ISER_OP_HELLO && op != ISD_ISER_OP_HELLO_REPLY)
		return -EINVAL;
	out->reply = op == ISD_ISER_OP_HELLO_REPLY;
	out->reject = out->reply && (buf[0] & ISD_ISER_HELLO_REJ) != 0;
	out->max_ver = buf[1] >> 4;
	out->min_or_cur_ver = buf[1] & 0x0f;
	out->ird_or_ord = get_be16(buf + 2);
	return 0;
}

void
isd_iser_hello_encode(const struct isd_iser_hello *h, uint8_t *buf)
{
	buf[0] = h->reply ? ISD_ISER_OP_HELLO_REPLY : ISD_ISER_OP_HELLO;
	if (h->reply && h->reject)
		buf[0] |= ISD_ISER_HELLO_REJ;
	buf[1] = (uint8_t)((h->max_ver & 0x0f) << 4 | (h->min_or_cur_ver & 0x0f));
	put_be16(buf + 2, h->ird_or_ord);
}

void
isd_iser_cm_decode(const uint8_t *buf, size_t len, struct isd_iser_cm *out)
{
	memset(out, 0, sizeof(*out));
	if (buf == NULL || len < 1)
		return;
	out->present = true;
	out->zbva_not_supported = (buf[0] & ISD_ISER_CM_ZBVA_NOT_SUP) != 0;
	out->send_w_inv_not_supported = (buf[0] & ISD_ISER_CM_SEND_W_INV_NOT_SUP) != 0;
}

void
isd_iser_cm_encode(const struct isd_iser_cm *cm, uint8_t buf[ISD_ISER_CM_LEN])
{
	memset(buf, 0, ISD_ISER_CM_LEN);
	if (cm->zbva_not_supported)
		buf[0] |= ISD_ISER_CM_ZBVA_NOT_SUP;
	if (cm->send_w_inv_not_supported)
		buf[0] |= ISD_ISER_CM_SEND_W_INV_NOT_SUP;
}
