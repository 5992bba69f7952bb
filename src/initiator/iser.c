/*
 * The iSER transport of the initiator (RFC 7145 as the live peers speak it;
 * shared/docs/iser-facts.md): rdma_cm address/route resolution and connect
 * (private data 0xC0: no zero-based VAs, no Send-with-Invalidate, since our
 * STags are plain MRs), one RC QP whose send and receive completions share one
 * CQ, login over Sends from the first PDU, and SCSI commands whose data the
 * target moves itself with RDMA Write (Data-In) and RDMA Read (Data-Out) to
 * and from the caller's buffer, advertised as Read/Write STag + VA in the
 * iSER header. No Data-In or R2T travels on the wire.
 *
 * Zero copy: the caller's buffers are registered through a small registration
 * cache keyed by address range (regcache.c: page-rounded; LRU; entries in use
 * by a command are never evicted), so a buffer reused across commands is
 * registered once. Immediate data and unsolicited Data-Out go out as a second
 * SGE straight from that registration. Only a task whose iovec is not one
 * contiguous range is bounced through a private registered buffer.
 *
 * The caller's event loop sees one fd: an epoll set holding the rdma_cm event
 * channel and the CQ's completion channel (both non-blocking).
 *
 * Teardown: rdma_disconnect moves the QP to ERROR, which flushes every posted
 * WR; we poll until every posted WR has completed (bounded), then free.
 */
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

#include <infiniband/verbs.h>
#include <rdma/rdma_cma.h>

#include "dm/iser/iser_proto.h"
#include "initiator/init_int.h"
#include "rdma/rdma_regcache.h"
#include "util/endian.h"

/* Data bytes of each receive buffer: our InitiatorRecvDataSegmentLength (and the
 * MaxRecvDataSegmentLength of a discovery session, whose Text Responses land here). */
#define RX_DATA 8192u
#define RX_SZ (ISD_ISER_HEADERS_LEN + RX_DATA)
/* Control data we send in one PDU at most (login/text key text, NOP-Out ping data). */
#define TX_DATA 8192u
#define TX_SZ (ISD_ISER_HEADERS_LEN + TX_DATA)
/* Receives beyond the queue depth: NOP-In, Async, Reject, Text, TMF/Logout Responses. */
#define RX_EXTRA 16u
#define RCACHE_MAX 64
#define RCACHE_BYTES (1ull << 30)
static_assert(RCACHE_MAX <= ISD_REGCACHE_MAX_ENTRIES, "the cache's table is fixed");
#define CONNECT_TMO_MS 5000
#define DRAIN_TMO_MS 4000

/* wr_id tags: low 2 bits say what completed */
#define WR_RX 1u
#define WR_TX 2u

struct iser_rx {
	uint8_t *buf;
	bool posted;
};

struct iser_tx {
	uint8_t *buf;
	struct iser_tx *next; /* free list */
};

/* Per command slot: what the command's data is registered as. */
struct iser_slot {
	struct isd_regcache_ent *ent; /* regcache entry (handle: its struct ibv_mr), or NULL */
	struct ibv_mr *bounce_mr;
	uint8_t *bounce;
	uint32_t bounce_len;
	bool bounce_in; /* copy back into the caller's iov at completion */
	const struct iovec *iov;
	int iovcnt;
	uintptr_t base; /* contiguous address of the task's data (caller's or bounce) */
	uint32_t lkey, rkey;
};

struct isd_iiser {
	/* long-lived: PD and registration cache survive reconnects to the same device */
	struct ibv_context *vctx;
	struct ibv_pd *pd;
	struct ibv_device_attr attr;
	struct isd_regcache rcache;
	struct iser_slot *slots;
	uint32_t nslots;

	/* per connection */
	int epfd;
	struct rdma_event_channel *cm_ch;
	struct rdma_cm_id *id;
	struct ibv_comp_channel *comp;
	struct ibv_cq *cq;
	bool qp_up;
	bool connected;
	bool connecting;
	bool rx_all; /* the final login request went out: keep every receive posted */
	uint64_t connect_deadline_ns;
	uint8_t *rx_mem, *tx_mem;
	struct ibv_mr *rx_mr, *tx_mr;
	struct iser_rx *rx;
	uint32_t nrx, rx_next;
	struct iser_tx *txd;
	uint32_t ntx;
	struct iser_tx *tx_free;
	uint32_t outstanding; /* posted WRs not completed */
	uint32_t batch_left;  /* polled by cq_poll and not handled yet (dropped on a teardown) */
	struct isd_itx_list pending; /* items waiting for a send descriptor */
	struct isd_pdu *rxpdu;
};

static struct isd_iiser *
st(const struct isd_ictx *c)
{
	return c->iser;
}

/* ---- registration cache ---- */

/* regcache.c registers through these, on the current PD (ctx: our state). */
static void *
rc_reg(void *ctx, uintptr_t start, size_t len)
{
	struct isd_iiser *s = ctx;

	return ibv_reg_mr(s->pd, (void *)start, len,
			  IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_READ |
			      IBV_ACCESS_REMOTE_WRITE);
}

static void
rc_dereg(void *ctx, void *handle)
{
	ibv_dereg_mr(handle);
}

