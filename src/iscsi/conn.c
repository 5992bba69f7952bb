/*
 * Connection lifecycle: creation by a datamover, reference counting, the
 * Datamover Interface upcalls, PDU dispatch in full feature phase, teardown.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "iscsi/core.h"
#include "util/log.h"
#include "util/mem.h"
#include "util/monitor.h"

static size_t
align16(size_t n)
{
	return (n + 15) & ~(size_t)15;
}

/*
 * Command data buffers (SCSI layer allocations) go through here, so that one
 * session's buffers stay within max_session_buffer_bytes: past it the
 * allocation fails and the SCSI layer answers BUSY, which initiators retry.
 * Memory comes from the datamover when it offers it (iSER: registered), else
 * from malloc.
 */
static bool
dm_bufs(const struct isd_conn *c)
{
	return c->ops->buf_alloc != NULL && c->ops->buf_free != NULL;
}

static void *
isd_conn_buf_alloc(void *ctx, uint32_t len, uint32_t align)
{
	struct isd_task *t = ctx;
	struct isd_conn *c = t->conn;
	uint32_t max = c->tgt->cfg.max_session_buffer_bytes;
	void *p;

	if (max > 0 && c->buf_bytes + len > max) {
		isd_stat_inc(&c->tgt->stats.refused.buffers);
		return NULL;
	}
	/* the datamover's buffers (iSER's registered pool) are page-aligned */
	p = dm_bufs(c) ? c->ops->buf_alloc(&c->dmc, len) : isd_mem_alloc_aligned(len, align);
	if (p != NULL)
		c->buf_bytes += len;
	return p;
}

static void
isd_conn_buf_free(void *ctx, void *buf, uint32_t len)
{
	struct isd_task *t = ctx;
	struct isd_conn *c = t->conn;

	c->buf_bytes -= len;
	if (dm_bufs(c))
		c->ops->buf_free(&c->dmc, &t->dmt, buf, len);
	else
		isd_mem_free(buf);
}

static bool
over(uint64_t n, uint32_t limit)
{
	return limit > 0 && n >= limit;
}

static uint64_t
conns_from(const struct isd_iscsi_tgt *t, const char *addr)
{
	const struct isd_conn *c;
	uint64_t n = 0;

	TAILQ_FOREACH(c, &t->conns, link) {
		if (strcmp(c->info.peer_addr, addr) == 0)
			n++;
	}
	return n;
}

/*
 * The connection limits, checked before anything is allocated so that a flood
 * costs the datamover one accept and one close. Connections count until they
 * are freed (a closing one still holds its memory). -EAGAIN when refused.
 * Under the table lock, together with the insertion that follows, so that
 * connections accepted at once on several reactors cannot all pass the check.
 */
static int
conn_admit(struct isd_iscsi_tgt *t, const struct isd_conn_info *info)
{
	const struct isd_iscsi_cfg *cfg = &t->cfg;
	uint64_t *counter = NULL;

	if (over(isd_stat_load(&t->stats.connections), cfg->max_connections))
		counter = &t->stats.refused.connections;
	else if (info != NULL && cfg->max_connections_per_address > 0 &&
		 over(conns_from(t, info->peer_addr), cfg->max_connections_per_address))
		counter = &t->stats.refused.per_address;
	else if (over(isd_stat_load(&t->stats.login_connections), cfg->max_login_connections))
		counter = &t->stats.refused.login_connections;
	if (counter == NULL)
		return 0;
	isd_stat_inc(counter);
	isd_log_dbg("iscsi", "connection from %s refused: limit reached",
		    info != NULL ? info->peer_addr : "?");
	return -EAGAIN;
}

