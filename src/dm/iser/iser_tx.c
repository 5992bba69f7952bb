/*
 * The send side: control PDUs as Sends from registered descriptors, Put_Data
 * as RDMA Writes chained with the SCSI Response Send (only the Send
 * signalled), Get_Data as RDMA Reads bounded by the ORD, the FIFO of work
 * waiting for descriptors or credits, and the per-task hooks.
 *
 * Posting: a run of the pending queue (isd_iser_tx_kick) gathers the work
 * requests of every job it serves into the connection's batch, in queue
 * order, and hands them to the provider with one ibv_post_send at its end;
 * a CQ poll holds its kicks back until it has taken every completion. So the
 * responses to all the commands one poll received leave together: one
 * doorbell (one system call on the software providers) instead of one per
 * command, and the initiator takes them in one completion event instead of
 * one each (docs/performance.md: over soft-RoCE, 4 KiB reads went from 1.1
 * interrupts and 1.9 CQ polls per I/O on the initiator to 0.2 and 0.6).
 *
 * Ownership: a job belongs to the connection, not to the task, so that a
 * task abandoned by task_cleanup while its WRs are in flight cannot leave a
 * dangling wr_id; the job is freed when its last WR completes.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "dm/iser/iser_int.h"
#include "rdma/rdma.h"
#include "util/iov.h"
#include "util/log.h"
#include "util/mem.h"

#define ISD_ISER_POST_MAX_WRS 64        /* RDMA WRs of one job in one kick */

/* ---- the batch: work requests gathered by one kick, posted at its end ---- */

struct isd_iser_batch {
	uint32_t nwr, nsge;
	struct ibv_send_wr wr[ISD_ISER_BATCH_WRS];
	struct ibv_sge sge[ISD_ISER_BATCH_SGES];
};

/*
 * How many more WRs of up to `sge_per_wr` SGEs each fit in the batch after
 * `extra` Sends of two SGEs (-1: not even those). An empty batch always takes
 * ISD_ISER_POST_MAX_WRS RDMA WRs and a Send, so a kick always progresses.
 */
static int
batch_room(const struct isd_iser_conn *ic, uint32_t extra, uint32_t sge_per_wr)
{
	const struct isd_iser_batch *b = ic->batch;
	uint32_t wrs, sges;

	if (b->nwr + extra > ISD_ISER_BATCH_WRS || b->nsge + 2 * extra > ISD_ISER_BATCH_SGES)
		return -1;
	wrs = ISD_ISER_BATCH_WRS - b->nwr - extra;
	sges = (ISD_ISER_BATCH_SGES - b->nsge - 2 * extra) / (sge_per_wr > 0 ? sge_per_wr : 1);
	return (int)(wrs < sges ? wrs : sges);
}

/* Appends a chain of WRs (room checked by the caller with batch_room) and
 * their SGEs to the batch; nothing reaches the provider before batch_post. */
static void
batch_add(struct isd_iser_conn *ic, const struct ibv_send_wr *chain)
{
	struct isd_iser_batch *b = ic->batch;

	for (const struct ibv_send_wr *w = chain; w != NULL; w = w->next) {
		struct ibv_send_wr *d = &b->wr[b->nwr];

		*d = *w;
		d->sg_list = &b->sge[b->nsge];
		if (w->num_sge > 0)
			memcpy(d->sg_list, w->sg_list, sizeof(*w->sg_list) * (size_t)w->num_sge);
		b->nsge += (uint32_t)w->num_sge;
		d->next = NULL;
		if (b->nwr > 0)
			b->wr[b->nwr - 1].next = d;
		b->nwr++;
	}
}

/*
 * Posts the batch with one ibv_post_send. If the provider refuses a WR, that
 * one and the rest never reach the QP: the connection fails, and they
 * complete here as flushed, as the QP would have completed them, so their
 * descriptors, credits and jobs come back the usual way. Returns 0 or -errno
 * (the connection has failed).
 */
static int
batch_post(struct isd_iser_conn *ic)
{
	struct isd_iser_batch *b = ic->batch;
	struct ibv_send_wr *bad = NULL;
	uint32_t n = b->nwr;
	int rc;

	if (n == 0)
		return 0;
	b->nwr = b->nsge = 0;
	rc = ibv_post_send(ic->qp, b->wr, &bad);
	isd_iser_stat_add(&isd_iser_g_posts, 1);
	isd_iser_stat_add(&isd_iser_g_posted_wrs, (int64_t)n);
	if (rc == 0)
		return 0;
	isd_log_err("iser %s: posting %u work requests failed: %s", ic->peer, n, strerror(rc));
	if (bad == NULL || bad < b->wr || bad >= b->wr + n)
		bad = b->wr;    /* a provider that did not say: none went in */
	isd_iser_conn_unposted(ic, bad, -rc);
	return -rc;
}


static size_t
round64(size_t n)
{
	return (n + 63) & ~(size_t)63;
}

int
isd_iser_tx_setup(struct isd_iser_conn *ic)
{
	size_t login_sz = round64(ISD_ISER_HEADERS_LEN + ISD_ISER_AHS_ROOM + ISD_ISER_LOGIN_DATA + 4);
	size_t small_sz = round64(ISD_ISER_HEADERS_LEN + ISD_ISER_AHS_ROOM + ISD_ISER_TX_SMALL_DATA);
	size_t big_sz = round64(ISD_ISER_HEADERS_LEN + ISD_ISER_AHS_ROOM + ISD_ISER_LOGIN_DATA);
	uint32_t ntx = ISD_ISER_TX_SMALL + ISD_ISER_TX_BIG;
	char err[256];
	uint8_t *p;
	void *mem;
	int rc;

	ic->ctl_len = login_sz + ISD_ISER_TX_SMALL * small_sz + ISD_ISER_TX_BIG * big_sz;
	if (posix_memalign(&mem, 4096, ic->ctl_len) != 0)
		return -ENOMEM;
	ic->ctl_mem = mem;
	ic->tx_all = calloc(ntx, sizeof(*ic->tx_all));
	ic->login_rx = calloc(1, sizeof(*ic->login_rx));
	if (ic->tx_all == NULL || ic->login_rx == NULL)
		return -ENOMEM;
	rc = isd_rdma_mr_reg(ic->dev, mem, ic->ctl_len, IBV_ACCESS_LOCAL_WRITE, &ic->ctl_mr, err,
			     sizeof(err));
	if (rc < 0) {
		isd_log_err("iser %s: %s", ic->peer, err);
		return rc;
	}
	isd_iser_stat_add(&isd_iser_g_conn_mrs, 1);
	p = mem;
	ic->login_rx->tag.type = ISD_ISER_TAG_RX;
	ic->login_rx->ic = ic;
	ic->login_rx->login = true;
	ic->login_rx->buf = p;
	ic->login_rx->size = (uint32_t)login_sz;
	ic->login_rx->lkey = ic->ctl_mr->lkey;
	p += login_sz;
	for (uint32_t i = 0; i < ntx; i++) {
		struct isd_iser_tx *tx = &ic->tx_all[i];
		bool big = i >= ISD_ISER_TX_SMALL;

		tx->tag.type = ISD_ISER_TAG_TX;
		tx->buf = p;
		tx->big = big;
		tx->cap = big ? ISD_ISER_LOGIN_DATA : ISD_ISER_TX_SMALL_DATA;
		tx->lkey = ic->ctl_mr->lkey;
		p += big ? big_sz : small_sz;
		TAILQ_INSERT_TAIL(big ? &ic->tx_free_big : &ic->tx_free_small, tx, link);
	}
	return 0;
}

