/*
 * The registered data-buffer pool: power-of-two size classes from 4 KiB to
 * ISD_RDMA_POOL_CLASS_MAX, carved from 4 MiB slabs that are added to the
 * memory registry (so they are registered on every device, present and
 * future). Larger buffers, and any buffer once the slabs reach
 * ISD_RDMA_POOL_LIMIT, are separate registry regions of their own.
 * Nothing here is freed back to the system until isd_rdma_pool_trim().
 *
 * Threads: each thread keeps free buffers of each class in its own cache
 * (struct isd_rdma_thread), so that a reactor allocates and frees without a
 * lock. A cache that runs dry takes a batch from the shared depot, and one
 * that grows past its bound gives a batch back, under g_pool_lock; slabs are
 * added under it too. A buffer may be freed on another thread than the one
 * that allocated it: it joins the freeing thread's cache. At thread exit the
 * cache goes back to the depot.
 */
#include "rdma/rdma.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "rdma/rdma_int.h"
#include "util/log.h"

#define POOL_MIN_SHIFT 12
#define POOL_CLASSES ISD_RDMA_POOL_CLASSES
#define POOL_ALIGN 4096
/* A thread's cache holds at most this many bytes of a class (at least 2 buffers). */
#define POOL_CACHE_BYTES (4u << 20)

struct pool_free {
	struct pool_free *next;
};

struct pool_slab {
	void *mem;
	struct pool_slab *next;
};

static pthread_mutex_t g_pool_lock = PTHREAD_MUTEX_INITIALIZER;
static struct pool_free *g_free[POOL_CLASSES];  /* the depot, under g_pool_lock */
static struct pool_slab *g_slabs;       /* atomic head; added under the lock, read without */
static uint64_t g_slab_bytes;           /* atomic; changed under the lock */

static int
size_class(size_t len)
{
	size_t sz = (size_t)1 << POOL_MIN_SHIFT;

	for (int c = 0; c < POOL_CLASSES; c++, sz <<= 1) {
		if (len <= sz)
			return c;
	}
	return -1;
}

static unsigned
cache_cap(int c)
{
	unsigned n = POOL_CACHE_BYTES >> (POOL_MIN_SHIFT + c);

	return n < 2 ? 2 : n;
}

/* Owner-written counters, read whole by whoever sums them. */
static inline void
bump(int64_t *p, int64_t d)
{
	__atomic_store_n(p, __atomic_load_n(p, __ATOMIC_RELAXED) + d, __ATOMIC_RELAXED);
}

/* Under g_pool_lock. */
static int
slab_grow(int c)
{
	size_t sz = (size_t)1 << (POOL_MIN_SHIFT + c);
	struct pool_slab *s;
	char err[256];
	void *mem;
	int rc;

	if (__atomic_load_n(&g_slab_bytes, __ATOMIC_RELAXED) + ISD_RDMA_POOL_SLAB >
	    ISD_RDMA_POOL_LIMIT)
		return -ENOSPC;
	s = calloc(1, sizeof(*s));
	if (s == NULL)
		return -ENOMEM;
	if (posix_memalign(&mem, POOL_ALIGN, ISD_RDMA_POOL_SLAB) != 0) {
		free(s);
		return -ENOMEM;
	}
	rc = isd_rdma_mem_add(mem, ISD_RDMA_POOL_SLAB, ISD_RDMA_MEM_POOL, err, sizeof(err));
	if (rc < 0) {
		isd_log_err("rdma: buffer pool: %s", err);
		free(mem);
		free(s);
		return rc;
	}
	s->mem = mem;
	s->next = g_slabs;
	__atomic_store_n(&g_slabs, s, __ATOMIC_RELEASE);
	__atomic_store_n(&g_slab_bytes, g_slab_bytes + ISD_RDMA_POOL_SLAB, __ATOMIC_RELAXED);
	for (size_t off = 0; off + sz <= ISD_RDMA_POOL_SLAB; off += sz) {
		struct pool_free *f = (struct pool_free *)((uint8_t *)mem + off);

		f->next = g_free[c];
		g_free[c] = f;
	}
	return 0;
}

/* A buffer registered on its own (large, or the slabs are at their limit). */
static void *
big_alloc(size_t len)
{
	char err[256];
	void *mem;

	len = (len + POOL_ALIGN - 1) & ~(size_t)(POOL_ALIGN - 1);
	if (posix_memalign(&mem, POOL_ALIGN, len) != 0)
		return NULL;
	if (isd_rdma_mem_add(mem, len, ISD_RDMA_MEM_POOL, err, sizeof(err)) < 0) {
		isd_log_err("rdma: buffer of %zu bytes: %s", len, err);
		free(mem);
		return NULL;
	}
	return mem;
}

/* Moves up to n buffers of class c from the depot into the cache. Under the lock. */
static void
depot_take(struct isd_rdma_pool_cache *pc, int c, unsigned n)
{
	while (n-- > 0 && g_free[c] != NULL) {
		struct pool_free *f = g_free[c];

		g_free[c] = f->next;
		f->next = pc->head;
		pc->head = f;
		__atomic_store_n(&pc->n, pc->n + 1, __ATOMIC_RELAXED);
	}
}

