/*
 * The TCP datamover proper: one nonblocking socket per connection on its
 * reactor, a receive state machine that frames PDUs (BHS, AHS, header
 * digest, data, padding, data digest), a FIFO of outgoing items written with
 * sendmsg, and R2T/Data-Out for solicited data.
 *
 * Both roles run here. A passive connection (a target's: tcp_portal.c
 * accepted it) sends Data-In and R2Ts and takes solicited Data-Out straight
 * into the task's buffer. An active one (an initiator's: tcp_connect opened
 * it) sends Data-Out and takes Data-In payload straight into the task's
 * buffer at its BufferOffset, once the core has checked the header.
 *
 * Everything here runs on the connection's reactor thread. Upcalls into the
 * core (isd_dm_*_notify) are made only from reactor callbacks, never from
 * inside an op the core called; every upcall may re-enter the ops (the core
 * may queue PDUs, clean tasks up or terminate from inside it), so the state
 * is made consistent before each upcall and re-checked after it.
 *
 * Lifetime: the isd_conn (and this state inside it) lives until free_conn,
 * which the core calls only after isd_dm_terminate_notify, and that notify
 * is always deferred to a timer of its own. So no callback here can see its
 * memory vanish under it.
 */
#include "dm/tcp/tcp.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <stddef.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <unistd.h>

#include "dm/tcp/tcp_int.h"
#include "iscsi/iscsi.h"
#include "util/crc32c.h"
#include "util/endian.h"
#include "util/iov.h"
#include "util/log.h"
#include "util/mem.h"
#include "util/str.h"

static void tx_flush(struct isd_tcp_conn *tc);
static void close_now(struct isd_tcp_conn *tc, int reason);
static void connect_done(struct isd_tcp_conn *tc);
static bool rx_staged(const struct isd_tcp_conn *tc);

/* Skipped data segments land here; the content is never looked at. */
static __thread uint8_t g_discard[65536];

/* Send queue limit (max_tx_queue_bytes), set before the reactors run or with them paused. */
static uint64_t g_txq_limit = ISD_TCP_TXQ_DEFAULT;

/*
 * The counters of isd_tcp_get_stats, one block per thread that runs
 * connections: each is written by its own thread only (a connection lives on
 * one reactor, so what it adds to tx_queued it takes away there too), with
 * relaxed atomic loads and stores, no locked instruction, and no cache line
 * shared between reactors on the data path. A block stays on the list when
 * its thread ends (its figures still count).
 */
struct tcp_tstats {
	uint64_t rx_paused;
	uint64_t tx_queued_bytes;
	uint64_t tx_queued_peak;
	uint64_t txq_drops;
	LIST_ENTRY(tcp_tstats) link;
};

static pthread_mutex_t g_tstats_lock = PTHREAD_MUTEX_INITIALIZER;
static LIST_HEAD(, tcp_tstats) g_tstats = LIST_HEAD_INITIALIZER(g_tstats);
static __thread struct tcp_tstats *t_tstats;
static struct tcp_tstats g_tstats_oom;  /* if a block cannot be had: shared, approximate */

static struct tcp_tstats *
tstats(void)
{
	struct tcp_tstats *st = t_tstats;

	if (st != NULL)
		return st;
	st = calloc(1, sizeof(*st));
	if (st == NULL)
		return t_tstats = &g_tstats_oom;
	pthread_mutex_lock(&g_tstats_lock);
	LIST_INSERT_HEAD(&g_tstats, st, link);
	pthread_mutex_unlock(&g_tstats_lock);
	return t_tstats = st;
}

static inline void
tst_add(uint64_t *p, uint64_t n)
{
	__atomic_store_n(p, __atomic_load_n(p, __ATOMIC_RELAXED) + n, __ATOMIC_RELAXED);
}

static inline void
tst_max(uint64_t *p, uint64_t v)
{
	if (v > __atomic_load_n(p, __ATOMIC_RELAXED))
		__atomic_store_n(p, v, __ATOMIC_RELAXED);
}

int
isd_tcp_set_max_tx_queue(uint64_t bytes)
{
	if (bytes < ISD_TCP_TXQ_MIN || bytes > ISD_TCP_TXQ_MAX)
		return -EINVAL;
	g_txq_limit = bytes;
	return 0;
}

void
isd_tcp_get_stats(struct isd_tcp_stats *out)
{
	struct tcp_tstats *st;
	uint64_t peak;

	memset(out, 0, sizeof(*out));
	pthread_mutex_lock(&g_tstats_lock);
	LIST_FOREACH(st, &g_tstats, link) {
		out->rx_paused += __atomic_load_n(&st->rx_paused, __ATOMIC_RELAXED);
		out->tx_queued_bytes += __atomic_load_n(&st->tx_queued_bytes, __ATOMIC_RELAXED);
		peak = __atomic_load_n(&st->tx_queued_peak, __ATOMIC_RELAXED);
		if (peak > out->tx_queued_peak)
			out->tx_queued_peak = peak;
		out->txq_drops += __atomic_load_n(&st->txq_drops, __ATOMIC_RELAXED);
	}
	pthread_mutex_unlock(&g_tstats_lock);
}

int
isd_tcp_stats_list(struct isd_stat *out, int max)
{
	struct isd_tcp_stats st;
	int n = 0;

	isd_tcp_get_stats(&st);
#define ADD(f) isd_stat_add(out, max, &n, #f, st.f)
	ADD(rx_paused);
	ADD(tx_queued_bytes);
	ADD(tx_queued_peak);
	ADD(txq_drops);
#undef ADD
	return n;
}

static struct isd_tcp_conn *
tconn(struct isd_dm_conn *c)
{
	return isd_dmc_priv(c);
}

/* ---------------------------------------------------------------- events */

static void
update_events(struct isd_tcp_conn *tc)
{
	uint32_t want = 0;
	int rc;

	if (tc->state == ISD_TCP_CLOSED || tc->state == ISD_TCP_CONNECTING || tc->fd < 0)
		return;
	if (tc->state == ISD_TCP_OPEN && !tc->rx_paused)
		want |= EPOLLIN;
	if (tc->tx_blocked && !TAILQ_EMPTY(&tc->txq))
		want |= EPOLLOUT;
	if (want == tc->ev_mask)
		return;
	rc = isd_reactor_mod_fd(tc->r, tc->fd, want);
	if (rc < 0) {
		isd_log_warn("tcp %s: epoll update failed: %s", tc->peer, strerror(-rc));
		close_now(tc, rc);
		return;
	}
	tc->ev_mask = want;
}

static void
kick(struct isd_tcp_conn *tc)
{
	/*
	 * Written from the loop, not from the op that queued: no upcall inside an
	 * op. At the end of the turn, so that what the turn's deferred calls queue
	 * (a store's completions: isd_bstore_complete_later) leaves in the same
	 * sendmsg as the rest, not one turn later.
	 */
	if (!tc->tx_blocked && !tc->kick_timer.armed)
		isd_reactor_at_turn_end(tc->r, &tc->kick_timer);
}

static void
kick_cb(void *arg)
{
	tx_flush(arg);
}

static void
notify_cb(void *arg)
{
	struct isd_tcp_conn *tc = arg;

	tc->notify_pending = false;
	isd_log_dbg("tcp", "%s: terminate notify (%d)", tc->peer, tc->term_reason);
	/* The core may free the connection inside: nothing after this. */
	isd_dm_terminate_notify(tc->conn, tc->term_reason);
}

static void
flush_timeout_cb(void *arg)
{
	struct isd_tcp_conn *tc = arg;

	isd_log_dbg("tcp", "%s: flush timed out with %u items queued", tc->peer, tc->txq_len);
	close_now(tc, 0);
}

/* ---------------------------------------------------------------- tx items */

/* Counts the queued items that point at a task (task_forget looks for them only
 * when there are some). An item points at its task only while the task lives:
 * it leaves the queue, or lets go (tx_detach), before the core frees the task. */
static void
task_tx_ref(struct isd_dm_task *t, int d)
{
	struct isd_tcp_task *tt = isd_dmt_priv(t);

	tt->tx_refs = (uint32_t)((int)tt->tx_refs + d);
}

/*
 * A send item, zeroed up to its iovec array: that array is most of the item
 * (1 KiB of 1.2), each entry is written before it is read, and zeroing it
 * cost every command some 40 stores.
 */
static struct isd_tcp_tx *
tx_new(struct isd_tcp_conn *tc)
{
	struct isd_tcp_tx *tx = isd_mem_alloc(sizeof(*tx));

	(void)tc;
	if (tx != NULL)
		memset(tx, 0, offsetof(struct isd_tcp_tx, iov));
	return tx;
}

/* Frees a spent item and what it owns. */
static void
tx_free(struct isd_tcp_conn *tc, struct isd_tcp_tx *tx)
{
	(void)tc;
	if (tx->pdu != NULL)
		isd_pdu_free(tx->pdu);
	free(tx->detached_buf);
	isd_mem_free(tx);
}

/*
 * What a queue may hold at most, whatever happens: reading stops at the
 * limit, so after it come only the replies to the PDUs read before the pause
 * (a couple of the largest PDUs we send here), the core's own pings, and the
 * responses of commands that waited for a CmdSN gap to fill, which one PDU
 * can release all at once (a whole command window, small PDUs each).
 */
static uint64_t
txq_hard_limit(struct isd_tcp_conn *tc)
{
	uint64_t dsl = isd_dmc_params(tc->conn)->max_xmit_dsl;
	uint64_t pdu, window;

	if (dsl < 8192 || dsl > ISD_MAX_DSL)
		dsl = dsl > ISD_MAX_DSL ? ISD_MAX_DSL : 8192;
	pdu = sizeof(struct isd_tcp_tx) + ISD_BHS_LEN + ISD_MAX_AHS_LEN + dsl;
	window = (uint64_t)ISD_TCP_TXQ_WINDOW * (sizeof(struct isd_tcp_tx) + ISD_BHS_LEN + 256);
	return 2 * g_txq_limit + 2 * pdu + window;
}

