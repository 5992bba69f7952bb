/*
 * The configuration file, in libconfig syntax (docs/iserd.md has the full
 * reference). Every group is walked against the list of names it may hold,
 * so that a typo ("max_burst_lenght") is an error naming the line, not a
 * setting silently ignored.
 */
#include "server/config_int.h"

#include <errno.h>
#include <libconfig.h>
#include <libgen.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "iscsi/chap.h"
#include "scsi/scsi.h"

/* Context of one load, for messages. */
struct load_ctx {
	const char *path;
	char *err;
	size_t errlen;
	struct isd_target_cfg *cfg;     /* for warnings */
};

static const char *const g_neg_keys[] = {
    "max_recv_data_segment_length",
    "max_burst_length",
    "first_burst_length",
    "max_outstanding_r2t",
    "queue_depth",
    "immediate_data",
    "initial_r2t",
    "header_digest",
    "data_digest",
    NULL,
};
static const char *const g_global_keys[] = {
    "log_level",	"debug",
    "login_timeout",	"nop_interval",
    "nop_timeout",	"logout_timeout",
    "shutdown_timeout", "discovery_auth",
    "chap_algorithms",	"allow_short_chap_secrets",
    "user",		"group",
    "control_socket",	"control_mode",
    "metrics_listen",	"reactor_mode",
    "reactor_poll_us",	"reactors",
    "reactor_cpus",	"polling_reactors",
    NULL,
};
static const char *const g_top_keys[] = {"global", "portals", "targets", NULL};
static const char *const g_portal_keys[] = {"url", "tpgt", "reactors", NULL};
static const char *const g_target_keys[] = {
    "name", "alias", "tpgt", "luns", "acl", "chap", "mutual_chap", "portals", "alua_group",
    "alua_peers", "alua_peer_state", NULL,
};
static const char *const g_lun_keys[] = {
    "number", "backing", "block_size", "physical_block_size", "read_only", "vendor", "product",
    "serial", "naa", "alua_state", NULL,
};
static const char *const g_auth_keys[] = {"chap", "mutual_chap", NULL};
static const char *const g_cred_keys[] = {"user", "secret", "secret_file", "secret_env", NULL};
static const char *const g_acl_keys[] = {"initiator", "chap", "mutual_chap", NULL};

static int __attribute__((format(printf, 3, 4)))
fail(struct load_ctx *x, const config_setting_t *s, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	isd_target_errf(x->err, x->errlen, "%s:%d: %s", x->path,
			s ? config_setting_source_line(s) : 0, msg);
	return -EINVAL;
}

static bool
in_list(const char *name, const char *const *list)
{
	for (; list && *list; list++)
		if (strcmp(name, *list) == 0)
			return true;
	return false;
}

/* Every member of group g must be in one of the lists. */
static int
check_keys(struct load_ctx *x, const config_setting_t *g, const char *what, const char *const *a,
	   const char *const *b)
{
	if (!config_setting_is_group(g))
		return fail(x, g, "%s must be a group { ... }", what);
	for (int i = 0; i < config_setting_length(g); i++) {
		const config_setting_t *m = config_setting_get_elem(g, (unsigned)i);
		const char *name = config_setting_name(m);

		if (name == NULL || (!in_list(name, a) && !in_list(name, b)))
			return fail(x, m, "unknown setting '%s' in %s", name ? name : "?", what);
	}
	return 0;
}

static int
get_int64(struct load_ctx *x, const config_setting_t *s, int64_t lo, int64_t hi, int64_t *out)
{
	int64_t v;
	char range[64];

	switch (config_setting_type(s)) {
	case CONFIG_TYPE_INT:
		v = config_setting_get_int(s);
		break;
	case CONFIG_TYPE_INT64:
		v = config_setting_get_int64(s);
		break;
	default:
		return fail(x, s, "'%s' must be an integer", config_setting_name(s));
	}
	if (v < lo || v > hi) {
		snprintf(range, sizeof(range), " (%lld..%lld)", (long long)lo, (long long)hi);
		return fail(x, s, "'%s' out of range%s", config_setting_name(s), range);
	}
	*out = v;
	return 0;
}

/* Seconds, integer or fractional, into milliseconds. */
static int
get_seconds_ms(struct load_ctx *x, const config_setting_t *s, int64_t *out_ms)
{
	double v;

	switch (config_setting_type(s)) {
	case CONFIG_TYPE_INT:
		v = config_setting_get_int(s);
		break;
	case CONFIG_TYPE_INT64:
		v = (double)config_setting_get_int64(s);
		break;
	case CONFIG_TYPE_FLOAT:
		v = config_setting_get_float(s);
		break;
	default:
		return fail(x, s, "'%s' must be a number of seconds", config_setting_name(s));
	}
	if (v < 0 || v > 3600)
		return fail(x, s, "'%s' out of range (0..3600 seconds)", config_setting_name(s));
	*out_ms = (int64_t)(v * 1000.0 + 0.5);
	return 0;
}

