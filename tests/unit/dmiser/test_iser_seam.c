/*
 * The iSER datamover's side of the Datamover Interface (dm.h), without an RDMA
 * device: a connection's state is built by hand, the QP is a fake whose
 * post_send/post_recv fail (ibv_post_* are inline calls through the context's
 * ops), and the connection's upcall table is this test's, so the test sees
 * every upcall and whether it came from inside a call down.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dm/iser/iser_dm.h"
#include "dm/iser/iser_int.h"
#include "rdma/rdma.h"
#include "reactor/reactor.h"

void isd_iser_login_response(struct isd_dm_conn *c, const struct isd_params *negotiated, bool final);
void isd_iser_release_pdu(struct isd_dm_conn *c, struct isd_pdu *pdu);
int isd_iser_put_data(struct isd_dm_conn *c, struct isd_dm_task *t, const struct isd_xfer *x);
int isd_iser_get_data(struct isd_dm_conn *c, struct isd_dm_task *t, const struct isd_xfer *x);
void isd_iser_task_cleanup(struct isd_dm_conn *c, struct isd_dm_task *t, struct isd_tmf_wait *fence);
void isd_iser_buf_free(struct isd_dm_conn *c, struct isd_dm_task *t, void *buf, uint32_t len);

/* ---- the fake core ---- */

static struct isd_iser_conn *g_ic;
static struct isd_iser_task g_tt;
static struct isd_dm_task g_task = {.priv = &g_tt, .itt = 0x10};
static struct isd_dm_conn g_conn;
#define TASK (&g_task)
#define CONN (&g_conn)
static bool g_in_call_down;
static int g_completions, g_completion_status, g_completions_in_call_down;
static int g_terminates;

int __wrap_ibv_modify_qp(struct ibv_qp *qp, struct ibv_qp_attr *attr, int mask);
int __wrap_isd_rdma_mem_find(struct isd_rdma_dev *d, const void *addr, size_t len, uint32_t *lkey,
			     enum isd_rdma_mem_kind *kind);
int __real_isd_rdma_mem_find(struct isd_rdma_dev *d, const void *addr, size_t len, uint32_t *lkey,
			     enum isd_rdma_mem_kind *kind);

/* true: every range counts as pool memory registered on the fake device */
static bool g_mem_registered;

int
__wrap_isd_rdma_mem_find(struct isd_rdma_dev *d, const void *addr, size_t len, uint32_t *lkey,
			 enum isd_rdma_mem_kind *kind)
{
	if (!g_mem_registered)
		return __real_isd_rdma_mem_find(d, addr, len, lkey, kind);
	*lkey = 0x77;
	if (kind != NULL)
		*kind = ISD_RDMA_MEM_POOL;
	return 0;
}

static void
fake_data_completion_notify(struct isd_dm_conn *c, struct isd_dm_task *t, int status)
{
	assert_ptr_equal(c, CONN);
	assert_ptr_equal(t, TASK);
	g_completions++;
	g_completion_status = status;
	if (g_in_call_down)
		g_completions_in_call_down++;
}

static void
fake_terminate_notify(struct isd_dm_conn *c, int reason)
{
	(void)reason;
	assert_ptr_equal(c, CONN);
	g_terminates++;
}

static const struct isd_dm_upcalls g_up = {
	.data_completion_notify = fake_data_completion_notify,
	.terminate_notify = fake_terminate_notify,
};

int
__wrap_ibv_modify_qp(struct ibv_qp *qp, struct ibv_qp_attr *attr, int mask)
{
	(void)qp;
	(void)attr;
	(void)mask;
	return 0;
}

/* ---- the fake QP ---- */

static int g_post_send_rc, g_post_recv_rc, g_recvs_posted;

static int
fake_post_send(struct ibv_qp *qp, struct ibv_send_wr *wr, struct ibv_send_wr **bad)
{
	(void)qp;
	*bad = wr;
	return g_post_send_rc;
}

static int
fake_post_recv(struct ibv_qp *qp, struct ibv_recv_wr *wr, struct ibv_recv_wr **bad)
{
	(void)qp;
	*bad = wr;
	if (g_post_recv_rc == 0)
		g_recvs_posted++;
	return g_post_recv_rc;
}

struct fx {
	struct isd_reactor *r;
	struct ibv_context ctx;
	struct ibv_qp qp;
	struct isd_rdma_dev dev;
	struct isd_iser_conn ic;
	uint8_t buf[8192];
	struct isd_iser_rx login_rx;    /* last: it ends in a flexible array */
};

