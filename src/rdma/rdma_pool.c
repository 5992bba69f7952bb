/*
 * The registered data-buffer pool: power-of-two size classes from 4 KiB to
 * ISD_RDMA_POOL_CLASS_MAX, carved from 4 MiB slabs that are added to the
 * memory registry (so they are registered on every device, present and
 * future). Larger buffers, and any buffer once the slabs reach
 * ISD_RDMA_POOL_LIMIT, are separate registry regions of their own.
 * Nothing here is freed back to the system until isd_rdma_pool_trim().
 */
#include "rdma/rdma.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "rdma/rdma_int.h"
#include "util/log.h"

#define POOL_MIN_SHIFT 12
#define POOL_CLASSES 9          /* 4 KiB .. 1 MiB */
#define POOL_ALIGN 4096

struct pool_free {
	struct pool_free *next;
};

struct pool_slab {
	void *mem;
	struct pool_slab *next;
};

static struct pool_free *g_free[POOL_CLASSES];
static struct pool_slab *g_slabs;
static uint64_t g_slab_bytes;
static uint64_t g_bufs;                 /* handed out, both kinds */
static uint64_t g_slab_bufs;            /* handed out from slabs */

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

static int
slab_grow(int c)
{
	size_t sz = (size_t)1 << (POOL_MIN_SHIFT + c);
	struct pool_slab *s;
	char err[256];
	void *mem;
	int rc;

	if (g_slab_bytes + ISD_RDMA_POOL_SLAB > ISD_RDMA_POOL_LIMIT)
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
	g_slabs = s;
	g_slab_bytes += ISD_RDMA_POOL_SLAB;
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
	g_bufs++;
	return mem;
}

void *
isd_rdma_buf_alloc(size_t len)
{
	int c = size_class(len);
	struct pool_free *f;

	if (len == 0)
		return NULL;
	if (c < 0)
		return big_alloc(len);
	if (g_free[c] == NULL && slab_grow(c) < 0)
		return big_alloc(len);
	f = g_free[c];
	g_free[c] = f->next;
	g_bufs++;
	g_slab_bufs++;
	return f;
}

static bool
in_slab(const void *buf)
{
	for (struct pool_slab *s = g_slabs; s != NULL; s = s->next) {
		const uint8_t *m = s->mem;

		if ((const uint8_t *)buf >= m && (const uint8_t *)buf < m + ISD_RDMA_POOL_SLAB)
			return true;
	}
	return false;
}

void
isd_rdma_buf_free(void *buf, size_t len)
{
	int c = size_class(len);

	if (buf == NULL)
		return;
	g_bufs--;
	if (c >= 0 && in_slab(buf)) {
		struct pool_free *f = buf;

		f->next = g_free[c];
		g_free[c] = f;
		g_slab_bufs--;
		return;
	}
	isd_rdma_mem_remove(buf);
	free(buf);
}

void
isd_rdma_pool_trim(void)
{
	if (g_slab_bufs > 0)
		return;
	while (g_slabs != NULL) {
		struct pool_slab *s = g_slabs;

		g_slabs = s->next;
		isd_rdma_mem_remove(s->mem);
		free(s->mem);
		free(s);
	}
	memset(g_free, 0, sizeof(g_free));
	g_slab_bytes = 0;
}

void
isd_rdma_pool_stats(uint64_t *bufs, uint64_t *slab_bytes)
{
	*bufs = g_bufs;
	*slab_bytes = g_slab_bytes;
}
