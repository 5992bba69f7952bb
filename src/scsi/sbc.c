/*
 * Block commands (SBC-4): capacity, READ/WRITE/VERIFY in all CDB sizes,
 * SYNCHRONIZE CACHE, WRITE SAME, UNMAP, COMPARE AND WRITE, ORWRITE, WRITE
 * ATOMIC, PRE-FETCH, READ DEFECT DATA, GET LBA STATUS.
 *
 * Every transfer is bounded by the Block Limits MAXIMUM TRANSFER LENGTH, so
 * no CDB can make us allocate more than ISD_SCSI_MAX_XFER. Reads from a RAM
 * store point the data-in iovec straight at the store (no copy, no read).
 * Writes land in a separate buffer first and reach the store only once the
 * whole data-out has arrived. The reservation is checked again whenever data
 * is handed to the store (isd_scsi_cmd_exec for one-step commands, each step
 * of WRITE SAME and UNMAP, the write half of COMPARE AND WRITE and ORWRITE): see the
 * fencing notes in dev.c.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "bstore/bstore.h"
#include "reactor/reactor.h"
#include "scsi/scsi_int.h"
#include "util/endian.h"
#include "util/log.h"

#define WS_CHUNK (1u << 20)     /* WRITE SAME writes this much per store request */

/* LBA and TRANSFER LENGTH, and the CDB byte of the length (for field pointers). */
static void
rw_decode(const uint8_t *cdb, uint64_t *lba, uint32_t *nb, uint16_t *len_byte)
{
	switch (cdb[0] >> 5) {
	case 0:         /* 6-byte: 21-bit LBA; a length of 0 means 256 blocks (SBC-4 5.?) */
		*lba = get_be24(cdb + 1) & 0x1fffff;
		*nb = cdb[4] != 0 ? cdb[4] : 256;
		*len_byte = 4;
		break;
	case 1:
	case 2:         /* 10-byte */
		*lba = get_be32(cdb + 2);
		*nb = get_be16(cdb + 7);
		*len_byte = 7;
		break;
	case 5:         /* 12-byte */
		*lba = get_be32(cdb + 2);
		*nb = get_be32(cdb + 6);
		*len_byte = 6;
		break;
	default:        /* 16-byte */
		*lba = get_be64(cdb + 2);
		*nb = get_be32(cdb + 10);
		*len_byte = 10;
		break;
	}
}

static bool
range_ok(const struct isd_scsi_lu *lu, uint64_t lba, uint64_t nb)
{
	return lba <= lu->nblocks && nb <= lu->nblocks - lba;
}

static int
lba_out_of_range(struct isd_scsi_cmd *cmd)
{
	isd_scsi_check(cmd, ISD_SK_ILLEGAL_REQUEST, ISD_ASC_LBA_OUT_OF_RANGE);
	return ISD_SCSI_SETUP_DONE;
}

static int
write_protected(struct isd_scsi_cmd *cmd)
{
	isd_scsi_check(cmd, ISD_SK_DATA_PROTECT, ISD_ASC_WRITE_PROTECTED);
	return ISD_SCSI_SETUP_DONE;
}

static void
io_error(struct isd_scsi_cmd *cmd, int err, bool write)
{
	if (err == -EROFS)
		isd_scsi_check(cmd, ISD_SK_DATA_PROTECT, ISD_ASC_WRITE_PROTECTED);
	else if (err == -ENOMEM || err == -EAGAIN)
		cmd->status = ISD_SAM_BUSY;
	else if (err == -ESHUTDOWN)
		/*
		 * The store was fenced off its medium (another gateway took the
		 * cluster lock): this path is unavailable, not the medium bad, so a
		 * multipath initiator retries on another path instead of failing the
		 * I/O.
		 */
		isd_scsi_check(cmd, ISD_SK_NOT_READY, ISD_ASC_ALUA_UNAVAILABLE);
	else if (write)
		isd_scsi_check(cmd, ISD_SK_MEDIUM_ERROR, ISD_ASC_WRITE_ERROR);
	else
		isd_scsi_check(cmd, ISD_SK_MEDIUM_ERROR, ISD_ASC_UNRECOVERED_READ);
}

/* The Expected Data Transfer Length is not the data-out the CDB describes, for a
 * command that must have all of it or none (WRITE SAME, COMPARE AND WRITE). */
static int
data_out_size_mismatch(struct isd_scsi_cmd *cmd)
{
	isd_scsi_check(cmd, ISD_SK_ILLEGAL_REQUEST, ISD_ASC_INVALID_FIELD_CDB);
	return ISD_SCSI_SETUP_DONE;
}

static uint64_t
byte_off(const struct isd_scsi_lu *lu, uint64_t lba)
{
	return lba * lu->block_size;
}

/* ---- the write gate ---- */

/*
 * On a file or a block device the read and the write of a read-modify-write
 * (COMPARE AND WRITE, ORWRITE) are two requests, and a write of another
 * command to the same blocks must not land between them, nor one already
 * under way land after the read. Every command that writes to such a store
 * passes the LU's gate from the start of its exec to its completion: writes
 * share it, a read-modify-write has it alone. Commands enter in arrival order
 * (one that cannot enter makes the later ones queue behind it), so a stream
 * of writes cannot starve a read-modify-write, nor the reverse.
 *
 * A RAM store's read-modify-write is one step under the monitor, which no
 * other command's exec overlaps. What it must still keep out are the WRITEs
 * whose data-out lands straight in the LU's memory (zero copy, iSER): the
 * adapter's RDMA Reads place it while the reactors go on, outside any exec,
 * so even one reactor's COMPARE AND WRITE could see part of it between its
 * compare and its write. Such a write passes the gate as a writer from its
 * setup (before any of its data can land) until all of it is in: its
 * completion (the transport runs exec only then), or its release when it
 * never ran (after the last of it can land: the fencing notes in dev.c).
 * Not its release after a completion, which waits for the initiator to take
 * the response. It enters only while no read-modify-write
 * holds the gate or waits at it: otherwise its data-out is staged and copied
 * in its exec, like any other. So a COMPARE AND WRITE, ORWRITE or WRITE
 * ATOMIC on RAM waits for the zero-copy writes under way on the LU, and none
 * starts while it waits.
 */
/* Takes the gate alone: the read-modify-writes, and WRITE ATOMIC (offered on
 * RAM stores only, where it is one copy no landing write may come into). */
static bool
is_rmw(const struct isd_scsi_cmd *cmd)
{
	return cmd->cdb[0] == 0x89 || cmd->cdb[0] == 0x8b || cmd->cdb[0] == 0x9c;
}

static bool
gate_open(const struct isd_scsi_lu *lu, bool rmw)
{
	return !lu->gate_rmw &&
	       (!rmw || __atomic_load_n(&lu->gate_writers, __ATOMIC_RELAXED) == 0);
}

static void
gate_take(struct isd_scsi_cmd *cmd)
{
	struct isd_scsi_lu *lu = cmd->lu;

	cmd->io_flags |= ISD_SCSI_IOF_GATED;
	if (is_rmw(cmd))
		lu->gate_rmw = true;
	else
		__atomic_fetch_add(&lu->gate_writers, 1, __ATOMIC_RELAXED);
}

/*
 * On the shared path (dev.c) several threads pass the gate at once: the
 * writer count is atomic, and the rest (the queue, gate_rmw) changes only
 * under the monitor, which no shared section overlaps. A shared writer comes
 * in only while nothing waits and no read-modify-write is in (exec checks
 * with isd_sbc_gate_shared_ok and takes the monitor otherwise), so it never
 * queues; the last one out while a command waits cannot let it in from its
 * section and leaves that to gate_kick, after it, under the monitor.
 */
