/*
 * fakeverbs: libibverbs/librdmacm stand-ins for unit tests (see fakeverbs.h
 * and README.md). Every entry point holds one recursive lock, so that several
 * threads (reactors of a group, an initiator) may share the device.
 */
#define _GNU_SOURCE
#include "fakeverbs.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <unistd.h>

#include <pthread.h>

/*
 * One lock for the whole fake: every entry point holds it (recursive, as
 * some call others), so that reactors on several threads and an initiator
 * on another may share the device; the fake never calls back, so nothing
 * runs under it but the fake itself.
 */
static pthread_mutex_t fv_lock = PTHREAD_RECURSIVE_MUTEX_INITIALIZER_NP;

static void
fv_unlock(int *unused)
{
	(void)unused;
	pthread_mutex_unlock(&fv_lock);
}

#define FV_LOCKED() \
	pthread_mutex_lock(&fv_lock); \
	int fv_locked_ __attribute__((cleanup(fv_unlock), unused)) = 0

#define FV_MAX_SGE 32

struct fv_config fv_cfg;
static struct fv_stats g_st;
static bool g_init;
static struct ibv_device g_dev;
static struct ibv_context g_ctx;
static uint32_t g_next_key = 0x1100;
static uint32_t g_next_qpn = 0x40;
static uint16_t g_next_port = 20000;

static void __attribute__((format(printf, 1, 2)))
bug(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(g_st.last_bug, sizeof(g_st.last_bug), fmt, ap);
	va_end(ap);
	g_st.bugs++;
	fprintf(stderr, "fakeverbs: misuse: %s\n", g_st.last_bug);
}

/* ---- objects ---- */

struct fv_pd {
	struct ibv_pd pd;
	int mrs, qps;
};

struct fv_mr {
	struct ibv_mr mr;
	int access;
	LIST_ENTRY(fv_mr) link;
};
static LIST_HEAD(, fv_mr) g_mrs = LIST_HEAD_INITIALIZER(g_mrs);

struct fv_cc {
	struct ibv_comp_channel ch;
	int wfd;
	int cqs;
};

struct fv_qp;

/* What polling a completion gives back to its send queue. */
struct fv_slot {
	struct fv_qp *qp;               /* NULL: a receive, or the QP is gone */
	int slots;
};

struct fv_cq {
	struct ibv_cq cq;
	struct fv_cc *cc;
	struct ibv_wc *ring;
	struct fv_slot *slot;
	int cap, head, count;
	bool armed;
	unsigned int events, acked;
	int qps;
};

struct fv_swr {
	TAILQ_ENTRY(fv_swr) link;
	uint64_t wr_id;
	enum ibv_wr_opcode opcode;
	unsigned int flags;
	struct ibv_sge sge[FV_MAX_SGE];
	int nsge;
	uint64_t raddr;
	uint32_t rkey;
	uint32_t inv_rkey;
	uint32_t imm;
	bool rnr_counted;
};
TAILQ_HEAD(fv_swr_list, fv_swr);

struct fv_rwr {
	TAILQ_ENTRY(fv_rwr) link;
	uint64_t wr_id;
	struct ibv_sge sge[FV_MAX_SGE];
	int nsge;
};
TAILQ_HEAD(fv_rwr_list, fv_rwr);

struct fv_qp {
	struct ibv_qp qp;
	struct fv_cq *scq, *rcq;
	struct fv_qp *peer;
	struct fv_swr_list sq;
	struct fv_rwr_list rq;
	int nsq, nrq;
	/* send queue slots in use: a WR holds its slot until a completion at
	 * or after it is polled (unsignaled WRs until the next signaled one's) */
	int sq_inuse;
	int unsig_run;                  /* executed unsignaled WRs not yet retired */
	uint32_t max_send_wr, max_recv_wr, max_send_sge, max_recv_sge;
	bool sig_all;
	bool hold;
	bool rnr_error;
	bool refuse_in_error;           /* posts to the QP in error fail (EINVAL) */
	int fail_send_nth, fail_send_err;
	int fail_wr_nth, fail_wr_err;   /* the nth send WR, across posts */
	int fail_recv_nth, fail_recv_err;
	bool progressing;
};

struct fv_ch {
	struct rdma_event_channel ch;
	int wfd;
};

struct fv_id {
	struct rdma_cm_id id;
	uint16_t port;
	bool listening;
	bool disconnected;              /* rdma_disconnect ran */
	bool peer_hung_up;              /* DISCONNECTED delivered because the peer left */
	int unacked;                    /* events handed out and not acked */
	bool zombie;                    /* destroyed with events unacked */
	struct fv_ini *ini;             /* a connect request's initiator */
	/* the active side (rdma_resolve_addr/rdma_connect) */
	bool addr_resolved, route_resolved;
	struct fv_ini *aini;            /* rdma_connect's half of the wire (QP: id->qp) */
};

struct fv_event {
	struct rdma_cm_event ev;
	struct fv_id *fid;
	uint8_t priv[64];
};

#define MAX_LISTENERS 16
static struct fv_id *g_listeners[MAX_LISTENERS];
static struct fv_ini *g_active_last;    /* the last rdma_connect's, while its id lives */

/* ---- the device ---- */

static int fv_post_send(struct ibv_qp *qp, struct ibv_send_wr *wr, struct ibv_send_wr **bad);
static int fv_post_recv(struct ibv_qp *qp, struct ibv_recv_wr *wr, struct ibv_recv_wr **bad);
static int fv_poll_cq(struct ibv_cq *cq, int n, struct ibv_wc *wc);
static int fv_req_notify_cq(struct ibv_cq *cq, int solicited_only);

static void
fv_defaults(void)
{
	memset(&fv_cfg, 0, sizeof(fv_cfg));
	fv_cfg.max_qp_wr = 4096;
	fv_cfg.max_sge = 16;
	fv_cfg.max_sge_rd = 16;
	fv_cfg.max_cqe = 65536;
	fv_cfg.max_qp_init_rd_atom = 16;
}

static void
fv_init(void)
{
	if (g_init)
		return;
	g_init = true;
	fv_defaults();
	snprintf(g_dev.name, sizeof(g_dev.name), "fv0");
	snprintf(g_dev.dev_name, sizeof(g_dev.dev_name), "uverbs99");
	g_dev.node_type = IBV_NODE_CA;
	g_dev.transport_type = IBV_TRANSPORT_IB;
	g_ctx.device = &g_dev;
	g_ctx.cmd_fd = -1;
	g_ctx.async_fd = -1;
	g_ctx.num_comp_vectors = 1;
	g_ctx.abi_compat = NULL;        /* not a verbs_context: query_port takes the symbol */
	g_ctx.ops.post_send = fv_post_send;
	g_ctx.ops.post_recv = fv_post_recv;
	g_ctx.ops.poll_cq = fv_poll_cq;
	g_ctx.ops.req_notify_cq = fv_req_notify_cq;
}

static void
fv_apply_fabric(void)
{
	fv_init();
	g_dev.transport_type =
	    fv_cfg.fabric == FV_FABRIC_IWARP ? IBV_TRANSPORT_IWARP : IBV_TRANSPORT_IB;
	g_dev.node_type = fv_cfg.fabric == FV_FABRIC_IWARP ? IBV_NODE_RNIC : IBV_NODE_CA;
}

void
fv_get_stats(struct fv_stats *out)
{
	FV_LOCKED();
	*out = g_st;
}

uint64_t
fv_live_objects(void)
{
	FV_LOCKED();
	return g_st.channels + g_st.ids + g_st.pds + g_st.mrs + g_st.comp_channels + g_st.cqs +
	       g_st.qps;
}

