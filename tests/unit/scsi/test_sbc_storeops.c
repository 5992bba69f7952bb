/*
 * COMPARE AND WRITE and WRITE SAME handed to a store that does them itself
 * (the optional compare_and_write and write_same ops, which rbd: has): a
 * fake store on a memory buffer, without mem_base, so that the SCSI layer
 * takes the path of file and RBD stores. The op is used when the store has
 * it; its miscompare offset reaches the sense data; -ENOTSUP hands the range
 * back to the generic read, compare and write, or pattern writes; FUA and
 * NDOB reach the op.
 */
#include "scsi_harness.h"

struct fs_req {
	struct isd_timer timer;
	isd_bstore_cb cb;
	void *arg;
	int status;
};

struct fake_bs {
	struct isd_bstore bs;
	uint8_t *medium;
	bool notsup;            /* the ops decline every range */
	int caw_calls, ws_calls, writes;
	bool last_fua;
	size_t last_plen;
	uint64_t last_len;
	/* get_map: the map to give (byte runs from 0), how many runs at most per call */
	struct isd_bstore_run map[16];
	unsigned map_n, map_limit;
	int map_calls;
	uint64_t map_last_off, map_last_len;
	unsigned map_last_max;
	int map_rc;             /* non-zero: returned at submission */
};

static void
fs_complete(void *arg)
{
	struct fs_req *req = arg;
	isd_bstore_cb cb = req->cb;
	void *cb_arg = req->arg;
	int status = req->status;

	free(req);
	cb(cb_arg, status);
}

/* The work is done at submission; the callback runs from the reactor, later. */
static int
fs_defer(struct isd_bstore *bs, int status, isd_bstore_cb cb, void *arg)
{
	struct fs_req *req = calloc(1, sizeof(*req));

	if (req == NULL)
		return -ENOMEM;
	isd_timer_init(&req->timer, fs_complete, req);
	req->cb = cb;
	req->arg = arg;
	req->status = status;
	isd_reactor_defer(bs->reactor, &req->timer);
	return 0;
}

static int
fs_read(struct isd_bstore *bs, const struct iovec *iov, int iovcnt, uint64_t off,
	isd_bstore_cb cb, void *arg)
{
	struct fake_bs *f = (struct fake_bs *)bs;

	for (int i = 0; i < iovcnt; i++) {
		assert_true(off + iov[i].iov_len <= bs->size);
		memcpy(iov[i].iov_base, f->medium + off, iov[i].iov_len);
		off += iov[i].iov_len;
	}
	return fs_defer(bs, 0, cb, arg);
}

static int
fs_write(struct isd_bstore *bs, const struct iovec *iov, int iovcnt, uint64_t off, bool fua,
	 isd_bstore_cb cb, void *arg)
{
	struct fake_bs *f = (struct fake_bs *)bs;

	(void)fua;
	f->writes++;
	for (int i = 0; i < iovcnt; i++) {
		assert_true(off + iov[i].iov_len <= bs->size);
		memcpy(f->medium + off, iov[i].iov_base, iov[i].iov_len);
		off += iov[i].iov_len;
	}
	return fs_defer(bs, 0, cb, arg);
}

static int
fs_flush(struct isd_bstore *bs, isd_bstore_cb cb, void *arg)
{
	return fs_defer(bs, 0, cb, arg);
}

static int
fs_discard(struct isd_bstore *bs, uint64_t off, uint64_t len, isd_bstore_cb cb, void *arg)
{
	memset(((struct fake_bs *)bs)->medium + off, 0, len);
	return fs_defer(bs, 0, cb, arg);
}

static void
fs_destroy(struct isd_bstore *bs)
{
	struct fake_bs *f = (struct fake_bs *)bs;

	free(f->medium);
	free(f);
}

static int
fs_caw(struct isd_bstore *bs, const void *cmp, const void *data, size_t len, uint64_t off,
       bool fua, uint64_t *mismatch, isd_bstore_cb cb, void *arg)
{
	struct fake_bs *f = (struct fake_bs *)bs;
	const uint8_t *c = cmp;

	if (f->notsup)
		return -ENOTSUP;
	f->caw_calls++;
	f->last_fua = fua;
	for (size_t i = 0; i < len; i++) {
		if (c[i] != f->medium[off + i]) {
			*mismatch = i;
			return fs_defer(bs, -EILSEQ, cb, arg);
		}
	}
	memcpy(f->medium + off, data, len);
	return fs_defer(bs, 0, cb, arg);
}

