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
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bstore/bstore.h"
#include "scsi/pr_share.h"
#include "scsi/scsi_int.h"
#include "util/endian.h"
#include "util/log.h"

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

/*
 * A unit attention (ua != 0) or an abort for a registration's nexus: applied
 * at once, or with shared state recorded in lu->pr_fx, for this gateway and
 * the others to apply once the change is committed (see "shared state").
 */
static void
pr_effect(struct isd_scsi_lu *lu, uint32_t ua, bool abort, const char *iport, const char *tport)
{
	struct isd_pr_fxlist *fx = lu->pr_fx;
	struct isd_pr_fx *f = NULL;

	if (fx == NULL) {
		if (ua != 0)
			isd_scsi_ua_raise_ports(lu, ua, iport, tport);
		if (abort)
			isd_scsi_itn_mark_abort(lu, iport, tport);
		return;
	}
	for (unsigned i = 0; i < fx->n; i++) {
		if (strcmp(fx->fx[i].iport, iport) == 0 && strcmp(fx->fx[i].tport, tport) == 0) {
			f = &fx->fx[i];
			break;
		}
	}
	if (f == NULL) {
		if (fx->n >= ISD_PR_MAX_REGS)
			return;         /* one per registration: cannot happen */
		f = &fx->fx[fx->n++];
		memset(f, 0, sizeof(*f));
		snprintf(f->iport, sizeof(f->iport), "%s", iport);
		snprintf(f->tport, sizeof(f->tport), "%s", tport);
	}
	f->ua |= ua;
	f->abort |= abort;
}

static void
pr_fx_apply(struct isd_scsi_lu *lu, const struct isd_pr_fxlist *fx)
{
	for (unsigned i = 0; i < fx->n; i++)
		pr_effect(lu, fx->fx[i].ua, fx->fx[i].abort, fx->fx[i].iport, fx->fx[i].tport);
}

/* Raises `ua` for every registrant except `self`. */
static void
ua_other_regs(struct isd_scsi_lu *lu, const struct isd_scsi_pr_reg *self, uint32_t ua)
{
	struct isd_scsi_pr_reg *reg;

	TAILQ_FOREACH(reg, &lu->regs, link)
		if (reg != self)
			pr_effect(lu, ua, false, reg->iport, reg->tport);
}

