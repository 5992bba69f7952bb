/* A fake datamover for unit tests of the iSCSI core (see fake_dm.h). */
#include "fake_dm.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/iov.h"

struct fake_priv {
	struct fake_dm *fd;
};

static struct fake_dm *
fd_of(struct isd_dm_conn *c)
{
	return ((struct fake_priv *)isd_dmc_priv(c))->fd;
}

static int
fake_send_control(struct isd_dm_conn *c, struct isd_pdu *pdu)
{
	struct fake_dm *fd = fd_of(c);

	if (fd->send_fail > 0) {
		fd->send_fail--;
		isd_pdu_free(pdu);
		return -EIO;
	}
	TAILQ_INSERT_TAIL(&fd->sent, pdu, link);
	fd->n_sent++;
	return 0;
}

static int
record_xfer(struct fake_dm *fd, struct isd_dm_task *t, const struct isd_xfer *x, bool put)
{
	struct fake_xfer *fx;

	if (fd->n_xfers >= FAKE_DM_MAX_XFER)
		return -ENOMEM;
	fx = &fd->xfers[fd->n_xfers++];
	fx->task = t;
	fx->put = put;
	fx->iov = x->iov;
	fx->iovcnt = x->iovcnt;
	fx->offset = x->offset;
	fx->length = x->length;
	return 0;
}

static int
fake_put_data(struct isd_dm_conn *c, struct isd_dm_task *t, const struct isd_xfer *x)
{
	struct fake_dm *fd = fd_of(c);
	uint8_t *nb;
	int rc;

	if (fd->xfer_fail < 0) {
		isd_pdu_free(x->rsp);
		return fd->xfer_fail;
	}
	rc = record_xfer(fd, t, x, true);
	if (rc < 0) {
		isd_pdu_free(x->rsp);
		return rc;
	}
	nb = realloc(fd->read_data, fd->read_len + x->length + 1);
	if (nb == NULL) {
		fd->n_xfers--;
		isd_pdu_free(x->rsp);
		return -ENOMEM;
	}
	fd->read_data = nb;
	isd_iov_copy_out(x->iov, x->iovcnt, x->offset, fd->read_data + fd->read_len, x->length);
	fd->read_len += x->length;
	if (x->rsp != NULL) {
		TAILQ_INSERT_TAIL(&fd->sent, x->rsp, link);
		fd->n_sent++;
	}
	return 0;
}

static int
fake_get_data(struct isd_dm_conn *c, struct isd_dm_task *t, const struct isd_xfer *x)
{
	if (fd_of(c)->xfer_fail < 0)
		return fd_of(c)->xfer_fail;
	return record_xfer(fd_of(c), t, x, false);
}

static void
fake_notice_key_values(struct isd_dm_conn *c, const struct isd_params *p)
{
	struct fake_dm *fd = fd_of(c);

	fd->noticed = true;
	fd->params = *p;
}

static void
fake_login_response(struct isd_dm_conn *c, const struct isd_params *negotiated, bool final)
{
	struct fake_dm *fd = fd_of(c);

	fd->login_rsps++;
	if (!final)
		return;
	fd->login_finals++;
	fd->sent_at_final = fd->n_sent;
	fd->final_after_notice = fd->noticed;
	fd->final_params = *negotiated;
}

static void
fake_release_pdu(struct isd_dm_conn *c, struct isd_pdu *pdu)
{
	fd_of(c)->released++;
	isd_pdu_free(pdu);
}

static void
fake_task_cleanup(struct isd_dm_conn *c, struct isd_dm_task *t, struct isd_tmf_wait *fence)
{
	struct fake_dm *fd = fd_of(c);

	for (int i = 0; i < fd->n_xfers; i++) {
		if (fd->xfers[i].task == t) {
			/* like an RDMA transfer still in flight: the abort's answer waits */
			if (fd->hold_fences && fence != NULL && fd->n_fences < FAKE_DM_MAX_XFER) {
				isd_dm_fence_hold(c, fence);
				fd->fences[fd->n_fences++] = fence;
			}
			memmove(&fd->xfers[i], &fd->xfers[i + 1],
				(size_t)(fd->n_xfers - i - 1) * sizeof(fd->xfers[0]));
			fd->n_xfers--;
			i--;
		}
	}
	fd->task_cleanups++;
}

static void
fake_terminate(struct isd_dm_conn *c)
{
	fd_of(c)->terminate_called = true;
}

