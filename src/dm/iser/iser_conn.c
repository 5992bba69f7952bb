/*
 * iSER portals and connections: rdma_cm listening, CONNECT_REQUEST (QP, CQ,
 * login receive posted before rdma_accept), CM events, the completion
 * dispatcher, teardown (disconnect, QP to error, drain markers, then one
 * terminate notify) and the ops table.
 *
 * Event channels: the portal owns one for its listening id; every accepted id
 * is migrated to a channel of its own, so a connection's lifetime does not
 * depend on its portal.
 */
#include "dm/iser/iser_dm.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>

#include <rdma/rdma_cma.h>

#include "dm/iser/iser_int.h"
#include "iscsi/iscsi.h"
#include "rdma/rdma.h"
#include "util/log.h"
#include "util/str.h"

#define ISD_ISER_BACKLOG 128

/* A listening rdma_cm id. Owned by whoever called listen; lives on reactor r. */
struct isd_iser_portal {
	struct isd_iscsi_tgt *tgt;
	struct isd_reactor *r;
	struct rdma_event_channel *ch;
	struct rdma_cm_id *id;
	bool on_reactor;
	uint16_t port;
	uint16_t tpgt;
	char name[96];                  /* "iser://addr:port" */
	bool remote_inv;                /* may end commands with Send with Invalidate */
	uint64_t recv_memory;           /* FFP receive buffer bytes per connection */
	struct isd_rdma_dev *devs[ISD_RDMA_MAX_DEVS];
	int ndevs;
};

static uint64_t g_conns;
uint64_t isd_iser_g_conn_mrs;
uint64_t isd_iser_g_jobs;
uint64_t isd_iser_g_bounced;
uint64_t isd_iser_g_remote_inv;
uint64_t isd_iser_g_txq_holds;
uint64_t isd_iser_g_txq_drops;
uint64_t isd_iser_g_tx_stalls;

static int
set_nonblock(int fd)
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
	ic->notified = true;
	/* the core may free the connection inside: ic is not touched after this */
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

	if (ic->state == ISD_ISER_DRAINING && sq && ic->drain_rq_done)
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

