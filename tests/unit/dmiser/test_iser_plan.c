/*
 * The pure parts of the iSER datamover: splitting transfers into RDMA work
 * requests, receive checks and sizing, queue sizing, send credits, and the
 * 128-byte rule toward Linux initiators (docs/iser.md W1, W8,
 * §6, §9).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <string.h>

#include "dm/iser/iser_int.h"
#include "util/endian.h"

#define MiB (1u << 20)

static void
test_plan_splits_by_wr_bytes(void **state)
{
	struct iovec iov = { (void *)(uintptr_t)0x100000, 3 * MiB + 100 };
	struct isd_iser_wr_plan p[8];
	uint32_t covered;
	int n;

	(void)state;
	n = isd_iser_plan_wrs(&iov, 1, 0, 3 * MiB + 100, 8, MiB, p, 8, &covered);
	assert_int_equal(n, 4);
	assert_int_equal(covered, 3 * MiB + 100);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(p[i].nsge, 1);
		assert_int_equal(p[i].bytes, MiB);
		assert_int_equal(p[i].remote_off, i * MiB);
		assert_int_equal(p[i].sge[0].addr, 0x100000 + (uint64_t)i * MiB);
	}
	assert_int_equal(p[3].bytes, 100);
	assert_int_equal(p[3].remote_off, 3 * MiB);
}

static void
test_plan_gathers_iovecs_up_to_max_sge(void **state)
{
	struct iovec iov[5];
	struct isd_iser_wr_plan p[8];
	uint32_t covered;
	int n;

	(void)state;
	for (int i = 0; i < 5; i++) {
		iov[i].iov_base = (void *)(uintptr_t)(0x10000 * (i + 1));
		iov[i].iov_len = 4096;
	}
	/* offset 1000 into the first entry, 4 SGEs per WR */
	n = isd_iser_plan_wrs(iov, 5, 1000, 5 * 4096 - 1000, 4, MiB, p, 8, &covered);
	assert_int_equal(n, 2);
	assert_int_equal(covered, 5 * 4096 - 1000);
	assert_int_equal(p[0].nsge, 4);
	assert_int_equal(p[0].sge[0].addr, 0x10000 + 1000);
	assert_int_equal(p[0].sge[0].length, 4096 - 1000);
	assert_int_equal(p[0].bytes, 4 * 4096 - 1000);
	assert_int_equal(p[1].nsge, 1);
	assert_int_equal(p[1].remote_off, 4 * 4096 - 1000);
	assert_int_equal(p[1].sge[0].addr, 0x50000);
}

/* iWARP: max_sge_rd 1 gives one SGE per RDMA Read, never crossing an iovec. */
static void
test_plan_one_sge_for_iwarp_reads(void **state)
{
	struct iovec iov[2] = {
		{ (void *)(uintptr_t)0x1000, 6000 },
		{ (void *)(uintptr_t)0x9000, 6000 },
	};
	struct isd_iser_wr_plan p[4];
	uint32_t covered;
	int n;

	(void)state;
	n = isd_iser_plan_wrs(iov, 2, 0, 12000, 1, MiB, p, 4, &covered);
	assert_int_equal(n, 2);
	assert_int_equal(p[0].nsge, 1);
	assert_int_equal(p[0].bytes, 6000);
	assert_int_equal(p[1].nsge, 1);
	assert_int_equal(p[1].remote_off, 6000);
}

/* A partial plan when out_max (free send-queue slots, ORD) runs out. */
static void
test_plan_stops_at_out_max(void **state)
{
	struct iovec iov = { (void *)(uintptr_t)0x100000, 4 * MiB };
	struct isd_iser_wr_plan p[2];
	uint32_t covered;

	(void)state;
	assert_int_equal(isd_iser_plan_wrs(&iov, 1, MiB / 2, 3 * MiB, 8, MiB, p, 2, &covered), 2);
	assert_int_equal(covered, 2 * MiB);
	assert_int_equal(p[0].sge[0].addr, 0x100000 + MiB / 2);
	/* the next round continues where this one stopped */
	assert_int_equal(isd_iser_plan_wrs(&iov, 1, MiB / 2 + covered, MiB, 8, MiB, p, 2,
					   &covered), 1);
	assert_int_equal(covered, MiB);
	assert_int_equal(p[0].sge[0].addr, 0x100000 + MiB / 2 + 2 * MiB);
}

