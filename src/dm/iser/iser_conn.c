/*
 * iSER connections of both roles: CM events, the completion dispatcher,
 * teardown (disconnect, QP to error, drain markers, then one terminate
 * notify), the QP and CQ of a connection, and the ops table. Accepting
 * (the passive role's portals) is iser_portal.c; connecting (the active
 * role) is iser_active.c.
 *
 * Event channels: every connection has one of its own (an accepted id is
 * migrated to it), so a connection's lifetime does not depend on its portal.
 */
#include "dm/iser/iser_dm.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>

#include <rdma/rdma_cma.h>

#include "dm/iser/iser_int.h"
#include "rdma/rdma.h"
#include "util/log.h"
#include "util/str.h"

uint64_t isd_iser_g_conns;
uint64_t isd_iser_g_conn_mrs;
uint64_t isd_iser_g_jobs;
uint64_t isd_iser_g_bounced;
uint64_t isd_iser_g_remote_inv;
uint64_t isd_iser_g_posts;
uint64_t isd_iser_g_posted_wrs;
uint64_t isd_iser_g_txq_holds;
uint64_t isd_iser_g_txq_drops;
uint64_t isd_iser_g_tx_stalls;

int
isd_iser_set_nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);

	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
		return -errno;
	return 0;
}

/* ---- teardown ---- */

/*
 * Runs from the reactor, never from inside a call down (dm.h): the connection
 * may have failed inside put_data/get_data/send_control/terminate, when a post
 * failed. The transfers that never got posted end here, each with its one
 * completion notify, then the connection's terminate notify.
 */
static void
notify_cb(void *arg)
{
	struct isd_iser_conn *ic = arg;

	if (ic->notified)
		return;
	/* every posted WR has completed by now: fail what never got posted */
	isd_iser_jobs_fail_pending(ic);
	if (ic->freed)
		return;         /* the core gave up on the connection in a notify */
	ic->notified = true;
	/* the core may free the connection inside: ic is not touched after this */
	if (ic->conn->active && !ic->connected_up) {
		/* an active connection that never opened ends its connect instead */
		isd_dm_connected(ic->conn, ic->term_reason < 0 ? ic->term_reason : -ECONNABORTED);
		return;
	}
	isd_dm_terminate_notify(ic->conn, ic->term_reason);
}

static void
drained(struct isd_iser_conn *ic)
{
	if (ic->state == ISD_ISER_DEAD)
		return;
	ic->state = ISD_ISER_DEAD;
	isd_reactor_timer_stop(ic->r, &ic->drain_timer);
	/* drained() may run inside a call down (isd_iser_conn_fail when a post
	 * fails): the notifies wait for the reactor */
	isd_reactor_defer(ic->r, &ic->notify_timer);
}

/*
 * The send queue is drained once its marker flushed, or once every WR we
 * posted is known complete: siw's kernel flushes a user QP's SQ only when it
 * enters the error state, so a marker posted after that is never completed
 * there (the doorbell of a QP in error flushes nothing).
 */
static void
check_drained(struct isd_iser_conn *ic)
{
	bool sq = ic->drain_sq_done || ic->cr.sq_used == 0;

	if (ic->state == ISD_ISER_DRAINING && sq && ic->drain_rq_done && ic->unposted == NULL)
		drained(ic);
}

static void
drain_timeout_cb(void *arg)
{
	struct isd_iser_conn *ic = arg;

	if (ic->state == ISD_ISER_DRAINING) {
		isd_log_warn("iser %s: flush completions did not arrive in %d ms; tearing down",
			     ic->peer, ISD_ISER_DRAIN_MS);
		drained(ic);
	} else if (ic->state < ISD_ISER_DRAINING) {
		/* terminate()'s flush of queued sends took too long */
		isd_iser_conn_fail(ic, ic->term_reason);
	}
}

/*
 * Starts teardown once: disconnect, QP to error, drain markers on both queues
 * (their flush completions come after every earlier WR's), then one
 * terminate notify.
 */
