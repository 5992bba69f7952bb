/*
 * iSER portals (the passive role): rdma_cm listening, and each
 * CONNECT_REQUEST turned into a connection of the target core (QP, CQ, login
 * receive posted before rdma_accept). The portal owns the event channel of
 * its listening id; an accepted id moves to a channel of its own.
 */
#include "dm/iser/iser_dm.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>

#include <rdma/rdma_cma.h>

#include "dm/iser/iser_int.h"
#include "iscsi/iscsi.h"
#include "rdma/rdma.h"
#include "util/log.h"
#include "util/str.h"

#define ISD_ISER_BACKLOG 128

#define ISD_ISER_BACKLOG 128

/* A listening rdma_cm id. Owned by whoever called listen; lives on reactor r. */
struct isd_iser_portal {
	struct isd_iscsi_tgt *tgt;
	struct isd_reactor *r;
	struct rdma_event_channel *ch;
	struct rdma_cm_id *id;
	bool on_reactor;
	uint16_t port;
	uint16_t tpgt;
	bool placed;                    /* `place` limits placement */
	struct isd_reactor_mask place;  /* the reactors its connections may go to */
	char name[96];                  /* "iser://addr:port" */
	bool remote_inv;                /* may end commands with Send with Invalidate */
	uint64_t recv_memory;           /* FFP receive buffer bytes per connection */
	struct isd_rdma_dev *devs[ISD_RDMA_MAX_DEVS];
	int ndevs;
};

/* ---- accepting ---- */

static int
conn_setup(struct isd_iser_conn *ic, uint8_t ord)
{
	int rc;

	rc = isd_iser_conn_channel(ic);
	if (rc < 0)
		return rc;
	if (rdma_migrate_id(ic->id, ic->ch) != 0)
		return -(errno ? errno : EIO);
	rc = isd_iser_conn_watch(ic);
	if (rc < 0)
		return rc;
	isd_iser_qp_size(&ic->dev->attr, &ic->qs);
	rc = isd_iser_conn_create_qp(ic, ord);
	if (rc < 0)
		return rc;
	/* the login receive goes up before rdma_accept (docs/iser.md W3) */
	return isd_iser_rx_post(ic, ic->login_rx);
}

/*
 * On the chosen reactor's thread: the id moves to a channel of the
 * connection's own there, its QP and CQ are made there with the login
 * receive posted, and rdma_accept answers the initiator. Until this runs
 * nothing of the connection runs anywhere. A close meanwhile (a control
 * method or the shutdown, on the listener's reactor with this one paused)
 * leaves it draining, its terminate notify deferred on this reactor, where
 * it runs after this message: the initiator is refused here.
 */
static void
accept_placed(void *arg)
{
	struct isd_iser_conn *ic = arg;
	struct rdma_conn_param acc;
	int rc;

	if (ic->state != ISD_ISER_ACCEPTING) {
		(void)rdma_reject(ic->id, NULL, 0);
		return;
	}
	rc = conn_setup(ic, ic->ord);
	if (rc < 0) {
		isd_log_err("iser %s: connection setup failed: %s", ic->peer, strerror(-rc));
		goto err;
	}
	memset(&acc, 0, sizeof(acc));
	acc.private_data = ic->rep;
	acc.private_data_len = sizeof(ic->rep);
	acc.responder_resources = 0;    /* nobody reads from us */
	acc.initiator_depth = ic->ord;
	acc.retry_count = 7;
	/* the initiator's QP may wait for our receives for ever (the IB CM hands
	 * this to it): withholding receives is our backpressure */
	acc.rnr_retry_count = 7;
	if (rdma_accept(ic->id, &acc) != 0) {
		rc = -errno;
		isd_log_err("iser %s: rdma_accept: %s", ic->peer, strerror(errno));
		goto err;
	}
	isd_reactor_timer_start(ic->r, &ic->stall_timer, ISD_ISER_TX_STALL_MS);
	isd_conn_start(ic->conn);
	return;

err:
	/* the isd_conn exists: reject, then let the core free it through the usual
	 * terminate notify -> free_conn path (which destroys the id) */
	ic->disconnect_sent = true;
	(void)rdma_reject(ic->id, NULL, 0);
	isd_iser_conn_fail(ic, rc);
}

