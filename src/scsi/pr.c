/*
 * Persistent reservations (SPC-5 5.14.5 ff., 6.16, 6.17), held in memory.
 *
 * An I_T nexus is named by its initiator and target port names, so a
 * registration outlives the nexus (a re-login finds it again). APTPL,
 * SPEC_I_PT, ALL_TG_PT and REGISTER AND MOVE are not supported and REPORT
 * CAPABILITIES says so. Every PR OUT that changes who may write ends the
 * writes it fences off before it completes, and PREEMPT AND ABORT aborts the
 * preempted nexuses' tasks on the LU first (isd_scsi_fence_done, dev.c).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "scsi/scsi_int.h"
#include "util/endian.h"

enum {
	PR_OUT_REGISTER = 0,
	PR_OUT_RESERVE = 1,
	PR_OUT_RELEASE = 2,
	PR_OUT_CLEAR = 3,
	PR_OUT_PREEMPT = 4,
	PR_OUT_PREEMPT_ABORT = 5,
	PR_OUT_REGISTER_IGNORE = 6,
};

enum {
	PR_IN_READ_KEYS = 0,
	PR_IN_READ_RESERVATION = 1,
	PR_IN_REPORT_CAPABILITIES = 2,
	PR_IN_READ_FULL_STATUS = 3,
};

#define PR_OUT_PARAM_LEN 24
#define PR_OUT_MAX_PARAM 4096

static bool
type_valid(uint8_t type)
{
	switch (type) {
	case ISD_PR_WE: case ISD_PR_EA: case ISD_PR_WE_RO:
	case ISD_PR_EA_RO: case ISD_PR_WE_AR: case ISD_PR_EA_AR:
		return true;
	default:
		return false;
	}
}

static bool
type_all_regs(uint8_t type)
{
	return type == ISD_PR_WE_AR || type == ISD_PR_EA_AR;
}

static bool
reg_matches(const struct isd_scsi_pr_reg *reg, const struct isd_scsi_nexus *n)
{
	return strcmp(reg->iport, n->initiator_port) == 0 &&
	       strcmp(reg->tport, n->target_port) == 0;
}

struct isd_scsi_pr_reg *
isd_scsi_pr_find(struct isd_scsi_lu *lu, const struct isd_scsi_nexus *n)
{
	struct isd_scsi_pr_reg *reg;

	TAILQ_FOREACH(reg, &lu->regs, link)
		if (reg_matches(reg, n))
			return reg;
	return NULL;
}

static bool
reg_is_holder(struct isd_scsi_lu *lu, const struct isd_scsi_pr_reg *reg)
{
	if (!lu->pr_held || reg == NULL)
		return false;
	return type_all_regs(lu->pr_type) || lu->pr_holder == reg;
}

bool
isd_scsi_pr_is_holder(struct isd_scsi_lu *lu, const struct isd_scsi_nexus *n)
{
	return reg_is_holder(lu, isd_scsi_pr_find(lu, n));
}

static void
pr_release(struct isd_scsi_lu *lu)
{
	lu->pr_held = false;
	lu->pr_type = 0;
	lu->pr_holder = NULL;
}

static void
reg_free(struct isd_scsi_lu *lu, struct isd_scsi_pr_reg *reg)
{
	if (lu->pr_holder == reg)
		lu->pr_holder = NULL;
	TAILQ_REMOVE(&lu->regs, reg, link);
	lu->nregs--;
	free(reg);
}

void
isd_scsi_pr_clear_all(struct isd_scsi_lu *lu)
{
	struct isd_scsi_pr_reg *reg;

	while ((reg = TAILQ_FIRST(&lu->regs)) != NULL)
		reg_free(lu, reg);
	pr_release(lu);
}

/* Raises `ua` for every registrant except `self`. */
static void
ua_other_regs(struct isd_scsi_lu *lu, const struct isd_scsi_pr_reg *self, uint32_t ua)
{
	struct isd_scsi_pr_reg *reg;

	TAILQ_FOREACH(reg, &lu->regs, link)
		if (reg != self)
			isd_scsi_ua_raise_ports(lu, ua, reg->iport, reg->tport);
}

