/*
 * The initiator's connection: what the session and task code ask of a
 * transport, done through a datamover of src/dm on the context's own reactor
 * (the active side of dm.h), plus the initiator core's upcalls. TCP and iSER
 * run on the datamovers the target uses (isd_tcp_dm_ops, isd_iser_dm_ops);
 * nothing here knows a socket or a verb.
 *
 * The datamover's connection (struct isd_init_dmc) is freed only between
 * reactor iterations: a failure found inside an upcall closes it at once
 * (free_conn: no more bytes move, no more upcalls come) and leaves the memory
 * to the end of the current iserd_service() (or context destroy), because
 * the datamover is still on the stack.
 */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>

#include "dm/iser/iser_dm.h"
#include "dm/tcp/tcp.h"
#include "initiator/init_int.h"
#include "reactor/reactor.h"
#include "util/endian.h"
#include "util/iov.h"
#include "util/log.h"

/* iovec entries the immediate data of one SCSI Command may span (the datamover
 * frames one PDU from at most 64, header and trailer included). */
#define IMM_IOV_MAX 32

struct isd_init_dmc {
	struct isd_dm_conn dc;
	struct isd_ictx *ctx;
	struct isd_init_dmc *next_dead;
	_Alignas(16) uint8_t priv[];
};

static struct isd_ictx *
ctx_of(struct isd_dm_conn *dc)
{
	return ((struct isd_init_dmc *)dc)->ctx;
}

static size_t
align16(size_t n)
{
	return (n + 15) & ~(size_t)15;
}

/* ---- log lines of the layers below, to the context's log function ---- */

static void
log_sink(void *arg, int level, const char *line)
{
	struct isd_ictx *c = arg;

	isd_init_log(c, (enum iserd_log_level)level, "%s", line);
}

/* ---- closing ---- */

/* Closes the datamover's connection now (no more I/O, no more upcalls). */
static void
dm_close(struct isd_ictx *c)
{
	struct isd_init_dmc *d = c->dmc;

	if (d == NULL)
		return;
	c->dmc = NULL;
	c->dm->free_conn(&d->dc);
	d->next_dead = c->dead;
	c->dead = d;
}

static void
reap(struct isd_ictx *c)
{
	struct isd_init_dmc *d;

	while ((d = c->dead) != NULL) {
		c->dead = d->next_dead;
		free(d);
	}
}

/* A failure found inside an upcall: stop the connection now, fail it from service. */
static void
dm_fail(struct isd_ictx *c, int rc)
{
	dm_close(c);
	if (c->pending_fail == 0)
		c->pending_fail = rc < 0 ? rc : -EIO;
}

/* ---- upcalls ---- */

static void
up_control_notify(struct isd_dm_conn *dc, struct isd_pdu *pdu)
{
	struct isd_ictx *c = ctx_of(dc);
	const struct isd_dm_ops *ops = dc->ops;
	uint8_t op = isd_bhs_opcode(pdu->bhs);
	int rc;

	c->last_rx_ns = isd_init_now_ns();
	c->nop_sent_ns = 0;
	if ((op == ISD_OP_DATA_IN || op == ISD_OP_R2T) && (ops->caps & ISD_DM_CAP_RDMA)) {
		isd_init_set_error(c, "target sent a %s over iSER (it must use RDMA)",
				   isd_opcode_name(op));
		rc = -EPROTO;
	} else if (op == ISD_OP_DATA_IN) {
		/* header checked in up_data_in, payload placed: the status part */
		rc = isd_init_rx_datain_done(c, isd_init_task_by_itt(c, isd_bhs_itt(pdu->bhs)),
					     pdu->bhs);
	} else {
		rc = isd_bhs_check(pdu->bhs, false, ISD_INIT_MAX_RECV_DSL + 8192);
		if (rc != 0) {
			isd_init_set_error(c, "target sent a malformed %s PDU (%s)",
					   isd_opcode_name(op), isd_reject_reason_str((uint8_t)rc));
			rc = -EPROTO;
		} else {
			rc = isd_init_rx_pdu(c, pdu);
		}
	}
	ops->release_pdu(dc, pdu);
	if (rc < 0 && c->dmc != NULL && &c->dmc->dc == dc)
		dm_fail(c, rc);
}