static void
connect_request(struct isd_iser_portal *p, struct rdma_cm_id *id,
		const struct rdma_conn_param *peer, const uint8_t *priv, size_t priv_len)
{
	struct isd_iser_cm cm, rep_cm = { .zbva_not_supported = true };
	struct isd_conn_info info;
	struct isd_rdma_dev *dev = NULL;
	struct isd_reactor_group *g;
	struct isd_reactor *cr;
	struct isd_iser_conn *ic;
	struct isd_dm_conn *c;
	char err[256];
	int rc;

	memset(&info, 0, sizeof(info));
	isd_sockaddr_str(rdma_get_peer_addr(id), 0, info.peer_addr, sizeof(info.peer_addr),
			 &info.peer_port);
	isd_sockaddr_str(rdma_get_local_addr(id), 0, info.local_addr, sizeof(info.local_addr),
			 &info.local_port);
	info.tpgt = p->tpgt;
	info.transport = ISD_TRANSPORT_ISER;
	isd_iser_cm_decode(priv, priv_len, &cm);

	rc = isd_rdma_dev_get(id->verbs, &dev, err, sizeof(err));
	if (rc < 0) {
		isd_log_err("%s: connection from %s refused: %s", p->name, info.peer_addr, err);
		goto err_reject;
	}
	/*
	 * Placement, as the TCP listener does (tcp_portal.c): with a group of
	 * reactors the connection goes to the one with the fewest connections of
	 * either transport among those the portal may use (isd_iser_portal_place),
	 * counted there until free_conn. The RDMA layer's
	 * pool, registry and counters may be used from any thread (src/rdma);
	 * the connection's channel, CQ and QP are made on its reactor.
	 */
	g = isd_reactor_group_of(p->r);
	cr = g != NULL ? isd_reactor_group_pick_in(g, p->placed ? &p->place : NULL) : p->r;
	if (g == NULL)
		isd_reactor_conns_add(cr, 1);
	rc = isd_conn_create(p->tgt, &isd_iser_dm_ops, &info, cr, &c);
	if (rc < 0) {
		isd_reactor_conns_add(cr, -1);
		/* a connection limit (-EAGAIN) is counted (and logged at debug) by the
		 * core: a flood of connect requests must not become a flood of log lines */
		if (rc != -EAGAIN)
			isd_log_err("%s: connection from %s refused: %s", p->name,
				    info.peer_addr, strerror(-rc));
		goto err_dev;
	}
	ic = isd_dmc_priv(c);
	/* only fills memory: safe on this thread for a connection of another reactor */
	isd_iser_conn_init(ic, c, cr);
	ic->id = id;
	ic->dev = dev;
	ic->state = ISD_ISER_ACCEPTING;
	ic->placed = true;
	ic->rx_budget = p->recv_memory;
	if (strchr(info.peer_addr, ':') != NULL)
		snprintf(ic->peer, sizeof(ic->peer), "[%s]:%u", info.peer_addr, info.peer_port);
	else
		snprintf(ic->peer, sizeof(ic->peer), "%s:%u", info.peer_addr, info.peer_port);
	id->context = ic;
	isd_iser_stat_add(&isd_iser_g_conns, 1);
	ic->remote_inv = isd_iser_remote_inv_ok(
	    &cm, (dev->attr.device_cap_flags & IBV_DEVICE_MEM_MGT_EXTENSIONS) != 0, p->remote_inv);
	/* the REP tells the initiator which way its STags are invalidated */
	rep_cm.send_w_inv_not_supported = !ic->remote_inv;
	isd_iser_cm_encode(&rep_cm, ic->rep);
	ic->ord = isd_iser_ord(peer, dev->attr.max_qp_init_rd_atom);
	if (ic->ord == 0)
		isd_log_warn("iser %s: the initiator accepts no RDMA Reads (its responder "
			     "resources are 0): SCSI writes that need solicited data will fail "
			     "and close the connection", ic->peer);
	isd_log_dbg("iser", "%s: accepting on %s, reactor %u (%s; peer flags %s ZBVA-not-sup %d "
		    "SEND_W_INV-not-sup %d, its IRD (responder resources) %u, its ORD (initiator "
		    "depth) %u; our ORD %u; %s invalidation)",
		    ic->peer, dev->name, isd_reactor_index(cr), dev->iwarp ? "iWARP" : "IB/RoCE",
		    cm.present ? "sent" : "absent", cm.zbva_not_supported,
		    cm.send_w_inv_not_supported, peer->initiator_depth, peer->responder_resources,
		    ic->ord, ic->remote_inv ? "remote" : "local");
	if (cr == p->r) {
		accept_placed(ic);
		return;
	}
	/* a reactor's fds, timers and CQs are its own thread's: the rest happens there */
	ic->start_msg.cb = accept_placed;
	ic->start_msg.arg = ic;
	isd_reactor_post(cr, &ic->start_msg);
	return;

err_dev:
	isd_rdma_dev_put(dev);
err_reject:
	(void)rdma_reject(id, NULL, 0);
	rdma_destroy_id(id);
}

