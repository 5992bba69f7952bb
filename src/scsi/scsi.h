/*
 * The SCSI device server (SAM-5, SPC-5, SBC-4): logical units over backing
 * stores, commands in, status + sense + data out. It knows nothing of iSCSI:
 * the transport gives it a CDB, an I_T nexus identity, and the Expected Data
 * Transfer Length; it gives back how much data moves in which direction and
 * the buffer for it.
 *
 * A command runs in two steps:
 *   isd_scsi_cmd_setup()  decodes the CDB. Either it completes the command at
 *                         once (bad CDB, LBA out of range, reservation
 *                         conflict, unit attention...) or it says how many
 *                         bytes of data-out it needs and provides the buffer;
 *   isd_scsi_cmd_exec()   runs it once the data-out is in the buffer and
 *                         calls cmd->done exactly once (possibly before
 *                         returning), with data-in (if any) in cmd->iov.
 * Then isd_scsi_cmd_release() frees what setup/exec allocated.
 */
#ifndef ISD_SCSI_H
#define ISD_SCSI_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>
#include <sys/uio.h>

#include "reactor/reactor.h"
#include "util/iostats.h"
#include "util/monitor.h"

struct isd_bstore;
struct isd_scsi_lu;
struct isd_scsi_dev;

#define ISD_SCSI_MAX_LUNS 256
#define ISD_SCSI_SENSE_MAX 96           /* fixed-format sense we build: 18 bytes + info */
#define ISD_SCSI_MAX_IOV 4
#define ISD_SCSI_MAX_PHYS_BLOCK 65536   /* bytes: largest physical block a LU may report */

/* SAM status codes */
#define ISD_SAM_GOOD 0x00
#define ISD_SAM_CHECK_CONDITION 0x02
#define ISD_SAM_CONDITION_MET 0x04
#define ISD_SAM_BUSY 0x08
#define ISD_SAM_RESERVATION_CONFLICT 0x18
#define ISD_SAM_TASK_SET_FULL 0x28
#define ISD_SAM_ACA_ACTIVE 0x30
#define ISD_SAM_TASK_ABORTED 0x40

/* Sense keys */
#define ISD_SK_NO_SENSE 0x0
#define ISD_SK_RECOVERED_ERROR 0x1
#define ISD_SK_NOT_READY 0x2
#define ISD_SK_MEDIUM_ERROR 0x3
#define ISD_SK_HARDWARE_ERROR 0x4
#define ISD_SK_ILLEGAL_REQUEST 0x5
#define ISD_SK_UNIT_ATTENTION 0x6
#define ISD_SK_DATA_PROTECT 0x7
#define ISD_SK_COPY_ABORTED 0xa
#define ISD_SK_ABORTED_COMMAND 0xb
#define ISD_SK_MISCOMPARE 0xe

enum isd_scsi_dir {
	ISD_SCSI_DIR_NONE = 0,
	ISD_SCSI_DIR_IN,                /* data to the initiator (READ) */
	ISD_SCSI_DIR_OUT,               /* data from the initiator (WRITE) */
};

enum isd_scsi_setup_result {
	ISD_SCSI_SETUP_READY = 0,       /* call exec (after fetching data-out if dir OUT) */
	ISD_SCSI_SETUP_DONE = 1,        /* completed in setup: status/sense are set */
};

/* The I_T nexus a command arrived on (for reservations and unit attentions). */
struct isd_scsi_nexus {
	char initiator_port[256];       /* SCSI initiator port name: "iqn...,i,0x<ISID>" */
	char target_port[256];          /* "iqn...,t,0x<TPGT>" */
	uint16_t rel_tgt_port_id;       /* relative target port identifier (TPGT) */
	uint64_t id;                    /* unique per nexus while it exists */
};

/*
 * Optional allocator for data buffers (iSER passes one that hands out
 * registered memory). NULL means malloc. align (a power of two, 0 or 1 for
 * none) is the memory alignment the LU's store needs to move the buffer
 * without a copy (O_DIRECT); a buffer less aligned still works, the store
 * copies it through one of its own.
 */
