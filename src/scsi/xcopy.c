/*
 * The copy manager (SPC-4 6.3, 6.18, 7.8.17): EXTENDED COPY (LID1) and
 * RECEIVE COPY RESULTS, as VMware ESXi's "full copy" and Linux's LIO use them.
 *
 * What it takes: identification descriptors (E4h) that name a LU of this
 * process by its NAA designator (VPD 0x83), on any target, and block to block
 * segments (02h). The whole parameter list is checked before any block moves:
 * a list with one bad field copies nothing.
 *
 * How data moves: in chunks of XCOPY_CHUNK through the stores' own read and
 * write, one at a time, each completion (from the reactor) starting the next,
 * so a copy never holds the reactor for more than one chunk's memcpy. From a
 * RAM store the write takes the source memory itself (RAM to RAM is one
 * memmove inside the process, RAM to file one write); from any other store a
 * chunk is read into a buffer of XCOPY_CHUNK bytes, the only memory a copy
 * allocates besides its descriptors. Between chunks the copy checks whether it
 * was aborted (ABORT TASK, LU reset: isd_scsi_cmd_cancel), whether one of its
 * LUs was removed or shrank, and whether a reservation now forbids it.
 *
 * Every copy target LU is held (isd_scsi_lu_find_naa) from parsing to
 * completion, so a live removal waits for the copy's last chunk and never
 * frees a store under it.
 *
 * With several reactors a target LU may belong to another device, served
 * at the same moment by another thread under that device's monitor, while
 * the copy runs under its own device's (scsi_int.h, "the registry"). The
 * copy reads what never changes (the store, the block size, a RAM store's
 * memory) as it likes; everything else of a LU of another device (removed,
 * size, resets, write protection, reservations, write cache) it reads only
 * inside that device's monitor, entered without waiting (isd_scsi_lu_enter):
 * a copy from A to B holding A and waiting for B while a copy from B to A
 * holds B and waits for A would deadlock. When the monitor is taken the copy
 * tries again on the next turn of its reactor. Its I/O to the other LU's
 * store is submitted after leaving that monitor, under its own device's
 * only: the store calls back under the monitor that was held at submission
 * (isd_bstore_deliver), which must be the copy's.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <stdatomic.h>

#include "bstore/bstore.h"
#include "reactor/reactor.h"
#include "scsi/scsi_int.h"
#include "util/endian.h"

#define XCOPY_HDR 16
#define XCOPY_TGT_LEN 32                /* every CSCD descriptor we know of but two */
#define XCOPY_SEG_B2B_LEN 28            /* block to block segment descriptor */
#define XCOPY_MAX_TGT 8                 /* MAXIMUM CSCD DESCRIPTOR COUNT */
#define XCOPY_MAX_SEG 64                /* MAXIMUM SEGMENT DESCRIPTOR COUNT */
#define XCOPY_MAX_DESC_LEN (XCOPY_MAX_TGT * XCOPY_TGT_LEN + XCOPY_MAX_SEG * XCOPY_SEG_B2B_LEN)
#define XCOPY_MAX_SEG_BYTES ISD_SCSI_MAX_XFER   /* MAXIMUM SEGMENT LENGTH */
/* A parameter list longer than this is refused before its data is taken. */
#define XCOPY_MAX_PARAM (64u << 10)
#define XCOPY_MAX_ACTIVE 32             /* TOTAL CONCURRENT COPIES, process-wide */
#define XCOPY_CHUNK (1u << 20)
#define XCOPY_HELD 4                    /* results held per nexus and LU */

/* COPY MANAGER STATUS of COPY STATUS (SPC-4 6.18.2) */
#define CM_IN_PROGRESS 0x00
#define CM_DONE 0x01
#define CM_FAILED 0x02

/* Results of a copy with LIST ID USAGE 00b, kept for RECEIVE COPY RESULTS. */
struct isd_xcopy_held_one {
	bool used;
	uint8_t list_id;
	uint8_t cm_status;              /* CM_* */
	uint8_t status;                 /* the EXTENDED COPY's SAM status once done */
	bool hold;                      /* LIST ID USAGE 00b: kept after completion */
	uint16_t segs_done;
	uint64_t bytes;
	uint64_t seq;                   /* age, to replace the oldest */
	uint8_t sense[18];
	uint32_t sense_len;
};

struct isd_xcopy_held {
	struct isd_xcopy_held_one r[XCOPY_HELD];
};

struct xcopy_seg {
	uint16_t src, dst;              /* CSCD descriptor indexes */
	uint32_t nblocks;
	uint64_t src_lba, dst_lba;
};

/* One running copy; in cmd->priv, freed at its completion. */
struct xcopy_job {
	struct isd_scsi_cmd *cmd;
	struct isd_scsi_lu *tgt[XCOPY_MAX_TGT];         /* held */
	uint32_t gen[XCOPY_MAX_TGT];                    /* their reset_gen at the start */
	uint32_t ntgt;
	struct xcopy_seg seg[XCOPY_MAX_SEG];
	uint32_t nseg;
	uint32_t cur;                   /* segment being copied */
	uint32_t pos;                   /* blocks of it copied */
	uint32_t chunk;                 /* blocks of the chunk in flight */
	uint8_t list_id;
	bool tracked;                   /* has a slot in the nexus's held results */
	uint64_t bytes;
	uint8_t *buf;                   /* XCOPY_CHUNK bytes, only when a source is not RAM */
	bool busy;                      /* a target's device monitor was taken: try again */
	bool fua;                       /* the chunk's write: the destination's write cache is off */
	struct isd_timer retry;         /* the next try, on the copy's reactor */
};

