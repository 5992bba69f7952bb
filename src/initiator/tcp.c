/*
 * The TCP transport of the initiator (RFC 7143 framing): a non-blocking
 * socket, a send queue of items written with writev straight from their
 * buffers (a command's immediate data and its Data-Out come from the caller's
 * buffer), and a receive state machine that reads Data-In payload with readv
 * straight into the task's buffer at its BufferOffset, together with the
 * padding, the data digest and the next BHS in the same system call.
 * Digests and iovec slicing reuse the pure helpers of the target's TCP
 * datamover (dm/tcp/tcp_frame.c).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "initiator/init_int.h"
#include "util/endian.h"
#include "util/iov.h"

/* Bytes of the data segment buffer for PDUs other than Data-In. */
#define RXBUF_CAP (ISD_INIT_MAX_RECV_DSL + 8192)
/* PDUs handled per service call before giving the caller's loop a turn. */
#define RX_PDU_BUDGET 256

static const uint8_t zero_pad[4];

/* Starts a non-blocking connect to the next address of t->ai_next onwards.
 * Returns 0 (in progress) or -errno when no address is left. */
static int
connect_next(struct isd_ictx *c, int last_err)
{
	struct isd_itcp *t = &c->tcp;
	int rc = last_err ? last_err : -EHOSTUNREACH, one = 1;

	while (t->ai_next != NULL) {
		struct addrinfo *ai = t->ai_next;
		int fd;

		t->ai_next = ai->ai_next;
		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
			    ai->ai_protocol);
		if (fd < 0) {
			rc = -errno;
			continue;
		}
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0 || errno == EINPROGRESS) {
			t->fd = fd;
			t->connecting = true;
			return 0;
		}
		rc = -errno;
		close(fd);
	}
	freeaddrinfo(t->ai_list);
	t->ai_list = NULL;
	isd_init_set_error(c, "cannot connect to %s:%u: %s", c->url.host, c->url.port,
			   strerror(-rc));
	return rc;
}

static int
tcp_connect(struct isd_ictx *c)
{
	struct isd_itcp *t = &c->tcp;
	struct addrinfo hints;
	char port[8];
	int rc;

	if (t->rxbuf == NULL) {
		t->rxbuf = malloc(RXBUF_CAP);
		if (t->rxbuf == NULL)
			return -ENOMEM;
		t->rxbuf_cap = RXBUF_CAP;
	}
	if (t->rx == NULL) {
		t->rx = isd_pdu_alloc(0);
		if (t->rx == NULL)
			return -ENOMEM;
	}
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	snprintf(port, sizeof(port), "%u", c->url.port);
	if (t->ai_list != NULL)
		freeaddrinfo(t->ai_list);
	t->ai_list = NULL;
	/* Name resolution blocks; numeric addresses return at once. */
	rc = getaddrinfo(c->url.host, port, &hints, &t->ai_list);
	if (rc != 0) {
		t->ai_list = NULL;
		isd_init_set_error(c, "cannot resolve %s: %s", c->url.host, gai_strerror(rc));
		return -EHOSTUNREACH;
	}
	t->ai_next = t->ai_list;
	t->want_write = false;
	t->rx_state = ISD_ITCP_RX_BHS;
	t->rx_got = 0;
	t->hdgst = false;
	t->ddgst = false;
	return connect_next(c, 0);
}

static void
itx_unqueue(struct isd_ictx *c, struct isd_itx *x)
{
	struct isd_itcp *t = &c->tcp;
	bool detached = x->detached;

	TAILQ_REMOVE(&t->txq, x, link);
	x->queued = false;
	x->built = false;
	x->started = false;
	x->detached = false;
	free(x->bounce);
	x->bounce = NULL;
	if (x->kind == ISD_ITX_PDU) {
		isd_pdu_free(x->pdu);
		free(x);
	} else if (detached) {
		isd_init_slot_release(c, x->task);
	}
}

static void
tcp_disconnect(struct isd_ictx *c)
{
	struct isd_itcp *t = &c->tcp;
	struct isd_itx *x;

	while ((x = TAILQ_FIRST(&t->txq)) != NULL)
		itx_unqueue(c, x);
	if (t->fd >= 0)
		close(t->fd);
	t->fd = -1;
	t->connecting = false;
	if (t->ai_list != NULL)
		freeaddrinfo(t->ai_list);
	t->ai_list = NULL;
	t->ai_next = NULL;
	t->want_write = false;
	t->rx_state = ISD_ITCP_RX_BHS;
	t->rx_got = 0;
	t->rx_task = NULL;
}