struct isd_scsi_buf_ops {
	void *(*alloc)(void *ctx, uint32_t len, uint32_t align);
	void (*free)(void *ctx, void *buf, uint32_t len);
	void *ctx;
};

struct isd_scsi_cmd;
typedef void (*isd_scsi_done_cb)(struct isd_scsi_cmd *cmd);

/* One SCSI command. The transport owns the memory; fields marked (in) it fills. */
struct isd_scsi_cmd {
	/* (in) */
	struct isd_scsi_dev *dev;
	struct isd_scsi_nexus *nexus;
	uint64_t lun;                   /* the 8-byte LUN field as on the wire */
	const uint8_t *cdb;
	uint32_t cdb_len;               /* 6..260 */
	uint32_t edtl;                  /* Expected Data Transfer Length from the initiator */
	bool read_flag;                 /* the transport's R bit */
	bool write_flag;                /* the transport's W bit */
	uint8_t task_attr;              /* SAM task attribute */
	uint64_t tag;                   /* task tag, for ABORT and logs */
	const struct isd_scsi_buf_ops *buf_ops;
	/*
	 * (in, optional) Data-out that already arrived with the command (iSCSI
	 * immediate data, in the datamover's receive buffer). When it covers the
	 * whole data-out, setup uses it as the buffer instead of allocating one
	 * (no copy) and sets data_out_preset_used; the transport keeps it alive
	 * until isd_scsi_cmd_release().
	 */
	const void *data_out_preset;
	uint32_t data_out_preset_len;
	bool data_out_preset_used;
	/*
	 * (in) Data-out must be staged: the transport checks each piece only after
	 * it has received it (iSCSI data digests), so the buffer it receives into
	 * must not be the LU's storage (no data_out_direct); exec stores the data
	 * once every piece checked out, and a command that is not run stores none.
	 */
	bool data_out_staged;
	isd_scsi_done_cb done;
	void *cb_arg;

	/* set by setup */
	enum isd_scsi_dir dir;
	uint32_t xfer_len;              /* bytes of data the CDB itself asks to move */
	struct iovec iov[ISD_SCSI_MAX_IOV];     /* data buffer: data-out lands here; exec fills */
	int iovcnt;                             /* or points it at data-in */
	/*
	 * Data-out is placed straight into the logical unit's own memory (a RAM
	 * LU): iov is the LU's storage, so whatever the transport puts there is
	 * stored, and exec copies nothing. The transport's copy of immediate data
	 * into iov is then the store write itself, not an extra copy.
	 */
	bool data_out_direct;

	/* results */
	uint8_t status;                 /* ISD_SAM_* */
	uint8_t sense[ISD_SCSI_SENSE_MAX];
	uint32_t sense_len;
	uint32_t data_in_len;           /* bytes of data-in valid in iov (<= xfer_len) */

	/* private to the SCSI layer */
	struct isd_scsi_lu *lu;
	void *priv_buf;                 /* allocated buffer, freed by release */
	uint32_t priv_buf_len;
	bool aborted;
	uint64_t lba;
	uint32_t nblocks;
	void *priv;
	TAILQ_ENTRY(isd_scsi_cmd) link;        /* in the LU's write-gate queue (sbc.c) */
	const void *op;                 /* the decoded command's descriptor */
	uint32_t io_flags;              /* ISD_SCSI_IOF_* (scsi_int.h) */
	uint32_t data_out_len;          /* data-out the buffer takes: min(edtl, xfer_len) */
	uint64_t io_pos;                /* progress of multi-step commands (WRITE SAME, UNMAP) */
	uint64_t io_end;
	void *aux_buf;                  /* second buffer (compare reads), freed by release */
	uint32_t aux_len;
	struct isd_scsi_lu *lu_ref;     /* the LU this command holds (setup to release) */
	/* I/O statistics. The transport may set arrival_ns (isd_now_ns() when the command
	 * arrived) before setup, which then reads no clock of its own; 0 = setup reads it. */
	uint64_t arrival_ns;
	uint64_t io_start_ns;           /* when setup took it */
	bool io_open;                   /* counted in flight, completion not yet counted */
	/* where it is counted: the device's and the LU's figures, or their shares of
	 * the thread that set it up on the shared path (dev.c) */
	struct isd_io_stats *io_dev_st, *io_lu_st;
	/* what the completion counted, for the transport's own figures (valid once
	 * io_counted): one computation, not two */
	bool io_counted;
	int8_t io_err;                  /* enum isd_io_err, or -1 for GOOD */
	uint8_t io_dir;                 /* enum isd_io_dir */
	uint64_t io_bytes;
	uint64_t io_lat_ns;             /* io_start_ns to the completion */
	struct isd_monitor_call done_call;      /* cmd->done, run once the monitor is left */
	/* on the device's list of live commands, setup to release (isd_scsi_dev_each_cmd) */
	TAILQ_ENTRY(isd_scsi_cmd) live_link;
	bool live;
	struct isd_scsi_live *live_on;  /* the list it is on: the device's, or a thread's */
	uint64_t walk_gen;              /* the last walk that showed it */
	/* set up on the shared path (READ/WRITE on a quiet LU): exec and release try it */
	bool fast;
	/* queued at a LU's write gate (sbc.c): the reactor it waits on, and the
	 * message that runs it there once let in from another */
	struct isd_reactor *gate_r;
	struct isd_reactor_msg gate_msg;
};

