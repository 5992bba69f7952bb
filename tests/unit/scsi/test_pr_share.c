/*
 * The encoding of the persistent reservation state shared between gateways
 * (pr_share.c): what one gateway encodes another decodes to the same state,
 * and bytes another process may have written are refused unless every field
 * holds (truncations, bad magic or format, bad type, a holder that does not
 * exist, names with control characters or empty, duplicates, too many
 * registrations, trailing bytes, unknown unit attentions in a change message).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "scsi/pr_share.h"

static struct isd_scsi_lu *
lu_new(void)
{
	struct isd_scsi_lu *lu = calloc(1, sizeof(*lu));

	assert_non_null(lu);
	TAILQ_INIT(&lu->regs);
	TAILQ_INIT(&lu->itns);
	return lu;
}

static void
lu_free(struct isd_scsi_lu *lu)
{
	isd_scsi_pr_clear_all(lu);
	free(lu);
}

static struct isd_scsi_pr_reg *
add_reg(struct isd_scsi_lu *lu, uint64_t key, const char *ip, const char *tp, uint16_t rtpi)
{
	struct isd_scsi_pr_reg *r = calloc(1, sizeof(*r));

	assert_non_null(r);
	r->key = key;
	r->rtpi = rtpi;
	snprintf(r->iport, sizeof(r->iport), "%s", ip);
	snprintf(r->tport, sizeof(r->tport), "%s", tp);
	TAILQ_INSERT_TAIL(&lu->regs, r, link);
	lu->nregs++;
	return r;
}

/* A state with two registrations, the second holding Exclusive Access. */
static void
sample(uint8_t **b, size_t *len)
{
	struct isd_scsi_lu *lu = lu_new();

	add_reg(lu, 0xa1, "iqn.x:h,i,0x023d00000001", "iqn.x:t,t,0x1", 1);
	lu->pr_holder = add_reg(lu, 0xb2, "iqn.x:h,i,0x023d00000001", "iqn.x:t,t,0x2", 2);
	lu->pr_held = true;
	lu->pr_type = ISD_PR_EA;
	lu->pr_gen = 7;
	assert_int_equal(isd_pr_state_encode(lu, b, len), 0);
	lu_free(lu);
}

static void
test_round_trip(void **state)
{
	struct isd_scsi_lu *lu = lu_new();
	struct isd_pr_state st;
	uint8_t *b, *b2;
	size_t len, len2;

	(void)state;
	sample(&b, &len);
	assert_int_equal(isd_pr_state_decode(b, len, &st), 0);
	assert_int_equal(st.nregs, 2);
	assert_int_equal(st.gen, 7);
	assert_true(st.held);
	assert_int_equal(st.type, ISD_PR_EA);
	assert_non_null(st.holder);
	assert_int_equal(st.holder->key, 0xb2);
	assert_int_equal(st.holder->rtpi, 2);
	isd_pr_state_install(lu, &st);
	assert_int_equal(lu->nregs, 2);
	assert_non_null(lu->pr_holder);
	assert_int_equal(lu->pr_holder->key, 0xb2);
	assert_int_equal(isd_pr_state_encode(lu, &b2, &len2), 0);
	assert_int_equal(len, len2);
	assert_memory_equal(b, b2, len);
	free(b);
	free(b2);
	/* the empty object is the empty state */
	assert_int_equal(isd_pr_state_decode(NULL, 0, &st), 0);
	assert_int_equal(st.nregs, 0);
	assert_false(st.held);
	lu_free(lu);
}

static void
expect_bad(const uint8_t *b, size_t len)
{
	struct isd_pr_state st;

	assert_int_equal(isd_pr_state_decode(b, len, &st), -EINVAL);
	assert_int_equal(st.nregs, 0);
	assert_true(TAILQ_EMPTY(&st.regs));
}

