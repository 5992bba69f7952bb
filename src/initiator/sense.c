/*
 * Sense data (SPC-5 §4.4): fixed format (0x70/0x71) and descriptor format
 * (0x72/0x73) decoding, and the words for keys, ASC/ASCQ and statuses.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "initiator/init_int.h"
#include "util/endian.h"

int
iserd_sense_decode(const uint8_t *b, size_t len, struct iserd_sense *s)
{
	uint8_t rc;

	if (s == NULL)
		return -EINVAL;
	memset(s, 0, sizeof(*s));
	if (b == NULL || len < 1)
		return -EINVAL;
	rc = b[0] & 0x7f;
	s->response_code = rc;
	switch (rc) {
	case 0x70:
	case 0x71: {
		uint32_t add;

		/* Fixed: key in byte 2, INFORMATION 3..6, additional length 7, ASC 12, ASCQ 13. */
		if (len < 3)
			return -EINVAL;
		s->deferred = rc == 0x71;
		s->key = b[2] & 0x0f;
		if (len >= 7 && (b[0] & 0x80)) {
			s->info_valid = true;
			s->information = get_be32(b + 3);
		}
		add = len >= 8 ? b[7] : 0;
		if (len >= 14 && add >= 6) {
			s->asc = b[12];
			s->ascq = b[13];
		}
		if (len >= 18 && add >= 10 && (b[15] & 0x80)) {
			s->sks_valid = true;
			memcpy(s->sks, b + 15, 3);
		}
		return 0;
	}
	case 0x72:
	case 0x73: {
		size_t end, off;

		/* Descriptor: key 1, ASC 2, ASCQ 3, additional length 7, descriptors from 8. */
		if (len < 4)
			return -EINVAL;
		s->descriptor = true;
		s->deferred = rc == 0x73;
		s->key = b[1] & 0x0f;
		s->asc = b[2];
		s->ascq = b[3];
		end = len >= 8 ? 8 + (size_t)b[7] : len;
		if (end > len)
			end = len;
		for (off = 8; off + 2 <= end;) {
			uint8_t type = b[off], dlen = b[off + 1];

			if (off + 2 + dlen > end)
				break;
			if (type == 0x00 && dlen >= 0x0a) {
				/* Information descriptor: VALID in byte 2, 8-byte field at 4. */
				s->info_valid = (b[off + 2] & 0x80) != 0;
				s->information = get_be64(b + off + 4);
			} else if (type == 0x02 && dlen >= 0x06 && (b[off + 4] & 0x80)) {
				s->sks_valid = true;
				memcpy(s->sks, b + off + 4, 3);
			}
			off += 2 + (size_t)dlen;
		}
		return 0;
	}
	default:
		return -EINVAL;
	}
}

const char *
iserd_sense_key_str(uint8_t key)
{
	static const char *const keys[16] = {
	    "NO SENSE",	      "RECOVERED ERROR", "NOT READY",	   "MEDIUM ERROR",
	    "HARDWARE ERROR", "ILLEGAL REQUEST", "UNIT ATTENTION", "DATA PROTECT",
	    "BLANK CHECK",    "VENDOR SPECIFIC", "COPY ABORTED",   "ABORTED COMMAND",
	    "RESERVED (0xC)", "VOLUME OVERFLOW", "MISCOMPARE",	   "COMPLETED",
	};

	return keys[key & 0x0f];
}

struct asc_entry {
	uint16_t code; /* asc << 8 | ascq */
	const char *text;
};

