/*
 * iserd_api_check URL: drives libiserd's public API against a live target
 * (run by test_iserinit.sh). Checks the asynchronous contract (a callback
 * never runs inside the call that registered it), NOP, WRITE SAME, UNMAP,
 * SYNCHRONIZE CACHE, a raw CDB, sense decoding of an out-of-range READ, many
 * outstanding writes (R2T, unsolicited and immediate data) read back,
 * ABORT TASK, LUN RESET, and the error returns. Prints one line per check;
 * exits 0 when all pass.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "iserd/iserd.h"

static int g_fail;
static int g_in_call;

#define CHECK(cond, ...)                                                                           \
	do {                                                                                       \
		if (cond) {                                                                        \
			printf("ok   ");                                                           \
		} else {                                                                           \
			printf("FAIL ");                                                           \
			g_fail++;                                                                  \
		}                                                                                  \
		printf(__VA_ARGS__);                                                               \
		printf("\n");                                                                      \
	} while (0)

struct done {
	int n;
	int status;
	void *data;
	int inside;
};

static void
cb(struct iserd_context *ctx, int status, void *data, void *arg)
{
	struct done *d = arg;

	(void)ctx;
	d->n++;
	d->status = status;
	d->data = data;
	if (g_in_call)
		d->inside++;
}

static void
log_fn(enum iserd_log_level level, const char *msg, void *arg)
{
	(void)arg;
	printf("     [%d] %s\n", level, msg);
}

/* TMF callbacks: the response byte is valid only during the callback. */
static int g_tmf_resp = -1;

static void
tmf_cb(struct iserd_context *ctx, int status, void *data, void *arg)
{
	g_tmf_resp = data != NULL ? *(uint8_t *)data : -1;
	cb(ctx, status, data, arg);
}

static void
loop_until(struct iserd_context *ctx, const int *counter, int want)
{
	while (*counter < want) {
		struct pollfd p = {.fd = iserd_get_fd(ctx),
				   .events = (short)iserd_which_events(ctx)};
		int to = iserd_next_timeout_ms(ctx);

		if (poll(&p, p.fd >= 0 ? 1 : 0, to < 0 || to > 1000 ? 1000 : to) < 0)
			break;
		if (iserd_service(ctx, p.revents) < 0 && *counter < want)
			break;
	}
}