bool
isd_sbc_gate_shared_ok(const struct isd_scsi_cmd *cmd)
{
	const struct isd_scsi_lu *lu = cmd->lu;

	if (lu == NULL || lu->bs->mem_base != NULL || cmd->dir != ISD_SCSI_DIR_OUT ||
	    (cmd->io_flags & ISD_SCSI_IOF_GATED))
		return true;
	return !is_rmw(cmd) && TAILQ_EMPTY(&lu->gate_wait) && gate_open(lu, false);
}

/*
 * At the start of a writing command's exec: true to go on, false when cmd
 * waits in the queue, to run its exec again from the start once it is let in.
 */
static bool
gate_enter(struct isd_scsi_cmd *cmd)
{
	struct isd_scsi_lu *lu = cmd->lu;

	if ((lu->bs->mem_base != NULL && !is_rmw(cmd)) || (cmd->io_flags & ISD_SCSI_IOF_GATED))
		return true;
	if (TAILQ_EMPTY(&lu->gate_wait) && gate_open(lu, is_rmw(cmd))) {
		gate_take(cmd);
		return true;
	}
	if (isd_scsi_shared_here(cmd)) {
		/* exec checked (isd_sbc_gate_shared_ok): not reached */
		isd_log_err("LU %u: a shared writer found the write gate closed", lu->lun);
		cmd->status = ISD_SAM_BUSY;
		isd_scsi_cmd_done(cmd);
		return false;
	}
	cmd->gate_r = isd_reactor_current();
	TAILQ_INSERT_TAIL(&lu->gate_wait, cmd, link);
	return false;
}

/* Its exec again, let in at the gate (which it holds), or done when it may no
 * longer store: under the monitor, on the reactor it came in on. */
static void
gate_run(struct isd_scsi_cmd *cmd)
{
	const struct isd_scsi_op *op = cmd->op;

	/* aborted, or fenced off, while it waited: it stores nothing */
	if (!isd_scsi_may_store(cmd))
		isd_scsi_cmd_done(cmd);
	else
		op->exec(cmd);
}

static void
gate_run_posted(void *arg)
{
	struct isd_scsi_cmd *cmd = arg;
	struct isd_monitor *mon = isd_scsi_dev_monitor(cmd->dev);

	isd_monitor_enter(mon);
	gate_run(cmd);
	isd_monitor_leave(mon);
}

/* Under the monitor: lets in, in order, what the gate admits now. */
static void
gate_drain(struct isd_scsi_lu *lu)
{
	struct isd_scsi_cmd *next;

	/* A command let in may finish at once and come back here: each pass takes
	 * the head afresh. */
	while ((next = TAILQ_FIRST(&lu->gate_wait)) != NULL && gate_open(lu, is_rmw(next))) {
		struct isd_reactor *here = isd_reactor_current();

		TAILQ_REMOVE(&lu->gate_wait, next, link);
		gate_take(next);
		/*
		 * Let in by a command of another reactor: its exec, its store
		 * requests and its completion belong to its own (the transport's
		 * state is that reactor's), so it runs there, holding the gate.
		 */
		if (next->gate_r != NULL && here != NULL && next->gate_r != here) {
			next->gate_msg.cb = gate_run_posted;
			next->gate_msg.arg = next;
			isd_reactor_post(next->gate_r, &next->gate_msg);
			continue;
		}
		gate_run(next);
	}
}

/* After the section of the last shared writer out: the LU's hold is its. */
static void
gate_kick(void *arg)
{
	struct isd_scsi_lu *lu = arg;
	struct isd_monitor *mon = isd_scsi_dev_monitor(lu->gate_kick_dev);

	isd_monitor_enter(mon);
	__atomic_store_n(&lu->gate_kick_pending, 0, __ATOMIC_RELAXED);
	gate_drain(lu);
	isd_scsi_lu_unhold(lu);
	isd_monitor_leave(mon);
}

/* One writer fewer at the gate: under the monitor, or in cmd's shared section. */
static void
gate_writer_out(struct isd_scsi_cmd *cmd)
{
	struct isd_scsi_lu *lu = cmd->lu;
	uint32_t left;

	left = __atomic_sub_fetch(&lu->gate_writers, 1, __ATOMIC_RELAXED);
	if (!isd_scsi_shared_here(cmd)) {
		gate_drain(lu);
		return;
	}
	/* what waits was queued under the monitor, before this section */
	if (left == 0 && !TAILQ_EMPTY(&lu->gate_wait) &&
	    __atomic_exchange_n(&lu->gate_kick_pending, 1, __ATOMIC_RELAXED) == 0) {
		isd_scsi_lu_hold(lu);
		lu->gate_kick_dev = cmd->dev;
		isd_monitor_after(&lu->gate_kick, gate_kick, lu);
	}
}

void
isd_sbc_gate_leave(struct isd_scsi_cmd *cmd)
{
	struct isd_scsi_lu *lu = cmd->lu;

	cmd->io_flags &= ~ISD_SCSI_IOF_GATED;
	if (is_rmw(cmd)) {
		lu->gate_rmw = false;
		gate_drain(lu);
		return;
	}
	gate_writer_out(cmd);
}

/*
 * A WRITE about to place its data-out in a RAM store's memory: true, holding
 * the gate as a writer until isd_sbc_gate_direct_leave (at its completion, or
 * its release if it never completes), or false when a
 * read-modify-write holds the gate or waits at it (the data is staged then).
 * Under the monitor or the shared face: what it reads changes only under the
 * monitor.
 */
static bool
gate_direct_take(struct isd_scsi_cmd *cmd)
{
	struct isd_scsi_lu *lu = cmd->lu;

	if (lu->gate_rmw || !TAILQ_EMPTY(&lu->gate_wait))
		return false;
	__atomic_fetch_add(&lu->gate_writers, 1, __ATOMIC_RELAXED);
	cmd->io_flags |= ISD_SCSI_IOF_GATE_DIRECT;
	return true;
}

void
isd_sbc_gate_direct_leave(struct isd_scsi_cmd *cmd)
{
	cmd->io_flags &= ~ISD_SCSI_IOF_GATE_DIRECT;
	gate_writer_out(cmd);
}

/* ---- capacity ---- */

int
isd_sbc_setup_read_capacity10(struct isd_scsi_cmd *cmd)
{
	/* PMI = 0 requires LOGICAL BLOCK ADDRESS = 0 (SBC-4 5.20). */
	if (!(cmd->cdb[8] & 0x01) && get_be32(cmd->cdb + 2) != 0) {
		isd_scsi_invalid_cdb(cmd, 2, -1);
		return ISD_SCSI_SETUP_DONE;
	}
	return isd_scsi_setup_data_in(cmd, 8);
}

void
isd_sbc_exec_read_capacity10(struct isd_scsi_cmd *cmd)
{
	struct isd_scsi_lu *lu = cmd->lu;
	uint8_t b[8];
	uint64_t last = lu->nblocks - 1;

	/* Too big for 32 bits: FFFFFFFFh sends the initiator to READ CAPACITY (16). */
	put_be32(b, last > 0xfffffffeull ? 0xffffffffu : (uint32_t)last);
	put_be32(b + 4, lu->block_size);
	isd_scsi_data_in(cmd, b, sizeof(b));
	isd_scsi_cmd_done(cmd);
}

int
isd_sbc_setup_read_capacity16(struct isd_scsi_cmd *cmd)
{
	if (!(cmd->cdb[14] & 0x01) && get_be64(cmd->cdb + 2) != 0) {
		isd_scsi_invalid_cdb(cmd, 2, -1);
		return ISD_SCSI_SETUP_DONE;
	}
	return isd_scsi_setup_data_in(cmd, get_be32(cmd->cdb + 10));
}

