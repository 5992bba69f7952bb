/*
 * Devices, memory registrations, the memory registry, CQs on the reactor,
 * and the RDMA layer's per-thread parts.
 *
 * Threads: devices and the registry change under g_dev_lock (opening a
 * device registers every region on it; adding a region registers it on
 * every device). Lookups (isd_rdma_mem_find, on every data transfer, from
 * any reactor) take no lock: they search a sorted table of the regions that
 * a writer replaces whole and publishes with one atomic store. Before a
 * writer frees the table it replaced, or a region it removed, it waits until
 * no other thread is inside a lookup (each thread's `active` flag, see
 * rdma_int.h); a lookup is a binary search and never blocks, so the wait is
 * short. The flag and the table pointer are sequentially consistent: either
 * the writer sees a reader's flag and waits for it, or that reader sees the
 * new table.
 */
#include "rdma/rdma.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sched.h>
#include <sys/resource.h>

#include "rdma/rdma_int.h"
#include "reactor/reactor.h"
#include "util/log.h"
#include "util/str.h"

/* A registered region: one MR per open device (indexed by isd_rdma_dev.index). */
struct isd_rdma_region {
	uint8_t *base;
	size_t len;
	enum isd_rdma_mem_kind kind;
	struct ibv_mr *mr[ISD_RDMA_MAX_DEVS];
	LIST_ENTRY(isd_rdma_region) link;
};

/* The regions sorted by base, for lookups: replaced whole, never changed. */
struct reg_table {
	unsigned n;
	struct isd_rdma_region *r[];
};

static LIST_HEAD(, isd_rdma_dev) g_devs = LIST_HEAD_INITIALIZER(g_devs);
static LIST_HEAD(, isd_rdma_region) g_regions = LIST_HEAD_INITIALIZER(g_regions);
static struct reg_table *g_table;       /* atomic; NULL: no region */
static struct isd_rdma_dev *g_dev_slot[ISD_RDMA_MAX_DEVS];
static struct isd_rdma_stats g_stats;   /* each field atomic (isd_rdma_stat_add) */
static bool g_init_done;
/* Devices and the registry: every change, from any thread (lookups excepted). */
static pthread_mutex_t g_dev_lock = PTHREAD_MUTEX_INITIALIZER;

/* ---- threads ---- */

static pthread_mutex_t g_thr_lock = PTHREAD_MUTEX_INITIALIZER;
static LIST_HEAD(, isd_rdma_thread) g_threads = LIST_HEAD_INITIALIZER(g_threads);
static int64_t g_gone_bufs, g_gone_slab_bufs;   /* under g_thr_lock */
static pthread_key_t g_thr_key;
static pthread_once_t g_thr_once = PTHREAD_ONCE_INIT;
static __thread struct isd_rdma_thread t_rdma;

static void
thread_exit(void *arg)
{
	struct isd_rdma_thread *t = arg;

	isd_rdma_pool_thread_exit(t);
	pthread_mutex_lock(&g_thr_lock);
	if (t->joined) {
		LIST_REMOVE(t, link);
		t->joined = false;
	}
	t->gone = true;
	g_gone_bufs += __atomic_load_n(&t->bufs, __ATOMIC_RELAXED);
	g_gone_slab_bufs += __atomic_load_n(&t->slab_bufs, __ATOMIC_RELAXED);
	__atomic_store_n(&t->bufs, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&t->slab_bufs, 0, __ATOMIC_RELAXED);
	pthread_mutex_unlock(&g_thr_lock);
}

static void
make_key(void)
{
	if (pthread_key_create(&g_thr_key, thread_exit) != 0)
		abort();
}

struct isd_rdma_thread *
isd_rdma_thread_self(void)
{
	struct isd_rdma_thread *t = &t_rdma;

	if (!t->joined && !t->gone) {
		pthread_once(&g_thr_once, make_key);
		(void)pthread_setspecific(g_thr_key, t);
		pthread_mutex_lock(&g_thr_lock);
		LIST_INSERT_HEAD(&g_threads, t, link);
		t->joined = true;
		pthread_mutex_unlock(&g_thr_lock);
	}
	return t;
}