/* A list that met a busy device monitor at the start: parsed again on the next turn. */
struct xcopy_restart {
	struct isd_timer t;
	struct isd_scsi_cmd *cmd;
};

/* copies of every device, on every reactor */
static _Atomic uint32_t g_xcopy_active;
static uint64_t g_xcopy_seq;

/* ---- sense ---- */

/*
 * COPY ABORTED (SPC-4 6.4.5.x): INFORMATION = the blocks of the segment not
 * copied, the third and fourth bytes of COMMAND-SPECIFIC INFORMATION = the
 * segment being processed, and a segment pointer when a field was at fault
 * (relative to that segment descriptor when sd).
 */
static void
copy_aborted(struct isd_scsi_cmd *cmd, uint16_t asc, uint32_t seg, uint32_t residue,
	     int field, bool sd)
{
	isd_scsi_check(cmd, ISD_SK_COPY_ABORTED, asc);
	isd_scsi_sense_info(cmd, residue);
	put_be16(cmd->sense + 10, (uint16_t)seg);
	if (field >= 0) {
		cmd->sense[15] = 0x80 | (sd ? 0x20 : 0);
		put_be16(cmd->sense + 16, (uint16_t)field);
	}
}

static void
param_len_error(struct isd_scsi_cmd *cmd)
{
	isd_scsi_check(cmd, ISD_SK_ILLEGAL_REQUEST, ISD_ASC_PARAM_LIST_LENGTH);
}

static void
illegal_param(struct isd_scsi_cmd *cmd, uint16_t asc, uint32_t byte)
{
	isd_scsi_check(cmd, ISD_SK_ILLEGAL_REQUEST, asc);
	isd_scsi_sense_field(cmd, false, (uint16_t)byte, -1);
}

/* ---- results held per nexus ---- */

void
isd_xcopy_held_free(struct isd_scsi_itn *itn)
{
	free(itn->xcopy);
	itn->xcopy = NULL;
}

static struct isd_xcopy_held_one *
held_find(struct isd_scsi_itn *itn, uint8_t list_id)
{
	if (itn == NULL || itn->xcopy == NULL)
		return NULL;
	for (int i = 0; i < XCOPY_HELD; i++) {
		struct isd_xcopy_held_one *r = &itn->xcopy->r[i];

		if (r->used && r->list_id == list_id)
			return r;
	}
	return NULL;
}

static struct isd_scsi_itn *
job_itn(struct isd_scsi_cmd *cmd)
{
	return isd_scsi_itn_find(cmd->lu, isd_scsi_cmd_nexus(cmd)->id);
}

/* A free slot, else the oldest one of a completed copy; NULL when all are running. */
static struct isd_xcopy_held_one *
held_pick(struct isd_xcopy_held *h)
{
	struct isd_xcopy_held_one *old = NULL;

	for (int i = 0; i < XCOPY_HELD; i++) {
		struct isd_xcopy_held_one *o = &h->r[i];

		if (!o->used)
			return o;
		if (o->cm_status != CM_IN_PROGRESS && (old == NULL || o->seq < old->seq))
			old = o;
	}
	return old;
}

/*
 * A slot for a copy about to run: a completed one with the same list id is
 * replaced, else a free slot, else the oldest completed one. -EBUSY when the
 * list id is in use by a copy in progress, -ENOMEM when no slot can be had.
 */
static int
held_start(struct isd_scsi_cmd *cmd, uint8_t list_id, bool hold)
{
	struct isd_scsi_itn *itn = isd_scsi_itn_get(cmd->lu, isd_scsi_cmd_nexus(cmd));
	struct isd_xcopy_held_one *r, *pick;

	if (itn == NULL)
		return -ENOMEM;
	r = held_find(itn, list_id);
	if (r != NULL && r->cm_status == CM_IN_PROGRESS)
		return -EBUSY;
	if (itn->xcopy == NULL) {
		itn->xcopy = calloc(1, sizeof(*itn->xcopy));
		if (itn->xcopy == NULL)
			return -ENOMEM;
	}
	pick = r != NULL ? r : held_pick(itn->xcopy);
	if (pick == NULL)
		return -ENOMEM;
	memset(pick, 0, sizeof(*pick));
	pick->used = true;
	pick->list_id = list_id;
	pick->cm_status = CM_IN_PROGRESS;
	pick->hold = hold;
	pick->seq = ++g_xcopy_seq;
	return 0;
}

static void
held_progress(struct xcopy_job *job)
{
	struct isd_xcopy_held_one *r;

	if (!job->tracked)
		return;
	/* the nexus may have gone (its state with it) while the copy ran */
	r = held_find(job_itn(job->cmd), job->list_id);
	if (r == NULL)
		return;
	r->segs_done = (uint16_t)job->cur;
	r->bytes = job->bytes;
}

