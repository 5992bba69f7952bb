/* Backing stores: size parsing, spec errors, RAM and file (io_uring) round trips. */
#include <errno.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <cmocka.h>

#include "bstore/bstore.h"
#include "bstore/bstore_int.h"
#include "loopdev.h"
#include "reactor/reactor.h"
#include "util/mem.h"

struct io_state {
	int calls;
	int status;
};

static void
io_cb(void *arg, int status)
{
	struct io_state *st = arg;

	st->calls++;
	st->status = status;
}

/* Polls until the callback ran; fails the test after a generous bound. */
static void
wait_io(struct isd_reactor *r, struct io_state *st)
{
	for (int i = 0; i < 10000 && st->calls == 0; i++)
		assert_int_equal(isd_reactor_poll(r, 10), 0);
	assert_int_equal(st->calls, 1);
}

static void
test_parse_size_table(void **state)
{
	static const struct {
		const char *s;
		int rc;
		uint64_t v;
	} rows[] = {
		{ "0", 0, 0 },
		{ "512", 0, 512 },
		{ "4K", 0, 4096 },
		{ "4k", 0, 4096 },
		{ "1M", 0, 1u << 20 },
		{ "1G", 0, 1ull << 30 },
		{ "1GiB", 0, 1ull << 30 },
		{ "2T", 0, 2ull << 40 },
		{ "16777215T", 0, 16777215ull << 40 },
		{ "16777216T", -EINVAL, 0 },    /* 2^64: overflow */
		{ "18446744073709551615", 0, UINT64_MAX },
		{ "18446744073709551616", -EINVAL, 0 },
		{ "", -EINVAL, 0 },
		{ "G", -EINVAL, 0 },
		{ "-1", -EINVAL, 0 },
		{ "1X", -EINVAL, 0 },
		{ "1GG", -EINVAL, 0 },
		{ " 1", -EINVAL, 0 },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		uint64_t v = 12345;

		assert_int_equal(isd_parse_size(rows[i].s, &v), rows[i].rc);
		if (rows[i].rc == 0)
			assert_true(v == rows[i].v);
	}
	assert_int_equal(isd_parse_size(NULL, NULL), -EINVAL);
}

static void
test_open_rejects_bad_specs(void **state)
{
	static const char *bad[] = {
		"ram:", "ram:0", "ram:abc", "disk:/tmp/x", "file:", "file:/nonexistent/dir/x",
		"file:/tmp/x,size=", "file:/tmp/x,bogus", "dev:/dev/null", "", "ram",
	};
	struct isd_reactor *r;
	struct isd_bstore *bs;
	char err[256];

	(void)state;
	assert_int_equal(isd_reactor_create(&r), 0);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		assert_true(isd_bstore_open(r, bad[i], &bs, err, sizeof(err)) < 0);
		assert_true(err[0] != '\0');
	}
	assert_true(isd_bstore_open(r, NULL, &bs, NULL, 0) < 0);
	assert_true(isd_bstore_open(NULL, "ram:1M", &bs, err, sizeof(err)) < 0);
	isd_reactor_destroy(r);
}

