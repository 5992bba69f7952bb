/*
 * libiserd internals: the context (one session, one connection), the
 * per-command state, and the connection's calls (xport.c).
 *
 * Layering inside src/initiator:
 *   context.c  context, options, errors, event loop entry (service, timers)
 *   session.c  login (keys, CHAP), logout, discovery text, NOP, TMF, reconnect
 *   task.c     SCSI commands: CmdSN window, immediate/unsolicited data, R2T, Data-In, status
 *   xport.c    the connection: a datamover of src/dm (TCP or iSER, active role)
 *              on the context's reactor; the core's upcalls
 *   cdb.c      CDB builders and parsers (no iSCSI knowledge)
 *   sense.c    sense decoding and strings (no iSCSI knowledge)
 *   url.c      URL parsing
 *   sync.c     blocking twins (a poll() loop over the async calls)
 *
 * The session and task code meet the same datamovers the target uses
 * (iscsi/dm.h), through xport.c only: nothing in src/initiator makes a socket
 * or a verbs call.
 *
 * Ownership: a context is used from one thread. Everything in it is owned by
 * it; tasks and their buffers are the caller's, borrowed from submission to
 * completion.
 */
#ifndef ISD_INITIATOR_INIT_INT_H
#define ISD_INITIATOR_INIT_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>
#include <sys/uio.h>

#include "dm/iser/iser_dm.h"
#include "iscsi/chap.h"
#include "iscsi/dm.h"
#include "iscsi/keys.h"
#include "iscsi/pdu.h"
#include "iserd/iserd.h"

#ifndef TAILQ_FOREACH_SAFE
#define TAILQ_FOREACH_SAFE(var, head, field, tvar)                                                 \
	for ((var) = TAILQ_FIRST(head); (var) && ((tvar) = TAILQ_NEXT(var, field), 1);             \
	     (var) = (tvar))
#endif

#define ISD_INIT_DEFAULT_NAME "iqn.2026-11.org.iserd:initiator"
/* Most data we accept in one PDU (our MaxRecvDataSegmentLength). */
#define ISD_INIT_MAX_RECV_DSL 262144u
/* Data-Out sequences one command may have queued at once: the unsolicited
 * one and up to this many R2Ts (we offer MaxOutstandingR2T = this). */
#define ISD_INIT_MAX_R2T 8
/*
 * The CHAP algorithms we offer (CHAP_A) unless iserd_set_chap_algs() says
 * otherwise, always listed strongest first: SHA3-256 (8), SHA-256 (7), SHA-1
 * (6), MD5 (5) (RFC 7143 §12.1.3, RFC 9109). The target chooses; it must
 * choose one of those we offered.
 */
#define ISD_INIT_CHAP_OFFER_MASK                                                                   \
	(ISD_CHAP_ALG_BIT(ISD_CHAP_SHA3_256) | ISD_CHAP_ALG_BIT(ISD_CHAP_SHA256) |                \
	 ISD_CHAP_ALG_BIT(ISD_CHAP_SHA1) | ISD_CHAP_ALG_BIT(ISD_CHAP_MD5))
/* Bytes of our mutual CHAP challenge: as long as the longest digest. */
#define ISD_INIT_CHAP_CHALLENGE_LEN 32

struct isd_ictx;
struct isd_itask;

/* ---- commands ---- */

enum isd_itask_state {
	ISD_IT_FREE = 0,
	ISD_IT_WAITING, /* queued for the CmdSN window or a reconnect */
	ISD_IT_SENT,	/* on the wire, waiting for status */
	ISD_IT_DOOMED,	/* being failed by a connection loss (on no list) */
};

