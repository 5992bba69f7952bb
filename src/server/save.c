/*
 * Writing a model back as a configuration file that the loader (load.c)
 * reads to the same model: every setting the loader reads that is set, and
 * nothing that is unset (-1, "", 0 where 0 means unset), so the defaults of
 * the layer that owns a setting still apply after the round trip.
 *
 * The file is built with libconfig's own API, so quoting and escaping are
 * libconfig's, and written atomically: PATH.tmp (created 0600, never through
 * an existing file or link), flushed to disk, renamed over PATH, and the
 * directory synced. CHAP secrets are written literally whatever their source
 * (a secret_file or secret_env becomes a secret): the model keeps only the
 * value. libconfig cannot write comments, so the file says none of this;
 * docs/iserd.md does.
 */
#include "server/config_int.h"
#include "server/live.h"

#include <errno.h>
#include <fcntl.h>
#include <libconfig.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "iscsi/chap.h"
#include "scsi/scsi.h"

static const char *const g_digest_names[] = {"none", "allow", "prefer"};

/* Adds one member; NULL when libconfig could not (out of memory, a bad name). */
static config_setting_t *
add(config_setting_t *parent, const char *name, int type)
{
	return config_setting_add(parent, name, type);
}

static int
add_int(config_setting_t *g, const char *name, int64_t v)
{
	config_setting_t *s;

	/* libconfig writes an int64 with an L suffix: keep plain ints plain */
	if (v >= INT32_MIN && v <= INT32_MAX) {
		s = add(g, name, CONFIG_TYPE_INT);
		return s != NULL && config_setting_set_int(s, (int)v) == CONFIG_TRUE ? 0 : -ENOMEM;
	}
	s = add(g, name, CONFIG_TYPE_INT64);
	return s != NULL && config_setting_set_int64(s, v) == CONFIG_TRUE ? 0 : -ENOMEM;
}

static int
add_bool(config_setting_t *g, const char *name, bool v)
{
	config_setting_t *s = add(g, name, CONFIG_TYPE_BOOL);

	return s != NULL && config_setting_set_bool(s, v) == CONFIG_TRUE ? 0 : -ENOMEM;
}

static int
add_string(config_setting_t *g, const char *name, const char *v)
{
	config_setting_t *s = add(g, name, CONFIG_TYPE_STRING);

	return s != NULL && config_setting_set_string(s, v) == CONFIG_TRUE ? 0 : -ENOMEM;
}

/* Milliseconds as the loader's seconds: an integer when whole, else a fraction. */
static int
add_seconds(config_setting_t *g, const char *name, int64_t ms)
{
	config_setting_t *s;

	if (ms == -1)
		return 0;
	if (ms % 1000 == 0)
		return add_int(g, name, ms / 1000);
	s = add(g, name, CONFIG_TYPE_FLOAT);
	if (s == NULL || config_setting_set_float(s, (double)ms / 1000.0) != CONFIG_TRUE)
		return -ENOMEM;
	return 0;
}

/* Appends a string to an array. */
static int
add_elem(config_setting_t *a, const char *v)
{
	return config_setting_set_string_elem(a, -1, v) != NULL ? 0 : -ENOMEM;
}

static int
add_neg(config_setting_t *g, const struct isd_target_neg_cfg *n)
{
	static const struct {
		const char *name;
		size_t off;
	} nums[] = {
	    {"max_recv_data_segment_length",
	     offsetof(struct isd_target_neg_cfg, max_recv_data_segment_length)},
	    {"max_burst_length", offsetof(struct isd_target_neg_cfg, max_burst_length)},
	    {"first_burst_length", offsetof(struct isd_target_neg_cfg, first_burst_length)},
	    {"max_outstanding_r2t", offsetof(struct isd_target_neg_cfg, max_outstanding_r2t)},
	    {"queue_depth", offsetof(struct isd_target_neg_cfg, queue_depth)},
	};
	int rc = 0;

	for (size_t i = 0; i < sizeof(nums) / sizeof(nums[0]) && rc == 0; i++) {
		int64_t v = *(const int64_t *)((const char *)n + nums[i].off);

		if (v != -1)
			rc = add_int(g, nums[i].name, v);
	}
	if (rc == 0 && n->immediate_data != -1)
		rc = add_bool(g, "immediate_data", n->immediate_data != 0);
	if (rc == 0 && n->initial_r2t != -1)
		rc = add_bool(g, "initial_r2t", n->initial_r2t != 0);
	if (rc == 0 && n->header_digest >= 0 && n->header_digest <= ISD_TARGET_DIGEST_PREFER)
		rc = add_string(g, "header_digest", g_digest_names[n->header_digest]);
	if (rc == 0 && n->data_digest >= 0 && n->data_digest <= ISD_TARGET_DIGEST_PREFER)
		rc = add_string(g, "data_digest", g_digest_names[n->data_digest]);
	return rc;
}

