/*
 * The SCSI command path: SCSI Command PDUs become isd_scsi_cmd's, write data
 * arrives as immediate data, unsolicited Data-Out and then solicited data
 * through get_data; read data leaves through put_data with the SCSI Response
 * chained behind it (RFC 7143 §11.3, §11.4, §11.7; RFC 5047 §7).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "iscsi/core.h"
#include "util/iov.h"
#include "util/log.h"
#include "util/mem.h"

static uint32_t
min_u32(uint32_t a, uint32_t b)
{
	return a < b ? a : b;
}

/* An ITT's bucket: initiators number their tasks in the low bits, with a
 * generation above (Linux) or not; a multiplicative hash spreads both. */
static struct isd_task_list *
task_bucket(struct isd_conn *c, uint32_t itt)
{
	_Static_assert((ISD_ITT_BUCKETS & (ISD_ITT_BUCKETS - 1)) == 0, "a power of two");
	return &c->itt_hash[(itt * 0x9e3779b1u) >> (32 - __builtin_ctz(ISD_ITT_BUCKETS))];
}

struct isd_task *
isd_task_find(struct isd_conn *c, uint32_t itt)
{
	struct isd_task *t;

	TAILQ_FOREACH(t, task_bucket(c, itt), itt_link) {
		if (t->itt == itt)
			return t;
	}
	return NULL;
}

static struct isd_task *
task_alloc(struct isd_conn *c, bool immediate, uint32_t itt)
{
	size_t priv = (c->ops->task_priv_size + 15) & ~(size_t)15;
	struct isd_task *t = isd_mem_zalloc(sizeof(*t) + priv);

	if (t == NULL)
		return NULL;
	t->conn = c;
	t->itt = itt;
	t->seq = ++c->task_seq;
	t->dmt.priv = t->dm_priv;
	t->immediate = immediate;
	TAILQ_INSERT_TAIL(&c->tasks, t, link);
	TAILQ_INSERT_TAIL(task_bucket(c, itt), t, itt_link);
	if (immediate)
		c->sess->active_imm++;
	else
		c->sess->active_cmds++;
	isd_stat_inc(&isd_tgt_hot(c)->tasks);
	t->start_ns = isd_now_ns();
	isd_io_stats_start(&c->sess->io);
	isd_conn_get(c);
	return t;
}

/* The session's figures: a task that got no response to send counts as aborted. */
static void
task_count_done(struct isd_task *t)
{
	struct isd_session *s = t->conn->sess;
	enum isd_io_dir dir;
	uint64_t bytes, now, lat;
	int err;

	if (s == NULL)
		return;
	if (t->aborted || t->state != ISD_TASK_DONE) {
		dir = isd_scsi_cdb_io_dir(t->cmd.cdb, t->cmd.cdb_len);
		bytes = 0;
		err = ISD_IO_ERR_ABORTED;
	} else if (t->cmd.io_counted && t->cmd.io_start_ns == t->start_ns) {
		/* what the SCSI layer counted at completion, from the same arrival:
		 * its latency too, so no clock is read here */
		isd_io_stats_done(&s->io, (enum isd_io_dir)t->cmd.io_dir, t->cmd.io_bytes,
				  t->cmd.io_err, t->cmd.io_lat_ns);
		return;
	} else if (t->cmd.io_counted) {
		dir = (enum isd_io_dir)t->cmd.io_dir;
		bytes = t->cmd.io_bytes;
		err = t->cmd.io_err;
	} else {
		isd_scsi_cmd_io_result(&t->cmd, &dir, &bytes, &err);
	}
	now = isd_now_ns();
	lat = now > t->start_ns ? now - t->start_ns : 0;
	isd_io_stats_done(&s->io, dir, bytes, err, lat);
}

