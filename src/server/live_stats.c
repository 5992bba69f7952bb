/*
 * Reading what a running target does (live.h "statistics", "sessions"): the
 * core's sessions and each node's SCSI device counters, looked up by name
 * every time so that targets added or removed while running need nothing here.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "bstore/bstore.h"
#include "scsi/scsi.h"
#include "server/live.h"
#include "server/running_int.h"

struct sess_walk {
	void (*fn)(void *arg, const struct isd_live_session *s);
	void *arg;
};

static void
sess_one(void *arg, const struct isd_iscsi_session_info *si)
{
	struct sess_walk *w = arg;
	struct isd_live_session ls;
	const struct isd_params *p = &si->params;

	memset(&ls, 0, sizeof(ls));
	ls.tsih = si->tsih;
	ls.discovery = si->discovery;
	snprintf(ls.target, sizeof(ls.target), "%s", si->target);
	snprintf(ls.initiator, sizeof(ls.initiator), "%s", si->initiator);
	snprintf(ls.isid, sizeof(ls.isid), "%02x%02x%02x%02x%02x%02x", si->isid[0], si->isid[1],
		 si->isid[2], si->isid[3], si->isid[4], si->isid[5]);
	ls.transport = si->conn.transport;
	snprintf(ls.peer_addr, sizeof(ls.peer_addr), "%s", si->conn.peer_addr);
	ls.peer_port = si->conn.peer_port;
	snprintf(ls.local_addr, sizeof(ls.local_addr), "%s", si->conn.local_addr);
	ls.local_port = si->conn.local_port;
	ls.cid = si->cid;
	ls.age_ms = si->age_ms;
	ls.in_flight = si->in_flight;
	ls.max_recv_dsl = si->max_recv_dsl;
	ls.max_xmit_dsl = si->max_xmit_dsl;
	ls.max_burst_length = p->max_burst_length;
	ls.first_burst_length = p->first_burst_length;
	ls.immediate_data = p->immediate_data;
	ls.initial_r2t = p->initial_r2t;
	ls.header_digest = p->header_digest;
	ls.data_digest = p->data_digest;
	ls.queue_depth = si->queue_depth;
	ls.io = si->io;
	if (w->fn != NULL)
		w->fn(w->arg, &ls);
}

int
isd_live_sessions(struct isd_target_running *rt,
		  void (*fn)(void *arg, const struct isd_live_session *s), void *arg)
{
	struct sess_walk w = {.fn = fn, .arg = arg};

	return isd_iscsi_tgt_for_each_session(isd_target_core(rt), sess_one, &w);
}

static struct isd_scsi_dev *
node_dev(struct isd_target_running *rt, const char *target)
{
	struct isd_iscsi_tgt *core = isd_target_core(rt);
	struct isd_tnode *n;

	if (core == NULL || target == NULL)
		return NULL;
	n = isd_iscsi_tgt_find_node(core, target);
	return n != NULL ? n->dev : NULL;
}

/* Where the LU's store stands with its cluster lock (enum isd_bstore_lock). */
static uint8_t
lun_lock(struct isd_target_running *rt, const char *target, uint32_t lun)
{
	struct isd_target_node *n;

	if (lun >= ISD_SCSI_MAX_LUNS)
		return ISD_BSTORE_LOCK_NONE;
	TAILQ_FOREACH(n, &rt->nodes, link) {
		if (strcmp(n->tn.name, target) == 0)
			return n->bs[lun] != NULL ? isd_bstore_lock_state(n->bs[lun]) : ISD_BSTORE_LOCK_NONE;
	}
	return ISD_BSTORE_LOCK_NONE;
}

static void
lun_spec(struct isd_target_running *rt, const char *target, uint32_t lun, char *buf, size_t len)
{
	const struct isd_target_cfg *cfg = isd_target_running_cfg(rt);

	for (int i = 0; i < cfg->node_count; i++) {
		const struct isd_target_node_cfg *nc = &cfg->nodes[i];

		if (strcasecmp(nc->name, target) != 0)
			continue;
		for (int j = 0; j < nc->lun_count; j++)
			if (nc->luns[j].number == lun)
				snprintf(buf, len, "%s", nc->luns[j].spec);
	}
}

int
isd_live_lun_stats(struct isd_target_running *rt, const char *target,
		   struct isd_live_lun_stats *out, int max)
{
	struct isd_scsi_dev *dev = node_dev(rt, target);
	uint32_t luns[ISD_SCSI_MAX_LUNS];
	int n, k = 0;

	if (dev == NULL)
		return -ENOENT;
	n = isd_scsi_dev_luns(dev, luns, ISD_SCSI_MAX_LUNS);
	for (int i = 0; i < n && i < ISD_SCSI_MAX_LUNS && k < max; i++) {
		struct isd_scsi_lu_info li;

		if (isd_scsi_dev_lu_info(dev, luns[i], &li) < 0)
			continue;
		memset(&out[k], 0, sizeof(out[k]));
		out[k].lun = li.lun;
		out[k].size = li.size;
		out[k].block_size = li.block_size;
		out[k].read_only = li.read_only;
		out[k].alua_group = li.alua_group;
		out[k].alua_state = li.alua_state;
		out[k].lock = lun_lock(rt, target, li.lun);
		/* the backing store as the running model names it */
		out[k].spec[0] = '\0';
		lun_spec(rt, target, li.lun, out[k].spec, sizeof(out[k].spec));
		out[k].io = li.io;
		k++;
	}
	return n;
}

int
isd_live_target_stats(struct isd_target_running *rt, const char *target,
		      struct isd_io_stats *out)
{
	struct isd_scsi_dev *dev = node_dev(rt, target);

	if (dev == NULL)
		return -ENOENT;
	isd_scsi_dev_io_stats(dev, out);
	return 0;
}

int
isd_live_target_shared_cmds(struct isd_target_running *rt, const char *target, uint64_t *out)
{
	struct isd_scsi_dev *dev = node_dev(rt, target);

	if (dev == NULL)
		return -ENOENT;
	*out = isd_scsi_dev_shared_cmds(dev);
	return 0;
}
