/*
 * The data path allocates nothing once warm (src/util/mem.h).
 *
 * The real target (core, RAM or file LU, TCP and iSER portals) and the
 * initiator library in one process and one thread: READs and WRITEs of 4 KiB,
 * 64 KiB and 128 KiB, eight at a time, first to warm the caches, then again
 * while counting. Two counts:
 *  - over TCP, every malloc, calloc, realloc, posix_memalign, aligned_alloc,
 *    strdup and strndup call made while the target's reactor runs a turn (this
 *    binary links them with --wrap: test_fv_noalloc.wrap) must be 0: that sees
 *    allocations anywhere in the target's code, not only those that go
 *    through the block cache;
 *  - over iSER on the fake verbs device (which allocates for its own
 *    bookkeeping, so the wrapped count cannot be used there), the block
 *    cache's own counter: no block came from malloc while counting.
 * The warm-up is the same workload as the count, so the test says "the steady
 * state allocates nothing", not "nothing is ever allocated".
 */
#include <errno.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "fakeverbs.h"
#include "fv_target.h"
#include "iserd/iserd.h"
#include "reactor/reactor.h"
#include "util/mem.h"

#define INAME "iqn.1993-08.org.debian:01:fvnoalloc"
#define BS 512u
#define QD 8
#define ROUNDS 40

/* ---- counting allocator calls while the target runs ---- */

static __thread bool t_counting;
static uint64_t g_calls;

void *__real_malloc(size_t n);
void *__real_calloc(size_t m, size_t n);
void *__real_realloc(void *p, size_t n);
int __real_posix_memalign(void **p, size_t a, size_t n);
void *__real_aligned_alloc(size_t a, size_t n);
char *__real_strdup(const char *s);
char *__real_strndup(const char *s, size_t n);

static inline void
seen(void)
{
	if (t_counting)
		g_calls++;
}

void *__wrap_malloc(size_t n) { seen(); return __real_malloc(n); }
void *__wrap_calloc(size_t m, size_t n) { seen(); return __real_calloc(m, n); }
void *__wrap_realloc(void *p, size_t n) { seen(); return __real_realloc(p, n); }
int __wrap_posix_memalign(void **p, size_t a, size_t n) { seen(); return __real_posix_memalign(p, a, n); }
void *__wrap_aligned_alloc(size_t a, size_t n) { seen(); return __real_aligned_alloc(a, n); }
char *__wrap_strdup(const char *s) { seen(); return __real_strdup(s); }
char *__wrap_strndup(const char *s, size_t n) { seen(); return __real_strndup(s, n); }

struct fx {
	struct fv_target tg;
	struct iserd_context *ctx;
	uint8_t *buf;                   /* QD slots of 128 KiB */
	int done;
	int failed;
};

static void
cb(struct iserd_context *ctx, int status, void *data, void *arg)
{
	struct iserd_task *t = data;
	struct fx *f = arg;

	(void)ctx;
	f->done++;
	if (status != 0 || t->status != ISERD_STATUS_GOOD)
		f->failed++;
}

static void
pump_once(struct fx *f)
{
	t_counting = true;
	(void)isd_reactor_poll(f->tg.r, 0);
	t_counting = false;
	(void)iserd_service(f->ctx, POLLIN);
}

static void
pump_until_done(struct fx *f, int want)
{
	for (int i = 0; i < 200000 && f->done < want; i++)
		pump_once(f);
	assert_int_equal(f->done, want);
}

struct one_done {
	bool done;
	int status;
};

static void
cb_one(struct iserd_context *ctx, int status, void *data, void *arg)
{
	struct one_done *d = arg;

	(void)ctx;
	(void)data;
	d->done = true;
	d->status = status;
}

static void
connect_to(struct fx *f, const char *scheme, uint16_t port)
{
	struct iserd_url u;
	struct one_done d = { 0 };
	struct iserd_task t;
	char s[256], err[128];

	snprintf(s, sizeof(s), "%s://127.0.0.1:%u/%s/0", scheme, port, FV_TARGET_NAME);
	assert_int_equal(iserd_url_parse_full(s, &u, err, sizeof(err)), 0);
	assert_int_equal(iserd_connect_async(f->ctx, &u, ISERD_SESSION_NORMAL, cb_one, &d), 0);
	for (int i = 0; i < 200000 && !d.done; i++)
		pump_once(f);
	assert_true(d.done);
	assert_int_equal(d.status, 0);
	/* the POWER ON unit attention */
	d.done = false;
	iserd_task_test_unit_ready(&t, 0);
	assert_int_equal(iserd_task_submit(f->ctx, &t, cb_one, &d), 0);
	for (int i = 0; i < 200000 && !d.done; i++)
		pump_once(f);
	assert_true(d.done);
}

