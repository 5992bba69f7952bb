/*
 * Internals of the SCSI device server shared between its files: the command
 * table, logical units, per-nexus state (unit attentions), reservations, and
 * helpers that finish a command with status and sense.
 *
 * Threading: a device and its LUs belong to one reactor; every entry point is
 * called from that reactor's thread.
 */
#ifndef ISD_SCSI_INT_H
#define ISD_SCSI_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>

#include "reactor/reactor.h"
#include "scsi/scsi.h"

struct isd_xcopy_held;

/* Additional sense codes (ASC << 8 | ASCQ) we report. */
#define ISD_ASC_NO_ADDITIONAL 0x0000
#define ISD_ASC_OPERATION_IN_PROGRESS 0x0016
#define ISD_ASC_COPY_TARGET_NOT_REACHABLE 0x0d02
#define ISD_ASC_COPY_TARGET_WRONG_TYPE 0x0d03
#define ISD_ASC_ALUA_TRANSITION 0x040a        /* LU not accessible, state transition */
#define ISD_ASC_ALUA_STANDBY 0x040b           /* ... target port in standby state */
#define ISD_ASC_ALUA_UNAVAILABLE 0x040c       /* ... target port in unavailable state */
#define ISD_ASC_SANITIZE_IN_PROGRESS 0x041b
#define ISD_ASC_WRITE_ERROR 0x0c00
#define ISD_ASC_UNRECOVERED_READ 0x1100
#define ISD_ASC_PARAM_LIST_LENGTH 0x1a00
#define ISD_ASC_MISCOMPARE_VERIFY 0x1d00
#define ISD_ASC_INVALID_OPCODE 0x2000
#define ISD_ASC_LBA_OUT_OF_RANGE 0x2100
#define ISD_ASC_INVALID_FIELD_CDB 0x2400
#define ISD_ASC_LU_NOT_SUPPORTED 0x2500
#define ISD_ASC_INVALID_FIELD_PARAM 0x2600
#define ISD_ASC_INVALID_RELEASE_PR 0x2604
#define ISD_ASC_TOO_MANY_TARGET_DESCS 0x2606
#define ISD_ASC_UNSUPPORTED_TARGET_DESC 0x2607
#define ISD_ASC_TOO_MANY_SEGMENT_DESCS 0x2608
#define ISD_ASC_UNSUPPORTED_SEGMENT_DESC 0x2609
#define ISD_ASC_WRITE_PROTECTED 0x2700
#define ISD_ASC_POWER_ON_RESET 0x2900
#define ISD_ASC_SANITIZE_FAILED 0x3103
#define ISD_ASC_BUS_DEVICE_RESET 0x2903
#define ISD_ASC_MODE_PARAMS_CHANGED 0x2a01
#define ISD_ASC_RESERVATIONS_PREEMPTED 0x2a03
#define ISD_ASC_RESERVATIONS_RELEASED 0x2a04
#define ISD_ASC_REGISTRATIONS_PREEMPTED 0x2a05
#define ISD_ASC_ALUA_CHANGED 0x2a06
#define ISD_ASC_CAPACITY_CHANGED 0x2a09
#define ISD_ASC_COMMANDS_CLEARED 0x2f00
#define ISD_ASC_REPORTED_LUNS_CHANGED 0x3f0e
#define ISD_ASC_INQUIRY_CHANGED 0x3f03
#define ISD_ASC_SAVING_NOT_SUPPORTED 0x3900
#define ISD_ASC_MEDIUM_REMOVAL_PREVENTED 0x5302
#define ISD_ASC_INSUFFICIENT_REG_RESOURCES 0x5504

