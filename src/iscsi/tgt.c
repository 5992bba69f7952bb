/* The target instance: configuration, nodes, portals, counters, shutdown. */
#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "iscsi/core.h"
#include "util/log.h"
#include "util/monitor.h"
#include "util/stats.h"
#include "util/str.h"

void
isd_iscsi_cfg_init(struct isd_iscsi_cfg *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	isd_key_policy_init(&cfg->discovery_policy);
	cfg->login_timeout_ms = 15000;
	cfg->nop_interval_ms = 5000;
	cfg->nop_timeout_ms = 10000;
	cfg->logout_timeout_ms = 2000;
	cfg->max_connections = ISD_DEFAULT_MAX_CONNECTIONS;
	cfg->max_connections_per_address = ISD_DEFAULT_MAX_CONNECTIONS_PER_ADDRESS;
	cfg->max_login_connections = ISD_DEFAULT_MAX_LOGIN_CONNECTIONS;
	cfg->max_sessions = ISD_DEFAULT_MAX_SESSIONS;
	cfg->max_sessions_per_target = ISD_DEFAULT_MAX_SESSIONS_PER_TARGET;
	cfg->max_discovery_sessions = ISD_DEFAULT_MAX_DISCOVERY_SESSIONS;
	cfg->max_held_bytes = ISD_DEFAULT_MAX_HELD_BYTES;
	cfg->max_held_pdus = ISD_DEFAULT_MAX_HELD_PDUS;
	cfg->max_session_buffer_bytes = ISD_DEFAULT_MAX_SESSION_BUFFER_BYTES;
}

void
isd_tgt_lock(struct isd_iscsi_tgt *t)
{
	pthread_mutex_lock(&t->lock);
}

void
isd_tgt_unlock(struct isd_iscsi_tgt *t)
{
	pthread_mutex_unlock(&t->lock);
}

static bool
no_conns(struct isd_iscsi_tgt *t)
{
	bool empty;

	isd_tgt_lock(t);
	empty = TAILQ_EMPTY(&t->conns);
	isd_tgt_unlock(t);
	return empty;
}

static void
shutdown_done(void *arg)
{
	struct isd_iscsi_tgt *t = arg;
	void (*cb)(void *) = t->shutdown_cb;

	if (!no_conns(t))
		return;         /* isd_tgt_conn_gone() defers us again */
	t->shutdown_cb = NULL;
	if (cb != NULL)
		cb(t->shutdown_arg);
}

int
isd_iscsi_tgt_create(struct isd_reactor *r, const struct isd_iscsi_cfg *cfg,
		     struct isd_iscsi_tgt **out)
{
	struct isd_iscsi_tgt *t;

	if (r == NULL || out == NULL)
		return -EINVAL;
	/* aligned as its per-reactor lines are (sizeof is a multiple of 64) */
	t = aligned_alloc(_Alignof(struct isd_iscsi_tgt), sizeof(*t));
	if (t == NULL)
		return -ENOMEM;
	memset(t, 0, sizeof(*t));
	if (pthread_mutex_init(&t->lock, NULL) != 0) {
		free(t);
		return -ENOMEM;
	}
	t->reactor = r;
	if (cfg != NULL)
		t->cfg = *cfg;
	else
		isd_iscsi_cfg_init(&t->cfg);
	TAILQ_INIT(&t->nodes);
	TAILQ_INIT(&t->portals);
	TAILQ_INIT(&t->sessions);
	TAILQ_INIT(&t->conns);
	/* TSIH 0 is reserved for "new session"; start somewhere not obviously 1 */
	t->next_tsih = (uint16_t)((isd_now_ns() >> 10) | 1);
	t->next_nexus_id = 1;
	t->next_ttt = 1;
	isd_timer_init(&t->shutdown_timer, shutdown_done, t);
	*out = t;
	return 0;
}

void
isd_iscsi_tgt_destroy(struct isd_iscsi_tgt *t)
{
	if (t == NULL)
		return;
	if (!no_conns(t))
		isd_log_err("iscsi: target destroyed with %lu connection(s) alive",
			    (unsigned long)isd_stat_load(&t->stats.connections));
	isd_reactor_timer_stop(t->reactor, &t->shutdown_timer);
	pthread_mutex_destroy(&t->lock);
	free(t);
}