/*
 * Queues an item and counts the memory it owns (the item, and the header,
 * AHS and data of its PDU; a Data-In's task buffer is the task's, bounded by
 * the outstanding commands). Past the limit the connection stops being read:
 * its peer must take our replies before it may send more requests. Past the
 * hard ceiling it is dropped. Returns 0, or -ENOBUFS/-ENOTCONN (closed, tx freed).
 */
static int
tx_enqueue(struct isd_tcp_conn *tc, struct isd_tcp_tx *tx)
{
	uint64_t n = sizeof(*tx);

	if (tx->pdu != NULL) {
		n += ISD_BHS_LEN + tx->pdu->ahs_len;
		if (tx->pdu->data_iov == NULL)
			n += tx->pdu->data_len; /* borrowed data is the task's */
	}
	tx->qbytes = (uint32_t)n;
	TAILQ_INSERT_TAIL(&tc->txq, tx, link);
	if (tx->task != NULL)
		task_tx_ref(tx->task, 1);
	tc->txq_len++;
	tc->txq_bytes += n;
	tst_add(&tstats()->tx_queued_bytes, n);
	tst_max(&tstats()->tx_queued_peak, tc->txq_bytes);
	if (tc->conn->active) {
		/*
		 * An initiator's queue is bounded by its own commands (queue depth,
		 * their Data-Out), not by the peer; and it must go on reading the
		 * responses that let it send more.
		 */
		kick(tc);
		return 0;
	}
	if (tc->txq_bytes > txq_hard_limit(tc)) {
		tst_add(&tstats()->txq_drops, 1);
		isd_log_warn("tcp %s: %llu bytes queued for a peer that does not read, dropping "
			     "the connection",
			     tc->peer, (unsigned long long)tc->txq_bytes);
		close_now(tc, -ENOBUFS);
		return -ENOBUFS;
	}
	if (!tc->rx_paused && tc->txq_bytes > g_txq_limit && tc->state == ISD_TCP_OPEN) {
		tc->rx_paused = true;
		tst_add(&tstats()->rx_paused, 1);
		isd_log_dbg("tcp", "%s: %llu bytes queued, reading paused", tc->peer,
			    (unsigned long long)tc->txq_bytes);
		update_events(tc);
		if (tc->state == ISD_TCP_CLOSED)
			return -ENOTCONN;       /* epoll failed: closed, tx freed */
	}
	kick(tc);
	return 0;
}

/*
 * Takes an item off the queue and frees it. Below half the limit reading
 * resumes; the caller updates the event mask (not here: this runs inside
 * loops over the queue).
 */
static void
tx_unlink(struct isd_tcp_conn *tc, struct isd_tcp_tx *tx)
{
	TAILQ_REMOVE(&tc->txq, tx, link);
	if (tx->task != NULL)
		task_tx_ref(tx->task, -1);
	tc->txq_len--;
	tc->txq_bytes -= tx->qbytes;
	tst_add(&tstats()->tx_queued_bytes, -(uint64_t)tx->qbytes);
	tx_free(tc, tx);
	if (tc->rx_paused && tc->txq_bytes <= g_txq_limit / 2) {
		tc->rx_paused = false;
		isd_log_dbg("tcp", "%s: send queue drained, reading again", tc->peer);
		if (rx_staged(tc))
			isd_reactor_defer(tc->r, &tc->rx_timer);
	}
}

/* Appends trailing padding and data digest entries (the data entries are iov[first..]). */
static void
tx_add_trail(struct isd_tcp_tx *tx, int first, uint32_t dsl)
{
	uint32_t pad = isd_pad4(dsl);
	uint32_t tlen = pad;

	memset(tx->trail, 0, sizeof(tx->trail));
	if (tx->ddgst && dsl > 0) {
		uint32_t crc =
		    isd_pdu_data_digest(tx->iov + first, tx->iovcnt - first, tx->trail, pad);

		isd_pdu_put_digest(tx->trail + pad, crc);
		tlen += ISD_TCP_DIGEST_LEN;
	}
	if (tlen > 0) {
		tx->iov[tx->iovcnt].iov_base = tx->trail;
		tx->iov[tx->iovcnt].iov_len = tlen;
		tx->iovcnt++;
	}
}

/* Header entries: BHS, AHS, header digest. */
static void
tx_add_header(struct isd_tcp_tx *tx, const uint8_t *ahs, uint32_t ahs_len)
{
	uint32_t hlen = ISD_BHS_LEN;

	tx->iovcnt = 0;
	tx->iov_pos = 0;
	if (tx->hdgst)
		isd_pdu_put_digest(tx->hdr + ISD_BHS_LEN,
				   isd_pdu_hdr_digest(tx->hdr, ahs, ahs_len));
	if (ahs_len == 0) {
		if (tx->hdgst)
			hlen += ISD_TCP_DIGEST_LEN;
		tx->iov[0].iov_base = tx->hdr;
		tx->iov[0].iov_len = hlen;
		tx->iovcnt = 1;
		return;
	}
	tx->iov[0].iov_base = tx->hdr;
	tx->iov[0].iov_len = ISD_BHS_LEN;
	tx->iov[1].iov_base = (void *)ahs;
	tx->iov[1].iov_len = ahs_len;
	tx->iovcnt = 2;
	if (tx->hdgst) {
		tx->iov[2].iov_base = tx->hdr + ISD_BHS_LEN;
		tx->iov[2].iov_len = ISD_TCP_DIGEST_LEN;
		tx->iovcnt = 3;
	}
}

/* Frames a whole control PDU (header, data, trail). Returns 0 or -EINVAL. */
static int
tx_build_pdu(struct isd_tcp_tx *tx, struct isd_pdu *pdu)
{
	int first;

	memcpy(tx->hdr, pdu->bhs, ISD_BHS_LEN);
	/* The framing we emit must match the lengths we send, whatever the BHS said. */
	tx->hdr[4] = (uint8_t)(pdu->ahs_len / 4);
	isd_bhs_set_dsl(tx->hdr, pdu->data_len);
	tx_add_header(tx, pdu->ahs, pdu->ahs_len);
	first = tx->iovcnt;
	if (pdu->data_len > 0) {
		if (pdu->data_iov != NULL) {
			uint32_t covered;
			int n = isd_iov_slice_upto(pdu->data_iov, pdu->data_iovcnt, 0,
						   pdu->data_len, tx->iov + first,
						   ISD_TCP_TX_IOV_MAX - first - 1, &covered);

			if (covered != pdu->data_len)
				return -EINVAL;
			tx->iovcnt += n;
		} else {
			tx->iov[first].iov_base = pdu->data;
			tx->iov[first].iov_len = pdu->data_len;
			tx->iovcnt++;
		}
	}
	tx_add_trail(tx, first, pdu->data_len);
	tx->built = true;
	tx->last = true;
	return 0;
}

/*
 * Active: builds the next Data-Out of a put_data job, at most `max` bytes (the
 * target's MaxRecvDataSegmentLength).
 */
static int
tx_build_dataout(struct isd_tcp_tx *tx, uint32_t max)
{
	uint32_t len = tx->end_off - tx->next_off, covered;
	bool final;
	int n;

	if (len > max)
		len = max;
	n = isd_iov_slice_upto(tx->xiov, tx->xiovcnt, tx->next_off, len, tx->iov + 1,
			       ISD_TCP_TX_IOV_MAX - 2, &covered);
	if (covered == 0)
		return -EINVAL;
	len = covered;
	final = tx->next_off + len == tx->end_off;
	isd_bhs_dataout(tx->hdr, isd_dmt_lun(tx->task), isd_dmt_itt(tx->task), tx->ttt,
			tx->datasn++, tx->next_off, len, final);
	tx_add_header(tx, NULL, 0);
	tx->iovcnt = 1 + n;
	tx_add_trail(tx, 1, len);
	tx->next_off += len;
	tx->data_done = final;
	tx->last = final;
	tx->built = true;
	return 0;
}

/*
 * Builds the next wire PDU of a put_data job: a Data-In of at most
 * MaxRecvDataSegmentLength (the initiator's), or the SCSI Response after the
 * data. Digests are computed here, with the settings taken at enqueue time.
 */
static int
tx_build_datain(struct isd_tcp_conn *tc, struct isd_tcp_tx *tx)
{
	struct isd_tcp_task *tt = isd_dmt_priv(tx->task);
	uint32_t max = isd_dmc_params(tc->conn)->max_xmit_dsl;
	uint32_t len, covered;
	bool final;
	int n;

	if (tx->data_done) {
		if (tx->pdu == NULL) {
			/* Nothing to write (no data, no response): done on reaching the head. */
			tx->iovcnt = 0;
			tx->iov_pos = 0;
			tx->built = true;
			tx->last = true;
			return 0;
		}
		/* ExpDataSN of a SCSI Response: the Data-Ins sent (RFC 7143 §11.4.6). */
		if (isd_bhs_opcode(tx->pdu->bhs) == ISD_OP_SCSI_RSP && tx->pdu->bhs[2] == 0)
			put_be32(tx->pdu->bhs + 36, tt->datain_sn);
		return tx_build_pdu(tx, tx->pdu);
	}
	if (max < 512 || max > ISD_MAX_DSL)
		max = 8192;
	if (tc->conn->active)
		return tx_build_dataout(tx, max);
	len = tx->end_off - tx->next_off;
	if (len > max)
		len = max;
	tx->iovcnt = 1;
	n = isd_iov_slice_upto(tx->xiov, tx->xiovcnt, tx->next_off, len, tx->iov + 1,
			       ISD_TCP_TX_IOV_MAX - 2, &covered);
	if (covered == 0)
		return -EINVAL;         /* the buffer shrank under us: checked at put_data */
	len = covered;                  /* a fragmented buffer gives shorter PDUs */
	final = tx->next_off + len == tx->end_off;
	isd_tcp_frame_datain(tx->hdr, isd_dmt_itt(tx->task), isd_dmt_lun(tx->task),
			     tt->datain_sn++, tx->next_off, len, final);
	if (final && tx->collapse)
		isd_tcp_frame_collapse(tx->hdr, tx->pdu->bhs);
	else
		isd_dm_stamp_sn(tc->conn, tx->hdr);
	tx_add_header(tx, NULL, 0);
	tx->iovcnt = 1 + n;
	tx_add_trail(tx, 1, len);
	tx->next_off += len;
	if (final) {
		tx->data_done = true;
		if (tx->collapse) {
			isd_pdu_free(tx->pdu);
			tx->pdu = NULL;
		}
	}
	tx->last = final && tx->pdu == NULL;
	tx->built = true;
	return 0;
}


