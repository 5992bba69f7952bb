/*
 * iSER datamover internals. The first half is pure logic (iser_plan.c): work
 * request planning, receive checks and sizing, send credits, the 128-byte rule.
 * It touches no verbs object and is unit-tested without a device. The second
 * half is the per-connection state used by iser_conn.c/iser_rx.c/iser_tx.c.
 */
#ifndef ISD_DM_ISER_INT_H
#define ISD_DM_ISER_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>
#include <sys/uio.h>

#include <infiniband/verbs.h>
#include <rdma/rdma_cma.h>

#include "iscsi/dm.h"
#include "dm/iser/iser_dm.h"
#include "dm/iser/iser_proto.h"
#include "iscsi/keys.h"
#include "iscsi/pdu.h"
#include "rdma/rdma_regcache.h"
#include "reactor/reactor.h"

/* ---- limits ---- */

#define ISD_ISER_LOGIN_DATA 8192        /* login/text data both ways (docs/iser.md W4) */
#define ISD_ISER_AHS_ROOM 264           /* ext-CDB (up to 244+4) + bidi read length (8), rounded */
/* Data bytes a Linux ib_iser / libiscsi initiator can take in one FFP receive (§4.5). */
#define ISD_ISER_INI_FFP_DATA 128
#define ISD_ISER_MAX_SGE 8              /* SGEs per RDMA WR we ever build */
/* one kick's batch (iser_tx.c): a full Put chunk (64 RDMA WRs) and its Send fit
 * an empty one with room to spare; a kick that gathers more posts it and goes on */
#define ISD_ISER_BATCH_WRS 80
#define ISD_ISER_BATCH_SGES (ISD_ISER_BATCH_WRS * ISD_ISER_MAX_SGE)
#define ISD_ISER_WR_BYTES (1u << 20)    /* bytes per RDMA Write/Read WR */
#define ISD_ISER_QUEUE_DEPTH 128        /* commands we size the QP for */
#define ISD_ISER_WRS_PER_CMD 4          /* RDMA WRs we plan for per command when sizing */
#define ISD_ISER_TX_SMALL 160           /* small send descriptors (responses, NOP-In...) */
#define ISD_ISER_TX_SMALL_DATA 512
#define ISD_ISER_TX_BIG 4               /* big send descriptors (login, text) */
#define ISD_ISER_UNEXPECTED_MAX 2       /* NOP-In pings / Async / Reject in flight (§4.5) */
#define ISD_ISER_RX_MAX 256             /* FFP receives per connection, at most */
#define ISD_ISER_RX_MIN 16
#define ISD_ISER_RX_DISCOVERY 8
/* FFP receives beyond the CmdSN window: immediate NOP-Outs, TMFs, Logout, Text,
 * unsolicited Data-Outs in flight */
#define ISD_ISER_RX_SLACK 16
#define ISD_ISER_READS_MAX 16           /* outstanding RDMA Reads we track, whatever ORD says */
#define ISD_ISER_CQ_BUDGET 64           /* completions per poll round */
/* Empty poll passes, one per reactor turn, before the CQ is armed again: while
 * completions keep coming the connection polls instead of paying for an arm
 * and a wakeup per batch (bounded busy polling) */
#define ISD_ISER_POLL_SPINS 2
#define ISD_ISER_DRAIN_MS 5000          /* bound on waiting for flush completions */
/*
 * A send queue with work posted and no completion for this long (one to two
 * periods) is stalled: the connection is dropped. The RNR retry count of our
 * own QP is not ours to choose: the IB CM takes it from the initiator's REQ
 * (cm_req_handler), and a hostile initiator asks for 7, "retry for ever", then
 * posts no receives; on iWARP a peer can stop reading its TCP stream. The
 * core's NOP-In ping catches this only when nop_interval is not 0.
 */
