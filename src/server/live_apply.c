/*
 * A reload: the difference between the running model and the next one (a
 * file loaded and validated), applied with the calls of live.c. What cannot
 * change while running is refused before anything changes; a target, LUN or
 * ACL entry that is the same in both is never touched, so its sessions see
 * nothing of the reload.
 */
#include "server/live_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "iscsi/iscsi.h"
#include "util/log.h"

/* ---- what cannot change while running ---- */

static int
refuse_static(const struct isd_target_cfg *cur, const struct isd_target_cfg *next, char *err,
	      size_t errlen)
{
	const char *what = NULL;

	if (strcmp(cur->user, next->user) != 0)
		what = "user";
	else if (strcmp(cur->group, next->group) != 0)
		what = "group";
	else if (memcmp(cur->dm_setting, next->dm_setting, sizeof(cur->dm_setting)) != 0)
		what = "the datamover settings";
	else if (strcmp(cur->control_socket, next->control_socket) != 0)
		what = "control_socket";
	else if (cur->control_mode != next->control_mode)
		what = "control_mode";
	else if (strcmp(cur->metrics_listen, next->metrics_listen) != 0)
		what = "metrics_listen";
	/* the reactor threads are started once; connections live on them */
	else if (cur->reactors != next->reactors)
		what = "reactors";
	else if (strcmp(cur->reactor_cpus, next->reactor_cpus) != 0)
		what = "reactor_cpus";
	if (what == NULL)
		return 0;
	isd_target_errf(err, errlen, "%s cannot change while iserd runs (restart it); nothing "
			"changed", what);
	return -EINVAL;
}

static bool
portal_same(const struct isd_target_portal_spec *a, const struct isd_target_portal_spec *b)
{
	return a->kind == b->kind && a->transport == b->transport && a->port == b->port &&
	       a->tpgt == b->tpgt && strcmp(a->host, b->host) == 0;
}

static bool
portal_in(const struct isd_target_portal_spec *p, const struct isd_target_cfg *cfg)
{
	for (int i = 0; i < cfg->portal_count; i++)
		if (portal_same(p, &cfg->portals[i]))
			return true;
	return false;
}

static bool
strv_same_set(char *const *a, int na, char *const *b, int nb)
{
	if (na != nb)
		return false;
	for (int i = 0; i < na; i++) {
		bool found = false;

		for (int j = 0; j < nb && !found; j++)
			found = strcasecmp(a[i], b[j]) == 0;
		if (!found)
			return false;
	}
	return true;
}

/* Listens on the portals next adds (before targets that may be bound to them). */
static int
add_portals(struct isd_target_running *rt, const struct isd_target_cfg *next,
	    struct isd_live_diff *d, char *err, size_t errlen)
{
	for (int i = 0; i < next->portal_count; i++) {
		int rc;

		if (portal_in(&next->portals[i], &rt->cfg))
			continue;
		rc = isd_live_portal_add(rt, &next->portals[i], err, errlen);
		if (rc < 0)
			return rc;
		d->portals_added++;
	}
	return 0;
}

/* Moves the placement (`reactors`) of the portals that stay, where next changes it. */
static int
place_portals(struct isd_target_running *rt, const struct isd_target_cfg *next,
	      struct isd_live_diff *d, char *err, size_t errlen)
{
	for (int i = 0; i < next->portal_count; i++) {
		const struct isd_target_portal_spec *nx = &next->portals[i];
		struct isd_target_portal *p;
		int rc;

		p = portal_in(nx, &rt->cfg) ? isd_target_portal_find(rt, nx) : NULL;
		if (p == NULL || strcmp(p->spec.reactors, nx->reactors) == 0)
			continue;
		rc = isd_target_portal_set_reactors(rt, p, nx->reactors, err, errlen);
		if (rc < 0)
			return rc;
		isd_log_info("portal %s: new connections go to %s%s", p->url,
			     nx->reactors[0] != '\0' ? "reactors " : "every reactor",
			     nx->reactors);
		d->portals_changed++;
	}
	return 0;
}