/* Moves up to n buffers of class c from the cache to the depot. Under the lock. */
static void
depot_give(struct isd_rdma_pool_cache *pc, int c, unsigned n)
{
	while (n-- > 0 && pc->head != NULL) {
		struct pool_free *f = pc->head;

		pc->head = f->next;
		__atomic_store_n(&pc->n, pc->n - 1, __ATOMIC_RELAXED);
		f->next = g_free[c];
		g_free[c] = f;
	}
}

void *
isd_rdma_buf_alloc(size_t len)
{
	struct isd_rdma_thread *t;
	struct isd_rdma_pool_cache *pc;
	struct pool_free *f;
	int c = size_class(len);
	void *big;

	if (len == 0)
		return NULL;
	t = isd_rdma_thread_self();
	if (c < 0)
		goto big;
	pc = &t->cache[c];
	if (pc->head == NULL) {
		pthread_mutex_lock(&g_pool_lock);
		if (g_free[c] == NULL && slab_grow(c) < 0) {
			pthread_mutex_unlock(&g_pool_lock);
			goto big;
		}
		if (t->gone) {
			/* no cache any more: one buffer straight from the depot */
			f = g_free[c];
			g_free[c] = f->next;
			pthread_mutex_unlock(&g_pool_lock);
			goto slab;
		}
		depot_take(pc, c, cache_cap(c) / 2 > 0 ? cache_cap(c) / 2 : 1);
		pthread_mutex_unlock(&g_pool_lock);
	}
	f = pc->head;
	pc->head = f->next;
	__atomic_store_n(&pc->n, pc->n - 1, __ATOMIC_RELAXED);
slab:
	bump(&t->bufs, 1);
	bump(&t->slab_bufs, 1);
	return f;
big:
	big = big_alloc(len);
	if (big != NULL)
		bump(&t->bufs, 1);
	return big;
}

/* Whether buf is inside a slab: slabs are only added (trim aside), so the
 * list can be walked without the lock. */
static bool
in_slab(const void *buf)
{
	for (const struct pool_slab *s = __atomic_load_n(&g_slabs, __ATOMIC_ACQUIRE); s != NULL;
	     s = s->next) {
		const uint8_t *m = s->mem;

		if ((const uint8_t *)buf >= m && (const uint8_t *)buf < m + ISD_RDMA_POOL_SLAB)
			return true;
	}
	return false;
}

void
isd_rdma_buf_free(void *buf, size_t len)
{
	struct isd_rdma_thread *t;
	struct isd_rdma_pool_cache *pc;
	struct pool_free *f = buf;
	int c = size_class(len);

	if (buf == NULL)
		return;
	t = isd_rdma_thread_self();
	bump(&t->bufs, -1);
	if (c < 0 || !in_slab(buf)) {
		isd_rdma_mem_remove(buf);
		free(buf);
		return;
	}
	bump(&t->slab_bufs, -1);
	if (t->gone) {
		pthread_mutex_lock(&g_pool_lock);
		f->next = g_free[c];
		g_free[c] = f;
		pthread_mutex_unlock(&g_pool_lock);
		return;
	}
	pc = &t->cache[c];
	f->next = pc->head;
	pc->head = f;
	__atomic_store_n(&pc->n, pc->n + 1, __ATOMIC_RELAXED);
	if (pc->n > cache_cap(c)) {
		pthread_mutex_lock(&g_pool_lock);
		depot_give(pc, c, pc->n - cache_cap(c) / 2);
		pthread_mutex_unlock(&g_pool_lock);
	}
}

void
isd_rdma_pool_thread_exit(struct isd_rdma_thread *t)
{
	pthread_mutex_lock(&g_pool_lock);
	for (int c = 0; c < POOL_CLASSES; c++)
		depot_give(&t->cache[c], c, t->cache[c].n);
	pthread_mutex_unlock(&g_pool_lock);
}

void
isd_rdma_pool_trim(void)
{
	struct isd_rdma_thread *t = isd_rdma_thread_self();
	int64_t bufs, slab_bufs;
	bool idle;

	pthread_mutex_lock(&g_pool_lock);
	for (int c = 0; c < POOL_CLASSES; c++)
		depot_give(&t->cache[c], c, t->cache[c].n);
	isd_rdma_threads_sum(&bufs, &slab_bufs, &idle);
	/* a buffer out, or another thread's cache, still points into the slabs */
	if (slab_bufs > 0 || !idle) {
		pthread_mutex_unlock(&g_pool_lock);
		return;
	}
	while (g_slabs != NULL) {
		struct pool_slab *s = g_slabs;

		__atomic_store_n(&g_slabs, s->next, __ATOMIC_RELEASE);
		isd_rdma_mem_remove(s->mem);
		free(s->mem);
		free(s);
	}
	memset(g_free, 0, sizeof(g_free));
	__atomic_store_n(&g_slab_bytes, 0, __ATOMIC_RELAXED);
	pthread_mutex_unlock(&g_pool_lock);
}

void
isd_rdma_pool_stats(uint64_t *bufs, uint64_t *slab_bytes)
{
	int64_t b, sb;

	isd_rdma_threads_sum(&b, &sb, NULL);
	*bufs = b > 0 ? (uint64_t)b : 0;
	*slab_bytes = __atomic_load_n(&g_slab_bytes, __ATOMIC_RELAXED);
}