#define ISD_ISER_TX_STALL_MS 15000
/*
 * Control PDUs (responses, NOP-Ins, rejects...) queued in software because
 * the send queue or the descriptors are exhausted. At the soft limit the
 * connection stops reposting the receives the core releases (the peer gets no
 * new credits, so it cannot make us generate more replies); below half of it
 * they are posted again. A peer can then add at most one reply per receive
 * still posted (ISD_ISER_RX_MAX); past the hard limit the connection is
 * dropped. A session within its CmdSN window queues at most one response per
 * command plus a few NOP-Ins, below the soft limit for queue depths up to 512.
 */
#define ISD_ISER_TXQ_SOFT 512
#define ISD_ISER_TXQ_SOFT_BYTES (1u << 20)
#define ISD_ISER_TXQ_MAX (ISD_ISER_TXQ_SOFT + ISD_ISER_RX_MAX + 64)
#define ISD_ISER_TXQ_MAX_BYTES (4u << 20)

/* ---- pure planning (iser_plan.c) ---- */

struct isd_iser_sge {
	uint64_t addr;
	uint32_t length;
};

/* One RDMA Write or Read: local SGEs and where it lands remotely. */
struct isd_iser_wr_plan {
	struct isd_iser_sge sge[ISD_ISER_MAX_SGE];
	int nsge;
	uint32_t remote_off;            /* from the first byte of the planned range */
	uint32_t bytes;
};

/*
 * Splits [offset, offset+length) of iov into WRs of at most max_sge SGEs and
 * max_wr_bytes bytes (SGEs never cross an iovec entry). Plans at most out_max
 * WRs; *covered gets the bytes they cover (less than length when out_max ran
 * out, or when iov ends early). Returns the WR count, or -EINVAL.
 */
int isd_iser_plan_wrs(const struct iovec *iov, int iovcnt, uint32_t offset, uint32_t length,
		      uint32_t max_sge, uint32_t max_wr_bytes, struct isd_iser_wr_plan *out,
		      int out_max, uint32_t *covered);

/* A received Send, checked (docs/iser.md W1, W9). */
struct isd_iser_rx_info {
	struct isd_iser_hdr hdr;
	uint32_t ahs_len;
	uint32_t dsl;
};
#define ISD_ISER_RX_HELLO 1
/*
 * Checks byte_len against the iSER header, BHS, AHS and DSL: at least 76 bytes,
 * and 76 + AHS + DSL <= byte_len <= 76 + AHS + DSL + 4 (peers may pad up to 3-4
 * bytes). Returns 0 for a control PDU, ISD_ISER_RX_HELLO for a Hello, -EINVAL
 * for anything malformed, -EPROTO for an iSER opcode a target never receives.
 */
int isd_iser_rx_check(const uint8_t *buf, uint32_t byte_len, struct isd_iser_rx_info *out);

/* Data bytes each FFP receive buffer must take for these negotiated values
 * (8192 to ISD_ISER_TRDSL_MAX). */
uint32_t isd_iser_rx_data_size(const struct isd_params *p);
/* Bytes of one receive buffer taking data_size data bytes (headers, AHS room, pad). */
size_t isd_iser_rx_buf_size(uint32_t data_size);
/*
 * Number of FFP receives to post for buffers of data_size bytes: as many as
 * `budget` bytes hold, between ISD_ISER_RX_MIN and ISD_ISER_RX_MAX, at most
 * rq_max. Memory: at most max(budget, ISD_ISER_RX_MIN buffers).
 */
uint32_t isd_iser_rx_count(const struct isd_params *p, uint32_t data_size, uint32_t rq_max,
			   uint64_t budget);

/* Queue sizes for one connection on a device. */
struct isd_iser_qp_size {
	uint32_t max_send_wr;
	uint32_t max_recv_wr;
	uint32_t max_send_sge;
	uint32_t max_recv_sge;
	uint32_t cq_depth;
	uint32_t wr_sge;                /* SGEs per RDMA Write */
	uint32_t rd_sge;                /* SGEs per RDMA Read (max_sge_rd; 1 on some iWARP) */
};
void isd_iser_qp_size(const struct ibv_device_attr *a, struct isd_iser_qp_size *out);
/* The same for an active connection: a command Send and a Data-Out Send in
 * flight for each of `depth` commands plus control Sends; a receive for each
 * one's response plus ISD_ISER_RX_SLACK; each queue's drain marker. */