int
main(int argc, char **argv)
{
	struct iserd_context *ctx;
	struct iserd_url u;
	struct iserd_task t, tasks[64];
	struct iserd_readcap16 cap;
	struct done d = {0}, many = {0};
	char err[256];
	uint8_t *buf, *buf2, rc16[32], blk[4096], unmap_param[64];
	uint32_t bs;
	int rc, i;

	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc != 2 || iserd_url_parse_full(argv[1], &u, err, sizeof(err)) < 0) {
		fprintf(stderr, "usage: iserd_api_check iscsi://host:port/iqn/lun (%s)\n", err);
		return 2;
	}
	rc = iserd_context_create("iqn.2026-11.org.iserd:apicheck", &ctx);
	CHECK(rc == 0, "context create");
	if (rc < 0)
		return 1;
	if (getenv("ISERD_API_VERBOSE") != NULL) {
		iserd_set_log_fn(ctx, log_fn, NULL);
		iserd_set_log_level(ctx, ISERD_LOG_DEBUG);
	}
	iserd_task_init(&t);
	iserd_task_test_unit_ready(&t, 0);
	CHECK(iserd_task_submit(ctx, &t, cb, &d) == -ENOTCONN, "submit before login: -ENOTCONN");

	g_in_call = 1;
	rc = iserd_connect_async(ctx, &u, ISERD_SESSION_NORMAL, cb, &d);
	g_in_call = 0;
	CHECK(rc == 0 && d.n == 0, "connect_async returns before its callback");
	loop_until(ctx, &d.n, 1);
	CHECK(d.n == 1 && d.status == 0 && d.inside == 0, "connect callback: status %d (%s)",
	      d.status, iserd_get_error(ctx));
	if (d.status != 0)
		return 1;
	CHECK(iserd_connect_async(ctx, &u, ISERD_SESSION_NORMAL, cb, &d) == -EISCONN,
	      "second connect: -EISCONN");
	CHECK(iserd_nop_sync(ctx) == 0, "NOP-Out ping answered");

	/* Unit attentions of the new nexus. */
	for (i = 0; i < 4; i++) {
		iserd_task_test_unit_ready(&t, u.lun);
		if (iserd_task_sync(ctx, &t) == 0)
			break;
	}
	iserd_task_read_capacity16(&t, u.lun, rc16, sizeof(rc16));
	rc = iserd_task_sync(ctx, &t);
	CHECK(rc == 0 && iserd_parse_readcap16(rc16, sizeof(rc16), &cap) == 0,
	      "READ CAPACITY (16): %llu blocks of %u", (unsigned long long)cap.num_blocks,
	      cap.block_size);
	if (rc != 0)
		return 1;
	bs = cap.block_size;
	buf = malloc(1 << 20);
	buf2 = malloc(1 << 20);

	/* WRITE SAME (16) of one block pattern over 16 blocks, read back. */
	for (i = 0; i < (int)bs; i++)
		blk[i] = (uint8_t)(i * 13 + 7);
	rc = iserd_task_write_same16(&t, u.lun, 100, 16, bs, blk, false);
	if (rc == 0)
		rc = iserd_task_sync(ctx, &t);
	CHECK(rc == 0, "WRITE SAME (16): %s", rc ? iserd_get_error(ctx) : "GOOD");
	iserd_task_read16(&t, u.lun, 100, 16, bs, buf);
	rc = iserd_task_sync(ctx, &t);
	for (i = 0; rc == 0 && i < 16; i++)
		if (memcmp(buf + i * bs, blk, bs) != 0)
			rc = -1;
	CHECK(rc == 0, "WRITE SAME data read back");

	/* UNMAP; thin LUNs that read zeros must now read zeros. */
	{
		struct iserd_unmap_range r = {.lba = 100, .nblocks = 16};

		rc = iserd_task_unmap(&t, u.lun, &r, 1, unmap_param, sizeof(unmap_param));
		if (rc == 0)
			rc = iserd_task_sync(ctx, &t);
		if (rc == -EREMOTEIO && t.sense_valid && t.sense_info.key == 0x5) {
			CHECK(1, "UNMAP not supported by this LUN (ILLEGAL REQUEST)");
		} else {
			CHECK(rc == 0, "UNMAP: %s", rc ? iserd_get_error(ctx) : "GOOD");
			if (rc == 0 && cap.lbpme && cap.lbprz) {
				iserd_task_read16(&t, u.lun, 100, 16, bs, buf);
				rc = iserd_task_sync(ctx, &t);
				for (i = 0; rc == 0 && i < (int)(16 * bs); i++)
					if (buf[i] != 0)
						rc = -1;
				CHECK(rc == 0, "unmapped blocks read zero (LBPRZ)");
			}
		}
	}

	iserd_task_sync_cache16(&t, u.lun, 0, 0);
	rc = iserd_task_sync(ctx, &t);
	CHECK(rc == 0, "SYNCHRONIZE CACHE (16): %s", rc ? iserd_get_error(ctx) : "GOOD");

	/* Raw CDB: READ (10) of 2 blocks at LBA 100. */
	{
		uint8_t cdb[10] = {0x28, 0, 0, 0, 0, 100, 0, 0, 2, 0};

		CHECK(iserd_task_raw(&t, u.lun, cdb, 3, ISERD_DIR_READ, buf, 2 * bs) == -EINVAL,
		      "raw CDB of 3 bytes: -EINVAL");
		rc = iserd_task_raw(&t, u.lun, cdb, sizeof(cdb), ISERD_DIR_READ, buf, 2 * bs);
		if (rc == 0)
			rc = iserd_task_sync(ctx, &t);
		CHECK(rc == 0, "raw READ (10) CDB");
	}

	/* Out of range: CHECK CONDITION, ILLEGAL REQUEST, LBA OUT OF RANGE, in words. */
	iserd_task_read16(&t, u.lun, cap.num_blocks, 1, bs, buf);
	rc = iserd_task_sync(ctx, &t);
	CHECK(rc == -EREMOTEIO && t.status == ISERD_STATUS_CHECK_CONDITION && t.sense_valid &&
		  t.sense_info.key == 0x5 && t.sense_info.asc == 0x21,
	      "READ beyond the end: %s", iserd_get_error(ctx));

	/* Many outstanding writes of 256 KiB (immediate + unsolicited + R2T data), then reads. */
	{
		uint8_t *big = malloc(64u << 18), *back = malloc(64u << 18);
		uint32_t per = (256u << 10) / bs;

		for (i = 0; i < (64 << 18); i++)
			big[i] = (uint8_t)((i >> 9) * 31 + i);
		g_in_call = 1;
		for (i = 0; i < 64; i++) {
			iserd_task_write16(&tasks[i], u.lun, 4096 + (uint64_t)i * per, per, bs,
					   big + ((size_t)i << 18), false);
			rc = iserd_task_submit(ctx, &tasks[i], cb, &many);
			if (rc < 0)
				break;
		}
		g_in_call = 0;
		CHECK(rc == 0 && many.n == 0,
		      "64 writes of 256 KiB submitted, none completed inside");
		loop_until(ctx, &many.n, 64);
		rc = 0;
		for (i = 0; i < 64; i++)
			if (tasks[i].status != 0)
				rc = -1;
		CHECK(many.n == 64 && rc == 0 && many.inside == 0, "64 writes completed GOOD");
		many.n = 0;
		for (i = 0; i < 64; i++) {
			iserd_task_read16(&tasks[i], u.lun, 4096 + (uint64_t)i * per, per, bs,
					  back + ((size_t)i << 18));
			iserd_task_submit(ctx, &tasks[i], cb, &many);
		}
		loop_until(ctx, &many.n, 64);
		CHECK(many.n == 64 && memcmp(big, back, 64u << 18) == 0,
		      "64 reads of 256 KiB match what was written");
		free(big);
		free(back);
	}

	/* Writes the target refuses at once (beyond the end) mixed with good ones: an
	 * early CHECK CONDITION while unsolicited data is still queued or half sent. */
	{
		uint8_t *big = calloc(16, 1u << 20);
		uint32_t per = (1u << 20) / bs;
		int bad = 0, good = 0;

		many.n = 0;
		for (i = 0; i < 16; i++) {
			uint64_t lba = (i & 1) ? cap.num_blocks + (uint64_t)i * per
					       : 65536 + (uint64_t)i * per;

			iserd_task_write16(&tasks[i], u.lun, lba, per, bs, big + ((size_t)i << 20),
					   false);
			if (iserd_task_submit(ctx, &tasks[i], cb, &many) < 0)
				break;
		}
		loop_until(ctx, &many.n, 16);
		for (i = 0; i < 16; i++) {
			if ((i & 1) && tasks[i].status == ISERD_STATUS_CHECK_CONDITION &&
			    tasks[i].sense_info.key == 0x5)
				bad++;
			if (!(i & 1) && tasks[i].status == ISERD_STATUS_GOOD)
				good++;
		}
		CHECK(many.n == 16 && bad == 8 && good == 8,
		      "8 refused 1 MiB writes (ILLEGAL REQUEST) and 8 good ones: %d/%d", bad, good);
		CHECK(iserd_nop_sync(ctx) == 0, "connection still in step after early statuses");
		free(big);
	}

	/* ABORT TASK of an outstanding write; the task ends GOOD (finished first) or -ECANCELED. */
	{
		struct done w = {0}, a = {0};
		uint8_t *big = calloc(1, 8u << 20);

		iserd_task_write16(&t, u.lun, 8192, (8u << 20) / bs, bs, big, false);
		rc = iserd_task_submit(ctx, &t, cb, &w);
		g_in_call = 1;
		rc = rc == 0 ? iserd_task_abort_async(ctx, &t, tmf_cb, &a) : rc;
		g_in_call = 0;
		CHECK(rc == 0, "ABORT TASK sent");
		loop_until(ctx, &a.n, 1);
		loop_until(ctx, &w.n, 1);
		CHECK(a.n == 1 && a.status == 0 && a.inside == 0 && g_tmf_resp >= 0,
		      "ABORT TASK answered: status %d, TMF response %d", a.status, g_tmf_resp);
		CHECK(w.n == 1 && (w.status == 0 || w.status == -ECANCELED),
		      "aborted write completed once (%d)", w.status);
		CHECK(iserd_task_abort_async(ctx, &t, cb, &a) == -ENOENT,
		      "abort of a finished task: -ENOENT");
		free(big);
	}

	/* Idle for a while (ISERD_API_IDLE_MS): the target's NOP-In pings must be
	 * answered and our own keepalive pings must be answered by it. */
	if (getenv("ISERD_API_IDLE_MS") != NULL) {
		int idle = atoi(getenv("ISERD_API_IDLE_MS"));
		int zero = 0;
		struct timespec a, b;

		clock_gettime(CLOCK_MONOTONIC, &a);
		do {
			/* first half: only the target pings; second half: we ping too */
			clock_gettime(CLOCK_MONOTONIC, &b);
			if ((b.tv_sec - a.tv_sec) * 1000 + (b.tv_nsec - a.tv_nsec) / 1000000 >=
			    idle / 2)
				iserd_set_nop(ctx, 200, 2000);
			{
				struct pollfd p = {.fd = iserd_get_fd(ctx),
						   .events = (short)iserd_which_events(ctx)};

				poll(&p, 1, 50);
				if (iserd_service(ctx, p.revents) < 0)
					break;
			}
			clock_gettime(CLOCK_MONOTONIC, &b);
		} while ((b.tv_sec - a.tv_sec) * 1000 + (b.tv_nsec - a.tv_nsec) / 1000000 < idle &&
			 zero == 0);
		iserd_set_nop(ctx, 0, 0);
		CHECK(iserd_is_logged_in(ctx),
		      "still logged in after %d ms idle (NOP-In answered, "
		      "keepalive pings answered)",
		      idle);
		iserd_task_test_unit_ready(&t, u.lun);
		rc = iserd_task_sync(ctx, &t);
		CHECK(rc == 0 || rc == -EREMOTEIO, "command after the idle period: %d", rc);
	}

	rc = iserd_lun_reset_sync(ctx, u.lun);
	CHECK(rc == 0, "LOGICAL UNIT RESET: %s", rc ? iserd_get_error(ctx) : "function complete");

	iserd_task_init(&t);
	CHECK(iserd_task_submit(ctx, &t, cb, &d) == -EINVAL, "task without a CDB: -EINVAL");

	d.n = 0;
	g_in_call = 1;
	rc = iserd_logout_async(ctx, cb, &d);
	g_in_call = 0;
	CHECK(rc == 0, "logout_async");
	loop_until(ctx, &d.n, 1);
	CHECK(d.n == 1 && d.status == 0 && !iserd_is_logged_in(ctx), "logged out");
	iserd_task_test_unit_ready(&t, u.lun);
	CHECK(iserd_task_submit(ctx, &t, cb, &d) == -ENOTCONN, "submit after logout: -ENOTCONN");
	iserd_context_destroy(ctx);
	free(buf);
	free(buf2);
	printf("%s: %d failure%s\n", g_fail ? "FAIL" : "PASS", g_fail, g_fail == 1 ? "" : "s");
	return g_fail ? 1 : 0;
}
