/*
 * EXTENDED COPY (LID1), RECEIVE COPY RESULTS and the Third-party Copy VPD
 * page: the parameter list checks (hostile lengths, counts, types), copies
 * within a LU, between LUs and between targets of one process with the data
 * checked, the descriptor list VMware ESXi sends, aborts and failing stores.
 */
#include <fcntl.h>
#include <unistd.h>

#include "scsi_harness.h"

#define XC_HDR 16
#define XC_TGT 32
#define XC_SEG 28

/* ---- building parameter lists ---- */

static void
xc_hdr(uint8_t *p, uint8_t list_id, uint8_t usage, uint16_t tlen, uint32_t slen)
{
	memset(p, 0, XC_HDR);
	p[0] = list_id;
	p[1] = (uint8_t)(usage << 3);
	put_be16(p + 2, tlen);
	put_be32(p + 8, slen);
}

/* An identification CSCD descriptor naming a 16-byte NAA designator. */
static void
xc_e4(uint8_t *p, const uint8_t *naa, uint32_t block_size)
{
	memset(p, 0, XC_TGT);
	p[0] = 0xe4;
	p[4] = 0x01;            /* code set: binary */
	p[5] = 0x03;            /* association: LU, type: NAA */
	p[7] = 16;
	memcpy(p + 8, naa, 16);
	put_be24(p + 29, block_size);
}

static void
xc_b2b(uint8_t *p, uint16_t src, uint16_t dst, uint16_t nb, uint64_t slba, uint64_t dlba)
{
	memset(p, 0, XC_SEG);
	p[0] = 0x02;
	put_be16(p + 2, XC_SEG - 4);
	put_be16(p + 4, src);
	put_be16(p + 6, dst);
	put_be16(p + 10, nb);
	put_be64(p + 12, slba);
	put_be64(p + 20, dlba);
}

static struct h_res *
xcopy(struct h *h, uint32_t lun, const uint8_t *list, uint32_t len)
{
	uint8_t cdb[16] = { 0x83 };

	put_be32(cdb + 10, len);
	return h_run(h, 0, lun, cdb, 16, list, len);
}

static struct h_res *
rcr(struct h *h, uint32_t lun, uint8_t sa, uint8_t list_id)
{
	uint8_t cdb[16] = { 0x84, sa, list_id };

	put_be32(cdb + 10, 1024);
	return h_run(h, 0, lun, cdb, 16, NULL, 0);
}

/* The NAA designator VPD 0x83 reports for lun of dev (as an initiator reads it). */
static void
naa_of(struct h *h, struct isd_scsi_dev *dev, uint32_t lun, uint8_t naa[16])
{
	uint8_t cdb[6] = { 0x12, 0x01, 0x83, 0x01, 0x00 };
	struct isd_scsi_dev *save = h->dev;
	struct h_res *r;

	h->dev = dev;
	r = h_run(h, 0, lun, cdb, 6, NULL, 0);
	h->dev = save;
	assert_good(r);
	/* the first designator: binary, LU, NAA, 16 bytes, NAA 6 */
	assert_int_equal(r->data[4], 0x01);
	assert_int_equal(r->data[5], 0x03);
	assert_int_equal(r->data[7], 16);
	assert_int_equal(r->data[8] >> 4, 6);
	memcpy(naa, r->data + 8, 16);
}

static void *
add_ram(struct h *h, struct isd_scsi_dev *dev, uint32_t lun, const char *spec, uint64_t naa_id)
{
	struct isd_scsi_lu_cfg cfg;
	struct isd_bstore *bs;
	char err[128];

	memset(&cfg, 0, sizeof(cfg));
	assert_int_equal(isd_bstore_open(h->r, spec, &bs, err, sizeof(err)), 0);
	cfg.bstore = bs;
	cfg.block_size = H_BS;
	cfg.write_cache = true;
	snprintf(cfg.serial, sizeof(cfg.serial), "XC%u", lun);
	cfg.naa_id = naa_id;
	assert_int_equal(isd_scsi_dev_add_lu(dev, lun, &cfg), 0);
	return bs->mem_base;
}

static void
fill(void *mem, uint64_t lba, uint32_t nb, uint8_t seed)
{
	uint8_t *p = (uint8_t *)mem + lba * H_BS;

	for (size_t i = 0; i < (size_t)nb * H_BS; i++)
		p[i] = (uint8_t)(seed + i * 7 + i / H_BS);
}

static uint64_t
lu_xcopy_bytes(struct isd_scsi_dev *dev, uint32_t lun)
{
	struct isd_scsi_lu_info li;

	assert_int_equal(isd_scsi_dev_lu_info(dev, lun, &li), 0);
	return li.io.xcopy_bytes;
}

/* One LU, one E4 and one segment: the shape libiscsi's tests use. */
static uint32_t
one_seg_list(struct h *h, uint8_t *p, uint32_t lun, uint16_t nb, uint64_t slba, uint64_t dlba)
{
	uint8_t naa[16];

	naa_of(h, h->dev, lun, naa);
	xc_hdr(p, 1, 0, XC_TGT, XC_SEG);
	xc_e4(p + XC_HDR, naa, H_BS);
	xc_b2b(p + XC_HDR + XC_TGT, 0, 0, nb, slba, dlba);
	return XC_HDR + XC_TGT + XC_SEG;
}

static int
setup(void **state)
{
	struct h *h = calloc(1, sizeof(*h));

	h_init(h);
	h_add_ram_lu(h, 0, false, false);
	h_add_ram_lu(h, 1, false, false);
	h_add_ram_lu(h, 2, false, true);        /* read-only */
	h_clear_ua(h, 0);
	h_clear_ua(h, 1);
	h_clear_ua(h, 2);
	*state = h;
	return 0;
}

static int
teardown(void **state)
{
	struct h *h = *state;

	h_fini(h);
	free(h);
	return 0;
}

/* ---- copies ---- */

