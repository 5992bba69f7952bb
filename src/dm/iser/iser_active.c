/*
 * The iSER datamover's active role (an initiator's connection, dm.h): the
 * rdma_cm client side of the connect (address and route resolution, QP and
 * receives, rdma_connect with the iSER CM header, ESTABLISHED), and the
 * registrations of the caller's buffers that the target's RDMA Reads and
 * Writes reach (RFC 7145 as the live peers speak it: docs/iser.md, "Wire facts").
 *
 * Registration: a buffer that is one contiguous range is registered through
 * a cache keyed by address range (rdma/rdma_regcache.h: page-rounded; LRU;
 * entries in use by a command are never evicted), so a buffer reused across
 * commands is registered once; our STags are plain MRs, which is why the CM
 * header says SEND_W_INV_NOT_SUP. Only a buffer that is not one range is
 * bounced through a registered copy of its own.
 *
 * Everything here runs on the connection's reactor; what the connect leads to
 * goes up from CM event callbacks (isd_dm_connected), never from inside the
 * call.
 */
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <rdma/rdma_cma.h>

#include "dm/iser/iser_int.h"
#include "rdma/rdma.h"
#include "util/iov.h"
#include "util/log.h"
#include "util/str.h"

#define ISD_ISER_RESOLVE_MS 2000        /* address and route resolution, each */
#define ISD_ISER_CONNECT_MS 5000        /* from connect to ESTABLISHED */
#define ISD_ISER_RCACHE_ENTRIES ISD_REGCACHE_MAX_ENTRIES
#define ISD_ISER_RCACHE_BYTES (1ull << 30)
#define ISD_ISER_REMOTE_ACCESS                                                                     \
	(IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_READ | IBV_ACCESS_REMOTE_WRITE)

/* ---- registrations ---- */

/* The cache registers through these on the connection's device (ctx: ic). */
static void *
rc_reg(void *ctx, uintptr_t start, size_t len)
{
	struct isd_iser_conn *ic = ctx;
	struct ibv_mr *mr;
	char err[256];
	int rc = isd_rdma_remote_mr_reg(ic->dev, (void *)start, len, ISD_ISER_REMOTE_ACCESS, &mr,
					err, sizeof(err));

	if (rc < 0) {
		isd_log_err("iser %s: %s", ic->peer, err);
		errno = -rc;
		return NULL;
	}
	return mr;
}

static void
rc_dereg(void *ctx, void *handle)
{
	(void)ctx;
	isd_rdma_remote_mr_dereg(handle);
}

static void
areg_free(struct isd_iser_conn *ic, struct isd_iser_areg *a)
{
	TAILQ_REMOVE(&ic->aregs, a, link);
	if (a->ent != NULL)
		isd_regcache_put(ic->rcache, a->ent);
	isd_rdma_remote_mr_dereg(a->bounce_mr);
	free(a->bounce);
	free(a);
}

void
isd_iser_areg_ref(struct isd_iser_areg *a)
{
	a->refs++;
}

void
isd_iser_areg_unref(struct isd_iser_conn *ic, struct isd_iser_areg *a)
{
	if (--a->refs == 0)
		areg_free(ic, a);
}

/* Whether the first len bytes of iov are one contiguous range. */
static bool
contiguous(const struct iovec *iov, int iovcnt, uint32_t len)
{
	uintptr_t base = iovcnt > 0 ? (uintptr_t)iov[0].iov_base : 0;
	uint64_t have = 0;

	for (int i = 0; i < iovcnt && have < len; i++) {
		if ((uintptr_t)iov[i].iov_base != base + have)
			return false;
		have += iov[i].iov_len;
	}
	return have >= len;
}

static int
areg_cached(struct isd_iser_conn *ic, struct isd_iser_areg *a, uintptr_t base)
{
	struct ibv_mr *mr;
	int err;

	a->ent = isd_regcache_get(ic->rcache, base, a->len);
	if (a->ent == NULL) {
		err = errno ? errno : ENOMEM;
		/* full leaves every slot in use (a failed registration had a free one,
		 * and said why itself) */
		if (err == ENOSPC && isd_regcache_in_use(ic->rcache) == ISD_ISER_RCACHE_ENTRIES)
			isd_log_err("iser %s: registration cache full (%d buffers in use)",
				    ic->peer, ISD_ISER_RCACHE_ENTRIES);
		return -err;
	}
	mr = a->ent->handle;
	a->base = base;
	a->lkey = mr->lkey;
	a->rkey = mr->rkey;
	return 0;
}