/* name = { user = "..."; secret = "..."; } */
static int
add_cred(config_setting_t *g, const char *name, const struct isd_chap_cred *c)
{
	config_setting_t *s = add(g, name, CONFIG_TYPE_GROUP);

	if (s == NULL || add_string(s, "user", c->user) < 0 ||
	    add_string(s, "secret", c->secret) < 0)
		return -ENOMEM;
	return 0;
}

/* chap and mutual_chap members for what auth requires. */
static int
add_auth(config_setting_t *g, const struct isd_auth_cfg *a)
{
	if (a->require_chap && add_cred(g, "chap", &a->chap) < 0)
		return -ENOMEM;
	if (a->mutual && add_cred(g, "mutual_chap", &a->mutual_chap) < 0)
		return -ENOMEM;
	return 0;
}

static int
add_global(config_setting_t *root, const struct isd_target_cfg *cfg)
{
	config_setting_t *g = add(root, "global", CONFIG_TYPE_GROUP), *s;
	int rc = g != NULL ? 0 : -ENOMEM;

	if (rc == 0 && cfg->log_level >= ISD_LOG_ERR && cfg->log_level <= ISD_LOG_DEBUG)
		rc = add_string(g, "log_level", isd_target_log_level_names[cfg->log_level]);
	if (rc == 0 && cfg->debug[0] != '\0')
		rc = add_string(g, "debug", cfg->debug);
	if (rc == 0)
		rc = add_seconds(g, "login_timeout", cfg->login_timeout_ms);
	if (rc == 0)
		rc = add_seconds(g, "nop_interval", cfg->nop_interval_ms);
	if (rc == 0)
		rc = add_seconds(g, "nop_timeout", cfg->nop_timeout_ms);
	if (rc == 0)
		rc = add_seconds(g, "logout_timeout", cfg->logout_timeout_ms);
	if (rc == 0)
		rc = add_seconds(g, "shutdown_timeout", cfg->shutdown_timeout_ms);
	if (rc == 0 && cfg->reactor_mode >= 0 && cfg->reactor_mode <= 2)
		rc = add_string(g, "reactor_mode", isd_target_reactor_mode_names[cfg->reactor_mode]);
	if (rc == 0 && cfg->reactor_poll_us != -1)
		rc = add_int(g, "reactor_poll_us", cfg->reactor_poll_us);
	if (rc == 0 && cfg->reactors == 0)
		rc = add_string(g, "reactors", "auto");
	else if (rc == 0 && cfg->reactors > 0)
		rc = add_int(g, "reactors", cfg->reactors);
	if (rc == 0 && cfg->reactor_cpus[0] != '\0')
		rc = add_string(g, "reactor_cpus", cfg->reactor_cpus);
	if (rc == 0 && cfg->polling_reactors[0] != '\0')
		rc = add_string(g, "polling_reactors", cfg->polling_reactors);
	for (int i = 0; i < isd_target_limit_count && rc == 0; i++) {
		int64_t v = isd_target_limit_get(cfg, &isd_target_limits[i]);

		if (v != -1)
			rc = add_int(g, isd_target_limits[i].name, v);
	}
	for (unsigned k = 0; k < isd_dm_kind_count && k < ISD_TARGET_DM_KINDS_MAX; k++) {
		const struct isd_dm_kind *kind = isd_dm_kinds[k];

		for (int j = 0; j < kind->knob_count && j < ISD_DM_KNOBS_MAX && rc == 0; j++) {
			int64_t v = cfg->dm_setting[k][j];

			if (v == -1)
				continue;
			rc = kind->knobs[j].is_bool ? add_bool(g, kind->knobs[j].name, v != 0)
						    : add_int(g, kind->knobs[j].name, v);
		}
	}
	if (rc == 0 && cfg->allow_short_secrets)
		rc = add_bool(g, "allow_short_chap_secrets", true);
	if (rc == 0 && cfg->chap_algs != 0) {
		s = add(g, "chap_algorithms", CONFIG_TYPE_ARRAY);
		rc = s != NULL ? 0 : -ENOMEM;
		for (int i = 0; i < isd_target_chap_alg_count && rc == 0; i++) {
			if (!(cfg->chap_algs & ISD_CHAP_ALG_BIT(isd_target_chap_algs[i].alg)))
				continue;
			rc = add_elem(s, isd_target_chap_algs[i].name);
		}
	}
	if (rc == 0 && cfg->user[0] != '\0')
		rc = add_string(g, "user", cfg->user);
	if (rc == 0 && cfg->group[0] != '\0')
		rc = add_string(g, "group", cfg->group);
	if (rc == 0 && cfg->control_socket[0] != '\0')
		rc = add_string(g, "control_socket", cfg->control_socket);
	if (rc == 0 && cfg->control_mode != -1) {
		char mode[8];

		/* octal, as people write modes (libconfig has no octal integers) */
		snprintf(mode, sizeof(mode), "0%o", (unsigned int)cfg->control_mode & 0777);
		rc = add_string(g, "control_mode", mode);
	}
	if (rc == 0 && cfg->metrics_listen[0] != '\0')
		rc = add_string(g, "metrics_listen", cfg->metrics_listen);
	if (rc == 0 && (cfg->discovery_auth.require_chap || cfg->discovery_auth.mutual)) {
		s = add(g, "discovery_auth", CONFIG_TYPE_GROUP);
		rc = s != NULL ? add_auth(s, &cfg->discovery_auth) : -ENOMEM;
	}
	if (rc == 0)
		rc = add_neg(g, &cfg->neg);
	return rc;
}

