/*
 * The target-side iSER datamover on the fake verbs device
 * (tests/support/fakeverbs): the real iSCSI core with a RAM LU behind an iSER
 * portal, and a fake initiator on the other end of a loopback "wire". Login
 * over Sends, a READ by RDMA Write, a WRITE by RDMA Read, logout and teardown
 * with every iSER counter back to 0; and the failure paths: a failed post in
 * put_data/get_data, a disconnect with an RDMA Read outstanding, an initiator
 * that posts no receives (RNR), an RDMA Write to a key without remote access,
 * and ABORT TASK while its RDMA Read is in flight (the fence).
 *
 * The datamover's ops and the core's upcalls are wrapped (test_fv_iser.wrap,
 * ld --wrap) to check the seam rule of iscsi/dm.h: no call up from inside a call
 * down.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "bstore/bstore.h"
#include "iscsi/dm.h"
#include "dm/iser/iser_dm.h"
#include "dm/iser/iser_proto.h"
#include "fake_dm.h"
#include "fakeverbs.h"
#include "fv_target.h"
#include "iscsi/iscsi.h"
#include "iscsi/pdu.h"
#include "rdma/rdma.h"
#include "reactor/reactor.h"
#include "scsi/scsi.h"
#include "util/endian.h"

#define TNAME FV_TARGET_NAME
#define INAME "iqn.1993-08.org.debian:01:fvtest"

#define RXN 32                          /* initiator receives */
#define RXSZ (ISD_ISER_HEADERS_LEN + 264 + 8192 + 64)
#define TXN 64
#define TXSZ (ISD_ISER_HEADERS_LEN + 8192)
#define DATA_LEN (2u << 20)
#define WR_RX 1000                      /* wr_id of receive i: WR_RX + i */

/* ---- the seam check: no call up from inside a call down ---- */

static int g_down;                      /* call-down depth */
static int g_violations;
static const char *g_down_op;
static unsigned int g_downs, g_ups;     /* calls seen: the wraps are in place */

#define DOWN(name, call) \
	do { \
		const char *_prev = g_down_op; \
		g_down++; \
		g_downs++; \
		g_down_op = name; \
		call; \
		g_down--; \
		g_down_op = _prev; \
	} while (0)

static void
up(const char *name)
{
	g_ups++;
	if (g_down > 0) {
		g_violations++;
		fprintf(stderr, "seam: %s called up from inside %s\n", name, g_down_op);
	}
}

int __real_isd_iser_put_data(struct isd_dm_conn *c, struct isd_dm_task *t, const struct isd_xfer *x);
int __wrap_isd_iser_put_data(struct isd_dm_conn *c, struct isd_dm_task *t, const struct isd_xfer *x);
int __real_isd_iser_get_data(struct isd_dm_conn *c, struct isd_dm_task *t, const struct isd_xfer *x);
int __wrap_isd_iser_get_data(struct isd_dm_conn *c, struct isd_dm_task *t, const struct isd_xfer *x);
int __real_isd_iser_send_control(struct isd_dm_conn *c, struct isd_pdu *pdu);
int __wrap_isd_iser_send_control(struct isd_dm_conn *c, struct isd_pdu *pdu);
int __real_isd_iser_send_response(struct isd_dm_conn *c, struct isd_dm_task *t, struct isd_pdu *pdu);
int __wrap_isd_iser_send_response(struct isd_dm_conn *c, struct isd_dm_task *t, struct isd_pdu *pdu);
void __real_isd_iser_task_cleanup(struct isd_dm_conn *c, struct isd_dm_task *t,
				  struct isd_tmf_wait *fence);
void __wrap_isd_iser_task_cleanup(struct isd_dm_conn *c, struct isd_dm_task *t,
				  struct isd_tmf_wait *fence);
void __real_isd_iser_release_pdu(struct isd_dm_conn *c, struct isd_pdu *pdu);
void __wrap_isd_iser_release_pdu(struct isd_dm_conn *c, struct isd_pdu *pdu);
void __real_isd_conn_data_completion_notify(struct isd_dm_conn *c, struct isd_dm_task *t, int status);
void __wrap_isd_conn_data_completion_notify(struct isd_dm_conn *c, struct isd_dm_task *t, int status);
void __real_isd_conn_control_notify(struct isd_dm_conn *c, struct isd_pdu *pdu);
void __wrap_isd_conn_control_notify(struct isd_dm_conn *c, struct isd_pdu *pdu);
void __real_isd_conn_terminate_notify(struct isd_dm_conn *c, int reason);
void __wrap_isd_conn_terminate_notify(struct isd_dm_conn *c, int reason);

int
__wrap_isd_iser_put_data(struct isd_dm_conn *c, struct isd_dm_task *t, const struct isd_xfer *x)
{
	int rc;

	DOWN("put_data", rc = __real_isd_iser_put_data(c, t, x));
	return rc;
}

int
__wrap_isd_iser_get_data(struct isd_dm_conn *c, struct isd_dm_task *t, const struct isd_xfer *x)
{
	int rc;

	DOWN("get_data", rc = __real_isd_iser_get_data(c, t, x));
	return rc;
}

int
__wrap_isd_iser_send_control(struct isd_dm_conn *c, struct isd_pdu *pdu)
{
	int rc;

	DOWN("send_control", rc = __real_isd_iser_send_control(c, pdu));
	return rc;
}

int
__wrap_isd_iser_send_response(struct isd_dm_conn *c, struct isd_dm_task *t, struct isd_pdu *pdu)
{
	int rc;

	DOWN("send_response", rc = __real_isd_iser_send_response(c, t, pdu));
	return rc;
}

void
__wrap_isd_iser_task_cleanup(struct isd_dm_conn *c, struct isd_dm_task *t, struct isd_tmf_wait *fence)
{
	DOWN("task_cleanup", __real_isd_iser_task_cleanup(c, t, fence));
}

void
__wrap_isd_iser_release_pdu(struct isd_dm_conn *c, struct isd_pdu *pdu)
{
	DOWN("release_pdu", __real_isd_iser_release_pdu(c, pdu));
}

void
__wrap_isd_conn_data_completion_notify(struct isd_dm_conn *c, struct isd_dm_task *t, int status)
{
	up("data_completion_notify");
	__real_isd_conn_data_completion_notify(c, t, status);
}

void
__wrap_isd_conn_control_notify(struct isd_dm_conn *c, struct isd_pdu *pdu)
{
	up("control_notify");
	__real_isd_conn_control_notify(c, pdu);
}

void
__wrap_isd_conn_terminate_notify(struct isd_dm_conn *c, int reason)
{
	up("terminate_notify");
	__real_isd_conn_terminate_notify(c, reason);
}

/* ---- fixture ---- */

