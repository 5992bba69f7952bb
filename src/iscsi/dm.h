/*
 * The Datamover Interface (RFC 5047 §7, RFC 7145 §3): the seam between an
 * iSCSI core and a datamover (TCP, iSER). It is the cores' contract and lives
 * with the target's core, as the kernel keeps iscsit_transport with its target
 * core; how a datamover registers with the server is dm/dm_kind.h. A core talks
 * in whole PDUs and whole data transfers with their buffers; a datamover never
 * hands a core a byte stream and a core never sees a socket or a verb.
 *
 * One datamover serves both roles. A connection is passive (the target core
 * in src/iscsi: accepted by a portal; Data-In and R2T or RDMA Write and Read
 * leave it) or active (the initiator core in src/initiator: opened with
 * ops->connect; Data-Out leaves it, Data-In is placed into the task's buffer).
 * The datamover sees a connection as a struct isd_dm_conn and a task as a
 * struct isd_dm_task, both embedded in the core's own objects.
 *
 * Calls down (core -> datamover) are the ops table; calls up (datamover ->
 * core) go through the connection's upcall table (isd_dm_*_notify below).
 * Everything runs on the connection's reactor thread. A datamover never calls up from inside
 * a call down, not even when the connection fails inside that call (a post
 * that fails): what follows from it comes from a later reactor callback. The
 * one exception is noted at free_conn.
 */
#ifndef ISD_DM_H
#define ISD_DM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "iscsi/keys.h"
#include "iscsi/pdu.h"

struct isd_dm_conn;
struct isd_dm_task;
struct isd_reactor;
struct isd_tmf_wait;

/* Capabilities the core negotiates by. */
#define ISD_DM_CAP_DIGESTS 0x1          /* CRC32C header/data digests possible (TCP) */
#define ISD_DM_CAP_RDMA 0x2             /* iSER: RDMAExtensions=Yes, no R2T/Data-In on the wire */

/* One data transfer of a task. Offsets are within the task's whole data. */
struct isd_xfer {
	const struct iovec *iov;        /* the task's data buffer, offset 0 = first byte of data */
	int iovcnt;
	uint32_t offset;                /* first byte to move */
	uint32_t length;                /* bytes to move */
	/*
	 * put_data only: the SCSI Response the core built for this task, sent
	 * after the data (a TCP datamover may collapse it into the last Data-In
	 * when rsp->data_len == 0; iSER chains it behind the RDMA Writes).
	 * Ownership passes to the datamover as with send_control. May be NULL.
	 */
	struct isd_pdu *rsp;
	/* put_data on an active connection: the Target Transfer Tag the Data-Out PDUs
	 * carry (ISD_RSVD_TAG for unsolicited data, else the R2T's). */
	uint32_t ttt;
};

struct isd_dm_ops {
	const char *name;               /* "tcp", "iser" */
	uint32_t caps;                  /* ISD_DM_CAP_* */
	size_t conn_priv_size;          /* bytes reserved for the datamover in each connection */
	size_t task_priv_size;          /* bytes reserved for the datamover in each task */
	/*
	 * The most data bytes the peer takes in one control PDU in full feature phase
	 * of a session with RDMAExtensions=Yes, whatever InitiatorRecvDataSegmentLength
	 * says (isd_conn_tx_dsl returns it there): the core cuts a NOP-In echo to it and
	 * pages Text Responses in pieces of at most that many bytes (C=1 and a TTT while
	 * more follows). 0: no limit beyond the negotiated one. iSER: 128, what Linux
	 * ib_iser and libiscsi really post (see iser_conn.c).
	 */
	uint32_t ffp_ctl_max_dsl;