static void
held_finish(struct xcopy_job *job)
{
	struct isd_scsi_cmd *cmd = job->cmd;
	struct isd_xcopy_held_one *r;

	if (!job->tracked)
		return;
	r = held_find(job_itn(cmd), job->list_id);
	if (r == NULL)
		return;
	if (!r->hold) {
		r->used = false;
		return;
	}
	r->segs_done = (uint16_t)job->cur;
	r->bytes = job->bytes;
	r->status = cmd->status;
	r->cm_status = cmd->status == ISD_SAM_GOOD ? CM_DONE : CM_FAILED;
	r->sense_len = cmd->sense_len < sizeof(r->sense) ? cmd->sense_len : sizeof(r->sense);
	memcpy(r->sense, cmd->sense, r->sense_len);
}

/* ---- EXTENDED COPY: the CDB ---- */

int
isd_xcopy_setup(struct isd_scsi_cmd *cmd)
{
	const uint8_t *cdb = cmd->cdb;
	uint32_t len = get_be32(cdb + 10);

	if (cdb[1] & 0xe0) {
		isd_scsi_invalid_cdb(cmd, 1, 7);
		return ISD_SCSI_SETUP_DONE;
	}
	for (uint16_t i = 2; i < 10; i++) {
		if (cdb[i] != 0) {
			isd_scsi_invalid_cdb(cmd, i, -1);
			return ISD_SCSI_SETUP_DONE;
		}
	}
	if (cdb[14] != 0) {
		isd_scsi_invalid_cdb(cmd, 14, -1);
		return ISD_SCSI_SETUP_DONE;
	}
	/* SPC-4 6.4.1: a PARAMETER LIST LENGTH of zero copies nothing and is no error. */
	if (len == 0)
		return ISD_SCSI_SETUP_DONE;
	if (len > XCOPY_MAX_PARAM) {
		param_len_error(cmd);
		return ISD_SCSI_SETUP_DONE;
	}
	return isd_scsi_setup_data_out(cmd, len);
}

/* ---- EXTENDED COPY: the parameter list ---- */

static void
job_free(struct xcopy_job *job)
{
	for (uint32_t i = 0; i < job->ntgt; i++)
		if (job->tgt[i] != NULL)
			isd_scsi_lu_put(job->tgt[i]);
	free(job->buf);
	free(job);
}

/*
 * One identification CSCD descriptor (E4h) at p: finds the LU it names and
 * holds it. False with the command's sense set when it cannot be used.
 */
static bool
parse_e4(struct isd_scsi_cmd *cmd, const uint8_t *p, uint32_t off, struct isd_scsi_lu **out)
{
	uint8_t code_set = p[4] & 0x0f, assoc = (p[5] >> 4) & 0x03, type = p[5] & 0x0f;
	uint8_t dlen = p[7];
	uint32_t blen = get_be24(p + 29);
	struct isd_scsi_lu *lu;

	/* LU ID TYPE, NUL and the RELATIVE INITIATOR PORT IDENTIFIER do not apply
	 * to a copy manager that reaches its LUs from inside (SPC-4: ignored). */
	if ((p[1] & 0x1f) != 0) {
		/* only direct access block devices are copy targets here */
		copy_aborted(cmd, ISD_ASC_COPY_TARGET_WRONG_TYPE, 0, 0, (int)off + 1, false);
		return false;
	}
	if (dlen > 20) {
		illegal_param(cmd, ISD_ASC_INVALID_FIELD_PARAM, off + 7);
		return false;
	}
	/* A binary NAA designator of the LU itself; any other names nothing we have. */
	lu = NULL;
	if (code_set == 0x01 && assoc == 0 && type == 0x03)
		lu = isd_scsi_lu_find_naa(cmd->dev, p + 8, dlen);       /* held */
	if (lu == NULL) {
		copy_aborted(cmd, ISD_ASC_COPY_TARGET_NOT_REACHABLE, 0, 0, (int)off + 4, false);
		return false;
	}
	/* DISK BLOCK LENGTH: 0 takes the LU's; any other must be it. */
	if (blen != 0 && blen != lu->block_size) {
		isd_scsi_lu_put(lu);
		illegal_param(cmd, ISD_ASC_INVALID_FIELD_PARAM, off + 29);
		return false;
	}
	*out = lu;
	return true;
}

/*
 * Enters what guards the state of a segment's two LUs (m[0], m[1] to leave
 * with seg_leave); false when one's device monitor is taken (job->busy).
 */
static bool
seg_enter(struct xcopy_job *job, struct isd_scsi_lu *src, struct isd_scsi_lu *dst,
	  struct isd_monitor *m[2])
{
	m[1] = NULL;
	if (isd_scsi_lu_enter(job->cmd->dev, src, &m[0]) < 0) {
		job->busy = true;
		return false;
	}
	if (isd_scsi_lu_enter(job->cmd->dev, dst, &m[1]) < 0) {
		isd_monitor_leave(m[0]);
		job->busy = true;
		return false;
	}
	return true;
}