struct rcvd {
	int idx;                        /* receive buffer */
	uint32_t len;
	unsigned int wc_flags;
	uint32_t inv_rkey;
};

/* How a fixture is set up. */
struct fx_cfg {
	struct fv_ini_opts o;
	enum fv_fabric fabric;
	bool remote_inv;                /* device, portal and initiator all allow it */
	bool lun_unregistered;          /* the RAM LU's memory is not registered: bounce */
	bool file_lun;                  /* a file LU: data in registered pool buffers */
	bool immediate;                 /* ImmediateData=Yes */
};

struct fx {
	struct fv_target tg;            /* r, t, node, dev, bs, portal, port */
	struct fv_ini *ini;
	uint8_t *rxmem, *txmem, *data;
	struct ibv_mr *rxmr, *txmr, *datamr;
	int tx_next;
	struct rcvd q[256];
	int nq;
	int sends_ok, send_errs, recv_errs;
	uint32_t cmdsn, itt, expstatsn;
	struct rcvd last;               /* the last PDU wait_pdu returned */
	bool immediate;
};

static const uint8_t g_isid[6] = { 0x80, 0, 0, 0, 0x43, 0x21 };

static void
ini_poll(struct fx *f)
{
	struct ibv_wc wc[32];
	int n;

	while ((n = ibv_poll_cq(f->ini->cq, 32, wc)) > 0) {
		for (int i = 0; i < n; i++) {
			if (wc[i].wr_id >= WR_RX) {
				if (wc[i].status != IBV_WC_SUCCESS) {
					f->recv_errs++;
					continue;
				}
				assert_int_equal(wc[i].opcode, IBV_WC_RECV);
				assert_true(f->nq < 256);
				f->q[f->nq].idx = (int)(wc[i].wr_id - WR_RX);
				f->q[f->nq].len = wc[i].byte_len;
				f->q[f->nq].wc_flags = wc[i].wc_flags;
				f->q[f->nq].inv_rkey = wc[i].invalidated_rkey;
				f->nq++;
			} else if (wc[i].status == IBV_WC_SUCCESS) {
				f->sends_ok++;
			} else {
				f->send_errs++;
			}
		}
	}
}

static void
pump_once(struct fx *f)
{
	isd_reactor_poll(f->tg.r, 1);
	ini_poll(f);
}

#define PUMP_UNTIL(f, cond) \
	do { \
		for (int _i = 0; _i < 3000 && !(cond); _i++) \
			pump_once(f); \
	} while (0)

static void
pump(struct fx *f, int n)
{
	for (int i = 0; i < n; i++)
		pump_once(f);
}

static void
post_rx(struct fx *f, int idx)
{
	struct ibv_sge sge = {
		.addr = (uintptr_t)(f->rxmem + (size_t)idx * RXSZ),
		.length = RXSZ,
		.lkey = f->rxmr->lkey,
	};
	struct ibv_recv_wr wr = { .wr_id = WR_RX + (uint64_t)idx, .sg_list = &sge, .num_sge = 1 };
	struct ibv_recv_wr *bad;

	assert_int_equal(ibv_post_recv(f->ini->qp, &wr, &bad), 0);
}

/* Sends one iSER control PDU (the iSER header with these STags, BHS, data). */
static void
ini_send(struct fx *f, const struct isd_iser_hdr *h, const uint8_t *bhs, const void *data,
	 uint32_t len)
{
	struct isd_iser_hdr def = { .opcode = ISD_ISER_OP_CTRL };
	uint8_t *p = f->txmem + (size_t)(f->tx_next % TXN) * TXSZ;
	struct ibv_sge sge = { .addr = (uintptr_t)p, .lkey = f->txmr->lkey };
	struct ibv_send_wr wr = { .wr_id = 1 + (uint64_t)(f->tx_next % TXN), .sg_list = &sge,
				  .num_sge = 1, .opcode = IBV_WR_SEND,
				  .send_flags = IBV_SEND_SIGNALED };
	struct ibv_send_wr *bad;

	assert_true(len <= 8192);
	f->tx_next++;
	isd_iser_hdr_encode(h != NULL ? h : &def, p);
	memcpy(p + ISD_ISER_HDR_LEN, bhs, ISD_BHS_LEN);
	isd_bhs_set_dsl(p + ISD_ISER_HDR_LEN, len);
	if (len > 0)
		memcpy(p + ISD_ISER_HEADERS_LEN, data, len);
	sge.length = ISD_ISER_HEADERS_LEN + ((len + 3) & ~3u);
	assert_int_equal(ibv_post_send(f->ini->qp, &wr, &bad), 0);
}

/* The oldest received PDU: its BHS (and data) in the receive buffer, which
 * stays the caller's until rx_done(). -1 if none arrived. */
static int
wait_pdu(struct fx *f, uint8_t **bhs, uint8_t **data, uint32_t *dlen)
{
	struct rcvd r;
	uint8_t *b;

	PUMP_UNTIL(f, f->nq > 0);
	if (f->nq == 0)
		return -1;
	r = f->q[0];
	f->last = r;
	memmove(&f->q[0], &f->q[1], sizeof(f->q[0]) * (size_t)(f->nq - 1));
	f->nq--;
	b = f->rxmem + (size_t)r.idx * RXSZ;
	assert_true(r.len >= ISD_ISER_HEADERS_LEN);
	assert_int_equal(b[0] & ISD_ISER_OP_MASK, ISD_ISER_OP_CTRL);
	*bhs = b + ISD_ISER_HDR_LEN;
	if (data != NULL)
		*data = b + ISD_ISER_HEADERS_LEN + (*bhs)[4] * 4;
	if (dlen != NULL)
		*dlen = isd_bhs_dsl(*bhs);
	f->expstatsn = get_be32(*bhs + 24) + 1;
	return r.idx;
}

static void
rx_done(struct fx *f, int idx)
{
	post_rx(f, idx);
}

static uint64_t
iser_conns(void)
{
	return fv_target_iser_conns();
}

