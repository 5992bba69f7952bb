/*
 * Portals of the running target: opening and closing listeners at start and
 * while running, binding target nodes to some of them, and the LUN memory a
 * datamover kind registers once its first portal is open.
 *
 * A portal's URL names it everywhere ("tcp://127.0.0.1:3260"): in the file's
 * target `portals` lists, in the control socket's methods and in the running
 * model. A URL whose port is 0 (any) also matches the port the listener got.
 */
#include "server/live.h"
#include "server/running_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "reactor/reactor.h"
#include "util/log.h"
#include "util/str.h"

void
isd_target_portal_url(const struct isd_target_portal_spec *ps, char *buf, size_t len)
{
	bool v6 = strchr(ps->host, ':') != NULL;

	snprintf(buf, len, "%s://%s%s%s:%u", ps->kind != NULL ? ps->kind->scheme : "tcp",
		 v6 ? "[" : "", ps->host, v6 ? "]" : "", ps->port);
}

static int
kind_index(const struct isd_dm_kind *kind)
{
	for (unsigned k = 0; k < isd_dm_kind_count && k < ISD_TARGET_DM_KINDS_MAX; k++)
		if (isd_dm_kinds[k] == kind)
			return (int)k;
	return -1;
}

int
isd_target_mem_register(struct isd_target_running *rt, const struct isd_dm_kind *kind,
			struct isd_bstore *bs, bool read_only, const char *origin, char *err,
			size_t errlen)
{
	struct isd_target_region *reg;
	char why[256] = "";
	int rc;

	reg = realloc(rt->registered, (size_t)(rt->registered_count + 1) * sizeof(*reg));
	if (reg == NULL) {
		isd_target_errf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	rt->registered = reg;
	/* a read-only LUN is registered without write access */
	rc = kind->register_memory(bs->mem_base, bs->size, read_only, why, sizeof(why));
	if (rc < 0) {
		isd_target_errf(err, errlen, "%s: %s", origin, why[0] ? why : strerror(-rc));
		return rc;
	}
	/* the store must not drop pages the adapter has pinned (no MADV_DONTNEED) */
	bs->mem_pinned = true;
	reg = &rt->registered[rt->registered_count++];
	reg->kind = kind;
	reg->base = bs->mem_base;
	reg->read_only = read_only;
	return 0;
}

/* Whether LUN lun of the running model's target name is read-only now. */
static bool
lun_read_only(struct isd_target_running *rt, const char *name, uint32_t lun)
{
	const struct isd_target_node_cfg *nc = isd_target_cfg_find_node(&rt->cfg, name);

	for (int i = 0; nc != NULL && i < nc->lun_count; i++)
		if (nc->luns[i].number == lun)
			return nc->luns[i].read_only;
	return false;
}

/*
 * The first portal of a kind that registers memory: every LUN already open
 * gets registered with it, as open_lun does for the kinds open before it.
 */
static int
kind_first_open(struct isd_target_running *rt, const struct isd_dm_kind *kind, char *err,
		size_t errlen)
{
	struct isd_target_node *n;
	int k = kind_index(kind), rc, j;
	bool ro;

	if (k < 0 || rt->kind_open[k])
		return 0;
	TAILQ_FOREACH(n, &rt->nodes, link) {
		for (uint32_t i = 0; i < ISD_SCSI_MAX_LUNS && kind->register_memory != NULL; i++) {
			struct isd_bstore *bs = n->bs[i];
			char origin[ISD_NAME_MAX + 64];

			if (bs == NULL || bs->mem_base == NULL)
				continue;
			snprintf(origin, sizeof(origin), "%s LUN %u", n->tn.name, i);
			ro = bs->read_only || lun_read_only(rt, n->tn.name, i);
			rc = isd_target_mem_register(rt, kind, bs, ro, origin, err, errlen);
			if (rc < 0)
				goto err_undo;
		}
	}
	rt->kind_open[k] = true;
	return 0;

err_undo:
	/* all or nothing: the kind was not open, so every registration with it is new */
	j = 0;
	for (int r = 0; r < rt->registered_count; r++) {
		struct isd_target_region *g = &rt->registered[r];

		if (g->kind == kind)
			kind->unregister_memory(g->base);
		else
			rt->registered[j++] = *g;
	}
	rt->registered_count = j;
	return rc;
}

/* The same portal as ps names: kind, address, and port as asked or as bound. */
static bool
portal_matches(const struct isd_target_portal *p, const struct isd_target_portal_spec *ps)
{
	return p->spec.kind == ps->kind && isd_addr_same(p->spec.host, ps->host) &&
	       (p->spec.port == ps->port || (p->registered && p->pc.port == ps->port));
}

struct isd_target_portal *
isd_target_portal_find(struct isd_target_running *rt, const struct isd_target_portal_spec *ps)
{
	for (int i = 0; i < rt->portal_count; i++)
		if (portal_matches(rt->portals[i], ps))
			return rt->portals[i];
	return NULL;
}

/*
 * The reactors a portal's connections may be placed on (`reactors` of the
 * spec; all when empty), checked against the reactors that run.
 */
static int
portal_placement(struct isd_target_running *rt, const struct isd_target_portal_spec *ps,
		 struct isd_reactor_mask *out, char *err, size_t errlen)
{
	struct isd_reactor_group *g = isd_reactor_group_of(rt->r);
	unsigned n = g != NULL ? isd_reactor_group_size(g) : 1, hi;
	char url[ISD_TARGET_URL_MAX], why[200];

	memset(out, 0, sizeof(*out));
	if (ps->reactors[0] == '\0')
		return 0;
	isd_target_portal_url(ps, url, sizeof(url));
	if (isd_target_reactor_list_parse(ps->reactors, out, &hi, why, sizeof(why)) < 0) {
		isd_target_errf(err, errlen, "portal %s: reactors: %s", url, why);
		return -EINVAL;
	}
	if (hi >= n) {
		isd_target_errf(err, errlen,
				"portal %s: reactors: reactor %u does not run (%u reactor%s, "
				"numbered from 0)",
				url, hi, n, n == 1 ? "" : "s");
		return -EINVAL;
	}
	return 0;
}

int
isd_target_portal_set_reactors(struct isd_target_running *rt, struct isd_target_portal *p,
			  const char *reactors, char *err, size_t errlen)
{
	struct isd_target_portal_spec ps = p->spec;
	struct isd_reactor_mask place;
	int rc;

	if (strlen(reactors) >= sizeof(ps.reactors)) {
		isd_target_errf(err, errlen, "reactors: too long");
		return -EINVAL;
	}
	snprintf(ps.reactors, sizeof(ps.reactors), "%s", reactors);
	rc = portal_placement(rt, &ps, &place, err, errlen);
	if (rc < 0)
		return rc;
	if (p->handle != NULL && ps.kind->place != NULL)
		ps.kind->place(p->handle, reactors[0] != '\0' ? &place : NULL);
	p->spec = ps;
	return 0;
}

static void
portal_close(struct isd_target_portal *p)
{
	if (p->handle != NULL)
		p->spec.kind->close(p->handle);
	p->handle = NULL;
}

int
isd_target_portal_open(struct isd_target_running *rt, const struct isd_target_portal_spec *ps,
		       char *err, size_t errlen)
{
	uint16_t tpgt = ps->tpgt == -1 ? 1 : (uint16_t)ps->tpgt;
	bool v6 = strchr(ps->host, ':') != NULL;
	struct isd_target_portal *p, **arr;
	struct isd_reactor_mask place;
	int rc;

	rc = portal_placement(rt, ps, &place, err, errlen);
	if (rc < 0)
		return rc;

	arr = realloc(rt->portals, (size_t)(rt->portal_count + 1) * sizeof(*arr));
	if (arr == NULL)
		goto err_nomem;
	rt->portals = arr;
	p = calloc(1, sizeof(*p));
	if (p == NULL)
		goto err_nomem;
	p->spec = *ps;
	rc = ps->kind->listen(rt->tgt, rt->r, ps->host, ps->port, tpgt, &p->handle, err, errlen);
	if (rc < 0) {
		p->handle = NULL;
		if (err != NULL && errlen > 0 && err[0] == '\0')
			isd_target_errf(err, errlen, "%s%s%s:%u: %s", v6 ? "[" : "", ps->host,
					v6 ? "]" : "", ps->port, strerror(-rc));
		free(p);
		return rc;
	}
	rc = kind_first_open(rt, ps->kind, err, errlen);
	if (rc < 0) {
		portal_close(p);
		free(p);
		return rc;
	}
	if (ps->reactors[0] != '\0' && ps->kind->place != NULL)
		ps->kind->place(p->handle, &place);
	snprintf(p->pc.host, sizeof(p->pc.host), "%s", ps->host);
	p->pc.port = ps->kind->port(p->handle);
	p->pc.tpgt = tpgt;
	p->pc.transport = ps->transport;
	rc = isd_iscsi_tgt_add_portal(rt->tgt, &p->pc);
	if (rc < 0) {
		isd_target_errf(err, errlen, "%s: cannot register portal: %s", ps->origin,
				strerror(-rc));
		portal_close(p);
		free(p);
		return rc;
	}
	p->registered = true;
	{
		struct isd_target_portal_spec bound = *ps;

		bound.port = p->pc.port;
		isd_target_portal_url(&bound, p->url, sizeof(p->url));
	}
	rt->portals[rt->portal_count++] = p;
	isd_log_info("listening on %s (tpgt %u%s%s)", p->url, tpgt,
		     ps->reactors[0] != '\0' ? ", reactors " : "", ps->reactors);
	return 0;

err_nomem:
	isd_target_errf(err, errlen, "out of memory");
	return -ENOMEM;
}

void
isd_target_portals_close(struct isd_target_running *rt)
{
	for (int i = 0; i < rt->portal_count; i++)
		portal_close(rt->portals[i]);
}

void
isd_target_portals_free(struct isd_target_running *rt)
{
	for (int i = 0; i < rt->portal_count; i++) {
		portal_close(rt->portals[i]);
		free(rt->portals[i]);
	}
	free(rt->portals);
	rt->portals = NULL;
	rt->portal_count = 0;
}

/* Resolves URLs to running portals: 0 and a new array in *out (NULL for n = 0), or -errno. */
static int
resolve_urls(struct isd_target_running *rt, const char *const *urls, int n,
	     const struct isd_portal_cfg ***out, char *err, size_t errlen)
{
	const struct isd_portal_cfg **arr = NULL;
	char why[160], esc[ISD_TARGET_URL_MAX * 4];

	*out = NULL;
	if (n <= 0)
		return 0;
	arr = calloc((size_t)n, sizeof(*arr));
	if (arr == NULL) {
		isd_target_errf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	for (int i = 0; i < n; i++) {
		struct isd_target_portal_spec ps;
		struct isd_target_portal *p;

		if (urls[i] == NULL) {
			isd_target_errf(err, errlen, "portal %d of %d missing", i + 1, n);
			goto err_inval;
		}
		/* the caller's text (the control socket's) goes into err escaped */
		isd_log_escape_str(esc, sizeof(esc), urls[i]);
		if (isd_target_portal_parse(urls[i], &ps, why, sizeof(why)) < 0) {
			isd_target_errf(err, errlen, "portal %s: %s", esc, why);
			goto err_inval;
		}
		p = isd_target_portal_find(rt, &ps);
		if (p == NULL || !p->registered) {
			isd_target_errf(err, errlen, "no portal %s", esc);
			free(arr);
			return -ENOENT;
		}
		for (int j = 0; j < i; j++) {
			if (arr[j] == &p->pc) {
				isd_target_errf(err, errlen, "portal %s named twice", esc);
				goto err_inval;
			}
		}
		arr[i] = &p->pc;
	}
	*out = arr;
	return 0;

err_inval:
	free(arr);
	return -EINVAL;
}

/* One line naming the portals a node is now reachable on, with the ports bound. */
static void
log_binding(const struct isd_target_running *rt, const struct isd_tnode *tn)
{
	char list[512] = "";

	for (int i = 0; i < tn->portal_count; i++)
		for (int j = 0; j < rt->portal_count; j++)
			if (&rt->portals[j]->pc == tn->portals[i])
				snprintf(list + strlen(list), sizeof(list) - strlen(list), "%s%s",
					 i ? ", " : "", rt->portals[j]->url);
	if (!tn->bound)
		isd_log_info("target %s: reachable on every portal", tn->name);
	else
		isd_log_info("target %s: only on %s", tn->name, list);
}

int
isd_target_node_bind(struct isd_target_running *rt, struct isd_tnode *tn, const char *const *urls,
		     int n, char *err, size_t errlen)
{
	const struct isd_portal_cfg **arr;
	int rc;

	rc = resolve_urls(rt, urls, n, &arr, err, errlen);
	if (rc < 0)
		return rc;
	free(tn->portals);
	tn->portals = arr;
	tn->portal_count = n > 0 ? n : 0;
	tn->bound = n > 0;
	if (n > 0)
		log_binding(rt, tn);
	return 0;
}

void
isd_target_node_unbind(struct isd_tnode *tn)
{
	free(tn->portals);
	tn->portals = NULL;
	tn->portal_count = 0;
	tn->bound = false;
}

/* ---- live changes (live.h) ---- */

/* Replaces a model node's bindings with urls (taken over). */
static void
model_set_bindings(struct isd_target_node_cfg *nc, char **urls, int n)
{
	for (int i = 0; i < nc->portal_bind_count; i++)
		free(nc->portals[i]);
	free(nc->portals);
	nc->portals = urls;
	nc->portal_bind_count = n;
}

/* Copies of the model URLs of portals arr[0..n): those of the model's specs. */
static char **
model_urls(struct isd_target_running *rt, const struct isd_portal_cfg *const *arr, int n)
{
	char **urls = calloc((size_t)(n > 0 ? n : 1), sizeof(char *));

	if (urls == NULL)
		return NULL;
	for (int i = 0; i < n; i++) {
		for (int j = 0; j < rt->portal_count; j++) {
			struct isd_target_portal *p = rt->portals[j];
			char buf[ISD_TARGET_URL_MAX];

			if (&p->pc != arr[i])
				continue;
			isd_target_portal_url(&p->spec, buf, sizeof(buf));
			urls[i] = strdup(buf);
		}
		if (urls[i] == NULL) {
			for (int j = 0; j < i; j++)
				free(urls[j]);
			free(urls);
			return NULL;
		}
	}
	return urls;
}

int
isd_live_target_bind(struct isd_target_running *rt, const char *target,
		     const char *const *portal_urls, int n, char *err, size_t errlen)
{
	struct isd_target_node_cfg *nc = NULL;
	const struct isd_portal_cfg **arr;
	struct isd_tnode *tn;
	char **urls = NULL;
	int rc;

	tn = isd_iscsi_tgt_find_node(rt->tgt, target);
	if (tn == NULL) {
		char esc[ISD_LOG_ESC_MAX];

		isd_log_escape_str(esc, sizeof(esc), target);
		isd_target_errf(err, errlen, "no target %s", esc);
		return -ENOENT;
	}
	if (n < 0) {
		isd_target_errf(err, errlen, "target %s: negative portal count", tn->name);
		return -EINVAL;
	}
	rc = resolve_urls(rt, portal_urls, n, &arr, err, errlen);
	if (rc < 0)
		return rc;
	nc = isd_target_cfg_find_node(&rt->cfg, tn->name);
	urls = nc != NULL ? model_urls(rt, arr, n) : NULL;
	if (nc != NULL && urls == NULL) {
		free(arr);
		isd_target_errf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	free(tn->portals);
	tn->portals = arr;
	tn->portal_count = n;
	tn->bound = n > 0;
	if (nc != NULL) {
		if (n == 0) {
			free(urls);
			urls = NULL;
		}
		model_set_bindings(nc, urls, n);
	}
	log_binding(rt, tn);
	return 0;
}

int
isd_live_portal_add(struct isd_target_running *rt, const struct isd_target_portal_spec *ps,
		    char *err, size_t errlen)
{
	struct isd_target_portal_spec *ms;
	char url[ISD_TARGET_URL_MAX], why[160];
	int rc;

	if (err != NULL && errlen > 0)
		err[0] = '\0';
	if (memchr(ps->host, '\0', sizeof(ps->host)) == NULL ||
	    isd_target_host_check(ps->host, why, sizeof(why)) < 0) {
		isd_target_errf(err, errlen, "portal: bad address");
		return -EINVAL;
	}
	isd_target_portal_url(ps, url, sizeof(url));
	if (rt->shutdown_started) {
		isd_target_errf(err, errlen, "portal %s: the target is shutting down", url);
		return -ESHUTDOWN;
	}
	if (ps->kind == NULL || ps->kind->transport != ps->transport) {
		isd_target_errf(err, errlen, "portal %s: no datamover for it", url);
		return -EINVAL;
	}
	if (ps->tpgt != -1 && (ps->tpgt < 1 || ps->tpgt > 65535)) {
		isd_target_errf(err, errlen, "portal %s: tpgt %d out of range (1..65535)", url,
				ps->tpgt);
		return -EINVAL;
	}
	if (ps->port != 0 && isd_target_portal_find(rt, ps) != NULL) {
		isd_target_errf(err, errlen, "portal %s: already listening", url);
		return -EEXIST;
	}
	/* room in the model first: a failure after listening would be hard to undo */
	ms = isd_target_cfg_add_portal(&rt->cfg);
	if (ms == NULL) {
		isd_target_errf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	rt->cfg.portal_count--;
	rc = isd_target_portal_open(rt, ps, err, errlen);
	if (rc < 0)
		return rc;
	*ms = *ps;
	rt->cfg.portal_count++;
	return 0;
}

int
isd_live_portal_listening(struct isd_target_running *rt, const struct isd_target_portal_spec *ps,
			  char *url, size_t len)
{
	const struct isd_target_portal *p = isd_target_portal_find(rt, ps);

	if (p == NULL || p->handle == NULL)
		return -ENOENT;
	snprintf(url, len, "%s", p->url);
	return 0;
}

/* Drops a portal's URL from every model node bound to it. */
static void
model_unbind_portal(struct isd_target_cfg *model, const struct isd_target_portal *p)
{
	for (int i = 0; i < model->node_count; i++) {
		struct isd_target_node_cfg *nc = &model->nodes[i];
		int j = 0;

		for (int k = 0; k < nc->portal_bind_count; k++) {
			struct isd_target_portal_spec ps;

			if (isd_target_portal_parse(nc->portals[k], &ps, NULL, 0) == 0 &&
			    portal_matches(p, &ps))
				free(nc->portals[k]);
			else
				nc->portals[j++] = nc->portals[k];
		}
		nc->portal_bind_count = j;
	}
}

/* Drops a portal from the model: its spec, and its URL from every binding. */
static void
model_remove_portal(struct isd_target_cfg *model, const struct isd_target_portal *p)
{
	bool dropped = false;
	int j = 0;

	model_unbind_portal(model, p);
	for (int k = 0; k < model->portal_count; k++) {
		struct isd_target_portal_spec *ms = &model->portals[k];

		/* validation keeps two model portals from naming the same one */
		if (!dropped && ms->kind == p->spec.kind && isd_addr_same(ms->host, p->spec.host) &&
		    ms->port == p->spec.port) {
			dropped = true;
			continue;
		}
		model->portals[j++] = *ms;
	}
	model->portal_count = j;
}

int
isd_live_portal_remove(struct isd_target_running *rt, const char *url, char *err, size_t errlen)
{
	const struct isd_tnode *busy = NULL;
	struct isd_target_portal_spec ps;
	struct isd_target_portal *p = NULL;
	char why[160], esc[ISD_TARGET_URL_MAX * 4];
	int rc, i;

	isd_log_escape_str(esc, sizeof(esc), url);
	if (isd_target_portal_parse(url, &ps, why, sizeof(why)) < 0) {
		isd_target_errf(err, errlen, "portal %s: %s", esc, why);
		return -EINVAL;
	}
	for (i = 0; i < rt->portal_count; i++) {
		if (portal_matches(rt->portals[i], &ps)) {
			p = rt->portals[i];
			break;
		}
	}
	if (p == NULL) {
		isd_target_errf(err, errlen, "no portal %s", esc);
		return -ENOENT;
	}
	if (p->registered) {
		rc = isd_iscsi_tgt_remove_portal(rt->tgt, &p->pc, &busy);
		if (rc == -EBUSY) {
			isd_target_errf(err, errlen,
					"portal %s: target %s is bound to it and to no other "
					"portal (bind it elsewhere first)",
					p->url, busy != NULL ? busy->name : "?");
			return rc;
		}
		if (rc < 0) {
			isd_target_errf(err, errlen, "portal %s: %s", p->url, strerror(-rc));
			return rc;
		}
	}
	portal_close(p);
	model_remove_portal(&rt->cfg, p);
	isd_log_info("stopped listening on %s (connections that came in on it stay)", p->url);
	free(p);
	memmove(&rt->portals[i], &rt->portals[i + 1],
		(size_t)(rt->portal_count - i - 1) * sizeof(*rt->portals));
	rt->portal_count--;
	return 0;
}