static void
seg_leave(struct isd_monitor *m[2])
{
	isd_monitor_leave(m[1]);
	isd_monitor_leave(m[0]);
}

static bool
range_ok(const struct isd_scsi_lu *lu, uint64_t lba, uint64_t nb)
{
	return lba <= lu->nblocks && nb <= lu->nblocks - lba;
}

/*
 * Checks the whole list and fills job; false with the command's sense set.
 * The order follows what initiators test for: lengths first (PARAMETER LIST
 * LENGTH ERROR), then descriptor counts and types, then what the descriptors
 * name (COPY ABORTED for a target or range the copy cannot reach).
 */
static bool
parse_list(struct isd_scsi_cmd *cmd, const uint8_t *p, uint32_t len, struct xcopy_job *job,
	   bool *hold, bool *track)
{
	uint32_t tlen, slen, ilen, off, end;
	uint32_t gen_set = 0;           /* targets whose reset_gen was taken */
	struct isd_monitor *m[2];
	uint8_t usage;

	if (len < XCOPY_HDR) {
		param_len_error(cmd);
		return false;
	}
	if (p[1] & 0xc0) {
		illegal_param(cmd, ISD_ASC_INVALID_FIELD_PARAM, 1);
		return false;
	}
	usage = (p[1] >> 3) & 0x03;
	/* LIST ID USAGE 01b is reserved; 11b says the list id means nothing, and must be 0 */
	if (usage == 0x01) {
		illegal_param(cmd, ISD_ASC_INVALID_FIELD_PARAM, 1);
		return false;
	}
	if (usage == 0x03 && p[0] != 0) {
		illegal_param(cmd, ISD_ASC_INVALID_FIELD_PARAM, 0);
		return false;
	}
	for (uint32_t i = 4; i < 8; i++) {
		if (p[i] != 0) {
			illegal_param(cmd, ISD_ASC_INVALID_FIELD_PARAM, i);
			return false;
		}
	}
	tlen = get_be16(p + 2);
	slen = get_be32(p + 8);
	ilen = get_be32(p + 12);
	if (tlen > XCOPY_MAX_DESC_LEN || slen > XCOPY_MAX_DESC_LEN ||
	    tlen + slen > XCOPY_MAX_DESC_LEN) {
		param_len_error(cmd);
		return false;
	}
	/* MAXIMUM INLINE DATA LENGTH is 0: no segment of ours takes inline data */
	if (ilen != 0) {
		illegal_param(cmd, ISD_ASC_INVALID_FIELD_PARAM, 12);
		return false;
	}
	if (XCOPY_HDR + tlen + slen > len) {
		param_len_error(cmd);
		return false;
	}
	job->list_id = p[0];
	*hold = usage == 0x00;
	*track = usage != 0x03;

	/* CSCD descriptors: counted, typed and sized before any is looked up. */
	end = XCOPY_HDR + tlen;
	for (off = XCOPY_HDR; off < end; off += XCOPY_TGT_LEN) {
		uint8_t t = p[off];

		if (job->ntgt == XCOPY_MAX_TGT) {
			isd_scsi_check(cmd, ISD_SK_ILLEGAL_REQUEST, ISD_ASC_TOO_MANY_TARGET_DESCS);
			return false;
		}
		if (end - off < XCOPY_TGT_LEN) {
			param_len_error(cmd);
			return false;
		}
		if (t != 0xe4) {
			illegal_param(cmd, ISD_ASC_UNSUPPORTED_TARGET_DESC, off);
			return false;
		}
		job->ntgt++;
	}
	/* Segment descriptors likewise. */
	end = XCOPY_HDR + tlen + slen;
	for (off = XCOPY_HDR + tlen; off < end;) {
		struct xcopy_seg *s;
		const uint8_t *d = p + off;

		if (job->nseg == XCOPY_MAX_SEG) {
			isd_scsi_check(cmd, ISD_SK_ILLEGAL_REQUEST, ISD_ASC_TOO_MANY_SEGMENT_DESCS);
			return false;
		}
		if (d[0] != 0x02) {
			illegal_param(cmd, ISD_ASC_UNSUPPORTED_SEGMENT_DESC, off);
			return false;
		}
		if (end - off < XCOPY_SEG_B2B_LEN) {
			param_len_error(cmd);
			return false;
		}
		if (get_be16(d + 2) != XCOPY_SEG_B2B_LEN - 4) {
			illegal_param(cmd, ISD_ASC_INVALID_FIELD_PARAM, off + 2);
			return false;
		}
		/* DC and CAT change nothing for block to block with equal block sizes */
		if ((d[1] & 0xfc) || d[8] || d[9]) {
			illegal_param(cmd, ISD_ASC_INVALID_FIELD_PARAM,
				      off + ((d[1] & 0xfc) ? 1 : 8));
			return false;
		}
		s = &job->seg[job->nseg++];
		s->src = get_be16(d + 4);
		s->dst = get_be16(d + 6);
		s->nblocks = get_be16(d + 10);
		s->src_lba = get_be64(d + 12);
		s->dst_lba = get_be64(d + 20);
		off += XCOPY_SEG_B2B_LEN;
	}
	/* What the descriptors name. */
	for (uint32_t i = 0; i < job->ntgt; i++) {
		off = XCOPY_HDR + i * XCOPY_TGT_LEN;
		if (!parse_e4(cmd, p + off, off, &job->tgt[i])) {
			/* the ones found so far are put by job_free; this one was not taken */
			job->ntgt = i;
			return false;
		}
	}
	for (uint32_t i = 0; i < job->nseg; i++) {
		const struct xcopy_seg *s = &job->seg[i];
		struct isd_scsi_lu *src, *dst;

		if (s->src >= job->ntgt || s->dst >= job->ntgt) {
			copy_aborted(cmd, ISD_ASC_COPY_TARGET_NOT_REACHABLE, i, s->nblocks,
				     s->src >= job->ntgt ? 4 : 6, true);
			return false;
		}
		src = job->tgt[s->src];
		dst = job->tgt[s->dst];
		if (src->block_size != dst->block_size) {
			copy_aborted(cmd, ISD_ASC_COPY_TARGET_WRONG_TYPE, i, s->nblocks, 6, true);
			return false;
		}
		if ((uint64_t)s->nblocks * src->block_size > XCOPY_MAX_SEG_BYTES) {
			illegal_param(cmd, ISD_ASC_INVALID_FIELD_PARAM,
				      XCOPY_HDR + tlen + i * XCOPY_SEG_B2B_LEN + 10);
			return false;
		}
		/* the rest is the LUs' state: inside their devices' monitors */
		if (!seg_enter(job, src, dst, m))
			return false;
		/* the reset generation each target starts at, taken once */
		if (!(gen_set & (1u << s->src))) {
			job->gen[s->src] = src->reset_gen;
			gen_set |= 1u << s->src;
		}
		if (!(gen_set & (1u << s->dst))) {
			job->gen[s->dst] = dst->reset_gen;
			gen_set |= 1u << s->dst;
		}
		if (!range_ok(src, s->src_lba, s->nblocks) ||
		    !range_ok(dst, s->dst_lba, s->nblocks)) {
			bool src_bad = !range_ok(src, s->src_lba, s->nblocks);

			seg_leave(m);
			copy_aborted(cmd, ISD_ASC_NO_ADDITIONAL, i, s->nblocks, src_bad ? 12 : 20,
				     true);
			return false;
		}
		if (dst->read_only) {
			seg_leave(m);
			isd_scsi_check(cmd, ISD_SK_DATA_PROTECT, ISD_ASC_WRITE_PROTECTED);
			return false;
		}
		if (isd_scsi_lu_conflict(src, isd_scsi_cmd_nexus(cmd), false) ||
		    isd_scsi_lu_conflict(dst, isd_scsi_cmd_nexus(cmd), true)) {
			seg_leave(m);
			cmd->status = ISD_SAM_RESERVATION_CONFLICT;
			cmd->sense_len = 0;
			return false;
		}
		seg_leave(m);
		if (src->bs->mem_base == NULL && job->buf == NULL) {
			job->buf = malloc(XCOPY_CHUNK);
			if (job->buf == NULL) {
				cmd->status = ISD_SAM_BUSY;
				cmd->sense_len = 0;
				return false;
			}
		}
	}
	return true;
}