/* One outstanding SCSI command: a slot of ctx->slots. */
struct isd_itask {
	enum isd_itask_state state;
	uint32_t idx;
	uint32_t gen; /* ITT = gen << 16 | idx */
	uint32_t itt;
	uint32_t cmdsn;
	struct iserd_task *t;
	iserd_cb cb;
	void *cb_arg;
	uint32_t datain_sn; /* next expected DataSN */
	uint32_t datain_bytes;
	uint64_t lun_field; /* LUN as on the wire */
	uint32_t imm_len;   /* immediate data in the command PDU */
	struct isd_dm_task dmt; /* what the datamover sees of it (xport.c) */
	bool unsol_out;	    /* the unsolicited Data-Out sequence is queued */
	uint8_t r2t_out;    /* Data-Out sequences for R2Ts queued */
	TAILQ_ENTRY(isd_itask) link;		  /* ctx->waiting or ctx->sent */
};
TAILQ_HEAD(isd_itask_list, isd_itask);

/* ---- pending non-SCSI requests (login, logout, text, NOP, TMF) ---- */

enum isd_ireq_kind {
	ISD_IREQ_CONNECT = 0,
	ISD_IREQ_LOGOUT,
	ISD_IREQ_DISCOVER,
	ISD_IREQ_NOP,
	ISD_IREQ_TMF,
};
struct isd_ireq {
	enum isd_ireq_kind kind;
	uint32_t itt;
	iserd_cb cb;
	void *cb_arg;
	uint8_t tmf_function;
	uint8_t tmf_response;
	uint64_t tmf_lun;
	struct isd_itask *tmf_ref; /* ABORT TASK: the task */
	uint32_t tmf_ref_itt;
	char *text; /* DISCOVER: accumulated Text Response data */
	uint32_t text_len;
	bool internal; /* a keepalive ping: no callback */
	TAILQ_ENTRY(isd_ireq) link;
};
TAILQ_HEAD(isd_ireq_list, isd_ireq);

/* Data bytes we accept in one PDU over iSER (InitiatorRecvDataSegmentLength,
 * and MaxRecvDataSegmentLength of a discovery session): what each receive of
 * the iSER datamover's active role takes. */
#define ISD_INIT_ISER_RECV_DSL ISD_ISER_INI_RECV_DSL

/* ---- the context ---- */

enum isd_ictx_state {
	ISD_ICTX_IDLE = 0,	 /* no connection */
	ISD_ICTX_CONNECTING,	 /* TCP connect in progress */
	ISD_ICTX_LOGIN,		 /* login phase */
	ISD_ICTX_FFP,		 /* full feature phase */
	ISD_ICTX_LOGOUT,	 /* Logout Request sent */
	ISD_ICTX_RECONNECT_WAIT, /* connection lost; next attempt at a timer */
	ISD_ICTX_FAILED,	 /* lost for good */
};

enum isd_login_step {
	ISD_LS_SECURITY = 0, /* first request sent (AuthMethod) */
	ISD_LS_CHAP_A,	     /* CHAP_A sent, waiting for the challenge */
	ISD_LS_CHAP_R,	     /* CHAP_N/CHAP_R sent */
	ISD_LS_OPERATIONAL,  /* operational keys sent */
};

struct isd_ictx {
	/* configuration */
	char initiator_name[ISERD_NAME_MAX];
	iserd_log_fn log_fn;
	void *log_arg;
	enum iserd_log_level log_level;
	char chap_user[ISERD_SECRET_MAX];
	char chap_secret[ISERD_SECRET_MAX];
	char mchap_user[ISERD_SECRET_MAX];
	char mchap_secret[ISERD_SECRET_MAX];
	unsigned int chap_algs; /* ISD_CHAP_ALG_BIT()s we offer */
	enum iserd_digest hd_pref;
	enum iserd_digest dd_pref;
	uint32_t queue_depth;
	enum iserd_reconnect reconnect;
	uint32_t reconnect_max;
	uint32_t reconnect_interval_ms;
	uint32_t nop_interval_ms;
	uint32_t nop_timeout_ms;
	uint32_t login_timeout_ms;

	char err[512];

