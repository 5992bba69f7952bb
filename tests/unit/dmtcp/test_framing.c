/*
 * The TCP datamover end to end: a listening portal on 127.0.0.1 (port 0), the
 * real core, SCSI layer and a RAM LU behind it, and a raw client socket in the
 * test that speaks iSCSI byte by byte. The reactor and the client share this
 * thread: the client never blocks, it pumps the reactor while it waits.
 *
 * Checked: login, then CRC32C header and data digests on every PDU, data
 * padding, Data-In splitting at the initiator's MaxRecvDataSegmentLength with
 * DataSN/BufferOffset/F and the status collapsed into the last Data-In, R2T
 * generation within MaxBurstLength and MaxOutstandingR2T, Data-Out reassembly,
 * and the errors: bad offset, bad DataSN, data digest (Reject, then CHECK
 * CONDITION once the data is in, nothing stored), data segment
 * over our MaxRecvDataSegmentLength (skipped, Reject), header digest (drop).
 */
#define _GNU_SOURCE /* memmem */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "bstore/bstore.h"
#include "dm/tcp/tcp.h"
#include "dm/tcp/tcp_int.h"
#include "iscsi/iscsi.h"
#include "reactor/reactor.h"
#include "scsi/scsi.h"
#include "util/crc32c.h"
#include "util/endian.h"
#include "util/log.h"

#define TGT_NAME "iqn.2026-11.org.iserd.test:tcp"
#define INI_NAME "iqn.2026-11.org.iserd.test:client"
#define LU_BYTES (1u << 20)
#define BLK 512
#define OUR_MRDSL 8192                  /* target's MaxRecvDataSegmentLength */

struct env {
	struct isd_reactor *r;
	struct isd_iscsi_tgt *tgt;
	struct isd_scsi_dev *dev;
	struct isd_tnode node;
	struct isd_tcp_portal *portal;
	int fd;                         /* client socket */
	int rcvbuf;                     /* client SO_RCVBUF (0 = default) */
	bool hd, dd;                    /* digests in force on the client */
	uint32_t cmdsn;
	uint32_t exp_statsn;
	uint32_t itt;
};

/* One received PDU. */
struct rpdu {
	uint8_t bhs[ISD_BHS_LEN];
	uint8_t *data;
	uint32_t len;
};

/* ---------------------------------------------------------------- client I/O */

static void
pump(struct env *e, int ms)
{
	assert_int_equal(isd_reactor_poll(e->r, ms), 0);
}

static void
send_all(struct env *e, const void *buf, size_t len)
{
	const uint8_t *p = buf;
	int spins = 0;

	while (len > 0) {
		ssize_t n = send(e->fd, p, len, MSG_NOSIGNAL | MSG_DONTWAIT);

		if (n < 0) {
			assert_true(errno == EAGAIN || errno == EWOULDBLOCK);
			assert_true(spins++ < 2000);
			pump(e, 1);
			continue;
		}
		p += n;
		len -= (size_t)n;
	}
}

