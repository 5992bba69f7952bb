/*
 * SCSI commands over the session (RFC 7143 §11.3-§11.8): ITT slots, the CmdSN
 * window, immediate and unsolicited data per ImmediateData, InitialR2T and
 * FirstBurstLength, R2T-driven Data-Out sequences (several outstanding per
 * command, up to MaxOutstandingR2T), Data-In placement and status (with or
 * without a separate SCSI Response), and failure or retry when the
 * connection goes away.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "initiator/init_int.h"
#include "util/endian.h"
#include "util/iov.h"

int
isd_init_slots_alloc(struct isd_ictx *c)
{
	uint32_t i, n = c->queue_depth;

	c->slots = calloc(n, sizeof(*c->slots));
	c->free_stack = calloc(n, sizeof(*c->free_stack));
	if (c->slots == NULL || c->free_stack == NULL) {
		free(c->slots);
		free(c->free_stack);
		c->slots = NULL;
		c->free_stack = NULL;
		return -ENOMEM;
	}
	c->nslots = n;
	for (i = 0; i < n; i++) {
		c->slots[i].idx = i;
		c->free_stack[i] = n - 1 - i;
	}
	c->nfree = n;
	if (isd_init_x_slots_bind(c) < 0) {
		isd_init_slots_free(c);
		return -ENOMEM;
	}
	return 0;
}

void
isd_init_slots_free(struct isd_ictx *c)
{
	isd_init_x_slots_unbind(c);
	free(c->slots);
	free(c->free_stack);
	c->slots = NULL;
	c->free_stack = NULL;
	c->nslots = 0;
	c->nfree = 0;
}

struct isd_itask *
isd_init_task_by_itt(struct isd_ictx *c, uint32_t itt)
{
	uint32_t idx = itt & 0xffff;
	struct isd_itask *it;

	if (itt & 0x80000000u || idx >= c->nslots)
		return NULL;
	it = &c->slots[idx];
	if ((it->state != ISD_IT_WAITING && it->state != ISD_IT_SENT) || it->itt != itt)
		return NULL;
	return it;
}

static void
reset_results(struct iserd_task *t)
{
	t->status = 0;
	t->response = 0;
	t->underflow = false;
	t->overflow = false;
	t->residual = 0;
	t->sense_len = 0;
	t->sense_valid = false;
	memset(&t->sense_info, 0, sizeof(t->sense_info));
}

int
iserd_task_submit(struct iserd_context *pub, struct iserd_task *t, iserd_cb cb, void *cb_arg)
{
	struct isd_ictx *c = &pub->c;
	struct isd_itask *it;
	bool queue_ok;

	if (t == NULL || t->cdb_len < 6 || t->cdb_len > 16 || t->dir > ISERD_DIR_WRITE ||
	    (t->xfer_len > 0 && (t->dir == ISERD_DIR_NONE || t->iov == NULL ||
				 isd_iov_len(t->iov, t->iovcnt) < t->xfer_len))) {
		isd_init_set_error(c, "invalid task (CDB length, direction or buffer)");
		return -EINVAL;
	}
	queue_ok = c->state == ISD_ICTX_FFP ||
		   (c->reconnect != ISERD_RECONNECT_OFF && c->stype == ISERD_SESSION_NORMAL &&
		    c->ever_logged_in &&
		    (c->state == ISD_ICTX_RECONNECT_WAIT || c->state == ISD_ICTX_CONNECTING ||
		     c->state == ISD_ICTX_LOGIN));
	if (!queue_ok || c->stype != ISERD_SESSION_NORMAL || c->slots == NULL) {
		if (c->state == ISD_ICTX_FAILED)
			return -ECONNRESET;
		isd_init_set_error(c, "not logged in to a target");
		return -ENOTCONN;
	}
	if (c->nfree == 0) {
		isd_init_set_error(c, "queue depth (%u) reached", c->nslots);
		return -EAGAIN;
	}
	it = &c->slots[c->free_stack[--c->nfree]];
	it->gen = (it->gen + 1) & 0x7fff;
	it->itt = (it->gen << 16) | it->idx;
	it->t = t;
	it->cb = cb;
	it->cb_arg = cb_arg;
	it->lun_field = isd_init_lun_field(t->lun);
	it->datain_sn = 0;
	it->datain_bytes = 0;
	t->priv = it;
	t->retries = 0;
	reset_results(t);
	it->state = ISD_IT_WAITING;
	TAILQ_INSERT_TAIL(&c->waiting, it, link);
	isd_init_kick(c);
	return 0;
}

void
isd_init_kick(struct isd_ictx *c)
{
	const struct isd_params *p = &c->params;
	struct isd_itask *it;

	while (c->state == ISD_ICTX_FFP && (it = TAILQ_FIRST(&c->waiting)) != NULL &&
	       sn_le(c->cmdsn, c->max_cmdsn)) {
		struct iserd_task *t = it->t;
		uint32_t unsol_end = 0;

		TAILQ_REMOVE(&c->waiting, it, link);
		it->cmdsn = c->cmdsn++;
		it->state = ISD_IT_SENT;
		it->datain_sn = 0;
		it->datain_bytes = 0;
		it->imm_len = 0;
		TAILQ_INSERT_TAIL(&c->sent, it, link);
		if (t->dir == ISERD_DIR_WRITE && t->xfer_len > 0) {
			uint32_t fb = p->first_burst_length < t->xfer_len ? p->first_burst_length
									  : t->xfer_len;

			if (p->immediate_data)
				it->imm_len = fb < p->max_xmit_dsl ? fb : p->max_xmit_dsl;
			unsol_end = p->initial_r2t ? it->imm_len : fb;
		}
		isd_init_x_send_cmd(c, it, unsol_end);
	}
}

void
isd_init_cmd_bhs(struct isd_ictx *c, struct isd_itask *it, bool unsol_follows, uint8_t *bhs)
{
	struct iserd_task *t = it->t;
	uint8_t flags = 0x01; /* SIMPLE task attribute */

	memset(bhs, 0, ISD_BHS_LEN);
	bhs[0] = ISD_OP_SCSI_CMD;
	/* F: no unsolicited Data-Out follows (RFC 7143 §11.3.1). */
	if (!unsol_follows)
		flags |= ISD_BHS_F;
	if (t->dir == ISERD_DIR_READ)
		flags |= ISD_CMD_R;
	else if (t->dir == ISERD_DIR_WRITE)
		flags |= ISD_CMD_W;
	bhs[1] = flags;
	put_be64(bhs + 8, it->lun_field);
	put_be32(bhs + 16, it->itt);
	put_be32(bhs + 20, t->xfer_len);
	put_be32(bhs + 24, it->cmdsn);
	/* acknowledges the statuses seen so far; istgt drops a connection whose
	 * ExpStatSN falls a window behind its StatSN (RFC 7143 §11.3.8) */
	put_be32(bhs + 28, c->exp_statsn);
	memcpy(bhs + 32, t->cdb, t->cdb_len);
}