static int
add_portals(config_setting_t *root, const struct isd_target_cfg *cfg)
{
	config_setting_t *l = add(root, "portals", CONFIG_TYPE_LIST);

	if (l == NULL)
		return -ENOMEM;
	for (int i = 0; i < cfg->portal_count; i++) {
		const struct isd_target_portal_spec *ps = &cfg->portals[i];
		char url[128];
		config_setting_t *e;

		isd_target_portal_url(ps, url, sizeof(url));
		if (ps->tpgt == -1 && ps->reactors[0] == '\0') {
			e = add(l, NULL, CONFIG_TYPE_STRING);
			if (e == NULL || config_setting_set_string(e, url) != CONFIG_TRUE)
				return -ENOMEM;
			continue;
		}
		e = add(l, NULL, CONFIG_TYPE_GROUP);
		if (e == NULL || add_string(e, "url", url) < 0 ||
		    (ps->tpgt != -1 && add_int(e, "tpgt", ps->tpgt) < 0) ||
		    (ps->reactors[0] != '\0' && add_string(e, "reactors", ps->reactors) < 0))
			return -ENOMEM;
	}
	return 0;
}

static int
add_lun(config_setting_t *l, const struct isd_target_lun_cfg *lc)
{
	config_setting_t *g = add(l, NULL, CONFIG_TYPE_GROUP);
	int rc = g != NULL ? 0 : -ENOMEM;

	if (rc == 0)
		rc = add_int(g, "number", lc->number);
	if (rc == 0)
		rc = add_string(g, "backing", lc->spec);
	if (rc == 0 && lc->block_size != 0)
		rc = add_int(g, "block_size", lc->block_size);
	if (rc == 0 && lc->physical_block_size != 0)
		rc = add_int(g, "physical_block_size", lc->physical_block_size);
	if (rc == 0 && lc->read_only)
		rc = add_bool(g, "read_only", true);
	if (rc == 0 && lc->vendor[0] != '\0')
		rc = add_string(g, "vendor", lc->vendor);
	if (rc == 0 && lc->product[0] != '\0')
		rc = add_string(g, "product", lc->product);
	if (rc == 0 && lc->serial[0] != '\0')
		rc = add_string(g, "serial", lc->serial);
	if (rc == 0 && lc->naa[0] != '\0')
		rc = add_string(g, "naa", lc->naa);
	/* the state it has now (a control change included): a restart resumes it */
	if (rc == 0 && lc->alua_state_set)
		rc = add_string(g, "alua_state", isd_scsi_alua_state_name(lc->alua_state));
	return rc;
}