void isd_iser_qp_size_active(const struct ibv_device_attr *a, uint32_t depth,
			     struct isd_iser_qp_size *out);
/*
 * The ORD for rdma_accept (RDMA Reads we may have in flight): min(the peer's
 * responder resources (its IRD), our max_qp_init_rd_atom), like LIO isert.
 * `ev` is the CONNECT_REQUEST's conn param, which rdma_cm hands over from the
 * receiver's point of view: the IB CM swaps the REQ's fields
 * (cm_format_req_event) and iw_cm maps the MPA IRD to it, so the peer's
 * responder resources arrive in ev->initiator_depth, and ev->responder_resources
 * is the peer's own initiator depth (Reads it would send us; 0 for libiscsi).
 */
uint8_t isd_iser_ord(const struct rdma_conn_param *ev, int dev_max_init_rd_atom);

/* Send-side credits of one connection. */
struct isd_iser_credits {
	uint32_t sq_size;               /* WRs the send queue holds (less the drain marker) */
	uint32_t sq_used;               /* WRs posted and not yet known complete */
	uint32_t ord;                   /* RDMA Reads allowed in flight */
	uint32_t reads;                 /* RDMA Reads in flight */
	uint32_t unexpected;            /* unexpected PDUs (NOP-In ping, Async, Reject) in flight */
};
void isd_iser_credits_init(struct isd_iser_credits *cr, uint32_t sq_size, uint32_t ord);
/* Takes n send-queue slots if free. */
bool isd_iser_credits_take_sq(struct isd_iser_credits *cr, uint32_t n);
void isd_iser_credits_put_sq(struct isd_iser_credits *cr, uint32_t n);
/* Takes one RDMA Read slot (and one SQ slot) if both are free. */
bool isd_iser_credits_take_read(struct isd_iser_credits *cr);
void isd_iser_credits_put_read(struct isd_iser_credits *cr);

/*
 * The stall check, every ISD_ISER_TX_STALL_MS: true when WRs are posted
 * (sq_used) and no send-side completion came since the last check (`done` is
 * a running count of them, `seen` its value then).
 */
bool isd_iser_tx_stalled(uint32_t sq_used, uint64_t done, uint64_t seen);

/* The software queue of control PDUs of one connection (see ISD_ISER_TXQ_SOFT). */
struct isd_iser_txq {
	uint32_t count;                 /* PDUs queued */
	uint32_t bytes;                 /* their headers and data */
	bool held;                      /* at the soft limit: receives are not reposted */
};
enum isd_iser_txq_verdict {
	ISD_ISER_TXQ_OK = 0,
	ISD_ISER_TXQ_HOLD,              /* queued; the soft limit was just reached */
	ISD_ISER_TXQ_FULL,              /* refused: past the hard limit (nothing accounted) */
};
/* Accounts one more PDU of `bytes`, unless it would pass the hard limit. */
enum isd_iser_txq_verdict isd_iser_txq_add(struct isd_iser_txq *q, uint32_t bytes);
/* One PDU of `bytes` left the queue. True when a hold ends (receives may be reposted). */
bool isd_iser_txq_del(struct isd_iser_txq *q, uint32_t bytes);

/*
 * Remote invalidation (RFC 7145 §5.1.2; docs/iser.md W3): whether this target
 * ends commands with Send with Invalidate. Only when the initiator sent the CM
 * header without SEND_W_INV_NOT_SUP (Linux ib_iser with register_always, its
 * default; libiscsi and iserinit set the flag: they register with ibv_reg_mr,
 * which cannot be invalidated remotely) and the device has the memory
 * management extensions. No private data (tgt-era initiators) means no, as LIO
 * decides. `enabled` is the target's own switch.
 */
