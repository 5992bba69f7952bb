/*
 * The configuration model: construction, the small value parsers shared by
 * the flag and file front ends, and whole-model validation. Nothing here
 * opens a file or a socket, so --check and the unit tests can run it freely.
 */
#define _GNU_SOURCE /* sched_getaffinity, CPU_COUNT */
#include "server/config_int.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <sched.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bstore/bstore.h"
#include "reactor/reactor.h"
#include "scsi/scsi.h"
#include "util/str.h"

#define ISD_NAME_LEN_MAX 223 /* RFC 7143 §4.2.7.1: at most 223 bytes */
#define ISD_MAX_DSL 16777215 /* RFC 7143 §13: 2^24 - 1 */
#define ISD_MIN_DSL 512
#define ISD_QUEUE_DEPTH_MAX 4096

void
isd_target_errf(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err == NULL || errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

const struct isd_target_chap_alg isd_target_chap_algs[] = {
	{"sha3-256", ISD_CHAP_SHA3_256},
	{"sha256", ISD_CHAP_SHA256},
	{"sha1", ISD_CHAP_SHA1},
	{"md5", ISD_CHAP_MD5},
};
const int isd_target_chap_alg_count =
	(int)(sizeof(isd_target_chap_algs) / sizeof(isd_target_chap_algs[0]));

const char *const isd_target_log_level_names[4] = {"error", "warn", "info", "debug"};

#define LIMIT(n, hi)                                                                               \
	{ #n, offsetof(struct isd_target_cfg, n), offsetof(struct isd_iscsi_cfg, n), hi }
const struct isd_target_limit isd_target_limits[] = {
	LIMIT(max_connections, 1000000),
	LIMIT(max_connections_per_address, 1000000),
	LIMIT(max_login_connections, 1000000),
	LIMIT(max_sessions, 1000000),
	LIMIT(max_sessions_per_target, 1000000),
	LIMIT(max_discovery_sessions, 1000000),
	LIMIT(max_held_bytes, 1 << 30),
	LIMIT(max_held_pdus, 1000000),
	LIMIT(max_session_buffer_bytes, 1 << 30),
};
#undef LIMIT
const int isd_target_limit_count = sizeof(isd_target_limits) / sizeof(isd_target_limits[0]);

static void
neg_init(struct isd_target_neg_cfg *n)
{
	n->max_recv_data_segment_length = -1;
	n->max_burst_length = -1;
	n->first_burst_length = -1;
	n->max_outstanding_r2t = -1;
	n->queue_depth = -1;
	n->immediate_data = -1;
	n->initial_r2t = -1;
	n->header_digest = -1;
	n->data_digest = -1;
}

const char *const isd_target_reactor_mode_names[3] = {"event", "poll", "adaptive"};

int
isd_target_reactor_mode_parse(const char *s)
{
	for (int i = 0; i < 3; i++)
		if (strcmp(s, isd_target_reactor_mode_names[i]) == 0)
			return i;
	return -1;
}

_Static_assert(ISD_TARGET_REACTORS_MAX == ISD_REACTOR_MAX, "one limit for reactors");

int
isd_target_reactors_parse(const char *s)
{
	char *end = NULL;
	long v;

	if (strcmp(s, "auto") == 0)
		return 0;
	if (s[0] < '0' || s[0] > '9')
		return -1;
	errno = 0;
	v = strtol(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || v < 1 || v > ISD_TARGET_REACTORS_MAX)
		return -1;
	return (int)v;
}

unsigned
isd_target_reactor_count(const struct isd_target_cfg *cfg)
{
	cpu_set_t set;
	int n;

	if (cfg->reactors > 0)
		return (unsigned)cfg->reactors;
	if (cfg->reactors < 0)
		return 1;       /* the default, until CI has proven N (docs/performance.md) */
	CPU_ZERO(&set);
	if (sched_getaffinity(0, sizeof(set), &set) < 0)
		return 1;
	n = CPU_COUNT(&set);
	if (n < 1)
		return 1;
	return n > ISD_TARGET_REACTORS_MAX ? ISD_TARGET_REACTORS_MAX : (unsigned)n;
}

static int
list_num(const char **p, long limit, long *out)
{
	char *end = NULL;

	if (**p < '0' || **p > '9')
		return -1;
	errno = 0;
	*out = strtol(*p, &end, 10);
	if (errno != 0 || *out < 0 || *out >= limit)
		return -1;
	*p = end;
	return 0;
}

/*
 * A list of numbers "0,2-3" (each 0..limit-1, at most max once ranges are
 * expanded) into out; `noun` names them in the errors ("CPU", "reactor").
 */
static int
num_list_parse(const char *s, const char *noun, long limit, int *out, unsigned max, unsigned *n,
	       char *why, size_t whylen)
{
	const char *p = s;
	unsigned k = 0;
	char esc[ISD_LOG_ESC_MAX];

	*n = 0;
	if (s[0] == '\0') {
		isd_target_errf(why, whylen, "empty %s list", noun);
		return -EINVAL;
	}
	for (;;) {
		long lo, hi;

		if (list_num(&p, limit, &lo) < 0) {
			isd_target_errf(why, whylen,
					"%s list '%s': expected %s numbers 0..%ld or ranges "
					"like 2-3, comma-separated",
					noun, isd_log_escape_str(esc, sizeof(esc), s), noun, limit - 1);
			return -EINVAL;
		}
		hi = lo;
		if (*p == '-') {
			p++;
			if (list_num(&p, limit, &hi) < 0 || hi < lo) {
				isd_target_errf(why, whylen,
						"%s list '%s': bad range (expected LOW-HIGH, "
						"LOW <= HIGH < %ld)",
						noun, isd_log_escape_str(esc, sizeof(esc), s), limit);
				return -EINVAL;
			}
		}
		for (long c = lo; c <= hi; c++) {
			if (k >= max) {
				isd_target_errf(why, whylen, "%s list '%s': more than %u %ss", noun,
						isd_log_escape_str(esc, sizeof(esc), s), max, noun);
				return -EINVAL;
			}
			if (out != NULL)
				out[k] = (int)c;
			k++;
		}
		if (*p == '\0')
			break;
		if (*p != ',') {
			isd_target_errf(why, whylen,
					"%s list '%s': unexpected character (expected %s "
					"numbers and ranges like 0,2-3)",
					noun, isd_log_escape_str(esc, sizeof(esc), s), noun);
			return -EINVAL;
		}
		p++;
	}
	*n = k;
	return 0;
}

int
isd_target_cpu_list_parse(const char *s, int *cpus, unsigned max, unsigned *n, char *why,
			  size_t whylen)
{
	return num_list_parse(s, "CPU", CPU_SETSIZE, cpus, max, n, why, whylen);
}

int
isd_target_reactor_list_parse(const char *s, struct isd_reactor_mask *out, unsigned *highest,
			      char *why, size_t whylen)
{
	int idx[ISD_TARGET_REACTORS_MAX];
	unsigned n, hi = 0;
	int rc;

	rc = num_list_parse(s, "reactor", ISD_TARGET_REACTORS_MAX, idx, ISD_TARGET_REACTORS_MAX, &n,
			    why, whylen);
	if (rc < 0)
		return rc;
	if (out != NULL)
		memset(out, 0, sizeof(*out));
	for (unsigned i = 0; i < n; i++) {
		if (out != NULL)
			isd_reactor_mask_add(out, (unsigned)idx[i]);
		if ((unsigned)idx[i] > hi)
			hi = (unsigned)idx[i];
	}
	if (highest != NULL)
		*highest = hi;
	return 0;
}

void
isd_target_reactor_mode(const struct isd_target_cfg *cfg, int *mode, unsigned *poll_us)
{
	/*
	 * 2 = adaptive unless asked: bench/reactor_modes.sh measured it ahead of
	 * event at QD1 (about 3x) and QD32 (1.2x), at the same CPU per I/O, and
	 * it costs nothing when idle (bench/results/reactor-modes-2026-12-04.txt).
	 */
	*mode = cfg->reactor_mode >= 0 && cfg->reactor_mode <= 2 ? cfg->reactor_mode : 2;
	*poll_us = cfg->reactor_poll_us >= 0 ? (unsigned)cfg->reactor_poll_us
					     : ISD_TARGET_DEFAULT_POLL_US;
}

void
isd_target_cfg_init(struct isd_target_cfg *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->log_level = -1;
	cfg->login_timeout_ms = -1;
	cfg->nop_interval_ms = -1;
	cfg->nop_timeout_ms = -1;
	cfg->logout_timeout_ms = -1;
	for (int i = 0; i < isd_target_limit_count; i++)
		*isd_target_limit_val(cfg, &isd_target_limits[i]) = -1;
	cfg->shutdown_timeout_ms = -1;
	cfg->reactor_mode = -1;
	cfg->reactor_poll_us = -1;
	cfg->reactors = -1;
	cfg->control_mode = -1;
	for (int k = 0; k < ISD_TARGET_DM_KINDS_MAX; k++)
		for (int j = 0; j < ISD_DM_KNOBS_MAX; j++)
			cfg->dm_setting[k][j] = -1;
	neg_init(&cfg->neg);
}

int64_t *
isd_target_dm_setting(struct isd_target_cfg *cfg, const char *name, const struct isd_dm_knob **knob)
{
	for (unsigned k = 0; k < isd_dm_kind_count && k < ISD_TARGET_DM_KINDS_MAX; k++) {
		const struct isd_dm_kind *kind = isd_dm_kinds[k];

		for (int j = 0; j < kind->knob_count && j < ISD_DM_KNOBS_MAX; j++) {
			if (strcmp(kind->knobs[j].name, name) == 0) {
				if (knob != NULL)
					*knob = &kind->knobs[j];
				return &cfg->dm_setting[k][j];
			}
		}
	}
	return NULL;
}

int64_t
isd_target_dm_setting_get(const struct isd_target_cfg *cfg, const char *name)
{
	int64_t *v = isd_target_dm_setting((struct isd_target_cfg *)cfg, name, NULL);

	return v != NULL ? *v : -1;
}

static void
node_fini(struct isd_target_node_cfg *n)
{
	for (int i = 0; i < n->acl_count; i++)
		free(n->acl[i]);
	free(n->acl);
	for (int i = 0; i < n->portal_bind_count; i++)
		free(n->portals[i]);
	free(n->portals);
	free(n->luns);
	/* secrets should not linger in freed heap memory */
	explicit_bzero(&n->auth, sizeof(n->auth));
	if (n->ini != NULL)
		explicit_bzero(n->ini, (size_t)n->ini_count * sizeof(*n->ini));
	free(n->ini);
}

void
isd_target_cfg_fini(struct isd_target_cfg *cfg)
{
	for (int i = 0; i < cfg->node_count; i++)
		node_fini(&cfg->nodes[i]);
	free(cfg->nodes);
	free(cfg->portals);
	for (int i = 0; i < cfg->warning_count; i++)
		free(cfg->warnings[i]);
	free(cfg->warnings);
	explicit_bzero(&cfg->discovery_auth, sizeof(cfg->discovery_auth));
	isd_target_cfg_init(cfg);
}

/* Duplicates count strings; NULL (and nothing allocated) on ENOMEM, NULL for none. */
static int
strv_dup(char ***dst, char *const *src, int count)
{
	*dst = NULL;
	if (count <= 0)
		return 0;
	*dst = calloc((size_t)count, sizeof(char *));
	if (*dst == NULL)
		return -ENOMEM;
	for (int i = 0; i < count; i++) {
		(*dst)[i] = strdup(src[i]);
		if ((*dst)[i] == NULL) {
			while (i-- > 0)
				free((*dst)[i]);
			free(*dst);
			*dst = NULL;
			return -ENOMEM;
		}
	}
	return 0;
}

static void *
arr_dup(const void *src, int count, size_t elem)
{
	void *p;

	if (count <= 0 || src == NULL)
		return NULL;
	p = malloc((size_t)count * elem);
	if (p != NULL)
		memcpy(p, src, (size_t)count * elem);
	return p;
}

int
isd_target_node_cfg_copy(struct isd_target_node_cfg *dst, const struct isd_target_node_cfg *src)
{
	*dst = *src;
	dst->luns = arr_dup(src->luns, src->lun_count, sizeof(*src->luns));
	dst->ini = arr_dup(src->ini, src->ini_count, sizeof(*src->ini));
	dst->acl = NULL;
	dst->portals = NULL;
	if ((src->lun_count > 0 && dst->luns == NULL) || (src->ini_count > 0 && dst->ini == NULL) ||
	    strv_dup(&dst->acl, src->acl, src->acl_count) < 0 ||
	    strv_dup(&dst->portals, src->portals, src->portal_bind_count) < 0) {
		dst->acl_count = dst->acl == NULL ? 0 : dst->acl_count;
		dst->portal_bind_count = dst->portals == NULL ? 0 : dst->portal_bind_count;
		node_fini(dst);
		memset(dst, 0, sizeof(*dst));
		return -ENOMEM;
	}
	return 0;
}

void
isd_target_node_cfg_fini(struct isd_target_node_cfg *n)
{
	node_fini(n);
	memset(n, 0, sizeof(*n));
}

int
isd_target_cfg_copy(struct isd_target_cfg *dst, const struct isd_target_cfg *src)
{
	*dst = *src;
	dst->portals = arr_dup(src->portals, src->portal_count, sizeof(*src->portals));
	dst->nodes = NULL;
	dst->node_count = 0;
	dst->warnings = NULL;
	dst->warning_count = 0;
	if (src->portal_count > 0 && dst->portals == NULL)
		goto err;
	if (strv_dup(&dst->warnings, src->warnings, src->warning_count) < 0)
		goto err;
	dst->warning_count = src->warning_count;
	if (src->node_count > 0) {
		dst->nodes = calloc((size_t)src->node_count, sizeof(*dst->nodes));
		if (dst->nodes == NULL)
			goto err;
		for (int i = 0; i < src->node_count; i++) {
			if (isd_target_node_cfg_copy(&dst->nodes[i], &src->nodes[i]) < 0)
				goto err;
			dst->node_count++;
		}
	}
	return 0;
err:
	isd_target_cfg_fini(dst);
	return -ENOMEM;
}

int
isd_target_cfg_warn(struct isd_target_cfg *cfg, const char *fmt, ...)
{
	char line[1024], **slot;
	va_list ap;

	if (cfg == NULL)
		return 0;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	/* the same file named by many settings is one warning */
	for (int i = 0; i < cfg->warning_count; i++)
		if (strcmp(cfg->warnings[i], line) == 0)
			return 0;
	slot = realloc(cfg->warnings, (size_t)(cfg->warning_count + 1) * sizeof(char *));
	if (slot == NULL)
		return -ENOMEM;
	cfg->warnings = slot;
	slot[cfg->warning_count] = strdup(line);
	if (slot[cfg->warning_count] == NULL)
		return -ENOMEM;
	cfg->warning_count++;
	return 0;
}

/* Grows an array by one zeroed element; returns it or NULL. */
static void *
grow(void **arr, int *count, size_t elem)
{
	char *p = realloc(*arr, (size_t)(*count + 1) * elem);

	if (p == NULL)
		return NULL;
	*arr = p;
	memset(p + (size_t)*count * elem, 0, elem);
	return p + (size_t)(*count)++ * elem;
}

struct isd_target_node_cfg *
isd_target_cfg_find_node(struct isd_target_cfg *cfg, const char *name)
{
	for (int i = 0; i < cfg->node_count; i++)
		if (strcasecmp(cfg->nodes[i].name, name) == 0)
			return &cfg->nodes[i];
	return NULL;
}

struct isd_target_node_cfg *
isd_target_cfg_add_node(struct isd_target_cfg *cfg, const char *name, const char *origin)
{
	struct isd_target_node_cfg *n;

	n = grow((void **)&cfg->nodes, &cfg->node_count, sizeof(*n));
	if (n == NULL)
		return NULL;
	snprintf(n->name, sizeof(n->name), "%s", name);
	snprintf(n->origin, sizeof(n->origin), "%s", origin);
	n->tpgt = -1;
	neg_init(&n->neg);
	return n;
}

struct isd_target_lun_cfg *
isd_target_node_add_lun(struct isd_target_node_cfg *n)
{
	return grow((void **)&n->luns, &n->lun_count, sizeof(struct isd_target_lun_cfg));
}

int
isd_target_node_add_acl(struct isd_target_node_cfg *n, const char *initiator)
{
	char **slot;
	char *copy = strdup(initiator);

	if (copy == NULL)
		return -ENOMEM;
	slot = grow((void **)&n->acl, &n->acl_count, sizeof(char *));
	if (slot == NULL) {
		free(copy);
		return -ENOMEM;
	}
	*slot = copy;
	return 0;
}

struct isd_target_ini_cfg *
isd_target_node_add_ini(struct isd_target_node_cfg *n)
{
	return grow((void **)&n->ini, &n->ini_count, sizeof(struct isd_target_ini_cfg));
}

struct isd_target_portal_spec *
isd_target_cfg_add_portal(struct isd_target_cfg *cfg)
{
	return grow((void **)&cfg->portals, &cfg->portal_count,
		    sizeof(struct isd_target_portal_spec));
}

int
isd_target_node_add_portal(struct isd_target_node_cfg *n, const char *url)
{
	char **slot;
	char *copy = strdup(url);

	if (copy == NULL)
		return -ENOMEM;
	slot = grow((void **)&n->portals, &n->portal_bind_count, sizeof(char *));
	if (slot == NULL) {
		free(copy);
		return -ENOMEM;
	}
	*slot = copy;
	return 0;
}

const struct isd_target_portal_spec *
isd_target_cfg_find_portal(const struct isd_target_cfg *cfg, const char *url)
{
	struct isd_target_portal_spec ps;

	if (isd_target_portal_parse(url, &ps, NULL, 0) < 0)
		return NULL;
	for (int i = 0; i < cfg->portal_count; i++) {
		const struct isd_target_portal_spec *p = &cfg->portals[i];

		if (p->kind == ps.kind && p->port == ps.port && isd_addr_same(p->host, ps.host))
			return p;
	}
	return NULL;
}

/* ---- value parsers ---------------------------------------------------- */

int
isd_target_size_parse(const char *s, uint64_t *out)
{
	uint64_t v;

	/* the backing stores' own parser, so a size means the same in flags, files and specs */
	if (isd_parse_size(s, &v) < 0 || v == 0)
		return -EINVAL;
	*out = v;
	return 0;
}

#define PBS_OPT "physical_block_size="

int
isd_target_naa_parse(const char *s, char *canon, char *why, size_t whylen)
{
	size_t n = strlen(s);

	/* NAA 6h (IEEE Registered Extended) is the one format we build: 16 bytes in
	 * VPD 0x83; 16 digits give its first half, 32 the whole. */
	if (n != 16 && n != 32) {
		isd_target_errf(why, whylen, "naa needs 16 or 32 hex digits");
		return -EINVAL;
	}
	for (size_t i = 0; i < n; i++) {
		if (!isxdigit((unsigned char)s[i])) {
			isd_target_errf(why, whylen, "naa needs 16 or 32 hex digits");
			return -EINVAL;
		}
	}
	if (s[0] != '6') {
		isd_target_errf(why, whylen, "naa must start with 6 (NAA IEEE Registered Extended)");
		return -EINVAL;
	}
	for (size_t i = 0; i <= n; i++)
		canon[i] = (char)tolower((unsigned char)s[i]);
	return 0;
}

void
isd_target_naa_split(const char *canon, uint64_t *id60, uint64_t *ext, bool *ext_set)
{
	char half[17];

	memcpy(half, canon, 16);
	half[16] = '\0';
	*id60 = strtoull(half, NULL, 16) & ((1ULL << 60) - 1);
	*ext_set = strlen(canon) == 32;
	*ext = *ext_set ? strtoull(canon + 16, NULL, 16) : 0;
}

static int
u16_parse(const char *s, size_t len, uint16_t *out)
{
	uint32_t v = 0;

	if (len == 0 || len > 5)
		return -EINVAL;
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -EINVAL;
		v = v * 10 + (uint32_t)(s[i] - '0');
	}
	if (v == 0 || v > 65535)
		return -EINVAL;
	*out = (uint16_t)v;
	return 0;
}

int
isd_target_alua_peer_parse(const char *s, struct isd_target_alua_peer *out, char *why,
			   size_t whylen)
{
	const char *slash = strchr(s, '/');
	size_t glen = slash != NULL ? (size_t)(slash - s) : strlen(s);

	if (u16_parse(s, glen, &out->group) < 0 ||
	    (slash != NULL && u16_parse(slash + 1, strlen(slash + 1), &out->rtpi) < 0)) {
		isd_target_errf(why, whylen, "bad ALUA peer '%s': GROUP or GROUP/PORT, 1..65535", s);
		return -EINVAL;
	}
	if (slash == NULL)
		out->rtpi = out->group;
	return 0;
}

int
isd_target_alua_peer_state_parse(const char *s, uint8_t *out)
{
	enum isd_scsi_alua_state st;

	/* an owner elsewhere is the only optimized one, and no state is for good in transition */
	if (isd_scsi_alua_state_parse(s, &st) < 0 || st == ISD_ALUA_ACTIVE_OPTIMIZED ||
	    st == ISD_ALUA_TRANSITIONING)
		return -EINVAL;
	*out = (uint8_t)st;
	return 0;
}

int
isd_target_alua_peer_add(struct isd_target_node_cfg *n, const struct isd_target_alua_peer *p,
			 char *why, size_t whylen)
{
	if (p->group == n->alua_group) {
		isd_target_errf(why, whylen, "ALUA peer group %u is the target's own alua_group",
				p->group);
		return -EINVAL;
	}
	for (int i = 0; i < n->alua_peer_count; i++) {
		if (n->alua_peers[i].group == p->group) {
			isd_target_errf(why, whylen, "ALUA peer group %u listed twice", p->group);
			return -EINVAL;
		}
	}
	if (n->alua_peer_count >= ISD_TARGET_ALUA_MAX_PEERS) {
		isd_target_errf(why, whylen, "at most %d ALUA peer groups",
				ISD_TARGET_ALUA_MAX_PEERS);
		return -EINVAL;
	}
	n->alua_peers[n->alua_peer_count++] = *p;
	return 0;
}

/* One LU option "KEY=VALUE" (len bytes at p, KEY= matched): VALUE into buf. */
static int
opt_value(const char *p, size_t len, const char *key, char *buf, size_t cap, char *why,
	  size_t whylen)
{
	size_t vl = len - strlen(key);

	if (vl == 0 || vl >= cap) {
		isd_target_errf(why, whylen, "bad %.*s", (int)len, p);
		return -EINVAL;
	}
	memcpy(buf, p + strlen(key), vl);
	buf[vl] = '\0';
	return 0;
}

/*
 * Takes the options that belong to the LU, not to its store, out of a spec:
 * ",physical_block_size=N", ",serial=S", ",naa=HEX", ",alua=STATE". The rest
 * goes to the store's kind.
 */
static int
lun_opts_take(const char *spec, char *rest, size_t restlen, struct isd_target_lun_cfg *out,
	      char *why, size_t whylen)
{
	const char *p = spec;
	size_t n = 0;

	while (*p != '\0') {
		const char *comma = strchr(p, ',');
		size_t len = comma ? (size_t)(comma - p) : strlen(p);
		char val[40];

		if (p != spec && strncmp(p, PBS_OPT, strlen(PBS_OPT)) == 0) {
			uint64_t v;

			if (opt_value(p, len, PBS_OPT, val, 24, why, whylen) < 0)
				return -EINVAL;
			if (isd_parse_size(val, &v) < 0 || v == 0 || v > UINT32_MAX) {
				isd_target_errf(why, whylen, "bad %.*s", (int)len, p);
				return -EINVAL;
			}
			out->physical_block_size = (uint32_t)v;
		} else if (p != spec && strncmp(p, "serial=", 7) == 0) {
			if (opt_value(p, len, "serial=", val, sizeof(out->serial), why, whylen) < 0)
				return -EINVAL;
			/* VPD 0x80 is printable ASCII */
			for (const char *c = val; *c != '\0'; c++) {
				if (*c < 0x21 || *c > 0x7e) {
					isd_target_errf(why, whylen, "serial: printable ASCII only");
					return -EINVAL;
				}
			}
			memcpy(out->serial, val, strlen(val) + 1);   /* < sizeof(serial): checked */
		} else if (p != spec && strncmp(p, "naa=", 4) == 0) {
			if (opt_value(p, len, "naa=", val, sizeof(val), why, whylen) < 0 ||
			    isd_target_naa_parse(val, out->naa, why, whylen) < 0)
				return -EINVAL;
		} else if (p != spec && strncmp(p, "alua=", 5) == 0) {
			enum isd_scsi_alua_state st;

			if (opt_value(p, len, "alua=", val, sizeof(val), why, whylen) < 0 ||
			    isd_scsi_alua_state_parse(val, &st) < 0) {
				isd_target_errf(why, whylen,
						"bad %.*s (active/optimized, active/non-optimized, "
						"standby, unavailable, transitioning)",
						(int)len, p);
				return -EINVAL;
			}
			out->alua_state = (uint8_t)st;
			out->alua_state_set = true;
		} else {
			if (n + (p != spec ? 1 : 0) + len >= restlen) {
				isd_target_errf(why, whylen, "spec too long");
				return -EINVAL;
			}
			if (p != spec)
				rest[n++] = ',';
			memcpy(rest + n, p, len);
			n += len;
		}
		if (comma == NULL)
			break;
		p = comma + 1;
	}
	rest[n] = '\0';
	return 0;
}

/*
 * The backing store's kind parses the spec and rebuilds it canonically, so
 * that whatever spelling the user chose ("1g", "1024M") the store sees one form.
 */
int
isd_target_lun_spec_parse(const char *spec, struct isd_target_lun_cfg *out, char *why,
			  size_t whylen)
{
	struct isd_bstore_spec *ps = malloc(sizeof(*ps));
	char rest[ISD_TARGET_SPEC_MAX + 64];
	int rc;

	if (ps == NULL) {
		isd_target_errf(why, whylen, "out of memory");
		return -ENOMEM;
	}
	rc = lun_opts_take(spec, rest, sizeof(rest), out, why, whylen);
	if (rc == 0)
		rc = isd_bstore_spec_parse(rest, ps, why, whylen);
	if (rc == 0) {
		out->kind = ps->kind;
		snprintf(out->spec, sizeof(out->spec), "%s", ps->canon);
		snprintf(out->path, sizeof(out->path), "%s", ps->path);
		out->size = ps->size;
		/* ",ro" adds to a read_only the caller may have set; it never clears it */
		if (ps->read_only)
			out->read_only = true;
	}
	free(ps);
	return rc < 0 ? -EINVAL : 0;
}

static bool
all_hex(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!isxdigit((unsigned char)s[i]))
			return false;
	return s[n] == '\0';
}