	/*
	 * Active only (optional: a datamover without it serves targets only). Opens the
	 * connection to host (a name or numeric address) and port: c is set up by the
	 * core (active = true, zeroed priv). Returns 0: isd_dm_connected() follows,
	 * later, exactly once (with -errno when no address could be reached). Returns
	 * -errno: nothing follows. Either way the core ends with free_conn.
	 */
	int (*connect)(struct isd_dm_conn *c, const char *host, uint16_t port);
	/* Send_Control: queue one PDU. Takes ownership of pdu (frees it with isd_pdu_free
	 * once sent or on teardown). Returns 0, or -errno (pdu still freed). */
	int (*send_control)(struct isd_dm_conn *c, struct isd_pdu *pdu);
	/*
	 * Active only: Send_Control of the SCSI Command that starts task t. Its
	 * immediate data, if any, is pdu->data_iov (the task's buffer, borrowed until
	 * task_cleanup). The datamover ties the PDU to t, so that task_cleanup can take
	 * it back (TCP: a PDU partly written is finished from a private copy; iSER:
	 * registers t's buffer for the target's RDMA and names it in the iSER header,
	 * and holds the registration until task_cleanup). Same return contract as
	 * send_control.
	 */
	int (*send_command)(struct isd_dm_conn *c, struct isd_dm_task *t, struct isd_pdu *pdu);
	/* Put_Data, passive: move x->length bytes of read data to the initiator, then
	 * x->rsp if set. Active: send x->length bytes of write data as Data-Out PDUs
	 * with Target Transfer Tag x->ttt (DataSN from 0, F on the last), each within
	 * the target's MaxRecvDataSegmentLength (params->max_xmit_dsl; iSER: Sends of
	 * the unsolicited data, the only Data-Out there is).
	 * Returns 0: isd_dm_data_completion_notify() follows at most once, from a later
	 * reactor callback, never from inside this call (also when the transfer fails
	 * while being posted: the notify then carries -errno). It always follows unless
	 * task_cleanup abandons the transfer first, or the connection ends first: a
	 * transfer still pending at isd_dm_terminate_notify may get none (TCP drops it
	 * silently; iSER fails it with -ECONNABORTED just before terminate notify), and
	 * the core ends its task at terminate notify with task_cleanup. Returns -errno:
	 * the transfer never started, no notify follows, and x->rsp was freed. */
	int (*put_data)(struct isd_dm_conn *c, struct isd_dm_task *t, const struct isd_xfer *x);
	/* Get_Data (passive only): fetch x->length bytes of solicited write data into
	 * x->iov at x->offset (TCP: R2Ts and Data-Outs; iSER: RDMA Reads). Returns 0 or -errno with
	 * put_data's contract: after 0, at most one notify, always later; after -errno,
	 * none. */
	int (*get_data)(struct isd_dm_conn *c, struct isd_dm_task *t, const struct isd_xfer *x);
	/*
	 * Optional. Login_Response: the core calls it right before it queues each Login
	 * Response with send_control, so that a datamover never has to read the core's
	 * headers to follow the login. `final` is true for the one Login Response that
	 * ends the login (T=1, NSG=FullFeaturePhase, status 0): `negotiated` then holds
	 * the session's values, and the datamover readies what full feature phase needs
	 * before that response can reach the initiator (iSER: posts its full-feature
	 * receives, sized for them, and stops using the login receive buffer). `final` is
	 * false for every other Login Response: it answers one Login Request and
	 * another may follow (iSER: the login receive buffer is posted again once both
	 * this call came and the request's PDU was released); `negotiated` is the values
	 * in force (RFC defaults). The response itself still goes out within login
	 * limits; notice_key_values follows the final one. NULL (TCP): the datamover
	 * needs nothing until notice_key_values.
	 */
	void (*login_response)(struct isd_dm_conn *c, const struct isd_params *negotiated,
			       bool final);
	/* Notice_Key_Values: the negotiated values, called after the final Login Response
	 * has been queued with send_control (digests apply to PDUs queued after it), and
	 * again in full feature phase when the initiator declares a new
	 * MaxRecvDataSegmentLength. */
	void (*notice_key_values)(struct isd_dm_conn *c, const struct isd_params *p);
	/* Gives back a PDU received through isd_dm_control_notify(). */
	void (*release_pdu)(struct isd_dm_conn *c, struct isd_pdu *pdu);
	/* Deallocate_Task_Resources: abandon any transfer of t in progress (abort, reset).
	 * No completion notify follows for an abandoned transfer. The task is freed right
	 * after this returns. `fence`, when not NULL, is what the abort answers to (a TMF
	 * Response, or the PERSISTENT RESERVE OUT that fenced t's initiator): if data of
	 * the abandoned transfer may still move (iSER: an RDMA Read into the task's
	 * buffer, which may be the LU's own memory, or an RDMA Write into the initiator's
	 * buffer), the datamover holds it with isd_dm_fence_hold() and lets it go with
	 * isd_dm_fence_release() once nothing more can move, so that the answer leaves
	 * only then. */
	void (*task_cleanup)(struct isd_dm_conn *c, struct isd_dm_task *t, struct isd_tmf_wait *fence);
	/* Connection_Terminate: flush what was queued (best effort, bounded), then close.
	 * isd_dm_terminate_notify() follows exactly once, later. */
	void (*terminate)(struct isd_dm_conn *c);
	/* Deallocate_Connection_Resources: called by the core after terminate notify, once
	 * no task refers to the connection; the datamover frees its private state. The
	 * exception to "no call up from a call down": fences still held by transfers it
	 * drops here (iSER, when flush completions never came) are released from inside
	 * this call with isd_dm_fence_release(). */
	void (*free_conn)(struct isd_dm_conn *c);
	/* Optional. Called when the core creates a task from a SCSI Command PDU, before
	 * any put_data/get_data: the datamover takes what it carried for this command
	 * (iSER: the read/write STags and VAs from the iSER header) into its task area. */
	void (*task_init)(struct isd_dm_conn *c, struct isd_dm_task *t, const struct isd_pdu *cmd);
	/* Optional. Allocator for task data buffers (iSER: registered memory). NULL: the
	 * SCSI layer uses malloc. Returned buffers are released with buf_free, which
	 * names the task the buffer was allocated for: when that task's transfer was
	 * abandoned by task_cleanup (its buffer is released right after, while the task
	 * still exists) the datamover finds the transfer from the task in O(1) and may
	 * keep the buffer until its work requests are complete (iSER). */
	void *(*buf_alloc)(struct isd_dm_conn *c, uint32_t len);
	void (*buf_free)(struct isd_dm_conn *c, struct isd_dm_task *t, void *buf, uint32_t len);
	/* Optional. Send_Control of the SCSI Response that ends task t, sent when no
	 * data is left to move (a read's response with data goes with put_data's
	 * x->rsp instead). Same contract as send_control; the datamover may tie the
	 * Send to the task (iSER: Send with Invalidate of the initiator's STag). The
	 * task is freed right after this returns. NULL: send_control is used. */
	int (*send_response)(struct isd_dm_conn *c, struct isd_dm_task *t, struct isd_pdu *pdu);
	/* Active, optional: the caller is done with [addr, addr+len) (about to free
	 * it): what the datamover keeps registered of it goes now, or when the last
	 * command using it ends (iSER's registration cache). */
	void (*mem_unregister)(struct isd_dm_conn *c, const void *addr, size_t len);
};

