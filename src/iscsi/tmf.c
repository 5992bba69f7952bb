/*
 * Task management (RFC 7143 §11.5, §11.6, §4.2.3). Aborted tasks end without
 * a SCSI Response; the TMF Response waits until every aborted task whose
 * backing-store I/O was in flight has finished, and every RDMA transfer the
 * datamover had already posted for one has completed (isd_dm_fence_hold), so
 * the initiator may reuse the buffers once it sees the response.
 */
#include <stdlib.h>

#include "iscsi/core.h"
#include "util/log.h"
#include "util/monitor.h"

/* The end of a wait, on its home reactor. */
static void
tmf_wait_end(struct isd_tmf_wait *w)
{
	struct isd_conn *c = w->conn;
	struct isd_conn *o, *tmp;

	/* conn is NULL only for a fence no command of ours asked for (rsp NULL too) */
	if (w->rsp == NULL || c == NULL) {
		/* nothing to send here: the command that asked completes now */
	} else if (c->state == ISD_CONN_FFP) {
		/* StatSN is assigned now, when the response really leaves */
		isd_conn_fill_sn(c, w->rsp->bhs, true);
		isd_conn_send(c, w->rsp);
	} else {
		isd_pdu_free(w->rsp);
	}
	if (w->drained != NULL)
		w->drained(w->drained_cmd);
	if (w->close_node) {
		/* the node's connections may live on any reactor: each close is posted */
		isd_tgt_lock(c->tgt);
		TAILQ_FOREACH_SAFE(o, &c->tgt->conns, link, tmp) {
			if (o->node == w->node)     /* written under the lock at login */
				isd_conn_post_close(o);
		}
		isd_tgt_unlock(c->tgt);
	}
	free(w);
	if (c != NULL)
		isd_conn_put(c);
}

static void
tmf_wait_end_msg(void *arg)
{
	tmf_wait_end(arg);
}

static struct isd_tmf_wait *
tmf_wait_new(struct isd_conn *asker)
{
	struct isd_tmf_wait *w = calloc(1, sizeof(*w));

	if (w == NULL)
		return NULL;
	w->conn = asker;
	w->pending = 1;                 /* the asker's own hold, dropped when it has asked */
	w->home = asker != NULL ? asker->reactor : isd_reactor_current();
	if (asker != NULL)
		isd_conn_get(asker);
	return w;
}

void
isd_tmf_wait_done(struct isd_tmf_wait *w)
{
	if (__atomic_sub_fetch(&w->pending, 1, __ATOMIC_ACQ_REL) > 0)
		return;
	if (w->home != NULL && w->home != isd_reactor_current() && isd_monitor_threaded()) {
		w->msg.cb = tmf_wait_end_msg;
		w->msg.arg = w;
		isd_reactor_post(w->home, &w->msg);
		return;
	}
	tmf_wait_end(w);
}

void
isd_conn_fence_hold(struct isd_tmf_wait *fence)
{
	__atomic_add_fetch(&fence->pending, 1, __ATOMIC_RELAXED);
}

void
isd_conn_fence_release(struct isd_tmf_wait *fence)
{
	isd_tmf_wait_done(fence);
}

static void
abort_task(struct isd_task *t, struct isd_tmf_wait *w)
{
	isd_conn_remember_aborted(t->conn, t->itt);
	isd_task_abort(t, w);
}

/* Aborts the tasks of connection `c` on `lun` (all LUNs if all_luns). */
static void
abort_conn_tasks(struct isd_conn *c, bool all_luns, uint64_t lun, struct isd_tmf_wait *w)
{
	struct isd_task *t, *tmp;

	TAILQ_FOREACH_SAFE(t, &c->tasks, link, tmp) {
		if (t->aborted)
			continue;
		if (all_luns || t->lun == lun)
			abort_task(t, w);
	}
}

/*
 * Aborting another connection's task. Its connection may run on another
 * reactor, whose task list only that reactor touches: there the abort is
 * posted, with a reference on the connection (safe to take: the victim's
 * command is live, so its task, which holds the connection, is too) and a
 * hold on the wait; the task is looked up again by address and birth count,
 * and left alone if it ended meanwhile. On the calling reactor (always, with
 * one reactor) it is aborted at once, as before.
 */
struct remote_abort {
	struct isd_reactor_msg msg;
	struct isd_conn *conn;
	struct isd_task *task;
	uint64_t seq;
	struct isd_tmf_wait *w;
};

