/*
 * Unit tests for src/rdma/rdma_regcache.c, the registration cache of the iSER
 * datamover's active role, with a fake reg/dereg in place of ibv_reg_mr/ibv_dereg_mr. Each fake
 * registration is a heap record, so ASan reports a double dereg and the
 * teardown checks that every reg got exactly one dereg.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "rdma/rdma_regcache.h"

#define PG ISD_REGCACHE_PAGE
/* Fake addresses: nothing is touched, the fake only records them. */
#define A 0x100000u
#define B 0x200000u
#define C 0x300000u
#define D 0x400000u

struct fake_mr {
	uintptr_t start;
	size_t len;
};

struct fake {
	int fail_errno; /* the next reg fails with this */
	unsigned nreg, ndereg;
	uintptr_t reg_start[64];
	size_t reg_len[64];
	uintptr_t dereg_start[64];
};

struct fix {
	struct isd_regcache rc;
	struct fake f;
};

static void *
fake_reg(void *ctx, uintptr_t start, size_t len)
{
	struct fake *f = ctx;
	struct fake_mr *mr;

	if (f->fail_errno != 0) {
		errno = f->fail_errno;
		f->fail_errno = 0;
		return NULL;
	}
	mr = malloc(sizeof(*mr));
	assert_non_null(mr);
	mr->start = start;
	mr->len = len;
	assert_true(f->nreg < 64);
	f->reg_start[f->nreg] = start;
	f->reg_len[f->nreg] = len;
	f->nreg++;
	return mr;
}

static void
fake_dereg(void *ctx, void *handle)
{
	struct fake *f = ctx;
	struct fake_mr *mr = handle;

	assert_true(f->ndereg < 64);
	f->dereg_start[f->ndereg++] = mr->start;
	free(mr);
}

static int
fix_init(void **state, uint32_t max_entries, uint64_t max_bytes)
{
	struct fix *x = calloc(1, sizeof(*x));

	if (x == NULL)
		return -1;
	if (isd_regcache_init(&x->rc, max_entries, max_bytes, fake_reg, fake_dereg, &x->f) != 0) {
		free(x);
		return -1;
	}
	*state = x;
	return 0;
}

/* 8 entries, 1 MiB: limits out of the way unless a test sets its own. */
static int
setup(void **state)
{
	return fix_init(state, 8, 1u << 20);
}

/* Flushes and checks that nothing leaked: one dereg per reg. */
static int
teardown(void **state)
{
	struct fix *x = *state;

	isd_regcache_flush(&x->rc);
	assert_int_equal(x->f.nreg, x->f.ndereg);
	assert_int_equal(isd_regcache_entries(&x->rc), 0);
	assert_int_equal(isd_regcache_bytes(&x->rc), 0);
	free(x);
	return 0;
}

/* Re-initialises the fixture's cache with other limits (nothing registered yet). */
static void
limits(struct fix *x, uint32_t max_entries, uint64_t max_bytes)
{
	assert_int_equal(x->f.nreg, 0);
	assert_int_equal(
	    isd_regcache_init(&x->rc, max_entries, max_bytes, fake_reg, fake_dereg, &x->f), 0);
}

static void
test_regcache_init_rejects_bad_limits(void **state)
{
	struct fix *x = *state;

	assert_int_equal(isd_regcache_init(&x->rc, 0, PG, fake_reg, fake_dereg, NULL), -EINVAL);
	assert_int_equal(
	    isd_regcache_init(&x->rc, ISD_REGCACHE_MAX_ENTRIES + 1, PG, fake_reg, fake_dereg, NULL),
	    -EINVAL);
	assert_int_equal(isd_regcache_init(&x->rc, 4, PG, NULL, fake_dereg, NULL), -EINVAL);
	assert_int_equal(isd_regcache_init(&x->rc, 4, PG, fake_reg, NULL, NULL), -EINVAL);
	limits(x, ISD_REGCACHE_MAX_ENTRIES, PG);
}

