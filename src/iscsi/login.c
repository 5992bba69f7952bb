/*
 * The login phase, target side (RFC 7143 §6, §11.12, §11.13): stage
 * transitions, the leading login's identity checks, AuthMethod and CHAP in the
 * security stage, operational keys through keys.c, C-bit continuation both
 * ways, and the hand-over to full feature phase with a new session.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "iscsi/core.h"
#include "util/log.h"

#define LOGIN_MAX_PDUS 128              /* requests in one login; the timer bounds time */

static void
login_rsp_header(struct isd_conn *c, struct isd_pdu *pdu, const uint8_t *req_bhs, uint8_t flags,
		 uint16_t tsih, uint16_t status)
{
	pdu->bhs[0] = ISD_OP_LOGIN_RSP;
	pdu->bhs[1] = flags;
	pdu->bhs[2] = 0;                /* Version-max */
	pdu->bhs[3] = 0;                /* Version-active */
	memcpy(pdu->bhs + 8, req_bhs + 8, 6);   /* ISID */
	put_be16(pdu->bhs + 14, tsih);
	put_be32(pdu->bhs + 16, isd_bhs_itt(req_bhs));
	isd_conn_fill_sn(c, pdu->bhs, true);
	pdu->bhs[36] = (uint8_t)(status >> 8);
	pdu->bhs[37] = (uint8_t)status;
}

/*
 * Queues a Login Response, telling the datamover first whether it ends the
 * login (dm.h, login_response): every Login Response goes through here.
 */
static int
login_rsp_send(struct isd_conn *c, struct isd_pdu *pdu, bool final)
{
	if (c->ops->login_response != NULL && isd_conn_can_send(c))
		c->ops->login_response(&c->dmc, &c->params, final);
	return isd_conn_send(c, pdu);
}

/* Answers with a failure status, then closes the connection (RFC 7143 §11.13.5). */
static void
login_fail(struct isd_conn *c, const uint8_t *req_bhs, uint16_t status)
{
	struct isd_pdu *pdu;

	isd_log_info("iscsi: login from %s:%u failed: %s (0x%04x)", c->info.peer_addr,
		     c->info.peer_port, isd_login_status_str(status), status);
	if (!c->login_counted) {
		isd_stat_inc(&c->tgt->stats.logins_failed);
		c->login_counted = true;
	}
	pdu = isd_conn_pdu_alloc(c, ISD_OP_LOGIN_RSP, 0);
	if (pdu != NULL) {
		login_rsp_header(c, pdu, req_bhs, 0, 0, status);
		login_rsp_send(c, pdu, false);
	}
	isd_conn_close(c);
}

void
isd_login_free(struct isd_conn *c)
{
	struct isd_login *l = c->login;

	if (l == NULL)
		return;
	free(l->req_buf);
	free(l->rsp_buf);
	/* a copy of the secrets lives in the login state */
	explicit_bzero(&l->auth_buf, sizeof(l->auth_buf));
	explicit_bzero(&l->chap, sizeof(l->chap));
	free(l);
	c->login = NULL;
}

void
isd_login_timeout(void *arg)
{
	struct isd_conn *c = arg;

	if (c->state != ISD_CONN_LOGIN)
		return;
	isd_log_info("iscsi: login from %s:%u timed out", c->info.peer_addr, c->info.peer_port);
	if (!c->login_counted) {
		isd_stat_inc(&c->tgt->stats.logins_failed);
		c->login_counted = true;
	}
	isd_conn_close(c);
}

static bool
acl_allows(const struct isd_tnode *n, const char *iname)
{
	if (n->acl_count <= 0 || n->acl == NULL)
		return true;
	for (int i = 0; i < n->acl_count; i++) {
		if (n->acl[i] != NULL && strcasecmp(n->acl[i], iname) == 0)
			return true;
	}
	return false;
}

/*
 * The credentials that apply to this initiator: its own entry first (RFC 7143
 * §12.1.3 expects a secret per initiator), then the node's for what the entry
 * leaves unset.
 */
