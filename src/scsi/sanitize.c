/*
 * SANITIZE (SBC-4 4.11, 5.30): OVERWRITE, BLOCK ERASE and EXIT FAILURE MODE.
 * CRYPTOGRAPHIC ERASE is not offered: no store here encrypts its blocks, so
 * there is no key to change (it is refused as an unknown service action and
 * WACEREQ stays 0).
 *
 * A sanitize operation belongs to the LU, not to the command that started it:
 * with IMMED the command is answered at once and the operation goes on; without
 * it the command waits for the end. Neither a task management function nor the
 * loss of the nexus stops it (SBC-4 4.11.1). It runs on one command of its own
 * (struct isd_scsi_sanitize.io) through the engines WRITE SAME and UNMAP use:
 * OVERWRITE is WRITE SAME's pattern writer over the whole LU once per pass,
 * BLOCK ERASE is the store's discard (punched holes, BLKDISCARD, dropped RAM
 * pages), chunk by chunk, offered only where an erased block reads as zeros. Every step is asynchronous, so the reactor goes on
 * serving the other LUs and the commands allowed meanwhile.
 *
 * While it runs, every command but INQUIRY, REPORT LUNS and REQUEST SENSE gets
 * NOT READY, SANITIZE IN PROGRESS with the progress in the sense data (dev.c,
 * REQUEST SENSE in spc.c). A failed operation leaves the LU in the sanitize
 * failure mode: media access gets MEDIUM ERROR, SANITIZE COMMAND FAILED until a
 * SANITIZE completes, or until EXIT FAILURE MODE when the failed one had AUSE.
 *
 * Threads: the operation runs on the reactor the SANITIZE command came in on
 * (san->r): its passes are submitted there, so the store completes them
 * there (bstore.h), and the answer of a cancelled waiter is deferred there,
 * where its transport runs, never on the store's reactor. A cancel from
 * another reactor posts that answer to san->r instead (the timer belongs to
 * san->r's loop); the operation's end and a stop touch the timer on san->r,
 * or at the device's end, when its reactors are idle (as isd_bstore_close).
 */
#include <stdlib.h>
#include <string.h>

#include "bstore/bstore.h"
#include "reactor/reactor.h"
#include "scsi/scsi_int.h"
#include "util/endian.h"

#define SAN_OVERWRITE 0x01
#define SAN_BLOCK_ERASE 0x02
#define SAN_EXIT_FAILURE 0x1f

#define SAN_CHUNK (1u << 20)            /* bytes per store request (WRITE SAME's too) */
#define SAN_ERASE_CHUNK (64ull << 20)   /* bytes per discard */
#define SAN_PARAM_HDR 4

struct isd_scsi_sanitize {
	struct isd_scsi_cmd io;         /* the LU's own command that runs the passes */
	struct isd_scsi_lu *lu;
	struct isd_scsi_cmd *waiter;    /* the SANITIZE without IMMED, answered at the end */
	struct isd_scsi_cmd *cancelled; /* that command, aborted: answered on the next turn */
	struct isd_timer answer;        /* the cancelled command's answer, on r */
	struct isd_reactor *r;          /* the reactor the SANITIZE came in on */
	uint8_t sa;
	uint8_t passes;                 /* OVERWRITE COUNT */
	uint8_t pass;                   /* passes done */
	bool invert;
	bool ause;
	bool stopping;                  /* the LU is being freed: start nothing more */
};

uint16_t
isd_scsi_sanitize_progress(const struct isd_scsi_lu *lu)
{
	const struct isd_scsi_sanitize *san = lu->sanitize;
	uint64_t done, total;

	if (san == NULL || lu->nblocks == 0)
		return 0;
	total = (uint64_t)(san->passes != 0 ? san->passes : 1) * lu->nblocks;
	done = (uint64_t)san->pass * lu->nblocks + san->io.io_pos;
	if (done > total)
		done = total;
	/* PROGRESS INDICATION: a fraction of 65536 */
	return (uint16_t)(done * 65535 / total);
}