static void
login(struct fx *f)
{
	uint8_t bhs[ISD_BHS_LEN], text[1024], *rb, *rd;
	char in[300], tn[300];
	uint32_t len, dlen;
	int idx;

	snprintf(in, sizeof(in), "InitiatorName=%s", INAME);
	snprintf(tn, sizeof(tn), "TargetName=%s", TNAME);
	len = fake_text(text, sizeof(text), in, tn, "SessionType=Normal", "RDMAExtensions=Yes",
			"HeaderDigest=None", "DataDigest=None",
			f->immediate ? "ImmediateData=Yes" : "ImmediateData=No",
			"InitialR2T=Yes", "MaxBurstLength=262144", "FirstBurstLength=65536",
			"TargetRecvDataSegmentLength=8192",
			"InitiatorRecvDataSegmentLength=8192", (const char *)NULL);
	fake_login_bhs(bhs, ISD_LOGIN_T | (ISD_STAGE_OPERATIONAL << 2) | ISD_STAGE_FFP, g_isid, 0,
		       0x1000, f->cmdsn);
	ini_send(f, NULL, bhs, text, len);
	idx = wait_pdu(f, &rb, &rd, &dlen);
	assert_true(idx >= 0);
	assert_int_equal(isd_bhs_opcode(rb), ISD_OP_LOGIN_RSP);
	assert_int_equal((rb[36] << 8) | rb[37], 0);
	assert_true(rb[1] & ISD_LOGIN_T);
	assert_int_equal(ISD_LOGIN_NSG(rb[1]), ISD_STAGE_FFP);
	f->expstatsn = get_be32(rb + 24) + 1;
	rx_done(f, idx);
}

static void
cmd_bhs(struct fx *f, uint8_t *bhs, uint8_t flags, uint32_t itt, uint32_t edtl,
	const uint8_t *cdb)
{
	memset(bhs, 0, ISD_BHS_LEN);
	bhs[0] = ISD_OP_SCSI_CMD;
	bhs[1] = ISD_BHS_F | flags | 1;
	put_be32(bhs + 16, itt);
	put_be32(bhs + 20, edtl);
	put_be32(bhs + 24, f->cmdsn++);
	put_be32(bhs + 28, f->expstatsn);
	memcpy(bhs + 32, cdb, 16);
}

static void
rw10(uint8_t *cdb, uint8_t op, uint32_t lba, uint16_t blocks)
{
	memset(cdb, 0, 16);
	cdb[0] = op;
	put_be32(cdb + 2, lba);
	put_be16(cdb + 7, blocks);
}

/* Sends a SCSI command; read/write STags point into f->data at offset 0. */
static void
send_cmd(struct fx *f, uint8_t flags, uint32_t itt, uint32_t edtl, const uint8_t *cdb,
	 uint32_t rkey)
{
	struct isd_iser_hdr h = { .opcode = ISD_ISER_OP_CTRL };
	uint8_t bhs[ISD_BHS_LEN];

	if (flags & ISD_CMD_R) {
		h.rsv = true;
		h.read_stag = rkey;
		h.read_va = (uintptr_t)f->data;
	}
	if (flags & ISD_CMD_W) {
		h.wsv = true;
		h.write_stag = rkey;
		h.write_va = (uintptr_t)f->data;
	}
	cmd_bhs(f, bhs, flags, itt, edtl, cdb);
	ini_send(f, &h, bhs, NULL, 0);
}

/* Waits for the SCSI Response to itt; returns its status (or -1). */
static int
wait_scsi_rsp(struct fx *f, uint32_t itt)
{
	uint8_t *b;
	int idx, st;

	idx = wait_pdu(f, &b, NULL, NULL);
	if (idx < 0)
		return -1;
	assert_int_equal(isd_bhs_opcode(b), ISD_OP_SCSI_RSP);
	assert_int_equal(isd_bhs_itt(b), itt);
	st = b[3];
	rx_done(f, idx);
	return st;
}

static void
tur(struct fx *f)
{
	uint8_t cdb[16] = { 0 };
	uint32_t itt = f->itt++;

	send_cmd(f, 0, itt, 0, cdb, 0);
	assert_true(wait_scsi_rsp(f, itt) >= 0);
}

static int
setup_opts(void **state, const struct fx_cfg *fc)
{
	struct fx *f = calloc(1, sizeof(*f));
	struct fv_ini_opts o = fc->o;
	uint8_t cm[ISD_ISER_CM_LEN];
	struct isd_iser_cm c = { .send_w_inv_not_supported = !fc->remote_inv };

	assert_non_null(f);
	fv_reset();
	fv_cfg.fabric = fc->fabric;
	fv_cfg.mem_mgt_ext = fc->remote_inv;
	g_violations = 0;
	fv_target_start(&f->tg, &(struct fv_target_cfg){ .remote_inv = fc->remote_inv,
							.lun_unregistered = fc->lun_unregistered,
							.file_lun = fc->file_lun });

	/* the initiator, like libiscsi: no remote invalidation (unless asked) */
	isd_iser_cm_encode(&c, cm);
	o.priv = cm;
	o.priv_len = sizeof(cm);
	if (o.initiator_depth == 0)
		o.initiator_depth = 16;
	assert_int_equal(fv_ini_connect(f->tg.port, &o, &f->ini), 0);
	f->rxmem = calloc(RXN, RXSZ);
	f->txmem = calloc(TXN, TXSZ);
	f->data = calloc(1, DATA_LEN);
	assert_non_null(f->rxmem);
	assert_non_null(f->txmem);
	assert_non_null(f->data);
	f->rxmr = ibv_reg_mr(f->ini->pd, f->rxmem, (size_t)RXN * RXSZ, IBV_ACCESS_LOCAL_WRITE);
	f->txmr = ibv_reg_mr(f->ini->pd, f->txmem, (size_t)TXN * TXSZ, 0);
	f->datamr = ibv_reg_mr(f->ini->pd, f->data, DATA_LEN,
			       IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_READ |
				   IBV_ACCESS_REMOTE_WRITE);
	assert_non_null(f->rxmr);
	assert_non_null(f->txmr);
	assert_non_null(f->datamr);
	for (int i = 0; i < RXN; i++)
		post_rx(f, i);
	PUMP_UNTIL(f, f->ini->state != FV_INI_CONNECTING);
	assert_int_equal(f->ini->state, FV_INI_CONNECTED);
	assert_true(f->ini->rep_len >= 1);
	assert_int_equal(!!(f->ini->rep[0] & ISD_ISER_CM_SEND_W_INV_NOT_SUP), !fc->remote_inv);
	f->cmdsn = 10;
	f->itt = 1;
	f->immediate = fc->immediate;
	login(f);
	tur(f);                 /* takes the POWER ON unit attention */
	tur(f);
	*state = f;
	return 0;
}

static int
setup(void **state)
{
	struct fx_cfg fc = { .fabric = FV_FABRIC_IB };

	return setup_opts(state, &fc);
}

static int
setup_late_established(void **state)
{
	struct fx_cfg fc = { .o.hold_established = true };

	return setup_opts(state, &fc);
}

static int
setup_pool(void **state)
{
	struct fx_cfg fc = { .lun_unregistered = true };

	return setup_opts(state, &fc);
}

static int
setup_file(void **state)
{
	struct fx_cfg fc = { .file_lun = true };

	return setup_opts(state, &fc);
}

static int
setup_immediate(void **state)
{
	struct fx_cfg fc = { .immediate = true };

	return setup_opts(state, &fc);
}

