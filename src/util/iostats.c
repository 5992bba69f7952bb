/*
 * I/O statistics (iostats.h): plain counters, no locks, no allocation, so
 * that the data path pays two additions and a bit scan per command.
 */
#include "util/iostats.h"


const char *const isd_io_dir_names[ISD_IO_DIRS] = {"read", "write", "other"};

const char *const isd_io_err_names[ISD_IO_ERRS] = {
	"medium",      "illegal_request",      "unit_attention",
	"data_protect", "aborted",             "busy",
	"reservation_conflict", "miscompare",  "other",
};

void
isd_io_stats_start(struct isd_io_stats *st)
{
	st->in_flight++;
}

/* Bucket i holds latencies below 2^i us and at least 2^(i-1) us; 0 us goes in bucket 0. */
static int
lat_bucket(uint64_t lat_ns)
{
	uint64_t us = lat_ns / 1000;
	int i;

	if (us == 0)
		return 0;
	i = 64 - __builtin_clzll(us);
	return i < ISD_IO_LAT_BUCKETS - 1 ? i : ISD_IO_LAT_BUCKETS - 1;
}

void
isd_io_stats_done(struct isd_io_stats *st, enum isd_io_dir dir, uint64_t bytes, int err,
		  uint64_t lat_ns)
{
	/* a done without its start must not wrap the gauge */
	if (st->in_flight > 0)
		st->in_flight--;
	if ((unsigned)dir >= ISD_IO_DIRS)
		dir = ISD_IO_OTHER;
	st->cmds[dir]++;
	if (err < 0)
		st->bytes[dir] += bytes;
	else
		st->errors[err < ISD_IO_ERRS ? err : ISD_IO_ERR_OTHER]++;
	st->lat[lat_bucket(lat_ns)]++;
	st->lat_sum_ns += lat_ns;
}

void
isd_io_stats_sum(struct isd_io_stats *dst, const struct isd_io_stats *src)
{
	for (int i = 0; i < ISD_IO_DIRS; i++) {
		dst->cmds[i] += src->cmds[i];
		dst->bytes[i] += src->bytes[i];
	}
	for (int i = 0; i < ISD_IO_ERRS; i++)
		dst->errors[i] += src->errors[i];
	for (int i = 0; i < ISD_IO_LAT_BUCKETS; i++)
		dst->lat[i] += src->lat[i];
	dst->lat_sum_ns += src->lat_sum_ns;
	dst->in_flight += src->in_flight;
	dst->xcopy_bytes += src->xcopy_bytes;
}

uint64_t
isd_io_stats_bucket_us(int i)
{
	if (i < 0)
		return 0;
	if (i >= ISD_IO_LAT_BUCKETS - 1)
		return UINT64_MAX;
	return 1ull << i;
}

uint64_t
isd_io_stats_quantile_us(const struct isd_io_stats *st, double q)
{
	uint64_t total = 0, want, acc = 0;

	for (int i = 0; i < ISD_IO_LAT_BUCKETS; i++)
		total += st->lat[i];
	if (total == 0)
		return 0;
	if (!(q > 0))
		q = 0;
	if (q > 1)
		q = 1;
	/* the smallest bucket that holds at least ceil(q * total) commands */
	want = (uint64_t)(q * (double)total);
	if ((double)want < q * (double)total)
		want++;         /* ceil without libm */
	if (want == 0)
		want = 1;
	for (int i = 0; i < ISD_IO_LAT_BUCKETS; i++) {
		acc += st->lat[i];
		if (acc >= want)
			return isd_io_stats_bucket_us(i);
	}
	return isd_io_stats_bucket_us(ISD_IO_LAT_BUCKETS - 1);
}