static struct isd_regcache_ent *
rc_get(struct isd_ictx *c, uintptr_t addr, size_t len)
{
	const uintptr_t mask = ISD_REGCACHE_PAGE - 1;
	struct isd_iiser *s = st(c);
	struct isd_regcache_ent *e = isd_regcache_get(&s->rcache, addr, len);
	int err = errno;

	if (e != NULL)
		return e;
	/* Full leaves every slot in use (a failed reg() had a free one), so an
	 * ENOSPC from ibv_reg_mr itself is not taken for a full cache. */
	if (err == ENOSPC && isd_regcache_in_use(&s->rcache) == RCACHE_MAX) {
		isd_init_set_error(c, "iSER registration cache full (%d buffers in use)",
				   RCACHE_MAX);
		return NULL;
	}
	isd_init_set_error(c, "registering %zu bytes for RDMA failed: %s%s",
			   (size_t)(((addr + len + mask) & ~mask) - (addr & ~mask)), strerror(err),
			   err == ENOMEM || err == EPERM
			       ? " (RLIMIT_MEMLOCK too low? try ulimit -l unlimited)"
			       : "");
	return NULL;
}

int
iserd_mem_unregister(struct iserd_context *pub, const void *addr, size_t len)
{
	struct isd_iiser *s = pub->c.iser;

	if (s == NULL)
		return 0;
	isd_regcache_forget(&s->rcache, (uintptr_t)addr, len);
	return 0;
}

/* ---- per-command registration ---- */

static void
slot_release(struct isd_ictx *c, struct iser_slot *sl)
{
	struct isd_iiser *s = st(c);

	if (sl->ent != NULL)
		isd_regcache_put(&s->rcache, sl->ent);
	sl->ent = NULL;
	if (sl->bounce_mr != NULL)
		ibv_dereg_mr(sl->bounce_mr);
	sl->bounce_mr = NULL;
	free(sl->bounce);
	sl->bounce = NULL;
	sl->bounce_len = 0;
	sl->bounce_in = false;
	sl->base = 0;
}

static int
slots_ensure(struct isd_ictx *c)
{
	struct isd_iiser *s = st(c);

	if (s->nslots >= c->nslots)
		return 0;
	if (s->slots != NULL) {
		uint32_t i;

		for (i = 0; i < s->nslots; i++)
			slot_release(c, &s->slots[i]);
		free(s->slots);
	}
	s->slots = calloc(c->nslots ? c->nslots : 1, sizeof(*s->slots));
	if (s->slots == NULL) {
		s->nslots = 0;
		return -ENOMEM;
	}
	s->nslots = c->nslots;
	return 0;
}

/* Registers the task's data: the caller's buffer if it is one contiguous range,
 * a private bounce buffer otherwise. */
static int
slot_prepare(struct isd_ictx *c, struct isd_itask *it)
{
	struct isd_iiser *s = st(c);
	struct iserd_task *t = it->t;
	struct iser_slot *sl;
	uintptr_t base;
	uint32_t need = t->xfer_len, have = 0;
	bool contiguous = true;
	int i;

	if (slots_ensure(c) < 0 || it->idx >= s->nslots)
		return -ENOMEM;
	sl = &s->slots[it->idx];
	slot_release(c, sl);
	if (need == 0)
		return 0;
	base = (uintptr_t)t->iov[0].iov_base;
	for (i = 0; i < t->iovcnt && have < need; i++) {
		if ((uintptr_t)t->iov[i].iov_base != base + have) {
			contiguous = false;
			break;
		}
		have += (uint32_t)t->iov[i].iov_len;
	}
	if (contiguous) {
		sl->ent = rc_get(c, base, need);
		if (sl->ent == NULL)
			return -ENOMEM;
		sl->base = base;
		sl->lkey = ((struct ibv_mr *)sl->ent->handle)->lkey;
		sl->rkey = ((struct ibv_mr *)sl->ent->handle)->rkey;
		return 0;
	}
	isd_init_log(c, ISERD_LOG_DEBUG,
		     "task buffer is not one contiguous range: bounced through a copy");
	sl->bounce = malloc(need);
	if (sl->bounce == NULL)
		return -ENOMEM;
	sl->bounce_len = need;
	if (t->dir == ISERD_DIR_WRITE) {
		uint32_t off = 0;

		for (i = 0; i < t->iovcnt && off < need; i++) {
			uint32_t n = (uint32_t)t->iov[i].iov_len;

			if (n > need - off)
				n = need - off;
			memcpy(sl->bounce + off, t->iov[i].iov_base, n);
			off += n;
		}
	} else {
		sl->bounce_in = true;
		sl->iov = t->iov;
		sl->iovcnt = t->iovcnt;
	}
	sl->bounce_mr = ibv_reg_mr(s->pd, sl->bounce, need,
				   IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_READ |
				       IBV_ACCESS_REMOTE_WRITE);
	if (sl->bounce_mr == NULL) {
		isd_init_set_error(c, "registering a bounce buffer failed: %s", strerror(errno));
		slot_release(c, sl);
		return -ENOMEM;
	}
	sl->base = (uintptr_t)sl->bounce;
	sl->lkey = sl->bounce_mr->lkey;
	sl->rkey = sl->bounce_mr->rkey;
	return 0;
}

/* The command's status arrived: copy a bounced read back, release the registration. */
static void
slot_complete(struct isd_ictx *c, struct isd_itask *it)
{
	struct isd_iiser *s = st(c);
	struct iser_slot *sl;

	if (it == NULL || it->idx >= s->nslots)
		return;
	sl = &s->slots[it->idx];
	if (sl->bounce_in && sl->bounce != NULL) {
		uint32_t off = 0;
		int i;

		for (i = 0; i < sl->iovcnt && off < sl->bounce_len; i++) {
			uint32_t n = (uint32_t)sl->iov[i].iov_len;

			if (n > sl->bounce_len - off)
				n = sl->bounce_len - off;
			memcpy(sl->iov[i].iov_base, sl->bounce + off, n);
			off += n;
		}
	}
	slot_release(c, sl);
}