int
isd_conn_create(struct isd_iscsi_tgt *t, const struct isd_dm_ops *ops,
		const struct isd_conn_info *info, struct isd_reactor *r, struct isd_dm_conn **out)
{
	struct isd_conn *c;
	int rc;

	if (t == NULL || ops == NULL || out == NULL)
		return -EINVAL;
	isd_tgt_lock(t);
	if (t->shutting_down) {
		isd_tgt_unlock(t);
		return -ESHUTDOWN;
	}
	rc = conn_admit(t, info);
	if (rc < 0) {
		isd_tgt_unlock(t);
		return rc;
	}
	/* allocated under the lock: admitted and counted in one step (login path) */
	c = calloc(1, sizeof(*c) + align16(ops->conn_priv_size));
	if (c == NULL) {
		isd_tgt_unlock(t);
		return -ENOMEM;
	}
	c->tgt = t;
	c->ops = ops;
	c->buf_ops.alloc = isd_conn_buf_alloc;
	c->buf_ops.free = isd_conn_buf_free;
	c->buf_ops.ctx = NULL;           /* each task's copy points at the task */
	c->reactor = r != NULL ? r : t->reactor;
	if (info != NULL)
		c->info = *info;
	c->state = ISD_CONN_LOGIN;
	c->refs = 1;
	isd_params_init_defaults(&c->params);
	c->dmc.ops = ops;
	c->dmc.up = &isd_conn_dm_upcalls;
	c->dmc.r = c->reactor;
	c->dmc.params = &c->params;
	c->dmc.active = false;
	c->dmc.priv = c->dm_priv;
	/* A random-looking initial StatSN exercises serial arithmetic in initiators
	 * from the first PDU on (RFC 7143 leaves the choice to the target). */
	c->stat_sn = (uint32_t)(isd_now_ns() * 2654435761u);
	c->text.ttt = ISD_RSVD_TAG;
	c->ping_ttt = 0;
	TAILQ_INIT(&c->tasks);
	for (unsigned i = 0; i < ISD_ITT_BUCKETS; i++)
		TAILQ_INIT(&c->itt_hash[i]);
	for (int i = 0; i < ISD_ABORTED_RING; i++)
		c->aborted_itt[i] = ISD_RSVD_TAG;
	isd_timer_init(&c->login_timer, isd_login_timeout, c);
	isd_timer_init(&c->nop_timer, isd_nop_tick, c);
	isd_timer_init(&c->nop_timeout_timer, isd_nop_timeout, c);
	isd_timer_init(&c->logout_timer, isd_live_logout_timeout, c);
	TAILQ_INSERT_TAIL(&t->conns, c, link);
	isd_stat_inc(&t->stats.connections);
	c->in_login_count = true;
	isd_stat_inc(&t->stats.login_connections);
	isd_tgt_unlock(t);
	*out = &c->dmc;
	return 0;
}

void
isd_conn_login_ended(struct isd_conn *c)
{
	if (!c->in_login_count)
		return;
	c->in_login_count = false;
	isd_stat_dec(&c->tgt->stats.login_connections);
}

void
isd_conn_start(struct isd_dm_conn *dc)
{
	struct isd_conn *c = isd_conn_of(dc);

	c->last_rx_ns = isd_now_ns();
	if (c->tgt->cfg.login_timeout_ms > 0)
		isd_reactor_timer_start(c->reactor, &c->login_timer, c->tgt->cfg.login_timeout_ms);
}

/*
 * Whether this thread may act on c in place: on c's reactor, or wherever one
 * thread runs everything (one reactor; or a thread that runs none, which
 * before the reactors start and after they stop is the only one).
 */
static bool
conn_here(const struct isd_conn *c)
{
	struct isd_reactor *cur;

	if (!isd_monitor_threaded())
		return true;
	cur = isd_reactor_current();
	return cur == NULL || cur == c->reactor;
}

void
isd_conn_get(struct isd_conn *c)
{
	__atomic_fetch_add(&c->refs, 1, __ATOMIC_RELAXED);
}

bool
isd_conn_tryget(struct isd_conn *c)
{
	int n = __atomic_load_n(&c->refs, __ATOMIC_RELAXED);

	do {
		if (n <= 0)
			return false;
	} while (!__atomic_compare_exchange_n(&c->refs, &n, n + 1, true, __ATOMIC_RELAXED,
					      __ATOMIC_RELAXED));
	return true;
}