/* --- the connection and task as a datamover sees them --- */

/*
 * The calls up of one role's core. The datamover reaches them only through
 * the isd_dm_* functions below. Passive-only and active-only entries are
 * NULL in the other role's table.
 */
struct isd_dm_upcalls {
	void (*control_notify)(struct isd_dm_conn *c, struct isd_pdu *pdu);
	void (*pdu_error_notify)(struct isd_dm_conn *c, const uint8_t *bhs, int reason);
	void (*data_completion_notify)(struct isd_dm_conn *c, struct isd_dm_task *t, int status);
	void (*terminate_notify)(struct isd_dm_conn *c, int reason);
	/* passive */
	void (*fence_hold)(struct isd_tmf_wait *fence);
	void (*fence_release)(struct isd_tmf_wait *fence);
	void (*stamp_sn)(struct isd_dm_conn *c, uint8_t *bhs);
	void (*count_copy)(struct isd_dm_conn *c, uint64_t bytes);
	/* active */
	void (*connected)(struct isd_dm_conn *c, int status);
	int (*data_in)(struct isd_dm_conn *c, const uint8_t *bhs, struct isd_dm_task **t,
		       const struct iovec **iov, int *iovcnt);
};

/* A connection: embedded in the core's connection object, set up by the core
 * before the datamover sees it. */
struct isd_dm_conn {
	const struct isd_dm_ops *ops;           /* the datamover */
	const struct isd_dm_upcalls *up;        /* the core of this connection's role */
	struct isd_reactor *r;                  /* the reactor it lives on */
	const struct isd_params *params;        /* negotiated values in force (RFC
						 * defaults during login) */
	bool active;                            /* initiator role: opened by connect */
	uint32_t queue_depth;                   /* active: commands the core has outstanding
						 * at most (iSER posts a receive for each
						 * one's response) */
	void *priv;                             /* ops->conn_priv_size bytes, zeroed, 16-aligned */
};

/* A task: embedded in the core's task object. */
struct isd_dm_task {
	void *priv;                             /* ops->task_priv_size bytes, zeroed, 16-aligned */
	uint32_t itt;                           /* for Data-In/Data-Out/R2T headers */
	uint64_t lun;                           /* LUN field as on the wire */
	/*
	 * Active only, set before send_command: the command's whole data buffer,
	 * borrowed until task_cleanup or the end of the task, and how many bytes of
	 * it the target reads from (a write) or writes into (a read). iSER
	 * advertises it to the target (STags in the iSER header); TCP places Data-In
	 * through isd_dm_data_in instead.
	 */
	const struct iovec *iov;
	int iovcnt;
	uint32_t write_len;                     /* bytes the target takes (WRITE) */
	uint32_t read_len;                      /* bytes the target gives (READ) */
	/* of write_len, the bytes that go unsolicited (immediate data and unsolicited
	 * Data-Out): the target solicits the rest (iSER: its write VA points at the
	 * first byte after them, RFC 7145 §9.3) */
	uint32_t unsol_len;
};

