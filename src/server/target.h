/*
 * The target layer: the configuration model of a running iserd (portals,
 * target nodes, LUNs, ACLs, CHAP, negotiation limits), the two ways to fill
 * it (command-line flags and a libconfig file), and the code that turns a
 * validated model into live objects of the layers below (backing stores,
 * SCSI devices, iSCSI target nodes, TCP portals).
 *
 * The model holds only what the user asked for. A setting the user did not
 * give stays "unset" (-1) so that the defaults of the layer that owns it
 * (isd_iscsi_cfg_init, isd_key_policy_init) apply, and are not copied here
 * where they would drift.
 *
 * Errors from every function here are one line in `err` without a program
 * name prefix, e.g. "--lun ram:12Q: bad size '12Q'" or
 * "/etc/iserd.conf:12: unknown setting 'lunz' in target". The daemon prints
 * them as "iserd: <err>".
 */
#ifndef ISD_TARGET_H
#define ISD_TARGET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bstore/bstore.h"
#include "dm/dm_kind.h"
#include "iscsi/iscsi.h"
#include "util/log.h"

struct isd_reactor;
struct isd_reactor_group;
struct isd_reactor_mask;
struct isd_target_running;

#define ISD_VERSION "0.1.0"            /* keep in step with project() in CMakeLists.txt */
#define ISD_TARGET_DEFAULT_NAME "iqn.2026-11.org.iserd:target0"
#define ISD_TARGET_DEFAULT_PORTAL "tcp://127.0.0.1:3260"
#define ISD_TARGET_DEFAULT_LUN "ram:1G"
#define ISD_TARGET_DEFAULT_PORT 3260
#define ISD_TARGET_DEFAULT_CONTROL_SOCKET "/run/iserd/iserd.sock"
#define ISD_TARGET_SPEC_MAX ISD_BSTORE_SPEC_MAX   /* a backing spec */
#define ISD_TARGET_ORIGIN_MAX 4300      /* where a setting came from, for messages */
#define ISD_TARGET_DM_KINDS_MAX 8       /* registered datamovers (ISD_DM_KINDS) */

/* Exit codes of the daemon (documented in iserd(8)). */
#define ISD_EXIT_OK 0
#define ISD_EXIT_RUNTIME 1              /* could not open, listen, allocate... */
#define ISD_EXIT_USAGE 2                /* bad flag or bad configuration */

/* Negotiation limits of one target node. -1 = not set (the core's default). */
struct isd_target_neg_cfg {
	int64_t max_recv_data_segment_length;
	int64_t max_burst_length;
	int64_t first_burst_length;
	int64_t max_outstanding_r2t;
	int64_t queue_depth;
	int immediate_data;             /* -1, 0, 1 */
	int initial_r2t;
	int header_digest;              /* -1, or ISD_TARGET_DIGEST_* */
	int data_digest;
};

enum isd_target_digest {
	ISD_TARGET_DIGEST_NONE = 0,     /* only None is accepted */
	ISD_TARGET_DIGEST_ALLOW,        /* CRC32C if the initiator asks for it first */
	ISD_TARGET_DIGEST_PREFER,       /* CRC32C whenever the initiator lists it */
};

struct isd_target_lun_cfg {
	uint32_t number;
	char spec[ISD_TARGET_SPEC_MAX]; /* canonical, as the kind rebuilt it: "ram:1G" (without
					 * ",ro": read_only travels separately) */
	const struct isd_bstore_kind *kind;     /* from the backing store registry */
	char path[ISD_BSTORE_PATH_MAX]; /* file or device path ("" for kinds without one) */
	uint64_t size;                  /* bytes; 0 = the file's or device's own size */
	uint32_t block_size;            /* 0 = 512 */
	uint32_t physical_block_size;   /* 0 = block_size (see isd_scsi_phys_block_check) */
	bool read_only;
	char vendor[9];                 /* "" = "ISERD" */
	char product[17];               /* "" = the kind's ("RAMDISK", "FILEDISK"...) */
	char serial[33];                /* "" = derived from the target name and LUN */
	/* NAA designator (VPD 0x83): "" = derived from the target name and LUN; else
	 * 16 hex digits (NAA 6h + 60 bits, the LUN as extension) or 32 (the
	 * extension too), lower case. Gateways of one multipath LU give the same. */
	char naa[33];
	/* ALUA access state of this gateway's group (enum isd_scsi_alua_state); unset =
	 * active/optimized. Only reported when the target has an alua_group. */
	bool alua_state_set;
	uint8_t alua_state;
	char origin[ISD_TARGET_ORIGIN_MAX];     /* "--lun ram:1G" or "FILE:LINE" */
};

