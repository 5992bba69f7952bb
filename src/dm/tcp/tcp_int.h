/*
 * TCP datamover internals: per-connection and per-task state, and the pure
 * framing helpers of tcp_frame.c (no I/O, no core calls: unit-testable alone).
 */
#ifndef ISD_DM_TCP_INT_H
#define ISD_DM_TCP_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>
#include <sys/uio.h>

#include "iscsi/dm.h"
#include "iscsi/pdu.h"
#include "reactor/reactor.h"

#define ISD_TCP_DIGEST_LEN 4
/* R2Ts one task keeps in flight at most, whatever MaxOutstandingR2T allows (fewer is legal). */
#define ISD_TCP_TASK_R2T_MAX 4
/* Outstanding R2Ts per connection (the TTT table); tasks wait for a slot beyond this. */
#define ISD_TCP_TTT_SLOTS 256
/* iovec entries one outgoing PDU may use; a Data-In is shortened to fit. */
#define ISD_TCP_TX_IOV_MAX 64
/* Data bytes of the PDU an active connection keeps aside for the next small one. */
#define ISD_TCP_RX_SPARE_DATA 512
/* iovec entries one sendmsg gathers, over as many queued PDUs as fit. */
#define ISD_TCP_TX_GATHER 256
/*
 * Receive budget per readiness event, for fairness between connections, and
 * so that a deep queue on one connection is answered in pieces: the responses
 * to what a turn took leave at its end (the kick runs at turn end) while the
 * initiator's next commands are still coming, instead of the whole queue in
 * one lock-step batch each way. 8 against 16 (a pass that stops at the budget
 * with bytes staged runs once more in the same turn, so a turn takes up to
 * twice this): 4 KiB writes at QD32 on one session 253K -> 359K IOPS and
 * reads 376K -> 399K on host loopback, 16 sessions x QD8 unchanged; 4 cost
 * more turns than it saved at 16 sessions (docs/performance.md).
 */
#define ISD_TCP_RX_PDU_BUDGET 8
/* An initiator's connection is alone on its context's reactor: a longer turn. */
#define ISD_TCP_RX_PDU_BUDGET_ACTIVE 256
#define ISD_TCP_RX_BYTE_BUDGET (1u << 20)
/*
 * Receive staging: what is left of a stage under this size is read with one
 * recv of this size into the connection's staging buffer, which then holds the
 * starts of the PDUs that follow (a batch of SCSI Commands, small Data-Outs)
 * and is handed out by copying: one recv for many PDUs instead of one each.
 * Larger remainders (a big Data-Out) are read straight into place.
 */
#define ISD_TCP_RX_STAGE 16384
/* Send budget per event. */
#define ISD_TCP_TX_BYTE_BUDGET (4u << 20)
/* A data segment this far over our limit is not worth skipping: drop the connection. */
#define ISD_TCP_DISCARD_SLACK (1u << 20)
/* Commands one CmdSN window may hold (the largest queue_depth): see txq_hard_limit. */
#define ISD_TCP_TXQ_WINDOW 4096
/* How long terminate() keeps flushing queued PDUs before closing anyway. */
#define ISD_TCP_FLUSH_MS 1000

/* ---- pure framing (tcp_frame.c) ---- */

/* Fills a Data-In BHS without status (ExpCmdSN/MaxCmdSN are stamped by the caller). */
void isd_tcp_frame_datain(uint8_t *bhs, uint32_t itt, uint64_t lun, uint32_t datasn,
			  uint32_t offset, uint32_t len, bool final);
/*
 * True if rsp (a SCSI Response) may ride on the last Data-In (RFC 7143
 * §11.7.4: only without sense data and without an exception: response
 * "Command Completed" and status GOOD/CONDITION MET/INTERMEDIATE(-CM)).
 */
bool isd_tcp_frame_can_collapse(const struct isd_pdu *rsp);
/* Sets F|S, status, U/O, StatSN/ExpCmdSN/MaxCmdSN and residual from rsp's BHS. */
void isd_tcp_frame_collapse(uint8_t *bhs, const uint8_t *rsp_bhs);
/* Fills an R2T BHS (StatSN/ExpCmdSN/MaxCmdSN are stamped by the caller). */
void isd_tcp_frame_r2t(uint8_t *bhs, uint32_t itt, uint64_t lun, uint32_t ttt, uint32_t r2tsn,
		       uint32_t offset, uint32_t len);

/* One outstanding R2T, as the solicited Data-Out check sees it. */
struct isd_tcp_r2t {
	uint32_t ttt;
	uint32_t offset;                /* BufferOffset of the R2T */
	uint32_t length;                /* DesiredDataTransferLength */
	uint32_t received;              /* bytes accepted so far (in order) */
	uint32_t next_datasn;           /* DataSN the next Data-Out must carry */
	bool in_use;
};