/* Unit attention conditions, lowest bit first = reported first. */
enum {
	ISD_UA_POWER_ON = 1u << 0,              /* 29h/00h */
	ISD_UA_LUN_RESET = 1u << 1,             /* 29h/03h */
	ISD_UA_MODE_CHANGED = 1u << 2,          /* 2Ah/01h */
	ISD_UA_RES_PREEMPTED = 1u << 3,         /* 2Ah/03h */
	ISD_UA_RES_RELEASED = 1u << 4,          /* 2Ah/04h */
	ISD_UA_REG_PREEMPTED = 1u << 5,         /* 2Ah/05h */
	ISD_UA_CAPACITY_CHANGED = 1u << 6,      /* 2Ah/09h */
	/* 2Ah/06h: ahead of the two below, since until the initiator learns it its
	 * path choice is wrong (commands on a path gone standby all fail) */
	ISD_UA_ALUA_CHANGED = 1u << 7,
	ISD_UA_CMDS_CLEARED = 1u << 8,          /* 2Fh/00h: another nexus aborted our tasks */
	ISD_UA_LUNS_CHANGED = 1u << 9,          /* 3Fh/0Eh: a LU was added or removed */
	ISD_UA_INQUIRY_CHANGED = 1u << 10,      /* 3Fh/03h: ALUA turned on/off or regrouped */
};

/* cmd->io_flags */
#define ISD_SCSI_IOF_FUA 0x1u
#define ISD_SCSI_IOF_ZERO_COPY 0x2u     /* iov points into the store's memory */
#define ISD_SCSI_IOF_UNMAP 0x4u         /* WRITE SAME: deallocate instead of writing */
#define ISD_SCSI_IOF_NDOB 0x8u          /* WRITE SAME: no data-out, pattern is zeros */
#define ISD_SCSI_IOF_VERIFY_ONE 0x10u   /* VERIFY BYTCHK 11b: one block compared to each */
#define ISD_SCSI_IOF_IMMED 0x20u
#define ISD_SCSI_IOF_GATED 0x40u        /* holds the LU's write gate (sbc.c) until done */
#define ISD_SCSI_IOF_GATE_DIRECT 0x80u  /* a zero-copy RAM write: holds it until done/release */

/* Command table flags. */
#define ISD_OPF_HAS_SA 0x0001u          /* opcode carries a service action in byte 1 */
#define ISD_OPF_UA_EXEMPT 0x0002u       /* neither reports nor clears a unit attention */
#define ISD_OPF_NO_LU 0x0004u           /* answered even when the LU does not exist */
#define ISD_OPF_PR_ALLOW 0x0008u        /* allowed under any persistent reservation */
#define ISD_OPF_PR_READ 0x0010u         /* allowed under Write Exclusive types */
#define ISD_OPF_SPC2_ALLOW 0x0020u      /* allowed while another nexus holds RESERVE */
#define ISD_OPF_THIN 0x0040u            /* only on thin-provisioned LUs */
#define ISD_OPF_ATOMIC 0x0080u          /* only on LUs that write atomically (lu->max_atomic_blocks) */
#define ISD_OPF_ALUA 0x0100u            /* only on devices with ALUA configured */
/* Processed in the ALUA standby state (SPC-5 5.16.2.4.4); the others get NOT READY. */
#define ISD_OPF_ALUA_SB 0x0200u
/* Processed in the unavailable (5.16.2.4.5) and transitioning (5.16.2.5) states. */
#define ISD_OPF_ALUA_UN 0x0400u

#define ISD_SCSI_NO_SA 0xffffu

struct isd_scsi_op {
	uint8_t opcode;
	uint16_t sa;
	uint8_t cdb_len;
	uint16_t flags;
	const char *name;
	/* Decodes the CDB: returns ISD_SCSI_SETUP_READY or _DONE. */
	int (*setup)(struct isd_scsi_cmd *cmd);
	/* Runs it; calls isd_scsi_cmd_done() exactly once. NULL: done at once. */
	void (*exec)(struct isd_scsi_cmd *cmd);
	uint8_t usage[16];              /* CDB usage data for REPORT SUPPORTED OPCODES */
};

extern const struct isd_scsi_op g_isd_scsi_ops[];
extern const size_t g_isd_scsi_nops;
/* The entry for an opcode and service action (sa is ignored for opcodes that
 * have none), or NULL; *opcode_known says whether the opcode has any entry. */
const struct isd_scsi_op *isd_scsi_op_find(uint8_t opcode, uint16_t sa, bool *opcode_known);