static int
setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	struct isd_iser_conn *ic = &f->ic;

	assert_non_null(f);
	assert_int_equal(isd_reactor_create(&f->r), 0);
	f->ctx.ops.post_send = fake_post_send;
	f->ctx.ops.post_recv = fake_post_recv;
	f->qp.context = &f->ctx;
	g_conn.ops = &isd_iser_dm_ops;
	g_conn.up = &g_up;
	g_conn.r = f->r;
	g_conn.priv = ic;
	ic->conn = CONN;
	ic->r = f->r;
	ic->state = ISD_ISER_ESTABLISHED;
	snprintf(ic->peer, sizeof(ic->peer), "test");
	ic->dev = &f->dev;
	ic->qp_created = true;
	ic->qp = &f->qp;
	ic->qs.wr_sge = 4;
	ic->qs.rd_sge = 1;
	ic->tx_limit = ISD_ISER_LOGIN_DATA;
	isd_iser_credits_init(&ic->cr, 64, 4);
	TAILQ_INIT(&ic->pending);
	TAILQ_INIT(&ic->abandoned);
	TAILQ_INIT(&ic->tx_free_small);
	TAILQ_INIT(&ic->tx_free_big);
	f->login_rx.tag.type = ISD_ISER_TAG_RX;
	f->login_rx.ic = ic;
	f->login_rx.login = true;
	f->login_rx.buf = f->buf;
	f->login_rx.size = sizeof(f->buf);
	f->login_rx.pdu.owner = &f->login_rx;
	ic->login_rx = &f->login_rx;
	/* the real callbacks: teardown runs as in iser_conn.c */
	isd_iser_conn_init_timers(ic);
	g_ic = ic;
	memset(&g_tt, 0, sizeof(g_tt));
	g_tt.magic = ISD_ISER_TASK_MAGIC;
	g_tt.hdr.rsv = true;
	g_tt.hdr.read_stag = 0x1234;
	g_tt.hdr.read_va = 0x10000;
	g_tt.hdr.wsv = true;
	g_tt.hdr.write_stag = 0x5678;
	g_tt.hdr.write_va = 0x20000;
	g_in_call_down = false;
	g_completions = g_completion_status = g_completions_in_call_down = 0;
	g_terminates = 0;
	g_post_send_rc = g_post_recv_rc = 0;
	g_recvs_posted = 0;
	g_mem_registered = false;
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fx *f = *state;

	assert_int_equal(f->ic.jobs, 0);
	isd_reactor_timer_stop(f->r, &f->ic.drain_timer);
	isd_reactor_timer_stop(f->r, &f->ic.notify_timer);
	isd_reactor_timer_stop(f->r, &f->ic.kick_timer);
	isd_reactor_timer_stop(f->r, &f->ic.unposted_timer);
	isd_reactor_destroy(f->r);
	free(f->ic.batch);
	isd_rdma_pool_trim();
	free(f);
	return 0;
}

static void
run_reactor(struct fx *f)
{
	for (int i = 0; i < 4; i++)
		(void)isd_reactor_poll(f->r, 0);
}

/*
 * Posting fails (the bounce buffer is in no device's registration, so its
 * SGEs get no key; the QP's posts fail too): put_data only queues the
 * transfer and returns 0; the post at the end of the reactor turn fails, and
 * with it the connection and the transfer. The completion notify never comes
 * from inside put_data (dm.h): it follows exactly once, from the reactor,
 * before the terminate notify.
 */
static void
xfer_fails_while_posting(struct fx *f, bool put)
{
	struct iovec iov = { f->buf, 4096 };
	struct isd_xfer x = { .iov = &iov, .iovcnt = 1, .offset = 0, .length = 4096 };
	int rc;

	g_post_send_rc = EIO;
	g_post_recv_rc = EIO;
	g_in_call_down = true;
	rc = put ? isd_iser_put_data(CONN, TASK, &x) : isd_iser_get_data(CONN, TASK, &x);
	g_in_call_down = false;
	assert_int_equal(rc, 0);
	assert_int_equal(g_completions_in_call_down, 0);
	assert_int_equal(g_completions, 0);
	run_reactor(f);
	assert_true(f->ic.state >= ISD_ISER_DRAINING);
	assert_int_equal(g_completions, 1);
	assert_true(g_completion_status < 0);
	assert_int_equal(g_terminates, 1);
	assert_null(g_tt.job);
	assert_int_equal(f->ic.jobs, 0);

	/* a call down on the failed connection: refused at once, no notify, ever */
	g_in_call_down = true;
	rc = put ? isd_iser_put_data(CONN, TASK, &x) : isd_iser_get_data(CONN, TASK, &x);
	g_in_call_down = false;
	assert_int_equal(rc, -ENOTCONN);
	run_reactor(f);
	assert_int_equal(g_completions, 1);
}

static void
test_put_data_post_failure_notifies_later(void **state)
{
	xfer_fails_while_posting(*state, true);
}

static void
test_get_data_post_failure_notifies_later(void **state)
{
	xfer_fails_while_posting(*state, false);
}

