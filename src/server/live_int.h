/*
 * Internal to src/server: the live changes of live.h with the model check as
 * a flag. isd_live_apply() validated the whole next model already and passes
 * check = false, so that its steps may go through models that would not load
 * on their own (a target whose only LUN is being replaced).
 */
#ifndef ISD_SERVER_LIVE_INT_H
#define ISD_SERVER_LIVE_INT_H

#include "server/live.h"
#include "server/running_int.h"

int isd_live_target_add_int(struct isd_target_running *rt, const struct isd_target_node_cfg *nc,
			    bool check, char *err, size_t errlen);
int isd_live_target_remove_int(struct isd_target_running *rt, const char *name, bool force,
			       bool check, char *err, size_t errlen);
int isd_live_target_set_auth_int(struct isd_target_running *rt, const char *target,
				 const struct isd_auth_cfg *auth, bool check, char *err,
				 size_t errlen);
int isd_live_lun_add_int(struct isd_target_running *rt, const char *target,
			 const struct isd_target_lun_cfg *l, bool check, char *err, size_t errlen);
int isd_live_lun_remove_int(struct isd_target_running *rt, const char *target, uint32_t lun,
			    bool check, char *err, size_t errlen);
int isd_live_lun_resize_int(struct isd_target_running *rt, const char *target, uint32_t lun,
			    uint64_t size, bool check, char *err, size_t errlen);
int isd_live_lun_set_read_only_int(struct isd_target_running *rt, const char *target,
				   uint32_t lun, bool read_only, bool check, char *err,
				   size_t errlen);
int isd_live_lun_set_alua_state_int(struct isd_target_running *rt, const char *target,
				    uint32_t lun, int state, bool check, char *err, size_t errlen);
int isd_live_acl_add_int(struct isd_target_running *rt, const char *target,
			 const struct isd_target_ini_cfg *ini, bool check, char *err,
			 size_t errlen);
int isd_live_acl_remove_int(struct isd_target_running *rt, const char *target,
			    const char *initiator, bool check, char *err, size_t errlen);
int isd_live_acl_set_auth_int(struct isd_target_running *rt, const char *target,
			      const char *initiator, const struct isd_auth_cfg *auth, bool check,
			      char *err, size_t errlen);
/* Can LUN lun of n be made writable without opening its store again? */
bool isd_live_lun_can_write(struct isd_target_running *rt, struct isd_target_node *n,
			    uint32_t lun);

#endif