struct isd_scsi_live;

/* Backing store description used to create a logical unit. */
struct isd_scsi_lu_cfg {
	struct isd_bstore *bstore;      /* taken over by the LU */
	uint32_t block_size;            /* 512 or 4096 */
	uint32_t physical_block_size;   /* 0 = block_size; else a power-of-two multiple of it,
					 * at most ISD_SCSI_MAX_PHYS_BLOCK */
	bool read_only;
	char vendor[9];                 /* INQUIRY strings, space padded by the LU */
	char product[17];
	char revision[5];
	char serial[33];                /* unit serial number (VPD 0x80) */
	uint64_t naa_id;                /* low 60 bits of an NAA IEEE Registered designator */
	/* The designator's 64-bit extension; unset = the LU number. Gateways that
	 * export one LU under different LU numbers set it to present one identity. */
	uint64_t naa_ext;
	bool naa_ext_set;
	uint8_t alua_state;             /* enum isd_scsi_alua_state: the LU's first state */
	bool write_cache;               /* WCE: honour SYNCHRONIZE CACHE and FUA */
	bool thin;                      /* UNMAP / WRITE SAME UNMAP supported */
};

/*
 * Asymmetric logical unit access (SPC-5 5.16), implicit only. Several
 * gateways export the same data as one logical unit (same NAA designator and
 * serial); each one is a target port group. A device with ALUA configured
 * reports TPGS 01b, the Target Port Group designator in VPD 0x83 and answers
 * REPORT TARGET PORT GROUPS; each of its LUs has an access state for this
 * gateway's group, which decides which commands it processes. The other
 * groups are described from the configuration; their states are derived
 * from ours (isd_scsi_alua_peer_state).
 */
enum isd_scsi_alua_state {
	ISD_ALUA_ACTIVE_OPTIMIZED = 0x0,
	ISD_ALUA_ACTIVE_NON_OPTIMIZED = 0x1,
	ISD_ALUA_STANDBY = 0x2,
	ISD_ALUA_UNAVAILABLE = 0x3,
	ISD_ALUA_TRANSITIONING = 0xf,
};

#define ISD_SCSI_ALUA_MAX_PEERS 16

struct isd_scsi_alua_peer {
	uint16_t group;                 /* its TARGET PORT GROUP (1..65535) */
	uint16_t rtpi;                  /* the relative target port id it lists; 0 = none */
};

struct isd_scsi_alua_cfg {
	uint16_t group;                 /* this gateway's target port group; 0 = ALUA off */
	uint16_t rtpi;                  /* the target's own port (TPGT); the asking nexus's
					 * port is listed too when it differs */
	uint8_t transition_secs;        /* IMPLICIT TRANSITION TIME reported (0: unspecified) */
	/* The state reported for the other groups while this one's LU is
	 * active/optimized: what the other gateways set themselves to when they do
	 * not own the LU (active/non-optimized, standby or unavailable; 0 = the
	 * default, active/non-optimized). Initiators take every group's state from
	 * any path's report, so it must match what the others say of themselves. */
	uint8_t peer_state;
	uint32_t npeers;
	struct isd_scsi_alua_peer peers[ISD_SCSI_ALUA_MAX_PEERS];
};