/*
 * Checks a solicited Data-Out BHS against its R2T: ITT, in-order BufferOffset
 * inside the R2T's range, DataSN, and the F bit only on the last PDU of the
 * sequence. Returns 0 or an ISD_REJECT_* reason. Does not update the R2T.
 */
int isd_tcp_frame_check_dataout(const struct isd_tcp_r2t *r2t, uint32_t itt, const uint8_t *bhs);

/* ---- connection and task state (tcp_conn.c) ---- */

enum isd_tcp_tx_kind {
	ISD_TCP_TX_PDU = 0,             /* a PDU from send_control (freed when sent) */
	ISD_TCP_TX_R2T,                 /* an R2T header we built */
	ISD_TCP_TX_DATAIN,              /* a put_data: Data-In PDUs built one at a time, then rsp;
					 * on an active connection Data-Out PDUs */
};

/* One item of the send FIFO. Owned by the connection; freed when written or dropped. */
struct isd_tcp_tx {
	TAILQ_ENTRY(isd_tcp_tx) link;
	enum isd_tcp_tx_kind kind;
	struct isd_dm_task *task;          /* R2T, DATAIN: the task it belongs to */
	uint32_t qbytes;                /* what it counts in the connection's txq_bytes */
	struct isd_pdu *pdu;            /* PDU: the PDU; DATAIN: the rsp to send after the data */
	bool hdgst;                     /* digest settings snapshot at enqueue time */
	bool ddgst;
	/* DATAIN job */
	const struct iovec *xiov;       /* the task's buffer (valid until completion/cleanup) */
	int xiovcnt;
	uint32_t next_off;              /* next byte to build a Data-In for */
	uint32_t end_off;
	bool collapse;                  /* rsp rides on the last Data-In */
	uint32_t ttt;                   /* active: the Data-Outs' Target Transfer Tag */
	uint32_t datasn;                /* active: the next Data-Out's DataSN */
	bool data_done;                 /* every Data-In built; next comes rsp (if any) */
	bool detached;                  /* task cleaned up: finish the current PDU, then drop */
	uint8_t *detached_buf;          /* private copy of the rest of a half-sent PDU */
	/* the wire PDU being written */
	bool built;
	bool started;                   /* some of its bytes are in the socket */
	bool last;                      /* writing it completes the item */
	uint8_t hdr[ISD_BHS_LEN + ISD_TCP_DIGEST_LEN];
	uint8_t trail[3 + ISD_TCP_DIGEST_LEN]; /* padding, then data digest */
	int iovcnt;
	int iov_pos;                    /* first entry not fully written */
	/* last: tx_new() zeroes everything before it, and only iov[0..iovcnt) is
	 * ever read, each entry written first */
	struct iovec iov[ISD_TCP_TX_IOV_MAX];
};
TAILQ_HEAD(isd_tcp_tx_list, isd_tcp_tx);

/* Per-task state, in isd_dmt_priv() (the core hands it zeroed). */
struct isd_tcp_task {
	uint32_t magic;                 /* ISD_TCP_TASK_MAGIC once initialised */
	struct isd_dm_task *task;
	uint32_t datain_sn;             /* next Data-In DataSN (continues across put_data) */
	uint32_t r2tsn;                 /* next R2TSN */
	uint32_t tx_refs;               /* send items that reference the task */
	/* get_data in progress */
	bool get_active;
	const struct iovec *iov;
	int iovcnt;
	uint32_t get_next;              /* first byte no R2T has asked for yet */
	uint32_t get_end;
	uint32_t get_missing;           /* bytes still to arrive */
	bool data_bad;                  /* a Data-Out failed its digest: complete with -EILSEQ */
	bool waiting;                   /* on the connection's wait list for a TTT slot */
	TAILQ_ENTRY(isd_tcp_task) wait_link;
	struct isd_tcp_r2t r2t[ISD_TCP_TASK_R2T_MAX];
};
#define ISD_TCP_TASK_MAGIC 0x54435054u  /* "TCPT" */

/* TTT table entry: which task owns an outstanding TTT. */
struct isd_tcp_ttt_slot {
	uint32_t ttt;                   /* ISD_RSVD_TAG when free */
	struct isd_tcp_task *tt;
	int r2t_idx;
};

enum isd_tcp_rx_state {
	ISD_TCP_RX_BHS = 0,             /* reading the 48-byte BHS */
	ISD_TCP_RX_HDR,                 /* reading AHS and header digest */
	ISD_TCP_RX_DATA,                /* reading data, padding and data digest */
};

enum isd_tcp_rx_sink {
	ISD_TCP_SINK_PDU = 0,           /* into pdu->data, passed up */
	ISD_TCP_SINK_TASK,              /* solicited Data-Out: straight into the task buffer */
	ISD_TCP_SINK_DISCARD,           /* skipped (over the limit, rejected Data-Out) */
	ISD_TCP_SINK_DATAIN,            /* active: Data-In payload into the task's buffer */
};

