/*
 * The TCP datamover's receive side: a connection of the real TCP datamover
 * over a socketpair, with the real core, SCSI layer and a RAM LU behind it,
 * and the input as what the initiator sends after a fixed good login
 * (digests on or off as the input chooses) and a TEST UNIT READY that takes
 * the power-on unit attention. In raw mode the input is the
 * byte stream itself: BHS, AHS, header digest, data, padding and data digest
 * framing with every length the peer can choose. In framed mode the input is
 * a list of PDUs the harness frames with correct (or, on request, wrong)
 * digests, so the fuzzer gets past the digest checks: solicited Data-Out is
 * answered to the target's actual R2Ts (isd_tcp_frame_check_dataout's ITT,
 * TTT, BufferOffset, DataSN and F checks, and the placement into the task's
 * buffer). At the end the client closes; the target must be back to zero
 * connections, sessions and tasks.
 *
 * Input (make_corpus.py writes seeds in this layout):
 *   [0] bit0 HeaderDigest=CRC32C, bit1 DataDigest=CRC32C, bit2 framed mode,
 *       bit3 InitialR2T=Yes, bit4 ImmediateData=Yes, bit5-6 the target's
 *       MaxRecvDataSegmentLength 8192, 512, 65536 or 4096, bit7 MaxBurstLength
 *       4096 (else 65536)
 *   raw mode: [1] bytes per write 1 + 16 * [1] (more where the stream would
 *       take over 64 writes); [2..] the stream
 *   framed mode, records: [ctl][AHS words][data length be16][BHS 48][AHS][data]
 *     ctl: 0x01 CmdSN stamped (advanced unless immediate or Data-Out),
 *          0x02 Data-Out answers the oldest R2T (ITT, TTT, BufferOffset,
 *               DataSN; F when it completes the R2T),
 *          0x04 wrong header digest, 0x08 wrong data digest,
 *          0x10 DataSegmentLength as in the input, not the data length,
 *          0x20 ExpStatSN stamped,
 *          0x40 Data-Out continues the last command's unsolicited data
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "dm/tcp/tcp.h"
#include "dm/tcp/tcp_int.h"
#include "fuzz_core.h"
#include "fuzz_input.h"
#include "iscsi/iscsi.h"
#include "iscsi/pdu.h"
#include "reactor/reactor.h"
#include "scsi/scsi.h"
#include "util/crc32c.h"
#include "util/endian.h"

#define TNAME FUZZ_TNAME
#define INAME "iqn.1993-08.org.debian:01:fuzz"
#define MAX_RECORDS 128
#define OUT_CAP (256u << 10)
#define R2T_MAX 64

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct isd_reactor *g_r;

struct r2t_rec {
	uint32_t itt, ttt, offset, length, sent, datasn;
};

struct tf {
	struct isd_iscsi_tgt *t;
	struct isd_scsi_dev *dev;
	struct isd_tnode node;
	int fd;                         /* the initiator's end */
	bool hd, dd;                    /* digests in force on what we parse and send */
	bool gone;                      /* the target closed */
	/* the target's stream */
	uint8_t *out;
	uint32_t out_len;
	bool login_done;
	uint32_t statsn;
	/* R2Ts not fully answered, oldest first */
	struct r2t_rec r2t[R2T_MAX];
	int n_r2t;
	uint32_t cmdsn;
	uint32_t last_itt, next_off, next_datasn;
};

