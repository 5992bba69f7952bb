/*
 * Internals of the iSCSI protocol core, target role. A connection and all of
 * it (its session, tasks, timers, login and text state) lives on its reactor
 * (c->reactor) and is touched only there, without a lock. What the
 * connections of one instance share is the instance (struct isd_iscsi_tgt):
 *   - the tables (conns, sessions, next_tsih, next_nexus_id) and the
 *     admission checks made against them are guarded by isd_tgt_lock(),
 *     taken on the login, logout and teardown paths only, never per PDU;
 *     nothing that may call into the SCSI layer, a datamover or back into
 *     the core runs under it (collect under the lock, act after unlock);
 *   - the counters (stats, next_ttt) are relaxed atomics (isd_stat_inc and
 *     friends), bumped from any reactor; those of every command (hot) have
 *     a cache line per reactor;
 *   - nodes, portals and cfg change only in control methods, which run on
 *     reactor 0 with every other reactor paused (isd_reactor_group_pause),
 *     so the logins of other reactors read them without a lock.
 * With one reactor the lock is never contended and the atomics are plain
 * read-modify-writes on one thread.
 *
 * Lifetimes:
 *   - struct isd_conn is created by a datamover (isd_conn_create) and holds one
 *     base reference until Connection_Terminate_Notify; every live task holds
 *     another. The count is atomic: another reactor may take a reference to
 *     a connection it knows is alive (found under the table lock, or already
 *     holding one) to post work to it. When the count reaches 0 the core
 *     calls ops->free_conn and frees the connection together with its session
 *     (MaxConnections is 1), always on the connection's own reactor: a last
 *     put made elsewhere posts the free there.
 *   - struct isd_session is created by the final Login Response and owned by
 *     its (only) connection. It leaves the session table as soon as the
 *     connection dies, so a reinstating login never finds it.
 *   - struct isd_task is owned by its connection; a task whose SCSI exec is in
 *     flight outlives the connection's death and is freed when exec completes.
 */
#ifndef ISD_ISCSI_CORE_H
#define ISD_ISCSI_CORE_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>

#include "iscsi/dm.h"
#include "iscsi/iscsi.h"
#include "iscsi/keys.h"
#include "iscsi/chap.h"
#include "iscsi/pdu.h"
#include "reactor/reactor.h"
#include "scsi/scsi.h"

#define ISD_DEFAULT_QUEUE_DEPTH 128
/* A discovery session runs one Text exchange at a time: a small window keeps what a
 * peer can park there (isd_held) small too. */
#define ISD_DISCOVERY_QUEUE_DEPTH 4
#define ISD_DISCOVERY_MAX_HELD_BYTES 65536     /* held-PDU cap of a discovery session */
#define ISD_LOGIN_MAX_TEXT 65536        /* request text accumulated over C-bit PDUs */
#define ISD_LOGIN_RSP_CHUNK 8192        /* login responses are split at this size */
#define ISD_TEXT_MAX_REQ 65536          /* FFP text request accumulated over C-bit PDUs */
#define ISD_DISCOVERY_MAX_CHUNK 8192    /* text response chunk cap in discovery */
#define ISD_MAX_IMMEDIATE_TASKS 16      /* immediate commands do not take a CmdSN slot */
#define ISD_HELD_MAX_DATA_OUT 256       /* Data-Outs parked behind one out-of-order command */
#define ISD_ABORTED_RING 16             /* ITTs of recently aborted tasks (late Data-Out) */

#ifndef TAILQ_FOREACH_SAFE
#define TAILQ_FOREACH_SAFE(var, head, field, tvar)                                                 \
	for ((var) = TAILQ_FIRST(head); (var) != NULL && ((tvar) = TAILQ_NEXT(var, field), 1);     \
	     (var) = (tvar))
#endif

TAILQ_HEAD(isd_conn_list, isd_conn);
TAILQ_HEAD(isd_session_list, isd_session);
TAILQ_HEAD(isd_task_list, isd_task);
#define ISD_ITT_BUCKETS 64
TAILQ_HEAD(isd_held_list, isd_held);