void
isd_rdma_threads_sum(int64_t *bufs, int64_t *slab_bufs, bool *idle_caches)
{
	struct isd_rdma_thread *t, *self = &t_rdma;
	int64_t b, sb;
	bool idle = true;

	pthread_mutex_lock(&g_thr_lock);
	b = g_gone_bufs;
	sb = g_gone_slab_bufs;
	LIST_FOREACH(t, &g_threads, link) {
		b += __atomic_load_n(&t->bufs, __ATOMIC_RELAXED);
		sb += __atomic_load_n(&t->slab_bufs, __ATOMIC_RELAXED);
		if (t == self)
			continue;
		for (int c = 0; c < ISD_RDMA_POOL_CLASSES; c++) {
			if (__atomic_load_n(&t->cache[c].n, __ATOMIC_RELAXED) != 0)
				idle = false;
		}
	}
	pthread_mutex_unlock(&g_thr_lock);
	*bufs = b;
	*slab_bufs = sb;
	if (idle_caches != NULL)
		*idle_caches = idle;
}

/* Until no other thread is inside a lookup that may have read the old table. */
static void
readers_wait(void)
{
	struct isd_rdma_thread *t, *self = &t_rdma;

	pthread_mutex_lock(&g_thr_lock);
	LIST_FOREACH(t, &g_threads, link) {
		if (t == self)
			continue;
		while (__atomic_load_n(&t->active, __ATOMIC_SEQ_CST) != 0)
			sched_yield();
	}
	pthread_mutex_unlock(&g_thr_lock);
}

void
isd_rdma_init(void)
{
	struct rlimit rl;

	if (g_init_done)
		return;
	g_init_done = true;
	if (getrlimit(RLIMIT_MEMLOCK, &rl) != 0)
		return;
	if (rl.rlim_cur == RLIM_INFINITY)
		return;
	/* root (CAP_SYS_RESOURCE) may raise the hard limit too */
	struct rlimit want = { RLIM_INFINITY, RLIM_INFINITY };
	if (setrlimit(RLIMIT_MEMLOCK, &want) == 0)
		return;
	if (rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		(void)setrlimit(RLIMIT_MEMLOCK, &rl);
	}
}

void
isd_rdma_memlock_str(char *out, size_t len)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_MEMLOCK, &rl) != 0) {
		snprintf(out, len, "RLIMIT_MEMLOCK unknown");
		return;
	}
	if (rl.rlim_cur == RLIM_INFINITY)
		snprintf(out, len, "RLIMIT_MEMLOCK unlimited");
	else
		snprintf(out, len, "RLIMIT_MEMLOCK %llu KiB", (unsigned long long)rl.rlim_cur / 1024);
}

static int
mr_reg(struct isd_rdma_dev *d, void *base, size_t len, int access, struct ibv_mr **out, char *err,
       size_t err_len)
{
	struct ibv_mr *mr = ibv_reg_mr(d->pd, base, len, access);
	char lim[64];
	int e;

	if (mr == NULL) {
		e = errno ? errno : ENOMEM;
		if (e == ENOMEM || e == EPERM || e == EFAULT || e == EAGAIN) {
			isd_rdma_memlock_str(lim, sizeof(lim));
			isd_seterr(
			    err, err_len,
			    "%s: cannot register %zu bytes of memory for RDMA: %s (%s; raise it: "
			    "`ulimit -l unlimited` in the shell, LimitMEMLOCK=infinity in the "
			    "systemd unit, or a memlock line in /etc/security/limits.conf)",
			    d->name, len, strerror(e), lim);
		} else {
			isd_seterr(err, err_len, "%s: ibv_reg_mr(%zu bytes): %s", d->name, len,
				   strerror(e));
		}
		return -e;
	}
	isd_rdma_stat_add(&g_stats.mrs, 1);
	*out = mr;
	return 0;
}

int
isd_rdma_mr_reg(struct isd_rdma_dev *d, void *base, size_t len, int access, struct ibv_mr **out,
		char *err, size_t err_len)
{
	if (isd_rdma_access_is_remote(access)) {
		/* no standing remote access to target memory: per command only */
		isd_seterr(err, err_len,
			   "%s: refusing a lasting registration with remote access "
			   "0x%x",
			   d->name, (unsigned int)access);
		return -EPERM;
	}
	return mr_reg(d, base, len, access, out, err, err_len);
}