static void
test_regcache_page_rounding(void **state)
{
	struct fix *x = *state;
	struct isd_regcache_ent *e1, *e2, *e3;

	/* inside one page */
	e1 = isd_regcache_get(&x->rc, A + 0x10, 100);
	assert_non_null(e1);
	assert_int_equal(x->f.reg_start[0], A);
	assert_int_equal(x->f.reg_len[0], PG);
	assert_int_equal(e1->start, A);
	assert_int_equal(e1->end, A + PG);
	/* crossing a page boundary: both pages */
	e2 = isd_regcache_get(&x->rc, B + PG - 8, 16);
	assert_non_null(e2);
	assert_int_equal(x->f.reg_start[1], B);
	assert_int_equal(x->f.reg_len[1], 2 * PG);
	/* already aligned: exactly its pages, none beyond */
	e3 = isd_regcache_get(&x->rc, C, 2 * PG);
	assert_non_null(e3);
	assert_int_equal(x->f.reg_start[2], C);
	assert_int_equal(x->f.reg_len[2], 2 * PG);
	assert_int_equal(isd_regcache_bytes(&x->rc), 5 * PG);
	isd_regcache_put(&x->rc, e1);
	isd_regcache_put(&x->rc, e2);
	isd_regcache_put(&x->rc, e3);
}

static void
test_regcache_hit_same_and_sub_range(void **state)
{
	struct fix *x = *state;
	struct isd_regcache_ent *e, *h1, *h2;
	uint64_t lru;

	e = isd_regcache_get(&x->rc, A, 16 * PG);
	assert_non_null(e);
	assert_int_equal(((struct fake_mr *)e->handle)->start, A);
	lru = e->lru;
	h1 = isd_regcache_get(&x->rc, A, 16 * PG);
	assert_ptr_equal(h1, e);
	assert_true(e->lru > lru);
	/* a sub-range, unaligned, rounds to pages inside the entry */
	h2 = isd_regcache_get(&x->rc, A + PG + 10, 3 * PG);
	assert_ptr_equal(h2, e);
	assert_int_equal(x->f.nreg, 1);
	assert_int_equal(e->refs, 3);
	assert_int_equal(isd_regcache_entries(&x->rc), 1);
	assert_int_equal(isd_regcache_bytes(&x->rc), 16 * PG);
	/* reaching past the entry's end is a miss */
	h1 = isd_regcache_get(&x->rc, A + 15 * PG, 2 * PG);
	assert_non_null(h1);
	assert_ptr_not_equal(h1, e);
	assert_int_equal(x->f.nreg, 2);
	isd_regcache_put(&x->rc, h1);
	isd_regcache_put(&x->rc, e);
	isd_regcache_put(&x->rc, e);
	isd_regcache_put(&x->rc, e);
}

static void
test_regcache_refs_and_put(void **state)
{
	struct fix *x = *state;
	struct isd_regcache_ent *e;

	e = isd_regcache_get(&x->rc, A, PG);
	assert_non_null(e);
	assert_int_equal(e->refs, 1);
	assert_int_equal(isd_regcache_in_use(&x->rc), 1);
	assert_ptr_equal(isd_regcache_get(&x->rc, A, PG), e);
	assert_int_equal(e->refs, 2);
	isd_regcache_put(&x->rc, e);
	assert_int_equal(e->refs, 1);
	isd_regcache_put(&x->rc, e);
	assert_int_equal(e->refs, 0);
	/* idle but still cached: registered, and the next get is a hit */
	assert_int_equal(isd_regcache_in_use(&x->rc), 0);
	assert_int_equal(isd_regcache_entries(&x->rc), 1);
	assert_int_equal(x->f.ndereg, 0);
	assert_ptr_equal(isd_regcache_get(&x->rc, A, PG), e);
	assert_int_equal(x->f.nreg, 1);
	isd_regcache_put(&x->rc, e);
	/* an extra put does not underflow */
	isd_regcache_put(&x->rc, e);
	assert_int_equal(e->refs, 0);
	assert_int_equal(isd_regcache_entries(&x->rc), 1);
}

static void
test_regcache_lru_eviction_by_bytes(void **state)
{
	struct fix *x = *state;
	struct isd_regcache_ent *a, *b, *c, *d;

	limits(x, 8, 3 * PG);
	a = isd_regcache_get(&x->rc, A, PG);
	b = isd_regcache_get(&x->rc, B, PG);
	c = isd_regcache_get(&x->rc, C, PG);
	assert_non_null(a);
	assert_non_null(b);
	assert_non_null(c);
	isd_regcache_put(&x->rc, a);
	isd_regcache_put(&x->rc, b);
	isd_regcache_put(&x->rc, c);
	/* touch A: B becomes the least recently used */
	assert_ptr_equal(isd_regcache_get(&x->rc, A, PG), a);
	isd_regcache_put(&x->rc, a);
	d = isd_regcache_get(&x->rc, D, PG);
	assert_non_null(d);
	assert_int_equal(x->f.ndereg, 1);
	assert_int_equal(x->f.dereg_start[0], B);
	assert_int_equal(isd_regcache_bytes(&x->rc), 3 * PG);
	assert_int_equal(isd_regcache_entries(&x->rc), 3);
	/* a range of two pages needs two victims: C, then A */
	isd_regcache_put(&x->rc, d);
	b = isd_regcache_get(&x->rc, B, 2 * PG);
	assert_non_null(b);
	assert_int_equal(x->f.ndereg, 3);
	assert_int_equal(x->f.dereg_start[1], C);
	assert_int_equal(x->f.dereg_start[2], A);
	assert_int_equal(isd_regcache_bytes(&x->rc), 3 * PG);
	isd_regcache_put(&x->rc, b);
}

