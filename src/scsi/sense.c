/* Fixed-format sense data (SPC-5 4.4.3): 18 bytes, INFORMATION and field pointers. */
#include <string.h>

#include "scsi/scsi_int.h"
#include "util/endian.h"

#define SENSE_FIXED_LEN 18

void
isd_scsi_sense_fixed(uint8_t *buf, uint8_t key, uint16_t asc_ascq)
{
	memset(buf, 0, SENSE_FIXED_LEN);
	buf[0] = 0x70;                          /* current error, fixed format */
	buf[2] = key & 0x0f;
	buf[7] = SENSE_FIXED_LEN - 8;           /* additional sense length */
	buf[12] = (uint8_t)(asc_ascq >> 8);
	buf[13] = (uint8_t)asc_ascq;
}

void
isd_scsi_set_sense(struct isd_scsi_cmd *cmd, uint8_t key, uint8_t asc, uint8_t ascq)
{
	isd_scsi_sense_fixed(cmd->sense, key, (uint16_t)(asc << 8 | ascq));
	cmd->sense_len = SENSE_FIXED_LEN;
}

void
isd_scsi_check(struct isd_scsi_cmd *cmd, uint8_t key, uint16_t asc_ascq)
{
	cmd->status = ISD_SAM_CHECK_CONDITION;
	isd_scsi_set_sense(cmd, key, (uint8_t)(asc_ascq >> 8), (uint8_t)asc_ascq);
}

void
isd_scsi_sense_info(struct isd_scsi_cmd *cmd, uint32_t info)
{
	if (cmd->sense_len < SENSE_FIXED_LEN)
		return;
	cmd->sense[0] |= 0x80;                  /* VALID: INFORMATION is meaningful */
	put_be32(cmd->sense + 3, info);
}

void
isd_scsi_sense_field(struct isd_scsi_cmd *cmd, bool in_cdb, uint16_t byte, int bit)
{
	uint8_t b = 0x80;                       /* SKSV */

	if (cmd->sense_len < SENSE_FIXED_LEN)
		return;
	if (in_cdb)
		b |= 0x40;                      /* C/D: the error is in the CDB */
	if (bit >= 0 && bit <= 7)
		b |= 0x08 | (uint8_t)bit;       /* BPV + BIT POINTER */
	cmd->sense[15] = b;
	put_be16(cmd->sense + 16, byte);
}

void
isd_scsi_sense_progress(struct isd_scsi_cmd *cmd, uint16_t progress)
{
	if (cmd->sense_len < SENSE_FIXED_LEN)
		return;
	cmd->sense[15] = 0x80;                  /* SKSV */
	put_be16(cmd->sense + 16, progress);
}

void
isd_scsi_invalid_cdb(struct isd_scsi_cmd *cmd, uint16_t byte, int bit)
{
	isd_scsi_check(cmd, ISD_SK_ILLEGAL_REQUEST, ISD_ASC_INVALID_FIELD_CDB);
	isd_scsi_sense_field(cmd, true, byte, bit);
}

void
isd_scsi_invalid_param(struct isd_scsi_cmd *cmd, uint16_t byte, int bit)
{
	isd_scsi_check(cmd, ISD_SK_ILLEGAL_REQUEST, ISD_ASC_INVALID_FIELD_PARAM);
	isd_scsi_sense_field(cmd, false, byte, bit);
}
