/*
 * fakeverbs: a fake RDMA device for unit tests (see README.md here).
 *
 * A test executable that links fakeverbs.c defines the libibverbs/librdmacm
 * functions the iSER datamover calls; the program's own definitions win over
 * the shared libraries', so isd_rdma and isd_dmiser talk to this fake. One
 * process-wide fake device ("fv0"); event and completion channels are pipes,
 * so the reactor's epoll wakes on them as on the real ones.
 *
 * The wire: a fake initiator (struct fv_ini, driven by the test with plain
 * ibv_post_send/ibv_post_recv/ibv_poll_cq on its own QP and CQ) connects to a
 * listening rdma_cm id; the target's QP, created by rdma_create_qp on the
 * CONNECT_REQUEST id, is joined to it at rdma_accept. An rdma_cm client
 * (rdma_resolve_addr, rdma_resolve_route, rdma_connect: libiserd) gets such a
 * fake initiator behind its id, with its own QP on the wire. Send WRs execute when
 * posted (unless held): Sends land in the peer's posted receives, RDMA Writes
 * and Reads are memcpy through the MRs their keys name, with bounds and access
 * checks. Everything runs on the caller's thread; the fake never calls back.
 */
#ifndef ISD_TEST_FAKEVERBS_H
#define ISD_TEST_FAKEVERBS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <infiniband/verbs.h>
#include <rdma/rdma_cma.h>

enum fv_fabric {
	FV_FABRIC_IB = 0,
	FV_FABRIC_ROCE,
	FV_FABRIC_IWARP,
};

/* Device knobs; fv_reset() restores the defaults. Read at ibv_query_device /
 * ibv_query_port / rdma_get_devices time. */
struct fv_config {
	enum fv_fabric fabric;          /* default IB */
	bool mem_mgt_ext;               /* IBV_DEVICE_MEM_MGT_EXTENSIONS (default false) */
	int max_qp_wr;                  /* 4096 */
	int max_sge;                    /* 16 */
	int max_sge_rd;                 /* 16 */
	int max_cqe;                    /* 65536 */
	int max_qp_init_rd_atom;        /* 16 */
	bool no_devices;                /* rdma_get_devices finds none */
};
extern struct fv_config fv_cfg;

/* Counters: live objects (leak checks) and what happened on the wire. */
struct fv_stats {
	/* live */
	uint64_t channels, ids, pds, mrs, comp_channels, cqs, qps;
	/* totals */
	uint64_t sends, recvs, writes, reads;   /* executed successfully */
	uint64_t write_bytes, read_bytes;
	uint64_t rnr_naks;              /* Send WRs that found no receive posted (once per WR) */
	uint64_t flushed;               /* WRs completed with IBV_WC_WR_FLUSH_ERR */
	uint64_t wc_errors;             /* other error completions */
	uint64_t post_failures;         /* posts failed by a knob or a check */
	uint64_t sq_full;               /* of which: send queue full (ENOMEM) */
	uint64_t cq_events;             /* completion events written to channels */
	/* misuse the real stack would punish (hang, EBUSY, overrun): 0 in a good run */
	uint64_t bugs;
	char last_bug[256];
};
void fv_get_stats(struct fv_stats *out);
/* Live fake objects (channels, ids, PDs, MRs, CQs, QPs, comp channels). */
uint64_t fv_live_objects(void);
/* Forgets the counters and restores fv_cfg. Call between tests, once every
 * object is gone (live objects are left alone, and counted as they are). */
void fv_reset(void);

/* ---- per-QP knobs (any QP: the target's or the fake initiator's) ---- */

/* Hold: posted send WRs queue and do not execute until released or stepped. */
void fv_qp_hold(struct ibv_qp *qp, bool hold);
/* Executes up to n queued send WRs (n < 0: all that can go); returns how many. */
int fv_qp_step(struct ibv_qp *qp, int n);
/* Send WRs posted and not executed (held, or waiting for the peer's receive). */
int fv_qp_pending_sends(struct ibv_qp *qp);
/* Send queue slots in use: WRs not yet retired by a polled completion (an
 * unsignaled WR is retired by the next signaled one's). */
