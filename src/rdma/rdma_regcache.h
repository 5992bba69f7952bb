/*
 * The registration cache of the iSER datamover's active role (an initiator):
 * the caller's buffers are registered for RDMA once and reused by later
 * commands on the same range.
 *
 * Ranges are page-rounded outward and kept in a small fixed table. A lookup
 * whose range lies inside a live entry is a hit; a miss registers the range,
 * first dropping idle entries that the new range covers and then, while over
 * the byte limit or out of slots, the least recently used idle one. An entry
 * in use by a command is never dropped: forgetting it only marks it dead, and
 * it goes at its last put.
 *
 * No verbs here: registration goes through the reg/dereg callbacks given at
 * init (the iSER datamover wraps isd_rdma_remote_mr_reg/dereg), so the logic
 * is unit-tested with fakes. Not thread-safe: one per connection.
 */
#ifndef ISD_RDMA_REGCACHE_H
#define ISD_RDMA_REGCACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ISD_REGCACHE_MAX_ENTRIES 64
#define ISD_REGCACHE_PAGE 4096u

/* Registers [start, start+len) and returns an opaque handle, or NULL with errno set. */
typedef void *(*isd_regcache_reg_fn)(void *ctx, uintptr_t start, size_t len);
typedef void (*isd_regcache_dereg_fn)(void *ctx, void *handle);

struct isd_regcache_ent {
	uintptr_t start, end; /* page-rounded range */
	void *handle;	      /* what reg() returned; NULL: free slot */
	uint32_t refs;	      /* commands using it */
	uint64_t lru;
	bool dead; /* forgotten while in use: deregister at the last put */
};

struct isd_regcache {
	struct isd_regcache_ent ent[ISD_REGCACHE_MAX_ENTRIES];
	uint32_t max_entries;
	uint64_t max_bytes;
	uint64_t bytes; /* registered, dead entries included */
	uint64_t lru_clock;
	isd_regcache_reg_fn reg;
	isd_regcache_dereg_fn dereg;
	void *ctx;
};

/* Sets up an empty cache of at most max_entries (1..ISD_REGCACHE_MAX_ENTRIES)
 * ranges and max_bytes registered bytes. Returns 0 or -EINVAL. */
int isd_regcache_init(struct isd_regcache *rc, uint32_t max_entries, uint64_t max_bytes,
		      isd_regcache_reg_fn reg, isd_regcache_dereg_fn dereg, void *ctx);
/*
 * Returns a referenced entry whose range covers [addr, addr+len), registering
 * it on a miss. NULL with errno ENOSPC when every slot is in use, or with
 * reg()'s errno when the registration failed (no entry is left behind then).
 */
struct isd_regcache_ent *isd_regcache_get(struct isd_regcache *rc, uintptr_t addr, size_t len);
/* Drops the reference of a get; a dead entry is deregistered at its last put. */
void isd_regcache_put(struct isd_regcache *rc, struct isd_regcache_ent *e);
/* The caller is done with [addr, addr+len) (e.g. about to free it): idle
 * entries overlapping it are deregistered now, entries in use at their last put. */
void isd_regcache_forget(struct isd_regcache *rc, uintptr_t addr, size_t len);
/* Deregisters every entry, in use or not (the registrations' owner is going away). */
void isd_regcache_flush(struct isd_regcache *rc);

/* Entries registered (dead ones included). */
uint32_t isd_regcache_entries(const struct isd_regcache *rc);
/* Entries referenced by at least one get. */
uint32_t isd_regcache_in_use(const struct isd_regcache *rc);
/* Bytes registered (page-rounded). */
uint64_t isd_regcache_bytes(const struct isd_regcache *rc);

#endif