/* RFC 7143 §4.2.7.2 (after stringprep): ASCII '-', '.', ':', a-z, 0-9. */
static bool
name_char_ok(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.' || c == ':';
}

int
isd_target_name_check(const char *name, char *why, size_t whylen)
{
	size_t len = strlen(name);
	const char *p;

	if (len == 0) {
		isd_target_errf(why, whylen, "empty iSCSI name");
		return -EINVAL;
	}
	if (len > ISD_NAME_LEN_MAX) {
		isd_target_errf(why, whylen, "iSCSI name longer than %d bytes", ISD_NAME_LEN_MAX);
		return -EINVAL;
	}
	if (strncmp(name, "eui.", 4) == 0) {
		if (!all_hex(name + 4, 16)) {
			isd_target_errf(why, whylen, "eui. names need exactly 16 hex digits");
			return -EINVAL;
		}
		return 0;
	}
	if (strncmp(name, "naa.", 4) == 0) {
		if (!all_hex(name + 4, 16) && !all_hex(name + 4, 32)) {
			isd_target_errf(why, whylen, "naa. names need 16 or 32 hex digits");
			return -EINVAL;
		}
		return 0;
	}
	if (strncmp(name, "iqn.", 4) != 0) {
		isd_target_errf(why, whylen, "iSCSI names start with iqn., eui. or naa.");
		return -EINVAL;
	}
	for (p = name; *p; p++) {
		if (!name_char_ok(*p)) {
			isd_target_errf(why, whylen,
					"character '%c' not allowed in an iSCSI name "
					"(lower-case letters, digits, '-', '.', ':')",
					isprint((unsigned char)*p) ? *p : '?');
			return -EINVAL;
		}
	}
	/* iqn.YYYY-MM.<reversed domain>[:<unique>] */
	p = name + 4;
	if (!(isdigit((unsigned char)p[0]) && isdigit((unsigned char)p[1]) &&
	      isdigit((unsigned char)p[2]) && isdigit((unsigned char)p[3]) && p[4] == '-' &&
	      isdigit((unsigned char)p[5]) && isdigit((unsigned char)p[6]) && p[7] == '.')) {
		isd_target_errf(why, whylen,
				"expected iqn.YYYY-MM.<reversed domain>[:<identifier>]");
		return -EINVAL;
	}
	if ((p[5] - '0') * 10 + (p[6] - '0') < 1 || (p[5] - '0') * 10 + (p[6] - '0') > 12) {
		isd_target_errf(why, whylen, "month in iqn.YYYY-MM must be 01..12");
		return -EINVAL;
	}
	p += 8;
	if (*p == '\0' || *p == ':' || *p == '.') {
		isd_target_errf(why, whylen, "expected a reversed domain name after iqn.YYYY-MM.");
		return -EINVAL;
	}
	return 0;
}