/* Advances the item's iovec past n written bytes. Returns true once all of it is written. */
static bool
tx_advance(struct isd_tcp_tx *tx, size_t n)
{
	while (tx->iov_pos < tx->iovcnt) {
		struct iovec *v = &tx->iov[tx->iov_pos];

		if (n < v->iov_len) {
			v->iov_base = (char *)v->iov_base + n;
			v->iov_len -= n;
			return false;
		}
		n -= v->iov_len;
		tx->iov_pos++;
	}
	return true;
}

/*
 * Writes queued items: as many wire PDUs as fit one sendmsg (ISD_TCP_TX_GATHER
 * iovec entries), several items at a time, within the byte budget. The
 * accounting of a write is done for every item it covered before any upcall:
 * a completion (put_data's notify) may make the core queue or abandon items,
 * so finished items leave the queue first and are notified after.
 */
static void
tx_flush(struct isd_tcp_conn *tc)
{
	size_t budget = ISD_TCP_TX_BYTE_BUDGET;

	while (tc->state != ISD_TCP_CLOSED && !TAILQ_EMPTY(&tc->txq)) {
		struct iovec iov[ISD_TCP_TX_GATHER];
		struct isd_tcp_tx *items[ISD_TCP_TX_GATHER], *tx;
		struct msghdr m = {0};
		int niov = 0, nitems = 0, rc;
		size_t want = 0, n;
		ssize_t w;

		/* gather */
		TAILQ_FOREACH(tx, &tc->txq, link) {
			int k;

			if (!tx->built) {
				rc = tx->kind == ISD_TCP_TX_DATAIN ? tx_build_datain(tc, tx) : -EINVAL;
				if (rc < 0) {
					isd_log_warn("tcp %s: cannot frame a data PDU (%s)", tc->peer,
						     strerror(-rc));
					close_now(tc, rc);
					return;
				}
			}
			k = tx->iovcnt - tx->iov_pos;
			if (niov > 0 && (niov + k > ISD_TCP_TX_GATHER || want >= budget))
				break;
			memcpy(iov + niov, tx->iov + tx->iov_pos, (size_t)k * sizeof(*iov));
			niov += k;
			for (int e = tx->iov_pos; e < tx->iovcnt; e++)
				want += tx->iov[e].iov_len;
			items[nitems++] = tx;
			/* its next wire PDU is built only once this one is out */
			if (!tx->last)
				break;
		}
		n = 0;
		if (niov > 0) {
			m.msg_iov = iov;
			m.msg_iovlen = (size_t)niov;
			w = sendmsg(tc->fd, &m, MSG_NOSIGNAL | MSG_DONTWAIT);
			if (w < 0) {
				if (errno == EINTR)
					continue;
				if (errno == EAGAIN || errno == EWOULDBLOCK) {
					tc->tx_blocked = true;
					update_events(tc);
					return;
				}
				rc = -errno;
				isd_log_dbg("tcp", "%s: send: %s", tc->peer, strerror(-rc));
				close_now(tc, rc);
				return;
			}
			n = (size_t)w;
			budget = n > budget ? 0 : budget - n;
		}
		/* account: each covered item advances; finished ones leave the queue */
		for (int i = 0; i < nitems; i++) {
			size_t left = 0;

			tx = items[i];
			for (int e = tx->iov_pos; e < tx->iovcnt; e++)
				left += tx->iov[e].iov_len;
			if (n < left) {
				if (n > 0) {
					tx->started = true;
					(void)tx_advance(tx, n);
				}
				n = 0;
				break;
			}
			n -= left;
			tx->iov_pos = tx->iovcnt;
			/* one wire PDU is out */
			tx->built = false;
			tx->started = false;
			if (tx->last) {
				if (tx->kind == ISD_TCP_TX_DATAIN && !tx->detached)
					tc->tx_done[tc->tx_ndone++] = tx->task;
				tx_unlink(tc, tx);
			}
		}
		/* notify, in order; the core may terminate, queue or abandon tasks inside
		 * (task_forget clears an abandoned task's entry) */
		for (uint32_t i = 0; i < tc->tx_ndone; i++) {
			struct isd_dm_task *t = tc->tx_done[i];

			tc->tx_done[i] = NULL;
			if (t != NULL && tc->state != ISD_TCP_CLOSED)
				isd_dm_data_completion_notify(tc->conn, t, 0);
		}
		tc->tx_ndone = 0;
		if (budget == 0)
			break;
	}
	if (tc->state == ISD_TCP_CLOSED)
		return;
	if (TAILQ_EMPTY(&tc->txq)) {
		tc->tx_blocked = false;
		if (tc->state == ISD_TCP_FLUSHING) {
			close_now(tc, 0);
			return;
		}
		update_events(tc);
		return;
	}
	/* Budget spent with more queued: come back on the next loop iteration. */
	tc->tx_blocked = false;
	update_events(tc);
	kick(tc);
}

/* Copies the unwritten rest of a half-sent item's current PDU aside (see task_forget). */
static int
tx_detach(struct isd_tcp_conn *tc, struct isd_tcp_tx *tx)
{
	size_t total = 0, off = 0;
	uint8_t *buf;

	for (int i = tx->iov_pos; i < tx->iovcnt; i++)
		total += tx->iov[i].iov_len;
	buf = malloc(total > 0 ? total : 1);
	if (buf == NULL)
		return -ENOMEM;
	for (int i = tx->iov_pos; i < tx->iovcnt; i++) {
		memcpy(buf + off, tx->iov[i].iov_base, tx->iov[i].iov_len);
		off += tx->iov[i].iov_len;
	}
	if (tx->detached_buf == NULL) {
		/* The copy is queued memory now (at most one PDU per abandoned item). */
		tx->qbytes += (uint32_t)total;
		tc->txq_bytes += total;
		tst_add(&tstats()->tx_queued_bytes, total);
	}
	free(tx->detached_buf);
	tx->detached_buf = buf;
	tx->iov[0].iov_base = buf;
	tx->iov[0].iov_len = total;
	tx->iovcnt = 1;
	tx->iov_pos = 0;
	tx->detached = true;
	tx->last = true;
	if (tx->task != NULL)
		task_tx_ref(tx->task, -1);
	tx->task = NULL;
	tx->xiov = NULL;
	return 0;
}

/* ---------------------------------------------------------------- close */

static void
rx_drop(struct isd_tcp_conn *tc)
{
	if (tc->rx_pdu != NULL) {
		free(tc->rx_pdu->ahs);
		isd_pdu_free(tc->rx_pdu);
		tc->rx_pdu = NULL;
	}
	free(tc->rx_ahs);
	tc->rx_ahs = NULL;
	tc->rx_ahs_len = 0;
	tc->rx_state = ISD_TCP_RX_BHS;
	tc->rx_got = 0;
	tc->rx_stg_off = tc->rx_stg_len = 0;     /* staged bytes belong to the stream gone */
	tc->rx_tt = NULL;
	tc->rx_iov = NULL;
	tc->rx_dt = NULL;
}

static void
r2t_forget_all(struct isd_tcp_conn *tc)
{
	struct isd_tcp_task *tt;

	while ((tt = TAILQ_FIRST(&tc->r2t_wait)) != NULL) {
		TAILQ_REMOVE(&tc->r2t_wait, tt, wait_link);
		tt->waiting = false;
	}
	for (int i = 0; i < ISD_TCP_TTT_SLOTS; i++) {
		tc->ttt[i].ttt = ISD_RSVD_TAG;
		tc->ttt[i].tt = NULL;
	}
	tc->ttt_used = 0;
}

/*
 * Closes the socket now and schedules the one terminate notify. Safe to call
 * from anywhere, more than once.
 */
static void
close_now(struct isd_tcp_conn *tc, int reason)
{
	struct isd_tcp_tx *tx;

	if (tc->state == ISD_TCP_CLOSED)
		return;
	tc->state = ISD_TCP_CLOSED;
	isd_reactor_timer_stop(tc->r, &tc->connect_timer);
	isd_reactor_timer_stop(tc->r, &tc->rx_timer);
	if (tc->ai_list != NULL) {
		freeaddrinfo(tc->ai_list);
		tc->ai_list = NULL;
		tc->ai_next = NULL;
	}
	isd_reactor_timer_stop(tc->r, &tc->flush_timer);
	isd_reactor_timer_stop(tc->r, &tc->kick_timer);
	if (tc->fd >= 0) {
		if (tc->registered)
			isd_reactor_del_fd(tc->r, tc->fd);
		tc->registered = false;
		if (reason == 0) {
			/*
			 * Orderly close after a flush: unread input would make close()
			 * send a RST, which can destroy our last PDUs (a Logout
			 * Response) before the peer reads them. Drain what is there.
			 */
			for (int i = 0; i < 16; i++) {
				if (recv(tc->fd, g_discard, sizeof(g_discard), MSG_DONTWAIT) <= 0)
					break;
			}
		}
		shutdown(tc->fd, SHUT_RDWR);
		close(tc->fd);
		tc->fd = -1;
	}
	while ((tx = TAILQ_FIRST(&tc->txq)) != NULL)
		tx_unlink(tc, tx);
	tc->rx_paused = false;
	isd_pdu_free(tc->rx_spare);
	tc->rx_spare = NULL;
	rx_drop(tc);
	r2t_forget_all(tc);
	tc->term_reason = reason;
	tc->notify_pending = true;
	isd_reactor_defer(tc->r, &tc->notify_timer);
	isd_log_dbg("tcp", "%s: closed (%d)", tc->peer, reason);
}

