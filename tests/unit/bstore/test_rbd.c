/*
 * The rbd: spec parser: canonical forms (fixed order, ",ro" apart, a
 * snapshot always read-only), the limits of every field, and hostile specs
 * (control characters, format directives, bytes above 0x7f, repeated or
 * empty options) refused with a message that never quotes them. No cluster
 * is needed; skipped in builds without the rbd: store.
 *
 * With ISD_TEST_RBD_SPEC naming an image of a running cluster (what
 * tests/integration/test_rbd_reactors.sh does, on the one-node cluster of
 * tests/lib/ceph.sh), one more case opens it on reactor 0 of a group and
 * drives it from reactors 1 and 2: writes (with and without FUA), reads
 * checked, flushes, COMPARE AND WRITE and the allocation map, each callback
 * checked to run on the reactor that submitted it (librbd's completions all
 * reach reactor 0). Skipped without the variable.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include <stdatomic.h>
#include <stdlib.h>

#include "bstore/bstore.h"
#include "reactor/reactor.h"

static struct isd_bstore_spec g_spec;   /* 8K: kept off the stack */

static void
need_rbd(void)
{
	if (isd_bstore_kind_find("rbd:x") == NULL)
		skip();
}

/* spec parses; its canonical form is want and read_only is ro; canon parses to itself */
static void
parse_ok(const char *spec, const char *want, bool ro)
{
	char why[256] = "", canon[ISD_BSTORE_SPEC_MAX];

	if (isd_bstore_spec_parse(spec, &g_spec, why, sizeof(why)) != 0)
		fail_msg("'%s' refused: %s", spec, why);
	assert_string_equal(g_spec.kind->scheme, "rbd");
	assert_string_equal(g_spec.canon, want);
	assert_int_equal(g_spec.read_only, ro);
	assert_int_equal(g_spec.size, 0);
	assert_string_equal(g_spec.path, "");
	snprintf(canon, sizeof(canon), "%s", g_spec.canon);
	assert_int_equal(isd_bstore_spec_parse(canon, &g_spec, why, sizeof(why)), 0);
	assert_string_equal(g_spec.canon, canon);
}

static void
test_canonical(void **state)
{
	(void)state;
	need_rbd();
	parse_ok("rbd:rbd/disk1", "rbd:rbd/disk1", false);
	parse_ok("rbd:rbd/disk1,ro", "rbd:rbd/disk1", true);
	/* a snapshot cannot be written, with or without ",ro" */
	parse_ok("rbd:rbd/disk1@snap-1", "rbd:rbd/disk1@snap-1", true);
	parse_ok("rbd:rbd/disk1@snap-1,ro", "rbd:rbd/disk1@snap-1", true);
	/* options in any order, one canonical order */
	parse_ok("rbd:p.1/i_2,id=iserd,ro,conf=/etc/ceph/c.conf",
		 "rbd:p.1/i_2,conf=/etc/ceph/c.conf,id=iserd", true);
	parse_ok("rbd:p/i,conf=/etc/ceph/ceph.conf", "rbd:p/i,conf=/etc/ceph/ceph.conf", false);
	parse_ok("rbd:p/i,id=a.b-c_d", "rbd:p/i,id=a.b-c_d", false);
	/* lock=exclusive goes last; lock=none is the default and disappears */
	parse_ok("rbd:p/i,lock=exclusive,id=gw", "rbd:p/i,id=gw,lock=exclusive", false);
	parse_ok("rbd:p/i,lock=none", "rbd:p/i", false);
	/* a path may hold printable characters other than ',' */
	parse_ok("rbd:p/i,conf=/srv/my ceph/=x@y.conf", "rbd:p/i,conf=/srv/my ceph/=x@y.conf",
		 false);
}

static void
test_name_limits(void **state)
{
	char name[100], spec[1024], want[1024], why[256];

	(void)state;
	need_rbd();
	memset(name, 'a', 96);
	name[96] = '\0';
	snprintf(spec, sizeof(spec), "rbd:%s/%s@%s,id=%s", name, name, name, name);
	snprintf(want, sizeof(want), "rbd:%s/%s@%s,id=%s", name, name, name, name);
	parse_ok(spec, want, true);
	/* one more character in any of them is refused */
	name[96] = 'a';
	name[97] = '\0';
	for (int field = 0; field < 4; field++) {
		snprintf(spec, sizeof(spec), "rbd:%s/%s@%s,id=%s", field == 0 ? name : "p",
			 field == 1 ? name : "i", field == 2 ? name : "s", field == 3 ? name : "c");
		why[0] = '\0';
		assert_int_equal(isd_bstore_spec_parse(spec, &g_spec, why, sizeof(why)), -EINVAL);
		assert_non_null(strstr(why, "1 to 96"));
	}
}