/* The codes a block target commonly returns (SPC-5 Annex F, abridged). */
static const struct asc_entry asc_table[] = {
    {0x0000, "NO ADDITIONAL SENSE INFORMATION"},
    {0x0401, "LOGICAL UNIT IS IN PROCESS OF BECOMING READY"},
    {0x0402, "LOGICAL UNIT NOT READY, INITIALIZING COMMAND REQUIRED"},
    {0x0403, "LOGICAL UNIT NOT READY, MANUAL INTERVENTION REQUIRED"},
    {0x0404, "LOGICAL UNIT NOT READY, FORMAT IN PROGRESS"},
    {0x0800, "LOGICAL UNIT COMMUNICATION FAILURE"},
    {0x0c00, "WRITE ERROR"},
    {0x0c02, "WRITE ERROR - AUTO REALLOCATION FAILED"},
    {0x1000, "ID CRC OR ECC ERROR"},
    {0x1100, "UNRECOVERED READ ERROR"},
    {0x1a00, "PARAMETER LIST LENGTH ERROR"},
    {0x1d00, "MISCOMPARE DURING VERIFY OPERATION"},
    {0x2000, "INVALID COMMAND OPERATION CODE"},
    {0x2100, "LOGICAL BLOCK ADDRESS OUT OF RANGE"},
    {0x2400, "INVALID FIELD IN CDB"},
    {0x2500, "LOGICAL UNIT NOT SUPPORTED"},
    {0x2600, "INVALID FIELD IN PARAMETER LIST"},
    {0x2601, "PARAMETER NOT SUPPORTED"},
    {0x2602, "PARAMETER VALUE INVALID"},
    {0x2700, "WRITE PROTECTED"},
    {0x2701, "HARDWARE WRITE PROTECTED"},
    {0x2702, "LOGICAL UNIT SOFTWARE WRITE PROTECTED"},
    {0x2800, "NOT READY TO READY CHANGE, MEDIUM MAY HAVE CHANGED"},
    {0x2900, "POWER ON, RESET, OR BUS DEVICE RESET OCCURRED"},
    {0x2901, "POWER ON OCCURRED"},
    {0x2902, "SCSI BUS RESET OCCURRED"},
    {0x2903, "BUS DEVICE RESET FUNCTION OCCURRED"},
    {0x2907, "I_T NEXUS LOSS OCCURRED"},
    {0x2a01, "MODE PARAMETERS CHANGED"},
    {0x2a03, "RESERVATIONS PREEMPTED"},
    {0x2a04, "RESERVATIONS RELEASED"},
    {0x2a05, "REGISTRATIONS PREEMPTED"},
    {0x2a09, "CAPACITY DATA HAS CHANGED"},
    {0x2c00, "COMMAND SEQUENCE ERROR"},
    {0x2f00, "COMMANDS CLEARED BY ANOTHER INITIATOR"},
    {0x3a00, "MEDIUM NOT PRESENT"},
    {0x3f0e, "REPORTED LUNS DATA HAS CHANGED"},
    {0x4400, "INTERNAL TARGET FAILURE"},
    {0x4700, "SCSI PARITY ERROR"},
    {0x4703, "INFORMATION UNIT iuCRC ERROR DETECTED"},
    {0x4b00, "DATA PHASE ERROR"},
    {0x4e00, "OVERLAPPED COMMANDS ATTEMPTED"},
    {0x5300, "MEDIA LOAD OR EJECT FAILED"},
    {0x5500, "SYSTEM RESOURCE FAILURE"},
    {0x5503, "INSUFFICIENT RESOURCES"},
    {0x5d00, "FAILURE PREDICTION THRESHOLD EXCEEDED"},
};

const char *
iserd_sense_asc_str(uint8_t asc, uint8_t ascq)
{
	uint16_t code = (uint16_t)(asc << 8 | ascq);
	size_t i;

	for (i = 0; i < sizeof(asc_table) / sizeof(asc_table[0]); i++)
		if (asc_table[i].code == code)
			return asc_table[i].text;
	return NULL;
}

int
iserd_sense_format(const struct iserd_sense *s, char *buf, size_t len)
{
	const char *a = iserd_sense_asc_str(s->asc, s->ascq);
	char info[40] = "";

	if (s->info_valid)
		snprintf(info, sizeof(info), ", information 0x%llx",
			 (unsigned long long)s->information);
	if (a != NULL)
		return snprintf(buf, len, "%s: %s (key 0x%x, ASC/ASCQ 0x%02x/0x%02x%s)",
				iserd_sense_key_str(s->key), a, s->key, s->asc, s->ascq, info);
	return snprintf(buf, len, "%s: ASC/ASCQ 0x%02x/0x%02x (key 0x%x%s)",
			iserd_sense_key_str(s->key), s->asc, s->ascq, s->key, info);
}

const char *
iserd_scsi_status_str(uint8_t status)
{
	switch (status) {
	case ISERD_STATUS_GOOD:
		return "GOOD";
	case ISERD_STATUS_CHECK_CONDITION:
		return "CHECK CONDITION";
	case ISERD_STATUS_CONDITION_MET:
		return "CONDITION MET";
	case ISERD_STATUS_BUSY:
		return "BUSY";
	case ISERD_STATUS_RESERVATION_CONFLICT:
		return "RESERVATION CONFLICT";
	case ISERD_STATUS_TASK_SET_FULL:
		return "TASK SET FULL";
	case ISERD_STATUS_ACA_ACTIVE:
		return "ACA ACTIVE";
	case ISERD_STATUS_TASK_ABORTED:
		return "TASK ABORTED";
	default:
		return "unknown status";
	}
}

int
iserd_task_result_str(const struct iserd_task *t, char *buf, size_t len)
{
	char sense[256];

	if (t->response != 0)
		return snprintf(buf, len, "target failure (iSCSI response 0x%02x)", t->response);
	if (t->status == ISERD_STATUS_CHECK_CONDITION && t->sense_valid) {
		iserd_sense_format(&t->sense_info, sense, sizeof(sense));
		return snprintf(buf, len, "CHECK CONDITION: %s", sense);
	}
	if (t->status == ISERD_STATUS_CHECK_CONDITION && t->sense_len == 0)
		return snprintf(buf, len, "CHECK CONDITION without sense data");
	return snprintf(buf, len, "%s (0x%02x)", iserd_scsi_status_str(t->status), t->status);
}
