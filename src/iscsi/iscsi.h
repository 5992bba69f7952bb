/*
 * The iSCSI protocol core, target role: what the layers above (target/,
 * daemon/) and the datamovers below (through iscsi/dm.h) see of it.
 *
 * The layer above describes target nodes (struct isd_tnode) and registers them;
 * a datamover that accepted a transport connection creates an isd_conn with
 * isd_conn_create() and starts it. From then on the core runs login, the
 * session, and full feature phase on the connection's reactor.
 */
#ifndef ISD_ISCSI_H
#define ISD_ISCSI_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>

#include "iscsi/chap.h"
#include "iscsi/keys.h"
#include "util/iostats.h"

struct isd_reactor;
struct isd_scsi_dev;
struct isd_dm_ops;
struct isd_conn;
struct isd_iscsi_tgt;
struct isd_conn_info;

#define ISD_NAME_MAX 224                /* iSCSI names are at most 223 bytes */
#define ISD_ALIAS_MAX 256

struct isd_chap_cred {
	char user[ISD_CHAP_NAME_MAX];
	char secret[ISD_CHAP_SECRET_MAX];
};

/* Authentication a target node (or discovery) demands. */
struct isd_auth_cfg {
	bool require_chap;              /* AuthMethod must end as CHAP */
	struct isd_chap_cred chap;      /* what the initiator must prove (one-way CHAP) */
	bool mutual;                    /* we can answer an initiator's challenge */
	struct isd_chap_cred mutual_chap; /* our name and secret for mutual CHAP */
};

/*
 * CHAP credentials of one initiator on one target node: an InitiatorName
 * listed here authenticates with these instead of the node's own; a half left
 * unset (require_chap or mutual false) falls back to the node's.
 */
struct isd_initiator_auth {
	char name[ISD_NAME_MAX];
	struct isd_auth_cfg auth;
};

/* Applies an initiator's own credentials (own) over out, which holds the node's. */
void isd_auth_overlay(struct isd_auth_cfg *out, const struct isd_auth_cfg *own);

enum isd_transport {
	ISD_TRANSPORT_TCP = 0,
	ISD_TRANSPORT_ISER,
};

/* A listening address, for SendTargets answers. */
struct isd_portal_cfg {
	char host[64];                  /* numeric address as listened on ("127.0.0.1", "::1") */
	uint16_t port;
	uint16_t tpgt;
	enum isd_transport transport;
	TAILQ_ENTRY(isd_portal_cfg) link;
};

/* A target node. Owned by whoever registered it; must outlive its sessions. */
struct isd_tnode {
	char name[ISD_NAME_MAX];
	char alias[ISD_ALIAS_MAX];      /* "" for none */
	uint16_t tpgt;                  /* 1 unless configured */
	struct isd_scsi_dev *dev;       /* its logical units */
	char **acl;                     /* InitiatorNames allowed to log in; acl_count 0 = all */
	int acl_count;
	struct isd_auth_cfg auth;
	struct isd_initiator_auth *ini_auth;    /* per-initiator CHAP, looked up first */
	int ini_auth_count;
	struct isd_key_policy policy;   /* negotiation limits for sessions to this node */
	uint32_t queue_depth;           /* CmdSN window per session (MaxCmdSN - ExpCmdSN + 1) */
	/*
	 * The portals it is reachable on: with bound false every portal; with bound
	 * true only those in portals[] (none at all is possible). A login arriving on
	 * another portal fails as if the node did not exist, and SendTargets on
	 * another portal does not name it. The registrar owns the array.
	 */
	bool bound;
	const struct isd_portal_cfg **portals;
	int portal_count;
	bool removed;                   /* isd_iscsi_tgt_remove_node() took it out */
	TAILQ_ENTRY(isd_tnode) link;
};

struct isd_iscsi_cfg {
	struct isd_auth_cfg discovery_auth;
	struct isd_key_policy discovery_policy;
	uint32_t login_timeout_ms;      /* a login must finish within this (default 15000) */
	uint32_t nop_interval_ms;       /* NOP-In ping after this much idle (0 = off; default 5000) */
	uint32_t nop_timeout_ms;        /* drop the connection if the ping is not answered (default 10000) */
	uint32_t logout_timeout_ms;     /* default 2000 */
	/*
	 * Resource limits (docs/iserd.md "Limits and worst-case memory"); 0 = no limit.
	 * Connection limits are checked when a datamover creates the connection, so it
	 * can close the transport at once; session limits fail the login with
	 * 0x0302 Out of resources; the held-PDU limits close the connection.
	 */
	uint32_t max_connections;       /* connections alive, login and full feature */
	uint32_t max_connections_per_address;   /* connections from one initiator address */
	uint32_t max_login_connections; /* connections still in the login phase */
	uint32_t max_sessions;          /* sessions over all targets, discovery included */
	uint32_t max_sessions_per_target;
	uint32_t max_discovery_sessions;
	uint32_t max_held_bytes;        /* per session: PDUs parked out of CmdSN order */
	uint32_t max_held_pdus;         /* per session: commands + Data-Outs parked */
	uint32_t max_session_buffer_bytes;      /* per session: command data buffers */
	uint32_t chap_algs;             /* ISD_CHAP_ALG_BIT mask of CHAP_A we accept; 0 = all */
};

