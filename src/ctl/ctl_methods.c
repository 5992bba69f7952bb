/*
 * The control methods: JSON-RPC 2.0 requests turned into calls of the live
 * interface (server/live.h), and what a running iserd is doing turned into
 * JSON. Every parameter is checked for presence, type and range before
 * anything is called; unknown parameters are refused (a typo must not be
 * silently ignored); a request that fails changes nothing. Secrets are never
 * returned or logged.
 */
#include <errno.h>
#include <json-c/json.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "bstore/bstore.h"
#include "ctl/control.h"
#include "ctl/ctl.h"
#include "dm/dm_kind.h"
#include "reactor/reactor.h"
#include "scsi/scsi.h"
#include "server/live.h"
#include "server/target.h"
#include "util/log.h"
#include "util/mem.h"

/* One request being handled. */
struct rpc {
	const struct isd_ctl_env *env;
	const char *peer;
	const char *method;
	struct json_object *params;     /* an object (an absent params is an empty one) */
	int code;                       /* 0 = success */
	char msg[512];
	const char *err_name;           /* data.errno, "" when none */
};

static bool __attribute__((format(printf, 3, 4)))
fail(struct rpc *x, int code, const char *fmt, ...)
{
	va_list ap;

	x->code = code;
	va_start(ap, fmt);
	vsnprintf(x->msg, sizeof(x->msg), fmt, ap);
	va_end(ap);
	return false;
}

static const char *
errno_name(int e)
{
	switch (e) {
	case ENOENT: return "ENOENT";
	case EEXIST: return "EEXIST";
	case EBUSY: return "EBUSY";
	case EINVAL: return "EINVAL";
	case ENOTSUP: return "ENOTSUP";
	case ENOMEM: return "ENOMEM";
	case EACCES: return "EACCES";
	case EPERM: return "EPERM";
	case ENOSPC: return "ENOSPC";
	case EADDRINUSE: return "EADDRINUSE";
	case EAGAIN: return "EAGAIN";
	default: return "EIO";
	}
}

/* The answer to a live call that returned rc with err. */
static bool
live_result(struct rpc *x, int rc, const char *err)
{
	int code;

	if (rc >= 0)
		return true;
	switch (-rc) {
	case ENOENT: code = ISD_RPC_NOT_FOUND; break;
	case EEXIST: code = ISD_RPC_EXISTS; break;
	case EBUSY: code = ISD_RPC_BUSY; break;
	case EINVAL: code = ISD_RPC_INVALID_PARAMS; break;
	default: code = ISD_RPC_FAILED; break;
	}
	x->err_name = errno_name(-rc);
	return fail(x, code, "%s", err[0] ? err : strerror(-rc));
}

/* ---- parameters ---- */

/* Refuses parameters not in keys (NULL-terminated). */
static bool
p_only(struct rpc *x, const char *const *keys)
{
	json_object_object_foreach(x->params, k, v) {
		bool known = false;

		(void)v;
		for (const char *const *p = keys; *p != NULL; p++)
			if (strcmp(*p, k) == 0)
				known = true;
		if (!known) {
			char esc[ISD_LOG_ESC_MAX];

			return fail(x, ISD_RPC_INVALID_PARAMS, "unknown parameter '%s'",
				    isd_log_escape_str(esc, sizeof(esc), k));
		}
	}
	return true;
}

static struct json_object *
p_get(struct rpc *x, const char *key)
{
	struct json_object *v;

	if (!json_object_object_get_ex(x->params, key, &v) || v == NULL)
		return NULL;
	return v;
}

/* A string of at most cap-1 bytes without control characters. */
static bool
p_str(struct rpc *x, const char *key, bool required, char *out, size_t cap)
{
	struct json_object *v = p_get(x, key);
	const char *s;
	size_t n;

	if (v == NULL) {
		if (required)
			return fail(x, ISD_RPC_INVALID_PARAMS, "missing parameter '%s'", key);
		out[0] = '\0';
		return true;
	}
	if (!json_object_is_type(v, json_type_string))
		return fail(x, ISD_RPC_INVALID_PARAMS, "'%s' must be a string", key);
	s = json_object_get_string(v);
	n = (size_t)json_object_get_string_len(v);
	if (n >= cap || strlen(s) != n)
		return fail(x, ISD_RPC_INVALID_PARAMS, "'%s' is too long or holds a NUL byte", key);
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			return fail(x, ISD_RPC_INVALID_PARAMS, "'%s' holds a control character",
				    key);
	memcpy(out, s, n + 1);
	return true;
}

static bool
p_uint(struct rpc *x, const char *key, bool required, uint64_t max, uint64_t *out, bool *given)
{
	struct json_object *v = p_get(x, key);
	int64_t i;

	if (given != NULL)
		*given = v != NULL;
	if (v == NULL) {
		if (required)
			return fail(x, ISD_RPC_INVALID_PARAMS, "missing parameter '%s'", key);
		return true;
	}
	if (!json_object_is_type(v, json_type_int))
		return fail(x, ISD_RPC_INVALID_PARAMS, "'%s' must be an integer", key);
	errno = 0;
	i = json_object_get_int64(v);
	if (errno != 0 || i < 0 || (uint64_t)i > max)
		return fail(x, ISD_RPC_INVALID_PARAMS, "'%s' must be between 0 and %llu", key,
			    (unsigned long long)max);
	*out = (uint64_t)i;
	return true;
}

static bool
p_bool(struct rpc *x, const char *key, bool required, bool *out)
{
	struct json_object *v = p_get(x, key);

	if (v == NULL) {
		if (required)
			return fail(x, ISD_RPC_INVALID_PARAMS, "missing parameter '%s'", key);
		return true;
	}
	if (!json_object_is_type(v, json_type_boolean))
		return fail(x, ISD_RPC_INVALID_PARAMS, "'%s' must be true or false", key);
	*out = json_object_get_boolean(v);
	return true;
}

/* A credential object {"user": "...", "secret": "..."}; absent or null = none. */
static bool
p_cred(struct rpc *x, const char *key, bool *set, struct isd_chap_cred *out)
{
	struct json_object *v = p_get(x, key), *u, *s;

	*set = false;
	memset(out, 0, sizeof(*out));
	if (v == NULL)
		return true;
	if (!json_object_is_type(v, json_type_object))
		return fail(x, ISD_RPC_INVALID_PARAMS, "'%s' must be {\"user\": ..., \"secret\": ...}",
			    key);
	json_object_object_foreach(v, k, vv) {
		(void)vv;
		if (strcmp(k, "user") != 0 && strcmp(k, "secret") != 0)
			return fail(x, ISD_RPC_INVALID_PARAMS, "'%s' takes only user and secret",
				    key);
	}
	if (!json_object_object_get_ex(v, "user", &u) || !json_object_is_type(u, json_type_string) ||
	    !json_object_object_get_ex(v, "secret", &s) ||
	    !json_object_is_type(s, json_type_string))
		return fail(x, ISD_RPC_INVALID_PARAMS, "'%s' needs a user and a secret (strings)",
			    key);
	if ((size_t)json_object_get_string_len(u) >= sizeof(out->user) ||
	    (size_t)json_object_get_string_len(s) >= sizeof(out->secret) ||
	    strlen(json_object_get_string(u)) != (size_t)json_object_get_string_len(u) ||
	    strlen(json_object_get_string(s)) != (size_t)json_object_get_string_len(s))
		return fail(x, ISD_RPC_INVALID_PARAMS, "'%s': user or secret too long", key);
	snprintf(out->user, sizeof(out->user), "%s", json_object_get_string(u));
	snprintf(out->secret, sizeof(out->secret), "%s", json_object_get_string(s));
	*set = true;
	return true;
}

/* chap and mutual_chap parameters into an auth (absent: not required). */
static bool
p_auth(struct rpc *x, struct isd_auth_cfg *a)
{
	memset(a, 0, sizeof(*a));
	return p_cred(x, "chap", &a->require_chap, &a->chap) &&
	       p_cred(x, "mutual_chap", &a->mutual, &a->mutual_chap);
}

static bool
p_target(struct rpc *x, char *name)
{
	return p_str(x, "target", true, name, ISD_NAME_MAX);
}

static bool
p_lun(struct rpc *x, uint32_t *lun)
{
	uint64_t v = 0;

	if (!p_uint(x, "lun", true, 16383, &v, NULL))
		return false;
	*lun = (uint32_t)v;
	return true;
}

static void
origin_of(struct rpc *x, char *out, size_t cap)
{
	snprintf(out, cap, "control %s (%s)", x->method, x->peer);
}

/* ---- JSON building ---- */

static void
add_str(struct json_object *o, const char *k, const char *v)
{
	json_object_object_add(o, k, json_object_new_string(v));
}

