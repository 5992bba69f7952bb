/*
 * Building the running target from a validated model: the iSCSI core, its
 * portals, then per target the backing stores, the SCSI device and the node.
 * Portals come before the stores because a busy port is the likeliest
 * failure and should not wait for a large RAM LUN to be allocated; no
 * connection is accepted before the reactor runs, by which time every node
 * exists. Teardown runs in the reverse order.
 */
#include "server/running_int.h"

#include <errno.h>
#include <grp.h>
#include <stdatomic.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <unistd.h>

#include "bstore/bstore.h"
#include "dm/dm_kind.h"
#include "iscsi/iscsi.h"
#include "reactor/reactor.h"
#include "scsi/scsi.h"
#include "server/live.h"

/* FNV-1a: a stable, dependency-free hash so that serials and NAA ids survive restarts. */
static uint64_t
fnv1a(uint64_t h, const void *data, size_t len)
{
	const uint8_t *p = data;

	for (size_t i = 0; i < len; i++) {
		h ^= p[i];
		h *= 0x100000001b3ULL;
	}
	return h;
}

static uint64_t
lun_hash(const char *target, uint32_t lun)
{
	uint64_t h = 0xcbf29ce484222325ULL;
	uint8_t b[4] = {(uint8_t)(lun >> 24), (uint8_t)(lun >> 16), (uint8_t)(lun >> 8),
			(uint8_t)lun};

	h = fnv1a(h, target, strlen(target));
	h = fnv1a(h, b, sizeof(b));
	/* splitmix64's finaliser: neighbouring LUNs get unrelated-looking serials */
	h = (h ^ (h >> 30)) * 0xbf58476d1ce4e5b9ULL;
	h = (h ^ (h >> 27)) * 0x94d049bb133111ebULL;
	return h ^ (h >> 31);
}

static void
human_size(uint64_t v, char *buf, size_t len)
{
	static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
	double d = (double)v;
	int u = 0;

	while (d >= 1024.0 && u < 5) {
		d /= 1024.0;
		u++;
	}
	if (u == 0)
		snprintf(buf, len, "%llu B", (unsigned long long)v);
	else
		snprintf(buf, len, "%.*f %s", d == (double)(uint64_t)d ? 0 : 2, d, units[u]);
}

static void
apply_neg(struct isd_key_policy *pol, uint32_t *qd, const struct isd_target_neg_cfg *n)
{
	if (n->max_recv_data_segment_length != -1)
		pol->max_recv_dsl = (uint32_t)n->max_recv_data_segment_length;
	if (n->max_burst_length != -1)
		pol->max_burst_length = (uint32_t)n->max_burst_length;
	if (n->first_burst_length != -1)
		pol->first_burst_length = (uint32_t)n->first_burst_length;
	if (n->max_outstanding_r2t != -1)
		pol->max_outstanding_r2t = (uint32_t)n->max_outstanding_r2t;
	if (n->immediate_data != -1)
		pol->immediate_data = n->immediate_data;
	if (n->initial_r2t != -1)
		pol->initial_r2t = n->initial_r2t;
	if (n->header_digest != -1)
		pol->allow_header_digest = n->header_digest != ISD_TARGET_DIGEST_NONE;
	if (n->data_digest != -1)
		pol->allow_data_digest = n->data_digest != ISD_TARGET_DIGEST_NONE;
	if (n->header_digest == ISD_TARGET_DIGEST_PREFER ||
	    n->data_digest == ISD_TARGET_DIGEST_PREFER)
		pol->prefer_digest = true;
	if (qd != NULL && n->queue_depth != -1)
		*qd = (uint32_t)n->queue_depth;
}

static void
unregister_base(struct isd_target_running *rt, const void *base)
{
	int j = 0;

	for (int i = 0; i < rt->registered_count; i++) {
		if (rt->registered[i].base == base)
			rt->registered[i].kind->unregister_memory(rt->registered[i].base);
		else
			rt->registered[j++] = rt->registered[i];
	}
	rt->registered_count = j;
}

bool
isd_target_mem_registered(struct isd_target_running *rt, const void *base, bool *read_only)
{
	for (int i = 0; i < rt->registered_count; i++) {
		if (rt->registered[i].base == base) {
			if (read_only != NULL)
				*read_only = rt->registered[i].read_only;
			return true;
		}
	}
	return false;
}