void
fv_reset(void)
{
	FV_LOCKED();
	struct fv_stats live = g_st;

	fv_init();
	fv_defaults();
	fv_apply_fabric();
	memset(&g_st, 0, sizeof(g_st));
	g_st.channels = live.channels;
	g_st.ids = live.ids;
	g_st.pds = live.pds;
	g_st.mrs = live.mrs;
	g_st.comp_channels = live.comp_channels;
	g_st.cqs = live.cqs;
	g_st.qps = live.qps;
}

struct ibv_context **
rdma_get_devices(int *num)
{
	FV_LOCKED();
	struct ibv_context **l;

	fv_apply_fabric();
	l = calloc(2, sizeof(*l));
	if (l == NULL) {
		errno = ENOMEM;
		return NULL;
	}
	if (!fv_cfg.no_devices)
		l[0] = &g_ctx;
	if (num != NULL)
		*num = fv_cfg.no_devices ? 0 : 1;
	return l;
}

void
rdma_free_devices(struct ibv_context **list)
{
	FV_LOCKED();
	free(list);
}

const char *
ibv_get_device_name(struct ibv_device *device)
{
	FV_LOCKED();
	return device->name;
}

int
ibv_query_device(struct ibv_context *context, struct ibv_device_attr *a)
{
	FV_LOCKED();
	(void)context;
	memset(a, 0, sizeof(*a));
	snprintf(a->fw_ver, sizeof(a->fw_ver), "fake");
	a->vendor_id = 0xfa4e;
	a->max_qp = 1024;
	a->max_qp_wr = fv_cfg.max_qp_wr;
	a->max_sge = fv_cfg.max_sge;
	a->max_sge_rd = fv_cfg.max_sge_rd;
	a->max_cq = 1024;
	a->max_cqe = fv_cfg.max_cqe;
	a->max_mr = 1 << 20;
	a->max_pd = 1024;
	a->max_qp_rd_atom = fv_cfg.max_qp_init_rd_atom;
	a->max_qp_init_rd_atom = fv_cfg.max_qp_init_rd_atom;
	a->phys_port_cnt = 1;
	if (fv_cfg.mem_mgt_ext)
		a->device_cap_flags |= IBV_DEVICE_MEM_MGT_EXTENSIONS;
	return 0;
}

/* The header wraps this in an inline (___ibv_query_port) that calls the symbol
 * for a context that is not a verbs_context, after zeroing a whole
 * struct ibv_port_attr. */
#undef ibv_query_port
int
ibv_query_port(struct ibv_context *context, uint8_t port_num, struct _compat_ibv_port_attr *pa)
{
	FV_LOCKED();
	struct ibv_port_attr *a = (struct ibv_port_attr *)pa;

	(void)context;
	if (port_num != 1)
		return EINVAL;
	a->state = IBV_PORT_ACTIVE;
	a->max_mtu = IBV_MTU_4096;
	a->active_mtu = IBV_MTU_4096;
	a->link_layer = fv_cfg.fabric == FV_FABRIC_IB ? IBV_LINK_LAYER_INFINIBAND
						      : IBV_LINK_LAYER_ETHERNET;
	return 0;
}

/* ---- PDs and MRs ---- */

struct ibv_pd *
ibv_alloc_pd(struct ibv_context *context)
{
	FV_LOCKED();
	struct fv_pd *p = calloc(1, sizeof(*p));

	if (p == NULL) {
		errno = ENOMEM;
		return NULL;
	}
	p->pd.context = context;
	p->pd.handle = g_next_key++;
	g_st.pds++;
	return &p->pd;
}

int
ibv_dealloc_pd(struct ibv_pd *pd)
{
	FV_LOCKED();
	struct fv_pd *p = (struct fv_pd *)pd;

	if (p->mrs > 0 || p->qps > 0) {
		bug("ibv_dealloc_pd with %d MRs and %d QPs on it", p->mrs, p->qps);
		errno = EBUSY;
		return EBUSY;
	}
	g_st.pds--;
	free(p);
	return 0;
}

static struct ibv_mr *
reg_mr(struct ibv_pd *pd, void *addr, size_t length, int access)
{
	struct fv_mr *m;

	if (pd == NULL || (addr == NULL && length > 0)) {
		errno = EINVAL;
		return NULL;
	}
	/* like the kernel: remote write needs local write */
	if ((access & (IBV_ACCESS_REMOTE_WRITE | IBV_ACCESS_REMOTE_ATOMIC)) &&
	    !(access & IBV_ACCESS_LOCAL_WRITE)) {
		errno = EINVAL;
		return NULL;
	}
	m = calloc(1, sizeof(*m));
	if (m == NULL) {
		errno = ENOMEM;
		return NULL;
	}
	m->mr.context = pd->context;
	m->mr.pd = pd;
	m->mr.addr = addr;
	m->mr.length = length;
	m->mr.handle = g_next_key;
	m->mr.lkey = g_next_key;
	m->mr.rkey = g_next_key;
	g_next_key += 0x101;
	m->access = access;
	LIST_INSERT_HEAD(&g_mrs, m, link);
	((struct fv_pd *)pd)->mrs++;
	g_st.mrs++;
	return &m->mr;
}

#undef ibv_reg_mr
struct ibv_mr *
ibv_reg_mr(struct ibv_pd *pd, void *addr, size_t length, int access)
{
	FV_LOCKED();
	return reg_mr(pd, addr, length, access);
}

struct ibv_mr *
ibv_reg_mr_iova2(struct ibv_pd *pd, void *addr, size_t length, uint64_t iova,
		 unsigned int access)
{
	FV_LOCKED();
	if (iova != (uintptr_t)addr) {
		errno = EOPNOTSUPP;     /* the fake keeps VA == address */
		return NULL;
	}
	return reg_mr(pd, addr, length, (int)access);
}

int
ibv_dereg_mr(struct ibv_mr *mr)
{
	FV_LOCKED();
	struct fv_mr *m = (struct fv_mr *)mr;

	LIST_REMOVE(m, link);
	((struct fv_pd *)mr->pd)->mrs--;
	g_st.mrs--;
	free(m);
	return 0;
}

static struct fv_mr *
mr_find(struct ibv_pd *pd, uint32_t key, bool remote)
{
	struct fv_mr *m;

	LIST_FOREACH(m, &g_mrs, link) {
		if (m->mr.pd == pd && (remote ? m->mr.rkey : m->mr.lkey) == key)
			return m;
	}
	return NULL;
}

static bool
mr_covers(const struct fv_mr *m, uint64_t addr, uint64_t len)
{
	uint64_t base = (uintptr_t)m->mr.addr;

	return addr >= base && len <= m->mr.length && addr - base <= m->mr.length - len;
}

/* ---- completion channels and CQs ---- */

struct ibv_comp_channel *
ibv_create_comp_channel(struct ibv_context *context)
{
	FV_LOCKED();
	struct fv_cc *c = calloc(1, sizeof(*c));
	int fds[2];

	if (c == NULL) {
		errno = ENOMEM;
		return NULL;
	}
	if (pipe2(fds, O_CLOEXEC) != 0) {
		free(c);
		return NULL;
	}
	(void)fcntl(fds[1], F_SETFL, O_NONBLOCK);
	c->ch.context = context;
	c->ch.fd = fds[0];
	c->wfd = fds[1];
	g_st.comp_channels++;
	return &c->ch;
}

int
ibv_destroy_comp_channel(struct ibv_comp_channel *channel)
{
	FV_LOCKED();
	struct fv_cc *c = (struct fv_cc *)channel;

	if (c->cqs > 0) {
		bug("ibv_destroy_comp_channel with %d CQs on it", c->cqs);
		errno = EBUSY;
		return EBUSY;
	}
	close(c->ch.fd);
	close(c->wfd);
	g_st.comp_channels--;
	free(c);
	return 0;
}

struct ibv_cq *
ibv_create_cq(struct ibv_context *context, int cqe, void *cq_context,
	      struct ibv_comp_channel *channel, int comp_vector)
{
	FV_LOCKED();
	struct fv_cq *q;

