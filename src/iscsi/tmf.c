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

void
isd_tmf_wait_done(struct isd_tmf_wait *w)
{
	struct isd_conn *c = w->conn;
	struct isd_conn *o, *tmp;

	if (--w->pending > 0)
		return;
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
		TAILQ_FOREACH_SAFE(o, &c->tgt->conns, link, tmp) {
			if (o->sess != NULL && o->sess->node == w->node)
				isd_conn_close(o);
		}
	}
	free(w);
	if (c != NULL)
		isd_conn_put(c);
}

void
isd_conn_fence_hold(struct isd_tmf_wait *fence)
{
	fence->pending++;
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

/* Aborts the tasks of every session of `node` (LUN RESET, TARGET RESET). */
static void
abort_node_tasks(struct isd_iscsi_tgt *tgt, struct isd_tnode *node, bool all_luns, uint64_t lun,
		 struct isd_tmf_wait *w)
{
	struct isd_conn *o, *tmp;

	TAILQ_FOREACH_SAFE(o, &tgt->conns, link, tmp) {
		if (o->sess == NULL || o->sess->node != node)
			continue;
		if (o->state != ISD_CONN_FFP && o->state != ISD_CONN_CLOSING)
			continue;
		abort_conn_tasks(o, all_luns, lun, w);
	}
}

/*
 * The SCSI layer's abort_tasks (scsi.h): every session of this target whose
 * node serves self's device is searched, since the nexuses to abort are other
 * initiators'. The wait reuses struct isd_tmf_wait: its "response" is the
 * completion of the asking command, on that command's connection.
 */
static bool
scsi_abort_tasks(void *ctx, struct isd_scsi_cmd *self,
		 bool (*match)(void *arg, struct isd_scsi_cmd *cmd), void *arg,
		 void (*drained)(struct isd_scsi_cmd *self))
{
	struct isd_iscsi_tgt *tgt = ctx;
	/* NULL: another gateway's reservation change (isd_scsi_fence_lu) */
	struct isd_task *me = self->cb_arg;
	struct isd_tmf_wait *w = NULL;
	struct isd_conn *o, *otmp;
	struct isd_task *t, *ttmp;

	if (drained != NULL) {
		w = calloc(1, sizeof(*w));
		if (w == NULL) {
			/* still abort, only the wait for in-flight exec is lost */
			isd_log_err("iscsi: out of memory waiting for aborted tasks");
		} else {
			w->conn = me != NULL ? me->conn : NULL;
			w->pending = 1;         /* our own hold, dropped below */
			w->drained = drained;
			w->drained_cmd = self;
			if (w->conn != NULL)
				isd_conn_get(w->conn);
		}
	}
	TAILQ_FOREACH_SAFE(o, &tgt->conns, link, otmp) {
		if (o->sess == NULL || o->sess->node == NULL || o->sess->node->dev != self->dev)
			continue;
		if (o->state != ISD_CONN_FFP && o->state != ISD_CONN_CLOSING)
			continue;
		TAILQ_FOREACH_SAFE(t, &o->tasks, link, ttmp) {
			if (t == me || t->aborted || !t->setup_ok || !match(arg, &t->cmd))
				continue;
			isd_log_dbg("iscsi", "conn %p: ITT 0x%x aborted by another nexus's command",
				    (void *)o, t->itt);
			abort_task(t, w);
		}
	}
	if (w == NULL)
		return false;
	if (w->pending == 1) {
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
		.abort_tasks = scsi_abort_tasks,
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
	w = calloc(1, sizeof(*w));
	if (w != NULL)
		w->rsp = isd_pdu_alloc(0);
	if (w == NULL || w->rsp == NULL) {
		isd_log_err("iscsi: out of memory for a TMF response, closing connection");
		free(w);
		isd_conn_close(c);
		return;
	}
	w->conn = c;
	w->pending = 1;                 /* our own hold, dropped below */
	w->node = s->node;
	isd_conn_get(c);

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
		abort_node_tasks(c->tgt, s->node, false, lun, w);
		isd_scsi_lu_reset(s->node->dev, lun, &s->nexus);
		break;
	case ISD_TMF_TARGET_WARM_RESET:
	case ISD_TMF_TARGET_COLD_RESET:
		abort_node_tasks(c->tgt, s->node, true, 0, w);
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
		    (void *)c, func, itt, rtt, response, w->pending - 1);
	w->rsp->bhs[0] = ISD_OP_TMF_RSP;
	w->rsp->bhs[1] = ISD_BHS_F;
	w->rsp->bhs[2] = response;
	put_be32(w->rsp->bhs + 16, itt);
	isd_tmf_wait_done(w);
}