void
isd_auth_overlay(struct isd_auth_cfg *out, const struct isd_auth_cfg *own)
{
	if (own->require_chap) {
		out->require_chap = true;
		out->chap = own->chap;
	}
	if (own->mutual) {
		out->mutual = true;
		out->mutual_chap = own->mutual_chap;
	}
}

static void
auth_for(const struct isd_tnode *n, const char *iname, struct isd_auth_cfg *out)
{
	*out = n->auth;
	for (int i = 0; i < n->ini_auth_count; i++) {
		if (strcasecmp(n->ini_auth[i].name, iname) == 0) {
			isd_auth_overlay(out, &n->ini_auth[i].auth);
			break;
		}
	}
}

static uint16_t
conn_tpgt(const struct isd_conn *c, const struct isd_tnode *n)
{
	return c->info.tpgt ? c->info.tpgt : n->tpgt;
}

/* True if `item` is one of the comma-separated values in `list`. */
static bool
list_has(const char *list, const char *item)
{
	size_t n = strlen(item);
	const char *p = list;

	while (*p != '\0') {
		const char *e = strchr(p, ',');
		size_t len = e ? (size_t)(e - p) : strlen(p);

		if (len == n && strncmp(p, item, n) == 0)
			return true;
		if (e == NULL)
			break;
		p = e + 1;
	}
	return false;
}

/*
 * The session limits (0 = none). A login past one fails with 0x0302 Out of
 * resources, the status RFC 7143 §11.13.5 gives for a target short of session
 * resources (0x0206 Too many connections is about connections within one
 * session, which MaxConnections=1 already refuses with 0x0208). A login that
 * reinstates a session replaces it and adds nothing. Checked at the first
 * request, so a refused login costs little, and again when the session is
 * created, as logins in flight at once all passed the first check. Under the
 * table lock, held on until the session is in the table.
 */
static uint16_t
session_admit(struct isd_iscsi_tgt *t, const struct isd_login *l)
{
	const struct isd_iscsi_cfg *cfg = &t->cfg;
	const struct isd_session *s;
	uint32_t all = 0, same = 0;
	uint64_t *counter = NULL;

	if (l->node != NULL && isd_session_find(t, l->iname, l->isid, l->node) != NULL)
		return 0;
	TAILQ_FOREACH(s, &t->sessions, link) {
		all++;
		if (s->node == l->node)
			same++;         /* same target, or both discovery */
	}
	if (cfg->max_sessions > 0 && all >= cfg->max_sessions)
		counter = &t->stats.refused.sessions;
	else if (l->node == NULL && cfg->max_discovery_sessions > 0 &&
		 same >= cfg->max_discovery_sessions)
		counter = &t->stats.refused.discovery_sessions;
	else if (l->node != NULL && cfg->max_sessions_per_target > 0 &&
		 same >= cfg->max_sessions_per_target)
		counter = &t->stats.refused.sessions_per_target;
	if (counter == NULL)
		return 0;
	isd_stat_inc(counter);
	return ISD_LOGIN_STATUS_NO_RESOURCES;
}

