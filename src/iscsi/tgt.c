/* The target instance: configuration, nodes, portals, counters, shutdown. */
#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "iscsi/core.h"
#include "util/log.h"
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

static void
shutdown_done(void *arg)
{
	struct isd_iscsi_tgt *t = arg;
	void (*cb)(void *) = t->shutdown_cb;

	if (!TAILQ_EMPTY(&t->conns))
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
	t = calloc(1, sizeof(*t));
	if (t == NULL)
		return -ENOMEM;
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
	if (!TAILQ_EMPTY(&t->conns))
		isd_log_err("iscsi: target destroyed with %lu connection(s) alive",
			    (unsigned long)t->stats.connections);
	isd_reactor_timer_stop(t->reactor, &t->shutdown_timer);
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

void
isd_iscsi_tgt_shutdown(struct isd_iscsi_tgt *t, void (*cb)(void *arg), void *arg)
{
	struct isd_conn *c, *tmp;

	t->shutting_down = true;
	t->shutdown_cb = cb;
	t->shutdown_arg = arg;
	TAILQ_FOREACH_SAFE(c, &t->conns, link, tmp)
		isd_conn_close(c);
	if (TAILQ_EMPTY(&t->conns))
		isd_reactor_defer(t->reactor, &t->shutdown_timer);
}

void
isd_iscsi_tgt_get_stats(struct isd_iscsi_tgt *t, struct isd_iscsi_stats *out)
{
	*out = t->stats;
}

/* Called when a connection has been freed: completes a pending shutdown. */
void
isd_tgt_conn_gone(struct isd_iscsi_tgt *t)
{
	if (t->conn_gone_cb != NULL)
		t->conn_gone_cb(t->conn_gone_arg);
	if (t->shutting_down && t->shutdown_cb != NULL && TAILQ_EMPTY(&t->conns))
		isd_reactor_defer(t->reactor, &t->shutdown_timer);
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