static int
fs_write_same(struct isd_bstore *bs, const void *pattern, size_t plen, uint64_t off, uint64_t len,
	      bool fua, isd_bstore_cb cb, void *arg)
{
	struct fake_bs *f = (struct fake_bs *)bs;

	if (f->notsup)
		return -ENOTSUP;
	assert_true(plen > 0 && len % plen == 0 && off + len <= bs->size);
	f->ws_calls++;
	f->last_fua = fua;
	f->last_plen = plen;
	f->last_len = len;
	for (uint64_t at = 0; at < len; at += plen)
		memcpy(f->medium + off + at, pattern, plen);
	return fs_defer(bs, 0, cb, arg);
}

/* The runs of f->map that meet [off, off + len), clipped, at most max (and map_limit). */
static int
fs_get_map(struct isd_bstore *bs, uint64_t off, uint64_t len, struct isd_bstore_run *runs,
	   unsigned max, unsigned *n, isd_bstore_cb cb, void *arg)
{
	struct fake_bs *f = (struct fake_bs *)bs;
	unsigned k = 0;

	f->map_calls++;
	f->map_last_off = off;
	f->map_last_len = len;
	f->map_last_max = max;
	if (f->map_rc != 0)
		return f->map_rc;
	assert_true(off + len <= bs->size);
	for (unsigned i = 0; i < f->map_n && k < max; i++) {
		uint64_t s = f->map[i].off, e = s + f->map[i].len;

		if (f->map_limit != 0 && k == f->map_limit)
			break;
		if (e <= off || s >= off + len)
			continue;
		if (s < off)
			s = off;
		if (e > off + len)
			e = off + len;
		runs[k++] = (struct isd_bstore_run){ s, e - s, f->map[i].mapped };
	}
	*n = k;
	return fs_defer(bs, 0, cb, arg);
}

static const struct isd_bstore_ops fake_map_ops = {
	.name = "fake",
	.read = fs_read,
	.write = fs_write,
	.flush = fs_flush,
	.discard = fs_discard,
	.destroy = fs_destroy,
	.get_map = fs_get_map,
};

static const struct isd_bstore_ops fake_ops = {
	.name = "fake",
	.read = fs_read,
	.write = fs_write,
	.flush = fs_flush,
	.discard = fs_discard,
	.destroy = fs_destroy,
	.compare_and_write = fs_caw,
	.write_same = fs_write_same,
};

/* what the next add_fake_lu's store frees whole (discard_granularity) */
static uint64_t g_discard_gran;

static struct fake_bs *
add_fake_lu(struct h *h, uint32_t lun)
{
	struct fake_bs *f = calloc(1, sizeof(*f));
	struct isd_scsi_lu_cfg cfg;

	assert_non_null(f);
	f->medium = calloc(1, (size_t)H_BLOCKS * H_BS);
	assert_non_null(f->medium);
	f->bs.ops = &fake_ops;
	f->bs.reactor = h->r;
	f->bs.size = (uint64_t)H_BLOCKS * H_BS;
	f->bs.min_block = 1;
	f->bs.can_discard = true;
	f->bs.discard_zeroes = true;
	f->bs.discard_granularity = g_discard_gran;
	memset(&cfg, 0, sizeof(cfg));
	cfg.bstore = &f->bs;
	cfg.block_size = H_BS;
	cfg.thin = true;
	cfg.write_cache = true;
	assert_int_equal(isd_scsi_dev_add_lu(h->dev, lun, &cfg), 0);
	h_clear_ua(h, lun);
	return f;
}

static void
fill(uint8_t *p, size_t n, uint8_t seed)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)(seed + i * 29);
}