	(void)comp_vector;
	if (cqe <= 0 || cqe > fv_cfg.max_cqe) {
		errno = EINVAL;
		return NULL;
	}
	q = calloc(1, sizeof(*q));
	if (q == NULL) {
		errno = ENOMEM;
		return NULL;
	}
	q->ring = calloc((size_t)cqe, sizeof(*q->ring));
	q->slot = calloc((size_t)cqe, sizeof(*q->slot));
	if (q->ring == NULL || q->slot == NULL) {
		free(q->slot);
		free(q);
		errno = ENOMEM;
		return NULL;
	}
	q->cap = cqe;
	q->cc = (struct fv_cc *)channel;
	if (q->cc != NULL)
		q->cc->cqs++;
	q->cq.context = context;
	q->cq.channel = channel;
	q->cq.cq_context = cq_context;
	q->cq.cqe = cqe;
	g_st.cqs++;
	return &q->cq;
}

int
ibv_destroy_cq(struct ibv_cq *cq)
{
	FV_LOCKED();
	struct fv_cq *q = (struct fv_cq *)cq;

	if (q->qps > 0) {
		bug("ibv_destroy_cq with %d QPs on it", q->qps);
		errno = EBUSY;
		return EBUSY;
	}
	if (q->events != q->acked)
		bug("ibv_destroy_cq with %u of %u events unacknowledged (libibverbs waits "
		    "for ever)", q->events - q->acked, q->events);
	if (q->cc != NULL)
		q->cc->cqs--;
	g_st.cqs--;
	free(q->ring);
	free(q->slot);
	free(q);
	return 0;
}

int
ibv_get_cq_event(struct ibv_comp_channel *channel, struct ibv_cq **cq, void **cq_context)
{
	FV_LOCKED();
	struct fv_cq *q;

	if (read(channel->fd, &q, sizeof(q)) != (ssize_t)sizeof(q))
		return -1;      /* errno from read: EAGAIN on a non-blocking channel */
	*cq = &q->cq;
	*cq_context = q->cq.cq_context;
	return 0;
}

void
ibv_ack_cq_events(struct ibv_cq *cq, unsigned int nevents)
{
	FV_LOCKED();
	struct fv_cq *q = (struct fv_cq *)cq;

	q->acked += nevents;
	if (q->acked > q->events)
		bug("ibv_ack_cq_events acked %u of %u events", q->acked, q->events);
}

static void
cq_push(struct fv_cq *q, const struct ibv_wc *wc, struct fv_qp *owner, int slots)
{
	int at = (q->head + q->count) % q->cap;

	if (q->count == q->cap) {
		bug("CQ overrun (%d entries): a completion is lost", q->cap);
		return;
	}
	q->ring[at] = *wc;
	q->slot[at].qp = owner;
	q->slot[at].slots = slots;
	q->count++;
	if (wc->status == IBV_WC_WR_FLUSH_ERR)
		g_st.flushed++;
	else if (wc->status != IBV_WC_SUCCESS)
		g_st.wc_errors++;
	if (q->armed && q->cc != NULL) {
		q->armed = false;
		if (write(q->cc->wfd, &q, sizeof(q)) == (ssize_t)sizeof(q)) {
			q->events++;
			g_st.cq_events++;
		}
	}
}

static int
fv_poll_cq(struct ibv_cq *cq, int n, struct ibv_wc *wc)
{
	FV_LOCKED();
	struct fv_cq *q = (struct fv_cq *)cq;
	int i;

	for (i = 0; i < n && q->count > 0; i++) {
		wc[i] = q->ring[q->head];
		if (q->slot[q->head].qp != NULL)
			q->slot[q->head].qp->sq_inuse -= q->slot[q->head].slots;
		q->head = (q->head + 1) % q->cap;
		q->count--;
	}
	return i;
}

static int
fv_req_notify_cq(struct ibv_cq *cq, int solicited_only)
{
	FV_LOCKED();
	(void)solicited_only;
	((struct fv_cq *)cq)->armed = true;
	return 0;
}

/* ---- the wire ---- */

static enum ibv_wc_opcode
wc_opcode(enum ibv_wr_opcode op)
{
	switch (op) {
	case IBV_WR_RDMA_WRITE:
	case IBV_WR_RDMA_WRITE_WITH_IMM:
		return IBV_WC_RDMA_WRITE;
	case IBV_WR_RDMA_READ:
		return IBV_WC_RDMA_READ;
	default:
		return IBV_WC_SEND;
	}
}

static void
complete_send(struct fv_qp *q, const struct fv_swr *w, enum ibv_wc_status st, uint32_t len)
{
	struct ibv_wc wc;

	if (st == IBV_WC_SUCCESS && !(w->flags & IBV_SEND_SIGNALED) && !q->sig_all) {
		q->unsig_run++;
		return;
	}
	memset(&wc, 0, sizeof(wc));
	wc.wr_id = w->wr_id;
	wc.status = st;
	wc.opcode = wc_opcode(w->opcode);
	wc.byte_len = len;
	wc.qp_num = q->qp.qp_num;
	wc.vendor_err = st == IBV_WC_SUCCESS ? 0 : 0xf0;
	cq_push(q->scq, &wc, q, q->unsig_run + 1);
	q->unsig_run = 0;
}

static void
complete_recv(struct fv_qp *q, const struct fv_rwr *r, enum ibv_wc_status st, uint32_t len,
	      const struct fv_swr *w)
{
	struct ibv_wc wc;

	memset(&wc, 0, sizeof(wc));
	wc.wr_id = r->wr_id;
	wc.status = st;
	wc.opcode = IBV_WC_RECV;
	wc.byte_len = len;
	wc.qp_num = q->qp.qp_num;
	if (w != NULL && st == IBV_WC_SUCCESS) {
		wc.src_qp = w != NULL ? q->peer->qp.qp_num : 0;
		if (w->opcode == IBV_WR_SEND_WITH_INV) {
			wc.wc_flags |= IBV_WC_WITH_INV;
			wc.invalidated_rkey = w->inv_rkey;
		} else if (w->opcode == IBV_WR_SEND_WITH_IMM) {
			wc.wc_flags |= IBV_WC_WITH_IMM;
			wc.imm_data = w->imm;
		}
	}
	cq_push(q->rcq, &wc, NULL, 0);
}

static void qp_error(struct fv_qp *q);
static void ini_hang_up(struct fv_ini *ini);
static void aini_free(struct fv_id *f);

enum sge_use {
	USE_SOURCE = 0,                 /* gathered: local read is implied */
	USE_RECV,                       /* a receive buffer: local write */
	USE_READ_SINK,                  /* an RDMA Read's sink */
};

/* Bytes of the local SGEs, checked against the MRs of q's PD. Returns false on
 * a protection error. */
static bool
sges_ok(struct fv_qp *q, const struct ibv_sge *sge, int nsge, enum sge_use use, uint64_t *total)
{
	*total = 0;
	for (int i = 0; i < nsge; i++) {
		struct fv_mr *m = mr_find(q->qp.pd, sge[i].lkey, false);

		if (m == NULL || !mr_covers(m, sge[i].addr, sge[i].length))
			return false;
		if (use != USE_SOURCE && !(m->access & IBV_ACCESS_LOCAL_WRITE))
			return false;
		/* iWARP: a Read Response is placed through the sink's STag, which
		 * RFC 5040 checks for remote write */
		if (use == USE_READ_SINK && g_dev.transport_type == IBV_TRANSPORT_IWARP &&
		    !(m->access & IBV_ACCESS_REMOTE_WRITE))
			return false;
		*total += sge[i].length;
	}
	return true;
}

