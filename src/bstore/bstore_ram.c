/*
 * RAM backing store: one anonymous mapping, so the whole LU is a single
 * region the SCSI layer can point data-in at and iSER can register once.
 * I/O is a memcpy done at submission; only the completion is deferred to the
 * submitter's reactor (isd_bstore_complete_later), to keep the rule that a
 * callback never runs inside the call. Any reactor may use it: the store has
 * no state that I/O changes, only the memory, whose ranges the SCSI layer
 * orders.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "bstore/bstore_int.h"
#include "reactor/reactor.h"
#include "util/str.h"

struct ram_bs {
	struct isd_bstore bs;
	size_t map_len;
	size_t page;
};

/* The range [off, off + len) must lie inside the store; callers check too. */
static bool
ram_range_ok(struct ram_bs *rb, uint64_t off, uint64_t len)
{
	return off <= rb->bs.size && len <= rb->bs.size - off;
}

static int
ram_read(struct isd_bstore *bs, const struct iovec *iov, int iovcnt, uint64_t off,
	 isd_bstore_cb cb, void *arg)
{
	struct ram_bs *rb = (struct ram_bs *)bs;
	const uint8_t *src = (const uint8_t *)bs->mem_base + off;
	uint64_t len = 0;

	for (int i = 0; i < iovcnt; i++)
		len += iov[i].iov_len;
	if (iovcnt < 0 || !ram_range_ok(rb, off, len))
		return -EINVAL;
	for (int i = 0; i < iovcnt; i++) {
		/* A zero-copy caller may hand us the store's own memory. */
		if (iov[i].iov_base != src)
			memcpy(iov[i].iov_base, src, iov[i].iov_len);
		src += iov[i].iov_len;
	}
	return isd_bstore_complete_later(bs, 0, cb, arg);
}

static int
ram_write(struct isd_bstore *bs, const struct iovec *iov, int iovcnt, uint64_t off, bool fua,
	  isd_bstore_cb cb, void *arg)
{
	struct ram_bs *rb = (struct ram_bs *)bs;
	uint8_t *dst = (uint8_t *)bs->mem_base + off;
	uint64_t len = 0;

	(void)fua;      /* RAM has no volatile cache beyond itself */
	if (bs->read_only)
		return -EROFS;
	for (int i = 0; i < iovcnt; i++)
		len += iov[i].iov_len;
	if (iovcnt < 0 || !ram_range_ok(rb, off, len))
		return -EINVAL;
	for (int i = 0; i < iovcnt; i++) {
		if (iov[i].iov_base != dst)
			memmove(dst, iov[i].iov_base, iov[i].iov_len);
		dst += iov[i].iov_len;
	}
	return isd_bstore_complete_later(bs, 0, cb, arg);
}

static int
ram_flush(struct isd_bstore *bs, isd_bstore_cb cb, void *arg)
{
	return isd_bstore_complete_later(bs, 0, cb, arg);
}

static int
ram_discard(struct isd_bstore *bs, uint64_t off, uint64_t len, isd_bstore_cb cb, void *arg)
{
	struct ram_bs *rb = (struct ram_bs *)bs;
	uint8_t *base = bs->mem_base;
	uint64_t first_page, end_page, end = off + len;

	if (bs->read_only)
		return -EROFS;
	if (!ram_range_ok(rb, off, len))
		return -EINVAL;
	/*
	 * Whole pages go back to the kernel (a private anonymous mapping reads
	 * as zeros afterwards); the partial pages at either edge are zeroed.
	 */
	first_page = (off + rb->page - 1) / rb->page * rb->page;
	end_page = end / rb->page * rb->page;
	if (first_page < end_page) {
		memset(base + off, 0, first_page - off);
		/*
		 * Dropping pages gives the CPU fresh zero pages while an RDMA
		 * adapter keeps reading the old pinned ones: zero in place then.
		 */
		if (rb->bs.mem_pinned ||
		    madvise(base + first_page, end_page - first_page, MADV_DONTNEED) < 0)
			memset(base + first_page, 0, end_page - first_page);
		memset(base + end_page, 0, end - end_page);
	} else {
		memset(base + off, 0, len);
	}
	return isd_bstore_complete_later(bs, 0, cb, arg);
}

static void
ram_destroy(struct isd_bstore *bs)
{
	struct ram_bs *rb = (struct ram_bs *)bs;

	if (bs->mem_base != NULL)
		munmap(bs->mem_base, rb->map_len);
	free(rb);
}

static const struct isd_bstore_ops ram_ops = {
	.name = "ram",
	.read = ram_read,
	.write = ram_write,
	.flush = ram_flush,
	.discard = ram_discard,
	.destroy = ram_destroy,
};

int
isd_bstore_ram_create(struct isd_reactor *r, uint64_t size, struct isd_bstore **out)
{
	struct ram_bs *rb;
	long page = sysconf(_SC_PAGESIZE);
	void *p;

	if (r == NULL || size == 0 || size > SIZE_MAX / 2)
		return -EINVAL;
	if (page <= 0)
		page = 4096;
	rb = calloc(1, sizeof(*rb));
	if (rb == NULL)
		return -ENOMEM;
	rb->page = (size_t)page;
	rb->map_len = (size_t)((size + rb->page - 1) / rb->page * rb->page);
	/* NORESERVE: a thin 1T RAM LU only costs what is written to it. */
	p = mmap(NULL, rb->map_len, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (p == MAP_FAILED) {
		free(rb);
		return -ENOMEM;
	}
	rb->bs.ops = &ram_ops;
	rb->bs.reactor = r;
	rb->bs.size = size;
	rb->bs.min_block = 1;
	rb->bs.can_discard = true;
	rb->bs.discard_zeroes = true;
	rb->bs.mem_base = p;
	snprintf(rb->bs.desc, sizeof(rb->bs.desc), "ram:%" PRIu64, size);
	*out = &rb->bs;
	return 0;
}

extern const struct isd_bstore_kind isd_bstore_kind_ram;

static int
ram_parse(const char *rest, struct isd_bstore_spec *out, char *why, size_t whylen)
{
	return isd_bstore_parse_size_spec(&isd_bstore_kind_ram, rest, out, why, whylen);
}

static int
ram_kind_create(struct isd_reactor *r, const struct isd_bstore_spec *spec,
		struct isd_bstore **out, char *err, size_t err_len)
{
	int rc = isd_bstore_ram_create(r, spec->size, out);

	/* read_only is the SCSI layer's to enforce: the memory stays writable, as before */
	if (rc < 0)
		isd_seterr(err, err_len, "cannot allocate '%s'", spec->canon);
	return rc;
}

const struct isd_bstore_kind isd_bstore_kind_ram = {
	.scheme = "ram",
	.usage = "ram:SIZE",
	.help = "memory, lost at exit",
	.product = "RAMDISK",
	.thin = true,
	.parse = ram_parse,
	.create = ram_kind_create,
};
