/*
 * I/O statistics of one thing that serves commands (a LUN, a target, a
 * session): commands and bytes by direction, errors by class, commands in
 * flight and a latency histogram. Plain counters, owned and updated by the
 * reactor thread that serves the thing; a reader on the same thread copies
 * the struct.
 *
 * Latency is from the command's arrival at the SCSI layer to its completion
 * (status known), in power-of-two buckets of microseconds: bucket i counts
 * commands that took less than 2^i us (and at least 2^(i-1) us); the last
 * bucket counts everything slower. That is coarse (a factor of two) but
 * cheap, fixed in size and enough for p50/p99 and a Prometheus histogram.
 */
#ifndef ISD_UTIL_IOSTATS_H
#define ISD_UTIL_IOSTATS_H

#include <stdint.h>

enum isd_io_dir {
	ISD_IO_READ = 0,                /* READ(6/10/12/16), COMPARE AND WRITE's read half is a write */
	ISD_IO_WRITE,                   /* WRITE*, WRITE SAME, COMPARE AND WRITE, UNMAP */
	ISD_IO_OTHER,                   /* everything else (INQUIRY, TUR, PR...) */
	ISD_IO_DIRS,
};

/* Why a command did not end GOOD. Names in isd_io_err_names[] (stable: metrics use them). */
enum isd_io_err {
	ISD_IO_ERR_MEDIUM = 0,          /* MEDIUM ERROR, HARDWARE ERROR: the store failed */
	ISD_IO_ERR_ILLEGAL,             /* ILLEGAL REQUEST: bad CDB, LBA out of range... */
	ISD_IO_ERR_UNIT_ATTENTION,      /* UNIT ATTENTION reported */
	ISD_IO_ERR_DATA_PROTECT,        /* write to a read-only LUN */
	ISD_IO_ERR_ABORTED,             /* TASK ABORTED, ABORTED COMMAND */
	ISD_IO_ERR_BUSY,                /* BUSY, TASK SET FULL */
	ISD_IO_ERR_CONFLICT,            /* RESERVATION CONFLICT */
	ISD_IO_ERR_MISCOMPARE,          /* COMPARE AND WRITE mismatch */
	ISD_IO_ERR_OTHER,
	ISD_IO_ERRS,
};

#define ISD_IO_LAT_BUCKETS 26           /* < 1 us ... < 2^24 us (16.8 s), then slower */

struct isd_io_stats {
	uint64_t cmds[ISD_IO_DIRS];     /* completed commands */
	uint64_t bytes[ISD_IO_DIRS];    /* data moved: read = sent to the initiator,
					 * write = taken from it (only for commands that ended GOOD) */
	uint64_t errors[ISD_IO_ERRS];
	uint64_t lat[ISD_IO_LAT_BUCKETS];       /* every completed command, all directions */
	uint64_t lat_sum_ns;
	uint32_t in_flight;             /* started and not yet completed */
	/* data moved inside the target by EXTENDED COPY commands sent here (read from
	 * one LU and written to another, or the same, without crossing the wire);
	 * not part of bytes[] */
	uint64_t xcopy_bytes;
};

extern const char *const isd_io_dir_names[ISD_IO_DIRS];  /* "read", "write", "other" */
extern const char *const isd_io_err_names[ISD_IO_ERRS];  /* "medium", "illegal_request"... */

/* A command arrived. */
void isd_io_stats_start(struct isd_io_stats *st);
/* It completed: err is an enum isd_io_err, or -1 for GOOD. */
void isd_io_stats_done(struct isd_io_stats *st, enum isd_io_dir dir, uint64_t bytes, int err,
		       uint64_t lat_ns);
/* Adds src's counters to dst (a target as the sum of its LUNs, say). */
void isd_io_stats_sum(struct isd_io_stats *dst, const struct isd_io_stats *src);
/* The upper bound, in microseconds, of the bucket holding quantile q (0 < q <= 1)
 * of the completed commands; 0 when none completed. */
uint64_t isd_io_stats_quantile_us(const struct isd_io_stats *st, double q);
/* Upper bound of bucket i in microseconds (UINT64_MAX for the last). */
uint64_t isd_io_stats_bucket_us(int i);

#endif