/* Stops the portals next lacks (once no target is bound to them alone). */
static int
remove_portals(struct isd_target_running *rt, const struct isd_target_cfg *next,
	       struct isd_live_diff *d, char *err, size_t errlen)
{
	for (int i = 0; i < rt->cfg.portal_count;) {
		char url[128];
		int rc;

		if (portal_in(&rt->cfg.portals[i], next)) {
			i++;
			continue;
		}
		isd_target_portal_url(&rt->cfg.portals[i], url, sizeof(url));
		rc = isd_live_portal_remove(rt, url, err, errlen);
		if (rc < 0)
			return rc;
		d->portals_removed++;
	}
	return 0;
}

/* ---- comparing targets ---- */

static const struct isd_target_node_cfg *
node_in(const struct isd_target_cfg *cfg, const char *name)
{
	for (int i = 0; i < cfg->node_count; i++)
		if (strcasecmp(cfg->nodes[i].name, name) == 0)
			return &cfg->nodes[i];
	return NULL;
}

static const struct isd_target_lun_cfg *
lun_in(const struct isd_target_node_cfg *nc, uint32_t number)
{
	for (int i = 0; i < nc->lun_count; i++)
		if (nc->luns[i].number == number)
			return &nc->luns[i];
	return NULL;
}

static const struct isd_target_ini_cfg *
ini_in(const struct isd_target_node_cfg *nc, const char *name)
{
	for (int i = 0; i < nc->ini_count; i++)
		if (strcasecmp(nc->ini[i].name, name) == 0)
			return &nc->ini[i];
	return NULL;
}

static bool
acl_in(const struct isd_target_node_cfg *nc, const char *name)
{
	for (int i = 0; i < nc->acl_count; i++)
		if (strcasecmp(nc->acl[i], name) == 0)
			return true;
	return false;
}

static bool
auth_same(const struct isd_auth_cfg *a, const struct isd_auth_cfg *b)
{
	if (a->require_chap != b->require_chap || a->mutual != b->mutual)
		return false;
	if (a->require_chap && (strcmp(a->chap.user, b->chap.user) != 0 ||
				strcmp(a->chap.secret, b->chap.secret) != 0))
		return false;
	if (a->mutual && (strcmp(a->mutual_chap.user, b->mutual_chap.user) != 0 ||
			  strcmp(a->mutual_chap.secret, b->mutual_chap.secret) != 0))
		return false;
	return true;
}

static bool
neg_same(const struct isd_target_neg_cfg *a, const struct isd_target_neg_cfg *b)
{
	return a->max_recv_data_segment_length == b->max_recv_data_segment_length &&
	       a->max_burst_length == b->max_burst_length &&
	       a->first_burst_length == b->first_burst_length &&
	       a->max_outstanding_r2t == b->max_outstanding_r2t &&
	       a->queue_depth == b->queue_depth && a->immediate_data == b->immediate_data &&
	       a->initial_r2t == b->initial_r2t && a->header_digest == b->header_digest &&
	       a->data_digest == b->data_digest;
}

static uint32_t
lun_phys_block(const struct isd_target_lun_cfg *l)
{
	if (l->physical_block_size != 0)
		return l->physical_block_size;
	return l->block_size ? l->block_size : 512;
}

/* The same store and identity: what remains may be a size or a read-only change. */
static bool
lun_same_store(const struct isd_target_lun_cfg *a, const struct isd_target_lun_cfg *b)
{
	return a->kind == b->kind && strcmp(a->path, b->path) == 0 &&
	       (a->block_size ? a->block_size : 512) == (b->block_size ? b->block_size : 512) &&
	       lun_phys_block(a) == lun_phys_block(b) &&
	       strcmp(a->vendor, b->vendor) == 0 && strcmp(a->product, b->product) == 0 &&
	       strcmp(a->serial, b->serial) == 0 && strcmp(a->naa, b->naa) == 0;
}

static uint8_t
lun_alua(const struct isd_target_lun_cfg *l)
{
	return l->alua_state_set ? l->alua_state : ISD_ALUA_ACTIVE_OPTIMIZED;
}

static bool
lun_same(const struct isd_target_lun_cfg *a, const struct isd_target_lun_cfg *b)
{
	return lun_same_store(a, b) && a->size == b->size && a->read_only == b->read_only &&
	       strcmp(a->spec, b->spec) == 0 && lun_alua(a) == lun_alua(b);
}