/* The CAW sequence of test_sbc.c, against whichever path the store picks. */
static void
caw_sequence(struct h *h, struct fake_bs *f)
{
	uint8_t a[2 * H_BS], d[4 * H_BS];
	uint8_t cdb[16] = { 0x89, 0, 0, 0, 0, 0, 0, 0, 0, 30, 0, 0, 0, 2 };
	struct h_res *res;

	fill(a, sizeof(a), 5);
	assert_good(h_rw10(h, 0, 0, 0x2a, 30, 2, a, sizeof(a)));
	/* differs at byte 700: MISCOMPARE with INFORMATION 700, nothing written */
	memcpy(d, a, sizeof(a));
	d[700] ^= 1;
	memset(d + sizeof(a), 0xee, sizeof(a));
	res = h_run_edtl(h, 0, 0, cdb, 16, sizeof(d), d, sizeof(d));
	assert_sense(res, ISD_SK_MISCOMPARE, 0x1d, 0x00);
	assert_int_equal(get_be32(res->sense + 3), 700);
	assert_memory_equal(f->medium + 30 * H_BS, a, sizeof(a));
	/* matching: written; FUA set in the CDB reaches the store */
	d[700] ^= 1;
	cdb[1] = 0x08;
	assert_good(h_run_edtl(h, 0, 0, cdb, 16, sizeof(d), d, sizeof(d)));
	assert_memory_equal(f->medium + 30 * H_BS, d + sizeof(a), sizeof(a));
	res = h_rw10(h, 0, 0, 0x28, 30, 2, NULL, 0);
	assert_memory_equal(res->data, d + sizeof(a), sizeof(a));
}

/* Block Limits VPD: OPTIMAL UNMAP GRANULARITY is what the store frees whole */
static void
test_unmap_granularity(void **state)
{
	uint8_t cdb[6] = { 0x12, 0x01, 0xb0, 0x00, 0xff, 0x00 };
	const uint64_t grans[] = { 0, 64 * 1024, 1000 };
	const uint32_t want[] = { 1, 128, 1 };
	struct h_res *res;
	struct h h;

	(void)state;
	for (size_t i = 0; i < sizeof(grans) / sizeof(grans[0]); i++) {
		h_init(&h);
		g_discard_gran = grans[i];
		(void)add_fake_lu(&h, 0);
		g_discard_gran = 0;
		res = h_run(&h, 0, 0, cdb, 6, NULL, 0);
		assert_good(res);
		assert_int_equal(get_be32(res->data + 28), want[i]);
		/* UGAVALID with alignment 0 only for a granularity of the store's */
		assert_int_equal(res->data[32], want[i] > 1 ? 0x80 : 0x00);
		assert_int_equal(get_be32(res->data + 32) & 0x7fffffffu, 0);
		h_fini(&h);
	}
}

static void
test_caw_by_the_store(void **state)
{
	struct fake_bs *f;
	struct h h;

	(void)state;
	h_init(&h);
	f = add_fake_lu(&h, 0);
	caw_sequence(&h, f);
	assert_int_equal(f->caw_calls, 2);
	assert_true(f->last_fua);
	/* only the first WRITE(10) of the sequence was a write of its own */
	assert_int_equal(f->writes, 1);
	h_fini(&h);
}

static void
test_caw_declined(void **state)
{
	struct fake_bs *f;
	struct h h;

	(void)state;
	h_init(&h);
	f = add_fake_lu(&h, 0);
	f->notsup = true;
	caw_sequence(&h, f);
	assert_int_equal(f->caw_calls, 0);
	/* the generic path: the WRITE(10) and the matching CAW's write */
	assert_int_equal(f->writes, 2);
	h_fini(&h);
}

static void
ws_sequence(struct h *h, struct fake_bs *f)
{
	uint8_t pat[H_BS], zero[H_BS];
	uint8_t ws16[16] = { 0x93 }, ndob[16] = { 0x93, 0x01 };

	put_be64(ws16 + 2, 40);
	put_be32(ws16 + 10, 256);
	put_be64(ndob + 2, 41);
	put_be32(ndob + 10, 3);
	fill(pat, sizeof(pat), 0x31);
	memset(zero, 0, sizeof(zero));
	assert_good(h_run_edtl(h, 0, 0, ws16, 16, H_BS, pat, sizeof(pat)));
	for (uint32_t b = 40; b < 40 + 256; b++)
		assert_memory_equal(f->medium + (size_t)b * H_BS, pat, H_BS);
	assert_memory_equal(f->medium + (size_t)(40 + 256) * H_BS, zero, H_BS);
	/* NDOB: zeros, without a data-out */
	assert_good(h_run_edtl(h, 0, 0, ndob, 16, 0, NULL, 0));
	for (uint32_t b = 41; b < 44; b++)
		assert_memory_equal(f->medium + (size_t)b * H_BS, zero, H_BS);
	assert_memory_equal(f->medium + (size_t)44 * H_BS, pat, H_BS);
}

