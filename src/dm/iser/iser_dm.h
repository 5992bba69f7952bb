/*
 * The iSER datamover (RFC 7145 over rdma_cm/verbs): listening portals,
 * connection resources, Sends/Receives for control PDUs, RDMA Write for
 * Put_Data and RDMA Read for Get_Data. Implements struct isd_dm_ops (iscsi/dm.h)
 * with caps ISD_DM_CAP_RDMA.
 */
#ifndef ISD_DM_ISER_DM_H
#define ISD_DM_ISER_DM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/stats.h"

struct isd_iscsi_tgt;
struct isd_reactor;
struct isd_reactor_mask;
struct isd_iser_portal;

extern const struct isd_dm_ops isd_iser_dm_ops;

/*
 * Listens with rdma_cm on host:port (numeric IPv4/IPv6 address; "0.0.0.0"
 * for every RDMA-capable address) and hands every accepted connection to the
 * core as an isd_conn on reactor r. Opens the RDMA devices up front so that
 * registered memory (isd_iser_register_memory) is registered at start.
 * Errors: -EADDRINUSE (on iWARP also when a TCP portal holds the port),
 * -EADDRNOTAVAIL/-ENODEV (no RDMA device on that address), -ENOMEM...
 * `err` gets one line naming the portal and the problem.
 */
int isd_iser_portal_listen(struct isd_iscsi_tgt *t, struct isd_reactor *r, const char *host,
			   uint16_t port, uint16_t tpgt, struct isd_iser_portal **out, char *err,
			   size_t err_len);
/* Stops listening (established connections stay). */
void isd_iser_portal_close(struct isd_iser_portal *p);
/* The port actually bound (useful with port 0 in tests). */
uint16_t isd_iser_portal_port(const struct isd_iser_portal *p);
/* The reactors accepted connections may go to (copied; NULL or empty: all). */
void isd_iser_portal_place(struct isd_iser_portal *p, const struct isd_reactor_mask *in);
/*
 * Whether connections accepted from now on may end commands with Send with
 * Invalidate of the initiator's STag (RFC 7145 §5.1.2), when the initiator's
 * CM header allows it and the device can. Off: every REP says
 * SEND_W_INV_NOT_SUP and responses are plain Sends. Default off; iserd turns it
 * on unless the config says `iser_remote_invalidate = false`.
 */
void isd_iser_portal_set_remote_invalidate(struct isd_iser_portal *p, bool on);

/*
 * Data bytes each receive of an active connection (an initiator's) takes, in
 * login and in full feature phase alike: what the initiator core declares as
 * InitiatorRecvDataSegmentLength and MaxRecvDataSegmentLength over iSER. 8192
 * is also the login phase's limit (RFC 7145 §5.1), so one size serves both.
 */
#define ISD_ISER_INI_RECV_DSL 8192u

/* Full-feature receive buffer memory per connection (config `iser_recv_memory`). */
#define ISD_ISER_RECV_MEMORY_DEFAULT (8u << 20)
#define ISD_ISER_RECV_MEMORY_MIN (1u << 20)
#define ISD_ISER_RECV_MEMORY_MAX (256u << 20)
/* Largest TargetRecvDataSegmentLength iserd offers over iSER. */
#define ISD_ISER_TRDSL_MAX 262144u
/*
 * Bytes of full-feature receive buffers each connection accepted from now on
 * may pin: their number is what `bytes` holds of buffers sized for the
 * negotiated TargetRecvDataSegmentLength, between 16 and 256. Default
 * ISD_ISER_RECV_MEMORY_DEFAULT.
 */
void isd_iser_portal_set_recv_memory(struct isd_iser_portal *p, uint64_t bytes);
/*
 * The TargetRecvDataSegmentLength to offer so that a session's CmdSN window
 * (queue_depth) plus the immediate PDUs beside it find a posted receive each,
 * within `recv_memory` bytes per connection: the largest power of two from
 * 8192 to ISD_ISER_TRDSL_MAX that fits, else 8192. Pure.
 */
uint32_t isd_iser_trdsl_for(uint64_t recv_memory, uint32_t queue_depth);

/*
 * Registers [base, base+len) (a RAM LUN's memory) for RDMA on every RDMA
 * device, present and future, so RDMA Writes and Reads go straight to and
 * from it. Local access only (a peer can never write or read it by RDMA; an
 * iWARP RDMA Read sink gets a registration of its own per command), and for a
 * read-only LUN not even local write. On failure `err` names the cause; an
 * RLIMIT_MEMLOCK shortfall is named with its fix. isd_iser_unregister_memory()
 * undoes it (before the memory is freed).
 */
int isd_iser_register_memory(void *base, size_t len, bool read_only, char *err, size_t err_len);
void isd_iser_unregister_memory(void *base);

/* Live iSER resources, for leak checks: conns, qps, conn_mrs, cqs, bufs and
 * jobs are all 0 once every connection is freed (mrs keeps the LUN and pool
 * slab registrations while portals and LUNs exist). Every connection's end is
 * logged at info level with these counters ("iser: ... live iSER resources: ..."). */
struct isd_iser_stats {
	uint64_t conns;
	uint64_t qps;
	uint64_t mrs;                   /* every live MR: LUNs, pool slabs, connections */
	uint64_t conn_mrs;              /* MRs of connections (send/receive descriptors) */
	uint64_t cqs;
	uint64_t bufs;                  /* registered data buffers handed out */
	uint64_t jobs;
	uint64_t bytes_bounced;         /* data copied because a buffer was not registered */
	uint64_t remote_invalidations;  /* SCSI Responses sent with Invalidate (total) */
	uint64_t posts;                 /* ibv_post_send calls of the send side (total) */
	uint64_t posted_wrs;            /* the work requests they carried (total) */
	uint64_t remote_mrs;            /* live registrations with remote access (iWARP read
					 * sinks, one command each): 0 when no WRITE is running */
	uint64_t remote_mrs_total;      /* such registrations made (total) */
	uint64_t tx_queue_holds;        /* times a send queue reached its soft limit and the
					 * connection stopped reposting receives (total) */
	uint64_t tx_queue_drops;        /* connections dropped at the send queue's hard limit */
	uint64_t tx_stall_drops;        /* connections dropped: posted work made no progress for
					 * ISD_ISER_TX_STALL_MS */
};
void isd_iser_get_stats(struct isd_iser_stats *out);
/* The same counters by name (isd_stats_list_fn, util/stats.h). */
int isd_iser_stats_list(struct isd_stat *out, int max);

#endif