/* ---- EXTENDED COPY: moving the data ---- */

static void job_step(struct xcopy_job *job);

static void
job_finish(struct xcopy_job *job)
{
	struct isd_scsi_cmd *cmd = job->cmd;

	/* an aborted copy reports TASK ABORTED, whatever its last chunk did */
	if (cmd->aborted) {
		cmd->status = ISD_SAM_TASK_ABORTED;
		cmd->sense_len = 0;
	}
	cmd->lu->io.xcopy_bytes += job->bytes;
	if (cmd->lu->dev != NULL)
		cmd->lu->dev->io.xcopy_bytes += job->bytes;
	held_finish(job);
	cmd->priv = NULL;
	job_free(job);
	g_xcopy_active--;
	isd_scsi_cmd_done(cmd);
}

static void
io_failed(struct xcopy_job *job, int err, bool write)
{
	const struct xcopy_seg *s = &job->seg[job->cur];
	uint32_t residue = s->nblocks - job->pos;

	if (err == -EROFS)
		isd_scsi_check(job->cmd, ISD_SK_DATA_PROTECT, ISD_ASC_WRITE_PROTECTED);
	else
		copy_aborted(job->cmd, write ? ISD_ASC_WRITE_ERROR : ISD_ASC_UNRECOVERED_READ,
			     job->cur, residue, -1, false);
	job_finish(job);
}

static void
write_done(void *arg, int status)
{
	struct xcopy_job *job = arg;
	struct isd_scsi_lu *src = job->tgt[job->seg[job->cur].src];

	if (status < 0) {
		io_failed(job, status, true);
		return;
	}
	job->pos += job->chunk;
	job->bytes += (uint64_t)job->chunk * src->block_size;
	job_step(job);
}

