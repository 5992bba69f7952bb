/*
 * CDB builders (SBC-4/SPC-5) that fill a struct iserd_task, and parsers for
 * the data some commands return. No iSCSI knowledge.
 */
#include <errno.h>
#include <string.h>

#include "initiator/init_int.h"
#include "util/endian.h"

void
iserd_task_init(struct iserd_task *t)
{
	memset(t, 0, sizeof(*t));
}

static void
set_buf(struct iserd_task *t, enum iserd_dir dir, const void *buf, uint32_t len)
{
	t->dir = len > 0 ? dir : ISERD_DIR_NONE;
	t->xfer_len = len;
	t->iov_one.iov_base = (void *)buf;
	t->iov_one.iov_len = len;
	t->iov = len > 0 ? &t->iov_one : NULL;
	t->iovcnt = len > 0 ? 1 : 0;
}

static void
prep(struct iserd_task *t, uint64_t lun, uint8_t cdb_len)
{
	void *user = t->user;

	iserd_task_init(t);
	t->user = user;
	t->lun = lun;
	t->cdb_len = cdb_len;
}

int
iserd_task_raw(struct iserd_task *t, uint64_t lun, const uint8_t *cdb, size_t cdb_len,
	       enum iserd_dir dir, void *buf, uint32_t len)
{
	if (cdb == NULL || cdb_len < 6 || cdb_len > 16 || dir > ISERD_DIR_WRITE ||
	    (len > 0 && (buf == NULL || dir == ISERD_DIR_NONE)))
		return -EINVAL;
	prep(t, lun, (uint8_t)cdb_len);
	memcpy(t->cdb, cdb, cdb_len);
	set_buf(t, dir, buf, len);
	return 0;
}

void
iserd_task_test_unit_ready(struct iserd_task *t, uint64_t lun)
{
	prep(t, lun, 6);
}

void
iserd_task_inquiry(struct iserd_task *t, uint64_t lun, bool evpd, uint8_t page, void *buf,
		   uint16_t len)
{
	prep(t, lun, 6);
	t->cdb[0] = 0x12;
	t->cdb[1] = evpd ? 1 : 0;
	t->cdb[2] = evpd ? page : 0;
	put_be16(t->cdb + 3, len);
	set_buf(t, ISERD_DIR_READ, buf, len);
}

void
iserd_task_read_capacity16(struct iserd_task *t, uint64_t lun, void *buf, uint32_t len)
{
	prep(t, lun, 16);
	t->cdb[0] = 0x9e;
	t->cdb[1] = 0x10;
	put_be32(t->cdb + 10, len);
	set_buf(t, ISERD_DIR_READ, buf, len);
}

void
iserd_task_report_luns(struct iserd_task *t, uint64_t lun, void *buf, uint32_t len)
{
	prep(t, lun, 12);
	t->cdb[0] = 0xa0;
	put_be32(t->cdb + 6, len);
	set_buf(t, ISERD_DIR_READ, buf, len);
}

static int
rw_len(uint32_t nblocks, uint32_t block_size, uint32_t *len)
{
	uint64_t l = (uint64_t)nblocks * block_size;

	if (block_size == 0 || l > UINT32_MAX)
		return -EINVAL;
	*len = (uint32_t)l;
	return 0;
}

int
iserd_task_read10(struct iserd_task *t, uint64_t lun, uint32_t lba, uint16_t nblocks,
		  uint32_t block_size, void *buf)
{
	uint32_t len;

	if (rw_len(nblocks, block_size, &len) < 0 || (len > 0 && buf == NULL))
		return -EINVAL;
	prep(t, lun, 10);
	t->cdb[0] = 0x28;
	put_be32(t->cdb + 2, lba);
	put_be16(t->cdb + 7, nblocks);
	set_buf(t, ISERD_DIR_READ, buf, len);
	return 0;
}

int
iserd_task_read16(struct iserd_task *t, uint64_t lun, uint64_t lba, uint32_t nblocks,
		  uint32_t block_size, void *buf)
{
	uint32_t len;

	if (rw_len(nblocks, block_size, &len) < 0 || (len > 0 && buf == NULL))
		return -EINVAL;
	prep(t, lun, 16);
	t->cdb[0] = 0x88;
	put_be64(t->cdb + 2, lba);
	put_be32(t->cdb + 10, nblocks);
	set_buf(t, ISERD_DIR_READ, buf, len);
	return 0;
}

int
iserd_task_write10(struct iserd_task *t, uint64_t lun, uint32_t lba, uint16_t nblocks,
		   uint32_t block_size, const void *buf, bool fua)
{
	uint32_t len;

	if (rw_len(nblocks, block_size, &len) < 0 || (len > 0 && buf == NULL))
		return -EINVAL;
	prep(t, lun, 10);
	t->cdb[0] = 0x2a;
	t->cdb[1] = fua ? 0x08 : 0;
	put_be32(t->cdb + 2, lba);
	put_be16(t->cdb + 7, nblocks);
	set_buf(t, ISERD_DIR_WRITE, buf, len);
	return 0;
}