#define ISD_TARGET_ALUA_MAX_PEERS 16    /* = ISD_SCSI_ALUA_MAX_PEERS */

/* Another gateway's target port group, as REPORT TARGET PORT GROUPS lists it. */
struct isd_target_alua_peer {
	uint16_t group;                 /* 1..65535 */
	uint16_t rtpi;                  /* its relative target port id (its tpgt); 0 = none */
};

/* Credentials of one initiator (an acl group entry in the config file). */
struct isd_target_ini_cfg {
	char name[ISD_NAME_MAX];
	struct isd_auth_cfg auth;       /* require_chap / mutual set for what the entry gives */
	char origin[ISD_TARGET_ORIGIN_MAX];
};

/* CHAP secrets shorter than this are refused unless allow_short_chap_secrets is set:
 * RFC 7143 §12.1.3 asks for 96 bits of randomness. */
#define ISD_TARGET_CHAP_SECRET_MIN 12

struct isd_target_node_cfg {
	char name[ISD_NAME_MAX];
	char alias[ISD_ALIAS_MAX];
	int tpgt;                       /* -1 = 1 */
	struct isd_target_lun_cfg *luns;
	int lun_count;
	char **acl;                     /* allowed InitiatorNames; none = everyone */
	int acl_count;
	struct isd_auth_cfg auth;       /* require_chap / mutual set when given */
	struct isd_target_ini_cfg *ini; /* per-initiator credentials, looked up before auth */
	int ini_count;
	struct isd_target_neg_cfg neg;
	char **portals;                 /* URLs of the portals it is bound to; none = every portal */
	int portal_bind_count;
	/* ALUA: this gateway's target port group for the target (0 = ALUA off) and
	 * the other gateways' groups */
	uint16_t alua_group;
	/* what the peers are reported as while this gateway's LU is active/optimized:
	 * the state non-owners are put in (enum isd_scsi_alua_state; 0 = unset,
	 * active/non-optimized) */
	uint8_t alua_peer_state;
	int alua_peer_count;
	struct isd_target_alua_peer alua_peers[ISD_TARGET_ALUA_MAX_PEERS];
	bool from_flags;                /* created by --target (gets the default LUN) */
	char origin[ISD_TARGET_ORIGIN_MAX];
};

struct isd_target_portal_spec {
	const struct isd_dm_kind *kind; /* the datamover its URL scheme names */
	enum isd_transport transport;   /* kind->transport */
	char host[64];                  /* without brackets */
	uint16_t port;
	int tpgt;                       /* -1 = 1 */
	char reactors[256];             /* placement: a reactor list, "" = every reactor */
	char origin[ISD_TARGET_ORIGIN_MAX];
};