/* Write, read back, flush, discard, read zeros: the same for every kind of store. */
static void
roundtrip(struct isd_reactor *r, struct isd_bstore *bs)
{
	struct io_state st = { 0 };
	uint8_t a[8192], b[8192];
	struct iovec iov[3];

	for (size_t i = 0; i < sizeof(a); i++)
		a[i] = (uint8_t)(i * 7 + 3);
	/* Three entries, one of them empty, over 8 KiB at offset 4096. */
	iov[0].iov_base = a;
	iov[0].iov_len = 1000;
	iov[1].iov_base = a + 1000;
	iov[1].iov_len = 0;
	iov[2].iov_base = a + 1000;
	iov[2].iov_len = sizeof(a) - 1000;
	assert_int_equal(isd_bstore_write(bs, iov, 3, 4096, false, io_cb, &st), 0);
	assert_int_equal(st.calls, 0);  /* never inside the call */
	wait_io(r, &st);
	assert_int_equal(st.status, 0);

	memset(b, 0, sizeof(b));
	iov[0].iov_base = b;
	iov[0].iov_len = sizeof(b);
	st.calls = 0;
	assert_int_equal(isd_bstore_read(bs, iov, 1, 4096, io_cb, &st), 0);
	assert_int_equal(st.calls, 0);
	wait_io(r, &st);
	assert_int_equal(st.status, 0);
	assert_memory_equal(a, b, sizeof(a));

	/* FUA write of one block */
	memset(a, 0x5a, 512);
	iov[0].iov_base = a;
	iov[0].iov_len = 512;
	st.calls = 0;
	assert_int_equal(isd_bstore_write(bs, iov, 1, 0, true, io_cb, &st), 0);
	wait_io(r, &st);
	assert_int_equal(st.status, 0);

	st.calls = 0;
	assert_int_equal(bs->ops->flush(bs, io_cb, &st), 0);
	assert_int_equal(st.calls, 0);
	wait_io(r, &st);
	assert_int_equal(st.status, 0);

	/* Discard a page-aligned range and a ragged one: both read back as zeros. */
	st.calls = 0;
	assert_int_equal(bs->ops->discard(bs, 4096, 4096, io_cb, &st), 0);
	wait_io(r, &st);
	assert_int_equal(st.status, 0);
	st.calls = 0;
	assert_int_equal(bs->ops->discard(bs, 8192 + 100, 300, io_cb, &st), 0);
	wait_io(r, &st);
	assert_int_equal(st.status, 0);

	memset(b, 0xff, sizeof(b));
	iov[0].iov_base = b;
	iov[0].iov_len = sizeof(b);
	st.calls = 0;
	assert_int_equal(isd_bstore_read(bs, iov, 1, 4096, io_cb, &st), 0);
	wait_io(r, &st);
	for (size_t i = 0; i < 4096 + 400; i++) {
		if (i >= 4096 && i < 4096 + 100)
			continue;
		assert_int_equal(b[i], 0);
	}
	/* the bytes between the two discards kept their data */
	for (size_t i = 4096; i < 4096 + 100; i++)
		assert_int_equal(b[i], (uint8_t)((i + 4096) * 7 + 3));

	/* Out of range I/O is refused at submission, and its callback never runs. */
	st.calls = 0;
	assert_int_equal(isd_bstore_read(bs, iov, 1, bs->size - 10, io_cb, &st), -EINVAL);
	assert_int_equal(bs->ops->discard(bs, bs->size, 1, io_cb, &st), -EINVAL);
	assert_int_equal(isd_reactor_poll(r, 0), 0);
	assert_int_equal(st.calls, 0);
}

static void
test_ram_roundtrip(void **state)
{
	struct isd_reactor *r;
	struct isd_bstore *bs;
	char err[256];

	(void)state;
	assert_int_equal(isd_reactor_create(&r), 0);
	assert_int_equal(isd_bstore_open(r, "ram:1M", &bs, err, sizeof(err)), 0);
	assert_true(bs->size == 1u << 20);
	assert_non_null(bs->mem_base);
	assert_true(bs->can_discard);
	assert_true(bs->discard_zeroes);
	roundtrip(r, bs);
	isd_bstore_close(bs);
	isd_reactor_destroy(r);
}

static void
test_file_roundtrip(void **state)
{
	char path[] = "/tmp/isd_bstore_XXXXXX";
	char spec[128], err[256];
	struct isd_reactor *r;
	struct isd_bstore *bs, *bs2;
	struct stat st;
	int fd;

	(void)state;
	fd = mkstemp(path);
	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(isd_reactor_create(&r), 0);
	/* An empty file without size= is refused with a reason. */
	snprintf(spec, sizeof(spec), "file:%s", path);
	assert_int_equal(isd_bstore_open(r, spec, &bs, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "size="));
	snprintf(spec, sizeof(spec), "file:%s,size=1M", path);
	assert_int_equal(isd_bstore_open(r, spec, &bs, err, sizeof(err)), 0);
	assert_true(bs->size == 1u << 20);
	assert_null(bs->mem_base);
	assert_int_equal(stat(path, &st), 0);
	assert_true(st.st_size == 1 << 20);
	/* A second store on the same reactor shares its ring. */
	snprintf(spec, sizeof(spec), "file:%s,ro", path);
	assert_int_equal(isd_bstore_open(r, spec, &bs2, err, sizeof(err)), 0);
	assert_true(bs2->read_only);
	roundtrip(r, bs);
	{
		struct io_state io = { 0 };
		uint8_t b[512];
		struct iovec iov = { b, sizeof(b) };

		/* the read-only twin sees the data and refuses writes */
		assert_int_equal(isd_bstore_read(bs2, &iov, 1, 0, io_cb, &io), 0);
		wait_io(r, &io);
		assert_int_equal(io.status, 0);
		assert_int_equal(b[0], 0x5a);
		assert_int_equal(isd_bstore_write(bs2, &iov, 1, 0, false, io_cb, &io), -EROFS);
	}
	isd_bstore_close(bs2);
	isd_bstore_close(bs);
	isd_reactor_destroy(r);
	unlink(path);
}

