/*
 * A datamover as the server (src/server) knows it: a kind registered under a
 * URL scheme ("tcp" for tcp://ADDR[:PORT], "iser" for iser://...), with its
 * portal lifecycle, its settings, what it needs of the LUNs and its counters.
 * Each datamover declares `const struct isd_dm_kind isd_dm_kind_<scheme>` in
 * its own directory; the list ISD_DM_KINDS in CMakeLists.txt registers it, and
 * nothing above names a datamover. The per-connection seam is iscsi/dm.h.
 */
#ifndef ISD_DM_KIND_H
#define ISD_DM_KIND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "iscsi/iscsi.h"
#include "util/stats.h"

struct isd_reactor;
struct isd_reactor_mask;

/* The most settings a kind may have (the server keeps their values in arrays). */
#define ISD_DM_KNOBS_MAX 8

/* One setting of a datamover: a key of the configuration file's global section. */
struct isd_dm_knob {
	const char *name;               /* "iser_recv_memory" */
	bool is_bool;                   /* true/false in the file; 1/0 here */
	int64_t min, max;               /* range of a number */
	int64_t dflt;                   /* the value when the file does not set it */
};

struct isd_dm_kind {
	const char *scheme;             /* URL scheme, without "://" */
	enum isd_transport transport;   /* what SendTargets tells initiators */
	const struct isd_dm_knob *knobs;
	int knob_count;                 /* at most ISD_DM_KNOBS_MAX */
	/*
	 * Takes the settings (values[i] for knobs[i], defaults filled in) for
	 * portals and connections from now on. Called once before any listen.
	 * Returns 0 or -errno.
	 */
	int (*configure)(const int64_t *values);
	/*
	 * Listens on host:port (numeric address) for target tgt on reactor r and
	 * hands accepted connections to the core. *portal is the kind's own
	 * handle. Returns 0 or -errno with one line in err.
	 */
	int (*listen)(struct isd_iscsi_tgt *tgt, struct isd_reactor *r, const char *host,
		      uint16_t port, uint16_t tpgt, void **portal, char *err, size_t err_len);
	uint16_t (*port)(const void *portal);   /* the port bound (0 asked for any) */
	/*
	 * The reactors the portal's connections may be placed on from now on
	 * (copied; NULL or empty: every reactor). Called on the portal's reactor,
	 * as its accepts run.
	 */
	void (*place)(void *portal, const struct isd_reactor_mask *in);
	void (*close)(void *portal);            /* stops listening; connections stay */
	/*
	 * Optional. Memory a LUN exposes (a RAM LUN), to move data straight to
	 * and from it; called for every such LUN once a portal of this kind is
	 * open, undone with unregister_memory before the memory goes.
	 */
	int (*register_memory)(void *base, size_t len, bool read_only, char *err, size_t err_len);
	void (*unregister_memory)(void *base);
	/* Optional. The TargetRecvDataSegmentLength a node with this queue depth offers. */
	uint32_t (*target_recv_dsl)(uint32_t queue_depth);
	isd_stats_list_fn stats;        /* its counters, by name */
};

/* The registered kinds in ISD_DM_KINDS order (generated: dm_kinds.c in the server). */
extern const struct isd_dm_kind *const isd_dm_kinds[];
extern const unsigned isd_dm_kind_count;

#endif