/* Copies between a contiguous remote range and local SGEs. */
static void
sge_copy(const struct ibv_sge *sge, int nsge, uint8_t *remote, bool to_local)
{
	for (int i = 0; i < nsge; i++) {
		uint8_t *l = (uint8_t *)(uintptr_t)sge[i].addr;

		if (to_local)
			memmove(l, remote, sge[i].length);
		else
			memmove(remote, l, sge[i].length);
		remote += sge[i].length;
	}
}

enum { X_DONE = 0, X_BLOCKED };

/* Executes one send WR. */
static int
exec_swr(struct fv_qp *q, struct fv_swr *w, enum ibv_wc_status *st, uint32_t *len)
{
	struct fv_qp *p = q->peer;
	uint64_t total;
	struct fv_mr *rm;

	*len = 0;
	*st = IBV_WC_SUCCESS;
	if (p == NULL || p->qp.state == IBV_QPS_ERR) {
		*st = IBV_WC_RETRY_EXC_ERR;     /* nobody answers */
		return X_DONE;
	}
	switch (w->opcode) {
	case IBV_WR_SEND:
	case IBV_WR_SEND_WITH_INV:
	case IBV_WR_SEND_WITH_IMM: {
		struct fv_rwr *r;
		uint64_t room = 0;
		uint8_t *tmp;

		if (!sges_ok(q, w->sge, w->nsge, USE_SOURCE, &total)) {
			*st = IBV_WC_LOC_PROT_ERR;
			return X_DONE;
		}
		r = TAILQ_FIRST(&p->rq);
		if (r == NULL) {
			if (!w->rnr_counted) {
				w->rnr_counted = true;
				g_st.rnr_naks++;
			}
			if (q->rnr_error) {
				*st = IBV_WC_RNR_RETRY_EXC_ERR;
				return X_DONE;
			}
			return X_BLOCKED;
		}
		TAILQ_REMOVE(&p->rq, r, link);
		p->nrq--;
		if (!sges_ok(p, r->sge, r->nsge, USE_RECV, &room)) {
			complete_recv(p, r, IBV_WC_LOC_PROT_ERR, 0, NULL);
			free(r);
			qp_error(p);
			*st = IBV_WC_REM_OP_ERR;
			return X_DONE;
		}
		if (total > room) {
			complete_recv(p, r, IBV_WC_LOC_LEN_ERR, 0, NULL);
			free(r);
			qp_error(p);
			*st = IBV_WC_REM_INV_REQ_ERR;
			return X_DONE;
		}
		tmp = malloc(total + 1);
		if (tmp == NULL)
			abort();
		sge_copy(w->sge, w->nsge, tmp, false);
		{
			uint64_t off = 0;

			for (int i = 0; i < r->nsge && off < total; i++) {
				uint64_t n = total - off < r->sge[i].length ? total - off
									     : r->sge[i].length;

				memcpy((void *)(uintptr_t)r->sge[i].addr, tmp + off, n);
				off += n;
			}
		}
		free(tmp);
		*len = (uint32_t)total;
		g_st.sends++;
		g_st.recvs++;
		complete_recv(p, r, IBV_WC_SUCCESS, (uint32_t)total, w);
		free(r);
		return X_DONE;
	}
	case IBV_WR_RDMA_WRITE:
	case IBV_WR_RDMA_READ: {
		bool rd = w->opcode == IBV_WR_RDMA_READ;

		if (!sges_ok(q, w->sge, w->nsge, rd ? USE_READ_SINK : USE_SOURCE, &total)) {
			*st = IBV_WC_LOC_PROT_ERR;
			return X_DONE;
		}
		rm = mr_find(p->qp.pd, w->rkey, true);
		if (rm == NULL || !mr_covers(rm, w->raddr, total) ||
		    !(rm->access & (rd ? IBV_ACCESS_REMOTE_READ : IBV_ACCESS_REMOTE_WRITE))) {
			*st = IBV_WC_REM_ACCESS_ERR;
			return X_DONE;
		}
		sge_copy(w->sge, w->nsge, (uint8_t *)(uintptr_t)w->raddr, rd);
		*len = (uint32_t)total;
		if (rd) {
			g_st.reads++;
			g_st.read_bytes += total;
		} else {
			g_st.writes++;
			g_st.write_bytes += total;
		}
		return X_DONE;
	}
	default:
		*st = IBV_WC_LOC_QP_OP_ERR;
		return X_DONE;
	}
}

/* Runs q's send queue: at most `max` WRs (< 0: no limit), respecting hold
 * unless forced. Returns the number executed. */
static int
progress(struct fv_qp *q, int max, bool force)
{
	struct fv_swr *w;
	int done = 0;

	if (q == NULL || q->progressing)
		return 0;
	q->progressing = true;
	while ((w = TAILQ_FIRST(&q->sq)) != NULL && q->qp.state == IBV_QPS_RTS &&
	       (max < 0 || done < max) && (!q->hold || force)) {
		enum ibv_wc_status st;
		uint32_t len;

		if (exec_swr(q, w, &st, &len) == X_BLOCKED)
			break;
		TAILQ_REMOVE(&q->sq, w, link);
		q->nsq--;
		done++;
		complete_send(q, w, st, len);
		free(w);
		if (st != IBV_WC_SUCCESS) {
			qp_error(q);
			break;
		}
	}
	q->progressing = false;
	return done;
}

static void
qp_error(struct fv_qp *q)
{
	struct fv_swr *w;
	struct fv_rwr *r;

	q->qp.state = IBV_QPS_ERR;
	while ((w = TAILQ_FIRST(&q->sq)) != NULL) {
		TAILQ_REMOVE(&q->sq, w, link);
		q->nsq--;
		complete_send(q, w, IBV_WC_WR_FLUSH_ERR, 0);
		free(w);
	}
	while ((r = TAILQ_FIRST(&q->rq)) != NULL) {
		TAILQ_REMOVE(&q->rq, r, link);
		q->nrq--;
		complete_recv(q, r, IBV_WC_WR_FLUSH_ERR, 0, NULL);
		free(r);
	}
}

static int
fv_post_send(struct ibv_qp *qp, struct ibv_send_wr *wr, struct ibv_send_wr **bad)
{
	FV_LOCKED();
	struct fv_qp *q = (struct fv_qp *)qp;

	if (q->fail_send_nth > 0 && --q->fail_send_nth == 0) {
		g_st.post_failures++;
		*bad = wr;
		return q->fail_send_err;
	}
	if ((qp->state != IBV_QPS_RTS && qp->state != IBV_QPS_ERR && qp->state != IBV_QPS_SQD) ||
	    (qp->state == IBV_QPS_ERR && q->refuse_in_error)) {
		g_st.post_failures++;
		*bad = wr;
		return EINVAL;
	}
	for (; wr != NULL; wr = wr->next) {
		struct fv_swr *w;

		if (q->fail_wr_nth > 0 && --q->fail_wr_nth == 0) {
			/* the WRs before it in this post went in */
			g_st.post_failures++;
			*bad = wr;
			return q->fail_wr_err;
		}
		if (wr->num_sge < 0 || (uint32_t)wr->num_sge > q->max_send_sge ||
		    wr->num_sge > FV_MAX_SGE) {
			g_st.post_failures++;
			*bad = wr;
			return EINVAL;
		}
		if ((uint32_t)q->sq_inuse >= q->max_send_wr) {
			/* the real queue is full: unsignaled WRs hold their slots
			 * until a later signaled completion is polled */
			g_st.post_failures++;
			g_st.sq_full++;
			*bad = wr;
			return ENOMEM;
		}
		w = calloc(1, sizeof(*w));
		if (w == NULL) {
			*bad = wr;
			return ENOMEM;
		}
		w->wr_id = wr->wr_id;
		w->opcode = wr->opcode;
		w->flags = wr->send_flags;
		w->nsge = wr->num_sge;
		if (wr->num_sge > 0)
			memcpy(w->sge, wr->sg_list, sizeof(w->sge[0]) * (size_t)wr->num_sge);
		w->raddr = wr->wr.rdma.remote_addr;
		w->rkey = wr->wr.rdma.rkey;
		w->inv_rkey = wr->invalidate_rkey;
		w->imm = wr->imm_data;
		q->sq_inuse++;
		if (qp->state == IBV_QPS_ERR) {
			complete_send(q, w, IBV_WC_WR_FLUSH_ERR, 0);
			free(w);
			continue;
		}
		TAILQ_INSERT_TAIL(&q->sq, w, link);
		q->nsq++;
	}
	progress(q, -1, false);
	return 0;
}

