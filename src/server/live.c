/*
 * Changes to the running target: targets, LUNs, ACLs, CHAP, sessions.
 *
 * Each change is made first on a copy of the running model and validated
 * there as the loader validates a file (so that the model stays one that
 * isd_target_cfg_save() writes and the loader reads back); only then are the
 * live objects changed, and the copy becomes the running model. A failure at
 * any point before that leaves both as they were. isd_live_apply() makes the
 * same changes without the per-step validation: it validated the whole next
 * model up front, and its steps may pass through models that would not load
 * (a target whose only LUN is being replaced).
 */
#include "server/live_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "iscsi/iscsi.h"
#include "scsi/scsi.h"
#include "util/log.h"

/* ---- the model ---- */

static struct isd_target_cfg *
model_begin(struct isd_target_running *rt, char *err, size_t errlen)
{
	struct isd_target_cfg *cand = malloc(sizeof(*cand));

	if (cand == NULL || isd_target_cfg_copy(cand, &rt->cfg) < 0) {
		free(cand);
		isd_target_errf(err, errlen, "out of memory");
		return NULL;
	}
	return cand;
}

static void
model_drop(struct isd_target_cfg *cand)
{
	if (cand == NULL)
		return;
	isd_target_cfg_fini(cand);
	free(cand);
}

static void
model_commit(struct isd_target_running *rt, struct isd_target_cfg *cand)
{
	isd_target_cfg_fini(&rt->cfg);
	rt->cfg = *cand;
	free(cand);
}

static int
model_check(const struct isd_target_cfg *cand, bool check, char *err, size_t errlen)
{
	return check ? isd_target_cfg_validate(cand, err, errlen) : 0;
}

static int
node_index(const struct isd_target_cfg *cfg, const char *name)
{
	for (int i = 0; i < cfg->node_count; i++)
		if (strcasecmp(cfg->nodes[i].name, name) == 0)
			return i;
	return -1;
}

static int
lun_index(const struct isd_target_node_cfg *nc, uint32_t lun)
{
	for (int i = 0; i < nc->lun_count; i++)
		if (nc->luns[i].number == lun)
			return i;
	return -1;
}

static int
acl_index(const struct isd_target_node_cfg *nc, const char *ini)
{
	for (int i = 0; i < nc->acl_count; i++)
		if (strcasecmp(nc->acl[i], ini) == 0)
			return i;
	return -1;
}

static int
ini_index(const struct isd_target_node_cfg *nc, const char *ini)
{
	for (int i = 0; i < nc->ini_count; i++)
		if (strcasecmp(nc->ini[i].name, ini) == 0)
			return i;
	return -1;
}

/* The running node and its model entry (in cfg), or -ENOENT + err. */
static int
find_target(struct isd_target_running *rt, struct isd_target_cfg *cfg, const char *name,
	    struct isd_target_node **n, struct isd_target_node_cfg **nc, char *err, size_t errlen)
{
	int i = name != NULL ? node_index(cfg, name) : -1;

	*n = name != NULL ? isd_target_node_find(rt, name) : NULL;
	if (i < 0 || *n == NULL) {
		char esc[ISD_LOG_ESC_MAX];

		isd_target_errf(err, errlen, "no target %s",
				isd_log_escape_str(esc, sizeof(esc), name ? name : ""));
		return -ENOENT;
	}
	*nc = &cfg->nodes[i];
	return 0;
}

/* Credentials as they are kept: a half that is off holds no secret. */
static void
auth_norm(struct isd_auth_cfg *a)
{
	if (!a->require_chap)
		explicit_bzero(&a->chap, sizeof(a->chap));
	if (!a->mutual)
		explicit_bzero(&a->mutual_chap, sizeof(a->mutual_chap));
}

/*
 * Makes the node's ACL and credentials those of the model entry. The new arrays
 * are built before the old ones go: on ENOMEM nothing changed. Logins read
 * them on this same thread, so the swap is all they ever see.
 */
