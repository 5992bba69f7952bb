/* The per-thread block cache (src/util/mem.h). */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "util/mem.h"

static struct isd_mem_stats
stats(void)
{
	struct isd_mem_stats s;

	isd_mem_get_stats(&s);
	return s;
}

/* A freed block is the next one of its class handed out, zeroed by zalloc. */
static void
test_reuse_and_zero(void **state)
{
	struct isd_mem_stats s0, s1;
	uint8_t *a, *b;

	(void)state;
	isd_mem_set_cache_limit((size_t)64 << 20);
	isd_mem_thread_drain();
	s0 = stats();
	a = isd_mem_alloc(1000);
	assert_non_null(a);
	assert_int_equal((uintptr_t)a % 16, 0);
	memset(a, 0xab, 1000);
	isd_mem_free(a);
	/* 1000 and 990 bytes (plus the 16-byte header) share the 1024-byte class */
	b = isd_mem_zalloc(990);
	assert_ptr_equal(a, b);
	for (int i = 0; i < 990; i++)
		assert_int_equal(b[i], 0);
	s1 = stats();
	assert_int_equal(s1.allocs - s0.allocs, 2);
	assert_int_equal(s1.sys_allocs - s0.sys_allocs, 1);
	assert_int_equal(s1.cached_blocks, s0.cached_blocks);
	isd_mem_free(b);
	assert_int_equal(stats().cached_blocks, s0.cached_blocks + 1);
	isd_mem_thread_drain();
	assert_int_equal(stats().cached_blocks, 0);
	assert_int_equal(stats().cached_bytes, 0);
}

/*
 * Aligned blocks: aligned as asked, writable to their last byte (ASan would
 * see an overrun), reused from the cache like any other block, and refused
 * for an alignment that is not a power of two.
 */
static void
test_aligned(void **state)
{
	static const size_t aligns[] = { 1, 16, 32, 512, 4096, 65536 };
	static const size_t sizes[] = { 1, 512, 4000, 4096, 131072 };
	struct isd_mem_stats s0, s1;
	uint8_t *a, *b;

	(void)state;
	isd_mem_set_cache_limit((size_t)64 << 20);
	isd_mem_thread_drain();
	for (size_t i = 0; i < sizeof(aligns) / sizeof(aligns[0]); i++) {
		for (size_t j = 0; j < sizeof(sizes) / sizeof(sizes[0]); j++) {
			a = isd_mem_alloc_aligned(sizes[j], aligns[i]);
			assert_non_null(a);
			assert_int_equal((uintptr_t)a % (aligns[i] < 16 ? 16 : aligns[i]), 0);
			memset(a, 0x5a, sizes[j]);
			isd_mem_free(a);
		}
	}
	s0 = stats();
	a = isd_mem_alloc_aligned(4096, 512);
	isd_mem_free(a);
	b = isd_mem_alloc_aligned(4096, 512);
	assert_ptr_equal(a, b);
	isd_mem_free(b);
	s1 = stats();
	assert_int_equal(s1.sys_allocs, s0.sys_allocs);
	assert_int_equal(s1.allocs - s0.allocs, 2);
	/* a trailing part aligned: p + offset */
	for (size_t off = 0; off < 200; off += 8) {
		a = isd_mem_alloc_at(4096 + off, 512, off);
		assert_non_null(a);
		assert_int_equal(((uintptr_t)a + off) % 512, 0);
		memset(a, 0x11, 4096 + off);
		isd_mem_free(a);
	}
	assert_null(isd_mem_alloc_aligned(64, 48));
	assert_null(isd_mem_alloc_aligned(64, (size_t)1 << 20));
	assert_null(isd_mem_alloc_aligned(SIZE_MAX - 100, 512));
	isd_mem_thread_drain();
}

/* Rounding is at most 25 %: a block of each size up to 16 MiB fits what was asked. */
static void
test_classes(void **state)
{
	static const size_t sizes[] = { 0, 1, 48, 49, 64, 100, 4096, 4097, 65536, 131072,
					131073, 1u << 20, (16u << 20) - 16, 16u << 20, 20u << 20 };

	(void)state;
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		uint8_t *p = isd_mem_alloc(sizes[i]);

		assert_non_null(p);
		if (sizes[i] > 0) {
			p[0] = 1;
			p[sizes[i] - 1] = 2;       /* ASan: the whole size is addressable */
		}
		isd_mem_free(p);
	}
	isd_mem_free(NULL);
	assert_null(isd_mem_alloc(SIZE_MAX - 8));
	isd_mem_thread_drain();
}

/* Past the limit a freed block goes back to malloc; limit 0 keeps nothing. */
static void
test_limit(void **state)
{
	struct isd_mem_stats s0, s1;
	void *p[8];

	(void)state;
	isd_mem_thread_drain();
	isd_mem_set_cache_limit(3 * 4096);
	s0 = stats();
	for (int i = 0; i < 8; i++)
		p[i] = isd_mem_alloc(4000);     /* class 4096 */
	for (int i = 0; i < 8; i++)
		isd_mem_free(p[i]);
	s1 = stats();
	assert_int_equal(s1.cached_blocks - s0.cached_blocks, 3);
	assert_true(s1.cached_bytes <= 3 * 4096);
	assert_int_equal(s1.sys_frees - s0.sys_frees, 5);
	isd_mem_set_cache_limit(0);
	isd_mem_free(isd_mem_alloc(10));
	assert_int_equal(stats().cached_blocks, s1.cached_blocks);
	isd_mem_thread_drain();
	isd_mem_set_cache_limit((size_t)64 << 20);
}

static void *
other_thread(void *arg)
{
	void **pp = arg;

	/* frees a block the main thread made, then makes one of its own and exits */
	isd_mem_free(pp[0]);
	pp[1] = isd_mem_alloc(200);
	isd_mem_free(isd_mem_alloc(300));
	return NULL;
}

/* Blocks cross threads; a thread that exits gives its cache back, its
 * counters stay in the totals. */
static void
test_threads(void **state)
{
	struct isd_mem_stats s0, s1;
	void *pp[2];
	pthread_t th;

	(void)state;
	isd_mem_thread_drain();
	s0 = stats();
	pp[0] = isd_mem_alloc(100);
	assert_int_equal(pthread_create(&th, NULL, other_thread, pp), 0);
	assert_int_equal(pthread_join(th, NULL), 0);
	isd_mem_free(pp[1]);
	s1 = stats();
	assert_int_equal(s1.allocs - s0.allocs, 3);
	assert_int_equal(s1.frees - s0.frees, 3);
	/* the other thread's two cached blocks went back to malloc when it exited */
	assert_int_equal(s1.sys_frees - s0.sys_frees, 2);
	assert_int_equal(s1.cached_blocks - s0.cached_blocks, 1);
	isd_mem_thread_drain();
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_reuse_and_zero),
		cmocka_unit_test(test_classes),
		cmocka_unit_test(test_aligned),
		cmocka_unit_test(test_limit),
		cmocka_unit_test(test_threads),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