	/* session */
	struct iserd_url url;
	enum iserd_session_type stype;
	enum isd_ictx_state state;
	const struct isd_dm_ops *dm;	      /* the datamover (TCP or iSER) */
	struct isd_reactor *r;		      /* the datamover's loop (xport.c) */
	struct isd_init_dmc *dmc;	      /* the datamover's open connection */
	struct isd_init_dmc *dead;	      /* closed, freed at the end of service */
	uint8_t *task_privs;		      /* the datamover's area of each slot */
	uint8_t isid[6];
	uint16_t tsih;
	uint16_t cid;
	uint32_t cmdsn; /* next CmdSN to use */
	uint32_t exp_cmdsn;
	uint32_t max_cmdsn;
	uint32_t exp_statsn;
	uint32_t next_itt;	  /* for non-SCSI requests (high bit set) */
	struct isd_params params; /* negotiated */
	struct iserd_negotiated neg;
	uint16_t login_status;
	bool ever_logged_in;
	uint32_t reconnects;
	uint32_t reconnect_attempt;

	/* login */
	enum isd_login_step lstep;
	uint8_t login_csg;
	struct isd_text_buf login_reply; /* answers to keys the target offered */
	uint8_t chap_alg; /* the CHAP_A the target chose (0: no CHAP) */
	uint8_t mchap_id;
	/* our last mutual CHAP challenge; kept across logins so that a target
	 * that plays it back to us later is caught (mchap_sent: it is valid) */
	uint8_t mchap_chal[ISD_INIT_CHAP_CHALLENGE_LEN];
	bool mchap_sent;
	char *login_text; /* accumulated Login Response text (C bit) */
	uint32_t login_text_len;
	uint64_t login_deadline_ns;
	uint32_t login_itt;
	bool offered_hd, offered_dd;

	/* requests */
	struct isd_ireq *connect_req; /* user connect or internal reconnect (cb NULL) */
	struct isd_ireq_list reqs;    /* logout/discover/nop/tmf waiting for a response */

	/* commands */
	struct isd_itask *slots;
	uint32_t nslots;
	uint32_t nfree;
	uint32_t *free_stack;
	struct isd_itask_list waiting; /* not yet sent (window closed, reconnecting) */
	struct isd_itask_list sent;

	/* timers (monotonic ns, 0 = off) */
	uint64_t last_rx_ns;
	uint64_t nop_sent_ns;
	uint64_t reconnect_at_ns;

	/* deferred completions: the user's callbacks never run inside their call,
	 * and a failure detected inside a call waits here until service */
	int pending_fail; /* -errno: fail the connection at the next service */
	bool in_service;
};

/* iserd_context is the public name of the same object. */
struct iserd_context {
	struct isd_ictx c;
};

/* SAM-5 §4.7: peripheral addressing below 256, flat addressing up to 16383. */
static inline uint64_t
isd_init_lun_field(uint64_t lun)
{
	if (lun < 256)
		return lun << 48;
	return (0x4000 | (lun & 0x3fff)) << 48;
}

