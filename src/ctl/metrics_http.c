/*
 * The metrics listener: a minimal HTTP/1.0 and 1.1 server on the daemon's
 * reactor that answers GET /metrics with the Prometheus exposition
 * (isd_ctl_prometheus) and closes the connection after each answer (once the
 * client closed too, or a second later: see client_flush).
 *
 * Whatever connects here may be hostile, so everything is bounded: at most
 * ISD_METRICS_MAX_CLIENTS clients at once (one more is told 503 and closed at
 * accept), a request head of at most ISD_METRICS_MAX_HEAD bytes (431), and a
 * client that has not sent its request within ISD_METRICS_IDLE_MS, or stops
 * taking the answer for that long, is closed. No byte of a request is logged.
 */
#define _GNU_SOURCE /* accept4 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ctl/ctl.h"
#include "reactor/reactor.h"
#include "server/target.h"
#include "util/log.h"
#include "util/str.h"

/* After the answer: how long, and how much, of what the client still sends is read. */
#define ISD_METRICS_LINGER_MS 1000
#define ISD_METRICS_LINGER_BYTES (64u << 10)

struct mclient {
	struct isd_metrics_http *m;
	int fd;                         /* -1: slot free */
	char head[ISD_METRICS_MAX_HEAD];
	size_t head_len;
	char *out;                      /* the answer, head and body */
	size_t out_len, out_off;
	bool lingering;                 /* answer sent: reading what is left until EOF */
	size_t drained;                 /* bytes read and dropped while lingering */
	struct isd_timer idle;
};

struct isd_metrics_http {
	struct isd_reactor *r;
	struct isd_target_running *rt;
	int lfd;
	uint16_t port;
	struct mclient clients[ISD_METRICS_MAX_CLIENTS];
};

static void
client_close(struct mclient *c)
{
	if (c->fd < 0)
		return;
	isd_reactor_timer_stop(c->m->r, &c->idle);
	isd_reactor_del_fd(c->m->r, c->fd);
	close(c->fd);
	c->fd = -1;
	free(c->out);
	c->out = NULL;
	c->out_len = c->out_off = 0;
	c->head_len = 0;
	c->lingering = false;
	c->drained = 0;
}

static void
client_idle(void *arg)
{
	client_close(arg);
}

/* Writes what it can of the answer; closes the client once all of it is out. */
static void
client_flush(struct mclient *c)
{
	while (c->out_off < c->out_len) {
		ssize_t n = send(c->fd, c->out + c->out_off, c->out_len - c->out_off,
				 MSG_NOSIGNAL | MSG_DONTWAIT);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			/* the client reads slowly: wait for room, as long as it takes some */
			isd_reactor_mod_fd(c->m->r, c->fd, EPOLLOUT);
			isd_reactor_timer_start(c->m->r, &c->idle, ISD_METRICS_IDLE_MS);
			return;
		}
		if (n <= 0) {
			client_close(c);
			return;
		}
		c->out_off += (size_t)n;
	}
	/*
	 * All out. Closing now, with request bytes still unread (a body, the rest of
	 * an oversized head), would reset the connection and could destroy the
	 * answer before the client read it; so our side is shut and what the client
	 * still sends is read and dropped until it closes, briefly and boundedly.
	 */
	shutdown(c->fd, SHUT_WR);
	c->lingering = true;
	isd_reactor_mod_fd(c->m->r, c->fd, EPOLLIN);
	isd_reactor_timer_start(c->m->r, &c->idle, ISD_METRICS_LINGER_MS);
}

static void
client_linger(struct mclient *c)
{
	char buf[4096];
	ssize_t n = recv(c->fd, buf, sizeof(buf), MSG_DONTWAIT);

	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
		return;
	if (n > 0)
		c->drained += (size_t)n;
	if (n <= 0 || c->drained > ISD_METRICS_LINGER_BYTES)
		client_close(c);
}

static void
client_answer(struct mclient *c, int code, const char *reason, const char *extra,
	      const char *ctype, char *body, size_t body_len)
{
	char head[512];
	int hn;

	hn = snprintf(head, sizeof(head),
		      "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n%s"
		      "Connection: close\r\n\r\n",
		      code, reason, ctype, body_len, extra != NULL ? extra : "");
	c->out = malloc((size_t)hn + body_len);
	if (c->out == NULL) {
		client_close(c);
		return;
	}
	memcpy(c->out, head, (size_t)hn);
	if (body_len > 0)
		memcpy(c->out + hn, body, body_len);
	c->out_len = (size_t)hn + body_len;
	c->out_off = 0;
	/* nothing more is read from it */
	isd_reactor_mod_fd(c->m->r, c->fd, EPOLLOUT);
	client_flush(c);
}