/* Consumes whole PDUs from the target's stream, remembering StatSN and R2Ts. */
static void
parse_out(struct tf *f)
{
	for (;;) {
		uint32_t hlen, dsl, total;
		uint8_t *b = f->out;

		if (f->out_len < ISD_BHS_LEN)
			return;
		dsl = isd_bhs_dsl(b);
		hlen = ISD_BHS_LEN + isd_bhs_ahs_len(b) + (f->hd ? 4 : 0);
		total = hlen + dsl + isd_pad4(dsl) + (f->dd && dsl > 0 ? 4 : 0);
		if (total > OUT_CAP)
			abort();        /* the target never sends more than we declared */
		if (f->out_len < total)
			return;
		switch (isd_bhs_opcode(b)) {
		case ISD_OP_R2T:
			if (f->n_r2t < R2T_MAX) {
				struct r2t_rec *r = &f->r2t[f->n_r2t++];

				r->itt = isd_bhs_itt(b);
				r->ttt = get_be32(b + 20);
				r->offset = get_be32(b + 40);
				r->length = get_be32(b + 44);
				r->sent = 0;
				r->datasn = 0;
			}
			break;
		case ISD_OP_DATA_IN:
			if (b[1] & 0x01)
				f->statsn = get_be32(b + 24) + 1;
			break;
		case ISD_OP_LOGIN_RSP:
			f->statsn = get_be32(b + 24) + 1;
			f->login_done = true;
			break;
		default:
			f->statsn = get_be32(b + 24) + 1;
			break;
		}
		memmove(f->out, f->out + total, f->out_len - total);
		f->out_len -= total;
	}
}

static void
read_out(struct tf *f)
{
	for (;;) {
		ssize_t n = recv(f->fd, f->out + f->out_len, OUT_CAP - f->out_len, MSG_DONTWAIT);

		if (n == 0) {
			f->gone = true;
			return;
		}
		if (n < 0) {
			if (errno != EAGAIN && errno != EWOULDBLOCK)
				f->gone = true;
			return;
		}
		f->out_len += (uint32_t)n;
		parse_out(f);
		if (f->out_len == OUT_CAP)
			abort();
	}
}

static void
send_bytes(struct tf *f, const uint8_t *p, size_t len, size_t chunk)
{
	int stalls = 0;

	while (len > 0 && !f->gone && stalls < 64) {
		ssize_t n = send(f->fd, p, len < chunk ? len : chunk, MSG_NOSIGNAL | MSG_DONTWAIT);

		if (n < 0) {
			if (errno != EAGAIN && errno != EWOULDBLOCK) {
				f->gone = true;
				return;
			}
			stalls++;
		} else {
			p += n;
			len -= (size_t)n;
			stalls = 0;
		}
		fuzz_pump(1);
		read_out(f);
	}
}

/* Frames one PDU (digests as negotiated, optionally wrong) and sends it. */
static void
send_pdu(struct tf *f, uint8_t *bhs, const uint8_t *ahs, uint32_t ahs_len, const uint8_t *data,
	 uint32_t len, uint8_t ctl)
{
	static uint8_t buf[ISD_BHS_LEN + ISD_MAX_AHS_LEN + 8 + 65536 + 8];
	uint32_t n = 0, crc, pad = isd_pad4(len);

	if (!(ctl & 0x10))
		isd_bhs_set_dsl(bhs, len);
	bhs[4] = (uint8_t)(ahs_len / 4);
	memcpy(buf, bhs, ISD_BHS_LEN);
	n = ISD_BHS_LEN;
	if (ahs_len > 0)
		memcpy(buf + n, ahs, ahs_len);
	n += ahs_len;
	if (f->hd) {
		crc = isd_pdu_hdr_digest(bhs, ahs, ahs_len) ^ ((ctl & 0x04) ? 1 : 0);
		isd_pdu_put_digest(buf + n, crc);
		n += 4;
	}
	if (len > 0) {
		struct iovec iov = {(void *)data, len};
		static const uint8_t zeros[3];

		memcpy(buf + n, data, len);
		n += len;
		memset(buf + n, 0, pad);
		n += pad;
		if (f->dd) {
			crc = isd_pdu_data_digest(&iov, 1, zeros, pad) ^ ((ctl & 0x08) ? 1 : 0);
			isd_pdu_put_digest(buf + n, crc);
			n += 4;
		}
	}
	send_bytes(f, buf, n, n);
}

static size_t
add_key(char *buf, size_t off, const char *kv)
{
	size_t n = strlen(kv) + 1;

	memcpy(buf + off, kv, n);
	return off + n;
}

