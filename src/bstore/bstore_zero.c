/*
 * zero: backing store: zero:SIZE reads as zeros, takes writes and drops them,
 * like /dev/zero with a size. For benchmarks of everything above the store
 * and as the smallest example of a kind (see docs/iserd.md, "Adding a
 * backing store"); registered by one line of ISD_BSTORE_KINDS.
 *
 * There is no memory behind it, so mem_base stays NULL: mem_base promises one
 * region holding the whole LU, which the SCSI layer points data-in at and
 * iSER registers, and which writes land in. Here the SCSI layer gives each
 * command its own buffer instead (the ordinary path of file: and dev:), reads
 * fill it with zeros and writes leave nothing behind.
 *
 * Any reactor may use it: completions go back to the submitter's
 * (isd_bstore_complete_later), and nothing else changes.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bstore/bstore.h"
#include "reactor/reactor.h"
#include "util/str.h"

struct zero_bs {
	struct isd_bstore bs;
};

extern const struct isd_bstore_kind isd_bstore_kind_zero;

static int
zero_range(struct isd_bstore *bs, const struct iovec *iov, int iovcnt, uint64_t off)
{
	uint64_t len = 0;

	if (iovcnt < 0)
		return -EINVAL;
	for (int i = 0; i < iovcnt; i++)
		len += iov[i].iov_len;
	if (off > bs->size || len > bs->size - off)
		return -EINVAL;
	return 0;
}

static int
zero_read(struct isd_bstore *bs, const struct iovec *iov, int iovcnt, uint64_t off,
	  isd_bstore_cb cb, void *arg)
{
	if (zero_range(bs, iov, iovcnt, off) < 0)
		return -EINVAL;
	for (int i = 0; i < iovcnt; i++)
		memset(iov[i].iov_base, 0, iov[i].iov_len);
	return isd_bstore_complete_later(bs, 0, cb, arg);
}

static int
zero_write(struct isd_bstore *bs, const struct iovec *iov, int iovcnt, uint64_t off, bool fua,
	   isd_bstore_cb cb, void *arg)
{
	(void)fua;      /* nothing is kept, so nothing can be lost */
	if (bs->read_only)
		return -EROFS;
	if (zero_range(bs, iov, iovcnt, off) < 0)
		return -EINVAL;
	return isd_bstore_complete_later(bs, 0, cb, arg);
}

static int
zero_flush(struct isd_bstore *bs, isd_bstore_cb cb, void *arg)
{
	return isd_bstore_complete_later(bs, 0, cb, arg);
}

static int
zero_discard(struct isd_bstore *bs, uint64_t off, uint64_t len, isd_bstore_cb cb, void *arg)
{
	if (bs->read_only)
		return -EROFS;
	if (off > bs->size || len > bs->size - off)
		return -EINVAL;
	return isd_bstore_complete_later(bs, 0, cb, arg);
}

static void
zero_destroy(struct isd_bstore *bs)
{
	struct zero_bs *zb = (struct zero_bs *)bs;

	free(zb);
}

static int
zero_resize(struct isd_bstore *bs, uint64_t size, char *why, size_t whylen)
{
	(void)why;
	(void)whylen;
	bs->size = size;
	return 0;
}

static const struct isd_bstore_ops zero_ops = {
	.name = "zero",
	.read = zero_read,
	.write = zero_write,
	.flush = zero_flush,
	.discard = zero_discard,
	.destroy = zero_destroy,
	.resize = zero_resize,
};

static int
zero_parse(const char *rest, struct isd_bstore_spec *out, char *why, size_t whylen)
{
	return isd_bstore_parse_size_spec(&isd_bstore_kind_zero, rest, out, why, whylen);
}

static int
zero_create(struct isd_reactor *r, const struct isd_bstore_spec *spec, struct isd_bstore **out,
	    char *err, size_t err_len)
{
	struct zero_bs *zb = calloc(1, sizeof(*zb));

	if (zb == NULL) {
		isd_seterr(err, err_len, "cannot allocate '%s'", spec->canon);
		return -ENOMEM;
	}
	zb->bs.ops = &zero_ops;
	zb->bs.reactor = r;
	zb->bs.size = spec->size;
	zb->bs.min_block = 1;
	zb->bs.read_only = spec->read_only;
	/* everything reads as zeros, a discarded range included */
	zb->bs.can_discard = true;
	zb->bs.discard_zeroes = true;
	snprintf(zb->bs.desc, sizeof(zb->bs.desc), "%.127s", spec->canon);
	*out = &zb->bs;
	return 0;
}

const struct isd_bstore_kind isd_bstore_kind_zero = {
	.scheme = "zero",
	.usage = "zero:SIZE",
	.help = "reads zeros, drops writes",
	.product = "ZERODISK",
	.thin = true,
	.parse = zero_parse,
	.create = zero_create,
};
