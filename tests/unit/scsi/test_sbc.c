/* Block commands against RAM and file stores: data round trips, EDTL rules,
 * VERIFY, COMPARE AND WRITE, ORWRITE, WRITE ATOMIC, WRITE SAME, UNMAP, PRE-FETCH,
 * READ DEFECT DATA, capacity, physical blocks, write protection. */
#include <unistd.h>

#include "scsi_harness.h"

static void
fill(uint8_t *p, size_t n, uint8_t seed)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)(seed + i * 13);
}

static void
setup(struct h *h, bool thin, bool ro)
{
	h_init(h);
	h_add_ram_lu(h, 0, thin, ro);
	h_clear_ua(h, 0);
}

/* A LU on a file store (io_uring) at LUN 1. */
static void
add_file_lu(struct h *h, char *path)
{
	struct isd_scsi_lu_cfg cfg;
	struct isd_bstore *bs;
	char spec[128], err[128];
	int fd = mkstemp(path);

	assert_true(fd >= 0);
	close(fd);
	snprintf(spec, sizeof(spec), "file:%s,size=1M", path);
	assert_int_equal(isd_bstore_open(h->r, spec, &bs, err, sizeof(err)), 0);
	memset(&cfg, 0, sizeof(cfg));
	cfg.bstore = bs;
	cfg.block_size = H_BS;
	cfg.thin = true;
	cfg.write_cache = true;
	assert_int_equal(isd_scsi_dev_add_lu(h->dev, 1, &cfg), 0);
	h_clear_ua(h, 1);
}

static void
roundtrip_lun(struct h *h, uint32_t lun)
{
	static uint8_t a[8 * H_BS], b[8 * H_BS];
	struct h_res *res;
	uint8_t cdb16[16] = { 0x8a };
	uint8_t cdb12[12] = { 0xa8 };
	uint8_t cdb6[6] = { 0x08 };

	fill(a, sizeof(a), (uint8_t)lun);
	assert_good(h_rw10(h, 0, lun, 0x2a, 100, 8, a, sizeof(a)));
	res = h_rw10(h, 0, lun, 0x28, 100, 8, NULL, 0);
	assert_good(res);
	assert_int_equal(res->len, sizeof(a));
	assert_memory_equal(res->data, a, sizeof(a));
	/* WRITE(16) FUA then READ(12) and READ(6) of the same blocks */
	fill(b, sizeof(b), 0x77);
	cdb16[1] = 0x08;
	put_be64(cdb16 + 2, 200);
	put_be32(cdb16 + 10, 2);
	assert_good(h_run(h, 0, lun, cdb16, 16, b, 2 * H_BS));
	put_be32(cdb12 + 2, 200);
	put_be32(cdb12 + 6, 2);
	res = h_run(h, 0, lun, cdb12, 12, NULL, 0);
	assert_good(res);
	assert_memory_equal(res->data, b, 2 * H_BS);
	cdb6[3] = 200;
	cdb6[4] = 1;
	res = h_run(h, 0, lun, cdb6, 6, NULL, 0);
	assert_good(res);
	assert_int_equal(res->len, H_BS);
	assert_memory_equal(res->data, b, H_BS);
	/* SYNCHRONIZE CACHE goes down to the store */
	{
		uint8_t sc[10] = { 0x35 };

		assert_good(h_run(h, 0, lun, sc, 10, NULL, 0));
	}
}

static void
test_ram_io_zero_copy(void **state)
{
	struct h_res *res;
	struct h h;

	(void)state;
	setup(&h, false, false);
	roundtrip_lun(&h, 0);
	res = h_rw10(&h, 0, 0, 0x28, 100, 1, NULL, 0);
	assert_true(res->zero_copy);    /* data-in pointed straight at the RAM store */
	h_fini(&h);
}

static void
test_file_io(void **state)
{
	char path[] = "/tmp/isd_sbc_XXXXXX";
	struct h_res *res;
	struct h h;

	(void)state;
	h_init(&h);
	add_file_lu(&h, path);
	roundtrip_lun(&h, 1);
	res = h_rw10(&h, 0, 1, 0x28, 100, 1, NULL, 0);
	assert_false(res->zero_copy);
	h_fini(&h);
	unlink(path);
}

/* libiscsi test_write10_residuals: EDTL < TRANSFER LENGTH is GOOD and only the
 * whole blocks that arrived are written. */
static void
test_write_short_edtl(void **state)
{
	uint8_t a[2 * H_BS], b[2 * H_BS];
	uint8_t cdb[10] = { 0x2a, 0, 0, 0, 0, 10, 0, 0, 2, 0 };
	struct h_res *res;
	struct h h;

	(void)state;
	setup(&h, false, false);
	memset(a, 'a', sizeof(a));
	assert_good(h_rw10(&h, 0, 0, 0x2a, 10, 2, a, sizeof(a)));
	memset(b, 'b', sizeof(b));
	res = h_run_edtl(&h, 0, 0, cdb, 10, H_BS, b, sizeof(b));
	assert_good(res);
	assert_int_equal(res->xfer_len, 2 * H_BS);     /* the transport's overflow residual */
	res = h_rw10(&h, 0, 0, 0x28, 10, 2, NULL, 0);
	assert_memory_equal(res->data, b, H_BS);
	assert_memory_equal(res->data + H_BS, a, H_BS);
	/* EDTL 0 and EDTL 200: GOOD, nothing written */
	cdb[8] = 1;
	assert_good(h_run_edtl(&h, 0, 0, cdb, 10, 0, NULL, 0));
	memset(b, 'c', sizeof(b));
	assert_good(h_run_edtl(&h, 0, 0, cdb, 10, 200, b, 200));
	res = h_rw10(&h, 0, 0, 0x28, 10, 1, NULL, 0);
	assert_int_equal(res->data[0], 'b');
	h_fini(&h);
}

static void
test_verify_and_miscompare(void **state)
{
	uint8_t a[4 * H_BS], v[4 * H_BS];
	uint8_t cdb[10] = { 0x2f, 0x02, 0, 0, 0, 50, 0, 0, 4, 0 };
	uint8_t one[16] = { 0x8f, 0x06, 0, 0, 0, 0, 0, 0, 0, 60, 0, 0, 0, 3 };
	struct h_res *res;
	struct h h;

	(void)state;
	setup(&h, false, false);
	fill(a, sizeof(a), 3);
	assert_good(h_rw10(&h, 0, 0, 0x2a, 50, 4, a, sizeof(a)));
	memcpy(v, a, sizeof(v));
	assert_good(h_run(&h, 0, 0, cdb, 10, v, sizeof(v)));
	v[1234] ^= 0xff;
	res = h_run(&h, 0, 0, cdb, 10, v, sizeof(v));
	assert_sense(res, ISD_SK_MISCOMPARE, 0x1d, 0x00);
	assert_int_equal(res->sense[0] & 0x80, 0x80);          /* VALID */
	assert_int_equal(get_be32(res->sense + 3), 1234);      /* INFORMATION: the offset */
	/* BYTCHK 11b: one block against each of 3 */
	memset(v, 0x42, H_BS);
	for (int i = 0; i < 3; i++)
		memcpy(a + i * H_BS, v, H_BS);
	assert_good(h_rw10(&h, 0, 0, 0x2a, 60, 3, a, 3 * H_BS));
	assert_good(h_run(&h, 0, 0, one, 16, v, H_BS));
	v[7] = 0;
	res = h_run(&h, 0, 0, one, 16, v, H_BS);
	assert_sense(res, ISD_SK_MISCOMPARE, 0x1d, 0x00);
	assert_int_equal(get_be32(res->sense + 3), 7);
	h_fini(&h);
}

static void
caw_sequence(struct h *h, uint32_t lun)
{
	uint8_t a[2 * H_BS], d[4 * H_BS];
	uint8_t cdb[16] = { 0x89, 0, 0, 0, 0, 0, 0, 0, 0, 30, 0, 0, 0, 2 };
	struct h_res *res;

	fill(a, sizeof(a), 9);
	assert_good(h_rw10(h, 0, lun, 0x2a, 30, 2, a, sizeof(a)));
	/* verify instance differs at byte 700: MISCOMPARE, offset 700, nothing written */
	memcpy(d, a, sizeof(a));
	d[700] ^= 1;
	memset(d + sizeof(a), 0xee, sizeof(a));
	res = h_run_edtl(h, 0, lun, cdb, 16, sizeof(d), d, sizeof(d));
	assert_sense(res, ISD_SK_MISCOMPARE, 0x1d, 0x00);
	assert_int_equal(get_be32(res->sense + 3), 700);
	res = h_rw10(h, 0, lun, 0x28, 30, 2, NULL, 0);
	assert_memory_equal(res->data, a, sizeof(a));
	/* matching: the write instance lands */
	d[700] ^= 1;
	assert_good(h_run_edtl(h, 0, lun, cdb, 16, sizeof(d), d, sizeof(d)));
	res = h_rw10(h, 0, lun, 0x28, 30, 2, NULL, 0);
	assert_memory_equal(res->data, d + sizeof(a), sizeof(a));
	/* short data-out: refused, nothing written */
	assert_sense(h_run_edtl(h, 0, lun, cdb, 16, 3 * H_BS, a, sizeof(a)),
		     ISD_SK_ILLEGAL_REQUEST, 0x24, 0x00);
	res = h_rw10(h, 0, lun, 0x28, 30, 2, NULL, 0);
	assert_memory_equal(res->data, d + sizeof(a), sizeof(a));
}