void
isd_task_free(struct isd_task *t)
{
	struct isd_conn *c = t->conn;
	struct isd_tmf_wait *w = t->tmf_wait;

	task_count_done(t);
	TAILQ_REMOVE(&c->tasks, t, link);
	TAILQ_REMOVE(task_bucket(c, t->itt), t, itt_link);
	if (t->immediate)
		c->sess->active_imm--;
	else
		c->sess->active_cmds--;
	if (t->setup_ok)
		isd_scsi_cmd_release(&t->cmd);
	if (t->held_pdu != NULL)
		isd_conn_release_pdu(c, t->held_pdu);
	isd_stat_dec(&isd_tgt_hot(c)->tasks);
	isd_mem_free(t);
	if (w != NULL)
		isd_tmf_wait_done(w);
	isd_conn_put(c);
}

bool
isd_task_abort(struct isd_task *t, struct isd_tmf_wait *w)
{
	struct isd_conn *c = t->conn;

	switch (t->state) {
	case ISD_TASK_EXEC:
		/* the backing store owns the buffers now: wait for exec to finish,
		 * and let it hand nothing more to the store */
		isd_scsi_cmd_cancel(&t->cmd);
		if (w != NULL && t->tmf_wait == NULL) {
			t->tmf_wait = w;
			isd_conn_fence_hold(w);
		}
		t->aborted = true;
		return true;
	case ISD_TASK_GET_DATA:
	case ISD_TASK_PUT_DATA:
		c->ops->task_cleanup(&c->dmc, &t->dmt, w);
		break;
	default:
		break;
	}
	if (t->setup_ok && !t->setup_done && t->state != ISD_TASK_PUT_DATA &&
	    t->state != ISD_TASK_DONE)
		isd_scsi_cmd_abort(&t->cmd);
	t->aborted = true;
	isd_task_free(t);
	return false;
}

/* SCSI Response (RFC 7143 §11.4) with residuals (§11.4.5) and sense (§11.4.7). */
static struct isd_pdu *
build_response(struct isd_task *t, uint32_t *data_len)
{
	struct isd_conn *c = t->conn;
	struct isd_scsi_cmd *cmd = &t->cmd;
	struct isd_pdu *rsp;
	uint32_t moved = 0, sent = 0, residual = 0, sense_len;
	uint8_t flags = ISD_BHS_F;

	/* RFC 7143 §11.4.5: overflow when the CDB asked for more than EDTL, else
	 * underflow when fewer than EDTL bytes moved */
	if (cmd->dir == ISD_SCSI_DIR_IN) {
		moved = min_u32(t->edtl, cmd->data_in_len);
		/* Data-In only for a command the initiator marked as a read */
		sent = (cmd->read_flag && cmd->iovcnt > 0) ? moved : 0;
	} else if (cmd->dir == ISD_SCSI_DIR_OUT) {
		moved = min_u32(t->edtl, cmd->xfer_len);
	}
	if (cmd->xfer_len > t->edtl && cmd->dir != ISD_SCSI_DIR_NONE) {
		flags |= ISD_RSP_O;
		residual = cmd->xfer_len - t->edtl;
	} else if (moved < t->edtl) {
		flags |= ISD_RSP_U;
		residual = t->edtl - moved;
	}
	sense_len = min_u32(cmd->sense_len, ISD_SCSI_SENSE_MAX);
	rsp = isd_conn_pdu_alloc(c, ISD_OP_SCSI_RSP, sense_len ? sense_len + 2 : 0);
	if (rsp == NULL)
		return NULL;
	rsp->bhs[1] = flags;
	rsp->bhs[2] = ISD_RSP_COMPLETED;
	rsp->bhs[3] = cmd->status;
	put_be32(rsp->bhs + 16, t->itt);
	isd_conn_fill_sn(c, rsp->bhs, true);
	put_be32(rsp->bhs + 36, 0);             /* ExpDataSN: the datamover counts Data-Ins */
	put_be32(rsp->bhs + 44, residual);
	if (sense_len > 0) {
		put_be16(rsp->data, (uint16_t)sense_len);
		memcpy(rsp->data + 2, cmd->sense, sense_len);
		rsp->data_len = sense_len + 2;
		isd_bhs_set_dsl(rsp->bhs, rsp->data_len);
	}
	*data_len = sent;
	return rsp;
}