static int
get_bool(struct load_ctx *x, const config_setting_t *s, bool *out)
{
	if (config_setting_type(s) != CONFIG_TYPE_BOOL)
		return fail(x, s, "'%s' must be true or false", config_setting_name(s));
	*out = config_setting_get_bool(s) != 0;
	return 0;
}

static int
get_string(struct load_ctx *x, const config_setting_t *s, char *out, size_t cap)
{
	const char *v;
	char lim[32];

	if (config_setting_type(s) != CONFIG_TYPE_STRING)
		return fail(x, s, "'%s' must be a string", config_setting_name(s));
	v = config_setting_get_string(s);
	if (strlen(v) >= cap) {
		snprintf(lim, sizeof(lim), " (at most %zu bytes)", cap - 1);
		return fail(x, s, "'%s' too long%s", config_setting_name(s), lim);
	}
	snprintf(out, cap, "%s", v);
	return 0;
}

static int
load_neg(struct load_ctx *x, const config_setting_t *g, struct isd_target_neg_cfg *n)
{
	for (int i = 0; i < config_setting_length(g); i++) {
		const config_setting_t *s = config_setting_get_elem(g, (unsigned)i);
		const char *name = config_setting_name(s);
		int64_t *num = NULL;
		int *flag = NULL;
		int rc;

		if (strcmp(name, "max_recv_data_segment_length") == 0)
			num = &n->max_recv_data_segment_length;
		else if (strcmp(name, "max_burst_length") == 0)
			num = &n->max_burst_length;
		else if (strcmp(name, "first_burst_length") == 0)
			num = &n->first_burst_length;
		else if (strcmp(name, "max_outstanding_r2t") == 0)
			num = &n->max_outstanding_r2t;
		else if (strcmp(name, "queue_depth") == 0)
			num = &n->queue_depth;
		else if (strcmp(name, "immediate_data") == 0)
			flag = &n->immediate_data;
		else if (strcmp(name, "initial_r2t") == 0)
			flag = &n->initial_r2t;
		if (num != NULL) {
			/* ranges are checked by validate, which names the limit */
			rc = get_int64(x, s, 0, INT32_MAX, num);
			if (rc < 0)
				return rc;
		} else if (flag != NULL) {
			bool b = false;

			rc = get_bool(x, s, &b);
			if (rc < 0)
				return rc;
			*flag = b;
		} else if (strcmp(name, "header_digest") == 0 || strcmp(name, "data_digest") == 0) {
			int *d = name[0] == 'h' ? &n->header_digest : &n->data_digest;
			const char *v;

			if (config_setting_type(s) == CONFIG_TYPE_BOOL) {
				*d = config_setting_get_bool(s) ? ISD_TARGET_DIGEST_ALLOW
								: ISD_TARGET_DIGEST_NONE;
				continue;
			}
			if (config_setting_type(s) != CONFIG_TYPE_STRING)
				return fail(x, s, "'%s' must be \"none\", \"allow\" or \"prefer\"",
					    name);
			v = config_setting_get_string(s);
			if (strcasecmp(v, "none") == 0)
				*d = ISD_TARGET_DIGEST_NONE;
			else if (strcasecmp(v, "allow") == 0 || strcasecmp(v, "crc32c") == 0)
				*d = ISD_TARGET_DIGEST_ALLOW;
			else if (strcasecmp(v, "prefer") == 0)
				*d = ISD_TARGET_DIGEST_PREFER;
			else
				return fail(x, s, "'%s' must be \"none\", \"allow\" or \"prefer\"",
					    name);
		}
	}
	return 0;
}

/*
 * A secret written into a config file is as safe as the file: warn when the
 * group or others may read the file the setting came from (an @include'd one
 * included).
 */
static void
note_literal_secret(struct load_ctx *x, const config_setting_t *s)
{
	const char *file = config_setting_source_file(s);
	char joined[8192];
	struct stat st;

	if (file == NULL)
		file = x->path;
	/* libconfig names an included file as written, relative to the include dir */
	if (file[0] != '/' && file != x->path) {
		const char *slash = strrchr(x->path, '/');

		snprintf(joined, sizeof(joined), "%.*s%s",
			 slash ? (int)(slash - x->path + 1) : 0, x->path, file);
		file = joined;
	}
	if (stat(file, &st) == 0 && (st.st_mode & (S_IRWXG | S_IRWXO)) != 0)
		isd_target_cfg_warn(x->cfg,
				    "%s holds CHAP secrets and is accessible to group or others "
				    "(mode %04o); chmod 600 it, or use secret_file",
				    file, (unsigned int)(st.st_mode & 07777));
}

/*
 * chap = "USER:SECRET" (also USER:@FILE, USER:env:VAR) or
 * chap = { user = "..."; secret = "..." | secret_file = "/path" | secret_env = "VAR"; }
 */