struct isd_iscsi_tgt {
	struct isd_reactor *reactor;            /* reactor 0: shutdown, conn_gone_cb run here */
	struct isd_iscsi_cfg cfg;               /* changed with the other reactors paused */
	TAILQ_HEAD(, isd_tnode) nodes;          /* likewise */
	TAILQ_HEAD(, isd_portal_cfg) portals;   /* likewise */
	pthread_mutex_t lock;                   /* isd_tgt_lock: guards the four below,
						 * shutting_down and each conn's node */
	struct isd_session_list sessions;       /* logged-in sessions (table by TSIH/ISID) */
	struct isd_conn_list conns;             /* every connection not yet freed */
	uint16_t next_tsih;
	uint64_t next_nexus_id;
	struct isd_iscsi_stats stats;           /* isd_stat_*: any reactor, no lock */
	/*
	 * The counters every command bumps, one cache line per reactor index (a
	 * connection's reactor bumps its own; isd_iscsi_tgt_get_stats sums them
	 * into stats' tasks, bytes_copied and bytes_placed, which stay 0 here):
	 * shared, they would bounce between the cores on every command.
	 */
	struct isd_tgt_hot {
		uint64_t tasks;                 /* up at alloc, down at free: same reactor */
		uint64_t bytes_copied;
		uint64_t bytes_placed;
	} __attribute__((aligned(64))) hot[ISD_REACTOR_MAX];
	uint32_t next_ttt;                      /* atomic (text.c) */
	bool shutting_down;
	void (*shutdown_cb)(void *arg);
	void *shutdown_arg;
	struct isd_timer shutdown_timer;
	void (*conn_gone_cb)(void *arg);        /* isd_iscsi_tgt_set_conn_gone */
	void *conn_gone_arg;
	/* a connection freed on another reactor tells t->reactor through this; one in
	 * flight at a time (gone_posted, atomic), as it only asks for a look */
	struct isd_reactor_msg gone_msg;
	bool gone_posted;
};

/*
 * The table lock. Taken on login, logout and teardown paths, for short
 * critical sections that call nothing outside the core's tables: not the
 * SCSI layer, not a datamover, not isd_conn_close (whose terminate may
 * re-enter the core and take it again).
 */
void isd_tgt_lock(struct isd_iscsi_tgt *t);
void isd_tgt_unlock(struct isd_iscsi_tgt *t);

/*
 * The instance's counters (t->stats, uint64_t) are bumped from every reactor:
 * relaxed atomics, as nothing is ordered by them; a reader gets each counter
 * whole (isd_iscsi_tgt_get_stats), the set not as one snapshot.
 */
static inline void
isd_stat_inc(uint64_t *p)
{
	__atomic_fetch_add(p, 1, __ATOMIC_RELAXED);
}

static inline void
isd_stat_dec(uint64_t *p)
{
	__atomic_fetch_sub(p, 1, __ATOMIC_RELAXED);
}

static inline void
isd_stat_add_n(uint64_t *p, uint64_t n)
{
	__atomic_fetch_add(p, n, __ATOMIC_RELAXED);
}

/* The calling connection's reactor's line of t->hot. */
#define isd_tgt_hot(c) (&(c)->tgt->hot[isd_reactor_index((c)->reactor)])

static inline uint64_t
isd_stat_load(const uint64_t *p)
{
	return __atomic_load_n(p, __ATOMIC_RELAXED);
}

/* A command PDU whose CmdSN is ahead of ExpCmdSN, parked until the gap fills,
 * with the unsolicited Data-Outs that arrived for it meanwhile; or (pdu NULL) a
 * CmdSN an ABORT TASK took as received, skipped when its turn comes. */
struct isd_held {
	struct isd_pdu *pdu;
	uint32_t cmdsn;
	uint32_t itt;
	bool is_cmd;                    /* SCSI Command (may own Data-Outs) */
	struct isd_pdu_list data_outs;
	uint32_t n_data_outs;
	uint64_t data_bytes;
	uint64_t cost;                  /* memory held here, counted in session held_bytes */
	TAILQ_ENTRY(isd_held) link;
};