/* Takes a preempted registration away; with `abort`, its nexus's tasks go too. */
static void
preempt_reg(struct isd_scsi_lu *lu, struct isd_scsi_pr_reg *reg, bool abort)
{
	isd_scsi_ua_raise_ports(lu, ISD_UA_REG_PREEMPTED, reg->iport, reg->tport);
	if (abort)
		isd_scsi_itn_mark_abort(lu, reg->iport, reg->tport);
	reg_free(lu, reg);
}

/* Removes the registrations holding `key` other than `self`; returns how many. */
static unsigned
preempt_key(struct isd_scsi_lu *lu, const struct isd_scsi_pr_reg *self, uint64_t key, bool abort)
{
	struct isd_scsi_pr_reg *reg, *next;
	unsigned n = 0;

	for (reg = TAILQ_FIRST(&lu->regs); reg != NULL; reg = next) {
		next = TAILQ_NEXT(reg, link);
		if (reg == self || reg->key != key)
			continue;
		preempt_reg(lu, reg, abort);
		n++;
	}
	return n;
}

/* ---- PERSISTENT RESERVE IN ---- */

int
isd_pr_setup_in(struct isd_scsi_cmd *cmd)
{
	uint8_t sa = cmd->cdb[1] & 0x1f;

	if (sa > PR_IN_READ_FULL_STATUS) {
		isd_scsi_invalid_cdb(cmd, 1, 4);
		return ISD_SCSI_SETUP_DONE;
	}
	cmd->io_pos = sa;
	return isd_scsi_setup_data_in(cmd, get_be16(cmd->cdb + 7));
}

/* iSCSI TransportID (SPC-5 7.6.4.6): format 01b when the name carries ",i,0x<ISID>". */
static uint32_t
transport_id(const char *iport, uint8_t *b)
{
	uint32_t n = (uint32_t)strnlen(iport, 255);
	uint32_t padded = (n + 1 + 3) & ~3u;

	if (padded < 20)
		padded = 20;
	memset(b, 0, 4 + padded);
	b[0] = (strstr(iport, ",i,0x") != NULL ? 0x40 : 0x00) | 0x05;
	put_be16(b + 2, (uint16_t)padded);
	memcpy(b + 4, iport, n);
	return 4 + padded;
}

void
isd_pr_exec_in(struct isd_scsi_cmd *cmd)
{
	struct isd_scsi_lu *lu = cmd->lu;
	struct isd_scsi_pr_reg *reg;
	uint32_t cap = 8 + (lu->nregs + 1) * (24 + 4 + 260);
	uint32_t off = 8;
	uint8_t *b = calloc(1, cap);

	if (b == NULL) {
		cmd->status = ISD_SAM_BUSY;
		isd_scsi_cmd_done(cmd);
		return;
	}
	put_be32(b, lu->pr_gen);
	switch (cmd->io_pos) {
	case PR_IN_READ_KEYS:
		TAILQ_FOREACH(reg, &lu->regs, link) {
			put_be64(b + off, reg->key);
			off += 8;
		}
		put_be32(b + 4, off - 8);
		break;
	case PR_IN_READ_RESERVATION:
		if (lu->pr_held) {
			/* All-registrants types report key 0 (SPC-5 6.16.3.2). */
			if (!type_all_regs(lu->pr_type) && lu->pr_holder != NULL)
				put_be64(b + 8, lu->pr_holder->key);
			b[21] = lu->pr_type & 0x0f;     /* scope 0: logical unit */
			off += 16;
		}
		put_be32(b + 4, off - 8);
		break;
	case PR_IN_REPORT_CAPABILITIES:
		memset(b, 0, 8);
		put_be16(b, 8);
		b[2] = 0x10;                    /* CRH; no SIP_C, ATP_C, PTPL_C */
		b[3] = 0x80;                    /* TMV: the type mask below is valid */
		/* WR_EX_AR, EX_AC_RO, WR_EX_RO, EX_AC, WR_EX; then EX_AC_AR */
		b[4] = 0x80 | 0x40 | 0x20 | 0x08 | 0x02;
		b[5] = 0x01;                    /* EX_AC_AR */
		off = 8;
		break;
	case PR_IN_READ_FULL_STATUS:
		TAILQ_FOREACH(reg, &lu->regs, link) {
			uint8_t *d = b + off;

			memset(d, 0, 24);
			put_be64(d, reg->key);
			if (reg_is_holder(lu, reg)) {
				d[12] = 0x01;   /* R_HOLDER */
				d[13] = lu->pr_type & 0x0f;
			}
			put_be16(d + 18, reg->rtpi);
			put_be32(d + 20, transport_id(reg->iport, d + 24));
			off += 24 + get_be32(d + 20);
		}
		put_be32(b + 4, off - 8);
		break;
	}
	isd_scsi_data_in(cmd, b, off);
	free(b);
	isd_scsi_cmd_done(cmd);
}

