/*
 * Test harness for the SCSI device server: a device with RAM LUs, two I_T
 * nexuses, and a runner that takes a CDB (and data-out) through setup, exec
 * and the reactor, the way a transport would, and returns what came back.
 * Included by each tests/unit/scsi/test_*.c (static functions only).
 */
#ifndef ISD_TEST_SCSI_HARNESS_H
#define ISD_TEST_SCSI_HARNESS_H

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "bstore/bstore.h"
#include "reactor/reactor.h"
#include "scsi/scsi.h"
#include "util/endian.h"

#define H_BS 512
#define H_BLOCKS 2048u          /* 1 MiB LUs */

struct h {
	struct isd_reactor *r;
	struct isd_scsi_dev *dev;
	struct isd_scsi_nexus nx[3];
	void *mem[4];           /* mem_base of the RAM LUs by LUN (for checks) */
};

struct h_res {
	int setup_rc;
	uint8_t status;
	uint8_t key, asc, ascq;
	uint8_t sense[ISD_SCSI_SENSE_MAX];
	uint32_t sense_len;
	enum isd_scsi_dir dir;
	uint32_t xfer_len;
	uint32_t len;           /* data-in bytes */
	bool zero_copy;         /* data-in pointed into the RAM store */
	uint8_t data[65536];
};

static struct h_res g_res;

static void
h_add_ram_lu(struct h *h, uint32_t lun, bool thin, bool ro)
{
	struct isd_scsi_lu_cfg cfg;
	struct isd_bstore *bs;
	char err[128];

	memset(&cfg, 0, sizeof(cfg));
	assert_int_equal(isd_bstore_open(h->r, "ram:1M", &bs, err, sizeof(err)), 0);
	cfg.bstore = bs;
	cfg.block_size = H_BS;
	cfg.read_only = ro;
	cfg.thin = thin;
	cfg.write_cache = true;
	snprintf(cfg.vendor, sizeof(cfg.vendor), "ISERD");
	snprintf(cfg.product, sizeof(cfg.product), "unit test");
	snprintf(cfg.revision, sizeof(cfg.revision), "1.0");
	snprintf(cfg.serial, sizeof(cfg.serial), "SER%u", lun);
	cfg.naa_id = 0x0123456789abcdeull;
	assert_int_equal(isd_scsi_dev_add_lu(h->dev, lun, &cfg), 0);
	if (lun < 4)
		h->mem[lun] = bs->mem_base;
}

static void
h_init(struct h *h)
{
	memset(h, 0, sizeof(*h));
	assert_int_equal(isd_reactor_create(&h->r), 0);
	assert_int_equal(isd_scsi_dev_create("iqn.2024-01.test:tgt", &h->dev), 0);
	for (int i = 0; i < 3; i++) {
		snprintf(h->nx[i].initiator_port, sizeof(h->nx[i].initiator_port),
			 "iqn.2024-01.test:ini%d,i,0x00023d00000%d", i, i + 1);
		snprintf(h->nx[i].target_port, sizeof(h->nx[i].target_port),
			 "iqn.2024-01.test:tgt,t,0x0001");
		h->nx[i].rel_tgt_port_id = 1;
		h->nx[i].id = 100 + (uint64_t)i;
	}
}

static void
h_fini(struct h *h)
{
	for (int i = 0; i < 10; i++)
		isd_reactor_poll(h->r, 0);
	isd_scsi_dev_destroy(h->dev);
	isd_reactor_destroy(h->r);
}

static int g_done_calls;

static void
h_done(struct isd_scsi_cmd *cmd)
{
	(void)cmd;
	g_done_calls++;
}

/*
 * Runs one command as a transport would: setup; if READY, data-out copied in
 * (min(edtl, xfer_len) bytes, from `out`), exec, reactor polled until done.
 */