static void
remote_abort_run(void *arg)
{
	struct remote_abort *ra = arg;
	struct isd_conn *c = ra->conn;
	struct isd_task *t;

	TAILQ_FOREACH(t, &c->tasks, link) {
		if (t == ra->task && t->seq == ra->seq)
			break;
	}
	if (t != NULL && !t->aborted &&
	    (c->state == ISD_CONN_FFP || c->state == ISD_CONN_CLOSING)) {
		isd_log_dbg("iscsi", "conn %p: ITT 0x%x aborted by another nexus", (void *)c, t->itt);
		abort_task(t, ra->w);
	}
	if (ra->w != NULL)
		isd_tmf_wait_done(ra->w);
	isd_conn_put(c);
	free(ra);
}

/* Returns true when it aborted on the spot (the device's live list changed). */
static bool
abort_victim(struct isd_task *t, struct isd_tmf_wait *w)
{
	struct isd_conn *o = t->conn;
	struct remote_abort *ra;

	if (!isd_monitor_threaded() || o->reactor == isd_reactor_current()) {
		if (t->aborted || (o->state != ISD_CONN_FFP && o->state != ISD_CONN_CLOSING))
			return false;
		isd_log_dbg("iscsi", "conn %p: ITT 0x%x aborted by another nexus", (void *)o, t->itt);
		abort_task(t, w);
		return true;
	}
	ra = calloc(1, sizeof(*ra));
	if (ra == NULL) {
		isd_log_err("iscsi: out of memory aborting a task on another reactor; it runs on");
		return false;
	}
	ra->conn = o;
	ra->task = t;
	ra->seq = t->seq;
	ra->w = w;
	isd_conn_get(o);
	if (w != NULL)
		isd_conn_fence_hold(w);
	ra->msg.cb = remote_abort_run;
	ra->msg.arg = ra;
	isd_reactor_post(o->reactor, &ra->msg);
	return false;
}

/* LUN RESET, TARGET RESET: every task of the node's device on `lun` (or all). */
struct node_pick {
	bool all_luns;
	uint64_t lun;
	struct isd_tmf_wait *w;
};

static bool
node_pick_one(void *arg, struct isd_scsi_cmd *cmd)
{
	struct node_pick *p = arg;
	struct isd_task *t = cmd->cb_arg;

	if (t == NULL || (!p->all_luns && cmd->lun != p->lun))
		return false;
	return abort_victim(t, p->w);
}

/* Aborts the tasks of every session of `node` (LUN RESET, TARGET RESET). */
static void
abort_node_tasks(struct isd_conn *c, struct isd_tnode *node, bool all_luns, uint64_t lun,
		 struct isd_tmf_wait *w)
{
	struct node_pick p = {.all_luns = all_luns, .lun = lun, .w = w};

	/* the asker's own tasks first, those not set up included */
	abort_conn_tasks(c, all_luns, lun, w);
	if (node->dev != NULL)
		isd_scsi_dev_each_cmd(node->dev, node_pick_one, &p);
}

/*
 * The SCSI layer's task operations (scsi.h): it picks the victims among its
 * live commands, which are other nexuses' tasks of this target; the wait
 * reuses struct isd_tmf_wait, whose "response" is the completion of the
 * asking command, on that command's connection.
 */
static void *
scsi_abort_begin(void *ctx, struct isd_scsi_cmd *self, void (*drained)(struct isd_scsi_cmd *self))
{
	/* NULL: another gateway's reservation change (isd_scsi_fence_lu) */
	struct isd_task *me = self->cb_arg;
	struct isd_tmf_wait *w;

	(void)ctx;
	if (drained == NULL)
		return NULL;
	w = tmf_wait_new(me != NULL ? me->conn : NULL);
	if (w == NULL) {
		/* still abort, only the wait for in-flight exec is lost */
		isd_log_err("iscsi: out of memory waiting for aborted tasks");
		return NULL;
	}
	w->drained = drained;
	w->drained_cmd = self;
	return w;
}

static bool
scsi_abort_one(void *ctx, struct isd_scsi_cmd *victim, void *wait)
{
	struct isd_task *t = victim->cb_arg;

	(void)ctx;
	if (t == NULL)
		return false;
	return abort_victim(t, wait);
}

static bool
scsi_abort_end(void *ctx, void *wait)
{
	struct isd_tmf_wait *w = wait;

	(void)ctx;
	if (__atomic_load_n(&w->pending, __ATOMIC_ACQUIRE) == 1) {
		/* nothing holds it but us: no one else can take a hold now */
		if (w->conn != NULL)
			isd_conn_put(w->conn);
		free(w);
		return false;
	}
	isd_tmf_wait_done(w);
	return true;
}