static void
conn_free(struct isd_conn *c)
{
	struct isd_iscsi_tgt *t = c->tgt;

	if (c->sess != NULL) {
		isd_session_destroy(c->sess);
		c->sess = NULL;
	}
	isd_conn_login_ended(c);
	c->ops->free_conn(&c->dmc);
	isd_tgt_lock(t);
	TAILQ_REMOVE(&t->conns, c, link);
	isd_stat_dec(&t->stats.connections);
	isd_tgt_unlock(t);
	free(c);
	isd_tgt_conn_gone(t);
}

static void
conn_free_msg(void *arg)
{
	conn_free(arg);
}

void
isd_conn_put(struct isd_conn *c)
{
	/* release: what this thread did to c happens before the free; acquire: the
	 * thread that frees sees what every other holder did */
	if (__atomic_sub_fetch(&c->refs, 1, __ATOMIC_ACQ_REL) > 0)
		return;
	/* the datamover's state and the timers belong to c's reactor: free it there */
	if (conn_here(c)) {
		conn_free(c);
		return;
	}
	c->free_msg.cb = conn_free_msg;
	c->free_msg.arg = c;
	isd_reactor_post(c->reactor, &c->free_msg);
}

static void
conn_close_msg(void *arg)
{
	struct isd_conn *c = arg;

	isd_conn_close(c);
	isd_conn_put(c);        /* the reference isd_conn_post_close took */
}

void
isd_conn_post_close(struct isd_conn *c)
{
	/* closing is for good: the first poster wins, later ones have nothing to add */
	if (__atomic_exchange_n(&c->close_posted, true, __ATOMIC_ACQ_REL))
		return;
	if (!isd_conn_tryget(c))
		return;         /* its last reference is gone: it is being freed */
	c->close_msg.cb = conn_close_msg;
	c->close_msg.arg = c;
	isd_reactor_post(c->reactor, &c->close_msg);
}

void
isd_conn_close_any(struct isd_conn *c)
{
	if (conn_here(c))
		isd_conn_close(c);
	else
		isd_conn_post_close(c);
}

void
isd_conn_close(struct isd_conn *c)
{
	if (c->state == ISD_CONN_CLOSING || c->state == ISD_CONN_DEAD)
		return;
	c->state = ISD_CONN_CLOSING;
	isd_conn_login_ended(c);
	isd_reactor_timer_stop(c->reactor, &c->login_timer);
	isd_reactor_timer_stop(c->reactor, &c->logout_timer);
	isd_nop_stop(c);
	c->ops->terminate(&c->dmc);
}

uint32_t
isd_conn_rx_dsl(const struct isd_conn *c)
{
	const struct isd_params *p = &c->params;

	/* iSER replaces MaxRecvDataSegmentLength by TargetRecvDataSegmentLength */
	if (p->rdma_extensions && p->target_recv_dsl > 0)
		return p->target_recv_dsl;
	return p->max_recv_dsl;
}

uint32_t
isd_conn_tx_dsl(const struct isd_conn *c)
{
	const struct isd_params *p = &c->params;

	if (p->rdma_extensions && p->initiator_recv_dsl > 0) {
		/*
		 * The datamover may know that its peers receive less in full feature
		 * phase than they declared (iSER: 128 bytes, see its ops table): a
		 * NOP-In echo is cut to it, Text Responses are paged by it (text.c).
		 */
		uint32_t lim = c->ops->ffp_ctl_max_dsl;

		if (c->state == ISD_CONN_FFP && lim > 0 && p->initiator_recv_dsl > lim)
			return lim;
		return p->initiator_recv_dsl;
	}
	return p->max_xmit_dsl;
}

bool
isd_conn_can_send(const struct isd_conn *c)
{
	return c->state == ISD_CONN_LOGIN || c->state == ISD_CONN_FFP;
}

int
isd_conn_send(struct isd_conn *c, struct isd_pdu *pdu)
{
	int rc;

	if (!isd_conn_can_send(c)) {
		isd_pdu_free(pdu);
		return -ENOTCONN;
	}
	rc = c->ops->send_control(&c->dmc, pdu);
	if (rc < 0) {
		isd_log_dbg("iscsi", "conn %p: send_control failed (%d), closing", (void *)c, rc);
		isd_conn_close(c);
	}
	return rc;
}

