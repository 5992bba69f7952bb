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
 * Owned by the reactor it was opened on; not thread-safe.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>

#include "bstore/bstore.h"
#include "reactor/reactor.h"
#include "util/mem.h"
#include "util/str.h"

struct zero_req {
	struct isd_timer timer;
	struct zero_bs *owner;
	isd_bstore_cb cb;
	void *arg;
	TAILQ_ENTRY(zero_req) link;
};

struct zero_bs {
	struct isd_bstore bs;
	TAILQ_HEAD(, zero_req) inflight;
};

extern const struct isd_bstore_kind isd_bstore_kind_zero;

static void
zero_complete(void *arg)
{
	struct zero_req *req = arg;
	isd_bstore_cb cb = req->cb;
	void *cb_arg = req->arg;

	TAILQ_REMOVE(&req->owner->inflight, req, link);
	isd_mem_free(req);
	cb(cb_arg, 0);
}

/* The work is done at submission; the callback still waits for the reactor. */
static int
zero_defer(struct zero_bs *zb, isd_bstore_cb cb, void *arg)
{
	struct zero_req *req = isd_mem_zalloc(sizeof(*req));

	if (req == NULL)
		return -ENOMEM;
	isd_timer_init(&req->timer, zero_complete, req);
	req->owner = zb;
	req->cb = cb;
	req->arg = arg;
	TAILQ_INSERT_TAIL(&zb->inflight, req, link);
	isd_reactor_defer(zb->bs.reactor, &req->timer);
	return 0;
}

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
	return zero_defer((struct zero_bs *)bs, cb, arg);
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
	return zero_defer((struct zero_bs *)bs, cb, arg);
}

static int
zero_flush(struct isd_bstore *bs, isd_bstore_cb cb, void *arg)
{
	return zero_defer((struct zero_bs *)bs, cb, arg);
}

static int
zero_discard(struct isd_bstore *bs, uint64_t off, uint64_t len, isd_bstore_cb cb, void *arg)
{
	if (bs->read_only)
		return -EROFS;
	if (off > bs->size || len > bs->size - off)
		return -EINVAL;
	return zero_defer((struct zero_bs *)bs, cb, arg);
}

static void
zero_destroy(struct isd_bstore *bs)
{
	struct zero_bs *zb = (struct zero_bs *)bs;
	struct zero_req *req;

	/* Completions still queued are dropped: the owner is going away with them. */
	while ((req = TAILQ_FIRST(&zb->inflight)) != NULL) {
		TAILQ_REMOVE(&zb->inflight, req, link);
		isd_reactor_timer_stop(bs->reactor, &req->timer);
		isd_mem_free(req);
	}
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
	TAILQ_INIT(&zb->inflight);
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