void
isd_iser_conn_fail(struct isd_iser_conn *ic, int reason)
{
	struct ibv_qp_attr attr = { .qp_state = IBV_QPS_ERR };
	struct ibv_send_wr swr = { 0 }, *bad_s;
	struct ibv_recv_wr rwr = { 0 }, *bad_r;

	if (ic->state >= ISD_ISER_DRAINING)
		return;
	ic->state = ISD_ISER_DRAINING;
	ic->term_reason = reason;
	/* an active connection not established has nobody to disconnect from */
	if (ic->conn->active && !ic->connected_up)
		ic->disconnect_sent = true;
	if (ic->id != NULL && !ic->disconnect_sent) {
		ic->disconnect_sent = true;
		(void)rdma_disconnect(ic->id);
	}
	if (!ic->qp_created) {
		drained(ic);
		return;
	}
	ic->drain_sq.type = ISD_ISER_TAG_DRAIN_SQ;
	ic->drain_rq.type = ISD_ISER_TAG_DRAIN_RQ;
	/*
	 * The receive marker goes in before the QP enters the error state: the
	 * rxe and siw user-space providers post receives into a queue shared with
	 * the kernel without a system call, so a receive posted to a QP already
	 * in error is only flushed when something else wakes the kernel's
	 * responder (it was not, and teardown waited for ISD_ISER_DRAIN_MS). Posted
	 * before, it is flushed by the transition itself, after every earlier
	 * receive; a Send that lands on it (0 bytes) completes in error, which
	 * is just as good a marker.
	 */
	rwr.wr_id = (uintptr_t)&ic->drain_rq;
	if (ibv_post_recv(ic->qp, &rwr, &bad_r) != 0)
		ic->drain_rq_done = true;
	if (ibv_modify_qp(ic->qp, &attr, IBV_QP_STATE) != 0)
		isd_log_dbg("iser", "%s: QP to error: %s", ic->peer, strerror(errno));
	/* the send marker after: a Send posted before could still go out */
	swr.wr_id = (uintptr_t)&ic->drain_sq;
	swr.opcode = IBV_WR_SEND;
	swr.send_flags = IBV_SEND_SIGNALED;
	if (ibv_post_send(ic->qp, &swr, &bad_s) != 0)
		ic->drain_sq_done = true;
	isd_reactor_timer_start(ic->r, &ic->drain_timer, ISD_ISER_DRAIN_MS);
	check_drained(ic);
}

/* ---- completions ---- */

static void
log_wc_error(struct isd_iser_conn *ic, const struct ibv_wc *wc)
{
	if (ic->logged_wc_error)
		return;
	ic->logged_wc_error = true;
	isd_log_err("iser %s: work completion error: %s (vendor 0x%x); closing connection",
		    ic->peer, ibv_wc_status_str(wc->status), wc->vendor_err);
}

static void
dispatch(struct isd_iser_conn *ic, struct ibv_wc *wc)
{
	struct isd_iser_tag *tag = (struct isd_iser_tag *)(uintptr_t)wc->wr_id;
	int status = wc->status == IBV_WC_SUCCESS ? 0 : -EIO;

	if (wc->status != IBV_WC_SUCCESS && wc->status != IBV_WC_WR_FLUSH_ERR &&
	    ic->state < ISD_ISER_DRAINING) {
		/* errors once teardown has begun (the receive marker hit by a
		 * late Send, a peer gone mid-transfer) are expected */
		log_wc_error(ic, wc);
		isd_iser_conn_fail(ic, -EIO);
	} else if (wc->status == IBV_WC_WR_FLUSH_ERR && ic->conn->active &&
		   ic->state < ISD_ISER_DRAINING) {
		/* an initiator's QP went to error under it (the link, the device):
		 * the connection is gone, whatever CM event may follow */
		isd_log_warn("iser %s: work requests flushed; closing the connection", ic->peer);
		isd_iser_conn_fail(ic, -ECONNRESET);
	}
	if (tag == NULL)
		return;         /* an unsignalled WR completing in error */
	switch (tag->type) {
	case ISD_ISER_TAG_RX:
		isd_iser_rx_complete(ic, (struct isd_iser_rx *)tag, wc);
		break;
	case ISD_ISER_TAG_TX:
		ic->tx_done++;
		isd_iser_tx_complete(ic, (struct isd_iser_tx *)tag, status);
		break;
	case ISD_ISER_TAG_JOB:
		ic->tx_done++;
		isd_iser_job_wr_complete(ic, (struct isd_iser_job *)tag, status);
		break;
	case ISD_ISER_TAG_READ:
		ic->tx_done++;
		isd_iser_read_complete(ic, (struct isd_iser_read *)tag, status);
		break;
	case ISD_ISER_TAG_DRAIN_SQ:
		ic->drain_sq_done = true;
		check_drained(ic);
		break;
	case ISD_ISER_TAG_DRAIN_RQ:
		ic->drain_rq_done = true;
		check_drained(ic);
		break;
	default:
		isd_log_err("iser %s: completion with unknown tag %u", ic->peer, tag->type);
		break;
	}
}

