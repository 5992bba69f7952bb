/* isd_iserflood: an iSER initiator that logs in, then stops posting receives and keeps sending
 * NOP-Out pings, so that every NOP-In the target answers with meets no receive (on InfiniBand
 * and RoCE the target's Send gets RNR NAKs). A target that retries such Sends for ever
 * (rnr_retry_count 7) keeps the connection stalled with its replies piling up; iserd's QP must
 * give up and the connection go down. Used by tests/lab/job-iser-stagprobe.sh (rxe).
 * Built by tests/interop/test_iser_stagprobe.sh:
 *   gcc -O1 -o isd_iserflood isd_iserflood.c -lrdmacm -libverbs
 * Usage: isd_iserflood ADDR PORT TARGET_IQN SECONDS [COUNT]
 *   COUNT  NOP-Outs to send, then only wait (default: no limit, a flood)
 * Exit: 2 the connection went down (one of our Sends failed, or a CM event) within SECONDS,
 *       0 the connection was still up after SECONDS, 1 the client itself failed (login...).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <infiniband/verbs.h>
#include <rdma/rdma_cma.h>

#define HDR 28                          /* iSER header */
#define BHS 48
#define BUF 9216                        /* a login buffer: headers + 8 KiB of text */
#define NSEND 16
#define STEP_MS 20000

static struct rdma_event_channel *ch;
static struct rdma_cm_id *id;
static struct ibv_cq *cq;
static struct ibv_mr *mr;
static uint8_t mem[(NSEND + 2) * BUF];
static uint32_t statsn, cmdsn = 1;

static double
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int
cm_wait(enum rdma_cm_event_type want)
{
	struct pollfd p = { .fd = ch->fd, .events = POLLIN };
	struct rdma_cm_event *ev;
	enum rdma_cm_event_type got;

	if (poll(&p, 1, STEP_MS) <= 0 || rdma_get_cm_event(ch, &ev) != 0)
		return -1;
	got = ev->event;
	rdma_ack_cm_event(ev);
	return got == want ? 0 : -1;
}

static void
put32(uint8_t *p, uint32_t v)
{
	v = htonl(v);
	memcpy(p, &v, 4);
}

static uint32_t
get32(const uint8_t *p)
{
	uint32_t v;

	memcpy(&v, p, 4);
	return ntohl(v);
}

static int
post_recv(int slot)
{
	struct ibv_sge sge = { (uintptr_t)&mem[slot * BUF], BUF, mr->lkey };
	struct ibv_recv_wr wr = { .wr_id = 1000 + (uint64_t)slot, .sg_list = &sge, .num_sge = 1 };
	struct ibv_recv_wr *bad;

	return ibv_post_recv(id->qp, &wr, &bad);
}

/* Sends the PDU built in send slot `slot` (iSER header + BHS + data of dlen). */
static int
post_send(int slot, uint32_t dlen)
{
	uint8_t *b = &mem[(2 + slot) * BUF];
	struct ibv_sge sge = { (uintptr_t)b, HDR + BHS + ((dlen + 3) & ~3u), mr->lkey };
	struct ibv_send_wr wr = { .wr_id = (uint64_t)slot, .sg_list = &sge, .num_sge = 1,
				  .opcode = IBV_WR_SEND, .send_flags = IBV_SEND_SIGNALED };
	struct ibv_send_wr *bad;

	memset(b, 0, HDR);
	b[0] = 0x10;                    /* iSER control PDU, no STags */
	return ibv_post_send(id->qp, &wr, &bad);
}

/* Polls one completion; -1 on error or timeout. */
static int
poll_one(struct ibv_wc *wc, int ms)
{
	double t0 = now();
	int n;

	do {
		n = ibv_poll_cq(cq, 1, wc);
	} while (n == 0 && (now() - t0) * 1000 < ms);
	if (n <= 0 || wc->status != IBV_WC_SUCCESS)
		return -1;
	return 0;
}

/* One login step: a Login Request with `keys`, flags; waits for the response in recv slot. */
static int
login_step(uint8_t flags, const char *keys, size_t klen, int rslot, const char *iqn)
{
	uint8_t *b = &mem[2 * BUF] + HDR, *r;
	struct ibv_wc wc;
	int sent = 0, got = 0;

	(void)iqn;
	memset(b, 0, BHS);
	b[0] = 0x43;                    /* Login Request, immediate */
	b[1] = flags;
	b[5] = (uint8_t)(klen >> 16);
	b[6] = (uint8_t)(klen >> 8);
	b[7] = (uint8_t)klen;
	b[8] = 0x80;                    /* ISID: random type */
	b[13] = 0x42;
	put32(b + 16, 7);               /* ITT */
	put32(b + 24, cmdsn);
	put32(b + 28, statsn);
	memcpy(b + BHS, keys, klen);
	if (post_recv(rslot) != 0 || post_send(0, (uint32_t)klen) != 0)
		return -1;
	while (!sent || !got) {
		if (poll_one(&wc, STEP_MS) < 0)
			return -1;
		if (wc.wr_id >= 1000)
			got = 1;
		else
			sent = 1;
	}
	r = &mem[rslot * BUF] + HDR;
	if (r[0] != 0x23 || r[36] != 0) {
		fprintf(stderr, "flood: login refused (opcode 0x%02x, status %u/%u)\n", r[0], r[36],
			r[37]);
		return -1;
	}
	statsn = get32(r + 24) + 1;
	cmdsn = get32(r + 28);
	return 0;
}

static size_t
kv(char *out, const char *const *pairs)
{
	size_t n = 0;

	for (; *pairs != NULL; pairs++) {
		size_t l = strlen(*pairs) + 1;

		memcpy(out + n, *pairs, l);
		n += l;
	}
	return n;
}