static int
fv_post_recv(struct ibv_qp *qp, struct ibv_recv_wr *wr, struct ibv_recv_wr **bad)
{
	FV_LOCKED();
	struct fv_qp *q = (struct fv_qp *)qp;

	if (q->fail_recv_nth > 0 && --q->fail_recv_nth == 0) {
		g_st.post_failures++;
		*bad = wr;
		return q->fail_recv_err;
	}
	if (qp->state == IBV_QPS_RESET || (qp->state == IBV_QPS_ERR && q->refuse_in_error)) {
		g_st.post_failures++;
		*bad = wr;
		return EINVAL;
	}
	for (; wr != NULL; wr = wr->next) {
		struct fv_rwr *r;

		if (wr->num_sge < 0 || (uint32_t)wr->num_sge > q->max_recv_sge ||
		    wr->num_sge > FV_MAX_SGE) {
			g_st.post_failures++;
			*bad = wr;
			return EINVAL;
		}
		if ((uint32_t)q->nrq >= q->max_recv_wr) {
			g_st.post_failures++;
			*bad = wr;
			return ENOMEM;
		}
		r = calloc(1, sizeof(*r));
		if (r == NULL) {
			*bad = wr;
			return ENOMEM;
		}
		r->wr_id = wr->wr_id;
		r->nsge = wr->num_sge;
		if (wr->num_sge > 0)
			memcpy(r->sge, wr->sg_list, sizeof(r->sge[0]) * (size_t)wr->num_sge);
		if (qp->state == IBV_QPS_ERR) {
			complete_recv(q, r, IBV_WC_WR_FLUSH_ERR, 0, NULL);
			free(r);
			continue;
		}
		TAILQ_INSERT_TAIL(&q->rq, r, link);
		q->nrq++;
	}
	/* a Send of the peer waiting for a receive (RNR) may go now */
	if (q->peer != NULL)
		progress(q->peer, -1, false);
	return 0;
}

static struct fv_qp *
qp_create(struct ibv_pd *pd, struct ibv_qp_init_attr *a)
{
	struct fv_qp *q;

	if (a->qp_type != IBV_QPT_RC || a->send_cq == NULL || a->recv_cq == NULL ||
	    a->cap.max_send_wr == 0 || a->cap.max_send_wr > (uint32_t)fv_cfg.max_qp_wr ||
	    a->cap.max_recv_wr > (uint32_t)fv_cfg.max_qp_wr ||
	    a->cap.max_send_sge > (uint32_t)fv_cfg.max_sge ||
	    a->cap.max_recv_sge > (uint32_t)fv_cfg.max_sge) {
		errno = EINVAL;
		return NULL;
	}
	q = calloc(1, sizeof(*q));
	if (q == NULL) {
		errno = ENOMEM;
		return NULL;
	}
	TAILQ_INIT(&q->sq);
	TAILQ_INIT(&q->rq);
	q->qp.context = pd->context;
	q->qp.qp_context = a->qp_context;
	q->qp.pd = pd;
	q->qp.send_cq = a->send_cq;
	q->qp.recv_cq = a->recv_cq;
	q->qp.qp_num = g_next_qpn++;
	q->qp.state = IBV_QPS_INIT;
	q->qp.qp_type = IBV_QPT_RC;
	q->scq = (struct fv_cq *)a->send_cq;
	q->rcq = (struct fv_cq *)a->recv_cq;
	q->scq->qps++;
	q->rcq->qps++;
	q->max_send_wr = a->cap.max_send_wr;
	q->max_recv_wr = a->cap.max_recv_wr;
	q->max_send_sge = a->cap.max_send_sge ? a->cap.max_send_sge : 1;
	q->max_recv_sge = a->cap.max_recv_sge ? a->cap.max_recv_sge : 1;
	q->sig_all = a->sq_sig_all != 0;
	((struct fv_pd *)pd)->qps++;
	g_st.qps++;
	return q;
}

static void
qp_destroy(struct fv_qp *q)
{
	struct fv_swr *w;
	struct fv_rwr *r;

	if (q->peer != NULL)
		q->peer->peer = NULL;
	for (int i = 0; i < q->scq->cap; i++) {
		if (q->scq->slot[i].qp == q)
			q->scq->slot[i].qp = NULL;
	}
	while ((w = TAILQ_FIRST(&q->sq)) != NULL) {
		TAILQ_REMOVE(&q->sq, w, link);
		free(w);
	}
	while ((r = TAILQ_FIRST(&q->rq)) != NULL) {
		TAILQ_REMOVE(&q->rq, r, link);
		free(r);
	}
	q->scq->qps--;
	q->rcq->qps--;
	((struct fv_pd *)q->qp.pd)->qps--;
	g_st.qps--;
	free(q);
}

int
ibv_modify_qp(struct ibv_qp *qp, struct ibv_qp_attr *attr, int mask)
{
	FV_LOCKED();
	struct fv_qp *q = (struct fv_qp *)qp;

	if (!(mask & IBV_QP_STATE))
		return 0;
	if (attr->qp_state == IBV_QPS_ERR) {
		qp_error(q);
		return 0;
	}
	qp->state = attr->qp_state;
	if (attr->qp_state == IBV_QPS_RTS)
		progress(q, -1, false);
	return 0;
}

/* knobs */

void
fv_qp_hold(struct ibv_qp *qp, bool hold)
{
	FV_LOCKED();
	struct fv_qp *q = (struct fv_qp *)qp;

	q->hold = hold;
	if (!hold)
		progress(q, -1, false);
}

int
fv_qp_step(struct ibv_qp *qp, int n)
{
	FV_LOCKED();
	return progress((struct fv_qp *)qp, n, true);
}

int
fv_qp_pending_sends(struct ibv_qp *qp)
{
	FV_LOCKED();
	return ((struct fv_qp *)qp)->nsq;
}

int
fv_qp_sq_inuse(struct ibv_qp *qp)
{
	FV_LOCKED();
	return ((struct fv_qp *)qp)->sq_inuse;
}

int
fv_qp_posted_recvs(struct ibv_qp *qp)
{
	FV_LOCKED();
	return ((struct fv_qp *)qp)->nrq;
}

void
fv_qp_fail_post_send(struct ibv_qp *qp, int nth, int err)
{
	FV_LOCKED();
	((struct fv_qp *)qp)->fail_send_nth = nth;
	((struct fv_qp *)qp)->fail_send_err = err;
}

void
fv_qp_fail_send_wr(struct ibv_qp *qp, int nth, int err)
{
	FV_LOCKED();
	((struct fv_qp *)qp)->fail_wr_nth = nth;
	((struct fv_qp *)qp)->fail_wr_err = err;
}

void
fv_qp_fail_post_recv(struct ibv_qp *qp, int nth, int err)
{
	FV_LOCKED();
	((struct fv_qp *)qp)->fail_recv_nth = nth;
	((struct fv_qp *)qp)->fail_recv_err = err;
}

void
fv_qp_set_rnr_error(struct ibv_qp *qp, bool error)
{
	FV_LOCKED();
	((struct fv_qp *)qp)->rnr_error = error;
	if (error)
		progress((struct fv_qp *)qp, -1, false);
}