static void
test_compare_and_write(void **state)
{
	char path[] = "/tmp/isd_sbc_XXXXXX";
	struct h h;

	(void)state;
	setup(&h, false, false);
	caw_sequence(&h, 0);
	add_file_lu(&h, path);
	caw_sequence(&h, 1);
	h_fini(&h);
	unlink(path);
}

static void
test_write_same(void **state)
{
	uint8_t pat[H_BS], a[4 * H_BS];
	uint8_t ws10[10] = { 0x41, 0, 0, 0, 0, 40, 0, 0, 3, 0 };
	uint8_t ws16[16] = { 0x93, 0x09, 0, 0, 0, 0, 0, 0, 0, 40, 0, 0, 0, 2 };
	uint8_t big[16] = { 0x93, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x08, 0 };  /* 2048 blocks */
	struct h_res *res;
	struct h h;

	(void)state;
	setup(&h, true, false);
	fill(pat, sizeof(pat), 1);
	memset(a, 0x11, sizeof(a));
	assert_good(h_rw10(&h, 0, 0, 0x2a, 39, 4, a, sizeof(a)));
	assert_good(h_run_edtl(&h, 0, 0, ws10, 10, H_BS, pat, sizeof(pat)));
	res = h_rw10(&h, 0, 0, 0x28, 39, 5, NULL, 0);
	assert_int_equal(res->data[0], 0x11);
	for (int i = 1; i < 4; i++)
		assert_memory_equal(res->data + i * H_BS, pat, H_BS);
	assert_int_equal(res->data[4 * H_BS], 0);
	/* UNMAP + NDOB: deallocated, reads back zeros (LBPRZ) */
	assert_good(h_run(&h, 0, 0, ws16, 16, NULL, 0));
	res = h_rw10(&h, 0, 0, 0x28, 40, 3, NULL, 0);
	for (int i = 0; i < 2 * H_BS; i++)
		assert_int_equal(res->data[i], 0);
	assert_memory_equal(res->data + 2 * H_BS, pat, H_BS);
	/* the whole LU, in chunks */
	assert_good(h_run_edtl(&h, 0, 0, big, 16, H_BS, pat, sizeof(pat)));
	res = h_rw10(&h, 0, 0, 0x28, H_BLOCKS - 1, 1, NULL, 0);
	assert_memory_equal(res->data, pat, H_BS);
	/* short data-out: refused */
	assert_sense(h_run_edtl(&h, 0, 0, ws10, 10, 100, pat, sizeof(pat)),
		     ISD_SK_ILLEGAL_REQUEST, 0x24, 0x00);
	h_fini(&h);
	/* UNMAP bit on a fully provisioned LU is an invalid field */
	setup(&h, false, false);
	ws16[1] = 0x08;
	assert_sense(h_run(&h, 0, 0, ws16, 16, pat, sizeof(pat)), ISD_SK_ILLEGAL_REQUEST, 0x24, 0);
	h_fini(&h);
}

static struct h_res *
unmap(struct h *h, const uint8_t *p, uint16_t len)
{
	uint8_t cdb[10] = { 0x42 };

	put_be16(cdb + 7, len);
	return h_run(h, 0, 0, cdb, 10, p, len);
}

static void
test_unmap_param_list(void **state)
{
	uint8_t a[4 * H_BS], p[8 + 16 * 300];
	struct h_res *res;
	struct h h;

	(void)state;
	setup(&h, true, false);
	memset(a, 0x33, sizeof(a));
	assert_good(h_rw10(&h, 0, 0, 0x2a, 0, 4, a, sizeof(a)));
	assert_good(h_rw10(&h, 0, 0, 0x2a, 100, 4, a, sizeof(a)));
	memset(p, 0, sizeof(p));
	/* two descriptors, the second out of range: nothing is unmapped */
	put_be16(p, 6 + 32);
	put_be16(p + 2, 32);
	put_be64(p + 8, 1);
	put_be32(p + 16, 2);
	put_be64(p + 24, H_BLOCKS - 1);
	put_be32(p + 32, 2);
	assert_sense(unmap(&h, p, 40), ISD_SK_ILLEGAL_REQUEST, 0x21, 0x00);
	res = h_rw10(&h, 0, 0, 0x28, 1, 1, NULL, 0);
	assert_int_equal(res->data[0], 0x33);
	/* block descriptor data length beyond the list */
	put_be16(p + 2, 48);
	assert_sense(unmap(&h, p, 40), ISD_SK_ILLEGAL_REQUEST, 0x1a, 0x00);
	/* unmap data length beyond the list */
	put_be16(p + 2, 32);
	put_be16(p, 100);
	assert_sense(unmap(&h, p, 40), ISD_SK_ILLEGAL_REQUEST, 0x1a, 0x00);
	/* too many descriptors */
	put_be16(p, 6 + 16 * 300);
	put_be16(p + 2, 16 * 300);
	assert_sense(unmap(&h, p, 8 + 16 * 300), ISD_SK_ILLEGAL_REQUEST, 0x26, 0x00);
	/* valid: two ranges (one empty, one 2 blocks), the rest untouched */
	put_be16(p, 6 + 32);
	put_be16(p + 2, 32);
	put_be64(p + 24, 101);
	put_be32(p + 32, 0);
	assert_good(unmap(&h, p, 40));
	res = h_rw10(&h, 0, 0, 0x28, 0, 4, NULL, 0);
	assert_int_equal(res->data[0], 0x33);
	for (int i = H_BS; i < 3 * H_BS; i++)
		assert_int_equal(res->data[i], 0);
	assert_int_equal(res->data[3 * H_BS], 0x33);
	put_be32(p + 32, 1);
	assert_good(unmap(&h, p, 40));
	res = h_rw10(&h, 0, 0, 0x28, 100, 3, NULL, 0);
	assert_int_equal(res->data[0], 0x33);
	assert_int_equal(res->data[H_BS], 0);
	assert_int_equal(res->data[2 * H_BS], 0x33);
	/* a truncated list (EDTL short) is not acted on */
	assert_good(h_rw10(&h, 0, 0, 0x2a, 100, 4, a, sizeof(a)));
	{
		uint8_t cdb[10] = { 0x42, 0, 0, 0, 0, 0, 0, 0, 40, 0 };

		assert_sense(h_run_edtl(&h, 0, 0, cdb, 10, 24, p, 40), ISD_SK_ILLEGAL_REQUEST,
			     0x1a, 0x00);
	}
	res = h_rw10(&h, 0, 0, 0x28, 101, 1, NULL, 0);
	assert_int_equal(res->data[0], 0x33);
	h_fini(&h);
}

static void
test_capacity(void **state)
{
	uint8_t rc10[10] = { 0x25 };
	uint8_t rc16[16] = { 0x9e, 0x10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 32 };
	uint8_t gls[16] = { 0x9e, 0x12, 0, 0, 0, 0, 0, 0, 0, 10, 0, 0, 0, 24 };
	struct h_res *res;
	struct h h;

	(void)state;
	setup(&h, true, false);
	res = h_run(&h, 0, 0, rc10, 10, NULL, 0);
	assert_good(res);
	assert_int_equal(get_be32(res->data), H_BLOCKS - 1);
	assert_int_equal(get_be32(res->data + 4), H_BS);
	res = h_run(&h, 0, 0, rc16, 16, NULL, 0);
	assert_good(res);
	assert_true(get_be64(res->data) == H_BLOCKS - 1);
	assert_int_equal(get_be32(res->data + 8), H_BS);
	assert_int_equal(res->data[14] & 0xc0, 0xc0);  /* LBPME, LBPRZ */
	rc16[13] = 12;
	res = h_run(&h, 0, 0, rc16, 16, NULL, 0);
	assert_int_equal(res->len, 12);
	res = h_run(&h, 0, 0, gls, 16, NULL, 0);
	assert_good(res);
	assert_int_equal(get_be32(res->data), 20);
	assert_true(get_be64(res->data + 8) == 10);
	assert_int_equal(get_be32(res->data + 16), H_BLOCKS - 10);
	h_fini(&h);
}