void
isd_init_task_done(struct isd_ictx *c, struct isd_itask *it, int rc)
{
	struct iserd_task *t = it->t;
	iserd_cb cb = it->cb;
	void *arg = it->cb_arg;

	if (it->state == ISD_IT_SENT || it->state == ISD_IT_DOOMED)
		isd_init_x_detach(c, it);
	if (it->state == ISD_IT_WAITING)
		TAILQ_REMOVE(&c->waiting, it, link);
	else if (it->state == ISD_IT_SENT)
		TAILQ_REMOVE(&c->sent, it, link);
	it->t = NULL;
	it->state = ISD_IT_FREE;
	c->free_stack[c->nfree++] = it->idx;
	t->priv = NULL;
	if (cb != NULL)
		cb(isd_init_pub(c), rc, t, arg);
}

void
isd_init_tasks_conn_lost(struct isd_ictx *c, int rc, bool retry)
{
	struct isd_itask *it;

	if (retry) {
		/* Re-send in the original order: the sent ones go in front of the waiting. */
		while ((it = TAILQ_LAST(&c->sent, isd_itask_list)) != NULL) {
			TAILQ_REMOVE(&c->sent, it, link);
			it->state = ISD_IT_WAITING;
			it->t->retries++;
			reset_results(it->t);
			TAILQ_INSERT_HEAD(&c->waiting, it, link);
		}
		return;
	}
	/* Fail only what is outstanding now: a callback may submit new commands,
	 * which must wait for the next login instead of failing in this sweep. */
	{
		struct isd_itask_list doomed = TAILQ_HEAD_INITIALIZER(doomed);

		TAILQ_CONCAT(&doomed, &c->sent, link);
		TAILQ_CONCAT(&doomed, &c->waiting, link);
		TAILQ_FOREACH(it, &doomed, link)
			it->state = ISD_IT_DOOMED;
		while ((it = TAILQ_FIRST(&doomed)) != NULL) {
			TAILQ_REMOVE(&doomed, it, link);
			isd_init_task_done(c, it, rc);
		}
	}
}

static void
take_sense(struct iserd_task *t, const uint8_t *data, uint32_t len)
{
	uint32_t sl;

	if (len < 2)
		return;
	sl = get_be16(data);
	if (sl > len - 2)
		sl = len - 2;
	if (sl > sizeof(t->sense))
		sl = sizeof(t->sense);
	memcpy(t->sense, data + 2, sl);
	t->sense_len = sl;
	t->sense_valid = sl > 0 && iserd_sense_decode(t->sense, sl, &t->sense_info) == 0;
}

