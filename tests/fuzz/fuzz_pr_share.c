/*
 * Fuzzes the decoders of what other gateways write for shared persistent
 * reservations (pr_share.c): the state object's content and the change
 * message of a notify, both from any client of the Ceph cluster. The first
 * byte picks the decoder. A state that decodes must encode back to the same
 * bytes (the encoding is canonical); a message that decodes must too.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "scsi/pr_share.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t *buf, *out = NULL;
	size_t olen = 0;

	if (size < 1 || size > 128 * 1024)
		return 0;
	/* an exact-size copy: a read past the input is an ASan report */
	buf = malloc(size - 1 ? size - 1 : 1);
	if (buf == NULL)
		return 0;
	memcpy(buf, data + 1, size - 1);
	if (data[0] & 1) {
		struct isd_pr_fxlist *fx = malloc(sizeof(*fx));

		if (fx != NULL && isd_pr_fx_decode(buf, size - 1, fx) == 0) {
			if (isd_pr_fx_encode(fx, &out, &olen) == 0 &&
			    (olen != size - 1 || memcmp(out, buf, olen) != 0))
				abort();
		}
		free(fx);
	} else {
		struct isd_pr_state st;
		struct isd_scsi_lu *lu = calloc(1, sizeof(*lu));

		if (lu != NULL && isd_pr_state_decode(buf, size - 1, &st) == 0) {
			TAILQ_INIT(&lu->regs);
			TAILQ_INIT(&lu->itns);
			isd_pr_state_install(lu, &st);
			if (isd_pr_state_encode(lu, &out, &olen) == 0 && size - 1 > 0 &&
			    (olen != size - 1 || memcmp(out, buf, olen) != 0))
				abort();
			isd_scsi_pr_clear_all(lu);
		}
		free(lu);
	}
	free(out);
	free(buf);
	return 0;
}