static int
up_data_in(struct isd_dm_conn *dc, const uint8_t *bhs, struct isd_dm_task **t,
	   const struct iovec **iov, int *iovcnt)
{
	struct isd_ictx *c = ctx_of(dc);
	struct isd_itask *it = NULL;
	uint32_t off;
	int rc = isd_bhs_check(bhs, false, ISD_INIT_MAX_RECV_DSL);

	*t = NULL;
	if (rc != 0) {
		isd_init_set_error(c, "target sent a malformed Data-In PDU (%s)",
				   isd_reject_reason_str((uint8_t)rc));
		dm_fail(c, -EPROTO);
		return -EPROTO;
	}
	rc = isd_init_rx_datain_hdr(c, bhs, &it, &off);
	if (rc < 0) {
		dm_fail(c, rc);
		return rc;
	}
	if (it != NULL) {
		*t = &it->dmt;
		*iov = it->t->iov;
		*iovcnt = it->t->iovcnt;
	}
	return 0;
}

static void
up_pdu_error_notify(struct isd_dm_conn *dc, const uint8_t *bhs, int reason)
{
	struct isd_ictx *c = ctx_of(dc);
	uint8_t op = isd_bhs_opcode(bhs);

	if (reason == ISD_REJECT_DIGEST_ERROR)
		isd_init_set_error(c, "data digest error on a %s from %s:%u", isd_opcode_name(op),
				   c->url.host, c->url.port);
	else
		isd_init_set_error(c, "target sent a %s of %u bytes, more than we accept",
				   isd_opcode_name(op), isd_bhs_dsl(bhs));
	dm_fail(c, -EPROTO);
}

static void
up_data_completion_notify(struct isd_dm_conn *dc, struct isd_dm_task *t, int status)
{
	struct isd_itask *it = (struct isd_itask *)((char *)t - offsetof(struct isd_itask, dmt));

	(void)dc;
	/* Data-Out sequences complete in the order they were queued: the unsolicited
	 * one (queued right behind its command) first. */
	if (it->unsol_out)
		it->unsol_out = false;
	else if (it->r2t_out > 0)
		it->r2t_out--;
	if (status < 0)
		dm_fail(ctx_of(dc), status);
}

static void
up_terminate_notify(struct isd_dm_conn *dc, int reason)
{
	struct isd_ictx *c = ctx_of(dc);

	if (c->dmc == NULL || &c->dmc->dc != dc)
		return;
	switch (reason) {
	case -EBADMSG:
		isd_init_set_error(c, "header digest error from %s:%u", c->url.host, c->url.port);
		break;
	case 0:
	case -ENOTCONN:
	case -ECONNRESET:
	case -EPIPE:
		isd_init_set_error(c, "%s:%u closed the %sconnection", c->url.host, c->url.port,
				   (dc->ops->caps & ISD_DM_CAP_RDMA) ? "iSER " : "");
		break;
	default:
		isd_init_set_error(c, "connection to %s:%u failed: %s", c->url.host, c->url.port,
				   strerror(reason < 0 ? -reason : EIO));
		break;
	}
	dm_fail(c, reason < 0 ? reason : -ECONNRESET);
}

/* What a failed iSER connect ran into, as the rdma_cm events say it. */
static const char *
iser_connect_error(int status)
{
	switch (status) {
	case -ECONNREFUSED:
		return "rejected (no iSER portal there?)";
	case -ETIMEDOUT:
		return "timed out";
	case -EHOSTUNREACH:
		return "no RDMA route to it (address or route resolution failed)";
	default:
		return strerror(-status);
	}
}

static void
up_connected(struct isd_dm_conn *dc, int status)
{
	struct isd_ictx *c = ctx_of(dc);

	if (c->dmc == NULL || &c->dmc->dc != dc)
		return;
	if (status < 0) {
		if (dc->ops->caps & ISD_DM_CAP_RDMA)
			isd_init_set_error(c, "iSER connect to %s:%u failed: %s", c->url.host,
					   c->url.port, iser_connect_error(status));
		else
			isd_init_set_error(c, "cannot connect to %s:%u: %s", c->url.host,
					   c->url.port, strerror(-status));
		dm_close(c);
	}
	isd_init_connected(c, status);
}

static const struct isd_dm_upcalls init_upcalls = {
	.control_notify = up_control_notify,
	.pdu_error_notify = up_pdu_error_notify,
	.data_completion_notify = up_data_completion_notify,
	.terminate_notify = up_terminate_notify,
	.connected = up_connected,
	.data_in = up_data_in,
};

/* ---- calls from session.c, task.c, context.c ---- */

int
isd_init_x_setup(struct isd_ictx *c)
{
	int rc;

	if (c->r != NULL)
		return 0;
	rc = isd_reactor_create(&c->r);
	if (rc < 0)
		return rc;
	return 0;
}

int
isd_init_x_slots_bind(struct isd_ictx *c)
{
	/* Each slot's datamover area, the size the largest datamover asks for. */
	size_t sz = align16(isd_tcp_dm_ops.task_priv_size > isd_iser_dm_ops.task_priv_size
				    ? isd_tcp_dm_ops.task_priv_size
				    : isd_iser_dm_ops.task_priv_size);

	free(c->task_privs);
	c->task_privs = calloc(c->nslots, sz);
	if (c->task_privs == NULL)
		return -ENOMEM;
	for (uint32_t i = 0; i < c->nslots; i++)
		c->slots[i].dmt.priv = c->task_privs + i * sz;
	return 0;
}