/* The first request: who is logging in, to what, and with which policy. */
static uint16_t
first_request(struct isd_conn *c, struct isd_login *l, const struct isd_kv_list *kv, int csg)
{
	struct isd_iscsi_tgt *t = c->tgt;
	const char *iname = isd_kv_get(kv, "InitiatorName");
	const char *stype = isd_kv_get(kv, "SessionType");
	const char *tname = isd_kv_get(kv, "TargetName");
	const struct isd_key_policy *policy;
	struct isd_key_policy pol;
	uint16_t st;

	if (iname == NULL || iname[0] == '\0')
		return ISD_LOGIN_STATUS_MISSING_FIELDS;
	if (strlen(iname) >= sizeof(l->iname))
		return ISD_LOGIN_STATUS_INIT_ERR;
	snprintf(l->iname, sizeof(l->iname), "%s", iname);
	if (stype == NULL || strcmp(stype, "Normal") == 0)
		l->type = ISD_SESSION_NORMAL;
	else if (strcmp(stype, "Discovery") == 0)
		l->type = ISD_SESSION_DISCOVERY;
	else
		return ISD_LOGIN_STATUS_NO_SESSION_TYPE;

	if (l->type == ISD_SESSION_NORMAL) {
		if (tname == NULL || tname[0] == '\0')
			return ISD_LOGIN_STATUS_MISSING_FIELDS;
		/* nodes change only with the other reactors paused: no lock to read them */
		l->node = isd_iscsi_tgt_find_node(t, tname);
		/* the node is busy from here until the connection is freed, whatever
		 * becomes of the login (isd_iscsi_tgt_node_busy, from reactor 0) */
		isd_tgt_lock(t);
		c->node = l->node;
		isd_tgt_unlock(t);
		/* not served on this portal: exactly as if it did not exist */
		if (l->node == NULL ||
		    !isd_tnode_on_portal(l->node, isd_iscsi_tgt_conn_portal(t, &c->info)))
			return ISD_LOGIN_STATUS_TGT_NOT_FOUND;
		if (!acl_allows(l->node, l->iname))
			return ISD_LOGIN_STATUS_TGT_FORBIDDEN;
		auth_for(l->node, l->iname, &l->auth_buf);
		policy = &l->node->policy;
	} else {
		l->auth_buf = t->cfg.discovery_auth;
		policy = &t->cfg.discovery_policy;
	}
	l->auth = &l->auth_buf;

	isd_tgt_lock(t);
	if (l->tsih != 0) {
		/* adding a connection to an existing session: MaxConnections is 1 */
		st = isd_session_find_tsih(t, l->tsih) == NULL ? ISD_LOGIN_STATUS_NO_SESSION
							       : ISD_LOGIN_STATUS_CONN_ADD_FAIL;
	} else {
		st = session_admit(t, l);
	}
	isd_tgt_unlock(t);
	if (st != 0)
		return st;
	/* with authentication enforced, skipping the security stage is not allowed */
	if (csg != ISD_STAGE_SECURITY && l->auth->require_chap)
		return ISD_LOGIN_STATUS_AUTH_FAILED;

	pol = *policy;
	if (!(c->ops->caps & ISD_DM_CAP_DIGESTS))
		pol.digests_forbidden = true;
	pol.rdma_capable = (c->ops->caps & ISD_DM_CAP_RDMA) != 0;
	/*
	 * Over iSER, solicited data moves by RDMA Read straight into the task
	 * buffer, while unsolicited Data-Out PDUs arrive as Sends that must be
	 * copied and eat receive credits: vote InitialR2T=Yes, as LIO and tgt do.
	 * Immediate data stays as configured (one Send with the command).
	 */
	if (pol.rdma_capable)
		pol.initial_r2t = true;
	isd_keys_init(&l->keys, &pol, true);
	l->keys.params.session_type = l->type;
	return 0;
}

/* AuthMethod and CHAP_* keys in the security stage. Returns 0 or a login status. */
static uint16_t
security_keys(struct isd_conn *c, struct isd_login *l, const struct isd_kv_list *kv,
	      struct isd_text_buf *rsp)
{
	const struct isd_auth_cfg *auth = l->auth;
	const char *am = isd_kv_get(kv, "AuthMethod");
	const char *chap_a = isd_kv_get(kv, "CHAP_A");
	const char *chap_n = isd_kv_get(kv, "CHAP_N");
	const char *chap_r = isd_kv_get(kv, "CHAP_R");
	const char *chap_i = isd_kv_get(kv, "CHAP_I");
	const char *chap_c = isd_kv_get(kv, "CHAP_C");

