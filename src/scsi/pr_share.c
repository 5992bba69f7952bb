/*
 * Encoding of the persistent reservation state shared between gateways, and
 * of the change message (pr_share.h). Big-endian, versioned by a magic:
 *
 * state:  "ISPR" u8 format(1) u8 held u8 type u8 0  u32 generation
 *         u16 holder index (0xffff: none) u16 count, then count times
 *         u64 key u16 relative target port id u8 n, n bytes initiator port
 *         u8 m, m bytes target port
 * change: "ISPN" u8 format(1) u8 0 u16 count, then count times
 *         u32 unit attentions u8 abort u8 n, initiator port u8 m, target port
 *
 * The bytes come from a RADOS object or a notify any client of the cluster
 * may have written, so the decoders take nothing on trust: lengths against
 * the buffer, names 1 to 255 printable non-space characters, a valid
 * reservation type, a holder that exists, no nexus registered twice, no
 * more than ISD_PR_MAX_REGS entries, no trailing bytes.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "scsi/pr_share.h"
#include "util/endian.h"

#define STATE_MAGIC "ISPR"
#define FX_MAGIC "ISPN"
#define FORMAT 1
#define NO_HOLDER 0xffffu

struct rd {
	const uint8_t *b;
	size_t len, at;
	bool bad;
};

static const uint8_t *
rd_take(struct rd *r, size_t n)
{
	const uint8_t *p;

	if (r->bad || r->len - r->at < n) {
		r->bad = true;
		return NULL;
	}
	p = r->b + r->at;
	r->at += n;
	return p;
}

static uint8_t
rd_u8(struct rd *r)
{
	const uint8_t *p = rd_take(r, 1);

	return p ? p[0] : 0;
}

static uint16_t
rd_u16(struct rd *r)
{
	const uint8_t *p = rd_take(r, 2);

	return p ? get_be16(p) : 0;
}

static uint32_t
rd_u32(struct rd *r)
{
	const uint8_t *p = rd_take(r, 4);

	return p ? get_be32(p) : 0;
}

static uint64_t
rd_u64(struct rd *r)
{
	const uint8_t *p = rd_take(r, 8);

	return p ? get_be64(p) : 0;
}

/* A port name: u8 length, then 1..255 printable non-space bytes, into out[256]. */
static void
rd_name(struct rd *r, char *out)
{
	uint8_t n = rd_u8(r);
	const uint8_t *p = rd_take(r, n);

	out[0] = '\0';
	if (p == NULL)
		return;
	if (n == 0) {
		r->bad = true;
		return;
	}
	for (unsigned i = 0; i < n; i++) {
		if (p[i] <= 0x20 || p[i] >= 0x7f) {
			r->bad = true;
			return;
		}
	}
	memcpy(out, p, n);
	out[n] = '\0';
}

static bool
type_ok(uint8_t type)
{
	switch (type) {
	case ISD_PR_WE: case ISD_PR_EA: case ISD_PR_WE_RO:
	case ISD_PR_EA_RO: case ISD_PR_WE_AR: case ISD_PR_EA_AR:
		return true;
	default:
		return false;
	}
}

static uint8_t *
put_name(uint8_t *p, const char *s)
{
	size_t n = strnlen(s, 255);

	*p++ = (uint8_t)n;
	memcpy(p, s, n);
	return p + n;
}

int
isd_pr_state_encode(const struct isd_scsi_lu *lu, uint8_t **out, size_t *len)
{
	const struct isd_scsi_pr_reg *reg;
	size_t cap = 16 + (size_t)lu->nregs * (8 + 2 + 2 * 256);
	uint8_t *b = malloc(cap), *p;
	unsigned i = 0, holder = NO_HOLDER;

	if (b == NULL)
		return -ENOMEM;
	TAILQ_FOREACH(reg, &lu->regs, link) {
		if (lu->pr_held && reg == lu->pr_holder)
			holder = i;
		i++;
	}
	memcpy(b, STATE_MAGIC, 4);
	b[4] = FORMAT;
	b[5] = lu->pr_held;
	b[6] = lu->pr_held ? lu->pr_type : 0;
	b[7] = 0;
	put_be32(b + 8, lu->pr_gen);
	put_be16(b + 12, (uint16_t)holder);
	put_be16(b + 14, (uint16_t)i);
	p = b + 16;
	TAILQ_FOREACH(reg, &lu->regs, link) {
		put_be64(p, reg->key);
		put_be16(p + 8, reg->rtpi);
		p = put_name(p + 10, reg->iport);
		p = put_name(p, reg->tport);
	}
	*out = b;
	*len = (size_t)(p - b);
	return 0;
}

void
isd_pr_state_free(struct isd_pr_state *st)
{
	struct isd_scsi_pr_reg *reg;

	while ((reg = TAILQ_FIRST(&st->regs)) != NULL) {
		TAILQ_REMOVE(&st->regs, reg, link);
		free(reg);
	}
	st->nregs = 0;
	st->holder = NULL;
	st->held = false;
	st->type = 0;
}

