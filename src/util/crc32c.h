/* CRC32C (Castagnoli) as iSCSI digests use it: init 0xffffffff, final xor 0xffffffff,
 * computed by ISA-L. The digest goes on the wire least-significant byte first. */
#ifndef ISD_UTIL_CRC32C_H
#define ISD_UTIL_CRC32C_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

/* Running form: start with ISD_CRC32C_INIT, feed buffers, finish with isd_crc32c_final. */
#define ISD_CRC32C_INIT 0xffffffffu
uint32_t isd_crc32c_update(uint32_t crc, const void *buf, size_t len);
static inline uint32_t isd_crc32c_final(uint32_t crc)
{
	return crc ^ 0xffffffffu;
}
/* One-shot digest of a buffer. */
uint32_t isd_crc32c(const void *buf, size_t len);
/* One-shot digest over an iovec, then `pad` zero bytes (TCP data padding). */
uint32_t isd_crc32c_iov(const struct iovec *iov, int iovcnt, size_t pad);

#endif