int
main(int argc, char **argv)
{
	static const uint8_t priv[4] = { 0xc0, 0, 0, 0 }; /* ZBVA and Send w/ Inv not supported */
	struct rdma_conn_param cp = { .initiator_depth = 1, .responder_resources = 1,
				      .retry_count = 7, .rnr_retry_count = 7,
				      .private_data = priv, .private_data_len = sizeof(priv) };
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *ai;
	struct ibv_qp_init_attr qa = { 0 };
	static char keys[1024], tn[300];
	const char *sec[] = { "InitiatorName=iqn.2026-11.test:flood", tn, "SessionType=Normal",
			      "AuthMethod=None", NULL };
	const char *op[] = { "RDMAExtensions=Yes", "HeaderDigest=None", "DataDigest=None",
			     "ImmediateData=No", "InitialR2T=Yes", NULL };
	struct ibv_pd *pd;
	struct ibv_wc wc;
	unsigned long nops = 0;
	int inflight = 0, secs;
	double t0;

	unsigned long count = argc > 5 ? strtoul(argv[5], NULL, 0) : 0;
	const char *why = "?";

	/* a connection the target ends can fail a write under us: an error, not a signal */
	signal(SIGPIPE, SIG_IGN);
	if (argc != 5 && argc != 6) {
		fprintf(stderr, "usage: isd_iserflood ADDR PORT TARGET_IQN SECONDS [COUNT]\n");
		return 1;
	}
	snprintf(tn, sizeof(tn), "TargetName=%s", argv[3]);
	secs = atoi(argv[4]);
	if (getaddrinfo(argv[1], argv[2], &hints, &ai) != 0)
		return 1;
	ch = rdma_create_event_channel();
	if (ch == NULL || rdma_create_id(ch, &id, NULL, RDMA_PS_TCP) != 0 ||
	    rdma_resolve_addr(id, NULL, ai->ai_addr, STEP_MS) != 0 ||
	    cm_wait(RDMA_CM_EVENT_ADDR_RESOLVED) < 0 || rdma_resolve_route(id, STEP_MS) != 0 ||
	    cm_wait(RDMA_CM_EVENT_ROUTE_RESOLVED) < 0) {
		fprintf(stderr, "flood: cannot resolve %s:%s\n", argv[1], argv[2]);
		return 1;
	}
	pd = ibv_alloc_pd(id->verbs);
	cq = pd ? ibv_create_cq(id->verbs, 64, NULL, NULL, 0) : NULL;
	mr = pd ? ibv_reg_mr(pd, mem, sizeof(mem), IBV_ACCESS_LOCAL_WRITE) : NULL;
	if (cq == NULL || mr == NULL)
		return 1;
	qa.send_cq = cq;
	qa.recv_cq = cq;
	qa.qp_type = IBV_QPT_RC;
	qa.cap.max_send_wr = NSEND + 2;
	qa.cap.max_recv_wr = 4;
	qa.cap.max_send_sge = 1;
	qa.cap.max_recv_sge = 1;
	if (rdma_create_qp(id, pd, &qa) != 0 || rdma_connect(id, &cp) != 0 ||
	    cm_wait(RDMA_CM_EVENT_ESTABLISHED) < 0) {
		fprintf(stderr, "flood: cannot connect to %s:%s\n", argv[1], argv[2]);
		return 1;
	}
	/* security stage -> operational -> full feature phase (T=1 each time) */
	if (login_step(0x81, keys, kv(keys, sec), 0, argv[3]) < 0 ||
	    login_step(0x87, keys, kv(keys, op), 1, argv[3]) < 0) {
		fprintf(stderr, "flood: login failed\n");
		return 1;
	}
	printf("logged in; no more receives posted; sending %s NOP-Out pings, waiting up to %d s\n",
	       count ? argv[5] : "endless", secs);
	fflush(stdout);
	/* full feature phase: NOP-Out pings; our receives are all consumed */
	t0 = now();
	while (now() - t0 < secs) {
		struct pollfd p = { .fd = ch->fd, .events = POLLIN };
		struct rdma_cm_event *ev;
		int n;

		while (inflight < NSEND && (count == 0 || nops < count)) {
			/* Sends complete in order: the slot of the oldest one is free */
			int slot = (int)(nops % NSEND);
			uint8_t *b = &mem[(2 + slot) * BUF] + HDR;

			memset(b, 0, BHS);
			b[0] = 0x40;            /* NOP-Out, immediate */
			b[1] = 0x80;
			put32(b + 16, (uint32_t)(nops & 0x7fffffff));
			put32(b + 20, 0xffffffffu);
			put32(b + 24, cmdsn);
			put32(b + 28, statsn);
			if (post_send(slot, 0) != 0) {
				why = "ibv_post_send failed";
				goto dropped;
			}
			inflight++;
			nops++;
		}
		n = ibv_poll_cq(cq, 1, &wc);
		if (n < 0 || (n == 1 && wc.status != IBV_WC_SUCCESS)) {
			why = n < 0 ? "ibv_poll_cq failed" : ibv_wc_status_str(wc.status);
			goto dropped;
		}
		if (n == 1)
			inflight--;
		else
			nanosleep(&(struct timespec){ 0, 1000000 }, NULL);
		if (poll(&p, 1, 0) > 0 && rdma_get_cm_event(ch, &ev) == 0) {
			why = rdma_event_str(ev->event);
			rdma_ack_cm_event(ev);
			goto dropped;
		}
	}
	printf("still connected after %d s and %lu NOP-Outs: the target kept retrying\n", secs,
	       nops);
	return 0;
dropped:
	printf("the connection went down after %.1f s and %lu NOP-Outs (%s)\n", now() - t0, nops,
	       why);
	return 2;
}
