/*
 * The verbs-free half of the iSER datamover's receive path, as
 * isd_iser_rx_complete() runs it on a received Send: the length check
 * (isd_iser_rx_check) of iSER header + BHS + AHS + data against the bytes
 * that arrived, the PDU it hands to the core built the same way, the checks
 * the core then makes (BHS, AHS), and the decisions taken from the header
 * (STag to invalidate, unexpected PDU, transit login). Also the connect-time
 * inputs: CM private data, the peer's initiator depth, and the sizing of
 * receive buffers and RDMA work requests from negotiated values; and the
 * shortening of a response to the peer's limit (isd_iser_fit_data).
 * fuzz_iser_hdr covers the header codec alone.
 *
 * Input (make_corpus.py writes seeds in this layout):
 *   [0..15] parameters: [0] session type / RDMAExtensions / CM flags,
 *           [1..4] MaxRecvDataSegmentLength, [5..8] TargetRecvDataSegmentLength,
 *           [9] peer's initiator depth, [10] device max, [11] max SGEs,
 *           [12..15] a limit for fit_data and plan_wrs
 *   [16..]  the received buffer (byte_len = its length)
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <rdma/rdma_cma.h>

#include "dm/iser/iser_int.h"
#include "dm/iser/iser_proto.h"
#include "fuzz_input.h"
#include "iscsi/keys.h"
#include "iscsi/pdu.h"
#include "util/endian.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static volatile uint64_t g_sink;

static void
check_rx(const uint8_t *buf, uint32_t len, uint32_t max_dsl)
{
	struct isd_iser_rx_info info;
	struct isd_ahs_info ahs;
	const uint8_t *bhs, *ahs_p, *data_p;
	uint32_t rkey;
	int rc;

	rc = isd_iser_rx_check(buf, len, &info);
	if (rc == ISD_ISER_RX_HELLO) {
		struct isd_iser_hello h;

		if (isd_iser_hello_decode(buf, len, &h) == 0)
			g_sink += h.ird_or_ord;
		return;
	}
	if (rc != 0)
		return;
	/* what isd_iser_rx_complete hands to the core must lie inside what arrived */
	bhs = buf + ISD_ISER_HDR_LEN;
	ahs_p = info.ahs_len ? buf + ISD_ISER_HEADERS_LEN : NULL;
	data_p = info.dsl ? buf + ISD_ISER_HEADERS_LEN + info.ahs_len : NULL;
	if ((uint64_t)ISD_ISER_HEADERS_LEN + info.ahs_len + info.dsl > len)
		abort();
	if (data_p != NULL)
		g_sink += data_p[info.dsl - 1];
	rc = isd_bhs_check(bhs, true, max_dsl);
	if (rc < 0 || rc > 0x0c)
		abort();
	if (isd_ahs_parse(ahs_p, info.ahs_len, &ahs) == 0 && ahs.ext_cdb != NULL) {
		if (ahs.ext_cdb < ahs_p || ahs.ext_cdb + ahs.ext_cdb_len > ahs_p + info.ahs_len)
			abort();
		g_sink += ahs.ext_cdb[ahs.ext_cdb_len - 1];
	}
	if (isd_iser_inv_stag(&info.hdr, &rkey))
		g_sink += rkey;
	g_sink += isd_iser_pdu_is_unexpected(bhs);
}

static void
check_fit(const uint8_t *buf, uint32_t len, uint32_t limit)
{
	uint8_t bhs[ISD_BHS_LEN];
	uint8_t *data;
	int n;

	if (len < ISD_BHS_LEN)
		return;
	memcpy(bhs, buf, ISD_BHS_LEN);
	len -= ISD_BHS_LEN;
	data = malloc(len ? len : 1);
	if (data == NULL)
		return;
	memcpy(data, buf + ISD_BHS_LEN, len);
	n = isd_iser_fit_data(bhs, len ? data : NULL, len, limit);
	/* what is left must fit the limit and lie inside the data */
	if (n >= 0 && ((uint32_t)n > len || ((uint32_t)n > limit && (uint32_t)n != len)))
		abort();
	free(data);
}