void
isd_sbc_exec_read_capacity16(struct isd_scsi_cmd *cmd)
{
	struct isd_scsi_lu *lu = cmd->lu;
	uint8_t b[32];

	memset(b, 0, sizeof(b));
	put_be64(b, lu->nblocks - 1);
	put_be32(b + 8, lu->block_size);
	b[13] = lu->lbppb_exp;                  /* LOGICAL BLOCKS PER PHYSICAL BLOCK EXPONENT */
	if (lu->thin)                           /* LOWEST ALIGNED LBA 0 */
		b[14] = 0x80 | (lu->lbprz ? 0x40 : 0);  /* LBPME, LBPRZ */
	isd_scsi_data_in(cmd, b, sizeof(b));
	isd_scsi_cmd_done(cmd);
}

int
isd_sbc_setup_get_lba_status(struct isd_scsi_cmd *cmd)
{
	uint64_t lba = get_be64(cmd->cdb + 2);

	if (lba >= cmd->lu->nblocks)
		return lba_out_of_range(cmd);
	cmd->lba = lba;
	return isd_scsi_setup_data_in(cmd, get_be32(cmd->cdb + 10));
}

/* GET LBA STATUS: at most this many descriptors per command, whatever the allocation length. */
#define LBAS_MAX_DESC 64
#define LBAS_HDR 8
#define LBAS_DESC 16

/* One descriptor for the rest of the LU: what a store that cannot tell answers. */
static void
lba_status_one(struct isd_scsi_cmd *cmd)
{
	struct isd_scsi_lu *lu = cmd->lu;
	uint64_t left = lu->nblocks - cmd->lba;
	uint8_t b[LBAS_HDR + LBAS_DESC];

	memset(b, 0, sizeof(b));
	put_be32(b, 4 + LBAS_DESC);
	put_be64(b + 8, cmd->lba);
	put_be32(b + 16, left > 0xffffffffull ? 0xffffffffu : (uint32_t)left);
	b[20] = lu->erased ? 0x01 : 0x00;
	isd_scsi_data_in(cmd, b, sizeof(b));
	isd_scsi_cmd_done(cmd);
}

/*
 * The store's runs (bytes, from the command's LBA) as descriptors in out
 * (room for max): a block is mapped when any byte of it is, deallocated only
 * when all of it is; a run of more blocks than the 32-bit count takes several
 * descriptors; a deallocated tail shorter than a block is left out (unknown).
 * Returns the number of descriptors, 0 when the runs say nothing whole.
 */
static unsigned
lba_status_encode(uint32_t bsz, uint64_t lba0, uint64_t nblocks, const struct isd_bstore_run *runs,
		  unsigned n, uint8_t *out, unsigned max)
{
	uint64_t next = lba0;   /* the first block not yet described */
	unsigned nd = 0;
	uint8_t *last = NULL;
	uint8_t last_st = 0xff;

	for (unsigned i = 0; i < n && nd <= max; i++) {
		uint64_t s = runs[i].off, e = runs[i].off + runs[i].len;
		uint64_t first, end;    /* blocks [first, end) */
		uint8_t st = runs[i].mapped ? 0x00 : 0x01;

		if (runs[i].mapped) {
			first = s / bsz;
			end = e / bsz + (e % bsz != 0);
		} else {
			first = s / bsz + (s % bsz != 0);
			end = e / bsz;
		}
		if (first < next)
			first = next;
		if (end > lba0 + nblocks)
			end = lba0 + nblocks;
		if (end <= first)
			continue;
		if (first > next)       /* a partial block between runs: only a mapped run gives it */
			break;
		while (first < end) {
			uint64_t cnt = end - first;

			if (last != NULL && last_st == st && get_be32(last + 8) < 0xffffffffu) {
				uint64_t room = 0xffffffffu - get_be32(last + 8);
				uint64_t add = cnt < room ? cnt : room;

				put_be32(last + 8, get_be32(last + 8) + (uint32_t)add);
				first += add;
				continue;
			}
			if (nd == max)
				return nd;
			last = out + (size_t)nd * LBAS_DESC;
			memset(last, 0, LBAS_DESC);
			put_be64(last, first);
			put_be32(last + 8, cnt > 0xffffffffu ? 0xffffffffu : (uint32_t)cnt);
			last[12] = st;
			last_st = st;
			first += get_be32(last + 8);
			nd++;
		}
		next = end;
	}
	return nd;
}

/* What a GET LBA STATUS that asks the store keeps in aux_buf until the callback. */
struct lbas_buf {
	uint8_t data[LBAS_HDR + LBAS_MAX_DESC * LBAS_DESC];
	unsigned max;                           /* descriptors the allocation length holds */
	unsigned n;                             /* runs the store gave */
	struct isd_bstore_run runs[LBAS_MAX_DESC];
};

static void
lba_status_done(void *arg, int status)
{
	struct isd_scsi_cmd *cmd = arg;
	struct isd_scsi_lu *lu = cmd->lu;
	struct lbas_buf *lb = cmd->aux_buf;
	unsigned nd;

	if (status < 0) {
		io_error(cmd, status, false);
		isd_scsi_cmd_done(cmd);
		return;
	}
	nd = lba_status_encode(lu->block_size, cmd->lba, lu->nblocks - cmd->lba, lb->runs,
			       lb->n <= lb->max ? lb->n : lb->max, lb->data + LBAS_HDR, lb->max);
	if (nd == 0) {
		lba_status_one(cmd);
		return;
	}
	put_be32(lb->data, 4 + nd * LBAS_DESC);
	isd_scsi_data_in(cmd, lb->data, LBAS_HDR + nd * LBAS_DESC);
	isd_scsi_cmd_done(cmd);
}

void
isd_sbc_exec_get_lba_status(struct isd_scsi_cmd *cmd)
{
	struct isd_scsi_lu *lu = cmd->lu;
	struct isd_bstore *bs = lu->bs;
	struct lbas_buf *lb;
	int rc;

	/*
	 * A store that keeps an allocation map answers from it, as many
	 * descriptors as the allocation length holds (at most LBAS_MAX_DESC).
	 * Otherwise, and while nothing was written since a SANITIZE BLOCK ERASE,
	 * one extent to the end of the LU: mapped, or deallocated after the erase.
	 */
	if (bs->ops->get_map == NULL || lu->erased || cmd->xfer_len == 0) {
		lba_status_one(cmd);
		return;
	}
	lb = calloc(1, sizeof(*lb));
	if (lb == NULL) {
		cmd->status = ISD_SAM_BUSY;
		isd_scsi_cmd_done(cmd);
		return;
	}
	cmd->aux_buf = lb;
	cmd->aux_len = sizeof(*lb);
	lb->max = cmd->xfer_len < LBAS_HDR + 2 * LBAS_DESC ? 1
							   : (cmd->xfer_len - LBAS_HDR) / LBAS_DESC;
	if (lb->max > LBAS_MAX_DESC)
		lb->max = LBAS_MAX_DESC;
	/*
	 * Runs of bytes become descriptors of blocks, and a few runs may merge
	 * (a short deallocated run inside a block is mapped): the store may give
	 * as many runs as fit, the encoding keeps what fits the allocation length.
	 */
	rc = bs->ops->get_map(bs, byte_off(lu, cmd->lba), byte_off(lu, lu->nblocks - cmd->lba),
			      lb->runs, LBAS_MAX_DESC, &lb->n, lba_status_done, cmd);
	if (rc == -ENOTSUP) {
		free(cmd->aux_buf);
		cmd->aux_buf = NULL;
		cmd->aux_len = 0;
		lba_status_one(cmd);
		return;
	}
	if (rc < 0)
		lba_status_done(cmd, rc);
}

/* ---- READ ---- */