static void
setup(struct tf *f, uint8_t cfg)
{
	static const uint32_t mrdsl[4] = {8192, 512, 65536, 4096};
	static uint8_t out[OUT_CAP];     /* one per process: no mmap/munmap per input */
	struct isd_conn_info info;
	struct isd_tcp_conn *tc;
	struct isd_dm_conn *c;
	int sv[2];

	memset(f, 0, sizeof(*f));
	f->out = out;
	f->dev = fuzz_ram_dev();
	f->t = fuzz_target(&f->node, f->dev);
	f->node.policy.allow_header_digest = true;
	f->node.policy.allow_data_digest = true;
	f->node.policy.max_recv_dsl = mrdsl[(cfg >> 5) & 3];
	f->node.policy.max_burst_length = (cfg & 0x80) ? 4096 : 65536;
	f->node.policy.first_burst_length = 4096;
	f->node.policy.max_outstanding_r2t = 4;
	f->node.policy.initial_r2t = (cfg & 8) != 0;
	f->node.policy.immediate_data = (cfg & 0x10) != 0;
	if (isd_iscsi_tgt_add_node(f->t, &f->node) < 0)
		abort();

	/* what tcp_portal.c's accept does, on one end of a socketpair */
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) != 0)
		abort();
	memset(&info, 0, sizeof(info));
	snprintf(info.peer_addr, sizeof(info.peer_addr), "192.0.2.1");
	info.peer_port = 40000;
	snprintf(info.local_addr, sizeof(info.local_addr), "192.0.2.10");
	info.local_port = 3260;
	info.tpgt = 1;
	info.transport = ISD_TRANSPORT_TCP;
	if (isd_conn_create(f->t, &isd_tcp_dm_ops, &info, g_r, &c) < 0)
		abort();
	tc = isd_dmc_priv(c);
	isd_tcp_conn_init(tc, c, g_r, sv[0]);
	(void)isd_tcp_conn_attach(tc);
	isd_conn_start(c);
	f->fd = sv[1];
}

static void
login(struct tf *f, uint8_t cfg)
{
	uint8_t bhs[ISD_BHS_LEN] = {0};
	char text[1024];
	size_t len = 0;

	len = add_key(text, len, "InitiatorName=" INAME);
	len = add_key(text, len, "SessionType=Normal");
	len = add_key(text, len, "TargetName=" TNAME);
	len = add_key(text, len, (cfg & 1) ? "HeaderDigest=CRC32C" : "HeaderDigest=None");
	len = add_key(text, len, (cfg & 2) ? "DataDigest=CRC32C" : "DataDigest=None");
	len = add_key(text, len, "MaxRecvDataSegmentLength=8192");
	len = add_key(text, len, (cfg & 8) ? "InitialR2T=Yes" : "InitialR2T=No");
	len = add_key(text, len, (cfg & 0x10) ? "ImmediateData=Yes" : "ImmediateData=No");
	len = add_key(text, len, "MaxOutstandingR2T=4");
	len = add_key(text, len, (cfg & 0x80) ? "MaxBurstLength=4096" : "MaxBurstLength=65536");
	len = add_key(text, len, "FirstBurstLength=4096");
	f->cmdsn = 1;
	bhs[0] = ISD_OP_LOGIN_REQ | ISD_BHS_I;
	bhs[1] = ISD_LOGIN_T | (ISD_STAGE_OPERATIONAL << 2) | ISD_STAGE_FFP;
	bhs[8] = 0x40;
	bhs[13] = 0x01;
	put_be32(bhs + 16, 0x1000);
	put_be32(bhs + 24, f->cmdsn);
	send_pdu(f, bhs, NULL, 0, (const uint8_t *)text, (uint32_t)len, 0);
	for (int i = 0; i < 100 && !f->login_done && !f->gone; i++) {
		fuzz_pump(1);
		read_out(f);
	}
	/* The harness's own login is good: anything else is a bug. */
	if (!f->login_done)
		abort();
	f->hd = (cfg & 1) != 0;
	f->dd = (cfg & 2) != 0;
	/* TEST UNIT READY eats the power-on unit attention, so writes reach R2T */
	memset(bhs, 0, sizeof(bhs));
	bhs[0] = ISD_OP_SCSI_CMD;
	bhs[1] = ISD_BHS_F | 1;
	put_be32(bhs + 16, 0x1001);
	put_be32(bhs + 24, f->cmdsn++);
	put_be32(bhs + 28, f->statsn);
	send_pdu(f, bhs, NULL, 0, NULL, 0, 0);
	fuzz_pump(4);
	read_out(f);
}