static void
chunk_write(struct xcopy_job *job, void *data)
{
	const struct xcopy_seg *s = &job->seg[job->cur];
	struct isd_scsi_lu *dst = job->tgt[s->dst];
	struct iovec iov;
	int rc;

	iov.iov_base = data;
	iov.iov_len = (size_t)job->chunk * dst->block_size;
	rc = isd_bstore_write(dst->bs, &iov, 1, (s->dst_lba + job->pos) * dst->block_size,
			      job->fua, write_done, job);
	if (rc < 0)
		io_failed(job, rc, true);
}

static void
read_done(void *arg, int status)
{
	struct xcopy_job *job = arg;

	if (status < 0) {
		io_failed(job, status, false);
		return;
	}
	/* the read took a turn of the reactor: check again before storing */
	if (job->cmd->aborted) {
		job_finish(job);
		return;
	}
	chunk_write(job, job->buf);
}

/*
 * The LUs of the segment are still there and the copy may still store
 * (false with the command's status set), or job->busy: one's device monitor
 * was taken, nothing was decided.
 */
static bool
chunk_allowed(struct xcopy_job *job, const struct xcopy_seg *s, uint32_t n)
{
	struct isd_scsi_cmd *cmd = job->cmd;
	struct isd_scsi_lu *src = job->tgt[s->src], *dst = job->tgt[s->dst];
	struct isd_monitor *m[2];
	bool ok = false;

	if (!seg_enter(job, src, dst, m))
		return false;
	/* removed, or reset (which aborts what any initiator had running there) */
	if (src->removed || dst->removed || src->reset_gen != job->gen[s->src] ||
	    dst->reset_gen != job->gen[s->dst]) {
		copy_aborted(cmd, ISD_ASC_COPY_TARGET_NOT_REACHABLE, job->cur,
			     s->nblocks - job->pos, -1, false);
	} else if (!range_ok(src, s->src_lba + job->pos, n) ||
		   !range_ok(dst, s->dst_lba + job->pos, n)) {
		/* a LU that shrank since the list was checked */
		copy_aborted(cmd, ISD_ASC_NO_ADDITIONAL, job->cur, s->nblocks - job->pos, -1,
			     false);
	} else if (dst->read_only) {
		isd_scsi_check(cmd, ISD_SK_DATA_PROTECT, ISD_ASC_WRITE_PROTECTED);
	} else if (isd_scsi_lu_conflict(src, isd_scsi_cmd_nexus(cmd), false) ||
		   isd_scsi_lu_conflict(dst, isd_scsi_cmd_nexus(cmd), true)) {
		cmd->status = ISD_SAM_RESERVATION_CONFLICT;
		cmd->sense_len = 0;
	} else {
		ok = true;
		/* read here, where it is guarded: the write goes out after the leave */
		job->fua = !dst->wce;
	}
	seg_leave(m);
	return ok;
}

/* Defers fn(arg) to the next turn of the calling thread's reactor; false without one. */
static bool
retry_later(struct isd_timer *t, void (*fn)(void *arg), void *arg)
{
	struct isd_reactor *r = isd_reactor_current();

	if (r == NULL)
		return false;
	isd_timer_init(t, fn, arg);
	isd_reactor_defer(r, t);
	return true;
}

static void
job_retry(void *arg)
{
	struct xcopy_job *job = arg;
	struct isd_monitor *mon = isd_scsi_dev_monitor(job->cmd->dev);

	isd_monitor_enter(mon);
	job_step(job);
	isd_monitor_leave(mon);
}

static void
job_step(struct xcopy_job *job)
{
	const struct xcopy_seg *s;
	struct isd_scsi_lu *src;
	struct iovec iov;
	uint32_t n;
	int rc;

	for (;;) {
		if (job->cmd->aborted || job->cur == job->nseg) {
			job_finish(job);
			return;
		}
		s = &job->seg[job->cur];
		if (job->pos < s->nblocks)
			break;
		job->cur++;
		job->pos = 0;
		held_progress(job);
	}
	src = job->tgt[s->src];
	n = s->nblocks - job->pos;
	if (n > XCOPY_CHUNK / src->block_size)
		n = XCOPY_CHUNK / src->block_size;
	if (!chunk_allowed(job, s, n)) {
		if (job->busy) {
			job->busy = false;
			if (retry_later(&job->retry, job_retry, job))
				return;
			/* no reactor to come back on (cannot be with monitors on) */
			job->cmd->status = ISD_SAM_BUSY;
			job->cmd->sense_len = 0;
		}
		job_finish(job);
		return;
	}
	job->chunk = n;
	if (src->bs->mem_base != NULL) {
		/* zero copy: the destination store takes the source's memory */
		chunk_write(job, (uint8_t *)src->bs->mem_base +
					 (s->src_lba + job->pos) * src->block_size);
		return;
	}
	iov.iov_base = job->buf;
	iov.iov_len = (size_t)n * src->block_size;
	rc = isd_bstore_read(src->bs, &iov, 1, (s->src_lba + job->pos) * src->block_size,
			     read_done, job);
	if (rc < 0)
		io_failed(job, rc, false);
}