/* Reads exactly len bytes; returns 0, or -1 on EOF/reset (the target dropped us). */
static int
recv_exact(struct env *e, void *buf, size_t len)
{
	uint8_t *p = buf;
	int spins = 0;

	while (len > 0) {
		ssize_t n = recv(e->fd, p, len, MSG_DONTWAIT);

		if (n == 0)
			return -1;
		if (n < 0) {
			if (errno == ECONNRESET)
				return -1;
			assert_true(errno == EAGAIN || errno == EWOULDBLOCK);
			assert_true(spins++ < 3000);   /* ~3 s */
			pump(e, 1);
			continue;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Frames and sends one PDU the way an initiator does, with the digests in force. */
static void
send_pdu_raw(struct env *e, const uint8_t *bhs_in, const void *data, uint32_t len, bool corrupt_hd,
	     bool corrupt_dd)
{
	uint8_t bhs[ISD_BHS_LEN], dg[4], pad[3] = {0};
	uint32_t padlen = isd_pad4(len);

	memcpy(bhs, bhs_in, sizeof(bhs));
	isd_bhs_set_dsl(bhs, len);
	send_all(e, bhs, sizeof(bhs));
	if (e->hd) {
		isd_pdu_put_digest(dg, isd_crc32c(bhs, sizeof(bhs)) ^ (corrupt_hd ? 1 : 0));
		send_all(e, dg, 4);
	}
	if (len > 0) {
		struct iovec iov = {(void *)data, len};

		send_all(e, data, len);
		send_all(e, pad, padlen);
		if (e->dd) {
			uint32_t crc = isd_pdu_data_digest(&iov, 1, pad, padlen);

			isd_pdu_put_digest(dg, crc ^ (corrupt_dd ? 0x100 : 0));
			send_all(e, dg, 4);
		}
	}
}

static void
send_pdu(struct env *e, const uint8_t *bhs, const void *data, uint32_t len)
{
	send_pdu_raw(e, bhs, data, len, false, false);
}

/* Receives one PDU, checking header and data digests and zero padding. -1 on EOF. */
static int
recv_pdu(struct env *e, struct rpdu *p)
{
	uint8_t dg[4], pad[3];
	uint32_t padlen;

	memset(p, 0, sizeof(*p));
	if (recv_exact(e, p->bhs, ISD_BHS_LEN) < 0)
		return -1;
	assert_int_equal(p->bhs[4], 0);         /* targets send no AHS */
	if (e->hd) {
		assert_int_equal(recv_exact(e, dg, 4), 0);
		assert_int_equal(isd_pdu_get_digest(dg), isd_crc32c(p->bhs, ISD_BHS_LEN));
	}
	p->len = isd_bhs_dsl(p->bhs);
	padlen = isd_pad4(p->len);
	if (p->len > 0) {
		struct iovec iov;

		p->data = malloc(p->len);
		assert_non_null(p->data);
		assert_int_equal(recv_exact(e, p->data, p->len), 0);
		assert_int_equal(recv_exact(e, pad, padlen), 0);
		for (uint32_t i = 0; i < padlen; i++)
			assert_int_equal(pad[i], 0);
		if (e->dd) {
			iov.iov_base = p->data;
			iov.iov_len = p->len;
			assert_int_equal(recv_exact(e, dg, 4), 0);
			assert_int_equal(isd_pdu_get_digest(dg),
					 isd_pdu_data_digest(&iov, 1, pad, padlen));
		}
	}
	if (isd_bhs_opcode(p->bhs) != ISD_OP_DATA_IN && isd_bhs_opcode(p->bhs) != ISD_OP_R2T)
		e->exp_statsn = get_be32(p->bhs + 24) + 1;
	else if (p->bhs[1] & ISD_DATAIN_S)
		e->exp_statsn = get_be32(p->bhs + 24) + 1;
	return 0;
}

static void
rpdu_fini(struct rpdu *p)
{
	free(p->data);
	p->data = NULL;
}

/* ---------------------------------------------------------------- setup */

static int
setup(void **state)
{
	struct isd_iscsi_cfg cfg;
	struct isd_scsi_lu_cfg lu;
	struct isd_bstore *bs;
	struct env *e = calloc(1, sizeof(*e));
	char err[256];

	assert_non_null(e);
	assert_int_equal(isd_reactor_create(&e->r), 0);
	isd_iscsi_cfg_init(&cfg);
	cfg.nop_interval_ms = 0;
	assert_int_equal(isd_iscsi_tgt_create(e->r, &cfg, &e->tgt), 0);
	assert_int_equal(isd_scsi_dev_create(TGT_NAME, &e->dev), 0);
	assert_int_equal(isd_bstore_open(e->r, "ram:1M", &bs, err, sizeof(err)), 0);
	memset(&lu, 0, sizeof(lu));
	lu.bstore = bs;
	lu.block_size = BLK;
	snprintf(lu.vendor, sizeof(lu.vendor), "ISERD");
	snprintf(lu.product, sizeof(lu.product), "RAM");
	snprintf(lu.revision, sizeof(lu.revision), "0001");
	snprintf(lu.serial, sizeof(lu.serial), "tcp0");
	assert_int_equal(isd_scsi_dev_add_lu(e->dev, 0, &lu), 0);
	snprintf(e->node.name, sizeof(e->node.name), "%s", TGT_NAME);
	e->node.tpgt = 1;
	e->node.dev = e->dev;
	e->node.queue_depth = 32;
	isd_key_policy_init(&e->node.policy);
	e->node.policy.allow_header_digest = true;
	e->node.policy.allow_data_digest = true;
	e->node.policy.max_recv_dsl = OUR_MRDSL;
	e->node.policy.max_burst_length = 1u << 20;
	e->node.policy.first_burst_length = 65536;
	e->node.policy.max_outstanding_r2t = 8;
	e->node.policy.initial_r2t = true;
	e->node.policy.immediate_data = false;
	assert_int_equal(isd_iscsi_tgt_add_node(e->tgt, &e->node), 0);
	assert_int_equal(isd_tcp_portal_listen(e->tgt, e->r, "127.0.0.1", 0, 1, &e->portal, err,
					       sizeof(err)),
			 0);
	e->fd = -1;
	*state = e;
	return 0;
}

static void
shutdown_done(void *arg)
{
	*(bool *)arg = true;
}

static int
teardown(void **state)
{
	struct env *e = *state;
	struct isd_iscsi_stats st;
	bool done = false;

	if (e->fd >= 0)
		close(e->fd);
	isd_iscsi_tgt_shutdown(e->tgt, shutdown_done, &done);
	for (int i = 0; i < 3000 && !done; i++)
		pump(e, 1);
	assert_true(done);
	isd_iscsi_tgt_get_stats(e->tgt, &st);
	assert_int_equal(st.connections, 0);
	assert_int_equal(st.tasks, 0);
	isd_tcp_portal_close(e->portal);
	isd_iscsi_tgt_destroy(e->tgt);
	isd_scsi_dev_destroy(e->dev);
	/* Let deferred frees run before the loop goes. */
	pump(e, 0);
	isd_reactor_destroy(e->r);
	free(e);
	return 0;
}

/*
 * Finds the target's end of our connection (same process) and gives it a tiny
 * send buffer, so that its writes hit EAGAIN and resume on EPOLLOUT.
 */
static void
shrink_target_sndbuf(struct env *e)
{
	struct sockaddr_in mine, peer;
	socklen_t len = sizeof(mine);
	int small = 4096;

	assert_int_equal(getsockname(e->fd, (struct sockaddr *)&mine, &len), 0);
	for (int fd = 3; fd < 1024; fd++) {
		len = sizeof(peer);
		if (fd == e->fd || getpeername(fd, (struct sockaddr *)&peer, &len) < 0)
			continue;
		if (peer.sin_family == AF_INET && peer.sin_port == mine.sin_port &&
		    peer.sin_addr.s_addr == mine.sin_addr.s_addr) {
			assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &small,
						    sizeof(small)),
					 0);
			return;
		}
	}
	fail_msg("target socket not found");
}

static void
client_connect(struct env *e)
{
	struct sockaddr_in sa = {0};
	int one = 1;

	e->fd = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(e->fd >= 0);
	setsockopt(e->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (e->rcvbuf > 0)
		setsockopt(e->fd, SOL_SOCKET, SO_RCVBUF, &e->rcvbuf, sizeof(e->rcvbuf));
	sa.sin_family = AF_INET;
	sa.sin_port = htons(isd_tcp_portal_port(e->portal));
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(connect(e->fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(fcntl(e->fd, F_SETFL, fcntl(e->fd, F_GETFL) | O_NONBLOCK), 0);
	/* accept */
	pump(e, 10);
	if (e->rcvbuf > 0)
		shrink_target_sndbuf(e);
}

static size_t
add_key(char *buf, size_t off, const char *kv)
{
	size_t n = strlen(kv) + 1;

	memcpy(buf + off, kv, n);
	return off + n;
}

/* A new nexus starts with a unit attention (power on/reset): TEST UNIT READY eats it. */
static void
clear_unit_attention(struct env *e)
{
	for (int i = 0; i < 4; i++) {
		uint8_t bhs[ISD_BHS_LEN] = {0};
		struct rpdu p;
		uint8_t status;

		bhs[0] = ISD_OP_SCSI_CMD;
		bhs[1] = ISD_BHS_F | 1;
		put_be32(bhs + 16, e->itt++);
		put_be32(bhs + 24, e->cmdsn++);
		put_be32(bhs + 28, e->exp_statsn);
		send_pdu(e, bhs, NULL, 0);
		assert_int_equal(recv_pdu(e, &p), 0);
		assert_int_equal(isd_bhs_opcode(p.bhs), ISD_OP_SCSI_RSP);
		status = p.bhs[3];
		rpdu_fini(&p);
		if (status == 0)
			return;
	}
	fail_msg("TEST UNIT READY never succeeded");
}

/* Logs in straight to full feature phase with the given digests and limits. */
static void
login(struct env *e, bool hd, bool dd, uint32_t mrdsl, uint32_t max_burst, uint32_t max_r2t)
{
	uint8_t bhs[ISD_BHS_LEN] = {0};
	char text[1024], kv[128];
	size_t len = 0;
	struct rpdu rsp;

	client_connect(e);
	len = add_key(text, len, "InitiatorName=" INI_NAME);
	len = add_key(text, len, "SessionType=Normal");
	len = add_key(text, len, "TargetName=" TGT_NAME);
	len = add_key(text, len, hd ? "HeaderDigest=CRC32C" : "HeaderDigest=None");
	len = add_key(text, len, dd ? "DataDigest=CRC32C" : "DataDigest=None");
	snprintf(kv, sizeof(kv), "MaxRecvDataSegmentLength=%u", mrdsl);
	len = add_key(text, len, kv);
	snprintf(kv, sizeof(kv), "MaxBurstLength=%u", max_burst);
	len = add_key(text, len, kv);
	snprintf(kv, sizeof(kv), "FirstBurstLength=%u", max_burst < 65536 ? max_burst : 65536);
	len = add_key(text, len, kv);
	snprintf(kv, sizeof(kv), "MaxOutstandingR2T=%u", max_r2t);
	len = add_key(text, len, kv);
	len = add_key(text, len, "InitialR2T=Yes");
	len = add_key(text, len, "ImmediateData=No");
	len = add_key(text, len, "ErrorRecoveryLevel=0");

	e->cmdsn = 1;
	e->itt = 1;
	bhs[0] = ISD_OP_LOGIN_REQ | ISD_BHS_I;
	bhs[1] = ISD_LOGIN_T | (ISD_STAGE_OPERATIONAL << 2) | ISD_STAGE_FFP;
	bhs[8] = 0x40;                  /* ISID: random format */
	bhs[11] = 0x12;
	bhs[13] = 0x01;
	put_be32(bhs + 16, e->itt++);
	put_be32(bhs + 24, e->cmdsn);
	put_be32(bhs + 28, 0);
	send_pdu(e, bhs, text, (uint32_t)len);
	assert_int_equal(recv_pdu(e, &rsp), 0);
	assert_int_equal(isd_bhs_opcode(rsp.bhs), ISD_OP_LOGIN_RSP);
	if (rsp.bhs[36] != 0)
		fail_msg("login failed: class %u detail %u", rsp.bhs[36], rsp.bhs[37]);
	assert_true(rsp.bhs[1] & ISD_LOGIN_T);
	assert_int_equal(ISD_LOGIN_NSG(rsp.bhs[1]), ISD_STAGE_FFP);
	/* The target must have agreed to the digests we asked for. */
	if (hd)
		assert_non_null(memmem(rsp.data, rsp.len, "HeaderDigest=CRC32C", 19));
	if (dd)
		assert_non_null(memmem(rsp.data, rsp.len, "DataDigest=CRC32C", 17));
	rpdu_fini(&rsp);
	e->hd = hd;
	e->dd = dd;
	clear_unit_attention(e);
}

/* ---------------------------------------------------------------- SCSI helpers */

static void
scsi_cmd_bhs(struct env *e, uint8_t *bhs, bool write, uint32_t lba, uint16_t blocks,
	     uint32_t edtl, uint32_t itt)
{
	memset(bhs, 0, ISD_BHS_LEN);
	bhs[0] = ISD_OP_SCSI_CMD;
	bhs[1] = ISD_BHS_F | (write ? ISD_CMD_W : ISD_CMD_R) | 1;
	put_be32(bhs + 16, itt);
	put_be32(bhs + 20, edtl);
	put_be32(bhs + 24, e->cmdsn++);
	put_be32(bhs + 28, e->exp_statsn);
	bhs[32] = write ? 0x2a : 0x28;
	put_be32(bhs + 34, lba);
	put_be16(bhs + 39, blocks);
}

static void
data_out_bhs(struct env *e, uint8_t *bhs, uint32_t itt, uint32_t ttt, uint32_t datasn,
	     uint32_t off, bool final)
{
	memset(bhs, 0, ISD_BHS_LEN);
	bhs[0] = ISD_OP_DATA_OUT;
	bhs[1] = final ? ISD_BHS_F : 0;
	put_be32(bhs + 16, itt);
	put_be32(bhs + 20, ttt);
	put_be32(bhs + 28, e->exp_statsn);
	put_be32(bhs + 36, datasn);
	put_be32(bhs + 40, off);
}

static void
fill_pattern(uint8_t *buf, size_t len, uint32_t seed)
{
	for (size_t i = 0; i < len; i++)
		buf[i] = (uint8_t)((i * 31 + seed) ^ (i >> 8));
}

/* Reads `blocks` at lba, checking Data-In framing, and returns the data in buf. */
static void
read_blocks(struct env *e, uint32_t lba, uint16_t blocks, uint32_t edtl, uint32_t mrdsl,
	    uint8_t *buf)
{
	uint8_t bhs[ISD_BHS_LEN];
	uint32_t itt = e->itt++;
	uint32_t want = (uint32_t)blocks * BLK < edtl ? (uint32_t)blocks * BLK : edtl;
	uint32_t got = 0, datasn = 0;
	bool status = false;

	scsi_cmd_bhs(e, bhs, false, lba, blocks, edtl, itt);
	send_pdu(e, bhs, NULL, 0);
	while (!status) {
		struct rpdu p;

		assert_int_equal(recv_pdu(e, &p), 0);
		if (isd_bhs_opcode(p.bhs) == ISD_OP_SCSI_RSP) {
			assert_int_equal(p.bhs[3], 0);
			assert_int_equal(get_be32(p.bhs + 36), datasn);  /* ExpDataSN */
			status = true;
			rpdu_fini(&p);
			break;
		}
		assert_int_equal(isd_bhs_opcode(p.bhs), ISD_OP_DATA_IN);
		assert_int_equal(isd_bhs_itt(p.bhs), itt);
		assert_int_equal(isd_bhs_ttt(p.bhs), ISD_RSVD_TAG);
		assert_int_equal(get_be32(p.bhs + 36), datasn);
		assert_int_equal(get_be32(p.bhs + 40), got);
		assert_true(p.len <= mrdsl);
		assert_true(p.len > 0);
		memcpy(buf + got, p.data, p.len);
		got += p.len;
		datasn++;
		if (got < want) {
			/* full-size PDUs until the last one */
			assert_int_equal(p.len, mrdsl);
			assert_int_equal(p.bhs[1] & (ISD_BHS_F | ISD_DATAIN_S), 0);
		} else {
			assert_true(p.bhs[1] & ISD_BHS_F);
			if (p.bhs[1] & ISD_DATAIN_S) {
				/* status collapsed into the last Data-In (RFC 7143 §11.7.4) */
				assert_int_equal(p.bhs[3], 0);
				if (edtl > want) {
					assert_true(p.bhs[1] & ISD_DATAIN_U);
					assert_int_equal(get_be32(p.bhs + 44), edtl - want);
				}
				status = true;
			}
		}
		rpdu_fini(&p);
	}
	assert_int_equal(got, want);
}

/* Collects the R2Ts of a write command until `count` have arrived. */
struct r2t_seen {
	uint32_t ttt, r2tsn, off, len;
};

static void
recv_r2t(struct env *e, uint32_t itt, struct r2t_seen *r)
{
	struct rpdu p;

	assert_int_equal(recv_pdu(e, &p), 0);
	if (isd_bhs_opcode(p.bhs) != ISD_OP_R2T)
		fail_msg("expected R2T, got opcode 0x%02x (byte2 0x%02x status 0x%02x)",
			 isd_bhs_opcode(p.bhs), p.bhs[2], p.bhs[3]);
	assert_int_equal(isd_bhs_itt(p.bhs), itt);
	assert_true(p.bhs[1] & ISD_BHS_F);
	r->ttt = isd_bhs_ttt(p.bhs);
	r->r2tsn = get_be32(p.bhs + 36);
	r->off = get_be32(p.bhs + 40);
	r->len = get_be32(p.bhs + 44);
	assert_true(r->ttt != ISD_RSVD_TAG);
	rpdu_fini(&p);
}

/* Sends the data an R2T asks for in Data-Outs of at most `chunk` bytes. */
static void
answer_r2t(struct env *e, uint32_t itt, const struct r2t_seen *r, const uint8_t *data,
	   uint32_t chunk)
{
	uint8_t bhs[ISD_BHS_LEN];
	uint32_t done = 0, sn = 0;

	while (done < r->len) {
		uint32_t n = r->len - done < chunk ? r->len - done : chunk;

		data_out_bhs(e, bhs, itt, r->ttt, sn++, r->off + done, done + n == r->len);
		send_pdu(e, bhs, data + r->off + done, n);
		done += n;
	}
}

static void
expect_scsi_good(struct env *e, uint32_t itt)
{
	struct rpdu p;

	assert_int_equal(recv_pdu(e, &p), 0);
	if (isd_bhs_opcode(p.bhs) != ISD_OP_SCSI_RSP)
		fail_msg("expected SCSI Response, got opcode 0x%02x (byte2 0x%02x)",
			 isd_bhs_opcode(p.bhs), p.bhs[2]);
	if (p.bhs[3] != 0)
		fail_msg("SCSI status 0x%02x, sense %02x/%02x/%02x", p.bhs[3],
			 p.len > 4 ? p.data[4] & 0xf : 0, p.len > 14 ? p.data[14] : 0,
			 p.len > 15 ? p.data[15] : 0);
	assert_int_equal(isd_bhs_itt(p.bhs), itt);
	assert_int_equal(p.bhs[2], 0);
	assert_int_equal(p.bhs[3], 0);
	rpdu_fini(&p);
}

/* A SCSI Response with CHECK CONDITION and the given sense key and ASC/ASCQ. */
static void
expect_scsi_check(struct env *e, uint32_t itt, uint8_t key, uint8_t asc, uint8_t ascq)
{
	struct rpdu p;

	assert_int_equal(recv_pdu(e, &p), 0);
	if (isd_bhs_opcode(p.bhs) != ISD_OP_SCSI_RSP)
		fail_msg("expected SCSI Response, got opcode 0x%02x", isd_bhs_opcode(p.bhs));
	assert_int_equal(isd_bhs_itt(p.bhs), itt);
	assert_int_equal(p.bhs[3], ISD_SAM_CHECK_CONDITION);
	/* 2-byte SenseLength, then fixed-format sense data */
	assert_true(p.len >= 2 + 14);
	assert_int_equal(p.data[2 + 2] & 0xf, key);
	assert_int_equal(p.data[2 + 12], asc);
	assert_int_equal(p.data[2 + 13], ascq);
	rpdu_fini(&p);
}

static void
expect_reject(struct env *e, uint8_t reason, const uint8_t *bad_bhs)
{
	struct rpdu p;

	assert_int_equal(recv_pdu(e, &p), 0);
	if (isd_bhs_opcode(p.bhs) != ISD_OP_REJECT)
		fail_msg("expected Reject, got opcode 0x%02x", isd_bhs_opcode(p.bhs));
	assert_int_equal(p.bhs[2], reason);
	assert_true(p.len >= ISD_BHS_LEN);
	/* The Reject carries the offending header (RFC 7143 §11.17). */
	assert_memory_equal(p.data + 1, bad_bhs + 1, 3);
	assert_memory_equal(p.data + 16, bad_bhs + 16, 32);
	rpdu_fini(&p);
}

/* Sends one immediate NOP-Out ping with data; the reply is not read here. */
static void
nop_send(struct env *e, uint32_t itt, const void *data, uint32_t len)
{
	uint8_t bhs[ISD_BHS_LEN] = {0};

	bhs[0] = ISD_OP_NOP_OUT | ISD_BHS_I;
	bhs[1] = ISD_BHS_F;
	put_be32(bhs + 16, itt);
	put_be32(bhs + 20, ISD_RSVD_TAG);
	put_be32(bhs + 24, e->cmdsn);
	put_be32(bhs + 28, e->exp_statsn);
	send_pdu(e, bhs, data, len);
}

static void
nop_ping(struct env *e, const void *data, uint32_t len)
{
	uint32_t itt = e->itt++;
	struct rpdu p;

	nop_send(e, itt, data, len);
	assert_int_equal(recv_pdu(e, &p), 0);
	assert_int_equal(isd_bhs_opcode(p.bhs), ISD_OP_NOP_IN);
	assert_int_equal(isd_bhs_itt(p.bhs), itt);
	assert_int_equal(p.len, len);
	if (len > 0)
		assert_memory_equal(p.data, data, len);
	rpdu_fini(&p);
}

/* Writes `len` bytes at lba answering every R2T; checks R2T limits. */
static void
write_blocks(struct env *e, uint32_t lba, const uint8_t *data, uint32_t len, uint32_t max_burst,
	     uint32_t max_r2t, uint32_t chunk)
{
	uint8_t bhs[ISD_BHS_LEN];
	uint32_t itt = e->itt++;
	uint32_t asked = 0, r2tsn = 0;
	struct r2t_seen r[64];
	uint32_t n_out = 0;
	uint32_t ttts[64];
	uint32_t n_ttt = 0;

	scsi_cmd_bhs(e, bhs, true, lba, (uint16_t)(len / BLK), len, itt);
	send_pdu(e, bhs, NULL, 0);
	while (asked < len) {
		/* Collect every R2T the target sends before we answer: at most max_r2t. */
		uint32_t expect = (len - asked + max_burst - 1) / max_burst;

		if (expect > max_r2t)
			expect = max_r2t;
		n_out = 0;
		for (uint32_t i = 0; i < expect; i++) {
			recv_r2t(e, itt, &r[n_out]);
			assert_int_equal(r[n_out].r2tsn, r2tsn++);
			assert_int_equal(r[n_out].off, asked);
			assert_true(r[n_out].len <= max_burst);
			assert_true(r[n_out].len > 0);
			for (uint32_t k = 0; k < n_ttt; k++)
				assert_true(ttts[k] != r[n_out].ttt);   /* unique while live */
			ttts[n_ttt++ % 64] = r[n_out].ttt;
			asked += r[n_out].len;
			n_out++;
		}
		/* Nothing more may come while all of them are outstanding. */
		for (int i = 0; i < 20; i++)
			pump(e, 1);
		{
			uint8_t peek;

			assert_int_equal(recv(e->fd, &peek, 1, MSG_DONTWAIT | MSG_PEEK), -1);
			assert_true(errno == EAGAIN || errno == EWOULDBLOCK);
		}
		for (uint32_t i = 0; i < n_out; i++)
			answer_r2t(e, itt, &r[i], data, chunk);
		n_ttt = 0;
	}
	assert_int_equal(asked, len);
	expect_scsi_good(e, itt);
}

/* ---------------------------------------------------------------- tests */

static void
test_portal_port_and_addrinuse(void **state)
{
	struct env *e = *state;
	struct isd_tcp_portal *p2 = NULL;
	char err[256];
	int rc;

	assert_true(isd_tcp_portal_port(e->portal) != 0);
	rc = isd_tcp_portal_listen(e->tgt, e->r, "127.0.0.1", isd_tcp_portal_port(e->portal), 1,
				   &p2, err, sizeof(err));
	assert_int_equal(rc, -EADDRINUSE);
	assert_non_null(strstr(err, "127.0.0.1:"));
	assert_null(strchr(err, '\n'));
	rc = isd_tcp_portal_listen(e->tgt, e->r, "no.such.host.invalid", 0, 1, &p2, err,
				   sizeof(err));
	assert_true(rc < 0);
	/* IPv6 with brackets, if the host has ::1 */
	rc = isd_tcp_portal_listen(e->tgt, e->r, "[::1]", 0, 1, &p2, err, sizeof(err));
	if (rc == 0) {
		assert_true(isd_tcp_portal_port(p2) != 0);
		isd_tcp_portal_close(p2);
	}
}

/* Digests on both directions; NOP-Out data of 5 bytes is padded to 8 on the wire. */
static void
test_digests_and_padding(void **state)
{
	struct env *e = *state;

	login(e, true, true, 4096, 262144, 1);
	nop_ping(e, "hello", 5);
	nop_ping(e, "1234567", 7);
	nop_ping(e, NULL, 0);
}

/* Data-In splits at the initiator's MRDSL: 20 blocks = 10240 bytes -> 4096+4096+2048. */
static void
test_datain_split_and_collapse(void **state)
{
	struct env *e = *state;
	uint8_t *wbuf = malloc(65536), *rbuf = malloc(65536);

	assert_non_null(wbuf);
	assert_non_null(rbuf);
	login(e, true, true, 4096, 262144, 1);
	fill_pattern(wbuf, 65536, 7);
	write_blocks(e, 0, wbuf, 20 * BLK, 262144, 1, 4096);
	memset(rbuf, 0, 65536);
	read_blocks(e, 0, 20, 20 * BLK, 4096, rbuf);
	assert_memory_equal(rbuf, wbuf, 20 * BLK);
	/* EDTL above the transfer: underflow residual in the collapsed status. */
	memset(rbuf, 0, 65536);
	read_blocks(e, 0, 20, 24 * BLK, 4096, rbuf);
	assert_memory_equal(rbuf, wbuf, 20 * BLK);
	/* A transfer of exactly one PDU. */
	read_blocks(e, 0, 8, 8 * BLK, 4096, rbuf);
	free(wbuf);
	free(rbuf);
}

/* R2Ts within MaxBurstLength, at most MaxOutstandingR2T at once, R2TSN from 0. */
static void
test_r2t_limits(void **state)
{
	struct env *e = *state;
	uint32_t len = 96 * BLK;        /* 49152 */
	uint8_t *wbuf = malloc(len), *rbuf = malloc(len);

	assert_non_null(wbuf);
	assert_non_null(rbuf);
	login(e, false, true, 8192, 16384, 2);
	fill_pattern(wbuf, len, 99);
	/* 3 bursts of 16384, two outstanding at a time; Data-Outs of 8192. */
	write_blocks(e, 100, wbuf, len, 16384, 2, 8192);
	memset(rbuf, 0, len);
	read_blocks(e, 100, 96, len, 8192, rbuf);
	assert_memory_equal(rbuf, wbuf, len);
	free(wbuf);
	free(rbuf);
}

static void
test_r2t_single_outstanding(void **state)
{
	struct env *e = *state;
	uint32_t len = 40 * BLK;        /* 20480: 8192 + 8192 + 4096 */
	uint8_t *wbuf = malloc(len), *rbuf = malloc(len);

	assert_non_null(wbuf);
	assert_non_null(rbuf);
	login(e, true, false, 8192, 8192, 1);
	fill_pattern(wbuf, len, 3);
	/* Odd Data-Out size: 3000-byte PDUs, padded on the wire. */
	write_blocks(e, 7, wbuf, len, 8192, 1, 3000);
	read_blocks(e, 7, 40, len, 8192, rbuf);
	assert_memory_equal(rbuf, wbuf, len);
	free(wbuf);
	free(rbuf);
}

/* Bad offsets and DataSN in solicited Data-Out are rejected and change nothing. */
static void
test_dataout_bad_offset_and_datasn(void **state)
{
	struct env *e = *state;
	uint32_t len = 16 * BLK;        /* 8192 */
	uint8_t *wbuf = malloc(len), *rbuf = malloc(len);
	uint8_t bhs[ISD_BHS_LEN];
	struct r2t_seen r;
	uint32_t itt;

	assert_non_null(wbuf);
	assert_non_null(rbuf);
	login(e, true, true, 8192, 262144, 1);
	fill_pattern(wbuf, len, 42);
	itt = e->itt++;
	scsi_cmd_bhs(e, bhs, true, 200, 16, len, itt);
	send_pdu(e, bhs, NULL, 0);
	recv_r2t(e, itt, &r);
	assert_int_equal(r.off, 0);
	assert_int_equal(r.len, len);
	/* A gap: offset 4096 first. */
	data_out_bhs(e, bhs, itt, r.ttt, 0, 4096, false);
	send_pdu(e, bhs, wbuf + 4096, 4096);
	expect_reject(e, ISD_REJECT_PROTOCOL_ERROR, bhs);
	/* Past the R2T's range. */
	data_out_bhs(e, bhs, itt, r.ttt, 0, len, true);
	send_pdu(e, bhs, wbuf, 512);
	expect_reject(e, ISD_REJECT_PROTOCOL_ERROR, bhs);
	/* Longer than what was asked for. */
	data_out_bhs(e, bhs, itt, r.ttt, 0, 0, true);
	send_pdu_raw(e, bhs, wbuf, 8192, false, false);
	/* that one was right: 8192 == len. Use a different command for "too long" below. */
	expect_scsi_good(e, itt);

	itt = e->itt++;
	scsi_cmd_bhs(e, bhs, true, 300, 8, 4096, itt);
	send_pdu(e, bhs, NULL, 0);
	recv_r2t(e, itt, &r);
	assert_int_equal(r.len, 4096);
	/* 4608 bytes for a 4096-byte R2T. */
	data_out_bhs(e, bhs, itt, r.ttt, 0, 0, true);
	send_pdu(e, bhs, wbuf, 4608);
	expect_reject(e, ISD_REJECT_PROTOCOL_ERROR, bhs);
	/* Right offset, wrong DataSN. */
	data_out_bhs(e, bhs, itt, r.ttt, 1, 0, false);
	send_pdu(e, bhs, wbuf, 2048);
	expect_reject(e, ISD_REJECT_PROTOCOL_ERROR, bhs);
	/* F before the end. */
	data_out_bhs(e, bhs, itt, r.ttt, 0, 0, true);
	send_pdu(e, bhs, wbuf, 2048);
	expect_reject(e, ISD_REJECT_PROTOCOL_ERROR, bhs);
	/* Now the right sequence completes the command. */
	data_out_bhs(e, bhs, itt, r.ttt, 0, 0, false);
	send_pdu(e, bhs, wbuf + 4096, 2048);
	data_out_bhs(e, bhs, itt, r.ttt, 1, 2048, true);
	send_pdu(e, bhs, wbuf + 4096 + 2048, 2048);
	expect_scsi_good(e, itt);

	read_blocks(e, 200, 16, len, 8192, rbuf);
	assert_memory_equal(rbuf, wbuf, len);
	read_blocks(e, 300, 8, 4096, 8192, rbuf);
	assert_memory_equal(rbuf, wbuf + 4096, 4096);
	free(wbuf);
	free(rbuf);
}

/*
 * A solicited Data-Out that fails its data digest (RFC 7143 §7.8, ERL 0): a
 * Reject, the sequence goes on, and once all data is in the command ends with
 * CHECK CONDITION, ABORTED COMMAND, PROTOCOL SERVICE CRC ERROR (0x47/0x05).
 * Nothing of it reaches the RAM LU, not even the Data-Out that was good.
 */
static void
test_dataout_digest_error_stores_nothing(void **state)
{
	struct env *e = *state;
	uint32_t len = 16 * BLK;
	uint8_t *old = malloc(len), *bad = malloc(len), *rbuf = malloc(len);
	uint8_t bhs[ISD_BHS_LEN];
	struct r2t_seen r;
	uint32_t itt;

	assert_non_null(old);
	assert_non_null(bad);
	assert_non_null(rbuf);
	login(e, true, true, 8192, 262144, 1);
	fill_pattern(old, len, 7);
	fill_pattern(bad, len, 8);
	write_blocks(e, 400, old, len, 262144, 1, 4096);
	itt = e->itt++;
	scsi_cmd_bhs(e, bhs, true, 400, 16, len, itt);
	send_pdu(e, bhs, NULL, 0);
	recv_r2t(e, itt, &r);
	assert_int_equal(r.len, len);
	data_out_bhs(e, bhs, itt, r.ttt, 0, 0, false);
	send_pdu(e, bhs, bad, 4096);
	data_out_bhs(e, bhs, itt, r.ttt, 1, 4096, true);
	send_pdu_raw(e, bhs, bad + 4096, 4096, false, true);
	expect_reject(e, ISD_REJECT_DIGEST_ERROR, bhs);
	expect_scsi_check(e, itt, ISD_SK_ABORTED_COMMAND, 0x47, 0x05);
	read_blocks(e, 400, 16, len, 8192, rbuf);
	assert_memory_equal(rbuf, old, len);
	/* The bad PDU first, then a good one: the same. */
	itt = e->itt++;
	scsi_cmd_bhs(e, bhs, true, 400, 16, len, itt);
	send_pdu(e, bhs, NULL, 0);
	recv_r2t(e, itt, &r);
	data_out_bhs(e, bhs, itt, r.ttt, 0, 0, false);
	send_pdu_raw(e, bhs, bad, 4096, false, true);
	expect_reject(e, ISD_REJECT_DIGEST_ERROR, bhs);
	data_out_bhs(e, bhs, itt, r.ttt, 1, 4096, true);
	send_pdu(e, bhs, bad + 4096, 4096);
	expect_scsi_check(e, itt, ISD_SK_ABORTED_COMMAND, 0x47, 0x05);
	read_blocks(e, 400, 16, len, 8192, rbuf);
	assert_memory_equal(rbuf, old, len);
	/* The connection goes on: a good write lands. */
	write_blocks(e, 400, bad, len, 262144, 1, 4096);
	read_blocks(e, 400, 16, len, 8192, rbuf);
	assert_memory_equal(rbuf, bad, len);
	free(old);
	free(bad);
	free(rbuf);
}

/* A data segment over our MaxRecvDataSegmentLength is skipped and rejected. */
static void
test_oversized_segment_skipped(void **state)
{
	struct env *e = *state;
	uint8_t bhs[ISD_BHS_LEN] = {0};
	uint8_t *big = calloc(1, OUR_MRDSL + 100);

	assert_non_null(big);
	login(e, true, true, 8192, 262144, 1);
	bhs[0] = ISD_OP_NOP_OUT | ISD_BHS_I;
	bhs[1] = ISD_BHS_F;
	put_be32(bhs + 16, e->itt++);
	put_be32(bhs + 20, ISD_RSVD_TAG);
	put_be32(bhs + 24, e->cmdsn);
	put_be32(bhs + 28, e->exp_statsn);
	send_pdu(e, bhs, big, OUR_MRDSL + 100);
	expect_reject(e, ISD_REJECT_PROTOCOL_ERROR, bhs);
	/* Framing survived: the next PDU is understood. */
	nop_ping(e, "after", 5);
	free(big);
}

/* A header digest error loses framing: the target drops the connection. */
static void
test_header_digest_error_drops(void **state)
{
	struct env *e = *state;
	uint8_t bhs[ISD_BHS_LEN] = {0};
	struct rpdu p;

	login(e, true, false, 8192, 262144, 1);
	bhs[0] = ISD_OP_NOP_OUT | ISD_BHS_I;
	bhs[1] = ISD_BHS_F;
	put_be32(bhs + 16, e->itt++);
	put_be32(bhs + 20, ISD_RSVD_TAG);
	put_be32(bhs + 24, e->cmdsn);
	send_pdu_raw(e, bhs, NULL, 0, true, false);
	assert_int_equal(recv_pdu(e, &p), -1);
}

/* A client that goes away mid-PDU leaves nothing behind (checked in teardown). */
static void
test_peer_close_mid_pdu(void **state)
{
	struct env *e = *state;
	uint8_t bhs[ISD_BHS_LEN];
	struct r2t_seen r;
	uint8_t data[1000] = {0};
	uint32_t itt;

	login(e, false, false, 8192, 262144, 1);
	itt = e->itt++;
	scsi_cmd_bhs(e, bhs, true, 0, 8, 4096, itt);
	send_pdu(e, bhs, NULL, 0);
	recv_r2t(e, itt, &r);
	data_out_bhs(e, bhs, itt, r.ttt, 0, 0, true);
	isd_bhs_set_dsl(bhs, 4096);
	send_all(e, bhs, sizeof(bhs));
	send_all(e, data, sizeof(data));        /* 1000 of 4096 bytes, then gone */
	for (int i = 0; i < 10; i++)
		pump(e, 1);
	close(e->fd);
	e->fd = -1;
	for (int i = 0; i < 20; i++)
		pump(e, 1);
}

/* Many PDUs in one burst: the per-event receive budget must not lose any. */
static void
test_pipelined_pdus(void **state)
{
	struct env *e = *state;
	uint8_t bhs[ISD_BHS_LEN] = {0};
	uint32_t first = 0;
	int n = 100;

	login(e, true, true, 8192, 262144, 1);
	for (int i = 0; i < n; i++) {
		char data[16];
		uint32_t itt = e->itt++;

		if (i == 0)
			first = itt;
		snprintf(data, sizeof(data), "ping%d", i);
		bhs[0] = ISD_OP_NOP_OUT | ISD_BHS_I;
		bhs[1] = ISD_BHS_F;
		put_be32(bhs + 16, itt);
		put_be32(bhs + 20, ISD_RSVD_TAG);
		put_be32(bhs + 24, e->cmdsn);
		send_pdu(e, bhs, data, (uint32_t)strlen(data));
	}
	for (int i = 0; i < n; i++) {
		struct rpdu p;
		char data[16];

		snprintf(data, sizeof(data), "ping%d", i);
		assert_int_equal(recv_pdu(e, &p), 0);
		assert_int_equal(isd_bhs_opcode(p.bhs), ISD_OP_NOP_IN);
		assert_int_equal(isd_bhs_itt(p.bhs), first + (uint32_t)i);
		assert_int_equal(p.len, strlen(data));
		assert_memory_equal(p.data, data, p.len);
		rpdu_fini(&p);
	}
}

/* ABORT TASK while the target waits for Data-Out: the R2T state goes, a late
 * Data-Out for the old TTT does not crash or complete anything. */
static void
test_abort_during_r2t(void **state)
{
	struct env *e = *state;
	uint8_t bhs[ISD_BHS_LEN] = {0};
	uint8_t data[4096] = {0};
	struct r2t_seen r;
	struct rpdu p;
	uint32_t itt, tmf_itt;

	login(e, false, true, 8192, 262144, 1);
	itt = e->itt++;
	scsi_cmd_bhs(e, bhs, true, 0, 16, 8192, itt);
	send_pdu(e, bhs, NULL, 0);
	recv_r2t(e, itt, &r);
	data_out_bhs(e, bhs, itt, r.ttt, 0, 0, false);
	send_pdu(e, bhs, data, sizeof(data));
	for (int i = 0; i < 10; i++)
		pump(e, 1);

	tmf_itt = e->itt++;
	memset(bhs, 0, sizeof(bhs));
	bhs[0] = ISD_OP_TMF_REQ | ISD_BHS_I;
	bhs[1] = ISD_BHS_F | ISD_TMF_ABORT_TASK;
	put_be32(bhs + 16, tmf_itt);
	put_be32(bhs + 20, itt);                /* referenced task tag */
	put_be32(bhs + 24, e->cmdsn);
	put_be32(bhs + 28, e->exp_statsn);
	put_be32(bhs + 32, e->cmdsn - 1);       /* RefCmdSN */
	send_pdu(e, bhs, NULL, 0);
	assert_int_equal(recv_pdu(e, &p), 0);
	assert_int_equal(isd_bhs_opcode(p.bhs), ISD_OP_TMF_RSP);
	assert_int_equal(isd_bhs_itt(p.bhs), tmf_itt);
	assert_int_equal(p.bhs[2], ISD_TMF_RSP_COMPLETE);
	rpdu_fini(&p);
	/* The rest of the burst arrives late. */
	data_out_bhs(e, bhs, itt, r.ttt, 1, 4096, true);
	send_pdu(e, bhs, data, sizeof(data));
	nop_ping(e, "alive", 5);
}

/* Logout: the response is flushed before the target closes (then EOF). */
static void
test_logout_flushes_then_closes(void **state)
{
	struct env *e = *state;
	uint8_t bhs[ISD_BHS_LEN] = {0};
	struct rpdu p;

	login(e, true, true, 8192, 262144, 1);
	bhs[0] = ISD_OP_LOGOUT_REQ | ISD_BHS_I;
	bhs[1] = ISD_BHS_F | ISD_LOGOUT_CLOSE_SESSION;
	put_be32(bhs + 16, e->itt++);
	put_be32(bhs + 24, e->cmdsn);
	put_be32(bhs + 28, e->exp_statsn);
	send_pdu(e, bhs, NULL, 0);
	assert_int_equal(recv_pdu(e, &p), 0);
	assert_int_equal(isd_bhs_opcode(p.bhs), ISD_OP_LOGOUT_RSP);
	assert_int_equal(p.bhs[2], ISD_LOGOUT_RSP_OK);
	rpdu_fini(&p);
	assert_int_equal(recv_pdu(e, &p), -1);
}

/* A peer that reads slowly: the target's socket fills, it waits for EPOLLOUT and
 * resumes mid-PDU; the data still arrives intact and in order. */
static void
test_backpressure_partial_writes(void **state)
{
	struct env *e = *state;
	uint32_t len = 512 * BLK;
	uint8_t *wbuf = malloc(len), *rbuf = malloc(len);

	assert_non_null(wbuf);
	assert_non_null(rbuf);
	e->rcvbuf = 4096;
	login(e, true, true, 65536, 262144, 4);
	fill_pattern(wbuf, len, 5);
	write_blocks(e, 1000, wbuf, len, 262144, 4, 8192);
	/* 256 KiB through a 4 KiB receive buffer: the target blocks many times. */
	memset(rbuf, 0, len);
	read_blocks(e, 1000, 512, len, 65536, rbuf);
	assert_memory_equal(rbuf, wbuf, len);
	/* The whole LU while we do not read at all for a while: the socket fills. */
	{
		uint8_t bhs[ISD_BHS_LEN];
		uint8_t *all = malloc(LU_BYTES);
		uint32_t itt = e->itt++, got = 0;

		assert_non_null(all);
		scsi_cmd_bhs(e, bhs, false, 0, LU_BYTES / BLK, LU_BYTES, itt);
		send_pdu(e, bhs, NULL, 0);
		for (int i = 0; i < 50; i++)
			pump(e, 1);
		while (got < LU_BYTES) {
			struct rpdu p;

			assert_int_equal(recv_pdu(e, &p), 0);
			assert_int_equal(isd_bhs_opcode(p.bhs), ISD_OP_DATA_IN);
			assert_int_equal(get_be32(p.bhs + 40), got);
			memcpy(all + got, p.data, p.len);
			got += p.len;
			rpdu_fini(&p);
		}
		assert_memory_equal(all + 1000 * BLK, wbuf, len);
		free(all);
	}
	nop_ping(e, "after", 5);
	free(wbuf);
	free(rbuf);
}

/* An AHS is read and covered by the header digest; framing stays intact. */
static void
test_ahs_under_header_digest(void **state)
{
	struct env *e = *state;
	uint8_t buf[ISD_BHS_LEN + 8 + 4] = {0};
	uint8_t *bhs = buf, *ahs = buf + ISD_BHS_LEN;
	struct rpdu p;

	login(e, true, false, 8192, 262144, 1);
	bhs[0] = ISD_OP_NOP_OUT | ISD_BHS_I;
	bhs[1] = ISD_BHS_F;
	bhs[4] = 2;                     /* TotalAHSLength: 2 words */
	put_be32(bhs + 16, e->itt++);
	put_be32(bhs + 20, ISD_RSVD_TAG);
	put_be32(bhs + 24, e->cmdsn);
	put_be32(bhs + 28, e->exp_statsn);
	put_be16(ahs, 5);               /* AHSLength 5, type 2 (bidi read length) + pad */
	ahs[2] = ISD_AHS_BIDI_READ_LEN;
	isd_pdu_put_digest(buf + ISD_BHS_LEN + 8, isd_crc32c(buf, ISD_BHS_LEN + 8));
	send_all(e, buf, sizeof(buf));
	/* Whatever the core thinks of an AHS on a NOP-Out, it answers something. */
	assert_int_equal(recv_pdu(e, &p), 0);
	assert_true(isd_bhs_opcode(p.bhs) == ISD_OP_NOP_IN ||
		    isd_bhs_opcode(p.bhs) == ISD_OP_REJECT);
	rpdu_fini(&p);
	nop_ping(e, "still framed", 12);
}

/* Sends what it can; false once the target has dropped us. */
static bool
send_tolerant(struct env *e, const uint8_t *p, size_t len)
{
	int spins = 0;

	while (len > 0) {
		ssize_t n = send(e->fd, p, len, MSG_NOSIGNAL | MSG_DONTWAIT);

		if (n < 0) {
			if (errno != EAGAIN && errno != EWOULDBLOCK)
				return false;
			if (spins++ > 2000)
				return false;
			pump(e, 1);
			/* drain whatever the target answers so it never blocks on us */
			{
				uint8_t sink[4096];

				while (recv(e->fd, sink, sizeof(sink), MSG_DONTWAIT) > 0)
					;
			}
			continue;
		}
		p += n;
		len -= (size_t)n;
	}
	return true;
}

/* Garbage after login (random headers, AHS and data lengths, with and without
 * digests): the target may reject or drop, but must not crash or leak. */
static void
run_garbage(struct env *e, bool digests, unsigned int seed)
{
	uint8_t *buf = malloc(ISD_BHS_LEN + ISD_MAX_AHS_LEN + 20000);

	assert_non_null(buf);
	srand(seed);
	login(e, digests, digests, 8192, 262144, 2);
	for (int i = 0; i < 300; i++) {
		size_t len = ISD_BHS_LEN;
		uint32_t dsl;

		for (int k = 0; k < ISD_BHS_LEN; k++)
			buf[k] = (uint8_t)rand();
		/* mostly plausible opcodes, sometimes anything */
		if (i % 4 != 0) {
			static const uint8_t ops[] = {0x00, 0x01, 0x02, 0x04, 0x05, 0x06, 0x10};

			buf[0] = (uint8_t)((buf[0] & ISD_BHS_I) | ops[rand() % 7]);
		}
		if (rand() % 3 != 0)
			buf[4] = 0;
		dsl = (uint32_t)rand() % (i % 10 == 0 ? 16384u : 600u);
		isd_bhs_set_dsl(buf, dsl);
		len += isd_bhs_ahs_len(buf) + (digests ? 4 : 0) + dsl + isd_pad4(dsl) +
		       (digests && dsl > 0 ? 4 : 0);
		for (size_t k = ISD_BHS_LEN; k < len; k++)
			buf[k] = (uint8_t)rand();
		if (digests && rand() % 4 != 0) {
			uint32_t ahs = isd_bhs_ahs_len(buf);

			/* a valid header digest most of the time, to get past framing */
			isd_pdu_put_digest(buf + ISD_BHS_LEN + ahs,
					   isd_crc32c(buf, ISD_BHS_LEN + ahs));
		}
		if (!send_tolerant(e, buf, len))
			break;
		pump(e, 0);
	}
	for (int i = 0; i < 50; i++)
		pump(e, 1);
	free(buf);
}

static void
test_garbage_no_digests(void **state)
{
	run_garbage(*state, false, 1);
}

static void
test_garbage_with_digests(void **state)
{
	run_garbage(*state, true, 2);
}

/* A peer that stops reading with a large Data-In half sent, then logs out: the
 * transfer is abandoned mid-PDU (the rest of that PDU is copied aside), the
 * flush is bounded, and the connection goes away on its own. */
static void
test_stuck_peer_terminate_bounded(void **state)
{
	struct env *e = *state;
	uint8_t bhs[ISD_BHS_LEN];
	struct isd_iscsi_stats st;
	uint64_t t0;

	e->rcvbuf = 4096;
	login(e, true, true, 262144, 262144, 1);
	scsi_cmd_bhs(e, bhs, false, 0, LU_BYTES / BLK, LU_BYTES, e->itt++);
	send_pdu(e, bhs, NULL, 0);
	for (int i = 0; i < 20; i++)
		pump(e, 1);
	memset(bhs, 0, sizeof(bhs));
	bhs[0] = ISD_OP_LOGOUT_REQ | ISD_BHS_I;
	bhs[1] = ISD_BHS_F | ISD_LOGOUT_CLOSE_SESSION;
	put_be32(bhs + 16, e->itt++);
	put_be32(bhs + 24, e->cmdsn);
	put_be32(bhs + 28, e->exp_statsn);
	send_pdu(e, bhs, NULL, 0);
	t0 = isd_now_ns();
	do {
		pump(e, 10);
		isd_iscsi_tgt_get_stats(e->tgt, &st);
	} while (st.connections > 0 && isd_now_ns() - t0 < 6000000000ull);
	assert_int_equal(st.connections, 0);
	assert_int_equal(st.tasks, 0);
}

/* ABORT TASK for a READ whose Data-In is half in the socket: the PDU being written
 * is finished from a private copy (framing and digests intact), the rest of the
 * transfer is dropped, and the TMF response follows on a clean stream. */
static void
test_abort_mid_datain(void **state)
{
	struct env *e = *state;
	uint8_t bhs[ISD_BHS_LEN];
	uint32_t itt, tmf_itt, got = 0;
	bool tmf_seen = false;

	e->rcvbuf = 4096;
	login(e, true, true, 262144, 262144, 1);
	itt = e->itt++;
	scsi_cmd_bhs(e, bhs, false, 0, LU_BYTES / BLK, LU_BYTES, itt);
	send_pdu(e, bhs, NULL, 0);
	for (int i = 0; i < 20; i++)
		pump(e, 1);
	tmf_itt = e->itt++;
	memset(bhs, 0, sizeof(bhs));
	bhs[0] = ISD_OP_TMF_REQ | ISD_BHS_I;
	bhs[1] = ISD_BHS_F | ISD_TMF_ABORT_TASK;
	put_be32(bhs + 16, tmf_itt);
	put_be32(bhs + 20, itt);
	put_be32(bhs + 24, e->cmdsn);
	put_be32(bhs + 28, e->exp_statsn);
	put_be32(bhs + 32, e->cmdsn - 1);
	send_pdu(e, bhs, NULL, 0);
	for (int i = 0; i < 20; i++)
		pump(e, 1);
	while (!tmf_seen) {
		struct rpdu p;

		assert_int_equal(recv_pdu(e, &p), 0);
		if (isd_bhs_opcode(p.bhs) == ISD_OP_DATA_IN) {
			assert_int_equal(isd_bhs_itt(p.bhs), itt);
			assert_int_equal(get_be32(p.bhs + 40), got);
			assert_false(p.bhs[1] & ISD_DATAIN_S);
			got += p.len;
		} else {
			assert_int_equal(isd_bhs_opcode(p.bhs), ISD_OP_TMF_RSP);
			assert_int_equal(isd_bhs_itt(p.bhs), tmf_itt);
			tmf_seen = true;
		}
		rpdu_fini(&p);
	}
	assert_true(got < LU_BYTES);
	nop_ping(e, "clean stream", 12);
}

static void
pump_n(struct env *e, int n)
{
	for (int i = 0; i < n; i++)
		pump(e, 1);
}

/*
 * A peer that sends pings and does not read the echoes: past max_tx_queue_bytes
 * the target stops reading (the pings behind stay in the socket, the queue
 * stops growing), and once the peer has taken enough replies for the queue to
 * drain below half the limit it reads again and answers every ping.
 */
static void
test_txq_limit_pauses_reading(void **state)
{
	struct env *e = *state;
	struct isd_tcp_stats st0, st;
	uint8_t *ping = malloc(OUR_MRDSL);
	uint32_t first_itt, sent = 0, got = 0;
	uint64_t held;

	assert_non_null(ping);
	memset(ping, 0x5a, OUR_MRDSL);
	assert_int_equal(isd_tcp_set_max_tx_queue(ISD_TCP_TXQ_MIN - 1), -EINVAL);
	assert_int_equal(isd_tcp_set_max_tx_queue(ISD_TCP_TXQ_MAX + 1ull), -EINVAL);
	assert_int_equal(isd_tcp_set_max_tx_queue(ISD_TCP_TXQ_MIN), 0);
	e->rcvbuf = 4096;
	login(e, false, false, OUR_MRDSL, 65536, 1);
	isd_tcp_get_stats(&st0);
	assert_int_equal(st0.tx_queued_bytes, 0);
	first_itt = e->itt;
	/* Fill the queue past the limit: each echo is ~9 KiB queued. */
	do {
		nop_send(e, e->itt++, ping, OUR_MRDSL);
		sent++;
		pump_n(e, 5);
		isd_tcp_get_stats(&st);
		assert_true(sent < 64);
	} while (st.rx_paused == st0.rx_paused);
	assert_int_equal(st.rx_paused, st0.rx_paused + 1);
	assert_true(st.tx_queued_bytes > ISD_TCP_TXQ_MIN);
	held = st.tx_queued_bytes;
	/* More pings: they stay in the socket, nothing more is queued. */
	for (int i = 0; i < 4; i++) {
		nop_send(e, e->itt++, ping, OUR_MRDSL);
		sent++;
	}
	pump_n(e, 50);
	isd_tcp_get_stats(&st);
	assert_true(st.tx_queued_bytes <= held);
	assert_int_equal(st.rx_paused, st0.rx_paused + 1);
	assert_true(st.tx_queued_peak >= held);
	/* Take replies until the queue is below half: then the target reads again. */
	while (got < sent) {
		struct rpdu p;

		assert_int_equal(recv_pdu(e, &p), 0);
		assert_int_equal(isd_bhs_opcode(p.bhs), ISD_OP_NOP_IN);
		assert_int_equal(isd_bhs_itt(p.bhs), first_itt + got);
		assert_int_equal(p.len, OUR_MRDSL);
		assert_memory_equal(p.data, ping, OUR_MRDSL);
		rpdu_fini(&p);
		got++;
	}
	pump_n(e, 20);
	isd_tcp_get_stats(&st);
	assert_int_equal(st.tx_queued_bytes, 0);
	/* Paused once more at most (the last pings arrived together), resumed each time. */
	assert_true(st.rx_paused >= st0.rx_paused + 1);
	nop_ping(e, "after", 5);
	assert_int_equal(isd_tcp_set_max_tx_queue(ISD_TCP_TXQ_DEFAULT), 0);
	free(ping);
}

/*
 * The Data-Outs of four WRITEs that arrive together: the RAM store completes
 * each write from a deferred call (isd_bstore_complete_later), and all four
 * SCSI Responses leave at the end of the one reactor turn that read the data:
 * the send queue's kick runs at turn end, after the turn's deferred calls. As
 * a deferred call itself it ran a turn later, after the next turn's reads.
 */
static void
test_responses_leave_in_the_turn(void **state)
{
	struct env *e = *state;
	uint8_t bhs[ISD_BHS_LEN], data[BLK];
	struct r2t_seen r[4];
	uint32_t itt0;
	int avail = 0;

	login(e, false, false, 8192, 262144, 1);
	fill_pattern(data, sizeof(data), 7);
	itt0 = e->itt;
	for (int i = 0; i < 4; i++) {
		scsi_cmd_bhs(e, bhs, true, (uint32_t)i, 1, BLK, e->itt++);
		send_pdu(e, bhs, NULL, 0);
	}
	for (uint32_t i = 0; i < 4; i++)
		recv_r2t(e, itt0 + i, &r[i]);
	for (uint32_t i = 0; i < 4; i++)
		answer_r2t(e, itt0 + i, &r[i], data, BLK);
	pump(e, 1000);
	assert_int_equal(ioctl(e->fd, FIONREAD, &avail), 0);
	assert_int_equal(avail, 4 * ISD_BHS_LEN);
	for (uint32_t i = 0; i < 4; i++)
		expect_scsi_good(e, itt0 + i);
	nop_ping(e, "after", 5);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_portal_port_and_addrinuse, setup, teardown),
		cmocka_unit_test_setup_teardown(test_digests_and_padding, setup, teardown),
		cmocka_unit_test_setup_teardown(test_datain_split_and_collapse, setup, teardown),
		cmocka_unit_test_setup_teardown(test_r2t_limits, setup, teardown),
		cmocka_unit_test_setup_teardown(test_r2t_single_outstanding, setup, teardown),
		cmocka_unit_test_setup_teardown(test_dataout_bad_offset_and_datasn, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_dataout_digest_error_stores_nothing, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_oversized_segment_skipped, setup, teardown),
		cmocka_unit_test_setup_teardown(test_header_digest_error_drops, setup, teardown),
		cmocka_unit_test_setup_teardown(test_peer_close_mid_pdu, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pipelined_pdus, setup, teardown),
		cmocka_unit_test_setup_teardown(test_responses_leave_in_the_turn, setup, teardown),
		cmocka_unit_test_setup_teardown(test_abort_during_r2t, setup, teardown),
		cmocka_unit_test_setup_teardown(test_logout_flushes_then_closes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_backpressure_partial_writes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ahs_under_header_digest, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stuck_peer_terminate_bounded, setup, teardown),
		cmocka_unit_test_setup_teardown(test_abort_mid_datain, setup, teardown),
		cmocka_unit_test_setup_teardown(test_txq_limit_pauses_reading, setup, teardown),
		cmocka_unit_test_setup_teardown(test_garbage_no_digests, setup, teardown),
		cmocka_unit_test_setup_teardown(test_garbage_with_digests, setup, teardown),
	};

	/* ISD_TEST_DEBUG=tcp,iscsi shows the datamover's and the core's debug log. */
	if (getenv("ISD_TEST_DEBUG") != NULL) {
		isd_log_set_level(ISD_LOG_DEBUG);
		isd_log_enable(getenv("ISD_TEST_DEBUG"));
	}
	return cmocka_run_group_tests_name("dmtcp_framing", tests, NULL, NULL);
}