static int
setup_iwarp(void **state)
{
	struct fx_cfg fc = { .fabric = FV_FABRIC_IWARP };

	return setup_opts(state, &fc);
}

static int
setup_remote_inv(void **state)
{
	struct fx_cfg fc = { .fabric = FV_FABRIC_ROCE, .remote_inv = true };

	return setup_opts(state, &fc);
}

static int
teardown(void **state)
{
	struct fx *f = *state;
	struct fv_stats fs;

	if (f->ini->state != FV_INI_DISCONNECTED)
		fv_ini_disconnect(f->ini);
	PUMP_UNTIL(f, iser_conns() == 0);
	pump(f, 5);
	fv_target_assert_idle(&f->tg);
	ibv_dereg_mr(f->rxmr);
	ibv_dereg_mr(f->txmr);
	if (f->datamr != NULL)
		ibv_dereg_mr(f->datamr);
	fv_ini_destroy(f->ini);
	fv_target_stop(&f->tg);
	fv_get_stats(&fs);
	assert_int_equal(fs.bugs, 0);
	assert_int_equal(fv_live_objects(), 0);
	assert_int_equal(g_violations, 0);
	free(f->rxmem);
	free(f->txmem);
	free(f->data);
	free(f);
	return 0;
}

static void
fill(uint8_t *p, size_t n, uint8_t seed)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)(seed + i * 7 + (i >> 9));
}

static uint8_t *
lu_mem(struct fx *f)
{
	return f->tg.bs->mem_base;
}

/* ---- tests ---- */

/* READ by RDMA Write into the initiator's buffer, then the response; WRITE by
 * RDMA Read from it; logout; the target disconnects. */
static void
test_read_write_logout(void **state)
{
	struct fx *f = *state;
	uint8_t cdb[16], bhs[ISD_BHS_LEN], *b;
	struct fv_stats fs;
	uint32_t itt;
	int idx;

	fill(lu_mem(f) + 4096, 16384, 0x11);
	rw10(cdb, 0x28, 8, 32);         /* READ(10) LBA 8, 16 KiB */
	itt = f->itt++;
	send_cmd(f, ISD_CMD_R, itt, 16384, cdb, f->datamr->rkey);
	assert_int_equal(wait_scsi_rsp(f, itt), 0);
	assert_memory_equal(f->data, lu_mem(f) + 4096, 16384);
	fv_get_stats(&fs);
	assert_true(fs.writes >= 1);
	assert_int_equal(fs.write_bytes, 16384);

	fill(f->data, 65536, 0x5a);
	rw10(cdb, 0x2a, 256, 128);      /* WRITE(10) LBA 256, 64 KiB, all solicited */
	itt = f->itt++;
	send_cmd(f, ISD_CMD_W, itt, 65536, cdb, f->datamr->rkey);
	assert_int_equal(wait_scsi_rsp(f, itt), 0);
	assert_memory_equal(lu_mem(f) + 256 * 512, f->data, 65536);
	fv_get_stats(&fs);
	assert_true(fs.reads >= 1);
	assert_int_equal(fs.read_bytes, 65536);
	assert_int_equal(fs.rnr_naks, 0);
	assert_int_equal(fs.sq_full, 0);
	/* every WR retired: the unsignaled Writes by their signaled Send */
	pump(f, 5);
	assert_int_equal(fv_qp_sq_inuse(fv_ini_target_qp(f->ini)), 0);

	/* logout */
	memset(bhs, 0, sizeof(bhs));
	bhs[0] = ISD_OP_LOGOUT_REQ | ISD_BHS_I;
	bhs[1] = ISD_BHS_F | ISD_LOGOUT_CLOSE_SESSION;
	put_be32(bhs + 16, f->itt++);
	put_be32(bhs + 24, f->cmdsn);
	put_be32(bhs + 28, f->expstatsn);
	ini_send(f, NULL, bhs, NULL, 0);
	idx = wait_pdu(f, &b, NULL, NULL);
	assert_true(idx >= 0);
	assert_int_equal(isd_bhs_opcode(b), ISD_OP_LOGOUT_RSP);
	assert_int_equal(b[2], 0);
	/* the target hangs up */
	PUMP_UNTIL(f, f->ini->state == FV_INI_DISCONNECTED && iser_conns() == 0);
	assert_true(f->ini->target_disconnected);
	assert_int_equal(iser_conns(), 0);
	assert_int_equal(f->send_errs, 0);
	/* the seam check saw the traffic */
	assert_true(g_downs > 5);
	assert_true(g_ups > 5);
}

/* The first Login Request beats ESTABLISHED: the target tells rdma_cm
 * (rdma_notify) and answers once established. */
static void
test_login_before_established(void **state)
{
	struct fx *f = *state;

	assert_true(f->ini->established);       /* through rdma_notify */
	test_read_write_logout(state);
}

/* ibv_post_send fails under put_data's RDMA Writes: the connection closes, the
 * command never answers, nothing leaks. */
static void
test_post_fail_put_data(void **state)
{
	struct fx *f = *state;
	struct ibv_qp *tqp = fv_ini_target_qp(f->ini);
	uint8_t cdb[16];
	struct fv_stats fs;

	assert_non_null(tqp);
	fv_qp_fail_post_send(tqp, 1, ENOMEM);
	rw10(cdb, 0x28, 0, 8);
	send_cmd(f, ISD_CMD_R, f->itt++, 4096, cdb, f->datamr->rkey);
	PUMP_UNTIL(f, iser_conns() == 0);
	assert_int_equal(iser_conns(), 0);
	fv_get_stats(&fs);
	assert_int_equal(fs.post_failures, 1);
	assert_int_equal(fs.writes, 0);
	assert_int_equal(f->nq, 0);     /* no SCSI Response */
	assert_int_equal(f->ini->state, FV_INI_DISCONNECTED);
}

/*
 * The same, on a QP that refuses posts once in error: the teardown's drain
 * markers cannot be posted, so isd_iser_conn_fail() finds the connection
 * drained at once. The job must still fail later, from the deferred
 * terminate callback, not inside put_data (a call up from a call down, which
 * the --wrap check catches): it did before the seam change that defers it.
 */
static void
test_post_fail_no_drain_marker(void **state)
{
	struct fx *f = *state;
	struct ibv_qp *tqp = fv_ini_target_qp(f->ini);
	uint8_t cdb[16];

	fv_qp_refuse_posts_in_error(tqp, true);
	fv_qp_fail_post_send(tqp, 1, ENOMEM);
	rw10(cdb, 0x28, 0, 8);
	send_cmd(f, ISD_CMD_R, f->itt++, 4096, cdb, f->datamr->rkey);
	PUMP_UNTIL(f, iser_conns() == 0);
	assert_int_equal(iser_conns(), 0);
	assert_int_equal(f->nq, 0);
	assert_int_equal(g_violations, 0);
}

