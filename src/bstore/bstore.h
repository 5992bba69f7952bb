/*
 * Backing stores: where a logical unit's blocks live. RAM (one contiguous
 * region, registrable for RDMA), file and block device (io_uring).
 * All I/O is asynchronous: the callback runs once, from the reactor, never
 * inside the submitting call (so the SCSI layer's stack never recurses).
 */
#ifndef ISD_BSTORE_H
#define ISD_BSTORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

struct isd_reactor;
struct isd_bstore;

typedef void (*isd_bstore_cb)(void *arg, int status);   /* status 0 or -errno */

struct isd_bstore_ops {
	const char *name;
	int (*read)(struct isd_bstore *bs, const struct iovec *iov, int iovcnt, uint64_t offset,
		    isd_bstore_cb cb, void *arg);
	int (*write)(struct isd_bstore *bs, const struct iovec *iov, int iovcnt, uint64_t offset,
		     bool fua, isd_bstore_cb cb, void *arg);
	int (*flush)(struct isd_bstore *bs, isd_bstore_cb cb, void *arg);
	/* Deallocate (UNMAP); the range then reads as zeros. */
	int (*discard)(struct isd_bstore *bs, uint64_t offset, uint64_t len, isd_bstore_cb cb,
		       void *arg);
	void (*destroy)(struct isd_bstore *bs);
};

struct isd_bstore {
	const struct isd_bstore_ops *ops;
	struct isd_reactor *reactor;
	uint64_t size;                  /* bytes */
	uint32_t min_block;             /* alignment the store needs for direct I/O (1 = any) */
	bool read_only;
	bool can_discard;
	bool discard_zeroes;            /* a discarded range reads back as zeros (LBPRZ) */
	/* Non-NULL when the whole store is one memory region (RAM): the SCSI layer
	 * may point data-in straight at it (zero copy) and iSER may register it. */
	void *mem_base;
	/* Set by whoever registers mem_base for RDMA: the pages are pinned by the
	 * adapter, so discard must zero them in place, never drop them. */
	bool mem_pinned;
	char desc[128];                 /* "ram:1G", "file:/path" for logs */
};

/*
 * Opens a store from a spec: "ram:SIZE", "file:PATH[,size=SIZE]", "dev:PATH".
 * SIZE takes K/M/G/T suffixes (powers of two). A file that does not exist is
 * created when size= is given. Errors: -EINVAL (bad spec, message in err),
 * -ENOENT, -EACCES, -ENOMEM... `err` gets a one-line reason.
 */
int isd_bstore_open(struct isd_reactor *r, const char *spec, struct isd_bstore **out,
		    char *err, size_t err_len);
void isd_bstore_close(struct isd_bstore *bs);
/* "1G" -> 1073741824; -EINVAL for garbage or overflow. */
int isd_parse_size(const char *s, uint64_t *out);

static inline int isd_bstore_read(struct isd_bstore *bs, const struct iovec *iov, int iovcnt,
				  uint64_t off, isd_bstore_cb cb, void *arg)
{
	return bs->ops->read(bs, iov, iovcnt, off, cb, arg);
}
static inline int isd_bstore_write(struct isd_bstore *bs, const struct iovec *iov, int iovcnt,
				   uint64_t off, bool fua, isd_bstore_cb cb, void *arg)
{
	return bs->ops->write(bs, iov, iovcnt, off, fua, cb, arg);
}

#endif