static void
test_read_only(void **state)
{
	uint8_t a[H_BS] = { 0 };
	uint8_t ws[10] = { 0x41, 0, 0, 0, 0, 0, 0, 0, 1, 0 };
	uint8_t caw[16] = { 0x89, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1 };
	uint8_t um[10] = { 0x42, 0, 0, 0, 0, 0, 0, 0, 24, 0 };
	uint8_t orw[16] = { 0x8b, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1 };
	uint8_t wa[16] = { 0x9c, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1 };
	struct h h;

	(void)state;
	setup(&h, true, true);
	assert_sense(h_rw10(&h, 0, 0, 0x2a, 0, 1, a, sizeof(a)), ISD_SK_DATA_PROTECT, 0x27, 0);
	assert_sense(h_rw10(&h, 0, 0, 0x2e, 0, 1, a, sizeof(a)), ISD_SK_DATA_PROTECT, 0x27, 0);
	assert_sense(h_run(&h, 0, 0, ws, 10, a, sizeof(a)), ISD_SK_DATA_PROTECT, 0x27, 0);
	assert_sense(h_run(&h, 0, 0, caw, 16, a, sizeof(a)), ISD_SK_DATA_PROTECT, 0x27, 0);
	assert_sense(h_run(&h, 0, 0, um, 10, a, 24), ISD_SK_DATA_PROTECT, 0x27, 0);
	assert_sense(h_run(&h, 0, 0, orw, 16, a, sizeof(a)), ISD_SK_DATA_PROTECT, 0x27, 0);
	assert_sense(h_run(&h, 0, 0, wa, 16, a, sizeof(a)), ISD_SK_DATA_PROTECT, 0x27, 0);
	assert_good(h_rw10(&h, 0, 0, 0x28, 0, 1, NULL, 0));
	h_fini(&h);
}

/* ABORT between setup and exec: TASK ABORTED, done not called, release frees. */
static void
test_abort(void **state)
{
	struct isd_scsi_cmd cmd;
	uint8_t cdb[16] = { 0x2a, 0, 0, 0, 0, 0, 0, 0, 4, 0 };
	struct h h;

	(void)state;
	setup(&h, false, false);
	memset(&cmd, 0, sizeof(cmd));
	cmd.dev = h.dev;
	cmd.nexus = &h.nx[0];
	cmd.cdb = cdb;
	cmd.cdb_len = 16;
	cmd.edtl = 4 * H_BS;
	cmd.done = h_done;
	g_done_calls = 0;
	assert_int_equal(isd_scsi_cmd_setup(&cmd), ISD_SCSI_SETUP_READY);
	assert_int_equal(cmd.dir, ISD_SCSI_DIR_OUT);
	isd_scsi_cmd_abort(&cmd);
	assert_int_equal(cmd.status, ISD_SAM_TASK_ABORTED);
	assert_int_equal(g_done_calls, 0);
	isd_scsi_cmd_release(&cmd);
	h_fini(&h);
}

/* SANITIZE (0x48): service action, IMMED/AUSE in byte 1, PARAMETER LIST LENGTH. */
static struct h_res *
sanitize(struct h *h, int nexus, uint8_t b1, const uint8_t *p, uint16_t len)
{
	uint8_t cdb[10] = { 0x48, b1 };

	put_be16(cdb + 7, len);
	return h_run(h, nexus, 0, cdb, 10, p, len);
}

static void
assert_lu_bytes(const struct h *h, const uint8_t *want, size_t wlen, uint32_t step)
{
	const uint8_t *m = h->mem[0];

	/* every block of the LU starts with want (sampled every step blocks) */
	for (uint32_t b = 0; b < H_BLOCKS; b += step)
		assert_memory_equal(m + (size_t)b * H_BS, want, wlen);
	assert_memory_equal(m + (size_t)(H_BLOCKS - 1) * H_BS, want, wlen);
}

static void
test_sanitize_checks(void **state)
{
	uint8_t p[4 + H_BS + 8];
	uint8_t cdb[10] = { 0x48, 0x01 };
	struct h h;

	(void)state;
	setup(&h, true, false);
	memset(p, 0xaa, sizeof(p));
	p[0] = 0x01;
	p[1] = 0;
	put_be16(p + 2, H_BS);
	/* ZNR (not zoned) and the reserved bytes 2..6 */
	assert_sense(sanitize(&h, 0, 0x41, p, 4 + H_BS), ISD_SK_ILLEGAL_REQUEST, 0x24, 0);
	for (int i = 2; i <= 6; i++) {
		memset(cdb + 2, 0, 8);
		cdb[i] = 1;
		put_be16(cdb + 7, 4 + H_BS);
		assert_sense(h_run(&h, 0, 0, cdb, 10, p, 4 + H_BS), ISD_SK_ILLEGAL_REQUEST, 0x24,
			     0);
		assert_int_equal(get_be16(g_res.sense + 16), i);
	}
	/* OVERWRITE: 5 to block size + 4 bytes of parameters; BLOCK ERASE and EXIT
	 * FAILURE MODE: none */
	for (uint16_t len = 0; len <= 4; len++)
		assert_sense(sanitize(&h, 0, 0x01, p, len), ISD_SK_ILLEGAL_REQUEST, 0x24, 0);
	assert_sense(sanitize(&h, 0, 0x01, p, 4 + H_BS + 1), ISD_SK_ILLEGAL_REQUEST, 0x24, 0);
	assert_sense(sanitize(&h, 0, 0x02, p, 8), ISD_SK_ILLEGAL_REQUEST, 0x24, 0);
	assert_sense(sanitize(&h, 0, 0x1f, p, 8), ISD_SK_ILLEGAL_REQUEST, 0x24, 0);
	/* CRYPTOGRAPHIC ERASE (no key to change) and undefined service actions */
	assert_sense(sanitize(&h, 0, 0x03, NULL, 0), ISD_SK_ILLEGAL_REQUEST, 0x24, 0);
	assert_sense(sanitize(&h, 0, 0x00, NULL, 0), ISD_SK_ILLEGAL_REQUEST, 0x24, 0);
	assert_sense(sanitize(&h, 0, 0x1e, NULL, 0), ISD_SK_ILLEGAL_REQUEST, 0x24, 0);
	/* parameter list: OVERWRITE COUNT 0, TEST, pattern length 0, over a block,
	 * longer than what was sent; none of them touches the medium */
	memset(h.mem[0], 0x11, H_BS);
	p[0] = 0x00;
	assert_sense(sanitize(&h, 0, 0x01, p, 4 + H_BS), ISD_SK_ILLEGAL_REQUEST, 0x26, 0);
	p[0] = 0x21;
	assert_sense(sanitize(&h, 0, 0x01, p, 4 + H_BS), ISD_SK_ILLEGAL_REQUEST, 0x26, 0);
	p[0] = 0x01;
	put_be16(p + 2, 0);
	assert_sense(sanitize(&h, 0, 0x01, p, 4 + H_BS), ISD_SK_ILLEGAL_REQUEST, 0x26, 0);
	put_be16(p + 2, H_BS + 1);
	assert_sense(sanitize(&h, 0, 0x01, p, 4 + H_BS), ISD_SK_ILLEGAL_REQUEST, 0x26, 0);
	put_be16(p + 2, 16);
	assert_sense(sanitize(&h, 0, 0x01, p, 4 + 8), ISD_SK_ILLEGAL_REQUEST, 0x26, 0);
	assert_int_equal(((uint8_t *)h.mem[0])[0], 0x11);
	/* a short data-out is not acted on */
	{
		uint8_t c[10] = { 0x48, 0x01 };

		put_be16(c + 7, 4 + 16);
		assert_sense(h_run_edtl(&h, 0, 0, c, 10, 10, p, 4 + 16), ISD_SK_ILLEGAL_REQUEST,
			     0x1a, 0);
	}
	assert_int_equal(((uint8_t *)h.mem[0])[0], 0x11);
	/* EXIT FAILURE MODE outside a failure mode: nothing to do */
	assert_good(sanitize(&h, 0, 0x1f, NULL, 0));
	/* RESERVE(6) of another nexus conflicts */
	{
		uint8_t res6[6] = { 0x16 }, rel6[6] = { 0x17 };

		assert_good(h_run(&h, 1, 0, res6, 6, NULL, 0));
		assert_status(sanitize(&h, 0, 0x02, NULL, 0), ISD_SAM_RESERVATION_CONFLICT);
		assert_good(h_run(&h, 1, 0, rel6, 6, NULL, 0));
	}
	h_fini(&h);
	/* read-only LU, and SWP: DATA PROTECT */
	setup(&h, true, true);
	put_be16(p + 2, H_BS);
	assert_sense(sanitize(&h, 0, 0x01, p, 4 + H_BS), ISD_SK_DATA_PROTECT, 0x27, 0);
	assert_sense(sanitize(&h, 0, 0x02, NULL, 0), ISD_SK_DATA_PROTECT, 0x27, 0);
	h_fini(&h);
	/* BLOCK ERASE only where the store can deallocate (thin) */
	setup(&h, false, false);
	assert_sense(sanitize(&h, 0, 0x02, NULL, 0), ISD_SK_ILLEGAL_REQUEST, 0x20, 0);
	h_fini(&h);
}