static int
load_cred(struct load_ctx *x, const config_setting_t *s, struct isd_chap_cred *out)
{
	char why[200], path[4096];
	const config_setting_t *u, *sec, *file, *env;
	int rc, n;

	if (config_setting_type(s) == CONFIG_TYPE_STRING) {
		rc = isd_target_chap_parse(x->cfg, config_setting_get_string(s), out, why,
					   sizeof(why));
		if (rc < 0)
			return fail(x, s, "'%s': %s", config_setting_name(s), why);
		if (rc == 1)
			note_literal_secret(x, s);
		return 0;
	}
	rc = check_keys(x, s, config_setting_name(s), g_cred_keys, NULL);
	if (rc < 0)
		return rc;
	u = config_setting_get_member(s, "user");
	sec = config_setting_get_member(s, "secret");
	file = config_setting_get_member(s, "secret_file");
	env = config_setting_get_member(s, "secret_env");
	n = (sec != NULL) + (file != NULL) + (env != NULL);
	if (u == NULL || n == 0)
		return fail(x, s, "'%s' needs a user and one of secret, secret_file, secret_env",
			    config_setting_name(s));
	if (n > 1)
		return fail(x, s, "'%s': give only one of secret, secret_file, secret_env",
			    config_setting_name(s));
	rc = get_string(x, u, out->user, sizeof(out->user));
	if (rc < 0)
		return rc;
	if (sec != NULL) {
		rc = get_string(x, sec, out->secret, sizeof(out->secret));
		if (rc < 0)
			return rc;
		note_literal_secret(x, sec);
	} else {
		const config_setting_t *v = file != NULL ? file : env;

		rc = get_string(x, v, path, sizeof(path));
		if (rc < 0)
			return rc;
		rc = file != NULL ? isd_target_secret_file(x->cfg, path, out->secret,
							   sizeof(out->secret), why, sizeof(why))
				  : isd_target_secret_env(path, out->secret, sizeof(out->secret),
							  why, sizeof(why));
		if (rc < 0)
			return fail(x, v, "%s", why);
	}
	if (out->user[0] == '\0' || out->secret[0] == '\0')
		return fail(x, s, "'%s': user and secret must not be empty",
			    config_setting_name(s));
	return 0;
}

static int
load_auth(struct load_ctx *x, const config_setting_t *g, struct isd_auth_cfg *a)
{
	const config_setting_t *s;
	int rc;

	s = config_setting_get_member(g, "chap");
	if (s != NULL) {
		rc = load_cred(x, s, &a->chap);
		if (rc < 0)
			return rc;
		a->require_chap = true;
	}
	s = config_setting_get_member(g, "mutual_chap");
	if (s != NULL) {
		rc = load_cred(x, s, &a->mutual_chap);
		if (rc < 0)
			return rc;
		a->mutual = true;
		if (!a->require_chap)
			return fail(x, s, "mutual_chap needs chap as well");
	}
	return 0;
}

/* chap_algorithms = [ "sha3-256", "sha256", "sha1", "md5" ]: the ones we accept. */
static int
load_chap_algs(struct load_ctx *x, const config_setting_t *l, uint32_t *mask)
{
	if (!config_setting_is_aggregate(l) || config_setting_is_group(l))
		return fail(x, l, "chap_algorithms must be a list [ \"sha256\", ... ]");
	*mask = 0;
	for (int i = 0; i < config_setting_length(l); i++) {
		const config_setting_t *e = config_setting_get_elem(l, (unsigned)i);
		const char *v = config_setting_get_string(e);
		uint32_t bit = 0;

		for (int k = 0; v != NULL && k < isd_target_chap_alg_count; k++)
			if (strcasecmp(v, isd_target_chap_algs[k].name) == 0)
				bit = ISD_CHAP_ALG_BIT(isd_target_chap_algs[k].alg);
		if (bit == 0)
			return fail(x, e, "chap_algorithms: '%s' is not one of %s", v ? v : "?",
				    "sha3-256, sha256, sha1, md5");
		*mask |= bit;
	}
	if (*mask == 0)
		return fail(x, l, "chap_algorithms must name at least one algorithm");
	return 0;
}

/* Permission bits: an octal string ("0660") or an integer (0660 in libconfig is octal too). */
static int
load_mode(struct load_ctx *x, const config_setting_t *s, int *out)
{
	int64_t v;

	if (config_setting_type(s) == CONFIG_TYPE_STRING) {
		const char *str = config_setting_get_string(s);
		char *end;

		errno = 0;
		v = strtol(str, &end, 8);
		if (str[0] < '0' || str[0] > '7' || *end != '\0' || errno != 0 || v > 0777)
			return fail(x, s, "'%s' must be octal permission bits such as \"0660\"",
				    config_setting_name(s));
		*out = (int)v;
		return 0;
	}
	if (get_int64(x, s, 0, 0777, &v) < 0)
		return -EINVAL;
	*out = (int)v;
	return 0;
}