struct isd_session {
	struct isd_iscsi_tgt *tgt;
	struct isd_tnode *node;         /* NULL for discovery */
	enum isd_session_type type;
	char iname[ISD_NAME_MAX];
	uint8_t isid[6];
	uint16_t tsih;
	struct isd_conn *conn;          /* the only connection (MaxConnections=1) */
	bool in_table;
	/* CmdSN window (RFC 7143 §4.2.2.1) */
	uint32_t exp_cmdsn;
	uint32_t max_cmdsn;
	uint32_t queue_depth;
	uint32_t active_cmds;           /* non-immediate tasks alive: they shrink the window */
	uint32_t active_imm;            /* immediate tasks alive */
	struct isd_held_list held;
	uint32_t n_held;                /* parked commands */
	uint32_t held_pdus;             /* parked PDUs: commands and their Data-Outs */
	uint64_t held_bytes;            /* their memory (isd_held_cost) */
	struct isd_scsi_nexus nexus;
	bool nexus_added;
	uint64_t login_ns;              /* when the login completed (isd_now_ns) */
	struct isd_io_stats io;         /* its SCSI commands (task alloc to task free) */
	TAILQ_ENTRY(isd_session) link;
};

enum isd_conn_state {
	ISD_CONN_LOGIN = 0,
	ISD_CONN_FFP,
	ISD_CONN_CLOSING,               /* ops->terminate called, notify pending */
	ISD_CONN_DEAD,                  /* terminate notified; waiting for task refs */
};

enum isd_auth_state {
	ISD_AUTH_START = 0,             /* no AuthMethod agreed yet */
	ISD_AUTH_NONE,                  /* AuthMethod=None agreed */
	ISD_AUTH_CHAP_WAIT_A,           /* AuthMethod=CHAP agreed, waiting for CHAP_A */
	ISD_AUTH_CHAP_WAIT_R,           /* challenge sent, waiting for CHAP_N/CHAP_R */
	ISD_AUTH_DONE,                  /* CHAP succeeded */
	ISD_AUTH_REJECTED,              /* nothing acceptable was offered */
};

/* Login phase state of one connection; freed when the login ends. */
struct isd_login {
	bool first_done;                /* the first request has been processed */
	int stage;                      /* current stage (CSG of the last request) */
	uint8_t isid[6];
	uint16_t tsih;
	uint16_t cid;
	uint32_t itt;
	uint32_t cmdsn;                 /* CmdSN of the first request: the session's ExpCmdSN */
	char iname[ISD_NAME_MAX];
	enum isd_session_type type;
	struct isd_tnode *node;
	const struct isd_auth_cfg *auth; /* points at auth_buf once the first request is in */
	struct isd_auth_cfg auth_buf;   /* the node's or discovery's, with the initiator's own
					 * credentials applied; zeroed when the login ends */
	struct isd_keys keys;
	enum isd_auth_state auth_state;
	struct isd_chap_target chap;
	bool sent_tpgt;
	uint32_t n_pdus;                /* requests seen (bounded) */
	/* request text accumulated over C=1 PDUs */
	uint8_t *req_buf;
	uint32_t req_len;
	/* response text not yet sent (our own C-bit continuation) */
	char *rsp_buf;
	uint32_t rsp_len;
	uint32_t rsp_off;
	uint8_t rsp_flags;              /* T/CSG/NSG of the response being continued */
};

/* Text exchange state (FFP): an accumulated request or a response being paged out. */
struct isd_text_state {
	uint32_t itt;
	uint32_t ttt;                   /* ISD_RSVD_TAG when no exchange is open */
	uint8_t *req_buf;
	uint32_t req_len;
	char *rsp_buf;
	uint32_t rsp_len;
	uint32_t rsp_off;
};

