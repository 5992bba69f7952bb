/*
 * Per-thread free lists in front of malloc (mem.h says why).
 *
 * Each block carries a 16-byte header (its class and a check word; the free
 * list link while cached), so isd_mem_free() needs no size and the caller's
 * part stays 16-byte aligned. A thread's lists and counters live in its
 * thread-local struct mem_thread, which is linked into a process list the
 * first time the thread allocates so that isd_mem_get_stats() can add them
 * up; the owner alone writes its counters (relaxed atomic stores, so a reader
 * on another thread sees whole values), and the list is locked only when a
 * thread joins or leaves and when the figures are read.
 */
#include "util/mem.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>

#if defined(__SANITIZE_ADDRESS__)
#define MEM_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define MEM_ASAN 1
#endif
#endif
#ifdef MEM_ASAN
#include <sanitizer/asan_interface.h>
#define MEM_POISON(p, n) ASAN_POISON_MEMORY_REGION((p), (n))
#define MEM_UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION((p), (n))
#else
#define MEM_POISON(p, n) ((void)(p), (void)(n))
#define MEM_UNPOISON(p, n) ((void)(p), (void)(n))
#endif

#define MEM_HDR 16u
#define MEM_MIN 64u                     /* smallest class, header included */
#define MEM_MAX_SHIFT 24                /* largest class: 16 MiB, header included */
#define MEM_CLASSES ((MEM_MAX_SHIFT - 6) * 4 + 1)
#define MEM_BIG 0xffffu                 /* past the classes: malloc each time */
#define MEM_MAGIC 0x15d3u               /* in use */
#define MEM_MAGIC_FREE 0x15dfu          /* on a free list */
#define MEM_MAGIC_ALIGNED 0x15dau       /* in front of an aligned pointer into a block */
#define MEM_ALIGN_MAX 65536u

struct mem_hdr {
	uint16_t cls;
	uint16_t magic;
	/* MEM_MAGIC_ALIGNED: bytes back to the block's start; otherwise the size
	 * of a block of a class, header included (kept while the block is cached,
	 * so neither end works it out again), 0 for a MEM_BIG one */
	uint32_t pad;
	struct mem_hdr *next;           /* on a free list */
};
_Static_assert(sizeof(struct mem_hdr) == MEM_HDR, "the header keeps 16-byte alignment");

struct mem_thread {
	struct mem_hdr *head[MEM_CLASSES];
	struct isd_mem_stats st;
	bool joined;
	bool gone;                      /* its destructor ran: pass everything to malloc */
	LIST_ENTRY(mem_thread) link;
};

static __thread struct mem_thread t_mem;

static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static LIST_HEAD(, mem_thread) g_threads = LIST_HEAD_INITIALIZER(g_threads);
static struct isd_mem_stats g_gone;     /* figures of threads that have exited */
static pthread_key_t g_key;
static pthread_once_t g_once = PTHREAD_ONCE_INIT;
static size_t g_limit = (size_t)64 << 20;

/* Only the owning thread writes its counters; readers load them whole. */
static inline void
bump(uint64_t *p, int64_t d)
{
	__atomic_store_n(p, __atomic_load_n(p, __ATOMIC_RELAXED) + (uint64_t)d, __ATOMIC_RELAXED);
}

static inline uint64_t
load(const uint64_t *p)
{
	return __atomic_load_n(p, __ATOMIC_RELAXED);
}

/* The class of a block of s bytes (header included, s >= 1): four a power of two. */
static unsigned
cls_of(size_t s)
{
	unsigned b, q;

	if (s <= MEM_MIN)
		return 0;
	if (s > ((size_t)1 << MEM_MAX_SHIFT))
		return MEM_BIG;
	b = 63u - (unsigned)__builtin_clzll((unsigned long long)(s - 1));     /* 2^b < s <= 2^(b+1) */
	q = (unsigned)((s - 1) >> (b - 2)) & 3u;
	return (b - 6u) * 4u + q + 1u;
}

static size_t
cls_size(unsigned c)
{
	unsigned b, q;

	if (c == 0)
		return MEM_MIN;
	b = (c - 1u) / 4u + 6u;
	q = (c - 1u) % 4u;
	return ((size_t)1 << b) + ((size_t)(q + 1u) << (b - 2u));
}

static void drain(struct mem_thread *m);

static void
thread_exit(void *arg)
{
	struct mem_thread *m = arg;

	drain(m);
	m->gone = true;
	pthread_mutex_lock(&g_lock);
	if (m->joined) {
		LIST_REMOVE(m, link);
		m->joined = false;
	}
	g_gone.allocs += m->st.allocs;
	g_gone.frees += m->st.frees;
	g_gone.sys_allocs += m->st.sys_allocs;
	g_gone.sys_frees += m->st.sys_frees;
	pthread_mutex_unlock(&g_lock);
}

static void
make_key(void)
{
	if (pthread_key_create(&g_key, thread_exit) != 0)
		abort();
}

static struct mem_thread *
self(void)
{
	struct mem_thread *m = &t_mem;

	if (!m->joined && !m->gone) {
		pthread_once(&g_once, make_key);
		(void)pthread_setspecific(g_key, m);
		pthread_mutex_lock(&g_lock);
		LIST_INSERT_HEAD(&g_threads, m, link);
		m->joined = true;
		pthread_mutex_unlock(&g_lock);
	}
	return m;
}

