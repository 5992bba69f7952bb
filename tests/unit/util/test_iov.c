/* Unit tests for src/util/iov.c: lengths, copies across entries, slices. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "util/iov.h"

/* Three uneven entries plus an empty one in the middle: 3 + 0 + 5 + 8 = 16 bytes. */
struct fixture {
	uint8_t a[3], b[1], c[5], d[8];
	struct iovec iov[4];
};

static void
fixture_init(struct fixture *f)
{
	memset(f, 0, sizeof(*f));
	f->iov[0] = (struct iovec){ f->a, sizeof(f->a) };
	f->iov[1] = (struct iovec){ f->b, 0 };
	f->iov[2] = (struct iovec){ f->c, sizeof(f->c) };
	f->iov[3] = (struct iovec){ f->d, sizeof(f->d) };
}

static void
test_iov_len(void **state)
{
	struct fixture f;

	(void)state;
	fixture_init(&f);
	assert_int_equal(isd_iov_len(f.iov, 4), 16);
	assert_int_equal(isd_iov_len(f.iov, 0), 0);
	assert_int_equal(isd_iov_len(NULL, 0), 0);
}

static void
test_iov_copy_in_out_roundtrip(void **state)
{
	struct fixture f;
	uint8_t src[16], dst[16];

	(void)state;
	for (int i = 0; i < 16; i++)
		src[i] = (uint8_t)(0xa0 + i);
	fixture_init(&f);
	assert_int_equal(isd_iov_copy_in(f.iov, 4, 0, src, 16), 16);
	assert_memory_equal(f.a, src, 3);
	assert_memory_equal(f.c, src + 3, 5);
	assert_memory_equal(f.d, src + 8, 8);
	memset(dst, 0, sizeof(dst));
	assert_int_equal(isd_iov_copy_out(f.iov, 4, 0, dst, 16), 16);
	assert_memory_equal(dst, src, 16);
}

static void
test_iov_copy_offsets(void **state)
{
	struct fixture f;
	uint8_t src[16], dst[16];

	(void)state;
	for (int i = 0; i < 16; i++)
		src[i] = (uint8_t)i;
	/* every offset and length, including ones spanning all entries */
	for (size_t off = 0; off <= 16; off++) {
		for (size_t len = 0; len + off <= 16; len++) {
			fixture_init(&f);
			assert_int_equal(isd_iov_copy_in(f.iov, 4, off, src, len), len);
			memset(dst, 0xee, sizeof(dst));
			assert_int_equal(isd_iov_copy_out(f.iov, 4, off, dst, len), len);
			assert_memory_equal(dst, src, len);
			if (len < 16)
				assert_int_equal(dst[len], 0xee);
		}
	}
}

static void
test_iov_copy_short(void **state)
{
	struct fixture f;
	uint8_t buf[32];

	(void)state;
	memset(buf, 0x11, sizeof(buf));
	fixture_init(&f);
	/* more than fits: copies what fits and says so */
	assert_int_equal(isd_iov_copy_in(f.iov, 4, 10, buf, 32), 6);
	assert_int_equal(isd_iov_copy_out(f.iov, 4, 10, buf, 32), 6);
	/* offset at or beyond the end: nothing */
	assert_int_equal(isd_iov_copy_in(f.iov, 4, 16, buf, 4), 0);
	assert_int_equal(isd_iov_copy_out(f.iov, 4, 100, buf, 4), 0);
	assert_int_equal(isd_iov_copy_out(f.iov, 0, 0, buf, 4), 0);
}

static void
test_iov_slice(void **state)
{
	struct fixture f;
	struct iovec out[4];
	int n;

	(void)state;
	fixture_init(&f);
	/* [2, 12): tail of a, skip the empty entry, all of c, head of d */
	n = isd_iov_slice(f.iov, 4, 2, 10, out, 4);
	assert_int_equal(n, 3);
	assert_ptr_equal(out[0].iov_base, f.a + 2);
	assert_int_equal(out[0].iov_len, 1);
	assert_ptr_equal(out[1].iov_base, f.c);
	assert_int_equal(out[1].iov_len, 5);
	assert_ptr_equal(out[2].iov_base, f.d);
	assert_int_equal(out[2].iov_len, 4);
	assert_int_equal(isd_iov_len(out, n), 10);
	/* entirely inside one entry */
	n = isd_iov_slice(f.iov, 4, 9, 3, out, 4);
	assert_int_equal(n, 1);
	assert_ptr_equal(out[0].iov_base, f.d + 1);
	assert_int_equal(out[0].iov_len, 3);
	/* starting exactly on an entry boundary */
	n = isd_iov_slice(f.iov, 4, 3, 5, out, 4);
	assert_int_equal(n, 1);
	assert_ptr_equal(out[0].iov_base, f.c);
	/* empty range */
	assert_int_equal(isd_iov_slice(f.iov, 4, 5, 0, out, 4), 0);
	/* past the end: only what exists */
	n = isd_iov_slice(f.iov, 4, 12, 100, out, 4);
	assert_int_equal(n, 1);
	assert_int_equal(out[0].iov_len, 4);
	/* out array too small */
	assert_int_equal(isd_iov_slice(f.iov, 4, 0, 16, out, 2), -ENOSPC);
	assert_int_equal(isd_iov_slice(f.iov, 4, 0, 16, out, 3), 3);
}

static void
test_slice_stops_at_out_max(void **state)
{
	uint8_t a[10], b[10], c[10];
	struct iovec iov[3] = {{a, 10}, {b, 10}, {c, 10}};
	struct iovec out[3];
	uint32_t covered;
	int n;

	(void)state;
	n = isd_iov_slice_upto(iov, 3, 5, 20, out, 3, &covered);
	assert_int_equal(n, 3);
	assert_int_equal(covered, 20);
	assert_ptr_equal(out[0].iov_base, a + 5);
	assert_int_equal(out[0].iov_len, 5);
	assert_int_equal(out[1].iov_len, 10);
	assert_ptr_equal(out[2].iov_base, c);
	assert_int_equal(out[2].iov_len, 5);
	/* Only two entries allowed: the slice is short, never an error. */
	n = isd_iov_slice_upto(iov, 3, 5, 20, out, 2, &covered);
	assert_int_equal(n, 2);
	assert_int_equal(covered, 15);
	/* Past the end of the iovec: covered reports what exists. */
	n = isd_iov_slice_upto(iov, 3, 25, 20, out, 3, &covered);
	assert_int_equal(n, 1);
	assert_int_equal(covered, 5);
	n = isd_iov_slice_upto(iov, 3, 30, 1, out, 3, &covered);
	assert_int_equal(n, 0);
	assert_int_equal(covered, 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_iov_len),
	    cmocka_unit_test(test_iov_copy_in_out_roundtrip),
	    cmocka_unit_test(test_iov_copy_offsets),
	    cmocka_unit_test(test_iov_copy_short),
	    cmocka_unit_test(test_iov_slice),
	    cmocka_unit_test(test_slice_stops_at_out_max),
	};

	return cmocka_run_group_tests_name("iov", tests, NULL, NULL);
}
