/*
 * Helpers of the fuzzers that run a target instance (core, SCSI layer,
 * reactor) per input: one reactor for the process, the log level, and the
 * check at the end of every input that the target gave everything back.
 */
#ifndef ISD_FUZZ_CORE_H
#define ISD_FUZZ_CORE_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bstore/bstore.h"
#include "iscsi/iscsi.h"
#include "reactor/reactor.h"
#include "scsi/scsi.h"
#include "util/log.h"

#define FUZZ_TNAME "iqn.2024-01.org.example:fuzz"

/* The process's reactor, created on first use. */
static inline struct isd_reactor *
fuzz_reactor(void)
{
	static struct isd_reactor *r;

	if (r == NULL) {
		/* ISERD_FUZZ_DEBUG=1 shows what an input does (debug log of every layer);
		 * otherwise only errors, which a hostile input makes plenty of */
		if (getenv("ISERD_FUZZ_DEBUG") != NULL) {
			isd_log_set_level(ISD_LOG_DEBUG);
			isd_log_enable("all");
		} else {
			isd_log_set_level(ISD_LOG_ERR);
		}
		if (isd_reactor_create(&r) < 0)
			abort();
	}
	return r;
}

static inline void
fuzz_pump(int n)
{
	for (int i = 0; i < n; i++)
		isd_reactor_poll(fuzz_reactor(), 0);
}

/* A SCSI device with LUN 0 a thin 256 KiB RAM LU (512-byte blocks). */
static inline struct isd_scsi_dev *
fuzz_ram_dev(void)
{
	struct isd_scsi_lu_cfg lu;
	struct isd_scsi_dev *dev;
	struct isd_bstore *bs;
	char err[128];

	if (isd_scsi_dev_create(FUZZ_TNAME, &dev) < 0 ||
	    isd_bstore_open(fuzz_reactor(), "ram:256K", &bs, err, sizeof(err)) < 0)
		abort();
	memset(&lu, 0, sizeof(lu));
	lu.bstore = bs;
	lu.block_size = 512;
	lu.thin = true;
	lu.write_cache = true;
	snprintf(lu.vendor, sizeof(lu.vendor), "ISERD");
	snprintf(lu.product, sizeof(lu.product), "RAM");
	snprintf(lu.revision, sizeof(lu.revision), "0001");
	snprintf(lu.serial, sizeof(lu.serial), "fuzz0");
	if (isd_scsi_dev_add_lu(dev, 0, &lu) < 0)
		abort();
	return dev;
}

/*
 * A target instance (no NOP-In pings) and its node FUZZ_TNAME (TPGT 1, queue
 * depth 16, default key policy) in front of dev, which may be NULL. The caller
 * adjusts node->policy and registers the node.
 */
static inline struct isd_iscsi_tgt *
fuzz_target(struct isd_tnode *node, struct isd_scsi_dev *dev)
{
	struct isd_iscsi_tgt *t;
	struct isd_iscsi_cfg cfg;

	isd_iscsi_cfg_init(&cfg);
	cfg.nop_interval_ms = 0;
	if (isd_iscsi_tgt_create(fuzz_reactor(), &cfg, &t) < 0)
		abort();
	memset(node, 0, sizeof(*node));
	snprintf(node->name, sizeof(node->name), "%s", FUZZ_TNAME);
	node->tpgt = 1;
	node->dev = dev;
	node->queue_depth = 16;
	isd_key_policy_init(&node->policy);
	return t;
}

/*
 * Runs the reactor until the target has no connection, session or task left
 * (the caller has dropped the connection), then destroys it. Whatever the
 * peer sent, a dropped connection gives everything back: anything else aborts.
 */
static inline void
fuzz_target_drain_destroy(struct isd_iscsi_tgt *t)
{
	struct isd_iscsi_stats st;
	int i;

	for (i = 0; i < 2000; i++) {
		fuzz_pump(1);
		isd_iscsi_tgt_get_stats(t, &st);
		if (st.connections == 0 && st.tasks == 0 && st.sessions == 0)
			break;
	}
	if (i == 2000)
		abort();
	isd_iscsi_tgt_destroy(t);
}

#endif