static void
add_int(struct json_object *o, const char *k, int64_t v)
{
	json_object_object_add(o, k, json_object_new_int64(v));
}

static void
add_bool(struct json_object *o, const char *k, bool v)
{
	json_object_object_add(o, k, json_object_new_boolean(v));
}

static struct json_object *
io_json(const struct isd_io_stats *io)
{
	struct json_object *o = json_object_new_object(), *e, *lat;

	for (int d = 0; d < ISD_IO_DIRS; d++) {
		struct json_object *dd = json_object_new_object();

		add_int(dd, "commands", (int64_t)io->cmds[d]);
		add_int(dd, "bytes", (int64_t)io->bytes[d]);
		json_object_object_add(o, isd_io_dir_names[d], dd);
	}
	e = json_object_new_object();
	for (int i = 0; i < ISD_IO_ERRS; i++)
		add_int(e, isd_io_err_names[i], (int64_t)io->errors[i]);
	json_object_object_add(o, "errors", e);
	add_int(o, "in_flight", io->in_flight);
	add_int(o, "xcopy_bytes", (int64_t)io->xcopy_bytes);
	lat = json_object_new_object();
	add_int(lat, "p50", (int64_t)isd_io_stats_quantile_us(io, 0.50));
	add_int(lat, "p99", (int64_t)isd_io_stats_quantile_us(io, 0.99));
	json_object_object_add(o, "latency_us", lat);
	return o;
}

static const char *
transport_name(enum isd_transport t)
{
	return t == ISD_TRANSPORT_ISER ? "iser" : "tcp";
}

static struct json_object *
session_json(const struct isd_live_session *s)
{
	struct json_object *o = json_object_new_object(), *k;

	add_int(o, "tsih", s->tsih);
	add_str(o, "type", s->discovery ? "discovery" : "normal");
	add_str(o, "target", s->target);
	add_str(o, "initiator", s->initiator);
	add_str(o, "isid", s->isid);
	add_str(o, "transport", transport_name(s->transport));
	add_str(o, "peer_address", s->peer_addr);
	add_int(o, "peer_port", s->peer_port);
	add_str(o, "local_address", s->local_addr);
	add_int(o, "local_port", s->local_port);
	add_int(o, "cid", s->cid);
	add_int(o, "age_ms", (int64_t)s->age_ms);
	add_int(o, "in_flight", s->in_flight);
	k = json_object_new_object();
	add_int(k, "MaxRecvDataSegmentLength", s->max_recv_dsl);
	add_int(k, "InitiatorMaxRecvDataSegmentLength", s->max_xmit_dsl);
	add_int(k, "MaxBurstLength", s->max_burst_length);
	add_int(k, "FirstBurstLength", s->first_burst_length);
	add_str(k, "ImmediateData", s->immediate_data ? "Yes" : "No");
	add_str(k, "InitialR2T", s->initial_r2t ? "Yes" : "No");
	add_str(k, "HeaderDigest", s->header_digest ? "CRC32C" : "None");
	add_str(k, "DataDigest", s->data_digest ? "CRC32C" : "None");
	add_int(k, "QueueDepth", s->queue_depth);
	json_object_object_add(o, "negotiated", k);
	json_object_object_add(o, "io", io_json(&s->io));
	return o;
}

struct sess_walk {
	const char *target;             /* NULL = all */
	struct json_object *arr;
	int count;
};

static void
sess_cb(void *arg, const struct isd_live_session *s)
{
	struct sess_walk *w = arg;

	if (w->target != NULL && strcasecmp(w->target, s->target) != 0)
		return;
	w->count++;
	if (w->arr != NULL)
		json_object_array_add(w->arr, session_json(s));
}

static int
sessions_of(struct rpc *x, const char *target, struct json_object *arr)
{
	struct sess_walk w = {.target = target, .arr = arr};

	isd_live_sessions(x->env->rt, sess_cb, &w);
	return w.count;
}

static const struct isd_target_node_cfg *
find_node(const struct isd_target_cfg *cfg, const char *name)
{
	for (int i = 0; i < cfg->node_count; i++)
		if (strcasecmp(cfg->nodes[i].name, name) == 0)
			return &cfg->nodes[i];
	return NULL;
}

/* The LU's live state (stats), else the model's (a LU being added). */
static uint8_t
st_alua(const struct isd_live_lun_stats *st, const struct isd_target_lun_cfg *l)
{
	if (st != NULL)
		return st->alua_state;
	return l->alua_state_set ? l->alua_state : ISD_ALUA_ACTIVE_OPTIMIZED;
}

static struct json_object *
lun_json(struct rpc *x, const struct isd_target_node_cfg *n, const struct isd_target_lun_cfg *l,
	 const struct isd_live_lun_stats *st)
{
	struct json_object *o = json_object_new_object();

	add_int(o, "lun", l->number);
	add_str(o, "backing", l->spec);
	add_str(o, "kind", l->kind != NULL ? l->kind->scheme : "");
	add_str(o, "path", l->path);
	if (st != NULL) {
		add_int(o, "size", (int64_t)st->size);
		add_int(o, "block_size", st->block_size);
		add_bool(o, "read_only", st->read_only);
		json_object_object_add(o, "io", io_json(&st->io));
	} else {
		add_int(o, "size", (int64_t)l->size);
		add_int(o, "block_size", l->block_size ? l->block_size : 512);
		add_bool(o, "read_only", l->read_only);
	}
	if (l->physical_block_size != 0)
		add_int(o, "physical_block_size", l->physical_block_size);
	add_str(o, "vendor", l->vendor[0] ? l->vendor : "ISERD");
	add_str(o, "product", l->product);
	add_str(o, "serial", l->serial);
	if (l->naa[0] != '\0')
		add_str(o, "naa", l->naa);
	/* ALUA: the state the LU has on this gateway, when the target reports one */
	if (n->alua_group != 0) {
		add_str(o, "alua_state", isd_scsi_alua_state_name(st_alua(st, l)));
	}
	/* a store under a cluster lock (rbd: lock=exclusive): who holds it */
	if (st != NULL && st->lock != ISD_BSTORE_LOCK_NONE)
		add_str(o, "lock", st->lock == ISD_BSTORE_LOCK_OWNER   ? "owner"
				   : st->lock == ISD_BSTORE_LOCK_OTHER ? "other"
								       : "fenced");
	(void)x;
	return o;
}

static struct json_object *
luns_json(struct rpc *x, const struct isd_target_node_cfg *n)
{
	struct json_object *a = json_object_new_array();
	struct isd_live_lun_stats *st = calloc(ISD_CTL_LUNS_MAX, sizeof(*st));
	int cnt = st != NULL ? isd_live_lun_stats(x->env->rt, n->name, st, ISD_CTL_LUNS_MAX) : 0;

	for (int i = 0; i < n->lun_count; i++) {
		const struct isd_live_lun_stats *s = NULL;

		for (int j = 0; j < cnt && j < ISD_CTL_LUNS_MAX; j++)
			if (st[j].lun == n->luns[i].number)
				s = &st[j];
		json_object_array_add(a, lun_json(x, n, &n->luns[i], s));
	}
	free(st);
	return a;
}

static struct json_object *
auth_json(const struct isd_auth_cfg *a)
{
	struct json_object *o = json_object_new_object();

	/* who, never the secret */
	add_str(o, "chap_user", a->require_chap ? a->chap.user : "");
	add_str(o, "mutual_chap_user", a->mutual ? a->mutual_chap.user : "");
	return o;
}

static struct json_object *
acl_json(const struct isd_target_node_cfg *n)
{
	struct json_object *a = json_object_new_array();

	for (int i = 0; i < n->acl_count; i++) {
		struct json_object *o = json_object_new_object();
		const struct isd_target_ini_cfg *ic = NULL;

		for (int j = 0; j < n->ini_count; j++)
			if (strcasecmp(n->ini[j].name, n->acl[i]) == 0)
				ic = &n->ini[j];
		add_str(o, "initiator", n->acl[i]);
		add_str(o, "chap_user", ic && ic->auth.require_chap ? ic->auth.chap.user : "");
		add_str(o, "mutual_chap_user", ic && ic->auth.mutual ? ic->auth.mutual_chap.user : "");
		json_object_array_add(a, o);
	}
	return a;
}

static struct json_object *
portals_bound_json(const struct isd_target_node_cfg *n)
{
	struct json_object *a = json_object_new_array();

	for (int i = 0; i < n->portal_bind_count; i++)
		json_object_array_add(a, json_object_new_string(n->portals[i]));
	return a;
}