static void
portal_cm_cb(void *arg, uint32_t events)
{
	struct isd_iser_portal *p = arg;
	struct rdma_cm_event *ev;

	(void)events;
	while (rdma_get_cm_event(p->ch, &ev) == 0) {
		if (ev->event == RDMA_CM_EVENT_CONNECT_REQUEST) {
			struct rdma_conn_param peer = ev->param.conn;
			struct rdma_cm_id *id = ev->id;
			uint8_t priv[64];
			size_t len = 0;

			if (peer.private_data != NULL) {
				len = peer.private_data_len < sizeof(priv) ? peer.private_data_len
									   : sizeof(priv);
				memcpy(priv, peer.private_data, len);
			}
			peer.private_data = NULL;
			rdma_ack_cm_event(ev);
			connect_request(p, id, &peer, priv, len);
			continue;
		}
		isd_log_info("%s: %s on the listener", p->name, rdma_event_str(ev->event));
		rdma_ack_cm_event(ev);
	}
}

/* ---- portals ---- */

static void
portal_free(struct isd_iser_portal *p)
{
	if (p->on_reactor)
		isd_reactor_del_fd(p->r, p->ch->fd);
	if (p->id != NULL)
		rdma_destroy_id(p->id);
	if (p->ch != NULL)
		rdma_destroy_event_channel(p->ch);
	for (int i = 0; i < p->ndevs; i++)
		isd_rdma_dev_put(p->devs[i]);
	free(p);
}

/* Opens every RDMA device now, so that registered memory is registered (and an
 * RLIMIT_MEMLOCK shortfall reported) at start, not at the first login. */
static int
portal_open_devices(struct isd_iser_portal *p, char *err, size_t err_len)
{
	struct ibv_context **list;
	int n = 0, rc = 0;

	list = rdma_get_devices(&n);
	if (list == NULL)
		return 0;
	for (int i = 0; i < n && p->ndevs < ISD_RDMA_MAX_DEVS; i++) {
		char e[256];

		rc = isd_rdma_dev_get(list[i], &p->devs[p->ndevs], e, sizeof(e));
		if (rc < 0) {
			isd_seterr(err, err_len, "%s: %s", p->name, e);
			break;
		}
		p->ndevs++;
	}
	rdma_free_devices(list);
	return rc;
}