/* Takes a preempted registration away; with `abort`, its nexus's tasks go too. */
static void
preempt_reg(struct isd_scsi_lu *lu, struct isd_scsi_pr_reg *reg, bool abort)
{
	pr_effect(lu, ISD_UA_REG_PREEMPTED, abort, reg->iport, reg->tport);
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

static void
pr_in_answer(struct isd_scsi_cmd *cmd)
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

/* What the parameter list says regardless of the state; false with the error set. */
static bool
pr_out_params_ok(struct isd_scsi_cmd *cmd)
{
	const uint8_t *p = cmd->iov[0].iov_base;
	uint8_t sa = (uint8_t)cmd->io_pos;
	uint8_t flags;

	if (cmd->data_out_len < cmd->xfer_len || p == NULL) {
		isd_scsi_check(cmd, ISD_SK_ILLEGAL_REQUEST, ISD_ASC_PARAM_LIST_LENGTH);
		return false;
	}
	flags = p[20];
	if (flags & 0x08) {             /* SPEC_I_PT: SIP_C = 0 */
		isd_scsi_invalid_param(cmd, 20, 3);
		return false;
	}
	if (cmd->xfer_len != PR_OUT_PARAM_LEN) {
		isd_scsi_check(cmd, ISD_SK_ILLEGAL_REQUEST, ISD_ASC_PARAM_LIST_LENGTH);
		return false;
	}
	if (flags & 0x01) {             /* APTPL: PTPL_C = 0, nothing persists */
		isd_scsi_invalid_param(cmd, 20, 0);
		return false;
	}
	if ((flags & 0x04) && (sa == PR_OUT_REGISTER || sa == PR_OUT_REGISTER_IGNORE)) {
		isd_scsi_invalid_param(cmd, 20, 2);     /* ALL_TG_PT: ATP_C = 0 */
		return false;
	}
	return true;
}

/* The service action on the LU's state (checked parameters). */
static void
pr_out_apply(struct isd_scsi_cmd *cmd)
{
	struct isd_scsi_lu *lu = cmd->lu;
	const uint8_t *p = cmd->iov[0].iov_base;
	uint8_t sa = (uint8_t)cmd->io_pos, type = (uint8_t)(cmd->io_pos >> 8);
	struct isd_scsi_pr_reg *reg;
	uint64_t key = get_be64(p), sakey = get_be64(p + 8);

	reg = isd_scsi_pr_find(lu, isd_scsi_cmd_nexus(cmd));
	if (sa == PR_OUT_REGISTER || sa == PR_OUT_REGISTER_IGNORE) {
		pr_register(cmd, reg, key, sakey, sa == PR_OUT_REGISTER_IGNORE);
		return;
	}
	/* Every other service action needs a registered nexus with its key. */
	if (reg == NULL || reg->key != key) {
		conflict(cmd);
		return;
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
}

static void
pr_out_finish(struct isd_scsi_cmd *cmd)
{
	/*
	 * Whatever changed, the writes it took access from (and with PREEMPT AND
	 * ABORT every task of the preempted nexuses) end before this completes.
	 */
	if (cmd->status == ISD_SAM_GOOD)
		isd_scsi_fence_done(cmd);
	else
		isd_scsi_cmd_done(cmd);
}

/* ---- shared state (a store with pr_load: every gateway of an RBD image) ---- */

/*
 * The store keeps the state; this gateway's LU fields are a copy, loaded
 * before every PR IN and PR OUT and after every change another gateway
 * announces, and what the reservation check of every other command reads.
 *
 * A PR OUT loads the state with its version, runs the service action on it
 * exactly as for a local LU (pr_out_apply), recording what it does to other
 * nexuses (pr_effect), and commits the new state only if the version is
 * unchanged; if another gateway got there first it starts again from the
 * load. Once committed it applies the recorded effects here and sends them to
 * the other gateways, and completes only when each has acknowledged: each
 * acknowledges after it has reloaded the state and applied them (unit
 * attentions for its nexuses, aborting the tasks of nexuses preempted with
 * abort). So after GOOD, every gateway that answered enforces the change.
 */
struct isd_pr_job {
	struct isd_scsi_lu *lu;
	struct isd_scsi_cmd *cmd;       /* NULL: another gateway's change, token to ack */
	uint64_t token;
	bool in;                        /* PR IN: load, then answer */
	void *data;
	size_t len;
	uint64_t ver;
	uint64_t newver;                /* what the commit wrote */
	unsigned tries;
	uint8_t *enc;
	size_t enclen;
	struct isd_pr_fxlist fx;
	/* a reload waiting on the store, on lu->pr_jobs (freed with the LU) */
	bool listed;
	TAILQ_ENTRY(isd_pr_job) link;
};

/* A PR OUT redoes itself at most this many times when other gateways keep winning. */
#define PR_MAX_TRIES 32

bool
isd_scsi_pr_shared(const struct isd_scsi_lu *lu)
{
	return lu->bs != NULL && lu->bs->ops->pr_load != NULL && lu->bs->ops->pr_commit != NULL &&
	       lu->bs->ops->pr_notify != NULL && lu->bs->ops->pr_ack != NULL;
}

static void
job_free(struct isd_pr_job *j)
{
	if (j->listed)
		TAILQ_REMOVE(&j->lu->pr_jobs, j, link);
	free(j->data);
	free(j->enc);
	free(j);
}

static void job_loaded(void *arg, int status);

static int
job_load(struct isd_pr_job *j)
{
	free(j->data);
	j->data = NULL;
	j->len = 0;
	return j->lu->bs->ops->pr_load(j->lu->bs, &j->data, &j->len, &j->ver, job_loaded, j);
}

/* The command cannot be served now (Ceph unreachable, state unreadable): BUSY. */
static void
job_fail_cmd(struct isd_pr_job *j)
{
	struct isd_scsi_cmd *cmd = j->cmd;

	cmd->status = ISD_SAM_BUSY;
	cmd->sense_len = 0;
	job_free(j);
	isd_scsi_cmd_done(cmd);
}

static void job_committed(void *arg, int status);
static void job_notified(void *arg, int status);
static void remote_reload(struct isd_scsi_lu *lu, const void *msg, size_t len, uint64_t token);
static void remote_fenced(void *arg);

static void
job_loaded(void *arg, int status)
{
	struct isd_pr_job *j = arg;
	struct isd_scsi_lu *lu = j->lu;
	struct isd_scsi_cmd *cmd = j->cmd;
	struct isd_pr_state st;
	uint8_t *before = NULL;
	size_t blen = 0;
	int rc;

	if (status < 0) {
		isd_log_warn("LU %u: cannot read the shared reservation state: %s", lu->lun,
			     strerror(-status));
		if (cmd != NULL)
			job_fail_cmd(j);
		else
			job_free(j);    /* not acknowledged: the notifier says so */
		return;
	}
	if (isd_pr_state_decode(j->data, j->len, &st) < 0) {
		isd_log_err("LU %u: the shared reservation state (%zu bytes) is malformed", lu->lun,
			    j->len);
		if (cmd != NULL)
			job_fail_cmd(j);
		else
			job_free(j);
		return;
	}
	/*
	 * Loads and commits complete in any order: a reload that read an older
	 * version than the copy holds (our own commit landed since) is not
	 * installed. A PR OUT installs what it read whatever it is, since it
	 * commits only if that is still the latest.
	 */
	if (cmd == NULL || j->in) {
		if (j->ver != 0 && j->ver < lu->pr_ver) {
			isd_pr_state_free(&st);
		} else {
			isd_pr_state_install(lu, &st);
			lu->pr_ver = j->ver;
		}
	} else if (j->ver != 0 && j->ver < lu->pr_ver && ++j->tries < PR_MAX_TRIES) {
		/* read before a commit of ours landed: it would only fail, read again */
		isd_pr_state_free(&st);
		if (job_load(j) < 0)
			job_fail_cmd(j);
		return;
	} else {
		isd_pr_state_install(lu, &st);
	}
	if (cmd == NULL) {
		/*
		 * another gateway's change: its effects on our nexuses; the ack once
		 * the aborted tasks' I/O already in the store has finished, so that
		 * nothing of theirs lands after the other gateway's GOOD
		 */
		pr_fx_apply(lu, &j->fx);
		/* the fence holds it now, not the store */
		TAILQ_REMOVE(&lu->pr_jobs, j, link);
		j->listed = false;
		isd_scsi_fence_lu(lu, remote_fenced, j);
		return;
	}
	if (j->in) {
		job_free(j);
		pr_in_answer(cmd);
		return;
	}
	/* a redo starts from a clean result */
	cmd->status = ISD_SAM_GOOD;
	cmd->sense_len = 0;
	j->fx.n = 0;
	if (isd_pr_state_encode(lu, &before, &blen) < 0) {
		job_fail_cmd(j);
		return;
	}
	lu->pr_fx = &j->fx;
	pr_out_apply(cmd);
	lu->pr_fx = NULL;
	free(j->enc);
	j->enc = NULL;
	if (cmd->status == ISD_SAM_GOOD && isd_pr_state_encode(lu, &j->enc, &j->enclen) < 0) {
		free(before);
		job_fail_cmd(j);
		return;
	}
	if (cmd->status != ISD_SAM_GOOD ||
	    (j->enclen == blen && memcmp(j->enc, before, blen) == 0)) {
		/* nothing changed: nothing to commit or tell */
		free(before);
		job_free(j);
		pr_out_finish(cmd);
		return;
	}
	free(before);
	rc = lu->bs->ops->pr_commit(lu->bs, j->enc, j->enclen, j->ver, &j->newver, job_committed,
				    j);
	if (rc < 0)
		job_committed(j, rc);
}

static void
job_committed(void *arg, int status)
{
	struct isd_pr_job *j = arg;
	struct isd_scsi_lu *lu = j->lu;
	uint8_t *msg = NULL;
	size_t mlen = 0;
	int rc;

	if (status == -ESTALE && ++j->tries < PR_MAX_TRIES) {
		rc = job_load(j);
		if (rc < 0)
			job_loaded(j, rc);
		return;
	}
	if (status < 0) {
		isd_log_warn("LU %u: cannot update the shared reservation state: %s", lu->lun,
			     strerror(-status));
		/* the copy holds what was not committed: back to the store's */
		remote_reload(lu, NULL, 0, 0);
		job_fail_cmd(j);
		return;
	}
	/*
	 * The copy must hold what was committed: a reload of an older version may
	 * have replaced it while the commit was in flight.
	 */
	if (j->newver == 0 || j->newver >= lu->pr_ver) {
		struct isd_pr_state st;

		if (isd_pr_state_decode(j->enc, j->enclen, &st) == 0) {
			isd_pr_state_install(lu, &st);
			lu->pr_ver = j->newver;
		}
	}
	pr_fx_apply(lu, &j->fx);
	if (isd_pr_fx_encode(&j->fx, &msg, &mlen) < 0) {
		/* committed: the others reload on the notify even without the effects */
		msg = NULL;
		mlen = 0;
	}
	rc = lu->bs->ops->pr_notify(lu->bs, msg, mlen, job_notified, j);
	free(msg);
	if (rc < 0)
		job_notified(j, rc);
}

static void
job_notified(void *arg, int status)
{
	struct isd_pr_job *j = arg;
	struct isd_scsi_cmd *cmd = j->cmd;

	if (status < 0)
		isd_log_warn("LU %u: not every gateway acknowledged a reservation change: %s",
			     j->lu->lun, strerror(-status));
	job_free(j);
	pr_out_finish(cmd);
}

static void
remote_fenced(void *arg)
{
	struct isd_pr_job *j = arg;

	if (j->token != 0)
		j->lu->bs->ops->pr_ack(j->lu->bs, j->token);
	job_free(j);
}

/* Reloads the state for another gateway's change (msg: its effects), then acks token. */
static void
remote_reload(struct isd_scsi_lu *lu, const void *msg, size_t len, uint64_t token)
{
	struct isd_pr_job *j = calloc(1, sizeof(*j));

	if (j == NULL) {
		isd_log_err("LU %u: out of memory following a reservation change", lu->lun);
		return;
	}
	j->lu = lu;
	j->token = token;
	if (msg != NULL && isd_pr_fx_decode(msg, len, &j->fx) < 0)
		isd_log_warn("LU %u: ignoring a malformed reservation change message (%zu bytes)",
			     lu->lun, len);
	TAILQ_INSERT_TAIL(&lu->pr_jobs, j, link);
	j->listed = true;
	if (job_load(j) < 0) {
		isd_log_err("LU %u: cannot reload the shared reservation state", lu->lun);
		job_free(j);
	}
}

void
isd_scsi_pr_share_stop(struct isd_scsi_lu *lu)
{
	struct isd_pr_job *j;

	while ((j = TAILQ_FIRST(&lu->pr_jobs)) != NULL)
		job_free(j);
}

static void
pr_changed(void *arg, struct isd_bstore *bs, const void *msg, size_t len, uint64_t token)
{
	struct isd_scsi_lu *lu = arg;
	struct isd_monitor *mon = isd_scsi_dev_monitor(lu->dev);

	(void)bs;
	isd_monitor_enter(mon);
	remote_reload(lu, msg, len, token);
	isd_monitor_leave(mon);
}

void
isd_scsi_pr_share_start(struct isd_scsi_lu *lu)
{
	if (!isd_scsi_pr_shared(lu))
		return;
	lu->bs->pr_changed = pr_changed;
	lu->bs->pr_changed_arg = lu;
	remote_reload(lu, NULL, 0, 0);
}

static bool
pr_shared_start(struct isd_scsi_cmd *cmd, bool in)
{
	struct isd_pr_job *j;

	if (!isd_scsi_pr_shared(cmd->lu))
		return false;
	j = calloc(1, sizeof(*j));
	if (j == NULL) {
		cmd->status = ISD_SAM_BUSY;
		isd_scsi_cmd_done(cmd);
		return true;
	}
	j->lu = cmd->lu;
	j->cmd = cmd;
	j->in = in;
	if (job_load(j) < 0)
		job_fail_cmd(j);
	return true;
}

void
isd_pr_exec_in(struct isd_scsi_cmd *cmd)
{
	if (!pr_shared_start(cmd, true))
		pr_in_answer(cmd);
}

void
isd_pr_exec_out(struct isd_scsi_cmd *cmd)
{
	if (!pr_out_params_ok(cmd)) {
		isd_scsi_cmd_done(cmd);
		return;
	}
	if (pr_shared_start(cmd, false))
		return;
	pr_out_apply(cmd);
	pr_out_finish(cmd);
}