static void
test_sanitize_overwrite(void **state)
{
	uint8_t p[4 + H_BS];
	uint8_t want[H_BS], inv[H_BS];
	struct h h;

	(void)state;
	setup(&h, true, false);
	memset(h.mem[0], 0x61, (size_t)H_BLOCKS * H_BS);
	/* one pass of a whole-block pattern */
	p[0] = 0x01;
	p[1] = 0;
	put_be16(p + 2, H_BS);
	fill(p + 4, H_BS, 3);
	assert_good(sanitize(&h, 0, 0x01, p, 4 + H_BS));
	assert_lu_bytes(&h, p + 4, H_BS, 7);
	/* a 3-byte pattern repeats through each block, from its start */
	put_be16(p + 2, 3);
	p[4] = 1, p[5] = 2, p[6] = 3;
	for (size_t i = 0; i < H_BS; i++)
		want[i] = (uint8_t)(1 + i % 3);
	assert_good(sanitize(&h, 0, 0x01, p, 4 + 3));
	assert_lu_bytes(&h, want, H_BS, 5);
	/* INVERT with two passes: the second pass writes the inverted pattern */
	p[0] = 0x80 | 0x02;
	for (size_t i = 0; i < H_BS; i++)
		inv[i] = (uint8_t)~want[i];
	assert_good(sanitize(&h, 0, 0x01, p, 4 + 3));
	assert_lu_bytes(&h, inv, H_BS, 5);
	/* three passes: back to the pattern */
	p[0] = 0x80 | 0x03;
	assert_good(sanitize(&h, 0, 0x01, p, 4 + 3));
	assert_lu_bytes(&h, want, H_BS, 5);
	h_fini(&h);
}

/* IMMED: GOOD at once; meanwhile every other nexus sees SANITIZE IN PROGRESS with
 * a progress indication, except INQUIRY / REPORT LUNS / REQUEST SENSE; a LUN reset
 * does not stop it; BLOCK ERASE then reads zeros and GET LBA STATUS says deallocated
 * until something is written. */
/*
 * ABORT TASK (the transport cancels the command) of a SANITIZE without IMMED:
 * the command is answered on the next turn as aborted, the operation goes on
 * to its end (SBC-4 4.11), and nothing answers it twice.
 */
static void
test_sanitize_cancel_waiter(void **state)
{
	uint8_t p[4 + H_BS], cdb16[16] = { 0x48, 0x01 };
	struct isd_scsi_cmd cmd;
	struct h h;
	uint8_t tur[6] = { 0 };

	(void)state;
	setup(&h, true, false);
	memset(h.mem[0], 0x61, (size_t)H_BLOCKS * H_BS);
	p[0] = 0x01;
	p[1] = 0;
	put_be16(p + 2, H_BS);
	memset(p + 4, 0x5c, H_BS);
	put_be16(cdb16 + 7, sizeof(p));
	memset(&cmd, 0, sizeof(cmd));
	cmd.dev = h.dev;
	cmd.nexus = &h.nx[0];
	cmd.lun = isd_scsi_lun_encode(0);
	cmd.cdb = cdb16;
	cmd.cdb_len = 16;
	cmd.edtl = sizeof(p);
	cmd.done = h_done;
	g_done_calls = 0;
	assert_int_equal(isd_scsi_cmd_setup(&cmd), ISD_SCSI_SETUP_READY);
	memcpy(cmd.iov[0].iov_base, p, sizeof(p));
	isd_scsi_cmd_exec(&cmd);
	isd_scsi_cmd_cancel(&cmd);
	assert_int_equal(g_done_calls, 0);              /* never inside the cancel */
	/* the operation runs on: the LUN is busy for everyone */
	assert_sense(h_run(&h, 1, 0, tur, 6, NULL, 0), ISD_SK_NOT_READY, 0x04, 0x1b);
	g_done_calls = 0;
	for (int i = 0; i < 1000 && g_done_calls == 0; i++)
		assert_int_equal(isd_reactor_poll(h.r, 10), 0);
	assert_int_equal(g_done_calls, 1);
	assert_int_equal(cmd.status, ISD_SAM_TASK_ABORTED);
	/* to its end, the blocks all written; the aborted command is not answered again */
	for (int i = 0; i < 1000; i++) {
		struct h_res *r = h_run(&h, 1, 0, tur, 6, NULL, 0);

		if (r->status == ISD_SAM_GOOD)
			break;
		assert_int_equal(r->key, ISD_SK_NOT_READY);
		assert_int_equal(isd_reactor_poll(h.r, 10), 0);
	}
	assert_good(h_run(&h, 1, 0, tur, 6, NULL, 0));
	assert_lu_bytes(&h, p + 4, H_BS, 7);
	isd_scsi_cmd_release(&cmd);
	h_fini(&h);
}

static void
test_sanitize_immed_block_erase(void **state)
{
	uint8_t tur[6] = { 0 }, inq[6] = { 0x12, 0, 0, 0, 36 }, rs[6] = { 0x03, 0, 0, 0, 18 };
	uint8_t rl[12] = { 0xa0, 0, 0, 0, 0, 0, 0, 0, 0x10, 0 };
	uint8_t lbas[16] = { 0x9e, 0x12 };
	uint8_t zero[H_BS], blk[H_BS];
	struct h_res *res;
	struct h h;

	(void)state;
	setup(&h, true, false);
	memset(zero, 0, sizeof(zero));
	memset(blk, 0x61, sizeof(blk));
	memset(h.mem[0], 0x61, (size_t)H_BLOCKS * H_BS);
	put_be32(lbas + 10, 24);
	assert_int_equal(h_run(&h, 0, 0, lbas, 16, NULL, 0)->data[20], 0x00);  /* mapped */
	assert_good(sanitize(&h, 0, 0x80 | 0x20 | 0x02, NULL, 0));
	/* the erase is still under way: nothing has polled the reactor */
	res = h_run(&h, 1, 0, tur, 6, NULL, 0);
	assert_sense(res, ISD_SK_NOT_READY, 0x04, 0x1b);
	assert_int_equal(res->sense[15], 0x80);         /* SKSV: progress indication */
	assert_sense(h_rw10(&h, 0, 0, 0x28, 0, 1, NULL, 0), ISD_SK_NOT_READY, 0x04, 0x1b);
	assert_sense(h_rw10(&h, 1, 0, 0x2a, 0, 1, blk, sizeof(blk)), ISD_SK_NOT_READY, 0x04, 0x1b);
	assert_sense(sanitize(&h, 1, 0x02, NULL, 0), ISD_SK_NOT_READY, 0x04, 0x1b);
	assert_good(h_run(&h, 1, 0, inq, 6, NULL, 0));
	assert_good(h_run(&h, 1, 0, rl, 12, NULL, 0));
	res = h_run(&h, 1, 0, rs, 6, NULL, 0);
	assert_good(res);
	assert_int_equal(res->data[2] & 0x0f, ISD_SK_NOT_READY);
	assert_int_equal(res->data[12], 0x04);
	assert_int_equal(res->data[13], 0x1b);
	assert_int_equal(res->data[15], 0x80);
	/* a LUN reset leaves it running (its unit attention first) */
	assert_int_equal(isd_scsi_lu_reset(h.dev, isd_scsi_lun_encode(0), &h.nx[0]), 0);
	assert_sense(h_run(&h, 1, 0, tur, 6, NULL, 0), ISD_SK_UNIT_ATTENTION, 0x29, 0x03);
	assert_sense(h_run(&h, 1, 0, tur, 6, NULL, 0), ISD_SK_NOT_READY, 0x04, 0x1b);
	/* the sender of the reset gets the unit attention too (SAM-5) */
	assert_sense(h_run(&h, 0, 0, tur, 6, NULL, 0), ISD_SK_UNIT_ATTENTION, 0x29, 0x03);
	for (int i = 0; i < 100; i++)
		isd_reactor_poll(h.r, 0);
	assert_good(h_run(&h, 1, 0, tur, 6, NULL, 0));
	assert_lu_bytes(&h, zero, H_BS, 3);
	res = h_run(&h, 0, 0, lbas, 16, NULL, 0);
	assert_good(res);
	assert_int_equal(get_be64(res->data + 8), 0);
	assert_int_equal(get_be32(res->data + 16), H_BLOCKS);
	assert_int_equal(res->data[20], 0x01);          /* deallocated */
	/* a read does not change that, a failed SANITIZE neither; a write does */
	assert_good(h_rw10(&h, 0, 0, 0x28, 0, 1, NULL, 0));
	assert_sense(sanitize(&h, 0, 0x02, blk, 8), ISD_SK_ILLEGAL_REQUEST, 0x24, 0);
	assert_int_equal(h_run(&h, 0, 0, lbas, 16, NULL, 0)->data[20], 0x01);
	assert_good(h_rw10(&h, 1, 0, 0x2a, 0, 1, blk, sizeof(blk)));
	assert_int_equal(h_run(&h, 0, 0, lbas, 16, NULL, 0)->data[20], 0x00);
	h_fini(&h);
}