static struct json_object *
target_json(struct rpc *x, const struct isd_target_node_cfg *n, bool full)
{
	struct json_object *o = json_object_new_object();

	add_str(o, "name", n->name);
	add_str(o, "alias", n->alias);
	add_int(o, "tpgt", n->tpgt == -1 ? 1 : n->tpgt);
	if (n->alua_group != 0) {
		struct json_object *peers = json_object_new_array();

		add_int(o, "alua_group", n->alua_group);
		add_str(o, "alua_peer_state",
			isd_scsi_alua_state_name(n->alua_peer_state != 0 ? n->alua_peer_state
									 : ISD_ALUA_ACTIVE_NON_OPTIMIZED));
		for (int i = 0; i < n->alua_peer_count; i++) {
			struct json_object *p = json_object_new_object();

			add_int(p, "group", n->alua_peers[i].group);
			add_int(p, "port", n->alua_peers[i].rtpi);
			json_object_array_add(peers, p);
		}
		json_object_object_add(o, "alua_peers", peers);
	}
	json_object_object_add(o, "auth", auth_json(&n->auth));
	json_object_object_add(o, "portals", portals_bound_json(n));
	if (full) {
		struct json_object *ss = json_object_new_array();
		struct isd_io_stats io;

		json_object_object_add(o, "luns", luns_json(x, n));
		json_object_object_add(o, "acl", acl_json(n));
		sessions_of(x, n->name, ss);
		json_object_object_add(o, "sessions", ss);
		if (isd_live_target_stats(x->env->rt, n->name, &io) == 0)
			json_object_object_add(o, "io", io_json(&io));
	} else {
		add_int(o, "luns", n->lun_count);
		add_int(o, "acl", n->acl_count);
		add_int(o, "sessions", sessions_of(x, n->name, NULL));
	}
	return o;
}

/* ---- methods ---- */

typedef struct json_object *(*method_fn)(struct rpc *x);

static const struct isd_target_node_cfg *
node_or_fail(struct rpc *x, const char *name)
{
	const struct isd_target_node_cfg *n = find_node(isd_target_running_cfg(x->env->rt), name);
	char esc[ISD_LOG_ESC_MAX];

	if (n == NULL)
		fail(x, ISD_RPC_NOT_FOUND, "no target %s", isd_log_escape_str(esc, sizeof(esc), name));
	return n;
}

static struct json_object *
m_server_info(struct rpc *x)
{
	static const char *const keys[] = {NULL};
	struct json_object *o;

	if (!p_only(x, keys))
		return NULL;
	o = json_object_new_object();
	add_str(o, "version", ISD_VERSION);
	add_int(o, "pid", getpid());
	add_int(o, "uptime_s", (int64_t)((isd_now_ns() - x->env->started_ns) / 1000000000ull));
	add_str(o, "config_file", x->env->config_file != NULL ? x->env->config_file : "");
	return o;
}

static struct json_object *
m_target_list(struct rpc *x)
{
	static const char *const keys[] = {NULL};
	const struct isd_target_cfg *cfg;
	struct json_object *a;

	if (!p_only(x, keys))
		return NULL;
	cfg = isd_target_running_cfg(x->env->rt);
	a = json_object_new_array();
	for (int i = 0; i < cfg->node_count; i++)
		json_object_array_add(a, target_json(x, &cfg->nodes[i], false));
	return a;
}

static struct json_object *
m_target_show(struct rpc *x)
{
	static const char *const keys[] = {"target", NULL};
	char name[ISD_NAME_MAX];
	const struct isd_target_node_cfg *n;

	if (!p_only(x, keys) || !p_target(x, name) || (n = node_or_fail(x, name)) == NULL)
		return NULL;
	return target_json(x, n, true);
}

/* A LUN description {"lun": N, "backing": SPEC, "read_only"?, "block_size"?,
 * "physical_block_size"?, "vendor"?, "product"?, "serial"?} into l. Used by target.add
 * (each element) and lun.add. */
static bool
lun_from(struct rpc *x, struct isd_target_lun_cfg *l)
{
	static const char *const keys[] = {"target", "lun", "backing", "read_only", "block_size",
					   "physical_block_size", "vendor", "product", "serial",
					   "naa", "alua_state", NULL};
	char spec[ISD_TARGET_SPEC_MAX + 8], why[256], naa[40] = "", alua[32] = "";
	uint64_t bs = 0, pbs = 0;
	bool ro = false;

	memset(l, 0, sizeof(*l));
	if (!p_only(x, keys) || !p_lun(x, &l->number) ||
	    !p_str(x, "backing", true, spec, sizeof(spec)) || !p_bool(x, "read_only", false, &ro) ||
	    !p_uint(x, "block_size", false, 65536, &bs, NULL) ||
	    !p_uint(x, "physical_block_size", false, 1u << 20, &pbs, NULL) ||
	    !p_str(x, "vendor", false, l->vendor, sizeof(l->vendor)) ||
	    !p_str(x, "product", false, l->product, sizeof(l->product)) ||
	    !p_str(x, "serial", false, l->serial, sizeof(l->serial)) ||
	    !p_str(x, "naa", false, naa, sizeof(naa)) ||
	    !p_str(x, "alua_state", false, alua, sizeof(alua)))
		return false;
	if (isd_target_lun_spec_parse(spec, l, why, sizeof(why)) < 0) {
		char esc[ISD_LOG_ESC_MAX];

		return fail(x, ISD_RPC_INVALID_PARAMS, "backing '%s': %s",
			    isd_log_escape_str(esc, sizeof(esc), spec), why);
	}
	/* as in a file, the keys win over the spec's ",naa=" and ",alua=" */
	if (naa[0] != '\0' && isd_target_naa_parse(naa, l->naa, why, sizeof(why)) < 0)
		return fail(x, ISD_RPC_INVALID_PARAMS, "naa: %s", why);
	if (alua[0] != '\0') {
		enum isd_scsi_alua_state st;

		if (isd_scsi_alua_state_parse(alua, &st) < 0)
			return fail(x, ISD_RPC_INVALID_PARAMS,
				    "alua_state: active/optimized, active/non-optimized, standby, "
				    "unavailable or transitioning");
		l->alua_state = (uint8_t)st;
		l->alua_state_set = true;
	}
	if (ro)
		l->read_only = true;
	if (bs != 0 && bs != 512 && bs != 4096)
		return fail(x, ISD_RPC_INVALID_PARAMS, "block_size must be 512 or 4096");
	l->block_size = (uint32_t)bs;
	/* as in a file, the key wins over a ",physical_block_size=" in the spec; checked
	 * with the rest of the model */
	if (pbs != 0)
		l->physical_block_size = (uint32_t)pbs;
	origin_of(x, l->origin, sizeof(l->origin));
	return true;
}

static bool
name_ok(struct rpc *x, const char *what, const char *name)
{
	char why[160], esc[ISD_LOG_ESC_MAX];

	if (isd_target_name_check(name, why, sizeof(why)) == 0)
		return true;
	return fail(x, ISD_RPC_INVALID_PARAMS, "%s '%s': %s", what,
		    isd_log_escape_str(esc, sizeof(esc), name), why);
}

static void
node_cfg_free(struct isd_target_node_cfg *n)
{
	for (int i = 0; i < n->acl_count; i++)
		free(n->acl[i]);
	free(n->acl);
	for (int i = 0; i < n->portal_bind_count; i++)
		free(n->portals[i]);
	free(n->portals);
	free(n->luns);
	if (n->ini != NULL)
		explicit_bzero(n->ini, (size_t)n->ini_count * sizeof(*n->ini));
	free(n->ini);
	explicit_bzero(&n->auth, sizeof(n->auth));
}

/* An array parameter of strings into a malloc'd char ** (each strdup'd). */
static bool
p_strv(struct rpc *x, const char *key, size_t maxlen, char ***out, int *count)
{
	struct json_object *v = p_get(x, key);
	size_t n;

	*out = NULL;
	*count = 0;
	if (v == NULL)
		return true;
	if (!json_object_is_type(v, json_type_array))
		return fail(x, ISD_RPC_INVALID_PARAMS, "'%s' must be an array of strings", key);
	n = json_object_array_length(v);
	if (n > 4096)
		return fail(x, ISD_RPC_INVALID_PARAMS, "'%s': more than 4096 entries", key);
	if (n == 0)
		return true;
	*out = calloc(n, sizeof(char *));
	if (*out == NULL)
		return fail(x, ISD_RPC_INTERNAL_ERROR, "out of memory");
	for (size_t i = 0; i < n; i++) {
		struct json_object *e = json_object_array_get_idx(v, i);

		if (!json_object_is_type(e, json_type_string) ||
		    (size_t)json_object_get_string_len(e) >= maxlen ||
		    strlen(json_object_get_string(e)) != (size_t)json_object_get_string_len(e))
			return fail(x, ISD_RPC_INVALID_PARAMS,
				    "'%s': entry %zu is not a string of at most %zu bytes", key, i,
				    maxlen - 1);
		(*out)[i] = strdup(json_object_get_string(e));
		if ((*out)[i] == NULL)
			return fail(x, ISD_RPC_INTERNAL_ERROR, "out of memory");
		(*count)++;
	}
	return true;
}

