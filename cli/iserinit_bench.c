/*
 * iserinit bench: a load generator on the asynchronous API. N sessions
 * (contexts) each keep QD commands in flight from one poll() loop; each
 * completion records its latency in a log-linear histogram and submits the
 * next command. Prints IOPS, MiB/s and latency percentiles, a live progress
 * line on a terminal, and a JSON object with --json (json-c).
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

#include "iserinit.h"

enum rw_kind { RW_RANDREAD, RW_RANDWRITE, RW_READ, RW_WRITE };

/* Histogram: 128 exact buckets, then 64 sub-buckets per power of two (<1.6 % error). */
#define HIST_BUCKETS (128 + 58 * 64)

static unsigned
hist_idx(uint64_t v)
{
	unsigned msb, shift;

	if (v < 128)
		return (unsigned)v;
	msb = 63 - (unsigned)__builtin_clzll(v);
	shift = msb - 6;
	return 128 + (shift - 1) * 64 + (unsigned)((v >> shift) - 64);
}

static uint64_t
hist_value(unsigned idx)
{
	unsigned shift, top;

	if (idx < 128)
		return idx;
	shift = (idx - 128) / 64 + 1;
	top = (idx - 128) % 64 + 64;
	/* middle of the bucket */
	return ((uint64_t)top << shift) + ((1ull << shift) >> 1);
}

struct bench;

struct slot {
	struct iserd_task t;
	struct bench *b;
	struct sess *s;
	uint8_t *buf;
	uint64_t start_ns;
	bool busy;
};

struct sess {
	struct iserd_context *ctx;
	struct slot *slots;
	uint64_t seq_next; /* sequential: next block */
	uint32_t inflight;
	bool dead;
};

struct bench {
	enum rw_kind rw;
	uint32_t bs;
	uint32_t qd;
	uint32_t nsess;
	double time_s;
	bool json;
	bool reconnect;
	uint64_t lun;
	uint32_t block_size;
	uint64_t range_blocks; /* blocks the offsets fall in */
	uint64_t stop_ns;
	bool stopping;
	uint64_t ios;
	uint64_t errors;
	uint64_t lat_sum_ns;
	uint64_t lat_min_ns;
	uint64_t lat_max_ns;
	uint64_t *hist;
	uint64_t rng;
	char first_error[700];
	struct sess *sess;
};

static uint64_t
now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static uint64_t
rnd(struct bench *b)
{
	/* xorshift64* */
	b->rng ^= b->rng >> 12;
	b->rng ^= b->rng << 25;
	b->rng ^= b->rng >> 27;
	return b->rng * 2685821657736338717ull;
}

static void bench_cb(struct iserd_context *ctx, int status, void *data, void *arg);

static int
submit(struct bench *b, struct sess *s, struct slot *sl)
{
	uint32_t nblocks = b->bs / b->block_size;
	uint64_t span = b->range_blocks / nblocks, lba;
	int rc;

	if (b->rw == RW_RANDREAD || b->rw == RW_RANDWRITE) {
		lba = (rnd(b) % span) * nblocks;
	} else {
		if (s->seq_next + nblocks > b->range_blocks)
			s->seq_next = 0;
		lba = s->seq_next;
		s->seq_next += nblocks;
	}
	if (b->rw == RW_RANDREAD || b->rw == RW_READ)
		rc = iserd_task_read16(&sl->t, b->lun, lba, nblocks, b->block_size, sl->buf);
	else
		rc =
		    iserd_task_write16(&sl->t, b->lun, lba, nblocks, b->block_size, sl->buf, false);
	if (rc < 0)
		return rc;
	sl->start_ns = now_ns();
	rc = iserd_task_submit(s->ctx, &sl->t, bench_cb, sl);
	if (rc < 0)
		return rc;
	sl->busy = true;
	s->inflight++;
	return 0;
}