void
isd_rdma_mr_dereg(struct ibv_mr *mr)
{
	if (mr == NULL)
		return;
	if (ibv_dereg_mr(mr) != 0)
		isd_log_warn("rdma: ibv_dereg_mr failed: %s", strerror(errno));
	isd_rdma_stat_add(&g_stats.mrs, -1);
}

int
isd_rdma_remote_mr_reg(struct isd_rdma_dev *d, void *base, size_t len, int access,
		       struct ibv_mr **out, char *err, size_t err_len)
{
	int rc = mr_reg(d, base, len, access, out, err, err_len);

	if (rc == 0) {
		isd_rdma_stat_add(&g_stats.remote_mrs, 1);
		isd_rdma_stat_add(&g_stats.remote_mrs_total, 1);
	}
	return rc;
}

void
isd_rdma_remote_mr_dereg(struct ibv_mr *mr)
{
	if (mr == NULL)
		return;
	/* deregistration invalidates the STag: a late RDMA Write to it fails */
	isd_rdma_mr_dereg(mr);
	isd_rdma_stat_add(&g_stats.remote_mrs, -1);
}

/* Registers region g on device d. */
static int
region_reg(struct isd_rdma_region *g, struct isd_rdma_dev *d, char *err, size_t err_len)
{
	struct isd_rdma_access acc;
	int rc;

	struct ibv_mr *mr;

	if (g->mr[d->index] != NULL)
		return 0;
	rc = isd_rdma_access_plan(d->fabric, g->kind, ISD_RDMA_USE_STANDING, &acc);
	if (rc < 0)
		return rc;
	rc = isd_rdma_mr_reg(d, g->base, g->len, acc.standing, &mr, err, err_len);
	if (rc == 0)
		__atomic_store_n(&g->mr[d->index], mr, __ATOMIC_RELEASE);
	return rc;
}

static void
region_dereg_dev(struct isd_rdma_dev *d)
{
	struct isd_rdma_region *g;

	/* nobody looks up on d any more: its last user put it */
	LIST_FOREACH(g, &g_regions, link) {
		isd_rdma_mr_dereg(g->mr[d->index]);
		__atomic_store_n(&g->mr[d->index], NULL, __ATOMIC_RELEASE);
	}
}

static int
dev_get_locked(struct ibv_context *ctx, struct isd_rdma_dev **out, char *err, size_t err_len)
{
	struct isd_rdma_dev *d;
	struct isd_rdma_region *g;
	int slot = -1, rc;

	LIST_FOREACH(d, &g_devs, link) {
		if (d->ctx == ctx) {
			d->refs++;
			*out = d;
			return 0;
		}
	}
	for (int i = 0; i < ISD_RDMA_MAX_DEVS; i++) {
		if (g_dev_slot[i] == NULL) {
			slot = i;
			break;
		}
	}
	if (slot < 0) {
		isd_seterr(err, err_len, "too many RDMA devices (at most %d)", ISD_RDMA_MAX_DEVS);
		return -ENOSPC;
	}
	d = calloc(1, sizeof(*d));
	if (d == NULL) {
		isd_seterr(err, err_len, "out of memory");
		return -ENOMEM;
	}
	d->ctx = ctx;
	d->index = slot;
	snprintf(d->name, sizeof(d->name), "%s", ibv_get_device_name(ctx->device));
	if (ibv_query_device(ctx, &d->attr) != 0) {
		rc = -(errno ? errno : EIO);
		isd_seterr(err, err_len, "%s: ibv_query_device: %s", d->name, strerror(-rc));
		goto err_free;
	}
	d->iwarp = ctx->device->transport_type == IBV_TRANSPORT_IWARP;
	d->fabric = ISD_RDMA_FABRIC_IB;
	if (d->iwarp) {
		d->fabric = ISD_RDMA_FABRIC_IWARP;
	} else {
		struct ibv_port_attr pa;

		if (ibv_query_port(ctx, 1, &pa) == 0 && pa.link_layer == IBV_LINK_LAYER_ETHERNET)
			d->fabric = ISD_RDMA_FABRIC_ROCE;
	}
	d->pd = ibv_alloc_pd(ctx);
	if (d->pd == NULL) {
		rc = -(errno ? errno : ENOMEM);
		isd_seterr(err, err_len, "%s: ibv_alloc_pd: %s", d->name, strerror(-rc));
		goto err_free;
	}
	d->refs = 1;
	g_dev_slot[slot] = d;
	LIST_INSERT_HEAD(&g_devs, d, link);
	isd_rdma_stat_add(&g_stats.devs, 1);
	LIST_FOREACH(g, &g_regions, link) {
		rc = region_reg(g, d, err, err_len);
		if (rc < 0)
			goto err_dereg;
	}
	isd_log_info("rdma: device %s open (%s, max_qp_wr %d, max_sge %d, max_sge_rd %d, "
		     "max_qp_init_rd_atom %d)", d->name, isd_rdma_fabric_name(d->fabric),
		     d->attr.max_qp_wr, d->attr.max_sge, d->attr.max_sge_rd,
		     d->attr.max_qp_init_rd_atom);
	*out = d;
	return 0;

err_dereg:
	region_dereg_dev(d);
	LIST_REMOVE(d, link);
	g_dev_slot[slot] = NULL;
	isd_rdma_stat_add(&g_stats.devs, -1);
	ibv_dealloc_pd(d->pd);
err_free:
	free(d);
	return rc;
}

