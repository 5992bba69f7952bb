/*
 * Sessions: the table keyed by TSIH and by (InitiatorName, ISID, target), the
 * I_T nexus it registers with the SCSI device, and its CmdSN window. The
 * table is shared by the connections of every reactor: it is walked and
 * changed under isd_tgt_lock (core.h); a session's own fields belong to its
 * connection's reactor.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "iscsi/core.h"
#include "util/log.h"

struct isd_session *
isd_session_find_tsih(struct isd_iscsi_tgt *t, uint16_t tsih)
{
	struct isd_session *s;

	TAILQ_FOREACH(s, &t->sessions, link) {
		if (s->tsih == tsih)
			return s;
	}
	return NULL;
}

struct isd_session *
isd_session_find(struct isd_iscsi_tgt *t, const char *iname, const uint8_t *isid,
		 const struct isd_tnode *node)
{
	struct isd_session *s;

	TAILQ_FOREACH(s, &t->sessions, link) {
		if (s->node == node && memcmp(s->isid, isid, 6) == 0 &&
		    strcasecmp(s->iname, iname) == 0)
			return s;
	}
	return NULL;
}

static uint16_t
alloc_tsih(struct isd_iscsi_tgt *t)
{
	/* at most 65535 sessions can exist, so this terminates while any TSIH is free */
	for (int i = 0; i < 65536; i++) {
		uint16_t tsih = t->next_tsih++;

		if (tsih != 0 && isd_session_find_tsih(t, tsih) == NULL)
			return tsih;
	}
	return 0;
}

static void
hex_isid(const uint8_t *isid, char *out, size_t cap)
{
	snprintf(out, cap, "%02x%02x%02x%02x%02x%02x", isid[0], isid[1], isid[2], isid[3],
		 isid[4], isid[5]);
}

int
isd_session_create(struct isd_iscsi_tgt *t, struct isd_conn *c, struct isd_login *l,
		   struct isd_session **out)
{
	struct isd_session *s;
	char isid[16];
	uint16_t tpgt;

	s = calloc(1, sizeof(*s));
	if (s == NULL)
		return -ENOMEM;
	s->tsih = alloc_tsih(t);
	if (s->tsih == 0) {
		free(s);
		return -ENOSPC;
	}
	s->tgt = t;
	s->node = l->node;
	s->type = l->type;
	snprintf(s->iname, sizeof(s->iname), "%s", l->iname);
	memcpy(s->isid, l->isid, 6);
	s->conn = c;
	s->exp_cmdsn = l->cmdsn;
	s->login_ns = isd_now_ns();     /* created by the final Login Response */
	if (s->node != NULL)
		s->queue_depth = s->node->queue_depth ? s->node->queue_depth
						      : ISD_DEFAULT_QUEUE_DEPTH;
	else
		s->queue_depth = ISD_DISCOVERY_QUEUE_DEPTH;
	s->max_cmdsn = s->exp_cmdsn + s->queue_depth - 1;
	TAILQ_INIT(&s->held);

	if (s->node != NULL) {
		tpgt = c->info.tpgt ? c->info.tpgt : s->node->tpgt;
		hex_isid(s->isid, isid, sizeof(isid));
		snprintf(s->nexus.initiator_port, sizeof(s->nexus.initiator_port), "%s,i,0x%s",
			 s->iname, isid);
		snprintf(s->nexus.target_port, sizeof(s->nexus.target_port), "%s,t,0x%04x",
			 s->node->name, tpgt);
		s->nexus.rel_tgt_port_id = tpgt;
		s->nexus.id = t->next_nexus_id++;
	}
	TAILQ_INSERT_TAIL(&t->sessions, s, link);
	s->in_table = true;
	isd_stat_inc(&t->stats.sessions);
	*out = s;
	return 0;
}

/*
 * Takes the session out of the table (it can no longer be found by a login).
 * in_table is the table's, not the session's: a reinstating login on another
 * reactor clears it, so it is read under the lock too.
 */
void
isd_session_unlink_locked(struct isd_session *s)
{
	if (!s->in_table)
		return;
	TAILQ_REMOVE(&s->tgt->sessions, s, link);
	s->in_table = false;
}

void
isd_session_unlink(struct isd_session *s)
{
	isd_tgt_lock(s->tgt);
	isd_session_unlink_locked(s);
	isd_tgt_unlock(s->tgt);
}

void
isd_session_nexus_end(struct isd_session *s)
{
	if (s->nexus_added && s->node != NULL && s->node->dev != NULL)
		isd_scsi_nexus_remove(s->node->dev, &s->nexus);
	s->nexus_added = false;
}

void
isd_session_destroy(struct isd_session *s)
{
	isd_session_unlink(s);
	isd_session_nexus_end(s);
	isd_stat_dec(&s->tgt->stats.sessions);
	free(s);
}

/*
 * MaxCmdSN = ExpCmdSN + depth - 1 - (commands still alive), never moving
 * backwards (initiators ignore a shrinking MaxCmdSN, RFC 7143 §4.2.2.1). Every
 * advertised slot is consumed once, so at most `depth` non-immediate commands
 * exist at any time: this is what bounds the per-session task memory.
 */
void
isd_session_update_window(struct isd_session *s)
{
	uint32_t used = s->active_cmds < s->queue_depth ? s->active_cmds : s->queue_depth;
	uint32_t fresh = s->exp_cmdsn + s->queue_depth - 1 - used;

	if (sn_gt(fresh, s->max_cmdsn))
		s->max_cmdsn = fresh;
}