static int
load_global(struct load_ctx *x, const config_setting_t *g, struct isd_target_cfg *cfg)
{
	const config_setting_t *s;
	const char *keys[sizeof(g_global_keys) / sizeof(g_global_keys[0]) + 16 +
			 ISD_TARGET_DM_KINDS_MAX * ISD_DM_KNOBS_MAX];
	int rc, n = 0;

	/* the known settings: g_global_keys, the limits' own table, the datamovers' knobs */
	for (int i = 0; g_global_keys[i] != NULL; i++)
		keys[n++] = g_global_keys[i];
	for (int i = 0; i < isd_target_limit_count && n < (int)(sizeof(keys) / sizeof(keys[0])) - 1;
	     i++)
		keys[n++] = isd_target_limits[i].name;
	for (unsigned k = 0; k < isd_dm_kind_count && k < ISD_TARGET_DM_KINDS_MAX; k++)
		for (int j = 0; j < isd_dm_kinds[k]->knob_count && j < ISD_DM_KNOBS_MAX &&
				n < (int)(sizeof(keys) / sizeof(keys[0])) - 1;
		     j++)
			keys[n++] = isd_dm_kinds[k]->knobs[j].name;
	keys[n] = NULL;
	rc = check_keys(x, g, "global", keys, g_neg_keys);
	if (rc < 0)
		return rc;
	if ((s = config_setting_get_member(g, "log_level")) != NULL) {
		char v[16];

		rc = get_string(x, s, v, sizeof(v));
		if (rc < 0)
			return rc;
		cfg->log_level = -1;
		for (int i = 0; i < 4; i++)
			if (strcasecmp(v, isd_target_log_level_names[i]) == 0)
				cfg->log_level = i;
		if (strcasecmp(v, "warning") == 0)
			cfg->log_level = ISD_LOG_WARN;
		if (cfg->log_level == -1)
			return fail(x, s, "log_level '%s' is not one of error, warn, info, debug",
				    v);
	}
	if ((s = config_setting_get_member(g, "debug")) != NULL) {
		rc = get_string(x, s, cfg->debug, sizeof(cfg->debug) - 2);
		if (rc < 0)
			return rc;
	}
	if ((s = config_setting_get_member(g, "login_timeout")) != NULL &&
	    (rc = get_seconds_ms(x, s, &cfg->login_timeout_ms)) < 0)
		return rc;
	if ((s = config_setting_get_member(g, "nop_interval")) != NULL &&
	    (rc = get_seconds_ms(x, s, &cfg->nop_interval_ms)) < 0)
		return rc;
	if ((s = config_setting_get_member(g, "nop_timeout")) != NULL &&
	    (rc = get_seconds_ms(x, s, &cfg->nop_timeout_ms)) < 0)
		return rc;
	if ((s = config_setting_get_member(g, "logout_timeout")) != NULL &&
	    (rc = get_seconds_ms(x, s, &cfg->logout_timeout_ms)) < 0)
		return rc;
	if ((s = config_setting_get_member(g, "shutdown_timeout")) != NULL &&
	    (rc = get_seconds_ms(x, s, &cfg->shutdown_timeout_ms)) < 0)
		return rc;
	if ((s = config_setting_get_member(g, "reactor_mode")) != NULL) {
		char v[16];

		rc = get_string(x, s, v, sizeof(v));
		if (rc < 0)
			return rc;
		cfg->reactor_mode = isd_target_reactor_mode_parse(v);
		if (cfg->reactor_mode < 0)
			return fail(x, s, "reactor_mode is not one of event, poll, adaptive");
	}
	if ((s = config_setting_get_member(g, "reactor_poll_us")) != NULL &&
	    (rc = get_int64(x, s, 0, 100000, &cfg->reactor_poll_us)) < 0)
		return rc;
	/* a number of reactor threads, or "auto": one per CPU iserd may run on */
	if ((s = config_setting_get_member(g, "reactors")) != NULL) {
		if (config_setting_type(s) == CONFIG_TYPE_STRING) {
			char v[16];

			rc = get_string(x, s, v, sizeof(v));
			if (rc < 0)
				return rc;
			if (strcmp(v, "auto") != 0)
				return fail(x, s, "reactors must be a number 1..%d or \"auto\"",
					    ISD_TARGET_REACTORS_MAX);
			cfg->reactors = 0;
		} else {
			int64_t v;

			if (config_setting_type(s) != CONFIG_TYPE_INT &&
			    config_setting_type(s) != CONFIG_TYPE_INT64)
				return fail(x, s, "reactors must be a number 1..%d or \"auto\"",
					    ISD_TARGET_REACTORS_MAX);
			rc = get_int64(x, s, 1, ISD_TARGET_REACTORS_MAX, &v);
			if (rc < 0)
				return rc;
			cfg->reactors = (int)v;
		}
	}
	if ((s = config_setting_get_member(g, "reactor_cpus")) != NULL) {
		char why[256];
		unsigned ncpu;

		rc = get_string(x, s, cfg->reactor_cpus, sizeof(cfg->reactor_cpus));
		if (rc < 0)
			return rc;
		if (isd_target_cpu_list_parse(cfg->reactor_cpus, NULL, ISD_TARGET_CPUS_MAX, &ncpu, why,
					      sizeof(why)) < 0)
			return fail(x, s, "reactor_cpus: %s", why);
	}
	if ((s = config_setting_get_member(g, "polling_reactors")) != NULL) {
		char why[256];

		rc = get_string(x, s, cfg->polling_reactors, sizeof(cfg->polling_reactors));
		if (rc < 0)
			return rc;
		if (isd_target_reactor_list_parse(cfg->polling_reactors, NULL, NULL, why,
						  sizeof(why)) < 0)
			return fail(x, s, "polling_reactors: %s", why);
	}
	for (unsigned k = 0; k < isd_dm_kind_count && k < ISD_TARGET_DM_KINDS_MAX; k++) {
		const struct isd_dm_kind *kind = isd_dm_kinds[k];

		for (int j = 0; j < kind->knob_count && j < ISD_DM_KNOBS_MAX; j++) {
			const struct isd_dm_knob *kn = &kind->knobs[j];

			s = config_setting_get_member(g, kn->name);
			if (s == NULL)
				continue;
			if (kn->is_bool) {
				bool b = false;

				rc = get_bool(x, s, &b);
				if (rc < 0)
					return rc;
				cfg->dm_setting[k][j] = b ? 1 : 0;
			} else {
				rc = get_int64(x, s, kn->min, kn->max, &cfg->dm_setting[k][j]);
				if (rc < 0)
					return rc;
			}
		}
	}
	for (int i = 0; i < isd_target_limit_count; i++) {
		const struct isd_target_limit *l = &isd_target_limits[i];

		if ((s = config_setting_get_member(g, l->name)) != NULL &&
		    (rc = get_int64(x, s, 0, l->max, isd_target_limit_val(cfg, l))) < 0)
			return rc;
	}
	if ((s = config_setting_get_member(g, "allow_short_chap_secrets")) != NULL &&
	    (rc = get_bool(x, s, &cfg->allow_short_secrets)) < 0)
		return rc;
	if ((s = config_setting_get_member(g, "chap_algorithms")) != NULL &&
	    (rc = load_chap_algs(x, s, &cfg->chap_algs)) < 0)
		return rc;
	if ((s = config_setting_get_member(g, "user")) != NULL &&
	    (rc = get_string(x, s, cfg->user, sizeof(cfg->user))) < 0)
		return rc;
	if ((s = config_setting_get_member(g, "group")) != NULL &&
	    (rc = get_string(x, s, cfg->group, sizeof(cfg->group))) < 0)
		return rc;
	if ((s = config_setting_get_member(g, "control_socket")) != NULL) {
		rc = get_string(x, s, cfg->control_socket, sizeof(cfg->control_socket));
		if (rc < 0)
			return rc;
		if (cfg->control_socket[0] == '\0')
			return fail(x, s, "control_socket must be a path or \"none\"");
	}
	if ((s = config_setting_get_member(g, "control_mode")) != NULL &&
	    (rc = load_mode(x, s, &cfg->control_mode)) < 0)
		return rc;
	if ((s = config_setting_get_member(g, "metrics_listen")) != NULL) {
		char host[64], why[160];
		uint16_t port;

		rc = get_string(x, s, cfg->metrics_listen, sizeof(cfg->metrics_listen));
		if (rc < 0)
			return rc;
		/* "" keeps it off, as when the setting is absent */
		if (cfg->metrics_listen[0] != '\0' &&
		    isd_target_listen_parse(cfg->metrics_listen, host, sizeof(host), &port, why,
					    sizeof(why)) < 0)
			return fail(x, s, "metrics_listen: %s", why);
	}
	if ((s = config_setting_get_member(g, "discovery_auth")) != NULL) {
		rc = check_keys(x, s, "discovery_auth", g_auth_keys, NULL);
		if (rc < 0)
			return rc;
		rc = load_auth(x, s, &cfg->discovery_auth);
		if (rc < 0)
			return rc;
	}
	return load_neg(x, g, &cfg->neg);
}

