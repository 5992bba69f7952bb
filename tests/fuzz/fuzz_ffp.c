/*
 * Full feature phase through the fake datamover: a fresh target with a RAM LU
 * per input, a fixed good login, then arbitrary PDUs (SCSI Command with and
 * without immediate data, Data-Out, Text, TMF, NOP-Out, Logout, SNACK,
 * anything) into the core, with the pending data transfers completed (or
 * failed) and the reactor run when the input says so. At the end the
 * connection is torn down and the target must be back to zero connections,
 * sessions and tasks; LeakSanitizer checks the rest.
 *
 * Input (make_corpus.py writes seeds in this layout):
 *   [0]  login: bit0 ImmediateData=Yes, bit1 InitialR2T=Yes, bit2 discovery
 *        session, bit3 skip clearing the power-on unit attention,
 *        bit4-5 our MaxRecvDataSegmentLength 8192, 512, 65536 or 262144
 *   then records: [ctl][AHS words][data length be16][BHS 48][AHS][data]
 *   ctl: 0x01 CmdSN stamped by the harness (and advanced unless immediate),
 *        0x02 Data-Out: ITT, BufferOffset and DataSN continue the last command,
 *        0x04 complete pending transfers with the record's data,
 *        0x08 fail pending transfers (-EIO),
 *        0x10 run the reactor,
 *        0x20 ExpStatSN stamped from the last StatSN seen,
 *        0x40 the data only feeds the transfers completed, the PDU carries none
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fake_dm.h"
#include "fuzz_core.h"
#include "fuzz_input.h"
#include "iscsi/iscsi.h"
#include "iscsi/pdu.h"
#include "reactor/reactor.h"
#include "scsi/scsi.h"
#include "util/endian.h"

#define TNAME FUZZ_TNAME
#define INAME "iqn.1993-08.org.debian:01:fuzz"
#define MAX_RECORDS 256
#define MAX_DATA 65536

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct isd_reactor *g_r;

struct ffp {
	struct isd_iscsi_tgt *t;
	struct isd_scsi_dev *dev;
	struct isd_tnode node;
	struct fake_dm fd;
	uint32_t cmdsn;
	uint32_t statsn;                /* next StatSN we expect the target to use */
	uint32_t last_itt;              /* of the last SCSI Command */
	uint32_t next_off;              /* Data-Out continuation */
	uint32_t next_datasn;
};

/* Frees what the target sent, remembering its StatSN, and delivers a requested terminate. */
static void
drain(struct ffp *f)
{
	struct isd_pdu *p;

	while ((p = fake_dm_pop(&f->fd)) != NULL) {
		uint8_t op = isd_bhs_opcode(p->bhs);

		if (op != ISD_OP_DATA_IN && op != ISD_OP_R2T)
			f->statsn = get_be32(p->bhs + 24) + 1;
		isd_pdu_free(p);
	}
	free(f->fd.read_data);
	f->fd.read_data = NULL;
	f->fd.read_len = 0;
	if (f->fd.conn != NULL && f->fd.terminate_called)
		fake_dm_terminate_notify(&f->fd, false);
}

static void
complete_all(struct ffp *f, const uint8_t *data, uint32_t len, int status)
{
	static uint8_t buf[1u << 20];

	/* A completion may start the next transfer of the same task: bounded rounds. */
	for (int round = 0; round < 4 * FAKE_DM_MAX_XFER && f->fd.n_xfers > 0; round++) {
		uint32_t need = f->fd.xfers[0].length;

		if (need > sizeof(buf))
			need = sizeof(buf);
		for (uint32_t i = 0; i < need; i++)
			buf[i] = len > 0 ? data[i % len] : 0;
		if (fake_dm_complete(&f->fd, buf, status) < 0)
			break;
		fuzz_pump(2);
		drain(f);
	}
}

static int
setup(struct ffp *f, uint8_t cfg)
{
	static const uint32_t mrdsl[4] = {8192, 512, 65536, 262144};

	memset(f, 0, sizeof(*f));
	f->dev = fuzz_ram_dev();
	f->t = fuzz_target(&f->node, f->dev);
	f->node.policy.max_recv_dsl = mrdsl[(cfg >> 4) & 3];
	f->node.policy.max_outstanding_r2t = 4;
	if (isd_iscsi_tgt_add_node(f->t, &f->node) < 0)
		abort();
	fake_dm_init(&f->fd);
	return fake_dm_connect(&f->fd, f->t, g_r, 1);
}

