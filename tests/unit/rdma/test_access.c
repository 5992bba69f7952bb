/*
 * Access rights of target memory (isd_rdma_access_plan): no lasting
 * registration ever grants a peer anything, on any fabric; only an iWARP RDMA
 * Read sink gets a per-command registration with remote write; a read-only LUN
 * gets no write access at all and is never a read sink.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <string.h>

#include "rdma/rdma.h"

static const enum isd_rdma_fabric fabrics[] = {
	ISD_RDMA_FABRIC_IB, ISD_RDMA_FABRIC_ROCE, ISD_RDMA_FABRIC_IWARP,
};
static const enum isd_rdma_mem_kind kinds[] = {
	ISD_RDMA_MEM_POOL, ISD_RDMA_MEM_LUN, ISD_RDMA_MEM_LUN_RO,
};
static const enum isd_rdma_use uses[] = {
	ISD_RDMA_USE_STANDING, ISD_RDMA_USE_WRITE_SOURCE, ISD_RDMA_USE_READ_SINK,
};

/* Every combination: the standing registration is local only. */
static void
test_no_standing_remote_access_anywhere(void **state)
{
	struct isd_rdma_access a;

	(void)state;
	for (size_t f = 0; f < 3; f++) {
		for (size_t k = 0; k < 3; k++) {
			for (size_t u = 0; u < 3; u++) {
				int rc = isd_rdma_access_plan(fabrics[f], kinds[k], uses[u], &a);

				if (rc < 0)
					continue;
				assert_false(isd_rdma_access_is_remote(a.standing));
				assert_false(a.standing & IBV_ACCESS_REMOTE_READ);
				assert_false(a.per_cmd & IBV_ACCESS_REMOTE_READ);
			}
		}
	}
}

static void
check(enum isd_rdma_fabric f, enum isd_rdma_mem_kind k, enum isd_rdma_use u, int rc_want,
      int standing, int per_cmd)
{
	struct isd_rdma_access a;

	assert_int_equal(isd_rdma_access_plan(f, k, u, &a), rc_want);
	if (rc_want < 0)
		return;
	assert_int_equal(a.standing, standing);
	assert_int_equal(a.per_cmd, per_cmd);
}

#define LW IBV_ACCESS_LOCAL_WRITE
#define RW IBV_ACCESS_REMOTE_WRITE

/* InfiniBand and RoCE: the target's own RDMA Read and Write need local keys
 * only, so nothing is ever registered with remote access. */
static void
local_only(enum isd_rdma_fabric f)
{
	check(f, ISD_RDMA_MEM_POOL, ISD_RDMA_USE_STANDING, 0, LW, 0);
	check(f, ISD_RDMA_MEM_POOL, ISD_RDMA_USE_READ_SINK, 0, LW, 0);
	check(f, ISD_RDMA_MEM_POOL, ISD_RDMA_USE_WRITE_SOURCE, 0, LW, 0);
	check(f, ISD_RDMA_MEM_LUN, ISD_RDMA_USE_STANDING, 0, LW, 0);
	check(f, ISD_RDMA_MEM_LUN, ISD_RDMA_USE_READ_SINK, 0, LW, 0);
	check(f, ISD_RDMA_MEM_LUN, ISD_RDMA_USE_WRITE_SOURCE, 0, LW, 0);
	check(f, ISD_RDMA_MEM_LUN_RO, ISD_RDMA_USE_STANDING, 0, 0, 0);
	check(f, ISD_RDMA_MEM_LUN_RO, ISD_RDMA_USE_WRITE_SOURCE, 0, 0, 0);
	check(f, ISD_RDMA_MEM_LUN_RO, ISD_RDMA_USE_READ_SINK, -EACCES, 0, 0);
}

static void
test_infiniband(void **state)
{
	(void)state;
	local_only(ISD_RDMA_FABRIC_IB);
}

static void
test_roce(void **state)
{
	(void)state;
	local_only(ISD_RDMA_FABRIC_ROCE);
}