static void
record(struct tf *f, struct fz *z)
{
	uint8_t ctl = fz_u8(z), words = fz_u8(z), bhs[ISD_BHS_LEN], op;
	uint32_t dlen = fz_u16(z);
	const uint8_t *ahs, *data;
	size_t ahs_len;

	fz_copy(z, bhs, sizeof(bhs));
	ahs_len = fz_take(z, (size_t)words * 4, &ahs) & ~(size_t)3;
	dlen = (uint32_t)fz_take(z, dlen, &data);
	op = isd_bhs_opcode(bhs);
	if (op == ISD_OP_SCSI_CMD) {
		f->last_itt = isd_bhs_itt(bhs);
		f->next_off = dlen;
		f->next_datasn = 0;
	}
	if (ctl & 0x01) {
		put_be32(bhs + 24, f->cmdsn);
		if (!isd_bhs_immediate(bhs) && op != ISD_OP_DATA_OUT)
			f->cmdsn++;
	}
	if (ctl & 0x20)
		put_be32(bhs + 28, f->statsn);
	if (op == ISD_OP_DATA_OUT && (ctl & 0x02) && f->n_r2t > 0) {
		struct r2t_rec *r = &f->r2t[0];

		put_be32(bhs + 16, r->itt);
		put_be32(bhs + 20, r->ttt);
		put_be32(bhs + 36, r->datasn++);
		put_be32(bhs + 40, r->offset + r->sent);
		r->sent += dlen;
		bhs[1] = r->sent >= r->length ? ISD_BHS_F : 0;
		if (r->sent >= r->length) {
			memmove(&f->r2t[0], &f->r2t[1], (size_t)(f->n_r2t - 1) * sizeof(f->r2t[0]));
			f->n_r2t--;
		}
	} else if (op == ISD_OP_DATA_OUT && (ctl & 0x40)) {
		put_be32(bhs + 16, f->last_itt);
		put_be32(bhs + 20, ISD_RSVD_TAG);
		put_be32(bhs + 36, f->next_datasn++);
		put_be32(bhs + 40, f->next_off);
		f->next_off += dlen;
	}
	send_pdu(f, bhs, ahs, (uint32_t)ahs_len, data, dlen, ctl);
	fuzz_pump(4);
	read_out(f);
}

static void
teardown(struct tf *f)
{
	close(f->fd);
	fuzz_target_drain_destroy(f->t);
	isd_scsi_dev_destroy(f->dev);
	fuzz_pump(2);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct tf f;
	struct fz z;
	uint8_t cfg;

	g_r = fuzz_reactor();
	if (size > (1u << 18))
		return 0;
	fz_init(&z, data, size);
	cfg = fz_u8(&z);
	setup(&f, cfg);
	login(&f, cfg);
	if (cfg & 4) {
		for (int n = 0; n < MAX_RECORDS && z.left > 0 && !f.gone; n++)
			record(&f, &z);
	} else {
		size_t chunk = 1 + 16 * (size_t)fz_u8(&z);
		const uint8_t *rest;
		size_t n = fz_take(&z, z.left, &rest);

		/* at most 64 writes an input: byte by byte through a long stream costs
		 * syscalls, not coverage (short inputs reach every split point) */
		if (n / chunk > 64)
			chunk = n / 64 + 1;
		send_bytes(&f, rest, n, chunk);
	}
	fuzz_pump(4);
	read_out(&f);
	teardown(&f);
	return 0;
}