static void
task_respond(struct isd_task *t)
{
	struct isd_conn *c = t->conn;
	struct isd_pdu *rsp;
	struct isd_xfer x;
	uint32_t len = 0;
	int rc;

	if (c->state != ISD_CONN_FFP) {
		isd_task_free(t);
		return;
	}
	rsp = build_response(t, &len);
	if (rsp == NULL) {
		isd_task_free(t);
		return;
	}
	if (len == 0) {
		t->state = ISD_TASK_DONE;
		isd_conn_send_response(c, t, rsp);
		isd_task_free(t);
		return;
	}
	memset(&x, 0, sizeof(x));
	x.iov = t->cmd.iov;
	x.iovcnt = t->cmd.iovcnt;
	x.offset = 0;
	x.length = len;
	x.rsp = rsp;
	t->state = ISD_TASK_PUT_DATA;
	rc = c->ops->put_data(&c->dmc, &t->dmt, &x);
	if (rc < 0) {
		isd_log_dbg("iscsi", "conn %p: put_data failed (%d)", (void *)c, rc);
		t->state = ISD_TASK_DONE;
		isd_conn_close(c);
		isd_task_free(t);
	}
}

static void
scsi_done(struct isd_scsi_cmd *cmd)
{
	struct isd_task *t = cmd->cb_arg;

	if (t->aborted) {
		t->state = ISD_TASK_DONE;
		isd_task_free(t);
		return;
	}
	task_respond(t);
}

static void
task_exec(struct isd_task *t)
{
	t->state = ISD_TASK_EXEC;
	/* done may run before exec returns; t must not be touched after this */
	isd_scsi_cmd_exec(&t->cmd);
}

/*
 * Some data-out failed its digest (RFC 7143 §7.8). At ErrorRecoveryLevel 0
 * there is no recovery R2T (within-command recovery needs ERL 1), so the task
 * ends with CHECK CONDITION, "protocol service CRC error" (§11.4.7.2: ABORTED
 * COMMAND, 0x47/0x05), once all its data has arrived; exec sees the status
 * and stores nothing.
 */
static void
task_exec_crc_error(struct isd_task *t)
{
	isd_scsi_set_sense(&t->cmd, ISD_SK_ABORTED_COMMAND, 0x47, 0x05);
	t->cmd.status = ISD_SAM_CHECK_CONDITION;
	task_exec(t);
}

/* All immediate and unsolicited data is in: solicit the rest, or run, or answer. */
static void
task_after_unsol(struct isd_task *t)
{
	struct isd_conn *c = t->conn;
	struct isd_xfer x;
	uint32_t want;
	int rc;

	if (t->setup_done) {
		task_respond(t);
		return;
	}
	if (t->data_bad) {
		/* nothing solicited: the initiator has sent all it meant to send */
		task_exec_crc_error(t);
		return;
	}
	if (t->cmd.dir == ISD_SCSI_DIR_OUT) {
		want = min_u32(t->edtl, t->cmd.xfer_len);
		if (t->unsol_got < want) {
			memset(&x, 0, sizeof(x));
			x.iov = t->cmd.iov;
			x.iovcnt = t->cmd.iovcnt;
			x.offset = t->unsol_got;
			x.length = want - t->unsol_got;
			t->state = ISD_TASK_GET_DATA;
			rc = c->ops->get_data(&c->dmc, &t->dmt, &x);
			if (rc < 0) {
				isd_log_dbg("iscsi", "conn %p: get_data failed (%d)", (void *)c,
					    rc);
				t->state = ISD_TASK_NEW;
				isd_conn_close(c);
				isd_task_free(t);
			}
			return;
		}
	}
	task_exec(t);
}