void
fv_qp_refuse_posts_in_error(struct ibv_qp *qp, bool refuse)
{
	FV_LOCKED();
	((struct fv_qp *)qp)->refuse_in_error = refuse;
}

void
fv_qp_to_error(struct ibv_qp *qp)
{
	FV_LOCKED();
	qp_error((struct fv_qp *)qp);
}

enum ibv_qp_state
fv_qp_state(struct ibv_qp *qp)
{
	FV_LOCKED();
	return qp->state;
}

/* ---- rdma_cm ---- */

struct rdma_event_channel *
rdma_create_event_channel(void)
{
	FV_LOCKED();
	struct fv_ch *c = calloc(1, sizeof(*c));
	int fds[2];

	fv_init();
	if (c == NULL) {
		errno = ENOMEM;
		return NULL;
	}
	if (pipe2(fds, O_CLOEXEC) != 0) {
		free(c);
		return NULL;
	}
	(void)fcntl(fds[1], F_SETFL, O_NONBLOCK);
	c->ch.fd = fds[0];
	c->wfd = fds[1];
	g_st.channels++;
	return &c->ch;
}

static void
id_free(struct fv_id *f)
{
	free(f);
}

void
rdma_destroy_event_channel(struct rdma_event_channel *channel)
{
	FV_LOCKED();
	struct fv_ch *c = (struct fv_ch *)channel;
	struct fv_event *e;
	int fl = fcntl(c->ch.fd, F_GETFL);

	/* events never fetched: drop them */
	(void)fcntl(c->ch.fd, F_SETFL, fl | O_NONBLOCK);
	while (read(c->ch.fd, &e, sizeof(e)) == (ssize_t)sizeof(e))
		free(e);
	close(c->ch.fd);
	close(c->wfd);
	g_st.channels--;
	free(c);
}

static void
ev_post(struct fv_id *f, enum rdma_cm_event_type type, int status,
	const struct rdma_conn_param *cp, const void *priv, size_t priv_len)
{
	struct fv_event *e = calloc(1, sizeof(*e));
	struct fv_ch *c = (struct fv_ch *)f->id.channel;

	if (e == NULL)
		abort();
	e->fid = f;
	e->ev.id = &f->id;
	e->ev.event = type;
	e->ev.status = status;
	if (cp != NULL)
		e->ev.param.conn = *cp;
	if (priv_len > sizeof(e->priv))
		priv_len = sizeof(e->priv);
	if (priv_len > 0) {
		memcpy(e->priv, priv, priv_len);
		e->ev.param.conn.private_data = e->priv;
	} else {
		e->ev.param.conn.private_data = NULL;
	}
	e->ev.param.conn.private_data_len = (uint8_t)priv_len;
	if (write(c->wfd, &e, sizeof(e)) != (ssize_t)sizeof(e))
		abort();
}

int
rdma_get_cm_event(struct rdma_event_channel *channel, struct rdma_cm_event **event)
{
	FV_LOCKED();
	struct fv_event *e;

	if (read(channel->fd, &e, sizeof(e)) != (ssize_t)sizeof(e))
		return -1;
	e->fid->unacked++;
	*event = &e->ev;
	return 0;
}

int
rdma_ack_cm_event(struct rdma_cm_event *event)
{
	FV_LOCKED();
	struct fv_event *e = (struct fv_event *)event;
	struct fv_id *f = e->fid;

	f->unacked--;
	if (f->zombie && f->unacked == 0)
		id_free(f);
	free(e);
	return 0;
}

int
rdma_create_id(struct rdma_event_channel *channel, struct rdma_cm_id **id, void *context,
	       enum rdma_port_space ps)
{
	FV_LOCKED();
	struct fv_id *f;

	fv_init();
	if (channel == NULL) {
		errno = EINVAL;         /* synchronous ids: not faked */
		return -1;
	}
	f = calloc(1, sizeof(*f));
	if (f == NULL) {
		errno = ENOMEM;
		return -1;
	}
	f->id.channel = channel;
	f->id.context = context;
	f->id.ps = ps;
	f->id.qp_type = IBV_QPT_RC;
	f->id.port_num = 1;
	g_st.ids++;
	*id = &f->id;
	return 0;
}

/* The active id's fake initiator: owns nothing but itself (QP: the id's). */
static void
aini_free(struct fv_id *f)
{
	struct fv_ini *ini = f->aini;

	if (ini == NULL)
		return;
	if (ini->tid != NULL)
		ini->tid->ini = NULL;
	f->aini = NULL;
	if (g_active_last == ini)
		g_active_last = NULL;
	free(ini);
}

static void
listener_del(struct fv_id *f)
{
	for (int i = 0; i < MAX_LISTENERS; i++) {
		if (g_listeners[i] == f)
			g_listeners[i] = NULL;
	}
}

int
rdma_destroy_id(struct rdma_cm_id *id)
{
	FV_LOCKED();
	struct fv_id *f = (struct fv_id *)id;

	if (id->qp != NULL)
		bug("rdma_destroy_id with its QP still there");
	listener_del(f);
	if (f->ini != NULL)
		f->ini->tid = NULL;
	aini_free(f);
	g_st.ids--;
	if (f->unacked > 0) {
		bug("rdma_destroy_id with %d events unacknowledged (librdmacm waits for ever)",
		    f->unacked);
		f->zombie = true;
		return 0;
	}
	id_free(f);
	return 0;
}

static uint16_t
sa_port(const struct sockaddr *sa)
{
	if (sa->sa_family == AF_INET6)
		return ntohs(((const struct sockaddr_in6 *)sa)->sin6_port);
	return ntohs(((const struct sockaddr_in *)sa)->sin_port);
}

static void
sa_set_port(struct sockaddr *sa, uint16_t port)
{
	if (sa->sa_family == AF_INET6)
		((struct sockaddr_in6 *)sa)->sin6_port = htons(port);
	else
		((struct sockaddr_in *)sa)->sin_port = htons(port);
}

int
rdma_bind_addr(struct rdma_cm_id *id, struct sockaddr *addr)
{
	FV_LOCKED();
	struct fv_id *f = (struct fv_id *)id;
	size_t len = addr->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
						 : sizeof(struct sockaddr_in);
	uint16_t port = sa_port(addr);

	if (fv_cfg.no_devices) {
		errno = EADDRNOTAVAIL;
		return -1;
	}
	if (port == 0)
		port = g_next_port++;
	for (int i = 0; i < MAX_LISTENERS; i++) {
		if (g_listeners[i] != NULL && g_listeners[i]->port == port) {
			errno = EADDRINUSE;
			return -1;
		}
	}
	memcpy(&id->route.addr.src_addr, addr, len);
	sa_set_port(&id->route.addr.src_addr, port);
	f->port = port;
	return 0;
}

int
rdma_listen(struct rdma_cm_id *id, int backlog)
{
	FV_LOCKED();
	struct fv_id *f = (struct fv_id *)id;

	(void)backlog;
	for (int i = 0; i < MAX_LISTENERS; i++) {
		if (g_listeners[i] == NULL) {
			g_listeners[i] = f;
			f->listening = true;
			return 0;
		}
	}
	errno = ENOSPC;
	return -1;
}

__be16
rdma_get_src_port(struct rdma_cm_id *id)
{
	FV_LOCKED();
	return htons(sa_port(&id->route.addr.src_addr));
}

__be16
rdma_get_dst_port(struct rdma_cm_id *id)
{
	FV_LOCKED();
	return htons(sa_port(&id->route.addr.dst_addr));
}

int
rdma_set_option(struct rdma_cm_id *id, int level, int optname, void *optval, size_t optlen)
{
	FV_LOCKED();
	(void)id;
	(void)level;
	(void)optname;
	(void)optval;
	(void)optlen;
	return 0;
}