static void
test_plan_short_iov_and_bad_args(void **state)
{
	struct iovec iov = { (void *)(uintptr_t)0x1000, 100 };
	struct isd_iser_wr_plan p[2];
	uint32_t covered;

	(void)state;
	assert_int_equal(isd_iser_plan_wrs(&iov, 1, 0, 200, 8, MiB, p, 2, &covered), 1);
	assert_int_equal(covered, 100);
	assert_int_equal(isd_iser_plan_wrs(&iov, 1, 100, 10, 8, MiB, p, 2, &covered), 0);
	assert_int_equal(covered, 0);
	assert_int_equal(isd_iser_plan_wrs(&iov, 1, 0, 10, 0, MiB, p, 2, &covered), -EINVAL);
	assert_int_equal(isd_iser_plan_wrs(&iov, 1, 0, 10, 8, MiB, p, 0, &covered), -EINVAL);
}

/* A received Send: iSER header, BHS with AHS/DSL, data. */
static uint32_t
make_rx(uint8_t *buf, uint8_t iser_flags, uint8_t ahs_words, uint32_t dsl)
{
	memset(buf, 0, 1024);
	buf[0] = iser_flags;
	buf[ISD_ISER_HDR_LEN + 0] = 0x01;               /* SCSI Command */
	buf[ISD_ISER_HDR_LEN + 4] = ahs_words;
	put_be24(buf + ISD_ISER_HDR_LEN + 5, dsl);
	return ISD_ISER_HEADERS_LEN + ahs_words * 4u + dsl;
}

static void
test_rx_check_lengths(void **state)
{
	uint8_t buf[1024];
	struct isd_iser_rx_info in;
	uint32_t len;

	(void)state;
	len = make_rx(buf, 0x18, 0, 100);
	assert_int_equal(isd_iser_rx_check(buf, len, &in), 0);
	assert_int_equal(in.dsl, 100);
	assert_true(in.hdr.wsv);
	/* up to 4 pad bytes are tolerated (docs/iser.md W1), more are not */
	assert_int_equal(isd_iser_rx_check(buf, len + 3, &in), 0);
	assert_int_equal(isd_iser_rx_check(buf, len + 4, &in), 0);
	assert_int_equal(isd_iser_rx_check(buf, len + 5, &in), -EINVAL);
	/* DSL claims more than arrived */
	assert_int_equal(isd_iser_rx_check(buf, len - 1, &in), -EINVAL);
	/* AHS counts */
	len = make_rx(buf, 0x10, 2, 16);
	assert_int_equal(isd_iser_rx_check(buf, len, &in), 0);
	assert_int_equal(in.ahs_len, 8);
	assert_int_equal(isd_iser_rx_check(buf, len - 8, &in), -EINVAL);
	/* shorter than iSER header + BHS */
	assert_int_equal(isd_iser_rx_check(buf, ISD_ISER_HEADERS_LEN - 1, &in), -EINVAL);
	assert_int_equal(isd_iser_rx_check(buf, 10, &in), -EINVAL);
}

static void
test_rx_check_iser_opcodes(void **state)
{
	uint8_t buf[1024];
	struct isd_iser_rx_info in;

	(void)state;
	memset(buf, 0, sizeof(buf));
	buf[0] = ISD_ISER_OP_HELLO;
	buf[1] = 0x11;
	assert_int_equal(isd_iser_rx_check(buf, ISD_ISER_HDR_LEN, &in), ISD_ISER_RX_HELLO);
	buf[0] = ISD_ISER_OP_HELLO_REPLY;
	assert_int_equal(isd_iser_rx_check(buf, ISD_ISER_HDR_LEN, &in), -EPROTO);
	buf[0] = 0x50;
	assert_int_equal(isd_iser_rx_check(buf, ISD_ISER_HEADERS_LEN, &in), -EINVAL);
}

