/* isd_stagprobe: an RDMA peer that knows a STag and an address of the target's memory (a root
 * user next to it can read both with `rdma res show mr`, a remote attacker can guess or sniff
 * them) tries to RDMA Write 8 bytes ("ISDPROBE") there, over a connection to the target's iSER
 * portal that never logs in. Used by tests/lab/job-kernel-iser.sh on every MR iserd holds.
 * Built by tests/interop/test_kernel_iser.sh:
 *   gcc -O1 -o isd_stagprobe isd_stagprobe.c -lrdmacm -libverbs
 * Usage: isd_stagprobe ADDR PORT RKEY IOVA
 * Prints one line and exits:
 *   2  refused: the Write completed in error (InfiniBand/RoCE: the responder NAKs it), or the
 *      connection failed within WAIT_S seconds after it (iWARP: the Write completes locally
 *      once sent; the responder's refusal arrives as a TERMINATE that kills the connection)
 *   0  not refused: the Write completed and the connection stayed up (the bytes may have landed)
 *   1  the probe itself failed (no connection...)
 * The target's login timeout is longer than WAIT_S, so an idle-connection drop does not pass for
 * a refusal.
 */
#include <errno.h>
#include <inttypes.h>
#include <netdb.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <infiniband/verbs.h>
#include <rdma/rdma_cma.h>

#define WAIT_S 8
#define STEP_MS 20000

static struct rdma_event_channel *ch;

/* Waits for one CM event of type `want` on the channel (the others are errors). */
static int
cm_wait(enum rdma_cm_event_type want, int ms)
{
	struct pollfd p = { .fd = ch->fd, .events = POLLIN };
	struct rdma_cm_event *ev;
	enum rdma_cm_event_type got;

	if (poll(&p, 1, ms) <= 0)
		return -ETIMEDOUT;
	if (rdma_get_cm_event(ch, &ev) != 0)
		return -errno;
	got = ev->event;
	rdma_ack_cm_event(ev);
	if (got != want) {
		fprintf(stderr, "probe: %s while waiting for %s\n", rdma_event_str(got),
			rdma_event_str(want));
		return -EPROTO;
	}
	return 0;
}

static double
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int
main(int argc, char **argv)
{
	static char buf[8] = "ISDPROBE";
	struct rdma_conn_param cp = { .initiator_depth = 1, .responder_resources = 1,
				      .retry_count = 7, .rnr_retry_count = 7 };
	struct ibv_qp_init_attr qa = { 0 };
	struct ibv_send_wr wr = { 0 }, *bad;
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *ai;
	struct ibv_sge sge;
	struct rdma_cm_id *id;
	struct ibv_pd *pd;
	struct ibv_cq *cq;
	struct ibv_mr *mr;
	struct ibv_wc wc;
	uint32_t rkey;
	uint64_t iova;
	double t0;
	int n;

	/* a connection the target ends can fail a write under us: an error, not a signal */
	signal(SIGPIPE, SIG_IGN);
	if (argc != 5) {
		fprintf(stderr, "usage: isd_stagprobe ADDR PORT RKEY IOVA\n");
		return 1;
	}
	rkey = (uint32_t)strtoul(argv[3], NULL, 0);
	iova = strtoull(argv[4], NULL, 0);
	if (getaddrinfo(argv[1], argv[2], &hints, &ai) != 0) {
		fprintf(stderr, "probe: bad address\n");
		return 1;
	}
	ch = rdma_create_event_channel();
	if (ch == NULL || rdma_create_id(ch, &id, NULL, RDMA_PS_TCP) != 0 ||
	    rdma_resolve_addr(id, NULL, ai->ai_addr, STEP_MS) != 0 ||
	    cm_wait(RDMA_CM_EVENT_ADDR_RESOLVED, STEP_MS) < 0 ||
	    rdma_resolve_route(id, STEP_MS) != 0 ||
	    cm_wait(RDMA_CM_EVENT_ROUTE_RESOLVED, STEP_MS) < 0) {
		fprintf(stderr, "probe: cannot resolve %s:%s\n", argv[1], argv[2]);
		return 1;
	}
	pd = ibv_alloc_pd(id->verbs);
	cq = pd ? ibv_create_cq(id->verbs, 8, NULL, NULL, 0) : NULL;
	mr = pd ? ibv_reg_mr(pd, buf, sizeof(buf), IBV_ACCESS_LOCAL_WRITE) : NULL;
	if (cq == NULL || mr == NULL) {
		fprintf(stderr, "probe: verbs set-up failed\n");
		return 1;
	}
	qa.send_cq = cq;
	qa.recv_cq = cq;
	qa.qp_type = IBV_QPT_RC;
	qa.cap.max_send_wr = 4;
	qa.cap.max_recv_wr = 4;
	qa.cap.max_send_sge = 1;
	qa.cap.max_recv_sge = 1;
	if (rdma_create_qp(id, pd, &qa) != 0 || rdma_connect(id, &cp) != 0 ||
	    cm_wait(RDMA_CM_EVENT_ESTABLISHED, STEP_MS) < 0) {
		fprintf(stderr, "probe: cannot connect to %s:%s\n", argv[1], argv[2]);
		return 1;
	}
	sge.addr = (uintptr_t)buf;
	sge.length = sizeof(buf);
	sge.lkey = mr->lkey;
	wr.sg_list = &sge;
	wr.num_sge = 1;
	wr.opcode = IBV_WR_RDMA_WRITE;
	wr.send_flags = IBV_SEND_SIGNALED;
	wr.wr.rdma.rkey = rkey;
	wr.wr.rdma.remote_addr = iova;
	if (ibv_post_send(id->qp, &wr, &bad) != 0) {
		fprintf(stderr, "probe: ibv_post_send failed\n");
		return 1;
	}
	t0 = now();
	do {
		n = ibv_poll_cq(cq, 1, &wc);
	} while (n == 0 && now() - t0 < STEP_MS / 1000.0);
	if (n <= 0) {
		fprintf(stderr, "probe: no completion for the Write\n");
		return 1;
	}
	if (wc.status != IBV_WC_SUCCESS) {
		printf("refused: RDMA Write to rkey 0x%" PRIx32 " iova 0x%" PRIx64
		       " completed with %s\n", rkey, iova, ibv_wc_status_str(wc.status));
		return 2;
	}
	/* iWARP: the refusal, if any, comes as a TERMINATE: the QP fails (async event) and the
	 * connection goes down (CM event) */
	{
		struct pollfd p[2] = { { .fd = ch->fd, .events = POLLIN },
				       { .fd = id->verbs->async_fd, .events = POLLIN } };
		struct ibv_async_event aev;
		struct rdma_cm_event *ev;

		if (poll(p, 2, WAIT_S * 1000) > 0) {
			const char *what = "?";

			if ((p[1].revents & POLLIN) && ibv_get_async_event(id->verbs, &aev) == 0) {
				what = ibv_event_type_str(aev.event_type);
				ibv_ack_async_event(&aev);
			} else if ((p[0].revents & POLLIN) && rdma_get_cm_event(ch, &ev) == 0) {
				what = rdma_event_str(ev->event);
				rdma_ack_cm_event(ev);
			}
			printf("refused: RDMA Write to rkey 0x%" PRIx32 " iova 0x%" PRIx64 " sent, "
			       "then the connection failed (%s)\n", rkey, iova, what);
			return 2;
		}
	}
	printf("NOT refused: RDMA Write to rkey 0x%" PRIx32 " iova 0x%" PRIx64 " completed and the "
	       "connection stayed up for %d s\n", rkey, iova, WAIT_S);
	return 0;
}