int
isd_sbc_setup_read(struct isd_scsi_cmd *cmd)
{
	struct isd_scsi_lu *lu = cmd->lu;
	const uint8_t *cdb = cmd->cdb;
	uint16_t len_byte;
	uint64_t lba;
	uint32_t nb;

	/* RDPROTECT: no protection information here (SBC-4 5.16). */
	if ((cdb[0] >> 5) != 0 && (cdb[1] & 0xe0)) {
		isd_scsi_invalid_cdb(cmd, 1, 7);
		return ISD_SCSI_SETUP_DONE;
	}
	rw_decode(cdb, &lba, &nb, &len_byte);
	if (!range_ok(lu, lba, nb))
		return lba_out_of_range(cmd);
	cmd->dir = ISD_SCSI_DIR_IN;
	if (nb == 0)
		return ISD_SCSI_SETUP_DONE;
	if (nb > lu->max_xfer_blocks) {
		isd_scsi_invalid_cdb(cmd, len_byte, -1);
		return ISD_SCSI_SETUP_DONE;
	}
	cmd->lba = lba;
	cmd->nblocks = nb;
	cmd->xfer_len = nb * lu->block_size;
	if (lu->bs->mem_base != NULL) {
		cmd->iov[0].iov_base = (uint8_t *)lu->bs->mem_base + byte_off(lu, lba);
		cmd->iov[0].iov_len = cmd->xfer_len;
		cmd->iovcnt = 1;
		cmd->io_flags |= ISD_SCSI_IOF_ZERO_COPY;
		return ISD_SCSI_SETUP_READY;
	}
	if (isd_scsi_buf_alloc(cmd, cmd->xfer_len) == NULL) {
		cmd->status = ISD_SAM_BUSY;
		return ISD_SCSI_SETUP_DONE;
	}
	return ISD_SCSI_SETUP_READY;
}

static void
read_done(void *arg, int status)
{
	struct isd_scsi_cmd *cmd = arg;

	if (status < 0)
		io_error(cmd, status, false);
	else
		cmd->data_in_len = cmd->xfer_len;
	isd_scsi_cmd_done(cmd);
}

void
isd_sbc_exec_read(struct isd_scsi_cmd *cmd)
{
	struct isd_scsi_lu *lu = cmd->lu;
	int rc;

	if (cmd->io_flags & ISD_SCSI_IOF_ZERO_COPY) {
		cmd->data_in_len = cmd->xfer_len;
		isd_scsi_cmd_done(cmd);
		return;
	}
	rc = isd_bstore_read(lu->bs, cmd->iov, cmd->iovcnt, byte_off(lu, cmd->lba), read_done, cmd);
	if (rc < 0)
		read_done(cmd, rc);
}

/* ---- WRITE, WRITE AND VERIFY ---- */

int
isd_sbc_setup_write(struct isd_scsi_cmd *cmd)
{
	struct isd_scsi_lu *lu = cmd->lu;
	const uint8_t *cdb = cmd->cdb;
	bool is6 = (cdb[0] >> 5) == 0;
	bool verify = cdb[0] == 0x2e || cdb[0] == 0xae || cdb[0] == 0x8e;
	uint16_t len_byte;
	uint64_t lba;
	uint32_t nb;

	if (!is6 && (cdb[1] & 0xe0)) {          /* WRPROTECT */
		isd_scsi_invalid_cdb(cmd, 1, 7);
		return ISD_SCSI_SETUP_DONE;
	}
	/* WRITE AND VERIFY: BYTCHK 10b is reserved; 00b/01b/11b all verify what
	 * we just wrote, which cannot differ, so the data is written with FUA. */
	if (verify && ((cdb[1] >> 1) & 0x03) == 0x02) {
		isd_scsi_invalid_cdb(cmd, 1, 2);
		return ISD_SCSI_SETUP_DONE;
	}
	if (isd_scsi_lu_wp(lu))
		return write_protected(cmd);
	rw_decode(cdb, &lba, &nb, &len_byte);
	if (!range_ok(lu, lba, nb))
		return lba_out_of_range(cmd);
	cmd->dir = ISD_SCSI_DIR_OUT;
	if (nb == 0)
		return ISD_SCSI_SETUP_DONE;
	if (nb > lu->max_xfer_blocks) {
		isd_scsi_invalid_cdb(cmd, len_byte, -1);
		return ISD_SCSI_SETUP_DONE;
	}
	cmd->lba = lba;
	cmd->nblocks = nb;
	if ((!is6 && (cdb[1] & 0x08)) || verify || !lu->wce)
		cmd->io_flags |= ISD_SCSI_IOF_FUA;
	if (lu->bs->mem_base != NULL && !lu->bs->read_only && cmd->edtl >= nb * lu->block_size &&
	    !cmd->data_out_staged && gate_direct_take(cmd)) {
		/*
		 * Zero copy: the data-out lands in the LU's memory where it belongs
		 * (RDMA Read into it, or the transport's receive), and exec has
		 * nothing left to move. A failed or aborted write may then leave part
		 * of the range written, which SBC allows (the contents of the blocks
		 * of a write that did not complete are indeterminate). A short EDTL
		 * keeps the staged path, which writes only the whole blocks that came,
		 * as does a read-modify-write at the gate (above).
		 */
		cmd->dir = ISD_SCSI_DIR_OUT;
		cmd->xfer_len = nb * lu->block_size;
		cmd->data_out_len = cmd->xfer_len;
		cmd->iov[0].iov_base = (uint8_t *)lu->bs->mem_base + byte_off(lu, lba);
		cmd->iov[0].iov_len = cmd->xfer_len;
		cmd->iovcnt = 1;
		cmd->io_flags |= ISD_SCSI_IOF_ZERO_COPY;
		cmd->data_out_direct = true;
		return ISD_SCSI_SETUP_READY;
	}
	return isd_scsi_setup_data_out(cmd, nb * lu->block_size);
}

static void
write_done(void *arg, int status)
{
	struct isd_scsi_cmd *cmd = arg;

	if (status < 0)
		io_error(cmd, status, true);
	isd_scsi_cmd_done(cmd);
}

void
isd_sbc_exec_write(struct isd_scsi_cmd *cmd)
{
	struct isd_scsi_lu *lu = cmd->lu;
	/* EDTL < TRANSFER LENGTH: write the whole blocks that arrived (see setup_data_out). */
	uint32_t nb = cmd->data_out_len / lu->block_size;
	struct iovec iov;
	int rc;

	if (!gate_enter(cmd))
		return;
	if (nb > cmd->nblocks)
		nb = cmd->nblocks;
	if (nb == 0) {
		isd_scsi_cmd_done(cmd);
		return;
	}
	iov.iov_base = cmd->iov[0].iov_base;
	iov.iov_len = (size_t)nb * lu->block_size;
	rc = isd_bstore_write(lu->bs, &iov, 1, byte_off(lu, cmd->lba),
			      cmd->io_flags & ISD_SCSI_IOF_FUA, write_done, cmd);
	if (rc < 0)
		write_done(cmd, rc);
}

/* ---- VERIFY ---- */

int
isd_sbc_setup_verify(struct isd_scsi_cmd *cmd)
{
	struct isd_scsi_lu *lu = cmd->lu;
	const uint8_t *cdb = cmd->cdb;
	uint8_t bytchk = (cdb[1] >> 1) & 0x03;
	uint16_t len_byte;
	uint64_t lba;
	uint32_t nb;

	if (cdb[1] & 0xe0) {                    /* VRPROTECT */
		isd_scsi_invalid_cdb(cmd, 1, 7);
		return ISD_SCSI_SETUP_DONE;
	}
	if (bytchk == 0x02) {
		isd_scsi_invalid_cdb(cmd, 1, 2);
		return ISD_SCSI_SETUP_DONE;
	}
	rw_decode(cdb, &lba, &nb, &len_byte);
	if (!range_ok(lu, lba, nb))
		return lba_out_of_range(cmd);
	/* BYTCHK 0: a medium verification, which RAM and files pass once in range. */
	if (nb == 0 || bytchk == 0)
		return ISD_SCSI_SETUP_DONE;
	if (nb > lu->max_xfer_blocks) {
		isd_scsi_invalid_cdb(cmd, len_byte, -1);
		return ISD_SCSI_SETUP_DONE;
	}
	cmd->lba = lba;
	cmd->nblocks = nb;
	if (bytchk == 0x03) {
		/* One block of data-out compared with every block of the range. */
		cmd->io_flags |= ISD_SCSI_IOF_VERIFY_ONE;
		return isd_scsi_setup_data_out(cmd, lu->block_size);
	}
	return isd_scsi_setup_data_out(cmd, nb * lu->block_size);
}