static void
set_origin(struct load_ctx *x, const config_setting_t *s, char *out, size_t cap)
{
	snprintf(out, cap, "%s:%d", x->path, config_setting_source_line(s));
}

static int
load_portals(struct load_ctx *x, const config_setting_t *l, struct isd_target_cfg *cfg)
{
	char why[160], esc[ISD_LOG_ESC_MAX];
	int rc;

	if (!config_setting_is_aggregate(l) || config_setting_is_group(l))
		return fail(x, l, "portals must be a list ( ... ) or array [ ... ]");
	for (int i = 0; i < config_setting_length(l); i++) {
		const config_setting_t *e = config_setting_get_elem(l, (unsigned)i);
		const config_setting_t *u = e;
		struct isd_target_portal_spec ps, *p;
		const config_setting_t *rs = NULL;
		int64_t tpgt = -1;

		if (config_setting_is_group(e)) {
			rc = check_keys(x, e, "portal", g_portal_keys, NULL);
			if (rc < 0)
				return rc;
			u = config_setting_get_member(e, "url");
			if (u == NULL)
				return fail(x, e, "portal needs a url");
			const config_setting_t *t = config_setting_get_member(e, "tpgt");

			if (t != NULL && (rc = get_int64(x, t, 1, 65535, &tpgt)) < 0)
				return rc;
			rs = config_setting_get_member(e, "reactors");
		}
		if (config_setting_type(u) != CONFIG_TYPE_STRING)
			return fail(x, u, "portal must be a string \"tcp://ADDR:PORT\"");
		if (isd_target_portal_parse(config_setting_get_string(u), &ps, why, sizeof(why)) <
		    0)
			return fail(x, u, "portal %s: %s",
				    isd_log_escape_str(esc, sizeof(esc), config_setting_get_string(u)),
				    why);
		ps.tpgt = (int)tpgt;
		if (rs != NULL) {
			rc = get_string(x, rs, ps.reactors, sizeof(ps.reactors));
			if (rc < 0)
				return rc;
			/* the count running is known at start; the form is checked here */
			if (isd_target_reactor_list_parse(ps.reactors, NULL, NULL, why, sizeof(why)) <
			    0)
				return fail(x, rs, "reactors: %s", why);
		}
		set_origin(x, u, ps.origin, sizeof(ps.origin));
		p = isd_target_cfg_add_portal(cfg);
		if (p == NULL)
			return -ENOMEM;
		*p = ps;
	}
	return 0;
}