static int
node_sync_access(struct isd_tnode *tn, const struct isd_target_node_cfg *nc)
{
	char **acl = NULL;
	struct isd_initiator_auth *ia = NULL;

	if (nc->acl_count > 0) {
		acl = calloc((size_t)nc->acl_count, sizeof(char *));
		if (acl == NULL)
			return -ENOMEM;
		for (int i = 0; i < nc->acl_count; i++) {
			acl[i] = strdup(nc->acl[i]);
			if (acl[i] == NULL) {
				while (i-- > 0)
					free(acl[i]);
				free(acl);
				return -ENOMEM;
			}
		}
	}
	if (nc->ini_count > 0) {
		ia = calloc((size_t)nc->ini_count, sizeof(*ia));
		if (ia == NULL) {
			for (int i = 0; i < nc->acl_count; i++)
				free(acl[i]);
			free(acl);
			return -ENOMEM;
		}
		for (int i = 0; i < nc->ini_count; i++) {
			snprintf(ia[i].name, sizeof(ia[i].name), "%s", nc->ini[i].name);
			ia[i].auth = nc->ini[i].auth;
		}
	}
	for (int i = 0; i < tn->acl_count; i++)
		free(tn->acl[i]);
	free(tn->acl);
	if (tn->ini_auth != NULL)
		explicit_bzero(tn->ini_auth, (size_t)tn->ini_auth_count * sizeof(*tn->ini_auth));
	free(tn->ini_auth);
	tn->acl = acl;
	tn->acl_count = nc->acl_count;
	tn->ini_auth = ia;
	tn->ini_auth_count = nc->ini_count;
	tn->auth = nc->auth;
	return 0;
}

/* ---- targets ---- */