int
isd_sbc_setup_sanitize(struct isd_scsi_cmd *cmd)
{
	struct isd_scsi_lu *lu = cmd->lu;
	const uint8_t *cdb = cmd->cdb;
	uint8_t sa = cdb[1] & 0x1f;
	uint32_t len = get_be16(cdb + 7);

	/* ZNR is for zoned devices (we are not one); bytes 2 to 6 are reserved */
	if (cdb[1] & 0x40) {
		isd_scsi_invalid_cdb(cmd, 1, 6);
		return ISD_SCSI_SETUP_DONE;
	}
	for (uint16_t i = 2; i <= 6; i++) {
		if (cdb[i] != 0) {
			isd_scsi_invalid_cdb(cmd, i, -1);
			return ISD_SCSI_SETUP_DONE;
		}
	}
	if (sa == SAN_EXIT_FAILURE) {
		if (len != 0) {
			isd_scsi_invalid_cdb(cmd, 7, -1);
			return ISD_SCSI_SETUP_DONE;
		}
		/* Out of a failure mode only when the failed operation allowed it. */
		if (lu->san_failed && !lu->san_failed_ause) {
			isd_scsi_invalid_cdb(cmd, 1, 4);
			return ISD_SCSI_SETUP_DONE;
		}
		lu->san_failed = false;
		return ISD_SCSI_SETUP_DONE;
	}
	if (sa == SAN_OVERWRITE) {
		/* a header and a pattern of 1 to block-size bytes */
		if (len <= SAN_PARAM_HDR || len > lu->block_size + SAN_PARAM_HDR) {
			isd_scsi_invalid_cdb(cmd, 7, -1);
			return ISD_SCSI_SETUP_DONE;
		}
	} else if (!lu->lbprz) {
		/*
		 * BLOCK ERASE is deallocation, an erase only where a deallocated
		 * block reads as zeros: not on a device whose discard promises
		 * nothing (thin LUs only get this far).
		 */
		isd_scsi_invalid_cdb(cmd, 1, 4);
		return ISD_SCSI_SETUP_DONE;
	} else if (len != 0) {                  /* BLOCK ERASE takes no parameters */
		isd_scsi_invalid_cdb(cmd, 7, -1);
		return ISD_SCSI_SETUP_DONE;
	}
	if (isd_scsi_lu_wp(lu)) {
		isd_scsi_check(cmd, ISD_SK_DATA_PROTECT, ISD_ASC_WRITE_PROTECTED);
		return ISD_SCSI_SETUP_DONE;
	}
	if (sa == SAN_BLOCK_ERASE)
		return ISD_SCSI_SETUP_READY;
	return isd_scsi_setup_data_out(cmd, len);
}

static void san_erase_step(struct isd_scsi_sanitize *san);

/* The operation is over: the LU is usable again, the waiting command answered. */
static void
san_finish(struct isd_scsi_sanitize *san, bool ok)
{
	struct isd_scsi_lu *lu = san->lu;
	struct isd_scsi_cmd *waiter = san->waiter, *cancelled = san->cancelled;

	lu->sanitize = NULL;
	/* on san->r: the passes complete where they were submitted */
	if (cancelled != NULL)
		isd_reactor_timer_stop(san->r, &san->answer);
	if (ok) {
		/* a deallocated LU reads as zeros; GET LBA STATUS says so until a write */
		lu->erased = san->sa == SAN_BLOCK_ERASE;
	} else {
		lu->san_failed = true;
		lu->san_failed_ause = san->ause;
	}
	free(san->io.aux_buf);
	free(san);
	if (waiter != NULL) {
		if (!ok)
			isd_scsi_check(waiter, ISD_SK_MEDIUM_ERROR, ISD_ASC_SANITIZE_FAILED);
		isd_scsi_cmd_done(waiter);
	}
	if (cancelled != NULL)
		isd_scsi_cmd_done(cancelled);
	isd_scsi_lu_unhold(lu);
}

static void
invert(uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)~p[i];
}

/* san->io finished a pass (WRITE SAME's engine calls it done), or failed. */
static void
san_io_done(struct isd_scsi_cmd *io)
{
	struct isd_scsi_sanitize *san = io->cb_arg;

	if (san->stopping)
		return;
	if (io->status != ISD_SAM_GOOD) {
		san_finish(san, false);
		return;
	}
	if (san->sa == SAN_OVERWRITE && ++san->pass < san->passes) {
		/* INVERT: the pattern flips between consecutive passes */
		if (san->invert)
			invert(io->aux_buf, io->aux_len);
		io->io_pos = 0;
		isd_sbc_write_pattern(io);
		return;
	}
	san_finish(san, true);
}