int
isd_init_rx_scsi_rsp(struct isd_ictx *c, struct isd_pdu *pdu)
{
	const uint8_t *bhs = pdu->bhs;
	struct isd_itask *it;
	struct iserd_task *t;

	isd_init_statsn_update(c, bhs);
	it = isd_init_task_by_itt(c, isd_bhs_itt(bhs));
	if (it == NULL || it->state != ISD_IT_SENT) {
		isd_init_log(c, ISERD_LOG_DEBUG, "SCSI Response for unknown ITT 0x%08x",
			     isd_bhs_itt(bhs));
		isd_init_kick(c);
		return 0;
	}
	t = it->t;
	t->response = bhs[2];
	t->status = bhs[3];
	t->underflow = (bhs[1] & ISD_RSP_U) != 0;
	t->overflow = (bhs[1] & ISD_RSP_O) != 0;
	t->residual = (t->underflow || t->overflow) ? get_be32(bhs + 44) : 0;
	if (pdu->data_len > 0)
		take_sense(t, pdu->data, pdu->data_len);
	if (c->reconnect == ISERD_RECONNECT_RETRY && c->reconnects > 0 &&
	    t->status == ISERD_STATUS_CHECK_CONDITION && t->sense_valid &&
	    t->sense_info.key == 0x6 && t->sense_info.asc == 0x29 && t->retries < 8) {
		/* The POWER ON / RESET / I_T NEXUS LOSS unit attention that a
		 * reconnect we made transparently brings: send the command again. */
		isd_init_x_detach(c, it);
		TAILQ_REMOVE(&c->sent, it, link);
		it->state = ISD_IT_WAITING;
		t->retries++;
		reset_results(t);
		TAILQ_INSERT_HEAD(&c->waiting, it, link);
		isd_init_kick(c);
		return 0;
	}
	isd_init_task_done(c, it, 0);
	isd_init_kick(c);
	return 0;
}

int
isd_init_rx_r2t(struct isd_ictx *c, struct isd_pdu *pdu)
{
	const uint8_t *bhs = pdu->bhs;
	struct isd_itask *it = isd_init_task_by_itt(c, isd_bhs_itt(bhs));
	uint32_t off = get_be32(bhs + 40), len = get_be32(bhs + 44);

	if (it == NULL || it->state != ISD_IT_SENT) {
		/* A command we already completed (aborted): nothing to send. */
		isd_init_log(c, ISERD_LOG_DEBUG, "R2T for unknown ITT 0x%08x", isd_bhs_itt(bhs));
		return 0;
	}
	if (it->t->dir != ISERD_DIR_WRITE || len == 0 || off > it->t->xfer_len ||
	    len > it->t->xfer_len - off) {
		isd_init_set_error(c,
				   "target sent an R2T outside the command's data "
				   "(offset %u, length %u, expected %u bytes)",
				   off, len, it->t->xfer_len);
		return -EPROTO;
	}
	return isd_init_x_r2t(c, it, isd_bhs_ttt(bhs), off, len);
}

int
isd_init_rx_datain_hdr(struct isd_ictx *c, const uint8_t *bhs, struct isd_itask **out,
		       uint32_t *offset)
{
	struct isd_itask *it = isd_init_task_by_itt(c, isd_bhs_itt(bhs));
	uint32_t off = get_be32(bhs + 40), len = isd_bhs_dsl(bhs), sn = get_be32(bhs + 36);

	*out = NULL;
	*offset = 0;
	if (it == NULL || it->state != ISD_IT_SENT) {
		isd_init_log(c, ISERD_LOG_DEBUG, "Data-In for unknown ITT 0x%08x; discarded",
			     isd_bhs_itt(bhs));
		return 0;
	}
	if (len > 0 && (it->t->dir != ISERD_DIR_READ || off > it->t->xfer_len ||
			len > it->t->xfer_len - off)) {
		isd_init_set_error(c,
				   "target sent Data-In outside the command's buffer "
				   "(offset %u, length %u, expected %u bytes)",
				   off, len, it->t->xfer_len);
		return -EPROTO;
	}
	if (len > c->params.max_recv_dsl) {
		isd_init_set_error(c,
				   "target sent Data-In of %u bytes, above our "
				   "MaxRecvDataSegmentLength %u",
				   len, c->params.max_recv_dsl);
		return -EPROTO;
	}
	if (sn != it->datain_sn) {
		isd_init_set_error(c, "Data-In DataSN %u, expected %u (ERL 0)", sn, it->datain_sn);
		return -EPROTO;
	}
	it->datain_sn++;
	*out = it;
	*offset = off;
	return 0;
}

int
isd_init_rx_datain_done(struct isd_ictx *c, struct isd_itask *it, const uint8_t *bhs)
{
	struct iserd_task *t;

	isd_init_sn_update(c, bhs);
	if (!(bhs[1] & ISD_DATAIN_S)) {
		if (it != NULL)
			it->datain_bytes += isd_bhs_dsl(bhs);
		return 0;
	}
	isd_init_statsn_update(c, bhs);
	if (it == NULL) {
		isd_init_kick(c);
		return 0;
	}
	if (!(bhs[1] & ISD_BHS_F)) {
		isd_init_set_error(c, "Data-In with status but without the F bit");
		return -EPROTO;
	}
	t = it->t;
	it->datain_bytes += isd_bhs_dsl(bhs);
	t->response = 0;
	t->status = bhs[3];
	t->underflow = (bhs[1] & ISD_DATAIN_U) != 0;
	t->overflow = (bhs[1] & ISD_DATAIN_O) != 0;
	t->residual = (t->underflow || t->overflow) ? get_be32(bhs + 44) : 0;
	isd_init_task_done(c, it, 0);
	isd_init_kick(c);
	return 0;
}