static void
test_xcopy_within_lu(void **state)
{
	struct h *h = *state;
	uint8_t list[128];
	uint32_t n;

	fill(h->mem[0], 0, 10, 3);
	memset((uint8_t *)h->mem[0] + 100 * H_BS, 0, 10 * H_BS);
	n = one_seg_list(h, list, 0, 10, 0, 100);
	assert_good(xcopy(h, 0, list, n));
	assert_memory_equal(h->mem[0], (uint8_t *)h->mem[0] + 100 * H_BS, 10 * H_BS);
	assert_int_equal(lu_xcopy_bytes(h->dev, 0), 10 * H_BS);
}

static void
test_xcopy_between_luns(void **state)
{
	struct h *h = *state;
	uint8_t list[256], a[16], b[16];
	struct isd_scsi_lu_info before, after;

	fill(h->mem[0], 0, H_BLOCKS, 9);
	memset(h->mem[1], 0, (size_t)H_BLOCKS * H_BS);
	naa_of(h, h->dev, 0, a);
	naa_of(h, h->dev, 1, b);
	assert_memory_not_equal(a, b, 16);
	assert_int_equal(isd_scsi_dev_lu_info(h->dev, 1, &before), 0);
	/* the whole LU, in three segments of which one is empty */
	xc_hdr(list, 7, 0, 2 * XC_TGT, 3 * XC_SEG);
	xc_e4(list + XC_HDR, a, H_BS);
	xc_e4(list + XC_HDR + XC_TGT, b, 0);    /* 0: the LU's own block size */
	xc_b2b(list + XC_HDR + 2 * XC_TGT, 0, 1, 1500, 0, 0);
	xc_b2b(list + XC_HDR + 2 * XC_TGT + XC_SEG, 0, 1, 0, 5, 5);
	xc_b2b(list + XC_HDR + 2 * XC_TGT + 2 * XC_SEG, 0, 1, H_BLOCKS - 1500, 1500, 1500);
	assert_good(xcopy(h, 0, list, XC_HDR + 2 * XC_TGT + 3 * XC_SEG));
	assert_memory_equal(h->mem[0], h->mem[1], (size_t)H_BLOCKS * H_BS);
	/* counted on the LU the command went to; no data crossed the wire */
	assert_int_equal(lu_xcopy_bytes(h->dev, 0), (uint64_t)H_BLOCKS * H_BS);
	assert_int_equal(isd_scsi_dev_lu_info(h->dev, 1, &after), 0);
	assert_int_equal(after.io.bytes[ISD_IO_WRITE], before.io.bytes[ISD_IO_WRITE]);
	{
		struct isd_io_stats all;

		isd_scsi_dev_io_stats(h->dev, &all);
		assert_int_equal(all.xcopy_bytes, (uint64_t)H_BLOCKS * H_BS);
	}
}

/*
 * What ESXi's full copy (VAAI XCOPY) sends, as public descriptions of it put
 * it: two identification descriptors (E4h) naming the source and destination
 * LUs by their NAA 6 designators from VPD 0x83, disk block length 512, then
 * block to block segments (02h) of at most 4 MiB each, with the list id
 * ignored (LIST ID USAGE 11b, list id 0).
 */
static void
test_xcopy_vmware_sequence(void **state)
{
	struct h *h = *state;
	uint8_t list[256], a[16], b[16];
	const uint16_t seg_blocks = (4u << 20) / H_BS;
	void *src = add_ram(h, h->dev, 10, "ram:16M", 0x600a0b8000123ull);
	void *dst = add_ram(h, h->dev, 11, "ram:16M", 0x600a0b8000456ull);
	uint32_t off;

	h_clear_ua(h, 10);
	h_clear_ua(h, 11);
	fill(src, 0, 32768, 42);
	memset(dst, 0xee, 16u << 20);
	naa_of(h, h->dev, 10, a);
	naa_of(h, h->dev, 11, b);
	/* 8 MiB from LBA 2048 of the source to LBA 8192 of the destination */
	xc_hdr(list, 0, 3, 2 * XC_TGT, 2 * XC_SEG);
	xc_e4(list + XC_HDR, a, 512);
	xc_e4(list + XC_HDR + XC_TGT, b, 512);
	off = XC_HDR + 2 * XC_TGT;
	xc_b2b(list + off, 0, 1, seg_blocks, 2048, 8192);
	xc_b2b(list + off + XC_SEG, 0, 1, seg_blocks, 2048 + seg_blocks, 8192 + seg_blocks);
	/* sent to the destination LU here; any LU of the process can be the copy manager */
	assert_good(xcopy(h, 11, list, off + 2 * XC_SEG));
	assert_memory_equal((uint8_t *)src + 2048 * H_BS, (uint8_t *)dst + 8192 * H_BS, 8u << 20);
	/* around it, nothing was touched */
	assert_int_equal(((uint8_t *)dst)[8192 * H_BS - 1], 0xee);
	assert_int_equal(((uint8_t *)dst)[(8192 + 2 * seg_blocks) * H_BS], 0xee);
	assert_int_equal(lu_xcopy_bytes(h->dev, 11), 8u << 20);
	/* LIST ID USAGE 11b: nothing held */
	assert_sense(rcr(h, 11, 0x00, 0), ISD_SK_ILLEGAL_REQUEST, 0x24, 0x00);
}

