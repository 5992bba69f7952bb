#include "util/iov.h"

#include <errno.h>
#include <stdbool.h>
#include <string.h>

size_t
isd_iov_len(const struct iovec *iov, int iovcnt)
{
	size_t n = 0;

	for (int i = 0; i < iovcnt; i++)
		n += iov[i].iov_len;
	return n;
}

/* Finds the entry holding byte `offset`; returns its index and the offset inside it. */
static int
iov_seek(const struct iovec *iov, int iovcnt, size_t offset, size_t *in_entry)
{
	int i;

	for (i = 0; i < iovcnt && offset >= iov[i].iov_len; i++)
		offset -= iov[i].iov_len;
	*in_entry = offset;
	return i;
}

size_t
isd_iov_copy_in(const struct iovec *iov, int iovcnt, size_t offset, const void *src, size_t len)
{
	size_t off, done = 0;
	int i = iov_seek(iov, iovcnt, offset, &off);

	for (; i < iovcnt && done < len; i++, off = 0) {
		size_t n = iov[i].iov_len - off;

		if (n > len - done)
			n = len - done;
		memcpy((char *)iov[i].iov_base + off, (const char *)src + done, n);
		done += n;
	}
	return done;
}

size_t
isd_iov_copy_out(const struct iovec *iov, int iovcnt, size_t offset, void *dst, size_t len)
{
	size_t off, done = 0;
	int i = iov_seek(iov, iovcnt, offset, &off);

	for (; i < iovcnt && done < len; i++, off = 0) {
		size_t n = iov[i].iov_len - off;

		if (n > len - done)
			n = len - done;
		memcpy((char *)dst + done, (const char *)iov[i].iov_base + off, n);
		done += n;
	}
	return done;
}

/* Describes up to out_max entries of [offset, offset+len); *more is set when
 * bytes were left over for lack of entries. */
static int
slice(const struct iovec *iov, int iovcnt, size_t offset, size_t len, struct iovec *out,
      int out_max, size_t *covered, bool *more)
{
	size_t off, done = 0;
	int n = 0;
	int i = iov_seek(iov, iovcnt, offset, &off);

	*more = false;
	for (; i < iovcnt && done < len; i++, off = 0) {
		size_t chunk = iov[i].iov_len - off;

		if (chunk == 0)
			continue;
		if (n == out_max) {
			*more = true;
			break;
		}
		if (chunk > len - done)
			chunk = len - done;
		out[n].iov_base = (char *)iov[i].iov_base + off;
		out[n].iov_len = chunk;
		n++;
		done += chunk;
	}
	*covered = done;
	return n;
}

int
isd_iov_slice(const struct iovec *iov, int iovcnt, size_t offset, size_t len, struct iovec *out,
	      int out_max)
{
	size_t covered;
	bool more;
	int n = slice(iov, iovcnt, offset, len, out, out_max, &covered, &more);

	return more ? -ENOSPC : n;
}

int
isd_iov_slice_upto(const struct iovec *iov, int iovcnt, size_t offset, size_t len,
		   struct iovec *out, int out_max, uint32_t *covered)
{
	size_t done;
	bool more;
	int n = slice(iov, iovcnt, offset, len, out, out_max, &done, &more);

	*covered = (uint32_t)done;
	return n;
}
