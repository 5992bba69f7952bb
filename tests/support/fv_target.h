/*
 * An in-process iSCSI target for the fakeverbs tests: a reactor, the real core
 * with one node (one LU: RAM, or a file) and an iSER portal listening on the
 * fake device. Used by the target datamover's test (fake initiator,
 * tests/unit/dmiser/test_fv_iser.c) and by the initiator library's
 * (libiserd over rdma_cm, tests/unit/initiator/test_fv_iserinit.c).
 * With cfg.tcp it also listens on a TCP portal (loopback), for tests that
 * want a real kernel transport under the same target.
 * The functions assert (cmocka) instead of returning errors.
 */
#ifndef ISD_TEST_FV_TARGET_H
#define ISD_TEST_FV_TARGET_H

#include <stdbool.h>
#include <stdint.h>

#include "iscsi/iscsi.h"

#define FV_TARGET_NAME "iqn.2024-01.org.example:fv"

struct fv_target_cfg {
	bool remote_inv;                /* the portal allows remote invalidation */
	bool lun_unregistered;          /* the RAM LU's memory is not registered: bounce */
	bool file_lun;                  /* a file LU: data in registered pool buffers */
	uint32_t lun_mib;               /* 0: 4 MiB */
	bool tcp;                       /* also a TCP portal on 127.0.0.1 */
	unsigned reactors;              /* > 1: a group of that many (the test starts it) */
};

struct fv_target {
	struct isd_reactor *r;          /* reactor 0 of the group, if any */
	struct isd_reactor_group *g;    /* cfg.reactors > 1 */
	struct isd_iscsi_tgt *t;
	struct isd_tnode node;
	struct isd_scsi_dev *dev;
	struct isd_bstore *bs;
	struct isd_iser_portal *portal;
	uint16_t port;                  /* the portal's (on 0.0.0.0) */
	struct isd_tcp_portal *tcp_portal;      /* cfg.tcp */
	uint16_t tcp_port;
	char path[64];                  /* the file LU's file */
};

/* Reactor, core, node FV_TARGET_NAME with LU 0 (512-byte blocks), portal. */
void fv_target_start(struct fv_target *ft, const struct fv_target_cfg *cfg);
/* iSER connections of the datamover still alive. */
uint64_t fv_target_iser_conns(void);
/* Every iSER counter of the datamover and the core's connections, sessions and
 * tasks are 0. */
void fv_target_assert_idle(struct fv_target *ft);
/* Portal, core, LU and reactor (or group: joined first) gone; the fake
 * device's pools trimmed. */
void fv_target_stop(struct fv_target *ft);

#endif