/* put_data refused synchronously frees x->rsp and never notifies. */
static void
test_put_data_refused_frees_rsp(void **state)
{
	struct fx *f = *state;
	struct iovec iov = { f->buf, 4096 };
	struct isd_xfer x = { .iov = &iov, .iovcnt = 1, .offset = 0, .length = 4096 };

	x.rsp = isd_pdu_alloc(0);
	assert_non_null(x.rsp);
	g_tt.hdr.rsv = false;                   /* a READ without a read STag */
	assert_int_equal(isd_iser_put_data(CONN, TASK, &x), -EINVAL);
	run_reactor(f);
	assert_int_equal(g_completions, 0);     /* and ASan sees no leak of x.rsp */
}

/*
 * The login buffer follows what the core says (login_response), whatever the
 * Login Request or Response headers hold: posted again after a non-final
 * response once the request is released (in either order), never on release
 * alone, never after the final response.
 */
static void
test_login_buffer_follows_login_response(void **state)
{
	struct fx *f = *state;
	struct isd_iser_rx *lrx = &f->login_rx;
	static struct isd_iser_rx *no_rx[1];
	struct isd_params p;

	memset(&p, 0, sizeof(p));
	/* a request comes in; released without an answer: not posted */
	lrx->lent = true;
	isd_iser_release_pdu(CONN, &lrx->pdu);
	assert_int_equal(g_recvs_posted, 0);
	/* the core answers (not final): posted at once, the PDU being back */
	isd_iser_login_response(CONN, &p, false);
	assert_int_equal(g_recvs_posted, 1);
	assert_true(lrx->posted);
	/* the next request: answered while the core still holds it */
	lrx->posted = false;
	lrx->lent = true;
	isd_iser_login_response(CONN, &p, false);
	assert_int_equal(g_recvs_posted, 1);
	isd_iser_release_pdu(CONN, &lrx->pdu);
	assert_int_equal(g_recvs_posted, 2);
	/* the last request: the final response retires the buffer (the FFP receives
	 * are taken as set up: ic->rx is not NULL) */
	lrx->posted = false;
	lrx->lent = true;
	f->ic.rx = no_rx;
	isd_iser_login_response(CONN, &p, true);
	assert_true(f->ic.login_done);
	isd_iser_release_pdu(CONN, &lrx->pdu);
	assert_int_equal(g_recvs_posted, 2);
	assert_false(lrx->posted);
	f->ic.rx = NULL;
}

static uint64_t
live_bufs(void)
{
	struct isd_rdma_stats st;

	isd_rdma_get_stats(&st);
	return st.bufs;
}

/*
 * A READ's transfer is abandoned (task_cleanup) with its RDMA Write in flight:
 * the task's buffer, released right after, stays with the job (found through
 * the task, no search) until the Write completes; another task's buffer goes at
 * once. The bufs and jobs counters come back to where they were.
 */
static void
test_buf_release_by_owner(void **state)
{
	struct fx *f = *state;
	uint64_t bufs0 = live_bufs();
	void *buf = isd_rdma_buf_alloc(4096), *other = isd_rdma_buf_alloc(4096);
	struct iovec iov = { (uint8_t *)buf + 512, 2048 };
	struct isd_xfer x = { .iov = &iov, .iovcnt = 1, .offset = 0, .length = 2048 };
	struct isd_iser_job *job;

	assert_non_null(buf);
	assert_non_null(other);
	assert_int_equal(live_bufs(), bufs0 + 2);
	g_mem_registered = true;
	assert_int_equal(isd_iser_put_data(CONN, TASK, &x), 0);
	job = g_tt.job;
	assert_non_null(job);
	assert_int_equal(job->inflight, 0);            /* queued: posted at the turn's end */
	run_reactor(f);
	assert_int_equal(job->inflight, 1);            /* the Write is posted */
	assert_int_equal(f->ic.jobs, 1);
	isd_iser_task_cleanup(CONN, TASK, NULL);
	assert_null(g_tt.job);
	assert_ptr_equal(g_tt.abandoned, job);
	/* not this task's: freed at once */
	isd_iser_buf_free(CONN, NULL, other, 4096);
	assert_int_equal(live_bufs(), bufs0 + 1);
	/* this task's: the Write may still read it */
	isd_iser_buf_free(CONN, TASK, buf, 4096);
	assert_int_equal(live_bufs(), bufs0 + 1);
	assert_ptr_equal(job->deferred_buf, buf);
	/* the Write completes: the job goes, and the buffer with it */
	isd_iser_job_wr_complete(&f->ic, job, 0);
	assert_int_equal(f->ic.jobs, 0);
	assert_int_equal(live_bufs(), bufs0);
	assert_int_equal(f->ic.cr.sq_used, 0);
	run_reactor(f);
	assert_int_equal(g_completions, 0);             /* abandoned: no notify */
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_put_data_post_failure_notifies_later, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_get_data_post_failure_notifies_later, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_put_data_refused_frees_rsp, setup, teardown),
		cmocka_unit_test_setup_teardown(test_login_buffer_follows_login_response, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_buf_release_by_owner, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