static void
fake_free_conn(struct isd_dm_conn *c)
{
	struct fake_dm *fd = fd_of(c);

	fd->freed = true;
	fd->conn = NULL;
	fd->n_xfers = 0;
}

struct isd_dm_ops fake_dm_ops = {
	.name = "fake",
	.caps = ISD_DM_CAP_DIGESTS,
	.conn_priv_size = sizeof(struct fake_priv),
	.task_priv_size = 24,
	.send_control = fake_send_control,
	.put_data = fake_put_data,
	.get_data = fake_get_data,
	.login_response = fake_login_response,
	.notice_key_values = fake_notice_key_values,
	.release_pdu = fake_release_pdu,
	.task_cleanup = fake_task_cleanup,
	.terminate = fake_terminate,
	.free_conn = fake_free_conn,
};

void
fake_dm_init(struct fake_dm *fd)
{
	memset(fd, 0, sizeof(*fd));
	TAILQ_INIT(&fd->sent);
}

int
fake_dm_release_fences(struct fake_dm *fd)
{
	int n = fd->n_fences;

	while (fd->n_fences > 0)
		isd_dm_fence_release(fd->conn, fd->fences[--fd->n_fences]);
	return n;
}

void
fake_dm_drop_sent(struct fake_dm *fd)
{
	struct isd_pdu *p;

	while ((p = fake_dm_pop(fd)) != NULL)
		isd_pdu_free(p);
}

void
fake_dm_fini(struct fake_dm *fd)
{
	fake_dm_drop_sent(fd);
	free(fd->read_data);
	fd->read_data = NULL;
	fd->read_len = 0;
}

int
fake_dm_connect(struct fake_dm *fd, struct isd_iscsi_tgt *t, struct isd_reactor *r,
		uint16_t tpgt)
{
	return fake_dm_connect_from(fd, t, r, tpgt, "192.0.2.1");
}

int
fake_dm_connect_from(struct fake_dm *fd, struct isd_iscsi_tgt *t, struct isd_reactor *r,
		     uint16_t tpgt, const char *peer_addr)
{
	struct isd_conn_info info;

	memset(&info, 0, sizeof(info));
	snprintf(info.peer_addr, sizeof(info.peer_addr), "%s", peer_addr);
	info.peer_port = 40000;
	strcpy(info.local_addr, "192.0.2.10");
	info.local_port = 3260;
	info.tpgt = tpgt;
	info.transport = ISD_TRANSPORT_TCP;
	return fake_dm_connect_info(fd, t, r, &info);
}

int
fake_dm_connect_info(struct fake_dm *fd, struct isd_iscsi_tgt *t, struct isd_reactor *r,
		     const struct isd_conn_info *info)
{
	struct isd_dm_conn *c;
	int rc;

	rc = isd_conn_create(t, &fake_dm_ops, info, r, &c);
	if (rc < 0)
		return rc;
	((struct fake_priv *)isd_dmc_priv(c))->fd = fd;
	fd->conn = c;
	isd_conn_start(c);
	return 0;
}

void
fake_dm_inject_ahs(struct fake_dm *fd, const uint8_t *bhs, const uint8_t *ahs, uint32_t ahs_len,
		   const void *data, uint32_t len)
{
	struct isd_pdu *pdu = isd_pdu_alloc(len + ahs_len);

	if (pdu == NULL || fd->conn == NULL) {
		isd_pdu_free(pdu);
		return;
	}
	memcpy(pdu->bhs, bhs, ISD_BHS_LEN);
	isd_bhs_set_dsl(pdu->bhs, len);
	pdu->bhs[4] = (uint8_t)(ahs_len / 4);
	if (len > 0)
		memcpy(pdu->data, data, len);
	pdu->data_len = len;
	if (ahs_len > 0) {
		pdu->ahs = pdu->data + len;
		memcpy(pdu->ahs, ahs, ahs_len);
		pdu->ahs_len = ahs_len;
	}
	fd->injected++;
	isd_dm_control_notify(fd->conn, pdu);
}

void
fake_dm_inject(struct fake_dm *fd, const uint8_t *bhs, const void *data, uint32_t len)
{
	fake_dm_inject_ahs(fd, bhs, NULL, 0, data, len);
}

struct isd_pdu *
fake_dm_pop(struct fake_dm *fd)
{
	struct isd_pdu *p = TAILQ_FIRST(&fd->sent);

	if (p != NULL) {
		TAILQ_REMOVE(&fd->sent, p, link);
		fd->n_sent--;
	}
	return p;
}