/* ---------------------------------------------------------------- R2T */

static int
ttt_alloc(struct isd_tcp_conn *tc, struct isd_tcp_task *tt, int idx, uint32_t *ttt)
{
	for (int n = 0; n < ISD_TCP_TTT_SLOTS; n++) {
		uint32_t i = (tc->ttt_gen + (uint32_t)n) % ISD_TCP_TTT_SLOTS;
		uint32_t v;

		if (tc->ttt[i].ttt != ISD_RSVD_TAG)
			continue;
		/*
		 * The low byte is the slot, the rest a generation counter, so a TTT
		 * is not reused soon after it was retired; 0xffffffff is reserved.
		 */
		tc->ttt_gen++;
		v = ((tc->ttt_gen & 0xffffffu) << 8) | i;
		if (v == ISD_RSVD_TAG)
			v = i;
		tc->ttt[i].ttt = v;
		tc->ttt[i].tt = tt;
		tc->ttt[i].r2t_idx = idx;
		tc->ttt_used++;
		*ttt = v;
		return 0;
	}
	return -EBUSY;
}

static void
ttt_free(struct isd_tcp_conn *tc, uint32_t ttt)
{
	struct isd_tcp_ttt_slot *s = &tc->ttt[ttt % ISD_TCP_TTT_SLOTS];

	if (s->ttt != ttt)
		return;
	s->ttt = ISD_RSVD_TAG;
	s->tt = NULL;
	tc->ttt_used--;
}

static struct isd_tcp_ttt_slot *
ttt_lookup(struct isd_tcp_conn *tc, uint32_t ttt)
{
	struct isd_tcp_ttt_slot *s = &tc->ttt[ttt % ISD_TCP_TTT_SLOTS];

	if (ttt == ISD_RSVD_TAG || s->ttt != ttt || s->tt == NULL)
		return NULL;
	return s;
}

static uint32_t
r2t_limit(struct isd_tcp_conn *tc)
{
	uint32_t n = isd_dmc_params(tc->conn)->max_outstanding_r2t;

	if (n == 0)
		n = 1;
	return n > ISD_TCP_TASK_R2T_MAX ? ISD_TCP_TASK_R2T_MAX : n;
}

static uint32_t
r2t_outstanding(const struct isd_tcp_task *tt)
{
	uint32_t n = 0;

	for (int i = 0; i < ISD_TCP_TASK_R2T_MAX; i++)
		n += tt->r2t[i].in_use;
	return n;
}

/*
 * Issues R2Ts for the next parts of a get_data, each at most MaxBurstLength,
 * while fewer than MaxOutstandingR2T are in flight. Waits on the connection's
 * list when the TTT table is full. Returns 0 or -ENOMEM.
 */
static int
r2t_issue(struct isd_tcp_conn *tc, struct isd_tcp_task *tt)
{
	uint32_t burst = isd_dmc_params(tc->conn)->max_burst_length;
	uint32_t limit = r2t_limit(tc);

	if (burst < 512 || burst > ISD_MAX_DSL)
		burst = 262144;
	while (tc->state == ISD_TCP_OPEN && tt->get_next < tt->get_end &&
	       r2t_outstanding(tt) < limit) {
		struct isd_tcp_r2t *r2t = NULL;
		struct isd_tcp_tx *tx;
		uint32_t len = tt->get_end - tt->get_next;
		uint32_t ttt;
		int idx;

		for (idx = 0; idx < ISD_TCP_TASK_R2T_MAX; idx++) {
			if (!tt->r2t[idx].in_use) {
				r2t = &tt->r2t[idx];
				break;
			}
		}
		if (r2t == NULL)
			break;
		if (len > burst)
			len = burst;
		tx = tx_new(tc);
		if (tx == NULL)
			return -ENOMEM;
		if (ttt_alloc(tc, tt, idx, &ttt) < 0) {
			tx_free(tc, tx);
			if (!tt->waiting) {
				tt->waiting = true;
				TAILQ_INSERT_TAIL(&tc->r2t_wait, tt, wait_link);
			}
			return 0;
		}
		r2t->ttt = ttt;
		r2t->offset = tt->get_next;
		r2t->length = len;
		r2t->received = 0;
		r2t->next_datasn = 0;
		r2t->in_use = true;
		tx->kind = ISD_TCP_TX_R2T;
		tx->task = tt->task;
		tx->hdgst = tc->tx_hdgst;
		isd_tcp_frame_r2t(tx->hdr, isd_dmt_itt(tt->task), isd_dmt_lun(tt->task), ttt,
				  tt->r2tsn++, r2t->offset, len);
		isd_dm_stamp_sn(tc->conn, tx->hdr);
		tx_add_header(tx, NULL, 0);
		tx->built = true;
		tx->last = true;
		tt->get_next += len;
		if (tx_enqueue(tc, tx) < 0)
			return 0;       /* closed: no completion follows, the core sees terminate */
		isd_log_dbg("tcp", "%s: R2T itt 0x%x ttt 0x%x off %u len %u", tc->peer,
			    isd_dmt_itt(tt->task), ttt, r2t->offset, len);
	}
	return 0;
}

/* A TTT slot came free: let tasks that waited for one go on. */
static void
r2t_resume_waiters(struct isd_tcp_conn *tc)
{
	struct isd_tcp_task *tt;

	while (tc->ttt_used < ISD_TCP_TTT_SLOTS && (tt = TAILQ_FIRST(&tc->r2t_wait)) != NULL) {
		TAILQ_REMOVE(&tc->r2t_wait, tt, wait_link);
		tt->waiting = false;
		if (r2t_issue(tc, tt) < 0) {
			close_now(tc, -ENOMEM);
			return;
		}
		if (tt->waiting)
			return;         /* it took the slot and wants more: the table is full */
	}
}

/* ---------------------------------------------------------------- receive */

static void
rx_fail(struct isd_tcp_conn *tc, int reason, const char *why)
{
	isd_log_warn("tcp %s: %s, dropping the connection", tc->peer, why);
	close_now(tc, reason);
}

/* Reads into iov; returns bytes, or 0 with *stop set (would block, EOF or error). */
static size_t
rx_readv(struct isd_tcp_conn *tc, struct iovec *iov, int n, bool *stop)
{
	ssize_t got;

	do {
		/* recv() is the cheaper call for the common one-piece read (a BHS) */
		got = n == 1 ? recv(tc->fd, iov[0].iov_base, iov[0].iov_len, 0)
			     : readv(tc->fd, iov, n);
	} while (got < 0 && errno == EINTR);
	if (got > 0)
		return (size_t)got;
	*stop = true;
	if (got == 0) {
		isd_log_dbg("tcp", "%s: peer closed", tc->peer);
		close_now(tc, -ENOTCONN);
	} else if (errno != EAGAIN && errno != EWOULDBLOCK) {
		int rc = -errno;

		isd_log_dbg("tcp", "%s: recv: %s", tc->peer, strerror(-rc));
		close_now(tc, rc);
	}
	return 0;
}

static void
rx_enter_data(struct isd_tcp_conn *tc)
{
	tc->rx_state = ISD_TCP_RX_DATA;
	tc->rx_got = 0;
	tc->rx_pad = isd_pad4(tc->rx_dsl);
	tc->rx_trail_len = tc->rx_pad + (tc->rx_ddgst && tc->rx_dsl > 0 ? ISD_TCP_DIGEST_LEN : 0);
}

static void
rx_discard(struct isd_tcp_conn *tc, int reason)
{
	tc->rx_sink = ISD_TCP_SINK_DISCARD;
	tc->rx_reject = reason;
	free(tc->rx_ahs);
	tc->rx_ahs = NULL;
	tc->rx_ahs_len = 0;
}

/*
 * A PDU to receive into with room for dsl data bytes. An active connection
 * keeps one small one aside (its core gives each PDU back before the next
 * comes), so a stream of responses and Data-Ins allocates nothing.
 */
static struct isd_pdu *
rx_pdu_get(struct isd_tcp_conn *tc, uint32_t dsl)
{
	struct isd_pdu *pdu = tc->rx_spare;

	if (pdu == NULL || dsl > ISD_TCP_RX_SPARE_DATA) {
		if (tc->conn->active && dsl <= ISD_TCP_RX_SPARE_DATA) {
			pdu = isd_pdu_alloc(ISD_TCP_RX_SPARE_DATA);
			if (pdu != NULL)
				pdu->owner = &tc->rx_spare;     /* one of the spare's size */
			return pdu;
		}
		/*
		 * Data of whole sectors lands sector-aligned: immediate data used
		 * where it arrived then goes to a direct-I/O store (O_DIRECT asks
		 * 512 bytes of most devices) without a bounce copy.
		 */
		pdu = dsl >= 512 && dsl % 512 == 0 ? isd_pdu_alloc_rx(dsl, 512) : isd_pdu_alloc(dsl);
		if (pdu != NULL)
			pdu->owner = tc;
		return pdu;
	}
	tc->rx_spare = NULL;
	pdu->ahs = NULL;
	pdu->ahs_len = 0;
	pdu->data = pdu->inline_data;
	pdu->data_len = 0;
	pdu->data_iov = NULL;
	pdu->data_iovcnt = 0;
	return pdu;
}

/*
 * Active: a Data-In header. The core checks it against its task and names the
 * buffer its payload goes to (or none: skipped). Returns false if the
 * connection closed.
 */