static int
areg_bounce(struct isd_iser_conn *ic, struct isd_iser_areg *a, struct isd_dm_task *t)
{
	char err[256];
	void *mem;
	int rc;

	isd_log_dbg("iser", "%s: ITT 0x%x: buffer not one contiguous range: bounced", ic->peer,
		    isd_dmt_itt(t));
	if (posix_memalign(&mem, 4096, a->len) != 0)
		return -ENOMEM;
	a->bounce = mem;
	if (t->write_len > 0)
		(void)isd_iov_copy_out(t->iov, t->iovcnt, 0, a->bounce, a->len);
	rc = isd_rdma_remote_mr_reg(ic->dev, a->bounce, a->len, ISD_ISER_REMOTE_ACCESS,
				    &a->bounce_mr, err, sizeof(err));
	if (rc < 0) {
		isd_log_err("iser %s: %s", ic->peer, err);
		return rc;
	}
	a->base = (uintptr_t)a->bounce;
	a->lkey = a->bounce_mr->lkey;
	a->rkey = a->bounce_mr->rkey;
	return 0;
}

int
isd_iser_areg_get(struct isd_iser_conn *ic, struct isd_dm_task *t, struct isd_iser_areg **out)
{
	struct isd_iser_areg *a;
	uint32_t len = t->write_len > t->read_len ? t->write_len : t->read_len;
	int rc;

	if (t->iovcnt <= 0 || t->iov == NULL || isd_iov_len(t->iov, t->iovcnt) < len)
		return -EINVAL;
	a = calloc(1, sizeof(*a));
	if (a == NULL)
		return -ENOMEM;
	a->refs = 1;
	a->len = len;
	TAILQ_INSERT_TAIL(&ic->aregs, a, link);
	if (contiguous(t->iov, t->iovcnt, len))
		rc = areg_cached(ic, a, (uintptr_t)t->iov[0].iov_base);
	else
		rc = areg_bounce(ic, a, t);
	if (rc < 0) {
		areg_free(ic, a);
		return rc;
	}
	*out = a;
	return 0;
}

void
isd_iser_mem_unregister(struct isd_dm_conn *c, const void *addr, size_t len)
{
	struct isd_iser_conn *ic = isd_dmc_priv(c);

	if (ic->rcache != NULL)
		isd_regcache_forget(ic->rcache, (uintptr_t)addr, len);
}

void
isd_iser_active_free(struct isd_iser_conn *ic)
{
	struct isd_iser_areg *a;

	/* the QP is gone: no Send reads them any more, whatever holds a reference */
	while ((a = TAILQ_FIRST(&ic->aregs)) != NULL)
		areg_free(ic, a);
	if (ic->rcache != NULL)
		isd_regcache_flush(ic->rcache);
	free(ic->rcache);
	ic->rcache = NULL;
}

/* ---- connecting ---- */

/* Route resolved: device, QP and CQ, every receive, then rdma_connect. */
static int
setup(struct isd_iser_conn *ic)
{
	/* no zero-based VAs, and no Send with Invalidate: our STags are plain MRs
	 * (userspace has no FRWR), which a remote invalidation cannot target; LIO
	 * would otherwise invalidate them and break the connection */
	struct isd_iser_cm cm = { .zbva_not_supported = true, .send_w_inv_not_supported = true };
	uint8_t pdata[ISD_ISER_CM_LEN];
	struct rdma_conn_param cp;
	char err[256];
	int rc;

	if (ic->id->verbs == NULL)
		return -ENODEV;
	rc = isd_rdma_dev_get(ic->id->verbs, &ic->dev, err, sizeof(err));
	if (rc < 0) {
		isd_log_err("iser %s: %s", ic->peer, err);
		return rc;
	}
	ic->rcache = calloc(1, sizeof(*ic->rcache));
	if (ic->rcache == NULL)
		return -ENOMEM;
	rc = isd_regcache_init(ic->rcache, ISD_ISER_RCACHE_ENTRIES, ISD_ISER_RCACHE_BYTES, rc_reg,
			       rc_dereg, ic);
	if (rc < 0)
		return rc;
	isd_iser_qp_size_active(&ic->dev->attr, ic->conn->queue_depth, &ic->qs);
	rc = isd_iser_conn_create_qp(ic, 0);
	if (rc < 0)
		return rc;
	/* the target may answer the first Login Request before we see ESTABLISHED */
	rc = isd_iser_rx_setup_active(ic);
	if (rc < 0)
		return rc;
	isd_iser_cm_encode(&cm, pdata);
	memset(&cp, 0, sizeof(cp));
	cp.private_data = pdata;
	cp.private_data_len = sizeof(pdata);
	/* the target's RDMA Reads of our write data: as many as the device takes */
	cp.responder_resources = (uint8_t)(ic->dev->attr.max_qp_rd_atom > 255
					   ? 255 : ic->dev->attr.max_qp_rd_atom);
	cp.initiator_depth = ic->dev->attr.max_qp_init_rd_atom > 0 ? 1 : 0;
	cp.retry_count = 7;
	cp.rnr_retry_count = 7;
	if (rdma_connect(ic->id, &cp) != 0) {
		rc = -(errno ? errno : EIO);
		isd_log_err("iser %s: rdma_connect: %s", ic->peer, strerror(-rc));
		return rc;
	}
	return 0;
}