/* State of one I_T nexus at one LU. */
struct isd_scsi_itn {
	TAILQ_ENTRY(isd_scsi_itn) link;
	uint64_t nexus_id;
	/* Port names copied from the nexus: PR unit attentions find a nexus by
	 * them, and a copy cannot dangle if the transport frees its nexus early. */
	char iport[256];
	char tport[256];
	uint32_t ua;                    /* ISD_UA_* pending */
	bool prevent;                   /* PREVENT ALLOW MEDIUM REMOVAL */
	struct isd_xcopy_held *xcopy;   /* EXTENDED COPY results held for this nexus (xcopy.c) */
	bool pr_abort;                  /* preempted by the PREEMPT AND ABORT being processed */
};

/* A persistent reservation registration (I_T nexus named by its ports). */
struct isd_scsi_pr_reg {
	TAILQ_ENTRY(isd_scsi_pr_reg) link;
	uint64_t key;
	uint16_t rtpi;
	char iport[256];
	char tport[256];
};

#define ISD_PR_MAX_REGS 128

/*
 * What a PR OUT does to nexuses other than its own, per registration
 * (I_T nexus): unit attentions to raise and whether to abort its tasks. With
 * the state shared between gateways (pr.c), it is recorded while the command
 * runs and applied, here and by every other gateway, once the change is
 * committed.
 */
struct isd_pr_fx {
	uint32_t ua;                    /* ISD_UA_* */
	bool abort;                     /* PREEMPT AND ABORT took its tasks */
	char iport[256];
	char tport[256];
};

struct isd_pr_fxlist {
	unsigned n;
	struct isd_pr_fx fx[ISD_PR_MAX_REGS];
};

/* PR types (SPC-5 table 'Persistent reservation type codes') */
#define ISD_PR_WE 0x1
#define ISD_PR_EA 0x3
#define ISD_PR_WE_RO 0x5
#define ISD_PR_EA_RO 0x6
#define ISD_PR_WE_AR 0x7
#define ISD_PR_EA_AR 0x8

struct isd_scsi_lu {
	struct isd_scsi_dev *dev;
	uint32_t lun;
	struct isd_bstore *bs;
	uint32_t block_size;
	uint8_t lbppb_exp;              /* LOGICAL BLOCKS PER PHYSICAL BLOCK EXPONENT */
	uint64_t nblocks;
	bool read_only;
	bool thin;
	bool lbprz;                     /* discarded blocks read as zeros */
	bool wce;                       /* current WCE (MODE SELECT may change it) */
	bool wce_default;
	/*
	 * Control mode page SWP (MODE SELECT): the medium is write protected
	 * until it is cleared. TST = 000b: one task set and one Control mode page
	 * for all I_T nexuses, so it holds for every nexus.
	 */
	bool swp;
	/* SANITIZE (sanitize.c): the operation running, or NULL; the failure mode. */
	struct isd_scsi_sanitize *sanitize;
	bool san_failed;
	bool san_failed_ause;           /* the failed one had AUSE: EXIT FAILURE MODE may end it */
	/* Every block deallocated by BLOCK ERASE and none written since (any command
	 * that may write clears it): GET LBA STATUS reports them deallocated. */
	bool erased;
	char vendor[9];
	char product[17];
	char revision[5];
	char serial[33];
	uint64_t naa_id;
	uint32_t max_xfer_blocks;       /* Block Limits: MAXIMUM TRANSFER LENGTH */
	uint32_t max_unmap_blocks;
	uint32_t unmap_gran_blocks;     /* OPTIMAL UNMAP GRANULARITY (0: the physical block) */
	uint32_t max_unmap_descs;
	uint32_t max_ws_blocks;
	/* Block Limits atomic fields: 0 = no WRITE ATOMIC. Alignment and granularity are
	 * the physical block, so an atomic write never shares one with another write. */
	uint32_t max_atomic_blocks;
	uint32_t atomic_align;
	uint32_t atomic_gran;
	/*
	 * The LU's write gate (sbc.c). On a file, block device or RBD store the
	 * commands that write pass it from exec to completion, any number at
	 * once, or one read-modify-write (COMPARE AND WRITE, ORWRITE) alone; in
	 * arrival order. On a RAM store the zero-copy WRITEs pass it from setup
	 * until their data is in, and a read-modify-write or WRITE ATOMIC waits
	 * for them.
	 */
	uint32_t gate_writers;          /* atomic: writes on the shared path pass it too */
	bool gate_rmw;
	TAILQ_HEAD(, isd_scsi_cmd) gate_wait;   /* by cmd->link */
	/* the last shared writer out, with commands waiting: lets them in after
	 * its section, under the monitor (sbc.c gate_kick) */
	struct isd_monitor_call gate_kick;
	int gate_kick_pending;          /* atomic */
	struct isd_scsi_dev *gate_kick_dev;

