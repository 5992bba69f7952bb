/*
 * Internal to src/server: the running target (start.c builds it, live.c and
 * live_apply.c change it). Everything here belongs to the reactor thread.
 */
#ifndef ISD_SERVER_RUNNING_INT_H
#define ISD_SERVER_RUNNING_INT_H

#include <stdbool.h>
#include <sys/queue.h>

#include "reactor/reactor.h"
#include "scsi/scsi.h"
#include "server/config_int.h"

#define ISD_TARGET_QUEUE_DEPTH 128

/* A listening portal of a registered datamover kind. */
struct isd_target_listener {
	const struct isd_dm_kind *kind;
	void *portal;                   /* the kind's handle; NULL when not open */
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
	TAILQ_ENTRY(isd_target_node) link;
};
TAILQ_HEAD(isd_target_node_list, isd_target_node);

/* Owned by the daemon's reactor thread; freed by isd_target_stop(). */
struct isd_target_running {
	struct isd_reactor *r;
	struct isd_iscsi_tgt *tgt;
	struct isd_target_node_list nodes;      /* registered with tgt */
	struct isd_target_node_list removed;    /* out of tgt; freed once unused */
	struct isd_timer reap_timer;            /* frees what `removed` no longer needs */
	struct isd_target_cfg cfg;              /* the model as it runs (isd_target_running_cfg) */
	struct isd_portal_cfg *portal_cfgs; /* registered with tgt, for SendTargets */
	struct isd_target_listener *listeners;
	int portal_count;
	bool kind_open[ISD_TARGET_DM_KINDS_MAX]; /* a portal of isd_dm_kinds[k] is open */
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

#endif