bool isd_iser_remote_inv_ok(const struct isd_iser_cm *peer, bool dev_mem_mgt, bool enabled);
/*
 * The STag a command's SCSI Response invalidates: its only STag (read STag for
 * a read, write STag for a write that solicited data). None for a command with
 * no STag (no data, or all of it immediate: ib_iser then used its local DMA
 * key) and none for a bidirectional one (ib_iser checks the one key against
 * both directions' registrations and drops the connection on a mismatch).
 */
bool isd_iser_inv_stag(const struct isd_iser_hdr *h, uint32_t *rkey);

/* NOP-In ping (ITT reserved), Async Message, Reject: PDUs the initiator did not ask for. */
bool isd_iser_pdu_is_unexpected(const uint8_t *bhs);
/*
 * Makes an outgoing PDU's data segment fit `limit` bytes: a SCSI Response's
 * sense data is truncated (its 2-byte length and the DSL adjusted). Returns the
 * data length to send, or -EMSGSIZE for a PDU that cannot be shortened.
 */
int isd_iser_fit_data(uint8_t *bhs, uint8_t *data, uint32_t data_len, uint32_t limit);

/* ---- connection state (iser_conn.c, iser_rx.c, iser_tx.c) ---- */

struct isd_rdma_dev;
struct isd_rdma_cq;
struct isd_iser_conn;
struct rdma_cm_id;
struct rdma_event_channel;

/* What a wr_id points at. Every WR we post carries one of these. */
enum isd_iser_tag_type {
	ISD_ISER_TAG_RX = 1,            /* struct isd_iser_rx */
	ISD_ISER_TAG_TX,                /* struct isd_iser_tx: a Send */
	ISD_ISER_TAG_JOB,               /* struct isd_iser_job: its last RDMA WR of a post */
	ISD_ISER_TAG_READ,              /* struct isd_iser_read: one RDMA Read */
	ISD_ISER_TAG_DRAIN_SQ,          /* the send-queue drain marker */
	ISD_ISER_TAG_DRAIN_RQ,          /* the receive-queue drain marker */
};

struct isd_iser_tag {
	uint8_t type;                   /* enum isd_iser_tag_type */
};

/* A receive descriptor. Owned by the connection; the PDU inside is lent to the
 * core between control_notify and release_pdu. */
struct isd_iser_rx {
	struct isd_iser_tag tag;
	struct isd_iser_conn *ic;
	uint8_t *buf;                   /* registered; header + BHS + AHS + data */
	uint32_t size;
	uint32_t lkey;
	bool login;                     /* the login buffer */
	bool posted;
	bool lent;                      /* its PDU is with the core */
	bool rearm;                     /* login: the core answered the request in it with a
					 * non-final Login Response (login_response): post it
					 * again once the PDU is released */
	struct isd_iser_hdr hdr;        /* the iSER header of the PDU in the buffer */
	struct isd_pdu pdu;             /* last: it ends in a flexible array */
};

/* A send descriptor: one Send, with the PDU's headers and (copied) data. */
struct isd_iser_tx {
	struct isd_iser_tag tag;
	uint8_t *buf;                   /* registered */
	uint32_t cap;                   /* data bytes it holds after the 76 + AHS */
	uint32_t lkey;
	bool big;
	bool unexpected;                /* counts against credits.unexpected */
	uint32_t wrs;                   /* SQ slots its completion returns */
	struct isd_iser_job *job;       /* put_data whose response this is; active: the
					 * Data-Out sequence it carries a PDU of */
	struct isd_iser_areg *areg;     /* active: the registration its data SGE reads */
	TAILQ_ENTRY(isd_iser_tx) link;
};
TAILQ_HEAD(isd_iser_tx_list, isd_iser_tx);

enum isd_iser_job_kind {
	ISD_ISER_JOB_PUT = 0,           /* RDMA Writes, then the response Send */
	ISD_ISER_JOB_GET,               /* RDMA Reads */
	ISD_ISER_JOB_SEND,              /* a control PDU waiting for a descriptor (active:
					 * also a SCSI Command) */
	ISD_ISER_JOB_OUT,               /* active: unsolicited Data-Out PDUs as Sends */
};

