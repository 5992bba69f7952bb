/* Scatter/gather helpers shared by the layers. */
#ifndef ISD_UTIL_IOV_H
#define ISD_UTIL_IOV_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

/* Total bytes described by an iovec array. */
size_t isd_iov_len(const struct iovec *iov, int iovcnt);
/* Copies len bytes from src into the iovec's byte range starting at offset.
 * Returns the bytes copied (less than len if the iovec is shorter). */
size_t isd_iov_copy_in(const struct iovec *iov, int iovcnt, size_t offset, const void *src,
		       size_t len);
/* Copies len bytes out of the iovec starting at offset into dst. Returns bytes copied. */
size_t isd_iov_copy_out(const struct iovec *iov, int iovcnt, size_t offset, void *dst, size_t len);
/*
 * Builds in `out` (at most out_max entries) the iovec that describes the byte
 * range [offset, offset+len) of `iov`, without copying. Returns the number of
 * entries, or -ENOSPC if out_max is too small.
 */
int isd_iov_slice(const struct iovec *iov, int iovcnt, size_t offset, size_t len,
		  struct iovec *out, int out_max);
/*
 * The same, but never failing for lack of entries: it stops early and reports
 * in *covered the bytes described (short if out_max ran out or the iovec
 * ends). Returns the number of entries. For a transfer sent piece by piece.
 */
int isd_iov_slice_upto(const struct iovec *iov, int iovcnt, size_t offset, size_t len,
		       struct iovec *out, int out_max, uint32_t *covered);

#endif