void
isd_target_lun_gone(void *arg, struct isd_bstore *bs)
{
	struct isd_target_running *rt = arg;

	/* the adapter must let go of the memory before the store unmaps it */
	if (bs != NULL && bs->mem_base != NULL)
		unregister_base(rt, bs->mem_base);
}

/*
 * A store saw its size change outside iserd (an RBD image resized with `rbd
 * resize`): the LU takes the new capacity and every nexus gets CAPACITY DATA
 * HAS CHANGED, as after lun.resize.
 */
static void
lun_size_changed(void *arg, struct isd_bstore *bs)
{
	struct isd_target_node *n = arg;

	for (uint32_t i = 0; i < ISD_SCSI_MAX_LUNS; i++) {
		if (n->bs[i] == bs) {
			isd_scsi_lu_capacity_changed(n->tn.dev, i);
			isd_log_info("target %s: LUN %u: the store is now %llu bytes", n->tn.name,
				     i, (unsigned long long)bs->size);
			return;
		}
	}
}

/*
 * The ALUA state that follows a store's cluster lock: the gateway holding it
 * is the one optimized path; elsewhere it is the target's alua_peer_state
 * (0: active/non-optimized). A fenced gateway is unavailable: its Ceph client
 * can never write again, so no path through it may be used.
 */
static enum isd_scsi_alua_state
lun_lock_alua_state(const struct isd_target_node *n, const struct isd_bstore *bs)
{
	if (isd_bstore_lock_state(bs) == ISD_BSTORE_LOCK_OWNER)
		return ISD_ALUA_ACTIVE_OPTIMIZED;
	if (isd_bstore_lock_state(bs) == ISD_BSTORE_LOCK_FENCED)
		return ISD_ALUA_UNAVAILABLE;
	return n->alua_peer_state != 0 ? (enum isd_scsi_alua_state)n->alua_peer_state
				       : ISD_ALUA_ACTIVE_NON_OPTIMIZED;
}

/*
 * A store took or lost its cluster lock: the LU's ALUA state follows, through
 * the live model so that config.save keeps it and every nexus gets ASYMMETRIC
 * ACCESS STATE CHANGED.
 */
static void
lun_lock_changed(void *arg, struct isd_bstore *bs)
{
	struct isd_target_node *n = arg;
	char err[256] = "";

	if (n->alua_group == 0 || n->rt == NULL)
		return;
	for (uint32_t i = 0; i < ISD_SCSI_MAX_LUNS; i++) {
		if (n->bs[i] != bs)
			continue;
		if (isd_live_lun_set_alua_state(n->rt, n->tn.name, i,
						(int)lun_lock_alua_state(n, bs), err,
						sizeof(err)) < 0)
			isd_log_err("target %s: LUN %u: cannot follow the lock: %s", n->tn.name, i,
				    err);
		return;
	}
}

int
isd_target_node_alua(const struct isd_target_node_cfg *nc, struct isd_scsi_dev *dev, char *err,
		     size_t errlen)
{
	struct isd_scsi_alua_cfg a;
	int rc;

	memset(&a, 0, sizeof(a));
	a.group = nc->alua_group;
	/* the relative target port id is the TPGT (iSCSI session.c) */
	a.rtpi = nc->tpgt == -1 ? 1 : (uint16_t)nc->tpgt;
	/* what Linux waits by default (scsi_dh_alua) for a transitioning path; a
	 * store following a cluster lock hands it over well within that */
	a.transition_secs = 60;
	a.peer_state = nc->alua_peer_state;
	for (int i = 0; i < nc->alua_peer_count && i < ISD_SCSI_ALUA_MAX_PEERS; i++) {
		a.peers[i].group = nc->alua_peers[i].group;
		a.peers[i].rtpi = nc->alua_peers[i].rtpi;
		a.npeers++;
	}
	rc = isd_scsi_dev_set_alua(dev, &a);
	if (rc < 0)
		isd_target_errf(err, errlen, "%s: bad ALUA groups (a peer is the own group or "
				"listed twice)", nc->origin);
	else if (a.group != 0)
		isd_log_info("  ALUA target port group %u (port %u), %u peer group%s", a.group,
			     a.rtpi, a.npeers, a.npeers == 1 ? "" : "s");
	return rc;
}

