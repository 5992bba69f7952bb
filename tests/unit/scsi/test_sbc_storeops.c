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

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_caw_by_the_store),
		cmocka_unit_test(test_caw_declined),
		cmocka_unit_test(test_write_same_by_the_store),
		cmocka_unit_test(test_write_same_declined),
	};

	(void)h_add_ram_lu;     /* the harness's RAM LUs are not used here */
	return cmocka_run_group_tests_name("scsi_sbc_storeops", tests, NULL, NULL);
}