static void
test_regcache_lru_eviction_by_entries(void **state)
{
	struct fix *x = *state;
	struct isd_regcache_ent *a, *b, *c;

	limits(x, 2, 1u << 30);
	a = isd_regcache_get(&x->rc, A, PG);
	b = isd_regcache_get(&x->rc, B, PG);
	assert_non_null(a);
	assert_non_null(b);
	isd_regcache_put(&x->rc, b);
	isd_regcache_put(&x->rc, a);
	/* a hit makes A the most recently used: B is the victim */
	assert_ptr_equal(isd_regcache_get(&x->rc, A, PG), a);
	isd_regcache_put(&x->rc, a);
	c = isd_regcache_get(&x->rc, C, PG);
	assert_non_null(c);
	assert_int_equal(x->f.ndereg, 1);
	assert_int_equal(x->f.dereg_start[0], B);
	assert_int_equal(isd_regcache_entries(&x->rc), 2);
	/* the slot freed is the one reused */
	assert_ptr_equal(c, b);
	isd_regcache_put(&x->rc, c);
}

static void
test_regcache_in_use_never_evicted(void **state)
{
	struct fix *x = *state;
	struct isd_regcache_ent *a, *b, *c;

	limits(x, 2, 1u << 30);
	a = isd_regcache_get(&x->rc, A, PG);
	b = isd_regcache_get(&x->rc, B, PG);
	assert_non_null(a);
	assert_non_null(b);
	errno = 0;
	assert_null(isd_regcache_get(&x->rc, C, PG));
	assert_int_equal(errno, ENOSPC);
	assert_int_equal(x->f.nreg, 2);
	assert_int_equal(x->f.ndereg, 0);
	assert_int_equal(isd_regcache_in_use(&x->rc), 2);
	/* one put frees a slot for the next get */
	isd_regcache_put(&x->rc, a);
	c = isd_regcache_get(&x->rc, C, PG);
	assert_non_null(c);
	assert_int_equal(x->f.dereg_start[0], A);
	isd_regcache_put(&x->rc, b);
	isd_regcache_put(&x->rc, c);
}

static void
test_regcache_byte_limit_yields_to_entries_in_use(void **state)
{
	struct fix *x = *state;
	struct isd_regcache_ent *a, *b, *c;

	/* in-use entries go over the byte limit rather than fail a command */
	limits(x, 4, 2 * PG);
	a = isd_regcache_get(&x->rc, A, PG);
	b = isd_regcache_get(&x->rc, B, PG);
	c = isd_regcache_get(&x->rc, C, PG);
	assert_non_null(a);
	assert_non_null(b);
	assert_non_null(c);
	assert_int_equal(x->f.ndereg, 0);
	assert_int_equal(isd_regcache_bytes(&x->rc), 3 * PG);
	isd_regcache_put(&x->rc, a);
	isd_regcache_put(&x->rc, b);
	isd_regcache_put(&x->rc, c);
	/* the next miss brings it back under: A and B (oldest) go, C stays */
	a = isd_regcache_get(&x->rc, D, PG);
	assert_non_null(a);
	assert_int_equal(x->f.ndereg, 2);
	assert_int_equal(x->f.dereg_start[0], A);
	assert_int_equal(x->f.dereg_start[1], B);
	assert_int_equal(isd_regcache_bytes(&x->rc), 2 * PG);
	isd_regcache_put(&x->rc, a);
}