static void
tcp_queue(struct isd_ictx *c, struct isd_itx *x)
{
	x->queued = true;
	x->built = false;
	x->started = false;
	x->detached = false;
	x->iov_pos = 0;
	TAILQ_INSERT_TAIL(&c->tcp.txq, x, link);
}

/* Replaces what is left of a half-written PDU by a private copy, so that the
 * caller's buffer can be handed back while the PDU is finished. */
static int
itx_detach(struct isd_itx *x)
{
	size_t left = 0, off = 0;
	uint8_t *b;
	int i;

	for (i = x->iov_pos; i < x->iovcnt; i++)
		left += x->iov[i].iov_len;
	b = malloc(left ? left : 1);
	if (b == NULL)
		return -ENOMEM;
	for (i = x->iov_pos; i < x->iovcnt; i++) {
		memcpy(b + off, x->iov[i].iov_base, x->iov[i].iov_len);
		off += x->iov[i].iov_len;
	}
	free(x->bounce);
	x->bounce = b;
	x->iov[0].iov_base = b;
	x->iov[0].iov_len = left;
	x->iovcnt = 1;
	x->iov_pos = 0;
	x->detached = true;
	return 0;
}

static void
tcp_detach_task(struct isd_ictx *c, struct isd_itask *it)
{
	size_t i;

	for (i = 0; i < ISD_INIT_MAX_R2T + 2; i++) {
		struct isd_itx *x = i == 0 ? &it->cmd : &it->seq[i - 1];

		if (!x->queued || x->detached)
			continue;
		if (!x->started) {
			itx_unqueue(c, x);
			continue;
		}
		isd_init_log(c, ISERD_LOG_DEBUG,
			     "command done while one of its PDUs is half sent: finishing it "
			     "from a private copy");
		if (itx_detach(x) < 0) {
			/* No memory for the copy: the stream cannot be finished. */
			c->pending_fail = -ENOMEM;
			itx_unqueue(c, x);
		}
		/* The item now lives on its own; it stays queued until written. */
	}
}

static void
tcp_enable(struct isd_ictx *c)
{
	c->tcp.hdgst = c->params.header_digest;
	c->tcp.ddgst = c->params.data_digest;
}

static int
tcp_get_fd(const struct isd_ictx *c)
{
	return c->tcp.fd;
}

static int
tcp_which_events(const struct isd_ictx *c)
{
	const struct isd_itcp *t = &c->tcp;

	if (t->fd < 0)
		return 0;
	if (t->connecting)
		return POLLOUT;
	if (!TAILQ_EMPTY(&t->txq))
		return POLLIN | POLLOUT;
	return POLLIN;
}

/* Builds the wire form of the item's next PDU into x->iov. */
static void
itx_build(struct isd_ictx *c, struct isd_itx *x)
{
	struct isd_itcp *t = &c->tcp;
	uint8_t *bhs = x->hdr;
	uint32_t len = 0, pad;
	int n = 0;

	switch (x->kind) {
	case ISD_ITX_PDU:
		memcpy(bhs, x->pdu->bhs, ISD_BHS_LEN);
		len = x->pdu->data_len;
		if (len > 0) {
			x->iov[1].iov_base = x->pdu->data;
			x->iov[1].iov_len = len;
			n = 1;
		}
		break;
	case ISD_ITX_CMD:
		isd_init_build_cmd(c, x, bhs, x->iov + 1, &n, ISD_INIT_TX_IOV - 2, &len);
		break;
	case ISD_ITX_DATAOUT:
		isd_init_build_dataout(c, x, c->params.max_xmit_dsl, bhs, x->iov + 1, &n,
				       ISD_INIT_TX_IOV - 2, &len);
		break;
	}
	/* Every initiator PDU carries ExpStatSN at bytes 28..31. */
	put_be32(bhs + 28, c->exp_statsn);
	isd_bhs_set_dsl(bhs, len);
	x->iov[0].iov_base = x->hdr;
	x->iov[0].iov_len = ISD_BHS_LEN;
	if (t->hdgst) {
		isd_pdu_put_digest(x->hdr + ISD_BHS_LEN, isd_pdu_hdr_digest(bhs, NULL, 0));
		x->iov[0].iov_len += ISD_INIT_DIGEST_LEN;
	}
	x->iovcnt = 1 + n;
	pad = isd_pad4(len);
	if (len > 0 && (pad > 0 || t->ddgst)) {
		uint32_t tl = pad;

		memset(x->trail, 0, pad);
		if (t->ddgst) {
			isd_pdu_put_digest(x->trail + pad,
					   isd_pdu_data_digest(x->iov + 1, n, zero_pad, pad));
			tl += ISD_INIT_DIGEST_LEN;
		}
		x->iov[x->iovcnt].iov_base = x->trail;
		x->iov[x->iovcnt].iov_len = tl;
		x->iovcnt++;
	}
	x->iov_pos = 0;
	x->built = true;
	x->started = false;
}