static int
load_lun(struct load_ctx *x, const config_setting_t *g, struct isd_target_node_cfg *n)
{
	struct isd_target_lun_cfg lc, *l;
	const config_setting_t *s;
	char why[200];
	int64_t v;
	int rc;

	rc = check_keys(x, g, "lun", g_lun_keys, NULL);
	if (rc < 0)
		return rc;
	memset(&lc, 0, sizeof(lc));
	s = config_setting_get_member(g, "backing");
	if (s == NULL) {
		char kinds[512];

		isd_bstore_kinds_usage(kinds, sizeof(kinds), ", ", ", ");
		return fail(x, g, "lun needs a backing (%s)", kinds);
	}
	if (config_setting_type(s) != CONFIG_TYPE_STRING)
		return fail(x, s, "'backing' must be a string");
	if (isd_target_lun_spec_parse(config_setting_get_string(s), &lc, why, sizeof(why)) < 0)
		return fail(x, s, "backing %s: %s", config_setting_get_string(s), why);
	set_origin(x, s, lc.origin, sizeof(lc.origin));

	if ((s = config_setting_get_member(g, "number")) != NULL) {
		rc = get_int64(x, s, 0, UINT32_MAX, &v);
		if (rc < 0)
			return rc;
		lc.number = (uint32_t)v;
	} else {
		/* unnumbered LUNs take the next free number, in file order */
		for (int i = 0; i < n->lun_count; i++)
			if (n->luns[i].number + 1 > lc.number)
				lc.number = n->luns[i].number + 1;
	}
	if ((s = config_setting_get_member(g, "block_size")) != NULL) {
		rc = get_int64(x, s, 0, 1 << 20, &v);
		if (rc < 0)
			return rc;
		lc.block_size = (uint32_t)v;
	}
	/* validated with block_size (validate_lun); a ",physical_block_size=" in the
	 * backing spec is the same setting, and this key wins over it */
	if ((s = config_setting_get_member(g, "physical_block_size")) != NULL) {
		rc = get_int64(x, s, 0, 1 << 20, &v);
		if (rc < 0)
			return rc;
		lc.physical_block_size = (uint32_t)v;
	}
	if ((s = config_setting_get_member(g, "read_only")) != NULL &&
	    (rc = get_bool(x, s, &lc.read_only)) < 0)
		return rc;
	if ((s = config_setting_get_member(g, "vendor")) != NULL &&
	    (rc = get_string(x, s, lc.vendor, sizeof(lc.vendor))) < 0)
		return rc;
	if ((s = config_setting_get_member(g, "product")) != NULL &&
	    (rc = get_string(x, s, lc.product, sizeof(lc.product))) < 0)
		return rc;
	if ((s = config_setting_get_member(g, "serial")) != NULL &&
	    (rc = get_string(x, s, lc.serial, sizeof(lc.serial))) < 0)
		return rc;
	if ((s = config_setting_get_member(g, "naa")) != NULL) {
		char naa[40];

		rc = get_string(x, s, naa, sizeof(naa));
		if (rc < 0)
			return rc;
		if (isd_target_naa_parse(naa, lc.naa, why, sizeof(why)) < 0)
			return fail(x, s, "%s", why);
	}
	if ((s = config_setting_get_member(g, "alua_state")) != NULL) {
		enum isd_scsi_alua_state st;
		char name[32];

		rc = get_string(x, s, name, sizeof(name));
		if (rc < 0)
			return rc;
		if (isd_scsi_alua_state_parse(name, &st) < 0)
			return fail(x, s, "alua_state: active/optimized, active/non-optimized, "
				    "standby, unavailable or transitioning");
		lc.alua_state = (uint8_t)st;
		lc.alua_state_set = true;
	}
	l = isd_target_node_add_lun(n);
	if (l == NULL)
		return -ENOMEM;
	*l = lc;
	return 0;
}