static void
test_write_same_by_the_store(void **state)
{
	struct fake_bs *f;
	struct h h;

	(void)state;
	h_init(&h);
	f = add_fake_lu(&h, 0);
	ws_sequence(&h, f);
	assert_int_equal(f->ws_calls, 2);
	assert_int_equal(f->last_plen, H_BS);
	assert_int_equal(f->last_len, 3 * H_BS);
	assert_int_equal(f->writes, 0);
	h_fini(&h);
}

static void
test_write_same_declined(void **state)
{
	struct fake_bs *f;
	struct h h;

	(void)state;
	h_init(&h);
	f = add_fake_lu(&h, 0);
	f->notsup = true;
	ws_sequence(&h, f);
	assert_int_equal(f->ws_calls, 0);
	assert_true(f->writes >= 2);
	h_fini(&h);
}

/* GET LBA STATUS from the command's LBA with that allocation length. */
static struct h_res *
lbas(struct h *h, uint64_t lba, uint32_t alloc)
{
	uint8_t cdb[16] = { 0x9e, 0x12 };

	put_be64(cdb + 2, lba);
	put_be32(cdb + 10, alloc);
	return h_run_edtl(h, 0, 0, cdb, 16, alloc, NULL, 0);
}

static void
assert_desc(const struct h_res *res, unsigned i, uint64_t lba, uint32_t nb, uint8_t st)
{
	const uint8_t *d = res->data + 8 + 16 * i;

	assert_true(res->len >= 8 + 16 * (i + 1));
	assert_int_equal(get_be64(d), lba);
	assert_int_equal(get_be32(d + 8), nb);
	assert_int_equal(d[12] & 0x0f, st);
}

static void
set_map(struct fake_bs *f, const struct isd_bstore_run *runs, unsigned n)
{
	memcpy(f->map, runs, n * sizeof(runs[0]));
	f->map_n = n;
}

static void
test_lba_status_from_the_map(void **state)
{
	/* blocks 0-9 mapped, 10-99 deallocated, 100-100 mapped, the rest deallocated */
	const struct isd_bstore_run map[] = {
		{ 0, 10 * H_BS, true },
		{ 10 * H_BS, 90 * H_BS, false },
		{ 100 * H_BS, H_BS, true },
		{ 101 * H_BS, (uint64_t)(H_BLOCKS - 101) * H_BS, false },
	};
	struct fake_bs *f;
	struct h_res *res;
	struct h h;

	(void)state;
	h_init(&h);
	f = add_fake_lu(&h, 0);
	f->bs.ops = &fake_map_ops;
	set_map(f, map, 4);
	res = lbas(&h, 0, 8 + 16 * 8);
	assert_int_equal(res->status, ISD_SAM_GOOD);
	assert_int_equal(get_be32(res->data), 4 + 4 * 16);
	assert_int_equal(res->len, 8 + 4 * 16);
	assert_desc(res, 0, 0, 10, 0);
	assert_desc(res, 1, 10, 90, 1);
	assert_desc(res, 2, 100, 1, 0);
	assert_desc(res, 3, 101, H_BLOCKS - 101, 1);
	/* the store was asked for the rest of the LU */
	assert_int_equal(f->map_last_off, 0);
	assert_int_equal(f->map_last_len, (uint64_t)H_BLOCKS * H_BS);
	/* from inside a run: it starts at the LBA asked */
	res = lbas(&h, 50, 8 + 16 * 8);
	assert_int_equal(get_be32(res->data), 4 + 3 * 16);
	assert_desc(res, 0, 50, 50, 1);
	assert_desc(res, 1, 100, 1, 0);
	assert_int_equal(f->map_last_off, 50 * H_BS);
	/* the allocation length holds two descriptors: two, and the length says two */
	res = lbas(&h, 0, 8 + 16 * 2);
	assert_int_equal(get_be32(res->data), 4 + 2 * 16);
	assert_int_equal(res->len, 8 + 2 * 16);
	assert_desc(res, 1, 10, 90, 1);
	/* room for less than one: one descriptor, truncated by the allocation length */
	res = lbas(&h, 0, 16);
	assert_int_equal(res->status, ISD_SAM_GOOD);
	assert_int_equal(res->len, 16);
	assert_int_equal(get_be32(res->data), 4 + 16);
	/* the store described only part of the range: the answer ends there */
	f->map_limit = 2;
	res = lbas(&h, 0, 8 + 16 * 8);
	assert_int_equal(get_be32(res->data), 4 + 2 * 16);
	assert_desc(res, 1, 10, 90, 1);
	f->map_limit = 0;
	/* past the end: LBA OUT OF RANGE, the store not asked */
	f->map_calls = 0;
	res = lbas(&h, H_BLOCKS, 64);
	assert_sense(res, ISD_SK_ILLEGAL_REQUEST, 0x21, 0x00);
	assert_int_equal(f->map_calls, 0);
	h_fini(&h);
}