struct isd_target_cfg {
	/* logging */
	int log_level;                  /* -1 = unset, else enum isd_log_level */
	char debug[256];                /* components for isd_log_enable(), "" = none */
	/* daemon behaviour */
	bool check_only;                /* --check */
	bool show_help;                 /* --help */
	bool show_version;              /* --version */
	char config_file[4096];         /* -c, "" = none */
	/* global iSCSI settings; -1 = unset */
	int64_t login_timeout_ms;
	int64_t nop_interval_ms;
	int64_t nop_timeout_ms;
	int64_t logout_timeout_ms;
	/* resource limits (isd_target_limits[]); -1 = unset (the core's default), 0 = none */
	int64_t max_connections;
	int64_t max_connections_per_address;
	int64_t max_login_connections;
	int64_t max_sessions;
	int64_t max_sessions_per_target;
	int64_t max_discovery_sessions;
	int64_t max_held_bytes;
	int64_t max_held_pdus;
	int64_t max_session_buffer_bytes;
	int64_t shutdown_timeout_ms;    /* how long a stop waits for sessions (default 5000) */
	/* how the reactor waits when idle: enum isd_reactor_mode, -1 = unset (event) */
	int reactor_mode;
	int64_t reactor_poll_us;        /* adaptive: busy poll this long after work; -1 = 50 */
	/* reactor threads: -1 = unset (1), 0 = "auto" (one per CPU of the affinity mask),
	 * else 1..ISD_TARGET_REACTORS_MAX; only read at start (a reload refuses changes) */
	int reactors;
	/* "0,2-3": reactor i pinned to the i-th listed CPU (modulo the count); "" = unpinned */
	char reactor_cpus[256];
	char polling_reactors[256];     /* reactors that poll whatever reactor_mode says; "" none */
	/* the datamovers' own settings (their knobs, dm_kind.h): [kind][knob], -1 = unset */
	int64_t dm_setting[ISD_TARGET_DM_KINDS_MAX][ISD_DM_KNOBS_MAX];
	struct isd_auth_cfg discovery_auth;
	bool allow_short_secrets;       /* allow_short_chap_secrets / --allow-short-secrets */
	uint32_t chap_algs;             /* chap_algorithms as ISD_CHAP_ALG_BIT mask; 0 = all */
	char control_socket[108];       /* Unix socket of the control interface ("" = the default
					 * ISD_TARGET_DEFAULT_CONTROL_SOCKET; "none" = off) */
	int control_mode;               /* its permission bits; -1 = 0600 */
	char metrics_listen[128];       /* "ADDR:PORT" of the Prometheus HTTP listener ("" = off) */
	char user[64];                  /* drop to this user after start ("" = stay) */
	char group[64];                 /* and this group ("" = the user's primary group) */
	struct isd_target_neg_cfg neg;  /* defaults for every target (config "global") */
	/* what is served */
	struct isd_target_portal_spec *portals;
	int portal_count;
	struct isd_target_node_cfg *nodes;
	int node_count;
	/* what is accepted but unwise (a secret file others may read...): one line each,
	 * printed by --check and logged at start */
	char **warnings;
	int warning_count;
};

void isd_target_cfg_init(struct isd_target_cfg *cfg);
/* "event", "poll", "adaptive" (enum isd_reactor_mode order) */
extern const char *const isd_target_reactor_mode_names[3];
#define ISD_TARGET_DEFAULT_POLL_US 50
/* The mode and poll time a configuration asks for, defaults filled in. */
void isd_target_reactor_mode(const struct isd_target_cfg *cfg, int *mode, unsigned *poll_us);
/* "adaptive" -> 2; -1 for anything else */
int isd_target_reactor_mode_parse(const char *s);
#define ISD_TARGET_REACTORS_MAX 256     /* = ISD_REACTOR_MAX */
#define ISD_TARGET_CPUS_MAX 1024        /* CPUs a reactor_cpus list may name */
/* "auto" -> 0, "1".."256" -> n; -1 for anything else */
int isd_target_reactors_parse(const char *s);
/*
 * The number of reactors a configuration asks for: 1 when unset; for "auto"
 * the CPUs in the process's affinity mask (sched_getaffinity), at most
 * ISD_TARGET_REACTORS_MAX.
 */
unsigned isd_target_reactor_count(const struct isd_target_cfg *cfg);
/*
 * A CPU list "0,2-3" (numbers and ranges, comma-separated, each CPU
 * 0..CPU_SETSIZE-1, at most max entries once ranges are expanded) into cpus.
 * *n gets the count. 0, or -EINVAL with one line in why.
 */
int isd_target_cpu_list_parse(const char *s, int *cpus, unsigned max, unsigned *n, char *why,
			      size_t whylen);
/*
 * A reactor list "1,3-4" (as a CPU list, each 0..ISD_TARGET_REACTORS_MAX-1)
 * into a mask; *highest gets the highest named. 0, or -EINVAL with one line
 * in why.
 */
int isd_target_reactor_list_parse(const char *s, struct isd_reactor_mask *out, unsigned *highest,
				  char *why, size_t whylen);
/*
 * Where a datamover setting by that name (a key of the global section) is
 * kept, and its knob; NULL when no registered datamover has one.
 */
int64_t *isd_target_dm_setting(struct isd_target_cfg *cfg, const char *name,
			       const struct isd_dm_knob **knob);