static bool
rx_datain_header(struct isd_tcp_conn *tc, uint32_t dsl)
{
	struct isd_dm_task *t = NULL;
	const struct iovec *iov = NULL;
	int iovcnt = 0, rc;

	if (tc->rx_ahs_len != 0) {
		rx_fail(tc, -EPROTO, "Data-In with an AHS");
		return false;
	}
	rc = isd_dm_data_in(tc->conn, tc->rx_bhs, &t, &iov, &iovcnt);
	if (tc->state != ISD_TCP_OPEN)
		return false;
	if (rc < 0) {
		isd_log_dbg("tcp", "%s: Data-In refused by the core (%d)", tc->peer, rc);
		close_now(tc, rc);
		return false;
	}
	if (t != NULL &&
	    ((struct isd_tcp_task *)isd_dmt_priv(t))->magic != ISD_TCP_TASK_MAGIC) {
		/* Not a task whose command went out here, or one the core cleaned up
		 * from inside the upcall: nothing of it may be written. */
		t = NULL;
	}
	if (t == NULL) {
		rx_discard(tc, 0);
	} else {
		uint64_t end = (uint64_t)get_be32(tc->rx_bhs + 40) + dsl;

		if (end > isd_iov_len(iov, iovcnt)) {
			/* The core checked it; this only guards the datamover's own writes. */
			rx_fail(tc, -EPROTO, "Data-In beyond the task's buffer");
			return false;
		}
		tc->rx_sink = ISD_TCP_SINK_DATAIN;
		tc->rx_dt = t;
		tc->rx_iov = iov;
		tc->rx_iovcnt = iovcnt;
		tc->rx_offset = get_be32(tc->rx_bhs + 40);
	}
	rx_enter_data(tc);
	return true;
}

/*
 * BHS, AHS and header digest are in: check the digest and the lengths, and
 * pick where the data segment goes. Returns false if the connection closed.
 */
static bool
rx_header_done(struct isd_tcp_conn *tc)
{
	const uint8_t *bhs = tc->rx_bhs;
	uint32_t dsl = isd_bhs_dsl(bhs);

	if (tc->rx_hdgst) {
		uint32_t want = isd_pdu_hdr_digest(bhs, tc->rx_ahs, tc->rx_ahs_len);

		if (want != isd_pdu_get_digest(tc->rx_hdgst_buf)) {
			/* RFC 7143 §7.8: a header digest error leaves the stream unframed. */
			rx_fail(tc, -EBADMSG, "header digest error");
			return false;
		}
	}
	tc->rx_dsl = dsl;
	tc->rx_reject = 0;
	tc->rx_tt = NULL;
	if (dsl > tc->rx_limit) {
		if (dsl - tc->rx_limit > ISD_TCP_DISCARD_SLACK) {
			rx_fail(tc, -EPROTO, "data segment far over MaxRecvDataSegmentLength");
			return false;
		}
		isd_log_dbg("tcp", "%s: %s DSL %u over %u, skipped", tc->peer,
			    isd_opcode_name(isd_bhs_opcode(bhs)), dsl, tc->rx_limit);
		rx_discard(tc, ISD_REJECT_PROTOCOL_ERROR);
		rx_enter_data(tc);
		return true;
	}
	if (tc->conn->active && isd_bhs_opcode(bhs) == ISD_OP_DATA_IN)
		return rx_datain_header(tc, dsl);
	if (!tc->conn->active && isd_bhs_opcode(bhs) == ISD_OP_DATA_OUT) {
		struct isd_tcp_ttt_slot *s = ttt_lookup(tc, isd_bhs_ttt(bhs));

		if (s != NULL) {
			struct isd_tcp_task *tt = s->tt;
			struct isd_tcp_r2t *r2t = &tt->r2t[s->r2t_idx];
			int reason = isd_tcp_frame_check_dataout(r2t, isd_dmt_itt(tt->task), bhs);

			if (reason == 0 && tc->rx_ahs_len != 0)
				reason = ISD_REJECT_PROTOCOL_ERROR;
			if (reason != 0) {
				isd_log_dbg("tcp",
					    "%s: bad Data-Out ttt 0x%x off %u len %u datasn %u: %s",
					    tc->peer, r2t->ttt, get_be32(bhs + 40), dsl,
					    get_be32(bhs + 36),
					    isd_reject_reason_str((uint8_t)reason));
				rx_discard(tc, reason);
			} else {
				tc->rx_sink = ISD_TCP_SINK_TASK;
				tc->rx_tt = tt;
				tc->rx_r2t_idx = s->r2t_idx;
				tc->rx_offset = get_be32(bhs + 40);
			}
			rx_enter_data(tc);
			return true;
		}
		/* Unsolicited, or a TTT we do not know (any more): the core decides. */
	}
	tc->rx_pdu = rx_pdu_get(tc, dsl);
	if (tc->rx_pdu == NULL) {
		rx_fail(tc, -ENOMEM, "out of memory for a received PDU");
		return false;
	}
	memcpy(tc->rx_pdu->bhs, bhs, ISD_BHS_LEN);
	tc->rx_pdu->ahs = tc->rx_ahs;
	tc->rx_pdu->ahs_len = tc->rx_ahs_len;
	tc->rx_ahs = NULL;
	tc->rx_ahs_len = 0;
	tc->rx_pdu->data_len = dsl;
	tc->rx_sink = ISD_TCP_SINK_PDU;
	rx_enter_data(tc);
	return true;
}

/* Running CRC over [off, off+len) of an iovec, however many entries it takes. */
static uint32_t
crc_iov_range(uint32_t crc, const struct iovec *iov, int iovcnt, size_t off, size_t len)
{
	for (int i = 0; i < iovcnt && len > 0; i++) {
		size_t chunk;

		if (off >= iov[i].iov_len) {
			off -= iov[i].iov_len;
			continue;
		}
		chunk = iov[i].iov_len - off;
		if (chunk > len)
			chunk = len;
		crc = isd_crc32c_update(crc, (const char *)iov[i].iov_base + off, chunk);
		len -= chunk;
		off = 0;
	}
	return crc;
}

/* Solicited Data-Out fully read and verified: account it and move the transfer on. */
static void
rx_dataout_done(struct isd_tcp_conn *tc, struct isd_tcp_task *tt, int idx)
{
	struct isd_tcp_r2t *r2t = &tt->r2t[idx];
	uint32_t dsl = tc->rx_dsl;

	r2t->received += dsl;
	r2t->next_datasn++;
	tt->get_missing -= dsl;
	if (r2t->received < r2t->length)
		return;
	/* This R2T's sequence is complete. */
	ttt_free(tc, r2t->ttt);
	r2t->in_use = false;
	if (tt->get_missing == 0) {
		tt->get_active = false;
		r2t_resume_waiters(tc);
		if (tc->state == ISD_TCP_CLOSED)
			return;
		isd_dm_data_completion_notify(tc->conn, tt->task, tt->data_bad ? -EILSEQ : 0);
		return;
	}
	r2t_resume_waiters(tc);
	if (tc->state == ISD_TCP_CLOSED)
		return;
	if (!tt->waiting && r2t_issue(tc, tt) < 0)
		close_now(tc, -ENOMEM);
}

/* A whole PDU is in: deliver it. Returns false if the connection is no longer open. */
static bool
rx_pdu_done(struct isd_tcp_conn *tc)
{
	uint8_t bhs[ISD_BHS_LEN];
	const uint8_t *pad = tc->rx_trail;
	const uint8_t *dgst = tc->rx_trail + tc->rx_pad;
	bool check = tc->rx_ddgst && tc->rx_dsl > 0;
	struct isd_pdu *pdu;
	uint32_t crc;

	memcpy(bhs, tc->rx_bhs, sizeof(bhs));
	tc->rx_state = ISD_TCP_RX_BHS;
	tc->rx_got = 0;
	switch (tc->rx_sink) {
	case ISD_TCP_SINK_PDU:
		pdu = tc->rx_pdu;
		tc->rx_pdu = NULL;
		if (check) {
			crc = isd_crc32c_update(ISD_CRC32C_INIT, pdu->data, pdu->data_len);
			crc = isd_crc32c_final(isd_crc32c_update(crc, pad, tc->rx_pad));
			if (crc != isd_pdu_get_digest(dgst)) {
				isd_log_warn("tcp %s: data digest error on %s", tc->peer,
					     isd_opcode_name(isd_bhs_opcode(bhs)));
				free(pdu->ahs);
				isd_pdu_free(pdu);
				isd_dm_pdu_error_notify(tc->conn, bhs, ISD_REJECT_DIGEST_ERROR);
				break;
			}
		}
		isd_dm_control_notify(tc->conn, pdu);
		break;
	case ISD_TCP_SINK_TASK:
		if (check) {
			crc = crc_iov_range(ISD_CRC32C_INIT, tc->rx_tt->iov, tc->rx_tt->iovcnt,
					    tc->rx_offset, tc->rx_dsl);
			crc = isd_crc32c_final(isd_crc32c_update(crc, pad, tc->rx_pad));
			if (crc != isd_pdu_get_digest(dgst)) {
				/*
				 * Rejected (RFC 7143 §7.8), and the sequence goes on as
				 * if the bytes had come: the header checked out against
				 * its R2T. The task completes with -EILSEQ when all its
				 * data is in and the core ends it unrun. The bytes are in
				 * a staging buffer: with data digests on, the core never
				 * lets a LU's memory be the receive buffer.
				 */
				isd_log_warn("tcp %s: data digest error on Data-Out", tc->peer);
				tc->rx_tt->data_bad = true;
				/* No task goes away inside (a Reject is only queued). */
				isd_dm_pdu_error_notify(tc->conn, bhs, ISD_REJECT_DIGEST_ERROR);
				if (tc->state != ISD_TCP_OPEN || tc->rx_tt == NULL)
					break;
			}
		}
		{
			struct isd_tcp_task *tt = tc->rx_tt;

			tc->rx_tt = NULL;
			rx_dataout_done(tc, tt, tc->rx_r2t_idx);
		}
		break;
	case ISD_TCP_SINK_DATAIN:
		if (check) {
			crc = crc_iov_range(ISD_CRC32C_INIT, tc->rx_iov, tc->rx_iovcnt,
					    tc->rx_offset, tc->rx_dsl);
			crc = isd_crc32c_final(isd_crc32c_update(crc, pad, tc->rx_pad));
			if (crc != isd_pdu_get_digest(dgst)) {
				isd_log_warn("tcp %s: data digest error on Data-In", tc->peer);
				isd_dm_pdu_error_notify(tc->conn, bhs, ISD_REJECT_DIGEST_ERROR);
				break;
			}
		}
		tc->rx_iov = NULL;
		tc->rx_dt = NULL;
		pdu = rx_pdu_get(tc, 0);
		if (pdu == NULL) {
			rx_fail(tc, -ENOMEM, "out of memory for a received PDU");
			break;
		}
		/* The payload is in the task's buffer; the header goes up alone. */
		memcpy(pdu->bhs, bhs, ISD_BHS_LEN);
		isd_dm_control_notify(tc->conn, pdu);
		break;
	case ISD_TCP_SINK_DISCARD:
		if (tc->rx_reject != 0)
			isd_dm_pdu_error_notify(tc->conn, bhs, tc->rx_reject);
		break;
	}
	return tc->state == ISD_TCP_OPEN;
}