static struct json_object *
m_target_add(struct rpc *x)
{
	static const char *const keys[] = {"target", "alias", "tpgt", "luns", "acl", "chap",
					   "mutual_chap", "portals", "alua_group", "alua_peers",
					   "alua_peer_state", NULL};
	struct isd_target_node_cfg n;
	struct json_object *luns, *res = NULL;
	char err[1024] = "", why[160], pstate[32] = "";
	uint64_t tpgt = 0, group = 0;
	bool tpgt_given = false;
	char **peers = NULL;
	int npeers = 0;

	memset(&n, 0, sizeof(n));
	n.tpgt = -1;
	n.neg.max_recv_data_segment_length = n.neg.max_burst_length = -1;
	n.neg.first_burst_length = n.neg.max_outstanding_r2t = n.neg.queue_depth = -1;
	n.neg.immediate_data = n.neg.initial_r2t = -1;
	n.neg.header_digest = n.neg.data_digest = -1;
	if (!p_only(x, keys) || !p_target(x, n.name) || !name_ok(x, "target", n.name) ||
	    !p_str(x, "alias", false, n.alias, sizeof(n.alias)) ||
	    !p_uint(x, "tpgt", false, 65535, &tpgt, &tpgt_given) || !p_auth(x, &n.auth) ||
	    !p_strv(x, "acl", ISD_NAME_MAX, &n.acl, &n.acl_count) ||
	    !p_strv(x, "portals", 256, &n.portals, &n.portal_bind_count) ||
	    !p_uint(x, "alua_group", false, 65535, &group, NULL) ||
	    !p_strv(x, "alua_peers", 16, &peers, &npeers) ||
	    !p_str(x, "alua_peer_state", false, pstate, sizeof(pstate)))
		goto out;
	if (pstate[0] != '\0' && isd_target_alua_peer_state_parse(pstate, &n.alua_peer_state) < 0) {
		fail(x, ISD_RPC_INVALID_PARAMS,
		     "alua_peer_state: active/non-optimized, standby or unavailable");
		goto out;
	}
	if (tpgt_given) {
		if (tpgt == 0)
			fail(x, ISD_RPC_INVALID_PARAMS, "'tpgt' must be between 1 and 65535");
		n.tpgt = (int)tpgt;
	}
	/* "GROUP" or "GROUP/PORT", as in a file; validation refuses peers without a group */
	n.alua_group = (uint16_t)group;
	for (int i = 0; x->code == 0 && i < npeers; i++) {
		struct isd_target_alua_peer p;

		if (isd_target_alua_peer_parse(peers[i], &p, why, sizeof(why)) < 0 ||
		    isd_target_alua_peer_add(&n, &p, why, sizeof(why)) < 0)
			fail(x, ISD_RPC_INVALID_PARAMS, "alua_peers: %s", why);
	}
	for (int i = 0; x->code == 0 && i < n.acl_count; i++)
		name_ok(x, "initiator", n.acl[i]);
	if (x->code != 0)
		goto out;
	origin_of(x, n.origin, sizeof(n.origin));
	luns = p_get(x, "luns");
	if (luns != NULL) {
		size_t cnt;

		if (!json_object_is_type(luns, json_type_array)) {
			fail(x, ISD_RPC_INVALID_PARAMS, "'luns' must be an array of LUN objects");
			goto out;
		}
		cnt = json_object_array_length(luns);
		if (cnt > 256) {
			fail(x, ISD_RPC_INVALID_PARAMS, "'luns': more than 256");
			goto out;
		}
		n.luns = calloc(cnt ? cnt : 1, sizeof(*n.luns));
		if (n.luns == NULL) {
			fail(x, ISD_RPC_INTERNAL_ERROR, "out of memory");
			goto out;
		}
		for (size_t i = 0; i < cnt; i++) {
			struct rpc sub = *x;

			sub.params = json_object_array_get_idx(luns, i);
			if (sub.params == NULL || !json_object_is_type(sub.params, json_type_object)) {
				fail(x, ISD_RPC_INVALID_PARAMS, "'luns'[%zu] must be an object", i);
				goto out;
			}
			if (p_get(&sub, "target") != NULL ||
			    !lun_from(&sub, &n.luns[n.lun_count])) {
				if (sub.code == 0)
					fail(&sub, ISD_RPC_INVALID_PARAMS, "'target' is not a LUN key");
				fail(x, sub.code, "'luns'[%zu]: %s", i, sub.msg);
				goto out;
			}
			n.lun_count++;
		}
	}
	if (live_result(x, isd_live_target_add(x->env->rt, &n, err, sizeof(err)), err)) {
		const struct isd_target_node_cfg *nn = find_node(isd_target_running_cfg(x->env->rt),
								  n.name);

		isd_log_info("control (%s): target %s added", x->peer, n.name);
		res = nn != NULL ? target_json(x, nn, false) : json_object_new_object();
	}
out:
	for (int i = 0; i < npeers; i++)
		free(peers[i]);
	free(peers);
	node_cfg_free(&n);
	return res;
}

static struct json_object *
m_target_remove(struct rpc *x)
{
	static const char *const keys[] = {"target", "force", NULL};
	char name[ISD_NAME_MAX], err[1024] = "";
	bool force = false;
	int sessions;

	if (!p_only(x, keys) || !p_target(x, name) || !p_bool(x, "force", false, &force) ||
	    node_or_fail(x, name) == NULL)
		return NULL;
	sessions = sessions_of(x, name, NULL);
	if (!live_result(x, isd_live_target_remove(x->env->rt, name, force, err, sizeof(err)), err))
		return NULL;
	isd_log_info("control (%s): target %s removed%s", x->peer, name,
		     sessions ? " (its sessions are asked to log out)" : "");
	{
		struct json_object *o = json_object_new_object();

		add_int(o, "sessions_logged_out", sessions);
		return o;
	}
}

static struct json_object *
m_target_set_auth(struct rpc *x)
{
	static const char *const keys[] = {"target", "chap", "mutual_chap", NULL};
	char name[ISD_NAME_MAX], err[1024] = "";
	struct isd_auth_cfg a;
	int rc;

	if (!p_only(x, keys) || !p_target(x, name) || !p_auth(x, &a))
		return NULL;
	rc = isd_live_target_set_auth(x->env->rt, name, &a, err, sizeof(err));
	explicit_bzero(&a, sizeof(a));
	if (!live_result(x, rc, err))
		return NULL;
	isd_log_info("control (%s): credentials of target %s changed", x->peer, name);
	return json_object_new_object();
}

static struct json_object *
m_target_bind(struct rpc *x)
{
	static const char *const keys[] = {"target", "portals", NULL};
	char name[ISD_NAME_MAX], err[1024] = "", **urls = NULL;
	int n = 0, rc;
	struct json_object *res = NULL;

	if (!p_only(x, keys) || !p_target(x, name))
		return NULL;
	if (p_get(x, "portals") == NULL) {
		fail(x, ISD_RPC_INVALID_PARAMS, "missing parameter 'portals' ([] = every portal)");
		return NULL;
	}
	if (p_strv(x, "portals", 256, &urls, &n)) {
		rc = isd_live_target_bind(x->env->rt, name, (const char *const *)urls, n, err,
					  sizeof(err));
		if (live_result(x, rc, err)) {
			isd_log_info("control (%s): target %s bound to %d portal%s%s", x->peer, name,
				     n, n == 1 ? "" : "s", n == 0 ? " (every portal)" : "");
			res = json_object_new_object();
		}
	}
	for (int i = 0; i < n; i++)
		free(urls[i]);
	free(urls);
	return res;
}

static struct json_object *
m_lun_list(struct rpc *x)
{
	static const char *const keys[] = {"target", NULL};
	char name[ISD_NAME_MAX];
	const struct isd_target_node_cfg *n;

	if (!p_only(x, keys) || !p_target(x, name) || (n = node_or_fail(x, name)) == NULL)
		return NULL;
	return luns_json(x, n);
}