static void
test_hostile_state(void **state)
{
	uint8_t *b, *m;
	size_t len;
	/* offsets in the sample: header 16; first registration: key 8, rtpi 2, name */
	const size_t name1 = 16 + 10;

	(void)state;
	sample(&b, &len);
	m = malloc(len + 1);
	assert_non_null(m);
	/* every truncation */
	for (size_t n = 1; n < len; n++) {
		memcpy(m, b, n);
		expect_bad(m, n);
	}
	/* trailing garbage */
	memcpy(m, b, len);
	m[len] = 0;
	expect_bad(m, len + 1);
#define MUTATE(off, val) do { memcpy(m, b, len); m[(off)] = (val); expect_bad(m, len); } while (0)
	MUTATE(0, 'X');                 /* magic */
	MUTATE(4, 2);                   /* format */
	MUTATE(5, 2);                   /* held neither 0 nor 1 */
	MUTATE(6, 0x2);                 /* no such type */
	MUTATE(6, ISD_PR_WE_AR);        /* all-registrants with a holder */
	MUTATE(13, 2);                  /* holder index past the registrations */
	MUTATE(15, 200);                /* more registrations than ISD_PR_MAX_REGS */
	MUTATE(15, 3);                  /* more than there are */
	MUTATE(name1, 0);               /* empty name */
	MUTATE(name1 + 1, 0x01);        /* control character */
	MUTATE(name1 + 1, ' ');         /* space */
	MUTATE(name1 + 1, 0xff);        /* not ASCII */
	MUTATE(name1, 0xff);            /* name longer than what is left */
	/* key 0 is no registration */
	memcpy(m, b, len);
	for (size_t i = 0; i < 8; i++)
		m[16 + i] = 0;
	expect_bad(m, len);
	/* not held, yet a type or a holder */
	memcpy(m, b, len);
	m[5] = 0;
	expect_bad(m, len);
	/* the same nexus twice: make the second target port the first's */
	{
		size_t t1 = name1 + 1 + m[name1];       /* first tport length byte */
		size_t r2 = t1 + 1 + b[t1];             /* second registration */
		size_t t2 = r2 + 10 + 1 + b[r2 + 10];   /* its tport length byte */

		memcpy(m, b, len);
		assert_int_equal(b[t1], b[t2]);
		memcpy(m + t2 + 1, b + t1 + 1, b[t1]);
		expect_bad(m, len);
	}
#undef MUTATE
	free(m);
	free(b);
}

static void
test_fx(void **state)
{
	struct isd_pr_fxlist *fx = calloc(1, sizeof(*fx)), *back = calloc(1, sizeof(*back));
	uint8_t *b, *m;
	size_t len;

	(void)state;
	assert_non_null(fx);
	assert_non_null(back);
	fx->n = 2;
	fx->fx[0].ua = ISD_UA_REG_PREEMPTED;
	fx->fx[0].abort = true;
	snprintf(fx->fx[0].iport, sizeof(fx->fx[0].iport), "iqn.x:h,i,0x1");
	snprintf(fx->fx[0].tport, sizeof(fx->fx[0].tport), "iqn.x:t,t,0x1");
	fx->fx[1].ua = ISD_UA_RES_RELEASED;
	snprintf(fx->fx[1].iport, sizeof(fx->fx[1].iport), "iqn.y:h,i,0x2");
	snprintf(fx->fx[1].tport, sizeof(fx->fx[1].tport), "iqn.x:t,t,0x2");
	assert_int_equal(isd_pr_fx_encode(fx, &b, &len), 0);
	assert_int_equal(isd_pr_fx_decode(b, len, back), 0);
	assert_int_equal(back->n, 2);
	assert_true(back->fx[0].abort);
	assert_int_equal(back->fx[1].ua, ISD_UA_RES_RELEASED);
	assert_string_equal(back->fx[1].iport, "iqn.y:h,i,0x2");
	m = malloc(len + 1);
	assert_non_null(m);
	for (size_t n = 0; n < len; n++) {
		memcpy(m, b, n);
		assert_int_equal(isd_pr_fx_decode(m, n, back), -EINVAL);
		assert_int_equal(back->n, 0);
	}
	memcpy(m, b, len);
	m[len] = 1;
	assert_int_equal(isd_pr_fx_decode(m, len + 1, back), -EINVAL);
	memcpy(m, b, len);
	m[8 + 3] |= (uint8_t)ISD_UA_POWER_ON;  /* a unit attention no PR change raises */
	assert_int_equal(isd_pr_fx_decode(m, len, back), -EINVAL);
	memcpy(m, b, len);
	m[8 + 4] = 2;                           /* abort neither 0 nor 1 */
	assert_int_equal(isd_pr_fx_decode(m, len, back), -EINVAL);
	assert_int_equal(isd_pr_fx_decode(NULL, 0, back), -EINVAL);
	free(m);
	free(b);
	free(fx);
	free(back);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_round_trip),
		cmocka_unit_test(test_hostile_state),
		cmocka_unit_test(test_fx),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