static void
restart_run(void *arg)
{
	struct xcopy_restart *rs = arg;
	struct isd_scsi_cmd *cmd = rs->cmd;
	struct isd_monitor *mon = isd_scsi_dev_monitor(cmd->dev);

	free(rs);
	isd_monitor_enter(mon);
	if (cmd->aborted) {
		cmd->status = ISD_SAM_TASK_ABORTED;
		cmd->sense_len = 0;
		isd_scsi_cmd_done(cmd);
	} else {
		isd_xcopy_exec(cmd);
	}
	isd_monitor_leave(mon);
}

void
isd_xcopy_exec(struct isd_scsi_cmd *cmd)
{
	struct xcopy_job *job;
	bool hold = false, track = false, parsed;
	int rc;

	/* never act on a list that did not fully arrive */
	if (cmd->data_out_len < cmd->xfer_len || cmd->iovcnt == 0) {
		param_len_error(cmd);
		isd_scsi_cmd_done(cmd);
		return;
	}
	job = calloc(1, sizeof(*job));
	if (job == NULL) {
		cmd->status = ISD_SAM_BUSY;
		isd_scsi_cmd_done(cmd);
		return;
	}
	job->cmd = cmd;
	parsed = parse_list(cmd, cmd->iov[0].iov_base, cmd->data_out_len, job, &hold, &track);
	if (!parsed && job->busy) {
		/* another device's monitor was taken: the whole list again, next turn */
		struct xcopy_restart *rs = malloc(sizeof(*rs));

		job_free(job);
		if (rs != NULL) {
			rs->cmd = cmd;
			if (retry_later(&rs->t, restart_run, rs))
				return;
			free(rs);
		}
		cmd->status = ISD_SAM_BUSY;
		cmd->sense_len = 0;
		isd_scsi_cmd_done(cmd);
		return;
	}
	if (!parsed) {
		/* a segment the copy could not process (COPY ABORTED, not a bad list):
		 * its failed segment details are held like those of a failed copy */
		if (track && cmd->sense_len > 2 && (cmd->sense[2] & 0x0f) == ISD_SK_COPY_ABORTED &&
		    held_start(cmd, job->list_id, hold) == 0) {
			job->tracked = true;
			held_finish(job);
		}
		job_free(job);
		isd_scsi_cmd_done(cmd);
		return;
	}
	if (g_xcopy_active >= XCOPY_MAX_ACTIVE) {
		/* TOTAL CONCURRENT COPIES reached: the initiator retries */
		job_free(job);
		cmd->status = ISD_SAM_BUSY;
		isd_scsi_cmd_done(cmd);
		return;
	}
	if (track) {
		rc = held_start(cmd, job->list_id, hold);
		if (rc == -EBUSY) {
			/* SPC-4 6.4.3.2: a list id a copy in progress of this nexus uses */
			isd_scsi_check(cmd, ISD_SK_ILLEGAL_REQUEST, ISD_ASC_OPERATION_IN_PROGRESS);
			job_free(job);
			isd_scsi_cmd_done(cmd);
			return;
		}
		job->tracked = rc == 0;
	}
	g_xcopy_active++;
	cmd->priv = job;
	job_step(job);
}

/* ---- RECEIVE COPY RESULTS ---- */

#define RCR_COPY_STATUS 0x00
#define RCR_OP_PARAMS 0x03
#define RCR_FAILED_SEGS 0x04

int
isd_xcopy_setup_results(struct isd_scsi_cmd *cmd)
{
	const uint8_t *cdb = cmd->cdb;
	uint8_t sa = cdb[1] & 0x1f;

	if (cdb[1] & 0xe0) {
		isd_scsi_invalid_cdb(cmd, 1, 7);
		return ISD_SCSI_SETUP_DONE;
	}
	/* the list id means nothing to OPERATING PARAMETERS; bytes 3..9 and 14 are reserved */
	for (uint16_t i = sa == RCR_OP_PARAMS ? 2 : 3; i < 10; i++) {
		if (cdb[i] != 0) {
			isd_scsi_invalid_cdb(cmd, i, -1);
			return ISD_SCSI_SETUP_DONE;
		}
	}
	if (cdb[14] != 0) {
		isd_scsi_invalid_cdb(cmd, 14, -1);
		return ISD_SCSI_SETUP_DONE;
	}
	cmd->io_pos = (uint64_t)sa << 8 | cdb[2];
	return isd_scsi_setup_data_in(cmd, get_be32(cdb + 10));
}

static uint32_t
op_params(struct isd_scsi_lu *lu, uint8_t *b)
{
	memset(b, 0, 46);
	put_be32(b, 46 - 4);
	b[4] = 0x01;                                    /* SNLID: list ids 0..255 per nexus */
	put_be16(b + 8, XCOPY_MAX_TGT);
	put_be16(b + 10, XCOPY_MAX_SEG);
	put_be32(b + 12, XCOPY_MAX_DESC_LEN);
	put_be32(b + 16, XCOPY_MAX_SEG_BYTES);
	/* MAXIMUM INLINE DATA LENGTH, HELD DATA LIMIT, MAXIMUM STREAM DEVICE TRANSFER SIZE: 0 */
	put_be16(b + 34, XCOPY_MAX_ACTIVE);             /* TOTAL CONCURRENT COPIES */
	b[36] = XCOPY_MAX_ACTIVE;                       /* MAXIMUM CONCURRENT COPIES */
	b[37] = (uint8_t)__builtin_ctz(lu->block_size); /* DATA SEGMENT GRANULARITY (log2) */
	b[43] = 2;                                      /* IMPLEMENTED DESCRIPTOR LIST */
	b[44] = 0x02;
	b[45] = 0xe4;
	return 46;
}