static void
test_hostile(void **state)
{
	static const char *const bad[] = {
		"rbd:",
		"rbd:pool",
		"rbd:/img",
		"rbd:pool/",
		"rbd:pool/img@",
		"rbd:pool@snap/img",
		"rbd:pool/img@s@t",
		"rbd:pool/a/b",
		"rbd:po ol/img",
		"rbd:pool/im g",
		"rbd:pool/img,",
		"rbd:pool/img,,ro",
		"rbd:pool/img,ro,ro",
		"rbd:pool/img,RO",
		"rbd:pool/img,rw",
		"rbd:pool/img,size=1G",
		"rbd:pool/img,conf=",
		"rbd:pool/img,conf=relative.conf",
		"rbd:pool/img,conf=/a\x01b",
		"rbd:pool/img,conf=/a\x7f",
		"rbd:pool/img,conf=/caf\xc3\xa9",
		"rbd:pool/img,conf=/a,conf=/b",
		"rbd:pool/img,id=",
		"rbd:pool/img,id=client.iserd",
		"rbd:pool/img,id=a b",
		"rbd:pool/img,id=x,id=y",
		"rbd:pool/img,id=%s%n",
		"rbd:pool/img\n",
		"rbd:pool/img\r,ro",
		"rbd:pool/%s%s%s%n",
		"rbd:pool/\x1b[31mred",
		"rbd:pool/caf\xc3\xa9",
		"rbd:pool/img\t",
		"rbd:pool/img,ro\n",
		"rbd:pool/img,conf=/x,id=a,ro,extra",
		"rbd:pool/img,lock=",
		"rbd:pool/img,lock=shared",
		"rbd:pool/img,lock=Exclusive",
		"rbd:pool/img,lock=exclusive,lock=none",
		"rbd:pool/img,lock=exclusive,ro",
		"rbd:pool/img@snap,lock=exclusive",
		"rbd:pool/img,lock=exclusive\n",
	};
	char why[256];

	(void)state;
	need_rbd();
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		why[0] = '\0';
		if (isd_bstore_spec_parse(bad[i], &g_spec, why, sizeof(why)) != -EINVAL)
			fail_msg("spec %zu accepted", i);
		assert_true(why[0] != '\0');
		/* one line of plain text that quotes nothing of the spec's dangerous bytes */
		for (const char *p = why; *p != '\0'; p++) {
			unsigned char c = (unsigned char)*p;

			if (c < 0x20 || c >= 0x7f)
				fail_msg("spec %zu: message has byte %02x", i, c);
		}
		assert_null(strstr(why, "%s"));
		assert_null(strstr(why, "%n"));
		assert_true(strncmp(why, "rbd: ", 5) == 0);
	}
}

/* A spec as long as the limit allows is refused cleanly, not truncated into another. */
static void
test_too_long(void **state)
{
	static char spec[ISD_BSTORE_SPEC_MAX + ISD_BSTORE_PATH_MAX];
	char why[256];
	size_t n;

	(void)state;
	need_rbd();
	n = (size_t)snprintf(spec, sizeof(spec), "rbd:p/i,conf=/");
	memset(spec + n, 'x', ISD_BSTORE_SPEC_MAX + 32 - n);
	spec[ISD_BSTORE_SPEC_MAX + 32] = '\0';
	why[0] = '\0';
	assert_int_equal(isd_bstore_spec_parse(spec, &g_spec, why, sizeof(why)), -EINVAL);
	assert_true(why[0] != '\0');
	/* long names and a path just under its limit: each fits, together not canon */
	n = (size_t)snprintf(spec, sizeof(spec), "rbd:");
	memset(spec + n, 'a', 96);
	n += 96;
	spec[n++] = '/';
	memset(spec + n, 'b', 96);
	n += 96;
	n += (size_t)snprintf(spec + n, sizeof(spec) - n, ",conf=/");
	memset(spec + n, 'y', ISD_BSTORE_PATH_MAX - 2);
	spec[n + ISD_BSTORE_PATH_MAX - 2] = '\0';
	why[0] = '\0';
	assert_int_equal(isd_bstore_spec_parse(spec, &g_spec, why, sizeof(why)), -EINVAL);
	assert_non_null(strstr(why, "too long"));
}