int
isd_conn_send_response(struct isd_conn *c, struct isd_task *t, struct isd_pdu *pdu)
{
	int rc;

	if (c->ops->send_response == NULL)
		return isd_conn_send(c, pdu);
	if (!isd_conn_can_send(c)) {
		isd_pdu_free(pdu);
		return -ENOTCONN;
	}
	rc = c->ops->send_response(&c->dmc, &t->dmt, pdu);
	if (rc < 0) {
		isd_log_dbg("iscsi", "conn %p: send_response failed (%d), closing", (void *)c, rc);
		isd_conn_close(c);
	}
	return rc;
}

void
isd_conn_release_pdu(struct isd_conn *c, struct isd_pdu *pdu)
{
	c->ops->release_pdu(&c->dmc, pdu);
}

struct isd_pdu *
isd_conn_pdu_alloc(struct isd_conn *c, uint8_t opcode, uint32_t data_cap)
{
	struct isd_pdu *pdu = isd_pdu_alloc(data_cap);

	if (pdu == NULL) {
		isd_log_err("iscsi: out of memory for a %s PDU, closing connection",
			    isd_opcode_name(opcode));
		isd_conn_close(c);
		return NULL;
	}
	pdu->bhs[0] = opcode;
	return pdu;
}

void
isd_conn_fill_sn(struct isd_conn *c, uint8_t *bhs, bool advance)
{
	struct isd_session *s = c->sess;

	put_be32(bhs + 24, advance ? c->stat_sn++ : c->stat_sn);
	if (s != NULL) {
		isd_session_update_window(s);
		put_be32(bhs + 28, s->exp_cmdsn);
		put_be32(bhs + 32, s->max_cmdsn);
	} else if (c->login != NULL) {
		put_be32(bhs + 28, c->login->cmdsn);
		put_be32(bhs + 32, c->login->cmdsn);
	}
}

/* Remembers the ITT of an aborted task so that its late Data-Outs are dropped quietly. */
void
isd_conn_remember_aborted(struct isd_conn *c, uint32_t itt)
{
	c->aborted_itt[c->aborted_pos++ % ISD_ABORTED_RING] = itt;
}

void
isd_conn_abort_all_tasks(struct isd_conn *c)
{
	struct isd_task *task, *tmp;

	TAILQ_FOREACH_SAFE(task, &c->tasks, link, tmp) {
		isd_conn_remember_aborted(c, task->itt);
		isd_task_abort(task, NULL);
	}
}

/* --- upcalls --- */

void
isd_conn_control_notify(struct isd_dm_conn *dc, struct isd_pdu *pdu)
{
	struct isd_conn *c = isd_conn_of(dc);

	if (c->state == ISD_CONN_CLOSING || c->state == ISD_CONN_DEAD) {
		isd_conn_release_pdu(c, pdu);
		return;
	}
	c->last_rx_ns = isd_reactor_turn_ns(c->reactor);
	isd_conn_get(c);
	if (c->state == ISD_CONN_LOGIN)
		isd_login_rx(c, pdu);
	else
		isd_conn_ffp_rx(c, pdu);
	isd_conn_put(c);
}

void
isd_conn_pdu_error_notify(struct isd_dm_conn *dc, const uint8_t *bhs, int reason)
{
	struct isd_conn *c = isd_conn_of(dc);

	if (c->state == ISD_CONN_LOGIN) {
		/* nothing to reject during login: the login is broken */
		isd_conn_close(c);
		return;
	}
	if (c->state != ISD_CONN_FFP)
		return;
	if (reason <= 0 || reason > 0xff)
		reason = ISD_REJECT_PROTOCOL_ERROR;
	isd_reject_send(c, bhs, (uint8_t)reason);
	if (reason == ISD_REJECT_DIGEST_ERROR && isd_bhs_opcode(bhs) == ISD_OP_DATA_OUT)
		isd_task_data_out_digest_error(c, bhs);
}

