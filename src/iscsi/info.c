/*
 * What the layers above may read of the running core: its sessions and nodes.
 * Control methods: they run with every other reactor paused
 * (isd_reactor_group_pause), which is what makes reading the sessions of
 * other reactors, their connections' parameters and I/O figures, safe. The
 * table lock would not cover those, and fn may call back into the core.
 */
#include <stdio.h>
#include <string.h>

#include "iscsi/core.h"

static void
session_info(const struct isd_session *s, uint64_t now, struct isd_iscsi_session_info *si)
{
	const struct isd_conn *c = s->conn;

	memset(si, 0, sizeof(*si));
	si->tsih = s->tsih;
	si->discovery = s->type == ISD_SESSION_DISCOVERY;
	if (s->node != NULL)
		snprintf(si->target, sizeof(si->target), "%s", s->node->name);
	snprintf(si->initiator, sizeof(si->initiator), "%s", s->iname);
	memcpy(si->isid, s->isid, sizeof(si->isid));
	si->age_ms = now > s->login_ns ? (now - s->login_ns) / 1000000 : 0;
	si->in_flight = s->active_cmds + s->active_imm;
	si->queue_depth = s->queue_depth;
	si->io = s->io;
	if (c != NULL) {
		si->cid = c->cid;
		si->conn = c->info;
		si->params = c->params;
		si->max_recv_dsl = isd_conn_rx_dsl(c);
		si->max_xmit_dsl = isd_conn_tx_dsl(c);
	}
}

int
isd_iscsi_tgt_for_each_session(struct isd_iscsi_tgt *t,
			       void (*fn)(void *arg, const struct isd_iscsi_session_info *si),
			       void *arg)
{
	struct isd_iscsi_session_info si;
	struct isd_session *s;
	uint64_t now = isd_now_ns();
	int n = 0;

	if (t == NULL)
		return 0;
	TAILQ_FOREACH(s, &t->sessions, link) {
		if (fn != NULL) {
			session_info(s, now, &si);
			fn(arg, &si);
		}
		n++;
	}
	return n;
}

int
isd_iscsi_tgt_for_each_node(struct isd_iscsi_tgt *t,
			    void (*fn)(void *arg, struct isd_tnode *node), void *arg)
{
	struct isd_tnode *node;
	int n = 0;

	if (t == NULL)
		return 0;
	TAILQ_FOREACH(node, &t->nodes, link) {
		if (fn != NULL)
			fn(arg, node);
		n++;
	}
	return n;
}