static void
san_erase_done(void *arg, int status)
{
	struct isd_scsi_sanitize *san = arg;

	if (san->stopping)
		return;
	if (status < 0) {
		san_finish(san, false);
		return;
	}
	san_erase_step(san);
}

static void
san_erase_step(struct isd_scsi_sanitize *san)
{
	struct isd_scsi_lu *lu = san->lu;
	uint64_t n = san->io.io_end - san->io.io_pos;
	int rc;

	if (n == 0) {
		san_finish(san, true);
		return;
	}
	if (n > SAN_ERASE_CHUNK / lu->block_size)
		n = SAN_ERASE_CHUNK / lu->block_size;
	rc = lu->bs->ops->discard(lu->bs, san->io.io_pos * lu->block_size, n * lu->block_size,
				  san_erase_done, san);
	if (rc < 0) {
		san_finish(san, false);
		return;
	}
	san->io.io_pos += n;
}

static void
san_answer_cancelled(void *arg)
{
	struct isd_scsi_sanitize *san = arg;
	struct isd_monitor *mon = isd_scsi_dev_monitor(san->lu->dev);
	struct isd_scsi_cmd *cmd;

	isd_monitor_enter(mon);
	cmd = san->cancelled;
	san->cancelled = NULL;
	if (cmd != NULL)
		isd_scsi_cmd_done(cmd);
	isd_monitor_leave(mon);
}

/* A cancel on another reactor than san->r: the answer, posted to san->r. */
struct san_post {
	struct isd_reactor_msg m;
	struct isd_scsi_cmd *cmd;
	struct isd_monitor *mon;
};

static void
san_answer_posted(void *arg)
{
	struct san_post *p = arg;

	/* the command is not answered yet, so its device is still there */
	isd_monitor_enter(p->mon);
	isd_scsi_cmd_done(p->cmd);
	isd_monitor_leave(p->mon);
	free(p);
}

/*
 * ABORT TASK, ABORT TASK SET or a reset reached the SANITIZE command that waits
 * for its operation: the operation goes on (SBC-4 4.11: nothing but its own
 * end stops it; TEST UNIT READY keeps saying SANITIZE IN PROGRESS), but the
 * command leaves the task set now, answered on the next reactor turn (the
 * transport is still inside its abort when this runs).
 */
bool
isd_scsi_sanitize_cancel(struct isd_scsi_cmd *cmd)
{
	struct isd_scsi_lu *lu = cmd->lu;
	struct isd_scsi_sanitize *san = lu != NULL ? lu->sanitize : NULL;
	struct isd_reactor *here;

	if (san == NULL || san->waiter != cmd)
		return false;
	san->waiter = NULL;
	cmd->status = ISD_SAM_TASK_ABORTED;
	here = isd_reactor_current();
	if (here != NULL && here != san->r) {
		/*
		 * The timer is san->r's, and the answer goes where the command
		 * came in: posted, the message owns the command from here (the
		 * operation's end no longer answers it). Without memory, the
		 * answer waits for the operation's end.
		 */
		struct san_post *p = malloc(sizeof(*p));

		if (p == NULL) {
			san->cancelled = cmd;
			return true;
		}
		p->m.cb = san_answer_posted;
		p->m.arg = p;
		p->cmd = cmd;
		p->mon = isd_scsi_dev_monitor(lu->dev);
		isd_reactor_post(san->r, &p->m);
		return true;
	}
	san->cancelled = cmd;
	isd_reactor_defer(san->r, &san->answer);
	return true;
}

/*
 * The device goes away (iserd stops) while an operation runs: before the store
 * is closed, nothing more may start (closing waits for what is in flight and may
 * complete it); after, the operation's memory goes. A LUN removed while it runs
 * is not freed before the operation ends (it holds the LU).
 */
