/*
 * The registered buffer pool and the memory registry, without a device: with
 * no device open, regions are remembered (to be registered when one opens)
 * and the pool's size classes, limits and counters can be checked.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "rdma/rdma.h"

static void
test_pool_reuses_size_classes(void **state)
{
	struct isd_rdma_stats st;
	void *a, *b, *c;

	(void)state;
	a = isd_rdma_buf_alloc(5000);           /* 8 KiB class */
	assert_non_null(a);
	assert_int_equal((uintptr_t)a % 4096, 0);
	memset(a, 1, 5000);
	isd_rdma_get_stats(&st);
	assert_int_equal(st.bufs, 1);
	assert_int_equal(st.slab_bytes, ISD_RDMA_POOL_SLAB);
	assert_int_equal(st.regions, 1);
	isd_rdma_buf_free(a, 5000);
	b = isd_rdma_buf_alloc(8192);           /* same class: the same buffer back */
	assert_ptr_equal(a, b);
	c = isd_rdma_buf_alloc(4096);           /* another class: a second slab */
	assert_non_null(c);
	isd_rdma_get_stats(&st);
	assert_int_equal(st.bufs, 2);
	assert_int_equal(st.slab_bytes, 2 * ISD_RDMA_POOL_SLAB);
	isd_rdma_buf_free(b, 8192);
	isd_rdma_buf_free(c, 4096);
	isd_rdma_pool_trim();
	isd_rdma_get_stats(&st);
	assert_int_equal(st.bufs, 0);
	assert_int_equal(st.slab_bytes, 0);
	assert_int_equal(st.regions, 0);
}

static void
test_pool_big_buffers_are_regions_of_their_own(void **state)
{
	struct isd_rdma_stats st;
	size_t len = 3u << 20 | 5;
	void *a;

	(void)state;
	a = isd_rdma_buf_alloc(len);
	assert_non_null(a);
	memset(a, 2, len);
	isd_rdma_get_stats(&st);
	assert_int_equal(st.bufs, 1);
	assert_int_equal(st.slab_bytes, 0);
	assert_int_equal(st.regions, 1);
	isd_rdma_buf_free(a, len);
	isd_rdma_get_stats(&st);
	assert_int_equal(st.bufs, 0);
	assert_int_equal(st.regions, 0);
}

static void
test_registry_add_remove(void **state)
{
	static uint8_t lun[1 << 16];
	struct isd_rdma_stats st;
	char err[256];

	(void)state;
	assert_int_equal(isd_rdma_mem_add(lun, sizeof(lun), ISD_RDMA_MEM_LUN, err, sizeof(err)),
			 0);
	assert_int_equal(isd_rdma_mem_add(lun, sizeof(lun), ISD_RDMA_MEM_LUN, err, sizeof(err)),
			 -EEXIST);
	assert_int_equal(isd_rdma_mem_add(NULL, 0, ISD_RDMA_MEM_POOL, err, sizeof(err)), -EINVAL);
	isd_rdma_get_stats(&st);
	assert_int_equal(st.regions, 1);
	assert_int_equal(st.mrs, 0);            /* no device: nothing registered yet */
	isd_rdma_mem_remove(lun);
	isd_rdma_get_stats(&st);
	assert_int_equal(st.regions, 0);
}

static void
test_memlock_is_described(void **state)
{
	char s[64];

	(void)state;
	isd_rdma_init();
	isd_rdma_memlock_str(s, sizeof(s));
	assert_non_null(strstr(s, "RLIMIT_MEMLOCK"));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_pool_reuses_size_classes),
		cmocka_unit_test(test_pool_big_buffers_are_regions_of_their_own),
		cmocka_unit_test(test_registry_add_remove),
		cmocka_unit_test(test_memlock_is_described),
	};

	return cmocka_run_group_tests_name("rdma_pool", tests, NULL, NULL);
}