/* Whether a reload must touch the target at all. */
static bool
node_same(const struct isd_target_node_cfg *a, const struct isd_target_node_cfg *b,
	  bool global_neg_changed)
{
	if (strcmp(a->alias, b->alias) != 0 || a->tpgt != b->tpgt || !neg_same(&a->neg, &b->neg) ||
	    a->alua_group != b->alua_group || a->alua_peer_count != b->alua_peer_count ||
	    a->alua_peer_state != b->alua_peer_state ||
	    memcmp(a->alua_peers, b->alua_peers,
		   (size_t)a->alua_peer_count * sizeof(a->alua_peers[0])) != 0 ||
	    global_neg_changed || !auth_same(&a->auth, &b->auth) ||
	    a->lun_count != b->lun_count || a->ini_count != b->ini_count ||
	    !strv_same_set(a->acl, a->acl_count, b->acl, b->acl_count) ||
	    !strv_same_set(a->portals, a->portal_bind_count, b->portals, b->portal_bind_count))
		return false;
	for (int i = 0; i < a->lun_count; i++) {
		const struct isd_target_lun_cfg *o = lun_in(b, a->luns[i].number);

		if (o == NULL || !lun_same(&a->luns[i], o))
			return false;
	}
	for (int i = 0; i < a->ini_count; i++) {
		const struct isd_target_ini_cfg *o = ini_in(b, a->ini[i].name);

		if (o == NULL || !auth_same(&a->ini[i].auth, &o->auth))
			return false;
	}
	return true;
}

/* ---- applying ---- */

#define STEP(call)                                                                                 \
	do {                                                                                       \
		int rc_ = (call);                                                                  \
		if (rc_ < 0)                                                                       \
			return rc_;                                                                \
	} while (0)

static int
apply_luns(struct isd_target_running *rt, struct isd_target_node *n,
	   const struct isd_target_node_cfg *cur, const struct isd_target_node_cfg *nx,
	   struct isd_live_diff *d, char *err, size_t errlen)
{
	/* cur points into the running model, which every step replaces: work on numbers */
	uint32_t gone[ISD_SCSI_MAX_LUNS], changed[ISD_SCSI_MAX_LUNS], added[ISD_SCSI_MAX_LUNS];
	int ngone = 0, nchanged = 0, nadded = 0;

	for (int i = 0; i < cur->lun_count; i++) {
		const struct isd_target_lun_cfg *o = lun_in(nx, cur->luns[i].number);

		if (o == NULL)
			gone[ngone++] = cur->luns[i].number;
		else if (!lun_same(&cur->luns[i], o))
			changed[nchanged++] = cur->luns[i].number;
	}
	for (int i = 0; i < nx->lun_count; i++)
		if (lun_in(cur, nx->luns[i].number) == NULL)
			added[nadded++] = (uint32_t)i;
	for (int i = 0; i < ngone; i++) {
		STEP(isd_live_lun_remove_int(rt, nx->name, gone[i], false, err, errlen));
		d->luns_removed++;
	}
	for (int i = 0; i < nchanged; i++) {
		const struct isd_target_node_cfg *now = node_in(&rt->cfg, nx->name);
		const struct isd_target_lun_cfg *a = lun_in(now, changed[i]);
		const struct isd_target_lun_cfg *b = lun_in(nx, changed[i]);
		struct isd_bstore *bs = n->bs[b->number];
		bool resize = a->size != b->size || strcmp(a->spec, b->spec) != 0;
		bool same = lun_same_store(a, b) && bs != NULL;
		/* a is in the running model, which each step below replaces: what the
		 * later steps compare is read now */
		bool ro_changed = a->read_only != b->read_only;
		bool alua_changed = lun_alua(a) != lun_alua(b);

		/* a size the store can take in place; else the LUN is opened again */
		if (same && resize && (bs->ops->resize == NULL || b->size == 0))
			same = false;
		if (same && a->read_only && !b->read_only && !isd_live_lun_can_write(rt, n, b->number))
			same = false;
		d->luns_changed++;
		if (!same) {
			STEP(isd_live_lun_remove_int(rt, nx->name, b->number, false, err, errlen));
			STEP(isd_live_lun_add_int(rt, nx->name, b, false, err, errlen));
			continue;
		}
		if (resize)
			STEP(isd_live_lun_resize_int(rt, nx->name, b->number, b->size, false, err,
						     errlen));
		if (ro_changed)
			STEP(isd_live_lun_set_read_only_int(rt, nx->name, b->number, b->read_only,
							    false, err, errlen));
		/* straight to the LU: the new model (which may turn ALUA on or off at
		 * once) becomes the running one when every step went through */
		if (alua_changed) {
			STEP(isd_scsi_lu_set_alua_state(n->tn.dev, b->number, lun_alua(b)));
			isd_log_info("target %s: LUN %u: ALUA state %s", nx->name, b->number,
				     isd_scsi_alua_state_name(lun_alua(b)));
		}
	}
	for (int i = 0; i < nadded; i++) {
		STEP(isd_live_lun_add_int(rt, nx->name, &nx->luns[added[i]], false, err, errlen));
		d->luns_added++;
	}
	return 0;
}