void
isd_xcopy_exec_results(struct isd_scsi_cmd *cmd)
{
	uint8_t sa = (uint8_t)(cmd->io_pos >> 8), list_id = (uint8_t)cmd->io_pos;
	struct isd_xcopy_held_one *r;
	uint8_t b[96];
	uint32_t n;

	if (sa == RCR_OP_PARAMS) {
		n = op_params(cmd->lu, b);
		isd_scsi_data_in(cmd, b, n);
		isd_scsi_cmd_done(cmd);
		return;
	}
	r = held_find(job_itn(cmd), list_id);
	/* SPC-4 6.18: nothing held for this list id: INVALID FIELD IN CDB (the list id);
	 * failed segment details exist only for a copy that failed */
	if (r == NULL || (sa == RCR_FAILED_SEGS && r->cm_status != CM_FAILED)) {
		isd_scsi_invalid_cdb(cmd, 2, -1);
		isd_scsi_cmd_done(cmd);
		return;
	}
	memset(b, 0, sizeof(b));
	if (sa == RCR_COPY_STATUS) {
		uint64_t kib = r->bytes >> 10;

		put_be32(b, 8);
		b[4] = r->cm_status;
		put_be16(b + 5, r->segs_done);
		b[7] = 0x01;                    /* TRANSFER COUNT UNITS: kibibytes */
		put_be32(b + 8, kib > 0xffffffffull ? 0xffffffffu : (uint32_t)kib);
		n = 12;
	} else {
		/* FAILED SEGMENT DETAILS: the command's status and sense */
		put_be32(b, 60 + r->sense_len - 4);
		b[56] = r->status;
		put_be16(b + 58, (uint16_t)r->sense_len);
		memcpy(b + 60, r->sense, r->sense_len);
		n = 60 + r->sense_len;
	}
	isd_scsi_data_in(cmd, b, n);
	isd_scsi_cmd_done(cmd);
}

/* ---- Third-party Copy VPD page (SPC-4 7.8.17) ---- */

uint32_t
isd_xcopy_vpd(struct isd_scsi_lu *lu, uint8_t *b)
{
	uint32_t off = 4;

	/* Supported Commands: EXTENDED COPY(LID1); RECEIVE COPY RESULTS 00h, 03h, 04h */
	memset(b + off, 0, 16);
	put_be16(b + off, 0x0001);
	put_be16(b + off + 2, 12);
	b[off + 4] = 8;
	b[off + 5] = 0x83;
	b[off + 6] = 1;
	b[off + 7] = 0x00;
	b[off + 8] = 0x84;
	b[off + 9] = 3;
	b[off + 10] = 0x00;
	b[off + 11] = 0x03;
	b[off + 12] = 0x04;
	off += 16;
	/* Parameter Data */
	memset(b + off, 0, 32);
	put_be16(b + off, 0x0004);
	put_be16(b + off + 2, 0x1c);
	put_be16(b + off + 8, XCOPY_MAX_TGT);
	put_be16(b + off + 10, XCOPY_MAX_SEG);
	put_be32(b + off + 12, XCOPY_MAX_DESC_LEN);
	put_be32(b + off + 16, 0);                      /* MAXIMUM INLINE DATA LENGTH */
	off += 32;
	/* Supported Descriptors */
	memset(b + off, 0, 8);
	put_be16(b + off, 0x0008);
	put_be16(b + off + 2, 4);
	b[off + 4] = 2;
	b[off + 5] = 0x02;
	b[off + 6] = 0xe4;
	off += 8;
	/* Supported CSCD Descriptor IDs: none (descriptors are named by designator) */
	memset(b + off, 0, 8);
	put_be16(b + off, 0x000c);
	put_be16(b + off + 2, 4);
	off += 8;
	/* General Copy Operations */
	memset(b + off, 0, 36);
	put_be16(b + off, 0x8001);
	put_be16(b + off + 2, 0x20);
	put_be32(b + off + 4, XCOPY_MAX_ACTIVE);        /* TOTAL CONCURRENT COPIES */
	put_be32(b + off + 8, XCOPY_MAX_ACTIVE);        /* MAXIMUM IDENTIFIED CONCURRENT COPIES */
	put_be32(b + off + 12, XCOPY_MAX_SEG_BYTES);    /* MAXIMUM SEGMENT LENGTH */
	b[off + 16] = (uint8_t)__builtin_ctz(lu->block_size);   /* DATA SEGMENT GRANULARITY */
	off += 36;
	put_be16(b + 2, (uint16_t)(off - 4));
	return off;
}