	TAILQ_HEAD(, isd_scsi_itn) itns;

	/* SPC-2 RESERVE/RELEASE: held by one nexus, dropped when it goes. */
	bool spc2_held;
	uint64_t spc2_nexus;

	/* Persistent reservations (in memory; APTPL is refused). */
	TAILQ_HEAD(, isd_scsi_pr_reg) regs;
	unsigned nregs;
	uint32_t pr_gen;
	bool pr_held;
	uint8_t pr_type;
	struct isd_scsi_pr_reg *pr_holder;      /* NULL for all-registrants types */
	/* non-NULL while a shared PR OUT runs: its effects are recorded there */
	struct isd_pr_fxlist *pr_fx;
	/* version in the store of the shared state the copy above holds (0: none yet) */
	uint64_t pr_ver;
	/* reloads for other gateways' changes waiting on the store (pr.c) */
	TAILQ_HEAD(, isd_pr_job) pr_jobs;
	/*
	 * Commands set up on the LU and not yet released: a removed LU (no longer
	 * in dev->lus) is freed, and its store closed, when the last one is.
	 */
	uint32_t refs;
	/*
	 * EXTENDED COPY's holds, from any device's thread: under the registry
	 * mutex (dev.c), not counted in refs. A removed LU whose refs drained
	 * while copies hold it leaves its device (orphan, dev NULL) and the last
	 * isd_scsi_lu_put frees it.
	 */
	uint32_t copy_refs;
	bool orphan;
	uint32_t reset_gen;             /* LU resets so far: a copy through it stops at one */
	bool removed;
	uint8_t alua_state;             /* enum isd_scsi_alua_state, this gateway's group */
	bool alua_changed;              /* changed since start: RTPG STATUS CODE 02h */
	uint64_t naa_ext;               /* NAA designator extension (cfg, else the LUN) */
	void (*gone)(void *arg, struct isd_bstore *bs);  /* before the store is closed */
	void *gone_arg;
	struct isd_scsi_lu *removed_next;       /* on dev->removed */
	/* the free posted to the store's reactor when the last holder is elsewhere */
	struct isd_reactor_msg free_msg;

	struct isd_io_stats io;         /* commands to this LU */
	/* the shares of the commands set up on the shared path, one per monitor
	 * slot, each written only by its thread (allocated there) */
	struct isd_io_stats *slot_io[ISD_MONITOR_SLOTS];
};

TAILQ_HEAD(isd_scsi_live, isd_scsi_cmd);

/* What one thread's commands on the shared path keep of the device. */
struct isd_scsi_dev_slot {
	struct isd_scsi_live live;
	struct isd_io_stats io;
	uint64_t cmds;                  /* set up on the shared path */
};

struct isd_scsi_dev {
	char name[224];
	TAILQ_ENTRY(isd_scsi_dev) link;         /* on the process's list of devices */
	struct isd_scsi_task_ops task_ops;      /* the transport's (abort_one NULL: none) */
	struct isd_scsi_lu *lus[ISD_SCSI_MAX_LUNS];
	uint32_t nlus;
	struct isd_scsi_lu *removed;            /* removed LUs with commands still alive */
	struct isd_scsi_alua_cfg alua;          /* group 0: ALUA off */
	struct isd_io_stats io;         /* every command to the device, LU or not */
	/* every command set up and not yet released (cmd->live_link), for the
	 * victims of a reservation change and of task management */
	struct isd_scsi_live live;
	uint64_t walk_gen;              /* isd_scsi_dev_each_cmd's passes */
	/*
	 * Everything above and every LU's state is touched under this monitor
	 * only (util/monitor.h): the public functions of scsi.h enter it, a
	 * store's completion runs under the monitor its request was submitted
	 * under, and a command's done callback waits for the outermost leave.
	 */
	struct isd_monitor mon;
	/*
	 * Its shared face (util/monitor.h): READ and WRITE on a LU with nothing
	 * unusual about it (no reservation, unit attention, sanitize, ALUA
	 * refusal; RAM for a write) are set up, run, completed and released
	 * under it, by any number of threads at once, reading what the monitor
	 * guards and writing only their own: the LU's reference count (atomic),
	 * their slot's live list and figures, and the command. Anything else
	 * takes the monitor, which waits for them (dev.c, "the shared path").
	 */
	struct isd_monitor fast;
	struct isd_scsi_dev_slot *slot[ISD_MONITOR_SLOTS];     /* by monitor slot, lazily */
};