/* A copy between LUs of two targets of the process; a removed LU is not found. */
static void
test_xcopy_between_targets(void **state)
{
	struct h *h = *state;
	struct isd_scsi_dev *dev2;
	uint8_t list[128], a[16], b[16];
	void *mem2;

	assert_int_equal(isd_scsi_dev_create("iqn.2024-01.test:other", &dev2), 0);
	mem2 = add_ram(h, dev2, 0, "ram:1M", 0x0fedcba98765432ull);
	fill(h->mem[0], 0, 64, 77);
	memset(mem2, 0, 1u << 20);
	naa_of(h, h->dev, 0, a);
	naa_of(h, dev2, 0, b);
	xc_hdr(list, 2, 0, 2 * XC_TGT, XC_SEG);
	xc_e4(list + XC_HDR, a, H_BS);
	xc_e4(list + XC_HDR + XC_TGT, b, H_BS);
	xc_b2b(list + XC_HDR + 2 * XC_TGT, 0, 1, 64, 0, 1000);
	assert_good(xcopy(h, 0, list, XC_HDR + 2 * XC_TGT + XC_SEG));
	assert_memory_equal(h->mem[0], (uint8_t *)mem2 + 1000 * H_BS, 64 * H_BS);

	/* the other target's LU goes: the same list now names nothing reachable */
	assert_int_equal(isd_scsi_dev_remove_lu(dev2, 0, NULL, NULL), 0);
	assert_sense(xcopy(h, 0, list, XC_HDR + 2 * XC_TGT + XC_SEG), ISD_SK_COPY_ABORTED, 0x0d,
		     0x02);
	isd_scsi_dev_destroy(dev2);
}

/* ---- the parameter list ---- */

static void
test_xcopy_zero_length_is_a_no_op(void **state)
{
	struct h *h = *state;

	assert_good(xcopy(h, 0, NULL, 0));
}

static void
test_xcopy_lengths(void **state)
{
	struct h *h = *state;
	uint8_t list[XC_HDR + 10 * XC_TGT + 70 * XC_SEG] = { 0 };
	uint32_t n = one_seg_list(h, list, 0, 8, 0, 64);
	uint8_t cdb[16] = { 0x83 };

	/* a list cut short in the target, then the segment descriptor */
	assert_sense(xcopy(h, 0, list, XC_HDR + XC_TGT - 1), ISD_SK_ILLEGAL_REQUEST, 0x1a, 0);
	assert_sense(xcopy(h, 0, list, n - 1), ISD_SK_ILLEGAL_REQUEST, 0x1a, 0);
	assert_sense(xcopy(h, 0, list, 15), ISD_SK_ILLEGAL_REQUEST, 0x1a, 0);
	/* a PARAMETER LIST LENGTH no list of ours needs: refused before any data */
	put_be32(cdb + 10, 0xffffffffu);
	assert_sense(h_run(h, 0, 0, cdb, 16, NULL, 0), ISD_SK_ILLEGAL_REQUEST, 0x1a, 0);
	assert_int_equal(g_res.setup_rc, ISD_SCSI_SETUP_DONE);
	/* hostile descriptor list lengths in the header */
	put_be32(list + 8, 0xffffffffu);
	assert_sense(xcopy(h, 0, list, n), ISD_SK_ILLEGAL_REQUEST, 0x1a, 0);
	put_be32(list + 8, XC_SEG);
	put_be16(list + 2, 0xffff);
	assert_sense(xcopy(h, 0, list, n), ISD_SK_ILLEGAL_REQUEST, 0x1a, 0);
	/* a target list that is not a whole number of descriptors */
	put_be16(list + 2, XC_TGT + 4);
	assert_sense(xcopy(h, 0, list, n + 4), ISD_SK_ILLEGAL_REQUEST, 0x1a, 0);
	put_be16(list + 2, XC_TGT);
	/* inline data: we take none */
	put_be32(list + 12, 4);
	assert_sense(xcopy(h, 0, list, n + 4), ISD_SK_ILLEGAL_REQUEST, 0x26, 0);
	assert_int_equal(g_res.sense[15], 0x80);        /* SKSV, in the parameter list */
	assert_int_equal(get_be16(g_res.sense + 16), 12);
}

static void
test_xcopy_header_fields(void **state)
{
	struct h *h = *state;
	uint8_t list[128];
	uint32_t n = one_seg_list(h, list, 0, 8, 0, 64);
	uint8_t cdb[16] = { 0x83 };

	list[1] = 0x08;                 /* LIST ID USAGE 01b: reserved */
	assert_sense(xcopy(h, 0, list, n), ISD_SK_ILLEGAL_REQUEST, 0x26, 0);
	assert_int_equal(get_be16(g_res.sense + 16), 1);
	list[1] = 0x18;                 /* 11b with a list id */
	assert_sense(xcopy(h, 0, list, n), ISD_SK_ILLEGAL_REQUEST, 0x26, 0);
	assert_int_equal(get_be16(g_res.sense + 16), 0);
	list[1] = 0x80;                 /* reserved bits */
	assert_sense(xcopy(h, 0, list, n), ISD_SK_ILLEGAL_REQUEST, 0x26, 0);
	list[1] = 0;
	list[5] = 1;                    /* reserved bytes */
	assert_sense(xcopy(h, 0, list, n), ISD_SK_ILLEGAL_REQUEST, 0x26, 0);
	assert_int_equal(get_be16(g_res.sense + 16), 5);
	list[5] = 0;
	/* reserved CDB bytes, and LID4 (service action 01h) which we do not do */
	cdb[5] = 1;
	put_be32(cdb + 10, n);
	assert_sense(h_run(h, 0, 0, cdb, 16, list, n), ISD_SK_ILLEGAL_REQUEST, 0x24, 0);
	cdb[5] = 0;
	cdb[1] = 0x01;
	assert_sense(h_run(h, 0, 0, cdb, 16, list, n), ISD_SK_ILLEGAL_REQUEST, 0x24, 0);
	/* and still good as it was */
	assert_good(xcopy(h, 0, list, n));
}