int
isd_iser_portal_listen(struct isd_iscsi_tgt *t, struct isd_reactor *r, const char *host,
		       uint16_t port, uint16_t tpgt, struct isd_iser_portal **out, char *err,
		       size_t err_len)
{
	struct addrinfo hints, *ai = NULL;
	struct isd_iser_portal *p;
	char serv[8];
	int rc, e;

	if (t == NULL || r == NULL || host == NULL || out == NULL) {
		isd_seterr(err, err_len, "iser portal: bad arguments");
		return -EINVAL;
	}
	isd_rdma_init();
	p = calloc(1, sizeof(*p));
	if (p == NULL) {
		isd_seterr(err, err_len, "iser portal: out of memory");
		return -ENOMEM;
	}
	p->tgt = t;
	p->r = r;
	p->tpgt = tpgt;
	p->recv_memory = ISD_ISER_RECV_MEMORY_DEFAULT;
	if (strchr(host, ':') != NULL)
		snprintf(p->name, sizeof(p->name), "iser://[%s]:%u", host, port);
	else
		snprintf(p->name, sizeof(p->name), "iser://%s:%u", host, port);

	p->ch = rdma_create_event_channel();
	if (p->ch == NULL) {
		e = errno ? errno : ENODEV;
		isd_seterr(err, err_len,
			   "%s: rdma_cm unavailable (%s): no RDMA device, or the "
			   "rdma_ucm module is not loaded",
			   p->name, strerror(e));
		rc = -e;
		goto err_free;
	}
	rc = isd_iser_set_nonblock(p->ch->fd);
	if (rc < 0) {
		isd_seterr(err, err_len, "%s: %s", p->name, strerror(-rc));
		goto err_free;
	}
	if (rdma_create_id(p->ch, &p->id, p, RDMA_PS_TCP) != 0) {
		rc = -errno;
		isd_seterr(err, err_len, "%s: rdma_create_id: %s", p->name, strerror(errno));
		goto err_free;
	}
	memset(&hints, 0, sizeof(hints));
	hints.ai_flags = AI_PASSIVE | AI_NUMERICHOST | AI_NUMERICSERV;
	hints.ai_socktype = SOCK_STREAM;
	snprintf(serv, sizeof(serv), "%u", port);
	e = getaddrinfo(host, serv, &hints, &ai);
	if (e != 0) {
		isd_seterr(err, err_len, "%s: not a numeric address: %s", p->name, gai_strerror(e));
		rc = -EINVAL;
		goto err_free;
	}
	if (ai->ai_family == AF_INET6)
		(void)rdma_set_option(p->id, RDMA_OPTION_ID, RDMA_OPTION_ID_AFONLY,
				      &(int){ 1 }, sizeof(int));
	if (rdma_bind_addr(p->id, ai->ai_addr) != 0) {
		rc = -errno;
		goto err_bind;
	}
	if (rdma_listen(p->id, ISD_ISER_BACKLOG) != 0) {
		rc = -errno;
		goto err_bind;
	}
	freeaddrinfo(ai);
	ai = NULL;
	p->port = ntohs(rdma_get_src_port(p->id));
	rc = portal_open_devices(p, err, err_len);
	if (rc < 0)
		goto err_free;
	rc = isd_reactor_add_fd(r, p->ch->fd, EPOLLIN, portal_cm_cb, p);
	if (rc < 0) {
		isd_seterr(err, err_len, "%s: reactor: %s", p->name, strerror(-rc));
		goto err_free;
	}
	p->on_reactor = true;
	isd_log_info("%s: listening (tpgt %u, %d RDMA device%s)", p->name, tpgt, p->ndevs,
		     p->ndevs == 1 ? "" : "s");
	*out = p;
	return 0;

err_bind:
	if (rc == -EADDRINUSE)
		isd_seterr(err, err_len,
			   "%s: port in use (on iWARP the iSER portal cannot share a "
			   "port with a TCP portal; use another port, e.g. 3261)",
			   p->name);
	else if (rc == -EADDRNOTAVAIL || rc == -ENODEV)
		isd_seterr(err, err_len, "%s: no RDMA device has this address (%s)", p->name,
			   strerror(-rc));
	else
		isd_seterr(err, err_len, "%s: %s", p->name, strerror(-rc));
err_free:
	if (ai != NULL)
		freeaddrinfo(ai);
	portal_free(p);
	return rc;
}

void
isd_iser_portal_close(struct isd_iser_portal *p)
{
	if (p != NULL)
		portal_free(p);
}

uint16_t
isd_iser_portal_port(const struct isd_iser_portal *p)
{
	return p->port;
}

void
isd_iser_portal_place(struct isd_iser_portal *p, const struct isd_reactor_mask *in)
{
	p->placed = in != NULL && !isd_reactor_mask_empty(in);
	if (p->placed)
		p->place = *in;
}

void
isd_iser_portal_set_remote_invalidate(struct isd_iser_portal *p, bool on)
{
	p->remote_inv = on;
}

void
isd_iser_portal_set_recv_memory(struct isd_iser_portal *p, uint64_t bytes)
{
	p->recv_memory = bytes;
}