/* One queued or running transfer (or a queued control PDU). Owned by the
 * connection, not the task: it outlives an abandoned task until its WRs are
 * complete. */
struct isd_iser_job {
	struct isd_iser_tag tag;        /* ISD_ISER_TAG_JOB */
	enum isd_iser_job_kind kind;
	struct isd_iser_conn *ic;
	struct isd_dm_task *task;       /* NULL once abandoned */
	struct isd_pdu *pdu;            /* SEND: the PDU; PUT: the response (may be NULL) */
	struct iovec iov[8];            /* the task buffer (PUT/GET) */
	int iovcnt;
	bool bounce_out;                /* PUT: iov is a registered bounce copy */
	void *bounce;                   /* registered bounce buffer, or NULL */
	uint32_t bounce_len;
	const struct iovec *orig_iov;   /* GET with bounce: where the data goes at the end */
	int orig_iovcnt;
	uint32_t orig_offset;
	uint32_t next;                  /* next local byte to plan (offset into iov) */
	uint32_t end;
	uint32_t rkey;
	uint64_t remote_va;             /* remote address of local offset `base_off` */
	bool inv;                       /* send the response with Invalidate of inv_rkey */
	uint32_t inv_rkey;
	uint32_t base_off;
	uint32_t inflight;              /* WRs/reads posted and not complete */
	uint32_t chunk_wrs;             /* PUT: SQ slots of the posted chunk */
	int status;                     /* first error */
	bool queued;                    /* on ic->pending */
	bool in_txq;                    /* SEND: counted in ic->txq (txq_bytes) */
	uint32_t txq_bytes;
	uint32_t tx_limit;              /* data bytes its Send may carry (ic->tx_limit when queued) */
	bool rsp_posted;
	void *deferred_buf;             /* the task's buffer, released by the core while WRs
					 * were in flight (buf_free): freed with the job */
	struct isd_tmf_wait *fence;     /* abandoned: the abort's answer, held until the WRs end */
	uint32_t deferred_len;
	/* active: the iSER header of a SCSI Command (STags), and the registration
	 * its immediate data (SEND) or its Data-Out PDUs (OUT) are read from */
	struct isd_iser_hdr ihdr;
	struct isd_iser_areg *areg;
	uint32_t ttt;                   /* OUT: Target Transfer Tag, next DataSN, bytes */
	uint32_t datasn;                /* per PDU at most */
	uint32_t max_pdu;
	/* GET on iWARP: the sink's registrations with remote write, for this
	 * command's bytes only; deregistered when the job is freed */
	struct ibv_mr *sink_mr[8];
	int sink_mrs;
	TAILQ_ENTRY(isd_iser_job) link;
};
TAILQ_HEAD(isd_iser_job_list, isd_iser_job);

/* One outstanding RDMA Read. */
struct isd_iser_read {
	struct isd_iser_tag tag;        /* ISD_ISER_TAG_READ */
	struct isd_iser_job *job;       /* NULL when the slot is free */
	uint32_t bytes;
};

/* Per-task area (isd_dmt_priv). */
struct isd_iser_task {
	uint32_t magic;
	struct isd_iser_hdr hdr;        /* from the command's iSER header */
	uint32_t first_sol;             /* first solicited offset: write VA points at it */
	bool first_sol_set;
	struct isd_iser_job *job;       /* transfer in progress */
	/* the transfer task_cleanup abandoned with WRs in flight: buf_free hands it
	 * the task's buffer. Valid until the task is freed, which dm.h says comes
	 * right after task_cleanup, before any completion can end the job. */
	struct isd_iser_job *abandoned;
	/* active */
	struct isd_iser_job *cmd;       /* its SCSI Command, queued and not posted yet */
	struct isd_iser_areg *areg;     /* its buffer's registration */
};
#define ISD_ISER_TASK_MAGIC 0x49534552u /* "ISER" */