	if (am != NULL) {
		bool chap = list_has(am, "CHAP"), none = list_has(am, "None");

		if (l->auth_state != ISD_AUTH_START)
			return ISD_LOGIN_STATUS_INIT_ERR;
		if (auth->require_chap) {
			if (!chap)
				return ISD_LOGIN_STATUS_AUTH_FAILED;
			isd_text_append(rsp, "AuthMethod", "CHAP");
			l->auth_state = ISD_AUTH_CHAP_WAIT_A;
		} else if (none) {
			isd_text_append(rsp, "AuthMethod", "None");
			l->auth_state = ISD_AUTH_NONE;
		} else if (chap && auth->chap.user[0] != '\0') {
			isd_text_append(rsp, "AuthMethod", "CHAP");
			l->auth_state = ISD_AUTH_CHAP_WAIT_A;
		} else {
			isd_text_append(rsp, "AuthMethod", "Reject");
			l->auth_state = ISD_AUTH_REJECTED;
		}
	}
	if (chap_a != NULL) {
		char a[16], i[16], ch[2 * ISD_CHAP_CHALLENGE_LEN + 8];

		if (l->auth_state != ISD_AUTH_CHAP_WAIT_A)
			return ISD_LOGIN_STATUS_AUTH_FAILED;
		if (isd_chap_target_challenge(&l->chap, chap_a, c->tgt->cfg.chap_algs, a, sizeof(a),
					      i, sizeof(i), ch, sizeof(ch)) < 0) {
			char esc[ISD_LOG_ESC_MAX];

			isd_log_info("iscsi: CHAP_A=%s from %s offers no algorithm we accept",
				     isd_log_escape_str(esc, sizeof(esc), chap_a),
				     c->info.peer_addr);
			return ISD_LOGIN_STATUS_AUTH_FAILED;
		}
		isd_text_append(rsp, "CHAP_A", a);
		isd_text_append(rsp, "CHAP_I", i);
		isd_text_append(rsp, "CHAP_C", ch);
		l->auth_state = ISD_AUTH_CHAP_WAIT_R;
		return 0;
	}
	if (chap_n != NULL || chap_r != NULL) {
		char n_out[ISD_CHAP_NAME_MAX], r_out[2 * ISD_CHAP_MAX_DIGEST + 8];
		bool mutual = chap_i != NULL || chap_c != NULL;
		int rc;

		if (l->auth_state != ISD_AUTH_CHAP_WAIT_R || chap_n == NULL || chap_r == NULL)
			return ISD_LOGIN_STATUS_AUTH_FAILED;
		if (mutual && (chap_i == NULL || chap_c == NULL))
			return ISD_LOGIN_STATUS_AUTH_FAILED;
		n_out[0] = r_out[0] = '\0';
		rc = isd_chap_target_verify(&l->chap, auth->chap.user, auth->chap.secret, chap_n,
					    chap_r, mutual ? chap_i : NULL, mutual ? chap_c : NULL,
					    auth->mutual ? auth->mutual_chap.user : NULL,
					    auth->mutual ? auth->mutual_chap.secret : NULL, n_out,
					    sizeof(n_out), r_out, sizeof(r_out));
		if (rc < 0) {
			char esc[ISD_LOG_ESC_MAX], nesc[ISD_LOG_ESC_MAX];

			isd_log_info("iscsi: CHAP verification for %s (CHAP_N %s) failed (%d)",
				     isd_log_escape_str(esc, sizeof(esc), l->iname),
				     isd_log_escape_str(nesc, sizeof(nesc), chap_n), rc);
			return ISD_LOGIN_STATUS_AUTH_FAILED;
		}
		if (mutual) {
			isd_text_append(rsp, "CHAP_N", n_out);
			isd_text_append(rsp, "CHAP_R", r_out);
		}
		l->auth_state = ISD_AUTH_DONE;
		return 0;
	}
	if (chap_i != NULL || chap_c != NULL)
		return ISD_LOGIN_STATUS_AUTH_FAILED;
	return 0;
}

static bool
has_security_keys(const struct isd_kv_list *kv)
{
	for (int i = 0; i < kv->count; i++) {
		if (strcmp(kv->kv[i].key, "AuthMethod") == 0 ||
		    strncmp(kv->kv[i].key, "CHAP_", 5) == 0)
			return true;
	}
	return false;
}