/* Offset of the first differing byte, or -1. */
static long
first_diff(const uint8_t *a, const uint8_t *b, size_t n)
{
	if (memcmp(a, b, n) == 0)
		return -1;
	for (size_t i = 0; i < n; i++)
		if (a[i] != b[i])
			return (long)i;
	return -1;
}

static void
miscompare(struct isd_scsi_cmd *cmd, uint64_t off)
{
	isd_scsi_check(cmd, ISD_SK_MISCOMPARE, ISD_ASC_MISCOMPARE_VERIFY);
	isd_scsi_sense_info(cmd, (uint32_t)off);
}

static void
verify_compare(struct isd_scsi_cmd *cmd, const uint8_t *medium)
{
	struct isd_scsi_lu *lu = cmd->lu;
	const uint8_t *data = cmd->iov[0].iov_base;
	long d;

	if (cmd->io_flags & ISD_SCSI_IOF_VERIFY_ONE) {
		for (uint32_t i = 0; i < cmd->nblocks; i++) {
			d = first_diff(data, medium + (size_t)i * lu->block_size, lu->block_size);
			if (d >= 0) {
				miscompare(cmd, (uint64_t)i * lu->block_size + (uint64_t)d);
				return;
			}
		}
		return;
	}
	d = first_diff(data, medium, (size_t)cmd->nblocks * lu->block_size);
	if (d >= 0)
		miscompare(cmd, (uint64_t)d);
}

static void
verify_read_done(void *arg, int status)
{
	struct isd_scsi_cmd *cmd = arg;

	if (status < 0)
		io_error(cmd, status, false);
	else
		verify_compare(cmd, cmd->aux_buf);
	isd_scsi_cmd_done(cmd);
}

/* Reads the command's range into aux_buf (or finds it in RAM) and calls cb. */
static void
read_range_aux(struct isd_scsi_cmd *cmd, isd_bstore_cb cb)
{
	struct isd_scsi_lu *lu = cmd->lu;
	struct iovec iov;
	int rc;

	cmd->aux_len = cmd->nblocks * lu->block_size;
	cmd->aux_buf = malloc(cmd->aux_len);
	if (cmd->aux_buf == NULL) {
		cb(cmd, -ENOMEM);
		return;
	}
	iov.iov_base = cmd->aux_buf;
	iov.iov_len = cmd->aux_len;
	rc = isd_bstore_read(lu->bs, &iov, 1, byte_off(lu, cmd->lba), cb, cmd);
	if (rc < 0)
		cb(cmd, rc);
}

/* The data-out did not fully arrive (EDTL short): refuse rather than compare a part. */
static bool
data_out_short(struct isd_scsi_cmd *cmd)
{
	if (cmd->data_out_len >= cmd->xfer_len && cmd->iovcnt > 0)
		return false;
	isd_scsi_invalid_cdb(cmd, 0, -1);
	isd_scsi_cmd_done(cmd);
	return true;
}

void
isd_sbc_exec_verify(struct isd_scsi_cmd *cmd)
{
	struct isd_scsi_lu *lu = cmd->lu;

	if (data_out_short(cmd))
		return;
	if (lu->bs->mem_base != NULL) {
		verify_compare(cmd, (const uint8_t *)lu->bs->mem_base + byte_off(lu, cmd->lba));
		isd_scsi_cmd_done(cmd);
		return;
	}
	read_range_aux(cmd, verify_read_done);
}

/* ---- SYNCHRONIZE CACHE ---- */

/*
 * SYNCHRONIZE CACHE and PRE-FETCH (10: LBA at 2, count at 7; 16: at 2 and 10):
 * a count of 0 means "to the last logical block". False, with the sense set,
 * when the range leaves the LU.
 */
static bool
range_to_end_ok(struct isd_scsi_cmd *cmd, uint8_t op10)
{
	const uint8_t *cdb = cmd->cdb;
	uint64_t lba;
	uint32_t nb;

	if (cdb[0] == op10) {
		lba = get_be32(cdb + 2);
		nb = get_be16(cdb + 7);
	} else {
		lba = get_be64(cdb + 2);
		nb = get_be32(cdb + 10);
	}
	if (!range_ok(cmd->lu, lba, nb) || lba >= cmd->lu->nblocks) {
		lba_out_of_range(cmd);
		return false;
	}
	return true;
}

int
isd_sbc_setup_sync_cache(struct isd_scsi_cmd *cmd)
{
	if (!range_to_end_ok(cmd, 0x35))
		return ISD_SCSI_SETUP_DONE;
	return ISD_SCSI_SETUP_READY;
}

void
isd_sbc_exec_sync_cache(struct isd_scsi_cmd *cmd)
{
	struct isd_bstore *bs = cmd->lu->bs;
	int rc = bs->ops->flush(bs, write_done, cmd);

	if (rc < 0)
		write_done(cmd, rc);
}

/* ---- WRITE SAME ---- */

int
isd_sbc_setup_write_same(struct isd_scsi_cmd *cmd)
{
	struct isd_scsi_lu *lu = cmd->lu;
	const uint8_t *cdb = cmd->cdb;
	bool is16 = cdb[0] == 0x93;
	uint8_t f = cdb[1];
	uint16_t len_byte = is16 ? 10 : 7;
	uint64_t lba;
	uint32_t nb;

	if (f & 0xe0) {                         /* WRPROTECT */
		isd_scsi_invalid_cdb(cmd, 1, 7);
		return ISD_SCSI_SETUP_DONE;
	}
	if (f & 0x10) {                         /* ANCHOR: no anchored blocks (ANC_SUP 0) */
		isd_scsi_invalid_cdb(cmd, 1, 4);
		return ISD_SCSI_SETUP_DONE;
	}
	if (f & 0x06) {                         /* PBDATA/LBDATA: obsolete */
		isd_scsi_invalid_cdb(cmd, 1, (f & 0x04) ? 2 : 1);
		return ISD_SCSI_SETUP_DONE;
	}
	if (!is16 && (f & 0x01)) {
		isd_scsi_invalid_cdb(cmd, 1, 0);
		return ISD_SCSI_SETUP_DONE;
	}
	if ((f & 0x08) && !lu->thin) {          /* UNMAP without LBPWS */
		isd_scsi_invalid_cdb(cmd, 1, 3);
		return ISD_SCSI_SETUP_DONE;
	}
	if (isd_scsi_lu_wp(lu))
		return write_protected(cmd);
	rw_decode(cdb, &lba, &nb, &len_byte);
	if (!range_ok(lu, lba, nb))
		return lba_out_of_range(cmd);
	/* WSNZ = 1 in Block Limits: 0 blocks is refused (SBC-4 5.49) */
	if (nb == 0) {
		isd_scsi_invalid_cdb(cmd, len_byte, -1);
		return ISD_SCSI_SETUP_DONE;
	}
	if (nb > lu->max_ws_blocks) {
		isd_scsi_invalid_cdb(cmd, len_byte, -1);
		return ISD_SCSI_SETUP_DONE;
	}
	cmd->lba = lba;
	cmd->nblocks = nb;
	if (f & 0x08)
		cmd->io_flags |= ISD_SCSI_IOF_UNMAP;
	if (!lu->wce)
		cmd->io_flags |= ISD_SCSI_IOF_FUA;
	if (is16 && (f & 0x01)) {
		cmd->io_flags |= ISD_SCSI_IOF_NDOB;
		cmd->dir = ISD_SCSI_DIR_NONE;
		return ISD_SCSI_SETUP_READY;
	}
	/* The data-out is exactly one block: an initiator that means to send more or
	 * less does not mean what the CDB says, and nothing is written. */
	if (cmd->edtl != lu->block_size)
		return data_out_size_mismatch(cmd);
	return isd_scsi_setup_data_out(cmd, lu->block_size);
}

