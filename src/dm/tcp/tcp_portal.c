/*
 * Listening portals: one nonblocking listening socket on a reactor; every
 * accepted socket becomes an isd_conn driven by isd_tcp_dm_ops.
 */
#define _GNU_SOURCE /* accept4 */
#include "dm/tcp/tcp.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "dm/tcp/tcp_int.h"
#include "iscsi/iscsi.h"
#include "util/log.h"
#include "util/str.h"

#define ISD_TCP_BACKLOG 128
#define ISD_TCP_ACCEPT_BUDGET 32
/* After EMFILE and friends, stop accepting this long (level-triggered epoll would spin). */
#define ISD_TCP_ACCEPT_PAUSE_MS 100

/* A listening socket. Owned by whoever called listen; lives on reactor r. */
struct isd_tcp_portal {
	struct isd_iscsi_tgt *tgt;
	struct isd_reactor *r;
	int fd;
	uint16_t port;                  /* bound port */
	uint16_t tpgt;
	bool placed;                    /* `place` limits placement */
	struct isd_reactor_mask place;  /* the reactors its connections may go to */
	char name[80];                  /* "addr:port" for messages */
	struct isd_timer pause_timer;
};

static void
pause_end_cb(void *arg)
{
	struct isd_tcp_portal *p = arg;

	if (isd_reactor_mod_fd(p->r, p->fd, EPOLLIN) < 0)
		isd_log_warn("tcp portal %s: cannot resume accepting", p->name);
}

/*
 * On the chosen reactor's thread: the socket joins that reactor and the
 * connection starts (its login timer). Until this runs nothing of the
 * connection runs anywhere: no fd is watched and no timer is armed. A close
 * meanwhile (a control method or the shutdown, on the listener's reactor with
 * this one paused) leaves the state CLOSED and its terminate notify deferred
 * on this reactor, where it runs after this message (messages run before
 * timers in a turn), so the connection is still there to look at.
 */
static void
start_placed(void *arg)
{
	struct isd_tcp_conn *tc = arg;

	if (tc->state != ISD_TCP_OPEN)
		return;
	/* On failure the socket is closed and a terminate notify follows the start. */
	(void)isd_tcp_conn_attach(tc);
	isd_conn_start(tc->conn);
}

static void
accept_one(struct isd_tcp_portal *p, int fd, const struct sockaddr_storage *ss, socklen_t sslen)
{
	struct sockaddr_storage local;
	socklen_t llen = sizeof(local);
	struct isd_conn_info info;
	struct isd_tcp_conn *tc;
	struct isd_dm_conn *c;
	struct isd_reactor_group *g;
	struct isd_reactor *cr;
	int one = 1;
	int rc;

	/* PDUs are written whole; Nagle would only delay responses behind ACKs. */
	if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) < 0)
		isd_log_dbg("tcp", "TCP_NODELAY: %s", strerror(errno));
	memset(&info, 0, sizeof(info));
	isd_sockaddr_str((const struct sockaddr *)ss, sslen, info.peer_addr, sizeof(info.peer_addr),
			 &info.peer_port);
	if (getsockname(fd, (struct sockaddr *)&local, &llen) == 0)
		isd_sockaddr_str((struct sockaddr *)&local, llen, info.local_addr,
				 sizeof(info.local_addr), &info.local_port);
	info.tpgt = p->tpgt;
	info.transport = ISD_TRANSPORT_TCP;

	/*
	 * Placement: with a group of reactors the connection goes to the one with
	 * the fewest connections (ties: the lowest index) among those the portal
	 * may use (isd_tcp_portal_place; all by default), counted there until
	 * free_conn. A session has one connection (MaxConnections=1), so a
	 * session lives on the reactor its connection was placed on.
	 */
	g = isd_reactor_group_of(p->r);
	cr = g != NULL ? isd_reactor_group_pick_in(g, p->placed ? &p->place : NULL) : p->r;
	rc = isd_conn_create(p->tgt, &isd_tcp_dm_ops, &info, cr, &c);
	if (rc < 0) {
		if (g != NULL)
			isd_reactor_conns_add(cr, -1);
		/* a connection limit (-EAGAIN) is counted (and logged at debug) by the
		 * core: a flood must not turn into a flood of log lines */
		if (rc != -EAGAIN)
			isd_log_warn("tcp portal %s: connection from %s refused: %s", p->name,
				     info.peer_addr, strerror(-rc));
		close(fd);
		return;
	}
	tc = isd_dmc_priv(c);
	/* only fills memory: safe on this thread for a connection of another reactor */
	isd_tcp_conn_init(tc, c, cr, fd);
	tc->placed = g != NULL;
	isd_fmt_hostport(tc->peer, sizeof(tc->peer), info.peer_addr, info.peer_port);
	isd_log_dbg("tcp", "%s: accepted on %s, reactor %u", tc->peer, p->name,
		    isd_reactor_index(cr));
	if (cr == p->r) {
		start_placed(tc);
		return;
	}
	/* a reactor's fds and timers are its own thread's: the rest happens there */
	tc->start_msg.cb = start_placed;
	tc->start_msg.arg = tc;
	isd_reactor_post(cr, &tc->start_msg);
}