/* ---- jobs ---- */

static struct isd_iser_job *
job_alloc(struct isd_iser_conn *ic, enum isd_iser_job_kind kind)
{
	struct isd_iser_job *job = isd_mem_zalloc(sizeof(*job));

	if (job == NULL)
		return NULL;
	job->tag.type = ISD_ISER_TAG_JOB;
	job->kind = kind;
	job->ic = ic;
	job->ihdr.opcode = ISD_ISER_OP_CTRL;
	ic->jobs++;
	isd_iser_stat_add(&isd_iser_g_jobs, 1);
	return job;
}

void
isd_iser_job_free(struct isd_iser_conn *ic, struct isd_iser_job *job)
{
	struct isd_tmf_wait *fence;

	/* first: the STags die before the memory behind them is freed or reused */
	for (int i = 0; i < job->sink_mrs; i++)
		isd_rdma_remote_mr_dereg(job->sink_mr[i]);
	job->sink_mrs = 0;
	if (job->pdu != NULL)
		isd_pdu_free(job->pdu);
	if (job->bounce != NULL)
		isd_rdma_buf_free(job->bounce, job->bounce_len);
	if (job->deferred_buf != NULL)
		isd_rdma_buf_free(job->deferred_buf, job->deferred_len);
	if (job->areg != NULL)
		isd_iser_areg_unref(ic, job->areg);
	if (job->kind == ISD_ISER_JOB_SEND && job->task != NULL) {
		struct isd_iser_task *tt = isd_dmt_priv(job->task);

		if (tt->cmd == job)
			tt->cmd = NULL;
	}
	fence = job->fence;
	ic->jobs--;
	isd_iser_stat_add(&isd_iser_g_jobs, -1);
	isd_mem_free(job);
	/* last: its WRs are complete (or the QP is gone), nothing of it moves now;
	 * the answer may be sent from here */
	if (fence != NULL)
		isd_dm_fence_release(ic->conn, fence);
}

static void
job_enqueue(struct isd_iser_conn *ic, struct isd_iser_job *job)
{
	job->queued = true;
	TAILQ_INSERT_TAIL(&ic->pending, job, link);
}

static void
job_dequeue(struct isd_iser_conn *ic, struct isd_iser_job *job)
{
	if (job->queued) {
		TAILQ_REMOVE(&ic->pending, job, link);
		job->queued = false;
	}
	if (job->in_txq) {
		job->in_txq = false;
		if (isd_iser_txq_del(&ic->txq, job->txq_bytes))
			isd_iser_rx_resume(ic);
	}
}

/*
 * A call down queued a job: it is posted with whatever else this reactor turn
 * queues on the connection. Inside a CQ poll the poll's own kick at its end
 * does it; elsewhere (a store's completion, a timer) the kick runs at the end
 * of the turn. So the responses to commands finished together leave in one
 * post, whatever finished them.
 */
static void
kick_soon(struct isd_iser_conn *ic)
{
	if (ic->polling)
		return;
	isd_reactor_at_turn_end(ic->r, &ic->kick_timer);
}

/* The job's last WR completed (or it never ran): tell the core, free the job. */
static void
job_finish(struct isd_iser_conn *ic, struct isd_iser_job *job, int status)
{
	struct isd_dm_task *task = job->task;
	struct isd_iser_task *tt;

	job_dequeue(ic, job);
	if (task == NULL) {
		/* abandoned by task_cleanup */
		TAILQ_REMOVE(&ic->abandoned, job, link);
		isd_iser_job_free(ic, job);
		return;
	}
	tt = isd_dmt_priv(task);
	tt->job = NULL;
	if (status == 0 && job->kind == ISD_ISER_JOB_GET && job->bounce != NULL) {
		isd_iov_copy_in(job->orig_iov, job->orig_iovcnt, job->orig_offset, job->bounce,
				job->bounce_len);
		isd_dm_count_copy(ic->conn, job->bounce_len);
		isd_iser_stat_add(&isd_iser_g_bounced, (int64_t)(job->bounce_len));
	}
	isd_iser_job_free(ic, job);
	isd_dm_data_completion_notify(ic->conn, task, status < 0 ? -EIO : 0);
}

void
isd_iser_jobs_fail_pending(struct isd_iser_conn *ic)
{
	struct isd_iser_job *job;

	while ((job = TAILQ_FIRST(&ic->pending)) != NULL) {
		job_dequeue(ic, job);
		if (job->kind == ISD_ISER_JOB_SEND) {
			isd_iser_job_free(ic, job);
			continue;
		}
		job_finish(ic, job, -ECONNABORTED);
	}
}

/* ---- building Sends ---- */

static struct isd_iser_tx *
tx_get(struct isd_iser_conn *ic, bool big)
{
	struct isd_iser_tx *tx;

	tx = TAILQ_FIRST(big ? &ic->tx_free_big : &ic->tx_free_small);
	if (tx == NULL && !big)
		tx = TAILQ_FIRST(&ic->tx_free_big);
	if (tx != NULL)
		TAILQ_REMOVE(tx->big ? &ic->tx_free_big : &ic->tx_free_small, tx, link);
	return tx;
}

static void
tx_put(struct isd_iser_conn *ic, struct isd_iser_tx *tx)
{
	if (tx->areg != NULL)
		isd_iser_areg_unref(ic, tx->areg);
	tx->areg = NULL;
	tx->job = NULL;
	tx->unexpected = false;
	TAILQ_INSERT_HEAD(tx->big ? &ic->tx_free_big : &ic->tx_free_small, tx, link);
}

/*
 * Data bytes pdu will carry within `limit` (the connection's limit when it was
 * queued: the final Login Response, queued before notice_key_values, still
 * goes into the initiator's 8 KiB login buffer), or -EMSGSIZE.
 */