void
isd_conn_data_completion_notify(struct isd_dm_conn *dc, struct isd_dm_task *dt, int status)
{
	struct isd_conn *c = isd_conn_of(dc);
	struct isd_task *t = isd_task_of(dt);

	isd_conn_get(c);
	if (t->state == ISD_TASK_GET_DATA) {
		if (status == -EILSEQ && c->state == ISD_CONN_FFP) {
			task_exec_crc_error(t);
		} else if (status < 0 || c->state != ISD_CONN_FFP) {
			t->state = ISD_TASK_NEW;
			if (status < 0)
				isd_conn_close(c);
			isd_task_free(t);
		} else {
			task_exec(t);
		}
	} else if (t->state == ISD_TASK_PUT_DATA) {
		t->state = ISD_TASK_DONE;
		if (status < 0)
			isd_conn_close(c);
		isd_task_free(t);
	} else {
		isd_log_err("iscsi: data completion for a task in state %d ignored", t->state);
	}
	isd_conn_put(c);
}

static void
copy_in(struct isd_task *t, uint32_t offset, const uint8_t *data, uint32_t len)
{
	struct isd_scsi_cmd *cmd = &t->cmd;
	uint32_t n;

	if (t->setup_done || cmd->dir != ISD_SCSI_DIR_OUT || offset >= cmd->xfer_len)
		return;         /* absorbed and discarded */
	n = min_u32(len, cmd->xfer_len - offset);
	n = (uint32_t)isd_iov_copy_in(cmd->iov, cmd->iovcnt, offset, data, n);
	if (cmd->data_out_direct)
		isd_conn_count_placed(t->conn, n);
	else
		isd_conn_count_copy(&t->conn->dmc, n);
}

static void
reject_cmd(struct isd_conn *c, struct isd_pdu *pdu, uint8_t reason, const char *why)
{
	isd_log_dbg("iscsi", "conn %p: SCSI Command ITT 0x%x rejected: %s", (void *)c,
		    isd_bhs_itt(pdu->bhs), why);
	isd_reject_send(c, pdu->bhs, reason);
	isd_conn_release_pdu(c, pdu);
}