/* iserd stops (the device is destroyed) while a SANITIZE runs on a RAM and a file
 * LUN: nothing is touched after it is freed, nothing leaks (ASan). */
static void
test_sanitize_stopped_by_destroy(void **state)
{
	char path[] = "/tmp/isd_sbc_XXXXXX";
	uint8_t p[4 + 4] = { 0x1f, 0, 0, 4, 1, 2, 3, 4 };
	uint8_t erase[10] = { 0x48, 0x82 }, ow[10] = { 0x48, 0x81 };
	struct h h;

	(void)state;
	setup(&h, true, false);
	add_file_lu(&h, path);
	put_be16(ow + 7, sizeof(p));
	assert_good(h_run(&h, 0, 0, ow, 10, p, sizeof(p)));
	assert_good(h_run(&h, 0, 1, erase, 10, NULL, 0));
	isd_reactor_poll(h.r, 0);
	isd_scsi_dev_destroy(h.dev);
	isd_reactor_destroy(h.r);
	unlink(path);
}

/* A registered-memory allocator is used for data buffers (iSER). */
static int g_allocs, g_frees;

static void *
t_alloc(void *ctx, uint32_t len, uint32_t align)
{
	(void)ctx;
	(void)align;
	g_allocs++;
	return malloc(len);
}

static void
t_free(void *ctx, void *buf, uint32_t len)
{
	(void)ctx;
	(void)len;
	g_frees++;
	free(buf);
}

static void
test_buf_ops(void **state)
{
	static const struct isd_scsi_buf_ops ops = { t_alloc, t_free, NULL };
	struct isd_scsi_cmd cmd;
	uint8_t cdb[16] = { 0x12, 0, 0, 0, 36 };
	struct h h;

	(void)state;
	setup(&h, false, false);
	memset(&cmd, 0, sizeof(cmd));
	cmd.dev = h.dev;
	cmd.nexus = &h.nx[0];
	cmd.cdb = cdb;
	cmd.cdb_len = 16;
	cmd.edtl = 36;
	cmd.buf_ops = &ops;
	cmd.done = h_done;
	g_done_calls = 0;
	assert_int_equal(isd_scsi_cmd_setup(&cmd), ISD_SCSI_SETUP_READY);
	isd_scsi_cmd_exec(&cmd);
	assert_int_equal(g_done_calls, 1);
	assert_int_equal(cmd.data_in_len, 36);
	isd_scsi_cmd_release(&cmd);
	assert_int_equal(g_allocs, 1);
	assert_int_equal(g_frees, 1);
	h_fini(&h);
}

/* A WRITE(10) of 2 blocks at LBA 50 of LUN 0 with the given EDTL, not yet set up. */
static void
ram_write_cmd(struct isd_scsi_cmd *cmd, struct h *h, const uint8_t *cdb, uint32_t edtl,
	      const struct isd_scsi_buf_ops *ops)
{
	memset(cmd, 0, sizeof(*cmd));
	cmd->dev = h->dev;
	cmd->nexus = &h->nx[0];
	cmd->cdb = cdb;
	cmd->lun = isd_scsi_lun_encode(0);
	cmd->cdb_len = 10;
	cmd->edtl = edtl;
	cmd->buf_ops = ops;
	cmd->done = h_done;
}

/* A WRITE to a RAM LU places its data-out straight into the LU's memory (iSER): setup
 * points iov at the blocks and allocates nothing; a short EDTL, or data_out_staged
 * (TCP), is staged, and a staged write that is never run stores nothing. */
static void
test_ram_write_direct(void **state)
{
	static const struct isd_scsi_buf_ops ops = { t_alloc, t_free, NULL };
	uint8_t cdb[10] = { 0x2a, 0, 0, 0, 0, 50, 0, 0, 2, 0 };
	struct isd_scsi_cmd cmd;
	struct h_res *res;
	struct h h;

	(void)state;
	setup(&h, false, false);
	g_allocs = g_frees = 0;
	ram_write_cmd(&cmd, &h, cdb, 2 * H_BS, &ops);
	cmd.data_out_staged = true;
	assert_int_equal(isd_scsi_cmd_setup(&cmd), ISD_SCSI_SETUP_READY);
	assert_false(cmd.data_out_direct);
	assert_int_equal(g_allocs, 1);
	/* data that arrived for a command that is then aborted: released, never run */
	memset(cmd.iov[0].iov_base, 's', 2 * H_BS);
	isd_scsi_cmd_release(&cmd);
	assert_int_equal(g_frees, 1);
	res = h_rw10(&h, 0, 0, 0x28, 50, 2, NULL, 0);
	assert_good(res);
	assert_int_not_equal(res->data[0], 's');
	assert_int_not_equal(res->data[2 * H_BS - 1], 's');
	g_allocs = g_frees = 0;

	ram_write_cmd(&cmd, &h, cdb, 2 * H_BS, &ops);
	assert_int_equal(isd_scsi_cmd_setup(&cmd), ISD_SCSI_SETUP_READY);
	assert_true(cmd.data_out_direct);
	assert_int_equal(cmd.iovcnt, 1);
	assert_int_equal(cmd.iov[0].iov_len, 2 * H_BS);
	/* the transport's data lands in the LU as it arrives */
	memset(cmd.iov[0].iov_base, 'd', 2 * H_BS);
	g_done_calls = 0;
	isd_scsi_cmd_exec(&cmd);
	for (int i = 0; i < 1000 && g_done_calls == 0; i++)
		assert_int_equal(isd_reactor_poll(h.r, 10), 0);
	assert_int_equal(g_done_calls, 1);
	assert_int_equal(cmd.status, ISD_SAM_GOOD);
	isd_scsi_cmd_release(&cmd);
	assert_int_equal(g_allocs, 0);
	res = h_rw10(&h, 0, 0, 0x28, 50, 2, NULL, 0);
	assert_good(res);
	assert_int_equal(res->data[0], 'd');
	assert_int_equal(res->data[2 * H_BS - 1], 'd');

	/* EDTL short of the transfer: staged in a buffer, only whole blocks written */
	ram_write_cmd(&cmd, &h, cdb, H_BS + 100, &ops);
	assert_int_equal(isd_scsi_cmd_setup(&cmd), ISD_SCSI_SETUP_READY);
	assert_false(cmd.data_out_direct);
	assert_int_equal(g_allocs, 1);
	isd_scsi_cmd_release(&cmd);
	assert_int_equal(g_frees, 1);
	g_allocs = g_frees = 0;
	h_fini(&h);
}

/* ---- ORWRITE ---- */

static struct h_res *
orwrite(struct h *h, uint32_t lun, uint64_t lba, uint32_t nb, uint32_t edtl, const uint8_t *d)
{
	uint8_t cdb[16] = { 0x8b };

	put_be64(cdb + 2, lba);
	put_be32(cdb + 10, nb);
	return h_run_edtl(h, 0, lun, cdb, 16, edtl, d, edtl);
}

static void
orwrite_sequence(struct h *h, uint32_t lun)
{
	uint8_t z[3 * H_BS], d[3 * H_BS], want[3 * H_BS];
	struct h_res *res;

	memset(z, 0, sizeof(z));
	assert_good(h_rw10(h, 0, lun, 0x2a, 60, 3, z, sizeof(z)));
	memset(d, 0xa5, sizeof(d));
	assert_good(orwrite(h, lun, 60, 3, sizeof(d), d));
	res = h_rw10(h, 0, lun, 0x28, 60, 3, NULL, 0);
	assert_memory_equal(res->data, d, sizeof(d));
	memset(d, 0x5a, sizeof(d));
	d[100] = 0x01;
	assert_good(orwrite(h, lun, 60, 3, sizeof(d), d));
	memset(want, 0xff, sizeof(want));
	want[100] = 0xa5;
	res = h_rw10(h, 0, lun, 0x28, 60, 3, NULL, 0);
	assert_memory_equal(res->data, want, sizeof(want));
	/* a data-out short by one block: refused, nothing ORed in (not even the first
	 * two blocks, which a plain WRITE would store) */
	assert_good(h_rw10(h, 0, lun, 0x2a, 60, 3, z, sizeof(z)));
	assert_sense(orwrite(h, lun, 60, 3, 2 * H_BS, d), ISD_SK_ILLEGAL_REQUEST, 0x24, 0x00);
	res = h_rw10(h, 0, lun, 0x28, 60, 3, NULL, 0);
	assert_memory_equal(res->data, z, sizeof(z));
	/* out of range: nothing written */
	assert_sense(orwrite(h, lun, H_BLOCKS - 2, 3, sizeof(d), d), ISD_SK_ILLEGAL_REQUEST,
		     0x21, 0x00);
	assert_sense(orwrite(h, lun, UINT64_MAX, 1, H_BS, d), ISD_SK_ILLEGAL_REQUEST, 0x21, 0x00);
	assert_good(orwrite(h, lun, H_BLOCKS, 0, 0, NULL));
}

