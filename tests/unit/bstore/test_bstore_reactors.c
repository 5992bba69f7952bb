/*
 * One store, several reactors: each reactor of a group writes and reads back
 * its own part of a RAM, a zero, a file-on-disk (io_uring) and a file-on-tmpfs
 * (preadv at turn end) store at the same time; every completion must run on
 * the reactor that submitted it, and the data must be what that reactor
 * wrote. The tsan preset runs this too, so a shared mutable field on the data
 * path fails CI.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bstore/bstore.h"
#include "reactor/reactor.h"

#define NREACTORS 3
#define CHUNK 4096u
#define ROUNDS 200u

struct worker;

struct io {
	struct worker *w;
	bool reading;
	uint32_t round;
	uint8_t buf[CHUNK];
};

struct worker {
	struct isd_reactor_msg start;
	struct isd_reactor *r;
	struct isd_reactor *main_r;
	struct isd_bstore *bs;
	unsigned index;
	struct io io;
	uint32_t wrong_reactor;
	uint32_t bad_data;
	uint32_t errors;
	atomic_int *left;               /* workers not done, shared */
};

static void step(struct worker *w);

static void
finish(struct worker *w)
{
	if (atomic_fetch_sub(w->left, 1) == 1)
		isd_reactor_stop(w->main_r);
}

static uint64_t
offset_of(const struct worker *w, uint32_t round)
{
	/* each reactor its own blocks, spread over the first MiBs */
	return ((uint64_t)round % 16u * NREACTORS + w->index) * CHUNK;
}

static void
io_cb(void *arg, int status)
{
	struct io *io = arg;
	struct worker *w = io->w;

	if (isd_reactor_current() != w->r)
		w->wrong_reactor++;
	if (status != 0) {
		w->errors++;
		finish(w);
		return;
	}
	if (io->reading) {
		uint8_t want = (uint8_t)(w->index * 37u + io->round);

		/* a zero store reads zeros whatever was written */
		if (w->bs->mem_base == NULL && strncmp(w->bs->desc, "zero", 4) == 0)
			want = 0;
		for (uint32_t i = 0; i < CHUNK; i++) {
			if (io->buf[i] != want) {
				w->bad_data++;
				break;
			}
		}
		if (++io->round == ROUNDS) {
			finish(w);
			return;
		}
		io->reading = false;
	} else {
		io->reading = true;
	}
	step(w);
}

static void
step(struct worker *w)
{
	struct io *io = &w->io;
	struct iovec iov = {io->buf, CHUNK};
	int rc;

	if (!io->reading) {
		memset(io->buf, (uint8_t)(w->index * 37u + io->round), CHUNK);
		rc = isd_bstore_write(w->bs, &iov, 1, offset_of(w, io->round), false, io_cb, io);
	} else {
		memset(io->buf, 0xee, CHUNK);
		rc = isd_bstore_read(w->bs, &iov, 1, offset_of(w, io->round), io_cb, io);
	}
	if (rc < 0) {
		w->errors++;
		finish(w);
	}
}

static void
start_cb(void *arg)
{
	step(arg);
}

static void
run_on_group(const char *spec)
{
	struct isd_reactor_group *g;
	struct isd_bstore *bs;
	struct worker w[NREACTORS];
	atomic_int left = NREACTORS;
	char err[256];

	assert_int_equal(isd_reactor_group_create(NREACTORS, &g), 0);
	assert_int_equal(isd_bstore_open(isd_reactor_group_get(g, 0), spec, &bs, err, sizeof(err)),
			 0);
	assert_int_equal(isd_reactor_group_start(g, NULL, 0), 0);
	memset(w, 0, sizeof(w));
	for (unsigned i = 0; i < NREACTORS; i++) {
		w[i].r = isd_reactor_group_get(g, i);
		w[i].main_r = isd_reactor_group_get(g, 0);
		w[i].bs = bs;
		w[i].index = i;
		w[i].io.w = &w[i];
		w[i].left = &left;
		w[i].start.cb = start_cb;
		w[i].start.arg = &w[i];
		isd_reactor_post(w[i].r, &w[i].start);
	}
	assert_int_equal(isd_reactor_run(isd_reactor_group_get(g, 0)), 0);
	isd_reactor_group_join(g);
	for (unsigned i = 0; i < NREACTORS; i++) {
		assert_int_equal(w[i].errors, 0);
		assert_int_equal(w[i].wrong_reactor, 0);
		assert_int_equal(w[i].bad_data, 0);
		assert_int_equal(w[i].io.round, ROUNDS);
	}
	isd_bstore_close(bs);
	isd_reactor_group_destroy(g);
}

static void
test_ram(void **state)
{
	(void)state;
	run_on_group("ram:16M");
}

static void
test_zero(void **state)
{
	(void)state;
	run_on_group("zero:16M");
}

static void
file_case(const char *dir)
{
	char path[256], spec[300];
	int fd;

	snprintf(path, sizeof(path), "%s/isd_bsr.XXXXXX", dir);
	fd = mkstemp(path);
	if (fd < 0) {
		skip();
		return;
	}
	close(fd);
	snprintf(spec, sizeof(spec), "file:%s,size=16M", path);
	run_on_group(spec);
	unlink(path);
}

static void
test_file_uring(void **state)
{
	const char *d = getenv("TMPDIR");

	(void)state;
	/* /var/tmp: a disk file system, so io_uring's own path (tmpfs takes preadv) */
	file_case(access("/var/tmp", W_OK) == 0 ? "/var/tmp" : (d != NULL ? d : "/tmp"));
}

static void
test_file_tmpfs(void **state)
{
	(void)state;
	if (access("/dev/shm", W_OK) != 0) {
		skip();
		return;
	}
	file_case("/dev/shm");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ram),
		cmocka_unit_test(test_zero),
		cmocka_unit_test(test_file_uring),
		cmocka_unit_test(test_file_tmpfs),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