int
fake_dm_complete(struct fake_dm *fd, const void *data, int status)
{
	struct fake_xfer fx;

	if (fd->n_xfers == 0 || fd->conn == NULL)
		return -ENOENT;
	fx = fd->xfers[0];
	memmove(&fd->xfers[0], &fd->xfers[1], (size_t)(fd->n_xfers - 1) * sizeof(fd->xfers[0]));
	fd->n_xfers--;
	if (!fx.put && data != NULL && status == 0)
		isd_iov_copy_in(fx.iov, fx.iovcnt, fx.offset, data, fx.length);
	isd_dm_data_completion_notify(fd->conn, fx.task, status);
	return 0;
}

void
fake_dm_terminate_notify(struct fake_dm *fd, bool force)
{
	if (fd->conn == NULL || fd->terminate_notified)
		return;
	if (!fd->terminate_called && !force)
		return;
	fd->terminate_notified = true;
	isd_dm_terminate_notify(fd->conn, 0);
}

uint32_t
fake_text(uint8_t *buf, uint32_t cap, ...)
{
	va_list ap;
	const char *s;
	uint32_t len = 0;

	va_start(ap, cap);
	while ((s = va_arg(ap, const char *)) != NULL) {
		size_t n = strlen(s) + 1;

		if (len + n > cap)
			break;
		memcpy(buf + len, s, n);
		len += (uint32_t)n;
	}
	va_end(ap);
	return len;
}

void
fake_login_bhs(uint8_t *bhs, uint8_t flags, const uint8_t *isid, uint16_t tsih, uint32_t itt,
	       uint32_t cmdsn)
{
	memset(bhs, 0, ISD_BHS_LEN);
	bhs[0] = ISD_OP_LOGIN_REQ | ISD_BHS_I;
	bhs[1] = flags;
	memcpy(bhs + 8, isid, 6);
	put_be16(bhs + 14, tsih);
	put_be32(bhs + 16, itt);
	put_be32(bhs + 24, cmdsn);
}

bool
fake_text_get(const struct isd_pdu *pdu, const char *key, char *out, size_t cap)
{
	size_t klen = strlen(key);
	uint32_t i = 0;

	while (i < pdu->data_len) {
		const char *kv = (const char *)pdu->data + i;
		size_t n = strnlen(kv, pdu->data_len - i);

		if (n > klen && strncmp(kv, key, klen) == 0 && kv[klen] == '=') {
			size_t vl = n - klen - 1;

			if (vl >= cap)
				vl = cap - 1;
			memcpy(out, kv + klen + 1, vl);
			out[vl] = '\0';
			return true;
		}
		i += (uint32_t)n + 1;
	}
	return false;
}

int
fake_dm_login(struct fake_dm *fd, const char *iname, const char *target, const uint8_t *isid,
	      uint32_t cmdsn, uint16_t *tsih)
{
	uint8_t bhs[ISD_BHS_LEN], text[1024];
	char in[300], tn[300];
	uint32_t len;
	struct isd_pdu *rsp;
	int status;

	snprintf(in, sizeof(in), "InitiatorName=%s", iname);
	if (target != NULL) {
		snprintf(tn, sizeof(tn), "TargetName=%s", target);
		len = fake_text(text, sizeof(text), in, tn, "SessionType=Normal",
				"HeaderDigest=None", "DataDigest=None",
				"MaxRecvDataSegmentLength=262144", "ImmediateData=Yes",
				"InitialR2T=No", "FirstBurstLength=65536",
				"MaxBurstLength=262144", (const char *)NULL);
	} else {
		len = fake_text(text, sizeof(text), in, "SessionType=Discovery",
				"HeaderDigest=None", "DataDigest=None",
				"MaxRecvDataSegmentLength=8192", (const char *)NULL);
	}
	fake_login_bhs(bhs, ISD_LOGIN_T | (ISD_STAGE_OPERATIONAL << 2) | ISD_STAGE_FFP, isid, 0,
		       0x1000, cmdsn);
	fake_dm_inject(fd, bhs, text, len);
	rsp = fake_dm_pop(fd);
	if (rsp == NULL)
		return -1;
	status = (rsp->bhs[36] << 8) | rsp->bhs[37];
	if (tsih != NULL)
		*tsih = get_be16(rsp->bhs + 14);
	isd_pdu_free(rsp);
	return status;
}