static int
pdu_fit(struct isd_iser_conn *ic, struct isd_pdu *pdu, uint32_t limit)
{
	uint32_t len = pdu->data_len;
	int n;

	if (pdu->data_iov != NULL)
		len = (uint32_t)isd_iov_len(pdu->data_iov, pdu->data_iovcnt);
	n = isd_iser_fit_data(pdu->bhs, pdu->data_iov ? NULL : pdu->data, len, limit);
	if (n == -EMSGSIZE && len <= ISD_ISER_LOGIN_DATA) {
		/* not shortenable (Text, NOP-In echo): the core should have kept it small */
		isd_log_warn("iser %s: %s with %u data bytes exceeds what the initiator "
			     "receives in full feature phase (%u); sending it anyway", ic->peer,
			     isd_opcode_name(isd_bhs_opcode(pdu->bhs)), len, limit);
		n = (int)len;
	}
	if (n >= 0 && pdu->ahs_len > ISD_ISER_AHS_ROOM)
		n = -EMSGSIZE;
	return n;
}

/* Copies iSER header (the job's) + BHS + AHS + data into tx and describes it in
 * wr/sge. A job with `inv` set makes it a Send with Invalidate of the job's
 * STag. A job with a registration (active: a SCSI Command) sends its data_len
 * bytes of immediate data from there, as a second SGE (sge has room for two). */
static void
tx_build(struct isd_iser_tx *tx, struct isd_pdu *pdu, uint32_t data_len,
	 const struct isd_iser_job *job, struct ibv_send_wr *wr, struct ibv_sge *sge)
{
	static const struct isd_iser_hdr plain = { .opcode = ISD_ISER_OP_CTRL };
	bool zcopy = job != NULL && job->areg != NULL && data_len > 0;
	uint8_t *p = tx->buf;

	isd_iser_hdr_encode(job != NULL ? &job->ihdr : &plain, p);
	p += ISD_ISER_HDR_LEN;
	memcpy(p, pdu->bhs, ISD_BHS_LEN);
	p += ISD_BHS_LEN;
	if (pdu->ahs_len > 0) {
		memcpy(p, pdu->ahs, pdu->ahs_len);
		p += pdu->ahs_len;
	}
	if (data_len > 0 && !zcopy) {
		if (pdu->data_iov != NULL)
			isd_iov_copy_out(pdu->data_iov, pdu->data_iovcnt, 0, p, data_len);
		else
			memcpy(p, pdu->data, data_len);
		p += data_len;
	}
	sge->addr = (uintptr_t)tx->buf;
	sge->length = (uint32_t)(p - tx->buf);
	sge->lkey = tx->lkey;
	memset(wr, 0, sizeof(*wr));
	wr->wr_id = (uintptr_t)&tx->tag;
	wr->sg_list = sge;
	wr->num_sge = 1;
	if (zcopy) {
		sge[1].addr = job->areg->base;
		sge[1].length = data_len;
		sge[1].lkey = job->areg->lkey;
		wr->num_sge = 2;
	}
	wr->opcode = IBV_WR_SEND;
	wr->send_flags = IBV_SEND_SIGNALED;
	if (job != NULL && job->inv) {
		wr->opcode = IBV_WR_SEND_WITH_INV;
		wr->invalidate_rkey = job->inv_rkey;
		/* rdma-core's siw provider takes the key to invalidate from wr.rdma.rkey
		 * (push_send_wqe copies only that into the SQE); the field is unused for a
		 * Send by every other provider, so it carries the key too */
		wr->wr.rdma.rkey = job->inv_rkey;
	}
}

/* Returns 1 posted, 0 blocked (no descriptor or credit), -errno. */
static int
post_send_job(struct isd_iser_conn *ic, struct isd_iser_job *job)
{
	struct isd_pdu *pdu = job->pdu;
	struct ibv_send_wr wr;
	struct ibv_sge sge[2];
	struct isd_iser_tx *tx;
	bool unexp = isd_iser_pdu_is_unexpected(pdu->bhs);
	int n;

	/* a SCSI Command's immediate data goes from its registration: only the
	 * headers take room in the descriptor */
	n = job->areg != NULL ? 0 : pdu_fit(ic, pdu, job->tx_limit);
	if (n < 0) {
		isd_log_err("iser %s: %s too large for a Send (%u data, %u AHS bytes)", ic->peer,
			    isd_opcode_name(isd_bhs_opcode(pdu->bhs)), pdu->data_len, pdu->ahs_len);
		return n;
	}
	if (unexp && ic->cr.unexpected >= ISD_ISER_UNEXPECTED_MAX)
		return 0;
	if (batch_room(ic, 1, 0) < 0)
		return 0;
	tx = tx_get(ic, (uint32_t)n > ISD_ISER_TX_SMALL_DATA);
	if (tx == NULL)
		return 0;
	if (!isd_iser_credits_take_sq(&ic->cr, 1)) {
		tx_put(ic, tx);
		return 0;
	}
	tx_build(tx, pdu, job->areg != NULL ? pdu->data_len : (uint32_t)n, job, &wr, sge);
	batch_add(ic, &wr);
	/* the Send reads the registration until it completes */
	tx->areg = job->areg;
	job->areg = NULL;
	tx->wrs = 1;
	tx->unexpected = unexp;
	if (unexp)
		ic->cr.unexpected++;
	if (job->inv)
		isd_iser_stat_add(&isd_iser_g_remote_inv, 1);
	job_dequeue(ic, job);
	isd_iser_job_free(ic, job);     /* frees the PDU: its bytes are in tx */
	return 1;
}

/* The key of the job's own sink registration covering [addr, addr+len), if any. */
static bool
sink_key(const struct isd_iser_job *job, uint64_t addr, uint32_t len, uint32_t *lkey)
{
	for (int i = 0; i < job->sink_mrs; i++) {
		uint64_t base = (uintptr_t)job->sink_mr[i]->addr;

		if (addr >= base && len <= job->sink_mr[i]->length &&
		    addr - base <= job->sink_mr[i]->length - len) {
			*lkey = job->sink_mr[i]->lkey;
			return true;
		}
	}
	return false;
}

/* Fills the SGEs of one planned WR with lkeys: the job's per-command sink
 * registration where it has one (its key is the sink STag an iWARP Read
 * Request carries), else the registry's local key. -EFAULT if a range is not
 * registered. */
static int
fill_sges(struct isd_iser_conn *ic, const struct isd_iser_job *job,
	  const struct isd_iser_wr_plan *pl, struct ibv_sge *sge)
{
	for (int i = 0; i < pl->nsge; i++) {
		uint32_t lkey;

		if (job->sink_mrs > 0) {
			if (!sink_key(job, pl->sge[i].addr, pl->sge[i].length, &lkey))
				return -EFAULT;
		} else if (isd_rdma_mem_find(ic->dev, (const void *)(uintptr_t)pl->sge[i].addr,
					     pl->sge[i].length, &lkey, NULL) < 0) {
			return -EFAULT;
		}
		sge[i].addr = pl->sge[i].addr;
		sge[i].length = pl->sge[i].length;
		sge[i].lkey = lkey;
	}
	return 0;
}