/*
 * The provider refused `first` of a post (iser_tx.c's batch): it and the WRs
 * chained after it (they stay in the batch, which takes nothing more once
 * the connection fails) never reached the QP. The connection fails now; from
 * the reactor, not inside the call down that posted, each of them completes
 * as flushed, as the QP would have completed it, so their descriptors,
 * credits and jobs come back through the usual completions. The teardown
 * waits for that (check_drained).
 */
void
isd_iser_conn_unposted(struct isd_iser_conn *ic, struct ibv_send_wr *first, int err)
{
	ic->unposted = first;
	isd_iser_conn_fail(ic, err);
	isd_reactor_defer(ic->r, &ic->unposted_timer);
}

static void
unposted_cb(void *arg)
{
	struct isd_iser_conn *ic = arg;
	struct ibv_send_wr *w = ic->unposted;

	for (; w != NULL; w = w->next) {
		struct ibv_wc wc = { .wr_id = w->wr_id, .status = IBV_WC_WR_FLUSH_ERR };

		if (w->wr_id == 0)
			continue;       /* unsignalled: its chain's last WR answers for it */
		dispatch(ic, &wc);
	}
	ic->unposted = NULL;
	check_drained(ic);
}

/* Polls the CQ with a budget; the rest runs on the next loop iteration. */
void
isd_iser_conn_poll(void *arg)
{
	struct isd_iser_conn *ic = arg;
	struct ibv_wc wc[16];
	int total = 0, n;
	bool armed = false, was_polling = ic->polling;

	if (ic->state == ISD_ISER_DEAD || ic->cq == NULL)
		return;
	/* what the completions queue up is posted together, by the kick below */
	ic->polling = true;
	for (;;) {
		n = ibv_poll_cq(ic->cq->cq, 16, wc);
		if (n < 0) {
			isd_log_err("iser %s: ibv_poll_cq failed", ic->peer);
			isd_iser_conn_fail(ic, -EIO);
			break;
		}
		for (int i = 0; i < n; i++) {
			dispatch(ic, &wc[i]);
			if (ic->state == ISD_ISER_DEAD)
				goto dead;
		}
		/* a flushed WR may have been the last one outstanding */
		check_drained(ic);
		if (ic->state == ISD_ISER_DEAD)
			goto dead;
		total += n;
		if (n > 0)
			ic->spins = 0;
		if (n == 0) {
			if (armed)
				break;
			if (ic->spins < ISD_ISER_POLL_SPINS) {
				/* not armed: look again on the next reactor turn */
				ic->spins++;
				isd_reactor_defer(ic->r, &ic->poll_timer);
				break;
			}
			ic->spins = 0;
			/* arm, then look once more: a completion that arrived in
			 * between raises no event */
			if (isd_rdma_cq_arm(ic->cq) < 0) {
				isd_iser_conn_fail(ic, -EIO);
				break;
			}
			armed = true;
			continue;
		}
		if (total >= ISD_ISER_CQ_BUDGET) {
			isd_reactor_defer(ic->r, &ic->poll_timer);
			break;
		}
	}
	ic->polling = was_polling;
	isd_iser_tx_kick(ic);
	return;
dead:
	ic->polling = was_polling;
}

static void
poll_timer_cb(void *arg)
{
	isd_iser_conn_poll(arg);
}

/* A peer that takes none of our Sends (no receives posted and RNR retries
 * for ever, or a stalled iWARP stream) must not hold the connection for ever. */