struct isd_conn {
	struct isd_iscsi_tgt *tgt;
	const struct isd_dm_ops *ops;
	struct isd_reactor *reactor;
	struct isd_conn_info info;
	enum isd_conn_state state;
	int refs;                       /* atomic: isd_conn_get/put */
	struct isd_session *sess;
	/* the node its login or session refers to, for isd_iscsi_tgt_node_busy
	 * from reactor 0 (tgt lock) */
	const struct isd_tnode *node;
	/* a last put on another reactor posts the free here (once) */
	struct isd_reactor_msg free_msg;
	/* isd_conn_close_any from another reactor posts the close here; close_posted
	 * (atomic) is set once, by the first such close, so one is ever in flight */
	struct isd_reactor_msg close_msg;
	bool close_posted;
	struct isd_params params;       /* in force (RFC defaults during login) */
	struct isd_dm_conn dmc;         /* what the datamover sees of it (dm.h) */
	uint16_t cid;
	uint32_t stat_sn;               /* next StatSN to assign */
	uint32_t exp_stat_sn;
	bool login_counted;             /* logins_ok/logins_failed already counted */
	bool in_login_count;            /* counted in stats.login_connections */
	struct isd_login *login;
	struct isd_timer login_timer;
	/* NOP-In pings */
	struct isd_timer nop_timer;
	struct isd_timer nop_timeout_timer;
	uint64_t last_rx_ns;
	uint64_t ping_sent_ns;
	uint32_t ping_ttt;
	bool ping_outstanding;
	struct isd_text_state text;
	struct isd_task_list tasks;
	/* the same tasks by ITT (task_bucket): each command looks for its ITT
	 * among the live ones, which a walk of `tasks` made cost a deep queue */
	struct isd_task_list itt_hash[ISD_ITT_BUCKETS];
	uint64_t task_seq;              /* tasks ever created (isd_task.seq) */
	uint32_t aborted_itt[ISD_ABORTED_RING];
	unsigned int aborted_pos;
	bool logged_out;
	/* command data buffers: from the datamover (iSER: registered memory) when it
	 * offers them, else malloc; counted against max_session_buffer_bytes. The
	 * template of every task's buf_ops (whose ctx is the task). */
	struct isd_scsi_buf_ops buf_ops;
	uint64_t buf_bytes;             /* allocated through buf_ops now */
	/* an Async logout request was sent: closed when this fires (live.c) */
	struct isd_timer logout_timer;
	bool logout_requested;
	TAILQ_ENTRY(isd_conn) link;
	/* datamover private area follows, aligned */
	_Alignas(16) uint8_t dm_priv[];
};

enum isd_task_state {
	ISD_TASK_NEW = 0,
	ISD_TASK_UNSOL,                 /* waiting for unsolicited Data-Out */
	ISD_TASK_GET_DATA,              /* get_data in progress */
	ISD_TASK_EXEC,                  /* SCSI exec in flight */
	ISD_TASK_PUT_DATA,              /* put_data in progress */
	ISD_TASK_DONE,
};

struct isd_tmf_wait;

struct isd_task {
	struct isd_conn *conn;
	enum isd_task_state state;
	uint32_t itt;
	uint32_t cmdsn;
	uint64_t seq;                   /* the connection's task count at its birth: an abort
					 * posted from another reactor finds it by (address, seq) */
	uint64_t lun;
	bool immediate;
	bool setup_done;                /* setup (or the core) completed the command already */
	bool setup_ok;                  /* setup returned READY: release() is owed */
	bool aborted;                   /* no response will be sent */
	uint32_t edtl;
	uint32_t unsol_limit;           /* immediate + unsolicited Data-Out may reach this */
	uint32_t unsol_got;             /* contiguous bytes received unsolicited */
	uint32_t unsol_datasn;          /* next expected DataSN of the unsolicited burst */
	bool data_bad;                  /* some Data-Out failed its data digest: never run */
	struct isd_tmf_wait *tmf_wait;  /* TMF response waiting for this task's exec */
	uint64_t start_ns;              /* arrival, for the session's latency figures */
	struct isd_scsi_cmd cmd;
	struct isd_scsi_buf_ops buf_ops;        /* conn's buf_ops with ctx = this task */
	struct isd_pdu *held_pdu;       /* command PDU whose immediate data is cmd's buffer */
	uint8_t cdb[260];
	struct isd_dm_task dmt;         /* what the datamover sees of it (dm.h) */
	TAILQ_ENTRY(isd_task) link;
	TAILQ_ENTRY(isd_task) itt_link; /* in conn->itt_hash */
	_Alignas(16) uint8_t dm_priv[];
};

/*
 * A TMF response held until the aborted tasks' in-flight I/O has finished; or,
 * for aborts the SCSI layer asked for (PREEMPT AND ABORT, fencing), the
 * completion of the command that asked (rsp NULL, drained set).
 *
 * The aborted tasks may live on other reactors: each holds the wait (pending,
 * atomic) from its own thread, and whoever drops the last hold hands the end
 * of it to `home`, the reactor of the connection that asked (or, for a fence
 * no command of ours asked for, the reactor that began it).
 */
struct isd_tmf_wait {
	struct isd_conn *conn;          /* holds a reference */
	struct isd_pdu *rsp;
	void (*drained)(struct isd_scsi_cmd *cmd);
	struct isd_scsi_cmd *drained_cmd;
	int pending;                    /* atomic: holds */
	bool close_node;                /* TARGET COLD RESET: close the node's connections after */
	struct isd_tnode *node;
	struct isd_reactor *home;       /* where it ends (NULL: wherever the last hold drops) */
	struct isd_reactor_msg msg;     /* the end, posted home */
};