static void
accept_cb(void *arg, uint32_t events)
{
	struct isd_tcp_portal *p = arg;

	(void)events;
	for (int i = 0; i < ISD_TCP_ACCEPT_BUDGET; i++) {
		struct sockaddr_storage ss;
		socklen_t sslen = sizeof(ss);
		int fd;

		fd = accept4(p->fd, (struct sockaddr *)&ss, &sslen, SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (fd >= 0) {
			accept_one(p, fd, &ss, sslen);
			continue;
		}
		switch (errno) {
		case EAGAIN:
#if EWOULDBLOCK != EAGAIN
		case EWOULDBLOCK:
#endif
			return;
		case EINTR:
		case ECONNABORTED:
		case EPROTO:
			continue;
		case EMFILE:
		case ENFILE:
		case ENOBUFS:
		case ENOMEM:
			isd_log_warn("tcp portal %s: accept: %s; pausing %d ms", p->name,
				     strerror(errno), ISD_TCP_ACCEPT_PAUSE_MS);
			if (isd_reactor_mod_fd(p->r, p->fd, 0) == 0)
				isd_reactor_timer_start(p->r, &p->pause_timer,
							ISD_TCP_ACCEPT_PAUSE_MS);
			return;
		default:
			isd_log_warn("tcp portal %s: accept: %s", p->name, strerror(errno));
			return;
		}
	}
}

int
isd_tcp_portal_listen(struct isd_iscsi_tgt *t, struct isd_reactor *r, const char *host,
		      uint16_t port, uint16_t tpgt, struct isd_tcp_portal **out, char *err,
		      size_t err_len)
{
	struct addrinfo hints, *res = NULL;
	struct sockaddr_storage ss;
	socklen_t sslen = sizeof(ss);
	struct isd_tcp_portal *p;
	char hbuf[64], serv[8], shown[80];
	const char *node = NULL;
	int one = 1;
	int rc, gai;

	isd_seterr(err, err_len, "%s", "");
	/* Accept "[::1]" as written in URLs and TargetAddress. */
	if (host != NULL && host[0] != '\0' && strcmp(host, "*") != 0) {
		size_t len = strlen(host);

		if (host[0] == '[' && len >= 2 && host[len - 1] == ']') {
			if (len - 2 >= sizeof(hbuf)) {
				isd_seterr(err, err_len, "%s: address too long", host);
				return -EINVAL;
			}
			memcpy(hbuf, host + 1, len - 2);
			hbuf[len - 2] = '\0';
			node = hbuf;
		} else {
			node = host;
		}
	}
	isd_fmt_hostport(shown, sizeof(shown), node != NULL ? node : "*", port);
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
	snprintf(serv, sizeof(serv), "%u", port);
	gai = getaddrinfo(node, serv, &hints, &res);
	if (gai != 0 || res == NULL) {
		isd_seterr(err, err_len, "%s: cannot resolve: %s", shown,
			   gai != 0 ? gai_strerror(gai) : "no address");
		return -EINVAL;
	}

	p = calloc(1, sizeof(*p));
	if (p == NULL) {
		rc = -ENOMEM;
		isd_seterr(err, err_len, "%s: %s", shown, strerror(-rc));
		goto err_res;
	}
	p->tgt = t;
	p->r = r;
	p->tpgt = tpgt;
	isd_timer_init(&p->pause_timer, pause_end_cb, p);
	p->fd = socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (p->fd < 0) {
		rc = -errno;
		isd_seterr(err, err_len, "%s: socket: %s", shown, strerror(-rc));
		goto err_free;
	}
	/* Restarts must not wait out TIME_WAIT connections of the previous run. */
	setsockopt(p->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	/* A v6 portal serves v6 only; "0.0.0.0" and "::" are separate portals. */
	if (res->ai_family == AF_INET6)
		setsockopt(p->fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	if (bind(p->fd, res->ai_addr, res->ai_addrlen) < 0) {
		rc = -errno;
		isd_seterr(err, err_len, "%s: %s", shown, strerror(-rc));
		goto err_close;
	}
	if (listen(p->fd, ISD_TCP_BACKLOG) < 0) {
		rc = -errno;
		isd_seterr(err, err_len, "%s: listen: %s", shown, strerror(-rc));
		goto err_close;
	}
	if (getsockname(p->fd, (struct sockaddr *)&ss, &sslen) < 0) {
		rc = -errno;
		isd_seterr(err, err_len, "%s: getsockname: %s", shown, strerror(-rc));
		goto err_close;
	}
	isd_sockaddr_str((struct sockaddr *)&ss, sslen, hbuf, sizeof(hbuf), &p->port);
	isd_fmt_hostport(p->name, sizeof(p->name), hbuf, p->port);
	rc = isd_reactor_add_fd(r, p->fd, EPOLLIN, accept_cb, p);
	if (rc < 0) {
		isd_seterr(err, err_len, "%s: cannot watch the socket: %s", shown, strerror(-rc));
		goto err_close;
	}
	freeaddrinfo(res);
	isd_log_dbg("tcp", "listening on %s (tpgt %u)", p->name, tpgt);
	*out = p;
	return 0;

err_close:
	close(p->fd);
err_free:
	free(p);
err_res:
	freeaddrinfo(res);
	return rc;
}

void
isd_tcp_portal_close(struct isd_tcp_portal *p)
{
	if (p == NULL)
		return;
	isd_reactor_timer_stop(p->r, &p->pause_timer);
	isd_reactor_del_fd(p->r, p->fd);
	close(p->fd);
	free(p);
}

uint16_t
isd_tcp_portal_port(const struct isd_tcp_portal *p)
{
	return p->port;
}

void
isd_tcp_portal_place(struct isd_tcp_portal *p, const struct isd_reactor_mask *in)
{
	p->placed = in != NULL && !isd_reactor_mask_empty(in);
	if (p->placed)
		p->place = *in;
}
