/* An in-process iSCSI target on the fake verbs device (see fv_target.h). */
#include "fv_target.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "bstore/bstore.h"
#include "dm/iser/iser_dm.h"
#include "dm/tcp/tcp.h"
#include "rdma/rdma.h"
#include "reactor/reactor.h"
#include "scsi/scsi.h"
#include "util/monitor.h"

void
fv_target_start(struct fv_target *ft, const struct fv_target_cfg *fc)
{
	struct isd_iscsi_cfg cfg;
	struct isd_scsi_lu_cfg lcfg;
	uint32_t mib = fc->lun_mib ? fc->lun_mib : 4;
	char err[256], spec[128];

	memset(ft, 0, sizeof(*ft));
	if (fc->reactors > 1) {
		isd_monitor_set_threaded(true);
		assert_int_equal(isd_reactor_group_create(fc->reactors, &ft->g), 0);
		ft->r = isd_reactor_group_get(ft->g, 0);
	} else {
		assert_int_equal(isd_reactor_create(&ft->r), 0);
	}
	isd_iscsi_cfg_init(&cfg);
	cfg.nop_interval_ms = 0;
	assert_int_equal(isd_iscsi_tgt_create(ft->r, &cfg, &ft->t), 0);
	assert_int_equal(isd_scsi_dev_create(FV_TARGET_NAME, &ft->dev), 0);
	if (fc->file_lun) {
		int fd;

		snprintf(ft->path, sizeof(ft->path), "/tmp/isd_fv_XXXXXX");
		fd = mkstemp(ft->path);
		assert_true(fd >= 0);
		assert_int_equal(ftruncate(fd, (off_t)mib << 20), 0);
		close(fd);
		snprintf(spec, sizeof(spec), "file:%s", ft->path);
	} else {
		snprintf(spec, sizeof(spec), "ram:%uM", mib);
	}
	assert_int_equal(isd_bstore_open(ft->r, spec, &ft->bs, err, sizeof(err)), 0);
	if (!fc->file_lun)
		assert_non_null(ft->bs->mem_base);
	/* as iserd does: the LU's memory is registered (local access only) */
	if (!fc->lun_unregistered && !fc->file_lun) {
		assert_int_equal(isd_iser_register_memory(ft->bs->mem_base, ft->bs->size, false,
							  err, sizeof(err)), 0);
		ft->bs->mem_pinned = true;
	}
	memset(&lcfg, 0, sizeof(lcfg));
	lcfg.bstore = ft->bs;
	lcfg.block_size = 512;
	snprintf(lcfg.vendor, sizeof(lcfg.vendor), "ISERD");
	snprintf(lcfg.product, sizeof(lcfg.product), "RAM");
	snprintf(lcfg.revision, sizeof(lcfg.revision), "0001");
	snprintf(lcfg.serial, sizeof(lcfg.serial), "fv0");
	lcfg.naa_id = 0x123456789ull;
	assert_int_equal(isd_scsi_dev_add_lu(ft->dev, 0, &lcfg), 0);
	snprintf(ft->node.name, sizeof(ft->node.name), "%s", FV_TARGET_NAME);
	ft->node.dev = ft->dev;
	ft->node.queue_depth = 64;
	isd_key_policy_init(&ft->node.policy);
	assert_int_equal(isd_iscsi_tgt_add_node(ft->t, &ft->node), 0);
	assert_int_equal(isd_iser_portal_listen(ft->t, ft->r, "0.0.0.0", 0, 1, &ft->portal, err,
						sizeof(err)), 0);
	isd_iser_portal_set_remote_invalidate(ft->portal, fc->remote_inv);
	ft->port = isd_iser_portal_port(ft->portal);
	assert_true(ft->port != 0);
	if (fc->tcp) {
		assert_int_equal(isd_tcp_portal_listen(ft->t, ft->r, "127.0.0.1", 0, 1,
						       &ft->tcp_portal, err, sizeof(err)), 0);
		ft->tcp_port = isd_tcp_portal_port(ft->tcp_portal);
		assert_true(ft->tcp_port != 0);
	}
}

uint64_t
fv_target_iser_conns(void)
{
	struct isd_iser_stats st;

	isd_iser_get_stats(&st);
	return st.conns;
}

void
fv_target_assert_idle(struct fv_target *ft)
{
	struct isd_iser_stats st;
	struct isd_iscsi_stats ist;

	isd_iser_get_stats(&st);
	assert_int_equal(st.conns, 0);
	assert_int_equal(st.qps, 0);
	assert_int_equal(st.cqs, 0);
	assert_int_equal(st.conn_mrs, 0);
	assert_int_equal(st.bufs, 0);
	assert_int_equal(st.jobs, 0);
	assert_int_equal(st.remote_mrs, 0);
	isd_iscsi_tgt_get_stats(ft->t, &ist);
	assert_int_equal(ist.connections, 0);
	assert_int_equal(ist.sessions, 0);
	assert_int_equal(ist.tasks, 0);
}

void
fv_target_stop(struct fv_target *ft)
{
	if (ft->tcp_portal != NULL)
		isd_tcp_portal_close(ft->tcp_portal);
	isd_iser_portal_close(ft->portal);
	if (ft->bs->mem_base != NULL)
		isd_iser_unregister_memory(ft->bs->mem_base);    /* a no-op if not registered */
	isd_iscsi_tgt_destroy(ft->t);
	isd_scsi_dev_destroy(ft->dev);
	if (ft->g != NULL) {
		isd_reactor_group_destroy(ft->g);
		isd_monitor_set_threaded(false);
	} else {
		isd_reactor_destroy(ft->r);
	}
	isd_rdma_pool_trim();
	if (ft->path[0] != '\0')
		unlink(ft->path);
	ft->path[0] = '\0';
}