int
isd_target_host_check(const char *host, char *why, size_t whylen)
{
	/* an address or a host name (and an IPv6 zone): nothing a message must escape */
	for (const char *c = host; *c != '\0'; c++) {
		if (!isalnum((unsigned char)*c) && strchr(".:-_%", *c) == NULL) {
			isd_target_errf(why, whylen, "bad character in address");
			return -EINVAL;
		}
	}
	if (host[0] == '\0') {
		isd_target_errf(why, whylen, "missing address (e.g. tcp://0.0.0.0:3260)");
		return -EINVAL;
	}
	return 0;
}

int
isd_target_portal_parse(const char *url, struct isd_target_portal_spec *out, char *why,
			size_t whylen)
{
	const char *p, *host, *hend, *port = NULL;
	size_t hlen;

	memset(out, 0, sizeof(*out));
	out->tpgt = -1;
	p = strstr(url, "://");
	if (p != NULL) {
		size_t slen = (size_t)(p - url);

		for (unsigned k = 0; k < isd_dm_kind_count && out->kind == NULL; k++) {
			if (strlen(isd_dm_kinds[k]->scheme) == slen &&
			    strncmp(url, isd_dm_kinds[k]->scheme, slen) == 0)
				out->kind = isd_dm_kinds[k];
		}
		if (out->kind == NULL) {
			char list[256] = "";

			for (unsigned k = 0; k < isd_dm_kind_count; k++)
				snprintf(list + strlen(list), sizeof(list) - strlen(list),
					 "%s%s://ADDR[:PORT]",
					 k == 0 ? "" : k + 1 == isd_dm_kind_count ? " or " : ", ",
					 isd_dm_kinds[k]->scheme);
			isd_target_errf(why, whylen, "unknown transport (expected %s)", list);
			return -EINVAL;
		}
		p += 3;
	} else {
		p = url; /* a bare ADDR[:PORT] means TCP */
		for (unsigned k = 0; k < isd_dm_kind_count && out->kind == NULL; k++) {
			if (isd_dm_kinds[k]->transport == ISD_TRANSPORT_TCP)
				out->kind = isd_dm_kinds[k];
		}
		if (out->kind == NULL) {
			isd_target_errf(why, whylen, "no TCP datamover in this build: name a scheme");
			return -EINVAL;
		}
	}
	out->transport = out->kind->transport;
	if (*p == '[') {
		host = p + 1;
		hend = strchr(host, ']');
		if (hend == NULL) {
			isd_target_errf(why, whylen, "missing ']' after an IPv6 address");
			return -EINVAL;
		}
		if (hend[1] == ':')
			port = hend + 2;
		else if (hend[1] != '\0') {
			isd_target_errf(why, whylen, "expected ':PORT' after ']'");
			return -EINVAL;
		}
	} else {
		host = p;
		hend = strchr(host, ':');
		if (hend != NULL && strchr(hend + 1, ':') != NULL) {
			isd_target_errf(why, whylen,
					"IPv6 addresses go in brackets: tcp://[::1]:3260");
			return -EINVAL;
		}
		if (hend != NULL)
			port = hend + 1;
		else
			hend = host + strlen(host);
	}
	hlen = (size_t)(hend - host);
	if (hlen == 0) {
		isd_target_errf(why, whylen, "missing address (e.g. tcp://0.0.0.0:3260)");
		return -EINVAL;
	}
	if (hlen >= sizeof(out->host)) {
		isd_target_errf(why, whylen, "address too long");
		return -EINVAL;
	}
	if (memchr(host, '/', hlen) != NULL) {
		isd_target_errf(why, whylen, "unexpected '/' in address");
		return -EINVAL;
	}
	memcpy(out->host, host, hlen);
	out->host[hlen] = '\0';
	if (isd_target_host_check(out->host, why, whylen) < 0)
		return -EINVAL;
	out->port = ISD_TARGET_DEFAULT_PORT;
	if (port != NULL) {
		char *end;
		unsigned long v;

		errno = 0;
		v = strtoul(port, &end, 10);
		if (!isdigit((unsigned char)*port) || *end != '\0' || errno || v > 65535) {
			isd_target_errf(why, whylen, "bad port '%s' (0..65535)", port);
			return -EINVAL;
		}
		out->port = (uint16_t)v;
	}
	return 0;
}