static struct json_object *
m_lun_show(struct rpc *x)
{
	static const char *const keys[] = {"target", "lun", NULL};
	char name[ISD_NAME_MAX];
	const struct isd_target_node_cfg *n;
	uint32_t lun;
	struct json_object *a, *res = NULL;

	if (!p_only(x, keys) || !p_target(x, name) || !p_lun(x, &lun) ||
	    (n = node_or_fail(x, name)) == NULL)
		return NULL;
	a = luns_json(x, n);
	for (size_t i = 0; i < json_object_array_length(a); i++) {
		struct json_object *l = json_object_array_get_idx(a, i), *v;

		if (json_object_object_get_ex(l, "lun", &v) &&
		    json_object_get_int64(v) == (int64_t)lun)
			res = json_object_get(l);
	}
	json_object_put(a);
	if (res == NULL)
		fail(x, ISD_RPC_NOT_FOUND, "target %s has no LUN %u", n->name, lun);
	return res;
}

static struct json_object *
m_lun_add(struct rpc *x)
{
	char name[ISD_NAME_MAX], err[1024] = "";
	struct isd_target_lun_cfg *l = calloc(1, sizeof(*l));
	struct json_object *res = NULL;

	if (l == NULL) {
		fail(x, ISD_RPC_INTERNAL_ERROR, "out of memory");
		return NULL;
	}
	if (p_target(x, name) && lun_from(x, l) &&
	    live_result(x, isd_live_lun_add(x->env->rt, name, l, err, sizeof(err)), err)) {
		isd_log_info("control (%s): target %s: LUN %u (%s) added", x->peer, name, l->number,
			     l->spec);
		res = json_object_new_object();
		add_int(res, "lun", l->number);
	}
	free(l);
	return res;
}

static struct json_object *
m_lun_remove(struct rpc *x)
{
	static const char *const keys[] = {"target", "lun", NULL};
	char name[ISD_NAME_MAX], err[1024] = "";
	uint32_t lun;

	if (!p_only(x, keys) || !p_target(x, name) || !p_lun(x, &lun) ||
	    !live_result(x, isd_live_lun_remove(x->env->rt, name, lun, err, sizeof(err)), err))
		return NULL;
	isd_log_info("control (%s): target %s: LUN %u removed", x->peer, name, lun);
	return json_object_new_object();
}

static struct json_object *
m_lun_resize(struct rpc *x)
{
	static const char *const keys[] = {"target", "lun", "size", NULL};
	char name[ISD_NAME_MAX], err[1024] = "", ssize[32];
	uint32_t lun;
	uint64_t size = 0;
	struct json_object *v;

	if (!p_only(x, keys) || !p_target(x, name) || !p_lun(x, &lun))
		return NULL;
	v = p_get(x, "size");
	if (v != NULL && json_object_is_type(v, json_type_string)) {
		/* "10G", as the config file writes sizes */
		if (!p_str(x, "size", true, ssize, sizeof(ssize)))
			return NULL;
		if (isd_target_size_parse(ssize, &size) < 0) {
			fail(x, ISD_RPC_INVALID_PARAMS, "'size': bad size (NUMBER[K|M|G|T|P])");
			return NULL;
		}
	} else if (!p_uint(x, "size", true, INT64_MAX, &size, NULL)) {
		return NULL;
	}
	if (size == 0) {
		fail(x, ISD_RPC_INVALID_PARAMS, "'size' must not be 0");
		return NULL;
	}
	if (!live_result(x, isd_live_lun_resize(x->env->rt, name, lun, size, err, sizeof(err)),
			 err))
		return NULL;
	isd_log_info("control (%s): target %s: LUN %u resized to %llu bytes", x->peer, name, lun,
		     (unsigned long long)size);
	return json_object_new_object();
}

static struct json_object *
m_lun_set_read_only(struct rpc *x)
{
	static const char *const keys[] = {"target", "lun", "read_only", NULL};
	char name[ISD_NAME_MAX], err[1024] = "";
	uint32_t lun;
	bool ro = false;

	if (!p_only(x, keys) || !p_target(x, name) || !p_lun(x, &lun) ||
	    !p_bool(x, "read_only", true, &ro) ||
	    !live_result(x, isd_live_lun_set_read_only(x->env->rt, name, lun, ro, err, sizeof(err)),
			 err))
		return NULL;
	isd_log_info("control (%s): target %s: LUN %u now %s", x->peer, name, lun,
		     ro ? "read-only" : "read-write");
	return json_object_new_object();
}

static struct json_object *
m_lun_set_alua_state(struct rpc *x)
{
	static const char *const keys[] = {"target", "lun", "state", NULL};
	char name[ISD_NAME_MAX], err[1024] = "", sname[32];
	enum isd_scsi_alua_state st;
	uint32_t lun;

	if (!p_only(x, keys) || !p_target(x, name) || !p_lun(x, &lun) ||
	    !p_str(x, "state", true, sname, sizeof(sname)))
		return NULL;
	if (isd_scsi_alua_state_parse(sname, &st) < 0) {
		fail(x, ISD_RPC_INVALID_PARAMS,
		     "state: active/optimized, active/non-optimized, standby, unavailable or "
		     "transitioning");
		return NULL;
	}
	if (!live_result(x, isd_live_lun_set_alua_state(x->env->rt, name, lun, (int)st, err,
							 sizeof(err)),
			 err))
		return NULL;
	isd_log_info("control (%s): target %s: LUN %u ALUA state %s", x->peer, name, lun,
		     isd_scsi_alua_state_name(st));
	return json_object_new_object();
}

static struct json_object *
m_lun_takeover(struct rpc *x)
{
	static const char *const keys[] = {"target", "lun", NULL};
	char name[ISD_NAME_MAX], err[1024] = "";
	uint32_t lun;

	if (!p_only(x, keys) || !p_target(x, name) || !p_lun(x, &lun) ||
	    !live_result(x, isd_live_lun_takeover(x->env->rt, name, lun, err, sizeof(err)), err))
		return NULL;
	isd_log_info("control (%s): target %s: LUN %u takeover started", x->peer, name, lun);
	return json_object_new_object();
}

static struct json_object *
m_portal_list(struct rpc *x)
{
	static const char *const keys[] = {NULL};
	const struct isd_target_cfg *cfg;
	struct json_object *a;

	if (!p_only(x, keys))
		return NULL;
	cfg = isd_target_running_cfg(x->env->rt);
	a = json_object_new_array();
	for (int i = 0; i < cfg->portal_count; i++) {
		struct json_object *o = json_object_new_object();
		char url[256];

		isd_target_portal_url(&cfg->portals[i], url, sizeof(url));
		add_str(o, "url", url);
		if (isd_live_portal_listening(x->env->rt, &cfg->portals[i], url, sizeof(url)) == 0)
			add_str(o, "listening", url);
		add_str(o, "transport", transport_name(cfg->portals[i].transport));
		add_int(o, "tpgt", cfg->portals[i].tpgt == -1 ? 1 : cfg->portals[i].tpgt);
		if (cfg->portals[i].reactors[0] != '\0')
			add_str(o, "reactors", cfg->portals[i].reactors);
		json_object_array_add(a, o);
	}
	return a;
}

static struct json_object *
m_portal_add(struct rpc *x)
{
	static const char *const keys[] = {"url", "tpgt", "reactors", NULL};
	struct isd_target_portal_spec ps;
	char url[256], why[256], err[1024] = "", reactors[sizeof(ps.reactors)] = "";
	uint64_t tpgt = 0;
	bool given = false;

	if (!p_only(x, keys) || !p_str(x, "url", true, url, sizeof(url)) ||
	    !p_uint(x, "tpgt", false, 65535, &tpgt, &given) ||
	    !p_str(x, "reactors", false, reactors, sizeof(reactors)))
		return NULL;
	memset(&ps, 0, sizeof(ps));
	if (isd_target_portal_parse(url, &ps, why, sizeof(why)) < 0) {
		char esc[ISD_LOG_ESC_MAX];

		fail(x, ISD_RPC_INVALID_PARAMS, "'%s': %s", isd_log_escape_str(esc, sizeof(esc), url),
		     why);
		return NULL;
	}
	if (given && tpgt == 0) {
		fail(x, ISD_RPC_INVALID_PARAMS, "'tpgt' must be between 1 and 65535");
		return NULL;
	}
	ps.tpgt = given ? (int)tpgt : -1;
	memcpy(ps.reactors, reactors, sizeof(ps.reactors));
	origin_of(x, ps.origin, sizeof(ps.origin));
	if (!live_result(x, isd_live_portal_add(x->env->rt, &ps, err, sizeof(err)), err))
		return NULL;
	isd_target_portal_url(&ps, url, sizeof(url));
	isd_log_info("control (%s): portal %s added", x->peer, url);
	{
		struct json_object *o = json_object_new_object();

		/* the port really listened on (":0" picks one) */
		if (isd_live_portal_listening(x->env->rt, &ps, url, sizeof(url)) == 0)
			add_str(o, "url", url);
		return o;
	}
}