/* Polls the CQ with a budget; the rest runs on the next loop iteration. */
void
isd_iser_conn_poll(void *arg)
{
	struct isd_iser_conn *ic = arg;
	struct ibv_wc wc[16];
	int total = 0, n;
	bool armed = false;

	if (ic->state == ISD_ISER_DEAD || ic->cq == NULL)
		return;
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
				return;
		}
		/* a flushed WR may have been the last one outstanding */
		check_drained(ic);
		if (ic->state == ISD_ISER_DEAD)
			return;
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
	isd_iser_tx_kick(ic);
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
		isd_iser_g_tx_stalls++;
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
		switch (type) {
		case RDMA_CM_EVENT_ESTABLISHED:
			if (ic->state == ISD_ISER_ACCEPTING) {
				ic->state = ISD_ISER_ESTABLISHED;
				isd_iser_tx_kick(ic);
			}
			break;
		case RDMA_CM_EVENT_DISCONNECTED:
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

static int
conn_setup(struct isd_iser_conn *ic, uint8_t ord)
{
	struct ibv_qp_init_attr qa;
	int rc;

	ic->ch = rdma_create_event_channel();
	if (ic->ch == NULL)
		return -(errno ? errno : ENOMEM);
	rc = set_nonblock(ic->ch->fd);
	if (rc < 0)
		return rc;
	if (rdma_migrate_id(ic->id, ic->ch) != 0)
		return -(errno ? errno : EIO);
	rc = isd_reactor_add_fd(ic->r, ic->ch->fd, EPOLLIN, conn_cm_cb, ic);
	if (rc < 0)
		return rc;
	ic->ch_on_reactor = true;

	isd_iser_qp_size(&ic->dev->attr, &ic->qs);
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
	rc = isd_iser_tx_setup(ic);
	if (rc < 0)
		return rc;
	/* the login receive goes up before rdma_accept (iser-facts §3.1) */
	return isd_iser_rx_post(ic, ic->login_rx);
}

static void
connect_request(struct isd_iser_portal *p, struct rdma_cm_id *id,
		const struct rdma_conn_param *peer, const uint8_t *priv, size_t priv_len)
{
	struct rdma_conn_param acc;
	struct isd_iser_cm cm, rep_cm = { .zbva_not_supported = true };
	uint8_t rep[ISD_ISER_CM_LEN];
	struct isd_conn_info info;
	struct isd_rdma_dev *dev = NULL;
	struct isd_iser_conn *ic;
	struct isd_dm_conn *c;
	char err[256];
	uint8_t ord;
	int rc;

	memset(&info, 0, sizeof(info));
	isd_sockaddr_str(rdma_get_peer_addr(id), 0, info.peer_addr, sizeof(info.peer_addr),
			 &info.peer_port);
	isd_sockaddr_str(rdma_get_local_addr(id), 0, info.local_addr, sizeof(info.local_addr),
			 &info.local_port);
	info.tpgt = p->tpgt;
	info.transport = ISD_TRANSPORT_ISER;
	isd_iser_cm_decode(priv, priv_len, &cm);

	rc = isd_rdma_dev_get(id->verbs, &dev, err, sizeof(err));
	if (rc < 0) {
		isd_log_err("%s: connection from %s refused: %s", p->name, info.peer_addr, err);
		goto err_reject;
	}
	rc = isd_conn_create(p->tgt, &isd_iser_dm_ops, &info, p->r, &c);
	if (rc < 0) {
		/* a connection limit (-EAGAIN) is counted (and logged at debug) by the
		 * core: a flood of connect requests must not become a flood of log lines */
		if (rc != -EAGAIN)
			isd_log_err("%s: connection from %s refused: %s", p->name,
				    info.peer_addr, strerror(-rc));
		goto err_dev;
	}
	ic = isd_dmc_priv(c);
	memset(ic, 0, sizeof(*ic));
	ic->conn = c;
	ic->r = p->r;
	ic->id = id;
	ic->dev = dev;
	ic->state = ISD_ISER_ACCEPTING;
	ic->tx_limit = ISD_ISER_LOGIN_DATA;
	ic->rx_budget = p->recv_memory;
	TAILQ_INIT(&ic->pending);
	TAILQ_INIT(&ic->abandoned);
	TAILQ_INIT(&ic->tx_free_small);
	TAILQ_INIT(&ic->tx_free_big);
	isd_iser_conn_init_timers(ic);
	if (strchr(info.peer_addr, ':') != NULL)
		snprintf(ic->peer, sizeof(ic->peer), "[%s]:%u", info.peer_addr, info.peer_port);
	else
		snprintf(ic->peer, sizeof(ic->peer), "%s:%u", info.peer_addr, info.peer_port);
	id->context = ic;
	g_conns++;
	ic->remote_inv = isd_iser_remote_inv_ok(
	    &cm, (dev->attr.device_cap_flags & IBV_DEVICE_MEM_MGT_EXTENSIONS) != 0, p->remote_inv);
	/* the REP tells the initiator which way its STags are invalidated */
	rep_cm.send_w_inv_not_supported = !ic->remote_inv;

	ord = isd_iser_ord(peer, dev->attr.max_qp_init_rd_atom);
	if (ord == 0)
		isd_log_warn("iser %s: the initiator accepts no RDMA Reads (its responder "
			     "resources are 0): SCSI writes that need solicited data will fail "
			     "and close the connection", ic->peer);
	rc = conn_setup(ic, ord);
	if (rc < 0) {
		isd_log_err("iser %s: connection setup failed: %s", ic->peer, strerror(-rc));
		goto err_conn;
	}
	isd_iser_cm_encode(&rep_cm, rep);
	memset(&acc, 0, sizeof(acc));
	acc.private_data = rep;
	acc.private_data_len = sizeof(rep);
	acc.responder_resources = 0;    /* nobody reads from us */
	acc.initiator_depth = ord;
	acc.retry_count = 7;
	/* the initiator's QP may wait for our receives for ever (the IB CM hands
	 * this to it): withholding receives is our backpressure */
	acc.rnr_retry_count = 7;
	if (rdma_accept(id, &acc) != 0) {
		rc = -errno;
		isd_log_err("iser %s: rdma_accept: %s", ic->peer, strerror(errno));
		goto err_conn;
	}
	isd_log_dbg("iser", "%s: accepted on %s (%s; peer flags %s ZBVA-not-sup %d SEND_W_INV-not-sup "
		    "%d, its IRD (responder resources) %u, its ORD (initiator depth) %u; "
		    "our ORD %u; %s invalidation)",
		    ic->peer, dev->name, dev->iwarp ? "iWARP" : "IB/RoCE",
		    cm.present ? "sent" : "absent", cm.zbva_not_supported,
		    cm.send_w_inv_not_supported, peer->initiator_depth, peer->responder_resources,
		    ord, ic->remote_inv ? "remote" : "local");
	isd_reactor_timer_start(ic->r, &ic->stall_timer, ISD_ISER_TX_STALL_MS);
	isd_conn_start(c);
	return;

err_conn:
	/* the isd_conn exists: reject, then let the core free it through the usual
	 * terminate notify -> free_conn path (which destroys the id) */
	ic->disconnect_sent = true;
	(void)rdma_reject(id, NULL, 0);
	isd_iser_conn_fail(ic, rc);
	return;
err_dev:
	isd_rdma_dev_put(dev);
err_reject:
	(void)rdma_reject(id, NULL, 0);
	rdma_destroy_id(id);
}

static void
portal_cm_cb(void *arg, uint32_t events)
{
	struct isd_iser_portal *p = arg;
	struct rdma_cm_event *ev;

	(void)events;
	while (rdma_get_cm_event(p->ch, &ev) == 0) {
		if (ev->event == RDMA_CM_EVENT_CONNECT_REQUEST) {
			struct rdma_conn_param peer = ev->param.conn;
			struct rdma_cm_id *id = ev->id;
			uint8_t priv[64];
			size_t len = 0;

			if (peer.private_data != NULL) {
				len = peer.private_data_len < sizeof(priv) ? peer.private_data_len
									   : sizeof(priv);
				memcpy(priv, peer.private_data, len);
			}
			peer.private_data = NULL;
			rdma_ack_cm_event(ev);
			connect_request(p, id, &peer, priv, len);
			continue;
		}
		isd_log_info("%s: %s on the listener", p->name, rdma_event_str(ev->event));
		rdma_ack_cm_event(ev);
	}
}

/* ---- portals ---- */

static void
portal_free(struct isd_iser_portal *p)
{
	if (p->on_reactor)
		isd_reactor_del_fd(p->r, p->ch->fd);
	if (p->id != NULL)
		rdma_destroy_id(p->id);
	if (p->ch != NULL)
		rdma_destroy_event_channel(p->ch);
	for (int i = 0; i < p->ndevs; i++)
		isd_rdma_dev_put(p->devs[i]);
	free(p);
}

/* Opens every RDMA device now, so that registered memory is registered (and an
 * RLIMIT_MEMLOCK shortfall reported) at start, not at the first login. */
static int
portal_open_devices(struct isd_iser_portal *p, char *err, size_t err_len)
{
	struct ibv_context **list;
	int n = 0, rc = 0;

	list = rdma_get_devices(&n);
	if (list == NULL)
		return 0;
	for (int i = 0; i < n && p->ndevs < ISD_RDMA_MAX_DEVS; i++) {
		char e[256];

		rc = isd_rdma_dev_get(list[i], &p->devs[p->ndevs], e, sizeof(e));
		if (rc < 0) {
			isd_seterr(err, err_len, "%s: %s", p->name, e);
			break;
		}
		p->ndevs++;
	}
	rdma_free_devices(list);
	return rc;
}

int
isd_iser_portal_listen(struct isd_iscsi_tgt *t, struct isd_reactor *r, const char *host,
		       uint16_t port, uint16_t tpgt, struct isd_iser_portal **out, char *err,
		       size_t err_len)
{
	struct addrinfo hints, *ai = NULL;
	struct isd_iser_portal *p;
	char serv[8];
	int rc, e;

	if (t == NULL || r == NULL || host == NULL || out == NULL) {
		isd_seterr(err, err_len, "iser portal: bad arguments");
		return -EINVAL;
	}
	isd_rdma_init();
	p = calloc(1, sizeof(*p));
	if (p == NULL) {
		isd_seterr(err, err_len, "iser portal: out of memory");
		return -ENOMEM;
	}
	p->tgt = t;
	p->r = r;
	p->tpgt = tpgt;
	p->recv_memory = ISD_ISER_RECV_MEMORY_DEFAULT;
	if (strchr(host, ':') != NULL)
		snprintf(p->name, sizeof(p->name), "iser://[%s]:%u", host, port);
	else
		snprintf(p->name, sizeof(p->name), "iser://%s:%u", host, port);

	p->ch = rdma_create_event_channel();
	if (p->ch == NULL) {
		e = errno ? errno : ENODEV;
		isd_seterr(err, err_len,
			   "%s: rdma_cm unavailable (%s): no RDMA device, or the "
			   "rdma_ucm module is not loaded",
			   p->name, strerror(e));
		rc = -e;
		goto err_free;
	}
	rc = set_nonblock(p->ch->fd);
	if (rc < 0) {
		isd_seterr(err, err_len, "%s: %s", p->name, strerror(-rc));
		goto err_free;
	}
	if (rdma_create_id(p->ch, &p->id, p, RDMA_PS_TCP) != 0) {
		rc = -errno;
		isd_seterr(err, err_len, "%s: rdma_create_id: %s", p->name, strerror(errno));
		goto err_free;
	}
	memset(&hints, 0, sizeof(hints));
	hints.ai_flags = AI_PASSIVE | AI_NUMERICHOST | AI_NUMERICSERV;
	hints.ai_socktype = SOCK_STREAM;
	snprintf(serv, sizeof(serv), "%u", port);
	e = getaddrinfo(host, serv, &hints, &ai);
	if (e != 0) {
		isd_seterr(err, err_len, "%s: not a numeric address: %s", p->name, gai_strerror(e));
		rc = -EINVAL;
		goto err_free;
	}
	if (ai->ai_family == AF_INET6)
		(void)rdma_set_option(p->id, RDMA_OPTION_ID, RDMA_OPTION_ID_AFONLY,
				      &(int){ 1 }, sizeof(int));
	if (rdma_bind_addr(p->id, ai->ai_addr) != 0) {
		rc = -errno;
		goto err_bind;
	}
	if (rdma_listen(p->id, ISD_ISER_BACKLOG) != 0) {
		rc = -errno;
		goto err_bind;
	}
	freeaddrinfo(ai);
	ai = NULL;
	p->port = ntohs(rdma_get_src_port(p->id));
	rc = portal_open_devices(p, err, err_len);
	if (rc < 0)
		goto err_free;
	rc = isd_reactor_add_fd(r, p->ch->fd, EPOLLIN, portal_cm_cb, p);
	if (rc < 0) {
		isd_seterr(err, err_len, "%s: reactor: %s", p->name, strerror(-rc));
		goto err_free;
	}
	p->on_reactor = true;
	isd_log_info("%s: listening (tpgt %u, %d RDMA device%s)", p->name, tpgt, p->ndevs,
		     p->ndevs == 1 ? "" : "s");
	*out = p;
	return 0;

err_bind:
	if (rc == -EADDRINUSE)
		isd_seterr(err, err_len,
			   "%s: port in use (on iWARP the iSER portal cannot share a "
			   "port with a TCP portal; use another port, e.g. 3261)",
			   p->name);
	else if (rc == -EADDRNOTAVAIL || rc == -ENODEV)
		isd_seterr(err, err_len, "%s: no RDMA device has this address (%s)", p->name,
			   strerror(-rc));
	else
		isd_seterr(err, err_len, "%s: %s", p->name, strerror(-rc));
err_free:
	if (ai != NULL)
		freeaddrinfo(ai);
	portal_free(p);
	return rc;
}

void
isd_iser_portal_close(struct isd_iser_portal *p)
{
	if (p != NULL)
		portal_free(p);
}

uint16_t
isd_iser_portal_port(const struct isd_iser_portal *p)
{
	return p->port;
}

void
isd_iser_portal_set_remote_invalidate(struct isd_iser_portal *p, bool on)
{
	p->remote_inv = on;
}

void
isd_iser_portal_set_recv_memory(struct isd_iser_portal *p, uint64_t bytes)
{
	p->recv_memory = bytes;
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
	out->conns = g_conns;
	out->qps = rs.qps;
	out->mrs = rs.mrs;
	out->conn_mrs = isd_iser_g_conn_mrs;
	out->cqs = rs.cqs;
	out->bufs = rs.bufs;
	out->jobs = isd_iser_g_jobs;
	out->bytes_bounced = isd_iser_g_bounced;
	out->remote_invalidations = isd_iser_g_remote_inv;
	out->remote_mrs = rs.remote_mrs;
	out->remote_mrs_total = rs.remote_mrs_total;
	out->tx_queue_holds = isd_iser_g_txq_holds;
	out->tx_queue_drops = isd_iser_g_txq_drops;
	out->tx_stall_drops = isd_iser_g_tx_stalls;
}

int
isd_iser_stats_list(struct isd_stat *out, int max)
{
	struct isd_iser_stats st;
	int n = 0;

	isd_iser_get_stats(&st);
#define ADD(f)                                                                                     \
	do {                                                                                       \
		if (n < max)                                                                       \
			out[n] = ISD_STAT(#f, st.f);                                               \
		n++;                                                                               \
	} while (0)
	ADD(conns);
	ADD(qps);
	ADD(cqs);
	ADD(mrs);
	ADD(conn_mrs);
	ADD(bufs);
	ADD(jobs);
	ADD(bytes_bounced);
	ADD(remote_invalidations);
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

	if (ic->state >= ISD_ISER_DRAINING)
		return;
	ic->discovery = p->session_type == ISD_SESSION_DISCOVERY;
	/* Linux ib_iser and libiscsi post 128-byte FFP receives whatever IRDSL says
	 * (iser-facts §4.5); discovery keeps the 8 KiB login buffer */
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
	if (ic->ch_on_reactor)
		isd_reactor_del_fd(ic->r, ic->ch->fd);
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
		isd_iser_g_conn_mrs--;
	if (ic->ctl_mr != NULL)
		isd_iser_g_conn_mrs--;
	isd_rdma_mr_dereg(ic->rx_mr);
	isd_rdma_mr_dereg(ic->ctl_mr);
	if (ic->rx != NULL) {
		for (uint32_t i = 0; i < ic->rx_count; i++)
			free(ic->rx[i]);
		free(ic->rx);
	}
	free(ic->rx_mem);
	free(ic->login_rx);
	free(ic->tx_all);
	free(ic->ctl_mem);
	if (ic->id != NULL)
		rdma_destroy_id(ic->id);
	if (ic->ch != NULL)
		rdma_destroy_event_channel(ic->ch);
	isd_rdma_dev_put(ic->dev);
	if (ic->jobs != 0)
		isd_log_warn("iser %s: %u transfer jobs leaked", ic->peer, ic->jobs);
	g_conns--;
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
	/*
	 * Linux ib_iser and libiscsi post 128-byte full-feature receive buffers
	 * whatever InitiatorRecvDataSegmentLength says (iser-facts §4.5), for the
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
};
