/*
 * CDB fuzzer: arbitrary bytes as a CDB (byte 0 is the opcode) through setup
 * and exec on a small thin RAM LU (512-byte blocks, 4096-byte physical ones),
 * the reactor polled until the command is done. Input layout:
 *   [0..15]  the CDB (zero padded when shorter)
 *   [16]     flags: bit0-1 nexus, bit2 LUN 1 (absent) instead of 0,
 *            bit3 EDTL = byte 17 * 64 instead of "everything",
 *            bit4 send a LU reset first,
 *            bit5 run it in the ALUA state of bits 6-7: active/optimized,
 *            standby, unavailable, transitioning (the device has ALUA: group 1,
 *            one peer group); back to active/optimized after it, so that the
 *            inputs that follow, in whatever order, reach the media commands
 *   [17]     EDTL selector
 *   [18..]   data-out bytes (repeated to fill the buffer)
 * Device state (reservations, unit attentions, mode pages) carries over from
 * one input to the next, as it would on a real target.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bstore/bstore.h"
#include "reactor/reactor.h"
#include "scsi/scsi.h"

static struct isd_reactor *g_r;
static struct isd_scsi_dev *g_dev;
static struct isd_scsi_nexus g_nx[4];
static int g_done;

static void
fuzz_done(struct isd_scsi_cmd *cmd)
{
	(void)cmd;
	g_done++;
}

static void
fuzz_init(void)
{
	struct isd_scsi_lu_cfg cfg;
	struct isd_bstore *bs;
	char err[128];

	if (isd_reactor_create(&g_r) < 0 || isd_scsi_dev_create("fuzz", &g_dev) < 0)
		abort();
	if (isd_bstore_open(g_r, "ram:256K", &bs, err, sizeof(err)) < 0)
		abort();
	memset(&cfg, 0, sizeof(cfg));
	cfg.bstore = bs;
	cfg.block_size = 512;
	/* 8 blocks per physical block: WRITE ATOMIC alignment and granularity checks */
	cfg.physical_block_size = 4096;
	cfg.thin = true;
	cfg.write_cache = true;
	if (isd_scsi_dev_add_lu(g_dev, 0, &cfg) < 0)
		abort();
	{
		/* REPORT TARGET PORT GROUPS and the state checks are reachable */
		struct isd_scsi_alua_cfg a;

		memset(&a, 0, sizeof(a));
		a.group = 1;
		a.rtpi = 1;
		a.transition_secs = 10;
		a.npeers = 1;
		a.peers[0].group = 2;
		a.peers[0].rtpi = 2;
		if (isd_scsi_dev_set_alua(g_dev, &a) < 0)
			abort();
	}
	for (int i = 0; i < 4; i++) {
		snprintf(g_nx[i].initiator_port, sizeof(g_nx[i].initiator_port),
			 "iqn.2024-01.fuzz:i%d,i,0x00023d00000%d", i, i);
		snprintf(g_nx[i].target_port, sizeof(g_nx[i].target_port), "iqn.fuzz,t,0x1");
		g_nx[i].rel_tgt_port_id = 1;
		g_nx[i].id = (uint64_t)i + 1;
		isd_scsi_nexus_add(g_dev, &g_nx[i]);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct isd_scsi_cmd cmd;
	uint8_t cdb[16];
	uint8_t flags = size > 16 ? data[16] : 0;
	const uint8_t *out = size > 18 ? data + 18 : NULL;
	size_t out_len = size > 18 ? size - 18 : 0;
	int rc;

	if (g_r == NULL)
		fuzz_init();
	if (size == 0)
		return 0;
	memset(cdb, 0, sizeof(cdb));
	memcpy(cdb, data, size < 16 ? size : 16);
	memset(&cmd, 0, sizeof(cmd));
	cmd.dev = g_dev;
	cmd.nexus = &g_nx[flags & 3];
	cmd.lun = isd_scsi_lun_encode((flags & 4) ? 1 : 0);
	cmd.cdb = cdb;
	cmd.cdb_len = 16;
	cmd.edtl = (flags & 8) ? (uint32_t)(size > 17 ? data[17] : 0) * 64 : 32u << 20;
	cmd.done = fuzz_done;
	if (flags & 0x10)
		isd_scsi_lu_reset(g_dev, 0, cmd.nexus);
	if (flags & 0x20) {
		static const enum isd_scsi_alua_state st[4] = {
			ISD_ALUA_ACTIVE_OPTIMIZED, ISD_ALUA_STANDBY, ISD_ALUA_UNAVAILABLE,
			ISD_ALUA_TRANSITIONING,
		};

		if (isd_scsi_lu_set_alua_state(g_dev, 0, st[flags >> 6]) < 0)
			abort();
	}
	g_done = 0;
	rc = isd_scsi_cmd_setup(&cmd);
	if (rc == ISD_SCSI_SETUP_READY) {
		if (cmd.dir == ISD_SCSI_DIR_OUT && cmd.iovcnt > 0) {
			/* The transport moves min(edtl, xfer_len) bytes; fill that much. */
			size_t n = cmd.edtl < cmd.xfer_len ? cmd.edtl : cmd.xfer_len;
			uint8_t *p = cmd.iov[0].iov_base;

			if (n > cmd.iov[0].iov_len)
				abort();
			for (size_t i = 0; i < n; i++)
				p[i] = out_len > 0 ? out[i % out_len] : 0;
		}
		isd_scsi_cmd_exec(&cmd);
		for (int i = 0; i < 100000 && g_done == 0; i++)
			isd_reactor_poll(g_r, 0);
		if (g_done != 1)
			abort();
		if (cmd.data_in_len > cmd.xfer_len)
			abort();
	} else if (rc != ISD_SCSI_SETUP_DONE) {
		abort();
	}
	if (cmd.sense_len > ISD_SCSI_SENSE_MAX)
		abort();
	isd_scsi_cmd_release(&cmd);
	if ((flags & 0x20) && isd_scsi_lu_set_alua_state(g_dev, 0, ISD_ALUA_ACTIVE_OPTIMIZED) < 0)
		abort();
	return 0;
}