static void
stall_timer_cb(void *arg)
{
	struct isd_iser_conn *ic = arg;

	if (ic->state >= ISD_ISER_DRAINING)
		return;
	if (ic->state == ISD_ISER_ESTABLISHED &&
	    isd_iser_tx_stalled(ic->cr.sq_used, ic->tx_done, ic->tx_done_seen)) {
		isd_log_err("iser %s: %u work requests posted and none completed for %d ms: the "
			    "initiator takes none of our Sends; closing the connection", ic->peer,
			    ic->cr.sq_used, ISD_ISER_TX_STALL_MS);
		isd_iser_stat_add(&isd_iser_g_tx_stalls, 1);
		isd_iser_conn_fail(ic, -ETIMEDOUT);
		return;
	}
	ic->tx_done_seen = ic->tx_done;
	isd_reactor_timer_start(ic->r, &ic->stall_timer, ISD_ISER_TX_STALL_MS);
}

void
isd_iser_conn_init_timers(struct isd_iser_conn *ic)
{
	isd_timer_init(&ic->notify_timer, notify_cb, ic);
	isd_timer_init(&ic->drain_timer, drain_timeout_cb, ic);
	isd_timer_init(&ic->poll_timer, poll_timer_cb, ic);
	isd_timer_init(&ic->kick_timer, (isd_task_cb)isd_iser_tx_kick, ic);
	isd_timer_init(&ic->stall_timer, stall_timer_cb, ic);
	isd_timer_init(&ic->connect_timer, isd_iser_active_connect_timeout, ic);
	isd_timer_init(&ic->unposted_timer, unposted_cb, ic);
}

void
isd_iser_conn_init(struct isd_iser_conn *ic, struct isd_dm_conn *c, struct isd_reactor *r)
{
	memset(ic, 0, sizeof(*ic));
	ic->conn = c;
	ic->r = r;
	ic->tx_limit = ISD_ISER_LOGIN_DATA;
	TAILQ_INIT(&ic->pending);
	TAILQ_INIT(&ic->abandoned);
	TAILQ_INIT(&ic->tx_free_small);
	TAILQ_INIT(&ic->tx_free_big);
	TAILQ_INIT(&ic->aregs);
	isd_iser_conn_init_timers(ic);
}

/* ---- CM events of one connection ---- */

static void
conn_cm_cb(void *arg, uint32_t events)
{
	struct isd_iser_conn *ic = arg;
	struct rdma_cm_event *ev;

	(void)events;
	while (ic->state != ISD_ISER_DEAD && rdma_get_cm_event(ic->ch, &ev) == 0) {
		enum rdma_cm_event_type type = ev->event;
		int status = ev->status;

		rdma_ack_cm_event(ev);
		isd_log_dbg("iser", "%s: %s (%d)", ic->peer, rdma_event_str(type), status);
		if (ic->state == ISD_ISER_CONNECTING) {
			isd_iser_active_cm_event(ic, type, status);
			continue;
		}
		switch (type) {
		case RDMA_CM_EVENT_ESTABLISHED:
			if (ic->state == ISD_ISER_ACCEPTING) {
				ic->state = ISD_ISER_ESTABLISHED;
				isd_iser_tx_kick(ic);
			}
			break;
		case RDMA_CM_EVENT_DISCONNECTED:
			if (ic->conn->active) {
				/* the target's last PDUs (a Login Response refusing the login,
				 * say, sent right before it hung up) may still sit in the CQ:
				 * they go up first, so that the core sees why */
				isd_iser_conn_poll(ic);
				if (ic->state >= ISD_ISER_DRAINING)
					break;
			}
			ic->disconnect_sent = true; /* still call it once: see below */
			(void)rdma_disconnect(ic->id);
			isd_iser_conn_fail(ic, -ECONNRESET);
			break;
		case RDMA_CM_EVENT_TIMEWAIT_EXIT:
			break;
		case RDMA_CM_EVENT_DEVICE_REMOVAL:
			isd_log_err("iser %s: RDMA device removed", ic->peer);
			isd_iser_conn_fail(ic, -ENODEV);
			break;
		default:
			/* CONNECT_ERROR, UNREACHABLE, REJECTED, ADDR_CHANGE */
			isd_log_info("iser %s: %s (status %d), closing", ic->peer,
				     rdma_event_str(type), status);
			isd_iser_conn_fail(ic, -ECONNABORTED);
			break;
		}
	}
}

