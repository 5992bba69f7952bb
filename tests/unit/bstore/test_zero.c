/* zero: backing store: reads zeros, drops writes, no memory exposed, thin. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "bstore/bstore.h"
#include "reactor/reactor.h"

struct io_state {
	int calls;
	int status;
};

static void
io_cb(void *arg, int status)
{
	struct io_state *st = arg;

	st->calls++;
	st->status = status;
}

static void
wait_io(struct isd_reactor *r, struct io_state *st)
{
	for (int i = 0; i < 10000 && st->calls == 0; i++)
		assert_int_equal(isd_reactor_poll(r, 10), 0);
	assert_int_equal(st->calls, 1);
	assert_int_equal(st->status, 0);
}

static void
test_zero_io(void **state)
{
	struct isd_reactor *r;
	struct isd_bstore *bs;
	struct io_state st = { 0 };
	uint8_t a[4096], b[8192];
	struct iovec iov[2];
	char err[256];

	(void)state;
	assert_int_equal(isd_reactor_create(&r), 0);
	assert_int_equal(isd_bstore_open(r, "zero:1G", &bs, err, sizeof(err)), 0);
	assert_true(bs->size == 1ull << 30);
	/* no memory behind it: never zero copy, never registered for RDMA */
	assert_null(bs->mem_base);
	assert_true(bs->can_discard);
	assert_true(bs->discard_zeroes);
	assert_false(bs->read_only);
	assert_string_equal(bs->desc, "zero:1G");

	/* a write is accepted, completes later, and leaves nothing behind */
	memset(a, 0xa5, sizeof(a));
	iov[0] = (struct iovec){ a, sizeof(a) };
	assert_int_equal(isd_bstore_write(bs, iov, 1, 4096, true, io_cb, &st), 0);
	assert_int_equal(st.calls, 0);  /* never inside the call */
	wait_io(r, &st);

	memset(b, 0xff, sizeof(b));
	iov[0] = (struct iovec){ b, 100 };
	iov[1] = (struct iovec){ b + 100, sizeof(b) - 100 };
	st.calls = 0;
	assert_int_equal(isd_bstore_read(bs, iov, 2, 4096, io_cb, &st), 0);
	assert_int_equal(st.calls, 0);
	wait_io(r, &st);
	for (size_t i = 0; i < sizeof(b); i++)
		assert_int_equal(b[i], 0);

	/* the last byte is in range; one past it is not */
	st.calls = 0;
	iov[0] = (struct iovec){ b, 1 };
	assert_int_equal(isd_bstore_read(bs, iov, 1, bs->size - 1, io_cb, &st), 0);
	wait_io(r, &st);
	st.calls = 0;
	assert_int_equal(isd_bstore_read(bs, iov, 1, bs->size, io_cb, &st), -EINVAL);
	assert_int_equal(isd_bstore_write(bs, iov, 1, bs->size, false, io_cb, &st), -EINVAL);
	assert_int_equal(bs->ops->discard(bs, bs->size - 512, 513, io_cb, &st), -EINVAL);
	assert_int_equal(isd_reactor_poll(r, 0), 0);
	assert_int_equal(st.calls, 0);

	/* flush and UNMAP are fine */
	assert_int_equal(bs->ops->flush(bs, io_cb, &st), 0);
	wait_io(r, &st);
	st.calls = 0;
	assert_int_equal(bs->ops->discard(bs, 0, bs->size, io_cb, &st), 0);
	wait_io(r, &st);

	/* closing with completions still queued drops them (ASan checks the frees) */
	st.calls = 0;
	assert_int_equal(isd_bstore_read(bs, iov, 1, 0, io_cb, &st), 0);
	isd_bstore_close(bs);
	assert_int_equal(isd_reactor_poll(r, 0), 0);
	assert_int_equal(st.calls, 0);
	isd_reactor_destroy(r);
}

static void
test_zero_specs(void **state)
{
	static const char *bad[] = { "zero:", "zero:0", "zero:12Q", "zero:1G,ro", "zero:-1",
				     "zero:99999999999T" };
	struct isd_bstore_spec *ps = test_malloc(sizeof(*ps));
	struct isd_reactor *r;
	struct isd_bstore *bs;
	char err[256];

	(void)state;
	assert_int_equal(isd_bstore_spec_parse("zero:1024M", ps, err, sizeof(err)), 0);
	assert_string_equal(ps->canon, "zero:1G");
	assert_string_equal(ps->kind->scheme, "zero");
	assert_string_equal(ps->kind->product, "ZERODISK");
	assert_true(ps->kind->thin);
	assert_null(ps->kind->check);
	assert_int_equal(isd_bstore_spec_parse("zero:", ps, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "zero: needs a size, e.g. zero:1G");
	assert_int_equal(isd_bstore_spec_parse("zero:12Q", ps, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "bad size '12Q' (use e.g. 512M, 1G)");

	assert_int_equal(isd_reactor_create(&r), 0);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		assert_int_equal(isd_bstore_open(r, bad[i], &bs, err, sizeof(err)), -EINVAL);
		assert_true(err[0] != '\0');
	}
	/* read_only (from a config file) is the store's too */
	assert_int_equal(isd_bstore_spec_parse("zero:1M", ps, err, sizeof(err)), 0);
	ps->read_only = true;
	assert_int_equal(isd_bstore_open_spec(r, ps, &bs, err, sizeof(err)), 0);
	{
		struct io_state st = { 0 };
		uint8_t b[512];
		struct iovec iov = { b, sizeof(b) };

		assert_int_equal(isd_bstore_write(bs, &iov, 1, 0, false, io_cb, &st), -EROFS);
		assert_int_equal(bs->ops->discard(bs, 0, 512, io_cb, &st), -EROFS);
		assert_int_equal(st.calls, 0);
	}
	isd_bstore_close(bs);
	isd_reactor_destroy(r);
	test_free(ps);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_zero_io),
		cmocka_unit_test(test_zero_specs),
	};

	return cmocka_run_group_tests_name("bstore_zero", tests, NULL, NULL);
}
