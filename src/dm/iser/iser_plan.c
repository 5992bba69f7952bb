/*
 * Pure logic of the iSER datamover: no verbs object is touched here (the
 * device attributes are a plain struct), so all of it is unit-tested without
 * an RDMA device.
 */
#include <errno.h>
#include <string.h>

#include "dm/iser/iser_int.h"
#include "util/endian.h"

static uint32_t
min_u32(uint32_t a, uint32_t b)
{
	return a < b ? a : b;
}

int
isd_iser_plan_wrs(const struct iovec *iov, int iovcnt, uint32_t offset, uint32_t length,
		  uint32_t max_sge, uint32_t max_wr_bytes, struct isd_iser_wr_plan *out,
		  int out_max, uint32_t *covered)
{
	uint32_t skip = offset, done = 0;
	int i = 0, n = 0;
	size_t in_iov = 0;

	*covered = 0;
	if (max_sge == 0 || max_wr_bytes == 0 || out_max <= 0 || iovcnt < 0)
		return -EINVAL;
	if (max_sge > ISD_ISER_MAX_SGE)
		max_sge = ISD_ISER_MAX_SGE;
	/* find the iovec entry holding `offset` */
	while (i < iovcnt && skip >= iov[i].iov_len) {
		skip -= (uint32_t)iov[i].iov_len;
		i++;
	}
	in_iov = skip;
	while (done < length && i < iovcnt && n < out_max) {
		struct isd_iser_wr_plan *w = &out[n];

		memset(w, 0, sizeof(*w));
		w->remote_off = done;
		while (done < length && i < iovcnt && w->nsge < (int)max_sge &&
		       w->bytes < max_wr_bytes) {
			size_t avail = iov[i].iov_len - in_iov;
			uint32_t take = min_u32(length - done, max_wr_bytes - w->bytes);

			if (avail < take)
				take = (uint32_t)avail;
			if (take > 0) {
				w->sge[w->nsge].addr = (uint64_t)(uintptr_t)iov[i].iov_base + in_iov;
				w->sge[w->nsge].length = take;
				w->nsge++;
				w->bytes += take;
				done += take;
				in_iov += take;
			}
			if (in_iov >= iov[i].iov_len) {
				i++;
				in_iov = 0;
			}
		}
		if (w->nsge > 0)
			n++;
	}
	*covered = done;
	return n;
}

int
isd_iser_rx_check(const uint8_t *buf, uint32_t byte_len, struct isd_iser_rx_info *out)
{
	const uint8_t *bhs;
	uint64_t need;

	memset(out, 0, sizeof(*out));
	if (byte_len < ISD_ISER_HDR_LEN)
		return -EINVAL;
	if (isd_iser_hdr_decode(buf, byte_len, &out->hdr) < 0)
		return -EINVAL;
	if (out->hdr.opcode == ISD_ISER_OP_HELLO)
		return ISD_ISER_RX_HELLO;
	if (out->hdr.opcode != ISD_ISER_OP_CTRL)
		return -EPROTO;
	if (byte_len < ISD_ISER_HEADERS_LEN)
		return -EINVAL;
	bhs = buf + ISD_ISER_HDR_LEN;
	out->ahs_len = isd_bhs_ahs_len(bhs);
	out->dsl = isd_bhs_dsl(bhs);
	need = (uint64_t)ISD_ISER_HEADERS_LEN + out->ahs_len + out->dsl;
	if (need > byte_len || byte_len - need > 4)
		return -EINVAL;
	return 0;
}

uint32_t
isd_iser_rx_data_size(const struct isd_params *p)
{
	uint32_t n;

	/* discovery over iSER: Text requests of at most 8192 bytes, no RDMAExtensions
	 * (docs/iser.md W5); a normal session without RDMAExtensions is a peer error
	 * the core fails, but size for the MRDSL it declared anyway */
	if (p->session_type == ISD_SESSION_DISCOVERY)
		n = ISD_ISER_LOGIN_DATA;
	else if (!p->rdma_extensions)
		n = p->max_recv_dsl;
	else
		n = p->target_recv_dsl;
	/* never below the login size: a Text Request may carry up to 8192 */
	if (n < ISD_ISER_LOGIN_DATA)
		n = ISD_ISER_LOGIN_DATA;
	/* we never offer more (isd_iser_trdsl_for): a larger value is not ours to honour */
	if (n > ISD_ISER_TRDSL_MAX)
		n = ISD_ISER_TRDSL_MAX;
	return n;
}