static void
bench_cb(struct iserd_context *ctx, int status, void *data, void *arg)
{
	struct slot *sl = arg;
	struct bench *b = sl->b;
	struct sess *s = sl->s;
	uint64_t t = now_ns(), lat = t - sl->start_ns;

	(void)data;
	sl->busy = false;
	s->inflight--;
	if (status < 0 || sl->t.status != ISERD_STATUS_GOOD || sl->t.response != 0) {
		b->errors++;
		if (b->first_error[0] == '\0') {
			if (status < 0)
				snprintf(b->first_error, sizeof(b->first_error), "%s",
					 iserd_get_error(ctx)[0] ? iserd_get_error(ctx)
								 : strerror(-status));
			else
				iserd_task_result_str(&sl->t, b->first_error,
						      sizeof(b->first_error));
		}
		/* With --reconnect=fail the library logs in again and takes new
		 * commands meanwhile: keep going. */
		if (status == -ECANCELED || (status == -ECONNRESET && !b->reconnect))
			s->dead = true;
	} else {
		b->ios++;
		b->lat_sum_ns += lat;
		if (lat < b->lat_min_ns)
			b->lat_min_ns = lat;
		if (lat > b->lat_max_ns)
			b->lat_max_ns = lat;
		b->hist[hist_idx(lat)]++;
	}
	if (!b->stopping && !s->dead && t < b->stop_ns) {
		if (submit(b, s, sl) < 0 && b->first_error[0] == '\0') {
			snprintf(b->first_error, sizeof(b->first_error), "%s",
				 iserd_get_error(ctx));
			s->dead = true;
		}
	}
}

static uint64_t
percentile(const struct bench *b, double p)
{
	uint64_t total = 0, want, acc = 0;
	unsigned i;

	for (i = 0; i < HIST_BUCKETS; i++)
		total += b->hist[i];
	if (total == 0)
		return 0;
	want = (uint64_t)ceil(p / 100.0 * (double)total);
	if (want == 0)
		want = 1;
	for (i = 0; i < HIST_BUCKETS; i++) {
		acc += b->hist[i];
		if (acc >= want) {
			uint64_t v = hist_value(i);

			return v > b->lat_max_ns   ? b->lat_max_ns
			       : v < b->lat_min_ns ? b->lat_min_ns
						   : v;
		}
	}
	return b->lat_max_ns;
}

static const char *
rw_name(enum rw_kind k)
{
	static const char *const n[] = {"randread", "randwrite", "read", "write"};

	return n[k];
}

static void
bench_usage(void)
{
	printf(
	    "usage: iserinit bench [OPTIONS] URL\n\n"
	    "Runs a load for --time seconds and reports IOPS, MiB/s and latency.\n\n"
	    "      --rw MODE            randread (default), randwrite, read or write\n"
	    "      --bs N               transfer size (default 4K; a multiple of the block size)\n"
	    "      --qd N               commands in flight per session (default 32)\n"
	    "      --time S             seconds to run (default 10)\n"
	    "      --sessions N         sessions (connections) in parallel (default 1)\n"
	    "      --size N             confine offsets to the first N bytes of the LUN\n"
	    "      --json               print the result as JSON on stdout\n"
	    "%s",
	    ii_common_help);
}

