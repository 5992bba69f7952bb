/*
 * Blocks for the data path: per-thread free lists in front of malloc.
 *
 * Every object a command makes on its way through the target (the task, its
 * PDUs, the datamover's send items and iSER jobs, the backing store's request,
 * a TCP data buffer) comes from here and goes back here. A block freed is kept
 * on the freeing thread's list for its size class and handed out again by the
 * next isd_mem_alloc() of that class on that thread, so once a reactor has
 * seen its working set (the first few commands at each queue depth and
 * transfer size) it allocates nothing: the counters below prove it, and
 * tests/unit/iscsi/test_fv_noalloc.c counts malloc calls to be sure.
 *
 * One thread, one cache, no locks: each reactor thread has its own lists; a
 * block freed on another thread joins that thread's lists. The bytes a
 * thread keeps are bounded (isd_mem_set_cache_limit(), 64 MiB by default);
 * past the bound a freed block goes back to malloc. Classes are four per
 * power of two from 64 bytes to 16 MiB (at most 25 % rounding); bigger blocks
 * are passed to malloc each time.
 *
 * Under AddressSanitizer a cached block is poisoned, so a use after
 * isd_mem_free() is still reported.
 */
#ifndef ISD_UTIL_MEM_H
#define ISD_UTIL_MEM_H

#include <stddef.h>
#include <stdint.h>

/* Uninitialised, 16-byte aligned; NULL when malloc fails. */
void *isd_mem_alloc(size_t size);
/* Zeroed, as calloc(1, size). */
void *isd_mem_zalloc(size_t size);
/*
 * Uninitialised, aligned to align (a power of two, at most 64 KiB; 16 or
 * less is isd_mem_alloc): data buffers a store reads into or writes from
 * with O_DIRECT. The block holds size + align bytes of its class, so it is
 * cached and counted as any other; isd_mem_free() takes it back.
 */
void *isd_mem_alloc_aligned(size_t size, size_t align);
/* As isd_mem_alloc_aligned, but p + offset is aligned instead of p (a
 * struct whose trailing data must be aligned). offset at most 64 KiB. */
void *isd_mem_alloc_at(size_t size, size_t align, size_t offset);
/* NULL is a no-op. p must come from isd_mem_alloc* (any thread). */
void isd_mem_free(void *p);

/* The bytes each thread may keep on its lists (0: keep nothing). */
void isd_mem_set_cache_limit(size_t bytes);

/* Gives the calling thread's cached blocks back to malloc (a reactor that
 * ends calls it; threads that exit do it by themselves). */
void isd_mem_thread_drain(void);

/* The whole process: every thread's figures, live and gone, added up. */
struct isd_mem_stats {
	uint64_t allocs;                /* isd_mem_alloc/zalloc calls */
	uint64_t frees;                 /* isd_mem_free calls (non-NULL) */
	uint64_t sys_allocs;            /* of those allocs, the ones that called malloc */
	uint64_t sys_frees;             /* frees that went back to malloc */
	uint64_t cached_bytes;          /* now on the free lists */
	uint64_t cached_blocks;
};

void isd_mem_get_stats(struct isd_mem_stats *out);

#endif