size_t
isd_iser_rx_buf_size(uint32_t data_size)
{
	return ((size_t)ISD_ISER_HEADERS_LEN + ISD_ISER_AHS_ROOM + data_size + 4 + 63) &
	       ~(size_t)63;
}

uint32_t
isd_iser_rx_count(const struct isd_params *p, uint32_t data_size, uint32_t rq_max,
		  uint64_t budget)
{
	uint64_t n;

	if (p->session_type == ISD_SESSION_DISCOVERY) {
		n = ISD_ISER_RX_DISCOVERY;
	} else {
		n = budget / isd_iser_rx_buf_size(data_size);
		if (n > ISD_ISER_RX_MAX)
			n = ISD_ISER_RX_MAX;
		if (n < ISD_ISER_RX_MIN)
			n = ISD_ISER_RX_MIN;
	}
	if (n > rq_max)
		n = rq_max;
	return (uint32_t)n;
}

uint32_t
isd_iser_trdsl_for(uint64_t recv_memory, uint32_t queue_depth)
{
	uint64_t want = (uint64_t)queue_depth + ISD_ISER_RX_SLACK;

	if (want > ISD_ISER_RX_MAX)
		want = ISD_ISER_RX_MAX;         /* we never post more */
	for (uint32_t d = ISD_ISER_TRDSL_MAX; d > ISD_ISER_LOGIN_DATA; d /= 2) {
		if (want * isd_iser_rx_buf_size(d) <= recv_memory)
			return d;
	}
	return ISD_ISER_LOGIN_DATA;
}

void
isd_iser_qp_size(const struct ibv_device_attr *a, struct isd_iser_qp_size *out)
{
	uint32_t max_wr = a->max_qp_wr > 2 ? (uint32_t)a->max_qp_wr - 1 : 1;
	uint32_t sq, rq;

	memset(out, 0, sizeof(*out));
	/* every command: its response Send plus a few RDMA WRs; plus control Sends,
	 * plus the drain marker */
	sq = ISD_ISER_QUEUE_DEPTH * (1 + ISD_ISER_WRS_PER_CMD) + ISD_ISER_TX_BIG + 16 + 1;
	rq = ISD_ISER_RX_MAX + 2;       /* FFP receives, the login buffer, the drain marker */
	out->max_send_wr = min_u32(sq, max_wr);
	out->max_recv_wr = min_u32(rq, max_wr);
	out->max_send_sge = a->max_sge > 0 ? min_u32((uint32_t)a->max_sge, ISD_ISER_MAX_SGE) : 1;
	out->max_recv_sge = 1;
	out->wr_sge = out->max_send_sge;
	/* max_sge_rd 0 means "same as max_sge" on some providers */
	out->rd_sge = a->max_sge_rd > 0 ? min_u32((uint32_t)a->max_sge_rd, out->max_send_sge)
					: out->max_send_sge;
	out->cq_depth = out->max_send_wr + out->max_recv_wr;
	if (a->max_cqe > 0 && out->cq_depth > (uint32_t)a->max_cqe)
		out->cq_depth = (uint32_t)a->max_cqe;
}

void
isd_iser_qp_size_active(const struct ibv_device_attr *a, uint32_t depth,
			struct isd_iser_qp_size *out)
{
	uint32_t max_wr = a->max_qp_wr > 2 ? (uint32_t)a->max_qp_wr - 1 : 1;

	isd_iser_qp_size(a, out);
	out->max_send_wr = min_u32(2 * depth + ISD_ISER_TX_BIG + 16 + 1, max_wr);
	out->max_recv_wr = min_u32(depth + ISD_ISER_RX_SLACK + 1, max_wr);
	out->cq_depth = out->max_send_wr + out->max_recv_wr;
	if (a->max_cqe > 0 && out->cq_depth > (uint32_t)a->max_cqe)
		out->cq_depth = (uint32_t)a->max_cqe;
}

uint8_t
isd_iser_ord(const struct rdma_conn_param *ev, int dev_max_init_rd_atom)
{
	int ord = ev->initiator_depth;

	if (dev_max_init_rd_atom >= 0 && ord > dev_max_init_rd_atom)
		ord = dev_max_init_rd_atom;
	return (uint8_t)ord;
}