struct isd_tnode *
isd_iscsi_tgt_find_node(struct isd_iscsi_tgt *t, const char *name)
{
	struct isd_tnode *n;

	if (name == NULL)
		return NULL;
	TAILQ_FOREACH(n, &t->nodes, link) {
		/* iSCSI names compare case-insensitively after stringprep; names we accept
		 * are already normalised to lower case by convention, so compare bytes but
		 * fold ASCII case as initiators sometimes differ there. */
		if (strcasecmp(n->name, name) == 0)
			return n;
	}
	return NULL;
}

int
isd_iscsi_tgt_add_node(struct isd_iscsi_tgt *t, struct isd_tnode *node)
{
	if (t == NULL || node == NULL || node->name[0] == '\0' ||
	    strnlen(node->name, ISD_NAME_MAX) >= ISD_NAME_MAX)
		return -EINVAL;
	if (isd_iscsi_tgt_find_node(t, node->name) != NULL)
		return -EEXIST;
	if (node->queue_depth == 0)
		node->queue_depth = ISD_DEFAULT_QUEUE_DEPTH;
	if (node->tpgt == 0)
		node->tpgt = 1;
	TAILQ_INSERT_TAIL(&t->nodes, node, link);
	return 0;
}

int
isd_iscsi_tgt_add_portal(struct isd_iscsi_tgt *t, struct isd_portal_cfg *portal)
{
	if (t == NULL || portal == NULL || portal->host[0] == '\0')
		return -EINVAL;
	TAILQ_INSERT_TAIL(&t->portals, portal, link);
	return 0;
}

int
isd_iscsi_tgt_remove_portal(struct isd_iscsi_tgt *t, struct isd_portal_cfg *portal,
			    const struct isd_tnode **busy)
{
	struct isd_portal_cfg *p;
	struct isd_tnode *n;

	TAILQ_FOREACH(p, &t->portals, link) {
		if (p == portal)
			break;
	}
	if (p == NULL)
		return -ENOENT;
	/* a node bound only here would become reachable nowhere: the caller must rebind it */
	TAILQ_FOREACH(n, &t->nodes, link) {
		if (n->bound && n->portal_count == 1 && n->portals[0] == portal) {
			if (busy != NULL)
				*busy = n;
			return -EBUSY;
		}
	}
	TAILQ_FOREACH(n, &t->nodes, link) {
		int j = 0;

		for (int i = 0; i < n->portal_count; i++)
			if (n->portals[i] != portal)
				n->portals[j++] = n->portals[i];
		n->portal_count = j;
	}
	TAILQ_REMOVE(&t->portals, portal, link);
	return 0;
}

bool
isd_tgt_wildcard_host(const char *host)
{
	return strcmp(host, "0.0.0.0") == 0 || strcmp(host, "::") == 0 ||
	       strcmp(host, "[::]") == 0 || host[0] == '\0';
}

const struct isd_portal_cfg *
isd_iscsi_tgt_conn_portal(struct isd_iscsi_tgt *t, const struct isd_conn_info *info)
{
	const struct isd_portal_cfg *p, *wild = NULL;

	TAILQ_FOREACH(p, &t->portals, link) {
		struct in6_addr a;

		if (p->transport != info->transport || p->port != info->local_port)
			continue;
		if (isd_addr_same(p->host, info->local_addr))
			return p;
		/* a host name ("localhost") listens on what it resolved to: as good a guess
		 * as a wildcard, since two portals cannot share an address and port */
		if (wild == NULL &&
		    (isd_tgt_wildcard_host(p->host) || (inet_pton(AF_INET6, p->host, &a) != 1 &&
							 inet_pton(AF_INET, p->host, &a) != 1)))
			wild = p;
	}
	return wild;
}

bool
isd_tnode_on_portal(const struct isd_tnode *n, const struct isd_portal_cfg *p)
{
	if (!n->bound)
		return true;
	for (int i = 0; p != NULL && i < n->portal_count; i++)
		if (n->portals[i] == p)
			return true;
	return false;
}

/*
 * On t->reactor. With several reactors, whether or not the others are paused:
 * every connection's close is posted to its own reactor (closing one of this
 * reactor's in place could re-enter the core under the table lock), and the
 * last one freed brings us back here through isd_tgt_conn_gone. Setting
 * shutting_down under the lock means no connection is admitted after the walk.
 */