/* Sets (or, group 0, clears) the device's ALUA configuration; a change raises
 * INQUIRY DATA HAS CHANGED (3Fh/03h) on every nexus of every LU. -EINVAL for a
 * bad one (too many peers, a peer group 0 or equal to ours or listed twice, a
 * peer_state other than 0, non-optimized, standby, unavailable). */
int isd_scsi_dev_set_alua(struct isd_scsi_dev *dev, const struct isd_scsi_alua_cfg *cfg);
/*
 * Changes the access state of LU lun in this gateway's group. A change
 * establishes ASYMMETRIC ACCESS STATE CHANGED (2Ah/06h) for every I_T nexus
 * of the LU; commands already set up run on, later ones see the new state.
 * -ENOENT for an unknown LU, -EINVAL for a state that is not one of the five.
 * It may be called with ALUA off: the state is kept and applies once on.
 * The daemon's running configuration (what `config save` writes) is updated
 * by isd_live_lun_set_alua_state(), which calls this; a store that calls this
 * directly (one following a cluster lock) changes only what initiators see.
 */
int isd_scsi_lu_set_alua_state(struct isd_scsi_dev *dev, uint32_t lun,
			       enum isd_scsi_alua_state state);
/* The state reported for the other groups: `nonowner` (cfg peer_state, 0 =
 * active/non-optimized) while we are active/optimized, else active/optimized
 * (the owner is elsewhere). */
enum isd_scsi_alua_state isd_scsi_alua_peer_state(enum isd_scsi_alua_state ours,
						  uint8_t nonowner);
/* "active/optimized", "active/non-optimized", "standby", "unavailable",
 * "transitioning"; NULL for another value. */
const char *isd_scsi_alua_state_name(int state);
/* The reverse (also "ao", "an" / "ano"); 0 or -EINVAL. */
int isd_scsi_alua_state_parse(const char *s, enum isd_scsi_alua_state *out);

/* Whether a physical block size suits a logical block size (0 = the same): a
 * power-of-two multiple of it, at most ISD_SCSI_MAX_PHYS_BLOCK. 0 or -EINVAL. */
int isd_scsi_phys_block_check(uint32_t block_size, uint32_t physical_block_size);

int isd_scsi_dev_create(const char *name, struct isd_scsi_dev **out);
/* Frees the device and its LUs; no command may be in flight. */
void isd_scsi_dev_destroy(struct isd_scsi_dev *dev);
/* Adds a LU; -EEXIST if the number is taken, -EINVAL for a bad config. */
int isd_scsi_dev_add_lu(struct isd_scsi_dev *dev, uint32_t lun, const struct isd_scsi_lu_cfg *cfg);
uint32_t isd_scsi_dev_lu_count(struct isd_scsi_dev *dev);

/* A nexus appears (login) and goes away (logout, connection loss: its reservations
 * that are not persistent are released, its pending UAs dropped). */
void isd_scsi_nexus_add(struct isd_scsi_dev *dev, struct isd_scsi_nexus *nexus);
void isd_scsi_nexus_remove(struct isd_scsi_dev *dev, struct isd_scsi_nexus *nexus);

/*
 * What the transport lets the device server do to tasks it does not own: the
 * commands of other I_T nexuses. A reservation change (PREEMPT AND ABORT, or
 * any PR OUT that takes write access away from a nexus) must end such tasks
 * before its own command completes; the SCSI layer cannot see the transport's
 * tasks, so the transport registers this once per device.
 *
 * The device server picks the victims itself, under its monitor, from its
 * list of live commands (isd_scsi_dev_each_cmd), at the moment the
 * reservation changes: the transport's connections may run on other threads,
 * and their task lists are theirs alone.
 */