int
isd_rdma_dev_get(struct ibv_context *ctx, struct isd_rdma_dev **out, char *err, size_t err_len)
{
	int rc;

	pthread_mutex_lock(&g_dev_lock);
	rc = dev_get_locked(ctx, out, err, err_len);
	pthread_mutex_unlock(&g_dev_lock);
	return rc;
}

void
isd_rdma_dev_put(struct isd_rdma_dev *d)
{
	if (d == NULL)
		return;
	pthread_mutex_lock(&g_dev_lock);
	if (--d->refs > 0) {
		pthread_mutex_unlock(&g_dev_lock);
		return;
	}
	region_dereg_dev(d);
	LIST_REMOVE(d, link);
	g_dev_slot[d->index] = NULL;
	if (ibv_dealloc_pd(d->pd) != 0)
		isd_log_warn("rdma: %s: ibv_dealloc_pd failed: %s", d->name, strerror(errno));
	isd_rdma_stat_add(&g_stats.devs, -1);
	pthread_mutex_unlock(&g_dev_lock);
	free(d);
}

/* ---- registry ---- */

/*
 * The table of the regions now on g_regions, with or without one: a new
 * table sorted by base, published; the old one freed once no lookup can be
 * reading it. Under g_dev_lock. -ENOMEM leaves everything as it was.
 */
static int
table_rebuild(void)
{
	struct reg_table *nt, *old = g_table;
	struct isd_rdma_region *g;
	unsigned n = 0;

	LIST_FOREACH(g, &g_regions, link)
		n++;
	nt = NULL;
	if (n > 0) {
		nt = malloc(sizeof(*nt) + n * sizeof(nt->r[0]));
		if (nt == NULL)
			return -ENOMEM;
		nt->n = 0;
		/* insertion sort: tables are small and rebuilt rarely */
		LIST_FOREACH(g, &g_regions, link) {
			unsigned i = nt->n++;

			while (i > 0 && nt->r[i - 1]->base > g->base) {
				nt->r[i] = nt->r[i - 1];
				i--;
			}
			nt->r[i] = g;
		}
	}
	__atomic_store_n(&g_table, nt, __ATOMIC_SEQ_CST);
	readers_wait();
	free(old);
	return 0;
}

int
isd_rdma_mem_add(void *base, size_t len, enum isd_rdma_mem_kind kind, char *err, size_t err_len)
{
	struct isd_rdma_region *g;
	struct isd_rdma_dev *d;
	int rc;

	if (base == NULL || len == 0) {
		isd_seterr(err, err_len, "empty memory region");
		return -EINVAL;
	}
	pthread_mutex_lock(&g_dev_lock);
	LIST_FOREACH(g, &g_regions, link) {
		if (g->base == base) {
			isd_seterr(err, err_len, "memory region %p already registered", base);
			rc = -EEXIST;
			goto out;
		}
	}
	g = calloc(1, sizeof(*g));
	if (g == NULL) {
		isd_seterr(err, err_len, "out of memory");
		rc = -ENOMEM;
		goto out;
	}
	g->base = base;
	g->len = len;
	g->kind = kind;
	LIST_FOREACH(d, &g_devs, link) {
		rc = region_reg(g, d, err, err_len);
		if (rc < 0)
			goto err_dereg;
	}
	LIST_INSERT_HEAD(&g_regions, g, link);
	rc = table_rebuild();
	if (rc < 0) {
		LIST_REMOVE(g, link);
		isd_seterr(err, err_len, "out of memory");
		goto err_dereg;
	}
	isd_rdma_stat_add(&g_stats.regions, 1);
	goto out;

err_dereg:
	for (int i = 0; i < ISD_RDMA_MAX_DEVS; i++)
		isd_rdma_mr_dereg(g->mr[i]);
	free(g);
out:
	pthread_mutex_unlock(&g_dev_lock);
	return rc;
}

