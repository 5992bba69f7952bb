/*
 * The TCP datamover (RFC 7143 over TCP): listening portals, PDU framing with
 * optional CRC32C digests, R2T/Data-Out for solicited data, Data-In with
 * phase-collapsed status; the active role (an initiator's connection) too.
 * Implements struct isd_dm_ops (iscsi/dm.h).
 */
#ifndef ISD_DM_TCP_H
#define ISD_DM_TCP_H

#include <stddef.h>
#include <stdint.h>

#include "util/stats.h"

struct isd_iscsi_tgt;
struct isd_reactor;
struct isd_reactor_mask;
struct isd_tcp_portal;
struct isd_dm_conn;

extern const struct isd_dm_ops isd_tcp_dm_ops;
/* Active role on a socket already connected (instead of ops->connect); c is set up
 * as for connect. Returns 0 or -errno (fd not taken). */
int isd_tcp_adopt(struct isd_dm_conn *c, int fd, const char *peer);

/*
 * Listens on host:port (numeric IPv4 or IPv6 address, or a name resolved once)
 * and hands every accepted connection to the core as an isd_conn on reactor r.
 * Errors: -EADDRINUSE (port busy), -EADDRNOTAVAIL, -EACCES, -EINVAL; `err`
 * gets one line naming the problem ("127.0.0.1:3260: Address already in use").
 */
int isd_tcp_portal_listen(struct isd_iscsi_tgt *t, struct isd_reactor *r, const char *host,
			  uint16_t port, uint16_t tpgt, struct isd_tcp_portal **out, char *err,
			  size_t err_len);
/* Stops listening (established connections stay). */
void isd_tcp_portal_close(struct isd_tcp_portal *p);
/* The port actually bound (useful with port 0 in tests). */
uint16_t isd_tcp_portal_port(const struct isd_tcp_portal *p);
/* The reactors accepted connections may go to (copied; NULL or empty: all). */
void isd_tcp_portal_place(struct isd_tcp_portal *p, const struct isd_reactor_mask *in);

/*
 * Send queue limit per connection (global setting max_tx_queue_bytes): past
 * it the connection is not read from until its queue drains to half of it,
 * so a peer that does not read cannot make us buffer its replies.
 */
#define ISD_TCP_TXQ_MIN (64u << 10)
#define ISD_TCP_TXQ_MAX (1u << 30)
#define ISD_TCP_TXQ_DEFAULT (4u << 20)
/* Sets the limit for connections from now on. Returns 0 or -EINVAL (outside MIN..MAX). */
int isd_tcp_set_max_tx_queue(uint64_t bytes);

/* Process-wide counters of the TCP datamover (all reactors of the process). */
struct isd_tcp_stats {
	uint64_t rx_paused;             /* times reading stopped for a full send queue */
	uint64_t tx_queued_bytes;       /* bytes queued now, all connections */
	uint64_t tx_queued_peak;        /* largest queue of one connection seen */
	uint64_t txq_drops;             /* connections dropped at the hard ceiling */
};
void isd_tcp_get_stats(struct isd_tcp_stats *out);
/* The same counters by name (isd_stats_list_fn, util/stats.h). */
int isd_tcp_stats_list(struct isd_stat *out, int max);

#endif