static void
test_xcopy_descriptor_counts(void **state)
{
	struct h *h = *state;
	static uint8_t list[XC_HDR + 9 * XC_TGT + 65 * XC_SEG];
	uint8_t naa[16];
	uint32_t off;

	naa_of(h, h->dev, 0, naa);
	/* nine target descriptors (we take eight) */
	xc_hdr(list, 1, 0, 9 * XC_TGT, XC_SEG);
	for (int i = 0; i < 9; i++)
		xc_e4(list + XC_HDR + i * XC_TGT, naa, H_BS);
	xc_b2b(list + XC_HDR + 9 * XC_TGT, 0, 0, 1, 0, 1);
	assert_sense(xcopy(h, 0, list, XC_HDR + 9 * XC_TGT + XC_SEG), ISD_SK_ILLEGAL_REQUEST, 0x26,
		     0x06);
	/* sixty-five segment descriptors (we take sixty-four) */
	xc_hdr(list, 1, 0, XC_TGT, 65 * XC_SEG);
	xc_e4(list + XC_HDR, naa, H_BS);
	off = XC_HDR + XC_TGT;
	for (int i = 0; i < 65; i++)
		xc_b2b(list + off + i * XC_SEG, 0, 0, 1, 0, 1);
	assert_sense(xcopy(h, 0, list, off + 65 * XC_SEG), ISD_SK_ILLEGAL_REQUEST, 0x26, 0x08);
	/* sixty-four is fine */
	put_be32(list + 8, 64 * XC_SEG);
	assert_good(xcopy(h, 0, list, off + 64 * XC_SEG));
}

static void
test_xcopy_descriptor_types(void **state)
{
	struct h *h = *state;
	uint8_t list[128];
	uint32_t n = one_seg_list(h, list, 0, 8, 0, 64);

	list[XC_HDR] = 0xe0;            /* Fibre Channel N_Port_Name */
	assert_sense(xcopy(h, 0, list, n), ISD_SK_ILLEGAL_REQUEST, 0x26, 0x07);
	assert_int_equal(get_be16(g_res.sense + 16), XC_HDR);
	list[XC_HDR] = 0xe4;
	list[XC_HDR + XC_TGT] = 0x03;   /* stream to stream */
	assert_sense(xcopy(h, 0, list, n), ISD_SK_ILLEGAL_REQUEST, 0x26, 0x09);
	assert_int_equal(get_be16(g_res.sense + 16), XC_HDR + XC_TGT);
	list[XC_HDR + XC_TGT] = 0x02;
	put_be16(list + XC_HDR + XC_TGT + 2, 0x20);     /* wrong descriptor length */
	assert_sense(xcopy(h, 0, list, n), ISD_SK_ILLEGAL_REQUEST, 0x26, 0x00);
	put_be16(list + XC_HDR + XC_TGT + 2, XC_SEG - 4);
	/* LU ID TYPE and NUL are ignored (SPC-4) */
	list[XC_HDR + 1] = 0xe0;
	assert_good(xcopy(h, 0, list, n));
	/* a peripheral type other than a block device */
	list[XC_HDR + 1] = 0x01;
	assert_sense(xcopy(h, 0, list, n), ISD_SK_COPY_ABORTED, 0x0d, 0x03);
	list[XC_HDR + 1] = 0;
	/* a block length that is not the LU's */
	put_be24(list + XC_HDR + 29, 4096);
	assert_sense(xcopy(h, 0, list, n), ISD_SK_ILLEGAL_REQUEST, 0x26, 0x00);
	assert_int_equal(get_be16(g_res.sense + 16), XC_HDR + 29);
	put_be24(list + XC_HDR + 29, H_BS);
	/* a designator of another kind, or one longer than the field */
	list[XC_HDR + 5] = 0x02;        /* EUI-64 */
	assert_sense(xcopy(h, 0, list, n), ISD_SK_COPY_ABORTED, 0x0d, 0x02);
	list[XC_HDR + 5] = 0x03;
	list[XC_HDR + 7] = 21;
	assert_sense(xcopy(h, 0, list, n), ISD_SK_ILLEGAL_REQUEST, 0x26, 0x00);
	list[XC_HDR + 7] = 16;
	/* a NAA no LU of the process has */
	list[XC_HDR + 8 + 15] ^= 0x5a;
	assert_sense(xcopy(h, 0, list, n), ISD_SK_COPY_ABORTED, 0x0d, 0x02);
}

static void
test_xcopy_segment_checks(void **state)
{
	struct h *h = *state;
	uint8_t list[128], ro[16];
	uint32_t n = one_seg_list(h, list, 0, 8, 0, 64);
	uint8_t *seg = list + XC_HDR + XC_TGT;

	memset((uint8_t *)h->mem[0] + 64 * H_BS, 0x11, 8 * H_BS);
	/* a destination index past the target list */
	put_be16(seg + 6, 1);
	assert_sense(xcopy(h, 0, list, n), ISD_SK_COPY_ABORTED, 0x0d, 0x02);
	assert_int_equal(get_be16(g_res.sense + 10), 0);        /* segment 0 */
	assert_int_equal(get_be32(g_res.sense + 3), 8);         /* residue */
	assert_int_equal(g_res.sense[15] & 0xa0, 0xa0);         /* SKSV, SD */
	assert_int_equal(get_be16(g_res.sense + 16), 6);
	put_be16(seg + 6, 0);
	/* past the end of the destination, of the source, and an LBA that wraps */
	put_be64(seg + 20, H_BLOCKS - 7);
	assert_sense(xcopy(h, 0, list, n), ISD_SK_COPY_ABORTED, 0, 0);
	assert_int_equal(get_be16(g_res.sense + 16), 20);
	put_be64(seg + 20, 64);
	put_be64(seg + 12, UINT64_MAX - 2);
	assert_sense(xcopy(h, 0, list, n), ISD_SK_COPY_ABORTED, 0, 0);
	assert_int_equal(get_be16(g_res.sense + 16), 12);
	put_be64(seg + 12, 0);
	/* nothing was written by any of these */
	for (int i = 0; i < 8 * H_BS; i++)
		assert_int_equal(((uint8_t *)h->mem[0])[64 * H_BS + i], 0x11);
	/* a read-only destination */
	naa_of(h, h->dev, 2, ro);
	xc_hdr(list, 1, 0, 2 * XC_TGT, XC_SEG);
	xc_e4(list + XC_HDR + XC_TGT, ro, H_BS);
	xc_b2b(list + XC_HDR + 2 * XC_TGT, 0, 1, 8, 0, 0);
	assert_sense(xcopy(h, 0, list, XC_HDR + 2 * XC_TGT + XC_SEG), ISD_SK_DATA_PROTECT, 0x27, 0);
	/* from it is fine */
	xc_b2b(list + XC_HDR + 2 * XC_TGT, 1, 0, 8, 0, 0);
	assert_good(xcopy(h, 0, list, XC_HDR + 2 * XC_TGT + XC_SEG));
}