/* ---- PERSISTENT RESERVE OUT ---- */

int
isd_pr_setup_out(struct isd_scsi_cmd *cmd)
{
	const uint8_t *cdb = cmd->cdb;
	uint8_t sa = cdb[1] & 0x1f, scope = cdb[2] >> 4, type = cdb[2] & 0x0f;
	uint32_t len = get_be32(cdb + 5);

	if (sa > PR_OUT_REGISTER_IGNORE) {      /* includes REGISTER AND MOVE */
		isd_scsi_invalid_cdb(cmd, 1, 4);
		return ISD_SCSI_SETUP_DONE;
	}
	if (sa == PR_OUT_RESERVE || sa == PR_OUT_RELEASE || sa == PR_OUT_PREEMPT ||
	    sa == PR_OUT_PREEMPT_ABORT) {
		if (scope != 0) {
			isd_scsi_invalid_cdb(cmd, 2, 7);
			return ISD_SCSI_SETUP_DONE;
		}
		if (!type_valid(type)) {
			isd_scsi_invalid_cdb(cmd, 2, 3);
			return ISD_SCSI_SETUP_DONE;
		}
	}
	if (len < PR_OUT_PARAM_LEN || len > PR_OUT_MAX_PARAM) {
		isd_scsi_check(cmd, ISD_SK_ILLEGAL_REQUEST, ISD_ASC_PARAM_LIST_LENGTH);
		return ISD_SCSI_SETUP_DONE;
	}
	cmd->io_pos = sa | (uint64_t)type << 8;
	return isd_scsi_setup_data_out(cmd, len);
}

static void
conflict(struct isd_scsi_cmd *cmd)
{
	cmd->status = ISD_SAM_RESERVATION_CONFLICT;
	cmd->sense_len = 0;
}