void
isd_conn_terminate_notify(struct isd_dm_conn *dc, int reason)
{
	struct isd_conn *c = isd_conn_of(dc);
	struct isd_session *s = c->sess;

	if (c->state == ISD_CONN_DEAD)
		return;
	isd_log_dbg("iscsi", "conn %p: terminated (%d)", (void *)c, reason);
	if (c->state == ISD_CONN_LOGIN && !c->login_counted) {
		isd_stat_inc(&c->tgt->stats.logins_failed);
		c->login_counted = true;
	}
	c->state = ISD_CONN_DEAD;
	isd_conn_login_ended(c);
	isd_reactor_timer_stop(c->reactor, &c->login_timer);
	isd_reactor_timer_stop(c->reactor, &c->logout_timer);
	isd_nop_stop(c);
	isd_login_free(c);
	isd_text_reset(c);
	if (s != NULL) {
		isd_session_unlink(s);
		isd_cmdsn_flush(c);
	}
	isd_conn_abort_all_tasks(c);
	isd_conn_put(c);
}

/* --- full feature phase dispatch --- */

static bool
opcode_allowed(const struct isd_conn *c, uint8_t op)
{
	if (c->sess->type == ISD_SESSION_DISCOVERY)
		return op == ISD_OP_TEXT_REQ || op == ISD_OP_LOGOUT_REQ || op == ISD_OP_NOP_OUT;
	switch (op) {
	case ISD_OP_NOP_OUT:
	case ISD_OP_SCSI_CMD:
	case ISD_OP_TMF_REQ:
	case ISD_OP_TEXT_REQ:
	case ISD_OP_DATA_OUT:
	case ISD_OP_LOGOUT_REQ:
		return true;
	default:
		return false;
	}
}

void
isd_conn_ffp_rx(struct isd_conn *c, struct isd_pdu *pdu)
{
	uint8_t op = isd_bhs_opcode(pdu->bhs);
	int reason;

	reason = isd_bhs_check(pdu->bhs, true, isd_conn_rx_dsl(c));
	if (reason == 0 && (pdu->data_len != isd_bhs_dsl(pdu->bhs) ||
			    pdu->data_len > isd_conn_rx_dsl(c) ||
			    pdu->ahs_len != isd_bhs_ahs_len(pdu->bhs)))
		reason = ISD_REJECT_PROTOCOL_ERROR;
	if (reason == 0 && !opcode_allowed(c, op))
		reason = ISD_REJECT_PROTOCOL_ERROR;
	if (reason != 0) {
		isd_log_dbg("iscsi", "conn %p: rejecting %s (reason 0x%02x)", (void *)c,
			    isd_opcode_name(op), reason);
		isd_reject_send(c, pdu->bhs, (uint8_t)reason);
		isd_conn_release_pdu(c, pdu);
		return;
	}
	if (op == ISD_OP_DATA_OUT) {
		/* Data-Out is not ordered by CmdSN; ExpStatSN sits at the same offset */
		c->exp_stat_sn = isd_bhs_expstatsn(pdu->bhs);
		isd_task_data_out_rx(c, pdu);
		return;
	}
	c->exp_stat_sn = isd_bhs_expstatsn(pdu->bhs);
	isd_cmdsn_rx(c, pdu);
}

/* --- upcalls for datamovers (the table is dm_up.c) --- */

void
isd_conn_stamp_sn(struct isd_dm_conn *dc, uint8_t *bhs)
{
	isd_conn_fill_sn(isd_conn_of(dc), bhs, false);
}

void
isd_conn_count_copy(struct isd_dm_conn *dc, uint64_t bytes)
{
	isd_stat_add_n(&isd_tgt_hot(isd_conn_of(dc))->bytes_copied, bytes);
}

void
isd_conn_count_placed(struct isd_conn *c, uint64_t bytes)
{
	isd_stat_add_n(&isd_tgt_hot(c)->bytes_placed, bytes);
}