/* ---- RECEIVE COPY RESULTS ---- */

static void
test_rcr_operating_parameters(void **state)
{
	struct h *h = *state;
	struct h_res *r = rcr(h, 0, 0x03, 0);

	assert_good(r);
	assert_int_equal(r->len, 46);
	assert_int_equal(get_be32(r->data), 42);
	assert_int_equal(get_be16(r->data + 8), 8);             /* CSCD descriptors */
	assert_int_equal(get_be16(r->data + 10), 64);           /* segment descriptors */
	assert_int_equal(get_be32(r->data + 12), 8 * 32 + 64 * 28);
	assert_int_equal(get_be32(r->data + 16), 16u << 20);
	assert_int_equal(get_be32(r->data + 20), 0);            /* no inline data */
	assert_int_equal(r->data[37], 9);                       /* 512-byte granularity */
	assert_int_equal(r->data[43], 2);
	assert_int_equal(r->data[44], 0x02);
	assert_int_equal(r->data[45], 0xe4);
	/* reserved CDB bytes */
	{
		uint8_t cdb[16] = { 0x84, 0x03, 0, 0, 0, 0, 0, 1 };

		put_be32(cdb + 10, 64);
		assert_sense(h_run(h, 0, 0, cdb, 16, NULL, 0), ISD_SK_ILLEGAL_REQUEST, 0x24, 0);
	}
}

static void
test_rcr_copy_status_and_failed_segments(void **state)
{
	struct h *h = *state;
	uint8_t list[128];
	uint32_t n = one_seg_list(h, list, 0, 8, 0, 64);
	struct h_res *r;

	/* nothing for a list id no copy used; nothing for another nexus */
	assert_sense(rcr(h, 0, 0x00, 5), ISD_SK_ILLEGAL_REQUEST, 0x24, 0);
	list[0] = 5;
	assert_good(xcopy(h, 0, list, n));
	r = rcr(h, 0, 0x00, 5);
	assert_good(r);
	assert_int_equal(get_be32(r->data), 8);
	assert_int_equal(r->data[4], 0x01);                     /* completed, no errors */
	assert_int_equal(get_be16(r->data + 5), 1);             /* segments processed */
	assert_int_equal(r->data[7], 0x01);                     /* KiB */
	assert_int_equal(get_be32(r->data + 8), 4);
	/* a copy that succeeded has no failed segment details */
	assert_sense(rcr(h, 0, 0x04, 5), ISD_SK_ILLEGAL_REQUEST, 0x24, 0);
	/* one that failed has */
	list[0] = 6;
	put_be64(list + XC_HDR + XC_TGT + 20, H_BLOCKS);
	assert_sense(xcopy(h, 0, list, n), ISD_SK_COPY_ABORTED, 0, 0);
	r = rcr(h, 0, 0x00, 6);
	assert_good(r);
	assert_int_equal(r->data[4], 0x02);                     /* completed with errors */
	r = rcr(h, 0, 0x04, 6);
	assert_good(r);
	assert_int_equal(r->data[56], ISD_SAM_CHECK_CONDITION);
	assert_int_equal(get_be16(r->data + 58), 18);
	assert_int_equal(r->data[60 + 2] & 0x0f, ISD_SK_COPY_ABORTED);
	assert_int_equal(get_be32(r->data), 60 + 18 - 4);
	/* LIST ID USAGE 10b: not held */
	list[0] = 9;
	list[1] = 0x10;
	put_be64(list + XC_HDR + XC_TGT + 20, 64);
	assert_good(xcopy(h, 0, list, n));
	assert_sense(rcr(h, 0, 0x00, 9), ISD_SK_ILLEGAL_REQUEST, 0x24, 0);
	/* RECEIVE DATA (01h): no held data, not supported */
	assert_sense(rcr(h, 0, 0x01, 5), ISD_SK_ILLEGAL_REQUEST, 0x24, 0);
	/* many copies: the oldest results make room */
	list[1] = 0;
	for (uint8_t id = 20; id < 30; id++) {
		list[0] = id;
		assert_good(xcopy(h, 0, list, n));
	}
	assert_good(rcr(h, 0, 0x00, 29));
	assert_sense(rcr(h, 0, 0x00, 20), ISD_SK_ILLEGAL_REQUEST, 0x24, 0);
}

/* ---- VPD, INQUIRY, REPORT SUPPORTED OPERATION CODES ---- */