/* A PDU of item x was written completely. */
static void
itx_sent(struct isd_ictx *c, struct isd_itx *x)
{
	struct isd_itcp *t = &c->tcp;

	x->built = false;
	x->started = false;
	if (x->kind == ISD_ITX_DATAOUT && !x->detached && x->off < x->end) {
		/* More PDUs in this sequence: go round behind the others. */
		TAILQ_REMOVE(&t->txq, x, link);
		TAILQ_INSERT_TAIL(&t->txq, x, link);
		return;
	}
	itx_unqueue(c, x);
}

static int
tcp_flush(struct isd_ictx *c)
{
	struct isd_itcp *t = &c->tcp;
	struct iovec v[ISD_INIT_WRITEV_IOV];
	struct isd_itx *batch[ISD_INIT_WRITEV_IOV];

	while (!TAILQ_EMPTY(&t->txq) && t->fd >= 0) {
		struct isd_itx *x;
		size_t bytes = 0;
		ssize_t n;
		int cnt = 0, nb = 0, i;

		TAILQ_FOREACH(x, &t->txq, link) {
			int k;

			if (!x->built)
				itx_build(c, x);
			k = x->iovcnt - x->iov_pos;
			if (cnt + k > ISD_INIT_WRITEV_IOV || nb == ISD_INIT_WRITEV_IOV)
				break;
			memcpy(v + cnt, x->iov + x->iov_pos, (size_t)k * sizeof(v[0]));
			for (i = x->iov_pos; i < x->iovcnt; i++)
				bytes += x->iov[i].iov_len;
			cnt += k;
			batch[nb++] = x;
			if (bytes >= ISD_INIT_WRITEV_BYTES)
				break;
		}
		if (cnt == 0)
			break;
		n = writev(t->fd, v, cnt);
		if (n < 0) {
			int e = errno;

			if (e == EINTR)
				continue;
			if (e == EAGAIN || e == EWOULDBLOCK) {
				t->want_write = true;
				return 0;
			}
			isd_init_set_error(c, "send to %s:%u failed: %s", c->url.host, c->url.port,
					   strerror(e));
			return e == EPIPE ? -ECONNRESET : -e;
		}
		for (i = 0; i < nb && n >= 0; i++) {
			x = batch[i];
			while (x->iov_pos < x->iovcnt && n > 0) {
				struct iovec *e = &x->iov[x->iov_pos];

				x->started = true;
				if ((size_t)n >= e->iov_len) {
					n -= (ssize_t)e->iov_len;
					e->iov_len = 0;
					x->iov_pos++;
				} else {
					e->iov_base = (char *)e->iov_base + n;
					e->iov_len -= (size_t)n;
					n = 0;
				}
			}
			while (x->iov_pos < x->iovcnt && x->iov[x->iov_pos].iov_len == 0)
				x->iov_pos++;
			if (x->iov_pos < x->iovcnt)
				break; /* partly written: it is the queue head now */
			itx_sent(c, x);
		}
		if (i < nb) {
			t->want_write = true;
			return 0;
		}
	}
	t->want_write = false;
	return 0;
}

/* ---- receive ---- */