static void
connect_fail(struct isd_iser_conn *ic, int rc, const char *what)
{
	isd_log_warn("iser %s: connect failed: %s", ic->peer, what);
	isd_reactor_timer_stop(ic->r, &ic->connect_timer);
	/* isd_dm_connected(rc) follows from the teardown's notify */
	isd_iser_conn_fail(ic, rc);
}

void
isd_iser_active_connect_timeout(void *arg)
{
	struct isd_iser_conn *ic = arg;

	if (ic->state == ISD_ISER_CONNECTING)
		connect_fail(ic, -ETIMEDOUT, "timed out");
}

void
isd_iser_active_cm_event(struct isd_iser_conn *ic, enum rdma_cm_event_type type, int status)
{
	int rc;

	switch (type) {
	case RDMA_CM_EVENT_ADDR_RESOLVED:
		if (rdma_resolve_route(ic->id, ISD_ISER_RESOLVE_MS) != 0)
			connect_fail(ic, -(errno ? errno : EIO), "rdma_resolve_route failed");
		break;
	case RDMA_CM_EVENT_ROUTE_RESOLVED:
		rc = setup(ic);
		if (rc < 0)
			connect_fail(ic, rc, strerror(-rc));
		break;
	case RDMA_CM_EVENT_ESTABLISHED:
		isd_reactor_timer_stop(ic->r, &ic->connect_timer);
		ic->state = ISD_ISER_ESTABLISHED;
		ic->connected_up = true;
		isd_log_dbg("iser", "%s: connected on %s", ic->peer, ic->dev->name);
		/* the core may free the connection inside, or queue the first Login
		 * Request: nothing after this */
		isd_dm_connected(ic->conn, 0);
		break;
	case RDMA_CM_EVENT_REJECTED:
		connect_fail(ic, -ECONNREFUSED, "rejected (no iSER portal there?)");
		break;
	case RDMA_CM_EVENT_ADDR_ERROR:
	case RDMA_CM_EVENT_ROUTE_ERROR:
	case RDMA_CM_EVENT_UNREACHABLE:
	case RDMA_CM_EVENT_CONNECT_ERROR:
		connect_fail(ic, -EHOSTUNREACH, rdma_event_str(type));
		break;
	case RDMA_CM_EVENT_DISCONNECTED:
	case RDMA_CM_EVENT_DEVICE_REMOVAL:
		connect_fail(ic, -ECONNRESET, rdma_event_str(type));
		break;
	default:
		isd_log_dbg("iser", "%s: %s (%d) while connecting: ignored", ic->peer,
			    rdma_event_str(type), status);
		break;
	}
}

int
isd_iser_active_connect(struct isd_dm_conn *c, const char *host, uint16_t port)
{
	struct isd_iser_conn *ic = isd_dmc_priv(c);
	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM }, *ai = NULL;
	char serv[8];
	int rc;

	isd_iser_conn_init(ic, c, isd_dmc_reactor(c));
	ic->state = ISD_ISER_CONNECTING;
	isd_fmt_hostport(ic->peer, sizeof(ic->peer), host, port);
	snprintf(serv, sizeof(serv), "%u", port);
	rc = getaddrinfo(host, serv, &hints, &ai);
	if (rc != 0)
		return rc == EAI_SYSTEM ? -errno : -ENXIO;      /* no such host */
	rc = isd_iser_conn_channel(ic);
	if (rc < 0) {
		isd_log_err("iser %s: cannot open the RDMA CM (%s): is rdma_cm loaded and an "
			    "RDMA device (e.g. rdma_rxe) configured?", ic->peer, strerror(-rc));
		rc = -ENODEV;
		goto out;
	}
	if (rdma_create_id(ic->ch, &ic->id, ic, RDMA_PS_TCP) != 0) {
		rc = -(errno ? errno : ENOMEM);
		isd_log_err("iser %s: rdma_create_id: %s", ic->peer, strerror(-rc));
		goto out;
	}
	rc = isd_iser_conn_watch(ic);
	if (rc < 0)
		goto out;
	if (rdma_resolve_addr(ic->id, NULL, ai->ai_addr, ISD_ISER_RESOLVE_MS) != 0) {
		rc = -(errno ? errno : EIO);
		isd_log_err("iser %s: rdma_resolve_addr: %s (no RDMA device on the route?)",
			    ic->peer, strerror(-rc));
		goto out;
	}
	isd_reactor_timer_start(ic->r, &ic->connect_timer, ISD_ISER_CONNECT_MS);
	rc = 0;
out:
	freeaddrinfo(ai);
	return rc;
}