static void
test_xcopy_advertised(void **state)
{
	struct h *h = *state;
	uint8_t inq[6] = { 0x12, 0, 0, 0, 96, 0 };
	uint8_t vpd0[6] = { 0x12, 1, 0x00, 0, 255, 0 };
	uint8_t vpd8f[6] = { 0x12, 1, 0x8f, 0, 255, 0 };
	uint8_t rsoc[12] = { 0xa3, 0x0c, 0x02, 0x84, 0x00, 0x03, 0, 0, 0x01, 0 };
	struct h_res *r;
	bool listed = false;
	uint32_t off, len;

	r = h_run(h, 0, 0, inq, 6, NULL, 0);
	assert_good(r);
	assert_int_equal(r->data[5] & 0x08, 0x08);              /* 3PC */
	r = h_run(h, 0, 0, vpd0, 6, NULL, 0);
	assert_good(r);
	for (uint32_t i = 4; i < r->len; i++)
		listed |= r->data[i] == 0x8f;
	assert_true(listed);
	r = h_run(h, 0, 0, vpd8f, 6, NULL, 0);
	assert_good(r);
	assert_int_equal(r->data[1], 0x8f);
	len = get_be16(r->data + 2);
	assert_int_equal(len + 4, r->len);
	/* descriptors: each a multiple of 4 bytes, the ones initiators read present */
	{
		bool cmds = false, params = false, descs = false, ids = false, gen = false;

		for (off = 4; off + 4 <= r->len;) {
			uint16_t type = get_be16(r->data + off);
			uint16_t dlen = get_be16(r->data + off + 2);

			assert_int_equal((dlen + 4) % 4, 0);
			switch (type) {
			case 0x0001:
				cmds = r->data[off + 5] == 0x83 && r->data[off + 8] == 0x84;
				break;
			case 0x0004:
				params = get_be16(r->data + off + 8) == 8 &&
					 get_be16(r->data + off + 10) == 64;
				break;
			case 0x0008:
				descs = r->data[off + 4] == 2 && r->data[off + 5] == 0x02 &&
					r->data[off + 6] == 0xe4;
				break;
			case 0x000c:
				ids = true;
				break;
			case 0x8001:
				gen = get_be32(r->data + off + 12) == (16u << 20);
				break;
			}
			off += 4 + dlen;
		}
		assert_int_equal(off, r->len);
		assert_true(cmds && params && descs && ids && gen);
	}
	/* REPORT SUPPORTED OPERATION CODES: RECEIVE COPY RESULTS, OPERATING PARAMETERS */
	r = h_run(h, 0, 0, rsoc, 12, NULL, 0);
	assert_good(r);
	assert_int_equal(r->data[1] & 0x07, 0x03);
	assert_int_equal(get_be16(r->data + 2), 16);
	rsoc[3] = 0x83;
	rsoc[5] = 0x00;
	r = h_run(h, 0, 0, rsoc, 12, NULL, 0);
	assert_good(r);
	assert_int_equal(r->data[1] & 0x07, 0x03);
}

/* ---- aborts and failing stores ---- */

static void
noop_done(struct isd_scsi_cmd *cmd)
{
	(void)cmd;
	g_done_calls++;
}

/* A copy of 4 MiB (four chunks) from lun a of dev to lun b of dev_b, sent to lun a and
 * left running after exec: the first chunk went at submission, its completion waits
 * for the reactor. */
static void
start_copy(struct h *h, struct isd_scsi_cmd *cmd, uint8_t *cdb, struct isd_scsi_dev *dev_b,
	   uint32_t a, uint32_t b)
{
	static uint8_t list[XC_HDR + 2 * XC_TGT + XC_SEG];
	uint8_t na[16], nb_[16];
	uint32_t n = sizeof(list);

	naa_of(h, h->dev, a, na);
	naa_of(h, dev_b, b, nb_);
	xc_hdr(list, 3, 0, 2 * XC_TGT, XC_SEG);
	xc_e4(list + XC_HDR, na, H_BS);
	xc_e4(list + XC_HDR + XC_TGT, nb_, H_BS);
	xc_b2b(list + XC_HDR + 2 * XC_TGT, 0, 1, 8192, 0, 0);
	memset(cdb, 0, 16);
	cdb[0] = 0x83;
	put_be32(cdb + 10, n);
	memset(cmd, 0, sizeof(*cmd));
	cmd->dev = h->dev;
	cmd->nexus = &h->nx[0];
	cmd->lun = isd_scsi_lun_encode(a);
	cmd->cdb = cdb;
	cmd->cdb_len = 16;
	cmd->edtl = n;
	cmd->done = noop_done;
	g_done_calls = 0;
	assert_int_equal(isd_scsi_cmd_setup(cmd), ISD_SCSI_SETUP_READY);
	memcpy(cmd->iov[0].iov_base, list, n);
	isd_scsi_cmd_exec(cmd);
	assert_int_equal(g_done_calls, 0);
}

static void
finish_copy(struct h *h, struct isd_scsi_cmd *cmd)
{
	(void)cmd;
	for (int i = 0; i < 100 && g_done_calls == 0; i++)
		isd_reactor_poll(h->r, 10);
	assert_int_equal(g_done_calls, 1);
}

static void *g_two_src;        /* the source LU of two_luns() */

static void *
two_luns(struct h *h, void **dst)
{
	void *src = g_two_src = add_ram(h, h->dev, 20, "ram:8M", 0x0aaa);

	*dst = add_ram(h, h->dev, 21, "ram:8M", 0x0bbb);
	h_clear_ua(h, 20);
	h_clear_ua(h, 21);
	memset(src, 0x5a, 8u << 20);
	memset(*dst, 0, 8u << 20);
	return src;
}

/* ABORT TASK or a LU reset of the LU it was sent to (the transport cancels the
 * exec): the copy stops between chunks. */
static void
test_xcopy_abort_between_chunks(void **state)
{
	struct h *h = *state;
	struct isd_scsi_cmd cmd;
	uint8_t cdb[16];
	void *dst;

	two_luns(h, &dst);
	start_copy(h, &cmd, cdb, h->dev, 20, 21);
	isd_scsi_cmd_cancel(&cmd);
	finish_copy(h, &cmd);
	assert_int_equal(cmd.status, ISD_SAM_TASK_ABORTED);
	isd_scsi_cmd_release(&cmd);
	/* one chunk copied, the rest not */
	assert_int_equal(((uint8_t *)dst)[0], 0x5a);
	assert_int_equal(((uint8_t *)dst)[(1u << 20) - 1], 0x5a);
	assert_int_equal(((uint8_t *)dst)[1u << 20], 0);
	assert_int_equal(((uint8_t *)dst)[(4u << 20) - 1], 0);
	assert_int_equal(lu_xcopy_bytes(h->dev, 20), 1u << 20);
	/* the results held say it failed */
	assert_int_equal(rcr(h, 20, 0x00, 3)->data[4], 0x02);
}

