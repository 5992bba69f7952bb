/*
 * SCSI parameter lists through the device server: UNMAP block descriptor
 * lists, PERSISTENT RESERVE OUT parameter lists (every service action, scope
 * and type), MODE SELECT(6) and (10) parameter lists, each on a fresh thin
 * RAM LU with three I_T nexuses, so that a sequence of commands can build up
 * registrations, reservations and mode pages and read them back (PR IN, MODE
 * SENSE). fuzz_cdb covers the CDBs themselves; this target the data-out
 * payloads, which are just as much the peer's.
 *
 * Input (make_corpus.py writes seeds in this layout), a sequence of records:
 *   [kind][b1][flags][length be16][cdb length be16 if flags&4][parameter data]
 *   kind % 8: 0 UNMAP (b1 bit0 ANCHOR), 1 PR OUT (b1 service action, flags
 *     bits4-7 type, scope 0), 2 MODE SELECT(6) and 3 MODE SELECT(10) (b1 is
 *     CDB byte 1: PF, SP), 4 PR IN (b1 service action), 5 MODE SENSE(10)
 *     (b1 page), 6 a raw 16-byte CDB taken from the data (the rest is data),
 *     7 LU reset
 *   flags: bit0-1 nexus, bit2 the CDB's parameter list length comes from the
 *     input instead of the data length, bit3 EDTL shorter than the data
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_core.h"
#include "fuzz_input.h"
#include "reactor/reactor.h"
#include "scsi/scsi.h"
#include "util/endian.h"

#define MAX_RECORDS 64

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct isd_reactor *g_r;
static int g_done;

static void
cmd_done(struct isd_scsi_cmd *cmd)
{
	(void)cmd;
	g_done++;
}

static struct isd_scsi_dev *
make_dev(struct isd_scsi_nexus *nx, int n)
{
	struct isd_scsi_dev *dev = fuzz_ram_dev();

	memset(nx, 0, sizeof(*nx) * (size_t)n);
	for (int i = 0; i < n; i++) {
		snprintf(nx[i].initiator_port, sizeof(nx[i].initiator_port),
			 "iqn.2024-01.fuzz:i%d,i,0x00023d00000%d", i, i);
		snprintf(nx[i].target_port, sizeof(nx[i].target_port),
			 "iqn.2024-01.org.example:fuzz,t,0x%d", 1 + i / 2);
		nx[i].rel_tgt_port_id = (uint16_t)(1 + i / 2);
		nx[i].id = (uint64_t)i + 1;
		isd_scsi_nexus_add(dev, &nx[i]);
	}
	return dev;
}

/* Runs one command the way a transport does; the data-out buffer gets `data`. */
static void
run(struct isd_scsi_dev *dev, struct isd_scsi_nexus *nx, const uint8_t *cdb, uint32_t edtl,
    const uint8_t *data, size_t len)
{
	struct isd_scsi_cmd cmd;
	int rc;

	memset(&cmd, 0, sizeof(cmd));
	cmd.dev = dev;
	cmd.nexus = nx;
	cmd.lun = isd_scsi_lun_encode(0);
	cmd.cdb = cdb;
	cmd.cdb_len = 16;
	cmd.edtl = edtl;
	cmd.done = cmd_done;
	g_done = 0;
	rc = isd_scsi_cmd_setup(&cmd);
	if (rc == ISD_SCSI_SETUP_READY) {
		if (cmd.dir == ISD_SCSI_DIR_OUT && cmd.iovcnt > 0) {
			size_t n = cmd.edtl < cmd.xfer_len ? cmd.edtl : cmd.xfer_len;
			uint8_t *p = cmd.iov[0].iov_base;

			/* setup gives one buffer for a parameter list */
			if (n > cmd.iov[0].iov_len)
				abort();
			for (size_t i = 0; i < n; i++)
				p[i] = i < len ? data[i] : 0;
		}
		isd_scsi_cmd_exec(&cmd);
		for (int i = 0; i < 100000 && g_done == 0; i++)
			isd_reactor_poll(g_r, 0);
		if (g_done != 1 || cmd.data_in_len > cmd.xfer_len)
			abort();
	} else if (rc != ISD_SCSI_SETUP_DONE) {
		abort();
	}
	if (cmd.sense_len > ISD_SCSI_SENSE_MAX)
		abort();
	isd_scsi_cmd_release(&cmd);
}

static void
record(struct isd_scsi_dev *dev, struct isd_scsi_nexus *nx, struct fz *z)
{
	uint8_t kind = fz_u8(z) % 8, b1 = fz_u8(z), flags = fz_u8(z), cdb[16];
	uint32_t want = fz_u16(z), plen, edtl;
	const uint8_t *data;
	size_t len;

	plen = (flags & 4) ? fz_u16(z) : 0;
	len = fz_take(z, want, &data);
	if (!(flags & 4))
		plen = (uint32_t)len;
	edtl = (flags & 8) ? (uint32_t)len / 2 : (uint32_t)len;
	nx = &nx[(flags & 3) % 3];
	memset(cdb, 0, sizeof(cdb));
	switch (kind) {
	case 0:
		cdb[0] = 0x42;          /* UNMAP */
		cdb[1] = b1 & 1;
		put_be16(cdb + 7, (uint16_t)plen);
		break;
	case 1:
		cdb[0] = 0x5f;          /* PERSISTENT RESERVE OUT */
		cdb[1] = b1 & 0x1f;
		cdb[2] = flags >> 4;
		put_be32(cdb + 5, plen);
		break;
	case 2:
		cdb[0] = 0x15;          /* MODE SELECT(6) */
		cdb[1] = b1;
		cdb[4] = (uint8_t)plen;
		break;
	case 3:
		cdb[0] = 0x55;          /* MODE SELECT(10) */
		cdb[1] = b1;
		put_be16(cdb + 7, (uint16_t)plen);
		break;
	case 4:
		cdb[0] = 0x5e;          /* PERSISTENT RESERVE IN */
		cdb[1] = b1 & 0x1f;
		put_be16(cdb + 7, 8192);
		edtl = 8192;
		break;
	case 5:
		cdb[0] = 0x5a;          /* MODE SENSE(10), all subpages */
		cdb[2] = b1;
		cdb[3] = 0xff;
		put_be16(cdb + 7, 8192);
		edtl = 8192;
		break;
	case 6:
		memcpy(cdb, data, len < 16 ? len : 16);
		data += len < 16 ? len : 16;
		len -= len < 16 ? len : 16;
		edtl = (flags & 8) ? (uint32_t)len / 2 : 1u << 20;
		break;
	default:
		isd_scsi_lu_reset(dev, 0, nx);
		return;
	}
	run(dev, nx, cdb, edtl, data, len);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct isd_scsi_nexus nx[3];
	struct isd_scsi_dev *dev;
	struct fz z;

	g_r = fuzz_reactor();
	if (size > (1u << 18))
		return 0;
	dev = make_dev(nx, 3);
	fz_init(&z, data, size);
	for (int n = 0; n < MAX_RECORDS && z.left > 0; n++)
		record(dev, nx, &z);
	for (int i = 0; i < 3; i++)
		isd_scsi_nexus_remove(dev, &nx[i]);
	isd_scsi_dev_destroy(dev);
	isd_reactor_poll(g_r, 0);
	return 0;
}