void
isd_tmf_register_dev(struct isd_iscsi_tgt *t, struct isd_scsi_dev *dev)
{
	struct isd_scsi_task_ops ops = {
		.abort_begin = scsi_abort_begin,
		.abort_one = scsi_abort_one,
		.abort_end = scsi_abort_end,
		.ctx = t,
	};

	isd_scsi_dev_set_task_ops(dev, &ops);
}

static bool
lun_exists(struct isd_session *s, uint64_t lun)
{
	return s->node != NULL && s->node->dev != NULL && isd_scsi_lun_exists(s->node->dev, lun);
}

void
isd_tmf_rx(struct isd_conn *c, struct isd_pdu *pdu)
{
	struct isd_session *s = c->sess;
	uint8_t func = isd_bhs_flags(pdu->bhs) & 0x7f;
	uint64_t lun = isd_bhs_lun(pdu->bhs);
	uint32_t itt = isd_bhs_itt(pdu->bhs);
	uint32_t rtt = get_be32(pdu->bhs + 20);
	uint32_t cmdsn = isd_bhs_cmdsn(pdu->bhs);
	uint32_t refcmdsn = get_be32(pdu->bhs + 32);
	struct isd_tmf_wait *w;
	struct isd_task *t;
	uint8_t response = ISD_TMF_RSP_COMPLETE;

	isd_conn_release_pdu(c, pdu);
	w = tmf_wait_new(c);
	if (w != NULL)
		w->rsp = isd_pdu_alloc(0);
	if (w == NULL || w->rsp == NULL) {
		isd_log_err("iscsi: out of memory for a TMF response, closing connection");
		if (w != NULL) {
			isd_conn_put(c);
			free(w);
		}
		isd_conn_close(c);
		return;
	}
	w->node = s->node;

	switch (func) {
	case ISD_TMF_ABORT_TASK:
		if (!lun_exists(s, lun)) {
			response = ISD_TMF_RSP_NO_LUN;
			break;
		}
		t = isd_task_find(c, rtt);
		if (t != NULL && !t->aborted) {
			abort_task(t, w);
		} else if (t == NULL) {
			/*
			 * No running task. A command parked out of CmdSN order, or not
			 * received yet with its RefCmdSN inside the window, is aborted
			 * before it runs: "Function complete", and it is dropped on
			 * arrival (RFC 7143 §11.5.1 b; cmdsn.c). A RefCmdSN before
			 * ExpCmdSN: it ran and its response went out, so it "does not
			 * exist" (§11.5.1 c) and the initiator keeps that response.
			 */
			if (!isd_cmdsn_abort(c, rtt, refcmdsn, cmdsn))
				response = ISD_TMF_RSP_NO_TASK;
		}
		break;
	case ISD_TMF_ABORT_TASK_SET:
	case ISD_TMF_CLEAR_TASK_SET:
		if (!lun_exists(s, lun)) {
			response = ISD_TMF_RSP_NO_LUN;
			break;
		}
		abort_conn_tasks(c, false, lun, w);
		break;
	case ISD_TMF_CLEAR_ACA:
		response = ISD_TMF_RSP_NOT_SUPPORTED;
		break;
	case ISD_TMF_LUN_RESET:
		if (!lun_exists(s, lun)) {
			response = ISD_TMF_RSP_NO_LUN;
			break;
		}
		abort_node_tasks(c, s->node, false, lun, w);
		isd_scsi_lu_reset(s->node->dev, lun, &s->nexus);
		break;
	case ISD_TMF_TARGET_WARM_RESET:
	case ISD_TMF_TARGET_COLD_RESET:
		abort_node_tasks(c, s->node, true, 0, w);
		if (s->node->dev != NULL)
			isd_scsi_dev_reset(s->node->dev, &s->nexus);
		w->close_node = func == ISD_TMF_TARGET_COLD_RESET;
		break;
	case ISD_TMF_TASK_REASSIGN:
		response = ISD_TMF_RSP_NO_FAILOVER;     /* ERL 0 */
		break;
	default:
		response = ISD_TMF_RSP_REJECTED;
		break;
	}
	isd_log_dbg("iscsi", "conn %p: TMF function %u ITT 0x%x RTT 0x%x -> %u (%d waiting)",
		    (void *)c, func, itt, rtt, response,
		    __atomic_load_n(&w->pending, __ATOMIC_RELAXED) - 1);
	w->rsp->bhs[0] = ISD_OP_TMF_RSP;
	w->rsp->bhs[1] = ISD_BHS_F;
	w->rsp->bhs[2] = response;
	put_be32(w->rsp->bhs + 16, itt);
	isd_tmf_wait_done(w);
}