static void
client_error(struct mclient *c, int code, const char *reason, const char *extra)
{
	char body[96];
	int n = snprintf(body, sizeof(body), "%d %s\n", code, reason);

	client_answer(c, code, reason, extra, "text/plain; charset=utf-8", body, (size_t)n);
}

static bool
is_tchar(char ch)
{
	return (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
	       (ch != '\0' && strchr("!#$%&'*+-.^_`|~", ch) != NULL);
}

/* The head is complete (it ends at end): method SP target SP HTTP/1.x CRLF, then fields. */
static void
client_request(struct mclient *c, size_t end)
{
	const char *p = c->head, *line_end, *sp1, *sp2;
	size_t mlen, tlen, vlen;
	char *body = NULL;
	size_t body_len = 0;
	int rc;

	line_end = memchr(p, '\n', end);
	if (line_end == NULL)
		goto bad;
	sp1 = memchr(p, ' ', (size_t)(line_end - p));
	if (sp1 == NULL)
		goto bad;
	sp2 = memchr(sp1 + 1, ' ', (size_t)(line_end - sp1 - 1));
	if (sp2 == NULL)
		goto bad;
	mlen = (size_t)(sp1 - p);
	tlen = (size_t)(sp2 - sp1 - 1);
	vlen = (size_t)(line_end - sp2 - 1);
	if (vlen > 0 && sp2[vlen] == '\r')
		vlen--;
	if (mlen == 0 || tlen == 0 || sp1[1] != '/')
		goto bad;
	for (size_t i = 0; i < mlen; i++)
		if (!is_tchar(p[i]))
			goto bad;
	for (size_t i = 0; i < tlen; i++)
		if ((unsigned char)sp1[1 + i] <= 0x20 || (unsigned char)sp1[1 + i] >= 0x7f)
			goto bad;
	if (vlen != 8 ||
	    (memcmp(sp2 + 1, "HTTP/1.0", 8) != 0 && memcmp(sp2 + 1, "HTTP/1.1", 8) != 0))
		goto bad;
	if (mlen != 3 || memcmp(p, "GET", 3) != 0) {
		client_error(c, 405, "Method Not Allowed", "Allow: GET\r\n");
		return;
	}
	/* /metrics, with or without a query (Prometheus may add none; curl users might) */
	if (!((tlen == 8 || (tlen > 8 && sp1[9] == '?')) && memcmp(sp1 + 1, "/metrics", 8) == 0)) {
		client_error(c, 404, "Not Found", NULL);
		return;
	}
	/* reads counters of every reactor's objects: the others wait meanwhile */
	isd_reactor_pause_others(c->m->r);
	rc = isd_ctl_prometheus(c->m->rt, &body, &body_len);
	isd_reactor_resume_others(c->m->r);
	if (rc < 0) {
		client_error(c, 503, "Service Unavailable", NULL);
		return;
	}
	client_answer(c, 200, "OK", NULL, "text/plain; version=0.0.4; charset=utf-8", body,
		      body_len);
	free(body);
	return;
bad:
	client_error(c, 400, "Bad Request", NULL);
}

/* Where the head ends (after its blank line), or 0 while it has not; from is where
 * the bytes not yet looked at begin. */
static size_t
head_end(const char *h, size_t len, size_t from)
{
	for (size_t i = from > 2 ? from - 2 : 0; i + 1 < len; i++) {
		if (h[i] != '\n')
			continue;
		if (h[i + 1] == '\n')
			return i + 2;
		if (i + 2 < len && h[i + 1] == '\r' && h[i + 2] == '\n')
			return i + 3;
	}
	return 0;
}

static void
client_event(void *arg, uint32_t events)
{
	struct mclient *c = arg;
	ssize_t n;
	size_t end;

	if (c->lingering) {
		client_linger(c);
		return;
	}
	if (c->out != NULL) {
		client_flush(c);
		return;
	}
	if (!(events & EPOLLIN))
		return;
	n = recv(c->fd, c->head + c->head_len, sizeof(c->head) - c->head_len, MSG_DONTWAIT);
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
		return;
	if (n <= 0) {
		client_close(c);
		return;
	}
	/* a NUL is no part of any request: junk */
	if (memchr(c->head + c->head_len, '\0', (size_t)n) != NULL) {
		c->head_len += (size_t)n;
		client_error(c, 400, "Bad Request", NULL);
		return;
	}
	c->head_len += (size_t)n;
	end = head_end(c->head, c->head_len, c->head_len - (size_t)n);
	if (end > 0) {
		client_request(c, end);
		return;
	}
	if (c->head_len >= sizeof(c->head))
		client_error(c, 431, "Request Header Fields Too Large", NULL);
}

static void
listener_event(void *arg, uint32_t events)
{
	struct isd_metrics_http *m = arg;

	(void)events;
	for (int k = 0; k < 64; k++) {
		struct mclient *c = NULL;
		int fd = accept4(m->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (fd < 0)
			return; /* EAGAIN, or a connection that died in the queue */
		for (int i = 0; i < ISD_METRICS_MAX_CLIENTS && c == NULL; i++)
			if (m->clients[i].fd < 0)
				c = &m->clients[i];
		if (c == NULL) {
			static const char busy[] =
			    "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n"
			    "Connection: close\r\n\r\n";

			/* one try, never waiting: the answer is a courtesy */
			if (send(fd, busy, sizeof(busy) - 1, MSG_NOSIGNAL | MSG_DONTWAIT) < 0)
				isd_log_dbg("ctl", "metrics: a client over the limit went away");
			close(fd);
			continue;
		}
		c->fd = fd;
		c->head_len = 0;
		if (isd_reactor_add_fd(m->r, fd, EPOLLIN, client_event, c) < 0) {
			close(fd);
			c->fd = -1;
			continue;
		}
		/* the whole request must arrive within the idle time */
		isd_reactor_timer_start(m->r, &c->idle, ISD_METRICS_IDLE_MS);
	}
}

int
isd_metrics_http_start(struct isd_reactor *r, struct isd_target_running *rt, const char *addr,
		       struct isd_metrics_http **out, char *err, size_t errlen)
{
	struct isd_metrics_http *m;
	struct sockaddr_storage ss;
	socklen_t sl;
	char host[64], why[160];
	uint16_t port;
	int one = 1, rc;

	if (isd_target_listen_parse(addr, host, sizeof(host), &port, why, sizeof(why)) < 0) {
		isd_seterr(err, errlen, "metrics_listen: %s", why);
		return -EINVAL;
	}
	memset(&ss, 0, sizeof(ss));
	if (strchr(host, ':') != NULL) {
		struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;

		a->sin6_family = AF_INET6;
		a->sin6_port = htons(port);
		inet_pton(AF_INET6, host, &a->sin6_addr);
		sl = sizeof(*a);
	} else {
		struct sockaddr_in *a = (struct sockaddr_in *)&ss;

		a->sin_family = AF_INET;
		a->sin_port = htons(port);
		inet_pton(AF_INET, host, &a->sin_addr);
		sl = sizeof(*a);
	}
	m = calloc(1, sizeof(*m));
	if (m == NULL) {
		isd_seterr(err, errlen, "out of memory");
		return -ENOMEM;
	}
	m->r = r;
	m->rt = rt;
	for (int i = 0; i < ISD_METRICS_MAX_CLIENTS; i++) {
		m->clients[i].m = m;
		m->clients[i].fd = -1;
		isd_timer_init(&m->clients[i].idle, client_idle, &m->clients[i]);
	}
	m->lfd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (m->lfd < 0)
		goto err_errno;
	setsockopt(m->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (ss.ss_family == AF_INET6)
		setsockopt(m->lfd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	if (bind(m->lfd, (struct sockaddr *)&ss, sl) < 0 || listen(m->lfd, 16) < 0)
		goto err_errno;
	sl = sizeof(ss);
	if (getsockname(m->lfd, (struct sockaddr *)&ss, &sl) == 0)
		isd_sockaddr_str((struct sockaddr *)&ss, sl, host, sizeof(host), &m->port);
	rc = isd_reactor_add_fd(r, m->lfd, EPOLLIN, listener_event, m);
	if (rc < 0) {
		errno = -rc;
		goto err_errno;
	}
	{
		char hp[96];

		isd_fmt_hostport(hp, sizeof(hp), host, m->port);
		isd_log_info("metrics on http://%s/metrics", hp);
	}
	*out = m;
	return 0;

err_errno:
	rc = -errno;
	isd_seterr(err, errlen, "metrics_listen %s: %s", addr, strerror(errno));
	if (m->lfd >= 0)
		close(m->lfd);
	free(m);
	return rc;
}

uint16_t
isd_metrics_http_port(const struct isd_metrics_http *m)
{
	return m != NULL ? m->port : 0;
}

void
isd_metrics_http_stop(struct isd_metrics_http *m)
{
	if (m == NULL)
		return;
	for (int i = 0; i < ISD_METRICS_MAX_CLIENTS; i++)
		client_close(&m->clients[i]);
	isd_reactor_del_fd(m->r, m->lfd);
	close(m->lfd);
	free(m);
}