static inline struct isd_monitor *
isd_scsi_dev_monitor(struct isd_scsi_dev *dev)
{
	return dev != NULL ? &dev->mon : NULL;
}

/* No command may change the medium: a read-only LU, or SWP set. */
static inline bool
isd_scsi_lu_wp(const struct isd_scsi_lu *lu)
{
	return lu->read_only || lu->swp;
}

#define ISD_SCSI_MAX_XFER (16u << 20)   /* bytes; bounds every data buffer */

/* sense.c: finishing with CHECK CONDITION */
void isd_scsi_check(struct isd_scsi_cmd *cmd, uint8_t key, uint16_t asc_ascq);
void isd_scsi_sense_info(struct isd_scsi_cmd *cmd, uint32_t info);
/* Sense-key-specific PROGRESS INDICATION (fraction of 65536 done). */
void isd_scsi_sense_progress(struct isd_scsi_cmd *cmd, uint16_t progress);
/* Sense-key-specific field pointer: in_cdb (C/D), byte, bit (-1: no bit pointer). */
void isd_scsi_sense_field(struct isd_scsi_cmd *cmd, bool in_cdb, uint16_t byte, int bit);
void isd_scsi_invalid_cdb(struct isd_scsi_cmd *cmd, uint16_t byte, int bit);
void isd_scsi_invalid_param(struct isd_scsi_cmd *cmd, uint16_t byte, int bit);
/* Builds 18 bytes of fixed-format sense into buf. */
void isd_scsi_sense_fixed(uint8_t *buf, uint8_t key, uint16_t asc_ascq);

/* dev.c: buffers, completion, state */
void isd_scsi_cmd_done(struct isd_scsi_cmd *cmd);
/* Allocates the command's data buffer (cmd->buf_ops or malloc) and points iov at it. */
void *isd_scsi_buf_alloc(struct isd_scsi_cmd *cmd, uint32_t len);
/* Data-in: copies min(len, xfer_len) bytes of a built response into a command buffer.
 * Returns 0, or -ENOMEM (then the command got BUSY). */
int isd_scsi_data_in(struct isd_scsi_cmd *cmd, const void *buf, uint32_t len);
/* Setup of a data-out command: xfer_len bytes asked by the CDB; allocates
 * min(edtl, xfer_len). Returns READY, or DONE with BUSY on no memory. */
int isd_scsi_setup_data_out(struct isd_scsi_cmd *cmd, uint32_t xfer_len);
/* Setup of a data-in command whose response exec builds. */
int isd_scsi_setup_data_in(struct isd_scsi_cmd *cmd, uint32_t alloc_len);

/*
 * Logical units across devices, for the copy manager (xcopy.c). A copy runs
 * under its own device's monitor and may name a LU of another device, whose
 * reactors run at the same time; it never waits for that device's monitor
 * while holding its own (two copies in opposite directions would deadlock).
 *
 * The registry: every device of the process and the LU tables' slots are
 * guarded by one small mutex of dev.c, taken when a LU is added or removed,
 * when a device goes, at the lookup and around the copy references, and
 * never while waiting for anything else (its holder only tries a monitor,
 * isd_scsi_lu_enter). isd_scsi_lu_find_naa() finds a LU that is in service
 * (a removed one is not found) by the 16 bytes of its NAA designator (VPD
 * 0x83), looking in `prefer` first, and returns it held: the LU (and its
 * store) stays alive, removed or its device destroyed meanwhile, until the
 * matching isd_scsi_lu_put() from any thread. What never changes after the
 * LU was added (bs, block_size, the designator, bs->mem_base) may be read
 * while it is held; the rest of its state (removal, size, resets, write
 * protection, reservations, write cache) only inside isd_scsi_lu_enter().
 */