/* The same under get_data's RDMA Read. */
static void
test_post_fail_get_data(void **state)
{
	struct fx *f = *state;
	struct ibv_qp *tqp = fv_ini_target_qp(f->ini);
	uint8_t cdb[16];
	struct fv_stats fs;

	fill(lu_mem(f), 4096, 0x33);
	fill(f->data, 4096, 0x44);
	fv_qp_fail_post_send(tqp, 1, EAGAIN);
	rw10(cdb, 0x2a, 0, 8);
	send_cmd(f, ISD_CMD_W, f->itt++, 4096, cdb, f->datamr->rkey);
	PUMP_UNTIL(f, iser_conns() == 0);
	assert_int_equal(iser_conns(), 0);
	fv_get_stats(&fs);
	assert_int_equal(fs.post_failures, 1);
	assert_int_equal(fs.reads, 0);
	assert_int_equal(f->nq, 0);
	assert_int_equal(lu_mem(f)[0], 0x33);   /* nothing written */
}

/* The initiator disconnects while the target's RDMA Read is outstanding: the
 * Read is flushed, the command fails, the connection is torn down. */
static void
test_disconnect_mid_read(void **state)
{
	struct fx *f = *state;
	struct ibv_qp *tqp = fv_ini_target_qp(f->ini);
	uint8_t cdb[16];
	struct fv_stats fs;

	fill(lu_mem(f), 8192, 0x21);
	fill(f->data, 8192, 0x77);
	fv_qp_hold(tqp, true);
	rw10(cdb, 0x2a, 0, 16);
	send_cmd(f, ISD_CMD_W, f->itt++, 8192, cdb, f->datamr->rkey);
	PUMP_UNTIL(f, fv_qp_pending_sends(tqp) > 0);
	assert_int_equal(fv_qp_pending_sends(tqp), 1);
	fv_ini_disconnect(f->ini);
	PUMP_UNTIL(f, iser_conns() == 0);
	assert_int_equal(iser_conns(), 0);
	fv_get_stats(&fs);
	assert_true(fs.flushed >= 1);
	assert_int_equal(fs.reads, 0);
	assert_int_equal(lu_mem(f)[0], 0x21);
}

/* The initiator takes its time to post receives: the target's replies wait
 * (RNR, retried for ever) and all arrive once it does. */
static void
test_rnr_backpressure(void **state)
{
	struct fx *f = *state;
	struct ibv_qp *tqp = fv_ini_target_qp(f->ini);
	uint8_t bhs[ISD_BHS_LEN];
	struct fv_stats fs;
	int n = RXN + 8, got = 0;
	int held[RXN];

	for (int i = 0; i < n; i++) {
		memset(bhs, 0, sizeof(bhs));
		bhs[0] = ISD_OP_NOP_OUT;
		bhs[1] = ISD_BHS_F;
		put_be32(bhs + 16, 0x500 + (uint32_t)i);        /* a ping: NOP-In answers */
		put_be32(bhs + 20, ISD_RSVD_TAG);
		put_be32(bhs + 24, f->cmdsn++);
		put_be32(bhs + 28, f->expstatsn);
		ini_send(f, NULL, bhs, NULL, 0);
		pump(f, 2);
	}
	PUMP_UNTIL(f, f->nq == RXN && fv_qp_pending_sends(tqp) > 0);
	pump(f, 20);
	assert_int_equal(f->nq, RXN);   /* every receive is used */
	assert_int_equal(fv_qp_posted_recvs(f->ini->qp), 0);
	assert_true(fv_qp_pending_sends(tqp) > 0);
	fv_get_stats(&fs);
	assert_true(fs.rnr_naks >= 1);
	/* take them all, posting the receives again only now */
	for (int i = 0; i < RXN; i++) {
		uint8_t *b;

		held[i] = wait_pdu(f, &b, NULL, NULL);
		assert_int_equal(isd_bhs_opcode(b), ISD_OP_NOP_IN);
		assert_int_equal(isd_bhs_itt(b), 0x500 + (uint32_t)got);
		got++;
	}
	for (int i = 0; i < RXN; i++)
		rx_done(f, held[i]);
	while (got < n) {
		uint8_t *b;
		int idx = wait_pdu(f, &b, NULL, NULL);

		assert_true(idx >= 0);
		assert_int_equal(isd_bhs_opcode(b), ISD_OP_NOP_IN);
		assert_int_equal(isd_bhs_itt(b), 0x500 + (uint32_t)got);
		got++;
		rx_done(f, idx);
	}
	assert_int_equal(fv_qp_pending_sends(tqp), 0);
	tur(f);                                 /* still in business */
}

/* The same initiator, but the RNR retries run out: the connection closes. */
static void
test_rnr_exhausted(void **state)
{
	struct fx *f = *state;
	struct ibv_qp *tqp = fv_ini_target_qp(f->ini);
	uint8_t bhs[ISD_BHS_LEN];
	struct fv_stats fs;

	fv_qp_set_rnr_error(tqp, true);
	for (int i = 0; i < RXN + 2; i++) {
		memset(bhs, 0, sizeof(bhs));
		bhs[0] = ISD_OP_NOP_OUT;
		bhs[1] = ISD_BHS_F;
		put_be32(bhs + 16, 0x600 + (uint32_t)i);
		put_be32(bhs + 20, ISD_RSVD_TAG);
		put_be32(bhs + 24, f->cmdsn++);
		put_be32(bhs + 28, f->expstatsn);
		ini_send(f, NULL, bhs, NULL, 0);
		pump(f, 2);
	}
	PUMP_UNTIL(f, iser_conns() == 0);
	assert_int_equal(iser_conns(), 0);
	fv_get_stats(&fs);
	assert_true(fs.rnr_naks >= 1);
	assert_true(fs.wc_errors >= 1);
}

/* A READ whose STag has no remote write access: the RDMA Write fails with a
 * remote access error and the connection closes cleanly. */
static void
test_remote_access_error(void **state)
{
	struct fx *f = *state;
	struct ibv_mr *local = ibv_reg_mr(f->ini->pd, f->data, DATA_LEN, IBV_ACCESS_LOCAL_WRITE);
	uint8_t cdb[16];
	struct fv_stats fs;

	assert_non_null(local);
	rw10(cdb, 0x28, 0, 8);
	send_cmd(f, ISD_CMD_R, f->itt++, 4096, cdb, local->rkey);
	PUMP_UNTIL(f, iser_conns() == 0);
	assert_int_equal(iser_conns(), 0);
	fv_get_stats(&fs);
	assert_int_equal(fs.writes, 0);
	assert_true(fs.wc_errors >= 1);
	ibv_dereg_mr(local);
}