int
isd_target_secret_file(struct isd_target_cfg *cfg, const char *path, char *out, size_t cap,
		       char *why, size_t whylen)
{
	char buf[ISD_CHAP_SECRET_MAX + 2];
	struct stat st;
	ssize_t n;
	size_t len = 0;
	int fd, rc;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0 || fstat(fd, &st) < 0) {
		rc = -errno;
		isd_target_errf(why, whylen, "secret file %s: %s", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return rc;
	}
	if (!S_ISREG(st.st_mode)) {
		isd_target_errf(why, whylen, "secret file %s: not a regular file", path);
		rc = -EINVAL;
		goto out;
	}
	/* a secret every local user can read is no secret: refuse it, as ssh does keys */
	if (st.st_mode & (S_IROTH | S_IWOTH)) {
		isd_target_errf(why, whylen,
				"secret file %s is accessible to others (mode %04o); chmod 600 it",
				path, (unsigned int)(st.st_mode & 07777));
		rc = -EPERM;
		goto out;
	}
	if (st.st_mode & (S_IRGRP | S_IWGRP))
		isd_target_cfg_warn(cfg, "secret file %s is accessible to its group (mode %04o)",
				    path, (unsigned int)(st.st_mode & 07777));
	/* up to two bytes more than fits (a CRLF), to see a file that is too long */
	while (len < sizeof(buf) && (n = read(fd, buf + len, sizeof(buf) - len)) > 0)
		len += (size_t)n;
	if (len > 0 && buf[len - 1] == '\n')
		len--;
	if (len > 0 && buf[len - 1] == '\r')
		len--;
	rc = -EINVAL;
	if (len >= cap || len > ISD_CHAP_SECRET_MAX - 1)
		isd_target_errf(why, whylen, "secret file %s: longer than %zu bytes", path,
				cap - 1);
	else if (len == 0)
		isd_target_errf(why, whylen, "secret file %s is empty", path);
	else if (memchr(buf, '\0', len) != NULL || memchr(buf, '\n', len) != NULL ||
		 memchr(buf, '\r', len) != NULL)
		isd_target_errf(why, whylen, "secret file %s: one line of text expected", path);
	else
		rc = 0;
	if (rc == 0) {
		memcpy(out, buf, len);
		out[len] = '\0';
	}
	explicit_bzero(buf, sizeof(buf));
out:
	close(fd);
	return rc;
}