/* ---- receives ---- */

static int
post_rx(struct isd_iiser *s, uint32_t i)
{
	struct ibv_sge sge = {
	    .addr = (uintptr_t)s->rx[i].buf, .length = RX_SZ, .lkey = s->rx_mr->lkey};
	struct ibv_recv_wr wr = {.wr_id = ((uint64_t)i << 2) | WR_RX, .sg_list = &sge, .num_sge = 1},
			   *bad;
	int rc;

	if (s->rx[i].posted)
		return 0;
	rc = ibv_post_recv(s->id->qp, &wr, &bad);
	if (rc != 0)
		return -rc;
	s->rx[i].posted = true;
	s->outstanding++;
	return 0;
}

/* One receive for the next Login/Text Response (login phase). */
static int
post_one_rx(struct isd_iiser *s)
{
	uint32_t k;

	for (k = 0; k < s->nrx; k++) {
		uint32_t i = (s->rx_next + k) % s->nrx;

		if (!s->rx[i].posted) {
			s->rx_next = (i + 1) % s->nrx;
			return post_rx(s, i);
		}
	}
	return 0; /* all posted already */
}

static int
post_all_rx(struct isd_iiser *s)
{
	uint32_t i;
	int rc;

	for (i = 0; i < s->nrx; i++) {
		rc = post_rx(s, i);
		if (rc < 0)
			return rc;
	}
	return 0;
}

/* ---- sends ---- */

static int
post_send(struct isd_ictx *c, struct iser_tx *d, uint32_t hdr_data_len, uint64_t addr2,
	  uint32_t len2, uint32_t lkey2)
{
	struct isd_iiser *s = st(c);
	struct ibv_sge sge[2] = {
	    {.addr = (uintptr_t)d->buf, .length = hdr_data_len, .lkey = s->tx_mr->lkey},
	    {.addr = addr2, .length = len2, .lkey = lkey2},
	};
	struct ibv_send_wr wr = {
	    .wr_id = ((uint64_t)(d - s->txd) << 2) | WR_TX,
	    .sg_list = sge,
	    .num_sge = len2 > 0 ? 2 : 1,
	    .opcode = IBV_WR_SEND,
	    .send_flags = IBV_SEND_SIGNALED,
	},
			   *bad;
	int rc = ibv_post_send(s->id->qp, &wr, &bad);

	if (rc != 0) {
		isd_init_set_error(c, "iSER post send failed: %s", strerror(rc));
		return -rc;
	}
	s->outstanding++;
	return 0;
}

static struct iser_tx *
tx_get(struct isd_iiser *s)
{
	struct iser_tx *d = s->tx_free;

	if (d != NULL)
		s->tx_free = d->next;
	return d;
}

static void
tx_put(struct isd_iiser *s, struct iser_tx *d)
{
	d->next = s->tx_free;
	s->tx_free = d;
}

static void
hdr_plain(uint8_t *buf)
{
	struct isd_iser_hdr h = {.opcode = ISD_ISER_OP_CTRL};

	isd_iser_hdr_encode(&h, buf);
}

/* Posts what it can of item x. Returns 1 when the item is fully posted, 0 when it
 * waits for a send descriptor, -errno on failure. */