/*
 * A file on tmpfs: read and written by the reactor at the end of its turn
 * (io_uring would hand each request to a worker there), with the same
 * contract: never inside the call, the same results, and a file shorter than
 * its LU reads as zeros past its end.
 */
static void
test_memfs_file(void **state)
{
	char path[] = "/dev/shm/isd_bstore_XXXXXX";
	char spec[160], err[256];
	struct isd_reactor *r;
	struct isd_bstore *bs;
	struct statfs sfs;
	int fd;

	(void)state;
	if (statfs("/dev/shm", &sfs) != 0 || sfs.f_type != TMPFS_MAGIC) {
		print_message("no tmpfs at /dev/shm: skipped\n");
		skip();
	}
	fd = mkstemp(path);
	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(isd_reactor_create(&r), 0);
	snprintf(spec, sizeof(spec), "file:%s,size=1M", path);
	assert_int_equal(isd_bstore_open(r, spec, &bs, err, sizeof(err)), 0);
	roundtrip(r, bs);
	isd_bstore_close(bs);
	/* shorter than its LU: 6000 bytes of data, the LU opened read-only at 1 MiB */
	assert_int_equal(truncate(path, 6000), 0);
	snprintf(spec, sizeof(spec), "file:%s,size=1M,ro", path);
	assert_int_equal(isd_bstore_open(r, spec, &bs, err, sizeof(err)), 0);
	{
		struct io_state io = { 0 };
		uint8_t b[8192];
		struct iovec iov = { b, sizeof(b) };

		memset(b, 0xee, sizeof(b));
		assert_int_equal(isd_bstore_read(bs, &iov, 1, 4096, io_cb, &io), 0);
		assert_int_equal(io.calls, 0);
		wait_io(r, &io);
		assert_int_equal(io.status, 0);
		for (size_t i = 6000 - 4096; i < sizeof(b); i++)
			assert_int_equal(b[i], 0);
		/* queued and then closed with the store: dropped, never called */
		io.calls = 0;
		assert_int_equal(isd_bstore_read(bs, &iov, 1, 0, io_cb, &io), 0);
		isd_bstore_close(bs);
		assert_int_equal(isd_reactor_poll(r, 0), 0);
		assert_int_equal(io.calls, 0);
	}
	isd_reactor_destroy(r);
	unlink(path);
}

/* Many requests at once: more than the submission queue holds. */
static void
test_file_many_inflight(void **state)
{
	char path[] = "/tmp/isd_bstore_XXXXXX";
	char spec[128], err[256];
	struct isd_reactor *r;
	struct isd_bstore *bs;
	enum { N = 600 };
	static uint8_t bufs[N][512];
	struct io_state st[N];
	int fd, done;

	(void)state;
	fd = mkstemp(path);
	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(isd_reactor_create(&r), 0);
	snprintf(spec, sizeof(spec), "file:%s,size=1M", path);
	assert_int_equal(isd_bstore_open(r, spec, &bs, err, sizeof(err)), 0);
	memset(st, 0, sizeof(st));
	for (int i = 0; i < N; i++) {
		struct iovec iov = { bufs[i], 512 };

		memset(bufs[i], i & 0xff, 512);
		assert_int_equal(isd_bstore_write(bs, &iov, 1, (uint64_t)i * 512, false, io_cb,
						  &st[i]), 0);
	}
	for (int k = 0; k < 10000; k++) {
		done = 0;
		for (int i = 0; i < N; i++)
			done += st[i].calls;
		if (done == N)
			break;
		assert_int_equal(isd_reactor_poll(r, 10), 0);
	}
	for (int i = 0; i < N; i++) {
		assert_int_equal(st[i].calls, 1);
		assert_int_equal(st[i].status, 0);
	}
	isd_bstore_close(bs);
	isd_reactor_destroy(r);
	fd = open(path, O_RDONLY);
	assert_true(fd >= 0);
	for (int i = 0; i < N; i += 97) {
		uint8_t b[512];

		assert_int_equal(pread(fd, b, 512, (off_t)i * 512), 512);
		assert_int_equal(b[0], i & 0xff);
		assert_int_equal(b[511], i & 0xff);
	}
	close(fd);
	unlink(path);
}

/* One request, waited for; its status. */
static int
rw(struct isd_reactor *r, struct isd_bstore *bs, bool write, void *buf, size_t len, uint64_t off)
{
	struct io_state st = { 0 };
	struct iovec iov = { buf, len };
	int rc;

	rc = write ? isd_bstore_write(bs, &iov, 1, off, false, io_cb, &st)
		   : isd_bstore_read(bs, &iov, 1, off, io_cb, &st);
	if (rc < 0)
		return rc;
	wait_io(r, &st);
	return st.status;
}