struct isd_scsi_task_ops {
	/*
	 * Begins the aborts asked for by `self`: returns a handle for abort_one and
	 * abort_end, or NULL when there is nothing to wait with (drained NULL, or
	 * out of memory: the aborts still happen, the wait for in-flight exec is
	 * lost). `self` may be a blank command of the device with no task (cb_arg
	 * NULL): a change another gateway made (isd_scsi_fence_lu), with nothing
	 * to answer here.
	 */
	void *(*abort_begin)(void *ctx, struct isd_scsi_cmd *self,
			     void (*drained)(struct isd_scsi_cmd *self));
	/*
	 * Aborts the task of `victim` (a live command of the device, not self's),
	 * as an ABORT TASK SET on that task's own nexus would: it gets no
	 * response, stores nothing more, and Data-Out that arrives for it later is
	 * discarded. Called under the device's monitor. Returns true when it
	 * released a command of the device on the spot (the live list changed).
	 * On a task that lives on another thread the abort happens there, later,
	 * and `wait` (may be NULL) holds the answer until it has.
	 */
	bool (*abort_one)(void *ctx, struct isd_scsi_cmd *victim, void *wait);
	/*
	 * Ends what abort_begin began: returns true and calls drained(self) later,
	 * once every aborted task whose exec was in flight has finished; false
	 * (drained is never called) when nothing was left to wait for.
	 */
	bool (*abort_end)(void *ctx, void *wait);
	void *ctx;
};

/*
 * Calls fn(arg, cmd), under the device's monitor, once for each command set
 * up on the device and not yet released, in setup order. fn may release
 * commands (an abort on the spot): it returns true when it did, and the walk
 * goes on from where it was without showing a command twice.
 */
void isd_scsi_dev_each_cmd(struct isd_scsi_dev *dev,
			   bool (*fn)(void *arg, struct isd_scsi_cmd *cmd), void *arg);

/* Registers (or replaces) the transport's task operations of a device. */
void isd_scsi_dev_set_task_ops(struct isd_scsi_dev *dev, const struct isd_scsi_task_ops *ops);

int isd_scsi_cmd_setup(struct isd_scsi_cmd *cmd);
void isd_scsi_cmd_exec(struct isd_scsi_cmd *cmd);
void isd_scsi_cmd_release(struct isd_scsi_cmd *cmd);
/* Finishes a command without running it: status TASK ABORTED (or not at all if the
 * transport will not report it). Only valid between setup and exec. It does not call
 * cmd->done: the transport reports (or not) and then calls release. */
void isd_scsi_cmd_abort(struct isd_scsi_cmd *cmd);
/* The transport abandoned a command whose exec is in flight: the steps of it not yet
 * handed to the backing store are skipped. cmd->done is still called exactly once. */
void isd_scsi_cmd_cancel(struct isd_scsi_cmd *cmd);

/* Task management at the LU (after the transport aborted its tasks): LUN RESET
 * clears reservations (non-persistent) and raises a unit attention for every
 * nexus, `from` (the sender) included. Returns 0, or -ENOENT for an unknown LUN. */
int isd_scsi_lu_reset(struct isd_scsi_dev *dev, uint64_t lun, struct isd_scsi_nexus *from);
/* TARGET WARM/COLD RESET: every LU. */
void isd_scsi_dev_reset(struct isd_scsi_dev *dev, struct isd_scsi_nexus *from);
/* True if the LUN field names an existing LU. */
bool isd_scsi_lun_exists(struct isd_scsi_dev *dev, uint64_t lun);

/* Helpers the transport may use too. */
void isd_scsi_set_sense(struct isd_scsi_cmd *cmd, uint8_t key, uint8_t asc, uint8_t ascq);
/* Decodes a SAM LUN field (peripheral and flat addressing) to a number; UINT32_MAX if
 * the format is not supported. */
uint32_t isd_scsi_lun_decode(uint64_t lun_field);
uint64_t isd_scsi_lun_encode(uint32_t lun);

