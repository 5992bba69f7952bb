/* Unit tests for src/util/iostats.c: buckets, quantiles, errors, sums, in-flight. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "util/iostats.h"

#define US 1000ull

static void
test_bucket_bounds(void **state)
{
	(void)state;
	assert_int_equal(isd_io_stats_bucket_us(0), 1);
	assert_int_equal(isd_io_stats_bucket_us(1), 2);
	assert_int_equal(isd_io_stats_bucket_us(10), 1024);
	assert_int_equal(isd_io_stats_bucket_us(ISD_IO_LAT_BUCKETS - 2), 1ull << 24);
	assert_true(isd_io_stats_bucket_us(ISD_IO_LAT_BUCKETS - 1) == UINT64_MAX);
}

static void
test_buckets(void **state)
{
	struct isd_io_stats st;

	(void)state;
	memset(&st, 0, sizeof(st));
	isd_io_stats_done(&st, ISD_IO_READ, 0, -1, 0);              /* < 1 us */
	isd_io_stats_done(&st, ISD_IO_READ, 0, -1, 999);            /* still < 1 us */
	isd_io_stats_done(&st, ISD_IO_READ, 0, -1, 1 * US);         /* [1, 2) */
	isd_io_stats_done(&st, ISD_IO_READ, 0, -1, 3 * US + 999);   /* [2, 4) */
	isd_io_stats_done(&st, ISD_IO_READ, 0, -1, 4 * US);         /* [4, 8) */
	isd_io_stats_done(&st, ISD_IO_READ, 0, -1, 100ull * 1000000 * US); /* 100 s */
	assert_int_equal(st.lat[0], 2);
	assert_int_equal(st.lat[1], 1);
	assert_int_equal(st.lat[2], 1);
	assert_int_equal(st.lat[3], 1);
	assert_int_equal(st.lat[ISD_IO_LAT_BUCKETS - 1], 1);
	assert_int_equal(st.lat_sum_ns, 999 + 1 * US + 3 * US + 999 + 4 * US +
					    100ull * 1000000 * US);
	/* (1 << 24) us exactly is not below 2^24 us: the overflow bucket */
	memset(&st, 0, sizeof(st));
	isd_io_stats_done(&st, ISD_IO_OTHER, 0, -1, ((1ull << 24) - 1) * US);
	isd_io_stats_done(&st, ISD_IO_OTHER, 0, -1, (1ull << 24) * US);
	assert_int_equal(st.lat[ISD_IO_LAT_BUCKETS - 2], 1);
	assert_int_equal(st.lat[ISD_IO_LAT_BUCKETS - 1], 1);
}

static void
test_quantiles(void **state)
{
	struct isd_io_stats st;

	(void)state;
	memset(&st, 0, sizeof(st));
	assert_int_equal(isd_io_stats_quantile_us(&st, 0.5), 0);
	/* 98 commands of 10 us ([8, 16)), 2 of 1 ms ([512, 1024) -> bucket 10) */
	for (int i = 0; i < 98; i++)
		isd_io_stats_done(&st, ISD_IO_READ, 4096, -1, 10 * US);
	for (int i = 0; i < 2; i++)
		isd_io_stats_done(&st, ISD_IO_WRITE, 4096, -1, 1000 * US);
	assert_int_equal(isd_io_stats_quantile_us(&st, 0.5), 16);
	assert_int_equal(isd_io_stats_quantile_us(&st, 0.98), 16);
	assert_int_equal(isd_io_stats_quantile_us(&st, 0.99), 1024);
	assert_int_equal(isd_io_stats_quantile_us(&st, 1.0), 1024);
	/* out of range asks are clamped, not undefined */
	assert_int_equal(isd_io_stats_quantile_us(&st, 0), 16);
	assert_int_equal(isd_io_stats_quantile_us(&st, 7), 1024);
}

static void
test_counts_errors_in_flight(void **state)
{
	struct isd_io_stats st;

	(void)state;
	memset(&st, 0, sizeof(st));
	isd_io_stats_start(&st);
	isd_io_stats_start(&st);
	isd_io_stats_start(&st);
	assert_int_equal(st.in_flight, 3);
	isd_io_stats_done(&st, ISD_IO_READ, 8192, -1, 5 * US);
	/* a failed command counts as a command and an error, its bytes do not */
	isd_io_stats_done(&st, ISD_IO_WRITE, 4096, ISD_IO_ERR_MEDIUM, 5 * US);
	isd_io_stats_done(&st, ISD_IO_OTHER, 0, ISD_IO_ERR_CONFLICT, 5 * US);
	assert_int_equal(st.in_flight, 0);
	assert_int_equal(st.cmds[ISD_IO_READ], 1);
	assert_int_equal(st.cmds[ISD_IO_WRITE], 1);
	assert_int_equal(st.cmds[ISD_IO_OTHER], 1);
	assert_int_equal(st.bytes[ISD_IO_READ], 8192);
	assert_int_equal(st.bytes[ISD_IO_WRITE], 0);
	assert_int_equal(st.errors[ISD_IO_ERR_MEDIUM], 1);
	assert_int_equal(st.errors[ISD_IO_ERR_CONFLICT], 1);
	/* a done without a start leaves the gauge at 0; junk classes become other */
	isd_io_stats_done(&st, (enum isd_io_dir)42, 0, 99, 0);
	assert_int_equal(st.in_flight, 0);
	assert_int_equal(st.cmds[ISD_IO_OTHER], 2);
	assert_int_equal(st.errors[ISD_IO_ERR_OTHER], 1);
}

static void
test_sum_and_names(void **state)
{
	struct isd_io_stats a, b;

	(void)state;
	memset(&a, 0, sizeof(a));
	memset(&b, 0, sizeof(b));
	isd_io_stats_start(&a);
	isd_io_stats_done(&a, ISD_IO_READ, 512, -1, 3 * US);
	isd_io_stats_start(&b);
	isd_io_stats_start(&b);
	isd_io_stats_done(&b, ISD_IO_READ, 1024, -1, 3 * US);
	isd_io_stats_done(&b, ISD_IO_WRITE, 0, ISD_IO_ERR_BUSY, 70 * US);
	isd_io_stats_start(&b);
	isd_io_stats_sum(&a, &b);
	assert_int_equal(a.cmds[ISD_IO_READ], 2);
	assert_int_equal(a.bytes[ISD_IO_READ], 1536);
	assert_int_equal(a.cmds[ISD_IO_WRITE], 1);
	assert_int_equal(a.errors[ISD_IO_ERR_BUSY], 1);
	assert_int_equal(a.lat[2], 2);
	assert_int_equal(a.lat[7], 1);
	assert_int_equal(a.lat_sum_ns, 76 * US);
	assert_int_equal(a.in_flight, 1);
	assert_string_equal(isd_io_dir_names[ISD_IO_WRITE], "write");
	assert_string_equal(isd_io_err_names[ISD_IO_ERR_ILLEGAL], "illegal_request");
	assert_string_equal(isd_io_err_names[ISD_IO_ERR_CONFLICT], "reservation_conflict");
	assert_string_equal(isd_io_err_names[ISD_IO_ERR_OTHER], "other");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_bucket_bounds),
	    cmocka_unit_test(test_buckets),
	    cmocka_unit_test(test_quantiles),
	    cmocka_unit_test(test_counts_errors_in_flight),
	    cmocka_unit_test(test_sum_and_names),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