/* tgt.c */
/* A connection was freed (on its reactor): runs conn_gone_cb and completes a
 * pending shutdown on t->reactor, posted there from another reactor. */
void isd_tgt_conn_gone(struct isd_iscsi_tgt *t);
/* 0.0.0.0, ::, or no address: a portal listening on every address. */
bool isd_tgt_wildcard_host(const char *host);

/* The core's objects around what a datamover sees of them. */
static inline struct isd_conn *
isd_conn_of(struct isd_dm_conn *dc)
{
	return (struct isd_conn *)((char *)dc - offsetof(struct isd_conn, dmc));
}

static inline struct isd_task *
isd_task_of(struct isd_dm_task *dt)
{
	return (struct isd_task *)((char *)dt - offsetof(struct isd_task, dmt));
}

/* The upcalls of dm.h as the target core implements them (conn.c, task.c, tmf.c);
 * the table is dm_up.c. */
extern const struct isd_dm_upcalls isd_conn_dm_upcalls;
void isd_conn_control_notify(struct isd_dm_conn *dc, struct isd_pdu *pdu);
void isd_conn_pdu_error_notify(struct isd_dm_conn *dc, const uint8_t *bhs, int reason);
void isd_conn_data_completion_notify(struct isd_dm_conn *dc, struct isd_dm_task *dt, int status);
void isd_conn_terminate_notify(struct isd_dm_conn *dc, int reason);
void isd_conn_fence_hold(struct isd_tmf_wait *fence);
void isd_conn_fence_release(struct isd_tmf_wait *fence);
void isd_conn_stamp_sn(struct isd_dm_conn *dc, uint8_t *bhs);
void isd_conn_count_copy(struct isd_dm_conn *dc, uint64_t bytes);

/* conn.c */
/* The connection leaves the login phase (full feature phase, or closing). */
void isd_conn_login_ended(struct isd_conn *c);
/* From any thread, on a connection known to be alive (a reference held, or found
 * under the table lock, see isd_conn_tryget). */
void isd_conn_get(struct isd_conn *c);
/* From any thread; the last one frees c on c->reactor (posted there if need be). */
void isd_conn_put(struct isd_conn *c);
/* A reference unless the count already reached 0 (c is being freed): for a
 * connection found in t->conns or through a session, under the table lock. */
bool isd_conn_tryget(struct isd_conn *c);
/* Core-initiated close: ops->terminate once; later terminate notify tears down.
 * On c's reactor only. */
void isd_conn_close(struct isd_conn *c);
/*
 * Closes c from any thread: at once on c->reactor (or where one thread runs
 * everything: one reactor, isd_monitor_threaded() false, or a thread that runs
 * no reactor), otherwise posted to c->reactor with a reference that the close
 * drops there. The caller knows c is alive (holds a reference, or found it
 * under the table lock and took one with isd_conn_tryget). Allocates nothing:
 * the message is embedded, and a close already posted is not posted again.
 */
void isd_conn_close_any(struct isd_conn *c);
/* Posts c's close to c->reactor even from c->reactor itself: for a caller that
 * holds the table lock (c found in t->conns), where closing in place could
 * re-enter the core. Does nothing when c is being freed or a close is posted. */
void isd_conn_post_close(struct isd_conn *c);
/* Passes a PDU to the datamover; on failure the connection is closed. */
int isd_conn_send(struct isd_conn *c, struct isd_pdu *pdu);
/* Passes task t's final SCSI Response (ops->send_response, else send_control). */
int isd_conn_send_response(struct isd_conn *c, struct isd_task *t, struct isd_pdu *pdu);
void isd_conn_release_pdu(struct isd_conn *c, struct isd_pdu *pdu);
/* Counts payload the core copied from a receive buffer straight into a RAM LU. */
void isd_conn_count_placed(struct isd_conn *c, uint64_t bytes);
bool isd_conn_can_send(const struct isd_conn *c);
/* Largest data segment we accept / may send in one PDU (iSER: RFC 7145 §6.2, §6.3). */
uint32_t isd_conn_rx_dsl(const struct isd_conn *c);
uint32_t isd_conn_tx_dsl(const struct isd_conn *c);
/* Allocates a response PDU with room for data_cap bytes; NULL on failure (caller closes). */
struct isd_pdu *isd_conn_pdu_alloc(struct isd_conn *c, uint8_t opcode, uint32_t data_cap);
/* Fills StatSN (advancing it when `advance`), ExpCmdSN, MaxCmdSN. */
void isd_conn_fill_sn(struct isd_conn *c, uint8_t *bhs, bool advance);
void isd_conn_ffp_rx(struct isd_conn *c, struct isd_pdu *pdu);
void isd_conn_abort_all_tasks(struct isd_conn *c);
void isd_conn_remember_aborted(struct isd_conn *c, uint32_t itt);