static void
test_regcache_covering_range_drops_idle_inside(void **state)
{
	struct fix *x = *state;
	struct isd_regcache_ent *e1, *e2, *held, *other, *big;

	e1 = isd_regcache_get(&x->rc, A, PG);
	e2 = isd_regcache_get(&x->rc, A + 2 * PG, PG);
	held = isd_regcache_get(&x->rc, A + 4 * PG, PG);
	other = isd_regcache_get(&x->rc, B, PG);
	assert_non_null(e1);
	assert_non_null(e2);
	assert_non_null(held);
	assert_non_null(other);
	isd_regcache_put(&x->rc, e1);
	isd_regcache_put(&x->rc, e2);
	isd_regcache_put(&x->rc, other);
	/* covers A..A+8 pages: the idle entries inside go, the one in use and
	 * the one outside stay (no limit is near) */
	big = isd_regcache_get(&x->rc, A, 8 * PG);
	assert_non_null(big);
	assert_int_equal(x->f.ndereg, 2);
	assert_int_equal(x->f.dereg_start[0], A);
	assert_int_equal(x->f.dereg_start[1], A + 2 * PG);
	assert_int_equal(isd_regcache_entries(&x->rc), 3);
	assert_int_equal(isd_regcache_bytes(&x->rc), 10 * PG);
	assert_int_equal(held->refs, 1);
	assert_int_equal(held->start, A + 4 * PG);
	assert_int_equal(other->start, B);
	/* a range partly outside an idle entry does not drop it */
	isd_regcache_put(&x->rc, big);
	e1 = isd_regcache_get(&x->rc, A + 7 * PG, 2 * PG);
	assert_non_null(e1);
	assert_int_equal(x->f.ndereg, 2);
	isd_regcache_put(&x->rc, e1);
	isd_regcache_put(&x->rc, held);
}

static void
test_regcache_reg_failure_propagates_errno(void **state)
{
	struct fix *x = *state;
	struct isd_regcache_ent *e;

	x->f.fail_errno = ENOMEM;
	errno = 0;
	assert_null(isd_regcache_get(&x->rc, A, PG));
	assert_int_equal(errno, ENOMEM);
	assert_int_equal(isd_regcache_entries(&x->rc), 0);
	assert_int_equal(isd_regcache_in_use(&x->rc), 0);
	assert_int_equal(isd_regcache_bytes(&x->rc), 0);
	x->f.fail_errno = EPERM;
	assert_null(isd_regcache_get(&x->rc, A, PG));
	assert_int_equal(errno, EPERM);
	/* nothing was left behind: the retry registers afresh */
	e = isd_regcache_get(&x->rc, A, PG);
	assert_non_null(e);
	assert_int_equal(x->f.nreg, 1);
	assert_int_equal(e->refs, 1);
	assert_int_equal(isd_regcache_entries(&x->rc), 1);
	isd_regcache_put(&x->rc, e);
}

static void
test_regcache_forget_idle_deregisters_now(void **state)
{
	struct fix *x = *state;
	struct isd_regcache_ent *a, *b;

	a = isd_regcache_get(&x->rc, A, 2 * PG);
	b = isd_regcache_get(&x->rc, B, PG);
	assert_non_null(a);
	assert_non_null(b);
	isd_regcache_put(&x->rc, a);
	isd_regcache_put(&x->rc, b);
	/* touching ranges that do not overlap leave it alone */
	isd_regcache_forget(&x->rc, A - PG, PG);
	isd_regcache_forget(&x->rc, A + 2 * PG, PG);
	assert_int_equal(x->f.ndereg, 0);
	/* one byte of overlap is enough */
	isd_regcache_forget(&x->rc, A + 2 * PG - 1, 1);
	assert_int_equal(x->f.ndereg, 1);
	assert_int_equal(x->f.dereg_start[0], A);
	assert_int_equal(isd_regcache_entries(&x->rc), 1);
	assert_int_equal(isd_regcache_bytes(&x->rc), PG);
	/* the next get registers again */
	a = isd_regcache_get(&x->rc, A, PG);
	assert_non_null(a);
	assert_int_equal(x->f.nreg, 3);
	isd_regcache_put(&x->rc, a);
}