/*
 * Whether this login may leave the security stage: where CHAP is required,
 * only once the exchange succeeded. Checked before any operational-stage
 * request is processed and again before a session is created, whatever
 * path the stages took to get there.
 */
static bool
auth_satisfied(const struct isd_login *l)
{
	return l->auth != NULL && (!l->auth->require_chap || l->auth_state == ISD_AUTH_DONE);
}

/*
 * The final Login Response is about to go: create the session (reinstating an
 * old one). The limits, the search for the session to reinstate, its removal
 * and the new session's entry are one critical section of the table lock, so
 * that two logins with one ISID on two reactors cannot both find no session
 * and both enter one, nor two logins both take the last free slot. The old
 * connection (maybe on another reactor) is closed after unlock, through
 * isd_conn_close_any and a reference taken while it was found; nothing waits
 * for it to go: the old session is out of the table at once, its tasks end
 * when its own reactor runs the close.
 */
static uint16_t
login_finalize(struct isd_conn *c, struct isd_login *l)
{
	struct isd_iscsi_tgt *t = c->tgt;
	struct isd_session *old, *s;
	struct isd_conn *old_conn = NULL;
	uint16_t st, old_tsih = 0;

	if (!auth_satisfied(l))
		return ISD_LOGIN_STATUS_AUTH_FAILED;
	isd_tgt_lock(t);
	st = session_admit(t, l);
	/* the node was removed while this login ran (isd_iscsi_tgt_remove_node) */
	if (st == 0 && l->node != NULL && l->node->removed)
		st = ISD_LOGIN_STATUS_TGT_REMOVED;
	if (st == 0 && l->type == ISD_SESSION_NORMAL) {
		/* session reinstatement (RFC 7143 §6.3.5): the old session with this
		 * initiator, ISID and target ends now */
		old = isd_session_find(t, l->iname, l->isid, l->node);
		if (old != NULL) {
			old_tsih = old->tsih;
			isd_session_unlink_locked(old);
			/* in the table, so its connection is not freed yet */
			if (old->conn != NULL && isd_conn_tryget(old->conn))
				old_conn = old->conn;
		}
	}
	if (st == 0 && isd_session_create(t, c, l, &s) < 0)
		st = ISD_LOGIN_STATUS_NO_RESOURCES;
	if (st == 0) {
		c->sess = s;
		c->cid = l->cid;        /* isd_iscsi_tgt_conn_drop matches it under the lock */
	}
	isd_tgt_unlock(t);
	if (old_tsih != 0) {
		char esc[ISD_LOG_ESC_MAX];

		isd_log_info("iscsi: %s reinstates session TSIH %u",
			     isd_log_escape_str(esc, sizeof(esc), l->iname), old_tsih);
	}
	if (old_conn != NULL) {
		isd_conn_close_any(old_conn);
		isd_conn_put(old_conn);
	}
	if (st != 0)
		return st;
	c->params = l->keys.params;
	c->params.session_type = l->type;
	return 0;
}

/* After the final Login Response has been queued. */
static void
login_enter_ffp(struct isd_conn *c)
{
	struct isd_session *s = c->sess;
	char esc[ISD_LOG_ESC_MAX];

	c->ops->notice_key_values(&c->dmc, &c->params);
	if (s->node != NULL && s->node->dev != NULL) {
		isd_tmf_register_dev(c->tgt, s->node->dev);
		isd_scsi_nexus_add(s->node->dev, &s->nexus);
		s->nexus_added = true;
	}
	c->state = ISD_CONN_FFP;
	isd_conn_login_ended(c);
	isd_reactor_timer_stop(c->reactor, &c->login_timer);
	isd_stat_inc(&c->tgt->stats.logins_ok);
	c->login_counted = true;
	isd_log_info("iscsi: %s session TSIH %u for %s from %s:%u",
		     s->type == ISD_SESSION_NORMAL ? "normal" : "discovery", s->tsih,
		     isd_log_escape_str(esc, sizeof(esc), s->iname), c->info.peer_addr,
		     c->info.peer_port);
	isd_login_free(c);
	isd_nop_start(c);
}