/* While a copy runs: COPY STATUS says so, and its list id cannot be used again. */
static void
test_xcopy_list_id_in_use(void **state)
{
	struct h *h = *state;
	struct isd_scsi_cmd cmd;
	uint8_t cdb[16], list[128];
	struct h_res *r;
	uint32_t n;
	void *dst;

	two_luns(h, &dst);
	start_copy(h, &cmd, cdb, h->dev, 20, 21);
	r = rcr(h, 20, 0x00, 3);
	assert_good(r);
	assert_int_equal(r->data[4], 0x00);                     /* in progress */
	/* the same list id from the same nexus: refused; another one runs */
	n = one_seg_list(h, list, 20, 8, 0, 8);
	list[0] = 3;
	assert_sense(xcopy(h, 20, list, n), ISD_SK_ILLEGAL_REQUEST, 0x00, 0x16);
	list[0] = 4;
	assert_good(xcopy(h, 20, list, n));
	g_done_calls = 0;
	finish_copy(h, &cmd);
	assert_int_equal(cmd.status, ISD_SAM_GOOD);
	isd_scsi_cmd_release(&cmd);
	assert_memory_equal(dst, g_two_src, 4u << 20);
	r = rcr(h, 20, 0x00, 3);
	assert_int_equal(r->data[4], 0x01);
	assert_int_equal(get_be32(r->data + 8), 4096);          /* KiB */
}

/* A LU reset of the destination (the copy manager's own commands there are aborted). */
static void
test_xcopy_reset_of_a_copy_target(void **state)
{
	struct h *h = *state;
	struct isd_scsi_cmd cmd;
	uint8_t cdb[16];
	void *dst;

	two_luns(h, &dst);
	start_copy(h, &cmd, cdb, h->dev, 20, 21);
	assert_int_equal(isd_scsi_lu_reset(h->dev, isd_scsi_lun_encode(21), &h->nx[1]), 0);
	finish_copy(h, &cmd);
	assert_int_equal(cmd.status, ISD_SAM_CHECK_CONDITION);
	assert_int_equal(cmd.sense[2] & 0x0f, ISD_SK_COPY_ABORTED);
	assert_int_equal(cmd.sense[12], 0x0d);
	assert_int_equal(get_be32(cmd.sense + 3), 8192 - 2048);        /* residue */
	isd_scsi_cmd_release(&cmd);
	assert_int_equal(((uint8_t *)dst)[1u << 20], 0);
}

static int g_gone;

static void
gone(void *arg, struct isd_bstore *bs)
{
	(void)arg, (void)bs;
	g_gone++;
}

/* The destination is removed while the copy runs: the copy stops at its next chunk
 * and the LU (its store) lives until then. */
static void
test_xcopy_target_removed_mid_copy(void **state)
{
	struct h *h = *state;
	struct isd_scsi_cmd cmd;
	uint8_t cdb[16];
	void *dst;

	two_luns(h, &dst);
	start_copy(h, &cmd, cdb, h->dev, 20, 21);
	g_gone = 0;
	assert_int_equal(isd_scsi_dev_remove_lu(h->dev, 21, gone, NULL), 0);
	assert_int_equal(g_gone, 0);
	finish_copy(h, &cmd);
	assert_int_equal(cmd.sense[2] & 0x0f, ISD_SK_COPY_ABORTED);
	assert_int_equal(cmd.sense[12], 0x0d);
	assert_int_equal(cmd.sense[13], 0x02);
	/* gone once the copy let go of it */
	assert_int_equal(g_gone, 1);
	isd_scsi_cmd_release(&cmd);
}

/* The other target goes away entirely while a copy into its LU runs. */
static void
test_xcopy_other_target_destroyed_mid_copy(void **state)
{
	struct h *h = *state;
	struct isd_scsi_dev *dev2;
	struct isd_scsi_cmd cmd;
	uint8_t cdb[16];
	void *dst;

	two_luns(h, &dst);
	assert_int_equal(isd_scsi_dev_create("iqn.2024-01.test:other", &dev2), 0);
	add_ram(h, dev2, 3, "ram:8M", 0x0ddd);
	start_copy(h, &cmd, cdb, dev2, 20, 3);
	isd_scsi_dev_destroy(dev2);
	finish_copy(h, &cmd);
	assert_int_equal(cmd.sense[2] & 0x0f, ISD_SK_COPY_ABORTED);
	assert_int_equal(cmd.sense[13], 0x02);
	isd_scsi_cmd_release(&cmd);
}

/*
 * File LUs: the chunks go through the store's asynchronous read (io_uring) into
 * the copy's one buffer, then to the destination; RAM to file writes straight
 * from the RAM LU's memory.
 */
static void
test_xcopy_file_luns(void **state)
{
	struct h *h = *state;
	char path[] = "/tmp/isd_xcopy_XXXXXX", spec[64];
	uint8_t list[XC_HDR + 3 * XC_TGT + 2 * XC_SEG], nf[16], n0[16], n1[16];
	uint8_t *back = malloc(3u << 20);
	void *src = add_ram(h, h->dev, 10, "ram:4M", 0x0eee);
	int fd = mkstemp(path);
	uint32_t off;

	assert_true(fd >= 0);
	close(fd);
	snprintf(spec, sizeof(spec), "file:%s,size=4M", path);
	add_ram(h, h->dev, 11, spec, 0x0fff);   /* the same call opens any kind */
	h_clear_ua(h, 10);
	h_clear_ua(h, 11);
	fill(src, 0, 8192, 5);
	memset(h->mem[1], 0, 1u << 20);
	naa_of(h, h->dev, 11, nf);
	naa_of(h, h->dev, 10, n0);
	naa_of(h, h->dev, 1, n1);
	/* 3 MiB RAM -> file, then 1 MiB of it file -> another RAM LU */
	xc_hdr(list, 8, 0, 3 * XC_TGT, 2 * XC_SEG);
	xc_e4(list + XC_HDR, n0, H_BS);
	xc_e4(list + XC_HDR + XC_TGT, nf, H_BS);
	xc_e4(list + XC_HDR + 2 * XC_TGT, n1, H_BS);
	off = XC_HDR + 3 * XC_TGT;
	xc_b2b(list + off, 0, 1, 6144, 100, 0);
	xc_b2b(list + off + XC_SEG, 1, 2, 2048, 10, 0);
	assert_good(xcopy(h, 10, list, off + 2 * XC_SEG));
	fd = open(path, O_RDONLY);
	assert_true(fd >= 0);
	assert_int_equal(pread(fd, back, 3u << 20, 0), 3u << 20);
	close(fd);
	unlink(path);
	assert_memory_equal(back, (uint8_t *)src + 100 * H_BS, 3u << 20);
	assert_memory_equal(h->mem[1], (uint8_t *)src + 110 * H_BS, 1u << 20);
	assert_int_equal(lu_xcopy_bytes(h->dev, 10), 4u << 20);
	free(back);
}