void
isd_iscsi_tgt_shutdown(struct isd_iscsi_tgt *t, void (*cb)(void *arg), void *arg)
{
	struct isd_conn *c, *tmp;
	bool threaded = isd_monitor_threaded();
	bool empty;

	isd_tgt_lock(t);
	t->shutting_down = true;
	t->shutdown_cb = cb;
	t->shutdown_arg = arg;
	if (threaded) {
		TAILQ_FOREACH(c, &t->conns, link)
			isd_conn_post_close(c);
	}
	isd_tgt_unlock(t);
	/* one reactor: nothing else touches the list, close in place as always */
	if (!threaded) {
		TAILQ_FOREACH_SAFE(c, &t->conns, link, tmp)
			isd_conn_close(c);
	}
	empty = no_conns(t);
	if (empty)
		isd_reactor_defer(t->reactor, &t->shutdown_timer);
}

void
isd_iscsi_tgt_get_stats(struct isd_iscsi_tgt *t, struct isd_iscsi_stats *out)
{
	const struct isd_iscsi_stats *st = &t->stats;

#define LOAD(f) out->f = isd_stat_load(&st->f)
	LOAD(sessions);
	LOAD(connections);
	LOAD(tasks);
	LOAD(logins_ok);
	LOAD(logins_failed);
	LOAD(rejects_sent);
	LOAD(bytes_copied);
	LOAD(bytes_placed);
	LOAD(login_connections);
	LOAD(cmdsn_dropped);
	LOAD(refused.connections);
	LOAD(refused.per_address);
	LOAD(refused.login_connections);
	LOAD(refused.sessions);
	LOAD(refused.sessions_per_target);
	LOAD(refused.discovery_sessions);
	LOAD(refused.held_pdus);
	LOAD(refused.buffers);
#undef LOAD
	for (unsigned i = 0; i < ISD_REACTOR_MAX; i++) {
		out->tasks += isd_stat_load(&t->hot[i].tasks);
		out->bytes_copied += isd_stat_load(&t->hot[i].bytes_copied);
		out->bytes_placed += isd_stat_load(&t->hot[i].bytes_placed);
	}
}

/* On t->reactor: the layer above's callback, and a pending shutdown's completion. */
static void
conn_gone_here(struct isd_iscsi_tgt *t)
{
	if (t->conn_gone_cb != NULL)
		t->conn_gone_cb(t->conn_gone_arg);
	if (t->shutting_down && t->shutdown_cb != NULL && no_conns(t))
		isd_reactor_defer(t->reactor, &t->shutdown_timer);
}

static void
conn_gone_msg(void *arg)
{
	struct isd_iscsi_tgt *t = arg;

	/*
	 * Cleared before the look, so a connection freed during it posts again:
	 * one freed before it was taken out of t->conns under the lock that the
	 * look takes, so the look sees it gone.
	 */
	__atomic_store_n(&t->gone_posted, false, __ATOMIC_RELEASE);
	conn_gone_here(t);
}

/*
 * Called when a connection has been freed, on the connection's reactor: the
 * callback and the shutdown timer belong to t->reactor (the layer above
 * arms its own timers in the callback), so from another reactor the news is
 * posted there; several frees meanwhile make one message.
 */
void
isd_tgt_conn_gone(struct isd_iscsi_tgt *t)
{
	struct isd_reactor *cur = isd_reactor_current();

	if (!isd_monitor_threaded() || cur == NULL || cur == t->reactor) {
		conn_gone_here(t);
		return;
	}
	if (__atomic_exchange_n(&t->gone_posted, true, __ATOMIC_ACQ_REL))
		return;
	t->gone_msg.cb = conn_gone_msg;
	t->gone_msg.arg = t;
	isd_reactor_post(t->reactor, &t->gone_msg);
}

int
isd_iscsi_refused_list(const struct isd_iscsi_stats *st, struct isd_stat *out, int max)
{
	int n = 0;

	isd_stat_add(out, max, &n, "connections", st->refused.connections);
	isd_stat_add(out, max, &n, "per_address", st->refused.per_address);
	isd_stat_add(out, max, &n, "login_connections", st->refused.login_connections);
	isd_stat_add(out, max, &n, "sessions", st->refused.sessions);
	isd_stat_add(out, max, &n, "sessions_per_target", st->refused.sessions_per_target);
	isd_stat_add(out, max, &n, "discovery_sessions", st->refused.discovery_sessions);
	isd_stat_add(out, max, &n, "held_pdus", st->refused.held_pdus);
	isd_stat_add(out, max, &n, "buffers", st->refused.buffers);
	return n;
}