#define ISD_DEFAULT_MAX_CONNECTIONS 1024
#define ISD_DEFAULT_MAX_CONNECTIONS_PER_ADDRESS 64
#define ISD_DEFAULT_MAX_LOGIN_CONNECTIONS 128
#define ISD_DEFAULT_MAX_SESSIONS 512
#define ISD_DEFAULT_MAX_SESSIONS_PER_TARGET 256
#define ISD_DEFAULT_MAX_DISCOVERY_SESSIONS 32
#define ISD_DEFAULT_MAX_HELD_BYTES (1u << 20)
#define ISD_DEFAULT_MAX_HELD_PDUS 64
#define ISD_DEFAULT_MAX_SESSION_BUFFER_BYTES (64u << 20)
void isd_iscsi_cfg_init(struct isd_iscsi_cfg *cfg);

/* Counters for stats and leak checks; all return to 0 when every connection is gone. */
struct isd_iscsi_stats {
	uint64_t sessions;
	uint64_t connections;
	uint64_t tasks;
	uint64_t logins_ok;
	uint64_t logins_failed;
	uint64_t rejects_sent;
	uint64_t bytes_copied;          /* payload copied into staging buffers on the data path */
	uint64_t bytes_placed;          /* immediate/Data-Out payload copied from a receive buffer
					 * straight into a RAM LU's memory: the store write itself */
	uint64_t login_connections;     /* connections in the login phase now */
	uint64_t cmdsn_dropped;         /* requests dropped outside the CmdSN window or as a
					 * duplicate CmdSN (RFC 7143 §4.2.2.1), since start */
	/* refusals by limit, counted since start (never decremented) */
	struct {
		uint64_t connections;           /* max_connections, at accept */
		uint64_t per_address;           /* max_connections_per_address, at accept */
		uint64_t login_connections;     /* max_login_connections, at accept */
		uint64_t sessions;              /* max_sessions, login 0x0302 */
		uint64_t sessions_per_target;   /* max_sessions_per_target, login 0x0302 */
		uint64_t discovery_sessions;    /* max_discovery_sessions, login 0x0302 */
		uint64_t held_pdus;             /* max_held_bytes/max_held_pdus, connection closed */
		uint64_t buffers;               /* max_session_buffer_bytes, command answered BUSY */
	} refused;
};

struct isd_stat;
/* The refusals of st by limit, named after the limit (docs/iserd.md "Limits"), for
 * whoever shows them: fills out[0..max), returns how many there are. */
int isd_iscsi_refused_list(const struct isd_iscsi_stats *st, struct isd_stat *out, int max);

int isd_iscsi_tgt_create(struct isd_reactor *r, const struct isd_iscsi_cfg *cfg,
			 struct isd_iscsi_tgt **out);
/* Frees the instance; every connection must be gone (see isd_iscsi_tgt_shutdown). */
void isd_iscsi_tgt_destroy(struct isd_iscsi_tgt *t);
/* Registers a node (its name must be unique: -EEXIST) or a portal; the caller keeps
 * ownership and keeps them alive until destroy. */
int isd_iscsi_tgt_add_node(struct isd_iscsi_tgt *t, struct isd_tnode *node);
int isd_iscsi_tgt_add_portal(struct isd_iscsi_tgt *t, struct isd_portal_cfg *portal);
/*
 * Unregisters a portal (its listener is closed by the caller; connections that
 * arrived on it stay): SendTargets stops naming it and bound nodes lose it.
 * -EBUSY, and nothing changes, when a registered node is bound to it and to no
 * other portal (*busy, if not NULL, names it); -ENOENT when it is not registered.
 */
int isd_iscsi_tgt_remove_portal(struct isd_iscsi_tgt *t, struct isd_portal_cfg *portal,
				const struct isd_tnode **busy);
/* The registered portal a connection arrived on (transport, local address and port; a
 * portal on a wildcard address matches any address), or NULL. */
const struct isd_portal_cfg *isd_iscsi_tgt_conn_portal(struct isd_iscsi_tgt *t,
						       const struct isd_conn_info *info);
/* Whether node n may be reached on portal p (NULL: a portal no longer registered). */
bool isd_tnode_on_portal(const struct isd_tnode *n, const struct isd_portal_cfg *p);
struct isd_tnode *isd_iscsi_tgt_find_node(struct isd_iscsi_tgt *t, const char *name);
/* Closes every connection (Async logout request is not awaited); cb runs once all are
 * gone, from the reactor. */
void isd_iscsi_tgt_shutdown(struct isd_iscsi_tgt *t, void (*cb)(void *arg), void *arg);
void isd_iscsi_tgt_get_stats(struct isd_iscsi_tgt *t, struct isd_iscsi_stats *out);