/* iWARP: lasting registrations are local too; a read sink is registered per
 * command with remote write (and never remote read). */
static void
test_iwarp(void **state)
{
	(void)state;
	check(ISD_RDMA_FABRIC_IWARP, ISD_RDMA_MEM_POOL, ISD_RDMA_USE_STANDING, 0, LW, 0);
	check(ISD_RDMA_FABRIC_IWARP, ISD_RDMA_MEM_POOL, ISD_RDMA_USE_WRITE_SOURCE, 0, LW, 0);
	check(ISD_RDMA_FABRIC_IWARP, ISD_RDMA_MEM_POOL, ISD_RDMA_USE_READ_SINK, 0, LW, LW | RW);
	check(ISD_RDMA_FABRIC_IWARP, ISD_RDMA_MEM_LUN, ISD_RDMA_USE_STANDING, 0, LW, 0);
	check(ISD_RDMA_FABRIC_IWARP, ISD_RDMA_MEM_LUN, ISD_RDMA_USE_WRITE_SOURCE, 0, LW, 0);
	check(ISD_RDMA_FABRIC_IWARP, ISD_RDMA_MEM_LUN, ISD_RDMA_USE_READ_SINK, 0, LW, LW | RW);
	check(ISD_RDMA_FABRIC_IWARP, ISD_RDMA_MEM_LUN_RO, ISD_RDMA_USE_WRITE_SOURCE, 0, 0, 0);
	check(ISD_RDMA_FABRIC_IWARP, ISD_RDMA_MEM_LUN_RO, ISD_RDMA_USE_READ_SINK, -EACCES, 0, 0);
}

static void
test_remote_flags_and_bad_values(void **state)
{
	struct isd_rdma_access a;

	(void)state;
	assert_false(isd_rdma_access_is_remote(0));
	assert_false(isd_rdma_access_is_remote(IBV_ACCESS_LOCAL_WRITE));
	assert_true(isd_rdma_access_is_remote(IBV_ACCESS_REMOTE_WRITE));
	assert_true(isd_rdma_access_is_remote(IBV_ACCESS_REMOTE_READ | IBV_ACCESS_LOCAL_WRITE));
	assert_true(isd_rdma_access_is_remote(IBV_ACCESS_REMOTE_ATOMIC));
	assert_true(isd_rdma_access_is_remote(IBV_ACCESS_MW_BIND));
	assert_int_equal(isd_rdma_access_plan(ISD_RDMA_FABRIC_IB, (enum isd_rdma_mem_kind)7,
					      ISD_RDMA_USE_STANDING, &a),
			 -EINVAL);
	assert_int_equal(isd_rdma_access_plan(ISD_RDMA_FABRIC_IB, ISD_RDMA_MEM_POOL,
					      (enum isd_rdma_use)7, &a),
			 -EINVAL);
}

/* The registration helper for lasting MRs refuses remote rights before it
 * touches the device: remote access exists only through isd_rdma_remote_mr_reg. */
static void
test_lasting_registration_refuses_remote_access(void **state)
{
	struct isd_rdma_dev d = { .name = "fake0" };
	struct ibv_mr *mr = NULL;
	static uint8_t mem[4096];
	char err[256] = "";

	(void)state;
	assert_int_equal(isd_rdma_mr_reg(&d, mem, sizeof(mem),
					 IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE, &mr, err,
					 sizeof(err)),
			 -EPERM);
	assert_null(mr);
	assert_non_null(strstr(err, "remote access"));
	assert_int_equal(isd_rdma_mr_reg(&d, mem, sizeof(mem), IBV_ACCESS_REMOTE_READ, &mr, err,
					 sizeof(err)),
			 -EPERM);
	assert_null(mr);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_no_standing_remote_access_anywhere),
		cmocka_unit_test(test_infiniband),
		cmocka_unit_test(test_roce),
		cmocka_unit_test(test_iwarp),
		cmocka_unit_test(test_remote_flags_and_bad_values),
		cmocka_unit_test(test_lasting_registration_refuses_remote_access),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