/* context.c */
void isd_init_set_error(struct isd_ictx *ctx, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void isd_init_log(struct isd_ictx *ctx, enum iserd_log_level lvl, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
uint64_t isd_init_now_ns(void);
static inline struct iserd_context *
isd_init_pub(struct isd_ictx *c)
{
	return (struct iserd_context *)c;
}

/* session.c */
int isd_init_login_start(struct isd_ictx *ctx);
/* Called by the transport with each received PDU (bhs, ahs, data in pdu). */
int isd_init_rx_pdu(struct isd_ictx *ctx, struct isd_pdu *pdu);
/* The transport's connect finished (0) or failed (-errno). */
void isd_init_connected(struct isd_ictx *ctx, int rc);
/* The connection failed: fail or requeue tasks, maybe schedule a reconnect. */
void isd_init_conn_failed(struct isd_ictx *ctx, int rc);
void isd_init_timers(struct isd_ictx *ctx);
void isd_init_sn_update(struct isd_ictx *ctx, const uint8_t *bhs);
void isd_init_statsn_update(struct isd_ictx *ctx, const uint8_t *bhs);
void isd_init_fail_reqs(struct isd_ictx *ctx, int rc);
struct isd_pdu *isd_init_ctl_pdu(struct isd_ictx *ctx, uint8_t opcode, uint32_t data_len);
void isd_init_send_pdu(struct isd_ictx *ctx, struct isd_pdu *pdu);

/* xport.c: the connection, through a datamover (TCP or iSER) */
struct isd_init_dmc;
int isd_init_x_setup(struct isd_ictx *ctx);
/* Gives each command slot its datamover area (task.c, with the slots). */
int isd_init_x_slots_bind(struct isd_ictx *ctx);
void isd_init_x_slots_unbind(struct isd_ictx *ctx);
void isd_init_x_fini(struct isd_ictx *ctx);
int isd_init_x_connect(struct isd_ictx *ctx);
void isd_init_x_disconnect(struct isd_ictx *ctx);
/* TCP on a socket already connected (tests: one end of a socketpair). 0 or -errno. */
int isd_init_x_adopt_tcp(struct isd_ictx *ctx, int fd);
/* The open datamover connection, or NULL (tests look at its state). */
struct isd_dm_conn *isd_init_x_dmc(struct isd_ictx *ctx);
void isd_init_x_send_pdu(struct isd_ictx *ctx, struct isd_pdu *pdu);
/* Sends the SCSI Command of a task (+ immediate data, it->imm_len) and its
 * unsolicited Data-Out up to unsol_end. */
void isd_init_x_send_cmd(struct isd_ictx *ctx, struct isd_itask *it, uint32_t unsol_end);
/* Answers an R2T with a Data-Out sequence; -EPROTO past MaxOutstandingR2T. */
int isd_init_x_r2t(struct isd_ictx *ctx, struct isd_itask *it, uint32_t ttt, uint32_t off,
		   uint32_t len);
/* The task ends (or goes back to waiting): the datamover gives back what it holds of it. */
void isd_init_x_detach(struct isd_ictx *ctx, struct isd_itask *it);
void isd_init_x_enable(struct isd_ictx *ctx);
int isd_init_x_get_fd(const struct isd_ictx *ctx);
int isd_init_x_which_events(const struct isd_ictx *ctx);
int isd_init_x_next_timeout_ms(const struct isd_ictx *ctx);
void isd_init_x_service(struct isd_ictx *ctx, int revents);

/* task.c */
/* The BHS of a task's SCSI Command (F set unless unsolicited Data-Out follows). */
void isd_init_cmd_bhs(struct isd_ictx *ctx, struct isd_itask *it, bool unsol_follows,
		      uint8_t *bhs);
int isd_init_slots_alloc(struct isd_ictx *ctx);
void isd_init_slots_free(struct isd_ictx *ctx);
/* Sends waiting tasks while the CmdSN window allows. */
void isd_init_kick(struct isd_ictx *ctx);
struct isd_itask *isd_init_task_by_itt(struct isd_ictx *ctx, uint32_t itt);
int isd_init_rx_scsi_rsp(struct isd_ictx *ctx, struct isd_pdu *pdu);
int isd_init_rx_r2t(struct isd_ictx *ctx, struct isd_pdu *pdu);
/* Data-In header arrived: validate, point the transport at the task buffer. */
int isd_init_rx_datain_hdr(struct isd_ictx *ctx, const uint8_t *bhs, struct isd_itask **out,
			   uint32_t *offset);
/* Data-In fully received (payload already in the buffer). */
int isd_init_rx_datain_done(struct isd_ictx *ctx, struct isd_itask *it, const uint8_t *bhs);
/* Completes a task with rc (0: status present in the task). */
void isd_init_task_done(struct isd_ictx *ctx, struct isd_itask *it, int rc);
/* Connection lost: fails (rc) or requeues every sent/waiting task. */
void isd_init_tasks_conn_lost(struct isd_ictx *ctx, int rc, bool retry);

#endif