static int
apply_access(struct isd_target_running *rt, const struct isd_target_node_cfg *nx,
	     struct isd_live_diff *d, char *err, size_t errlen)
{
	const struct isd_target_node_cfg *now = node_in(&rt->cfg, nx->name);
	static const struct isd_auth_cfg none;
	char name[ISD_NAME_MAX];

	/* entries that go (their own credentials go with them) */
	for (int i = 0; i < now->acl_count;) {
		if (acl_in(nx, now->acl[i])) {
			i++;
			continue;
		}
		snprintf(name, sizeof(name), "%s", now->acl[i]);
		STEP(isd_live_acl_remove_int(rt, nx->name, name, false, err, errlen));
		d->acl_changed++;
		now = node_in(&rt->cfg, nx->name);
	}
	for (int i = 0; i < nx->acl_count; i++) {
		struct isd_target_ini_cfg e;
		const struct isd_target_ini_cfg *own;

		if (acl_in(now, nx->acl[i]))
			continue;
		memset(&e, 0, sizeof(e));
		snprintf(e.name, sizeof(e.name), "%s", nx->acl[i]);
		own = ini_in(nx, nx->acl[i]);
		if (own != NULL)
			e = *own;
		STEP(isd_live_acl_add_int(rt, nx->name, &e, false, err, errlen));
		explicit_bzero(&e, sizeof(e));
		d->acl_changed++;
		now = node_in(&rt->cfg, nx->name);
	}
	/* per-initiator credentials that differ, are new, or went */
	for (int i = 0; i < nx->ini_count; i++) {
		const struct isd_target_ini_cfg *o = ini_in(now, nx->ini[i].name);

		if (o != NULL && auth_same(&o->auth, &nx->ini[i].auth))
			continue;
		STEP(isd_live_acl_set_auth_int(rt, nx->name, nx->ini[i].name, &nx->ini[i].auth,
					       false, err, errlen));
		d->acl_changed++;
		now = node_in(&rt->cfg, nx->name);
	}
	for (int i = 0; i < now->ini_count;) {
		if (ini_in(nx, now->ini[i].name) != NULL) {
			i++;
			continue;
		}
		snprintf(name, sizeof(name), "%s", now->ini[i].name);
		STEP(isd_live_acl_set_auth_int(rt, nx->name, name, &none, false, err, errlen));
		d->acl_changed++;
		now = node_in(&rt->cfg, nx->name);
	}
	if (!auth_same(&now->auth, &nx->auth)) {
		STEP(isd_live_target_set_auth_int(rt, nx->name, &nx->auth, false, err, errlen));
		d->acl_changed++;
	}
	return 0;
}

/* Alias, tpgt and negotiation limits: read by logins, so new logins get them. */
static int
apply_node_settings(struct isd_target_running *rt, const struct isd_target_cfg *next,
		    struct isd_target_node *n, const struct isd_target_node_cfg *nx, char *err,
		    size_t errlen)
{
	struct isd_tnode tmp;

	memset(&tmp, 0, sizeof(tmp));
	STEP(isd_target_node_policy(next, nx, &tmp, err, errlen));
	n->tn.policy = tmp.policy;
	n->tn.queue_depth = tmp.queue_depth;
	snprintf(n->tn.alias, sizeof(n->tn.alias), "%s", nx->alias);
	n->tn.tpgt = nx->tpgt == -1 ? 1 : (uint16_t)nx->tpgt;
	/* ALUA groups: read by each command (INQUIRY, RTPG, the state check) */
	STEP(isd_target_node_alua(nx, n->tn.dev, err, errlen));
	/* what a store's lock change maps to from now on (start.c lun_lock_changed) */
	n->alua_group = nx->alua_group;
	n->alua_peer_state = nx->alua_peer_state;
	return 0;
}