int
rdma_migrate_id(struct rdma_cm_id *id, struct rdma_event_channel *channel)
{
	FV_LOCKED();
	struct fv_id *f = (struct fv_id *)id;

	if (f->unacked > 0) {
		bug("rdma_migrate_id with %d events unacknowledged (librdmacm waits)", f->unacked);
	}
	id->channel = channel;
	return 0;
}

int
rdma_create_qp(struct rdma_cm_id *id, struct ibv_pd *pd, struct ibv_qp_init_attr *attr)
{
	FV_LOCKED();
	struct fv_qp *q;

	if (id->verbs == NULL || pd == NULL || pd->context != id->verbs) {
		errno = EINVAL;
		return -1;
	}
	q = qp_create(pd, attr);
	if (q == NULL)
		return -1;
	id->qp = &q->qp;
	return 0;
}

void
rdma_destroy_qp(struct rdma_cm_id *id)
{
	FV_LOCKED();
	struct fv_id *f = (struct fv_id *)id;

	if (id->qp == NULL)
		return;
	if (f->aini != NULL)
		f->aini->qp = NULL;
	qp_destroy((struct fv_qp *)id->qp);
	id->qp = NULL;
}

static void
join(struct fv_qp *a, struct fv_qp *b)
{
	a->peer = b;
	b->peer = a;
	if (a->qp.state != IBV_QPS_ERR)
		a->qp.state = IBV_QPS_RTS;
	if (b->qp.state != IBV_QPS_ERR)
		b->qp.state = IBV_QPS_RTS;
	progress(a, -1, false);
	progress(b, -1, false);
}

int
rdma_accept(struct rdma_cm_id *id, struct rdma_conn_param *param)
{
	FV_LOCKED();
	struct fv_id *f = (struct fv_id *)id;
	struct fv_ini *ini = f->ini;

	if (ini == NULL || ini->state != FV_INI_CONNECTING || id->qp == NULL) {
		errno = EINVAL;
		return -1;
	}
	if (param != NULL) {
		ini->acc = *param;
		ini->rep_len = param->private_data_len < sizeof(ini->rep) ? param->private_data_len
									  : sizeof(ini->rep);
		if (param->private_data != NULL)
			memcpy(ini->rep, param->private_data, ini->rep_len);
		ini->acc.private_data = ini->rep;
	}
	ini->state = FV_INI_CONNECTED;
	join((struct fv_qp *)id->qp, (struct fv_qp *)ini->qp);
	/* an rdma_cm initiator: the REP completes its connect (it sends the RTU) */
	if (ini->aid != NULL)
		ev_post(ini->aid, RDMA_CM_EVENT_ESTABLISHED, 0, &ini->acc, ini->rep, ini->rep_len);
	if (!ini->established && !ini->hold_est) {
		ini->established = true;
		ev_post(f, RDMA_CM_EVENT_ESTABLISHED, 0, NULL, NULL, 0);
	}
	return 0;
}

int
rdma_notify(struct rdma_cm_id *id, enum ibv_event_type event)
{
	FV_LOCKED();
	struct fv_id *f = (struct fv_id *)id;

	/* COMM_EST: the IB CM takes it as the RTU */
	if (event == IBV_EVENT_COMM_EST && f->ini != NULL && f->ini->state == FV_INI_CONNECTED &&
	    !f->ini->established) {
		f->ini->established = true;
		ev_post(f, RDMA_CM_EVENT_ESTABLISHED, 0, NULL, NULL, 0);
	}
	return 0;
}

int
rdma_reject(struct rdma_cm_id *id, const void *private_data, uint8_t private_data_len)
{
	FV_LOCKED();
	struct fv_id *f = (struct fv_id *)id;

	if (f->ini != NULL && f->ini->state == FV_INI_CONNECTING) {
		f->ini->state = FV_INI_REJECTED;
		/* an rdma_cm initiator gets REJECTED, status 28 (IB_CM_REJ_CONSUMER_DEFINED) */
		if (f->ini->aid != NULL)
			ev_post(f->ini->aid, RDMA_CM_EVENT_REJECTED, 28, NULL, private_data,
				private_data_len);
	}
	return 0;
}

int
rdma_disconnect(struct rdma_cm_id *id)
{
	FV_LOCKED();
	struct fv_id *f = (struct fv_id *)id;
	struct fv_ini *ini = f->ini;

	if (f->disconnected) {
		errno = EINVAL;
		return -1;
	}
	f->disconnected = true;
	/* librdmacm on IB: the QP goes to error first */
	if (id->qp != NULL)
		qp_error((struct fv_qp *)id->qp);
	if (!f->peer_hung_up) {
		if (ini != NULL && ini->state == FV_INI_CONNECTED) {
			ini->target_disconnected = true;
			ini->state = FV_INI_DISCONNECTED;
			/* the fake initiator answers the DREQ at once */
			if (ini->qp != NULL)
				qp_error((struct fv_qp *)ini->qp);
			/* an rdma_cm initiator is told (librdmacm moves its QP to
			 * error on DISCONNECTED, as above) */
			if (ini->aid != NULL) {
				ini->aid->peer_hung_up = true;
				ev_post(ini->aid, RDMA_CM_EVENT_DISCONNECTED, 0, NULL, NULL, 0);
			}
		} else if (f->aini != NULL && f->aini->state == FV_INI_CONNECTED) {
			/* the active side hangs up */
			ini_hang_up(f->aini);
		}
		ev_post(f, RDMA_CM_EVENT_DISCONNECTED, 0, NULL, NULL, 0);
	}
	ev_post(f, RDMA_CM_EVENT_TIMEWAIT_EXIT, 0, NULL, NULL, 0);
	return 0;
}

/* ---- the fake initiator ---- */

static struct fv_id *
listener_find(uint16_t port)
{
	for (int i = 0; i < MAX_LISTENERS; i++) {
		if (g_listeners[i] != NULL && g_listeners[i]->port == port)
			return g_listeners[i];
	}
	return NULL;
}

/* The target's new id for ini (whose QP is set), on listener l's channel, and
 * its CONNECT_REQUEST. peer: the initiator's address as the target sees it. */
static int
ini_request(struct fv_id *l, struct fv_ini *ini, const struct sockaddr *peer,
	    const struct rdma_conn_param *cp)
{
	struct fv_id *f = calloc(1, sizeof(*f));

	if (f == NULL)
		return -ENOMEM;
	f->id.verbs = &g_ctx;
	f->id.channel = l->id.channel;
	f->id.context = NULL;
	f->id.ps = l->id.ps;
	f->id.qp_type = IBV_QPT_RC;
	f->id.port_num = 1;
	f->ini = ini;
	memcpy(&f->id.route.addr.src_addr, &l->id.route.addr.src_addr,
	       sizeof(struct sockaddr_in6));
	memcpy(&f->id.route.addr.dst_addr, peer,
	       peer->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
					   : sizeof(struct sockaddr_in));
	if (f->id.route.addr.src_addr.sa_family == AF_INET &&
	    ((struct sockaddr_in *)&f->id.route.addr.src_addr)->sin_addr.s_addr == 0)
		inet_pton(AF_INET, "192.0.2.10",
			  &((struct sockaddr_in *)&f->id.route.addr.src_addr)->sin_addr);
	g_st.ids++;
	ini->tid = f;
	ev_post(f, RDMA_CM_EVENT_CONNECT_REQUEST, 0, cp, cp->private_data, cp->private_data_len);
	/* (the event's listen_id is not set: the datamover does not read it) */
	return 0;
}