static int
rx_header_done(struct isd_ictx *c)
{
	struct isd_itcp *t = &c->tcp;
	uint8_t *bhs = t->rx->bhs;
	uint32_t ahs_len = isd_bhs_ahs_len(t->hbuf);
	uint8_t op;
	int rc;

	if (t->hdgst) {
		uint32_t want = isd_pdu_hdr_digest(t->hbuf, t->hbuf + ISD_BHS_LEN, ahs_len);

		if (want != isd_pdu_get_digest(t->hbuf + ISD_BHS_LEN + ahs_len)) {
			isd_init_set_error(c, "header digest error from %s:%u", c->url.host,
					   c->url.port);
			return -EPROTO;
		}
	}
	memcpy(bhs, t->hbuf, ISD_BHS_LEN);
	t->rx->ahs = NULL;
	t->rx->ahs_len = 0;
	t->rx_dsl = isd_bhs_dsl(bhs);
	t->rx_data_got = 0;
	t->rx_task = NULL;
	t->rx_offset = 0;
	op = isd_bhs_opcode(bhs);
	rc = isd_bhs_check(bhs, false, RXBUF_CAP);
	if (rc != 0) {
		isd_init_set_error(c, "target sent a malformed %s PDU (%s)", isd_opcode_name(op),
				   isd_reject_reason_str((uint8_t)rc));
		return -EPROTO;
	}
	t->rx_discard = false;
	if (op == ISD_OP_DATA_IN) {
		rc = isd_init_rx_datain_hdr(c, bhs, &t->rx_task, &t->rx_offset);
		if (rc < 0)
			return rc;
		t->rx_discard = t->rx_task == NULL;
	} else if (t->rx_dsl > t->rxbuf_cap) {
		isd_init_set_error(c, "target sent a %s of %u bytes, more than we accept",
				   isd_opcode_name(op), t->rx_dsl);
		return -EPROTO;
	}
	t->rx_trail_len = t->rx_dsl > 0 ? isd_pad4(t->rx_dsl) + (t->ddgst ? 4 : 0) : 0;
	return 0;
}

static int
rx_pdu_done(struct isd_ictx *c)
{
	struct isd_itcp *t = &c->tcp;
	uint32_t pad = isd_pad4(t->rx_dsl);

	if (t->ddgst && t->rx_dsl > 0 && !t->rx_discard) {
		struct iovec sl[64];
		uint32_t covered = 0, crc;
		int n;

		if (t->rx_task != NULL) {
			n = isd_iov_slice_upto(t->rx_task->t->iov, t->rx_task->t->iovcnt,
					       t->rx_offset, t->rx_dsl, sl, 64, &covered);
			if (covered != t->rx_dsl) {
				isd_init_set_error(c,
						   "buffer too fragmented to check a data digest");
				return -EINVAL;
			}
		} else {
			sl[0].iov_base = t->rxbuf;
			sl[0].iov_len = t->rx_dsl;
			n = 1;
		}
		crc = isd_pdu_data_digest(sl, n, zero_pad, pad);
		if (crc != isd_pdu_get_digest(t->rx_trail + pad)) {
			isd_init_set_error(c, "data digest error on a %s from %s:%u",
					   isd_opcode_name(isd_bhs_opcode(t->rx->bhs)), c->url.host,
					   c->url.port);
			return -EPROTO;
		}
	}
	c->last_rx_ns = isd_init_now_ns();
	c->nop_sent_ns = 0;
	if (isd_bhs_opcode(t->rx->bhs) == ISD_OP_DATA_IN) {
		struct isd_itask *it = t->rx_task;

		t->rx_task = NULL;
		return isd_init_rx_datain_done(c, t->rx_discard ? NULL : it, t->rx->bhs);
	}
	t->rx->data = t->rxbuf;
	t->rx->data_len = t->rx_dsl;
	return isd_init_rx_pdu(c, t->rx);
}