/*
 * acl = ( "iqn...", { initiator = "iqn..."; chap = ...; }, ... ): an
 * initiator with credentials of its own is a group, the others plain names.
 * Credentials exist only with an ACL entry (the file has no other place).
 */
static int
add_acl(config_setting_t *g, const struct isd_target_node_cfg *nc)
{
	config_setting_t *l;

	if (nc->acl_count == 0)
		return 0;
	l = add(g, "acl", CONFIG_TYPE_LIST);
	if (l == NULL)
		return -ENOMEM;
	for (int i = 0; i < nc->acl_count; i++) {
		const struct isd_target_ini_cfg *ic = NULL;
		config_setting_t *e;

		for (int j = 0; j < nc->ini_count && ic == NULL; j++)
			if (strcasecmp(nc->ini[j].name, nc->acl[i]) == 0 &&
			    (nc->ini[j].auth.require_chap || nc->ini[j].auth.mutual))
				ic = &nc->ini[j];
		if (ic == NULL) {
			e = add(l, NULL, CONFIG_TYPE_STRING);
			if (e == NULL || config_setting_set_string(e, nc->acl[i]) != CONFIG_TRUE)
				return -ENOMEM;
			continue;
		}
		e = add(l, NULL, CONFIG_TYPE_GROUP);
		if (e == NULL || add_string(e, "initiator", nc->acl[i]) < 0 ||
		    add_auth(e, &ic->auth) < 0)
			return -ENOMEM;
	}
	return 0;
}

static int
add_target(config_setting_t *l, const struct isd_target_node_cfg *nc)
{
	config_setting_t *g = add(l, NULL, CONFIG_TYPE_GROUP), *s;
	int rc = g != NULL ? 0 : -ENOMEM;

	if (rc == 0)
		rc = add_string(g, "name", nc->name);
	if (rc == 0 && nc->alias[0] != '\0')
		rc = add_string(g, "alias", nc->alias);
	if (rc == 0 && nc->tpgt != -1)
		rc = add_int(g, "tpgt", nc->tpgt);
	if (rc == 0 && nc->alua_group != 0)
		rc = add_int(g, "alua_group", nc->alua_group);
	if (rc == 0 && nc->alua_peer_state != 0)
		rc = add_string(g, "alua_peer_state", isd_scsi_alua_state_name(nc->alua_peer_state));
	if (rc == 0 && nc->alua_peer_count > 0) {
		/* "GROUP/PORT" always: it reads back the same whatever the port */
		s = add(g, "alua_peers", CONFIG_TYPE_ARRAY);
		rc = s != NULL ? 0 : -ENOMEM;
		for (int i = 0; i < nc->alua_peer_count && rc == 0; i++) {
			config_setting_t *e = add(s, NULL, CONFIG_TYPE_STRING);
			char pbuf[24];

			snprintf(pbuf, sizeof(pbuf), "%u/%u", nc->alua_peers[i].group,
				 nc->alua_peers[i].rtpi);
			if (e == NULL || config_setting_set_string(e, pbuf) != CONFIG_TRUE)
				rc = -ENOMEM;
		}
	}
	if (rc == 0) {
		s = add(g, "luns", CONFIG_TYPE_LIST);
		rc = s != NULL ? 0 : -ENOMEM;
		for (int i = 0; i < nc->lun_count && rc == 0; i++)
			rc = add_lun(s, &nc->luns[i]);
	}
	if (rc == 0)
		rc = add_acl(g, nc);
	if (rc == 0)
		rc = add_auth(g, &nc->auth);
	if (rc == 0)
		rc = add_neg(g, &nc->neg);
	if (rc == 0 && nc->portal_bind_count > 0) {
		s = add(g, "portals", CONFIG_TYPE_ARRAY);
		rc = s != NULL ? 0 : -ENOMEM;
		for (int i = 0; i < nc->portal_bind_count && rc == 0; i++)
			rc = add_elem(s, nc->portals[i]);
	}
	return rc;
}