static int
post_item(struct isd_ictx *c, struct isd_itx *x)
{
	struct isd_iiser *s = st(c);
	struct iser_tx *d;
	int rc;

	switch (x->kind) {
	case ISD_ITX_PDU: {
		struct isd_pdu *p = x->pdu;
		uint8_t op = isd_bhs_opcode(p->bhs);

		if (p->data_len > TX_DATA) {
			isd_init_set_error(c, "control PDU of %u data bytes exceeds the iSER send size",
					   p->data_len);
			return -EMSGSIZE;
		}
		d = tx_get(s);
		if (d == NULL)
			return 0;
		if (op == ISD_OP_LOGIN_REQ || op == ISD_OP_TEXT_REQ) {
			/* The response's receive must be posted before the request goes. */
			bool final = op == ISD_OP_LOGIN_REQ && (p->bhs[1] & 0x80) &&
				     (p->bhs[1] & 0x03) == ISD_STAGE_FFP;

			if (final)
				s->rx_all = true;
			rc = s->rx_all ? post_all_rx(s) : post_one_rx(s);
			if (rc < 0) {
				tx_put(s, d);
				isd_init_set_error(c, "iSER post receive failed: %s", strerror(-rc));
				return rc;
			}
		}
		hdr_plain(d->buf);
		memcpy(d->buf + ISD_ISER_HDR_LEN, p->bhs, ISD_BHS_LEN);
		isd_bhs_set_dsl(d->buf + ISD_ISER_HDR_LEN, p->data_len);
		if (p->data_len > 0)
			memcpy(d->buf + ISD_ISER_HEADERS_LEN, p->data, p->data_len);
		rc = post_send(c, d, ISD_ISER_HEADERS_LEN + p->data_len, 0, 0, 0);
		if (rc < 0) {
			tx_put(s, d);
			return rc;
		}
		return 1;
	}
	case ISD_ITX_CMD: {
		struct isd_itask *it = x->task;
		struct iserd_task *t = it->t;
		const struct isd_params *pa = &c->params;
		struct isd_iser_hdr h = {.opcode = ISD_ISER_OP_CTRL};
		struct iovec scratch[ISD_INIT_TX_IOV];
		struct iser_slot *sl;
		uint32_t len = 0, unsol_end = 0;
		int n = 0;

		d = tx_get(s);
		if (d == NULL)
			return 0;
		rc = slot_prepare(c, it);
		if (rc < 0) {
			tx_put(s, d);
			return rc;
		}
		sl = &s->slots[it->idx];
		isd_init_build_cmd(c, x, d->buf + ISD_ISER_HDR_LEN, scratch, &n, ISD_INIT_TX_IOV,
				   &len);
		if (t->dir == ISERD_DIR_WRITE && t->xfer_len > 0) {
			uint32_t fb = pa->first_burst_length < t->xfer_len ? pa->first_burst_length
									   : t->xfer_len;

			unsol_end = pa->initial_r2t ? it->imm_len : fb;
			if (unsol_end < it->imm_len)
				unsol_end = it->imm_len;
			/* F: no unsolicited Data-Out follows. */
			if (unsol_end > it->imm_len)
				d->buf[ISD_ISER_HDR_LEN + 1] &= (uint8_t)~ISD_BHS_F;
			else
				d->buf[ISD_ISER_HDR_LEN + 1] |= ISD_BHS_F;
			if (unsol_end < t->xfer_len) {
				h.wsv = true;
				h.write_stag = sl->rkey;
				h.write_va = sl->base + unsol_end;
			}
		} else if (t->dir == ISERD_DIR_READ && t->xfer_len > 0) {
			h.rsv = true;
			h.read_stag = sl->rkey;
			h.read_va = sl->base;
		}
		isd_bhs_set_dsl(d->buf + ISD_ISER_HDR_LEN, len);
		isd_iser_hdr_encode(&h, d->buf);
		rc = post_send(c, d, ISD_ISER_HEADERS_LEN, len > 0 ? sl->base : 0, len, sl->lkey);
		if (rc < 0) {
			tx_put(s, d);
			return rc;
		}
		return 1;
	}
	case ISD_ITX_DATAOUT: {
		struct isd_itask *it = x->task;
		uint32_t max = c->params.max_xmit_dsl;
		struct iser_slot *sl;

		if (it->idx >= s->nslots)
			return -EINVAL;
		sl = &s->slots[it->idx];
		while (x->off < x->end) {
			struct iovec scratch[ISD_INIT_TX_IOV];
			uint32_t off = x->off, len = 0;
			int n = 0;

			d = tx_get(s);
			if (d == NULL)
				return 0;
			hdr_plain(d->buf);
			isd_init_build_dataout(c, x, max, d->buf + ISD_ISER_HDR_LEN, scratch, &n,
					       ISD_INIT_TX_IOV, &len);
			isd_bhs_set_dsl(d->buf + ISD_ISER_HDR_LEN, len);
			rc = post_send(c, d, ISD_ISER_HEADERS_LEN, sl->base + off, len, sl->lkey);
			if (rc < 0) {
				tx_put(s, d);
				return rc;
			}
			if (len == 0)
				break;
		}
		return 1;
	}
	}
	return -EINVAL;
}

static void
item_done(struct isd_ictx *c, struct isd_itx *x)
{
	x->queued = false;
	if (x->kind == ISD_ITX_PDU) {
		isd_pdu_free(x->pdu);
		free(x);
	} else if (x->task != NULL && x->task->state == ISD_IT_ZOMBIE) {
		isd_init_slot_release(c, x->task);
	}
}

/* Posts pending items in order while send descriptors last. */
static int
flush_pending(struct isd_ictx *c)
{
	struct isd_iiser *s = st(c);
	struct isd_itx *x;
	int rc;

	while ((x = TAILQ_FIRST(&s->pending)) != NULL) {
		rc = post_item(c, x);
		if (rc == 0)
			return 0;
		TAILQ_REMOVE(&s->pending, x, link);
		if (rc < 0) {
			item_done(c, x);
			return rc;
		}
		item_done(c, x);
	}
	return 0;
}

static void
iser_queue(struct isd_ictx *c, struct isd_itx *x)
{
	struct isd_iiser *s = st(c);
	int rc;

	x->queued = true;
	TAILQ_INSERT_TAIL(&s->pending, x, link);
	if (!s->qp_up)
		return;
	rc = flush_pending(c);
	if (rc < 0 && c->pending_fail == 0)
		c->pending_fail = rc;
}

static void
iser_detach_task(struct isd_ictx *c, struct isd_itask *it)
{
	struct isd_iiser *s = st(c);
	struct isd_itx *x, *tmp;

	/* Items not posted yet are dropped; posted Sends are in the HCA's hands. */
	TAILQ_FOREACH_SAFE(x, &s->pending, link, tmp)
	{
		if (x->task == it) {
			TAILQ_REMOVE(&s->pending, x, link);
			x->queued = false;
		}
	}
	if (it->idx < s->nslots)
		slot_release(c, &s->slots[it->idx]);
}

/* ---- connection set-up and teardown ---- */

static int
set_nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);

	return fl < 0 ? -errno : (fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0 ? -errno : 0);
}