/*
 * Removes a LU while the device runs. Commands that arrive for it from now on
 * fail with LOGICAL UNIT NOT SUPPORTED; those already set up on it run to
 * their release. Then gone(arg, store) runs (for the caller to deregister the
 * store's memory), and the store is closed and the LU freed: at once when no
 * command holds it, else from the release of the last one; always on the
 * reactor the store was opened on (posted there when the last holder runs on
 * another). Every other LU of the device raises REPORTED LUNS DATA HAS
 * CHANGED on each nexus.
 * -ENOENT for an unknown LU number.
 */
int isd_scsi_dev_remove_lu(struct isd_scsi_dev *dev, uint32_t lun,
			   void (*gone)(void *arg, struct isd_bstore *bs), void *arg);
/* Raises REPORTED LUNS DATA HAS CHANGED (3Fh/0Eh) on every nexus of every LU (a LU
 * was added). */
void isd_scsi_dev_luns_changed(struct isd_scsi_dev *dev);
/* Commands set up on LU lun and not yet released (0 for an unknown LU). */
uint32_t isd_scsi_lu_busy(struct isd_scsi_dev *dev, uint32_t lun);
/* Write-protects (or not) a LU for commands set up from now on; a store opened
 * read-only stays so (-EROFS). -ENOENT for an unknown LU number. */
int isd_scsi_lu_set_read_only(struct isd_scsi_dev *dev, uint32_t lun, bool read_only);

/* The LU's store changed size: re-reads it and raises CAPACITY DATA HAS CHANGED
 * (2Ah/09h) on every nexus. -ENOENT for an unknown LU number. */
int isd_scsi_lu_capacity_changed(struct isd_scsi_dev *dev, uint32_t lun);

/*
 * I/O statistics. The device counts every command it is given (a LUN that
 * does not exist included), each LU the commands to it: a command starts in
 * isd_scsi_cmd_setup() and completes exactly once, when its status is known:
 * in setup (finished there), at cmd->done, at isd_scsi_cmd_abort(), or at
 * isd_scsi_cmd_release() for one the transport abandoned (counted as aborted).
 */
struct isd_scsi_lu_info {
	uint32_t lun;
	uint64_t size;                  /* bytes */
	uint32_t block_size;
	bool read_only;
	uint16_t alua_group;            /* this gateway's target port group; 0 = ALUA off */
	uint8_t alua_state;             /* enum isd_scsi_alua_state */
	struct isd_io_stats io;
};

/* One LU's description and counters; -ENOENT when there is no such LU. */
int isd_scsi_dev_lu_info(struct isd_scsi_dev *dev, uint32_t lun, struct isd_scsi_lu_info *out);
/* Fills out[0..max) with the LU numbers, ascending; returns how many LUs there are. */
int isd_scsi_dev_luns(struct isd_scsi_dev *dev, uint32_t *out, int max);
/* Every command given to the device, LU or not. */
void isd_scsi_dev_io_stats(struct isd_scsi_dev *dev, struct isd_io_stats *out);
/* Commands set up on the shared path (READ and WRITE that did not take the device's
 * monitor; only with several reactors), since the device was created. */
uint64_t isd_scsi_dev_shared_cmds(struct isd_scsi_dev *dev);
/* How a command counts (for a transport keeping its own, per-session, figures):
 * direction by opcode, bytes moved if it ended GOOD (data-in sent when the
 * transport's R bit is set, data-out taken), err an enum isd_io_err or -1 for GOOD. */
void isd_scsi_cmd_io_result(const struct isd_scsi_cmd *cmd, enum isd_io_dir *dir,
			    uint64_t *bytes, int *err);
/* The direction of a CDB by its opcode. */
enum isd_io_dir isd_scsi_cdb_io_dir(const uint8_t *cdb, uint32_t cdb_len);

/*
 * Residuals (for the transport): data-in is cmd->data_in_len bytes (never more
 * than xfer_len); send min(edtl, data_in_len). Overflow when xfer_len > edtl
 * (residual xfer_len - edtl); otherwise underflow when the bytes moved are fewer
 * than edtl (residual edtl - moved). For data-out, collect min(edtl, xfer_len)
 * bytes (cmd->data_out_len) into cmd->iov before exec.
 */

#endif
