/*
 * The iSER datamover as a registered kind (dm_kind.h): iser://ADDR[:PORT].
 * Its settings apply to every portal it opens; RAM LUN memory is registered
 * for zero copy; TargetRecvDataSegmentLength follows the receive memory.
 */
#include "dm/dm_kind.h"
#include "dm/iser/iser_dm.h"

enum { KNOB_REMOTE_INV, KNOB_RECV_MEMORY };

static const struct isd_dm_knob g_knobs[] = {
    [KNOB_REMOTE_INV] = {.name = "iser_remote_invalidate", .is_bool = true, .min = 0, .max = 1,
			 .dflt = 1},
    [KNOB_RECV_MEMORY] = {.name = "iser_recv_memory",
			  .min = ISD_ISER_RECV_MEMORY_MIN,
			  .max = ISD_ISER_RECV_MEMORY_MAX,
			  .dflt = ISD_ISER_RECV_MEMORY_DEFAULT},
};

static bool g_remote_inv = true;
static uint64_t g_recv_memory = ISD_ISER_RECV_MEMORY_DEFAULT;

static int
iser_configure(const int64_t *v)
{
	g_remote_inv = v[KNOB_REMOTE_INV] != 0;
	g_recv_memory = (uint64_t)v[KNOB_RECV_MEMORY];
	return 0;
}

static int
iser_listen(struct isd_iscsi_tgt *t, struct isd_reactor *r, const char *host, uint16_t port,
	    uint16_t tpgt, void **portal, char *err, size_t err_len)
{
	struct isd_iser_portal *p;
	int rc = isd_iser_portal_listen(t, r, host, port, tpgt, &p, err, err_len);

	if (rc < 0)
		return rc;
	isd_iser_portal_set_remote_invalidate(p, g_remote_inv);
	isd_iser_portal_set_recv_memory(p, g_recv_memory);
	*portal = p;
	return 0;
}

static uint16_t
iser_port(const void *portal)
{
	return isd_iser_portal_port(portal);
}

static void
iser_place(void *portal, const struct isd_reactor_mask *in)
{
	isd_iser_portal_place(portal, in);
}

static void
iser_close(void *portal)
{
	isd_iser_portal_close(portal);
}

static uint32_t
iser_target_recv_dsl(uint32_t queue_depth)
{
	return isd_iser_trdsl_for(g_recv_memory, queue_depth);
}

const struct isd_dm_kind isd_dm_kind_iser = {
    .scheme = "iser",
    .transport = ISD_TRANSPORT_ISER,
    .knobs = g_knobs,
    .knob_count = (int)(sizeof(g_knobs) / sizeof(g_knobs[0])),
    .configure = iser_configure,
    .listen = iser_listen,
    .port = iser_port,
    .place = iser_place,
    .close = iser_close,
    .register_memory = isd_iser_register_memory,
    .unregister_memory = isd_iser_unregister_memory,
    .target_recv_dsl = iser_target_recv_dsl,
    .stats = isd_iser_stats_list,
};