int
isd_pr_state_decode(const uint8_t *b, size_t len, struct isd_pr_state *st)
{
	struct rd r = { .b = b, .len = len };
	const uint8_t *magic;
	uint16_t holder, count;
	uint8_t held, rsvd;

	memset(st, 0, sizeof(*st));
	TAILQ_INIT(&st->regs);
	if (len == 0)
		return 0;               /* no state written yet */
	if (b == NULL)
		return -EINVAL;
	magic = rd_take(&r, 4);
	if (magic == NULL || memcmp(magic, STATE_MAGIC, 4) != 0 || rd_u8(&r) != FORMAT)
		return -EINVAL;
	held = rd_u8(&r);
	st->type = rd_u8(&r);
	rsvd = rd_u8(&r);
	st->gen = rd_u32(&r);
	holder = rd_u16(&r);
	count = rd_u16(&r);
	/* the reserved byte must be 0: one state, one encoding (the fuzzer checks it) */
	if (r.bad || held > 1 || rsvd != 0 || count > ISD_PR_MAX_REGS)
		return -EINVAL;
	st->held = held;
	if (st->held ? !type_ok(st->type) : st->type != 0)
		return -EINVAL;
	if (holder != NO_HOLDER && (!st->held || holder >= count))
		return -EINVAL;
	/* an all-registrants reservation has no single holder */
	if (st->held && holder != NO_HOLDER &&
	    (st->type == ISD_PR_WE_AR || st->type == ISD_PR_EA_AR))
		return -EINVAL;
	for (unsigned i = 0; i < count; i++) {
		struct isd_scsi_pr_reg *reg = calloc(1, sizeof(*reg)), *o;

		if (reg == NULL) {
			isd_pr_state_free(st);
			return -ENOMEM;
		}
		reg->key = rd_u64(&r);
		reg->rtpi = rd_u16(&r);
		rd_name(&r, reg->iport);
		rd_name(&r, reg->tport);
		if (r.bad) {
			free(reg);
			isd_pr_state_free(st);
			return -EINVAL;
		}
		TAILQ_FOREACH(o, &st->regs, link) {
			if (strcmp(o->iport, reg->iport) == 0 && strcmp(o->tport, reg->tport) == 0) {
				free(reg);
				isd_pr_state_free(st);
				return -EINVAL;
			}
		}
		/* key 0 is no registration (REGISTER with key 0 unregisters) */
		if (reg->key == 0) {
			free(reg);
			isd_pr_state_free(st);
			return -EINVAL;
		}
		TAILQ_INSERT_TAIL(&st->regs, reg, link);
		st->nregs++;
		if (i == holder)
			st->holder = reg;
	}
	if (r.at != len) {
		isd_pr_state_free(st);
		return -EINVAL;
	}
	return 0;
}

void
isd_pr_state_install(struct isd_scsi_lu *lu, struct isd_pr_state *st)
{
	struct isd_scsi_pr_reg *reg;

	isd_scsi_pr_clear_all(lu);
	while ((reg = TAILQ_FIRST(&st->regs)) != NULL) {
		TAILQ_REMOVE(&st->regs, reg, link);
		TAILQ_INSERT_TAIL(&lu->regs, reg, link);
		lu->nregs++;
	}
	lu->pr_gen = st->gen;
	lu->pr_held = st->held;
	lu->pr_type = st->held ? st->type : 0;
	lu->pr_holder = st->held ? st->holder : NULL;
	st->nregs = 0;
	st->holder = NULL;
}

int
isd_pr_fx_encode(const struct isd_pr_fxlist *fx, uint8_t **out, size_t *len)
{
	unsigned n = fx->n < ISD_PR_MAX_REGS ? fx->n : ISD_PR_MAX_REGS;
	uint8_t *b = malloc(8 + (size_t)n * (4 + 1 + 2 * 256)), *p;

	if (b == NULL)
		return -ENOMEM;
	memcpy(b, FX_MAGIC, 4);
	b[4] = FORMAT;
	b[5] = 0;
	put_be16(b + 6, (uint16_t)n);
	p = b + 8;
	for (unsigned i = 0; i < n; i++) {
		put_be32(p, fx->fx[i].ua);
		p[4] = fx->fx[i].abort;
		p = put_name(p + 5, fx->fx[i].iport);
		p = put_name(p, fx->fx[i].tport);
	}
	*out = b;
	*len = (size_t)(p - b);
	return 0;
}

/* Only the unit attentions a reservation change raises may travel. */
#define FX_UAS (ISD_UA_RES_PREEMPTED | ISD_UA_RES_RELEASED | ISD_UA_REG_PREEMPTED)

int
isd_pr_fx_decode(const uint8_t *b, size_t len, struct isd_pr_fxlist *fx)
{
	struct rd r = { .b = b, .len = len };
	const uint8_t *magic;
	uint16_t count;
	uint8_t rsvd;

	fx->n = 0;
	if (b == NULL)
		return -EINVAL;
	magic = rd_take(&r, 4);
	if (magic == NULL || memcmp(magic, FX_MAGIC, 4) != 0 || rd_u8(&r) != FORMAT)
		return -EINVAL;
	rsvd = rd_u8(&r);
	count = rd_u16(&r);
	if (r.bad || rsvd != 0 || count > ISD_PR_MAX_REGS)
		return -EINVAL;
	for (unsigned i = 0; i < count; i++) {
		struct isd_pr_fx *f = &fx->fx[i];
		uint8_t ab;

		f->ua = rd_u32(&r);
		ab = rd_u8(&r);
		rd_name(&r, f->iport);
		rd_name(&r, f->tport);
		if (r.bad || ab > 1 || (f->ua & ~(uint32_t)FX_UAS) != 0) {
			fx->n = 0;
			return -EINVAL;
		}
		f->abort = ab;
	}
	if (r.at != len) {
		fx->n = 0;
		return -EINVAL;
	}
	fx->n = count;
	return 0;
}