static void
login(struct ffp *f, uint8_t cfg)
{
	static const uint8_t isid[6] = {0x80, 0, 0, 0, 0x12, 0x34};
	uint8_t bhs[ISD_BHS_LEN], text[1024];
	struct isd_pdu *rsp;
	uint32_t len;

	if (cfg & 4) {
		len = fake_text(text, sizeof(text), "InitiatorName=" INAME, "SessionType=Discovery",
				"HeaderDigest=None", "DataDigest=None",
				"MaxRecvDataSegmentLength=8192", (const char *)NULL);
	} else {
		len = fake_text(text, sizeof(text), "InitiatorName=" INAME, "TargetName=" TNAME,
				"SessionType=Normal", "HeaderDigest=None", "DataDigest=None",
				"MaxRecvDataSegmentLength=262144",
				(cfg & 1) ? "ImmediateData=Yes" : "ImmediateData=No",
				(cfg & 2) ? "InitialR2T=Yes" : "InitialR2T=No",
				"FirstBurstLength=16384", "MaxBurstLength=65536",
				"MaxOutstandingR2T=4", (const char *)NULL);
	}
	f->cmdsn = 1;
	fake_login_bhs(bhs, ISD_LOGIN_T | (ISD_STAGE_OPERATIONAL << 2) | ISD_STAGE_FFP, isid, 0,
		       0x1000, f->cmdsn);
	fake_dm_inject(&f->fd, bhs, text, len);
	rsp = fake_dm_pop(&f->fd);
	/* The harness's own login is good: anything else is a bug in the core. */
	if (rsp == NULL || isd_bhs_opcode(rsp->bhs) != ISD_OP_LOGIN_RSP || rsp->bhs[36] != 0)
		abort();
	f->statsn = get_be32(rsp->bhs + 24) + 1;
	isd_pdu_free(rsp);
	if (!(cfg & 4) && !(cfg & 8)) {
		/* TEST UNIT READY eats the power-on unit attention */
		memset(bhs, 0, sizeof(bhs));
		bhs[0] = ISD_OP_SCSI_CMD;
		bhs[1] = ISD_BHS_F | 1;
		put_be32(bhs + 16, 1);
		put_be32(bhs + 24, f->cmdsn++);
		put_be32(bhs + 28, f->statsn);
		fake_dm_inject(&f->fd, bhs, NULL, 0);
		fuzz_pump(4);
		drain(f);
	}
}

static void
record(struct ffp *f, struct fz *z)
{
	uint8_t ctl = fz_u8(z), words = fz_u8(z), bhs[ISD_BHS_LEN], op;
	uint32_t dlen = fz_u16(z), sent;
	const uint8_t *ahs, *data;
	size_t ahs_len;

	fz_copy(z, bhs, sizeof(bhs));
	ahs_len = fz_take(z, (size_t)words * 4, &ahs) & ~(size_t)3;
	dlen = (uint32_t)fz_take(z, dlen, &data);
	sent = (ctl & 0x40) ? 0 : dlen;
	op = isd_bhs_opcode(bhs);
	if (op == ISD_OP_SCSI_CMD) {
		f->last_itt = isd_bhs_itt(bhs);
		f->next_off = sent;        /* immediate data came first */
		f->next_datasn = 0;
	}
	if (ctl & 0x01) {
		put_be32(bhs + 24, f->cmdsn);
		if (!isd_bhs_immediate(bhs) && op != ISD_OP_DATA_OUT)
			f->cmdsn++;
	}
	if ((ctl & 0x02) && op == ISD_OP_DATA_OUT) {
		put_be32(bhs + 16, f->last_itt);
		put_be32(bhs + 36, f->next_datasn++);
		put_be32(bhs + 40, f->next_off);
		f->next_off += sent;
	}
	if (ctl & 0x20)
		put_be32(bhs + 28, f->statsn);
	fake_dm_inject_ahs(&f->fd, bhs, ahs, (uint32_t)ahs_len, data, sent);
	drain(f);
	if (ctl & 0x10)
		fuzz_pump(4);
	if (ctl & 0x0c)
		complete_all(f, data, dlen, (ctl & 0x08) ? -EIO : 0);
	drain(f);
}

static void
teardown(struct ffp *f)
{
	if (f->fd.conn != NULL)
		fake_dm_terminate_notify(&f->fd, true);
	fuzz_target_drain_destroy(f->t);
	fake_dm_fini(&f->fd);
	isd_scsi_dev_destroy(f->dev);
	fuzz_pump(2);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ffp f;
	struct fz z;
	uint8_t cfg;

	g_r = fuzz_reactor();
	if (size > 4 * MAX_DATA)
		return 0;
	fz_init(&z, data, size);
	cfg = fz_u8(&z);
	if (setup(&f, cfg) < 0)
		abort();
	login(&f, cfg);
	for (int n = 0; n < MAX_RECORDS && z.left > 0 && f.fd.conn != NULL; n++)
		record(&f, &z);
	teardown(&f);
	return 0;
}