/*
 * Builds the iovec for what the current stage still needs. Returns entries, sets
 * *data_part. With `ahead`, a stage that ends a PDU also asks for what follows
 * it, into the (empty) staging buffer.
 */
static int
rx_iov(struct isd_tcp_conn *tc, struct iovec *iov, size_t *data_part, bool ahead)
{
	uint32_t got = tc->rx_got;
	int n = 0;

	*data_part = 0;
	switch (tc->rx_state) {
	case ISD_TCP_RX_BHS:
		iov[0].iov_base = tc->rx_bhs + got;
		iov[0].iov_len = ISD_BHS_LEN - got;
		return 1;
	case ISD_TCP_RX_HDR:
		if (got < tc->rx_ahs_len) {
			iov[n].iov_base = tc->rx_ahs + got;
			iov[n].iov_len = tc->rx_ahs_len - got;
			n++;
			got = 0;
		} else {
			got -= tc->rx_ahs_len;
		}
		if (tc->rx_hdgst) {
			iov[n].iov_base = tc->rx_hdgst_buf + got;
			iov[n].iov_len = ISD_TCP_DIGEST_LEN - got;
			n++;
		}
		if (ahead && isd_bhs_dsl(tc->rx_bhs) == 0) {
			/* no data segment: the PDU ends with this stage */
			iov[n].iov_base = tc->rx_stg;
			iov[n].iov_len = ISD_TCP_RX_STAGE;
			n++;
		}
		*data_part = 0;
		return n;
	case ISD_TCP_RX_DATA:
		if (got < tc->rx_dsl) {
			uint32_t left = tc->rx_dsl - got, covered = left;

			switch (tc->rx_sink) {
			case ISD_TCP_SINK_PDU:
				iov[0].iov_base = tc->rx_pdu->data + got;
				iov[0].iov_len = left;
				n = 1;
				break;
			case ISD_TCP_SINK_TASK:
				/* Straight into the task's buffer: no copy on the write path. */
				n = isd_iov_slice_upto(tc->rx_tt->iov, tc->rx_tt->iovcnt,
						       tc->rx_offset + got, left, iov,
						       ISD_TCP_TX_IOV_MAX, &covered);
				break;
			case ISD_TCP_SINK_DATAIN:
				/* Straight into the caller's buffer: no copy on the read path. */
				n = isd_iov_slice_upto(tc->rx_iov, tc->rx_iovcnt, tc->rx_offset + got,
						       left, iov, ISD_TCP_TX_IOV_MAX, &covered);
				break;
			case ISD_TCP_SINK_DISCARD:
				covered = left > sizeof(g_discard) ? sizeof(g_discard) : left;
				iov[0].iov_base = g_discard;
				iov[0].iov_len = covered;
				n = 1;
				break;
			}
			*data_part = covered;
			if (covered < left)
				return n;
			got = 0;
		} else {
			got -= tc->rx_dsl;
		}
		if (tc->rx_trail_len > got) {
			iov[n].iov_base = tc->rx_trail + got;
			iov[n].iov_len = tc->rx_trail_len - got;
			n++;
		}
		/* the PDU ends with this stage: the next ones may come along */
		if (ahead) {
			iov[n].iov_base = tc->rx_stg;
			iov[n].iov_len = ISD_TCP_RX_STAGE;
			n++;
		}
		return n;
	}
	return 0;
}

static uint32_t
rx_stage_len(const struct isd_tcp_conn *tc)
{
	switch (tc->rx_state) {
	case ISD_TCP_RX_BHS:
		return ISD_BHS_LEN;
	case ISD_TCP_RX_HDR:
		return tc->rx_ahs_len + (tc->rx_hdgst ? ISD_TCP_DIGEST_LEN : 0);
	case ISD_TCP_RX_DATA:
		return tc->rx_dsl + tc->rx_trail_len;
	}
	return 0;
}

/* The current stage is complete: move on. Returns false to stop reading. */
static bool
rx_stage_done(struct isd_tcp_conn *tc, unsigned int *pdus)
{
	switch (tc->rx_state) {
	case ISD_TCP_RX_BHS:
		tc->rx_ahs_len = isd_bhs_ahs_len(tc->rx_bhs);
		if (tc->rx_ahs_len > 0) {
			tc->rx_ahs = malloc(tc->rx_ahs_len);
			if (tc->rx_ahs == NULL) {
				rx_fail(tc, -ENOMEM, "out of memory for an AHS");
				return false;
			}
		}
		tc->rx_state = ISD_TCP_RX_HDR;
		tc->rx_got = 0;
		if (rx_stage_len(tc) > 0)
			return true;
		/* no AHS, no header digest */
		__attribute__((fallthrough));
	case ISD_TCP_RX_HDR:
		if (!rx_header_done(tc))
			return false;
		if (rx_stage_len(tc) > 0)
			return true;
		/* no data segment */
		__attribute__((fallthrough));
	case ISD_TCP_RX_DATA:
		(*pdus)++;
		return rx_pdu_done(tc);
	}
	return false;
}

/* Bytes wait in the staging buffer: no EPOLLIN will come for them. */
static bool
rx_staged(const struct isd_tcp_conn *tc)
{
	return tc->state == ISD_TCP_OPEN && tc->rx_stg_len > tc->rx_stg_off;
}

/* Copies up to `len` staged bytes into iov (n entries); returns how many. */
static size_t
rx_from_stage(struct isd_tcp_conn *tc, const struct iovec *iov, int n, size_t len)
{
	size_t avail = tc->rx_stg_len - tc->rx_stg_off, done = 0;

	if (len > avail)
		len = avail;
	for (int i = 0; i < n && done < len; i++) {
		size_t k = iov[i].iov_len < len - done ? iov[i].iov_len : len - done;

		memcpy(iov[i].iov_base, tc->rx_stg + tc->rx_stg_off + done, k);
		done += k;
	}
	tc->rx_stg_off += (uint32_t)done;
	if (tc->rx_stg_off == tc->rx_stg_len)
		tc->rx_stg_off = tc->rx_stg_len = 0;
	return done;
}

static void
rx_run(struct isd_tcp_conn *tc)
{
	unsigned int pdus = 0, pdu_budget = tc->conn->active ? ISD_TCP_RX_PDU_BUDGET_ACTIVE
							     : ISD_TCP_RX_PDU_BUDGET;
	size_t bytes = 0;

	/* A full send queue stops reading (tx_enqueue); a PDU half read waits for the resume. */
	while (tc->state == ISD_TCP_OPEN && !tc->rx_paused && pdus < pdu_budget &&
	       bytes < ISD_TCP_RX_BYTE_BUDGET) {
		uint32_t stage = rx_stage_len(tc);

		if (tc->rx_got < stage) {
			struct iovec iov[ISD_TCP_TX_IOV_MAX + 2];
			bool stop = false, staged = tc->rx_stg_len > tc->rx_stg_off;
			bool direct = !staged && stage - tc->rx_got >= ISD_TCP_RX_STAGE;
			size_t data_part, got;
			int n;

			if (!staged && !direct) {
				/* a small rest: one recv takes it and what follows */
				struct iovec one = { tc->rx_stg, ISD_TCP_RX_STAGE };

				got = rx_readv(tc, &one, 1, &stop);
				if (stop)
					return;
				tc->rx_stg_off = 0;
				tc->rx_stg_len = (uint32_t)got;
				bytes += got;
			}
			n = rx_iov(tc, iov, &data_part, direct);
			if (n == 0) {
				/* Only if a task buffer were shorter than checked at get_data. */
				rx_fail(tc, -EFAULT, "no room for received data");
				return;
			}
			if (!direct) {
				size_t want = 0;

				for (int i = 0; i < n; i++)
					want += iov[i].iov_len;
				tc->rx_got += (uint32_t)rx_from_stage(tc, iov, n, want);
				if (tc->rx_got < stage)
					continue;
			} else {
				got = rx_readv(tc, iov, n, &stop);
				if (stop)
					return;
				bytes += got;
				tc->rx_got += (uint32_t)got;
				if (tc->rx_got < stage)
					continue;
				/* what came past the stage starts the next PDUs (rx_iov asks
				 * for it only when this stage ends a PDU) */
				tc->rx_stg_off = 0;
				tc->rx_stg_len = tc->rx_got - stage;
				tc->rx_got = stage;
			}
		}
		if (!rx_stage_done(tc, &pdus)) {
			tc->rx_stg_off = tc->rx_stg_len = 0;
			return;
		}
	}
	if (rx_staged(tc) && !tc->rx_paused)
		isd_reactor_defer(tc->r, &tc->rx_timer);
}

static void
rx_timer_cb(void *arg)
{
	struct isd_tcp_conn *tc = arg;

	if (tc->state == ISD_TCP_OPEN && !tc->rx_paused)
		rx_run(tc);
}