/* Put_Data: one chunk of RDMA Writes, and with the last chunk the response
 * Send. Returns 1 fully posted, 0 waiting, -errno. */
static int
post_put(struct isd_iser_conn *ic, struct isd_iser_job *job)
{
	struct isd_iser_wr_plan plans[ISD_ISER_POST_MAX_WRS];
	struct ibv_send_wr wrs[ISD_ISER_POST_MAX_WRS + 1];
	struct ibv_sge sges[ISD_ISER_POST_MAX_WRS * ISD_ISER_MAX_SGE + 2];
	struct isd_iser_tx *tx = NULL;
	uint32_t free_sq = ic->cr.sq_size - ic->cr.sq_used, covered = 0, want;
	bool need_send = job->pdu != NULL, final;
	int nw = 0, max_wrs, n = 0, rc, s = 0, room;

	if (job->inflight > 0)
		return 0;               /* a chunk is on the wire */
	room = batch_room(ic, need_send ? 1 : 0, ic->qs.wr_sge);
	if (room < 0)
		return 0;               /* the batch is full: after its post */
	if (need_send) {
		n = pdu_fit(ic, job->pdu, job->tx_limit);
		if (n < 0)
			return n;
		tx = tx_get(ic, (uint32_t)n > ISD_ISER_TX_SMALL_DATA);
		if (tx == NULL)
			return 0;
	}
	max_wrs = (int)free_sq - (need_send ? 1 : 0);
	if (max_wrs > ISD_ISER_POST_MAX_WRS)
		max_wrs = ISD_ISER_POST_MAX_WRS;
	if (max_wrs > room)
		max_wrs = room;
	want = job->end - job->next;
	if (want > 0) {
		if (max_wrs < 1)
			goto wait;
		nw = isd_iser_plan_wrs(job->iov, job->iovcnt, job->next, want, ic->qs.wr_sge,
				       ISD_ISER_WR_BYTES, plans, max_wrs, &covered);
		if (nw <= 0) {
			if (tx != NULL)
				tx_put(ic, tx);
			return nw < 0 ? nw : -EFAULT;   /* iov shorter than the transfer */
		}
	} else if (need_send && free_sq < 1) {
		goto wait;
	}
	final = job->next + covered >= job->end;
	if (nw == 0 && tx == NULL)
		return -EINVAL;         /* nothing to write and no response: cannot happen */
	if (!final && tx != NULL) {
		tx_put(ic, tx);
		tx = NULL;
	}
	for (int i = 0; i < nw; i++) {
		struct ibv_send_wr *w = &wrs[i];

		rc = fill_sges(ic, job, &plans[i], &sges[s]);
		if (rc < 0) {
			if (tx != NULL)
				tx_put(ic, tx);
			return rc;
		}
		memset(w, 0, sizeof(*w));
		w->sg_list = &sges[s];
		w->num_sge = plans[i].nsge;
		w->opcode = IBV_WR_RDMA_WRITE;
		w->wr.rdma.rkey = job->rkey;
		w->wr.rdma.remote_addr = job->remote_va + (job->next - job->base_off) +
					 plans[i].remote_off;
		w->next = &wrs[i + 1];
		s += plans[i].nsge;
	}
	if (final && tx != NULL) {
		tx_build(tx, job->pdu, (uint32_t)n, job, &wrs[nw], &sges[s]);
		wrs[nw].next = NULL;
		tx->job = job;
		tx->wrs = (uint32_t)nw + 1;
	} else {
		/* an intermediate chunk (or writes with no response): its last
		 * write is signalled so the SQ slots come back */
		wrs[nw - 1].next = NULL;
		wrs[nw - 1].send_flags = IBV_SEND_SIGNALED;
		wrs[nw - 1].wr_id = (uintptr_t)&job->tag;
		job->chunk_wrs = (uint32_t)nw;
	}
	if (!isd_iser_credits_take_sq(&ic->cr, (uint32_t)nw + (tx != NULL ? 1 : 0)))
		goto wait;
	batch_add(ic, wrs);
	job->inflight++;
	job->next += covered;
	if (final) {
		if (tx != NULL) {
			isd_pdu_free(job->pdu);
			job->pdu = NULL;
			job->rsp_posted = true;
			if (job->inv)
				isd_iser_stat_add(&isd_iser_g_remote_inv, 1);
		}
		job_dequeue(ic, job);
		return 1;
	}
	return 0;

wait:
	if (tx != NULL)
		tx_put(ic, tx);
	return 0;
}

/* Get_Data: RDMA Reads, at most ORD in flight. Returns 1 all posted, 0 waiting,
 * -errno. */
static int
post_get(struct isd_iser_conn *ic, struct isd_iser_job *job)
{
	struct isd_iser_wr_plan plan;
	struct ibv_send_wr wr;
	struct ibv_sge sge[ISD_ISER_MAX_SGE];
	uint32_t covered;
	int nw, rc, slot;

	while (job->next < job->end) {
		if (batch_room(ic, 0, ic->qs.rd_sge) < 1)
			return 0;
		slot = -1;
		for (int i = 0; i < ISD_ISER_READS_MAX; i++) {
			if (ic->reads[i].job == NULL) {
				slot = i;
				break;
			}
		}
		if (slot < 0 || !isd_iser_credits_take_read(&ic->cr))
			return 0;
		nw = isd_iser_plan_wrs(job->iov, job->iovcnt, job->next, job->end - job->next,
				       ic->qs.rd_sge, ISD_ISER_WR_BYTES, &plan, 1, &covered);
		if (nw <= 0) {
			isd_iser_credits_put_read(&ic->cr);
			return nw < 0 ? nw : -EFAULT;
		}
		rc = fill_sges(ic, job, &plan, sge);
		if (rc < 0) {
			isd_iser_credits_put_read(&ic->cr);
			return rc;
		}
		memset(&wr, 0, sizeof(wr));
		ic->reads[slot].tag.type = ISD_ISER_TAG_READ;
		ic->reads[slot].job = job;
		ic->reads[slot].bytes = covered;
		wr.wr_id = (uintptr_t)&ic->reads[slot].tag;
		wr.sg_list = sge;
		wr.num_sge = plan.nsge;
		wr.opcode = IBV_WR_RDMA_READ;
		wr.send_flags = IBV_SEND_SIGNALED;
		wr.wr.rdma.rkey = job->rkey;
		wr.wr.rdma.remote_addr = job->remote_va + (job->next - job->base_off);
		batch_add(ic, &wr);
		job->inflight++;
		job->next += covered;
	}
	job_dequeue(ic, job);
	return 1;
}

