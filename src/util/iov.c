#include "util/iov.h"

#include <errno.h>
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

int
isd_iov_slice(const struct iovec *iov, int iovcnt, size_t offset, size_t len, struct iovec *out,
	      int out_max)
{
	size_t off, done = 0;
	int n = 0;
	int i = iov_seek(iov, iovcnt, offset, &off);

	for (; i < iovcnt && done < len; i++, off = 0) {
		size_t chunk = iov[i].iov_len - off;

		if (chunk == 0)
			continue;
		if (n == out_max)
			return -ENOSPC;
		if (chunk > len - done)
			chunk = len - done;
		out[n].iov_base = (char *)iov[i].iov_base + off;
		out[n].iov_len = chunk;
		n++;
		done += chunk;
	}
	return n;
}