/*
 * Active: the registration of one command's buffer: the target's STag for it
 * (RDMA Read of write data, RDMA Write of read data) and the lkey our Sends of
 * immediate and unsolicited data read it with. Refcounted: the task holds one
 * reference until task_cleanup, a queued job or posted Send that reads from it
 * one more, so that a Send in flight never reads memory already deregistered.
 */
struct isd_iser_areg {
	uint32_t refs;
	struct isd_regcache_ent *ent;   /* the caller's buffer (one contiguous range) */
	uint8_t *bounce;                /* or a registered copy of it */
	struct ibv_mr *bounce_mr;
	uint32_t len;                   /* bytes of the command's data */
	uint64_t base;                  /* address of its first byte */
	uint32_t lkey, rkey;
	TAILQ_ENTRY(isd_iser_areg) link;        /* ic->aregs */
};
TAILQ_HEAD(isd_iser_areg_list, isd_iser_areg);

enum isd_iser_state {
	ISD_ISER_CONNECTING = 0,        /* active: resolving, rdma_connect sent */
	ISD_ISER_ACCEPTING,             /* rdma_accept sent, no ESTABLISHED yet */
	ISD_ISER_ESTABLISHED,
	ISD_ISER_DRAINING,              /* disconnected; waiting for the flush markers */
	ISD_ISER_DEAD,                  /* drained; terminate notify sent or pending */
};

/* Per-connection state (isd_dmc_priv). Lives on the portal's reactor. */
struct isd_iser_conn {
	struct isd_dm_conn *conn;
	struct isd_reactor *r;
	enum isd_iser_state state;
	char peer[80];
	struct rdma_cm_id *id;
	struct rdma_event_channel *ch;  /* this connection's own CM channel */
	bool ch_on_reactor;
	bool placed;                    /* counted on its reactor (isd_reactor_conns) */
	/* passive: what the listener decided, for the accept on the chosen reactor */
	struct isd_reactor_msg start_msg;
	uint8_t ord;
	uint8_t rep[ISD_ISER_CM_LEN];
	struct isd_rdma_dev *dev;
	struct isd_rdma_cq *cq;
	bool qp_created;
	struct ibv_qp *qp;
	struct isd_iser_qp_size qs;
	struct isd_iser_credits cr;
	bool login_done;                /* login_response(final): FFP receives posted, the login
					 * buffer retired */
	uint32_t tx_limit;              /* data bytes a Send queued now may carry */
	bool discovery;
	bool remote_inv;                /* negotiated: responses may carry Send with Invalidate */
	uint64_t rx_budget;             /* bytes of FFP receive buffers (the portal's setting) */

	/* login buffer and send descriptors: one registered area */
	uint8_t *ctl_mem;
	size_t ctl_len;
	struct ibv_mr *ctl_mr;
	struct isd_iser_rx *login_rx;
	struct isd_iser_tx *tx_all;
	struct isd_iser_tx_list tx_free_small;
	struct isd_iser_tx_list tx_free_big;
	/* FFP receive buffers: one registered area */
	uint8_t *rx_mem;
	size_t rx_len;
	struct ibv_mr *rx_mr;
	struct isd_iser_rx **rx;
	uint32_t rx_count;
	uint32_t rx_posted;

	struct isd_iser_job_list pending;       /* waiting for descriptors or credits (FIFO) */
	struct isd_iser_txq txq;                /* the control PDUs among them: bounded */
	bool txq_hold_logged, txq_full_logged;  /* one line each per connection */
	struct isd_iser_job_list abandoned;     /* task gone, WRs still in flight */
	struct isd_iser_read reads[ISD_ISER_READS_MAX];
	uint32_t jobs;                  /* allocated jobs (leak check) */
	struct isd_iser_batch *batch;   /* WRs gathered by a kick, posted at its end */
	bool polling;                   /* in a CQ poll: kicks wait for its end */
	struct ibv_send_wr *unposted;   /* in the batch: refused by the provider, to be
					 * completed as flushed (unposted_timer) */
	struct isd_timer unposted_timer;