/* ROUNDS rounds of QD WRITEs then QD READs of each size. */
static void
workload(struct fx *f)
{
	static const uint32_t sizes[] = { 4096, 65536, 131072 };
	struct iserd_task t[QD];

	for (int r = 0; r < ROUNDS; r++) {
		for (size_t s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++) {
			uint32_t n = sizes[s];

			for (int w = 0; w < 2; w++) {
				f->done = 0;
				f->failed = 0;
				for (int i = 0; i < QD; i++) {
					uint64_t lba = (uint64_t)((r * QD + i) % 32) * (131072 / BS);
					uint8_t *b = f->buf + (size_t)i * 131072;

					if (w == 0)
						assert_int_equal(iserd_task_write16(&t[i], 0, lba, n / BS,
										    BS, b, false), 0);
					else
						assert_int_equal(iserd_task_read16(&t[i], 0, lba, n / BS,
										   BS, b), 0);
					assert_int_equal(iserd_task_submit(f->ctx, &t[i], cb, f), 0);
				}
				pump_until_done(f, QD);
				assert_int_equal(f->failed, 0);
			}
		}
	}
}

static void
logout(struct fx *f)
{
	struct one_done d = { 0 };

	assert_int_equal(iserd_logout_async(f->ctx, cb_one, &d), 0);
	for (int i = 0; i < 200000 && !d.done; i++)
		pump_once(f);
	assert_true(d.done);
}

static void
run(bool file_lun, bool tcp)
{
	struct fx f;
	struct isd_mem_stats m0, m1;
	uint64_t calls;

	memset(&f, 0, sizeof(f));
	fv_reset();
	fv_target_start(&f.tg, &(struct fv_target_cfg){ .lun_mib = 8, .file_lun = file_lun,
							.tcp = true });
	assert_int_equal(iserd_context_create(INAME, &f.ctx), 0);
	iserd_set_reconnect(f.ctx, ISERD_RECONNECT_OFF, 0, 0);
	f.buf = malloc((size_t)QD * 131072);
	assert_non_null(f.buf);
	memset(f.buf, 0x5a, (size_t)QD * 131072);
	connect_to(&f, tcp ? "iscsi" : "iser", tcp ? f.tg.tcp_port : f.tg.port);

	workload(&f);                   /* warm-up */
	isd_mem_get_stats(&m0);
	g_calls = 0;
	workload(&f);
	calls = g_calls;
	isd_mem_get_stats(&m1);
	print_message("%s %s LU: %d commands, %llu allocator calls in the target, "
		      "%llu block-cache requests, %llu of them from malloc\n",
		      tcp ? "TCP" : "iSER", file_lun ? "file" : "RAM", ROUNDS * 3 * 2 * QD,
		      (unsigned long long)calls, (unsigned long long)(m1.allocs - m0.allocs),
		      (unsigned long long)(m1.sys_allocs - m0.sys_allocs));
	assert_true(m1.allocs - m0.allocs >= (uint64_t)ROUNDS * 3 * 2 * QD);
	assert_int_equal(m1.sys_allocs - m0.sys_allocs, 0);
	if (tcp)
		assert_int_equal(calls, 0);

	logout(&f);
	iserd_context_destroy(f.ctx);
	for (int i = 0; i < 2000 && fv_target_iser_conns() > 0; i++)
		(void)isd_reactor_poll(f.tg.r, 0);
	for (int i = 0; i < 20; i++)
		(void)isd_reactor_poll(f.tg.r, 0);
	fv_target_assert_idle(&f.tg);
	fv_target_stop(&f.tg);
	free(f.buf);
}

static void test_tcp_ram(void **s) { (void)s; run(false, true); }
static void test_tcp_file(void **s) { (void)s; run(true, true); }
static void test_iser_ram(void **s) { (void)s; run(false, false); }
static void test_iser_file(void **s) { (void)s; run(true, false); }

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_tcp_ram),
		cmocka_unit_test(test_tcp_file),
		cmocka_unit_test(test_iser_ram),
		cmocka_unit_test(test_iser_file),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