static int
apply_globals(struct isd_target_running *rt, const struct isd_target_cfg *next,
	      struct isd_live_diff *d)
{
	struct isd_target_cfg *cur = &rt->cfg;
	struct isd_iscsi_cfg *core = isd_iscsi_tgt_cfg(rt->tgt);
	struct isd_iscsi_cfg fresh;
	bool changed = false;

	if (cur->log_level != next->log_level || strcmp(cur->debug, next->debug) != 0) {
		enum isd_log_level lvl = next->log_level != -1 ? (enum isd_log_level)next->log_level
							       : ISD_LOG_INFO;

		if (next->debug[0] != '\0')
			isd_log_enable(next->debug);
		else if (lvl == ISD_LOG_DEBUG)
			isd_log_enable("all");
		isd_log_set_level(next->debug[0] != '\0' && lvl < ISD_LOG_DEBUG ? ISD_LOG_DEBUG : lvl);
		changed = true;
	}
	/* timeouts, limits, CHAP algorithms, discovery: the core reads them per connection */
	isd_target_icfg_from(next, &fresh);
	if (memcmp(&fresh, core, sizeof(fresh)) != 0) {
		bool disc = !auth_same(&fresh.discovery_auth, &core->discovery_auth);

		*core = fresh;
		changed = true;
		if (disc)
			isd_log_info("discovery sessions: CHAP %s%s for logins from now on",
				     fresh.discovery_auth.require_chap ? "required" : "off",
				     fresh.discovery_auth.mutual ? " (mutual)" : "");
	}
	explicit_bzero(&fresh, sizeof(fresh));
	if (changed || cur->shutdown_timeout_ms != next->shutdown_timeout_ms ||
	    cur->allow_short_secrets != next->allow_short_secrets ||
	    !neg_same(&cur->neg, &next->neg))
		d->globals_changed++;
	/* the running model says so at once, should a later step fail */
	cur->log_level = next->log_level;
	memcpy(cur->debug, next->debug, sizeof(cur->debug));
	cur->login_timeout_ms = next->login_timeout_ms;
	cur->nop_interval_ms = next->nop_interval_ms;
	cur->nop_timeout_ms = next->nop_timeout_ms;
	cur->logout_timeout_ms = next->logout_timeout_ms;
	for (int i = 0; i < isd_target_limit_count; i++)
		*isd_target_limit_val(cur, &isd_target_limits[i]) =
		    isd_target_limit_get(next, &isd_target_limits[i]);
	cur->shutdown_timeout_ms = next->shutdown_timeout_ms;
	if (cur->reactor_mode != next->reactor_mode ||
	    cur->reactor_poll_us != next->reactor_poll_us ||
	    strcmp(cur->polling_reactors, next->polling_reactors) != 0) {
		int mode;
		unsigned us;

		isd_target_reactor_mode(next, &mode, &us);
		/* every reactor of the group: the others are paused during a reload */
		isd_target_apply_reactor_mode(rt, next);
		isd_log_info("reactor: %s mode (%u us)%s%s", isd_target_reactor_mode_names[mode], us,
			     next->polling_reactors[0] != '\0' ? "; polling: reactors " : "",
			     next->polling_reactors);
		d->globals_changed++;
	}
	cur->reactor_mode = next->reactor_mode;
	cur->reactor_poll_us = next->reactor_poll_us;
	memcpy(cur->polling_reactors, next->polling_reactors, sizeof(cur->polling_reactors));
	cur->discovery_auth = next->discovery_auth;
	cur->allow_short_secrets = next->allow_short_secrets;
	cur->chap_algs = next->chap_algs;
	cur->neg = next->neg;
	return 0;
}

int
isd_live_apply(struct isd_target_running *rt, const struct isd_target_cfg *next,
	       struct isd_live_diff *diff, char *err, size_t errlen)
{
	struct isd_live_diff d;
	struct isd_target_cfg *final = NULL;
	char **gone = NULL;
	int ngone = 0, rc;
	bool global_neg;

	memset(&d, 0, sizeof(d));
	if (err != NULL && errlen > 0)
		err[0] = '\0';
	if (rt->shutdown_started) {
		isd_target_errf(err, errlen, "shutting down; nothing changed");
		return -ESHUTDOWN;
	}
	rc = isd_target_cfg_validate(next, err, errlen);
	if (rc < 0)
		return rc;
	rc = refuse_static(&rt->cfg, next, err, errlen);
	if (rc < 0)
		return rc;
	/* what the running model becomes once every step went through */
	final = malloc(sizeof(*final));
	if (final == NULL || isd_target_cfg_copy(final, next) < 0) {
		free(final);
		isd_target_errf(err, errlen, "out of memory");
		return -ENOMEM;
	}