int
ii_cmd_bench(int argc, char **argv)
{
	enum { B_RW = 2000, B_BS, B_QD, B_TIME, B_SESS, B_JSON, B_SIZE };
	static const struct option lo[] = {
	    COMMON_LONGOPTS,
	    {"rw", required_argument, NULL, B_RW},
	    {"bs", required_argument, NULL, B_BS},
	    {"qd", required_argument, NULL, B_QD},
	    {"time", required_argument, NULL, B_TIME},
	    {"sessions", required_argument, NULL, B_SESS},
	    {"json", no_argument, NULL, B_JSON},
	    {"size", required_argument, NULL, B_SIZE},
	    {NULL, 0, NULL, 0},
	};
	struct ii_common co;
	struct bench b;
	struct iserd_url u;
	struct iserd_readcap16 rc16;
	uint64_t size_limit = 0, v, t0, t_end, last_print, last_ios = 0;
	char err[256];
	int opt, r, ret = 1;
	uint32_t i, j;
	bool tty = isatty(STDERR_FILENO);
	bool lost = false;

	memset(&b, 0, sizeof(b));
	ii_common_init(&co);
	b.rw = RW_RANDREAD;
	b.bs = 4096;
	b.qd = 32;
	b.nsess = 1;
	b.time_s = 10;
	b.lat_min_ns = UINT64_MAX;
	optind = 0; /* a new scan (main parsed the leading options) */
	while ((opt = getopt_long(argc, argv, "i:vh", lo, NULL)) != -1) {
		r = ii_common_opt(&co, opt, optarg);
		if (r < 0)
			return 2;
		if (r > 0)
			continue;
		switch (opt) {
		case 'h':
			bench_usage();
			return 0;
		case B_RW:
			if (strcmp(optarg, "randread") == 0)
				b.rw = RW_RANDREAD;
			else if (strcmp(optarg, "randwrite") == 0)
				b.rw = RW_RANDWRITE;
			else if (strcmp(optarg, "read") == 0)
				b.rw = RW_READ;
			else if (strcmp(optarg, "write") == 0)
				b.rw = RW_WRITE;
			else {
				ii_err("bad --rw '%s' (randread, randwrite, read, write)", optarg);
				return 2;
			}
			break;
		case B_BS:
		case B_SIZE:
			if (ii_parse_size(optarg, &v) < 0 || v == 0 ||
			    (opt == B_BS && v > (16u << 20))) {
				ii_err("bad size '%s'", optarg);
				return 2;
			}
			if (opt == B_BS)
				b.bs = (uint32_t)v;
			else
				size_limit = v;
			break;
		case B_QD:
		case B_SESS: {
			char *end;
			long n = strtol(optarg, &end, 10);

			if (*end != '\0' || n < 1 || n > (opt == B_QD ? 1024 : 64)) {
				ii_err("bad %s '%s'",
				       opt == B_QD ? "--qd (1..1024)" : "--sessions (1..64)",
				       optarg);
				return 2;
			}
			if (opt == B_QD)
				b.qd = (uint32_t)n;
			else
				b.nsess = (uint32_t)n;
			break;
		}
		case B_TIME: {
			char *end;

			b.time_s = strtod(optarg, &end);
			if (*end != '\0' || b.time_s <= 0 || b.time_s > 86400) {
				ii_err("bad --time '%s'", optarg);
				return 2;
			}
			break;
		}
		case B_JSON:
			b.json = true;
			break;
		default:
			fprintf(stderr, "usage: iserinit bench [OPTIONS] URL (see --help)\n");
			return 2;
		}
	}
	if (optind != argc - 1) {
		ii_err("%s", optind >= argc ? "missing URL" : "too many arguments");
		return 2;
	}
	if (iserd_url_parse_full(argv[optind], &u, err, sizeof(err)) < 0) {
		ii_err("%s", err);
		return 2;
	}
	b.lun = u.lun;
	b.reconnect = co.reconnect != ISERD_RECONNECT_OFF;
	b.hist = calloc(HIST_BUCKETS, sizeof(*b.hist));
	b.sess = calloc(b.nsess, sizeof(*b.sess));
	if (b.hist == NULL || b.sess == NULL) {
		ii_err("out of memory");
		goto out;
	}
	b.rng = ((uint64_t)getpid() << 32) ^ now_ns() ^ 0x9e3779b97f4a7c15ull;
	for (i = 0; i < b.nsess; i++) {
		struct sess *s = &b.sess[i];

		co.queue_depth = b.qd;
		s->ctx = ii_open(&co, &u, ISERD_SESSION_NORMAL);
		if (s->ctx == NULL)
			goto out;
	}
	if (ii_readcap(b.sess[0].ctx, b.lun, &rc16) < 0)
		goto out;
	b.block_size = rc16.block_size;
	if (b.bs % b.block_size != 0) {
		ii_err("--bs %u is not a multiple of the block size %u", b.bs, b.block_size);
		ret = 2;
		goto out;
	}
	b.range_blocks = rc16.num_blocks;
	if (size_limit > 0 && size_limit / b.block_size < b.range_blocks)
		b.range_blocks = size_limit / b.block_size;
	if (b.range_blocks < b.bs / b.block_size) {
		ii_err("the LUN is smaller than one --bs transfer");
		goto out;
	}
	for (i = 0; i < b.nsess; i++) {
		struct sess *s = &b.sess[i];

		s->slots = calloc(b.qd, sizeof(*s->slots));
		if (s->slots == NULL)
			goto oom;
		s->seq_next = (b.range_blocks / b.nsess) * i;
		s->seq_next -= s->seq_next % (b.bs / b.block_size);
		for (j = 0; j < b.qd; j++) {
			struct slot *sl = &s->slots[j];

			if (posix_memalign((void **)&sl->buf, 4096, b.bs) != 0)
				goto oom;
			memset(sl->buf, (int)(j * 7 + 1), b.bs);
			sl->b = &b;
			sl->s = s;
		}
	}
	t0 = now_ns();
	b.stop_ns = t0 + (uint64_t)(b.time_s * 1e9);
	last_print = t0;
	for (i = 0; i < b.nsess; i++) {
		for (j = 0; j < b.qd; j++) {
			if (submit(&b, &b.sess[i], &b.sess[i].slots[j]) < 0) {
				ii_err("cannot submit: %s", iserd_get_error(b.sess[i].ctx));
				goto out;
			}
		}
	}
	for (;;) {
		struct pollfd pfd[64];
		uint32_t inflight = 0;
		uint64_t t;
		int to = 100;

		for (i = 0; i < b.nsess; i++) {
			int nt = iserd_next_timeout_ms(b.sess[i].ctx);

			pfd[i].fd = iserd_get_fd(b.sess[i].ctx);
			pfd[i].events = (short)iserd_which_events(b.sess[i].ctx);
			pfd[i].revents = 0;
			if (nt >= 0 && nt < to)
				to = nt;
			inflight += b.sess[i].inflight;
		}
		t = now_ns();
		if (t >= b.stop_ns)
			b.stopping = true;
		if (inflight == 0 && (b.stopping || lost))
			break;
		if (poll(pfd, b.nsess, to) < 0 && errno != EINTR) {
			ii_err("poll: %s", strerror(errno));
			goto out;
		}
		for (i = 0; i < b.nsess; i++) {
			if (iserd_service(b.sess[i].ctx, pfd[i].revents) < 0 && !lost) {
				lost = true;
				b.stopping = true;
				if (b.first_error[0] == '\0')
					snprintf(b.first_error, sizeof(b.first_error), "%s",
						 iserd_get_error(b.sess[i].ctx));
			}
		}
		t = now_ns();
		if (tty && !b.json && t - last_print >= 1000000000ull) {
			double el = (double)(t - t0) / 1e9;
			double iops = (double)(b.ios - last_ios) * 1e9 / (double)(t - last_print);

			fprintf(stderr, "\r%6.1fs  %10.0f IOPS  %9.1f MiB/s  errors %" PRIu64 "   ",
				el, iops, iops * b.bs / (1 << 20), b.errors);
			last_print = t;
			last_ios = b.ios;
		}
	}
	t_end = now_ns();
	if (tty && !b.json)
		fprintf(stderr, "\r%*s\r", 70, "");
	{
		double el = (double)(t_end - t0) / 1e9;
		double iops = (double)b.ios / el;
		double mibs = iops * b.bs / (1 << 20);
		double mean_us = b.ios ? (double)b.lat_sum_ns / (double)b.ios / 1000.0 : 0;
		double p50 = (double)percentile(&b, 50) / 1000.0;
		double p99 = (double)percentile(&b, 99) / 1000.0;
		double p999 = (double)percentile(&b, 99.9) / 1000.0;
		uint32_t reconnects = 0;

		for (i = 0; i < b.nsess; i++)
			reconnects += iserd_get_reconnect_count(b.sess[i].ctx);
		if (b.json) {
			struct json_object *o = json_object_new_object(),
					   *lat = json_object_new_object();

			json_object_object_add(o, "rw", json_object_new_string(rw_name(b.rw)));
			json_object_object_add(o, "bs", json_object_new_int64(b.bs));
			json_object_object_add(o, "qd", json_object_new_int64(b.qd));
			json_object_object_add(o, "sessions", json_object_new_int64(b.nsess));
			json_object_object_add(o, "time_s", json_object_new_double(el));
			json_object_object_add(o, "ios", json_object_new_int64((int64_t)b.ios));
			json_object_object_add(o, "bytes",
					       json_object_new_int64((int64_t)(b.ios * b.bs)));
			json_object_object_add(o, "iops", json_object_new_double(iops));
			json_object_object_add(o, "mib_s", json_object_new_double(mibs));
			json_object_object_add(o, "errors",
					       json_object_new_int64((int64_t)b.errors));
			json_object_object_add(o, "reconnects", json_object_new_int64(reconnects));
			json_object_object_add(lat, "mean", json_object_new_double(mean_us));
			json_object_object_add(
			    lat, "min", json_object_new_double(b.ios ? b.lat_min_ns / 1000.0 : 0));
			json_object_object_add(lat, "max",
					       json_object_new_double(b.lat_max_ns / 1000.0));
			json_object_object_add(lat, "p50", json_object_new_double(p50));
			json_object_object_add(lat, "p99", json_object_new_double(p99));
			json_object_object_add(lat, "p99.9", json_object_new_double(p999));
			json_object_object_add(o, "lat_us", lat);
			json_object_object_add(o, "target", json_object_new_string(u.target));
			json_object_object_add(o, "lun", json_object_new_int64((int64_t)u.lun));
			if (b.first_error[0])
				json_object_object_add(o, "error",
						       json_object_new_string(b.first_error));
			printf("%s\n", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY));
			json_object_put(o);
		} else {
			printf("%s bs=%u qd=%u sessions=%u: %.1f s, %" PRIu64 " I/Os, %" PRIu64
			       " errors%s\n",
			       rw_name(b.rw), b.bs, b.qd, b.nsess, el, b.ios, b.errors,
			       reconnects ? " (reconnected)" : "");
			printf("  IOPS %.0f   %.1f MiB/s\n", iops, mibs);
			printf(
			    "  latency (us): mean %.1f  p50 %.1f  p99 %.1f  p99.9 %.1f  max %.1f\n",
			    mean_us, p50, p99, p999, b.lat_max_ns / 1000.0);
		}
		if (lost || b.errors > 0) {
			ii_err("%" PRIu64 " command%s failed: %s", b.errors,
			       b.errors == 1 ? "" : "s",
			       b.first_error[0] ? b.first_error : "connection lost");
			ret = 1;
		} else {
			ret = 0;
		}
	}
	goto out;
oom:
	ii_err("out of memory");
out:
	if (b.sess != NULL) {
		for (i = 0; i < b.nsess; i++) {
			struct sess *s = &b.sess[i];

			ii_close(s->ctx);
			if (s->slots != NULL) {
				for (j = 0; j < b.qd; j++)
					free(s->slots[j].buf);
				free(s->slots);
			}
		}
	}
	free(b.sess);
	free(b.hist);
	return ret;
}