void isd_scsi_lu_naa(const struct isd_scsi_lu *lu, uint8_t out[16]);
struct isd_scsi_lu *isd_scsi_lu_find_naa(struct isd_scsi_dev *prefer, const uint8_t *naa,
					 uint32_t len);
void isd_scsi_lu_put(struct isd_scsi_lu *lu);
/*
 * Makes lu's state readable for a command of `own` (whose monitor the caller
 * holds): enters the monitor of lu's device when that is another device,
 * without waiting. 0 with *held the monitor to leave (NULL: none was needed,
 * lu is own's or was orphaned by its device's end, and then nothing changes
 * it any more); -EBUSY: that device's monitor is taken, try again later.
 */
int isd_scsi_lu_enter(struct isd_scsi_dev *own, struct isd_scsi_lu *lu, struct isd_monitor **held);
/* Whether a command of `nexus` that reads (or writes) the LU conflicts with a
 * reservation held there. */
bool isd_scsi_lu_conflict(struct isd_scsi_lu *lu, struct isd_scsi_nexus *nexus, bool write);
/* The nexus's state at the LU if it has any (never creates it). */
struct isd_scsi_itn *isd_scsi_itn_find(struct isd_scsi_lu *lu, uint64_t nexus_id);
/* Keeps the LU (and its store) alive for work that outlives any command (SANITIZE). */
void isd_scsi_lu_hold(struct isd_scsi_lu *lu);
void isd_scsi_lu_unhold(struct isd_scsi_lu *lu);

/* The command's nexus, or one shared anonymous nexus when the transport gave none. */
struct isd_scsi_nexus *isd_scsi_cmd_nexus(struct isd_scsi_cmd *cmd);
struct isd_scsi_itn *isd_scsi_itn_get(struct isd_scsi_lu *lu, struct isd_scsi_nexus *nexus);
/* Raises `ua` on every nexus of the LU except `except_id` (when has_except). */
void isd_scsi_ua_raise_all(struct isd_scsi_lu *lu, uint32_t ua, bool has_except,
			   uint64_t except_id);
/* Raises `ua` on the nexuses whose ports match a registration. */
void isd_scsi_ua_raise_ports(struct isd_scsi_lu *lu, uint32_t ua, const char *iport,
			     const char *tport);
/* Marks the nexuses whose ports match a registration for PREEMPT AND ABORT. */
void isd_scsi_itn_mark_abort(struct isd_scsi_lu *lu, const char *iport, const char *tport);
/*
 * After a reservation change made by `cmd`: ends the tasks it fences off (those of
 * nexuses marked by isd_scsi_itn_mark_abort, and writes whose data lands straight in
 * the LU and that would now conflict), then completes cmd with isd_scsi_cmd_done() once
 * their in-flight I/O has finished. isd_scsi_fence() does the same without waiting
 * and without completing cmd (for commands that finish in setup).
 */
void isd_scsi_fence_done(struct isd_scsi_cmd *cmd);
void isd_scsi_fence(struct isd_scsi_cmd *cmd);
/*
 * Called just before a command hands data to the store: false, with the command's
 * status set (TASK ABORTED, RESERVATION CONFLICT), when it was cancelled or its nexus
 * lost access to the LU since setup checked; the caller then finishes it.
 */
bool isd_scsi_may_store(struct isd_scsi_cmd *cmd);
/* True when this thread runs cmd on the shared path now (inside a section of
 * its device's shared face, dev.c): what it writes must be its own or atomic. */
bool isd_scsi_shared_here(const struct isd_scsi_cmd *cmd);
/* Takes the highest-priority pending UA of the nexus into key/asc; false if none. */
bool isd_scsi_ua_take(struct isd_scsi_itn *itn, uint16_t *asc_ascq);

/* stats.c: a command starts (end of setup, t0 taken before it) and completes (exactly
 * once: abandoned = released without completing, counted as aborted). */
void isd_scsi_io_start(struct isd_scsi_cmd *cmd, uint64_t t0);
void isd_scsi_io_done(struct isd_scsi_cmd *cmd, bool abandoned);