	global_neg = !neg_same(&rt->cfg.neg, &next->neg);
	/* a busy address is the likeliest failure: first, before anything else changed */
	rc = add_portals(rt, next, &d, err, errlen);
	if (rc == 0)
		rc = place_portals(rt, next, &d, err, errlen);
	if (rc == 0)
		rc = apply_globals(rt, next, &d);
	if (rc < 0)
		goto out;
	/* targets that go: their names first, as each removal replaces the model */
	gone = calloc((size_t)rt->cfg.node_count + 1, sizeof(char *));
	if (gone == NULL) {
		rc = -ENOMEM;
		isd_target_errf(err, errlen, "out of memory");
		goto out;
	}
	for (int i = 0; i < rt->cfg.node_count; i++)
		if (node_in(next, rt->cfg.nodes[i].name) == NULL)
			gone[ngone++] = strdup(rt->cfg.nodes[i].name);
	for (int i = 0; i < ngone; i++) {
		if (gone[i] == NULL) {
			rc = -ENOMEM;
			isd_target_errf(err, errlen, "out of memory");
			goto out;
		}
		rc = isd_live_target_remove_int(rt, gone[i], true, false, err, errlen);
		if (rc < 0)
			goto out;
		d.targets_removed++;
	}
	for (int i = 0; i < next->node_count; i++) {
		const struct isd_target_node_cfg *nx = &next->nodes[i];
		const struct isd_target_node_cfg *c = node_in(&rt->cfg, nx->name);
		struct isd_target_node *n;

		if (c == NULL) {
			rc = isd_live_target_add_int(rt, nx, false, err, errlen);
			if (rc < 0)
				goto out;
			d.targets_added++;
			continue;
		}
		if (node_same(c, nx, global_neg)) {
			d.unchanged_targets++;
			continue;
		}
		n = isd_target_node_find(rt, nx->name);
		if (n == NULL) {
			rc = -ENOENT;
			isd_target_errf(err, errlen, "target %s is not running", nx->name);
			goto out;
		}
		d.targets_changed++;
		rc = apply_node_settings(rt, next, n, nx, err, errlen);
		if (rc == 0 && !strv_same_set(c->portals, c->portal_bind_count, nx->portals,
					      nx->portal_bind_count))
			rc = isd_live_target_bind(rt, nx->name, (const char *const *)nx->portals,
						  nx->portal_bind_count, err, errlen);
		if (rc == 0)
			rc = apply_access(rt, nx, &d, err, errlen);
		if (rc == 0)
			rc = apply_luns(rt, n, node_in(&rt->cfg, nx->name), nx, &d, err, errlen);
		if (rc < 0)
			goto out;
	}
	rc = remove_portals(rt, next, &d, err, errlen);
	if (rc < 0)
		goto out;
	/* every step went through: the running model is next, origins and all */
	isd_target_cfg_fini(&rt->cfg);
	rt->cfg = *final;
	free(final);
	final = NULL;
	isd_log_info("configuration applied: portals +%d -%d ~%d, targets +%d -%d ~%d (%d "
		     "unchanged), LUNs +%d -%d ~%d, ACL/CHAP changes %d%s",
		     d.portals_added, d.portals_removed, d.portals_changed, d.targets_added,
		     d.targets_removed,
		     d.targets_changed, d.unchanged_targets, d.luns_added, d.luns_removed,
		     d.luns_changed, d.acl_changed,
		     d.globals_changed ? ", global settings changed" : "");
	rc = 0;
out:
	if (rc < 0 && err != NULL && errlen > 0 && err[0] == '\0')
		isd_target_errf(err, errlen, "reload failed: %s", strerror(-rc));
	if (rc < 0)
		isd_log_err("reload stopped half way (what went before stays): %s",
			    err != NULL ? err : "");
	for (int i = 0; i < ngone; i++)
		free(gone[i]);
	free(gone);
	if (final != NULL) {
		isd_target_cfg_fini(final);
		free(final);
	}
	if (diff != NULL)
		*diff = d;
	return rc;
}
