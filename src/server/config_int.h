/* Internal to src/server: helpers shared by the flag parser, the file loader
 * and validation. Not part of the layer's interface (target.h is). */
#ifndef ISD_TARGET_CONFIG_INT_H
#define ISD_TARGET_CONFIG_INT_H

#include <stddef.h>
#include <stdint.h>

#include "server/target.h"

/* A global resource limit: one row each, shared by the loader, validation and start. */
struct isd_target_limit {
	const char *name;               /* setting in "global" */
	size_t cfg_off;                 /* int64_t in struct isd_target_cfg (-1 = unset) */
	size_t icfg_off;                /* uint32_t in struct isd_iscsi_cfg */
	int64_t max;                    /* largest accepted value; 0 always means no limit */
};
extern const struct isd_target_limit isd_target_limits[];
extern const int isd_target_limit_count;

static inline int64_t *
isd_target_limit_val(struct isd_target_cfg *cfg, const struct isd_target_limit *l)
{
	return (int64_t *)((char *)cfg + l->cfg_off);
}

static inline int64_t
isd_target_limit_get(const struct isd_target_cfg *cfg, const struct isd_target_limit *l)
{
	return *(const int64_t *)((const char *)cfg + l->cfg_off);
}

/* chap_algorithms names, strongest first (the file's spelling and the saver's). */
struct isd_target_chap_alg {
	const char *name;
	int alg;                        /* ISD_CHAP_* */
};
extern const struct isd_target_chap_alg isd_target_chap_algs[];
extern const int isd_target_chap_alg_count;
/* log_level names, indexed by enum isd_log_level. */
extern const char *const isd_target_log_level_names[4];

void isd_target_errf(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Case-insensitive, as iSCSI names compare after normalisation. NULL if absent. */
struct isd_target_node_cfg *isd_target_cfg_find_node(struct isd_target_cfg *cfg,
						     const char *name);
/* Appends; the returned pointers stay valid only until the next append. NULL on ENOMEM. */
struct isd_target_node_cfg *isd_target_cfg_add_node(struct isd_target_cfg *cfg, const char *name,
						    const char *origin);
struct isd_target_lun_cfg *isd_target_node_add_lun(struct isd_target_node_cfg *n);
struct isd_target_ini_cfg *isd_target_node_add_ini(struct isd_target_node_cfg *n);
int isd_target_node_add_acl(struct isd_target_node_cfg *n, const char *initiator);
struct isd_target_portal_spec *isd_target_cfg_add_portal(struct isd_target_cfg *cfg);
/* A portal's address: letters, digits and . : - _ % only, not empty. 0 or -EINVAL + why. */
int isd_target_host_check(const char *host, char *why, size_t whylen);
/* Appends a portal URL the node is bound to. 0 or -ENOMEM. */
int isd_target_node_add_portal(struct isd_target_node_cfg *n, const char *url);
/* The configured portal a URL names (same kind, address and port), or NULL. */
const struct isd_target_portal_spec *isd_target_cfg_find_portal(const struct isd_target_cfg *cfg,
								 const char *url);
/* Runs the backing kind's check hook: "ORIGIN: No such file or directory". 0 or -errno. */
int isd_target_lun_check_path(const struct isd_target_lun_cfg *l, char *err, size_t errlen);
/* Fills out (kind, canonical spec, path, size, read_only) from l. */
void isd_target_lun_bspec(const struct isd_target_lun_cfg *l, struct isd_bstore_spec *out);

#endif