void
isd_task_scsi_cmd_rx(struct isd_conn *c, struct isd_pdu *pdu)
{
	const uint8_t *bhs = pdu->bhs;
	struct isd_session *s = c->sess;
	const struct isd_params *p = &c->params;
	struct isd_ahs_info ahs = { 0 };
	struct isd_task *t;
	uint32_t itt = isd_bhs_itt(bhs);
	uint8_t flags = isd_bhs_flags(bhs);
	bool rd = flags & ISD_CMD_R, wr = flags & ISD_CMD_W, fin = flags & ISD_BHS_F;
	bool imm = isd_bhs_immediate(bhs);
	uint32_t edtl = get_be32(bhs + 20);
	uint32_t dsl = pdu->data_len;
	uint32_t unsol_limit = min_u32(p->first_burst_length, edtl);
	int rc;

	const char *why = NULL;
	uint8_t reason = ISD_REJECT_PROTOCOL_ERROR;

	if (itt == ISD_RSVD_TAG) {
		why = "reserved ITT";
		reason = ISD_REJECT_INVALID_PDU_FIELD;
	} else if (isd_task_find(c, itt) != NULL) {
		why = "ITT in use";
		reason = ISD_REJECT_TASK_IN_PROGRESS;
	} else if (dsl > 0 &&
		   (!wr || !p->immediate_data || dsl > edtl || dsl > p->first_burst_length)) {
		why = "bad immediate data";
	} else if (!fin && (!wr || p->initial_r2t || dsl >= unsol_limit)) {
		/* F=0 announces unsolicited Data-Out: only for writes, only with
		 * InitialR2T=No, and only if FirstBurstLength leaves room */
		why = "bad F bit";
	} else if (isd_ahs_parse(pdu->ahs, pdu->ahs_len, &ahs) < 0 ||
		   ahs.ext_cdb_len > sizeof(((struct isd_task *)0)->cdb) - 16) {
		why = "bad AHS";
		reason = ISD_REJECT_INVALID_PDU_FIELD;
	} else if (imm && s->active_imm >= ISD_MAX_IMMEDIATE_TASKS) {
		why = "too many immediate commands";
		reason = ISD_REJECT_IMM_CMD_REJECT;
	}
	if (why != NULL) {
		reject_cmd(c, pdu, reason, why);
		return;
	}

	t = task_alloc(c, imm, itt);
	if (t == NULL) {
		isd_log_err("iscsi: out of memory for a task, closing connection");
		isd_conn_release_pdu(c, pdu);
		isd_conn_close(c);
		return;
	}
	t->cmdsn = isd_bhs_cmdsn(bhs);
	t->lun = isd_bhs_lun(bhs);
	t->dmt.itt = itt;
	t->dmt.lun = t->lun;
	t->edtl = edtl;
	t->unsol_limit = fin ? dsl : unsol_limit;
	memcpy(t->cdb, bhs + 32, 16);
	if (ahs.ext_cdb != NULL && ahs.ext_cdb_len > 0)
		memcpy(t->cdb + 16, ahs.ext_cdb, ahs.ext_cdb_len);

	t->cmd.dev = s->node->dev;
	t->cmd.nexus = &s->nexus;
	t->cmd.lun = t->lun;
	t->cmd.cdb = t->cdb;
	t->cmd.cdb_len = 16 + (ahs.ext_cdb ? ahs.ext_cdb_len : 0);
	t->cmd.edtl = edtl;
	t->cmd.read_flag = rd;
	t->cmd.write_flag = wr;
	t->cmd.task_attr = flags & ISD_CMD_ATTR_MASK;
	t->cmd.tag = itt;
	/* buffers are allocated and released for this task: the datamover learns
	 * whose buffer it releases (buf_free) */
	t->buf_ops = c->buf_ops;
	t->buf_ops.ctx = t;
	t->cmd.buf_ops = c->buf_ops.alloc != NULL ? &t->buf_ops : NULL;
	/*
	 * Only iSER may receive into a RAM LU's own blocks: it fetches the data by
	 * RDMA Reads it posts itself. TCP Data-Out comes PDU by PDU at the peer's
	 * pace, and an abort, a dropped connection or a PDU that fails its checks
	 * shows only after earlier bytes are in: staged, they never reach the LU
	 * (data digests, TCP only, are such checks).
	 */
	t->cmd.data_out_staged = !(c->ops->caps & ISD_DM_CAP_RDMA);
	t->cmd.done = scsi_done;
	t->cmd.cb_arg = t;
	if (c->ops->task_init != NULL)
		c->ops->task_init(&c->dmc, &t->dmt, pdu);

	if (rd && wr) {
		/* bidirectional commands are not supported */
		t->cmd.status = ISD_SAM_CHECK_CONDITION;
		isd_scsi_set_sense(&t->cmd, ISD_SK_ILLEGAL_REQUEST, 0x24, 0x00);
		t->cmd.status = ISD_SAM_CHECK_CONDITION;
		t->setup_done = true;
	} else {
		if (wr && dsl > 0) {
			/* immediate data may serve as the data-out buffer itself */
			t->cmd.data_out_preset = pdu->data;
			t->cmd.data_out_preset_len = dsl;
		}
		/* the LUN's latency starts at the PDU's arrival too: one clock read */
		t->cmd.arrival_ns = t->start_ns;
		rc = isd_scsi_cmd_setup(&t->cmd);
		t->setup_ok = true;
		if (rc < 0) {
			isd_log_err("iscsi: SCSI setup failed (%d), closing connection", rc);
			isd_conn_release_pdu(c, pdu);
			isd_conn_close(c);
			isd_task_free(t);
			return;
		}
		t->setup_done = rc == ISD_SCSI_SETUP_DONE;
	}
	t->unsol_got = dsl;
	if (t->cmd.data_out_preset_used && !t->setup_done) {
		/* zero copy: the command keeps its PDU (and so the receive buffer) until freed */
		t->held_pdu = pdu;
	} else {
		if (dsl > 0)
			copy_in(t, 0, pdu->data, dsl);
		isd_conn_release_pdu(c, pdu);
	}
	if (!fin) {
		t->state = ISD_TASK_UNSOL;
		t->unsol_datasn = 0;
		return;
	}
	task_after_unsol(t);
}

static bool
recently_aborted(const struct isd_conn *c, uint32_t itt)
{
	for (int i = 0; i < ISD_ABORTED_RING; i++) {
		if (c->aborted_itt[i] == itt)
			return true;
	}
	return false;
}