static void
check_plan(const uint8_t *p, size_t n, uint32_t max_sge, uint32_t limit)
{
	static uint8_t mem[1u << 16];
	struct isd_iser_wr_plan plan[16];
	struct iovec iov[8];
	uint32_t covered = 0, sum = 0, offset, length;
	int iovcnt = 0, wrs;

	/* iovec entries over one buffer, lengths from the input */
	for (size_t i = 0; i + 2 <= n && iovcnt < 8; i += 2, iovcnt++) {
		uint32_t l = get_be16(p + i) % 4096;

		iov[iovcnt].iov_base = mem + (size_t)iovcnt * 4096;
		iov[iovcnt].iov_len = l;
	}
	offset = limit & 0x7fff;
	length = limit >> 16;
	wrs = isd_iser_plan_wrs(iov, iovcnt, offset, length, max_sge, 1 + (limit % 9000), plan, 16,
				&covered);
	if (wrs < 0)
		return;
	for (int w = 0; w < wrs; w++) {
		uint32_t bytes = 0;

		if (plan[w].nsge < 1 || plan[w].nsge > ISD_ISER_MAX_SGE ||
		    plan[w].nsge > (int)max_sge || plan[w].remote_off != sum)
			abort();
		for (int s = 0; s < plan[w].nsge; s++) {
			uint64_t a = plan[w].sge[s].addr;

			if (a < (uintptr_t)mem || a + plan[w].sge[s].length > (uintptr_t)mem + sizeof(mem))
				abort();
			bytes += plan[w].sge[s].length;
		}
		if (bytes != plan[w].bytes)
			abort();
		sum += bytes;
	}
	if (sum != covered || covered > length)
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct rdma_conn_param cp;
	struct isd_iser_cm cm;
	struct isd_params p;
	uint8_t prm[16], *buf;
	uint32_t len, dsz, limit;
	struct fz z;

	if (size > (1u << 20))
		return 0;
	fz_init(&z, data, size);
	fz_copy(&z, prm, sizeof(prm));
	len = (uint32_t)z.left;
	/* exact-size copy: a read past the receive is an ASan report */
	buf = malloc(len ? len : 1);
	if (buf == NULL)
		return 0;
	memcpy(buf, z.p, len);

	isd_params_init_defaults(&p);
	p.session_type = (prm[0] & 1) ? ISD_SESSION_DISCOVERY : ISD_SESSION_NORMAL;
	p.rdma_extensions = (prm[0] & 2) != 0;
	p.max_recv_dsl = get_be32(prm + 1);
	p.target_recv_dsl = get_be32(prm + 5);
	dsz = isd_iser_rx_data_size(&p);
	if (dsz < ISD_ISER_LOGIN_DATA || dsz > ISD_MAX_DSL)
		abort();
	{
		uint64_t budget = ISD_ISER_RECV_MEMORY_MIN +
				  (uint64_t)get_be32(prm + 12) %
				      (ISD_ISER_RECV_MEMORY_MAX - ISD_ISER_RECV_MEMORY_MIN + 1u);
		uint32_t rq_max = 1u + prm[10] * 64u;
		uint32_t n = isd_iser_rx_count(&p, dsz, rq_max, budget);
		uint32_t d = isd_iser_trdsl_for(budget, 1u + prm[11]);

		/* at least one receive, never more than the queue takes or we post;
		 * above the minimum count the buffers fit the budget */
		if (n == 0 || n > rq_max || n > ISD_ISER_RX_MAX)
			abort();
		if (p.session_type == ISD_SESSION_NORMAL && n > ISD_ISER_RX_MIN &&
		    (uint64_t)n * isd_iser_rx_buf_size(dsz) > budget)
			abort();
		if (d < ISD_ISER_LOGIN_DATA || d > ISD_ISER_TRDSL_MAX)
			abort();
	}
	check_rx(buf, len, dsz);

	isd_iser_cm_decode(buf, len, &cm);
	g_sink += isd_iser_remote_inv_ok(&cm, prm[0] & 4, prm[0] & 8);
	memset(&cp, 0, sizeof(cp));
	cp.initiator_depth = prm[9];
	g_sink += isd_iser_ord(&cp, (prm[0] & 0x10) ? -1 : prm[10]);

	limit = get_be32(prm + 12);
	check_fit(buf, len, limit % (1u << 17));
	check_plan(buf, len, 1u + prm[11] % 12, limit);
	free(buf);
	return 0;
}