/*
 * Sends the next piece of the pending response text: at most 8192 bytes per
 * PDU (the initiator's MaxRecvDataSegmentLength during login); more follows
 * with C=1 and T=0 (RFC 7143 §11.13.2).
 */
static void
login_send_rsp(struct isd_conn *c, struct isd_login *l, const uint8_t *req_bhs)
{
	uint32_t left = l->rsp_len - l->rsp_off;
	uint32_t chunk = left > ISD_LOGIN_RSP_CHUNK ? ISD_LOGIN_RSP_CHUNK : left;
	bool last = chunk == left;
	uint8_t flags = l->rsp_flags;
	bool final = last && (flags & ISD_LOGIN_T) && ISD_LOGIN_NSG(flags) == ISD_STAGE_FFP;
	uint16_t tsih = l->tsih;
	struct isd_pdu *pdu;
	uint16_t st;

	if (!last)
		flags = (uint8_t)((flags & ~(ISD_LOGIN_T | 3)) | ISD_LOGIN_C);
	if (final) {
		st = login_finalize(c, l);
		if (st != 0) {
			login_fail(c, req_bhs, st);
			return;
		}
		tsih = c->sess->tsih;
	}
	pdu = isd_conn_pdu_alloc(c, ISD_OP_LOGIN_RSP, chunk);
	if (pdu == NULL)
		return;
	login_rsp_header(c, pdu, req_bhs, flags, tsih, 0);
	if (chunk > 0)
		memcpy(pdu->data, l->rsp_buf + l->rsp_off, chunk);
	pdu->data_len = chunk;
	isd_bhs_set_dsl(pdu->bhs, chunk);
	l->rsp_off += chunk;
	if (login_rsp_send(c, pdu, final) < 0)
		return;
	if (!last)
		return;
	free(l->rsp_buf);
	l->rsp_buf = NULL;
	l->rsp_len = l->rsp_off = 0;
	if (final)
		login_enter_ffp(c);
	else if (flags & ISD_LOGIN_T)
		l->stage = ISD_LOGIN_NSG(flags);
}

/* Checks the header of a Login Request against the login so far. */
static uint16_t
check_header(struct isd_conn *c, struct isd_login *l, const struct isd_pdu *pdu)
{
	const uint8_t *bhs = pdu->bhs;
	uint8_t flags = isd_bhs_flags(bhs);
	int csg = ISD_LOGIN_CSG(flags), nsg = ISD_LOGIN_NSG(flags);
	bool tbit = flags & ISD_LOGIN_T, cbit = flags & ISD_LOGIN_C;

	if (bhs[3] > 0)                 /* Version-min above the only version there is */
		return ISD_LOGIN_STATUS_NO_VERSION;
	if (isd_bhs_ahs_len(bhs) != 0 || pdu->ahs_len != 0 ||
	    pdu->data_len != isd_bhs_dsl(bhs) || pdu->data_len > c->params.max_recv_dsl)
		return ISD_LOGIN_STATUS_INIT_ERR;
	if (tbit && cbit)
		return ISD_LOGIN_STATUS_INIT_ERR;
	if (csg != ISD_STAGE_SECURITY && csg != ISD_STAGE_OPERATIONAL)
		return ISD_LOGIN_STATUS_INIT_ERR;
	if (tbit && (nsg == 2 || nsg <= csg))
		return ISD_LOGIN_STATUS_INIT_ERR;
	/*
	 * The stage is checked from the second PDU on, also while the first
	 * request is still being continued (C=1): a login that opens in one
	 * stage and carries on in another would otherwise be judged by the
	 * first request's stage but recorded in the other's.
	 */
	if (csg != l->stage)            /* backwards, or ahead of what we agreed to */
		return ISD_LOGIN_STATUS_INVALID_REQUEST;
	if (memcmp(bhs + 8, l->isid, 6) != 0 || get_be16(bhs + 14) != l->tsih)
		return ISD_LOGIN_STATUS_INIT_ERR;
	return 0;
}