static int
build(config_t *lc, const struct isd_target_cfg *cfg)
{
	config_setting_t *root = config_root_setting(lc), *l;
	int rc;

	rc = add_global(root, cfg);
	if (rc == 0)
		rc = add_portals(root, cfg);
	if (rc < 0)
		return rc;
	l = add(root, "targets", CONFIG_TYPE_LIST);
	if (l == NULL)
		return -ENOMEM;
	for (int i = 0; i < cfg->node_count && rc == 0; i++)
		rc = add_target(l, &cfg->nodes[i]);
	return rc;
}

/* Writes the built file to tmp (a new file, 0600) and flushes it to disk. */
static int
write_tmp(config_t *lc, const char *tmp, char *err, size_t errlen)
{
	FILE *f;
	int fd, rc = 0;

	/* a leftover from a save that died half way; never written through (O_EXCL) */
	if (unlink(tmp) < 0 && errno != ENOENT) {
		rc = -errno;
		isd_target_errf(err, errlen, "%s: %s", tmp, strerror(errno));
		return rc;
	}
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0) {
		rc = -errno;
		isd_target_errf(err, errlen, "%s: %s", tmp, strerror(errno));
		return rc;
	}
	f = fdopen(fd, "w");
	if (f == NULL) {
		rc = -errno;
		close(fd);
		goto fail;
	}
	errno = 0;
	config_write(lc, f);
	if (fflush(f) != 0 || ferror(f) || fsync(fd) < 0)
		rc = errno ? -errno : -EIO;
	if (fclose(f) != 0 && rc == 0)
		rc = -errno;
	if (rc == 0)
		return 0;
fail:
	isd_target_errf(err, errlen, "%s: %s", tmp, strerror(-rc));
	unlink(tmp);
	return rc;
}

/* The rename is durable once the directory's entry is on disk. */
static int
sync_dir(const char *path, char *err, size_t errlen)
{
	char *copy = strdup(path);
	int fd, rc = 0;

	if (copy == NULL) {
		isd_target_errf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	fd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0 || fsync(fd) < 0) {
		rc = -errno;
		isd_target_errf(err, errlen, "%s: sync: %s", copy, strerror(errno));
	}
	if (fd >= 0)
		close(fd);
	free(copy);
	return rc;
}

int
isd_target_cfg_save(const struct isd_target_cfg *cfg, const char *path, char *err, size_t errlen)
{
	char tmp[4096 + 8];
	config_t lc;
	int rc;

	if (path == NULL || path[0] == '\0' || strlen(path) >= sizeof(tmp) - 4) {
		isd_target_errf(err, errlen, "save: bad file name");
		return -EINVAL;
	}
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	config_init(&lc);
	/* "name = { ... };" as docs/iserd.conf.example writes it */
	config_set_options(&lc, CONFIG_OPTION_SEMICOLON_SEPARATORS);
	config_set_tab_width(&lc, 2);
	rc = build(&lc, cfg);
	if (rc < 0) {
		isd_target_errf(err, errlen, "%s: out of memory", path);
		goto out;
	}
	rc = write_tmp(&lc, tmp, err, errlen);
	if (rc < 0)
		goto out;
	if (rename(tmp, path) < 0) {
		rc = -errno;
		isd_target_errf(err, errlen, "%s: %s", path, strerror(errno));
		unlink(tmp);
		goto out;
	}
	rc = sync_dir(path, err, errlen);
out:
	config_destroy(&lc);
	return rc;
}