int
iserd_task_write16(struct iserd_task *t, uint64_t lun, uint64_t lba, uint32_t nblocks,
		   uint32_t block_size, const void *buf, bool fua)
{
	uint32_t len;

	if (rw_len(nblocks, block_size, &len) < 0 || (len > 0 && buf == NULL))
		return -EINVAL;
	prep(t, lun, 16);
	t->cdb[0] = 0x8a;
	t->cdb[1] = fua ? 0x08 : 0;
	put_be64(t->cdb + 2, lba);
	put_be32(t->cdb + 10, nblocks);
	set_buf(t, ISERD_DIR_WRITE, buf, len);
	return 0;
}

void
iserd_task_sync_cache16(struct iserd_task *t, uint64_t lun, uint64_t lba, uint32_t nblocks)
{
	prep(t, lun, 16);
	t->cdb[0] = 0x91;
	put_be64(t->cdb + 2, lba);
	put_be32(t->cdb + 10, nblocks);
}

int
iserd_task_unmap(struct iserd_task *t, uint64_t lun, const struct iserd_unmap_range *r, uint32_t n,
		 void *buf, uint32_t buf_len)
{
	uint8_t *p = buf;
	uint32_t need, i;

	if (r == NULL || buf == NULL || n == 0 || n > 4000)
		return -EINVAL;
	need = 8 + 16 * n;
	if (buf_len < need)
		return -EINVAL;
	memset(p, 0, need);
	put_be16(p, (uint16_t)(need - 2));   /* UNMAP DATA LENGTH */
	put_be16(p + 2, (uint16_t)(16 * n)); /* BLOCK DESCRIPTOR DATA LENGTH */
	for (i = 0; i < n; i++) {
		put_be64(p + 8 + 16 * i, r[i].lba);
		put_be32(p + 8 + 16 * i + 8, r[i].nblocks);
	}
	prep(t, lun, 10);
	t->cdb[0] = 0x42;
	put_be16(t->cdb + 7, (uint16_t)need);
	set_buf(t, ISERD_DIR_WRITE, buf, need);
	return 0;
}

int
iserd_task_write_same16(struct iserd_task *t, uint64_t lun, uint64_t lba, uint32_t nblocks,
			uint32_t block_size, const void *buf, bool unmap)
{
	if (buf == NULL || block_size == 0)
		return -EINVAL;
	prep(t, lun, 16);
	t->cdb[0] = 0x93;
	t->cdb[1] = unmap ? 0x08 : 0;
	put_be64(t->cdb + 2, lba);
	put_be32(t->cdb + 10, nblocks);
	set_buf(t, ISERD_DIR_WRITE, buf, block_size);
	return 0;
}

static void
copy_trim(char *dst, const uint8_t *src, size_t n)
{
	size_t i;

	memcpy(dst, src, n);
	dst[n] = '\0';
	for (i = n; i > 0 && (dst[i - 1] == ' ' || dst[i - 1] == '\0'); i--)
		dst[i - 1] = '\0';
	for (i = 0; dst[i] != '\0'; i++)
		if ((unsigned char)dst[i] < 0x20 || (unsigned char)dst[i] > 0x7e)
			dst[i] = '?';
}

int
iserd_parse_inquiry(const void *buf, size_t len, struct iserd_inquiry *out)
{
	const uint8_t *b = buf;

	if (b == NULL || out == NULL || len < 36)
		return -EINVAL;
	memset(out, 0, sizeof(*out));
	out->peripheral_qualifier = b[0] >> 5;
	out->device_type = b[0] & 0x1f;
	out->removable = (b[1] & 0x80) != 0;
	out->version = b[2];
	copy_trim(out->vendor, b + 8, 8);
	copy_trim(out->product, b + 16, 16);
	copy_trim(out->revision, b + 32, 4);
	return 0;
}

int
iserd_parse_readcap16(const void *buf, size_t len, struct iserd_readcap16 *out)
{
	const uint8_t *b = buf;

	if (b == NULL || out == NULL || len < 32)
		return -EINVAL;
	memset(out, 0, sizeof(*out));
	out->last_lba = get_be64(b);
	out->block_size = get_be32(b + 8);
	out->num_blocks = out->last_lba + 1;
	out->lbppbe = b[13] & 0x0f;
	out->lbpme = (b[14] & 0x80) != 0;
	out->lbprz = (b[14] & 0x40) != 0;
	return 0;
}

int
iserd_parse_report_luns(const void *buf, size_t len, uint64_t *luns, int max)
{
	const uint8_t *b = buf;
	uint32_t list_len, n, i;

	if (b == NULL || len < 8)
		return -EINVAL;
	list_len = get_be32(b);
	n = list_len / 8;
	for (i = 0; i < n && (int)i < max && 8 + 8 * (size_t)i + 8 <= len; i++) {
		const uint8_t *e = b + 8 + 8 * i;
		uint64_t lun;

		/* Peripheral (00b) and flat (01b) addressing of SAM-5 §4.7. */
		switch (e[0] >> 6) {
		case 0:
			lun = e[1];
			break;
		case 1:
			lun = ((uint64_t)(e[0] & 0x3f) << 8) | e[1];
			break;
		default:
			lun = get_be64(e);
			break;
		}
		luns[i] = lun;
	}
	return (int)n;
}