static void
free_conn_bufs(struct isd_iiser *s)
{
	if (s->rx_mr != NULL)
		ibv_dereg_mr(s->rx_mr);
	if (s->tx_mr != NULL)
		ibv_dereg_mr(s->tx_mr);
	s->rx_mr = s->tx_mr = NULL;
	free(s->rx_mem);
	free(s->tx_mem);
	s->rx_mem = s->tx_mem = NULL;
	free(s->rx);
	free(s->txd);
	s->rx = NULL;
	s->txd = NULL;
	s->tx_free = NULL;
	s->nrx = s->ntx = 0;
}

/* Waits (bounded) for every posted WR to complete after the QP went to ERROR. */
static void
drain(struct isd_iiser *s)
{
	uint64_t deadline = isd_init_now_ns() + (uint64_t)DRAIN_TMO_MS * 1000000ull;
	struct ibv_wc wc[32];

	/* completions cq_poll took and will not handle count as done */
	s->outstanding = s->outstanding > s->batch_left ? s->outstanding - s->batch_left : 0;
	s->batch_left = 0;
	while (s->outstanding > 0 && isd_init_now_ns() < deadline) {
		int n = ibv_poll_cq(s->cq, 32, wc), i;

		if (n < 0)
			break;
		for (i = 0; i < n; i++)
			if (s->outstanding > 0)
				s->outstanding--;
		if (n == 0) {
			struct timespec ts = {0, 1000000};

			nanosleep(&ts, NULL);
		}
	}
}

static void
iser_disconnect(struct isd_ictx *c)
{
	struct isd_iiser *s = st(c);
	struct isd_itx *x;
	uint32_t i;

	if (s == NULL)
		return;
	while ((x = TAILQ_FIRST(&s->pending)) != NULL) {
		TAILQ_REMOVE(&s->pending, x, link);
		item_done(c, x);
	}
	if (s->id != NULL && s->id->qp != NULL) {
		struct ibv_qp_attr qa = {.qp_state = IBV_QPS_ERR};

		if (s->connected)
			rdma_disconnect(s->id);
		ibv_modify_qp(s->id->qp, &qa, IBV_QP_STATE);
		drain(s);
		rdma_destroy_qp(s->id);
		isd_init_log(c, ISERD_LOG_DEBUG, "iSER connection closed (%u WRs not drained)",
			     s->outstanding);
	}
	s->outstanding = 0;
	for (i = 0; i < s->nslots; i++)
		slot_release(c, &s->slots[i]);
	if (s->comp != NULL) {
		/* Completion events written and not read must be acked too, or
		 * ibv_destroy_cq waits for ever (the kernel counts them reported). */
		struct ibv_cq *ev_cq;
		void *ev_ctx;

		while (ibv_get_cq_event(s->comp, &ev_cq, &ev_ctx) == 0)
			ibv_ack_cq_events(ev_cq, 1);
	}
	if (s->cq != NULL)
		ibv_destroy_cq(s->cq);
	s->cq = NULL;
	if (s->comp != NULL)
		ibv_destroy_comp_channel(s->comp);
	s->comp = NULL;
	free_conn_bufs(s);
	if (s->cm_ch != NULL) {
		struct rdma_cm_event *ev;

		while (rdma_get_cm_event(s->cm_ch, &ev) == 0)
			rdma_ack_cm_event(ev);
	}
	if (s->id != NULL)
		rdma_destroy_id(s->id);
	s->id = NULL;
	if (s->cm_ch != NULL)
		rdma_destroy_event_channel(s->cm_ch);
	s->cm_ch = NULL;
	if (s->epfd >= 0)
		close(s->epfd);
	s->epfd = -1;
	s->qp_up = s->connected = s->connecting = s->rx_all = false;
}

static int
ep_add(struct isd_iiser *s, int fd)
{
	struct epoll_event ev = {.events = EPOLLIN, .data.fd = fd};

	return epoll_ctl(s->epfd, EPOLL_CTL_ADD, fd, &ev) < 0 ? -errno : 0;
}

static int
iser_connect(struct isd_ictx *c)
{
	struct isd_iiser *s = st(c);
	struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *ai = NULL;
	char port[16];
	int rc;

	if (s == NULL) {
		s = calloc(1, sizeof(*s));
		if (s == NULL)
			return -ENOMEM;
		s->epfd = -1;
		TAILQ_INIT(&s->pending);
		isd_regcache_init(&s->rcache, RCACHE_MAX, RCACHE_BYTES, rc_reg, rc_dereg, s);
		c->iser = s;
	}
	iser_disconnect(c);
	if (s->rxpdu == NULL)
		s->rxpdu = isd_pdu_alloc(0); /* a view of each receive buffer; kept until free */
	s->epfd = epoll_create1(EPOLL_CLOEXEC);
	s->cm_ch = rdma_create_event_channel();
	if (s->rxpdu == NULL || s->epfd < 0 || s->cm_ch == NULL) {
		isd_init_set_error(c, "cannot open the RDMA CM (%s); is rdma_cm loaded and an RDMA "
				      "device (e.g. rdma_rxe) configured?",
				   strerror(errno));
		rc = -ENODEV;
		goto fail;
	}
	rc = set_nonblock(s->cm_ch->fd);
	if (rc == 0)
		rc = ep_add(s, s->cm_ch->fd);
	if (rc < 0)
		goto fail;
	if (rdma_create_id(s->cm_ch, &s->id, c, RDMA_PS_TCP) != 0) {
		rc = -errno;
		isd_init_set_error(c, "rdma_create_id: %s", strerror(errno));
		goto fail;
	}
	snprintf(port, sizeof(port), "%u", c->url.port);
	rc = getaddrinfo(c->url.host, port, &hints, &ai);
	if (rc != 0) {
		isd_init_set_error(c, "cannot resolve %s: %s", c->url.host, gai_strerror(rc));
		rc = -EHOSTUNREACH;
		goto fail;
	}
	if (rdma_resolve_addr(s->id, NULL, ai->ai_addr, 2000) != 0) {
		rc = -errno;
		isd_init_set_error(c, "rdma_resolve_addr %s: %s (no RDMA device on the route?)",
				   c->url.host, strerror(errno));
		freeaddrinfo(ai);
		goto fail;
	}
	freeaddrinfo(ai);
	s->connecting = true;
	s->connect_deadline_ns = isd_init_now_ns() + (uint64_t)CONNECT_TMO_MS * 1000000ull;
	return 0;
fail:
	iser_disconnect(c);
	return rc < 0 ? rc : -EIO;
}