static void
test_regcache_forget_in_use_defers_to_last_put(void **state)
{
	struct fix *x = *state;
	struct isd_regcache_ent *e, *n;

	e = isd_regcache_get(&x->rc, A, PG);
	assert_non_null(e);
	assert_ptr_equal(isd_regcache_get(&x->rc, A, PG), e);
	isd_regcache_forget(&x->rc, A, PG);
	assert_int_equal(x->f.ndereg, 0);
	assert_true(e->dead);
	/* dead: not a hit any more, a fresh registration is made beside it */
	n = isd_regcache_get(&x->rc, A, PG);
	assert_non_null(n);
	assert_ptr_not_equal(n, e);
	assert_int_equal(x->f.nreg, 2);
	assert_int_equal(isd_regcache_entries(&x->rc), 2);
	assert_int_equal(isd_regcache_bytes(&x->rc), 2 * PG);
	isd_regcache_put(&x->rc, e);
	assert_int_equal(x->f.ndereg, 0);
	isd_regcache_put(&x->rc, e);
	assert_int_equal(x->f.ndereg, 1);
	assert_int_equal(isd_regcache_entries(&x->rc), 1);
	assert_int_equal(isd_regcache_bytes(&x->rc), PG);
	/* the new entry is a plain cached one: kept after its put */
	isd_regcache_put(&x->rc, n);
	assert_int_equal(x->f.ndereg, 1);
	assert_ptr_equal(isd_regcache_get(&x->rc, A, PG), n);
	isd_regcache_put(&x->rc, n);
}

static void
test_regcache_flush_deregisters_everything(void **state)
{
	struct fix *x = *state;
	struct isd_regcache_ent *a, *b, *c;

	a = isd_regcache_get(&x->rc, A, PG);
	b = isd_regcache_get(&x->rc, B, 2 * PG);
	c = isd_regcache_get(&x->rc, C, 3 * PG);
	assert_non_null(a);
	assert_non_null(b);
	assert_non_null(c);
	isd_regcache_put(&x->rc, a);
	isd_regcache_forget(&x->rc, C, PG); /* c dead, in use */
	assert_int_equal(isd_regcache_entries(&x->rc), 3);
	assert_int_equal(isd_regcache_in_use(&x->rc), 2);
	assert_int_equal(isd_regcache_bytes(&x->rc), 6 * PG);
	isd_regcache_flush(&x->rc);
	assert_int_equal(x->f.ndereg, 3);
	assert_int_equal(isd_regcache_entries(&x->rc), 0);
	assert_int_equal(isd_regcache_in_use(&x->rc), 0);
	assert_int_equal(isd_regcache_bytes(&x->rc), 0);
	/* usable afterwards */
	a = isd_regcache_get(&x->rc, A, PG);
	assert_non_null(a);
	assert_int_equal(x->f.nreg, 4);
	isd_regcache_put(&x->rc, a);
}

static void
test_regcache_full_table(void **state)
{
	struct fix *x = *state;
	struct isd_regcache_ent *e[ISD_REGCACHE_MAX_ENTRIES];
	uint32_t i;

	limits(x, ISD_REGCACHE_MAX_ENTRIES, 1ull << 30);
	for (i = 0; i < ISD_REGCACHE_MAX_ENTRIES; i++) {
		e[i] = isd_regcache_get(&x->rc, A + (uintptr_t)i * 2 * PG, PG);
		assert_non_null(e[i]);
	}
	assert_int_equal(isd_regcache_in_use(&x->rc), ISD_REGCACHE_MAX_ENTRIES);
	assert_int_equal(isd_regcache_bytes(&x->rc), (uint64_t)ISD_REGCACHE_MAX_ENTRIES * PG);
	assert_null(isd_regcache_get(&x->rc, B, PG));
	assert_int_equal(errno, ENOSPC);
	for (i = 0; i < ISD_REGCACHE_MAX_ENTRIES; i++)
		isd_regcache_put(&x->rc, e[i]);
	assert_int_equal(isd_regcache_in_use(&x->rc), 0);
	assert_int_equal(x->f.ndereg, 0);
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    T(test_regcache_init_rejects_bad_limits),
	    T(test_regcache_page_rounding),
	    T(test_regcache_hit_same_and_sub_range),
	    T(test_regcache_refs_and_put),
	    T(test_regcache_lru_eviction_by_bytes),
	    T(test_regcache_lru_eviction_by_entries),
	    T(test_regcache_in_use_never_evicted),
	    T(test_regcache_byte_limit_yields_to_entries_in_use),
	    T(test_regcache_covering_range_drops_idle_inside),
	    T(test_regcache_reg_failure_propagates_errno),
	    T(test_regcache_forget_idle_deregisters_now),
	    T(test_regcache_forget_in_use_defers_to_last_put),
	    T(test_regcache_flush_deregisters_everything),
	    T(test_regcache_full_table),
	};

	return cmocka_run_group_tests_name("rdma_regcache", tests, NULL, NULL);
}