/* SBC-3 5.9: each block becomes old OR data-out, on RAM and on a file store. */
static void
test_orwrite(void **state)
{
	char path[] = "/tmp/isd_sbc_XXXXXX";
	uint8_t d[H_BS];
	struct h h;

	(void)state;
	setup(&h, false, false);
	orwrite_sequence(&h, 0);
	add_file_lu(&h, path);
	orwrite_sequence(&h, 1);
	/* the data-out is an operand, never placed in the LU as it arrives */
	memset(d, 0x0f, sizeof(d));
	assert_good(orwrite(&h, 0, 0, 1, sizeof(d), d));
	assert_false(h.mem[0] == NULL);
	h_fini(&h);
	unlink(path);
}

/* ---- WRITE ATOMIC, physical blocks ---- */

/* A RAM LU at `lun` with `phys`-byte physical blocks (512-byte logical ones). */
static int
add_ram_lu_spec(struct h *h, uint32_t lun, const char *spec, uint32_t phys)
{
	struct isd_scsi_lu_cfg cfg;
	struct isd_bstore *bs;
	char err[128];
	int rc;

	assert_int_equal(isd_bstore_open(h->r, spec, &bs, err, sizeof(err)), 0);
	memset(&cfg, 0, sizeof(cfg));
	cfg.bstore = bs;
	cfg.block_size = H_BS;
	cfg.physical_block_size = phys;
	cfg.thin = true;
	cfg.write_cache = true;
	rc = isd_scsi_dev_add_lu(h->dev, lun, &cfg);
	if (rc < 0) {
		isd_bstore_close(bs);
		return rc;
	}
	h->mem[lun] = bs->mem_base;
	h_clear_ua(h, lun);
	return 0;
}

static int
add_phys_lu(struct h *h, uint32_t lun, uint32_t phys)
{
	return add_ram_lu_spec(h, lun, "ram:1M", phys);
}

static void
test_physical_block_check(void **state)
{
	(void)state;
	assert_int_equal(isd_scsi_phys_block_check(512, 0), 0);
	assert_int_equal(isd_scsi_phys_block_check(512, 512), 0);
	assert_int_equal(isd_scsi_phys_block_check(512, 4096), 0);
	assert_int_equal(isd_scsi_phys_block_check(4096, 65536), 0);
	assert_int_equal(isd_scsi_phys_block_check(512, 256), -EINVAL);    /* smaller */
	assert_int_equal(isd_scsi_phys_block_check(512, 1536), -EINVAL);   /* not a power of 2 */
	assert_int_equal(isd_scsi_phys_block_check(4096, 2048), -EINVAL);
	assert_int_equal(isd_scsi_phys_block_check(512, 131072), -EINVAL); /* over the bound */
	assert_int_equal(isd_scsi_phys_block_check(512, 0x80000000u), -EINVAL);
	assert_int_equal(isd_scsi_phys_block_check(0, 4096), -EINVAL);
}

static struct h_res *
inquiry_b0(struct h *h, uint32_t lun)
{
	uint8_t cdb[6] = { 0x12, 0x01, 0xb0, 0, 64, 0 };

	return h_run(h, 0, lun, cdb, 6, NULL, 0);
}

static struct h_res *
rc16(struct h *h, uint32_t lun)
{
	uint8_t cdb[16] = { 0x9e, 0x10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 32 };

	return h_run(h, 0, lun, cdb, 16, NULL, 0);
}

/* 512-byte logical, 4096-byte physical blocks: READ CAPACITY (16) and Block Limits. */
static void
test_physical_block(void **state)
{
	struct h_res *res;
	struct h h;

	(void)state;
	h_init(&h);
	h_add_ram_lu(&h, 0, true, false);
	h_clear_ua(&h, 0);
	assert_int_equal(add_phys_lu(&h, 1, 4096), 0);
	assert_int_equal(add_phys_lu(&h, 2, 1000), -EINVAL);
	assert_int_equal(add_phys_lu(&h, 2, 256), -EINVAL);
	res = rc16(&h, 0);
	assert_int_equal(res->data[13] & 0x0f, 0);
	res = rc16(&h, 1);
	assert_int_equal(get_be32(res->data + 8), 512);
	assert_int_equal(res->data[13] & 0x0f, 3);                  /* 2^3 per physical */
	assert_int_equal(get_be16(res->data + 14) & 0x3fff, 0);     /* LOWEST ALIGNED LBA */
	res = inquiry_b0(&h, 0);
	assert_int_equal(res->data[4] & 0x01, 1);                   /* WSNZ */
	assert_int_equal(get_be16(res->data + 6), 1);
	assert_int_equal(get_be32(res->data + 48), 1);
	assert_int_equal(get_be32(res->data + 52), 1);
	res = inquiry_b0(&h, 1);
	assert_int_equal(get_be16(res->data + 6), 8);               /* OPTIMAL GRANULARITY */
	assert_int_equal(get_be32(res->data + 28), 8);              /* OPTIMAL UNMAP GRAN. */
	assert_true(get_be32(res->data + 44) >= 256);               /* MAX ATOMIC */
	assert_true(get_be32(res->data + 44) <= get_be32(res->data + 8));
	assert_int_equal(get_be32(res->data + 48), 8);              /* ATOMIC ALIGNMENT */
	assert_int_equal(get_be32(res->data + 52), 8);              /* ATOMIC GRANULARITY */
	assert_int_equal(get_be32(res->data + 56), 0);              /* no atomic boundary */
	assert_int_equal(get_be32(res->data + 60), 0);
	h_fini(&h);
}

static struct h_res *
write_atomic(struct h *h, uint32_t lun, uint64_t lba, uint16_t nb, uint16_t boundary,
	     uint32_t edtl, const uint8_t *d)
{
	uint8_t cdb[16] = { 0x9c };

	put_be64(cdb + 2, lba);
	put_be16(cdb + 10, boundary);
	put_be16(cdb + 12, nb);
	return h_run_edtl(h, 0, lun, cdb, 16, edtl, d, edtl);
}

/* REPORT SUPPORTED OPERATION CODES, one command (reporting options 001b): SUPPORT. */
static uint8_t
rsoc_support(struct h *h, uint32_t lun, uint8_t opcode)
{
	uint8_t cdb[12] = { 0xa3, 0x0c, 0x01, opcode, 0, 0, 0, 0, 0, 64, 0, 0 };
	struct h_res *res = h_run(h, 0, lun, cdb, 12, NULL, 0);

	assert_int_equal(res->status, ISD_SAM_GOOD);
	return res->data[1] & 0x07;
}