/* The cluster is never contacted by --check: a missing conf is all it can say. */
static void
test_check(void **state)
{
	char why[256] = "";

	(void)state;
	need_rbd();
	assert_int_equal(isd_bstore_spec_parse("rbd:p/i,conf=/nonexistent/ceph.conf", &g_spec, why,
					       sizeof(why)),
			 0);
	assert_non_null(g_spec.kind->check);
	assert_int_equal(g_spec.kind->check(&g_spec, why, sizeof(why)), -ENOENT);
	assert_non_null(strstr(why, "/nonexistent/ceph.conf"));
	assert_int_equal(isd_bstore_spec_parse("rbd:p/i", &g_spec, why, sizeof(why)), 0);
	assert_int_equal(g_spec.kind->check(&g_spec, why, sizeof(why)), 0);
	assert_true(g_spec.kind->thin);
	assert_true(g_spec.kind->own_size);
}

/* ---- several reactors on a real image ---- */

#define RX_WORKERS 2
#define RX_ROUNDS 40u
#define RX_LEN 4096u

enum rx_step { RX_WRITE, RX_READ, RX_FLUSH, RX_WRITE_FUA, RX_CAW, RX_MAP, RX_NSTEPS };

struct rx_worker {
	struct isd_reactor_msg start;
	struct isd_timer next;
	struct isd_reactor *r;
	struct isd_reactor *main_r;
	struct isd_bstore *bs;
	unsigned index;
	enum rx_step step;
	uint32_t round;
	struct iovec iov;
	uint8_t buf[RX_LEN], want[RX_LEN], cmp[512], data[512];
	uint64_t mismatch;
	struct isd_bstore_run runs[4];
	unsigned nruns;
	uint32_t wrong_reactor, errors, bad_data, callbacks, caw_done, maps_done;
	atomic_int *left;
};

static uint64_t
rx_off(const struct rx_worker *w)
{
	/* each worker its own 4 MiB object, so the map says mapped there */
	return (uint64_t)w->index << 22;
}

static void
rx_fill(struct rx_worker *w)
{
	for (uint32_t i = 0; i < RX_LEN; i++)
		w->want[i] = (uint8_t)(w->index * 37u + w->round * 11u + i);
}

static void rx_step_run(void *arg);

static void
rx_advance(struct rx_worker *w)
{
	if (++w->step == RX_NSTEPS) {
		w->step = RX_WRITE;
		if (++w->round == RX_ROUNDS) {
			if (atomic_fetch_sub(w->left, 1) == 1)
				isd_reactor_stop(w->main_r);
			return;
		}
	}
	isd_reactor_defer(w->r, &w->next);
}

static void
rx_cb(void *arg, int status)
{
	struct rx_worker *w = arg;

	w->callbacks++;
	if (isd_reactor_current() != w->r)
		w->wrong_reactor++;
	if (status < 0) {
		print_message("reactor %u, step %d: %s\n", w->index, (int)w->step,
			      strerror(-status));
		w->errors++;
	}
	if (w->step == RX_READ && status == 0 && memcmp(w->buf, w->want, RX_LEN) != 0)
		w->bad_data++;
	if (w->step == RX_CAW && status == 0) {
		w->caw_done++;
		memcpy(w->want, w->data, sizeof(w->data));
	}
	if (w->step == RX_MAP && status == 0) {
		w->maps_done++;
		if (w->nruns < 1 || w->runs[0].off != rx_off(w) || !w->runs[0].mapped)
			w->bad_data++;
	}
	rx_advance(w);
}