int
fv_ini_connect(uint16_t port, const struct fv_ini_opts *o, struct fv_ini **out)
{
	FV_LOCKED();
	struct fv_ini_opts def = { 0 };
	struct ibv_qp_init_attr qa;
	struct rdma_conn_param cp;
	struct sockaddr_in sin;
	struct fv_id *l;
	struct fv_ini *ini;
	struct fv_qp *q;
	int rc;

	fv_init();
	if (o == NULL)
		o = &def;
	l = listener_find(port);
	if (l == NULL)
		return -ECONNREFUSED;
	ini = calloc(1, sizeof(*ini));
	if (ini == NULL)
		return -ENOMEM;
	ini->hold_est = o->hold_established;
	ini->pd = ibv_alloc_pd(&g_ctx);
	ini->cq = ibv_create_cq(&g_ctx, 4096, ini, NULL, 0);
	memset(&qa, 0, sizeof(qa));
	qa.send_cq = ini->cq;
	qa.recv_cq = ini->cq;
	qa.qp_type = IBV_QPT_RC;
	qa.cap.max_send_wr = o->sq_depth ? o->sq_depth : 256;
	qa.cap.max_recv_wr = o->rq_depth ? o->rq_depth : 256;
	qa.cap.max_send_sge = 4;
	qa.cap.max_recv_sge = 4;
	q = qp_create(ini->pd, &qa);
	if (q == NULL)
		abort();
	ini->qp = &q->qp;

	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons(50000);
	inet_pton(AF_INET, o->addr ? o->addr : "192.0.2.1", &sin.sin_addr);
	memset(&cp, 0, sizeof(cp));
	cp.initiator_depth = o->initiator_depth;
	cp.responder_resources = o->responder_resources;
	cp.retry_count = 7;
	cp.rnr_retry_count = 7;
	cp.private_data = o->priv;
	cp.private_data_len = (uint8_t)o->priv_len;
	rc = ini_request(l, ini, (struct sockaddr *)&sin, &cp);
	if (rc < 0) {
		fv_ini_destroy(ini);
		return rc;
	}
	*out = ini;
	return 0;
}

/* ---- the active side of rdma_cm: an initiator that is an rdma_cm client ---- */

int
rdma_resolve_addr(struct rdma_cm_id *id, struct sockaddr *src_addr, struct sockaddr *dst_addr,
		  int timeout_ms)
{
	FV_LOCKED();
	struct fv_id *f = (struct fv_id *)id;
	struct sockaddr_in *sin = (struct sockaddr_in *)&id->route.addr.src_addr;

	(void)timeout_ms;
	if (dst_addr == NULL ||
	    (dst_addr->sa_family != AF_INET && dst_addr->sa_family != AF_INET6)) {
		errno = EINVAL;
		return -1;
	}
	if (fv_cfg.no_devices) {
		/* no RDMA device on the route: the resolution fails */
		ev_post(f, RDMA_CM_EVENT_ADDR_ERROR, -EADDRNOTAVAIL, NULL, NULL, 0);
		return 0;
	}
	memcpy(&id->route.addr.dst_addr, dst_addr,
	       dst_addr->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
					       : sizeof(struct sockaddr_in));
	if (src_addr != NULL) {
		memcpy(&id->route.addr.src_addr, src_addr,
		       src_addr->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
						       : sizeof(struct sockaddr_in));
	} else {
		memset(sin, 0, sizeof(*sin));
		sin->sin_family = AF_INET;
		inet_pton(AF_INET, "192.0.2.1", &sin->sin_addr);
	}
	if (sa_port(&id->route.addr.src_addr) == 0)
		sa_set_port(&id->route.addr.src_addr, g_next_port++);
	f->port = sa_port(&id->route.addr.src_addr);
	id->verbs = &g_ctx;
	id->port_num = 1;
	f->addr_resolved = true;
	ev_post(f, RDMA_CM_EVENT_ADDR_RESOLVED, 0, NULL, NULL, 0);
	return 0;
}

int
rdma_resolve_route(struct rdma_cm_id *id, int timeout_ms)
{
	FV_LOCKED();
	struct fv_id *f = (struct fv_id *)id;

	(void)timeout_ms;
	if (!f->addr_resolved) {
		errno = EINVAL;
		return -1;
	}
	f->route_resolved = true;
	ev_post(f, RDMA_CM_EVENT_ROUTE_RESOLVED, 0, NULL, NULL, 0);
	return 0;
}

int
rdma_connect(struct rdma_cm_id *id, struct rdma_conn_param *param)
{
	FV_LOCKED();
	struct fv_id *f = (struct fv_id *)id;
	struct rdma_conn_param cp, def = { 0 };
	struct fv_ini *ini;
	struct fv_id *l;
	int rc;

	if (!f->route_resolved || id->qp == NULL || f->aini != NULL) {
		errno = EINVAL;
		return -1;
	}
	if (param == NULL)
		param = &def;
	l = listener_find(sa_port(&id->route.addr.dst_addr));
	if (l == NULL) {
		/* nobody listens there: the IB CM rejects the REQ (invalid service ID) */
		ev_post(f, RDMA_CM_EVENT_REJECTED, 8, NULL, NULL, 0);
		return 0;
	}
	ini = calloc(1, sizeof(*ini));
	if (ini == NULL) {
		errno = ENOMEM;
		return -1;
	}
	ini->qp = id->qp;
	ini->aid = f;
	f->aini = ini;
	g_active_last = ini;
	/* the passive side sees the depths from its own end: the initiator's
	 * responder resources (IRD) are its initiator depth, and the reverse */
	cp = *param;
	cp.initiator_depth = param->responder_resources;
	cp.responder_resources = param->initiator_depth;
	rc = ini_request(l, ini, &id->route.addr.src_addr, &cp);
	if (rc < 0) {
		aini_free(f);
		errno = -rc;
		return -1;
	}
	return 0;
}

struct ibv_qp *
fv_ini_target_qp(struct fv_ini *ini)
{
	FV_LOCKED();
	return ini->tid != NULL ? ini->tid->id.qp : NULL;
}

void
fv_ini_establish(struct fv_ini *ini)
{
	FV_LOCKED();
	if (ini->tid != NULL && ini->state == FV_INI_CONNECTED && !ini->established) {
		ini->established = true;
		ev_post(ini->tid, RDMA_CM_EVENT_ESTABLISHED, 0, NULL, NULL, 0);
	}
}

/* The initiator hangs up: its QP to error, DISCONNECTED to the target. */
static void
ini_hang_up(struct fv_ini *ini)
{
	struct fv_id *f = ini->tid;

	if (ini->state == FV_INI_DISCONNECTED)
		return;
	ini->state = FV_INI_DISCONNECTED;
	if (ini->qp != NULL)
		qp_error((struct fv_qp *)ini->qp);
	if (f != NULL && !f->disconnected) {
		f->peer_hung_up = true;
		ev_post(f, RDMA_CM_EVENT_DISCONNECTED, 0, NULL, NULL, 0);
	}
}

void
fv_ini_disconnect(struct fv_ini *ini)
{
	FV_LOCKED();
	struct fv_id *a = ini->aid;
	bool was = ini->state == FV_INI_DISCONNECTED;

	ini_hang_up(ini);
	/* an rdma_cm initiator did not ask: the link dropped, and its id hears so */
	if (!was && a != NULL && !a->disconnected && !a->peer_hung_up) {
		a->peer_hung_up = true;
		ev_post(a, RDMA_CM_EVENT_DISCONNECTED, 0, NULL, NULL, 0);
	}
}

struct fv_ini *
fv_active_last(void)
{
	FV_LOCKED();
	return g_active_last;
}

void
fv_ini_destroy(struct fv_ini *ini)
{
	FV_LOCKED();
	if (ini == NULL)
		return;
	if (ini->tid != NULL)
		ini->tid->ini = NULL;
	if (ini->qp != NULL)
		qp_destroy((struct fv_qp *)ini->qp);
	if (ini->cq != NULL)
		ibv_destroy_cq(ini->cq);
	if (ini->pd != NULL)
		ibv_dealloc_pd(ini->pd);
	free(ini);
}