int fv_qp_sq_inuse(struct ibv_qp *qp);
/* Receives posted and not consumed. */
int fv_qp_posted_recvs(struct ibv_qp *qp);
/* Make the nth ibv_post_send (1: the next) on qp fail with err (a positive errno,
 * nothing posted, *bad_wr = the first WR). nth 0 disarms. */
void fv_qp_fail_post_send(struct ibv_qp *qp, int nth, int err);
/* Make the nth send WR posted on qp from now (1: the next), counted across
 * posts, fail with err: the WRs before it in the same post go in, *bad_wr =
 * it, the rest of that post is not posted. nth 0 disarms. */
void fv_qp_fail_send_wr(struct ibv_qp *qp, int nth, int err);
void fv_qp_fail_post_recv(struct ibv_qp *qp, int nth, int err);
/* A Send that finds no receive: wait for one (default; an RNR retry count of 7)
 * or complete with IBV_WC_RNR_RETRY_EXC_ERR. */
void fv_qp_set_rnr_error(struct ibv_qp *qp, bool error);
/* Posts to qp once it is in error fail with EINVAL instead of completing
 * flushed (the drain markers of a teardown then cannot be posted). */
void fv_qp_refuse_posts_in_error(struct ibv_qp *qp, bool refuse);
/* Moves qp to the error state: every queued WR is flushed (IBV_WC_WR_FLUSH_ERR). */
void fv_qp_to_error(struct ibv_qp *qp);
enum ibv_qp_state fv_qp_state(struct ibv_qp *qp);

/* ---- the fake initiator ---- */

enum fv_ini_state {
	FV_INI_CONNECTING = 0,          /* CONNECT_REQUEST queued on the listener */
	FV_INI_CONNECTED,               /* rdma_accept ran */
	FV_INI_REJECTED,
	FV_INI_DISCONNECTED,            /* either side disconnected */
};

struct fv_ini_opts {
	const void *priv;               /* CM private data of the REQ (the iSER CM header) */
	size_t priv_len;
	/* as the target's CONNECT_REQUEST sees them: initiator_depth is the
	 * initiator's responder resources (IRD), responder_resources its ORD */
	uint8_t initiator_depth;
	uint8_t responder_resources;
	bool hold_established;          /* no ESTABLISHED until rdma_notify or fv_ini_establish */
	uint32_t sq_depth, rq_depth;    /* 0: 256 */
	const char *addr;               /* peer address the target sees; default 192.0.2.1 */
};

struct fv_ini {
	struct ibv_pd *pd;
	struct ibv_cq *cq;              /* send and receive completions; no channel: poll it */
	struct ibv_qp *qp;
	enum fv_ini_state state;
	struct rdma_conn_param acc;     /* what the target's rdma_accept said (private_data = rep) */
	uint8_t rep[64];
	size_t rep_len;
	bool target_disconnected;       /* the target called rdma_disconnect first */
	bool established;               /* ESTABLISHED was queued to the target */
	bool hold_est;                  /* from the options */
	struct fv_id *tid;              /* the target's id (NULL once destroyed) */
	struct fv_id *aid;              /* an rdma_cm initiator's id (rdma_connect), or NULL */
};

/* Connects to the listener on port: returns at once, with a CONNECT_REQUEST
 * queued to the listener's channel; run the target's reactor to accept. */
int fv_ini_connect(uint16_t port, const struct fv_ini_opts *o, struct fv_ini **out);
/* The target's QP joined to this initiator (NULL before rdma_create_qp or after
 * the target destroyed its id). */
struct ibv_qp *fv_ini_target_qp(struct fv_ini *ini);
/* Queues ESTABLISHED to the target (with hold_established). */
void fv_ini_establish(struct fv_ini *ini);
/* The initiator hangs up: its QP to error, DISCONNECTED to the target. On an
 * rdma_cm initiator's half (fv_active_last) the link drops: its id gets
 * DISCONNECTED too. */
void fv_ini_disconnect(struct fv_ini *ini);
/* The initiator half of the last rdma_connect (an rdma_cm client such as
 * libiserd), while its id lives: qp is the client's, fv_ini_target_qp the
 * target's. Not for fv_ini_destroy (rdma_destroy_id frees it). pd and cq are
 * NULL. */
struct fv_ini *fv_active_last(void);
/* Destroys QP, CQ and PD (the caller's MRs on ini->pd first). */
void fv_ini_destroy(struct fv_ini *ini);

#endif