/* "iqn..." or { initiator = "iqn..."; chap = CRED; mutual_chap = CRED; } */
static int
load_acl_entry(struct load_ctx *x, const config_setting_t *e, struct isd_target_node_cfg *n)
{
	struct isd_target_ini_cfg *ic;
	const config_setting_t *ini = e, *c;
	char why[160];
	const char *name;
	int rc;

	if (config_setting_is_group(e)) {
		rc = check_keys(x, e, "acl entry", g_acl_keys, NULL);
		if (rc < 0)
			return rc;
		ini = config_setting_get_member(e, "initiator");
		if (ini == NULL)
			return fail(x, e, "acl entry needs an initiator name");
	}
	if (config_setting_type(ini) != CONFIG_TYPE_STRING)
		return fail(x, ini, "acl entries must be strings or groups { initiator = ...; }");
	name = config_setting_get_string(ini);
	if (isd_target_name_check(name, why, sizeof(why)) < 0)
		return fail(x, ini, "invalid initiator name '%s' in acl: %s", name, why);
	if (isd_target_node_add_acl(n, name) < 0)
		return -ENOMEM;
	if (!config_setting_is_group(e) || config_setting_length(e) == 1)
		return 0;
	ic = isd_target_node_add_ini(n);
	if (ic == NULL)
		return -ENOMEM;
	snprintf(ic->name, sizeof(ic->name), "%s", name);
	set_origin(x, e, ic->origin, sizeof(ic->origin));
	if ((c = config_setting_get_member(e, "chap")) != NULL) {
		rc = load_cred(x, c, &ic->auth.chap);
		if (rc < 0)
			return rc;
		ic->auth.require_chap = true;
	}
	if ((c = config_setting_get_member(e, "mutual_chap")) != NULL) {
		rc = load_cred(x, c, &ic->auth.mutual_chap);
		if (rc < 0)
			return rc;
		ic->auth.mutual = true;
	}
	return 0;
}

static int
load_target(struct load_ctx *x, const config_setting_t *g, struct isd_target_cfg *cfg)
{
	struct isd_target_node_cfg *n;
	const config_setting_t *s;
	char name[ISD_NAME_MAX], why[160], origin[ISD_TARGET_ORIGIN_MAX], esc[ISD_LOG_ESC_MAX];
	int64_t v;
	int rc;

	rc = check_keys(x, g, "target", g_target_keys, g_neg_keys);
	if (rc < 0)
		return rc;
	s = config_setting_get_member(g, "name");
	if (s == NULL)
		return fail(x, g, "target needs a name (e.g. \"%s\")", ISD_TARGET_DEFAULT_NAME);
	rc = get_string(x, s, name, sizeof(name));
	if (rc < 0)
		return rc;
	if (isd_target_name_check(name, why, sizeof(why)) < 0)
		return fail(x, s, "invalid target name '%s': %s", name, why);
	set_origin(x, g, origin, sizeof(origin));
	if (isd_target_cfg_find_node(cfg, name) != NULL)
		return fail(x, s, "duplicate target %s", name);
	n = isd_target_cfg_add_node(cfg, name, origin);
	if (n == NULL)
		return -ENOMEM;
	if ((s = config_setting_get_member(g, "alias")) != NULL &&
	    (rc = get_string(x, s, n->alias, sizeof(n->alias))) < 0)
		return rc;
	if ((s = config_setting_get_member(g, "tpgt")) != NULL) {
		rc = get_int64(x, s, 1, 65535, &v);
		if (rc < 0)
			return rc;
		n->tpgt = (int)v;
	}
	if ((s = config_setting_get_member(g, "alua_group")) != NULL) {
		rc = get_int64(x, s, 1, 65535, &v);
		if (rc < 0)
			return rc;
		n->alua_group = (uint16_t)v;
	}
	if ((s = config_setting_get_member(g, "alua_peer_state")) != NULL) {
		char st[32];

		rc = get_string(x, s, st, sizeof(st));
		if (rc < 0)
			return rc;
		if (isd_target_alua_peer_state_parse(st, &n->alua_peer_state) < 0)
			return fail(x, s, "alua_peer_state: active/non-optimized, standby or "
				    "unavailable");
	}
	if ((s = config_setting_get_member(g, "alua_peers")) != NULL) {
		/* [ 2, 3 ] or [ "2/2", "3/7" ]: GROUP, or GROUP/PORT */
		if (!config_setting_is_aggregate(s) || config_setting_is_group(s))
			return fail(x, s, "alua_peers must be a list [ GROUP or \"GROUP/PORT\", ... ]");
		if (n->alua_group == 0)
			return fail(x, s, "alua_peers needs alua_group");
		for (int i = 0; i < config_setting_length(s); i++) {
			const config_setting_t *e = config_setting_get_elem(s, (unsigned)i);
			struct isd_target_alua_peer p;
			char pbuf[24];

			if (config_setting_type(e) == CONFIG_TYPE_INT ||
			    config_setting_type(e) == CONFIG_TYPE_INT64) {
				rc = get_int64(x, e, 1, 65535, &v);
				if (rc < 0)
					return rc;
				snprintf(pbuf, sizeof(pbuf), "%d", (int)v);
			} else if (config_setting_type(e) == CONFIG_TYPE_STRING) {
				rc = get_string(x, e, pbuf, sizeof(pbuf));
				if (rc < 0)
					return rc;
			} else {
				return fail(x, e, "alua_peers entries are GROUP or \"GROUP/PORT\"");
			}
			if (isd_target_alua_peer_parse(pbuf, &p, why, sizeof(why)) < 0 ||
			    isd_target_alua_peer_add(n, &p, why, sizeof(why)) < 0)
				return fail(x, e, "%s", why);
		}
	}
	if ((s = config_setting_get_member(g, "luns")) != NULL) {
		if (!config_setting_is_list(s))
			return fail(x, s, "luns must be a list ( { ... }, ... )");
		for (int i = 0; i < config_setting_length(s); i++) {
			rc = load_lun(x, config_setting_get_elem(s, (unsigned)i), n);
			if (rc < 0)
				return rc;
		}
	}
	if ((s = config_setting_get_member(g, "acl")) != NULL) {
		if (!config_setting_is_aggregate(s) || config_setting_is_group(s))
			return fail(x, s, "acl must be a list of initiator names [ \"iqn...\" ]");
		for (int i = 0; i < config_setting_length(s); i++) {
			rc = load_acl_entry(x, config_setting_get_elem(s, (unsigned)i), n);
			if (rc < 0)
				return rc;
		}
	}
	if ((s = config_setting_get_member(g, "portals")) != NULL) {
		/* URLs of configured portals; validation checks each names one */
		if (!config_setting_is_aggregate(s) || config_setting_is_group(s))
			return fail(x, s, "portals must be a list of URLs [ \"tcp://...\" ]");
		for (int i = 0; i < config_setting_length(s); i++) {
			const config_setting_t *e = config_setting_get_elem(s, (unsigned)i);
			struct isd_target_portal_spec ps;
			const char *url;

			if (config_setting_type(e) != CONFIG_TYPE_STRING)
				return fail(x, e, "portals must be strings \"tcp://ADDR:PORT\"");
			url = config_setting_get_string(e);
			if (isd_target_portal_parse(url, &ps, why, sizeof(why)) < 0)
				return fail(x, e, "portal %s: %s",
					    isd_log_escape_str(esc, sizeof(esc), url), why);
			if (isd_target_node_add_portal(n, url) < 0)
				return -ENOMEM;
		}
	}
	rc = load_auth(x, g, &n->auth);
	if (rc < 0)
		return rc;
	return load_neg(x, g, &n->neg);
}