int
isd_target_lun_open(struct isd_target_running *rt, const struct isd_target_node_cfg *nc,
		    const struct isd_target_lun_cfg *l, struct isd_target_node *n, char *err,
		    size_t errlen)
{
	struct isd_scsi_dev *dev = n->tn.dev;
	struct isd_scsi_lu_cfg lu;
	struct isd_bstore *bs;
	char why[256] = "", size[32];
	uint64_t h = lun_hash(nc->name, l->number);
	int rc;

	struct isd_bstore_spec *ps;

	/* the reason a path cannot be used, in the words of the OS, before the store's own */
	rc = isd_target_lun_check_path(l, err, errlen);
	if (rc < 0)
		return rc;
	ps = malloc(sizeof(*ps));
	if (ps == NULL) {
		isd_target_errf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	isd_target_lun_bspec(l, ps);
	rc = isd_bstore_open_spec(rt->r, ps, &bs, why, sizeof(why));
	free(ps);
	if (rc < 0) {
		isd_target_errf(err, errlen, "%s: %s", l->origin, why[0] ? why : strerror(-rc));
		return rc;
	}
	memset(&lu, 0, sizeof(lu));
	lu.bstore = bs;
	lu.block_size = l->block_size ? l->block_size : 512;
	lu.physical_block_size = l->physical_block_size;
	if (bs->size < lu.block_size || bs->size % lu.block_size != 0) {
		isd_target_errf(
		    err, errlen,
		    "%s: size %llu bytes is not a non-zero multiple of the %u-byte block "
		    "size",
		    l->origin, (unsigned long long)bs->size, lu.block_size);
		rc = -EINVAL;
		goto err_bs;
	}
	if (bs->min_block > 1 && lu.block_size % bs->min_block != 0) {
		isd_target_errf(err, errlen,
				"%s: direct I/O on %s moves whole %u-byte blocks: give a block_size "
				"of %u (or more), or open it ,buffered",
				l->origin, bs->desc, bs->min_block, bs->min_block);
		rc = -EINVAL;
		goto err_bs;
	}
	for (unsigned k = 0; k < isd_dm_kind_count && bs->mem_base != NULL; k++) {
		/*
		 * Zero copy (iSER): the LUN memory itself is registered once with each
		 * datamover that moves data straight to and from memory, so RDMA Writes
		 * and Reads go to and from it.
		 */
		const struct isd_dm_kind *kind = isd_dm_kinds[k];

		if (!rt->kind_open[k] || kind->register_memory == NULL)
			continue;
		rc = isd_target_mem_register(rt, kind, bs, l->read_only || bs->read_only, l->origin,
					     err, errlen);
		if (rc < 0)
			goto err_bs;
	}
	lu.read_only = l->read_only || bs->read_only;
	snprintf(lu.vendor, sizeof(lu.vendor), "%s", l->vendor[0] ? l->vendor : "ISERD");
	snprintf(lu.product, sizeof(lu.product), "%s",
		 l->product[0] ? l->product : l->kind->product);
	snprintf(lu.revision, sizeof(lu.revision), "%.4s", ISD_VERSION);
	if (l->serial[0])
		snprintf(lu.serial, sizeof(lu.serial), "%s", l->serial);
	else
		snprintf(lu.serial, sizeof(lu.serial), "%016llx", (unsigned long long)h);
	lu.naa_id = h & ((1ULL << 60) - 1);
	/* gateways exporting one LU as one multipath device give its identity */
	if (l->naa[0] != '\0')
		isd_target_naa_split(l->naa, &lu.naa_id, &lu.naa_ext, &lu.naa_ext_set);
	lu.alua_state = l->alua_state_set ? l->alua_state : ISD_ALUA_ACTIVE_OPTIMIZED;
	/* a store under a cluster lock: the lock decides, whatever was saved */
	if (isd_bstore_lock_state(bs) != ISD_BSTORE_LOCK_NONE && nc->alua_group != 0)
		lu.alua_state = lun_lock_alua_state(n, bs);
	lu.write_cache = true;
	/* the SCSI layer also requires bs->can_discard; a kind that is not thin
	 * by nature (a disk) is thin exactly when it can discard */
	lu.thin = l->kind->thin || bs->can_discard;
	rc = isd_scsi_dev_add_lu(dev, l->number, &lu);
	if (rc < 0) {
		isd_target_errf(err, errlen, "%s: cannot add LUN %u: %s", l->origin, l->number,
				strerror(-rc));
		goto err_bs;
	}
	n->bs[l->number] = bs;
	bs->size_changed = lun_size_changed;
	bs->size_changed_arg = n;
	bs->lock_changed = lun_lock_changed;
	bs->lock_changed_arg = n;
	human_size(bs->size, size, sizeof(size));
	isd_log_info("  LUN %u: %s, %s, %u-byte blocks (%u physical)%s, %s %s, serial %s%s%s",
		     l->number, l->spec, size, lu.block_size,
		     lu.physical_block_size ? lu.physical_block_size : lu.block_size,
		     lu.read_only ? ", read-only" : "", lu.vendor, lu.product, lu.serial,
		     nc->alua_group != 0 ? ", ALUA " : "",
		     nc->alua_group != 0 ? isd_scsi_alua_state_name(lu.alua_state) : "");
	return 0;

err_bs:
	/* a LU that failed to be added did not take the store over */
	if (bs->mem_base != NULL)
		unregister_base(rt, bs->mem_base);
	isd_bstore_close(bs);
	return rc;
}

int
isd_target_node_policy(const struct isd_target_cfg *cfg, const struct isd_target_node_cfg *nc,
		       struct isd_tnode *tn, char *err, size_t errlen)
{
	tn->queue_depth = ISD_TARGET_QUEUE_DEPTH;
	isd_key_policy_init(&tn->policy);
	apply_neg(&tn->policy, &tn->queue_depth, &cfg->neg);
	apply_neg(&tn->policy, &tn->queue_depth, &nc->neg);
	/* a datamover that sizes receives by the CmdSN window (iSER: a receive for
	 * every command within its per-connection receive memory, docs/iser.md
	 * "Memory and limits") says what TargetRecvDataSegmentLength to offer */
	for (unsigned k = 0; k < isd_dm_kind_count; k++) {
		if (isd_dm_kinds[k]->target_recv_dsl != NULL)
			tn->policy.target_recv_dsl = isd_dm_kinds[k]->target_recv_dsl(tn->queue_depth);
	}
	if (tn->policy.first_burst_length > tn->policy.max_burst_length) {
		isd_target_errf(err, errlen,
				"%s: first_burst_length %u exceeds max_burst_length %u", nc->origin,
				tn->policy.first_burst_length, tn->policy.max_burst_length);
		return -EINVAL;
	}
	isd_log_dbg("target",
		    "%s: MaxRecvDataSegmentLength %u, MaxBurstLength %u, FirstBurstLength %u, "
		    "ImmediateData %d, InitialR2T %d, MaxOutstandingR2T %u, digests hdr %d data %d "
		    "prefer %d, queue depth %u",
		    nc->name, tn->policy.max_recv_dsl, tn->policy.max_burst_length,
		    tn->policy.first_burst_length, tn->policy.immediate_data,
		    tn->policy.initial_r2t, tn->policy.max_outstanding_r2t,
		    tn->policy.allow_header_digest, tn->policy.allow_data_digest,
		    tn->policy.prefer_digest, tn->queue_depth);
	return 0;
}

struct isd_target_node *
isd_target_node_find(struct isd_target_running *rt, const char *name)
{
	struct isd_target_node *n;

	TAILQ_FOREACH(n, &rt->nodes, link) {
		if (strcasecmp(n->tn.name, name) == 0)
			return n;
	}
	return NULL;
}

void
isd_target_node_free(struct isd_target_running *rt, struct isd_target_node *n)
{
	struct isd_tnode *tn = &n->tn;

	/* deregister before the stores that own the memory are closed */
	for (int i = 0; i < ISD_SCSI_MAX_LUNS; i++) {
		if (n->bs[i] != NULL && n->bs[i]->mem_base != NULL)
			unregister_base(rt, n->bs[i]->mem_base);
	}
	if (tn->dev != NULL)
		isd_scsi_dev_destroy(tn->dev);
	for (int j = 0; j < tn->acl_count; j++)
		free(tn->acl[j]);
	free(tn->acl);
	explicit_bzero(&tn->auth, sizeof(tn->auth));
	if (tn->ini_auth != NULL)
		explicit_bzero(tn->ini_auth, (size_t)tn->ini_auth_count * sizeof(*tn->ini_auth));
	free(tn->ini_auth);
	isd_target_node_unbind(tn);
	free(n);
}

int
isd_target_node_build(struct isd_target_running *rt, const struct isd_target_cfg *cfg,
		      const struct isd_target_node_cfg *nc, struct isd_target_node **out,
		      char *err, size_t errlen)
{
	struct isd_target_node *n;
	struct isd_tnode *tn;
	int rc;

	n = calloc(1, sizeof(*n));
	if (n == NULL)
		goto err_nomem;
	tn = &n->tn;
	snprintf(tn->name, sizeof(tn->name), "%s", nc->name);
	snprintf(tn->alias, sizeof(tn->alias), "%s", nc->alias);
	tn->tpgt = nc->tpgt == -1 ? 1 : (uint16_t)nc->tpgt;
	n->rt = rt;
	n->alua_group = nc->alua_group;
	n->alua_peer_state = nc->alua_peer_state;
	tn->auth = nc->auth;
	rc = isd_target_node_policy(cfg, nc, tn, err, errlen);
	if (rc < 0)
		goto err_free;
	if (nc->acl_count > 0) {
		tn->acl = calloc((size_t)nc->acl_count, sizeof(char *));
		if (tn->acl == NULL)
			goto err_nomem;
		for (int i = 0; i < nc->acl_count; i++) {
			tn->acl[i] = strdup(nc->acl[i]);
			if (tn->acl[i] == NULL)
				goto err_nomem;
			tn->acl_count++;
		}
	}
	if (nc->ini_count > 0) {
		tn->ini_auth = calloc((size_t)nc->ini_count, sizeof(*tn->ini_auth));
		if (tn->ini_auth == NULL)
			goto err_nomem;
		for (int i = 0; i < nc->ini_count; i++) {
			snprintf(tn->ini_auth[i].name, sizeof(tn->ini_auth[i].name), "%s",
				 nc->ini[i].name);
			tn->ini_auth[i].auth = nc->ini[i].auth;
		}
		tn->ini_auth_count = nc->ini_count;
	}
	rc = isd_scsi_dev_create(nc->name, &tn->dev);
	if (rc < 0) {
		isd_target_errf(err, errlen, "%s: cannot create the SCSI device: %s", nc->origin,
				strerror(-rc));
		goto err_free;
	}
	isd_log_info("target %s%s%s%s, tpgt %u, %d LUN%s%s%s", nc->name, nc->alias[0] ? " (" : "",
		     nc->alias, nc->alias[0] ? ")" : "", tn->tpgt, nc->lun_count,
		     nc->lun_count == 1 ? "" : "s", nc->auth.require_chap ? ", CHAP" : "",
		     nc->auth.mutual ? " (mutual)" : "");
	for (int i = 0; i < nc->acl_count; i++) {
		const struct isd_target_ini_cfg *ic = NULL;

		for (int j = 0; j < nc->ini_count; j++)
			if (strcasecmp(nc->ini[j].name, nc->acl[i]) == 0)
				ic = &nc->ini[j];
		isd_log_info("  allow %s%s%s", nc->acl[i],
			     ic && ic->auth.require_chap ? ", own CHAP" : "",
			     ic && ic->auth.mutual ? ", own mutual CHAP" : "");
	}
	rc = isd_target_node_alua(nc, tn->dev, err, errlen);
	if (rc < 0)
		goto err_free;
	for (int i = 0; i < nc->lun_count; i++) {
		rc = isd_target_lun_open(rt, nc, &nc->luns[i], n, err, errlen);
		if (rc < 0)
			goto err_free;
	}
	rc = isd_target_node_bind(rt, tn, (const char *const *)nc->portals, nc->portal_bind_count,
				  err, errlen);
	if (rc < 0)
		goto err_free;
	rc = isd_iscsi_tgt_add_node(rt->tgt, tn);
	if (rc < 0) {
		isd_target_errf(err, errlen, "%s: cannot register target %s: %s", nc->origin,
				nc->name, strerror(-rc));
		goto err_free;
	}
	TAILQ_INSERT_TAIL(&rt->nodes, n, link);
	if (out != NULL)
		*out = n;
	return 0;

err_nomem:
	isd_target_errf(err, errlen, "out of memory");
	rc = -ENOMEM;
err_free:
	if (n != NULL)
		isd_target_node_free(rt, n);
	return rc;
}

/* Frees what build/open created; valid on a half-built instance. */
static void
teardown(struct isd_target_running *rt, bool core_may_be_busy)
{
	struct isd_target_node *n;

	isd_target_portals_close(rt);
	if (core_may_be_busy) {
		/* connections may still point at the core, the nodes and the devices */
		isd_log_warn("sessions still open at exit; leaving them to the OS");
		return;
	}
	isd_reactor_timer_stop(rt->r, &rt->reap_timer);
	if (rt->tgt != NULL)
		isd_iscsi_tgt_destroy(rt->tgt);
	while ((n = TAILQ_FIRST(&rt->nodes)) != NULL) {
		TAILQ_REMOVE(&rt->nodes, n, link);
		isd_target_node_free(rt, n);
	}
	while ((n = TAILQ_FIRST(&rt->removed)) != NULL) {
		TAILQ_REMOVE(&rt->removed, n, link);
		isd_target_node_free(rt, n);
	}
	isd_target_portals_free(rt);
	/* what no LUN accounts for any more (there should be nothing) */
	for (int i = 0; i < rt->registered_count; i++)
		rt->registered[i].kind->unregister_memory(rt->registered[i].base);
	free(rt->registered);
	isd_target_cfg_fini(&rt->cfg);
	free(rt);
}

static void reap_removed_paused(struct isd_target_running *rt);

/* Frees the removed targets that no connection refers to any more. */
static void
reap_removed(void *arg)
{
	struct isd_target_running *rt = arg;

	atomic_store(&rt->reap_posted, false);
	if (TAILQ_EMPTY(&rt->removed))
		return;
	/* walks the core's connections and frees what they pointed at: the world stops */
	isd_reactor_pause_others(rt->r);
	reap_removed_paused(rt);
	isd_reactor_resume_others(rt->r);
}

static void
reap_removed_paused(struct isd_target_running *rt)
{
	struct isd_target_node *n, *tmp;

	for (n = TAILQ_FIRST(&rt->removed); n != NULL; n = tmp) {
		tmp = TAILQ_NEXT(n, link);
		if (isd_iscsi_tgt_node_busy(rt->tgt, &n->tn))
			continue;
		TAILQ_REMOVE(&rt->removed, n, link);
		isd_log_info("target %s: last session gone, freed", n->tn.name);
		isd_target_node_free(rt, n);
	}
}

/* A connection of another reactor went: the reap runs on reactor 0. */
static void
reap_msg_cb(void *arg)
{
	struct isd_target_running *rt = arg;

	isd_reactor_defer(rt->r, &rt->reap_timer);
}

/*
 * From inside the core as a connection is freed, on the connection's
 * reactor: the work waits for reactor 0 (the owner of the target's lists).
 * From another reactor it is posted there, at most one message in flight;
 * that thread must not read `removed`, which reactor 0 changes.
 */
static void
conn_gone(void *arg)
{
	struct isd_target_running *rt = arg;

	if (isd_reactor_current() == NULL || isd_reactor_current() == rt->r) {
		if (!TAILQ_EMPTY(&rt->removed))
			isd_reactor_defer(rt->r, &rt->reap_timer);
		return;
	}
	if (!atomic_exchange(&rt->reap_posted, true))
		isd_reactor_post(rt->r, &rt->reap_msg);
}

void
isd_target_icfg_from(const struct isd_target_cfg *cfg, struct isd_iscsi_cfg *icfg)
{
	isd_iscsi_cfg_init(icfg);
	if (cfg->login_timeout_ms != -1)
		icfg->login_timeout_ms = (uint32_t)cfg->login_timeout_ms;
	if (cfg->nop_interval_ms != -1)
		icfg->nop_interval_ms = (uint32_t)cfg->nop_interval_ms;
	if (cfg->nop_timeout_ms != -1)
		icfg->nop_timeout_ms = (uint32_t)cfg->nop_timeout_ms;
	if (cfg->logout_timeout_ms != -1)
		icfg->logout_timeout_ms = (uint32_t)cfg->logout_timeout_ms;
	for (int i = 0; i < isd_target_limit_count; i++) {
		const struct isd_target_limit *l = &isd_target_limits[i];
		int64_t v = isd_target_limit_get(cfg, l);

		if (v != -1)
			*(uint32_t *)((char *)icfg + l->icfg_off) = (uint32_t)v;
	}
	icfg->discovery_auth = cfg->discovery_auth;
	icfg->chap_algs = cfg->chap_algs;
	apply_neg(&icfg->discovery_policy, NULL, &cfg->neg);
}

int
isd_target_start(const struct isd_target_cfg *cfg, struct isd_reactor *r,
		 struct isd_target_running **out, char *err, size_t errlen)
{
	struct isd_target_running *rt;
	struct isd_iscsi_cfg icfg;
	int rc;

	if (err != NULL && errlen > 0)
		err[0] = '\0';
	rc = isd_target_cfg_validate(cfg, err, errlen);
	if (rc < 0)
		return rc;
	rt = calloc(1, sizeof(*rt));
	if (rt == NULL)
		goto err_nomem;
	rt->r = r;
	isd_target_apply_reactor_mode(rt, cfg);
	TAILQ_INIT(&rt->nodes);
	TAILQ_INIT(&rt->removed);
	isd_timer_init(&rt->reap_timer, reap_removed, rt);
	rt->reap_msg.cb = reap_msg_cb;
	rt->reap_msg.arg = rt;
	atomic_init(&rt->reap_posted, false);
	if (isd_target_cfg_copy(&rt->cfg, cfg) < 0)
		goto err_free;

	isd_target_icfg_from(cfg, &icfg);
	/* each datamover's own settings (the core never sees a send queue or a receive) */
	for (unsigned k = 0; k < isd_dm_kind_count && k < ISD_TARGET_DM_KINDS_MAX; k++) {
		const struct isd_dm_kind *kind = isd_dm_kinds[k];
		int64_t v[ISD_DM_KNOBS_MAX];

		for (int j = 0; j < kind->knob_count && j < ISD_DM_KNOBS_MAX; j++)
			v[j] = cfg->dm_setting[k][j] != -1 ? cfg->dm_setting[k][j] : kind->knobs[j].dflt;
		rc = kind->configure != NULL ? kind->configure(v) : 0;
		if (rc < 0) {
			isd_target_errf(err, errlen, "%s://: settings refused: %s", kind->scheme,
					strerror(-rc));
			goto err_teardown;
		}
	}
	rc = isd_iscsi_tgt_create(r, &icfg, &rt->tgt);
	explicit_bzero(&icfg.discovery_auth, sizeof(icfg.discovery_auth));
	if (rc < 0) {
		isd_target_errf(err, errlen, "cannot create the iSCSI target: %s", strerror(-rc));
		goto err_teardown;
	}
	isd_iscsi_tgt_set_conn_gone(rt->tgt, conn_gone, rt);
	if (cfg->discovery_auth.require_chap)
		isd_log_info("discovery sessions need CHAP%s",
			     cfg->discovery_auth.mutual ? " (mutual)" : "");

	for (int i = 0; i < cfg->portal_count; i++) {
		rc = isd_target_portal_open(rt, &cfg->portals[i], err, errlen);
		if (rc < 0)
			goto err_teardown;
	}
	for (int i = 0; i < cfg->node_count; i++) {
		rc = isd_target_node_build(rt, cfg, &cfg->nodes[i], NULL, err, errlen);
		if (rc < 0)
			goto err_teardown;
	}
	*out = rt;
	return 0;

err_free:
	free(rt);
err_nomem:
	isd_target_errf(err, errlen, "out of memory");
	return -ENOMEM;
err_teardown:
	/* the reactor has not run: no connection can exist yet */
	teardown(rt, false);
	return rc;
}

static void
shutdown_done(void *arg)
{
	struct isd_target_running *rt = arg;

	rt->shutdown_done = true;
	if (rt->shutdown_cb != NULL)
		rt->shutdown_cb(rt->shutdown_arg);
}

void
isd_target_apply_reactor_mode(struct isd_target_running *rt, const struct isd_target_cfg *cfg)
{
	struct isd_reactor_group *g = isd_reactor_group_of(rt->r);
	int mode;
	unsigned us;

	struct isd_reactor_mask polling;
	char why[200];

	isd_target_reactor_mode(cfg, &mode, &us);
	/* validated with the model: a list of reactors that run */
	memset(&polling, 0, sizeof(polling));
	if (cfg->polling_reactors[0] != '\0' &&
	    isd_target_reactor_list_parse(cfg->polling_reactors, &polling, NULL, why, sizeof(why)) < 0)
		memset(&polling, 0, sizeof(polling));
	if (g == NULL) {
		isd_reactor_set_mode(rt->r,
				     isd_reactor_mask_has(&polling, 0) ? ISD_REACTOR_POLL
								       : (enum isd_reactor_mode)mode,
				     us);
		return;
	}
	/* the others are paused or not started yet: their loops read it between turns */
	for (unsigned i = 0; i < isd_reactor_group_size(g); i++)
		isd_reactor_set_mode(isd_reactor_group_get(g, i),
				     isd_reactor_mask_has(&polling, i) ? ISD_REACTOR_POLL
								       : (enum isd_reactor_mode)mode,
				     us);
}

struct isd_reactor_group *
isd_target_reactor_group(const struct isd_target_running *rt)
{
	return rt != NULL ? isd_reactor_group_of(rt->r) : NULL;
}

void
isd_target_shutdown(struct isd_target_running *rt, void (*cb)(void *arg), void *arg)
{
	if (rt->shutdown_started)
		return;
	rt->shutdown_started = true;
	rt->shutdown_cb = cb;
	rt->shutdown_arg = arg;
	/* no new connections while the old ones drain */
	isd_target_portals_close(rt);
	isd_iscsi_tgt_shutdown(rt->tgt, shutdown_done, rt);
}

const struct isd_target_cfg *
isd_target_running_cfg(const struct isd_target_running *rt)
{
	return &rt->cfg;
}

void
isd_target_get_stats(struct isd_target_running *rt, struct isd_iscsi_stats *out)
{
	isd_iscsi_tgt_get_stats(rt->tgt, out);
}

void
isd_target_stop(struct isd_target_running *rt)
{
	if (rt == NULL)
		return;
	teardown(rt, rt->shutdown_started && !rt->shutdown_done);
}

int
isd_target_drop_privileges(const struct isd_target_cfg *cfg, char *err, size_t errlen)
{
	struct rlimit unlimited = {RLIM_INFINITY, RLIM_INFINITY};
	const struct passwd *pw;
	gid_t gid;

	if (cfg->user[0] == '\0')
		return 0;
	errno = 0;
	pw = getpwnam(cfg->user);
	if (pw == NULL) {
		isd_target_errf(err, errlen, "user '%s': %s", cfg->user,
				errno ? strerror(errno) : "no such user");
		return errno ? -errno : -ENOENT;
	}
	gid = pw->pw_gid;
	if (cfg->group[0] != '\0') {
		const struct group *gr;

		errno = 0;
		gr = getgrnam(cfg->group);
		if (gr == NULL) {
			isd_target_errf(err, errlen, "group '%s': %s", cfg->group,
					errno ? strerror(errno) : "no such group");
			return errno ? -errno : -ENOENT;
		}
		gid = gr->gr_gid;
	}
	/*
	 * Every iSER connection registers memory (its QP buffers, per-command
	 * fast registrations): lift the lock limit while we still may, since it
	 * survives setuid and an unprivileged user could not raise it later.
	 */
	if (setrlimit(RLIMIT_MEMLOCK, &unlimited) < 0)
		isd_log_warn("cannot lift RLIMIT_MEMLOCK before dropping privileges: %s",
			     strerror(errno));
	if (setgroups(1, &gid) < 0 || setgid(gid) < 0 || setuid(pw->pw_uid) < 0) {
		int e = errno;

		isd_target_errf(err, errlen, "cannot switch to user %s (uid %u, gid %u): %s",
				cfg->user, (unsigned int)pw->pw_uid, (unsigned int)gid,
				strerror(e));
		return -e;
	}
	/* a uid of 0 stays 0: only warn if we could get root back */
	if (pw->pw_uid != 0 && setuid(0) == 0) {
		isd_target_errf(err, errlen, "still able to regain root after switching to %s",
				cfg->user);
		return -EPERM;
	}
	isd_log_info("running as user %s (uid %u, gid %u)", cfg->user, (unsigned int)pw->pw_uid,
		     (unsigned int)gid);
	return 0;
}

struct isd_iscsi_tgt *
isd_target_core(struct isd_target_running *rt)
{
	return rt != NULL ? rt->tgt : NULL;
}