/*
 * dev: on a real block device (a loop device over a file) opens with
 * O_DIRECT: aligned buffers go to the device as they are, unaligned ones
 * (ragged iovecs, an odd address) through a bounce buffer, both landing on
 * the device (the loop's backing file has them); an offset inside a logical
 * block is refused at submission. On a 4 KiB-sector device a 512-byte write
 * is refused, and ,buffered takes it through the page cache.
 */
static void
test_dev_direct(void **state)
{
	struct isd_test_loop lo;
	struct isd_reactor *r;
	struct isd_bstore *bs;
	struct io_state st = { 0 };
	char spec[64], err[256], why[256];
	uint8_t *a, *b, raw[8192 + 64], back[8192];
	struct iovec iov[3];
	uint64_t b0;

	(void)state;
	if (isd_test_loop_setup(&lo, 4u << 20, 512, why, sizeof(why)) < 0) {
		print_message("no loop device (%s): skipped\n", why);
		skip();
	}
	assert_int_equal(isd_reactor_create(&r), 0);
	snprintf(spec, sizeof(spec), "dev:%s", lo.dev);
	assert_int_equal(isd_bstore_open(r, spec, &bs, err, sizeof(err)), 0);
	assert_int_equal(bs->min_block, 512);
	assert_true(bs->mem_align >= 1 && bs->mem_align <= 4096);
	assert_true(bs->size == 4u << 20);

	/* aligned: no bounce, and the data is on the device */
	a = isd_mem_alloc_aligned(8192, bs->mem_align);
	b = isd_mem_alloc_aligned(8192, bs->mem_align);
	for (size_t i = 0; i < 8192; i++)
		a[i] = (uint8_t)(i * 13 + 1);
	b0 = isd_bstore_direct_bounces();
	assert_int_equal(rw(r, bs, true, a, 8192, 4096), 0);
	memset(b, 0, 8192);
	assert_int_equal(rw(r, bs, false, b, 8192, 4096), 0);
	assert_memory_equal(a, b, 8192);
	assert_true(isd_bstore_direct_bounces() == b0);
	assert_int_equal(pread(lo.file_fd, back, 8192, 4096), 8192);
	assert_memory_equal(a, back, 8192);

	/* ragged iovecs at an odd address: bounced, same result */
	for (size_t i = 0; i < 8192; i++)
		raw[1 + i] = (uint8_t)(i * 5 + 7);
	iov[0].iov_base = raw + 1;
	iov[0].iov_len = 1000;
	iov[1].iov_base = raw + 1001;
	iov[1].iov_len = 0;
	iov[2].iov_base = raw + 1001;
	iov[2].iov_len = 8192 - 1000;
	assert_int_equal(isd_bstore_write(bs, iov, 3, 65536, true, io_cb, &st), 0);
	wait_io(r, &st);
	assert_int_equal(st.status, 0);
	assert_true(isd_bstore_direct_bounces() == b0 + 1);
	assert_int_equal(pread(lo.file_fd, back, 8192, 65536), 8192);
	assert_memory_equal(raw + 1, back, 8192);
	memset(raw, 0, sizeof(raw));
	iov[0].iov_base = raw + 3;
	iov[0].iov_len = 8192;
	st.calls = 0;
	assert_int_equal(isd_bstore_read(bs, iov, 1, 65536, io_cb, &st), 0);
	wait_io(r, &st);
	assert_int_equal(st.status, 0);
	assert_memory_equal(raw + 3, back, 8192);
	assert_true(isd_bstore_direct_bounces() == b0 + 2);

	/* inside a logical block: refused at submission, no callback */
	st.calls = 0;
	assert_int_equal(rw(r, bs, false, b, 512, 100), -EINVAL);
	assert_int_equal(rw(r, bs, false, b, 100, 0), -EINVAL);
	assert_int_equal(isd_reactor_poll(r, 0), 0);

	st.calls = 0;
	assert_int_equal(bs->ops->flush(bs, io_cb, &st), 0);
	wait_io(r, &st);
	assert_int_equal(st.status, 0);
	isd_bstore_close(bs);

	/* ,buffered: no alignment asked */
	snprintf(spec, sizeof(spec), "dev:%s,buffered", lo.dev);
	assert_int_equal(isd_bstore_open(r, spec, &bs, err, sizeof(err)), 0);
	assert_int_equal(bs->min_block, 1);
	assert_int_equal(rw(r, bs, false, raw + 1, 8192, 65536), 0);
	assert_memory_equal(raw + 1, back, 8192);
	isd_bstore_close(bs);
	isd_test_loop_teardown(&lo);

	/* a 4 KiB-sector device */
	if (isd_test_loop_setup(&lo, 4u << 20, 4096, why, sizeof(why)) < 0)
		fail_msg("a second loop device: %s", why);
	snprintf(spec, sizeof(spec), "dev:%s", lo.dev);
	assert_int_equal(isd_bstore_open(r, spec, &bs, err, sizeof(err)), 0);
	assert_int_equal(bs->min_block, 4096);
	assert_int_equal(rw(r, bs, true, a, 512, 0), -EINVAL);
	assert_int_equal(rw(r, bs, true, a, 4096, 0), 0);
	isd_bstore_close(bs);
	snprintf(spec, sizeof(spec), "dev:%s,buffered", lo.dev);
	assert_int_equal(isd_bstore_open(r, spec, &bs, err, sizeof(err)), 0);
	assert_int_equal(rw(r, bs, true, a + 512, 512, 512), 0);
	assert_int_equal(rw(r, bs, false, b, 4096, 0), 0);
	assert_memory_equal(b, a, 4096);
	isd_bstore_close(bs);
	isd_test_loop_teardown(&lo);
	isd_mem_free(a);
	isd_mem_free(b);
	isd_reactor_destroy(r);
}