/* pr.c */
struct isd_scsi_pr_reg *isd_scsi_pr_find(struct isd_scsi_lu *lu, const struct isd_scsi_nexus *n);
bool isd_scsi_pr_is_holder(struct isd_scsi_lu *lu, const struct isd_scsi_nexus *n);
void isd_scsi_pr_clear_all(struct isd_scsi_lu *lu);
/* The store shares the PR state between gateways (bstore.h pr_load). */
bool isd_scsi_pr_shared(const struct isd_scsi_lu *lu);
/* Starts using the store's shared state: loads it, follows other gateways' changes. */
void isd_scsi_pr_share_start(struct isd_scsi_lu *lu);
/* After the store is closed (its callbacks dropped): frees the reloads still waiting. */
void isd_scsi_pr_share_stop(struct isd_scsi_lu *lu);
/*
 * Aborts the tasks of the nexuses marked by isd_scsi_itn_mark_abort (and the
 * direct writes that now conflict) without a command of this gateway causing
 * it: another gateway's PREEMPT AND ABORT. Calls done(arg) once the execs of
 * the aborted tasks that were in flight (I/O already in the store) finished,
 * possibly before returning.
 */
void isd_scsi_fence_lu(struct isd_scsi_lu *lu, void (*done)(void *arg), void *arg);

/* Opcode handlers: spc.c */
int isd_spc_setup_tur(struct isd_scsi_cmd *cmd);
int isd_spc_setup_inquiry(struct isd_scsi_cmd *cmd);
void isd_spc_exec_inquiry(struct isd_scsi_cmd *cmd);
int isd_spc_setup_request_sense(struct isd_scsi_cmd *cmd);
void isd_spc_exec_request_sense(struct isd_scsi_cmd *cmd);
int isd_spc_setup_report_luns(struct isd_scsi_cmd *cmd);
void isd_spc_exec_report_luns(struct isd_scsi_cmd *cmd);
int isd_spc_setup_mode_sense(struct isd_scsi_cmd *cmd);
void isd_spc_exec_mode_sense(struct isd_scsi_cmd *cmd);
int isd_spc_setup_mode_select(struct isd_scsi_cmd *cmd);
void isd_spc_exec_mode_select(struct isd_scsi_cmd *cmd);
int isd_spc_setup_rsoc(struct isd_scsi_cmd *cmd);
void isd_spc_exec_rsoc(struct isd_scsi_cmd *cmd);
int isd_spc_setup_start_stop(struct isd_scsi_cmd *cmd);
int isd_spc_setup_prevent_allow(struct isd_scsi_cmd *cmd);
int isd_spc_setup_reserve(struct isd_scsi_cmd *cmd);
int isd_spc_setup_release(struct isd_scsi_cmd *cmd);

/* alua.c: REPORT TARGET PORT GROUPS, and the access state check of cmd_setup */
int isd_alua_setup_rtpg(struct isd_scsi_cmd *cmd);
void isd_alua_exec_rtpg(struct isd_scsi_cmd *cmd);
/* True (and the command finished with NOT READY) when the LU's access state in
 * this gateway's group does not let op be processed. */
bool isd_alua_refuses(struct isd_scsi_cmd *cmd, struct isd_scsi_lu *lu,
		      const struct isd_scsi_op *op);
/* Bytes of the Target Port Group designator for VPD 0x83 (0 when ALUA is off). */
uint32_t isd_alua_vpd_designator(const struct isd_scsi_dev *dev, uint8_t *d);

/* pr.c */
int isd_pr_setup_in(struct isd_scsi_cmd *cmd);
void isd_pr_exec_in(struct isd_scsi_cmd *cmd);
int isd_pr_setup_out(struct isd_scsi_cmd *cmd);
void isd_pr_exec_out(struct isd_scsi_cmd *cmd);