/* Reads what the socket has; returns 0 (would block or budget spent), or -errno. */
static int
tcp_rx(struct isd_ictx *c)
{
	struct isd_itcp *t = &c->tcp;
	int budget = RX_PDU_BUDGET;

	while (t->fd >= 0 && budget > 0) {
		struct iovec v[70];
		uint32_t need, hdr_len;
		ssize_t n;
		int cnt = 0;
		int rc;

		switch (t->rx_state) {
		case ISD_ITCP_RX_BHS:
		case ISD_ITCP_RX_HDR:
			hdr_len = ISD_BHS_LEN;
			if (t->rx_got >= ISD_BHS_LEN)
				hdr_len += isd_bhs_ahs_len(t->hbuf) + (t->hdgst ? 4 : 0);
			if (t->rx_got < hdr_len) {
				n = recv(t->fd, t->hbuf + t->rx_got, hdr_len - t->rx_got, 0);
				if (n == 0)
					goto eof;
				if (n < 0)
					goto rd_err;
				t->rx_got += (uint32_t)n;
				continue; /* recompute hdr_len once the BHS is complete */
			}
			rc = rx_header_done(c);
			if (rc < 0)
				return rc;
			t->rx_got = 0;
			if (t->rx_dsl == 0) {
				budget--;
				rc = rx_pdu_done(c);
				if (rc < 0)
					return rc;
				continue;
			}
			t->rx_state = ISD_ITCP_RX_DATA;
			continue;
		case ISD_ITCP_RX_DATA: {
			uint32_t data_left = t->rx_dsl - t->rx_data_got;
			uint32_t trail_got = 0, chunk;

			if (t->rx_data_got > t->rx_dsl) {
				trail_got = t->rx_data_got - t->rx_dsl;
				data_left = 0;
			}
			if (data_left > 0) {
				if (t->rx_discard) {
					/* discarded payload (task gone): through rxbuf in pieces */
					chunk = data_left < t->rxbuf_cap ? data_left : t->rxbuf_cap;
					v[0].iov_base = t->rxbuf;
					v[0].iov_len = chunk;
					cnt = 1;
				} else if (t->rx_task != NULL) {
					uint32_t covered;

					cnt = isd_iov_slice_upto(t->rx_task->t->iov,
								 t->rx_task->t->iovcnt,
								 t->rx_offset + t->rx_data_got,
								 data_left, v, 64, &covered);
					if (covered == 0) {
						isd_init_set_error(c, "Data-In beyond the buffer");
						return -EPROTO;
					}
					chunk = covered;
				} else {
					v[0].iov_base = t->rxbuf + t->rx_data_got;
					v[0].iov_len = data_left;
					chunk = data_left;
					cnt = 1;
				}
				if (chunk < data_left)
					goto do_read; /* more of the data first */
			}
			need = t->rx_trail_len - trail_got;
			if (need > 0) {
				v[cnt].iov_base = t->rx_trail + trail_got;
				v[cnt].iov_len = need;
				cnt++;
			}
			/* and the next BHS, to save a system call per PDU */
			v[cnt].iov_base = t->hbuf;
			v[cnt].iov_len = ISD_BHS_LEN;
			cnt++;
		do_read:
			n = readv(t->fd, v, cnt);
			if (n == 0)
				goto eof;
			if (n < 0)
				goto rd_err;
			{
				uint32_t got = (uint32_t)n, total = t->rx_dsl + t->rx_trail_len;
				uint32_t pos = t->rx_data_got;
				uint32_t use = total - pos < got ? total - pos : got;

				t->rx_data_got += use;
				t->rx_got = got - use; /* bytes of the next BHS */
			}
			if (t->rx_data_got < t->rx_dsl + t->rx_trail_len)
				continue;
			t->rx_state = ISD_ITCP_RX_BHS;
			budget--;
			rc = rx_pdu_done(c);
			if (rc < 0)
				return rc;
			continue;
		}
		}
	}
	return 0;
eof:
	isd_init_set_error(c, "%s:%u closed the connection", c->url.host, c->url.port);
	return -ECONNRESET;
rd_err:
	if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
		return 0;
	{
		int e = errno;

		isd_init_set_error(c, "receive from %s:%u failed: %s", c->url.host, c->url.port,
				   strerror(e));
		return e == ECONNRESET ? -ECONNRESET : -e;
	}
}

static int
tcp_service(struct isd_ictx *c, int revents)
{
	struct isd_itcp *t = &c->tcp;
	int rc;

	if (t->connecting) {
		int err = 0;
		socklen_t len = sizeof(err);

		if (!(revents & (POLLOUT | POLLERR | POLLHUP)))
			return 0;
		if (getsockopt(t->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
			err = errno;
		if (err == EINPROGRESS || err == EALREADY)
			return 0;
		t->connecting = false;
		if (err != 0) {
			/* Try the host's other addresses (localhost: 127.0.0.1, then ::1). */
			close(t->fd);
			t->fd = -1;
			if (connect_next(c, -err) == 0)
				return 0;
		} else {
			freeaddrinfo(t->ai_list);
			t->ai_list = NULL;
		}
		isd_init_connected(c, -err);
		if (t->fd >= 0 && !TAILQ_EMPTY(&t->txq))
			return tcp_flush(c);
		return 0;
	}
	if (revents & (POLLIN | POLLERR | POLLHUP)) {
		rc = tcp_rx(c);
		if (rc < 0)
			return rc;
	}
	/* Replies and new commands queued while receiving go out now, batched. */
	if (t->fd >= 0 && !TAILQ_EMPTY(&t->txq) && (!t->want_write || (revents & POLLOUT)))
		return tcp_flush(c);
	return 0;
}

const struct isd_init_xport_ops isd_init_tcp_ops = {
    .name = "tcp",
    .connect = tcp_connect,
    .disconnect = tcp_disconnect,
    .queue = tcp_queue,
    .detach_task = tcp_detach_task,
    .enable = tcp_enable,
    .get_fd = tcp_get_fd,
    .which_events = tcp_which_events,
    .service = tcp_service,
};