static void
pr_register(struct isd_scsi_cmd *cmd, struct isd_scsi_pr_reg *reg, uint64_t key, uint64_t sakey,
	    bool ignore)
{
	struct isd_scsi_lu *lu = cmd->lu;
	struct isd_scsi_nexus *n = isd_scsi_cmd_nexus(cmd);

	if (reg == NULL) {
		if (!ignore && key != 0) {
			conflict(cmd);
			return;
		}
		if (sakey == 0)
			return;         /* unregistering nothing: GOOD */
		if (lu->nregs >= ISD_PR_MAX_REGS) {
			isd_scsi_check(cmd, ISD_SK_ILLEGAL_REQUEST,
				       ISD_ASC_INSUFFICIENT_REG_RESOURCES);
			return;
		}
		reg = calloc(1, sizeof(*reg));
		if (reg == NULL) {
			isd_scsi_check(cmd, ISD_SK_ILLEGAL_REQUEST,
				       ISD_ASC_INSUFFICIENT_REG_RESOURCES);
			return;
		}
		reg->key = sakey;
		reg->rtpi = n->rel_tgt_port_id;
		memcpy(reg->iport, n->initiator_port, sizeof(reg->iport));
		reg->iport[sizeof(reg->iport) - 1] = '\0';
		memcpy(reg->tport, n->target_port, sizeof(reg->tport));
		reg->tport[sizeof(reg->tport) - 1] = '\0';
		TAILQ_INSERT_TAIL(&lu->regs, reg, link);
		lu->nregs++;
		lu->pr_gen++;
		return;
	}
	if (!ignore && key != reg->key) {
		conflict(cmd);
		return;
	}
	if (sakey != 0) {
		reg->key = sakey;
		lu->pr_gen++;
		return;
	}
	/* Unregister (SPC-5 5.14.11.2.3). */
	if (reg_is_holder(lu, reg)) {
		if (!type_all_regs(lu->pr_type)) {
			uint8_t type = lu->pr_type;

			pr_release(lu);
			if (type == ISD_PR_WE_RO || type == ISD_PR_EA_RO)
				ua_other_regs(lu, reg, ISD_UA_RES_RELEASED);
		} else if (lu->nregs == 1) {
			pr_release(lu);
		}
	}
	reg_free(lu, reg);
	lu->pr_gen++;
}

static void
pr_reserve(struct isd_scsi_cmd *cmd, struct isd_scsi_pr_reg *reg, uint8_t type)
{
	struct isd_scsi_lu *lu = cmd->lu;

	if (lu->pr_held) {
		/* Re-reserving what one holds is GOOD; anything else conflicts. */
		if (!reg_is_holder(lu, reg) || lu->pr_type != type)
			conflict(cmd);
		return;
	}
	lu->pr_held = true;
	lu->pr_type = type;
	lu->pr_holder = type_all_regs(type) ? NULL : reg;
}

static void
pr_release_sa(struct isd_scsi_cmd *cmd, struct isd_scsi_pr_reg *reg, uint8_t type)
{
	struct isd_scsi_lu *lu = cmd->lu;
	uint8_t old;

	if (!lu->pr_held || !reg_is_holder(lu, reg))
		return;                 /* GOOD, nothing changes */
	if (lu->pr_type != type) {
		isd_scsi_check(cmd, ISD_SK_ILLEGAL_REQUEST, ISD_ASC_INVALID_RELEASE_PR);
		return;
	}
	old = lu->pr_type;
	pr_release(lu);
	if (old != ISD_PR_WE && old != ISD_PR_EA)
		ua_other_regs(lu, reg, ISD_UA_RES_RELEASED);
}

static void
pr_clear(struct isd_scsi_cmd *cmd, struct isd_scsi_pr_reg *reg)
{
	struct isd_scsi_lu *lu = cmd->lu;

	ua_other_regs(lu, reg, ISD_UA_RES_PREEMPTED);
	isd_scsi_pr_clear_all(lu);
	lu->pr_gen++;
}