/* ABORT TASK while the task's RDMA Read is in flight: the TMF Response is not
 * even posted until the Read has landed (isd_dm_fence_hold/release), and the
 * aborted command gets no response. */
static void
test_abort_fence(void **state)
{
	struct fx *f = *state;
	struct ibv_qp *tqp = fv_ini_target_qp(f->ini);
	uint8_t cdb[16], bhs[ISD_BHS_LEN], *b;
	uint32_t itt = f->itt++, tmf_itt = f->itt++;
	int idx;

	fill(lu_mem(f), 8192, 0x01);
	fill(f->data, 8192, 0x99);
	fv_qp_hold(tqp, true);
	rw10(cdb, 0x2a, 0, 16);
	send_cmd(f, ISD_CMD_W, itt, 8192, cdb, f->datamr->rkey);
	PUMP_UNTIL(f, fv_qp_pending_sends(tqp) == 1);
	assert_int_equal(fv_qp_pending_sends(tqp), 1);  /* the Read */

	memset(bhs, 0, sizeof(bhs));
	bhs[0] = ISD_OP_TMF_REQ | ISD_BHS_I;
	bhs[1] = ISD_BHS_F | ISD_TMF_ABORT_TASK;
	put_be32(bhs + 16, tmf_itt);
	put_be32(bhs + 20, itt);
	put_be32(bhs + 24, f->cmdsn);
	put_be32(bhs + 28, f->expstatsn);
	put_be32(bhs + 32, f->cmdsn - 1);
	ini_send(f, NULL, bhs, NULL, 0);
	pump(f, 50);
	/* fenced: the TMF Response waits for the Read, not even posted */
	assert_int_equal(fv_qp_pending_sends(tqp), 1);
	assert_int_equal(f->nq, 0);
	assert_int_equal(lu_mem(f)[0], 0x01);

	/* the Read lands; then the answer goes */
	assert_int_equal(fv_qp_step(tqp, 1), 1);
	assert_memory_equal(lu_mem(f), f->data, 8192);
	fv_qp_hold(tqp, false);
	idx = wait_pdu(f, &b, NULL, NULL);
	assert_true(idx >= 0);
	assert_int_equal(isd_bhs_opcode(b), ISD_OP_TMF_RSP);
	assert_int_equal(isd_bhs_itt(b), tmf_itt);
	assert_int_equal(b[2], ISD_TMF_RSP_COMPLETE);
	rx_done(f, idx);
	pump(f, 20);
	assert_int_equal(f->nq, 0);     /* no response for the aborted WRITE */
	tur(f);
}

/*
 * A COMPARE AND WRITE that comes while a WRITE's RDMA Read into the same RAM
 * blocks is in flight: the adapter places that data while the reactor goes
 * on, so the COMPARE AND WRITE (its data immediate, nothing to fetch) waits
 * until the WRITE is over, then compares with what the WRITE brought. Run
 * at once it would compare with the old blocks and miscompare, and the
 * WRITE's data would land after its write.
 */
static void
test_caw_waits_for_rdma_read(void **state)
{
	struct fx *f = *state;
	struct ibv_qp *tqp = fv_ini_target_qp(f->ini);
	struct isd_iser_hdr h = { .opcode = ISD_ISER_OP_CTRL };
	uint8_t cdb[16], caw[16] = { 0x89 }, bhs[ISD_BHS_LEN], cw[1024], *b;
	uint32_t witt = f->itt++, citt = f->itt++;
	int idx, got_w = 0, got_c = 0;

	fill(lu_mem(f), 8192, 0x01);
	fill(f->data, 8192, 0x99);
	fv_qp_hold(tqp, true);
	rw10(cdb, 0x2a, 0, 16);
	send_cmd(f, ISD_CMD_W, witt, 8192, cdb, f->datamr->rkey);
	PUMP_UNTIL(f, fv_qp_pending_sends(tqp) == 1);
	assert_int_equal(fv_qp_pending_sends(tqp), 1);  /* the Read */

	/* block 0: what the WRITE brings -> 0x5a */
	caw[13] = 1;
	memcpy(cw, f->data, 512);
	memset(cw + 512, 0x5a, 512);
	cmd_bhs(f, bhs, ISD_CMD_W, citt, sizeof(cw), caw);
	ini_send(f, &h, bhs, cw, sizeof(cw));
	pump(f, 50);
	assert_int_equal(f->nq, 0);
	assert_int_equal(fv_qp_pending_sends(tqp), 1);
	assert_int_equal(lu_mem(f)[0], 0x01);

	/* the Read lands: the WRITE completes, then the COMPARE AND WRITE */
	assert_int_equal(fv_qp_step(tqp, 1), 1);
	fv_qp_hold(tqp, false);
	for (int i = 0; i < 2; i++) {
		idx = wait_pdu(f, &b, NULL, NULL);
		assert_true(idx >= 0);
		assert_int_equal(isd_bhs_opcode(b), ISD_OP_SCSI_RSP);
		assert_int_equal(b[3], 0);      /* GOOD */
		if (isd_bhs_itt(b) == witt)
			got_w = i + 1;
		else if (isd_bhs_itt(b) == citt)
			got_c = i + 1;
		rx_done(f, idx);
	}
	assert_int_equal(got_w, 1);
	assert_int_equal(got_c, 2);
	assert_memory_equal(lu_mem(f), cw + 512, 512);
	assert_memory_equal(lu_mem(f) + 512, f->data + 512, 8192 - 512);
	tur(f);
}

/* iWARP: an RDMA Read's sink needs remote write (RFC 5040); iserd registers
 * exactly the command's bytes for it and drops the registration after. */
static void
test_iwarp_read_sink(void **state)
{
	struct fx *f = *state;
	struct isd_iser_stats st;
	uint8_t cdb[16];
	uint32_t itt;

	fill(f->data, 32768, 0x3c);
	rw10(cdb, 0x2a, 64, 64);
	itt = f->itt++;
	send_cmd(f, ISD_CMD_W, itt, 32768, cdb, f->datamr->rkey);
	assert_int_equal(wait_scsi_rsp(f, itt), 0);
	assert_memory_equal(lu_mem(f) + 64 * 512, f->data, 32768);
	isd_iser_get_stats(&st);
	assert_true(st.remote_mrs_total >= 1);
	assert_int_equal(st.remote_mrs, 0);
	fill(lu_mem(f), 8192, 0x42);
	rw10(cdb, 0x28, 0, 16);
	itt = f->itt++;
	send_cmd(f, ISD_CMD_R, itt, 8192, cdb, f->datamr->rkey);
	assert_int_equal(wait_scsi_rsp(f, itt), 0);
	assert_memory_equal(f->data, lu_mem(f), 8192);
}

