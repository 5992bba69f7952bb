/*
 * The control socket: a Unix stream listener on the daemon's reactor. Each
 * client has a bounded receive buffer and an output queue; requests are cut
 * out of the stream by json-c's incremental tokener, answered in order, and
 * written without blocking. Nothing a client sends can make us hold more than
 * ISD_CTL_MSG_MAX + ISD_CTL_OUT_MAX bytes for it, and at most
 * ISD_CTL_CLIENTS_MAX clients are served at once.
 */
#define _GNU_SOURCE /* accept4, struct ucred */
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "ctl/control.h"
#include "reactor/reactor.h"
#include "util/log.h"

#define CTL_READ_CHUNK 65536

struct ctl_client {
	struct isd_ctl *ctl;
	int fd;
	char peer[64];                  /* "uid 0 pid 123" for log lines */
	char *in;                       /* bytes received, not yet a whole request */
	size_t in_len, in_cap;
	char *out;                      /* answers not yet written */
	size_t out_off, out_len, out_cap;
	bool closing;                   /* close once out is written */
	uint32_t events;                /* what the reactor watches for it */
	struct ctl_client *next;
};

struct isd_ctl {
	struct isd_reactor *r;
	struct isd_ctl_env env;
	int lfd;
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	struct ctl_client *clients;
	int nclients;
};

/*
 * Clients turned away at ISD_CTL_CLIENTS_MAX. Per process, not per socket: the
 * statistics are the process's, and a socket restarted (or a second one in a
 * test) must not reset what was counted.
 */
static uint64_t ctl_refused;

uint64_t
isd_ctl_clients_refused(void)
{
	return ctl_refused;
}

static void
client_free(struct ctl_client *cl)
{
	struct isd_ctl *c = cl->ctl;
	struct ctl_client **pp;

	for (pp = &c->clients; *pp != NULL; pp = &(*pp)->next) {
		if (*pp == cl) {
			*pp = cl->next;
			break;
		}
	}
	c->nclients--;
	isd_reactor_del_fd(c->r, cl->fd);
	close(cl->fd);
	free(cl->in);
	free(cl->out);
	free(cl);
}

/* Writes what is queued; 0, or -1 when the client is gone (freed). */
static int
client_flush(struct ctl_client *cl)
{
	while (cl->out_off < cl->out_len) {
		ssize_t n = send(cl->fd, cl->out + cl->out_off, cl->out_len - cl->out_off,
				 MSG_NOSIGNAL | MSG_DONTWAIT);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				break;
			client_free(cl);
			return -1;
		}
		cl->out_off += (size_t)n;
	}
	if (cl->out_off == cl->out_len) {
		cl->out_off = cl->out_len = 0;
		if (cl->closing) {
			client_free(cl);
			return -1;
		}
	}
	/* a closing client is only written to: its end of file, always readable,
	 * must not wake the reactor again and again */
	uint32_t want = (cl->closing ? 0 : EPOLLIN) | (cl->out_len > 0 ? EPOLLOUT : 0);

	if (want != cl->events) {
		isd_reactor_mod_fd(cl->ctl->r, cl->fd, want);
		cl->events = want;
	}
	return 0;
}

/* Queues text and a newline; false when the client's queue is over its bound. */
static bool
client_queue(struct ctl_client *cl, const char *text, size_t len)
{
	size_t need = cl->out_len + len + 1;

	if (need > ISD_CTL_OUT_MAX)
		return false;
	if (need > cl->out_cap) {
		size_t cap = cl->out_cap ? cl->out_cap : 4096;
		char *p;

		while (cap < need)
			cap *= 2;
		p = realloc(cl->out, cap);
		if (p == NULL)
			return false;
		cl->out = p;
		cl->out_cap = cap;
	}
	memcpy(cl->out + cl->out_len, text, len);
	cl->out[cl->out_len + len] = '\n';
	cl->out_len = need;
	return true;
}

static void
client_error(struct ctl_client *cl, int code, const char *msg)
{
	char buf[256];
	int n = snprintf(buf, sizeof(buf),
			 "{\"jsonrpc\":\"2.0\",\"error\":{\"code\":%d,\"message\":\"%s\"},\"id\":null}",
			 code, msg);

	client_queue(cl, buf, (size_t)n);
}

/*
 * Cuts whole requests out of cl->in and answers them. Returns false when the
 * stream is broken (not JSON, too long): an error was queued and the client
 * is to be closed once it is written.
 */
