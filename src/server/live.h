/*
 * Changing a running target without a restart, and reading what it does.
 *
 * Every change to a running iserd goes through these calls: the control
 * socket's methods (src/ctl) call them one by one, and a reload (SIGHUP or
 * the control method) computes the difference between the running
 * configuration and a file and applies it with the same calls. A change
 * touches only what it names: sessions of other targets and LUNs never
 * notice it.
 *
 * The running target keeps the model it runs (struct isd_target_cfg) up to
 * date with every change, so that isd_target_cfg_save() writes exactly what
 * runs. Each call validates first and changes nothing when it fails; err
 * then holds one line ("target iqn...: no LUN 3").
 *
 * Everything here runs on the daemon's reactor thread.
 */
#ifndef ISD_SERVER_LIVE_H
#define ISD_SERVER_LIVE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "server/target.h"
#include "util/iostats.h"

/* The model as it runs now; valid until the next change. */
const struct isd_target_cfg *isd_target_running_cfg(const struct isd_target_running *rt);

/* ---- targets ---- */

/* Adds a target with its LUNs, ACL and credentials (nc as the loader builds it;
 * nc->portals binds it). -EEXIST, -EINVAL, or the store's error. */
int isd_live_target_add(struct isd_target_running *rt, const struct isd_target_node_cfg *nc,
			char *err, size_t errlen);
/*
 * Removes a target. With sessions logged in: -EBUSY unless force; with force
 * each session gets an Async Message asking it to log out (RFC 7143 §11.9.1,
 * AsyncEvent 1) and is closed when it has, or after the logout timeout; new
 * logins to the target are refused at once. The node, its LUNs and stores are
 * freed when the last of its sessions is gone.
 */
int isd_live_target_remove(struct isd_target_running *rt, const char *name, bool force,
			   char *err, size_t errlen);
/* Sets the target's own CHAP (one-way and mutual as in auth; require_chap false and
 * mutual false clear them). Applies to logins from now on. */
int isd_live_target_set_auth(struct isd_target_running *rt, const char *target,
			     const struct isd_auth_cfg *auth, char *err, size_t errlen);
/*
 * Binds a target to the portals named by their URLs ("tcp://127.0.0.1:3260",
 * as `iserctl portal list` shows them); n = 0 binds it to every portal (the
 * default). A login arriving on a portal the target is not bound to fails with
 * 0x0203 (not found); SendTargets lists only bound portals.
 */
int isd_live_target_bind(struct isd_target_running *rt, const char *target,
			 const char *const *portal_urls, int n, char *err, size_t errlen);

/* ---- LUNs ---- */

int isd_live_lun_add(struct isd_target_running *rt, const char *target,
		     const struct isd_target_lun_cfg *l, char *err, size_t errlen);
/* Sessions of the target get REPORTED LUNS DATA HAS CHANGED; commands in flight on
 * the LUN finish first, then its store is closed. */
int isd_live_lun_remove(struct isd_target_running *rt, const char *target, uint32_t lun,
			char *err, size_t errlen);
/* New size in bytes (a multiple of the block size); sessions get CAPACITY DATA HAS
 * CHANGED. A kind that cannot change size says why (-ENOTSUP). */
int isd_live_lun_resize(struct isd_target_running *rt, const char *target, uint32_t lun,
			uint64_t size, char *err, size_t errlen);
int isd_live_lun_set_read_only(struct isd_target_running *rt, const char *target, uint32_t lun,
			       bool read_only, char *err, size_t errlen);
/*
 * Starts taking a shared store's cluster lock over (an rbd: LUN with
 * lock=exclusive): the owner elsewhere is fenced, then the lock is this
 * gateway's. Returns at once; the LU's ALUA state follows when the lock
 * does. -ENOTSUP (no lock), -EALREADY (owned here), -EBUSY, -EPERM (this
 * gateway was fenced), -ENOENT.
 */
int isd_live_lun_takeover(struct isd_target_running *rt, const char *target, uint32_t lun,
			  char *err, size_t errlen);
/* The LU's ALUA access state on this gateway (enum isd_scsi_alua_state); every
 * nexus of the LU gets ASYMMETRIC ACCESS STATE CHANGED. Kept in the running
 * model (saved). -EINVAL when the target has no alua_group. */
int isd_live_lun_set_alua_state(struct isd_target_running *rt, const char *target, uint32_t lun,
				int state, char *err, size_t errlen);

/* ---- ACLs and per-initiator CHAP ---- */

/* Allows an initiator; ini->auth carries its own credentials if any. */
int isd_live_acl_add(struct isd_target_running *rt, const char *target,
		     const struct isd_target_ini_cfg *ini, char *err, size_t errlen);
/* Sessions of that initiator stay logged in (documented); new logins are refused. */
int isd_live_acl_remove(struct isd_target_running *rt, const char *target, const char *initiator,
			char *err, size_t errlen);
/* Sets or clears (require_chap/mutual false) one initiator's own credentials. */
int isd_live_acl_set_auth(struct isd_target_running *rt, const char *target,
			  const char *initiator, const struct isd_auth_cfg *auth, char *err,
			  size_t errlen);
/* Discovery CHAP. */
int isd_live_discovery_set_auth(struct isd_target_running *rt, const struct isd_auth_cfg *auth,
				char *err, size_t errlen);