static struct json_object *
m_portal_remove(struct rpc *x)
{
	static const char *const keys[] = {"url", NULL};
	char url[256], err[1024] = "";

	if (!p_only(x, keys) || !p_str(x, "url", true, url, sizeof(url)) ||
	    !live_result(x, isd_live_portal_remove(x->env->rt, url, err, sizeof(err)), err))
		return NULL;
	isd_log_info("control (%s): portal %s removed", x->peer, url);
	return json_object_new_object();
}

static struct json_object *
m_acl_list(struct rpc *x)
{
	static const char *const keys[] = {"target", NULL};
	char name[ISD_NAME_MAX];
	const struct isd_target_node_cfg *n;

	if (!p_only(x, keys) || !p_target(x, name) || (n = node_or_fail(x, name)) == NULL)
		return NULL;
	return acl_json(n);
}

static struct json_object *
m_acl_add(struct rpc *x)
{
	static const char *const keys[] = {"target", "initiator", "chap", "mutual_chap", NULL};
	char name[ISD_NAME_MAX], err[1024] = "";
	struct isd_target_ini_cfg ini;
	int rc;

	memset(&ini, 0, sizeof(ini));
	if (!p_only(x, keys) || !p_target(x, name) ||
	    !p_str(x, "initiator", true, ini.name, sizeof(ini.name)) ||
	    !name_ok(x, "initiator", ini.name) || !p_auth(x, &ini.auth))
		return NULL;
	origin_of(x, ini.origin, sizeof(ini.origin));
	rc = isd_live_acl_add(x->env->rt, name, &ini, err, sizeof(err));
	explicit_bzero(&ini.auth, sizeof(ini.auth));
	if (!live_result(x, rc, err))
		return NULL;
	isd_log_info("control (%s): target %s: initiator %s allowed", x->peer, name, ini.name);
	return json_object_new_object();
}

static struct json_object *
m_acl_remove(struct rpc *x)
{
	static const char *const keys[] = {"target", "initiator", NULL};
	char name[ISD_NAME_MAX], ini[ISD_NAME_MAX], err[1024] = "";

	if (!p_only(x, keys) || !p_target(x, name) ||
	    !p_str(x, "initiator", true, ini, sizeof(ini)) ||
	    !live_result(x, isd_live_acl_remove(x->env->rt, name, ini, err, sizeof(err)), err))
		return NULL;
	isd_log_info("control (%s): target %s: initiator %s no longer allowed", x->peer, name, ini);
	return json_object_new_object();
}

static struct json_object *
m_acl_set_auth(struct rpc *x)
{
	static const char *const keys[] = {"target", "initiator", "chap", "mutual_chap", NULL};
	char name[ISD_NAME_MAX], ini[ISD_NAME_MAX], err[1024] = "";
	struct isd_auth_cfg a;
	int rc;

	if (!p_only(x, keys) || !p_target(x, name) ||
	    !p_str(x, "initiator", true, ini, sizeof(ini)) || !p_auth(x, &a))
		return NULL;
	rc = isd_live_acl_set_auth(x->env->rt, name, ini, &a, err, sizeof(err));
	explicit_bzero(&a, sizeof(a));
	if (!live_result(x, rc, err))
		return NULL;
	isd_log_info("control (%s): target %s: credentials of %s changed", x->peer, name, ini);
	return json_object_new_object();
}

static struct json_object *
m_discovery_set_auth(struct rpc *x)
{
	static const char *const keys[] = {"chap", "mutual_chap", NULL};
	char err[1024] = "";
	struct isd_auth_cfg a;
	int rc;

	if (!p_only(x, keys) || !p_auth(x, &a))
		return NULL;
	rc = isd_live_discovery_set_auth(x->env->rt, &a, err, sizeof(err));
	explicit_bzero(&a, sizeof(a));
	if (!live_result(x, rc, err))
		return NULL;
	isd_log_info("control (%s): discovery credentials changed", x->peer);
	return json_object_new_object();
}

static struct json_object *
m_session_list(struct rpc *x)
{
	static const char *const keys[] = {"target", NULL};
	char name[ISD_NAME_MAX];
	struct json_object *a;

	if (!p_only(x, keys) || !p_str(x, "target", false, name, sizeof(name)))
		return NULL;
	a = json_object_new_array();
	sessions_of(x, name[0] ? name : NULL, a);
	return a;
}

static bool
p_tsih(struct rpc *x, uint16_t *tsih)
{
	uint64_t v = 0;

	if (!p_uint(x, "tsih", true, 65535, &v, NULL))
		return false;
	*tsih = (uint16_t)v;
	return true;
}

static struct json_object *
m_session_logout(struct rpc *x)
{
	static const char *const keys[] = {"tsih", NULL};
	char err[1024] = "";
	uint16_t tsih;

	if (!p_only(x, keys) || !p_tsih(x, &tsih) ||
	    !live_result(x, isd_live_session_logout(x->env->rt, tsih, err, sizeof(err)), err))
		return NULL;
	isd_log_info("control (%s): session %u asked to log out", x->peer, tsih);
	return json_object_new_object();
}

static struct json_object *
m_connection_drop(struct rpc *x)
{
	static const char *const keys[] = {"tsih", "cid", NULL};
	char err[1024] = "";
	uint16_t tsih;
	uint64_t cid = 0;

	if (!p_only(x, keys) || !p_tsih(x, &tsih) || !p_uint(x, "cid", true, 65535, &cid, NULL) ||
	    !live_result(x, isd_live_conn_drop(x->env->rt, tsih, (uint16_t)cid, err, sizeof(err)),
			 err))
		return NULL;
	isd_log_info("control (%s): connection %llu of session %u dropped", x->peer,
		     (unsigned long long)cid, tsih);
	return json_object_new_object();
}

/* The process counters: today's stats line (iSCSI core, each datamover). */
struct json_object *
isd_ctl_process_stats(struct isd_target_running *rt)
{
	struct isd_iscsi_stats st;
	struct json_object *o = json_object_new_object(), *ro;
	struct isd_stat sv[64];
	int n;

	isd_target_get_stats(rt, &st);
	add_int(o, "sessions", (int64_t)st.sessions);
	add_int(o, "connections", (int64_t)st.connections);
	add_int(o, "tasks", (int64_t)st.tasks);
	add_int(o, "logins_ok", (int64_t)st.logins_ok);
	add_int(o, "logins_failed", (int64_t)st.logins_failed);
	add_int(o, "rejects_sent", (int64_t)st.rejects_sent);
	add_int(o, "bytes_copied", (int64_t)st.bytes_copied);
	add_int(o, "bytes_placed", (int64_t)st.bytes_placed);
	add_int(o, "login_connections", (int64_t)st.login_connections);
	add_int(o, "cmdsn_dropped", (int64_t)st.cmdsn_dropped);
	add_int(o, "control_clients_refused", (int64_t)isd_ctl_clients_refused());
	add_int(o, "direct_io_bounces", (int64_t)isd_bstore_direct_bounces());
	{
		/* the data path's block cache: malloc_calls stops growing once warm */
		struct isd_mem_stats ms;
		struct json_object *mo = json_object_new_object();

		isd_mem_get_stats(&ms);
		add_int(mo, "requests", (int64_t)ms.allocs);
		add_int(mo, "malloc_calls", (int64_t)ms.sys_allocs);
		add_int(mo, "free_calls", (int64_t)ms.sys_frees);
		add_int(mo, "cached_bytes", (int64_t)ms.cached_bytes);
		add_int(mo, "cached_blocks", (int64_t)ms.cached_blocks);
		json_object_object_add(o, "block_cache", mo);
	}
	{
		/* each reactor: the connections placed on it and its loop counters */
		struct isd_reactor_group *g = isd_target_reactor_group(rt);
		unsigned nr = g != NULL ? isd_reactor_group_size(g) : 0;

		if (nr > 0) {
			struct json_object *ra = json_object_new_array();

			for (unsigned i = 0; i < nr; i++) {
				struct isd_reactor *r = isd_reactor_group_get(g, i);
				struct json_object *e = json_object_new_object();
				struct isd_reactor_stats rs;

				isd_reactor_get_stats(r, &rs);
				add_int(e, "reactor", (int64_t)i);
				add_int(e, "connections", (int64_t)isd_reactor_conns(r));
				add_int(e, "turns", (int64_t)rs.turns);
				add_int(e, "sleeps", (int64_t)rs.sleeps);
				add_int(e, "messages", (int64_t)rs.msgs);
				add_int(e, "poll_us", (int64_t)rs.poll_us);
				if ((unsigned)rs.mode < 3)
					add_str(e, "mode", isd_target_reactor_mode_names[rs.mode]);
				json_object_array_add(ra, e);
			}
			json_object_object_add(o, "reactors", ra);
		}
	}
	/* refusals by limit, named after the limit (docs/iserd.md) */
	ro = json_object_new_object();
	n = isd_iscsi_refused_list(&st, sv, (int)(sizeof(sv) / sizeof(sv[0])));
	for (int i = 0; i < n && i < (int)(sizeof(sv) / sizeof(sv[0])); i++)
		add_int(ro, sv[i].name, (int64_t)sv[i].value);
	json_object_object_add(o, "refused", ro);
	/* each datamover's own counters, under its scheme */
	for (unsigned k = 0; k < isd_dm_kind_count; k++) {
		struct json_object *po;

		if (isd_dm_kinds[k]->stats == NULL)
			continue;
		po = json_object_new_object();
		n = isd_dm_kinds[k]->stats(sv, (int)(sizeof(sv) / sizeof(sv[0])));
		for (int i = 0; i < n && i < (int)(sizeof(sv) / sizeof(sv[0])); i++)
			add_int(po, sv[i].name, (int64_t)sv[i].value);
		json_object_object_add(o, isd_dm_kinds[k]->scheme, po);
	}
	return o;
}