/* SBC-4 5.48: within the Block Limits atomic fields, all of the data or none. */
static void
test_write_atomic(void **state)
{
	char path[] = "/tmp/isd_sbc_XXXXXX";
	static uint8_t d[16 * H_BS], z[16 * H_BS];
	struct h_res *res;
	struct h h;

	(void)state;
	h_init(&h);
	h_add_ram_lu(&h, 0, true, false);
	h_clear_ua(&h, 0);
	assert_int_equal(add_phys_lu(&h, 2, 4096), 0);
	fill(d, sizeof(d), 3);
	/* 1 block anywhere on a LU whose physical block is its logical one */
	assert_good(write_atomic(&h, 0, 7, 1, 0, H_BS, d));
	res = h_rw10(&h, 0, 0, 0x28, 7, 1, NULL, 0);
	assert_memory_equal(res->data, d, H_BS);
	assert_good(write_atomic(&h, 0, H_BLOCKS, 0, 0, 0, NULL));
	/* physical blocks of 8: aligned multiples of 8 only */
	assert_good(write_atomic(&h, 2, 8, 16, 0, 16 * H_BS, d));
	res = h_rw10(&h, 0, 2, 0x28, 8, 16, NULL, 0);
	assert_memory_equal(res->data, d, 16 * H_BS);
	assert_sense(write_atomic(&h, 2, 1, 8, 0, 8 * H_BS, d), ISD_SK_ILLEGAL_REQUEST, 0x24, 0);
	assert_int_equal(get_be16(g_res.sense + 16), 2);            /* field: the LBA */
	assert_sense(write_atomic(&h, 2, 0, 1, 0, H_BS, d), ISD_SK_ILLEGAL_REQUEST, 0x24, 0);
	assert_int_equal(get_be16(g_res.sense + 16), 12);           /* the length */
	/* range before the limits (libiscsi WriteAtomic16.BeyondEol) */
	assert_sense(write_atomic(&h, 2, H_BLOCKS - 8, 16, 0, 16 * H_BS, d),
		     ISD_SK_ILLEGAL_REQUEST, 0x21, 0);
	assert_sense(write_atomic(&h, 2, UINT64_MAX - 7, 8, 0, 8 * H_BS, d),
		     ISD_SK_ILLEGAL_REQUEST, 0x21, 0);
	/* an ATOMIC BOUNDARY with MAXIMUM ATOMIC BOUNDARY SIZE 0 */
	assert_sense(write_atomic(&h, 0, 0, 2, 1, 2 * H_BS, d), ISD_SK_ILLEGAL_REQUEST, 0x24, 0);
	/* past the end AND over MAXIMUM ATOMIC TRANSFER LENGTH: the range is checked first */
	assert_sense(write_atomic(&h, 0, 0, 0xffff, 0, 0, NULL), ISD_SK_ILLEGAL_REQUEST, 0x21, 0);
	/* over it on a LU big enough: 32 MiB, 65536 blocks */
	assert_int_equal(add_ram_lu_spec(&h, 3, "ram:32M", 0), 0);
	assert_sense(write_atomic(&h, 3, 0, 0xffff, 0, 0, NULL), ISD_SK_ILLEGAL_REQUEST, 0x24, 0);
	assert_int_equal(get_be16(g_res.sense + 16), 12);
	/* a short data-out stores nothing, not even its whole blocks */
	memset(z, 0, sizeof(z));
	assert_good(h_rw10(&h, 0, 2, 0x2a, 32, 16, z, sizeof(z)));
	assert_sense(write_atomic(&h, 2, 32, 16, 0, 12 * H_BS, d), ISD_SK_ILLEGAL_REQUEST, 0x24, 0);
	res = h_rw10(&h, 0, 2, 0x28, 32, 16, NULL, 0);
	assert_memory_equal(res->data, z, sizeof(z));
	/* WRPROTECT */
	{
		uint8_t cdb[16] = { 0x9c, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1 };

		assert_sense(h_run_edtl(&h, 0, 0, cdb, 16, H_BS, d, H_BS), ISD_SK_ILLEGAL_REQUEST,
			     0x24, 0);
	}
	/* a file store does not write atomically: no WRITE ATOMIC, limits 0 */
	add_file_lu(&h, path);
	assert_int_equal(rsoc_support(&h, 0, 0x9c), 3);
	assert_int_equal(rsoc_support(&h, 1, 0x9c), 1);
	assert_int_equal(rsoc_support(&h, 1, 0x8b), 3);
	assert_sense(write_atomic(&h, 1, 0, 1, 0, H_BS, d), ISD_SK_ILLEGAL_REQUEST, 0x20, 0);
	res = inquiry_b0(&h, 1);
	assert_int_equal(get_be32(res->data + 44), 0);
	assert_int_equal(get_be32(res->data + 48), 0);
	assert_int_equal(get_be32(res->data + 52), 0);
	h_fini(&h);
	unlink(path);
}

/* ---- PRE-FETCH, READ DEFECT DATA ---- */

static void
test_prefetch_defects(void **state)
{
	uint8_t pf10[10] = { 0x34, 0x02, 0, 0, 0, 0, 0, 0, 8, 0 };
	uint8_t rdd10[10] = { 0x37, 0, 0x1d, 0, 0, 0, 0, 0, 64, 0 };
	uint8_t rdd12[12] = { 0xb7, 0x0b, 0, 0, 0, 0, 0, 0, 0, 64, 0, 0 };
	struct h_res *res;
	struct h h;

	(void)state;
	setup(&h, false, false);
	/* no cache to load: GOOD, not CONDITION MET, IMMED or not */
	res = h_run(&h, 0, 0, pf10, 10, NULL, 0);
	assert_int_equal(res->status, ISD_SAM_GOOD);
	assert_int_equal(res->xfer_len, 0);
	/* empty lists, PLISTV/GLISTV and the format as asked */
	res = h_run(&h, 0, 0, rdd10, 10, NULL, 0);
	assert_int_equal(res->status, ISD_SAM_GOOD);
	assert_int_equal(res->len, 4);
	assert_int_equal(res->data[1], 0x1d);
	assert_int_equal(get_be16(res->data + 2), 0);
	res = h_run(&h, 0, 0, rdd12, 12, NULL, 0);
	assert_int_equal(res->status, ISD_SAM_GOOD);
	assert_int_equal(res->len, 8);
	assert_int_equal(res->data[1], 0x0b);
	assert_int_equal(get_be32(res->data + 4), 0);
	/* allocation length 2: the header cut short */
	rdd10[8] = 2;
	res = h_run(&h, 0, 0, rdd10, 10, NULL, 0);
	assert_int_equal(res->len, 2);
	h_fini(&h);
}

/* ---- the write gate (file stores) ---- */

struct gcmd {
	struct isd_scsi_cmd cmd;
	uint8_t cdb[16];
	int done;
	int order;              /* completion rank */
};

static int g_rank;

static void
gcmd_done(struct isd_scsi_cmd *cmd)
{
	struct gcmd *g = cmd->cb_arg;

	g->done++;
	g->order = ++g_rank;
}

/* Sets up a command on lun and puts its data-out in place (unless data is
 * NULL), as a transport would. */
static void
gcmd_setup_lun(struct h *h, struct gcmd *g, uint32_t lun, const uint8_t *cdb, const void *data,
	       uint32_t len)
{
	memset(g, 0, sizeof(*g));
	memcpy(g->cdb, cdb, 16);
	g->cmd.dev = h->dev;
	g->cmd.nexus = &h->nx[0];
	g->cmd.lun = isd_scsi_lun_encode(lun);
	g->cmd.cdb = g->cdb;
	g->cmd.cdb_len = 16;
	g->cmd.edtl = len;
	g->cmd.done = gcmd_done;
	g->cmd.cb_arg = g;
	assert_int_equal(isd_scsi_cmd_setup(&g->cmd), ISD_SCSI_SETUP_READY);
	if (data != NULL)
		memcpy(g->cmd.iov[0].iov_base, data, len);
}

static void
gcmd_setup(struct h *h, struct gcmd *g, const uint8_t *cdb, const void *data, uint32_t len)
{
	gcmd_setup_lun(h, g, 1, cdb, data, len);
}

/* Turns the reactor until g is done (or a while has passed). */
static void
gcmd_wait_one(struct h *h, struct gcmd *g)
{
	for (int i = 0; i < 1000 && g->done == 0; i++)
		assert_int_equal(isd_reactor_poll(h->r, 10), 0);
	assert_int_equal(g->done, 1);
}

/* Turns the reactor a few times without waiting. */
static void
spin(struct h *h)
{
	for (int i = 0; i < 20; i++)
		assert_int_equal(isd_reactor_poll(h->r, 0), 0);
}

static void
gcmd_wait(struct h *h, struct gcmd *a, struct gcmd *b)
{
	for (int i = 0; i < 1000 && (a->done == 0 || b->done == 0); i++)
		assert_int_equal(isd_reactor_poll(h->r, 10), 0);
	assert_int_equal(a->done, 1);
	assert_int_equal(b->done, 1);
	assert_int_equal(a->cmd.status, ISD_SAM_GOOD);
	assert_int_equal(b->cmd.status, ISD_SAM_GOOD);
	isd_scsi_cmd_release(&a->cmd);
	isd_scsi_cmd_release(&b->cmd);
}

/*
 * A file store reads before it writes: a WRITE to the same block that comes
 * while a COMPARE AND WRITE or ORWRITE reads waits until that has written, and
 * one that is under way when they come keeps them waiting until it is stored.
 */
