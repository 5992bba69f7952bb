/*
 * Fuzzes what an iSER receive completion hands us before the iSCSI core sees
 * anything: the iSER header (and Hello), and the RDMA CM private data of a
 * connect request. Inputs are copied to exact-size heap buffers so a read
 * past what arrived is an ASan report.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dm/iser/iser_proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static volatile uint64_t g_sink;

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct isd_iser_hdr h;
	struct isd_iser_hello hello;
	struct isd_iser_cm cm;
	uint8_t out[ISD_ISER_HDR_LEN];
	uint8_t *buf;

	if (size > 4096)
		return 0;
	buf = malloc(size ? size : 1);
	if (buf == NULL)
		return 0;
	memcpy(buf, data, size);
	if (isd_iser_hdr_decode(buf, size, &h) == 0) {
		/* re-encoding a decoded control header must give the same valid fields */
		if (h.opcode == ISD_ISER_OP_CTRL) {
			struct isd_iser_hdr back;

			isd_iser_hdr_encode(&h, out);
			if (isd_iser_hdr_decode(out, sizeof(out), &back) != 0 ||
			    back.read_stag != h.read_stag || back.write_va != h.write_va)
				abort();
		}
		g_sink += h.read_va ^ h.write_va;
	}
	if (isd_iser_hello_decode(buf, size, &hello) == 0)
		g_sink += hello.ird_or_ord;
	isd_iser_cm_decode(buf, size, &cm);
	g_sink += cm.zbva_not_supported;
	free(buf);
	return 0;
}