void
isd_scsi_sanitize_stop(struct isd_scsi_lu *lu, bool store_closed)
{
	struct isd_scsi_sanitize *san = lu->sanitize;

	if (san == NULL)
		return;
	san->stopping = true;
	san->io.aborted = true;         /* WRITE SAME's engine stops at its next step */
	if (!store_closed) {
		/*
		 * The transport is gone: a cancelled command's answer has no one to
		 * go to. Called at the device's end, when san->r is idle (or is
		 * the caller's).
		 */
		isd_reactor_timer_stop(san->r, &san->answer);
		san->cancelled = NULL;
		return;
	}
	lu->sanitize = NULL;
	free(san->io.aux_buf);
	free(san);
}

/* OVERWRITE parameter list (SBC-4 5.30.2.2), all checked before anything starts. */
static bool
overwrite_params(struct isd_scsi_cmd *cmd, struct isd_scsi_sanitize *san)
{
	struct isd_scsi_lu *lu = cmd->lu;
	const uint8_t *p = cmd->iov[0].iov_base;
	uint32_t plen, bs = lu->block_size;
	uint64_t chunk;
	uint8_t *buf;

	if (p == NULL || cmd->data_out_len < cmd->xfer_len) {
		isd_scsi_check(cmd, ISD_SK_ILLEGAL_REQUEST, ISD_ASC_PARAM_LIST_LENGTH);
		return false;
	}
	if (p[0] & 0x60) {                      /* TEST: vendor specific, none here */
		isd_scsi_invalid_param(cmd, 0, 6);
		return false;
	}
	san->invert = p[0] & 0x80;
	san->passes = p[0] & 0x1f;
	if (san->passes == 0) {
		isd_scsi_invalid_param(cmd, 0, 4);
		return false;
	}
	plen = get_be16(p + 2);
	if (plen == 0 || plen > bs || plen > cmd->data_out_len - SAN_PARAM_HDR) {
		isd_scsi_invalid_param(cmd, 2, -1);
		return false;
	}
	chunk = (uint64_t)lu->nblocks * bs;
	if (chunk > SAN_CHUNK)
		chunk = SAN_CHUNK / bs * bs;
	buf = malloc(chunk);
	if (buf == NULL) {
		cmd->status = ISD_SAM_BUSY;
		return false;
	}
	/* the pattern repeated through each block, from the block's start */
	for (uint64_t off = 0; off < chunk; off++)
		buf[off] = p[SAN_PARAM_HDR + (off % bs) % plen];
	san->io.aux_buf = buf;
	san->io.aux_len = (uint32_t)chunk;
	return true;
}

void
isd_sbc_exec_sanitize(struct isd_scsi_cmd *cmd)
{
	struct isd_scsi_lu *lu = cmd->lu;
	struct isd_scsi_sanitize *san = calloc(1, sizeof(*san));

	if (san == NULL) {
		cmd->status = ISD_SAM_BUSY;
		isd_scsi_cmd_done(cmd);
		return;
	}
	san->lu = lu;
	/* where the command came in: its answer and the passes' completions go there */
	san->r = isd_bstore_reactor_here(lu->bs);
	isd_timer_init(&san->answer, san_answer_cancelled, san);
	san->sa = cmd->cdb[1] & 0x1f;
	san->ause = cmd->cdb[1] & 0x20;
	if (san->sa == SAN_OVERWRITE && !overwrite_params(cmd, san)) {
		free(san);
		isd_scsi_cmd_done(cmd);
		return;
	}
	/* setup refused a second one, and nothing runs between setup and exec here
	 * that could start one; an LU that is sanitized is never in failure mode */
	lu->sanitize = san;
	lu->san_failed = false;
	lu->erased = false;
	isd_scsi_lu_hold(lu);
	san->io.dev = lu->dev;
	san->io.lu = lu;
	san->io.done = san_io_done;
	san->io.cb_arg = san;
	if (!lu->wce)
		san->io.io_flags |= ISD_SCSI_IOF_FUA;
	san->io.io_pos = 0;
	san->io.io_end = lu->nblocks;
	if (cmd->cdb[1] & 0x80)                 /* IMMED: GOOD now, the operation goes on */
		isd_scsi_cmd_done(cmd);
	else
		san->waiter = cmd;
	if (san->sa == SAN_OVERWRITE)
		isd_sbc_write_pattern(&san->io);
	else
		san_erase_step(san);
}