/* ---- changes while running (src/server/live.c) ---- */

/*
 * The instance's settings, changed in place for what comes next: timeouts,
 * limits and discovery auth apply to connections and logins from then on.
 */
struct isd_iscsi_cfg *isd_iscsi_tgt_cfg(struct isd_iscsi_tgt *t);
/*
 * Takes a node out: logins naming it fail from now on (not found; one that
 * was past its first request gets 0x0204 target removed), connections still
 * logging in to it are closed. Its sessions stay until they end; the caller
 * keeps the node (and its device) alive while isd_iscsi_tgt_node_busy().
 * -ENOENT when it is not registered.
 */
int isd_iscsi_tgt_remove_node(struct isd_iscsi_tgt *t, struct isd_tnode *node);
/* Logged-in sessions to node (NULL: discovery sessions). */
int isd_iscsi_tgt_node_sessions(struct isd_iscsi_tgt *t, const struct isd_tnode *node);
/* True while a connection (logging in, logged in or closing) still refers to node. */
bool isd_iscsi_tgt_node_busy(struct isd_iscsi_tgt *t, const struct isd_tnode *node);
/* Asks every logged-in session of node to log out (isd_iscsi_tgt_session_logout);
 * returns how many were asked. */
int isd_iscsi_tgt_node_logout(struct isd_iscsi_tgt *t, const struct isd_tnode *node);
/*
 * Asks a session to log out: an Async Message with AsyncEvent 1 (logout
 * requested, RFC 7143 §11.9.1) whose Parameter3 gives the initiator the
 * logout timeout (in seconds, rounded up) to do so; the connection is closed
 * if it is still there when that time has passed. -ENOENT for no such TSIH.
 */
int isd_iscsi_tgt_session_logout(struct isd_iscsi_tgt *t, uint16_t tsih);
/* Closes connection cid of session tsih at once. -ENOENT. */
int isd_iscsi_tgt_conn_drop(struct isd_iscsi_tgt *t, uint16_t tsih, uint16_t cid);
/* cb(arg) runs each time a connection has been freed (inside the core: defer real work). */
void isd_iscsi_tgt_set_conn_gone(struct isd_iscsi_tgt *t, void (*cb)(void *arg), void *arg);

/* What a datamover knows about a new connection. */
struct isd_dm_conn;

struct isd_conn_info {
	char peer_addr[64];             /* numeric, for logs and ACLs */
	uint16_t peer_port;
	char local_addr[64];
	uint16_t local_port;
	uint16_t tpgt;                  /* of the portal it arrived on */
	enum isd_transport transport;
};

/* A logged-in session as the layers above see it (statistics, listings). */
struct isd_iscsi_session_info {
	uint16_t tsih;
	bool discovery;
	char target[ISD_NAME_MAX];      /* "" for discovery */
	char initiator[ISD_NAME_MAX];   /* as the initiator sent it: escape before logging */
	uint8_t isid[6];
	uint16_t cid;
	struct isd_conn_info conn;      /* addresses, ports, transport of its connection */
	uint64_t age_ms;                /* since the login completed */
	uint32_t in_flight;             /* tasks alive (immediate ones included) */
	struct isd_params params;       /* negotiated */
	uint32_t max_recv_dsl;          /* what the initiator may send us in one PDU (iSER:
					 * TargetRecvDataSegmentLength) */
	uint32_t max_xmit_dsl;          /* what we send it in one PDU */
	uint32_t queue_depth;           /* CmdSN window */
	struct isd_io_stats io;         /* its SCSI commands, from arrival to the task's end */
};

/* Calls fn for each session in the session table (logged in, discovery included),
 * in login order. Returns the count. fn must not log a session out. */
int isd_iscsi_tgt_for_each_session(struct isd_iscsi_tgt *t,
				   void (*fn)(void *arg, const struct isd_iscsi_session_info *si),
				   void *arg);
/* Calls fn for each registered node, in registration order. Returns the count. */
int isd_iscsi_tgt_for_each_node(struct isd_iscsi_tgt *t,
				void (*fn)(void *arg, struct isd_tnode *node), void *arg);

/*
 * Creates a passive connection in the login state with room for
 * ops->conn_priv_size bytes of datamover state (isd_dmc_priv()), and returns
 * what the datamover sees of it (dm.h). The datamover initialises
 * its part, then calls isd_conn_start(), which arms the login timer; the
 * first PDU it passes up must be a Login Request. If isd_conn_create fails,
 * the datamover closes its transport itself: -EAGAIN means a connection limit
 * (max_connections, max_connections_per_address, max_login_connections) is
 * reached; the refusal is already counted, so it need not be logged above debug.
 */
int isd_conn_create(struct isd_iscsi_tgt *t, const struct isd_dm_ops *ops,
		    const struct isd_conn_info *info, struct isd_reactor *r,
		    struct isd_dm_conn **out);
void isd_conn_start(struct isd_dm_conn *c);

#endif