static void
io_cb(void *arg, uint32_t events)
{
	struct isd_tcp_conn *tc = arg;

	if (tc->state == ISD_TCP_CONNECTING) {
		connect_done(tc);
		return;
	}
	if ((events & EPOLLOUT) && tc->state != ISD_TCP_CLOSED) {
		tc->tx_blocked = false;
		tx_flush(tc);
	}
	if ((events & EPOLLIN) && tc->state == ISD_TCP_OPEN)
		rx_run(tc);
	if ((events & (EPOLLERR | EPOLLHUP)) && tc->state == ISD_TCP_FLUSHING &&
	    TAILQ_EMPTY(&tc->txq))
		close_now(tc, 0);
}

/* ---------------------------------------------------------------- connect (active) */

/* Starts a nonblocking connect to the next address. Returns 0 (in progress) or
 * -errno when none is left. */
static int
connect_next(struct isd_tcp_conn *tc)
{
	int one = 1;

	while (tc->ai_next != NULL) {
		struct addrinfo *ai = tc->ai_next;
		int fd, rc;

		tc->ai_next = ai->ai_next;
		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
			    ai->ai_protocol);
		if (fd < 0) {
			tc->connect_err = -errno;
			continue;
		}
		(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		if (connect(fd, ai->ai_addr, ai->ai_addrlen) != 0 && errno != EINPROGRESS) {
			tc->connect_err = -errno;
			close(fd);
			continue;
		}
		rc = isd_reactor_add_fd(tc->r, fd, EPOLLOUT, io_cb, tc);
		if (rc < 0) {
			tc->connect_err = rc;
			close(fd);
			continue;
		}
		tc->fd = fd;
		tc->registered = true;
		tc->ev_mask = EPOLLOUT;
		return 0;
	}
	return tc->connect_err != 0 ? tc->connect_err : -EHOSTUNREACH;
}

static void
connect_failed_cb(void *arg)
{
	struct isd_tcp_conn *tc = arg;
	int rc = tc->connect_err != 0 ? tc->connect_err : -EHOSTUNREACH;

	close_now(tc, rc);
	/* No terminate notify for a connection that never opened. */
	isd_reactor_timer_stop(tc->r, &tc->notify_timer);
	tc->notify_pending = false;
	/* The core may free the connection inside: nothing after this. */
	isd_dm_connected(tc->conn, rc);
}