/* Runs that do not fall on blocks: a block is mapped when any byte of it is. */
static void
test_lba_status_partial_blocks(void **state)
{
	const struct isd_bstore_run map[] = {
		{ 0, 100, true },                       /* block 0 */
		{ 100, 300, false },                    /* inside block 0: it stays mapped */
		{ 400, 2 * H_BS - 400 + 10, true },     /* blocks 0-2 (2 by 10 bytes) */
		{ 2 * H_BS + 10, 3 * H_BS - 10, false },        /* 3-4 whole, 2 partly */
		{ 5 * H_BS, (uint64_t)(H_BLOCKS - 5) * H_BS, true },
	};
	struct fake_bs *f;
	struct h_res *res;
	struct h h;

	(void)state;
	h_init(&h);
	f = add_fake_lu(&h, 0);
	f->bs.ops = &fake_map_ops;
	set_map(f, map, 5);
	res = lbas(&h, 0, 8 + 16 * 8);
	assert_int_equal(get_be32(res->data), 4 + 3 * 16);
	assert_desc(res, 0, 0, 3, 0);
	assert_desc(res, 1, 3, 2, 1);
	assert_desc(res, 2, 5, H_BLOCKS - 5, 0);
	/* a deallocated run that ends inside a block, last: that block is left out */
	f->map_n = 4;
	f->map[3].len = 3 * H_BS - 10 - 100;
	res = lbas(&h, 0, 8 + 16 * 8);
	assert_int_equal(get_be32(res->data), 4 + 2 * 16);
	assert_desc(res, 1, 3, 1, 1);
	h_fini(&h);
}

/* A store without the map, one that declines, one that fails, and after SANITIZE. */
static void
test_lba_status_without_the_map(void **state)
{
	const struct isd_bstore_run map[] = { { 0, (uint64_t)H_BLOCKS * H_BS, false } };
	struct fake_bs *f;
	struct h_res *res;
	struct h h;

	(void)state;
	h_init(&h);
	f = add_fake_lu(&h, 0);
	f->bs.ops = &fake_map_ops;
	set_map(f, map, 1);
	/* declined at submission: one mapped extent to the end, as before */
	f->map_rc = -ENOTSUP;
	res = lbas(&h, 7, 64);
	assert_int_equal(res->status, ISD_SAM_GOOD);
	assert_int_equal(get_be32(res->data), 20);
	assert_desc(res, 0, 7, H_BLOCKS - 7, 0);
	/* refused for now: BUSY */
	f->map_rc = -EAGAIN;
	res = lbas(&h, 7, 64);
	assert_int_equal(res->status, ISD_SAM_BUSY);
	/* the medium cannot be read: an error, not a guess */
	f->map_rc = -EIO;
	res = lbas(&h, 7, 64);
	assert_sense(res, ISD_SK_MEDIUM_ERROR, 0x11, 0x00);
	f->map_rc = 0;
	res = lbas(&h, 7, 64);
	assert_desc(res, 0, 7, H_BLOCKS - 7, 1);
	/* the ops table without get_map: the old answer */
	f->bs.ops = &fake_ops;
	res = lbas(&h, 0, 64);
	assert_int_equal(get_be32(res->data), 20);
	assert_desc(res, 0, 0, H_BLOCKS, 0);
	f->bs.ops = &fake_map_ops;
	h_fini(&h);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_unmap_granularity),
		cmocka_unit_test(test_caw_by_the_store),
		cmocka_unit_test(test_caw_declined),
		cmocka_unit_test(test_write_same_by_the_store),
		cmocka_unit_test(test_write_same_declined),
		cmocka_unit_test(test_lba_status_from_the_map),
		cmocka_unit_test(test_lba_status_partial_blocks),
		cmocka_unit_test(test_lba_status_without_the_map),
	};

	(void)h_add_ram_lu;     /* the harness's RAM LUs are not used here */
	return cmocka_run_group_tests_name("scsi_sbc_storeops", tests, NULL, NULL);
}