/* Route resolved: PD, CQ, QP, buffers; then rdma_connect. */
static int
setup_qp(struct isd_ictx *c)
{
	struct isd_iiser *s = st(c);
	struct rdma_conn_param cp;
	struct ibv_qp_init_attr qa;
	uint8_t pdata[ISD_ISER_CM_LEN];
	/* 0xC0: no zero-based VAs, and no Send-with-Invalidate: our STags are plain
	 * MRs (userspace has no FRWR), which a remote invalidation cannot target;
	 * LIO would otherwise invalidate them and break the connection. */
	struct isd_iser_cm cm = {.zbva_not_supported = true, .send_w_inv_not_supported = true};
	uint32_t depth = c->stype == ISERD_SESSION_NORMAL ? c->queue_depth : 1, i, cqe;
	int rc;

	if (s->id->verbs == NULL)
		return -ENODEV;
	if (s->vctx != s->id->verbs) {
		/* A new device: drop what was registered on the old one. */
		uint32_t k;

		for (k = 0; k < s->nslots; k++)
			slot_release(c, &s->slots[k]);
		isd_regcache_flush(&s->rcache);
		if (s->pd != NULL)
			ibv_dealloc_pd(s->pd);
		s->pd = NULL;
		s->vctx = s->id->verbs;
		if (ibv_query_device(s->vctx, &s->attr) != 0)
			return -EIO;
		s->pd = ibv_alloc_pd(s->vctx);
		if (s->pd == NULL)
			return -ENOMEM;
	}
	s->nrx = depth + RX_EXTRA;
	s->ntx = 2 * depth + RX_EXTRA;
	if ((int)s->ntx > s->attr.max_qp_wr - 1)
		s->ntx = (uint32_t)s->attr.max_qp_wr - 1;
	if ((int)s->nrx > s->attr.max_qp_wr)
		s->nrx = (uint32_t)s->attr.max_qp_wr;
	s->rx = calloc(s->nrx, sizeof(*s->rx));
	s->txd = calloc(s->ntx, sizeof(*s->txd));
	if (posix_memalign((void **)&s->rx_mem, 4096, (size_t)s->nrx * RX_SZ) != 0)
		s->rx_mem = NULL;
	if (posix_memalign((void **)&s->tx_mem, 4096, (size_t)s->ntx * TX_SZ) != 0)
		s->tx_mem = NULL;
	if (s->rx == NULL || s->txd == NULL || s->rx_mem == NULL || s->tx_mem == NULL)
		return -ENOMEM;
	s->rx_mr = ibv_reg_mr(s->pd, s->rx_mem, (size_t)s->nrx * RX_SZ, IBV_ACCESS_LOCAL_WRITE);
	s->tx_mr = ibv_reg_mr(s->pd, s->tx_mem, (size_t)s->ntx * TX_SZ, 0);
	if (s->rx_mr == NULL || s->tx_mr == NULL) {
		isd_init_set_error(c, "registering iSER buffers failed: %s", strerror(errno));
		return -ENOMEM;
	}
	for (i = 0; i < s->nrx; i++)
		s->rx[i].buf = s->rx_mem + (size_t)i * RX_SZ;
	for (i = 0; i < s->ntx; i++) {
		s->txd[i].buf = s->tx_mem + (size_t)i * TX_SZ;
		tx_put(s, &s->txd[s->ntx - 1 - i]);
	}
	s->rx_next = 0;
	s->comp = ibv_create_comp_channel(s->vctx);
	if (s->comp == NULL)
		return -ENOMEM;
	rc = set_nonblock(s->comp->fd);
	if (rc == 0)
		rc = ep_add(s, s->comp->fd);
	if (rc < 0)
		return rc;
	cqe = s->nrx + s->ntx + 1;
	if ((int)cqe > s->attr.max_cqe)
		cqe = (uint32_t)s->attr.max_cqe;
	s->cq = ibv_create_cq(s->vctx, (int)cqe, NULL, s->comp, 0);
	if (s->cq == NULL)
		return -ENOMEM;
	if (ibv_req_notify_cq(s->cq, 0) != 0)
		return -EIO;
	memset(&qa, 0, sizeof(qa));
	qa.send_cq = s->cq;
	qa.recv_cq = s->cq;
	qa.qp_type = IBV_QPT_RC;
	qa.cap.max_send_wr = s->ntx;
	qa.cap.max_recv_wr = s->nrx;
	qa.cap.max_send_sge = 2;
	qa.cap.max_recv_sge = 1;
	if (rdma_create_qp(s->id, s->pd, &qa) != 0) {
		isd_init_set_error(c, "rdma_create_qp: %s", strerror(errno));
		return -errno ? -errno : -EIO;
	}
	isd_iser_cm_encode(&cm, pdata);
	memset(&cp, 0, sizeof(cp));
	cp.private_data = pdata;
	cp.private_data_len = sizeof(pdata);
	cp.responder_resources = (uint8_t)(s->attr.max_qp_rd_atom > 255 ? 255 : s->attr.max_qp_rd_atom);
	cp.initiator_depth = s->attr.max_qp_init_rd_atom > 0 ? 1 : 0;
	cp.retry_count = 7;
	cp.rnr_retry_count = 7;
	if (rdma_connect(s->id, &cp) != 0) {
		isd_init_set_error(c, "rdma_connect: %s", strerror(errno));
		return -errno ? -errno : -EIO;
	}
	return 0;
}