int
isd_live_target_add_int(struct isd_target_running *rt, const struct isd_target_node_cfg *nc,
			bool check, char *err, size_t errlen)
{
	struct isd_target_cfg *cand;
	struct isd_target_node_cfg *slot;
	char esc[ISD_LOG_ESC_MAX];
	int rc;

	if (nc == NULL || nc->name[0] == '\0') {
		isd_target_errf(err, errlen, "a target needs a name");
		return -EINVAL;
	}
	if (rt->shutdown_started) {
		isd_target_errf(err, errlen, "shutting down");
		return -ESHUTDOWN;
	}
	if (node_index(&rt->cfg, nc->name) >= 0 || isd_target_node_find(rt, nc->name) != NULL) {
		isd_target_errf(err, errlen, "target %s exists",
				isd_log_escape_str(esc, sizeof(esc), nc->name));
		return -EEXIST;
	}
	cand = model_begin(rt, err, errlen);
	if (cand == NULL)
		return -ENOMEM;
	slot = realloc(cand->nodes, (size_t)(cand->node_count + 1) * sizeof(*slot));
	if (slot == NULL) {
		model_drop(cand);
		isd_target_errf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	cand->nodes = slot;
	if (isd_target_node_cfg_copy(&cand->nodes[cand->node_count], nc) < 0) {
		model_drop(cand);
		isd_target_errf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	slot = &cand->nodes[cand->node_count++];
	if (slot->origin[0] == '\0')
		snprintf(slot->origin, sizeof(slot->origin), "target %s", slot->name);
	for (int i = 0; i < slot->lun_count; i++) {
		if (slot->luns[i].origin[0] == '\0')
			snprintf(slot->luns[i].origin, sizeof(slot->luns[i].origin),
				 "target %s LUN %u", slot->name, slot->luns[i].number);
	}
	auth_norm(&slot->auth);
	rc = model_check(cand, check, err, errlen);
	if (rc == 0)
		rc = isd_target_node_build(rt, cand, slot, NULL, err, errlen);
	if (rc < 0) {
		model_drop(cand);
		return rc;
	}
	model_commit(rt, cand);
	isd_log_info("target %s added", nc->name);
	return 0;
}

int
isd_live_target_add(struct isd_target_running *rt, const struct isd_target_node_cfg *nc,
		    char *err, size_t errlen)
{
	return isd_live_target_add_int(rt, nc, true, err, errlen);
}

int
isd_live_target_remove_int(struct isd_target_running *rt, const char *name, bool force,
			   bool check, char *err, size_t errlen)
{
	struct isd_target_cfg *cand;
	struct isd_target_node_cfg *nc;
	struct isd_target_node *n;
	int sessions, asked, rc;

	rc = find_target(rt, &rt->cfg, name, &n, &nc, err, errlen);
	if (rc < 0)
		return rc;
	sessions = isd_iscsi_tgt_node_sessions(rt->tgt, &n->tn);
	if (sessions > 0 && !force) {
		isd_target_errf(err, errlen,
				"target %s has %d session%s logged in (force logs them out)",
				n->tn.name, sessions, sessions == 1 ? "" : "s");
		return -EBUSY;
	}
	cand = model_begin(rt, err, errlen);
	if (cand == NULL)
		return -ENOMEM;
	rc = node_index(cand, name);
	isd_target_node_cfg_fini(&cand->nodes[rc]);
	memmove(&cand->nodes[rc], &cand->nodes[rc + 1],
		(size_t)(cand->node_count - rc - 1) * sizeof(cand->nodes[0]));
	cand->node_count--;
	rc = model_check(cand, check, err, errlen);
	if (rc < 0) {
		model_drop(cand);
		return rc;
	}
	/* no new login from here on; the node lives while its sessions close */
	isd_iscsi_tgt_remove_node(rt->tgt, &n->tn);
	TAILQ_REMOVE(&rt->nodes, n, link);
	TAILQ_INSERT_TAIL(&rt->removed, n, link);
	asked = isd_iscsi_tgt_node_logout(rt->tgt, &n->tn);
	model_commit(rt, cand);
	isd_log_info("target %s removed%s", n->tn.name,
		     asked > 0 ? "; its sessions are asked to log out" : "");
	/* freed from the reactor once no connection refers to it (maybe at once) */
	isd_reactor_defer(rt->r, &rt->reap_timer);
	return 0;
}

int
isd_live_target_remove(struct isd_target_running *rt, const char *name, bool force, char *err,
		       size_t errlen)
{
	return isd_live_target_remove_int(rt, name, force, true, err, errlen);
}

/* Applies a model node's access (ACL, credentials) after the model changed it. */
static int
access_commit(struct isd_target_running *rt, struct isd_target_cfg *cand, bool check,
	      struct isd_target_node *n, const char *name, char *err, size_t errlen)
{
	int rc = model_check(cand, check, err, errlen);

	if (rc == 0 && node_sync_access(&n->tn, &cand->nodes[node_index(cand, name)]) < 0) {
		isd_target_errf(err, errlen, "out of memory");
		rc = -ENOMEM;
	}
	if (rc < 0) {
		model_drop(cand);
		return rc;
	}
	model_commit(rt, cand);
	return 0;
}

int
isd_live_target_set_auth_int(struct isd_target_running *rt, const char *target,
			     const struct isd_auth_cfg *auth, bool check, char *err, size_t errlen)
{
	struct isd_target_cfg *cand;
	struct isd_target_node_cfg *nc;
	struct isd_target_node *n;
	int rc;

	if (auth == NULL)
		return -EINVAL;
	cand = model_begin(rt, err, errlen);
	if (cand == NULL)
		return -ENOMEM;
	rc = find_target(rt, cand, target, &n, &nc, err, errlen);
	if (rc < 0) {
		model_drop(cand);
		return rc;
	}
	nc->auth = *auth;
	auth_norm(&nc->auth);
	rc = access_commit(rt, cand, check, n, target, err, errlen);
	if (rc == 0)
		isd_log_info("target %s: CHAP %s%s for logins from now on", n->tn.name,
			     auth->require_chap ? "required" : "off",
			     auth->mutual ? " (mutual)" : "");
	return rc;
}

int
isd_live_target_set_auth(struct isd_target_running *rt, const char *target,
			 const struct isd_auth_cfg *auth, char *err, size_t errlen)
{
	return isd_live_target_set_auth_int(rt, target, auth, true, err, errlen);
}

/* ---- LUNs ---- */

static int
find_lun(struct isd_target_running *rt, struct isd_target_cfg *cfg, const char *target,
	 uint32_t lun, struct isd_target_node **n, struct isd_target_node_cfg **nc, int *li,
	 char *err, size_t errlen)
{
	int rc = find_target(rt, cfg, target, n, nc, err, errlen);

	if (rc < 0)
		return rc;
	*li = lun_index(*nc, lun);
	if (*li < 0 || lun >= ISD_SCSI_MAX_LUNS || (*n)->bs[lun] == NULL) {
		isd_target_errf(err, errlen, "target %s: no LUN %u", (*n)->tn.name, lun);
		return -ENOENT;
	}
	return 0;
}

int
isd_live_lun_add_int(struct isd_target_running *rt, const char *target,
		     const struct isd_target_lun_cfg *l, bool check, char *err, size_t errlen)
{
	struct isd_target_cfg *cand;
	struct isd_target_node_cfg *nc;
	struct isd_target_lun_cfg *slot;
	struct isd_target_node *n;
	int rc;

	if (l == NULL || l->kind == NULL) {
		isd_target_errf(err, errlen, "a LUN needs a backing store");
		return -EINVAL;
	}
	cand = model_begin(rt, err, errlen);
	if (cand == NULL)
		return -ENOMEM;
	rc = find_target(rt, cand, target, &n, &nc, err, errlen);
	if (rc < 0)
		goto out;
	if (lun_index(nc, l->number) >= 0 ||
	    (l->number < ISD_SCSI_MAX_LUNS && n->bs[l->number] != NULL)) {
		isd_target_errf(err, errlen, "target %s: LUN %u exists", n->tn.name, l->number);
		rc = -EEXIST;
		goto out;
	}
	slot = isd_target_node_add_lun(nc);
	if (slot == NULL) {
		isd_target_errf(err, errlen, "out of memory");
		rc = -ENOMEM;
		goto out;
	}
	*slot = *l;
	if (slot->origin[0] == '\0')
		snprintf(slot->origin, sizeof(slot->origin), "target %s LUN %u", nc->name,
			 l->number);
	rc = model_check(cand, check, err, errlen);
	if (rc == 0 && l->number >= ISD_SCSI_MAX_LUNS) {
		isd_target_errf(err, errlen, "LUN %u out of range (0..%d)", l->number,
				ISD_SCSI_MAX_LUNS - 1);
		rc = -EINVAL;
	}
	if (rc == 0)
		rc = isd_target_lun_open(rt, nc, slot, n, err, errlen);
	if (rc < 0)
		goto out;
	/* the target's sessions learn of it (REPORTED LUNS DATA HAS CHANGED) */
	isd_scsi_dev_luns_changed(n->tn.dev);
	model_commit(rt, cand);
	isd_log_info("target %s: LUN %u added (%s)", n->tn.name, l->number, l->spec);
	return 0;
out:
	model_drop(cand);
	return rc;
}

int
isd_live_lun_add(struct isd_target_running *rt, const char *target,
		 const struct isd_target_lun_cfg *l, char *err, size_t errlen)
{
	return isd_live_lun_add_int(rt, target, l, true, err, errlen);
}

int
isd_live_lun_remove_int(struct isd_target_running *rt, const char *target, uint32_t lun,
			bool check, char *err, size_t errlen)
{
	struct isd_target_cfg *cand;
	struct isd_target_node_cfg *nc;
	struct isd_target_node *n;
	uint32_t busy;
	int li, rc;

	cand = model_begin(rt, err, errlen);
	if (cand == NULL)
		return -ENOMEM;
	rc = find_lun(rt, cand, target, lun, &n, &nc, &li, err, errlen);
	if (rc < 0)
		goto out;
	memmove(&nc->luns[li], &nc->luns[li + 1],
		(size_t)(nc->lun_count - li - 1) * sizeof(nc->luns[0]));
	nc->lun_count--;
	rc = model_check(cand, check, err, errlen);
	if (rc < 0)
		goto out;
	busy = isd_scsi_lu_busy(n->tn.dev, lun);
	/* new commands fail at once; the store closes after the last one in flight */
	rc = isd_scsi_dev_remove_lu(n->tn.dev, lun, isd_target_lun_gone, rt);
	if (rc < 0) {
		isd_target_errf(err, errlen, "target %s: LUN %u: %s", n->tn.name, lun,
				strerror(-rc));
		goto out;
	}
	n->bs[lun] = NULL;
	model_commit(rt, cand);
	isd_log_info("target %s: LUN %u removed%s", n->tn.name, lun,
		     busy > 0 ? " (its store closes when the commands in flight end)" : "");
	return 0;
out:
	model_drop(cand);
	return rc;
}

int
isd_live_lun_remove(struct isd_target_running *rt, const char *target, uint32_t lun, char *err,
		    size_t errlen)
{
	return isd_live_lun_remove_int(rt, target, lun, true, err, errlen);
}

/* The spec of l at a new size, as its kind writes it: "file:P,size=S", "zero:S". */
static int
lun_respec(struct isd_target_lun_cfg *l, uint64_t size, char *err, size_t errlen)
{
	struct isd_target_lun_cfg *tmp;
	char sz[32];
	int rc;

	/* a device's or an RBD image's size is its own: the spec has none */
	if (l->kind->own_size)
		return 0;
	tmp = calloc(1, sizeof(*tmp));
	if (tmp == NULL)
		return -ENOMEM;
	isd_bstore_size_format(size, sz, sizeof(sz));
	if (l->path[0] != '\0')
		snprintf(tmp->origin, sizeof(tmp->origin), "%s:%s,size=%s", l->kind->scheme,
			 l->path, sz);
	else
		snprintf(tmp->origin, sizeof(tmp->origin), "%s:%s", l->kind->scheme, sz);
	rc = isd_target_lun_spec_parse(tmp->origin, tmp, err, errlen);
	if (rc == 0) {
		snprintf(l->spec, sizeof(l->spec), "%s", tmp->spec);
		l->size = tmp->size;
	}
	free(tmp);
	return rc;
}

int
isd_live_lun_resize_int(struct isd_target_running *rt, const char *target, uint32_t lun,
			uint64_t size, bool check, char *err, size_t errlen)
{
	struct isd_target_cfg *cand;
	struct isd_target_node_cfg *nc;
	struct isd_target_node *n;
	struct isd_target_lun_cfg *l;
	struct isd_bstore *bs;
	char why[256] = "";
	uint32_t blk;
	int li, rc;

	cand = model_begin(rt, err, errlen);
	if (cand == NULL)
		return -ENOMEM;
	rc = find_lun(rt, cand, target, lun, &n, &nc, &li, err, errlen);
	if (rc < 0)
		goto out;
	l = &nc->luns[li];
	bs = n->bs[lun];
	blk = l->block_size ? l->block_size : 512;
	if (size == 0 || size % blk != 0) {
		isd_target_errf(err, errlen,
				"target %s: LUN %u: size %llu is not a non-zero multiple of the "
				"%u-byte block size",
				n->tn.name, lun, (unsigned long long)size, blk);
		rc = -EINVAL;
		goto out;
	}
	rc = lun_respec(l, size, err, errlen);
	if (rc == 0)
		rc = model_check(cand, check, err, errlen);
	if (rc < 0)
		goto out;
	rc = isd_bstore_resize(bs, size, why, sizeof(why));
	if (rc < 0) {
		isd_target_errf(err, errlen, "target %s: LUN %u: %s", n->tn.name, lun,
				why[0] ? why : strerror(-rc));
		goto out;
	}
	/* every nexus gets CAPACITY DATA HAS CHANGED */
	isd_scsi_lu_capacity_changed(n->tn.dev, lun);
	model_commit(rt, cand);
	isd_log_info("target %s: LUN %u resized to %llu bytes", n->tn.name, lun,
		     (unsigned long long)size);
	return 0;
out:
	model_drop(cand);
	return rc;
}

int
isd_live_lun_resize(struct isd_target_running *rt, const char *target, uint32_t lun,
		    uint64_t size, char *err, size_t errlen)
{
	return isd_live_lun_resize_int(rt, target, lun, size, true, err, errlen);
}

bool
isd_live_lun_can_write(struct isd_target_running *rt, struct isd_target_node *n, uint32_t lun)
{
	struct isd_bstore *bs = lun < ISD_SCSI_MAX_LUNS ? n->bs[lun] : NULL;
	bool reg_ro = false;

	if (bs == NULL || bs->read_only)
		return false;
	return !(bs->mem_base != NULL && isd_target_mem_registered(rt, bs->mem_base, &reg_ro) &&
		 reg_ro);
}

int
isd_live_lun_set_read_only_int(struct isd_target_running *rt, const char *target, uint32_t lun,
			       bool read_only, bool check, char *err, size_t errlen)
{
	struct isd_target_cfg *cand;
	struct isd_target_node_cfg *nc;
	struct isd_target_node *n;
	int li, rc;

	cand = model_begin(rt, err, errlen);
	if (cand == NULL)
		return -ENOMEM;
	rc = find_lun(rt, cand, target, lun, &n, &nc, &li, err, errlen);
	if (rc < 0)
		goto out;
	/*
	 * A store opened read-only (file or dev with ,ro), or RAM registered for
	 * RDMA without write access, would have to be opened again: that is a
	 * remove and an add, which the caller can do knowingly.
	 */
	if (!read_only && !isd_live_lun_can_write(rt, n, lun)) {
		isd_target_errf(err, errlen,
				"target %s: LUN %u: its store was opened read-only; remove the LUN "
				"and add it again to make it writable",
				n->tn.name, lun);
		rc = -EROFS;
		goto out;
	}
	nc->luns[li].read_only = read_only;
	rc = model_check(cand, check, err, errlen);
	if (rc < 0)
		goto out;
	rc = isd_scsi_lu_set_read_only(n->tn.dev, lun, read_only);
	if (rc < 0) {
		isd_target_errf(err, errlen, "target %s: LUN %u: %s", n->tn.name, lun,
				strerror(-rc));
		goto out;
	}
	model_commit(rt, cand);
	isd_log_info("target %s: LUN %u is %s for commands from now on", n->tn.name, lun,
		     read_only ? "read-only" : "writable");
	return 0;
out:
	model_drop(cand);
	return rc;
}

int
isd_live_lun_set_read_only(struct isd_target_running *rt, const char *target, uint32_t lun,
			   bool read_only, char *err, size_t errlen)
{
	return isd_live_lun_set_read_only_int(rt, target, lun, read_only, true, err, errlen);
}

int
isd_live_lun_set_alua_state_int(struct isd_target_running *rt, const char *target, uint32_t lun,
				int state, bool check, char *err, size_t errlen)
{
	struct isd_target_cfg *cand;
	struct isd_target_node_cfg *nc;
	struct isd_target_node *n;
	const char *name = isd_scsi_alua_state_name(state);
	int li, rc;

	if (name == NULL) {
		isd_target_errf(err, errlen, "unknown ALUA state %d", state);
		return -EINVAL;
	}
	cand = model_begin(rt, err, errlen);
	if (cand == NULL)
		return -ENOMEM;
	rc = find_lun(rt, cand, target, lun, &n, &nc, &li, err, errlen);
	if (rc < 0)
		goto out;
	/* a state nobody can see (no TPGS, no RTPG) would only mislead */
	if (nc->alua_group == 0) {
		isd_target_errf(err, errlen, "target %s has no alua_group (ALUA is off)",
				n->tn.name);
		rc = -EINVAL;
		goto out;
	}
	nc->luns[li].alua_state = (uint8_t)state;
	nc->luns[li].alua_state_set = true;
	rc = model_check(cand, check, err, errlen);
	if (rc < 0)
		goto out;
	rc = isd_scsi_lu_set_alua_state(n->tn.dev, lun, (enum isd_scsi_alua_state)state);
	if (rc < 0) {
		isd_target_errf(err, errlen, "target %s: LUN %u: %s", n->tn.name, lun,
				strerror(-rc));
		goto out;
	}
	model_commit(rt, cand);
	isd_log_info("target %s: LUN %u: ALUA state %s", n->tn.name, lun, name);
	return 0;
out:
	model_drop(cand);
	return rc;
}

int
isd_live_lun_takeover(struct isd_target_running *rt, const char *target, uint32_t lun,
		      char *err, size_t errlen)
{
	struct isd_target_cfg *cand;
	struct isd_target_node_cfg *nc;
	struct isd_target_node *n;
	struct isd_bstore *bs;
	char why[256] = "";
	int li, rc;

	/* the model is only looked at: the state changes when the lock does */
	cand = model_begin(rt, err, errlen);
	if (cand == NULL)
		return -ENOMEM;
	rc = find_lun(rt, cand, target, lun, &n, &nc, &li, err, errlen);
	if (rc < 0)
		goto out;
	bs = n->bs[lun];
	if (bs->ops->takeover == NULL) {
		isd_target_errf(err, errlen, "target %s: LUN %u: %s has no cluster lock to take",
				n->tn.name, lun, bs->desc);
		rc = -ENOTSUP;
		goto out;
	}
	rc = bs->ops->takeover(bs, why, sizeof(why));
	if (rc < 0) {
		isd_target_errf(err, errlen, "target %s: LUN %u: %s", n->tn.name, lun,
				why[0] ? why : strerror(-rc));
		goto out;
	}
	isd_log_info("target %s: LUN %u: taking the lock over", n->tn.name, lun);
out:
	model_drop(cand);
	return rc;
}

int
isd_live_lun_set_alua_state(struct isd_target_running *rt, const char *target, uint32_t lun,
			    int state, char *err, size_t errlen)
{
	return isd_live_lun_set_alua_state_int(rt, target, lun, state, true, err, errlen);
}

/* ---- ACLs and CHAP ---- */

int
isd_live_acl_add_int(struct isd_target_running *rt, const char *target,
		     const struct isd_target_ini_cfg *ini, bool check, char *err, size_t errlen)
{
	struct isd_target_cfg *cand;
	struct isd_target_node_cfg *nc;
	struct isd_target_node *n;
	char why[160], esc[ISD_LOG_ESC_MAX];
	int rc;

	if (ini == NULL)
		return -EINVAL;
	if (isd_target_name_check(ini->name, why, sizeof(why)) < 0) {
		isd_target_errf(err, errlen, "invalid initiator name '%s': %s",
				isd_log_escape_str(esc, sizeof(esc), ini->name), why);
		return -EINVAL;
	}
	cand = model_begin(rt, err, errlen);
	if (cand == NULL)
		return -ENOMEM;
	rc = find_target(rt, cand, target, &n, &nc, err, errlen);
	if (rc < 0)
		goto out;
	if (acl_index(nc, ini->name) >= 0) {
		isd_target_errf(err, errlen, "target %s: %s is allowed already", n->tn.name,
				ini->name);
		rc = -EEXIST;
		goto out;
	}
	rc = isd_target_node_add_acl(nc, ini->name);
	if (rc == 0 && (ini->auth.require_chap || ini->auth.mutual)) {
		int ii = ini_index(nc, ini->name);
		struct isd_target_ini_cfg *e = ii >= 0 ? &nc->ini[ii] : isd_target_node_add_ini(nc);

		if (e == NULL) {
			rc = -ENOMEM;
		} else {
			*e = *ini;
			auth_norm(&e->auth);
			if (e->origin[0] == '\0')
				snprintf(e->origin, sizeof(e->origin), "target %s acl %s",
					 nc->name, ini->name);
		}
	}
	if (rc < 0) {
		isd_target_errf(err, errlen, "out of memory");
		goto out;
	}
	rc = access_commit(rt, cand, check, n, target, err, errlen);
	if (rc == 0)
		isd_log_info("target %s: %s allowed%s", n->tn.name, ini->name,
			     ini->auth.require_chap ? ", own CHAP" : "");
	return rc;
out:
	model_drop(cand);
	return rc;
}

int
isd_live_acl_add(struct isd_target_running *rt, const char *target,
		 const struct isd_target_ini_cfg *ini, char *err, size_t errlen)
{
	return isd_live_acl_add_int(rt, target, ini, true, err, errlen);
}

int
isd_live_acl_remove_int(struct isd_target_running *rt, const char *target,
			const char *initiator, bool check, char *err, size_t errlen)
{
	struct isd_target_cfg *cand;
	struct isd_target_node_cfg *nc;
	struct isd_target_node *n;
	char esc[ISD_LOG_ESC_MAX];
	int ai, ii, rc;

	if (initiator == NULL)
		return -EINVAL;
	cand = model_begin(rt, err, errlen);
	if (cand == NULL)
		return -ENOMEM;
	rc = find_target(rt, cand, target, &n, &nc, err, errlen);
	if (rc < 0)
		goto out;
	ai = acl_index(nc, initiator);
	if (ai < 0) {
		isd_target_errf(err, errlen, "target %s: %s is not in its ACL", n->tn.name,
				isd_log_escape_str(esc, sizeof(esc), initiator));
		rc = -ENOENT;
		goto out;
	}
	free(nc->acl[ai]);
	memmove(&nc->acl[ai], &nc->acl[ai + 1], (size_t)(nc->acl_count - ai - 1) * sizeof(char *));
	nc->acl_count--;
	/* its own credentials go with it */
	ii = ini_index(nc, initiator);
	if (ii >= 0) {
		explicit_bzero(&nc->ini[ii], sizeof(nc->ini[ii]));
		memmove(&nc->ini[ii], &nc->ini[ii + 1],
			(size_t)(nc->ini_count - ii - 1) * sizeof(nc->ini[0]));
		nc->ini_count--;
	}
	rc = access_commit(rt, cand, check, n, target, err, errlen);
	if (rc == 0) {
		isd_log_info("target %s: %s no longer allowed (its sessions stay logged in)",
			     n->tn.name, isd_log_escape_str(esc, sizeof(esc), initiator));
		if (n->tn.acl_count == 0)
			isd_log_warn("target %s: its ACL is empty: every initiator may log in",
				     n->tn.name);
	}
	return rc;
out:
	model_drop(cand);
	return rc;
}

int
isd_live_acl_remove(struct isd_target_running *rt, const char *target, const char *initiator,
		    char *err, size_t errlen)
{
	return isd_live_acl_remove_int(rt, target, initiator, true, err, errlen);
}

int
isd_live_acl_set_auth_int(struct isd_target_running *rt, const char *target,
			  const char *initiator, const struct isd_auth_cfg *auth, bool check,
			  char *err, size_t errlen)
{
	struct isd_target_cfg *cand;
	struct isd_target_node_cfg *nc;
	struct isd_target_node *n;
	char why[160], esc[ISD_LOG_ESC_MAX];
	int ii, rc;

	if (initiator == NULL || auth == NULL)
		return -EINVAL;
	if (isd_target_name_check(initiator, why, sizeof(why)) < 0) {
		isd_target_errf(err, errlen, "invalid initiator name '%s': %s",
				isd_log_escape_str(esc, sizeof(esc), initiator), why);
		return -EINVAL;
	}
	cand = model_begin(rt, err, errlen);
	if (cand == NULL)
		return -ENOMEM;
	rc = find_target(rt, cand, target, &n, &nc, err, errlen);
	if (rc < 0)
		goto out;
	ii = ini_index(nc, initiator);
	if (!auth->require_chap && !auth->mutual) {
		/* cleared: the target's own credentials apply to it again */
		if (ii >= 0) {
			explicit_bzero(&nc->ini[ii], sizeof(nc->ini[ii]));
			memmove(&nc->ini[ii], &nc->ini[ii + 1],
				(size_t)(nc->ini_count - ii - 1) * sizeof(nc->ini[0]));
			nc->ini_count--;
		}
	} else {
		struct isd_target_ini_cfg *e = ii >= 0 ? &nc->ini[ii] : isd_target_node_add_ini(nc);

		if (e == NULL) {
			isd_target_errf(err, errlen, "out of memory");
			rc = -ENOMEM;
			goto out;
		}
		if (ii < 0) {
			snprintf(e->name, sizeof(e->name), "%s", initiator);
			snprintf(e->origin, sizeof(e->origin), "target %s acl %s", nc->name,
				 initiator);
		}
		e->auth = *auth;
		auth_norm(&e->auth);
	}
	rc = access_commit(rt, cand, check, n, target, err, errlen);
	if (rc == 0)
		isd_log_info("target %s: credentials of %s %s", n->tn.name, initiator,
			     auth->require_chap || auth->mutual ? "set" : "cleared");
	return rc;
out:
	model_drop(cand);
	return rc;
}

int
isd_live_acl_set_auth(struct isd_target_running *rt, const char *target, const char *initiator,
		      const struct isd_auth_cfg *auth, char *err, size_t errlen)
{
	return isd_live_acl_set_auth_int(rt, target, initiator, auth, true, err, errlen);
}

int
isd_live_discovery_set_auth(struct isd_target_running *rt, const struct isd_auth_cfg *auth,
			    char *err, size_t errlen)
{
	struct isd_target_cfg *cand;
	int rc;

	if (auth == NULL)
		return -EINVAL;
	cand = model_begin(rt, err, errlen);
	if (cand == NULL)
		return -ENOMEM;
	cand->discovery_auth = *auth;
	auth_norm(&cand->discovery_auth);
	rc = isd_target_cfg_validate(cand, err, errlen);
	if (rc < 0) {
		model_drop(cand);
		return rc;
	}
	isd_iscsi_tgt_cfg(rt->tgt)->discovery_auth = cand->discovery_auth;
	model_commit(rt, cand);
	isd_log_info("discovery sessions: CHAP %s%s for logins from now on",
		     auth->require_chap ? "required" : "off", auth->mutual ? " (mutual)" : "");
	return 0;
}

/* ---- sessions ---- */

int
isd_live_session_logout(struct isd_target_running *rt, uint16_t tsih, char *err, size_t errlen)
{
	int rc = isd_iscsi_tgt_session_logout(rt->tgt, tsih);

	if (rc == -ENOENT)
		isd_target_errf(err, errlen, "no session with TSIH %u", tsih);
	else if (rc < 0)
		isd_target_errf(err, errlen, "session TSIH %u: %s", tsih, strerror(-rc));
	else
		isd_log_info("session TSIH %u asked to log out", tsih);
	return rc;
}

int
isd_live_conn_drop(struct isd_target_running *rt, uint16_t tsih, uint16_t cid, char *err,
		   size_t errlen)
{
	int rc = isd_iscsi_tgt_conn_drop(rt->tgt, tsih, cid);

	if (rc < 0)
		isd_target_errf(err, errlen, "no connection %u in a session with TSIH %u", cid,
				tsih);
	else
		isd_log_info("session TSIH %u: connection %u dropped", tsih, cid);
	return rc;
}