/* Its value as set, or -1 (unset or unknown). */
int64_t isd_target_dm_setting_get(const struct isd_target_cfg *cfg, const char *name);
void isd_target_cfg_fini(struct isd_target_cfg *cfg);
/* Deep copies (secrets included; fini zeroes them). 0, or -ENOMEM with dst empty. */
int isd_target_cfg_copy(struct isd_target_cfg *dst, const struct isd_target_cfg *src);
int isd_target_node_cfg_copy(struct isd_target_node_cfg *dst,
			     const struct isd_target_node_cfg *src);
void isd_target_node_cfg_fini(struct isd_target_node_cfg *n);

/*
 * Parses the daemon's command line (argv[0] is skipped). If it names a config
 * file (-c), the file is loaded first and the other flags then add to it:
 * portals are appended, --target creates a target or selects the configured
 * one of that name, and LUN/ACL/CHAP flags attach to the last --target (to
 * the default target before any). Afterwards the defaults are filled in: the
 * default portal when none was named, the default target when there is none,
 * ram:1G for a target created by flags without a LUN. --help and --version
 * only set their flag and stop parsing.
 * Returns 0, or -EINVAL with one line in err.
 */
int isd_target_cfg_parse_args(int argc, char **argv, struct isd_target_cfg *cfg, char *err,
			      size_t errlen);
/* Loads a libconfig file into cfg (adding to what is there). -EINVAL/-ENOENT + err. */
int isd_target_cfg_load_file(const char *path, struct isd_target_cfg *cfg, char *err,
			     size_t errlen);
/* Checks the whole model (names, unique LUNs/targets/portals, limits). 0 or -EINVAL + err. */
int isd_target_cfg_validate(const struct isd_target_cfg *cfg, char *err, size_t errlen);
/* For --check: runs every backing's check hook (file/dev: stat() without opening), and
 * looks up user and group. 0 or -errno + err. */
int isd_target_cfg_check_backing(const struct isd_target_cfg *cfg, char *err, size_t errlen);

/* Full usage text for --help (also in iserd(8)). */
const char *isd_target_usage(void);

/* Small parsers, exposed for tests. All return 0 or -EINVAL. */
/* RFC 7143 §4.2.7: iqn.YYYY-MM.reversed.domain[:anything], eui.<16 hex>, naa.<16|32 hex>. */
int isd_target_name_check(const char *name, char *why, size_t whylen);
/* "tcp://ADDR[:PORT]", "tcp://[V6]:PORT"; "iser://" is refused (-ENOTSUP). */
int isd_target_portal_parse(const char *url, struct isd_target_portal_spec *out, char *why,
			    size_t whylen);
/* Any registered backing spec ("ram:SIZE", "file:PATH[,size=SIZE][,ro]"...) into
 * kind/path/size/read_only/spec (spec rebuilt canonically, without ",ro"), by the
 * kind's own parser. Paths cannot contain ','. */
int isd_target_lun_spec_parse(const char *spec, struct isd_target_lun_cfg *out, char *why,
			      size_t whylen);
/* A NAA designator as the config takes it (see isd_target_lun_cfg.naa): 16 or 32
 * hex digits, the first 6; canon gets it lower case (33 bytes). */
int isd_target_naa_parse(const char *s, char *canon, char *why, size_t whylen);
/* The parts of a canonical NAA string: the 60 bits after the NAA nibble, and the
 * extension when it has one (ext_set). */
void isd_target_naa_split(const char *canon, uint64_t *id60, uint64_t *ext, bool *ext_set);
/* An ALUA peer group: "GROUP" (its port id taken to be GROUP too: the gateways
 * use tpgt = alua_group) or "GROUP/PORT". 1..65535 each. */
int isd_target_alua_peer_parse(const char *s, struct isd_target_alua_peer *out, char *why,
			       size_t whylen);
/* A state non-owners may be in (alua_peer_state): active/non-optimized, standby,
 * unavailable. 0 or -EINVAL. */
int isd_target_alua_peer_state_parse(const char *s, uint8_t *out);
/* Adds a peer group to a target: refused when it is the target's own group or
 * listed already, or when there are ISD_TARGET_ALUA_MAX_PEERS. */
int isd_target_alua_peer_add(struct isd_target_node_cfg *n, const struct isd_target_alua_peer *p,
			     char *why, size_t whylen);
