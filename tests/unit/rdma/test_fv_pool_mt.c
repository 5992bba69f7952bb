/*
 * The registered pool and the memory registry from several threads at once,
 * as reactors use them (on the fake verbs device, so that lookups return
 * real lkeys): workers allocate buffers of every class and a few big ones,
 * look each up, write them, and free them, some on another worker (through a
 * hand-off queue); meanwhile another thread adds and removes regions, which
 * replaces the lookup table under the workers. Every lookup of a live buffer
 * must find it with its slab's or its own MR; at the end no buffer is out and
 * the pool trims to nothing. Run under ThreadSanitizer by CI (a lookup reading
 * a freed table or region is a data race there, and a use after free under
 * AddressSanitizer).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "fakeverbs.h"
#include "rdma/rdma.h"

#define WORKERS 3
#define ITERS 4000
#define HELD 24
#define HANDOFF 64

static struct isd_rdma_dev *g_dev;
static uint8_t g_lun[1u << 20];         /* a region present all along */
static int g_stop;                      /* atomic */
static int g_failures;                  /* atomic */

/* Buffers one worker hands to another to free. */
static pthread_mutex_t g_hq_lock = PTHREAD_MUTEX_INITIALIZER;
static struct {
	void *buf;
	size_t len;
} g_hq[HANDOFF];
static unsigned g_hq_n;

static void
failed(void)
{
	__atomic_fetch_add(&g_failures, 1, __ATOMIC_RELAXED);
}

static size_t
pick_len(unsigned *seed)
{
	unsigned r = (unsigned)rand_r(seed);

	if (r % 97 == 0)
		return (2u << 20) + (r % 5000);         /* a big buffer: a region of its own */
	return (size_t)1 + r % (256u << 10);            /* 4 KiB .. 256 KiB classes */
}

static void
use(void *buf, size_t len, uint8_t tag)
{
	enum isd_rdma_mem_kind kind;
	uint32_t lkey;

	if (buf == NULL) {
		failed();
		return;
	}
	if (isd_rdma_mem_find(g_dev, buf, len, &lkey, &kind) != 0 || kind != ISD_RDMA_MEM_POOL)
		failed();
	((uint8_t *)buf)[0] = tag;
	((uint8_t *)buf)[len - 1] = tag;
	if (isd_rdma_mem_find(g_dev, g_lun + 4096, 8192, &lkey, &kind) != 0 ||
	    kind != ISD_RDMA_MEM_LUN)
		failed();
}

static void *
worker(void *arg)
{
	unsigned seed = (unsigned)(uintptr_t)arg;
	void *held[HELD] = { 0 };
	size_t lens[HELD] = { 0 };

	for (unsigned i = 0; i < ITERS; i++) {
		unsigned k = i % HELD;

		if (held[k] != NULL) {
			if (((uint8_t *)held[k])[0] != (uint8_t)k)
				failed();
			/* every third one is freed by some other worker */
			pthread_mutex_lock(&g_hq_lock);
			if (i % 3 == 0 && g_hq_n < HANDOFF) {
				g_hq[g_hq_n].buf = held[k];
				g_hq[g_hq_n].len = lens[k];
				g_hq_n++;
				held[k] = NULL;
			}
			pthread_mutex_unlock(&g_hq_lock);
			if (held[k] != NULL)
				isd_rdma_buf_free(held[k], lens[k]);
		}
		/* free what others handed over */
		pthread_mutex_lock(&g_hq_lock);
		while (g_hq_n > 0 && i % 2 == 1) {
			g_hq_n--;
			isd_rdma_buf_free(g_hq[g_hq_n].buf, g_hq[g_hq_n].len);
		}
		pthread_mutex_unlock(&g_hq_lock);
		lens[k] = pick_len(&seed);
		held[k] = isd_rdma_buf_alloc(lens[k]);
		use(held[k], lens[k], (uint8_t)k);
	}
	for (unsigned k = 0; k < HELD; k++)
		isd_rdma_buf_free(held[k], lens[k]);
	return NULL;
}

/* Adds and removes regions until told to stop: each change is a new table. */
static void *
churn(void *arg)
{
	static uint8_t areas[8][1u << 16];
	char err[256];
	unsigned n = 0;

	(void)arg;
	while (!__atomic_load_n(&g_stop, __ATOMIC_RELAXED)) {
		uint8_t *a = areas[n % 8];

		if (isd_rdma_mem_add(a, sizeof(areas[0]), ISD_RDMA_MEM_LUN, err, sizeof(err)) != 0)
			failed();
		isd_rdma_mem_remove(areas[(n + 4) % 8]);
		n++;
	}
	for (unsigned i = 0; i < 8; i++)
		isd_rdma_mem_remove(areas[i]);
	return NULL;
}

static void
test_pool_and_registry_from_threads(void **state)
{
	struct ibv_context **devs;
	pthread_t w[WORKERS], c;
	struct isd_rdma_stats st;
	char err[256];
	int n = 0;

	(void)state;
	devs = rdma_get_devices(&n);
	assert_non_null(devs);
	assert_true(n >= 1);
	assert_int_equal(isd_rdma_dev_get(devs[0], &g_dev, err, sizeof(err)), 0);
	assert_int_equal(isd_rdma_mem_add(g_lun, sizeof(g_lun), ISD_RDMA_MEM_LUN, err, sizeof(err)),
			 0);
	assert_int_equal(pthread_create(&c, NULL, churn, NULL), 0);
	for (uintptr_t i = 0; i < WORKERS; i++)
		assert_int_equal(pthread_create(&w[i], NULL, worker, (void *)(i * 7919 + 1)), 0);
	for (int i = 0; i < WORKERS; i++)
		assert_int_equal(pthread_join(w[i], NULL), 0);
	__atomic_store_n(&g_stop, 1, __ATOMIC_RELAXED);
	assert_int_equal(pthread_join(c, NULL), 0);
	/* what is still in the hand-off queue */
	while (g_hq_n > 0) {
		g_hq_n--;
		isd_rdma_buf_free(g_hq[g_hq_n].buf, g_hq[g_hq_n].len);
	}
	assert_int_equal(__atomic_load_n(&g_failures, __ATOMIC_RELAXED), 0);
	isd_rdma_get_stats(&st);
	assert_int_equal(st.bufs, 0);
	assert_true(st.slab_bytes > 0);
	/* the workers have exited: their caches went back, so the pool trims */
	isd_rdma_pool_trim();
	isd_rdma_get_stats(&st);
	assert_int_equal(st.slab_bytes, 0);
	assert_int_equal(st.regions, 1);
	isd_rdma_mem_remove(g_lun);
	isd_rdma_dev_put(g_dev);
	rdma_free_devices(devs);
	isd_rdma_get_stats(&st);
	assert_int_equal(st.regions, 0);
	assert_int_equal(st.mrs, 0);
	assert_int_equal(fv_live_objects(), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_pool_and_registry_from_threads),
	};

	return cmocka_run_group_tests_name("rdma_pool_mt", tests, NULL, NULL);
}
