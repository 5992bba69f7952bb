#include "util/crc32c.h"

#include <isa-l/crc.h>

/*
 * ISA-L's crc32_iscsi() takes and returns the raw register, with neither the
 * initial nor the final inversion applied, so the running value here is the
 * register itself.
 */
uint32_t
isd_crc32c_update(uint32_t crc, const void *buf, size_t len)
{
	while (len > 0) {
		int chunk = len > (1u << 30) ? (1 << 30) : (int)len;

		crc = crc32_iscsi((unsigned char *)buf, chunk, crc);
		buf = (const unsigned char *)buf + chunk;
		len -= (size_t)chunk;
	}
	return crc;
}

uint32_t
isd_crc32c(const void *buf, size_t len)
{
	return isd_crc32c_final(isd_crc32c_update(ISD_CRC32C_INIT, buf, len));
}

uint32_t
isd_crc32c_iov(const struct iovec *iov, int iovcnt, size_t pad)
{
	static const unsigned char zeros[4];
	uint32_t crc = ISD_CRC32C_INIT;

	for (int i = 0; i < iovcnt; i++)
		crc = isd_crc32c_update(crc, iov[i].iov_base, iov[i].iov_len);
	if (pad > 0)
		crc = isd_crc32c_update(crc, zeros, pad > 4 ? 4 : pad);
	return isd_crc32c_final(crc);
}