int
isd_target_secret_env(const char *var, char *out, size_t cap, char *why, size_t whylen)
{
	const char *v = var[0] != '\0' ? getenv(var) : NULL;

	if (v == NULL || v[0] == '\0') {
		isd_target_errf(why, whylen, "environment variable '%s' is not set or empty", var);
		return -EINVAL;
	}
	if (strlen(v) >= cap) {
		isd_target_errf(why, whylen, "environment variable '%s': longer than %zu bytes",
				var, cap - 1);
		return -EINVAL;
	}
	snprintf(out, cap, "%s", v);
	return 0;
}

int
isd_target_chap_parse(struct isd_target_cfg *cfg, const char *s, struct isd_chap_cred *out,
		      char *why, size_t whylen)
{
	const char *colon = strchr(s, ':'), *sec;
	size_t ulen;
	int rc;

	if (colon == NULL) {
		isd_target_errf(why, whylen, "expected USER:SECRET, USER:@FILE or USER:env:VAR");
		return -EINVAL;
	}
	ulen = (size_t)(colon - s);
	sec = colon + 1;
	if (ulen == 0 || sec[0] == '\0') {
		isd_target_errf(why, whylen, "expected USER:SECRET with both parts non-empty");
		return -EINVAL;
	}
	if (ulen >= sizeof(out->user) || strlen(sec) >= sizeof(out->secret)) {
		isd_target_errf(why, whylen, "CHAP user or secret longer than %d bytes",
				ISD_CHAP_NAME_MAX - 1);
		return -EINVAL;
	}
	memcpy(out->user, s, ulen);
	out->user[ulen] = '\0';
	if (sec[0] == '@') {
		rc = isd_target_secret_file(cfg, sec + 1, out->secret, sizeof(out->secret), why,
					    whylen);
		return rc < 0 ? -EINVAL : 0;
	}
	if (strncmp(sec, "env:", 4) == 0)
		return isd_target_secret_env(sec + 4, out->secret, sizeof(out->secret), why,
					     whylen);
	snprintf(out->secret, sizeof(out->secret), "%s", sec);
	return 1;
}