static void
test_rx_sizing(void **state)
{
	struct isd_params p;

	(void)state;
	isd_params_init_defaults(&p);
	p.rdma_extensions = true;
	p.session_type = ISD_SESSION_NORMAL;
	p.target_recv_dsl = 512;
	assert_int_equal(isd_iser_rx_data_size(&p), 8192);     /* never below login size */
	p.target_recv_dsl = 262144;
	assert_int_equal(isd_iser_rx_data_size(&p), 262144);
	/* larger than we ever offer: not honoured */
	p.target_recv_dsl = 16u << 20;
	assert_int_equal(isd_iser_rx_data_size(&p), ISD_ISER_TRDSL_MAX);
	p.rdma_extensions = false;
	p.max_recv_dsl = 16u << 20;
	assert_int_equal(isd_iser_rx_data_size(&p), ISD_ISER_TRDSL_MAX);
	p.rdma_extensions = true;
	/* 8 KiB buffers: the full 256; 256 KiB ones: bounded by the memory budget */
	assert_int_equal(isd_iser_rx_count(&p, 8192, 1000, 32u << 20), ISD_ISER_RX_MAX);
	assert_int_equal(isd_iser_rx_count(&p, 262144, 1000, 8u << 20),
			 (8u << 20) / isd_iser_rx_buf_size(262144));
	assert_true(isd_iser_rx_count(&p, 262144, 1000, 8u << 20) * isd_iser_rx_buf_size(262144) <=
		    8u << 20);
	/* never fewer than the minimum: worst case 16 buffers of the largest size */
	assert_int_equal(isd_iser_rx_count(&p, ISD_ISER_TRDSL_MAX, 1000, 1u << 20),
			 ISD_ISER_RX_MIN);
	assert_int_equal(isd_iser_rx_count(&p, 8192, 100, 32u << 20), 100);
	/* discovery over iSER: no RDMAExtensions, 8 KiB text (docs/iser.md W5) */
	p.session_type = ISD_SESSION_DISCOVERY;
	p.rdma_extensions = false;
	p.max_recv_dsl = 262144;
	assert_int_equal(isd_iser_rx_data_size(&p), 8192);
	assert_int_equal(isd_iser_rx_count(&p, 8192, 1000, 32u << 20), ISD_ISER_RX_DISCOVERY);
}

/* The TRDSL offered: the CmdSN window (plus slack) of receives fits the memory. */
static void
test_trdsl_for_recv_memory(void **state)
{
	(void)state;
	/* the default: 8 MiB, queue depth 128 -> 144 receives of 32 KiB (4.8 MiB) */
	assert_int_equal(isd_iser_trdsl_for(8u << 20, 128), 32768);
	assert_true((128 + ISD_ISER_RX_SLACK) * isd_iser_rx_buf_size(32768) <= 8u << 20);
	assert_true((128 + ISD_ISER_RX_SLACK) * isd_iser_rx_buf_size(65536) > 8u << 20);
	/* the old 32 MiB allows 128 KiB */
	assert_int_equal(isd_iser_trdsl_for(32u << 20, 128), 131072);
	/* plenty of memory: never above the maximum */
	assert_int_equal(isd_iser_trdsl_for(256u << 20, 1), ISD_ISER_TRDSL_MAX);
	/* too little for any: the login size, whatever the depth */
	assert_int_equal(isd_iser_trdsl_for(1u << 20, 4096), 8192);
	/* a deep window counts as the 256 receives we post at most */
	assert_int_equal(isd_iser_trdsl_for(8u << 20, 4096), isd_iser_trdsl_for(8u << 20, 240));
	/* and with the receive count that follows, the connection stays within the memory */
	for (uint32_t qd = 1; qd <= 4096; qd *= 2) {
		struct isd_params p;
		uint32_t d = isd_iser_trdsl_for(8u << 20, qd);
		uint32_t n;

		isd_params_init_defaults(&p);
		p.rdma_extensions = true;
		p.target_recv_dsl = d;
		n = isd_iser_rx_count(&p, isd_iser_rx_data_size(&p), 1000, 8u << 20);
		assert_true((uint64_t)n * isd_iser_rx_buf_size(d) <= 8u << 20);
		if (qd + ISD_ISER_RX_SLACK <= ISD_ISER_RX_MAX)
			assert_true(n >= qd + ISD_ISER_RX_SLACK);
	}
}