static int
connect_failed(struct isd_ictx *c, int rc, const char *what)
{
	if (c->err[0] == '\0' || what != NULL)
		isd_init_set_error(c, "iSER connect to %s:%u failed: %s", c->url.host, c->url.port,
				   what != NULL ? what : strerror(-rc));
	iser_disconnect(c);
	isd_init_connected(c, rc);
	return 0;
}

static int cq_poll(struct isd_ictx *c);

static int
cm_events(struct isd_ictx *c)
{
	struct isd_iiser *s = st(c);
	struct rdma_cm_event *ev;
	int rc = 0;

	while (s->cm_ch != NULL && rdma_get_cm_event(s->cm_ch, &ev) == 0) {
		enum rdma_cm_event_type type = ev->event;
		int status = ev->status;

		rdma_ack_cm_event(ev);
		isd_init_log(c, ISERD_LOG_DEBUG, "rdma_cm: %s (%d)", rdma_event_str(type), status);
		switch (type) {
		case RDMA_CM_EVENT_ADDR_RESOLVED:
			if (rdma_resolve_route(s->id, 2000) != 0)
				return connect_failed(c, -errno, "rdma_resolve_route failed");
			break;
		case RDMA_CM_EVENT_ROUTE_RESOLVED:
			rc = setup_qp(c);
			if (rc < 0)
				return connect_failed(c, rc, NULL);
			break;
		case RDMA_CM_EVENT_ESTABLISHED:
			s->connecting = false;
			s->connected = true;
			s->qp_up = true;
			isd_init_connected(c, 0);
			if (st(c)->qp_up) {
				rc = flush_pending(c);
				if (rc < 0)
					return rc;
			}
			break;
		case RDMA_CM_EVENT_ADDR_ERROR:
		case RDMA_CM_EVENT_ROUTE_ERROR:
		case RDMA_CM_EVENT_CONNECT_ERROR:
		case RDMA_CM_EVENT_UNREACHABLE:
			return connect_failed(c, -EHOSTUNREACH, rdma_event_str(type));
		case RDMA_CM_EVENT_REJECTED:
			return connect_failed(c, -ECONNREFUSED,
					      "rejected (no iSER portal there?)");
		case RDMA_CM_EVENT_DISCONNECTED:
		case RDMA_CM_EVENT_DEVICE_REMOVAL:
		case RDMA_CM_EVENT_TIMEWAIT_EXIT:
			if (s->connecting)
				return connect_failed(c, -ECONNRESET, rdma_event_str(type));
			if (s->connected) {
				s->connected = false;
				/* The target's last PDU (a login response with a failure status
				 * before it disconnects, say) may still sit in the CQ: handle it
				 * first, so that its error, not the disconnect, is what the caller
				 * sees. */
				if (s->cq != NULL && s->qp_up) {
					rc = cq_poll(c);
					if (rc < 0 && rc != -ECONNRESET)
						return rc;
				}
				isd_init_set_error(c, "%s:%u closed the iSER connection (%s)",
						   c->url.host, c->url.port, rdma_event_str(type));
				return -ECONNRESET;
			}
			break;
		default:
			break;
		}
		if (c->iser->cm_ch == NULL)
			break;
	}
	return 0;
}

/* ---- completions ---- */

static int
rx_done(struct isd_ictx *c, uint32_t i, uint32_t byte_len)
{
	struct isd_iiser *s = st(c);
	uint8_t *b = s->rx[i].buf, *bhs = b + ISD_ISER_HDR_LEN;
	struct isd_iser_hdr h;
	struct isd_pdu *p = s->rxpdu;
	uint32_t dsl, ahs;
	uint8_t op;
	int rc;

	s->rx[i].posted = false;
	if (byte_len < ISD_ISER_HEADERS_LEN || isd_iser_hdr_decode(b, byte_len, &h) < 0 ||
	    h.opcode != ISD_ISER_OP_CTRL) {
		isd_init_set_error(c, "malformed iSER receive (%u bytes, flags 0x%02x)", byte_len,
				   b[0]);
		return -EPROTO;
	}
	dsl = isd_bhs_dsl(bhs);
	ahs = (uint32_t)bhs[4] * 4;
	if (byte_len - ISD_ISER_HEADERS_LEN < ahs + dsl) {
		isd_init_set_error(c, "iSER receive of %u bytes shorter than its PDU (DSL %u)",
				   byte_len, dsl);
		return -EPROTO;
	}
	op = isd_bhs_opcode(bhs);
	if (op == ISD_OP_DATA_IN || op == ISD_OP_R2T) {
		isd_init_set_error(c, "target sent a %s over iSER (it must use RDMA)",
				   isd_opcode_name(op));
		return -EPROTO;
	}
	memcpy(p->bhs, bhs, ISD_BHS_LEN);
	p->ahs = ahs ? bhs + ISD_BHS_LEN : NULL;
	p->ahs_len = ahs;
	p->data = bhs + ISD_BHS_LEN + ahs;
	p->data_len = dsl;
	if (op == ISD_OP_SCSI_RSP && c->state != ISD_ICTX_LOGIN) {
		struct isd_itask *it = isd_init_task_by_itt(c, isd_bhs_itt(bhs));

		if (it != NULL && it->state == ISD_IT_SENT)
			slot_complete(c, it);
	}
	rc = isd_init_rx_pdu(c, p);
	p->data = NULL;
	p->data_len = 0;
	p->ahs = NULL;
	if (rc < 0)
		return rc;
	s = st(c);
	if (s->id == NULL || s->rx == NULL)
		return 0; /* the connection went away (logout) */
	if (s->rx_all)
		return post_rx(s, i);
	return 0;
}