static void ws_step(struct isd_scsi_cmd *cmd);

static void
ws_done(void *arg, int status)
{
	struct isd_scsi_cmd *cmd = arg;

	if (status < 0) {
		io_error(cmd, status, true);
		isd_scsi_cmd_done(cmd);
		return;
	}
	ws_step(cmd);
}

/* Writes the next chunk of the pattern; aux_buf holds the pattern replicated. */
static void
ws_step(struct isd_scsi_cmd *cmd)
{
	struct isd_scsi_lu *lu = cmd->lu;
	uint64_t chunk_blocks = cmd->aux_len / lu->block_size;
	uint64_t n = cmd->io_end - cmd->io_pos;
	struct iovec iov;
	int rc;

	if (n == 0 || !isd_scsi_may_store(cmd)) {
		isd_scsi_cmd_done(cmd);
		return;
	}
	if (n > chunk_blocks)
		n = chunk_blocks;
	iov.iov_base = cmd->aux_buf;
	iov.iov_len = (size_t)(n * lu->block_size);
	rc = isd_bstore_write(lu->bs, &iov, 1, byte_off(lu, cmd->io_pos),
			      cmd->io_flags & ISD_SCSI_IOF_FUA, ws_done, cmd);
	if (rc < 0) {
		io_error(cmd, rc, true);
		isd_scsi_cmd_done(cmd);
		return;
	}
	cmd->io_pos += n;
}

void
isd_sbc_write_pattern(struct isd_scsi_cmd *cmd)
{
	ws_step(cmd);
}

static bool
all_zero(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i] != 0)
			return false;
	return true;
}

void
isd_sbc_exec_write_same(struct isd_scsi_cmd *cmd)
{
	struct isd_scsi_lu *lu = cmd->lu;
	bool ndob = cmd->io_flags & ISD_SCSI_IOF_NDOB;
	const uint8_t *pattern = NULL;
	uint64_t chunk;
	int rc;

	if (!gate_enter(cmd))
		return;
	if (!ndob) {
		if (data_out_short(cmd))
			return;
		pattern = cmd->iov[0].iov_base;
	}
	/*
	 * UNMAP = 1 lets us deallocate, but only when a read afterwards returns
	 * the pattern: a zero pattern on a store whose holes read as zeros.
	 * Otherwise the blocks are written.
	 */
	if ((cmd->io_flags & ISD_SCSI_IOF_UNMAP) && lu->lbprz &&
	    (ndob || all_zero(pattern, lu->block_size))) {
		rc = lu->bs->ops->discard(lu->bs, byte_off(lu, cmd->lba),
					  (uint64_t)cmd->nblocks * lu->block_size, write_done, cmd);
		if (rc < 0)
			write_done(cmd, rc);
		return;
	}
	/* a store that repeats the pattern itself: one request, no buffer of copies */
	if (lu->bs->ops->write_same != NULL) {
		if (ndob) {
			cmd->aux_buf = calloc(1, lu->block_size);
			if (cmd->aux_buf == NULL) {
				cmd->status = ISD_SAM_BUSY;
				isd_scsi_cmd_done(cmd);
				return;
			}
			cmd->aux_len = lu->block_size;
			pattern = cmd->aux_buf;
		}
		rc = lu->bs->ops->write_same(lu->bs, pattern, lu->block_size,
					     byte_off(lu, cmd->lba),
					     (uint64_t)cmd->nblocks * lu->block_size,
					     cmd->io_flags & ISD_SCSI_IOF_FUA, write_done, cmd);
		if (rc != -ENOTSUP) {
			if (rc < 0)
				write_done(cmd, rc);
			return;
		}
		/* declined: the generic path, which allocates its own buffer */
		free(cmd->aux_buf);
		cmd->aux_buf = NULL;
		cmd->aux_len = 0;
		pattern = ndob ? NULL : cmd->iov[0].iov_base;
	}
	chunk = (uint64_t)cmd->nblocks * lu->block_size;
	if (chunk > WS_CHUNK)
		chunk = WS_CHUNK / lu->block_size * lu->block_size;
	cmd->aux_buf = ndob ? calloc(1, chunk) : malloc(chunk);
	if (cmd->aux_buf == NULL) {
		cmd->status = ISD_SAM_BUSY;
		isd_scsi_cmd_done(cmd);
		return;
	}
	cmd->aux_len = (uint32_t)chunk;
	if (!ndob)
		for (uint64_t off = 0; off < chunk; off += lu->block_size)
			memcpy((uint8_t *)cmd->aux_buf + off, pattern, lu->block_size);
	cmd->io_pos = cmd->lba;
	cmd->io_end = cmd->lba + cmd->nblocks;
	ws_step(cmd);
}

/* ---- UNMAP ---- */

#define UNMAP_HDR 8
#define UNMAP_DESC 16

int
isd_sbc_setup_unmap(struct isd_scsi_cmd *cmd)
{
	uint32_t len = get_be16(cmd->cdb + 7);

	if (cmd->cdb[1] & 0x01) {               /* ANCHOR */
		isd_scsi_invalid_cdb(cmd, 1, 0);
		return ISD_SCSI_SETUP_DONE;
	}
	if (isd_scsi_lu_wp(cmd->lu))
		return write_protected(cmd);
	/* A PARAMETER LIST LENGTH of 0 is not an error: nothing is unmapped. */
	if (len == 0)
		return ISD_SCSI_SETUP_DONE;
	if (len < UNMAP_HDR) {
		isd_scsi_check(cmd, ISD_SK_ILLEGAL_REQUEST, ISD_ASC_PARAM_LIST_LENGTH);
		return ISD_SCSI_SETUP_DONE;
	}
	return isd_scsi_setup_data_out(cmd, len);
}

static void unmap_step(struct isd_scsi_cmd *cmd);

static void
unmap_done(void *arg, int status)
{
	struct isd_scsi_cmd *cmd = arg;

	if (status < 0) {
		io_error(cmd, status, true);
		isd_scsi_cmd_done(cmd);
		return;
	}
	unmap_step(cmd);
}

/* Deallocates the next non-empty descriptor (io_pos: index, io_end: count). */
static void
unmap_step(struct isd_scsi_cmd *cmd)
{
	struct isd_scsi_lu *lu = cmd->lu;
	const uint8_t *p = cmd->iov[0].iov_base;

	if (!isd_scsi_may_store(cmd)) {
		isd_scsi_cmd_done(cmd);
		return;
	}
	while (cmd->io_pos < cmd->io_end) {
		const uint8_t *d = p + UNMAP_HDR + cmd->io_pos * UNMAP_DESC;
		uint64_t lba = get_be64(d);
		uint32_t nb = get_be32(d + 8);
		int rc;

		cmd->io_pos++;
		if (nb == 0)
			continue;
		rc = lu->bs->ops->discard(lu->bs, byte_off(lu, lba), (uint64_t)nb * lu->block_size,
					  unmap_done, cmd);
		if (rc < 0) {
			io_error(cmd, rc, true);
			isd_scsi_cmd_done(cmd);
		}
		return;
	}
	isd_scsi_cmd_done(cmd);
}