/* ---- accepting ---- */

/* ---- connection resources ---- */

int
isd_iser_conn_channel(struct isd_iser_conn *ic)
{
	ic->ch = rdma_create_event_channel();
	if (ic->ch == NULL)
		return -(errno ? errno : ENOMEM);
	return isd_iser_set_nonblock(ic->ch->fd);
}

int
isd_iser_conn_watch(struct isd_iser_conn *ic)
{
	int rc = isd_reactor_add_fd(ic->r, ic->ch->fd, EPOLLIN, conn_cm_cb, ic);

	if (rc < 0)
		return rc;
	ic->ch_on_reactor = true;
	return 0;
}

int
isd_iser_conn_create_qp(struct isd_iser_conn *ic, uint8_t ord)
{
	struct ibv_qp_init_attr qa;
	int rc;

	rc = isd_rdma_cq_create(ic->dev, ic->r, (int)ic->qs.cq_depth, isd_iser_conn_poll, ic,
				&ic->cq);
	if (rc < 0)
		return rc;
	memset(&qa, 0, sizeof(qa));
	qa.qp_context = ic;
	qa.send_cq = ic->cq->cq;
	qa.recv_cq = ic->cq->cq;
	qa.qp_type = IBV_QPT_RC;
	qa.sq_sig_all = 0;
	qa.cap.max_send_wr = ic->qs.max_send_wr;
	qa.cap.max_recv_wr = ic->qs.max_recv_wr;
	qa.cap.max_send_sge = ic->qs.max_send_sge;
	qa.cap.max_recv_sge = ic->qs.max_recv_sge;
	if (rdma_create_qp(ic->id, ic->dev->pd, &qa) != 0)
		return -(errno ? errno : EIO);
	ic->qp_created = true;
	ic->qp = ic->id->qp;
	isd_rdma_count_qp(1);
	/* what the provider really gave us */
	if (qa.cap.max_send_wr < ic->qs.max_send_wr)
		ic->qs.max_send_wr = qa.cap.max_send_wr;
	isd_iser_credits_init(&ic->cr, ic->qs.max_send_wr - 1, ord);
	return isd_iser_tx_setup(ic);
}

/* ---- memory ---- */

int
isd_iser_register_memory(void *base, size_t len, bool read_only, char *err, size_t err_len)
{
	return isd_rdma_mem_add(base, len, read_only ? ISD_RDMA_MEM_LUN_RO : ISD_RDMA_MEM_LUN, err,
				err_len);
}

void
isd_iser_unregister_memory(void *base)
{
	isd_rdma_mem_remove(base);
}

void
isd_iser_get_stats(struct isd_iser_stats *out)
{
	struct isd_rdma_stats rs;

	isd_rdma_get_stats(&rs);
	memset(out, 0, sizeof(*out));
	out->conns = __atomic_load_n(&isd_iser_g_conns, __ATOMIC_RELAXED);
	out->qps = rs.qps;
	out->mrs = rs.mrs;
	out->conn_mrs = __atomic_load_n(&isd_iser_g_conn_mrs, __ATOMIC_RELAXED);
	out->cqs = rs.cqs;
	out->bufs = rs.bufs;
	out->jobs = __atomic_load_n(&isd_iser_g_jobs, __ATOMIC_RELAXED);
	out->bytes_bounced = __atomic_load_n(&isd_iser_g_bounced, __ATOMIC_RELAXED);
	out->remote_invalidations = __atomic_load_n(&isd_iser_g_remote_inv, __ATOMIC_RELAXED);
	out->posts = __atomic_load_n(&isd_iser_g_posts, __ATOMIC_RELAXED);
	out->posted_wrs = __atomic_load_n(&isd_iser_g_posted_wrs, __ATOMIC_RELAXED);
	out->remote_mrs = rs.remote_mrs;
	out->remote_mrs_total = rs.remote_mrs_total;
	out->tx_queue_holds = __atomic_load_n(&isd_iser_g_txq_holds, __ATOMIC_RELAXED);
	out->tx_queue_drops = __atomic_load_n(&isd_iser_g_txq_drops, __ATOMIC_RELAXED);
	out->tx_stall_drops = __atomic_load_n(&isd_iser_g_tx_stalls, __ATOMIC_RELAXED);
}