/* The socket became writable while connecting: connected, or on to the next address. */
static void
connect_done(struct isd_tcp_conn *tc)
{
	int err = 0, rc;
	socklen_t len = sizeof(err);

	if (getsockopt(tc->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
		err = errno;
	if (err == EINPROGRESS || err == EALREADY)
		return;
	if (err != 0) {
		tc->connect_err = -err;
		isd_reactor_del_fd(tc->r, tc->fd);
		tc->registered = false;
		close(tc->fd);
		tc->fd = -1;
		if (connect_next(tc) < 0)
			connect_failed_cb(tc);
		return;
	}
	freeaddrinfo(tc->ai_list);
	tc->ai_list = NULL;
	tc->ai_next = NULL;
	tc->state = ISD_TCP_OPEN;
	rc = isd_reactor_mod_fd(tc->r, tc->fd, EPOLLIN);
	if (rc < 0) {
		tc->connect_err = rc;
		connect_failed_cb(tc);
		return;
	}
	tc->ev_mask = EPOLLIN;
	isd_log_dbg("tcp", "%s: connected", tc->peer);
	/* The core may free the connection inside, or queue the first Login Request. */
	isd_dm_connected(tc->conn, 0);
}

static int
tcp_connect(struct isd_dm_conn *c, const char *host, uint16_t port)
{
	struct isd_tcp_conn *tc = tconn(c);
	struct addrinfo hints = {0};
	char portstr[8];
	int rc;

	isd_tcp_conn_init(tc, c, isd_dmc_reactor(c), -1);
	tc->state = ISD_TCP_CONNECTING;
	isd_fmt_hostport(tc->peer, sizeof(tc->peer), host, port);
	snprintf(portstr, sizeof(portstr), "%u", port);
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_ADDRCONFIG;
	rc = getaddrinfo(host, portstr, &hints, &tc->ai_list);
	if (rc != 0) {
		tc->state = ISD_TCP_CLOSED;
		return rc == EAI_SYSTEM ? -errno : -ENXIO;  /* no such host */
	}
	tc->ai_next = tc->ai_list;
	if (connect_next(tc) < 0) {
		/* Reported from the loop, never from inside this call. */
		isd_reactor_defer(tc->r, &tc->connect_timer);
	}
	return 0;
}

/*
 * Active, without connect: takes a socket already connected (a test's
 * socketpair, a caller's own connect) as the connection. Returns 0, or -errno
 * (fd not taken).
 */
int
isd_tcp_adopt(struct isd_dm_conn *c, int fd, const char *peer)
{
	struct isd_tcp_conn *tc = tconn(c);
	int rc;

	isd_tcp_conn_init(tc, c, isd_dmc_reactor(c), fd);
	snprintf(tc->peer, sizeof(tc->peer), "%s", peer);
	rc = isd_reactor_add_fd(tc->r, fd, EPOLLIN, io_cb, tc);
	if (rc < 0) {
		tc->fd = -1;
		tc->state = ISD_TCP_CLOSED;
		return rc;
	}
	tc->registered = true;
	tc->ev_mask = EPOLLIN;
	return 0;
}

/* ---------------------------------------------------------------- setup */

void
isd_tcp_conn_init(struct isd_tcp_conn *tc, struct isd_dm_conn *c, struct isd_reactor *r, int fd)
{
	const struct isd_params *p = isd_dmc_params(c);

	memset(tc, 0, sizeof(*tc));
	tc->conn = c;
	tc->r = r;
	tc->fd = fd;
	tc->state = ISD_TCP_OPEN;
	isd_timer_init(&tc->notify_timer, notify_cb, tc);
	isd_timer_init(&tc->flush_timer, flush_timeout_cb, tc);
	isd_timer_init(&tc->kick_timer, kick_cb, tc);
	isd_timer_init(&tc->connect_timer, connect_failed_cb, tc);
	isd_timer_init(&tc->rx_timer, rx_timer_cb, tc);
	TAILQ_INIT(&tc->txq);
	TAILQ_INIT(&tc->r2t_wait);
	for (int i = 0; i < ISD_TCP_TTT_SLOTS; i++)
		tc->ttt[i].ttt = ISD_RSVD_TAG;
	tc->rx_limit = p != NULL && p->max_recv_dsl >= 512 ? p->max_recv_dsl : 8192;
	snprintf(tc->peer, sizeof(tc->peer), "fd%d", fd);
}

int
isd_tcp_conn_attach(struct isd_tcp_conn *tc)
{
	int rc = isd_reactor_add_fd(tc->r, tc->fd, EPOLLIN, io_cb, tc);

	if (rc < 0) {
		isd_log_warn("tcp %s: cannot watch the socket: %s", tc->peer, strerror(-rc));
		close_now(tc, rc);
		return rc;
	}
	tc->registered = true;
	tc->ev_mask = EPOLLIN;
	return 0;
}

/* ---------------------------------------------------------------- ops */

static struct isd_tcp_task *task_state(struct isd_dm_task *t);

/*
 * Queues one whole PDU (send_control), or the SCSI Command of task t on an
 * active connection (send_command: its immediate data is borrowed from the
 * task's buffer, and task_cleanup takes the item back). Takes pdu.
 */
static int
queue_pdu(struct isd_tcp_conn *tc, struct isd_dm_task *t, struct isd_pdu *pdu)
{
	struct isd_tcp_tx *tx;
	int rc;

	if (tc->state != ISD_TCP_OPEN) {
		rc = -ENOTCONN;
		goto err_free;
	}
	if ((pdu->ahs_len & 3) != 0 || pdu->ahs_len > ISD_MAX_AHS_LEN ||
	    (pdu->ahs_len > 0 && pdu->ahs == NULL) || pdu->data_len > ISD_MAX_DSL ||
	    (pdu->data_len > 0 && pdu->data == NULL && pdu->data_iov == NULL)) {
		rc = -EINVAL;
		goto err_free;
	}
	tx = tx_new(tc);
	if (tx == NULL) {
		rc = -ENOMEM;
		goto err_free;
	}
	if (t != NULL)
		(void)task_state(t);
	tx->kind = ISD_TCP_TX_PDU;
	tx->task = t;
	tx->pdu = pdu;
	tx->hdgst = tc->tx_hdgst;
	tx->ddgst = tc->tx_ddgst;
	rc = tx_build_pdu(tx, pdu);
	if (rc < 0) {
		tx->pdu = NULL;         /* freed below */
		tx_free(tc, tx);
		goto err_free;
	}
	(void)tx_enqueue(tc, tx);      /* < 0: closed, the PDU went with it */
	return 0;

err_free:
	isd_pdu_free(pdu);
	return rc;
}

static int
tcp_send_control(struct isd_dm_conn *c, struct isd_pdu *pdu)
{
	return queue_pdu(tconn(c), NULL, pdu);
}

static int
tcp_send_command(struct isd_dm_conn *c, struct isd_dm_task *t, struct isd_pdu *pdu)
{
	if (!c->active) {
		isd_pdu_free(pdu);
		return -EOPNOTSUPP;
	}
	return queue_pdu(tconn(c), t, pdu);
}

static struct isd_tcp_task *
task_state(struct isd_dm_task *t)
{
	struct isd_tcp_task *tt = isd_dmt_priv(t);

	if (tt->magic != ISD_TCP_TASK_MAGIC) {
		memset(tt, 0, sizeof(*tt));
		tt->magic = ISD_TCP_TASK_MAGIC;
	}
	tt->task = t;
	return tt;
}

static int
xfer_check(const struct isd_xfer *x)
{
	uint64_t end = (uint64_t)x->offset + x->length;

	if (x->iovcnt < 0 || (x->iovcnt > 0 && x->iov == NULL))
		return -EINVAL;
	if (end > UINT32_MAX || end > isd_iov_len(x->iov, x->iovcnt))
		return -EINVAL;
	return 0;
}

static int
tcp_put_data(struct isd_dm_conn *c, struct isd_dm_task *t, const struct isd_xfer *x)
{
	struct isd_tcp_conn *tc = tconn(c);
	struct isd_tcp_tx *tx;
	int rc;

	if (tc->state != ISD_TCP_OPEN) {
		rc = -ENOTCONN;
		goto err_free;
	}
	rc = xfer_check(x);
	if (rc < 0)
		goto err_free;
	tx = tx_new(tc);
	if (tx == NULL) {
		rc = -ENOMEM;
		goto err_free;
	}
	(void)task_state(t);
	tx->kind = ISD_TCP_TX_DATAIN;
	tx->task = t;
	tx->pdu = x->rsp;
	tx->hdgst = tc->tx_hdgst;
	tx->ddgst = tc->tx_ddgst;
	tx->xiov = x->iov;
	tx->xiovcnt = x->iovcnt;
	tx->next_off = x->offset;
	tx->end_off = x->offset + x->length;
	tx->data_done = x->length == 0;
	tx->collapse = x->length > 0 && isd_tcp_frame_can_collapse(x->rsp);
	tx->ttt = x->ttt;
	tx->datasn = 0;
	(void)tx_enqueue(tc, tx);      /* < 0: closed, no completion follows */
	return 0;

err_free:
	if (x->rsp != NULL)
		isd_pdu_free(x->rsp);
	return rc;
}

/*
 * Drops everything the connection holds for a task: its TTTs, its place on
 * the wait list, and queued items that reference its buffer. An item already
 * partly in the socket cannot be cut (the peer would lose framing), so what
 * remains of its current PDU is copied aside and finished; the buffer may go
 * away as soon as we return. Returns 0, or -ENOMEM (the connection is closed).
 */
static int
task_forget(struct isd_tcp_conn *tc, struct isd_tcp_task *tt)
{
	struct isd_tcp_tx *tx, *next;
	bool changed = false;
	int rc = 0;

	for (int i = 0; i < ISD_TCP_TASK_R2T_MAX; i++) {
		if (tt->r2t[i].in_use && tc->state != ISD_TCP_CLOSED) {
			ttt_free(tc, tt->r2t[i].ttt);
			changed = true;
		}
		tt->r2t[i].in_use = false;
	}
	if (tt->waiting) {
		TAILQ_REMOVE(&tc->r2t_wait, tt, wait_link);
		tt->waiting = false;
	}
	if (tc->rx_dt == tt->task && tc->rx_sink == ISD_TCP_SINK_DATAIN) {
		/* Between a Data-In header and its payload: skip the rest of it. */
		tc->rx_dt = NULL;
		tc->rx_iov = NULL;
		tc->rx_sink = ISD_TCP_SINK_DISCARD;
		tc->rx_reject = 0;
	}
	if (tc->rx_tt == tt) {
		/* Only between a Data-Out header and its data: skip the rest of it. */
		tc->rx_tt = NULL;
		tc->rx_sink = ISD_TCP_SINK_DISCARD;
		tc->rx_reject = 0;
	}
	tt->get_active = false;
	for (uint32_t i = 0; i < tc->tx_ndone; i++) {
		if (tc->tx_done[i] == tt->task)
			tc->tx_done[i] = NULL;  /* written, not yet notified: no notify now */
	}
	/* the queue is walked only for a task with items in it (most tasks end with
	 * none: an initiator's read, a target's write) */
	for (tx = tt->tx_refs > 0 ? TAILQ_FIRST(&tc->txq) : NULL; tx != NULL; tx = next) {
		next = TAILQ_NEXT(tx, link);
		if (tx->task != tt->task || tx->detached)
			continue;
		changed = true;
		if (!tx->started) {
			tx_unlink(tc, tx);
			continue;
		}
		if (rc == 0)
			rc = tx_detach(tc, tx);
		isd_log_dbg("tcp", "%s: itt 0x%x abandoned mid-PDU, finishing it from a copy",
			    tc->peer, isd_dmt_itt(tt->task));
	}
	if (rc < 0) {
		isd_log_warn("tcp %s: out of memory while abandoning a transfer", tc->peer);
		close_now(tc, rc);
		return rc;
	}
	if (changed && tc->state != ISD_TCP_CLOSED)
		r2t_resume_waiters(tc);
	if (changed && tc->state != ISD_TCP_CLOSED)
		update_events(tc);      /* reading may resume */
	return 0;
}

static int
tcp_get_data(struct isd_dm_conn *c, struct isd_dm_task *t, const struct isd_xfer *x)
{
	struct isd_tcp_conn *tc = tconn(c);
	struct isd_tcp_task *tt;
	int rc;

	if (tc->state != ISD_TCP_OPEN)
		return -ENOTCONN;
	if (x->length == 0)
		return -EINVAL;
	rc = xfer_check(x);
	if (rc < 0)
		return rc;
	tt = task_state(t);
	if (tt->get_active)
		return -EBUSY;
	tt->get_active = true;
	tt->iov = x->iov;
	tt->iovcnt = x->iovcnt;
	tt->get_next = x->offset;
	tt->get_end = x->offset + x->length;
	tt->get_missing = x->length;
	tt->data_bad = false;
	rc = r2t_issue(tc, tt);
	if (rc < 0) {
		/* Nothing of it may stay behind: no completion follows a failed call. */
		task_forget(tc, tt);
		return rc;
	}
	return 0;
}

static void
tcp_release_pdu(struct isd_dm_conn *c, struct isd_pdu *pdu)
{
	struct isd_tcp_conn *tc = tconn(c);

	if (pdu == NULL)
		return;
	/* The AHS is a separate allocation of ours; isd_pdu_free does not know it. */
	free(pdu->ahs);
	pdu->ahs = NULL;
	if (pdu->owner == &tc->rx_spare && tc->rx_spare == NULL && tc->state != ISD_TCP_CLOSED) {
		tc->rx_spare = pdu;
		return;
	}
	isd_pdu_free(pdu);
}

static void
tcp_notice_key_values(struct isd_dm_conn *c, const struct isd_params *p)
{
	struct isd_tcp_conn *tc = tconn(c);

	/*
	 * The final Login Response is already queued without digests; everything
	 * queued from now on, and every PDU the initiator sends after it, has them.
	 */
	tc->tx_hdgst = p->header_digest;
	tc->tx_ddgst = p->data_digest;
	tc->rx_hdgst = p->header_digest;
	tc->rx_ddgst = p->data_digest;
	if (p->max_recv_dsl >= 512 && p->max_recv_dsl <= ISD_MAX_DSL)
		tc->rx_limit = p->max_recv_dsl;
	isd_log_dbg("tcp", "%s: digests hdr=%d data=%d, MaxRecvDSL %u, MaxXmitDSL %u", tc->peer,
		    p->header_digest, p->data_digest, tc->rx_limit, p->max_xmit_dsl);
}

static void
tcp_task_cleanup(struct isd_dm_conn *c, struct isd_dm_task *t, struct isd_tmf_wait *fence)
{
	/* nothing moves after this: Data-Out for t that still arrives is dropped */
	(void)fence;
	struct isd_tcp_conn *tc = tconn(c);
	struct isd_tcp_task *tt = isd_dmt_priv(t);

	if (tt->magic != ISD_TCP_TASK_MAGIC)
		return;         /* never had a transfer here */
	tt->task = t;
	(void)task_forget(tc, tt);
	memset(tt, 0, sizeof(*tt));
}

static void
tcp_terminate(struct isd_dm_conn *c)
{
	struct isd_tcp_conn *tc = tconn(c);

	if (tc->state != ISD_TCP_OPEN)
		return;         /* already going: the one notify is on its way */
	isd_log_dbg("tcp", "%s: terminate, %u items to flush", tc->peer, tc->txq_len);
	tc->state = ISD_TCP_FLUSHING;
	rx_drop(tc);
	if (TAILQ_EMPTY(&tc->txq)) {
		close_now(tc, 0);
		return;
	}
	isd_reactor_timer_start(tc->r, &tc->flush_timer, ISD_TCP_FLUSH_MS);
	update_events(tc);
	kick(tc);
}

static void
tcp_free_conn(struct isd_dm_conn *c)
{
	struct isd_tcp_conn *tc = tconn(c);

	if (tc->state != ISD_TCP_CLOSED) {
		/* Not through terminate (the core gave up early): close without notifying. */
		close_now(tc, 0);
	}
	isd_reactor_timer_stop(tc->r, &tc->notify_timer);
	isd_reactor_timer_stop(tc->r, &tc->flush_timer);
	isd_reactor_timer_stop(tc->r, &tc->kick_timer);
	isd_reactor_timer_stop(tc->r, &tc->connect_timer);
	isd_reactor_timer_stop(tc->r, &tc->rx_timer);
	tc->notify_pending = false;
	if (tc->placed) {
		tc->placed = false;
		isd_reactor_conns_add(tc->r, -1);
	}
}

const struct isd_dm_ops isd_tcp_dm_ops = {
	.name = "tcp",
	.caps = ISD_DM_CAP_DIGESTS,
	.conn_priv_size = sizeof(struct isd_tcp_conn),
	.task_priv_size = sizeof(struct isd_tcp_task),
	.connect = tcp_connect,
	.send_control = tcp_send_control,
	.send_command = tcp_send_command,
	.put_data = tcp_put_data,
	.get_data = tcp_get_data,
	/* .login_response = NULL: TCP needs nothing before notice_key_values (its
	 * receive side is a byte stream, the same in login and full feature phase) */
	.notice_key_values = tcp_notice_key_values,
	.release_pdu = tcp_release_pdu,
	.task_cleanup = tcp_task_cleanup,
	.terminate = tcp_terminate,
	.free_conn = tcp_free_conn,
};