void *
isd_mem_alloc(size_t size)
{
	struct mem_thread *m = self();
	unsigned c;
	struct mem_hdr *h;
	size_t n;

	if (size > SIZE_MAX - MEM_HDR)
		return NULL;
	c = cls_of(size + MEM_HDR);
	bump(&m->st.allocs, 1);
	if (c != MEM_BIG && (h = m->head[c]) != NULL) {
		n = h->pad;
		MEM_UNPOISON(h, n);
		m->head[c] = h->next;
		bump(&m->st.cached_bytes, -(int64_t)n);
		bump(&m->st.cached_blocks, -1);
	} else {
		n = c == MEM_BIG ? size + MEM_HDR : cls_size(c);
		h = malloc(n);
		if (h == NULL)
			return NULL;
		bump(&m->st.sys_allocs, 1);
		h->pad = c == MEM_BIG ? 0 : (uint32_t)n;
	}
	h->cls = (uint16_t)c;
	h->magic = MEM_MAGIC;
	h->next = NULL;
	return (char *)h + MEM_HDR;
}

void *
isd_mem_zalloc(size_t size)
{
	void *p = isd_mem_alloc(size);

	if (p != NULL)
		memset(p, 0, size);
	return p;
}

/*
 * A pointer p inside a block of size + align + 16 bytes with p + offset
 * aligned, and a second header right in front of p (inside the block's own
 * bytes) that says how far back the block starts: at least 16 bytes (room
 * for that header), less than align + 16.
 */
void *
isd_mem_alloc_at(size_t size, size_t align, size_t offset)
{
	uintptr_t base, p;
	struct mem_hdr *h;
	char *raw;

	if (align <= MEM_HDR && offset % MEM_HDR == 0)
		return isd_mem_alloc(size);
	if (align == 0 || (align & (align - 1)) != 0 || align > MEM_ALIGN_MAX ||
	    offset > MEM_ALIGN_MAX || size > SIZE_MAX - align - 2 * MEM_HDR)
		return NULL;
	raw = isd_mem_alloc(size + align + MEM_HDR);
	if (raw == NULL)
		return NULL;
	base = (uintptr_t)raw;
	p = ((base + MEM_HDR + offset + align - 1) & ~(uintptr_t)(align - 1)) - offset;
	h = (struct mem_hdr *)(p - MEM_HDR);
	h->cls = 0;
	h->magic = MEM_MAGIC_ALIGNED;
	h->pad = (uint32_t)(p - base);
	h->next = NULL;
	return (void *)p;
}

void *
isd_mem_alloc_aligned(size_t size, size_t align)
{
	return isd_mem_alloc_at(size, align, 0);
}

void
isd_mem_free(void *p)
{
	struct mem_thread *m;
	struct mem_hdr *h;
	size_t n;

	if (p == NULL)
		return;
	h = (struct mem_hdr *)((char *)p - MEM_HDR);
	if (h->magic == MEM_MAGIC_ALIGNED && h->pad >= MEM_HDR && h->pad < MEM_ALIGN_MAX + MEM_HDR) {
		h->magic = 0;
		p = (char *)p - h->pad;
		h = (struct mem_hdr *)((char *)p - MEM_HDR);
	}
	if (h->magic != MEM_MAGIC || (h->cls >= MEM_CLASSES && h->cls != MEM_BIG)) {
		fprintf(stderr, "isd_mem_free: %p is not a live isd_mem block\n", p);
		abort();
	}
	m = self();
	bump(&m->st.frees, 1);
	n = h->pad;
	if (h->cls == MEM_BIG || m->gone ||
	    load(&m->st.cached_bytes) + n > __atomic_load_n(&g_limit, __ATOMIC_RELAXED)) {
		h->magic = 0;
		free(h);
		bump(&m->st.sys_frees, 1);
		return;
	}
	h->magic = MEM_MAGIC_FREE;
	h->next = m->head[h->cls];
	m->head[h->cls] = h;
	bump(&m->st.cached_bytes, (int64_t)n);
	bump(&m->st.cached_blocks, 1);
	/* the header stays readable (the list runs through it); the rest does not */
	MEM_POISON((char *)h + MEM_HDR, n - MEM_HDR);
}

static void
drain(struct mem_thread *m)
{
	for (unsigned c = 0; c < MEM_CLASSES; c++) {
		struct mem_hdr *h;

		while ((h = m->head[c]) != NULL) {
			size_t n = h->pad;

			MEM_UNPOISON(h, n);
			m->head[c] = h->next;
			h->magic = 0;
			free(h);
			bump(&m->st.sys_frees, 1);
			bump(&m->st.cached_bytes, -(int64_t)n);
			bump(&m->st.cached_blocks, -1);
		}
	}
}

void
isd_mem_thread_drain(void)
{
	if (t_mem.joined)
		drain(&t_mem);
}

void
isd_mem_set_cache_limit(size_t bytes)
{
	__atomic_store_n(&g_limit, bytes, __ATOMIC_RELAXED);
}

void
isd_mem_get_stats(struct isd_mem_stats *out)
{
	struct mem_thread *m;

	pthread_mutex_lock(&g_lock);
	*out = g_gone;
	LIST_FOREACH(m, &g_threads, link) {
		out->allocs += load(&m->st.allocs);
		out->frees += load(&m->st.frees);
		out->sys_allocs += load(&m->st.sys_allocs);
		out->sys_frees += load(&m->st.sys_frees);
		out->cached_bytes += load(&m->st.cached_bytes);
		out->cached_blocks += load(&m->st.cached_blocks);
	}
	pthread_mutex_unlock(&g_lock);
}