/* file: takes ,direct; the canonical spec keeps an I/O mode only when it is not the default. */
static void
test_io_mode_specs(void **state)
{
	struct isd_bstore_spec *sp = malloc(sizeof(*sp));
	char why[256];

	(void)state;
	assert_non_null(sp);
	assert_int_equal(isd_bstore_spec_parse("file:/x,size=1M,direct", sp, why, sizeof(why)), 0);
	assert_string_equal(sp->canon, "file:/x,size=1M,direct");
	assert_int_equal(isd_bstore_spec_parse("file:/x,buffered", sp, why, sizeof(why)), 0);
	assert_string_equal(sp->canon, "file:/x");
	assert_int_equal(isd_bstore_spec_parse("dev:/dev/sdb,direct", sp, why, sizeof(why)), 0);
	assert_string_equal(sp->canon, "dev:/dev/sdb");
	assert_int_equal(isd_bstore_spec_parse("dev:/dev/sdb,buffered,ro", sp, why, sizeof(why)), 0);
	assert_string_equal(sp->canon, "dev:/dev/sdb,buffered");
	assert_true(sp->read_only);
	assert_int_equal(isd_bstore_spec_parse("dev:/dev/sdb,fast", sp, why, sizeof(why)), -EINVAL);
	assert_non_null(strstr(why, "buffered"));
	free(sp);
}

/* A file opened ,direct on a file system that can (the build tree's, /var/tmp). */
static void
test_file_direct(void **state)
{
	char path[] = "/var/tmp/isd_bstore_XXXXXX";
	char spec[128], err[256];
	struct isd_reactor *r;
	struct isd_bstore *bs;
	uint8_t *a, *b;
	int fd;

	(void)state;
	fd = mkstemp(path);
	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(isd_reactor_create(&r), 0);
	snprintf(spec, sizeof(spec), "file:%s,size=1M,direct", path);
	if (isd_bstore_open(r, spec, &bs, err, sizeof(err)) < 0) {
		/* say why, as iserd would; the file system may not do O_DIRECT */
		print_message("%s: skipped\n", err);
		assert_non_null(strstr(err, "buffered"));
		isd_reactor_destroy(r);
		unlink(path);
		skip();
	}
	assert_true(bs->min_block >= 512);
	a = isd_mem_alloc_aligned(65536, bs->mem_align);
	b = isd_mem_alloc_aligned(65536, bs->mem_align);
	memset(a, 0x3c, 65536);
	assert_int_equal(rw(r, bs, true, a, 65536, 65536), 0);
	memset(b, 0, 65536);
	assert_int_equal(rw(r, bs, false, b, 65536, 65536), 0);
	assert_memory_equal(a, b, 65536);
	isd_bstore_close(bs);
	isd_mem_free(a);
	isd_mem_free(b);
	isd_reactor_destroy(r);
	unlink(path);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_size_table),
		cmocka_unit_test(test_open_rejects_bad_specs),
		cmocka_unit_test(test_ram_roundtrip),
		cmocka_unit_test(test_file_roundtrip),
		cmocka_unit_test(test_file_many_inflight),
		cmocka_unit_test(test_memfs_file),
		cmocka_unit_test(test_io_mode_specs),
		cmocka_unit_test(test_dev_direct),
		cmocka_unit_test(test_file_direct),
	};

	return cmocka_run_group_tests_name("bstore", tests, NULL, NULL);
}