static struct h_res *
h_run_edtl(struct h *h, int nexus, uint32_t lun, const uint8_t *cdb, uint32_t cdb_len,
	   uint32_t edtl, const void *out, uint32_t out_len)
{
	struct isd_scsi_cmd cmd;
	struct h_res *res = &g_res;
	uint8_t cdb16[16];
	int rc;

	memset(res, 0, sizeof(*res));
	memset(&cmd, 0, sizeof(cmd));
	memset(cdb16, 0, sizeof(cdb16));
	memcpy(cdb16, cdb, cdb_len < 16 ? cdb_len : 16);
	cmd.dev = h->dev;
	cmd.nexus = nexus >= 0 ? &h->nx[nexus] : NULL;
	cmd.lun = isd_scsi_lun_encode(lun);
	cmd.cdb = cdb_len <= 16 ? cdb16 : cdb;
	cmd.cdb_len = cdb_len <= 16 ? 16 : cdb_len;
	cmd.edtl = edtl;
	cmd.done = h_done;
	g_done_calls = 0;
	rc = isd_scsi_cmd_setup(&cmd);
	res->setup_rc = rc;
	res->dir = cmd.dir;
	res->xfer_len = cmd.xfer_len;
	if (rc == ISD_SCSI_SETUP_READY) {
		if (cmd.dir == ISD_SCSI_DIR_OUT) {
			uint32_t n = edtl < cmd.xfer_len ? edtl : cmd.xfer_len;
			size_t have = 0;

			for (int i = 0; i < cmd.iovcnt; i++)
				have += cmd.iov[i].iov_len;
			assert_true(have >= n);
			if (n > 0) {
				assert_true(out != NULL || out_len == 0);
				memset(cmd.iov[0].iov_base, 0, n);
				if (out != NULL)
					memcpy(cmd.iov[0].iov_base, out, out_len < n ? out_len : n);
			}
		}
		isd_scsi_cmd_exec(&cmd);
		for (int i = 0; i < 1000 && g_done_calls == 0; i++)
			assert_int_equal(isd_reactor_poll(h->r, 10), 0);
		assert_int_equal(g_done_calls, 1);
	}
	res->status = cmd.status;
	res->sense_len = cmd.sense_len;
	memcpy(res->sense, cmd.sense, sizeof(res->sense));
	if (cmd.sense_len >= 14) {
		res->key = cmd.sense[2] & 0x0f;
		res->asc = cmd.sense[12];
		res->ascq = cmd.sense[13];
	}
	if (cmd.status == ISD_SAM_GOOD && cmd.dir == ISD_SCSI_DIR_IN) {
		uint32_t n = cmd.data_in_len;

		assert_true(n <= cmd.xfer_len);
		if (n > sizeof(res->data))
			n = sizeof(res->data);
		for (int i = 0, off = 0; i < cmd.iovcnt && (uint32_t)off < n; i++) {
			uint32_t c = (uint32_t)cmd.iov[i].iov_len;

			if (c > n - (uint32_t)off)
				c = n - (uint32_t)off;
			memcpy(res->data + off, cmd.iov[i].iov_base, c);
			off += (int)c;
		}
		res->len = cmd.data_in_len;
		res->zero_copy = cmd.priv_buf == NULL && cmd.data_in_len > 0;
	}
	isd_scsi_cmd_release(&cmd);
	return res;
}

static struct h_res *
h_run(struct h *h, int nexus, uint32_t lun, const uint8_t *cdb, uint32_t cdb_len,
      const void *out, uint32_t out_len)
{
	return h_run_edtl(h, nexus, lun, cdb, cdb_len, 16u << 20, out, out_len);
}

#define assert_sense(res, k, a, q)                                                                 \
	do {                                                                                       \
		struct h_res *r_ = (res);                                                          \
		assert_int_equal(r_->status, ISD_SAM_CHECK_CONDITION);                             \
		assert_int_equal(r_->key, (k));                                                    \
		assert_int_equal(r_->asc, (a));                                                    \
		assert_int_equal(r_->ascq, (q));                                                   \
	} while (0)

#define assert_good(res) assert_int_equal((res)->status, ISD_SAM_GOOD)
#define assert_status(res, s) assert_int_equal((res)->status, (s))

static inline void
h_tur(struct h *h, int nexus, uint32_t lun)
{
	uint8_t cdb[6] = { 0x00 };

	h_run(h, nexus, lun, cdb, 6, NULL, 0);
}

/* Consumes the power-on unit attention of every nexus at a LUN. */
static void
h_clear_ua(struct h *h, uint32_t lun)
{
	for (int n = 0; n < 3; n++)
		for (int i = 0; i < 8; i++) {
			uint8_t cdb[6] = { 0x00 };

			if (h_run(h, n, lun, cdb, 6, NULL, 0)->status == ISD_SAM_GOOD)
				break;
		}
}

static inline struct h_res *
h_rw10(struct h *h, int nexus, uint32_t lun, uint8_t op, uint32_t lba, uint16_t nb,
       const void *out, uint32_t out_len)
{
	uint8_t cdb[10] = { op };

	put_be32(cdb + 2, lba);
	put_be16(cdb + 7, nb);
	return h_run(h, nexus, lun, cdb, 10, out, out_len);
}

#endif