void
isd_rdma_mem_remove(void *base)
{
	struct isd_rdma_region *g;

	pthread_mutex_lock(&g_dev_lock);
	LIST_FOREACH(g, &g_regions, link) {
		if (g->base == base)
			break;
	}
	if (g == NULL) {
		pthread_mutex_unlock(&g_dev_lock);
		return;
	}
	LIST_REMOVE(g, link);
	/* without memory for a new table, the old one is made to forget it in place */
	if (table_rebuild() < 0) {
		struct reg_table *t = g_table;
		unsigned j = 0;

		for (unsigned i = 0; i < t->n; i++) {
			if (t->r[i] != g)
				__atomic_store_n(&t->r[j++], t->r[i], __ATOMIC_RELAXED);
		}
		__atomic_store_n(&t->n, j, __ATOMIC_SEQ_CST);
		readers_wait();
	}
	for (int i = 0; i < ISD_RDMA_MAX_DEVS; i++)
		isd_rdma_mr_dereg(g->mr[i]);
	isd_rdma_stat_add(&g_stats.regions, -1);
	pthread_mutex_unlock(&g_dev_lock);
	free(g);
}

static int
table_find(const struct reg_table *t, struct isd_rdma_dev *d, const uint8_t *a, size_t len,
	   uint32_t *lkey, enum isd_rdma_mem_kind *kind)
{
	const struct isd_rdma_region *g;
	unsigned lo = 0, hi;
	struct ibv_mr *mr;

	if (t == NULL)
		return -ENOENT;
	/* the last region starting at or below a */
	hi = __atomic_load_n(&t->n, __ATOMIC_SEQ_CST);
	while (lo < hi) {
		unsigned mid = lo + (hi - lo) / 2;

		if (__atomic_load_n(&t->r[mid], __ATOMIC_RELAXED)->base <= a)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo == 0)
		return -ENOENT;
	g = __atomic_load_n(&t->r[lo - 1], __ATOMIC_RELAXED);
	if (len > g->len || (size_t)(a - g->base) > g->len - len)
		return -ENOENT;
	mr = __atomic_load_n(&g->mr[d->index], __ATOMIC_ACQUIRE);
	if (mr == NULL)
		return -ENOENT;
	*lkey = mr->lkey;
	if (kind != NULL)
		*kind = g->kind;
	return 0;
}

int
isd_rdma_mem_find(struct isd_rdma_dev *d, const void *addr, size_t len, uint32_t *lkey,
		  enum isd_rdma_mem_kind *kind)
{
	struct isd_rdma_thread *t = isd_rdma_thread_self();
	int rc;

	if (t->gone) {
		/* a thread past its exit is no longer waited for: take the lock */
		pthread_mutex_lock(&g_dev_lock);
		rc = table_find(g_table, d, addr, len, lkey, kind);
		pthread_mutex_unlock(&g_dev_lock);
		return rc;
	}
	__atomic_store_n(&t->active, 1, __ATOMIC_SEQ_CST);
	rc = table_find(__atomic_load_n(&g_table, __ATOMIC_SEQ_CST), d, addr, len, lkey, kind);
	__atomic_store_n(&t->active, 0, __ATOMIC_RELEASE);
	return rc;
}

/* ---- CQ on the reactor ---- */