static void
test_qp_sizing_from_device(void **state)
{
	struct ibv_device_attr a;
	struct isd_iser_qp_size q;

	(void)state;
	memset(&a, 0, sizeof(a));
	a.max_qp_wr = 16384;            /* rxe */
	a.max_sge = 32;
	a.max_sge_rd = 32;
	a.max_cqe = 32767;
	isd_iser_qp_size(&a, &q);
	assert_int_equal(q.max_send_wr,
			 ISD_ISER_QUEUE_DEPTH * (1 + ISD_ISER_WRS_PER_CMD) + ISD_ISER_TX_BIG + 17);
	assert_int_equal(q.max_recv_wr, ISD_ISER_RX_MAX + 2);
	assert_int_equal(q.wr_sge, ISD_ISER_MAX_SGE);
	assert_int_equal(q.rd_sge, ISD_ISER_MAX_SGE);
	assert_int_equal(q.cq_depth, q.max_send_wr + q.max_recv_wr);
	/* a small device: everything clamps; max_sge_rd 1 (siw-like) */
	a.max_qp_wr = 100;
	a.max_sge = 4;
	a.max_sge_rd = 1;
	a.max_cqe = 150;
	isd_iser_qp_size(&a, &q);
	assert_int_equal(q.max_send_wr, 99);
	assert_int_equal(q.max_recv_wr, 99);
	assert_int_equal(q.wr_sge, 4);
	assert_int_equal(q.rd_sge, 1);
	assert_int_equal(q.cq_depth, 150);
}

static void
test_ord_is_min_of_peer_and_device(void **state)
{
	(void)state;
	/* the CONNECT_REQUEST's param as rdma_cm delivers it to the target: the
	 * peer's responder_resources in initiator_depth and vice versa */
	struct rdma_conn_param lini = { .initiator_depth = 128, .responder_resources = 1 };
	struct rdma_conn_param lis = { .initiator_depth = 4, .responder_resources = 0 };
	struct rdma_conn_param none = { .initiator_depth = 0, .responder_resources = 4 };

	/* L-ini offers responder_resources = device max_qp_rd_atom, initiator_depth 1 */
	assert_int_equal(isd_iser_ord(&lini, 16), 16);
	assert_int_equal(isd_iser_ord(&lini, 200), 128);
	/* libiscsi: responder_resources 4, initiator_depth 0 (its REQ) */
	assert_int_equal(isd_iser_ord(&lis, 16), 4);
	/* a peer that accepts no RDMA Reads */
	assert_int_equal(isd_iser_ord(&none, 16), 0);
}

static void
test_credits(void **state)
{
	struct isd_iser_credits cr;

	(void)state;
	isd_iser_credits_init(&cr, 10, 2);
	assert_true(isd_iser_credits_take_sq(&cr, 8));
	assert_false(isd_iser_credits_take_sq(&cr, 3));
	assert_true(isd_iser_credits_take_read(&cr));
	assert_true(isd_iser_credits_take_read(&cr) == true);
	assert_int_equal(cr.sq_used, 10);
	/* the ORD and the send queue both bound reads */
	isd_iser_credits_put_sq(&cr, 8);
	assert_false(isd_iser_credits_take_read(&cr));
	isd_iser_credits_put_read(&cr);
	assert_true(isd_iser_credits_take_read(&cr));
	assert_int_equal(cr.reads, 2);
	/* ORD above what we track is capped */
	isd_iser_credits_init(&cr, 10, 200);
	assert_int_equal(cr.ord, ISD_ISER_READS_MAX);
	/* putting more than used never underflows */
	isd_iser_credits_put_sq(&cr, 5);
	assert_int_equal(cr.sq_used, 0);
}

/* Remote invalidation: only a peer that sent the CM header without
 * SEND_W_INV_NOT_SUP, on a device that can, with the target's switch on. */
/* The control-PDU queue: held at the soft limit (count or bytes), released at
 * half, and refused past the hard limit without accounting anything. */