void
isd_init_x_slots_unbind(struct isd_ictx *c)
{
	free(c->task_privs);
	c->task_privs = NULL;
}

void
isd_init_x_fini(struct isd_ictx *c)
{
	isd_init_x_disconnect(c);
	reap(c);
	if (c->r != NULL)
		isd_reactor_destroy(c->r);
	c->r = NULL;
}

/* The datamover's connection object for a new connection on dm (c->dmc). */
static int
dmc_new(struct isd_ictx *c, const struct isd_dm_ops *dm)
{
	struct isd_init_dmc *d;
	int rc;

	c->dm = dm;
	rc = isd_init_x_setup(c);
	if (rc < 0)
		return rc;
	d = calloc(1, sizeof(*d) + align16(c->dm->conn_priv_size));
	if (d == NULL)
		return -ENOMEM;
	d->ctx = c;
	d->dc.ops = c->dm;
	d->dc.up = &init_upcalls;
	d->dc.r = c->r;
	d->dc.params = &c->params;
	d->dc.active = true;
	d->dc.queue_depth = c->stype == ISERD_SESSION_NORMAL ? c->queue_depth : 1;
	d->dc.priv = d->priv;
	c->dmc = d;
	return 0;
}

int
isd_init_x_connect(struct isd_ictx *c)
{
	int rc;

	rc = dmc_new(c, c->url.transport == ISERD_TRANSPORT_ISER ? &isd_iser_dm_ops
								 : &isd_tcp_dm_ops);
	if (rc < 0)
		return rc;
	rc = c->dm->connect(&c->dmc->dc, c->url.host, c->url.port);
	if (rc < 0) {
		if (rc == -ENXIO)
			isd_init_set_error(c, "cannot resolve %s", c->url.host);
		else
			isd_init_set_error(c, "cannot connect to %s:%u: %s", c->url.host,
					   c->url.port, strerror(-rc));
		dm_close(c);
		return rc;
	}
	return 0;
}

int
isd_init_x_adopt_tcp(struct isd_ictx *c, int fd)
{
	int rc = dmc_new(c, &isd_tcp_dm_ops);

	if (rc < 0)
		return rc;
	rc = isd_tcp_adopt(&c->dmc->dc, fd, c->url.host);
	if (rc < 0) {
		dm_close(c);
		reap(c);
	}
	return rc;
}

struct isd_dm_conn *
isd_init_x_dmc(struct isd_ictx *c)
{
	return c->dmc != NULL ? &c->dmc->dc : NULL;
}

void
isd_init_x_disconnect(struct isd_ictx *c)
{
	dm_close(c);
}

int
iserd_mem_unregister(struct iserd_context *pub, const void *addr, size_t len)
{
	struct isd_ictx *c = &pub->c;

	/* what a datamover keeps registered lives with its connection */
	if (c->dmc != NULL && c->dm->mem_unregister != NULL)
		c->dm->mem_unregister(&c->dmc->dc, addr, len);
	return 0;
}

void
isd_init_x_send_pdu(struct isd_ictx *c, struct isd_pdu *pdu)
{
	int rc;

	if (c->dmc == NULL) {
		isd_pdu_free(pdu);
		return;
	}
	rc = c->dm->send_control(&c->dmc->dc, pdu);
	if (rc < 0) {
		isd_init_set_error(c, "cannot send to %s:%u: %s", c->url.host, c->url.port,
				   strerror(-rc));
		dm_fail(c, rc);
	}
}

/* Queues a Data-Out sequence [off, end) of task it with Target Transfer Tag ttt. */
static void
send_dataout(struct isd_ictx *c, struct isd_itask *it, uint32_t ttt, uint32_t off, uint32_t end)
{
	struct iserd_task *t = it->t;
	struct isd_xfer x = {
	    .iov = t->iov, .iovcnt = t->iovcnt, .offset = off, .length = end - off, .ttt = ttt};
	int rc;

	if (c->dmc == NULL)
		return;
	rc = c->dm->put_data(&c->dmc->dc, &it->dmt, &x);
	if (rc < 0) {
		isd_init_set_error(c, "cannot send Data-Out: %s", strerror(-rc));
		dm_fail(c, rc);
		return;
	}
	if (ttt == ISD_RSVD_TAG)
		it->unsol_out = true;
	else
		it->r2t_out++;
}

