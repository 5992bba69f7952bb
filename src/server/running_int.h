/*
 * Internal to src/server: the running target (what isd_target_start builds),
 * shared by start.c, the portal code (portal.c) and the live changes. Not
 * part of the layer's interface (target.h and live.h are).
 */
#ifndef ISD_SERVER_RUNNING_INT_H
#define ISD_SERVER_RUNNING_INT_H

#include <stdbool.h>
#include <stddef.h>

#include "bstore/bstore.h"
#include "dm/dm_kind.h"
#include "iscsi/iscsi.h"
#include "server/target.h"

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
};

/* A LUN store that exposes its memory (mem_base), for kinds whose first portal opens later. */
struct isd_target_lunmem {
	struct isd_bstore *bs;
	bool read_only;
};

/* Owned by the daemon's reactor thread; freed by isd_target_stop(). */
struct isd_target_running {
	struct isd_reactor *r;
	struct isd_iscsi_tgt *tgt;
	struct isd_tnode *nodes; /* registered with tgt; must outlive it */
	int node_count;
	struct isd_target_portal **portals;     /* in the order they were opened */
	int portal_count;
	/* a portal of isd_dm_kinds[k] was opened: LUN memory is registered with it */
	bool kind_open[ISD_TARGET_DM_KINDS_MAX];
	struct isd_target_region *registered;   /* LUN memory (mem_base) registered */
	int registered_count;
	struct isd_target_lunmem *lunmem;       /* every LUN store with mem_base */
	int lunmem_count;
	/*
	 * The model that runs, kept in step by every live change (NULL: nobody
	 * keeps one; the changes then only touch the running objects).
	 */
	struct isd_target_cfg *model;
	bool shutdown_started;
	bool shutdown_done;
	void (*shutdown_cb)(void *arg);
	void *shutdown_arg;
};

/* ---- portal.c ---- */

/* Listens on ps, registers the portal with the core and, for the first portal of
 * its kind, registers every LUN's memory with the kind. 0 or -errno + err. */
int isd_target_portal_open(struct isd_target_running *rt, const struct isd_target_portal_spec *ps,
			   char *err, size_t errlen);
/* Stops every listener (connections stay); the portals stay registered. */
void isd_target_portals_close(struct isd_target_running *rt);
/* Frees every portal; the core must be destroyed first (or never have them). */
void isd_target_portals_free(struct isd_target_running *rt);
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
 * Records a LUN store whose memory datamovers may register and registers it
 * with every kind that has opened a portal. origin prefixes err. 0 or -errno.
 */
int isd_target_lunmem_add(struct isd_target_running *rt, struct isd_bstore *bs, bool read_only,
			  const char *origin, char *err, size_t errlen);
/* Unregisters a store's memory from every kind and forgets it (before it is closed). */
void isd_target_lunmem_forget(struct isd_target_running *rt, const struct isd_bstore *bs);
/* Unregisters every LUN's memory (teardown, before the stores close). */
void isd_target_lunmem_free(struct isd_target_running *rt);

#endif