void
isd_sbc_exec_unmap(struct isd_scsi_cmd *cmd)
{
	struct isd_scsi_lu *lu = cmd->lu;
	const uint8_t *p = cmd->iov[0].iov_base;
	uint32_t len = cmd->data_out_len;
	uint32_t bddl, ndesc;

	if (!gate_enter(cmd))
		return;
	if (cmd->data_out_len < cmd->xfer_len || p == NULL) {
		isd_scsi_check(cmd, ISD_SK_ILLEGAL_REQUEST, ISD_ASC_PARAM_LIST_LENGTH);
		isd_scsi_cmd_done(cmd);
		return;
	}
	/*
	 * SBC-4 5.32: the header's lengths must fit in what was sent. Descriptors
	 * are counted from BLOCK DESCRIPTOR DATA LENGTH, a trailing partial one is
	 * ignored; all are checked before any is acted on, so a bad one leaves the
	 * medium untouched.
	 */
	bddl = get_be16(p + 2);
	if ((uint32_t)get_be16(p) + 2 > len || bddl > len - UNMAP_HDR) {
		isd_scsi_check(cmd, ISD_SK_ILLEGAL_REQUEST, ISD_ASC_PARAM_LIST_LENGTH);
		isd_scsi_cmd_done(cmd);
		return;
	}
	ndesc = bddl / UNMAP_DESC;
	if (ndesc > lu->max_unmap_descs) {
		isd_scsi_invalid_param(cmd, 2, -1);
		isd_scsi_cmd_done(cmd);
		return;
	}
	for (uint32_t i = 0; i < ndesc; i++) {
		const uint8_t *d = p + UNMAP_HDR + (size_t)i * UNMAP_DESC;
		uint64_t lba = get_be64(d);
		uint32_t nb = get_be32(d + 8);

		if (!range_ok(lu, lba, nb)) {
			isd_scsi_check(cmd, ISD_SK_ILLEGAL_REQUEST, ISD_ASC_LBA_OUT_OF_RANGE);
			isd_scsi_cmd_done(cmd);
			return;
		}
		if (nb > lu->max_unmap_blocks) {
			isd_scsi_invalid_param(cmd, (uint16_t)(UNMAP_HDR + i * UNMAP_DESC + 8), -1);
			isd_scsi_cmd_done(cmd);
			return;
		}
	}
	cmd->io_pos = 0;
	cmd->io_end = ndesc;
	unmap_step(cmd);
}

/* ---- COMPARE AND WRITE, ORWRITE: read-modify-write ---- */

/*
 * Both read the command's range, work out from it and the data-out what to
 * write, and write it. On a RAM store the read (the LU's memory itself), the
 * computation and the write's copy all happen in one step under the device's
 * monitor, which no other command's exec overlaps, once the write gate (above)
 * has no zero-copy WRITE under way: no other write can come in between, so
 * the read-modify-write is atomic against all of them. A file or device store
 * reads first: the gate keeps every other write of the LU out from before the
 * read until the write has completed.
 *
 * caw_apply() and orwrite_apply() return false when they finished the command
 * (a miscompare, no memory); otherwise they leave in *out what to write at
 * cmd->lba.
 */
static bool caw_apply(struct isd_scsi_cmd *cmd, const uint8_t *medium, struct iovec *out);
static bool orwrite_apply(struct isd_scsi_cmd *cmd, const uint8_t *medium, struct iovec *out);

static void
rmw_write(struct isd_scsi_cmd *cmd, const uint8_t *medium)
{
	struct isd_scsi_lu *lu = cmd->lu;
	struct iovec iov;
	bool go;
	int rc;

	go = cmd->cdb[0] == 0x89 ? caw_apply(cmd, medium, &iov) : orwrite_apply(cmd, medium, &iov);
	if (!go) {
		isd_scsi_cmd_done(cmd);
		return;
	}
	/* A file store read the medium first: the reservation may have moved since. */
	if (!isd_scsi_may_store(cmd)) {
		isd_scsi_cmd_done(cmd);
		return;
	}
	rc = isd_bstore_write(lu->bs, &iov, 1, byte_off(lu, cmd->lba),
			      cmd->io_flags & ISD_SCSI_IOF_FUA, write_done, cmd);
	if (rc < 0)
		write_done(cmd, rc);
}

static void
rmw_read_done(void *arg, int status)
{
	struct isd_scsi_cmd *cmd = arg;

	if (status < 0) {
		io_error(cmd, status, false);
		isd_scsi_cmd_done(cmd);
		return;
	}
	rmw_write(cmd, cmd->aux_buf);
}

static void
caw_store_done(void *arg, int status)
{
	struct isd_scsi_cmd *cmd = arg;

	if (status == -EILSEQ) {
		/* io_pos holds the store's offset of the first difference (caw_store) */
		miscompare(cmd, cmd->io_pos);
		isd_scsi_cmd_done(cmd);
		return;
	}
	write_done(cmd, status);
}

/*
 * COMPARE AND WRITE by a store that does it itself (RBD: atomic on the OSD,
 * so also against other gateways of the image, which this LU's gate cannot
 * hold off). False when the store declined this range: the generic path goes on.
 */
static bool
caw_store(struct isd_scsi_cmd *cmd)
{
	struct isd_scsi_lu *lu = cmd->lu;
	uint32_t half = cmd->nblocks * lu->block_size;
	const uint8_t *data = cmd->iov[0].iov_base;
	int rc;

	/* io_pos is unused by COMPARE AND WRITE: the store writes the offset there */
	cmd->io_pos = 0;
	rc = lu->bs->ops->compare_and_write(lu->bs, data, data + half, half,
					    byte_off(lu, cmd->lba),
					    cmd->io_flags & ISD_SCSI_IOF_FUA, &cmd->io_pos,
					    caw_store_done, cmd);
	if (rc == -ENOTSUP)
		return false;
	if (rc < 0)
		write_done(cmd, rc);
	return true;
}

static void
rmw_exec(struct isd_scsi_cmd *cmd)
{
	struct isd_scsi_lu *lu = cmd->lu;

	/* alone at the LU's write gate (file and device stores) until it completes */
	if (!gate_enter(cmd))
		return;
	/* the whole data-out or nothing: a part of it is not what the CDB describes */
	if (data_out_short(cmd))
		return;
	if (cmd->cdb[0] == 0x89 && lu->bs->ops->compare_and_write != NULL && caw_store(cmd))
		return;
	if (lu->bs->mem_base != NULL) {
		rmw_write(cmd, (const uint8_t *)lu->bs->mem_base + byte_off(lu, cmd->lba));
		return;
	}
	read_range_aux(cmd, rmw_read_done);
}

/* COMPARE AND WRITE */

int
isd_sbc_setup_caw(struct isd_scsi_cmd *cmd)
{
	struct isd_scsi_lu *lu = cmd->lu;
	const uint8_t *cdb = cmd->cdb;
	uint64_t lba = get_be64(cdb + 2);
	uint32_t nb = cdb[13];

	if (cdb[1] & 0xe0) {                    /* WRPROTECT */
		isd_scsi_invalid_cdb(cmd, 1, 7);
		return ISD_SCSI_SETUP_DONE;
	}
	if (isd_scsi_lu_wp(lu))
		return write_protected(cmd);
	if (!range_ok(lu, lba, nb))
		return lba_out_of_range(cmd);
	/*
	 * NUMBER OF LOGICAL BLOCKS 0: nothing compared or written, not an error
	 * (SBC-4 5.3) — unless the initiator still sends data for it, which means
	 * the CDB does not describe the transfer (a block count that wrapped past
	 * 255): refuse it rather than drop the data.
	 */
	if (nb == 0) {
		if (cmd->edtl != 0)
			isd_scsi_invalid_cdb(cmd, 13, 7);
		return ISD_SCSI_SETUP_DONE;
	}
	/* Likewise a data-out of another size than the two instances: compared and
	 * written against the wrong blocks, it would do what nobody asked. */
	if (cmd->edtl != 2 * nb * lu->block_size)
		return data_out_size_mismatch(cmd);
	cmd->lba = lba;
	cmd->nblocks = nb;
	if ((cdb[1] & 0x08) || !lu->wce)
		cmd->io_flags |= ISD_SCSI_IOF_FUA;
	/* Data-out: the verify instance, then the write instance. */
	return isd_scsi_setup_data_out(cmd, 2 * nb * lu->block_size);
}