int
isd_iser_stats_list(struct isd_stat *out, int max)
{
	struct isd_iser_stats st;
	int n = 0;

	isd_iser_get_stats(&st);
#define ADD(f) isd_stat_add(out, max, &n, #f, st.f)
	ADD(conns);
	ADD(qps);
	ADD(cqs);
	ADD(mrs);
	ADD(conn_mrs);
	ADD(bufs);
	ADD(jobs);
	ADD(bytes_bounced);
	ADD(remote_invalidations);
	ADD(posts);
	ADD(posted_wrs);
	ADD(remote_mrs);
	ADD(remote_mrs_total);
	ADD(tx_queue_holds);
	ADD(tx_queue_drops);
	ADD(tx_stall_drops);
#undef ADD
	return n;
}

/* ---- ops ---- */

/* After the final Login Response was queued (its FFP receives went up in
 * login_response): Sends queued from now on are full-feature Sends. */
static void
iser_notice_key_values(struct isd_dm_conn *c, const struct isd_params *p)
{
	struct isd_iser_conn *ic = isd_dmc_priv(c);

	/* active: its receives and Sends keep their login size (8192 bytes), which
	 * is what the initiator core declares and what a target's receives take */
	if (ic->state >= ISD_ISER_DRAINING || c->active)
		return;
	ic->discovery = p->session_type == ISD_SESSION_DISCOVERY;
	/* Linux ib_iser and libiscsi post 128-byte FFP receives whatever IRDSL says
	 * (docs/iser.md W8); discovery keeps the 8 KiB login buffer */
	ic->tx_limit = ic->discovery ? ISD_ISER_LOGIN_DATA : ISD_ISER_INI_FFP_DATA;
}

static void
iser_terminate(struct isd_dm_conn *c)
{
	struct isd_iser_conn *ic = isd_dmc_priv(c);

	if (ic->state >= ISD_ISER_DRAINING || ic->closing)
		return;
	ic->closing = true;
	if (ic->state != ISD_ISER_ESTABLISHED) {
		isd_iser_conn_fail(ic, 0);
		return;
	}
	/* let queued Sends (a Logout or Login Response) go first, bounded; the
	 * kick disconnects once the send queue is empty */
	ic->term_reason = 0;
	isd_iser_tx_kick(ic);
	if (ic->state < ISD_ISER_DRAINING)
		isd_reactor_timer_start(ic->r, &ic->drain_timer, 1000);
}

