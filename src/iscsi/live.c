/*
 * What the layer above changes while the instance runs: nodes taken out,
 * sessions asked to log out, connections dropped, the settings for what
 * comes next. A change touches only the sessions it names.
 *
 * These are control methods: they run on reactor 0 with every other reactor
 * paused (isd_reactor_group_pause, src/server), which is what lets them
 * change nodes and cfg, and read and act on connections of other reactors
 * (their state, their login), without a lock. Closes still go through
 * isd_conn_close_any, which posts them to a connection's own reactor to run
 * after the resume. isd_iscsi_tgt_node_busy is the exception: it is also
 * asked from a timer on reactor 0 while the others run, and takes the table
 * lock.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "iscsi/core.h"
#include "util/log.h"

struct isd_iscsi_cfg *
isd_iscsi_tgt_cfg(struct isd_iscsi_tgt *t)
{
	return &t->cfg;
}

void
isd_iscsi_tgt_set_conn_gone(struct isd_iscsi_tgt *t, void (*cb)(void *arg), void *arg)
{
	t->conn_gone_cb = cb;
	t->conn_gone_arg = arg;
}

int
isd_iscsi_tgt_remove_node(struct isd_iscsi_tgt *t, struct isd_tnode *node)
{
	struct isd_tnode *n;
	struct isd_conn *c, *tmp;

	TAILQ_FOREACH(n, &t->nodes, link) {
		if (n == node)
			break;
	}
	if (n == NULL || node->removed)
		return -ENOENT;
	TAILQ_REMOVE(&t->nodes, node, link);
	node->removed = true;
	/* a login past its first request holds the node: it cannot finish now (the
	 * others are paused: their connections' state holds still; one of this
	 * reactor's is closed in place and may be freed, hence the safe walk) */
	TAILQ_FOREACH_SAFE(c, &t->conns, link, tmp) {
		if (c->state == ISD_CONN_LOGIN && c->sess == NULL && c->login != NULL &&
		    c->login->node == node)
			isd_conn_close_any(c);
	}
	return 0;
}

int
isd_iscsi_tgt_node_sessions(struct isd_iscsi_tgt *t, const struct isd_tnode *node)
{
	const struct isd_session *s;
	int n = 0;

	isd_tgt_lock(t);
	TAILQ_FOREACH(s, &t->sessions, link) {
		if (s->node == node)
			n++;
	}
	isd_tgt_unlock(t);
	return n;
}

bool
isd_iscsi_tgt_node_busy(struct isd_iscsi_tgt *t, const struct isd_tnode *node)
{
	const struct isd_conn *c;
	bool busy = false;

	/* c->node, not c->sess or c->login: those are c's reactor's, this may run
	 * while it does (reap_removed in src/server) */
	isd_tgt_lock(t);
	TAILQ_FOREACH(c, &t->conns, link) {
		if (node != NULL && c->node == node) {
			busy = true;
			break;
		}
	}
	isd_tgt_unlock(t);
	return busy;
}

/* Parameter3 of the logout request: whole seconds, at least 1 (0 would mean "now"). */
static uint16_t
logout_secs(const struct isd_iscsi_tgt *t)
{
	uint32_t s = (t->cfg.logout_timeout_ms + 999) / 1000;

	if (s == 0)
		s = 1;
	return s > 0xffff ? 0xffff : (uint16_t)s;
}

/* Sends on s's connection from this thread: relies on its reactor being paused. */
static int
session_logout(struct isd_session *s)
{
	struct isd_conn *c = s->conn;
	struct isd_iscsi_tgt *t = s->tgt;
	struct isd_pdu *pdu;

	if (c == NULL || c->state != ISD_CONN_FFP)
		return -ENOENT;
	if (c->logout_requested)
		return 0;
	pdu = isd_conn_pdu_alloc(c, ISD_OP_ASYNC_MSG, 0);
	if (pdu == NULL)
		return -ENOMEM;  /* the connection is closed already */
	c->logout_requested = true;
	pdu->bhs[1] = ISD_BHS_F;
	/* a message no request asked for: ITT reserved (RFC 7143 §11.9) */
	put_be32(pdu->bhs + 16, ISD_RSVD_TAG);
	isd_conn_fill_sn(c, pdu->bhs, true);
	pdu->bhs[36] = ISD_ASYNC_LOGOUT_REQUEST;
	put_be16(pdu->bhs + 42, logout_secs(t));
	if (isd_conn_send(c, pdu) < 0)
		return 0;        /* closed by the failed send: the request is granted */
	isd_reactor_timer_start(c->reactor, &c->logout_timer,
				t->cfg.logout_timeout_ms > 0 ? t->cfg.logout_timeout_ms : 1000);
	isd_log_dbg("iscsi", "session TSIH %u: logout requested", s->tsih);
	return 0;
}

int
isd_iscsi_tgt_node_logout(struct isd_iscsi_tgt *t, const struct isd_tnode *node)
{
	struct isd_session *s, *tmp;
	int n = 0;

	/* a failed send closes a connection, which unlinks its session: walk safely */
	TAILQ_FOREACH_SAFE(s, &t->sessions, link, tmp) {
		if (s->node == node && session_logout(s) == 0)
			n++;
	}
	return n;
}

int
isd_iscsi_tgt_session_logout(struct isd_iscsi_tgt *t, uint16_t tsih)
{
	struct isd_session *s = isd_session_find_tsih(t, tsih);

	if (s == NULL)
		return -ENOENT;
	return session_logout(s);
}

int
isd_iscsi_tgt_conn_drop(struct isd_iscsi_tgt *t, uint16_t tsih, uint16_t cid)
{
	struct isd_session *s;
	struct isd_conn *c = NULL;

	isd_tgt_lock(t);
	s = isd_session_find_tsih(t, tsih);
	if (s != NULL && s->conn != NULL && s->conn->cid == cid && isd_conn_tryget(s->conn))
		c = s->conn;
	isd_tgt_unlock(t);
	if (c == NULL)
		return -ENOENT;
	isd_conn_close_any(c);
	isd_conn_put(c);
	return 0;
}

void
isd_live_logout_timeout(void *arg)
{
	struct isd_conn *c = arg;

	isd_log_info("iscsi: session TSIH %u did not log out in time; closing it",
		     c->sess != NULL ? c->sess->tsih : 0);
	isd_conn_close(c);
}
