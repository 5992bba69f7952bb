/* What the RDMA layer's files share and nothing above sees. */
#ifndef ISD_RDMA_INT_H
#define ISD_RDMA_INT_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>

#define ISD_RDMA_POOL_CLASSES 9         /* 4 KiB .. 1 MiB */

/*
 * What the RDMA layer keeps per thread (every reactor, every initiator
 * context's thread), so that the data path shares nothing between threads:
 *
 *   - active: the thread is inside a registry lookup (rdma_dev.c). A writer
 *     that replaces the lookup table, or removes a region, waits until no
 *     other thread's flag is up before it frees what lookups may still read;
 *   - the pool's cache: free buffers of each size class (rdma_pool.c);
 *   - the pool's counters, written by the owner only, summed when read.
 *
 * Registered on first use in a process list (guarded by a mutex, touched
 * at join, exit and when counters are summed or writers wait); at thread
 * exit the cache goes back to the pool's shared depot.
 */
struct isd_rdma_pool_cache {
	void *head;                     /* struct pool_free list */
	unsigned n;
};

struct isd_rdma_thread {
	int active;                     /* atomic: inside isd_rdma_mem_find */
	struct isd_rdma_pool_cache cache[ISD_RDMA_POOL_CLASSES];
	int64_t bufs;                   /* pool buffers allocated minus freed here (atomic) */
	int64_t slab_bufs;              /* of which from slabs */
	bool joined;
	bool gone;                      /* its exit ran: no cache, lookups under the lock */
	LIST_ENTRY(isd_rdma_thread) link;
} __attribute__((aligned(64)));

/* The calling thread's part (joined to the list on first use). */
struct isd_rdma_thread *isd_rdma_thread_self(void);

/*
 * Adds up every thread's counters, live and gone; *idle_caches is whether no
 * thread but the caller holds cached pool buffers (the pool may be trimmed).
 */
void isd_rdma_threads_sum(int64_t *bufs, int64_t *slab_bufs, bool *idle_caches);

/* Pool (rdma_pool.c): an exiting thread's cache goes back to the depot. */
void isd_rdma_pool_thread_exit(struct isd_rdma_thread *t);

/* Registered pool buffers handed out, and slab bytes held (rdma_pool.c). */
void isd_rdma_pool_stats(uint64_t *bufs, uint64_t *slab_bytes);

/* Counters of rdma_dev.c bumped from any thread. */
static inline void
isd_rdma_stat_add(uint64_t *p, int64_t d)
{
	__atomic_fetch_add(p, (uint64_t)d, __ATOMIC_RELAXED);
}

#endif
