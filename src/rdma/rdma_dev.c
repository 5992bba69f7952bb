/*
 * Devices, memory registrations, the memory registry, CQs on the reactor.
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

static LIST_HEAD(, isd_rdma_dev) g_devs = LIST_HEAD_INITIALIZER(g_devs);
static LIST_HEAD(, isd_rdma_region) g_regions = LIST_HEAD_INITIALIZER(g_regions);
static struct isd_rdma_dev *g_dev_slot[ISD_RDMA_MAX_DEVS];
static struct isd_rdma_stats g_stats;
static bool g_init_done;
/* The device list is process-wide: libiserd opens devices from each context's
 * own thread (the daemon, one reactor thread, never contends for it). */
static pthread_mutex_t g_dev_lock = PTHREAD_MUTEX_INITIALIZER;

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
	g_stats.mrs++;
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
	g_stats.mrs--;
}

int
isd_rdma_remote_mr_reg(struct isd_rdma_dev *d, void *base, size_t len, int access,
		       struct ibv_mr **out, char *err, size_t err_len)
{
	int rc = mr_reg(d, base, len, access, out, err, err_len);

	if (rc == 0) {
		g_stats.remote_mrs++;
		g_stats.remote_mrs_total++;
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
	g_stats.remote_mrs--;
}

/* Registers region g on device d. */
static int
region_reg(struct isd_rdma_region *g, struct isd_rdma_dev *d, char *err, size_t err_len)
{
	struct isd_rdma_access acc;
	int rc;

	if (g->mr[d->index] != NULL)
		return 0;
	rc = isd_rdma_access_plan(d->fabric, g->kind, ISD_RDMA_USE_STANDING, &acc);
	if (rc < 0)
		return rc;
	return isd_rdma_mr_reg(d, g->base, g->len, acc.standing, &g->mr[d->index], err, err_len);
}

static void
region_dereg_dev(struct isd_rdma_dev *d)
{
	struct isd_rdma_region *g;

	LIST_FOREACH(g, &g_regions, link) {
		isd_rdma_mr_dereg(g->mr[d->index]);
		g->mr[d->index] = NULL;
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
	g_stats.devs++;
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
	g_stats.devs--;
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
	g_stats.devs--;
	pthread_mutex_unlock(&g_dev_lock);
	free(d);
}

/* ---- registry ---- */

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
	LIST_FOREACH(g, &g_regions, link) {
		if (g->base == base) {
			isd_seterr(err, err_len, "memory region %p already registered", base);
			return -EEXIST;
		}
	}
	g = calloc(1, sizeof(*g));
	if (g == NULL) {
		isd_seterr(err, err_len, "out of memory");
		return -ENOMEM;
	}
	g->base = base;
	g->len = len;
	g->kind = kind;
	LIST_FOREACH(d, &g_devs, link) {
		rc = region_reg(g, d, err, err_len);
		if (rc < 0) {
			for (int i = 0; i < ISD_RDMA_MAX_DEVS; i++)
				isd_rdma_mr_dereg(g->mr[i]);
			free(g);
			return rc;
		}
	}
	LIST_INSERT_HEAD(&g_regions, g, link);
	g_stats.regions++;
	return 0;
}

void
isd_rdma_mem_remove(void *base)
{
	struct isd_rdma_region *g;

	LIST_FOREACH(g, &g_regions, link) {
		if (g->base == base)
			break;
	}
	if (g == NULL)
		return;
	for (int i = 0; i < ISD_RDMA_MAX_DEVS; i++)
		isd_rdma_mr_dereg(g->mr[i]);
	LIST_REMOVE(g, link);
	g_stats.regions--;
	free(g);
}

int
isd_rdma_mem_find(struct isd_rdma_dev *d, const void *addr, size_t len, uint32_t *lkey,
		  enum isd_rdma_mem_kind *kind)
{
	const uint8_t *a = addr;
	struct isd_rdma_region *g;

	LIST_FOREACH(g, &g_regions, link) {
		if (a >= g->base && len <= g->len && (size_t)(a - g->base) <= g->len - len) {
			if (g->mr[d->index] == NULL)
				return -ENOENT;
			*lkey = g->mr[d->index]->lkey;
			if (kind != NULL)
				*kind = g->kind;
			/* most-recently used first: slabs and LUNs hit again soon */
			if (g != LIST_FIRST(&g_regions)) {
				LIST_REMOVE(g, link);
				LIST_INSERT_HEAD(&g_regions, g, link);
			}
			return 0;
		}
	}
	return -ENOENT;
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
	g_stats.cqs++;
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
	g_stats.cqs--;
	free(cq);
}

/* ---- stats ---- */

void
isd_rdma_count_qp(int delta)
{
	g_stats.qps += (uint64_t)(int64_t)delta;
}

void
isd_rdma_get_stats(struct isd_rdma_stats *out)
{
	*out = g_stats;
	isd_rdma_pool_stats(&out->bufs, &out->slab_bytes);
}