/* Active: unsolicited Data-Out PDUs as Sends, each its headers from a descriptor
 * and its data straight from the command's registration, at most max_pdu bytes.
 * Returns 1 all posted, 0 waiting for a descriptor or a credit, -errno. */
static int
post_out(struct isd_iser_conn *ic, struct isd_iser_job *job)
{
	struct isd_dm_task *t = job->task;
	struct ibv_send_wr wr;
	struct ibv_sge sge[2];
	struct isd_iser_tx *tx;

	while (job->next < job->end) {
		uint32_t len = job->end - job->next;
		struct isd_iser_hdr h = { .opcode = ISD_ISER_OP_CTRL };

		if (len > job->max_pdu)
			len = job->max_pdu;
		if (batch_room(ic, 1, 0) < 0)
			return 0;
		tx = tx_get(ic, false);
		if (tx == NULL)
			return 0;
		if (!isd_iser_credits_take_sq(&ic->cr, 1)) {
			tx_put(ic, tx);
			return 0;
		}
		isd_iser_hdr_encode(&h, tx->buf);
		isd_bhs_dataout(tx->buf + ISD_ISER_HDR_LEN, isd_dmt_lun(t), isd_dmt_itt(t),
				job->ttt, job->datasn, job->next, len,
				job->next + len == job->end);
		sge[0].addr = (uintptr_t)tx->buf;
		sge[0].length = ISD_ISER_HEADERS_LEN;
		sge[0].lkey = tx->lkey;
		sge[1].addr = job->areg->base + job->next;
		sge[1].length = len;
		sge[1].lkey = job->areg->lkey;
		memset(&wr, 0, sizeof(wr));
		wr.wr_id = (uintptr_t)&tx->tag;
		wr.sg_list = sge;
		wr.num_sge = 2;
		wr.opcode = IBV_WR_SEND;
		wr.send_flags = IBV_SEND_SIGNALED;
		batch_add(ic, &wr);
		tx->wrs = 1;
		tx->job = job;
		job->inflight++;
		job->datasn++;
		job->next += len;
	}
	job_dequeue(ic, job);
	return 1;
}

void
isd_iser_tx_kick(struct isd_iser_conn *ic)
{
	struct isd_iser_job *job, *next;
	bool stopped;
	uint32_t posted;
	int rc;

	if (ic->state != ISD_ISER_ESTABLISHED || ic->polling)
		return;         /* a CQ poll kicks once it has taken every completion */
	if (ic->batch == NULL) {
		ic->batch = calloc(1, sizeof(*ic->batch));
		if (ic->batch == NULL) {
			isd_iser_conn_fail(ic, -ENOMEM);
			return;
		}
	}
again:
	stopped = false;
	for (job = TAILQ_FIRST(&ic->pending); job != NULL; job = next) {
		next = TAILQ_NEXT(job, link);
		rc = 0;
		switch (job->kind) {
		case ISD_ISER_JOB_SEND:
			rc = post_send_job(ic, job);
			break;
		case ISD_ISER_JOB_PUT:
			rc = post_put(ic, job);
			break;
		case ISD_ISER_JOB_GET:
			rc = post_get(ic, job);
			if (rc == 0) {
				stopped = true;
				continue;       /* Reads wait for ORD; Sends may pass */
			}
			break;
		case ISD_ISER_JOB_OUT:
			rc = post_out(ic, job);
			break;
		}
		if (rc < 0) {
			isd_log_err("iser %s: posting work requests failed: %s", ic->peer,
				    strerror(-rc));
			/* what earlier jobs put in the batch is accounted for: it goes
			 * in ahead of the failure, and is flushed with the rest */
			if (batch_post(ic) == 0)
				isd_iser_conn_fail(ic, rc);
			return;
		}
		if (rc == 0) {
			stopped = true;
			break;          /* keep the order of Sends */
		}
	}
	posted = ic->batch->nwr;
	if (batch_post(ic) < 0)
		return;
	/* the queue stopped at a job that found no descriptor, no credit or no
	 * room left in the batch: once more with the batch empty (a pass that
	 * posts nothing ends it) */
	if (stopped && posted > 0 && ic->state == ISD_ISER_ESTABLISHED)
		goto again;
	if (ic->closing && ic->cr.sq_used == 0 && TAILQ_EMPTY(&ic->pending))
		isd_iser_conn_fail(ic, ic->term_reason);
}

/* ---- completions ---- */

void
isd_iser_tx_complete(struct isd_iser_conn *ic, struct isd_iser_tx *tx, int status)
{
	struct isd_iser_job *job = tx->job;

	isd_iser_credits_put_sq(&ic->cr, tx->wrs);
	if (tx->unexpected && ic->cr.unexpected > 0)
		ic->cr.unexpected--;
	tx_put(ic, tx);
	if (job != NULL) {
		bool rest;

		job->inflight--;
		if (status < 0 && job->status == 0)
			job->status = status;
		/* done once nothing is in flight and nothing is left to post (a
		 * Data-Out sequence waiting for descriptors is still queued) */
		rest = job->queued || job->next < job->end;
		if (job->inflight == 0 && (job->task == NULL || job->status < 0 || !rest))
			job_finish(ic, job, job->status);
	}
}

void
isd_iser_job_wr_complete(struct isd_iser_conn *ic, struct isd_iser_job *job, int status)
{
	isd_iser_credits_put_sq(&ic->cr, job->chunk_wrs);
	job->chunk_wrs = 0;
	job->inflight--;
	if (status < 0 && job->status == 0)
		job->status = status;
	if (job->inflight > 0)
		return;
	if (job->task == NULL) {
		job_finish(ic, job, job->status);       /* abandoned: just free */
		return;
	}
	/* done when everything is written and no response rides along */
	if (job->next >= job->end && job->pdu == NULL && !job->queued)
		job_finish(ic, job, job->status);
	else if (job->status < 0)
		job_finish(ic, job, job->status);
}

void
isd_iser_read_complete(struct isd_iser_conn *ic, struct isd_iser_read *rd, int status)
{
	struct isd_iser_job *job = rd->job;

	rd->job = NULL;
	isd_iser_credits_put_read(&ic->cr);
	if (job == NULL)
		return;
	job->inflight--;
	if (status < 0 && job->status == 0)
		job->status = status;
	if (job->inflight > 0)
		return;
	if (job->task == NULL || job->status < 0 || (job->next >= job->end && !job->queued))
		job_finish(ic, job, job->status);
}

/* ---- the ops ---- */

