/*
 * Registration cache of the iSER datamover's active role (rdma_regcache.h):
 * the table, lookups, LRU eviction and deferred deregistration, with no verbs
 * dependency.
 */
#include "rdma/rdma_regcache.h"

#include <errno.h>
#include <string.h>

int
isd_regcache_init(struct isd_regcache *rc, uint32_t max_entries, uint64_t max_bytes,
		  isd_regcache_reg_fn reg, isd_regcache_dereg_fn dereg, void *ctx)
{
	if (max_entries == 0 || max_entries > ISD_REGCACHE_MAX_ENTRIES || reg == NULL ||
	    dereg == NULL)
		return -EINVAL;
	memset(rc, 0, sizeof(*rc));
	rc->max_entries = max_entries;
	rc->max_bytes = max_bytes;
	rc->reg = reg;
	rc->dereg = dereg;
	rc->ctx = ctx;
	return 0;
}

static void
rc_drop(struct isd_regcache *rc, struct isd_regcache_ent *e)
{
	if (e->handle != NULL) {
		rc->dereg(rc->ctx, e->handle);
		rc->bytes -= e->end - e->start;
	}
	memset(e, 0, sizeof(*e));
}

struct isd_regcache_ent *
isd_regcache_get(struct isd_regcache *rc, uintptr_t addr, size_t len)
{
	const uintptr_t mask = ISD_REGCACHE_PAGE - 1;
	uintptr_t start = addr & ~mask, end = (addr + len + mask) & ~mask;
	struct isd_regcache_ent *e, *free_e = NULL, *victim;
	uint32_t i;

	for (i = 0; i < rc->max_entries; i++) {
		e = &rc->ent[i];
		if (e->handle == NULL) {
			if (free_e == NULL)
				free_e = e;
			continue;
		}
		/* A dead entry is on its way out: the caller may free its pages. */
		if (!e->dead && e->start <= start && e->end >= end) {
			e->refs++;
			e->lru = ++rc->lru_clock;
			return e;
		}
	}
	/* Make room: drop idle entries (least recently used first) while over the
	 * limits, and any idle entry that the new range covers. */
	for (;;) {
		bool over = rc->bytes + (end - start) > rc->max_bytes || free_e == NULL;

		victim = NULL;
		for (i = 0; i < rc->max_entries; i++) {
			e = &rc->ent[i];
			if (e->handle == NULL || e->refs > 0)
				continue;
			if (e->start >= start && e->end <= end) {
				victim = e;
				break;
			}
			if (over && (victim == NULL || e->lru < victim->lru))
				victim = e;
		}
		if (victim == NULL)
			break;
		rc_drop(rc, victim);
		if (free_e == NULL)
			free_e = victim;
	}
	if (free_e == NULL) {
		errno = ENOSPC;
		return NULL;
	}
	free_e->handle = rc->reg(rc->ctx, start, end - start);
	if (free_e->handle == NULL)
		return NULL; /* errno from reg() */
	free_e->start = start;
	free_e->end = end;
	free_e->refs = 1;
	free_e->dead = false;
	free_e->lru = ++rc->lru_clock;
	rc->bytes += end - start;
	return free_e;
}

void
isd_regcache_put(struct isd_regcache *rc, struct isd_regcache_ent *e)
{
	if (e->refs > 0)
		e->refs--;
	if (e->refs == 0 && e->dead)
		rc_drop(rc, e);
}

void
isd_regcache_forget(struct isd_regcache *rc, uintptr_t addr, size_t len)
{
	uintptr_t a = addr, b = addr + len;
	uint32_t i;

	for (i = 0; i < rc->max_entries; i++) {
		struct isd_regcache_ent *e = &rc->ent[i];

		if (e->handle == NULL || e->end <= a || e->start >= b)
			continue;
		if (e->refs == 0)
			rc_drop(rc, e);
		else
			e->dead = true;
	}
}

void
isd_regcache_flush(struct isd_regcache *rc)
{
	uint32_t i;

	for (i = 0; i < rc->max_entries; i++)
		if (rc->ent[i].handle != NULL)
			rc_drop(rc, &rc->ent[i]);
}

uint32_t
isd_regcache_entries(const struct isd_regcache *rc)
{
	uint32_t i, n = 0;

	for (i = 0; i < rc->max_entries; i++)
		if (rc->ent[i].handle != NULL)
			n++;
	return n;
}

uint32_t
isd_regcache_in_use(const struct isd_regcache *rc)
{
	uint32_t i, n = 0;

	for (i = 0; i < rc->max_entries; i++)
		if (rc->ent[i].handle != NULL && rc->ent[i].refs > 0)
			n++;
	return n;
}

uint64_t
isd_regcache_bytes(const struct isd_regcache *rc)
{
	return rc->bytes;
}