	/* teardown */
	struct isd_iser_tag drain_sq;
	struct isd_iser_tag drain_rq;
	bool drain_sq_done, drain_rq_done;
	bool disconnect_sent;
	bool closing;                   /* terminate(): flushing queued Sends, then disconnect */
	bool notified;
	int term_reason;
	bool logged_wc_error;
	struct isd_timer notify_timer;
	struct isd_timer drain_timer;
	struct isd_timer poll_timer;    /* continues a poll: out of budget, or spinning */
	uint8_t spins;                  /* empty passes since the last completion */
	struct isd_timer kick_timer;    /* deferred pending-queue run */
	struct isd_timer stall_timer;   /* send queue progress check (ISD_ISER_TX_STALL_MS) */
	uint64_t tx_done;               /* send-side completions, a running count */
	uint64_t tx_done_seen;          /* tx_done at the last stall check */

	/* active */
	bool connected_up;              /* isd_dm_connected(0) went up: terminate notify
					 * ends the connection, not isd_dm_connected */
	bool freed;                     /* free_conn ran (maybe inside an upcall) */
	struct isd_timer connect_timer;
	struct isd_regcache *rcache;    /* registrations of the caller's buffers */
	struct isd_iser_areg_list aregs;        /* every live one, freed with the connection */
};

/* iser_tx.c */
int isd_iser_tx_setup(struct isd_iser_conn *ic);
void isd_iser_tx_kick(struct isd_iser_conn *ic);
void isd_iser_tx_complete(struct isd_iser_conn *ic, struct isd_iser_tx *tx, int status);
void isd_iser_job_wr_complete(struct isd_iser_conn *ic, struct isd_iser_job *job, int status);
void isd_iser_read_complete(struct isd_iser_conn *ic, struct isd_iser_read *rd, int status);
void isd_iser_jobs_fail_pending(struct isd_iser_conn *ic);
void isd_iser_job_free(struct isd_iser_conn *ic, struct isd_iser_job *job);
/* Active: put_data's path on this role's connections. */
int isd_iser_active_put_data(struct isd_iser_conn *ic, struct isd_dm_task *t,
			     const struct isd_xfer *x);

/* iser_rx.c */
int isd_iser_rx_post(struct isd_iser_conn *ic, struct isd_iser_rx *rx);
int isd_iser_rx_setup_ffp(struct isd_iser_conn *ic, const struct isd_params *p);
/* Posts the receives withheld while the send queue was over its soft limit. */
void isd_iser_rx_resume(struct isd_iser_conn *ic);
void isd_iser_rx_complete(struct isd_iser_conn *ic, struct isd_iser_rx *rx, struct ibv_wc *wc);
/* Active: every receive posted before rdma_connect, of ISD_ISER_INI_RECV_DSL data
 * bytes each: login and full feature phase use the same ones. */
int isd_iser_rx_setup_active(struct isd_iser_conn *ic);

/* iser_conn.c */
/* Process-wide counters, bumped from any reactor: relaxed atomics. */
static inline void
isd_iser_stat_add(uint64_t *p, int64_t d)
{
	__atomic_fetch_add(p, (uint64_t)d, __ATOMIC_RELAXED);
}

extern uint64_t isd_iser_g_conns;       /* live connections of the passive role */
extern uint64_t isd_iser_g_jobs;        /* live jobs, every connection */
extern uint64_t isd_iser_g_bounced;     /* bytes copied through bounce buffers */
extern uint64_t isd_iser_g_conn_mrs;    /* live connection MRs */
extern uint64_t isd_iser_g_remote_inv;  /* responses sent with Invalidate */
extern uint64_t isd_iser_g_posts;       /* ibv_post_send calls on the send queue */
extern uint64_t isd_iser_g_posted_wrs;  /* work requests they carried */
extern uint64_t isd_iser_g_txq_holds;   /* send queue reached its soft limit: receives held */
extern uint64_t isd_iser_g_txq_drops;   /* connections dropped at the send queue's hard limit */
extern uint64_t isd_iser_g_tx_stalls;   /* connections dropped: send queue made no progress */
void isd_iser_conn_fail(struct isd_iser_conn *ic, int reason);
void isd_iser_conn_unposted(struct isd_iser_conn *ic, struct ibv_send_wr *first, int err);
/* Sets up the connection's timers with their callbacks (before any is started). */
void isd_iser_conn_init_timers(struct isd_iser_conn *ic);
/* The connection's state before its id exists (both roles). */
void isd_iser_conn_init(struct isd_iser_conn *ic, struct isd_dm_conn *c, struct isd_reactor *r);
void isd_iser_conn_poll(void *arg);
int isd_iser_set_nonblock(int fd);