static int
queue_send(struct isd_dm_conn *c, struct isd_pdu *pdu, const struct isd_iser_task *tt)
{
	struct isd_iser_conn *ic = isd_dmc_priv(c);
	struct isd_iser_job *job;
	enum isd_iser_txq_verdict verdict;
	uint32_t bytes;

	if (ic->state >= ISD_ISER_DRAINING || ic->closing) {
		isd_pdu_free(pdu);
		return -ENOTCONN;
	}
	if (ic->conn->active) {
		/* an initiator sends what its own core asks for, bounded by its queue
		 * depth: the bound on replies a peer provokes is the passive role's */
		job = job_alloc(ic, ISD_ISER_JOB_SEND);
		if (job == NULL) {
			isd_pdu_free(pdu);
			return -ENOMEM;
		}
		/* the datamover frames: DataSegmentLength is the data it sends, as on TCP */
		isd_bhs_set_dsl(pdu->bhs, pdu->data_len);
		job->tx_limit = ic->tx_limit;
		job->pdu = pdu;
		job_enqueue(ic, job);
		kick_soon(ic);
		return 0;
	}
	bytes = ISD_BHS_LEN + pdu->ahs_len + (pdu->data_iov != NULL
		? (uint32_t)isd_iov_len(pdu->data_iov, pdu->data_iovcnt) : pdu->data_len);
	verdict = isd_iser_txq_add(&ic->txq, bytes);
	if (verdict == ISD_ISER_TXQ_FULL) {
		/* the peer keeps provoking replies it does not take: drop it */
		if (!ic->txq_full_logged)
			isd_log_err("iser %s: %u control PDUs (%u bytes) wait to be sent (limit %u, "
				    "%u bytes); closing the connection", ic->peer, ic->txq.count,
				    ic->txq.bytes, ISD_ISER_TXQ_MAX, ISD_ISER_TXQ_MAX_BYTES);
		ic->txq_full_logged = true;
		isd_iser_stat_add(&isd_iser_g_txq_drops, 1);
		isd_pdu_free(pdu);
		isd_iser_conn_fail(ic, -ENOBUFS);
		return -ENOBUFS;
	}
	if (verdict == ISD_ISER_TXQ_HOLD) {
		isd_iser_stat_add(&isd_iser_g_txq_holds, 1);
		if (!ic->txq_hold_logged)
			isd_log_warn("iser %s: %u control PDUs (%u bytes) wait to be sent: the "
				     "initiator is not taking our Sends; its receives are held back "
				     "until they drain", ic->peer, ic->txq.count, ic->txq.bytes);
		ic->txq_hold_logged = true;
	}
	job = job_alloc(ic, ISD_ISER_JOB_SEND);
	if (job == NULL) {
		if (isd_iser_txq_del(&ic->txq, bytes))
			isd_iser_rx_resume(ic);
		isd_pdu_free(pdu);
		return -ENOMEM;
	}
	job->in_txq = true;
	job->txq_bytes = bytes;
	job->tx_limit = ic->tx_limit;
	job->pdu = pdu;
	if (tt != NULL && ic->remote_inv)
		job->inv = isd_iser_inv_stag(&tt->hdr, &job->inv_rkey);
	job_enqueue(ic, job);
	kick_soon(ic);
	return 0;
}

int
isd_iser_send_control(struct isd_dm_conn *c, struct isd_pdu *pdu)
{
	return queue_send(c, pdu, NULL);
}

/*
 * Active: the SCSI Command that starts t, its buffer registered and named in
 * the iSER header (RFC 7145 §9.3): the read STag and VA at its first byte for a
 * read, the write STag and VA at the first byte the target solicits for a
 * write with any (immediate and unsolicited data go in Sends). Its immediate
 * data goes from that registration too, as the Send's second SGE.
 */
int
isd_iser_send_command(struct isd_dm_conn *c, struct isd_dm_task *t, struct isd_pdu *pdu)
{
	struct isd_iser_conn *ic = isd_dmc_priv(c);
	struct isd_iser_task *tt = isd_dmt_priv(t);
	struct isd_iser_job *job;
	int rc;

	memset(tt, 0, sizeof(*tt));
	tt->magic = ISD_ISER_TASK_MAGIC;
	if (!c->active || ic->state != ISD_ISER_ESTABLISHED || ic->closing) {
		rc = -ENOTCONN;
		goto err;
	}
	if (pdu->ahs_len > ISD_ISER_AHS_ROOM || pdu->data_len > t->write_len ||
	    t->unsol_len > t->write_len || (t->write_len > 0 && t->read_len > 0)) {
		rc = -EINVAL;
		goto err;
	}
	if (t->write_len > 0 || t->read_len > 0) {
		rc = isd_iser_areg_get(ic, t, &tt->areg);
		if (rc < 0)
			goto err;
	}
	job = job_alloc(ic, ISD_ISER_JOB_SEND);
	if (job == NULL) {
		rc = -ENOMEM;
		goto err;
	}
	if (t->write_len > t->unsol_len) {
		job->ihdr.wsv = true;
		job->ihdr.write_stag = tt->areg->rkey;
		job->ihdr.write_va = tt->areg->base + t->unsol_len;
	} else if (t->read_len > 0) {
		job->ihdr.rsv = true;
		job->ihdr.read_stag = tt->areg->rkey;
		job->ihdr.read_va = tt->areg->base;
	}
	if (pdu->data_len > 0) {
		job->areg = tt->areg;
		isd_iser_areg_ref(job->areg);
	}
	job->task = t;
	job->pdu = pdu;
	job->tx_limit = ic->tx_limit;
	isd_bhs_set_dsl(pdu->bhs, pdu->data_len);
	tt->cmd = job;
	job_enqueue(ic, job);
	kick_soon(ic);
	return 0;
err:
	isd_pdu_free(pdu);
	return rc;
}

/* Active: the unsolicited Data-Out of t ([x->offset, +x->length) of its buffer). */
int
isd_iser_active_put_data(struct isd_iser_conn *ic, struct isd_dm_task *t, const struct isd_xfer *x)
{
	struct isd_iser_task *tt = isd_dmt_priv(t);
	const struct isd_params *p = isd_dmc_params(ic->conn);
	struct isd_iser_job *job;

	if (x->rsp != NULL)
		isd_pdu_free(x->rsp);   /* a passive-only field */
	if (ic->state != ISD_ISER_ESTABLISHED || ic->closing)
		return -ENOTCONN;
	if (tt->magic != ISD_ISER_TASK_MAGIC || tt->areg == NULL || x->length == 0 ||
	    x->offset > tt->areg->len || x->length > tt->areg->len - x->offset)
		return -EINVAL;
	if (tt->job != NULL)
		return -EBUSY;
	job = job_alloc(ic, ISD_ISER_JOB_OUT);
	if (job == NULL)
		return -ENOMEM;
	job->task = t;
	job->areg = tt->areg;
	isd_iser_areg_ref(job->areg);
	job->next = x->offset;
	job->end = x->offset + x->length;
	job->ttt = x->ttt;
	/* the target's MaxRecvDataSegmentLength, within what a Send may carry */
	job->max_pdu = p->max_xmit_dsl >= 512 && p->max_xmit_dsl <= ISD_ISER_TRDSL_MAX
		       ? p->max_xmit_dsl : ISD_ISER_LOGIN_DATA;
	tt->job = job;
	job_enqueue(ic, job);
	kick_soon(ic);
	return 0;
}