static void
test_txq_soft_and_hard_limits(void **state)
{
	struct isd_iser_txq q = { 0 };
	uint32_t i;

	(void)state;
	for (i = 1; i < ISD_ISER_TXQ_SOFT; i++)
		assert_int_equal(isd_iser_txq_add(&q, 100), ISD_ISER_TXQ_OK);
	assert_false(q.held);
	assert_int_equal(isd_iser_txq_add(&q, 100), ISD_ISER_TXQ_HOLD);
	assert_true(q.held);
	/* a peer keeps provoking replies: at most up to the hard limit */
	for (i = ISD_ISER_TXQ_SOFT; i < ISD_ISER_TXQ_MAX; i++)
		assert_int_equal(isd_iser_txq_add(&q, 100), ISD_ISER_TXQ_OK);
	assert_int_equal(q.count, ISD_ISER_TXQ_MAX);
	assert_int_equal(isd_iser_txq_add(&q, 100), ISD_ISER_TXQ_FULL);
	assert_int_equal(q.count, ISD_ISER_TXQ_MAX);
	assert_int_equal(q.bytes, ISD_ISER_TXQ_MAX * 100);
	/* draining: still held until half the soft limit */
	while (q.count > ISD_ISER_TXQ_SOFT / 2 + 1)
		assert_false(isd_iser_txq_del(&q, 100));
	assert_true(q.held);
	assert_true(isd_iser_txq_del(&q, 100));
	assert_false(q.held);
	while (q.count > 0)
		assert_false(isd_iser_txq_del(&q, 100));
	assert_int_equal(q.bytes, 0);
	assert_false(isd_iser_txq_del(&q, 100));        /* never below zero */
	assert_int_equal(q.count, 0);

	/* bytes: big Text responses hit the byte limits first */
	memset(&q, 0, sizeof(q));
	assert_int_equal(isd_iser_txq_add(&q, ISD_ISER_TXQ_SOFT_BYTES - 1), ISD_ISER_TXQ_OK);
	assert_int_equal(isd_iser_txq_add(&q, 1), ISD_ISER_TXQ_HOLD);
	assert_int_equal(isd_iser_txq_add(&q, ISD_ISER_TXQ_MAX_BYTES - ISD_ISER_TXQ_SOFT_BYTES),
			 ISD_ISER_TXQ_OK);
	assert_int_equal(isd_iser_txq_add(&q, 1), ISD_ISER_TXQ_FULL);
	assert_int_equal(isd_iser_txq_add(&q, UINT32_MAX), ISD_ISER_TXQ_FULL);
	assert_int_equal(q.bytes, ISD_ISER_TXQ_MAX_BYTES);
	assert_int_equal(q.count, 3);
}

/* The send-queue stall check: posted work and no completion since the last look. */
static void
test_tx_stall_check(void **state)
{
	(void)state;
	assert_true(isd_iser_tx_stalled(3, 10, 10));    /* posted, nothing completed */
	assert_false(isd_iser_tx_stalled(3, 11, 10));   /* progress */
	assert_false(isd_iser_tx_stalled(0, 10, 10));   /* idle: nothing to wait for */
}

static void
test_remote_inv_negotiation(void **state)
{
	struct isd_iser_cm linux_ini, libiscsi_ini, none;
	uint8_t l[4] = {0x80, 0, 0, 0}, li[4] = {0xc0, 0, 0, 0};

	(void)state;
	isd_iser_cm_decode(l, sizeof(l), &linux_ini);
	isd_iser_cm_decode(li, sizeof(li), &libiscsi_ini);
	isd_iser_cm_decode(NULL, 0, &none);
	assert_true(isd_iser_remote_inv_ok(&linux_ini, true, true));
	assert_false(isd_iser_remote_inv_ok(&linux_ini, false, true));  /* device cannot */
	assert_false(isd_iser_remote_inv_ok(&linux_ini, true, false));  /* switched off */
	assert_false(isd_iser_remote_inv_ok(&libiscsi_ini, true, true));
	assert_false(isd_iser_remote_inv_ok(&none, true, true));        /* no private data */
}