/* Unsolicited Data-Out (TTT 0xffffffff); solicited ones belong to the datamover. */
void
isd_task_data_out_rx(struct isd_conn *c, struct isd_pdu *pdu)
{
	const uint8_t *bhs = pdu->bhs;
	uint32_t itt = isd_bhs_itt(bhs);
	uint32_t ttt = isd_bhs_ttt(bhs);
	uint32_t datasn = get_be32(bhs + 36);
	uint32_t offset = get_be32(bhs + 40);
	uint32_t len = pdu->data_len;
	bool fin = isd_bhs_flags(bhs) & ISD_BHS_F;
	struct isd_task *t;
	uint8_t reason = ISD_REJECT_PROTOCOL_ERROR;

	t = isd_task_find(c, itt);
	if (t == NULL) {
		if (ttt == ISD_RSVD_TAG && isd_cmdsn_hold_data_out(c, pdu))
			return;
		if (itt != ISD_RSVD_TAG && recently_aborted(c, itt)) {
			/* RFC 7143 §4.2.3.3: data for an aborted task is discarded */
			isd_conn_release_pdu(c, pdu);
			return;
		}
		reason = ISD_REJECT_INVALID_PDU_FIELD;
		goto reject;
	}
	if (ttt != ISD_RSVD_TAG) {
		/* we never issued a TTT: the datamover owns solicited data */
		reason = ISD_REJECT_INVALID_PDU_FIELD;
		goto reject;
	}
	if (t->state != ISD_TASK_UNSOL || datasn != t->unsol_datasn || offset != t->unsol_got ||
	    len > t->unsol_limit - offset)
		goto reject;
	copy_in(t, offset, pdu->data, len);
	t->unsol_got += len;
	t->unsol_datasn++;
	isd_conn_release_pdu(c, pdu);
	if (fin)
		task_after_unsol(t);
	return;

reject:
	isd_log_dbg("iscsi", "conn %p: Data-Out ITT 0x%x TTT 0x%x DataSN %u offset %u rejected",
		    (void *)c, itt, ttt, datasn, offset);
	isd_reject_send(c, bhs, reason);
	isd_conn_release_pdu(c, pdu);
}

/*
 * An unsolicited Data-Out failed its data digest and was rejected (the
 * datamover dropped its data). Its header is in order, so the burst goes on
 * past it as if it had come, and the task is marked never to run: it ends
 * with CHECK CONDITION once the burst is over (task_after_unsol).
 */
void
isd_task_data_out_digest_error(struct isd_conn *c, const uint8_t *bhs)
{
	struct isd_task *t = isd_task_find(c, isd_bhs_itt(bhs));
	uint32_t offset = get_be32(bhs + 40);
	uint32_t len = isd_bhs_dsl(bhs);

	if (c->state == ISD_CONN_FFP && t == NULL && isd_bhs_ttt(bhs) == ISD_RSVD_TAG &&
	    isd_cmdsn_find_held(c->sess, isd_bhs_itt(bhs)) != NULL) {
		/*
		 * Its command waits for a CmdSN gap to fill, with its data parked: the
		 * burst cannot go on past a PDU that is not there, and ERL 0 knows
		 * no recovery but the session's. The parked command goes unrun.
		 */
		isd_log_warn("iscsi: data digest error on unsolicited data of a parked command, "
			     "closing the connection");
		isd_conn_close(c);
		return;
	}
	if (c->state != ISD_CONN_FFP || t == NULL || isd_bhs_ttt(bhs) != ISD_RSVD_TAG ||
	    t->state != ISD_TASK_UNSOL || get_be32(bhs + 36) != t->unsol_datasn ||
	    offset != t->unsol_got || len > t->unsol_limit - offset)
		return;         /* the Reject is all: nothing of this task is waiting for it */
	t->data_bad = true;
	t->unsol_got += len;
	t->unsol_datasn++;
	if (isd_bhs_flags(bhs) & ISD_BHS_F)
		task_after_unsol(t);
}