static void
iser_free_conn(struct isd_dm_conn *c)
{
	struct isd_iser_conn *ic = isd_dmc_priv(c);
	struct isd_iser_job *job;

	isd_reactor_timer_stop(ic->r, &ic->notify_timer);
	isd_reactor_timer_stop(ic->r, &ic->drain_timer);
	isd_reactor_timer_stop(ic->r, &ic->poll_timer);
	isd_reactor_timer_stop(ic->r, &ic->kick_timer);
	isd_reactor_timer_stop(ic->r, &ic->stall_timer);
	isd_reactor_timer_stop(ic->r, &ic->connect_timer);
	isd_reactor_timer_stop(ic->r, &ic->unposted_timer);
	if (ic->placed) {
		ic->placed = false;
		isd_reactor_conns_add(ic->r, -1);
	}
	/* free_conn may run inside an upcall of this connection (an active one is
	 * closed from any of them): the code that called up stops at DEAD */
	ic->freed = true;
	ic->state = ISD_ISER_DEAD;
	if (ic->ch_on_reactor)
		isd_reactor_del_fd(ic->r, ic->ch->fd);
	if (ic->conn->active && ic->connected_up && !ic->disconnect_sent) {
		/* closed without terminate (logout done, or given up): the target
		 * learns it now, not from a retry timeout */
		ic->disconnect_sent = true;
		(void)rdma_disconnect(ic->id);
	}
	if (ic->qp_created) {
		rdma_destroy_qp(ic->id);
		isd_rdma_count_qp(-1);
	}
	isd_rdma_cq_destroy(ic->cq);
	while ((job = TAILQ_FIRST(&ic->pending)) != NULL) {
		TAILQ_REMOVE(&ic->pending, job, link);
		job->queued = false;
		isd_iser_job_free(ic, job);
	}
	while ((job = TAILQ_FIRST(&ic->abandoned)) != NULL) {
		TAILQ_REMOVE(&ic->abandoned, job, link);
		isd_iser_job_free(ic, job);
	}
	if (ic->rx_mr != NULL)
		isd_iser_stat_add(&isd_iser_g_conn_mrs, -1);
	if (ic->ctl_mr != NULL)
		isd_iser_stat_add(&isd_iser_g_conn_mrs, -1);
	isd_rdma_mr_dereg(ic->rx_mr);
	isd_rdma_mr_dereg(ic->ctl_mr);
	isd_iser_active_free(ic);
	if (ic->rx != NULL) {
		for (uint32_t i = 0; i < ic->rx_count; i++)
			free(ic->rx[i]);
		free(ic->rx);
	}
	free(ic->rx_mem);
	free(ic->login_rx);
	free(ic->tx_all);
	free(ic->batch);
	free(ic->ctl_mem);
	if (ic->id != NULL)
		rdma_destroy_id(ic->id);
	if (ic->ch != NULL)
		rdma_destroy_event_channel(ic->ch);
	isd_rdma_dev_put(ic->dev);
	if (ic->jobs != 0)
		isd_log_warn("iser %s: %u transfer jobs leaked", ic->peer, ic->jobs);
	if (!ic->conn->active)
		isd_iser_stat_add(&isd_iser_g_conns, -1);
	{
		struct isd_iser_stats st;

		isd_iser_get_stats(&st);
		isd_log_info("iser %s: connection freed; live iSER resources: conns %llu qps %llu "
			     "cqs %llu conn_mrs %llu bufs %llu jobs %llu remote_mrs %llu (all MRs "
			     "%llu, bounced %llu bytes)", ic->peer, (unsigned long long)st.conns,
			     (unsigned long long)st.qps, (unsigned long long)st.cqs,
			     (unsigned long long)st.conn_mrs, (unsigned long long)st.bufs,
			     (unsigned long long)st.jobs, (unsigned long long)st.remote_mrs,
			     (unsigned long long)st.mrs, (unsigned long long)st.bytes_bounced);
	}
}


const struct isd_dm_ops isd_iser_dm_ops = {
	.name = "iser",
	.caps = ISD_DM_CAP_RDMA,
	.conn_priv_size = sizeof(struct isd_iser_conn),
	.task_priv_size = sizeof(struct isd_iser_task),
	.connect = isd_iser_active_connect,
	.send_command = isd_iser_send_command,
	/*
	 * Linux ib_iser and libiscsi post 128-byte full-feature receive buffers
	 * whatever InitiatorRecvDataSegmentLength says (docs/iser.md W8), for the
	 * unsolicited control PDUs they do not expect a large answer to (NOP-In,
	 * Reject, Async Message, Text): a longer Send fails their receive and kills
	 * the connection. The core keeps its control PDUs within this; what still
	 * comes longer is cut (sense data) or logged (isd_iser_fit_data).
	 */
	.ffp_ctl_max_dsl = ISD_ISER_INI_FFP_DATA,
	.send_control = isd_iser_send_control,
	.put_data = isd_iser_put_data,
	.get_data = isd_iser_get_data,
	.login_response = isd_iser_login_response,
	.notice_key_values = iser_notice_key_values,
	.release_pdu = isd_iser_release_pdu,
	.task_cleanup = isd_iser_task_cleanup,
	.terminate = iser_terminate,
	.free_conn = iser_free_conn,
	.task_init = isd_iser_task_init,
	.buf_alloc = isd_iser_buf_alloc,
	.buf_free = isd_iser_buf_free,
	.send_response = isd_iser_send_response,
	.mem_unregister = isd_iser_mem_unregister,
};