/* A store whose I/O fails: COPY ABORTED with the segment and what was left of it. */
static int
fail_io(struct isd_bstore *bs, const struct iovec *iov, int iovcnt, uint64_t off,
	isd_bstore_cb cb, void *arg)
{
	(void)bs, (void)iov, (void)iovcnt, (void)off, (void)cb, (void)arg;
	return -EIO;
}

static int
fail_write(struct isd_bstore *bs, const struct iovec *iov, int iovcnt, uint64_t off, bool fua,
	   isd_bstore_cb cb, void *arg)
{
	(void)fua;
	return fail_io(bs, iov, iovcnt, off, cb, arg);
}

static void
fail_destroy(struct isd_bstore *bs)
{
	free(bs);
}

static const struct isd_bstore_ops fail_ops = {
	.name = "fail",
	.read = fail_io,
	.write = fail_write,
	.destroy = fail_destroy,
};

static void
test_xcopy_store_errors(void **state)
{
	struct h *h = *state;
	struct isd_bstore *bs = calloc(1, sizeof(*bs));
	struct isd_scsi_lu_cfg cfg;
	uint8_t list[XC_HDR + 2 * XC_TGT + 2 * XC_SEG], bad[16], good[16];
	uint32_t n = XC_HDR + 2 * XC_TGT + 2 * XC_SEG;
	struct h_res *r;

	bs->ops = &fail_ops;
	bs->reactor = h->r;
	bs->size = 1u << 20;
	bs->min_block = 1;
	memset(&cfg, 0, sizeof(cfg));
	cfg.bstore = bs;
	cfg.block_size = H_BS;
	cfg.naa_id = 0x0ccc;
	assert_int_equal(isd_scsi_dev_add_lu(h->dev, 30, &cfg), 0);
	h_clear_ua(h, 30);
	naa_of(h, h->dev, 30, bad);
	naa_of(h, h->dev, 0, good);
	xc_hdr(list, 4, 0, 2 * XC_TGT, 2 * XC_SEG);
	xc_e4(list + XC_HDR, bad, H_BS);
	xc_e4(list + XC_HDR + XC_TGT, good, H_BS);
	/* segment 0 copies within LU 0; segment 1 reads the failing store */
	xc_b2b(list + XC_HDR + 2 * XC_TGT, 1, 1, 4, 0, 8);
	xc_b2b(list + XC_HDR + 2 * XC_TGT + XC_SEG, 0, 1, 16, 0, 100);
	r = xcopy(h, 0, list, n);
	assert_sense(r, ISD_SK_COPY_ABORTED, 0x11, 0x00);
	assert_int_equal(get_be16(r->sense + 10), 1);           /* segment 1 */
	assert_int_equal(get_be32(r->sense + 3), 16);           /* none of its blocks */
	r = rcr(h, 0, 0x00, 4);
	assert_int_equal(r->data[4], 0x02);
	assert_int_equal(get_be16(r->data + 5), 1);             /* one segment processed */
	/* writing to it */
	xc_b2b(list + XC_HDR + 2 * XC_TGT + XC_SEG, 1, 0, 16, 0, 100);
	r = xcopy(h, 0, list, n);
	assert_sense(r, ISD_SK_COPY_ABORTED, 0x0c, 0x00);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_xcopy_within_lu, setup, teardown),
		cmocka_unit_test_setup_teardown(test_xcopy_between_luns, setup, teardown),
		cmocka_unit_test_setup_teardown(test_xcopy_vmware_sequence, setup, teardown),
		cmocka_unit_test_setup_teardown(test_xcopy_between_targets, setup, teardown),
		cmocka_unit_test_setup_teardown(test_xcopy_zero_length_is_a_no_op, setup, teardown),
		cmocka_unit_test_setup_teardown(test_xcopy_lengths, setup, teardown),
		cmocka_unit_test_setup_teardown(test_xcopy_header_fields, setup, teardown),
		cmocka_unit_test_setup_teardown(test_xcopy_descriptor_counts, setup, teardown),
		cmocka_unit_test_setup_teardown(test_xcopy_descriptor_types, setup, teardown),
		cmocka_unit_test_setup_teardown(test_xcopy_segment_checks, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rcr_operating_parameters, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rcr_copy_status_and_failed_segments, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_xcopy_advertised, setup, teardown),
		cmocka_unit_test_setup_teardown(test_xcopy_abort_between_chunks, setup, teardown),
		cmocka_unit_test_setup_teardown(test_xcopy_list_id_in_use, setup, teardown),
		cmocka_unit_test_setup_teardown(test_xcopy_reset_of_a_copy_target, setup, teardown),
		cmocka_unit_test_setup_teardown(test_xcopy_target_removed_mid_copy, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_xcopy_other_target_destroyed_mid_copy, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_xcopy_file_luns, setup, teardown),
		cmocka_unit_test_setup_teardown(test_xcopy_store_errors, setup, teardown),
	};

	return cmocka_run_group_tests_name("xcopy", tests, NULL, NULL);
}
