/*
 * Fuzzes the received-header path: the first 48 bytes are a BHS checked in
 * both directions, the bytes after it the AHS area (as much of
 * TotalAHSLength as arrived, and also the whole rest, to reach lengths that
 * are not a multiple of 4).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "iscsi/pdu.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static volatile uint32_t g_sink;

static void
parse_ahs(const uint8_t *src, size_t len)
{
	struct isd_ahs_info info;
	uint8_t *ahs = NULL;
	uint32_t i;

	/* Exact-size heap copy: any read past the area is an ASan report. */
	if (len > 0) {
		ahs = malloc(len);
		if (ahs == NULL)
			return;
		memcpy(ahs, src, len);
	}
	if (isd_ahs_parse(ahs, (uint32_t)len, &info) == 0) {
		if (info.ext_cdb != NULL) {
			if (info.ext_cdb < ahs || info.ext_cdb + info.ext_cdb_len > ahs + len)
				abort();
			for (i = 0; i < info.ext_cdb_len; i++)
				g_sink += info.ext_cdb[i];
		}
		if (info.has_bidi_read_len)
			g_sink += info.bidi_read_len;
	}
	free(ahs);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t bhs[ISD_BHS_LEN];
	size_t rest, ahs_len;
	uint32_t max_dsl;
	int rc;

	if (size < ISD_BHS_LEN)
		return 0;
	memcpy(bhs, data, ISD_BHS_LEN);
	rest = size - ISD_BHS_LEN;
	/* A limit derived from the input, so both sides of the DSL check are reached. */
	max_dsl = get_be24(data + 5) ^ ((uint32_t)data[47] << 8);

	rc = isd_bhs_check(bhs, true, max_dsl);
	if (rc < 0 || rc > 0x0c)
		abort();
	rc = isd_bhs_check(bhs, false, max_dsl);
	if (rc < 0 || rc > 0x0c)
		abort();
	g_sink += (uint32_t)strlen(isd_opcode_name(bhs[0]));
	g_sink += (uint32_t)strlen(isd_login_status_str(get_be16(bhs + 36)));
	g_sink += (uint32_t)strlen(isd_reject_reason_str(bhs[2]));

	ahs_len = isd_bhs_ahs_len(bhs);
	if (ahs_len > rest)
		ahs_len = rest;
	parse_ahs(data + ISD_BHS_LEN, ahs_len);
	if (rest != ahs_len && rest <= ISD_MAX_AHS_LEN + 8)
		parse_ahs(data + ISD_BHS_LEN, rest);
	return 0;
}