/* --- upcalls (datamover -> core) --- */

/* Control_Notify: a received PDU (any opcode the datamover does not consume itself:
 * everything except solicited Data-Out on a passive TCP connection and the payload
 * of Data-In on an active one). The core gives it back with ops->release_pdu(). */
static inline void
isd_dm_control_notify(struct isd_dm_conn *c, struct isd_pdu *pdu)
{
	c->up->control_notify(c, pdu);
}

/* A received PDU that failed framing checks the datamover could recover from (data
 * digest error, data segment over MaxRecvDataSegmentLength, which the datamover
 * skipped): the core answers with a Reject carrying `reason` and the BHS. */
static inline void
isd_dm_pdu_error_notify(struct isd_dm_conn *c, const uint8_t *bhs, int reason)
{
	c->up->pdu_error_notify(c, bhs, reason);
}

/* Data_Completion_Notify: a put_data/get_data finished (status 0) or failed (-errno).
 * get_data only: -EILSEQ means every byte arrived but some failed its data digest
 * (each such PDU was already reported with isd_dm_pdu_error_notify): the core ends
 * the task with CHECK CONDITION and never runs it. */
static inline void
isd_dm_data_completion_notify(struct isd_dm_conn *c, struct isd_dm_task *t, int status)
{
	c->up->data_completion_notify(c, t, status);
}

/* Connection_Terminate_Notify: the connection is gone (peer closed, error, or after
 * ops->terminate). No other upcall for c follows. */
static inline void
isd_dm_terminate_notify(struct isd_dm_conn *c, int reason)
{
	c->up->terminate_notify(c, reason);
}

/* Passive: holds / releases the answer an abort is waiting on (see task_cleanup).
 * Each hold is released exactly once; the release may send that answer, on any
 * connection. */
static inline void
isd_dm_fence_hold(struct isd_dm_conn *c, struct isd_tmf_wait *fence)
{
	c->up->fence_hold(fence);
}

static inline void
isd_dm_fence_release(struct isd_dm_conn *c, struct isd_tmf_wait *fence)
{
	c->up->fence_release(fence);
}

/* Passive: fills StatSN@24 (current, not advanced), ExpCmdSN@28, MaxCmdSN@32 into a
 * BHS the datamover builds itself (Data-In without status, R2T). */
static inline void
isd_dm_stamp_sn(struct isd_dm_conn *c, uint8_t *bhs)
{
	c->up->stamp_sn(c, bhs);
}

/* Counts payload a datamover copied through a staging or bounce buffer (0 for iSER
 * RAM LUNs, whose data moves by RDMA straight to and from the LU's memory). */
static inline void
isd_dm_count_copy(struct isd_dm_conn *c, uint64_t bytes)
{
	if (c->up->count_copy != NULL)
		c->up->count_copy(c, bytes);
}

/* Active: ops->connect finished: status 0 (the connection is open, login may begin)
 * or -errno (no terminate notify follows; the core frees with free_conn). */
static inline void
isd_dm_connected(struct isd_dm_conn *c, int status)
{
	c->up->connected(c, status);
}

/*
 * Active: a Data-In header arrived (bhs; its DataSegmentLength is the payload's
 * length). The core checks it against its task (ITT, DataSN, BufferOffset and
 * length within the command's buffer) and returns 0 with *t and the task's whole
 * buffer (*iov, *iovcnt) to place the payload at BufferOffset, 0 with *t NULL to
 * skip the payload (a task already gone), or -errno: the connection fails. Once
 * the payload is in (and its digest checked), the PDU follows with control_notify,
 * its data segment empty (data_len 0; the BHS keeps DataSegmentLength).
 */
static inline int
isd_dm_data_in(struct isd_dm_conn *c, const uint8_t *bhs, struct isd_dm_task **t,
	       const struct iovec **iov, int *iovcnt)
{
	return c->up->data_in(c, bhs, t, iov, iovcnt);
}

/* --- what a datamover may read of a connection and a task --- */
static inline void *
isd_dmc_priv(struct isd_dm_conn *c)
{
	return c->priv;
}

static inline struct isd_reactor *
isd_dmc_reactor(struct isd_dm_conn *c)
{
	return c->r;
}

static inline const struct isd_params *
isd_dmc_params(struct isd_dm_conn *c)
{
	return c->params;
}

static inline void *
isd_dmt_priv(struct isd_dm_task *t)
{
	return t->priv;
}

static inline uint32_t
isd_dmt_itt(struct isd_dm_task *t)
{
	return t->itt;
}

static inline uint64_t
isd_dmt_lun(struct isd_dm_task *t)
{
	return t->lun;
}

#endif