static bool
client_parse(struct ctl_client *cl)
{
	size_t off = 0;
	bool ok = true;

	while (off < cl->in_len) {
		struct json_tokener *tok;
		struct json_object *req;
		enum json_tokener_error e;
		size_t end;

		while (off < cl->in_len && (cl->in[off] == ' ' || cl->in[off] == '\n' ||
					    cl->in[off] == '\r' || cl->in[off] == '\t'))
			off++;
		if (off == cl->in_len)
			break;
		tok = json_tokener_new_ex(ISD_CTL_JSON_DEPTH);
		if (tok == NULL) {
			client_error(cl, ISD_RPC_INTERNAL_ERROR, "out of memory");
			ok = false;
			break;
		}
		req = json_tokener_parse_ex(tok, cl->in + off, (int)(cl->in_len - off));
		e = json_tokener_get_error(tok);
		end = off + json_tokener_get_parse_end(tok);
		json_tokener_free(tok);
		if (e == json_tokener_continue) {
			if (cl->in_len - off >= ISD_CTL_MSG_MAX) {
				client_error(cl, ISD_RPC_INVALID_REQUEST,
					     "request longer than 1048576 bytes");
				ok = false;
			}
			break;
		}
		if (e != json_tokener_success) {
			char m[128];

			snprintf(m, sizeof(m), "parse error: %s", json_tokener_error_desc(e));
			client_error(cl, ISD_RPC_PARSE_ERROR, m);
			ok = false;
			break;
		}
		if (end - off > ISD_CTL_MSG_MAX) {
			json_object_put(req);
			client_error(cl, ISD_RPC_INVALID_REQUEST, "request longer than 1048576 bytes");
			ok = false;
			break;
		}
		{
			const char *ans;
			struct json_object *a = NULL;
			size_t alen;

			/*
			 * Every method runs with the other reactors paused at their
			 * barrier (nothing with one reactor): it sees and changes
			 * sessions, connections and counters as if alone. A reload
			 * (config.reload) nests its own pause inside this one.
			 */
			isd_reactor_pause_others(cl->ctl->r);
			a = isd_ctl_handle_value(&cl->ctl->env, req, cl->peer);
			isd_reactor_resume_others(cl->ctl->r);
			json_object_put(req);
			if (a != NULL) {
				ans = json_object_to_json_string_ext(a, JSON_C_TO_STRING_PLAIN |
									 JSON_C_TO_STRING_NOSLASHESCAPE);
				alen = strlen(ans);
				if (!client_queue(cl, ans, alen)) {
					json_object_put(a);
					isd_log_warn("control: %s does not read its answers; closing",
						     cl->peer);
					cl->out_len = cl->out_off = 0;
					ok = false;
					break;
				}
				json_object_put(a);
			}
		}
		off = end;
	}
	if (off > 0) {
		memmove(cl->in, cl->in + off, cl->in_len - off);
		cl->in_len -= off;
	}
	return ok;
}

static void
on_client(void *arg, uint32_t events)
{
	struct ctl_client *cl = arg;

	/* a hang-up too: the write fails and frees a client that is closing */
	if (events & (EPOLLOUT | EPOLLHUP | EPOLLERR)) {
		if (client_flush(cl) < 0)
			return;
	}
	if (!(events & (EPOLLIN | EPOLLHUP | EPOLLERR)) || cl->closing)
		return;
	for (;;) {
		ssize_t n;

		if (cl->in_cap - cl->in_len < CTL_READ_CHUNK) {
			size_t cap = cl->in_len + CTL_READ_CHUNK;
			char *p;

			if (cap > ISD_CTL_MSG_MAX + CTL_READ_CHUNK)
				cap = ISD_CTL_MSG_MAX + CTL_READ_CHUNK;
			if (cap <= cl->in_len) {
				/* full without a whole request: client_parse said so */
				break;
			}
			p = realloc(cl->in, cap);
			if (p == NULL) {
				client_free(cl);
				return;
			}
			cl->in = p;
			cl->in_cap = cap;
		}
		n = recv(cl->fd, cl->in + cl->in_len, cl->in_cap - cl->in_len, MSG_DONTWAIT);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		if (n < 0) {
			/* the client is gone: answers to it have nowhere to go */
			client_free(cl);
			return;
		}
		if (n == 0) {
			/* end of its requests (socat and the like half-close after sending):
			 * write what is answered, then close; a request cut short is dropped */
			cl->closing = true;
			cl->in_len = 0;
			break;
		}
		cl->in_len += (size_t)n;
		if (!client_parse(cl)) {
			cl->closing = true;
			cl->in_len = 0;
			break;
		}
	}
	client_flush(cl);
}