void
isd_iser_credits_init(struct isd_iser_credits *cr, uint32_t sq_size, uint32_t ord)
{
	memset(cr, 0, sizeof(*cr));
	cr->sq_size = sq_size;
	cr->ord = min_u32(ord, ISD_ISER_READS_MAX);
}

bool
isd_iser_credits_take_sq(struct isd_iser_credits *cr, uint32_t n)
{
	if (n > cr->sq_size - cr->sq_used)
		return false;
	cr->sq_used += n;
	return true;
}

void
isd_iser_credits_put_sq(struct isd_iser_credits *cr, uint32_t n)
{
	cr->sq_used = n > cr->sq_used ? 0 : cr->sq_used - n;
}

bool
isd_iser_credits_take_read(struct isd_iser_credits *cr)
{
	if (cr->reads >= cr->ord || cr->sq_used >= cr->sq_size)
		return false;
	cr->reads++;
	cr->sq_used++;
	return true;
}

void
isd_iser_credits_put_read(struct isd_iser_credits *cr)
{
	if (cr->reads > 0)
		cr->reads--;
	isd_iser_credits_put_sq(cr, 1);
}

bool
isd_iser_tx_stalled(uint32_t sq_used, uint64_t done, uint64_t seen)
{
	return sq_used > 0 && done == seen;
}

enum isd_iser_txq_verdict
isd_iser_txq_add(struct isd_iser_txq *q, uint32_t bytes)
{
	if (q->count + 1 > ISD_ISER_TXQ_MAX || bytes > ISD_ISER_TXQ_MAX_BYTES - q->bytes)
		return ISD_ISER_TXQ_FULL;
	q->count++;
	q->bytes += bytes;
	if (!q->held && (q->count >= ISD_ISER_TXQ_SOFT || q->bytes >= ISD_ISER_TXQ_SOFT_BYTES)) {
		q->held = true;
		return ISD_ISER_TXQ_HOLD;
	}
	return ISD_ISER_TXQ_OK;
}

bool
isd_iser_txq_del(struct isd_iser_txq *q, uint32_t bytes)
{
	q->count = q->count > 0 ? q->count - 1 : 0;
	q->bytes = bytes > q->bytes ? 0 : q->bytes - bytes;
	/* resume at half, so that a queue hovering at the limit does not flap */
	if (q->held && q->count <= ISD_ISER_TXQ_SOFT / 2 &&
	    q->bytes <= ISD_ISER_TXQ_SOFT_BYTES / 2) {
		q->held = false;
		return true;
	}
	return false;
}

bool
isd_iser_remote_inv_ok(const struct isd_iser_cm *peer, bool dev_mem_mgt, bool enabled)
{
	return enabled && dev_mem_mgt && peer->present && !peer->send_w_inv_not_supported;
}

bool
isd_iser_inv_stag(const struct isd_iser_hdr *h, uint32_t *rkey)
{
	if (h->rsv == h->wsv)
		return false;           /* neither, or bidirectional */
	*rkey = h->rsv ? h->read_stag : h->write_stag;
	return true;
}

bool
isd_iser_pdu_is_unexpected(const uint8_t *bhs)
{
	switch (isd_bhs_opcode(bhs)) {
	case ISD_OP_NOP_IN:
		return isd_bhs_itt(bhs) == ISD_RSVD_TAG;
	case ISD_OP_ASYNC_MSG:
	case ISD_OP_REJECT:
		return true;
	default:
		return false;
	}
}

int
isd_iser_fit_data(uint8_t *bhs, uint8_t *data, uint32_t data_len, uint32_t limit)
{
	uint32_t sense;

	if (data_len <= limit)
		return (int)data_len;
	if (isd_bhs_opcode(bhs) != ISD_OP_SCSI_RSP || data == NULL || data_len < 2 || limit < 2)
		return -EMSGSIZE;
	/* SCSI Response data = 2-byte SenseLength + sense (+ response data) */
	sense = get_be16(data);
	if (sense > limit - 2)
		sense = limit - 2;
	put_be16(data, (uint16_t)sense);
	isd_bhs_set_dsl(bhs, sense + 2);
	return (int)(sense + 2);
}
