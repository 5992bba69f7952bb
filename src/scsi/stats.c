/*
 * I/O statistics of the device server: how a command counts (direction by
 * opcode, error class by status and sense key, bytes moved), the two hooks
 * dev.c calls when a command starts and when it completes, and the readers.
 * Counters live in the LU and the device and belong to their reactor thread:
 * no lock, no allocation, one clock read at each end of a command.
 */
#include <errno.h>
#include <string.h>

#include "reactor/reactor.h"
#include "scsi/scsi_int.h"

enum isd_io_dir
isd_scsi_cdb_io_dir(const uint8_t *cdb, uint32_t cdb_len)
{
	if (cdb == NULL || cdb_len == 0)
		return ISD_IO_OTHER;
	switch (cdb[0]) {
	case 0x08:      /* READ(6) */
	case 0x28:      /* READ(10) */
	case 0xa8:      /* READ(12) */
	case 0x88:      /* READ(16) */
		return ISD_IO_READ;
	case 0x0a:      /* WRITE(6) */
	case 0x2a:      /* WRITE(10) */
	case 0xaa:      /* WRITE(12) */
	case 0x8a:      /* WRITE(16) */
	case 0x2e:      /* WRITE AND VERIFY(10) */
	case 0xae:      /* WRITE AND VERIFY(12) */
	case 0x8e:      /* WRITE AND VERIFY(16) */
	case 0x41:      /* WRITE SAME(10) */
	case 0x93:      /* WRITE SAME(16) */
	case 0x89:      /* COMPARE AND WRITE */
	case 0x8b:      /* ORWRITE(16) */
	case 0x9c:      /* WRITE ATOMIC(16) */
	case 0x42:      /* UNMAP */
		return ISD_IO_WRITE;
	default:
		return ISD_IO_OTHER;
	}
}

/* The sense key of fixed (70h/71h) or descriptor (72h/73h) format sense; -1 if none. */
static int
sense_key(const struct isd_scsi_cmd *cmd)
{
	uint8_t code;

	if (cmd->sense_len < 2)
		return -1;
	code = cmd->sense[0] & 0x7f;
	if (code == 0x72 || code == 0x73)
		return cmd->sense[1] & 0x0f;
	if ((code == 0x70 || code == 0x71) && cmd->sense_len >= 3)
		return cmd->sense[2] & 0x0f;
	return -1;
}

static int
err_class(const struct isd_scsi_cmd *cmd)
{
	switch (cmd->status) {
	case ISD_SAM_GOOD:
	case ISD_SAM_CONDITION_MET:
		/* cancelled while its exec ran: no response will say it was GOOD */
		return cmd->aborted ? ISD_IO_ERR_ABORTED : -1;
	case ISD_SAM_BUSY:
	case ISD_SAM_TASK_SET_FULL:
		return ISD_IO_ERR_BUSY;
	case ISD_SAM_RESERVATION_CONFLICT:
		return ISD_IO_ERR_CONFLICT;
	case ISD_SAM_TASK_ABORTED:
		return ISD_IO_ERR_ABORTED;
	case ISD_SAM_CHECK_CONDITION:
		break;
	default:
		return ISD_IO_ERR_OTHER;
	}
	switch (sense_key(cmd)) {
	case ISD_SK_MEDIUM_ERROR:
	case ISD_SK_HARDWARE_ERROR:
		return ISD_IO_ERR_MEDIUM;
	case ISD_SK_ILLEGAL_REQUEST:
		return ISD_IO_ERR_ILLEGAL;
	case ISD_SK_UNIT_ATTENTION:
		return ISD_IO_ERR_UNIT_ATTENTION;
	case ISD_SK_DATA_PROTECT:
		return ISD_IO_ERR_DATA_PROTECT;
	case ISD_SK_ABORTED_COMMAND:
		return ISD_IO_ERR_ABORTED;
	case ISD_SK_MISCOMPARE:
		return ISD_IO_ERR_MISCOMPARE;
	default:
		return ISD_IO_ERR_OTHER;
	}
}

void
isd_scsi_cmd_io_result(const struct isd_scsi_cmd *cmd, enum isd_io_dir *dir, uint64_t *bytes,
		       int *err)
{
	*dir = isd_scsi_cdb_io_dir(cmd->cdb, cmd->cdb_len);
	*err = err_class(cmd);
	*bytes = 0;
	if (*err >= 0)
		return;
	if (cmd->dir == ISD_SCSI_DIR_IN && cmd->read_flag)
		/* what the transport sends: never more than the initiator expects */
		*bytes = cmd->data_in_len < cmd->edtl ? cmd->data_in_len : cmd->edtl;
	else if (cmd->dir == ISD_SCSI_DIR_OUT)
		*bytes = cmd->data_out_len;
}