/* login.c */
void isd_login_rx(struct isd_conn *c, struct isd_pdu *pdu);
void isd_login_free(struct isd_conn *c);
void isd_login_timeout(void *arg);

/* session.c */
/* The lookups and create walk and change the session table: the caller holds
 * isd_tgt_lock (or runs with every other reactor paused, for the lookups). */
struct isd_session *isd_session_find_tsih(struct isd_iscsi_tgt *t, uint16_t tsih);
struct isd_session *isd_session_find(struct isd_iscsi_tgt *t, const char *iname,
				     const uint8_t *isid, const struct isd_tnode *node);
int isd_session_create(struct isd_iscsi_tgt *t, struct isd_conn *c, struct isd_login *l,
		       struct isd_session **out);
/* Takes the session out of the table; isd_session_unlink takes the lock itself,
 * the _locked one is for a caller that holds it (a reinstating login, which may
 * run on another reactor than s's connection). */
void isd_session_unlink(struct isd_session *s);
void isd_session_unlink_locked(struct isd_session *s);
/* Ends the session's I_T nexus in the SCSI layer (its SPC-2 reservations, unit
 * attentions); once only, at logout or at the latest when the session goes. */
void isd_session_nexus_end(struct isd_session *s);
void isd_session_destroy(struct isd_session *s);
void isd_session_update_window(struct isd_session *s);

/* cmdsn.c */
void isd_cmdsn_rx(struct isd_conn *c, struct isd_pdu *pdu);
bool isd_cmdsn_hold_data_out(struct isd_conn *c, struct isd_pdu *pdu);
void isd_cmdsn_flush(struct isd_conn *c);
struct isd_held *isd_cmdsn_find_held(struct isd_session *s, uint32_t itt);
/* ABORT TASK of a command not delivered (parked, or not received yet): true when it
 * counts as aborted ("Function complete"), see cmdsn.c. */
bool isd_cmdsn_abort(struct isd_conn *c, uint32_t itt, uint32_t refcmdsn, uint32_t tmf_cmdsn);

/* task.c */
void isd_task_scsi_cmd_rx(struct isd_conn *c, struct isd_pdu *pdu);
void isd_task_data_out_rx(struct isd_conn *c, struct isd_pdu *pdu);
void isd_task_data_out_digest_error(struct isd_conn *c, const uint8_t *bhs);
struct isd_task *isd_task_find(struct isd_conn *c, uint32_t itt);
/* Abandons a task: no response; frees it now, or when its exec completes. Returns
 * true if its completion is still pending (exec in flight). */
bool isd_task_abort(struct isd_task *task, struct isd_tmf_wait *w);
void isd_task_free(struct isd_task *task);

/* tmf.c */
void isd_tmf_rx(struct isd_conn *c, struct isd_pdu *pdu);
void isd_tmf_wait_done(struct isd_tmf_wait *w);
/* Lets the SCSI device server abort tasks of this target's sessions on `dev`. */
void isd_tmf_register_dev(struct isd_iscsi_tgt *t, struct isd_scsi_dev *dev);

/* text.c */
void isd_text_rx(struct isd_conn *c, struct isd_pdu *pdu);
void isd_text_reset(struct isd_conn *c);
int isd_text_send_targets(struct isd_conn *c, const char *value, struct isd_text_buf *out);

/* nop.c */
void isd_nop_out_rx(struct isd_conn *c, struct isd_pdu *pdu);
void isd_nop_start(struct isd_conn *c);
void isd_nop_tick(void *arg);
void isd_nop_timeout(void *arg);
void isd_nop_stop(struct isd_conn *c);

/* logout.c */
void isd_logout_rx(struct isd_conn *c, struct isd_pdu *pdu);

/* live.c */
void isd_live_logout_timeout(void *arg);

/* reject.c */
void isd_reject_send(struct isd_conn *c, const uint8_t *bhs, uint8_t reason);

#endif