/* iser_active.c */
int isd_iser_active_connect(struct isd_dm_conn *c, const char *host, uint16_t port);
/* A CM event of an active connection before ESTABLISHED. */
void isd_iser_active_cm_event(struct isd_iser_conn *ic, enum rdma_cm_event_type type,
			      int status);
void isd_iser_active_connect_timeout(void *arg);
/* The registration of t's buffer (t->iov, the larger of t->write_len and
 * t->read_len bytes): the caller's own memory through the cache when it is one
 * contiguous range, else a registered copy (written now for a write). One
 * reference for the caller. 0 or -errno (logged). */
int isd_iser_areg_get(struct isd_iser_conn *ic, struct isd_dm_task *t,
		      struct isd_iser_areg **out);
/* Takes a reference; drops one (the last frees the registration). */
void isd_iser_areg_ref(struct isd_iser_areg *a);
void isd_iser_areg_unref(struct isd_iser_conn *ic, struct isd_iser_areg *a);
/* free_conn: every registration, whatever its references; the cache. */
void isd_iser_active_free(struct isd_iser_conn *ic);
void isd_iser_mem_unregister(struct isd_dm_conn *c, const void *addr, size_t len);
/* The connection's own CM event channel (ic->ch, nonblocking). */
int isd_iser_conn_channel(struct isd_iser_conn *ic);
/* Puts ic->ch on the reactor: the connection's CM events from now on. */
int isd_iser_conn_watch(struct isd_iser_conn *ic);
/* CQ, QP (sized by ic->qs) and send descriptors on ic->dev for ic->id. */
int isd_iser_conn_create_qp(struct isd_iser_conn *ic, uint8_t ord);

/*
 * The ops of isd_iser_dm_ops (the table is in iser_conn.c): iser_tx.c and
 * iser_rx.c. Separate objects from the table, so tests can watch the seam
 * with ld --wrap (tests/unit/dmiser/test_fv_iser.wrap).
 */
int isd_iser_send_control(struct isd_dm_conn *c, struct isd_pdu *pdu);
int isd_iser_send_command(struct isd_dm_conn *c, struct isd_dm_task *t, struct isd_pdu *pdu);
int isd_iser_send_response(struct isd_dm_conn *c, struct isd_dm_task *t, struct isd_pdu *pdu);
int isd_iser_put_data(struct isd_dm_conn *c, struct isd_dm_task *t, const struct isd_xfer *x);
int isd_iser_get_data(struct isd_dm_conn *c, struct isd_dm_task *t, const struct isd_xfer *x);
void isd_iser_task_cleanup(struct isd_dm_conn *c, struct isd_dm_task *t, struct isd_tmf_wait *fence);
void isd_iser_task_init(struct isd_dm_conn *c, struct isd_dm_task *t, const struct isd_pdu *cmd);
void *isd_iser_buf_alloc(struct isd_dm_conn *c, uint32_t len);
void isd_iser_buf_free(struct isd_dm_conn *c, struct isd_dm_task *t, void *buf, uint32_t len);
void isd_iser_release_pdu(struct isd_dm_conn *c, struct isd_pdu *pdu);
void isd_iser_login_response(struct isd_dm_conn *c, const struct isd_params *negotiated, bool final);

#endif