enum isd_tcp_conn_state {
	ISD_TCP_CONNECTING = -1,        /* active: connect() in progress */
	ISD_TCP_OPEN = 0,
	ISD_TCP_FLUSHING,               /* terminate(): writing what is queued, no reading */
	ISD_TCP_CLOSED,                 /* socket closed; terminate notify pending or done */
};

/* Per-connection state, in isd_dmc_priv(). Lives on the connection's reactor. */
struct isd_tcp_conn {
	struct isd_dm_conn *conn;
	struct isd_reactor *r;
	int fd;
	enum isd_tcp_conn_state state;
	bool registered;                /* fd is in the reactor */
	uint32_t ev_mask;               /* events registered with the reactor */
	bool tx_blocked;                /* the socket said EAGAIN: wait for EPOLLOUT */
	bool rx_paused;                 /* send queue over the limit: not reading */
	char peer[80];                  /* "addr:port" for logs */
	int term_reason;                /* passed to isd_dm_terminate_notify */
	bool notify_pending;
	struct isd_timer notify_timer;  /* deferred terminate notify */
	struct isd_timer flush_timer;   /* bounds the flush in terminate */
	struct isd_timer kick_timer;    /* deferred send after enqueue */
	/* placement (tcp_portal.c): counted on r (isd_reactor_conns) until free_conn;
	 * start_msg carries an accepted socket from the listener's reactor to r */
	bool placed;
	struct isd_reactor_msg start_msg;

	/* negotiated */
	bool tx_hdgst, tx_ddgst;
	bool rx_hdgst, rx_ddgst;
	uint32_t rx_limit;              /* our MaxRecvDataSegmentLength */

	/* receive */
	enum isd_tcp_rx_state rx_state;
	enum isd_tcp_rx_sink rx_sink;
	uint8_t rx_bhs[ISD_BHS_LEN];
	uint8_t *rx_ahs;
	uint32_t rx_ahs_len;
	uint8_t rx_hdgst_buf[ISD_TCP_DIGEST_LEN];
	uint8_t rx_trail[3 + ISD_TCP_DIGEST_LEN];
	/* Bytes read and not yet consumed: rx_stg[rx_stg_off, rx_stg_len). */
	uint32_t rx_stg_off, rx_stg_len;
	struct isd_timer rx_timer;      /* deferred rx_run: staged bytes wait (no EPOLLIN comes) */
	uint32_t rx_got;                /* bytes of the current stage read */
	uint32_t rx_dsl;
	uint32_t rx_pad;
	uint32_t rx_trail_len;          /* padding + data digest bytes */
	struct isd_pdu *rx_pdu;
	struct isd_pdu *rx_spare;       /* active: a small PDU kept for the next one */
	int rx_reject;                  /* DISCARD: reject reason to report, 0 = none */
	struct isd_tcp_task *rx_tt;     /* TASK sink */
	int rx_r2t_idx;
	uint32_t rx_offset;             /* TASK, DATAIN sinks: BufferOffset */
	const struct iovec *rx_iov;     /* DATAIN sink: the task's buffer */
	int rx_iovcnt;
	struct isd_dm_task *rx_dt;      /* DATAIN sink: the task */

	/* active: connecting */
	struct addrinfo *ai_list;       /* getaddrinfo() result while connecting */
	struct addrinfo *ai_next;       /* next address to try */
	int connect_err;                /* last failure (-errno) */
	struct isd_timer connect_timer; /* deferred isd_dm_connected() of a failure */

	/* send */
	struct isd_tcp_tx_list txq;
	/* put_data items a write just finished, notified after the write's accounting */
	struct isd_dm_task *tx_done[ISD_TCP_TX_GATHER];
	uint32_t tx_ndone;
	uint32_t txq_len;
	uint64_t txq_bytes;             /* memory the queued items own (see tx_enqueue) */

	/* R2T */
	uint32_t ttt_gen;
	uint32_t ttt_used;
	struct isd_tcp_ttt_slot ttt[ISD_TCP_TTT_SLOTS];
	TAILQ_HEAD(, isd_tcp_task) r2t_wait;
	uint8_t rx_stg[ISD_TCP_RX_STAGE];     /* last: the receive staging buffer */
};

/* Sets up the per-connection state of a freshly accepted socket (tcp_conn.c). */
void isd_tcp_conn_init(struct isd_tcp_conn *tc, struct isd_dm_conn *c, struct isd_reactor *r, int fd);
/* Registers the socket with the reactor; on failure the connection is closed and a
 * terminate notify follows. */
int isd_tcp_conn_attach(struct isd_tcp_conn *tc);

#endif