/*
 * Whether every byte of [off, off+len) of iov lies in registered memory
 * (1), not (0), or in memory the transfer may not use (-EACCES: an RDMA Read
 * into a read-only LUN).
 */
static int
iov_registered(struct isd_iser_conn *ic, const struct iovec *iov, int iovcnt, uint32_t off,
	       uint32_t len, enum isd_rdma_use use)
{
	struct isd_rdma_access acc;
	enum isd_rdma_mem_kind kind;
	struct iovec s[8];
	int n = isd_iov_slice(iov, iovcnt, off, len, s, 8);
	uint32_t lkey;

	if (n < 0)
		return 0;
	for (int i = 0; i < n; i++) {
		if (isd_rdma_mem_find(ic->dev, s[i].iov_base, s[i].iov_len, &lkey, &kind) < 0)
			return 0;
		if (isd_rdma_access_plan(ic->dev->fabric, kind, use, &acc) < 0)
			return -EACCES;
	}
	return 1;
}

/*
 * A GET's sink on a fabric whose Read Request hands the sink STag to the peer
 * (iWARP): registers exactly the bytes this command reads into, with the
 * per-command access isd_rdma_access_plan gives, one registration per iovec
 * entry. They are dropped in isd_iser_job_free, when the Reads are complete.
 */
static int
sink_register(struct isd_iser_conn *ic, struct isd_iser_job *job)
{
	struct isd_rdma_access acc;
	struct iovec s[8];
	char err[256];
	int n, rc;

	rc = isd_rdma_access_plan(ic->dev->fabric, ISD_RDMA_MEM_POOL, ISD_RDMA_USE_READ_SINK, &acc);
	if (rc < 0 || acc.per_cmd == 0)
		return rc;
	n = isd_iov_slice(job->iov, job->iovcnt, job->next, job->end - job->next, s, 8);
	if (n < 0)
		return n;
	for (int i = 0; i < n; i++) {
		rc = isd_rdma_remote_mr_reg(ic->dev, s[i].iov_base, s[i].iov_len, acc.per_cmd,
					    &job->sink_mr[job->sink_mrs], err, sizeof(err));
		if (rc < 0) {
			isd_log_err("iser %s: read sink: %s", ic->peer, err);
			return rc;
		}
		job->sink_mrs++;
	}
	return 0;
}

static struct isd_iser_task *
task_priv(struct isd_iser_conn *ic, struct isd_dm_task *t)
{
	struct isd_iser_task *tt = isd_dmt_priv(t);

	if (tt->magic != ISD_ISER_TASK_MAGIC) {
		isd_log_err("iser %s: task 0x%x has no iSER header (the core did not call "
			    "task_init)", ic->peer, isd_dmt_itt(t));
		return NULL;
	}
	return tt;
}

/* The SCSI Response that ends t: with Invalidate of its STag when negotiated. */
int
isd_iser_send_response(struct isd_dm_conn *c, struct isd_dm_task *t, struct isd_pdu *pdu)
{
	struct isd_iser_task *tt = isd_dmt_priv(t);

	return queue_send(c, pdu, tt->magic == ISD_ISER_TASK_MAGIC ? tt : NULL);
}

/* Common set-up of a PUT/GET job. */
static int
xfer_job(struct isd_iser_conn *ic, struct isd_dm_task *t, const struct isd_xfer *x,
	 enum isd_iser_job_kind kind, struct isd_iser_job **out)
{
	enum isd_rdma_use use = kind == ISD_ISER_JOB_GET ? ISD_RDMA_USE_READ_SINK
							 : ISD_RDMA_USE_WRITE_SOURCE;
	struct isd_iser_job *job;
	int reg, rc;

	if (ic->state != ISD_ISER_ESTABLISHED || ic->closing)
		return -ENOTCONN;
	if (x->iovcnt < 0 || x->iovcnt > 8 || x->length == 0)
		return -EINVAL;
	if (isd_iov_len(x->iov, x->iovcnt) < (size_t)x->offset + x->length)
		return -EINVAL;
	reg = iov_registered(ic, x->iov, x->iovcnt, x->offset, x->length, use);
	if (reg < 0) {
		isd_log_err("iser %s: ITT 0x%x: refusing to read data into read-only memory",
			    ic->peer, isd_dmt_itt(t));
		return reg;
	}
	job = job_alloc(ic, kind);
	if (job == NULL)
		return -ENOMEM;
	job->task = t;
	if (reg) {
		memcpy(job->iov, x->iov, sizeof(x->iov[0]) * (size_t)x->iovcnt);
		job->iovcnt = x->iovcnt;
		job->next = x->offset;
		job->end = x->offset + x->length;
		job->base_off = x->offset;
	} else {
		/* not registered (should not happen with buf_alloc): bounce */
		job->bounce = isd_rdma_buf_alloc(x->length);
		if (job->bounce == NULL) {
			isd_iser_job_free(ic, job);
			return -ENOMEM;
		}
		job->bounce_len = x->length;
		job->iov[0].iov_base = job->bounce;
		job->iov[0].iov_len = x->length;
		job->iovcnt = 1;
		job->next = 0;
		job->end = x->length;
		job->base_off = 0;
		job->orig_iov = x->iov;
		job->orig_iovcnt = x->iovcnt;
		job->orig_offset = x->offset;
		if (kind == ISD_ISER_JOB_PUT) {
			isd_iov_copy_out(x->iov, x->iovcnt, x->offset, job->bounce, x->length);
			isd_dm_count_copy(ic->conn, x->length);
			isd_iser_stat_add(&isd_iser_g_bounced, (int64_t)(x->length));
		}
	}
	if (kind == ISD_ISER_JOB_GET) {
		rc = sink_register(ic, job);
		if (rc < 0) {
			isd_iser_job_free(ic, job);
			return rc;
		}
	}
	*out = job;
	return 0;
}