static int
load_root(struct load_ctx *x, const config_setting_t *root, struct isd_target_cfg *cfg)
{
	const config_setting_t *s;
	int rc;

	rc = check_keys(x, root, "the top level", g_top_keys, NULL);
	if (rc < 0)
		return rc;
	if ((s = config_setting_get_member(root, "global")) != NULL &&
	    (rc = load_global(x, s, cfg)) < 0)
		return rc;
	if ((s = config_setting_get_member(root, "portals")) != NULL &&
	    (rc = load_portals(x, s, cfg)) < 0)
		return rc;
	if ((s = config_setting_get_member(root, "targets")) != NULL) {
		if (!config_setting_is_list(s))
			return fail(x, s, "targets must be a list ( { ... }, ... )");
		for (int i = 0; i < config_setting_length(s); i++) {
			rc = load_target(x, config_setting_get_elem(s, (unsigned)i), cfg);
			if (rc < 0)
				return rc;
		}
	}
	return 0;
}

int
isd_target_cfg_load_file(const char *path, struct isd_target_cfg *cfg, char *err, size_t errlen)
{
	struct load_ctx x = {.path = path, .err = err, .errlen = errlen, .cfg = cfg};
	config_t lc;
	FILE *f;
	char *dir_copy;
	int rc;

	/* opened here so that errno names a missing or unreadable file */
	f = fopen(path, "r");
	if (f == NULL) {
		rc = -errno;
		isd_target_errf(err, errlen, "%s: %s", path, strerror(errno));
		return rc;
	}
	config_init(&lc);
	dir_copy = strdup(path);
	if (dir_copy != NULL)
		config_set_include_dir(&lc, dirname(dir_copy));
	if (config_read(&lc, f) != CONFIG_TRUE) {
		isd_target_errf(err, errlen, "%s:%d: %s",
				config_error_file(&lc) ? config_error_file(&lc) : path,
				config_error_line(&lc), config_error_text(&lc));
		rc = -EINVAL;
		goto out;
	}
	rc = load_root(&x, config_root_setting(&lc), cfg);
	if (rc == -ENOMEM)
		isd_target_errf(err, errlen, "%s: out of memory", path);
	if (rc == 0)
		snprintf(cfg->config_file, sizeof(cfg->config_file), "%s", path);
out:
	config_destroy(&lc);
	free(dir_copy);
	fclose(f);
	return rc;
}