/* ---- validation ------------------------------------------------------- */

static int
check_range(int64_t v, int64_t lo, int64_t hi, const char *what, const char *origin, char *err,
	    size_t errlen)
{
	if (v == -1 || (v >= lo && v <= hi))
		return 0;
	isd_target_errf(err, errlen, "%s: %s %lld out of range (%lld..%lld)", origin, what,
			(long long)v, (long long)lo, (long long)hi);
	return -EINVAL;
}

static int
validate_neg(const struct isd_target_neg_cfg *n, const char *origin, char *err, size_t errlen)
{
	int rc = 0;

	rc |= check_range(n->max_recv_data_segment_length, ISD_MIN_DSL, ISD_MAX_DSL,
			  "max_recv_data_segment_length", origin, err, errlen);
	if (!rc)
		rc |= check_range(n->max_burst_length, ISD_MIN_DSL, ISD_MAX_DSL, "max_burst_length",
				  origin, err, errlen);
	if (!rc)
		rc |= check_range(n->first_burst_length, ISD_MIN_DSL, ISD_MAX_DSL,
				  "first_burst_length", origin, err, errlen);
	if (!rc)
		rc |= check_range(n->max_outstanding_r2t, 1, 65535, "max_outstanding_r2t", origin,
				  err, errlen);
	if (!rc)
		rc |= check_range(n->queue_depth, 1, ISD_QUEUE_DEPTH_MAX, "queue_depth", origin,
				  err, errlen);
	if (rc)
		return -EINVAL;
	/* RFC 7143 §13.14: FirstBurstLength must not exceed MaxBurstLength */
	if (n->first_burst_length != -1 && n->max_burst_length != -1 &&
	    n->first_burst_length > n->max_burst_length) {
		isd_target_errf(err, errlen,
				"%s: first_burst_length %lld exceeds max_burst_length %lld", origin,
				(long long)n->first_burst_length, (long long)n->max_burst_length);
		return -EINVAL;
	}
	return 0;
}

static int
check_secret(const struct isd_target_cfg *cfg, const struct isd_chap_cred *c, const char *what,
	     const char *origin, char *err, size_t errlen)
{
	size_t len = strlen(c->secret);

	if (len >= ISD_TARGET_CHAP_SECRET_MIN || cfg->allow_short_secrets)
		return 0;
	isd_target_errf(err, errlen,
			"%s: %s secret of '%s' is %zu bytes; at least %d are needed (RFC 7143 "
			"§12.1.3 asks for 96 bits), or allow_short_chap_secrets",
			origin, what, c->user, len, ISD_TARGET_CHAP_SECRET_MIN);
	return -EINVAL;
}

static int
validate_auth(const struct isd_target_cfg *cfg, const struct isd_auth_cfg *a, const char *origin,
	      char *err, size_t errlen)
{
	if (a->mutual && !a->require_chap) {
		isd_target_errf(err, errlen, "%s: mutual CHAP needs CHAP as well", origin);
		return -EINVAL;
	}
	if (a->require_chap && (a->chap.user[0] == '\0' || a->chap.secret[0] == '\0')) {
		isd_target_errf(err, errlen, "%s: CHAP needs a user and a secret", origin);
		return -EINVAL;
	}
	if (a->mutual && (a->mutual_chap.user[0] == '\0' || a->mutual_chap.secret[0] == '\0')) {
		isd_target_errf(err, errlen, "%s: mutual CHAP needs a user and a secret", origin);
		return -EINVAL;
	}
	if (a->require_chap && check_secret(cfg, &a->chap, "CHAP", origin, err, errlen) < 0)
		return -EINVAL;
	if (a->mutual && check_secret(cfg, &a->mutual_chap, "mutual CHAP", origin, err, errlen) < 0)
		return -EINVAL;
	/* one secret both ways lets a peer answer our challenge with our own answer */
	if (a->require_chap && a->mutual && strcmp(a->chap.secret, a->mutual_chap.secret) == 0) {
		isd_target_errf(err, errlen,
				"%s: CHAP and mutual CHAP use the same secret (RFC 7143 §12.1.3 "
				"forbids it)",
				origin);
		return -EINVAL;
	}
	return 0;
}