/* Compares the first half of the data-out with `medium`; on a match the second is written. */
static bool
caw_apply(struct isd_scsi_cmd *cmd, const uint8_t *medium, struct iovec *out)
{
	uint32_t half = cmd->nblocks * cmd->lu->block_size;
	const uint8_t *data = cmd->iov[0].iov_base;
	long d;

	d = first_diff(data, medium, half);
	if (d >= 0) {
		/* SBC-4 5.3: INFORMATION = offset of the first byte that did not match. */
		miscompare(cmd, (uint64_t)d);
		return false;
	}
	out->iov_base = (uint8_t *)cmd->iov[0].iov_base + half;
	out->iov_len = half;
	return true;
}

void
isd_sbc_exec_caw(struct isd_scsi_cmd *cmd)
{
	rmw_exec(cmd);
}

/* ORWRITE (16) (SBC-3 5.9): each block becomes its old contents OR the data-out. */

int
isd_sbc_setup_orwrite(struct isd_scsi_cmd *cmd)
{
	struct isd_scsi_lu *lu = cmd->lu;
	const uint8_t *cdb = cmd->cdb;
	uint64_t lba = get_be64(cdb + 2);
	uint32_t nb = get_be32(cdb + 10);

	if (cdb[1] & 0xe0) {                    /* ORPROTECT: no protection information */
		isd_scsi_invalid_cdb(cmd, 1, 7);
		return ISD_SCSI_SETUP_DONE;
	}
	if (lu->read_only)
		return write_protected(cmd);
	if (!range_ok(lu, lba, nb))
		return lba_out_of_range(cmd);
	cmd->dir = ISD_SCSI_DIR_OUT;
	if (nb == 0)
		return ISD_SCSI_SETUP_DONE;
	if (nb > lu->max_xfer_blocks) {
		isd_scsi_invalid_cdb(cmd, 10, -1);
		return ISD_SCSI_SETUP_DONE;
	}
	cmd->lba = lba;
	cmd->nblocks = nb;
	if ((cdb[1] & 0x08) || !lu->wce)
		cmd->io_flags |= ISD_SCSI_IOF_FUA;
	/* staged, never placed in the LU: the data-out is an operand, not the result */
	return isd_scsi_setup_data_out(cmd, nb * lu->block_size);
}

/* The result goes to aux_buf: the data-out may be the transport's (read-only) buffer,
 * and on a file store aux_buf already holds the medium. */
static bool
orwrite_apply(struct isd_scsi_cmd *cmd, const uint8_t *medium, struct iovec *out)
{
	uint32_t len = cmd->nblocks * cmd->lu->block_size;
	const uint8_t *data = cmd->iov[0].iov_base;
	uint8_t *res = cmd->aux_buf;

	if (res == NULL) {
		res = malloc(len);
		if (res == NULL) {
			cmd->status = ISD_SAM_BUSY;
			return false;
		}
		cmd->aux_buf = res;
		cmd->aux_len = len;
	}
	for (uint32_t i = 0; i < len; i++)
		res[i] = medium[i] | data[i];
	out->iov_base = res;
	out->iov_len = len;
	return true;
}

void
isd_sbc_exec_orwrite(struct isd_scsi_cmd *cmd)
{
	rmw_exec(cmd);
}

/* ---- WRITE ATOMIC (16) ---- */

/*
 * SBC-4 5.48, within the Block Limits atomic fields (LUs with max_atomic_blocks
 * only: see isd_scsi_dev_add_lu). The data-out is always staged, never placed
 * in the LU as it arrives, and reaches the store in one write once all of it
 * is in: on RAM one copy, which no other command of the LU can come between.
 */
int
isd_sbc_setup_write_atomic(struct isd_scsi_cmd *cmd)
{
	struct isd_scsi_lu *lu = cmd->lu;
	const uint8_t *cdb = cmd->cdb;
	uint64_t lba = get_be64(cdb + 2);
	uint32_t nb = get_be16(cdb + 12);

	if (cdb[1] & 0xe0) {                    /* WRPROTECT */
		isd_scsi_invalid_cdb(cmd, 1, 7);
		return ISD_SCSI_SETUP_DONE;
	}
	if (lu->read_only)
		return write_protected(cmd);
	if (!range_ok(lu, lba, nb))
		return lba_out_of_range(cmd);
	cmd->dir = ISD_SCSI_DIR_OUT;
	if (nb == 0)
		return ISD_SCSI_SETUP_DONE;
	/* ATOMIC BOUNDARY: MAXIMUM ATOMIC BOUNDARY SIZE is 0, only 0 is valid */
	if (get_be16(cdb + 10) != 0) {
		isd_scsi_invalid_cdb(cmd, 10, -1);
		return ISD_SCSI_SETUP_DONE;
	}
	if (nb > lu->max_atomic_blocks || nb % lu->atomic_gran != 0) {
		isd_scsi_invalid_cdb(cmd, 12, -1);
		return ISD_SCSI_SETUP_DONE;
	}
	if (lba % lu->atomic_align != 0) {
		isd_scsi_invalid_cdb(cmd, 2, -1);
		return ISD_SCSI_SETUP_DONE;
	}
	cmd->lba = lba;
	cmd->nblocks = nb;
	if ((cdb[1] & 0x08) || !lu->wce)
		cmd->io_flags |= ISD_SCSI_IOF_FUA;
	return isd_scsi_setup_data_out(cmd, nb * lu->block_size);
}

void
isd_sbc_exec_write_atomic(struct isd_scsi_cmd *cmd)
{
	/* all of it or none: a short data-out writes nothing (a plain WRITE writes
	 * the whole blocks that came) */
	if (data_out_short(cmd))
		return;
	isd_sbc_exec_write(cmd);
}

/* ---- PRE-FETCH (10), (16) ---- */

/*
 * SBC-4 5.10: the blocks are brought into the cache. The stores have no cache
 * of ours to load (RAM is the medium; a file's page cache is the kernel's):
 * none of the range can be transferred, which SBC answers with GOOD, never
 * CONDITION MET, whether IMMED is set or not. Only the range is checked.
 */
int
isd_sbc_setup_prefetch(struct isd_scsi_cmd *cmd)
{
	(void)range_to_end_ok(cmd, 0x34);
	return ISD_SCSI_SETUP_DONE;
}

/* ---- READ DEFECT DATA (10), (12) ---- */

/*
 * SBC-4 5.19/5.20: no defects, ever. The lists asked for (REQ_PLIST,
 * REQ_GLIST) are reported valid and empty, in the format asked for; 111b is
 * reserved.
 */
int
isd_sbc_setup_read_defect_data(struct isd_scsi_cmd *cmd)
{
	const uint8_t *cdb = cmd->cdb;
	bool is10 = cdb[0] == 0x37;
	uint8_t f = is10 ? cdb[2] : cdb[1];

	if ((f & 0x07) == 0x07) {
		isd_scsi_invalid_cdb(cmd, is10 ? 2 : 1, 2);
		return ISD_SCSI_SETUP_DONE;
	}
	cmd->io_pos = f & 0x1f;
	return isd_scsi_setup_data_in(cmd, is10 ? get_be16(cdb + 7) : get_be32(cdb + 6));
}

void
isd_sbc_exec_read_defect_data(struct isd_scsi_cmd *cmd)
{
	uint8_t b[8];

	/* PLISTV, GLISTV as requested, the format; DEFECT LIST LENGTH 0 (and, in the
	 * 12-byte header, GENERATION CODE 0: not supported) */
	memset(b, 0, sizeof(b));
	b[1] = (uint8_t)cmd->io_pos;
	isd_scsi_data_in(cmd, b, cmd->cdb[0] == 0x37 ? 4 : 8);
	isd_scsi_cmd_done(cmd);
}