static struct json_object *
m_stats_get(struct rpc *x)
{
	static const char *const keys[] = {"target", NULL};
	char name[ISD_NAME_MAX];
	const struct isd_target_cfg *cfg;
	struct json_object *o, *ta, *sa;

	if (!p_only(x, keys) || !p_str(x, "target", false, name, sizeof(name)))
		return NULL;
	if (name[0] && node_or_fail(x, name) == NULL)
		return NULL;
	cfg = isd_target_running_cfg(x->env->rt);
	o = json_object_new_object();
	json_object_object_add(o, "process", isd_ctl_process_stats(x->env->rt));
	ta = json_object_new_array();
	for (int i = 0; i < cfg->node_count; i++) {
		const struct isd_target_node_cfg *n = &cfg->nodes[i];
		struct json_object *t;
		struct isd_io_stats io;
		uint64_t shared;

		if (name[0] && strcasecmp(name, n->name) != 0)
			continue;
		t = json_object_new_object();
		add_str(t, "name", n->name);
		if (isd_live_target_stats(x->env->rt, n->name, &io) == 0)
			json_object_object_add(t, "io", io_json(&io));
		if (isd_live_target_shared_cmds(x->env->rt, n->name, &shared) == 0)
			add_int(t, "shared_commands", (int64_t)shared);
		json_object_object_add(t, "luns", luns_json(x, n));
		json_object_array_add(ta, t);
	}
	json_object_object_add(o, "targets", ta);
	sa = json_object_new_array();
	sessions_of(x, name[0] ? name : NULL, sa);
	json_object_object_add(o, "sessions", sa);
	return o;
}

static struct json_object *
m_stats_prometheus(struct rpc *x)
{
	static const char *const keys[] = {NULL};
	struct json_object *o;
	char *text = NULL;
	size_t len = 0;

	if (!p_only(x, keys))
		return NULL;
	if (isd_ctl_prometheus(x->env->rt, &text, &len) < 0) {
		fail(x, ISD_RPC_INTERNAL_ERROR, "out of memory");
		return NULL;
	}
	o = json_object_new_object();
	json_object_object_add(o, "text", json_object_new_string_len(text, (int)len));
	free(text);
	return o;
}

static const char *const level_names[] = {"error", "warn", "info", "debug"};

static struct json_object *
log_json(void)
{
	struct json_object *o = json_object_new_object();
	char comp[256];

	add_str(o, "level", level_names[isd_log_get_level()]);
	isd_log_get_components(comp, sizeof(comp));
	add_str(o, "debug", comp);
	return o;
}

static struct json_object *
m_log_get(struct rpc *x)
{
	static const char *const keys[] = {NULL};

	if (!p_only(x, keys))
		return NULL;
	return log_json();
}

static struct json_object *
m_log_set(struct rpc *x)
{
	static const char *const keys[] = {"level", "debug", NULL};
	char level[16], debug[200];
	int lv = -1;

	if (!p_only(x, keys) || !p_str(x, "level", false, level, sizeof(level)) ||
	    !p_str(x, "debug", false, debug, sizeof(debug)))
		return NULL;
	if (level[0]) {
		for (int i = 0; i < 4; i++)
			if (strcmp(level, level_names[i]) == 0)
				lv = i;
		if (lv < 0) {
			fail(x, ISD_RPC_INVALID_PARAMS, "'level' must be error, warn, info or debug");
			return NULL;
		}
	}
	for (const char *p = debug; *p; p++) {
		if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == ',' ||
		      *p == '_')) {
			fail(x, ISD_RPC_INVALID_PARAMS,
			     "'debug' is a comma-separated list of components, or all");
			return NULL;
		}
	}
	if (p_get(x, "debug") != NULL)
		isd_log_enable(debug);  /* raises the level to debug; "" turns components off */
	if (lv >= 0)
		isd_log_set_level((enum isd_log_level)lv);
	isd_log_info("control (%s): log level %s%s%s", x->peer,
		     level_names[isd_log_get_level()], debug[0] ? ", debug " : "", debug);
	return log_json();
}

static struct json_object *
m_config_save(struct rpc *x)
{
	static const char *const keys[] = {"path", NULL};
	char path[4096], err[1024] = "";
	struct json_object *o;

	if (!p_only(x, keys) || !p_str(x, "path", false, path, sizeof(path)))
		return NULL;
	if (path[0] == '\0') {
		if (x->env->config_file == NULL || x->env->config_file[0] == '\0') {
			fail(x, ISD_RPC_INVALID_PARAMS,
			     "iserd was started without -c: give 'path' to save to");
			return NULL;
		}
		snprintf(path, sizeof(path), "%s", x->env->config_file);
	}
	if (path[0] != '/') {
		fail(x, ISD_RPC_INVALID_PARAMS, "'path' must be absolute");
		return NULL;
	}
	if (!live_result(x, isd_target_cfg_save(isd_target_running_cfg(x->env->rt), path, err,
						sizeof(err)),
			 err))
		return NULL;
	isd_log_info("control (%s): running configuration saved to %s", x->peer, path);
	o = json_object_new_object();
	add_str(o, "path", path);
	return o;
}

struct json_object *
isd_ctl_diff_json(const struct isd_live_diff *d)
{
	struct json_object *o = json_object_new_object();

	add_int(o, "targets_added", d->targets_added);
	add_int(o, "targets_removed", d->targets_removed);
	add_int(o, "targets_changed", d->targets_changed);
	add_int(o, "targets_unchanged", d->unchanged_targets);
	add_int(o, "luns_added", d->luns_added);
	add_int(o, "luns_removed", d->luns_removed);
	add_int(o, "luns_changed", d->luns_changed);
	add_int(o, "portals_added", d->portals_added);
	add_int(o, "portals_removed", d->portals_removed);
	add_int(o, "portals_changed", d->portals_changed);
	add_int(o, "acl_changed", d->acl_changed);
	add_int(o, "globals_changed", d->globals_changed);
	return o;
}

static struct json_object *
m_config_reload(struct rpc *x)
{
	static const char *const keys[] = {NULL};
	struct isd_live_diff diff;
	char err[1024] = "";

	if (!p_only(x, keys))
		return NULL;
	if (x->env->reload == NULL) {
		fail(x, ISD_RPC_FAILED, "reload is not available");
		return NULL;
	}
	memset(&diff, 0, sizeof(diff));
	isd_log_info("control (%s): reload", x->peer);
	if (!live_result(x, x->env->reload(x->env->reload_arg, &diff, err, sizeof(err)), err))
		return NULL;
	return isd_ctl_diff_json(&diff);
}