/* ---- portals ---- */

/* URL of a portal as listed: "tcp://127.0.0.1:3260", "iser://[::1]:3260". */
void isd_target_portal_url(const struct isd_target_portal_spec *ps, char *buf, size_t len);
/* Starts listening on one more portal. */
int isd_live_portal_add(struct isd_target_running *rt, const struct isd_target_portal_spec *ps,
			char *err, size_t errlen);
/* Stops listening; connections that arrived on it stay. -EBUSY while a target is
 * bound to it and to no other portal. */
int isd_live_portal_remove(struct isd_target_running *rt, const char *url, char *err,
			   size_t errlen);
/* The URL a portal of the model (ps, as configured: port 0 asks for any) listens on,
 * with the port it got: "tcp://127.0.0.1:41033". 0, or -ENOENT when it does not run. */
int isd_live_portal_listening(struct isd_target_running *rt,
			      const struct isd_target_portal_spec *ps, char *url, size_t len);

/* ---- sessions and connections ---- */

struct isd_live_session {
	uint16_t tsih;
	bool discovery;
	char target[ISD_NAME_MAX];      /* "" for discovery */
	char initiator[ISD_NAME_MAX];
	char isid[13];                  /* 12 hex digits */
	enum isd_transport transport;
	char peer_addr[64];
	uint16_t peer_port;
	char local_addr[64];
	uint16_t local_port;
	uint16_t cid;
	uint64_t age_ms;                /* since the login completed */
	uint32_t in_flight;             /* tasks alive */
	/* negotiated keys */
	uint32_t max_recv_dsl;          /* ours (what the initiator may send us) */
	uint32_t max_xmit_dsl;          /* the initiator's (what we send) */
	uint32_t max_burst_length;
	uint32_t first_burst_length;
	bool immediate_data;
	bool initial_r2t;
	bool header_digest;
	bool data_digest;
	uint32_t queue_depth;
	struct isd_io_stats io;         /* commands of this session */
};

/* Calls fn once for each logged-in session (discovery included). Returns the count. */
int isd_live_sessions(struct isd_target_running *rt,
		      void (*fn)(void *arg, const struct isd_live_session *s), void *arg);
/* Asks one session to log out (Async Message, then closed after the logout timeout).
 * -ENOENT when no session has that TSIH. */
int isd_live_session_logout(struct isd_target_running *rt, uint16_t tsih, char *err,
			    size_t errlen);
/* Closes one connection of a session at once (the initiator may reconnect). */
int isd_live_conn_drop(struct isd_target_running *rt, uint16_t tsih, uint16_t cid, char *err,
		       size_t errlen);

/* ---- statistics ---- */

struct isd_live_lun_stats {
	uint32_t lun;
	uint64_t size;                  /* bytes */
	uint32_t block_size;
	bool read_only;
	uint16_t alua_group;            /* 0: ALUA off */
	uint8_t alua_state;             /* enum isd_scsi_alua_state */
	uint8_t lock;                   /* enum isd_bstore_lock: 0 = the store takes none */
	char spec[ISD_TARGET_SPEC_MAX]; /* backing store, canonical */
	struct isd_io_stats io;
};

/* Fills out[0..max) with the target's LUNs (ascending); returns how many it has,
 * -ENOENT when there is no such target. */
int isd_live_lun_stats(struct isd_target_running *rt, const char *target,
		       struct isd_live_lun_stats *out, int max);
/* The target's I/O: every command of its sessions, LUN or not. -ENOENT. */
int isd_live_target_stats(struct isd_target_running *rt, const char *target,
			  struct isd_io_stats *out);
/* Of those, the READs and WRITEs set up on the shared path (several reactors,
 * a quiet LU: they did not take the device's monitor). -ENOENT. */
int isd_live_target_shared_cmds(struct isd_target_running *rt, const char *target,
				uint64_t *out);

/* ---- the whole configuration ---- */

/* What a reload did, for the log line and the control reply. */
struct isd_live_diff {
	int targets_added, targets_removed, targets_changed;
	int luns_added, luns_removed, luns_changed;
	int portals_added, portals_removed;
	int portals_changed;            /* placement (`reactors`) */
	int acl_changed;                /* ACL entries and credentials */
	int globals_changed;            /* logging, discovery auth, limits */
	int unchanged_targets;
};

/*
 * Makes the running target match next (a model loaded and validated from a
 * file): removes what next lacks (targets with force), adds what is new,
 * changes what differs, through the calls above. Settings that cannot change
 * while running (user, group, datamover knobs) are refused with a clear error
 * before anything changes: -EINVAL and nothing changed. If a step fails half
 * way, what was applied stays and err says which step failed.
 */
int isd_live_apply(struct isd_target_running *rt, const struct isd_target_cfg *next,
		   struct isd_live_diff *diff, char *err, size_t errlen);

/*
 * Writes cfg as a libconfig file that isd_target_cfg_load_file() reads back to
 * the same model: written to PATH.tmp (mode 0600: it holds CHAP secrets), fsynced,
 * renamed over path. 0 or -errno + err.
 */
int isd_target_cfg_save(const struct isd_target_cfg *cfg, const char *path, char *err,
			size_t errlen);

#endif