/* sbc.c */
int isd_sbc_setup_read_capacity10(struct isd_scsi_cmd *cmd);
void isd_sbc_exec_read_capacity10(struct isd_scsi_cmd *cmd);
int isd_sbc_setup_read_capacity16(struct isd_scsi_cmd *cmd);
void isd_sbc_exec_read_capacity16(struct isd_scsi_cmd *cmd);
int isd_sbc_setup_get_lba_status(struct isd_scsi_cmd *cmd);
void isd_sbc_exec_get_lba_status(struct isd_scsi_cmd *cmd);
int isd_sbc_setup_read(struct isd_scsi_cmd *cmd);
void isd_sbc_exec_read(struct isd_scsi_cmd *cmd);
int isd_sbc_setup_write(struct isd_scsi_cmd *cmd);
void isd_sbc_exec_write(struct isd_scsi_cmd *cmd);
int isd_sbc_setup_verify(struct isd_scsi_cmd *cmd);
void isd_sbc_exec_verify(struct isd_scsi_cmd *cmd);
int isd_sbc_setup_sync_cache(struct isd_scsi_cmd *cmd);
void isd_sbc_exec_sync_cache(struct isd_scsi_cmd *cmd);
int isd_sbc_setup_write_same(struct isd_scsi_cmd *cmd);
void isd_sbc_exec_write_same(struct isd_scsi_cmd *cmd);
int isd_sbc_setup_unmap(struct isd_scsi_cmd *cmd);
void isd_sbc_exec_unmap(struct isd_scsi_cmd *cmd);
int isd_sbc_setup_caw(struct isd_scsi_cmd *cmd);
void isd_sbc_exec_caw(struct isd_scsi_cmd *cmd);
int isd_sbc_setup_orwrite(struct isd_scsi_cmd *cmd);
void isd_sbc_exec_orwrite(struct isd_scsi_cmd *cmd);
int isd_sbc_setup_write_atomic(struct isd_scsi_cmd *cmd);
void isd_sbc_exec_write_atomic(struct isd_scsi_cmd *cmd);
/* A command that held the write gate is done: lets the next ones in. */
void isd_sbc_gate_leave(struct isd_scsi_cmd *cmd);
void isd_sbc_gate_direct_leave(struct isd_scsi_cmd *cmd);
/* Whether cmd's exec may pass the write gate on the shared path (dev.c): true
 * when it needs no gate or the gate admits it without a wait. */
bool isd_sbc_gate_shared_ok(const struct isd_scsi_cmd *cmd);
int isd_sbc_setup_prefetch(struct isd_scsi_cmd *cmd);
int isd_sbc_setup_read_defect_data(struct isd_scsi_cmd *cmd);
void isd_sbc_exec_read_defect_data(struct isd_scsi_cmd *cmd);

/* xcopy.c: EXTENDED COPY (LID1) and RECEIVE COPY RESULTS */
int isd_xcopy_setup(struct isd_scsi_cmd *cmd);
void isd_xcopy_exec(struct isd_scsi_cmd *cmd);
int isd_xcopy_setup_results(struct isd_scsi_cmd *cmd);
void isd_xcopy_exec_results(struct isd_scsi_cmd *cmd);
/* The Third-party Copy VPD page (8Fh) into b (at most 128 bytes); returns its length. */
uint32_t isd_xcopy_vpd(struct isd_scsi_lu *lu, uint8_t *b);
/* Drops the results held for a nexus (its state at a LU goes away). */
void isd_xcopy_held_free(struct isd_scsi_itn *itn);
/* WRITE SAME's engine: writes cmd->aux_buf (aux_len bytes, whole blocks of the
 * pattern) over LBAs io_pos..io_end, then isd_scsi_cmd_done(cmd). */
void isd_sbc_write_pattern(struct isd_scsi_cmd *cmd);

/* sanitize.c */
int isd_sbc_setup_sanitize(struct isd_scsi_cmd *cmd);
void isd_sbc_exec_sanitize(struct isd_scsi_cmd *cmd);
/* How far the running operation is, as a fraction of 65536 (0 when none runs). */
uint16_t isd_scsi_sanitize_progress(const struct isd_scsi_lu *lu);
/* The LU is freed with an operation running: called before (false) and after (true)
 * its store is closed. */
void isd_scsi_sanitize_stop(struct isd_scsi_lu *lu, bool store_closed);
/* cmd is a SANITIZE waiting for its operation and was cancelled: it is answered
 * on the next reactor turn, the operation goes on. False for any other command. */
bool isd_scsi_sanitize_cancel(struct isd_scsi_cmd *cmd);

/* VPD / mode page builders shared with tests through the public commands only. */
uint32_t isd_spc_mode_pages(struct isd_scsi_lu *lu, uint8_t page, uint8_t pc, uint8_t *buf);

#endif