/* A listener that is not a portal (metrics_listen): "ADDR:PORT" or "[V6]:PORT", the
 * address numeric, port 0..65535 (0: any). host gets the address without brackets. */
int isd_target_listen_parse(const char *s, char *host, size_t hostlen, uint16_t *port,
			    char *why, size_t whylen);
/* "1G" -> 1073741824 (K/M/G/T/P, powers of two; "0" and overflow are errors). */
int isd_target_size_parse(const char *s, uint64_t *out);
/*
 * "USER:SECRET" (the secret may contain ':'), "USER:@PATH" (the secret is the
 * file's content, one trailing newline stripped; refused if others may read
 * the file, a warning in cfg if its group may) or "USER:env:VAR" (from the
 * environment). cfg may be NULL (no warnings kept). Returns 1 when the secret
 * was given literally, 0 when it came from a file or the environment, -EINVAL.
 */
int isd_target_chap_parse(struct isd_target_cfg *cfg, const char *s, struct isd_chap_cred *out,
			  char *why, size_t whylen);
/* Reads a secret file as above. 0 or -errno + why. */
int isd_target_secret_file(struct isd_target_cfg *cfg, const char *path, char *out, size_t cap,
			   char *why, size_t whylen);
/* Reads a secret from the environment variable var. 0 or -EINVAL + why. */
int isd_target_secret_env(const char *var, char *out, size_t cap, char *why, size_t whylen);
/* Adds a warning line to cfg (kept once). 0 or -ENOMEM. */
int isd_target_cfg_warn(struct isd_target_cfg *cfg, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/*
 * Overwrites, in place, every literal secret that --chap/--mutual-chap carry
 * in argv, so that /proc/PID/cmdline stops showing it to every local user.
 * Call it after isd_target_cfg_parse_args() (which copied them). Returns the
 * number of secrets overwritten.
 */
int isd_target_args_scrub(int argc, char **argv);
/*
 * Switches to cfg->user and cfg->group, once portals listen and memory is
 * registered: RLIMIT_MEMLOCK is lifted first (later registrations need it,
 * and an unprivileged user could not raise it), then supplementary groups,
 * gid, uid. Does nothing when cfg->user is "". 0 or -errno + err.
 */
int isd_target_drop_privileges(const struct isd_target_cfg *cfg, char *err, size_t errlen);

/*
 * Builds the running target on reactor r: opens every backing store, creates
 * one SCSI device per target with its LUs, the iSCSI target instance with its
 * nodes, and listens on every portal. Logs each portal, target and LUN.
 * On failure everything built so far is torn down and err names the problem
 * ("--lun file:/nope: No such file or directory"); -errno is returned.
 */
int isd_target_start(const struct isd_target_cfg *cfg, struct isd_reactor *r,
		     struct isd_target_running **out, char *err, size_t errlen);
/*
 * Stops listening and closes every connection; cb runs once all are gone, from
 * the reactor (never inside this call). Callable once.
 */
void isd_target_shutdown(struct isd_target_running *rt, void (*cb)(void *arg), void *arg);
/*
 * The reactor group the target's reactor belongs to (the daemon's: reactor 0
 * runs the target, its listeners and the control socket), or NULL when it
 * was started on a lone reactor. Control paths pause the group around their
 * work (isd_reactor_pause_others).
 */
struct isd_reactor_group *isd_target_reactor_group(const struct isd_target_running *rt);
/* Sets the idle mode cfg asks for on every reactor of the group (or the lone one). */
void isd_target_apply_reactor_mode(struct isd_target_running *rt,
				   const struct isd_target_cfg *cfg);
/* Counters of the iSCSI core. */
void isd_target_get_stats(struct isd_target_running *rt, struct isd_iscsi_stats *out);
/* The iSCSI core instance it runs (its nodes, sessions), for readers in this layer. */
struct isd_iscsi_tgt *isd_target_core(struct isd_target_running *rt);
/*
 * Frees everything start built. Call it before any connection was accepted or
 * after the shutdown callback ran; if a shutdown was started but never
 * finished, the core objects are left allocated (connections may still point
 * at them) and only a warning is logged.
 */
void isd_target_stop(struct isd_target_running *rt);

#endif
