/*
 * Internal to src/server: the running target (start.c builds it, live.c and
 * live_apply.c change it). Everything here belongs to the reactor thread.
 */
#ifndef ISD_SERVER_RUNNING_INT_H
#define ISD_SERVER_RUNNING_INT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <sys/queue.h>

#include "reactor/reactor.h"
#include "scsi/scsi.h"
#include "server/config_int.h"

#define ISD_TARGET_QUEUE_DEPTH 128
/* "iser://[" + host + "]:65535" */
#define ISD_TARGET_URL_MAX 96

/*
 * A listening portal of a registered datamover kind. Each is its own
 * allocation: the core keeps a pointer to pc on its portal list, and nodes
 * bound to the portal point at pc, so it must not move when others come and go.
 */
struct isd_target_portal {
	struct isd_target_portal_spec spec;     /* as asked (port 0: any) */
	struct isd_portal_cfg pc;               /* as listening (the port bound) */
	bool registered;                        /* pc is on the core's list */
	void *handle;                           /* the kind's; NULL once closed */
	char url[ISD_TARGET_URL_MAX];           /* with the port bound */
};

/* LUN memory a datamover registered (dm_kind.h register_memory). */
struct isd_target_region {
	const struct isd_dm_kind *kind;
	void *base;
	bool read_only;                 /* registered without write access */
};

/*
 * A target as it runs: its own allocation, so that targets come and go while
 * others run. Once removed it leaves the core at once but lives on (the
 * sessions still closing point at it) until no connection refers to it.
 */
struct isd_target_node {
	struct isd_tnode tn;            /* registered with the core */
	struct isd_bstore *bs[ISD_SCSI_MAX_LUNS];       /* the stores of its LUs (owned by
							 * the LUs), for resize and memory */
	struct isd_target_running *rt;  /* for a store's lock_changed hook */
	uint16_t alua_group;            /* nc's: 0 = ALUA off */
	uint8_t alua_peer_state;        /* nc's: the state of a LU whose lock is elsewhere */
	TAILQ_ENTRY(isd_target_node) link;
};
TAILQ_HEAD(isd_target_node_list, isd_target_node);

/* Owned by the daemon's reactor thread (reactor 0 of its group, if it has one);
 * freed by isd_target_stop(). */
struct isd_target_running {
	struct isd_reactor *r;
	struct isd_iscsi_tgt *tgt;
	struct isd_target_node_list nodes;      /* registered with tgt */
	struct isd_target_node_list removed;    /* out of tgt; freed once unused */
	struct isd_timer reap_timer;            /* frees what `removed` no longer needs */
	struct isd_reactor_msg reap_msg;        /* conn_gone from another reactor */
	atomic_bool reap_posted;                /* reap_msg is in reactor 0's inbox */
	struct isd_target_cfg cfg;              /* the model as it runs (isd_target_running_cfg) */
	struct isd_target_portal **portals;     /* in the order they were opened */
	int portal_count;
	/* a portal of isd_dm_kinds[k] was opened: LUN memory is registered with it */
	bool kind_open[ISD_TARGET_DM_KINDS_MAX];
	struct isd_target_region *registered;   /* LUN memory (mem_base) registered */
	int registered_count;
	bool shutdown_started;
	bool shutdown_done;
	void (*shutdown_cb)(void *arg);
	void *shutdown_arg;
};

/* start.c, for live.c */
struct isd_target_node *isd_target_node_find(struct isd_target_running *rt, const char *name);
/* Builds a node (its LUNs opened) and registers it with the core. On failure what
 * was built is freed and err says why. */
int isd_target_node_build(struct isd_target_running *rt, const struct isd_target_cfg *cfg,
			  const struct isd_target_node_cfg *nc, struct isd_target_node **out,
			  char *err, size_t errlen);
/* Opens one LUN into node n (store, memory registration, SCSI LU). */
/* Gives the target's SCSI device its ALUA groups (none: ALUA off). 0 or -EINVAL + err. */
int isd_target_node_alua(const struct isd_target_node_cfg *nc, struct isd_scsi_dev *dev, char *err,
			 size_t errlen);
int isd_target_lun_open(struct isd_target_running *rt, const struct isd_target_node_cfg *nc,
			const struct isd_target_lun_cfg *l, struct isd_target_node *n, char *err,
			size_t errlen);
/* The SCSI layer's gone callback of a removed LU: deregisters its memory. */
void isd_target_lun_gone(void *arg, struct isd_bstore *bs);
/* Is the store's memory registered read-only with some datamover? */
bool isd_target_mem_registered(struct isd_target_running *rt, const void *base, bool *read_only);
/* Frees a node that no connection refers to any more. */
void isd_target_node_free(struct isd_target_running *rt, struct isd_target_node *n);
/* Node negotiation settings (global neg, then the node's) into tn; -EINVAL + err. */
int isd_target_node_policy(const struct isd_target_cfg *cfg, const struct isd_target_node_cfg *nc,
			   struct isd_tnode *tn, char *err, size_t errlen);
/* The core's cfg from the model (timeouts, limits, discovery). */
void isd_target_icfg_from(const struct isd_target_cfg *cfg, struct isd_iscsi_cfg *icfg);

/* ---- portal.c ---- */

/* Listens on ps, registers the portal with the core and, for the first portal of
 * its kind, registers every LUN's memory with the kind. 0 or -errno + err. */
int isd_target_portal_open(struct isd_target_running *rt, const struct isd_target_portal_spec *ps,
			   char *err, size_t errlen);
/* Stops every listener (connections stay); the portals stay registered. */
void isd_target_portals_close(struct isd_target_running *rt);
/* Frees every portal; the core must be destroyed first (or never have them). */
void isd_target_portals_free(struct isd_target_running *rt);
/*
 * Where a listening portal's new connections go from now on: `reactors`, a
 * reactor list ("" = every reactor), checked against the reactors running.
 * Connections already placed stay. 0 or -EINVAL + err (nothing changed).
 */
int isd_target_portal_set_reactors(struct isd_target_running *rt, struct isd_target_portal *p,
				   const char *reactors, char *err, size_t errlen);
/* The running portal a URL names (its port as asked or as bound), or NULL. */
struct isd_target_portal *isd_target_portal_find(struct isd_target_running *rt,
						 const struct isd_target_portal_spec *ps);
/*
 * Sets the portals node tn is reachable on from their URLs (n = 0: every
 * portal). Validates every URL first; on failure tn is unchanged. The array
 * is tn's own (freed by isd_target_node_unbind).
 */
int isd_target_node_bind(struct isd_target_running *rt, struct isd_tnode *tn,
			 const char *const *urls, int n, char *err, size_t errlen);
void isd_target_node_unbind(struct isd_tnode *tn);
/*
 * Registers a LUN store's memory with one datamover kind and records it
 * (read_only: without write access); origin prefixes err. 0 or -errno.
 */
int isd_target_mem_register(struct isd_target_running *rt, const struct isd_dm_kind *kind,
			    struct isd_bstore *bs, bool read_only, const char *origin, char *err,
			    size_t errlen);

#endif