int
isd_iser_put_data(struct isd_dm_conn *c, struct isd_dm_task *t, const struct isd_xfer *x)
{
	struct isd_iser_conn *ic = isd_dmc_priv(c);
	struct isd_iser_task *tt;
	struct isd_iser_job *job;
	int rc;

	if (c->active)
		return isd_iser_active_put_data(ic, t, x);
	tt = task_priv(ic, t);
	if (tt == NULL) {
		rc = -EINVAL;
		goto err;
	}
	if (!tt->hdr.rsv) {
		isd_log_err("iser %s: READ ITT 0x%x came without a read STag", ic->peer,
			    isd_dmt_itt(t));
		rc = -EINVAL;
		goto err;
	}
	if (tt->job != NULL) {
		rc = -EBUSY;
		goto err;
	}
	rc = xfer_job(ic, t, x, ISD_ISER_JOB_PUT, &job);
	if (rc < 0)
		goto err;
	job->rkey = tt->hdr.read_stag;
	job->remote_va = tt->hdr.read_va + x->offset;
	job->pdu = x->rsp;
	job->tx_limit = ic->tx_limit;
	if (x->rsp != NULL && ic->remote_inv)
		job->inv = isd_iser_inv_stag(&tt->hdr, &job->inv_rkey);
	tt->job = job;
	job_enqueue(ic, job);
	kick_soon(ic);
	return 0;
err:
	if (x->rsp != NULL)
		isd_pdu_free(x->rsp);
	return rc;
}

int
isd_iser_get_data(struct isd_dm_conn *c, struct isd_dm_task *t, const struct isd_xfer *x)
{
	struct isd_iser_conn *ic = isd_dmc_priv(c);
	struct isd_iser_task *tt = task_priv(ic, t);
	struct isd_iser_job *job;
	int rc;

	if (tt == NULL)
		return -EINVAL;
	if (!tt->hdr.wsv) {
		isd_log_err("iser %s: WRITE ITT 0x%x needs solicited data but came without a "
			    "write STag", ic->peer, isd_dmt_itt(t));
		return -EINVAL;
	}
	if (ic->cr.ord == 0) {
		isd_log_err("iser %s: the initiator allows no RDMA Reads (responder_resources 0); "
			    "cannot fetch write data", ic->peer);
		return -EPROTO;
	}
	if (tt->job != NULL)
		return -EBUSY;
	/* the write VA points at the first solicited byte (docs/iser.md W6) */
	if (!tt->first_sol_set) {
		tt->first_sol = x->offset;
		tt->first_sol_set = true;
	}
	if (x->offset < tt->first_sol)
		return -EINVAL;
	rc = xfer_job(ic, t, x, ISD_ISER_JOB_GET, &job);
	if (rc < 0)
		return rc;
	job->rkey = tt->hdr.write_stag;
	job->remote_va = tt->hdr.write_va + (x->offset - tt->first_sol);
	tt->job = job;
	job_enqueue(ic, job);
	kick_soon(ic);
	return 0;
}

void
isd_iser_task_cleanup(struct isd_dm_conn *c, struct isd_dm_task *t, struct isd_tmf_wait *fence)
{
	struct isd_iser_conn *ic = isd_dmc_priv(c);
	struct isd_iser_task *tt = isd_dmt_priv(t);
	struct isd_iser_job *job;

	if (tt->magic != ISD_ISER_TASK_MAGIC)
		return;
	if (tt->cmd != NULL) {
		/* active: its SCSI Command never left */
		job = tt->cmd;
		job_dequeue(ic, job);
		isd_iser_job_free(ic, job);     /* clears tt->cmd */
	}
	if (tt->areg != NULL) {
		struct isd_iser_areg *a = tt->areg;

		/* active: a read bounced through a copy lands in the caller's buffer now
		 * (its status came, or it is given up and the bytes do not matter) */
		if (a->bounce != NULL && t->read_len > 0)
			isd_iov_copy_in(t->iov, t->iovcnt, 0, a->bounce, t->read_len);
		tt->areg = NULL;
		isd_iser_areg_unref(ic, a);     /* Sends in flight hold their own */
	}
	if (tt->job == NULL)
		return;
	job = tt->job;
	tt->job = NULL;
	job->task = NULL;
	job_dequeue(ic, job);
	if (job->inflight == 0) {
		isd_iser_job_free(ic, job);
		return;
	}
	/* WRs still in flight: the job lives on until they complete (no notify). An
	 * RDMA Read may still land in the task's buffer, for a RAM LU its own blocks:
	 * the abort's answer (a PREEMPT AND ABORT's GOOD above all) waits for it */
	if (fence != NULL) {
		isd_dm_fence_hold(ic->conn, fence);
		job->fence = fence;
	}
	/* the task's buffer is released right after this (buf_free): it finds the
	 * job here */
	tt->abandoned = job;
	TAILQ_INSERT_TAIL(&ic->abandoned, job, link);
}

void
isd_iser_task_init(struct isd_dm_conn *c, struct isd_dm_task *t, const struct isd_pdu *cmd)
{
	struct isd_iser_conn *ic = isd_dmc_priv(c);
	struct isd_iser_task *tt = isd_dmt_priv(t);
	const struct isd_iser_rx *rx = cmd != NULL ? cmd->owner : NULL;

	memset(tt, 0, sizeof(*tt));
	tt->magic = ISD_ISER_TASK_MAGIC;
	if (rx != NULL && rx->ic == ic)
		tt->hdr = rx->hdr;
}

void *
isd_iser_buf_alloc(struct isd_dm_conn *c, uint32_t len)
{
	(void)c;
	return isd_rdma_buf_alloc(len);
}

/* Whether [b, b+len) holds any byte the job moves. */
static bool
job_uses(const struct isd_iser_job *job, const uint8_t *b, uint32_t len)
{
	for (int i = 0; i < job->iovcnt; i++) {
		const uint8_t *p = job->iov[i].iov_base;

		if (job->iov[i].iov_len > 0 && p < b + len && b < p + job->iov[i].iov_len)
			return true;
	}
	return false;
}

/*
 * The core releases the buffer of task t. If t's transfer was abandoned with
 * WRs in flight (task_cleanup), they may still write into or read from it: the
 * job keeps it and frees it when its last WR completes (isd_iser_job_free).
 * The task points at its abandoned job: no search.
 */
void
isd_iser_buf_free(struct isd_dm_conn *c, struct isd_dm_task *t, void *buf, uint32_t len)
{
	struct isd_iser_conn *ic = isd_dmc_priv(c);
	struct isd_iser_task *tt = t != NULL ? isd_dmt_priv(t) : NULL;
	struct isd_iser_job *job;

	if (tt != NULL && tt->magic == ISD_ISER_TASK_MAGIC && tt->abandoned != NULL) {
		job = tt->abandoned;
		if (job->inflight > 0 && job_uses(job, buf, len)) {
			if (job->deferred_buf == NULL) {
				job->deferred_buf = buf;
				job->deferred_len = len;
				return;
			}
			/* a command has one data buffer (isd_scsi_buf_alloc) */
			isd_log_err("iser %s: ITT 0x%x: a second buffer of an abandoned transfer "
				    "is released while its work requests are in flight", ic->peer,
				    isd_dmt_itt(t));
		}
	}
	isd_rdma_buf_free(buf, len);
}