static void
pr_preempt(struct isd_scsi_cmd *cmd, struct isd_scsi_pr_reg *reg, uint64_t sakey, uint8_t type,
	   bool abort)
{
	struct isd_scsi_lu *lu = cmd->lu;

	if (lu->pr_held && type_all_regs(lu->pr_type) && sakey == 0) {
		/* All-registrants reservation preempted with key 0: everyone else goes,
		 * and the preempter holds a new reservation of the given type. */
		struct isd_scsi_pr_reg *r, *next;

		for (r = TAILQ_FIRST(&lu->regs); r != NULL; r = next) {
			next = TAILQ_NEXT(r, link);
			if (r == reg)
				continue;
			preempt_reg(lu, r, abort);
		}
		lu->pr_type = type;
		lu->pr_holder = type_all_regs(type) ? NULL : reg;
	} else if (lu->pr_held && !type_all_regs(lu->pr_type) && lu->pr_holder != NULL &&
		   lu->pr_holder->key == sakey) {
		uint8_t old = lu->pr_type;

		preempt_key(lu, reg, sakey, abort);
		lu->pr_type = type;
		lu->pr_holder = type_all_regs(type) ? NULL : reg;
		if (old != type)
			ua_other_regs(lu, reg, ISD_UA_RES_RELEASED);
	} else {
		if (sakey == 0) {
			isd_scsi_invalid_param(cmd, 8, -1);
			return;
		}
		if (preempt_key(lu, reg, sakey, abort) == 0) {
			conflict(cmd);
			return;
		}
	}
	lu->pr_gen++;
}

void
isd_pr_exec_out(struct isd_scsi_cmd *cmd)
{
	struct isd_scsi_lu *lu = cmd->lu;
	const uint8_t *p = cmd->iov[0].iov_base;
	uint8_t sa = (uint8_t)cmd->io_pos, type = (uint8_t)(cmd->io_pos >> 8);
	struct isd_scsi_pr_reg *reg;
	uint64_t key, sakey;
	uint8_t flags;

	if (cmd->data_out_len < cmd->xfer_len || p == NULL) {
		isd_scsi_check(cmd, ISD_SK_ILLEGAL_REQUEST, ISD_ASC_PARAM_LIST_LENGTH);
		goto out;
	}
	key = get_be64(p);
	sakey = get_be64(p + 8);
	flags = p[20];
	if (flags & 0x08) {             /* SPEC_I_PT: SIP_C = 0 */
		isd_scsi_invalid_param(cmd, 20, 3);
		goto out;
	}
	if (cmd->xfer_len != PR_OUT_PARAM_LEN) {
		isd_scsi_check(cmd, ISD_SK_ILLEGAL_REQUEST, ISD_ASC_PARAM_LIST_LENGTH);
		goto out;
	}
	if (flags & 0x01) {             /* APTPL: PTPL_C = 0, nothing persists */
		isd_scsi_invalid_param(cmd, 20, 0);
		goto out;
	}
	if ((flags & 0x04) && (sa == PR_OUT_REGISTER || sa == PR_OUT_REGISTER_IGNORE)) {
		isd_scsi_invalid_param(cmd, 20, 2);     /* ALL_TG_PT: ATP_C = 0 */
		goto out;
	}
	reg = isd_scsi_pr_find(lu, isd_scsi_cmd_nexus(cmd));
	if (sa == PR_OUT_REGISTER || sa == PR_OUT_REGISTER_IGNORE) {
		pr_register(cmd, reg, key, sakey, sa == PR_OUT_REGISTER_IGNORE);
		goto out;
	}
	/* Every other service action needs a registered nexus with its key. */
	if (reg == NULL || reg->key != key) {
		conflict(cmd);
		goto out;
	}
	switch (sa) {
	case PR_OUT_RESERVE:
		pr_reserve(cmd, reg, type);
		break;
	case PR_OUT_RELEASE:
		pr_release_sa(cmd, reg, type);
		break;
	case PR_OUT_CLEAR:
		pr_clear(cmd, reg);
		break;
	case PR_OUT_PREEMPT:
	case PR_OUT_PREEMPT_ABORT:
		pr_preempt(cmd, reg, sakey, type, sa == PR_OUT_PREEMPT_ABORT);
		break;
	}
out:
	/*
	 * Whatever changed, the writes it took access from (and with PREEMPT AND
	 * ABORT every task of the preempted nexuses) end before this completes.
	 */
	if (cmd->status == ISD_SAM_GOOD)
		isd_scsi_fence_done(cmd);
	else
		isd_scsi_cmd_done(cmd);
}