/* Device, portal and initiator allow remote invalidation: the REP says so and
 * the READ's response is a Send with Invalidate of its read STag. */
static void
test_remote_invalidate(void **state)
{
	struct fx *f = *state;
	struct isd_iser_stats st;
	uint8_t cdb[16];
	uint32_t itt;

	rw10(cdb, 0x28, 0, 8);
	itt = f->itt++;
	send_cmd(f, ISD_CMD_R, itt, 4096, cdb, f->datamr->rkey);
	assert_int_equal(wait_scsi_rsp(f, itt), 0);
	assert_true(f->last.wc_flags & IBV_WC_WITH_INV);
	assert_int_equal(f->last.inv_rkey, f->datamr->rkey);
	isd_iser_get_stats(&st);
	assert_true(st.remote_invalidations >= 1);
}

/* Eight READs that arrive together: the target takes them in one CQ poll and
 * posts all eight RDMA Writes and responses with one ibv_post_send, in order,
 * each response behind its data. */
static void
test_responses_batched(void **state)
{
	struct fx *f = *state;
	struct isd_iser_stats st0, st;
	struct fv_stats fs0, fs;
	uint8_t cdb[16];
	uint32_t itt0 = f->itt;

	fill(lu_mem(f), 4096, 0x3c);
	isd_iser_get_stats(&st0);
	fv_get_stats(&fs0);
	rw10(cdb, 0x28, 0, 8);
	for (int i = 0; i < 8; i++)
		send_cmd(f, ISD_CMD_R, f->itt++, 4096, cdb, f->datamr->rkey);
	for (uint32_t i = 0; i < 8; i++)
		assert_int_equal(wait_scsi_rsp(f, itt0 + i), 0);
	assert_memory_equal(f->data, lu_mem(f), 4096);
	isd_iser_get_stats(&st);
	fv_get_stats(&fs);
	assert_int_equal(fs.writes - fs0.writes, 8);
	assert_int_equal(st.posted_wrs - st0.posted_wrs, 16);
	assert_int_equal(st.posts - st0.posts, 1);
}

/* Eight 4 KiB WRITEs whose data comes immediate, as the kernel's ib_iser sends
 * them at FirstBurstLength >= 4 KiB, that arrive together: nothing to fetch,
 * so the target takes them in one CQ poll and posts the eight responses with
 * one ibv_post_send. */
static void
test_immediate_writes_batched(void **state)
{
	struct fx *f = *state;
	struct isd_iser_hdr h = { .opcode = ISD_ISER_OP_CTRL };
	struct isd_iser_stats st0, st;
	uint8_t cdb[16], bhs[ISD_BHS_LEN];
	uint32_t itt0 = f->itt;

	fill(f->data, 8 * 4096, 0x6b);
	isd_iser_get_stats(&st0);
	for (int i = 0; i < 8; i++) {
		rw10(cdb, 0x2a, (uint32_t)i * 8, 8);
		cmd_bhs(f, bhs, ISD_CMD_W, f->itt++, 4096, cdb);
		ini_send(f, &h, bhs, f->data + i * 4096, 4096);
	}
	for (uint32_t i = 0; i < 8; i++)
		assert_int_equal(wait_scsi_rsp(f, itt0 + i), 0);
	assert_memory_equal(lu_mem(f), f->data, 8 * 4096);
	isd_iser_get_stats(&st);
	assert_int_equal(st.posted_wrs - st0.posted_wrs, 8);
	assert_int_equal(st.posts - st0.posts, 1);
}

/* Thirty-two 2 MiB READs that arrive together: two RDMA Writes and a response
 * each, 96 WRs, more than one batch holds (ISD_ISER_BATCH_WRS): the kick posts
 * a full batch and goes on with the rest; every response comes, in order,
 * and each READ's data is whole. */
static void
test_batch_overflow(void **state)
{
	struct fx *f = *state;
	struct isd_iser_stats st0, st;
	uint8_t cdb[16];
	uint32_t itt0 = f->itt, len = 2u << 20;

	fill(lu_mem(f), len, 0x5a);
	isd_iser_get_stats(&st0);
	rw10(cdb, 0x28, 0, (uint16_t)(len / 512));
	for (int i = 0; i < 32; i++)
		send_cmd(f, ISD_CMD_R, f->itt++, len, cdb, f->datamr->rkey);
	for (uint32_t i = 0; i < 32; i++)
		assert_int_equal(wait_scsi_rsp(f, itt0 + i), 0);
	assert_memory_equal(f->data, lu_mem(f), len);
	isd_iser_get_stats(&st);
	assert_int_equal(st.posted_wrs - st0.posted_wrs, 96);
	assert_true(st.posts - st0.posts >= 2);
	assert_true(st.posts - st0.posts < 32);
	PUMP_UNTIL(f, (isd_iser_get_stats(&st), st.jobs == 0));
	assert_int_equal(st.jobs, 0);
}

/* A 2 MiB READ and WRITE: more than one RDMA WR each (ISD_ISER_WR_BYTES),
 * the Writes chained with the response Send. */
static void
test_large_transfers(void **state)
{
	struct fx *f = *state;
	struct fv_stats fs;
	uint8_t cdb[16];
	uint32_t itt, len = 2u << 20;

	fill(lu_mem(f) + (1u << 20), len, 0x17);
	rw10(cdb, 0x28, 2048, (uint16_t)(len / 512));
	itt = f->itt++;
	send_cmd(f, ISD_CMD_R, itt, len, cdb, f->datamr->rkey);
	assert_int_equal(wait_scsi_rsp(f, itt), 0);
	assert_memory_equal(f->data, lu_mem(f) + (1u << 20), len);
	fv_get_stats(&fs);
	assert_true(fs.writes >= 2);
	assert_int_equal(fs.write_bytes, len);

	fill(f->data, len, 0x71);
	rw10(cdb, 0x2a, 0, (uint16_t)(len / 512));
	itt = f->itt++;
	send_cmd(f, ISD_CMD_W, itt, len, cdb, f->datamr->rkey);
	assert_int_equal(wait_scsi_rsp(f, itt), 0);
	assert_memory_equal(lu_mem(f), f->data, len);
	fv_get_stats(&fs);
	assert_true(fs.reads >= 2);
	assert_int_equal(fs.read_bytes, len);
}

/* The RAM LU's memory is not registered (iserd always registers it; this is
 * the fallback): the data is bounced through registered pool buffers, which
 * all come back. */