static const struct {
	const char *name;
	method_fn fn;
	const char *help;
} g_methods[] = {
    {"server.info", m_server_info, "version, pid, uptime, config file"},
    {"target.list", m_target_list, "every target, with counts"},
    {"target.show", m_target_show, "{target}: LUNs, ACL, sessions, I/O"},
    {"target.add", m_target_add,
     "{target, alias?, tpgt?, luns?: [{lun, backing, ...}], acl?, chap?, mutual_chap?, portals?, "
     "alua_group?, alua_peers?, alua_peer_state?}"},
    {"target.remove", m_target_remove, "{target, force?}"},
    {"target.set_auth", m_target_set_auth, "{target, chap?, mutual_chap?} (absent = off)"},
    {"target.bind", m_target_bind, "{target, portals: [url...]} ([] = every portal)"},
    {"lun.list", m_lun_list, "{target}"},
    {"lun.show", m_lun_show, "{target, lun}"},
    {"lun.add", m_lun_add,
     "{target, lun, backing, read_only?, block_size?, vendor?, product?, serial?}"},
    {"lun.remove", m_lun_remove, "{target, lun}"},
    {"lun.resize", m_lun_resize, "{target, lun, size} (bytes, or \"10G\")"},
    {"lun.set_read_only", m_lun_set_read_only, "{target, lun, read_only}"},
    {"lun.set_alua_state", m_lun_set_alua_state,
     "{target, lun, state} (active/optimized, active/non-optimized, standby, unavailable, "
     "transitioning)"},
    {"lun.takeover", m_lun_takeover,
     "{target, lun} (take a shared store's lock, fencing its owner; returns at once)"},
    {"portal.list", m_portal_list, ""},
    {"portal.add", m_portal_add, "{url, tpgt?, reactors?}"},
    {"portal.remove", m_portal_remove, "{url}"},
    {"acl.list", m_acl_list, "{target}"},
    {"acl.add", m_acl_add, "{target, initiator, chap?, mutual_chap?}"},
    {"acl.remove", m_acl_remove, "{target, initiator}"},
    {"acl.set_auth", m_acl_set_auth, "{target, initiator, chap?, mutual_chap?} (absent = off)"},
    {"discovery.set_auth", m_discovery_set_auth, "{chap?, mutual_chap?} (absent = off)"},
    {"session.list", m_session_list, "{target?}"},
    {"session.logout", m_session_logout, "{tsih}"},
    {"connection.drop", m_connection_drop, "{tsih, cid}"},
    {"stats.get", m_stats_get, "{target?}"},
    {"stats.prometheus", m_stats_prometheus, "the metrics as Prometheus text"},
    {"log.get", m_log_get, ""},
    {"log.set", m_log_set, "{level?, debug?}"},
    {"config.save", m_config_save, "{path?} (default: the file given with -c)"},
    {"config.reload", m_config_reload, "re-read the configuration, as SIGHUP"},
};

static struct json_object *
m_help(struct rpc *x)
{
	static const char *const keys[] = {NULL};
	struct json_object *a;

	if (!p_only(x, keys))
		return NULL;
	a = json_object_new_array();
	for (size_t i = 0; i < sizeof(g_methods) / sizeof(g_methods[0]); i++) {
		struct json_object *o = json_object_new_object();

		add_str(o, "method", g_methods[i].name);
		add_str(o, "params", g_methods[i].help);
		json_object_array_add(a, o);
	}
	return a;
}

static struct json_object *
error_answer(struct json_object *id, int code, const char *msg, const char *err_name)
{
	struct json_object *o = json_object_new_object(), *e = json_object_new_object();

	add_str(o, "jsonrpc", "2.0");
	add_int(e, "code", code);
	add_str(e, "message", msg);
	if (err_name != NULL && err_name[0]) {
		struct json_object *d = json_object_new_object();

		add_str(d, "errno", err_name);
		json_object_object_add(e, "data", d);
	}
	json_object_object_add(o, "error", e);
	json_object_object_add(o, "id", id != NULL ? json_object_get(id) : NULL);
	return o;
}

struct json_object *
isd_ctl_handle(const struct isd_ctl_env *env, struct json_object *req, const char *peer)
{
	struct json_object *v, *id = NULL, *params = NULL, *res, *o;
	struct rpc x = {.env = env, .peer = peer, .err_name = ""};
	bool has_id;
	method_fn fn = NULL;

	if (req == NULL || !json_object_is_type(req, json_type_object))
		return error_answer(NULL, ISD_RPC_INVALID_REQUEST, "a request must be an object",
				    NULL);
	has_id = json_object_object_get_ex(req, "id", &id);
	if (has_id && id != NULL && !json_object_is_type(id, json_type_string) &&
	    !json_object_is_type(id, json_type_int))
		return error_answer(NULL, ISD_RPC_INVALID_REQUEST,
				    "'id' must be a string, an integer or null", NULL);
	if (!json_object_object_get_ex(req, "jsonrpc", &v) ||
	    !json_object_is_type(v, json_type_string) || strcmp(json_object_get_string(v), "2.0"))
		return error_answer(id, ISD_RPC_INVALID_REQUEST, "'jsonrpc' must be \"2.0\"", NULL);
	if (!json_object_object_get_ex(req, "method", &v) ||
	    !json_object_is_type(v, json_type_string))
		return error_answer(id, ISD_RPC_INVALID_REQUEST, "'method' must be a string", NULL);
	x.method = json_object_get_string(v);
	json_object_object_foreach(req, k, kv) {
		(void)kv;
		if (strcmp(k, "jsonrpc") && strcmp(k, "method") && strcmp(k, "params") &&
		    strcmp(k, "id"))
			return error_answer(id, ISD_RPC_INVALID_REQUEST,
					    "a request has only jsonrpc, method, params and id",
					    NULL);
	}
	if (json_object_object_get_ex(req, "params", &params) && params != NULL &&
	    !json_object_is_type(params, json_type_object))
		return error_answer(id, ISD_RPC_INVALID_PARAMS,
				    "'params' must be an object (named parameters)", NULL);
	/* "target.list\u0000x" is not target.list: a NUL byte names no method */
	for (size_t i = 0; i < sizeof(g_methods) / sizeof(g_methods[0]); i++)
		if (strcmp(g_methods[i].name, x.method) == 0)
			fn = g_methods[i].fn;
	if (strcmp(x.method, "help") == 0)
		fn = m_help;
	if (strlen(x.method) != (size_t)json_object_get_string_len(v))
		fn = NULL;
	if (fn == NULL) {
		char esc[ISD_LOG_ESC_MAX], m[ISD_LOG_ESC_MAX + 32];

		snprintf(m, sizeof(m), "no method '%s' (see 'help')",
			 isd_log_escape_str(esc, sizeof(esc), x.method));
		return has_id ? error_answer(id, ISD_RPC_METHOD_NOT_FOUND, m, NULL) : NULL;
	}
	x.params = params != NULL ? json_object_get(params) : json_object_new_object();
	res = fn(&x);
	json_object_put(x.params);
	if (!has_id) {
		/* a notification: done, nothing to answer (JSON-RPC 2.0 §4.1) */
		json_object_put(res);
		return NULL;
	}
	if (res == NULL) {
		if (x.code == 0)
			fail(&x, ISD_RPC_INTERNAL_ERROR, "out of memory");
		return error_answer(id, x.code, x.msg, x.err_name);
	}
	o = json_object_new_object();
	add_str(o, "jsonrpc", "2.0");
	json_object_object_add(o, "result", res);
	json_object_object_add(o, "id", json_object_get(id));
	return o;
}

struct json_object *
isd_ctl_handle_value(const struct isd_ctl_env *env, struct json_object *v, const char *peer)
{
	struct json_object *ans;
	size_t n;

	if (!json_object_is_type(v, json_type_array))
		return isd_ctl_handle(env, v, peer);
	n = json_object_array_length(v);
	if (n == 0)
		return error_answer(NULL, ISD_RPC_INVALID_REQUEST, "empty batch", NULL);
	if (n > ISD_CTL_BATCH_MAX)
		return error_answer(NULL, ISD_RPC_INVALID_REQUEST, "batch of more than 256 requests",
				    NULL);
	ans = json_object_new_array();
	for (size_t i = 0; ans != NULL && i < n; i++) {
		struct json_object *one = isd_ctl_handle(env, json_object_array_get_idx(v, i), peer);

		if (one != NULL)
			json_object_array_add(ans, one);
	}
	if (ans != NULL && json_object_array_length(ans) == 0) {
		/* only notifications: nothing at all is answered (JSON-RPC 2.0 §6) */
		json_object_put(ans);
		ans = NULL;
	}
	return ans;
}

char *
isd_ctl_handle_text(const struct isd_ctl_env *env, const char *text, size_t len, const char *peer)
{
	struct json_tokener *tok = json_tokener_new_ex(ISD_CTL_JSON_DEPTH);
	struct json_object *req, *ans = NULL;
	size_t end;
	char *out;

	if (tok == NULL)
		return NULL;
	req = json_tokener_parse_ex(tok, text, (int)len);
	end = json_tokener_get_parse_end(tok);
	while (end < len && (text[end] == ' ' || text[end] == '\n' || text[end] == '\r' ||
			     text[end] == '\t'))
		end++;
	if (json_tokener_get_error(tok) != json_tokener_success || end != len)
		ans = error_answer(NULL, ISD_RPC_PARSE_ERROR, "parse error", NULL);
	else
		ans = isd_ctl_handle_value(env, req, peer);
	json_tokener_free(tok);
	json_object_put(req);
	out = strdup(ans != NULL ? json_object_to_json_string_ext(
					    ans, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE)
				 : "");
	json_object_put(ans);
	return out;
}