static void
cq_event_cb(void *arg, uint32_t events)
{
	struct isd_rdma_cq *cq = arg;
	struct ibv_cq *ev_cq;
	void *ev_ctx;

	(void)events;
	/* the channel fd is nonblocking: drain every pending event */
	while (ibv_get_cq_event(cq->ch, &ev_cq, &ev_ctx) == 0)
		cq->unacked++;
	if (cq->unacked >= 16) {
		ibv_ack_cq_events(cq->cq, cq->unacked);
		cq->unacked = 0;
	}
	cq->cb(cq->arg);
}

int
isd_rdma_cq_create(struct isd_rdma_dev *d, struct isd_reactor *r, int depth, isd_rdma_cq_cb cb,
		   void *arg, struct isd_rdma_cq **out)
{
	struct isd_rdma_cq *cq;
	int rc, fl;

	if (depth > d->attr.max_cqe)
		depth = d->attr.max_cqe;
	cq = calloc(1, sizeof(*cq));
	if (cq == NULL)
		return -ENOMEM;
	cq->r = r;
	cq->cb = cb;
	cq->arg = arg;
	cq->ch = ibv_create_comp_channel(d->ctx);
	if (cq->ch == NULL) {
		rc = -(errno ? errno : ENOMEM);
		goto err_free;
	}
	fl = fcntl(cq->ch->fd, F_GETFL);
	if (fl < 0 || fcntl(cq->ch->fd, F_SETFL, fl | O_NONBLOCK) < 0) {
		rc = -errno;
		goto err_channel;
	}
	cq->cq = ibv_create_cq(d->ctx, depth, cq, cq->ch, 0);
	if (cq->cq == NULL) {
		rc = -(errno ? errno : ENOMEM);
		goto err_channel;
	}
	if (ibv_req_notify_cq(cq->cq, 0) != 0) {
		rc = -(errno ? errno : EIO);
		goto err_cq;
	}
	rc = isd_reactor_add_fd(r, cq->ch->fd, EPOLLIN, cq_event_cb, cq);
	if (rc < 0)
		goto err_cq;
	cq->on_reactor = true;
	isd_rdma_stat_add(&g_stats.cqs, 1);
	*out = cq;
	return 0;

err_cq:
	ibv_destroy_cq(cq->cq);
err_channel:
	ibv_destroy_comp_channel(cq->ch);
err_free:
	free(cq);
	return rc;
}

int
isd_rdma_cq_arm(struct isd_rdma_cq *cq)
{
	return ibv_req_notify_cq(cq->cq, 0) == 0 ? 0 : -(errno ? errno : EIO);
}

void
isd_rdma_cq_destroy(struct isd_rdma_cq *cq)
{
	struct ibv_cq *ev_cq;
	void *ev_ctx;

	if (cq == NULL)
		return;
	if (cq->on_reactor)
		isd_reactor_del_fd(cq->r, cq->ch->fd);
	/* events written and not read yet count as reported: libibverbs waits for
	 * their ack in ibv_destroy_cq (an initiator's connection is freed from any
	 * callback, with events still in the channel) */
	while (ibv_get_cq_event(cq->ch, &ev_cq, &ev_ctx) == 0)
		cq->unacked++;
	if (cq->unacked > 0)
		ibv_ack_cq_events(cq->cq, cq->unacked);
	if (ibv_destroy_cq(cq->cq) != 0)
		isd_log_warn("rdma: ibv_destroy_cq failed: %s", strerror(errno));
	if (ibv_destroy_comp_channel(cq->ch) != 0)
		isd_log_warn("rdma: ibv_destroy_comp_channel failed: %s", strerror(errno));
	isd_rdma_stat_add(&g_stats.cqs, -1);
	free(cq);
}

/* ---- stats ---- */

void
isd_rdma_count_qp(int delta)
{
	isd_rdma_stat_add(&g_stats.qps, delta);
}

void
isd_rdma_get_stats(struct isd_rdma_stats *out)
{
	const uint64_t *src = (const uint64_t *)&g_stats;
	uint64_t *dst = (uint64_t *)out;

	_Static_assert(sizeof(g_stats) % sizeof(uint64_t) == 0, "counters only");
	for (size_t i = 0; i < sizeof(g_stats) / sizeof(uint64_t); i++)
		dst[i] = __atomic_load_n(&src[i], __ATOMIC_RELAXED);
	isd_rdma_pool_stats(&out->bufs, &out->slab_bytes);
}