void
isd_scsi_io_start(struct isd_scsi_cmd *cmd, uint64_t t0)
{
	cmd->io_start_ns = t0;
	cmd->io_open = true;
	/* the shared path set its slot's shares already */
	if (!cmd->fast) {
		cmd->io_dev_st = cmd->dev != NULL ? &cmd->dev->io : NULL;
		cmd->io_lu_st = cmd->lu != NULL ? &cmd->lu->io : NULL;
	}
	if (cmd->io_dev_st != NULL)
		isd_io_stats_start(cmd->io_dev_st);
	if (cmd->io_lu_st != NULL)
		isd_io_stats_start(cmd->io_lu_st);
}

void
isd_scsi_io_done(struct isd_scsi_cmd *cmd, bool abandoned)
{
	enum isd_io_dir dir;
	uint64_t bytes, now;
	int err;

	if (!cmd->io_open)
		return;
	cmd->io_open = false;
	if (abandoned) {
		dir = isd_scsi_cdb_io_dir(cmd->cdb, cmd->cdb_len);
		bytes = 0;
		err = ISD_IO_ERR_ABORTED;
	} else {
		isd_scsi_cmd_io_result(cmd, &dir, &bytes, &err);
	}
	cmd->io_counted = true;
	cmd->io_dir = (uint8_t)dir;
	cmd->io_err = (int8_t)err;
	cmd->io_bytes = bytes;
	now = isd_now_ns();
	now = now > cmd->io_start_ns ? now - cmd->io_start_ns : 0;
	cmd->io_lat_ns = now;
	if (cmd->io_dev_st != NULL)
		isd_io_stats_done(cmd->io_dev_st, dir, bytes, err, now);
	if (cmd->io_lu_st != NULL)
		isd_io_stats_done(cmd->io_lu_st, dir, bytes, err, now);
}

int
isd_scsi_dev_lu_info(struct isd_scsi_dev *dev, uint32_t lun, struct isd_scsi_lu_info *out)
{
	const struct isd_scsi_lu *lu;

	if (dev == NULL || lun >= ISD_SCSI_MAX_LUNS)
		return -ENOENT;
	isd_monitor_enter(&dev->mon);
	lu = dev->lus[lun];
	if (lu == NULL) {
		isd_monitor_leave(&dev->mon);
		return -ENOENT;
	}
	memset(out, 0, sizeof(*out));
	out->lun = lun;
	out->block_size = lu->block_size;
	out->size = lu->nblocks * lu->block_size;
	out->read_only = lu->read_only;
	out->alua_group = dev->alua.group;
	out->alua_state = lu->alua_state;
	out->io = lu->io;
	for (unsigned i = 0; i < ISD_MONITOR_SLOTS; i++)
		if (lu->slot_io[i] != NULL)
			isd_io_stats_sum(&out->io, lu->slot_io[i]);
	isd_monitor_leave(&dev->mon);
	return 0;
}

int
isd_scsi_dev_luns(struct isd_scsi_dev *dev, uint32_t *out, int max)
{
	int n = 0;

	if (dev == NULL)
		return 0;
	isd_monitor_enter(&dev->mon);
	for (uint32_t i = 0; i < ISD_SCSI_MAX_LUNS; i++) {
		if (dev->lus[i] == NULL)
			continue;
		if (n < max)
			out[n] = i;
		n++;
	}
	isd_monitor_leave(&dev->mon);
	return n;
}

void
isd_scsi_dev_io_stats(struct isd_scsi_dev *dev, struct isd_io_stats *out)
{
	if (dev == NULL) {
		memset(out, 0, sizeof(*out));
		return;
	}
	isd_monitor_enter(&dev->mon);
	*out = dev->io;
	for (unsigned i = 0; i < ISD_MONITOR_SLOTS; i++)
		if (dev->slot[i] != NULL)
			isd_io_stats_sum(out, &dev->slot[i]->io);
	isd_monitor_leave(&dev->mon);
}

uint64_t
isd_scsi_dev_shared_cmds(struct isd_scsi_dev *dev)
{
	uint64_t n = 0;

	if (dev == NULL)
		return 0;
	isd_monitor_enter(&dev->mon);
	for (unsigned i = 0; i < ISD_MONITOR_SLOTS; i++)
		if (dev->slot[i] != NULL)
			n += dev->slot[i]->cmds;
	isd_monitor_leave(&dev->mon);
	return n;
}