static void
test_rmw_write_gate(void **state)
{
	char path[] = "/tmp/isd_sbc_XXXXXX";
	uint8_t caw[16] = { 0x89, 0, 0, 0, 0, 0, 0, 0, 0, 50, 0, 0, 0, 1 };
	uint8_t orw[16] = { 0x8b, 0, 0, 0, 0, 0, 0, 0, 0, 50, 0, 0, 0, 1 };
	uint8_t wr[16] = { 0x8a, 0, 0, 0, 0, 0, 0, 0, 0, 50, 0, 0, 0, 1 };
	uint8_t cw[2 * H_BS], a[H_BS], b[H_BS], want[H_BS];
	struct gcmd g1, g2;
	struct h_res *res;
	struct h h;

	(void)state;
	setup(&h, false, false);
	add_file_lu(&h, path);
	/* COMPARE AND WRITE (zeros -> 0x11) reading, then a WRITE of 0x22 */
	memset(cw, 0, H_BS);
	memset(cw + H_BS, 0x11, H_BS);
	memset(a, 0x22, sizeof(a));
	gcmd_setup(&h, &g1, caw, cw, sizeof(cw));
	gcmd_setup(&h, &g2, wr, a, sizeof(a));
	isd_scsi_cmd_exec(&g1.cmd);
	isd_scsi_cmd_exec(&g2.cmd);
	assert_int_equal(g1.done + g2.done, 0);
	gcmd_wait(&h, &g1, &g2);
	assert_true(g1.order < g2.order);
	res = h_rw10(&h, 0, 1, 0x28, 50, 1, NULL, 0);
	assert_memory_equal(res->data, a, H_BS);
	/* a WRITE of 0x0f under way, then an ORWRITE of 0xf0: waits, then ORs into 0x0f */
	memset(a, 0x0f, sizeof(a));
	memset(b, 0xf0, sizeof(b));
	gcmd_setup(&h, &g1, wr, a, sizeof(a));
	gcmd_setup(&h, &g2, orw, b, sizeof(b));
	isd_scsi_cmd_exec(&g1.cmd);
	isd_scsi_cmd_exec(&g2.cmd);
	gcmd_wait(&h, &g1, &g2);
	assert_true(g1.order < g2.order);
	memset(want, 0xff, sizeof(want));
	res = h_rw10(&h, 0, 1, 0x28, 50, 1, NULL, 0);
	assert_memory_equal(res->data, want, H_BS);
	/* a queued WRITE that is cancelled while it waits stores nothing */
	memset(cw, 0xff, H_BS);
	memset(cw + H_BS, 0x33, H_BS);
	gcmd_setup(&h, &g1, caw, cw, sizeof(cw));
	gcmd_setup(&h, &g2, wr, a, sizeof(a));
	isd_scsi_cmd_exec(&g1.cmd);
	isd_scsi_cmd_exec(&g2.cmd);
	isd_scsi_cmd_cancel(&g2.cmd);
	for (int i = 0; i < 1000 && (g1.done == 0 || g2.done == 0); i++)
		assert_int_equal(isd_reactor_poll(h.r, 10), 0);
	assert_int_equal(g1.cmd.status, ISD_SAM_GOOD);
	assert_int_equal(g2.done, 1);
	assert_int_equal(g2.cmd.status, ISD_SAM_TASK_ABORTED);
	isd_scsi_cmd_release(&g1.cmd);
	isd_scsi_cmd_release(&g2.cmd);
	memset(want, 0x33, sizeof(want));
	res = h_rw10(&h, 0, 1, 0x28, 50, 1, NULL, 0);
	assert_memory_equal(res->data, want, H_BS);
	h_fini(&h);
	unlink(path);
}

/*
 * A RAM store: a WRITE whose data-out lands straight in the LU's memory (the
 * adapter's RDMA Reads, iSER) holds the gate from
 * setup until its data is in (its completion), or until its release when it
 * never ran. A COMPARE AND WRITE or a WRITE ATOMIC waits until no such
 * write is under way, so none of their data lands between its compare and its
 * write; a WRITE set up while one waits is staged instead, and so cannot hold
 * it off for ever.
 */
static void
test_ram_rmw_waits_for_direct_writes(void **state)
{
	uint8_t caw[16] = { 0x89, 0, 0, 0, 0, 0, 0, 0, 0, 60, 0, 0, 0, 1 };
	uint8_t wat[16] = { 0x9c, 0, 0, 0, 0, 0, 0, 0, 0, 60, 0, 0, 0, 1, 0, 0 };
	uint8_t wr[16] = { 0x8a, 0, 0, 0, 0, 0, 0, 0, 0, 60, 0, 0, 0, 1 };
	uint8_t cw[2 * H_BS], a[H_BS], b[H_BS], c[H_BS];
	struct gcmd w1, w2, rmw;
	struct h_res *res;
	struct h h;

	(void)state;
	setup(&h, false, false);
	memset(a, 0x22, sizeof(a));
	memset(b, 0x44, sizeof(b));
	memset(c, 0x55, sizeof(c));

	/* a zero-copy WRITE of 0x22 set up; its data has not come yet */
	gcmd_setup_lun(&h, &w1, 0, wr, NULL, H_BS);
	assert_true(w1.cmd.data_out_direct);
	/* COMPARE AND WRITE 0x22 -> 0x33: waits for that write */
	memset(cw, 0x22, H_BS);
	memset(cw + H_BS, 0x33, H_BS);
	gcmd_setup_lun(&h, &rmw, 0, caw, cw, sizeof(cw));
	isd_scsi_cmd_exec(&rmw.cmd);
	spin(&h);
	assert_int_equal(rmw.done, 0);
	/* a WRITE of 0x44 set up while it waits is staged: nothing of it lands yet */
	gcmd_setup_lun(&h, &w2, 0, wr, b, H_BS);
	assert_false(w2.cmd.data_out_direct);
	/* the first write's data lands: still nothing */
	memcpy(w1.cmd.iov[0].iov_base, a, H_BS);
	spin(&h);
	assert_int_equal(rmw.done, 0);
	/* it completes (its response need not have gone yet): the CAW goes on */
	isd_scsi_cmd_exec(&w1.cmd);
	gcmd_wait_one(&h, &w1);
	gcmd_wait_one(&h, &rmw);
	assert_true(w1.order < rmw.order);
	isd_scsi_cmd_release(&w1.cmd);
	assert_int_equal(rmw.cmd.status, ISD_SAM_GOOD);       /* compared with 0x22 */
	isd_scsi_cmd_release(&rmw.cmd);
	res = h_rw10(&h, 0, 0, 0x28, 60, 1, NULL, 0);
	memset(c, 0x33, sizeof(c));
	assert_memory_equal(res->data, c, H_BS);
	/* the staged write lands at its exec */
	isd_scsi_cmd_exec(&w2.cmd);
	gcmd_wait_one(&h, &w2);
	isd_scsi_cmd_release(&w2.cmd);
	res = h_rw10(&h, 0, 0, 0x28, 60, 1, NULL, 0);
	assert_memory_equal(res->data, b, H_BS);

	/* WRITE ATOMIC waits too; a zero-copy write given up by its transport
	 * (released, never run) lets it in */
	gcmd_setup_lun(&h, &w1, 0, wr, NULL, H_BS);
	assert_true(w1.cmd.data_out_direct);
	memset(c, 0x55, sizeof(c));
	gcmd_setup_lun(&h, &rmw, 0, wat, c, H_BS);
	isd_scsi_cmd_exec(&rmw.cmd);
	spin(&h);
	assert_int_equal(rmw.done, 0);
	isd_scsi_cmd_release(&w1.cmd);
	gcmd_wait_one(&h, &rmw);
	assert_int_equal(rmw.cmd.status, ISD_SAM_GOOD);
	isd_scsi_cmd_release(&rmw.cmd);
	res = h_rw10(&h, 0, 0, 0x28, 60, 1, NULL, 0);
	assert_memory_equal(res->data, c, H_BS);

	/* nothing waits any more: the next WRITE is zero copy again */
	gcmd_setup_lun(&h, &w1, 0, wr, NULL, H_BS);
	assert_true(w1.cmd.data_out_direct);
	isd_scsi_cmd_release(&w1.cmd);
	h_fini(&h);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ram_io_zero_copy),
		cmocka_unit_test(test_ram_write_direct),
		cmocka_unit_test(test_file_io),
		cmocka_unit_test(test_write_short_edtl),
		cmocka_unit_test(test_verify_and_miscompare),
		cmocka_unit_test(test_compare_and_write),
		cmocka_unit_test(test_write_same),
		cmocka_unit_test(test_orwrite),
		cmocka_unit_test(test_rmw_write_gate),
		cmocka_unit_test(test_ram_rmw_waits_for_direct_writes),
		cmocka_unit_test(test_physical_block_check),
		cmocka_unit_test(test_physical_block),
		cmocka_unit_test(test_write_atomic),
		cmocka_unit_test(test_prefetch_defects),
		cmocka_unit_test(test_unmap_param_list),
		cmocka_unit_test(test_capacity),
		cmocka_unit_test(test_read_only),
		cmocka_unit_test(test_abort),
		cmocka_unit_test(test_sanitize_checks),
		cmocka_unit_test(test_sanitize_overwrite),
		cmocka_unit_test(test_sanitize_immed_block_erase),
		cmocka_unit_test(test_sanitize_cancel_waiter),
		cmocka_unit_test(test_sanitize_stopped_by_destroy),
		cmocka_unit_test(test_buf_ops),
	};

	return cmocka_run_group_tests_name("scsi_sbc", tests, NULL, NULL);
}