static int
cq_poll(struct isd_ictx *c)
{
	struct ibv_wc wc[32];
	int n, i, rc, rounds = 0;

	for (;;) {
		struct isd_iiser *s = st(c);

		if (s->cq == NULL)
			return 0;
		n = ibv_poll_cq(s->cq, 32, wc);
		if (n < 0) {
			isd_init_set_error(c, "ibv_poll_cq failed");
			return -EIO;
		}
		if (n == 0) {
			if (rounds++ > 0)
				return 0;
			if (ibv_req_notify_cq(s->cq, 0) != 0)
				return -EIO;
			continue; /* catch what arrived before the re-arm */
		}
		rounds = 0;
		for (i = 0; i < n; i++) {
			uint32_t idx = (uint32_t)(wc[i].wr_id >> 2);

			s = st(c);
			if (s->cq == NULL)
				return 0;
			/* what is left of the batch if this one ends the connection */
			s->batch_left = (uint32_t)(n - i - 1);
			if (s->outstanding > 0)
				s->outstanding--;
			if (wc[i].status != IBV_WC_SUCCESS) {
				if (wc[i].status == IBV_WC_WR_FLUSH_ERR) {
					isd_init_set_error(c, "iSER connection to %s:%u flushed",
							   c->url.host, c->url.port);
					return -ECONNRESET;
				}
				isd_init_set_error(c, "iSER %s completion error: %s (vendor 0x%x)",
						   (wc[i].wr_id & 3) == WR_RX ? "receive" : "send",
						   ibv_wc_status_str(wc[i].status),
						   wc[i].vendor_err);
				return -EIO;
			}
			if ((wc[i].wr_id & 3) == WR_TX) {
				if (idx < s->ntx)
					tx_put(s, &s->txd[idx]);
				continue;
			}
			if (idx >= s->nrx)
				return -EIO;
			rc = rx_done(c, idx, wc[i].byte_len);
			if (rc < 0)
				return rc;
		}
		s = st(c);
		if (s->qp_up && !TAILQ_EMPTY(&s->pending)) {
			rc = flush_pending(c);
			if (rc < 0)
				return rc;
		}
	}
}

static int
iser_service(struct isd_ictx *c, int revents)
{
	struct isd_iiser *s = st(c);
	int rc;

	(void)revents;
	if (s == NULL || s->epfd < 0)
		return 0;
	rc = cm_events(c);
	if (rc < 0)
		return rc;
	s = st(c);
	if (s->connecting && isd_init_now_ns() > s->connect_deadline_ns)
		return connect_failed(c, -ETIMEDOUT, "timed out");
	if (s->comp != NULL) {
		struct ibv_cq *ev_cq;
		void *ev_ctx;

		while (ibv_get_cq_event(s->comp, &ev_cq, &ev_ctx) == 0)
			ibv_ack_cq_events(ev_cq, 1);
	}
	if (s->cq != NULL && s->qp_up)
		return cq_poll(c);
	return 0;
}

static void
iser_enable(struct isd_ictx *c)
{
	(void)c;
}

static int
iser_get_fd(const struct isd_ictx *c)
{
	return c->iser != NULL ? c->iser->epfd : -1;
}

static int
iser_which_events(const struct isd_ictx *c)
{
	return iser_get_fd(c) >= 0 ? POLLIN : 0;
}

void
isd_init_iser_free(struct isd_ictx *c)
{
	struct isd_iiser *s = c->iser;

	if (s == NULL)
		return;
	iser_disconnect(c);
	if (s->slots != NULL) {
		uint32_t i;

		for (i = 0; i < s->nslots; i++)
			slot_release(c, &s->slots[i]);
	}
	free(s->slots);
	isd_pdu_free(s->rxpdu);
	isd_regcache_flush(&s->rcache);
	if (s->pd != NULL)
		ibv_dealloc_pd(s->pd);
	free(s);
	c->iser = NULL;
}

const struct isd_init_xport_ops isd_init_iser_ops = {
    .name = "iser",
    .connect = iser_connect,
    .disconnect = iser_disconnect,
    .queue = iser_queue,
    .detach_task = iser_detach_task,
    .enable = iser_enable,
    .get_fd = iser_get_fd,
    .which_events = iser_which_events,
    .service = iser_service,
};