void
isd_init_x_send_cmd(struct isd_ictx *c, struct isd_itask *it, uint32_t unsol_end)
{
	struct iserd_task *t = it->t;
	struct isd_pdu *pdu;
	int rc;

	if (c->dmc == NULL)
		return;
	memset(it->dmt.priv, 0, c->dm->task_priv_size);
	it->dmt.itt = it->itt;
	it->dmt.lun = it->lun_field;
	it->dmt.iov = t->iov;
	it->dmt.iovcnt = t->iovcnt;
	it->dmt.write_len = t->dir == ISERD_DIR_WRITE ? t->xfer_len : 0;
	it->dmt.read_len = t->dir == ISERD_DIR_READ ? t->xfer_len : 0;
	it->dmt.unsol_len = t->dir == ISERD_DIR_WRITE ? unsol_end : 0;
	it->unsol_out = false;
	it->r2t_out = 0;
	if (it->imm_len > 0) {
		struct iovec sl[IMM_IOV_MAX];
		uint32_t covered = 0;

		(void)isd_iov_slice_upto(t->iov, t->iovcnt, 0, it->imm_len, sl, IMM_IOV_MAX,
					 &covered);
		if (covered < it->imm_len)
			it->imm_len = covered; /* the rest goes out as unsolicited/R2T data */
	}
	pdu = isd_pdu_alloc(0);
	if (pdu == NULL) {
		isd_init_set_error(c, "out of memory");
		dm_fail(c, -ENOMEM);
		return;
	}
	isd_init_cmd_bhs(c, it, unsol_end > it->imm_len, pdu->bhs);
	if (it->imm_len > 0) {
		pdu->data_iov = t->iov;
		pdu->data_iovcnt = t->iovcnt;
		pdu->data_len = it->imm_len;
	}
	rc = c->dm->send_command(&c->dmc->dc, &it->dmt, pdu);
	if (rc < 0) {
		isd_init_set_error(c, "cannot send to %s:%u: %s", c->url.host, c->url.port,
				   strerror(-rc));
		dm_fail(c, rc);
		return;
	}
	if (unsol_end > it->imm_len)
		send_dataout(c, it, ISD_RSVD_TAG, it->imm_len, unsol_end);
}

int
isd_init_x_r2t(struct isd_ictx *c, struct isd_itask *it, uint32_t ttt, uint32_t off, uint32_t len)
{
	if (it->r2t_out >= ISD_INIT_MAX_R2T) {
		isd_init_set_error(c, "target exceeded MaxOutstandingR2T");
		return -EPROTO;
	}
	send_dataout(c, it, ttt, off, off + len);
	return 0;
}

void
isd_init_x_detach(struct isd_ictx *c, struct isd_itask *it)
{
	/*
	 * Even with its status in, a task may hold what the datamover must give
	 * back now: Data-Out still queued (a target may answer a write before
	 * taking all of its unsolicited data), the registration of its buffer
	 * (iSER), which the caller may free once the callback ran.
	 */
	if (c->dmc != NULL)
		c->dm->task_cleanup(&c->dmc->dc, &it->dmt, NULL);
	it->unsol_out = false;
	it->r2t_out = 0;
}

void
isd_init_x_enable(struct isd_ictx *c)
{
	if (c->dmc != NULL)
		c->dm->notice_key_values(&c->dmc->dc, &c->params);
}

int
isd_init_x_get_fd(const struct isd_ictx *c)
{
	return c->dmc != NULL ? isd_reactor_fd(c->r) : -1;
}

int
isd_init_x_which_events(const struct isd_ictx *c)
{
	return c->dmc != NULL ? POLLIN : 0;
}

int
isd_init_x_next_timeout_ms(const struct isd_ictx *c)
{
	if (c->dmc == NULL)
		return -1;
	return isd_reactor_next_timeout_ms(c->r);
}

void
isd_init_x_service(struct isd_ictx *c, int revents)
{
	int rc;

	(void)revents;
	if (c->dmc != NULL) {
		isd_log_set_sink(log_sink, c);
		rc = isd_reactor_poll(c->r, 0);
		/* what the callbacks just queued (deferred sends) goes out now, not after
		 * another turn of the caller's poll() */
		for (int i = 0; i < 4 && rc == 0 && c->dmc != NULL &&
				isd_reactor_next_timeout_ms(c->r) == 0;
		     i++)
			isd_reactor_run_due(c->r);
		isd_log_set_sink(NULL, NULL);
		if (rc < 0 && c->dmc != NULL) {
			isd_init_set_error(c, "event loop failed: %s", strerror(-rc));
			dm_fail(c, rc);
		}
	}
	reap(c);
	if (c->pending_fail != 0) {
		rc = c->pending_fail;
		c->pending_fail = 0;
		isd_init_conn_failed(c, rc);
	}
}