/* Which STag a SCSI Response invalidates. */
static void
test_inv_stag_choice(void **state)
{
	struct isd_iser_hdr h;
	uint32_t rkey = 0xdead;

	(void)state;
	memset(&h, 0, sizeof(h));
	h.read_stag = 0x1234;
	h.write_stag = 0x5678;
	assert_false(isd_iser_inv_stag(&h, &rkey));     /* no STag: TUR, all-immediate write */
	assert_int_equal(rkey, 0xdead);
	h.rsv = true;
	assert_true(isd_iser_inv_stag(&h, &rkey));      /* read */
	assert_int_equal(rkey, 0x1234);
	h.rsv = false;
	h.wsv = true;
	assert_true(isd_iser_inv_stag(&h, &rkey));      /* write with solicited data */
	assert_int_equal(rkey, 0x5678);
	h.rsv = true;
	rkey = 0xdead;
	assert_false(isd_iser_inv_stag(&h, &rkey));     /* bidirectional: plain Send */
	assert_int_equal(rkey, 0xdead);
	h.wsv = false;
	h.read_stag = 0;                                /* a zero key is still a key */
	assert_true(isd_iser_inv_stag(&h, &rkey));
	assert_int_equal(rkey, 0);
}

static void
test_pdu_classes(void **state)
{
	uint8_t bhs[ISD_BHS_LEN];

	(void)state;
	memset(bhs, 0, sizeof(bhs));
	bhs[0] = ISD_OP_NOP_IN;
	put_be32(bhs + 16, ISD_RSVD_TAG);
	assert_true(isd_iser_pdu_is_unexpected(bhs));   /* a ping */
	put_be32(bhs + 16, 7);
	assert_false(isd_iser_pdu_is_unexpected(bhs));  /* an answer */
	bhs[0] = ISD_OP_ASYNC_MSG;
	assert_true(isd_iser_pdu_is_unexpected(bhs));
	bhs[0] = ISD_OP_SCSI_RSP;
	assert_false(isd_iser_pdu_is_unexpected(bhs));
}

/* Sense data is cut to fit a 128-byte receive; other PDUs cannot be shortened. */
static void
test_fit_data_truncates_sense(void **state)
{
	uint8_t bhs[ISD_BHS_LEN], data[300];

	(void)state;
	memset(bhs, 0, sizeof(bhs));
	memset(data, 0xab, sizeof(data));
	bhs[0] = ISD_OP_SCSI_RSP;
	put_be16(data, 98);
	isd_bhs_set_dsl(bhs, 100);
	assert_int_equal(isd_iser_fit_data(bhs, data, 100, 128), 100);
	put_be16(data, 250);
	isd_bhs_set_dsl(bhs, 252);
	assert_int_equal(isd_iser_fit_data(bhs, data, 252, 128), 128);
	assert_int_equal(get_be16(data), 126);
	assert_int_equal(isd_bhs_dsl(bhs), 128);
	bhs[0] = ISD_OP_TEXT_RSP;
	assert_int_equal(isd_iser_fit_data(bhs, data, 200, 128), -EMSGSIZE);
	assert_int_equal(isd_iser_fit_data(bhs, data, 100, 128), 100);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_plan_splits_by_wr_bytes),
		cmocka_unit_test(test_plan_gathers_iovecs_up_to_max_sge),
		cmocka_unit_test(test_plan_one_sge_for_iwarp_reads),
		cmocka_unit_test(test_plan_stops_at_out_max),
		cmocka_unit_test(test_plan_short_iov_and_bad_args),
		cmocka_unit_test(test_rx_check_lengths),
		cmocka_unit_test(test_rx_check_iser_opcodes),
		cmocka_unit_test(test_rx_sizing),
		cmocka_unit_test(test_trdsl_for_recv_memory),
		cmocka_unit_test(test_qp_sizing_from_device),
		cmocka_unit_test(test_ord_is_min_of_peer_and_device),
		cmocka_unit_test(test_credits),
		cmocka_unit_test(test_txq_soft_and_hard_limits),
		cmocka_unit_test(test_tx_stall_check),
		cmocka_unit_test(test_pdu_classes),
		cmocka_unit_test(test_remote_inv_negotiation),
		cmocka_unit_test(test_inv_stag_choice),
		cmocka_unit_test(test_fit_data_truncates_sense),
	};

	return cmocka_run_group_tests_name("iser_plan", tests, NULL, NULL);
}