static void
rx_step_run(void *arg)
{
	struct rx_worker *w = arg;
	struct isd_bstore *bs = w->bs;
	int rc = 0;

	switch (w->step) {
	case RX_WRITE:
	case RX_WRITE_FUA:
		rx_fill(w);
		memcpy(w->buf, w->want, RX_LEN);
		w->iov = (struct iovec){ w->buf, RX_LEN };
		rc = isd_bstore_write(bs, &w->iov, 1, rx_off(w), w->step == RX_WRITE_FUA, rx_cb, w);
		break;
	case RX_READ:
		memset(w->buf, 0, RX_LEN);
		w->iov = (struct iovec){ w->buf, RX_LEN };
		rc = isd_bstore_read(bs, &w->iov, 1, rx_off(w), rx_cb, w);
		break;
	case RX_FLUSH:
		rc = bs->ops->flush(bs, rx_cb, w);
		break;
	case RX_CAW:
		memcpy(w->cmp, w->want, sizeof(w->cmp));
		memset(w->data, (int)(0xc0 + w->index), sizeof(w->data));
		rc = bs->ops->compare_and_write != NULL
			     ? bs->ops->compare_and_write(bs, w->cmp, w->data, sizeof(w->data),
							  rx_off(w), false, &w->mismatch, rx_cb, w)
			     : -ENOTSUP;
		break;
	case RX_MAP:
		rc = bs->ops->get_map != NULL ? bs->ops->get_map(bs, rx_off(w), RX_LEN, w->runs, 4,
								   &w->nruns, rx_cb, w)
					      : -ENOTSUP;
		break;
	default:
		break;
	}
	if (rc == -ENOTSUP) {
		/* this image cannot (fancy striping): the step is skipped */
		rx_advance(w);
	} else if (rc < 0) {
		print_message("reactor %u, step %d: submission: %s\n", w->index, (int)w->step,
			      strerror(-rc));
		w->errors++;
		rx_advance(w);
	}
}

static void
test_reactors(void **state)
{
	const char *spec = getenv("ISD_TEST_RBD_SPEC");
	struct isd_reactor_group *g;
	struct isd_bstore *bs;
	struct rx_worker *w;
	atomic_int left = RX_WORKERS;
	char err[256];

	(void)state;
	need_rbd();
	if (spec == NULL || spec[0] == '\0')
		skip();
	assert_int_equal(isd_reactor_group_create(RX_WORKERS + 1, &g), 0);
	if (isd_bstore_open(isd_reactor_group_get(g, 0), spec, &bs, err, sizeof(err)) != 0)
		fail_msg("cannot open %s: %s", spec, err);
	assert_true(bs->size >= (uint64_t)(RX_WORKERS + 1) << 22);
	w = calloc(RX_WORKERS, sizeof(*w));
	assert_non_null(w);
	for (unsigned i = 0; i < RX_WORKERS; i++) {
		w[i].index = i + 1;
		w[i].r = isd_reactor_group_get(g, i + 1);
		w[i].main_r = isd_reactor_group_get(g, 0);
		w[i].bs = bs;
		w[i].left = &left;
		isd_timer_init(&w[i].next, rx_step_run, &w[i]);
		w[i].start.cb = rx_step_run;
		w[i].start.arg = &w[i];
	}
	assert_int_equal(isd_reactor_group_start(g, NULL, 0), 0);
	for (unsigned i = 0; i < RX_WORKERS; i++)
		isd_reactor_post(w[i].r, &w[i].start);
	assert_int_equal(isd_reactor_run(isd_reactor_group_get(g, 0)), 0);
	isd_reactor_group_join(g);
	for (unsigned i = 0; i < RX_WORKERS; i++) {
		print_message("reactor %u: %u rounds, %u callbacks, %u COMPARE AND WRITE, %u maps\n",
			      w[i].index, w[i].round, w[i].callbacks, w[i].caw_done, w[i].maps_done);
		assert_int_equal(w[i].round, RX_ROUNDS);
		assert_int_equal(w[i].errors, 0);
		assert_int_equal(w[i].bad_data, 0);
		assert_int_equal(w[i].wrong_reactor, 0);
	}
	/* reactor 0 (the collector) closes it, the others stopped */
	isd_bstore_close(bs);
	isd_reactor_group_destroy(g);
	free(w);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_canonical),
		cmocka_unit_test(test_name_limits),
		cmocka_unit_test(test_hostile),
		cmocka_unit_test(test_too_long),
		cmocka_unit_test(test_check),
		cmocka_unit_test(test_reactors),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