static void
test_bounce_unregistered_lun(void **state)
{
	struct fx *f = *state;
	struct isd_iser_stats st;
	uint64_t bounced;
	uint8_t cdb[16];
	uint32_t itt;

	isd_iser_get_stats(&st);
	bounced = st.bytes_bounced;

	fill(f->data, 65536, 0x29);
	rw10(cdb, 0x2a, 8, 128);
	itt = f->itt++;
	send_cmd(f, ISD_CMD_W, itt, 65536, cdb, f->datamr->rkey);
	assert_int_equal(wait_scsi_rsp(f, itt), 0);
	assert_memory_equal(lu_mem(f) + 8 * 512, f->data, 65536);
	memset(f->data, 0, 65536);
	rw10(cdb, 0x28, 8, 128);
	itt = f->itt++;
	send_cmd(f, ISD_CMD_R, itt, 65536, cdb, f->datamr->rkey);
	assert_int_equal(wait_scsi_rsp(f, itt), 0);
	assert_memory_equal(f->data, lu_mem(f) + 8 * 512, 65536);
	/* the response can arrive before the target has reaped the completion
	 * that returns the bounce buffer */
	PUMP_UNTIL(f, (isd_iser_get_stats(&st), st.bufs == 0));
	assert_int_equal(st.bytes_bounced - bounced, 2 * 65536);
	assert_int_equal(st.bufs, 0);
}

/* A file LU: the data moves by RDMA straight to and from registered pool
 * buffers (nothing bounced), which all come back. */
static void
test_file_lun_pool_buffers(void **state)
{
	struct fx *f = *state;
	struct isd_iser_stats st;
	uint64_t bounced;
	uint8_t cdb[16], *copy = malloc(131072);
	uint32_t itt;

	assert_non_null(copy);
	isd_iser_get_stats(&st);
	bounced = st.bytes_bounced;
	fill(f->data, 131072, 0x66);
	memcpy(copy, f->data, 131072);
	rw10(cdb, 0x2a, 100, 256);
	itt = f->itt++;
	send_cmd(f, ISD_CMD_W, itt, 131072, cdb, f->datamr->rkey);
	assert_int_equal(wait_scsi_rsp(f, itt), 0);
	memset(f->data, 0, 131072);
	rw10(cdb, 0x28, 100, 256);
	itt = f->itt++;
	send_cmd(f, ISD_CMD_R, itt, 131072, cdb, f->datamr->rkey);
	assert_int_equal(wait_scsi_rsp(f, itt), 0);
	assert_memory_equal(f->data, copy, 131072);
	/* the buffer goes back when the response's Send completes, which may be
	 * a turn after the initiator saw the response */
	isd_iser_get_stats(&st);
	PUMP_UNTIL(f, (isd_iser_get_stats(&st), st.bufs == 0));
	assert_int_equal(st.bytes_bounced, bounced);
	assert_int_equal(st.bufs, 0);
	free(copy);
}

/* Eight READs of a file LU that arrive together: their data comes from the
 * store after the CQ poll, each completion queueing its RDMA Write and
 * response; they are posted at the end of the reactor turn, together, not
 * one post per completion. */
static void
test_file_lun_responses_batched(void **state)
{
	struct fx *f = *state;
	struct isd_iser_stats st0, st;
	uint8_t cdb[16];
	uint32_t itt0 = f->itt;

	isd_iser_get_stats(&st0);
	rw10(cdb, 0x28, 0, 8);
	for (int i = 0; i < 8; i++)
		send_cmd(f, ISD_CMD_R, f->itt++, 4096, cdb, f->datamr->rkey);
	for (uint32_t i = 0; i < 8; i++)
		assert_int_equal(wait_scsi_rsp(f, itt0 + i), 0);
	isd_iser_get_stats(&st);
	assert_int_equal(st.posted_wrs - st0.posted_wrs, 16);
	assert_true(st.posts - st0.posts < 8);
	PUMP_UNTIL(f, (isd_iser_get_stats(&st), st.bufs == 0 && st.jobs == 0));
	assert_int_equal(st.bufs, 0);
}

/* The initiator disconnects with a READ's RDMA Writes and response Send
 * queued on the target's QP: all flushed, the command fails, nothing leaks. */
static void
test_disconnect_mid_write_chain(void **state)
{
	struct fx *f = *state;
	struct ibv_qp *tqp = fv_ini_target_qp(f->ini);
	struct fv_stats fs;
	uint8_t cdb[16];

	fv_qp_hold(tqp, true);
	rw10(cdb, 0x28, 0, 2048);       /* 1 MiB: a Write and the Send */
	send_cmd(f, ISD_CMD_R, f->itt++, 1u << 20, cdb, f->datamr->rkey);
	PUMP_UNTIL(f, fv_qp_pending_sends(tqp) >= 2);
	assert_true(fv_qp_pending_sends(tqp) >= 2);
	fv_ini_disconnect(f->ini);
	PUMP_UNTIL(f, iser_conns() == 0);
	assert_int_equal(iser_conns(), 0);
	fv_get_stats(&fs);
	assert_true(fs.flushed >= 2);
	assert_int_equal(fs.writes, 0);
	assert_int_equal(f->nq, 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_read_write_logout, setup, teardown),
		cmocka_unit_test_setup_teardown(test_login_before_established,
						setup_late_established, teardown),
		cmocka_unit_test_setup_teardown(test_post_fail_put_data, setup, teardown),
		cmocka_unit_test_setup_teardown(test_post_fail_no_drain_marker, setup, teardown),
		cmocka_unit_test_setup_teardown(test_post_fail_get_data, setup, teardown),
		cmocka_unit_test_setup_teardown(test_disconnect_mid_read, setup, teardown),
		cmocka_unit_test_setup_teardown(test_disconnect_mid_write_chain, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rnr_backpressure, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rnr_exhausted, setup, teardown),
		cmocka_unit_test_setup_teardown(test_remote_access_error, setup, teardown),
		cmocka_unit_test_setup_teardown(test_abort_fence, setup, teardown),
		cmocka_unit_test_setup_teardown(test_caw_waits_for_rdma_read, setup_immediate,
						teardown),
		cmocka_unit_test_setup_teardown(test_iwarp_read_sink, setup_iwarp, teardown),
		cmocka_unit_test_setup_teardown(test_remote_invalidate, setup_remote_inv, teardown),
		cmocka_unit_test_setup_teardown(test_responses_batched, setup, teardown),
		cmocka_unit_test_setup_teardown(test_immediate_writes_batched, setup_immediate,
						teardown),
		cmocka_unit_test_setup_teardown(test_batch_overflow, setup, teardown),
		cmocka_unit_test_setup_teardown(test_large_transfers, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bounce_unregistered_lun, setup_pool, teardown),
		cmocka_unit_test_setup_teardown(test_file_lun_pool_buffers, setup_file, teardown),
		cmocka_unit_test_setup_teardown(test_file_lun_responses_batched, setup_file, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