/* An initiator's entry, with the target's credentials where the entry gives none. */
static int
validate_ini(const struct isd_target_cfg *cfg, const struct isd_target_node_cfg *n,
	     const struct isd_target_ini_cfg *e, char *err, size_t errlen)
{
	struct isd_auth_cfg a = n->auth;
	char why[160];
	int rc;

	if (isd_target_name_check(e->name, why, sizeof(why)) < 0) {
		isd_target_errf(err, errlen, "%s: invalid initiator name '%s' in acl: %s",
				e->origin, e->name, why);
		return -EINVAL;
	}
	for (const struct isd_target_ini_cfg *o = n->ini; o < e; o++) {
		if (strcasecmp(o->name, e->name) == 0) {
			isd_target_errf(err, errlen,
					"%s: credentials for %s given twice (first at %s)", e->origin, e->name, o->origin);
			return -EINVAL;
		}
	}
	/* what the login will use: the same overlay as the core's */
	isd_auth_overlay(&a, &e->auth);
	rc = validate_auth(cfg, &a, e->origin, err, errlen);
	explicit_bzero(&a, sizeof(a));
	return rc;
}

static int
validate_lun(const struct isd_target_node_cfg *n, const struct isd_target_lun_cfg *l, char *err,
	     size_t errlen)
{
	uint32_t bs = l->block_size ? l->block_size : 512;

	if (l->number >= ISD_SCSI_MAX_LUNS) {
		isd_target_errf(err, errlen, "%s: LUN %u out of range (0..%d)", l->origin,
				l->number, ISD_SCSI_MAX_LUNS - 1);
		return -EINVAL;
	}
	if (bs != 512 && bs != 4096) {
		isd_target_errf(err, errlen, "%s: block_size must be 512 or 4096", l->origin);
		return -EINVAL;
	}
	if (isd_scsi_phys_block_check(bs, l->physical_block_size) < 0) {
		isd_target_errf(err, errlen,
				"%s: physical_block_size %u is not a power-of-two multiple of "
				"block_size %u up to %u",
				l->origin, l->physical_block_size, bs, ISD_SCSI_MAX_PHYS_BLOCK);
		return -EINVAL;
	}
	if (l->size != 0 && l->size % bs != 0) {
		isd_target_errf(err, errlen, "%s: size %llu is not a multiple of block_size %u",
				l->origin, (unsigned long long)l->size, bs);
		return -EINVAL;
	}
	for (const struct isd_target_lun_cfg *o = n->luns; o < l; o++) {
		if (o->number == l->number) {
			isd_target_errf(err, errlen,
					"%s: duplicate LUN %u in target %s (first at %s)",
					l->origin, l->number, n->name, o->origin);
			return -EINVAL;
		}
	}
	return 0;
}

static int
validate_node(const struct isd_target_cfg *cfg, const struct isd_target_node_cfg *n, char *err,
	      size_t errlen)
{
	char why[160];
	int rc;

	if (isd_target_name_check(n->name, why, sizeof(why)) < 0) {
		isd_target_errf(err, errlen, "%s: invalid target name '%s': %s", n->origin, n->name,
				why);
		return -EINVAL;
	}
	for (const struct isd_target_node_cfg *o = cfg->nodes; o < n; o++) {
		if (strcasecmp(o->name, n->name) == 0) {
			isd_target_errf(err, errlen, "%s: duplicate target %s (first at %s)",
					n->origin, n->name, o->origin);
			return -EINVAL;
		}
	}
	if (n->tpgt != -1 && (n->tpgt < 1 || n->tpgt > 65535)) {
		isd_target_errf(err, errlen, "%s: tpgt %d out of range (1..65535)", n->origin,
				n->tpgt);
		return -EINVAL;
	}
	/* peers of a target without a group would describe groups nobody reports */
	if ((n->alua_peer_count > 0 || n->alua_peer_state != 0) && n->alua_group == 0) {
		isd_target_errf(err, errlen, "%s: ALUA peer groups need an alua_group", n->origin);
		return -EINVAL;
	}
	for (int i = 0; i < n->alua_peer_count; i++) {
		for (int j = 0; j < i; j++) {
			if (n->alua_peers[j].group == n->alua_peers[i].group) {
				isd_target_errf(err, errlen, "%s: ALUA peer group %u listed twice",
						n->origin, n->alua_peers[i].group);
				return -EINVAL;
			}
		}
		if (n->alua_peers[i].group == 0 || n->alua_peers[i].group == n->alua_group) {
			isd_target_errf(err, errlen,
					"%s: ALUA peer group %u is not another gateway's group",
					n->origin, n->alua_peers[i].group);
			return -EINVAL;
		}
	}
	if (n->lun_count == 0) {
		isd_target_errf(err, errlen, "%s: target %s has no LUNs", n->origin, n->name);
		return -EINVAL;
	}
	for (int i = 0; i < n->lun_count; i++) {
		rc = validate_lun(n, &n->luns[i], err, errlen);
		if (rc < 0)
			return rc;
	}
	for (int i = 0; i < n->acl_count; i++) {
		if (isd_target_name_check(n->acl[i], why, sizeof(why)) < 0) {
			isd_target_errf(err, errlen, "%s: invalid initiator name '%s' in acl: %s",
					n->origin, n->acl[i], why);
			return -EINVAL;
		}
	}
	for (int i = 0; i < n->portal_bind_count; i++) {
		const struct isd_target_portal_spec *p = isd_target_cfg_find_portal(cfg, n->portals[i]);

		if (p == NULL) {
			isd_target_errf(err, errlen, "%s: target %s: portal %s is not configured",
					n->origin, n->name, n->portals[i]);
			return -EINVAL;
		}
		for (int j = 0; j < i; j++) {
			if (isd_target_cfg_find_portal(cfg, n->portals[j]) == p) {
				isd_target_errf(err, errlen, "%s: target %s: portal %s named twice",
						n->origin, n->name, n->portals[i]);
				return -EINVAL;
			}
		}
	}
	rc = validate_auth(cfg, &n->auth, n->origin, err, errlen);
	if (rc < 0)
		return rc;
	for (int i = 0; i < n->ini_count; i++) {
		rc = validate_ini(cfg, n, &n->ini[i], err, errlen);
		if (rc < 0)
			return rc;
	}
	return validate_neg(&n->neg, n->origin, err, errlen);
}