void
isd_login_rx(struct isd_conn *c, struct isd_pdu *pdu)
{
	struct isd_login *l = c->login;
	uint8_t req_bhs[ISD_BHS_LEN];
	uint8_t flags = isd_bhs_flags(pdu->bhs);
	int csg = ISD_LOGIN_CSG(flags), nsg = ISD_LOGIN_NSG(flags);
	bool tbit = flags & ISD_LOGIN_T, cbit = flags & ISD_LOGIN_C, transit;
	struct isd_kv_list kv;
	struct isd_text_buf rsp;
	const uint8_t *text;
	uint32_t text_len;
	uint16_t st;
	int rc;

	memcpy(req_bhs, pdu->bhs, ISD_BHS_LEN);
	if (isd_bhs_opcode(pdu->bhs) != ISD_OP_LOGIN_REQ) {
		isd_log_info("iscsi: %s during login from %s, closing",
			     isd_opcode_name(isd_bhs_opcode(pdu->bhs)), c->info.peer_addr);
		isd_conn_release_pdu(c, pdu);
		isd_conn_close(c);
		return;
	}
	if (l == NULL) {
		l = calloc(1, sizeof(*l));
		if (l == NULL) {
			isd_conn_release_pdu(c, pdu);
			login_fail(c, req_bhs, ISD_LOGIN_STATUS_NO_RESOURCES);
			return;
		}
		c->login = l;
		memcpy(l->isid, pdu->bhs + 8, 6);
		l->tsih = get_be16(pdu->bhs + 14);
		l->itt = isd_bhs_itt(pdu->bhs);
		l->cid = get_be16(pdu->bhs + 20);
		l->cmdsn = isd_bhs_cmdsn(pdu->bhs);
		l->stage = csg;
	}
	st = check_header(c, l, pdu);
	if (st == 0 && ++l->n_pdus > LOGIN_MAX_PDUS)
		st = ISD_LOGIN_STATUS_INIT_ERR;
	if (st != 0)
		goto fail_release;

	/* the initiator fetching the rest of our own continued response */
	if (l->rsp_buf != NULL) {
		if (pdu->data_len != 0 || cbit) {
			st = ISD_LOGIN_STATUS_INIT_ERR;
			goto fail_release;
		}
		isd_conn_release_pdu(c, pdu);
		login_send_rsp(c, l, req_bhs);
		return;
	}

	/* C=1: the key text continues in the next request; answer with an empty PDU */
	if (cbit || l->req_len > 0) {
		uint8_t *nb;

		if (l->req_len + pdu->data_len > ISD_LOGIN_MAX_TEXT) {
			st = ISD_LOGIN_STATUS_INIT_ERR;
			goto fail_release;
		}
		nb = realloc(l->req_buf, l->req_len + pdu->data_len + 1);
		if (nb == NULL) {
			st = ISD_LOGIN_STATUS_NO_RESOURCES;
			goto fail_release;
		}
		l->req_buf = nb;
		memcpy(l->req_buf + l->req_len, pdu->data, pdu->data_len);
		l->req_len += pdu->data_len;
	}
	if (cbit) {
		isd_conn_release_pdu(c, pdu);
		l->rsp_flags = (uint8_t)(csg << 2);
		l->rsp_buf = NULL;
		l->rsp_len = l->rsp_off = 0;
		/* an empty response (no text to page out) */
		{
			struct isd_pdu *r = isd_conn_pdu_alloc(c, ISD_OP_LOGIN_RSP, 0);

			if (r != NULL) {
				login_rsp_header(c, r, req_bhs, (uint8_t)(csg << 2), l->tsih, 0);
				login_rsp_send(c, r, false);
			}
		}
		return;
	}
	if (l->req_len > 0) {
		text = l->req_buf;
		text_len = l->req_len;
	} else {
		text = pdu->data;
		text_len = pdu->data_len;
	}
	rc = isd_kv_parse(text, text_len, &kv);
	isd_conn_release_pdu(c, pdu);
	pdu = NULL;
	free(l->req_buf);
	l->req_buf = NULL;
	l->req_len = 0;
	if (rc < 0) {
		st = rc == -ENOMEM ? ISD_LOGIN_STATUS_NO_RESOURCES : ISD_LOGIN_STATUS_INIT_ERR;
		goto fail;
	}
	isd_text_buf_init(&rsp);

	if (!l->first_done) {
		st = first_request(c, l, &kv, csg);
		if (st != 0)
			goto fail_kv;
		l->first_done = true;
		if (l->type == ISD_SESSION_NORMAL && !l->sent_tpgt) {
			isd_text_appendf(&rsp, "TargetPortalGroupTag", "%u", conn_tpgt(c, l->node));
			if (l->node->alias[0] != '\0')
				isd_text_append(&rsp, "TargetAlias", l->node->alias);
			l->sent_tpgt = true;
		}
	}

	if (csg != ISD_STAGE_SECURITY && !auth_satisfied(l)) {
		st = ISD_LOGIN_STATUS_AUTH_FAILED;
		goto fail_kv;
	}
	if (csg == ISD_STAGE_SECURITY) {
		st = security_keys(c, l, &kv, &rsp);
		if (st != 0)
			goto fail_kv;
	} else if (has_security_keys(&kv)) {
		st = ISD_LOGIN_STATUS_INIT_ERR;
		goto fail_kv;
	}
	rc = isd_keys_negotiate(&l->keys, &kv, &rsp);
	if (rc != 0) {
		st = rc < 0 ? ISD_LOGIN_STATUS_NO_RESOURCES : (uint16_t)rc;
		goto fail_kv;
	}

	/* may we move on? */
	transit = tbit;
	if (transit && csg == ISD_STAGE_SECURITY) {
		switch (l->auth_state) {
		case ISD_AUTH_CHAP_WAIT_A:
		case ISD_AUTH_CHAP_WAIT_R:
			transit = false;        /* the exchange goes on */
			break;
		case ISD_AUTH_START:
		case ISD_AUTH_REJECTED:
			if (l->auth->require_chap) {
				st = ISD_LOGIN_STATUS_AUTH_FAILED;
				goto fail_kv;
			}
			break;
		default:
			break;
		}
	}
	if (transit && (csg == ISD_STAGE_OPERATIONAL || nsg == ISD_STAGE_FFP)) {
		rc = isd_keys_finish(&l->keys, &rsp);
		if (rc < 0) {
			st = ISD_LOGIN_STATUS_NO_RESOURCES;
			goto fail_kv;
		}
	}
	/* our answer to at most ISD_KV_MAX keys stays far below this; the cap makes
	 * the login's memory bound not depend on that reasoning */
	if (rsp.oom || rsp.len > ISD_LOGIN_MAX_TEXT) {
		st = ISD_LOGIN_STATUS_NO_RESOURCES;
		goto fail_kv;
	}
	isd_kv_list_fini(&kv);

	l->rsp_flags = (uint8_t)(csg << 2);
	if (transit)
		l->rsp_flags |= (uint8_t)(ISD_LOGIN_T | nsg);
	l->rsp_buf = rsp.buf;           /* the buffer moves into the login state */
	l->rsp_len = rsp.len;
	l->rsp_off = 0;
	rsp.buf = NULL;
	isd_text_buf_fini(&rsp);
	login_send_rsp(c, l, req_bhs);
	return;

fail_kv:
	isd_text_buf_fini(&rsp);
	isd_kv_list_fini(&kv);
	goto fail;
fail_release:
	isd_conn_release_pdu(c, pdu);
fail:
	login_fail(c, req_bhs, st);
}