static void
on_accept(void *arg, uint32_t events)
{
	struct isd_ctl *c = arg;

	for (;;) {
		struct ctl_client *cl;
		struct ucred uc;
		socklen_t ul = sizeof(uc);
		int fd = accept4(c->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (fd < 0)
			return;
		if (c->nclients >= ISD_CTL_CLIENTS_MAX) {
			static const char busy[] =
			    "{\"jsonrpc\":\"2.0\",\"error\":{\"code\":-32003,\"message\":\"too many "
			    "control clients\"},\"id\":null}\n";

			ctl_refused++;
			(void)!send(fd, busy, sizeof(busy) - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
			close(fd);
			continue;
		}
		cl = calloc(1, sizeof(*cl));
		if (cl == NULL) {
			close(fd);
			continue;
		}
		cl->ctl = c;
		cl->fd = fd;
		if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &uc, &ul) == 0)
			snprintf(cl->peer, sizeof(cl->peer), "uid %u pid %d", (unsigned)uc.uid,
				 (int)uc.pid);
		else
			snprintf(cl->peer, sizeof(cl->peer), "a client");
		cl->events = EPOLLIN;
		if (isd_reactor_add_fd(c->r, fd, EPOLLIN, on_client, cl) < 0) {
			close(fd);
			free(cl);
			continue;
		}
		cl->next = c->clients;
		c->clients = cl;
		c->nclients++;
	}
}

/* A socket file at path: is an iserd still answering on it? */
static bool
socket_alive(const char *path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	bool alive;

	if (fd < 0)
		return false;
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	alive = connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
	close(fd);
	return alive;
}

int
isd_ctl_start(struct isd_reactor *r, const struct isd_ctl_env *env, const char *path,
	      unsigned mode, bool create_dir, struct isd_ctl **out, char *err, size_t errlen)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	struct isd_ctl *c;
	struct stat st;
	mode_t old;
	int rc;

	if (strlen(path) >= sizeof(sa.sun_path)) {
		snprintf(err, errlen, "control socket %s: path longer than %zu bytes", path,
			 sizeof(sa.sun_path) - 1);
		return -ENAMETOOLONG;
	}
	if (create_dir) {
		char dir[sizeof(sa.sun_path)];
		char *slash;

		snprintf(dir, sizeof(dir), "%s", path);
		slash = strrchr(dir, '/');
		if (slash != NULL && slash != dir) {
			*slash = '\0';
			if (mkdir(dir, 0755) < 0 && errno != EEXIST) {
				rc = -errno;
				snprintf(err, errlen, "control socket directory %s: %s", dir,
					 strerror(-rc));
				return rc;
			}
		}
	}
	if (lstat(path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode)) {
			snprintf(err, errlen, "control socket %s: exists and is not a socket", path);
			return -EEXIST;
		}
		if (socket_alive(path)) {
			snprintf(err, errlen,
				 "control socket %s: another iserd is answering on it", path);
			return -EADDRINUSE;
		}
		unlink(path);   /* left by an iserd that is gone */
	}
	c = calloc(1, sizeof(*c));
	if (c == NULL) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	c->r = r;
	c->env = *env;
	snprintf(c->path, sizeof(c->path), "%s", path);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	c->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (c->lfd < 0) {
		rc = -errno;
		goto err_free;
	}
	/* no moment in which the socket is more open than asked */
	old = umask(0777 & ~(mode & 0777));
	rc = bind(c->lfd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ? -errno : 0;
	umask(old);
	if (rc == 0 && chmod(path, mode & 0777) < 0)
		rc = -errno;
	if (rc == 0 && listen(c->lfd, 16) < 0)
		rc = -errno;
	if (rc == 0)
		rc = isd_reactor_add_fd(r, c->lfd, EPOLLIN, on_accept, c);
	if (rc < 0) {
		close(c->lfd);
		unlink(path);
		goto err_free;
	}
	isd_log_info("control socket %s (mode %04o)", path, mode & 0777);
	*out = c;
	return 0;

err_free:
	snprintf(err, errlen, "control socket %s: %s", path, strerror(-rc));
	free(c);
	return rc;
}

void
isd_ctl_stop(struct isd_ctl *c)
{
	if (c == NULL)
		return;
	while (c->clients != NULL)
		client_free(c->clients);
	isd_reactor_del_fd(c->r, c->lfd);
	close(c->lfd);
	unlink(c->path);
	free(c);
}