int
isd_target_cfg_validate(const struct isd_target_cfg *cfg, char *err, size_t errlen)
{
	const char *where = cfg->config_file[0] ? cfg->config_file : "configuration";
	int rc;

	for (int i = 0; i < cfg->portal_count; i++) {
		const struct isd_target_portal_spec *p = &cfg->portals[i];

		if (p->tpgt != -1 && (p->tpgt < 1 || p->tpgt > 65535)) {
			isd_target_errf(err, errlen, "%s: tpgt %d out of range (1..65535)",
					p->origin, p->tpgt);
			return -EINVAL;
		}
		if (p->reactors[0] != '\0') {
			char why[200];
			unsigned hi, n = isd_target_reactor_count(cfg);

			if (isd_target_reactor_list_parse(p->reactors, NULL, &hi, why, sizeof(why)) <
			    0) {
				isd_target_errf(err, errlen, "%s: reactors: %s", p->origin, why);
				return -EINVAL;
			}
			if (hi >= n) {
				isd_target_errf(err, errlen,
						"%s: reactors: reactor %u does not run (%u reactor%s, "
						"numbered from 0)",
						p->origin, hi, n, n == 1 ? "" : "s");
				return -EINVAL;
			}
		}
		for (int j = 0; j < i; j++) {
			const struct isd_target_portal_spec *o = &cfg->portals[j];

			/*
			 * tcp:// and iser:// may share ADDR:PORT (InfiniBand and RoCE keep
			 * their own port space); on iWARP the iSER listen then fails
			 * with a message that says so.
			 */
			if (p->port != 0 && o->port == p->port && o->transport == p->transport &&
			    strcmp(o->host, p->host) == 0) {
				isd_target_errf(err, errlen,
						"%s: duplicate portal %s:%u (first at %s)",
						p->origin, p->host, p->port, o->origin);
				return -EINVAL;
			}
		}
	}
	rc = check_range(cfg->login_timeout_ms, 1, 3600000, "login_timeout (ms)", where, err,
			 errlen);
	rc |= rc ? 0
		 : check_range(cfg->nop_interval_ms, 0, 3600000, "nop_interval (ms)", where, err,
			       errlen);
	rc |= rc ? 0
		 : check_range(cfg->nop_timeout_ms, 1, 3600000, "nop_timeout (ms)", where, err,
			       errlen);
	for (int i = 0; i < isd_target_limit_count && rc == 0; i++) {
		const struct isd_target_limit *l = &isd_target_limits[i];

		rc = check_range(isd_target_limit_get(cfg, l), 0, l->max, l->name, where, err,
				 errlen);
	}
	rc |= rc ? 0
		 : check_range(cfg->shutdown_timeout_ms, 0, 600000, "shutdown_timeout (ms)", where,
			       err, errlen);
	rc |= rc ? 0
		 : check_range(cfg->reactor_poll_us, 0, 100000, "reactor_poll_us", where, err,
			       errlen);
	rc |= rc ? 0 : check_range(cfg->control_mode, 0, 0777, "control_mode", where, err, errlen);
	if (rc == 0 && (cfg->reactors < -1 || cfg->reactors > ISD_TARGET_REACTORS_MAX)) {
		isd_target_errf(err, errlen, "%s: reactors must be 1..%d or \"auto\"", where,
				ISD_TARGET_REACTORS_MAX);
		rc = -EINVAL;
	}
	if (rc == 0 && cfg->reactor_cpus[0] != '\0') {
		char why[256];
		unsigned n;

		if (isd_target_cpu_list_parse(cfg->reactor_cpus, NULL, ISD_TARGET_CPUS_MAX, &n, why,
					      sizeof(why)) < 0) {
			isd_target_errf(err, errlen, "%s: reactor_cpus: %s", where, why);
			rc = -EINVAL;
		}
	}
	if (rc == 0 && cfg->polling_reactors[0] != '\0') {
		char why[256];
		unsigned hi, n = isd_target_reactor_count(cfg);

		if (isd_target_reactor_list_parse(cfg->polling_reactors, NULL, &hi, why,
						  sizeof(why)) < 0) {
			isd_target_errf(err, errlen, "%s: polling_reactors: %s", where, why);
			rc = -EINVAL;
		} else if (hi >= n) {
			isd_target_errf(err, errlen,
					"%s: polling_reactors: reactor %u does not run (%u reactor%s, "
					"numbered from 0)",
					where, hi, n, n == 1 ? "" : "s");
			rc = -EINVAL;
		}
	}
	for (unsigned k = 0; k < isd_dm_kind_count && rc == 0; k++) {
		const struct isd_dm_kind *kind = isd_dm_kinds[k];

		for (int j = 0; j < kind->knob_count && rc == 0; j++)
			rc = check_range(cfg->dm_setting[k][j], kind->knobs[j].min,
					 kind->knobs[j].max, kind->knobs[j].name, where, err, errlen);
	}
	if (rc)
		return -EINVAL;
	rc = validate_auth(cfg, &cfg->discovery_auth, where, err, errlen);
	if (rc < 0)
		return rc;
	rc = validate_neg(&cfg->neg, where, err, errlen);
	if (rc < 0)
		return rc;
	for (int i = 0; i < cfg->node_count; i++) {
		rc = validate_node(cfg, &cfg->nodes[i], err, errlen);
		if (rc < 0)
			return rc;
	}
	/* last, so that a mistake with a line number is reported first */
	if (cfg->portal_count == 0) {
		isd_target_errf(err, errlen, "%s: no portals to listen on", where);
		return -EINVAL;
	}
	if (cfg->node_count == 0) {
		isd_target_errf(err, errlen, "%s: no targets", where);
		return -EINVAL;
	}
	return 0;
}

/* The lun as its kind's hooks take it. */
void
isd_target_lun_bspec(const struct isd_target_lun_cfg *l, struct isd_bstore_spec *out)
{
	memset(out, 0, sizeof(*out));
	out->kind = l->kind;
	snprintf(out->canon, sizeof(out->canon), "%s", l->spec);
	snprintf(out->path, sizeof(out->path), "%s", l->path);
	out->size = l->size;
	out->read_only = l->read_only;
}

int
isd_target_lun_check_path(const struct isd_target_lun_cfg *l, char *err, size_t errlen)
{
	struct isd_bstore_spec *ps;
	char why[256] = "";
	int rc;

	if (l->kind->check == NULL)
		return 0;
	ps = malloc(sizeof(*ps));
	if (ps == NULL) {
		isd_target_errf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	isd_target_lun_bspec(l, ps);
	rc = l->kind->check(ps, why, sizeof(why));
	free(ps);
	if (rc < 0)
		isd_target_errf(err, errlen, "%s: %s", l->origin, why[0] ? why : strerror(-rc));
	return rc;
}

int
isd_target_cfg_check_backing(const struct isd_target_cfg *cfg, char *err, size_t errlen)
{
	/* the switch after start would fail on these: say so now */
	if (cfg->user[0] != '\0' && getpwnam(cfg->user) == NULL) {
		isd_target_errf(err, errlen, "user '%s': no such user", cfg->user);
		return -ENOENT;
	}
	if (cfg->group[0] != '\0' && getgrnam(cfg->group) == NULL) {
		isd_target_errf(err, errlen, "group '%s': no such group", cfg->group);
		return -ENOENT;
	}
	for (int i = 0; i < cfg->node_count; i++) {
		for (int j = 0; j < cfg->nodes[i].lun_count; j++) {
			int rc = isd_target_lun_check_path(&cfg->nodes[i].luns[j], err, errlen);

			if (rc < 0)
				return rc;
		}
	}
	return 0;
}
